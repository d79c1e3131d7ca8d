/*
 * pack_run: the pipeline.  The frames are planned up front from the walk
 * (pack_plan), then a pool of workers encodes them, each frame from start
 * to end on one worker: it opens and reads the frame's files, builds the
 * tar bytes and compresses them into the frame's slot.  Reading and
 * compressing overlap across workers, and reads from several workers give
 * a cold disk some queue depth.  The calling thread writes finished frames
 * to the sink strictly in order; pack_write hashes them (sha256) on the
 * way.  The pool itself (pack_encode_frames) is also the frame store's,
 * for the few frames it encodes after an edit: one pool in the tree.
 *
 * Memory is bounded by the slots: a worker may start frame k only while
 * k - written < nslots, so at most nslots encoded frames (each at most a
 * frame's compressed size) exist at once, plus per worker one codec
 * context and one read buffer.  Nothing depends on the context's size
 * except the entry list itself.
 *
 * The bytes never depend on the thread count: each frame is encoded from
 * a fresh codec state by whichever worker takes it, and written in order.
 */
#include "pack_internal.h"

#include <fcntl.h>
#include <langinfo.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/*
 * Slot buffers are mapped once, large enough for any frame's encoding
 * (a frame is at most PACK_FRAME_MAX plus one entry's headers; zstd and
 * gzip expand incompressible input by far less than PACK_FRAME_MAX), and
 * never reallocated (buf.max); after a frame is written, all but the first
 * PACK_SLOT_KEEP bytes (about a compressed frame) are handed back to the
 * kernel, so resident memory follows the frames in flight, not the largest
 * ones ever seen.  With up to two workers, slots and the workers' input
 * buffers are on huge pages: on the 100k-file tree that takes about 0.4 s
 * of system time (page faults) off a 2.2 s pack, for 2 MiB steps of
 * memory that more workers could not afford under 64 MiB.
 */
#define PACK_SLOT_SIZE (2 * (size_t)PACK_FRAME_MAX + (1u << 20))
#define PACK_HUGE_WORKERS 2
#define PACK_SLOT_KEEP(huge) ((size_t)((huge) ? 2 : 1) << 20)
/* Slots beyond one per worker: how far the fastest worker may run ahead
 * of the oldest frame not yet written; each costs up to a compressed
 * frame of memory (on huge pages, a second one bought ~1% of speed for
 * 3 MiB of peak memory). */
#ifndef PACK_EXTRA_SLOTS
#define PACK_EXTRA_SLOTS 1
#endif

struct slot {
	struct buf out;
	uint64_t tar_bytes;
	int done;
};

struct pool {
	pthread_mutex_t mu;
	pthread_cond_t cv_work;  /* a slot became free, or stop */
	pthread_cond_t cv_done;  /* a frame is encoded, or stop */
	const struct pack_list *l;
	const struct pack_opts *o;
	const struct pack_frame_cache *cache;
	const struct pack_frame *frames;
	size_t nframes;
	size_t next;             /* next frame to hand out */
	size_t written;          /* frames written to the sink */
	struct slot *slots;
	size_t nslots;
	int stop;
	struct err err;          /* the first worker failure */
	int rootfd;
};

struct worker_arg {
	struct pool *p;
	struct pack_worker *w;
};

static void pool_fail(struct pool *p, const struct err *e)
{
	pthread_mutex_lock(&p->mu);
	if (!err_isset(&p->err))
		p->err = *e;
	__atomic_store_n(&p->stop, 1, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&p->cv_work);
	pthread_cond_broadcast(&p->cv_done);
	pthread_mutex_unlock(&p->mu);
}

static void *worker_main(void *arg)
{
	struct worker_arg *wa = arg;
	struct pool *p = wa->p;

	for (;;) {
		const struct pack_frame *f;
		struct err e = ERR_INIT;
		struct slot *s;
		size_t k;
		int r = 0;

		pthread_mutex_lock(&p->mu);
		while (!p->stop && p->next < p->nframes && p->next - p->written >= p->nslots)
			pthread_cond_wait(&p->cv_work, &p->mu);
		if (p->stop || p->next >= p->nframes) {
			pthread_mutex_unlock(&p->mu);
			break;
		}
		k = p->next++;
		pthread_mutex_unlock(&p->mu);

		f = &p->frames[k];
		s = &p->slots[k % p->nslots];
		buf_reset(&s->out);
		s->tar_bytes = 0;
		if (p->cache && p->cache->get &&
		    p->cache->get(p->cache->ctx, p->l, f, p->o, &s->out) == 1) {
			s->tar_bytes = 0; /* unknown for a reused frame */
		} else {
			buf_reset(&s->out);
			r = pack_frame_encode(wa->w, p->l, p->rootfd, f, &s->out, &s->tar_bytes,
					      &e);
			if (!r && p->cache && p->cache->put)
				p->cache->put(p->cache->ctx, p->l, f, p->o, s->out.data,
					      s->out.len);
		}
		if (r) {
			pool_fail(p, &e);
			break;
		}
		pthread_mutex_lock(&p->mu);
		s->done = 1;
		pthread_cond_broadcast(&p->cv_done);
		pthread_mutex_unlock(&p->mu);
	}
	return NULL;
}

