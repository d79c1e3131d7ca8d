/*
 * Image configs and image manifests (`ctxpack image`).  The config is the
 * base's with the edits a Dockerfile's instructions would make (WORKDIR,
 * ENV, ENTRYPOINT, CMD, USER, EXPOSE, LABEL, and one COPY per layer), in
 * Docker's semantics where they are not obvious: ENV values expand $VAR
 * and ${VAR} against the environment so far, a relative WORKDIR is taken
 * from the one before, and setting the entrypoint without a command
 * clears the base's command.
 *
 * Only the fields the OCI image spec defines are kept from the base
 * (Docker's container, container_config, docker_version and the like
 * describe how the base was built, not the image), and everything is
 * written as compact JSON with sorted keys, so that equal inputs give
 * equal bytes and an equal digest on any machine.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reg_impl.h"

/* The top-level fields of an OCI image config. */
static const char *const kept[] = {
	"architecture", "os", "os.version", "os.features", "variant", "author",
	"config", "rootfs", "history", NULL,
};

void reg_config_info_release(struct reg_config_info *ci)
{
	size_t i;

	for (i = 0; i < ci->ndiff_ids; i++)
		free(ci->diff_ids[i]);
	free(ci->diff_ids);
	free(ci->os);
	free(ci->architecture);
	free(ci->variant);
	memset(ci, 0, sizeof(*ci));
}

static char *opt_str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) ? xstrdup(json_string_value(v)) : NULL;
}

static json_t *load(const void *p, size_t n, struct err *e)
{
	json_error_t je;
	json_t *root = json_loadb(p, n, JSON_REJECT_DUPLICATES, &je);

	if (!root) {
		err_set(e, ERR_CORRUPT, "image config is not valid JSON: %s (line %d)", je.text,
			je.line);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		err_set(e, ERR_CORRUPT, "image config is not a JSON object");
		return NULL;
	}
	return root;
}

/* rootfs.diff_ids, checked: an array of sha256 digests. */
static json_t *diff_ids(json_t *root, struct err *e)
{
	json_t *rootfs = json_object_get(root, "rootfs"), *ids, *v;
	size_t i;

	if (!json_is_object(rootfs)) {
		err_set(e, ERR_CORRUPT, "image config has no rootfs");
		return NULL;
	}
	ids = json_object_get(rootfs, "diff_ids");
	if (json_is_null(ids) || !ids)
		return json_object_set_new(rootfs, "diff_ids", json_array()) ? NULL
		       : json_object_get(rootfs, "diff_ids");
	if (!json_is_array(ids)) {
		err_set(e, ERR_CORRUPT, "image config: rootfs.diff_ids is not an array");
		return NULL;
	}
	json_array_foreach(ids, i, v) {
		if (!json_is_string(v) || !reg_digest_valid(json_string_value(v))) {
			err_set(e, ERR_CORRUPT, "image config: rootfs.diff_ids[%zu] is not a "
				"sha256 digest", i);
			return NULL;
		}
	}
	return ids;
}

int reg_config_info(const void *p, size_t n, struct reg_config_info *ci, struct err *e)
{
	json_t *root, *ids;
	size_t i;

	memset(ci, 0, sizeof(*ci));
	root = load(p, n, e);
	if (!root)
		return e->code;
	ids = diff_ids(root, e);
	if (!ids) {
		json_decref(root);
		return e->code;
	}
	ci->ndiff_ids = json_array_size(ids);
	ci->diff_ids = xcalloc(ci->ndiff_ids + 1, sizeof(*ci->diff_ids));
	for (i = 0; i < ci->ndiff_ids; i++)
		ci->diff_ids[i] = xstrdup(json_string_value(json_array_get(ids, i)));
	ci->os = opt_str(root, "os");
	ci->architecture = opt_str(root, "architecture");
	ci->variant = opt_str(root, "variant");
	json_decref(root);
	return 0;
}

int reg_json_strings(const char *s, char ***v, size_t *n)
{
	json_t *root = json_loads(s, JSON_DECODE_ANY, NULL), *x;
	size_t i;

	*v = NULL;
	*n = 0;
	if (!json_is_array(root)) {
		json_decref(root);
		return -1;
	}
	json_array_foreach(root, i, x) {
		if (!json_is_string(x)) {
			json_decref(root);
			return -1;
		}
	}
	*n = json_array_size(root);
	*v = xcalloc(*n + 1, sizeof(**v));
	json_array_foreach(root, i, x)
		(*v)[i] = xstrdup(json_string_value(x));
	json_decref(root);
	return 0;
}

