/*
 * cache stats: the store's log of restores and runs (cache.h has the
 * model; cache_event.c the line and tag formats).
 *
 * An oci: layout keeps the log as a file beside it (reg_store_log_*: an
 * append under an flock, trimmed by rewriting under the same lock).
 *
 * A registry has no file to append to, and no compare-and-swap on tags:
 * one shared log manifest rewritten by concurrent jobs would lose events
 * whenever two read the same version.  So each event is its own small
 * manifest (the empty config, the empty layer, the log line as an
 * annotation) under its own tag, whose name alone (time, operation,
 * result, hashes of the prefix and key: cache_event_tag) is enough to
 * count it; only one manifest per prefix is read, for the prefix's text.
 * Two jobs appending at once write two tags: nothing to lose.  An append
 * lists the tags and deletes the oldest events past the number kept, each
 * checked to be an event manifest before it is deleted by digest (a
 * hostile tag named like an event but pointing at a cache entry is
 * skipped, not followed).  Where the registry refuses deletes, appends
 * stop once twice that many events are there.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cache_internal.h"

/* Manifests read to learn a prefix's text, or a key's last miss. */
#define NAME_TRIES 3
#define MISS_TRIES 5

static void new_id(char out[17])
{
	unsigned char r[8];
	struct timespec ts;
	size_t i;

	if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
		uint64_t x;

		clock_gettime(CLOCK_REALTIME, &ts);
		x = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
		    ((uint64_t)getpid() << 40);
		for (i = 0; i < 8; i++)
			r[i] = (unsigned char)(x >> (8 * i));
	}
	hex_encode(out, r, 8);
	out[16] = '\0';
}

static int is_layout(struct cache *c)
{
	return reg_store_ref(cache_store(c))->kind == REG_LAYOUT;
}

/* The bytes of a layout's log worth reading: what the trim lets it reach. */
static uint64_t log_read_max(size_t keep)
{
	return (uint64_t)keep * 1024 + 2 * CACHE_EVENT_MAX;
}

/* ---- registry: event manifests ---- */

/* Read the event at tag (checked to be an event manifest). */
static int get_event(struct cache *c, const char *tag, struct cache_event *ev,
		     char digest[REG_DIGEST_SIZE], struct err *e)
{
	struct reg_manifest m;
	struct buf b = BUF_INIT;
	const char *line;
	int ret;

	memset(&m, 0, sizeof(m));
	memset(ev, 0, sizeof(*ev));
	ret = reg_manifest_get(cache_store(c), tag, &b, NULL, digest, e);
	if (ret)
		goto out;
	ret = reg_manifest_parse(&m, b.data, b.len, e);
	if (ret)
		goto out;
	if (m.is_index || !m.artifact_type || strcmp(m.artifact_type, CACHE_EVENT_ARTIFACT_TYPE)) {
		ret = err_set(e, ERR_CORRUPT, "tag %s is not a cache event", tag);
		goto out;
	}
	line = reg_annot_get(m.annotations, m.nannotations, CACHE_ANNOT_EVENT);
	if (!line) {
		ret = err_set(e, ERR_CORRUPT, "tag %s: no %s annotation", tag, CACHE_ANNOT_EVENT);
		goto out;
	}
	ret = cache_event_parse(ev, line, strlen(line), e);
	if (ret)
		err_wrap(e, "tag %s", tag);
out:
	reg_manifest_release(&m);
	buf_release(&b);
	return ret;
}

struct ev_tag {
	const char *tag;              /* borrowed from the tag list */
	struct cache_event_tag t;
};

static int ev_tag_cmp(const void *a, const void *b)
{
	const struct ev_tag *x = a, *y = b;

	if (x->t.ms != y->t.ms)
		return x->t.ms < y->t.ms ? -1 : 1;
	return strcmp(x->tag, y->tag);
}

