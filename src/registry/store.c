/*
 * reg_store: opening a store from a string, dispatching each operation to
 * the layout or the registry, and the artifact helpers (push a file as a
 * single-layer artifact, get one back).
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "reg_impl.h"

#define DEFAULT_CHUNK (8u << 20)
#define GHCR_CHUNK (4u << 20)
#define DEFAULT_MONO_MAX (512u << 20)
#define HASH_THREAD_MIN (16u << 20)
#define DEFAULT_OVERLAP_MIN (64u << 20)

void reg_opts_init(struct reg_opts *o)
{
	memset(o, 0, sizeof(*o));
}

void reg_store_set_deadline(struct reg_store *s, uint64_t deadline_ms)
{
	s->deadline_ms = deadline_ms;
}

int reg_store_open(struct reg_store **out, const char *spec,
		   const struct reg_opts *o, struct err *e)
{
	struct reg_store *s;
	char *dflt = NULL;
	int ret;

	*out = NULL;
	if (!spec)
		spec = dflt = reg_default_store();
	s = xcalloc(1, sizeof(*s));
	if (o)
		s->o = *o;
	ret = reg_ref_parse(&s->ref, spec, e);
	free(dflt);
	if (ret) {
		free(s);
		return ret;
	}
	if (s->o.ca_file) {
		s->ca_file = xstrdup(s->o.ca_file);
		s->o.ca_file = s->ca_file;
		if (access(s->ca_file, R_OK)) {
			ret = err_errno(e, "cannot read CA file %s", s->ca_file);
			reg_store_free(s);
			return ret;
		}
	}
	if (!s->o.idle_timeout)
		s->o.idle_timeout = reg_uint_or(env_get()->idle_timeout, 60);
	if (!s->o.connect_timeout)
		s->o.connect_timeout = 30;
	if (!s->o.max_tries)
		s->o.max_tries = 6;
	if (!s->o.chunk_size)
		s->o.chunk_size = reg_size_or(env_get()->chunk_size,
					       s->ref.kind == REG_REMOTE &&
					       !strcmp(s->ref.host, "ghcr.io") ? GHCR_CHUNK :
					       DEFAULT_CHUNK);
	if (!s->o.mono_max)
		s->o.mono_max = reg_size_or(env_get()->monolithic_max, DEFAULT_MONO_MAX);
	if (!s->o.overlap_min)
		s->o.overlap_min = reg_size_or(env_get()->overlap_min, DEFAULT_OVERLAP_MIN);
	if (s->ref.kind == REG_LAYOUT) {
		s->dir = xstrdup(s->ref.path);
		s->name = xasprintf("oci:%s", s->ref.path);
	} else {
		ret = reg_curl_load(e);
		if (ret) {
			reg_store_free(s);
			return ret;
		}
		curl_global_init(CURL_GLOBAL_DEFAULT);
		s->rm = remote_new(s);
		s->name = xasprintf("%s/%s", s->ref.host, s->ref.repo);
	}
	*out = s;
	return 0;
}

void reg_store_free(struct reg_store *s)
{
	if (!s)
		return;
	if (s->rm) {
		remote_free(s->rm);
		curl_global_cleanup();
	}
	reg_ref_release(&s->ref);
	free(s->name);
	free(s->ca_file);
	free(s->dir);
	free(s);
}

const struct reg_ref *reg_store_ref(const struct reg_store *s)
{
	return &s->ref;
}

const char *reg_store_name(const struct reg_store *s)
{
	return s->name;
}

void reg_store_stats(const struct reg_store *s, struct reg_stats *st)
{
	*st = s->st;
}

/*
 * A file of unknown digest going to a registry, big enough for it to
 * matter: hash it in a thread, so that the network work (the empty config,
 * the upload session, the first bytes) goes on meanwhile.  NULL otherwise.
 */
static struct reg_hash *hash_ahead(struct reg_store *s, const char *path,
				   const struct stat *st, const char *digest)
{
	char dg[REG_DIGEST_SIZE];

	if (digest || !s->rm || !S_ISREG(st->st_mode) ||
	    (uint64_t)st->st_size < HASH_THREAD_MIN || reg_digest_cache_get(st, dg))
		return NULL;
	return reg_hash_start(path, st);
}

static int check_digest(const char *d, struct err *e)
{
	if (!d || !reg_digest_valid(d))
		return err_set(e, ERR_USAGE, "invalid digest '%s' (want sha256:<64 hex>)",
			       d ? d : "");
	return 0;
}

