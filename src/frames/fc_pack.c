/*
 * fc_pack: how fc_pack_write makes the archive, as a sequence of paths
 * tried in order until one makes it (frames.h describes them):
 *
 *  0. from_copy:     the copy of the last archive made during the walk
 *                    (fc_spec.c) is this very archive;
 *     from_ahead:    its look-ahead made this archive, or the part of the
 *                    copy this archive starts with is kept;
 *  1. from_manifest: the archive's own manifest, all its frames stored;
 *  2. from_last:     the context's last archive plus a few new frames
 *                    (fc_assemble.c);
 *  3. by_frames:     pack_write with the store's hooks (fc_run.c).
 *
 * Each path returns DONE, 0 to go on to the next, or an error.  The sha256
 * of the archive is computed here and in the paths (util's sha256, whose
 * state can be saved), not by pack_write, so that the hash state at every
 * frame boundary can be kept in the manifest: after an edit in frame j,
 * the frames before j are the same bytes at the same offsets as in the
 * context's last archive, so they are copied without being read and the
 * sha256 resumes at frame j.
 */
#include "fc_pack_internal.h"

#include <string.h>

/* A path made the archive (res filled, the output complete). */
#define DONE 1

/* One fc_pack_write: the run, where the output stands, the keys. */
struct pack_job {
	struct fc_run r;
	struct fc_spec *spec;   /* until a path consumes it */
	pack_sink_fn sink;
	pack_sink_file_fn sink_file;
	void *sink_ctx;
	int out_fd;
	struct pack_result *res;
	unsigned char akey[FC_KEY_LEN]; /* the archive key, when akeyed */
	unsigned char lk[FC_KEY_LEN];   /* the name of the context's last archive */
	int akeyed;
	int hinted;             /* the walk saw changes since the last archive */
	size_t kept;            /* frames already out ... */
	uint64_t skip;          /* ... and their bytes */
	int cut_fd;             /* the output to cut back after cut_end (>= 0), */
	off_t cut_end;          /* once it is complete */
};

/* res for an archive served whole from its manifest m. */
static void result_of(struct pack_result *res, const struct fc_manifest *m, size_t entries)
{
	memset(res, 0, sizeof(*res));
	memcpy(res->digest, m->digest, sizeof(res->digest));
	res->bytes = m->bytes;
	res->entries = entries;
	res->frames = m->nframes;
}

/* 0. The copy made during the walk is this very archive, all of it.
 * (When it is this archive but incomplete, from_ahead keeps its part.) */
static int from_copy(struct pack_job *j, struct err *e)
{
	struct fc_spec *s = j->spec;
	struct fc_stats *st = j->r.st;
	struct fc *c = j->r.c;
	struct err we = ERR_INIT;
	int ret;

	if (!s || !j->akeyed || memcmp(j->akey, s->akey, FC_KEY_LEN))
		return 0;
	fc_spec_join(s, SIZE_MAX, SPEC_NO_AHEAD);
	st->seen_changed = s->nhints;
	if (s->done != s->m.nframes)
		return 0;
	/* a change seen was no change: the archive is this tree as of this
	 * pack, which the next one need not look ahead from */
	s->m.made_ns = c->t0_ns;
	if (s->nhints && fc_manifest_write(c, &s->m, &we))
		fc_warn(c, "cannot store the archive manifest: %s", we.msg);
	result_of(j->res, &s->m, j->r.l->n);
	st->path = FC_PATH_ARCHIVE;
	st->archive_reused = 1;
	st->frames = st->frames_reused = s->m.nframes;
	st->bytes_reused = s->m.bytes;
	st->bytes_early = s->m.bytes;
	j->spec = NULL;
	ret = fc_spec_finish(s, s->done, NULL, NULL, e);
	return ret ? ret : DONE;
}

