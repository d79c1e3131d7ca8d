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

int remote_blob_push_file(struct reg_store *s, const char *path,
			  const char *digest, struct reg_hash *hash, uint64_t size,
			  const char *mount_from, struct reg_blob_info *info,
			  struct err *e)
{
	struct reg_remote *r = s->rm;
	struct upload u = {NULL, 0};
	struct http_req rq;
	struct http_resp rs;
	struct curl_slist *hdrs = NULL;
	char *scope = NULL, *url = NULL, crange[64];
	uint64_t chunk = s->o.chunk_size, sent = 0;
	struct rm_retry rt = {0, 0, NULL};
	unsigned restarts = 0;
	int fd = -1, ret, mono, stream, got416 = 0;

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
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			ret = err_errno(e, "cannot open %s", path);
			goto out;
		}
		ret = upload_while_hashing(s, &u, fd, size, size <= chunk ||
					   (size <= s->o.mono_max && !r->mono_refused),
					   hash, scope, &chunk, info->digest, &sent, e);
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
		scope = xasprintf("repository:%s:pull,push repository:%s:pull", r->repo,
				  mount_from);
	else if (!scope)
		scope = rm_scope(r, "pull,push");
	if (fd < 0)
		fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = err_errno(e, "cannot open %s", path);
		goto out;
	}
	/* one PUT up to mono_max (fastest: one request, the registry hashes as
	 * it receives); chunks above it, a stream where chunks are refused */
	mono = size <= chunk || (size <= s->o.mono_max && !r->mono_refused);
	if (u.loc && u.off >= size)
		mono = 0; /* all streamed: the closing PUT is all that is left */
	stream = !mono && r->chunks_refused;
	for (;;) {
		struct err e2 = ERR_INIT;
		int net = 0;

		if (!u.loc) {
			ret = upload_start(s, &u, digest,
					   restarts == 0 && mount_from ? mount_from : NULL,
					   scope, &chunk, e);
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
		curl_slist_free_all(hdrs);
		hdrs = rm_octets();
		rm_req(&rq, NULL, NULL);
		rq.has_body = 1;
		rq.body_fd = fd;
		free(url);
		url = NULL;
		if (mono && u.off < size) {
			/* the whole blob (or what streaming while hashing left) in
			 * one PUT */
			url = with_digest(u.loc, digest);
			rq.method = "PUT";
			rq.body_off = u.off;
			rq.body_len = size - u.off;
			if (u.off) {
				snprintf(crange, sizeof(crange), "Content-Range: %llu-%llu",
					 (unsigned long long)u.off,
					 (unsigned long long)(size - 1));
				hdrs = curl_slist_append(hdrs, crange);
			}
		} else if (u.off < size) {
			uint64_t n = stream ? size - u.off : size - u.off < chunk ? size - u.off : chunk;

			url = xstrdup(u.loc);
			rq.method = "PATCH";
			rq.body_off = u.off;
			rq.body_len = n;
			if (!stream || u.off) {
				snprintf(crange, sizeof(crange), "Content-Range: %llu-%llu",
					 (unsigned long long)u.off,
					 (unsigned long long)(u.off + n - 1));
				hdrs = curl_slist_append(hdrs, crange);
			}
		} else {
			/* all bytes are there: close the session */
			url = with_digest(u.loc, digest);
			rq.method = "PUT";
			rq.body_mem = "";
			rq.body_len = 0;
		}
		rq.url = url;
		rq.headers = hdrs;
		ret = rm_send_once(s, &rq, &rs, scope, &e2);
		sent += rs.sent;
		s->st.blob_bytes_sent += rq.body_mem ? 0 : rs.sent;
		if (ret && ret != ERR_NET) {
			err_set(e, e2.code, "%s", e2.msg);
			goto out;
		}
		net = ret == ERR_NET;
		ret = 0;
		if (!net && !strcmp(rq.method, "PATCH") && rs.status == 202) {
			got416 = 0;
			u.off += rq.body_len;
			rt.fails = 0;
			if ((ret = upload_take_location(&u, &rs, e)))
				goto out;
			continue;
		}
		if (!net && !strcmp(rq.method, "PUT") && rs.status == 201) {
			if (rs.digest && strcmp(rs.digest, digest)) {
				ret = err_set(e, ERR_CORRUPT, "upload of %s: the registry stored "
					      "digest %s", digest, rs.digest);
				goto out;
			}
			free(u.loc);
			u.loc = NULL;
			break;
		}
		if (!net && (rs.status == 401 || rs.status == 403)) {
			ret = rm_fail(s, &rs, e, "upload of %s", digest);
			goto out;
		}
		if (!net && !strcmp(rq.method, "PATCH") && !stream &&
		    rs.status != 404 && rs.status != 416 && !rm_retry_status(rs.status)) {
			/* the registry refuses chunks: one streamed PATCH instead */
			struct buf m = BUF_INIT;

			rm_errors(&rs, &m);
			reg_log(s, "chunked upload refused (HTTP %ld %s); streaming instead",
				rs.status, m.data);
			buf_release(&m);
			r->chunks_refused = 1;
			stream = 1;
			upload_cancel(s, &u, scope);
			continue;
		}
		if (!net && mono && !rm_retry_status(rs.status) && rs.status != 404 &&
		    size > chunk) {
			/* the registry refuses one big PUT: chunks (or a stream) */
			struct buf m = BUF_INIT;

			rm_errors(&rs, &m);
			reg_log(s, "monolithic upload refused (HTTP %ld %s); uploading in chunks",
				rs.status, m.data);
			buf_release(&m);
			r->mono_refused = 1;
			mono = 0;
			stream = r->chunks_refused;
			upload_cancel(s, &u, scope);
			continue;
		}
		if (!net && !rm_retry_status(rs.status) && rs.status != 404 && rs.status != 416) {
			ret = rm_fail(s, &rs, e, "upload of %s", digest);
			goto out;
		}
		/* a dropped connection, 5xx, 429, 404 or 416: find out where we are */
		switch (rm_retry(s, &rt, net, &rs, 0, "%s of %s failed (%s)", rq.method,
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
		if (!strcmp(rq.method, "PUT")) {
			/* maybe it went through before the connection dropped */
			struct err e3 = ERR_INIT;

			if (rm_blob_head(s, digest, NULL, "pull,push", &e3) == 1) {
				free(u.loc);
				u.loc = NULL;
				break;
			}
		}
		if (mono || rs.status == 404 || (rs.status == 416 && got416)) {
			/* a monolithic PUT consumed the session: start again, in
			 * chunks when it was cut, so that another cut costs at most
			 * a chunk where the registry can resume */
			if (mono && net && size > chunk && !r->chunks_refused) {
				reg_log(s, "uploading %s in chunks after the cut", digest);
				mono = 0;
			}
			upload_cancel(s, &u, scope);
			restarts++;
			got416 = 0;
			continue;
		}
		got416 = rs.status == 416;
		{
			struct err e3 = ERR_INIT;
			int st = upload_status(s, &u, scope, &e3);

			if (st != 0) {
				reg_log(s, "upload session lost; restarting %s", digest);
				upload_reset(&u);
				restarts++;
			} else if (u.off > size) {
				upload_cancel(s, &u, scope);
				restarts++;
			}
		}
	}
	info->sent = sent;
out:
	if (ret && u.loc)
		upload_cancel(s, &u, scope ? scope : "");
	upload_reset(&u);
	if (fd >= 0)
		close(fd);
	curl_slist_free_all(hdrs);
	http_resp_release(&rs);
	free(scope);
	free(url);
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
	scope = xasprintf("repository:%s:pull,push repository:%s:pull", r->repo, from);
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
