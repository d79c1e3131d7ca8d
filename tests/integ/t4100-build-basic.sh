#!/bin/sh
# ctxpack build: the archive on COMMAND's stdin (the same bytes as pack),
# COMMAND's exit status (128+N for a signal), a COMMAND that exits early or
# closes its input reported clearly (never a hang or a crash), a pack that
# fails stops COMMAND, and the usage errors.
. "$(dirname "$0")/lib.sh"

C=$TESTDIR/ctx
mkdir -p "$C/src"
printf 'FROM scratch\nCOPY . /ctx/\n' > "$C/Dockerfile"
echo main > "$C/src/main.c"
B=$TESTDIR/big
mkdir -p "$B"
head -c 3000000 /dev/urandom > "$B/random.bin"   # larger than a pipe buffer

# run_to N CMD...: run with a timeout (a hang is a failure), output in $TESTDIR/o
run_to() {
	secs=$1; shift
	[ "$1" = ctxpack ] && { shift; set -- $EXEC_PREFIX "$CTXPACK" "$@"; }
	timeout "$secs" "$@" > "$TESTDIR/o" 2>&1
}

# an unknown reader gets an uncompressed tar (zstd only for builders known
# to read it); --compress chooses
ctxpack pack -q --compress none -o "$TESTDIR/ref.tar" "$C"
run_to 20 ctxpack build "$C" -- sh -c 'cat > "$0"' "$TESTDIR/got.tar"
is "$?" 0 "build: COMMAND's status 0"
same_files "$TESTDIR/got.tar" "$TESTDIR/ref.tar" "COMMAND reads the same bytes as pack --compress none writes"
like "$(cat "$TESTDIR/o")" '^sha256:[0-9a-f]{64} [0-9]+ 3$' "the summary on stderr"
ctxpack pack -q -o "$TESTDIR/ref.zst" "$C"
run_to 20 ctxpack build --compress zstd "$C" -- sh -c 'cat > "$0"' "$TESTDIR/got.zst"
same_files "$TESTDIR/got.zst" "$TESTDIR/ref.zst" "--compress zstd: the same bytes as pack"
ctxpack pack -q --compress gzip --level 2 -o "$TESTDIR/ref.gz" "$C"
run_to 20 ctxpack build -q --compress gzip --level 2 "$C" -- sh -c 'cat > "$0"' "$TESTDIR/got.gz"
same_files "$TESTDIR/got.gz" "$TESTDIR/ref.gz" "pack options apply (gzip, level)"
(cd "$C" && run_to 20 ctxpack build -q -- sh -c 'cat > "$0"' "$TESTDIR/got2.tar")
same_files "$TESTDIR/got2.tar" "$TESTDIR/ref.tar" "DIR defaults to ."
run_to 20 ctxpack build -q "$C" -- sh -c 'tar -tf - | tr "\n" " "'
is "$(cat "$TESTDIR/o")" "Dockerfile src/ src/main.c " "COMMAND can untar its stdin; stdout is COMMAND's"

run_to 20 ctxpack build "$C" -- sh -c 'cat >/dev/null; exit 3'
is "$?" 3 "COMMAND's exit status is returned"
run_to 20 ctxpack build "$B" -- sh -c 'cat >/dev/null; exit 42'
is "$?" 42 "... also for a large archive"
run_to 20 ctxpack build "$C" -- sh -c 'cat >/dev/null; kill -TERM $$'
is "$?" 143 "killed by SIGTERM: 128+15"
like "$(cat "$TESTDIR/o")" "killed by signal 15" "... and said so"

# COMMAND that does not read everything
run_to 20 ctxpack build "$C" -- true
is "$?" 1 "'true' (reads nothing, exits 0): exit 1"
like "$(cat "$TESTDIR/o")" "error: true exited with status 0 after reading 0 of [0-9]+ archive bytes" \
	"... reported clearly, even for an archive that fits in the pipe"
run_to 20 ctxpack build "$B" -- true
is "$?" 1 "'true' on a large archive: exit 1, no hang"
like "$(cat "$TESTDIR/o")" "error: true exited with status 0 before reading the whole archive" \
	"... reported clearly"
