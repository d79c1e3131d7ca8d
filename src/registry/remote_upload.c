/*
 * Blob uploads to a registry: upload sessions (open, ask where one
 * stands, cancel), mounts from another repository, and the upload loop:
 * one PUT, chunks or a stream as the registry allows, resumed or
 * restarted after a failure under the retry policy.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "remote_internal.h"

static char *with_digest(const char *loc, const char *digest)
{
	char *d = reg_url_escape(digest);
	char *u = xasprintf("%s%sdigest=%s", loc, strchr(loc, '?') ? "&" : "?", d);

	free(d);
	return u;
}

/* Parse a Range value "0-N" or "bytes=0-N": the next offset (N+1). */
int upload_range_end(const char *v, uint64_t *next)
{
	const char *dash;
	uint64_t end;
	char tmp[32];
	size_t n;

	if (!v)
		return -1;
	if (!strncasecmp(v, "bytes=", 6))
		v += 6;
	dash = strchr(v, '-');
	if (!dash)
		return -1;
	n = strlen(dash + 1);
	if (!n || n >= sizeof(tmp))
		return -1;
	memcpy(tmp, dash + 1, n + 1);
	if (parse_u64(tmp, &end))
		return -1;
	*next = end + 1;
	return 0;
}

void upload_reset(struct upload *u)
{
	free(u->loc);
	u->loc = NULL;
	u->off = 0;
}

int upload_take_location(struct upload *u, const struct http_resp *rs,
			 struct err *e)
{
	char *n;

	if (!rs->location)
		return err_set(e, ERR_FAIL, "the registry gave no upload Location");
	n = reg_url_resolve(rs->url, rs->location);
	if (!n)
		return err_set(e, ERR_FAIL, "bad upload Location '%s'", rs->location);
	free(u->loc);
	u->loc = n;
	return 0;
}

void upload_cancel(struct reg_store *s, struct upload *u, const char *scope)
{
	struct http_req rq;
	struct http_resp rs;
	struct err e2 = ERR_INIT;

	if (!u->loc)
		return;
	http_resp_init(&rs);
	rm_req(&rq, "DELETE", u->loc);
	rm_send_once(s, &rq, &rs, scope, &e2);
	http_resp_release(&rs);
	upload_reset(u);
}

/* Ask where an upload stands (GET <location>): 0 with u updated, 1 when
 * the session is gone, <0 on error. */
static int upload_status(struct reg_store *s, struct upload *u,
			 const char *scope, struct err *e)
{
	struct http_req rq;
	struct http_resp rs;
	uint64_t next;
	int ret = 0;

	http_resp_init(&rs);
	rm_req(&rq, "GET", u->loc);
	ret = rm_send_once(s, &rq, &rs, scope, e);
	if (ret)
		goto out;
	if (rs.status == 204 || rs.status == 202 || rs.status == 200) {
		if (rs.location)
			upload_take_location(u, &rs, e);
		if (!upload_range_end(rs.range, &next))
			u->off = next;
		else
			u->off = 0;
		/* distribution says "0-0" for an empty upload as for one byte */
		if (rs.range && !strcmp(rs.range, "0-0"))
			u->off = 0;
		reg_log(s, "upload resumes at byte %llu", (unsigned long long)u->off);
	} else if (rs.status == 404 || rs.status == 400 || rs.status == 416) {
		ret = 1;
	} else {
		ret = rm_fail(s, &rs, e, "upload status");
	}
out:
	http_resp_release(&rs);
	return ret;
}

int upload_start(struct reg_store *s, struct upload *u, const char *digest,
		 const char *mount_from, const char *scope, uint64_t *chunk,
		 struct err *e)
{
	struct http_req rq;
	struct http_resp rs;
	int ret;

