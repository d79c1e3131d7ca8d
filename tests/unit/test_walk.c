/*
 * The walker on real trees: every row of the shared .dockerignore vectors
 * is laid out on disk (the path as a file, or an empty directory when it
 * ends in '/'), walked with walk_run, and the path must be listed exactly
 * when the vector says "included".  This exercises the walker's own rules
 * (descent and pruning, lazily sent parent directories) on top of the
 * matcher.  Plus archive order and the ignore-file selection, and the
 * parallel walk against the serial one.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctxpack/util.h"
#include "ctxpack/walk.h"
#include "../../src/pack/walk_internal.h"

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

static int walk_differs(const struct walk_result *a, const struct walk_result *b,
			const char *what);

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
		o.threads = 1;
		if (walk_run(&o, &r, &e)) {
			print_message("row %u: walk failed: %s\n", lineno, e.msg);
			bad++;
		} else {
			struct walk_result pr;
			char what[32];

			got = listed(&r, cols[1]);
			if (got != want) {
				print_message("row %u: patterns [%s] path [%s]: want %s, got %s\n",
					      lineno, cols[0], cols[1], cols[2],
					      got ? "included" : "excluded");
				bad++;
			}
			/* the same, every directory its own task */
			o.threads = 2;
			o.flags = WALK_SPLIT_EAGER;
			snprintf(what, sizeof(what), "row %u", lineno);
			if (walk_run(&o, &pr, &e)) {
				print_message("row %u: parallel walk failed: %s\n", lineno, e.msg);
				bad++;
			} else {
				bad += walk_differs(&r, &pr, what);
			}
			walk_release(&pr);
			/* the classic builder's walk: the same, but for the rows
			 * the vectors mark as its difference */
			o.threads = 1;
			o.flags = WALK_CLASSIC;
			want = want && !strstr(cols[3], "[classic builder: excluded]");
			if (walk_run(&o, &pr, &e)) {
				print_message("row %u: classic walk failed: %s\n", lineno, e.msg);
				bad++;
			} else if ((got = listed(&pr, cols[1])) != want) {
				print_message("row %u (classic): patterns [%s] path [%s]: want %s, "
					      "got %s\n", lineno, cols[0], cols[1],
					      want ? "included" : "excluded",
					      got ? "included" : "excluded");
				bad++;
			}
			walk_release(&pr);
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

/* WALK_CONTAINERFILE: buildah's choice, each file removed in turn */
static void test_containerfile_selection(void **state)
{
	static const char *const order[] = {
		"Containerfile.dockerignore", "Containerfile.containerignore", ".containerignore",
		".dockerignore",
	};
	char *dir = xasprintf("%s/csel", scratch), *p;
	struct walk_opts o = {0};
	struct walk_result r;
	struct err e = ERR_INIT;
	size_t i;

	(void)state;
	make_path(dir, "Dockerfile");
	make_path(dir, "Containerfile");
	for (i = 0; i < 4; i++) {
		p = xasprintf("%s/%s", dir, order[i]);
		write_file(p, "x\n", 2);
		free(p);
	}
	o.dir = dir;
	o.flags = WALK_CONTAINERFILE;
	for (i = 0; i < 4; i++) {
		assert_int_equal(walk_run(&o, &r, &e), 0);
		assert_string_equal(r.dockerfile_rel, "Containerfile");
		assert_string_equal(r.ignore_rel, order[i]);
		walk_release(&r);
		p = xasprintf("%s/%s", dir, order[i]);
		assert_int_equal(unlink(p), 0);
		free(p);
	}
	assert_int_equal(walk_run(&o, &r, &e), 0);
	assert_null(r.ignore_rel);
	walk_release(&r);
	/* no Containerfile: the Dockerfile, and its own ignore file */
	p = xasprintf("%s/Containerfile", dir);
	assert_int_equal(unlink(p), 0);
	free(p);
	p = xasprintf("%s/Dockerfile.containerignore", dir);
	write_file(p, "x\n", 2);
	free(p);
	assert_int_equal(walk_run(&o, &r, &e), 0);
	assert_string_equal(r.dockerfile_rel, "Dockerfile");
	assert_string_equal(r.ignore_rel, "Dockerfile.containerignore");
	walk_release(&r);
	/* without the flag: Docker's rules, which know neither */
	o.flags = 0;
	assert_int_equal(walk_run(&o, &r, &e), 0);
	assert_string_equal(r.dockerfile_rel, "Dockerfile");
	assert_null(r.ignore_rel);
	walk_release(&r);
	remove_tree(dir, &e);
	free(dir);
}

