/*
 * Reading and hashing one file, safe against the file changing underfoot:
 * the content hash is only kept when fstat before and after the read agree
 * and the bytes read are exactly st_size (determinism.md, "file changes
 * during the read").
 */
#include "ctxpack/index.h"
#include "idx_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

static int same_stat(const struct stat *a, const struct stat *b)
{
	return a->st_size == b->st_size && a->st_ino == b->st_ino &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
	       a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* The bytes of the file up to size into st, data extents read and holes
 * fed as zeros; the file position is left where the bytes end.  Returns
 * how many bytes were hashed (fewer than size if SEEK_DATA fails: the
 * caller reads the rest). */
static uint64_t hash_sparse(int fd, XXH3_state_t *st, void *buf, size_t bufsz, uint64_t size)
{
	static const unsigned char zeros[64 << 10];
	uint64_t pos = 0;

	while (pos < size) {
		uint64_t d, end;

		if (file_next_data(fd, pos, size, &d, &end))
			break;
		while (pos < d) {
			size_t n = d - pos < sizeof(zeros) ? (size_t)(d - pos) : sizeof(zeros);

			XXH3_128bits_update(st, zeros, n);
			pos += n;
		}
		if (pos >= size)
			break;
		if (lseek(fd, (off_t)pos, SEEK_SET) < 0)
			break;
		while (pos < end) {
			size_t want = end - pos < bufsz ? (size_t)(end - pos) : bufsz;
			ssize_t r = read(fd, buf, want);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				goto out; /* the plain loop reports it */
			XXH3_128bits_update(st, buf, (size_t)r);
			pos += (uint64_t)r;
		}
	}
out:
	/* (a regular file can always seek; were it not, the byte count
	 * check after the read would fail) */
	(void)lseek(fd, (off_t)pos, SEEK_SET);
	return pos;
}

/* One attempt.  Returns 0 (hashed, *after filled), 1 (changed while
 * read), or an error in e. */
static int hash_once(int fd, const char *path, void *buf, size_t bufsz,
		     unsigned char out[16], struct stat *after, uint64_t *nread,
		     struct err *e)
{
	struct stat before;
	XXH3_state_t st;
	XXH128_canonical_t c;
	uint64_t total = 0;
	ssize_t r;

	if (fstat(fd, &before))
		return err_errno(e, "cannot stat %s", path);
	if (!S_ISREG(before.st_mode))
		return 1;
	if (lseek(fd, 0, SEEK_SET) < 0)
		return err_errno(e, "cannot read %s", path);
	if ((uint64_t)before.st_size <= bufsz) {
		/* the common small file: one read, one-shot hash; read one
		 * byte more than expected to notice growth */
		r = read_full(fd, buf, bufsz);
		if (r < 0)
			return err_errno(e, "cannot read %s", path);
		total = (uint64_t)r;
		XXH128_canonicalFromHash(&c, XXH3_128bits(buf, (size_t)r));
	} else {
		if (before.st_size >= (1 << 20))
			posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		XXH3_128bits_reset(&st);
		/* a sparse file's holes are hashed as the zeros they read as,
		 * without reading them (as the archive writer does, tar.c):
		 * up to st_size, then the plain loop sees any growth */
		if ((uint64_t)before.st_blocks * 512 < (uint64_t)before.st_size)
			total = hash_sparse(fd, &st, buf, bufsz, (uint64_t)before.st_size);
		for (;;) {
			r = read(fd, buf, bufsz);
			if (r < 0) {
				if (errno == EINTR)
					continue;
				return err_errno(e, "cannot read %s", path);
			}
			if (r == 0)
				break;
			XXH3_128bits_update(&st, buf, (size_t)r);
			total += (uint64_t)r;
		}
		XXH128_canonicalFromHash(&c, XXH3_128bits_digest(&st));
	}
	*nread += total;
	if (fstat(fd, after))
		return err_errno(e, "cannot stat %s", path);
	if (!same_stat(&before, after) || total != (uint64_t)after->st_size)
		return 1;
	memcpy(out, c.digest, 16);
	return 0;
}

int idx_hash_file(int rootfd, struct walk_entry *we, void *buf, size_t bufsz,
		  uint64_t *nread, struct err *e)
{
	struct stat after;
	unsigned char h[16] = {0};
	int fd, ret = 0, tries;

	*nread = 0;
	fd = openat(rootfd, we->path,
		    O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		/* the walk saw a regular file here */
		if (errno == ELOOP)
			return err_set(e, ERR_CHANGED,
				       "file changed while being read: %s "
				       "(now a symlink)", we->path);
		if (errno == ENOENT)
			return err_set(e, ERR_CHANGED,
				       "file changed while being read: %s "
				       "(removed)", we->path);
		return err_errno(e, "cannot open %s", we->path);
	}
	for (tries = 0; tries < 2; tries++) {
		ret = hash_once(fd, we->path, buf, bufsz, h, &after, nread, e);
		if (ret <= 0)
			break;
	}
	close(fd);
	if (ret < 0)
		return ret;
	if (ret > 0)
		return err_set(e, ERR_CHANGED, "file changed while being read: %s",
			       we->path);
	memcpy(we->hash, h, 16);
	we->hashed = WALK_HASH_KNOWN;
	we->size = (uint64_t)after.st_size;
	we->mtime_ns = (int64_t)after.st_mtim.tv_sec * 1000000000 +
		       after.st_mtim.tv_nsec;
	we->ctime_ns = (int64_t)after.st_ctim.tv_sec * 1000000000 +
		       after.st_ctim.tv_nsec;
	we->ino = (uint64_t)after.st_ino;
	we->dev = (uint64_t)after.st_dev;
	we->mode = (uint32_t)after.st_mode;
	return 0;
}
