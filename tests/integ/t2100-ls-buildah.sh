#!/bin/sh
# ctxpack ls against a real builder: buildah builds `FROM scratch` +
# `COPY . /ctx/` with each .dockerignore, and the image's files must equal
# `ctxpack ls`.
#
# buildah follows the classic builder where BuildKit differs
# (dockerignore.md section 9), so these cases are kept out of this test
# and covered by the vector tests instead:
#  - wildcard exceptions below an excluded directory (`*` + `!*/*.txt`):
#    classic prunes the directory and loses them, BuildKit keeps them;
#  - the Dockerfile and .dockerignore themselves: the classic path sends
#    them and removes them after reading, BuildKit never sends excluded
#    ones; both are left out of the comparison.
. "$(dirname "$0")/lib.sh"

if ! command -v buildah >/dev/null 2>&1; then
	skip "buildah not installed"; done_testing; exit 0
fi
BUILDAH="buildah --root $TESTDIR/storage --runroot $TESTDIR/run --storage-driver vfs"

C=$TESTDIR/ctx
python3 - "$C" <<'PY'
import os, sys
root = sys.argv[1]
files = """
backend/app/__init__.py
backend/app/main.py
backend/app/__pycache__/main.cpython-312.pyc
backend/tests/test_main.py
backend/tests/__pycache__/test_main.cpython-312.pyc
backend/.venv/bin/python
backend/.venv/lib/site.py
backend/pyproject.toml
backend/uv.lock
frontend/src/App.tsx
frontend/src/main.tsx
frontend/src/App.test.tsx
frontend/node_modules/react/index.js
frontend/node_modules/react/package.json
frontend/node_modules/.bin/vite
frontend/dist/index.html
frontend/dist/assets/app.js
frontend/package.json
frontend/pnpm-lock.yaml
docs/README.md
docs/guide.md
docs/img/logo.png
.git/HEAD
.git/objects/ab/cdef
.github/workflows/ci.yml
.env
.env.example
README.md
Makefile
notes.txt
scripts/deploy.sh
scripts/local.sh
src/keep.txt
src/drop.log
src/deep/a/b/c.log
src/deep/a/b/c.txt
""".split()
for f in files:
    p = os.path.join(root, f)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as fh:
        fh.write(f + "\n")
os.makedirs(os.path.join(root, "emptydir"), exist_ok=True)
os.makedirs(os.path.join(root, "src/emptysub"), exist_ok=True)
os.symlink("main.py", os.path.join(root, "backend/app/link.py"))
PY
printf 'FROM scratch\nCOPY . /ctx/\n' > "$C/Dockerfile"

n=0
check_ignore() { # description, ignore file content
	n=$((n + 1))
	printf '%s' "$2" > "$C/.dockerignore"
	$BUILDAH build --isolation chroot -q -t "img$n" "$C" >"$TESTDIR/build.log" 2>&1 || {
		_fail "$1 (buildah build failed)"; sed 's/^/#   /' "$TESTDIR/build.log" >&2; return; }
	cid=$($BUILDAH from "img$n") && mnt=$($BUILDAH mount "$cid") || {
		_fail "$1 (buildah mount failed)"; return; }
	(cd "$mnt/ctx" && find . -mindepth 1 \( -type d -printf '%P/\n' \) -o -printf '%P\n') |
		grep -vxE 'Dockerfile|\.dockerignore' | LC_ALL=C sort > "$TESTDIR/image.txt"
	ctxpack ls "$C" | grep -vxE 'Dockerfile|\.dockerignore' | LC_ALL=C sort > "$TESTDIR/ls.txt"
	if cmp -s "$TESTDIR/image.txt" "$TESTDIR/ls.txt"; then _pass "$1"; else
		_fail "$1"; diff "$TESTDIR/image.txt" "$TESTDIR/ls.txt" | sed 's/^/#   /' >&2; fi
	$BUILDAH umount "$cid" >/dev/null 2>&1; $BUILDAH rm "$cid" >/dev/null 2>&1
}

check_ignore "no .dockerignore patterns" ""
check_ignore "typical monorepo ignore" '.git
**/node_modules
**/.venv
**/__pycache__
frontend/dist
.env
'
check_ignore "allow-list: * with literal exceptions" '*
!backend
!frontend/src
!frontend/package.json
!frontend/pnpm-lock.yaml
'
check_ignore "allow-list then re-exclude inside" '*
!backend
backend/.venv
backend/**/__pycache__
'
check_ignore "**/ patterns anywhere" '**/*.log
**/*.pyc
**/.bin
'
check_ignore "exception of a file below an excluded dir" 'docs
!docs/README.md
'
check_ignore "trailing slash and leading slash are ignored" '/docs/
frontend/dist/
scripts/
'
check_ignore "wildcards and classes" '*.txt
src/*.log
[Mm]akefile
.env*
!.env.example
'
check_ignore "comments, blank lines, spaces" '# a comment

   .git   
 # not a comment but a pattern
**/node_modules
'
check_ignore "nested exceptions and re-exclusion" 'src
!src/deep
src/deep/**/*.log
'
check_ignore "question mark and double star in the middle" 'frontend/**/App*.tsx
backend/**/test_?ain.py
'
check_ignore "exclude everything but one nested dir (literal exception)" '*
!src/deep/a
'
check_ignore "dot directories and hidden files" '.*
!.github
'

done_testing