run_to 20 ctxpack build "$B" -- sh -c 'head -c 1000 > /dev/null; exit 0'
is "$?" 1 "reads 1000 bytes and exits 0: exit 1"
run_to 20 ctxpack build "$B" -- sh -c 'head -c 1000 > /dev/null; exit 5'
is "$?" 5 "reads 1000 bytes and exits 5: exit 5"
like "$(cat "$TESTDIR/o")" "exited with status 5" "... reported"
run_to 20 ctxpack build "$B" -- sh -c 'exec 0<&-; sleep 0.3; exit 0'
is "$?" 1 "closes its input, keeps running, exits 0: exit 1, no hang"
run_to 20 ctxpack build --compress zstd "$B" -- sh -c 'zstd -dc | tar -tf - >/dev/null'
is "$?" 0 "a reader that stops at the tar end blocks is fine"
run_to 20 ctxpack build --compress zstd "$B" -- sh -c 'zstd -dc >/dev/null; exit 0'
is "$?" 0 "zstd reads it all"

# an unchanged context's stored frames go into the pipe by splice (no copy
# through ctxpack): the same bytes, and a COMMAND that stops reading on the
# way is reported as before, with no hang
S=$TESTDIR/spl
mkdir -p "$S"
head -c 3000000 /dev/urandom > "$S/a.bin"
printf 'FROM scratch\n' > "$S/Dockerfile"
sleep 0.3 # out of the racy window, so that the frames are stored
ctxpack pack -q --compress none -o "$TESTDIR/spl.tar" "$S"
run_to 20 ctxpack build -q "$S" -- sh -c 'cat > "$0"' "$TESTDIR/spl.got"
same_files "$TESTDIR/spl.got" "$TESTDIR/spl.tar" "stored frames: COMMAND reads the same bytes"
if command -v strace > /dev/null 2>&1 && [ -z "$EXEC_PREFIX" ]; then
	timeout 20 strace -f -e trace=splice -o "$TESTDIR/spl.strace" "$CTXPACK" build -q "$S" -- \
		sh -c 'cat > "$0"' "$TESTDIR/spl.got2"
	ok "stored frames: spliced into the pipe" grep -q '^[0-9]* *splice(.* = [1-9]' "$TESTDIR/spl.strace"
	same_files "$TESTDIR/spl.got2" "$TESTDIR/spl.tar" "... the same bytes"
else
	skip "stored frames spliced (no strace, or EXEC_PREFIX)"
	skip "... the same bytes"
fi
run_to 20 ctxpack build "$S" -- sh -c 'head -c 1000 > /dev/null; exit 0'
is "$?" 1 "stored frames, COMMAND reads 1000 bytes and exits 0: exit 1, no hang"
like "$(cat "$TESTDIR/o")" "error: sh exited with status 0 (before reading the whole archive|after reading)" \
	"... reported clearly"
run_to 20 ctxpack build "$S" -- sh -c 'exec 0<&-; sleep 0.3; exit 0'
is "$?" 1 "stored frames, COMMAND closes its input and exits 0: exit 1, no hang"

# COMMAND that cannot run
run_to 20 ctxpack build "$C" -- /nonexistent/cmd
is "$?" 127 "COMMAND not found: 127"
like "$(cat "$TESTDIR/o")" "cannot run /nonexistent/cmd" "... reported"
chmod -x "$C/src/main.c"
run_to 20 ctxpack build "$C" -- "$C/src/main.c"
is "$?" 126 "COMMAND not executable: 126"

# the pack fails: COMMAND is stopped and never sees a complete input.
# COMMAND waits before reading, so the workers stall on the full pipe
# before they reach zz-grow.bin (sorted last, after 40 MB that does not
# compress); meanwhile zz-grow.bin grows, so it no longer has its walked
# size when it is opened.
G=$TESTDIR/grow
mkdir -p "$G"
for i in 1 2 3 4 5; do head -c 8000000 /dev/urandom > "$G/r$i.bin"; done
head -c 5000000 /dev/zero > "$G/zz-grow.bin"
(sleep 1; head -c 100 /dev/zero >> "$G/zz-grow.bin") &
grower=$!
run_to 30 ctxpack build --threads 1 "$G" -- sh -c 'sleep 2.5; cat > /dev/null; echo done >&2; exit 0'
rc=$?
wait $grower
is "$rc" 1 "a file that changed: exit 1"
like "$(cat "$TESTDIR/o")" "file changed while being packed: zz-grow.bin" "... naming the file"
like "$(cat "$TESTDIR/o")" "SIGTERM" "... and COMMAND was stopped"
is "$(grep -c done "$TESTDIR/o")" 0 "... before it read to the end"

