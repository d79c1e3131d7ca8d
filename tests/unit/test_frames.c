/*
 * Unit tests of the frame store (incremental packing): sizes, keys, the
 * resumable sha256 against util's, the frame file checks (truncated,
 * flipped, foreign), whole-archive reuse, assembly after an edit and frame
 * reuse through fc_pack_write against a pack without the store, damaged
 * frames and manifests, the racy/changed-file rule, the copy made during
 * the walk (kept, partly kept, cut back), eviction, and the pack session
 * without the store (`cache save`: the archive memo).  Trees are walked
 * and indexed for real (walk_run, idx_update on a scratch index).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../src/frames/fc_internal.h"
#include "ctxpack/frames.h"
#include "ctxpack/index.h"
#include "ctxpack/pack.h"
#include "ctxpack/session.h"
#include "ctxpack/walk.h"

/* ---- helpers ---- */

struct fx {
	char *tmp;      /* scratch root */
	char *ctx;      /* the context */
	char *store;    /* the pack cache */
	char *index;    /* the index */
};

static char *tmpdir_new(void)
{
	char tmpl[] = "/tmp/ctxpack-unit-frames.XXXXXX";
	char *d = mkdtemp(tmpl);

	assert_non_null(d);
	return realpath(d, NULL);
}

static int fx_setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));

	f->tmp = tmpdir_new();
	f->ctx = xasprintf("%s/ctx", f->tmp);
	f->store = xasprintf("%s/store", f->tmp);
	f->index = xasprintf("%s/index", f->tmp);
	assert_int_equal(mkdir(f->ctx, 0755), 0);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	struct err e = ERR_INIT;

	remove_tree(f->tmp, &e);
	free(f->tmp);
	free(f->ctx);
	free(f->store);
	free(f->index);
	free(f);
	return 0;
}

static void write_rel(const char *dir, const char *rel, const void *p, size_t n, int mode)
{
	char *path = xasprintf("%s/%s", dir, rel);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, p, n), 0);
	assert_int_equal(close(fd), 0);
	assert_int_equal(chmod(path, (mode_t)mode), 0);
	free(path);
}

/* Incompressible-ish bytes from a seed (xorshift). */
static void noise(unsigned char *p, size_t n, uint64_t seed)
{
	size_t i;

	seed = seed * 0x9e3779b97f4a7c15ULL + 1;
	for (i = 0; i < n; i++) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		p[i] = (unsigned char)seed;
	}
}

/* 300 files of 16-112 KiB of noise in 10 directories (about 20 MB, so
 * several frames) and a few small ones. */
static void make_tree(const char *root)
{
	size_t max = 112u << 10;
	unsigned char *p = xmalloc(max);
	char name[64];
	int i;

	for (i = 0; i < 300; i++) {
		size_t n = (16u << 10) + (size_t)((i * 7919) % 97) * 1024;

		if (i % 30 == 0) {
			snprintf(name, sizeof(name), "%s/d%02d", root, i / 30);
			assert_int_equal(mkdir(name, 0755), 0);
		}
		noise(p, n, (uint64_t)i + 1);
		snprintf(name, sizeof(name), "d%02d/f%03d.bin", i / 30, i);
		write_rel(root, name, p, n, 0644);
	}
	write_rel(root, "Dockerfile", "FROM scratch\n", 13, 0644);
	write_rel(root, "run.sh", "#!/bin/sh\n", 10, 0755);
	{
		char *l = xasprintf("%s/link", root);

		assert_int_equal(symlink("run.sh", l), 0);
		free(l);
	}
	free(p);
}

/* Let the racy window pass, so the files' frames may be stored. */
static void settle(void)
{
	struct timespec ts = {0, 300 * 1000000L};

	nanosleep(&ts, NULL);
}

static int buf_sink(void *ctx, const void *p, size_t n, struct err *e)
{
	return buf_add(ctx, p, n) ? err_set(e, ERR_NOMEM, "out of memory") : 0;
}

/* The name prefix the packs below use (test_prefix_reuse sets it). */
static const char *test_prefix;

/* pack_it's sink_file (test_file_sink sets it): takes at most file_limit
 * bytes a call (0: all), counting the calls and the bytes taken. */
static pack_sink_file_fn test_file;
static uint64_t file_limit, file_calls, file_bytes;

static uint64_t buf_file(void *ctx, int fd, uint64_t off, uint64_t n)
{
	struct buf *b = ctx;
	size_t take = (size_t)(file_limit && n > file_limit ? file_limit : n);
	ssize_t k;

	file_calls++;
	if (buf_grow(b, take))
		return 0;
	k = pread(fd, b->data + b->len, take, (off_t)off);
	if (k <= 0)
		return 0;
	b->len += (size_t)k;
	file_bytes += (uint64_t)k;
	return (uint64_t)k;
}

static void opts(struct pack_opts *o)
{
	pack_opts_init(o);
	o->level = 1;
	o->threads = 2;
	o->prefix = test_prefix;
}

/*
 * Walk and index the context, then pack it with the store (store 1) or
 * with no store (store 0) into out.
 */
static void pack_it(struct fx *f, int store, struct buf *out, struct pack_result *res,
		    struct fc_stats *st)
{
	struct walk_opts wo = {.dir = f->ctx};
	struct walk_result w;
	struct pack_list l;
	struct pack_opts o;
	struct fc_opts fo = {f->store, 0, "test-versions"};
	struct fc *c = NULL;
	struct idx *x = NULL;
	struct err e = ERR_INIT;

