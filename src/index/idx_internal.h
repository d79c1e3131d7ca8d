/*
 * Internals of the content index shared by its files: idx_lmdb.c (checks
 * of LMDB's file format), idx_guard.c (the fault guard), idx_codec.c (the
 * records' encoding), and the handle and one update, one job a file:
 * idx_env.c (one LMDB environment, checked before LMDB trusts it),
 * idx_open.c (the handle: locking, rebuilding a damaged environment),
 * idx_update.c (the update pass), idx_lookup.c (the lookup),
 * idx_pool.c (the reader pool), idx_write.c (batched writes and their
 * damage checks), idx_defer.c (files left for the packer to hash).
 * Not for other modules (scripts/check-includes); the unit tests include
 * it.  docs/index.md, "A damaged index", says why each exists.
 */
#ifndef CTXPACK_IDX_INTERNAL_H
#define CTXPACK_IDX_INTERNAL_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <lmdb.h>

#include "ctxpack/index.h"

/* idx_open's flag, for tests: start with a 64 KiB map so that growing it
 * on MDB_MAP_FULL is exercised at once. */
#define IDX_SMALL_MAP (1u << 0)

/* The index directory as opened (borrowed until idx_close). */
const char *idx_dir(const struct idx *x);

/* ---- idx_lmdb.c: LMDB's data file, checked before LMDB reads it ----
 *
 * The format is LMDB 0.9's (data version 1) on a 64-bit host, the only
 * one liblmdb 0.9 writes here.  Pages 0 and 1 are meta pages (commit N
 * writes meta N % 2; the newer one is the snapshot); the others belong
 * to the free-page tree (database 0), the main tree (database 1) or a
 * free-list record, each exactly once.
 */
#define IDX_LM_META_LEN 152       /* header and meta of a meta page */
#define IDX_LM_NONE UINT64_MAX    /* no root: an empty tree */
#define IDX_LM_DEPTH_MAX 32       /* LMDB's cursor stack */

struct idx_lm_db {
	uint32_t pad;     /* the page size, in database 0 */
	uint16_t flags;   /* database flags */
	uint16_t depth;
	uint64_t branch, leaf, overflow; /* page counts */
	uint64_t entries;
	uint64_t root;    /* IDX_LM_NONE when empty */
};

struct idx_lm_meta {
	uint64_t pgno;    /* the page header's page number */
	uint16_t pflags;  /* the page header's flags */
	uint32_t magic, version;
	uint64_t address; /* a fixed map's address: 0 here */
	struct idx_lm_db db[2];
	uint64_t last_pg; /* the last page in use */
	uint64_t txnid;   /* the commit that wrote it */
};

/* Decode a meta page image (IDX_LM_META_LEN bytes, host order). */
void idx_lm_meta_decode(const unsigned char *p, struct idx_lm_meta *m);

/* Meta page 0's page size, which says where meta page 1 is: 0 (with why)
 * when meta 0 is not a meta page or the size is not one LMDB uses. */
unsigned idx_lm_page_size(const struct idx_lm_meta *m0, char *why, size_t n);

/*
 * Check both meta pages of a data file of fsize bytes, before LMDB is
 * given the file: page numbers, flags, magic, version, a page size that
 * is a power of two from 4 KiB to 32 KiB (and the same in both), database
 * flags (none for the main tree, integer keys for the free tree), roots
 * and depths in range, and commit ids that alternate (meta k holds an id
 * of parity k, the two one apart; 0 and 0 in a new file).  Returns the
 * index of the newer meta, or -1 with why (n bytes) set.
 */
int idx_lm_metas_check(const struct idx_lm_meta m[2], uint64_t fsize, char *why,
		       size_t n);

/* Where the tree checks read pages: npg pages from pgno (inside the
 * file: the checks see to that), into the buffer of slot (0..
 * IDX_LM_SLOTS-1; what an earlier read into another slot returned stays
 * valid), or NULL on a read error. */