	upload_reset(u);
	http_resp_init(&rs);
	rm_req(&rq, "POST", NULL);
	rq.has_body = 1;
	rq.body_mem = "";
	rq.body_len = 0;
	if (mount_from) {
		char *d = reg_url_escape(digest), *f = reg_url_escape(mount_from);

		ret = rm_api(s, &rq, &rs, scope, NULL, e, "blobs/uploads/?mount=%s&from=%s",
			     d, f);
		free(d);
		free(f);
	} else {
		ret = rm_api(s, &rq, &rs, scope, NULL, e, "blobs/uploads/");
	}
	if (ret)
		goto out;
	if (mount_from && rs.status == 201) {
		ret = 1;
		goto out;
	}
	if (rs.status != 202) {
		ret = rm_fail(s, &rs, e, "start upload of %s", digest);
		goto out;
	}
	ret = upload_take_location(u, &rs, e);
	if (!ret && rs.chunk_min) {
		uint64_t min;

		if (!parse_u64(rs.chunk_min, &min) && min > *chunk && min <= (256u << 20))
			*chunk = min;
	}
out:
	http_resp_release(&rs);
	return ret;
}

/* The scope of a mount: push here, pull from the repository from. */
static char *mount_scope(struct reg_remote *r, const char *from)
{
	return xasprintf("repository:%s:pull,push repository:%s:pull", r->repo, from);
}

/* A blob upload under way: the state of remote_blob_push_file's loop. */
struct push {
	struct reg_store *s;
	struct upload u;
	const char *digest;
	const char *scope;
	int fd;
	uint64_t size;
	uint64_t chunk;     /* the size of a PATCH */
	int mono;           /* the rest in one PUT */
	int stream;         /* the rest in one PATCH (the registry refuses chunks) */
	int got416;         /* the last failure was a 416 */
	unsigned restarts;  /* sessions started again */
	/* the request of the current try */
	struct http_req rq;
	struct curl_slist *hdrs;
	char *url;
};

static void push_range(struct push *p, uint64_t from, uint64_t to)
{
	char v[64];

	snprintf(v, sizeof(v), "Content-Range: %llu-%llu", (unsigned long long)from,
		 (unsigned long long)to);
	p->hdrs = curl_slist_append(p->hdrs, v);
}

/* The next request of p: the rest in one PUT, the next chunk (or the
 * rest as a stream) in a PATCH, or the PUT that closes the session. */
static void push_next(struct push *p)
{
	uint64_t off = p->u.off, size = p->size;

	curl_slist_free_all(p->hdrs);
	p->hdrs = rm_octets();
	free(p->url);
	rm_req(&p->rq, NULL, NULL);
	p->rq.has_body = 1;
	p->rq.body_fd = p->fd;
	if (p->mono && off < size) {
		/* the whole blob (or what streaming while hashing left) in
		 * one PUT */
		p->url = with_digest(p->u.loc, p->digest);
		p->rq.method = "PUT";
		p->rq.body_off = off;
		p->rq.body_len = size - off;
		if (off)
			push_range(p, off, size - 1);
	} else if (off < size) {
		uint64_t n = p->stream || size - off < p->chunk ? size - off : p->chunk;

		p->url = xstrdup(p->u.loc);
		p->rq.method = "PATCH";
		p->rq.body_off = off;
		p->rq.body_len = n;
		if (!p->stream || off)
			push_range(p, off, off + n - 1);
	} else {
		/* all bytes are there: close the session */
		p->url = with_digest(p->u.loc, p->digest);
		p->rq.method = "PUT";
		p->rq.body_mem = "";
		p->rq.body_len = 0;
	}
	p->rq.url = p->url;
	p->rq.headers = p->hdrs;
}

/*
 * A final answer to a way of uploading the registry does not take:
 * chunks (then one streamed PATCH) or one big PUT (then chunks, or a
 * stream).  1 when p switched to the other way (the session cancelled),
 * 0 when rs is no such refusal.
 */