	opts(&o);
	if (store)
		assert_int_equal(fc_open(&c, &fo, &e), 0);
	assert_int_equal(walk_run(&wo, &w, &e), 0);
	if (store) {
		assert_int_equal(idx_open(&x, f->index, 0, &e), 0);
		assert_int_equal(idx_update(x, &w, NULL, &e), 0);
	}
	assert_int_equal(pack_list_build(&l, &w, &e), 0);
	buf_reset(out);
	if (fc_pack_write(c, NULL, &l, &o, buf_sink, test_file, out, -1, res, st, &e))
		fail_msg("fc_pack_write: %s", e.msg);
	if (c)
		assert_null(fc_warning(c));
	fc_maintain(c, NULL);
	fc_close(c);
	idx_close(x);
	pack_list_release(&l);
	walk_release(&w);
}

static int fd_sink(void *ctx, const void *p, size_t n, struct err *e)
{
	return write_all(*(int *)ctx, p, n) ? err_errno(e, "write") : 0;
}

/*
 * Pack through the store into fd the way `ctxpack pack` does: the store
 * opened and the last archive's copy started (fc_spec_start) before the
 * walk, the frames copied straight to fd.  cancel: stop after the walk
 * (fc_spec_cancel) instead.
 */
static void pack_fd(struct fx *f, int fd, int cancel, struct pack_result *res,
		    struct fc_stats *st, int *speculated)
{
	struct walk_opts wo = {.dir = f->ctx};
	struct walk_result w;
	struct pack_list l;
	struct pack_opts o;
	struct fc_opts fo = {f->store, 0, "test-versions"};
	struct fc *c = NULL;
	struct fc_spec *spec;
	struct idx *x = NULL;
	struct err e = ERR_INIT;

	opts(&o);
	assert_int_equal(fc_open(&c, &fo, &e), 0);
	spec = fc_spec_start(c, f->ctx, &o, fd);
	*speculated = spec != NULL;
	assert_int_equal(walk_run(&wo, &w, &e), 0);
	if (cancel) {
		fc_spec_cancel(spec);
		fc_close(c);
		walk_release(&w);
		return;
	}
	assert_int_equal(idx_open(&x, f->index, 0, &e), 0);
	assert_int_equal(idx_update(x, &w, NULL, &e), 0);
	assert_int_equal(pack_list_build(&l, &w, &e), 0);
	if (fc_pack_write(c, spec, &l, &o, fd_sink, NULL, &fd, fd, res, st, &e))
		fail_msg("fc_pack_write: %s", e.msg);
	assert_null(fc_warning(c));
	fc_close(c);
	idx_close(x);
	pack_list_release(&l);
	walk_release(&w);
}

/* The whole of file path after its first skip bytes equals b. */
static void file_is(const char *path, size_t skip, const struct buf *b)
{
	struct buf got;
	struct err e = ERR_INIT;

	buf_init(&got, 0);
	assert_int_equal(buf_read_file(&got, path, 0, &e), 0);
	assert_int_equal(got.len, skip + b->len);
	assert_memory_equal(got.data + skip, b->data, b->len);
	buf_release(&got);
}

/* Pack with and without the store and compare. */
static void pack_same(struct fx *f, struct fc_stats *st)
{
	struct buf a, b;
	struct pack_result ra, rb;

	buf_init(&a, 0);
	buf_init(&b, 0);
	pack_it(f, 1, &a, &ra, st);
	pack_it(f, 0, &b, &rb, NULL);
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.data, b.data, a.len);
	assert_string_equal(ra.digest, rb.digest);
	assert_int_equal(ra.bytes, rb.bytes);
	assert_int_equal(ra.entries, rb.entries);
	buf_release(&a);
	buf_release(&b);
}

/* The frame files in the store, sorted. */
static size_t list_frames(const char *store, char ***out)
{
	char *fd = xasprintf("%s/frames", store);
	DIR *d = opendir(fd), *s;
	struct dirent *de, *se;
	char **v = NULL;
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d))) {
		char *sub;

		if (strlen(de->d_name) != 2)
			continue;
		sub = xasprintf("%s/%s", fd, de->d_name);
		s = opendir(sub);
		while (s && (se = readdir(s))) {
			if (strlen(se->d_name) != 32)
				continue;
			v = xreallocarray(v, n + 1, sizeof(*v));
			v[n++] = xasprintf("%s/%s", sub, se->d_name);
		}
		if (s)
			closedir(s);
		free(sub);
	}
	closedir(d);
	free(fd);
	*out = v;
	return n;
}

static void free_list(char **v, size_t n)
{
	while (n)
		free(v[--n]);
	free(v);
}

static void flip_byte(const char *path, off_t at)
{
	int fd = open(path, O_RDWR);
	unsigned char c;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, at), 1);
	c ^= 0x40;
	assert_int_equal(pwrite(fd, &c, 1, at), 1);
	close(fd);
}

/* ---- tests ---- */

static void test_parse_size(void **state)
{
	uint64_t v;

	assert_int_equal(fc_parse_size("2G", &v), 0);
	assert_int_equal(v, (uint64_t)2 << 30);
	assert_int_equal(fc_parse_size("512MiB", &v), 0);
	assert_int_equal(v, (uint64_t)512 << 20);
	assert_int_equal(fc_parse_size("64k", &v), 0);
	assert_int_equal(v, 64 << 10);
	assert_int_equal(fc_parse_size("1000000", &v), 0);
	assert_int_equal(v, 1000000);
	assert_int_equal(fc_parse_size("10B", &v), 0);
	assert_int_equal(v, 10);
	assert_int_equal(fc_parse_size("0", &v), -1);
	assert_int_equal(fc_parse_size("", &v), -1);
	assert_int_equal(fc_parse_size("G", &v), -1);
	assert_int_equal(fc_parse_size("2X", &v), -1);
	assert_int_equal(fc_parse_size("-1", &v), -1);
	assert_int_equal(fc_parse_size("99999999999999999999", &v), -1);
	assert_int_equal(fc_parse_size("17179869184T", &v), -1);
}

