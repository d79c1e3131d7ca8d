/* One pack of a context, step by step in one place (session.h). */
#include "ctxpack/session.h"

#include <stdlib.h>
#include <string.h>

enum step { OPENED, WALKED, LISTED, WRITTEN, COMMITTED };

struct pack_session {
	struct pack_session_opts o;
	enum step step;
	struct buf versions;
	struct fc *fc;             /* NULL: no frame store */
	struct fc_spec *spec;      /* the speculative copy, until written */
	struct idx_snap *snap;     /* the walk's snapshot (with fc) */
	struct idx *x;             /* the index (after the walk, with fc) */
	struct idx_stats ist;
	struct fc_stats fst;
	struct buf warn;           /* fc_prepare's: the cache was left out */
	struct walk_result wr;
	struct pack_list l;
	int have_list;
	struct pack_result res;    /* the archive written (no_frames' memo) */
};

/* walk_opts.replay: the caller's hook, then the snapshot's replay */
static int before_tree(void *ctx, const struct walk_opts *o, struct walk_result *r, int rootfd)
{
	struct pack_session *ps = ctx;

	if (ps->o.before_tree)
		ps->o.before_tree(ps->o.before_tree_ctx, o, r, rootfd);
	return ps->snap ? idx_snap_replay(ps->snap, o, r, rootfd) : 0;
}

int pack_session_open(struct pack_session **out, const struct pack_session_opts *o,
		      struct err *e)
{
	struct pack_session *ps = xcalloc(1, sizeof(*ps));

	ps->o = *o;
	buf_init(&ps->versions, 0);
	buf_init(&ps->warn, 0);
	*out = ps;
	/* the caller's hook, then (with a cache) the snapshot's replay */
	o->wo->replay = before_tree;
	o->wo->replay_ctx = ps;
	if (o->no_cache)
		return 0;
	if (o->walk_only) {
		ps->snap = idx_snap_new(o->index_dir);
		idx_snap_stat_only(ps->snap);
		return 0;
	}
	pack_lib_versions(&ps->versions);
	ps->o.fo.versions = ps->versions.data;
	ps->snap = idx_snap_new(o->index_dir);
	if (o->no_frames)
		return 0;
	/* before the walk: its time is the racy rule's reference */
	if (fc_open(&ps->fc, &ps->o.fo, e))
		return -1;
	/* the last archive of this context may be copied to the output
	 * while the context is walked */
	if (o->out_fd >= 0) {
		ps->spec = fc_spec_start(ps->fc, o->wo->dir, o->po, o->out_fd);
		if (ps->spec) {
			o->wo->seen = fc_spec_seen;
			o->wo->seen_ctx = ps->spec;
		}
	}
	return 0;
}

int pack_session_walk(struct pack_session *ps, struct err *e)
{
	int rc;

	if (ps->step >= WALKED)
		return 0;
	if (walk_run(ps->o.wo, &ps->wr, e))
		return -1;
	ps->step = WALKED;
	if ((!ps->fc && !ps->snap) || ps->o.walk_only)
		return 0;
	/* no_frames (`cache save`): an index inside what is saved, even one
	 * named explicitly, only means a pack without it */
	if (ps->o.no_frames) {
		struct err e2 = ERR_INIT;

		if (idx_check_dir(ps->o.index_dir, ps->wr.root, &e2)) {
			ps->wr.replayed = 0;
			return 0;
		}
	}
	rc = fc_prepare(&ps->wr, ps->o.index_dir, ps->fc, ps->snap, &ps->x, &ps->ist,
			&ps->warn, e);
	if (rc < 0)
		return -1;
	if (rc > 0) {
		/* the store or the index cannot be used here: a pack without */
		fc_spec_cancel(ps->spec);
		ps->spec = NULL;
		fc_close(ps->fc);
		ps->fc = NULL;
	}
	return 0;
}

struct walk_result *pack_session_walk_result(struct pack_session *ps)
{
	return ps->step >= WALKED ? &ps->wr : NULL;
}

int pack_session_list(struct pack_session *ps, struct err *e)
{
	if (ps->step >= LISTED)
		return 0;
	if (pack_session_walk(ps, e) || pack_list_build(&ps->l, &ps->wr, e))
		return -1;
	ps->have_list = 1;
	ps->step = LISTED;
	return 0;
}

const struct pack_list *pack_session_pack_list(const struct pack_session *ps)
{
	return ps->have_list ? &ps->l : NULL;
}

