#!/bin/sh
# The CI cache restores real dependency trees as hits, faithfully (issue
# 14): a python3 venv (default, --copies, --system-site-packages), a real
# npm workspace install (npm registry; skipped when it cannot be reached), a
# pnpm-layout tree built here (node_modules/.pnpm, links to it, .bin links,
# workspace links), and crafted archives with what `tar -x` as root keeps
# (setuid/setgid/sticky, 0600 files, 0700 and 0500 directories, hard
# links).  Each tree is saved, moved aside and restored at the same path,
# then compared with `diff -r --no-dereference` and a `find -printf` listing
# of path, type, mode and link target.  --safe-links refuses the venv.
. "$(dirname "$0")/lib.sh"

command -v zstd >/dev/null || { echo "1..0 # SKIP zstd not installed"; exit 0; }
cd "$TESTDIR" || exit 1
umask 022
STORE=oci:$TESTDIR/store

listing() { (cd "$1" && find . -printf '%p %y %m %l\n' | LC_ALL=C sort); }

# roundtrip NAME DIR [restore options]: save DIR, move it aside, restore it
# at the same path, compare
roundtrip() {
	name=$1 dir=$2; shift 2
	if ! ctxpack cache save -q --store "$STORE" --key "$name" "$dir" 2>save.err; then
		_fail "$name: saved"; sed 's/^/#   /' save.err >&2; return
	fi
	rm -rf "$dir.orig" && mv "$dir" "$dir.orig"
	is "$(ctxpack cache restore -q --store "$STORE" --key "$name" "$@" "$dir" 2>restore.err)" hit \
		"$name: restored as a hit"
	sed 's/^/#   /' restore.err >&2
	ok "$name: diff -r --no-dereference finds no difference" \
		diff -r --no-dereference "$dir.orig" "$dir"
	listing "$dir.orig" >orig.list
	listing "$dir" >restored.list
	ok "$name: the same paths, types, modes and link targets" diff orig.list restored.list
	diag "$name: $(wc -l <orig.list) entries, $(grep -c ' l ' orig.list) symlinks"
}

# ---- python venvs
PY=$(command -v python3)
python3 -m venv venv-default
ok "the venv has links out of it" sh -c 'case $(readlink venv-default/bin/python3) in /*) ;; *) exit 1;; esac'
roundtrip venv-default venv-default
is "$(venv-default/bin/python -c 'import sys; print(sys.prefix == sys.base_prefix)')" False \
	"the restored venv runs, as a venv"
ok "its pip runs" venv-default/bin/python -m pip --version

python3 -m venv --copies --without-pip venv-copies
roundtrip venv-copies venv-copies
ok "the --copies venv runs" venv-copies/bin/python -c 'import json'

python3 -m venv --system-site-packages --without-pip venv-system
roundtrip venv-system venv-system
is "$(venv-system/bin/python -c 'import sys; print(sys.flags.no_site)')" 0 \
	"the --system-site-packages venv runs"

# --safe-links refuses links that leave the directory; the default keeps them
rm -rf venv-default && mkdir venv-default
out=$(ctxpack cache restore --store "$STORE" --key venv-default --safe-links venv-default 2>err)
is "$out" miss "--safe-links: the venv's links out of it are refused"
like "$(cat err)" "leads out of the directory \(--safe-links\)" "--safe-links: the warning says why"
is "$(ls -A venv-default)" "" "--safe-links: the old directory is unchanged"

# ---- a pnpm layout, built here
python3 - <<'EOF'
import os
def w(p, data="", mode=0o644):
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as f:
        f.write(data)
    os.chmod(p, mode)
def l(p, target):
    os.makedirs(os.path.dirname(p), exist_ok=True)
    os.symlink(target, p)
root = "mono"
w(root + "/package.json", '{"name":"mono","private":true}\n')
w(root + "/pnpm-workspace.yaml", "packages:\n  - packages/*\n")
for app in ("web", "ui"):
    w("%s/packages/%s/package.json" % (root, app), '{"name":"%s","version":"1.0.0"}\n' % app)
    w("%s/packages/%s/index.js" % (root, app), "module.exports = '%s'\n" % app)
nm = root + "/node_modules"
pkgs = {"react@18.3.1": "react", "loose-envify@1.4.0": "loose-envify",
        "js-tokens@4.0.0": "js-tokens", "@vitejs+plugin-react@4.3.1": "@vitejs/plugin-react",
        "vite@5.4.2": "vite"}