static void sha_hex(struct sha256 *s, char out[65])
{
	unsigned char md[32];

	sha256_final(s, md);
	hex_encode(out, md, 32);
}

/* util's sha256, portable and with the SHA extensions: the FIPS 180-2
 * examples; then the two against each other, fed in pieces, and saved and
 * resumed at every kind of point. */
static void test_sha(void **state)
{
	static const char *const msg[] = {
		"", "abc", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"};
	static const char *const md[] = {
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		"248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
		"cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"};
	size_t lens[] = {0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 1000, 4096, 100003};
	unsigned char *p = xmalloc(1000000), want[32], got[32];
	struct sha256 *ref = sha256_new();
	char hex[65], str[72];
	size_t i, j;
	int portable;

	(void)state;
	memset(p, 'a', 1000000);
	for (portable = 0; portable < 2; portable++) {
		struct sha256 s;

		for (i = 0; i < 3; i++) {
			sha256_init(&s, portable);
			sha256_update(&s, msg[i], strlen(msg[i]));
			sha_hex(&s, hex);
			assert_string_equal(hex, md[i]);
		}
		sha256_init(&s, portable);
		for (i = 0; i < 1000000; i += 1000)
			sha256_update(&s, p + i, 1000);
		sha_hex(&s, hex);
		assert_string_equal(hex, md[3]);
	}
	sha256_digest_str("abc", 3, str);
	assert_string_equal(str, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

	noise(p, 100003, 3);
	for (portable = 0; portable < 2; portable++) {
		for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			size_t n = lens[i];
			struct sha256 s;

			/* the reference: the other path, in one piece */
			sha256_init(ref, !portable);
			sha256_update(ref, p, n);
			sha256_final(ref, want);
			sha256_init(&s, portable);
			sha256_update(&s, p, n);
			sha256_final(&s, got);
			assert_memory_equal(got, want, 32);
			/* in pieces of 1, 7 and 63 bytes */
			for (j = 1; j < 64; j += j < 7 ? 6 : 56) {
				size_t off;

				sha256_init(&s, portable);
				for (off = 0; off < n; off += j)
					sha256_update(&s, p + off, n - off < j ? n - off : j);
				sha256_final(&s, got);
				assert_memory_equal(got, want, 32);
			}
			/* saved at a point, resumed on a fresh state there */
			for (j = 0; j <= n; j += n / 7 + 1) {
				unsigned char mid[SHA256_MID];
				struct sha256 a, b;

				sha256_init(&a, portable);
				sha256_update(&a, p, j);
				sha256_save(&a, mid);
				sha256_init(&b, !portable);
				assert_int_equal(sha256_resume(&b, mid, j + 64), -1);
				assert_int_equal(sha256_resume(&b, mid, j), 0);
				sha256_update(&b, p + j - j % 64, n - (j - j % 64));
				sha256_final(&b, got);
				assert_memory_equal(got, want, 32);
			}
		}
	}
	sha256_free(ref);
	free(p);
}

static void test_frame_file_checks(void **state)
{
	struct fx *f = *state;
	struct fc_opts fo = {f->store, 0, "v"};
	struct fc *c;
	struct err e = ERR_INIT;
	unsigned char k1[FC_KEY_LEN], k2[FC_KEY_LEN];
	struct buf b;
	char *p1, *p2;
	int damaged;
	struct stat st;

	memset(k1, 0x11, sizeof(k1));
	memset(k2, 0x22, sizeof(k2));
	buf_init(&b, 0);
	assert_int_equal(fc_open(&c, &fo, &e), 0);
	assert_int_equal(fc_frame_get(c, k1, &b, &damaged), 0);
	assert_int_equal(damaged, 0);

	assert_int_equal(fc_frame_put(c, k1, "payload one", 11, &e), 0);
	assert_int_equal(fc_frame_get(c, k1, &b, &damaged), 1);
	assert_int_equal(b.len, 11);
	assert_memory_equal(b.data, "payload one", 11);
	p1 = fc_frame_path(c, k1);
	p2 = fc_frame_path(c, k2);
	assert_int_equal(stat(p1, &st), 0);
	assert_int_equal(st.st_size, FC_FRAME_HDR + 11);

	/* a payload bit flip: a miss, and the file is gone */
	flip_byte(p1, FC_FRAME_HDR + 3);
	buf_reset(&b);
	assert_int_equal(fc_frame_get(c, k1, &b, &damaged), 0);
	assert_int_equal(damaged, 1);
	assert_int_equal(b.len, 0);
	assert_int_equal(stat(p1, &st), -1);

	/* a header bit flip */
	assert_int_equal(fc_frame_put(c, k1, "payload one", 11, &e), 0);
	flip_byte(p1, 26);
	assert_int_equal(fc_frame_get(c, k1, &b, &damaged), 0);
	assert_int_equal(damaged, 1);

	/* truncated */
	assert_int_equal(fc_frame_put(c, k1, "payload one", 11, &e), 0);
	assert_int_equal(truncate(p1, FC_FRAME_HDR + 5), 0);
	assert_int_equal(fc_frame_get(c, k1, &b, &damaged), 0);
	assert_int_equal(damaged, 1);
	assert_int_equal(fc_frame_put(c, k1, "payload one", 11, &e), 0);
	assert_int_equal(truncate(p1, 10), 0);
	assert_int_equal(fc_frame_get(c, k1, &b, &damaged), 0);
	assert_int_equal(damaged, 1);

	/* another key's file under this name */
	assert_int_equal(fc_frame_put(c, k1, "payload one", 11, &e), 0);
	{
		char *d2 = xstrndup(p2, (size_t)(strrchr(p2, '/') - p2));

		assert_int_equal(mkdir(d2, 0755), 0);
		free(d2);
	}
	assert_int_equal(rename(p1, p2), 0);
	assert_int_equal(fc_frame_get(c, k2, &b, &damaged), 0);
	assert_int_equal(damaged, 1);

	/* a payload larger than the buffer may grow: a miss, kept */
	assert_int_equal(fc_frame_put(c, k1, "payload one", 11, &e), 0);
	b.max = 4;
	assert_int_equal(fc_frame_get(c, k1, &b, &damaged), 0);
	assert_int_equal(damaged, 0);
	assert_int_equal(stat(p1, &st), 0);

	free(p1);
	free(p2);
	buf_release(&b);
	fc_close(c);
}

static void test_keys(void **state)
{
	struct walk_entry e[3];
	struct walk_entry *v[3] = {&e[0], &e[1], &e[2]};
	struct pack_list l;
	struct pack_opts o;
	struct pack_frame fr = {{0, 0}, {3, 0}, 0};
	unsigned char s1[16], s2[16], k0[16], k[16], a0[16], a[16];

	memset(e, 0, sizeof(e));
	memset(&l, 0, sizeof(l));
	l.v = v;
	l.n = 3;
	e[0].path = "d";
	e[0].path_len = 1;
	e[0].type = WALK_DIR;
	e[0].mode = 040700;
	e[1].path = "d/f";
	e[1].path_len = 3;
	e[1].type = WALK_REG;
	e[1].mode = 0100600;
	e[1].size = 5;
	e[1].hashed = 1;
	memset(e[1].hash, 7, 16);
	e[2].path = "d/l";
	e[2].path_len = 3;
	e[2].type = WALK_LNK;
	e[2].link = "f";
	e[2].link_len = 1;
	e[2].hashed = 1;

	opts(&o);
	fc_settings_hash(&o, "v1", s1);
	fc_settings_hash(&o, "v2", s2);
	assert_memory_not_equal(s1, s2, 16);
	o.level = 2;
	fc_settings_hash(&o, "v1", s2);
	assert_memory_not_equal(s1, s2, 16);
	opts(&o);
	o.mtime = 1;
	fc_settings_hash(&o, "v1", s2);
	assert_memory_not_equal(s1, s2, 16);
	opts(&o);
	o.prefix = "app"; /* the names change */
	fc_settings_hash(&o, "v1", s2);
	assert_memory_not_equal(s1, s2, 16);
	o.prefix = "app/x";
	fc_settings_hash(&o, "v1", k);
	assert_memory_not_equal(s2, k, 16);
	o.prefix = ""; /* none */
	fc_settings_hash(&o, "v1", s2);
	assert_memory_equal(s1, s2, 16);
	opts(&o);
	o.threads = 7; /* the thread count never changes the bytes */
	fc_settings_hash(&o, "v1", s2);
	assert_memory_equal(s1, s2, 16);

	assert_int_equal(fc_frame_key(&l, &fr, s1, k0), 0);
	assert_int_equal(fc_archive_key(&l, s1, a0), 0);
	assert_memory_not_equal(k0, a0, 16);
	/* a different settings hash */
	assert_int_equal(fc_frame_key(&l, &fr, s2, k), 0);
	/* s2 == s1 here; use another */
	o.level = 5;
	fc_settings_hash(&o, "v1", s2);
	assert_int_equal(fc_frame_key(&l, &fr, s2, k), 0);
	assert_memory_not_equal(k0, k, 16);

#define CHANGED(stmt, undo)                                       \
	do {                                                      \
		stmt;                                             \
		assert_int_equal(fc_frame_key(&l, &fr, s1, k), 0); \
		assert_memory_not_equal(k0, k, 16);               \
		assert_int_equal(fc_archive_key(&l, s1, a), 0);   \
		assert_memory_not_equal(a0, a, 16);               \
		undo;                                             \
		assert_int_equal(fc_frame_key(&l, &fr, s1, k), 0); \
		assert_memory_equal(k0, k, 16);                   \
	} while (0)
	CHANGED(e[1].hash[3] = 8, e[1].hash[3] = 7);
	CHANGED(e[1].mode = 0100700, e[1].mode = 0100600);
	CHANGED(e[1].size = 6, e[1].size = 5);
	CHANGED(e[1].path = "d/g", e[1].path = "d/f");
	CHANGED(e[2].link = "g", e[2].link = "f");
	CHANGED(e[2].type = WALK_REG, e[2].type = WALK_LNK);
	CHANGED(e[0].mode = 041777, e[0].mode = 040700);
	CHANGED(e[1].mode = 0104600, e[1].mode = 0100600);
	CHANGED((e[1].type = WALK_HARDLINK, e[1].link = "d", e[1].link_len = 1),
		(e[1].type = WALK_REG, e[1].link = NULL, e[1].link_len = 0));
#undef CHANGED
	/* with normalized modes, bits the archive does not store do not
	 * count, and the ones it stores do */
	l.normalize_modes = 1;
	assert_int_equal(fc_frame_key(&l, &fr, s1, k), 0);
	assert_memory_not_equal(k0, k, 16);
	memcpy(k0, k, 16);
	e[1].mode = 0100644;
	e[0].mode = 041777;
	assert_int_equal(fc_frame_key(&l, &fr, s1, k), 0);
	assert_memory_equal(k0, k, 16);
	e[1].mode = 0100744;
	assert_int_equal(fc_frame_key(&l, &fr, s1, k), 0);
	assert_memory_not_equal(k0, k, 16);
	e[1].mode = 0100600;
	e[0].mode = 040700;
	l.normalize_modes = 0;
	assert_int_equal(fc_frame_key(&l, &fr, s1, k0), 0);
	/* what the archive does not store does not count */
	e[1].mtime_ns = 12345;
	e[1].ino = 99;
	e[1].nlink = 2;
	assert_int_equal(fc_frame_key(&l, &fr, s1, k), 0);
	assert_memory_equal(k0, k, 16);
	/* split offsets */
	fr.end.off = 4096;
	fr.end.i = 1;
	assert_int_equal(fc_frame_key(&l, &fr, s1, k), 0);
	assert_memory_not_equal(k0, k, 16);
	fr.end.off = 0;
	fr.end.i = 3;
	/* no content hash: no key */
	e[1].hashed = 0;
	assert_int_equal(fc_frame_key(&l, &fr, s1, k), -1);
	assert_int_equal(fc_archive_key(&l, s1, a), -1);
	fr.end.i = 1; /* only the directory: no content needed */
	assert_int_equal(fc_frame_key(&l, &fr, s1, k), 0);
}

/* The tree made, settled and packed once through the store, which then
 * holds its frames and manifest; st is that pack's. */
static void stored_tree(struct fx *f, struct fc_stats *st)
{
	make_tree(f->ctx);
	settle();
	pack_same(f, st);
	assert_int_equal(st->archive_stored, 1);
}

static void test_reuse(void **state)
{
	struct fx *f = *state;
	struct fc_stats st;
	unsigned char p[10240];

	/* cold: every frame compressed and stored, and the manifest */
	stored_tree(f, &st);
	assert_true(st.frames >= 4);
	assert_int_equal(st.frames_compressed, st.frames);
	assert_int_equal(st.frames_stored, st.frames);
	assert_int_equal(st.archive_reused, 0);
	/* unchanged: the whole archive */
	pack_same(f, &st);
	assert_int_equal(st.archive_reused, 1);
	assert_int_equal(st.frames_compressed, 0);
	/* one file changed: one frame compressed */
	noise(p, sizeof(p), 99);
	write_rel(f->ctx, "d03/f100.bin", p, sizeof(p), 0644);
	settle();
	pack_same(f, &st);
	assert_int_equal(st.archive_reused, 0);
	assert_true(st.frames_compressed >= 1 && st.frames_compressed <= 3);
	assert_int_equal(st.frames_reused + st.frames_compressed, st.frames);
	assert_int_equal(st.archive_stored, 1);
	pack_same(f, &st);
	assert_int_equal(st.archive_reused, 1);
	/* a mode change (exec bit) */
	{
		char *path = xasprintf("%s/d05/f155.bin", f->ctx);

		assert_int_equal(chmod(path, 0755), 0);
		free(path);
	}
	settle();
	pack_same(f, &st);
	assert_int_equal(st.archive_reused, 0);
	assert_true(st.frames_compressed >= 1 && st.frames_compressed <= 3);
	/* removal and a new file */
	{
		char *path = xasprintf("%s/d01/f031.bin", f->ctx);

		assert_int_equal(unlink(path), 0);
		free(path);
	}
	write_rel(f->ctx, "new.txt", "new\n", 4, 0644);
	settle();
	pack_same(f, &st);
	assert_int_equal(st.archive_reused, 0);
	assert_true(st.frames_compressed < st.frames);
	/* a different level is another archive (no reuse across settings) */
}

/* An output that takes stored frames as files (build's splice into its
 * pipe): the same bytes as a cold pack, the frames of a reused archive
 * taken as files, in order with what goes through the sink; one that takes
 * only part of a frame gets the rest through the sink. */
static void test_file_sink(void **state)
{
	struct fx *f = *state;
	struct fc_stats st;
	unsigned char p[10240];

	stored_tree(f, &st);
	test_file = buf_file;
	file_calls = file_bytes = file_limit = 0;
	/* unchanged: every frame as a file */
	pack_same(f, &st);
	assert_int_equal(st.archive_reused, 1);
	assert_int_equal(file_calls, st.frames);
	assert_true(file_bytes > 0 && file_bytes == st.bytes_reused);
	/* taking 1000 bytes a call: the rest of each frame through the sink */
	file_calls = file_bytes = 0;
	file_limit = 1000;
	pack_same(f, &st);
	assert_int_equal(st.archive_reused, 1);
	assert_int_equal(file_calls, 1);
	assert_int_equal(file_bytes, 1000);
	/* an edit near the end: the frames before it as files, then the rest
	 * hashed and through the sink */
	file_calls = file_bytes = file_limit = 0;
	noise(p, sizeof(p), 77);
	write_rel(f->ctx, "d09/f299.bin", p, sizeof(p), 0644);
	pack_same(f, &st);
	assert_int_equal(st.path, FC_PATH_ASSEMBLE);
	assert_true(file_calls >= 1 && file_calls < st.frames);
	test_file = NULL;
}

/* With a name prefix: the same reuse, the bytes of a cold pack, and an
 * archive of its own (the store keeps the prefixed and plain archives of
 * one context apart). */
static void test_prefix_reuse(void **state)
{
	struct fx *f = *state;
	struct fc_stats st;
	struct buf plain, pre;
	struct pack_result r1, r2;
	unsigned char p[10240];

	make_tree(f->ctx);
	settle();
	buf_init(&plain, 0);
	buf_init(&pre, 0);
	pack_it(f, 1, &plain, &r1, &st);
	assert_int_equal(st.archive_stored, 1);
	test_prefix = "usr/src/app";
	pack_same(f, &st);
	assert_int_equal(st.archive_reused, 0);
	assert_int_equal(st.frames_compressed, st.frames);
	pack_same(f, &st);
	assert_int_equal(st.archive_reused, 1);
	pack_it(f, 1, &pre, &r2, &st);
	assert_int_not_equal(pre.len, plain.len);
	assert_string_not_equal(r1.digest, r2.digest);
	noise(p, sizeof(p), 98);
	write_rel(f->ctx, "d03/f100.bin", p, sizeof(p), 0644);
	settle();
	pack_same(f, &st);
	assert_int_equal(st.archive_reused, 0);
	assert_true(st.frames_compressed >= 1 && st.frames_compressed <= 3);
	assert_int_equal(st.frames_reused + st.frames_compressed, st.frames);
	test_prefix = NULL;
	buf_release(&plain);
	buf_release(&pre);
}

static void test_damaged(void **state)
{
	struct fx *f = *state;
	struct fc_stats st;
	char **v, *mdir;
	size_t n, i;
	DIR *d;
	struct dirent *de;

	stored_tree(f, &st);
	n = list_frames(f->store, &v);
	assert_int_equal(n, st.frames);

	/* every frame flipped in its payload: whole-archive reuse finds the
	 * first one bad after nothing was sent, the frames pass recompresses
	 * them; the bytes are still right */
	for (i = 0; i < n; i++)
		flip_byte(v[i], FC_FRAME_HDR + 1);
	pack_same(f, &st);
	assert_int_equal(st.archive_reused, 0);
	assert_int_equal(st.frames_compressed, st.frames);
	assert_int_equal(st.frames_damaged, n);
	pack_same(f, &st);
	assert_int_equal(st.archive_reused, 1);

	/* the last content frame flipped: whole-archive reuse has sent the
	 * frames before it; the pack continues after them */
	{
		char **w;
		size_t m;

		free_list(v, n);
		n = list_frames(f->store, &v);
		/* flip them one at a time: whichever position, the result holds */
		for (i = 0; i < n; i++) {
			flip_byte(v[i], FC_FRAME_HDR + 7);
			pack_same(f, &st);
			assert_int_equal(st.archive_reused, 0);
			assert_int_equal(st.frames_compressed, 1);
			m = list_frames(f->store, &w);
			assert_int_equal(m, n);
			free_list(w, m);
		}
	}
	/* a truncated frame: caught before anything is sent */
	assert_int_equal(truncate(v[0], FC_FRAME_HDR + 3), 0);
	pack_same(f, &st);
	assert_int_equal(st.archive_reused, 0);
	assert_int_equal(st.frames_compressed, 1);
	free_list(v, n);

	/* a damaged manifest: removed, then rebuilt from the frames */
	mdir = xasprintf("%s/archives", f->store);
	d = opendir(mdir);
	assert_non_null(d);
	while ((de = readdir(d))) {
		char *p;

		if (strlen(de->d_name) != 32)
			continue;
		p = xasprintf("%s/%s", mdir, de->d_name);
		flip_byte(p, 130);
		free(p);
	}
	closedir(d);
	free(mdir);
	pack_same(f, &st);
	assert_int_equal(st.archive_reused, 0);
	assert_int_equal(st.frames_compressed, 0);
	assert_int_equal(st.archive_stored, 1);
	pack_same(f, &st);
	assert_int_equal(st.archive_reused, 1);
}

static void test_unsafe(void **state)
{
	struct fx *f = *state;
	struct fc_stats st;

	/* files changed right before the pack: packed right, not stored */
	make_tree(f->ctx);
	pack_same(f, &st);
	assert_true(st.frames_unsafe > 0);
	assert_int_equal(st.frames_stored + st.frames_unsafe, st.frames);
	assert_int_equal(st.archive_stored, 0);
	settle();
	pack_same(f, &st);
	assert_int_equal(st.archive_reused, 0);
	assert_int_equal(st.frames_unsafe, 0);
	assert_int_equal(st.archive_stored, 1);
}

/* After a pack through the store, a pack into a file: the last archive
 * copied during the walk and kept (whole or its unchanged beginning),
 * after existing content, and cut back when cancelled; never for a file
 * opened to append or a pipe. */
static void test_spec(void **state)
{
	struct fx *f = *state;
	char *out = xasprintf("%s/out", f->tmp);
	struct pack_result res, cold;
	struct fc_stats st;
	struct buf ref;
	unsigned char p[10240];
	int fd, spec, fds[2];
	struct fc *c;
	struct fc_opts fo = {f->store, 0, "test-versions"};
	struct pack_opts o;
	struct err e = ERR_INIT;

	buf_init(&ref, 0);
	make_tree(f->ctx);
	settle();
	pack_it(f, 0, &ref, &cold, NULL);

	/* nothing stored yet: no copy */
	fd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0644);
	pack_fd(f, fd, 0, &res, &st, &spec);
	close(fd);
	assert_false(spec);
	file_is(out, 0, &ref);
	assert_string_equal(res.digest, cold.digest);

	/* unchanged, after 5 bytes already in the file */
	fd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_int_equal(write_all(fd, "hello", 5), 0);
	pack_fd(f, fd, 0, &res, &st, &spec);
	close(fd);
	assert_true(spec);
	assert_int_equal(st.path, FC_PATH_ARCHIVE);
	assert_int_equal(st.bytes_early, res.bytes);
	file_is(out, 5, &ref);
	assert_string_equal(res.digest, cold.digest);

	/* cancelled: cut back to the 5 bytes */
	fd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_int_equal(write_all(fd, "hello", 5), 0);
	pack_fd(f, fd, 1, &res, &st, &spec);
	assert_true(spec);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 5);
	close(fd);
	{
		struct buf h = {(char *)"hello", 5, 0, 0};

		file_is(out, 0, &h);
	}

	/* an edit late in the archive: the copy's beginning kept, the rest
	 * assembled, the hash resumed */
	noise(p, sizeof(p), 1234);
	write_rel(f->ctx, "d09/f290.bin", p, sizeof(p), 0644);
	settle();
	pack_it(f, 0, &ref, &cold, NULL);
	fd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0644);
	pack_fd(f, fd, 0, &res, &st, &spec);
	close(fd);
	assert_true(spec);
	assert_int_equal(st.path, FC_PATH_ASSEMBLE);
	assert_true(st.bytes_hashed < res.bytes / 2);
	assert_true(st.bytes_early > res.bytes / 2 && st.bytes_early < res.bytes);
	file_is(out, 0, &ref);
	assert_string_equal(res.digest, cold.digest);
	/* and an edit at the very start */
	write_rel(f->ctx, "Dockerfile", "FROM alpine\n", 12, 0644);
	settle();
	pack_it(f, 0, &ref, &cold, NULL);
	fd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0644);
	pack_fd(f, fd, 0, &res, &st, &spec);
	close(fd);
	assert_int_equal(st.path, FC_PATH_ASSEMBLE);
	assert_int_equal(st.bytes_hashed, res.bytes);
	file_is(out, 0, &ref);
	assert_string_equal(res.digest, cold.digest);

	/* changes in many frames after a kept beginning (more than an
	 * assembly takes): frame by frame, after the kept bytes */
	{
		char name[32];
		int i;

		for (i = 40; i < 300; i += 9) {
			noise(p, sizeof(p), (uint64_t)i * 7);
			snprintf(name, sizeof(name), "d%02d/f%03d.bin", i / 30, i);
			write_rel(f->ctx, name, p, sizeof(p), 0644);
		}
		/* the last frame too */
		write_rel(f->ctx, "run.sh", "#!/bin/sh\nexit\n", 15, 0755);
	}
	settle();
	pack_it(f, 0, &ref, &cold, NULL);
	fd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0644);
	pack_fd(f, fd, 0, &res, &st, &spec);
	close(fd);
	assert_true(spec);
	assert_int_equal(st.path, FC_PATH_FRAMES);
	/* the copy kept up to the first change */
	assert_true(st.bytes_early > 0 && st.bytes_early < res.bytes / 2);
	file_is(out, 0, &ref);
	assert_string_equal(res.digest, cold.digest);

	/* not for a file opened to append, a file not at its end, or a pipe */
	opts(&o);
	assert_int_equal(fc_open(&c, &fo, &e), 0);
	fd = open(out, O_WRONLY | O_APPEND);
	assert_null(fc_spec_start(c, f->ctx, &o, fd));
	close(fd);
	fd = open(out, O_RDWR);
	assert_null(fc_spec_start(c, f->ctx, &o, fd));
	close(fd);
	assert_int_equal(pipe(fds), 0);
	assert_null(fc_spec_start(c, f->ctx, &o, fds[1]));
	close(fds[0]);
	close(fds[1]);
	fc_close(c);
	buf_release(&ref);
	free(out);
}

