/*
 * unpack_feed.c: the input of an extraction: a thread that reads the
 * archive (an fd or memory) and decompresses zstd beside the extraction,
 * handing libarchive plain tar.
 */
#include <archive.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unpack_internal.h"
#include "zstd_internal.h"

/*
 * The feeder: a thread that reads the input (an fd or memory) and, when it
 * starts with the zstd magic, decompresses it, handing libarchive plain tar
 * in SLOTS buffers of SLOT_SIZE.  So the decompression runs beside the
 * extraction (as in `curl | zstd -d | tar -x`) instead of before each
 * write; anything else (gzip, plain tar) passes through to libarchive's
 * own filters.  libarchive holds one slot at a time (until its next read);
 * the producer fills the others.
 */
#define SLOTS 4
#define SLOT_SIZE (1u << 20)

struct up_feeder {
	int fd;                       /* the input, or -1 for memory */
	const unsigned char *mem;
	size_t mem_len, mem_off;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned char *buf[SLOTS];
	size_t len[SLOTS];
	size_t head;                  /* oldest filled slot */
	size_t filled;                /* filled slots not yet taken */
	int held;                     /* libarchive holds slot head - 1 */
	int done;                     /* the producer has finished */
	int stop;                     /* the consumer has finished */
	int ret;                      /* the producer's failure */
	struct err e;
	pthread_t th;
};

static ssize_t src_read(struct up_feeder *f, void *p, size_t n)
{
	if (f->fd < 0) {
		size_t k = f->mem_len - f->mem_off;

		if (k > n)
			k = n;
		memcpy(p, f->mem + f->mem_off, k);
		f->mem_off += k;
		return (ssize_t)k;
	}
	for (;;) {
		ssize_t k = read(f->fd, p, n);

		if (k >= 0 || errno != EINTR)
			return k;
	}
}

/* Wait for a free slot; -1 when the consumer is gone. */
static int slot_acquire(struct up_feeder *f)
{
	int idx = -1;

	pthread_mutex_lock(&f->mu);
	while (!f->stop && f->filled + (size_t)f->held >= SLOTS)
		pthread_cond_wait(&f->cv, &f->mu);
	if (!f->stop)
		idx = (int)((f->head + f->filled) % SLOTS);
	pthread_mutex_unlock(&f->mu);
	return idx;
}

