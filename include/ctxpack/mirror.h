/*
 * mirror: a directory that holds exactly the entries of a walk, for a
 * builder that reads its context from a directory rather than from a tar
 * on its standard input (BuildKit: `ctxpack build` hands it the context
 * this way, docs/build.md).  Kept from run to run and brought up to date
 * in place, so that a builder that syncs a directory incrementally (the
 * docker CLI's file sync keyed by the directory's path) sends only what
 * changed.
 *
 * Files, symlinks, FIFOs and device nodes are hard links to the walked
 * inodes (the same bytes, modes and mtimes, at the cost of one link each);
 * where a link cannot be made (another file system, a protected file, or
 * modes the mirror must present differently: --normalize-modes) they are
 * copies with the mode and mtime set.  Directories are made with the mode
 * the walk reports and get their mtime at the end.  Nothing is ever
 * followed: the mirror is walked and changed with *at calls relative to
 * its directory descriptors, and the walked tree is opened the same way.
 */
#ifndef CTXPACK_MIRROR_H
#define CTXPACK_MIRROR_H

#include <stdint.h>

#include "ctxpack/util.h"
#include "ctxpack/walk.h"

struct mirror_stats {
	uint64_t kept;     /* entries already right */
	uint64_t linked;   /* hard links made */
	uint64_t copied;   /* copies made */
	uint64_t dirs;     /* directories made */
	uint64_t removed;  /* entries removed (a directory counts once) */
};

/*
 * Make dst (created when missing, its parent must exist) hold exactly the
 * included entries of w (walked from w->root), with the walk's modes
 * (walk_archive_mode, normalized when w->flags says so).  A file that
 * changed since the walk is taken as it is now (the builder reads the
 * tree, not the walk).  Returns 0 or an err naming the path; on failure
 * dst may be partly updated (the next run finishes it).  The caller
 * serializes runs on one dst (a lock).
 */
int mirror_sync(const struct walk_result *w, const char *dst, struct mirror_stats *st,
		struct err *e);

#endif
