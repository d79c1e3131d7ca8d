/*
 * walk: the context walker.  Picks the ignore file, parses it, and walks the
 * context with openat/getdents64/fstatat relative to directory fds, in
 * bytewise-sorted order per directory (depth-first, the archive order),
 * never following symlinks inside the context, pruning excluded directories
 * unless an exception could re-include something below them.  Big trees
 * are walked by a few threads; the result is the same as one thread's.
 */
#ifndef CTXPACK_WALK_H
#define CTXPACK_WALK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ctxpack/util.h"

struct ign;
struct walk_result;

enum walk_type {
	WALK_REG = 1,
	WALK_DIR = 2,
	WALK_LNK = 3,
	/* FIFOs and device nodes are entries, as BuildKit sends them; sockets
	 * are skipped (no tar representation; go-archive drops them too). */
	WALK_FIFO = 4,
	WALK_CHR = 5,
	WALK_BLK = 6,
};

struct walk_entry {
	const char *path;   /* relative, '/'-separated, no trailing '/'; arena-owned */
	const char *link;   /* symlink target (raw bytes), NULL otherwise; arena-owned */
	uint32_t path_len;
	uint32_t link_len;
	uint8_t type;       /* enum walk_type */
	uint8_t excluded;   /* 1: left out by the ignore file (only with WALK_EXCLUDED) */
	uint8_t hashed;     /* hash[] holds the content hash: 1 set by the index,
			       2 by the packer from the bytes it archived */
	uint8_t depth;      /* number of '/' in path (0 for top-level), capped at 255 */
	int32_t deciding;   /* deciding pattern index, or -1 */
	uint32_t mode;      /* st_mode as found */
	uint32_t nlink;
	uint64_t size;      /* st_size (regular files and symlinks) */
	int64_t mtime_ns;
	int64_t ctime_ns;
	uint64_t dev;
	uint64_t ino;
	uint64_t rdev;      /* device number (WALK_CHR, WALK_BLK) */
	unsigned char hash[16]; /* xxh3-128 of the content or link target (index) */
};

enum walk_flags {
	/* Also record excluded entries (marked excluded=1).  Excluded
	 * directories that would be pruned are recorded but not entered,
	 * unless WALK_FULL is given too. */
	WALK_EXCLUDED = 1 << 0,
	/* Enter every excluded directory (for the du report). */
	WALK_FULL = 1 << 1,
	/* Names and types only (from readdir's d_type): no stat where the
	 * type is known, so mode, size, times, ino and link stay 0/NULL.
	 * Readability of included files is still checked (access(2)) unless
	 * running as root.  For listings that print names only. */
	WALK_TYPES_ONLY = 1 << 2,
	/* For tests: split the walk into subtree tasks at every chance (any
	 * depth, from the first name on, a long queue), so that small trees
	 * exercise the parallel walk.  Same result. */
	WALK_SPLIT_EAGER = 1 << 3,
};

/* The most walker threads walk_opts.threads may ask for. */
#define WALK_THREADS_MAX 16

struct walk_opts {
	const char *dir;         /* context directory; NULL = "." */
	const char *dockerfile;  /* -f value; NULL = "Dockerfile" */
	const char *ignore_file; /* --ignore-file; NULL = the rules below */
	unsigned flags;          /* enum walk_flags */
	/* Threads walking the tree, the calling one included: 0 = the number
	 * of online CPUs, at most 4; 1 = serial; capped at WALK_THREADS_MAX.
	 * Extra threads only start once the walk has seen a few hundred
	 * names.  The result does not depend on it. */
	unsigned threads;
	/* When set, called for every included entry but directories once its
	 * stat is known, from the walking threads, concurrently and in no
	 * particular order: a hint for work that may start early (the frame
	 * store's look-ahead).  we is valid during the call only. */
	void (*seen)(void *ctx, const struct walk_entry *we);
	void *seen_ctx;
	/* When set, called once the root is open (rootfd, borrowed) and the
	 * ignore file parsed, before the tree is walked: it may fill r->v and
	 * r->n with exactly the entries the walk would find (strings from
	 * walk_result_alloc), set r->replayed and return 1, and the tree is
	 * not walked; 0 walks it.  The index's snapshots (idx_snap_replay,
	 * issue 15) answer an unchanged tree this way. */
	int (*replay)(void *ctx, const struct walk_opts *o, struct walk_result *r,
		      int rootfd);
	void *replay_ctx;
};

/*
 * The stat fields of we (type, mode, size, times, ids) from st, as the
 * walk sets them; the type, or 0 for a socket (not an entry).  A
 * symlink's target and size are the caller's to set.
 */
struct stat;
int walk_fill_stat(struct walk_entry *we, const struct stat *st);

/*
 * The result: entries in archive order (parents before children, each
 * directory's children bytewise-sorted by name).  Included entries only,
 * unless WALK_EXCLUDED.
 */
struct walk_result {
	struct walk_entry *v;
	size_t n;
	size_t alloc;
	char *root;          /* real path of the context directory */
	char *ignore_path;   /* the ignore file in use (as opened), or NULL */
	char *ignore_rel;    /* its path relative to root when inside it, else NULL */
	char *dockerfile_rel;/* the Dockerfile relative to root, or NULL when outside */
	struct ign *ign;     /* the parsed patterns (never NULL after walk_run) */
	uint64_t n_excluded_files;
	uint64_t n_excluded_bytes;
	uint64_t n_sockets_skipped;
	/* 1: the entries came from walk_opts.replay, not from a walk; entries
	 * with hashed set hold their content hash already */
	int replayed;
	void *arena;         /* private */
};

/*
 * Which ignore file applies (dockerignore.md section 1, BuildKit):
 *  --ignore-file F when given; else "<dockerfile>.dockerignore" when it
 *  exists (the -f path with ".dockerignore" appended, resolved against the
 *  working directory like docker's -f); else "<dir>/.dockerignore" when it
 *  exists; else none.  Symlinked ignore files are followed.
 * Then the patterns are parsed (errors name file:line: pattern: reason),
 * then the tree is walked.  Any error (missing or non-directory context,
 * unreadable included directory or file, path too long) fails the whole
 * walk: no partial result is returned as complete.
 * When several errors could be hit, the one first in walk order is
 * reported, as a serial walk would.
 * r is zeroed first and must be released with walk_release() whether the
 * walk succeeded or not.
 */
int walk_run(const struct walk_opts *o, struct walk_result *r, struct err *e);
void walk_release(struct walk_result *r);

/* n bytes owned by r (freed by walk_release), for a replay's strings. */
void *walk_result_alloc(struct walk_result *r, size_t n);

/* Sorting helper: the archive-order comparison of two relative paths. */
int walk_path_cmp(const char *a, size_t alen, const char *b, size_t blen);

/* True when the entry is a regular file with any exec bit. */
static inline int walk_is_exec(const struct walk_entry *we)
{
	return (we->mode & 0111) != 0;
}

#endif
