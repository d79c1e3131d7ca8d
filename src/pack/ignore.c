/*
 * ignore: the .dockerignore reader and matcher, as BuildKit runs it
 * (shared/docs/dockerignore.md sections 2-5 and 8).
 *
 * Docker processes each line twice: ignorefile.ReadAll (trim, '!', Clean,
 * strip one leading '/') and then patternmatcher.New (trim and Clean the
 * whole string again, '!' check, filepath.Match syntax check).  Both
 * passes are reproduced literally because the second one is not a no-op:
 * "a /." reads as "a " and then becomes "a"; "!../.." becomes the normal
 * pattern ".".  Each pattern is then sorted into exact, prefix, suffix or
 * regexp kind exactly as Pattern.compile does; the regexp kind goes to
 * ignore_re.c with the regex text Docker would hand to Go.
 *
 * One upstream detail the spec text does not mention: compile's
 * shouldEscape() keeps its set in an [8]byte bitmap indexed by b%8 with
 * bit b/8, so the bit for any byte >= 64 overflows to zero.  Of the set
 * ". + ( ) | { } $" only ". + ( ) $" are really escaped; '|', '{' and '}'
 * reach the regex raw (alternation, counted repetition).  We do the same.
 *
 * The matcher of Docker clients before 23 (ign_old_matcher; moby's
 * pkg/fileutils of 20.10, run by that CLI's classic tar and by its 2020
 * file-sync walk for BuildKit) differs in three ways: every pattern is a
 * regexp with only '.' and '$' escaped, every pattern is tested on every
 * path (so a bad regex fails the first match, whatever precedes it), and
 * a path is matched by a pattern that matches it or, failing that, its
 * ancestor at the pattern's depth (its first N elements for a pattern of
 * N elements), with no state carried from the parent (the deprecated
 * Matches).
 *
 * buildah and podman (ign_buildah_lines) read the lines as Docker does
 * but for one thing: the text after a '!' is not trimmed again ("! a" is
 * an exception for " a").  Their matcher is the old one.
 */
#include "ctxpack/ignore.h"

#include <stdlib.h>
#include <string.h>

/* bufio.Scanner's default buffer: a line plus its '\n' must fit. */
#define MAX_LINE 65536

enum {
	K_EXACT = 'e',
	K_PREFIX = 'p',
	K_SUFFIX = 's',
	K_REGEXP = 'r',
	K_NEVER = 'n', /* exception with a bad regex that cannot be reached */
};

struct pat {
	char *text;       /* the line as written, trimmed (messages) */
	unsigned line;    /* 1-based */
	uint8_t exception;
	uint8_t kind;
	uint8_t literal;  /* exceptions: descent text has no wildcard */
	char *clean;      /* Go's cleanedPattern: without the '!' */
	size_t clean_len;
	const char *lit;  /* the bytes compared by exact/prefix/suffix */
	size_t lit_len;
	size_t desc_len;  /* exceptions: clean minus one "/ **" then one "/ *" */
	char *regex;      /* regexp kind: the Go regex text; "" otherwise */
	struct ign_re *re;
	size_t ndirs;     /* old matcher: elements of clean ('/'-split) */
};

struct ign {
	char *fname;
	struct pat *v;
	size_t n, alloc;
	int has_exc;
	int all_literal; /* every exception is literal (section 5) */
	int parsed;
	int old;         /* the matcher of Docker clients before 23 */
	int buildah;     /* buildah's reading of the lines (ign_buildah_lines) */
};

struct ign *ign_new(void)
{
	return xcalloc(1, sizeof(struct ign));
}

static void free_patterns(struct ign *ig)
{
	size_t i;

	for (i = 0; i < ig->n; i++) {
		free(ig->v[i].text);
		free(ig->v[i].clean);
		free(ig->v[i].regex);
		ign_re_free(ig->v[i].re);
	}
	free(ig->v);
	ig->v = NULL;
	ig->n = ig->alloc = 0;
}

void ign_free(struct ign *ig)
{
	if (!ig)
		return;
	free_patterns(ig);
	free(ig->fname);
	free(ig);
}

static int mem_eq(const void *a, const void *b, size_t n)
{
	return n == 0 || memcmp(a, b, n) == 0;
}

/* ---- Go's strings.TrimSpace ---- */

