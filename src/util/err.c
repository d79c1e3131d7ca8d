/* The error record: first failure wins, context is prefixed on the way up. */
#include "ctxpack/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void err_clear(struct err *e)
{
	e->code = 0;
	e->saved_errno = 0;
	e->msg[0] = '\0';
}

static int err_vset(struct err *e, int code, int saved, const char *fmt,
		    va_list ap)
{
	if (e->code)
		return e->code;
	e->code = code ? code : ERR_FAIL;
	e->saved_errno = saved;
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	return e->code;
}

int err_set(struct err *e, int code, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = err_vset(e, code, 0, fmt, ap);
	va_end(ap);
	return r;
}

int err_errno(struct err *e, const char *fmt, ...)
{
	int saved = errno;
	size_t len;
	va_list ap;

	if (e->code)
		return e->code;
	va_start(ap, fmt);
	err_vset(e, saved == ENOENT ? ERR_NOTFOUND : ERR_FAIL, saved, fmt, ap);
	va_end(ap);
	len = strlen(e->msg);
	snprintf(e->msg + len, sizeof(e->msg) - len, ": %s", strerror(saved));
	return e->code;
}

int err_wrap(struct err *e, const char *fmt, ...)
{
	char prefix[1024];
	size_t plen, mlen, cap = sizeof(e->msg);
	va_list ap;
	int n;

	if (!e->code)
		e->code = ERR_FAIL;
	va_start(ap, fmt);
	n = vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	if (n < 0)
		return e->code;
	plen = strlen(prefix);
	mlen = strnlen(e->msg, cap - 1);
	/* "prefix: msg", truncating the old message at the end if needed */
	if (plen + 2 >= cap)
		plen = cap - 3;
	if (plen + 2 + mlen >= cap)
		mlen = cap - 1 - plen - 2;
	memmove(e->msg + plen + 2, e->msg, mlen);
	memcpy(e->msg, prefix, plen);
	e->msg[plen] = ':';
	e->msg[plen + 1] = ' ';
	e->msg[plen + 2 + mlen] = '\0';
	return e->code;
}
