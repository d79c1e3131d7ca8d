/*
 * Unit tests of the packer: the frame rule, the per-frame tar bytes against
 * one libarchive writer, codec determinism (input chunking, context reuse),
 * thread-count independence, the added Dockerfile/ignore entries, the
 * SOURCE_DATE_EPOCH parser, and changed-file detection.  Walk results are
 * built here by hand (lstat, like the walker).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "../../src/pack/pack_internal.h"
#include "ctxpack/pack.h"

/* ---- helpers ---- */

static char *tmpdir_new(void)
{
	char tmpl[] = "/tmp/ctxpack-unit-pack.XXXXXX";
	char *d = mkdtemp(tmpl);

	assert_non_null(d);
	return realpath(d, NULL);
}

static void rm_rf(const char *path)
{
	struct err e = ERR_INIT;

	remove_tree(path, &e);
}

static void write_bytes(const char *dir, const char *rel, const void *data, size_t n, int mode)
{
	char *p = xasprintf("%s/%s", dir, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, data, n), 0);
	close(fd);
	free(p);
}

static void mkdir_rel(const char *dir, const char *rel)
{
	char *p = xasprintf("%s/%s", dir, rel);

	assert_int_equal(mkdir(p, 0700), 0);
	free(p);
}

/* Pseudo-random but compressible bytes. */
static void fill(unsigned char *p, size_t n, uint32_t seed)
{
	size_t i;

	for (i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (unsigned char)("abcdefgh\n  xyz"[(seed >> 16) % 15]);
	}
}

/* A walk result of the given relative paths (archive order, dirs as
 * given), stat'ed with lstat like the walker does. */
static void fake_walk(struct walk_result *w, const char *root, const char *const *paths)
{
	size_t n = 0, i;

	memset(w, 0, sizeof(*w));
	while (paths[n])
		n++;
	w->v = xcalloc(n ? n : 1, sizeof(*w->v));
	w->n = w->alloc = n;
	w->root = xstrdup(root);
	for (i = 0; i < n; i++) {
		struct walk_entry *we = &w->v[i];
		char *full = xasprintf("%s/%s", root, paths[i]);
		struct stat st;

		assert_int_equal(lstat(full, &st), 0);
		we->path = xstrdup(paths[i]);
		we->path_len = (uint32_t)strlen(paths[i]);
		we->mode = st.st_mode;
		we->deciding = -1;
		we->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
		if (S_ISDIR(st.st_mode)) {
			we->type = WALK_DIR;
		} else if (S_ISLNK(st.st_mode)) {
			char t[4096];
			ssize_t k = readlink(full, t, sizeof(t) - 1);

			assert_true(k >= 0);
			t[k] = '\0';
			we->type = WALK_LNK;
			we->link = xstrdup(t);
			we->link_len = (uint32_t)k;
			we->size = (uint64_t)st.st_size;
		} else {
			size_t j;

			we->type = WALK_REG;
			we->size = (uint64_t)st.st_size;
			we->ino = st.st_ino;
			we->nlink = (uint32_t)st.st_nlink;
			/* a later path of an inode: a hard link (the walk's pass) */
			for (j = 0; j < i && st.st_nlink > 1; j++)
				if (w->v[j].type == WALK_REG && w->v[j].ino == we->ino) {
					we->type = WALK_HARDLINK;
					we->link = xstrdup(w->v[j].path);
					we->link_len = w->v[j].path_len;
					break;
				}
		}
		free(full);
	}
}

static void fake_release(struct walk_result *w)
{
	size_t i;

	for (i = 0; i < w->n; i++) {
		free((char *)w->v[i].path);
		free((char *)w->v[i].link);
	}
	free(w->v);
	free(w->root);
	free(w->dockerfile_rel);
	free(w->ignore_rel);
	memset(w, 0, sizeof(*w));
}

static void list_of(struct pack_list *l, const struct walk_result *w)
{
	size_t i;

	memset(l, 0, sizeof(*l));
	l->root = w->root;
	l->n = w->n;
	l->v = xcalloc(w->n ? w->n : 1, sizeof(*l->v));
	for (i = 0; i < w->n; i++)
		l->v[i] = &w->v[i];
}

static int buf_sink(void *ctx, const void *p, size_t n, struct err *e)
{
	return buf_add(ctx, p, n) ? err_set(e, ERR_NOMEM, "oom") : 0;
}

static int pack_to_buf(const struct pack_list *l, int compress, unsigned threads,
		       struct buf *out, struct pack_result *res, struct err *e)
{
	struct pack_opts o;

	pack_opts_init(&o);
	o.compress = compress;
	o.threads = threads;
	buf_reset(out);
	return pack_write(l, &o, NULL, buf_sink, out, res, e);
}

/* A tree with small, medium, split-size files, a dir, a symlink, a hard
 * link, a setuid file, a long and a non-UTF-8 name. */
static const char *const tree_paths[] = {
	"a.txt", "big.bin", "d", "d/exec.sh", "d/link", "d/medium", "d/suid", "d/zhard",
	"llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllll"
	"llllllllllllllllllllllllllllllll.txt",
	"z\xff\xfe.txt", NULL,
};

static void make_tree(const char *root)
{
	size_t big = 9u << 20, med = 3u << 20;
	unsigned char *p = xmalloc(big);

	fill(p, big, 1);
	write_bytes(root, "a.txt", "hello\n", 6, 0600);
	write_bytes(root, "big.bin", p, big - 123, 0644);
	mkdir_rel(root, "d");
	write_bytes(root, "d/exec.sh", "#!/bin/sh\n", 10, 0700);
	{
		char *l = xasprintf("%s/d/link", root);

		assert_int_equal(symlink("../a.txt", l), 0);
		free(l);
	}
	fill(p, med, 2);
	write_bytes(root, "d/medium", p, med, 0664);
	write_bytes(root, "d/suid", "s\n", 2, 0644);
	{
		char *f = xasprintf("%s/d/suid", root), *a = xasprintf("%s/a.txt", root);
		char *h = xasprintf("%s/d/zhard", root);

		assert_int_equal(chmod(f, 04755), 0);
		assert_int_equal(link(a, h), 0);
		free(f);
		free(a);
		free(h);
	}
	write_bytes(root, tree_paths[8], "long\n", 5, 0644);
	write_bytes(root, tree_paths[9], "bin\n", 4, 0644);
	free(p);
}