/* 0. The look-ahead made this archive (the keys say so); else the frames
 * of the copy that this archive starts with are kept (the copy goes on up
 * to there) and the rest is cut away.  Consumes the spec. */
static int from_ahead(struct pack_job *j, struct err *e)
{
	struct fc_spec *s = j->spec;
	struct fc_run *r = &j->r;
	size_t a;
	int ret;

	if (!s)
		return 0;
	j->spec = NULL;
	a = fc_ahead_target(r, s);
	if (a != SIZE_MAX)
		fc_spec_join(s, SIZE_MAX, SPEC_WALKED);
	else
		fc_spec_join(s, fc_common_prefix(r, &s->m, s->m.nframes), SPEC_NO_AHEAD);
	j->hinted = s->nhints != 0;
	r->st->seen_changed = s->nhints;
	if (a != SIZE_MAX && s->a.state == 1 && s->a.j == a &&
	    !memcmp(s->a.key, r->keys[a], FC_KEY_LEN)) {
		ret = fc_ahead_take(r, s, j->res, &j->cut_fd, &j->cut_end, e);
		if (ret)
			return ret;
		fc_keep_archive(r, j->akey, j->lk, j->res);
		return DONE;
	}
	j->kept = fc_common_prefix(r, &s->m, s->done);
	j->cut_fd = s->fd;
	ret = fc_spec_finish(s, j->kept, &j->skip, &j->cut_end, e);
	r->st->bytes_early = j->skip;
	return ret;
}

/* 1. The whole archive from its manifest, when its frames are all there;
 * what was sent before a frame turned out missing stays out. */
static int from_manifest(struct pack_job *j, struct err *e)
{
	struct fc_run *r = &j->r;
	struct fc *c = r->c;
	struct fc_stats *st = r->st;
	struct fc_manifest m;
	struct err we = ERR_INIT;
	size_t sent = j->kept, k;
	int refreshed = 0, ret;

	if (!j->akeyed || !fc_manifest_read(c, j->akey, &m))
		return 0;
	if (m.entries != r->l->n || fc_common_prefix(r, &m, m.nframes) != r->nplan ||
	    m.nframes != r->nplan) {
		fc_manifest_release(&m);
		return 0;
	}
	ret = fc_serve(c, &m, j->sink, j->sink_file, j->sink_ctx, j->out_fd, &sent, &refreshed,
		       st, e);
	if (ret == 1) {
		/* the checked files' new stamps, so they are not read again
		 * next time */
		if (j->hinted)
			m.made_ns = c->t0_ns; /* as in from_copy */
		if ((refreshed || j->hinted) && fc_manifest_write(c, &m, &we))
			fc_warn(c, "cannot store the archive manifest: %s", we.msg);
		fc_last_write(c, j->lk, j->akey);
		result_of(j->res, &m, r->l->n);
		st->path = FC_PATH_ARCHIVE;
		st->archive_reused = 1;
		st->frames_reused = m.nframes;
		st->bytes_reused = m.bytes;
		ret = DONE;
	}
	/* m's frames are this archive's: its lengths are theirs */
	for (j->skip = 0, k = 0; k < sent; k++)
		j->skip += m.lens[k];
	j->kept = sent;
	fc_manifest_release(&m);
	return ret;
}

/* 2. A few frames changed since the context's last archive. */
static int from_last(struct pack_job *j, struct err *e)
{
	unsigned char last[FC_KEY_LEN];
	struct fc_manifest m;
	int ret;

	if (!j->akeyed || fc_last_read(j->r.c, j->lk, last) || !fc_manifest_read(j->r.c, last, &m))
		return 0;
	ret = fc_assemble(&j->r, &m, j->kept, j->sink, j->sink_file, j->sink_ctx, j->out_fd,
			  j->res, e);
	fc_manifest_release(&m);
	if (ret == 1) {
		j->r.st->path = FC_PATH_ASSEMBLE;
		fc_keep_archive(&j->r, j->akey, j->lk, j->res);
		ret = DONE;
	}
	return ret;
}

