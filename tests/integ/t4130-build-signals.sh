#!/bin/sh
# ctxpack build and pack when interrupted, and build's errors:
#  - SIGTERM, SIGINT and SIGHUP sent to ctxpack reach COMMAND; ctxpack waits
#    for it and exits with its status; on a real dockerd (classic and
#    BuildKit) the build is cancelled and no image is tagged afterwards;
#    a ctxpack killed outright (SIGKILL) takes COMMAND down with it;
#  - a signal while the archive is being sent stops packing;
#  - pack -o FILE removes its temporary when interrupted, and a later run
#    removes what a SIGKILL left;
#  - a missing -f Dockerfile fails before COMMAND starts; -f given to one
#    side only is warned about; an empty context is said to be empty;
#    build --help prints the help.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-docker.sh"


# --- without a daemon: a COMMAND that takes its time ---
C=$TESTDIR/ctx
mkdir -p "$C"
printf 'FROM scratch\n' > "$C/Dockerfile"
echo x > "$C/x"
M=$TESTDIR/marks
mkdir -p "$M"
for sig in TERM INT HUP; do
	bg_ctxpack "$TESTDIR/s$sig" build "$C" -- sh -c \
		"cat >/dev/null; trap 'echo got-$sig > $M/$sig; exit 7' $sig; touch $M/ready-$sig; while :; do sleep 0.1; done"
	wait_for 100 test -e "$M/ready-$sig"
	kill -"$sig" "$bgpid"
	is "$(rc_of "$TESTDIR/s$sig")" 7 "SIG$sig: ctxpack waits for COMMAND and exits with its status"
	is "$(cat "$M/$sig" 2>/dev/null)" "got-$sig" "SIG$sig: ... which got the signal"
done

# a signal while the archive is being sent: packing stops, COMMAND gets it
B=$TESTDIR/big
mkdir -p "$B"
head -c 30000000 /dev/urandom > "$B/r.bin"
bg_ctxpack "$TESTDIR/mid" build "$B" -- sh -c \
	"trap 'echo got > $M/mid; exit 9' TERM; touch $M/ready-mid; sleep 60 & wait"
wait_for 100 test -e "$M/ready-mid"
kill -TERM "$bgpid"
is "$(rc_of "$TESTDIR/mid")" 9 "SIGTERM while sending: COMMAND's status"
is "$(cat "$M/mid" 2>/dev/null)" got "... COMMAND got the signal"
like "$(cat "$TESTDIR/mid")" "interrupted by signal 15 while sending the context" "... and it is said"

# SIGKILL: COMMAND does not outlive ctxpack
bg_ctxpack "$TESTDIR/kill" build "$C" -- sh -c \
	"cat >/dev/null; trap 'echo got > $M/kill; exit 0' TERM; touch $M/ready-kill; sleep 60 & wait"
wait_for 100 test -e "$M/ready-kill"
kill -KILL "$bgpid"
ok "SIGKILL to ctxpack: COMMAND gets SIGTERM" wait_for 100 test -e "$M/kill"

# --- pack -o FILE, interrupted ---
head -c 20000000 /dev/urandom > "$B/r2.bin"
for sig in INT TERM; do
	bg_ctxpack "$TESTDIR/p$sig" pack --level 19 --threads 1 --no-cache -o "$TESTDIR/out$sig.zst" "$B"
	wait_for 200 sh -c "ls '$TESTDIR' | grep -q 'out$sig.zst.tmp.'"
	kill -"$sig" "$bgpid"
	rc=$(rc_of "$TESTDIR/p$sig")
	isnt "$rc" 0 "pack -o FILE, SIG$sig: fails"
	is "$(ls "$TESTDIR" | grep -c "out$sig")" 0 "... and leaves no temporary (nor FILE)"
done
bg_ctxpack "$TESTDIR/pk" pack --level 19 --threads 1 --no-cache -o "$TESTDIR/outK.zst" "$B"
wait_for 200 sh -c "ls '$TESTDIR' | grep -q 'outK.zst.tmp.'"
kill -KILL "$bgpid"
rc_of "$TESTDIR/pk" >/dev/null
is "$(ls "$TESTDIR" | grep -c 'outK.zst.tmp.')" 1 "pack -o FILE, SIGKILL: its temporary is left"
ok "... a later pack -o FILE" ctxpack pack -q -o "$TESTDIR/outK.zst" "$C"
is "$(ls "$TESTDIR" | grep -c 'outK.zst.tmp.')" 0 "... removes it"
ok "... and writes FILE" test -s "$TESTDIR/outK.zst"

