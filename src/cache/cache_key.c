/*
 * cache keys: checks, the implicit version, the key-to-tag mapping, times
 * and the key of `cache run`.  Pure functions (no store).
 *
 * Why the tag looks the way it does: a tag is at most 128 bytes of
 * [A-Za-z0-9_][A-Za-z0-9._-]*, a key up to 512 bytes of anything.  The
 * hash suffix makes the tag unique per (version, key); the readable part
 * keeps it recognizable in a registry UI and, being a byte-for-byte
 * mapping of the key's start, lets a prefix lookup pick candidates from
 * the tag list without reading every manifest.  The 8 hex of the version
 * in front of the hash do the same for the implicit version.
 */
#include "ctxpack/cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctxpack/pack.h"

/* Length of a valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t k, len;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (len > n)
		return 0;
	for (k = 1; k < len; k++)
		if ((p[k] & 0xc0) != 0x80)
			return 0;
	if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) ||
	    (c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f))
		return 0;
	return len;
}

/* 0 when s is UTF-8 without control characters, else -1. */
int cache_text_check(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i = 0;

	while (i < n) {
		size_t k;

		if (p[i] < 0x20 || p[i] == 0x7f)
			return -1;
		/* the C1 controls U+0080..U+009F (a terminal may act on them) */
		if (p[i] == 0xc2 && i + 1 < n && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f)
			return -1;
		k = utf8_len(p + i, n - i);
		if (!k)
			return -1;
		i += k;
	}
	return 0;
}

int cache_key_check(const char *key, const char *what, struct err *e)
{
	size_t n = strlen(key);

	if (!n)
		return err_set(e, ERR_USAGE, "the %s is empty", what);
	if (n > CACHE_KEY_MAX)
		return err_set(e, ERR_USAGE, "the %s is %zu bytes long; at most %d are allowed",
			       what, n, CACHE_KEY_MAX);
	if (cache_text_check(key))
		return err_set(e, ERR_USAGE, "the %s '%.80s' is not UTF-8 text without control "
			       "characters", what, key);
	return 0;
}

int cache_path_check(const char *path, struct err *e)
{
	size_t n = strlen(path);
	const char *base;

	if (!n)
		return err_set(e, ERR_USAGE, "a path is empty");
	if (n > 4096)
		return err_set(e, ERR_USAGE, "path '%.80s...' is too long", path);
	if (cache_text_check(path))
		return err_set(e, ERR_USAGE, "path '%.80s' is not UTF-8 text without control "
			       "characters", path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	base = path + n;
	while (base > path && base[-1] != '/')
		base--;
	if ((path + n - base == 1 && base[0] == '.') ||
	    (path + n - base == 2 && base[0] == '.' && base[1] == '.') ||
	    (n == 1 && path[0] == '/') || !strcmp(path, "~") || !strcmp(path, "~/"))
		return err_set(e, ERR_USAGE, "path '%s' cannot be cached: name a directory "
			       "below it", path);
	return 0;
}

const char *cache_platform(void)
{
#if defined(__x86_64__)
	return "linux/amd64";
#elif defined(__aarch64__)
	return "linux/arm64";
#elif defined(__i386__)
	return "linux/386";
#elif defined(__arm__)
	return "linux/arm";
#elif defined(__riscv) && __riscv_xlen == 64
	return "linux/riscv64";
#elif defined(__powerpc64__) && defined(__LITTLE_ENDIAN__)
	return "linux/ppc64le";
#elif defined(__s390x__)
	return "linux/s390x";
#else
	return "linux/unknown";
#endif
}

static void hash_field(struct sha256 *h, const char *name, const void *p, size_t n)
{
	char len[32];

	/* name, length, bytes: no two field lists hash the same */
	snprintf(len, sizeof(len), "%zu:", n);
	sha256_update(h, name, strlen(name) + 1);
	sha256_update(h, len, strlen(len));
	sha256_update(h, p, n);
}

static void hex_final(struct sha256 *h, char out[65])
{
	unsigned char md[32];

	sha256_final(h, md);
	hex_encode(out, md, 32);
}

void cache_version(const char *const *paths, size_t n, char out[CACHE_VERSION_LEN + 1])
{
	struct sha256 *h = sha256_new();
	char fmt[64];
	size_t i;

	snprintf(fmt, sizeof(fmt), "cache=%d pack=%d", CACHE_FORMAT, PACK_FORMAT_VERSION);
	hash_field(h, "ctxpack-cache", "", 0);
	hash_field(h, "format", fmt, strlen(fmt));
	hash_field(h, "compression", "zstd", 4);
	hash_field(h, "platform", cache_platform(), strlen(cache_platform()));
	for (i = 0; i < n; i++)
		hash_field(h, "path", paths[i], strlen(paths[i]));
	hex_final(h, out);
	sha256_free(h);
}

static int tag_char_ok(unsigned char c, size_t pos)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c == '_')
		return 1;
	return pos > 0 && (c == '.' || c == '-');
}