/* The archive key: what the archive holds and how it is packed. */
static int archive_key(const struct pack_session *ps, unsigned char key[FC_KEY_LEN])
{
	unsigned char settings[FC_KEY_LEN];

	fc_settings_hash(ps->o.po, ps->versions.data, settings);
	return fc_archive_key(&ps->l, settings, key);
}

int pack_session_known(struct pack_session *ps, struct idx_memo *m)
{
	unsigned char key[FC_KEY_LEN];
	struct err e = ERR_INIT;

	if (!ps->o.no_frames || pack_session_list(ps, &e) || !ps->x || archive_key(ps, key))
		return 0;
	return idx_memo_get(ps->o.index_dir, key, m) == 0;
}

/* The packer's content() hook without a frame store: a file the index
 * left unhashed is hashed from the bytes that go into the archive. */
static void content(void *ctx, size_t i, const void *p, size_t n)
{
	struct pack_session *ps = ctx;

	idx_entry_archived(ps->l.v[i], p, n);
}

int pack_session_write(struct pack_session *ps, pack_sink_fn sink, void *sink_ctx,
		       struct pack_result *res, struct err *e)
{
	int rc;

	if (ps->step >= WRITTEN)
		return err_set(e, ERR_USAGE, "the session's archive is written already");
	if (pack_session_list(ps, e))
		return -1;
	if (ps->o.no_frames && ps->x) {
		struct pack_frame_cache hooks = {.content = content, .ctx = ps};

		rc = pack_write(&ps->l, ps->o.po, &hooks, sink, sink_ctx, res, e);
	} else {
		rc = fc_pack_write(ps->fc, ps->spec, &ps->l, ps->o.po, sink, ps->o.sink_file,
				   sink_ctx, ps->o.out_fd, res, &ps->fst, e);
		ps->spec = NULL; /* consumed */
	}
	if (rc)
		return rc;
	ps->res = *res;
	ps->step = WRITTEN;
	return 0;
}

void pack_session_commit(struct pack_session *ps)
{
	if (ps->step != WRITTEN)
		return;
	/* the output is complete: the hashes the packer took on the way go
	 * to the index, then the snapshot, then the store's size bound */
	if (ps->x)
		idx_store_deferred(ps->x, &ps->wr, &ps->ist);
	if (ps->fc || ps->x)
		idx_snap_store(ps->snap, &ps->wr);
	if (ps->o.no_frames && ps->x) {
		unsigned char key[FC_KEY_LEN];
		struct idx_memo m;

		memset(&m, 0, sizeof(m));
		memcpy(m.digest, ps->res.digest, sizeof(m.digest));
		m.bytes = ps->res.bytes;
		m.tar_bytes = ps->res.tar_bytes;
		m.entries = ps->res.entries;
		if (!archive_key(ps, key))
			idx_memo_put(ps->o.index_dir, key, &m);
	}
	fc_maintain(ps->fc, &ps->fst);
	ps->step = COMMITTED;
}

void pack_session_keep_walk(struct pack_session *ps)
{
	if (ps->o.walk_only && ps->step >= WALKED)
		idx_snap_store(ps->snap, &ps->wr);
}

const struct fc *pack_session_fc(const struct pack_session *ps)
{
	return ps->fc;
}

const struct fc_stats *pack_session_fc_stats(const struct pack_session *ps)
{
	return &ps->fst;
}

const struct idx_stats *pack_session_idx_stats(const struct pack_session *ps)
{
	return ps->x ? &ps->ist : NULL;
}

const char *pack_session_snapshot(const struct pack_session *ps)
{
	return idx_snap_name(ps->wr.replayed ? idx_snap_result(ps->snap) : 0);
}

void pack_session_warnings(const struct pack_session *ps, void (*fn)(const char *msg))
{
	if (ps->warn.len)
		fn(ps->warn.data);
	if (ps->x && idx_warning(ps->x))
		fn(idx_warning(ps->x));
	if (ps->fc && fc_warning(ps->fc))
		fn(fc_warning(ps->fc));
}

void pack_session_cancel(struct pack_session *ps)
{
	if (!ps)
		return;
	fc_spec_cancel(ps->spec);
	ps->spec = NULL;
}

void pack_session_free(struct pack_session *ps)
{
	if (!ps)
		return;
	fc_spec_cancel(ps->spec);
	fc_close(ps->fc);
	idx_close(ps->x);
	idx_snap_free(ps->snap);
	if (ps->have_list)
		pack_list_release(&ps->l);
	walk_release(&ps->wr);
	buf_release(&ps->warn);
	buf_release(&ps->versions);
	free(ps);
}
