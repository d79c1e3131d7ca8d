/*
 * Manifests in a registry: put (the digest checked against the
 * registry's), get (the bytes checked against a digest reference and
 * their media type), head, the tags list with Link pagination, deletes.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "remote_internal.h"

#define TAGS_PAGE 1000
#define TAGS_BODY_MAX (16u << 20)
#define MAX_PAGES 100000

/* Docker's types too: images pushed by docker (the bases `ctxpack image`
 * reads) have them; the cache's artifacts are OCI manifests either way. */
static const char accept_manifest[] =
	"Accept: " REG_MT_MANIFEST ", " REG_MT_INDEX ", " REG_MT_DOCKER_MANIFEST ", "
	REG_MT_DOCKER_LIST;

static void strip_params(char *ct)
{
	char *semi = ct ? strchr(ct, ';') : NULL;

	if (semi) {
		*semi = '\0';
		while (semi > ct && (semi[-1] == ' ' || semi[-1] == '\t'))
			*--semi = '\0';
	}
}

int remote_manifest_put(struct reg_store *s, const char *tag, const void *p,
			size_t n, const char *media_type, const char *digest,
			struct err *e)
{
	struct http_req rq;
	struct http_resp rs;
	char *ct = xasprintf("Content-Type: %s", media_type);
	int ret;

	http_resp_init(&rs);
	rm_req(&rq, "PUT", NULL);
	rq.has_body = 1;
	rq.body_mem = p;
	rq.body_len = n;
	ret = rm_api(s, &rq, &rs, "pull,push", ct, e, "manifests/%s", tag ? tag : digest);
	if (ret)
		goto out;
	if (rs.status != 201 && rs.status != 200 && rs.status != 202) {
		ret = rm_fail(s, &rs, e, "put manifest %s", tag ? tag : digest);
		goto out;
	}
	if (rs.digest && strcmp(rs.digest, digest)) {
		ret = err_set(e, ERR_CORRUPT, "put manifest %s: the registry stored digest %s, "
			      "not %s", tag ? tag : digest, rs.digest, digest);
		goto out;
	}
out:
	http_resp_release(&rs);
	free(ct);
	return ret;
}

int remote_manifest_get(struct reg_store *s, const char *ref, struct buf *out,
			char **media_type, char *digest_out, struct err *e)
{
	struct http_req rq;
	struct http_resp rs;
	char *body_mt = NULL;
	char dg[REG_DIGEST_SIZE];
	size_t oldmax = out->max;
	int ret;

	http_resp_init(&rs);
	buf_reset(out);
	out->max = REG_MANIFEST_MAX;
	rm_req(&rq, "GET", NULL);
	rq.follow = 1;
	rq.out = out;
	ret = rm_api(s, &rq, &rs, "pull", accept_manifest, e, "manifests/%s", ref);
	if (ret) {
		err_wrap(e, "manifest %s", ref);
		goto out;
	}
	if (rs.status == 404) {
		ret = rm_fail(s, &rs, e, "manifest %s not found", ref);
		goto out;
	}
	if (rs.status != 200) {
		ret = rm_fail(s, &rs, e, "manifest %s", ref);
		goto out;
	}
	sha256_digest_str(out->data, out->len, dg);
	if (reg_digest_valid(ref) && strcmp(dg, ref)) {
		ret = err_set(e, ERR_CORRUPT, "manifest %s: the registry sent bytes with "
			      "digest %s", ref, dg);
		goto out;
	}
	strip_params(rs.content_type);
	if (reg_manifest_peek(out->data, out->len, &body_mt, NULL, e)) {
		err_wrap(e, "manifest %s", ref);
		ret = e->code;
		goto out;
	}
	if (body_mt && rs.content_type && strcmp(body_mt, rs.content_type)) {
		ret = err_set(e, ERR_CORRUPT, "manifest %s: Content-Type %s but mediaType %s",
			      ref, rs.content_type, body_mt);
		goto out;
	}
	if (media_type)
		*media_type = xstrdup(rs.content_type ? rs.content_type
				      : body_mt ? body_mt : REG_MT_MANIFEST);
	if (digest_out)
		memcpy(digest_out, dg, REG_DIGEST_SIZE);
out:
	out->max = oldmax;
	if (ret)
		buf_reset(out);
	free(body_mt);
	http_resp_release(&rs);
	return ret;
}

int remote_manifest_head(struct reg_store *s, const char *ref, char *digest_out,
			 uint64_t *size, struct err *e)
{
	struct http_resp rs;
	int ret;

	http_resp_init(&rs);
	ret = rm_head(s, &rs, "pull", accept_manifest, "manifests", ref, e);
	if (ret)
		goto out;
	if (rs.status == 404) {
		ret = 0;
		goto out;
	}
	if (rs.status != 200) {
		ret = rm_fail(s, &rs, e, "manifest %s", ref);
		goto out;
	}
	if (digest_out || size) {
		if (!rs.digest || !reg_digest_valid(rs.digest) || rs.content_length < 0) {
			/* no digest header: fetch and hash it ourselves */
			struct buf b = BUF_INIT;
			char dg[REG_DIGEST_SIZE];

			ret = remote_manifest_get(s, ref, &b, NULL, dg, e);
			if (!ret) {
				if (digest_out)
					memcpy(digest_out, dg, REG_DIGEST_SIZE);
				if (size)
					*size = b.len;
				ret = 1;
			} else if (ret == ERR_NOTFOUND) {
				err_clear(e);
				ret = 0;
			}
			buf_release(&b);
			goto out;
		}
		if (digest_out)
			memcpy(digest_out, rs.digest, REG_DIGEST_SIZE);
		if (size)
			*size = (uint64_t)rs.content_length;
	}
	ret = 1;
out:
	http_resp_release(&rs);
	return ret;
}

