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
	};

	setlocale(LC_CTYPE, "C.UTF-8");
	umask(022);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
