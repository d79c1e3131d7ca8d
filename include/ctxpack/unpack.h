/*
 * unpack: the safe archive extractor, the reading side of `cache restore`.
 * Part of the pack module (the only one that may include libarchive and
 * libzstd).
 *
 * A tar stream (zstd-compressed, gzip-compressed or plain; detected from
 * the first bytes) is extracted below one directory, given as an open fd.
 * Every file system call is relative to an open directory fd
 * (openat/mkdirat/symlinkat/linkat) and no path is ever resolved through
 * a symlink: directories on the way are opened with O_NOFOLLOW, files are
 * created with O_CREAT|O_EXCL|O_NOFOLLOW.  So nothing can be written
 * outside the directory or through a link, whatever the archive holds:
 * a symlink the archive made (or one that was there) never redirects a
 * later entry.
 *
 * The tree is restored as faithfully as `tar -x` run as root restores it:
 *   - symlinks verbatim, whatever they point at (absolute, "../x",
 *     dangling): a venv's bin/python3 -> /usr/bin/python3 and a
 *     workspace's node_modules/app -> ../packages/app are kept;
 *   - hard links as links, to entries (not directories) already extracted
 *     from the same archive;
 *   - the exact permission bits of files, FIFOs and directories,
 *     setuid/setgid/sticky included, whatever the umask; directories get
 *     theirs after everything is written, so a 0500 directory can still
 *     be filled; the root entry "./", when there is one, gives the mode of
 *     the directory itself.
 * Owners and times are not restored (files carry the time of the
 * extraction).  Device nodes and sockets are skipped (counted).
 *
 * Refused (ERR_CORRUPT, the extraction stops):
 *   - names that are absolute or have a ".." component;
 *   - names deeper than UNPACK_MAX_DEPTH components;
 *   - hard links whose target name is refused, is not in the archive
 *     before them, or is a directory;
 *   - entries that would replace a directory or go through a symlink or a
 *     file (a later entry may replace an earlier file or symlink, as tar
 *     does);
 *   - with safe_links only: symlinks whose target is absolute or, resolved
 *     lexically from their own directory, leaves the root; and, after the
 *     whole archive is extracted, any symlink that the kernel resolves to
 *     a place outside the root (openat2 RESOLVE_BENEATH, which also follows
 *     chains of in-tree links);
 *   - more entries, file bytes (as declared, so a sparse file's holes
 *     count) or tar stream bytes than the opts allow.
 *
 * Small files are created and written by a few writer threads while the
 * archive is parsed (file creation is most of the cost); entries that
 * depend on a queued file (the same name again, a hard link to it, a
 * directory of that name) wait for the queue first, so the result is what
 * a sequential extraction gives.  All writes are done when this returns.
 *
 * On failure the directory holds a partial tree: callers extract into a
 * staging directory and swap it in only on success (cache restore does).
 */
#ifndef CTXPACK_UNPACK_H
#define CTXPACK_UNPACK_H

#include <stddef.h>
#include <stdint.h>

#include "ctxpack/util.h"

/* Deepest name accepted (components); each level holds one open fd. */
#define UNPACK_MAX_DEPTH 256
/* Writer threads by default, and at most. */
#define UNPACK_THREADS 4
#define UNPACK_MAX_THREADS 16

struct unpack_opts {
	uint64_t max_bytes;   /* cap on the file bytes (each file's size as
				 declared, holes included); 0 = none */
	uint64_t max_entries; /* cap on the entries; 0 = none */
	unsigned threads;     /* writer threads; 0 = UNPACK_THREADS, 1 = none */
	int safe_links;       /* refuse symlinks that lead out of the directory */
	uint64_t max_stream;  /* cap on the (decompressed) tar stream; 0 = none */
	uint64_t deadline_ms; /* CLOCK_MONOTONIC time (ms) past which the
				 extraction fails ("timed out"); 0 = none */
};

struct unpack_stats {
	uint64_t entries;     /* archive entries read */
	uint64_t files;       /* regular files and FIFOs */
	uint64_t dirs;
	uint64_t symlinks;
	uint64_t hardlinks;
	uint64_t skipped;     /* device nodes, sockets, the root entry "./" */
	uint64_t bytes;       /* file bytes (sizes as declared) */
	unsigned root_mode;   /* the mode given to the directory by a "./"
				 entry, with 010000 set; 0 when there was none */
};

/*
 * Extract the archive read from fd (read to the end of the archive, not
 * necessarily to EOF) below the directory dirfd.  o and st may be NULL.
 * Returns 0 or an err: ERR_CORRUPT for a refused entry or a damaged
 * archive (the message names the entry), ERR_FAIL for I/O errors.
 */
int unpack_fd(int fd, int dirfd, const struct unpack_opts *o,
	      struct unpack_stats *st, struct err *e);
/* The same, from memory (the fuzz target). */
int unpack_mem(const void *p, size_t n, int dirfd, const struct unpack_opts *o,
	       struct unpack_stats *st, struct err *e);

/*
 * Remove what extractions killed before they finished left in dir: the
 * directories named PREFIX<pid>-... (prefix e.g. ".ctxpack-new-") whose
 * process is gone and that belong to the caller's effective user.  Entries
 * of running processes, of other users, symlinks and other names are left
 * alone, and nothing is followed: the removal goes through directory fds
 * opened with O_NOFOLLOW (a racer who swaps a directory for a symlink
 * meanwhile gets an error, not a chmod or unlink somewhere else).  Returns
 * the number removed, or an err (the first failure; the others are still
 * tried).
 */
int unpack_remove_stale(const char *dir, const char *prefix, struct err *e);

#endif
