/*
 * Unit tests of the content index: key and value encoding, the reuse and
 * racy rules, the context digest, reading one file, and whole updates on
 * walk results built here by hand (no walker involved).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "ctxpack/index.h"

#include "../../src/index/idx_internal.h"

/* The digest of test_digest_golden's entries, pinned. */
#define GOLDEN_DIGEST "xxh128:f1c5be33958d13954bda895d9e4caa80"

/* ---- helpers ---- */

static char *tmpdir_new(void)
{
	char tmpl[] = "/tmp/ctxpack-unit-idx.XXXXXX";
	char *d = mkdtemp(tmpl);

	assert_non_null(d);
	return realpath(d, NULL);
}

static void rm_rf(const char *path)
{
	struct err e = ERR_INIT;

	remove_tree(path, &e);
}

static void write_file(const char *dir, const char *rel, const char *data)
{
	char *p = xasprintf("%s/%s", dir, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, data, strlen(data)), 0);
	close(fd);
	free(p);
}

/* A walk result of the given relative paths (archive order), stat'ed
 * with lstat like the walker does. */
static void fake_walk(struct walk_result *w, const char *root,
		      const char *const *paths, size_t n)
{
	size_t i;

	memset(w, 0, sizeof(*w));
	w->root = xstrdup(root);
	w->v = xcalloc(n ? n : 1, sizeof(*w->v));
	for (i = 0; i < n; i++) {
		struct walk_entry *we = &w->v[w->n];
		char *p = xasprintf("%s/%s", root, paths[i]);
		struct stat st;

		assert_int_equal(lstat(p, &st), 0);
		we->path = paths[i];
		we->path_len = (uint32_t)strlen(paths[i]);
		we->mode = st.st_mode;
		we->size = (uint64_t)st.st_size;
		we->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
		we->ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
		we->ino = st.st_ino;
		we->dev = st.st_dev;
		we->deciding = -1;
		if (S_ISREG(st.st_mode)) {
			we->type = WALK_REG;
		} else if (S_ISDIR(st.st_mode)) {
			we->type = WALK_DIR;
			we->size = 0;
		} else if (S_ISLNK(st.st_mode)) {
			char t[4096];
			ssize_t r = readlink(p, t, sizeof(t));

			assert_true(r >= 0);
			we->type = WALK_LNK;
			we->link = xstrndup(t, (size_t)r);
			we->link_len = (uint32_t)r;
		}
		w->n++;
		free(p);
	}
}

static void fake_release(struct walk_result *w)
{
	size_t i;

	for (i = 0; i < w->n; i++)
		free((char *)w->v[i].link);
	free(w->v);
	free(w->root);
	memset(w, 0, sizeof(*w));
}

/* A synthetic entry for digest tests (no file behind it). */
static struct walk_entry ent(const char *path, int type, uint32_t mode,
			     uint64_t size, const char *link, int hashbyte)
{
	struct walk_entry we;

	memset(&we, 0, sizeof(we));
	we.path = path;
	we.path_len = (uint32_t)strlen(path);
	we.type = (uint8_t)type;
	we.mode = mode;
	we.size = size;
	we.link = link;
	we.link_len = link ? (uint32_t)strlen(link) : 0;
	we.deciding = -1;
	if (type == WALK_REG || type == WALK_LNK) {
		memset(we.hash, hashbyte, 16);
		we.hashed = 1;
	}
	return we;
}

static int digest_normalize; /* the --normalize-modes of digest_of */

static void digest_of(struct walk_entry *v, size_t n, char out[IDX_DIGEST_LEN])
{
	struct walk_result w;

	memset(&w, 0, sizeof(w));
	w.v = v;
	w.n = n;
	w.root = (char *)"/ctx";
	w.flags = digest_normalize ? WALK_NORMALIZE_MODES : 0;
	idx_context_digest(&w, out);
}

/* ---- keys ---- */

static void test_key_encoding(void **state)
{
	unsigned char k[IDX_KEY_MAX];
	size_t n;

	(void)state;
	n = idx_key_encode(k, "/r", 2, "a/b/c", 5);
	assert_int_equal(n, 3 + 5);
	assert_memory_equal(k, "/r\0a\0b\0c", 8);
	n = idx_key_prefix(k, "/r", 2);
	assert_int_equal(n, 3);
	assert_memory_equal(k, "/r\0", 3);
}

static int kcmp(const unsigned char *a, size_t an, const unsigned char *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);

	return c ? c : (an > bn) - (an < bn);
}

static void test_key_order_is_archive_order(void **state)
{
	/* archive order: each directory's names sorted bytewise, children
	 * right after their directory */
	static const char *const paths[] = {
		"\x01x", "a", "a/\x01", "a/b", "a/b/c", "a/b-c", "a b", "a-b",
		"a.b", "a0", "b", "b/a", "\xff",
	};
	size_t i, n = sizeof(paths) / sizeof(paths[0]);
	unsigned char k1[IDX_KEY_MAX], k2[IDX_KEY_MAX];

	(void)state;
	for (i = 1; i < n; i++) {
		size_t n1 = idx_key_encode(k1, "/root", 5, paths[i - 1], strlen(paths[i - 1]));
		size_t n2 = idx_key_encode(k2, "/root", 5, paths[i], strlen(paths[i]));

		assert_true(walk_path_cmp(paths[i - 1], strlen(paths[i - 1]),
					 paths[i], strlen(paths[i])) < 0);
		assert_true(kcmp(k1, n1, k2, n2) < 0);
	}
}

static void test_key_roots_contiguous(void **state)
{
	/* every key of root /r lies in [prefix("/r"), ...) and no key of
	 * /r/sub, /r2 or /r-x starts with that prefix */
	static const char *const roots[] = {"/r/sub", "/r2", "/r-x", "/"};
	unsigned char pre[IDX_ROOT_MAX + 1], k[IDX_KEY_MAX];
	size_t pn = idx_key_prefix(pre, "/r", 2), i;

	(void)state;
	for (i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
		size_t n = idx_key_encode(k, roots[i], strlen(roots[i]), "f", 1);

		assert_false(n >= pn && !memcmp(k, pre, pn));
	}
	i = idx_key_encode(k, "/r", 2, "sub/f", 5);
	assert_true(i >= pn && !memcmp(k, pre, pn));
}

static void test_key_long(void **state)
{
	char root[400], path[1000], path2[1000];
	unsigned char k[IDX_KEY_MAX], k2[IDX_KEY_MAX], pre[IDX_ROOT_MAX + 1];
	size_t n, n2, pn;

	(void)state;
	/* a long root becomes '#' + 32 hex digits */
	memset(root, 'r', sizeof(root));
	root[0] = '/';
	pn = idx_key_prefix(pre, root, sizeof(root));
	assert_int_equal(pn, 34);
	assert_int_equal(pre[0], '#');
	assert_int_equal(pre[33], '\0');
	/* a long path: cut to IDX_KEY_MAX with a hash at the end, still
	 * under the root's prefix, different for different paths */
	memset(path, 'p', sizeof(path));
	memcpy(path2, path, sizeof(path));
	path2[sizeof(path2) - 1] = 'q';
	n = idx_key_encode(k, "/r", 2, path, sizeof(path));
	n2 = idx_key_encode(k2, "/r", 2, path2, sizeof(path2));
	assert_int_equal(n, IDX_KEY_MAX);
	assert_int_equal(n2, IDX_KEY_MAX);
	assert_memory_equal(k, "/r\0ppp", 6);
	assert_memory_not_equal(k, k2, IDX_KEY_MAX);
	assert_memory_equal(k, k2, IDX_KEY_MAX - 16);
	/* a long root and a long path together */
	n = idx_key_encode(k, root, sizeof(root), path, sizeof(path));
	assert_int_equal(n, IDX_KEY_MAX);
	assert_memory_equal(k, pre, pn);
}

/* ---- values ---- */

static struct idx_rec sample_rec(void)
{
	struct idx_rec r;

