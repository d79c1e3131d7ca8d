#!/bin/sh
# Files that change while they are packed: a background writer keeps
# rewriting (and resizing) a large and a small file while the context is
# packed again and again.  Every pack either fails naming a changed file
# (found by the index while hashing, or by the packer while reading),
# leaving nothing under -o FILE, or gives a well-formed archive whose data
# agree with its headers.
. "$(dirname "$0")/lib.sh"

C=$TESTDIR/ctx
mkdir -p "$C/a"
python3 - "$C" <<'PY'
import os, random, sys
r = random.Random(1)
for i in range(40):
    with open(os.path.join(sys.argv[1], "a", "f%02d" % i), "wb") as f:
        f.write(r.randbytes(200000))
with open(os.path.join(sys.argv[1], "big.bin"), "wb") as f:
    f.write(r.randbytes(24 << 20))
with open(os.path.join(sys.argv[1], "small.txt"), "wb") as f:
    f.write(b"s" * 5000)
with open(os.path.join(sys.argv[1], "zz-last"), "wb") as f:
    f.write(b"last\n")
PY

# the writer: rewrites parts of big.bin, sometimes shrinks or grows it,
# and rewrites small.txt with another size, until told to stop
python3 - "$C" "$TESTDIR/stop" <<'PY' &
import os, random, sys, time
root, stop = sys.argv[1], sys.argv[2]
r = random.Random(2)
big = os.path.join(root, "big.bin")
small = os.path.join(root, "small.txt")
t0 = time.time()
while not os.path.exists(stop) and time.time() - t0 < 50:
    with open(big, "r+b") as f:
        if r.random() < 0.2:
            f.truncate(r.choice([12, 20, 24]) << 20)
        f.seek(r.randrange(12 << 20))
        f.write(r.randbytes(1 << 16))
    with open(small, "wb") as f:
        f.write(b"t" * r.choice([5000, 7000]))
    time.sleep(r.choice([0.001, 0.05, 0.2]))
PY
writer=$!
at_exit "touch '$TESTDIR/stop'; kill $writer 2>/dev/null; wait $writer 2>/dev/null"

failed=0 good=0 bad=0 other=0
i=0
while [ $i -lt 12 ]; do
	i=$((i + 1))
	t=$(( (i % 3) + 1 ))
	out=$TESTDIR/out$i.zst
	if ctxpack pack -q --threads $t -o "$out" "$C" 2> "$TESTDIR/err$i"; then
		if zstd -dqc "$out" | python3 -c '
import sys, tarfile
t = tarfile.open(fileobj=sys.stdin.buffer, mode="r|")
n = 0
for m in t:
    n += 1
    if m.isreg():
        data = t.extractfile(m).read()
        assert len(data) == m.size, (m.name, len(data), m.size)
assert n == 44, n
' 2> "$TESTDIR/check$i"; then
			good=$((good + 1))
		else
			bad=$((bad + 1)); diag "run $i: $(cat "$TESTDIR/check$i")"
		fi
	elif grep -qE "file changed while being (packed|read): (big\.bin|small\.txt)" "$TESTDIR/err$i"; then
		failed=$((failed + 1))
		[ -e "$out" ] && bad=$((bad + 1)) && diag "run $i: $out left behind"
	else
		other=$((other + 1)); diag "run $i: $(cat "$TESTDIR/err$i")"
	fi
done
touch "$TESTDIR/stop"
wait $writer 2>/dev/null
diag "$good well-formed archives, $failed detected changes"
is "$bad" 0 "no archive disagrees with its headers, none left behind on failure"
is "$other" 0 "every failure names the changed file"
is "$((good + failed))" 12 "every run either packed or reported the change"
is "$(ls "$TESTDIR" | grep -c '\.tmp\.')" 0 "no temporary files left"

# once the writer stopped, packing works and is repeatable
d1=$(ctxpack pack -q -o - "$C" | sha256sum)
is "$(ctxpack pack -q -o - "$C" | sha256sum)" "$d1" "after the writer stops: identical packs"

done_testing
