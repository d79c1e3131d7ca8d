#!/bin/sh
# ctxpack hash: files that cannot be read, or keep changing while they are
# read, fail the run with an error that names them.
. "$(dirname "$0")/lib.sh"

C=$TESTDIR/ctx
mkdir -p "$C/sub"
echo ok > "$C/ok"
echo secret > "$C/sub/secret"

# --- an unreadable file ---
# root reads a mode-000 file anyway, so as root the run drops to nobody
chmod 000 "$C/sub/secret"
if [ "$(id -u)" != 0 ]; then
	exits 1 "an unreadable file: exit 1" ctxpack hash --index "$TESTDIR/idx" "$C"
	like "$(cat "$TESTDIR/.out")" "error: .*sub/secret" "the error names it"
elif command -v setpriv >/dev/null &&
	setpriv --reuid=nobody --regid=nogroup --clear-groups true 2>/dev/null; then
	chmod 755 "$TESTDIR"
	mkdir -p "$TESTDIR/nobody-idx"; chown nobody "$TESTDIR/nobody-idx"
	as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
	exits 1 "an unreadable file (as nobody): exit 1" \
		as_nobody $EXEC_PREFIX "$CTXPACK" hash --index "$TESTDIR/nobody-idx" "$C"
	like "$(cat "$TESTDIR/.out")" "error: .*sub/secret" "the error names it"
	chmod 644 "$C/sub/secret"
	exits 0 "readable again (as nobody): exit 0" \
		as_nobody $EXEC_PREFIX "$CTXPACK" hash --index "$TESTDIR/nobody-idx" "$C"
else
	skip "running as root without setpriv to drop to nobody: root reads mode 000 files"
	skip "(same)"
	skip "(same)"
fi
chmod 644 "$C/sub/secret"

# --- a file that changes while it is read ---
# a 64 MiB file that another process keeps appending to: the size and
# mtime differ between the fstat before and after each read
head -c 67108864 /dev/zero > "$C/growing"
sh -c 'while :; do printf x >> "$1"; done' sh "$C/growing" &
appender=$!
at_exit "kill $appender"
wait_for 100 sh -c 'test "$(stat -c %s "$1")" -gt 67108864' sh "$C/growing"
# (on a busy machine the appender may sleep through both reads of a run:
# up to ten runs, at least one must see the change; none may fail otherwise)
seen=0; other=0; k=0
while [ $k -lt 10 ] && [ $seen -eq 0 ]; do
	k=$((k + 1))
	if ctxpack hash --index "$TESTDIR/idx2" "$C" > "$TESTDIR/chg.out" 2>&1; then
		continue
	elif grep -q "^ctxpack: error: file changed while being read: growing$" "$TESTDIR/chg.out"; then
		seen=1
	else
		other=$((other + 1)); sed 's/^/#   /' "$TESTDIR/chg.out" >&2
	fi
done
is "$seen" 1 "a file that keeps changing: exit 1, 'file changed while being read: growing'"
is "$other" 0 "and no other failure"
kill "$appender"; wait "$appender" 2>/dev/null
exits 0 "once it stops changing: exit 0" ctxpack hash --index "$TESTDIR/idx2" "$C"

done_testing
