/*
 * The lookup of one update: which files' index entries can be trusted.
 * One read transaction, a cursor moving forward in key order in step
 * with the sorted files (or, for a replayed walk, a get per changed
 * file), under the fault guard; a damaged index found here is rebuilt
 * and nothing from it trusted.  Also which of the root's other keys
 * are stale (their file gone) and deleted with the first write.
 */
#include "ctxpack/index.h"

#include "idx_internal.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

static void add_stale(struct upd *u, const MDB_val *k)
{
	uint32_t n = (uint32_t)k->mv_size;

	buf_add(&u->stale, &n, sizeof(n));
	buf_add(&u->stale, k->mv_data, k->mv_size);
	u->nstale++;
}

/*
 * The map pages a cursor has stepped past, given back as it goes: the
 * lookup reads every leaf page of the context once, and left mapped they
 * would count as that much of the process's memory (25 MB for 100k files).
 * The map is read-only and a read transaction's pages never change, so a
 * page dropped here (it stays in the page cache) faults back the same.
 */
struct map_trim {
	uintptr_t lo, hi;    /* the pages seen since the last trim */
	unsigned n;
};

static void map_trim_note(struct map_trim *t, const void *p, int flush)
{
	uintptr_t pg = (uintptr_t)p & ~(uintptr_t)4095;

	if (p) {
		if (!t->lo || pg < t->lo)
			t->lo = pg;
		if (pg + 4096 > t->hi)
			t->hi = pg + 4096;
	}
	if (t->lo && (flush || ++t->n >= 512)) {
		madvise((void *)t->lo, t->hi - t->lo, MADV_DONTNEED);
		t->lo = t->hi = 0;
		t->n = 0;
	}
}

/* Note a record that failed its check: the path of its key, cut. */
static void bad_record(struct scan *s, size_t plen, const MDB_val *k)
{
	const unsigned char *p = (const unsigned char *)k->mv_data + plen;
	size_t n = k->mv_size - plen, i;

	if (n > sizeof(s->badkey) - 1)
		n = sizeof(s->badkey) - 1;
	/* printable: the key may be the damaged part */
	for (i = 0; i < n; i++)
		s->badkey[i] = !p[i] ? '/' : p[i] < 0x20 || p[i] >= 0x7f ? '?' : (char)p[i];
	s->badkey[n] = '\0';
	s->bad = 1;
}

/* A key of the root no longer in the walk is checked too (it is rare,
 * and deleting it would erase the evidence): 1 when it fails. */
static int stale_bad(struct scan *s, size_t plen, const MDB_val *k, const MDB_val *v)
{
	struct idx_rec r;

	if (!idx_val_decode(&r, k->mv_data, k->mv_size, v->mv_data, v->mv_size))
		return 0;
	bad_record(s, plen, k);
	return 1;
}

/*
 * The lookup: one read transaction, a cursor from the root's first key
 * onward, stepping with the (sorted) files.  Fills the hashes of the
 * entries it can trust, lists the rest in todo and the root's keys that
 * no longer name a regular file in stale.  Stops at a record that fails
 * its check (s->bad): the page holding it is damaged.
 */
static __attribute__((noinline)) void lookup_scan(struct upd *u, size_t *todo, struct scan *s)
{
	struct idx *x = u->x;
	unsigned char pre[IDX_ROOT_MAX + 1 + 33];
	size_t plen = idx_key_prefix(pre, u->w->root, strlen(u->w->root));
	MDB_val k = {plen, pre}, v;
	struct map_trim trim = {0, 0, 0};
	size_t i = 0, n = 0;
	int rc;

	rc = idx_txn_begin(x, MDB_RDONLY, &s->txn);
	if (!rc)
		rc = mdb_cursor_open(s->txn, x->dbi, &s->cur);
	if (!rc)
		rc = mdb_cursor_get(s->cur, &k, &v, MDB_SET_RANGE);
	for (;;) {
		int have = !rc && k.mv_size >= plen && !memcmp(k.mv_data, pre, plen);
		int c;

		if (rc && rc != MDB_NOTFOUND)
			break;
		if (!rc)
			map_trim_note(&trim, k.mv_data, 0);
		if (i == u->nf) {
			if (!have)
				break;
			if (stale_bad(s, plen, &k, &v))
				break;
			add_stale(u, &k);
			rc = mdb_cursor_get(s->cur, &k, &v, MDB_NEXT);
			continue;
		}
		if (!have) {
			todo[n++] = i++;
			continue;
		}
		c = idx_key_cmp(k.mv_data, k.mv_size, idx_upd_key(u, i), u->f[i].klen);
		if (c < 0) {
			if (stale_bad(s, plen, &k, &v))
				break;
			add_stale(u, &k);
		} else if (c > 0) {
			todo[n++] = i++;
			continue;
		} else {
			struct walk_entry *we = &u->w->v[u->f[i].wi];
			struct idx_rec r;

			if (idx_val_decode(&r, k.mv_data, k.mv_size, v.mv_data, v.mv_size)) {
				bad_record(s, plen, &k);
				break;
			}
			if (idx_rec_matches(&r, we)) {
				if (!idx_rec_racy(&r)) {
					memcpy(we->hash, r.hash, 16);
					we->hashed = WALK_HASH_KNOWN;
					u->st.reused++;
				} else {
					u->st.racy++;
					todo[n++] = i;
				}
			} else {
				todo[n++] = i;
			}
			i++;
		}
		rc = mdb_cursor_get(s->cur, &k, &v, MDB_NEXT);
	}
	map_trim_note(&trim, NULL, 1);
	s->rc = rc;
	s->n = n;
}

