/*
 * mirror: keep a directory holding exactly a walk's entries (mirror.h).
 *
 * The walked tree is never changed: entries are copied, not hard-linked
 * (a link would change each file's ctime and link count, which git's index
 * and ours read as a change).  A copy is made with FICLONE where the file
 * system shares blocks (btrfs, XFS), else copy_file_range, and gets the
 * source's mtime and the walk's mode; it is current while its type, size,
 * mode and mtime match the walk and the source's ctime is older than the
 * copy's (any write to the source moves its ctime past the moment of the
 * copy).  A hard link of the walk (WALK_HARDLINK) is a link to the
 * mirror's copy of its first path, so the builder sees the same link.
 *
 * One pass over the entries in archive order, one directory at a time:
 * each directory's entries are brought up to date, then the names in the
 * mirror directory that the walk does not have are removed.
 */
#include "ctxpack/mirror.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <linux/fs.h>

#define COPY_BUF (1u << 20)
/* a source whose ctime is this close to the copy's may have changed in
 * the same timestamp tick: copy again */
#define RACY_NS 100000000LL

struct msync {
	const struct walk_result *w;
	int normalize;
	int mroot;                 /* the mirror's root directory */
	struct mirror_stats *st;
	struct err *e;
	char *buf;                 /* COPY_BUF, for the read/write fallback */
	size_t *dirs;              /* directories, for their mtimes at the end */
	size_t ndirs, adirs;
};

static int64_t ns_of(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

/* Remove name below dfd, a directory with everything in it, following
 * nothing. */
static int rm_at(int dfd, const char *name)
{
	int fd, ret = 0;
	DIR *d;
	struct dirent *de;

	if (!unlinkat(dfd, name, 0) || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -1;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	/* a directory we made 0500 can still be emptied by its owner */
	fchmod(fd, 0700);
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -1;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (rm_at(dirfd(d), de->d_name))
			ret = -1;
	}
	closedir(d);
	if (!ret && unlinkat(dfd, name, AT_REMOVEDIR) && errno != ENOENT)
		ret = -1;
	return ret;
}

static int fail_at(struct msync *m, const char *what, const struct walk_entry *we)
{
	return err_errno(m->e, "cannot %s %s/%s", what, m->w->root, we->path);
}

static int copy_data(struct msync *m, int in, int out, uint64_t size)
{
	uint64_t done = 0;

	if (!ioctl(out, FICLONE, in))
		return 0;
	while (done < size) {
		ssize_t k = copy_file_range(in, NULL, out, NULL, (size_t)(size - done), 0);

		if (k > 0) {
			done += (uint64_t)k;
			continue;
		}
		if (k == 0)
			break; /* the source shrank: the copy has what there is */
		if (errno == EINTR)
			continue;
		if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
			return -1;
		/* no in-kernel copy between these two: read and write */
		for (;;) {
			ssize_t r = read(in, m->buf, COPY_BUF);

			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return -1;
			if (r == 0)
				return 0;
			if (write_all(out, m->buf, (size_t)r))
				return -1;
		}
	}
	return 0;
}

/* A copy of the regular file name (below sfd) as name below mfd. */
static int copy_file(struct msync *m, int sfd, int mfd, const char *name,
		     const struct walk_entry *we, mode_t mode)
{
	struct timespec ts[2];
	struct stat st;
	int in, out, ret = 0;

	in = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (in < 0)
		return errno == ENOENT ? 1 : fail_at(m, "open", we);
	if (fstat(in, &st) || !S_ISREG(st.st_mode)) {
		close(in);
		return 1; /* no longer a regular file: left out, as it is gone */
	}
	out = openat(mfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0) {
		close(in);
		return err_errno(m->e, "cannot create the copy of %s/%s", m->w->root, we->path);
	}
	if (copy_data(m, in, out, (uint64_t)st.st_size))
		ret = err_errno(m->e, "cannot copy %s/%s", m->w->root, we->path);
	ts[0].tv_sec = 0;
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1] = st.st_mtim;
	if (!ret && (fchmod(out, mode) || futimens(out, ts)))
		ret = err_errno(m->e, "cannot set the mode of the copy of %s/%s", m->w->root,
				we->path);
	if (close(out) && !ret)
		ret = err_errno(m->e, "cannot write the copy of %s/%s", m->w->root, we->path);
	close(in);
	if (ret)
		unlinkat(mfd, name, 0);
	else
		m->st->copied++;
	return ret;
}

