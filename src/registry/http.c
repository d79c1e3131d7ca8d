/*
 * The libcurl request wrapper and the pure header helpers (Link, URL
 * resolution, same-origin).  Why by hand: redirects are followed here, not by
 * libcurl, so that bodies are never re-sent to a Location and the
 * Authorization header never leaves its origin whatever the libcurl version.
 */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "http.h"

#ifndef CTXPACK_VERSION
#define CTXPACK_VERSION "0"
#endif

#define ERRBODY_MAX (64u << 10)
#define MAX_REDIRECTS 10

void http_resp_init(struct http_resp *r)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->errbody, ERRBODY_MAX);
	r->content_length = -1;
}

static void resp_clear_headers(struct http_resp *r)
{
	free(r->location);
	free(r->content_type);
	free(r->digest);
	free(r->link);
	free(r->range);
	free(r->retry_after);
	free(r->www_auth);
	free(r->chunk_min);
	free(r->content_range);
	r->content_range = NULL;
	r->location = r->content_type = r->digest = r->link = NULL;
	r->range = r->retry_after = r->www_auth = r->chunk_min = NULL;
	r->content_length = -1;
}

void http_resp_release(struct http_resp *r)
{
	resp_clear_headers(r);
	free(r->url);
	r->url = NULL;
	buf_release(&r->errbody);
	r->status = 0;
}

struct xfer {
	struct reg_store *s;
	struct http_req *rq;
	struct http_resp *rs;
	uint64_t pos;       /* request body position */
	int follow_hop;     /* this response is a redirect to follow: discard body */
	/* idle detection: the last time a byte moved either way */
	curl_off_t last_dl, last_ul;
	struct timespec last_move;
	unsigned idle;      /* seconds */
	int idled;
	/* o.progress: the blob's size (uploads), where this response's body
	 * starts in the blob (a resumed download's 206) */
	uint64_t up_total;
	int dl_seen;
	uint64_t dl_base;
};

/* The first offset of a Content-Range value "bytes S-E/T", else 0. */
static uint64_t content_range_start(const char *cr)
{
	uint64_t v = 0;

	if (!cr || strncasecmp(cr, "bytes ", 6))
		return 0;
	for (cr += 6; *cr >= '0' && *cr <= '9' && v < UINT64_MAX / 10; cr++)
		v = v * 10 + (uint64_t)(*cr - '0');
	return v;
}

/*
 * o.progress, for blob bodies only: an upload from a file (a blob push;
 * manifests and small blobs come from memory) and a download into a sink
 * (a blob fetch).  The request's offsets make the count the blob's across
 * chunks and resumed downloads.
 */
static void report_progress(struct xfer *x, curl_off_t dltotal, curl_off_t dlnow,
			    curl_off_t ulnow)
{
	const struct reg_opts *o = &x->s->o;
	const struct http_req *rq = x->rq;
	const struct http_resp *rs = x->rs;

	if (rq->has_body && !rq->body_mem) {
		if (ulnow > 0)
			o->progress(o->progress_arg, rq->body_off + (uint64_t)ulnow,
				    x->up_total);
		return;
	}
	if (!rq->sink || dlnow <= 0 || rs->status < 200 || rs->status > 299)
		return;
	if (!x->dl_seen) {
		x->dl_seen = 1;
		x->dl_base = rs->status == 206 ? content_range_start(rs->content_range) : 0;
	}
	o->progress(o->progress_arg, x->dl_base + (uint64_t)dlnow,
		    dltotal > 0 ? x->dl_base + (uint64_t)dltotal : 0);
}

/*
 * Why not CURLOPT_LOW_SPEED_*: libcurl averages the speed over a window of
 * several seconds, so a stall after a burst is noticed late.  This fails a
 * transfer after exactly `idle` seconds with no byte sent or received.
 */
static int xferinfo_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow,
		       curl_off_t ultotal, curl_off_t ulnow)
{
	struct xfer *x = arg;
	struct timespec now;

	(void)ultotal;
	if (x->s->o.progress)
		report_progress(x, dltotal, dlnow, ulnow);
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (dlnow != x->last_dl || ulnow != x->last_ul || !x->last_move.tv_sec) {
		x->last_dl = dlnow;
		x->last_ul = ulnow;
		x->last_move = now;
		return 0;
	}
	if (now.tv_sec - x->last_move.tv_sec >= (time_t)x->idle) {
		x->idled = 1;
		return 1; /* abort */
	}
	return 0;
}

