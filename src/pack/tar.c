/*
 * tar: the bytes of one frame.  Headers come from libarchive's restricted
 * pax writer (ustar, plus a pax 'x' header only when an entry needs one:
 * long or non-ASCII names, sizes of 8 GiB and more), fed normalized
 * entries built from scratch: no atime/ctime/birthtime, uid/gid 0 with no
 * names, permission bits by walk_archive_mode(), one mtime with nsec 0, no
 * xattrs/ACLs/sparse maps; hard links as typeflag '1' entries.
 *
 * Each frame gets its own libarchive writer with no blocking
 * (bytes_per_block 0, so nothing is padded whatever the output is).  The
 * pax writer keeps no state between entries, so the frames' bytes
 * concatenated are the bytes one writer would produce (test_pack checks).
 * A frame that ends inside a split file's data closes its writer with
 * the output discarded (tar_drop), so libarchive's filler never reaches
 * the codec; the next frame continues the data raw and writes the padding
 * itself.
 *
 * File contents are checked against the walk: a header states the walked
 * size, and exactly that many bytes follow.  Files up to PACK_SMALL_FILE
 * are read whole before their header, asking for one byte more than the
 * size (the count shows a file that grew or shrank), and are re-read once
 * on a mismatch; larger ones are streamed after the header, must still
 * have their walked size and mtime before and after the read (so the
 * parts of a split file come from one version), and a mismatch fails the
 * pack (ERR_CHANGED).
 */
#include "pack_internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define OPEN_FLAGS (O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)

static const char zeros[512];

static void tar_drop(struct pack_worker *w);

struct pack_worker *pack_worker_new(const struct pack_opts *o, int huge, struct err *e)
{
	struct pack_worker *w = xcalloc(1, sizeof(*w));

	w->huge = huge;
	w->compress = o->compress;
	w->level = pack_level(o);
	w->mtime = o->mtime;
	if (o->prefix && *o->prefix) {
		w->prefix = xstrdup(o->prefix);
		w->prefix_len = strlen(o->prefix);
	}
	buf_init(&w->name, 0);
	buf_init(&w->zin, 0);
	buf_init(&w->link, 0);
	buf_init(&w->dir, 0);
	w->dirfd = -1;
	w->rbuf = xmalloc(PACK_READ_BUF);
	w->ae = archive_entry_new();
	if (!w->ae) {
		err_set(e, ERR_NOMEM, "cannot allocate an archive entry");
		pack_worker_free(w);
		return NULL;
	}
	if (pack_codec_init(w, e)) {
		pack_worker_free(w);
		return NULL;
	}
	return w;
}

void pack_worker_set_cache(struct pack_worker *w, const struct pack_frame_cache *cache)
{
	w->cache = cache;
}

void pack_worker_free(struct pack_worker *w)
{
	if (!w)
		return;
	pack_codec_release(w);
	tar_drop(w);
	archive_entry_free(w->ae);
	free(w->rbuf);
	free(w->zbuf);
	free(w->prefix);
	buf_release(&w->name);
	buf_release(&w->link);
	buf_release(&w->dir);
	if (w->dirfd >= 0)
		close(w->dirfd);
	free(w);
}

static int stopped(const struct pack_worker *w)
{
	return w->stop && __atomic_load_n(w->stop, __ATOMIC_RELAXED);
}

/* Tar bytes from libarchive (headers, data, padding) go to the codec. */
static la_ssize_t tar_write_cb(struct archive *a, void *ctx, const void *p, size_t n)
{
	struct pack_worker *w = ctx;

	if (w->discard)
		return (la_ssize_t)n;
	if (pack_codec_put(w, p, n, w->e))
		return -1;
	w->tar_bytes += n;
	return (la_ssize_t)n;
}

static int raw_put(struct pack_worker *w, const void *p, size_t n)
{
	if (pack_codec_put(w, p, n, w->e))
		return w->e->code;
	w->tar_bytes += n;
	return 0;
}