/* ---- the frame rule ---- */

static void test_plan_empty(void **state)
{
	struct pack_frame *f;
	size_t n;

	pack_plan(NULL, 0, &f, &n);
	assert_int_equal(n, 1);
	assert_int_equal(f[0].first.i, 0);
	assert_int_equal(f[0].end.i, 0);
	free(f);
}

static struct walk_entry *synth(size_t n, uint64_t (*size)(size_t), char ***names)
{
	struct walk_entry *v = xcalloc(n, sizeof(*v));
	size_t i;

	*names = xcalloc(n, sizeof(char *));
	for (i = 0; i < n; i++) {
		(*names)[i] = xasprintf("dir%03zu/file%08zu", i / 1000, i);
		v[i].path = (*names)[i];
		v[i].path_len = (uint32_t)strlen((*names)[i]);
		v[i].type = WALK_REG;
		v[i].size = size(i);
	}
	return v;
}

static uint64_t size_small(size_t i) { return (i * 7919) % 20000; }
static uint64_t size_mixed(size_t i) { return i % 97 == 5 ? (20u << 20) + i : (i * 7919) % 50000; }

static void check_cover(struct walk_entry *const *pv, size_t n, const struct pack_frame *f,
			size_t nf)
{
	size_t k;

	assert_true(nf >= 1);
	assert_int_equal(f[0].first.i, 0);
	assert_int_equal(f[0].first.off, 0);
	for (k = 0; k + 1 < nf; k++) {
		/* contiguous, non-empty, bounded */
		assert_int_equal(f[k].end.i, f[k + 1].first.i);
		assert_int_equal(f[k].end.off, f[k + 1].first.off);
		assert_true(f[k].end.i > f[k].first.i || f[k].end.off > f[k].first.off);
		assert_true(f[k].est <= PACK_FRAME_MAX + 2048);
		if (f[k].end.off) {
			assert_int_equal(f[k].end.off % PACK_CHUNK, 0);
			assert_true(pv[f[k].end.i]->size > PACK_SPLIT_OVER);
		}
	}
	assert_int_equal(f[nf - 1].first.i, n);
	assert_int_equal(f[nf - 1].end.i, n);
}

static void test_plan_rule(void **state)
{
	size_t n = 20000, nf, k, i;
	char **names;
	struct walk_entry *v = synth(n, size_mixed, &names);
	struct walk_entry **pv = xcalloc(n, sizeof(*pv));
	struct pack_frame *f;
	uint64_t total = 0;

	for (i = 0; i < n; i++)
		pv[i] = &v[i];
	pack_plan(pv, n, &f, &nf);
	check_cover(pv, n, f, nf);
	for (k = 0; k + 1 < nf; k++)
		total += f[k].est;
	/* average frame size around MIN + AVG */
	assert_true(total / (nf - 1) > PACK_FRAME_MIN / 2);
	assert_true(total / (nf - 1) < PACK_FRAME_MAX);
	free(f);
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(pv);
	free(v);
}

/* An insertion changes only the frames around it: the boundaries after
 * it come back (content-defined). */
static void test_plan_stable(void **state)
{
	size_t n = 30000, nf1, nf2, i, k, same = 0, j;
	char **names;
	struct walk_entry *v = synth(n, size_small, &names);
	struct walk_entry **pv1 = xcalloc(n, sizeof(*pv1));
	struct walk_entry **pv2 = xcalloc(n + 1, sizeof(*pv2));
	struct walk_entry extra = v[n / 2];
	struct pack_frame *f1, *f2;

	extra.path = "dir015/file00015000a";
	extra.path_len = (uint32_t)strlen(extra.path);
	extra.size = 300000;
	for (i = 0; i < n; i++)
		pv1[i] = &v[i];
	for (i = j = 0; i < n; i++) {
		pv2[j++] = &v[i];
		if (i == n / 2)
			pv2[j++] = &extra;
	}
	pack_plan(pv1, n, &f1, &nf1);
	pack_plan(pv2, n + 1, &f2, &nf2);
	/* count frames of the second plan (after the insertion) whose
	 * boundaries match the first plan shifted by one entry */
	for (k = 0; k < nf2; k++) {
		size_t a = f2[k].first.i, b = f2[k].end.i;

		if (a <= n / 2 + 1)
			continue;
		for (i = 0; i < nf1; i++)
			if (f1[i].first.i == a - 1 && f1[i].end.i == b - 1)
				same++;
	}
	/* all but at most two frames after the change are reused */
	{
		size_t after = 0;

		for (k = 0; k < nf2; k++)
			if (f2[k].first.i > n / 2 + 1)
				after++;
		assert_true(after >= 5);
		assert_true(same + 2 >= after);
	}
	free(f1);
	free(f2);
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(pv1);
	free(pv2);
	free(v);
}

static void test_plan_split(void **state)
{
	struct walk_entry v[3];
	struct walk_entry *pv[3] = {&v[0], &v[1], &v[2]};
	struct pack_frame *f;
	size_t nf;

	memset(v, 0, sizeof(v));
	v[0].path = "a";
	v[0].path_len = 1;
	v[0].type = WALK_REG;
	v[0].size = 100;
	v[1].path = "b";
	v[1].path_len = 1;
	v[1].type = WALK_REG;
	v[1].size = 3 * (uint64_t)PACK_CHUNK + 7; /* > SPLIT_OVER */
	v[2].path = "c";
	v[2].path_len = 1;
	v[2].type = WALK_DIR;
	pack_plan(pv, 3, &f, &nf);
	check_cover(pv, 3, f, nf);
	/* a+b[0,C) | b[C,2C) | b[2C,3C) | b[3C,end)+c | trailer */
	assert_int_equal(nf, 5);
	assert_int_equal(f[0].end.i, 1);
	assert_int_equal(f[0].end.off, PACK_CHUNK);
	assert_int_equal(f[1].end.off, 2 * (uint64_t)PACK_CHUNK);
	assert_int_equal(f[2].end.off, 3 * (uint64_t)PACK_CHUNK);
	assert_int_equal(f[3].end.i, 3);
	assert_int_equal(f[3].end.off, 0);
	free(f);
}

/* ---- tar bytes ---- */

static la_ssize_t ref_cb(struct archive *a, void *ctx, const void *p, size_t n)
{
	buf_add(ctx, p, n);
	return (la_ssize_t)n;
}