static int push_refused(struct push *p, const struct http_resp *rs)
{
	struct reg_store *s = p->s;
	struct reg_remote *r = s->rm;
	struct buf m = BUF_INIT;
	const char *what, *instead;

	if (rm_retry_status(rs->status) || rs->status == 404)
		return 0;
	if (!strcmp(p->rq.method, "PATCH") && !p->stream && rs->status != 416) {
		r->chunks_refused = 1;
		p->stream = 1;
		what = "chunked";
		instead = "streaming instead";
	} else if (p->mono && p->size > p->chunk) {
		r->mono_refused = 1;
		p->mono = 0;
		p->stream = r->chunks_refused;
		what = "monolithic";
		instead = "uploading in chunks";
	} else {
		return 0;
	}
	rm_errors(rs, &m);
	reg_log(s, "%s upload refused (HTTP %ld %s); %s", what, rs->status, m.data,
		instead);
	buf_release(&m);
	upload_cancel(s, &p->u, p->scope);
	return 1;
}

/*
 * After a failed try (a dropped connection, 5xx, 429, 404 or 416) that the
 * retry policy lets go again: find out where the upload stands.  1 when
 * the blob turns out to be there (a PUT that went through before its
 * answer was lost); else 0 with p ready for the next try: the session
 * started again, or its offset asked for.
 */
static int push_recover(struct push *p, const struct http_resp *rs, int net)
{
	struct reg_store *s = p->s;
	struct err e3 = ERR_INIT, e4 = ERR_INIT;

	if (!strcmp(p->rq.method, "PUT") &&
	    rm_blob_head(s, p->digest, NULL, "pull,push", &e3) == 1) {
		free(p->u.loc);
		p->u.loc = NULL;
		return 1;
	}
	if (p->mono || rs->status == 404 || (rs->status == 416 && p->got416)) {
		/* a monolithic PUT consumed the session: start again, in
		 * chunks when it was cut, so that another cut costs at most
		 * a chunk where the registry can resume */
		if (p->mono && net && p->size > p->chunk && !s->rm->chunks_refused) {
			reg_log(s, "uploading %s in chunks after the cut", p->digest);
			p->mono = 0;
		}
		upload_cancel(s, &p->u, p->scope);
		p->restarts++;
		p->got416 = 0;
		return 0;
	}
	p->got416 = rs->status == 416;
	if (upload_status(s, &p->u, p->scope, &e4) != 0) {
		reg_log(s, "upload session lost; restarting %s", p->digest);
		upload_reset(&p->u);
		p->restarts++;
	} else if (p->u.off > p->size) {
		upload_cancel(s, &p->u, p->scope);
		p->restarts++;
	}
	return 0;
}

int remote_blob_push_file(struct reg_store *s, const char *path,
			  const char *digest, struct reg_hash *hash, uint64_t size,
			  const char *mount_from, struct reg_blob_info *info,
			  struct err *e)
{
	struct reg_remote *r = s->rm;
	struct push p;
	struct http_resp rs;
	struct rm_retry rt = {0, 0, NULL};
	char *scope = NULL;
	uint64_t sent = 0;
	int ret;

