/*
 * fc_assemble: the archive after a small change, from the context's last
 * archive plus the few frames the change made new.  Those (at most
 * ASSEMBLE_MAX frames of ASSEMBLE_BYTES in all; more, and pack_write's
 * pipeline does the work with bounded memory) are encoded first on
 * pack_run.c's encoder pool, then every frame is sent in order: the
 * frames before the first one that differs from the last archive's are
 * the same bytes at the same offsets, so they are copied without being
 * read and the sha256 resumes there from the state the manifest saved;
 * the rest are read, hashed and sent through the writer thread
 * (fc_writer.c).
 */
#include "fc_pack_internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctxpack/index.h"

/* fc_assemble() compresses up front at most ASSEMBLE_MAX frames holding
 * at most ASSEMBLE_BYTES estimated tar bytes in all (their encoded bytes
 * are held until sent: as much as two frames of the largest size), on
 * ASSEMBLE_WORKERS workers at most.  An edit that changes a file's size
 * moves the cut after its frame, and the frames after it until a cut
 * falls where it fell before: often two or three frames (1-2 MiB each
 * since format 4). */
#define ASSEMBLE_MAX 8
#define ASSEMBLE_BYTES (2 * (uint64_t)PACK_FRAME_MAX)
#define ASSEMBLE_WORKERS 2

/*
 * A frame made again after an edit holds mostly files that did not
 * change, whose bytes the frame of the last archive at the same place
 * has: they are taken from it (about a thousand small files a frame not
 * opened and read) when they hash to the entry's content hash, which
 * makes them the file's content whatever happened since (issue 15).
 */
struct enc_src {
	struct pack_frame_reader *rd;
	struct buf z;
	int opened;
};

/* The frames to encode, for the pool's hooks.  src[m] and out[m] are
 * touched only by the worker encoding frame m. */
struct enc_job {
	struct fc_run *r;
	const struct fc_manifest *p; /* the archive the frames replace parts of */
	const size_t *ks;       /* the frames' indices in the plan */
	size_t nk;
	struct pack_frame f[ASSEMBLE_MAX]; /* plan[ks[m]] */
	struct enc_src src[ASSEMBLE_MAX];
	struct buf *out;        /* each frame's bytes */
};

/* The old frame for frame m, when j->p has one where m starts. */
static void enc_src_open(struct enc_job *j, size_t m, struct enc_src *s)
{
	const struct pack_frame *f = &j->f[m];
	const struct pack_list *l = j->r->l;
	struct fc_stamp stamp;
	int damaged = 0;
	size_t o;

	s->opened = 1;
	if (!j->p || j->r->o->compress != PACK_ZSTD || f->first.off || f->first.i >= l->n)
		return;
	o = fc_frame_of(j->p, l->v[f->first.i]->path);
	if (o == SIZE_MAX || !fc_frame_read(j->r->c, j->p->fkeys[o], &s->z, &damaged, &stamp))
		return;
	s->rd = pack_frame_reader_new(s->z.data, s->z.len);
}

/* The old frame for the frame that holds entry i (a file read whole, so
 * never one split across frames), opened on first use. */
static struct enc_src *enc_src_of(struct enc_job *j, size_t i)
{
	size_t m;

	for (m = 0; m < j->nk; m++) {
		const struct pack_frame *f = &j->f[m];
		size_t last = f->end.off ? f->end.i + 1 : f->end.i;

		if (i >= f->first.i && i < last)
			break;
	}
	if (m == j->nk)
		return NULL;
	if (!j->src[m].opened)
		enc_src_open(j, m, &j->src[m]);
	return &j->src[m];
}

/* The pool's data() hook: entry i's bytes from the old frame. */
static int enc_data(void *ctx, size_t i, void *dst, size_t n)
{
	struct enc_job *j = ctx;
	struct enc_src *s = enc_src_of(j, i);
	struct walk_entry *we = j->r->l->v[i];
	unsigned char h[16];

	if (!s || !s->rd || !we->hashed ||
	    !pack_frame_reader_get(s->rd, we->path, we->path_len, dst, n))
		return 0;
	idx_hash_bytes(dst, n, h);
	if (memcmp(h, we->hash, sizeof(h)))
		return 0;
	/* hashed from the bytes archived: frame_safe need not stat it */
	idx_entry_confirmed(we);
	return 1;
}

