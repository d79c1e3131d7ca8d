/*
 * fuzz_unpack: libFuzzer target for the archive-reading path of `cache
 * restore` (unpack_mem: zstd/gzip/plain detection, libarchive's tar
 * reader, the name and link rules, the fd-relative extraction).
 *
 * Input: the bytes of a (possibly compressed) tar stream.  Each input is
 * extracted into a fresh directory "t" inside a private scratch directory
 * with small limits (so no input fills the disk) and two writer threads
 * (the pool restore uses), and these invariants
 * are checked:
 *   - the result is 0 or a negative ERR_* code, with a message exactly
 *     when it failed;
 *   - nothing is created in the scratch directory besides "t" (no escape
 *     through "..", absolute names, symlinks or hard links);
 *   - every symlink left in "t" resolves beneath it or not at all.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctxpack/unpack.h"
#include "ctxpack/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *scratch;

static void check(int ok)
{
	if (!ok)
		abort();
}

static void cleanup(void)
{
	struct err e = ERR_INIT;

	if (scratch)
		remove_tree(scratch, &e);
}

/* Nothing but "t" in the scratch directory. */
static void check_nothing_outside(void)
{
	DIR *d = opendir(scratch);
	struct dirent *de;

	check(d != NULL);
	while ((de = readdir(d)))
		check(!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		      !strcmp(de->d_name, "t"));
	closedir(d);
}

/* Every symlink below dir resolves inside root (or does not resolve). */
static void check_links(const char *root, const char *dir, int depth)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t rl = strlen(root);

	if (!d || depth > UNPACK_MAX_DEPTH + 2) {
		if (d)
			closedir(d);
		return;
	}
	while ((de = readdir(d))) {
		struct stat st;
		char *p, *real;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		p = xasprintf("%s/%s", dir, de->d_name);
		if (!lstat(p, &st)) {
			if (S_ISDIR(st.st_mode)) {
				check_links(root, p, depth + 1);
			} else if (S_ISLNK(st.st_mode) && (real = realpath(p, NULL))) {
				check(!strncmp(real, root, rl) && (real[rl] == '/' || !real[rl]));
				free(real);
			}
		}
		free(p);
	}
	closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct unpack_opts o = {16u << 20, 20000, 2};
	struct unpack_stats st;
	struct err e = ERR_INIT;
	char *t, *real;
	int fd, ret;

	if (!scratch) {
		char tmpl[] = "/tmp/fuzz_unpack.XXXXXX";

		check(mkdtemp(tmpl) != NULL);
		scratch = realpath(tmpl, NULL);
		check(scratch != NULL);
		atexit(cleanup);
	}
	t = xasprintf("%s/t", scratch);
	check(mkdir(t, 0755) == 0);
	fd = open(t, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	check(fd >= 0);

	ret = unpack_mem(data, size, fd, &o, &st, &e);
	check(ret <= 0);
	check((ret < 0) == (e.code != 0));
	check(ret == 0 || e.msg[0] != '\0');
	close(fd);

	check_nothing_outside();
	real = realpath(t, NULL);
	check(real != NULL);
	check_links(real, real, 0);
	free(real);

	check(remove_tree(t, &e) == 0);
	free(t);
	return 0;
}
