#!/bin/sh
# The GitHub Action (action.yml, ci/github/*.js) run as the runner runs it
# (tests/integ/gha.py: INPUT_* variables, fresh GITHUB_OUTPUT, GITHUB_STATE,
# GITHUB_ENV and GITHUB_PATH files per step, STATE_* for the post step,
# post-if, the job.status default), against a local docker-registry and an
# oci: store:
#
#   - without ctxpack on the PATH, the main step builds this checkout into
#     the runner's tool cache and puts it on the PATH of the later steps; a
#     second job uses that build;
#   - a job that misses runs the install and its post step saves; the next
#     job hits (cache-hit=true, the install skipped, the files restored, no
#     save); a changed lock file restores the old entry through
#     restore-keys (cache-hit=false, cache-matched-key) and saves the new key;
#   - lookup-only downloads nothing; fail-on-cache-miss fails the step;
#   - a failed or cancelled job saves nothing, unless save-always;
#   - read-only restores and writes nothing (no save, no stats event);
#   - an unreachable store is a miss and a warning, never a failed job;
#   - only the declared outputs are set; a bad boolean input fails the step.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-registry.sh"

for t in node make; do
	command -v $t >/dev/null 2>&1 || { echo "1..0 # SKIP $t not installed (scripts/install-deps)"; exit 0; }
done
python3 -c 'import yaml' 2>/dev/null || { echo "1..0 # SKIP python3-yaml not installed"; exit 0; }
cd "$TESTDIR" || exit 1
umask 022
GHA="python3 $ROOT/tests/integ/gha.py"
# the binary under test, alone in a directory, on the PATH of the jobs
mkdir -p bin && ln -s "$CTXPACK" bin/ctxpack
# PATH without any ctxpack, for the build case
nopath=
IFS=:
for d in $PATH; do
	[ -n "$d" ] && [ ! -e "$d/ctxpack" ] && [ "$d" != . ] && nopath=${nopath:+$nopath:}$d
done
unset IFS
BASEPATH=$nopath
export RUNNER_TOOL_CACHE=$TESTDIR/tool-cache

# A stand-in for the install (npm ci): counts its runs, notes whether
# node_modules was there already (warm), fills it from the lock file.
cat >install.sh <<'EOS'
#!/bin/sh
if [ -d node_modules/pkg ]; then echo warm >>"$COUNTER"; else echo cold >>"$COUNTER"; fi
mkdir -p node_modules/pkg/bin node_modules/.bin
cp package-lock.json node_modules/pkg/lock-copy
printf '#!/bin/sh\necho tool\n' >node_modules/pkg/bin/tool
chmod +x node_modules/pkg/bin/tool
ln -sf ../pkg/bin/tool node_modules/.bin/tool
mkdir -p "$HOME/.npm/_cacache" && cp package-lock.json "$HOME/.npm/_cacache/index"
EOS
chmod +x install.sh

# job NAME: a fresh job directory and workspace (a new runner job: the
# checkout has the lock file, nothing installed)
job() {
	J=$TESTDIR/jobs/$1
	rm -rf "$J" "$TESTDIR/ws-$1" "$HOME/.npm"
	mkdir -p "$J" "$TESTDIR/ws-$1"
	cd "$TESTDIR/ws-$1" || exit 1
	printf '{"lockfileVersion": 3, "v": %s}\n' "$LOCKV" >package-lock.json
	KEY="npm-Linux-$(sha256sum package-lock.json | cut -c1-16)"
}
# main/post ID [gha.py options]: the action's entry points; outputs in
# $TESTDIR/out, the step's log in $TESTDIR/log
main() { id=$1; shift; $GHA action "$J" "$ROOT" main "$id" "$@" >"$TESTDIR/out" 2>"$TESTDIR/log"; }
post() { id=$1; shift; $GHA action "$J" "$ROOT" post "$id" "$@" >"$TESTDIR/out" 2>"$TESTDIR/log"; }
output() { sed -n "s/^$1=//p" "$TESTDIR/out"; }
log() { cat "$TESTDIR/out" "$TESTDIR/log"; }
# the cache step of the workflow (two paths, one a ~/ path)
PATHS='node_modules
~/.npm'
step_main() { main deps --with "key=$KEY" --with "path=$PATHS" --with "restore-keys=npm-Linux-" \
	--with "store=$STORE" "$@"; }

# --- the build: no ctxpack on the PATH ---
# It builds this checkout and runs that build, never the binary under test:
# the ASan pass would repeat the plain pass's work exactly (a full -O2 build).
if ldd "$CTXPACK" 2>/dev/null | grep -q libasan; then
	skip "the build section runs no binary under test: done once, in the plain pass"
