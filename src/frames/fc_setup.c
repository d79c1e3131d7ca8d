/*
 * fc_prepare: the index and the pack cache for one pack, set up the same
 * way by `ctxpack pack` and `ctxpack build`.  A cache that cannot be used
 * costs speed, not correctness, so most problems become warnings and a
 * cold pack; a location the user chose explicitly that is inside the
 * context is an error, as for `ctxpack hash`.
 */
#include "fc_internal.h"

#include <stdlib.h>

static int cold(struct buf *warn, const char *why)
{
	if (warn->len)
		buf_addstr(warn, "; ");
	buf_addf(warn, "%s; packing without the cache", why);
	return 1;
}

int fc_prepare(struct walk_result *w, const char *index_dir, struct fc *c,
	       const struct idx_snap *snap, struct idx **xp, struct idx_stats *ist,
	       struct buf *warn, struct err *e)
{
	int explicit_idx = (index_dir && *index_dir) || env_get()->index;
	struct err e2 = ERR_INIT;
	struct idx *x = NULL;

	*xp = NULL;
	if (idx_check_dir(index_dir, w->root, &e2)) {
		if (explicit_idx) {
			*e = e2;
			return e->code;
		}
		return cold(warn, e2.msg);
	}
	if (c && fc_check_dir(c, w->root, &e2)) {
		if (c->explicit_dir) {
			*e = e2;
			return e->code;
		}
		return cold(warn, e2.msg);
	}
	if (idx_open(&x, index_dir, 0, &e2))
		return cold(warn, e2.msg);
	/* an index rebuilt (or not in use) trusts nothing: nor its snapshots */
	if (idx_warning(x))
		w->replayed = 0;
	/* replayed unchanged from its snapshot: every hash is known */
	if (w->replayed && idx_snap_result(snap) == IDX_SNAP_HIT) {
		if (ist)
			idx_snap_counts(w, ist);
		*xp = x;
		return 0;
	}
	/* on a first run the packer hashes small files as it reads them,
	 * rather than the index reading them all once more */
	idx_set_defer(x, PACK_SMALL_FILE);
	if (idx_update(x, w, ist, e)) {
		idx_close(x);
		return e->code;
	}
	*xp = x;
	return 0;
}
