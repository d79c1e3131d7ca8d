/*
 * cache entries as manifests: building the multi-layer manifest JSON,
 * reading an entry back, ordering entries, choosing what prune deletes.
 *
 * The manifest is written here rather than by the registry module's
 * single-layer helper because an entry has one layer per path.  Keys are
 * sorted and the JSON compact, so equal inputs give equal bytes.  All
 * strings were checked to be UTF-8 (cache_key_check/cache_path_check) or
 * are ASCII (digests, media types), so escaping '"', '\\' and control
 * bytes is all JSON needs.
 *
 * Reading an entry back, everything in it is untrusted (the store may be
 * shared, or hostile): the key, the layers' paths and titles, the version
 * and the counts are checked as user input is, so no newline or control
 * character from a store reaches stdout, $GITHUB_OUTPUT or a terminal.
 */
#include "ctxpack/cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void json_str(struct buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	buf_addch(b, '"');
	for (; *p; p++) {
		if (*p == '"' || *p == '\\') {
			buf_addch(b, '\\');
			buf_addch(b, *p);
		} else if (*p < 0x20 || *p == 0x7f) {
			buf_addf(b, "\\u%04x", *p);
		} else {
			buf_addch(b, *p);
		}
	}
	buf_addch(b, '"');
}

void cache_json_list(struct buf *out, const char *const *v, size_t n)
{
	size_t i;

	buf_addch(out, '[');
	for (i = 0; i < n; i++) {
		if (i)
			buf_addch(out, ',');
		json_str(out, v[i]);
	}
	buf_addch(out, ']');
}

static int kv_cmp(const void *a, const void *b)
{
	return strcmp(((const struct reg_kv *)a)->key, ((const struct reg_kv *)b)->key);
}

static void json_annots(struct buf *b, const struct reg_kv *kv, size_t n)
{
	struct reg_kv *s = xcalloc(n + 1, sizeof(*s));
	size_t i;

	memcpy(s, kv, n * sizeof(*s));
	qsort(s, n, sizeof(*s), kv_cmp);
	buf_addstr(b, "\"annotations\":{");
	for (i = 0; i < n; i++) {
		if (i)
			buf_addch(b, ',');
		json_str(b, s[i].key);
		buf_addch(b, ':');
		json_str(b, s[i].value);
	}
	buf_addstr(b, "},");
	free(s);
}

int cache_manifest_build(struct buf *out, const struct reg_desc *layers, size_t n,
			 const struct reg_kv *annotations, size_t nannotations,
			 struct err *e)
{
	return cache_manifest_build_type(out, CACHE_ARTIFACT_TYPE, layers, n, annotations,
					 nannotations, e);
}

int cache_manifest_build_type(struct buf *out, const char *artifact_type,
			      const struct reg_desc *layers, size_t n,
			      const struct reg_kv *annotations, size_t nannotations,
			      struct err *e)
{
	size_t i;

	buf_reset(out);
	buf_addch(out, '{');
	if (nannotations)
		json_annots(out, annotations, nannotations);
	buf_addstr(out, "\"artifactType\":");
	json_str(out, artifact_type);
	buf_addf(out, ",\"config\":{\"digest\":\"%s\",\"mediaType\":\"%s\",\"size\":2},",
		 REG_EMPTY_DIGEST, REG_MT_EMPTY);
	buf_addstr(out, "\"layers\":[");
	for (i = 0; i < n; i++) {
		if (i)
			buf_addch(out, ',');
		buf_addch(out, '{');
		if (layers[i].nannotations)
			json_annots(out, layers[i].annotations, layers[i].nannotations);
		buf_addf(out, "\"digest\":\"%s\",\"mediaType\":", layers[i].digest);
		json_str(out, layers[i].media_type);
		buf_addf(out, ",\"size\":%llu}", (unsigned long long)layers[i].size);
	}
	buf_addf(out, "],\"mediaType\":\"%s\",\"schemaVersion\":2}", REG_MT_MANIFEST);
	if (out->len > REG_MANIFEST_MAX)
		return err_set(e, ERR_USAGE, "the entry's manifest would be %zu bytes; at most "
			       "%u are allowed (too many paths?)", out->len, REG_MANIFEST_MAX);
	return 0;
}

void cache_entry_release(struct cache_entry *en)
{
	free(en->tag);
	free(en->key);
	free(en->version);
	free(en->created);
	reg_manifest_release(&en->m);
	memset(en, 0, sizeof(*en));
}

void cache_entries_free(struct cache_entry *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		cache_entry_release(&v[i]);
	free(v);
}

