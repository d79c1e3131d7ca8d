/*
 * Unit tests of the index's snapshots (idx_snap.c, issue 15): a replayed
 * walk is exactly what the walker finds, entry for entry, on a tree big
 * enough to be checked by several threads; changes in either half of the
 * entry list are seen; archive digests round-trip and are checked; a
 * snapshot is rewritten in place, and one found half written is not used.
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
#include <time.h>
#include <unistd.h>

#include "ctxpack/index.h"
#include "ctxpack/walk.h"

#define NDIRS 40
#define NFILES 80 /* per directory: 3,200 files, more than one thread's share */

static char *root, *idxdir;

static void write_file(const char *rel, const char *data)
{
	char *p = xasprintf("%s/%s", root, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, data, strlen(data)), 0);
	close(fd);
	free(p);
}

static void settle(void)
{
	struct timespec ts = {0, 300 * 1000000L}; /* past the racy window */

	nanosleep(&ts, NULL);
}

static int setup(void **state)
{
	char tmpl[] = "/tmp/ctxpack-unit-snap.XXXXXX";
	struct err e = ERR_INIT;
	int d, f;

	assert_non_null(mkdtemp(tmpl));
	root = xasprintf("%s/ctx", tmpl);
	idxdir = xasprintf("%s/idx", tmpl);
	assert_int_equal(mkdir_p(root, 0755, &e), 0);
	for (d = 0; d < NDIRS; d++) {
		char *dir = xasprintf("%s/d%02d/sub", root, d);

		assert_int_equal(mkdir_p(dir, 0755, &e), 0);
		free(dir);
		for (f = 0; f < NFILES; f++) {
			char *rel = xasprintf("d%02d/%s%03d", d, f % 2 ? "sub/f" : "g", f);
			char *data = xasprintf("content %d %d\n", d, f);

			write_file(rel, data);
			free(rel);
			free(data);
		}
	}
	{
		char *l = xasprintf("%s/d07/link", root);

		assert_int_equal(symlink("sub/f001", l), 0);
		free(l);
	}
	settle();
	return 0;
}

static int teardown(void **state)
{
	char *top = xstrndup(root, strlen(root) - 4);
	struct err e = ERR_INIT;

	remove_tree(top, &e);
	free(top);
	free(root);
	free(idxdir);
	return 0;
}

/* One run as `ctxpack hash` makes it; the result's snapshot answer. */
/* A walk of the given flavour, replayed from (and stored to) a snapshot
 * with content hashes (their digest in digest, when not NULL) or,
 * stat_only, without (build's directory). */
static int run_flavour(struct walk_result *w, unsigned flags, int stat_only,
		       char digest[IDX_DIGEST_LEN])
{
	struct walk_opts wo = {0};
	struct idx_snap *s = idx_snap_new(idxdir);
	struct idx *x = NULL;
	struct err e = ERR_INIT;
	char d[IDX_DIGEST_LEN];
	int res;

	if (stat_only)
		idx_snap_stat_only(s);
	wo.dir = root;
	wo.flags = flags;
	wo.replay = idx_snap_replay;
	wo.replay_ctx = s;
	assert_int_equal(walk_run(&wo, w, &e), 0);
	res = w->replayed ? idx_snap_result(s) : IDX_SNAP_NONE;
	if (stat_only) {
		assert_int_equal(idx_snap_digest(s, d), -1);
		idx_snap_store(s, w);
	} else if (res == IDX_SNAP_HIT) {
		assert_int_equal(idx_snap_digest(s, digest ? digest : d), 0);
	} else {
		assert_int_equal(idx_open(&x, idxdir, 0, &e), 0);
		assert_int_equal(idx_update(x, w, NULL, &e), 0);
		idx_snap_store(s, w);
		idx_context_digest(w, digest ? digest : d);
		idx_close(x);
	}
	idx_snap_free(s);
	return res;
}

static int run(struct walk_result *w, char digest[IDX_DIGEST_LEN])
{
	return run_flavour(w, 0, 0, digest);
}