static void test_evict(void **state)
{
	struct fx *f = *state;
	struct fc_opts fo = {f->store, 1 << 20, "v"};
	struct fc_stats st;
	struct fc *c;
	struct err e = ERR_INIT;
	unsigned char key[FC_KEY_LEN];
	unsigned char *p = xcalloc(1, 100000);
	struct buf b;
	char **v;
	size_t n;
	int i, damaged;

	buf_init(&b, 0);
	assert_int_equal(fc_open(&c, &fo, &e), 0);
	/* 30 frames of ~100 kB, each older than the next */
	for (i = 0; i < 30; i++) {
		struct timespec ts[2];
		char *path;

		memset(key, 0, sizeof(key));
		key[0] = (unsigned char)i;
		key[15] = 0xee;
		assert_int_equal(fc_frame_put(c, key, p, 100000, &e), 0);
		path = fc_frame_path(c, key);
		ts[0].tv_sec = ts[1].tv_sec = 1000000 + i;
		ts[0].tv_nsec = ts[1].tv_nsec = 0;
		assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
		free(path);
	}
	/* using frame 0 makes it the most recent */
	key[0] = 0;
	assert_int_equal(fc_frame_get(c, key, &b, &damaged), 1);
	memset(&st, 0, sizeof(st));
	fc_maintain(c, &st);
	/* down to 90% of 1 MiB: 9 frames of 100056 bytes stay */
	assert_int_equal(st.evicted, 21);
	assert_true(st.store_bytes <= (1 << 20) - (1 << 20) / 10);
	n = list_frames(f->store, &v);
	assert_int_equal(n, 9);
	free_list(v, n);
	assert_int_equal(fc_frame_get(c, key, &b, &damaged), 1); /* kept: recently used */
	key[0] = 1;
	assert_int_equal(fc_frame_get(c, key, &b, &damaged), 0); /* the oldest: gone */
	key[0] = 29;
	assert_int_equal(fc_frame_get(c, key, &b, &damaged), 1);

	/* nothing stored since: no scan */
	memset(&st, 0, sizeof(st));
	fc_maintain(c, &st);
	assert_int_equal(st.store_bytes, 0);
	/* one more: within the bound by the estimate, no scan */
	key[0] = 100;
	assert_int_equal(fc_frame_put(c, key, p, 1000, &e), 0);
	fc_maintain(c, &st);
	assert_int_equal(st.store_bytes, 0);
	assert_int_equal(st.evicted, 0);
	/* stale temporaries are removed by a scan */
	{
		char *tmp = xasprintf("%s/frames/00/x.tmp.1.1", f->store);
		struct timespec ts[2] = {{1000, 0}, {1000, 0}};

		write_rel("/", tmp + 1, "x", 1, 0644);
		assert_int_equal(utimensat(AT_FDCWD, tmp, ts, 0), 0);
		fc_evict(c, UINT64_MAX, &st);
		assert_int_equal(access(tmp, F_OK), -1);
		free(tmp);
	}
	fc_close(c);
	free(p);
	buf_release(&b);
}