/* Is the mirror's entry (mst) the walked one, brought over earlier? */
static int current(struct msync *m, int mfd, const char *name, const struct walk_entry *we,
		   const struct stat *mst, mode_t mode)
{
	switch (we->type) {
	case WALK_REG:
		return S_ISREG(mst->st_mode) && mst->st_nlink >= 1 &&
		       (uint64_t)mst->st_size == we->size && (mst->st_mode & 07777) == mode &&
		       ns_of(&mst->st_mtim) == we->mtime_ns &&
		       we->ctime_ns < ns_of(&mst->st_ctim) - RACY_NS;
	case WALK_LNK: {
		char t[PATH_MAX];
		ssize_t k;

		if (!S_ISLNK(mst->st_mode) || (uint64_t)mst->st_size != we->link_len)
			return 0;
		k = readlinkat(mfd, name, t, sizeof(t));
		return k == (ssize_t)we->link_len && !memcmp(t, we->link, (size_t)k) &&
		       ns_of(&mst->st_mtim) == we->mtime_ns;
	}
	case WALK_HARDLINK: {
		struct stat fst;

		return !fstatat(m->mroot, we->link, &fst, AT_SYMLINK_NOFOLLOW) &&
		       fst.st_ino == mst->st_ino && fst.st_dev == mst->st_dev;
	}
	case WALK_FIFO:
		return S_ISFIFO(mst->st_mode) && (mst->st_mode & 07777) == mode;
	case WALK_CHR:
	case WALK_BLK:
		return (we->type == WALK_CHR ? S_ISCHR(mst->st_mode) : S_ISBLK(mst->st_mode)) &&
		       mst->st_rdev == (dev_t)we->rdev && (mst->st_mode & 07777) == mode;
	}
	return 0;
}

/* Bring one non-directory entry over (it is not there, or was removed). */
static int make_entry(struct msync *m, int sfd, int mfd, const char *name,
		      const struct walk_entry *we, mode_t mode)
{
	struct timespec ts[2];

	switch (we->type) {
	case WALK_REG:
		return copy_file(m, sfd, mfd, name, we, mode);
	case WALK_LNK:
		if (symlinkat(we->link, mfd, name))
			return fail_at(m, "copy the symlink", we);
		/* the link's own mtime, as tar and Docker's send keep it */
		ts[0].tv_sec = 0;
		ts[0].tv_nsec = UTIME_OMIT;
		ts[1].tv_sec = (time_t)(we->mtime_ns / 1000000000);
		ts[1].tv_nsec = (long)(we->mtime_ns % 1000000000);
		if (utimensat(mfd, name, ts, AT_SYMLINK_NOFOLLOW))
			return fail_at(m, "set the mtime of the copy of", we);
		m->st->copied++;
		return 0;
	case WALK_HARDLINK:
		if (linkat(m->mroot, we->link, mfd, name, 0)) {
			if (errno == ENOENT)
				return 1; /* its first path was gone: so is it */
			return fail_at(m, "link the copy of", we);
		}
		m->st->linked++;
		return 0;
	case WALK_FIFO:
		if (mkfifoat(mfd, name, 0600))
			return fail_at(m, "make the FIFO", we);
		break;
	case WALK_CHR:
	case WALK_BLK:
		if (mknodat(mfd, name, (we->type == WALK_CHR ? S_IFCHR : S_IFBLK) | 0600,
			    (dev_t)we->rdev))
			return fail_at(m, "make the device node", we);
		break;
	default:
		return 0;
	}
	ts[0].tv_sec = 0;
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1].tv_sec = (time_t)(we->mtime_ns / 1000000000);
	ts[1].tv_nsec = (long)(we->mtime_ns % 1000000000);
	if (fchmodat(mfd, name, mode, 0) ||
	    utimensat(mfd, name, ts, AT_SYMLINK_NOFOLLOW))
		return fail_at(m, "set the mode of the copy of", we);
	m->st->copied++;
	return 0;
}