/* The same archive from one libarchive writer, as a reference. */
static void reference_tar(const struct pack_list *l, int64_t mtime, struct buf *out)
{
	struct archive *a = archive_write_new();
	struct archive_entry *ae = archive_entry_new();
	int dfd = open(l->root, O_RDONLY | O_DIRECTORY);
	size_t i;

	archive_write_set_format_pax_restricted(a);
	archive_write_set_bytes_per_block(a, 0);
	archive_write_set_bytes_in_last_block(a, 1);
	assert_int_equal(archive_write_open2(a, out, NULL, ref_cb, NULL, NULL), ARCHIVE_OK);
	for (i = 0; i < l->n; i++) {
		const struct walk_entry *we = l->v[i];
		char name[4096];
		int r;

		archive_entry_clear(ae);
		snprintf(name, sizeof(name), "%s%s", we->path, we->type == WALK_DIR ? "/" : "");
		archive_entry_copy_pathname(ae, name);
		archive_entry_set_uid(ae, 0);
		archive_entry_set_gid(ae, 0);
		archive_entry_set_mtime(ae, mtime, 0);
		if (we->type == WALK_DIR) {
			archive_entry_set_filetype(ae, AE_IFDIR);
			archive_entry_set_perm(ae, we->mode & 07777);
		} else if (we->type == WALK_LNK) {
			archive_entry_set_filetype(ae, AE_IFLNK);
			archive_entry_set_perm(ae, 0777);
			archive_entry_copy_symlink(ae, we->link);
		} else if (we->type == WALK_HARDLINK) {
			archive_entry_set_filetype(ae, AE_IFREG);
			archive_entry_set_perm(ae, we->mode & 07777);
			archive_entry_copy_hardlink(ae, we->link);
			archive_entry_set_size(ae, 0);
		} else {
			archive_entry_set_filetype(ae, AE_IFREG);
			archive_entry_set_perm(ae, we->mode & 07777);
			archive_entry_set_size(ae, (la_int64_t)we->size);
		}
		r = archive_write_header(a, ae);
		assert_true(r == ARCHIVE_OK || r == ARCHIVE_WARN);
		if (we->type == WALK_REG) {
			int fd = openat(dfd, we->path, O_RDONLY);
			char *p = xmalloc(we->size + 1);

			assert_true(fd >= 0);
			assert_int_equal(read_full(fd, p, we->size), (ssize_t)we->size);
			assert_int_equal(archive_write_data(a, p, we->size), (la_ssize_t)we->size);
			free(p);
			close(fd);
		}
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	archive_entry_free(ae);
	close(dfd);
}

static void test_tar_matches_one_writer(void **state)
{
	char *root = tmpdir_new();
	struct walk_result w;
	struct pack_list l;
	struct buf got = BUF_INIT, want = BUF_INIT;
	struct pack_result res;
	struct err e = ERR_INIT;

	make_tree(root);
	fake_walk(&w, root, tree_paths);
	list_of(&l, &w);
	assert_int_equal(pack_to_buf(&l, PACK_NONE, 2, &got, &res, &e), 0);
	reference_tar(&l, PACK_DEFAULT_MTIME, &want);
	assert_int_equal(got.len, want.len);
	assert_memory_equal(got.data, want.data, got.len);
	assert_int_equal(res.bytes, got.len);
	assert_int_equal(res.tar_bytes, got.len);
	assert_int_equal(res.entries, l.n);
	assert_true(res.frames >= 4); /* big.bin is split in three, + trailer */
	/* ends with exactly two zero blocks, no record padding */
	assert_int_equal(got.len % 512, 0);
	free(l.v);
	fake_release(&w);
	buf_release(&got);
	buf_release(&want);
	rm_rf(root);
	free(root);
}

static void test_threads_and_codecs(void **state)
{
	char *root = tmpdir_new();
	struct walk_result w;
	struct pack_list l;
	struct buf b1 = BUF_INIT, b2 = BUF_INIT, raw = BUF_INIT, dec = BUF_INIT;
	struct pack_result r1, r2;
	struct err e = ERR_INIT;
	int c;

	make_tree(root);
	fake_walk(&w, root, tree_paths);
	list_of(&l, &w);
	assert_int_equal(pack_to_buf(&l, PACK_NONE, 1, &raw, &r1, &e), 0);
	for (c = PACK_ZSTD; c <= PACK_NONE; c++) {
		unsigned t;

		assert_int_equal(pack_to_buf(&l, c, 1, &b1, &r1, &e), 0);
		for (t = 2; t <= 5; t += 3) {
			assert_int_equal(pack_to_buf(&l, c, t, &b2, &r2, &e), 0);
			assert_int_equal(b1.len, b2.len);
			assert_memory_equal(b1.data, b2.data, b1.len);
			assert_string_equal(r1.digest, r2.digest);
		}
		{
			char d[72];

			sha256_digest_str(b1.data, b1.len, d);
			assert_string_equal(d, r1.digest);
		}
	}
	/* the zstd stream (several frames) decompresses to the tar */
	assert_int_equal(pack_to_buf(&l, PACK_ZSTD, 2, &b1, &r1, &e), 0);
	{
		ZSTD_DStream *ds = ZSTD_createDStream();
		ZSTD_inBuffer in = {b1.data, b1.len, 0};
		unsigned long long fcs = ZSTD_getFrameContentSize(b1.data, b1.len);

		assert_true(fcs == ZSTD_CONTENTSIZE_UNKNOWN);
		buf_grow(&dec, raw.len + 1024);
		while (in.pos < in.size) {
			ZSTD_outBuffer ob = {dec.data + dec.len, dec.cap - dec.len - 1, 0};
			size_t r = ZSTD_decompressStream(ds, &ob, &in);

			assert_false(ZSTD_isError(r));
			dec.len += ob.pos;
		}
		ZSTD_freeDStream(ds);
		assert_int_equal(dec.len, raw.len);
		assert_memory_equal(dec.data, raw.data, raw.len);
	}
	free(l.v);
	fake_release(&w);
	buf_release(&b1);
	buf_release(&b2);
	buf_release(&raw);
	buf_release(&dec);
	rm_rf(root);
	free(root);
}

/* The zstd codec's output does not depend on how the input is cut into
 * calls, nor on reusing the context. */
static void test_zstd_chunking(void **state)
{
	struct pack_opts o;
	struct err e = ERR_INIT;
	struct pack_worker *w;
	struct buf a = BUF_INIT, b = BUF_INIT;
	size_t n = 3u << 20, pos, step;
	unsigned char *p = xmalloc(n);
	int round;

	fill(p, n, 7);
	pack_opts_init(&o);
	w = pack_worker_new(&o, 1, &e);
	assert_non_null(w);
	for (round = 0; round < 4; round++) {
		struct buf *out = round ? &b : &a;
		uint32_t seed = (uint32_t)round * 77u + 1u;

		buf_reset(out);
		w->out = out;
		w->e = &e;
		assert_int_equal(pack_codec_begin(w, &e), 0);
		for (pos = 0; pos < n; pos += step) {
			seed = seed * 1103515245u + 12345u;
			step = round == 0 ? n : 1 + (seed >> 8) % (300000u >> (round - 1));
			if (step > n - pos)
				step = n - pos;
			assert_int_equal(pack_codec_put(w, p + pos, step, &e), 0);
		}
		assert_int_equal(pack_codec_end(w, &e), 0);
		if (round) {
			assert_int_equal(a.len, b.len);
			assert_memory_equal(a.data, b.data, a.len);
		}
	}
	pack_worker_free(w);
	/* a fresh context gives the same bytes */
	w = pack_worker_new(&o, 0, &e);
	buf_reset(&b);
	w->out = &b;
	w->e = &e;
	assert_int_equal(pack_codec_begin(w, &e), 0);
	assert_int_equal(pack_codec_put(w, p, n, &e), 0);
	assert_int_equal(pack_codec_end(w, &e), 0);
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.data, b.data, a.len);
	pack_worker_free(w);
	buf_release(&a);
	buf_release(&b);
	free(p);
}

