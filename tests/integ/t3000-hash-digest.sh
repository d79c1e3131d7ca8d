#!/bin/sh
# ctxpack hash: the context digest is a function of the content only
# (not of mtimes, owners, inode numbers or readdir order) and changes with
# every change the archive would carry.
. "$(dirname "$0")/lib.sh"

# jget FIELD: a string or number field of the one-line JSON object on stdin
jget() { sed -n 's/.*"'"$1"'":\("\([^"]*\)"\|\([0-9]*\)\).*/\2\3/p'; }
# a digest computed with an index of its own (nothing reused)
fresh() { ctxpack hash --index "$(mktemp -d "$TESTDIR/fresh.XXXXXX")" "$1"; }

C=$TESTDIR/ctx
mkdir -p "$C/src/sub" "$C/empty" "$C/bin"
printf 'print("hi")\n' > "$C/src/main.py"
printf 'deep\n' > "$C/src/sub/deep.txt"
printf '#!/bin/sh\necho run\n' > "$C/bin/run.sh"; chmod 755 "$C/bin/run.sh"
printf '' > "$C/emptyfile"
head -c 300000 /dev/urandom > "$C/big.bin"
ln -s src/main.py "$C/link"
printf 'FROM scratch\nCOPY . /\n' > "$C/Dockerfile"
printf 'ignored/\n*.log\n' > "$C/.dockerignore"
mkdir -p "$C/ignored"; echo no > "$C/ignored/x"; echo no > "$C/a.log"
sleep 0.3 # out of the racy window, so the second run reads nothing

d1=$(ctxpack hash "$C")
like "$d1" '^xxh128:[0-9a-f]{32}$' "prints xxh128:<32 hex>"

out=$(ctxpack hash --json "$C")
is "$(echo "$out" | jget digest)" "$d1" "--json: same digest"
is "$(echo "$out" | jget hashed)" 0 "--json: a warm run hashes nothing"
is "$(echo "$out" | jget files)" 7 "--json: files counts the included regular files"
is "$(echo "$out" | jget reused)" 7 "--json: reused == files on a warm run"
is "$(echo "$out" | jget bytes_hashed)" 0 "--json: bytes_hashed 0 on a warm run"
m1=$(stat -c %.9Y "$XDG_CACHE_HOME/ctxpack/index/data.mdb")
ctxpack hash "$C" >/dev/null
is "$(stat -c %.9Y "$XDG_CACHE_HOME/ctxpack/index/data.mdb")" "$m1" "a warm run writes nothing to the index"
is "$(echo "$out" | jget entries)" 12 "--json: entries counts every included entry"
out=$(ctxpack hash --json --index "$TESTDIR/cold" "$C")
is "$(echo "$out" | jget hashed)" 7 "--json: a cold run hashes every file"
want_bytes=$(cat "$C/src/main.py" "$C/src/sub/deep.txt" "$C/bin/run.sh" "$C/big.bin" \
	"$C/Dockerfile" "$C/.dockerignore" | wc -c)
is "$(echo "$out" | jget bytes_hashed)" "$want_bytes" "--json: bytes_hashed is what was read"

out=$(cd "$C" && ctxpack hash)
is "$out" "$d1" "DIR defaults to ."

# --- the same content elsewhere: same digest ---
cp -r "$C" "$TESTDIR/copy"
find "$TESTDIR/copy" -exec touch -h -d '2001-02-03 04:05:06.789' {} +
is "$(ctxpack hash "$TESTDIR/copy")" "$d1" "a copy with other mtimes and inodes has the same digest"

if [ "$(id -u)" = 0 ]; then
	cp -r "$C" "$TESTDIR/owned"
	chown -R -h nobody "$TESTDIR/owned"
	is "$(ctxpack hash "$TESTDIR/owned")" "$d1" "a copy owned by nobody has the same digest"
else
	skip "chown to another user needs root"
fi