struct idx_lm_src {
	const unsigned char *(*read)(void *ctx, uint64_t pgno, uint64_t npg, unsigned slot);
	void *ctx;
	uint64_t size;    /* the file's size */
};
#define IDX_LM_SLOTS (IDX_LM_DEPTH_MAX + 1)

/* A source reading a data file with pread (a syscall a page, which costs
 * less than first touching the page through a map). */
struct idx_lm_file {
	struct idx_lm_src src;
	int fd;
	unsigned psize;
	unsigned char *slot[IDX_LM_SLOTS];
	size_t cap[IDX_LM_SLOTS];
};
void idx_lm_file_init(struct idx_lm_file *f, int fd, unsigned psize, uint64_t size);
void idx_lm_file_release(struct idx_lm_file *f);
const unsigned char *idx_lm_file_read(void *ctx, uint64_t pgno, uint64_t npg, unsigned slot);

struct idx_lm_key {
	const unsigned char *p;
	size_t n;
};

enum idx_lm_mode {
	/* On open: the free tree whole, the main tree's branch pages (its
	 * leaves' page numbers are checked, their contents not): what a
	 * truncation or a damaged branch shows in, at a small part of a
	 * lookup's cost. */
	IDX_LM_OPEN,
	/* Before a write: that, and the leaves the keys (sorted) lead to
	 * and their neighbours, which is every page LMDB's write will read
	 * or change (a delete may merge a leaf with a neighbour). */
	IDX_LM_WRITE,
	/* Every page (the tests). */
	IDX_LM_ALL,
};

/*
 * Check the two trees of snapshot m: every page read lies within the
 * file and below the last page, is reached once, has the right header,
 * node offsets and sizes inside it, nodes filling it from the top
 * exactly, keys in ascending order within the bounds its parents set,
 * leaves at the tree's depth; the free-page tree's records, overflow
 * pages, and the pages they list (in range, in no tree); page counts as
 * the meta says, and every page up to the last in exactly one place.
 * Returns 0, or -1 with why (n bytes) saying what is wrong and where.
 */
int idx_lm_check(const struct idx_lm_src *src, const struct idx_lm_meta *m, int mode,
		 const struct idx_lm_key *keys, size_t nkeys, char *why, size_t n);

/* ---- idx_guard.c: a fault while touching the index ----
 *
 * LMDB trusts the pages it reads: a damaged leaf can send it past the
 * end of the file (SIGBUS), through a NULL pointer (SIGSEGV) or into an
 * assertion (abort).  Around the code that touches the index, a guard
 * turns those into an error the caller handles:
 *
 *   struct idx_guard g;
 *   if (sigsetjmp(g.jb, 1)) {
 *           ... g.sig says what happened; the guard is already off ...
 *   }
 *   idx_guard_arm(&g);
 *   ... LMDB calls ...
 *   idx_guard_disarm(&g);
 *
 * Per thread: a fault on a thread with no armed guard (a bug elsewhere,
 * a reader thread) goes to the disposition that was there before, as if
 * no guard existed.  Locals changed between sigsetjmp and the fault must
 * be volatile (or kept in memory the fault path reads).
 */
struct idx_guard {
	sigjmp_buf jb;
	struct idx_guard *prev;
	int sig;            /* SIGBUS, SIGSEGV, or SIGABRT (an LMDB assertion) */
};

/* Install the handlers where they are not (arming does this too). */
void idx_guard_init(void);
void idx_guard_arm(struct idx_guard *g);
void idx_guard_disarm(struct idx_guard *g);
/* For LMDB's assertion callback: jump to the armed guard with SIGABRT,
 * or return (LMDB then aborts) when none is armed. */
void idx_guard_assert(void);
/* "SIGBUS", "SIGSEGV", "an assertion" */
const char *idx_guard_what(int sig);

/* ---- records ---- */

/* The same as 16 raw bytes (XXH128 canonical, big-endian). */
void idx_context_hash(const struct walk_result *w, unsigned char out[16]);

