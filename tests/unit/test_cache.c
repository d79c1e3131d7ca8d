/*
 * Unit tests of the cache: key checks, the implicit version, the key->tag
 * mapping (always a valid tag, no collisions between near-identical keys,
 * prefix candidates never missed), times, the key of `cache run`, the
 * entry manifest round trip, prune selection, and save/lookup/restore
 * through the library on a temporary oci: layout.
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

#include "ctxpack/cache.h"
#include "ctxpack/registry.h"
#include "ctxpack/util.h"

static const char *const P1[] = {"node_modules"};
static const char *const P2[] = {"node_modules", "~/.npm"};
static const char *const P2R[] = {"~/.npm", "node_modules"};

static char *tmpdir_new(void)
{
	char tmpl[] = "/tmp/ctxpack-unit-cache.XXXXXX";

	assert_non_null(mkdtemp(tmpl));
	return xstrdup(tmpl);
}

static void write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, s, strlen(s)), 0);
	close(fd);
}

/* A deterministic pseudo-random generator for the key fuzz loops. */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static unsigned rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

static void test_key_check(void **state)
{
	struct err e = ERR_INIT;
	char k[600];

	assert_int_equal(cache_key_check("npm-linux-abc", "key", &e), 0);
	assert_int_equal(cache_key_check("ünïcödé ${{ x }} /:@", "key", &e), 0);
	assert_int_equal(cache_key_check("", "key", &e), ERR_USAGE);
	err_clear(&e);
	memset(k, 'a', 512);
	k[512] = '\0';
	assert_int_equal(cache_key_check(k, "key", &e), 0);
	k[512] = 'a';
	k[513] = '\0';
	assert_int_equal(cache_key_check(k, "key", &e), ERR_USAGE);
	assert_non_null(strstr(e.msg, "at most 512"));
	err_clear(&e);
	assert_int_equal(cache_key_check("a\nb", "key", &e), ERR_USAGE);
	err_clear(&e);
	assert_int_equal(cache_key_check("a\tb", "key", &e), ERR_USAGE);
	err_clear(&e);
	assert_int_equal(cache_key_check("bad \xff utf8", "key", &e), ERR_USAGE);
	err_clear(&e);
	assert_int_equal(cache_key_check("overlong \xc0\xaf", "key", &e), ERR_USAGE);
	err_clear(&e);
	assert_int_equal(cache_path_check("node_modules", &e), 0);
	assert_int_equal(cache_path_check("~/.npm/", &e), 0);
	assert_int_equal(cache_path_check(".", &e), ERR_USAGE);
	err_clear(&e);
	assert_int_equal(cache_path_check("a/..", &e), ERR_USAGE);
	err_clear(&e);
	assert_int_equal(cache_path_check("/", &e), ERR_USAGE);
	err_clear(&e);
	assert_int_equal(cache_path_check("~", &e), ERR_USAGE);
	err_clear(&e);
}

static void test_version(void **state)
{
	char a[65], b[65], c[65], d[65];

	cache_version(P1, 1, a);
	cache_version(P1, 1, b);
	assert_string_equal(a, b);
	assert_int_equal(strlen(a), 64);
	cache_version(P2, 2, c);
	cache_version(P2R, 2, d);
	assert_string_not_equal(a, c);
	assert_string_not_equal(c, d); /* the order counts: paths are as given */
	{
		/* "ab" + "c" is not "a" + "bc" */
		const char *x[] = {"ab", "c"}, *y[] = {"a", "bc"};

		cache_version(x, 2, a);
		cache_version(y, 2, b);
		assert_string_not_equal(a, b);
	}
	assert_non_null(strstr(cache_platform(), "linux/"));
}

static void test_tag_basic(void **state)
{
	char v[65], t[CACHE_TAG_MAX + 1], t2[CACHE_TAG_MAX + 1], v2[65];

	cache_version(P1, 1, v);
	cache_tag("npm-linux-abc", v, t);
	assert_true(reg_tag_valid(t));
	assert_true(cache_tag_is_cache(t));
	assert_int_equal(strncmp(t, "npm-linux-abc-", 14), 0);
	assert_int_equal(strlen(t), 13 + CACHE_TAG_SUFFIX);
	assert_memory_equal(t + 14, v, 8);
	/* another version, another tag */
	cache_version(P2, 2, v2);
	cache_tag("npm-linux-abc", v2, t2);
	assert_string_not_equal(t, t2);
	/* keys that map to the same readable part */
	cache_tag("a/b", v, t);
	cache_tag("a:b", v, t2);
	assert_string_not_equal(t, t2);
	assert_int_equal(strncmp(t, "a_b-", 4), 0);
	/* a leading '.' or '-' is not allowed in a tag */
	cache_tag(".hidden", v, t);
	assert_true(reg_tag_valid(t));
	assert_int_equal(t[0], '_');
	cache_tag("-x", v, t);
	assert_true(reg_tag_valid(t));
	assert_false(cache_tag_is_cache("latest"));
	assert_false(cache_tag_is_cache("v1.2.3"));
	assert_false(cache_tag_is_cache("-0123456789abcdef0123456789abcdef"));
	assert_false(cache_tag_is_cache("x-0123456789ABCDEF0123456789abcdef"));
	assert_true(cache_tag_is_cache("x-0123456789abcdef0123456789abcdef"));
}

static void random_key(char *k, size_t n)
{
	static const char *pieces[] = {"a", "Z", "0", "-", ".", "_", "/", ":", " ", "é",
				       "€", "${{", "}}", "~", "@", "\"", "\\", "%"};
	size_t len = 0;

	while (len < n) {
		const char *p = pieces[rnd(sizeof(pieces) / sizeof(pieces[0]))];
		size_t pl = strlen(p);

		if (len + pl > n)
			break;
		memcpy(k + len, p, pl);
		len += pl;
	}
	if (!len)
		k[len++] = 'k';
	k[len] = '\0';
}