# --- errors ---
rm -f "$M/ran"
exits 1 "-f naming no file: an error" ctxpack build -f "$TESTDIR/nope.Dockerfile" "$C" -- sh -c "touch $M/ran; cat >/dev/null"
like "$(cat "$TESTDIR/.out")" "no Dockerfile .*nope.Dockerfile" "... naming it"
ok "... before COMMAND starts" test ! -e "$M/ran"
mkdir -p "$TESTDIR/empty"
out=$(ctxpack build "$TESTDIR/empty" -- docker build -t x - 2>&1)
is "$?" 1 "an empty context, docker build: exit 1"
like "$out" "the context .*empty is empty: there is no Dockerfile to build" "... said plainly"
is "$(printf '%s' "$out" | tr -d '\0' | wc -c)" "$(printf '%s' "$out" | wc -c)" "... no NUL bytes on the screen"
out=$(ctxpack build --help)
is "$?" 0 "build --help: exit 0"
like "$out" "usage: ctxpack build" "... prints the usage"
like "$out" "--send" "... and the options"

# --- on a real daemon ---
docker_require
if ! docker_start; then
	skip "dockerd did not start"
	done_testing
	exit 0
fi
docker_base bb
D=$TESTDIR/slow
mkdir -p "$D"
printf 'FROM bb\nCOPY . /ctx\nRUN sleep 5 && touch /done\n' > "$D/Dockerfile"
for bk in 0 1; do
	bg_ctxpack "$TESTDIR/d$bk" build "$D" -- env DOCKER_BUILDKIT=$bk "$DOCKER_BIN" build \
		--progress=plain --network none -t "slow$bk" -
	if ! wait_for 300 grep -q -E "(Running in|RUN sleep)" "$TESTDIR/d$bk"; then
		_fail "builder $bk: the build did not start"; sed 's/^/#   /' "$TESTDIR/d$bk" >&2
		continue
	fi
	kill -TERM "$bgpid"
	rc=$(rc_of "$TESTDIR/d$bk")
	isnt "$rc" 0 "builder $bk: SIGTERM during RUN: ctxpack fails with docker's status ($rc)"
	# the RUN would be done by now: nothing may be tagged
	sleep 7
	fails "builder $bk: ... and no image is tagged after it" dk image inspect "slow$bk"
	is "$(dk ps -q | wc -l)" 0 "builder $bk: ... and no container runs"
done

# -f on one side only
printf 'FROM bb\nCOPY . /ctx\n' > "$D/Dockerfile"
printf 'FROM bb\nCOPY . /other\n' > "$D/other.Dockerfile"
(cd "$D" && DOCKER_BUILDKIT=0 ctxpack build -f other.Dockerfile -- "$DOCKER_BIN" build -q -t fo -) \
	> "$TESTDIR/f.log" 2>&1
like "$(cat "$TESTDIR/f.log")" "warning: -f other.Dockerfile is given to ctxpack but not to" \
	"-f to ctxpack only: warned"
isnt "$(image_tree fo /other)" "" "... and docker builds other.Dockerfile"
(cd "$D" && DOCKER_BUILDKIT=0 ctxpack build -- "$DOCKER_BIN" build -f other.Dockerfile -q -t fo2 -) \
	> "$TESTDIR/f.log" 2>&1
like "$(cat "$TESTDIR/f.log")" "warning: .* -f other.Dockerfile: ctxpack takes .*other.Dockerfile" \
	"-f to docker only: warned"
(cd "$D" && DOCKER_BUILDKIT=0 ctxpack build -f Dockerfile -- "$DOCKER_BIN" build -f other.Dockerfile -q -t fo3 -) \
	> "$TESTDIR/f.log" 2>&1
like "$(cat "$TESTDIR/f.log")" "warning: ctxpack's -f Dockerfile and .* -f other.Dockerfile name different files" \
	"-f naming two files: warned"

done_testing