static const struct walk_entry *find(const struct walk_result *r, const char *path)
{
	size_t n = strlen(path), i;

	for (i = 0; i < r->n; i++)
		if (r->v[i].path_len == n && !memcmp(r->v[i].path, path, n) && !r->v[i].excluded)
			return &r->v[i];
	return NULL;
}

static void link_rel(const char *dir, const char *a, const char *b)
{
	char *pa = xasprintf("%s/%s", dir, a), *pb = xasprintf("%s/%s", dir, b);

	assert_int_equal(link(pa, pb), 0);
	free(pa);
	free(pb);
}

/* Later included paths of an inode are hard links to the first (in
 * archive order); an excluded path is never the target. */
static void test_hardlinks(void **state)
{
	char *dir = xasprintf("%s/hl", scratch);
	struct walk_opts o = {0};
	struct walk_result r;
	struct err e = ERR_INIT;
	const struct walk_entry *we;

	(void)state;
	make_path(dir, "b/one");
	make_path(dir, "skip.log");
	make_path(dir, "solo");
	make_path(dir, "c/");
	link_rel(dir, "b/one", "a");       /* a sorts first: the file */
	link_rel(dir, "b/one", "c/three");
	link_rel(dir, "skip.log", "kept");  /* the excluded one does not count */
	{
		char *ig = xasprintf("%s/.dockerignore", dir);

		write_file(ig, "*.log\n", 6);
		free(ig);
	}
	o.dir = dir;
	assert_int_equal(walk_run(&o, &r, &e), 0);
	assert_non_null(we = find(&r, "a"));
	assert_int_equal(we->type, WALK_REG);
	assert_non_null(we = find(&r, "b/one"));
	assert_int_equal(we->type, WALK_HARDLINK);
	assert_string_equal(we->link, "a");
	assert_int_equal(we->link_len, 1);
	assert_non_null(we = find(&r, "c/three"));
	assert_int_equal(we->type, WALK_HARDLINK);
	assert_string_equal(we->link, "a");
	assert_non_null(we = find(&r, "kept"));
	assert_int_equal(we->type, WALK_REG);
	assert_int_equal(find(&r, "solo")->type, WALK_REG);
	assert_int_equal(r.n_hardlinks, 2);
	walk_release(&r);
	/* the parallel walk, and --no-hardlinks */
	o.threads = 2;
	o.flags = WALK_SPLIT_EAGER;
	assert_int_equal(walk_run(&o, &r, &e), 0);
	assert_int_equal(find(&r, "c/three")->type, WALK_HARDLINK);
	walk_release(&r);
	o.flags = WALK_NO_HARDLINKS;
	assert_int_equal(walk_run(&o, &r, &e), 0);
	assert_int_equal(find(&r, "c/three")->type, WALK_REG);
	assert_int_equal(r.n_hardlinks, 0);
	walk_release(&r);
	remove_tree(dir, &e);
	free(dir);
}

/* The classic builder's walk: root .dockerignore only, excluded dirs
 * entered on a textual prefix only, sent ones reported 0755. */