/* pack_frame_paths reads back the names of a frame's entries; a frame
 * that starts or ends inside a split file, or a cut one, is refused. */
static void test_frame_paths(void **state)
{
	char *root = tmpdir_new();
	struct walk_result w;
	struct pack_list l;
	struct pack_frame *plan;
	struct pack_opts o;
	struct pack_worker *pw;
	struct err e = ERR_INIT;
	struct buf out = BUF_INIT;
	size_t np, i, k, n, whole = 0, split = 0;
	char **paths;
	int rootfd;

	make_tree(root);
	fake_walk(&w, root, tree_paths);
	list_of(&l, &w);
	rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(rootfd >= 0);
	pack_plan(l.v, l.n, &plan, &n);
	pack_opts_init(&o);
	pw = pack_worker_new(&o, 0, &e);
	assert_non_null(pw);
	for (k = 0; k + 1 < n; k++) {
		const struct pack_frame *f = &plan[k];

		buf_reset(&out);
		assert_int_equal(pack_frame_encode(pw, &l, rootfd, f, &out, NULL, &e), 0);
		if (f->first.off || f->end.off) {
			assert_int_equal(pack_frame_paths(out.data, out.len, &paths, &np), -1);
			assert_null(paths);
			split++;
			continue;
		}
		assert_int_equal(pack_frame_paths(out.data, out.len, &paths, &np), 0);
		assert_int_equal(np, f->end.i - f->first.i);
		for (i = 0; i < np; i++) {
			assert_string_equal(paths[i], l.v[f->first.i + i]->path);
			free(paths[i]);
		}
		free(paths);
		/* cut short: refused */
		assert_int_equal(pack_frame_paths(out.data, out.len - 10, &paths, &np), -1);
		/* with a file over PACK_SMALL_FILE: refused by the _small one */
		{
			int big = 0;
			size_t q;

			for (q = f->first.i; q < f->end.i; q++)
				big |= l.v[q]->type == WALK_REG && l.v[q]->size > PACK_SMALL_FILE;
			assert_int_equal(pack_frame_paths_small(out.data, out.len, &paths, &np),
					 big ? -1 : 0);
			for (q = 0; !big && q < np; q++)
				free(paths[q]);
			if (!big)
				free(paths);
		}
		/* the reader gives each small file's bytes, asked in order;
		 * a name the frame does not hold, or a wrong size, gets 0 */
		{
			struct pack_frame_reader *rd = pack_frame_reader_new(out.data, out.len);
			size_t q, got_files = 0;

			assert_int_equal(pack_frame_reader_get(rd, "", 0, NULL, 0), 0);
			for (q = f->first.i; q < f->end.i; q++) {
				const struct walk_entry *we = l.v[q];
				struct buf want = BUF_INIT;
				char *full, *got;

				if (we->type != WALK_REG || we->size > PACK_SMALL_FILE)
					continue;
				full = xasprintf("%s/%s", root, we->path);
				assert_int_equal(buf_read_file(&want, full, 0, &e), 0);
				got = xmalloc(we->size + 1);
				assert_int_equal(pack_frame_reader_get(rd, we->path, we->path_len, got,
								       we->size + 1), 0);
				assert_int_equal(pack_frame_reader_get(rd, we->path, we->path_len, got,
								       we->size), 1);
				assert_memory_equal(got, want.data, we->size);
				got_files++;
				free(got);
				free(full);
				buf_release(&want);
			}
			assert_int_equal(pack_frame_reader_get(rd, "\xff", 1, NULL, 0), 0);
			pack_frame_reader_free(rd);
			(void)got_files;
		}
		whole++;
	}
	assert_true(whole >= 1);
	assert_true(split >= 1); /* big.bin */
	pack_worker_free(pw);
	free(plan);
	close(rootfd);
	free(l.v);
	fake_release(&w);
	buf_release(&out);
	rm_rf(root);
	free(root);
}

/* ---- added entries ---- */

