/*
 * fc_assemble: the archive after a small change, from the context's last
 * archive plus the few frames the change made new.  Those (at most
 * ASSEMBLE_MAX; more, and pack_write's pipeline does the work with bounded
 * memory) are encoded first, on up to two threads, then every frame
 * is sent in order: the frames before the first one that differs from the
 * last archive's are the same bytes at the same offsets, so they are
 * copied without being read and the sha256 resumes there from the state
 * the manifest saved; the rest are read, hashed and sent through the
 * writer thread (fc_writer.c).
 */
#include "fc_pack_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctxpack/index.h"

/* At most this many frames are compressed up front by fc_assemble();
 * more, and pack_write's pipeline does the work with bounded memory. */
#define ASSEMBLE_MAX 2

struct enc_job {
	struct run *r;
	const struct fc_manifest *p; /* the archive the frames replace parts of */
	size_t *ks;             /* frames to encode */
	size_t nk;
	size_t next;            /* guarded by mu */
	struct buf *out;        /* per frame in ks */
	pthread_mutex_t mu;
	struct err err;         /* the first failure, guarded by mu */
};

/*
 * A frame made again after an edit holds mostly files that did not
 * change, whose bytes the frame of the last archive at the same place
 * has: they are taken from it (about a thousand small files a frame not
 * opened and read) when they hash to the entry's content hash, which
 * makes them the file's content whatever happened since (issue 15).
 */
struct enc_src {
	const struct pack_list *l;
	struct pack_frame_reader *rd;
	struct buf z;
};

static int enc_data(void *ctx, size_t i, void *dst, size_t n)
{
	struct enc_src *s = ctx;
	struct walk_entry *we = s->l->v[i];
	unsigned char h[16];

	if (!s->rd || !we->hashed ||
	    !pack_frame_reader_get(s->rd, we->path, we->path_len, dst, n))
		return 0;
	idx_hash_bytes(dst, n, h);
	if (memcmp(h, we->hash, sizeof(h)))
		return 0;
	/* hashed from the bytes archived: frame_safe need not stat it */
	idx_entry_confirmed(we);
	return 1;
}

/* The old frame for frame k, when j->p has one where k starts. */
static void enc_src_open(struct enc_job *j, size_t k, struct enc_src *s)
{
	const struct pack_frame *f = &j->r->plan[k];
	struct fc_stamp stamp;
	int damaged = 0;
	size_t o;

	s->l = j->r->l;
	s->rd = NULL;
	buf_init(&s->z, 0);
	if (!j->p || j->r->o->compress != PACK_ZSTD || f->first.off || f->first.i >= s->l->n)
		return;
	o = fc_frame_of(j->p, s->l->v[f->first.i]->path);
	if (o == SIZE_MAX || !fc_frame_read(j->r->c, j->p->fkeys[o], &s->z, &damaged, &stamp))
		return;
	s->rd = pack_frame_reader_new(s->z.data, s->z.len);
}

static void enc_src_close(struct enc_src *s)
{
	pack_frame_reader_free(s->rd);
	buf_release(&s->z);
}

static void *enc_main(void *arg)
{
	struct enc_job *j = arg;
	struct err e = ERR_INIT;
	struct pack_worker *w = pack_worker_new(j->r->o, 1, &e);
	struct pack_frame_cache hooks;

	memset(&hooks, 0, sizeof(hooks));
	hooks.data = enc_data;
	for (;;) {
		struct enc_src src;
		int bad;
		size_t i;

		pthread_mutex_lock(&j->mu);
		i = j->next++;
		if (err_isset(&j->err))
			i = j->nk;
		if (!w && !err_isset(&j->err))
			j->err = e;
		pthread_mutex_unlock(&j->mu);
		if (!w || i >= j->nk)
			break;
		enc_src_open(j, j->ks[i], &src);
		hooks.ctx = &src;
		pack_worker_set_cache(w, src.rd ? &hooks : NULL);
		bad = pack_frame_encode(w, j->r->l, j->r->rootfd, &j->r->plan[j->ks[i]], &j->out[i],
					NULL, &e);
		pack_worker_set_cache(w, NULL);
		enc_src_close(&src);
		if (bad) {
			pthread_mutex_lock(&j->mu);
			if (!err_isset(&j->err))
				j->err = e;
			pthread_mutex_unlock(&j->mu);
			break;
		}
		fc_run_store(j->r, j->ks[i], j->out[i].data, j->out[i].len);
	}
	pack_worker_free(w);
	return NULL;
}

