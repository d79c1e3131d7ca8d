#!/bin/sh
# Incremental packing with a damaged store: a cached frame file that is
# truncated, bit-flipped, emptied, replaced by another frame or by a
# directory, and a damaged archive manifest, are caught and the output is
# still exactly a cold pack's, to a file and to a pipe; the damaged files
# are replaced.  Also a store that cannot be written: the pack still works,
# with a warning.
. "$(dirname "$0")/lib.sh"

C=$TESTDIR/ctx
python3 - "$C" <<'PY'
import os, random, sys
root = sys.argv[1]
rnd = random.Random(11)
for i in range(300):
    p = os.path.join(root, "d%d" % (i % 5), "f%03d.bin" % i)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(rnd.randbytes(rnd.randrange(30000, 130000)))
PY
sleep 1
S=$XDG_CACHE_HOME/ctxpack

jget() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
# frames: the frame files, oldest use first
frames() { find "$S/frames" -type f -name '????????????????????????????????' | sort; }
# flip FILE OFFSET: invert one byte in place
flip() {
	python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDWR); off = int(sys.argv[2]) % os.fstat(fd).st_size
b = os.pread(fd, 1, off); os.pwrite(fd, bytes([b[0] ^ 0x10]), off)' "$1" "$2"
}

ctxpack pack -q --no-cache -o "$TESTDIR/cold.zst" "$C"
ctxpack pack --json -o "$TESTDIR/a.zst" "$C" > "$TESTDIR/a.json"
n=$(jget "$TESTDIR/a.json" frames)
is "$(frames | wc -l)" "$n" "every frame stored ($n)"
is "$(ls "$S/archives" | grep -c '^[0-9a-f]\{32\}$')" 1 "one archive manifest"

# check NAME [pipe]: pack through the damaged store; same bytes as cold
check() {
	if [ "${2:-}" = pipe ]; then
		ctxpack pack -q -v -o - "$C" 2> "$TESTDIR/$1.err" | cat > "$TESTDIR/$1.zst"
	else
		ctxpack pack --json -v -o "$TESTDIR/$1.zst" "$C" > "$TESTDIR/$1.json" 2> "$TESTDIR/$1.err"
	fi
	same_files "$TESTDIR/$1.zst" "$TESTDIR/cold.zst" "$1: the same bytes as a cold pack"
}

# the k-th frame file (1-based, in name order)
nth() { frames | sed -n "${1}p"; }

f=$(nth 2)
flip "$f" 5000
check flipped
is "$(jget "$TESTDIR/flipped.json" frames_damaged)" 1 "flipped payload: one damaged frame found"
is "$(jget "$TESTDIR/flipped.json" frames_compressed)" 1 "flipped payload: that frame compressed again"
isnt "$(jget "$TESTDIR/flipped.json" cache)" archive "flipped payload: not served as a whole archive"
check after-flip
is "$(jget "$TESTDIR/after-flip.json" cache)" archive "then: the whole archive again"

# a flip in each frame in turn, whatever its position (whole-archive
# reuse may have sent the frames before it when it finds it)
bad=0
for f in $(frames); do
	flip "$f" 60
	ctxpack pack -q -o "$TESTDIR/each.zst" "$C"
	cmp -s "$TESTDIR/each.zst" "$TESTDIR/cold.zst" || bad=$((bad + 1))
	ctxpack pack -q -o - "$C" | cmp -s - "$TESTDIR/cold.zst" || bad=$((bad + 1))
done
is "$bad" 0 "a flip in any one frame: the output stays right (file and pipe)"

f=$(nth 3)
flip "$f" 20
check header
is "$(jget "$TESTDIR/header.json" frames_damaged)" 1 "flipped header: caught"

# the largest frame file (cut to 1000 bytes: the small end-of-archive
# frame would be extended instead)
f=$(ls -S $(frames) | head -1)
truncate -s 1000 "$f"
check truncated
is "$(jget "$TESTDIR/truncated.json" frames_compressed)" 1 "truncated: that frame compressed again"
ok "truncated: replaced by a whole frame file" test "$(stat -c %s "$f")" -gt 1000

f=$(nth 1)
: > "$f"
check emptied pipe

# one frame's file holding another frame's (valid) bytes
a=$(nth 2); b=$(nth 3)
cp "$a" "$TESTDIR/keep"
cp "$b" "$a"
check swapped
is "$(jget "$TESTDIR/swapped.json" frames_damaged)" 1 "another frame's file under a key: caught"

f=$(nth 5)
rm "$f"; mkdir "$f"
check directory
rmdir "$f" 2>/dev/null
check directory-gone

# the whole-archive manifest damaged: it is dropped, the frames serve
m=$(ls "$S/archives"/???????????????????????????????? | head -1)
flip "$m" 130
check manifest
isnt "$(jget "$TESTDIR/manifest.json" cache)" archive "damaged manifest: not used"
is "$(jget "$TESTDIR/manifest.json" frames_compressed)" 0 "damaged manifest: the frames still reused"
is "$(jget "$TESTDIR/manifest.json" archive_stored)" True "damaged manifest: written anew"
check manifest-after
is "$(jget "$TESTDIR/manifest-after.json" cache)" archive "then: the whole archive again"
m=$(ls "$S/archives"/???????????????????????????????? | head -1)
truncate -s 50 "$m"
check manifest-truncated
isnt "$(jget "$TESTDIR/manifest-truncated.json" cache)" archive "truncated manifest: not used"

# every frame gone
rm -rf "$S/frames"
check no-frames
is "$(jget "$TESTDIR/no-frames.json" frames_compressed)" "$n" "frames gone: all compressed again"

# a store that cannot be written
rm -rf "$S/frames" "$S/archives"
mkdir "$S/frames" "$S/archives"
chmod 555 "$S/frames" "$S/archives"
if [ "$(id -u)" = 0 ]; then
	skip "root writes into read-only directories"
	skip "root writes into read-only directories"
else
	check readonly
	like "$(cat "$TESTDIR/readonly.err")" "warning: cannot store a frame" "read-only store: a warning"
fi
chmod 755 "$S/frames" "$S/archives"
# the store path taken by a file
rm -rf "$S/frames" "$S/archives"
: > "$S/frames"
check store-is-file
like "$(cat "$TESTDIR/store-is-file.err")" "warning: cannot store a frame" "store path is a file: a warning"
rm -f "$S/frames"
check recovered
is "$(find "$S" -name '*.tmp.*' | wc -l)" 0 "no temporary files left in the store"

done_testing
