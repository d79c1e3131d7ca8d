/*
 * cache_restore: put an entry's layers into their paths (cache_restore).
 *
 * Each layer is downloaded into a private temporary file (no name:
 * O_TMPFILE) while its sha256 and size are checked; only a verified file
 * is handed to the extractor, which never sees a byte the digest did not
 * cover (and which no other process can change meanwhile, as it could a
 * blob in a shared layout).  It extracts into a staging directory beside
 * the target.  Targets are swapped after every layer is in, with
 * renameat2(RENAME_EXCHANGE), so there is never a moment without a whole
 * directory at the target; if one swap fails, the ones done are swapped
 * back; then the old trees are removed.  Staging directories left by a
 * killed restore (".ctxpack-new-PID-N") are removed by the next restore
 * into the same directory once PID is gone.
 */
#include "ctxpack/cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctxpack/unpack.h"

#include "cache_internal.h"

#define STAGE_PREFIX ".ctxpack-new-"
#define OLD_PREFIX ".ctxpack-old-"

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
		const char *v = env_get()->restore_threads;
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
	if (cache_check_paths(paths, npaths, e))
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