static int sync_dir(struct msync *m, int sfd, int mfd, size_t *i, const char *dir, size_t dlen);

static int sync_one(struct msync *m, int sfd, int mfd, size_t *i, const char *name)
{
	const struct walk_entry *we = &m->w->v[*i];
	mode_t mode = (mode_t)walk_archive_mode(we, m->normalize);
	struct stat mst;
	int have = !fstatat(mfd, name, &mst, AT_SYMLINK_NOFOLLOW), r;

	if (!have && errno != ENOENT)
		return fail_at(m, "stat the mirror of", we);
	if (we->type != WALK_DIR) {
		(*i)++;
		if (have && current(m, mfd, name, we, &mst, mode)) {
			m->st->kept++;
			return 0;
		}
		if (have) {
			if (rm_at(mfd, name))
				return fail_at(m, "remove the old mirror of", we);
			m->st->removed++;
		}
		r = make_entry(m, sfd, mfd, name, we, mode);
		return r > 0 ? 0 : r;
	}

	if (have && !S_ISDIR(mst.st_mode)) {
		if (rm_at(mfd, name))
			return fail_at(m, "remove the old mirror of", we);
		m->st->removed++;
		have = 0;
	}
	if (!have) {
		if (mkdirat(mfd, name, 0700))
			return fail_at(m, "make the mirror of", we);
		m->st->dirs++;
	} else {
		m->st->kept++;
	}
	{
		size_t idx = *i;
		int csfd, cmfd;

		csfd = openat(sfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (csfd < 0) {
			if (errno != ENOENT && errno != ENOTDIR && errno != ELOOP)
				return fail_at(m, "open", we);
			csfd = -1; /* gone since the walk: its entries are taken as gone */
		}
		cmfd = openat(mfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cmfd < 0) {
			if (csfd >= 0)
				close(csfd);
			return fail_at(m, "open the mirror of", we);
		}
		/* owner-writable while it is filled; its mode is set at the end */
		if (have && (mst.st_mode & 0700) != 0700)
			fchmod(cmfd, 0700);
		(*i)++;
		r = sync_dir(m, csfd, cmfd, i, we->path, we->path_len);
		if (csfd >= 0)
			close(csfd);
		close(cmfd);
		if (r)
			return r;
		if (m->ndirs == m->adirs) {
			m->adirs = m->adirs ? 2 * m->adirs : 64;
			m->dirs = xreallocarray(m->dirs, m->adirs, sizeof(*m->dirs));
		}
		m->dirs[m->ndirs++] = idx;
	}
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Entries below dir (dlen bytes, "" for the root), from *i on; then the
 * names the walk does not have are removed from mfd.  sfd may be -1 (the
 * source directory is gone): entries are then left out. */
static int sync_dir(struct msync *m, int sfd, int mfd, size_t *i, const char *dir, size_t dlen)
{
	const char **names = NULL;
	size_t n = 0, alloc = 0;
	int ret = 0, fd;
	DIR *d;
	struct dirent *de;

	while (*i < m->w->n) {
		const struct walk_entry *we = &m->w->v[*i];
		const char *name;

		if (we->excluded) {
			(*i)++;
			continue;
		}
		if (dlen && (we->path_len <= dlen || memcmp(we->path, dir, dlen) ||
			     we->path[dlen] != '/'))
			break;
		name = we->path + (dlen ? dlen + 1 : 0);
		if (strchr(name, '/'))
			return err_set(m->e, ERR_FAIL, "%s: its directory is not in the walk",
				       we->path);
		if (n == alloc) {
			alloc = alloc ? 2 * alloc : 32;
			names = xreallocarray(names, alloc, sizeof(*names));
		}
		names[n++] = name;
		if (sfd < 0) {
			/* its directory went away: skip it and what is below */
			size_t k = *i + 1;

			while (k < m->w->n && m->w->v[k].path_len > we->path_len &&
			       !memcmp(m->w->v[k].path, we->path, we->path_len) &&
			       m->w->v[k].path[we->path_len] == '/')
				k++;
			*i = k;
			n--;
			continue;
		}
		ret = sync_one(m, sfd, mfd, i, name);
		if (ret)
			goto out;
	}
	/* archive order sorts a directory's names bytewise, but be sure */
	if (n > 1)
		qsort(names, n, sizeof(*names), name_cmp);
	fd = openat(mfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		ret = err_errno(m->e, "cannot read the mirror of %s/%.*s", m->w->root, (int)dlen,
				dir);
		goto out;
	}
	while ((de = readdir(d))) {
		const char *key = de->d_name;

		if (!strcmp(key, ".") || !strcmp(key, ".."))
			continue;
		if (n && bsearch(&key, names, n, sizeof(*names), name_cmp))
			continue;
		if (rm_at(mfd, de->d_name)) {
			ret = err_errno(m->e, "cannot remove %s from the mirror of %s/%.*s",
					de->d_name, m->w->root, (int)dlen, dir);
			break;
		}
		m->st->removed++;
	}
	closedir(d);
out:
	free(names);
	return ret;
}

int mirror_sync(const struct walk_result *w, const char *dst, struct mirror_stats *st,
		struct err *e)
{
	struct msync m;
	struct mirror_stats dummy;
	size_t i = 0, k;
	int sfd, ret;

	memset(&m, 0, sizeof(m));
	if (!st)
		st = &dummy;
	memset(st, 0, sizeof(*st));
	m.w = w;
	m.normalize = (w->flags & WALK_NORMALIZE_MODES) != 0;
	m.st = st;
	m.e = e;
	if (mkdir(dst, 0700) && errno != EEXIST)
		return err_errno(e, "cannot create %s", dst);
	m.mroot = open(dst, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (m.mroot < 0)
		return err_errno(e, "cannot open %s", dst);
	sfd = open(w->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0) {
		close(m.mroot);
		return err_errno(e, "cannot open context %s", w->root);
	}
	m.buf = xmalloc(COPY_BUF);
	ret = sync_dir(&m, sfd, m.mroot, &i, "", 0);
	/* directory modes and mtimes last, deepest first: filling a directory
	 * moves its mtime, and a 0500 one must stay writable until then */
	for (k = m.ndirs; !ret && k-- > 0;) {
		const struct walk_entry *we = &w->v[m.dirs[k]];
		mode_t mode = (mode_t)walk_archive_mode(we, m.normalize);
		struct timespec ts[2];
		struct stat dst_st;

		if (fstatat(m.mroot, we->path, &dst_st, AT_SYMLINK_NOFOLLOW)) {
			ret = fail_at(&m, "stat the mirror of", we);
			break;
		}
		ts[0].tv_sec = 0;
		ts[0].tv_nsec = UTIME_OMIT;
		ts[1].tv_sec = (time_t)(we->mtime_ns / 1000000000);
		ts[1].tv_nsec = (long)(we->mtime_ns % 1000000000);
		if (((dst_st.st_mode & 07777) != mode && fchmodat(m.mroot, we->path, mode, 0)) ||
		    (ns_of(&dst_st.st_mtim) != we->mtime_ns &&
		     utimensat(m.mroot, we->path, ts, AT_SYMLINK_NOFOLLOW)))
			ret = fail_at(&m, "set the mode of the mirror of", we);
	}
	free(m.dirs);
	free(m.buf);
	close(sfd);
	close(m.mroot);
	return ret;
}
