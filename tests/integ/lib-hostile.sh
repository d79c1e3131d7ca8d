# The project's own hostile registry (tests/tools/hostile-registry.py) for
# the tests of what a store must not be able to do to a restore.  Source
# after lib.sh and lib-registry.sh.
#
#   hostile_start LAYOUT [FAULT...]   serve the oci: layout LAYOUT on
#                                     127.0.0.1 with the faults given; sets
#                                     HOSTILE (host:port), HOSTILE_PID,
#                                     HOSTILE_LOG, HOSTILE_DIR; killed by
#                                     its PID when the test exits
#   hostile_stop                      stop the last one started
#   in_netns CMD...                   run CMD in a network namespace of its
#                                     own with only loopback up (nothing
#                                     can leave the machine, whatever CMD
#                                     tries); status 99 when namespaces
#                                     are not available

_hostile_n=0

hostile_start() {
	layout=$1; shift
	_hostile_n=$((_hostile_n + 1))
	HOSTILE_DIR=$TESTDIR/hostile$_hostile_n
	mkdir -p "$HOSTILE_DIR"
	HOSTILE_LOG=$HOSTILE_DIR/log
	python3 "$ROOT/tests/tools/hostile-registry.py" --layout "$layout" \
		--port-file "$HOSTILE_DIR/port" --log "$HOSTILE_LOG" "$@" &
	HOSTILE_PID=$!
	at_exit "_kill_pid $HOSTILE_PID"
	if ! wait_for 100 test -s "$HOSTILE_DIR/port"; then
		echo "hostile_start: the registry did not start" >&2
		return 1
	fi
	HOSTILE=127.0.0.1:$(cat "$HOSTILE_DIR/port")
}

hostile_stop() {
	_kill_pid "$HOSTILE_PID"
}

in_netns() {
	unshare -n true 2>/dev/null || return 99
	unshare -n sh -c 'ip link set lo up 2>/dev/null || exit 99; exec "$@"' sh "$@"
}
