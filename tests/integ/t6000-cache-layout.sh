#!/bin/sh
# cache save / restore / ls / prune on an oci: layout store: round trips
# (modes, exec bit, symlinks, empty and nested dirs, ~ paths), idempotent
# saves, restore-key prefixes (newest wins), hit/partial/miss, --json,
# --fail-on-miss, --lookup-only, GITHUB_OUTPUT, long and odd keys.
. "$(dirname "$0")/lib.sh"

cd "$TESTDIR" || exit 1
umask 022
STORE=oci:$TESTDIR/store

make_tree() { # dir
	mkdir -p "$1/sub/deeper/deepest" "$1/empty" "$1/.hidden"
	echo hello >"$1/a.txt"
	printf '#!/bin/sh\necho run\n' >"$1/sub/tool.sh"
	chmod 755 "$1/sub/tool.sh"
	head -c 300000 /dev/urandom >"$1/sub/deeper/blob.bin"
	echo deep >"$1/sub/deeper/deepest/x"
	echo dot >"$1/.hidden/.rc"
	ln -s sub/tool.sh "$1/tool-link"
	ln -s ../a.txt "$1/sub/up-link"
	ln -s missing-target "$1/dangling"
	printf 'name with spaces\n' >"$1/sub/a file ü.txt"
}

make_tree node_modules
tree_list node_modules >want.list

ok "save" ctxpack cache save --store "$STORE" --key npm-linux-1 node_modules
like "$(cat "$TESTDIR/.out")" "saved npm-linux-1" "save says what it saved"
ok "a second save of the key is a no-op success" \
	ctxpack cache save --store "$STORE" --key npm-linux-1 node_modules
like "$(cat "$TESTDIR/.out")" "already" "and says so"
json=$(ctxpack cache save --store "$STORE" --key npm-linux-1 --json node_modules 2>/dev/null)
like "$json" '"result":"exists".*"sent":0' "save --json of an existing key: nothing sent"

rm -rf node_modules
out=$(ctxpack cache restore --store "$STORE" --key npm-linux-1 node_modules 2>err)
is "$out" hit "restore of the saved key prints hit"
tree_list node_modules >got.list
same_files got.list want.list "the restored tree equals the saved one (modes, links, empty dirs)"
is "$(stat -c %a node_modules/sub/tool.sh)" 755 "exec bit restored"
is "$(stat -c %a node_modules/a.txt)" 644 "plain file 0644"
is "$(readlink node_modules/tool-link)" sub/tool.sh "symlink restored as a link"
ok "empty dir restored" test -d node_modules/empty
ok "no staging directory left" sh -c '! ls -a | grep -q ctxpack-'

# modes come back as they were (a 0600 key stays 0600), as tar -x as root
mkdir -p perm/d && echo s >perm/secret && chmod 600 perm/secret && chmod 700 perm/d
ok "save 0600/0700" ctxpack cache save --store "$STORE" --key perm perm
rm -rf perm
ctxpack cache restore -q --store "$STORE" --key perm perm >/dev/null
is "$(stat -c %a perm/secret) $(stat -c %a perm/d)" "600 700" "modes restored as saved: 0600, 0700"

# restore over an existing directory replaces it whole
mkdir -p node_modules/stale && echo old >node_modules/a.txt
is "$(ctxpack cache restore -q --store "$STORE" --key npm-linux-1 node_modules)" hit \
	"restore over an existing directory"
tree_list node_modules >got2.list
same_files got2.list want.list "old files are gone, the tree is the saved one"

# several paths, one of them under ~
mkdir -p "$HOME/.npm/_cacache" && echo c >"$HOME/.npm/_cacache/index"
ok "save two paths (~/.npm as given)" \
	ctxpack cache save --store "$STORE" --key multi node_modules '~/.npm'
raw=$(cat store/index.json)
m=$(python3 -c '
import json,sys
ix=json.load(open("store/index.json"))
for d in ix["manifests"]:
    print(d["digest"][7:])' | while read -r d; do
	if grep -q '"io.ctxpack.cache.key":"multi"' "store/blobs/sha256/$d"; then echo "$d"; fi
done)
man=$(cat "store/blobs/sha256/$m")
like "$man" '"io.ctxpack.cache.paths":"\[\\"node_modules\\",\\"~/.npm\\"\]"' "paths annotation lists the paths as given"
like "$man" '"io.ctxpack.cache.path":"~/.npm"' "a layer per path, with its path as given"
like "$man" '"artifactType":"application/vnd.ctxpack.cache.v1"' "artifactType"
like "$man" '"org.opencontainers.image.created":"20[0-9][0-9]-[0-9][0-9]-[0-9][0-9]T' "created annotation"
like "$man" '"io.ctxpack.cache.platform":"linux/' "platform annotation"
is "$(echo "$man" | grep -o 'tar+zstd' | wc -l)" 2 "two zstd layers"
rm -rf node_modules "$HOME/.npm"
is "$(ctxpack cache restore -q --store "$STORE" --key multi node_modules '~/.npm')" hit \
	"restore two paths"
