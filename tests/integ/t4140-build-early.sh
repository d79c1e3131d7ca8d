#!/bin/sh
# ctxpack build with docker's classic builder starts COMMAND before it walks
# the tree (docs/build.md, "Speed"), so that the docker client's start-up
# overlaps the walk.  Checked with a `docker` of our own on PATH (a script
# that keeps what it read), no daemon:
#  - COMMAND reads the same archive as `pack --classic --compress none`;
#  - the words docker gets are those ctxpack decided from the walk's
#    preamble (a symlinked Dockerfile named by its target, ctxpack's -f
#    passed on), a Dockerfile outside the context still gets a directory;
#  - a missing Dockerfile fails before COMMAND starts;
#  - a walk that fails after COMMAND started stops it (SIGTERM) before its
#    input ends: it never reads a whole (empty) context, the error names the
#    path and ctxpack exits 1.
. "$(dirname "$0")/lib.sh"

BIN=$TESTDIR/bin
M=$TESTDIR/marks
mkdir -p "$BIN" "$M"
chmod 755 "$TESTDIR"
chmod 777 "$M"
cat > "$BIN/docker" <<EOF
#!/bin/sh
case "\$1" in --version) echo "Docker version 20.10.24+dfsg1, build test"; exit 0 ;; esac
trap 'echo term > $M/term; exit 143' TERM
echo "\$*" > $M/args
cat > $M/got
echo done > $M/done
EOF
chmod 755 "$BIN" "$BIN/docker"
export PATH="$BIN:$PATH" DOCKER_BUILDKIT=0
unset DOCKER_HOST DOCKER_CONTEXT
clear_marks() { rm -f "$M"/*; }

C=$TESTDIR/ctx
mkdir -p "$C/src" "$C/node_modules/x"
printf 'FROM scratch\nCOPY . /ctx/\n' > "$C/Dockerfile"
printf 'node_modules\n' > "$C/.dockerignore"
echo main > "$C/src/main.c"
echo dep > "$C/node_modules/x/index.js"

clear_marks
ctxpack pack -q --classic --compress none -o "$TESTDIR/ref.tar" "$C"
ok "classic builder: build succeeds" ctxpack build -q "$C" -- docker build -t app -
same_files "$M/got" "$TESTDIR/ref.tar" "... COMMAND reads the archive pack --classic writes"
is "$(cat "$M/args")" "build -t app -" "... with its own words"

# a symlinked Dockerfile: docker is told its target, which is sent
clear_marks
mkdir -p "$C/docker"
printf 'FROM scratch\n' > "$C/docker/real.Dockerfile"
ln -s docker/real.Dockerfile "$C/link.Dockerfile"
ok "symlinked Dockerfile" ctxpack build -q -f "$C/link.Dockerfile" "$C" -- docker build -t app -
is "$(cat "$M/args")" "build -f docker/real.Dockerfile -t app -" "... named by its target"
like "$(tar -tf "$M/got" | tr '\n' ' ')" "docker/real.Dockerfile" "... which is in the archive"

# ctxpack's -f passed on
clear_marks
printf 'FROM scratch\n' > "$C/other.Dockerfile"
ctxpack build -q -f "$C/other.Dockerfile" "$C" -- docker build -t app - > "$TESTDIR/o" 2>&1
is "$?" 0 "-f given to ctxpack only"
is "$(cat "$M/args")" "build -f other.Dockerfile -t app -" "... passed on to docker"
like "$(cat "$TESTDIR/o")" "given to ctxpack but not to docker" "... and said"

# a Dockerfile outside the context: a directory, as before
clear_marks
printf 'FROM scratch\n' > "$TESTDIR/outside.Dockerfile"
ok "Dockerfile outside the context" ctxpack build -q -f "$TESTDIR/outside.Dockerfile" "$C" -- docker build -t app -
like "$(cat "$M/args")" "-f .*/dockerfile/outside.Dockerfile .* .*/context$" "... docker gets a directory"

# a missing Dockerfile: COMMAND never starts
clear_marks
exits 1 "a missing Dockerfile" ctxpack build -f "$C/nope.Dockerfile" "$C" -- docker build -t app -
like "$(cat "$TESTDIR/.out")" "no Dockerfile .*nope.Dockerfile" "... named"
ok "... before COMMAND starts" test ! -e "$M/args"

# the walk fails after COMMAND started: it is stopped before its input ends
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	clear_marks
	U=$TESTDIR/u
	mkdir -p "$U/locked"
	printf 'FROM scratch\n' > "$U/Dockerfile"
	echo s > "$U/locked/s"
	chmod 755 "$U"
	chmod 700 "$U/locked"
	mkdir -p "$TESTDIR/nobody"
	chmod 777 "$TESTDIR/nobody"
	setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$TESTDIR/nobody" \
		XDG_CACHE_HOME="$TESTDIR/nobody" "$CTXPACK" build "$U" -- docker build -t app - \
		> "$TESTDIR/o" 2>&1
	is "$?" 1 "an unreadable directory: exit 1"
	like "$(cat "$TESTDIR/o")" "cannot open directory locked" "... named"
	like "$(cat "$TESTDIR/o")" "docker was stopped \\(SIGTERM\\)" "... COMMAND, started, was stopped"
	ok "... before it read the end of its input" test ! -e "$M/done"
else
	skip "unreadable directory (needs root to drop to nobody)"
	skip "unreadable directory named"
	skip "COMMAND stopped"
	skip "COMMAND did not finish"
fi

done_testing