static void test_list_adds_dockerfile(void **state)
{
	char *root = tmpdir_new();
	static const char *const paths[] = {"a", "z", NULL};
	struct walk_result w;
	struct pack_list l;
	struct err e = ERR_INIT;
	static const char *const want[] = {
		"a", "build", "build/docker", "build/docker/Dockerfile",
		"build/docker/Dockerfile.dockerignore", "z",
	};
	size_t i;

	write_bytes(root, "a", "a", 1, 0644);
	write_bytes(root, "z", "z", 1, 0644);
	mkdir_rel(root, "build");
	mkdir_rel(root, "build/docker");
	write_bytes(root, "build/docker/Dockerfile", "FROM scratch\n", 13, 0644);
	write_bytes(root, "build/docker/Dockerfile.dockerignore", "*\n!a\n!z\n", 8, 0644);
	fake_walk(&w, root, paths);
	w.dockerfile_rel = xstrdup("build/docker/Dockerfile");
	w.ignore_rel = xstrdup("build/docker/Dockerfile.dockerignore");
	assert_int_equal(pack_list_build(&l, &w, &e), 0);
	assert_int_equal(l.n, 6);
	assert_int_equal(l.n_added, 4);
	for (i = 0; i < l.n; i++)
		assert_string_equal(l.v[i]->path, want[i]);
	assert_int_equal(l.v[1]->type, WALK_DIR);
	assert_int_equal(l.v[3]->type, WALK_REG);
	assert_int_equal(l.v[3]->size, 13);
	pack_list_release(&l);

	/* nothing added when already there, or missing */
	free(w.dockerfile_rel);
	w.dockerfile_rel = xstrdup("a");
	free(w.ignore_rel);
	w.ignore_rel = xstrdup("missing/.dockerignore");
	assert_int_equal(pack_list_build(&l, &w, &e), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.n_added, 0);
	pack_list_release(&l);
	fake_release(&w);
	rm_rf(root);
	free(root);
}

/* ---- options ---- */

static void test_source_date_epoch(void **state)
{
	struct err e = ERR_INIT;
	int64_t t = -1;

	assert_int_equal(pack_source_date_epoch(NULL, &t, &e), 0);
	assert_int_equal(t, PACK_DEFAULT_MTIME);
	assert_int_equal(pack_source_date_epoch("1700000000", &t, &e), 0);
	assert_int_equal(t, 1700000000);
	assert_int_equal(pack_source_date_epoch("0", &t, &e), 0);
	assert_int_equal(t, 0);
	assert_int_equal(pack_source_date_epoch("253402300799", &t, &e), 0);
	assert_int_equal(pack_source_date_epoch("253402300800", &t, &e), ERR_USAGE);
	err_clear(&e);
	assert_int_equal(pack_source_date_epoch("", &t, &e), ERR_USAGE);
	err_clear(&e);
	assert_int_equal(pack_source_date_epoch(" 1", &t, &e), ERR_USAGE);
	err_clear(&e);
	assert_int_equal(pack_source_date_epoch("1e9", &t, &e), ERR_USAGE);
	err_clear(&e);
	assert_int_equal(pack_source_date_epoch("-5", &t, &e), ERR_USAGE);
	assert_non_null(strstr(e.msg, "SOURCE_DATE_EPOCH"));
}

static void test_opts_check(void **state)
{
	struct pack_opts o;
	struct err e = ERR_INIT;
	int c;

	pack_opts_init(&o);
	assert_int_equal(pack_opts_check(&o, &e), 0);
	assert_int_equal(pack_level(&o), 3);
	o.level = 20;
	assert_int_equal(pack_opts_check(&o, &e), ERR_USAGE);
	err_clear(&e);
	o.compress = PACK_GZIP;
	o.level = 0;
	assert_int_equal(pack_level(&o), 6);
	o.level = 10;
	assert_int_equal(pack_opts_check(&o, &e), ERR_USAGE);
	err_clear(&e);
	o.compress = PACK_NONE;
	o.level = 1;
	assert_int_equal(pack_opts_check(&o, &e), ERR_USAGE);
	err_clear(&e);
	assert_int_equal(pack_parse_compress("gzip", &c, &e), 0);
	assert_int_equal(c, PACK_GZIP);
	assert_int_equal(pack_parse_compress("xz", &c, &e), ERR_USAGE);
}

/* ---- changed files ---- */

static void test_changed_file(void **state)
{
	char *root = tmpdir_new();
	struct walk_result w;
	struct pack_list l;
	struct buf b = BUF_INIT;
	struct pack_result res;
	struct err e = ERR_INIT;
	unsigned char *p = xmalloc(2u << 20);
	static const char *const paths[] = {"small", "large", NULL};

	fill(p, 2u << 20, 3);
	write_bytes(root, "small", "0123456789", 10, 0644);
	write_bytes(root, "large", p, 2u << 20, 0644);
	fake_walk(&w, root, paths);
	list_of(&l, &w);
	assert_int_equal(pack_to_buf(&l, PACK_ZSTD, 2, &b, &res, &e), 0);

	/* a small file whose size differs from the walk's (zstd: gathered;
	 * gzip: through the read buffer) */
	write_bytes(root, "small", "01234", 5, 0644);
	assert_int_equal(pack_to_buf(&l, PACK_ZSTD, 2, &b, &res, &e), ERR_CHANGED);
	assert_non_null(strstr(e.msg, "small"));
	err_clear(&e);
	assert_int_equal(pack_to_buf(&l, PACK_GZIP, 1, &b, &res, &e), ERR_CHANGED);
	assert_non_null(strstr(e.msg, "small"));
	err_clear(&e);
	/* ... or that is a directory now (a FIFO: the same) */
	{
		char *f = xasprintf("%s/small", root);

		unlink(f);
		assert_int_equal(mkdir(f, 0755), 0);
		assert_int_equal(pack_to_buf(&l, PACK_ZSTD, 2, &b, &res, &e), ERR_CHANGED);
		assert_non_null(strstr(e.msg, "small"));
		assert_non_null(strstr(e.msg, "no longer a regular file"));
		err_clear(&e);
		/* the same through the read buffer (gzip) */
		assert_int_equal(pack_to_buf(&l, PACK_GZIP, 1, &b, &res, &e), ERR_CHANGED);
		assert_non_null(strstr(e.msg, "no longer a regular file"));
		err_clear(&e);
		assert_int_equal(rmdir(f), 0);
		free(f);
	}
	write_bytes(root, "small", "0123456789", 10, 0644);
	assert_int_equal(pack_to_buf(&l, PACK_ZSTD, 2, &b, &res, &e), 0);

	/* a streamed file whose mtime differs from the walk's */
	w.v[1].mtime_ns -= 1000000000;
	assert_int_equal(pack_to_buf(&l, PACK_ZSTD, 2, &b, &res, &e), ERR_CHANGED);
	assert_non_null(strstr(e.msg, "large"));
	err_clear(&e);

	/* a vanished file */
	w.v[1].mtime_ns += 1000000000;
	{
		char *f = xasprintf("%s/large", root);

		unlink(f);
		free(f);
	}
	assert_int_equal(pack_to_buf(&l, PACK_NONE, 1, &b, &res, &e), ERR_CHANGED);
	assert_non_null(strstr(e.msg, "large"));
	free(l.v);
	fake_release(&w);
	buf_release(&b);
	free(p);
	rm_rf(root);
	free(root);
}