static void test_classic(void **state)
{
	char *dir = xasprintf("%s/classic", scratch);
	char *df = xasprintf("%s/app.Dockerfile", dir);
	struct walk_opts o = {0};
	struct walk_result r;
	struct err e = ERR_INIT;
	const struct walk_entry *we;

	(void)state;
	make_path(dir, "app.Dockerfile");
	make_path(dir, "a");
	make_path(dir, "b");
	make_path(dir, "nm/keep");
	make_path(dir, "nm/drop");
	make_path(dir, "w/x/y.txt");
	{
		char *p = xasprintf("%s/nm", dir);

		assert_int_equal(chmod(p, 0700), 0);
		free(p);
		p = xasprintf("%s/.dockerignore", dir);
		write_file(p, "b\nnm\n!nm/keep\nw\n!w/**/*.txt\n", 28);
		free(p);
		p = xasprintf("%s/app.Dockerfile.dockerignore", dir);
		write_file(p, "a\nnm\n!nm/keep\nw\n!w/**/*.txt\n", 28);
		free(p);
	}
	o.dir = dir;
	o.dockerfile = df;
	/* BuildKit: the Dockerfile's ignore file, nm as found, w/x/y.txt back */
	assert_int_equal(walk_run(&o, &r, &e), 0);
	assert_false(listed(&r, "a"));
	assert_true(listed(&r, "b"));
	assert_non_null(we = find(&r, "nm"));
	assert_int_equal(we->mode & 07777, 0700);
	assert_true(listed(&r, "w/x/y.txt"));
	walk_release(&r);
	/* classic: .dockerignore, nm 0755, the wildcard exception lost */
	o.flags = WALK_CLASSIC;
	assert_int_equal(walk_run(&o, &r, &e), 0);
	assert_true(listed(&r, "a"));
	assert_false(listed(&r, "b"));
	assert_true(listed(&r, "nm/keep"));
	assert_false(listed(&r, "nm/drop"));
	assert_non_null(we = find(&r, "nm"));
	assert_int_equal(we->mode, S_IFDIR | 0755);
	assert_false(listed(&r, "w"));
	assert_false(listed(&r, "w/x/y.txt"));
	assert_string_equal(r.ignore_rel, ".dockerignore");
	walk_release(&r);
	remove_tree(dir, &e);
	free(df);
	free(dir);
}

/* ---- the parallel walk must give exactly the serial walk's result ---- */

/* Print the first difference between a (serial) and b; 1 when they differ. */
static int walk_differs(const struct walk_result *a, const struct walk_result *b,
			const char *what)
{
	size_t i;

	if (a->n != b->n || a->n_excluded_files != b->n_excluded_files ||
	    a->n_excluded_bytes != b->n_excluded_bytes ||
	    a->n_sockets_skipped != b->n_sockets_skipped) {
		print_message("%s: %zu entries, %llu/%llu/%llu counted; serial %zu, %llu/%llu/%llu\n",
			      what, b->n, (unsigned long long)b->n_excluded_files,
			      (unsigned long long)b->n_excluded_bytes,
			      (unsigned long long)b->n_sockets_skipped, a->n,
			      (unsigned long long)a->n_excluded_files,
			      (unsigned long long)a->n_excluded_bytes,
			      (unsigned long long)a->n_sockets_skipped);
		return 1;
	}
	for (i = 0; i < a->n; i++) {
		const struct walk_entry *x = &a->v[i], *y = &b->v[i];
		struct walk_entry xs = *x, ys = *y;

		/* everything but the pointers, then what they point to */
		xs.path = ys.path = NULL;
		xs.link = ys.link = NULL;
		if (memcmp(&xs, &ys, sizeof(xs)) || memcmp(x->path, y->path, x->path_len + 1) ||
		    !x->link != !y->link || (x->link && memcmp(x->link, y->link, x->link_len + 1))) {
			print_message("%s: entry %zu: %s, serial %s\n", what, i, y->path, x->path);
			return 1;
		}
	}
	return 0;
}

