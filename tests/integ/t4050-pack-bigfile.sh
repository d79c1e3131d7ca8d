#!/bin/sh
# A file over 8 GiB (a sparse test file with markers at the start, the
# middle and the end): a pax size record, split into frames, read back
# whole by GNU tar, bsdtar and Python's tarfile; the same bytes for any
# thread count.  Holes are not read, so this stays fast.
. "$(dirname "$0")/lib.sh"

C=$TESTDIR/ctx
mkdir -p "$C"
size=$((8 * 1024 * 1024 * 1024 + 4103))
truncate -s "$size" "$C/big.img" || { skip "cannot create a sparse file"; done_testing; exit 0; }
printf HEAD | dd of="$C/big.img" conv=notrunc status=none
printf MID! | dd of="$C/big.img" bs=1 seek=$((4 * 1024 * 1024 * 1024)) conv=notrunc status=none
printf TAIL | dd of="$C/big.img" bs=1 seek=$((size - 4)) conv=notrunc status=none
echo small > "$C/small.txt"

ok "packs a file over 8 GiB" ctxpack pack -q --level 1 -o "$TESTDIR/a.zst" "$C"
like "$(wc -c < "$TESTDIR/a.zst")" '^[0-9]{5,7}$' "and it compresses to little"
is "$(ctxpack pack -q --level 1 --threads 1 -o - "$C" | sha256sum)" "$(sha256sum < "$TESTDIR/a.zst")" \
	"the same bytes with --threads 1"
# GNU tar reads the archive decompressed into a (sparse) file, which it
# can seek through instead of reading 8 GiB from a pipe
zstd -dq "$TESTDIR/a.zst" -o "$TESTDIR/a.tar"
is "$(tar -tvf "$TESTDIR/a.tar" | awk '{print $3, $6}' | tr '\n' ' ')" \
	"$size big.img 6 small.txt " "GNU tar: the size"
rm -f "$TESTDIR/a.tar"
is "$(bsdtar -tvf "$TESTDIR/a.zst" | awk '{print $5, $9}' | tr '\n' ' ')" \
	"$size big.img 6 small.txt " "bsdtar: the size"
# Python: the headers of the big entry (from the start of the stream; a
# full read through a pipe is too slow for a test)
got=$(zstd -dqc "$TESTDIR/a.zst" 2>/dev/null | head -c 65536 | python3 -c '
import io, sys, tarfile
t = tarfile.open(fileobj=io.BytesIO(sys.stdin.buffer.read()), mode="r:")
m = t.next()
print(m.name, m.size, ",".join("%s=%s" % kv for kv in sorted(m.pax_headers.items())),
      t.extractfile(m).read(4).decode())
' 2>&1)
is "$got" "big.img $size size=$size HEAD" "Python tarfile: the header, a pax size record, the data"
# bsdtar extracts it whole, writing holes for zeros (-S): check the size
# and that the data extents hold exactly the markers
mkdir "$TESTDIR/x"
ok "bsdtar extracts it" bsdtar -xSf "$TESTDIR/a.zst" -C "$TESTDIR/x"
got=$(python3 - "$TESTDIR/x/big.img" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
pos, marks = 0, []
while pos < size:
    try:
        d = os.lseek(fd, pos, os.SEEK_DATA)
    except OSError:
        break
    h = os.lseek(fd, d, os.SEEK_HOLE)
    if h - d > 64 << 20:
        print("a data extent of", h - d); sys.exit(1)
    b = os.pread(fd, h - d, d)
    marks += [(d + i, chr(c)) for i, c in enumerate(b) if c]
    pos = h
print(size, "".join(c for _, c in marks), marks[4][0], marks[-1][0])
PY
)
is "$got" "$size HEADMID!TAIL 4294967296 $((size - 1))" "bsdtar: the data, markers in place"
is "$(cat "$TESTDIR/x/small.txt")" small "bsdtar: the file after it"

done_testing
