/*
 * cache_save: store paths as a cache entry (cache_save, cache_save_opt).
 *
 * Each path is walked with no ignore patterns and packed by pack_write
 * into a temporary file (bounded memory; the sha256 comes out of the
 * pack), pushed as a blob (skipped when the store has it: the same
 * content gives the same bytes), then the empty config, then the manifest
 * by tag: the commit point.  A path whose archive was made before and is
 * in the store is not packed at all (save_path).  Saves of one tag on
 * one machine queue on a lock; across machines the manifest's
 * put-if-absent decides which save is the entry.
 */
#include "ctxpack/cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctxpack/pack.h"
#include "ctxpack/session.h"
#include "ctxpack/walk.h"

#include "cache_internal.h"

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

/*
 * Pack one path into a temporary file, push it, describe the layer.  The
 * path is packed on a pack session without the frame store (session.h:
 * no_frames): its hashes come from the index's snapshot or the index, and
 * an archive made before whose blob the store still has is neither packed
 * nor sent.
 */
static int save_path(struct cache *c, const char *path, struct reg_desc *l,
		     struct cache_save_result *r, struct err *e)
{
	char *dir = cache_expand_path(path), *tmp = NULL;
	struct walk_opts wo = {.ignore_file = "/dev/null"};
	struct pack_session_opts so;
	struct pack_session *ps = NULL;
	struct pack_opts po;
	struct pack_result pr;
	struct reg_blob_info bi;
	struct idx_memo memo;
	struct stat st;
	uint64_t size = 0;
	int fd = -1, ret;

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
	pack_opts_init(&po);
	ret = pack_source_date_epoch(env_get()->source_date_epoch, &po.mtime, e);
	if (ret)
		goto out;
	memset(&so, 0, sizeof(so));
	so.wo = &wo;
	so.po = &po;
	so.no_frames = 1;
	so.out_fd = -1;
	ret = pack_session_open(&ps, &so, e);
	if (!ret)
		ret = pack_session_list(ps, e);
	if (ret)
		goto wrap;
	/* packed before and still in the store: nothing to pack or send */
	if (pack_session_known(ps, &memo)) {
		struct err e2 = ERR_INIT;

		if (reg_blob_exists(c->s, memo.digest, &size, &e2) == 1 && size == memo.bytes) {
			memcpy(pr.digest, memo.digest, sizeof(pr.digest));
			pr.bytes = memo.bytes;
			pr.tar_bytes = memo.tar_bytes;
			pr.entries = memo.entries;
			memset(&bi, 0, sizeof(bi));
			r->reused++;
			goto layer;
		}
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
	ret = pack_session_write(ps, sink_fd, &fd, &pr, e);
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
	/* the hashes the packer took, the snapshot, the archive's digest */
	pack_session_commit(ps);
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
	ret = 0;
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
	pack_session_free(ps);
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
	int ret = cache_read_entry(c, r->tag, &en, NULL, &e2);

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
	if (cache_key_check(key, "key", e) || cache_check_paths(paths, n, e))
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

			ret = cache_read_entry(c, r->tag, &old, &old_bytes, &e2);
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

			ret = cache_read_entry(c, r->tag, &old, &old_bytes, &e2);
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