static void walk_ok(const char *dir, const char *ignore, unsigned flags, unsigned threads,
		    struct walk_result *r)
{
	struct walk_opts o = {0};
	struct err e = ERR_INIT;

	o.dir = dir;
	o.ignore_file = ignore;
	o.flags = flags;
	o.threads = threads;
	if (walk_run(&o, r, &e)) {
		print_message("walk of %s failed: %s\n", dir, e.msg);
		fail();
	}
}

/* Serial against parallel, every flag combination, a few times each. */
static void compare_walks(const char *dir, const char *ignore)
{
	static const unsigned flag_sets[] = {
		0, WALK_EXCLUDED, WALK_EXCLUDED | WALK_FULL, WALK_FULL, WALK_TYPES_ONLY,
		WALK_TYPES_ONLY | WALK_EXCLUDED,
	};
	static const struct { unsigned threads, flags; } par[] = {
		{2, 0}, {3, 0}, {0, 0}, {2, WALK_SPLIT_EAGER}, {4, WALK_SPLIT_EAGER},
	};
	size_t i, j;
	int rep, bad = 0;

	for (i = 0; i < sizeof(flag_sets) / sizeof(flag_sets[0]); i++) {
		struct walk_result serial;

		walk_ok(dir, ignore, flag_sets[i], 1, &serial);
		assert_true(serial.n > 0);
		for (j = 0; j < sizeof(par) / sizeof(par[0]); j++) {
			for (rep = 0; rep < 4; rep++) {
				struct walk_result r;
				char what[128];

				snprintf(what, sizeof(what), "%s flags %#x threads %u%s", ignore,
					 flag_sets[i], par[j].threads,
					 par[j].flags ? " eager" : "");
				walk_ok(dir, ignore, flag_sets[i] | par[j].flags, par[j].threads, &r);
				bad += walk_differs(&serial, &r, what);
				walk_release(&r);
			}
		}
		walk_release(&serial);
	}
	assert_int_equal(bad, 0);
}

static void make_link(const char *root, const char *rel, const char *target)
{
	char *full = xasprintf("%s/%s", root, rel);

	assert_int_equal(symlink(target, full), 0);
	free(full);
}

static void make_socket(const char *path)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	assert_true(strlen(path) < sizeof(sa.sun_path));
	strcpy(sa.sun_path, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
}

/* Write the ignore file name under dir, return its path (caller frees). */
static char *ignore_file(const char *dir, const char *name, const char *text)
{
	char *p = xasprintf("%s/%s", dir, name);

	write_file(p, text, strlen(text));
	return p;
}

/*
 * A tree with ~1500 entries: many directories (names that sort around
 * '/': "d-1", "d.1", "d1"), empty ones, a deep chain, symlinks to files
 * and directories and nowhere, a FIFO and a socket; walked without
 * ignore file, with literal exceptions (excluded directories entered only
 * where an exception points) and with wildcard exceptions (every excluded
 * directory entered, parents sent lazily).
 */
