/*
 * fuzz_unpack: libFuzzer target for the archive-reading path of `cache
 * restore` (unpack_mem: zstd/gzip/plain detection, libarchive's tar
 * reader, the name and link rules, the fd-relative extraction).
 *
 * Input: the bytes of a (possibly compressed) tar stream.  Each input is
 * extracted twice into a fresh directory "t" inside a private scratch
 * directory, with small limits (so no input fills the disk) and two
 * writer threads (the pool restore uses): once as restore does by default
 * (symlinks verbatim) and once with safe_links.  Before each run, links
 * out of "t" are planted in it ("planted-abs" -> the scratch's "outside"
 * directory, "planted-rel" -> ../outside, "victim" -> ../outside/victim),
 * as a racer or an earlier run could leave them.  These invariants are
 * checked:
 *   - the result is 0 or a negative ERR_* code, with a message exactly
 *     when it failed;
 *   - nothing is created in the scratch directory besides "t" and
 *     "outside", and "outside" is exactly as it was: one file "victim"
 *     with its content, mode and link count (nothing created outside "t",
 *     nothing written through a link, whether the archive made the link
 *     or found it);
 *   - with safe_links, every symlink left in "t" resolves beneath it or
 *     not at all.
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

/* Nothing but "t" and "outside" in the scratch directory, and "outside"
 * as setup() made it. */
static void check_nothing_outside(void)
{
	DIR *d = opendir(scratch);
	struct dirent *de;
	struct stat st;
	char *p, buf[16];
	int fd;
	ssize_t n;

	check(d != NULL);
	while ((de = readdir(d)))
		check(!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		      !strcmp(de->d_name, "t") || !strcmp(de->d_name, "outside"));
	closedir(d);
	p = xasprintf("%s/outside", scratch);
	d = opendir(p);
	check(d != NULL);
	while ((de = readdir(d)))
		check(!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		      !strcmp(de->d_name, "victim"));
	closedir(d);
	check(lstat(p, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0755);
	free(p);
	p = xasprintf("%s/outside/victim", scratch);
	check(lstat(p, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0644 &&
	      st.st_nlink == 1 && st.st_size == 5);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	check(fd >= 0);
	n = read(fd, buf, sizeof(buf));
	check(n == 5 && !memcmp(buf, "orig\n", 5));
	close(fd);
	free(p);
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

static void setup(void)
{
	char tmpl[] = "/tmp/fuzz_unpack.XXXXXX";
	char *p;
	int fd;

	check(mkdtemp(tmpl) != NULL);
	scratch = realpath(tmpl, NULL);
	check(scratch != NULL);
	atexit(cleanup);
	p = xasprintf("%s/outside", scratch);
	check(mkdir(p, 0755) == 0 && chmod(p, 0755) == 0);
	free(p);
	p = xasprintf("%s/outside/victim", scratch);
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	check(fd >= 0 && write(fd, "orig\n", 5) == 5 && fchmod(fd, 0644) == 0);
	close(fd);
	free(p);
}

static void extract(const uint8_t *data, size_t size, int safe_links)
{
	struct unpack_opts o = {.max_bytes = 16u << 20, .max_entries = 20000, .threads = 2,
				.safe_links = safe_links, .max_stream = 64u << 20};
	struct unpack_stats st;
	struct err e = ERR_INIT;
	char *t, *real, *p;
	int fd, ret;

	t = xasprintf("%s/t", scratch);
	check(mkdir(t, 0755) == 0);
	/* links out, planted before the extraction */
	p = xasprintf("%s/planted-abs", t);
	real = xasprintf("%s/outside", scratch);
	check(symlink(real, p) == 0);
	free(real);
	free(p);
	p = xasprintf("%s/planted-rel", t);
	check(symlink("../outside", p) == 0);
	free(p);
	p = xasprintf("%s/victim", t);
	check(symlink("../outside/victim", p) == 0);
	free(p);
	fd = open(t, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	check(fd >= 0);

	ret = unpack_mem(data, size, fd, &o, &st, &e);
	check(ret <= 0);
	check((ret < 0) == (e.code != 0));
	check(ret == 0 || e.msg[0] != '\0');
	close(fd);

	check_nothing_outside();
	if (safe_links && ret == 0) {
		/* the planted links are not the archive's: gone from the check */
		p = xasprintf("%s/planted-abs", t);
		unlink(p);
		free(p);
		p = xasprintf("%s/planted-rel", t);
		unlink(p);
		free(p);
		p = xasprintf("%s/victim", t);
		{
			struct stat sb;

			if (!lstat(p, &sb) && S_ISLNK(sb.st_mode))
				unlink(p);
		}
		free(p);
		real = realpath(t, NULL);
		check(real != NULL);
		check_links(real, real, 0);
		free(real);
	}
	err_clear(&e);
	check(remove_tree(t, &e) == 0);
	free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!scratch)
		setup();
	extract(data, size, 0);
	extract(data, size, 1);
	return 0;
}