/* The event tags of the store, oldest first. */
static int list_event_tags(struct cache *c, struct reg_tags *tags, struct ev_tag **out,
			   size_t *nout, struct err *e)
{
	struct ev_tag *v;
	size_t i, n = 0;
	int ret;

	*out = NULL;
	*nout = 0;
	ret = reg_tags_list(cache_store(c), tags, e);
	if (ret)
		return err_wrap(e, "list the tags of %s", cache_store_name(c));
	v = xcalloc(tags->n + 1, sizeof(*v));
	for (i = 0; i < tags->n; i++) {
		if (cache_event_tag_parse(tags->v[i], &v[n].t))
			continue;
		v[n++].tag = tags->v[i];
	}
	qsort(v, n, sizeof(*v), ev_tag_cmp);
	*out = v;
	*nout = n;
	return 0;
}

/* Delete the event at tag: 0 done (or gone already), <0 error. */
static int delete_event(struct cache *c, const char *tag, struct err *e)
{
	struct cache_event ev;
	char digest[REG_DIGEST_SIZE];
	int ret;

	ret = get_event(c, tag, &ev, digest, e);
	cache_event_release(&ev);
	if (ret == ERR_NOTFOUND) {
		err_clear(e);
		return 0;
	}
	if (ret)
		return ret;
	ret = reg_manifest_delete(cache_store(c), digest, e);
	if (ret == ERR_NOTFOUND) {
		err_clear(e);
		return 0;
	}
	return ret;
}

static int record_remote(struct cache *c, const struct cache_event *ev, const struct buf *line,
			 size_t keep, struct err *e)
{
	struct reg_store *s = cache_store(c);
	struct reg_tags tags = {NULL, 0};
	struct ev_tag *v = NULL;
	struct reg_desc layer;
	struct reg_kv an;
	struct buf man = BUF_INIT;
	char tag[CACHE_TAG_MAX + 1];
	size_t n = 0, i, gone = 0;
	int ret;

	ret = list_event_tags(c, &tags, &v, &n, e);
	if (ret)
		goto out;
	/* room for this one: the oldest go */
	for (i = 0; n - gone + 1 > keep && i < n; i++) {
		struct err e2 = ERR_INIT;
		int r2 = delete_event(c, v[i].tag, &e2);

		if (r2 == ERR_CORRUPT) {
			/* named like an event, but not one: not ours to delete */
			cache_warnf(c, "%s; not deleted", e2.msg);
			continue;
		}
		if (r2) {
			if (n - gone >= 2 * keep) {
				ret = err_set(e, e2.code, "the log holds %zu events and the oldest "
					      "cannot be deleted: %s", n - gone, e2.msg);
				goto out;
			}
			cache_warnf(c, "cannot delete the oldest events of the stats log of %s "
				    "(it keeps growing until %zu events, then stops): %s",
				    cache_store_name(c), 2 * keep, e2.msg);
			break;
		}
		gone++;
	}

	memset(&layer, 0, sizeof(layer));
	layer.media_type = (char *)REG_MT_EMPTY;
	memcpy(layer.digest, REG_EMPTY_DIGEST, sizeof(REG_EMPTY_DIGEST));
	layer.size = 2;
	an.key = (char *)CACHE_ANNOT_EVENT;
	an.value = line->data;
	ret = cache_manifest_build_type(&man, CACHE_EVENT_ARTIFACT_TYPE, &layer, 1, &an, 1, e);
	if (ret)
		goto out;
	cache_event_tag(ev, tag);
	ret = reg_manifest_put(s, tag, man.data, man.len, NULL, e);
	if (ret && ret != ERR_AUTH) {
		/* a store with no entry yet lacks the empty blob */
		struct err e2 = ERR_INIT;

		if (!reg_blob_push_mem(s, "{}", 2, NULL, &e2)) {
			err_clear(e);
			ret = reg_manifest_put(s, tag, man.data, man.len, NULL, e);
		}
	}
out:
	buf_release(&man);
	free(v);
	reg_tags_release(&tags);
	return ret;
}