	memset(&r, 0, sizeof(r));
	r.dev = 0x0102030405060708ULL;
	r.ino = 42;
	r.size = 1000;
	r.mtime_ns = 1700000000123456789LL;
	r.ctime_ns = 1700000001987654321LL;
	r.written_ns = 1700000100000000000LL;
	r.mode = 0100644;
	memset(r.hash, 0xab, 16);
	return r;
}

static void test_val_roundtrip(void **state)
{
	static const unsigned char key[] = "/r\0a\0b";
	struct idx_rec r = sample_rec(), back;
	unsigned char v[IDX_VAL_LEN];

	(void)state;
	idx_val_encode(v, key, sizeof(key) - 1, &r);
	/* the layout is little-endian at fixed offsets */
	assert_int_equal(v[4], 0xa4);  /* mode 0100644 = 0x81a4 */
	assert_int_equal(v[5], 0x81);
	assert_int_equal(v[8], 0x08);  /* dev, low byte first */
	assert_int_equal(v[15], 0x01);
	assert_int_equal(v[16], 42);   /* ino */
	assert_int_equal(v[24], 1000 & 0xff);
	assert_memory_equal(v + 56, r.hash, 16);
	assert_int_equal(idx_val_decode(&back, key, sizeof(key) - 1, v, sizeof(v)), 0);
	assert_int_equal(back.dev, r.dev);
	assert_int_equal(back.ino, r.ino);
	assert_int_equal(back.size, r.size);
	assert_int_equal(back.mtime_ns, r.mtime_ns);
	assert_int_equal(back.ctime_ns, r.ctime_ns);
	assert_int_equal(back.written_ns, r.written_ns);
	assert_int_equal(back.mode, r.mode);
	assert_memory_equal(back.hash, r.hash, 16);
}

static void test_val_rejects_damage(void **state)
{
	static const unsigned char key[] = "/r\0a";
	struct idx_rec r = sample_rec(), back;
	unsigned char v[IDX_VAL_LEN], bad[IDX_VAL_LEN];
	size_t i;

	(void)state;
	idx_val_encode(v, key, sizeof(key) - 1, &r);
	for (i = 0; i < IDX_VAL_LEN; i++) {
		memcpy(bad, v, sizeof(v));
		bad[i] ^= 0x10;
		assert_int_equal(idx_val_decode(&back, key, sizeof(key) - 1, bad, sizeof(bad)), -1);
	}
	/* another key's value, a short or long value */
	assert_int_equal(idx_val_decode(&back, (const unsigned char *)"/r\0b", 4, v, sizeof(v)), -1);
	assert_int_equal(idx_val_decode(&back, key, sizeof(key) - 1, v, sizeof(v) - 1), -1);
}

/* ---- reuse rules ---- */

static void test_rec_matches(void **state)
{
	struct idx_rec r = sample_rec();
	struct walk_entry we;

	(void)state;
	memset(&we, 0, sizeof(we));
	we.type = WALK_REG;
	we.dev = r.dev + 1; /* dev is left out */
	we.ino = r.ino;
	we.size = r.size;
	we.mtime_ns = r.mtime_ns;
	we.ctime_ns = r.ctime_ns;
	we.mode = r.mode;
	assert_true(idx_rec_matches(&r, &we));
	we.size++;
	assert_false(idx_rec_matches(&r, &we));
	we.size--;
	we.mtime_ns++;
	assert_false(idx_rec_matches(&r, &we));
	we.mtime_ns--;
	we.ctime_ns++;
	assert_false(idx_rec_matches(&r, &we));
	we.ctime_ns--;
	we.ino++;
	assert_false(idx_rec_matches(&r, &we));
	we.ino--;
	we.mode |= 0100;
	assert_false(idx_rec_matches(&r, &we));
	we.mode = r.mode;
	assert_true(idx_rec_matches(&r, &we));
}

static void test_racy_rule(void **state)
{
	struct idx_rec r = sample_rec();
	const int64_t T = 1700000100000000000LL;

	(void)state;
	r.written_ns = T;
	/* old fine-grained times: trusted */
	r.mtime_ns = T - IDX_RACY_FINE_NS - 1;
	r.ctime_ns = T - IDX_RACY_FINE_NS - 7;
	assert_false(idx_rec_racy(&r));
	/* mtime in the window, at its edge, or after the run started */
	r.mtime_ns = T - IDX_RACY_FINE_NS + 1;
	assert_true(idx_rec_racy(&r));
	r.mtime_ns = T - IDX_RACY_FINE_NS;
	assert_true(idx_rec_racy(&r));
	r.mtime_ns = T + 5;
	assert_true(idx_rec_racy(&r));
	/* ctime alone makes it racy (mtime set back with touch -d) */
	r.mtime_ns = 1577836800123456789LL;
	r.ctime_ns = T - 1000;
	assert_true(idx_rec_racy(&r));
	/* whole-second timestamps (a coarse filesystem) get the wide window */
	r.ctime_ns = T - IDX_RACY_FINE_NS - 1000000; /* fine, outside */
	r.mtime_ns = T - 1000000000;                 /* whole second, 1 s ago */
	assert_true(idx_rec_racy(&r));
	r.mtime_ns = T - 3000000000LL;
	assert_false(idx_rec_racy(&r));
	/* an mtime set to an old whole second is not racy */
	r.mtime_ns = 1577836800000000000LL;
	assert_false(idx_rec_racy(&r));
}

/* ---- digest ---- */

static void test_archive_mode(void **state)
{
	struct walk_entry we = ent("f", WALK_REG, 0100600, 0, NULL, 0);

	(void)state;
	/* as found, as Docker keeps them */
	assert_int_equal(walk_archive_mode(&we, 0), 0600);
	we.mode = 0104701; /* setuid, o+x */
	assert_int_equal(walk_archive_mode(&we, 0), 04701);
	we = ent("d", WALK_DIR, 041777, 0, NULL, 0);
	assert_int_equal(walk_archive_mode(&we, 0), 01777);
	we = ent("l", WALK_LNK, 0120755, 3, "abc", 0);
	assert_int_equal(walk_archive_mode(&we, 0), 0777);
	/* git-style */
	we = ent("f", WALK_REG, 0100600, 0, NULL, 0);
	assert_int_equal(walk_archive_mode(&we, 1), 0644);
	we.mode = 0100744;
	assert_int_equal(walk_archive_mode(&we, 1), 0755);
	we.mode = 0104701;
	assert_int_equal(walk_archive_mode(&we, 1), 0755);
	we = ent("d", WALK_DIR, 040700, 0, NULL, 0);
	assert_int_equal(walk_archive_mode(&we, 1), 0755);
	we = ent("l", WALK_LNK, 0120755, 3, "abc", 0);
	assert_int_equal(walk_archive_mode(&we, 1), 0777);
	we = ent("h", WALK_HARDLINK, 0100640, 0, "f", 0);
	assert_int_equal(walk_archive_mode(&we, 0), 0640);
}