/* The pool's put() hook: keep the frame's bytes and offer them to the
 * store. */
static void enc_put(void *ctx, const struct pack_list *l, const struct pack_frame *f,
		    const struct pack_opts *o, const void *p, size_t n)
{
	struct enc_job *j = ctx;
	size_t m = (size_t)(f - j->f);

	(void)buf_add(&j->out[m], p, n); /* no max: cannot fail */
	fc_run_store(j->r, j->ks[m], p, n);
	/* this worker is done with frame m: its old frame goes now, so that
	 * at most one is open per worker */
	pack_frame_reader_free(j->src[m].rd);
	j->src[m].rd = NULL;
	buf_release(&j->src[m].z);
}

/* Encode frames ks[0..nk) (nk <= ASSEMBLE_MAX) into out[], on up to
 * `threads` workers of the pool. */
static int encode_frames(struct fc_run *r, const struct fc_manifest *p, const size_t *ks,
			 size_t nk, struct buf *out, unsigned threads, struct err *e)
{
	struct enc_job j;
	struct pack_frame_cache hooks;
	size_t m;
	int ret;

	assert(nk <= ASSEMBLE_MAX);
	memset(&j, 0, sizeof(j));
	j.r = r;
	j.p = p;
	j.ks = ks;
	j.nk = nk;
	j.out = out;
	for (m = 0; m < nk; m++) {
		j.f[m] = r->plan[ks[m]];
		buf_init(&j.src[m].z, 0);
	}
	memset(&hooks, 0, sizeof(hooks));
	hooks.put = enc_put;
	hooks.data = enc_data;
	hooks.ctx = &j;
	ret = pack_encode_frames(r->l, r->o, r->rootfd, j.f, nk,
				 threads < ASSEMBLE_WORKERS ? threads : ASSEMBLE_WORKERS, &hooks, NULL,
				 NULL, NULL, NULL, e);
	for (m = 0; m < nk; m++) {
		pack_frame_reader_free(j.src[m].rd);
		buf_release(&j.src[m].z);
	}
	return ret;
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
 * Which of the run's frames the store lacks: miss[0..*nmiss) (in order),
 * and src[k], frame k's index in p or -1.  A file that is not what was
 * stored is removed (damaged).  -1 when more are missing than fc_assemble
 * compresses up front (ASSEMBLE_MAX, ASSEMBLE_BYTES).
 */
static int find_missing(struct fc_run *r, const struct fc_manifest *p, ssize_t *src,
			size_t *miss, size_t *nmiss)
{
	uint64_t bytes = 0;
	size_t k;

	for (k = 0; k < r->nplan; k++) {
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
		if (*nmiss == ASSEMBLE_MAX || bytes + r->plan[k].est > ASSEMBLE_BYTES)
			return -1;
		bytes += r->plan[k].est;
		miss[(*nmiss)++] = k;
	}
	return 0;
}

/*
 * The archive from the context's last archive p plus a few frames: the
 * frames missing from the store are compressed first (at most
 * ASSEMBLE_MAX and ASSEMBLE_BYTES, else this returns 0 having done
 * nothing), then every frame is sent in order; the frames before the
 * first one that differs from p's are copied without being read, and the
 * sha256 resumes there.
 * A stored frame found damaged on the way is compressed on the spot.
 * Returns 1 (done, res filled), 0 (not applicable, nothing sent) or an
 * error (the sink's, or a frame that could not be compressed).
 */
int fc_assemble(struct fc_run *r, const struct fc_manifest *p, size_t kept, pack_sink_fn sink,
		pack_sink_file_fn sink_file, void *sink_ctx, int out_fd, struct pack_result *res,
		struct err *e)
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

	fc_copier_init(&cp, out_fd, sink_file, sink_ctx);
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
	if (find_missing(r, p, src, miss, &nmiss)) {
		free(src);
		free(miss);
		return 0;
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
