/*
 * index: the content index, an LMDB stat cache of xxh3-128 content hashes,
 * and the context digest.  The index module (src/index/); the only
 * code that includes <lmdb.h> and <xxhash.h>.  Design notes: docs/index.md.
 *
 * Usage:
 *   struct idx *x;
 *   if (idx_open(&x, NULL, 0, &e)) ... fail
 *   if (idx_warning(x)) print it (the index was rebuilt, or is not in use)
 *   walk_run(&wo, &w, &e);
 *   if (idx_update(x, &w, &st, &e)) ... fail (e names the file)
 *   idx_context_digest(&w, digest);
 *   idx_close(x);
 *
 * One LMDB environment (default $XDG_CACHE_HOME/ctxpack/index) holds the
 * entries of every context root on the machine.  Several processes may use
 * it at once.  An index that cannot be opened, has another schema
 * version, or turns out damaged (at open, in a lookup, before a write) is
 * rebuilt (emptied) with a warning; nothing from it is trusted, and a
 * damaged file never crashes the process (docs/index.md, "A damaged
 * index").
 */
#ifndef CTXPACK_INDEX_H
#define CTXPACK_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "ctxpack/util.h"
#include "ctxpack/walk.h"

struct idx;

/*
 * Open (creating when needed) the index in dir; NULL means $CTXPACK_INDEX
 * when set and not empty, else $XDG_CACHE_HOME/ctxpack/index (or
 * ~/.cache/ctxpack/index).  The directory is created with its parents.
 *
 * An environment that fails to open, fails the checks of its file or
 * whose schema record is missing or of another version is removed and
 * created anew; idx_warning() then says why.  When it cannot be rebuilt
 * because other processes keep it open for more than a few seconds, or
 * the disk has no room for it, the handle works without an index (every
 * file is hashed, nothing is stored) and idx_warning() says so.
 *
 * Returns 0 and sets *out (free it with idx_close), or an error (the
 * directory cannot be created or locked, or the rebuild failed) naming the
 * directory, with *out NULL.
 */
int idx_open(struct idx **out, const char *dir, unsigned flags, struct err *e);
/* flags: 0 (the one flag is for the unit tests: idx_internal.h) */

/*
 * Fails with ERR_USAGE ("the index directory D is inside the context R")
 * when the index directory (dir as for idx_open) is, or once created would
 * be, root or below it; root is a real path (walk_result.root).  Creates
 * nothing: call it before idx_open so a misplaced index is never made.
 */
int idx_check_dir(const char *dir, const char *root, struct err *e);

/* Close the index; NULL is a no-op.  Fails never (a cache). */
void idx_close(struct idx *x);

/*
 * A warning for the user, or NULL: the index was rebuilt (and why), is not
 * in use, or could not be updated (a full disk).  Borrowed until
 * idx_close; the library never prints it.
 */
const char *idx_warning(const struct idx *x);

/* Reader threads for idx_update: 0 (the default) picks the number of CPUs,
 * kept within 2..4; 1 hashes on the calling thread only; more than
 * IDX_THREADS_MAX counts as IDX_THREADS_MAX (many help only when the page
 * cache is cold: reads then need queue depth, not CPU). */
#define IDX_THREADS_MAX 16
void idx_set_threads(struct idx *x, unsigned n);

struct idx_stats {
	uint64_t entries;      /* included entries in the walk result */
	uint64_t files;        /* regular files among them */
	uint64_t symlinks;     /* symlinks among them (hashed from the target) */
	uint64_t hashed;       /* files read and hashed in this run */
	uint64_t reused;       /* files whose hash came from the index */
	uint64_t racy;         /* of hashed: stat matched but the entry was racy */
	uint64_t bytes_hashed; /* bytes read from hashed files */
	uint64_t dropped;      /* index entries deleted (gone, or no longer files) */
	uint64_t written;      /* index entries written */
	uint64_t deferred;     /* files left unhashed for the caller (idx_set_defer) */
};

/*
 * Fill w->v[i].hash and set w->v[i].hashed = 1 for every included regular
 * file and symlink of w (excluded entries are left alone).  Symlinks hash
 * their target string (w->v[i].link); regular files are looked up under
 * the key (w->root, path) and read only when their stat fields (size,
 * mtime ns, ctime ns, ino, mode; not dev) differ from the stored ones or
 * the stored entry is racy (see idx_rec_racy).  Files are read on a small
 * pool of threads (openat relative to the root, O_NOFOLLOW), each once;
 * their entries are written in short batched transactions.  Index entries
 * under w->root that are not included regular files of w are deleted when
 * the file is gone or no longer a regular file (excluded files' entries
 * are kept, unless there are more of them than included files).
 *
 * A file read here gets its size/mtime/ctime/ino/dev in w refreshed from
 * the fstat taken after reading it, so w stays consistent with its hash.
 *
 * An index found damaged on the way (a record failing its check, a page
 * failing the check before a write, a fault in LMDB) is rebuilt and the
 * update goes on in the new one, with a warning (idx_warning).
 *
 * Fails (and leaves the hashes of w incomplete) when a file cannot be
 * opened or read (the message names it), changed while it was read twice
 * in a row (ERR_CHANGED, "file changed while being read: PATH"), or
 * w->root holds the index directory (ERR_USAGE).  Entries hashed before
 * the failure are still stored.  Failing to write the index is not an
 * error: the hashes are right, idx_warning() reports it.
 * st may be NULL.  One idx_update at a time per handle (it runs its own
 * threads); separate handles and processes may run at once.
 */
