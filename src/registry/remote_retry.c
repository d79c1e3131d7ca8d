/*
 * The one retry policy of every request to a registry: after a failed try,
 * whether to try again and after how long (backoff, Retry-After, the
 * store's deadline, the number of tries).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "remote_internal.h"

#define RETRY_AFTER_MAX 60  /* s: a longer Retry-After is not waited for */
#define BACKOFF_FIRST 200   /* ms, doubling */
#define BACKOFF_MAX 3000    /* ms */
#define TRIES_ALL_MAX 1000  /* tries in all, progress or not */

int rm_retry_status(long status)
{
	return status == 408 || status == 429 || (status >= 500 && status <= 599);
}

/* Wait ms before a retry, never past the store's deadline (the request
 * after it then fails at once with the deadline's message). */
static void sleep_ms_in(struct reg_store *s, long ms)
{
	uint64_t left = reg_time_left(s);

	sleep_ms((uint64_t)ms > left ? (long)left : ms);
}

/*
 * How long to wait after `fails` failed tries in a row: Retry-After on
 * 429/503 when given (seconds or an HTTP date), else exponential backoff
 * with jitter.  -1 when the server asks for more than RETRY_AFTER_MAX.
 */
static long backoff_ms(struct reg_remote *r, unsigned fails,
		       const struct http_resp *rs)
{
	long ms = BACKOFF_FIRST;
	unsigned i;

	if (rs && rs->retry_after && (rs->status == 429 || rs->status == 503)) {
		uint64_t secs;
		time_t when;

		if (!parse_u64(rs->retry_after, &secs)) {
			if (secs > RETRY_AFTER_MAX)
				return -1;
			return (long)secs * 1000;
		}
		when = curl_getdate(rs->retry_after, NULL);
		if (when > 0) {
			time_t now = time(NULL);

			if (when - now > RETRY_AFTER_MAX)
				return -1;
			return when > now ? (long)(when - now) * 1000 : 0;
		}
	}
	for (i = 1; i < fails && ms < BACKOFF_MAX; i++)
		ms *= 2;
	if (ms > BACKOFF_MAX)
		ms = BACKOFF_MAX;
	return ms + (long)(rand_r(&r->seed) % (unsigned)(ms / 4 + 1));
}

int rm_retry(struct reg_store *s, struct rm_retry *rt, int net,
	     const struct http_resp *rs, int progress, const char *fmt, ...)
{
	char what[768];
	va_list ap;
	long ms;

	rt->tries++;
	if (progress)
		rt->fails = 0;
	rt->fails++;
	if (net && !reg_time_left(s))
		return RM_DEADLINE;
	if (rt->fails >= s->o.max_tries || rt->tries > TRIES_ALL_MAX)
		return RM_TRIES;
	ms = progress ? 0 : backoff_ms(s->rm, rt->fails, net ? NULL : rs);
	if (ms < 0)
		return RM_TOO_LONG;
	s->st.retries++;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	reg_log(s, "%s; %s in %ld ms", what, rt->verb ? rt->verb : "retrying", ms);
	if (ms)
		sleep_ms_in(s, ms);
	return RM_RETRY;
}
