/*
 * Unit tests for the .dockerignore reader and matcher (src/pack/ignore*.c).
 *
 * 1. Every row of shared/data/dockerignore-vectors.tsv and
 *    dockerignore-error-vectors.tsv, one cmocka test per row.  The shared
 *    directory is $CTXPACK_SHARED, else ../shared (the runner starts in the
 *    repo root), else found from this file's own path.
 * 2. Cases of our own from shared/docs/dockerignore.md, one test each.
 *
 * The walker is simulated as BuildKit runs it: every ancestor directory
 * top-down with its parent's flags; an excluded ancestor that
 * ign_must_descend() lets us prune hides the path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "ctxpack/ignore.h"

/* ---- helpers ---- */

static struct ign *parse_or_fail(const char *data, size_t len)
{
	struct err e = ERR_INIT;
	struct ign *ig = ign_new();

	if (ign_parse(ig, ".dockerignore", data, len, &e)) {
		print_error("unexpected parse error: %s\n", e.msg);
		ign_free(ig);
		fail();
	}
	return ig;
}

static struct ign *parse_str(const char *data)
{
	return parse_or_fail(data, strlen(data));
}

/*
 * The BuildKit walk down to path (len bytes; a trailing '/' names the
 * directory itself).  Returns 1 when the path is not sent.
 */
static int walk_excluded(const struct ign *ig, const char *path, size_t len)
{
	size_t n = ign_count(ig), i;
	uint8_t *a = calloc(2 * n + 1, 1), *parent = NULL, *cur = a;
	int ex = -1;

	if (len && path[len - 1] == '/')
		len--;
	for (i = 0; i < len && ex < 0; i++) {
		if (path[i] != '/')
			continue;
		if (ign_match(ig, path, i, parent, cur, NULL) &&
		    !ign_must_descend(ig, path, i))
			ex = 1; /* pruned: never reached */
		parent = cur;
		cur = cur == a ? a + n : a;
	}
	if (ex < 0)
		ex = ign_match(ig, path, len, parent, cur, NULL);
	free(a);
	return ex;
}

static int parse_fails(const char *data, size_t len, char *msg, size_t msgsz)
{
	struct err e = ERR_INIT;
	struct ign *ig = ign_new();
	int rc = ign_parse(ig, ".dockerignore", data, len, &e);

	if (msg)
		snprintf(msg, msgsz, "%s", e.msg);
	ign_free(ig);
	if (rc)
		assert_int_equal(rc, ERR_USAGE);
	return rc != 0;
}

/* ---- the shared vectors ---- */

struct vec {
	unsigned lineno;
	char *patterns; /* "\n"-joined, real newlines */
	size_t plen;
	char *col2;     /* path, or stage for error vectors */
	char *col3;     /* expected, or message */
	char name[160];
};

static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *d = NULL;
	size_t n = 0, cap = 0, r;

	if (!f)
		return NULL;
	for (;;) {
		if (cap - n < 4096) {
			cap = cap ? 2 * cap : 65536;
			d = realloc(d, cap + 1);
		}
		r = fread(d + n, 1, cap - n, f);
		if (!r)
			break;
		n += r;
	}
	fclose(f);
	d[n] = '\0';
	*len = n;
	return d;
}

static char *find_shared_file(const char *name, size_t *len)
{
	char path[4096], dir[2048];
	const char *env = getenv("CTXPACK_SHARED"), *slash;
	char *d;

	if (env) {
		snprintf(path, sizeof(path), "%s/data/%s", env, name);
		return read_all(path, len);
	}
	snprintf(path, sizeof(path), "../shared/data/%s", name);
	if ((d = read_all(path, len)))
		return d;
	snprintf(path, sizeof(path), "shared/data/%s", name);
	if ((d = read_all(path, len)))
		return d;
	/* tests/unit/test_ignore.c -> tests/unit/../../../shared */
	slash = strrchr(__FILE__, '/');
	snprintf(dir, sizeof(dir), "%.*s",
		 slash ? (int)(slash - __FILE__) : 1, slash ? __FILE__ : ".");
	snprintf(path, sizeof(path), "%s/../../../shared/data/%s", dir, name);
	return read_all(path, len);
}

/* Split the "patterns" column on the two characters backslash, 'n'. */
static char *unjoin(const char *s, size_t *len)
{
	size_t n = strlen(s), i, w = 0;
	char *d = malloc(n + 1);

	for (i = 0; i < n; i++) {
		if (s[i] == '\\' && i + 1 < n && s[i + 1] == 'n') {
			d[w++] = '\n';
			i++;
		} else {
			d[w++] = s[i];
		}
	}
	d[w] = '\0';
	*len = w;
	return d;
}

/* Rows of a TSV file (header skipped), 4 columns each. */
static struct vec *load_vectors(const char *name, size_t *count)
{
	size_t len, n = 0, cap = 0;
	char *data = find_shared_file(name, &len), *line, *next;
	struct vec *v = NULL;
	unsigned lineno = 0;

	*count = 0;
	if (!data)
		return NULL;
	for (line = data; line && *line; line = next) {
		char *col[4] = {0}, *t;
		int k;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		if (lineno == 1)
			continue;
		for (k = 0, t = line; k < 4 && t; k++) {
			col[k] = t;
			t = strchr(t, '\t');
			if (t)
				*t++ = '\0';
		}
		if (!col[2])
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 256;
			v = realloc(v, cap * sizeof(*v));
		}
		v[n].lineno = lineno;
		v[n].patterns = unjoin(col[0], &v[n].plen);
		v[n].col2 = strdup(col[1]);
		v[n].col3 = strdup(col[2]);
		snprintf(v[n].name, sizeof(v[n].name), "%s:%u: %.60s | %.40s",
			 name, lineno, col[0], col[1]);
		n++;
	}
	free(data);
	*count = n;
	return v;
}

