/*
 * The content index: an LMDB environment mapping (context root, path) to
 * the stat fields and XXH3-128 of a regular file.  Key and value encoding,
 * the reuse rules and the digest are in idx_codec.c; reading one file is
 * idx_read.c.  This file opens (and rebuilds) the environment, looks a
 * walk up in one read transaction with a cursor moving in key order,
 * hashes the misses on a few threads and writes them in short batches.
 */
#include "ctxpack/index.h"

#include "idx_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

/* Bump when the key or value encoding changes: an index of another
 * schema is rebuilt, never read. */
#define IDX_SCHEMA_VERSION 1
#define SCHEMA_KEY "\0ctxpack-index"
#define SCHEMA_KEY_LEN (sizeof(SCHEMA_KEY) - 1)

#define MAP_INITIAL ((size_t)256 << 20) /* a reservation; the file grows as used */
#define MAP_SMALL ((size_t)64 << 10)
#define READ_BUF (256 << 10)
#define BATCH_MAX 65536          /* entries per write transaction at most */
/* ... for idx_store_deferred, which runs after the pack: smaller, so that
 * the transaction's pages (about 400 bytes an entry) and keys stay a few
 * MiB */
#define BATCH_DEFERRED 16384
#define BATCH_NS 100000000LL     /* commit hashed entries at least this often */
#define REBUILD_WAIT_MS 5000     /* wait this long for others to let go */
#define INLINE_MAX 8             /* fewer files than this: no threads */

/* A regular file of the walk and its key (in the keys arena). */
struct fent {
	size_t wi;
	size_t koff;
	size_t klen;
};

struct idx {
	MDB_env *env;     /* NULL: working without an index */
	MDB_dbi dbi;
	char *dir;
	char *real;       /* realpath of dir */
	int lockfd;
	unsigned flags;
	unsigned threads;
	int nowrite;      /* a write failed: stop trying for this handle */
	int need_schema;  /* a new environment: write the schema record */
	uint64_t gen;     /* the rebuild generation env was opened in */
	unsigned rebuilds; /* rebuilds after open (damage found on the way) */
	struct buf warn;
	/* idx_set_defer: files up to defer_max left for the caller to hash;
	 * idx_store_deferred encodes their keys again, a batch at a time,
	 * rather than holding them all while the caller packs */
	uint64_t defer_max;
	struct fent *df;
	size_t ndf;
	int64_t dstarted;
};

