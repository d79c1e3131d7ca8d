#!/bin/sh
# Incremental packing keeps the packer's memory bound (64 MiB, t4070): on
# incompressible data (the largest frames), for each path: a first pack,
# the whole archive, the last archive plus two new frames, and frame by
# frame after changes everywhere (max RSS from /usr/bin/time).  Not under
# ASan (its shadow memory).
. "$(dirname "$0")/lib.sh"

if ldd "$CTXPACK" 2>/dev/null | grep -q libasan; then
	skip "ASan build: RSS is not meaningful"; done_testing; exit 0
fi
if [ ! -x /usr/bin/time ]; then
	skip "/usr/bin/time is not installed"; done_testing; exit 0
fi

C=$TESTDIR/ctx
python3 - "$C" <<'PY'
import os, random, sys
r = random.Random(9)
for i in range(600):
    d = os.path.join(sys.argv[1], "d%02d" % (i % 12))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%04d" % i), "wb") as f:
        f.write(r.randbytes(r.randrange(50000, 250000)))
PY
head -c 30000000 /dev/urandom > "$C/d05/large.bin"
sleep 1
limit=65536 # KiB
jget() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get(sys.argv[2]))' "$1" "$2"; }
flip() { python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[7]^=1; open(p,"wb").write(b)' "$1"; }

# run NAME: a pack through the cache; max RSS and the path taken
run() {
	/usr/bin/time -f '%M' -o "$TESTDIR/$1.rss" "$CTXPACK" pack --json -o "$TESTDIR/$1.zst" "$C" \
		> "$TESTDIR/$1.json"
	rss=$(tail -1 "$TESTDIR/$1.rss")
	ok "$1 ($(jget "$TESTDIR/$1.json" cache)): max RSS ${rss} KiB < $limit KiB" test "$rss" -lt $limit
}
run cold
run archive
is "$(jget "$TESTDIR/archive.json" cache)" archive "unchanged: the whole archive"
flip "$C/d00/f0000"; flip "$C/d11/f0599"
sleep 1
run assemble
is "$(jget "$TESTDIR/assemble.json" cache)" assemble "two frames changed: assembled"
for f in "$C"/d*/f0??0; do flip "$f"; done
sleep 1
run frames
is "$(jget "$TESTDIR/frames.json" cache)" frames "changes everywhere: frame by frame"
ctxpack pack -q --no-cache -o "$TESTDIR/cold2.zst" "$C"
same_files "$TESTDIR/frames.zst" "$TESTDIR/cold2.zst" "the same bytes as cold"

done_testing