/* The walker's result, hashed through a fresh index of its own. */
static void walk_plain(struct walk_result *w, char digest[IDX_DIGEST_LEN])
{
	struct walk_opts wo = {0};
	struct err e = ERR_INIT;
	struct idx *x = NULL;
	char *fresh = xasprintf("%s.fresh", idxdir);

	wo.dir = root;
	assert_int_equal(walk_run(&wo, w, &e), 0);
	assert_int_equal(idx_open(&x, fresh, 0, &e), 0);
	assert_int_equal(idx_update(x, w, NULL, &e), 0);
	idx_context_digest(w, digest);
	idx_close(x);
	remove_tree(fresh, &e);
	free(fresh);
}

static void assert_same_walk(const struct walk_result *a, const struct walk_result *b)
{
	size_t i;

	assert_int_equal(a->n, b->n);
	for (i = 0; i < a->n; i++) {
		const struct walk_entry *x = &a->v[i], *y = &b->v[i];

		assert_int_equal(x->path_len, y->path_len);
		assert_memory_equal(x->path, y->path, x->path_len);
		assert_int_equal(x->path[x->path_len], '\0');
		assert_int_equal(x->type, y->type);
		assert_int_equal(x->depth, y->depth);
		assert_int_equal(x->deciding, y->deciding);
		assert_int_equal(x->excluded, y->excluded);
		assert_int_equal(x->mode, y->mode);
		assert_int_equal(x->nlink, y->nlink);
		assert_int_equal(x->size, y->size);
		assert_int_equal(x->mtime_ns, y->mtime_ns);
		assert_int_equal(x->ctime_ns, y->ctime_ns);
		assert_int_equal(x->dev, y->dev);
		assert_int_equal(x->ino, y->ino);
		assert_int_equal(x->link_len, y->link_len);
		if (x->link)
			assert_memory_equal(x->link, y->link, x->link_len + 1u);
		else
			assert_null(y->link);
		if (x->type == WALK_REG || x->type == WALK_LNK) {
			assert_true(x->hashed && y->hashed);
			assert_memory_equal(x->hash, y->hash, 16);
		}
	}
}

/* w, a replay with digest d1, is what the walker finds and hashes; both
 * released. */
static void assert_is_walk(struct walk_result *w, const char *d1)
{
	struct walk_result p;
	char d2[IDX_DIGEST_LEN];

	walk_plain(&p, d2);
	assert_string_equal(d1, d2);
	assert_same_walk(w, &p);
	walk_release(w);
	walk_release(&p);
}

/* Replay equals walk: hit, then edits in each half, then a new name. */
static void test_replay_is_the_walk(void **state)
{
	struct walk_result w, p;
	char d1[IDX_DIGEST_LEN], d2[IDX_DIGEST_LEN];

	assert_int_equal(run(&w, d1), IDX_SNAP_NONE);
	walk_release(&w);
	assert_int_equal(run(&w, d1), IDX_SNAP_HIT);
	assert_true(w.n > 3000);
	assert_is_walk(&w, d1);

	/* rewritten in place: one near the start, one near the end */
	write_file("d01/g000", "changed early\n");
	write_file("d38/sub/f079", "changed late, and longer\n");
	assert_int_equal(run(&w, d1), IDX_SNAP_PARTIAL);
	assert_is_walk(&w, d1);
	settle();
	assert_int_equal(run(&w, d1), IDX_SNAP_PARTIAL); /* the edits were racy */
	walk_release(&w);
	assert_int_equal(run(&w, d1), IDX_SNAP_HIT);
	walk_release(&w);

	/* a name added deep in the second half: walked */
	write_file("d33/sub/new", "new\n");
	assert_int_equal(run(&w, d1), IDX_SNAP_NONE);
	walk_plain(&p, d2);
	assert_string_equal(d1, d2);
	walk_release(&w);
	walk_release(&p);
	/* a directory replaced by a symlink to itself's sibling: walked */
	{
		char *a = xasprintf("%s/d39/sub", root), *b = xasprintf("%s/d39/old", root);

		assert_int_equal(rename(a, b), 0);
		assert_int_equal(symlink("old", a), 0);
		free(a);
		free(b);
	}
	assert_int_equal(run(&w, d1), IDX_SNAP_NONE);
	walk_plain(&p, d2);
	assert_string_equal(d1, d2);
	walk_release(&w);
	walk_release(&p);
}