int idx_update(struct idx *x, struct walk_result *w, struct idx_stats *st,
	       struct err *e);

/*
 * For a caller that reads the files anyway (the packer): when an
 * idx_update finds at least IDX_DEFER_MIN regular files of at most
 * max_size bytes to hash (a first run, a new checkout), it leaves those
 * with hashed 0 instead of reading them, and remembers them.  The caller
 * hashes them from the bytes it reads (idx_hash_bytes, setting hashed),
 * then idx_store_deferred writes the entries of those it hashed, with the
 * stat of the walk and the racy rule of this run.  0 (the default) turns
 * it off.  Fewer such files are hashed as usual.
 */
#define IDX_DEFER_MIN 256
void idx_set_defer(struct idx *x, uint64_t max_size);
void idx_store_deferred(struct idx *x, struct walk_result *w, struct idx_stats *st);

/*
 * The context digest: "xxh128:" and 32 lowercase hex digits (out holds
 * IDX_DIGEST_LEN bytes with the NUL).  XXH3-128 over a format version
 * constant and, for each included entry in archive order (sorted here when
 * w is not), its path, type, the permission bits the archive stores
 * (walk_archive_mode, normalized when w->flags has WALK_NORMALIZE_MODES), size (regular files; 0 otherwise),
 * link target (symlinks, and a hard link's first path), device
 * major/minor (device nodes) and content hash (regular files).  Nothing
 * else: not mtimes, owners, inode numbers or the order the directory
 * listing came in.  Every included regular file and symlink must have
 * hashed set (idx_update does that); an entry without it is hashed as if
 * its content hash were all zeroes.
 */
#define IDX_DIGEST_LEN 40
#define IDX_DIGEST_VERSION 2
void idx_context_digest(const struct walk_result *w, char out[IDX_DIGEST_LEN]);

/*
 * The racy-timestamp rule (git's racy-git, applied to mtime and ctime):
 * an entry (idx_internal.h) is racy, and its file is read again, when the file's mtime or
 * ctime is not older than a window before the start of the run that wrote
 * the entry.  A change within the same timestamp tick as that run could
 * have left every stat field equal; a change after the window cannot,
 * since it moves ctime (which, unlike mtime, no user can set back) past
 * the stored value.  The window is per timestamp: IDX_RACY_COARSE_NS when
 * its nanoseconds are zero (a filesystem keeping whole seconds, or FAT's
 * even ones), else IDX_RACY_FINE_NS, which covers the kernel's file-time
 * clock (a jiffy behind clock_gettime).  Timestamps are assumed to come
 * from this machine's clock (not a skewed NFS server's).
 */
#define IDX_RACY_FINE_NS 250000000LL    /* 250 ms */
#define IDX_RACY_COARSE_NS 2000000000LL /* 2 s */

/*
 * Read and hash one regular file: openat(rootfd, we->path, O_NOFOLLOW),
 * XXH3-128 of the content, then fstat; when size, mtime or ctime differ
 * between the fstat before and after reading (or the bytes read differ
 * from the size), read it once more, then fail with ERR_CHANGED naming
 * it (also when it is gone, or is now a symlink or not a regular file:
 * the walk saw a regular file).  Other failures (EACCES, EIO) name it
 * too.  On success we->hash is set, we->hashed is WALK_HASH_KNOWN, the
 * stat fields of we are refreshed and *nread holds the bytes read.
 * buf is scratch of bufsz bytes (>= 4096).  Thread-safe for distinct
 * entries.
 */
int idx_hash_file(int rootfd, struct walk_entry *we, void *buf, size_t bufsz,
		  uint64_t *nread, struct err *e);

/*
 * The other writers of walk_entry.hashed (enum walk_hash).
 * idx_entry_archived: the packer's content hook, hash of the bytes it
 * archived (p, n).  idx_entry_confirmed: the entry's hash was compared with
 * the bytes archived.  idx_entry_link: a symlink's or hard link's hash, of
 * its target (we->link).
 */
void idx_entry_archived(struct walk_entry *we, const void *p, size_t n);
void idx_entry_confirmed(struct walk_entry *we);
void idx_entry_link(struct walk_entry *we);

/* Report lmdb and libxxhash (util.h, lib_info_fn). */
void idx_lib_info(lib_info_fn fn, void *arg);

/* XXH3-128 of a buffer, canonical (big-endian) bytes. */
void idx_hash_bytes(const void *p, size_t n, unsigned char out[16]);

