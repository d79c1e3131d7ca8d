/*
 * One LMDB environment of the index: opening it, and checking its file
 * before LMDB trusts it (the meta pages before the open, the trees of a
 * snapshot at open and before each write, through idx_lmdb.c).  Whether
 * to rebuild a damaged one, and the locking that goes with it, is
 * idx_open.c's.
 */
#include "ctxpack/index.h"

#include "idx_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

#define MAP_INITIAL ((size_t)256 << 20) /* a reservation; the file grows as used */
#define MAP_SMALL ((size_t)64 << 10)

int idx_schema_val(char *out, size_t cap)
{
	return snprintf(out, cap, "ctxpack-index schema %d key %d val %d",
			IDX_SCHEMA_VERSION, IDX_KEY_MAX, IDX_VAL_LEN);
}

void idx_env_close(struct idx *x)
{
	if (x->env)
		mdb_env_close(x->env);
	x->env = NULL;
}

/*
 * After a fault inside a write transaction (or while LMDB opened the
 * environment) its state is unknown: LMDB may hold its writer mutex and
 * point at cursors on a stack that is gone.  Nothing of it is touched
 * again, not even to close it; its memory and descriptors stay until
 * the process exits (which releases the mutex for other processes).
 */
void idx_env_abandon(struct idx *x)
{
	x->env = NULL;
}

/* LMDB's assertions (a damaged page it noticed too late): the armed
 * guard's business, else LMDB aborts as it always did. */
static void on_lmdb_assert(MDB_env *env, const char *msg)
{
	(void)env;
	(void)msg;
	idx_guard_assert();
}

/* Begin a transaction, adopting a map grown by another process. */
int idx_txn_begin(struct idx *x, unsigned flags, MDB_txn **txn)
{
	int rc;

	rc = mdb_txn_begin(x->env, NULL, flags, txn);
	if (rc == MDB_MAP_RESIZED) {
		rc = mdb_env_set_mapsize(x->env, 0);
		if (!rc)
			rc = mdb_txn_begin(x->env, NULL, flags, txn);
	}
	return rc;
}

int idx_map_grow(struct idx *x)
{
	MDB_envinfo info;

	if (mdb_env_info(x->env, &info))
		return -1;
	return mdb_env_set_mapsize(x->env, info.me_mapsize * 2);
}

int idx_nospace(int err)
{
	return err == ENOSPC || err == EDQUOT;
}

/*
 * LMDB's lock file is a shared map that LMDB extends with ftruncate and
 * then writes through: on a full disk the first write to a page without
 * a block behind it is a SIGBUS, not an error.  So its blocks are
 * allocated here first (without changing its size, which stays LMDB's
 * to choose), and a full disk is ENOSPC now.  LOCK_BYTES is the size
 * LMDB 0.9 gives it on 64-bit Linux (126 reader slots of 64 bytes and
 * a 192-byte header).  Filesystems without fallocate are left as they
 * were.  Returns 0 or an errno.
 */
#define LOCK_BYTES 8192
static int lock_prepare(const struct idx *x)
{
	char *p = xasprintf("%s/lock.mdb", x->dir);
	int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	struct stat st;
	int ret = 0;

	free(p);
	if (fd < 0)
		return 0; /* LMDB says what is wrong */
	/* (nothing of this process has the file open in LMDB yet: closing
	 * this descriptor cannot drop LMDB's fcntl locks) */
	if (!fstat(fd, &st) &&
	    fallocate(fd, FALLOC_FL_KEEP_SIZE, 0,
		      st.st_size > LOCK_BYTES ? st.st_size : LOCK_BYTES) &&
	    idx_nospace(errno))
		ret = errno;
	close(fd);
	return ret;
}

/*
 * Check data.mdb's meta pages before LMDB reads them: LMDB takes the
 * page size from there unchecked (and divides by it), and trusts the
 * roots.  A missing or empty file is a new environment.  ERR_CORRUPT
 * with the reason, or 0.
 */