static void test_digest_normalization(void **state)
{
	struct walk_entry a[4], b[4];
	char da[IDX_DIGEST_LEN], db[IDX_DIGEST_LEN];

	(void)state;
	a[0] = ent("d", WALK_DIR, 040755, 0, NULL, 0);
	a[1] = ent("d/f", WALK_REG, 0100644, 10, NULL, 1);
	a[2] = ent("d/x", WALK_REG, 0100755, 20, NULL, 2);
	a[3] = ent("l", WALK_LNK, 0120777, 1, "d", 0);
	memcpy(b, a, sizeof(a));
	/* what the digest leaves out: times, inodes, devices, a symlink's
	 * stat size, and with --normalize-modes the permission bits other
	 * than exec */
	digest_normalize = 1;
	b[0].mode = 040700;
	b[0].mtime_ns = 5;
	b[1].mode = 0100600;
	b[1].mtime_ns = 123;
	b[1].ctime_ns = 456;
	b[1].ino = 99;
	b[1].dev = 7;
	b[1].nlink = 3;
	b[2].mode = 0100700;
	b[3].size = 999;
	digest_of(a, 4, da);
	digest_of(b, 4, db);
	assert_string_equal(da, db);
	assert_int_equal(strlen(da), IDX_DIGEST_LEN - 1);
	assert_memory_equal(da, "xxh128:", 7);
	/* the order the entries come in does not matter */
	b[0] = a[3];
	b[1] = a[2];
	b[2] = a[0];
	b[3] = a[1];
	digest_of(b, 4, db);
	assert_string_equal(da, db);
	/* excluded entries are not part of it */
	memcpy(b, a, sizeof(a));
	b[3].excluded = 1;
	digest_of(b, 4, db);
	digest_of(a, 3, da);
	assert_string_equal(da, db);
	/* without it the permission bits are the archive's: they count */
	digest_normalize = 0;
	memcpy(b, a, sizeof(a));
	digest_of(a, 4, da);
	b[1].mode = 0100600;
	digest_of(b, 4, db);
	assert_string_not_equal(da, db);
	b[1].mode = a[1].mode;
	b[0].mode = 041777;
	digest_of(b, 4, db);
	assert_string_not_equal(da, db);
	b[0].mode = a[0].mode;
	b[1].mtime_ns = 77;
	b[1].nlink = 2;
	digest_of(b, 4, db);
	assert_string_equal(da, db);
	/* a hard link is its target's path */
	b[2] = ent("d/x", WALK_HARDLINK, 0100755, 20, "d/f", 0);
	digest_of(b, 4, db);
	assert_string_not_equal(da, db);
	memcpy(a, b, sizeof(b));
	digest_of(a, 4, da);
	b[2].link = "l";
	b[2].link_len = 1;
	digest_of(b, 4, db);
	assert_string_not_equal(da, db);
}

static void test_digest_changes(void **state)
{
	struct walk_entry a[3], b[4];
	char base[IDX_DIGEST_LEN], d[IDX_DIGEST_LEN];

	(void)state;
	a[0] = ent("d", WALK_DIR, 040755, 0, NULL, 0);
	a[1] = ent("d/f", WALK_REG, 0100644, 10, NULL, 1);
	a[2] = ent("l", WALK_LNK, 0120777, 1, "d", 0);
	digest_of(a, 3, base);

#define CHANGED(n) do { digest_of(b, (n), d); assert_string_not_equal(base, d); } while (0)
	memcpy(b, a, sizeof(a));
	b[1].hash[15] ^= 1; /* content */
	CHANGED(3);
	memcpy(b, a, sizeof(a));
	b[1].mode = 0100744; /* exec bit */
	CHANGED(3);
	memcpy(b, a, sizeof(a));
	b[1].size = 11; /* size */
	CHANGED(3);
	memcpy(b, a, sizeof(a));
	b[2].link = "e"; /* symlink target */
	CHANGED(3);
	memcpy(b, a, sizeof(a));
	b[1].path = "d/g"; /* renamed */
	CHANGED(3);
	memcpy(b, a, sizeof(a));
	CHANGED(2); /* removed */
	memcpy(b, a, sizeof(a));
	b[3] = ent("e", WALK_DIR, 040755, 0, NULL, 0); /* an added empty dir */
	CHANGED(4);
	memcpy(b, a, sizeof(a));
	b[3] = ent("d/g", WALK_REG, 0100644, 0, NULL, 0); /* an added empty file */
	CHANGED(4);
	memcpy(b, a, sizeof(a));
	b[2] = ent("l", WALK_REG, 0100644, 1, NULL, 0); /* type */
	CHANGED(3);
	/* length prefixes: moving a byte from path to link changes it */
	memcpy(b, a, sizeof(a));
	b[2].path = "ld";
	b[2].path_len = 2;
	b[2].link = "";
	b[2].link_len = 0;
	CHANGED(3);
#undef CHANGED
}

static void test_digest_golden(void **state)
{
	/* Pinned: a change of this value is a change of the digest format
	 * (bump IDX_DIGEST_VERSION and update the docs). */
	struct walk_entry a[3];
	char d[IDX_DIGEST_LEN];

	(void)state;
	a[0] = ent("d", WALK_DIR, 040755, 0, NULL, 0);
	a[1] = ent("d/f", WALK_REG, 0100644, 10, NULL, 1);
	a[2] = ent("l", WALK_LNK, 0120777, 1, "d", 0);
	digest_of(a, 3, d);
	assert_string_equal(d, GOLDEN_DIGEST);
}

/* ---- reading one file ---- */

static void test_hash_file(void **state)
{
	char *dir = tmpdir_new();
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	char *buf = xmalloc(4096);
	struct walk_entry we;
	struct err e = ERR_INIT;
	unsigned char want[16];
	uint64_t nread;
	char big[10000];
	char *p;

	(void)state;
	/* small file (one read) and a file bigger than the buffer */
	write_file(dir, "small", "hello");
	memset(&we, 0, sizeof(we));
	we.path = "small";
	assert_int_equal(idx_hash_file(dfd, &we, buf, 4096, &nread, &e), 0);
	idx_hash_bytes("hello", 5, want);
	assert_memory_equal(we.hash, want, 16);
	assert_int_equal(nread, 5);
	assert_int_equal(we.size, 5);

	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	write_file(dir, "big", big);
	we.path = "big";
	assert_int_equal(idx_hash_file(dfd, &we, buf, 4096, &nread, &e), 0);
	idx_hash_bytes(big, sizeof(big) - 1, want);
	assert_memory_equal(we.hash, want, 16);

	/* gone since the walk: a change, naming it */
	we.path = "gone";
	assert_int_equal(idx_hash_file(dfd, &we, buf, 4096, &nread, &e), ERR_CHANGED);
	assert_string_equal(e.msg, "file changed while being read: gone (removed)");
	err_clear(&e);

	/* a symlink where a file was: never followed */
	p = xasprintf("%s/link", dir);
	assert_int_equal(symlink("small", p), 0);
	free(p);
	we.path = "link";
	assert_int_equal(idx_hash_file(dfd, &we, buf, 4096, &nread, &e), ERR_CHANGED);
	assert_non_null(strstr(e.msg, "link"));
	err_clear(&e);

	close(dfd);
	free(buf);
	rm_rf(dir);
	free(dir);
}

/* A sparse file: holes hashed as zeros without being read, the same hash
 * as of its bytes, in one piece or with a hole at either end. */
static void test_hash_file_sparse(void **state)
{
	static const struct {
		size_t size;
		size_t at[3];         /* data written here ... */
		size_t len[3];        /* ... this many bytes (0: none) */
	} cases[] = {
		{(3u << 20) + 77, {0, 1u << 20, (3u << 20) + 70}, {5000, 70000, 7}},
		{5u << 20, {(2u << 20) + 1, 0, 0}, {100, 0, 0}},   /* holes both ends */
		{4u << 20, {0, 0, 0}, {0, 0, 0}},                  /* all hole */
	};
	char *dir = tmpdir_new();
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	char *buf = xmalloc(65536);
	size_t c, k;

	(void)state;
	for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		char *p = xasprintf("%s/sparse%zu", dir, c);
		char *bytes = xcalloc(1, cases[c].size);
		int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		struct walk_entry we;
		struct err e = ERR_INIT;
		unsigned char want[16];
		uint64_t nread = 0;
		struct stat sb;

		assert_true(fd >= 0);
		assert_int_equal(ftruncate(fd, (off_t)cases[c].size), 0);
		for (k = 0; k < 3; k++) {
			size_t i;

			for (i = 0; i < cases[c].len[k]; i++)
				bytes[cases[c].at[k] + i] = (char)('a' + (i + k) % 23);
			if (cases[c].len[k])
				assert_int_equal(pwrite(fd, bytes + cases[c].at[k], cases[c].len[k],
							(off_t)cases[c].at[k]),
						 (ssize_t)cases[c].len[k]);
		}
		assert_int_equal(fstat(fd, &sb), 0);
		close(fd);
		if ((uint64_t)sb.st_blocks * 512 >= (uint64_t)sb.st_size) {
			/* no holes on this file system: the plain read path */
			print_message("  (no sparse files on %s)\n", dir);
		}
		memset(&we, 0, sizeof(we));
		we.path = strrchr(p, '/') + 1;
		assert_int_equal(idx_hash_file(dfd, &we, buf, 65536, &nread, &e), 0);
		idx_hash_bytes(bytes, cases[c].size, want);
		assert_memory_equal(we.hash, want, 16);
		assert_int_equal(nread, cases[c].size);
		assert_int_equal(we.size, cases[c].size);
		free(bytes);
		free(p);
	}
	close(dfd);
	free(buf);
	rm_rf(dir);
	free(dir);
}

