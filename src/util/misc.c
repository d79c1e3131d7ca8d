/* Small helpers: full reads and writes, parsing, atomic files, paths. */
#include "ctxpack/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* All of p written, at fd's position (off < 0) or at off. */
static int put_all(int fd, const void *p, size_t n, off_t off)
{
	const char *c = p;

	while (n) {
		ssize_t w = off < 0 ? write(fd, c, n) : pwrite(fd, c, n, off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += w;
		n -= (size_t)w;
		if (off >= 0)
			off += w;
	}
	return 0;
}

int write_all(int fd, const void *p, size_t n)
{
	return put_all(fd, p, n, -1);
}

int pwrite_all(int fd, const void *p, size_t n, off_t off)
{
	return off < 0 ? (errno = EINVAL, -1) : put_all(fd, p, n, off);
}

int64_t splice_to_pipe(int fd, uint64_t off, uint64_t n, int out, int (*wait)(void *ctx),
		       void (*took)(void *ctx, uint64_t k), void *ctx)
{
	unsigned flags = SPLICE_F_MOVE | (wait ? SPLICE_F_NONBLOCK : 0);
	loff_t at = (loff_t)off;
	uint64_t done = 0;

	while (done < n) {
		size_t want = n - done > (1u << 30) ? (1u << 30) : (size_t)(n - done);
		ssize_t k = splice(fd, &at, out, NULL, want, flags);

		if (k > 0) {
			done += (uint64_t)k;
			if (took)
				took(ctx, (uint64_t)k);
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN && wait && !wait(ctx))
			continue;
		if (k < 0 && (errno == EINVAL || errno == ENOSYS) && !done)
			return -1;
		break;
	}
	return (int64_t)done;
}

ssize_t read_full(int fd, void *p, size_t n)
{
	char *c = p;
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, c + got, n - got);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

int file_next_data(int fd, uint64_t pos, uint64_t end, uint64_t *data, uint64_t *hole)
{
	off_t d = lseek(fd, (off_t)pos, SEEK_DATA), h;

	if (d < 0 && errno == ENXIO)
		d = (off_t)end;
	if (d < 0)
		return -1;
	*data = (uint64_t)d < end ? (uint64_t)d : end;
	*hole = end;
	if (*data < end && (h = lseek(fd, (off_t)*data, SEEK_HOLE)) > (off_t)*data &&
	    (uint64_t)h < end)
		*hole = (uint64_t)h;
	return 0;
}

void hex_encode(char *out, const unsigned char *in, size_t n)
{
	static const char hx[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hx[in[i] >> 4];
		out[2 * i + 1] = hx[in[i] & 15];
	}
	out[2 * n] = '\0';
}

int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!s || !*s)
		return ERR_USAGE;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return ERR_USAGE;
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return ERR_USAGE;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

int parse_duration(const char *s, uint64_t *secs)
{
	char num[32];
	size_t n = strlen(s);
	uint64_t v, mul = 1;

	if (n == 0 || n >= sizeof(num))
		return ERR_USAGE;
	memcpy(num, s, n + 1);
	switch (num[n - 1]) {
	case 's': mul = 1; break;
	case 'm': mul = 60; break;
	case 'h': mul = 3600; break;
	case 'd': mul = 86400; break;
	case 'w': mul = 7 * 86400; break;
	default:
		if (num[n - 1] < '0' || num[n - 1] > '9')
			return ERR_USAGE;
		n++;
	}
	num[n - 1] = '\0';
	if (parse_u64(num, &v) || v > UINT64_MAX / mul)
		return ERR_USAGE;
	*secs = v * mul;
	return 0;
}

/* The temporaries a signal handler may have to remove: a fixed table,
 * each slot claimed with a compare-and-swap (0 free, 1 being written, 2
 * holding a path). */
static struct {
	int state;
	char path[PATH_MAX];
} tracked[ATOMIC_TRACKED];

static void track(const char *p)
{
	size_t i, n = strlen(p);

	if (n >= PATH_MAX)
		return;
	for (i = 0; i < ATOMIC_TRACKED; i++) {
		int want = 0;

		if (__atomic_compare_exchange_n(&tracked[i].state, &want, 1, 0, __ATOMIC_ACQ_REL,
						__ATOMIC_RELAXED)) {
			memcpy(tracked[i].path, p, n + 1);
			__atomic_store_n(&tracked[i].state, 2, __ATOMIC_RELEASE);
			return;
		}
	}
}