static void test_parallel_same(void **state)
{
	char *dir = xasprintf("%s/par", scratch), *ig[3], *p;
	struct buf b = BUF_INIT;
	unsigned i, j, k;

	(void)state;
	make_path(dir, "Dockerfile");
	for (i = 0; i < 36; i++) {
		const char *sep[] = {"", "-", ".", "_"};

		for (j = 0; j < 5; j++)
			for (k = 0; k < 6; k++) {
				p = xasprintf("d%s%u/s%u/f%u%s", sep[i % 4], i / 4, j, k,
					      k == 5 ? ".tmp" : "");
				make_path(dir, p);
				free(p);
			}
		p = xasprintf("d%s%u/empty/", sep[i % 4], i / 4);
		make_path(dir, p);
		free(p);
		p = xasprintf("d%s%u/top", sep[i % 4], i / 4);
		make_path(dir, p);
		free(p);
	}
	for (i = 0; i < 5; i++) {
		p = xasprintf("empty%u/", i);
		make_path(dir, p);
		free(p);
	}
	buf_addstr(&b, "deep/");
	for (i = 0; i < 40; i++) {
		buf_addf(&b, "%c/", 'a' + i % 26);
		p = xasprintf("%sfile%u", b.data, i);
		make_path(dir, p);
		free(p);
	}
	make_path(dir, b.data);
	make_path(dir, "excl/x/y/z/keep");
	make_path(dir, "excl/x/y/other");
	make_path(dir, "excl/q/r/s");
	make_path(dir, "links/");
	make_link(dir, "links/file", "../d0/s0/f0");
	make_link(dir, "links/dir", "../d1");
	make_link(dir, "links/dangling", "nowhere");
	make_link(dir, "d2/s1/up", "..");
	make_path(dir, "special/");
	p = xasprintf("%s/special/fifo", dir);
	assert_int_equal(mkfifo(p, 0644), 0);
	free(p);
	p = xasprintf("%s/special/sock", dir);
	make_socket(p);
	free(p);

	ig[0] = xstrdup("/dev/null");
	ig[1] = ignore_file(scratch, "par-literal.ignore",
			    "d1\n!d1/s2/f3\nexcl\n!excl/x/y/z/keep\ndeep/a/b\n"
			    "!deep/a/b/c/d/e/f/file5\nempty1\n*.tmp\nd.2/s3\n");
	ig[2] = ignore_file(scratch, "par-wild.ignore",
			    "d1*\n!d1*/s2\n!d1*/s3/f1\n*/s4/f4\ndeep/a/b\n"
			    "!deep/**/file3*\nempty1\nexcl\n!excl/**/keep\n*.tmp\n"
			    "!d-0/**/*.tmp\nlinks/d*\n");
	for (i = 0; i < 3; i++) {
		compare_walks(dir, ig[i]);
		free(ig[i]);
	}
	buf_release(&b);
	free(dir);
}

/* A tree smaller than the spawn threshold: threads or not, same result. */
static void test_parallel_small(void **state)
{
	char *dir = xasprintf("%s/small", scratch);

	(void)state;
	make_path(dir, "a/b/c");
	make_path(dir, "a/d");
	make_path(dir, "e/");
	make_path(dir, "f");
	compare_walks(dir, "/dev/null");
	free(dir);
}

/*
 * A chain 200 directories deep, handed off to a worker while the calling
 * thread is busy with thousands of files, so that the worker recurses
 * itself: worker threads may have less stack than the calling thread
 * (2 MiB when the stack rlimit is unlimited; 1 MiB here), so the
 * recursion must cost little per level.
 */
static void test_parallel_deep(void **state)
{
	char *dir = xasprintf("%s/deep", scratch);
	pthread_attr_t old, small;
	struct walk_result serial;
	struct buf b = BUF_INIT;
	unsigned i, bad = 0;

	(void)state;
	for (i = 0; i < 4600; i++) {
		char *p = xasprintf("%c%04u", i < 600 ? 'a' : 'c', i);

		make_path(dir, p);
		free(p);
	}
	buf_addstr(&b, "b/");
	for (i = 0; i < 200; i++)
		buf_addstr(&b, "d/");
	buf_addstr(&b, "leaf");
	make_path(dir, b.data);

	assert_int_equal(pthread_getattr_default_np(&old), 0);
	assert_int_equal(pthread_attr_init(&small), 0);
	assert_int_equal(pthread_attr_setstacksize(&small, 1 << 20), 0);
	assert_int_equal(pthread_setattr_default_np(&small), 0);
	walk_ok(dir, "/dev/null", 0, 1, &serial);
	for (i = 0; i < 20; i++) {
		struct walk_result r;

		walk_ok(dir, "/dev/null", i % 4 == 3 ? WALK_SPLIT_EAGER : 0, 2 + i % 2, &r);
		bad += walk_differs(&serial, &r, "deep");
		walk_release(&r);
	}
	walk_release(&serial);
	assert_int_equal(pthread_setattr_default_np(&old), 0);
	pthread_attr_destroy(&small);
	pthread_attr_destroy(&old);
	assert_int_equal(bad, 0);
	buf_release(&b);
	free(dir);
}