static void test_hash_file_changing(void **state)
{
	/* /proc files say size 0 and read more: "changed while read", after
	 * one retry, with the path in the message */
	int dfd = open("/proc/self", O_RDONLY | O_DIRECTORY);
	char *buf = xmalloc(4096);
	struct walk_entry we;
	struct err e = ERR_INIT;
	uint64_t nread = 0;

	(void)state;
	if (dfd < 0) {
		free(buf);
		skip();
	}
	memset(&we, 0, sizeof(we));
	we.path = "stat";
	assert_int_equal(idx_hash_file(dfd, &we, buf, 4096, &nread, &e), ERR_CHANGED);
	assert_string_equal(e.msg, "file changed while being read: stat");
	assert_true(nread > 0);
	close(dfd);
	free(buf);
}

/* ---- whole updates ---- */

#define NFILES 3000

struct tree {
	char *dir;
	char *idx;
	const char **paths;
	size_t n;
};

static void make_tree(struct tree *t)
{
	size_t i;
	char *p;

	t->dir = tmpdir_new();
	t->idx = xasprintf("%s.index", t->dir);
	t->paths = xcalloc(NFILES + 3, sizeof(*t->paths));
	p = xasprintf("%s/d", t->dir);
	assert_int_equal(mkdir(p, 0755), 0);
	free(p);
	t->paths[t->n++] = "d";
	for (i = 0; i < NFILES; i++) {
		char *rel = xasprintf("d/f%05zu", i);
		char *data = xasprintf("content %zu\n", i);

		write_file(t->dir, rel, data);
		t->paths[t->n++] = rel;
		free(data);
	}
	p = xasprintf("%s/l", t->dir);
	assert_int_equal(symlink("d/f00001", p), 0);
	free(p);
	t->paths[t->n++] = "l";
}

static void free_tree(struct tree *t)
{
	size_t i;

	for (i = 1; i + 1 < t->n; i++)
		free((char *)t->paths[i]);
	free(t->paths);
	rm_rf(t->dir);
	rm_rf(t->idx);
	free(t->dir);
	free(t->idx);
}

/* Let the tree's timestamps age out of the racy window. */
static void age(void)
{
	struct timespec ts = {0, IDX_RACY_FINE_NS + 50000000};

	nanosleep(&ts, NULL);
}

static void test_update_cold_warm(void **state)
{
	struct tree t = {0};
	struct walk_result w;
	struct idx_stats st;
	struct idx *x;
	struct err e = ERR_INIT;
	char d1[IDX_DIGEST_LEN], d2[IDX_DIGEST_LEN];
	unsigned char want[16];
	size_t i;

	(void)state;
	make_tree(&t);
	age();
	/* a tiny map: the cold run must grow it (MDB_MAP_FULL) */
	assert_int_equal(idx_open(&x, t.idx, IDX_SMALL_MAP, &e), 0);
	assert_null(idx_warning(x));
	fake_walk(&w, t.dir, t.paths, t.n);
	assert_int_equal(idx_update(x, &w, &st, &e), 0);
	assert_int_equal(st.entries, NFILES + 2);
	assert_int_equal(st.files, NFILES);
	assert_int_equal(st.symlinks, 1);
	assert_int_equal(st.hashed, NFILES);
	assert_int_equal(st.reused, 0);
	assert_int_equal(st.written, NFILES);
	for (i = 0; i < w.n; i++)
		if (w.v[i].type != WALK_DIR)
			assert_int_equal(w.v[i].hashed, 1);
	idx_hash_bytes("content 7\n", 10, want);
	assert_memory_equal(w.v[8].hash, want, 16);
	idx_context_digest(&w, d1);
	fake_release(&w);
	assert_null(idx_warning(x));
	idx_close(x);

	/* warm: nothing read, nothing written, same digest */
	assert_int_equal(idx_open(&x, t.idx, 0, &e), 0);
	fake_walk(&w, t.dir, t.paths, t.n);
	assert_int_equal(idx_update(x, &w, &st, &e), 0);
	assert_int_equal(st.hashed, 0);
	assert_int_equal(st.reused, NFILES);
	assert_int_equal(st.written, 0);
	assert_int_equal(st.bytes_hashed, 0);
	idx_context_digest(&w, d2);
	assert_string_equal(d1, d2);
	fake_release(&w);

	/* one file changed (new size), files 10..19 deleted and 20..29 left
	 * out of the walk (excluded by another ignore file, say): one
	 * hashed, the ten deleted files' entries dropped, the others kept */
	write_file(t.dir, "d/f00003", "changed content\n");
	for (i = 10; i < 20; i++) {
		char *p = xasprintf("%s/%s", t.dir, t.paths[i + 1]);

		assert_int_equal(unlink(p), 0);
		free(p);
	}
	age();
	{
		const char **sub = xcalloc(t.n, sizeof(*sub));
		size_t n = 0;

		for (i = 0; i < t.n; i++)
			if (i < 11 || i > 30)
				sub[n++] = t.paths[i];
		fake_walk(&w, t.dir, sub, n);
		assert_int_equal(idx_update(x, &w, &st, &e), 0);
		assert_int_equal(st.hashed, 1);
		assert_int_equal(st.reused, NFILES - 21);
		assert_int_equal(st.dropped, 10);
		idx_hash_bytes("changed content\n", 16, want);
		assert_memory_equal(w.v[4].hash, want, 16);
		idx_context_digest(&w, d2);
		assert_string_not_equal(d1, d2);
		fake_release(&w);

		/* the kept ones are reused when a walk includes them again */
		n = 0;
		for (i = 0; i < t.n; i++)
			if (i < 11 || i > 20)
				sub[n++] = t.paths[i];
		fake_walk(&w, t.dir, sub, n);
		assert_int_equal(idx_update(x, &w, &st, &e), 0);
		assert_int_equal(st.hashed, 0);
		assert_int_equal(st.reused, NFILES - 10);
		assert_int_equal(st.dropped, 0);
		fake_release(&w);

		/* excluding most of the tree at once drops its entries */
		fake_walk(&w, t.dir, sub, 101);
		assert_int_equal(idx_update(x, &w, &st, &e), 0);
		assert_int_equal(st.reused, 100);
		assert_int_equal(st.dropped, NFILES - 10 - 100);
		fake_release(&w);
		free(sub);
	}
	idx_close(x);
	free_tree(&t);
}

/* A whole file, malloc'd; its size in *n. */
static char *read_whole(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	char *b = xmalloc(1 << 16);

	assert_non_null(f);
	*n = fread(b, 1, 1 << 16, f);
	assert_true(feof(f));
	fclose(f);
	return b;
}

/* idx_set_defer: a first run leaves the small files to the caller, who
 * hashes them and has them stored; the next run reuses them all. */