static void untrack(const char *p)
{
	size_t i;

	for (i = 0; i < ATOMIC_TRACKED; i++)
		if (__atomic_load_n(&tracked[i].state, __ATOMIC_ACQUIRE) == 2 &&
		    !strcmp(tracked[i].path, p)) {
			__atomic_store_n(&tracked[i].state, 0, __ATOMIC_RELEASE);
			return;
		}
}

void atomic_unlink_all(void)
{
	size_t i;

	for (i = 0; i < ATOMIC_TRACKED; i++)
		if (__atomic_load_n(&tracked[i].state, __ATOMIC_ACQUIRE) == 2)
			unlink(tracked[i].path);
}

int atomic_clear_stale(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash ? xstrndup(path, (size_t)(slash - path + (slash == path))) : xstrdup(".");
	const char *base = slash ? slash + 1 : path;
	size_t bl = strlen(base);
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	while (d && (de = readdir(d))) {
		const char *p = de->d_name;
		char *end, *full;
		long pid;

		if (strncmp(p, base, bl) || strncmp(p + bl, ".tmp.", 5))
			continue;
		pid = strtol(p + bl + 5, &end, 10);
		if (end == p + bl + 5 || *end != '.' || pid <= 0 || pid == (long)getpid())
			continue;
		if (!kill((pid_t)pid, 0) || errno != ESRCH)
			continue; /* alive (or not ours to ask): not stale */
		full = xasprintf("%s/%s", dir, p);
		if (!unlink(full))
			n++;
		free(full);
	}
	if (d)
		closedir(d);
	free(dir);
	return n;
}

int atomic_open(struct atomic_file *af, const char *path, int mode,
		struct err *e)
{
	static unsigned counter;
	int i;

	af->fd = -1;
	af->nosync = 0;
	af->path = xstrdup(path);
	af->tmp = NULL;
	for (i = 0; i < 100; i++) {
		free(af->tmp);
		af->tmp = xasprintf("%s.tmp.%ld.%u", path, (long)getpid(),
				    __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
		af->fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
		if (af->fd >= 0) {
			track(af->tmp);
			return 0;
		}
		if (errno != EEXIST)
			break;
	}
	err_errno(e, "cannot create %s", af->tmp);
	free(af->tmp);
	free(af->path);
	af->tmp = af->path = NULL;
	return e->code;
}

int atomic_commit(struct atomic_file *af, struct err *e)
{
	int ret = 0;

	if (!af->nosync && fsync(af->fd) && errno != EINVAL)
		ret = err_errno(e, "cannot sync %s", af->tmp);
	if (close(af->fd) && !ret)
		ret = err_errno(e, "cannot write %s", af->tmp);
	af->fd = -1;
	if (!ret && rename(af->tmp, af->path))
		ret = err_errno(e, "cannot rename %s to %s", af->tmp, af->path);
	if (ret)
		unlink(af->tmp);
	untrack(af->tmp);
	free(af->tmp);
	free(af->path);
	af->tmp = af->path = NULL;
	return ret;
}

void atomic_abort(struct atomic_file *af)
{
	if (af->fd >= 0)
		close(af->fd);
	af->fd = -1;
	if (af->tmp) {
		unlink(af->tmp);
		untrack(af->tmp);
	}
	free(af->tmp);
	free(af->path);
	af->tmp = af->path = NULL;
}

int atomic_write_nosync(const char *path, const void *data, size_t n, int mode, struct err *e)
{
	struct atomic_file af;

	if (atomic_open(&af, path, mode, e))
		return e->code;
	af.nosync = 1;
	if (write_all(af.fd, data, n)) {
		int saved = errno;

		atomic_abort(&af);
		errno = saved;
		return err_errno(e, "cannot write %s", path);
	}
	return atomic_commit(&af, e);
}

int mkdir_p(const char *path, int mode, struct err *e)
{
	char *p = xstrdup(path), *s;
	int ret = 0;

	for (s = p + 1; ; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;

			*s = '\0';
			if (mkdir(p, (mode_t)mode) && errno != EEXIST) {
				ret = err_errno(e, "cannot create directory %s", p);
				break;
			}
			*s = c;
			if (!c)
				break;
		}
	}
	if (!ret) {
		struct stat st;

		if (stat(path, &st) || !S_ISDIR(st.st_mode))
			ret = err_set(e, ERR_FAIL, "%s: not a directory", path);
	}
	free(p);
	return ret;
}

