#!/bin/sh
# Incremental packing: the store's size bound (--cache-max,
# CTXPACK_PACK_CACHE_MAX) evicts the least recently used frames and
# manifests; the options and where the index and the store live (--index,
# CTXPACK_INDEX, never inside the context).
. "$(dirname "$0")/lib.sh"

S=$XDG_CACHE_HOME/ctxpack
# mk DIR SEED: about 7 MB of noise in 70 files (one or two frames)
mk() {
	python3 - "$1" "$2" <<'PY'
import os, random, sys
root, seed = sys.argv[1], int(sys.argv[2])
rnd = random.Random(seed)
for i in range(70):
    p = os.path.join(root, "d%d" % (i % 4), "f%03d.bin" % i)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(rnd.randbytes(100000))
PY
}
jget() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
store_bytes() { find "$S/frames" "$S/archives" -type f ! -name usage -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }

mk "$TESTDIR/A" 1; mk "$TESTDIR/B" 2; mk "$TESTDIR/C" 3; mk "$TESTDIR/D" 4
sleep 1
for t in A B C D; do
	ctxpack pack -q --no-cache -o "$TESTDIR/$t.cold" "$TESTDIR/$t"
done

# pack T [options]: through the cache with a 20 MiB bound; summary in T.json
pack() {
	t=$1; shift
	ctxpack pack --json --cache-max 20M "$@" -o "$TESTDIR/$t.zst" "$TESTDIR/$t" > "$TESTDIR/$t.json"
	same_files "$TESTDIR/$t.zst" "$TESTDIR/$t.cold" "$t: the same bytes as cold"
}

pack A
pack B
is "$(jget "$TESTDIR/B.json" evicted)" 0 "A and B fit: nothing evicted"
sleep 1.1   # atime resolution: keep the uses apart
pack A
is "$(jget "$TESTDIR/A.json" cache)" archive "A again: the whole archive (and its files marked used)"
sleep 1.1
pack C
ok "C: over the bound, files evicted ($(jget "$TESTDIR/C.json" evicted))" \
	test "$(jget "$TESTDIR/C.json" evicted)" -gt 0
ok "the store is within the bound ($(store_bytes) bytes)" test "$(store_bytes)" -le $((20 << 20))
pack A
is "$(jget "$TESTDIR/A.json" cache)" archive "A, used recently: kept"
pack C
is "$(jget "$TESTDIR/C.json" cache)" archive "C, the newest: kept"
pack B
ok "B, the least recently used: (partly) evicted" \
	test "$(jget "$TESTDIR/B.json" frames_compressed)" -ge 1

# the environment variable, and a bound smaller than one archive
rm -rf "$S"
CTXPACK_PACK_CACHE_MAX=3M ctxpack pack --json -o "$TESTDIR/D.zst" "$TESTDIR/D" > "$TESTDIR/D.json"
same_files "$TESTDIR/D.zst" "$TESTDIR/D.cold" "CTXPACK_PACK_CACHE_MAX=3M: the same bytes"
ok "CTXPACK_PACK_CACHE_MAX=3M: within it ($(store_bytes) bytes)" test "$(store_bytes)" -le $((3 << 20))
ok "--cache-max wins over the variable" env CTXPACK_PACK_CACHE_MAX=3M \
	"$CTXPACK" pack -q --cache-max 1G -o "$TESTDIR/D.zst" "$TESTDIR/D"
ok "... and kept everything" test "$(store_bytes)" -gt $((3 << 20))
exits 2 "--cache-max junk: usage error" ctxpack pack --cache-max junk -o "$TESTDIR/x" "$TESTDIR/D"
exits 2 "--cache-max 0: usage error" ctxpack pack --cache-max 0 -o "$TESTDIR/x" "$TESTDIR/D"
exits 2 "CTXPACK_PACK_CACHE_MAX=junk: usage error" \
	env CTXPACK_PACK_CACHE_MAX=junk "$CTXPACK" pack -o "$TESTDIR/x" "$TESTDIR/D"
like "$(cat "$TESTDIR/.out")" "CTXPACK_PACK_CACHE_MAX='junk' is not a size" "... naming it"
ok "--no-cache ignores a bad variable" env CTXPACK_PACK_CACHE_MAX=junk \
	"$CTXPACK" pack -q --no-cache -o "$TESTDIR/x" "$TESTDIR/D"