static void test_tag_always_valid(void **state)
{
	char v[65], k[CACHE_KEY_MAX + 1], t[CACHE_TAG_MAX + 1];
	struct err e = ERR_INIT;
	int i;

	cache_version(P1, 1, v);
	for (i = 0; i < 5000; i++) {
		random_key(k, 1 + rnd(CACHE_KEY_MAX));
		assert_int_equal(cache_key_check(k, "key", &e), 0);
		cache_tag(k, v, t);
		if (!reg_tag_valid(t) || strlen(t) > CACHE_TAG_MAX)
			fail_msg("invalid tag '%s' for key '%s'", t, k);
		assert_true(cache_tag_is_cache(t));
	}
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_tag_no_collisions(void **state)
{
	enum { N = 4000 };
	char v[65], base[CACHE_KEY_MAX + 1], t[CACHE_TAG_MAX + 1];
	char **tags = xcalloc(N, sizeof(*tags));
	size_t n = 0, i;

	cache_version(P1, 1, v);
	/* near-identical keys: one byte changed, appended or dropped, at every
	 * position, including far beyond the readable part */
	memset(base, 'k', CACHE_KEY_MAX - 1);
	base[CACHE_KEY_MAX - 1] = '\0';
	cache_tag(base, v, t);
	tags[n++] = xstrdup(t);
	for (i = 0; i < CACHE_KEY_MAX - 1 && n + 3 < N; i += 2) {
		char k[CACHE_KEY_MAX + 1];

		strcpy(k, base);
		k[i] = 'j';
		cache_tag(k, v, t);
		tags[n++] = xstrdup(t);
		strcpy(k, base);
		k[i] = '/'; /* maps to '_' in the readable part, like ':' */
		cache_tag(k, v, t);
		tags[n++] = xstrdup(t);
		strcpy(k, base);
		k[i] = ':';
		cache_tag(k, v, t);
		tags[n++] = xstrdup(t);
	}
	{
		char k[CACHE_KEY_MAX + 1];

		strcpy(k, base);
		strcat(k, "k");
		cache_tag(k, v, t);
		tags[n++] = xstrdup(t);
		k[CACHE_KEY_MAX - 2] = '\0';
		cache_tag(k, v, t);
		tags[n++] = xstrdup(t);
	}
	qsort(tags, n, sizeof(*tags), str_cmp);
	for (i = 1; i < n; i++)
		if (!strcmp(tags[i - 1], tags[i]))
			fail_msg("two keys share tag %s", tags[i]);
	for (i = 0; i < n; i++)
		free(tags[i]);
	free(tags);
}

static void test_tag_prefix(void **state)
{
	char v[65], v2[65], k[CACHE_KEY_MAX + 1], t[CACHE_TAG_MAX + 1], p[CACHE_KEY_MAX + 1];
	int i;
	size_t len;

	cache_version(P1, 1, v);
	cache_version(P2, 2, v2);
	/* every prefix of every key finds the key's tag */
	for (i = 0; i < 300; i++) {
		random_key(k, 1 + rnd(CACHE_KEY_MAX));
		cache_tag(k, v, t);
		for (len = 0; len <= strlen(k); len++) {
			memcpy(p, k, len);
			p[len] = '\0';
			if (!cache_tag_may_match(t, p, v))
				fail_msg("prefix '%s' misses the tag of '%s'", p, k);
		}
		assert_false(cache_tag_may_match(t, "", v2));
		assert_true(cache_tag_may_match(t, "", NULL));
	}
	cache_tag("npm-linux-1", v, t);
	assert_false(cache_tag_may_match(t, "pip-", v));
	assert_false(cache_tag_may_match(t, "npm-linux-12", v));
	assert_false(cache_tag_may_match("latest", "", NULL));
}

static void test_time(void **state)
{
	char s[40];
	int64_t sec;
	long ns;

	cache_time_format(1767323045, 1, s);
	assert_string_equal(s, "2026-01-02T03:04:05.000000001Z");
	assert_int_equal(cache_time_parse(s, &sec, &ns), 0);
	assert_int_equal(sec, 1767323045);
	assert_int_equal(ns, 1);
	assert_int_equal(cache_time_parse("2026-01-02T03:04:05Z", &sec, &ns), 0);
	assert_int_equal(sec, 1767323045);
	assert_int_equal(ns, 0);
	assert_int_equal(cache_time_parse("2026-01-02T04:04:05.5+01:00", &sec, &ns), 0);
	assert_int_equal(sec, 1767323045);
	assert_int_equal(ns, 500000000);
	assert_int_equal(cache_time_parse("2026-01-02", &sec, &ns), -1);
	assert_int_equal(cache_time_parse("2026-13-02T03:04:05Z", &sec, &ns), -1);
	assert_int_equal(cache_time_parse("2026-01-02T03:04:05", &sec, &ns), -1);
	assert_int_equal(cache_time_parse("2026-01-02T03:04:05.Z", &sec, &ns), -1);
}

static void test_run_key(void **state)
{
	char *dir = tmpdir_new(), *f1 = xasprintf("%s/lock", dir);
	const char *files[] = {f1};
	const char *argv1[] = {"npm", "ci"}, *argv2[] = {"npm", "install"};
	const char *argv3[] = {"npm c", "i"}, *argv4[] = {"npm", "c i"};
	char *k1, *k2, *k3, *k4, *k5, *k6;
	struct err e = ERR_INIT;

	write_file(f1, "lock v1");
	assert_int_equal(cache_run_key("npm-", files, 1, argv1, 2, P1, 1, &k1, &e), 0);
	assert_int_equal(strncmp(k1, "npm-", 4), 0);
	assert_int_equal(strlen(k1), 4 + 64);
	assert_int_equal(cache_run_key("npm-", files, 1, argv2, 2, P1, 1, &k2, &e), 0);
	assert_string_not_equal(k1, k2);
	free(k2);
	assert_int_equal(cache_run_key("npm-", files, 1, argv1, 2, P2, 2, &k3, &e), 0);
	assert_string_not_equal(k1, k3);
	assert_int_equal(cache_run_key("npm-", files, 1, argv3, 2, P1, 1, &k4, &e), 0);
	assert_int_equal(cache_run_key("npm-", files, 1, argv4, 2, P1, 1, &k5, &e), 0);
	assert_string_not_equal(k4, k5);
	write_file(f1, "lock v2");
	assert_int_equal(cache_run_key("npm-", files, 1, argv1, 2, P1, 1, &k6, &e), 0);
	assert_string_not_equal(k1, k6);
	free(k6);
	write_file(f1, "lock v1");
	assert_int_equal(cache_run_key("npm-", files, 1, argv1, 2, P1, 1, &k6, &e), 0);
	assert_string_equal(k1, k6);
	free(f1);
	f1 = xasprintf("%s/missing", dir);
	files[0] = f1;
	assert_int_equal(cache_run_key("npm-", files, 1, argv1, 2, P1, 1, &k2, &e), ERR_NOTFOUND);
	assert_null(k2);
	assert_non_null(strstr(e.msg, "missing"));
	free(k1);
	free(k3);
	free(k4);
	free(k5);
	free(k6);
	free(f1);
	remove_tree(dir, &e);
	free(dir);
}

#define V64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_manifest_roundtrip(void **state)
{
	struct reg_desc layers[2];
	struct reg_kv la[2][1] = {{{"io.ctxpack.cache.path", "node_modules"}},
				  {{"io.ctxpack.cache.path", "~/.npm"}}};
	struct reg_kv an[] = {
		{CACHE_ANNOT_KEY, "odd \"key\" \\ ü ${{ x }}"},
		{REG_ANNOT_CREATED, "2026-01-02T03:04:05.000000007Z"},
		{CACHE_ANNOT_VERSION, V64},
	};
	struct buf out = BUF_INIT, list = BUF_INIT;
	struct cache_entry en;
	struct err e = ERR_INIT;
	int i;

	for (i = 0; i < 2; i++) {
		memset(&layers[i], 0, sizeof(layers[i]));
		layers[i].media_type = REG_MT_LAYER_ZSTD;
		memcpy(layers[i].digest, REG_EMPTY_DIGEST, sizeof(REG_EMPTY_DIGEST));
		layers[i].size = 100 + (uint64_t)i;
		layers[i].annotations = la[i];
		layers[i].nannotations = 1;
	}
	assert_int_equal(cache_manifest_build(&out, layers, 2, an, 3, &e), 0);
	/* keys sorted, compact */
	assert_int_equal(strncmp(out.data, "{\"annotations\":{\"io.ctxpack.cache.key\":", 39), 0);
	assert_non_null(strstr(out.data, "\"schemaVersion\":2}"));
	assert_int_equal(cache_entry_parse(&en, "t-tag", NULL, out.data, out.len, &e), 0);
	assert_string_equal(en.key, "odd \"key\" \\ ü ${{ x }}");
	assert_string_equal(en.version, V64);
	assert_int_equal(en.created_sec, 1767323045);
	assert_int_equal(en.created_nsec, 7);
	assert_int_equal(en.size, 201);
	assert_int_equal(en.m.nlayers, 2);
	cache_entry_release(&en);
	/* not a cache entry: another artifactType */
	{
		const char *other = "{\"schemaVersion\":2,\"mediaType\":\"" REG_MT_MANIFEST "\","
				    "\"artifactType\":\"application/x-other\",\"config\":{\"mediaType\":"
				    "\"" REG_MT_EMPTY "\",\"digest\":\"" REG_EMPTY_DIGEST "\",\"size\":2},"
				    "\"layers\":[]}";

		assert_int_equal(cache_entry_parse(&en, "t", NULL, other, strlen(other), &e),
				 ERR_CORRUPT);
		err_clear(&e);
	}
	cache_json_list(&list, P2, 2);
	assert_string_equal(list.data, "[\"node_modules\",\"~/.npm\"]");
	buf_release(&list);
	buf_release(&out);
}

/* An entry read back from a store is untrusted: what it says is checked as
 * user input is, and refused as corrupt when it is not valid. */
static void test_entry_untrusted(void **state)
{
	static const struct {
		const char *ann, *val;
		int layer;
		const char *why;
	} bad[] = {
		{CACHE_ANNOT_KEY, "k\ninjected=yes", 0, "key"},
		{CACHE_ANNOT_KEY, "k\rx", 0, "key"},
		{CACHE_ANNOT_KEY, "k\x1b[31mred", 0, "key"},
		{CACHE_ANNOT_KEY, "k\xc2\x9b" "31m", 0, "key"},  /* C1 CSI */
		{CACHE_ANNOT_KEY, "k\xff", 0, "JSON"},          /* not UTF-8: not JSON */
		{CACHE_ANNOT_KEY, "", 0, "key"},
		{CACHE_ANNOT_VERSION, "abc", 0, "version"},
		{CACHE_ANNOT_VERSION, V64 "\n", 0, "version"},
		{CACHE_ANNOT_PATH, "node_modules\nx", 1, "path"},
		{CACHE_ANNOT_PATH, "..", 1, "path"},
		{REG_ANNOT_TITLE, "t\n.tar.zst", 1, "title"},
		{CACHE_ANNOT_TAR_SIZE, "12\n", 1, "uncompressed"},
		{CACHE_ANNOT_ENTRIES, "-1", 1, "entries"},
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct reg_kv la[2] = {{CACHE_ANNOT_PATH, "node_modules"}, {NULL, NULL}};
		struct reg_kv an[2] = {{CACHE_ANNOT_KEY, "good-key"}, {NULL, NULL}};
		size_t nla = 1, nan = 1;
		struct reg_desc l;
		struct buf out = BUF_INIT;
		struct cache_entry en;
		struct err e = ERR_INIT;

		if (bad[i].layer) {
			if (!strcmp(bad[i].ann, CACHE_ANNOT_PATH))
				la[0].value = (char *)bad[i].val;
			else
				la[nla++] = (struct reg_kv){(char *)bad[i].ann, (char *)bad[i].val};
		} else if (!strcmp(bad[i].ann, CACHE_ANNOT_KEY)) {
			an[0].value = (char *)bad[i].val;
		} else {
			an[nan++] = (struct reg_kv){(char *)bad[i].ann, (char *)bad[i].val};
		}
		memset(&l, 0, sizeof(l));
		l.media_type = REG_MT_LAYER_ZSTD;
		memcpy(l.digest, REG_EMPTY_DIGEST, sizeof(REG_EMPTY_DIGEST));
		l.size = 10;
		l.annotations = la;
		l.nannotations = nla;
		assert_int_equal(cache_manifest_build(&out, &l, 1, an, nan, &e), 0);
		if (cache_entry_parse(&en, "t", NULL, out.data, out.len, &e) != ERR_CORRUPT)
			fail_msg("case %zu (%s) was not refused", i, bad[i].why);
		if (!strstr(e.msg, bad[i].why))
			fail_msg("case %zu: '%s' does not say %s", i, e.msg, bad[i].why);
		buf_release(&out);
	}
	/* a time that does not parse is no time (not an error) */
	{
		struct reg_kv la[1] = {{CACHE_ANNOT_PATH, "node_modules"}};
		struct reg_kv an[2] = {{CACHE_ANNOT_KEY, "good-key"},
				       {REG_ANNOT_CREATED, "2026-01-02\nT03:04:05Z"}};
		struct reg_desc l;
		struct buf out = BUF_INIT;
		struct cache_entry en;
		struct err e = ERR_INIT;

		memset(&l, 0, sizeof(l));
		l.media_type = REG_MT_LAYER_ZSTD;
		memcpy(l.digest, REG_EMPTY_DIGEST, sizeof(REG_EMPTY_DIGEST));
		l.annotations = la;
		l.nannotations = 1;
		assert_int_equal(cache_manifest_build(&out, &l, 1, an, 2, &e), 0);
		assert_int_equal(cache_entry_parse(&en, "t", NULL, out.data, out.len, &e), 0);
		assert_null(en.created);
		assert_int_equal(en.created_sec, 0);
		cache_entry_release(&en);
		buf_release(&out);
	}
	/* the same rule for keys given by the user */
	{
		struct err e = ERR_INIT;

		assert_int_equal(cache_key_check("a\xc2\x85" "b", "key", &e), ERR_USAGE);
		err_clear(&e);
		assert_int_equal(cache_key_check("caf\xc3\xa9-\xc2\xa0ok", "key", &e), 0);
	}
}

static void test_prune_select(void **state)
{
	struct cache_entry v[5];
	struct cache_prune_opts o;
	int del[5], i;
	int64_t now = 1000000;
	const char *keys[] = {"npm-5", "npm-4", "pip-3", "npm-2", "npm-1"};

	memset(v, 0, sizeof(v));
	for (i = 0; i < 5; i++) {
		v[i].key = (char *)keys[i];
		v[i].created_sec = now - (i + 1) * 3600; /* newest first */
	}
	memset(&o, 0, sizeof(o));
	o.has_keep = 1;
	o.keep = 2;
	assert_int_equal(cache_prune_select(v, 5, &o, now, del), 3);
	assert_int_equal(del[0] + del[1], 0);
	assert_int_equal(del[2] + del[3] + del[4], 3);
	o.prefix = "npm-";
	assert_int_equal(cache_prune_select(v, 5, &o, now, del), 2);
	assert_int_equal(del[2], 0);
	assert_int_equal(del[3] + del[4], 2);
	memset(&o, 0, sizeof(o));
	o.has_older = 1;
	o.older_than = 3 * 3600 - 1; /* entries 3, 4, 5 hours old */
	assert_int_equal(cache_prune_select(v, 5, &o, now, del), 3);
	o.has_keep = 1;
	o.keep = 4;
	assert_int_equal(cache_prune_select(v, 5, &o, now, del), 1);
	assert_int_equal(del[4], 1);
	o.has_keep = 0;
	o.older_than = UINT64_MAX;
	assert_int_equal(cache_prune_select(v, 5, &o, now, del), 0);
	/* ties are broken by key, then tag */
	v[0].created_sec = v[1].created_sec;
	v[0].tag = (char *)"b";
	v[1].tag = (char *)"a";
	assert_true(cache_entry_newer(&v[0], &v[1]));
}

/* save, look up (exact, prefix, miss), restore, list, delete, gc */
static void test_library_roundtrip(void **state)
{
	char *dir = tmpdir_new(), *store = xasprintf("oci:%s/store", dir), *src, *p;
	const char *paths[1];
	const char *pre[] = {"nomatch-", "deps-"};
	struct cache_opts co;
	struct cache *c;
	struct cache_save_result sr;
	struct cache_match m;
	struct cache_restore_result rr;
	struct cache_entry *v;
	struct err e = ERR_INIT;
	struct buf b = BUF_INIT;
	size_t n;
	uint64_t freed;
	char cwd[4096];

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(dir), 0);
	src = xasprintf("%s/dep", dir);
	assert_int_equal(mkdir(src, 0755), 0);
	p = xasprintf("%s/f", src);
	write_file(p, "one");
	paths[0] = "dep";

	cache_opts_init(&co);
	co.store = store;
	co.tmp_dir = dir;
	assert_int_equal(cache_open(&c, &co, &e), 0);
	assert_int_equal(cache_save(c, "deps-1", paths, 1, 0, &sr, &e), 0);
	assert_false(sr.existed);
	assert_int_equal(sr.layers, 1);
	assert_true(sr.sent > 0);
	assert_int_equal(cache_save(c, "deps-1", paths, 1, 0, &sr, &e), 0);
	assert_true(sr.existed);
	write_file(p, "two");
	assert_int_equal(cache_save(c, "deps-2", paths, 1, 0, &sr, &e), 0);

	assert_int_equal(cache_lookup(c, "deps-1", NULL, 0, paths, 1, &m, &e), 0);
	assert_int_equal(m.result, CACHE_HIT);
	assert_int_equal(cache_restore(c, &m.entry, paths, 1, &rr, &e), 0);
	assert_int_equal(rr.layers, 1);
	cache_match_release(&m);
	assert_int_equal(buf_read_file(&b, p, 0, &e), 0);
	assert_string_equal(b.data, "one");

	assert_int_equal(cache_lookup(c, "deps-9", pre, 2, paths, 1, &m, &e), 0);
	assert_int_equal(m.result, CACHE_PARTIAL);
	assert_string_equal(m.entry.key, "deps-2");
	assert_int_equal(cache_restore(c, &m.entry, paths, 1, &rr, &e), 0);
	cache_match_release(&m);
	buf_reset(&b);
	assert_int_equal(buf_read_file(&b, p, 0, &e), 0);
	assert_string_equal(b.data, "two");

	assert_int_equal(cache_lookup(c, "other", pre, 1, paths, 1, &m, &e), 0);
	assert_int_equal(m.result, CACHE_MISS);

	assert_int_equal(cache_list(c, &v, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].key, "deps-2");
	assert_int_equal(cache_delete(c, &v[1], &e), 0);
	assert_int_equal(cache_gc(c, 0, &freed, &e), 0);
	assert_true(freed > 0);
	cache_entries_free(v, n);
	assert_int_equal(cache_lookup(c, "deps-1", NULL, 0, paths, 1, &m, &e), 0);
	assert_int_equal(m.result, CACHE_MISS);
	cache_free(c);

	assert_int_equal(chdir(cwd), 0);
	buf_release(&b);
	remove_tree(dir, &e);
	free(p);
	free(src);
	free(store);
	free(dir);
}