static int tar_fail(struct pack_worker *w, const char *what, const char *path)
{
	if (err_isset(w->e))
		return w->e->code;
	return err_set(w->e, ERR_FAIL, "tar: %s %s: %s", what, path,
		       w->tar && archive_error_string(w->tar) ? archive_error_string(w->tar) :
		       "failed");
}

static int tar_open(struct pack_worker *w)
{
	struct archive *a = archive_write_new();

	if (!a)
		return err_set(w->e, ERR_NOMEM, "cannot create a tar writer");
	w->tar = a;
	if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_set_bytes_per_block(a, 0) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open2(a, w, NULL, tar_write_cb, NULL, NULL) != ARCHIVE_OK)
		return tar_fail(w, "cannot set up", "the writer");
	return 0;
}

/*
 * Drop the frame's tar writer without letting anything more reach the
 * codec.  It is closed, not abandoned with archive_write_fail() (which
 * leaks the client filter's state in libarchive 3.6): the rest of an
 * unfinished entry is fed in large writes (archive_write_close would
 * write it as nulls 1 KiB at a time), then the close's padding and end
 * blocks are discarded.
 */
static void tar_drop(struct pack_worker *w)
{
	if (!w->tar)
		return;
	w->discard = 1;
	while (w->entry_left) {
		size_t n = w->entry_left < PACK_READ_BUF ? (size_t)w->entry_left : PACK_READ_BUF;
		la_ssize_t k = archive_write_data(w->tar, w->rbuf, n);

		if (k <= 0)
			break;
		w->entry_left -= (uint64_t)k;
	}
	archive_write_close(w->tar);
	archive_write_free(w->tar);
	w->tar = NULL;
	w->discard = 0;
	w->entry_left = 0;
}

/* The normalized header of an entry, named below the prefix unless raw
 * (the prefix's own directories). */
static int write_header_as(struct pack_worker *w, const struct walk_entry *we, int raw)
{
	struct archive_entry *ae = w->ae;
	mode_t perm = (mode_t)walk_archive_mode(we, w->normalize_modes);
	int r;

	if (!w->tar && tar_open(w))
		return w->e->code;
	archive_entry_clear(ae);
	buf_reset(&w->name);
	if ((!raw && w->prefix &&
	     (buf_add(&w->name, w->prefix, w->prefix_len) || buf_addch(&w->name, '/'))) ||
	    buf_add(&w->name, we->path, we->path_len) ||
	    (we->type == WALK_DIR && buf_addch(&w->name, '/')))
		return err_set(w->e, ERR_NOMEM, "out of memory");
	archive_entry_copy_pathname(ae, w->name.data);
	archive_entry_set_uid(ae, 0);
	archive_entry_set_gid(ae, 0);
	archive_entry_set_mtime(ae, (time_t)w->mtime, 0);
	archive_entry_set_perm(ae, perm);
	switch (we->type) {
	case WALK_REG:
		archive_entry_set_filetype(ae, AE_IFREG);
		archive_entry_set_size(ae, (la_int64_t)we->size);
		break;
	case WALK_DIR:
		archive_entry_set_filetype(ae, AE_IFDIR);
		break;
	case WALK_LNK:
	case WALK_HARDLINK:
		buf_reset(&w->link);
		/* a hard link names an entry of the archive: below the prefix
		 * too (a symlink's target is text, kept as is) */
		if ((we->type == WALK_HARDLINK && !raw && w->prefix &&
		     (buf_add(&w->link, w->prefix, w->prefix_len) || buf_addch(&w->link, '/'))) ||
		    (we->link && buf_add(&w->link, we->link, we->link_len)))
			return err_set(w->e, ERR_NOMEM, "out of memory");
		if (we->type == WALK_LNK) {
			archive_entry_set_filetype(ae, AE_IFLNK);
			archive_entry_copy_symlink(ae, w->link.data);
		} else {
			/* typeflag '1', no data: the bytes are the target's */
			archive_entry_set_filetype(ae, AE_IFREG);
			archive_entry_copy_hardlink(ae, w->link.data);
			archive_entry_set_size(ae, 0);
		}
		break;
	case WALK_FIFO:
		archive_entry_set_filetype(ae, AE_IFIFO);
		break;
	case WALK_CHR:
	case WALK_BLK:
		archive_entry_set_filetype(ae, we->type == WALK_CHR ? AE_IFCHR : AE_IFBLK);
		archive_entry_set_rdev(ae, (dev_t)we->rdev);
		break;
	default:
		return err_set(w->e, ERR_FAIL, "%s: unknown entry type %d", w->name.data,
			       we->type);
	}
	w->entry_left = 0;
	r = archive_write_header(w->tar, ae);
	/* ARCHIVE_WARN: a name that is not valid UTF-8 was stored as raw
	 * bytes with hdrcharset=BINARY, which is deterministic too. */
	if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
		return tar_fail(w, "cannot write the header of", w->name.data);
	if (we->type == WALK_REG)
		w->entry_left = we->size;
	return 0;
}

