#!/bin/sh
# ctxpack hash, pack and build on a damaged index: data.mdb cut to many
# lengths over its first pages (the meta pages) and at every page boundary, and garbled in
# every page (seeded, two places a page; CTXPACK_DAMAGE_SEED and
# CTXPACK_DAMAGE_PER_PAGE for longer campaigns).  Never a crash, always the
# digest of a fresh index; damage that matters is reported (a warning
# naming INDEX/data.mdb) and the index rebuilt, and the next run uses the
# new one.  tests/integ/damage.py runs the cases, tests/integ/lmdbfile.py
# (an independent reader of LMDB's format) says which damage matters.
. "$(dirname "$0")/lib.sh"

jget() { sed -n 's/.*"'"$1"'":\("\([^"]*\)"\|\([0-9]*\)\).*/\2\3/p'; }

C=$TESTDIR/ctx
python3 - "$C" <<'PY'
import sys
from tree import writer
w = writer(sys.argv[1])
for i in range(600):
    w("d%02d/e%d/f%04d" % (i % 11, i % 3, i), b"x" * (i % 300) + b"%d" % i)
PY
sleep 0.3
I=$TESTDIR/index
# an index with a history: a cold run, files deleted and changed (so the
# free list has records), all committed
ctxpack hash --index "$I" "$C" >/dev/null
rm -r "$C/d03"
echo changed >> "$C/d05/e1/f0005"
sleep 0.3
ctxpack hash --index "$I" "$C" >/dev/null
want=$(ctxpack hash --index "$TESTDIR/fresh" "$C")
out=$(ctxpack hash --json --index "$I" "$C" 2>"$TESTDIR/err")
is "$(echo "$out" | jget digest)" "$want" "the pristine index gives the fresh one's digest"
is "$(echo "$out" | jget hashed)" 0 "and reads nothing"
ok "the oracle reads it: a tree of branch and leaf pages, a free list" python3 -c '
import sys, lmdbfile
s = lmdbfile.snapshot(open(sys.argv[1], "rb").read())
assert s["cur"][4][1][2] >= 2, "depth"
assert s["free"], "free list"
' "$I/data.mdb"
cp -r "$I" "$TESTDIR/pristine"
# without the snapshots of the last walks (idx_snap.c), which answer an
# unchanged tree without reading data.mdb: every run here reads the index
rm -rf "$TESTDIR/pristine/snapshots"

# summary NAME: the last line of damage.py's output, its failures as diag
summary() {
	grep '^FAIL' "$TESTDIR/$1.out" | head -20 | sed 's/^/# /' >&2
	tail -1 "$TESTDIR/$1.out"
}
field() { echo " $1" | sed -n "s/.* $2 \([0-9]*\).*/\1/p"; }

python3 "$ROOT/tests/integ/damage.py" truncate "$C" "$TESTDIR/pristine" "$want" \
	> "$TESTDIR/trunc.out" 2>&1
s=$(summary trunc)
diag "truncations: $s"
is "$(field "$s" failed)" 0 "every cut: no crash, the right digest, reported when it cut the trees, the next run clean"
ok "cuts through the trees: most of them" test "$(field "$s" damaged)" -ge $(( $(field "$s" cases) / 2 ))

seed=${CTXPACK_DAMAGE_SEED:-14}
per=${CTXPACK_DAMAGE_PER_PAGE:-2}
python3 "$ROOT/tests/integ/damage.py" garble "$C" "$TESTDIR/pristine" "$want" "$seed" "$per" \
	> "$TESTDIR/garble.out" 2>&1
s=$(summary garble)
diag "garbling (seed $seed, $per a page): $s"
is "$(field "$s" failed)" 0 "every garbled page: no crash, the right digest, damage that matters reported, the next run clean"
# the garbling touched every file (os.utime) just now: entries written
# within the racy window of that would be read again by the next run, so
# the runs below start only once the tree's times are settled (a sleep is a
# lower bound: a loaded machine only makes the gap longer)
sleep 0.3
ok "garbles that matter: at least a third" test "$(field "$s" damaged)" -ge $(( $(field "$s" cases) / 3 ))

