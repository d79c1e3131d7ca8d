/*
 * Unit tests of `ctxpack image`'s module: the command line's values, the
 * layer records, and whole builds into OCI layouts in a temp dir (from
 * scratch, then on the first image as a base): the digest is the same for
 * the same inputs, an unchanged layer is known from its record, a changed
 * one is packed, a damaged record is not trusted.
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
#include <time.h>
#include <unistd.h>

#include "ctxpack/image.h"
#include "ctxpack/pack.h"

static char *tmpdir_new(void)
{
	char tmpl[] = "/tmp/ctxpack-unit-img.XXXXXX";
	char *d = mkdtemp(tmpl);

	assert_non_null(d);
	return realpath(d, NULL);
}

static void write_rel(const char *root, const char *rel, const char *s, int mode)
{
	char *p = xasprintf("%s/%s", root, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, s, strlen(s)), 0);
	close(fd);
	free(p);
}

static void mkdir_rel(const char *root, const char *rel)
{
	char *p = xasprintf("%s/%s", root, rel);
	struct err e = ERR_INIT;

	assert_int_equal(mkdir_p(p, 0755, &e), 0);
	free(p);
}

/* ---- parsing ---- */

static void test_parse(void **state)
{
	struct img_layer_spec l;
	struct err e = ERR_INIT;
	char *b, *s, **v, *os, *arch, *var;
	size_t n;

	(void)state;
	assert_int_equal(img_parse_layer("backend/.venv:/app/.venv", &l, &b, &e), 0);
	assert_string_equal(l.src, "backend/.venv");
	assert_string_equal(l.dest, "/app/.venv");
	free(b);
	assert_int_equal(img_parse_layer("c:/x:/y:/app", &l, &b, &e), 0);
	assert_string_equal(l.src, "c:/x:/y");
	assert_string_equal(l.dest, "/app");
	free(b);
	assert_int_equal(img_parse_layer("app", &l, &b, &e), ERR_USAGE);
	err_clear(&e);
	assert_int_equal(img_parse_layer(":/app", &l, &b, &e), ERR_USAGE);
	err_clear(&e);
	assert_int_equal(img_parse_layer("app:rel", &l, &b, &e), ERR_USAGE);
	err_clear(&e);

	assert_int_equal(img_dest_prefix("/app", &s, &e), 0);
	assert_string_equal(s, "app");
	free(s);
	assert_int_equal(img_dest_prefix("//usr//src/app/", &s, &e), 0);
	assert_string_equal(s, "usr/src/app");
	free(s);
	assert_int_equal(img_dest_prefix("/", &s, &e), 0);
	assert_string_equal(s, "");
	free(s);
	assert_int_equal(img_dest_prefix("app", &s, &e), ERR_USAGE);
	err_clear(&e);
	assert_int_equal(img_dest_prefix("/a/../b", &s, &e), ERR_USAGE);
	err_clear(&e);
	assert_int_equal(img_dest_prefix("/a/.", &s, &e), ERR_USAGE);
	err_clear(&e);

	assert_int_equal(img_parse_port("8000", &s, &e), 0);
	assert_string_equal(s, "8000/tcp");
	free(s);
	assert_int_equal(img_parse_port("53/udp", &s, &e), 0);
	assert_string_equal(s, "53/udp");
	free(s);
	assert_int_equal(img_parse_port("0", &s, &e), ERR_USAGE);
	err_clear(&e);
	assert_int_equal(img_parse_port("65536", &s, &e), ERR_USAGE);
	err_clear(&e);
	assert_int_equal(img_parse_port("80/http", &s, &e), ERR_USAGE);
	err_clear(&e);
	assert_int_equal(img_parse_port("8000-8010", &s, &e), ERR_USAGE);
	err_clear(&e);

	assert_int_equal(img_parse_command("[\"uvicorn\", \"app.main:app\"]", &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0], "uvicorn");
	assert_string_equal(v[1], "app.main:app");
	img_strv_free(v, n);
	assert_int_equal(img_parse_command("[]", &v, &n), 0);
	assert_int_equal(n, 0);
	img_strv_free(v, n);
	assert_int_equal(img_parse_command("httpd -f -p 8080", &v, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0], "/bin/sh");
	assert_string_equal(v[1], "-c");
	assert_string_equal(v[2], "httpd -f -p 8080");
	img_strv_free(v, n);
	/* looks like the exec form but is not: the shell form, flagged */
	assert_int_equal(img_parse_command(" [\"a\", b]", &v, &n), 1);
	assert_int_equal(n, 3);
	img_strv_free(v, n);
	assert_int_equal(img_parse_command("[1]", &v, &n), 1);
	img_strv_free(v, n);

	assert_int_equal(img_parse_platform("linux/amd64", &os, &arch, &var, &e), 0);
	assert_string_equal(os, "linux");
	assert_string_equal(arch, "amd64");
	assert_null(var);
	free(os);
	free(arch);
	assert_int_equal(img_parse_platform("linux/arm64/v8", &os, &arch, &var, &e), 0);
	assert_string_equal(var, "v8");
	free(os);
	free(arch);
	free(var);
	{
		static const char *const bad[] = {"linux", "/amd64", "linux/", "linux//v8",
						  "linux/arm/", "a/b/c/d", NULL};
		size_t i;

		for (i = 0; bad[i]; i++) {
			assert_int_equal(img_parse_platform(bad[i], &os, &arch, &var, &e),
					 ERR_USAGE);
			err_clear(&e);
		}
	}
}