/* Encode frames ks[0..nk) into out[], on up to `threads` threads. */
static int encode_frames(struct run *r, const struct fc_manifest *p, size_t *ks, size_t nk,
			 struct buf *out, unsigned threads, struct err *e)
{
	struct enc_job j;
	pthread_t tid[ASSEMBLE_MAX];
	unsigned i, started = 0;

	memset(&j, 0, sizeof(j));
	j.r = r;
	j.p = p;
	j.ks = ks;
	j.nk = nk;
	j.out = out;
	pthread_mutex_init(&j.mu, NULL);
	if (threads > nk)
		threads = (unsigned)nk;
	if (threads > ASSEMBLE_MAX)
		threads = ASSEMBLE_MAX;
	for (i = 1; i < threads; i++)
		if (!pthread_create(&tid[started], NULL, enc_main, &j))
			started++;
	enc_main(&j);
	for (i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
	pthread_mutex_destroy(&j.mu);
	if (err_isset(&j.err)) {
		*e = j.err;
		return e->code;
	}
	return 0;
}

/* Keep the last 64 bytes of the stream in t, after n more bytes p. */
static void keep_last64(unsigned char t[64], const void *p, size_t n)
{
	if (n >= 64) {
		memcpy(t, (const char *)p + n - 64, 64);
	} else if (n) {
		memmove(t, t + n, 64 - n);
		memcpy(t + 64 - n, p, n);
	}
}

/* Index of key among m's frames, or -1 (m's frames are few hundred: a
 * sorted copy would not pay). */
static ssize_t manifest_find(const struct fc_manifest *m, const unsigned char *key,
			     size_t hint)
{
	size_t i;

	if (hint < m->nframes && !memcmp(m->fkeys[hint], key, FC_KEY_LEN))
		return (ssize_t)hint;
	for (i = 0; i < m->nframes; i++)
		if (!memcmp(m->fkeys[i], key, FC_KEY_LEN))
			return (ssize_t)i;
	return -1;
}

/*
 * The archive from the context's last archive p plus a few frames: the
 * frames missing from the store are compressed first (at most
 * ASSEMBLE_MAX, else this returns 0 having done nothing), then every
 * frame is sent in order; the frames before the first one that differs
 * from p's are copied without being read, and the sha256 resumes there.
 * A stored frame found damaged on the way is compressed on the spot.
 * Returns 1 (done, res filled), 0 (not applicable, nothing sent) or an
 * error (the sink's, or a frame that could not be compressed).
 */
int fc_assemble(struct run *r, const struct fc_manifest *p, size_t kept, pack_sink_fn sink,
		void *sink_ctx, int out_fd, struct pack_result *res, struct err *e)
{
	size_t n = r->nplan, k, j, nmiss = 0, *miss = NULL, mi = 0;
	ssize_t *src = NULL;          /* frame k's index in p, or -1 */
	struct buf *enc = NULL, b;
	struct fc_writer wr;
	struct sha256 sha;
	struct pack_worker *w = NULL;
	uint64_t off = 0, oj = 0;
	unsigned char md[32], last64[64];
	struct fc_copier cp;
	int ret = 0, ws = 0;

	fc_copier_init(&cp, out_fd);
	for (k = 0; k < n; k++)
		if (!r->keyed[k])
			return 0;
	/* the first frame that is not p's at the same place */
	for (j = 0; j < n && j < p->nframes && !memcmp(r->keys[j], p->fkeys[j], FC_KEY_LEN); j++)
		;
	if (j == n && p->nframes != n)
		return 0; /* cannot happen: the list ends where p's does */
	src = xreallocarray(NULL, n, sizeof(*src));
	miss = xreallocarray(NULL, ASSEMBLE_MAX, sizeof(*miss));
	for (k = 0; k < n; k++) {
		char *path;
		struct stat sb;
		int have;

		src[k] = manifest_find(p, r->keys[k], k);
		path = fc_frame_path(r->c, r->keys[k]);
		have = !stat(path, &sb);
		if (have && (!S_ISREG(sb.st_mode) ||
			     (src[k] >= 0 && (uint64_t)sb.st_size != FC_FRAME_HDR + p->lens[src[k]]))) {
			/* not what was stored: damaged */
			if (S_ISREG(sb.st_mode))
				unlink(path);
			r->st->frames_damaged++;
			have = 0;
		}
		free(path);
		if (have)
			continue;
		if (nmiss == ASSEMBLE_MAX) {
			free(src);
			free(miss);
			return 0;
		}
		miss[nmiss++] = k;
	}
	enc = xcalloc(nmiss ? nmiss : 1, sizeof(*enc));
	for (k = 0; k < nmiss; k++)
		buf_init(&enc[k], 0);
	if (nmiss) {
		ret = encode_frames(r, p, miss, nmiss, enc, r->o->threads ? r->o->threads : 2, e);
		if (ret)
			goto out;
	}
	r->st->frames_compressed += nmiss;

	/* the offset of frame j, the same as in p */
	for (k = 0; k < j; k++)
		oj += p->lens[k];
	buf_init(&b, 0);
	fc_writer_init(&wr, sink, sink_ctx);
	memset(res, 0, sizeof(*res));
	for (k = 0; k < n; k++) {
		uint64_t copied = 0;
		int damaged = 0, hashed = k >= j, out = k >= kept;
		/* bytes in memory: to hash them, or to keep the 64 before
		 * frame j, where the hash resumes */
		int need = hashed || off + p->lens[k] + 64 > oj;
		/* hashed frames go out through the writer's slots */
		struct buf *bp = hashed && out ? fc_writer_slot(&wr, ws) : &b;
		const struct buf *data = bp;

		if (mi < nmiss && miss[mi] == k) {
			data = &enc[mi++];
		} else if (!out && !need) {
			/* already out (fc_spec), p's frame k */
			r->stamps[k] = p->stamps[k];
			r->lens[k] = p->lens[k];
			r->present[k] = 1;
			r->st->frames_reused++;
			r->st->bytes_reused += p->lens[k];
			memcpy(r->mids[k], p->mids[k], FC_SHA_MID);
			off += p->lens[k];
			continue;
		} else {
			struct fc_stamp stamp = {0, 0};
			int got;

			if (src[k] >= 0) {
				stamp = p->stamps[src[k]];
				got = fc_frame_bytes(r->c, r->keys[k], p->lens[src[k]], &stamp,
						  need || !out, out_fd, &cp, bp, &copied,
						  &damaged);
			} else {
				/* not in p: read and check it */
				buf_reset(bp);
				got = fc_frame_read(r->c, r->keys[k], bp, &damaged, &stamp);
			}
			if (got) {
				r->stamps[k] = stamp;
				r->lens[k] = copied + bp->len;
				r->present[k] = 1;
				r->st->frames_reused++;
				r->st->bytes_reused += copied + bp->len;
			} else {
				/* damaged or gone since the check above */
				r->st->frames_damaged += damaged;
				r->st->frames_compressed++;
				if (!w && !(w = pack_worker_new(r->o, 1, e))) {
					ret = e->code;
					break;
				}
				buf_reset(bp);
				ret = pack_frame_encode(w, r->l, r->rootfd, &r->plan[k], bp, NULL, e);
				if (ret)
					break;
				fc_run_store(r, k, bp->data, bp->len);
				copied = 0;
			}
		}
		if (k == j) {
			/* resume p's hash at frame j: its state after the whole
			 * blocks before oj, then the oj % 64 bytes after them */
			sha256_init(&sha, 0);
			if (j && sha256_resume(&sha, p->mids[j], oj)) {
				ret = err_set(e, ERR_CORRUPT, "pack cache: a bad hash state");
				break;
			}
			if (j)
				sha256_update(&sha, last64 + 64 - oj % 64, (size_t)(oj % 64));
		}
		if (hashed) {
			sha256_save(&sha, r->mids[k]);
			sha256_update(&sha, data->data, data->len);
			r->st->bytes_hashed += data->len;
		} else {
			memcpy(r->mids[k], p->mids[k], FC_SHA_MID);
			keep_last64(last64, data->data, data->len);
		}
		if (out && data->len) {
			if (hashed) {
				ret = fc_writer_push(&wr, ws, data->data, data->len, e);
				ws ^= 1;
			} else {
				ret = sink(sink_ctx, data->data, data->len, e);
			}
			if (ret)
				break;
		}
		off += copied + data->len;
	}
	if (fc_writer_finish(&wr, e) && !ret)
		ret = e->code;
	buf_release(&b);
	if (ret)
		goto out;
	if (j == n) {
		memcpy(res->digest, p->digest, sizeof(res->digest));
	} else {
		sha256_final(&sha, md);
		memcpy(res->digest, "sha256:", 7);
		hex_encode(res->digest + 7, md, 32);
	}
	res->bytes = off;
	res->entries = r->l->n;
	res->frames = n;
	r->have_mids = 1;
	ret = 1;
out:
	fc_copier_release(&cp);
	pack_worker_free(w);
	for (k = 0; k < nmiss; k++)
		buf_release(&enc[k]);
	free(enc);
	free(miss);
	free(src);
	return ret;
}