int cache_event_record(struct cache *c, struct cache_event *ev, struct err *e)
{
	struct reg_store *s = cache_store(c);
	struct buf line = BUF_INIT;
	struct timespec now;
	size_t keep = cache_stats_keep();
	int ret;

	clock_gettime(CLOCK_REALTIME, &now);
	ev->sec = (int64_t)now.tv_sec;
	ev->nsec = now.tv_nsec;
	new_id(ev->id);
	cache_event_format(ev, &line);
	if (is_layout(c))
		ret = reg_store_log_append(s, CACHE_STATS_LOG, line.data, line.len, keep,
					   (uint64_t)keep * 1024, e);
	else
		ret = record_remote(c, ev, &line, keep, e);
	if (ret)
		err_wrap(e, "record the %s of %s in the stats log of %s",
			 ev->op == CACHE_OP_RUN ? "run" : "restore", ev->key, cache_store_name(c));
	buf_release(&line);
	return ret;
}

/* ---- layout: the log file ---- */

/* The valid events of a layout's log, oldest first (the newest keep of
 * them at most); *skipped counts the lines that were not. */
static int read_layout(struct cache *c, size_t keep, struct cache_event **out, size_t *nout,
		       uint64_t *skipped, struct err *e)
{
	struct buf b = BUF_INIT;
	struct cache_event *v = NULL;
	size_t n = 0, cap = 0;
	char *p, *end, *nl;
	int ret;

	*out = NULL;
	*nout = 0;
	ret = reg_store_log_read(cache_store(c), CACHE_STATS_LOG, log_read_max(keep), &b, e);
	if (ret)
		return err_wrap(e, "read the stats log of %s", cache_store_name(c));
	for (p = b.data, end = b.data + b.len; p < end; p = nl + 1) {
		struct err e2 = ERR_INIT;

		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end; /* a last line without its newline: as it is */
		if (nl == p)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			v = xreallocarray(v, cap, sizeof(*v));
		}
		if (cache_event_parse(&v[n], p, (size_t)(nl - p), &e2)) {
			(*skipped)++;
			continue;
		}
		n++;
	}
	buf_release(&b);
	if (n > keep) {
		size_t i;

		for (i = 0; i < n - keep; i++)
			cache_event_release(&v[i]);
		memmove(v, v + (n - keep), keep * sizeof(*v));
		n = keep;
	}
	*out = v;
	*nout = n;
	return 0;
}

static void events_free(struct cache_event *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		cache_event_release(&v[i]);
	free(v);
}

static int starts(const char *s, const char *prefix)
{
	return !prefix || !strncmp(s, prefix, strlen(prefix));
}

/* ---- stats ---- */

/* A prefix hash and its text (NULL until known). */
struct group {
	char hash[13];
	char *name;
	size_t tries;
};

static int stats_remote(struct cache *c, const char *only, size_t keep, struct cache_stats *st,
			struct err *e)
{
	struct reg_tags tags = {NULL, 0};
	struct ev_tag *v = NULL;
	struct group *g = NULL;
	size_t n = 0, ng = 0, i, j, first;
	int ret;

