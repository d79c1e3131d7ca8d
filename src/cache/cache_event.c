/*
 * cache events and `cache why`, the pure parts: the log line of an event,
 * the registry tag of an event, the counts per prefix, the comparison of
 * key files and the choice of the entry to compare with.  The store's
 * side is cache_stats.c.
 *
 * Why a line format of our own rather than JSON: the cache module does not
 * parse JSON (jansson is the registry module's), and a line of
 * space-separated fields, each %-encoded, is as easy to check strictly as
 * it is to write.  Everything read back is untrusted: keys and prefixes
 * are checked as user input is, paths are kept as bytes and only shown
 * escaped.
 */
#include "ctxpack/cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cache_event_release(struct cache_event *ev)
{
	size_t i;

	free(ev->prefix);
	free(ev->key);
	free(ev->matched);
	for (i = 0; i < ev->nfiles; i++)
		free(ev->files[i].path);
	free(ev->files);
	memset(ev, 0, sizeof(*ev));
}

size_t cache_stats_keep(void)
{
	const char *v = env_get()->stats_keep;
	uint64_t n;

	if (v && !parse_u64(v, &n) && n >= 1 && n <= 100000)
		return (size_t)n;
	return CACHE_STATS_KEEP;
}

static const char *const op_names[] = {"restore", "run"};
static const char *const result_names[] = {"miss", "hit", "partial"};

/* A text field: "-" for none or empty, else %-encoded ("-" as "%2D"). */
static void field(struct buf *b, const char *s)
{
	char *enc;

	buf_addch(b, ' ');
	if (!s || !*s) {
		buf_addch(b, '-');
		return;
	}
	if (!strcmp(s, "-")) {
		buf_addstr(b, "%2D");
		return;
	}
	enc = cache_pct_encode(s);
	buf_addstr(b, enc);
	free(enc);
}

void cache_event_format(const struct cache_event *ev, struct buf *out)
{
	char t[40];
	size_t i, base;

	buf_reset(out);
	cache_time_format(ev->sec, ev->nsec, t);
	buf_addf(out, "v1 %s %s %s %s", ev->id, t, op_names[ev->op == CACHE_OP_RUN],
		 result_names[ev->result == CACHE_HIT ? 1 : ev->result == CACHE_PARTIAL ? 2 : 0]);
	field(out, ev->prefix);
	field(out, ev->key);
	field(out, ev->matched);
	field(out, ev->version);
	field(out, ev->command);
	base = out->len;
	if (ev->files_omitted) {
		buf_addstr(out, " ...");
		return;
	}
	for (i = 0; i < ev->nfiles; i++) {
		char *enc = cache_pct_encode(ev->files[i].path);

		buf_addf(out, " %s:%s", ev->files[i].sha256, enc);
		free(enc);
		if (out->len > CACHE_EVENT_MAX)
			break;
	}
	if (out->len > CACHE_EVENT_MAX) {
		buf_setlen(out, base);
		buf_addstr(out, " ...");
	}
}

static int is_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* The next space-separated token of [*p, end): its start and length. */
static int token(const char **p, const char *end, const char **tok, size_t *n)
{
	const char *s = *p;

	if (s >= end)
		return -1;
	if (*s == ' ')
		s++;
	*tok = s;
	while (s < end && *s != ' ')
		s++;
	*n = (size_t)(s - *tok);
	if (!*n)
		return -1;
	*p = s;
	return 0;
}

static int tok_is(const char *tok, size_t n, const char *word)
{
	return strlen(word) == n && !memcmp(tok, word, n);
}

/* A text field back: NULL for "-", else the decoded text (which must be
 * UTF-8 without control characters, at most CACHE_KEY_MAX bytes). */
