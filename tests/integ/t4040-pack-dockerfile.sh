#!/bin/sh
# The archive always holds the Dockerfile named by -f and the ignore file
# in use, as the docker CLI sends them, even when the patterns exclude
# them; they (and any missing parent directory) are inserted in archive
# order, and --json lists them under "added".
. "$(dirname "$0")/lib.sh"

# names ARCHIVE: the member names, one a line (dirs with '/')
names() {
	python3 - "$1" <<'PY'
import sys, tarfile
for m in tarfile.open(sys.argv[1]).getmembers():
    print(m.name + ("/" if m.isdir() else ""))
PY
}
# in_order ARCHIVE: "sorted" when the members are in archive order and
# every member's parent directory comes before it
in_order() {
	python3 - "$1" <<'PY'
import os, sys, tarfile
ms = [m.name for m in tarfile.open(sys.argv[1]).getmembers()]
key = [n.encode().replace(b"/", b"\0") for n in ms]
seen = set()
ok = key == sorted(key) and len(set(ms)) == len(ms)
for n in ms:
    d = os.path.dirname(n)
    if d and d not in seen:
        ok = False
    seen.add(n)
print("sorted" if ok else "unsorted: %r" % ms)
PY
}

C=$TESTDIR/ctx
mkdir -p "$C/src" "$C/docs"
echo main > "$C/src/main.c"
echo doc > "$C/docs/a.md"
printf 'FROM scratch\nCOPY . /ctx/\n' > "$C/Dockerfile"
printf '*\n!src\n' > "$C/.dockerignore"

# 1. the patterns exclude both
json=$(ctxpack pack --json -o "$TESTDIR/a.tar" --compress none "$C")
is "$(names "$TESTDIR/a.tar" | tr '\n' ' ')" ".dockerignore Dockerfile src/ src/main.c " \
	"excluded Dockerfile and .dockerignore are in the archive"
like "$json" '"added":\[".dockerignore","Dockerfile"\]' "--json lists them as added"
is "$(ctxpack ls "$C" | tr '\n' ' ')" "src/ src/main.c " "ls still leaves them out"
is "$(in_order "$TESTDIR/a.tar")" sorted "in archive order"

# 2. nothing to add when the patterns keep them
printf 'docs\n' > "$C/.dockerignore"
json=$(ctxpack pack --json -o "$TESTDIR/b.tar" --compress none "$C")
like "$json" '"added":\[\]' "kept by the patterns: nothing added"
is "$(names "$TESTDIR/b.tar" | tr '\n' ' ')" ".dockerignore Dockerfile src/ src/main.c " \
	"kept by the patterns: the same entries"

# 3. -f in an excluded directory, with its own ignore file
mkdir -p "$C/build/docker" "$C/build/other"
printf 'FROM scratch\n' > "$C/build/docker/Dockerfile"
echo x > "$C/build/other/x"
printf 'build\ndocs\n' > "$C/build/docker/Dockerfile.dockerignore"
json=$(ctxpack pack --json -f "$C/build/docker/Dockerfile" -o "$TESTDIR/c.tar" --compress none "$C")
is "$(names "$TESTDIR/c.tar" | tr '\n' ' ')" \
	".dockerignore Dockerfile build/ build/docker/ build/docker/Dockerfile build/docker/Dockerfile.dockerignore src/ src/main.c " \
	"-f below an excluded dir: the file, its ignore file and their parents"
like "$json" '"added":\["build/","build/docker/","build/docker/Dockerfile","build/docker/Dockerfile.dockerignore"\]' \
	"--json lists the parents too"
is "$(in_order "$TESTDIR/c.tar")" sorted "inserted in archive order, parents first"
is "$(python3 -c 'import sys,tarfile; m=tarfile.open(sys.argv[1]).getmember("build/docker"); print(oct(m.mode), m.mtime)' "$TESTDIR/c.tar")" \
	"0o755 946684800" "added directories are normalized"
(cd "$C" && ctxpack pack -q -f build/docker/Dockerfile -o "$TESTDIR/c2.tar" --compress none)
same_files "$TESTDIR/c.tar" "$TESTDIR/c2.tar" "-f relative to the working directory"

# 4. an --ignore-file outside the context is not added
printf '*\n' > "$TESTDIR/outside.ignore"
json=$(ctxpack pack --json --ignore-file "$TESTDIR/outside.ignore" -o "$TESTDIR/d.tar" --compress none "$C")
like "$json" '"added":\["Dockerfile"\]' "--ignore-file outside the context: only the Dockerfile added"
is "$(names "$TESTDIR/d.tar" | tr '\n' ' ')" "Dockerfile " "... and nothing else"

# 5. a Dockerfile outside the context: a warning, nothing added
printf 'FROM scratch\n' > "$TESTDIR/Dockerfile.out"
ctxpack pack -f "$TESTDIR/Dockerfile.out" -o "$TESTDIR/e.tar" --compress none "$C" 2> "$TESTDIR/err"
like "$(cat "$TESTDIR/err")" "warning: .*Dockerfile.out is not in the archive" "-f outside the context warns"
ctxpack pack -f "$C/missing/Dockerfile" -o "$TESTDIR/f.tar" --compress none "$C" 2> "$TESTDIR/err"
is "$?" 0 "-f naming a missing file still packs"
like "$(cat "$TESTDIR/err")" "warning: .*missing/Dockerfile is not in the archive" "... with a warning"

# 6. no Dockerfile at all: nothing added, no warning
rm "$C/Dockerfile"
printf '*\n!src\n' > "$C/.dockerignore"
json=$(ctxpack pack --json -o "$TESTDIR/g.tar" --compress none "$C" 2> "$TESTDIR/err")
like "$json" '"added":\[".dockerignore"\]' "no Dockerfile: only the ignore file is added"
is "$(cat "$TESTDIR/err")" "" "... silently"

# 7. a symlinked Dockerfile stays a symlink
ln -s build/docker/Dockerfile "$C/Dockerfile"
ctxpack pack -q -o "$TESTDIR/h.tar" --compress none "$C"
is "$(python3 -c 'import sys,tarfile; m=tarfile.open(sys.argv[1]).getmember("Dockerfile"); print(m.issym(), m.linkname)' "$TESTDIR/h.tar")" \
	"True build/docker/Dockerfile" "an excluded symlinked Dockerfile is added as the symlink"

done_testing