static void test_update_defer(void **state)
{
	struct tree t = {0};
	struct walk_result w;
	struct idx_stats st;
	struct idx *x;
	struct err e = ERR_INIT;
	char d1[IDX_DIGEST_LEN], d2[IDX_DIGEST_LEN];
	size_t i, unhashed = 0;

	(void)state;
	assert_true(NFILES >= IDX_DEFER_MIN);
	make_tree(&t);
	age();
	assert_int_equal(idx_open(&x, t.idx, 0, &e), 0);
	fake_walk(&w, t.dir, t.paths, t.n);
	assert_int_equal(idx_update(x, &w, &st, &e), 0);
	idx_context_digest(&w, d1);
	fake_release(&w);
	idx_close(x);
	rm_rf(t.idx);

	/* an empty index, small files deferred */
	assert_int_equal(idx_open(&x, t.idx, 0, &e), 0);
	idx_set_defer(x, 1 << 20);
	fake_walk(&w, t.dir, t.paths, t.n);
	assert_int_equal(idx_update(x, &w, &st, &e), 0);
	assert_int_equal(st.hashed, 0);
	assert_int_equal(st.deferred, NFILES);
	assert_int_equal(st.written, 0);
	for (i = 0; i < w.n; i++) {
		if (w.v[i].type == WALK_REG)
			unhashed += !w.v[i].hashed;
		else if (w.v[i].type == WALK_LNK)
			assert_int_equal(w.v[i].hashed, 1);
	}
	assert_int_equal(unhashed, NFILES);
	/* the caller hashes all but one from what it read */
	for (i = 0; i < w.n; i++) {
		struct walk_entry *we = &w.v[i];
		char *p, *data;
		size_t n;

		if (we->type != WALK_REG || !strcmp(we->path, "d/f00005"))
			continue;
		p = xasprintf("%s/%s", t.dir, we->path);
		data = read_whole(p, &n);
		idx_hash_bytes(data, n, we->hash);
		we->hashed = 2;
		free(data);
		free(p);
	}
	memset(&st, 0, sizeof(st));
	idx_store_deferred(x, &w, &st);
	assert_int_equal(st.hashed, NFILES - 1);
	assert_int_equal(st.written, NFILES - 1);
	fake_release(&w);
	idx_close(x);

	/* the next run: every stored one reused, the one left out hashed,
	 * the same digest as a run that hashed everything itself */
	assert_int_equal(idx_open(&x, t.idx, 0, &e), 0);
	fake_walk(&w, t.dir, t.paths, t.n);
	assert_int_equal(idx_update(x, &w, &st, &e), 0);
	assert_int_equal(st.reused, NFILES - 1);
	assert_int_equal(st.hashed, 1);
	assert_int_equal(st.deferred, 0);
	idx_context_digest(&w, d2);
	assert_string_equal(d1, d2);
	fake_release(&w);
	idx_close(x);

	/* a few files to hash: no deferral, even when asked */
	write_file(t.dir, "d/f00003", "changed\n");
	age();
	assert_int_equal(idx_open(&x, t.idx, 0, &e), 0);
	idx_set_defer(x, 1 << 20);
	fake_walk(&w, t.dir, t.paths, t.n);
	assert_int_equal(idx_update(x, &w, &st, &e), 0);
	assert_int_equal(st.hashed, 1);
	assert_int_equal(st.deferred, 0);
	fake_release(&w);
	idx_close(x);
	free_tree(&t);
}

static void test_update_racy(void **state)
{
	struct tree t = {0};
	struct walk_result w;
	struct idx_stats st;
	struct idx *x;
	struct err e = ERR_INIT;

	(void)state;
	make_tree(&t);
	/* written just now: the first run's entries are racy (the files'
	 * ctimes are in the window before its start), so the second run
	 * reads them again even though it comes later; its own entries are
	 * clean, and a third run reads nothing */
	assert_int_equal(idx_open(&x, t.idx, 0, &e), 0);
	write_file(t.dir, "d/f02999", "content 2999\n"); /* surely recent */
	fake_walk(&w, t.dir, t.paths, t.n);
	assert_int_equal(idx_update(x, &w, &st, &e), 0);
	assert_int_equal(st.hashed, NFILES);
	fake_release(&w);
	age();
	fake_walk(&w, t.dir, t.paths, t.n);
	assert_int_equal(idx_update(x, &w, &st, &e), 0);
	/* (making the tree takes a while: its first files may be older
	 * than the window; its last ones are not) */
	assert_true(st.racy > 0);
	assert_int_equal(st.hashed, st.racy);
	assert_int_equal(st.written, st.racy);
	assert_int_equal(st.reused, NFILES - st.racy);
	fake_release(&w);
	fake_walk(&w, t.dir, t.paths, t.n);
	assert_int_equal(idx_update(x, &w, &st, &e), 0);
	assert_int_equal(st.hashed, 0);
	assert_int_equal(st.racy, 0);
	assert_int_equal(st.reused, NFILES);
	fake_release(&w);
	idx_close(x);
	free_tree(&t);
}

static void test_update_threads_agree(void **state)
{
	struct tree t = {0};
	struct walk_result w1, w2;
	struct idx *x;
	struct err e = ERR_INIT;
	size_t i;

	(void)state;
	make_tree(&t);
	assert_int_equal(idx_open(&x, t.idx, 0, &e), 0);
	idx_set_threads(x, 1);
	fake_walk(&w1, t.dir, t.paths, t.n);
	assert_int_equal(idx_update(x, &w1, NULL, &e), 0);
	idx_close(x);
	rm_rf(t.idx);
	assert_int_equal(idx_open(&x, t.idx, 0, &e), 0);
	idx_set_threads(x, 4);
	fake_walk(&w2, t.dir, t.paths, t.n);
	assert_int_equal(idx_update(x, &w2, NULL, &e), 0);
	for (i = 0; i < w1.n; i++)
		assert_memory_equal(w1.v[i].hash, w2.v[i].hash, 16);
	fake_release(&w1);
	fake_release(&w2);
	idx_close(x);
	free_tree(&t);
}

static void test_update_errors(void **state)
{
	struct tree t = {0};
	struct walk_result w;
	struct idx *x;
	struct err e = ERR_INIT;
	char *p;

	(void)state;
	make_tree(&t);
	assert_int_equal(idx_open(&x, t.idx, 0, &e), 0);
	/* a file gone between the walk and the read: named */
	fake_walk(&w, t.dir, t.paths, t.n);
	p = xasprintf("%s/d/f00100", t.dir);
	unlink(p);
	free(p);
	assert_int_equal(idx_update(x, &w, NULL, &e), ERR_CHANGED);
	assert_non_null(strstr(e.msg, "d/f00100"));
	err_clear(&e);
	fake_release(&w);
	idx_close(x);

	/* an index inside the context is refused */
	p = xasprintf("%s/d/.index", t.dir);
	assert_int_equal(idx_open(&x, p, 0, &e), 0);
	fake_walk(&w, t.dir, t.paths, 1);
	assert_int_equal(idx_update(x, &w, NULL, &e), ERR_USAGE);
	assert_non_null(strstr(e.msg, "inside the context"));
	err_clear(&e);
	fake_release(&w);
	idx_close(x);
	free(p);
	free_tree(&t);
}

/* ---- opening and rebuilding ---- */

static void test_open_rebuilds_garbage(void **state)
{
	char *dir = tmpdir_new();
	char *data = xasprintf("%s/data.mdb", dir);
	struct idx *x;
	struct err e = ERR_INIT;
	char junk[8192];
	int fd;

	(void)state;
	assert_int_equal(idx_open(&x, dir, 0, &e), 0);
	assert_null(idx_warning(x));
	idx_close(x);
	memset(junk, 0x5a, sizeof(junk));
	fd = open(data, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, junk, sizeof(junk)), 0);
	close(fd);
	assert_int_equal(idx_open(&x, dir, 0, &e), 0);
	assert_non_null(idx_warning(x));
	assert_non_null(strstr(idx_warning(x), "rebuilt"));
	idx_close(x);
	/* and it is fine afterwards */
	assert_int_equal(idx_open(&x, dir, 0, &e), 0);
	assert_null(idx_warning(x));
	idx_close(x);
	free(data);
	rm_rf(dir);
	free(dir);
}