/* ---- records ---- */

static void test_records(void **state)
{
	char *dir = tmpdir_new(), *sub = xasprintf("%s/layers", dir), *path;
	unsigned char key[FC_KEY_LEN];
	struct img_record r, got;
	struct err e = ERR_INIT;
	struct buf b = BUF_INIT;

	(void)state;
	memset(key, 0xab, sizeof(key));
	memset(&r, 0, sizeof(r));
	snprintf(r.media_type, sizeof(r.media_type), "%s", REG_MT_LAYER_GZIP);
	snprintf(r.digest, sizeof(r.digest), "sha256:%064d", 1);
	snprintf(r.diff_id, sizeof(r.diff_id), "sha256:%064d", 2);
	r.size = 12345;
	r.entries = 67;
	assert_int_equal(img_record_get(sub, key, &got), 0); /* none */
	assert_int_equal(img_record_put(sub, key, &r, &e), 0);
	assert_int_equal(img_record_get(sub, key, &got), 1);
	assert_string_equal(got.media_type, r.media_type);
	assert_string_equal(got.digest, r.digest);
	assert_string_equal(got.diff_id, r.diff_id);
	assert_int_equal(got.size, 12345);
	assert_int_equal(got.entries, 67);

	/* one byte changed: not trusted, and removed */
	path = xasprintf("%s/abababababababababababababababab", sub);
	assert_int_equal(buf_read_file(&b, path, 0, &e), 0);
	b.data[b.len / 2] ^= 1;
	write_rel(sub, "abababababababababababababababab", b.data, 0644);
	assert_int_equal(img_record_get(sub, key, &got), 0);
	assert_int_equal(access(path, F_OK), -1);
	/* cut short: the same */
	assert_int_equal(img_record_put(sub, key, &r, &e), 0);
	assert_int_equal(truncate(path, 40), 0);
	assert_int_equal(img_record_get(sub, key, &got), 0);
	assert_int_equal(access(path, F_OK), -1);

	/* the sweep: records unused for long, and old temporaries */
	assert_int_equal(img_record_put(sub, key, &r, &e), 0);
	memset(key, 0xcd, sizeof(key));
	assert_int_equal(img_record_put(sub, key, &r, &e), 0);
	write_rel(sub, "tmp.1.0", "partial", 0644);
	write_rel(sub, "tmp.1.1", "partial", 0644);
	write_rel(sub, "other", "not ours", 0644);
	{
		struct timespec old[2] = {{0, UTIME_OMIT}, {time(NULL) - 40 * 24 * 3600, 0}};
		char *p2 = xasprintf("%s/tmp.1.0", sub), *p3 = xasprintf("%s/other", sub);

		assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
		assert_int_equal(utimensat(AT_FDCWD, p2, old, 0), 0);
		assert_int_equal(utimensat(AT_FDCWD, p3, old, 0), 0);
		/* a use refreshes: the 0xcd record was read just now */
		assert_int_equal(img_record_get(sub, key, &got), 1);
		img_record_sweep(sub, IMG_RECORD_MAX_AGE);
		assert_int_equal(access(path, F_OK), -1);        /* 0xab: old */
		assert_int_equal(img_record_get(sub, key, &got), 1); /* 0xcd: used */
		assert_int_equal(access(p2, F_OK), -1);
		free(p2);
		p2 = xasprintf("%s/tmp.1.1", sub);
		assert_int_equal(access(p2, F_OK), 0);           /* recent */
		assert_int_equal(access(p3, F_OK), 0);           /* not ours */
		free(p2);
		free(p3);
	}

	buf_release(&b);
	free(path);
	free(sub);
	remove_tree(dir, &e);
	free(dir);
}