/* ---- issue 17: run records, events, stats, why, update ---- */

static void test_pct(void **state)
{
	char raw[64], *enc, *dec;
	int round, i;

	for (round = 0; round < 2000; round++) {
		int n = (int)rnd(40);

		for (i = 0; i < n; i++)
			raw[i] = (char)(1 + rnd(255));
		raw[n] = '\0';
		enc = cache_pct_encode(raw);
		/* no separator and no control character in the encoding */
		for (i = 0; enc[i]; i++)
			assert_true((unsigned char)enc[i] > 0x20 && enc[i] != 0x7f);
		assert_int_equal(cache_pct_decode(enc, strlen(enc), &dec), 0);
		assert_string_equal(dec, raw);
		free(enc);
		free(dec);
	}
	enc = cache_pct_encode("a b%c\n-");
	assert_string_equal(enc, "a%20b%25c%0A-");
	free(enc);
	/* strict: lower-case hex, %00, an encoded byte that needs none, a raw
	 * space or control character, a cut escape */
	assert_int_equal(cache_pct_decode("a%0a", 4, &dec), -1);
	assert_int_equal(cache_pct_decode("a%00", 4, &dec), -1);
	assert_int_equal(cache_pct_decode("%41", 3, &dec), -1);
	assert_int_equal(cache_pct_decode("a b", 3, &dec), -1);
	assert_int_equal(cache_pct_decode("a\tb", 3, &dec), -1);
	assert_int_equal(cache_pct_decode("a%2", 3, &dec), -1);
	assert_int_equal(cache_pct_decode("a%", 2, &dec), -1);
	assert_null(dec);
}