else
	STORE=oci:$TESTDIR/store-build
	LOCKV=0 PATH=$BASEPATH
	export COUNTER=$TESTDIR/runs-build PATH
	: >"$COUNTER"
	job build1
	$GHA action "$J" "$ROOT" main deps --with "key=$KEY" --with path=node_modules \
		--with "store=$STORE" >"$TESTDIR/out" 2>"$TESTDIR/log"
	rc=$?
	is "$rc" 0 "no ctxpack on the PATH: the main step builds it"
	if [ "$rc" != 0 ]; then log | tail -30 | sed 's/^/#   /' >&2; fi
	like "$(log)" "ctxpack is not installed on this runner: building it into $RUNNER_TOOL_CACHE/ctxpack/" \
		"says it builds into the tool cache"
	built=$(ls -d "$RUNNER_TOOL_CACHE"/ctxpack/*/*/bin/ctxpack 2>/dev/null)
	ok "the binary is in RUNNER_TOOL_CACHE/ctxpack/VERSION-HASH/ARCH/bin" test -x "$built"
	like "$(log)" "built ctxpack $(cat "$ROOT/VERSION")" "and runs"
	ok "its man pages came with it" test -f "$(dirname "$(dirname "$built")")/share/man/man1/ctxpack-cache.1"
	is "$($GHA run "$J" -- sh -c 'command -v ctxpack')" "$built" \
		"the later steps of the job find it on the PATH (GITHUB_PATH)"
	is "$(output cache-hit)" false "a miss"
	$GHA run "$J" -- ../install.sh >/dev/null 2>&1
	post deps
	is "$?" 0 "the post step"
	like "$(log)" "saved $KEY to $STORE" "saves with the built ctxpack"
	before=$(stat -c %Y "$built")
	job build2
	$GHA action "$J" "$ROOT" main deps --with "key=$KEY" --with path=node_modules \
		--with "store=$STORE" >"$TESTDIR/out" 2>"$TESTDIR/log"
	is "$?" 0 "the next job"
	like "$(log)" "using ctxpack built earlier on this runner: $built" "uses that build"
	is "$(stat -c %Y "$built")" "$before" "and does not build again"
	is "$(output cache-hit)" true "and hits"
fi

# --- the CI flow, on each store, with the binary under test ---
PATH=$TESTDIR/bin:$BASEPATH
if [ -x "$REGISTRY_BIN" ] && reg_start; then
	stores="oci:$TESTDIR/store $REG/ci/gha"
else
	stores="oci:$TESTDIR/store"
	diag "no docker-registry: the oci: store only"
