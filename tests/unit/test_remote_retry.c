/*
 * Unit tests of the registry client's one retry policy (rm_retry in
 * src/registry/remote_retry.c): which statuses are worth another try, the
 * number of tries, a Retry-After too long to wait for, the deadline, and
 * a transfer that moves on starting its count again.  No request is made
 * and no wait is longer than a Retry-After of 0 s.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "ctxpack/registry.h"
#include "ctxpack/util.h"
#include "../../src/registry/remote_internal.h"

static struct reg_store *open_store(unsigned max_tries)
{
	struct reg_store *s = NULL;
	struct reg_opts o;
	struct err e = ERR_INIT;

	reg_opts_init(&o);
	o.max_tries = max_tries;
	assert_int_equal(reg_store_open(&s, "127.0.0.1:1/retry", &o, &e), 0);
	return s;
}

static void set_answer(struct http_resp *rs, long status, const char *retry_after)
{
	free(rs->retry_after);
	rs->status = status;
	rs->retry_after = retry_after ? xstrdup(retry_after) : NULL;
}

static void test_statuses(void **state)
{
	(void)state;
	assert_true(rm_retry_status(408));
	assert_true(rm_retry_status(429));
	assert_true(rm_retry_status(500));
	assert_true(rm_retry_status(503));
	assert_true(rm_retry_status(599));
	assert_false(rm_retry_status(200));
	assert_false(rm_retry_status(404));
	assert_false(rm_retry_status(416));
	assert_false(rm_retry_status(401));
	assert_false(rm_retry_status(600));
}

static void test_tries(void **state)
{
	struct reg_store *s = open_store(3);
	struct rm_retry rt = {0, 0, NULL};
	struct http_resp rs;
	struct reg_stats st;

	(void)state;
	http_resp_init(&rs);
	set_answer(&rs, 503, "0");
	assert_int_equal(rm_retry(s, &rt, 0, &rs, 0, "try %d", 1), RM_RETRY);
	assert_int_equal(rm_retry(s, &rt, 0, &rs, 0, "try %d", 2), RM_RETRY);
	/* the third failure of three tries is the last */
	assert_int_equal(rm_retry(s, &rt, 0, &rs, 0, "try %d", 3), RM_TRIES);
	assert_int_equal(rt.tries, 3);
	reg_store_stats(s, &st);
	assert_int_equal(st.retries, 2);
	http_resp_release(&rs);
	reg_store_free(s);
}

static void test_retry_after(void **state)
{
	struct reg_store *s = open_store(6);
	struct rm_retry rt = {0, 0, NULL};
	struct http_resp rs;
	struct reg_stats st;

	(void)state;
	http_resp_init(&rs);
	/* more than a minute: not waited for, not counted */
	set_answer(&rs, 429, "120");
	assert_int_equal(rm_retry(s, &rt, 0, &rs, 0, "x"), RM_TOO_LONG);
	set_answer(&rs, 503, "61");
	assert_int_equal(rm_retry(s, &rt, 0, &rs, 0, "x"), RM_TOO_LONG);
	reg_store_stats(s, &st);
	assert_int_equal(st.retries, 0);
	/* within a minute: waited (0 s here), and counted */
	set_answer(&rs, 429, "0");
	assert_int_equal(rm_retry(s, &rt, 0, &rs, 0, "x"), RM_RETRY);
	reg_store_stats(s, &st);
	assert_int_equal(st.retries, 1);
	http_resp_release(&rs);
	reg_store_free(s);
}

static void test_progress(void **state)
{
	struct reg_store *s = open_store(2);
	struct rm_retry rt = {0, 0, "resuming"};
	unsigned i;

	(void)state;
	/* a download cut after some bytes each time: resumed at once, as
	 * long as it moves on, but not more than 1000 times in all */
	for (i = 1; i < 1000; i++)
		assert_int_equal(rm_retry(s, &rt, 1, NULL, 1, "cut %u", i), RM_RETRY);
	assert_int_equal(rm_retry(s, &rt, 1, NULL, 1, "cut"), RM_RETRY);
	assert_int_equal(rm_retry(s, &rt, 1, NULL, 1, "cut"), RM_TRIES);
	reg_store_free(s);
}

static void test_deadline(void **state)
{
	struct reg_store *s = open_store(6);
	struct rm_retry rt = {0, 0, NULL};
	struct http_resp rs;

	(void)state;
	http_resp_init(&rs);
	reg_store_set_deadline(s, 1); /* long past */
	/* a network failure after the deadline is final */
	assert_int_equal(rm_retry(s, &rt, 1, NULL, 0, "x"), RM_DEADLINE);
	/* an answer is not: the next try fails at once with the deadline's
	 * message (no wait past the deadline) */
	set_answer(&rs, 500, NULL);
	assert_int_equal(rm_retry(s, &rt, 0, &rs, 0, "x"), RM_RETRY);
	http_resp_release(&rs);
	reg_store_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_statuses),
		cmocka_unit_test(test_tries),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_progress),
		cmocka_unit_test(test_deadline),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