static void test_check_dir(void **state)
{
	struct fx *f = *state;
	struct fc_opts fo = {NULL, 0, "v"};
	struct fc *c;
	struct err e = ERR_INIT;
	char *inside = xasprintf("%s/not/yet/there", f->ctx);

	fo.dir = inside;
	assert_int_equal(fc_open(&c, &fo, &e), 0);
	assert_int_equal(fc_check_dir(c, f->ctx, &e), ERR_USAGE);
	fc_close(c);
	err_clear(&e);
	fo.dir = f->store;
	assert_int_equal(fc_open(&c, &fo, &e), 0);
	assert_int_equal(fc_check_dir(c, f->ctx, &e), 0);
	assert_int_equal(fc_check_dir(c, "/", &e), ERR_USAGE);
	fc_close(c);
	/* nothing was created */
	assert_int_equal(access(inside, F_OK), -1);
	free(inside);

	setenv("CTXPACK_PACK_CACHE_MAX", "lots", 1);
	env_load();
	fo.max_bytes = 0;
	err_clear(&e);
	assert_int_equal(fc_open(&c, &fo, &e), ERR_USAGE);
	assert_null(c);
	unsetenv("CTXPACK_PACK_CACHE_MAX");
	env_load();
}

/*
 * The session without the frame store (`cache save`): the bytes of a pack
 * without any cache; the archive is known the next time (same digest and
 * sizes, from the index directory's memo), also for a session that took
 * its hashes from the snapshot, and not once a file changed.
 */