static int is_redirect(long st)
{
	return st == 301 || st == 302 || st == 303 || st == 307 || st == 308;
}

static void set_hdr(char **slot, const char *v, size_t n)
{
	free(*slot);
	*slot = xstrndup(v, n);
}

static size_t header_cb(char *p, size_t size, size_t nitems, void *arg)
{
	struct xfer *x = arg;
	struct http_resp *rs = x->rs;
	size_t n = size * nitems, klen;
	const char *colon, *v, *end;

	if (n >= 5 && !memcmp(p, "HTTP/", 5)) {
		/* a new response (after 100 Continue too): start over */
		const char *sp = memchr(p, ' ', n);

		resp_clear_headers(rs);
		rs->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		return n;
	}
	colon = memchr(p, ':', n);
	if (!colon)
		return n;
	klen = (size_t)(colon - p);
	v = colon + 1;
	end = p + n;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
		end--;
#define IS(name) (klen == sizeof(name) - 1 && !strncasecmp(p, name, klen))
	if (IS("location"))
		set_hdr(&rs->location, v, (size_t)(end - v));
	else if (IS("content-type"))
		set_hdr(&rs->content_type, v, (size_t)(end - v));
	else if (IS("docker-content-digest"))
		set_hdr(&rs->digest, v, (size_t)(end - v));
	else if (IS("range"))
		set_hdr(&rs->range, v, (size_t)(end - v));
	else if (IS("retry-after"))
		set_hdr(&rs->retry_after, v, (size_t)(end - v));
	else if (IS("content-range"))
		set_hdr(&rs->content_range, v, (size_t)(end - v));
	else if (IS("oci-chunk-min-length"))
		set_hdr(&rs->chunk_min, v, (size_t)(end - v));
	else if (IS("content-length"))
		rs->content_length = strtoll(v, NULL, 10);
	else if (IS("link") || IS("www-authenticate")) {
		char **slot = IS("link") ? &rs->link : &rs->www_auth;
		char *old = *slot;

		*slot = old ? xasprintf("%s, %.*s", old, (int)(end - v), v)
			    : xstrndup(v, (size_t)(end - v));
		free(old);
	}
#undef IS
	return n;
}

static size_t write_cb(char *p, size_t size, size_t nitems, void *arg)
{
	struct xfer *x = arg;
	struct http_resp *rs = x->rs;
	size_t n = size * nitems;

	if (x->follow_hop || (rs->status >= 300 && is_redirect(rs->status) &&
			      x->rq->follow))
		return n;
	if (rs->status < 200 || rs->status > 299) {
		/* error bodies are for messages: keep the start, drop the rest */
		size_t room = ERRBODY_MAX - rs->errbody.len;

		buf_add(&rs->errbody, p, n < room ? n : room);
		return n;
	}
	if (x->rq->sink) {
		if (x->rq->sink(x->rq->sink_arg, p, n)) {
			rs->sink_failed = 1;
			return 0; /* aborts the transfer */
		}
	} else if (x->rq->out) {
		if (buf_add(x->rq->out, p, n)) {
			rs->sink_failed = 1;
			return 0;
		}
	}
	rs->received += n;
	return n;
}

static size_t read_cb(char *p, size_t size, size_t nitems, void *arg)
{
	struct xfer *x = arg;
	struct http_req *rq = x->rq;
	size_t want = size * nitems;
	uint64_t left = rq->body_len - x->pos;
	ssize_t got;

	if (want > left)
		want = (size_t)left;
	if (!want)
		return 0;
	if (rq->body_stop && x->pos && rq->body_stop(rq->body_stop_arg))
		return 0; /* ends a chunked body here */
	if (rq->body_mem) {
		memcpy(p, (const char *)rq->body_mem + x->pos, want);
		got = (ssize_t)want;
	} else {
		do
			got = pread(rq->body_fd, p, want, (off_t)(rq->body_off + x->pos));
		while (got < 0 && errno == EINTR);
		if (got <= 0)
			return CURL_READFUNC_ABORT; /* the file shrank or failed */
	}
	x->pos += (uint64_t)got;
	x->rs->sent = x->pos;
	return (size_t)got;
}