static int failing_sink(void *ctx, const void *p, size_t n, struct err *e)
{
	int *calls = ctx;

	if (++*calls == 2)
		return err_set(e, ERR_FAIL, "sink full");
	return 0;
}

/* The packer's fixed buffers: mapped once, never grown past their size,
 * and trimmed back to their first bytes (the rest reads as zeros). */
static void test_buf_map(void **state)
{
	size_t size = (5u << 20) + 123, i;
	struct buf b;
	int huge;

	(void)state;
	for (huge = 0; huge < 2; huge++) {
		assert_int_equal(buf_map(&b, size, huge), 0);
		assert_true(b.cap >= size);
		assert_int_equal(b.len, 0);
		assert_int_equal(b.data[0], 0);
		if (huge)
			assert_int_equal((uintptr_t)b.data & ((2u << 20) - 1), 0);
		memset(b.data, 'x', size);
		buf_setlen(&b, b.cap - 2);
		assert_int_equal(buf_add(&b, "y", 1), 0);
		assert_int_not_equal(buf_add(&b, "z", 1), 0); /* past its size: fails */
		assert_int_equal(b.len, b.cap - 1);
		buf_trim(&b, size, 1u << 20);
		for (i = 0; i < (1u << 20); i += 512)
			assert_int_equal(b.data[i], 'x');
		for (i = 1u << 20; i < size; i += 512)
			assert_int_equal(b.data[i], 0);
		buf_unmap(&b);
		assert_int_equal(b.cap, 0);
		assert_int_equal(b.len, 0);
	}
}

static void test_sink_failure(void **state)
{
	char *root = tmpdir_new();
	struct walk_result w;
	struct pack_list l;
	struct pack_opts o;
	struct pack_result res;
	struct err e = ERR_INIT;
	int calls = 0;

	make_tree(root);
	fake_walk(&w, root, tree_paths);
	list_of(&l, &w);
	pack_opts_init(&o);
	o.threads = 3;
	assert_int_equal(pack_write(&l, &o, NULL, failing_sink, &calls, &res, &e), ERR_FAIL);
	assert_string_equal(e.msg, "sink full");
	assert_int_equal(calls, 2);
	free(l.v);
	fake_release(&w);
	rm_rf(root);
	free(root);
}

/* ---- a name prefix (image layers) ---- */

struct tar_ent {
	char *name;
	char *link;
	char *hard;  /* a hard link's target */
	unsigned mode;
	int type;
	struct buf data;
};

/* The entries of a tar (in memory), read back with libarchive. */
static size_t read_tar(const struct buf *t, struct tar_ent *v, size_t max)
{
	struct archive *a = archive_read_new();
	struct archive_entry *ae;
	size_t n = 0;

	archive_read_support_format_tar(a);
	assert_int_equal(archive_read_open_memory(a, t->data, t->len), ARCHIVE_OK);
	while (archive_read_next_header(a, &ae) == ARCHIVE_OK) {
		char blk[65536];
		la_ssize_t k;

		assert_true(n < max);
		v[n].name = xstrdup(archive_entry_pathname(ae));
		v[n].link = archive_entry_symlink(ae) ? xstrdup(archive_entry_symlink(ae)) : NULL;
		v[n].hard = archive_entry_hardlink(ae) ? xstrdup(archive_entry_hardlink(ae)) : NULL;
		v[n].mode = archive_entry_perm(ae);
		v[n].type = (int)archive_entry_filetype(ae);
		buf_init(&v[n].data, 0);
		while ((k = archive_read_data(a, blk, sizeof(blk))) > 0)
			buf_add(&v[n].data, blk, (size_t)k);
		assert_true(k == 0);
		n++;
	}
	archive_read_free(a);
	return n;
}

static void tar_ents_free(struct tar_ent *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].link);
		free(v[i].hard);
		buf_release(&v[i].data);
	}
}

static int pack_prefixed(const struct pack_list *l, int compress, unsigned threads,
			 const char *prefix, struct buf *out, struct err *e)
{
	struct pack_opts o;
	struct pack_result res;

	pack_opts_init(&o);
	o.compress = compress;
	o.threads = threads;
	o.prefix = prefix;
	buf_reset(out);
	return pack_write(l, &o, NULL, buf_sink, out, &res, e);
}

/* Decompress a zstd or gzip archive of ours into raw (gzip through
 * libarchive's raw reader). */
static void decode_any(const struct buf *z, int compress, struct buf *raw)
{
	buf_reset(raw);
	if (compress == PACK_NONE) {
		buf_add(raw, z->data, z->len);
	} else {
		struct archive *a = archive_read_new();
		struct archive_entry *ae;
		char blk[65536];
		la_ssize_t k;

		/* only the codecs of ours: libarchive is linked statically, without
		 * the others' libraries */
		archive_read_support_filter_zstd(a);
		archive_read_support_filter_gzip(a);
		archive_read_support_format_raw(a);
		assert_int_equal(archive_read_open_memory(a, z->data, z->len), ARCHIVE_OK);
		assert_int_equal(archive_read_next_header(a, &ae), ARCHIVE_OK);
		while ((k = archive_read_data(a, blk, sizeof(blk))) > 0)
			buf_add(raw, blk, (size_t)k);
		assert_true(k == 0);
		archive_read_free(a);
	}
}

/* Every entry named below the prefix, the prefix's directories first, the
 * rest (modes, data, links) as without one; the same tar whatever the
 * codec and thread count. */