static void free_vectors(struct vec *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].patterns);
		free(v[i].col2);
		free(v[i].col3);
	}
	free(v);
}

static void test_vector(void **state)
{
	const struct vec *v = *state;
	struct ign *ig = parse_or_fail(v->patterns, v->plen);
	int ex = walk_excluded(ig, v->col2, strlen(v->col2));
	const char *got = ex ? "excluded" : "included";

	if (strcmp(got, v->col3) != 0) {
		print_error("vector line %u: patterns=[%s] path=[%s] expected=%s "
			    "got=%s\n",
			    v->lineno, v->patterns, v->col2, v->col3, got);
		ign_free(ig);
		fail();
	}
	ign_free(ig);
}

static void test_error_vector(void **state)
{
	const struct vec *v = *state;
	char msg[2048];
	int failed = parse_fails(v->patterns, v->plen, msg, sizeof(msg));

	if (!strcmp(v->col2, "none")) {
		if (failed) {
			print_error("error vector line %u: [%s] should parse, got "
				    "%s\n",
				    v->lineno, v->patterns, msg);
			fail();
		}
		return;
	}
	if (!failed) {
		print_error("error vector line %u: [%s] (stage %s) parsed\n",
			    v->lineno, v->patterns, v->col2);
		fail();
	}
	if (!strstr(msg, ".dockerignore") || !strstr(msg, ":1:") ||
	    !strstr(msg, v->col3)) {
		print_error("error vector line %u: [%s]: message [%s] lacks "
			    "file, line or [%s]\n",
			    v->lineno, v->patterns, msg, v->col3);
		fail();
	}
}

static void test_vectors_present(void **state)
{
	const size_t *counts = *state;

	if (counts[0] < 200 || counts[1] < 10) {
		print_error("shared vectors not found or short (%zu, %zu rows); "
			    "set CTXPACK_SHARED\n",
			    counts[0], counts[1]);
		fail();
	}
}

/* ---- our own walker cases ---- */

struct wcase {
	const char *name;
	const char *patterns;
	const char *path;
	int excluded;
};

#define BOM "\xEF\xBB\xBF"

