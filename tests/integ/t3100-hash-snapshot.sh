#!/bin/sh
# ctxpack hash: snapshots (issue 15).  An unchanged tree is answered from
# the context's snapshot ("snapshot":"hit"), a file rewritten in place from
# the snapshot and that file ("partial"); any other change (a name added,
# removed or renamed, a type changed, the ignore file edited) walks the
# tree.  Every answer is checked against a run on a fresh index.
. "$(dirname "$0")/lib.sh"

jget() { sed -n 's/.*"'"$1"'":\("\([^"]*\)"\|\([0-9]*\)\).*/\2\3/p'; }
fresh() { ctxpack hash --index "$(mktemp -d "$TESTDIR/fresh.XXXXXX")" "$@"; }
I=$TESTDIR/idx
h() { ctxpack hash --json --index "$I" "$@"; }

C=$TESTDIR/ctx
mkdir -p "$C/src/a" "$C/src/b" "$C/docs" "$C/skip/deep"
for i in 1 2 3 4 5 6 7 8; do
	echo "module $i" > "$C/src/a/m$i.py"
	echo "part $i" > "$C/src/b/p$i.ts"
done
echo "read me" > "$C/docs/README"
echo "secret" > "$C/skip/deep/x"
printf '#!/bin/sh\necho hi\n' > "$C/run.sh"
chmod +x "$C/run.sh"
ln -s src/a/m1.py "$C/link"
printf 'skip\n*.log\n' > "$C/.dockerignore"
sleep 0.3 # older than the racy window: a snapshot can be written

# check NAME WANT: a run is answered as WANT (hit, partial, walked) with
# the digest of a fresh index
check() {
	out=$(h "$C")
	is "$(echo "$out" | jget snapshot)" "$2" "$1: $2"
	is "$(echo "$out" | jget digest)" "$(fresh "$C")" "$1: the digest of a fresh index"
}
settle() { sleep 0.3; h "$C" >/dev/null; }

check "first run" walked
ls "$I/snapshots" > "$TESTDIR/snaps"
is "$(wc -l < "$TESTDIR/snaps")" 1 "one snapshot file is written"
check "unchanged" hit
out=$(h "$C")
is "$(echo "$out" | jget hashed)" 0 "a hit reads no file"
is "$(echo "$out" | jget reused)" "$(echo "$out" | jget files)" "and reuses every one"

# a file rewritten in place, same size, mtime put back: ctime moved
m=$(stat -c %.9Y "$C/src/a/m3.py")
echo "MODULE 3" > "$C/src/a/m3.py"
touch -d "@$m" "$C/src/a/m3.py"
check "same-size edit, mtime restored" partial
settle
check "settled after the edit" hit
echo "a longer module 4" >> "$C/src/a/m4.py"
out=$(h "$C")
is "$(echo "$out" | jget snapshot)" partial "an appended file: partial"
is "$(echo "$out" | jget hashed)" 1 "and only that file is read"
settle
chmod +x "$C/src/b/p2.ts"
check "an exec bit set" partial
settle

# names added, removed, renamed; types changed
echo new > "$C/src/b/new.ts"
check "a file added" walked
settle
rm "$C/src/b/p5.ts"
check "a file removed" walked
settle
mv "$C/src/b/p6.ts" "$C/src/b/p6-renamed.ts"
check "a file renamed" walked
settle
mkdir "$C/docs/empty"
check "an empty directory added" walked
settle
rm "$C/link" && ln -s src/b/p1.ts "$C/link"
check "a symlink pointed elsewhere" walked
settle
rm "$C/src/a/m7.py" && mkdir "$C/src/a/m7.py"
check "a file replaced by a directory" walked
settle
echo "new top" > "$C/top.txt"
check "a file added at the root" walked
settle
check "settled" hit

# what is excluded is not watched, and need not be
echo "more" > "$C/skip/deep/y"
check "a file added below an excluded directory" hit
echo "debug" > "$C/src/a/trace.log"
check "an excluded file added (its directory changed)" walked
settle