/* ---- whole builds into layouts ---- */

struct fx {
	char *dir;
	char *deps;
	char *app;
	char *out;
};

static int fx_setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	char *cache;

	f->dir = tmpdir_new();
	f->deps = xasprintf("%s/deps", f->dir);
	f->app = xasprintf("%s/app", f->dir);
	cache = xasprintf("%s/cache", f->dir);
	setenv("XDG_CACHE_HOME", cache, 1);
	env_load();
	free(cache);
	mkdir_rel(f->dir, "deps/lib/pkg");
	mkdir_rel(f->dir, "app/src");
	mkdir_rel(f->dir, "app/.venv");
	write_rel(f->dir, "deps/lib/pkg/__init__.py", "x = 1\n", 0644);
	write_rel(f->dir, "deps/lib/pkg/mod.so", "\x7f" "ELF...", 0755);
	write_rel(f->dir, "app/src/main.py", "print('hello')\n", 0644);
	write_rel(f->dir, "app/.venv/stale", "not in the image\n", 0644);
	write_rel(f->dir, "app/.dockerignore", ".venv\n", 0644);
	f->out = xasprintf("oci:%s/out", f->dir);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	struct err e = ERR_INIT;

	remove_tree(f->dir, &e);
	free(f->dir);
	free(f->deps);
	free(f->app);
	free(f->out);
	free(f);
	unsetenv("XDG_CACHE_HOME");
	env_load();
	return 0;
}

/* Let the racy window pass, so that layers may be recorded. */
static void settle(void)
{
	struct timespec ts = {0, 400 * 1000000L};

	nanosleep(&ts, NULL);
}

static void build(struct fx *f, const char *from, const char *out, int compress,
		  struct img_result *r)
{
	static const char *const env[] = {"PATH=/app/.venv/bin:$PATH"};
	static const char *const cmd[] = {"python", "src/main.py"};
	static const char *const hist[] = {"ENV PATH=/app/.venv/bin:$PATH",
					   "CMD [\"python\",\"src/main.py\"]"};
	struct img_layer_spec layers[2];
	struct img_opts o;
	struct err e = ERR_INIT;
	const char *outs[1];

	memset(layers, 0, sizeof(layers));
	layers[0].src = f->deps;
	layers[0].dest = "/app/.venv";
	layers[1].src = f->app;
	layers[1].dest = "/app";
	img_opts_init(&o);
	o.from = from;
	o.layers = layers;
	o.nlayers = 2;
	o.compress = compress;
	o.edit.env = env;
	o.edit.nenv = 1;
	o.edit.set_cmd = 1;
	o.edit.cmd = cmd;
	o.edit.ncmd = 2;
	o.edit.workdir = "/app";
	o.edit_history = hist;
	o.nedit_history = 2;
	outs[0] = out;
	o.outputs = outs;
	o.noutputs = out ? 1 : 0;
	if (img_build(&o, r, &e))
		fail_msg("img_build: %s", e.msg);
}