for key, name in pkgs.items():
    base = "%s/.pnpm/%s/node_modules/%s" % (nm, key, name)
    w(base + "/package.json", '{"name":"%s"}\n' % name)
    w(base + "/index.js", "module.exports = 1\n")
    w(base + "/README.md", "# %s\n" % name)
w(nm + "/.pnpm/vite@5.4.2/node_modules/vite/bin/vite.js", "#!/usr/bin/env node\n", 0o755)
w(nm + "/.pnpm/loose-envify@1.4.0/node_modules/loose-envify/cli.js", "#!/usr/bin/env node\n", 0o755)
# dependencies of a package: siblings in its .pnpm directory
l(nm + "/.pnpm/react@18.3.1/node_modules/loose-envify", "../../loose-envify@1.4.0/node_modules/loose-envify")
l(nm + "/.pnpm/loose-envify@1.4.0/node_modules/js-tokens", "../../js-tokens@4.0.0/node_modules/js-tokens")
# the hoisted .pnpm/node_modules
l(nm + "/.pnpm/node_modules/js-tokens", "../js-tokens@4.0.0/node_modules/js-tokens")
# direct dependencies
l(nm + "/react", ".pnpm/react@18.3.1/node_modules/react")
l(nm + "/vite", ".pnpm/vite@5.4.2/node_modules/vite")
l(nm + "/@vitejs/plugin-react", "../.pnpm/@vitejs+plugin-react@4.3.1/node_modules/@vitejs/plugin-react")
# .bin
l(nm + "/.bin/vite", "../.pnpm/vite@5.4.2/node_modules/vite/bin/vite.js")
l(nm + "/.bin/loose-envify", "../.pnpm/loose-envify@1.4.0/node_modules/loose-envify/cli.js")
# workspace links, a dangling link, an absolute one
l(nm + "/web", "../packages/web")
l(nm + "/ui", "../packages/ui")
l(nm + "/.pnpm/lock-missing", "../no/such/file")
l(nm + "/.bin/node", "/usr/bin/node")
w(nm + "/.modules.yaml", "layoutVersion: 5\n")
EOF
roundtrip pnpm mono/node_modules
is "$(cat mono/node_modules/web/index.js)" "module.exports = 'web'" "the workspace link leads to the package"
ok "the .bin link leads to an executable" test -x mono/node_modules/.bin/vite
is "$(readlink mono/node_modules/.pnpm/lock-missing)" "../no/such/file" "the dangling link is kept"

# ---- what tar -x as root keeps, in a crafted archive: modes and hard links
python3 - <<'EOF' >crafted.tar
import io, sys, tarfile
t = tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.PAX_FORMAT)
def f(n, data=b"x\n", mode=0o644):
    i = tarfile.TarInfo(n); i.size = len(data); i.mode = mode; t.addfile(i, io.BytesIO(data))
def d(n, mode):
    i = tarfile.TarInfo(n); i.type = tarfile.DIRTYPE; i.mode = mode; t.addfile(i)
def hl(n, target, mode=0o644):
    i = tarfile.TarInfo(n); i.type = tarfile.LNKTYPE; i.linkname = target; i.mode = mode; t.addfile(i)
def sl(n, target):
    i = tarfile.TarInfo(n); i.type = tarfile.SYMTYPE; i.linkname = target; i.mode = 0o777; t.addfile(i)
d("bin", 0o755)
f("bin/suid", b"#!/bin/sh\n", 0o4755)
f("bin/sgid", b"#!/bin/sh\n", 0o2755)
hl("bin/suid-again", "bin/suid", 0o4755)
d("private", 0o700)
f("private/key", b"secret\n", 0o600)
hl("private/key-link", "private/key", 0o600)
d("tmp", 0o1777)
d("ro", 0o500)
d("ro/sub", 0o555)
f("ro/sub/f", b"deep\n", 0o444)
f("ro/g", b"g\n", 0o400)
sl("abs", "/etc/hostname")
hl("abs-again", "abs", 0o777)
t.close()
EOF
mkdir -p crafted-src && echo placeholder >crafted-src/p
ctxpack cache save -q --store "$STORE" --key crafted crafted-src
zstd -q -f crafted.tar -o crafted.tar.zst
python3 - "$TESTDIR/store" crafted <<'EOF'
import hashlib, json, os, sys, tarfile
store, key = sys.argv[1:]
blob = open("crafted.tar.zst", "rb").read()
bd = hashlib.sha256(blob).hexdigest()
open("%s/blobs/sha256/%s" % (store, bd), "wb").write(blob)
ix = json.load(open(store + "/index.json"))
for desc in ix["manifests"]:
    m = json.load(open("%s/blobs/sha256/%s" % (store, desc["digest"][7:])))
    if m["annotations"]["io.ctxpack.cache.key"] != key:
        continue
    l = m["layers"][0]
    l["digest"], l["size"] = "sha256:" + bd, len(blob)
    l["annotations"]["io.ctxpack.cache.uncompressed.size"] = str(os.path.getsize("crafted.tar"))
    l["annotations"]["io.ctxpack.cache.entries"] = str(len(tarfile.open("crafted.tar").getmembers()))
    raw = json.dumps(m, separators=(",", ":"), sort_keys=True).encode()
    md = hashlib.sha256(raw).hexdigest()
    open("%s/blobs/sha256/%s" % (store, md), "wb").write(raw)
    desc["digest"], desc["size"] = "sha256:" + md, len(raw)