	memset(&p, 0, sizeof(p));
	p.s = s;
	p.fd = -1;
	p.size = size;
	p.chunk = s->o.chunk_size;
	http_resp_init(&rs);
	if (hash && mount_from) {
		/* a mount names the digest */
		ret = reg_hash_wait(hash, info->digest, e);
		if (ret)
			goto out;
		hash = NULL;
	}
	if (hash) {
		ret = rm_ping(s, e);
		if (ret)
			goto out;
		scope = rm_scope(r, "pull,push");
		p.fd = open(path, O_RDONLY | O_CLOEXEC);
		if (p.fd < 0) {
			ret = err_errno(e, "cannot open %s", path);
			goto out;
		}
		ret = upload_while_hashing(s, &p.u, p.fd, size, size <= p.chunk ||
					   (size <= s->o.mono_max && !r->mono_refused),
					   hash, scope, &p.chunk, info->digest, &sent, e);
		if (ret < 0)
			goto out;
		digest = info->digest;
	} else {
		if (!digest)
			digest = info->digest;
		ret = rm_blob_head(s, digest, NULL, "pull,push", e);
		if (ret < 0)
			goto out;
	}
	if (ret == 1) {
		reg_log(s, "blob %s exists, skipped", digest);
		s->st.blobs_skipped++;
		info->skipped = 1;
		info->sent = sent;
		ret = 0;
		goto out;
	}
	if (!scope && mount_from && strcmp(mount_from, r->repo))
		scope = mount_scope(r, mount_from);
	else if (!scope)
		scope = rm_scope(r, "pull,push");
	if (p.fd < 0)
		p.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (p.fd < 0) {
		ret = err_errno(e, "cannot open %s", path);
		goto out;
	}
	p.digest = digest;
	p.scope = scope;
	/* one PUT up to mono_max (fastest: one request, the registry hashes as
	 * it receives); chunks above it, a stream where chunks are refused */
	p.mono = size <= p.chunk || (size <= s->o.mono_max && !r->mono_refused);
	if (p.u.loc && p.u.off >= size)
		p.mono = 0; /* all streamed: the closing PUT is all that is left */
	p.stream = !p.mono && r->chunks_refused;
	for (;;) {
		struct err e2 = ERR_INIT;
		int net;

		if (!p.u.loc) {
			ret = upload_start(s, &p.u, digest,
					   p.restarts == 0 && mount_from ? mount_from : NULL,
					   scope, &p.chunk, e);
			if (ret < 0)
				goto out;
			if (ret == 1) {
				reg_log(s, "blob %s mounted from %s", digest, mount_from);
				s->st.blobs_mounted++;
				info->mounted = 1;
				ret = 0;
				goto out;
			}
		}
		push_next(&p);
		ret = rm_send_once(s, &p.rq, &rs, scope, &e2);
		sent += rs.sent;
		s->st.blob_bytes_sent += p.rq.body_mem ? 0 : rs.sent;
		if (ret && ret != ERR_NET) {
			err_set(e, e2.code, "%s", e2.msg);
			goto out;
		}
		net = ret == ERR_NET;
		ret = 0;
		if (!net && !strcmp(p.rq.method, "PATCH") && rs.status == 202) {
			p.got416 = 0;
			p.u.off += p.rq.body_len;
			rt.fails = 0;
			if ((ret = upload_take_location(&p.u, &rs, e)))
				goto out;
			continue;
		}
		if (!net && !strcmp(p.rq.method, "PUT") && rs.status == 201) {
			if (rs.digest && strcmp(rs.digest, digest)) {
				ret = err_set(e, ERR_CORRUPT, "upload of %s: the registry stored "
					      "digest %s", digest, rs.digest);
				goto out;
			}
			free(p.u.loc);
			p.u.loc = NULL;
			break;
		}
		if (!net && (rs.status == 401 || rs.status == 403)) {
			ret = rm_fail(s, &rs, e, "upload of %s", digest);
			goto out;
		}
		if (!net && push_refused(&p, &rs))
			continue;
		if (!net && !rm_retry_status(rs.status) && rs.status != 404 && rs.status != 416) {
			ret = rm_fail(s, &rs, e, "upload of %s", digest);
			goto out;
		}
		switch (rm_retry(s, &rt, net, &rs, 0, "%s of %s failed (%s)", p.rq.method,
				 digest, net ? e2.msg : "server error")) {
		case RM_RETRY:
			break;
		case RM_TOO_LONG:
			ret = rm_fail(s, &rs, e, "upload of %s", digest);
			goto out;
		default:
			if (net)
				ret = err_set(e, ERR_NET, "upload of %s: %s (after %u tries)",
					      digest, e2.msg, rt.fails);
			else
				ret = rm_fail(s, &rs, e, "upload of %s (after %u tries)",
					      digest, rt.fails);
			goto out;
		}
		if (push_recover(&p, &rs, net))
			break;
	}
	info->sent = sent;
out:
	if (ret && p.u.loc)
		upload_cancel(s, &p.u, scope ? scope : "");
	upload_reset(&p.u);
	if (p.fd >= 0)
		close(p.fd);
	curl_slist_free_all(p.hdrs);
	free(p.url);
	http_resp_release(&rs);
	free(scope);
	return ret;
}