static const struct wcase wcases[] = {
	/* reading: comments, BOM, CRLF, trimming */
	{"comment in column one", "#x\nfoo", "#x", 0},
	{"space before # is a pattern", " #x", "#x", 1},
	{"# after a pattern is text", "foo # x", "foo # x", 1},
	{"escaped # is a pattern", "\\#x", "#x", 1},
	{"bom then comment", BOM "#x\nfoo", "#x", 0},
	{"bom then pattern", BOM "foo", "foo", 1},
	{"bom only stripped on line 1", "a\n" BOM "b", "b", 0},
	{"bom on line 2 is text", "a\n" BOM "b", BOM "b", 1},
	{"crlf", "foo\r\nbar\r\n", "bar", 1},
	{"crlf without final newline", "foo\r\nbar\r", "bar", 1},
	{"nbsp trimmed", "\xC2\xA0" "foo\xC2\xA0", "foo", 1},
	{"ideographic space trimmed", "\xE3\x80\x80" "foo", "foo", 1},
	{"nel trimmed", "\xC2\x85" "foo", "foo", 1},
	{"zero width space is not space", "\xE2\x80\x8B" "foo", "foo", 0},
	{"zero width space kept", "\xE2\x80\x8B" "foo", "\xE2\x80\x8B" "foo", 1},
	{"vertical tab trimmed", "\vfoo\f", "foo", 1},
	{"inner space kept", "a b", "a b", 1},
	/* '!' */
	{"! then space", "*\n! /foo", "foo", 0},
	{"! then nbsp", "*\n!\xC2\xA0" "foo", "foo", 0},
	{"!! is exception for !foo", "*\n!!foo", "!foo", 0},
	{"escaped ! is a pattern", "\\!x", "!x", 1},
	/* Clean */
	{"leading .. kept", "foo/../../bar", "bar", 0},
	{"dot and double slash", "./a//b/", "a/b", 1},
	{"slash alone matches nothing", "/", "a", 0},
	{"dot matches nothing", ".", "a", 0},
	{"dot slash matches nothing", "./", "x/y", 0},
	{"rooted dotdot", "/../foo", "foo", 1},
	{"second trim after clean", "a /.", "a", 1},
	{"second trim: a-space not matched", "a /.", "a ", 0},
	{"trailing slash on a file", "foo/", "foo", 1},
	/* kinds */
	{"**/foo vs barfoo", "**/foo", "barfoo", 0},
	{"**/foo vs foo", "**/foo", "foo", 1},
	{"**/foo vs x/y/foo", "**/foo", "x/y/foo", 1},
	{"foo** prefix matches foo", "foo**", "foo", 1},
	{"foo** prefix matches foobar", "foo**", "foobar", 1},
	{"dir/** not dir itself", "dir/**", "dir/", 0},
	{"dir/** below dir", "dir/**", "dir/x/y", 1},
	{"a**/*.txt matches abc.txt", "a**/*.txt", "abc.txt", 1},
	{"a**x not abx", "a**x", "abx", 0},
	{"a**x matches ab/x", "a**x", "ab/x", 1},
	{"**file suffix", "**file", "profile", 1},
	{"exact kind keeps regex chars literal", "a.|)$(}+{bc", "a.|)$(}+{bc",
	 1},
	{"exact a^b", "a^b", "a^b", 1},
	/* regex quirks */
	{"\\d is a digit", "file\\d", "file1", 1},
	{"\\d is not d", "file\\d", "filed", 0},
	{"\\w class", "x\\w", "x_", 1},
	{"\\s class", "x\\sy", "x\ty", 1},
	{"\\b word boundary", "a\\b*", "a", 1},
	{"\\b word boundary fails", "a\\bb*", "ab", 0},
	{"a^b* never matches", "a^b*", "a^b", 0},
	{"a^b* never matches 2", "a^b*", "a^bc", 0},
	{"[!a] is ! or a", "[!a]", "!", 1},
	{"[!a] does not negate", "[!a]", "b", 0},
	{"a[/]b", "a[/]b", "a/b", 1},
	{"a[^x]b matches slash", "a[^x]b", "a/b", 1},
	{"* matches .env", "*", ".env", 1},
	{"* does not cross /", "a*", "b/a", 0},
	{"? one code point", "a?b", "a\xC3\xA9" "b", 1},
	{"? not two", "a??b", "a\xC3\xA9" "b", 0},
	{"hex escape", "\\x41*", "AB", 1},
	{"octal escape", "\\101*", "A", 1},
	{"posix class", "[[:alpha:]]", "q", 1},
	{"posix class is one char", "[[:alpha:]]", "q]", 0},
	/* after \Q even the escapes compile() adds are literal text */
	{"\\Q makes the rest literal", "\\Qa.b*", "a\\.b[^/]*$", 1},
	{"\\Q: no wildcard left", "\\Qa.b*", "a.bc", 0},
	{"\\Q eats the $ anchor", "\\Qab*", "ab[^/]*$x", 1},
	{"| is not escaped: alternation", "*.js|*.ts", "a/b.ts", 1},
	{"| alternation first branch", "*.js|*.ts", "x.jsfoo/bar", 1},
	{"| alternation no match", "*.js|*.ts", "b.py", 0},
	{"{n} is not escaped: repetition", "x{2}*", "xxy", 1},
	{"{n} repetition needs two", "x{2}*", "x{2}", 0},
	{"{ without count is literal", "x{a}*", "x{a}", 1},
	{"** does not cross newline", "**/*.py", "a\nb/x.py", 0},
	{"* crosses newline", "**/*.py", "a\nb.py", 1},
	{"escaped star", "a\\*b", "a*b", 1},
	{"escaped star is literal", "a\\*b", "axb", 0},
	{"class with trailing space", "foo[ ]", "foo ", 1},
	/* non-UTF-8 */
	{"invalid byte in exact pattern", "a\xFF", "a\xFF", 1},
	{"invalid byte exact is bytewise", "a\xFF", "a\xFE", 0},
	{"invalid byte regexp matches any invalid", "a\xFF*", "a\xFE", 1},
	{"invalid byte regexp matches U+FFFD", "a\xFF*",
	 "a\xEF\xBF\xBD" "x", 1},
	{"invalid byte regexp no valid char", "a\xFF*", "ab", 0},
	{"? matches invalid byte", "a?b", "a\x80" "b", 1},
	{"* matches invalid bytes", "a*z", "a\xC0\xFF" "z", 1},
	/* walker rule 4.2 */
	{"a,!a/b,a keeps a/b", "a\n!a/b\na", "a/b", 0},
	{"a,!a/b,a drops a/c", "a\n!a/b\na", "a/c", 1},
	{"a/b,!a drops a/b", "a/b\n!a", "a/b", 1},
	{"a/b,!a keeps a/c", "a/b\n!a", "a/c", 0},
	{"re-included subtree", "*\n!src", "src/deep/file", 0},
	{"re-included subtree, re-excluded", "*\n!src\nsrc/*.tmp", "src/a.tmp",
	 1},
	{"docs exception only the file", "docs\n!docs/README.md", "docs/x", 1},
	/* descent */
	{"literal exception prunes others", "*\n!src", "other/x", 1},
	{"wildcard exception forces descent", "*\n!*/*.txt",
	 "recipes/cake.txt", 0},
	{"**/*.py under excluded dir", "*\n!**/*.py", "subdir/x.py", 0},
	{"literal deep exception", "foo\n!foo/bar/baz", "foo/bar/baz", 0},
	{"literal deep exception sibling", "foo\n!foo/bar/baz", "foo/bar/qux",
	 1},
	{"excluded empty dir", "*\n!src/**", "src/", 1},
};

static void test_wcase(void **state)
{
	const struct wcase *c = *state;
	struct ign *ig = parse_str(c->patterns);
	int ex = walk_excluded(ig, c->path, strlen(c->path));

	if (ex != c->excluded) {
		print_error("%s: patterns=[%s] path=[%s] expected %s, got %s\n",
			    c->name, c->patterns, c->path,
			    c->excluded ? "excluded" : "included",
			    ex ? "excluded" : "included");
		ign_free(ig);
		fail();
	}
	ign_free(ig);
}

/* ---- our own error cases ---- */

struct ecase {
	const char *name;
	const char *patterns;
	const char *want; /* substring of the message; NULL: must parse */
};

