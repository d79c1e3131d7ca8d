/*
 * Unit tests of the safe extractor: the name and link rules, and
 * extraction of hand-built ustar archives (normal trees, refused names,
 * links kept verbatim, writes through links, hard links, exact modes,
 * limits, garbage) into temporary directories, checking that nothing
 * lands outside and nothing outside changes.
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
#include "../../src/pack/unpack_internal.h"

/* ---- a minimal ustar writer ---- */

static void tar_header(struct buf *b, const char *name, char type, unsigned mode,
		       unsigned long long size, const char *link)
{
	unsigned char h[512];
	size_t i;
	unsigned sum = 0;

	memset(h, 0, sizeof(h));
	assert_true(strlen(name) < 100);
	memcpy(h, name, strlen(name));
	snprintf((char *)h + 100, 8, "%07o", mode);
	snprintf((char *)h + 108, 8, "%07o", 0);
	snprintf((char *)h + 116, 8, "%07o", 0);
	{
		char num[32];

		snprintf(num, sizeof(num), "%011llo", size & 077777777777ull);
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
}

static void tar_entry(struct buf *b, const char *name, char type, unsigned mode,
		      const char *data, const char *link)
{
	size_t size = data ? strlen(data) : 0;

	tar_header(b, name, type, mode, size, link);
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

/* ---- a scratch directory: top/t (the target) and top/outside-dir/victim,
 * which no extraction may touch ---- */

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
	{
		char p[256];
		int fd;

		snprintf(p, sizeof(p), "%s/outside-dir", s->top);
		assert_int_equal(mkdir(p, 0755), 0);
		snprintf(p, sizeof(p), "%s/outside-dir/victim", s->top);
		fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
		assert_true(fd >= 0);
		assert_int_equal(write_all(fd, "orig\n", 5), 0);
		assert_int_equal(fchmod(fd, 0644), 0); /* whatever the umask */
		close(fd);
		snprintf(p, sizeof(p), "%s/outside-dir", s->top);
		assert_int_equal(chmod(p, 0755), 0);
	}
}

static int exists_in(const struct scratch *s, const char *rel)
{
	struct stat st;
	char p[256];

	snprintf(p, sizeof(p), "%s/%s", s->top, rel);
	return lstat(p, &st) == 0;
}

/* Entries in the top directory besides the target and outside-dir, plus
 * 1000 when outside-dir is not exactly what scratch_new made. */
static int outside_count(const struct scratch *s)
{
	char cmd[512];
	FILE *f;
	int n = 0, c;

	snprintf(cmd, sizeof(cmd), "cd '%s' && n=$(ls -A | grep -vx -e t -e outside-dir | wc -l) && "
		 "test \"$(ls -A outside-dir)\" = victim && test \"$(cat outside-dir/victim)\" = orig && "
		 "test \"$(stat -c '%%a %%h %%F' outside-dir/victim outside-dir)\" = "
		 "\"$(printf '644 1 regular file\\n755 2 directory')\" && echo $n || echo 1000", s->top);
	f = popen(cmd, "r");
	assert_non_null(f);
	c = fscanf(f, "%d", &n);
	pclose(f);
	if (n) {
		snprintf(cmd, sizeof(cmd), "cd '%s' && ls -lAR >&2", s->top);
		if (system(cmd)) {}
	}
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
	assert_int_equal(sb.st_mode & 07777, 0600); /* exact, as tar -x as root */
	assert_int_equal(sb.st_size, 6);
	assert_int_equal(sb.st_nlink, 2);
	snprintf(p, sizeof(p), "%s/dir/tool", s.target);
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0700);
	snprintf(p, sizeof(p), "%s/dir", s.target);
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0700);
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
/* a link out, then an entry through it: the link is kept, the entry is
 * refused, nothing is written where the link points */