/* pack_write's sink: the sha256, with its state saved at every frame's
 * start, then the caller's sink minus the bytes fc_serve() already sent. */
struct hash_sink {
	pack_sink_fn fn;
	void *ctx;
	uint64_t skip;
	struct sha256 sha;
	struct fc_run *r;
	size_t k;          /* frames seen */
};

static int hash_write(void *ctx, const void *p, size_t n, struct err *e)
{
	struct hash_sink *s = ctx;

	if (s->k < s->r->nplan)
		sha256_save(&s->sha, s->r->mids[s->k]);
	s->k++;
	sha256_update(&s->sha, p, n);
	s->r->st->bytes_hashed += n;
	if (s->skip >= n) {
		s->skip -= n;
		return 0;
	}
	p = (const char *)p + s->skip;
	n -= (size_t)s->skip;
	s->skip = 0;
	return s->fn(s->ctx, p, n, e);
}

/* 3. Frame by frame through pack_write, skipping what is already out. */
static int by_frames(struct pack_job *j, struct err *e)
{
	struct fc_run *r = &j->r;
	struct pack_frame_cache hooks;
	struct hash_sink hs;
	unsigned char md[32];
	int ret;

	fc_run_hooks(r, &hooks);
	memset(&hs, 0, sizeof(hs));
	hs.fn = j->sink;
	hs.ctx = j->sink_ctx;
	hs.skip = j->skip;
	hs.r = r;
	sha256_init(&hs.sha, 0);
	r->st->path = FC_PATH_FRAMES;
	ret = pack_write(r->l, r->o, &hooks, hash_write, &hs, j->res, e);
	if (ret)
		return ret;
	sha256_final(&hs.sha, md);
	memcpy(j->res->digest, "sha256:", 7);
	hex_encode(j->res->digest + 7, md, 32);
	/* a sink call per frame, so mids[k] is frame k's state */
	r->have_mids = hs.k == r->nplan;
	/* files the index left to the packer are hashed now */
	if (!j->akeyed)
		j->akeyed = !fc_archive_key(r->l, r->settings, j->akey);
	if (j->akeyed)
		fc_keep_archive(r, j->akey, j->lk, j->res);
	return DONE;
}

int fc_pack_write(struct fc *c, struct fc_spec *spec, struct pack_list *l,
		  const struct pack_opts *o, pack_sink_fn sink, pack_sink_file_fn sink_file,
		  void *sink_ctx, int out_fd, struct pack_result *res, struct fc_stats *st,
		  struct err *e)
{
	struct fc_stats local;
	struct pack_job j;
	int ret;

	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	if (!c) {
		fc_spec_cancel(spec);
		return pack_write(l, o, NULL, sink, sink_ctx, res, e);
	}
	memset(&j, 0, sizeof(j));
	j.spec = spec;
	j.sink = sink;
	j.sink_file = sink_file;
	j.sink_ctx = sink_ctx;
	j.out_fd = out_fd;
	j.res = res;
	j.cut_fd = -1;
	j.cut_end = -1;
	ret = fc_run_open(&j.r, c, l, o, st, e);
	if (ret) {
		fc_spec_cancel(spec);
		return ret;
	}
	fc_last_key(l->root ? l->root : ".", j.r.settings, j.lk);
	j.akeyed = !fc_archive_key(l, j.r.settings, j.akey);

	ret = from_copy(&j, e);
	if (!ret) {
		fc_run_plan(&j.r);
		ret = from_ahead(&j, e);
	}
	if (!ret)
		ret = from_manifest(&j, e);
	if (!ret)
		ret = from_last(&j, e);
	if (!ret)
		ret = by_frames(&j, e);
	fc_run_release(&j.r);
	if (ret == DONE)
		ret = fc_cut_after(j.cut_fd, j.cut_end, e);
	return ret;
}
