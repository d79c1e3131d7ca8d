#!/bin/sh
# cache save / restore / ls / prune against a real docker-registry on
# 127.0.0.1: round trips, restore-key prefixes, re-saves that send nothing,
# long and odd keys, prune where deletes are allowed and where they are
# not, and an unreachable store that fails open.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-registry.sh"
reg_require "$REGISTRY_BIN" curl

reg_start || { echo "1..0 # SKIP docker-registry did not start"; exit 0; }
cd "$TESTDIR" || exit 1
umask 022
STORE=$REG/ci/cache

mkdir -p venv/lib/site/pkg venv/bin venv/empty
echo 'print(1)' >venv/lib/site/pkg/__init__.py
printf '#!/bin/sh\n' >venv/bin/python && chmod 755 venv/bin/python
ln -s python venv/bin/python3
ln -s ../lib/site venv/bin/site-link
head -c 2000000 /dev/urandom >venv/lib/site/pkg/native.so
tree_list venv >want.list

ok "save to a registry" ctxpack cache save --store "$STORE" --key uv-linux-a venv
json=$(ctxpack cache save --json --store "$STORE" --key uv-linux-a venv 2>/dev/null)
like "$json" '"result":"exists"' "a re-save of the key is a no-op"
json=$(ctxpack cache save --json --store "$STORE" --key uv-linux-a --force venv 2>/dev/null)
like "$json" '"result":"saved".*"sent":0' "--force saves again, sending no blob (same bytes)"

man=$(curl -s -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
	"http://$REG/v2/ci/cache/tags/list")
like "$man" 'uv-linux-a-[0-9a-f]{32}' "the tag is the readable key plus a hash"
tag=$(echo "$man" | grep -o 'uv-linux-a-[0-9a-f]*')
man=$(curl -s -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
	"http://$REG/v2/ci/cache/manifests/$tag")
like "$man" '"artifactType":"application/vnd.ctxpack.cache.v1"' "the registry serves the artifact manifest"
like "$man" '"io.ctxpack.cache.key":"uv-linux-a"' "with the key annotation"

rm -rf venv
is "$(ctxpack cache restore -q --store "$STORE" --key uv-linux-a venv)" hit "restore from the registry"
tree_list venv >got.list
same_files got.list want.list "the restored tree equals the saved one"

# newest of several by prefix
mkdir -p dep
for i in 1 2 3; do
	echo "v$i" >dep/v
	ctxpack cache save -q --store "$STORE" --key "uv-lock-$i" dep
done
rm -rf dep
out=$(ctxpack cache restore -q --store "$STORE" --key uv-lock-new --restore-key uv-lock- dep)
is "$out" "partial uv-lock-3" "prefix fallback on a registry picks the newest"
is "$(cat dep/v)" v3 "and restores it"
export GITHUB_OUTPUT=$TESTDIR/gh.out
ctxpack cache restore -q --store "$STORE" --key uv-lock-new --restore-key uv-lock-2 dep >/dev/null
unset GITHUB_OUTPUT
is "$(cat gh.out)" "cache-hit=false
matched-key=uv-lock-2" "GITHUB_OUTPUT on a registry restore"
is "$(ctxpack cache restore -q --store "$STORE" --key uv-lock-none dep)" miss "miss"
exits 1 "--fail-on-miss" ctxpack cache restore --store "$STORE" --key uv-lock-none --fail-on-miss dep

# long and odd keys
k512=$(python3 -c '
s = "x" * 300 + " ${{ runner.os }}-é/"
print(s + "y" * (512 - len(s.encode())))')
echo long >dep/v
ok "a 512-byte key with odd characters saves" ctxpack cache save --store "$STORE" --key "$k512" dep
echo other >dep/v
is "$(ctxpack cache restore -q --store "$STORE" --key "$k512" dep)" hit "and restores"
is "$(cat dep/v)" long "its content"
out=$(ctxpack cache restore -q --store "$STORE" --key nope --restore-key "$(python3 -c 'print("x" * 200)')" dep)
is "$out" "partial $k512" "a long prefix matches it"

# ls and prune (deletes enabled)
out=$(ctxpack cache ls --store "$STORE")
is "$(echo "$out" | wc -l)" 5 "ls lists five entries"
like "$(echo "$out" | grep 'uv-lock-2')" 'uv-lock-2-[0-9a-f]{32}$' "ls shows the tag"
ok "prune --keep 1 --prefix uv-lock-" ctxpack cache prune --store "$STORE" --keep 1 --prefix uv-lock-
like "$(cat "$TESTDIR/.out")" "deleted.*uv-lock-2" "prune says what it deleted"
out=$(ctxpack cache ls --store "$STORE")
is "$(echo "$out" | grep -c uv-lock-)" 1 "one uv-lock entry left"
like "$out" "uv-lock-3" "the newest"
is "$(ctxpack cache restore -q --store "$STORE" --key uv-lock-1 dep)" miss "a pruned entry misses"

# a registry that does not allow deletes
port=$(free_port)
mkdir -p nodel/data
cat >nodel/config.yml <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $TESTDIR/nodel/data
  delete:
    enabled: false
http:
  addr: 127.0.0.1:$port
  secret: ctxpack-test-secret
EOF
"$REGISTRY_BIN" serve nodel/config.yml >nodel/log 2>&1 &
NODEL_PID=$!
at_exit "_kill_pid $NODEL_PID"
if wait_for 100 curl -s -o /dev/null "http://127.0.0.1:$port/v2/"; then
	ctxpack cache save -q --store "127.0.0.1:$port/ci/cache" --key nd-1 dep
	exits 1 "prune on a registry without deletes fails" \
		ctxpack cache prune --store "127.0.0.1:$port/ci/cache" --keep 0
	like "$(cat "$TESTDIR/.out")" "does not allow deletes" "and says the registry does not allow deletes"
	like "$(cat "$TESTDIR/.out")" "0 of 1 entries deleted" "and how many were deleted"
	is "$(ctxpack cache restore -q --store "127.0.0.1:$port/ci/cache" --key nd-1 dep)" hit \
		"the entry is still there"
else
	skip "no second registry"; skip "-"; skip "-"; skip "-"
fi

# an unreachable store fails open
dead=$(free_port)
echo keep >dep/v
start=$(date +%s)
out=$(ctxpack cache restore --store "127.0.0.1:$dead/ci/cache" --key k --restore-key k dep 2>err)
rc=$?
is "$rc $out" "0 miss" "an unreachable store is a miss with exit 0"
like "$(cat err)" "warning: cache restore of k failed, reported as a miss: .*127.0.0.1:$dead" \
	"with a clear message naming the store"
is "$(cat dep/v)" keep "the directory is untouched"
exits 1 "with --fail-on-miss it exits 1" \
	ctxpack cache restore --store "127.0.0.1:$dead/ci/cache" --key k --fail-on-miss dep
diag "unreachable store took $(($(date +%s) - start)) s to fail open"
exits 1 "save to an unreachable store fails" \
	ctxpack cache save --store "127.0.0.1:$dead/ci/cache" --key k dep

done_testing
