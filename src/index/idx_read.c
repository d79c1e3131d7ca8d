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
