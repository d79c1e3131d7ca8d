#!/bin/sh
# cache run on an oci: layout and on a real docker-registry: a hit restores
# and skips the command (the command counts its runs in a file outside the
# cached path), a miss warm-starts from the newest entry with the prefix,
# runs the command and saves, a failed command saves nothing, and run
# exits with the command's status.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-registry.sh"

cd "$TESTDIR" || exit 1
umask 022
if [ -x "$REGISTRY_BIN" ] && reg_start; then
	stores="oci:$TESTDIR/store $REG/ci/run"
else
	stores="oci:$TESTDIR/store"
	diag "no docker-registry: the layout only"
fi

# The "install": counts its runs, notes whether it started warm, fills
# node_modules from the lock file.
cat >install.sh <<'EOF'
#!/bin/sh
if [ -d node_modules/pkg ]; then echo warm >>"$COUNTER"; else echo cold >>"$COUNTER"; fi
mkdir -p node_modules/pkg/bin
cp package-lock.json node_modules/pkg/lock-copy
printf '#!/bin/sh\necho tool\n' >node_modules/pkg/bin/tool
chmod +x node_modules/pkg/bin/tool
ln -sf ../pkg/bin/tool node_modules/pkg/tool-link
exit "${INSTALL_EXIT:-0}"
EOF
chmod +x install.sh

n=0
for STORE in $stores; do
	n=$((n + 1))
	case $STORE in oci:*) kind=layout ;; *) kind=registry ;; esac
	mkdir -p "p$n" && cd "p$n" || exit 1
	export COUNTER=$TESTDIR/runs$n
	: >"$COUNTER"
	echo '{"lockfileVersion": 3, "v": 1}' >package-lock.json
	run() { ctxpack cache run --store "$STORE" --key-file package-lock.json \
		--key-prefix npm-linux- --path node_modules -- ../install.sh; }

	ok "$kind: first run (miss) runs the command" run
	is "$(cat "$COUNTER")" cold "$kind: it ran once, cold"
	like "$(cat "$TESTDIR/.out")" "cache miss" "$kind: and reports the miss"
	rm -rf node_modules
	export GITHUB_OUTPUT=$TESTDIR/gh$n
	ok "$kind: second run (hit)" run
	unset GITHUB_OUTPUT
	is "$(cat "$COUNTER")" cold "$kind: the command was skipped on the hit"
	like "$(cat "$TESTDIR/.out")" "cache hit.*skipping" "$kind: and says so"
	same_files node_modules/pkg/lock-copy package-lock.json "$kind: node_modules restored"
	is "$(node_modules/pkg/tool-link)" tool "$kind: restored exec bit and symlink work"
	like "$(cat "$TESTDIR/gh$n")" '^cache-hit=true' "$kind: GITHUB_OUTPUT cache-hit=true"
	like "$(sed -n 2p "$TESTDIR/gh$n")" '^matched-key=npm-linux-[0-9a-f]{64}$' \
		"$kind: matched-key is prefix + digest"

	# a changed lock file: miss, warm start, run, save
	echo '{"lockfileVersion": 3, "v": 2}' >package-lock.json
	rm -rf node_modules
	ok "$kind: run after a lock change" run
	is "$(cat "$COUNTER" | tr '\n' ' ')" "cold warm " "$kind: it ran warm (restored by prefix)"
	like "$(cat "$TESTDIR/.out")" "warm start from npm-linux-" "$kind: and says where from"
	rm -rf node_modules
	ok "$kind: and the new key hits next time" run
	is "$(wc -l <"$COUNTER")" 2 "$kind: no third run"

	# a failing command: its status, nothing saved
	echo '{"lockfileVersion": 3, "v": 3}' >package-lock.json
	INSTALL_EXIT=3 exits 3 "$kind: run exits with the command's status" run
	like "$(cat "$TESTDIR/.out")" "exited with 3; nothing saved" "$kind: and saves nothing"
	before=$(ctxpack cache ls --store "$STORE" | wc -l)
	is "$before" 2 "$kind: still two entries"
	rm -rf node_modules
	ok "$kind: the next run" run
	is "$(tail -1 "$COUNTER")" warm "$kind: runs the command again (the failure was not cached)"

	# the command line is part of the key
	ok "$kind: another command" ctxpack cache run --store "$STORE" --key-file package-lock.json \
		--key-prefix npm-linux- --path node_modules -- ../install.sh --other
	is "$(wc -l <"$COUNTER")" 5 "$kind: is a miss (it ran)"
	exits 127 "$kind: a missing command exits 127" ctxpack cache run --store "$STORE" \
		--key-file package-lock.json --path node_modules -- ./no-such-command
	exits 2 "$kind: run without --key-file is a usage error" ctxpack cache run --store "$STORE" \
		--path node_modules -- true
	cd .. || exit 1
done

# an unreachable store: the command still runs (fail open), its status wins
mkdir -p p9 && cd p9 || exit 1
export COUNTER=$TESTDIR/runs9
echo x >package-lock.json
dead=$(free_port)
ok "unreachable store: run still runs the command" ctxpack cache run \
	--store "127.0.0.1:$dead/ci/run" --key-file package-lock.json --path node_modules -- ../install.sh
is "$(cat "$COUNTER")" cold "it ran"
like "$(cat "$TESTDIR/.out")" "warning: cache restore of .* failed, running the command" \
	"and warned about the store"
like "$(cat "$TESTDIR/.out")" "warning: cannot save the cache" "and about the save"

done_testing
