/*
 * cache_entries: finding the entries of a store: the lookup of a restore
 * (the key, then the newest entry of each restore-key prefix), listing
 * (all entries, or a prefix's), deleting, and the store's garbage
 * collection.
 */
#include "ctxpack/cache.h"

#include <stdlib.h>
#include <string.h>

#include "cache_internal.h"

void cache_match_release(struct cache_match *m)
{
	cache_entry_release(&m->entry);
	m->result = CACHE_MISS;
}

/* Is the entry one of (key, version)? */
static int entry_is(const struct cache_entry *en, const char *key, const char *version)
{
	return en->key && !strcmp(en->key, key) && en->version &&
	       !strcmp(en->version, version);
}

static int entry_has_prefix(const struct cache_entry *en, const char *prefix,
			    const char *version)
{
	return en->key && !strncmp(en->key, prefix, strlen(prefix)) && en->version &&
	       !strcmp(en->version, version);
}

int cache_lookup(struct cache *c, const char *key, const char *const *prefixes,
		 size_t nprefixes, const char *const *paths, size_t npaths,
		 struct cache_match *m, struct err *e)
{
	char version[CACHE_VERSION_LEN + 1], tag[CACHE_TAG_MAX + 1];
	struct reg_tags tags = {NULL, 0};
	struct cache_entry *cand = NULL;
	size_t ncand = 0, i, j;
	int ret;

	memset(m, 0, sizeof(*m));
	if (cache_key_check(key, "key", e) || cache_check_paths(paths, npaths, e))
		return e->code;
	for (i = 0; i < nprefixes; i++)
		if (*prefixes[i] && cache_key_check(prefixes[i], "restore key", e))
			return e->code;
	cache_version(paths, npaths, version);
	cache_tag(key, version, tag);

	ret = cache_read_entry(c, tag, &m->entry, NULL, e);
	if (!ret) {
		if (entry_is(&m->entry, key, version)) {
			m->result = CACHE_HIT;
			return 0;
		}
		cache_warnf(c, "tag %s holds key '%s', not '%s' (a hash collision?); ignored", tag,
		      m->entry.key, key);
		cache_entry_release(&m->entry);
	} else if (ret == ERR_CORRUPT) {
		cache_warnf(c, "%s; ignored", e->msg);
		err_clear(e);
	} else if (ret == ERR_NOTFOUND) {
		err_clear(e);
	} else {
		return err_wrap(e, "look up %s in %s", key, reg_store_name(c->s));
	}
	if (!nprefixes)
		return 0;

	ret = reg_tags_list(c->s, &tags, e);
	if (ret)
		return err_wrap(e, "list the tags of %s", reg_store_name(c->s));
	/* read every candidate once, whatever prefix it may match */
	cand = xcalloc(tags.n + 1, sizeof(*cand));
	for (i = 0; i < tags.n; i++) {
		int may = 0;

		for (j = 0; j < nprefixes && !may; j++)
			may = cache_tag_may_match(tags.v[i], prefixes[j], version);
		if (!may)
			continue;
		ret = cache_read_listed(c, tags.v[i], &cand[ncand], e);
		if (ret == 1) {
			ret = 0;
			continue;
		}
		if (ret) {
			err_wrap(e, "look up %s in %s", tags.v[i], reg_store_name(c->s));
			goto out;
		}
		ncand++;
	}
	for (j = 0; j < nprefixes; j++) {
		struct cache_entry *best = NULL;

		for (i = 0; i < ncand; i++)
			if (entry_has_prefix(&cand[i], prefixes[j], version) &&
			    (!best || cache_entry_newer(&cand[i], best)))
				best = &cand[i];
		if (best) {
			m->entry = *best;
			memset(best, 0, sizeof(*best));
			m->result = !strcmp(m->entry.key, key) ? CACHE_HIT : CACHE_PARTIAL;
			break;
		}
	}
out:
	cache_entries_free(cand, ncand);
	reg_tags_release(&tags);
	return ret;
}

static int newest_first(const void *a, const void *b)
{
	const struct cache_entry *x = a, *y = b;

	if (cache_entry_newer(x, y))
		return -1;
	if (cache_entry_newer(y, x))
		return 1;
	return 0;
}

/*
 * The entries of the store, newest first: every entry when prefix is
 * NULL, else those whose key starts with prefix (and, when version is not
 * NULL, that have this version).
 */
static int list_entries(struct cache *c, const char *prefix, const char *version,
			struct cache_entry **out, size_t *nout, struct err *e)
{
	struct reg_tags tags = {NULL, 0};
	struct cache_entry *v;
	size_t i, n = 0;
	int ret;

	*out = NULL;
	*nout = 0;
	ret = reg_tags_list(c->s, &tags, e);
	if (ret)
		return err_wrap(e, "list the tags of %s", reg_store_name(c->s));
	v = xcalloc(tags.n + 1, sizeof(*v));
	for (i = 0; i < tags.n; i++) {
		if (prefix ? !cache_tag_may_match(tags.v[i], prefix, version)
			   : !cache_tag_is_cache(tags.v[i]))
			continue;
		ret = cache_read_listed(c, tags.v[i], &v[n], e);
		if (ret == 1) {
			ret = 0;
			continue;
		}
		if (ret) {
			err_wrap(e, "read %s", tags.v[i]);
			break;
		}
		if (prefix && (strncmp(v[n].key, prefix, strlen(prefix)) ||
			       (version && (!v[n].version || strcmp(v[n].version, version))))) {
			cache_entry_release(&v[n]);
			continue;
		}
		n++;
	}
	reg_tags_release(&tags);
	if (ret) {
		cache_entries_free(v, n);
		return ret;
	}
	qsort(v, n, sizeof(*v), newest_first);
	*out = v;
	*nout = n;
	return 0;
}

int cache_list(struct cache *c, struct cache_entry **out, size_t *nout, struct err *e)
{
	return list_entries(c, NULL, NULL, out, nout, e);
}

int cache_list_prefix(struct cache *c, const char *prefix, const char *version,
		      struct cache_entry **out, size_t *nout, struct err *e)
{
	return list_entries(c, prefix, version, out, nout, e);
}

int cache_delete(struct cache *c, const struct cache_entry *en, struct err *e)
{
	int ret = reg_manifest_delete(c->s, en->tag, e);

	if (ret)
		err_wrap(e, "delete %s", en->key);
	return ret;
}

int cache_gc(struct cache *c, uint64_t grace, uint64_t *freed, struct err *e)
{
	return reg_store_gc(c->s, grace, freed, e);
}
