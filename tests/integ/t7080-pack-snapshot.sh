#!/bin/sh
# pack and build with snapshots (issue 15): an unchanged context is
# replayed from its snapshot without reading a directory or the index,
# a file rewritten in place from the snapshot and that file, anything else
# is walked; the archive is always the bytes of a cold --no-cache pack.
. "$(dirname "$0")/lib.sh"

C=$TESTDIR/ctx
python3 - "$C" <<'PY'
import random, sys
from tree import writer
rnd = random.Random(15)
w = writer(sys.argv[1])
for i in range(600):
    w("src/d%d/f%03d.txt" % (i % 9, i), (b"line %d\n" % i) * rnd.randrange(10, 900))
w("Dockerfile", b"FROM scratch\nCOPY . /ctx/\n")
w(".dockerignore", b"*.log\n")
w("build.log", b"excluded\n")
PY
sleep 0.3 # older than the racy window

jget() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get(sys.argv[2]))' "$1" "$2"; }
check() { # NAME WANT: the same bytes as cold, and the snapshot answer
	pack_same "$1" "$C"
	is "$(jget "$TESTDIR/$1.json" snapshot)" "$2" "$1: snapshot $2"
}

check first walked
ok "first: a snapshot is written" test -n "$(ls "$XDG_CACHE_HOME/ctxpack/index/snapshots")"
check warm hit
is "$(jget "$TESTDIR/warm.json" cache)" archive "warm: the whole archive reused"
is "$(jget "$TESTDIR/warm.json" files_hashed)" 0 "warm: no file read"
is "$(jget "$TESTDIR/warm.json" files_reused)" 602 "warm: every file's hash from the snapshot"

f=$C/src/d4/f040.txt
m=$(stat -c %.9Y "$f")
python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[0:4]=b"LINE"; open(p,"wb").write(b)' "$f"
touch -d "@$m" "$f"
check edit partial
is "$(jget "$TESTDIR/edit.json" files_hashed)" 1 "edit: only the edited file read"
sleep 0.3
check settled partial   # the edit was racy when last packed: read once more
check settled2 hit

echo new > "$C/src/d2/new.txt"
check added walked
sleep 0.3
check added2 walked     # the addition was racy when last packed: no snapshot then
check added3 hit

# a snapshot written by `hash` serves `pack` (the same walk) and back
rm -rf "$XDG_CACHE_HOME/ctxpack/index/snapshots"
ctxpack hash "$C" > /dev/null
check after-hash hit
out=$(ctxpack hash --json "$C")
like "$out" '"snapshot":"hit"' "and pack's serves hash"

# build: the same archive on COMMAND's standard input
ctxpack build -q --compress zstd "$C" -- sh -c 'cat > "$1"' sh "$TESTDIR/built.zst"
same_files "$TESTDIR/built.zst" "$TESTDIR/after-hash.cold.zst" "build: the bytes of a cold pack"

# the other walk flavours keep snapshots of their own: walked the first
# time (the default flavour's is not theirs), then replayed, the bytes of a
# cold pack with the same option
for fl in --classic --no-hardlinks --normalize-modes; do
	n=flag${fl#--}
	ctxpack pack --json $fl -o "$TESTDIR/$n.1.zst" "$C" > "$TESTDIR/$n.1.json"
	ctxpack pack --json $fl -o "$TESTDIR/$n.2.zst" "$C" > "$TESTDIR/$n.2.json"
	ctxpack pack -q --no-cache $fl -o "$TESTDIR/$n.cold.zst" "$C"
	is "$(jget "$TESTDIR/$n.1.json" snapshot) $(jget "$TESTDIR/$n.2.json" snapshot)" \
		"walked hit" "pack $fl: walked, then from its own snapshot"
	same_files "$TESTDIR/$n.2.zst" "$TESTDIR/$n.cold.zst" "pack $fl: the bytes of a cold pack"
done

# --no-cache neither reads nor writes snapshots
rm -rf "$XDG_CACHE_HOME/ctxpack/index/snapshots"
ctxpack pack -q --no-cache -o "$TESTDIR/nc.zst" "$C"
ok "--no-cache writes no snapshot" test ! -e "$XDG_CACHE_HOME/ctxpack/index/snapshots"
done_testing