# usage
exits 2 "no --: usage error" ctxpack build "$C" true
exits 2 "-- without COMMAND: usage error" ctxpack build "$C" --
exits 2 "two DIRs: usage error" ctxpack build "$C" "$C" -- true
exits 2 "-o is not a build option" ctxpack build -o x "$C" -- true
exits 2 "--json is refused" ctxpack build --json "$C" -- true
run_to 20 ctxpack build "$C" -- sh -c 'cat >/dev/null; echo "$@"' -f --level 9 -- x
is "$(grep -cx -e "--level 9 -- x" "$TESTDIR/o")" 1 "options after -- belong to COMMAND"


# --docker-client V: the docker client's version as given (a client < 23
# walks with its matcher), docker's own not asked; ignored for others
if [ -x /usr/bin/docker ]; then
	NOSOCK="unix://$TESTDIR/no-daemon.sock"
	run_to 60 ctxpack build -v --docker-client 20.10.24 "$C" -- \
		env DOCKER_BUILDKIT=0 DOCKER_HOST="$NOSOCK" /usr/bin/docker build -
	like "$(cat "$TESTDIR/o")" "classic builder \\(DOCKER_BUILDKIT=0; a client < 23: its matcher\\)" \
		"--docker-client 20.10.24: a client < 23"
	run_to 60 ctxpack build -v --docker-client 28.2.2 "$C" -- \
		env DOCKER_BUILDKIT=0 DOCKER_HOST="$NOSOCK" /usr/bin/docker build -
	like "$(cat "$TESTDIR/o")" "classic builder \\(DOCKER_BUILDKIT=0\\), daemon" \
		"--docker-client 28.2.2 for Debian's 20.10 client: the version given is the one used"
else
	skip "--docker-client with docker (no /usr/bin/docker)"
	skip "--docker-client overrides (no /usr/bin/docker)"
fi
# docker with BuildKit reads DIR itself, and ctxpack becomes docker (exec):
# the same PID, so its signals and exit status are docker's own.  A stand-in
# docker reports its PID and arguments, and a SIGTERM.
mkdir -p "$TESTDIR/fakebin"
cat > "$TESTDIR/fakebin/docker" <<'SH'
#!/bin/sh
echo "pid $$ args $*" > "$FAKE_OUT"
trap 'echo "got TERM" >> "$FAKE_OUT"; exit 143' TERM
i=0
while [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
exit 7
SH
chmod +x "$TESTDIR/fakebin/docker"
FAKE_OUT=$TESTDIR/fake.out DOCKER_BUILDKIT=1 $EXEC_PREFIX "$CTXPACK" build -q --docker-client 28.0.0 \
	"$C" -- "$TESTDIR/fakebin/docker" build -t x - &
pid=$!
wait_for 100 test -s "$TESTDIR/fake.out"
if [ -z "$EXEC_PREFIX" ]; then
	is "$(cat "$TESTDIR/fake.out")" "pid $pid args build -t x $C" \
		"BuildKit: docker runs as ctxpack's own process (exec), given DIR for -"
else
	skip "the same PID (EXEC_PREFIX)"
fi
kill -TERM "$pid"
wait "$pid"
is "$?" 143 "... a SIGTERM to ctxpack is docker's: docker's status"
like "$(cat "$TESTDIR/fake.out")" "got TERM" "... which docker handled"

run_to 20 ctxpack build --docker-client 20.10 "$C" -- sh -c 'cat >/dev/null'
is "$?" 0 "--docker-client with another COMMAND: it runs"
like "$(cat "$TESTDIR/o")" "docker-client is for a docker COMMAND, not sh: ignored" "and the option is said to be ignored"

done_testing