static void ev_init(struct cache_event *ev, int op, int result, const char *prefix,
		    const char *key, const char *matched)
{
	memset(ev, 0, sizeof(*ev));
	memcpy(ev->id, "0123456789abcdef", 17);
	ev->sec = 1767323045;
	ev->nsec = 123456789;
	ev->op = op;
	ev->result = result;
	ev->prefix = xstrdup(prefix);
	ev->key = xstrdup(key);
	ev->matched = matched ? xstrdup(matched) : NULL;
}

static void ev_file(struct cache_event *ev, const char *path, char hexc)
{
	ev->files = xreallocarray(ev->files, ev->nfiles + 1, sizeof(*ev->files));
	ev->files[ev->nfiles].path = xstrdup(path);
	memset(ev->files[ev->nfiles].sha256, hexc, 64);
	ev->files[ev->nfiles].sha256[64] = '\0';
	ev->nfiles++;
}

static void test_event_roundtrip(void **state)
{
	struct cache_event ev, back;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	size_t i;

	ev_init(&ev, CACHE_OP_RUN, CACHE_PARTIAL, "npm linux-", "npm linux-k2", "npm linux-k1");
	memcpy(ev.version, V64, 65);
	memcpy(ev.command, V64, 65);
	ev_file(&ev, "package-lock.json", 'a');
	ev_file(&ev, "odd name\n%.json", 'b');
	cache_event_format(&ev, &b);
	assert_null(memchr(b.data, '\n', b.len));
	assert_int_equal(cache_event_parse(&back, b.data, b.len, &e), 0);
	assert_string_equal(back.id, ev.id);
	assert_int_equal(back.sec, ev.sec);
	assert_int_equal(back.nsec, ev.nsec);
	assert_int_equal(back.op, CACHE_OP_RUN);
	assert_int_equal(back.result, CACHE_PARTIAL);
	assert_string_equal(back.prefix, "npm linux-");
	assert_string_equal(back.key, "npm linux-k2");
	assert_string_equal(back.matched, "npm linux-k1");
	assert_string_equal(back.version, V64);
	assert_string_equal(back.command, V64);
	assert_int_equal(back.nfiles, 2);
	assert_string_equal(back.files[1].path, "odd name\n%.json");
	assert_int_equal(back.files[1].sha256[0], 'b');
	cache_event_release(&back);
	cache_event_release(&ev);

	/* a restore: no version known, no files; a key that is "-" */
	ev_init(&ev, CACHE_OP_RESTORE, CACHE_MISS, "", "-", NULL);
	cache_event_format(&ev, &b);
	assert_int_equal(cache_event_parse(&back, b.data, b.len, &e), 0);
	assert_string_equal(back.key, "-");
	assert_string_equal(back.prefix, "");
	assert_null(back.matched);
	assert_string_equal(back.version, "");
	cache_event_release(&back);
	cache_event_release(&ev);

	/* too many key file bytes: the line says they are omitted */
	ev_init(&ev, CACHE_OP_RUN, CACHE_MISS, "p-", "p-k", NULL);
	for (i = 0; i < 200; i++) {
		char name[200];

		memset(name, 'x', sizeof(name) - 1);
		name[sizeof(name) - 1] = '\0';
		ev_file(&ev, name, 'c');
	}
	cache_event_format(&ev, &b);
	assert_true(b.len <= CACHE_EVENT_MAX);
	assert_int_equal(cache_event_parse(&back, b.data, b.len, &e), 0);
	assert_true(back.files_omitted);
	assert_int_equal(back.nfiles, 0);
	cache_event_release(&back);
	cache_event_release(&ev);
	buf_release(&b);
}