static int write_header(struct pack_worker *w, const struct walk_entry *we)
{
	return write_header_as(w, we, 0);
}

/* The prefix's directories ("usr/", "usr/src/", "usr/src/app/"), in front
 * of the first entry. */
static int write_prefix_dirs(struct pack_worker *w)
{
	struct walk_entry dir;
	size_t k;

	memset(&dir, 0, sizeof(dir));
	dir.type = WALK_DIR;
	dir.mode = S_IFDIR | 0755;
	dir.path = w->prefix;
	for (k = 1; k <= w->prefix_len; k++) {
		if (k < w->prefix_len && w->prefix[k] != '/')
			continue;
		dir.path_len = (uint32_t)k;
		if (write_header_as(w, &dir, 1))
			return w->e->code;
	}
	return 0;
}

static int write_data(struct pack_worker *w, int via_tar, const void *p, size_t n,
		      const char *path)
{
	if (!via_tar)
		return raw_put(w, p, n);
	while (n) {
		la_ssize_t k = archive_write_data(w->tar, p, n);

		if (k <= 0)
			return tar_fail(w, "cannot write the data of", path);
		w->entry_left -= (uint64_t)k;
		p = (const char *)p + k;
		n -= (size_t)k;
	}
	return 0;
}

static int changed(struct pack_worker *w, const struct walk_entry *we, const char *how)
{
	return err_set(w->e, ERR_CHANGED, "file changed while being packed: %.*s (%s)",
		       (int)we->path_len, we->path, how);
}

/*
 * Open a walked path below the root without following any symlink, not
 * only the last component's: a directory swapped for a symlink after the
 * walk must not pull a file from outside the context into the archive.
 * openat2 (Linux 5.6) does that; older kernels get O_NOFOLLOW only.
 */
int pack_open_beneath(int rootfd, const char *path, int flags)
{
#ifdef SYS_openat2
	struct open_how how;
	int fd;

	memset(&how, 0, sizeof(how));
	how.flags = (uint64_t)flags;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
	fd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
	if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
		return fd;
#endif
	return openat(rootfd, path, flags);
}

/*
 * Open a walked file.  Entries come in archive order, so a directory's
 * files come one after another: the worker keeps the last directory open
 * (opened beneath the root as above) and opens each file by its name
 * relative to it, a one-component lookup instead of the whole path's.
 */