static void b_through_out(struct buf *b)
{
	tar_entry(b, "esc", '2', 0777, NULL, "../outside-dir");
	tar_entry(b, "esc/pwned", '0', 0644, "x", NULL);
}
static void b_through_abs(struct buf *b)
{
	tar_entry(b, "d/", '5', 0755, NULL, NULL);
	tar_entry(b, "d/esc", '2', 0777, NULL, "/tmp");
	tar_entry(b, "d/esc/ctxpack-unit-abs", '0', 0644, "x", NULL);
}
static void b_hard_through(struct buf *b)
{
	tar_entry(b, "esc", '2', 0777, NULL, "../outside-dir");
	tar_entry(b, "h", '1', 0644, NULL, "esc/victim");
}
static void b_hard_later(struct buf *b)
{
	tar_entry(b, "h", '1', 0644, NULL, "f");
	tar_entry(b, "f", '0', 0644, "x", NULL);
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
	refused(b_through, "goes through a symlink");
	refused(b_through_out, "goes through a symlink");
	refused(b_through_abs, "goes through a symlink");
	refused(b_hard_up, "'..'");
	refused(b_hard_missing, "no such entry");
	refused(b_hard_later, "no such entry");
	refused(b_hard_through, "no such entry");
	refused(b_hard_dir, "a directory");
	refused(b_replace_dir, "replace a directory");
	refused(b_file_then_dir, "goes through a symlink or a file");
	refused(b_root_file, "root itself");
	assert_false(access("/tmp/ctxpack-unit-abs", F_OK) == 0);
}

/* ---- links kept verbatim, never followed ---- */

static void readlink_is(const struct scratch *s, const char *rel, const char *want)
{
	char p[256], l[256];
	ssize_t n;

	snprintf(p, sizeof(p), "%s/%s", s->target, rel);
	n = readlink(p, l, sizeof(l) - 1);
	if (n < 0)
		fail_msg("%s is not a symlink", rel);
	l[n] = '\0';
	assert_string_equal(l, want);
}

static mode_t mode_of(const struct scratch *s, const char *rel)
{
	char p[256];
	struct stat sb;

	snprintf(p, sizeof(p), "%s/%s", s->target, rel);
	if (lstat(p, &sb))
		fail_msg("%s is missing", rel);
	return sb.st_mode;
}

/* What a venv and a workspace node_modules hold: links out of the tree,
 * absolute, dangling, chains; all restored as they are. */
static void test_links_verbatim(void **state)
{
	struct scratch s;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	struct unpack_stats st;

	scratch_new(&s);
	tar_entry(&b, "bin/", '5', 0755, NULL, NULL);
	tar_entry(&b, "bin/python3", '2', 0777, NULL, "/usr/bin/python3");
	tar_entry(&b, "bin/python", '2', 0777, NULL, "python3");
	tar_entry(&b, "lib64", '2', 0777, NULL, "lib");
	tar_entry(&b, "node_modules/app", '2', 0777, NULL, "../packages/app");
	tar_entry(&b, "up", '2', 0777, NULL, "../outside-dir/victim");
	tar_entry(&b, "dangling", '2', 0777, NULL, "no/such/file");
	tar_entry(&b, "d/up", '2', 0777, NULL, "..");
	tar_entry(&b, "x", '2', 0777, NULL, "d/up/../outside-dir");
	/* a later file of a link's name replaces the link, not its target */
	tar_entry(&b, "up", '0', 0644, "replaced\n", NULL);
	tar_end(&b);
	assert_int_equal(unpack_mem(b.data, b.len, s.fd, NULL, &st, &e), 0);
	assert_int_equal(st.symlinks, 8);
	readlink_is(&s, "bin/python3", "/usr/bin/python3");
	readlink_is(&s, "bin/python", "python3");
	readlink_is(&s, "lib64", "lib");
	readlink_is(&s, "node_modules/app", "../packages/app");
	readlink_is(&s, "dangling", "no/such/file");
	readlink_is(&s, "d/up", "..");
	readlink_is(&s, "x", "d/up/../outside-dir");
	assert_true(S_ISREG(mode_of(&s, "up")));
	assert_int_equal(outside_count(&s), 0);
	scratch_free(&s);
	buf_release(&b);
}

/* Links that were in the directory before the extraction (planted by a
 * racer, or left by an earlier run) never redirect an entry either. */