static void add_warning(struct idx *x, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void add_warning(struct idx *x, const char *fmt, ...)
{
	va_list ap;

	if (x->warn.len)
		buf_addstr(&x->warn, "; ");
	va_start(ap, fmt);
	buf_vaddf(&x->warn, fmt, ap);
	va_end(ap);
}

static int schema_val(char *out, size_t cap)
{
	return snprintf(out, cap, "ctxpack-index schema %d key %d val %d",
			IDX_SCHEMA_VERSION, IDX_KEY_MAX, IDX_VAL_LEN);
}

static void env_close(struct idx *x)
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
static void env_abandon(struct idx *x)
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
static int txn_begin(struct idx *x, unsigned flags, MDB_txn **txn)
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

static int grow_map(struct idx *x)
{
	MDB_envinfo info;

	if (mdb_env_info(x->env, &info))
		return -1;
	return mdb_env_set_mapsize(x->env, info.me_mapsize * 2);
}

static int nospace(int err)
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
	    nospace(errno))
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
static int snapshot_check(struct idx *x, MDB_txn *txn, int writing, int mode,
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
static int env_try(struct idx *x, struct err *e)
{
	char want[96];
	int wn = schema_val(want, sizeof(want));
	MDB_txn *volatile txn = NULL;
	MDB_val k = {SCHEMA_KEY_LEN, (void *)SCHEMA_KEY}, v;
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
		env_abandon(x);
		err_set(e, ERR_FAIL, "%s writing %s/lock.mdb (no room?)", idx_guard_what(g.sig),
			x->dir);
		e->saved_errno = ENOSPC;
		return e->code;
	}
	idx_guard_arm(&g);
	rc = mdb_env_open(x->env, x->dir, MDB_NOTLS | MDB_NOMETASYNC, 0644);
	idx_guard_disarm(&g);
	if (rc)
		goto fail;
	if ((rc = mdb_env_get_maxkeysize(x->env)) < IDX_KEY_MAX) {
		env_close(x);
		return err_set(e, ERR_FAIL, "LMDB's maximum key size is %d, below %d",
			       rc, IDX_KEY_MAX);
	}
	/* readers left behind by killed processes */
	mdb_reader_check(x->env, &dead);

	if (sigsetjmp(g.jb, 1)) {
		if (txn)
			mdb_txn_abort(txn);
		env_close(x);
		return err_set(e, ERR_CORRUPT, "%s reading it", idx_guard_what(g.sig));
	}
	idx_guard_arm(&g);
	rc = txn_begin(x, MDB_RDONLY, (MDB_txn **)&txn);
	if (rc)
		goto fail;
	rc = mdb_dbi_open(txn, NULL, 0, &x->dbi);
	if (!rc && snapshot_check(x, txn, 0, IDX_LM_OPEN, NULL, 0, e)) {
		idx_guard_disarm(&g);
		mdb_txn_abort(txn);
		env_close(x);
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
			env_close(x);
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
		env_close(x);
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
	env_close(x);
	err_set(e, rc == MDB_INVALID || rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND ||
			   rc == MDB_VERSION_MISMATCH ? ERR_CORRUPT : ERR_FAIL,
		"%s", mdb_strerror(rc));
	if (nospace(rc)) {
		err_clear(e);
		err_set(e, ERR_FAIL, "no room for %s/data.mdb (%s)", x->dir, mdb_strerror(rc));
		e->saved_errno = rc;
	}
	return e->code;
}

static int remove_env_files(const char *dir, struct err *e)
{
	static const char *const names[] = {"data.mdb", "lock.mdb"};
	size_t i;

	for (i = 0; i < 2; i++) {
		char *p = xasprintf("%s/%s", dir, names[i]);
		int r = unlink(p);

		if (r && errno != ENOENT) {
			err_errno(e, "cannot remove %s", p);
			free(p);
			return e->code;
		}
		free(p);
	}
	return 0;
}

/*
 * The rebuild generation, a u64 at the start of ctxpack.lock, counts the
 * rebuilds of this index.  A process that finds damage after it opened
 * the environment (in a page only a lookup or a write reads) compares it
 * with the one it opened: changed, another process has rebuilt the index
 * meanwhile and it is only reopened; the same, it is rebuilt here.  An
 * empty or unreadable file counts as 0.
 */
static uint64_t gen_read(const struct idx *x)
{
	unsigned char b[8];
	uint64_t g = 0;
	int i;

	if (pread(x->lockfd, b, 8, 0) != 8)
		return 0;
	for (i = 7; i >= 0; i--)
		g = g << 8 | b[i];
	return g;
}

static void gen_write(const struct idx *x, uint64_t g)
{
	unsigned char b[8];
	int i;

	for (i = 0; i < 8; i++)
		b[i] = (unsigned char)(g >> (8 * i));
	/* a full disk: the count stays, which costs at most one more
	 * rebuild by a process that saw the old environment damaged */
	(void)pwrite_all(x->lockfd, b, 8, 0);
}

/*
 * Open the environment, rebuilding it when it is damaged.  Every user
 * holds a shared flock on DIR/ctxpack.lock while it has the environment
 * open; removing the files takes the exclusive lock, so a process never
 * keeps using a data file whose lock file was replaced under it (LMDB
 * pairs the two).
 *
 * damaged is NULL when opening; after open, it says why the environment
 * this handle had (now closed; of generation x->gen) is damaged.  Then
 * an environment another process rebuilt meanwhile is taken as it is.
 * No room on the disk, or others keeping a damaged index open for more
 * than REBUILD_WAIT_MS, leave the handle without an index (a warning).
 */
static int env_open_or_rebuild(struct idx *x, const char *damaged, struct err *e)
{
	struct err why = ERR_INIT, e2 = ERR_INIT;
	uint64_t bad = x->gen, g;
	int waited = 0, known_bad = damaged != NULL;

	if (damaged)
		err_set(&why, ERR_CORRUPT, "%s", damaged);
	for (;;) {
		if (flock(x->lockfd, LOCK_SH))
			return err_errno(e, "cannot lock the index %s", x->dir);
		g = gen_read(x);
		if (!known_bad || g != bad) {
			err_clear(&why);
			if (!env_try(x, &why)) {
				x->gen = g;
				return 0;
			}
			if (nospace(why.saved_errno))
				goto without;
			known_bad = 1;
			bad = g;
		}
		flock(x->lockfd, LOCK_UN);
		if (!flock(x->lockfd, LOCK_EX | LOCK_NB))
			break;
		if (waited >= REBUILD_WAIT_MS) {
			/* others keep it open: work without it this time */
			if (flock(x->lockfd, LOCK_SH))
				return err_errno(e, "cannot lock the index %s", x->dir);
			add_warning(x, "the index %s/data.mdb is unusable (%s) and in use by "
				       "other processes; hashing without it", x->dir,
				    why.msg);
			return 0;
		}
		sleep_ms(50);
		waited += 50;
	}
	/* exclusive: maybe another process rebuilt it meanwhile */
	g = gen_read(x);
	if (g != bad) {
		err_clear(&why);
		if (!env_try(x, &why))
			goto shared;
		if (nospace(why.saved_errno)) {
			flock(x->lockfd, LOCK_SH);
			goto without;
		}
	}
	if (!remove_env_files(x->dir, e))
		gen_write(x, ++g);
	if (err_isset(e) || env_try(x, &e2)) {
		if (!err_isset(e))
			err_set(e, e2.code, "cannot create the index %s: %s", x->dir, e2.msg);
		e->saved_errno = e2.saved_errno;
		flock(x->lockfd, LOCK_UN);
		if (nospace(e2.saved_errno)) {
			/* the damaged one is gone; no room for a new one */
			flock(x->lockfd, LOCK_SH);
			err_clear(e);
			err_set(&why, ERR_FAIL, "%s", e2.msg);
			goto without;
		}
		return e->code;
	}
	add_warning(x, "the index %s/data.mdb %s (%s); rebuilt it", x->dir,
		    damaged ? "is damaged" : "could not be used", why.msg);
shared:
	x->gen = g;
	/* downgrade: the rebuilt environment is shared again */
	if (flock(x->lockfd, LOCK_SH)) {
		env_close(x);
		return err_errno(e, "cannot lock the index %s", x->dir);
	}
	return 0;
without:
	add_warning(x, "cannot use the index %s: %s; hashing without it", x->dir, why.msg);
	return 0;
}

/*
 * Damage found after open (a lookup, the check before a write, a fault):
 * the environment is dropped (abandon: after a fault in a write
 * transaction) and rebuilt, or, when that cannot be done, the handle goes
 * on without an index.  Never an error: the hashes do not depend on it.
 */
static void env_damaged(struct idx *x, const char *why, int abandon)
{
	struct err e = ERR_INIT;
	char *w = xstrdup(why);

	if (abandon)
		env_abandon(x);
	else
		env_close(x);
	flock(x->lockfd, LOCK_UN);
	x->rebuilds++;
	x->nowrite = 0;
	if (env_open_or_rebuild(x, w, &e)) {
		env_close(x);
		add_warning(x, "the index %s/data.mdb is damaged (%s) and could not be "
			       "rebuilt: %s", x->dir, w, e.msg);
	}
	free(w);
}

/* The index directory: dir, else $CTXPACK_INDEX, else the XDG default. */
static char *pick_dir(const char *dir)
{
	const char *env;
	char *home, *d;

	if (dir && *dir)
		return xstrdup(dir);
	env = getenv("CTXPACK_INDEX");
	if (env && *env)
		return xstrdup(env);
	home = cache_home();
	d = xasprintf("%s/index", home);
	free(home);
	return d;
}

/* root is a real path: is real (also one) root or below it? */
static int path_inside(const char *real, const char *root)
{
	size_t n = strlen(root);

	if (n == 1 && root[0] == '/')
		return 1;
	return !strncmp(real, root, n) && (real[n] == '/' || real[n] == '\0');
}

int idx_check_dir(const char *dir, const char *root, struct err *e)
{
	char *d = pick_dir(dir);
	char *real = path_resolve_future(d);
	int ret = 0;

	if (real && path_inside(real, root))
		ret = err_set(e, ERR_USAGE,
			      "the index directory %s is inside the context %s; "
			      "put it elsewhere with --index or CTXPACK_INDEX",
			      d, root);
	free(real);
	free(d);
	return ret;
}

int idx_open(struct idx **out, const char *dir, unsigned flags, struct err *e)
{
	struct idx *x = xcalloc(1, sizeof(*x));
	char *lockpath = NULL;
	int ret;

	*out = NULL;
	x->lockfd = -1;
	x->flags = flags;
	buf_init(&x->warn, 0);
	x->dir = pick_dir(dir);
	ret = mkdir_p(x->dir, 0755, e);
	if (ret) {
		err_wrap(e, "cannot create the index directory");
		goto out;
	}
	x->real = realpath(x->dir, NULL);
	if (!x->real) {
		ret = err_errno(e, "cannot resolve the index directory %s", x->dir);
		goto out;
	}
	lockpath = xasprintf("%s/ctxpack.lock", x->dir);
	x->lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (x->lockfd < 0) {
		ret = err_errno(e, "cannot open %s", lockpath);
		goto out;
	}
	ret = env_open_or_rebuild(x, NULL, e);
out:
	free(lockpath);
	if (ret) {
		idx_close(x);
		return ret;
	}
	*out = x;
	return 0;
}

void idx_close(struct idx *x)
{
	if (!x)
		return;
	env_close(x);
	if (x->lockfd >= 0)
		close(x->lockfd); /* releases the flock */
	free(x->dir);
	free(x->real);
	buf_release(&x->warn);
	free(x->df);
	free(x);
}

char *idx_dir_for(const char *dir)
{
	return pick_dir(dir);
}

const char *idx_dir(const struct idx *x)
{
	return x->dir;
}

const char *idx_warning(const struct idx *x)
{
	return x->warn.len ? x->warn.data : NULL;
}

void idx_set_threads(struct idx *x, unsigned n)
{
	x->threads = n;
}

/* ---- one update ---- */

/* What a lookup holds and found, kept in memory the fault path reads. */
struct scan {
	MDB_txn *txn;
	MDB_cursor *cur;
	int rc;                  /* LMDB's last answer */
	int bad;                 /* a record failed its check: */
	char badkey[200];        /* its key's path, cut */
	size_t n;                /* entries put in todo */
};

struct upd {
	struct idx *x;
	struct walk_result *w;
	struct fent *f;
	size_t nf;
	struct buf keys;   /* every file's key, concatenated */
	struct buf stale;  /* keys to delete: u32 length + bytes each */
	size_t nstale;
	int64_t started;   /* the run's start: written_ns of new entries */
	struct idx_stats st;
	struct scan scan;  /* the lookup's */
};

static int key_cmp(const void *a, size_t an, const void *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);

	return c ? c : (an > bn) - (an < bn);
}