static int text_field(const char *tok, size_t n, char **out)
{
	*out = NULL;
	if (tok_is(tok, n, "-"))
		return 0;
	if (tok_is(tok, n, "%2D")) {
		*out = xstrdup("-");
		return 0;
	}
	if (cache_pct_decode(tok, n, out) || strlen(*out) > CACHE_KEY_MAX ||
	    cache_text_check(*out)) {
		free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

/* A 64-hex field ("-": empty) into out (65 bytes). */
static int hex_field(const char *tok, size_t n, char *out)
{
	out[0] = '\0';
	if (tok_is(tok, n, "-"))
		return 0;
	if (n != 64 || !is_hex(tok, 64))
		return -1;
	memcpy(out, tok, 64);
	out[64] = '\0';
	return 0;
}

int cache_event_parse(struct cache_event *ev, const char *line, size_t n, struct err *e)
{
	const char *p = line, *end = line + n, *tok;
	char t[40], *s = NULL;
	struct err e2 = ERR_INIT;
	size_t k;
	const char *why;

	memset(ev, 0, sizeof(*ev));
	if (n > CACHE_EVENT_MAX + 64 || !n || line[0] == ' ' || memchr(line, '\0', n) ||
	    memchr(line, '\n', n)) {
		why = "too long, or not a line";
		goto bad;
	}
	why = "not a v1 event";
	if (token(&p, end, &tok, &k) || !tok_is(tok, k, "v1"))
		goto bad;
	why = "bad id";
	if (token(&p, end, &tok, &k) || k != 16 || !is_hex(tok, 16))
		goto bad;
	memcpy(ev->id, tok, 16);
	why = "bad time";
	if (token(&p, end, &tok, &k) || k >= sizeof(t))
		goto bad;
	memcpy(t, tok, k);
	t[k] = '\0';
	if (cache_time_parse(t, &ev->sec, &ev->nsec))
		goto bad;
	why = "bad operation";
	if (token(&p, end, &tok, &k))
		goto bad;
	if (tok_is(tok, k, "restore"))
		ev->op = CACHE_OP_RESTORE;
	else if (tok_is(tok, k, "run"))
		ev->op = CACHE_OP_RUN;
	else
		goto bad;
	why = "bad result";
	if (token(&p, end, &tok, &k))
		goto bad;
	if (tok_is(tok, k, "hit"))
		ev->result = CACHE_HIT;
	else if (tok_is(tok, k, "partial"))
		ev->result = CACHE_PARTIAL;
	else if (tok_is(tok, k, "miss"))
		ev->result = CACHE_MISS;
	else
		goto bad;
	why = "bad prefix";
	if (token(&p, end, &tok, &k) || text_field(tok, k, &ev->prefix))
		goto bad;
	if (!ev->prefix)
		ev->prefix = xstrdup("");
	why = "bad key";
	if (token(&p, end, &tok, &k) || text_field(tok, k, &ev->key) || !ev->key ||
	    cache_key_check(ev->key, "key", &e2))
		goto bad;
	why = "bad matched key";
	if (token(&p, end, &tok, &k) || text_field(tok, k, &ev->matched) ||
	    (ev->matched && cache_key_check(ev->matched, "key", &e2)) ||
	    (ev->result == CACHE_MISS) != !ev->matched ||
	    (ev->result == CACHE_HIT && strcmp(ev->matched, ev->key)))
		goto bad;
	why = "bad version";
	if (token(&p, end, &tok, &k) || hex_field(tok, k, ev->version))
		goto bad;
	why = "bad command";
	if (token(&p, end, &tok, &k) || hex_field(tok, k, ev->command))
		goto bad;
	why = "bad key file";
	while (!token(&p, end, &tok, &k)) {
		struct cache_keyfile *f;

		if (tok_is(tok, k, "...")) {
			ev->files_omitted = 1;
			if (p != end)
				goto bad;
			break;
		}
		if (ev->files_omitted || ev->nfiles >= CACHE_RUN_FILES_MAX || k < 66 ||
		    tok[64] != ':' || !is_hex(tok, 64))
			goto bad;
		if (cache_pct_decode(tok + 65, k - 65, &s) || !*s || strlen(s) > 4096)
			goto bad;
		ev->files = xreallocarray(ev->files, ev->nfiles + 1, sizeof(*ev->files));
		f = &ev->files[ev->nfiles++];
		f->path = s;
		s = NULL;
		memcpy(f->sha256, tok, 64);
		f->sha256[64] = '\0';
	}
	why = "trailing bytes";
	if (p != end)
		goto bad;
	return 0;
bad:
	free(s);
	cache_event_release(ev);
	return err_set(e, ERR_CORRUPT, "not a cache event (%s)", why);
}

const char *cache_event_prefix(const char *key, const char *const *prefixes, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strncmp(key, prefixes[i], strlen(prefixes[i])))
			return prefixes[i];
	return key;
}

/* ---- registry tags ---- */

#define TAG_HEAD "ctxpack-stats."

void cache_event_hash12(const char *s, char out[13])
{
	char d[REG_DIGEST_SIZE];

	sha256_digest_str(s, strlen(s), d);
	memcpy(out, d + 7, 12);
	out[12] = '\0';
}

void cache_event_tag(const struct cache_event *ev, char out[CACHE_TAG_MAX + 1])
{
	char ph[13], kh[13];
	long long ms = (long long)ev->sec * 1000 + ev->nsec / 1000000;

	cache_event_hash12(ev->prefix ? ev->prefix : "", ph);
	cache_event_hash12(ev->key, kh);
	if (ms < 0)
		ms = 0;
	snprintf(out, CACHE_TAG_MAX + 1, TAG_HEAD "%013lld.%c%c.%s.%s.%.8s", ms % 10000000000000ll,
		 ev->op == CACHE_OP_RUN ? 'u' : 'r',
		 ev->result == CACHE_HIT ? 'h' : ev->result == CACHE_PARTIAL ? 'p' : 'm', ph, kh,
		 ev->id);
}

int cache_event_tag_parse(const char *tag, struct cache_event_tag *t)
{
	size_t hl = strlen(TAG_HEAD), i;
	const char *p;

	/* head, 13 digits, '.', 2, '.', 12 hex, '.', 12 hex, '.', 8 hex */
	if (strncmp(tag, TAG_HEAD, hl) || strlen(tag) != hl + 13 + 1 + 2 + 1 + 12 + 1 + 12 + 1 + 8)
		return -1;
	p = tag + hl;
	t->ms = 0;
	for (i = 0; i < 13; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		t->ms = t->ms * 10 + (p[i] - '0');
	}
	p += 13;
	if (p[0] != '.' || p[3] != '.' || p[16] != '.' || p[29] != '.')
		return -1;
	if (p[1] == 'r')
		t->op = CACHE_OP_RESTORE;
	else if (p[1] == 'u')
		t->op = CACHE_OP_RUN;
	else
		return -1;
	if (p[2] == 'h')
		t->result = CACHE_HIT;
	else if (p[2] == 'p')
		t->result = CACHE_PARTIAL;
	else if (p[2] == 'm')
		t->result = CACHE_MISS;
	else
		return -1;
	if (!is_hex(p + 4, 12) || !is_hex(p + 17, 12) || !is_hex(p + 30, 8))
		return -1;
	memcpy(t->prefix_hash, p + 4, 12);
	t->prefix_hash[12] = '\0';
	memcpy(t->key_hash, p + 17, 12);
	t->key_hash[12] = '\0';
	return 0;
}

/* ---- counts ---- */

void cache_stats_release(struct cache_stats *st)
{
	size_t i;

	for (i = 0; i < st->n; i++)
		free(st->rows[i].prefix);
	free(st->rows);
	memset(st, 0, sizeof(*st));
}

void cache_stats_add(struct cache_stats *st, const char *prefix, int result, int64_t sec,
		     long nsec)
{
	size_t lo = 0, hi = st->n;
	struct cache_stats_row *r;

	/* rows sorted by prefix: find it, or where it goes */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(st->rows[mid].prefix, prefix);

		if (!c) {
			lo = mid;
			hi = mid + 1;
			break;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo >= st->n || strcmp(st->rows[lo].prefix, prefix)) {
		st->rows = xreallocarray(st->rows, st->n + 1, sizeof(*st->rows));
		memmove(&st->rows[lo + 1], &st->rows[lo], (st->n - lo) * sizeof(*st->rows));
		memset(&st->rows[lo], 0, sizeof(*st->rows));
		st->rows[lo].prefix = xstrdup(prefix);
		st->n++;
	}
	r = &st->rows[lo];
	r->events++;
	if (result == CACHE_HIT)
		r->hits++;
	else if (result == CACHE_PARTIAL)
		r->partial++;
	else
		r->misses++;
	if (sec > r->last_sec || (sec == r->last_sec && nsec > r->last_nsec)) {
		r->last_sec = sec;
		r->last_nsec = nsec;
	}
	st->events++;
}

/* ---- why ---- */

void cache_why_release(struct cache_why *w)
{
	free(w->items);
	memset(w, 0, sizeof(*w));
}

static void why_add(struct cache_why *w, int kind, const char *path, const char *was,
		    const char *now)
{
	struct cache_why_item *it;

	w->items = xreallocarray(w->items, w->n + 1, sizeof(*w->items));
	it = &w->items[w->n++];
	it->kind = kind;
	it->path = path;
	it->was = was;
	it->now = now;
}

void cache_why_diff(const struct cache_keyfile *was, size_t nwas,
		    const struct cache_keyfile *now, size_t nnow, struct cache_why *w)
{
	/* pair[i]: the index in was of now[i]'s path, or -1 */
	long *pair = xcalloc(nnow + 1, sizeof(*pair));
	char *used = xcalloc(nwas + 1, 1);
	size_t i, j;
	int same_order = nwas == nnow;

	memset(w, 0, sizeof(*w));
	for (i = 0; i < nnow; i++) {
		pair[i] = -1;
		for (j = 0; j < nwas; j++) {
			if (!used[j] && !strcmp(was[j].path, now[i].path)) {
				used[j] = 1;
				pair[i] = (long)j;
				break;
			}
		}
		if (pair[i] != (long)i)
			same_order = 0;
	}
	for (i = 0; i < nnow; i++)
		if (pair[i] >= 0 && strcmp(was[pair[i]].sha256, now[i].sha256))
			why_add(w, CACHE_WHY_CHANGED, now[i].path, was[pair[i]].sha256,
				now[i].sha256);
	for (i = 0; i < nnow; i++)
		if (pair[i] < 0)
			why_add(w, CACHE_WHY_ADDED, now[i].path, NULL, now[i].sha256);
	for (j = 0; j < nwas; j++)
		if (!used[j])
			why_add(w, CACHE_WHY_REMOVED, was[j].path, was[j].sha256, NULL);
	/* nothing else differs, yet the order does: the key hashes them in order */
	w->order_changed = !w->n && !same_order;
	free(pair);
	free(used);
}

long cache_why_pick(const struct cache_entry *v, size_t n, const char *key,
		    const char *matched, int64_t before_sec)
{
	size_t i;

	/* newest first: the first that fits is the one there was then */
	if (matched)
		for (i = 0; i < n; i++)
			if (v[i].key && !strcmp(v[i].key, matched) &&
			    (!before_sec || v[i].created_sec <= before_sec))
				return (long)i;
	for (i = 0; i < n; i++) {
		if (key && v[i].key && !strcmp(v[i].key, key))
			continue;
		if (before_sec && v[i].created_sec > before_sec)
			continue;
		return (long)i;
	}
	return -1;
}