static int seek_cb(void *arg, curl_off_t off, int origin)
{
	struct xfer *x = arg;

	if (origin != SEEK_SET || off < 0 || (uint64_t)off > x->rq->body_len)
		return CURL_SEEKFUNC_CANTSEEK;
	x->pos = (uint64_t)off;
	return CURL_SEEKFUNC_OK;
}

/* The options every request has: protocols, no redirects, timeouts, TLS. */
static void setup_common(const struct reg_opts *o, CURL *c, const char *url,
			 struct curl_slist *hdrs)
{
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "ctxpack/" CTXPACK_VERSION);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)o->connect_timeout);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	if (o->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
	if (o->insecure) {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	}
}

static void setup(struct reg_store *s, CURL *c, struct http_req *rq,
		  const char *url, struct curl_slist *hdrs, struct xfer *x,
		  struct http_resp *rs)
{
	curl_easy_reset(c);
	setup_common(&s->o, c, url, hdrs);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, rs->curl_err);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
	/* idle, not total, timeouts: a slow big transfer is fine, a stall is not */
	x->idle = s->o.idle_timeout;
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
	curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 256L * 1024);
#if LIBCURL_VERSION_NUM >= 0x073e00
	curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 1024L * 1024);
#endif
	if (!strcmp(rq->method, "HEAD")) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else if (rq->has_body) {
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(c, CURLOPT_READDATA, x);
		curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, seek_cb);
		curl_easy_setopt(c, CURLOPT_SEEKDATA, x);
		/* an unknown size: libcurl sends chunks on HTTP/1.1 by itself (a
		 * Transfer-Encoding header of ours would also chunk an HTTP/2 body) */
		curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE,
				 rq->body_chunked ? (curl_off_t)-1 : (curl_off_t)rq->body_len);
		if (strcmp(rq->method, "PUT"))
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
	} else if (strcmp(rq->method, "GET")) {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
	}
}

/* 1 when url is plain HTTP to a host that is not loopback (or cannot be
 * parsed): where a redirect may only go with --insecure. */
static int plain_remote(const char *url)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	int bad = 1;

	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
		bad = strcasecmp(scheme, "https") && !reg_host_is_loopback(host);
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return bad;
}

int http_perform(struct reg_store *s, CURL *c, struct http_req *rq,
		 struct http_resp *rs, struct err *e)
{
	struct curl_slist *hdrs = NULL, *h;
	char *url = xstrdup(rq->url);
	struct xfer x;
	int hops = 0, ret = 0;