/* Length of the Unicode white space (unicode.IsSpace) starting s, or 0. */
static size_t space_at(const unsigned char *s, size_t n)
{
	if (n >= 1 && ((s[0] >= '\t' && s[0] <= '\r') || s[0] == ' '))
		return 1;
	if (n >= 2 && s[0] == 0xC2 && (s[1] == 0x85 || s[1] == 0xA0))
		return 2;
	if (n < 3)
		return 0;
	if (s[0] == 0xE1 && s[1] == 0x9A && s[2] == 0x80) /* U+1680 */
		return 3;
	if (s[0] == 0xE2 && s[1] == 0x80 &&
	    ((s[2] >= 0x80 && s[2] <= 0x8A) || s[2] == 0xA8 || s[2] == 0xA9 ||
	     s[2] == 0xAF))
		return 3; /* U+2000-200A, U+2028, U+2029, U+202F */
	if (s[0] == 0xE2 && s[1] == 0x81 && s[2] == 0x9F) /* U+205F */
		return 3;
	if (s[0] == 0xE3 && s[1] == 0x80 && s[2] == 0x80) /* U+3000 */
		return 3;
	return 0;
}

/* Length of the white space ending s[0..n), or 0.  Every space is a valid
 * sequence, so matching the bytes is the same as decoding backwards. */
static size_t space_before(const unsigned char *s, size_t n)
{
	size_t k;

	for (k = 1; k <= 3 && k <= n; k++)
		if (space_at(s + n - k, k) == k)
			return k;
	return 0;
}

static void trim_space(const char **s, size_t *n)
{
	const unsigned char *p = (const unsigned char *)*s;
	size_t k;

	while (*n && (k = space_at(p, *n)) != 0) {
		p += k;
		*n -= k;
	}
	while (*n && (k = space_before(p, *n)) != 0)
		*n -= k;
	*s = (const char *)p;
}

/* ---- Go's filepath.Clean (Unix), lexical ---- */

/*
 * Writes the cleaned form of p[0..n) to out, which must hold n + 1 bytes
 * (the result is never longer than the input, except "" -> ".").
 */
static size_t path_clean(const char *p, size_t n, char *out)
{
	int rooted;
	size_t r = 0, w = 0, dotdot = 0;

	if (n == 0) {
		out[0] = '.';
		return 1;
	}
	rooted = p[0] == '/';
	if (rooted) {
		out[w++] = '/';
		r = dotdot = 1;
	}
	while (r < n) {
		if (p[r] == '/') {
			r++;
		} else if (p[r] == '.' && (r + 1 == n || p[r + 1] == '/')) {
			r++;
		} else if (p[r] == '.' && r + 1 < n && p[r + 1] == '.' &&
			   (r + 2 == n || p[r + 2] == '/')) {
			r += 2;
			if (w > dotdot) {
				/* drop the last element */
				w--;
				while (w > dotdot && out[w] != '/')
					w--;
			} else if (!rooted) {
				/* a leading ".." cannot be cancelled */
				if (w > 0)
					out[w++] = '/';
				out[w++] = '.';
				out[w++] = '.';
				dotdot = w;
			}
		} else {
			if ((rooted && w != 1) || (!rooted && w != 0))
				out[w++] = '/';
			while (r < n && p[r] != '/')
				out[w++] = p[r++];
		}
	}
	if (w == 0) {
		out[0] = '.';
		return 1;
	}
	return w;
}

/* 1 when p[0..n) is already what Clean would make of it (and not "."). */
static int path_is_clean(const char *p, size_t n)
{
	size_t i, start = 0;

	if (n == 0 || p[0] == '/' || p[n - 1] == '/')
		return 0;
	for (i = 0; i <= n; i++) {
		if (i < n && p[i] != '/')
			continue;
		if (i == start)
			return 0; /* "//" */
		if (i - start == 1 && p[start] == '.')
			return 0;
		if (i - start == 2 && p[start] == '.' && p[start + 1] == '.')
			return 0;
		start = i + 1;
	}
	return 1;
}

/* ---- Go's filepath.Match(pattern, "."), for its errors ---- */

/* getEsc: one class character, not '-' or ']' unless escaped, valid
 * UTF-8, and something must follow it.  0, or -1 (ErrBadPattern). */
