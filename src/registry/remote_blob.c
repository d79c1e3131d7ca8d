/*
 * Blobs read from a registry: the HEAD that says whether one is there,
 * and downloads into an fd, hashed as they stream and resumed with a
 * Range where a connection was cut.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "remote_internal.h"

int rm_blob_head(struct reg_store *s, const char *digest, uint64_t *size,
		 const char *actions, struct err *e)
{
	struct http_resp rs;
	int ret;

	http_resp_init(&rs);
	ret = rm_head(s, &rs, actions, NULL, "blobs", digest, e);
	if (ret)
		goto out;
	if (rs.status == 200) {
		if (size)
			*size = rs.content_length >= 0 ? (uint64_t)rs.content_length : 0;
		ret = 1;
	} else if (rs.status == 404) {
		ret = 0;
	} else {
		ret = rm_fail(s, &rs, e, "blob %s", digest);
	}
out:
	http_resp_release(&rs);
	return ret;
}

int remote_blob_exists(struct reg_store *s, const char *digest, uint64_t *size,
		       struct err *e)
{
	return rm_blob_head(s, digest, size, "pull", e);
}

/* A download into an fd, hashed as it streams, resumable. */
struct fetch {
	int fd;
	struct sha256 *h;
	uint64_t got;      /* bytes written to fd */
	uint64_t start;    /* got when this attempt began */
	uint64_t skip;     /* bytes of this response to drop */
	struct http_resp *rs;
	int first;
	int werr;          /* errno of a failed write */
	int bad_range;
	int64_t limit;     /* expected size, -1 unknown */
	int too_big;
};

static int fetch_sink(void *arg, const char *p, size_t n)
{
	struct fetch *f = arg;

	if (f->first) {
		f->first = 0;
		f->skip = 0;
		if (f->rs->status == 200) {
			f->skip = f->start; /* Range ignored: drop what we have */
		} else if (f->rs->status == 206) {
			const char *cr = f->rs->content_range;
			uint64_t from;
			char tmp[32];
			size_t k = 0;

			if (cr && !strncasecmp(cr, "bytes ", 6))
				cr += 6;
			while (cr && cr[k] >= '0' && cr[k] <= '9' && k < sizeof(tmp) - 1) {
				tmp[k] = cr[k];
				k++;
			}
			tmp[k] = '\0';
			if (!cr || parse_u64(tmp, &from) || from != f->start) {
				f->bad_range = 1;
				return -1;
			}
		}
	}
	if (f->skip) {
		size_t d = n < f->skip ? n : (size_t)f->skip;

		f->skip -= d;
		p += d;
		n -= d;
	}
	if (!n)
		return 0;
	if (f->limit >= 0 && f->got + n > (uint64_t)f->limit) {
		f->too_big = 1;
		return -1;
	}
	if (write_all(f->fd, p, n)) {
		f->werr = errno ? errno : EIO;
		return -1;
	}
	sha256_update(f->h, p, n);
	f->got += n;
	return 0;
}

int remote_blob_fetch_fd(struct reg_store *s, const char *digest, int64_t size,
			 int fd, struct err *e)
{
	struct reg_remote *r = s->rm;
	struct fetch f;
	struct http_req rq;
	struct http_resp rs;
	struct curl_slist *hdrs = NULL;
	char *url = NULL, *scope = rm_scope(r, "pull"), range[64], hex[72];
	unsigned char md[32];
	struct rm_retry rt = {0, 0, "resuming"};
	int ret = 0;

	memset(&f, 0, sizeof(f));
	f.fd = fd;
	f.h = sha256_new();
	f.rs = &rs;
	f.limit = size;
	http_resp_init(&rs);
	ret = rm_ping(s, e);
	if (ret)
		goto out;
	url = rm_url(r, "blobs/%s", digest);
	for (;;) {
		struct err e2 = ERR_INIT;
		uint64_t before = f.got;
		int net;

		curl_slist_free_all(hdrs);
		hdrs = NULL;
		if (f.got) {
			snprintf(range, sizeof(range), "Range: bytes=%llu-",
				 (unsigned long long)f.got);
			hdrs = curl_slist_append(hdrs, range);
		}
		rm_req(&rq, "GET", url);
		rq.headers = hdrs;
		rq.follow = 1;
		rq.sink = fetch_sink;
		rq.sink_arg = &f;
		f.start = f.got;
		f.first = 1;
		ret = rm_send_once(s, &rq, &rs, scope, &e2);
		s->st.blob_bytes_received += f.got - before;
		if (f.werr) {
			errno = f.werr;
			ret = err_errno(e, "cannot write blob %s", digest);
			goto out;
		}
		if (f.too_big) {
			ret = err_set(e, ERR_CORRUPT, "blob %s is larger than %lld bytes",
				      digest, (long long)size);
			goto out;
		}
		if (ret && ret != ERR_NET) {
			ret = err_set(e, e2.code, "blob %s: %s", digest, e2.msg);
			goto out;
		}
		net = ret == ERR_NET;
		ret = 0;
		if (!net && (rs.status == 200 || rs.status == 206) && !f.bad_range)
			break;
		if (!net && rs.status == 416 && size >= 0 && f.got == (uint64_t)size)
			break;
		if (!net && rs.status == 404) {
			ret = rm_fail(s, &rs, e, "blob %s not found", digest);
			goto out;
		}
		if (f.bad_range) {
			/* cannot line the bytes up again for an fd: give up cleanly */
			ret = err_set(e, ERR_NET, "blob %s: the registry answered a resumed "
				      "download at the wrong offset", digest);
			goto out;
		}
		if (!net && !rm_retry_status(rs.status)) {
			ret = rm_fail(s, &rs, e, "blob %s", digest);
			goto out;
		}
		/* progress (a cut connection): resume at once */
		switch (rm_retry(s, &rt, net, &rs, f.got > before,
				 "download of %s stopped at byte %llu (%s)", digest,
				 (unsigned long long)f.got, net ? e2.msg : "server error")) {
		case RM_RETRY:
			continue;
		case RM_DEADLINE:
			ret = err_set(e, ERR_NET, "blob %s: %s (at byte %llu)", digest, e2.msg,
				      (unsigned long long)f.got);
			goto out;
		case RM_TRIES:
			if (net)
				ret = err_set(e, ERR_NET, "blob %s: %s (after %u tries)", digest,
					      e2.msg, rt.tries);
			else
				ret = rm_fail(s, &rs, e, "blob %s (after %u tries)", digest,
					      rt.tries);
			goto out;
		default:
			ret = rm_fail(s, &rs, e, "blob %s", digest);
			goto out;
		}
	}
	if (size >= 0 && f.got != (uint64_t)size) {
		ret = err_set(e, ERR_CORRUPT, "blob %s: got %llu bytes, want %lld", digest,
			      (unsigned long long)f.got, (long long)size);
		goto out;
	}
	sha256_final(f.h, md);
	memcpy(hex, "sha256:", 7);
	hex_encode(hex + 7, md, 32);
	if (strcmp(hex, digest)) {
		ret = err_set(e, ERR_CORRUPT, "blob %s: the data has digest %s", digest, hex);
		goto out;
	}
out:
	sha256_free(f.h);
	curl_slist_free_all(hdrs);
	http_resp_release(&rs);
	free(url);
	free(scope);
	return ret;
}