static const struct ecase ecases[] = {
	{"bare !", "!", ".dockerignore:1: !: illegal exclusion pattern: \"!\""},
	{"! and space", "! ", "illegal exclusion pattern"},
	{"!/", "!/", ".dockerignore:1: !/: illegal exclusion pattern"},
	{"!/x/.. cleans to !", "!/x/..", "illegal exclusion pattern"},
	{"!x/.. is the exception .", "!x/..", NULL},
	{"line number counts comments", "# c\n\n[", ".dockerignore:3: [: syntax error in pattern"},
	{"error on line 3", "a\nb\na[", ".dockerignore:3: a[: syntax error in pattern"},
	{"trailing backslash", "foo\\", "syntax error in pattern"},
	{"escaped space trimmed", "foo\\ ", ".dockerignore:1: foo\\: syntax error"},
	{"[]a]", "[]a]", "syntax error in pattern"},
	{"[a-b-c]", "[a-b-c]", "syntax error in pattern"},
	{"[x-]", "[x-]", "syntax error in pattern"},
	{"[-x]", "[-x]", "syntax error in pattern"},
	{"[^", "[^", "syntax error in pattern"},
	{"unterminated after star", "a*[", "syntax error in pattern"},
	{"invalid utf-8 in class", "[\xFF]", "syntax error in pattern"},
	{"construct error wins over match error", "[z-a]\n!", ".dockerignore:2: !:"},
	{"reversed range", "[z-a]", "syntax error in pattern (invalid regular expression"},
	{"Local-Only", "[Local-Only]/", "invalid regular expression"},
	{"unknown escape", "foo\\q", "invalid regular expression"},
	{"backreference", "a\\1", "invalid regular expression"},
	{"bad posix name", "[[:foo:]]", "invalid regular expression"},
	{"bad repeat count", "x{1001}*", "invalid regular expression"},
	{"nested repetition", "x{2}{3}*", "invalid regular expression"},
	{"unicode class unsupported", "\\pL*", "unsupported in pattern"},
	{"bad unicode class name", "\\pq*", "invalid regular expression"},
	{"match error in later normal", "a\nfoo\\q", ".dockerignore:2: foo\\q:"},
	{"exception after normal refused", "x\n!foo[z-a]", ".dockerignore:2:"},
	{"lone bad exception accepted", "!foo[z-a]", NULL},
	/* Go's Match(p, ".") stops reading chunks once one fails to match */
	{"bad class after a failed chunk", "a*/[-]x", NULL},
	{"bad class in a failed chunk", "a/[-]x", "syntax error in pattern"},
	{"bad class after a star", "*/[-]x", "syntax error in pattern"},
	{"bad class after a matched chunk", ".*/[-]", "syntax error in pattern"},
	{"unterminated class after a failed chunk: the regex", "a*/[",
	 "invalid regular expression"},
	{"bad exceptions before any normal", "!a\\q\n!\\pL*\nfoo", NULL},
	{"[[:alpha:]] validates", "[[:alpha:]]", NULL},
	{"!../.. is a normal dot", "!../..", NULL},
	{"empty file", "", NULL},
	{"only comments and blanks", "#a\n\n   \n#b", NULL},
};

static void test_ecase(void **state)
{
	const struct ecase *c = *state;
	char msg[2048];
	int failed = parse_fails(c->patterns, strlen(c->patterns), msg,
				 sizeof(msg));

	if (!c->want) {
		if (failed) {
			print_error("%s: [%s] should parse, got %s\n", c->name,
				    c->patterns, msg);
			fail();
		}
		return;
	}
	if (!failed || !strstr(msg, c->want)) {
		print_error("%s: [%s]: want error containing [%s], got [%s]\n",
			    c->name, c->patterns, c->want,
			    failed ? msg : "(parsed)");
		fail();
	}
}

/* ---- specific tests ---- */

static void test_line_too_long(void **state)
{
	size_t n = 65536;
	char *d = malloc(n + 8), msg[2048];

	(void)state;
	memset(d, 'a', n + 8);
	memcpy(d, "x\n", 2);
	/* line 2: exactly 65536 bytes before the newline */
	d[2 + n] = '\n';
	assert_true(parse_fails(d, 2 + n + 1, msg, sizeof(msg)));
	assert_non_null(strstr(msg, ".dockerignore:2: line too long"));
	/* the same, unterminated */
	assert_true(parse_fails(d, 2 + n, msg, sizeof(msg)));
	/* 65535 bytes is fine, terminated or not */
	d[2 + n - 1] = '\n';
	assert_false(parse_fails(d, 2 + n, msg, sizeof(msg)));
	assert_false(parse_fails(d, 2 + n - 1, msg, sizeof(msg)));
	/* CR counts before it is dropped */
	d[2 + n - 1] = '\r';
	d[2 + n] = '\n';
	assert_true(parse_fails(d, 2 + n + 1, msg, sizeof(msg)));
	free(d);
}

static void test_long_line_error_first(void **state)
{
	/* the read fails before any pattern is checked */
	size_t n = 70000;
	char *d = malloc(n + 4), msg[2048];

	(void)state;
	memcpy(d, "!\n", 2);
	memset(d + 2, 'a', n);
	assert_true(parse_fails(d, n + 2, msg, sizeof(msg)));
	assert_non_null(strstr(msg, ":2: line too long"));
	free(d);
}

