/*
 * unpack_stale.c: the staging directories of extractions killed before
 * they finished, found and removed (unpack_remove_stale).
 */
#include "ctxpack/unpack.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* 0 when name is PREFIX<pid>-... of a process that is gone. */
static int keep_entry(const char *name, const char *prefix)
{
	const char *p = name + strlen(prefix);
	unsigned long pid = 0;

	if (strncmp(name, prefix, strlen(prefix)))
		return 1;
	while (*p >= '0' && *p <= '9' && pid < 0x80000000ul)
		pid = pid * 10 + (unsigned long)(*p++ - '0');
	if (*p != '-' || !pid || pid >= 0x80000000ul)
		return 1; /* not ours */
	return kill((pid_t)pid, 0) == 0 || errno != ESRCH;
}

int unpack_remove_stale(const char *dir, const char *prefix, struct err *e)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), fd2;
	DIR *d;
	struct dirent *de;
	int n = 0, ret = 0;

	if (dfd < 0)
		return errno == ENOENT ? 0 : err_errno(e, "cannot read %s", dir);
	/* a second fd for the removals: readdir keeps its own position */
	fd2 = dup(dfd);
	d = fd2 < 0 ? NULL : fdopendir(dfd);
	if (!d) {
		ret = err_errno(e, "cannot read %s", dir);
		close(dfd);
		if (fd2 >= 0)
			close(fd2);
		return ret;
	}
	while ((de = readdir(d))) {
		struct stat st;
		char *full;

		if (keep_entry(de->d_name, prefix))
			continue;
		/* only what this user made: in a shared sticky directory another
		 * user's entry of that name is theirs, whatever it claims */
		if (fstatat(fd2, de->d_name, &st, AT_SYMLINK_NOFOLLOW) || st.st_uid != geteuid() ||
		    !S_ISDIR(st.st_mode))
			continue;
		full = xasprintf("%s/%s", dir, de->d_name);
		if (remove_tree_at(fd2, de->d_name, full, e)) {
			if (!ret)
				ret = e->code;
		} else {
			n++;
		}
		free(full);
	}
	closedir(d);
	close(fd2);
	return ret ? ret : n;
}
