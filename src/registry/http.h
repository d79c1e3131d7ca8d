/*
 * http: one HTTP request over a reused libcurl easy handle (internal to
 * src/registry).  Redirects are followed by hand, for GET and HEAD only,
 * and the Authorization header goes only to the origin it belongs to.
 */
#ifndef CTXPACK_REG_HTTP_H
#define CTXPACK_REG_HTTP_H

#include <curl/curl.h>
#include <stdatomic.h>
#include <stdint.h>

#include "reg_impl.h"

struct http_req {
	const char *method;          /* GET HEAD PUT PATCH POST DELETE */
	const char *url;
	struct curl_slist *headers;  /* extra request headers (borrowed) */
	const char *auth_header;     /* "Authorization: ..." or NULL */
	const char *auth_origin;     /* URL whose origin may receive it */
	/* request body: from body_fd at body_off, or body_mem */
	int has_body;
	int body_fd;
	uint64_t body_off;
	uint64_t body_len;
	const void *body_mem;
	/* a body of unknown length: chunked encoding, ending at body_len or,
	 * once a byte went out, as soon as body_stop(body_stop_arg) says so */
	int body_chunked;
	int (*body_stop)(void *arg);
	void *body_stop_arg;
	/* 2xx response body: into out (its max caps it) or into sink */
	struct buf *out;
	int (*sink)(void *arg, const char *p, size_t n); /* 0 ok, else stop */
	void *sink_arg;
	int follow;                  /* follow redirects (GET/HEAD only) */
	int quiet;                   /* no log line */
};

struct http_resp {
	long status;
	char *url;                   /* the URL that answered (after redirects) */
	char *location;
	char *content_type;
	char *digest;                /* Docker-Content-Digest */
	char *link;
	char *range;
	char *retry_after;
	char *www_auth;              /* all WWW-Authenticate values, ", "-joined */
	char *chunk_min;             /* OCI-Chunk-Min-Length */
	char *content_range;
	int64_t content_length;      /* -1 when absent */
	struct buf errbody;          /* non-2xx body, capped */
	int cc;                      /* CURLcode of the transfer */
	char curl_err[CURL_ERROR_SIZE];
	uint64_t sent;               /* request body bytes handed to curl */
	uint64_t received;           /* 2xx body bytes delivered */
	int sink_failed;
};

void http_resp_init(struct http_resp *r);
void http_resp_release(struct http_resp *r);

/*
 * Perform rq.  Returns 0 when an HTTP response arrived (any status; see
 * rs->status), ERR_NET when the transfer failed (rs->cc, rs->curl_err), or
 * another error (bad redirect, sink failure).  rs is reset first.
 */
int http_perform(struct reg_store *s, CURL *c, struct http_req *rq,
		 struct http_resp *rs, struct err *e);

/*
 * A HEAD on a connection of its own, safe from any thread: no redirects
 * followed, nothing logged or counted, o only read.  The status, or -1
 * when no answer came (or *cancel, when given, became nonzero meanwhile).
 */
long http_head_status(const struct reg_opts *o, const char *url,
		      const char *auth_header, atomic_int *cancel);

/* base64 (standard alphabet, padded), malloc'd. */
char *reg_b64_encode(const void *p, size_t n);
/* Decode into a malloc'd NUL-terminated buffer; NULL when invalid. */
char *reg_b64_decode(const char *s, size_t *n);
/* Percent-encode a query value, malloc'd. */
char *reg_url_escape(const char *s);

#endif
