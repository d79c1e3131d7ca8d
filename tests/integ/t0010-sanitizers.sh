#!/bin/sh
# The sanitizer build catches what it is there to catch: a program of the
# same build (tests/tools/sanprobe.c, built with the flags of the binary
# under test) overflows a signed int, shifts past an int's width, reads
# past a heap block and leaks one; each run fails, with a report that
# names the fault and its source line.  UBSan's checks trap (Makefile:
# no libubsan), so ASan reports them with handle_sigill=1, as
# scripts/run-tests sets.  Skipped for a build without sanitizers.
. "$(dirname "$0")/lib.sh"

P=$TOOLS/sanprobe
if ! ldd "$CTXPACK" 2>/dev/null | grep -q libasan; then
	echo "1..0 # SKIP $CTXPACK is not a sanitizer build"
	exit 0
fi
like "$(ldd "$P")" "libasan" "the probe is of the same (sanitizer) build"
ok "nothing wrong: exit 0" "$P" ok

# probe CASE REPORT: the probe fails, its report says REPORT and names
# the line of sanprobe.c
probe() {
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1:handle_sigill=1" \
		"$P" "$1" > "$TESTDIR/$1.out" 2>&1
	isnt "$?" 0 "$1: the run fails"
	like "$(cat "$TESTDIR/$1.out")" "$2" "$1: reported as such"
	like "$(cat "$TESTDIR/$1.out")" "sanprobe\\.c:[0-9]+" "$1: the report names the source line"
}
# (with libubsan linked instead of traps: "runtime error: ...")
probe overflow "ERROR: AddressSanitizer: ILL |runtime error: signed integer overflow"
probe shift "ERROR: AddressSanitizer: ILL |runtime error: shift exponent"
probe heap "ERROR: AddressSanitizer: heap-buffer-overflow "
probe leak "ERROR: LeakSanitizer: detected memory leaks"

done_testing
