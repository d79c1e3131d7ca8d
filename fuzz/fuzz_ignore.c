/*
 * fuzz_ignore: libFuzzer target for the .dockerignore reader and matcher.
 *
 * Input layout: the ignore file's bytes, then a NUL byte, then up to 8
 * paths separated by NUL bytes (no NUL: the whole input is the file and a
 * few fixed paths are used).  Each path is walked the way the context
 * walker does (every ancestor top-down with its parent's flags, pruning
 * where ign_must_descend allows), and a few invariants are checked:
 *   - a failed parse is ERR_USAGE with a message naming the file;
 *   - without parent flags, ign_match is the stateless rule
 *     (ign_excluded_path);
 *   - the deciding index is -1 or a pattern whose kind agrees with the
 *     verdict, and every flag is 0 or 1.
 *   - the compiled DFA and the NFA simulation agree, for the raw first
 *     line and for every regexp-kind pattern, on every path.
 * The first line is also fed to the regex engine as a raw expression, to
 * reach parser paths that translated patterns cannot.  The file is parsed
 * a second time with the matcher of Docker clients before 23
 * (ign_old_matcher): it fails wherever the current one does (its regexes
 * are tried on every path), every pattern is a regexp, and on every
 * prefix of every path the flags come back zeroed and the deciding index
 * agrees with the verdict; and a third time so, with buildah's reading of
 * the lines (ign_buildah_lines), with the same checks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctxpack/ignore.h"

#define MAX_PATHS 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const default_paths[] = {
	"a", "a/b", "a/b/c.txt", "dir/", ".env", "x/y/z/w",
};

static void check(int ok)
{
	if (!ok)
		abort();
}

/* A verdict and its deciding pattern agree. */
static void check_verdict(const struct ign *ig, int ex, int dec)
{
	check(ex == 0 || ex == 1);
	check(dec >= -1 && dec < (int)ign_count(ig));
	if (dec >= 0)
		check(ign_pattern_is_exception(ig, (size_t)dec) == !ex);
	else
		check(!ex);
}

static void walk_one(const struct ign *ig, const char *p, size_t len,
		     uint8_t *a, uint8_t *b)
{
	size_t n = ign_count(ig), i, k;
	uint8_t *parent = NULL, *cur = a;
	int ex, dec;

	if (len && p[len - 1] == '/')
		len--;
	for (i = 0; i <= len; i++) {
		if (i < len && p[i] != '/')
			continue;
		ex = ign_match(ig, p, i, parent, cur, &dec);
		check_verdict(ig, ex, dec);
		for (k = 0; k < n; k++)
			check(cur[k] <= 1);
		if (!parent && i > 0 && !(i == 1 && p[0] == '.'))
			check(ign_excluded_path(ig, p, i) == ex);
		if (i == len)
			break;
		if (ex && !ign_must_descend(ig, p, i))
			break; /* pruned */
		parent = cur;
		cur = cur == a ? b : a;
	}
	/* the stateless rule on the whole path, and without a flags vector */
	(void)ign_excluded_path(ig, p, len);
	(void)ign_match(ig, p, len, NULL, NULL, NULL);
}

/* Compile expr and check that the DFA and the NFA agree on every path. */
static void regex_agree(const char *expr, size_t len, const char *const *paths,
			const size_t *plen, size_t np, int must_compile)
{
	struct ign_re *re = NULL;
	char why[128];
	size_t i;
	int rc, m;

	rc = ign_re_compile(expr, len, &re, why, sizeof(why));
	check((rc == 0) == (re != NULL));
	check(!must_compile || re);
	if (!re)
		return;
	for (i = 0; i < np; i++) {
		m = ign_re_match(re, paths[i], plen[i]);
		check(m == 0 || m == 1);
		check(m == ign_re_match_nfa(re, paths[i], plen[i]));
	}
	ign_re_free(re);
}

