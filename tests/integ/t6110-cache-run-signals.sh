#!/bin/sh
# cache run when interrupted, the same way as build (t4130; util.h "Running
# COMMAND"): SIGTERM, SIGINT and SIGHUP sent to ctxpack reach the command;
# ctxpack waits for it, exits with its status and saves nothing (not even
# when the command exits 0 after the signal); a ctxpack killed outright
# (SIGKILL) takes the command down with it; after the command, the store is
# as it was.  A run that is not interrupted still saves (the control).
. "$(dirname "$0")/lib.sh"


W=$TESTDIR/w
S=oci:$TESTDIR/store
M=$TESTDIR/marks
mkdir -p "$W/deps" "$M"
echo lock > "$W/lock"
cd "$W" || exit 1
entries() { ctxpack cache ls --store "$S" 2>/dev/null | grep -c . ; }

for sig in TERM INT HUP; do
	# the command traps the signal and exits 0: a stopped run still saves nothing
	bg_ctxpack "$TESTDIR/r$sig" cache run --store "$S" --key-file lock --key-prefix "k$sig-" \
		--path deps -- sh -c "trap 'echo got-$sig > $M/$sig; exit 0' $sig; echo filled > deps/f; touch $M/ready-$sig; while :; do sleep 0.1; done"
	ok "SIG$sig: ctxpack is running" test -n "$bgpid"
	wait_for 100 test -e "$M/ready-$sig"
	kill -"$sig" "$bgpid"
	is "$(rc_of "$TESTDIR/r$sig")" 0 "SIG$sig: ctxpack waits for the command and exits with its status"
	is "$(cat "$M/$sig" 2>/dev/null)" "got-$sig" "SIG$sig: ... which got the signal"
	like "$(cat "$TESTDIR/r$sig")" "interrupted by signal [0-9]+; the command exited with 0; nothing saved" \
		"SIG$sig: ... and it says that nothing was saved"
	is "$(entries)" 0 "SIG$sig: the store has no entry"
done

# a command that does not trap it dies of it: 128 + N
bg_ctxpack "$TESTDIR/rdie" cache run --store "$S" --key-file lock --key-prefix die- --path deps \
	-- sh -c "echo \$\$ > $M/pid-die; touch $M/ready-die; exec sleep 60"
wait_for 100 test -e "$M/ready-die"
kill -TERM "$bgpid"
is "$(rc_of "$TESTDIR/rdie")" 143 "a command killed by the signal: 128 + 15"
ok "... which is gone" sh -c "! kill -0 $(cat "$M/pid-die")"

# SIGKILL: the command does not outlive ctxpack
bg_ctxpack "$TESTDIR/rkill" cache run --store "$S" --key-file lock --key-prefix kill- --path deps \
	-- sh -c "trap 'echo got > $M/kill; exit 0' TERM; touch $M/ready-kill; sleep 60 & wait"
wait_for 100 test -e "$M/ready-kill"
kill -KILL "$bgpid"
ok "SIGKILL to ctxpack: the command gets SIGTERM" wait_for 100 test -e "$M/kill"
is "$(entries)" 0 "the store has no entry after all that"

# the control: not interrupted, it saves
ctxpack cache run --store "$S" --key-file lock --key-prefix done- --path deps -- true > "$TESTDIR/rdone" 2>&1
is "$?" 0 "a run left alone exits 0"
like "$(cat "$TESTDIR/rdone")" "saved done-" "... and saves"
is "$(entries)" 1 "one entry"
done_testing