static void test_planted_links(void **state)
{
	static const char *const names[] = {"p/f", "q/deep/f", "hard"};
	struct scratch s;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	char p[256], o[256];
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		scratch_new(&s);
		snprintf(o, sizeof(o), "%s/outside-dir", s.top);
		snprintf(p, sizeof(p), "%s/p", s.target);
		assert_int_equal(symlink(o, p), 0);
		snprintf(p, sizeof(p), "%s/q", s.target);
		assert_int_equal(symlink("../outside-dir", p), 0);
		snprintf(p, sizeof(p), "%s/victim", s.target);
		assert_int_equal(symlink("../outside-dir/victim", p), 0);
		buf_reset(&b);
		if (i == 2)
			tar_entry(&b, "hard", '1', 0644, NULL, "p/victim");
		else
			tar_entry(&b, names[i], '0', 0644, "pwned\n", NULL);
		tar_end(&b);
		assert_int_equal(run_unpack(&s, &b, &e), ERR_CORRUPT);
		err_clear(&e);
		/* a file over the planted link replaces the link only */
		buf_reset(&b);
		tar_entry(&b, "victim", '0', 0644, "pwned\n", NULL);
		tar_end(&b);
		assert_int_equal(run_unpack(&s, &b, &e), 0);
		assert_true(S_ISREG(mode_of(&s, "victim")));
		assert_int_equal(outside_count(&s), 0);
		scratch_free(&s);
	}
	buf_release(&b);
}

static void test_safe_links(void **state)
{
	struct unpack_opts o = {.safe_links = 1};
	void (*const bad[])(struct buf *) = {b_link_up, b_link_abs, b_link_deep, b_chain};
	static const char *const why[] = {"leads out", "leads out", "leads out",
					  "through other links"};
	struct scratch s;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		scratch_new(&s);
		buf_reset(&b);
		bad[i](&b);
		tar_end(&b);
		/* off by default: restored */
		assert_int_equal(unpack_mem(b.data, b.len, s.fd, NULL, NULL, &e), 0);
		scratch_free(&s);
		scratch_new(&s);
		assert_int_equal(unpack_mem(b.data, b.len, s.fd, &o, NULL, &e), ERR_CORRUPT);
		if (!strstr(e.msg, why[i]))
			fail_msg("message '%s' lacks '%s'", e.msg, why[i]);
		err_clear(&e);
		assert_int_equal(outside_count(&s), 0);
		scratch_free(&s);
	}
	/* links that stay inside are fine with it */
	scratch_new(&s);
	buf_reset(&b);
	tar_entry(&b, "a/b/f", '0', 0644, "x", NULL);
	tar_entry(&b, "a/l", '2', 0777, NULL, "b/f");
	tar_entry(&b, "a/b/up", '2', 0777, NULL, "../l");
	tar_entry(&b, "top", '2', 0777, NULL, "a/b/../b/./f");
	tar_end(&b);
	assert_int_equal(unpack_mem(b.data, b.len, s.fd, &o, NULL, &e), 0);
	readlink_is(&s, "a/b/up", "../l");
	scratch_free(&s);
	buf_release(&b);
}

/* ---- modes, as tar -x as root gives them ---- */

