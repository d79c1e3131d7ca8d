/*
 * unpack_final.c: what an extraction does after its last entry: the
 * directories' own modes, deepest first, and the kernel's check that no
 * symlink leads out of the root (safe_links).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "unpack_internal.h"

/* Set path's mode at the end (after everything below it is written). */
void up_defer_mode(struct unpacker *u, const char *path, mode_t mode)
{
	struct dmode *d;
	const char *p;

	if (u->ndmodes == u->dmodes_cap) {
		u->dmodes_cap = u->dmodes_cap ? 2 * u->dmodes_cap : 64;
		u->dmodes = xreallocarray(u->dmodes, u->dmodes_cap, sizeof(*u->dmodes));
	}
	d = &u->dmodes[u->ndmodes];
	d->path = xstrdup(path);
	d->mode = mode;
	d->depth = *path ? 1 : 0;
	for (p = path; *p; p++)
		if (*p == '/')
			d->depth++;
	d->idx = u->ndmodes++;
}

/*
 * Open path (a clean name, "" for root itself) beneath root without
 * following any link: openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, or,
 * where the kernel has no openat2, a walk of O_NOFOLLOW opens.
 */
static int open_beneath(int root, const char *path, int flags)
{
	struct open_how how;
	char *copy, *p, *slash;
	long fd;
	int cur;

	if (!*path)
		return openat(root, ".", flags | O_CLOEXEC);
	memset(&how, 0, sizeof(how));
	how.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC);
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
	fd = syscall(SYS_openat2, root, path, &how, sizeof(how));
	if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
		return (int)fd;
	copy = xstrdup(path);
	cur = root;
	for (p = copy;; p = slash + 1) {
		int next;

		slash = strchr(p, '/');
		if (slash)
			*slash = '\0';
		next = openat(cur, p, (slash ? O_RDONLY | O_DIRECTORY : flags) | O_NOFOLLOW |
			      O_CLOEXEC);
		if (cur != root)
			close(cur);
		cur = next;
		if (cur < 0 || !slash)
			break;
	}
	free(copy);
	return cur;
}

static int dmode_order(const void *a, const void *b)
{
	const struct dmode *x = a, *y = b;

	/* deepest first; among equals, archive order (the last entry wins) */
	if (x->depth != y->depth)
		return x->depth > y->depth ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* The directories' own modes, children before parents, the root last. */
int up_apply_modes(struct unpacker *u)
{
	size_t i;
	int ret = 0;

	if (u->ndmodes)
		qsort(u->dmodes, u->ndmodes, sizeof(*u->dmodes), dmode_order);
	for (i = 0; i < u->ndmodes && !ret; i++) {
		struct dmode *d = &u->dmodes[i];
		int fd = open_beneath(u->dirs[0]->fd, d->path, O_RDONLY | O_DIRECTORY);

		if (fd < 0) {
			ret = err_errno(u->e, "cannot open directory %s", *d->path ? d->path : ".");
			break;
		}
		if (fchmod(fd, d->mode))
			ret = err_errno(u->e, "cannot chmod %s", *d->path ? d->path : ".");
		else if (!*d->path)
			u->st->root_mode = 010000 | (unsigned)d->mode;
		close(fd);
	}
	return ret;
}

/* The second symlink check: does the kernel resolve it beneath the root? */
int up_check_links(struct unpacker *u)
{
	struct open_how how;
	size_t off = 0;

	memset(&how, 0, sizeof(how));
	how.flags = O_PATH | O_CLOEXEC;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
	while (off < u->links.len) {
		const char *p = u->links.data + off;
		long fd = syscall(SYS_openat2, u->dirs[0]->fd, p, &how, sizeof(how));

		off += strlen(p) + 1;
		if (fd >= 0) {
			close((int)fd);
			continue;
		}
		if (errno == EXDEV)
			return err_set(u->e, ERR_CORRUPT, "refused symlink '%s': it leads out of the "
				       "directory through other links", p);
		if (errno == ENOSYS || errno == EPERM)
			return 0; /* no openat2 (old kernel, seccomp): the lexical rule stands */
		/* ENOENT, ELOOP, ENOTDIR...: it does not resolve at all */
	}
	return 0;
}