int reg_blob_exists(struct reg_store *s, const char *digest, uint64_t *size,
		    struct err *e)
{
	if (check_digest(digest, e))
		return e->code;
	return s->rm ? remote_blob_exists(s, digest, size, e)
		     : layout_blob_exists(s, digest, size, e);
}

/* reg_blob_push_file for a file already stat'ed, maybe with its hash
 * running (digest NULL then). */
static int push_file(struct reg_store *s, const char *path, const struct stat *st,
		     const char *digest, struct reg_hash *h, const char *mount_from,
		     struct reg_blob_info *info, struct err *e)
{
	int ret;

	memset(info, 0, sizeof(*info));
	if (!S_ISREG(st->st_mode))
		return err_set(e, ERR_USAGE, "%s is not a regular file", path);
	info->size = (uint64_t)st->st_size;
	if (digest) {
		if (check_digest(digest, e))
			return e->code;
		memcpy(info->digest, digest, REG_DIGEST_SIZE);
	} else if (h) {
		/* remote_blob_push_file waits for it when it needs it */
	} else if (reg_digest_cache_get(st, info->digest)) {
		reg_log(s, "%s: digest %s from the digest cache", path, info->digest);
	} else {
		ret = reg_hash_file(path, st, info->digest, &info->size, e);
		if (ret)
			return ret;
	}
	if (mount_from && !reg_repo_valid(mount_from))
		return err_set(e, ERR_USAGE, "invalid repository to mount from: '%s'",
			       mount_from);
	if (s->rm)
		ret = remote_blob_push_file(s, path, h ? NULL : info->digest, h, info->size,
					    mount_from, info, e);
	else
		ret = layout_blob_push_file(s, path, info->digest, info, e);
	if (ret)
		err_wrap(e, "%s", path);
	return ret;
}

int reg_blob_push_file(struct reg_store *s, const char *path, const char *digest,
		       const char *mount_from, struct reg_blob_info *info,
		       struct err *e)
{
	struct reg_blob_info tmp;
	struct reg_hash *h;
	struct stat st;
	int ret;

	if (!info)
		info = &tmp;
	memset(info, 0, sizeof(*info));
	if (stat(path, &st))
		return err_errno(e, "cannot stat %s", path);
	h = hash_ahead(s, path, &st, digest);
	ret = push_file(s, path, &st, digest, h, mount_from, info, e);
	reg_hash_free(h);
	return ret;
}

int reg_blob_push_mem(struct reg_store *s, const void *p, size_t n,
		      char digest_out[REG_DIGEST_SIZE], struct err *e)
{
	char dg[REG_DIGEST_SIZE];
	int ret;

	sha256_digest_str(p, n, dg);
	ret = s->rm ? remote_blob_push_mem(s, p, n, dg, e)
		    : layout_blob_push_mem(s, p, n, dg, e);
	if (!ret && digest_out)
		memcpy(digest_out, dg, REG_DIGEST_SIZE);
	return ret;
}

int reg_blob_fetch_fd(struct reg_store *s, const char *digest, int64_t size,
		      int fd, struct err *e)
{
	if (check_digest(digest, e))
		return e->code;
	return s->rm ? remote_blob_fetch_fd(s, digest, size, fd, e)
		     : layout_blob_fetch_fd(s, digest, size, fd, e);
}

int reg_blob_mount(struct reg_store *s, const char *digest, const char *from,
		   struct err *e)
{
	if (check_digest(digest, e))
		return e->code;
	if (!from || !reg_repo_valid(from))
		return err_set(e, ERR_USAGE, "invalid repository to mount from: '%s'",
			       from ? from : "");
	if (!s->rm || !strcmp(from, s->ref.repo))
		return 0;
	return remote_blob_mount(s, digest, from, e);
}