/* The value of NAME (n bytes) in an Env array of "K=V", or NULL. */
static const char *conf_env_value(json_t *env, const char *name, size_t n)
{
	json_t *v;
	size_t i;

	json_array_foreach(env, i, v) {
		const char *s = json_string_value(v);

		if (s && !strncmp(s, name, n) && s[n] == '=')
			return s + n + 1;
	}
	return NULL;
}

static int name_char(char c, int first)
{
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (!first && c >= '0' && c <= '9');
}

/*
 * Expand $NAME, ${NAME}, ${NAME:-word} and ${NAME:+word} in s against env
 * (as Docker's ENV and WORKDIR do; an unset name is empty, word is
 * literal), \$ being a literal '$'.  Into out (reset first).
 */
static int env_expand(const char *s, json_t *env, struct buf *out, struct err *e)
{
	const char *p = s;

	buf_reset(out);
	while (*p) {
		const char *name, *val, *word = NULL;
		size_t n, wn = 0;
		char op = 0;

		if (p[0] == '\\' && p[1] == '$') {
			buf_addch(out, '$');
			p += 2;
			continue;
		}
		if (*p != '$' || (p[1] != '{' && !name_char(p[1], 1))) {
			buf_addch(out, *p++);
			continue;
		}
		if (p[1] == '{') {
			const char *end = strchr(p + 2, '}');

			name = p + 2;
			for (n = 0; name_char(name[n], n == 0); n++)
				;
			if (!end || !n)
				return err_set(e, ERR_USAGE, "bad variable reference in '%s' "
					       "(want ${NAME}, ${NAME:-word} or ${NAME:+word})", s);
			if (name + n != end) {
				if (name[n] != ':' || (name[n + 1] != '-' && name[n + 1] != '+'))
					return err_set(e, ERR_USAGE, "bad variable reference in "
						       "'%s' (want ${NAME}, ${NAME:-word} or "
						       "${NAME:+word})", s);
				op = name[n + 1];
				word = name + n + 2;
				wn = (size_t)(end - word);
			}
			p = end + 1;
		} else {
			name = p + 1;
			for (n = 0; name_char(name[n], n == 0); n++)
				;
			p = name + n;
		}
		val = env ? conf_env_value(env, name, n) : NULL;
		if (op == '-' && (!val || !*val))
			buf_add(out, word, wn);
		else if (op == '+' && val && *val)
			buf_add(out, word, wn);
		else if (!op && val)
			buf_addstr(out, val);
	}
	return 0;
}

static int utf8_ok(const char *s)
{
	json_t *t = json_string(s);

	json_decref(t);
	return t != NULL;
}

/* Set "K=V" in env: in place of an existing K, else at the end. */
static void env_set(json_t *env, const char *kv)
{
	const char *eq = strchr(kv, '=');
	size_t n = eq ? (size_t)(eq - kv) : strlen(kv), i;
	json_t *v;

	json_array_foreach(env, i, v) {
		const char *s = json_string_value(v);

		if (s && !strncmp(s, kv, n) && s[n] == '=') {
			json_array_set_new(env, i, json_string(kv));
			return;
		}
	}
	json_array_append_new(env, json_string(kv));
}

/* "/a/./b/../c" -> "/a/c"; dir absolute.  Into out. */
static void clean_path(const char *dir, struct buf *out)
{
	const char *p = dir;

	buf_reset(out);
	while (*p) {
		const char *end;
		size_t n;

		while (*p == '/')
			p++;
		end = strchrnul(p, '/');
		n = (size_t)(end - p);
		if (!n)
			break;
		if (n == 1 && p[0] == '.') {
			/* nothing */
		} else if (n == 2 && p[0] == '.' && p[1] == '.') {
			char *sl = memrchr(out->data, '/', out->len);

			buf_setlen(out, sl ? (size_t)(sl - out->data) : 0);
		} else {
			buf_addch(out, '/');
			buf_add(out, p, n);
		}
		p = end;
	}
	if (!out->len)
		buf_addch(out, '/');
}