static void test_kinds_and_regex(void **state)
{
	struct ign *ig = parse_str("foo\nfoo/**\n**/foo\n*.go\n**\n**/**\n"
				   "**/dir2/*\na.|)$(}+{bc\n*.a|b\nx{2}?\n"
				   "a\\*\n" BOM "**x\n");

	(void)state;
	assert_int_equal(ign_count(ig), 12);
	assert_int_equal(ign_pattern_kind(ig, 0), 'e');
	assert_int_equal(ign_pattern_kind(ig, 1), 'p');
	assert_int_equal(ign_pattern_kind(ig, 2), 's');
	assert_int_equal(ign_pattern_kind(ig, 3), 'r');
	assert_string_equal(ign_pattern_regex(ig, 3), "^[^/]*\\.go$");
	assert_int_equal(ign_pattern_kind(ig, 4), 's');
	assert_int_equal(ign_pattern_kind(ig, 5), 'r');
	assert_string_equal(ign_pattern_regex(ig, 5), "^(.*/)?.*$");
	assert_string_equal(ign_pattern_regex(ig, 6), "^(.*/)?dir2/[^/]*$");
	assert_int_equal(ign_pattern_kind(ig, 7), 'e');
	/* | { } reach the regex unescaped, like upstream's bitmap does */
	assert_string_equal(ign_pattern_regex(ig, 8), "^[^/]*\\.a|b$");
	assert_string_equal(ign_pattern_regex(ig, 9), "^x{2}[^/]$");
	assert_string_equal(ign_pattern_regex(ig, 10), "^a\\*$");
	/* a BOM inside the file (line 13 is not line 1) is a character; the
	 * scanner skips it, so "**" is still at the start: suffix kind */
	assert_int_equal(ign_pattern_kind(ig, 11), 's');
	ign_free(ig);
}

static void test_descend(void **state)
{
	struct ign *ig;

	(void)state;
	ig = parse_str("*\n!src");
	assert_true(ign_has_exceptions(ig));
	assert_int_equal(ign_must_descend(ig, "other", 5), 0);
	assert_int_equal(ign_must_descend(ig, "src", 3), 1);
	assert_int_equal(ign_must_descend(ig, "sr", 2), 0);
	ign_free(ig);

	ig = parse_str("foo\n!foo/bar/baz");
	assert_int_equal(ign_must_descend(ig, "foo", 3), 1);
	assert_int_equal(ign_must_descend(ig, "foo/bar", 7), 1);
	assert_int_equal(ign_must_descend(ig, "foo/bar/baz", 11), 1);
	assert_int_equal(ign_must_descend(ig, "foo/bax", 7), 0);
	assert_int_equal(ign_must_descend(ig, "foo/bar/baz/x", 13), 0);
	ign_free(ig);

	/* one trailing slash-star-star, then one slash-star, is trimmed */
	ig = parse_str("*\n!src/*/**");
	assert_int_equal(ign_must_descend(ig, "src", 3), 1);
	assert_int_equal(ign_must_descend(ig, "lib", 3), 0);
	ign_free(ig);

	ig = parse_str("*\n!*/*.txt");
	assert_int_equal(ign_must_descend(ig, "anything", 8), 1);
	ign_free(ig);

	ig = parse_str("*\n!a^b");
	assert_int_equal(ign_must_descend(ig, "x", 1), 1); /* ^ is a wildcard */
	ign_free(ig);

	ig = parse_str("*\nfoo");
	assert_false(ign_has_exceptions(ig));
	assert_int_equal(ign_must_descend(ig, "foo", 3), 0);
	ign_free(ig);

	/* "!../.." cleans to the normal pattern "." */
	ig = parse_str("!../..");
	assert_int_equal(ign_count(ig), 1);
	assert_false(ign_has_exceptions(ig));
	assert_false(ign_pattern_is_exception(ig, 0));
	ign_free(ig);
}

static void test_deciding_and_metadata(void **state)
{
	struct ign *ig = parse_str("# comment\n*\n\n  !keep  \nkeep/*.o\n");
	uint8_t fl[3], fl2[3];
	int dec = 99;

	(void)state;
	assert_int_equal(ign_count(ig), 3);
	assert_string_equal(ign_file_name(ig), ".dockerignore");
	assert_string_equal(ign_pattern_text(ig, 1), "!keep");
	assert_int_equal(ign_pattern_line(ig, 0), 2);
	assert_int_equal(ign_pattern_line(ig, 1), 4);
	assert_int_equal(ign_pattern_line(ig, 2), 5);
	assert_true(ign_pattern_is_exception(ig, 1));
	assert_int_equal(ign_match(ig, "x", 1, NULL, fl, &dec), 1);
	assert_int_equal(dec, 0);
	assert_int_equal(ign_match(ig, "keep", 4, NULL, fl, &dec), 0);
	assert_int_equal(dec, 1);
	assert_int_equal(fl[0], 1);
	assert_int_equal(fl[1], 1);
	assert_int_equal(fl[2], 0);
	assert_int_equal(ign_match(ig, "keep/a.o", 8, fl, fl2, &dec), 1);
	assert_int_equal(dec, 2);
	assert_int_equal(ign_match(ig, "keep/a.c", 8, fl, fl2, &dec), 0);
	assert_int_equal(dec, 1);
	/* no pattern hit */
	ign_free(ig);
	ig = parse_str("foo");
	assert_int_equal(ign_match(ig, "bar", 3, NULL, NULL, &dec), 0);
	assert_int_equal(dec, -1);
	ign_free(ig);
}

static void test_stateless_rule(void **state)
{
	struct ign *ig = parse_str("a\n!a/b\na");

	(void)state;
	/* 4.1 says excluded, the walker says included */
	assert_int_equal(ign_excluded_path(ig, "a/b", 3), 1);
	assert_int_equal(walk_excluded(ig, "a/b", 3), 0);
	/* without parent flags ign_match is 4.1 */
	assert_int_equal(ign_match(ig, "a/b", 3, NULL, NULL, NULL), 1);
	assert_int_equal(ign_excluded_path(ig, ".", 1), 0);
	assert_int_equal(ign_excluded_path(ig, "", 0), 0);
	ign_free(ig);

	ig = parse_str("a/b\n!a");
	assert_int_equal(ign_excluded_path(ig, "a/b", 3), 0);
	assert_int_equal(walk_excluded(ig, "a/b", 3), 1);
	/* unclean paths go through Clean like filepath.Dir */
	assert_int_equal(ign_excluded_path(ig, "a//b/c", 6), 0);
	ign_free(ig);

	ig = parse_str("dir");
	assert_int_equal(ign_excluded_path(ig, "dir/x/y", 7), 1);
	assert_int_equal(ign_excluded_path(ig, "./dir/x", 7), 1);
	assert_int_equal(ign_excluded_path(ig, "x/dir", 5), 0);
	ign_free(ig);
}