/* The same entries as a fresh walk of that flavour, without hashes. */
static void assert_walk_of(const struct walk_result *w, unsigned flags)
{
	struct walk_opts wo = {0};
	struct walk_result p;
	struct err e = ERR_INIT;
	size_t i;

	wo.dir = root;
	wo.flags = flags;
	assert_int_equal(walk_run(&wo, &p, &e), 0);
	assert_int_equal(w->n, p.n);
	for (i = 0; i < p.n; i++) {
		const struct walk_entry *x = &w->v[i], *y = &p.v[i];

		assert_int_equal(x->path_len, y->path_len);
		assert_memory_equal(x->path, y->path, x->path_len + 1u);
		assert_int_equal(x->type, y->type);
		assert_int_equal(x->mode, y->mode);
		assert_int_equal(x->size, y->size);
		assert_int_equal(x->mtime_ns, y->mtime_ns);
		assert_int_equal(x->ctime_ns, y->ctime_ns);
		assert_int_equal(x->ino, y->ino);
		assert_int_equal(x->dev, y->dev);
		assert_int_equal(x->nlink, y->nlink);
		assert_int_equal(x->link_len, y->link_len);
		assert_int_equal(x->hashed, WALK_HASH_NONE);
	}
	walk_release(&p);
}

/* One run of a flavour: its snapshot answer, and (check) the entries a
 * fresh walk of that flavour gives.  A macro: a failure names the step. */
#define expect(flags, stat_only, want, check)                                      \
	do {                                                                        \
		struct walk_result w_;                                              \
                                                                                    \
		assert_int_equal(run_flavour(&w_, (flags), (stat_only), NULL), (want)); \
		if (check)                                                          \
			assert_walk_of(&w_, (flags));                               \
		walk_release(&w_);                                                  \
	} while (0)

/* Snapshots of the other walk flavours, and without hashes: each flavour
 * and kind has its own; one without hashes replays none. */
static void test_flavours_and_stat_only(void **state)
{
	const unsigned bk = WALK_FSUTIL2020, classic = WALK_CLASSIC | WALK_NO_HARDLINKS;
	struct walk_result w;

	(void)state;
	settle();
	expect(bk, 1, IDX_SNAP_NONE, 0);
	assert_int_equal(run_flavour(&w, bk, 1, NULL), IDX_SNAP_HIT);
	assert_true(w.n > 3000);
	assert_walk_of(&w, bk);
	walk_release(&w);
	/* not the snapshot of another flavour, nor of the same one with
	 * hashes: walked, then each has its own */
	expect(classic, 1, IDX_SNAP_NONE, 0);
	expect(bk, 0, IDX_SNAP_NONE, 0);
	expect(bk, 0, IDX_SNAP_HIT, 0);
	expect(classic, 1, IDX_SNAP_HIT, 1);
	expect(bk, 1, IDX_SNAP_HIT, 0);

	/* a file rewritten in place: its new stat, still no hash */
	write_file("d02/g004", "rewritten, stat only\n");
	expect(bk, 1, IDX_SNAP_PARTIAL, 1);
	/* a name removed: walked */
	{
		char *f = xasprintf("%s/d05/g006", root);

		assert_int_equal(unlink(f), 0);
		free(f);
	}
	expect(bk, 1, IDX_SNAP_NONE, 1);
	settle();
	expect(bk, 1, IDX_SNAP_NONE, 0); /* the last one was racy */
	expect(bk, 1, IDX_SNAP_HIT, 0);

	/* a flavour whose result a snapshot does not hold: never replayed */
	expect(WALK_EXCLUDED, 1, IDX_SNAP_NONE, 0);
	expect(WALK_EXCLUDED, 1, IDX_SNAP_NONE, 0);
}

