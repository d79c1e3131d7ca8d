/*
 * cache_reuse (internal to src/cache): what `cache save` needs so that
 * content packed before is not packed again (issue 15).  A path is walked
 * with the index's snapshot as replay; its content hashes come from the
 * snapshot or the index; with them the archive key (frames.h) says which
 * archive the path packs to, and the index directory remembers each such
 * archive's sha256 and sizes (idx_memo).  When the store still has that
 * blob, the save pushes nothing and packs nothing.
 *
 *   struct cache_reuse u;
 *   cache_reuse_init(&u);
 *   wo.replay = idx_snap_replay, wo.replay_ctx = u.snap  (cache_reuse_walk)
 *   walk_run, pack_list_build, pack_opts ...
 *   if (cache_reuse_lookup(&u, store, &w, &l, &po, &m, &e) == 1)
 *           layer from m: done
 *   else    pack_write(&l, &po, &u.hooks, ...), then cache_reuse_done(&u, ...)
 *   cache_reuse_release(&u);
 *
 * Nothing here fails a save: an index that cannot be used only means the
 * path is packed as before.
 */
#ifndef CTXPACK_CACHE_REUSE_INTERNAL_H
#define CTXPACK_CACHE_REUSE_INTERNAL_H

#include "ctxpack/frames.h"
#include "ctxpack/index.h"
#include "ctxpack/pack.h"
#include "ctxpack/registry.h"
#include "ctxpack/walk.h"

struct cache_reuse {
	struct idx_snap *snap;
	struct idx *x;              /* NULL: no index for this path */
	struct buf versions;        /* pack_lib_versions() */
	struct pack_frame_cache hooks; /* content(): hashes what the index left */
	const struct pack_list *l;
};

void cache_reuse_init(struct cache_reuse *u);
void cache_reuse_release(struct cache_reuse *u);
/* Set the walk's replay to the index's snapshot. */
void cache_reuse_walk(struct cache_reuse *u, struct walk_opts *wo);
/*
 * 1 with m filled when the archive of l (packed with po) is known and the
 * store s has its blob; 0 when it must be packed (with u->hooks), or a
 * negative error from reading the files for their hashes (e names one).
 */
int cache_reuse_lookup(struct cache_reuse *u, struct reg_store *s, struct walk_result *w,
		       const struct pack_list *l, const struct pack_opts *po,
		       struct idx_memo *m, struct err *e);
/* After a pack of l with u->hooks: store the hashes, the snapshot and the
 * archive's digest and sizes for next time. */
void cache_reuse_done(struct cache_reuse *u, struct walk_result *w, const struct pack_list *l,
		      const struct pack_opts *po, const struct pack_result *pr);

#endif
