# Shared helpers for the integration tests (TAP, run by prove).
#
#   . "$(dirname "$0")/lib.sh"
#   plan 3; ok "..." cmd...; is "$got" "$want" "..."; done_testing
#
# Environment (set by scripts/run-tests; defaults suit a plain `make`):
#   CTXPACK   the binary under test (default: ./ctxpack in the repo root)
#   TOOLS     the directory of the built test tools (default: build/tools)
#   EXEC_PREFIX  a command prefix for the binary (e.g. "valgrind -q")
#   SHARED    the read-only shared/ directory (default: ../shared)
# Each test gets a fresh scratch directory $TESTDIR (removed on exit unless
# CTXPACK_KEEP=1), and private XDG_CACHE_HOME/HOME so no run touches the
# user's real cache.

set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
: "${CTXPACK:=$ROOT/ctxpack}"
: "${TOOLS:=$ROOT/build/tools}"
: "${EXEC_PREFIX:=}"
: "${SHARED:=$ROOT/../shared}"
case "$CTXPACK" in /*) ;; *) CTXPACK=$ROOT/$CTXPACK ;; esac
case "$TOOLS" in /*) ;; *) TOOLS=$ROOT/$TOOLS ;; esac
export CTXPACK TOOLS SHARED ROOT
# tree.py, for the generated trees
export PYTHONPATH="$ROOT/tests/integ${PYTHONPATH:+:$PYTHONPATH}"

TESTDIR=$(mktemp -d "${TMPDIR:-/tmp}/ctxpack-test.XXXXXX")
export XDG_CACHE_HOME=$TESTDIR/.xdg-cache
export HOME=$TESTDIR/.home
mkdir -p "$XDG_CACHE_HOME" "$HOME"
# python3 is Debian's (scripts/install-deps installs it and python3-yaml),
# also for `#!/usr/bin/env python3` scripts: a version manager's shim first
# on PATH (pyenv's is a bash script that starts its own commands) costs
# ~0.7 s a call, and the tests make thousands of calls.
if [ -x /usr/bin/python3 ] && [ "$(command -v python3)" != /usr/bin/python3 ]; then
	mkdir -p "$TESTDIR/.bin" && ln -s /usr/bin/python3 "$TESTDIR/.bin/python3" &&
		PATH=$TESTDIR/.bin:$PATH
fi
unset CTXPACK_INDEX CTXPACK_STORE SOURCE_DATE_EPOCH DOCKER_CONFIG REGISTRY_AUTH_FILE

_tap_n=0
_tap_failed=0
_cleanup_fns=""

# Register a cleanup command to run at exit (LIFO).
at_exit() { _cleanup_fns="$*; $_cleanup_fns"; }

_lib_exit() {
	rc=$?
	eval "$_cleanup_fns" 2>/dev/null || true
	if [ "${CTXPACK_KEEP:-}" = 1 ]; then
		echo "# kept $TESTDIR" >&2
	else
		chmod -R u+rwX "$TESTDIR" 2>/dev/null || true
		rm -rf "$TESTDIR"
	fi
	if [ "$_tap_failed" -gt 0 ] && [ $rc -eq 0 ]; then rc=1; fi
	exit $rc
}
trap _lib_exit EXIT
trap 'exit 130' INT TERM

# The binary under test.
ctxpack() { $EXEC_PREFIX "$CTXPACK" "$@"; }

plan() { echo "1..$1"; }
done_testing() { echo "1..$_tap_n"; }

_pass() { _tap_n=$((_tap_n + 1)); echo "ok $_tap_n - $1"; }
_fail() {
	_tap_n=$((_tap_n + 1)); _tap_failed=$((_tap_failed + 1))
	echo "not ok $_tap_n - $1"
}

# ok DESC CMD...: passes when CMD exits 0.
ok() {
	desc=$1; shift
	if "$@" >"$TESTDIR/.out" 2>&1; then _pass "$desc"; else
		_fail "$desc"; sed 's/^/#   /' "$TESTDIR/.out" | head -40 >&2; fi
}
# fails DESC CMD...: passes when CMD exits non-zero (not 126/127 or a signal).
fails() {
	desc=$1; shift
	"$@" >"$TESTDIR/.out" 2>&1; rc=$?
	if [ $rc -ne 0 ] && [ $rc -lt 126 ]; then _pass "$desc"; else
		_fail "$desc (exit $rc)"; sed 's/^/#   /' "$TESTDIR/.out" | head -40 >&2; fi
}
# exits N DESC CMD...: passes when CMD exits with status N.
exits() {
	want=$1; desc=$2; shift 2
	"$@" >"$TESTDIR/.out" 2>&1; rc=$?
	if [ $rc -eq "$want" ]; then _pass "$desc"; else
		_fail "$desc (exit $rc, want $want)"; sed 's/^/#   /' "$TESTDIR/.out" | head -40 >&2; fi
}
# is GOT WANT DESC
is() {
	if [ "$1" = "$2" ]; then _pass "$3"; else
		_fail "$3"
		printf '#   got:  %s\n#   want: %s\n' "$1" "$2" | head -60 >&2
	fi
}
# isnt GOT UNWANTED DESC
isnt() {
	if [ "$1" != "$2" ]; then _pass "$3"; else _fail "$3"; printf '#   both: %s\n' "$1" >&2; fi
}
# like GOT REGEX DESC (grep -E)
like() {
	if printf '%s\n' "$1" | grep -Eq -- "$2"; then _pass "$3"; else
		_fail "$3"; printf '#   got: %s\n#   want match: %s\n' "$1" "$2" | head -40 >&2; fi
}
# same_files A B DESC: two files have equal bytes
same_files() {
	if cmp -s "$1" "$2"; then _pass "$3"; else _fail "$3"; cmp "$1" "$2" 2>&1 | sed 's/^/#   /' >&2; fi
}
skip() { _tap_n=$((_tap_n + 1)); echo "ok $_tap_n # skip $1"; }

# pack_same NAME DIR: pack DIR through the cache (the --json summary left
# in $TESTDIR/NAME.json, the archive in $TESTDIR/NAME.zst) and cold with
# --no-cache, and check the two are the same bytes and the sha256 the
# summary reports is the archive's.
pack_same() {
	if ! ctxpack pack --json -o "$TESTDIR/$1.zst" "$2" > "$TESTDIR/$1.json" 2> "$TESTDIR/$1.err"; then
		_fail "$1: pack through the cache"; sed 's/^/#   /' "$TESTDIR/$1.err" >&2
		return
	fi
	ctxpack pack -q --no-cache -o "$TESTDIR/$1.cold.zst" "$2"
	same_files "$TESTDIR/$1.zst" "$TESTDIR/$1.cold.zst" "$1: the same bytes as a --no-cache pack"
	is "$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["digest"])' "$TESTDIR/$1.json")" \
		"sha256:$(sha256sum < "$TESTDIR/$1.cold.zst" | cut -d' ' -f1)" \
		"$1: the sha256 reported is the archive's"
}
diag() { echo "# $*" >&2; }

# A free TCP port on 127.0.0.1.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Wait until CMD succeeds (up to N tenths of a second).
wait_for() {
	n=$1; shift
	while [ "$n" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1; n=$((n - 1))
	done
	return 1
}

# bg_ctxpack LOG ARGS...: ctxpack in the background, its output in LOG and
# its exit status in LOG.rc when it ends; the ctxpack process's own PID (a
# child of the subshell, so never another script's) in $bgpid.
# rc_of LOG: that status, once there (up to 60 s).
bg_ctxpack() {
	log=$1; shift
	rm -f "$log.rc"
	( $EXEC_PREFIX "$CTXPACK" "$@" > "$log" 2>&1; echo $? > "$log.rc" ) &
	_sub=$!
	_i=0
	bgpid=
	while [ -z "$bgpid" ] && [ $_i -lt 100 ]; do
		bgpid=$(pgrep -n -P "$_sub" 2>/dev/null)
		[ -n "$bgpid" ] || sleep 0.1
		_i=$((_i + 1))
	done
}
rc_of() { wait_for 600 test -s "$1.rc" && cat "$1.rc"; }

# tree_list DIR: a listing of a tree, one line per entry below DIR in
# sorted order: type, path, mode, and the link target or content sha256.
tree_list() {
	python3 - "$1" <<'EOF'
import hashlib, os, stat, sys
root = sys.argv[1]
for d, dirs, files in os.walk(root):
    dirs.sort()
    for n in sorted(dirs + files):
        p = os.path.join(d, n)
        r = os.path.relpath(p, root)
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode):
            print("l", r, os.readlink(p))
        elif stat.S_ISDIR(st.st_mode):
            print("d", r, oct(st.st_mode & 0o7777))
        else:
            print("f", r, oct(st.st_mode & 0o7777),
                  hashlib.sha256(open(p, "rb").read()).hexdigest())
EOF
}