static json_t *str_array(const char *const *v, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

void reg_time_rfc3339(int64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The edits, on cfg (the "config" object) and env. */
static int edit_config(json_t *cfg, const struct reg_config_edit *ed, struct err *e)
{
	json_t *env = json_object_get(cfg, "Env");
	struct buf b = BUF_INIT, w = BUF_INIT;
	size_t i;
	int ret = 0;

	if (!json_is_array(env)) {
		env = json_array();
		json_object_set_new(cfg, "Env", env);
	}
	for (i = 0; i < ed->nenv; i++) {
		const char *eq = strchr(ed->env[i], '=');

		if (!eq || eq == ed->env[i]) {
			ret = err_set(e, ERR_USAGE, "environment variable '%s' is not NAME=VALUE",
				      ed->env[i]);
			goto out;
		}
		ret = env_expand(eq + 1, env, &w, e);
		if (ret)
			goto out;
		buf_reset(&b);
		buf_add(&b, ed->env[i], (size_t)(eq - ed->env[i]) + 1);
		buf_add(&b, w.data, w.len);
		if (!utf8_ok(b.data)) {
			ret = err_set(e, ERR_USAGE, "environment variable '%s' is not UTF-8",
				      ed->env[i]);
			goto out;
		}
		env_set(env, b.data);
	}
	if (!json_array_size(env))
		json_object_del(cfg, "Env");
	if (ed->workdir) {
		json_t *cur = json_object_get(cfg, "WorkingDir");

		ret = env_expand(ed->workdir, json_object_get(cfg, "Env"), &w, e);
		if (ret)
			goto out;
		buf_reset(&b);
		if (w.data[0] != '/') {
			buf_addstr(&b, json_is_string(cur) && *json_string_value(cur) ?
				   json_string_value(cur) : "/");
			buf_addch(&b, '/');
		}
		buf_add(&b, w.data, w.len);
		clean_path(b.data, &w);
		json_object_set_new(cfg, "WorkingDir", json_string(w.data));
	}
	if (ed->user)
		json_object_set_new(cfg, "User", json_string(ed->user));
	if (ed->set_entrypoint) {
		if (ed->nentrypoint)
			json_object_set_new(cfg, "Entrypoint",
					    str_array(ed->entrypoint, ed->nentrypoint));
		else
			json_object_del(cfg, "Entrypoint");
		/* Docker: an ENTRYPOINT resets the CMD a base set */
		if (!ed->set_cmd)
			json_object_del(cfg, "Cmd");
	}
	if (ed->set_cmd) {
		if (ed->ncmd)
			json_object_set_new(cfg, "Cmd", str_array(ed->cmd, ed->ncmd));
		else
			json_object_del(cfg, "Cmd");
	}
	if (ed->nexpose) {
		json_t *ports = json_object_get(cfg, "ExposedPorts");

		if (!json_is_object(ports)) {
			ports = json_object();
			json_object_set_new(cfg, "ExposedPorts", ports);
		}
		for (i = 0; i < ed->nexpose; i++)
			json_object_set_new(ports, ed->expose[i], json_object());
	}
	if (ed->nlabels) {
		json_t *labels = json_object_get(cfg, "Labels");

		if (!json_is_object(labels)) {
			labels = json_object();
			json_object_set_new(cfg, "Labels", labels);
		}
		for (i = 0; i < ed->nlabels; i++) {
			json_t *v = json_string(ed->labels[i].value);

			if (!v || json_object_set_new(labels, ed->labels[i].key, v)) {
				ret = err_set(e, ERR_USAGE, "label '%s' is not UTF-8",
					      ed->labels[i].key);
				goto out;
			}
		}
	}
out:
	buf_release(&b);
	buf_release(&w);
	return ret;
}

int reg_image_config(struct buf *out, const void *base, size_t nbase,
		     const struct reg_config_edit *ed, struct err *e)
{
	json_t *root = NULL, *src = NULL, *cfg, *ids, *hist;
	char created[32], *s = NULL;
	size_t i;
	int ret = 0;

	buf_reset(out);
	root = json_object();
	if (base) {
		const char *const *k;

		src = load(base, nbase, e);
		if (!src) {
			ret = e->code;
			goto out;
		}
		if (!diff_ids(src, e)) {
			ret = e->code;
			goto out;
		}
		for (k = kept; *k; k++) {
			json_t *v = json_object_get(src, *k);

			if (v && !json_is_null(v))
				json_object_set_new(root, *k, json_deep_copy(v));
		}
	} else {
		json_t *rootfs = json_object();

		json_object_set_new(root, "os", json_string(ed->os ? ed->os : "linux"));
		json_object_set_new(root, "architecture",
				    json_string(ed->architecture ? ed->architecture : "amd64"));
		if (ed->variant)
			json_object_set_new(root, "variant", json_string(ed->variant));
		json_object_set_new(rootfs, "type", json_string("layers"));
		json_object_set_new(rootfs, "diff_ids", json_array());
		json_object_set_new(root, "rootfs", rootfs);
	}
	ids = json_object_get(json_object_get(root, "rootfs"), "diff_ids");
	if (json_array_size(ids) != ed->base_layers) {
		ret = err_set(e, ERR_CORRUPT, "the base's config lists %zu layers (diff_ids) "
			      "but its manifest has %zu", json_array_size(ids), ed->base_layers);
		goto out;
	}
	cfg = json_object_get(root, "config");
	if (!json_is_object(cfg)) {
		cfg = json_object();
		json_object_set_new(root, "config", cfg);
	}
	ret = edit_config(cfg, ed, e);
	if (ret)
		goto out;
	for (i = 0; i < ed->ndiff_ids; i++) {
		if (!reg_digest_valid(ed->diff_ids[i])) {
			ret = err_set(e, ERR_USAGE, "bad diff_id '%s'", ed->diff_ids[i]);
			goto out;
		}
		json_array_append_new(ids, json_string(ed->diff_ids[i]));
	}
	json_object_set_new(json_object_get(root, "rootfs"), "type", json_string("layers"));

	reg_time_rfc3339(ed->created, created);
	json_object_set_new(root, "created", json_string(created));
	hist = json_object_get(root, "history");
	if (!json_is_array(hist)) {
		hist = json_array();
		json_object_set_new(root, "history", hist);
	}
	for (i = 0; i < ed->nhistory; i++) {
		const struct reg_history_in *h = &ed->history[i];
		json_t *o = json_object(), *by = json_string(h->created_by);

		if (!by) {
			json_decref(o);
			ret = err_set(e, ERR_USAGE, "history entry is not UTF-8: '%s'",
				      h->created_by);
			goto out;
		}
		json_object_set_new(o, "created", json_string(created));
		json_object_set_new(o, "created_by", by);
		if (h->comment)
			json_object_set_new(o, "comment", json_string(h->comment));
		if (h->empty_layer)
			json_object_set_new(o, "empty_layer", json_true());
		json_array_append_new(hist, o);
	}
	if (!json_array_size(hist))
		json_object_del(root, "history");
	s = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
	if (!s) {
		ret = err_set(e, ERR_FAIL, "cannot encode the image config");
		goto out;
	}
	buf_addstr(out, s);
out:
	free(s);
	json_decref(root);
	json_decref(src);
	return ret;
}

/* The OCI type of a base layer (Docker's types name the same bytes). */
const char *reg_layer_oci_type(const char *media_type)
{
	if (!strcmp(media_type, REG_MT_DOCKER_LAYER_GZIP))
		return REG_MT_LAYER_GZIP;
	if (!strcmp(media_type, REG_MT_DOCKER_LAYER_FOREIGN))
		return REG_MT_LAYER_NONDIST_GZIP;
	return media_type;
}

static json_t *desc_json(const struct reg_desc *d)
{
	json_t *o = json_object();
	size_t i;

	json_object_set_new(o, "mediaType", json_string(d->media_type));
	json_object_set_new(o, "digest", json_string(d->digest));
	json_object_set_new(o, "size", json_integer((json_int_t)d->size));
	if (d->nannotations) {
		json_t *a = json_object();

		for (i = 0; i < d->nannotations; i++)
			json_object_set_new(a, d->annotations[i].key,
					    json_string(d->annotations[i].value));
		json_object_set_new(o, "annotations", a);
	}
	return o;
}

int reg_image_manifest(struct buf *out, const struct reg_desc *config,
		       const struct reg_desc *layers, size_t nlayers,
		       const struct reg_kv *annotations, size_t nannotations,
		       struct err *e)
{
	json_t *root = json_object(), *arr = json_array();
	char *s;
	size_t i;
	int ret = 0;

	buf_reset(out);
	json_object_set_new(root, "schemaVersion", json_integer(2));
	json_object_set_new(root, "mediaType", json_string(REG_MT_MANIFEST));
	json_object_set_new(root, "config", desc_json(config));
	for (i = 0; i < nlayers; i++)
		json_array_append_new(arr, desc_json(&layers[i]));
	json_object_set_new(root, "layers", arr);
	if (nannotations) {
		json_t *a = json_object();

		for (i = 0; i < nannotations; i++) {
			json_t *v = json_string(annotations[i].value);

			if (!v || json_object_set_new(a, annotations[i].key, v)) {
				json_decref(a);
				json_decref(root);
				return err_set(e, ERR_USAGE, "annotation '%s' is not UTF-8",
					       annotations[i].key);
			}
		}
		json_object_set_new(root, "annotations", a);
	}
	s = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(root);
	if (!s)
		return err_set(e, ERR_FAIL, "cannot encode the manifest (bad UTF-8?)");
	if (strlen(s) > REG_MANIFEST_MAX || buf_addstr(out, s))
		ret = err_set(e, ERR_USAGE, "manifest larger than %u bytes", REG_MANIFEST_MAX);
	free(s);
	return ret;
}
