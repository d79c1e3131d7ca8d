/*
 * cache: save, look up, restore, list and delete entries in an OCI store
 * (include/ctxpack/cache.h has the model).
 *
 * Save: each path is walked with no ignore patterns and packed by
 * pack_write into a temporary file (bounded memory; the sha256 comes out
 * of the pack), pushed as a blob (skipped when the store has it: the same
 * content gives the same bytes), then the empty config, then the manifest
 * by tag: the commit point.  A path whose archive was made before and is
 * in the store is not packed at all (cache_reuse.c).
 *
 * Restore: each layer is downloaded into a private temporary file (no
 * name: O_TMPFILE) while its sha256 and size are checked; only a verified
 * file is handed to the extractor, which never sees a byte the digest did
 * not cover (and which no other process can change meanwhile, as it could
 * a blob in a shared layout).  It extracts into a staging directory
 * beside the target.  Targets are swapped after every layer is in, with
 * renameat2(RENAME_EXCHANGE), so there is never a moment without a whole
 * directory at the target; if one swap fails, the ones done are swapped
 * back; then the old trees are removed.  Staging directories left by a
 * killed restore (".ctxpack-new-PID-N") are removed by the next restore
 * into the same directory once PID is gone.
 */
#include "ctxpack/cache.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctxpack/pack.h"
#include "ctxpack/unpack.h"
#include "ctxpack/walk.h"

#include "cache_int.h"
#include "cache_reuse.h"

#define STAGE_PREFIX ".ctxpack-new-"
#define OLD_PREFIX ".ctxpack-old-"

