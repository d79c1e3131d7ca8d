#!/bin/sh
# cache save of content packed before (issue 15): a save under a new key
# of a directory whose archive the store has already packs nothing and
# sends nothing, and describes the layer exactly as the first save did;
# any change, or a store without the blob, packs as before.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integ/lib-registry.sh"

cd "$TESTDIR" || exit 1
umask 022
STORE=oci:$TESTDIR/store

jget() { sed -n 's/.*"'"$1"'":\("\([^"]*\)"\|\([0-9]*\)\).*/\2\3/p'; }
save() { # KEY STORE: the --json line
	ctxpack cache save --json --store "$2" --key "$1" node_modules 2>/dev/null
}
# layer KEY DIR: the layer descriptor (digest, size, annotations) of KEY's
# entry in the oci: layout DIR
layer() {
	python3 - "$2" "$1" <<'PY'
import json, os, sys
d, key = sys.argv[1], sys.argv[2]
for m in json.load(open(os.path.join(d, "index.json")))["manifests"]:
    man = json.load(open(os.path.join(d, "blobs", m["digest"].replace(":", "/"))))
    if man.get("annotations", {}).get("io.ctxpack.cache.key") == key:
        l = man["layers"][0]
        print(json.dumps(l, sort_keys=True))
PY
}

python3 - node_modules <<'PY'
import os, random, sys
from tree import writer
rnd = random.Random(50)
w = writer(sys.argv[1])
for i in range(300):
    w("pkg%02d/lib/f%03d.js" % (i % 20, i), (b"module.exports = %d;\n" % i) * rnd.randrange(5, 400))
w("pkg00/bin/cli", b"#!/bin/sh\necho cli\n", 0o755)
os.symlink("../pkg00/bin/cli", os.path.join(sys.argv[1], "pkg01", "cli"))
PY
sleep 0.3 # older than the racy window
tree_list node_modules > want.list

out=$(save npm-1 "$STORE")
is "$(echo "$out" | jget reused)" 0 "first save: packed"
ok "first save: the blob sent" test "$(echo "$out" | jget sent)" -gt 0
out=$(save npm-2 "$STORE")
is "$(echo "$out" | jget result)" saved "same content, new key: saved"
is "$(echo "$out" | jget reused)" 1 "same content, new key: not packed again"
is "$(echo "$out" | jget sent)" 0 "and nothing sent"
is "$(layer npm-2 store)" "$(layer npm-1 store)" "the layer is described as by the first save (digest, sizes, entries)"
rm -rf node_modules
is "$(ctxpack cache restore -q --store "$STORE" --key npm-2 node_modules)" hit "the new key restores"
tree_list node_modules > got.list
same_files got.list want.list "to the same tree"
sleep 0.3
# restored: new inodes and times, nothing of it in the index: packed (the
# packer hashes the files as it reads them), to the same layer; then it is
out=$(save npm-3 "$STORE")
is "$(layer npm-3 store)" "$(layer npm-1 store)" "restored content saved under another key: the same layer"
out=$(save npm-3b "$STORE")
is "$(echo "$out" | jget reused)" 1 "and once indexed, not packed again"

# a change: packed, and the change is in the entry
echo "module.exports = 'changed';" > node_modules/pkg03/lib/f003.js
tree_list node_modules > want2.list
out=$(save npm-4 "$STORE")
is "$(echo "$out" | jget reused)" 0 "an edited file: packed"
isnt "$(layer npm-4 store)" "$(layer npm-1 store)" "a new layer"
rm -rf node_modules
ctxpack cache restore -q --store "$STORE" --key npm-4 node_modules > /dev/null
tree_list node_modules > got2.list
same_files got2.list want2.list "which restores the edited tree"

# another store without the blob: packed and sent
out=$(save npm-4 "oci:$TESTDIR/store2")
is "$(echo "$out" | jget reused)" 0 "a store without the blob: packed"
ok "and sent" test "$(echo "$out" | jget sent)" -gt 0
is "$(layer npm-4 store2)" "$(layer npm-4 store)" "the same layer"

# the remembered digests are checked: a damaged one is not used
for f in "$XDG_CACHE_HOME"/ctxpack/index/archive-digests/*; do
	printf 'x' | dd of="$f" bs=1 seek=30 conv=notrunc 2>/dev/null
done
out=$(save npm-5 "$STORE")
is "$(echo "$out" | jget reused)" 0 "a damaged archive digest: packed"
is "$(layer npm-5 store)" "$(layer npm-4 store)" "the same layer"

# a registry store: asked with a HEAD
if reg_start; then
	out=$(save npm-r1 "$REG/cache/t6050")
	is "$(echo "$out" | jget reused)" 0 "registry without the blob: packed"
	ok "and the blob sent" test "$(echo "$out" | jget sent)" -gt 0
	out=$(save npm-r2 "$REG/cache/t6050")
	is "$(echo "$out" | jget reused)" 1 "registry, same content, new key: not packed"
	is "$(echo "$out" | jget sent)" 0 "and nothing sent"
else
	skip "docker-registry did not start"
	skip "(same)"
	skip "(same)"
	skip "(same)"
fi
done_testing
