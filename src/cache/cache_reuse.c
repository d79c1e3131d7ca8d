/*
 * cache_reuse: `cache save` without packing what was packed before
 * (cache_reuse_internal.h; issue 15).  Before, a save of a dependency
 * directory under a new key re-packed all of it (3.1 s for 875 MB of
 * node_modules, to upload nothing); now its hashes come from the index's
 * snapshot (one fstatat per entry) or the index, the archive key from
 * them, the blob's digest from the index directory's archive digests, and
 * the store is only asked whether it has that blob.
 */
#include "cache_reuse_internal.h"

#include <stdlib.h>
#include <string.h>

void cache_reuse_init(struct cache_reuse *u)
{
	memset(u, 0, sizeof(*u));
	u->snap = idx_snap_new(NULL);
	buf_init(&u->versions, 0);
	pack_lib_versions(&u->versions);
}

void cache_reuse_release(struct cache_reuse *u)
{
	idx_snap_free(u->snap);
	idx_close(u->x);
	buf_release(&u->versions);
	memset(u, 0, sizeof(*u));
}

void cache_reuse_walk(struct cache_reuse *u, struct walk_opts *wo)
{
	wo->replay = idx_snap_replay;
	wo->replay_ctx = u->snap;
}

/* The packer's content() hook: a file the index left unhashed, hashed
 * from the bytes that go into the archive (as `pack` does). */
static void content(void *ctx, size_t i, const void *p, size_t n)
{
	struct cache_reuse *u = ctx;
	struct walk_entry *we = u->l->v[i];

	idx_entry_archived(we, p, n);
}

static int archive_key(const struct cache_reuse *u, const struct pack_list *l,
		       const struct pack_opts *po, unsigned char key[FC_KEY_LEN])
{
	unsigned char settings[FC_KEY_LEN];

	fc_settings_hash(po, u->versions.data, settings);
	return fc_archive_key(l, settings, key);
}

int cache_reuse_lookup(struct cache_reuse *u, struct reg_store *s, struct walk_result *w,
		       const struct pack_list *l, const struct pack_opts *po,
		       struct idx_memo *m, struct err *e)
{
	unsigned char key[FC_KEY_LEN];
	struct err e2 = ERR_INIT;
	uint64_t size = 0;

	u->l = l;
	memset(&u->hooks, 0, sizeof(u->hooks));
	/* an index inside the saved path would change while it is packed */
	if (idx_check_dir(NULL, w->root, &e2) || idx_open(&u->x, NULL, 0, &e2)) {
		u->x = NULL;
		w->replayed = 0;
		return 0;
	}
	if (idx_warning(u->x))
		w->replayed = 0; /* rebuilt: nor its snapshots are trusted */
	if (!(w->replayed && idx_snap_result(u->snap) == IDX_SNAP_HIT)) {
		/* small files are hashed by the packer if it must pack */
		idx_set_defer(u->x, PACK_SMALL_FILE);
		if (idx_update(u->x, w, NULL, e))
			return e->code;
		u->hooks.content = content;
		u->hooks.ctx = u;
	}
	if (archive_key(u, l, po, key) || idx_memo_get(NULL, key, m))
		return 0;
	if (reg_blob_exists(s, m->digest, &size, &e2) != 1 || size != m->bytes)
		return 0;
	return 1;
}

void cache_reuse_done(struct cache_reuse *u, struct walk_result *w, const struct pack_list *l,
		      const struct pack_opts *po, const struct pack_result *pr)
{
	unsigned char key[FC_KEY_LEN];
	struct idx_memo m;

	if (!u->x)
		return;
	idx_store_deferred(u->x, w, NULL);
	idx_snap_store(u->snap, w);
	if (archive_key(u, l, po, key))
		return;
	memset(&m, 0, sizeof(m));
	memcpy(m.digest, pr->digest, sizeof(m.digest));
	m.bytes = pr->bytes;
	m.tar_bytes = pr->tar_bytes;
	m.entries = pr->entries;
	idx_memo_put(NULL, key, &m);
}