static void test_open_rebuilds_other_schema(void **state)
{
	char *dir = tmpdir_new();
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {14, (void *)"\0ctxpack-index"};
	MDB_val v = {28, (void *)"ctxpack-index schema 0 old!!"};
	MDB_val k2 = {4, (void *)"/r\0f"}, v2 = {3, (void *)"old"};
	struct idx *x;
	struct err e = ERR_INIT;

	(void)state;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_open(env, dir, 0, 0644), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_put(txn, dbi, &k2, &v2, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);

	assert_int_equal(idx_open(&x, dir, 0, &e), 0);
	assert_non_null(idx_warning(x));
	assert_non_null(strstr(idx_warning(x), "schema"));
	idx_close(x);

	/* the old entry is gone */
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0644), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
	assert_int_equal(mdb_get(txn, dbi, &k2, &v2), MDB_NOTFOUND);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	rm_rf(dir);
	free(dir);
}

static void test_open_default_dir(void **state)
{
	char *dir = tmpdir_new();
	char *want;
	struct idx *x;
	struct err e = ERR_INIT;

	(void)state;
	setenv("XDG_CACHE_HOME", dir, 1);
	unsetenv("CTXPACK_INDEX");
	env_load();
	assert_int_equal(idx_open(&x, NULL, 0, &e), 0);
	want = xasprintf("%s/ctxpack/index", dir);
	assert_string_equal(idx_dir(x), want);
	free(want);
	idx_close(x);
	want = xasprintf("%s/other", dir);
	setenv("CTXPACK_INDEX", want, 1);
	env_load();
	assert_int_equal(idx_open(&x, NULL, 0, &e), 0);
	assert_string_equal(idx_dir(x), want);
	idx_close(x);
	/* an explicit directory wins over the environment */
	free(want);
	want = xasprintf("%s/explicit", dir);
	assert_int_equal(idx_open(&x, want, 0, &e), 0);
	assert_string_equal(idx_dir(x), want);
	idx_close(x);
	unsetenv("CTXPACK_INDEX");
	env_load();
	free(want);
	rm_rf(dir);
	free(dir);
}

/* ---- a damaged index ---- */

/* A data.mdb in memory, with its newer meta page decoded. */
struct img {
	unsigned char *b;
	size_t n;
	unsigned psize;
	struct idx_lm_meta m[2];
	int cur;
};

static void img_load(struct img *im, const char *idx)
{
	char *p = xasprintf("%s/data.mdb", idx);
	struct stat st;
	char why[256];
	int fd = open(p, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	im->n = (size_t)st.st_size;
	im->b = xmalloc(im->n);
	assert_int_equal(read_full(fd, im->b, im->n), (ssize_t)im->n);
	close(fd);
	free(p);
	idx_lm_meta_decode(im->b, &im->m[0]);
	im->psize = im->m[0].db[0].pad;
	assert_int_equal(im->psize, 4096);
	idx_lm_meta_decode(im->b + im->psize, &im->m[1]);
	im->cur = idx_lm_metas_check(im->m, im->n, why, sizeof(why));
	assert_true(im->cur >= 0);
}

static void img_save(const struct img *im, const char *idx)
{
	char *p = xasprintf("%s/data.mdb", idx);
	int fd = open(p, O_WRONLY | O_TRUNC);

	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, im->b, im->n), 0);
	close(fd);
	free(p);
}

static unsigned char *img_page(const struct img *im, uint64_t pgno)
{
	return im->b + pgno * im->psize;
}

static unsigned img_u16(const unsigned char *p)
{
	return (unsigned)p[0] | (unsigned)p[1] << 8;
}

/* Node i of a page. */
static unsigned char *img_node(const struct img *im, uint64_t pgno, unsigned i)
{
	unsigned char *p = img_page(im, pgno);

	return p + img_u16(p + 16 + 2 * i);
}

static unsigned img_nkeys(const struct img *im, uint64_t pgno)
{
	return (img_u16(img_page(im, pgno) + 12) - 16) / 2;
}

/* A leaf of the main tree: from the root, child `which` of each branch
 * (0 the first, 1 the middle one). */
static uint64_t img_leaf(const struct img *im, int which)
{
	uint64_t pg = im->m[im->cur].db[1].root;

	while (img_u16(img_page(im, pg) + 10) == 0x01) {
		unsigned char *nd = img_node(im, pg, which ? img_nkeys(im, pg) / 2 : 0);

		pg = img_u16(nd) | (uint64_t)img_u16(nd + 2) << 16;
	}
	assert_int_equal(img_u16(img_page(im, pg) + 10), 0x02);
	return pg;
}

static const unsigned char *img_read(void *ctx, uint64_t pgno, uint64_t npg, unsigned slot)
{
	const struct img *im = ctx;

	(void)npg;
	(void)slot;
	return im->b + pgno * im->psize;
}

/* full: every page (IDX_LM_ALL), else what an open checks */
/* The second leaf: the first one's right neighbour. */
static uint64_t img_leaf2(const struct img *im)
{
	uint64_t pg = im->m[im->cur].db[1].root, parent = 0;

	while (img_u16(img_page(im, pg) + 10) == 0x01) {
		unsigned char *nd = img_node(im, pg, 0);

		parent = pg;
		pg = img_u16(nd) | (uint64_t)img_u16(nd + 2) << 16;
	}
	assert_true(parent && img_nkeys(im, parent) >= 2);
	{
		unsigned char *nd = img_node(im, parent, 1);

		return img_u16(nd) | (uint64_t)img_u16(nd + 2) << 16;
	}
}

static int img_check(struct img *im, size_t size, int full, char *why, size_t n)
{
	struct idx_lm_src src = {img_read, im, size};

	return idx_lm_check(&src, &im->m[im->cur], full ? IDX_LM_ALL : IDX_LM_OPEN, NULL,
			    0, why, n);
}

/* What a write of the keys of leaf `leaf`'s node i checks. */
static int img_check_write(struct img *im, uint64_t leaf, unsigned i, char *why, size_t n)
{
	struct idx_lm_src src = {img_read, im, im->n};
	unsigned char *nd = img_node(im, leaf, i);
	struct idx_lm_key k = {nd + 8, img_u16(nd + 6)};

	return idx_lm_check(&src, &im->m[im->cur], IDX_LM_WRITE, &k, 1, why, n);
}

/* An index of the tree t, and the digest. */
static void index_tree(struct tree *t, char digest[IDX_DIGEST_LEN])
{
	struct walk_result w;
	struct idx *x;
	struct err e = ERR_INIT;

	make_tree(t);
	age();
	assert_int_equal(idx_open(&x, t->idx, 0, &e), 0);
	fake_walk(&w, t->dir, t->paths, t->n);
	assert_int_equal(idx_update(x, &w, NULL, &e), 0);
	idx_context_digest(&w, digest);
	fake_release(&w);
	idx_close(x);
}

/* One run: open, update, digest; the warning (or "") into warn. */
static void run_tree(struct tree *t, struct idx_stats *st, char digest[IDX_DIGEST_LEN],
		     char *warn, size_t wn)
{
	struct walk_result w;
	struct idx *x;
	struct err e = ERR_INIT;

	assert_int_equal(idx_open(&x, t->idx, 0, &e), 0);
	fake_walk(&w, t->dir, t->paths, t->n);
	assert_int_equal(idx_update(x, &w, st, &e), 0);
	idx_context_digest(&w, digest);
	snprintf(warn, wn, "%s", idx_warning(x) ? idx_warning(x) : "");
	fake_release(&w);
	idx_close(x);
}

