#!/bin/sh
# Peak memory stays under 64 MiB whatever the context's size: a generated
# tree of 4000 files and 100 MB plus one 96 MB file that does not compress,
# a first pack through the cache, then every codec and 1 to 16 threads
# packing cold (max RSS from /usr/bin/time).  bench/pack.sh
# measures it on 100k files.  Not under ASan (its shadow memory).
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
r = random.Random(3)
text = b" ".join(r.choice([b"def", b"return", b"x", b"42", b"import", b"\n"]) for _ in range(1 << 16))
for i in range(4000):
    d = os.path.join(sys.argv[1], "d%02d" % (i % 50), "s%d" % (i % 7))
    os.makedirs(d, exist_ok=True)
    n = r.randrange(1, 50000)
    data = r.randbytes(n) if i % 4 == 0 else (text * (n // len(text) + 1))[:n]
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(data)
PY
head -c 100663296 /dev/urandom > "$C/huge.bin"
limit=65536 # KiB

# the first pack fills the cache; the others pack cold (--no-cache), or
# they would be served from it and measure nothing of the packer
for args in "" "--no-cache" "--no-cache --threads 1" "--no-cache --threads 4" \
	"--no-cache --threads 16" "--no-cache --compress gzip --level 1" "--compress none"; do
	# shellcheck disable=SC2086
	kb=$( { /usr/bin/time -f '%M' "$CTXPACK" pack -q $args -o - "$C" > /dev/null; } 2>&1 | tail -1)
	like "$kb" '^[0-9]+$' "pack $args: measured ($kb KiB)"
	ok "pack $args: peak RSS $kb KiB < 64 MiB" test "$kb" -lt $limit
done

done_testing
