#!/bin/sh
# ctxpack hash: several processes on one index at once (the same and
# different roots) all get the right digest and leave an index that a
# later run trusts completely.
. "$(dirname "$0")/lib.sh"

# jget FIELD: a string or number field of the one-line JSON object on stdin
jget() { sed -n 's/.*"'"$1"'":\("\([^"]*\)"\|\([0-9]*\)\).*/\2\3/p'; }
fresh() { ctxpack hash --index "$(mktemp -d "$TESTDIR/fresh.XXXXXX")" "$1"; }

# two trees of a few thousand files, one nested root inside the first
mk() { # dir, files, seed
	python3 - "$1" "$2" "$3" <<'PY'
import os, random, sys
d, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random(seed)
for i in range(n):
    sub = os.path.join(d, "d%02d" % (i % 37), "e%d" % (i % 5))
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, "f%05d" % i), "wb") as f:
        f.write(r.randbytes(r.randrange(0, 20000)))
PY
}
A=$TESTDIR/a; B=$TESTDIR/b
mk "$A" 2500 1
mk "$B" 2500 2
S=$A/d03
sleep 0.3
da=$(fresh "$A"); db=$(fresh "$B"); ds=$(fresh "$S")

I=$TESTDIR/index
round() { # name: 4 processes, 2 on A, 1 on B, 1 on A/d03
	for r in a1 a2 b s; do
		case $r in a*) d=$A ;; b) d=$B ;; s) d=$S ;; esac
		ctxpack hash --index "$I" "$d" > "$TESTDIR/$r.out" 2> "$TESTDIR/$r.err" &
		eval "pid_$r=\$!"
	done
	for r in a1 a2 b s; do
		eval "wait \$pid_$r"; rc=$?
		is "$rc" 0 "$1: process $r exits 0"
		case $r in a*) want=$da ;; b) want=$db ;; s) want=$ds ;; esac
		is "$(cat "$TESTDIR/$r.out")" "$want" "$1: process $r prints the right digest"
		is "$(cat "$TESTDIR/$r.err")" "" "$1: process $r warns about nothing"
	done
}
check_settled() { # name
	for d in "$A" "$B" "$S"; do
		out=$(ctxpack hash --json --index "$I" "$d")
		case $d in "$A") want=$da ;; "$B") want=$db ;; "$S") want=$ds ;; esac
		is "$(echo "$out" | jget digest)" "$want" "$1: a sequential run agrees ($(basename "$d"))"
		is "$(echo "$out" | jget hashed)" 0 "$1: and reads nothing ($(basename "$d"))"
	done
}

round "cold"
check_settled "after a cold concurrent round"
round "warm"
check_settled "after a warm concurrent round"

# change some files, then race again: every process sees the new content
for i in 1 2 3; do echo "changed $i" > "$A/d0$i/e1/new$i"; done
rm -f "$A/d05/e0/f00005"
echo changed >> "$B/d10/e0/f00010"
sleep 0.3
da=$(fresh "$A"); db=$(fresh "$B"); ds=$(fresh "$S")
round "after changes"
check_settled "after a concurrent round on changes"

# eight at once on a fresh index, with small batches of threads
I=$TESTDIR/index8
pids=
for k in 1 2 3 4 5 6 7 8; do
	case $k in 1|2|3) d=$A ;; 4|5|6) d=$B ;; *) d=$S ;; esac
	ctxpack hash --threads 2 --index "$I" "$d" > "$TESTDIR/p$k.out" 2>&1 &
	pids="$pids $!"
done
bad=0
for p in $pids; do wait "$p" || bad=$((bad + 1)); done
is "$bad" 0 "eight processes at once all succeed"
check_settled "after eight at once"

done_testing
