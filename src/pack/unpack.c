/*
 * unpack.c: the extractor's driver (unpack_fd, unpack_mem): an archive
 * extracted below a directory fd, never writing outside it or through a
 * link (include/ctxpack/unpack.h has the rules).
 *
 * Why fds and not paths: a path handed to open() is resolved through any
 * symlink on the way, including one the archive itself created a moment
 * earlier ("a -> /etc", then "a/passwd").  Here each directory is opened
 * with O_NOFOLLOW relative to its parent's fd, and each file is created
 * with O_EXCL|O_NOFOLLOW relative to its directory's fd, so a symlink is
 * only ever created, never followed.  That is what makes it safe to
 * restore symlinks verbatim, wherever they point: a venv's
 * bin/python3 -> /usr/bin/python3 is data, not a way out.  The chain of
 * open directory fds for the current entry's parent is kept between
 * entries: archives from pack_write are sorted with parents first, so most
 * entries reuse it.
 *
 * Modes are restored exactly, whatever the umask.  Directories are created
 * writable by their owner and get their own mode only at the end, deepest
 * first, each reopened beneath the root without following links (openat2
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, or a walk of O_NOFOLLOW opens), so
 * that a 0500 directory can be filled and a 1777 one keeps its sticky bit.
 *
 * With safe_links, symlinks are checked twice: lexically when created
 * (cheap, catches "../x" and "/etc"), and after the whole archive is out
 * by asking the kernel to resolve each one beneath the root (openat2
 * RESOLVE_BENEATH): that catches chains of links that are each harmless
 * alone ("d/up -> ..", then "x -> d/up/..").  A link that does not resolve
 * at all (dangling, a loop) is kept: the kernel would not follow it
 * anywhere today either.
 *
 * Directories are never removed, so an fd in the chain stays the
 * directory it was opened as.
 *
 * This file is the driver: the archive reader set up, the entries read
 * one by one, then the end steps.  The parts, each with its own job:
 * unpack_feed.c (the input, zstd decompressed beside the extraction),
 * unpack_entry.c (one entry: the chain of parent directories, the file,
 * directory, link or FIFO), unpack_pool.c (the writer threads and what
 * they hold), unpack_fs.c (file steps shared with the writers),
 * unpack_final.c (directory modes and the kernel's link check at the
 * end), unpack_name.c (the name and link rules), unpack_stale.c (what
 * killed extractions left behind); unpack_internal.h declares them.
 */
#include "ctxpack/unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "unpack_internal.h"

/* Extract every entry read from a, then the end steps. */
static int extract_all(struct archive *a, int dirfd, const struct unpack_opts *o,
		       struct unpack_stats *st, struct err *e)
{
	struct unpacker *u = xcalloc(1, sizeof(*u));
	struct unpack_stats tmp;
	struct archive_entry *ent;
	unsigned threads = o && o->threads ? o->threads : UNPACK_THREADS;
	size_t i;
	int r, ret = 0;

	if (!st)
		st = &tmp;
	memset(st, 0, sizeof(*st));
	u->dirs[0] = up_dnode_new(dirfd, 0);
	u->o = o;
	u->st = st;
	u->e = e;
	u->a = a;
	buf_init(&u->name, 0);
	buf_init(&u->links, 0);
	/* umask is process-wide: read it back at once */
	u->um = umask(022);
	umask(u->um);
	if (threads > UNPACK_MAX_THREADS)
		threads = UNPACK_MAX_THREADS;
	if (threads > 1)
		u->pool = up_pool_new(threads, u->um);

	for (;;) {
		r = archive_read_next_header(a, &ent);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
			ret = err_set(e, ERR_CORRUPT, "damaged archive: %s",
				      archive_error_string(a) ? archive_error_string(a)
							      : "cannot read a header");
			break;
		}
		st->entries++;
		if (o && o->max_entries && st->entries > o->max_entries) {
			ret = err_set(e, ERR_CORRUPT, "archive holds more than %llu entries",
				      (unsigned long long)o->max_entries);
			break;
		}
		ret = up_check_stream(u);
		if (!ret)
			ret = up_extract_entry(u, a, ent);
		if (ret)
			break;
	}
	/* every file written before the link check, the modes and before
	 * the caller may swap the tree in; after a failure the queue is
	 * dropped */
	if (u->pool && !ret)
		ret = up_pool_drain(u->pool, e);
	up_pool_free(u->pool);
	up_chain_trim(u, 0);
	if (!ret && o && o->safe_links)
		ret = up_check_links(u);
	if (!ret)
		ret = up_apply_modes(u);
	up_dnode_put(u->dirs[0]);
	up_pset_release(&u->pending);
	for (i = 0; i < u->ndmodes; i++)
		free(u->dmodes[i].path);
	free(u->dmodes);
	buf_release(&u->name);
	buf_release(&u->links);
	free(u);
	return ret;
}

static int unpack_any(int fd, const void *p, size_t n, int dirfd, const struct unpack_opts *o,
		      struct unpack_stats *st, struct err *e)
{
	struct archive *a = archive_read_new();
	struct up_feeder *f;
	int ret;

	if (!a)
		return err_set(e, ERR_NOMEM, "cannot allocate an archive reader");
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_format_tar(a);
	f = up_feeder_start(fd, p, n, e);
	if (!f) {
		archive_read_free(a);
		return e->code;
	}
	if (up_feeder_open(f, a) != ARCHIVE_OK)
		ret = err_set(e, ERR_CORRUPT, "not an archive: %s",
			      archive_error_string(a) ? archive_error_string(a) : "unreadable");
	else
		ret = extract_all(a, dirfd, o, st, e);
	archive_read_free(a);
	return up_feeder_finish(f, ret, e);
}

int unpack_fd(int fd, int dirfd, const struct unpack_opts *o,
	      struct unpack_stats *st, struct err *e)
{
	return unpack_any(fd, NULL, 0, dirfd, o, st, e);
}

int unpack_mem(const void *p, size_t n, int dirfd, const struct unpack_opts *o,
	       struct unpack_stats *st, struct err *e)
{
	return unpack_any(-1, p, n, dirfd, o, st, e);
}