/*
 * Errors: as a user that cannot read mode-000 entries (nobody, when run as
 * root), the parallel walk must fail with the serial walk's error, which
 * is the first in walk order, whichever thread meets which error first.
 * In a child process, as the uid change cannot be undone.
 */
static int child_errors(const char *dir, const char *first_bad)
{
	static const struct { unsigned threads, flags; } par[] = {
		{2, 0}, {4, 0}, {2, WALK_SPLIT_EAGER}, {4, WALK_SPLIT_EAGER},
	};
	struct walk_opts o = {0};
	struct walk_result r;
	struct err se = ERR_INIT;
	unsigned j, rep;
	int sret, mismatches = 0;

	if (geteuid() == 0 && (setgid(65534) || setuid(65534)))
		return 100;
	o.dir = dir;
	o.ignore_file = "/dev/null";
	o.threads = 1;
	sret = walk_run(&o, &r, &se);
	walk_release(&r);
	if (first_bad ? !sret || !strstr(se.msg, first_bad) : sret != 0) {
		fprintf(stderr, "serial: want %s, got %d %s\n",
			first_bad ? first_bad : "success", sret, se.msg);
		mismatches++;
	}
	for (j = 0; j < sizeof(par) / sizeof(par[0]); j++)
		for (rep = 0; rep < 8; rep++) {
			struct err pe = ERR_INIT;
			int pret;

			o.threads = par[j].threads;
			o.flags = par[j].flags;
			pret = walk_run(&o, &r, &pe);
			walk_release(&r);
			if (pret != sret || strcmp(pe.msg, se.msg)) {
				fprintf(stderr, "threads %u flags %#x: %d %s; serial %d %s\n",
					o.threads, o.flags, pret, pe.msg, sret, se.msg);
				mismatches++;
			}
		}
	return mismatches > 99 ? 99 : mismatches;
}

static void test_parallel_errors(void **state)
{
	char *dir = xasprintf("%s/errs", scratch);
	/* in walk order; cleared one at a time, so each becomes the first */
	const char *bad[] = {"a05/s1/locked", "a12/bad", "a20/s3/locked", "a27/s0/bad"};
	unsigned nbad = 4, i, j, round;

	(void)state;
	assert_int_equal(chmod(scratch, 0755), 0);
	for (i = 0; i < 30; i++)
		for (j = 0; j < 4; j++) {
			char *p = xasprintf("a%02u/s%u/f", i, j);

			make_path(dir, p);
			free(p);
		}
	make_path(dir, "a05/s1/locked/f");
	make_path(dir, "a12/bad");
	make_path(dir, "a20/s3/locked/f");
	make_path(dir, "a27/s0/bad");
	for (i = 0; i < nbad; i++) {
		char *p = xasprintf("%s/%s", dir, bad[i]);

		assert_int_equal(chmod(p, 0), 0);
		free(p);
	}
	for (round = 0; round <= nbad; round++) {
		pid_t pid;
		int st;

		fflush(NULL);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			int rc = child_errors(dir, round < nbad ? bad[round] : NULL);

			free(dir);
			exit(rc);
		}
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFEXITED(st));
		if (WEXITSTATUS(st) == 100) {
			print_message("cannot become nobody: skipped\n");
			break;
		}
		assert_int_equal(WEXITSTATUS(st), 0);
		if (round < nbad) {
			char *p = xasprintf("%s/%s", dir, bad[round]);

			assert_int_equal(chmod(p, 0755), 0);
			free(p);
		}
	}
	assert_int_equal(chmod(scratch, 0700), 0);
	free(dir);
}

