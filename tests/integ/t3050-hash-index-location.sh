#!/bin/sh
# ctxpack hash: where the index lives (--index, CTXPACK_INDEX, the XDG
# default) and that nothing is ever written inside the context.
. "$(dirname "$0")/lib.sh"

jget() { sed -n 's/.*"'"$1"'":\("\([^"]*\)"\|\([0-9]*\)\).*/\2\3/p'; }
# every path, type, size and mtime under a directory
snapshot() { (cd "$1" && find . -printf '%p %y %s %T@ %C@\n' | sort); }

C=$TESTDIR/ctx
mkdir -p "$C/a/b"
echo one > "$C/a/one"; echo two > "$C/a/b/two"; ln -s a/one "$C/l"
sleep 0.3
snapshot "$C" > "$TESTDIR/before"

d=$(ctxpack hash "$C")
ok "default: \$XDG_CACHE_HOME/ctxpack/index" test -f "$XDG_CACHE_HOME/ctxpack/index/data.mdb"

ctxpack hash --index "$TESTDIR/opt-index" "$C" >/dev/null
ok "--index DIR: created there" test -f "$TESTDIR/opt-index/data.mdb"
out=$(ctxpack hash --json --index "$TESTDIR/opt-index" "$C")
is "$(echo "$out" | jget hashed)" 0 "--index DIR: used by the next run"

CTXPACK_INDEX=$TESTDIR/env-index ctxpack hash "$C" >/dev/null
ok "CTXPACK_INDEX: created there" test -f "$TESTDIR/env-index/data.mdb"
out=$(CTXPACK_INDEX=$TESTDIR/env-index ctxpack hash --json "$C")
is "$(echo "$out" | jget hashed)" 0 "CTXPACK_INDEX: used by the next run"
out=$(CTXPACK_INDEX=$TESTDIR/env-index ctxpack hash --json --index "$TESTDIR/opt2" "$C")
is "$(echo "$out" | jget hashed)" 2 "--index wins over CTXPACK_INDEX"
ok "and CTXPACK_INDEX is then left alone" test ! -e "$TESTDIR/opt2x"

# without XDG_CACHE_HOME: ~/.cache/ctxpack/index
(unset XDG_CACHE_HOME; ctxpack hash "$C" >/dev/null)
ok "no XDG_CACHE_HOME: ~/.cache/ctxpack/index" test -f "$HOME/.cache/ctxpack/index/data.mdb"

snapshot "$C" > "$TESTDIR/after"
same_files "$TESTDIR/after" "$TESTDIR/before" "nothing was written inside the context"

# an index inside the context is refused (it would change under the walk)
# before anything is created there
exits 2 "--index inside the context is refused" ctxpack hash --index "$C/a/.idx/x" "$C"
like "$(cat "$TESTDIR/.out")" "inside the context" "with a reason"
exits 2 "CTXPACK_INDEX inside the context is refused" env CTXPACK_INDEX="$C" "$CTXPACK" hash "$C"
exits 2 "a relative --index inside the context is refused" \
	sh -c 'cd "$1/a" && "$2" hash --index ../new/idx ..' sh "$C" "$CTXPACK"
ln -s "$C/a" "$TESTDIR/alink"
exits 2 "an --index reached through a symlink into the context is refused" \
	ctxpack hash --index "$TESTDIR/alink/idx" "$C"
snapshot "$C" > "$TESTDIR/after2"
same_files "$TESTDIR/after2" "$TESTDIR/before" "and nothing was created inside it"
# an index directory that cannot be created
: > "$TESTDIR/file"
exits 1 "--index under a regular file: exit 1" ctxpack hash --index "$TESTDIR/file/idx" "$C"
like "$(cat "$TESTDIR/.out")" "$TESTDIR/file/idx" "the error names it"

done_testing