struct cache {
	struct reg_store *s;
	char *tmp_dir;
	cache_warn_fn warn;
	void *warn_arg;
	uint64_t max_size;
	int safe_links;
	uint64_t deadline_ms;  /* CLOCK_MONOTONIC; 0: none */
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void cache_opts_init(struct cache_opts *o)
{
	memset(o, 0, sizeof(*o));
	reg_opts_init(&o->reg);
}

void cache_warnf(struct cache *c, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	if (!c->warn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->warn(c->warn_arg, msg);
}

int cache_open(struct cache **out, const struct cache_opts *o, struct err *e)
{
	struct cache *c = xcalloc(1, sizeof(*c));
	int ret;

	*out = NULL;
	ret = reg_store_open(&c->s, o->store, &o->reg, e);
	if (ret) {
		free(c);
		return ret;
	}
	if (o->tmp_dir) {
		c->tmp_dir = xstrdup(o->tmp_dir);
	} else {
		char *home = cache_home();

		c->tmp_dir = xasprintf("%s/tmp", home);
		free(home);
	}
	c->warn = o->warn;
	c->warn_arg = o->warn_arg;
	c->max_size = o->max_size ? o->max_size : CACHE_MAX_SIZE;
	c->safe_links = o->safe_links;
	*out = c;
	return 0;
}

void cache_set_timeout(struct cache *c, uint64_t ms)
{
	c->deadline_ms = ms ? mono_ms() + ms : 0;
	reg_store_set_deadline(c->s, c->deadline_ms);
}

void cache_free(struct cache *c)
{
	if (!c)
		return;
	reg_store_free(c->s);
	free(c->tmp_dir);
	free(c);
}

struct reg_store *cache_store(struct cache *c)
{
	return c->s;
}

const char *cache_store_name(const struct cache *c)
{
	return reg_store_name(c->s);
}

void cache_match_release(struct cache_match *m)
{
	cache_entry_release(&m->entry);
	m->result = CACHE_MISS;
}

/*
 * Where a path is: ~ expanded, made absolute, its existing part resolved
 * (symlinks included) and the rest cleaned of ".", ".." and "//".
 * malloc'd.
 */
static char *canon_path(const char *path)
{
	char *x = cache_expand_path(path), *r = path_resolve_future(x), *out, *o;
	const char *p;

	if (!r)
		r = xstrdup(x);
	free(x);
	out = xmalloc(strlen(r) + 2);
	o = out;
	for (p = r; *p;) {
		const char *s;
		size_t n;

		while (*p == '/')
			p++;
		s = p;
		while (*p && *p != '/')
			p++;
		n = (size_t)(p - s);
		if (!n || (n == 1 && s[0] == '.'))
			continue;
		if (n == 2 && s[0] == '.' && s[1] == '.') {
			while (o > out && o[-1] != '/')
				o--;
			if (o > out)
				o--;
			continue;
		}
		*o++ = '/';
		memcpy(o, s, n);
		o += n;
	}
	if (o == out)
		*o++ = '/';
	*o = '\0';
	free(r);
	return out;
}

/* 1 when directory a holds b (or is b). */
static int path_holds(const char *a, const char *b)
{
	size_t n = strlen(a);

	if (n == 1 && a[0] == '/')
		return 1;
	return !strncmp(a, b, n) && (b[n] == '/' || !b[n]);
}

static int check_paths(const char *const *paths, size_t n, struct err *e)
{
	char **canon;
	size_t i, j;
	int ret = 0;

	if (!n)
		return err_set(e, ERR_USAGE, "no path given");
	for (i = 0; i < n; i++) {
		if (cache_path_check(paths[i], e))
			return e->code;
		for (j = 0; j < i; j++)
			if (!strcmp(paths[i], paths[j]))
				return err_set(e, ERR_USAGE, "path '%s' is given twice", paths[i]);
	}
	/* one directory inside another would be archived twice, and a
	 * restore would swap the outer one over the inner one's swap */
	canon = xcalloc(n, sizeof(*canon));
	for (i = 0; i < n; i++)
		canon[i] = canon_path(paths[i]);
	for (i = 0; i < n && !ret; i++) {
		for (j = 0; j < n && !ret; j++) {
			if (i == j || !path_holds(canon[i], canon[j]))
				continue;
			if (!strcmp(canon[i], canon[j]))
				ret = err_set(e, ERR_USAGE, "paths '%s' and '%s' are the same directory",
					      paths[i], paths[j]);
			else
				ret = err_set(e, ERR_USAGE, "paths '%s' and '%s' nest (the second is "
					      "inside the first): cache them under separate keys or "
					      "as one path", paths[i], paths[j]);
		}
	}
	for (i = 0; i < n; i++)
		free(canon[i]);
	free(canon);
	return ret;
}

/* Read and parse the entry at tag. */
static int read_entry(struct cache *c, const char *tag, struct cache_entry *en,
		      struct err *e)
{
	struct buf b = BUF_INIT;
	char digest[REG_DIGEST_SIZE];
	int ret;

	memset(en, 0, sizeof(*en));
	ret = reg_manifest_get(c->s, tag, &b, NULL, digest, e);
	if (!ret)
		ret = cache_entry_parse(en, tag, digest, b.data, b.len, e);
	buf_release(&b);
	return ret;
}

/* read_entry for a tag from a listing: 1 when it is to be skipped (deleted
 * since the listing, or not one of ours: warned), else read_entry's result. */
static int read_listed(struct cache *c, const char *tag, struct cache_entry *en,
		       struct err *e)
{
	int ret = read_entry(c, tag, en, e);

	if (ret == ERR_NOTFOUND || ret == ERR_CORRUPT) {
		if (ret == ERR_CORRUPT)
			cache_warnf(c, "%s; skipped", e->msg);
		err_clear(e);
		return 1;
	}
	return ret;
}

/* ---- save ---- */

static int sink_fd(void *ctx, const void *p, size_t n, struct err *e)
{
	if (write_all(*(int *)ctx, p, n))
		return err_errno(e, "cannot write the archive");
	return 0;
}

static void kv_add(struct reg_kv **v, size_t *n, const char *k, char *val)
{
	*v = xreallocarray(*v, *n + 1, sizeof(**v));
	(*v)[*n].key = xstrdup(k);
	(*v)[*n].value = val;
	(*n)++;
}

static char *layer_title(const char *path)
{
	char *t = xasprintf("%s.tar.zst", path), *p;

	for (p = t; *p; p++)
		if (*p == '/')
			*p = '_';
	return t;
}

/* Pack one path into a temporary file, push it, describe the layer. */
static int save_path(struct cache *c, const char *path, struct reg_desc *l,
		     struct cache_save_result *r, struct err *e)
{
	char *dir = cache_expand_path(path), *tmp = NULL;
	struct walk_opts wo = {.ignore_file = "/dev/null"};
	struct walk_result w;
	struct pack_list pl;
	struct pack_opts po;
	struct pack_result pr;
	struct reg_blob_info bi;
	struct cache_reuse reuse;
	struct idx_memo memo;
	struct stat st;
	int fd = -1, ret, walked = 0, listed = 0;

	memset(&w, 0, sizeof(w));
	cache_reuse_init(&reuse);
	if (stat(dir, &st)) {
		ret = errno == ENOENT ? err_set(e, ERR_NOTFOUND, "path %s does not exist", path)
				      : err_errno(e, "cannot access %s", path);
		goto out;
	}
	if (!S_ISDIR(st.st_mode)) {
		ret = err_set(e, ERR_USAGE, "path %s is not a directory", path);
		goto out;
	}
	wo.dir = dir;
	cache_reuse_walk(&reuse, &wo);
	ret = walk_run(&wo, &w, e);
	walked = 1;
	if (ret)
		goto wrap;
	ret = pack_list_build(&pl, &w, e);
	if (ret)
		goto wrap;
	listed = 1;
	pack_opts_init(&po);
	ret = pack_source_date_epoch(getenv("SOURCE_DATE_EPOCH"), &po.mtime, e);
	if (ret)
		goto out;
	/* packed before and still in the store: nothing to pack or send */
	ret = cache_reuse_lookup(&reuse, c->s, &w, &pl, &po, &memo, e);
	if (ret < 0)
		goto wrap;
	if (ret == 1) {
		memcpy(pr.digest, memo.digest, sizeof(pr.digest));
		pr.bytes = memo.bytes;
		pr.tar_bytes = memo.tar_bytes;
		pr.entries = memo.entries;
		memset(&bi, 0, sizeof(bi));
		r->reused++;
		ret = 0;
		goto layer;
	}
	ret = mkdir_p(c->tmp_dir, 0700, e);
	if (ret)
		goto out;
	tmp = xasprintf("%s/save-XXXXXX", c->tmp_dir);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		ret = err_errno(e, "cannot create a temporary file in %s", c->tmp_dir);
		free(tmp);
		tmp = NULL;
		goto out;
	}
	ret = pack_write(&pl, &po, reuse.hooks.content ? &reuse.hooks : NULL, sink_fd, &fd,
			 &pr, e);
	if (ret)
		goto wrap;
	if (close(fd)) {
		fd = -1;
		ret = err_errno(e, "cannot write %s", tmp);
		goto out;
	}
	fd = -1;
	ret = reg_blob_push_file(c->s, tmp, pr.digest, NULL, &bi, e);
	if (ret)
		goto wrap;
	cache_reuse_done(&reuse, &w, &pl, &po, &pr);
layer:
	l->media_type = xstrdup(REG_MT_LAYER_ZSTD);
	memcpy(l->digest, pr.digest, REG_DIGEST_SIZE);
	l->size = pr.bytes;
	kv_add(&l->annotations, &l->nannotations, REG_ANNOT_TITLE, layer_title(path));
	kv_add(&l->annotations, &l->nannotations, CACHE_ANNOT_PATH, xstrdup(path));
	kv_add(&l->annotations, &l->nannotations, CACHE_ANNOT_TAR_SIZE,
	       xasprintf("%llu", (unsigned long long)pr.tar_bytes));
	kv_add(&l->annotations, &l->nannotations, CACHE_ANNOT_ENTRIES,
	       xasprintf("%llu", (unsigned long long)pr.entries));
	r->bytes += pr.bytes;
	r->tar_bytes += pr.tar_bytes;
	r->entries += pr.entries;
	r->sent += bi.sent;
	goto out;
wrap:
	err_wrap(e, "save %s", path);
out:
	if (fd >= 0)
		close(fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	if (listed)
		pack_list_release(&pl);
	if (walked)
		walk_release(&w);
	cache_reuse_release(&reuse);
	free(dir);
	return ret;
}

/*
 * Serialize saves of one tag to one store on this machine: an flock on
 * cache_home()/locks/<sha256 of store and tag>.  -1 when there is no lock
 * to be had (the put-if-absent still keeps a layout right).
 */
static int save_lock(struct cache *c, const char *tag)
{
	char *home = cache_home(), *dir = xasprintf("%s/locks", home), *id, *path;
	char dg[REG_DIGEST_SIZE];
	struct err e2 = ERR_INIT;
	int fd = -1;

	id = xasprintf("%s\n%s", reg_store_name(c->s), tag);
	sha256_digest_str(id, strlen(id), dg);
	path = xasprintf("%s/save-%.40s.lock", dir, dg + 7);
	if (!mkdir_p(dir, 0700, &e2)) {
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		while (fd >= 0 && flock(fd, LOCK_EX)) {
			if (errno != EINTR) {
				close(fd);
				fd = -1;
			}
		}
	}
	free(home);
	free(dir);
	free(id);
	free(path);
	return fd;
}

/* The entry at tag when it is key's: 1 (r filled), 0 when the tag holds
 * nothing usable (replace it), <0 for a collision or a store failure. */
static int existing_entry(struct cache *c, const char *key, struct cache_save_result *r,
			  struct err *e)
{
	struct cache_entry en;
	struct err e2 = ERR_INIT;
	int ret = read_entry(c, r->tag, &en, &e2);

	if (!ret && !strcmp(en.key, key)) {
		r->existed = 1;
		memcpy(r->digest, en.digest, REG_DIGEST_SIZE);
		r->layers = en.m.nlayers;
		r->bytes = en.size;
		cache_entry_release(&en);
		return 1;
	}
	if (!ret) {
		ret = err_set(e, ERR_CORRUPT, "tag %s holds key '%s', not '%s' (a hash "
			      "collision?); not overwritten", r->tag, en.key, key);
		cache_entry_release(&en);
		return ret;
	}
	if (e2.code != ERR_CORRUPT && e2.code != ERR_NOTFOUND) {
		*e = e2;
		return e->code;
	}
	if (e2.code == ERR_CORRUPT)
		cache_warnf(c, "tag %s: %s; replacing it", r->tag, e2.msg);
	return 0;
}

/* Read the manifest at tag, keeping its bytes (an update puts them under
 * another tag). */
static int read_entry_bytes(struct cache *c, const char *tag, struct cache_entry *en,
			    struct buf *b, struct err *e)
{
	char digest[REG_DIGEST_SIZE];
	int ret;

	memset(en, 0, sizeof(*en));
	ret = reg_manifest_get(c->s, tag, b, NULL, digest, e);
	if (!ret)
		ret = cache_entry_parse(en, tag, digest, b->data, b->len, e);
	return ret;
}

/* 1 when en has exactly these layers (paths and digests, in order). */
static int same_layers(const struct cache_entry *en, const struct reg_desc *layers, size_t n)
{
	size_t i;

	if (en->m.nlayers != n)
		return 0;
	for (i = 0; i < n; i++) {
		const struct reg_desc *a = &en->m.layers[i], *b = &layers[i];
		const char *pa = reg_annot_get(a->annotations, a->nannotations, CACHE_ANNOT_PATH);
		const char *pb = reg_annot_get(b->annotations, b->nannotations, CACHE_ANNOT_PATH);

		if (strcmp(a->digest, b->digest) || !pa || !pb || strcmp(pa, pb))
			return 0;
	}
	return 1;
}

/*
 * The update's puts: the old entry's manifest under its replaced tag
 * first (so that it is never without a tag), then the new one under the
 * key's tag; then a check that the key's tag holds ours, else ours is kept
 * under its own replaced tag (another update came after it).
 */
static int update_put(struct cache *c, const char *key, const char *version,
		      const struct cache_entry *old, const struct buf *old_bytes,
		      const struct buf *man, struct cache_save_result *r, struct err *e)
{
	char now[REG_DIGEST_SIZE], mine[CACHE_TAG_MAX + 1];
	struct err e2 = ERR_INIT;
	int ret;

	cache_tag_replaced(key, version, old->digest, r->old_tag);
	ret = reg_manifest_put(c->s, r->old_tag, old_bytes->data, old_bytes->len, NULL, e);
	if (ret)
		return err_wrap(e, "keep the replaced entry under %s", r->old_tag);
	ret = reg_manifest_put(c->s, r->tag, man->data, man->len, r->digest, e);
	if (ret)
		return ret;
	r->updated = 1;
	ret = reg_manifest_head(c->s, r->tag, now, NULL, &e2);
	if (ret == 1 && strcmp(now, r->digest)) {
		cache_tag_replaced(key, version, r->digest, mine);
		if (reg_manifest_put(c->s, mine, man->data, man->len, NULL, &e2))
			cache_warnf(c, "another update of %s came after this one, and keeping this "
			      "one under %s failed: %s", key, mine, e2.msg);
		else
			cache_warnf(c, "another update of %s came after this one; this entry is kept "
			      "under %s", key, mine);
	} else if (ret < 0) {
		cache_warnf(c, "cannot check the tag %s after the update: %s", r->tag, e2.msg);
	}
	return 0;
}

int cache_save(struct cache *c, const char *key, const char *const *paths, size_t n,
	       int force, struct cache_save_result *r, struct err *e)
{
	struct cache_save_opts o;

	memset(&o, 0, sizeof(o));
	o.force = force;
	return cache_save_opt(c, key, paths, n, &o, r, e);
}

int cache_save_opt(struct cache *c, const char *key, const char *const *paths, size_t n,
		   const struct cache_save_opts *o, struct cache_save_result *r,
		   struct err *e)
{
	static const struct cache_save_opts none;
	struct cache_save_result tmp;
	char version[CACHE_VERSION_LEN + 1], created[40];
	struct reg_desc *layers = NULL;
	struct reg_kv *an = NULL;
	struct buf man = BUF_INIT, paths_json = BUF_INIT, old_bytes = BUF_INIT;
	struct cache_entry old;
	struct timespec now;
	size_t i, nan = 0;
	int ret, lock = -1, replace, have_old = 0;

	if (!o)
		o = &none;
	if (!r)
		r = &tmp;
	memset(r, 0, sizeof(*r));
	memset(&old, 0, sizeof(old));
	if (o->force && o->update)
		return err_set(e, ERR_USAGE, "force and update do not go together (force drops "
			       "the old entry, update keeps it)");
	replace = o->force;
	if (cache_key_check(key, "key", e) || check_paths(paths, n, e))
		return e->code;
	cache_version(paths, n, version);
	cache_tag(key, version, r->tag);
	/* saves of this key queue here: the second finds the first's entry */
	lock = save_lock(c, r->tag);

	if (!o->force) {
		ret = reg_manifest_head(c->s, r->tag, NULL, NULL, e);
		if (ret < 0)
			goto out;
		if (ret == 1 && o->update) {
			struct err e2 = ERR_INIT;

			ret = read_entry_bytes(c, r->tag, &old, &old_bytes, &e2);
			if (!ret && strcmp(old.key, key)) {
				ret = err_set(e, ERR_CORRUPT, "tag %s holds key '%s', not '%s' (a hash "
					      "collision?); not overwritten", r->tag, old.key, key);
				goto out;
			}
			if (!ret) {
				have_old = 1;
			} else if (e2.code == ERR_CORRUPT) {
				cache_warnf(c, "tag %s: %s; replacing it", r->tag, e2.msg);
			} else if (e2.code != ERR_NOTFOUND) {
				*e = e2;
				goto out;
			}
			replace = 1;
			ret = 0;
		} else if (ret == 1) {
			ret = existing_entry(c, key, r, e);
			if (ret) {
				if (ret > 0)
					ret = 0;
				goto out;
			}
			replace = 1; /* a damaged entry of that tag */
		}
	}

	layers = xcalloc(n, sizeof(*layers));
	for (i = 0; i < n; i++) {
		ret = save_path(c, paths[i], &layers[i], r, e);
		if (ret)
			goto out;
	}
	r->layers = n;
	if (have_old && same_layers(&old, layers, n)) {
		/* the key's entry has these very bytes: nothing to store */
		r->existed = r->unchanged = 1;
		memcpy(r->digest, old.digest, REG_DIGEST_SIZE);
		ret = 0;
		goto out;
	}
	/* the empty config: usually there already (a HEAD, no upload) */
	ret = reg_blob_push_mem(c->s, "{}", 2, NULL, e);
	if (ret) {
		err_wrap(e, "push the empty config");
		goto out;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	cache_time_format((int64_t)now.tv_sec, now.tv_nsec, created);
	cache_json_list(&paths_json, paths, n);
	kv_add(&an, &nan, REG_ANNOT_CREATED, xstrdup(created));
	kv_add(&an, &nan, CACHE_ANNOT_KEY, xstrdup(key));
	kv_add(&an, &nan, CACHE_ANNOT_PATHS, buf_detach(&paths_json, NULL));
	kv_add(&an, &nan, CACHE_ANNOT_VERSION, xstrdup(version));
	kv_add(&an, &nan, CACHE_ANNOT_FORMAT, xasprintf("%d", CACHE_FORMAT));
	kv_add(&an, &nan, CACHE_ANNOT_PLATFORM, xstrdup(cache_platform()));
	for (i = 0; i < o->nannotations; i++)
		kv_add(&an, &nan, o->annotations[i].key, xstrdup(o->annotations[i].value));
	ret = cache_manifest_build(&man, layers, n, an, nan, e);
	if (ret)
		goto out;
	/* the commit point; unless replacing, only if no other save of the
	 * key got there first (then that one is the entry) */
	if (have_old) {
		ret = update_put(c, key, version, &old, &old_bytes, &man, r, e);
	} else if (replace) {
		ret = reg_manifest_put(c->s, r->tag, man.data, man.len, r->digest, e);
	} else {
		ret = reg_manifest_put_new(c->s, r->tag, man.data, man.len, r->digest, e);
		if (ret == 1 && o->update) {
			/* another save of the key came first: update that one */
			struct err e2 = ERR_INIT;

			ret = read_entry_bytes(c, r->tag, &old, &old_bytes, &e2);
			if (!ret && !strcmp(old.key, key))
				ret = update_put(c, key, version, &old, &old_bytes, &man, r, e);
			else if (!ret)
				ret = err_set(e, ERR_CORRUPT, "tag %s holds key '%s', not '%s' (a "
					      "hash collision?); not overwritten", r->tag, old.key,
					      key);
			else
				ret = reg_manifest_put(c->s, r->tag, man.data, man.len, r->digest,
						       e);
		} else if (ret == 1) {
			uint64_t sent = r->sent;

			ret = existing_entry(c, key, r, e);
			if (ret == 0)
				ret = reg_manifest_put(c->s, r->tag, man.data, man.len, r->digest, e);
			else if (ret == 1)
				ret = 0;
			r->sent = sent;
		}
	}
out:
	if (lock >= 0)
		close(lock);
	if (ret && !r->existed)
		err_wrap(e, "save %s to %s", key, reg_store_name(c->s));
	for (i = 0; layers && i < n; i++)
		reg_desc_release(&layers[i]);
	free(layers);
	for (i = 0; i < nan; i++) {
		free(an[i].key);
		free(an[i].value);
	}
	free(an);
	cache_entry_release(&old);
	buf_release(&man);
	buf_release(&paths_json);
	buf_release(&old_bytes);
	return ret;
}

/* ---- lookup ---- */

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
	if (cache_key_check(key, "key", e) || check_paths(paths, npaths, e))
		return e->code;
	for (i = 0; i < nprefixes; i++)
		if (*prefixes[i] && cache_key_check(prefixes[i], "restore key", e))
			return e->code;
	cache_version(paths, npaths, version);
	cache_tag(key, version, tag);

	ret = read_entry(c, tag, &m->entry, e);
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
		ret = read_listed(c, tags.v[i], &cand[ncand], e);
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

/* ---- restore ---- */

struct target {
	const char *path;        /* as given */
	const struct reg_desc *layer;
	char *parent;            /* directory holding the target */
	char *base;              /* the target's name in it */
	char stage[64];          /* the staging directory's name in parent */
	char old[64];            /* swap kind 3: where the old tree went */
	int pfd, sfd;
	int staged;              /* stage exists (the new tree, or after a
				    swap of kind 1 the old one) */
	int swapped;             /* 0 no; 1 exchanged; 2 renamed (there was no
				    old tree); 3 old tree moved aside first */
};

/* A layer annotation as a number; 0 when absent (checked at parse). */
static uint64_t annot_u64(const struct reg_desc *l, const char *key)
{
	const char *v = reg_annot_get(l->annotations, l->nannotations, key);
	uint64_t n = 0;

	if (v && parse_u64(v, &n))
		n = 0;
	return n;
}

/* A private file for a layer's bytes, gone when closed: O_TMPFILE in the
 * cache's tmp directory, else a temporary unlinked at once. */
static int spool_open(struct cache *c, struct err *e)
{
	char *tmp;
	int fd;

	if (mkdir_p(c->tmp_dir, 0700, e))
		return e->code;
	fd = open(c->tmp_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	tmp = xasprintf("%s/spool-XXXXXX", c->tmp_dir);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		err_errno(e, "cannot create a temporary file in %s", c->tmp_dir);
	else
		unlink(tmp);
	free(tmp);
	return fd < 0 ? e->code : fd;
}

/*
 * One layer into t->sfd: downloaded into the spool and verified (size and
 * sha256) first, then extracted from the spool within the bounds.
 */
static int fetch_layer(struct cache *c, struct target *t, struct cache_restore_result *r,
		       struct err *e)
{
	const struct reg_desc *l = t->layer;
	struct unpack_opts o;
	struct unpack_stats st;
	struct reg_stats before, after;
	uint64_t tar_size = annot_u64(l, CACHE_ANNOT_TAR_SIZE);
	uint64_t entries = annot_u64(l, CACHE_ANNOT_ENTRIES);
	int fd, ret;

	if (strcmp(l->media_type, REG_MT_LAYER_ZSTD) && strcmp(l->media_type, REG_MT_LAYER_GZIP) &&
	    strcmp(l->media_type, REG_MT_LAYER_TAR))
		return err_set(e, ERR_CORRUPT, "layer for %s has media type %s, not a tar layer",
			       t->path, l->media_type);
	if (l->size > c->max_size || l->size > INT64_MAX)
		return err_set(e, ERR_CORRUPT, "layer for %s is %llu bytes, more than --max-size "
			       "(%llu)", t->path, (unsigned long long)l->size,
			       (unsigned long long)c->max_size);
	if (tar_size > c->max_size)
		return err_set(e, ERR_CORRUPT, "layer for %s unpacks to %llu bytes, more than "
			       "--max-size (%llu)", t->path, (unsigned long long)tar_size,
			       (unsigned long long)c->max_size);
	fd = spool_open(c, e);
	if (fd < 0)
		return err_wrap(e, "restore %s", t->path);
	reg_store_stats(c->s, &before);
	ret = reg_blob_fetch_fd(c->s, l->digest, (int64_t)l->size, fd, e);
	reg_store_stats(c->s, &after);
	if (ret) {
		close(fd);
		return err_wrap(e, "restore %s", t->path);
	}
	r->bytes += after.blob_bytes_received - before.blob_bytes_received;
	if (lseek(fd, 0, SEEK_SET) < 0) {
		ret = err_errno(e, "cannot read back the layer for %s", t->path);
		close(fd);
		return ret;
	}
	memset(&o, 0, sizeof(o));
	{
		/* writer threads: a tuning knob, UNPACK_THREADS by default */
		const char *v = getenv("CTXPACK_RESTORE_THREADS");
		uint64_t k;

		if (v && !parse_u64(v, &k) && k >= 1 && k <= UNPACK_MAX_THREADS)
			o.threads = (unsigned)k;
	}
	/* what save recorded bounds the extraction; --max-size when the
	 * entry does not say (older entries) */
	o.max_stream = tar_size ? tar_size : c->max_size;
	o.max_bytes = o.max_stream;
	o.max_entries = entries ? entries : CACHE_MAX_ENTRIES;
	o.safe_links = c->safe_links;
	o.deadline_ms = c->deadline_ms;
	ret = unpack_fd(fd, t->sfd, &o, &st, e);
	close(fd);
	if (ret)
		return err_wrap(e, "restore %s", t->path);
	if (!st.root_mode) {
		/* no "./" entry: the directory gets what mkdir would give it */
		mode_t um = umask(022);

		umask(um);
		if (fchmod(t->sfd, 0777 & ~um))
			return err_errno(e, "cannot chmod %s/%s", t->parent, t->stage);
	}
	r->entries += st.entries;
	return 0;
}

/* Remove the staging and old trees of restores that were killed. */
static void clean_stale(struct cache *c, const char *parent)
{
	static const char *const prefixes[] = {STAGE_PREFIX, OLD_PREFIX};
	size_t i;

	for (i = 0; i < 2; i++) {
		struct err e2 = ERR_INIT;

		if (unpack_remove_stale(parent, prefixes[i], &e2) < 0)
			cache_warnf(c, "cannot remove a stale restore directory: %s", e2.msg);
	}
}

/* 1 when base in pfd is a mount point (the root of a mount). */
static int is_mount_point(int pfd, const char *base)
{
	struct statx sx, px;

	if (statx(pfd, base, AT_SYMLINK_NOFOLLOW, STATX_TYPE, &sx) || !S_ISDIR(sx.stx_mode))
		return 0;
#ifdef STATX_ATTR_MOUNT_ROOT
	if (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)
		return !!(sx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
#endif
	/* an older kernel: another device than its parent's */
	if (statx(pfd, "", AT_EMPTY_PATH, STATX_TYPE, &px))
		return 0;
	return sx.stx_dev_major != px.stx_dev_major || sx.stx_dev_minor != px.stx_dev_minor;
}

static int prepare_target(struct cache *c, struct target *t, size_t idx, struct err *e)
{
	char *full = cache_expand_path(t->path), *slash, *real;
	size_t n = strlen(full);
	struct stat st;
	struct timespec now;
	int ret = 0;

	while (n > 1 && full[n - 1] == '/')
		full[--n] = '\0';
	/* a symlink to a directory (~/.npm -> /big/disk/npm): restore where
	 * it points, keeping the link */
	if (!lstat(full, &st) && S_ISLNK(st.st_mode) && !stat(full, &st) &&
	    S_ISDIR(st.st_mode) && (real = realpath(full, NULL))) {
		free(full);
		full = real;
	}
	slash = strrchr(full, '/');
	if (!slash) {
		t->parent = xstrdup(".");
		t->base = xstrdup(full);
	} else {
		t->parent = slash == full ? xstrdup("/") : xstrndup(full, (size_t)(slash - full));
		t->base = xstrdup(slash + 1);
	}
	free(full);
	if (!*t->base || !strcmp(t->base, ".") || !strcmp(t->base, ".."))
		return err_set(e, ERR_USAGE, "cannot restore into %s", t->path);
	ret = mkdir_p(t->parent, 0755, e);
	if (ret)
		return ret;
	clean_stale(c, t->parent);
	t->pfd = open(t->parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (t->pfd < 0)
		return err_errno(e, "cannot open %s", t->parent);
	/* a mount point cannot be renamed over: say so before anything is
	 * downloaded */
	if (is_mount_point(t->pfd, t->base))
		return err_set(e, ERR_USAGE, "cannot restore %s: it is a mount point, and a "
			       "restore swaps the whole directory in by a rename; mount the "
			       "volume one level up, or cache a directory inside it", t->path);
	clock_gettime(CLOCK_MONOTONIC, &now);
	snprintf(t->stage, sizeof(t->stage), STAGE_PREFIX "%ld-%zu-%lx", (long)getpid(), idx,
		 (unsigned long)(now.tv_nsec ^ now.tv_sec));
	/* private while it fills; its own mode comes last */
	if (mkdirat(t->pfd, t->stage, 0700))
		return err_errno(e, "cannot create %s/%s", t->parent, t->stage);
	t->staged = 1;
	t->sfd = openat(t->pfd, t->stage, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (t->sfd < 0)
		return err_errno(e, "cannot open %s/%s", t->parent, t->stage);
	return 0;
}

static void remove_at_parent(struct cache *c, struct target *t, const char *name)
{
	struct err e2 = ERR_INIT;
	char *full = xasprintf("%s/%s", t->parent, name);

	if (remove_tree_at(t->pfd, name, full, &e2))
		cache_warnf(c, "%s", e2.msg);
	free(full);
}

static void remove_stage(struct cache *c, struct target *t)
{
	if (!t->staged)
		return;
	remove_at_parent(c, t, t->stage);
	t->staged = 0;
}

/* Put the staging directory in the target's place, keeping the old tree
 * (under the stage's name, or t->old) until swap_done or swap_undo. */
static int swap_in(struct target *t, struct err *e)
{
	int tries;

	for (tries = 0; tries < 3; tries++) {
		if (!renameat2(t->pfd, t->stage, t->pfd, t->base, RENAME_EXCHANGE)) {
			t->swapped = 1; /* the stage name now holds the old tree */
			return 0;
		}
		if (errno == ENOENT) {
			/* no old tree: a plain rename (which fails if one appears) */
			if (!renameat2(t->pfd, t->stage, t->pfd, t->base, RENAME_NOREPLACE)) {
				t->staged = 0;
				t->swapped = 2;
				return 0;
			}
			if (errno == EEXIST)
				continue;
			if (errno != EINVAL && errno != ENOSYS)
				break;
			if (!renameat(t->pfd, t->stage, t->pfd, t->base)) {
				t->staged = 0;
				t->swapped = 2;
				return 0;
			}
			break;
		}
		if (errno == EINVAL || errno == ENOSYS) {
			/* no RENAME_EXCHANGE here: move the old tree aside first */
			snprintf(t->old, sizeof(t->old), OLD_PREFIX "%ld-%s", (long)getpid(),
				 t->stage + strlen(STAGE_PREFIX));
			if (renameat(t->pfd, t->base, t->pfd, t->old))
				break;
			if (renameat(t->pfd, t->stage, t->pfd, t->base)) {
				int saved = errno;

				renameat(t->pfd, t->old, t->pfd, t->base);
				errno = saved;
				break;
			}
			t->staged = 0;
			t->swapped = 3;
			return 0;
		}
		break;
	}
	if (errno == EBUSY)
		return err_errno(e, "cannot move the restored tree into %s/%s (a mount point, "
				 "or in use)", t->parent, t->base);
	return err_errno(e, "cannot move the restored tree into %s/%s", t->parent, t->base);
}

/* Take a swap back: the old tree returns to the target. */
static int swap_undo(struct target *t)
{
	int ok = 0;

	switch (t->swapped) {
	case 1:
		ok = !renameat2(t->pfd, t->stage, t->pfd, t->base, RENAME_EXCHANGE);
		break;
	case 2:
		ok = !renameat2(t->pfd, t->base, t->pfd, t->stage, RENAME_NOREPLACE);
		if (ok)
			t->staged = 1;
		break;
	case 3:
		ok = !renameat2(t->pfd, t->base, t->pfd, t->stage, RENAME_NOREPLACE) &&
		     !renameat(t->pfd, t->old, t->pfd, t->base);
		if (ok)
			t->staged = 1;
		break;
	}
	t->swapped = 0;
	return ok ? 0 : -1;
}

/* The swap stands: remove the old tree. */
static void swap_done(struct cache *c, struct target *t)
{
	if (t->swapped == 1)
		remove_stage(c, t);
	else if (t->swapped == 3)
		remove_at_parent(c, t, t->old);
}

int cache_restore(struct cache *c, const struct cache_entry *en,
		  const char *const *paths, size_t npaths,
		  struct cache_restore_result *r, struct err *e)
{
	struct cache_restore_result tmp;
	struct target *t;
	size_t i, k;
	int ret = 0;

	if (!r)
		r = &tmp;
	memset(r, 0, sizeof(*r));
	if (check_paths(paths, npaths, e))
		return e->code;
	t = xcalloc(npaths, sizeof(*t));
	for (i = 0; i < npaths; i++) {
		t[i].path = paths[i];
		t[i].pfd = t[i].sfd = -1;
		for (k = 0; k < en->m.nlayers && !t[i].layer; k++) {
			const struct reg_desc *l = &en->m.layers[k];
			const char *p = reg_annot_get(l->annotations, l->nannotations,
						      CACHE_ANNOT_PATH);

			if (p && !strcmp(p, paths[i]))
				t[i].layer = l;
		}
		if (!t[i].layer) {
			ret = err_set(e, ERR_CORRUPT, "entry %s has no layer for path %s", en->key,
				      paths[i]);
			goto out;
		}
	}
	for (i = 0; i < npaths && !ret; i++)
		ret = prepare_target(c, &t[i], i, e);
	for (i = 0; i < npaths && !ret; i++) {
		ret = fetch_layer(c, &t[i], r, e);
		if (!ret)
			r->layers++;
	}
	/* every layer verified and extracted: swap them all in, or none */
	for (i = 0; i < npaths && !ret; i++)
		ret = swap_in(&t[i], e);
	if (ret) {
		for (k = 0; k < npaths; k++) {
			if (t[k].swapped && swap_undo(&t[k]))
				cache_warnf(c, "cannot put the old %s back after a failed restore: %s",
				      t[k].path, strerror(errno));
		}
	} else {
		for (i = 0; i < npaths; i++)
			swap_done(c, &t[i]);
	}
out:
	for (i = 0; i < npaths; i++) {
		if (t[i].sfd >= 0)
			close(t[i].sfd);
		if (t[i].pfd >= 0)
			remove_stage(c, &t[i]);
		if (t[i].pfd >= 0)
			close(t[i].pfd);
		free(t[i].parent);
		free(t[i].base);
	}
	free(t);
	return ret;
}

/* ---- list, delete, gc ---- */

static int newest_first(const void *a, const void *b)
{
	const struct cache_entry *x = a, *y = b;

	if (cache_entry_newer(x, y))
		return -1;
	if (cache_entry_newer(y, x))
		return 1;
	return 0;
}

int cache_list(struct cache *c, struct cache_entry **out, size_t *nout, struct err *e)
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
		if (!cache_tag_is_cache(tags.v[i]))
			continue;
		ret = read_listed(c, tags.v[i], &v[n], e);
		if (ret == 1) {
			ret = 0;
			continue;
		}
		if (ret) {
			err_wrap(e, "read %s", tags.v[i]);
			break;
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

int cache_list_prefix(struct cache *c, const char *prefix, const char *version,
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
		if (!cache_tag_may_match(tags.v[i], prefix, version))
			continue;
		ret = read_listed(c, tags.v[i], &v[n], e);
		if (ret == 1) {
			ret = 0;
			continue;
		}
		if (ret) {
			err_wrap(e, "read %s", tags.v[i]);
			break;
		}
		if (strncmp(v[n].key, prefix, strlen(prefix)) ||
		    (version && (!v[n].version || strcmp(v[n].version, version)))) {
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