/*
 * The lookup, guarded: a damaged index (a fault in LMDB, an error from
 * it, a record failing its check) is dropped and rebuilt, and nothing
 * from it is trusted: every file is hashed this run, and written to the
 * new index.
 */
void idx_lookup(struct upd *u, size_t *todo, size_t *ntodo)
{
	struct idx *x = u->x;
	/* in *u, not a local: what the fault path reads of it is what scan
	 * wrote (a local changed after sigsetjmp would be indeterminate) */
	struct scan *s = &u->scan;
	struct idx_guard g;
	char why[512];
	size_t i;

	if (sigsetjmp(g.jb, 1)) {
		snprintf(why, sizeof(why), "%s reading it", idx_guard_what(g.sig));
		goto damaged;
	}
	memset(s, 0, sizeof(*s));
	idx_guard_arm(&g);
	lookup_scan(u, todo, s);
	idx_guard_disarm(&g);
	if (s->bad)
		snprintf(why, sizeof(why), "the record of %s fails its check", s->badkey);
	else if (s->rc && s->rc != MDB_NOTFOUND)
		snprintf(why, sizeof(why), "%s", mdb_strerror(s->rc));
	else
		why[0] = '\0';
damaged:
	/* a cursor and a read transaction are released without reading a
	 * page, even after a fault */
	if (s->cur)
		mdb_cursor_close(s->cur);
	if (s->txn)
		mdb_txn_abort(s->txn);
	s->cur = NULL;
	s->txn = NULL;
	if (!why[0]) {
		*ntodo = s->n;
		return;
	}
	idx_env_damaged(x, why, 0);
	for (i = 0; i < u->nf; i++)
		u->w->v[u->f[i].wi].hashed = WALK_HASH_NONE;
	u->st.reused = u->st.racy = 0;
	u->nstale = 0;
	buf_reset(&u->stale);
	for (i = 0; i < u->nf; i++)
		todo[i] = i;
	*ntodo = u->nf;
}

/*
 * The lookup for a replayed walk (idx_snap.c): only its files found
 * changed are in u->f, few and scattered, so each is looked up by its key
 * in one read transaction, with the same rules as idx_lookup().  Nothing can
 * be stale: no directory changed.
 */
void idx_lookup_some(struct upd *u, size_t *todo, size_t *ntodo)
{
	struct idx *x = u->x;
	MDB_txn *txn = NULL;
	size_t i, n = 0;

	if (idx_txn_begin(x, MDB_RDONLY, &txn))
		txn = NULL;
	for (i = 0; i < u->nf; i++) {
		struct walk_entry *we = &u->w->v[u->f[i].wi];
		MDB_val k = {u->f[i].klen, (void *)idx_upd_key(u, i)}, v;
		struct idx_rec r;

		if (txn && !mdb_get(txn, x->dbi, &k, &v) &&
		    !idx_val_decode(&r, k.mv_data, k.mv_size, v.mv_data, v.mv_size) &&
		    idx_rec_matches(&r, we)) {
			if (!idx_rec_racy(&r)) {
				memcpy(we->hash, r.hash, 16);
				we->hashed = WALK_HASH_KNOWN;
				u->st.reused++;
				continue;
			}
			u->st.racy++;
		}
		todo[n++] = i;
	}
	if (txn)
		mdb_txn_abort(txn);
	*ntodo = n;
}

/*
 * Of the root's keys that name no included regular file, keep those whose
 * file is still there as a regular file: it is excluded by this walk's
 * ignore file but maybe not by another's (two Dockerfiles with their own
 * .dockerignore sharing one context must not evict each other's entries).
 * The rest are gone (or no longer files) and are deleted.  That costs one
 * fstatat per such key, so it is done only while there are at most as
 * many of them as included files (and at least STALE_CHECK_MIN); beyond
 * that (a new ignore line excluding a big tree) they are all deleted at
 * once, and warm runs stay at one stat per included entry.
 */
#define STALE_CHECK_MIN 256
void idx_filter_stale(struct upd *u, size_t plen)
{
	struct buf drop;
	struct buf path;
	size_t i, off = 0, ndrop = 0;
	int rootfd;

	if (!u->nstale || (u->nstale > u->nf && u->nstale > STALE_CHECK_MIN))
		return;
	rootfd = open(u->w->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return;
	buf_init(&drop, 0);
	buf_init(&path, 0);
	for (i = 0; i < u->nstale; i++) {
		uint32_t kl;
		const char *k;
		struct stat st;
		size_t j;
		int present;

		memcpy(&kl, u->stale.data + off, sizeof(kl));
		k = u->stale.data + off + sizeof(kl);
		/* a key cut to the maximum cannot be turned back into a path */
		present = kl > plen && kl < IDX_KEY_MAX;
		if (present) {
			buf_reset(&path);
			buf_add(&path, k + plen, kl - plen);
			for (j = 0; j < path.len; j++)
				if (!path.data[j])
					path.data[j] = '/';
			present = !fstatat(rootfd, path.data, &st, AT_SYMLINK_NOFOLLOW) &&
				  S_ISREG(st.st_mode);
		}
		if (!present) {
			buf_add(&drop, u->stale.data + off, sizeof(kl) + kl);
			ndrop++;
		}
		off += sizeof(kl) + kl;
	}
	close(rootfd);
	buf_release(&path);
	buf_release(&u->stale);
	u->stale = drop;
	u->nstale = ndrop;
}

