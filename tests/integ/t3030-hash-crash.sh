#!/bin/sh
# ctxpack hash: a process killed with SIGKILL in the middle of a cold run
# (while it reads files and commits index batches) leaves an index that the
# next run opens without complaint and that gives the right digest.
. "$(dirname "$0")/lib.sh"

jget() { sed -n 's/.*"'"$1"'":\("\([^"]*\)"\|\([0-9]*\)\).*/\2\3/p'; }

C=$TESTDIR/ctx
python3 - "$C" <<'PY'
import os, random, sys
d = sys.argv[1]
r = random.Random(7)
blob = r.randbytes(1 << 20)
for i in range(8000):
    sub = os.path.join(d, "d%02d" % (i % 50))
    os.makedirs(sub, exist_ok=True)
    n = r.randrange(0, 60000)
    o = r.randrange(0, len(blob) - n)
    with open(os.path.join(sub, "f%05d" % i), "wb") as f:
        f.write(blob[o:o + n] + b"%d" % i)
PY
sleep 0.3
want=$(ctxpack hash --index "$TESTDIR/ref" "$C")
t0=$(date +%s%N)
ctxpack hash --threads 1 --index "$TESTDIR/t" "$C" >/dev/null
cold_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
diag "a cold single-threaded run takes ${cold_ms} ms"

I=$TESTDIR/index
hits=0
# kill at 5%, 15%, ... 125% of that: in the walk, while hashing, while
# committing, after the end
for pct in 5 15 25 35 45 55 65 75 85 95 105 125; do
	ms=$((cold_ms * pct / 100))
	delay=$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))
	# a fresh index every other round, one with entries otherwise
	case $pct in *[13579]5) rm -rf "$I" ;; esac
	# not the ctxpack function: $! must be the process itself
	$EXEC_PREFIX "$CTXPACK" hash --threads 1 --index "$I" "$C" >/dev/null 2>&1 &
	pid=$!
	sleep "$delay"
	if kill -9 "$pid" 2>/dev/null; then hits=$((hits + 1)); fi
	wait "$pid" 2>/dev/null
	out=$(ctxpack hash --json --index "$I" "$C" 2>"$TESTDIR/err")
	is "$(echo "$out" | jget digest)" "$want" "killed after ${delay}s: the next run gives the right digest"
	is "$(cat "$TESTDIR/err")" "" "killed after ${delay}s: and opens the index without a warning"
	diag "after a kill at ${delay}s the next run hashed $(echo "$out" | jget hashed) of $(echo "$out" | jget files)"
	out=$(ctxpack hash --json --index "$I" "$C")
	is "$(echo "$out" | jget hashed)" 0 "killed after ${delay}s: a run after that reads nothing"
done
if [ "$hits" -gt 0 ]; then
	ok "at least one kill hit a running process ($hits)" true
else
	skip "every run finished before it was killed"
fi

# many kills in a row on one index, each run getting further
rm -rf "$I"
for i in 1 2 3 4 5 6; do
	$EXEC_PREFIX "$CTXPACK" hash --index "$I" "$C" >/dev/null 2>&1 &
	pid=$!
	sleep 0.0$i
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
done
is "$(ctxpack hash --index "$I" "$C" 2>&1)" "$want" "after six kills in a row: right digest, no warning"

done_testing
