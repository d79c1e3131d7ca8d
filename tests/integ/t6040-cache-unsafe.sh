#!/bin/sh
# Crafted cache entries never write outside the target or through a link:
# names with "..", absolute names, writes through a symlink the archive
# made (to a place outside, absolute or relative), hard links out of the
# tree are refused; symlinks that point out (directly, absolutely, through
# a chain of in-tree links) are restored verbatim, as tar does, since
# every venv and workspace node_modules has them.  Each archive is built
# with python's tarfile, compressed with zstd and put into the oci: layout
# in place of a real entry's layer (manifest and index.json rewritten to
# match, so every digest checks out).
. "$(dirname "$0")/lib.sh"

command -v zstd >/dev/null || { echo "1..0 # SKIP zstd not installed"; exit 0; }
cd "$TESTDIR" || exit 1
umask 022
STORE=oci:$TESTDIR/store
mkdir -p work && cd work || exit 1
OUT=$TESTDIR/outside

# craft KEY CASE: save a real entry for KEY, then swap its layer for the
# crafted archive CASE.
craft() {
	mkdir -p target && echo mine >target/mine
	ctxpack cache save -q --store "$STORE" --key "$1" target || return 1
	python3 - "$2" "$OUT" >crafted.tar <<'EOF' || return 1
import io, sys, tarfile
case, out = sys.argv[1], sys.argv[2]
t = tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.PAX_FORMAT)
def f(name, data=b"pwned\n"):
    i = tarfile.TarInfo(name); i.size = len(data); i.mode = 0o644
    t.addfile(i, io.BytesIO(data))
def d(name):
    i = tarfile.TarInfo(name); i.type = tarfile.DIRTYPE; i.mode = 0o755; t.addfile(i)
def l(name, target, kind=tarfile.SYMTYPE):
    i = tarfile.TarInfo(name); i.type = kind; i.linkname = target; t.addfile(i)
f("fine.txt", b"fine\n")
if case == "dotdot":
    f("../../outside")
elif case == "dotdot-deep":
    d("a"); f("a/../../../outside")
elif case == "absolute":
    f(out)
elif case == "symlink-up":
    l("esc", "../../outside")
elif case == "symlink-abs":
    l("esc", out)
elif case == "symlink-abs-dir":
    l("esc", out + "-dir"); f("esc/pwned")
elif case == "symlink-rel-dir":
    l("esc", "../../outside-dir"); f("esc/pwned")
elif case == "symlink-deep-dir":
    d("a"); d("a/b"); l("a/b/esc", out + "-dir"); d("a/b/esc/sub"); f("a/b/esc/sub/pwned")
elif case == "hardlink-through":
    l("esc", out + "-dir"); l("h", "esc/victim", tarfile.LNKTYPE)
elif case == "symlink-chain":
    d("d"); l("d/up", ".."); l("x", "d/up/../outside")
elif case == "through-symlink":
    d("sub"); l("s", "sub"); f("s/pwned")
elif case == "hardlink-up":
    l("h", "../../outside", tarfile.LNKTYPE)
elif case == "hardlink-abs":
    l("h", out, tarfile.LNKTYPE)
elif case == "replace-dir":
    d("x"); f("x/y"); l("x", "x/y")
elif case == "benign":
    d("./ok"); f("./ok//file", b"ok\n"); l("ok/link", "file"); l("ok/up", "../fine.txt")
    f("ok/file", b"replaced\n")
t.close()
EOF
	zstd -q -f crafted.tar -o crafted.tar.zst || return 1
	python3 - "$1" <<'EOF'
import hashlib, json, os, sys, tarfile
key = sys.argv[1]
store = os.environ["TESTDIR"] + "/store"
blob = open("crafted.tar.zst", "rb").read()
bd = hashlib.sha256(blob).hexdigest()
open("%s/blobs/sha256/%s" % (store, bd), "wb").write(blob)
ix = json.load(open(store + "/index.json"))
for desc in ix["manifests"]:
    m = json.load(open("%s/blobs/sha256/%s" % (store, desc["digest"][7:])))
    if m["annotations"]["io.ctxpack.cache.key"] != key:
        continue
    m["layers"][0]["digest"] = "sha256:" + bd
    m["layers"][0]["size"] = len(blob)
    # what save records of the archive, so the bounds pass and the rules
    # under test decide
    an = m["layers"][0]["annotations"]
    an["io.ctxpack.cache.uncompressed.size"] = str(os.path.getsize("crafted.tar"))
    an["io.ctxpack.cache.entries"] = str(len(tarfile.open("crafted.tar").getmembers()))
    raw = json.dumps(m, separators=(",", ":"), sort_keys=True).encode()
    md = hashlib.sha256(raw).hexdigest()
    open("%s/blobs/sha256/%s" % (store, md), "wb").write(raw)
    desc["digest"] = "sha256:" + md
    desc["size"] = len(raw)
json.dump(ix, open(store + "/index.json", "w"))
EOF
}

export TESTDIR
for c in dotdot dotdot-deep absolute symlink-abs-dir symlink-rel-dir symlink-deep-dir \
	through-symlink hardlink-up hardlink-abs hardlink-through replace-dir; do
	rm -rf target "$OUT" "$OUT-dir" && mkdir -p "$OUT-dir" && echo orig >"$OUT-dir/victim"
	craft "evil-$c" "$c" || { _fail "craft $c"; continue; }
	out=$(ctxpack cache restore --store "$STORE" --key "evil-$c" target 2>err)
	is "$out" miss "$c: the entry is refused (a miss)"
	like "$(cat err)" "refused" "$c: the warning says it was refused"
	ok "$c: nothing written outside" sh -c "test ! -e '$OUT' && test \"\$(ls -A '$OUT-dir')\" = victim &&
		test \"\$(cat '$OUT-dir/victim')\" = orig && test ! -e ../outside && test ! -e ../../outside"
	is "$(ls -A target)" mine "$c: the target is unchanged"
	ok "$c: no staging directory left" sh -c '! ls -a | grep -q "^.ctxpack-"'
	diag "$c: $(grep -o "refused.*" err)"
	exits 1 "$c: --fail-on-miss fails" \
		ctxpack cache restore --store "$STORE" --key "evil-$c" --fail-on-miss target
done

# links that point out are restored verbatim (and lead nowhere new: the
# extraction never followed them)
for c in symlink-up symlink-abs symlink-chain; do
	rm -rf target "$OUT" "$OUT-dir" && mkdir -p "$OUT-dir"
	craft "out-$c" "$c" || { _fail "craft $c"; continue; }
	is "$(ctxpack cache restore -q --store "$STORE" --key "out-$c" target)" hit \
		"$c: restored"
	ok "$c: nothing written outside" sh -c "test ! -e '$OUT' && test -z \"\$(ls -A '$OUT-dir')\" &&
		test ! -e ../outside && test ! -e ../../outside"
done
is "$(readlink target/x)" "d/up/../outside" "the chain's link is kept verbatim"
is "$(readlink target/d/up)" ".." "and so is its first link"

# a crafted but harmless archive ("./", "//", a later entry replacing an
# earlier file, links inside the tree) restores
rm -rf target
craft evil-benign benign || _fail "craft benign"
is "$(ctxpack cache restore -q --store "$STORE" --key evil-benign target)" hit \
	"a harmless crafted archive restores"
is "$(cat target/ok/file)" replaced "a later entry replaces an earlier file, as tar does"
is "$(cat target/ok/link) $(cat target/ok/up)" "replaced fine" "in-tree symlinks work"

done_testing