/* The readable part of a key or prefix: its first CACHE_TAG_READABLE bytes
 * mapped byte for byte.  Returns the length written (no NUL). */
static size_t readable(const char *s, char *out)
{
	size_t i;

	for (i = 0; s[i] && i < CACHE_TAG_READABLE; i++)
		out[i] = tag_char_ok((unsigned char)s[i], i) ? s[i] : '_';
	return i;
}

void cache_tag(const char *key, const char *version, char out[CACHE_TAG_MAX + 1])
{
	struct sha256 *h = sha256_new();
	char hex[65];
	size_t n;

	hash_field(h, "version", version, strlen(version));
	hash_field(h, "key", key, strlen(key));
	hex_final(h, hex);
	sha256_free(h);
	n = readable(key, out);
	out[n++] = '-';
	memcpy(out + n, version, 8);
	memcpy(out + n + 8, hex, 24);
	out[n + 32] = '\0';
}

static int is_lower_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

int cache_tag_is_cache(const char *tag)
{
	size_t n = strlen(tag), i;

	if (n < CACHE_TAG_SUFFIX + 1 || n > CACHE_TAG_READABLE + CACHE_TAG_SUFFIX)
		return 0;
	if (tag[n - CACHE_TAG_SUFFIX] != '-' ||
	    !is_lower_hex(tag + n - CACHE_TAG_SUFFIX + 1, CACHE_TAG_SUFFIX - 1))
		return 0;
	for (i = 0; i < n - CACHE_TAG_SUFFIX; i++)
		if (!tag_char_ok((unsigned char)tag[i], i))
			return 0;
	return 1;
}

int cache_tag_may_match(const char *tag, const char *prefix, const char *version)
{
	char want[CACHE_TAG_READABLE];
	size_t n, rlen, plen = strlen(prefix), wlen;

	if (!cache_tag_is_cache(tag))
		return 0;
	n = strlen(tag);
	rlen = n - CACHE_TAG_SUFFIX;
	if (version && memcmp(tag + rlen + 1, version, 8))
		return 0;
	wlen = readable(prefix, want);
	if (plen > CACHE_TAG_READABLE)
		/* the key was cut too: its readable part is exactly ours */
		return rlen == CACHE_TAG_READABLE && !memcmp(tag, want, wlen);
	return rlen >= wlen && !memcmp(tag, want, wlen);
}

char *cache_expand_path(const char *path)
{
	const char *home = env_get()->home;

	if (path[0] == '~' && (path[1] == '\0' || path[1] == '/') && home)
		return xasprintf("%s%s", home, path + 1);
	return xstrdup(path);
}

void cache_time_format(int64_t sec, long nsec, char out[40])
{
	time_t t = (time_t)sec;
	struct tm tm;
	char tmp[128];

	if (nsec < 0 || nsec > 999999999)
		nsec = 0;
	gmtime_r(&t, &tm);
	snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, nsec);
	tmp[39] = '\0';
	memcpy(out, tmp, 40);
}

