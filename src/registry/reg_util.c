/*
 * The small helpers every file of src/registry/ uses (the log line, the
 * deadline, tag lists, copying a file while hashing it), kept apart from
 * store.c so that the files under it do not call back into it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reg_impl.h"

#define COPY_BUF (1u << 20)

void reg_log(struct reg_store *s, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (!s->o.log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	s->o.log(s->o.log_arg, line);
}

uint64_t reg_time_left(const struct reg_store *s)
{
	uint64_t now;

	if (!s->deadline_ms)
		return UINT64_MAX;
	now = time_mono_ms();
	return now >= s->deadline_ms ? 0 : s->deadline_ms - now;
}

int reg_deadline_err(struct err *e, const char *what)
{
	return err_set(e, ERR_NET, "%s: time limit reached (--timeout)", what);
}

void reg_tags_push(struct reg_tags *t, char *tag)
{
	/* a power of two: the array is full */
	if (!(t->n & (t->n - 1)))
		t->v = xreallocarray(t->v, t->n ? 2 * t->n : 16, sizeof(*t->v));
	t->v[t->n++] = tag;
}

const char *reg_basename(const char *path)
{
	const char *sl = strrchr(path, '/');

	return sl ? sl + 1 : path;
}

int reg_copy_hash(int in, int out, struct sha256 *h, uint64_t *n, struct err *e,
		  const char *what, struct reg_store *s, uint64_t total, int64_t limit)
{
	char *b = xmalloc(COPY_BUF);
	int ret = 0;

	*n = 0;
	for (;;) {
		size_t want = COPY_BUF;
		ssize_t got;

		/* one byte past the limit tells a longer file from an exact one */
		if (limit >= 0 && (uint64_t)limit + 1 - *n < want)
			want = (size_t)((uint64_t)limit + 1 - *n);
		got = read(in, b, want);

		if (got < 0) {
			if (errno == EINTR)
				continue;
			ret = err_errno(e, "cannot read %s", what);
			break;
		}
		if (!got)
			break;
		if (limit >= 0 && *n + (uint64_t)got > (uint64_t)limit) {
			ret = err_set(e, ERR_CORRUPT, "%s is larger than the %lld bytes declared",
				      what, (long long)limit);
			break;
		}
		if (s && !reg_time_left(s)) {
			ret = reg_deadline_err(e, what);
			break;
		}
		if (h)
			sha256_update(h, b, (size_t)got);
		if (out >= 0 && write_all(out, b, (size_t)got)) {
			ret = err_errno(e, "cannot write %s", what);
			break;
		}
		*n += (uint64_t)got;
		if (s && s->o.progress)
			s->o.progress(s->o.progress_arg, *n, total);
	}
	free(b);
	return ret;
}

void reg_tags_release(struct reg_tags *tags)
{
	size_t i;

	for (i = 0; i < tags->n; i++)
		free(tags->v[i]);
	free(tags->v);
	tags->v = NULL;
	tags->n = 0;
}

unsigned reg_uint_or(const char *v, unsigned dflt)
{
	uint64_t n;

	if (v && !parse_u64(v, &n) && n > 0 && n < 100000)
		return (unsigned)n;
	return dflt;
}

uint64_t reg_size_or(const char *v, uint64_t dflt)
{
	uint64_t n;

	if (v && !parse_u64(v, &n) && n >= 1024)
		return n;
	return dflt;
}
