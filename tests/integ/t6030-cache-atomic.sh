#!/bin/sh
# The save and restore guarantees: two concurrent saves of one key both
# succeed and the entry restores whole (layout and registry); a restore
# killed mid-way leaves the old directory as it was; a blob that fails its
# digest (a damaged one, or a valid archive that is not the one the
# manifest names) is never swapped in.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-registry.sh"

cd "$TESTDIR" || exit 1
umask 022
if [ -x "$REGISTRY_BIN" ] && reg_start; then
	stores="oci:$TESTDIR/store $REG/ci/atomic"
else
	stores="oci:$TESTDIR/store"
	diag "no docker-registry: the layout only"
fi

# The layer digest of the entry saved under key in a layout or registry.
layer_of() { # store key
	ctxpack cache ls --json --store "$1" | python3 -c '
import json, sys
for e in json.load(sys.stdin):
    if e["key"] == sys.argv[1]:
        print(e["tag"])' "$2"
}

# a tree worth a few MB, in many files
python3 - <<'EOF'
import os, random
r = random.Random(6)
for i in range(400):
    d = "dep/pkg%03d/lib" % (i % 40)
    os.makedirs(d, exist_ok=True)
    with open("%s/f%04d.js" % (d, i), "wb") as f:
        f.write(bytes(r.getrandbits(8) for _ in range(r.randint(100, 20000))))
EOF
tree_list dep >dep.list

n=0
for STORE in $stores; do
	n=$((n + 1))
	case $STORE in oci:*) kind=layout ;; *) kind=registry ;; esac
	ctxpack cache save -q --store "$STORE" --key conc dep >s1.out 2>&1 &
	p1=$!
	ctxpack cache save -q --store "$STORE" --key conc dep >s2.out 2>&1 &
	p2=$!
	wait $p1; r1=$?
	wait $p2; r2=$?
	is "$r1 $r2" "0 0" "$kind: two concurrent saves of one key both succeed"
	[ "$r1$r2" = 00 ] || cat s1.out s2.out | sed 's/^/#   /' >&2
	rm -rf dep
	is "$(ctxpack cache restore -q --store "$STORE" --key conc dep 2>&1)" hit \
		"$kind: the entry restores"
	tree_list dep >got.list
	same_files got.list dep.list "$kind: whole"
	is "$(ctxpack cache ls --store "$STORE" | grep -c ' conc ')" 1 "$kind: one entry for the key"
done

# A restore killed mid-way (kill -9 during extraction) leaves the old tree.
python3 - <<'EOF'
import os
for i in range(4000):
    d = "big/d%03d" % (i % 50)
    os.makedirs(d, exist_ok=True)
    with open("%s/f%05d" % (d, i), "w") as f:
        f.write("content %d\n" % i * 20)