	assert(!rq->body_stop || rq->body_chunked);
	http_resp_release(rs);
	http_resp_init(rs);
	for (;;) {
		int send_auth = rq->auth_header && rq->auth_origin &&
				reg_url_same_origin(url, rq->auth_origin);
		uint64_t left = reg_time_left(s);

		if (!left) {
			ret = reg_deadline_err(e, rq->method);
			break;
		}

		hdrs = NULL;
		for (h = rq->headers; h; h = h->next)
			hdrs = curl_slist_append(hdrs, h->data);
		if (send_auth)
			hdrs = curl_slist_append(hdrs, rq->auth_header);
		if (rq->has_body)
			hdrs = curl_slist_append(hdrs, "Expect:");
		memset(&x, 0, sizeof(x));
		x.s = s;
		x.rq = rq;
		x.rs = rs;
		if (s->o.progress && rq->has_body && !rq->body_mem) {
			/* the body is a slice of the blob's file */
			struct stat st;

			if (!fstat(rq->body_fd, &st) && st.st_size > 0)
				x.up_total = (uint64_t)st.st_size;
		}
		resp_clear_headers(rs);
		buf_reset(&rs->errbody);
		rs->status = 0;
		rs->curl_err[0] = '\0';
		rs->sent = 0;
		setup(s, c, rq, url, hdrs, &x, rs);
		if (left != UINT64_MAX)
			curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
					 (long)(left < LONG_MAX ? left : LONG_MAX));
		s->st.requests++;
		rs->cc = (int)curl_easy_perform(c);
		curl_slist_free_all(hdrs);
		hdrs = NULL;
		if (rs->cc != CURLE_OK) {
			if (rs->sink_failed) {
				if (rq->out && rq->out->max)
					ret = err_set(e, ERR_FAIL, "response larger than %zu bytes",
						      rq->out->max);
				else
					ret = err_set(e, ERR_FAIL, "cannot store the response body");
				break;
			}
			if (x.idled)
				snprintf(rs->curl_err, sizeof(rs->curl_err),
					 "no data for %u s (idle timeout)", x.idle);
			else if (s->deadline_ms && !reg_time_left(s))
				snprintf(rs->curl_err, sizeof(rs->curl_err),
					 "time limit reached (--timeout)");
			if (!rq->quiet)
				reg_log(s, "%s %s: %s", rq->method, url,
					rs->curl_err[0] ? rs->curl_err
							: curl_easy_strerror(rs->cc));
			ret = err_set(e, ERR_NET, "%s", rs->curl_err[0] ? rs->curl_err
							  : curl_easy_strerror(rs->cc));
			break;
		}
		if (!rq->quiet)
			reg_log(s, "%s %s -> %ld", rq->method, url, rs->status);
		if (rq->follow && is_redirect(rs->status) && rs->location &&
		    (!strcmp(rq->method, "GET") || !strcmp(rq->method, "HEAD"))) {
			char *next = reg_url_resolve(url, rs->location);

			if (!next) {
				ret = err_set(e, ERR_FAIL, "bad redirect Location '%s'", rs->location);
				break;
			}
			if (!strncasecmp(url, "https:", 6) && strncasecmp(next, "https:", 6) &&
			    !s->o.insecure) {
				free(next);
				ret = err_set(e, ERR_FAIL, "refusing a redirect from HTTPS to %s",
					      rs->location);
				break;
			}
			/* plain HTTP is for loopback: a loopback registry may not hand
			 * the client to a plain-HTTP host elsewhere */
			if (!s->o.insecure && plain_remote(next)) {
				free(next);
				ret = err_set(e, ERR_FAIL, "refusing a redirect to %s: plain HTTP is "
					      "only for localhost, 127.0.0.0/8 and ::1 (or with "
					      "--insecure)", rs->location);
				break;
			}
			if (++hops > MAX_REDIRECTS) {
				free(next);
				ret = err_set(e, ERR_FAIL, "too many redirects");
				break;
			}
			free(url);
			url = next;
			continue;
		}
		break;
	}
	free(rs->url);
	rs->url = url;
	return ret;
}

static int head_cancel_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow,
			  curl_off_t ultotal, curl_off_t ulnow)
{
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return atomic_load((const atomic_int *)arg) != 0;
}

long http_head_status(const struct reg_opts *o, const char *url,
		      const char *auth_header, atomic_int *cancel)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	long status = -1;

	if (!c)
		return -1;
	if (auth_header)
		hdrs = curl_slist_append(NULL, auth_header);
	setup_common(o, c, url, hdrs);
	curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)o->idle_timeout);
	if (cancel) {
		curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, head_cancel_cb);
		curl_easy_setopt(c, CURLOPT_XFERINFODATA, cancel);
	}
	if (curl_easy_perform(c) != CURLE_OK ||
	    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
		status = -1;
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	return status;
}

/* ---- pure helpers ---- */

char *reg_url_resolve(const char *base, const char *ref)
{
	CURLU *u = curl_url();
	char *got = NULL, *out = NULL;

	if (!u)
		return NULL;
	if (curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_URL, ref, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_URL, &got, 0) == CURLUE_OK)
		out = xstrdup(got);
	curl_free(got);
	curl_url_cleanup(u);
	return out;
}

static int origin_of(const char *url, char **scheme, char **host, char **port)
{
	CURLU *u = curl_url();
	int ok;

	*scheme = *host = *port = NULL;
	if (!u)
		return -1;
	ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	     curl_url_get(u, CURLUPART_SCHEME, scheme, 0) == CURLUE_OK &&
	     curl_url_get(u, CURLUPART_HOST, host, 0) == CURLUE_OK &&
	     curl_url_get(u, CURLUPART_PORT, port, CURLU_DEFAULT_PORT) == CURLUE_OK;
	curl_url_cleanup(u);
	return ok ? 0 : -1;
}