/*
 * Directories created and removed while the walk runs (a directory may go
 * between its stat and its read, or between the hand-off of its task and
 * the task): every walk succeeds, and the rest of the tree comes out as
 * the serial walk sees it.
 */
struct churn {
	char *dir;
	int stop;
	unsigned cycles;
};

static void *churn_main(void *arg)
{
	struct churn *ch = arg;
	struct err e = ERR_INIT;

	while (!__atomic_load_n(&ch->stop, __ATOMIC_RELAXED)) {
		char *p = xasprintf("%s/m/c%u/sub/f", ch->dir, ch->cycles % 8);
		char *d = xasprintf("%s/m/c%u", ch->dir, ch->cycles % 8);

		make_path(ch->dir, p + strlen(ch->dir) + 1);
		remove_tree(d, &e);
		err_clear(&e);
		free(p);
		free(d);
		ch->cycles++;
	}
	return NULL;
}

static void test_parallel_churn(void **state)
{
	char *dir = xasprintf("%s/churn", scratch);
	struct churn ch;
	struct walk_result serial;
	pthread_t tid;
	unsigned i, j, bad = 0;

	(void)state;
	for (i = 0; i < 40; i++)
		for (j = 0; j < 8; j++) {
			char *p = xasprintf("k%02u/s%u/f", i, j);

			make_path(dir, p);
			free(p);
		}
	make_path(dir, "m/");
	walk_ok(dir, "/dev/null", 0, 1, &serial);
	for (i = 0; i < serial.n; i++)
		if (!strcmp(serial.v[i].path, "m"))
			break;
	assert_true(i < serial.n);
	memmove(serial.v + i, serial.v + i + 1, (serial.n - i - 1) * sizeof(*serial.v));
	serial.n--;
	memset(&ch, 0, sizeof(ch));
	ch.dir = dir;
	assert_int_equal(pthread_create(&tid, NULL, churn_main, &ch), 0);
	for (i = 0; i < 60; i++) {
		struct walk_opts o = {0};
		struct walk_result r, kept;
		struct err e = ERR_INIT;
		size_t k;

		o.dir = dir;
		o.ignore_file = "/dev/null";
		o.threads = i % 3 == 0 ? 1 : i % 3 == 1 ? 2 : 4;
		o.flags = i % 2 ? WALK_SPLIT_EAGER : 0;
		if (walk_run(&o, &r, &e)) {
			print_message("walk failed: %s\n", e.msg);
			bad++;
			walk_release(&r);
			continue;
		}
		/* everything but m and its changing content */
		kept = r;
		kept.v = xreallocarray(NULL, r.n ? r.n : 1, sizeof(*r.v));
		kept.n = 0;
		for (k = 0; k < r.n; k++)
			if (strcmp(r.v[k].path, "m") && strncmp(r.v[k].path, "m/", 2))
				kept.v[kept.n++] = r.v[k];
		/* the counters are 0: nothing is excluded */
		bad += walk_differs(&serial, &kept, "churn");
		free(kept.v);
		walk_release(&r);
	}
	__atomic_store_n(&ch.stop, 1, __ATOMIC_RELAXED);
	pthread_join(tid, NULL);
	print_message("%u churn cycles during 60 walks\n", ch.cycles);
	walk_release(&serial);
	assert_int_equal(bad, 0);
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
		cmocka_unit_test(test_containerfile_selection),
		cmocka_unit_test(test_hardlinks),
		cmocka_unit_test(test_classic),
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_parallel_small),
		cmocka_unit_test(test_parallel_same),
		cmocka_unit_test(test_parallel_deep),
		cmocka_unit_test(test_parallel_errors),
		cmocka_unit_test(test_parallel_churn),
	};

	return cmocka_run_group_tests_name("walk", tests, setup, teardown);
}
