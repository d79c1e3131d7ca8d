/*
 * Unit tests of util/run.c's helper runs (run_capture): what a helper
 * writes is read while its input is still being written (neither side
 * waits on the other), output past the limit is read and dropped, a helper
 * that takes too long is killed, one that is not there exits 127 without
 * a word from ctxpack, and none of them counts as the COMMAND that
 * signals are passed on to.  The helpers are /bin/sh, cat, head and sleep.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "ctxpack/util.h"

#define BIG (1u << 20) /* more than a socket's and a pipe's buffers */

static char *big_input(void)
{
	char *p = malloc(BIG);
	size_t i;

	assert_non_null(p);
	for (i = 0; i < BIG; i++)
		p[i] = (char)('a' + (i * 7 + i / 4099) % 26);
	return p;
}

static void test_output_and_stderr(void **state)
{
	char *argv[] = {"sh", "-c", "printf 'Docker version 20.10'; echo noise >&2; exit 3", NULL};
	struct buf out = BUF_INIT;
	int st;

	(void)state;
	st = run_capture(argv, NULL, 0, &out, 255, 10000, RUN_NO_STDERR);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 3);
	assert_string_equal(out.data, "Docker version 20.10");
	assert_int_equal(run_started(), 0);
	buf_release(&out);
}

static void test_input_both_ways(void **state)
{
	char *argv[] = {"cat", NULL}, *in = big_input();
	struct buf out = BUF_INIT;
	int st;

	(void)state;
	st = run_capture(argv, in, BIG, &out, 2 * BIG, 60000, 0);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(out.len, BIG);
	assert_memory_equal(out.data, in, BIG);
	buf_release(&out);
	free(in);
}

static void test_limit_drains(void **state)
{
	char *argv[] = {"cat", NULL}, *in = big_input();
	struct buf out = BUF_INIT;
	int st;

	(void)state;
	/* the rest is read and dropped: cat is not stopped by a full pipe or
	 * killed by SIGPIPE */
	st = run_capture(argv, in, BIG, &out, 10, 60000, 0);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(out.len, 10);
	assert_memory_equal(out.data, in, 10);
	buf_release(&out);
	free(in);
}

static void test_input_not_read(void **state)
{
	char *argv[] = {"head", "-c", "5", NULL}, *in = big_input();
	char *argv2[] = {"true", NULL};
	struct buf out = BUF_INIT;
	int st;

	(void)state;
	/* the helper stops reading and exits: EPIPE for us, never SIGPIPE */
	st = run_capture(argv, in, BIG, &out, 100, 60000, 0);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(out.len, 5);
	assert_memory_equal(out.data, in, 5);
	buf_reset(&out);
	st = run_capture(argv2, in, BIG, &out, 100, 60000, 0);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(out.len, 0);
	buf_release(&out);
	free(in);
}

static void test_timeout(void **state)
{
	char *argv[] = {"sleep", "30", NULL};
	char *argv2[] = {"sh", "-c", "echo started; exec sleep 30", NULL};
	struct buf out = BUF_INIT;
	int st;

	(void)state;
	errno = 0;
	st = run_capture(argv, NULL, 0, &out, 100, 200, 0);
	assert_int_equal(st, -1);
	assert_int_equal(errno, ETIMEDOUT);
	/* what it wrote before is kept (3 s: time for a loaded machine to
	 * start a shell, and still far less than the sleep) */
	st = run_capture(argv2, NULL, 0, &out, 100, 3000, 0);
	assert_int_equal(st, -1);
	assert_int_equal(errno, ETIMEDOUT);
	assert_string_equal(out.data, "started\n");
	buf_release(&out);
}

static void test_not_found(void **state)
{
	char *argv[] = {"ctxpack-test-no-such-helper", "get", NULL};
	struct buf out = BUF_INIT;
	int st;

	(void)state;
	st = run_capture(argv, "x", 1, &out, 100, 10000, 0);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 127);
	assert_int_equal(out.len, 0);
	assert_int_equal(run_started(), 0);
	buf_release(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_output_and_stderr),
		cmocka_unit_test(test_input_both_ways),
		cmocka_unit_test(test_limit_drains),
		cmocka_unit_test(test_input_not_read),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_not_found),
	};

	signal(SIGPIPE, SIG_DFL); /* a write to a closed socket must not be one */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