# the ignore file is part of the key
printf 'skip\n*.log\ndocs\n' > "$C/.dockerignore"
check "the ignore file edited" walked
settle
check "and settled" hit
printf 'skip\n*.log\n' > "$C/.dockerignore"
settle
# with an exception a pruned directory could hold included files: no
# snapshot is used
printf 'skip\n!skip/deep/x\n' > "$TESTDIR/exc.ignore"
fresh --ignore-file "$TESTDIR/exc.ignore" "$C" > "$TESTDIR/exc.want"
for k in 1 2; do
	out=$(h --ignore-file "$TESTDIR/exc.ignore" "$C")
	is "$(echo "$out" | jget snapshot)" walked "an ignore file with an exception: walked ($k)"
	is "$(echo "$out" | jget digest)" "$(cat "$TESTDIR/exc.want")" "and the right digest ($k)"
done
# a Dockerfile-specific ignore file keys its own snapshot
echo FROM scratch > "$C/api.Dockerfile"
printf 'src/b\n' > "$C/api.Dockerfile.dockerignore"
sleep 0.3
h -f "$C/api.Dockerfile" "$C" >/dev/null
h -f "$C/api.Dockerfile" "$C" >/dev/null
out=$(h -f "$C/api.Dockerfile" "$C")
is "$(echo "$out" | jget snapshot)" hit "-f with its own ignore file: a snapshot of its own"
is "$(echo "$out" | jget digest)" "$(fresh -f "$C/api.Dockerfile" "$C")" "with the right digest"
settle
check "the root context's snapshot is still there" hit

# a damaged snapshot is not used
for f in "$I"/snapshots/*; do
	printf 'garbage' | dd of="$f" bs=1 seek=600 conv=notrunc 2>/dev/null
done
check "a damaged snapshot" walked
settle
for f in "$I"/snapshots/*; do
	truncate -s 100 "$f"
done
check "a truncated snapshot" walked
settle
check "and a new one written" hit

# a forged snapshot (checksum recomputed) whose first entry is ".." with
# the stat ".." has, so that every stat matches, is not used: its entries
# would become archive entries (the layout of x86-64: a 128-byte header,
# the sum at 24, the counts at 56, then struct walk_entry each, then the
# strings); the snapshots of other contexts truncated above are left as
# they are (shorter than a header: nothing to forge)
forged=0
for f in "$I"/snapshots/*; do
[ "$(stat -c %s "$f")" -gt 136 ] || continue
python3 - "$f" "$C" <<'PY' && forged=$((forged + 1))
import os, struct, subprocess, sys
f, ctx = sys.argv[1], sys.argv[2]
b = bytearray(open(f, "rb").read())
n, sl = struct.unpack_from("<QQ", b, 56)
esz = (len(b) - 128 - sl) // n
so = 128 + n * esz
po = struct.unpack_from("<Q", b, 128)[0]
b[so + po:so + po + 3] = b"..\0"
st = os.lstat(os.path.join(ctx, ".."))
e = 128
struct.pack_into("<I", b, e + 16, 2)                 # path_len
b[e + 24] = 2                                        # WALK_DIR
struct.pack_into("<II", b, e + 32, st.st_mode, st.st_nlink)
struct.pack_into("<Qqq", b, e + 40, 0, st.st_mtime_ns, st.st_ctime_ns)
struct.pack_into("<QQ", b, e + 72, st.st_ino, 0)
open(f + ".payload", "wb").write(b[128:])
h = subprocess.run(["xxhsum", "-H2", f + ".payload"], capture_output=True, text=True,
                   check=True).stdout.split()[0]
b[24:40] = bytes.fromhex(h)
open(f, "wb").write(b)
PY
rm -f "$f.payload"
done
ok "a snapshot to forge" test "$forged" -ge 1
check "a forged snapshot naming '..'" walked
settle

# an unreadable file where the snapshot has a readable one: the walk's
# error, as without a snapshot
if [ "$(id -u)" != 0 ]; then
	chmod 000 "$C/src/a/m1.py"
	exits 1 "an unreadable file: exit 1" h "$C"
	like "$(cat "$TESTDIR/.out")" "m1.py" "the error names it"
	chmod 644 "$C/src/a/m1.py"
else
	skip "root reads mode 000 files"
	skip "(same)"
fi
done_testing