static int digits(const char *s, int n, int *out)
{
	int i, v = 0;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int cache_time_parse(const char *s, int64_t *sec, long *nsec)
{
	int y, mo, d, h, mi, se, oh, om;
	struct tm tm;
	long ns = 0;
	int64_t t;

	if (strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) ||
	    s[7] != '-' || digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
	    digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
	    digits(s + 17, 2, &se))
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
		return -1;
	s += 19;
	if (*s == '.') {
		long scale = 100000000;
		int any = 0;

		for (s++; *s >= '0' && *s <= '9'; s++, any = 1) {
			ns += (*s - '0') * scale;
			scale /= 10;
		}
		if (!any)
			return -1;
	}
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	t = (int64_t)timegm(&tm);
	if ((*s == 'Z' || *s == 'z') && s[1] == '\0') {
		/* UTC */
	} else if ((*s == '+' || *s == '-') && strlen(s) == 6 && !digits(s + 1, 2, &oh) &&
		   s[3] == ':' && !digits(s + 4, 2, &om)) {
		int64_t off = (int64_t)oh * 3600 + om * 60;

		t += *s == '+' ? -off : off;
	} else {
		return -1;
	}
	*sec = t;
	*nsec = ns;
	return 0;
}

int cache_run_inputs(const char *prefix, const char *const *key_files, size_t nkf,
		     const char *const *argv, size_t argc, const char *const *paths,
		     size_t npaths, struct cache_run_inputs *in, struct err *e)
{
	struct sha256 *h = sha256_new(), *fh = sha256_new(), *ch = sha256_new();
	char hex[65];
	char *buf = xmalloc(1 << 16);
	size_t i;
	int ret = 0;

	memset(in, 0, sizeof(*in));
	in->prefix = xstrdup(prefix);
	in->files = xcalloc(nkf + 1, sizeof(*in->files));
	cache_version(paths, npaths, in->version);
	hash_field(h, "ctxpack-cache-run", "", 0);
	hash_field(h, "version", in->version, strlen(in->version));
	for (i = 0; i < nkf && !ret; i++) {
		int fd = open(key_files[i], O_RDONLY | O_CLOEXEC);

		if (fd < 0) {
			ret = err_errno(e, "cannot read key file %s", key_files[i]);
			break;
		}
		sha256_reset(fh);
		for (;;) {
			ssize_t k = read(fd, buf, 1 << 16);

			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0) {
				ret = err_errno(e, "cannot read key file %s", key_files[i]);
				break;
			}
			if (!k)
				break;
			sha256_update(fh, buf, (size_t)k);
		}
		close(fd);
		if (ret)
			break;
		hex_final(fh, hex);
		hash_field(h, "key-file", key_files[i], strlen(key_files[i]));
		hash_field(h, "content", hex, 64);
		in->files[in->nfiles].path = xstrdup(key_files[i]);
		memcpy(in->files[in->nfiles].sha256, hex, 65);
		in->nfiles++;
	}
	/* the command's own digest hashes the same fields as the key does */
	for (i = 0; i < argc; i++) {
		hash_field(h, "arg", argv[i], strlen(argv[i]));
		hash_field(ch, "arg", argv[i], strlen(argv[i]));
	}
	for (i = 0; i < npaths; i++)
		hash_field(h, "path", paths[i], strlen(paths[i]));
	if (!ret) {
		hex_final(h, hex);
		in->key = xasprintf("%s%s", prefix, hex);
		hex_final(ch, in->command);
	}
	free(buf);
	sha256_free(ch);
	sha256_free(fh);
	sha256_free(h);
	if (ret)
		cache_run_inputs_release(in);
	return ret;
}

void cache_run_inputs_release(struct cache_run_inputs *in)
{
	size_t i;

	for (i = 0; i < in->nfiles; i++)
		free(in->files[i].path);
	free(in->files);
	free(in->key);
	free(in->prefix);
	memset(in, 0, sizeof(*in));
}