int remote_blob_mount(struct reg_store *s, const char *digest, const char *from,
		      struct err *e)
{
	struct reg_remote *r = s->rm;
	struct upload u = {NULL, 0};
	uint64_t chunk = s->o.chunk_size;
	char *scope;
	int ret;

	ret = rm_ping(s, e);
	if (ret)
		return ret;
	scope = mount_scope(r, from);
	ret = upload_start(s, &u, digest, from, scope, &chunk, e);
	if (ret == 1) {
		reg_log(s, "blob %s mounted from %s", digest, from);
		s->st.blobs_mounted++;
	} else if (ret == 0) {
		/* 202: an upload session instead, which is not wanted */
		reg_log(s, "blob %s cannot be mounted from %s", digest, from);
		upload_cancel(s, &u, scope);
	}
	upload_reset(&u);
	free(scope);
	return ret;
}

int remote_blob_push_mem(struct reg_store *s, const void *p, size_t n,
			 const char *digest, struct err *e)
{
	struct reg_remote *r = s->rm;
	struct upload u = {NULL, 0};
	struct http_req rq;
	struct http_resp rs;
	struct curl_slist *hdrs = NULL;
	char *scope = rm_scope(r, "pull,push"), *url = NULL;
	struct rm_retry rt = {0, 0, NULL};
	uint64_t chunk = s->o.chunk_size;
	int ret;

	http_resp_init(&rs);
	ret = rm_blob_head(s, digest, NULL, "pull,push", e);
	if (ret < 0)
		goto out;
	if (ret == 1) {
		s->st.blobs_skipped++;
		ret = 0;
		goto out;
	}
	hdrs = rm_octets();
	for (;;) {
		struct err e2 = ERR_INIT;

		ret = upload_start(s, &u, digest, NULL, scope, &chunk, e);
		if (ret)
			goto out;
		free(url);
		url = with_digest(u.loc, digest);
		rm_req(&rq, "PUT", url);
		rq.headers = hdrs;
		rq.has_body = 1;
		rq.body_mem = p;
		rq.body_len = n;
		ret = rm_send_once(s, &rq, &rs, scope, &e2);
		if (!ret && rs.status == 201)
			break;
		if (ret && ret != ERR_NET) {
			err_set(e, e2.code, "%s", e2.msg);
			goto out;
		}
		if (!ret && !rm_retry_status(rs.status)) {
			ret = rm_fail(s, &rs, e, "upload of %s", digest);
			goto out;
		}
		switch (rm_retry(s, &rt, ret != 0, &rs, 0, "PUT of %s failed (%s)", digest,
				 ret ? e2.msg : "server error")) {
		case RM_RETRY:
			break;
		default:
			if (ret)
				err_set(e, e2.code, "upload of %s: %s (after %u tries)", digest,
					e2.msg, rt.tries);
			else
				ret = rm_fail(s, &rs, e, "upload of %s", digest);
			goto out;
		}
		/* the PUT may have used the session up: a new one */
		upload_cancel(s, &u, scope);
	}
	s->st.blob_bytes_sent += n;
out:
	if (ret)
		upload_cancel(s, &u, scope);
	upload_reset(&u);
	curl_slist_free_all(hdrs);
	http_resp_release(&rs);
	free(scope);
	free(url);
	return ret;
}