/*
 * rm -rf of name in dfd, never through a symlink: each directory is opened
 * with O_NOFOLLOW and emptied through its fd.  A directory that cannot be
 * read or written (a restored 0500 tree) is made 0700 first: through the
 * fd when it is open, else with AT_SYMLINK_NOFOLLOW (which refuses a
 * symlink that replaced it meanwhile), never by following a link.
 */
static int remove_at(int dfd, const char *name, const char *shown, struct err *e)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	int fd, ret = 0, chmodded = 0;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW)) {
		if (errno == ENOENT)
			return 0;
		return err_errno(e, "cannot stat %s", shown);
	}
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(dfd, name, 0) && errno != ENOENT)
			return err_errno(e, "cannot remove %s", shown);
		return 0;
	}
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == EACCES) {
		/* an unreadable directory: make it ours (not through a link) */
		if (!fchmodat(dfd, name, 0700, AT_SYMLINK_NOFOLLOW))
			fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		chmodded = 1;
	}
	if (fd < 0)
		return err_errno(e, "cannot open %s", shown);
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return err_errno(e, "cannot read %s", shown);
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		ret = remove_at(dirfd(d), de->d_name, shown, e);
		if (ret && !chmodded && e->saved_errno == EACCES && !fchmod(dirfd(d), 0700)) {
			/* a directory we may not write: its fd is the directory */
			chmodded = 1;
			err_clear(e);
			ret = remove_at(dirfd(d), de->d_name, shown, e);
		}
		if (ret)
			break;
	}
	closedir(d);
	if (!ret && unlinkat(dfd, name, AT_REMOVEDIR) && errno != ENOENT)
		ret = err_errno(e, "cannot remove %s", shown);
	return ret;
}

int remove_tree(const char *path, struct err *e)
{
	return remove_at(AT_FDCWD, path, path, e);
}

int remove_tree_at(int dfd, const char *name, const char *shown, struct err *e)
{
	return remove_at(dfd, name, shown ? shown : name, e);
}

int dir_names(const char *path, int missing_ok, char ***names, size_t *n,
	      struct err *e)
{
	DIR *d = opendir(path);
	struct dirent *de;
	size_t alloc = 0;

	*names = NULL;
	*n = 0;
	if (!d) {
		if (errno == ENOENT && missing_ok)
			return 0;
		return err_errno(e, "cannot open directory %s", path);
	}
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de)
			break;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (*n == alloc) {
			alloc = alloc ? alloc * 2 : 16;
			*names = xreallocarray(*names, alloc, sizeof(**names));
		}
		(*names)[(*n)++] = xstrdup(de->d_name);
	}
	if (errno) {
		err_errno(e, "cannot read directory %s", path);
		closedir(d);
		dir_names_free(*names, *n);
		*names = NULL;
		*n = 0;
		return e->code;
	}
	closedir(d);
	return 0;
}

void dir_names_free(char **names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int path_holds(const char *dir, const char *path)
{
	size_t n = strlen(dir);

	if (n == 1 && dir[0] == '/')
		return 1;
	return !strncmp(dir, path, n) && (path[n] == '/' || !path[n]);
}

char *path_resolve_future(const char *dir)
{
	char *full, *abs, *cut, *real = NULL, *out = NULL;

	if (dir[0] == '/') {
		full = xstrdup(dir);
	} else {
		char *cwd = getcwd(NULL, 0);

		if (!cwd)
			return NULL;
		full = xasprintf("%s/%s", cwd, dir);
		free(cwd);
	}
	abs = xstrdup(full);
	for (;;) {
		real = realpath(abs, NULL);
		if (real || errno != ENOENT)
			break;
		cut = strrchr(abs, '/');
		if (!cut || cut == abs)
			break;
		*cut = '\0';
	}
	if (real)
		out = xasprintf("%s%s", real, full + strlen(abs));
	free(real);
	free(abs);
	free(full);
	return out;
}

char *cache_home(void)
{
	const char *x = env_get()->xdg_cache_home;
	const char *h = env_get()->home;

	if (x && *x == '/')
		return xasprintf("%s/ctxpack", x);
	if (!h)
		h = "/tmp";
	return xasprintf("%s/.cache/ctxpack", h);
}