static void test_prefix(void **state)
{
	static const char *const prefixes[] = {"app", "usr/src/app",
		/* long enough that most names need a pax header */
		"a-directory-name-of-some-length/and-another-one-below-it/"
		"and-a-third-one-so-names-pass-the-ustar-limit", NULL};
	char *root = tmpdir_new();
	struct walk_result w;
	struct pack_list l;
	struct buf plain = BUF_INIT, got = BUF_INIT, raw = BUF_INIT, ref = BUF_INIT;
	struct tar_ent *a = xcalloc(64, sizeof(*a)), *b = xcalloc(64, sizeof(*b));
	struct err e = ERR_INIT;
	size_t na, nb, i, k, ndirs;
	int c;

	make_tree(root);
	fake_walk(&w, root, tree_paths);
	list_of(&l, &w);
	assert_int_equal(pack_prefixed(&l, PACK_NONE, 1, NULL, &plain, &e), 0);
	na = read_tar(&plain, a, 64);
	assert_int_equal(na, l.n);
	/* "" is no prefix */
	assert_int_equal(pack_prefixed(&l, PACK_NONE, 1, "", &got, &e), 0);
	assert_int_equal(got.len, plain.len);
	assert_memory_equal(got.data, plain.data, got.len);
	for (k = 0; prefixes[k]; k++) {
		const char *pfx = prefixes[k];
		size_t plen = strlen(pfx);

		assert_int_equal(pack_prefixed(&l, PACK_NONE, 2, pfx, &ref, &e), 0);
		nb = read_tar(&ref, b, 64);
		for (ndirs = 1, i = 0; i < plen; i++)
			ndirs += pfx[i] == '/';
		assert_int_equal(nb, na + ndirs);
		/* the prefix's directories, outermost first */
		for (i = 0; i < ndirs; i++) {
			const char *end = pfx;
			size_t j;

			for (j = 0; j <= i; j++)
				end = strchrnul(end + (j ? 1 : 0), '/');
			assert_int_equal(strlen(b[i].name), (size_t)(end - pfx) + 1);
			assert_memory_equal(b[i].name, pfx, (size_t)(end - pfx));
			assert_int_equal(b[i].name[end - pfx], '/');
			assert_int_equal(b[i].type, AE_IFDIR);
			assert_int_equal(b[i].mode, 0755);
		}
		for (i = 0; i < na; i++) {
			const struct tar_ent *x = &a[i], *y = &b[ndirs + i];

			assert_int_equal(strncmp(y->name, pfx, plen), 0);
			assert_int_equal(y->name[plen], '/');
			assert_string_equal(y->name + plen + 1, x->name);
			assert_int_equal(y->type, x->type);
			assert_int_equal(y->mode, x->mode);
			if (x->link)
				assert_string_equal(y->link, x->link);
			/* a hard link names its target below the prefix too */
			if (x->hard) {
				assert_non_null(y->hard);
				assert_int_equal(strncmp(y->hard, pfx, plen), 0);
				assert_string_equal(y->hard + plen + 1, x->hard);
			}
			assert_int_equal(y->data.len, x->data.len);
			assert_memory_equal(y->data.data, x->data.data, x->data.len);
		}
		tar_ents_free(b, nb);
		/* the codecs and threads give the same tar (gzip is slow:
		 * with one prefix) */
		for (c = PACK_ZSTD; c <= (k == 1 ? PACK_GZIP : PACK_ZSTD); c++) {
			unsigned t;

			for (t = 1; t <= 3; t += 2) {
				assert_int_equal(pack_prefixed(&l, c, t, pfx, &got, &e), 0);
				decode_any(&got, c, &raw);
				assert_int_equal(raw.len, ref.len);
				assert_memory_equal(raw.data, ref.data, ref.len);
			}
		}
	}
	tar_ents_free(a, na);

	/* no entries: the prefix's directories and the end blocks */
	l.n = 0;
	assert_int_equal(pack_prefixed(&l, PACK_ZSTD, 1, "x/y", &got, &e), 0);
	decode_any(&got, PACK_ZSTD, &raw);
	nb = read_tar(&raw, b, 64);
	assert_int_equal(nb, 2);
	assert_string_equal(b[0].name, "x/");
	assert_string_equal(b[1].name, "x/y/");
	tar_ents_free(b, nb);
	l.n = w.n;

	free(a);
	free(b);
	free(l.v);
	fake_release(&w);
	buf_release(&plain);
	buf_release(&got);
	buf_release(&raw);
	buf_release(&ref);
	rm_rf(root);
	free(root);
}

/* The plan with a prefix: NULL and "" are pack_plan; the prefix's
 * directories join the first entry's frame (never one of their own, even
 * before a file that fills a frame); longer names count. */
static void test_plan_prefixed(void **state)
{
	size_t n = 5000, nf1, nf2, i, k;
	char **names;
	struct walk_entry *v = synth(n, size_small, &names);
	struct walk_entry **pv = xcalloc(n, sizeof(*pv));
	struct pack_frame *f1, *f2;
	struct walk_entry big[2];
	struct walk_entry *pb[2] = {&big[0], &big[1]};
	char longp[200];

	for (i = 0; i < n; i++)
		pv[i] = &v[i];
	pack_plan(pv, n, &f1, &nf1);
	pack_plan_prefixed(pv, n, "", &f2, &nf2);
	assert_int_equal(nf1, nf2);
	assert_memory_equal(f1, f2, nf1 * sizeof(*f1));
	free(f2);
	pack_plan_prefixed(pv, n, "app", &f2, &nf2);
	check_cover(pv, n, f2, nf2);
	assert_true(f2[0].est >= f1[0].est); /* + "app/" (and no cut earlier) */
	free(f2);
	/* a prefix that makes every name long: the estimates grow by about a
	 * pax header per entry */
	memset(longp, 'p', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	longp[90] = '/';
	pack_plan_prefixed(pv, n, longp, &f2, &nf2);
	check_cover(pv, n, f2, nf2);
	{
		uint64_t t1 = 0, t2 = 0;

		for (k = 0; k + 1 < nf1; k++)
			t1 += f1[k].est;
		for (k = 0; k + 1 < nf2; k++)
			t2 += f2[k].est;
		assert_true(t2 >= t1 + (uint64_t)n * 1024);
	}
	free(f2);
	free(f1);

	/* a first file that fills a frame: still one frame with the dirs */
	memset(big, 0, sizeof(big));
	big[0].path = "a";
	big[0].path_len = 1;
	big[0].type = WALK_REG;
	big[0].size = PACK_FRAME_MAX - 600; /* not split, fills the frame */
	big[1].path = "b";
	big[1].path_len = 1;
	big[1].type = WALK_REG;
	big[1].size = 10;
	pack_plan_prefixed(pb, 2, "usr/src/app", &f2, &nf2);
	check_cover(pb, 2, f2, nf2);
	assert_int_equal(f2[0].first.i, 0);
	assert_int_equal(f2[0].end.i, 1);
	free(f2);

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(pv);
	free(v);
}

static void test_prefix_check(void **state)
{
	static const char *const bad[] = {"/app", "app/", "a//b", ".", "..", "a/./b",
					  "a/../b", "a/..", NULL};
	static const char *const good[] = {"app", "usr/src/app", ".venv", "a..b", "...", NULL};
	struct pack_opts o;
	struct err e = ERR_INIT;
	char *huge;
	size_t i;

	pack_opts_init(&o);
	for (i = 0; bad[i]; i++) {
		o.prefix = bad[i];
		assert_int_equal(pack_opts_check(&o, &e), ERR_USAGE);
		assert_non_null(strstr(e.msg, bad[i]));
		err_clear(&e);
	}
	for (i = 0; good[i]; i++) {
		o.prefix = good[i];
		assert_int_equal(pack_opts_check(&o, &e), 0);
	}
	huge = xmalloc(PACK_PREFIX_MAX + 2);
	memset(huge, 'a', PACK_PREFIX_MAX + 1);
	huge[PACK_PREFIX_MAX + 1] = '\0';
	o.prefix = huge;
	assert_int_equal(pack_opts_check(&o, &e), ERR_USAGE);
	err_clear(&e);
	huge[PACK_PREFIX_MAX] = '\0';
	assert_int_equal(pack_opts_check(&o, &e), 0);
	free(huge);
}

/* pack_list_entries: the walk's entries, nothing added. */
static void test_list_entries(void **state)
{
	char *root = tmpdir_new();
	static const char *const paths[] = {"a", "z", NULL};
	struct walk_result w;
	struct pack_list l;

	write_bytes(root, "a", "a", 1, 0644);
	write_bytes(root, "z", "z", 1, 0644);
	write_bytes(root, "Dockerfile", "FROM scratch\n", 13, 0644);
	fake_walk(&w, root, paths);
	w.dockerfile_rel = xstrdup("Dockerfile");
	pack_list_entries(&l, &w);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.n_added, 0);
	assert_ptr_equal(l.v[0], &w.v[0]);
	assert_ptr_equal(l.v[1], &w.v[1]);
	assert_string_equal(l.root, root);
	pack_list_release(&l);
	fake_release(&w);
	rm_rf(root);
	free(root);
}

