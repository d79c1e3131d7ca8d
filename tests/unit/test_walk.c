/*
 * The walker on real trees: every row of the shared .dockerignore vectors
 * is laid out on disk (the path as a file, or an empty directory when it
 * ends in '/'), walked with walk_run, and the path must be listed exactly
 * when the vector says "included".  This exercises the walker's own rules
 * (descent and pruning, lazily sent parent directories) on top of the
 * matcher.  Plus archive order and the ignore-file selection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctxpack/util.h"
#include "ctxpack/walk.h"

static char *scratch;

static void write_file(const char *path, const char *data, size_t n)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	if (n)
		assert_int_equal(fwrite(data, 1, n, f), n);
	fclose(f);
}

static void make_path(const char *root, const char *rel)
{
	struct err e = ERR_INIT;
	char *full = xasprintf("%s/%s", root, rel);
	size_t len = strlen(full);

	if (full[len - 1] == '/') {
		full[len - 1] = '\0';
		assert_int_equal(mkdir_p(full, 0755, &e), 0);
	} else {
		char *slash = strrchr(full, '/');

		*slash = '\0';
		assert_int_equal(mkdir_p(full, 0755, &e), 0);
		*slash = '/';
		write_file(full, "x", 1);
	}
	free(full);
}

static const char *shared_dir(void)
{
	const char *s = getenv("SHARED");

	return s && *s ? s : "../shared";
}

/* Decode the vector's patterns: lines joined by the two characters \n. */
static char *decode_patterns(const char *s, size_t *len)
{
	struct buf b = BUF_INIT;

	while (*s) {
		if (s[0] == '\\' && s[1] == 'n') {
			buf_addch(&b, '\n');
			s += 2;
		} else {
			buf_addch(&b, *s++);
		}
	}
	return buf_detach(&b, len);
}

static int listed(const struct walk_result *r, const char *path)
{
	size_t n = strlen(path), i;

	if (n && path[n - 1] == '/')
		n--;
	for (i = 0; i < r->n; i++)
		if (r->v[i].path_len == n && !memcmp(r->v[i].path, path, n) && !r->v[i].excluded)
			return 1;
	return 0;
}

static void test_vectors(void **state)
{
	char *fname = xasprintf("%s/data/dockerignore-vectors.tsv", shared_dir());
	FILE *f = fopen(fname, "r");
	char *line = NULL;
	size_t cap = 0;
	unsigned rows = 0, bad = 0, lineno = 0;
	ssize_t n;

	(void)state;
	if (!f) {
		print_message("cannot open %s (set SHARED)\n", fname);
		fail();
	}
	while ((n = getline(&line, &cap, f)) > 0) {
		char *cols[4], *p = line, *pat, *dir;
		struct walk_opts o = {0};
		struct walk_result r;
		struct err e = ERR_INIT;
		size_t plen;
		int k, want, got;

		lineno++;
		if (lineno == 1)
			continue; /* header */
		if (line[n - 1] == '\n')
			line[--n] = '\0';
		for (k = 0; k < 4; k++) {
			cols[k] = p;
			p = strchr(p, '\t');
			if (!p && k < 3)
				break;
			if (p)
				*p++ = '\0';
		}
		assert_true(k >= 3);
		rows++;
		want = !strcmp(cols[2], "included");
		pat = decode_patterns(cols[0], &plen);

		dir = xasprintf("%s/v%u", scratch, lineno);
		mkdir_p(dir, 0755, &e);
		if (strcmp(cols[1], ".dockerignore"))
			make_path(dir, cols[1]);
		{
			char *ig = xasprintf("%s/.dockerignore", dir);

			write_file(ig, pat, plen);
			free(ig);
		}
		o.dir = dir;
		if (walk_run(&o, &r, &e)) {
			print_message("row %u: walk failed: %s\n", lineno, e.msg);
			bad++;
		} else {
			got = listed(&r, cols[1]);
			if (got != want) {
				print_message("row %u: patterns [%s] path [%s]: want %s, got %s\n",
					      lineno, cols[0], cols[1], cols[2],
					      got ? "included" : "excluded");
				bad++;
			}
		}
		walk_release(&r);
		remove_tree(dir, &e);
		free(dir);
		free(pat);
	}
	free(line);
	fclose(f);
	free(fname);
	print_message("%u vector rows walked on disk\n", rows);
	assert_true(rows > 100);
	assert_int_equal(bad, 0);
}

