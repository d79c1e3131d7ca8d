/*
 * Unit tests of the safe extractor: the name and link rules, and
 * extraction of hand-built ustar archives (normal trees, refused names,
 * escaping links, writes through links, hard links, limits, garbage) into
 * temporary directories, checking that nothing lands outside.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctxpack/unpack.h"
#include "ctxpack/util.h"

/* ---- a minimal ustar writer ---- */

static void tar_entry(struct buf *b, const char *name, char type, unsigned mode,
		      const char *data, const char *link)
{
	unsigned char h[512];
	size_t size = data ? strlen(data) : 0, i;
	unsigned sum = 0;

	memset(h, 0, sizeof(h));
	assert_true(strlen(name) < 100);
	memcpy(h, name, strlen(name));
	snprintf((char *)h + 100, 8, "%07o", mode);
	snprintf((char *)h + 108, 8, "%07o", 0);
	snprintf((char *)h + 116, 8, "%07o", 0);
	{
		char num[32];

		snprintf(num, sizeof(num), "%011lo", (unsigned long)size & 077777777777ul);
		memcpy(h + 124, num, 11);
	}
	snprintf((char *)h + 136, 12, "%011o", 946684800);
	memset(h + 148, ' ', 8);
	h[156] = (unsigned char)type;
	if (link)
		memcpy(h + 157, link, strlen(link));
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	for (i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	h[155] = ' ';
	buf_add(b, h, 512);
	if (size) {
		static const char zero[512];

		buf_add(b, data, size);
		buf_add(b, zero, (512 - size % 512) % 512);
	}
}

static void tar_end(struct buf *b)
{
	static const char zero[1024];

	buf_add(b, zero, sizeof(zero));
}

/* ---- a scratch directory: root/ (the target) and root/../outside ---- */

struct scratch {
	char top[64];
	char target[128];
	int fd;
};

static void scratch_new(struct scratch *s)
{
	strcpy(s->top, "/tmp/ctxpack-unit-unpack.XXXXXX");
	assert_non_null(mkdtemp(s->top));
	snprintf(s->target, sizeof(s->target), "%s/t", s->top);
	assert_int_equal(mkdir(s->target, 0755), 0);
	s->fd = open(s->target, O_RDONLY | O_DIRECTORY);
	assert_true(s->fd >= 0);
}

static int exists_in(const struct scratch *s, const char *rel)
{
	struct stat st;
	char p[256];

	snprintf(p, sizeof(p), "%s/%s", s->top, rel);
	return lstat(p, &st) == 0;
}

/* Entries in the top directory besides the target itself. */
static int outside_count(const struct scratch *s)
{
	char cmd[256];
	FILE *f;
	int n = 0, c;

	snprintf(cmd, sizeof(cmd), "ls -A '%s' | grep -vx t | wc -l", s->top);
	f = popen(cmd, "r");
	assert_non_null(f);
	c = fscanf(f, "%d", &n);
	pclose(f);
	assert_int_equal(c, 1);
	return n;
}

static void scratch_free(struct scratch *s)
{
	struct err e = ERR_INIT;

	close(s->fd);
	assert_int_equal(remove_tree(s->top, &e), 0);
}

static int run_unpack(struct scratch *s, const struct buf *b, struct err *e)
{
	struct unpack_stats st;

	return unpack_mem(b->data, b->len, s->fd, NULL, &st, e);
}

/* ---- the rules ---- */

static void test_clean_name(void **state)
{
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;

	assert_int_equal(unpack_clean_name("a/b/c", &b, &e), 0);
	assert_string_equal(b.data, "a/b/c");
	assert_int_equal(unpack_clean_name("./a//b/./c/", &b, &e), 0);
	assert_string_equal(b.data, "a/b/c");
	assert_int_equal(unpack_clean_name("...", &b, &e), 0);
	assert_string_equal(b.data, "...");
	assert_int_equal(unpack_clean_name("a/..b", &b, &e), 0);
	assert_int_equal(unpack_clean_name(".", &b, &e), 1);
	assert_int_equal(unpack_clean_name("./", &b, &e), 1);
	assert_int_equal(unpack_clean_name("", &b, &e), 1);
	assert_int_equal(unpack_clean_name("/etc/passwd", &b, &e), ERR_CORRUPT);
	err_clear(&e);
	assert_int_equal(unpack_clean_name("..", &b, &e), ERR_CORRUPT);
	err_clear(&e);
	assert_int_equal(unpack_clean_name("a/../b", &b, &e), ERR_CORRUPT);
	err_clear(&e);
	assert_int_equal(unpack_clean_name("a/b/..", &b, &e), ERR_CORRUPT);
	assert_non_null(strstr(e.msg, ".."));
	err_clear(&e);
	buf_release(&b);
}

static void test_clean_name_depth(void **state)
{
	struct buf b = BUF_INIT, name = BUF_INIT;
	struct err e = ERR_INIT;
	int i;

	for (i = 0; i < UNPACK_MAX_DEPTH; i++)
		buf_addstr(&name, i ? "/d" : "d");
	assert_int_equal(unpack_clean_name(name.data, &b, &e), 0);
	buf_addstr(&name, "/d");
	assert_int_equal(unpack_clean_name(name.data, &b, &e), ERR_CORRUPT);
	buf_release(&b);
	buf_release(&name);
}

static void test_link_inside(void **state)
{
	assert_true(unpack_link_inside("a", "b"));
	assert_true(unpack_link_inside("a", "./b/c"));
	assert_true(unpack_link_inside("d/a", "../b"));
	assert_true(unpack_link_inside("d/e/a", "../../b"));
	assert_true(unpack_link_inside("d/a", "x/../../y"));
	assert_true(unpack_link_inside("a", "."));
	assert_false(unpack_link_inside("a", ".."));
	assert_false(unpack_link_inside("a", "../b"));
	assert_false(unpack_link_inside("d/a", "../../b"));
	assert_false(unpack_link_inside("d/a", "x/../../../y"));
	assert_false(unpack_link_inside("a", "/etc"));
	assert_false(unpack_link_inside("a", ""));
	assert_false(unpack_link_inside("a", "b/../.."));
}

/* ---- extraction ---- */

static void test_extract_tree(void **state)
{
	struct scratch s;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	struct unpack_stats st;
	struct stat sb;
	char p[256], l[64];
	ssize_t n;

	scratch_new(&s);
	tar_entry(&b, "./", '5', 0755, NULL, NULL);
	tar_entry(&b, "dir/", '5', 0700, NULL, NULL);
	tar_entry(&b, "dir/empty/", '5', 0755, NULL, NULL);
	tar_entry(&b, "dir/file", '0', 0600, "hello\n", NULL);
	tar_entry(&b, "dir/tool", '0', 0700, "#!/bin/sh\n", NULL);
	tar_entry(&b, "dir/link", '2', 0777, NULL, "file");
	tar_entry(&b, "dir/hard", '1', 0644, NULL, "dir/file");
	tar_entry(&b, "implicit/parent/f", '0', 0644, "x", NULL);
	tar_entry(&b, "dev", '3', 0644, NULL, NULL);
	tar_end(&b);
	assert_int_equal(unpack_mem(b.data, b.len, s.fd, NULL, &st, &e), 0);
	assert_int_equal(st.entries, 9);
	assert_int_equal(st.files, 3);
	assert_int_equal(st.symlinks, 1);
	assert_int_equal(st.hardlinks, 1);
	assert_int_equal(st.skipped, 2); /* "./" and the device */

	snprintf(p, sizeof(p), "%s/dir/file", s.target);
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0644);
	assert_int_equal(sb.st_size, 6);
	assert_int_equal(sb.st_nlink, 2);
	snprintf(p, sizeof(p), "%s/dir/tool", s.target);
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0755);
	snprintf(p, sizeof(p), "%s/dir", s.target);
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0755);
	snprintf(p, sizeof(p), "%s/dir/empty", s.target);
	assert_int_equal(stat(p, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	snprintf(p, sizeof(p), "%s/dir/link", s.target);
	n = readlink(p, l, sizeof(l) - 1);
	assert_int_equal(n, 4);
	l[n] = '\0';
	assert_string_equal(l, "file");
	assert_true(exists_in(&s, "t/implicit/parent/f"));
	assert_false(exists_in(&s, "t/dev"));
	assert_int_equal(outside_count(&s), 0);
	scratch_free(&s);
	buf_release(&b);
}

/* Each archive must be refused and write nothing outside the target. */
static void refused(void (*build)(struct buf *), const char *why)
{
	struct scratch s;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;

	scratch_new(&s);
	build(&b);
	tar_end(&b);
	assert_int_equal(run_unpack(&s, &b, &e), ERR_CORRUPT);
	if (!strstr(e.msg, why))
		fail_msg("message '%s' lacks '%s'", e.msg, why);
	assert_int_equal(outside_count(&s), 0);
	scratch_free(&s);
	buf_release(&b);
}

static void b_dotdot(struct buf *b) { tar_entry(b, "../outside", '0', 0644, "x", NULL); }
static void b_dotdot_mid(struct buf *b) { tar_entry(b, "a/../../outside", '0', 0644, "x", NULL); }
static void b_abs(struct buf *b) { tar_entry(b, "/tmp/ctxpack-unit-abs", '0', 0644, "x", NULL); }
static void b_link_up(struct buf *b) { tar_entry(b, "l", '2', 0777, NULL, "../outside"); }
static void b_link_abs(struct buf *b) { tar_entry(b, "l", '2', 0777, NULL, "/etc"); }
static void b_link_deep(struct buf *b) { tar_entry(b, "a/b/l", '2', 0777, NULL, "../../../x"); }
static void b_through(struct buf *b)
{
	tar_entry(b, "sub/", '5', 0755, NULL, NULL);
	tar_entry(b, "l", '2', 0777, NULL, "sub");
	tar_entry(b, "l/f", '0', 0644, "x", NULL);
}
static void b_chain(struct buf *b)
{
	tar_entry(b, "d/", '5', 0755, NULL, NULL);
	tar_entry(b, "d/up", '2', 0777, NULL, "..");
	tar_entry(b, "x", '2', 0777, NULL, "d/up/../outside");
}
static void b_hard_up(struct buf *b) { tar_entry(b, "h", '1', 0644, NULL, "../outside"); }
static void b_hard_missing(struct buf *b) { tar_entry(b, "h", '1', 0644, NULL, "nope"); }
static void b_hard_dir(struct buf *b)
{
	tar_entry(b, "d/", '5', 0755, NULL, NULL);
	tar_entry(b, "h", '1', 0644, NULL, "d");
}
static void b_replace_dir(struct buf *b)
{
	tar_entry(b, "d/", '5', 0755, NULL, NULL);
	tar_entry(b, "d", '0', 0644, "x", NULL);
}
static void b_file_then_dir(struct buf *b)
{
	tar_entry(b, "f", '0', 0644, "x", NULL);
	tar_entry(b, "f/g", '0', 0644, "x", NULL);
}
static void b_root_file(struct buf *b) { tar_entry(b, ".", '0', 0644, "x", NULL); }

static void test_refused(void **state)
{
	refused(b_dotdot, "'..'");
	refused(b_dotdot_mid, "'..'");
	refused(b_abs, "absolute");
	refused(b_link_up, "leads out");
	refused(b_link_abs, "leads out");
	refused(b_link_deep, "leads out");
	refused(b_through, "goes through a symlink");
	refused(b_chain, "through other links");
	refused(b_hard_up, "'..'");
	refused(b_hard_missing, "not a regular file");
	refused(b_hard_dir, "not a regular file");
	refused(b_replace_dir, "replace a directory");
	refused(b_file_then_dir, "goes through a symlink or a file");
	refused(b_root_file, "root itself");
	assert_false(access("/tmp/ctxpack-unit-abs", F_OK) == 0);
}

static void test_replace_file(void **state)
{
	struct scratch s;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	char p[256], l[16];

	scratch_new(&s);
	tar_entry(&b, "f", '0', 0644, "one", NULL);
	tar_entry(&b, "f", '0', 0644, "two", NULL);
	tar_entry(&b, "l", '2', 0777, NULL, "f");
	tar_entry(&b, "l", '0', 0644, "now a file", NULL);
	tar_end(&b);
	assert_int_equal(run_unpack(&s, &b, &e), 0);
	snprintf(p, sizeof(p), "%s/f", s.target);
	{
		int fd = open(p, O_RDONLY);
		ssize_t n = read(fd, l, sizeof(l));

		close(fd);
		assert_int_equal(n, 3);
		assert_memory_equal(l, "two", 3);
	}
	snprintf(p, sizeof(p), "%s/l", s.target);
	assert_int_equal(readlink(p, l, sizeof(l)), -1); /* a file now, not a link */
	scratch_free(&s);
	buf_release(&b);
}

static void test_limits_and_garbage(void **state)
{
	struct unpack_opts o = {10, 0, 0};
	struct scratch s;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	static const char junk[] = "this is not an archive at all, not even close........";

	scratch_new(&s);
	tar_entry(&b, "big", '0', 0644, "more than ten bytes", NULL);
	tar_end(&b);
	assert_int_equal(unpack_mem(b.data, b.len, s.fd, &o, NULL, &e), ERR_CORRUPT);
	assert_non_null(strstr(e.msg, "more than 10 bytes"));
	err_clear(&e);
	o.max_bytes = 0;
	o.max_entries = 1;
	buf_reset(&b);
	tar_entry(&b, "a", '0', 0644, "x", NULL);
	tar_entry(&b, "b", '0', 0644, "x", NULL);
	tar_end(&b);
	assert_int_equal(unpack_mem(b.data, b.len, s.fd, &o, NULL, &e), ERR_CORRUPT);
	err_clear(&e);
	assert_true(unpack_mem(junk, sizeof(junk), s.fd, NULL, NULL, &e) < 0);
	err_clear(&e);
	/* truncated: a header promising data that is not there */
	buf_reset(&b);
	tar_entry(&b, "t", '0', 0644, "data that will be cut off", NULL);
	assert_true(unpack_mem(b.data, 600, s.fd, NULL, NULL, &e) < 0);
	assert_int_equal(outside_count(&s), 0);
	scratch_free(&s);
	buf_release(&b);
}

static void test_unpack_fd_pipe(void **state)
{
	struct scratch s;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	int p[2];
	char path[256];

	scratch_new(&s);
	tar_entry(&b, "x/y", '0', 0644, "through a pipe", NULL);
	tar_end(&b);
	assert_int_equal(pipe(p), 0);
	assert_true(b.len < 65536);
	assert_int_equal(write_all(p[1], b.data, b.len), 0);
	close(p[1]);
	assert_int_equal(unpack_fd(p[0], s.fd, NULL, NULL, &e), 0);
	close(p[0]);
	snprintf(path, sizeof(path), "%s/x/y", s.target);
	assert_int_equal(access(path, F_OK), 0);
	scratch_free(&s);
	buf_release(&b);
}

/* The zstd path (the feeder thread): whole, multi-frame, truncated and
 * damaged streams.  The streams come from the zstd program. */
static void test_zstd(void **state)
{
	struct scratch s;
	struct buf b = BUF_INIT, z = BUF_INIT, z2 = BUF_INIT;
	struct err e = ERR_INIT;
	char cmd[2048], tar[200], zst[200];
	int i, fd;

	if (system("zstd --version >/dev/null 2>&1")) {
		skip();
		return;
	}
	scratch_new(&s);
	/* enough data for several slots of the feeder */
	for (i = 0; i < 40; i++) {
		char name[32], *data = xmalloc(100001);

		snprintf(name, sizeof(name), "d/f%02d", i);
		memset(data, 'a' + i % 26, 100000);
		data[100000] = '\0';
		tar_entry(&b, name, '0', i % 2 ? 0755 : 0644, data, NULL);
		free(data);
	}
	tar_end(&b);
	snprintf(tar, sizeof(tar), "%s/a.tar", s.top);
	snprintf(zst, sizeof(zst), "%s/a.tar.zst", s.top);
	fd = open(tar, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_int_equal(write_all(fd, b.data, b.len), 0);
	close(fd);
	/* two frames: the pack writes many */
	snprintf(cmd, sizeof(cmd), "head -c 1000000 '%s' | zstd -q -c > '%s' && "
		 "tail -c +1000001 '%s' | zstd -q -c >> '%s' && rm '%s'", tar, zst, tar, zst, tar);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(buf_read_file(&z, zst, 0, &e), 0);
	unlink(zst);
	assert_int_equal(unpack_mem(z.data, z.len, s.fd, NULL, NULL, &e), 0);
	{
		char p[256];
		struct stat sb;

		snprintf(p, sizeof(p), "%s/d/f39", s.target);
		assert_int_equal(stat(p, &sb), 0);
		assert_int_equal(sb.st_size, 100000);
		assert_int_equal(sb.st_mode & 07777, 0755);
	}
	/* the same through a pipe, as restore streams it */
	{
		int p[2];
		pid_t pid;
		struct scratch s2;

		scratch_new(&s2);
		assert_int_equal(pipe(p), 0);
		pid = fork();
		if (pid == 0) {
			close(p[0]);
			_exit(write_all(p[1], z.data, z.len) ? 1 : 0);
		}
		close(p[1]);
		assert_int_equal(unpack_fd(p[0], s2.fd, NULL, NULL, &e), 0);
		close(p[0]);
		waitpid(pid, NULL, 0);
		scratch_free(&s2);
	}
	/* truncated */
	buf_add(&z2, z.data, z.len - 7);
	{
		struct scratch s3;

		scratch_new(&s3);
		assert_true(unpack_mem(z2.data, z2.len, s3.fd, NULL, NULL, &e) < 0);
		if (!strstr(e.msg, "truncated") && !strstr(e.msg, "zstd"))
			fail_msg("truncated stream: %s", e.msg);
		err_clear(&e);
		scratch_free(&s3);
	}
	/* damaged in the middle */
	buf_reset(&z2);
	buf_add(&z2, z.data, z.len);
	z2.data[z2.len / 2] ^= 0x55;
	{
		struct scratch s4;

		scratch_new(&s4);
		assert_true(unpack_mem(z2.data, z2.len, s4.fd, NULL, NULL, &e) < 0);
		err_clear(&e);
		scratch_free(&s4);
	}
	scratch_free(&s);
	buf_release(&b);
	buf_release(&z);
	buf_release(&z2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clean_name),
		cmocka_unit_test(test_clean_name_depth),
		cmocka_unit_test(test_link_inside),
		cmocka_unit_test(test_extract_tree),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_replace_file),
		cmocka_unit_test(test_limits_and_garbage),
		cmocka_unit_test(test_unpack_fd_pipe),
		cmocka_unit_test(test_zstd),
	};

	setlocale(LC_CTYPE, "C.UTF-8");
	umask(022);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