/* pack_tar_digest: the sha256 of the tar inside each codec's archive, fed
 * whole or in pieces of any size; a cut or damaged archive is refused. */
static void test_tar_digest(void **state)
{
	char *root = tmpdir_new();
	struct walk_result w;
	struct pack_list l;
	struct buf tar = BUF_INIT, z = BUF_INIT;
	struct pack_result res;
	struct err e = ERR_INIT;
	char want[72], got[72];
	uint64_t n;
	int c;

	make_tree(root);
	fake_walk(&w, root, tree_paths);
	list_of(&l, &w);
	assert_int_equal(pack_to_buf(&l, PACK_NONE, 1, &tar, &res, &e), 0);
	sha256_digest_str(tar.data, tar.len, want);
	for (c = PACK_ZSTD; c <= PACK_NONE; c++) {
		uint32_t seed = 5;
		int round;

		assert_int_equal(pack_prefixed(&l, c, 3, NULL, &z, &e), 0);
		for (round = 0; round < 3; round++) {
			struct pack_tar_digest *d = pack_tar_digest_new(c, &e);
			size_t pos, step;

			assert_non_null(d);
			for (pos = 0; pos < z.len; pos += step) {
				seed = seed * 1103515245u + 12345u;
				/* whole; small pieces (a few single bytes at the
				 * start: a header cut anywhere); large pieces */
				step = round == 0 ? z.len :
				       round == 1 ? (pos < 64 ? 1 : 1 + (seed >> 8) % 4099) :
				       1 + (seed >> 8) % 300000;
				if (step > z.len - pos)
					step = z.len - pos;
				assert_int_equal(pack_tar_digest_update(d, z.data + pos, step, &e), 0);
			}
			assert_int_equal(pack_tar_digest_final(d, got, &n, &e), 0);
			assert_string_equal(got, want);
			assert_int_equal(n, tar.len);
			pack_tar_digest_free(d);
		}
		if (c == PACK_NONE)
			break;
		/* cut short: refused at the end */
		{
			struct pack_tar_digest *d = pack_tar_digest_new(c, &e);

			assert_int_equal(pack_tar_digest_update(d, z.data, z.len - 7, &e), 0);
			assert_int_equal(pack_tar_digest_final(d, got, NULL, &e), ERR_CORRUPT);
			err_clear(&e);
			pack_tar_digest_free(d);
		}
		/* damaged: refused */
		{
			struct pack_tar_digest *d = pack_tar_digest_new(c, &e);
			int r;

			z.data[z.len / 2] ^= 0x55;
			z.data[z.len / 2 + 1] ^= 0x55;
			r = pack_tar_digest_update(d, z.data, z.len, &e);
			if (!r)
				r = pack_tar_digest_final(d, got, NULL, &e);
			assert_true(r == ERR_CORRUPT || (r == 0 && strcmp(got, want)));
			err_clear(&e);
			pack_tar_digest_free(d);
		}
	}
	free(l.v);
	fake_release(&w);
	buf_release(&tar);
	buf_release(&z);
	rm_rf(root);
	free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan_empty),
		cmocka_unit_test(test_plan_rule),
		cmocka_unit_test(test_plan_stable),
		cmocka_unit_test(test_plan_split),
		cmocka_unit_test(test_tar_matches_one_writer),
		cmocka_unit_test(test_threads_and_codecs),
		cmocka_unit_test(test_zstd_chunking),
		cmocka_unit_test(test_frame_paths),
		cmocka_unit_test(test_list_adds_dockerfile),
		cmocka_unit_test(test_source_date_epoch),
		cmocka_unit_test(test_opts_check),
		cmocka_unit_test(test_changed_file),
		cmocka_unit_test(test_sink_failure),
		cmocka_unit_test(test_buf_map),
		cmocka_unit_test(test_prefix),
		cmocka_unit_test(test_plan_prefixed),
		cmocka_unit_test(test_prefix_check),
		cmocka_unit_test(test_list_entries),
		cmocka_unit_test(test_tar_digest),
	};

	if (!setlocale(LC_CTYPE, "C.UTF-8"))
		setlocale(LC_CTYPE, "C.utf8");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
