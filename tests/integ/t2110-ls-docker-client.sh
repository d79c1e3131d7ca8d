#!/bin/sh
# The context a docker client sends for `docker build .` against the one it
# sends when ctxpack build pipes the context to it, with the classic builder,
# on random trees and ignore files (tests/integ/dockercli.py): Debian's
# client (20.10: its old matcher) and a newer one on PATH (today's rules);
# and what `ctxpack pack --classic --docker-client VERSION` writes for the
# client of that version.  On the same trees, du counts the entries ls
# lists, in each flavour of walk.
# The clients are the real ones; the daemon is a stand-in on a unix socket
# of this test that keeps what it receives and builds nothing (t4120 builds
# with Debian's real daemon).  Names with spaces, wildcards, non-ASCII and
# leading '#' or '!' (a first entry with a pax header), modes, hard and
# symbolic links, exceptions, anchored and broken patterns.
. "$(dirname "$0")/lib.sh"

DOCKER_BIN=${DOCKER_BIN:-/usr/bin/docker}
[ -x "$DOCKER_BIN" ] || { echo "1..0 # SKIP $DOCKER_BIN not installed (scripts/install-deps)"; exit 0; }
clients=$DOCKER_BIN
other=$(command -v docker 2>/dev/null || true)
if [ -n "$other" ] && [ "$(readlink -f "$other")" != "$(readlink -f "$DOCKER_BIN")" ]; then
	clients="$clients $other"
fi
SOCK=$TESTDIR/d.sock
mkdir -p "$TESTDIR/cap"
python3 "$ROOT/tests/integ/dockercli.py" serve "$SOCK" "$TESTDIR/cap" 2>"$TESTDIR/serve.log" &
SERVE_PID=$!
at_exit "kill $SERVE_PID"
wait_for 100 test -S "$SOCK" || { _fail "the stand-in daemon did not start"; cat "$TESTDIR/serve.log" >&2; }

for client in $clients; do
	python3 "$ROOT/tests/integ/dockercli.py" diff "$SOCK" "$TESTDIR/cap" "$CTXPACK" 1 40 \
		"$client" > "$TESTDIR/diff.out" 2>&1
	is "$(tail -n 1 "$TESTDIR/diff.out")" "40 contexts, 0 differ" \
		"$client ($("$client" --version | cut -d, -f1)): ctxpack build sends, and pack --docker-client writes, what docker build . sends"
	grep -v ' contexts, ' "$TESTDIR/diff.out" | head -30 | sed 's/^/#   /' >&2
done
python3 "$ROOT/tests/integ/dockercli.py" duls "$CTXPACK" 1 40 > "$TESTDIR/duls.out" 2>&1
is "$(tail -n 1 "$TESTDIR/duls.out")" "160 contexts, 0 differ" \
	"du's included entries are ls's, default, --classic and --docker-client 20.10.24"
grep -v ' contexts, ' "$TESTDIR/duls.out" | head -10 | sed 's/^/#   /' >&2
# the cases are really there: some ignore files exclude, some are refused
python3 - "$ROOT/tests/integ" "$TESTDIR/gen" > "$TESTDIR/gen.out" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[1])
import dockercli
excl = bad = 0
for seed in range(1, 41):
    d = os.path.join(sys.argv[2], str(seed))
    lines = dockercli.make_context(d, seed)
    excl += any(not l.startswith("!") for l in lines)
    bad += any(l in dockercli.BAD for l in lines)
print(excl, bad)
PY
ok "most generated ignore files exclude something" test "$(cut -d' ' -f1 "$TESTDIR/gen.out")" -ge 30
done_testing