int remote_tags_list(struct reg_store *s, struct reg_tags *tags, struct err *e)
{
	struct reg_remote *r = s->rm;
	struct http_req rq;
	struct http_resp rs;
	struct buf body;
	char *url = NULL, *scope = rm_scope(r, "pull"), *last = NULL;
	unsigned pages = 0;
	int ret, saw_link = 0;

	http_resp_init(&rs);
	buf_init(&body, TAGS_BODY_MAX);
	ret = rm_ping(s, e);
	if (ret)
		goto out;
	url = rm_url(r, "tags/list?n=%d", TAGS_PAGE);
	while (url) {
		json_t *root, *arr, *v;
		size_t i, page_n = 0;
		char *next;

		if (++pages > MAX_PAGES) {
			ret = err_set(e, ERR_FAIL, "tags list: too many pages");
			goto out;
		}
		rm_req(&rq, "GET", url);
		rq.follow = 1;
		rq.out = &body;
		ret = rm_send(s, &rq, &rs, scope, e);
		if (ret) {
			err_wrap(e, "tags list");
			goto out;
		}
		if (rs.status == 404) {
			/* NAME_UNKNOWN: no repository yet, so no tags */
			break;
		}
		if (rs.status != 200) {
			ret = rm_fail(s, &rs, e, "tags list");
			goto out;
		}
		root = json_loadb(body.data, body.len, 0, NULL);
		arr = json_object_get(root, "tags");
		if (!json_is_object(root) || (arr && !json_is_null(arr) && !json_is_array(arr))) {
			json_decref(root);
			ret = err_set(e, ERR_CORRUPT, "tags list: the registry's answer is not "
				      "{\"tags\": [...]}");
			goto out;
		}
		json_array_foreach(arr, i, v) {
			if (json_is_string(v)) {
				reg_tags_push(tags, xstrdup(json_string_value(v)));
				page_n++;
			}
		}
		free(last);
		last = page_n ? xstrdup(tags->v[tags->n - 1]) : NULL;
		json_decref(root);
		next = rs.link ? reg_link_next(rs.link) : NULL;
		free(url);
		url = NULL;
		if (next) {
			saw_link = 1;
			url = reg_url_resolve(rs.url, next);
			free(next);
			if (!url || !reg_url_same_origin(url, r->base)) {
				ret = err_set(e, ERR_FAIL, "tags list: refusing a next page on "
					      "another host");
				goto out;
			}
		} else if (!saw_link && page_n >= TAGS_PAGE && last) {
			/* an old registry without Link: continue after the last tag */
			char *l = reg_url_escape(last);

			url = rm_url(r, "tags/list?n=%d&last=%s", TAGS_PAGE, l);
			free(l);
		}
	}
out:
	if (ret)
		reg_tags_release(tags);
	free(last);
	buf_release(&body);
	http_resp_release(&rs);
	free(url);
	free(scope);
	return ret;
}

static int delete_one(struct reg_store *s, const char *ref, struct http_resp *rs,
		      struct err *e)
{
	struct http_req rq;

	rm_req(&rq, "DELETE", NULL);
	return rm_api(s, &rq, rs, "delete", NULL, e, "manifests/%s", ref);
}

int remote_manifest_delete(struct reg_store *s, const char *ref, struct err *e)
{
	struct http_resp rs;
	char dg[REG_DIGEST_SIZE];
	int ret;

	http_resp_init(&rs);
	ret = rm_ping(s, e);
	if (ret)
		goto out;
	if (!reg_digest_valid(ref)) {
		ret = remote_manifest_head(s, ref, dg, NULL, e);
		if (ret < 0)
			goto out;
		if (ret == 0) {
			ret = err_set(e, ERR_NOTFOUND, "delete %s: no such tag", ref);
			goto out;
		}
		ret = delete_one(s, ref, &rs, e);
		if (ret)
			goto out;
		if (rs.status == 202 || rs.status == 200 || rs.status == 204)
			goto out;
		if (rs.status == 401 || rs.status == 403) {
			ret = rm_fail(s, &rs, e, "delete %s", ref);
			goto out;
		}
		/* distribution 2.x deletes by digest only */
		reg_log(s, "deleting tag %s answered %ld; deleting manifest %s", ref,
			rs.status, dg);
		ref = dg;
	}
	ret = delete_one(s, ref, &rs, e);
	if (ret)
		goto out;
	if (rs.status == 202 || rs.status == 200 || rs.status == 204)
		goto out;
	if (rs.status == 404) {
		ret = rm_fail(s, &rs, e, "delete %s: not found", ref);
	} else if (rs.status == 405 || rs.status == 400) {
		struct buf m = BUF_INIT;

		rm_errors(&rs, &m);
		ret = err_set(e, ERR_FAIL, "delete %s: the registry does not allow deletes "
			      "(%ld%s%s)", ref, rs.status, m.len ? " " : "", m.data);
		buf_release(&m);
	} else {
		ret = rm_fail(s, &rs, e, "delete %s", ref);
	}
out:
	http_resp_release(&rs);
	return ret;
}