/* A log line is untrusted: anything that is not exactly an event is
 * refused, and nothing with a control character gets through. */
static void test_event_untrusted(void **state)
{
	static const char *const bad[] = {
		"",
		"v2 0123456789abcdef 2026-01-02T03:04:05Z run miss p- p-k - - -",
		"v1 0123456789ABCDEF 2026-01-02T03:04:05Z run miss p- p-k - - -",
		"v1 0123456789abcdef yesterday run miss p- p-k - - -",
		"v1 0123456789abcdef 2026-01-02T03:04:05Z walk miss p- p-k - - -",
		"v1 0123456789abcdef 2026-01-02T03:04:05Z run maybe p- p-k - - -",
		"v1 0123456789abcdef 2026-01-02T03:04:05Z run miss p- p%0Ak - - -",
		"v1 0123456789abcdef 2026-01-02T03:04:05Z run miss p%1B[31m p-k - - -",
		"v1 0123456789abcdef 2026-01-02T03:04:05Z run miss p- - - - -",
		"v1 0123456789abcdef 2026-01-02T03:04:05Z run miss p- p-k p-j - -",
		"v1 0123456789abcdef 2026-01-02T03:04:05Z run hit p- p-k - - -",
		"v1 0123456789abcdef 2026-01-02T03:04:05Z run hit p- p-k p-j - -",
		"v1 0123456789abcdef 2026-01-02T03:04:05Z run miss p- p-k - abc -",
		"v1 0123456789abcdef 2026-01-02T03:04:05Z run miss p- p-k - - - x",
		"v1 0123456789abcdef 2026-01-02T03:04:05Z run miss p- p-k - - - " V64 ":",
		"v1 0123456789abcdef 2026-01-02T03:04:05Z run miss p- p-k - - - ... " V64 ":f",
		"v1 0123456789abcdef 2026-01-02T03:04:05Z run miss p- p-k - - -  ",
		"v1  0123456789abcdef 2026-01-02T03:04:05Z run miss p- p-k - - -",
		" v1 0123456789abcdef 2026-01-02T03:04:05Z run miss p- p-k - - -",
		"v1 0123456789abcdef 2026-01-02T03:04:05Z run miss p- p-k - - - \n",
		"v1 0123456789abcdef 2026-01-02T03:04:05Z run miss p- p-k - -",
	};
	const char *good = "v1 0123456789abcdef 2026-01-02T03:04:05Z run miss p- p-k - - - "
			   V64 ":a%0Ab";
	struct cache_event ev;
	struct err e = ERR_INIT;
	size_t i;

	assert_int_equal(cache_event_parse(&ev, good, strlen(good), &e), 0);
	assert_string_equal(ev.files[0].path, "a\nb");
	cache_event_release(&ev);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (cache_event_parse(&ev, bad[i], strlen(bad[i]), &e) != ERR_CORRUPT)
			fail_msg("line %zu was taken: '%s'", i, bad[i]);
		err_clear(&e);
	}
}

static void test_event_tag(void **state)
{
	struct cache_event ev;
	struct cache_event_tag t;
	char tag[CACHE_TAG_MAX + 1], ph[13], kh[13];

	ev_init(&ev, CACHE_OP_RUN, CACHE_PARTIAL, "npm-", "npm-k", "npm-j");
	cache_event_tag(&ev, tag);
	assert_true(reg_tag_valid(tag));
	assert_false(cache_tag_is_cache(tag));
	assert_false(cache_tag_may_match(tag, "", NULL));
	assert_int_equal(cache_event_tag_parse(tag, &t), 0);
	assert_int_equal(t.ms, 1767323045123);
	assert_int_equal(t.op, CACHE_OP_RUN);
	assert_int_equal(t.result, CACHE_PARTIAL);
	cache_event_hash12("npm-", ph);
	cache_event_hash12("npm-k", kh);
	assert_string_equal(t.prefix_hash, ph);
	assert_string_equal(t.key_hash, kh);
	/* the time comes first and has a fixed width: tags sort by time */
	{
		char later[CACHE_TAG_MAX + 1];

		ev.sec += 1;
		cache_event_tag(&ev, later);
		assert_true(strcmp(tag, later) < 0);
	}
	cache_event_release(&ev);
	assert_int_equal(cache_event_tag_parse("ctxpack-stats.1767323045123.up.0123456789ab."
					       "0123456789ab.0123456", &t), -1);
	assert_int_equal(cache_event_tag_parse("ctxpack-stats.1767323045123.xp.0123456789ab."
					       "0123456789ab.01234567", &t), -1);
	assert_int_equal(cache_event_tag_parse("ctxpack-stats.176732304512x.up.0123456789ab."
					       "0123456789ab.01234567", &t), -1);
	assert_int_equal(cache_event_tag_parse("npm-k-0123456789abcdef0123456789abcdef", &t), -1);
	assert_int_equal(cache_event_tag_parse("ctxpack-stats.1767323045123.up.0123456789ab."
					       "0123456789ab.01234567", &t), 0);
}

static void test_stats_add(void **state)
{
	struct cache_stats st;

	memset(&st, 0, sizeof(st));
	cache_stats_add(&st, "pnpm-", CACHE_HIT, 10, 0);
	cache_stats_add(&st, "npm-", CACHE_MISS, 20, 0);
	cache_stats_add(&st, "pnpm-", CACHE_PARTIAL, 30, 5);
	cache_stats_add(&st, "pnpm-", CACHE_HIT, 5, 0);
	cache_stats_add(&st, "", CACHE_HIT, 1, 0);
	assert_int_equal(st.n, 3);
	assert_int_equal(st.events, 5);
	assert_string_equal(st.rows[0].prefix, "");
	assert_string_equal(st.rows[1].prefix, "npm-");
	assert_string_equal(st.rows[2].prefix, "pnpm-");
	assert_int_equal(st.rows[2].events, 3);
	assert_int_equal(st.rows[2].hits, 2);
	assert_int_equal(st.rows[2].partial, 1);
	assert_int_equal(st.rows[2].misses, 0);
	assert_int_equal(st.rows[2].last_sec, 30);
	assert_int_equal(st.rows[2].last_nsec, 5);
	assert_int_equal(st.rows[1].misses, 1);
	cache_stats_release(&st);
	assert_string_equal(cache_event_prefix("npm-linux-abc", (const char *[]){"pip-", "npm-"}, 2),
			    "npm-");
	assert_string_equal(cache_event_prefix("npm-linux-abc", NULL, 0), "npm-linux-abc");
}

