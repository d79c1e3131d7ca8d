#!/bin/sh
# ctxpack hash: the racy-timestamp rule.  An edit that keeps the size and
# puts the mtime back to the nanosecond, made right after a run, is caught.
. "$(dirname "$0")/lib.sh"

# jget FIELD: a string or number field of the one-line JSON object on stdin
jget() { sed -n 's/.*"'"$1"'":\("\([^"]*\)"\|\([0-9]*\)\).*/\2\3/p'; }
fresh() { ctxpack hash --index "$(mktemp -d "$TESTDIR/fresh.XXXXXX")" "$1"; }

C=$TESTDIR/ctx
mkdir -p "$C"
for i in 1 2 3 4 5; do echo "file $i" > "$C/f$i"; done

# write, run at once, overwrite with the same size, restore the mtime
printf 'aaaa' > "$C/f"
m=$(stat -c %.9Y "$C/f")
d1=$(ctxpack hash "$C")
printf 'bbbb' > "$C/f"
touch -d "@$m" "$C/f"
is "$(stat -c %.9Y "$C/f")" "$m" "the mtime is back to the same nanosecond"
is "$(stat -c %s "$C/f")" 4 "and the size is the same"
d2=$(ctxpack hash "$C")
isnt "$d2" "$d1" "a same-size same-mtime edit right after a run changes the digest"
is "$d2" "$(fresh "$C")" "and the digest is the one of the new content"

# the same after the entries have settled (not racy): ctime still moves
sleep 0.3
ctxpack hash "$C" >/dev/null
out=$(ctxpack hash --json "$C")
is "$(echo "$out" | jget hashed)" 0 "settled: a warm run reads nothing"
m=$(stat -c %.9Y "$C/f")
printf 'cccc' > "$C/f"
touch -d "@$m" "$C/f"
d3=$(ctxpack hash "$C")
isnt "$d3" "$d2" "a same-size same-mtime edit of a settled entry is caught too"
is "$d3" "$(fresh "$C")" "and the digest is the one of the new content"

# entries written within the window of the files' times are racy: the
# next run reads them again (and only them), the one after reads nothing
sleep 0.3
ctxpack hash "$C" >/dev/null
t0=$(date +%s%N)
echo "new 1" > "$C/f1"; echo "new 2" > "$C/f2"
ctxpack hash "$C" >/dev/null
took=$(( ($(date +%s%N) - t0) / 1000000 ))
sleep 0.3
out=$(ctxpack hash --json "$C")
if [ "$took" -lt 200 ]; then
	is "$(echo "$out" | jget racy)" 2 "files written just before a run are racy on the next"
	is "$(echo "$out" | jget hashed)" 2 "and only they are read"
else
	skip "the machine is too slow: the run ended ${took} ms after the writes"
	skip "(same)"
fi
out=$(ctxpack hash --json "$C")
is "$(echo "$out" | jget hashed)" 0 "after that, nothing is read"

# a whole-second mtime (as on a coarse filesystem) gets the wide window:
# ctime is out of the fine window when the run starts, the mtime is not
# two seconds old yet
printf 'dddd' > "$C/f3"
sec=$(date +%s)
touch -d "@$sec" "$C/f3"
sleep 0.3
ctxpack hash "$C" >/dev/null
took=$(( $(date +%s%N) / 1000000 - sec * 1000 ))
out=$(ctxpack hash --json "$C")
if [ "$took" -lt 1800 ]; then
	is "$(echo "$out" | jget racy)" 1 "a whole-second mtime within 2 s of the run is racy"
else
	skip "the machine is too slow: the run ended ${took} ms after the mtime"
fi
sleep 2
ctxpack hash "$C" >/dev/null
out=$(ctxpack hash --json "$C")
is "$(echo "$out" | jget hashed)" 0 "and is trusted once it is older"

done_testing