static int session_pack(struct fx *f, struct buf *out, struct pack_result *res,
			struct idx_memo *known)
{
	struct walk_opts wo = {.dir = f->ctx};
	struct pack_session_opts so;
	struct pack_session *ps;
	struct pack_opts o;
	struct err e = ERR_INIT;
	int k;

	opts(&o);
	memset(&so, 0, sizeof(so));
	so.wo = &wo;
	so.po = &o;
	so.index_dir = f->index;
	so.no_frames = 1;
	so.out_fd = -1;
	assert_int_equal(pack_session_open(&ps, &so, &e), 0);
	assert_int_equal(pack_session_list(ps, &e), 0);
	assert_null(pack_session_fc(ps));
	memset(known, 0, sizeof(*known));
	k = pack_session_known(ps, known);
	buf_reset(out);
	if (pack_session_write(ps, buf_sink, out, res, &e))
		fail_msg("pack_session_write: %s", e.msg);
	pack_session_commit(ps);
	pack_session_free(ps);
	return k;
}

static void test_session_no_frames(void **state)
{
	struct fx *f = *state;
	struct buf cold = BUF_INIT, out = BUF_INIT;
	struct pack_result rc, r;
	struct idx_memo m;
	struct fc_stats st;

	make_tree(f->ctx);
	settle();
	pack_it(f, 0, &cold, &rc, &st);
	assert_int_equal(session_pack(f, &out, &r, &m), 0);
	assert_int_equal(out.len, cold.len);
	assert_memory_equal(out.data, cold.data, cold.len);
	assert_string_equal(r.digest, rc.digest);
	/* the index directory now holds the snapshot and the archive's memo */
	settle();
	assert_int_equal(session_pack(f, &out, &r, &m), 1);
	assert_string_equal(m.digest, rc.digest);
	assert_int_equal(m.bytes, rc.bytes);
	assert_int_equal(m.tar_bytes, rc.tar_bytes);
	assert_int_equal(m.entries, rc.entries);
	assert_int_equal(session_pack(f, &out, &r, &m), 1);
	/* one byte changed (and its size): another archive, not known */
	write_rel(f->ctx, "d03/f090.bin", "changed", 7, 0644);
	settle();
	assert_int_equal(session_pack(f, &out, &r, &m), 0);
	pack_it(f, 0, &cold, &rc, &st);
	assert_string_equal(r.digest, rc.digest);
	assert_int_equal(session_pack(f, &out, &r, &m), 1);
	assert_string_equal(m.digest, rc.digest);
	buf_release(&cold);
	buf_release(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_sha),
		cmocka_unit_test_setup_teardown(test_frame_file_checks, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_reuse, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_prefix_reuse, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_file_sink, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_damaged, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_unsafe, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_spec, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_evict, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_check_dir, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_session_no_frames, fx_setup, fx_teardown),
	};

	if (!setlocale(LC_CTYPE, "C.UTF-8"))
		setlocale(LC_CTYPE, "C.utf8");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
