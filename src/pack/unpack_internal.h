/*
 * Internals of the extractor (include/ctxpack/unpack.h), shared by its
 * files: unpack.c (the driver), unpack_entry.c (one entry),
 * unpack_pool.c (the writer threads), unpack_fs.c (file steps),
 * unpack_final.c (the end steps) and unpack_feed.c (the input).
 * Not for other modules (scripts/check-includes).
 */
#ifndef CTXPACK_UNPACK_INTERNAL_H
#define CTXPACK_UNPACK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ctxpack/unpack.h"

struct archive;
struct archive_entry;

/* Files up to this size are written by the writer threads. */
#define UNPACK_SMALL_FILE (1u << 20)

/*
 * A directory the extraction holds open: in the chain of the current
 * entry's parents, and in each queued file job that goes into it.  Closed
 * when the last holder lets go.
 */
struct dnode {
	int fd;
	int owned;  /* 0 for the root, which is the caller's */
	int refs;   /* atomic */
};

/* A small file for a worker to write. */
struct job {
	struct dnode *dir;
	char *name;        /* the clean name, for messages; base points into it */
	const char *base;
	char *data;
	size_t size;
	mode_t mode;
	uint64_t seq;      /* submission order */
};

/*
 * Names of the files queued since the last drain, each with its job's seq,
 * so that whatever depends on one of them waits for the writers first.
 * Names whose job is done are dropped when the set grows past PSET_PURGE,
 * so its size follows the queue, not the number of files.
 */
struct pent {
	char *name;
	uint64_t seq;
};
struct pset {
	struct pent *v;
	size_t cap, n;
};
#define PSET_PURGE 2048

/* A directory whose mode is set at the end. */
struct dmode {
	char *path;        /* clean name; "" for the root */
	mode_t mode;
	size_t depth, idx;
};

/* The writer pool (unpack_pool.c) and the input (unpack_feed.c). */
struct pool;
struct up_feeder;

/* One extraction's state, the main thread's. */
struct unpacker {
	struct dnode *dirs[UNPACK_MAX_DEPTH + 1]; /* dirs[0]: the root */
	char *names[UNPACK_MAX_DEPTH]; /* names[i]: the directory dirs[i + 1] is */
	size_t depth;                  /* open levels below the root */
	struct buf name;               /* the current entry's clean name */
	struct buf links;              /* safe_links: clean names of symlinks,
					  NUL-separated */
	mode_t um;                     /* the process umask */
	struct pool *pool;             /* NULL: everything inline */
	struct pset pending;
	uint64_t seq;                  /* of the next job */
	struct dmode *dmodes;          /* directory modes to set at the end */
	size_t ndmodes, dmodes_cap;
	struct archive *a;
	const struct unpack_opts *o;
	struct unpack_stats *st;
	struct err *e;
};

/* ---- unpack_pool.c: open directories, pending names, the writers ---- */

/* A held directory with one reference (owned: closed with the last). */
struct dnode *up_dnode_new(int fd, int owned);
struct dnode *up_dnode_get(struct dnode *d);
/* Drop a reference; NULL is a no-op. */
void up_dnode_put(struct dnode *d);

int up_pset_has(const struct pset *p, const char *s);
void up_pset_add(struct pset *p, const char *s, uint64_t seq);
/* Rebuild with room for one more, keeping the names whose seq is at
 * least keep_from (the others' files are written). */
void up_pset_rebuild(struct pset *p, uint64_t keep_from);
void up_pset_clear(struct pset *p);
void up_pset_release(struct pset *p);

/* A job and what it holds (its directory reference, name and data). */
void up_job_free(struct job *j);

/* Start n writer threads creating files under umask um (fewer when a
 * thread cannot start; none at all writes nothing: callers ask for 2+). */
struct pool *up_pool_new(unsigned n, mode_t um);
/* The seq of the oldest job not written yet (UINT64_MAX when none). */
uint64_t up_pool_oldest(struct pool *p);
/* Queue a job (taking it), waiting for room; an earlier worker failure
 * comes back instead. */
int up_pool_submit(struct pool *p, struct job *j, struct err *e);
/* Wait until every queued file is written; a worker failure is returned. */
int up_pool_drain(struct pool *p, struct err *e);
/* Stop the workers, dropping what is still queued; NULL is a no-op. */
void up_pool_free(struct pool *p);

/* ---- unpack_fs.c: file steps, usable from any thread ---- */

/* Remove an earlier file or symlink where a new entry goes; never a
 * directory (ERR_CORRUPT).  shown names it in messages. */
int up_make_room(int dfd, const char *base, const char *shown, struct err *e);
/* Does mode need an explicit chmod after a create under umask um? */
int up_needs_chmod(mode_t mode, mode_t um);
/* Create base in dfd for writing, never through a symlink, replacing an
 * earlier file or symlink of that name: the fd, or an err. */
int up_create_file(int dfd, const char *base, const char *shown, mode_t mode,
		   struct err *e);
/* Give fd its final size (end: the bytes written, size: declared) and
 * exact mode, and close it (always). */
int up_finish_file(int fd, const char *shown, uint64_t end, uint64_t size, mode_t mode,
		   mode_t um, struct err *e);

/* ---- unpack_entry.c: one entry ---- */

/* Extract ent (its data read from a) below u's root. */
int up_extract_entry(struct unpacker *u, struct archive *a, struct archive_entry *ent);
/* Close the chain of open parent directories down to keep levels. */
void up_chain_trim(struct unpacker *u, size_t keep);
/* The stream's bounds: its length (max_stream) and the deadline. */
int up_check_stream(struct unpacker *u);

/* ---- unpack_final.c: after the last entry ---- */

/* Set path's mode (a clean name, "" for the root) at the end. */
void up_defer_mode(struct unpacker *u, const char *path, mode_t mode);
/* The deferred directory modes, children before parents, the root last. */
int up_apply_modes(struct unpacker *u);
/* safe_links: refuse a symlink the kernel resolves outside the root. */
int up_check_links(struct unpacker *u);

/* ---- unpack_feed.c: the input ---- */

/* Start reading fd (or, with fd -1, the n bytes at p), decompressing zstd
 * in a thread of its own; NULL and an err when the thread cannot start. */
struct up_feeder *up_feeder_start(int fd, const void *p, size_t n, struct err *e);
/* Open the archive reader a on f (archive_read_open's result). */
int up_feeder_open(struct up_feeder *f, struct archive *a);
/* Stop and free f (after the reader is freed).  Returns ret, or the
 * input's own failure when both failed (it explains libarchive's). */
int up_feeder_finish(struct up_feeder *f, int ret, struct err *e);

/*
 * The name rule: clean an archive entry name into out (reset first):
 * "./a//b/" -> "a/b".  Returns 0, 1 when the name is the root itself
 * ("", ".", "./"), or ERR_CORRUPT (message set) for an absolute name, a
 * ".." component or too deep a name.
 */
int unpack_clean_name(const char *name, struct buf *out, struct err *e);

/*
 * The lexical link rule: 1 when a symlink at the clean name path with
 * target target stays inside the root (resolving "." and ".." against
 * the link's own directory, never climbing above the root), 0 when the
 * target is absolute, empty or leaves the root.
 */
int unpack_link_inside(const char *path, const char *target);

#endif