int cache_run_key(const char *prefix, const char *const *key_files, size_t nkf,
		  const char *const *argv, size_t argc, const char *const *paths,
		  size_t npaths, char **key, struct err *e)
{
	struct cache_run_inputs in;
	int ret;

	*key = NULL;
	ret = cache_run_inputs(prefix, key_files, nkf, argv, argc, paths, npaths, &in, e);
	if (ret)
		return ret;
	*key = in.key;
	in.key = NULL;
	cache_run_inputs_release(&in);
	return 0;
}

/* ---- %-encoding ---- */

static int pct_needs(unsigned char c)
{
	return c <= 0x20 || c == '%' || c == 0x7f;
}

char *cache_pct_encode(const char *s)
{
	static const char hexd[] = "0123456789ABCDEF";
	struct buf b = BUF_INIT;
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p; p++) {
		if (pct_needs(*p)) {
			buf_addch(&b, '%');
			buf_addch(&b, hexd[*p >> 4]);
			buf_addch(&b, hexd[*p & 15]);
		} else {
			buf_addch(&b, *p);
		}
	}
	return buf_detach(&b, NULL);
}

static int uhex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int cache_pct_decode(const char *s, size_t n, char **out)
{
	struct buf b = BUF_INIT;
	size_t i;

	*out = NULL;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= n)
				goto bad;
			hi = uhex((unsigned char)s[i + 1]);
			lo = uhex((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				goto bad;
			c = (unsigned char)(hi << 4 | lo);
			/* only what the encoder encodes, and never a NUL */
			if (!c || !pct_needs(c))
				goto bad;
			i += 2;
		} else if (pct_needs(c)) {
			goto bad;
		}
		buf_addch(&b, c);
	}
	*out = buf_detach(&b, NULL);
	return 0;
bad:
	buf_release(&b);
	return -1;
}

/* ---- the run record in annotations ---- */

static void kv_push(struct reg_kv **kv, size_t *n, char *k, char *v)
{
	*kv = xreallocarray(*kv, *n + 1, sizeof(**kv));
	(*kv)[*n].key = k;
	(*kv)[*n].value = v;
	(*n)++;
}

void cache_run_annotations(const struct cache_run_inputs *in, struct reg_kv **kv, size_t *n)
{
	size_t i;

	kv_push(kv, n, xstrdup(CACHE_ANNOT_RUN_PREFIX), xstrdup(in->prefix));
	if (in->command[0])
		kv_push(kv, n, xstrdup(CACHE_ANNOT_RUN_COMMAND), xstrdup(in->command));
	if (in->nfiles > CACHE_RUN_FILES_MAX) {
		kv_push(kv, n, xstrdup(CACHE_ANNOT_RUN_FILES), xstrdup("omitted"));
		return;
	}
	kv_push(kv, n, xstrdup(CACHE_ANNOT_RUN_FILES), xasprintf("%zu", in->nfiles));
	for (i = 0; i < in->nfiles; i++) {
		char *enc = cache_pct_encode(in->files[i].path);

		kv_push(kv, n, xasprintf("%s%zu", CACHE_ANNOT_RUN_FILE, i),
			xasprintf("sha256:%s %s", in->files[i].sha256, enc));
		free(enc);
	}
}

void cache_tag_replaced(const char *key, const char *version, const char *digest,
			char out[CACHE_TAG_MAX + 1])
{
	struct sha256 *h = sha256_new();
	char hex[65];
	size_t n;

	hash_field(h, "version", version, strlen(version));
	hash_field(h, "key", key, strlen(key));
	hash_field(h, "replaced", digest, strlen(digest));
	hex_final(h, hex);
	sha256_free(h);
	n = readable(key, out);
	out[n++] = '-';
	memcpy(out + n, version, 8);
	memcpy(out + n + 8, hex, 24);
	out[n + 32] = '\0';
}