static int data_precheck(const struct idx *x, struct err *e)
{
	char *p = xasprintf("%s/data.mdb", x->dir);
	unsigned char mb[2][IDX_LM_META_LEN];
	struct idx_lm_meta m[2];
	struct stat st;
	char why[256];
	unsigned psize;
	int fd, ret = 0;

	fd = open(p, O_RDONLY | O_CLOEXEC);
	free(p);
	if (fd < 0)
		return 0; /* LMDB creates it, or says what is wrong */
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size == 0)
		goto out;
	if (pread(fd, mb[0], sizeof(mb[0]), 0) != (ssize_t)sizeof(mb[0])) {
		ret = err_set(e, ERR_CORRUPT, "%lld bytes: shorter than a meta page",
			      (long long)st.st_size);
		goto out;
	}
	idx_lm_meta_decode(mb[0], &m[0]);
	/* meta 1 is a page further: meta 0 says how far */
	psize = idx_lm_page_size(&m[0], why, sizeof(why));
	if (!psize) {
		ret = err_set(e, ERR_CORRUPT, "%s", why);
		goto out;
	}
	if (pread(fd, mb[1], sizeof(mb[1]), (off_t)psize) !=
	    (ssize_t)sizeof(mb[1])) {
		ret = err_set(e, ERR_CORRUPT, "%lld bytes: shorter than its two meta pages",
			      (long long)st.st_size);
		goto out;
	}
	idx_lm_meta_decode(mb[1], &m[1]);
	if (idx_lm_metas_check(m, (uint64_t)st.st_size, why, sizeof(why)) < 0)
		ret = err_set(e, ERR_CORRUPT, "%s", why);
out:
	close(fd);
	return ret;
}

/*
 * Check the trees of txn's snapshot (idx_lm_check, in mode; keys for
 * IDX_LM_WRITE), reading data.mdb with pread, not through LMDB's map.
 * Returns 0, or ERR_CORRUPT with the reason; runs under the caller's
 * guard.
 */
int idx_snapshot_check(struct idx *x, MDB_txn *txn, int writing, int mode,
			  const struct idx_lm_key *keys, size_t nkeys, struct err *e)
{
	unsigned char mb[IDX_LM_META_LEN];
	struct idx_lm_meta m;
	struct idx_lm_file f;
	uint64_t id = mdb_txn_id(txn);
	MDB_stat ms;
	struct stat st;
	char why[256];
	int fd, ret = 0;

	/* a write transaction's id is the next commit's: its snapshot is
	 * the one before */
	if (writing)
		id--;
	if (mdb_env_get_fd(x->env, &fd) || mdb_env_stat(x->env, &ms))
		return 0;
	if (pread(fd, mb, sizeof(mb), (off_t)((id & 1) * ms.ms_psize)) != (ssize_t)sizeof(mb))
		return err_set(e, ERR_CORRUPT, "cannot read meta page %d", (int)(id & 1));
	idx_lm_meta_decode(mb, &m);
	if (m.txnid != id) {
		/* two commits by others since this read transaction began
		 * (only a reader sees this): what it reads is still there,
		 * the meta page that named it is not; next time */
		return writing ? err_set(e, ERR_CORRUPT, "meta page %d holds commit %llu, "
					 "not %llu", (int)(id & 1),
					 (unsigned long long)m.txnid, (unsigned long long)id) : 0;
	}
	if (m.pgno != (id & 1) || m.db[0].pad != ms.ms_psize)
		return err_set(e, ERR_CORRUPT, "meta page %d changed", (int)(id & 1));
	if (fstat(fd, &st))
		return 0;
	idx_lm_file_init(&f, fd, ms.ms_psize, (uint64_t)st.st_size);
	if (idx_lm_check(&f.src, &m, mode, keys, nkeys, why, sizeof(why))) {
		unsigned char again[IDX_LM_META_LEN];

		/* a reader's meta page may have been rewritten while it was
		 * read (two commits by others): not damage, if it differs now */
		if (writing ||
		    pread(fd, again, sizeof(again), (off_t)((id & 1) * ms.ms_psize)) !=
			    (ssize_t)sizeof(again) ||
		    !memcmp(again, mb, sizeof(mb)))
			ret = err_set(e, ERR_CORRUPT, "%s", why);
	}
	idx_lm_file_release(&f);
	return ret;
}

/*
 * Open the environment and check the schema record (writing it into an
 * empty one).  Any failure leaves x->env NULL and says why in e:
 * ERR_CORRUPT when data.mdb is damaged (rebuild it), else ERR_FAIL with
 * e->saved_errno ENOSPC when there is no room to use it, else ERR_FAIL.
 */
