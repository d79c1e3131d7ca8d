/*
 * The writes of the index: entries in short batched transactions, each
 * checking first the pages it will touch (LMDB's writes trust every
 * page they reach) and running under the fault guard; damage found
 * rebuilds the index and the batch goes to the new one, a full map
 * grows it, any other failure only stops writing (the hashes are right
 * either way).  Also storing a walk's files outside an update (the
 * packer's deferred files, everything after a rebuild mid-run).
 */
#include "ctxpack/index.h"

#include "idx_internal.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

/* Entries per write transaction when storing outside an update (for
 * idx_store_deferred, which runs after the pack): few enough that the
 * transaction's pages (about 400 bytes an entry) and keys stay a few
 * MiB */
#define BATCH_DEFERRED 16384

/* not LMDB codes: the check before writing failed; a fault (the write
 * transaction's state is lost with it) */
#define BATCH_DAMAGED (-1)
#define BATCH_FAULT (-2)

static int lm_key_cmp(const void *a, const void *b)
{
	const struct idx_lm_key *x = a, *y = b;

	return idx_key_cmp(x->p, x->n, y->p, y->n);
}

/* Check the pages a write of these keys will touch (IDX_LM_WRITE). */
static int write_check(struct upd *u, MDB_txn *txn, const size_t *done, size_t n,
		       struct err *why)
{
	struct idx_lm_key *keys = xreallocarray(NULL, n + u->nstale + 1, sizeof(*keys));
	size_t i, k = 0, off = 0;
	int ret;

	keys[k].p = (const unsigned char *)IDX_SCHEMA_KEY;
	keys[k++].n = IDX_SCHEMA_KEY_LEN;
	for (i = 0; i < u->nstale; i++) {
		uint32_t kl;

		memcpy(&kl, u->stale.data + off, sizeof(kl));
		keys[k].p = (const unsigned char *)u->stale.data + off + sizeof(kl);
		keys[k++].n = kl;
		off += sizeof(kl) + kl;
	}
	for (i = 0; i < n; i++) {
		keys[k].p = idx_upd_key(u, done[i]);
		keys[k++].n = u->f[done[i]].klen;
	}
	qsort(keys, k, sizeof(*keys), lm_key_cmp);
	ret = idx_snapshot_check(u->x, txn, 1, IDX_LM_WRITE, keys, k, why);
	free(keys);
	return ret;
}

/*
 * One write transaction: the schema record into a new environment, the
 * stale keys, the entries of done[0..n).  Each checks the pages it will
 * touch first (write_check): LMDB's writes copy, split and merge the
 * pages they reach and take pages from the free list trusting every
 * size and page number in them, so a damaged page there would not fault,
 * it would overrun a buffer or hand out a page in use.  Returns an LMDB
 * code, or BATCH_DAMAGED with why set.
 */
static int batch_txn(struct upd *u, const size_t *done, size_t n, struct err *why)
{
	struct idx *x = u->x;
	MDB_txn *txn;
	size_t i, off;
	int rc;

	rc = idx_txn_begin(x, 0, &txn);
	if (rc)
		return rc;
	if (write_check(u, txn, done, n, why)) {
		mdb_txn_abort(txn);
		return BATCH_DAMAGED;
	}
	if (x->need_schema) {
		char want[96];
		int wn = idx_schema_val(want, sizeof(want));
		MDB_val k = {IDX_SCHEMA_KEY_LEN, (void *)IDX_SCHEMA_KEY};

		rc = mdb_put(txn, x->dbi, &k, &(MDB_val){(size_t)wn, want}, 0);
	}
	for (i = 0, off = 0; !rc && i < u->nstale; i++) {
		uint32_t kl;
		MDB_val k;

		memcpy(&kl, u->stale.data + off, sizeof(kl));
		k.mv_size = kl;
		k.mv_data = u->stale.data + off + sizeof(kl);
		off += sizeof(kl) + kl;
		rc = mdb_del(txn, x->dbi, &k, NULL);
		if (rc == MDB_NOTFOUND)
			rc = 0;
	}
	for (i = 0; !rc && i < n; i++) {
		const struct fent *f = &u->f[done[i]];
		const struct walk_entry *we = &u->w->v[f->wi];
		unsigned char val[IDX_VAL_LEN];
		struct idx_rec r;
		MDB_val k = {f->klen, (void *)idx_upd_key(u, done[i])};
		MDB_val vv = {IDX_VAL_LEN, val};

		r.dev = we->dev;
		r.ino = we->ino;
		r.size = we->size;
		r.mtime_ns = we->mtime_ns;
		r.ctime_ns = we->ctime_ns;
		r.written_ns = u->started;
		r.mode = we->mode;
		memcpy(r.hash, we->hash, 16);
		idx_val_encode(val, k.mv_data, k.mv_size, &r);
		rc = mdb_put(txn, x->dbi, &k, &vv, 0);
	}
	if (rc)
		mdb_txn_abort(txn);
	else
		rc = mdb_txn_commit(txn);
	return rc;
}