static void raw_regex(const char *d, size_t len, const char *const *paths,
		      const size_t *plen, size_t np)
{
	const char *nl = memchr(d, '\n', len);

	if (nl)
		len = (size_t)(nl - d);
	if (len <= 256)
		regex_agree(d, len, paths, plen, np, 0);
}

/* The same file through the matcher of clients before 23 (and buildah's
 * reading of the lines). */
static void old_matcher(const char *d, size_t flen, const struct ign *now,
			const char *const *paths, const size_t *plen, size_t np, int buildah)
{
	struct err e = ERR_INIT;
	struct ign *ig = ign_new();
	size_t n, i, k;
	uint8_t *f;
	int ex, dec;

	ign_old_matcher(ig);
	if (buildah)
		ign_buildah_lines(ig);
	if (ign_parse(ig, "fuzz", d, flen, &e)) {
		check(e.code == ERR_USAGE);
		check(strncmp(e.msg, "fuzz:", 5) == 0);
		ign_free(ig);
		return;
	}
	/* what parses for the old matcher parses for the current one */
	check(ign_count(now) == ign_count(ig));
	n = ign_count(ig);
	for (i = 0; i < n; i++)
		check(ign_pattern_kind(ig, i) == 'r');
	f = malloc(n + 1);
	check(f != NULL);
	for (i = 0; i < np; i++) {
		for (k = 1; k <= plen[i]; k++) {
			if (k < plen[i] && paths[i][k] != '/')
				continue;
			memset(f, 1, n + 1);
			ex = ign_match(ig, paths[i], k, f, f, &dec);
			check_verdict(ig, ex, dec);
			for (size_t j = 0; j < n; j++)
				check(f[j] == 0);
		}
	}
	free(f);
	ign_free(ig);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *d = (const char *)data;
	const char *nul = memchr(d, '\0', size);
	size_t flen = nul ? (size_t)(nul - d) : size;
	const char *paths[MAX_PATHS];
	size_t plen[MAX_PATHS], np = 0, n, off;
	struct err e = ERR_INIT;
	struct ign *ig = ign_new();
	uint8_t *a = NULL, *b = NULL;
	size_t i;

	if (nul) {
		for (off = flen + 1; off <= size && np < MAX_PATHS;) {
			const char *s = d + off;
			const char *end = memchr(s, '\0', size - off);
			size_t l = end ? (size_t)(end - s) : size - off;

			paths[np] = s;
			plen[np++] = l;
			off += l + 1;
		}
	} else {
		for (i = 0; i < sizeof(default_paths) / sizeof(default_paths[0]);
		     i++) {
			paths[np] = default_paths[i];
			plen[np++] = strlen(default_paths[i]);
		}
	}

	raw_regex(d, flen, paths, plen, np);

	if (ign_parse(ig, "fuzz", d, flen, &e)) {
		check(e.code == ERR_USAGE);
		check(strncmp(e.msg, "fuzz:", 5) == 0);
		check(ign_count(ig) == 0);
		goto out;
	}
	n = ign_count(ig);
	for (i = 0; i < n; i++) {
		int kind = ign_pattern_kind(ig, i);
		const char *rx = ign_pattern_regex(ig, i);

		check(ign_pattern_text(ig, i) != NULL);
		check(ign_pattern_line(ig, i) >= 1);
		check(kind && strchr("epsrn", kind) != NULL);
		check((kind == 'r' || kind == 'n') == (rx[0] != '\0'));
		if (kind == 'r' && i < 4)
			regex_agree(rx, strlen(rx), paths, plen, np, 1);
	}
	a = calloc(n + 1, 1);
	b = calloc(n + 1, 1);
	check(a && b);
	for (i = 0; i < np; i++)
		walk_one(ig, paths[i], plen[i], a, b);
out:
	old_matcher(d, flen, ig, paths, plen, np, 0);
	old_matcher(d, flen, ig, paths, plen, np, 1);
	free(a);
	free(b);
	ign_free(ig);
	return 0;
}