# pack and build carry on over a damaged index, with the bytes of a pack
# without the cache
flip_record() { # a value byte of a record in the middle of the file
	python3 - "$1" <<'PY'
import struct, sys, lmdbfile
p = sys.argv[1]
d = bytearray(open(p, "rb").read())
s = lmdbfile.snapshot(bytes(d))
psize = s["psize"]
pages, _ = lmdbfile.tree_pages(bytes(d))
for pg in sorted(pages)[len(pages) // 2:]:
    o = pg * psize
    if struct.unpack_from("<H", d, o + 10)[0] == 2:    # a leaf
        ptr = struct.unpack_from("<H", d, o + 16)[0]
        ksize = struct.unpack_from("<H", d, o + ptr + 6)[0]
        d[o + ptr + 8 + ksize + 40] ^= 0x10
        break
open(p, "wb").write(d)
PY
}
rm -rf "$I"; cp -r "$TESTDIR/pristine" "$I"
flip_record "$I/data.mdb"
ctxpack pack --index "$I" -o "$TESTDIR/p.zst" "$C" 2>"$TESTDIR/err"
is "$?" 0 "pack over a damaged record: exit 0"
like "$(cat "$TESTDIR/err")" "warning: the index $I/data.mdb is damaged \(the record of .* fails its check\); rebuilt it" "pack: the warning names it"
ctxpack pack -q --no-cache -o "$TESTDIR/cold.zst" "$C"
same_files "$TESTDIR/p.zst" "$TESTDIR/cold.zst" "pack: the same bytes as without the cache"
out=$(ctxpack hash --json --index "$I" "$C" 2>"$TESTDIR/err")
is "$(echo "$out" | jget hashed)/$(cat "$TESTDIR/err")" "0/" "and the index pack rebuilt is used by hash"

# four processes find the same damaged record in their lookups at once:
# one rebuilds, the others take the new index (the rebuild count in
# ctxpack.lock), all give the right digest
rm -rf "$I"; cp -r "$TESTDIR/pristine" "$I"
flip_record "$I/data.mdb"
pids=
for k in 1 2 3 4; do
	$EXEC_PREFIX "$CTXPACK" hash --index "$I" "$C" > "$TESTDIR/p$k.out" 2> "$TESTDIR/p$k.err" &
	pids="$pids $!"
done
bad=0
for p in $pids; do wait "$p" || bad=$((bad + 1)); done
is "$bad" 0 "four processes on a damaged record: all exit 0"
is "$(cat "$TESTDIR"/p?.out | sort -u)" "$want" "and print the right digest"
like "$(cat "$TESTDIR"/p?.err)" "data.mdb is damaged .*; rebuilt it" "and the rebuild is reported"
out=$(ctxpack hash --json --index "$I" "$C" 2>"$TESTDIR/err")
is "$(echo "$out" | jget digest)/$(cat "$TESTDIR/err")" "$want/" "the index they left: the right digest, no warning"

rm -rf "$I"; cp -r "$TESTDIR/pristine" "$I"
truncate -s $(( $(stat -c %s "$I/data.mdb") / 2 )) "$I/data.mdb"
ctxpack build --compress zstd --index "$I" "$C" -- sh -c 'cat > "$0"' "$TESTDIR/b.zst" 2>"$TESTDIR/err"
is "$?" 0 "build over a truncated index: exit 0"
like "$(cat "$TESTDIR/err")" "warning: the index $I/data.mdb could not be used \(.*truncated.*\); rebuilt it" "build: the warning names it"
same_files "$TESTDIR/b.zst" "$TESTDIR/cold.zst" "build: the command reads the bytes of a pack without the cache"

done_testing