static int open_entry(struct pack_worker *w, int rootfd, const struct walk_entry *we)
{
	const char *slash = memrchr(we->path, '/', we->path_len);
	size_t dlen;

	if (!slash)
		return pack_open_beneath(rootfd, we->path, OPEN_FLAGS);
	dlen = (size_t)(slash - we->path);
	if (w->dirfd < 0 || w->dir_root != rootfd || w->dir.len != dlen ||
	    memcmp(w->dir.data, we->path, dlen)) {
		if (w->dirfd >= 0)
			close(w->dirfd);
		buf_reset(&w->dir);
		buf_add(&w->dir, we->path, dlen);
		w->dir_root = rootfd;
		w->dirfd = pack_open_beneath(rootfd, w->dir.data,
					O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (w->dirfd < 0)
			return -1;
	}
	return pack_open_beneath(w->dirfd, slash + 1, OPEN_FLAGS);
}

/* Open a walked regular file and fstat it into st; with st NULL, no fstat
 * (the caller reads it and tells a changed file by the count). */
static int open_file(struct pack_worker *w, int rootfd, const struct walk_entry *we,
		     struct stat *st)
{
	int fd = open_entry(w, rootfd, we);

	if (fd < 0) {
		if (errno == ENOENT || errno == ELOOP || errno == ENOTDIR || errno == EXDEV)
			return changed(w, we, "it is gone or no longer a regular file");
		return err_errno(w->e, "cannot open %.*s", (int)we->path_len, we->path);
	}
	if (!st)
		return fd;
	if (fstat(fd, st)) {
		err_errno(w->e, "cannot stat %.*s", (int)we->path_len, we->path);
		close(fd);
		return w->e->code;
	}
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		return changed(w, we, "no longer a regular file");
	}
	return fd;
}