static void test_memo(void **state)
{
	unsigned char k1[16], k2[16];
	struct idx_memo m, got;
	char *dir = xasprintf("%s/ctxmemo1/%s", idxdir, "x");
	int fd;

	memset(k1, 1, sizeof(k1));
	memset(k2, 2, sizeof(k2));
	memset(&m, 0, sizeof(m));
	snprintf(m.digest, sizeof(m.digest), "sha256:%064d", 7);
	m.bytes = 123;
	m.tar_bytes = 4567;
	m.entries = 89;
	assert_int_equal(idx_memo_get(idxdir, k1, &got), -1);
	idx_memo_put(idxdir, k1, &m);
	assert_int_equal(idx_memo_get(idxdir, k1, &got), 0);
	assert_string_equal(got.digest, m.digest);
	assert_int_equal(got.bytes, 123);
	assert_int_equal(got.tar_bytes, 4567);
	assert_int_equal(got.entries, 89);
	assert_int_equal(idx_memo_get(idxdir, k2, &got), -1);
	/* one byte changed: not used */
	free(dir);
	{
		char hex[33];
		char *p;

		hex_encode(hex, k1, 16);
		p = xasprintf("%s/archive-digests/%s", idxdir, hex);
		fd = open(p, O_WRONLY);
		assert_true(fd >= 0);
		assert_int_equal(pwrite(fd, "9", 1, 40), 1);
		close(fd);
		free(p);
	}
	assert_int_equal(idx_memo_get(idxdir, k1, &got), -1);
}

/* The snapshot file written last (newest mtime) in idxdir/snapshots. */
static char *newest_snapshot(void)
{
	char *dir = xasprintf("%s/snapshots", idxdir), *best = NULL;
	struct timespec bt = {0, 0};
	DIR *d = opendir(dir);
	struct dirent *de;

	assert_non_null(d);
	while ((de = readdir(d))) {
		char *p;
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		p = xasprintf("%s/%s", dir, de->d_name);
		assert_int_equal(stat(p, &st), 0);
		if (!best || st.st_mtim.tv_sec > bt.tv_sec ||
		    (st.st_mtim.tv_sec == bt.tv_sec && st.st_mtim.tv_nsec > bt.tv_nsec)) {
			free(best);
			best = p;
			bt = st.st_mtim;
		} else {
			free(p);
		}
	}
	closedir(d);
	free(dir);
	assert_non_null(best);
	return best;
}

/* A run that walks and stores, then one that replays: the snapshot file is
 * the same inode (rewritten in place), and the replay is the walk. */
static void walk_then_hit(const char *path, ino_t ino)
{
	struct walk_result w;
	char d1[IDX_DIGEST_LEN];
	struct stat st;

	assert_int_equal(run(&w, d1), IDX_SNAP_NONE);
	walk_release(&w);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_ino, ino);
	settle();
	assert_int_equal(run(&w, d1), IDX_SNAP_HIT);
	assert_is_walk(&w, d1);
}

/* A snapshot that exists is rewritten in place, shorter or longer; one
 * found half written (garbled, cut, grown) is not used: the tree is walked,
 * the right digest given, and the file written again. */
static void test_rewritten_in_place(void **state)
{
	struct walk_result w;
	char d1[IDX_DIGEST_LEN], *path;
	struct stat st, st2;
	int fd;

	settle();
	run(&w, d1);
	walk_release(&w);
	assert_int_equal(run(&w, d1), IDX_SNAP_HIT);
	walk_release(&w);
	path = newest_snapshot();
	assert_int_equal(stat(path, &st), 0);

	/* fewer entries: a shorter file over the same inode */
	{
		char *f = xasprintf("%s/d12/g010", root);

		assert_int_equal(unlink(f), 0);
		free(f);
	}
	settle();
	walk_then_hit(path, st.st_ino);
	assert_int_equal(stat(path, &st2), 0);
	assert_true(st2.st_size < st.st_size);
	/* more: a longer one */
	write_file("d12/g010", "back\n");
	write_file("d12/sub/a-name-longer-than-the-others", "more\n");
	settle();
	walk_then_hit(path, st.st_ino);
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_size > st2.st_size);

	/* garbled in the middle, as a reader may meet a file being written */
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "garbage!", 8, st.st_size / 2), 8);
	close(fd);
	walk_then_hit(path, st.st_ino);
	/* the old tail left after a shorter write */
	assert_int_equal(truncate(path, st.st_size + 4096), 0);
	walk_then_hit(path, st.st_ino);
	/* cut short */
	assert_int_equal(truncate(path, st.st_size / 3), 0);
	walk_then_hit(path, st.st_ino);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replay_is_the_walk),
		cmocka_unit_test(test_flavours_and_stat_only),
		cmocka_unit_test(test_memo),
		cmocka_unit_test(test_rewritten_in_place),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
