#!/bin/sh
# ctxpack hash and pack with the index on a full disk, on a small tmpfs and
# on a loop-mounted ext4 (skipped where they cannot be mounted: not root,
# no loop devices): no room to create the index, no room to write to it,
# the disk filling up during a cold run.  Never a crash (LMDB writes its
# lock file through a map: a SIGBUS before), the right digest, a warning
# naming the index, and once there is room again an index that works.
. "$(dirname "$0")/lib.sh"

jget() { sed -n 's/.*"'"$1"'":\("\([^"]*\)"\|\([0-9]*\)\).*/\2\3/p'; }

C=$TESTDIR/ctx
python3 - "$C" <<'PY'
import sys
from tree import writer
w = writer(sys.argv[1])
for i in range(6000):
    w("d%02d/f%05d" % (i % 40, i), b"%d" % i)
PY
sleep 0.3
want=$(ctxpack hash --index "$TESTDIR/fresh" "$C")
ctxpack pack -q --no-cache -o "$TESTDIR/cold.zst" "$C"

# fill M: no free block left on the filesystem at M
fill() {
	i=0
	while head -c 1048576 /dev/zero > "$1/fill.$i" 2>/dev/null; do i=$((i + 1)); done
	# the last, partial one took what was left; smaller writes the rest
	while head -c 4096 /dev/zero >> "$1/fill.$i" 2>/dev/null; do :; done
	sync
}
unfill() { rm -f "$1"/fill.*; sync; }

# cases NAME M: the index at M/index on a filesystem of a few MiB
cases() {
	n=$1; M=$2; I=$M/index
	nospace="^ctxpack: warning: cannot use the index $I: no room for $I/(lock|data)\.mdb .*; hashing without it$"

	# no room to create it
	mkdir -p "$I"; fill "$M"
	out=$(ctxpack hash --json --index "$I" "$C" 2>"$TESTDIR/err"); rc=$?
	is "$rc" 0 "$n, full, no index yet: exit 0"
	is "$(echo "$out" | jget digest)" "$want" "$n, full, no index yet: the right digest"
	like "$(cat "$TESTDIR/err")" "$nospace" "$n, full, no index yet: a warning names it"
	ctxpack pack --index "$I" -o "$TESTDIR/p.zst" "$C" 2>"$TESTDIR/err"
	is "$?" 0 "$n, full, no index yet: pack exits 0"
	same_files "$TESTDIR/p.zst" "$TESTDIR/cold.zst" "$n, full, no index yet: pack writes the bytes of a cold pack"
	unfill "$M"
	out=$(ctxpack hash --json --index "$I" "$C" 2>"$TESTDIR/err")
	is "$(echo "$out" | jget digest)/$(cat "$TESTDIR/err")" "$want/" "$n, room again: the index is made, no warning"
	out=$(ctxpack hash --json --index "$I" "$C" 2>"$TESTDIR/err")
	is "$(echo "$out" | jget hashed)/$(cat "$TESTDIR/err")" "0/" "$n, room again: and used"

	# an index whose lock file is gone, and no room for a new one
	rm -f "$I/lock.mdb"; fill "$M"
	out=$(ctxpack hash --json --index "$I" "$C" 2>"$TESTDIR/err"); rc=$?
	is "$rc/$(echo "$out" | jget digest)" "0/$want" "$n, full, no lock file: exit 0, the right digest"
	like "$(cat "$TESTDIR/err")" "$nospace" "$n, full, no lock file: a warning names it"
	unfill "$M"

	# no room to write: the changes are hashed, not stored
	ctxpack hash --index "$I" "$C" >/dev/null 2>&1
	fill "$M"
	for i in 1 2 3 4 5 6 7 8 9; do echo "new $i" > "$C/d0$i/new"; done
	want2=$(ctxpack hash --index "$TESTDIR/fresh" "$C")
	out=$(ctxpack hash --json --index "$I" "$C" 2>"$TESTDIR/err"); rc=$?
	is "$rc/$(echo "$out" | jget digest)" "0/$want2" "$n, full, files added: exit 0, the right digest"
	like "$(cat "$TESTDIR/err")" "^ctxpack: warning: cannot update the index $I: " "$n, full, files added: a warning names it"
	unfill "$M"
	sleep 0.3
	out=$(ctxpack hash --json --index "$I" "$C" 2>"$TESTDIR/err")
	is "$(echo "$out" | jget digest)/$(cat "$TESTDIR/err")" "$want2/" "$n, room again: the index works, no warning"
	out=$(ctxpack hash --json --index "$I" "$C")
	is "$(echo "$out" | jget hashed)" 0 "$n, room again: and is used"
	rm -f "$C"/d0?/new

	# the disk fills up during a cold run (300 KiB left: room for part of
	# the index)
	rm -rf "$I"; mkdir -p "$I"
	fill "$M"; rm -f "$M/fill.0"
	head -c $(( (1024 - 300) * 1024 )) /dev/zero > "$M/fill.0"; sync
	out=$(ctxpack hash --json --index "$I" "$C" 2>"$TESTDIR/err"); rc=$?
	is "$rc/$(echo "$out" | jget digest)" "0/$want" "$n, filling up during a cold run: exit 0, the right digest"
	like "$(cat "$TESTDIR/err")" "^ctxpack: warning: cannot update the index $I: " "$n, filling up: a warning names it"
	unfill "$M"
	out=$(ctxpack hash --json --index "$I" "$C" 2>"$TESTDIR/err")
	is "$(echo "$out" | jget digest)/$(cat "$TESTDIR/err")" "$want/" "$n, room again: what was committed is sound, no warning"
	out=$(ctxpack hash --json --index "$I" "$C")
	is "$(echo "$out" | jget hashed)" 0 "$n, room again: and is used"
	rm -rf "$I"
}

T=$TESTDIR/tmpfs
mkdir -p "$T"
if mount -t tmpfs -o size=2m tmpfs "$T" 2>/dev/null; then
	at_exit "umount '$T'"
	cases tmpfs "$T"
	umount "$T"
else
	skip "cannot mount a tmpfs (not root?): the tmpfs cases"
fi

E=$TESTDIR/ext4
mkdir -p "$E"
truncate -s 8M "$TESTDIR/ext4.img"
if command -v mkfs.ext4 >/dev/null && mkfs.ext4 -q -F "$TESTDIR/ext4.img" >/dev/null 2>&1 &&
	mount -o loop "$TESTDIR/ext4.img" "$E" 2>/dev/null; then
	at_exit "umount '$E'"
	cases ext4 "$E"
	umount "$E"
else
	skip "cannot mount a loop ext4 (not root, no loop device, no mkfs.ext4): the ext4 cases"
fi

done_testing