/*
 * The record encoding and the reuse rules (the index module and its unit
 * tests).
 *
 * Keys: ROOT '\0' PATH', where ROOT is the context's real path (or, when
 * longer than IDX_ROOT_MAX bytes, '#' and the 32 hex digits of its
 * XXH3-128) and PATH' the relative path with every '/' turned into '\0'.
 * ROOT holds no NUL, so the first NUL ends it: one root's entries are
 * contiguous (they all start with ROOT '\0'), and memcmp order of PATH'
 * is the archive order (a directory's children come right after it,
 * before its next sibling, whatever bytes the names hold).  A key longer
 * than IDX_KEY_MAX is cut to its first IDX_KEY_MAX - 16 bytes plus the
 * XXH3-128 of the whole key.  Meta records start with '\0' and sort before
 * every entry.
 */
#define IDX_KEY_MAX 511  /* LMDB's default maximum key size */
#define IDX_ROOT_MAX 255

/* Writes ROOT '\0' into out (at least IDX_ROOT_MAX + 1 bytes); returns the
 * length. */
size_t idx_key_prefix(unsigned char *out, const char *root, size_t rootlen);
/* Writes the whole key into out (IDX_KEY_MAX bytes); returns the length. */
size_t idx_key_encode(unsigned char *out, const char *root, size_t rootlen,
		      const char *path, size_t pathlen);
/* The keys sort as walk_path_cmp (walk.h) orders paths: the archive's
 * order, which the context digest follows too. */

/* One index entry (the value of a key). */
struct idx_rec {
	uint64_t dev;
	uint64_t ino;
	uint64_t size;
	int64_t mtime_ns;
	int64_t ctime_ns;
	int64_t written_ns; /* when the hashing run that wrote it started */
	uint32_t mode;      /* st_mode */
	unsigned char hash[16];
};

/*
 * Values: IDX_VAL_LEN bytes, little-endian: u32 check, u32 mode, u64 dev,
 * u64 ino, u64 size, i64 mtime_ns, i64 ctime_ns, i64 written_ns, 16 bytes
 * hash.  check is the low 32 bits of XXH3-64 over the key and the rest of
 * the value, so a value that does not belong to its key or was damaged is
 * not trusted.
 */
#define IDX_VAL_LEN 72
void idx_val_encode(unsigned char out[IDX_VAL_LEN], const unsigned char *key,
		    size_t klen, const struct idx_rec *r);
/* 0, or -1 when the size or the check is wrong. */
int idx_val_decode(struct idx_rec *r, const unsigned char *key, size_t klen,
		   const void *val, size_t vlen);

/* 1 when the stat fields of we (size, mtime ns, ctime ns, ino, mode) equal
 * r's.  dev is left out (as git does): it changes across reboots and bind
 * mounts of network and overlay filesystems. */
int idx_rec_matches(const struct idx_rec *r, const struct walk_entry *we);

/* The racy rule of index.h applied to a record. */
int idx_rec_racy(const struct idx_rec *r);

/* ---- the handle (idx_open.c) and its environment (idx_env.c) ---- */

/* Bump when the key or value encoding changes: an index of another
 * schema is rebuilt, never read. */
#define IDX_SCHEMA_VERSION 1
#define IDX_SCHEMA_KEY "\0ctxpack-index"
#define IDX_SCHEMA_KEY_LEN (sizeof(IDX_SCHEMA_KEY) - 1)

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

