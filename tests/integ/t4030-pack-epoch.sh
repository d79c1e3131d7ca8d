#!/bin/sh
# ctxpack pack and SOURCE_DATE_EPOCH: every entry gets the epoch (or the
# fixed default, 2000-01-01), whatever the files' own mtimes (no clamping);
# a malformed or out-of-range value is an error, never ignored.
. "$(dirname "$0")/lib.sh"

C=$TESTDIR/ctx
mkdir -p "$C/dir/sub" "$C/empty"
echo old > "$C/old.txt"
echo new > "$C/dir/new.txt"
echo sub > "$C/dir/sub/f"
ln -s old.txt "$C/link"
touch -d '1990-01-01 00:00:00.5' "$C/old.txt"
touch -d '2040-06-01 12:00:00.25' "$C/dir/new.txt"
touch -h -d '1985-01-01' "$C/link"

# mtimes ARCHIVE: the distinct mtimes and the pax records in the archive
mtimes() {
	python3 - "$1" <<'PY'
import sys, tarfile
t = tarfile.open(sys.argv[1])
ms = t.getmembers()
print(" ".join(sorted({str(m.mtime) for m in ms})),
      len(ms), sorted({k for m in ms for k in m.pax_headers}))
PY
}

ctxpack pack -q -o "$TESTDIR/default.zst" "$C"
zstd -dqc "$TESTDIR/default.zst" > "$TESTDIR/default.tar"
is "$(mtimes "$TESTDIR/default.tar")" "946684800 7 []" "unset: every entry at 2000-01-01T00:00:00Z"

SOURCE_DATE_EPOCH=1700000000 ctxpack pack -q --compress none -o "$TESTDIR/e1.tar" "$C"
is "$(mtimes "$TESTDIR/e1.tar")" "1700000000 7 []" "set: every entry at the epoch, files older and newer alike"
SOURCE_DATE_EPOCH=0 ctxpack pack -q --compress none -o "$TESTDIR/e0.tar" "$C"
is "$(mtimes "$TESTDIR/e0.tar")" "0 7 []" "0 is a valid epoch"
SOURCE_DATE_EPOCH=2147483646 ctxpack pack -q --compress none -o "$TESTDIR/emax.tar" "$C"
is "$(mtimes "$TESTDIR/emax.tar")" "2147483646 7 []" "up to 2^31-2 no pax record"
SOURCE_DATE_EPOCH=4102444800 ctxpack pack -q --compress none -o "$TESTDIR/e2100.tar" "$C"
is "$(mtimes "$TESTDIR/e2100.tar")" "4102444800.0 7 ['mtime']" "2100: a pax mtime record (libarchive's rule)"
is "$(tar --full-time -tvf "$TESTDIR/e1.tar" | awk '{print $4 "T" $5}' | sort -u)" \
	"2023-11-14T22:13:20" "GNU tar shows the epoch"

# same epoch, other file mtimes: same bytes
cp -r "$C" "$TESTDIR/copy"
find "$TESTDIR/copy" -exec touch -h -d '2011-11-11' {} +
d1=$(SOURCE_DATE_EPOCH=1700000000 ctxpack pack -q -o - "$C" | sha256sum)
d2=$(SOURCE_DATE_EPOCH=1700000000 ctxpack pack -q -o - "$TESTDIR/copy" | sha256sum)
is "$d2" "$d1" "other file mtimes, same epoch: same bytes"
d3=$(SOURCE_DATE_EPOCH=1700000001 ctxpack pack -q -o - "$C" | sha256sum)
isnt "$d3" "$d1" "another epoch: other bytes"
is "$(ctxpack pack -q -o - "$C" | sha256sum)" "$(SOURCE_DATE_EPOCH=946684800 ctxpack pack -q -o - "$C" | sha256sum)" \
	"unset equals SOURCE_DATE_EPOCH=946684800"

for bad in "" abc " 1" "1 " 1.5 -1 +1 1e9 0x10 253402300800 99999999999999999999999; do
	SOURCE_DATE_EPOCH=$bad ctxpack pack -o "$TESTDIR/bad.zst" "$C" > "$TESTDIR/out" 2>&1
	rc=$?
	is "$rc $(grep -c SOURCE_DATE_EPOCH "$TESTDIR/out")" "2 1" "SOURCE_DATE_EPOCH='$bad' is refused, naming it"
done
ok "nothing written for a refused epoch" test ! -e "$TESTDIR/bad.zst"
SOURCE_DATE_EPOCH=abc ctxpack build "$C" -- cat > /dev/null 2>&1
is "$?" 2 "build refuses a malformed epoch too"
SOURCE_DATE_EPOCH=1700000000 ctxpack build -q --compress zstd "$C" -- sh -c 'cat > "$0"' "$TESTDIR/built.zst"
is "$(sha256sum < "$TESTDIR/built.zst")" "$d1" "build uses the epoch"

done_testing
