/*
 * Manifests: build the single-layer artifact manifest, parse manifests and
 * indexes back, and pick a layer media type from a file's magic bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reg_impl.h"

const char *reg_annot_get(const struct reg_kv *kv, size_t n, const char *key)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(kv[i].key, key))
			return kv[i].value;
	return NULL;
}

static void kv_free(struct reg_kv *kv, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(kv[i].key);
		free(kv[i].value);
	}
	free(kv);
}

void reg_desc_release(struct reg_desc *d)
{
	free(d->media_type);
	free(d->artifact_type);
	free(d->os);
	free(d->architecture);
	free(d->variant);
	kv_free(d->annotations, d->nannotations);
	memset(d, 0, sizeof(*d));
}

void reg_manifest_release(struct reg_manifest *m)
{
	size_t i;

	free(m->media_type);
	free(m->artifact_type);
	reg_desc_release(&m->config);
	for (i = 0; i < m->nlayers; i++)
		reg_desc_release(&m->layers[i]);
	free(m->layers);
	kv_free(m->annotations, m->nannotations);
	memset(m, 0, sizeof(*m));
}

static int parse_annots(json_t *obj, struct reg_kv **out, size_t *n,
			struct err *e)
{
	const char *k;
	json_t *v;
	size_t i = 0;

	*out = NULL;
	*n = 0;
	if (!obj || json_is_null(obj))
		return 0;
	if (!json_is_object(obj))
		return err_set(e, ERR_CORRUPT, "annotations is not an object");
	*out = xcalloc(json_object_size(obj) + 1, sizeof(**out));
	json_object_foreach(obj, k, v) {
		if (!json_is_string(v))
			return err_set(e, ERR_CORRUPT, "annotation '%s' is not a string", k);
		(*out)[i].key = xstrdup(k);
		(*out)[i].value = xstrdup(json_string_value(v));
		*n = ++i;
	}
	return 0;
}

static char *opt_str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) ? xstrdup(json_string_value(v)) : NULL;
}

static int parse_desc(json_t *o, struct reg_desc *d, const char *what,
		      struct err *e)
{
	json_t *v;
	json_int_t size;
	const char *dg;

	memset(d, 0, sizeof(*d));
	if (!json_is_object(o))
		return err_set(e, ERR_CORRUPT, "%s is not an object", what);
	d->media_type = opt_str(o, "mediaType");
	if (!d->media_type)
		return err_set(e, ERR_CORRUPT, "%s has no mediaType", what);
	v = json_object_get(o, "digest");
	dg = json_is_string(v) ? json_string_value(v) : NULL;
	if (!dg || !reg_digest_valid(dg))
		return err_set(e, ERR_CORRUPT, "%s has no valid sha256 digest", what);
	memcpy(d->digest, dg, 72);
	v = json_object_get(o, "size");
	if (!json_is_integer(v) || (size = json_integer_value(v)) < 0)
		return err_set(e, ERR_CORRUPT, "%s has no valid size", what);
	d->size = (uint64_t)size;
	d->artifact_type = opt_str(o, "artifactType");
	v = json_object_get(o, "platform");
	if (json_is_object(v)) {
		d->os = opt_str(v, "os");
		d->architecture = opt_str(v, "architecture");
		d->variant = opt_str(v, "variant");
	}
	return parse_annots(json_object_get(o, "annotations"), &d->annotations,
			    &d->nannotations, e);
}

int reg_manifest_parse(struct reg_manifest *m, const void *p, size_t n,
		       struct err *e)
{
	json_error_t je;
	json_t *root, *v, *arr;
	size_t i;
	int ret = 0;

	memset(m, 0, sizeof(*m));
	root = json_loadb(p, n, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return err_set(e, ERR_CORRUPT, "manifest is not valid JSON: %s (line %d)",
			       je.text, je.line);
	if (!json_is_object(root)) {
		ret = err_set(e, ERR_CORRUPT, "manifest is not a JSON object");
		goto out;
	}
	v = json_object_get(root, "schemaVersion");
	if (!json_is_integer(v) || json_integer_value(v) != 2) {
		ret = err_set(e, ERR_CORRUPT, "manifest schemaVersion is not 2");
		goto out;
	}
	m->schema_version = 2;
	m->media_type = opt_str(root, "mediaType");
	m->artifact_type = opt_str(root, "artifactType");
	arr = json_object_get(root, "manifests");
	if (arr || (m->media_type && (!strcmp(m->media_type, REG_MT_INDEX) ||
				      !strcmp(m->media_type, REG_MT_DOCKER_LIST)))) {
		m->is_index = 1;
	} else {
		arr = json_object_get(root, "layers");
		ret = parse_desc(json_object_get(root, "config"), &m->config, "config", e);
		if (ret)
			goto out;
	}
	if (!json_is_array(arr)) {
		ret = err_set(e, ERR_CORRUPT, "manifest has no %s array",
			      m->is_index ? "manifests" : "layers");
		goto out;
	}
	m->layers = xcalloc(json_array_size(arr) + 1, sizeof(*m->layers));
	for (i = 0; i < json_array_size(arr); i++) {
		char what[32];

		snprintf(what, sizeof(what), "%s[%zu]", m->is_index ? "manifests" : "layers", i);
		ret = parse_desc(json_array_get(arr, i), &m->layers[i], what, e);
		m->nlayers = i + 1;
		if (ret)
			goto out;
	}
	ret = parse_annots(json_object_get(root, "annotations"), &m->annotations,
			   &m->nannotations, e);
out:
	json_decref(root);
	if (ret)
		reg_manifest_release(m);
	return ret;
}

int reg_manifest_peek(const void *p, size_t n, char **media_type,
		      char **artifact_type, struct err *e)
{
	json_error_t je;
	json_t *root = json_loadb(p, n, 0, &je);

	if (media_type)
		*media_type = NULL;
	if (artifact_type)
		*artifact_type = NULL;
	if (!root || !json_is_object(root)) {
		json_decref(root);
		return err_set(e, ERR_CORRUPT, "manifest is not a JSON object");
	}
	if (media_type)
		*media_type = opt_str(root, "mediaType");
	if (artifact_type)
		*artifact_type = opt_str(root, "artifactType");
	json_decref(root);
	return 0;
}

int reg_sniff_media_type(const char *path, const char **media_type,
			 struct err *e)
{
	unsigned char m[4] = {0};
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_errno(e, "cannot open %s", path);
	n = read_full(fd, m, sizeof(m));
	close(fd);
	if (n < 0)
		return err_errno(e, "cannot read %s", path);
	if (n >= 4 && m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd)
		*media_type = REG_MT_LAYER_ZSTD;
	else if (n >= 2 && m[0] == 0x1f && m[1] == 0x8b)
		*media_type = REG_MT_LAYER_GZIP;
	else
		*media_type = REG_MT_LAYER_TAR;
	return 0;
}

/* NULL when a key or value is not valid UTF-8. */
static json_t *annots_json(const struct reg_kv *kv, size_t n)
{
	json_t *o = json_object();
	size_t i;

	for (i = 0; i < n; i++) {
		json_t *v = kv[i].value ? json_string(kv[i].value) : NULL;

		if (!v || json_object_set_new(o, kv[i].key, v)) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

int reg_artifact_manifest(struct buf *out, const char *artifact_type,
			  const struct reg_desc *layer,
			  const struct reg_kv *annotations, size_t nannotations,
			  struct err *e)
{
	json_t *root, *cfg, *l, *layers, *la = NULL, *ma = NULL;
	char *s;
	int ret = 0;

	buf_reset(out);
	if (layer->nannotations &&
	    !(la = annots_json(layer->annotations, layer->nannotations)))
		return err_set(e, ERR_USAGE, "a layer annotation is not valid UTF-8");
	if (nannotations && !(ma = annots_json(annotations, nannotations))) {
		json_decref(la);
		return err_set(e, ERR_USAGE, "an annotation is not valid UTF-8");
	}
	root = json_object();
	json_object_set_new(root, "schemaVersion", json_integer(2));
	json_object_set_new(root, "mediaType", json_string(REG_MT_MANIFEST));
	json_object_set_new(root, "artifactType",
			    json_string(artifact_type ? artifact_type
						      : REG_DEFAULT_ARTIFACT_TYPE));
	cfg = json_object();
	json_object_set_new(cfg, "mediaType", json_string(REG_MT_EMPTY));
	json_object_set_new(cfg, "digest", json_string(REG_EMPTY_DIGEST));
	json_object_set_new(cfg, "size", json_integer(2));
	json_object_set_new(root, "config", cfg);
	l = json_object();
	json_object_set_new(l, "mediaType", json_string(layer->media_type));
	json_object_set_new(l, "digest", json_string(layer->digest));
	json_object_set_new(l, "size", json_integer((json_int_t)layer->size));
	if (la)
		json_object_set_new(l, "annotations", la);
	layers = json_array();
	json_array_append_new(layers, l);
	json_object_set_new(root, "layers", layers);
	if (ma)
		json_object_set_new(root, "annotations", ma);
	s = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(root);
	if (!s)
		return err_set(e, ERR_FAIL, "cannot encode the manifest (bad UTF-8?)");
	if (strlen(s) > REG_MANIFEST_MAX || buf_addstr(out, s))
		ret = err_set(e, ERR_USAGE, "manifest larger than %u bytes",
			      REG_MANIFEST_MAX);
	free(s);
	return ret;
}