fi
n=0
for STORE in $stores; do
	n=$((n + 1))
	case $STORE in oci:*) kind=oci ;; *) kind=registry ;; esac
	export COUNTER=$TESTDIR/runs$n
	: >"$COUNTER"

	# 1: miss, install, save
	LOCKV=1
	job "$kind-1"
	ok "$kind: job 1: main (restore)" step_main
	like "$(log)" "using $TESTDIR/bin/ctxpack" "$kind: runs the ctxpack on the PATH"
	is "$(output cache-hit)" false "$kind: job 1: cache-hit=false"
	is "$(output cache-primary-key)" "$KEY" "$kind: job 1: cache-primary-key"
	is "$(output cache-matched-key)" "" "$kind: job 1: cache-matched-key empty"
	is "$(cut -d= -f1 "$TESTDIR/out" | sort | tr '\n' ' ')" "cache-hit cache-matched-key cache-primary-key " \
		"$kind: only the declared outputs are set"
	ok "$kind: job 1: install (cache-hit != true)" $GHA run "$J" -- ../install.sh
	ok "$kind: job 1: post (job succeeded)" post deps
	like "$(log)" "saved $KEY to " "$kind: job 1: saved"
	ok "$kind: the entry is in the store" sh -c "ctxpack cache ls --store '$STORE' | grep -q ' $KEY '"

	# 2: hit, install skipped, nothing saved
	job "$kind-2"
	ok "$kind: job 2: main" step_main
	is "$(output cache-hit)" true "$kind: job 2: cache-hit=true"
	is "$(output cache-matched-key)" "$KEY" "$kind: job 2: cache-matched-key is the key"
	same_files node_modules/pkg/lock-copy package-lock.json "$kind: job 2: node_modules restored"
	is "$(node_modules/.bin/tool)" tool "$kind: job 2: its symlink and exec bit work"
	same_files "$HOME/.npm/_cacache/index" package-lock.json "$kind: job 2: ~/.npm restored"
	[ "$(output cache-hit)" = true ] || $GHA run "$J" -- ../install.sh
	ok "$kind: job 2: post" post deps
	like "$(log)" "cache hit on the primary key $KEY: not saving" "$kind: job 2: no save on a hit"
	is "$(cat "$COUNTER")" cold "$kind: the install ran once, in job 1"

	# 3: the lock file changed: the old entry through restore-keys, a warm
	# install, the new key saved
	OLDKEY=$KEY
	LOCKV=2
	job "$kind-3"
	ok "$kind: job 3: main" step_main
	is "$(output cache-hit)" false "$kind: job 3: cache-hit=false"
	is "$(output cache-matched-key)" "$OLDKEY" "$kind: job 3: cache-matched-key is the old key"
	ok "$kind: job 3: the old node_modules is there" test -f node_modules/pkg/lock-copy
	$GHA run "$J" -- ../install.sh >/dev/null 2>&1
	is "$(tail -n 1 "$COUNTER")" warm "$kind: job 3: the install ran warm"
	ok "$kind: job 3: post" post deps
	like "$(log)" "saved $KEY to " "$kind: job 3: saves the new key"
	KEY3=$KEY

	# 4: lookup-only: found, nothing downloaded
	job "$kind-4"
	ok "$kind: lookup-only: main" step_main --with lookup-only=true
	is "$(output cache-hit)" true "$kind: lookup-only: cache-hit=true"
	ok "$kind: lookup-only: nothing downloaded" test ! -e node_modules
	LOCKV=3
	job "$kind-4b"
	ok "$kind: lookup-only, a restore key: main" step_main --with lookup-only=true
	is "$(output cache-hit):$(output cache-matched-key)" "false:$KEY3" \
		"$kind: lookup-only: cache-hit=false, the newest entry with the prefix"
	ok "$kind: lookup-only: nothing downloaded" test ! -e node_modules

	# 5: fail-on-cache-miss
	job "$kind-5"
	main deps --with "key=other-1" --with path=node_modules --with "restore-keys=other-" \
		--with "store=$STORE" --with fail-on-cache-miss=true
	is "$?" 1 "$kind: fail-on-cache-miss: the step fails on a miss"
	like "$(log)" "::error::no cache entry for: other-1, other-" "$kind: and says so"
	main deps --with "key=other-1" --with "path=$PATHS" --with "restore-keys=npm-Linux-" \
		--with "store=$STORE" --with fail-on-cache-miss=true
	is "$?" 0 "$kind: fail-on-cache-miss: a restore-key match is not a miss"

	# 6: the job failed or was cancelled: saved only with save-always
	LOCKV=4
	job "$kind-6"
	step_main && $GHA run "$J" -- ../install.sh >/dev/null 2>&1
	ok "$kind: failed job: post" post deps --status failure
	like "$(log)" "not saving the cache: the job's status is failure" "$kind: failed job: not saved"
	ok "$kind: failed job: the key is not in the store" \
		sh -c "! ctxpack cache ls --store '$STORE' | grep -q ' $KEY '"
	job "$kind-6b"
	step_main --with save-always=true && $GHA run "$J" -- ../install.sh >/dev/null 2>&1
	ok "$kind: cancelled job, save-always: post" post deps --status cancelled
	like "$(log)" "job cancelled; save-always" "$kind: cancelled job, save-always: saves"
	ok "$kind: and the key is in the store" sh -c "ctxpack cache ls --store '$STORE' | grep -q ' $KEY '"

	# 7: read-only (a pull request from a fork): restores through
	# restore-keys, writes nothing to the store
	SAVED=$KEY
	LOCKV=6
	job "$kind-7"
	entries=$(ctxpack cache ls --store "$STORE")
	events=$(ctxpack cache stats --store "$STORE" --json)
	ok "$kind: read-only: main" step_main --with read-only=true
	is "$(output cache-hit):$(output cache-matched-key)" "false:$SAVED" \
		"$kind: read-only: the newest entry through restore-keys"
	ok "$kind: read-only: restored" test -f node_modules/pkg/lock-copy
	$GHA run "$J" -- ../install.sh >/dev/null 2>&1
	ok "$kind: read-only: post" post deps
	like "$(log)" "not saving the cache: read-only" "$kind: read-only: not saved"
	is "$(ctxpack cache ls --store "$STORE")" "$entries" "$kind: read-only: no entry added"
	is "$(ctxpack cache stats --store "$STORE" --json)" "$events" "$kind: read-only: no stats event"
done

# an unreachable store: a miss and warnings, the job goes on
STORE=127.0.0.1:$(free_port)/ci/gha
LOCKV=5
job dead
ok "unreachable store: the main step succeeds (fail open)" step_main
is "$(output cache-hit)" false "unreachable store: cache-hit=false"
like "$(log)" "warning: cache restore of .* failed, reported as a miss" "unreachable store: warned"
$GHA run "$J" -- ../install.sh >/dev/null 2>&1
ok "unreachable store: the post step succeeds" post deps
like "$(log)" "::warning::cache not saved: ctxpack cache save exited 1" \
	"unreachable store: the failed save is a warning annotation"

# bad input
job bad
main deps --with "key=$KEY" --with path=node_modules --with lookup-only=maybe
is "$?" 1 "a bad boolean fails the step"
like "$(log)" "::error::input lookup-only must be true or false, not 'maybe'" "and says which"
main deps --with path=node_modules
is "$?" 1 "a missing key fails the step"
like "$(log)" "::error::input required and not supplied: key" "and says which"
done_testing