/* 1 when s is 64 lowercase hex digits. */
static int is_hex64(const char *s)
{
	size_t i;

	for (i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return !s[64];
}

/* 1 when s is printable ASCII (a media type, a time). */
static int is_printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

/* Check what restore and the commands use of a layer's annotations. */
static int check_layer(const struct reg_desc *l, const char *tag, size_t i, struct err *e)
{
	struct err e2 = ERR_INIT;
	const char *v;
	uint64_t u;

	v = reg_annot_get(l->annotations, l->nannotations, CACHE_ANNOT_PATH);
	if (!v)
		return err_set(e, ERR_CORRUPT, "cache entry %s: layer %zu has no path", tag, i);
	if (cache_path_check(v, &e2))
		return err_set(e, ERR_CORRUPT, "cache entry %s: layer %zu: the stored %s", tag, i,
			       e2.msg);
	v = reg_annot_get(l->annotations, l->nannotations, REG_ANNOT_TITLE);
	if (v && cache_text_check(v))
		return err_set(e, ERR_CORRUPT, "cache entry %s: layer %zu: the stored title is "
			       "not UTF-8 text without control characters", tag, i);
	if (!l->media_type || !is_printable(l->media_type))
		return err_set(e, ERR_CORRUPT, "cache entry %s: layer %zu: bad media type", tag, i);
	v = reg_annot_get(l->annotations, l->nannotations, CACHE_ANNOT_TAR_SIZE);
	if (v && parse_u64(v, &u))
		return err_set(e, ERR_CORRUPT, "cache entry %s: layer %zu: bad %s", tag, i,
			       CACHE_ANNOT_TAR_SIZE);
	v = reg_annot_get(l->annotations, l->nannotations, CACHE_ANNOT_ENTRIES);
	if (v && parse_u64(v, &u))
		return err_set(e, ERR_CORRUPT, "cache entry %s: layer %zu: bad %s", tag, i,
			       CACHE_ANNOT_ENTRIES);
	return 0;
}

int cache_entry_parse(struct cache_entry *en, const char *tag, const char *digest,
		      const void *p, size_t n, struct err *e)
{
	struct err e2 = ERR_INIT;
	const char *v;
	size_t i;
	int ret;

	memset(en, 0, sizeof(*en));
	ret = reg_manifest_parse(&en->m, p, n, e);
	if (ret)
		return err_wrap(e, "tag %s", tag);
	if (en->m.is_index || !en->m.artifact_type ||
	    strcmp(en->m.artifact_type, CACHE_ARTIFACT_TYPE)) {
		ret = err_set(e, ERR_CORRUPT, "tag %s is not a cache entry (artifactType %s)", tag,
			      en->m.artifact_type ? en->m.artifact_type : "none");
		goto out;
	}
	v = reg_annot_get(en->m.annotations, en->m.nannotations, CACHE_ANNOT_KEY);
	if (!v) {
		ret = err_set(e, ERR_CORRUPT, "cache entry %s has no key annotation", tag);
		goto out;
	}
	if (cache_key_check(v, "key", &e2)) {
		ret = err_set(e, ERR_CORRUPT, "cache entry %s: the stored %s", tag, e2.msg);
		goto out;
	}
	en->key = xstrdup(v);
	v = reg_annot_get(en->m.annotations, en->m.nannotations, CACHE_ANNOT_VERSION);
	if (v && !is_hex64(v)) {
		ret = err_set(e, ERR_CORRUPT, "cache entry %s: bad %s", tag, CACHE_ANNOT_VERSION);
		goto out;
	}
	en->version = v ? xstrdup(v) : NULL;
	v = reg_annot_get(en->m.annotations, en->m.nannotations, REG_ANNOT_CREATED);
	/* a time that does not parse is no time at all */
	if (v && is_printable(v) && strlen(v) < 40 &&
	    !cache_time_parse(v, &en->created_sec, &en->created_nsec))
		en->created = xstrdup(v);
	else
		en->created_sec = en->created_nsec = 0;
	for (i = 0; i < en->m.nlayers; i++) {
		const struct reg_desc *l = &en->m.layers[i];

		ret = check_layer(l, tag, i, e);
		if (ret)
			goto out;
		if (l->size > UINT64_MAX - en->size) {
			ret = err_set(e, ERR_CORRUPT, "cache entry %s: bad layer sizes", tag);
			goto out;
		}
		en->size += l->size;
	}
	en->tag = xstrdup(tag);
	if (digest)
		memcpy(en->digest, digest, REG_DIGEST_SIZE);
out:
	if (ret)
		cache_entry_release(en);
	return ret;
}

int cache_entry_newer(const struct cache_entry *a, const struct cache_entry *b)
{
	int c;

	if (a->created_sec != b->created_sec)
		return a->created_sec > b->created_sec;
	if (a->created_nsec != b->created_nsec)
		return a->created_nsec > b->created_nsec;
	c = strcmp(a->key ? a->key : "", b->key ? b->key : "");
	if (c)
		return c > 0;
	return strcmp(a->tag ? a->tag : "", b->tag ? b->tag : "") > 0;
}

int cache_entry_current(const struct cache_entry *en)
{
	char tag[CACHE_TAG_MAX + 1];

	/* entries of old formats have no version: they were never replaced */
	if (!en->version || !en->key || !en->tag)
		return 1;
	cache_tag(en->key, en->version, tag);
	return !strcmp(tag, en->tag);
}

void cache_run_record_release(struct cache_run_record *r)
{
	size_t i;

	for (i = 0; i < r->nfiles; i++)
		free(r->files[i].path);
	free(r->files);
	free(r->prefix);
	memset(r, 0, sizeof(*r));
}

int cache_entry_run_record(const struct cache_entry *en, struct cache_run_record *r,
			   struct err *e)
{
	const struct reg_kv *kv = en->m.annotations;
	size_t nkv = en->m.nannotations, i;
	const char *v;
	uint64_t count;
	int ret = 0;

	memset(r, 0, sizeof(*r));
	v = reg_annot_get(kv, nkv, CACHE_ANNOT_RUN_PREFIX);
	if (v) {
		if (strlen(v) > CACHE_KEY_MAX || cache_text_check(v))
			return err_set(e, ERR_CORRUPT, "cache entry %s: bad %s", en->tag,
				       CACHE_ANNOT_RUN_PREFIX);
		r->prefix = xstrdup(v);
	}
	v = reg_annot_get(kv, nkv, CACHE_ANNOT_RUN_COMMAND);
	if (v) {
		if (!is_hex64(v)) {
			ret = err_set(e, ERR_CORRUPT, "cache entry %s: bad %s", en->tag,
				      CACHE_ANNOT_RUN_COMMAND);
			goto out;
		}
		memcpy(r->command, v, 65);
	}
	v = reg_annot_get(kv, nkv, CACHE_ANNOT_RUN_FILES);
	if (!v)
		goto out;
	if (!strcmp(v, "omitted")) {
		r->omitted = 1;
		goto out;
	}
	if (parse_u64(v, &count) || count > CACHE_RUN_FILES_MAX) {
		ret = err_set(e, ERR_CORRUPT, "cache entry %s: bad %s", en->tag,
			      CACHE_ANNOT_RUN_FILES);
		goto out;
	}
	r->files = xcalloc((size_t)count + 1, sizeof(*r->files));
	for (i = 0; i < count; i++) {
		char name[64];
		const char *sp;

		snprintf(name, sizeof(name), "%s%zu", CACHE_ANNOT_RUN_FILE, i);
		v = reg_annot_get(kv, nkv, name);
		/* "sha256:" 64 hex, a space, the %-encoded path */
		if (!v || strncmp(v, "sha256:", 7) || strlen(v) < 7 + 64 + 2 || v[71] != ' ') {
			ret = err_set(e, ERR_CORRUPT, "cache entry %s: bad or missing %s", en->tag,
				      name);
			goto out;
		}
		memcpy(r->files[i].sha256, v + 7, 64);
		r->files[i].sha256[64] = '\0';
		sp = v + 72;
		if (!is_hex64(r->files[i].sha256) || strlen(sp) > 3 * 4096 ||
		    cache_pct_decode(sp, strlen(sp), &r->files[i].path) || !*r->files[i].path) {
			free(r->files[i].path);
			r->files[i].path = NULL;
			ret = err_set(e, ERR_CORRUPT, "cache entry %s: bad %s", en->tag, name);
			goto out;
		}
		r->nfiles++;
	}
	r->recorded = 1;
out:
	if (ret)
		cache_run_record_release(r);
	return ret;
}

size_t cache_prune_select(const struct cache_entry *v, size_t n,
			  const struct cache_prune_opts *o, int64_t now, int *del)
{
	size_t i, j, rank = 0, chosen = 0;

	for (i = 0; i < n; i++) {
		int d;

		del[i] = 0;
		if (o->prefix && strncmp(v[i].key, o->prefix, strlen(o->prefix)))
			continue;
		rank++;
		if (o->has_keep && rank <= o->keep)
			continue;
		if (o->has_older)
			d = o->older_than <= (uint64_t)now &&
			    v[i].created_sec < now - (int64_t)o->older_than;
		else
			d = o->has_keep;
		if (d) {
			del[i] = 1;
			chosen++;
		}
	}
	/* one manifest under two tags (an update cut short between its two
	 * puts): deleting one by digest would delete the other */
	for (i = 0; i < n; i++) {
		if (!del[i] || !v[i].digest[0])
			continue;
		for (j = 0; j < n; j++) {
			if (!del[j] && !strcmp(v[j].digest, v[i].digest)) {
				del[i] = 0;
				chosen--;
				break;
			}
		}
	}
	return chosen;
}