static void test_lm_metas(void **state)
{
	struct tree t = {0};
	struct img im;
	struct idx_lm_meta m[2];
	char d[IDX_DIGEST_LEN], why[256];
	int k;

	(void)state;
	index_tree(&t, d);
	img_load(&im, t.idx);
	/* the newer meta: the one with the higher commit id, of its parity */
	assert_true(im.m[im.cur].txnid > im.m[!im.cur].txnid);
	assert_int_equal(im.m[im.cur].txnid & 1, im.cur);
#define BAD(stmt)                                                            \
	do {                                                                 \
		memcpy(m, im.m, sizeof(m));                                  \
		stmt;                                                        \
		why[0] = 0;                                                  \
		assert_int_equal(idx_lm_metas_check(m, im.n, why, sizeof(why)), -1); \
		assert_true(why[0] != 0);                                    \
	} while (0)
	for (k = 0; k < 2; k++) {
		BAD(m[k].pgno = !k);
		BAD(m[k].pflags = 0x02);
		BAD(m[k].magic ^= 1);
		BAD(m[k].version = 999);
		BAD(m[k].db[0].pad = 8192);
		BAD(m[k].db[1].flags = 0x04); /* DUPSORT: sub-cursors LMDB lacks */
		BAD(m[k].db[0].flags = 0);
		BAD(m[k].address = 0x10000);
		BAD(m[k].last_pg = 0);
	}
	BAD(m[0].db[0].pad = m[1].db[0].pad = 0); /* LMDB divides by it */
	BAD(m[0].db[0].pad = m[1].db[0].pad = 3000);
	BAD(m[0].db[0].pad = m[1].db[0].pad = 65536);
	BAD(m[1].db[1].root = m[1].last_pg + 1);
	BAD(m[1].db[1].root = 1);
	BAD(m[1].db[1].depth = 0);
	BAD(m[1].db[1].depth = 33);
	BAD(m[1].db[0].root = IDX_LM_NONE; m[1].db[0].leaf = 1);
	/* commit ids: meta k holds ids of parity k, the two one apart */
	memcpy(m, im.m, sizeof(m));
	m[0].txnid = 2;
	m[1].txnid = 1;
	assert_int_equal(idx_lm_metas_check(m, im.n, why, sizeof(why)), 0);
	m[1].txnid = 3;
	assert_int_equal(idx_lm_metas_check(m, im.n, why, sizeof(why)), 1);
	BAD(m[0].txnid = 4; m[1].txnid = 1);
	BAD(m[0].txnid = 1; m[1].txnid = 2);
	BAD(m[0].txnid = 2; m[1].txnid = 5);
	BAD(m[0].txnid = 2; m[1].txnid = 2);
	/* within the meta pages: too short */
	assert_int_equal(idx_lm_metas_check(im.m, 8191, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "meta pages"));
#undef BAD
	free(im.b);
	free_tree(&t);
}

static void test_lm_trees(void **state)
{
	struct tree t = {0};
	struct img im;
	char d[IDX_DIGEST_LEN], why[256];
	unsigned char *saved;
	uint64_t leaf, last, root;
	unsigned char *p;

	(void)state;
	index_tree(&t, d);
	img_load(&im, t.idx);
	saved = xmalloc(im.n);
	memcpy(saved, im.b, im.n);
	root = im.m[im.cur].db[1].root;
	last = im.m[im.cur].last_pg;
	/* 3000 records: a branch root over more pages */
	assert_true(im.m[im.cur].db[1].depth >= 2);
	assert_int_equal(img_check(&im, im.n, 1, why, sizeof(why)), 0);
	assert_int_equal(img_check(&im, im.n, 0, why, sizeof(why)), 0);
	leaf = img_leaf(&im, 1);
#define BACK() memcpy(im.b, saved, im.n)

	/* cut the file anywhere before the last tree page: both see it */
	assert_int_equal(img_check(&im, last * im.psize, 0, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "past the end of the file"));
	assert_int_equal(img_check(&im, last * im.psize + 4095, 1, why, sizeof(why)), -1);

	/* a damaged leaf header: an open does not read leaves, a write
	 * reads the leaves its keys lead to and their neighbours */
	p = img_page(&im, leaf);
	p[10] |= 0x10; /* P_DIRTY: LMDB would write into its read-only map */
	assert_int_equal(img_check(&im, im.n, 0, why, sizeof(why)), 0);
	assert_int_equal(img_check(&im, im.n, 1, why, sizeof(why)), -1);
	assert_int_equal(img_check_write(&im, leaf, 2, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "flags"));
	assert_int_equal(img_check_write(&im, img_leaf(&im, 0), 2, why, sizeof(why)), 0);
	BACK();
	/* the first leaf's neighbour: a delete there may merge the two */
	p = img_page(&im, img_leaf2(&im));
	p[10] |= 0x10;
	assert_int_equal(img_check_write(&im, img_leaf(&im, 0), 2, why, sizeof(why)), -1);
	assert_int_equal(img_check_write(&im, leaf, 2, why, sizeof(why)), 0);
	BACK();
	p = img_page(&im, leaf);
	/* upper: where LMDB would put the next node (the 16-bit field as a
	 * whole: its low byte alone may wrap, which is another damage); the
	 * leaf's fill depends on the paths of the tree, which vary per run */
	{
		uint16_t u;

		memcpy(&u, p + 14, 2);
		u -= 2;
		memcpy(p + 14, &u, 2);
	}
	assert_int_equal(img_check(&im, im.n, 1, why, sizeof(why)), -1);
	/* the nodes no longer fill the page from upper; on a full leaf
	 * (lower == upper) the free space check sees it first */
	assert_true(strstr(why, "fill") || strstr(why, "free space"));
	BACK();
	{
		uint16_t u; /* lower: one node more than there is */

		memcpy(&u, p + 12, 2);
		u += 2;
		memcpy(p + 12, &u, 2);
	}
	assert_int_equal(img_check(&im, im.n, 1, why, sizeof(why)), -1);
	BACK();
	p[16] = 0xff; /* a node offset past the end of the page */
	p[17] = 0x0f;
	assert_int_equal(img_check(&im, im.n, 1, why, sizeof(why)), -1);
	BACK();
	/* a record's key size, its flags, its key bytes */
	img_node(&im, leaf, 3)[6] += 40;
	assert_int_equal(img_check(&im, im.n, 1, why, sizeof(why)), -1);
	BACK();
	img_node(&im, leaf, 3)[4] = 0x04; /* F_DUPDATA: a sub-cursor LMDB lacks */
	assert_int_equal(img_check(&im, im.n, 1, why, sizeof(why)), -1);
	BACK();
	/* every key of the leaf starts with the context's root ('/'): a
	 * first byte of 0 puts node 3 before node 2, whatever the layout of
	 * the page (its last byte set to 0x7f could keep the order) */
	img_node(&im, leaf, 3)[8] = 0x00;
	assert_int_equal(img_check(&im, im.n, 1, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "out of order"));
	BACK();

	/* the branch page: read by both */
	p = img_page(&im, root);
	img_node(&im, root, 1)[0] ^= 0x40; /* a child's page number */
	assert_int_equal(img_check(&im, im.n, 0, why, sizeof(why)), -1);
	BACK();
	/* a separator above the keys of the child it leads to: a search
	 * for them would take the wrong way */
	img_node(&im, root, 1)[8 + 1] = 0xff;
	assert_int_equal(img_check(&im, im.n, 1, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "out of order"));
	BACK();
	memcpy(img_node(&im, root, 0), img_node(&im, root, 1), 4); /* a child twice */
	assert_int_equal(img_check(&im, im.n, 0, why, sizeof(why)), -1);
	BACK();
	*(uint64_t *)p = root + 1; /* the page number it holds */
	assert_int_equal(img_check(&im, im.n, 0, why, sizeof(why)), -1);
	BACK();

	/* the meta's counts and last page */
	im.m[im.cur].db[1].leaf++;
	assert_int_equal(img_check(&im, im.n, 0, why, sizeof(why)), -1);
	im.m[im.cur].db[1].leaf--;
	im.m[im.cur].db[1].entries++;
	assert_int_equal(img_check(&im, im.n, 0, why, sizeof(why)), 0);
	assert_int_equal(img_check(&im, im.n, 1, why, sizeof(why)), -1);
	im.m[im.cur].db[1].entries--;
	im.m[im.cur].last_pg++; /* a page neither used nor free */
	assert_int_equal(img_check(&im, im.n + 4096, 0, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "neither used nor free"));
	im.m[im.cur].last_pg = 1000000000; /* far past the end: no huge bitmap */
	assert_int_equal(img_check(&im, im.n, 0, why, sizeof(why)), -1);
	im.m[im.cur].last_pg = last;
	assert_int_equal(img_check(&im, im.n, 1, why, sizeof(why)), 0);
#undef BACK
	free(saved);
	free(im.b);
	free_tree(&t);
}

