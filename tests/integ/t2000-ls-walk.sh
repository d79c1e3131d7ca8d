#!/bin/sh
# ctxpack ls: the walker (order, symlinks, odd names, special files, errors)
# and the choice of ignore file.
. "$(dirname "$0")/lib.sh"

C=$TESTDIR/ctx
mkdir -p "$C/src/sub" "$C/empty" "$C/a-b" "$C/a"
echo x > "$C/a/x"; echo y > "$C/a-b/y"; echo z > "$C/a.c"
echo hi > "$C/src/main.py"; echo deep > "$C/src/sub/deep.txt"
ln -s ../outside "$C/dangling"
ln -s src "$C/srclink"
printf 'FROM scratch\n' > "$C/Dockerfile"

# archive order: depth-first, each directory's names bytewise sorted
cat > "$TESTDIR/want" <<'W'
Dockerfile
a/
a/x
a-b/
a-b/y
a.c
dangling
empty/
src/
src/main.py
src/sub/
src/sub/deep.txt
srclink
W
ctxpack ls "$C" > "$TESTDIR/got"
same_files "$TESTDIR/got" "$TESTDIR/want" "order: per-directory bytewise, parents first, dirs end in /"

out=$(ctxpack ls -l "$C" | grep srclink)
like "$out" '^l 0777 +- srclink -> src$' "a symlink to a directory is an entry, not followed"
out=$(ctxpack ls -l "$C" | grep dangling)
like "$out" '^l 0777 +- dangling -> \.\./outside$' "dangling symlink kept with its target text"

# the context root itself may be a symlink
ln -s "$C" "$TESTDIR/rootlink"
ctxpack ls "$TESTDIR/rootlink" > "$TESTDIR/got2"
same_files "$TESTDIR/got2" "$TESTDIR/want" "a symlinked context root is followed"

# default DIR is .
out=$(cd "$C" && ctxpack ls | head -1)
is "$out" "Dockerfile" "DIR defaults to ."

# names that are not UTF-8 are kept as bytes
N=$TESTDIR/names; mkdir -p "$N"
python3 -c 'import os,sys; open(os.path.join(sys.argv[1].encode(), b"caf\xe9.txt"),"w").close(); open(os.path.join(sys.argv[1], "日本.txt"),"w").close()' "$N"
ctxpack ls "$N" > "$TESTDIR/names.out"
printf 'caf\351.txt\n日本.txt\n' > "$TESTDIR/names.want"
same_files "$TESTDIR/names.out" "$TESTDIR/names.want" "non-UTF-8 and UTF-8 names are listed byte for byte"
out=$(ctxpack ls --json "$N" | head -1)
is "$out" '{"path":"caf\udce9.txt","type":"file","mode":"0644","size":0}' "--json escapes a non-UTF-8 byte"

# special files: a FIFO is an entry, a socket is skipped with a warning
S=$TESTDIR/special; mkdir -p "$S"
mkfifo "$S/fifo"
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$S/sock"
echo f > "$S/file"
out=$(ctxpack ls -l "$S" 2>"$TESTDIR/err" | tr '\n' ' ')
like "$out" '^p 0644 +- fifo f 0644 +2 file $' "FIFO listed as p, socket skipped"
like "$(cat "$TESTDIR/err")" 'socket\(s\) skipped' "socket skip is reported on stderr"

# exec bit shows in the normalized mode
chmod 755 "$C/src/main.py"
out=$(ctxpack ls -l "$C" | grep main.py)
like "$out" '^f 0755 +3 src/main.py$' "exec bit kept as 0755"

# errors
exits 1 "missing context fails" ctxpack ls "$TESTDIR/nope"
like "$(cat "$TESTDIR/.out")" "context .*nope does not exist" "missing context is named"
exits 2 "a file as context is a usage error" ctxpack ls "$C/a.c"
like "$(cat "$TESTDIR/.out")" "a.c is not a directory" "non-directory context is named"
exits 2 "too many arguments" ctxpack ls "$C" "$C"
exits 2 "unknown option" ctxpack ls --bogus "$C"
exits 0 "ls --help" ctxpack ls --help
exits 0 "help ls" ctxpack help ls
exits 2 "unknown command" ctxpack nosuch
exits 0 "--version" ctxpack --version

# unreadable directory: root reads everything, so run as nobody
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	U=$TESTDIR/unread; mkdir -p "$U/locked" "$U/ok"; echo 1 > "$U/ok/f"; echo 2 > "$U/locked/f"
	echo secret > "$U/private.txt"
	chmod 755 "$TESTDIR"; chmod -R a+rX "$U"; chmod 000 "$U/locked"
	exits 1 "unreadable included directory fails" setpriv --reuid=65534 --regid=65534 --clear-groups "$CTXPACK" ls "$U"
	like "$(cat "$TESTDIR/.out")" "cannot open directory locked" "unreadable directory is named"
	printf 'locked\n' > "$U/.dockerignore"; chmod a+r "$U/.dockerignore"
	exits 0 "unreadable but excluded directory is fine" setpriv --reuid=65534 --regid=65534 --clear-groups "$CTXPACK" ls "$U"
	rm "$U/.dockerignore"; chmod 755 "$U/locked"; chmod 600 "$U/private.txt"
	exits 1 "unreadable included file fails" setpriv --reuid=65534 --regid=65534 --clear-groups "$CTXPACK" ls "$U"
	like "$(cat "$TESTDIR/.out")" "cannot read private.txt" "unreadable file is named"
	chmod -R u+rwX "$U"
else
	skip "unreadable directory (needs root to drop to nobody)"
	skip "unreadable directory named"
	skip "excluded unreadable directory"
	skip "unreadable file"
	skip "unreadable file named"
fi

# a very long path: deeper than PATH_MAX still walks (openat is relative)
L=$TESTDIR/long; mkdir -p "$L"
python3 - "$L" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
for i in range(30):
    n = "d" * 200
    os.mkdir(n, dir_fd=fd)
    nfd = os.open(n, os.O_RDONLY, dir_fd=fd); os.close(fd); fd = nfd
open("/proc/self/fd/%d/leaf" % fd, "w").close()
PY
n=$(ctxpack ls "$L" | wc -l)
is "$n" "31" "a tree deeper than PATH_MAX is walked"

done_testing
