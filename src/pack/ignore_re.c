/*
 * ignore_re: the regular-expression engine behind regexp-kind
 * .dockerignore patterns (shared/docs/dockerignore.md section 3).
 *
 * Docker translates such a pattern into a Go regexp and lets Go's RE2
 * engine decide, so quirks of that syntax leak through: '\d' is a digit
 * class, '^' in the middle is a begin-of-text anchor, '[!a]' is "'!' or
 * 'a'", a class may contain '/'.  This file parses the translated regex
 * text with Go's rules (Perl flags: ClassNL, OneLine, PerlX,
 * UnicodeGroups) into a small syntax tree, compiles that into a Thompson
 * NFA program and simulates it over the code points of the path, so
 * matching is O(len(path) * len(program)) and never backtracks.
 *
 * Written from the documented behaviour of Go's regexp/syntax; no code
 * taken from Go or RE2.
 */
#include "ctxpack/ignore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RUNE 0x10FFFFu
#define MAX_HEIGHT 1000u   /* Go refuses expressions nested deeper */
#define SMALL_PROG 512u    /* programs this small match without malloc */

uint32_t ign_utf8_decode(const char *s, size_t len, size_t *width)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned lo = 0x80, hi = 0xBF;
	size_t need, i;
	uint32_t c;

	*width = 0;
	if (len == 0)
		return 0xFFFD;
	c = p[0];
	*width = 1;
	if (c < 0x80)
		return c;
	if (c < 0xC2 || c > 0xF4)
		return 0xFFFD;
	if (c < 0xE0) {
		need = 1;
		c &= 0x1F;
	} else if (c < 0xF0) {
		need = 2;
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F; /* no surrogates */
		c &= 0x0F;
	} else {
		need = 3;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
		c &= 0x07;
	}
	if (len <= need)
		return 0xFFFD;
	for (i = 1; i <= need; i++) {
		if (p[i] < lo || p[i] > hi)
			return 0xFFFD;
		lo = 0x80;
		hi = 0xBF;
		c = (c << 6) | (p[i] & 0x3F);
	}
	*width = need + 1;
	return c;
}