static void test_order_and_lazy_dirs(void **state)
{
	const char *paths[] = {"a-b/x", "a/y", "a.c", "b/c/d/e", "b/keep", "Dockerfile", NULL};
	char *dir = xasprintf("%s/order", scratch);
	struct walk_opts o = {0};
	struct walk_result r;
	struct err e = ERR_INIT;
	struct buf got = BUF_INIT;
	size_t i;

	(void)state;
	for (i = 0; paths[i]; i++)
		make_path(dir, paths[i]);
	{
		char *ig = xasprintf("%s/.dockerignore", dir);

		/* b is excluded, b/c/d/e re-included: b/, b/c/, b/c/d/ are sent */
		write_file(ig, "b\n!b/c/d/e\n.dockerignore\n", 25);
		free(ig);
	}
	o.dir = dir;
	assert_int_equal(walk_run(&o, &r, &e), 0);
	for (i = 0; i < r.n; i++) {
		buf_add(&got, r.v[i].path, r.v[i].path_len);
		buf_addstr(&got, r.v[i].type == WALK_DIR ? "/ " : " ");
	}
	assert_string_equal(got.data, "Dockerfile a/ a/y a-b/ a-b/x a.c b/ b/c/ b/c/d/ b/c/d/e ");
	walk_release(&r);

	/* with excluded entries recorded, b/keep shows as excluded */
	o.flags = WALK_EXCLUDED;
	assert_int_equal(walk_run(&o, &r, &e), 0);
	buf_reset(&got);
	for (i = 0; i < r.n; i++)
		if (r.v[i].excluded) {
			buf_add(&got, r.v[i].path, r.v[i].path_len);
			buf_addch(&got, ' ');
		}
	assert_string_equal(got.data, ".dockerignore b/keep ");
	walk_release(&r);
	buf_release(&got);
	remove_tree(dir, &e);
	free(dir);
}

static void test_path_cmp(void **state)
{
	(void)state;
	assert_true(walk_path_cmp("a/x", 3, "a-b", 3) < 0);
	assert_true(walk_path_cmp("a", 1, "a/x", 3) < 0);
	assert_true(walk_path_cmp("a.c", 3, "a/zz", 4) > 0);
	assert_int_equal(walk_path_cmp("q", 1, "q", 1), 0);
}

static void test_dockerfile_ignore_selection(void **state)
{
	char *dir = xasprintf("%s/sel", scratch);
	char *cwd = getcwd(NULL, 0), *df;
	struct walk_opts o = {0};
	struct walk_result r;
	struct err e = ERR_INIT;

	(void)state;
	make_path(dir, "sub/app.Dockerfile");
	make_path(dir, "x");
	{
		char *a = xasprintf("%s/.dockerignore", dir);
		char *b = xasprintf("%s/sub/app.Dockerfile.dockerignore", dir);

		write_file(a, "x\n", 2);
		write_file(b, "sub\n", 4);
		free(a);
		free(b);
	}
	df = xasprintf("%s/sub/app.Dockerfile", dir);
	o.dir = dir;
	o.dockerfile = df;
	assert_int_equal(walk_run(&o, &r, &e), 0);
	assert_true(listed(&r, "x"));
	assert_false(listed(&r, "sub/app.Dockerfile"));
	assert_string_equal(r.dockerfile_rel, "sub/app.Dockerfile");
	assert_string_equal(r.ignore_rel, "sub/app.Dockerfile.dockerignore");
	walk_release(&r);
	free(df);
	free(cwd);
	remove_tree(dir, &e);
	free(dir);
}

static int setup(void **state)
{
	char tmpl[] = "/tmp/ctxpack-walk.XXXXXX";

	(void)state;
	scratch = xstrdup(mkdtemp(tmpl));
	return scratch ? 0 : -1;
}

static int teardown(void **state)
{
	struct err e = ERR_INIT;

	(void)state;
	remove_tree(scratch, &e);
	free(scratch);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_cmp),
		cmocka_unit_test(test_order_and_lazy_dirs),
		cmocka_unit_test(test_dockerfile_ignore_selection),
		cmocka_unit_test(test_vectors),
	};

	return cmocka_run_group_tests_name("walk", tests, setup, teardown);
}