static void modes_under(mode_t um)
{
	struct scratch s;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	struct unpack_stats st;
	mode_t old = umask(um);
	unsigned th;

	for (th = 1; th <= 2; th++) {
		struct unpack_opts o = {.threads = th};

		scratch_new(&s);
		buf_reset(&b);
		tar_entry(&b, "suid", '0', 04755, "#!/bin/sh\n", NULL);
		tar_entry(&b, "sgid", '0', 02711, "x", NULL);
		tar_entry(&b, "secret", '0', 0600, "key\n", NULL);
		tar_entry(&b, "ro", '0', 0444, "read only\n", NULL);
		tar_entry(&b, "none", '0', 0, "", NULL);
		tar_entry(&b, "private/", '5', 0700, NULL, NULL);
		tar_entry(&b, "tmp/", '5', 01777, NULL, NULL);
		tar_entry(&b, "shared/", '5', 02775, NULL, NULL);
		/* a 0500 directory filled after it was named */
		tar_entry(&b, "locked/", '5', 0500, NULL, NULL);
		tar_entry(&b, "locked/inner/", '5', 0555, NULL, NULL);
		tar_entry(&b, "locked/inner/f", '0', 0400, "deep\n", NULL);
		tar_entry(&b, "locked/g", '0', 0644, "g\n", NULL);
		tar_entry(&b, "fifo", '6', 0600, NULL, NULL);
		/* a parent made implicitly, named later with its own mode */
		tar_entry(&b, "late/x", '0', 0640, "x", NULL);
		tar_entry(&b, "late/", '5', 0750, NULL, NULL);
		tar_end(&b);
		assert_int_equal(unpack_mem(b.data, b.len, s.fd, &o, &st, &e), 0);
		assert_int_equal(mode_of(&s, "suid") & 07777, 04755);
		assert_int_equal(mode_of(&s, "sgid") & 07777, 02711);
		assert_int_equal(mode_of(&s, "secret") & 07777, 0600);
		assert_int_equal(mode_of(&s, "ro") & 07777, 0444);
		assert_int_equal(mode_of(&s, "none") & 07777, 0);
		assert_int_equal(mode_of(&s, "private") & 07777, 0700);
		assert_int_equal(mode_of(&s, "tmp") & 07777, 01777);
		assert_int_equal(mode_of(&s, "shared") & 07777, 02775);
		assert_int_equal(mode_of(&s, "locked") & 07777, 0500);
		assert_int_equal(mode_of(&s, "locked/inner") & 07777, 0555);
		assert_int_equal(mode_of(&s, "locked/inner/f") & 07777, 0400);
		assert_int_equal(mode_of(&s, "locked/g") & 07777, 0644);
		assert_true(S_ISFIFO(mode_of(&s, "fifo")));
		assert_int_equal(mode_of(&s, "fifo") & 07777, 0600);
		assert_int_equal(mode_of(&s, "late") & 07777, 0750);
		assert_int_equal(mode_of(&s, "late/x") & 07777, 0640);
		assert_int_equal(st.root_mode, 0); /* no "./" entry: left alone */
		assert_int_equal(outside_count(&s), 0);
		scratch_free(&s);
	}
	umask(old);
	buf_release(&b);
}

static void test_modes(void **state)
{
	modes_under(022);
	modes_under(077);
	modes_under(0);
}