static int go_get_esc(const char *c, size_t n, size_t *i, uint32_t *r)
{
	size_t w;

	if (*i >= n || c[*i] == '-' || c[*i] == ']')
		return -1;
	if (c[*i] == '\\' && ++*i >= n)
		return -1;
	*r = ign_utf8_decode(c + *i, n - *i, &w);
	if (*r == 0xFFFD && w == 1)
		return -1;
	*i += w;
	return *i < n ? 0 : -1;
}

/*
 * matchChunk: does chunk c match the start of s?  1 (and *used, the bytes
 * of s it took), 0, or -1 for a malformed chunk.  After a mismatch the
 * rest of the chunk is still read, for its syntax.
 */
static int go_match_chunk(const char *c, size_t cn, const char *s, size_t sn, size_t *used)
{
	size_t i = 0, j = 0, w, nrange;
	int failed = 0, negated, match;
	uint32_t r, lo, hi;

	while (i < cn) {
		if (!failed && j >= sn)
			failed = 1;
		if (c[i] == '[') {
			r = 0;
			if (!failed) {
				r = ign_utf8_decode(s + j, sn - j, &w);
				j += w;
			}
			i++;
			negated = i < cn && c[i] == '^';
			i += (size_t)negated;
			for (match = 0, nrange = 0;; nrange++) {
				if (i < cn && c[i] == ']' && nrange > 0) {
					i++;
					break;
				}
				if (go_get_esc(c, cn, &i, &lo))
					return -1;
				hi = lo;
				if (c[i] == '-') {
					i++;
					if (go_get_esc(c, cn, &i, &hi))
						return -1;
				}
				if (lo <= r && r <= hi)
					match = 1;
			}
			if (match == negated)
				failed = 1;
		} else if (c[i] == '?') {
			if (!failed) {
				if (s[j] == '/')
					failed = 1;
				ign_utf8_decode(s + j, sn - j, &w);
				j += w;
			}
			i++;
		} else {
			if (c[i] == '\\' && ++i >= cn)
				return -1;
			if (!failed) {
				if (c[i] != s[j])
					failed = 1;
				j++;
			}
			i++;
		}
	}
	if (failed)
		return 0;
	*used = j;
	return 1;
}

/*
 * 1 when Go's filepath.Match(p, ".") reports ErrBadPattern, which New()
 * turns into "syntax error in pattern".  Match reads the pattern chunk by
 * chunk (a chunk: the text after a run of '*') only as far as the match
 * goes: a chunk that fails to match is still read to its end, but once
 * the match has failed the chunks after it are not looked at.  So
 * "[-]x", "*" "/[-]x" and "a/[-]x" are errors and "a*" "/[-]x" is not
 * (Docker 20.10.24 and 28.2.2 both take it; its regex is valid and
 * decides).
 */
static int go_match_dot_bad(const char *p, size_t n)
{
	const char *name = ".";
	size_t nn = 1, pos = 0, cs, i, k, used;
	int star, inrange, r;

	while (pos < n) {
		for (star = 0; pos < n && p[pos] == '*'; pos++)
			star = 1;
		for (i = pos, inrange = 0; i < n; i++) {
			if (p[i] == '\\') {
				if (i + 1 < n)
					i++;
			} else if (p[i] == '[') {
				inrange = 1;
			} else if (p[i] == ']') {
				inrange = 0;
			} else if (p[i] == '*' && !inrange) {
				break;
			}
		}
		cs = pos;
		pos = i;
		if (star && cs == pos)
			return 0; /* a trailing star: matched or not, no error */
		r = go_match_chunk(p + cs, pos - cs, name, nn, &used);
		if (r == 1 && (used == nn || pos < n)) {
			name += used;
			nn -= used;
			continue;
		}
		if (r < 0)
			return 1;
		if (!star)
			return 0;
		/* the star takes one more byte each time, never a '/' */
		for (k = 0, r = 0; k < nn && name[k] != '/' && r != 1; k++) {
			r = go_match_chunk(p + cs, pos - cs, name + k + 1, nn - k - 1, &used);
			if (r < 0)
				return 1;
			if (r == 1 && pos == n && used < nn - k - 1)
				r = 0; /* the last chunk must end the name */
			if (r == 1) {
				name += k + 1 + used;
				nn -= k + 1 + used;
			}
		}
		if (r != 1)
			return 0;
	}
	return 0;
}

/* ---- Pattern.compile ---- */