/*
 * One worker per CPU (at least 2; pack_write runs at most PACK_MAX_WORKERS).
 * The writer thread's sha256 and writes take about a tenth of a CPU; on 2
 * CPUs a third worker made packs slower, not faster (more switching, the
 * same compression work).  Each worker costs up to about 13 MiB at level
 * 3: its zstd context, its read buffer and a frame's tar bytes gathered
 * for the one-shot compress (20 MiB with an incompressible frame's output).
 */
static unsigned default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 2 ? 2 : n > PACK_MAX_WORKERS ? PACK_MAX_WORKERS : (unsigned)n;
}

int pack_encode_frames(const struct pack_list *l, const struct pack_opts *o, int rootfd,
		       const struct pack_frame *frames, size_t nframes, unsigned threads,
		       const struct pack_frame_cache *cache, pack_sink_fn sink, void *sink_ctx,
		       uint64_t *bytes, uint64_t *tar_bytes, struct err *e)
{
	struct pool p;
	struct worker_arg *wa = NULL;
	pthread_t *tids = NULL;
	unsigned nw, started = 0, i;
	int huge;
	size_t k;
	int ret = 0;

	nw = threads ? threads : default_threads();
	if (nw > PACK_MAX_WORKERS)
		nw = PACK_MAX_WORKERS;
	if (nw > nframes)
		nw = (unsigned)nframes;
	huge = nw <= PACK_HUGE_WORKERS;
	memset(&p, 0, sizeof(p));
	p.rootfd = rootfd;
	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.cv_work, NULL);
	pthread_cond_init(&p.cv_done, NULL);
	p.l = l;
	p.o = o;
	p.cache = cache;
	p.frames = frames;
	p.nframes = nframes;
	p.nslots = nw + PACK_EXTRA_SLOTS;
	p.slots = xcalloc(p.nslots, sizeof(*p.slots));
	wa = xcalloc(nw, sizeof(*wa));
	tids = xcalloc(nw, sizeof(*tids));
	for (k = 0; k < p.nslots; k++) {
		if (buf_map(&p.slots[k].out, PACK_SLOT_SIZE, huge)) {
			buf_init(&p.slots[k].out, 0);
			ret = err_errno(e, "cannot map %zu bytes", (size_t)PACK_SLOT_SIZE);
			goto out;
		}
	}
	for (i = 0; i < nw; i++) {
		wa[i].p = &p;
		wa[i].w = pack_worker_new(o, huge, e);
		if (!wa[i].w) {
			ret = e->code;
			goto out;
		}
		wa[i].w->stop = &p.stop;
		wa[i].w->cache = cache;
	}
	for (i = 0; i < nw; i++) {
		if (pthread_create(&tids[i], NULL, worker_main, &wa[i])) {
			ret = err_errno(e, "cannot start a worker thread");
			pool_fail(&p, e);
			break;
		}
		started++;
	}

	for (k = 0; k < nframes && !ret; k++) {
		struct slot *s = &p.slots[k % p.nslots];

		pthread_mutex_lock(&p.mu);
		while (!s->done && !p.stop)
			pthread_cond_wait(&p.cv_done, &p.mu);
		if (!s->done) {
			pthread_mutex_unlock(&p.mu);
			break;
		}
		pthread_mutex_unlock(&p.mu);

		if (s->out.len && sink) {
			ret = sink(sink_ctx, s->out.data, s->out.len, e);
			if (ret) {
				struct err tmp = *e;

				pool_fail(&p, &tmp);
				break;
			}
		}
		if (bytes)
			*bytes += s->out.len;
		if (tar_bytes)
			*tar_bytes += s->tar_bytes;
		/* a slot that once held an incompressible frame would keep
		 * its pages: give back all but the first PACK_SLOT_KEEP */
		buf_trim(&s->out, s->out.len, PACK_SLOT_KEEP(huge));

		pthread_mutex_lock(&p.mu);
		s->done = 0;
		p.written++;
		pthread_cond_broadcast(&p.cv_work);
		pthread_mutex_unlock(&p.mu);
	}
	if (!ret && p.written < nframes) {
		/* a worker failed */
		pthread_mutex_lock(&p.mu);
		*e = p.err;
		pthread_mutex_unlock(&p.mu);
		ret = e->code ? e->code : ERR_FAIL;
	}
out:
	if (ret) {
		pthread_mutex_lock(&p.mu);
		__atomic_store_n(&p.stop, 1, __ATOMIC_RELAXED);
		pthread_cond_broadcast(&p.cv_work);
		pthread_cond_broadcast(&p.cv_done);
		pthread_mutex_unlock(&p.mu);
	}
	for (i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	for (i = 0; i < nw; i++)
		pack_worker_free(wa[i].w);
	for (k = 0; k < p.nslots; k++)
		buf_unmap(&p.slots[k].out);
	free(p.slots);
	free(wa);
	free(tids);
	pthread_cond_destroy(&p.cv_work);
	pthread_cond_destroy(&p.cv_done);
	pthread_mutex_destroy(&p.mu);
	return ret;
}