static const unsigned char *fkey(const struct upd *u, size_t i)
{
	return (const unsigned char *)u->keys.data + u->f[i].koff;
}

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

	return key_cmp(x->key, x->f.klen, y->key, y->f.klen);
}

static void sort_files(struct upd *u)
{
	struct fsort *s = xreallocarray(NULL, u->nf, sizeof(*s));
	size_t i;

	for (i = 0; i < u->nf; i++) {
		s[i].f = u->f[i];
		s[i].key = fkey(u, i);
	}
	qsort(s, u->nf, sizeof(*s), fsort_cmp);
	for (i = 0; i < u->nf; i++)
		u->f[i] = s[i].f;
	free(s);
}

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

	rc = txn_begin(x, MDB_RDONLY, &s->txn);
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
		c = key_cmp(k.mv_data, k.mv_size, fkey(u, i), u->f[i].klen);
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
static void lookup(struct upd *u, size_t *todo, size_t *ntodo)
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
	env_damaged(x, why, 0);
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
 * in one read transaction, with the same rules as lookup().  Nothing can
 * be stale: no directory changed.
 */
static void lookup_some(struct upd *u, size_t *todo, size_t *ntodo)
{
	struct idx *x = u->x;
	MDB_txn *txn = NULL;
	size_t i, n = 0;

	if (txn_begin(x, MDB_RDONLY, &txn))
		txn = NULL;
	for (i = 0; i < u->nf; i++) {
		struct walk_entry *we = &u->w->v[u->f[i].wi];
		MDB_val k = {u->f[i].klen, (void *)fkey(u, i)}, v;
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
static void filter_stale(struct upd *u, size_t plen)
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

/* not LMDB codes: the check before writing failed; a fault (the write
 * transaction's state is lost with it) */
#define BATCH_DAMAGED (-1)
#define BATCH_FAULT (-2)

static int lm_key_cmp(const void *a, const void *b)
{
	const struct idx_lm_key *x = a, *y = b;

	return key_cmp(x->p, x->n, y->p, y->n);
}

/* Check the pages a write of these keys will touch (IDX_LM_WRITE). */
static int write_check(struct upd *u, MDB_txn *txn, const size_t *done, size_t n,
		       struct err *why)
{
	struct idx_lm_key *keys = xreallocarray(NULL, n + u->nstale + 1, sizeof(*keys));
	size_t i, k = 0, off = 0;
	int ret;

	keys[k].p = (const unsigned char *)SCHEMA_KEY;
	keys[k++].n = SCHEMA_KEY_LEN;
	for (i = 0; i < u->nstale; i++) {
		uint32_t kl;

		memcpy(&kl, u->stale.data + off, sizeof(kl));
		keys[k].p = (const unsigned char *)u->stale.data + off + sizeof(kl);
		keys[k++].n = kl;
		off += sizeof(kl) + kl;
	}
	for (i = 0; i < n; i++) {
		keys[k].p = fkey(u, done[i]);
		keys[k++].n = u->f[done[i]].klen;
	}
	qsort(keys, k, sizeof(*keys), lm_key_cmp);
	ret = snapshot_check(u->x, txn, 1, IDX_LM_WRITE, keys, k, why);
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

	rc = txn_begin(x, 0, &txn);
	if (rc)
		return rc;
	if (write_check(u, txn, done, n, why)) {
		mdb_txn_abort(txn);
		return BATCH_DAMAGED;
	}
	if (x->need_schema) {
		char want[96];
		int wn = schema_val(want, sizeof(want));
		MDB_val k = {SCHEMA_KEY_LEN, (void *)SCHEMA_KEY};

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
		MDB_val k = {f->klen, (void *)fkey(u, done[i])};
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
static void write_batch(struct upd *u, const size_t *done, size_t n)
{
	struct idx *x = u->x;
	struct err why = ERR_INIT;
	int rc = 0, tries;

	if (!x->env || x->nowrite || (!n && !u->nstale))
		return;
	for (tries = 0; tries < 40; tries++) {
		rc = guarded_batch(u, done, n, &why);
		if (rc == BATCH_DAMAGED || rc == BATCH_FAULT) {
			env_damaged(x, why.msg, rc == BATCH_FAULT);
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
		if (grow_map(x))
			break;
	}
	if (rc) {
		add_warning(x, "cannot update the index %s: %s", x->dir, mdb_strerror(rc));
		x->nowrite = 1;
		return;
	}
	x->need_schema = 0;
	u->st.written += n;
	u->st.dropped += u->nstale;
	u->nstale = 0;
	buf_reset(&u->stale);
}

/* The reader pool. */
struct pool {
	struct upd *u;
	const size_t *todo;
	size_t ntodo;
	int rootfd;
	size_t next;           /* atomic: the next todo slot to take */
	int failed;            /* atomic: stop taking work */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t *done;          /* files hashed, appended under mu */
	size_t ndone;
	unsigned running;
	uint64_t bytes;
	struct err err;        /* the first failure, under mu */
};

static int hash_one(struct pool *p, size_t fi, void *buf, struct err *e)
{
	struct walk_entry *we = &p->u->w->v[p->u->f[fi].wi];
	uint64_t nread = 0;
	int ret;

	ret = idx_hash_file(p->rootfd, we, buf, READ_BUF, &nread, e);
	pthread_mutex_lock(&p->mu);
	p->bytes += nread;
	if (ret) {
		if (!err_isset(&p->err))
			p->err = *e;
		__atomic_store_n(&p->failed, 1, __ATOMIC_RELAXED);
	} else {
		we->hashed = WALK_HASH_KNOWN;
		p->done[p->ndone++] = fi;
	}
	pthread_mutex_unlock(&p->mu);
	return ret;
}

static void *worker(void *arg)
{
	struct pool *p = arg;
	void *buf = xmalloc(READ_BUF);
	struct err e = ERR_INIT;

	while (!__atomic_load_n(&p->failed, __ATOMIC_RELAXED)) {
		size_t i = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED);

		if (i >= p->ntodo)
			break;
		if (hash_one(p, p->todo[i], buf, &e))
			break;
	}
	free(buf);
	pthread_mutex_lock(&p->mu);
	p->running--;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static unsigned pick_threads(const struct idx *x, size_t ntodo)
{
	long ncpu;
	unsigned n = x->threads;

	if (!n) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		n = ncpu < 2 ? 2 : ncpu > 4 ? 4 : (unsigned)ncpu;
	}
	if (ntodo < INLINE_MAX)
		n = 1;
	return n;
}

/* Commit now?  Every BATCH_NS or BATCH_MAX entries. */
static int batch_due(size_t pending, int64_t last)
{
	return pending >= BATCH_MAX || (pending && time_mono_ns() - last >= BATCH_NS);
}

/* Hash on the calling thread (few files, or threads = 1). */
static void hash_inline(struct pool *p)
{
	void *buf = xmalloc(READ_BUF);
	struct err le = ERR_INIT;
	size_t i, taken = 0;
	int64_t last = time_mono_ns();

	for (i = 0; i < p->ntodo; i++) {
		if (hash_one(p, p->todo[i], buf, &le))
			break;
		if (batch_due(p->ndone - taken, last)) {
			write_batch(p->u, p->done + taken, p->ndone - taken);
			taken = p->ndone;
			last = time_mono_ns();
		}
	}
	free(buf);
	write_batch(p->u, p->done + taken, p->ndone - taken);
}

/* Wait for the workers, committing what they finish as it comes. */
static void collect(struct pool *p)
{
	size_t taken = 0, end;
	int64_t last = time_mono_ns();
	int fin;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->running && !batch_due(p->ndone - taken, last)) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 50000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&p->cv, &p->mu, &ts);
		}
		end = p->ndone;
		fin = !p->running;
		pthread_mutex_unlock(&p->mu);
		/* done[taken..end) is stable: it is only appended to */
		if (fin || end > taken) {
			write_batch(p->u, p->done + taken, end - taken);
			taken = end;
			last = time_mono_ns();
		}
		if (fin)
			return;
		pthread_mutex_lock(&p->mu);
	}
}

