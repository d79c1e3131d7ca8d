#!/bin/sh
# ctxpack build feeding a real builder: `buildah build ... -` reads the
# context archive from stdin (zstd, gzip or plain tar); a Dockerfile that
# copies the whole context gives an image whose files are `ctxpack ls`,
# with the archive's contents and modes.  The .dockerignore excludes the
# Dockerfile itself in one case: the archive carries it anyway, so the
# build works.  buildah uses a private storage root under $TESTDIR.
. "$(dirname "$0")/lib.sh"

if ! command -v buildah >/dev/null 2>&1; then
	skip "buildah not installed"; done_testing; exit 0
fi
BUILDAH="buildah --root $TESTDIR/storage --runroot $TESTDIR/run --storage-driver vfs"
at_exit "$BUILDAH rm -a >/dev/null 2>&1; $BUILDAH rmi -a -f >/dev/null 2>&1"

C=$TESTDIR/ctx
python3 - "$C" <<'PY'
import os, sys
from tree import writer
root = sys.argv[1]
w = writer(root)
w("Dockerfile", b"FROM scratch\nCOPY . /ctx/\n")
w("app/main.py", b"print('hi')\n" * 100)
w("app/run.sh", b"#!/bin/sh\nexec python3 main.py\n", 0o775)
w("app/data/blob.bin", os.urandom(5 << 20))
w("app/data/readme.txt", b"data\n", 0o600)
w("web/src/App.tsx", b"export default () => null\n")
w("web/node_modules/react/index.js", b"module.exports = {}\n")
w("notes.log", b"log\n")
w("ünï/cødé.txt", b"utf8 name\n")
os.makedirs(os.path.join(root, "empty/dir"))
os.symlink("main.py", os.path.join(root, "app/link.py"))
PY

# files DIR: path, type, normalized mode, content hash of a tree (listed
# in archive order by ctxpack ls), without the Dockerfile and .dockerignore
files() {
	python3 - "$1" <<'PY'
import hashlib, os, stat, sys
d = sys.argv[1]
out = []
for dp, dns, fns in os.walk(d):
    for n in dns + fns:
        p = os.path.join(dp, n)
        rel = os.path.relpath(p, d)
        if rel in ("Dockerfile", ".dockerignore"):
            continue
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode):
            out.append("%s l %s" % (rel, os.readlink(p)))
        elif stat.S_ISDIR(st.st_mode):
            out.append("%s/ d" % rel)
        else:
            out.append("%s f %o %s" % (rel, stat.S_IMODE(st.st_mode),
                       hashlib.sha256(open(p, "rb").read()).hexdigest()[:16]))
print("\n".join(sorted(out)))
PY
}

n=0
check_build() { # description, compress, ignore file content
	n=$((n + 1))
	printf '%s' "$3" > "$C/.dockerignore"
	if ! ctxpack build --compress "$2" "$C" -- $BUILDAH build --isolation chroot -q \
		-t "ctxtest$n" -f Dockerfile - > "$TESTDIR/build.log" 2>&1; then
		_fail "$1 (build failed)"; sed 's/^/#   /' "$TESTDIR/build.log" | tail -20 >&2; return
	fi
	cid=$($BUILDAH from "ctxtest$n" 2>/dev/null) && mnt=$($BUILDAH mount "$cid" 2>/dev/null) || {
		_fail "$1 (buildah from/mount failed)"; return; }
	files "$mnt/ctx" > "$TESTDIR/image.txt"
	# what ctxpack ls says, with the archive's modes and contents
	rm -rf "$TESTDIR/x" && mkdir "$TESTDIR/x"
	ctxpack pack -q --compress none -o - "$C" | tar -xf - -C "$TESTDIR/x"
	files "$TESTDIR/x" > "$TESTDIR/archive.txt"
	ctxpack ls "$C" | grep -vxE 'Dockerfile|\.dockerignore' | LC_ALL=C sort > "$TESTDIR/ls.txt"
	cut -d' ' -f1 "$TESTDIR/image.txt" | LC_ALL=C sort > "$TESTDIR/image-names.txt"
	if cmp -s "$TESTDIR/image-names.txt" "$TESTDIR/ls.txt" &&
	   cmp -s "$TESTDIR/image.txt" "$TESTDIR/archive.txt"; then
		_pass "$1"
	else
		_fail "$1"
		diff "$TESTDIR/ls.txt" "$TESTDIR/image-names.txt" | sed 's/^/#   ls|image /' >&2
		diff "$TESTDIR/archive.txt" "$TESTDIR/image.txt" | sed 's/^/#   archive|image /' >&2
	fi
	$BUILDAH umount "$cid" >/dev/null 2>&1; $BUILDAH rm "$cid" >/dev/null 2>&1
}

check_build "zstd, no patterns: the image holds the context" zstd ""
check_build "gzip, typical patterns" gzip '**/node_modules
*.log
'
check_build "plain tar, the ignore file excludes the Dockerfile itself" none 'Dockerfile
.dockerignore
web
'
check_build "zstd, allow-list" zstd '*
!app
app/data/*.bin
'

# no --compress: buildah, with its global options (--root, --runroot,
# --storage-driver) before build, is known to read zstd
printf '' > "$C/.dockerignore"
ctxpack build -v "$C" -- $BUILDAH build --isolation chroot -q -t ctxdefault -f Dockerfile - \
	> "$TESTDIR/build.log" 2>&1
is "$?" 0 "no --compress: the build works"
like "$(cat "$TESTDIR/build.log")" "buildah reads the archive: zstd" \
	"... with zstd, chosen for buildah after its global options"

# a builder that fails: its status comes back
printf 'FROM scratch\nCOPY missing-file /x\n' > "$C/Dockerfile"
ctxpack build "$C" -- $BUILDAH build --isolation chroot -q -t broken -f Dockerfile - \
	> "$TESTDIR/build.log" 2>&1
rc=$?
is "$rc" 125 "a failing build returns buildah's status (125)"

done_testing