static void test_build(void **state)
{
	struct fx *f = *state;
	struct img_result r1, r2, r3, r4;
	struct reg_store *s;
	struct reg_manifest m;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	char dg[REG_DIGEST_SIZE], *base;
	size_t i;

	settle();
	build(f, "scratch", f->out, PACK_GZIP, &r1);
	assert_int_equal(r1.nbase, 0);
	assert_int_equal(r1.nlayers, 2);
	for (i = 0; i < 2; i++) {
		assert_true(r1.layers[i].packed);
		assert_false(r1.layers[i].reused);
		assert_string_equal(r1.layers[i].desc.media_type, REG_MT_LAYER_GZIP);
	}
	assert_int_equal(r1.layers[1].entries, 3); /* .dockerignore, src/, src/main.py */
	assert_int_equal(r1.outputs[0].uploaded, 2);
	assert_null(strstr(r1.config.data, "stale"));
	assert_non_null(strstr(r1.config.data, "\"WorkingDir\":\"/app\""));
	assert_non_null(strstr(r1.config.data, "COPY dir:"));

	/* again: the same digest, both layers from their records, nothing sent */
	build(f, "scratch", f->out, PACK_GZIP, &r2);
	assert_string_equal(r2.digest, r1.digest);
	for (i = 0; i < 2; i++) {
		assert_true(r2.layers[i].reused);
		assert_false(r2.layers[i].made);
		assert_int_equal(r2.layers[i].ist.hashed, 0);
	}
	assert_int_equal(r2.outputs[0].skipped, 2);
	assert_int_equal(r2.outputs[0].uploaded, 0);
	assert_int_equal(r2.outputs[0].sent, 0);

	/* the manifest in the layout is the one built */
	assert_int_equal(reg_store_open(&s, f->out, NULL, &e), 0);
	assert_int_equal(reg_manifest_get(s, "latest", &b, NULL, dg, &e), 0);
	assert_string_equal(dg, r1.digest);
	assert_int_equal(reg_manifest_parse(&m, b.data, b.len, &e), 0);
	assert_int_equal(m.nlayers, 2);
	assert_string_equal(m.config.media_type, REG_MT_IMAGE_CONFIG);
	assert_string_equal(m.layers[0].digest, r1.layers[0].desc.digest);
	reg_manifest_release(&m);
	reg_store_free(s);

	/* an edit: only the app layer changes */
	write_rel(f->dir, "app/src/main.py", "print('hello, again')\n", 0644);
	settle();
	build(f, "scratch", f->out, PACK_GZIP, &r3);
	assert_string_not_equal(r3.digest, r1.digest);
	assert_true(r3.layers[0].reused);
	assert_string_equal(r3.layers[0].desc.digest, r1.layers[0].desc.digest);
	assert_true(r3.layers[1].packed);
	assert_string_not_equal(r3.layers[1].desc.digest, r1.layers[1].desc.digest);
	assert_int_equal(r3.outputs[0].uploaded, 1);
	assert_int_equal(r3.outputs[0].sent, r3.layers[1].desc.size);

	/* a new output lacking the known layer gets it from the frame store:
	 * the same bytes */
	{
		char *out2 = xasprintf("oci:%s/out2", f->dir);

		build(f, "scratch", out2, PACK_GZIP, &r4);
		assert_string_equal(r4.digest, r3.digest);
		assert_true(r4.layers[0].reused);
		assert_true(r4.layers[0].made);
		assert_false(r4.layers[0].packed);
		assert_int_equal(r4.layers[0].fst.frames_compressed, 0);
		assert_int_equal(r4.outputs[0].uploaded, 2);
		img_result_release(&r4);

		/* on the image as a base: its layers are the base's, copied
		 * into a layout that lacks them */
		base = xasprintf("oci:%s/out2:latest", f->dir);
		build(f, base, f->out, PACK_GZIP, &r4);
		assert_int_equal(r4.nbase, 2);
		assert_int_equal(r4.nlayers, 4);
		assert_string_equal(r4.layers[0].diff_id, r3.layers[0].diff_id);
		assert_string_equal(r4.layers[2].desc.digest, r3.layers[0].desc.digest);
		assert_non_null(strstr(r4.base, r3.digest));
		assert_int_equal(r4.outputs[0].skipped, 4); /* all there already */
		assert_int_equal(r4.outputs[0].copied, 0);
		img_result_release(&r4);
		free(out2);
	}
	{
		/* into a fresh layout: the base's blobs are fetched and written */
		char *out3 = xasprintf("oci:%s/out3", f->dir);

		build(f, base, out3, PACK_GZIP, &r4);
		assert_int_equal(r4.outputs[0].copied, 2);
		/* the new layers are the base's two again: there by then */
		assert_int_equal(r4.outputs[0].uploaded, 0);
		assert_int_equal(r4.outputs[0].skipped, 2);
		img_result_release(&r4);
		free(out3);
	}
	free(base);

	/* zstd is another layer (and record) */
	build(f, "scratch", NULL, PACK_ZSTD, &r4);
	assert_string_equal(r4.layers[0].desc.media_type, REG_MT_LAYER_ZSTD);
	assert_true(r4.layers[0].packed);
	assert_string_equal(r4.layers[0].diff_id, r3.layers[0].diff_id); /* same tar */
	img_result_release(&r4);

	/* records that name another blob (well formed: a bug or a hand):
	 * found out when the blob is made for an output, and replaced */
	{
		char *ldir = xasprintf("%s/cache/ctxpack/layers", f->dir), **names;
		char *out4 = xasprintf("oci:%s/out4", f->dir);
		size_t n, k, changed = 0;

		assert_int_equal(dir_names(ldir, 0, &names, &n, &e), 0);
		for (k = 0; k < n; k++) {
			unsigned char key[FC_KEY_LEN];
			struct img_record rec;

			if (strlen(names[k]) != 32)
				continue;
			for (i = 0; i < FC_KEY_LEN; i++)
				sscanf(names[k] + 2 * i, "%2hhx", &key[i]);
			assert_int_equal(img_record_get(ldir, key, &rec), 1);
			if (strcmp(rec.digest, r3.layers[0].desc.digest))
				continue;
			snprintf(rec.digest, sizeof(rec.digest), "sha256:%064d", 7);
			assert_int_equal(img_record_put(ldir, key, &rec, &e), 0);
			changed++;
		}
		dir_names_free(names, n);
		assert_int_equal(changed, 1);
		build(f, "scratch", out4, PACK_GZIP, &r4);
		assert_string_equal(r4.digest, r3.digest);
		assert_non_null(strstr(r4.warnings.data, "record replaced"));
		img_result_release(&r4);
		/* and the next run trusts the new record */
		build(f, "scratch", out4, PACK_GZIP, &r4);
		assert_string_equal(r4.digest, r3.digest);
		assert_true(r4.layers[0].reused);
		assert_false(r4.layers[0].made);
		assert_int_equal(r4.warnings.len, 0);
		img_result_release(&r4);
		free(out4);
		free(ldir);
	}

	buf_release(&b);
	img_result_release(&r1);
	img_result_release(&r2);
	img_result_release(&r3);
}