static struct cache_keyfile kf(const char *path, char c)
{
	struct cache_keyfile f;

	f.path = (char *)path;
	memset(f.sha256, c, 64);
	f.sha256[64] = '\0';
	return f;
}

static void test_why_diff(void **state)
{
	struct cache_keyfile was[] = {kf("uv.lock", 'a'), kf("pyproject.toml", 'b'),
				      kf("old.txt", 'c')};
	struct cache_keyfile now[] = {kf("uv.lock", 'd'), kf("pyproject.toml", 'b'),
				      kf(".python-version", 'e')};
	struct cache_keyfile swapped[] = {kf("pyproject.toml", 'b'), kf("uv.lock", 'a'),
					  kf("old.txt", 'c')};
	struct cache_keyfile twice[] = {kf("a", '1'), kf("a", '2')};
	struct cache_keyfile twice2[] = {kf("a", '1'), kf("a", '3')};
	struct cache_why w;

	cache_why_diff(was, 3, now, 3, &w);
	assert_int_equal(w.n, 3);
	assert_int_equal(w.items[0].kind, CACHE_WHY_CHANGED);
	assert_string_equal(w.items[0].path, "uv.lock");
	assert_int_equal(w.items[0].was[0], 'a');
	assert_int_equal(w.items[0].now[0], 'd');
	assert_int_equal(w.items[1].kind, CACHE_WHY_ADDED);
	assert_string_equal(w.items[1].path, ".python-version");
	assert_null(w.items[1].was);
	assert_int_equal(w.items[2].kind, CACHE_WHY_REMOVED);
	assert_string_equal(w.items[2].path, "old.txt");
	assert_null(w.items[2].now);
	assert_false(w.order_changed);
	cache_why_release(&w);
	cache_why_diff(was, 3, was, 3, &w);
	assert_int_equal(w.n, 0);
	assert_false(w.order_changed);
	cache_why_release(&w);
	cache_why_diff(was, 3, swapped, 3, &w);
	assert_int_equal(w.n, 0);
	assert_true(w.order_changed);
	cache_why_release(&w);
	/* a file given twice: matched in turn */
	cache_why_diff(twice, 2, twice2, 2, &w);
	assert_int_equal(w.n, 1);
	assert_int_equal(w.items[0].kind, CACHE_WHY_CHANGED);
	assert_int_equal(w.items[0].was[0], '2');
	cache_why_release(&w);
	cache_why_diff(NULL, 0, was, 1, &w);
	assert_int_equal(w.n, 1);
	assert_int_equal(w.items[0].kind, CACHE_WHY_ADDED);
	cache_why_release(&w);
}

static void test_why_pick(void **state)
{
	struct cache_entry v[4];
	const char *keys[] = {"p-new", "p-miss", "p-warm", "p-old"};
	int i;

	memset(v, 0, sizeof(v));
	for (i = 0; i < 4; i++) {
		v[i].key = (char *)keys[i];
		v[i].created_sec = 1000 - i * 100; /* newest first */
	}
	/* the entry the run warm-started from */
	assert_int_equal(cache_why_pick(v, 4, "p-miss", "p-warm", 950), 2);
	/* else the newest from before the miss that is not the key itself */
	assert_int_equal(cache_why_pick(v, 4, "p-miss", NULL, 950), 2);
	assert_int_equal(cache_why_pick(v, 4, "p-miss", NULL, 0), 0);
	assert_int_equal(cache_why_pick(v, 4, "p-new", NULL, 0), 1);
	assert_int_equal(cache_why_pick(v, 4, NULL, NULL, 0), 0);
	/* gone since: the newest before */
	assert_int_equal(cache_why_pick(v, 4, "p-miss", "p-gone", 950), 2);
	assert_int_equal(cache_why_pick(v, 4, "p-miss", NULL, 100), -1);
	assert_int_equal(cache_why_pick(v, 0, "p-miss", NULL, 0), -1);
}

/* What a run records of its key goes into the entry and comes back; the
 * key is the one cache_run_key gives (entries saved before stay hits). */
static void test_run_record(void **state)
{
	char *dir = tmpdir_new(), *f1 = xasprintf("%s/lock", dir), *f2 = xasprintf("%s/a b", dir);
	const char *files[] = {f1, f2};
	const char *argv1[] = {"npm", "ci"};
	struct cache_run_inputs in;
	struct cache_run_record rec;
	struct reg_kv *an = NULL;
	size_t nan = 0, i;
	struct reg_desc l;
	struct reg_kv la[1] = {{CACHE_ANNOT_PATH, "node_modules"}};
	struct buf out = BUF_INIT;
	struct cache_entry en;
	struct err e = ERR_INIT;
	char *key;

	write_file(f1, "lock v1");
	write_file(f2, "x");
	assert_int_equal(cache_run_inputs("npm-", files, 2, argv1, 2, P1, 1, &in, &e), 0);
	assert_int_equal(cache_run_key("npm-", files, 2, argv1, 2, P1, 1, &key, &e), 0);
	assert_string_equal(in.key, key);
	free(key);
	assert_int_equal(in.nfiles, 2);
	assert_string_equal(in.files[1].path, f2);
	/* sha256("x") */
	assert_string_equal(in.files[1].sha256,
			    "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881");
	cache_run_annotations(&in, &an, &nan);
	an = xreallocarray(an, nan + 1, sizeof(*an));
	an[nan].key = xstrdup(CACHE_ANNOT_KEY);
	an[nan++].value = xstrdup(in.key);
	memset(&l, 0, sizeof(l));
	l.media_type = REG_MT_LAYER_ZSTD;
	memcpy(l.digest, REG_EMPTY_DIGEST, sizeof(REG_EMPTY_DIGEST));
	l.annotations = la;
	l.nannotations = 1;
	assert_int_equal(cache_manifest_build(&out, &l, 1, an, nan, &e), 0);
	assert_int_equal(cache_entry_parse(&en, "t", NULL, out.data, out.len, &e), 0);
	assert_int_equal(cache_entry_run_record(&en, &rec, &e), 0);
	assert_true(rec.recorded);
	assert_string_equal(rec.prefix, "npm-");
	assert_string_equal(rec.command, in.command);
	assert_int_equal(rec.nfiles, 2);
	for (i = 0; i < 2; i++) {
		assert_string_equal(rec.files[i].path, in.files[i].path);
		assert_string_equal(rec.files[i].sha256, in.files[i].sha256);
	}
	cache_run_record_release(&rec);
	cache_entry_release(&en);
	/* an entry of cache save: nothing recorded, not an error */
	assert_int_equal(cache_manifest_build(&out, &l, 1, an + nan - 1, 1, &e), 0);
	assert_int_equal(cache_entry_parse(&en, "t", NULL, out.data, out.len, &e), 0);
	assert_int_equal(cache_entry_run_record(&en, &rec, &e), 0);
	assert_false(rec.recorded);
	cache_run_record_release(&rec);
	cache_entry_release(&en);
	/* damaged records are refused */
	{
		static const struct {
			const char *k, *v;
		} bad[] = {
			{CACHE_ANNOT_RUN_FILES, "3"},
			{CACHE_ANNOT_RUN_FILES, "99999"},
			{CACHE_ANNOT_RUN_FILE "0", "sha256:xyz lock"},
			{CACHE_ANNOT_RUN_FILE "0", "sha256:" V64 " a\nb"},
			{CACHE_ANNOT_RUN_FILE "0", "sha256:" V64 " "},
			{CACHE_ANNOT_RUN_COMMAND, "abc"},
			{CACHE_ANNOT_RUN_PREFIX, "p\x1b"},
		};

		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			struct reg_kv b2[8];
			size_t k, nb = 0;

			for (k = 0; k < nan; k++) {
				if (strcmp(an[k].key, bad[i].k))
					b2[nb++] = an[k];
			}
			b2[nb++] = (struct reg_kv){(char *)bad[i].k, (char *)bad[i].v};
			assert_int_equal(cache_manifest_build(&out, &l, 1, b2, nb, &e), 0);
			assert_int_equal(cache_entry_parse(&en, "t", NULL, out.data, out.len, &e), 0);
			if (cache_entry_run_record(&en, &rec, &e) != ERR_CORRUPT)
				fail_msg("record case %zu was taken", i);
			err_clear(&e);
			cache_entry_release(&en);
		}
	}
	for (i = 0; i < nan; i++) {
		free(an[i].key);
		free(an[i].value);
	}
	free(an);
	buf_release(&out);
	cache_run_inputs_release(&in);
	remove_tree(dir, &e);
	free(f1);
	free(f2);
	free(dir);
}