/*
 * Hash todo[] on the pool while this thread commits what is done in
 * batches, so a run killed midway keeps most of its work and no write
 * transaction is long.  The stale keys go with the first batch.
 */
static int hash_all(struct upd *u, const size_t *todo, size_t ntodo, struct err *e)
{
	struct pool p;
	pthread_t tids[IDX_THREADS_MAX];
	unsigned nt = pick_threads(u->x, ntodo), started = 0, i;
	int ret = 0;

	memset(&p, 0, sizeof(p));
	p.u = u;
	p.todo = todo;
	p.ntodo = ntodo;
	p.done = xreallocarray(NULL, ntodo ? ntodo : 1, sizeof(*p.done));
	p.rootfd = open(u->w->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (p.rootfd < 0) {
		ret = err_errno(e, "cannot open %s", u->w->root);
		free(p.done);
		return ret;
	}
	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.cv, NULL);

	if (nt > sizeof(tids) / sizeof(tids[0]))
		nt = sizeof(tids) / sizeof(tids[0]);
	if (nt > 1) {
		pthread_mutex_lock(&p.mu);
		for (i = 0; i < nt; i++) {
			if (pthread_create(&tids[i], NULL, worker, &p))
				break;
			started++;
			p.running++;
		}
		pthread_mutex_unlock(&p.mu);
	}
	if (started) {
		collect(&p);
		for (i = 0; i < started; i++)
			pthread_join(tids[i], NULL);
	} else {
		hash_inline(&p);
	}
	u->st.hashed = p.ndone;
	u->st.bytes_hashed = p.bytes;
	if (err_isset(&p.err)) {
		*e = p.err;
		ret = e->code;
	}
	close(p.rootfd);
	pthread_mutex_destroy(&p.mu);
	pthread_cond_destroy(&p.cv);
	free(p.done);
	return ret;
}

