/*
 * img_build: `ctxpack image`.  The order of the work:
 *
 *  1. the outputs are opened (nothing contacted yet) and the frame store;
 *  2. the base: its manifest (an index resolved to the platform), its
 *     config; its layers stay where they are;
 *  3. each layer: walked (its own ignore file), brought up to date in the
 *     index (a stat per file, reads only of changed ones), keyed; a layer
 *     whose key has a record is known without reading a file, and its blob
 *     is made (from the frame store) only when an output lacks it; any
 *     other layer is packed through the frame cache into a temporary file,
 *     its tar hashed on the way (the diff_id), and recorded;
 *  4. the config and the manifest;
 *  5. per output: the base's blobs it lacks (mounted from the base's
 *     repository on the same registry, else fetched from the base once and
 *     sent), the layers' blobs it lacks, the config, and the manifest last
 *     (the commit point).
 *
 * Temporary files live in <cache>/layers (beside the records, on the
 * cache's file system) and are removed at the end; ones left by a killed
 * process are removed by a later run after an hour.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctxpack/image.h"
#include "ctxpack/pack.h"
#include "ctxpack/walk.h"


struct ctx {
	const struct img_opts *o;
	struct img_result *r;
	struct fc *fc;
	struct buf versions;
	char *dir;                /* <cache>/layers: records and temporaries */
	struct reg_store *base;
	struct reg_store **outs;
	unsigned char *have;      /* [layer * noutputs + output]: the output has
				     the layer's blob (asked in step 3) */
	char **blob;              /* per layer: its blob in a temporary, or NULL */
	char **roots;             /* per new layer: its source's real path */
	unsigned ntmp;
	struct buf base_config;
	char *os, *arch, *variant;
	struct pack_opts po;
};