/* One manifest under two tags is never pruned while the other stays. */
static void test_prune_shared_digest(void **state)
{
	struct cache_entry v[3];
	struct cache_prune_opts o;
	int del[3];

	memset(v, 0, sizeof(v));
	v[0].key = (char *)"k";
	v[1].key = (char *)"k";
	v[2].key = (char *)"k";
	strcpy(v[0].digest, "sha256:aa");
	strcpy(v[1].digest, "sha256:aa");
	strcpy(v[2].digest, "sha256:bb");
	memset(&o, 0, sizeof(o));
	o.has_keep = 1;
	o.keep = 1;
	assert_int_equal(cache_prune_select(v, 3, &o, 0, del), 1);
	assert_int_equal(del[0], 0);
	assert_int_equal(del[1], 0);
	assert_int_equal(del[2], 1);
}

/* save --update on a layout: a new entry, the old one kept and listed
 * as replaced, restores take the new one, the same content stores
 * nothing. */
static void test_library_update(void **state)
{
	char *dir = tmpdir_new(), *store = xasprintf("oci:%s/store", dir), *src, *p;
	const char *paths[1] = {"dep"};
	const char *pre[] = {"deps-"};
	struct cache_opts co;
	struct cache *c;
	struct cache_save_opts so;
	struct cache_save_result sr;
	struct cache_match m;
	struct cache_entry *v;
	struct err e = ERR_INIT;
	struct buf b = BUF_INIT;
	char cwd[4096], first[REG_DIGEST_SIZE], tag[CACHE_TAG_MAX + 1];
	char ver[CACHE_VERSION_LEN + 1];
	size_t n;

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(dir), 0);
	src = xasprintf("%s/dep", dir);
	assert_int_equal(mkdir(src, 0755), 0);
	p = xasprintf("%s/f", src);
	write_file(p, "one");
	cache_opts_init(&co);
	co.store = store;
	co.tmp_dir = dir;
	assert_int_equal(cache_open(&c, &co, &e), 0);
	memset(&so, 0, sizeof(so));
	so.update = 1;
	/* no entry yet: a plain save */
	assert_int_equal(cache_save_opt(c, "deps-1", paths, 1, &so, &sr, &e), 0);
	assert_false(sr.existed);
	assert_false(sr.updated);
	memcpy(first, sr.digest, sizeof(first));
	/* the same content: nothing stored */
	assert_int_equal(cache_save_opt(c, "deps-1", paths, 1, &so, &sr, &e), 0);
	assert_true(sr.unchanged);
	assert_string_equal(sr.digest, first);
	/* without update, a changed tree is still a no-op */
	write_file(p, "two");
	assert_int_equal(cache_save(c, "deps-1", paths, 1, 0, &sr, &e), 0);
	assert_true(sr.existed);
	assert_false(sr.unchanged);
	assert_int_equal(cache_save_opt(c, "deps-1", paths, 1, &so, &sr, &e), 0);
	assert_true(sr.updated);
	assert_false(sr.existed);
	cache_version(paths, 1, ver);
	cache_tag_replaced("deps-1", ver, first, tag);
	assert_string_equal(sr.old_tag, tag);
	assert_true(cache_tag_is_cache(tag));
	assert_true(cache_tag_may_match(tag, "deps-", ver));
	/* force and update do not go together */
	so.force = 1;
	assert_int_equal(cache_save_opt(c, "deps-1", paths, 1, &so, &sr, &e), ERR_USAGE);
	err_clear(&e);
	so.force = 0;

	assert_int_equal(cache_list(c, &v, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_true(cache_entry_current(&v[0]));
	assert_false(cache_entry_current(&v[1]));
	assert_string_equal(v[1].digest, first);
	cache_entries_free(v, n);
	assert_int_equal(cache_list_prefix(c, "deps-", ver, &v, &n, &e), 0);
	assert_int_equal(n, 2);
	cache_entries_free(v, n);
	assert_int_equal(cache_list_prefix(c, "other-", ver, &v, &n, &e), 0);
	assert_int_equal(n, 0);
	cache_entries_free(v, n);

	write_file(p, "changed locally");
	assert_int_equal(cache_lookup(c, "deps-1", NULL, 0, paths, 1, &m, &e), 0);
	assert_int_equal(m.result, CACHE_HIT);
	assert_true(cache_entry_current(&m.entry));
	assert_int_equal(cache_restore(c, &m.entry, paths, 1, NULL, &e), 0);
	cache_match_release(&m);
	assert_int_equal(buf_read_file(&b, p, 0, &e), 0);
	assert_string_equal(b.data, "two");
	/* a prefix lookup for another key finds the newest of them */
	assert_int_equal(cache_lookup(c, "deps-2", pre, 1, paths, 1, &m, &e), 0);
	assert_int_equal(m.result, CACHE_PARTIAL);
	assert_true(cache_entry_current(&m.entry));
	cache_match_release(&m);
	cache_free(c);
	assert_int_equal(chdir(cwd), 0);
	buf_release(&b);
	remove_tree(dir, &e);
	free(p);
	free(src);
	free(store);
	free(dir);
}

/* The layout's log: two processes appending at once lose nothing and
 * never interleave; the trim keeps the newest lines. */
static void test_layout_log(void **state)
{
	char *dir = tmpdir_new(), *spec = xasprintf("oci:%s/store", dir);
	struct reg_store *s;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	size_t lines = 0, i;
	char *q;
	pid_t pid[2];
	int k, st;

	for (k = 0; k < 2; k++) {
		pid[k] = fork();
		assert_true(pid[k] >= 0);
		if (!pid[k]) {
			struct err e2 = ERR_INIT;
			char line[128];

			if (reg_store_open(&s, spec, NULL, &e2))
				_exit(1);
			for (i = 0; i < 300; i++) {
				snprintf(line, sizeof(line), "writer %d line %03zu %s", k, i,
					 "padding-padding-padding-padding-padding");
				if (reg_store_log_append(s, "t.log", line, strlen(line), 100000,
							 1 << 30, &e2))
					_exit(2);
			}
			reg_store_free(s);
			_exit(0);
		}
	}
	for (k = 0; k < 2; k++) {
		assert_int_equal(waitpid(pid[k], &st, 0), pid[k]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	assert_int_equal(reg_store_open(&s, spec, NULL, &e), 0);
	assert_int_equal(reg_store_log_read(s, "t.log", 1 << 30, &b, &e), 0);
	for (q = b.data; (q = memchr(q, '\n', b.len - (size_t)(q - b.data))); q++)
		lines++;
	assert_int_equal(lines, 600);
	for (k = 0; k < 2; k++) {
		for (i = 0; i < 300; i += 37) {
			char want[64];

			snprintf(want, sizeof(want), "writer %d line %03zu padding", k, i);
			assert_non_null(strstr(b.data, want));
		}
	}
	/* past max_bytes: the newest lines, at most keep of them */
	assert_int_equal(reg_store_log_append(s, "t.log", "last", 4, 10, 2048, &e), 0);
	assert_int_equal(reg_store_log_read(s, "t.log", 1 << 30, &b, &e), 0);
	lines = 0;
	for (q = b.data; (q = memchr(q, '\n', b.len - (size_t)(q - b.data))); q++)
		lines++;
	assert_int_equal(lines, 10);
	assert_true(b.len <= 1024);
	assert_int_equal(strcmp(b.data + b.len - 5, "last\n"), 0);
	/* a read of the tail starts at a line */
	assert_int_equal(reg_store_log_read(s, "t.log", 30, &b, &e), 0);
	assert_string_equal(b.data, "last\n");
	/* bad names; a missing log is empty */
	assert_int_equal(reg_store_log_append(s, "../x", "a", 1, 10, 2048, &e), ERR_USAGE);
	err_clear(&e);
	assert_int_equal(reg_store_log_append(s, "t.log", "a\nb", 3, 10, 2048, &e), ERR_USAGE);
	err_clear(&e);
	assert_int_equal(reg_store_log_read(s, "none.log", 100, &b, &e), 0);
	assert_int_equal(b.len, 0);
	reg_store_free(s);
	buf_release(&b);
	remove_tree(dir, &e);
	free(spec);
	free(dir);
}

/* Events through the cache on a layout: counted per prefix, the newest
 * CTXPACK_STATS_KEEP only, the last miss of a key found. */
static void test_stats_layout(void **state)
{
	char *dir = tmpdir_new(), *store = xasprintf("oci:%s/store", dir);
	struct cache_opts co;
	struct cache *c;
	struct cache_event ev;
	struct cache_stats st;
	struct err e = ERR_INIT;
	int i;

	cache_opts_init(&co);
	co.store = store;
	co.tmp_dir = dir;
	assert_int_equal(cache_open(&c, &co, &e), 0);
	/* no log: no events */
	assert_int_equal(cache_stats_read(c, NULL, &st, &e), 0);
	assert_int_equal(st.events, 0);
	cache_stats_release(&st);
	assert_int_equal(cache_event_last_miss(c, "npm-k1", &ev, &e), 0);
	for (i = 0; i < 6; i++) {
		ev_init(&ev, i < 3 ? CACHE_OP_RUN : CACHE_OP_RESTORE,
			i == 0 ? CACHE_MISS : i == 1 ? CACHE_PARTIAL : CACHE_HIT,
			i < 3 ? "npm-" : "pip-", i == 1 ? "npm-k1" : i < 3 ? "npm-k2" : "pip-k",
			i == 0 ? NULL : i == 1 ? "npm-k0" : i < 3 ? "npm-k2" : "pip-k");
		if (i == 1)
			ev_file(&ev, "package-lock.json", 'a');
		assert_int_equal(cache_event_record(c, &ev, &e), 0);
		cache_event_release(&ev);
	}
	assert_int_equal(cache_stats_read(c, NULL, &st, &e), 0);
	assert_int_equal(st.events, 6);
	assert_int_equal(st.n, 2);
	assert_string_equal(st.rows[0].prefix, "npm-");
	assert_int_equal(st.rows[0].misses, 1);
	assert_int_equal(st.rows[0].partial, 1);
	assert_int_equal(st.rows[0].hits, 1);
	assert_int_equal(st.rows[1].hits, 3);
	cache_stats_release(&st);
	assert_int_equal(cache_stats_read(c, "pi", &st, &e), 0);
	assert_int_equal(st.n, 1);
	assert_int_equal(st.events, 3);
	cache_stats_release(&st);
	assert_int_equal(cache_event_last_miss(c, "npm-k1", &ev, &e), 1);
	assert_int_equal(ev.result, CACHE_PARTIAL);
	assert_int_equal(ev.nfiles, 1);
	assert_string_equal(ev.files[0].path, "package-lock.json");
	cache_event_release(&ev);
	/* a hit is not a miss */
	assert_int_equal(cache_event_last_miss(c, "pip-k", &ev, &e), 0);
	/* only the newest are counted */
	setenv("CTXPACK_STATS_KEEP", "2", 1);
	env_load();
	assert_int_equal(cache_stats_read(c, NULL, &st, &e), 0);
	assert_int_equal(st.events, 2);
	assert_int_equal(st.n, 1);
	assert_string_equal(st.rows[0].prefix, "pip-");
	cache_stats_release(&st);
	unsetenv("CTXPACK_STATS_KEEP");
	env_load();
	cache_free(c);
	remove_tree(dir, &e);
	free(store);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_check),
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_tag_basic),
		cmocka_unit_test(test_tag_always_valid),
		cmocka_unit_test(test_tag_no_collisions),
		cmocka_unit_test(test_tag_prefix),
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_run_key),
		cmocka_unit_test(test_manifest_roundtrip),
		cmocka_unit_test(test_entry_untrusted),
		cmocka_unit_test(test_prune_select),
		cmocka_unit_test(test_library_roundtrip),
		cmocka_unit_test(test_pct),
		cmocka_unit_test(test_event_roundtrip),
		cmocka_unit_test(test_event_untrusted),
		cmocka_unit_test(test_event_tag),
		cmocka_unit_test(test_stats_add),
		cmocka_unit_test(test_why_diff),
		cmocka_unit_test(test_why_pick),
		cmocka_unit_test(test_run_record),
		cmocka_unit_test(test_prune_shared_digest),
		cmocka_unit_test(test_library_update),
		cmocka_unit_test(test_layout_log),
		cmocka_unit_test(test_stats_layout),
	};

	setlocale(LC_CTYPE, "C.UTF-8");
	umask(022);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