/*
 * Leave the small files of todo for the caller (idx_set_defer) when there
 * are many: keep their keys, take them out of todo.  Returns the new
 * count.  A few are hashed here as usual, so that an edit or two still
 * gives every frame its key before the pack starts.
 */
static size_t defer(struct upd *u, size_t *todo, size_t ntodo)
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

/*
 * Write the entries of the files f[sel[0..n)] of w (hashed ones), their
 * keys encoded a batch of BATCH_DEFERRED at a time.  Returns the number
 * written.
 */
static uint64_t store_files(struct idx *x, struct walk_result *w, struct fent *f,
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
		write_batch(&u, sel + i, j);
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
static uint64_t store_all(struct idx *x, struct walk_result *w, int64_t started)
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
	written = store_files(x, w, f, sel, n, started);
	free(f);
	free(sel);
	return written;
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
	written = store_files(x, w, x->df, done, n, x->dstarted);
	if (x->rebuilds != rebuilds && x->env && !x->nowrite)
		written = store_all(x, w, x->dstarted);
	if (st)
		st->written += written;
	free(done);
	x->ndf = 0;
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
	if (path_inside(x->real, w->root))
		return err_set(e, ERR_USAGE,
			       "the index directory %s is inside the context %s; "
			       "put it elsewhere with --index or CTXPACK_INDEX",
			       x->dir, w->root);
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
	u.f = xreallocarray(NULL, u.nf ? u.nf : 1, sizeof(*u.f));
	todo = xreallocarray(NULL, u.nf ? u.nf : 1, sizeof(*todo));
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
		    key_cmp(fkey(&u, u.nf - 2), u.f[u.nf - 2].klen,
			    fkey(&u, u.nf - 1), f->klen) >= 0)
			sorted = 0;
	}
	if (!sorted)
		sort_files(&u);

	if (x->env && !w->replayed) {
		lookup(&u, todo, &ntodo);
		filter_stale(&u, plen);
	} else if (x->env) {
		lookup_some(&u, todo, &ntodo);
	} else {
		for (ntodo = 0; ntodo < u.nf; ntodo++)
			todo[ntodo] = ntodo;
	}
	rebuilds = x->rebuilds;
	if (x->defer_max)
		ntodo = defer(&u, todo, ntodo);
	if (ntodo || u.nstale)
		ret = hash_all(&u, todo, ntodo, e);
	if (!ret && x->rebuilds != rebuilds && x->env && !x->nowrite)
		u.st.written = store_all(x, w, u.started);

	if (st)
		*st = u.st;
	free(todo);
	free(u.f);
	buf_release(&u.keys);
	buf_release(&u.stale);
	return ret;
}