size_t ign_utf8_encode(uint32_t c, char *out)
{
	unsigned char *o = (unsigned char *)out;

	if (c < 0x80) {
		o[0] = (unsigned char)c;
		return 1;
	}
	if (c < 0x800) {
		o[0] = (unsigned char)(0xC0 | (c >> 6));
		o[1] = (unsigned char)(0x80 | (c & 0x3F));
		return 2;
	}
	if (c < 0x10000) {
		o[0] = (unsigned char)(0xE0 | (c >> 12));
		o[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
		o[2] = (unsigned char)(0x80 | (c & 0x3F));
		return 3;
	}
	o[0] = (unsigned char)(0xF0 | (c >> 18));
	o[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
	o[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
	o[3] = (unsigned char)(0x80 | (c & 0x3F));
	return 4;
}

/* ---- syntax tree ---- */

enum node_op {
	N_EMPTY,
	N_LIT,   /* val = code point */
	N_CLASS, /* val = class index */
	N_ANYNL, /* '.': anything but '\n' */
	N_BOT,   /* ^ \A */
	N_EOT,   /* $ \z */
	N_WORDB, /* \b */
	N_NWORDB, /* \B */
	N_CAT,   /* children in order */
	N_ALT,   /* children are the alternatives */
	N_STAR,
	N_PLUS,
	N_QUEST,
	N_REPEAT, /* {min,max}: val = min, max (-1: no upper bound) */
};

struct node {
	uint8_t op;
	uint32_t val;
	int32_t child; /* first child */
	int32_t next;  /* next sibling */
	int32_t max;   /* N_REPEAT */
	uint32_t height;
};

struct rclass {
	uint32_t off; /* into ranges[], in uint32 units */
	uint32_t n;   /* number of [lo, hi] pairs, sorted, disjoint */
};

struct parser {
	const char *s;
	size_t len;
	size_t pos;
	struct node *nodes;
	size_t nnodes, anodes;
	uint32_t *ranges; /* all classes, lo/hi pairs */
	size_t nranges, aranges;
	struct rclass *cls;
	size_t ncls, acls;
	uint32_t *tmp; /* the class being built */
	size_t ntmp, atmp;
	unsigned depth;
	int err;
	char *why;
	size_t whysz;
};

static int fail(struct parser *p, int code, const char *what, const char *at,
		size_t atlen)
{
	if (p->err)
		return -1;
	p->err = code;
	if (p->why && p->whysz) {
		if (atlen > 40)
			atlen = 40;
		if (at)
			snprintf(p->why, p->whysz, "%s `%.*s`", what, (int)atlen,
				 at);
		else
			snprintf(p->why, p->whysz, "%s", what);
	}
	return -1;
}

static int32_t new_node(struct parser *p, int op, uint32_t val)
{
	struct node *n;

	if (p->nnodes == p->anodes) {
		p->anodes = p->anodes ? 2 * p->anodes : 32;
		p->nodes = xreallocarray(p->nodes, p->anodes, sizeof(*p->nodes));
	}
	n = &p->nodes[p->nnodes];
	n->op = (uint8_t)op;
	n->val = val;
	n->child = -1;
	n->next = -1;
	n->max = 0;
	n->height = 1;
	return (int32_t)p->nnodes++;
}

/* Append child c to list node l whose last child is *last. */
static int add_child(struct parser *p, int32_t l, int32_t *last, int32_t c)
{
	if (*last < 0)
		p->nodes[l].child = c;
	else
		p->nodes[*last].next = c;
	*last = c;
	if (p->nodes[c].height + 1 > p->nodes[l].height)
		p->nodes[l].height = p->nodes[c].height + 1;
	if (p->nodes[l].height > MAX_HEIGHT)
		return fail(p, IGN_RE_INVALID, "expression nests too deeply", NULL,
			    0);
	return 0;
}

/* ---- character classes ---- */

static void tmp_add(struct parser *p, uint32_t lo, uint32_t hi)
{
	if (p->ntmp + 2 > p->atmp) {
		p->atmp = p->atmp ? 2 * p->atmp : 32;
		p->tmp = xreallocarray(p->tmp, p->atmp, sizeof(*p->tmp));
	}
	p->tmp[p->ntmp++] = lo;
	p->tmp[p->ntmp++] = hi;
}

/* Add a table of ranges (pairs), or its complement. */
static void tmp_add_table(struct parser *p, const uint32_t *t, size_t npairs,
			  int negate)
{
	uint32_t next = 0;
	size_t i;

	if (!negate) {
		for (i = 0; i < npairs; i++)
			tmp_add(p, t[2 * i], t[2 * i + 1]);
		return;
	}
	for (i = 0; i < npairs; i++) {
		if (t[2 * i] > next)
			tmp_add(p, next, t[2 * i] - 1);
		next = t[2 * i + 1] + 1;
	}
	if (next <= MAX_RUNE)
		tmp_add(p, next, MAX_RUNE);
}

/* First occurrence of the two bytes a b in s[0..n), or NULL. */
static const char *find2(const char *s, size_t n, char a, char b)
{
	size_t i;

	for (i = 0; i + 1 < n; i++)
		if (s[i] == a && s[i + 1] == b)
			return s + i;
	return NULL;
}

static int cmp_pair(const void *a, const void *b)
{
	const uint32_t *x = a, *y = b;

	if (x[0] != y[0])
		return x[0] < y[0] ? -1 : 1;
	if (x[1] != y[1])
		return x[1] < y[1] ? -1 : 1;
	return 0;
}

/* Sort and merge tmp, negate if asked, and store it as a new class. */
static uint32_t tmp_commit(struct parser *p, int negate)
{
	size_t npairs = p->ntmp / 2, i, w = 0, mark;
	uint32_t next = 0;
	struct rclass *c;

	if (npairs)
		qsort(p->tmp, npairs, 2 * sizeof(uint32_t), cmp_pair);
	for (i = 0; i < npairs; i++) {
		uint32_t lo = p->tmp[2 * i], hi = p->tmp[2 * i + 1];

		if (w && lo <= p->tmp[2 * w - 1] + 1) {
			if (hi > p->tmp[2 * w - 1])
				p->tmp[2 * w - 1] = hi;
			continue;
		}
		p->tmp[2 * w] = lo;
		p->tmp[2 * w + 1] = hi;
		w++;
	}
	p->ntmp = 2 * w;
	if (negate) {
		/* the complement is appended after the merged pairs (tmp_add
		 * may move p->tmp, so index it afresh), then moved down */
		mark = p->ntmp;
		for (i = 0; i < w; i++) {
			uint32_t lo = p->tmp[2 * i], hi = p->tmp[2 * i + 1];

			if (lo > next)
				tmp_add(p, next, lo - 1);
			next = hi + 1;
		}
		if (next <= MAX_RUNE)
			tmp_add(p, next, MAX_RUNE);
		memmove(p->tmp, p->tmp + mark, (p->ntmp - mark) * sizeof(uint32_t));
		p->ntmp -= mark;
	}
	if (p->nranges + p->ntmp > p->aranges) {
		while (p->nranges + p->ntmp > p->aranges)
			p->aranges = p->aranges ? 2 * p->aranges : 64;
		p->ranges = xreallocarray(p->ranges, p->aranges, sizeof(uint32_t));
	}
	if (p->ntmp)
		memcpy(p->ranges + p->nranges, p->tmp, p->ntmp * sizeof(uint32_t));
	if (p->ncls == p->acls) {
		p->acls = p->acls ? 2 * p->acls : 8;
		p->cls = xreallocarray(p->cls, p->acls, sizeof(*p->cls));
	}
	c = &p->cls[p->ncls];
	c->off = (uint32_t)p->nranges;
	c->n = (uint32_t)(p->ntmp / 2);
	p->nranges += p->ntmp;
	p->ntmp = 0;
	return (uint32_t)p->ncls++;
}

static const uint32_t t_digit[] = {'0', '9'};
static const uint32_t t_space[] = {'\t', '\n', '\f', '\r', ' ', ' '};
static const uint32_t t_word[] = {'0', '9', 'A', 'Z', '_', '_', 'a', 'z'};

/* \d \s \w and negations at s (2 bytes available); 0 when not one. */
static int perl_class(struct parser *p, const char *s)
{
	int neg = s[1] >= 'A' && s[1] <= 'Z';

	switch (s[1]) {
	case 'd':
	case 'D':
		tmp_add_table(p, t_digit, 1, neg);
		return 1;
	case 's':
	case 'S':
		tmp_add_table(p, t_space, 3, neg);
		return 1;
	case 'w':
	case 'W':
		tmp_add_table(p, t_word, 4, neg);
		return 1;
	}
	return 0;
}

static const uint32_t t_alnum[] = {'0', '9', 'A', 'Z', 'a', 'z'};
static const uint32_t t_alpha[] = {'A', 'Z', 'a', 'z'};
static const uint32_t t_ascii[] = {0, 0x7F};
static const uint32_t t_blank[] = {'\t', '\t', ' ', ' '};
static const uint32_t t_cntrl[] = {0, 0x1F, 0x7F, 0x7F};
static const uint32_t t_graph[] = {'!', '~'};
static const uint32_t t_lower[] = {'a', 'z'};
static const uint32_t t_print[] = {' ', '~'};
static const uint32_t t_punct[] = {'!', '/', ':', '@', '[', '`', '{', '~'};
static const uint32_t t_pspace[] = {'\t', '\r', ' ', ' '};
static const uint32_t t_upper[] = {'A', 'Z'};
static const uint32_t t_xdigit[] = {'0', '9', 'A', 'F', 'a', 'f'};

static const struct {
	const char *name;
	const uint32_t *t;
	size_t npairs;
} posix_classes[] = {
	{"alnum", t_alnum, 3}, {"alpha", t_alpha, 2}, {"ascii", t_ascii, 1},
	{"blank", t_blank, 2}, {"cntrl", t_cntrl, 2}, {"digit", t_digit, 1},
	{"graph", t_graph, 1}, {"lower", t_lower, 1}, {"print", t_print, 1},
	{"punct", t_punct, 4}, {"space", t_pspace, 2}, {"upper", t_upper, 1},
	{"word", t_word, 4},   {"xdigit", t_xdigit, 3},
};

/* "[:name:]" or "[:^name:]", n bytes in total. */
static int posix_class(struct parser *p, const char *s, size_t n)
{
	const char *name = s + 2;
	size_t nlen = n - 4, i;
	int neg = 0;

	if (nlen > 0 && name[0] == '^') {
		neg = 1;
		name++;
		nlen--;
	}
	for (i = 0; i < sizeof(posix_classes) / sizeof(posix_classes[0]); i++) {
		if (strlen(posix_classes[i].name) == nlen &&
		    !memcmp(posix_classes[i].name, name, nlen)) {
			tmp_add_table(p, posix_classes[i].t, posix_classes[i].npairs,
				      neg);
			return 0;
		}
	}
	return fail(p, IGN_RE_INVALID, "invalid character class range", s, n);
}

/* \p and \P: Go knows Unicode categories and scripts; this engine does
 * not carry the tables.  Names Go rejects are reported as invalid. */
static int unicode_class(struct parser *p, const char *s, size_t rem)
{
	size_t w = 0;
	uint32_t c = 0xFFFD;

	if (rem > 2)
		c = ign_utf8_decode(s + 2, rem - 2, &w);
	if (c == '{')
		return fail(p, IGN_RE_UNSUPPORTED, "unicode class",
			    s, rem);
	if (c && c < 0x80 && strchr("CLMNPSZ", (int)c))
		return fail(p, IGN_RE_UNSUPPORTED, "unicode class",
			    s, 2 + w);
	return fail(p, IGN_RE_INVALID, "invalid character class range", s,
		    2 + w);
}

static int unhex(uint32_t c)
{
	if (c >= '0' && c <= '9')
		return (int)(c - '0');
	if (c >= 'a' && c <= 'f')
		return (int)(c - 'a' + 10);
	if (c >= 'A' && c <= 'F')
		return (int)(c - 'A' + 10);
	return -1;
}

static uint32_t next_rune(struct parser *p)
{
	size_t w;
	uint32_t c = ign_utf8_decode(p->s + p->pos, p->len - p->pos, &w);

	p->pos += w;
	return c;
}

/*
 * An escape producing one code point (Go's parseEscape), at p->s[p->pos]
 * == '\\'.  Punctuation escapes itself; \a \f \n \r \t \v; octal \0, \0oo,
 * \1oo (a lone \1 would be a backreference); \xHH and \x{H...}.
 */
static int escape_char(struct parser *p, uint32_t *out)
{
	size_t start = p->pos;
	uint32_t c, r;
	int i, x, y;

	p->pos++;
	if (p->pos >= p->len)
		return fail(p, IGN_RE_INVALID,
			    "trailing backslash at end of expression", NULL, 0);
	c = next_rune(p);
	if (c >= '0' && c <= '7') {
		if (c != '0' &&
		    (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '7'))
			goto bad;
		r = c - '0';
		for (i = 1; i < 3; i++) {
			if (p->pos >= p->len || p->s[p->pos] < '0' ||
			    p->s[p->pos] > '7')
				break;
			r = r * 8 + (uint32_t)(p->s[p->pos++] - '0');
		}
		*out = r;
		return 0;
	}
	switch (c) {
	case 'x':
		if (p->pos >= p->len)
			goto bad;
		c = next_rune(p);
		if (c == '{') {
			int nhex = 0;

			r = 0;
			for (;;) {
				if (p->pos >= p->len)
					goto bad;
				c = next_rune(p);
				if (c == '}')
					break;
				x = unhex(c);
				if (x < 0)
					goto bad;
				r = r * 16 + (uint32_t)x;
				if (r > MAX_RUNE)
					goto bad;
				nhex++;
			}
			if (!nhex)
				goto bad;
			*out = r;
			return 0;
		}
		x = unhex(c);
		y = p->pos < p->len ? unhex(next_rune(p)) : -1;
		if (x < 0 || y < 0)
			goto bad;
		*out = (uint32_t)(x * 16 + y);
		return 0;
	case 'a':
		*out = '\a';
		return 0;
	case 'f':
		*out = '\f';
		return 0;
	case 'n':
		*out = '\n';
		return 0;
	case 'r':
		*out = '\r';
		return 0;
	case 't':
		*out = '\t';
		return 0;
	case 'v':
		*out = '\v';
		return 0;
	}
	if (c < 0x80 && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
			  (c >= 'A' && c <= 'Z'))) {
		*out = c;
		return 0;
	}
bad:
	return fail(p, IGN_RE_INVALID, "invalid escape sequence", p->s + start,
		    p->pos - start);
}

/* One class item's code point: an escape or a plain character. */
static int class_char(struct parser *p, size_t cstart, uint32_t *out)
{
	if (p->pos >= p->len)
		return fail(p, IGN_RE_INVALID, "missing closing ]", p->s + cstart,
			    p->len - cstart);
	if (p->s[p->pos] == '\\')
		return escape_char(p, out);
	*out = next_rune(p);
	return 0;
}

/* A bracket expression at p->s[p->pos] == '['. */
static int32_t parse_class(struct parser *p)
{
	size_t cstart = p->pos;
	int neg = 0, first = 1;

	p->ntmp = 0;
	p->pos++;
	if (p->pos < p->len && p->s[p->pos] == '^') {
		neg = 1;
		p->pos++;
	}
	while (p->pos >= p->len || p->s[p->pos] != ']' || first) {
		const char *t = p->s + p->pos;
		size_t rem = p->len - p->pos, rstart = p->pos;
		uint32_t lo, hi;

		first = 0;
		/* [:name:]: Go looks for the closing ":]" anywhere after */
		if (rem > 2 && t[0] == '[' && t[1] == ':') {
			const char *e = find2(t + 2, rem - 2, ':', ']');

			if (e) {
				size_t n = (size_t)(e + 2 - t);

				if (posix_class(p, t, n) < 0)
					return -1;
				p->pos += n;
				continue;
			}
		}
		if (rem >= 2 && t[0] == '\\' && (t[1] == 'p' || t[1] == 'P')) {
			unicode_class(p, t, rem);
			return -1;
		}
		if (rem >= 2 && t[0] == '\\' && perl_class(p, t)) {
			p->pos += 2;
			continue;
		}
		if (class_char(p, cstart, &lo) < 0)
			return -1;
		hi = lo;
		if (p->len - p->pos >= 2 && p->s[p->pos] == '-' &&
		    p->s[p->pos + 1] != ']') {
			p->pos++;
			if (class_char(p, cstart, &hi) < 0)
				return -1;
			if (hi < lo)
				return fail(p, IGN_RE_INVALID,
					    "invalid character class range",
					    p->s + rstart, p->pos - rstart);
		}
		tmp_add(p, lo, hi);
	}
	p->pos++;
	return new_node(p, N_CLASS, tmp_commit(p, neg));
}

/* A decimal for {n,m}: no leading zeros; -1 when too big; 0 if none. */
static size_t repeat_int(const char *s, size_t rem, long *v)
{
	size_t i = 0;

	if (!rem || s[0] < '0' || s[0] > '9')
		return 0;
	if (rem >= 2 && s[0] == '0' && s[1] >= '0' && s[1] <= '9')
		return 0;
	*v = 0;
	for (; i < rem && s[i] >= '0' && s[i] <= '9'; i++) {
		if (*v >= 100000000 || *v < 0)
			*v = -1;
		else
			*v = *v * 10 + (s[i] - '0');
	}
	return i;
}

/*
 * {n}, {n,}, {n,m} at s (Go's parseRepeat): the bytes it spans, or 0 when
 * it is not one (then '{' is a literal).  *max is -1 for {n,}; *min -1
 * when a number is too big.
 */
static size_t parse_repeat(const char *s, size_t rem, long *min, long *max)
{
	size_t i = 1, k;

	k = repeat_int(s + i, rem - i, min);
	if (!k)
		return 0;
	i += k;
	if (i >= rem)
		return 0;
	if (s[i] != ',') {
		*max = *min;
	} else {
		i++;
		if (i >= rem)
			return 0;
		if (s[i] == '}') {
			*max = -1;
		} else {
			k = repeat_int(s + i, rem - i, max);
			if (!k)
				return 0;
			i += k;
			if (*max < 0)
				*min = -1;
		}
	}
	if (i >= rem || s[i] != '}')
		return 0;
	return i + 1;
}

/* Go's repeatIsValid: nested counted repetitions multiply to <= n. */
static int repeat_valid(const struct parser *p, int32_t i, long n)
{
	const struct node *nd = &p->nodes[i];
	int32_t c;

	if (nd->op == N_REPEAT) {
		long m = nd->max;

		if (m == 0)
			return 1;
		if (m < 0)
			m = nd->val;
		if (m > n)
			return 0;
		if (m > 0)
			n /= m;
	}
	for (c = nd->child; c >= 0; c = p->nodes[c].next)
		if (!repeat_valid(p, c, n))
			return 0;
	return 1;
}

static int32_t parse_alt(struct parser *p);

/* Turn the last item into op(item), in place, so its list stays linked. */
static int wrap_last(struct parser *p, int32_t cat, int32_t last, int op)
{
	int32_t copy = new_node(p, N_EMPTY, 0);

	p->nodes[copy] = p->nodes[last];
	p->nodes[copy].next = -1;
	p->nodes[last].op = (uint8_t)op;
	p->nodes[last].val = 0;
	p->nodes[last].child = copy;
	p->nodes[last].height = p->nodes[copy].height + 1;
	if (p->nodes[last].height + 1 > p->nodes[cat].height)
		p->nodes[cat].height = p->nodes[last].height + 1;
	if (p->nodes[cat].height > MAX_HEIGHT)
		return fail(p, IGN_RE_INVALID, "expression nests too deeply", NULL,
			    0);
	return 0;
}

/* A backslash outside a class. */
static int top_escape(struct parser *p, int32_t cat, int32_t *last)
{
	const char *t = p->s + p->pos;
	size_t rem = p->len - p->pos;
	int32_t item = -1;
	uint32_t c;

	if (rem < 2)
		return fail(p, IGN_RE_INVALID,
			    "trailing backslash at end of expression", NULL, 0);
	switch (t[1]) {
	case 'A':
		item = new_node(p, N_BOT, 0);
		break;
	case 'z':
		item = new_node(p, N_EOT, 0);
		break;
	case 'b':
		item = new_node(p, N_WORDB, 0);
		break;
	case 'B':
		item = new_node(p, N_NWORDB, 0);
		break;
	case 'C':
		return fail(p, IGN_RE_INVALID, "invalid escape sequence", t, 2);
	case 'Q': {
		/* literal text up to \E or the end */
		const char *e = find2(t + 2, rem - 2, '\\', 'E');
		size_t end = e ? (size_t)(e - p->s) : p->len;

		p->pos += 2;
		while (p->pos < end) {
			item = new_node(p, N_LIT, next_rune(p));
			if (add_child(p, cat, last, item) < 0)
				return -1;
		}
		p->pos = e ? end + 2 : p->len;
		return 0;
	}
	case 'p':
	case 'P':
		return unicode_class(p, t, rem);
	}
	if (item >= 0) {
		p->pos += 2;
		return add_child(p, cat, last, item);
	}
	p->ntmp = 0;
	if (perl_class(p, t)) {
		p->pos += 2;
		item = new_node(p, N_CLASS, tmp_commit(p, 0));
		return add_child(p, cat, last, item);
	}
	if (escape_char(p, &c) < 0)
		return -1;
	return add_child(p, cat, last, new_node(p, N_LIT, c));
}

static int32_t parse_concat(struct parser *p)
{
	int32_t cat = new_node(p, N_CAT, 0), last = -1, item;
	int last_repeat = 0, repeat, op;

	while (p->pos < p->len && p->s[p->pos] != '|' && p->s[p->pos] != ')') {
		char c = p->s[p->pos];

		item = -1;
		repeat = 0;
		switch (c) {
		case '(':
			if (p->pos + 1 < p->len && p->s[p->pos + 1] == '?')
				return fail(p, IGN_RE_UNSUPPORTED,
					    "group flags",
					    p->s + p->pos, 2);
			if (++p->depth > MAX_HEIGHT)
				return fail(p, IGN_RE_INVALID,
					    "expression nests too deeply", NULL, 0);
			p->pos++;
			item = parse_alt(p);
			if (item < 0)
				return -1;
			p->depth--;
			if (p->pos >= p->len || p->s[p->pos] != ')')
				return fail(p, IGN_RE_INVALID, "missing closing )",
					    p->s, p->len);
			p->pos++;
			break;
		case '^':
			p->pos++;
			item = new_node(p, N_BOT, 0);
			break;
		case '$':
			p->pos++;
			item = new_node(p, N_EOT, 0);
			break;
		case '.':
			p->pos++;
			item = new_node(p, N_ANYNL, 0);
			break;
		case '[':
			item = parse_class(p);
			if (item < 0)
				return -1;
			break;
		case '*':
		case '+':
		case '?':
			if (last_repeat)
				return fail(p, IGN_RE_INVALID,
					    "invalid nested repetition operator",
					    p->s + p->pos, 1);
			if (last < 0)
				return fail(p, IGN_RE_INVALID,
					    "missing argument to repetition operator",
					    p->s + p->pos, 1);
			op = c == '*' ? N_STAR : c == '+' ? N_PLUS : N_QUEST;
			p->pos++;
			if (p->pos < p->len && p->s[p->pos] == '?')
				p->pos++; /* non-greedy: same verdict */
			if (wrap_last(p, cat, last, op) < 0)
				return -1;
			repeat = 1;
			break;
		case '{': {
			long min = 0, max = 0;
			size_t k = parse_repeat(p->s + p->pos, p->len - p->pos,
						&min, &max);

			if (!k) {
				p->pos++;
				item = new_node(p, N_LIT, '{');
				break;
			}
			if (min < 0 || min > 1000 || max > 1000 ||
			    (max >= 0 && min > max))
				return fail(p, IGN_RE_INVALID, "invalid repeat count",
					    p->s + p->pos, k);
			if (last_repeat)
				return fail(p, IGN_RE_INVALID,
					    "invalid nested repetition operator",
					    p->s + p->pos, k);
			if (last < 0)
				return fail(p, IGN_RE_INVALID,
					    "missing argument to repetition operator",
					    p->s + p->pos, k);
			p->pos += k;
			if (p->pos < p->len && p->s[p->pos] == '?')
				p->pos++;
			if (wrap_last(p, cat, last, N_REPEAT) < 0)
				return -1;
			p->nodes[last].val = (uint32_t)min;
			p->nodes[last].max = (int32_t)max;
			if ((min >= 2 || max >= 2) && !repeat_valid(p, last, 1000))
				return fail(p, IGN_RE_INVALID, "invalid repeat count",
					    NULL, 0);
			repeat = 1;
			break;
		}
		case '\\':
			if (top_escape(p, cat, &last) < 0)
				return -1;
			break;
		default:
			item = new_node(p, N_LIT, next_rune(p));
			break;
		}
		if (item >= 0 && add_child(p, cat, &last, item) < 0)
			return -1;
		last_repeat = repeat;
	}
	return cat;
}

static int32_t parse_alt(struct parser *p)
{
	int32_t first = parse_concat(p), alt, last;

	if (first < 0)
		return -1;
	if (p->pos >= p->len || p->s[p->pos] != '|')
		return first;
	alt = new_node(p, N_ALT, 0);
	last = -1;
	if (add_child(p, alt, &last, first) < 0)
		return -1;
	while (p->pos < p->len && p->s[p->pos] == '|') {
		int32_t c;

		p->pos++;
		c = parse_concat(p);
		if (c < 0 || add_child(p, alt, &last, c) < 0)
			return -1;
	}
	return alt;
}

/* ---- program ---- */

enum inst_op {
	I_RUNE,  /* arg = code point */
	I_CLASS, /* arg = class index */
	I_ANYNL,
	I_BOT,
	I_EOT,
	I_WORDB,
	I_NWORDB,
	I_SPLIT, /* x, y */
	I_JMP,   /* x */
	I_MATCH,
};

struct inst {
	uint8_t op;
	uint32_t arg;
	uint32_t x, y;
};

struct ign_re {
	struct inst *prog;
	uint32_t n;
	uint32_t *ranges;
	struct rclass *cls;
	int anchored; /* starts with ^: only try position 0 */
	char *pre;    /* bytes every match must start the subject with */
	size_t pre_len;
	char *suf;    /* bytes every match must end the subject with */
	size_t suf_len;
	struct dfa *dfa; /* NULL: simulate the NFA */
};

struct dfa;
static struct dfa *dfa_build(const struct ign_re *re);
static void dfa_free(struct dfa *d);

/* Go refuses programs past ~3.3M instructions; this engine past 1M. */
#define MAX_PROG (1u << 20)

struct emitter {
	struct inst *prog;
	size_t n, alloc;
	const struct node *nodes;
	int too_big;
};

static uint32_t emit(struct emitter *e, int op, uint32_t arg)
{
	if (e->n >= MAX_PROG) {
		e->too_big = 1;
		e->n = 0; /* keep indexes in range; the result is discarded */
	}
	if (e->n == e->alloc) {
		e->alloc = e->alloc ? 2 * e->alloc : 32;
		e->prog = xreallocarray(e->prog, e->alloc, sizeof(*e->prog));
	}
	e->prog[e->n].op = (uint8_t)op;
	e->prog[e->n].arg = arg;
	e->prog[e->n].x = 0;
	e->prog[e->n].y = 0;
	return (uint32_t)e->n++;
}

/* Recursion depth is bounded by the tree height (MAX_HEIGHT). */
static void compile_node(struct emitter *e, int32_t i)
{
	const struct node *n = &e->nodes[i];
	uint32_t l, j;
	int32_t c, k;

	if (e->too_big)
		return;
	switch (n->op) {
	case N_EMPTY:
		break;
	case N_LIT:
		emit(e, I_RUNE, n->val);
		break;
	case N_CLASS:
		emit(e, I_CLASS, n->val);
		break;
	case N_ANYNL:
		emit(e, I_ANYNL, 0);
		break;
	case N_BOT:
		emit(e, I_BOT, 0);
		break;
	case N_EOT:
		emit(e, I_EOT, 0);
		break;
	case N_WORDB:
		emit(e, I_WORDB, 0);
		break;
	case N_NWORDB:
		emit(e, I_NWORDB, 0);
		break;
	case N_CAT:
		for (c = n->child; c >= 0; c = e->nodes[c].next)
			compile_node(e, c);
		break;
	case N_ALT: {
		/* split L1, next; L1: a; jmp end; next: split ...; last */
		uint32_t jumps_head = UINT32_MAX;

		for (c = n->child; c >= 0; c = e->nodes[c].next) {
			if (e->nodes[c].next < 0) {
				compile_node(e, c);
				break;
			}
			l = emit(e, I_SPLIT, 0);
			e->prog[l].x = l + 1;
			compile_node(e, c);
			j = emit(e, I_JMP, 0);
			e->prog[j].x = jumps_head; /* chain, patched below */
			jumps_head = j;
			e->prog[l].y = (uint32_t)e->n;
		}
		/* once too_big, slots were reused: the chain is not followed */
		while (jumps_head != UINT32_MAX && !e->too_big) {
			j = e->prog[jumps_head].x;
			e->prog[jumps_head].x = (uint32_t)e->n;
			jumps_head = j;
		}
		break;
	}
	case N_STAR:
		l = emit(e, I_SPLIT, 0);
		e->prog[l].x = l + 1;
		compile_node(e, n->child);
		j = emit(e, I_JMP, 0);
		e->prog[j].x = l;
		e->prog[l].y = (uint32_t)e->n;
		break;
	case N_PLUS:
		l = (uint32_t)e->n;
		compile_node(e, n->child);
		j = emit(e, I_SPLIT, 0);
		e->prog[j].x = l;
		e->prog[j].y = j + 1;
		break;
	case N_QUEST:
		l = emit(e, I_SPLIT, 0);
		e->prog[l].x = l + 1;
		compile_node(e, n->child);
		e->prog[l].y = (uint32_t)e->n;
		break;
	case N_REPEAT:
		/* x{n,m} = x...x (n times) then x? (m-n times); x{n,} = x^n x* */
		for (k = 0; k < (int32_t)n->val && !e->too_big; k++)
			compile_node(e, n->child);
		if (n->max < 0) {
			l = emit(e, I_SPLIT, 0);
			e->prog[l].x = l + 1;
			compile_node(e, n->child);
			j = emit(e, I_JMP, 0);
			e->prog[j].x = l;
			e->prog[l].y = (uint32_t)e->n;
			break;
		}
		for (k = (int32_t)n->val; k < n->max && !e->too_big; k++) {
			l = emit(e, I_SPLIT, 0);
			e->prog[l].x = l + 1;
			compile_node(e, n->child);
			e->prog[l].y = (uint32_t)e->n;
		}
		break;
	}
}

/*
 * Required literal text: after a leading ^ the top-level literals must
 * start the subject, and before a final $ they must end it.  U+FFFD is left
 * out (it also matches any invalid byte).  A cheap filter before the NFA.
 */
static void find_literals(struct ign_re *re, const struct node *nodes,
			  int32_t root, struct buf *b)
{
	int32_t c, first;
	size_t nitems = 0, i, k, start;
	char enc[4];

	if (nodes[root].op != N_CAT) {
		re->anchored = nodes[root].op == N_BOT;
		return;
	}
	first = nodes[root].child;
	if (first < 0)
		return;
	re->anchored = nodes[first].op == N_BOT;
	if (re->anchored) {
		buf_reset(b);
		for (c = nodes[first].next; c >= 0 && nodes[c].op == N_LIT &&
					    nodes[c].val != 0xFFFD;
		     c = nodes[c].next)
			buf_add(b, enc, ign_utf8_encode(nodes[c].val, enc));
		if (b->len) {
			re->pre = xstrndup(b->data, b->len);
			re->pre_len = b->len;
		}
	}
	/* the run of literals right before a final $ */
	for (c = first; c >= 0; c = nodes[c].next)
		nitems++;
	if (nitems < 2)
		return;
	{
		int32_t *items = xcalloc(nitems, sizeof(*items));

		for (i = 0, c = first; c >= 0; c = nodes[c].next)
			items[i++] = c;
		if (nodes[items[nitems - 1]].op == N_EOT) {
			start = nitems - 1;
			while (start > 0 && nodes[items[start - 1]].op == N_LIT &&
			       nodes[items[start - 1]].val != 0xFFFD)
				start--;
			buf_reset(b);
			for (k = start; k + 1 < nitems; k++)
				buf_add(b, enc, ign_utf8_encode(nodes[items[k]].val, enc));
			if (b->len) {
				re->suf = xstrndup(b->data, b->len);
				re->suf_len = b->len;
			}
		}
		free(items);
	}
}

int ign_re_compile(const char *expr, size_t len, struct ign_re **out,
		   char *why, size_t whysz)
{
	struct parser p;
	struct emitter em;
	struct ign_re *re = NULL;
	struct buf b = BUF_INIT;
	int32_t root;
	size_t i, w;
	int ret = 0;

	memset(&p, 0, sizeof(p));
	memset(&em, 0, sizeof(em));
	*out = NULL;
	if (why && whysz)
		why[0] = '\0';
	p.s = expr;
	p.len = len;
	p.why = why;
	p.whysz = whysz;
	for (i = 0; i < len; i += w) {
		if (ign_utf8_decode(expr + i, len - i, &w) == 0xFFFD && w == 1) {
			fail(&p, IGN_RE_INVALID, "invalid UTF-8", NULL, 0);
			ret = p.err;
			goto out;
		}
	}
	root = parse_alt(&p);
	if (root >= 0 && p.pos < p.len)
		fail(&p, IGN_RE_INVALID, "unexpected )", p.s, p.len);
	if (p.err) {
		ret = p.err;
		goto out;
	}
	em.nodes = p.nodes;
	compile_node(&em, root);
	emit(&em, I_MATCH, 0);
	if (em.too_big) {
		fail(&p, IGN_RE_UNSUPPORTED, "expression too large", NULL, 0);
		ret = p.err;
		goto out;
	}

	re = xcalloc(1, sizeof(*re));
	re->prog = em.prog;
	em.prog = NULL;
	re->n = (uint32_t)em.n;
	re->ranges = p.ranges;
	p.ranges = NULL;
	re->cls = p.cls;
	p.cls = NULL;
	find_literals(re, p.nodes, root, &b);
	re->dfa = dfa_build(re);
	*out = re;
out:
	buf_release(&b);
	free(em.prog);
	free(p.nodes);
	free(p.ranges);
	free(p.cls);
	free(p.tmp);
	return ret;
}

void ign_re_free(struct ign_re *re)
{
	if (!re)
		return;
	free(re->prog);
	free(re->ranges);
	free(re->cls);
	free(re->pre);
	free(re->suf);
	dfa_free(re->dfa);
	free(re);
}

/* ---- matching ---- */

static int class_has(const struct ign_re *re, uint32_t k, uint32_t r)
{
	const uint32_t *v;
	size_t lo = 0, hi = re->cls[k].n, mid;

	if (hi == 0)
		return 0; /* e.g. [^\x00-\x{10FFFF}]; ranges may be NULL */
	v = re->ranges + re->cls[k].off;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (r < v[2 * mid])
			hi = mid;
		else if (r > v[2 * mid + 1])
			lo = mid + 1;
		else
			return 1;
	}
	return 0;
}

/* Does consuming instruction in accept code point r? */
static int inst_accepts(const struct ign_re *re, const struct inst *in,
			uint32_t r)
{
	switch (in->op) {
	case I_RUNE:
		return r == in->arg;
	case I_CLASS:
		return class_has(re, in->arg, r);
	case I_ANYNL:
		return r != '\n';
	}
	return 0;
}

static int is_word_byte(const char *s, size_t len, size_t i)
{
	unsigned char c;

	if (i >= len)
		return 0;
	c = (unsigned char)s[i];
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z') || c == '_';
}

/* What the empty-width assertions see at one position. */
struct ctx {
	uint8_t bot, eot; /* at the beginning / end of the subject */
	uint8_t boundary; /* word-ness differs on the two sides */
};

struct closure {
	const struct ign_re *re;
	uint32_t *mark;  /* per instruction: generation it was added in */
	uint32_t *stack; /* work list, one slot per instruction */
	uint32_t gen;
};

/*
 * Add pc and everything reachable from it without consuming input to
 * list (consuming instructions and MATCH only), each at most once per
 * generation.  Iterative, so a long program cannot overflow the stack.
 */
static void add_thread(struct closure *cl, uint32_t *list, uint32_t *n,
		       uint32_t pc, const struct ctx *cx)
{
	const struct inst *prog = cl->re->prog;
	size_t sp = 0;

	if (cl->mark[pc] == cl->gen)
		return;
	cl->mark[pc] = cl->gen;
	cl->stack[sp++] = pc;
	while (sp) {
		const struct inst *in;
		uint32_t next[2];
		int nn = 0, k;

		pc = cl->stack[--sp];
		in = &prog[pc];
		switch (in->op) {
		case I_JMP:
			next[nn++] = in->x;
			break;
		case I_SPLIT:
			next[nn++] = in->x;
			next[nn++] = in->y;
			break;
		case I_BOT:
			if (cx->bot)
				next[nn++] = pc + 1;
			break;
		case I_EOT:
			if (cx->eot)
				next[nn++] = pc + 1;
			break;
		case I_WORDB:
			if (cx->boundary)
				next[nn++] = pc + 1;
			break;
		case I_NWORDB:
			if (!cx->boundary)
				next[nn++] = pc + 1;
			break;
		default:
			list[(*n)++] = pc;
			break;
		}
		for (k = 0; k < nn; k++) {
			if (cl->mark[next[k]] != cl->gen) {
				cl->mark[next[k]] = cl->gen;
				cl->stack[sp++] = next[k];
			}
		}
	}
}

/*
 * Thompson NFA simulation over the code points of s.  Word-boundary tests
 * look at the neighbouring bytes: only ASCII word characters count, and
 * an ASCII byte is always its own code point.
 */
int ign_re_match_nfa(const struct ign_re *re, const char *s, size_t len)
{
	uint32_t small[4 * SMALL_PROG];
	uint32_t *mem = small, *cur, *nxt, *tmp, ncur = 0, nnxt, i;
	struct closure cl;
	struct ctx cx;
	size_t pos = 0, w;
	int matched = 0;

	if (re->n > SMALL_PROG)
		mem = xmalloc((size_t)4 * re->n * sizeof(uint32_t));
	cur = mem;
	nxt = mem + re->n;
	cl.mark = mem + 2 * (size_t)re->n;
	cl.stack = mem + 3 * (size_t)re->n;
	memset(cl.mark, 0, re->n * sizeof(uint32_t));
	cl.re = re;
	cl.gen = 1;
	cx.bot = 1;
	cx.eot = len == 0;
	cx.boundary = is_word_byte(s, len, 0);
	add_thread(&cl, cur, &ncur, 0, &cx);
	for (;;) {
		uint32_t r;

		for (i = 0; i < ncur; i++) {
			if (re->prog[cur[i]].op == I_MATCH) {
				matched = 1;
				goto out;
			}
		}
		if (pos >= len || (ncur == 0 && re->anchored))
			break;
		r = ign_utf8_decode(s + pos, len - pos, &w);
		pos += w;
		cl.gen++;
		nnxt = 0;
		cx.bot = 0;
		cx.eot = pos == len;
		cx.boundary = is_word_byte(s, len, pos - 1) !=
			      is_word_byte(s, len, pos);
		for (i = 0; i < ncur; i++)
			if (inst_accepts(re, &re->prog[cur[i]], r))
				add_thread(&cl, nxt, &nnxt, cur[i] + 1, &cx);
		if (!re->anchored)
			add_thread(&cl, nxt, &nnxt, 0, &cx);
		tmp = cur;
		cur = nxt;
		nxt = tmp;
		ncur = nnxt;
	}
out:
	if (mem != small)
		free(mem);
	return matched;
}

/*
 * The DFA.  Most translated patterns are small ([^/]* runs, literals, an
 * optional "anything ending in a slash" group), so at compile time the NFA
 * is turned into a DFA by subset construction, over classes of code
 * points that every consuming instruction treats alike.  A DFA state is the set of
 * instructions waiting for the next character (before closure) plus
 * whether it is position 0, where ^ holds; $ is resolved by the "matches
 * at the end" flag.  Programs with \b or \B, or that would need too many
 * states, keep using the NFA.
 */
#define DFA_MAX_PROG 256u
#define DFA_MAX_STATES 256u
#define DFA_MAX_CELLS 16384u
#define DFA_DEAD 0xFFFFu

enum { DFA_MATCH_NOW = 1, DFA_MATCH_END = 2 };

struct dfa {
	uint32_t nstates, ncls;
	uint16_t *trans;     /* while building: nstates * ncls, or DFA_DEAD */
	uint8_t *flags;      /* while building: DFA_MATCH_NOW, DFA_MATCH_END */
	/* the walk's table: per state a row of 1 + ncls cells, the flags
	 * then the row offset of each next state (UINT32_MAX: dead) */
	uint32_t *rows;
	uint16_t ascii[128]; /* class of each ASCII code point */
	uint32_t *bounds;    /* sorted starts of the code point intervals */
	uint16_t *bcls;      /* class of each interval */
	uint32_t nint;
};

static void dfa_free(struct dfa *d)
{
	if (!d)
		return;
	free(d->trans);
	free(d->flags);
	free(d->rows);
	free(d->bounds);
	free(d->bcls);
	free(d);
}

static uint16_t dfa_class(const struct dfa *d, uint32_t r)
{
	uint32_t lo = 0, hi = d->nint, mid;

	if (r < 128)
		return d->ascii[r];
	/* the last interval whose start is <= r */
	while (hi - lo > 1) {
		mid = lo + (hi - lo) / 2;
		if (d->bounds[mid] <= r)
			lo = mid;
		else
			hi = mid;
	}
	return d->bcls[lo];
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Split the code points into classes; 0 when there are too many. */
static int dfa_classes(const struct ign_re *re, struct dfa *d, uint32_t **rep)
{
	uint32_t *b = NULL, nb = 0, ab = 0, i, k, c;
	uint8_t *sigs = NULL;
	size_t sigsz = (re->n + 7) / 8;
	int ok = 0;

#define ADD_BOUND(v)                                                      \
	do {                                                                 \
		if (nb == ab) {                                              \
			ab = ab ? 2 * ab : 64;                               \
			b = xreallocarray(b, ab, sizeof(*b));                \
		}                                                            \
		b[nb++] = (v);                                               \
	} while (0)

	ADD_BOUND(0);
	for (i = 0; i < re->n; i++) {
		const struct inst *in = &re->prog[i];

		if (in->op == I_RUNE) {
			ADD_BOUND(in->arg);
			ADD_BOUND(in->arg + 1);
		} else if (in->op == I_ANYNL) {
			ADD_BOUND('\n');
			ADD_BOUND('\n' + 1);
		} else if (in->op == I_CLASS) {
			const struct rclass *rc = &re->cls[in->arg];

			for (k = 0; k < rc->n; k++) {
				ADD_BOUND(re->ranges[rc->off + 2 * k]);
				ADD_BOUND(re->ranges[rc->off + 2 * k + 1] + 1);
			}
		}
	}
#undef ADD_BOUND
	qsort(b, nb, sizeof(*b), cmp_u32);
	for (i = 0, k = 0; i < nb; i++)
		if (b[i] <= MAX_RUNE && (k == 0 || b[i] != b[k - 1]))
			b[k++] = b[i];
	nb = k;
	if (nb > 4096)
		goto out;
	/* the signature of an interval: which consuming instructions take it */
	sigs = xcalloc(nb, sigsz);
	d->bounds = b;
	d->nint = nb;
	d->bcls = xcalloc(nb, sizeof(*d->bcls));
	*rep = xcalloc(nb, sizeof(**rep));
	b = NULL;
	d->ncls = 0;
	for (i = 0; i < nb; i++) {
		uint8_t *sg = sigs + (size_t)d->ncls * sigsz;

		memset(sg, 0, sigsz);
		for (k = 0; k < re->n; k++)
			if (inst_accepts(re, &re->prog[k], d->bounds[i]))
				sg[k / 8] |= (uint8_t)(1u << (k % 8));
		for (c = 0; c < d->ncls; c++)
			if (!memcmp(sigs + (size_t)c * sigsz, sg, sigsz))
				break;
		if (c == d->ncls)
			(*rep)[d->ncls++] = d->bounds[i];
		d->bcls[i] = (uint16_t)c;
	}
	for (i = 0, k = 0; i < 128; i++) {
		while (k + 1 < d->nint && d->bounds[k + 1] <= i)
			k++;
		d->ascii[i] = d->bcls[k];
	}
	ok = 1;
out:
	free(b);
	free(sigs);
	return ok;
}

/*
 * Subset construction.  Kernels are bitsets of instructions (at most
 * DFA_MAX_PROG), stored one after another in kern[].
 */
static struct dfa *dfa_build(const struct ign_re *re)
{
	size_t ksz = (re->n + 7) / 8;
	struct dfa *d = xcalloc(1, sizeof(*d));
	uint32_t *rep = NULL, *list = NULL, nlist, st, c, i;
	uint8_t *kern = NULL, *pos0 = NULL, *nk = NULL;
	struct closure cl;
	struct ctx cx;
	int ok = 0;

	memset(&cl, 0, sizeof(cl));
	for (i = 0; i < re->n; i++)
		if (re->prog[i].op == I_WORDB || re->prog[i].op == I_NWORDB)
			goto out;
	if (re->n > DFA_MAX_PROG || !dfa_classes(re, d, &rep))
		goto out;
	cl.re = re;
	cl.mark = xcalloc(re->n, sizeof(uint32_t));
	cl.stack = xcalloc(re->n, sizeof(uint32_t));
	list = xcalloc(re->n, sizeof(uint32_t));
	kern = xcalloc(DFA_MAX_STATES, ksz);
	pos0 = xcalloc(DFA_MAX_STATES, 1);
	nk = xcalloc(1, ksz);
	d->flags = xcalloc(DFA_MAX_STATES, 1);
	/* state 0: the start, at position 0 */
	kern[0] = 1; /* instruction 0 */
	pos0[0] = 1;
	d->nstates = 1;
	for (st = 0; st < d->nstates; st++) {
		const uint8_t *k = kern + (size_t)st * ksz;
		uint32_t j;

		if ((size_t)(st + 1) * d->ncls > DFA_MAX_CELLS)
			goto out;
		d->trans = xreallocarray(d->trans, (size_t)(st + 1) * d->ncls,
					 sizeof(uint16_t));
		/* the flags: a MATCH reachable here, or once $ holds */
		for (j = 0; j < 2; j++) {
			cx.bot = pos0[st];
			cx.eot = (uint8_t)j;
			cx.boundary = 0;
			cl.gen++;
			nlist = 0;
			for (i = 0; i < re->n; i++)
				if (k[i / 8] & (1u << (i % 8)))
					add_thread(&cl, list, &nlist, i, &cx);
			for (i = 0; i < nlist; i++)
				if (re->prog[list[i]].op == I_MATCH)
					d->flags[st] |= j ? DFA_MATCH_END
							  : DFA_MATCH_NOW;
		}
		/* the closure with $ false, then one step per class */
		cx.bot = pos0[st];
		cx.eot = 0;
		cl.gen++;
		nlist = 0;
		for (i = 0; i < re->n; i++)
			if (k[i / 8] & (1u << (i % 8)))
				add_thread(&cl, list, &nlist, i, &cx);
		for (c = 0; c < d->ncls; c++) {
			uint32_t t;
			int any = 0;

			memset(nk, 0, ksz);
			for (i = 0; i < nlist; i++) {
				if (inst_accepts(re, &re->prog[list[i]], rep[c])) {
					uint32_t pc = list[i] + 1;

					nk[pc / 8] |= (uint8_t)(1u << (pc % 8));
					any = 1;
				}
			}
			if (!re->anchored) {
				nk[0] |= 1; /* an unanchored search restarts */
				any = 1;
			}
			if (!any) {
				d->trans[(size_t)st * d->ncls + c] = DFA_DEAD;
				continue;
			}
			for (t = 0; t < d->nstates; t++)
				if (!pos0[t] &&
				    !memcmp(kern + (size_t)t * ksz, nk, ksz))
					break;
			if (t == d->nstates) {
				if (d->nstates == DFA_MAX_STATES)
					goto out;
				memcpy(kern + (size_t)t * ksz, nk, ksz);
				pos0[t] = 0;
				d->nstates++;
			}
			d->trans[(size_t)st * d->ncls + c] = (uint16_t)t;
		}
	}
	d->rows = xreallocarray(NULL, (size_t)d->nstates * (d->ncls + 1),
				sizeof(uint32_t));
	for (st = 0; st < d->nstates; st++) {
		uint32_t *row = d->rows + (size_t)st * (d->ncls + 1);

		row[0] = d->flags[st];
		for (c = 0; c < d->ncls; c++) {
			uint16_t t = d->trans[(size_t)st * d->ncls + c];

			row[1 + c] = t == DFA_DEAD ? UINT32_MAX
						   : (uint32_t)t * (d->ncls + 1);
		}
	}
	/* only the rows are walked */
	free(d->trans);
	d->trans = NULL;
	free(d->flags);
	d->flags = NULL;
	ok = 1;
out:
	free(cl.mark);
	free(cl.stack);
	free(list);
	free(kern);
	free(pos0);
	free(nk);
	free(rep);
	if (!ok) {
		dfa_free(d);
		return NULL;
	}
	return d;
}

static int dfa_match(const struct dfa *d, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	const uint32_t *rows = d->rows;
	uint32_t row = 0, c;
	size_t pos = 0, w;

	for (;;) {
		uint32_t fl = rows[row];

		if (fl & DFA_MATCH_NOW)
			return 1;
		if (pos >= len)
			return (fl & DFA_MATCH_END) != 0;
		if (p[pos] < 0x80) {
			c = d->ascii[p[pos]];
			pos++;
		} else {
			c = dfa_class(d, ign_utf8_decode(s + pos, len - pos, &w));
			pos += w;
		}
		row = rows[row + 1 + c];
		if (row == UINT32_MAX)
			return 0;
	}
}

int ign_re_match(const struct ign_re *re, const char *s, size_t len)
{
	if (re->pre_len &&
	    (len < re->pre_len || memcmp(s, re->pre, re->pre_len) != 0))
		return 0;
	if (re->suf_len && (len < re->suf_len ||
			    memcmp(s + len - re->suf_len, re->suf, re->suf_len) != 0))
		return 0;
	if (re->dfa)
		return dfa_match(re->dfa, s, len);
	return ign_re_match_nfa(re, s, len);
}