/* Add to idx_warning()'s text ("; " between two). */
void idx_add_warning(struct idx *x, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The schema record's value into out; returns its length. */
int idx_schema_val(char *out, size_t cap);

/*
 * Open x->dir's environment and check it (LMDB's file before LMDB reads
 * it, then the schema record, written with the first entries into an
 * empty one: x->need_schema).  Any failure leaves x->env NULL and says
 * why in e: ERR_CORRUPT when data.mdb is damaged (rebuild it), else
 * ERR_FAIL with e->saved_errno ENOSPC when there is no room to use it,
 * else ERR_FAIL.
 */
int idx_env_try(struct idx *x, struct err *e);
/* Close the environment (x->env NULL after; none is a no-op). */
void idx_env_close(struct idx *x);
/* Drop it without touching it: after a fault in a write transaction its
 * state is unknown (idx_env.c says why). */
void idx_env_abandon(struct idx *x);
/* Begin a transaction, adopting a map grown by another process: an LMDB
 * code. */
int idx_txn_begin(struct idx *x, unsigned flags, MDB_txn **txn);
/* Double the map (on MDB_MAP_FULL): 0, else not 0. */
int idx_map_grow(struct idx *x);
/* 1 when err (an errno or LMDB code) means a full disk or quota. */
int idx_nospace(int err);
/*
 * Check the trees of txn's snapshot (idx_lm_check in mode, with keys for
 * IDX_LM_WRITE; writing: txn is a write transaction), reading data.mdb
 * with pread.  0, or ERR_CORRUPT with the reason; runs under the
 * caller's guard.
 */
int idx_snapshot_check(struct idx *x, MDB_txn *txn, int writing, int mode,
		       const struct idx_lm_key *keys, size_t nkeys, struct err *e);

/*
 * Damage found after open (a lookup, the check before a write, a fault):
 * the environment is closed (abandoned with abandon set) and rebuilt, or
 * the handle goes on without an index (a warning).  Never fails.
 */
void idx_env_damaged(struct idx *x, const char *why, int abandon);

/* The index directory for dir as idx_open picks it (dir, else
 * $CTXPACK_INDEX, else the XDG default); malloc'd.  Creates nothing. */
char *idx_dir_for(const char *dir);

/* ERR_USAGE naming dir when real (the index directory's real path, or
 * NULL: unknown) is root or below it; else 0. */
int idx_dir_inside(const char *dir, const char *real, const char *root, struct err *e);

/* ---- one update (idx_update.c and the files it calls) ---- */

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

/* Key order: memcmp, a shorter key first on a tie (inline: the lookup
 * compares a key per file). */
static inline int idx_key_cmp(const void *a, size_t an, const void *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);

	return c ? c : (an > bn) - (an < bn);
}

/* The key of file i of u. */
static inline const unsigned char *idx_upd_key(const struct upd *u, size_t i)
{
	return (const unsigned char *)u->keys.data + u->f[i].koff;
}

/* idx_lookup.c.  The lookup of u's files (sorted by key) in one read
 * transaction: fills the hashes it can trust, puts the indexes of the
 * rest in todo (*ntodo of them) and the root's keys that name no included
 * regular file in u->stale.  A damaged index is rebuilt, and then every
 * file is in todo. */
void idx_lookup(struct upd *u, size_t *todo, size_t *ntodo);
/* The same for a replayed walk: each file looked up by its key, nothing
 * stale. */
void idx_lookup_some(struct upd *u, size_t *todo, size_t *ntodo);
/* Keep in u->stale only the keys whose file is gone or no longer a
 * regular file (plen: the root's key prefix). */
void idx_filter_stale(struct upd *u, size_t plen);

/* idx_pool.c.  Hash the files todo[0..ntodo) of u on the reader pool,
 * committing them in batches (idx_write_batch) as they are done; the
 * stale keys go with the first.  Fails as idx_update does for a file. */
int idx_hash_all(struct upd *u, const size_t *todo, size_t ntodo, struct err *e);

/* idx_write.c.  Write the entries of u's files done[0..n) and delete the
 * stale keys; damage found rebuilds the index and writes there; a
 * failure only turns writing off (a warning). */
void idx_write_batch(struct upd *u, const size_t *done, size_t n);
/* Write the entries of the files f[sel[0..n)] of w, their keys encoded a
 * batch at a time, with written time started.  Returns the number
 * written. */
uint64_t idx_store_files(struct idx *x, struct walk_result *w, struct fent *f,
			 const size_t *sel, size_t n, int64_t started);
/* Write the entries of every hashed included regular file of w (after a
 * rebuild in the middle of a run).  Returns the number written. */
uint64_t idx_store_all(struct idx *x, struct walk_result *w, int64_t started);

/* idx_defer.c.  Take the small files of todo out for the caller
 * (idx_set_defer) when there are many; returns the new count. */
size_t idx_defer(struct upd *u, size_t *todo, size_t ntodo);


#endif