# where the index lives
rm -rf "$S"
ctxpack pack -q --index "$TESTDIR/idx" -o "$TESTDIR/A.zst" "$TESTDIR/A"
ok "--index DIR: the index is there" test -f "$TESTDIR/idx/data.mdb"
ok "--index DIR: not in the default place" test ! -e "$S/index"
CTXPACK_INDEX=$TESTDIR/idx2 ctxpack pack -q -o "$TESTDIR/A.zst" "$TESTDIR/A"
ok "CTXPACK_INDEX: the index is there" test -f "$TESTDIR/idx2/data.mdb"
ctxpack pack --json --index "$TESTDIR/idx" -o "$TESTDIR/A.zst" "$TESTDIR/A" > "$TESTDIR/A.json"
is "$(jget "$TESTDIR/A.json" files_hashed)" 0 "the same index again: nothing hashed"
exits 2 "--index inside the context: usage error" \
	ctxpack pack --index "$TESTDIR/A/.idx" -o "$TESTDIR/x" "$TESTDIR/A"
like "$(cat "$TESTDIR/.out")" "inside the context" "... saying why"
# failing after the last archive of A was being copied to the output
ctxpack pack -q -o - "$TESTDIR/A" > "$TESTDIR/spec.out"
printf 'before\n' > "$TESTDIR/spec.out"
"$CTXPACK" pack -q --index "$TESTDIR/A/.idx" -o - "$TESTDIR/A" >> "$TESTDIR/spec.out" 2>/dev/null
is "$(cat "$TESTDIR/spec.out")" before "a failed pack appending to a file leaves it as it was"
exec 3<>"$TESTDIR/spec2.out"
"$CTXPACK" pack -v --index "$TESTDIR/A/.idx" -o - "$TESTDIR/A" >&3 2> "$TESTDIR/spec2.err"
exec 3>&-
like "$(cat "$TESTDIR/spec2.err")" "copying the last archive" "the last archive was being copied to the output"
is "$(wc -c < "$TESTDIR/spec2.out")" 0 "a failed pack leaves the file empty (that copy cut)"
exits 2 "CTXPACK_INDEX inside the context: usage error" \
	env CTXPACK_INDEX="$TESTDIR/A/.idx" "$CTXPACK" pack -o "$TESTDIR/x" "$TESTDIR/A"
ok "... and nothing created there" test ! -e "$TESTDIR/A/.idx"
# the default location inside the context (packing a home directory):
# packed without the cache, with a warning
mkdir -p "$TESTDIR/home"
cp -r "$TESTDIR/A" "$TESTDIR/home/A"
XDG_CACHE_HOME=$TESTDIR/home/.cache ctxpack pack --json -o "$TESTDIR/home.zst" \
	--ignore-file /dev/null "$TESTDIR/home" > "$TESTDIR/home.json" 2> "$TESTDIR/home.err"
is "$(jget "$TESTDIR/home.json" cache)" off "default cache inside the context: packed without it"
like "$(cat "$TESTDIR/home.err")" "warning: .*inside the context .*packing without the cache" "... with a warning"
ok "... and nothing created there" test ! -e "$TESTDIR/home/.cache"
ctxpack pack -q --no-cache --ignore-file /dev/null -o "$TESTDIR/home.cold" "$TESTDIR/home"
same_files "$TESTDIR/home.zst" "$TESTDIR/home.cold" "... the same bytes"
# an index that cannot be opened: packed without the cache
: > "$TESTDIR/notadir"
ctxpack pack --json --index "$TESTDIR/notadir/idx" -o "$TESTDIR/A.zst" "$TESTDIR/A" \
	> "$TESTDIR/A.json" 2> "$TESTDIR/A.err"
is "$(jget "$TESTDIR/A.json" cache)" off "an index that cannot be created: packed without the cache"
like "$(cat "$TESTDIR/A.err")" "warning: .*packing without the cache" "... with a warning"
same_files "$TESTDIR/A.zst" "$TESTDIR/A.cold" "... the same bytes"

done_testing