/* XXH3-64 of a buffer (header checks of the frame store). */
uint64_t idx_hash64(const void *p, size_t n);

/*
 * A streaming XXH3-128 for the modules above the index (the frame store's
 * keys), so that <xxhash.h> stays here.  Lives on the caller's stack, no
 * allocation:  struct idx_hasher h; idx_hasher_init(&h);
 * idx_hasher_update(&h, p, n)...; idx_hasher_final(&h, out).
 */
struct idx_hasher {
	_Alignas(64) unsigned char state[640];   /* an XXH3_state_t */
};
void idx_hasher_init(struct idx_hasher *h);
void idx_hasher_update(struct idx_hasher *h, const void *p, size_t n);
/* Canonical (big-endian) bytes of the digest so far. */
void idx_hasher_final(struct idx_hasher *h, unsigned char out[16]);

/*
 * Snapshots (issue 15, idx_snap.c): the last walk of a context with every
 * entry's stat fields and content hash, one file per context in the index
 * directory (snapshots/), so that a run on an unchanged tree costs one
 * fstatat per entry and nothing else.
 *
 *   struct idx_snap *s = idx_snap_new(index_dir);   before the walk
 *   wo.replay = idx_snap_replay; wo.replay_ctx = s;
 *   walk_run(&wo, &w, &e);
 *   IDX_SNAP_HIT: every hash of w is set, idx_snap_digest() is the digest:
 *           no idx_update needed;
 *   else:   idx_update(x, &w, ...) (for IDX_SNAP_PARTIAL it only reads the
 *           files found changed), and once every hash is set (after a
 *           pack's deferred hashing) idx_snap_store(s, &w);
 *   idx_snap_free(s);
 *
 * The replay (walk_opts.replay) takes part only in walks of the default,
 * classic or 2020-fsutil flavour (not WALK_EXCLUDED, WALK_FULL or
 * WALK_TYPES_ONLY) whose ignore file has no exception (so that no pruned
 * directory could hold an included entry), keyed by the root, the
 * Dockerfile's path, the ignore file's path and bytes and the flavour.
 * It stats every stored entry and the root (in parallel from 2048
 * entries on); the stored walk is replayed
 * only when each directory (the root included) has its stored stat (same
 * inode, mode, size, mtime and ctime: no name was added, removed or
 * renamed in it), every other entry too except regular files rewritten in
 * place, which are replayed with their new stat and hashed 0
 * (IDX_SNAP_PARTIAL).  Otherwise the tree is walked as usual.
 * idx_snap_store writes a snapshot only when every entry and the root are
 * older than the racy window before idx_snap_new (the index's rule, which
 * makes "same stat" mean "same content": a later change moves ctime) and
 * every regular file and symlink is hashed.  Nothing here fails: a
 * snapshot that cannot be read, checked or written is simply not used.
 */
struct idx_snap;
enum idx_snap_result {
	IDX_SNAP_NONE = 0,     /* the tree was walked */
	IDX_SNAP_PARTIAL = 1,  /* replayed; some files changed (hashed 0) */
	IDX_SNAP_HIT = 2,      /* replayed, nothing changed */
};
struct idx_snap *idx_snap_new(const char *dir);
/* Before the walk: its walks have no content hashes (build's directory
 * hand-over, which needs the stat fields only).  They are stored without
 * (every file may be unhashed), replayed with hashed 0 and kept apart from
 * the snapshots with hashes (another key); idx_snap_digest says -1. */
void idx_snap_stat_only(struct idx_snap *s);
void idx_snap_free(struct idx_snap *s);
int idx_snap_replay(void *ctx, const struct walk_opts *o, struct walk_result *r, int rootfd);
int idx_snap_result(const struct idx_snap *s);
/* "walked", "partial" or "hit" (for --json). */
const char *idx_snap_name(int result);
/* The stored context digest (as idx_context_digest) on IDX_SNAP_HIT: 0;
 * else -1. */
int idx_snap_digest(const struct idx_snap *s, char out[IDX_DIGEST_LEN]);
void idx_snap_store(struct idx_snap *s, const struct walk_result *w);
/* The counts idx_update would give for a replayed walk that it need not
 * see (IDX_SNAP_HIT): every file reused, none read. */
void idx_snap_counts(const struct walk_result *w, struct idx_stats *st);

/*
 * Archive digests (idx_snap.c): what an archive key (frames.h,
 * fc_archive_key) packs to, remembered by `cache save` so that a save of
 * content packed before needs no pack to know its blob.  In the index
 * directory (archive-digests/), best effort: get is 0 when found and
 * intact, else -1; put never fails.
 */
struct idx_memo {
	char digest[72];      /* sha256:<hex> of the archive */
	uint64_t bytes;
	uint64_t tar_bytes;
	uint64_t entries;
};
int idx_memo_get(const char *dir, const unsigned char key[16], struct idx_memo *m);
void idx_memo_put(const char *dir, const unsigned char key[16], const struct idx_memo *m);

#endif