/*
 * Classify pt->clean and build its regex text in rx.  Runs over code
 * points as Go's text/scanner does: an invalid byte becomes U+FFFD, and a
 * byte order mark at the very start is skipped (it still counts in the
 * exact/prefix/suffix texts, which use the raw bytes).
 */
static void classify(struct pat *pt, struct buf *rx, int old)
{
	const char *s = pt->clean;
	size_t n = pt->clean_len, pos = 0, w;
	int kind = K_EXACT, first = 1;
	char enc[8];
	uint32_t c;

	buf_reset(rx);
	buf_addch(rx, '^');
	if (n >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3))
		pos = 3;
	while (pos < n) {
		int at_start = first;

		first = 0;
		c = ign_utf8_decode(s + pos, n - pos, &w);
		pos += w;
		if (c == '*') {
			if (pos < n && s[pos] == '*') {
				pos++;
				if (pos < n && s[pos] == '/')
					pos++; /* "**" + "/" */
				if (pos == n) {
					if (kind == K_EXACT && !old) {
						kind = K_PREFIX;
					} else {
						buf_addstr(rx, ".*");
						kind = K_REGEXP;
					}
				} else {
					buf_addstr(rx, "(.*/)?");
					kind = K_REGEXP;
				}
				if (at_start)
					kind = K_SUFFIX;
			} else {
				buf_addstr(rx, "[^/]*");
				kind = K_REGEXP;
			}
		} else if (c == '?') {
			buf_addstr(rx, "[^/]");
			kind = K_REGEXP;
		} else if (c == '.' || c == '$' ||
			   (!old && (c == '+' || c == '(' || c == ')'))) {
			/* upstream's set also names | { }, but see the top;
			 * before 23 it was '.' and '$' */
			buf_addch(rx, '\\');
			buf_addch(rx, (int)c);
		} else if (c == '\\') {
			if (pos < n) {
				c = ign_utf8_decode(s + pos, n - pos, &w);
				pos += w;
				buf_addch(rx, '\\');
				buf_add(rx, enc, ign_utf8_encode(c, enc));
				kind = K_REGEXP;
			} else {
				buf_addch(rx, '\\');
			}
		} else if (c == '[' || c == ']') {
			buf_addch(rx, (int)c);
			kind = K_REGEXP;
		} else {
			buf_add(rx, enc, ign_utf8_encode(c, enc));
		}
	}
	/* before 23 every pattern was a regexp */
	if (old)
		kind = K_REGEXP;
	pt->kind = (uint8_t)kind;
	switch (kind) {
	case K_EXACT:
		pt->lit = pt->clean;
		pt->lit_len = pt->clean_len;
		break;
	case K_PREFIX: /* strip the trailing "**" */
		pt->lit = pt->clean;
		pt->lit_len = pt->clean_len - 2;
		break;
	case K_SUFFIX: /* strip the leading "**" */
		pt->lit = pt->clean + 2;
		pt->lit_len = pt->clean_len - 2;
		break;
	default:
		buf_addch(rx, '$');
		break;
	}
}

/* Does this one pattern match the path itself? */
static int pat_match(const struct pat *pt, const char *s, size_t n)
{
	switch (pt->kind) {
	case K_EXACT:
		return n == pt->lit_len && mem_eq(s, pt->lit, n);
	case K_PREFIX:
		return n >= pt->lit_len && mem_eq(s, pt->lit, pt->lit_len);
	case K_SUFFIX:
		if (n >= pt->lit_len &&
		    mem_eq(s + n - pt->lit_len, pt->lit, pt->lit_len))
			return 1;
		/* "**" + "/foo" also matches "foo" */
		return pt->lit_len > 0 && pt->lit[0] == '/' &&
		       n == pt->lit_len - 1 && mem_eq(s, pt->lit + 1, n);
	case K_REGEXP:
		return ign_re_match(pt->re, s, n);
	}
	return 0;
}

/*
 * Does the pattern match an ancestor directory of the path (Go: Dir, then
 * every prefix of its '/'-split elements)?  Only used without parent
 * flags.  A clean path's ancestors are its prefixes; anything else goes
 * through Clean like filepath.Dir does (and allocates).
 */
