/*
 * Internals of the registry client (remote*.c), beside reg_impl.h, which
 * declares what store.c calls (remote_new, remote_blob_*, ...).
 *
 *   remote.c           the connection: ping, authenticated requests, API
 *                      URLs, error messages
 *   remote_retry.c     the one retry policy of every request
 *   remote_blob.c      blob HEAD and verified, resumable downloads
 *   remote_upload.c    blob uploads: sessions, mounts, the upload loop
 *   remote_stream.c    the upload that streams while the file is hashed
 *   remote_manifest.c  manifests, tags, deletes
 */
#ifndef CTXPACK_REMOTE_INTERNAL_H
#define CTXPACK_REMOTE_INTERNAL_H

#include "auth.h"

struct reg_remote {
	char *host;      /* API host[:port] */
	char *repo;
	char *base;      /* "https://host" once pinged */
	int plain_ok;    /* plain HTTP allowed for this host */
	int pinged;
	CURL *c;
	struct reg_auth auth;
	unsigned seed;
	int chunks_refused; /* stream uploads from now on */
	int mono_refused;   /* no big monolithic PUTs from now on */
};

/* ---- remote_retry.c ---- */

/* 1 for the statuses worth another try: 408, 429, 5xx. */
int rm_retry_status(long status);

/* The tries of one request (or one transfer made of several), zeroed. */
struct rm_retry {
	unsigned fails;     /* failed tries since the last progress */
	unsigned tries;     /* failed tries in all */
	const char *verb;   /* in the log line; NULL: "retrying" */
};

enum { RM_RETRY, RM_DEADLINE, RM_TRIES, RM_TOO_LONG };

/*
 * After a try that failed in a way worth another (a network error when
 * net, else the answer rs: 408, 429, 5xx, or a status the caller recovers
 * from, as an upload's 404): decide.  progress: the try moved the transfer
 * on (a download cut after some bytes): the failures count from zero
 * again and there is no wait.  Returns
 *   RM_DEADLINE  a network failure with the store's deadline passed;
 *   RM_TRIES     o.max_tries failures in a row (or 1000 in all);
 *   RM_TOO_LONG  the server's Retry-After is over a minute;
 *   RM_RETRY     try again: counted in the stats, logged as
 *                "<fmt...>; retrying in N ms" and waited already
 *                (Retry-After of a 429/503, else 200 ms doubling to 3 s
 *                with jitter; never past the deadline).
 * rt->tries is then the number of failed tries, for the caller's message.
 */
int rm_retry(struct reg_store *s, struct rm_retry *rt, int net,
	     const struct http_resp *rs, int progress, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/* ---- remote.c ---- */

/* Error text from a registry body: "CODE: message[; CODE: message]". */
void rm_errors(const struct http_resp *rs, struct buf *out);
/* Record a registry failure "<context>: CODE: message" (or "HTTP nnn",
 * or what a 401 means) into e; returns its code (ERR_AUTH, ERR_NOTFOUND,
 * ERR_NET for a status worth retrying, else ERR_FAIL). */
int rm_fail(struct reg_store *s, const struct http_resp *rs, struct err *e,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* GET /v2/ once per store: pick https or (where allowed) http, read the
 * challenge.  0, or the error naming the host. */
int rm_ping(struct reg_store *s, struct err *e);

/* "repository:<repo>:<actions>", malloc'd. */
char *rm_scope(struct reg_remote *r, const char *actions);
/* "<base>/v2/<repo>/<fmt...>", malloc'd (after rm_ping). */
char *rm_url(struct reg_remote *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A request with nothing set but method and url (borrowed). */
void rm_req(struct http_req *rq, const char *method, const char *url);
/* The headers of a blob's bytes (free with curl_slist_free_all). */
struct curl_slist *rm_octets(void);

/*
 * One try of rq with credentials for scope (a space-separated list of
 * "repository:NAME:ACTIONS"); on a 401 the challenge is read again, the
 * token dropped and the request repeated once.  0 when a response
 * arrived (any status), ERR_NET when none did, another error else.
 */
int rm_send_once(struct reg_store *s, struct http_req *rq, struct http_resp *rs,
		 const char *scope, struct err *e);
/* rm_send_once under the retry policy (network errors, 408, 429, 5xx).
 * 0 when an answer came: the caller reports a status it does not want. */
int rm_send(struct reg_store *s, struct http_req *rq, struct http_resp *rs,
	    const char *scope, struct err *e);
/*
 * rm_send of rq (its method, body, out and follow set) to the repository's
 * API path <fmt...>, with a token for actions ("pull", "pull,push",
 * "delete"; or a whole scope, as upload_start's with a mount) and the
 * optional header line hdr; pings first.  rq->url and
 * rq->headers are the call's and cleared on return.
 */
int rm_api(struct reg_store *s, struct http_req *rq, struct http_resp *rs,
	   const char *actions, const char *hdr, struct err *e, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));
/* rm_api of a HEAD of <kind>/<ref> ("blobs", "manifests"), following
 * redirects. */
int rm_head(struct reg_store *s, struct http_resp *rs, const char *actions,
	    const char *hdr, const char *kind, const char *ref, struct err *e);

/* ---- remote_blob.c ---- */

/* HEAD a blob with a token for actions ("pull", or "pull,push" inside a
 * push so that one token serves the whole push): 1 there (*size its
 * size), 0 not, <0 error. */
int rm_blob_head(struct reg_store *s, const char *digest, uint64_t *size,
		 const char *actions, struct err *e);

/* ---- remote_upload.c ---- */

/* An upload session. */
struct upload {
	char *loc;      /* newest upload URL */
	uint64_t off;   /* bytes the registry holds */
};

void upload_reset(struct upload *u);
/* Take a Location from a response, resolved against the request URL. */
int upload_take_location(struct upload *u, const struct http_resp *rs,
			 struct err *e);
/* DELETE an abandoned upload session; failures are ignored. */
void upload_cancel(struct reg_store *s, struct upload *u, const char *scope);
/* POST a new upload session (or a mount with mount_from): 0, or 1 when
 * mounted; *chunk grows to the registry's OCI-Chunk-Min-Length. */
int upload_start(struct reg_store *s, struct upload *u, const char *digest,
		 const char *mount_from, const char *scope, uint64_t *chunk,
		 struct err *e);
/* Parse a Range value "0-N" or "bytes=0-N": the next offset (N+1). */
int upload_range_end(const char *v, uint64_t *next);

/* ---- remote_stream.c ---- */

/*
 * The upload while the digest is still being computed (see the file):
 * 1 when the registry has the blob (the session cancelled); 0 with u the
 * session (u->loc NULL: none, start one) holding u->off bytes; <0 error.
 * digest gets the digest, *sent the bytes sent.
 */
int upload_while_hashing(struct reg_store *s, struct upload *u, int fd,
			 uint64_t size, int whole, struct reg_hash *h,
			 const char *scope, uint64_t *chunk, char *digest,
			 uint64_t *sent, struct err *e);

#endif
