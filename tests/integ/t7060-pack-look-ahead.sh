#!/bin/sh
# The look-ahead of an incremental pack: when the walk meets a file
# changed since the last archive was made, the frame holding it is made
# again and the rest of the archive hashed and written while the walk goes
# on ("bytes_ahead" in --json).  It is taken only when the new archive's
# frame keys say it is right: whatever the change (an edit, a mode change,
# edits in two frames, an edit beside an added file, a directory swapped
# for a symlink, a damaged frame after the edit, a file too big for it),
# the output has the bytes and sha256 of a cold --no-cache pack.
. "$(dirname "$0")/lib.sh"

C=$TESTDIR/ctx
# About 20 MB of noise in 240 files (f<i> in d<i%6>/e<i%3>) and a 2 MiB
# file in the last frame: several frames.
python3 - "$C" <<'PY'
import os, random, sys
from tree import writer
root = sys.argv[1]
rnd = random.Random(11)
w = writer(root)
for i in range(240):
    w("d%d/e%d/f%03d.bin" % (i % 6, i % 3, i), rnd.randbytes(rnd.randrange(30000, 130000)))
w("z/big.bin", rnd.randbytes(2 << 20))
w("Dockerfile", b"FROM scratch\nCOPY . /ctx/\n")
PY
mkdir "$TESTDIR/outside"
for f in "$C"/d4/e1/*; do
	echo SECRET > "$TESTDIR/outside/$(basename "$f")"
done
sleep 0.3 # out of the racy window

jget() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get(sys.argv[2]))' "$1" "$2"; }

# check NAME: pack through the cache and cold, compare (lib.sh)
check() { pack_same "$1" "$C"; }
ahead() { jget "$TESTDIR/$1.json" bytes_ahead; }
# settle: let the last edit age past the racy window and store the archive
settle() { sleep 0.3; check "$1"; }

check cold
frames=$(jget "$TESTDIR/cold.json" frames)
ok "cold: several frames ($frames)" test "$frames" -ge 5
check warm
is "$(ahead warm)" 0 "unchanged: nothing to look ahead for"

head -c 20000 /dev/urandom > "$C/d2/e2/f110.bin"
check edit
ok "edit: the rest of the archive made while walking ($(ahead edit) bytes)" test "$(ahead edit)" -gt 0
is "$(jget "$TESTDIR/edit.json" frames_compressed)" 1 "edit: one frame compressed"
is "$(jget "$TESTDIR/edit.json" cache)" assemble "edit: from the last archive"
head -c 20000 /dev/urandom > "$C/d2/e2/f110.bin"
check edit-again
ok "edit again (the last archive kept is the one before): looked ahead" test "$(ahead edit-again)" -gt 0
settle edit-settled
# stored now, or already by the run before when it came after the racy
# window (a slow run: ASan on a busy machine), and then served whole
if [ "$(jget "$TESTDIR/edit-again.json" archive_stored)" = True ]; then
	is "$(jget "$TESTDIR/edit-settled.json" cache)" archive \
		"edit, settled: the archive (stored by the run before) served whole"
else
	is "$(jget "$TESTDIR/edit-settled.json" archive_stored)" True "edit, settled: the archive stored"
fi

# (rewritten at its size: a file that shrinks by most of a frame's AVG
# can move the cut after it, and the frame made again is then another)
n=$(stat -c %s "$C/d0/e0/f000.bin")
head -c "$n" /dev/urandom > "$C/d0/e0/f000.bin"
check first
ok "an edit in the first frame: looked ahead" test "$(ahead first)" -gt 0
settle first-settled

chmod 755 "$C/d3/e0/f099.bin"
check chmod
ok "a mode change: looked ahead" test "$(ahead chmod)" -gt 0
settle chmod-settled

head -c 5000 /dev/urandom > "$C/d1/e1/f013.bin"
head -c 5000 /dev/urandom > "$C/d5/e2/f227.bin"
check two
is "$(ahead two)" 0 "edits in two frames: the look-ahead not taken"
settle two-settled

head -c 5000 /dev/urandom > "$C/d2/e2/f104.bin"
head -c 5000 /dev/urandom > "$C/d2/e2/f104a.bin"
check added
settle added-settled

# a directory of the changed frame swapped for a symlink to files outside
# the context: the look-ahead opens nothing through it
head -c 5000 /dev/urandom > "$C/d4/e1/f010.bin"
mv "$C/d4/e1" "$TESTDIR/e1.moved"
ln -s "$TESTDIR/outside" "$C/d4/e1"
check symlink
ok "symlinked directory: nothing from outside in the archive" \
	sh -c "! zstd -dc '$TESTDIR/symlink.zst' | grep -q SECRET"
rm "$C/d4/e1"
mv "$TESTDIR/e1.moved" "$C/d4/e1"
settle symlink-settled

# the last archive's frame before the end-of-archive frame damaged in the
# store (the manifest: a 128-byte header, then 80 bytes a frame, its key
# first)
damaged=$(python3 - "$XDG_CACHE_HOME/ctxpack" <<'PY'
import glob, os, sys
d = sys.argv[1]
last = glob.glob(os.path.join(d, "archives", "last-*"))
assert len(last) == 1, last
man = os.path.join(d, "archives", open(last[0], "rb").read()[8:24].hex())
b = open(man, "rb").read()
n = int.from_bytes(b[24:32], "little")
key = b[128 + (n - 2) * 80:128 + (n - 2) * 80 + 16].hex()
p = os.path.join(d, "frames", key[:2], key)
os.truncate(p, os.path.getsize(p) - 100)
print(p)
PY
)
ok "a stored frame damaged (${damaged#"$XDG_CACHE_HOME"/})" test -f "$damaged"
head -c 5000 /dev/urandom > "$C/d0/e0/f006.bin"
check damaged
ok "a damaged frame after the change: caught ($(jget "$TESTDIR/damaged.json" frames_damaged))" \
	test "$(jget "$TESTDIR/damaged.json" frames_damaged)" -ge 1
settle damaged-settled

# a file over PACK_SMALL_FILE in the changed frame: no look-ahead
head -c 2097152 /dev/urandom > "$C/z/big.bin"
check big
is "$(ahead big)" 0 "a 2 MiB file in the frame: not looked ahead"

# a file touched, its content the same: the same archive; the next pack
# knows the tree matched it and sees nothing changed
sleep 0.3 # out of the racy window
check before-touch
touch "$C/d2/e2/f110.bin"
sleep 0.3 # out of the racy window
check touched
ok "touched: seen changed ($(jget "$TESTDIR/touched.json" seen_changed))" \
	test "$(jget "$TESTDIR/touched.json" seen_changed)" -ge 1
is "$(jget "$TESTDIR/touched.json" cache)" archive "touched: the same archive"
check touched-again
is "$(jget "$TESTDIR/touched-again.json" seen_changed)" 0 "touched, then unchanged: nothing seen changed"
is "$(jget "$TESTDIR/touched-again.json" bytes_early)" "$(jget "$TESTDIR/touched-again.json" bytes)" \
	"touched, then unchanged: all of it copied while walking"

# to a pipe there is no copy, so no look-ahead
head -c 5000 /dev/urandom > "$C/d2/e2/f110.bin"
ctxpack pack -q -o - "$C" | cat > "$TESTDIR/pipe.zst"
ctxpack pack -q --no-cache -o "$TESTDIR/pipe.cold.zst" "$C"
same_files "$TESTDIR/pipe.zst" "$TESTDIR/pipe.cold.zst" "into a pipe: the same bytes"

done_testing
