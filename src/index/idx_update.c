/*
 * The update pass (idx_update): list the walk's regular files and their
 * keys in key order, hash symlinks from their targets, look the files up
 * (idx_lookup.c), leave some for the packer (idx_defer.c), hash the rest
 * on the reader pool (idx_pool.c), which stores them in batches
 * (idx_write.c), and store again what was reused when the index was
 * rebuilt on the way.
 */
#include "ctxpack/index.h"

#include "idx_internal.h"

#include <stdlib.h>
#include <string.h>

/* Sorting the files by key, for when the walk order is not the key order
 * (over-long keys, a hand-made walk): qsort has no context argument, so
 * each element carries its key pointer. */
struct fsort {
	struct fent f;
	const unsigned char *key;
};

static int fsort_cmp(const void *a, const void *b)
{
	const struct fsort *x = a, *y = b;

	return idx_key_cmp(x->key, x->f.klen, y->key, y->f.klen);
}

static void sort_files(struct upd *u)
{
	struct fsort *s = xreallocarray(NULL, u->nf, sizeof(*s));
	size_t i;

	for (i = 0; i < u->nf; i++) {
		s[i].f = u->f[i];
		s[i].key = idx_upd_key(u, i);
	}
	qsort(s, u->nf, sizeof(*s), fsort_cmp);
	for (i = 0; i < u->nf; i++)
		u->f[i] = s[i].f;
	free(s);
}

int idx_update(struct idx *x, struct walk_result *w, struct idx_stats *st,
	       struct err *e)
{
	struct upd u;
	unsigned char pre[IDX_ROOT_MAX + 1 + 33];
	size_t i, ntodo = 0, rootlen, plen, keybytes = 0, nkept = 0;
	size_t *todo = NULL;
	int ret = 0, sorted = 1;
	unsigned rebuilds;

	memset(&u, 0, sizeof(u));
	u.x = x;
	u.w = w;
	u.started = time_real_ns();
	buf_init(&u.keys, 0);
	buf_init(&u.stale, 0);
	if (!w->root)
		return err_set(e, ERR_USAGE, "the walk has no root");
	if (idx_dir_inside(x->dir, x->real, w->root, e))
		return e->code;
	rootlen = strlen(w->root);
	plen = idx_key_prefix(pre, w->root, rootlen);

	for (i = 0; i < w->n; i++) {
		struct walk_entry *we = &w->v[i];

		if (we->excluded)
			continue;
		u.st.entries++;
		if (we->type == WALK_LNK || we->type == WALK_HARDLINK) {
			/* a hard link's content is its first path's */
			idx_hash_bytes(we->link, we->link_len, we->hash);
			we->hashed = WALK_HASH_KNOWN;
			if (we->type == WALK_LNK)
				u.st.symlinks++;
		} else if (we->type == WALK_REG) {
			/* a replayed walk (idx_snap.c) brings the hashes of
			 * what did not change: only the rest is read */
			if (w->replayed && we->hashed) {
				nkept++;
				continue;
			}
			we->hashed = WALK_HASH_NONE;
			u.nf++;
			keybytes += plen + we->path_len;
		}
	}
	u.st.files = u.nf + nkept;
	u.st.reused = nkept;
	/* size the key arena once: no regrowing copies */
	buf_grow(&u.keys, keybytes + IDX_KEY_MAX);
	u.f = xmallocarray_big(u.nf ? u.nf : 1, sizeof(*u.f));
	todo = xmallocarray_big(u.nf ? u.nf : 1, sizeof(*todo));
	u.nf = 0;
	for (i = 0; i < w->n; i++) {
		struct walk_entry *we = &w->v[i];
		struct fent *f;

		if (we->excluded || we->type != WALK_REG || we->hashed)
			continue;
		f = &u.f[u.nf++];
		f->wi = i;
		f->koff = u.keys.len;
		buf_grow(&u.keys, IDX_KEY_MAX);
		f->klen = idx_key_encode((unsigned char *)u.keys.data + u.keys.len,
					 w->root, rootlen, we->path, we->path_len);
		buf_setlen(&u.keys, u.keys.len + f->klen);
		if (u.nf > 1 && sorted &&
		    idx_key_cmp(idx_upd_key(&u, u.nf - 2), u.f[u.nf - 2].klen,
			    idx_upd_key(&u, u.nf - 1), f->klen) >= 0)
			sorted = 0;
	}
	if (!sorted)
		sort_files(&u);

	if (x->env && !w->replayed) {
		idx_lookup(&u, todo, &ntodo);
		idx_filter_stale(&u, plen);
	} else if (x->env) {
		idx_lookup_some(&u, todo, &ntodo);
	} else {
		for (ntodo = 0; ntodo < u.nf; ntodo++)
			todo[ntodo] = ntodo;
	}
	rebuilds = x->rebuilds;
	if (x->defer_max)
		ntodo = idx_defer(&u, todo, ntodo);
	if (ntodo || u.nstale)
		ret = idx_hash_all(&u, todo, ntodo, e);
	if (!ret && x->rebuilds != rebuilds && x->env && !x->nowrite)
		u.st.written = idx_store_all(x, w, u.started);

	if (st)
		*st = u.st;
	free(todo);
	free(u.f);
	buf_release(&u.keys);
	buf_release(&u.stale);
	return ret;
}