json.dump(ix, open(store + "/index.json", "w"))
EOF
mkdir -p by-tar && tar -x -p -f crafted.tar -C by-tar
is "$(ctxpack cache restore -q --store "$STORE" --key crafted crafted-src)" hit "the crafted archive restores"
listing by-tar >tar.list
listing crafted-src >ours.list
# the directory itself: tar -x keeps the one it extracts into
ok "the same paths, types, modes and link targets as tar -x -p" \
	sh -c 'grep -v "^\. " tar.list >a; grep -v "^\. " ours.list >b; diff a b'
ok "diff -r --no-dereference against tar -x -p" diff -r --no-dereference by-tar crafted-src
is "$(stat -c '%a %h' crafted-src/bin/suid crafted-src/private/key crafted-src/ro crafted-src/tmp | tr '\n' ' ')" \
	"4755 2 600 2 500 3 1777 2 " "setuid, 0600, 0500 and sticky as in the archive; hard links as links"
is "$(stat -c %i crafted-src/bin/suid)" "$(stat -c %i crafted-src/bin/suid-again)" "a hard link is the same inode"
is "$(stat -c '%h %N' crafted-src/abs-again)" "2 'crafted-src/abs-again' -> '/etc/hostname'" \
	"a hard link to a symlink is the symlink"
# the old tree (0500 directories inside) is removed by the next restore
is "$(ctxpack cache restore -q --store "$STORE" --key crafted crafted-src)" hit "restored again over it"
ok "the old tree with its 0500 directories is gone" sh -c '! ls -a | grep -q "^\.ctxpack-"'

# ---- a real npm workspace install
mkdir -p ws/packages/app ws/packages/lib
cat >ws/package.json <<'EOF'
{"name": "ws-root", "private": true, "workspaces": ["packages/*"]}
EOF
cat >ws/packages/lib/package.json <<'EOF'
{"name": "@ws/lib", "version": "1.0.0", "main": "index.js", "dependencies": {"ms": "2.1.3"}}
EOF
echo "module.exports = require('ms')('2h')" >ws/packages/lib/index.js
cat >ws/packages/app/package.json <<'EOF'
{"name": "app", "version": "1.0.0", "dependencies": {"@ws/lib": "1.0.0", "semver": "7.6.3"}}
EOF
export npm_config_cache=$TESTDIR/npm-cache npm_config_audit=false npm_config_fund=false \
	npm_config_update_notifier=false npm_config_loglevel=error
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY
if ! command -v npm >/dev/null; then
	skip "npm is not installed: the npm workspace"
elif ! timeout 60 npm ping >npm.err 2>&1; then
	skip "the npm registry cannot be reached: the npm workspace"
elif ! (cd ws && timeout 300 npm install --no-audit --no-fund >../npm.err 2>&1); then
	skip "npm install failed: the npm workspace ($(tail -1 npm.err))"
else
	ok "npm made workspace links" sh -c 'test "$(readlink ws/node_modules/app)" = ../packages/app'
	ok "and .bin links" test -L ws/node_modules/.bin/semver
	roundtrip npm-workspace ws/node_modules
	is "$(cd ws && node -e "console.log(require('@ws/lib'), require('semver').valid('1.2.3'))")" \
		"7200000 1.2.3" "the restored workspace resolves its links"
	is "$(ws/node_modules/.bin/semver 2.0.0)" 2.0.0 "its .bin link runs"
fi

done_testing