static int same_stat(const struct stat *a, const struct stat *b)
{
	return a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static int64_t mtime_ns(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/*
 * Read a whole small file of the given size into dst (size + 1 bytes of
 * room), asking for one byte more than the size: a file that grew or
 * shrank during the read shows in the count, in one read(2) for the usual
 * whole read (its returning less than asked means end of file).
 */
static ssize_t read_counted(int fd, char *dst, size_t size)
{
	ssize_t n, m;

	do
		n = read(fd, dst, size + 1);
	while (n < 0 && errno == EINTR);
	if (n < 0 || (size_t)n >= size)
		return n;
	m = read_full(fd, dst + n, size + 1 - (size_t)n);
	return m < 0 ? m : n + m;
}

/*
 * Open a walked small file and read it whole into dst (room for its size
 * plus one byte), asking for one byte more than the size.  The count is
 * the check: no fstat before the read (100k syscalls on a 100k-file
 * context), only after one that went wrong, to tell a file that is no
 * longer a regular one.  Returns 0 with the bytes in dst, 1 when the count
 * differs (the file changed: read it again), or an error.
 */
static int read_small(struct pack_worker *w, int rootfd, const struct walk_entry *we,
		      char *dst)
{
	size_t size = (size_t)we->size;
	struct stat st;
	ssize_t n;
	int fd = open_file(w, rootfd, we, NULL), err;

	if (fd < 0)
		return fd;
	n = read_counted(fd, dst, size);
	err = errno;
	if ((n < 0 || (size_t)n != size) && !fstat(fd, &st) && !S_ISREG(st.st_mode)) {
		close(fd);
		return changed(w, we, "no longer a regular file");
	}
	close(fd);
	if (n < 0) {
		errno = err;
		return err_errno(w->e, "cannot read %.*s", (int)we->path_len, we->path);
	}
	return (size_t)n != size;
}

/*
 * A small file for a zstd frame, whose tar bytes are gathered in w->zin
 * anyway: the header goes in first, then the data is read straight in
 * behind it (no copy through the read buffer).  libarchive is then given
 * the same bytes with its output discarded, so that it knows the entry's
 * data was written and pads it.  On a count that differs, header and data
 * are taken back and the file is read once more.
 */
static int small_file_gathered(struct pack_worker *w, int rootfd,
			       const struct walk_entry *we, size_t i)
{
	int attempt;

	for (attempt = 0; attempt < 2; attempt++) {
		size_t mark = w->zin.len, size = (size_t)we->size;
		uint64_t tmark = w->tar_bytes;
		char *dst;
		int r;

		if (write_header(w, we) || buf_grow(&w->zin, size + 1))
			return err_isset(w->e) ? w->e->code :
			       err_set(w->e, ERR_NOMEM, "out of memory for a zstd frame");
		dst = w->zin.data + w->zin.len;
		if (w->cache && w->cache->data && w->cache->data(w->cache->ctx, i, dst, size))
			r = 0;
		else
			r = read_small(w, rootfd, we, dst);
		if (r < 0)
			return r;
		if (r) {
			tar_drop(w);
			buf_setlen(&w->zin, mark);
			w->tar_bytes = tmark;
			continue;
		}
		if (w->cache && w->cache->content && !we->hashed)
			w->cache->content(w->cache->ctx, i, dst, size);
		w->discard = 1;
		r = write_data(w, 1, dst, size, we->path);
		w->discard = 0;
		if (r)
			return r;
		buf_setlen(&w->zin, w->zin.len + size);
		w->tar_bytes += size;
		return 0;
	}
	return changed(w, we, "it was modified during the read");
}

/* A small file: read it whole, then write header and data. */
static int small_file(struct pack_worker *w, int rootfd, const struct walk_entry *we,
		      size_t i)
{
	int attempt, r;

	for (attempt = 0; attempt < 2; attempt++) {
		r = read_small(w, rootfd, we, w->rbuf);
		if (r < 0)
			return r;
		if (r)
			continue;
		if (w->cache && w->cache->content && !we->hashed)
			w->cache->content(w->cache->ctx, i, w->rbuf, (size_t)we->size);
		if (write_header(w, we) || write_data(w, 1, w->rbuf, (size_t)we->size, we->path))
			return w->e->code;
		return 0;
	}
	return changed(w, we, "it was modified during the read");
}

/*
 * A large file, or the part [off, end) of one: streamed.  The part starts
 * with the header when off is 0 (the data then goes through libarchive),
 * else the data is raw; the padding follows when end is the end of the
 * data.
 */
static int large_file(struct pack_worker *w, int rootfd, const struct walk_entry *we,
		      uint64_t off, uint64_t end)
{
	struct stat st1, st2;
	int via_tar = off == 0, sparse, fd, ret = 0;
	uint64_t pos, ext_d = 0, ext_h = 0; /* the extent known: data [ext_d, ext_h) */

	fd = open_file(w, rootfd, we, &st1);
	if (fd < 0)
		return fd;
	if ((uint64_t)st1.st_size != we->size || mtime_ns(&st1) != we->mtime_ns) {
		close(fd);
		return changed(w, we, "size or mtime differ from when it was listed");
	}
	posix_fadvise(fd, (off_t)off, (off_t)(end - off), POSIX_FADV_SEQUENTIAL);
	/* fewer allocated blocks than the size: there are holes */
	sparse = (uint64_t)st1.st_blocks * 512 < (uint64_t)st1.st_size;
	if (via_tar && write_header(w, we))
		goto fail;
	for (pos = off; pos < end;) {
		size_t want = end - pos < PACK_READ_BUF ? (size_t)(end - pos) : PACK_READ_BUF;
		const void *data = w->rbuf;
		ssize_t k;

		/* holes are not read but written as the zeros they read as:
		 * the same bytes, without filling the page cache; the file
		 * system is asked again only past the extent it gave */
		if (sparse) {
			if (pos >= ext_h && file_next_data(fd, pos, end, &ext_d, &ext_h)) {
				sparse = 0;
			} else if (ext_d > pos) {
				if (ext_d - pos < want)
					want = (size_t)(ext_d - pos);
				if (!w->zbuf)
					w->zbuf = xcalloc(1, PACK_READ_BUF);
				if (write_data(w, via_tar, w->zbuf, want, we->path))
					goto fail;
				pos += want;
				continue;
			} else if (ext_h - pos < want) {
				want = (size_t)(ext_h - pos);
			}
		}
		k = pread(fd, w->rbuf, want, (off_t)pos);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			err_errno(w->e, "cannot read %.*s", (int)we->path_len, we->path);
			goto fail;
		}
		if (k == 0) {
			changed(w, we, "it shrank during the read");
			goto fail;
		}
		if (write_data(w, via_tar, data, (size_t)k, we->path))
			goto fail;
		pos += (uint64_t)k;
		if (stopped(w)) {
			err_set(w->e, ERR_FAIL, "stopped");
			goto fail;
		}
	}
	if (fstat(fd, &st2)) {
		err_errno(w->e, "cannot stat %.*s", (int)we->path_len, we->path);
		goto fail;
	}
	if (!same_stat(&st1, &st2)) {
		changed(w, we, "it was modified during the read");
		goto fail;
	}
	/* padding of a part written raw (libarchive pads its own entries) */
	if (!via_tar && end == we->size && (we->size & 511))
		ret = raw_put(w, zeros, 512 - (size_t)(we->size & 511));
	close(fd);
	return ret;
fail:
	close(fd);
	return w->e->code;
}

static int entry_part(struct pack_worker *w, int rootfd, const struct walk_entry *we,
		      size_t i, uint64_t off, uint64_t end)
{
	if (we->type != WALK_REG)
		return write_header(w, we);
	if (off == 0 && end == we->size && we->size <= PACK_SMALL_FILE)
		return w->compress == PACK_ZSTD ? small_file_gathered(w, rootfd, we, i) :
		       small_file(w, rootfd, we, i);
	return large_file(w, rootfd, we, off, end);
}

int pack_frame_encode(struct pack_worker *w, const struct pack_list *l, int rootfd,
		      const struct pack_frame *f, struct buf *out, uint64_t *tar_bytes,
		      struct err *e)
{
	struct pack_pos p = f->first;
	int ret = 0;

	w->out = out;
	w->e = e;
	w->tar_bytes = 0;
	w->normalize_modes = l->normalize_modes;
	if (pack_codec_begin(w, e))
		return e->code;
	/* the prefix's directories open the first frame (or, when there
	 * is no entry, the end-of-archive frame, which is then the first) */
	if (w->prefix && f->first.i == 0 && f->first.off == 0 && write_prefix_dirs(w))
		goto fail;
	if (f->first.i >= l->n) {
		/* the end-of-archive frame: what libarchive writes on close */
		if (!w->tar && tar_open(w))
			goto fail;
		if (archive_write_close(w->tar) != ARCHIVE_OK) {
			tar_fail(w, "cannot finish", "the archive");
			goto fail;
		}
		archive_write_free(w->tar);
		w->tar = NULL;
		goto end;
	}
	while (p.i < f->end.i || (p.i == f->end.i && p.off < f->end.off)) {
		const struct walk_entry *we = l->v[p.i];
		uint64_t end = p.i == f->end.i ? f->end.off : we->size;

		if (we->type != WALK_REG)
			end = 0;
		if (entry_part(w, rootfd, we, p.i, p.off, end))
			goto fail;
		if (stopped(w)) {
			err_set(e, ERR_FAIL, "stopped");
			goto fail;
		}
		p.i++;
		p.off = 0;
	}
	/* finish the last entry (its padding) unless the frame ends inside
	 * its data, then drop the writer before it writes a trailer */
	if (w->tar && f->end.off == 0 && archive_write_finish_entry(w->tar) != ARCHIVE_OK) {
		tar_fail(w, "cannot finish", "an entry");
		goto fail;
	}
	tar_drop(w);
end:
	if (pack_codec_end(w, e))
		goto fail;
	if (tar_bytes)
		*tar_bytes = w->tar_bytes;
	w->out = NULL;
	return 0;
fail:
	ret = e->code ? e->code : ERR_FAIL;
	tar_drop(w);
	pack_codec_abort(w);
	w->out = NULL;
	return ret;
}
