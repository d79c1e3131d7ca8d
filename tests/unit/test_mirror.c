/*
 * Unit tests of mirror_sync (the directory `ctxpack build` hands BuildKit):
 * the mirror holds exactly the walk's entries with their types, modes,
 * contents, link targets, hard links and mtimes; it follows edits,
 * removals, type changes and mode changes; whatever was in the mirror
 * before (stray files, a symlink where a directory goes) is removed
 * without being followed; the walked tree is never changed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctxpack/mirror.h"
#include "ctxpack/util.h"
#include "ctxpack/walk.h"

static char *tmpdir_new(void)
{
	char *t = xstrdup("/tmp/ctxpack-mirror-XXXXXX");

	assert_non_null(mkdtemp(t));
	return t;
}

static void put(const char *root, const char *rel, const char *data, mode_t mode)
{
	char *p = xasprintf("%s/%s", root, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, data, strlen(data)), 0);
	close(fd);
	assert_int_equal(chmod(p, mode), 0);
	free(p);
}

static void mk(const char *root, const char *rel, mode_t mode)
{
	char *p = xasprintf("%s/%s", root, rel);

	assert_int_equal(mkdir(p, 0700), 0);
	assert_int_equal(chmod(p, mode), 0);
	free(p);
}

/* A symlink dated in 2001: a copy that does not carry the link's own mtime
 * over shows, whatever second the test runs in. */