int reg_blob_fetch_mem(struct reg_store *s, const char *digest, uint64_t size,
		       size_t max, struct buf *out, struct err *e)
{
	int fd, ret;
	ssize_t n;

	buf_reset(out);
	if (check_digest(digest, e))
		return e->code;
	if (size > max)
		return err_set(e, ERR_CORRUPT, "blob %s: %llu bytes, more than the %zu "
			       "accepted", digest, (unsigned long long)size, max);
	fd = memfd_create("ctxpack-blob", MFD_CLOEXEC);
	if (fd < 0)
		return err_errno(e, "cannot create a memory file");
	ret = reg_blob_fetch_fd(s, digest, (int64_t)size, fd, e);
	if (ret)
		goto out;
	if (buf_grow(out, (size_t)size)) {
		ret = err_set(e, ERR_NOMEM, "out of memory for blob %s", digest);
		goto out;
	}
	n = pread(fd, out->data, (size_t)size, 0);
	if (n != (ssize_t)size) {
		ret = n < 0 ? err_errno(e, "cannot read blob %s back", digest)
			    : err_set(e, ERR_FAIL, "cannot read blob %s back", digest);
		goto out;
	}
	buf_setlen(out, (size_t)size);
out:
	close(fd);
	return ret;
}

int reg_blob_fetch_file(struct reg_store *s, const char *digest, int64_t size,
			const char *path, int noreplace, struct err *e)
{
	struct atomic_file af;
	struct stat st;
	int ret;

	if (check_digest(digest, e))
		return e->code;
	if (noreplace && !lstat(path, &st))
		return err_set(e, ERR_USAGE, "%s exists; not overwritten", path);
	ret = atomic_open(&af, path, 0644, e);
	if (ret)
		return ret;
	ret = reg_blob_fetch_fd(s, digest, size, af.fd, e);
	if (ret) {
		atomic_abort(&af);
		return ret;
	}
	if (!noreplace)
		return atomic_commit(&af, e);
	/* atomic_commit renames over: here the rename must not */
	if (fsync(af.fd) || close(af.fd)) {
		af.fd = -1;
		ret = err_errno(e, "cannot write %s", af.tmp);
		atomic_abort(&af);
		return ret;
	}
	af.fd = -1;
	if (renameat2(AT_FDCWD, af.tmp, AT_FDCWD, path, RENAME_NOREPLACE)) {
		ret = errno == EEXIST ? err_set(e, ERR_USAGE, "%s exists; not overwritten", path)
				      : err_errno(e, "cannot rename %s to %s", af.tmp, path);
		atomic_abort(&af);
		return ret;
	}
	free(af.tmp);
	free(af.path);
	af.tmp = af.path = NULL;
	return 0;
}

int reg_manifest_put(struct reg_store *s, const char *tag, const void *p,
		     size_t n, char digest_out[REG_DIGEST_SIZE], struct err *e)
{
	char dg[REG_DIGEST_SIZE], *mt = NULL, *at = NULL;
	int ret;

	if (tag && !reg_tag_valid(tag))
		return err_set(e, ERR_USAGE, "invalid tag '%s'", tag);
	if (n > REG_MANIFEST_MAX)
		return err_set(e, ERR_USAGE, "manifest larger than %u bytes", REG_MANIFEST_MAX);
	ret = reg_manifest_peek(p, n, &mt, &at, e);
	if (ret)
		return ret;
	if (!mt) {
		ret = err_set(e, ERR_USAGE, "manifest has no mediaType");
		goto out;
	}
	sha256_digest_str(p, n, dg);
	ret = s->rm ? remote_manifest_put(s, tag, p, n, mt, dg, e)
		    : layout_manifest_put(s, tag, p, n, mt, dg, at, e);
	if (!ret && digest_out)
		memcpy(digest_out, dg, REG_DIGEST_SIZE);
out:
	free(mt);
	free(at);
	return ret;
}

int reg_manifest_put_new(struct reg_store *s, const char *tag, const void *p,
			 size_t n, char digest_out[REG_DIGEST_SIZE], struct err *e)
{
	char dg[REG_DIGEST_SIZE], *mt = NULL, *at = NULL;
	int ret;

	if (!tag || !reg_tag_valid(tag))
		return err_set(e, ERR_USAGE, "invalid tag '%s'", tag ? tag : "");
	if (n > REG_MANIFEST_MAX)
		return err_set(e, ERR_USAGE, "manifest larger than %u bytes", REG_MANIFEST_MAX);
	ret = reg_manifest_peek(p, n, &mt, &at, e);
	if (ret)
		return ret;
	if (!mt) {
		ret = err_set(e, ERR_USAGE, "manifest has no mediaType");
		goto out;
	}
	sha256_digest_str(p, n, dg);
	if (s->rm) {
		ret = remote_manifest_head(s, tag, NULL, NULL, e);
		if (ret == 0)
			ret = remote_manifest_put(s, tag, p, n, mt, dg, e);
	} else {
		ret = layout_manifest_put_new(s, tag, p, n, mt, dg, at, e);
	}
	if (!ret && digest_out)
		memcpy(digest_out, dg, REG_DIGEST_SIZE);
out:
	free(mt);
	free(at);
	return ret;
}