is "$(cat "$HOME/.npm/_cacache/index")" c "~/.npm restored under \$HOME"
tree_list node_modules >got3.list
same_files got3.list want.list "node_modules restored too"

# the implicit version: another path list misses
is "$(ctxpack cache restore -q --store "$STORE" --key multi node_modules)" miss \
	"the same key with another path list is a miss"

# restore keys: the newest entry with the prefix wins
mkdir -p dep
for i in 1 2 3; do
	echo "v$i" >dep/version
	ctxpack cache save -q --store "$STORE" --key "deps-linux-$i" dep
done
echo "other" >dep/version
ctxpack cache save -q --store "$STORE" --key "zzz-other" dep
rm -rf dep
out=$(ctxpack cache restore --store "$STORE" --key deps-linux-9 --restore-key deps-linux- dep 2>/dev/null)
is "$out" "partial deps-linux-3" "prefix fallback picks the newest of several"
is "$(cat dep/version)" v3 "and restores it"
out=$(ctxpack cache restore --store "$STORE" --key deps-linux-9 --restore-key nomatch- \
	--restore-key deps-linux-1 dep 2>/dev/null)
is "$out" "partial deps-linux-1" "restore keys are tried in order"
out=$(ctxpack cache restore --store "$STORE" --key deps-linux-2 --restore-key deps- dep 2>/dev/null)
is "$out" hit "the exact key wins over a newer prefix match"
is "$(cat dep/version)" v2 "exact entry restored"

# miss, --fail-on-miss, --lookup-only, --json
echo keep >dep/version
is "$(ctxpack cache restore -q --store "$STORE" --key nope dep)" miss "miss"
is "$(cat dep/version)" keep "a miss leaves the directory alone"
exits 1 "--fail-on-miss exits 1 on a miss" \
	ctxpack cache restore --store "$STORE" --key nope --fail-on-miss dep
exits 0 "a miss exits 0 otherwise" ctxpack cache restore --store "$STORE" --key nope dep
out=$(ctxpack cache restore -q --store "$STORE" --key deps-linux-1 --lookup-only dep)
is "$out" hit "--lookup-only reports the hit"
is "$(cat dep/version)" keep "--lookup-only downloads nothing"
json=$(ctxpack cache restore --json --store "$STORE" --key x-9 --restore-key deps-linux dep 2>/dev/null)
like "$json" '^\{"result":"partial","key":"x-9","matched_key":"deps-linux-3",' "restore --json (partial)"
json=$(ctxpack cache restore --json --store "$STORE" --key nope dep 2>/dev/null)
like "$json" '^\{"result":"miss","key":"nope","matched_key":null' "restore --json (miss)"

# GITHUB_OUTPUT
export GITHUB_OUTPUT=$TESTDIR/gh.out
ctxpack cache restore -q --store "$STORE" --key deps-linux-2 dep >/dev/null
ctxpack cache restore -q --store "$STORE" --key none --restore-key deps-linux- dep >/dev/null
ctxpack cache restore -q --store "$STORE" --key none dep >/dev/null
unset GITHUB_OUTPUT
is "$(cat gh.out)" "cache-hit=true
matched-key=deps-linux-2
cache-hit=false
matched-key=deps-linux-3
cache-hit=false
matched-key=" "GITHUB_OUTPUT gets cache-hit and matched-key"