static int pat_match_parents(const struct pat *pt, const char *s, size_t n)
{
	size_t i, dn;
	char *dir;
	int hit = 0;

	if (path_is_clean(s, n)) {
		for (i = 0; i < n; i++)
			if (s[i] == '/' && pat_match(pt, s, i))
				return 1;
		return 0;
	}
	for (dn = n; dn > 0 && s[dn - 1] != '/'; dn--)
		;
	dir = xmalloc(dn + 2);
	dn = path_clean(s, dn, dir);
	if (!(dn == 1 && dir[0] == '.')) {
		for (i = 0; i <= dn && !hit; i++)
			if (i == dn || dir[i] == '/')
				hit = pat_match(pt, dir, i);
	}
	free(dir);
	return hit;
}

/* ---- reading ---- */

static struct pat *add_pattern(struct ign *ig)
{
	if (ig->n == ig->alloc) {
		ig->alloc = ig->alloc ? 2 * ig->alloc : 16;
		ig->v = xreallocarray(ig->v, ig->alloc, sizeof(*ig->v));
	}
	memset(&ig->v[ig->n], 0, sizeof(ig->v[0]));
	return &ig->v[ig->n++];
}

static char *dup_bytes(const char *s, size_t n)
{
	char *d = xmalloc(n + 1);

	if (n)
		memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

/* Remove one trailing slash-star-star, then one trailing slash-star (fsutil's
 * patternWithoutTrailingGlob). */
static size_t without_trailing_glob(const char *s, size_t n)
{
	if (n >= 3 && !memcmp(s + n - 3, "/**", 3))
		n -= 3;
	if (n >= 2 && !memcmp(s + n - 2, "/*", 2))
		n -= 2;
	return n;
}

static int has_wildcard(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strchr("*?[]^\\", s[i]) && s[i])
			return 1;
	return 0;
}

/*
 * One line, from after ReadAll's comment check: the rest of ReadAll and
 * then New's second pass.  Appends a pattern, or nothing when New drops
 * the string.  Returns 0 or an error.
 */
static int read_line(struct ign *ig, const char *fname, unsigned lineno,
		     const char *s, size_t n, struct err *e)
{
	const char *text = s, *r, *q;
	size_t tn = n, rn, qn, cn;
	char *once = NULL, *twice = NULL;
	struct pat *pt;
	int exc = 0, ret = 0;

	/* ReadAll: trim, '!' with a second trim (not buildah's), Clean, one
	 * leading '/' */
	r = s;
	rn = n;
	if (r[0] == '!') {
		r++;
		rn--;
		if (!ig->buildah)
			trim_space(&r, &rn);
	}
	once = xmalloc(rn + 2);
	cn = 0;
	if (text[0] == '!')
		once[cn++] = '!';
	if (rn) {
		size_t k = path_clean(r, rn, once + cn);

		if (k > 1 && once[cn] == '/') {
			memmove(once + cn, once + cn + 1, k - 1);
			k--;
		}
		cn += k;
	}

	/* New: trim, Clean the whole string, '!', filepath.Match check */
	q = once;
	qn = cn;
	trim_space(&q, &qn);
	if (!qn)
		goto out;
	twice = xmalloc(qn + 2);
	qn = path_clean(q, qn, twice);
	q = twice;
	if (q[0] == '!') {
		if (qn == 1) {
			ret = err_set(e, ERR_USAGE,
				      "%s:%u: %.*s: illegal exclusion pattern: \"!\"",
				      fname, lineno, (int)tn, text);
			goto out;
		}
		exc = 1;
		q++;
		qn--;
	}
	if (go_match_dot_bad(q, qn)) {
		ret = err_set(e, ERR_USAGE, "%s:%u: %.*s: syntax error in pattern",
			      fname, lineno, (int)tn, text);
		goto out;
	}
	pt = add_pattern(ig);
	pt->text = dup_bytes(text, tn);
	pt->line = lineno;
	pt->exception = (uint8_t)exc;
	pt->clean = dup_bytes(q, qn);
	pt->clean_len = qn;
out:
	free(once);
	free(twice);
	return ret;
}