static void slot_publish(struct up_feeder *f, size_t n)
{
	pthread_mutex_lock(&f->mu);
	f->len[(f->head + f->filled) % SLOTS] = n;
	f->filled++;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

static void *produce(void *arg)
{
	struct up_feeder *f = arg;
	unsigned char *in = NULL;
	ZSTD_DStream *z = NULL;
	size_t in_cap = ZSTD_DStreamInSize(), in_len = 0, in_pos = 0, last = 0;
	int idx, zstd = 0, eof = 0, ret = 0;

	in = xmalloc(in_cap);
	/* the first bytes decide: zstd or passthrough */
	while (in_len < 4) {
		ssize_t k = src_read(f, in + in_len, in_cap - in_len);

		if (k < 0) {
			ret = err_errno(&f->e, "cannot read the archive");
			goto out;
		}
		if (!k) {
			eof = 1;
			break;
		}
		in_len += (size_t)k;
	}
	if (in_len >= 4 && in[0] == 0x28 && in[1] == 0xb5 && in[2] == 0x2f && in[3] == 0xfd) {
		zstd = 1;
		z = pack_zstd_dstream();
		if (!z) {
			ret = err_set(&f->e, ERR_NOMEM, "cannot allocate a zstd decoder");
			goto out;
		}
	}
	for (;;) {
		ZSTD_outBuffer ob;
		int finished = 0;

		idx = slot_acquire(f);
		if (idx < 0)
			break;
		ob.dst = f->buf[idx];
		ob.size = SLOT_SIZE;
		ob.pos = 0;
		while (ob.pos < ob.size) {
			if (in_pos == in_len && !eof) {
				ssize_t k = src_read(f, in, in_cap);

				if (k < 0) {
					ret = err_errno(&f->e, "cannot read the archive");
					goto out;
				}
				in_pos = 0;
				in_len = (size_t)k;
				eof = k == 0;
			}
			if (!zstd) {
				size_t k = in_len - in_pos;

				if (!k && eof) {
					finished = 1;
					break;
				}
				if (k > ob.size - ob.pos)
					k = ob.size - ob.pos;
				memcpy((char *)ob.dst + ob.pos, in + in_pos, k);
				ob.pos += k;
				in_pos += k;
				continue;
			}
			if (in_pos == in_len && eof && last == 0) {
				/* the last frame is complete and flushed */
				finished = 1;
				break;
			}
			{
				ZSTD_inBuffer ib = {in, in_len, in_pos};
				size_t before = ob.pos;

				last = ZSTD_decompressStream(z, &ob, &ib);
				in_pos = ib.pos;
				if (ZSTD_isError(last)) {
					ret = err_set(&f->e, ERR_CORRUPT, "zstd: %s",
						      ZSTD_getErrorName(last));
					goto out;
				}
				/* no input left and nothing more comes out */
				if (eof && in_pos == in_len && last != 0 && ob.pos == before) {
					ret = err_set(&f->e, ERR_CORRUPT, "truncated zstd stream");
					goto out;
				}
			}
		}
		if (ob.pos)
			slot_publish(f, ob.pos);
		if (finished)
			break;
	}
out:
	pthread_mutex_lock(&f->mu);
	f->ret = ret;
	f->done = 1;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	ZSTD_freeDStream(z);
	free(in);
	return NULL;
}

static la_ssize_t feed_read(struct archive *a, void *cd, const void **out)
{
	struct up_feeder *f = cd;
	la_ssize_t n = 0;

	pthread_mutex_lock(&f->mu);
	if (f->held) {
		f->held = 0;
		pthread_cond_broadcast(&f->cv);
	}
	while (!f->filled && !f->done)
		pthread_cond_wait(&f->cv, &f->mu);
	if (f->filled) {
		*out = f->buf[f->head];
		n = (la_ssize_t)f->len[f->head];
		f->head = (f->head + 1) % SLOTS;
		f->filled--;
		f->held = 1;
	} else if (f->ret) {
		archive_set_error(a, EIO, "%s", f->e.msg);
		n = -1;
	}
	pthread_mutex_unlock(&f->mu);
	return n;
}

struct up_feeder *up_feeder_start(int fd, const void *p, size_t n, struct err *e)
{
	struct up_feeder *f = xcalloc(1, sizeof(*f));
	int i, r;

	f->fd = fd;
	f->mem = p;
	f->mem_len = n;
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	for (i = 0; i < SLOTS; i++)
		f->buf[i] = xmalloc_big(SLOT_SIZE);
	r = pthread_create(&f->th, NULL, produce, f);
	if (r) {
		for (i = 0; i < SLOTS; i++)
			free(f->buf[i]);
		free(f);
		errno = r;
		err_errno(e, "cannot start the decompressor");
		return NULL;
	}
	return f;
}

int up_feeder_open(struct up_feeder *f, struct archive *a)
{
	return archive_read_open(a, f, NULL, feed_read, NULL);
}

int up_feeder_finish(struct up_feeder *f, int ret, struct err *e)
{
	int i;

	/* stop the producer (it may be waiting for a slot) and reap it */
	pthread_mutex_lock(&f->mu);
	f->stop = 1;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	pthread_join(f->th, NULL);
	for (i = 0; i < SLOTS; i++)
		free(f->buf[i]);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cv);
	/* a broken stream explains libarchive's complaint about it */
	if (f->ret && ret) {
		err_clear(e);
		*e = f->e;
		ret = f->ret;
	}
	free(f);
	return ret;
}