static void test_root_mode(void **state)
{
	struct scratch s;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	struct unpack_stats st;
	struct stat sb;

	scratch_new(&s);
	tar_entry(&b, "./", '5', 0750, NULL, NULL);
	tar_entry(&b, "f", '0', 0644, "x", NULL);
	tar_end(&b);
	assert_int_equal(unpack_mem(b.data, b.len, s.fd, NULL, &st, &e), 0);
	assert_int_equal(fstat(s.fd, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0750);
	assert_int_equal(st.root_mode, 010750);
	scratch_free(&s);
	buf_release(&b);
}

/* Hard links as links: to files, to symlinks, to FIFOs, across
 * directories; the tar hard-link entry issue 13's pack writes. */
static void test_hardlinks(void **state)
{
	struct scratch s;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	struct unpack_stats st;
	char p[256], q[256];
	struct stat s1, s2;
	unsigned th;

	for (th = 1; th <= 2; th++) {
		struct unpack_opts o = {.threads = th};

		scratch_new(&s);
		buf_reset(&b);
		tar_entry(&b, "a/f", '0', 04755, "data\n", NULL);
		tar_entry(&b, "a/l", '2', 0777, NULL, "/usr/bin/env");
		tar_entry(&b, "a/p", '6', 0644, NULL, NULL);
		tar_entry(&b, "b/f2", '1', 04755, NULL, "a/f");
		tar_entry(&b, "b/f3", '1', 04755, NULL, "./a//f");
		tar_entry(&b, "b/l2", '1', 0777, NULL, "a/l");
		tar_entry(&b, "b/p2", '1', 0644, NULL, "a/p");
		tar_end(&b);
		assert_int_equal(unpack_mem(b.data, b.len, s.fd, &o, &st, &e), 0);
		assert_int_equal(st.hardlinks, 4);
		snprintf(p, sizeof(p), "%s/a/f", s.target);
		snprintf(q, sizeof(q), "%s/b/f3", s.target);
		assert_int_equal(lstat(p, &s1), 0);
		assert_int_equal(lstat(q, &s2), 0);
		assert_int_equal(s1.st_ino, s2.st_ino);
		assert_int_equal(s1.st_nlink, 3);
		assert_int_equal(s1.st_mode & 07777, 04755);
		readlink_is(&s, "b/l2", "/usr/bin/env");
		snprintf(p, sizeof(p), "%s/a/l", s.target);
		snprintf(q, sizeof(q), "%s/b/l2", s.target);
		assert_int_equal(lstat(p, &s1), 0);
		assert_int_equal(lstat(q, &s2), 0);
		assert_int_equal(s1.st_ino, s2.st_ino);
		assert_true(S_ISFIFO(mode_of(&s, "b/p2")));
		assert_int_equal(outside_count(&s), 0);
		scratch_free(&s);
	}
	buf_release(&b);
}

/* ---- bounds ---- */

static void test_bounds(void **state)
{
	struct scratch s;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	struct unpack_opts o = {.max_bytes = 1u << 20};
	struct unpack_stats st;

	scratch_new(&s);
	/* a header declaring 1 GiB: refused before a byte is written, even
	 * though the data is not there (it would be a sparse file) */
	tar_header(&b, "huge", '0', 0644, 1ull << 30, NULL);
	tar_end(&b);
	assert_int_equal(unpack_mem(b.data, b.len, s.fd, &o, &st, &e), ERR_CORRUPT);
	assert_non_null(strstr(e.msg, "huge"));
	assert_int_equal(mode_of(&s, ".") & S_IFMT, S_IFDIR);
	{
		char p[256];

		snprintf(p, sizeof(p), "%s/huge", s.target);
		assert_int_equal(access(p, F_OK), -1);
	}
	err_clear(&e);
	/* a stream longer than declared */
	buf_reset(&b);
	tar_entry(&b, "a", '0', 0644, "0123456789", NULL);
	tar_entry(&b, "b", '0', 0644, "0123456789", NULL);
	tar_end(&b);
	o.max_bytes = 0;
	o.max_stream = 1024;
	assert_int_equal(unpack_mem(b.data, b.len, s.fd, &o, &st, &e), ERR_CORRUPT);
	assert_non_null(strstr(e.msg, "longer than the 1024 bytes"));
	err_clear(&e);
	o.max_stream = b.len;
	assert_int_equal(unpack_mem(b.data, b.len, s.fd, &o, &st, &e), 0);
	/* a deadline already past */
	o.max_stream = 0;
	o.deadline_ms = 1;
	assert_int_equal(unpack_mem(b.data, b.len, s.fd, &o, &st, &e), ERR_FAIL);
	assert_non_null(strstr(e.msg, "timed out"));
	err_clear(&e);
	assert_int_equal(outside_count(&s), 0);
	scratch_free(&s);
	buf_release(&b);
}

/* Many small files through the writer pool, the same name again at the
 * end (which must wait for the first): the result is sequential's. */
static void test_many_files(void **state)
{
	struct scratch s;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	struct unpack_opts o = {.threads = 4};
	struct unpack_stats st;
	char name[64], p[256], got[16];
	int i, fd;

	scratch_new(&s);
	for (i = 0; i < 6000; i++) {
		snprintf(name, sizeof(name), "d%02d/f%05d", i % 50, i);
		tar_entry(&b, name, '0', 0644, "first", NULL);
	}
	tar_entry(&b, "d00/f00000", '0', 0644, "second", NULL);
	tar_end(&b);
	assert_int_equal(unpack_mem(b.data, b.len, s.fd, &o, &st, &e), 0);
	assert_int_equal(st.files, 6001);
	snprintf(p, sizeof(p), "%s/d00/f00000", s.target);
	fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, got, sizeof(got)), 6);
	close(fd);
	assert_memory_equal(got, "second", 6);
	scratch_free(&s);
	buf_release(&b);
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
	struct unpack_opts o = {.max_bytes = 10};
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
		cmocka_unit_test(test_links_verbatim),
		cmocka_unit_test(test_planted_links),
		cmocka_unit_test(test_safe_links),
		cmocka_unit_test(test_modes),
		cmocka_unit_test(test_root_mode),
		cmocka_unit_test(test_hardlinks),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_many_files),
		cmocka_unit_test(test_replace_file),
		cmocka_unit_test(test_limits_and_garbage),
		cmocka_unit_test(test_unpack_fd_pipe),
		cmocka_unit_test(test_zstd),
	};

	setlocale(LC_CTYPE, "C.UTF-8");
	umask(022);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