	ret = list_event_tags(c, &tags, &v, &n, e);
	if (ret)
		goto out;
	first = n > keep ? n - keep : 0;
	g = xcalloc(n + 1, sizeof(*g));
	/* newest first, so each prefix's text comes from its newest event */
	for (i = n; i-- > first;) {
		struct group *gr = NULL;
		struct cache_event ev;
		struct err e2 = ERR_INIT;
		char h[13];

		for (j = 0; j < ng && !gr; j++)
			if (!strcmp(g[j].hash, v[i].t.prefix_hash))
				gr = &g[j];
		if (!gr) {
			gr = &g[ng++];
			memcpy(gr->hash, v[i].t.prefix_hash, 13);
		}
		if (gr->name || gr->tries >= NAME_TRIES)
			continue;
		gr->tries++;
		if (get_event(c, v[i].tag, &ev, NULL, &e2)) {
			if (e2.code != ERR_NOTFOUND && e2.code != ERR_CORRUPT) {
				*e = e2;
				ret = e->code;
				goto out;
			}
			st->skipped++;
			continue;
		}
		cache_event_hash12(ev.prefix, h);
		if (!strcmp(h, gr->hash))
			gr->name = xstrdup(ev.prefix);
		else
			st->skipped++;
		cache_event_release(&ev);
	}
	for (i = first; i < n; i++) {
		struct group *gr = NULL;

		for (j = 0; j < ng && !gr; j++)
			if (!strcmp(g[j].hash, v[i].t.prefix_hash))
				gr = &g[j];
		if (!gr->name)
			gr->name = xasprintf("(prefix %s)", gr->hash);
		if (!starts(gr->name, only))
			continue;
		cache_stats_add(st, gr->name, v[i].t.result, v[i].t.ms / 1000,
				(long)(v[i].t.ms % 1000) * 1000000);
	}
out:
	for (i = 0; i < ng; i++)
		free(g[i].name);
	free(g);
	free(v);
	reg_tags_release(&tags);
	return ret;
}

int cache_stats_read(struct cache *c, const char *only_prefix, struct cache_stats *st,
		     struct err *e)
{
	struct cache_event *v = NULL;
	size_t keep = cache_stats_keep(), n = 0, i;
	int ret;

	memset(st, 0, sizeof(*st));
	if (!is_layout(c))
		return stats_remote(c, only_prefix, keep, st, e);
	ret = read_layout(c, keep, &v, &n, &st->skipped, e);
	if (ret)
		return ret;
	for (i = 0; i < n; i++)
		if (starts(v[i].prefix, only_prefix))
			cache_stats_add(st, v[i].prefix, v[i].result, v[i].sec, v[i].nsec);
	events_free(v, n);
	return 0;
}

int cache_event_last_miss(struct cache *c, const char *key, struct cache_event *ev,
			  struct err *e)
{
	struct cache_event *v = NULL;
	struct reg_tags tags = {NULL, 0};
	struct ev_tag *t = NULL;
	size_t keep = cache_stats_keep(), n = 0, i, tries = 0;
	char kh[13];
	int ret, found = 0;

	memset(ev, 0, sizeof(*ev));
	if (is_layout(c)) {
		uint64_t skipped = 0;

		ret = read_layout(c, keep, &v, &n, &skipped, e);
		if (ret)
			return ret;
		for (i = n; i-- > 0 && !found;) {
			if (v[i].op == CACHE_OP_RUN && v[i].result != CACHE_HIT &&
			    !strcmp(v[i].key, key)) {
				*ev = v[i];
				memset(&v[i], 0, sizeof(v[i]));
				found = 1;
			}
		}
		events_free(v, n);
		return found;
	}
	cache_event_hash12(key, kh);
	ret = list_event_tags(c, &tags, &t, &n, e);
	if (ret)
		goto out;
	for (i = n; i-- > (n > keep ? n - keep : 0) && !found && tries < MISS_TRIES;) {
		struct err e2 = ERR_INIT;

		if (t[i].t.op != CACHE_OP_RUN || t[i].t.result == CACHE_HIT ||
		    strcmp(t[i].t.key_hash, kh))
			continue;
		tries++;
		ret = get_event(c, t[i].tag, ev, NULL, &e2);
		if (ret == ERR_NOTFOUND || ret == ERR_CORRUPT) {
			ret = 0;
			continue;
		}
		if (ret) {
			*e = e2;
			goto out;
		}
		if (ev->op == CACHE_OP_RUN && ev->result != CACHE_HIT && !strcmp(ev->key, key))
			found = 1;
		else
			cache_event_release(ev);
	}
out:
	free(t);
	reg_tags_release(&tags);
	return ret ? ret : found;
}
