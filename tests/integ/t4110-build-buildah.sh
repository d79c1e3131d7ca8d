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


# buildah's own files: a Containerfile before a Dockerfile, and the ignore
# file <file>.dockerignore, else <file>.containerignore, else
# .containerignore, else .dockerignore; buildah applies that file again to
# the archive it unpacks, so ctxpack walks with the same one.  Each case:
# the image of `ctxpack build -- buildah build -` holds what the image of
# `buildah build .` holds.
img_list() { # tag: the names below /ctx in that image
	cid=$($BUILDAH from "$1" 2>/dev/null) && mnt=$($BUILDAH mount "$cid" 2>/dev/null) || {
		echo "(no image $1)"; return; }
	(cd "$mnt/ctx" && find . -mindepth 1 | LC_ALL=C sort | tr '\n' ' ')
	$BUILDAH umount "$cid" >/dev/null 2>&1; $BUILDAH rm "$cid" >/dev/null 2>&1
}
k=0
same_as_buildah() { # description, context, buildah build options...; own image's names in $TESTDIR/own.txt
	desc=$1; ctx=$2; shift 2
	k=$((k + 1))
	: > "$TESTDIR/own.txt"
	(cd "$ctx" && $BUILDAH build --isolation chroot -q -t "own$k" "$@" . > "$TESTDIR/own.log" 2>&1) ||
		{ _fail "$desc (buildah build . failed)"; sed 's/^/#   /' "$TESTDIR/own.log" >&2; return; }
	(cd "$ctx" && ctxpack build -- $BUILDAH build --isolation chroot -q -t "got$k" "$@" - \
		> "$TESTDIR/got.log" 2>&1) ||
		{ _fail "$desc (ctxpack build failed)"; sed 's/^/#   /' "$TESTDIR/got.log" >&2; return; }
	img_list "own$k" > "$TESTDIR/own.txt"
	is "$(img_list "got$k")" "$(cat "$TESTDIR/own.txt")" "$desc"
}
K=$TESTDIR/cign; mkdir -p "$K"
for f in a b c; do echo $f > "$K/$f.txt"; done
printf 'FROM scratch\nCOPY . /ctx/\n' > "$K/Dockerfile"
printf 'a.txt\n' > "$K/.containerignore"; printf 'b.txt\n' > "$K/.dockerignore"
same_as_buildah ".containerignore before .dockerignore: what buildah build . keeps" "$K"
like "$(cat "$TESTDIR/own.txt")" "b.txt" "... b.txt kept (only .dockerignore names it)"
rm "$K/Dockerfile"; printf 'FROM scratch\nCOPY . /ctx/\n' > "$K/Containerfile"
printf 'c.txt\n' > "$K/Containerfile.containerignore"
same_as_buildah "a Containerfile and its Containerfile.containerignore" "$K"
is "$(cat "$TESTDIR/own.txt")" "./.containerignore ./.dockerignore ./Containerfile ./Containerfile.containerignore ./a.txt ./b.txt " \
	"... c.txt out, the other ignore files not read"
printf 'b.txt\n' > "$K/Containerfile.dockerignore"
same_as_buildah "Containerfile.dockerignore before Containerfile.containerignore" "$K"
printf 'a.txt\n' > "$TESTDIR/ign.txt"
same_as_buildah "buildah's --ignorefile: the walk's too" "$K" --ignorefile "$TESTDIR/ign.txt"
like "$(cat "$TESTDIR/own.txt")" "b.txt" "... b.txt kept (only Containerfile.dockerignore names it)"
mkdir -p "$K/sub"; mv "$K/Containerfile" "$K/sub/app.Containerfile"
rm "$K/Containerfile.containerignore" "$K/Containerfile.dockerignore"
printf 'a.txt\nb.txt\n' > "$K/sub/app.Containerfile.containerignore"
same_as_buildah "buildah's -f only: ctxpack takes it, and its .containerignore" "$K" -f sub/app.Containerfile
like "$(cat "$TESTDIR/got.log")" "buildah -f sub/app.Containerfile: ctxpack takes" "... and says so"
(cd "$K" && ctxpack build -f sub/app.Containerfile -- $BUILDAH build --isolation chroot -q -t passf - \
	> "$TESTDIR/got.log" 2>&1)
is "$?" 0 "ctxpack's -f only: passed on to buildah"
is "$(img_list passf)" "$(cat "$TESTDIR/own.txt")" "... the same image"

# buildah matches as Docker clients before 23 did (fileutils' Matches: a
# pattern is a regexp, a path's ancestor at the pattern's depth counts)
# and reads its lines its own way (no trim after '!')
M=$TESTDIR/match; mkdir -p "$M/lib" "$M/q" "$M/  sp"
echo a > "$M/lib/a.txt"; echo k > "$M/q/keep"; : > "$M/notes(old).txt"; : > "$M/notesold.txt"
echo s > "$M/  sp/x"
printf 'FROM scratch\nCOPY . /ctx/\n' > "$M/Dockerfile"
printf 'lib/**\n!lib\nq\n!q/keep\nq*\nnotes(old).txt\n' > "$M/.dockerignore"
same_as_buildah "the old matcher: lib/** + !lib, q + !q/keep + q*, notes(old).txt" "$M"
is "$(cat "$TESTDIR/own.txt")" "./  sp ./  sp/x ./.dockerignore ./Dockerfile ./lib ./lib/a.txt ./notes(old).txt " \
	"... what buildah keeps: lib/a.txt and notes(old).txt, not q/keep nor notesold.txt"
printf '*\n!  sp\n' > "$M/.dockerignore"
same_as_buildah "'!  sp': buildah's exception keeps its spaces" "$M"
like "$(cat "$TESTDIR/own.txt")" "  sp/x" "... '  sp/x' kept"
rm -r "$K/sub"
(cd "$K" && ctxpack build -- $BUILDAH build --isolation chroot -q -t nofile - > "$TESTDIR/got.log" 2>&1)
is "$?" 1 "no Containerfile nor Dockerfile: an error before buildah runs"
like "$(cat "$TESTDIR/got.log")" "no Containerfile or Dockerfile in " "... saying so"
done_testing
