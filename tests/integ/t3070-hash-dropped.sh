#!/bin/sh
# ctxpack hash: index entries of deleted files are dropped; entries of
# files only excluded (two Dockerfiles with their own ignore files sharing a
# context) are kept, so alternating between them reads nothing.
. "$(dirname "$0")/lib.sh"

jget() { sed -n 's/.*"'"$1"'":\("\([^"]*\)"\|\([0-9]*\)\).*/\2\3/p'; }

C=$TESTDIR/ctx
mkdir -p "$C/backend" "$C/frontend/src"
for i in 1 2 3 4 5 6; do echo "b$i" > "$C/backend/m$i.py"; echo "f$i" > "$C/frontend/src/c$i.ts"; done
echo 'FROM python' > "$C/backend.Dockerfile"
echo 'FROM node' > "$C/frontend.Dockerfile"
printf 'frontend\n' > "$C/backend.Dockerfile.dockerignore"
printf 'backend\n' > "$C/frontend.Dockerfile.dockerignore"
sleep 0.3

b() { ctxpack hash --json -f "$C/backend.Dockerfile" "$C"; }
f() { ctxpack hash --json -f "$C/frontend.Dockerfile" "$C"; }
b >/dev/null; f >/dev/null
out=$(b)
is "$(echo "$out" | jget hashed)" 0 "backend after frontend: nothing read"
is "$(echo "$out" | jget dropped)" 0 "backend after frontend: the frontend's entries are kept"
out=$(f)
is "$(echo "$out" | jget hashed)" 0 "frontend after backend: nothing read"
isnt "$(echo "$(b)" | jget digest)" "$(echo "$out" | jget digest)" "the two contexts differ"

# a deleted file's entry is dropped (by either); the frontend's snapshot
# does not see below backend/, which its walk prunes, so a change at the
# root makes it walk (docs/index.md, "Snapshots")
rm "$C/backend/m3.py"
mkdir "$C/tmp.d"; rmdir "$C/tmp.d"
out=$(f)
is "$(echo "$out" | jget dropped)" 1 "a deleted file's entry is dropped, even by a walk that excludes it"
out=$(b)
is "$(echo "$out" | jget dropped)" 0 "and only once"
is "$(echo "$out" | jget hashed)" 0 "nothing else is read"

# a file that became a directory: its entry goes too
rm "$C/backend/m4.py"; mkdir "$C/backend/m4.py"
out=$(b)
is "$(echo "$out" | jget dropped)" 1 "a file that became a directory: dropped"

done_testing