int idx_env_try(struct idx *x, struct err *e)
{
	char want[96];
	int wn = idx_schema_val(want, sizeof(want));
	MDB_txn *volatile txn = NULL;
	MDB_val k = {IDX_SCHEMA_KEY_LEN, (void *)IDX_SCHEMA_KEY}, v;
	MDB_stat ms;
	struct idx_guard g;
	int rc, dead;

	x->need_schema = 0;
	rc = lock_prepare(x);
	if (rc) {
		err_set(e, ERR_FAIL, "no room for %s/lock.mdb (%s)", x->dir, strerror(rc));
		e->saved_errno = rc;
		return e->code;
	}
	if (data_precheck(x, e))
		return e->code;
	rc = mdb_env_create(&x->env);
	if (rc) {
		x->env = NULL;
		return err_set(e, ERR_FAIL, "%s", mdb_strerror(rc));
	}
	mdb_env_set_mapsize(x->env, (x->flags & IDX_SMALL_MAP) ? MAP_SMALL : MAP_INITIAL);
	mdb_env_set_assert(x->env, on_lmdb_assert);
	if (sigsetjmp(g.jb, 1)) {
		/* LMDB wrote through its lock file's map and met no disk
		 * space (a filesystem without fallocate) */
		idx_env_abandon(x);
		err_set(e, ERR_FAIL, "%s writing %s/lock.mdb (no room?)", idx_guard_what(g.sig),
			x->dir);
		e->saved_errno = ENOSPC;
		return e->code;
	}
	idx_guard_arm(&g);
	/* not synced: a cache whose records are checked against the files'
	 * stat and their own checksums, rebuilt when damaged (docs/index.md,
	 * "Crash safety"); a sync at each commit put an fdatasync on the
	 * critical path of every small run */
	rc = mdb_env_open(x->env, x->dir, MDB_NOTLS | MDB_NOSYNC, 0644);
	idx_guard_disarm(&g);
	if (rc)
		goto fail;
	if ((rc = mdb_env_get_maxkeysize(x->env)) < IDX_KEY_MAX) {
		idx_env_close(x);
		return err_set(e, ERR_FAIL, "LMDB's maximum key size is %d, below %d",
			       rc, IDX_KEY_MAX);
	}
	/* readers left behind by killed processes */
	mdb_reader_check(x->env, &dead);

	if (sigsetjmp(g.jb, 1)) {
		if (txn)
			mdb_txn_abort(txn);
		idx_env_close(x);
		return err_set(e, ERR_CORRUPT, "%s reading it", idx_guard_what(g.sig));
	}
	idx_guard_arm(&g);
	rc = idx_txn_begin(x, MDB_RDONLY, (MDB_txn **)&txn);
	if (rc)
		goto fail;
	rc = mdb_dbi_open(txn, NULL, 0, &x->dbi);
	if (!rc && idx_snapshot_check(x, txn, 0, IDX_LM_OPEN, NULL, 0, e)) {
		idx_guard_disarm(&g);
		mdb_txn_abort(txn);
		idx_env_close(x);
		return e->code;
	}
	if (!rc)
		rc = mdb_get(txn, x->dbi, &k, &v);
	if (!rc) {
		if (v.mv_size != (size_t)wn || memcmp(v.mv_data, want, (size_t)wn)) {
			char got[81];
			size_t i, n = v.mv_size < 80 ? v.mv_size : 80;

			/* the message first (v points into the map), printable */
			for (i = 0; i < n; i++) {
				unsigned char ch = ((const unsigned char *)v.mv_data)[i];

				got[i] = ch < 0x20 || ch >= 0x7f ? '?' : (char)ch;
			}
			got[n] = '\0';
			err_set(e, ERR_CORRUPT, "schema '%s', expected '%s'", got, want);
			idx_guard_disarm(&g);
			mdb_txn_abort(txn);
			idx_env_close(x);
			return e->code;
		}
		idx_guard_disarm(&g);
		mdb_txn_abort(txn);
		return 0;
	}
	if (rc != MDB_NOTFOUND)
		goto fail;
	rc = mdb_stat(txn, x->dbi, &ms);
	idx_guard_disarm(&g);
	mdb_txn_abort(txn);
	txn = NULL;
	if (rc)
		goto fail;
	if (ms.ms_entries) {
		idx_env_close(x);
		return err_set(e, ERR_CORRUPT, "no schema record");
	}
	/* A new environment: the record goes in with the first entries
	 * (one commit, one sync less); an empty one needs none.  A racing
	 * process writes the same bytes. */
	x->need_schema = 1;
	return 0;
fail:
	idx_guard_disarm(&g);
	if (txn)
		mdb_txn_abort(txn);
	idx_env_close(x);
	err_set(e, rc == MDB_INVALID || rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND ||
			   rc == MDB_VERSION_MISMATCH ? ERR_CORRUPT : ERR_FAIL,
		"%s", mdb_strerror(rc));
	if (idx_nospace(rc)) {
		err_clear(e);
		err_set(e, ERR_FAIL, "no room for %s/data.mdb (%s)", x->dir, mdb_strerror(rc));
		e->saved_errno = rc;
	}
	return e->code;
}