int reg_url_same_origin(const char *a, const char *b)
{
	char *s1, *h1, *p1, *s2, *h2, *p2;
	int same = 0;

	if (!origin_of(a, &s1, &h1, &p1) && !origin_of(b, &s2, &h2, &p2))
		same = !strcasecmp(s1, s2) && !strcasecmp(h1, h2) && !strcmp(p1, p2);
	else
		s2 = h2 = p2 = NULL;
	curl_free(s1);
	curl_free(h1);
	curl_free(p1);
	curl_free(s2);
	curl_free(h2);
	curl_free(p2);
	return same;
}

/* Does a rel= parameter value (possibly a space-separated list) say next? */
static int rel_has_next(const char *v, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t j;

		while (i < n && v[i] == ' ')
			i++;
		j = i;
		while (j < n && v[j] != ' ')
			j++;
		if (j - i == 4 && !strncasecmp(v + i, "next", 4))
			return 1;
		i = j;
	}
	return 0;
}

char *reg_link_next(const char *hdr)
{
	const char *p = hdr;

	while (p && *p) {
		const char *lt = strchr(p, '<'), *gt, *params, *end;

		if (!lt)
			return NULL;
		gt = strchr(lt, '>');
		if (!gt)
			return NULL;
		params = gt + 1;
		/* this link's parameters end at the next ',' outside quotes */
		end = params;
		{
			int q = 0;

			while (*end && (q || *end != ',')) {
				if (*end == '"')
					q = !q;
				end++;
			}
		}
		/* look for rel=next or rel="... next ..." */
		{
			const char *r = params;

			while (r < end) {
				while (r < end && (*r == ';' || *r == ' ' || *r == '\t'))
					r++;
				if ((size_t)(end - r) > 4 && !strncasecmp(r, "rel=", 4)) {
					const char *v = r + 4, *ve;

					if (*v == '"') {
						v++;
						ve = memchr(v, '"', (size_t)(end - v));
						if (!ve)
							ve = end;
					} else {
						ve = v;
						while (ve < end && *ve != ';' && *ve != ' ')
							ve++;
					}
					if (rel_has_next(v, (size_t)(ve - v)))
						return xstrndup(lt + 1, (size_t)(gt - lt - 1));
				}
				while (r < end && *r != ';')
					r++;
			}
		}
		p = *end ? end + 1 : end;
	}
	return NULL;
}

static const char b64chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *reg_b64_encode(const void *p, size_t n)
{
	const unsigned char *in = p;
	char *out = xmalloc(4 * ((n + 2) / 3) + 1), *o = out;
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		*o++ = b64chars[in[i] >> 2];
		*o++ = b64chars[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		*o++ = b64chars[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
		*o++ = b64chars[in[i + 2] & 63];
	}
	if (i < n) {
		*o++ = b64chars[in[i] >> 2];
		if (i + 1 < n) {
			*o++ = b64chars[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
			*o++ = b64chars[(in[i + 1] & 15) << 2];
		} else {
			*o++ = b64chars[(in[i] & 3) << 4];
			*o++ = '=';
		}
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

static int b64val(int c)
{
	const char *p;

	if (c == '-')
		return 62; /* tolerate the URL-safe alphabet */
	if (c == '_')
		return 63;
	p = c ? strchr(b64chars, c) : NULL;
	return p ? (int)(p - b64chars) : -1;
}

char *reg_b64_decode(const char *s, size_t *n)
{
	size_t len = strlen(s), i;
	char *out = xmalloc(len / 4 * 3 + 4);
	unsigned acc = 0;
	int bits = 0;
	size_t o = 0;

	for (i = 0; i < len; i++) {
		int v;

		if (s[i] == '=')
			break;
		if (isspace((unsigned char)s[i]))
			continue;
		v = b64val((unsigned char)s[i]);
		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	out[o] = '\0';
	if (n)
		*n = o;
	return out;
}

char *reg_url_escape(const char *s)
{
	struct buf b = BUF_INIT;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
			buf_addch(&b, c);
		else
			buf_addf(&b, "%%%02X", c);
	}
	return buf_detach(&b, NULL);
}
