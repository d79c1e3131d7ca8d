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
	/* A regular file that is a hard link to an earlier included entry
	 * (in archive order) of the same inode: link is that entry's path.
	 * Docker's senders (go-archive, fsutil) write such paths as tar
	 * hard links, and the image keeps them linked.  Set by the walk's
	 * last pass unless WALK_NO_HARDLINKS. */
	WALK_HARDLINK = 7,
};

/*
 * Where walk_entry.hash comes from.  The field is written only by the index
 * module (index.h: idx_hash_file, idx_entry_*); the frame store, the CI
 * cache and the packer's hooks read it and set it through those.
 */
enum walk_hash {
	WALK_HASH_NONE = 0,     /* hash[] holds nothing */
	WALK_HASH_KNOWN = 1,    /* from the index's record, or the file read now */
	WALK_HASH_ARCHIVED = 2, /* from the bytes the packer put in the archive */
};

struct walk_entry {
	const char *path;   /* relative, '/'-separated, no trailing '/'; arena-owned */
	const char *link;   /* symlink target (raw bytes), or a hard link's first
			       path; NULL otherwise; arena-owned */
	uint32_t path_len;
	uint32_t link_len;
	uint8_t type;       /* enum walk_type */
	uint8_t excluded;   /* 1: left out by the ignore file (only with WALK_EXCLUDED) */
	uint8_t hashed;     /* enum walk_hash: where hash[] comes from */
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
	/* 1 << 3: for the unit tests (walk_internal.h: WALK_SPLIT_EAGER) */
	/* The classic builder's walk (DOCKER_BUILDKIT=0; dockerignore.md
	 * sections 1, 5 and 9), for the archive that builder reads:
	 *  - the ignore file is DIR/.dockerignore only (never
	 *    <Dockerfile>.dockerignore; --ignore-file still overrides);
	 *  - an excluded directory is entered only when some exception's
	 *    cleaned text + "/" starts with its path + "/" (so a wildcard
	 *    exception below it is lost, as with docker's own tar);
	 *  - an excluded directory sent for what survives below it has no
	 *    header in docker's tar and the daemon creates it 0755: its
	 *    mode is reported as 0755. */
	WALK_CLASSIC = 1 << 4,
	/* Every included path is a regular file of its own: no
	 * WALK_HARDLINK entries (archives identical for copies that split
	 * hard links, such as cp -r). */
	WALK_NO_HARDLINKS = 1 << 5,
	/* Report git-style permission bits (walk_archive_mode's normalize):
	 * the walk itself is unchanged, the flag travels with the result to
	 * the digest and the archive (--normalize-modes). */
	WALK_NORMALIZE_MODES = 1 << 6,
	/* The walk of the file-sync library Docker 20.10's client runs for
	 * BuildKit (tonistiigi/fsutil of 2020): BuildKit's ignore-file rules,
	 * but an excluded directory is entered only on the classic builder's
	 * textual-prefix rule, and one that is entered is sent at once (even
	 * when nothing below it survives). */
	WALK_FSUTIL2020 = 1 << 7,
	/* The ignore-file matcher of Docker clients before 23, which make
	 * the classic builder's tar and run the 2020 file-sync walk
	 * (ign_old_matcher: the deprecated Matches rule). */
	WALK_OLD_MATCHER = 1 << 8,
	/* The Containerfile and ignore file as buildah and podman choose
	 * them (buildah's DiscoverContainerfile and ContainerIgnoreFile):
	 * without -f, <dir>/Containerfile when it exists, else
	 * <dir>/Dockerfile; the ignore file <file>.dockerignore, else
	 * <file>.containerignore, else <dir>/.containerignore, else
	 * <dir>/.dockerignore; and its lines read as buildah reads them
	 * (ign_buildah_lines). */
	WALK_CONTAINERFILE = 1 << 9,
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
	 * r->n with exactly the entries the walk would find (their strings
	 * in r->v's own allocation, after the entries: the result frees it
	 * with r->v and never grows it), set r->replayed and return 1, and
	 * the tree is not walked; 0 walks it.  The index's snapshots (idx_snap_replay,
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
	uint64_t n_hardlinks;/* WALK_HARDLINK entries */
	unsigned flags;      /* walk_opts.flags of the walk that made it */
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
 * Which ignore file applies (dockerignore.md section 1, BuildKit; with
 * WALK_CLASSIC only the last two rules):
 *  --ignore-file F when given; else "<dockerfile>.dockerignore" when it
 *  exists (the -f path with ".dockerignore" appended, resolved against the
 *  working directory like docker's -f); else "<dir>/.dockerignore" when it
 *  exists; else none.  Symlinked ignore files are followed.  With
 *  WALK_CONTAINERFILE, buildah's rules (above).
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

/* Sorting helper: the archive-order comparison of two relative paths. */
int walk_path_cmp(const char *a, size_t alen, const char *b, size_t blen);

/* True when the entry is a regular file with any exec bit. */
static inline int walk_is_exec(const struct walk_entry *we)
{
	return (we->mode & 0111) != 0;
}

/*
 * The permission bits an entry gets in an archive (docs/archive-format.md):
 * as found, as Docker keeps them (setuid, setgid and sticky included; a
 * 0600 file stays 0600), 0777 for symlinks.  With normalize (--normalize-
 * modes, WALK_NORMALIZE_MODES; git-style): directories 0755, everything
 * else 0755 when any execute bit is set, else 0644.  The one place this
 * rule lives.
 */
static inline uint32_t walk_archive_mode(const struct walk_entry *we, int normalize)
{
	if (we->type == WALK_LNK)
		return 0777;
	if (!normalize)
		return we->mode & 07777;
	if (we->type == WALK_DIR)
		return 0755;
	return (we->mode & 0111) ? 0755 : 0644;
}

#endif