static void test_never_evaluated_exception(void **state)
{
	struct ign *ig = parse_str("!foo[z-a]\n!\\pL*\n*");

	(void)state;
	assert_int_equal(ign_count(ig), 3);
	assert_int_equal(ign_pattern_kind(ig, 0), 'n');
	assert_int_equal(ign_pattern_kind(ig, 1), 'n');
	assert_int_equal(walk_excluded(ig, "foo", 3), 1);
	assert_int_equal(walk_excluded(ig, "x/y", 3), 1);
	assert_true(ign_has_exceptions(ig));
	assert_int_equal(ign_must_descend(ig, "x", 1), 1);
	ign_free(ig);
}

/* The matcher of Docker clients before 23 (ign_old_matcher). */
static struct ign *parse_old(const char *data)
{
	struct err e = ERR_INIT;
	struct ign *ig = ign_new();

	ign_old_matcher(ig);
	if (ign_parse(ig, ".dockerignore", data, strlen(data), &e)) {
		print_error("unexpected parse error: %s\n", e.msg);
		ign_free(ig);
		fail();
	}
	return ig;
}

static int old_excluded(const struct ign *ig, const char *path)
{
	uint8_t flags[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
	int ex = ign_match(ig, path, strlen(path), flags, flags, NULL);
	size_t i;

	/* no state is carried: the flags are ignored and zeroed */
	for (i = 0; i < ign_count(ig); i++)
		assert_int_equal(flags[i], 0);
	return ex;
}

/* The old matcher refuses data with a message containing want. */
static void old_parse_fails(const char *data, const char *want)
{
	struct err e = ERR_INIT;
	struct ign *ig = ign_new();

	ign_old_matcher(ig);
	assert_int_equal(ign_parse(ig, ".dockerignore", data, strlen(data), &e), ERR_USAGE);
	assert_non_null(strstr(e.msg, want));
	ign_free(ig);
}

/* buildah's reading of the lines (ign_buildah_lines): no trim after '!' */
static void test_buildah_lines(void **state)
{
	const char *data = "*\n!  sp\n! a b\n";
	struct err e = ERR_INIT;
	struct ign *ig = ign_new(), *dk = parse_old(data);

	(void)state;
	ign_old_matcher(ig);
	ign_buildah_lines(ig);
	assert_int_equal(ign_parse(ig, ".dockerignore", data, strlen(data), &e), 0);
	/* buildah: exceptions for "  sp" and " a b"; Docker: "sp" and "a b" */
	assert_int_equal(old_excluded(ig, "  sp"), 0);
	assert_int_equal(old_excluded(ig, "  sp/x"), 0);
	assert_int_equal(old_excluded(ig, "sp"), 1);
	assert_int_equal(old_excluded(ig, " a b"), 0);
	assert_int_equal(old_excluded(ig, "a b"), 1);
	assert_int_equal(old_excluded(dk, "  sp"), 1);
	assert_int_equal(old_excluded(dk, "sp"), 0);
	assert_int_equal(old_excluded(dk, "a b"), 0);
	ign_free(ig);
	ign_free(dk);
	/* "! " is still a bare '!' */
	ig = ign_new();
	ign_buildah_lines(ig);
	assert_int_equal(ign_parse(ig, ".dockerignore", "! \n", 3, &e), ERR_USAGE);
	assert_non_null(strstr(e.msg, "illegal exclusion pattern"));
	ign_free(ig);
}

static void test_old_matcher(void **state)
{
	struct ign *ig, *now;
	char msg[2048];
	int dec;

	(void)state;
	/* a pattern skipped at the parent still matches it (the ancestor at
	 * the pattern's depth), and an exception re-includes that way too */
	ig = parse_old("q\n!q/keep\nq*");
	now = parse_str("q\n!q/keep\nq*");
	assert_true(ign_old(ig));
	assert_false(ign_old(now));
	assert_int_equal(old_excluded(ig, "q/keep"), 1);
	assert_int_equal(walk_excluded(now, "q/keep", 6), 0);
	assert_int_equal(ign_match(ig, "q/keep", 6, NULL, NULL, &dec), 1);
	assert_int_equal(dec, 2);
	ign_free(ig);
	ign_free(now);
	ig = parse_old("lib/**\n!lib");
	now = parse_str("lib/**\n!lib");
	assert_int_equal(old_excluded(ig, "lib"), 0);
	assert_int_equal(old_excluded(ig, "lib/a.js"), 0);
	assert_int_equal(old_excluded(ig, "lib/sub/b.js"), 0);
	assert_int_equal(walk_excluded(now, "lib/a.js", 8), 1);
	ign_free(ig);
	ign_free(now);
	/* the depth: a pattern deeper than the parent is not tried on it */
	ig = parse_old("a/b/c\nx");
	assert_int_equal(old_excluded(ig, "a/b"), 0);
	assert_int_equal(old_excluded(ig, "a/b/c/d"), 1);
	assert_int_equal(old_excluded(ig, "x/y/z"), 1);
	assert_int_equal(old_excluded(ig, "y/x"), 0);
	/* the parent as Go's filepath.Dir gives it: cleaned */
	assert_int_equal(old_excluded(ig, "./x/y"), 1);
	assert_int_equal(old_excluded(ig, "a//b/c/d"), 1);
	assert_int_equal(old_excluded(ig, "y/../x/z"), 1);
	ign_free(ig);
	/* every pattern a regexp, only '.' and '$' escaped */
	ig = parse_old("notes(old).txt\n**foo\nlib**\nv1+2");
	assert_int_equal(ign_pattern_kind(ig, 0), 'r');
	assert_string_equal(ign_pattern_regex(ig, 0), "^notes(old)\\.txt$");
	assert_string_equal(ign_pattern_regex(ig, 1), "^(.*/)?foo$");
	assert_string_equal(ign_pattern_regex(ig, 2), "^lib.*$");
	assert_int_equal(old_excluded(ig, "notes(old).txt"), 0);
	assert_int_equal(old_excluded(ig, "notesold.txt"), 1);
	assert_int_equal(old_excluded(ig, "barfoo"), 0);
	assert_int_equal(old_excluded(ig, "x/foo"), 1);
	assert_int_equal(old_excluded(ig, "libx"), 1);
	assert_int_equal(old_excluded(ig, "v1+2"), 0);
	assert_int_equal(old_excluded(ig, "v112"), 1);
	ign_free(ig);
	now = parse_str("notes(old).txt\n**foo");
	assert_int_equal(walk_excluded(now, "notes(old).txt", 14), 1);
	assert_int_equal(walk_excluded(now, "barfoo", 6), 1);
	ign_free(now);
	/* every pattern is tried on every path: a bad regex is an error even
	 * where the current matcher never evaluates it */
	assert_false(parse_fails("!d\\e\n*", 6, msg, sizeof(msg)));
	old_parse_fails("!d\\e\n*", ".dockerignore:1: !d\\e: syntax error in pattern");
	old_parse_fails("c++", ".dockerignore:1: c++: syntax error in pattern");
	assert_false(parse_fails("c++", 3, msg, sizeof(msg)));
}

static void test_parse_twice(void **state)
{
	struct err e = ERR_INIT;
	struct ign *ig = ign_new();

	(void)state;
	assert_int_equal(ign_parse(ig, "f", "a", 1, &e), 0);
	assert_int_equal(ign_parse(ig, "f", "b", 1, &e), ERR_USAGE);
	assert_int_equal(ign_count(ig), 1);
	ign_free(ig);
	ign_free(NULL);
}

static void test_nul_in_path_and_pattern(void **state)
{
	static const char pat[] = "a\0b*\n";
	struct ign *ig = parse_or_fail(pat, sizeof(pat) - 1);

	(void)state;
	assert_int_equal(ign_match(ig, "a\0bc", 4, NULL, NULL, NULL), 1);
	assert_int_equal(ign_match(ig, "a\0c", 3, NULL, NULL, NULL), 0);
	ign_free(ig);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void test_pathological(void **state)
{
	static const char *pats[] = {
		"*a*a*a*a*a*a*a*a*b",
		"*a*a*a*a*a*a*a*a*b*",
		"**a**a**a**a**a**a**a**b",
		"**a**a**a**a**a**a**a**b?*",
		"a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b",
		"\\Q*\\E**/**/**/**/**/**/**/**/**/**/x",
	};
	char path[1200];
	double t0 = now();
	size_t i, k;

	(void)state;
	memset(path, 'a', 200);
	for (i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
		struct ign *ig = parse_str(pats[i]);

		for (k = 0; k < 20; k++)
			assert_int_equal(ign_match(ig, path, 200, NULL, NULL, NULL),
					 0);
		ign_free(ig);
	}
	/* deep path of a/a/a/... for the ** patterns */
	for (k = 0; k < 1000; k += 2) {
		path[k] = 'a';
		path[k + 1] = '/';
	}
	{
		struct ign *ig = parse_str("**/a/**/a/**/a/**/a/**/b*");

		assert_int_equal(ign_match(ig, path, 999, NULL, NULL, NULL), 0);
		ign_free(ig);
	}
	if (now() - t0 > 2.0) {
		print_error("pathological patterns took %.2fs\n", now() - t0);
		fail();
	}
}

static void test_regex_engine(void **state)
{
	static const struct {
		const char *re;
		const char *s;
		int m;
	} t[] = {
		{"^a|b$", "xb", 1},
		{"^a|b$", "ax", 1},
		{"^(a|bc)+$", "abcbca", 1},
		{"^(a|bc)+$", "abcb", 0},
		{"^x{2,3}$", "xxxx", 0},
		{"^x{2,}$", "xxxxx", 1},
		{"^x{0}y$", "y", 1},
		{"^[^a]$", "\n", 1},
		{"^.$", "\n", 0},
		{"^\\x{263a}$", "\xE2\x98\xBA", 1},
		{"^[\\d\\-]+$", "1-2", 1},
		{"^[[:^digit:]]$", "a", 1},
		{"^\\Bb$", "b", 0},
		{"^a\\b$", "a", 1},
		{"\\Ab\\z", "ab", 0},
		{"b", "ab", 1},
		{"^\\S\\W$", "a!", 1},
		{"^[\\x41-\\x43]+$", "ABC", 1},
		{"^\\012$", "\n", 1},
		{"^a*?b$", "aab", 1},
	};
	static const char *bad[] = {"a**", "(", ")", "[a", "[b-a]", "\\q", "*",
				    "a{2}{3}", "\\8", "\\x4", "[[:nope:]]",
				    "\xFF"};
	char why[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct ign_re *re;

		if (ign_re_compile(t[i].re, strlen(t[i].re), &re, why,
				   sizeof(why))) {
			print_error("%s: %s\n", t[i].re, why);
			fail();
		}
		if (ign_re_match(re, t[i].s, strlen(t[i].s)) != t[i].m ||
		    ign_re_match_nfa(re, t[i].s, strlen(t[i].s)) != t[i].m) {
			print_error("%s vs %s: want %d\n", t[i].re, t[i].s, t[i].m);
			ign_re_free(re);
			fail();
		}
		ign_re_free(re);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ign_re *re = NULL;

		assert_int_equal(ign_re_compile(bad[i], strlen(bad[i]), &re, why,
						sizeof(why)),
				 IGN_RE_INVALID);
		assert_null(re);
	}
}

static void test_regex_too_large(void **state)
{
	/* nested counted repeats multiply to at most 1000 (Go's rule, and
	 * ours), so go wide: 1100 alternatives of a{1000} pass Go's limits
	 * but top this engine's 1M instructions */
	struct buf b = BUF_INIT;
	struct ign_re *re = NULL;
	char why[128];
	int i;

	(void)state;
	for (i = 0; i < 1100; i++)
		buf_addstr(&b, i ? "|a{1000}" : "a{1000}");
	assert_int_equal(ign_re_compile(b.data, b.len, &re, why, sizeof(why)),
			 IGN_RE_UNSUPPORTED);
	assert_null(re);
	assert_non_null(strstr(why, "too large"));
	buf_release(&b);
}

static void test_utf8_decode(void **state)
{
	size_t w;

	(void)state;
	assert_int_equal(ign_utf8_decode("\xEF\xBF\xBD", 3, &w), 0xFFFD);
	assert_int_equal(w, 3);
	assert_int_equal(ign_utf8_decode("\xFF", 1, &w), 0xFFFD);
	assert_int_equal(w, 1);
	assert_int_equal(ign_utf8_decode("\xED\xA0\x80", 3, &w), 0xFFFD);
	assert_int_equal(w, 1); /* surrogate */
	assert_int_equal(ign_utf8_decode("\xC0\xAF", 2, &w), 0xFFFD);
	assert_int_equal(w, 1); /* overlong */
	assert_int_equal(ign_utf8_decode("\xF4\x8F\xBF\xBF", 4, &w), 0x10FFFF);
	assert_int_equal(ign_utf8_decode("\xE2\x82", 2, &w), 0xFFFD);
	assert_int_equal(w, 1); /* truncated */
}

/* ---- main ---- */

#define SIMPLE(f) {#f, f, NULL, NULL, NULL}

int main(void)
{
	static const struct CMUnitTest simple[] = {
		SIMPLE(test_line_too_long),
		SIMPLE(test_long_line_error_first),
		SIMPLE(test_kinds_and_regex),
		SIMPLE(test_descend),
		SIMPLE(test_deciding_and_metadata),
		SIMPLE(test_stateless_rule),
		SIMPLE(test_never_evaluated_exception),
		SIMPLE(test_old_matcher),
		SIMPLE(test_buildah_lines),
		SIMPLE(test_parse_twice),
		SIMPLE(test_nul_in_path_and_pattern),
		SIMPLE(test_pathological),
		SIMPLE(test_regex_engine),
		SIMPLE(test_regex_too_large),
		SIMPLE(test_utf8_decode),
	};
	size_t nw = sizeof(wcases) / sizeof(wcases[0]);
	size_t ne = sizeof(ecases) / sizeof(ecases[0]);
	size_t nsimple = sizeof(simple) / sizeof(simple[0]);
	size_t counts[2], nv, nev, n = 0, i, total;
	struct vec *v = load_vectors("dockerignore-vectors.tsv", &nv);
	struct vec *ev = load_vectors("dockerignore-error-vectors.tsv", &nev);
	struct CMUnitTest *tests;
	char (*names)[200];
	int rc;

	counts[0] = nv;
	counts[1] = nev;
	total = 1 + nv + nev + nw + ne + nsimple;
	tests = calloc(total, sizeof(*tests));
	names = calloc(nw + ne, sizeof(*names));
	tests[n].name = "shared vectors present";
	tests[n].test_func = test_vectors_present;
	tests[n++].initial_state = counts;
	for (i = 0; i < nv; i++) {
		tests[n].name = v[i].name;
		tests[n].test_func = test_vector;
		tests[n++].initial_state = &v[i];
	}
	for (i = 0; i < nev; i++) {
		tests[n].name = ev[i].name;
		tests[n].test_func = test_error_vector;
		tests[n++].initial_state = &ev[i];
	}
	for (i = 0; i < nw; i++) {
		snprintf(names[i], sizeof(names[i]), "walk: %s", wcases[i].name);
		tests[n].name = names[i];
		tests[n].test_func = test_wcase;
		tests[n++].initial_state = (void *)&wcases[i];
	}
	for (i = 0; i < ne; i++) {
		snprintf(names[nw + i], sizeof(names[0]), "parse: %s",
			 ecases[i].name);
		tests[n].name = names[nw + i];
		tests[n].test_func = test_ecase;
		tests[n++].initial_state = (void *)&ecases[i];
	}
	for (i = 0; i < nsimple; i++)
		tests[n++] = simple[i];
	rc = _cmocka_run_group_tests("ignore", tests, n, NULL, NULL);
	free(tests);
	free(names);
	free_vectors(v, nv);
	free_vectors(ev, nev);
	return rc;
}