# keys: 512 bytes, odd characters, near-identical keys
k512=$(python3 -c 'print("k" * 500 + "/:@ é" + "x" * 6)')
mkdir -p odd && echo 512 >odd/f
ok "a 512-byte key saves" ctxpack cache save --store "$STORE" --key "$k512" odd
k512b=$(python3 -c 'print("k" * 500 + "/:@ é" + "x" * 5 + "y")')
echo 512b >odd/f
ok "a near-identical 512-byte key saves separately" ctxpack cache save --store "$STORE" --key "$k512b" odd
rm -rf odd
is "$(ctxpack cache restore -q --store "$STORE" --key "$k512" odd)" hit "the 512-byte key restores"
is "$(cat odd/f)" 512 "its own entry"
is "$(ctxpack cache restore -q --store "$STORE" --key "$k512b" odd)" hit "the other one too"
is "$(cat odd/f)" 512b "with its own content"
k513=$(python3 -c 'print("k" * 513)')
exits 2 "a 513-byte key is refused" ctxpack cache save --store "$STORE" --key "$k513" odd
like "$(cat "$TESTDIR/.out")" "at most 512" "and says why"
kodd='npm Linux/x86 ${{ hashFiles(**/package-lock.json) }} :@#%&*?=+ü'
echo odd >odd/f
ok "a key with odd characters saves" ctxpack cache save --store "$STORE" --key "$kodd" odd
echo changed >odd/f
is "$(ctxpack cache restore -q --store "$STORE" --key "$kodd" odd)" hit "and restores"
is "$(cat odd/f)" odd "with its content"
out=$(ctxpack cache restore -q --store "$STORE" --key none --restore-key 'npm Linux/x86 ${{' odd)
is "$out" "partial $kodd" "prefix of an odd key matches"
exits 2 "a key with a newline is refused" ctxpack cache save --store "$STORE" --key "$(printf 'a\nb')" odd
ok "the tags are valid OCI tags" python3 -c '
import json, re, sys
ix = json.load(open("store/index.json"))
tags = [d["annotations"]["org.opencontainers.image.ref.name"] for d in ix["manifests"]]
bad = [t for t in tags if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}", t)]
sys.exit(1 if bad or len(tags) < 10 else 0)'

# errors
exits 1 "save of a missing path fails" ctxpack cache save --store "$STORE" --key m no-such-dir
like "$(cat "$TESTDIR/.out")" "no-such-dir does not exist" "and names it"
exits 2 "save without --key is a usage error" ctxpack cache save --store "$STORE" dep
exits 2 "restore without a path is a usage error" ctxpack cache restore --store "$STORE" --key k
exits 2 "unknown subcommand" ctxpack cache frobnicate

# ls and prune
out=$(ctxpack cache ls --store "$STORE")
like "$out" "deps-linux-3" "ls lists entries"
like "$(echo "$out" | head -1)" 'hashFiles' "newest first"
is "$(echo "$out" | wc -l)" 10 "ls lists all ten entries"
like "$(echo "$out" | grep deps-linux-1)" '^20[0-9-]+T[0-9:]+Z +[0-9.]+ [KMG]?i?B +deps-linux-1 +deps-linux-1-[0-9a-f]{32}$' \
	"ls line: created, size, key, tag"
json=$(ctxpack cache ls --json --store "$STORE")
ok "ls --json is a JSON array of ten" python3 -c '
import json, sys
v = json.loads(sys.argv[1])
assert len(v) == 10 and all({"key","tag","size","created","paths"} <= set(e) for e in v)' "$json"
out=$(ctxpack cache prune --store "$STORE" --keep 2 --prefix deps-linux- --dry-run)
is "$out" "$(echo "$out" | grep '^would delete')" "dry run only says what it would do"
like "$out" "deps-linux-1" "dry run would delete the oldest deps entry"
is "$(ctxpack cache ls --store "$STORE" | wc -l)" 10 "dry run deleted nothing"
blobs_before=$(ls store/blobs/sha256 | wc -l)
ok "prune --keep 2 --prefix deps-linux-" ctxpack cache prune --store "$STORE" --keep 2 --prefix deps-linux- --gc-grace 0
is "$(ctxpack cache ls --store "$STORE" | grep -c deps-linux-)" 2 "two deps entries left"
is "$(ctxpack cache restore -q --store "$STORE" --key deps-linux-1 dep)" miss "the oldest is gone"
blobs_after=$(ls store/blobs/sha256 | wc -l)
ok "unreferenced blobs were removed ($blobs_before -> $blobs_after)" test "$blobs_after" -lt "$blobs_before"
is "$(ctxpack cache restore -q --store "$STORE" --key deps-linux-3 dep)" hit "kept entries still restore"
sleep 3
echo fresh >dep/version
ctxpack cache save -q --store "$STORE" --key fresh dep
ok "prune --older-than 2s" ctxpack cache prune --store "$STORE" --older-than 2s --gc-grace 0
is "$(ctxpack cache ls --store "$STORE" | awk '{print $4}')" fresh "only the fresh entry is left"
exits 2 "prune needs a criterion" ctxpack cache prune --store "$STORE"
is "$(ctxpack cache restore -q --store "$STORE" --key fresh dep)" hit "the fresh entry restores"

done_testing
