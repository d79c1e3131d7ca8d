#!/bin/sh
# ctxpack hash: an index that cannot be used (garbage, truncated, not an
# LMDB file at all) is rebuilt with a warning and never trusted.
. "$(dirname "$0")/lib.sh"

jget() { sed -n 's/.*"'"$1"'":\("\([^"]*\)"\|\([0-9]*\)\).*/\2\3/p'; }

C=$TESTDIR/ctx
mkdir -p "$C/sub"
for i in 1 2 3 4 5 6 7 8; do echo "file $i" > "$C/sub/f$i"; done
head -c 100000 /dev/urandom > "$C/big"
sleep 0.3
want=$(ctxpack hash --index "$TESTDIR/ref" "$C")
I=$XDG_CACHE_HOME/ctxpack/index

is "$(ctxpack hash "$C")" "$want" "the default index works"
ok "it is at \$XDG_CACHE_HOME/ctxpack/index" test -f "$I/data.mdb"

corrupt() { # description, command that damages the index
	ctxpack hash "$C" >/dev/null
	eval "$2"
	out=$(ctxpack hash --json "$C" 2>"$TESTDIR/err")
	is "$(echo "$out" | jget digest)" "$want" "$1: right digest"
	is "$(echo "$out" | jget reused)" 0 "$1: nothing trusted from it"
	like "$(cat "$TESTDIR/err")" "^ctxpack: warning: .*index.*$I.*rebuilt" "$1: a warning on stderr names it"
	out=$(ctxpack hash --json "$C" 2>"$TESTDIR/err")
	is "$(echo "$out" | jget hashed)" 0 "$1: the rebuilt index is used by the next run"
	is "$(cat "$TESTDIR/err")" "" "$1: which warns no more"
}
corrupt "data.mdb overwritten with garbage" \
	'head -c $(stat -c %s "$I/data.mdb") /dev/urandom > "$I/data.mdb"'
corrupt "data.mdb truncated" 'truncate -s 100 "$I/data.mdb"'
corrupt "both meta pages zeroed" \
	'dd if=/dev/zero of="$I/data.mdb" bs=4096 count=2 conv=notrunc 2>/dev/null'

# four processes meet the same garbage at once: one rebuilds, all succeed
ctxpack hash "$C" >/dev/null
head -c $(stat -c %s "$I/data.mdb") /dev/urandom > "$I/data.mdb"
pids=
for k in 1 2 3 4; do
	$EXEC_PREFIX "$CTXPACK" hash "$C" > "$TESTDIR/p$k.out" 2> "$TESTDIR/p$k.err" &
	pids="$pids $!"
done
bad=0
for p in $pids; do wait "$p" || bad=$((bad + 1)); done
is "$bad" 0 "four processes on a garbage index all succeed"
is "$(cat "$TESTDIR"/p?.out | sort -u)" "$want" "and all print the right digest"
like "$(cat "$TESTDIR"/p?.err)" "rebuilt" "and the rebuild is reported"
out=$(ctxpack hash --json "$C" 2>"$TESTDIR/err")
is "$(echo "$out" | jget hashed)" 0 "the index they left is trusted"
is "$(cat "$TESTDIR/err")" "" "without a warning"

# an emptied data.mdb is a new environment to LMDB: nothing to distrust
# (and the context's snapshot is removed too, so that the index is what
# the run reads: docs/index.md, "Snapshots")
ctxpack hash "$C" >/dev/null
: > "$I/data.mdb"
rm -rf "$I/snapshots"
out=$(ctxpack hash --json "$C")
is "$(echo "$out" | jget digest)" "$want" "data.mdb emptied: right digest"
is "$(echo "$out" | jget hashed)" 9 "data.mdb emptied: every file read again"

# garbage in LMDB's lock file: LMDB rebuilds that itself
ctxpack hash "$C" >/dev/null
head -c 8192 /dev/urandom > "$I/lock.mdb"
out=$(ctxpack hash --json "$C" 2>"$TESTDIR/err")
is "$(echo "$out" | jget digest)" "$want" "garbage lock.mdb: right digest"

# a data.mdb that is a directory cannot be rebuilt: a clear error
rm -rf "$TESTDIR/bad"; mkdir -p "$TESTDIR/bad/data.mdb/x"
exits 1 "an index that cannot be rebuilt: exit 1" ctxpack hash --index "$TESTDIR/bad" "$C"
like "$(cat "$TESTDIR/.out")" "error: .*$TESTDIR/bad" "and the error names the index"

done_testing