EOF
STORE=oci:$TESTDIR/store
ctxpack cache save -q --store "$STORE" --key big big
rm -rf big && mkdir -p big/old && echo old >big/old/marker && ln -s old big/link
tree_list big >old.list
killed=$(python3 - "$CTXPACK" "$STORE" <<'EOF'
import os, signal, subprocess, sys, time
p = subprocess.Popen([sys.argv[1], "cache", "restore", "-q", "--store", sys.argv[2],
                      "--key", "big", "big"], stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
deadline = time.time() + 30
while time.time() < deadline and p.poll() is None:
    st = [n for n in os.listdir(".") if n.startswith(".ctxpack-new-")]
    if st and len(os.listdir(st[0])) > 5:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        print("killed")
        sys.exit(0)
    time.sleep(0.002)
p.wait()
print("finished")
EOF
)
# The kill is sent once the staging directory fills, but on a busy machine
# the restore may have finished and swapped before it landed: then the new
# tree must be whole, and the mid-way case is skipped.
if [ "$killed" = killed ] && [ ! -e big/old/marker ]; then
	is "$(find big -type f | wc -l)" 4000 "the kill landed after the swap: the new tree is whole"
	is "$(ctxpack cache restore -q --store "$STORE" --key big big)" hit "the next restore works"
	ok "and leaves no staging directory" sh -c '! ls -a | grep -q "^.ctxpack-"'
	killed=late
fi
if [ "$killed" = killed ]; then
	tree_list big >after.list
	same_files after.list old.list "a restore killed mid-way leaves the old directory as it was"
	ok "its staging directory is beside it" sh -c 'ls -a | grep -q "^.ctxpack-new-"'
	is "$(ctxpack cache restore -q --store "$STORE" --key big big)" hit "the next restore works"
	ok "and removes the killed restore's staging directory" sh -c '! ls -a | grep -q "^.ctxpack-"'
	is "$(find big -type f | wc -l)" 4000 "the whole tree is in place"
else
	skip "the restore finished before it could be killed ($killed)"
	skip "-"; skip "-"; skip "-"; skip "-"
fi

# Injected failures: the blob the manifest names is damaged, or replaced by
# another valid archive.  Restore reports a miss; the old tree stays.
mkdir -p small && echo one >small/f
ctxpack cache save -q --store "$STORE" --key one small
echo two-two-two >small/f && echo more >small/g
ctxpack cache save -q --store "$STORE" --key two small
rm -rf small && mkdir small && echo mine >small/mine
tree_list small >mine.list
layer_digest() { # key
	python3 - "$1" <<'EOF'
import json, sys
ix = json.load(open("store/index.json"))
for d in ix["manifests"]:
    m = json.load(open("store/blobs/sha256/" + d["digest"][7:]))
    if m.get("annotations", {}).get("io.ctxpack.cache.key") == sys.argv[1]:
        print(m["layers"][0]["digest"][7:])
EOF
}
b1=store/blobs/sha256/$(layer_digest one)
b2=store/blobs/sha256/$(layer_digest two)
cp "$b1" b1.orig
cp "$b2" "$b1"
out=$(ctxpack cache restore --store "$STORE" --key one small 2>err)
is "$out" miss "a blob with the wrong digest (a valid archive) is a miss"
like "$(cat err)" "digest|bytes, want|larger than the [0-9]+ bytes declared" "the warning names the digest (or size) check"
tree_list small >got.list
same_files got.list mine.list "the old directory is unchanged"
ok "no staging directory is left" sh -c '! ls -a | grep -q "^.ctxpack-"'
exits 1 "--fail-on-miss turns it into a failure" \
	ctxpack cache restore --store "$STORE" --key one --fail-on-miss small
python3 -c '
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[len(b) // 2] ^= 0xff
open(sys.argv[2], "wb").write(bytes(b))' b1.orig "$b1"
out=$(ctxpack cache restore --store "$STORE" --key one small 2>err)
is "$out" miss "a damaged blob is a miss"
tree_list small >got.list
same_files got.list mine.list "the old directory is unchanged"
cp b1.orig "$b1"
is "$(ctxpack cache restore -q --store "$STORE" --key one small)" hit "the repaired blob restores"
is "$(cat small/f)" one "with its content"

# the same on the registry: damage the blob in the registry's storage
case $stores in
*" "*)
	RSTORE=$REG/ci/atomic
	echo one >small/f
	ctxpack cache save -q --store "$RSTORE" --key dmg small
	echo mine >small/f
	d=$(layer_digest one)
	tag=$(layer_of "$RSTORE" dmg)
	ld=$(curl -s -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		"http://$REG/v2/ci/atomic/manifests/$tag" | python3 -c '
import json, sys; print(json.load(sys.stdin)["layers"][0]["digest"][7:])')
	data=$(find "$REG_DIR/data" -path "*/blobs/sha256/*/$ld/data")
	ok "found the blob in the registry's storage" test -f "$data"
	python3 -c '
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[-1] ^= 0x01
open(sys.argv[1], "wb").write(bytes(b))' "$data"
	out=$(ctxpack cache restore --store "$RSTORE" --key dmg small 2>err)
	is "$out" miss "registry: a blob that fails its digest is a miss"
	like "$(cat err)" "digest|checksum" "registry: and the warning says why"
	is "$(cat small/f)" mine "registry: the old directory is unchanged"
	;;
*) skip "no registry"; skip "-"; skip "-"; skip "-" ;;
esac

done_testing