/* pack_write's sink: the caller's, and the sha256 of what it is given. */
struct hashing_sink {
	pack_sink_fn fn;
	void *ctx;
	struct sha256 *sha;     /* NULL: the caller hashes (PACK_CACHE_OWN_DIGEST) */
	int first;              /* stdin_safe: the first write is still to come */
	int64_t mtime;
	uint64_t extra;         /* bytes written here, not by the encoder */
};

/* An empty pax global header (ustar layout, typeflag 'g', size 0). */
static void global_header(unsigned char b[512], int64_t mtime)
{
	unsigned sum = 0;
	size_t i;

	memset(b, 0, 512);
	memcpy(b, PACK_GLOBAL_HEADER_NAME, sizeof(PACK_GLOBAL_HEADER_NAME) - 1);
	memcpy(b + 100, "0000644", 7);
	memcpy(b + 108, "0000000", 7);
	memcpy(b + 116, "0000000", 7);
	memcpy(b + 124, "00000000000", 11);
	snprintf((char *)b + 136, 12, "%011llo",
		 (unsigned long long)(mtime > 0 && mtime < 077777777777LL ? mtime : 0));
	b[156] = 'g';
	memcpy(b + 257, "ustar", 6);
	memcpy(b + 263, "00", 2);
	memset(b + 148, ' ', 8);
	for (i = 0; i < 512; i++)
		sum += b[i];
	snprintf((char *)b + 148, 8, "%06o", sum);
	b[155] = ' ';
}

static int hashing_write(void *ctx, const void *p, size_t n, struct err *e)
{
	struct hashing_sink *hs = ctx;
	const unsigned char *c = p;
	int ret;

	if (hs->first && n) {
		hs->first = 0;
		/* the first entry's first header is an extended one */
		if (n >= 512 && (c[156] == 'x' || c[156] == 'L' || c[156] == 'K') &&
		    !memcmp(c + 257, "ustar", 5)) {
			unsigned char g[512];

			global_header(g, hs->mtime);
			if ((ret = hs->fn(hs->ctx, g, sizeof(g), e)))
				return ret;
			if (hs->sha)
				sha256_update(hs->sha, g, sizeof(g));
			hs->extra += sizeof(g);
		}
	}
	ret = hs->fn(hs->ctx, p, n, e);
	if (!ret && hs->sha)
		sha256_update(hs->sha, p, n);
	return ret;
}

int pack_write(const struct pack_list *l, const struct pack_opts *o,
	       const struct pack_frame_cache *cache, pack_sink_fn sink, void *sink_ctx,
	       struct pack_result *res, struct err *e)
{
	struct pack_frame *frames = NULL;
	struct hashing_sink hs;
	unsigned char md[32];
	size_t nframes = 0;
	const char *cs;
	int rootfd, ret, own_digest = cache && (cache->flags & PACK_CACHE_OWN_DIGEST);

	memset(res, 0, sizeof(*res));
	if (pack_opts_check(o, e))
		return e->code;
	if (!o->normalize_modes != !l->normalize_modes)
		return err_set(e, ERR_FAIL, "internal error: the pack options and the walk "
			       "disagree on --normalize-modes");
	/* libarchive converts names from the locale's charset to UTF-8; a
	 * non-UTF-8 locale would make the headers depend on it. */
	cs = nl_langinfo(CODESET);
	if (!cs || strcmp(cs, "UTF-8"))
		return err_set(e, ERR_FAIL, "the locale's charset is %s, not UTF-8 (is the "
			       "C.UTF-8 locale available?)", cs ? cs : "unknown");

	rootfd = open(l->root ? l->root : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return err_errno(e, "cannot open %s", l->root ? l->root : ".");
	pack_plan_prefixed(l->v, l->n, o->prefix, &frames, &nframes);
	hs.fn = sink;
	hs.ctx = sink_ctx;
	hs.sha = own_digest ? NULL : sha256_new();
	hs.first = o->stdin_safe && o->compress == PACK_NONE;
	hs.mtime = o->mtime;
	hs.extra = 0;
	ret = pack_encode_frames(l, o, rootfd, frames, nframes, o->threads, cache,
				 hashing_write, &hs, &res->bytes, &res->tar_bytes, e);
	res->bytes += hs.extra;
	res->tar_bytes += hs.extra;
	if (!ret) {
		if (!own_digest) {
			sha256_final(hs.sha, md);
			memcpy(res->digest, "sha256:", 7);
			hex_encode(res->digest + 7, md, 32);
		}
		res->entries = l->n;
		res->frames = nframes;
	}
	sha256_free(hs.sha);
	free(frames);
	close(rootfd);
	return ret;
}
