/*
 * sanprobe: does one wrong thing on purpose, so that a test can check that
 * the build's sanitizers catch it (tests/integ/t0010-sanitizers.sh).
 *
 *   sanprobe ok         nothing wrong: exit 0
 *   sanprobe overflow   signed integer overflow (UBSan)
 *   sanprobe shift      a shift past the width of int (UBSan)
 *   sanprobe heap       a read one byte past a heap block (ASan)
 *   sanprobe leak       a block nothing points to at exit (LeakSanitizer)
 *
 * The operands come from the command line, so the compiler cannot see the
 * fault coming and fold it away.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *kept;
static void *volatile lost;

int main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "";
	int big = argc > 2 ? atoi(argv[2]) : 2147483647;

	if (!strcmp(what, "ok")) {
		kept = malloc(16);
		free(kept);
		return 0;
	}
	if (!strcmp(what, "overflow")) {
		int r = big + argc;
		printf("%d\n", r);
		return 0;
	}
	if (!strcmp(what, "shift")) {
		int r = 1 << (big % 64);
		printf("%d\n", r);
		return 0;
	}
	if (!strcmp(what, "heap")) {
		size_t n = strlen(what);
		char *p = malloc(n);
		memcpy(p, what, n);
		printf("%d\n", p[n + (size_t)(argc > 2)]);
		free(p);
		return 0;
	}
	if (!strcmp(what, "leak")) {
		lost = malloc(4096);
		memset(lost, 1, 4096);
		lost = NULL;
		return 0;
	}
	fprintf(stderr, "usage: sanprobe ok|overflow|shift|heap|leak\n");
	return 2;
}