/* A base that is not there, a source that is not there, a relative
 * destination: errors naming them. */
static void test_build_errors(void **state)
{
	struct fx *f = *state;
	struct img_result r;
	struct img_opts o;
	struct img_layer_spec l = {f->app, "/app", NULL};
	struct err e = ERR_INIT;
	char *ref = xasprintf("oci:%s/nothing:v1", f->dir);

	img_opts_init(&o);
	o.from = ref;
	o.layers = &l;
	o.nlayers = 1;
	assert_int_not_equal(img_build(&o, &r, &e), 0);
	assert_non_null(strstr(e.msg, "nothing"));
	img_result_release(&r);
	err_clear(&e);
	o.from = "scratch";
	l.src = "/nonexistent/dir";
	assert_int_not_equal(img_build(&o, &r, &e), 0);
	assert_non_null(strstr(e.msg, "/nonexistent/dir"));
	img_result_release(&r);
	err_clear(&e);
	l.src = f->app;
	l.dest = "relative";
	assert_int_equal(img_build(&o, &r, &e), ERR_USAGE);
	img_result_release(&r);
	free(ref);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_records),
		cmocka_unit_test_setup_teardown(test_build, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_build_errors, fx_setup, fx_teardown),
	};

	if (!setlocale(LC_CTYPE, "C.UTF-8"))
		setlocale(LC_CTYPE, "C.utf8");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