/* Compile every pattern; regex failures are refused here (section 8). */
static int compile_all(struct ign *ig, struct err *e)
{
	struct buf rx = BUF_INIT;
	char why[160];
	int seen_normal = 0, ret = 0, rc;
	size_t i, k;

	for (i = 0; i < ig->n; i++) {
		struct pat *pt = &ig->v[i];

		classify(pt, &rx, ig->old);
		for (k = 0, pt->ndirs = 1; ig->old && k < pt->clean_len; k++)
			pt->ndirs += pt->clean[k] == '/';
		if (pt->kind == K_REGEXP) {
			pt->regex = dup_bytes(rx.data, rx.len);
			rc = ign_re_compile(rx.data, rx.len, &pt->re, why,
					    sizeof(why));
			/* (the old matcher tests every pattern on every path) */
			if (rc && pt->exception && !seen_normal && !ig->old) {
				/* nothing can be excluded before it, so Docker
				 * never evaluates it and never notices */
				pt->kind = K_NEVER;
			} else if (rc == IGN_RE_UNSUPPORTED) {
				ret = err_set(e, ERR_USAGE,
					      "%s:%u: %s: unsupported in pattern (%s)",
					      ig->fname, pt->line, pt->text, why);
				goto out;
			} else if (rc) {
				ret = err_set(e, ERR_USAGE,
					      "%s:%u: %s: syntax error in pattern "
					      "(invalid regular expression: %s)",
					      ig->fname, pt->line, pt->text, why);
				goto out;
			}
		} else {
			pt->regex = dup_bytes("", 0);
		}
		if (!pt->exception)
			seen_normal = 1;
	}
	ig->all_literal = 1;
	for (i = 0; i < ig->n; i++) {
		struct pat *pt = &ig->v[i];

		if (!pt->exception)
			continue;
		ig->has_exc = 1;
		pt->desc_len = without_trailing_glob(pt->clean, pt->clean_len);
		pt->literal = (uint8_t)!has_wildcard(pt->clean, pt->desc_len);
		if (!pt->literal)
			ig->all_literal = 0;
	}
out:
	buf_release(&rx);
	return ret;
}

int ign_parse(struct ign *ig, const char *fname, const char *data, size_t len,
	      struct err *e)
{
	size_t off, n;
	unsigned lineno;
	int ret = 0;

	if (!fname)
		fname = "";
	if (ig->parsed)
		return err_set(e, ERR_USAGE, "%s: ignore patterns already parsed",
			       fname);
	ig->parsed = 1;
	ig->fname = xstrdup(fname);

	/* bufio.Scanner gives up on the first line that overflows its
	 * buffer, before any pattern is looked at */
	for (off = 0, lineno = 1; off < len; lineno++) {
		const char *nl = memchr(data + off, '\n', len - off);

		n = nl ? (size_t)(nl - (data + off)) : len - off;
		if (n >= MAX_LINE) {
			ret = err_set(e, ERR_USAGE,
				      "%s:%u: line too long (over %d bytes)", fname,
				      lineno, MAX_LINE);
			goto out;
		}
		off += n + (nl != NULL);
	}

	for (off = 0, lineno = 1; off < len; lineno++) {
		const char *s = data + off, *nl = memchr(s, '\n', len - off);

		n = nl ? (size_t)(nl - s) : len - off;
		off += n + (nl != NULL);
		if (n && s[n - 1] == '\r')
			n--;
		if (lineno == 1 && n >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) {
			s += 3;
			n -= 3;
		}
		if (n && s[0] == '#')
			continue; /* only in column one, before trimming */
		trim_space(&s, &n);
		if (!n)
			continue;
		ret = read_line(ig, fname, lineno, s, n, e);
		if (ret)
			goto out;
	}
	ret = compile_all(ig, e);
out:
	if (ret)
		free_patterns(ig);
	return ret;
}

size_t ign_count(const struct ign *ig)
{
	return ig->n;
}

void ign_old_matcher(struct ign *ig)
{
	ig->old = 1;
}

void ign_buildah_lines(struct ign *ig)
{
	ig->buildah = 1;
}

int ign_old(const struct ign *ig)
{
	return ig->old;
}

int ign_has_exceptions(const struct ign *ig)
{
	return ig->has_exc;
}

/*
 * The deprecated Matches of Docker clients before 23: each pattern tested
 * on the path, else on the path's ancestor at the pattern's depth (the
 * first N elements of the parent directory, Go's filepath.Dir, when it
 * has N); the last pattern that matches decides.
 */