static int check_ref(const char *ref, struct err *e)
{
	if (!ref || (!reg_digest_valid(ref) && !reg_tag_valid(ref)))
		return err_set(e, ERR_USAGE, "invalid tag or digest '%s'", ref ? ref : "");
	return 0;
}

int reg_manifest_get(struct reg_store *s, const char *ref, struct buf *out,
		     char **media_type, char digest_out[REG_DIGEST_SIZE],
		     struct err *e)
{
	if (media_type)
		*media_type = NULL;
	if (check_ref(ref, e))
		return e->code;
	return s->rm ? remote_manifest_get(s, ref, out, media_type, digest_out, e)
		     : layout_manifest_get(s, ref, out, media_type, digest_out, e);
}

int reg_manifest_head(struct reg_store *s, const char *ref,
		      char digest_out[REG_DIGEST_SIZE], uint64_t *size,
		      struct err *e)
{
	if (check_ref(ref, e))
		return e->code;
	return s->rm ? remote_manifest_head(s, ref, digest_out, size, e)
		     : layout_manifest_head(s, ref, digest_out, size, e);
}

static uint64_t tag_hash(const char *t)
{
	uint64_t h = 1469598103934665603ull;

	for (; *t; t++)
		h = (h ^ (unsigned char)*t) * 1099511628211ull;
	return h;
}

/* Drop invalid and repeated tags in one pass (a hash set of the kept),
 * keeping the first of each. */
static void tags_clean(struct reg_store *s, struct reg_tags *tags)
{
	size_t cap = 16, i, k = 0, j;
	char **set;

	while (cap < 2 * tags->n)
		cap *= 2;
	set = xcalloc(cap, sizeof(*set));
	for (i = 0; i < tags->n; i++) {
		char *t = tags->v[i];

		if (!reg_tag_valid(t)) {
			reg_log(s, "the store lists an invalid tag (%zu bytes); ignored", strlen(t));
			free(t);
			continue;
		}
		for (j = tag_hash(t) & (cap - 1); set[j]; j = (j + 1) & (cap - 1))
			if (!strcmp(set[j], t))
				break;
		if (set[j]) {
			free(t);
			continue;
		}
		set[j] = t;
		tags->v[k++] = t;
	}
	tags->n = k;
	free(set);
}

int reg_tags_list(struct reg_store *s, struct reg_tags *tags, struct err *e)
{
	int ret;

	tags->v = NULL;
	tags->n = 0;
	ret = s->rm ? remote_tags_list(s, tags, e) : layout_tags_list(s, tags, e);
	if (!ret)
		tags_clean(s, tags);
	return ret;
}

int reg_manifest_delete(struct reg_store *s, const char *ref, struct err *e)
{
	if (check_ref(ref, e))
		return e->code;
	return s->rm ? remote_manifest_delete(s, ref, e)
		     : layout_manifest_delete(s, ref, e);
}

int reg_store_gc(struct reg_store *s, uint64_t min_age, uint64_t *freed,
		 struct err *e)
{
	if (freed)
		*freed = 0;
	return s->rm ? 0 : layout_gc(s, min_age, freed, e);
}

static int log_name_check(const struct reg_store *s, const char *name, struct err *e)
{
	if (s->rm)
		return err_set(e, ERR_USAGE, "%s: a side log is kept in oci: stores only", s->name);
	if (!*name || strchr(name, '/') || name[0] == '.')
		return err_set(e, ERR_USAGE, "invalid log name '%s'", name);
	return 0;
}

int reg_store_log_append(struct reg_store *s, const char *name, const char *line,
			 size_t n, size_t keep, uint64_t max_bytes, struct err *e)
{
	if (log_name_check(s, name, e))
		return e->code;
	if (memchr(line, '\n', n))
		return err_set(e, ERR_USAGE, "a log line has a newline in it");
	return layout_log_append(s, name, line, n, keep, max_bytes, e);
}