# permission bits count as the archive keeps them (as Docker does); with
# --normalize-modes only the exec bit does (git-style, umask-proof)
cp -r "$C" "$TESTDIR/perm"
chmod 600 "$TESTDIR/perm/src/main.py"; chmod 700 "$TESTDIR/perm/bin/run.sh"
chmod 700 "$TESTDIR/perm/src"
isnt "$(ctxpack hash "$TESTDIR/perm")" "$d1" "permission bits count: 0600, 0700 differ from 0644, 0755"
is "$(ctxpack hash --normalize-modes "$TESTDIR/perm")" "$(ctxpack hash --normalize-modes "$C")" \
	"--normalize-modes: permission bits other than exec do not count"
isnt "$(ctxpack hash --normalize-modes "$TESTDIR/perm")" "$(ctxpack hash "$TESTDIR/perm")" \
	"--normalize-modes gives another digest when the modes are not 0644/0755"

# created in reverse order (another readdir order on most filesystems)
R=$TESTDIR/rev
mkdir -p "$R"
(cd "$C" && find . -mindepth 1 | sort -r) | while read -r p; do
	if [ -L "$C/$p" ]; then :
	elif [ -d "$C/$p" ]; then mkdir -p "$R/$p"
	else mkdir -p "$(dirname "$R/$p")"; cp -p "$C/$p" "$R/$p"; fi
done
ln -s src/main.py "$R/link"
is "$(ctxpack hash "$R")" "$d1" "files created in reverse order: same digest"

# an ignored file changing does not count
echo changed > "$C/ignored/x"; echo changed > "$C/a.log"
is "$(ctxpack hash "$C")" "$d1" "changes to ignored files do not change it"

# --- every change the archive carries changes it ---
# each change is made to a fresh copy (compared with d1) and to a working
# copy W in place, whose index entries are warm (the index must notice)
W=$TESTDIR/work
cp -a "$C" "$W"
sleep 0.3
ctxpack hash "$W" >/dev/null
k=0
mutate() { # description, shell command run inside the directory
	k=$((k + 1)); M=$TESTDIR/m$k
	cp -a "$C" "$M"
	(cd "$M" && eval "$2")
	isnt "$(ctxpack hash "$M")" "$d1" "changes with: $1"
	before=$(ctxpack hash "$W")
	(cd "$W" && eval "$2")
	got=$(ctxpack hash "$W")
	isnt "$got" "$before" "in place, the warm index notices: $1"
	is "$got" "$(fresh "$W")" "in place, same as with a fresh index: $1"
}
mutate "content (same size)" 'printf "print(\"ho\")\n" > src/main.py'
mutate "content (same size) again" 'printf "print(\"hu\")\n" > src/main.py'
mutate "content of a big file" 'printf x | dd of=big.bin bs=1 seek=150000 conv=notrunc 2>/dev/null'
mutate "exec bit" 'chmod +x src/main.py'
mutate "exec bit removed" 'chmod -x bin/run.sh'
mutate "group and other bits" 'chmod 600 src/main.py'
mutate "setuid bit" 'chmod u+s bin/run.sh'
mutate "a directory's mode" 'chmod 700 src/sub'
mutate "sticky bit" 'chmod 1777 src/sub'
mutate "a hard link added" 'ln src/main.py src/main2.py'
mutate "symlink target" 'ln -sfn src/sub/deep.txt link'
mutate "added file" 'echo new > src/new.txt'
mutate "added empty file" ': > src/empty2'
mutate "renamed file" 'mv src/sub/deep.txt src/sub/deep2.txt'
mutate "removed file" 'rm -f src/sub/deep.txt src/sub/deep2.txt'
mutate "added empty dir" 'mkdir empty2'
mutate "removed empty dir" 'rmdir empty'
mutate "file replaced by a symlink" 'rm -f emptyfile && ln -s x emptyfile'
mutate "ignore file changed" 'echo "#" >> .dockerignore'

# --- errors ---
exits 1 "missing context: exit 1" ctxpack hash "$TESTDIR/nope"
like "$(cat "$TESTDIR/.out")" "nope" "the error names the missing context"
exits 2 "two directories: usage error" ctxpack hash "$C" "$C"
exits 2 "unknown option: usage error" ctxpack hash --frobnicate "$C"
out=$(ctxpack hash --help)
like "$out" 'usage: ctxpack hash' "--help prints the usage"

done_testing