static void test_guard(void **state)
{
	char path[] = "/tmp/ctxpack-unit-guard.XXXXXX";
	int fd = mkstemp(path);
	volatile unsigned char *map;
	struct idx_guard g, g2;
	volatile int reached = 0;
	volatile int *volatile nowhere = NULL;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 4096), 0);
	/* two pages mapped, one in the file: the second is a SIGBUS */
	map = mmap(NULL, 8192, PROT_READ, MAP_SHARED, fd, 0);
	assert_true(map != MAP_FAILED);
	idx_guard_init();
	if (sigsetjmp(g.jb, 1)) {
		assert_int_equal(g.sig, SIGBUS);
		reached = 1;
	} else {
		idx_guard_arm(&g);
		(void)map[4096];
		idx_guard_disarm(&g);
	}
	assert_int_equal(reached, 1);

	/* nested: the inner one catches, the outer one is armed again */
	reached = 0;
	if (sigsetjmp(g.jb, 1)) {
		assert_int_equal(g.sig, SIGSEGV);
		reached += 10;
	} else {
		idx_guard_arm(&g);
		if (sigsetjmp(g2.jb, 1)) {
			assert_int_equal(g2.sig, SIGBUS);
			reached++;
		} else {
			idx_guard_arm(&g2);
			(void)map[5000];
		}
		(void)nowhere[2];
	}
	assert_int_equal(reached, 11);

	/* LMDB's assertion callback jumps too, and is a no-op unarmed */
	reached = 0;
	if (sigsetjmp(g.jb, 1)) {
		assert_int_equal(g.sig, SIGABRT);
		reached = 1;
	} else {
		idx_guard_arm(&g);
		idx_guard_assert();
	}
	assert_int_equal(reached, 1);
	idx_guard_assert();
	munmap((void *)map, 8192);
	close(fd);
	unlink(path);
}

/* A record that fails its check (a value byte flipped): the lookup sees
 * it, the index is rebuilt, nothing from it is trusted, and the next run
 * uses the new one. */
static void test_damage_record(void **state)
{
	struct tree t = {0};
	struct img im;
	struct idx_stats st;
	char d[IDX_DIGEST_LEN], d2[IDX_DIGEST_LEN], warn[1024];
	unsigned char *nd;

	(void)state;
	index_tree(&t, d);
	img_load(&im, t.idx);
	nd = img_node(&im, img_leaf(&im, 1), 5);
	nd[8 + img_u16(nd + 6) + 30] ^= 1;
	img_save(&im, t.idx);
	run_tree(&t, &st, d2, warn, sizeof(warn));
	assert_string_equal(d2, d);
	assert_non_null(strstr(warn, "data.mdb is damaged (the record of d/f"));
	assert_non_null(strstr(warn, "fails its check); rebuilt it"));
	assert_int_equal(st.hashed, NFILES);
	assert_int_equal(st.reused, 0);
	run_tree(&t, &st, d2, warn, sizeof(warn));
	assert_string_equal(d2, d);
	assert_string_equal(warn, "");
	assert_int_equal(st.hashed, 0);
	free(im.b);
	free_tree(&t);
}

/* Damage no read notices (a leaf's free-space bound) is found by the
 * check before a write to that page: the index is rebuilt, and what the
 * run reused from the old one is written to the new one too. */
static void test_damage_before_write(void **state)
{
	struct tree t = {0};
	struct img im;
	struct idx_stats st;
	char d[IDX_DIGEST_LEN], d2[IDX_DIGEST_LEN], warn[1024];
	unsigned char *nd;
	const char *name;
	char *rel;
	uint64_t leaf;

	(void)state;
	index_tree(&t, d);
	img_load(&im, t.idx);
	leaf = img_leaf(&im, 1);
	img_page(&im, leaf)[14] -= 2;
	img_save(&im, t.idx);
	run_tree(&t, &st, d2, warn, sizeof(warn));
	assert_string_equal(warn, "");
	assert_int_equal(st.hashed, 0);
	/* a change to a file whose entry is on that page: a write there */
	nd = img_node(&im, leaf, 3);
	name = (const char *)nd + 8 + img_u16(nd + 6) - 6; /* "fNNNNN" */
	assert_int_equal(name[-1], 0);
	rel = xasprintf("d/%.6s", name);
	write_file(t.dir, rel, "new content\n");
	free(rel);
	age();
	run_tree(&t, &st, d2, warn, sizeof(warn));
	assert_string_not_equal(d2, d);
	assert_non_null(strstr(warn, "data.mdb is damaged (page "));
	assert_non_null(strstr(warn, "rebuilt it"));
	assert_int_equal(st.hashed, 1);
	assert_int_equal(st.written, NFILES);
	strcpy(d, d2);
	run_tree(&t, &st, d2, warn, sizeof(warn));
	assert_string_equal(d2, d);
	assert_string_equal(warn, "");
	assert_int_equal(st.hashed, 0);
	free(im.b);
	free_tree(&t);
}

/* Damage LMDB itself trips over: a node flag it follows to a sub-cursor
 * that does not exist (a NULL pointer).  The guard turns the fault into
 * a rebuild. */
static void test_damage_fault(void **state)
{
	struct tree t = {0};
	struct img im;
	struct idx_stats st;
	char d[IDX_DIGEST_LEN], d2[IDX_DIGEST_LEN], warn[1024];
	uint64_t leaf;
	unsigned i;

	(void)state;
	index_tree(&t, d);
	img_load(&im, t.idx);
	/* the first leaf holds the schema record (node 0), which must stay
	 * readable for the open to succeed, and the root's first keys */
	leaf = img_leaf(&im, 0);
	for (i = 1; i < img_nkeys(&im, leaf); i++)
		img_node(&im, leaf, i)[4] = 0x04;
	img_save(&im, t.idx);
	run_tree(&t, &st, d2, warn, sizeof(warn));
	assert_string_equal(d2, d);
	assert_non_null(strstr(warn, "data.mdb is damaged (SIGSEGV reading it); rebuilt it"));
	assert_int_equal(st.hashed, NFILES);
	run_tree(&t, &st, d2, warn, sizeof(warn));
	assert_string_equal(d2, d);
	assert_string_equal(warn, "");
	assert_int_equal(st.hashed, 0);
	free(im.b);
	free_tree(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_encoding),
		cmocka_unit_test(test_key_order_is_archive_order),
		cmocka_unit_test(test_key_roots_contiguous),
		cmocka_unit_test(test_key_long),
		cmocka_unit_test(test_val_roundtrip),
		cmocka_unit_test(test_val_rejects_damage),
		cmocka_unit_test(test_rec_matches),
		cmocka_unit_test(test_racy_rule),
		cmocka_unit_test(test_archive_mode),
		cmocka_unit_test(test_digest_normalization),
		cmocka_unit_test(test_digest_changes),
		cmocka_unit_test(test_digest_golden),
		cmocka_unit_test(test_hash_file),
		cmocka_unit_test(test_hash_file_sparse),
		cmocka_unit_test(test_hash_file_changing),
		cmocka_unit_test(test_update_cold_warm),
		cmocka_unit_test(test_update_defer),
		cmocka_unit_test(test_update_racy),
		cmocka_unit_test(test_update_threads_agree),
		cmocka_unit_test(test_update_errors),
		cmocka_unit_test(test_open_rebuilds_garbage),
		cmocka_unit_test(test_open_rebuilds_other_schema),
		cmocka_unit_test(test_open_default_dir),
		cmocka_unit_test(test_lm_metas),
		cmocka_unit_test(test_lm_trees),
		cmocka_unit_test(test_guard),
		cmocka_unit_test(test_damage_record),
		cmocka_unit_test(test_damage_before_write),
		cmocka_unit_test(test_damage_fault),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