int reg_store_log_read(struct reg_store *s, const char *name, uint64_t max_bytes,
		       struct buf *out, struct err *e)
{
	buf_reset(out);
	if (log_name_check(s, name, e))
		return e->code;
	return layout_log_read(s, name, max_bytes, out, e);
}

/* ---- artifacts ---- */

void reg_push_out_release(struct reg_push_out *o)
{
	reg_desc_release(&o->layer);
}

static struct reg_kv *kv_dup(const struct reg_kv *kv, size_t n, size_t extra)
{
	struct reg_kv *out = xcalloc(n + extra + 1, sizeof(*out));
	size_t i;

	for (i = 0; i < n; i++) {
		out[i].key = xstrdup(kv[i].key);
		out[i].value = xstrdup(kv[i].value);
	}
	return out;
}

int reg_push_artifact(struct reg_store *s, const char *tag,
		      const struct reg_push_in *in, struct reg_push_out *out,
		      struct err *e)
{
	struct reg_push_out tmp;
	struct reg_blob_info bi;
	struct buf man = BUF_INIT;
	const char *mt = in->media_type, *title, *digest = in->digest;
	struct reg_desc *l;
	struct reg_hash *h = NULL;
	struct stat st;
	int ret;

	if (!out)
		out = &tmp;
	memset(out, 0, sizeof(*out));
	l = &out->layer;
	if (tag && !reg_tag_valid(tag))
		return err_set(e, ERR_USAGE, "invalid tag '%s'", tag);
	if (!mt) {
		ret = reg_sniff_media_type(in->path, &mt, e);
		if (ret)
			goto out;
	}
	if (stat(in->path, &st)) {
		ret = err_errno(e, "cannot stat %s", in->path);
		goto out;
	}
	/* the hash runs while the config goes up and the upload starts; no
	 * blob byte goes up unless the session is open and the hash slow */
	h = hash_ahead(s, in->path, &st, digest);
	/* the empty config: usually there already, so a HEAD and no upload */
	ret = reg_blob_push_mem(s, "{}", 2, NULL, e);
	if (ret) {
		err_wrap(e, "push the empty config");
		goto out;
	}
	ret = push_file(s, in->path, &st, digest, h, in->mount_from, &bi, e);
	if (ret)
		goto out;
	out->sent = bi.sent;
	out->skipped = bi.skipped;
	l->media_type = xstrdup(mt);
	memcpy(l->digest, bi.digest, REG_DIGEST_SIZE);
	l->size = bi.size;
	title = in->title ? in->title : reg_basename(in->path);
	l->annotations = kv_dup(in->layer_annotations, in->nlayer_annotations, 1);
	l->nannotations = in->nlayer_annotations;
	if (*title && !reg_annot_get(l->annotations, l->nannotations, REG_ANNOT_TITLE)) {
		l->annotations[l->nannotations].key = xstrdup(REG_ANNOT_TITLE);
		l->annotations[l->nannotations].value = xstrdup(title);
		l->nannotations++;
	}
	ret = reg_artifact_manifest(&man, in->artifact_type, l, in->annotations,
				    in->nannotations, e);
	if (ret)
		goto out;
	/* the commit point: the manifest goes last */
	ret = reg_manifest_put(s, tag, man.data, man.len, out->digest, e);
	out->size = man.len;
out:
	reg_hash_free(h);
	buf_release(&man);
	if (out == &tmp || ret)
		reg_push_out_release(out);
	return ret;
}

int reg_artifact_get(struct reg_store *s, const char *ref, struct reg_manifest *m,
		     char digest_out[REG_DIGEST_SIZE], struct err *e)
{
	struct buf b = BUF_INIT;
	char *mt = NULL;
	int ret;

	memset(m, 0, sizeof(*m));
	ret = reg_manifest_get(s, ref, &b, &mt, digest_out, e);
	if (ret)
		goto out;
	ret = reg_manifest_parse(m, b.data, b.len, e);
	if (ret) {
		err_wrap(e, "manifest %s", ref);
		goto out;
	}
	if (m->is_index) {
		ret = err_set(e, ERR_USAGE, "%s is an image index, not a single-layer "
			      "artifact", ref);
	} else if (m->nlayers != 1) {
		ret = err_set(e, ERR_USAGE, "%s has %zu layers; ctxpack pulls single-layer "
			      "artifacts", ref, m->nlayers);
	}
out:
	if (ret)
		reg_manifest_release(m);
	free(mt);
	buf_release(&b);
	return ret;
}
