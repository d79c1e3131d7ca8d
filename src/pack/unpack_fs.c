/*
 * unpack_fs.c: the file steps of an extraction shared by the main thread
 * and the writer threads: make room for an entry, create a file without
 * following a link, finish it (size, exact mode, close).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unpack_internal.h"

/* Remove an earlier file or symlink where a new entry goes; never a
 * directory. */
int up_make_room(int dfd, const char *base, const char *shown, struct err *e)
{
	struct stat st;

	if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW))
		return errno == ENOENT ? 0 : err_errno(e, "cannot stat %s", shown);
	if (S_ISDIR(st.st_mode))
		return err_set(e, ERR_CORRUPT, "refused '%s': it would replace a directory", shown);
	if (unlinkat(dfd, base, 0) && errno != ENOENT)
		return err_errno(e, "cannot replace %s", shown);
	return 0;
}

/* Does mode need an explicit chmod after a create under umask um? */
int up_needs_chmod(mode_t mode, mode_t um)
{
	return (mode & 07000) || (mode & 0777 & um);
}

/* Create base in dfd for writing, never through a symlink, replacing an
 * earlier file or symlink of that name.  A new file is writable by this
 * fd whatever its mode. */
int up_create_file(int dfd, const char *base, const char *shown, mode_t mode,
		       struct err *e)
{
	int fd, tried = 0;

	for (;;) {
		fd = openat(dfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			    mode & 0777);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST || tried)
			return err_errno(e, "cannot create %s", shown);
		tried = 1;
		if (up_make_room(dfd, base, shown, e))
			return e->code;
	}
}

/* The end of a file: its final size (a sparse file's trailing hole), its
 * exact mode (after the writes, which would clear setuid), the close. */
int up_finish_file(int fd, const char *shown, uint64_t end, uint64_t size, mode_t mode,
		       mode_t um, struct err *e)
{
	int ret = 0;

	if (end < size && ftruncate(fd, (off_t)size))
		ret = err_errno(e, "cannot size %s", shown);
	if (!ret && up_needs_chmod(mode, um) && fchmod(fd, mode))
		ret = err_errno(e, "cannot chmod %s", shown);
	if (close(fd) && !ret)
		ret = err_errno(e, "cannot write %s", shown);
	return ret;
}