static void logf_(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(struct ctx *c, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (!c->o->log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	c->o->log(c->o->log_arg, line);
}

static void warn(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(struct ctx *c, const char *fmt, ...)
{
	va_list ap;

	if (c->r->warnings.len)
		buf_addch(&c->r->warnings, '\n');
	va_start(ap, fmt);
	buf_vaddf(&c->r->warnings, fmt, ap);
	va_end(ap);
}

void img_opts_init(struct img_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->compress = PACK_GZIP;
	o->created = PACK_DEFAULT_MTIME;
	reg_opts_init(&o->ro);
}

void img_result_release(struct img_result *r)
{
	size_t i;

	free(r->base);
	for (i = 0; i < r->nlayers; i++)
		reg_desc_release(&r->layers[i].desc);
	free(r->layers);
	for (i = 0; i < r->noutputs; i++)
		free(r->outputs[i].ref);
	free(r->outputs);
	buf_release(&r->manifest);
	buf_release(&r->config);
	buf_release(&r->warnings);
	memset(r, 0, sizeof(*r));
}

/* ---- temporaries ---- */

/* A new temporary file in c->dir: its fd, and its path in *path. */
static int tmp_open(struct ctx *c, char **path, struct err *e)
{
	int fd;

	if (mkdir_p(c->dir, 0755, e))
		return -1;
	for (;;) {
		*path = xasprintf("%s/tmp.%ld.%u", c->dir, (long)getpid(), c->ntmp++);
		fd = open(*path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST) {
			err_errno(e, "cannot create %s", *path);
			free(*path);
			*path = NULL;
			return -1;
		}
		free(*path);
	}
}

/* ---- the base ---- */

static int platform_match(const struct reg_desc *d, const struct ctx *c)
{
	if (!d->os || !d->architecture || strcmp(d->os, c->os) || strcmp(d->architecture, c->arch))
		return 0;
	return !c->variant || (d->variant && !strcmp(d->variant, c->variant));
}

static int resolve_base(struct ctx *c, struct err *e)
{
	const struct img_opts *o = c->o;
	struct img_result *r = c->r;
	struct reg_manifest m, m2;
	struct reg_config_info ci;
	struct buf b = BUF_INIT;
	char dg[REG_DIGEST_SIZE], *canon = NULL;
	const char *target;
	size_t i;
	int ret;

	memset(&m, 0, sizeof(m));
	memset(&ci, 0, sizeof(ci));
	ret = reg_store_open(&c->base, o->from, &o->ro, e);
	if (ret)
		return err_wrap(e, "base %s", o->from);
	canon = reg_ref_str(reg_store_ref(c->base));
	target = reg_ref_target(reg_store_ref(c->base));
	ret = reg_manifest_get(c->base, target, &b, NULL, dg, e);
	if (!ret)
		ret = reg_manifest_parse(&m, b.data, b.len, e);
	if (ret)
		goto fail;
	if (m.is_index) {
		const struct reg_desc *pick = NULL;
		struct buf have = BUF_INIT;

		for (i = 0; i < m.nlayers && !pick; i++)
			if (platform_match(&m.layers[i], c))
				pick = &m.layers[i];
		if (!pick) {
			for (i = 0; i < m.nlayers; i++)
				if (m.layers[i].os && m.layers[i].architecture)
					buf_addf(&have, "%s%s/%s%s%s", have.len ? ", " : "",
						 m.layers[i].os, m.layers[i].architecture,
						 m.layers[i].variant ? "/" : "",
						 m.layers[i].variant ? m.layers[i].variant : "");
			ret = err_set(e, ERR_NOTFOUND, "no %s/%s%s%s image in the index (it has: %s)",
				      c->os, c->arch, c->variant ? "/" : "",
				      c->variant ? c->variant : "", have.len ? have.data : "none");
			buf_release(&have);
			goto fail;
		}
		memcpy(dg, pick->digest, sizeof(dg));
		logf_(c, "base %s: index, %s/%s is %s", canon, c->os, c->arch, dg);
		ret = reg_manifest_get(c->base, dg, &b, NULL, NULL, e);
		if (!ret)
			ret = reg_manifest_parse(&m2, b.data, b.len, e);
		if (ret)
			goto fail;
		reg_manifest_release(&m);
		m = m2;
		if (m.is_index) {
			ret = err_set(e, ERR_CORRUPT, "the index's entry %s is an index too", dg);
			goto fail;
		}
	}
	if (!m.config.media_type || (strcmp(m.config.media_type, REG_MT_IMAGE_CONFIG) &&
				     strcmp(m.config.media_type, REG_MT_DOCKER_CONFIG))) {
		ret = err_set(e, ERR_USAGE, "not an image (its config is %s)",
			      m.config.media_type ? m.config.media_type : "missing");
		goto fail;
	}
	ret = reg_blob_fetch_mem(c->base, m.config.digest, m.config.size, IMG_CONFIG_MAX,
				 &c->base_config, e);
	if (!ret)
		ret = reg_config_info(c->base_config.data, c->base_config.len, &ci, e);
	if (ret) {
		err_wrap(e, "config %s", m.config.digest);
		goto fail;
	}
	if (ci.ndiff_ids != m.nlayers) {
		ret = err_set(e, ERR_CORRUPT, "its config lists %zu layers, its manifest %zu",
			      ci.ndiff_ids, m.nlayers);
		goto fail;
	}
	if (o->platform && (!ci.os || !ci.architecture || strcmp(ci.os, c->os) ||
			    strcmp(ci.architecture, c->arch))) {
		ret = err_set(e, ERR_USAGE, "it is %s/%s, not %s", ci.os ? ci.os : "?",
			      ci.architecture ? ci.architecture : "?", o->platform);
		goto fail;
	}
	r->layers = xcalloc(m.nlayers + o->nlayers + 1, sizeof(*r->layers));
	for (i = 0; i < m.nlayers; i++) {
		struct img_layer *L = &r->layers[i];

		L->desc.media_type = xstrdup(reg_layer_oci_type(m.layers[i].media_type));
		memcpy(L->desc.digest, m.layers[i].digest, REG_DIGEST_SIZE);
		L->desc.size = m.layers[i].size;
		snprintf(L->diff_id, sizeof(L->diff_id), "%s", ci.diff_ids[i]);
	}
	r->nlayers = r->nbase = m.nlayers;
	r->base = xasprintf("%s@%s", canon, dg);
	logf_(c, "base %s: %zu layers, config %s", r->base, m.nlayers, m.config.digest);
fail:
	if (ret)
		err_wrap(e, "base %s", canon);
	reg_config_info_release(&ci);
	reg_manifest_release(&m);
	buf_release(&b);
	free(canon);
	return ret;
}

/* ---- layers ---- */

struct sink {
	int fd;
	const char *path;
	struct pack_tar_digest *td;
};

/* On the pack's writer thread. */
static int sink_write(void *ctx, const void *p, size_t n, struct err *e)
{
	struct sink *s = ctx;

	if (write_all(s->fd, p, n))
		return err_errno(e, "cannot write %s", s->path);
	if (s->td)
		return pack_tar_digest_update(s->td, p, n, e);
	return 0;
}

static const char *layer_media_type(int compress)
{
	switch (compress) {
	case PACK_ZSTD: return REG_MT_LAYER_ZSTD;
	case PACK_GZIP: return REG_MT_LAYER_GZIP;
	}
	return REG_MT_LAYER_TAR;
}

/* The tar digest of an archive file of ours. */
static int file_tar_digest(const char *path, int compress, char out[REG_DIGEST_SIZE],
			   struct err *e)
{
	struct pack_tar_digest *td = pack_tar_digest_new(compress, e);
	char *b = xmalloc(1u << 20);
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret = 0;
	ssize_t n;

	if (!td || fd < 0) {
		ret = td ? err_errno(e, "cannot open %s", path) : e->code;
		goto out;
	}
	while ((n = read_full(fd, b, 1u << 20)) > 0)
		if ((ret = pack_tar_digest_update(td, b, (size_t)n, e)))
			goto out;
	if (n < 0)
		ret = err_errno(e, "cannot read %s", path);
	else
		ret = pack_tar_digest_final(td, out, NULL, e);
out:
	if (fd >= 0)
		close(fd);
	free(b);
	pack_tar_digest_free(td);
	return ret;
}

/*
 * Write layer i's archive to a temporary file (c->blob[i]) through the
 * frame cache (fc may be NULL): with its tar digest when want_tar (a new
 * layer), else straight to the file (a known one: the frame store's
 * frames copied as they are).
 */
static int make_blob(struct ctx *c, size_t i, struct fc *fc, struct pack_list *l,
		     const struct pack_opts *po, int want_tar, struct pack_result *res,
		     char tar_digest[REG_DIGEST_SIZE], struct err *e)
{
	struct img_layer *L = &c->r->layers[c->r->nbase + i];
	struct sink sk = {-1, NULL, NULL};
	char *path = NULL;
	int ret;

	sk.fd = tmp_open(c, &path, e);
	if (sk.fd < 0)
		return e->code;
	sk.path = path;
	if (want_tar && !(sk.td = pack_tar_digest_new(po->compress, e))) {
		ret = e->code;
		goto out;
	}
	ret = fc_pack_write(fc, NULL, l, po, sink_write, NULL, &sk, want_tar ? -1 : sk.fd, res,
			    &L->fst, e);
	if (!ret && sk.td)
		ret = pack_tar_digest_final(sk.td, tar_digest, NULL, e);
	if (!ret && close(sk.fd)) {
		sk.fd = -1;
		ret = err_errno(e, "cannot write %s", path);
	}
	sk.fd = -1;
out:
	if (sk.fd >= 0)
		close(sk.fd);
	pack_tar_digest_free(sk.td);
	if (ret) {
		unlink(path);
		free(path);
	} else {
		c->blob[c->r->nbase + i] = path;
		L->made = 1;
	}
	return ret;
}

/* Warn when this layer's tree holds an earlier layer's source: the files
 * would be in the image twice (and the later copy wins). */
static void check_overlap(struct ctx *c, size_t i, const struct walk_result *w)
{
	size_t j, k, rl = strlen(w->root);

	for (j = 0; j < i; j++) {
		const char *other = c->roots[j], *rel;

		if (!other || strncmp(other, w->root, rl) || other[rl] != '/')
			continue;
		rel = other + rl + 1;
		for (k = 0; k < w->n; k++) {
			if (w->v[k].type == WALK_DIR && !strcmp(w->v[k].path, rel)) {
				warn(c, "layer %zu (%s) also holds %s, which layer %zu adds: "
				     "exclude it in %s/.dockerignore", i + 1, c->o->layers[i].src,
				     rel, j + 1, c->o->layers[i].src);
				break;
			}
		}
	}
}

static int build_layer(struct ctx *c, size_t i, struct err *e)
{
	const struct img_opts *o = c->o;
	const struct img_layer_spec *spec = &o->layers[i];
	struct img_layer *L = &c->r->layers[c->r->nbase + i];
	struct walk_opts wo;
	struct walk_result w;
	struct pack_list l;
	struct pack_opts po = c->po;
	struct pack_result res;
	struct img_record rec;
	struct idx *x = NULL;
	struct fc *fc = c->fc;
	struct buf wbuf = BUF_INIT;
	unsigned char settings[FC_KEY_LEN], key[FC_KEY_LEN];
	char *prefix = NULL, tar_dg[REG_DIGEST_SIZE];
	int have_list = 0, keyed = 0, ret;
	size_t k;

	L->src = spec->src;
	L->dest = spec->dest;
	ret = img_dest_prefix(spec->dest, &prefix, e);
	if (ret)
		goto out;
	po.prefix = prefix;
	memset(&wo, 0, sizeof(wo));
	wo.dir = spec->src;
	wo.ignore_file = spec->ignore_file;
	ret = walk_run(&wo, &w, e);
	if (ret)
		goto out_walk;
	c->roots[i] = xstrdup(w.root);
	check_overlap(c, i, &w);
	if (fc) {
		ret = fc_prepare(&w, o->index_dir, fc, NULL, &x, &L->ist, &wbuf, e);
		if (ret < 0)
			goto out_walk;
		if (ret > 0) {
			warn(c, "layer %s: %s", spec->src, wbuf.data);
			fc = NULL;
		}
		ret = 0;
	}
	pack_list_entries(&l, &w);
	have_list = 1;
	if (fc) {
		fc_settings_hash(&po, c->versions.data, settings);
		keyed = !fc_archive_key(&l, settings, key);
	}
	if (keyed && img_record_get(c->dir, key, &rec) &&
	    !strcmp(rec.media_type, layer_media_type(po.compress))) {
		int need = 0;

		L->desc.media_type = xstrdup(rec.media_type);
		memcpy(L->desc.digest, rec.digest, REG_DIGEST_SIZE);
		L->desc.size = rec.size;
		memcpy(L->diff_id, rec.diff_id, REG_DIGEST_SIZE);
		L->entries = rec.entries;
		L->reused = 1;
		logf_(c, "layer %s -> %s: unchanged, %s (%llu bytes) from its record", spec->src,
		      spec->dest, rec.digest, (unsigned long long)rec.size);
		/* only an output that lacks the blob makes us write it */
		for (k = 0; k < o->noutputs; k++) {
			int h = reg_blob_exists(c->outs[k], rec.digest, NULL, e);

			if (h < 0) {
				ret = err_wrap(e, "%s", reg_store_name(c->outs[k]));
				goto out_walk;
			}
			c->have[(c->r->nbase + i) * o->noutputs + k] = (unsigned char)h;
			need |= !h;
		}
		if (need) {
			logf_(c, "layer %s: an output lacks %s; writing it from the frame store",
			      spec->src, rec.digest);
			ret = make_blob(c, i, fc, &l, &po, 0, &res, NULL, e);
			if (ret)
				goto out_walk;
			if (strcmp(res.digest, rec.digest) || res.bytes != rec.size) {
				/* the record was wrong (not ours to trust blindly) */
				warn(c, "layer %s: its record named %s, the archive is %s; "
				     "record replaced", spec->src, rec.digest, res.digest);
				ret = file_tar_digest(c->blob[c->r->nbase + i], po.compress,
						      L->diff_id, e);
				if (ret)
					goto out_walk;
				memcpy(L->desc.digest, res.digest, REG_DIGEST_SIZE);
				L->desc.size = res.bytes;
				memset(c->have + (c->r->nbase + i) * o->noutputs, 0, o->noutputs);
				goto record;
			}
		}
		goto done;
	}

	/* new, or not known: pack it */
	ret = make_blob(c, i, fc, &l, &po, 1, &res, tar_dg, e);
	if (ret)
		goto out_walk;
	L->packed = 1;
	free(L->desc.media_type);
	L->desc.media_type = xstrdup(layer_media_type(po.compress));
	memcpy(L->desc.digest, res.digest, REG_DIGEST_SIZE);
	L->desc.size = res.bytes;
	memcpy(L->diff_id, tar_dg, REG_DIGEST_SIZE);
	L->entries = res.entries;
	logf_(c, "layer %s -> %s: packed, %s (%llu bytes, %llu entries; frames: %llu "
	      "compressed, %llu reused)", spec->src, spec->dest, res.digest,
	      (unsigned long long)res.bytes, (unsigned long long)res.entries,
	      (unsigned long long)L->fst.frames_compressed,
	      (unsigned long long)L->fst.frames_reused);
	/* on a first run the packer hashed the small files the index left
	 * to it (from the very bytes it archived): the key can be made now */
	if (fc && !keyed)
		keyed = !fc_archive_key(&l, settings, key);
record:
	/* a record only for what the key really describes: no file changed
	 * between the index and the packer (the frame store's rule) */
	if (keyed && !L->fst.frames_unsafe) {
		struct err e2 = ERR_INIT;

		memset(&rec, 0, sizeof(rec));
		snprintf(rec.media_type, sizeof(rec.media_type), "%s", L->desc.media_type);
		memcpy(rec.digest, L->desc.digest, REG_DIGEST_SIZE);
		rec.size = L->desc.size;
		memcpy(rec.diff_id, L->diff_id, REG_DIGEST_SIZE);
		rec.entries = L->entries;
		if (img_record_put(c->dir, key, &rec, &e2))
			warn(c, "cannot record layer %s: %s", spec->src, e2.msg);
	} else if (fc) {
		logf_(c, "layer %s: not recorded (%s)", spec->src,
		      !keyed ? "an entry has no content hash" :
		      "files changed or too recent to trust their hashes");
	}
done:
	if (x)
		idx_store_deferred(x, &w, &L->ist);
out_walk:
	if (ret)
		err_wrap(e, "layer %s", spec->src);
	if (x && idx_warning(x))
		warn(c, "%s", idx_warning(x));
	idx_close(x);
	if (have_list)
		pack_list_release(&l);
	walk_release(&w);
out:
	if (ret && !err_isset(e))
		err_set(e, ERR_FAIL, "layer %s failed", spec->src);
	buf_release(&wbuf);
	free(prefix);
	return ret;
}

/* ---- config and manifest ---- */

static int assemble(struct ctx *c, struct err *e)
{
	const struct img_opts *o = c->o;
	struct img_result *r = c->r;
	struct reg_config_edit ed = o->edit;
	struct reg_history_in *hist;
	const char **ids;
	struct reg_desc cfg, *layers;
	struct reg_kv ann[1];
	size_t i, nann = 0, nnew = r->nlayers - r->nbase;
	char **by;
	int ret;

	ids = xcalloc(nnew + 1, sizeof(*ids));
	by = xcalloc(nnew + 1, sizeof(*by));
	hist = xcalloc(nnew + o->nedit_history + 1, sizeof(*hist));
	for (i = 0; i < nnew; i++) {
		const struct img_layer *L = &r->layers[r->nbase + i];

		ids[i] = L->diff_id;
		/* the content, never the source's path: the same on any machine */
		by[i] = xasprintf("COPY dir:%s in %s", L->diff_id + 7, L->dest);
		hist[i].created_by = by[i];
		hist[i].comment = IMG_HISTORY_COMMENT;
	}
	for (i = 0; i < o->nedit_history; i++) {
		hist[nnew + i].created_by = o->edit_history[i];
		hist[nnew + i].comment = IMG_HISTORY_COMMENT;
		hist[nnew + i].empty_layer = 1;
	}
	ed.os = c->os;
	ed.architecture = c->arch;
	ed.variant = c->variant;
	ed.created = o->created;
	ed.base_layers = r->nbase;
	ed.diff_ids = ids;
	ed.ndiff_ids = nnew;
	ed.history = hist;
	ed.nhistory = nnew + o->nedit_history;
	ret = reg_image_config(&r->config, c->base ? c->base_config.data : NULL,
			       c->base_config.len, &ed, e);
	if (ret)
		goto out;
	sha256_digest_str(r->config.data, r->config.len, r->config_digest);
	r->config_size = r->config.len;
	memset(&cfg, 0, sizeof(cfg));
	cfg.media_type = (char *)REG_MT_IMAGE_CONFIG;
	memcpy(cfg.digest, r->config_digest, REG_DIGEST_SIZE);
	cfg.size = r->config_size;
	layers = xcalloc(r->nlayers + 1, sizeof(*layers));
	for (i = 0; i < r->nlayers; i++) {
		layers[i].media_type = r->layers[i].desc.media_type;
		memcpy(layers[i].digest, r->layers[i].desc.digest, REG_DIGEST_SIZE);
		layers[i].size = r->layers[i].desc.size;
	}
	/* the base by content only: its name (a host, a mirror, a local
	 * path) would make the digest depend on where the base was read */
	if (r->base) {
		ann[nann].key = (char *)REG_ANNOT_BASE_DIGEST;
		ann[nann++].value = strrchr(r->base, '@') + 1;
	}
	ret = reg_image_manifest(&r->manifest, &cfg, layers, r->nlayers, ann, nann, e);
	free(layers);
	if (ret)
		goto out;
	sha256_digest_str(r->manifest.data, r->manifest.len, r->digest);
	r->size = r->manifest.len;
out:
	for (i = 0; i < nnew; i++)
		free(by[i]);
	free(by);
	free(ids);
	free(hist);
	return ret;
}

/* ---- outputs ---- */

/* A base blob for an output that lacks it: fetched once into a
 * temporary, then sent to each output that needs it. */
static int base_blob(struct ctx *c, size_t j, struct err *e)
{
	const struct img_layer *L = &c->r->layers[j];
	char *path = NULL;
	int fd, ret;

	if (c->blob[j])
		return 0;
	fd = tmp_open(c, &path, e);
	if (fd < 0)
		return e->code;
	close(fd);
	logf_(c, "fetching base layer %s from %s", L->desc.digest, reg_store_name(c->base));
	ret = reg_blob_fetch_file(c->base, L->desc.digest, (int64_t)L->desc.size, path, 0, e);
	if (ret) {
		unlink(path);
		free(path);
		return err_wrap(e, "base layer %s", L->desc.digest);
	}
	c->blob[j] = path;
	return 0;
}

static int push_output(struct ctx *c, size_t k, struct err *e)
{
	struct img_result *r = c->r;
	struct img_output *out = &r->outputs[k];
	struct reg_store *s = c->outs[k];
	const struct reg_ref *sr = reg_store_ref(s), *br = c->base ? reg_store_ref(c->base) : NULL;
	struct reg_blob_info bi;
	struct reg_stats st;
	char dg[REG_DIGEST_SIZE];
	size_t j;
	int ret = 0, same_registry;

	same_registry = br && br->kind == REG_REMOTE && sr->kind == REG_REMOTE &&
			!strcmp(br->host, sr->host);
	for (j = 0; j < r->nlayers; j++) {
		const struct img_layer *L = &r->layers[j];
		int h;

		if (j >= r->nbase && !c->blob[j]) {
			/* a known layer the output was found to have */
			out->skipped++;
			continue;
		}
		if (j < r->nbase) {
			h = reg_blob_exists(s, L->desc.digest, NULL, e);
			if (h < 0)
				return h;
			if (h) {
				out->skipped++;
				continue;
			}
			if (same_registry) {
				struct err e2 = ERR_INIT;

				h = reg_blob_mount(s, L->desc.digest, br->repo, &e2);
				if (h == 1) {
					out->mounted++;
					continue;
				}
				if (h < 0)
					logf_(c, "mount of %s from %s: %s", L->desc.digest,
					      br->repo, e2.msg);
			}
			ret = base_blob(c, j, e);
			if (ret)
				return ret;
			out->copied++;
		}
		ret = reg_blob_push_file(s, c->blob[j], L->desc.digest, NULL, &bi, e);
		if (ret)
			return err_wrap(e, "layer %s", L->desc.digest);
		if (bi.skipped)
			out->skipped++;
		else if (j >= r->nbase)
			out->uploaded++;
	}
	ret = reg_blob_push_mem(s, r->config.data, r->config.len, NULL, e);
	if (ret)
		return err_wrap(e, "config %s", r->config_digest);
	/* the commit point */
	ret = reg_manifest_put(s, reg_ref_target(sr), r->manifest.data, r->manifest.len, dg, e);
	if (ret)
		return ret;
	reg_store_stats(s, &st);
	out->sent = st.blob_bytes_sent;
	logf_(c, "%s: %s (%llu blob bytes sent)", out->ref, dg, (unsigned long long)out->sent);
	return 0;
}

/* ---- the whole ---- */

static int open_outputs(struct ctx *c, struct err *e)
{
	const struct img_opts *o = c->o;
	size_t k;

	c->outs = xcalloc(o->noutputs + 1, sizeof(*c->outs));
	c->r->outputs = xcalloc(o->noutputs + 1, sizeof(*c->r->outputs));
	c->r->noutputs = o->noutputs;
	for (k = 0; k < o->noutputs; k++) {
		struct reg_ref rr;

		if (reg_store_open(&c->outs[k], o->outputs[k], &o->ro, e))
			return e->code;
		if (reg_store_ref(c->outs[k])->digest)
			return err_set(e, ERR_USAGE, "output %s: an image is pushed to a tag, "
				       "not a digest", o->outputs[k]);
		rr = *reg_store_ref(c->outs[k]);
		rr.tag = (char *)reg_ref_target(reg_store_ref(c->outs[k]));
		c->r->outputs[k].ref = reg_ref_str(&rr);
	}
	return 0;
}

int img_build(const struct img_opts *o, struct img_result *r, struct err *e)
{
	struct ctx c;
	size_t i, ntotal;
	int ret;

	memset(r, 0, sizeof(*r));
	memset(&c, 0, sizeof(c));
	c.o = o;
	c.r = r;
	pack_opts_init(&c.po);
	c.po.compress = o->compress;
	c.po.level = o->level;
	c.po.threads = o->threads;
	c.po.mtime = o->created;
	ret = pack_opts_check(&c.po, e);
	if (ret)
		return ret;
	if (!o->from || !*o->from)
		return err_set(e, ERR_USAGE, "no base image (--from REF, or --from scratch)");
	ret = img_parse_platform(o->platform ? o->platform : "linux/amd64", &c.os, &c.arch,
				 &c.variant, e);
	if (ret)
		return ret;
	ret = open_outputs(&c, e);
	if (ret)
		goto out;
	if (!o->no_cache) {
		struct fc_opts fo = o->fo;

		pack_lib_versions(&c.versions);
		fo.versions = c.versions.data;
		/* before the walks: its time is the racy rule's reference */
		ret = fc_open(&c.fc, &fo, e);
		if (ret)
			goto out;
		c.dir = xasprintf("%s/layers", fc_dir(c.fc));
	} else {
		char *home = cache_home();

		c.dir = xasprintf("%s/layers", home);
		free(home);
	}
	img_record_sweep(c.dir, IMG_RECORD_MAX_AGE);
	if (strcmp(o->from, "scratch")) {
		ret = resolve_base(&c, e);
		if (ret)
			goto out;
	} else {
		r->layers = xcalloc(o->nlayers + 1, sizeof(*r->layers));
	}
	ntotal = r->nbase + o->nlayers;
	c.have = xcalloc(ntotal * (o->noutputs ? o->noutputs : 1) + 1, 1);
	c.blob = xcalloc(ntotal + 1, sizeof(*c.blob));
	c.roots = xcalloc(o->nlayers + 1, sizeof(*c.roots));
	for (i = 0; i < o->nlayers; i++) {
		r->nlayers = r->nbase + i + 1;
		ret = build_layer(&c, i, e);
		if (ret)
			goto out;
	}
	ret = assemble(&c, e);
	if (ret)
		goto out;
	for (i = 0; i < o->noutputs; i++) {
		ret = push_output(&c, i, e);
		if (ret) {
			err_wrap(e, "push %s", r->outputs[i].ref);
			goto out;
		}
	}
out:
	if (c.fc) {
		struct fc_stats st;

		memset(&st, 0, sizeof(st));
		fc_maintain(c.fc, &st);
		if (fc_warning(c.fc))
			warn(&c, "%s", fc_warning(c.fc));
		fc_close(c.fc);
	}
	if (c.blob) {
		for (i = 0; i < r->nbase + o->nlayers; i++) {
			if (c.blob[i])
				unlink(c.blob[i]);
			free(c.blob[i]);
		}
	}
	free(c.blob);
	if (c.roots)
		for (i = 0; i < o->nlayers; i++)
			free(c.roots[i]);
	free(c.roots);
	free(c.have);
	for (i = 0; c.outs && i < o->noutputs; i++)
		reg_store_free(c.outs[i]);
	free(c.outs);
	reg_store_free(c.base);
	buf_release(&c.base_config);
	buf_release(&c.versions);
	free(c.dir);
	free(c.os);
	free(c.arch);
	free(c.variant);
	return ret;
}