static void sym(const char *root, const char *rel, const char *target)
{
	char *p = xasprintf("%s/%s", root, rel);
	struct timespec ts[2] = {{1000000000, 0}, {1000000000, 0}};

	assert_int_equal(symlink(target, p), 0);
	assert_int_equal(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
	free(p);
}

/* One line per entry below dir, sorted: path, type, mode, mtime, content or
 * target, and a hard-link group id (the first path of the inode). */
static void listing(const char *dir, const char *rel, struct buf *out, struct buf *inodes)
{
	char *p = xasprintf("%s%s%s", dir, *rel ? "/" : "", rel);
	struct dirent **names;
	int n, i;

	n = scandir(p, &names, NULL, alphasort);
	assert_true(n >= 0);
	for (i = 0; i < n; i++) {
		const char *nm = names[i]->d_name;
		char *r, *f;
		struct stat st;

		if (!strcmp(nm, ".") || !strcmp(nm, "..")) {
			free(names[i]);
			continue;
		}
		r = xasprintf("%s%s%s", rel, *rel ? "/" : "", nm);
		f = xasprintf("%s/%s", dir, r);
		assert_int_equal(lstat(f, &st), 0);
		buf_addf(out, "%s %o %lld ", r, (unsigned)st.st_mode,
			 S_ISDIR(st.st_mode) ? 0LL : (long long)st.st_mtim.tv_sec);
		if (S_ISLNK(st.st_mode)) {
			char t[4096];
			ssize_t k = readlink(f, t, sizeof(t) - 1);

			assert_true(k >= 0);
			t[k] = '\0';
			buf_addf(out, "-> %s", t);
		} else if (S_ISREG(st.st_mode)) {
			struct buf c = BUF_INIT;
			struct err e = ERR_INIT;
			char key[64], *hit;

			assert_int_equal(buf_read_file(&c, f, 1 << 20, &e), 0);
			buf_addf(out, "[%.*s]", (int)c.len, c.data ? c.data : "");
			buf_release(&c);
			/* hard-link groups by the first path seen */
			snprintf(key, sizeof(key), "\n%llu=", (unsigned long long)st.st_ino);
			hit = inodes->data ? strstr(inodes->data, key) : NULL;
			if (hit)
				buf_addf(out, " link:%.*s", (int)strcspn(hit + strlen(key), "\n"),
					 hit + strlen(key));
			else
				buf_addf(inodes, "%s%s", key, r);
		}
		buf_addch(out, '\n');
		if (S_ISDIR(st.st_mode))
			listing(dir, r, out, inodes);
		free(r);
		free(f);
		free(names[i]);
	}
	free(names);
	free(p);
}

/* The mirror must equal the source as the walk sees it (minus excluded). */
static void check_same(const char *src, const char *dst)
{
	struct buf a = BUF_INIT, b = BUF_INIT, ia = BUF_INIT, ib = BUF_INIT;

	buf_addch(&ia, '\n');
	buf_addch(&ib, '\n');
	listing(src, "", &a, &ia);
	listing(dst, "", &b, &ib);
	if (strcmp(a.data ? a.data : "", b.data ? b.data : ""))
		print_message("source:\n%s\nmirror:\n%s\n", a.data, b.data);
	assert_string_equal(a.data ? a.data : "", b.data ? b.data : "");
	buf_release(&a);
	buf_release(&b);
	buf_release(&ia);
	buf_release(&ib);
}

static void msync(const char *src, const char *dst, struct mirror_stats *st)
{
	struct walk_opts o = {0};
	struct walk_result r;
	struct err e = ERR_INIT;

	o.dir = src;
	assert_int_equal(walk_run(&o, &r, &e), 0);
	if (mirror_sync(&r, dst, st, &e))
		print_message("%s\n", e.msg);
	assert_false(err_isset(&e));
	walk_release(&r);
}

static void test_mirror(void **state)
{
	char *t = tmpdir_new(), *src = xasprintf("%s/src", t), *dst = xasprintf("%s/dst", t);
	char *p, *q;
	struct mirror_stats st;
	struct stat before, after;
	struct err e = ERR_INIT;

	(void)state;
	assert_int_equal(mkdir(src, 0755), 0);
	put(src, "a", "aaa", 0644);
	put(src, "key", "secret", 0600);
	put(src, "run.sh", "#!/bin/sh\n", 0750);
	put(src, "suid", "s", 04755);
	mk(src, "d", 0755);
	mk(src, "d/priv", 0700);
	put(src, "d/priv/f", "p", 0644);
	mk(src, "tmp", 01777);
	mk(src, "empty", 0755);
	mk(src, "ro", 0555);
	sym(src, "l-abs", "/etc/passwd");
	sym(src, "l-up", "../outside");
	sym(src, "d/l-rel", "../a");
	p = xasprintf("%s/a", src);
	q = xasprintf("%s/d/hard", src);
	assert_int_equal(link(p, q), 0);
	free(q);
	assert_int_equal(stat(p, &before), 0);
	put(src, "x.log", "ignored", 0644);
	put(src, ".dockerignore", "*.log\n.dockerignore\n", 0644);
	/* copies of files changed within 100 ms of the copy are made again
	 * next time (the racy rule): let the tree settle first */
	usleep(150000);
	/* the ignored entries are not in the mirror: compare against a source
	 * view without them */
	msync(src, dst, &st);
	assert_true(st.copied > 0);
	{
		char *ig = xasprintf("%s/x.log", src), *di = xasprintf("%s/.dockerignore", src);
		char *keep_i = xasprintf("%s/x.log.keep", t), *keep_d = xasprintf("%s/di.keep", t);

		rename(ig, keep_i);
		rename(di, keep_d);
		check_same(src, dst);
		rename(keep_i, ig);
		rename(keep_d, di);
		free(ig);
		free(di);
		free(keep_i);
		free(keep_d);
	}
	/* the source files are untouched: no link, same ctime */
	assert_int_equal(stat(p, &after), 0);
	assert_int_equal(after.st_nlink, 2);
	assert_int_equal(after.st_ctim.tv_sec, before.st_ctim.tv_sec);
	assert_int_equal(after.st_ctim.tv_nsec, before.st_ctim.tv_nsec);
	free(p);

	/* unchanged: nothing copied or removed */
	msync(src, dst, &st);
	assert_int_equal(st.copied, 0);
	assert_int_equal(st.removed, 0);
	assert_int_equal(st.dirs, 0);

	/* changes of every kind */
	usleep(150000); /* out of the racy window of the first copies */
	put(src, "a", "bbbb", 0644);          /* content (both hard links) */
	p = xasprintf("%s/key", src);
	chmod(p, 0640);                        /* mode */
	free(p);
	p = xasprintf("%s/run.sh", src);
	unlink(p);                             /* removed */
	free(p);
	p = xasprintf("%s/d/priv/f", src);
	unlink(p);
	free(p);
	p = xasprintf("%s/d/priv", src);
	rmdir(p);                              /* a directory replaced by a file */
	free(p);
	put(src, "d/priv", "now a file", 0644);
	p = xasprintf("%s/empty", src);
	rmdir(p);
	free(p);
	sym(src, "empty", "a");                /* a directory replaced by a symlink */
	p = xasprintf("%s/l-abs", src);
	unlink(p);
	free(p);
	sym(src, "l-abs", "/etc/group");       /* a link's target */
	mk(src, "new", 0710);
	put(src, "new/n", "n", 0644);          /* added */
	/* junk in the mirror: a stray file, and a symlink to outside where a
	 * directory of the source is: removed, never followed */
	put(dst, "stray", "x", 0644);
	{
		char *out = xasprintf("%s/outside", t), *link_at = xasprintf("%s/tmp", dst);
		char *victim = xasprintf("%s/outside/f", t);

		assert_int_equal(mkdir(out, 0755), 0);
		chmod(link_at, 0700);
		assert_int_equal(remove_tree(link_at, &e), 0);
		assert_int_equal(symlink(out, link_at), 0);
		msync(src, dst, &st);
		assert_true(st.removed >= 2);
		assert_int_equal(access(victim, F_OK), -1); /* nothing written through it */
		free(out);
		free(link_at);
		free(victim);
	}
	{
		char *ig = xasprintf("%s/x.log", src), *di = xasprintf("%s/.dockerignore", src);

		unlink(ig);
		unlink(di);
		check_same(src, dst);
		free(ig);
		free(di);
	}

	/* --normalize-modes: copies with git-style modes */
	{
		struct walk_opts o = {0};
		struct walk_result r;
		char *n = xasprintf("%s/norm", t), *k = xasprintf("%s/norm/key", t);
		struct stat ks;

		o.dir = src;
		o.flags = WALK_NORMALIZE_MODES;
		assert_int_equal(walk_run(&o, &r, &e), 0);
		assert_int_equal(mirror_sync(&r, n, NULL, &e), 0);
		assert_int_equal(stat(k, &ks), 0);
		assert_int_equal(ks.st_mode & 07777, 0644);
		walk_release(&r);
		free(n);
		free(k);
	}
	p = xasprintf("%s/ro", dst);
	chmod(p, 0755);
	free(p);
	p = xasprintf("%s/ro", src);
	chmod(p, 0755);
	free(p);
	remove_tree(t, &e);
	free(src);
	free(dst);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mirror),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
