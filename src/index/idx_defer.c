/*
 * Deferred stores, for a caller that reads the files anyway (the
 * packer): an update with many small files to hash leaves them unread
 * and remembers them; the caller hashes them from the bytes it packs and
 * idx_store_deferred writes their entries afterwards.
 */
#include "ctxpack/index.h"

#include "idx_internal.h"

#include <stdlib.h>

/*
 * Leave the small files of todo for the caller (idx_set_defer) when there
 * are many: keep their keys, take them out of todo.  Returns the new
 * count.  A few are hashed here as usual, so that an edit or two still
 * gives every frame its key before the pack starts.
 */
size_t idx_defer(struct upd *u, size_t *todo, size_t ntodo)
{
	struct idx *x = u->x;
	size_t i, n = 0, keep = 0;

	x->ndf = 0;
	for (i = 0; i < ntodo; i++)
		n += u->w->v[u->f[todo[i]].wi].size <= x->defer_max;
	if (n < IDX_DEFER_MIN)
		return ntodo;
	x->df = xreallocarray(x->df, n, sizeof(*x->df));
	x->dstarted = u->started;
	for (i = 0; i < ntodo; i++) {
		const struct fent *f = &u->f[todo[i]];
		struct fent *d;

		if (u->w->v[f->wi].size > x->defer_max) {
			todo[keep++] = todo[i];
			continue;
		}
		d = &x->df[x->ndf++];
		d->wi = f->wi;
		d->koff = d->klen = 0; /* encoded when stored */
	}
	u->st.deferred = x->ndf;
	return keep;
}

void idx_set_defer(struct idx *x, uint64_t max_size)
{
	x->defer_max = max_size;
}

void idx_store_deferred(struct idx *x, struct walk_result *w, struct idx_stats *st)
{
	size_t *done, n = 0, i;
	unsigned rebuilds = x->rebuilds;
	uint64_t written;

	if (!x->ndf)
		return;
	done = xreallocarray(NULL, x->ndf, sizeof(*done));
	for (i = 0; i < x->ndf; i++) {
		const struct walk_entry *we = &w->v[x->df[i].wi];

		if (!we->hashed)
			continue;
		done[n++] = i;
		if (st) {
			st->hashed++;
			st->bytes_hashed += we->size;
		}
	}
	written = idx_store_files(x, w, x->df, done, n, x->dstarted);
	if (x->rebuilds != rebuilds && x->env && !x->nowrite)
		written = idx_store_all(x, w, x->dstarted);
	if (st)
		st->written += written;
	free(done);
	x->ndf = 0;
}