/* batch_txn under the guard: BATCH_FAULT (why set) after a fault. */
static int guarded_batch(struct upd *u, const size_t *done, size_t n, struct err *why)
{
	struct idx_guard g;
	int rc;

	if (sigsetjmp(g.jb, 1)) {
		snprintf(why->msg, sizeof(why->msg), "%s writing it", idx_guard_what(g.sig));
		return BATCH_FAULT;
	}
	idx_guard_arm(&g);
	rc = batch_txn(u, done, n, why);
	idx_guard_disarm(&g);
	return rc;
}

/*
 * Write the entries of files done[0..n) (hashed in this run), and delete
 * the stale keys on the first call.  MDB_MAP_FULL grows the map and
 * retries.  Damage (the check, or a fault) rebuilds the index and writes
 * there.  A failure only disables writing (with a warning): the hashes
 * are right whether or not they are stored.
 */
void idx_write_batch(struct upd *u, const size_t *done, size_t n)
{
	struct idx *x = u->x;
	struct err why = ERR_INIT;
	int rc = 0, tries;

	if (!x->env || x->nowrite || (!n && !u->nstale))
		return;
	for (tries = 0; tries < 40; tries++) {
		rc = guarded_batch(u, done, n, &why);
		if (rc == BATCH_DAMAGED || rc == BATCH_FAULT) {
			idx_env_damaged(x, why.msg, rc == BATCH_FAULT);
			/* a new index: nothing stale in it */
			err_clear(&why);
			u->nstale = 0;
			buf_reset(&u->stale);
			if (!x->env || x->nowrite)
				return;
			continue;
		}
		if (rc != MDB_MAP_FULL)
			break;
		if (idx_map_grow(x))
			break;
	}
	if (rc) {
		idx_add_warning(x, "cannot update the index %s: %s", x->dir, mdb_strerror(rc));
		x->nowrite = 1;
		return;
	}
	x->need_schema = 0;
	u->st.written += n;
	u->st.dropped += u->nstale;
	u->nstale = 0;
	buf_reset(&u->stale);
}

/*
 * Write the entries of the files f[sel[0..n)] of w (hashed ones), their
 * keys encoded a batch of BATCH_DEFERRED at a time.  Returns the number
 * written.
 */
uint64_t idx_store_files(struct idx *x, struct walk_result *w, struct fent *f,
			 const size_t *sel, size_t n, int64_t started)
{
	struct upd u;
	size_t i, j, rootlen = strlen(w->root);

	memset(&u, 0, sizeof(u));
	u.x = x;
	u.w = w;
	u.f = f;
	u.nf = n;
	buf_init(&u.keys, 0);
	buf_init(&u.stale, 0);
	u.started = started;
	for (i = 0; i < n; i += BATCH_DEFERRED) {
		size_t m = n - i < BATCH_DEFERRED ? n - i : BATCH_DEFERRED;

		buf_reset(&u.keys);
		for (j = 0; j < m; j++) {
			struct fent *fe = &f[sel[i + j]];
			const struct walk_entry *we = &w->v[fe->wi];

			if (buf_grow(&u.keys, IDX_KEY_MAX))
				break;
			fe->koff = u.keys.len;
			fe->klen = idx_key_encode((unsigned char *)u.keys.data + u.keys.len,
						  w->root, rootlen, we->path, we->path_len);
			buf_setlen(&u.keys, u.keys.len + fe->klen);
		}
		idx_write_batch(&u, sel + i, j);
	}
	buf_release(&u.keys);
	buf_release(&u.stale);
	return u.st.written;
}

/*
 * After the index was rebuilt in the middle of a run (damage found by
 * the check before the first write), the entries this run reused from
 * the old one are written again, with the hashes it trusted: it did
 * trust them (each passed its check and the stat and racy rules), and
 * the next run should not read every file again.  Their written time is
 * this run's start, later than the one they had, which the racy rule
 * allows: their files' times are older than that one already.
 */
uint64_t idx_store_all(struct idx *x, struct walk_result *w, int64_t started)
{
	struct fent *f = xreallocarray(NULL, w->n ? w->n : 1, sizeof(*f));
	size_t *sel = xreallocarray(NULL, w->n ? w->n : 1, sizeof(*sel));
	size_t i, n = 0;
	uint64_t written;

	for (i = 0; i < w->n; i++) {
		const struct walk_entry *we = &w->v[i];

		if (we->excluded || we->type != WALK_REG || !we->hashed)
			continue;
		f[n].wi = i;
		sel[n] = n;
		n++;
	}
	written = idx_store_files(x, w, f, sel, n, started);
	free(f);
	free(sel);
	return written;
}
