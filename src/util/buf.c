/* The growable buffer and allocation helpers. */
#include "ctxpack/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

char buf_empty[1];

static void oom(size_t n)
{
	fprintf(stderr, "ctxpack: out of memory allocating %zu bytes\n", n);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		oom(n);
	return p;
}

void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz ? sz : 1);

	if (!p)
		oom(n * sz);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		oom(n);
	return q;
}

void *xreallocarray(void *p, size_t n, size_t sz)
{
	if (sz && n > SIZE_MAX / sz)
		oom(SIZE_MAX);
	return xrealloc(p, n * sz);
}

/*
 * Big buffers on huge pages.  A page fault costs this project's machines
 * (VMs) 10-15 us: reading a 17 MB snapshot into fresh malloc'd memory took
 * 63 ms, nearly all of it faults, and 2 ms with the buffer on 2 MiB pages
 * (transparent huge pages, which kernels commonly enable for regions that
 * ask for them: "madvise").  Only a hint: where the kernel does not give
 * huge pages the memory is the same as malloc's.
 */
#define HUGE_PAGE ((size_t)2 << 20)
#define HUGE_MIN ((size_t)512 << 10)

void *xmalloc_big(size_t n)
{
	size_t len = (n + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
	void *p;

	/* from 512 KiB: one 2 MiB page costs less to fault in than 128
	 * small ones (here: 0.1-0.2 ms against 1.3 ms), even mostly unused */
	if (n < HUGE_MIN || len < n)
		return xmalloc(n);
	if (posix_memalign(&p, HUGE_PAGE, len))
		oom(n);
#ifdef MADV_HUGEPAGE
	(void)madvise(p, len, MADV_HUGEPAGE);
#endif
	return p;
}

void *xreallocarray_big(void *p, size_t old, size_t n, size_t sz)
{
	void *q;

	if (sz && n > SIZE_MAX / sz)
		oom(SIZE_MAX);
	if (n * sz < HUGE_MIN || old >= n)
		return xreallocarray(p, n, sz);
	q = xmalloc_big(n * sz);
	if (old)
		memcpy(q, p, old * sz);
	free(p);
	return q;
}

void *xmallocarray_big(size_t n, size_t sz)
{
	return xreallocarray_big(NULL, 0, n, sz);
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	return buf_detach(&b, NULL);
}

void buf_init(struct buf *b, size_t max)
{
	b->data = buf_empty;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void buf_release(struct buf *b)
{
	if (b->cap)
		free(b->data);
	b->data = buf_empty;
	b->len = 0;
	b->cap = 0;
}

int buf_map(struct buf *b, size_t size, int huge)
{
	size_t len = (size + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
	char *m = mmap(NULL, len + HUGE_PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uintptr_t a;

	if (m == MAP_FAILED)
		return -1;
	/* aligned to a huge page, the slack on both sides unmapped */
	a = ((uintptr_t)m + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
	if (a > (uintptr_t)m)
		munmap(m, a - (uintptr_t)m);
	if ((uintptr_t)m + HUGE_PAGE > a)
		munmap((char *)a + len, (uintptr_t)m + HUGE_PAGE - a);
	/* either way, whatever the system's default: memory use must not
	 * depend on it */
#if defined(MADV_HUGEPAGE) && defined(MADV_NOHUGEPAGE)
	madvise((void *)a, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
#endif
	b->data = (char *)a;
	b->len = 0;
	b->cap = len;
	b->max = len - 1;
	b->data[0] = '\0';
	return 0;
}

void buf_unmap(struct buf *b)
{
	if (b->cap)
		munmap(b->data, b->cap);
	buf_init(b, 0);
}

void buf_trim(struct buf *b, size_t used, size_t keep)
{
	size_t from = (keep + 4095) & ~(size_t)4095;
	/* up to a huge page's end: dropping part of one would split it, and
	 * the next fill would fault its pages 4 KiB at a time (beyond `used`
	 * nothing was touched, so this drops nothing more) */
	size_t to = (used + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);

	if (to > b->cap)
		to = b->cap;
	if (to > from)
		madvise(b->data + from, to - from, MADV_DONTNEED);
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->cap)
		b->data[0] = '\0';
}

int buf_grow(struct buf *b, size_t extra)
{
	size_t want, ncap;

	if (extra > SIZE_MAX - b->len - 1)
		return ERR_FAIL;
	want = b->len + extra;
	if (b->max && want > b->max)
		return ERR_FAIL;
	if (want + 1 <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 64;
	while (ncap < want + 1)
		ncap = ncap > SIZE_MAX / 2 ? want + 1 : ncap * 2;
	if (b->cap) {
		/* all of the old capacity, as realloc keeps it */
		b->data = xreallocarray_big(b->data, b->cap, ncap, 1);
	} else {
		b->data = xmalloc_big(ncap);
		b->data[0] = '\0';
	}
	b->cap = ncap;
	return 0;
}

int buf_add(struct buf *b, const void *p, size_t n)
{
	if (buf_grow(b, n))
		return ERR_FAIL;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int buf_addstr(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

int buf_addch(struct buf *b, int c)
{
	char ch = (char)c;

	return buf_add(b, &ch, 1);
}

int buf_vaddf(struct buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0 || buf_grow(b, (size_t)n))
		return ERR_FAIL;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int buf_addf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vaddf(b, fmt, ap);
	va_end(ap);
	return r;
}

void buf_setlen(struct buf *b, size_t len)
{
	if (!b->cap) {
		if (len)
			abort();
		return;
	}
	if (len >= b->cap)
		abort();
	b->len = len;
	b->data[len] = '\0';
}

char *buf_detach(struct buf *b, size_t *len)
{
	char *p;

	if (len)
		*len = b->len;
	p = b->cap ? b->data : xstrdup("");
	b->data = buf_empty;
	b->len = 0;
	b->cap = 0;
	return p;
}

int buf_read_file(struct buf *b, const char *path, size_t max, struct err *e)
{
	char tmp[65536];
	int fd, ret = 0;
	ssize_t n;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_errno(e, "cannot open %s", path);
	for (;;) {
		n = read(fd, tmp, sizeof(tmp));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = err_errno(e, "cannot read %s", path);
			break;
		}
		if (n == 0)
			break;
		if ((max && b->len + (size_t)n > max) || buf_add(b, tmp, (size_t)n)) {
			ret = err_set(e, ERR_FAIL, "%s: file too large", path);
			break;
		}
	}
	close(fd);
	return ret;
}