static int old_match(const struct ign *ig, const char *path, size_t len, int *deciding)
{
	size_t i, k, pdirs = 0, plen = 0, cut;
	int excluded = 0, dec = -1, hit;
	const char *par = path;
	char *own = NULL;

	for (k = len; k > 0 && path[k - 1] != '/'; k--)
		;
	if (k > 0 && path_is_clean(path, len)) {
		plen = k - 1;
	} else if (k > 0) {
		/* Dir cleans what is before the last '/' */
		own = xmalloc(k + 2);
		plen = path_clean(path, k, own);
		par = own;
		if (plen == 1 && own[0] == '.')
			plen = 0;
	}
	if (plen) {
		pdirs = 1;
		for (k = 0; k < plen; k++)
			pdirs += par[k] == '/';
	}
	for (i = 0; i < ig->n; i++) {
		const struct pat *pt = &ig->v[i];

		hit = pat_match(pt, path, len);
		if (!hit && pdirs && pt->ndirs <= pdirs) {
			for (k = 0, cut = 0; cut < plen; cut++)
				if (par[cut] == '/' && ++k == pt->ndirs)
					break;
			hit = pat_match(pt, par, cut);
		}
		if (hit) {
			excluded = !pt->exception;
			dec = (int)i;
		}
	}
	free(own);
	if (deciding)
		*deciding = dec;
	return excluded;
}

/*
 * MatchesUsingParentResults.  A pattern that matched the parent is taken
 * as matched without a test; otherwise it is tested only when it could
 * change the verdict.
 */
int ign_match(const struct ign *ig, const char *path, size_t len,
	      const uint8_t *parent_flags, uint8_t *flags, int *deciding)
{
	int excluded = 0, dec = -1, hit;
	size_t i;

	if (ig->old) {
		if (flags)
			memset(flags, 0, ig->n);
		return old_match(ig, path, len, deciding);
	}
	for (i = 0; i < ig->n; i++) {
		const struct pat *pt = &ig->v[i];

		if (parent_flags && parent_flags[i]) {
			hit = 1;
		} else if (pt->exception != excluded) {
			if (flags)
				flags[i] = 0;
			continue;
		} else {
			hit = pat_match(pt, path, len);
			if (!hit && !parent_flags)
				hit = pat_match_parents(pt, path, len);
		}
		if (flags)
			flags[i] = (uint8_t)hit;
		if (hit) {
			excluded = !pt->exception;
			dec = (int)i;
		}
	}
	if (deciding)
		*deciding = dec;
	return excluded;
}

int ign_excluded_path(const struct ign *ig, const char *path, size_t len)
{
	if (len == 0 || (len == 1 && path[0] == '.'))
		return 0;
	return ign_match(ig, path, len, NULL, NULL, NULL);
}

int ign_must_descend(const struct ign *ig, const char *dir, size_t len)
{
	size_t i;

	if (!ig->has_exc)
		return 0;
	if (!ig->all_literal)
		return 1;
	/* some trimmed exception + "/" starts with dir + "/" */
	for (i = 0; i < ig->n; i++) {
		const struct pat *pt = &ig->v[i];

		if (!pt->exception || pt->desc_len < len ||
		    !mem_eq(pt->clean, dir, len))
			continue;
		if (pt->desc_len == len || pt->clean[len] == '/')
			return 1;
	}
	return 0;
}

int ign_must_descend_classic(const struct ign *ig, const char *dir, size_t len)
{
	size_t i;

	if (!ig->has_exc)
		return 0;
	/* some exception's cleaned text + "/" starts with dir + "/",
	 * wildcards and all */
	for (i = 0; i < ig->n; i++) {
		const struct pat *pt = &ig->v[i];

		if (!pt->exception || pt->clean_len < len || !mem_eq(pt->clean, dir, len))
			continue;
		if (pt->clean_len == len || pt->clean[len] == '/')
			return 1;
	}
	return 0;
}

const char *ign_pattern_text(const struct ign *ig, size_t i)
{
	return i < ig->n ? ig->v[i].text : "";
}

unsigned ign_pattern_line(const struct ign *ig, size_t i)
{
	return i < ig->n ? ig->v[i].line : 0;
}

int ign_pattern_is_exception(const struct ign *ig, size_t i)
{
	return i < ig->n && ig->v[i].exception;
}

const char *ign_file_name(const struct ign *ig)
{
	return ig->fname ? ig->fname : "";
}

int ign_pattern_kind(const struct ign *ig, size_t i)
{
	return i < ig->n ? ig->v[i].kind : 0;
}

const char *ign_pattern_regex(const struct ign *ig, size_t i)
{
	return i < ig->n && ig->v[i].regex ? ig->v[i].regex : "";
}
