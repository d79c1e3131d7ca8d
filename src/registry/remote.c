/*
 * The OCI distribution API over libcurl: ping and auth, blobs (HEAD skip,
 * mount, monolithic / chunked / streamed uploads with resume, verified and
 * resumable downloads), manifests, tags with Link pagination, deletes.
 *
 * Retries: network errors, 408, 429 (Retry-After) and 5xx are retried with
 * exponential backoff (200 ms doubling to 3 s, with jitter) up to
 * o.max_tries; 4xx other than those are final.  A 401 re-authenticates once.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"

#define TAGS_PAGE 1000
#define TAGS_BODY_MAX (16u << 20)
#define RETRY_AFTER_MAX 60
#define MAX_PAGES 100000

/* Docker's types too: images pushed by docker (the bases `ctxpack image`
 * reads) have them; the cache's artifacts are OCI manifests either way. */
static const char accept_manifest[] =
	"Accept: " REG_MT_MANIFEST ", " REG_MT_INDEX ", " REG_MT_DOCKER_MANIFEST ", "
	REG_MT_DOCKER_LIST;

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

struct reg_remote *remote_new(struct reg_store *s)
{
	struct reg_remote *r = xcalloc(1, sizeof(*r));
	struct timespec ts;

	r->host = xstrdup(reg_api_host(s->ref.host));
	r->repo = xstrdup(s->ref.repo);
	r->plain_ok = s->o.insecure || reg_host_is_loopback(r->host);
	auth_init(&r->auth, s->ref.host, s->ref.repo);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	r->seed = (unsigned)ts.tv_nsec ^ (unsigned)getpid();
	return r;
}

void remote_free(struct reg_remote *r)
{
	if (!r)
		return;
	if (r->c)
		curl_easy_cleanup(r->c);
	auth_release(&r->auth);
	free(r->host);
	free(r->repo);
	free(r->base);
	free(r);
}

/* Wait ms before a retry, never past the store's deadline (the request
 * after it then fails at once with the deadline's message). */
static void sleep_ms_in(struct reg_store *s, long ms)
{
	uint64_t left = reg_time_left(s);

	sleep_ms((uint64_t)ms > left ? (long)left : ms);
}

static int retry_status(long st)
{
	return st == 408 || st == 429 || (st >= 500 && st <= 599);
}

/*
 * How long to wait before try number `tries` + 1: Retry-After on 429/503
 * when given (seconds or an HTTP date), else exponential backoff with
 * jitter.  -1 when the server asks for more than RETRY_AFTER_MAX.
 */
static long backoff_ms(struct reg_remote *r, unsigned tries,
		       const struct http_resp *rs)
{
	long ms = 200;
	unsigned i;

	if (rs && rs->retry_after && (rs->status == 429 || rs->status == 503)) {
		uint64_t secs;
		time_t when;

		if (!parse_u64(rs->retry_after, &secs)) {
			if (secs > RETRY_AFTER_MAX)
				return -1;
			return (long)secs * 1000;
		}
		when = curl_getdate(rs->retry_after, NULL);
		if (when > 0) {
			time_t now = time(NULL);

			if (when - now > RETRY_AFTER_MAX)
				return -1;
			return when > now ? (long)(when - now) * 1000 : 0;
		}
	}
	for (i = 1; i < tries && ms < 3000; i++)
		ms *= 2;
	if (ms > 3000)
		ms = 3000;
	return ms + (long)(rand_r(&r->seed) % (unsigned)(ms / 4 + 1));
}

/* Error text from a registry body: "CODE: message[; CODE: message]". */
static void registry_errors(const struct http_resp *rs, struct buf *out)
{
	json_t *root, *errs, *it;
	size_t i;

	root = json_loadb(rs->errbody.data, rs->errbody.len, 0, NULL);
	errs = json_object_get(root, "errors");
	if (json_is_array(errs)) {
		json_array_foreach(errs, i, it) {
			const char *code = json_string_value(json_object_get(it, "code"));
			const char *msg = json_string_value(json_object_get(it, "message"));
			json_t *det = json_object_get(it, "detail");

			if (i > 2)
				break;
			buf_addf(out, "%s%s%s%s", i ? "; " : "", code ? code : "",
				 code && msg ? ": " : "", msg ? msg : "");
			if (json_is_string(det) && json_string_length(det) < 200)
				buf_addf(out, " (%s)", json_string_value(det));
		}
	}
	json_decref(root);
	if (!out->len && rs->errbody.len && rs->errbody.len < 300) {
		/* a short plain-text body (proxies, CDNs) */
		size_t k;

		for (k = 0; k < rs->errbody.len && out->len < 200; k++) {
			unsigned char ch = (unsigned char)rs->errbody.data[k];

			buf_addch(out, ch >= 0x20 && ch < 0x7f ? ch : ' ');
		}
		while (out->len && out->data[out->len - 1] == ' ')
			buf_setlen(out, out->len - 1);
	}
}

/* Record a registry failure: "<context>: CODE: message" or "HTTP nnn". */
static int http_fail(struct reg_store *s, const struct http_resp *rs,
		     struct err *e, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int http_fail(struct reg_store *s, const struct http_resp *rs,
		     struct err *e, const char *fmt, ...)
{
	struct reg_remote *r = s->rm;
	struct buf msg = BUF_INIT, ctx = BUF_INIT;
	int code;
	va_list ap;

	va_start(ap, fmt);
	buf_vaddf(&ctx, fmt, ap);
	va_end(ap);
	registry_errors(rs, &msg);
	if (rs->status == 401 || rs->status == 403)
		code = ERR_AUTH;
	else if (rs->status == 404)
		code = ERR_NOTFOUND;
	else if (retry_status(rs->status))
		code = ERR_NET;
	else
		code = ERR_FAIL;
	if (rs->status == 401) {
		if (r->auth.cred_loaded && r->auth.have_cred)
			err_set(e, code, "%s: the credentials for %s were refused (401%s%s)",
				ctx.data, s->ref.host, msg.len ? " " : "", msg.data);
		else
			err_set(e, code, "%s: authentication required and no credentials for "
				"%s (docker login, or auths in $DOCKER_CONFIG/config.json) "
				"(401%s%s)", ctx.data, s->ref.host, msg.len ? " " : "", msg.data);
	} else if (msg.len) {
		err_set(e, code, "%s: %s%s", ctx.data, msg.data,
			rs->status == 429 ? " (rate limited)" : "");
	} else {
		err_set(e, code, "%s: HTTP %ld", ctx.data, rs->status);
	}
	buf_release(&msg);
	buf_release(&ctx);
	return code;
}

static int tls_handshake_error(int cc)
{
	return cc == CURLE_SSL_CONNECT_ERROR || cc == CURLE_GOT_NOTHING ||
	       cc == CURLE_RECV_ERROR || cc == CURLE_SEND_ERROR;
}

/* GET /v2/: pick https or (where allowed) http, and read the challenge. */
static int ensure_ping(struct reg_store *s, struct err *e)
{
	struct reg_remote *r = s->rm;
	struct http_resp rs;
	struct http_req rq;
	const char *schemes[2] = {"https", "http"};
	/* loopback: plain HTTP first, which saves loading the CA bundle; a TLS
	 * server answers it with a 400 or a dropped connection, and then
	 * HTTPS is tried (the ping carries no credentials either way).  A
	 * timeout (--timeout, or the idle timeout, which aborts from the
	 * progress callback) is no such answer but a slow server or a busy
	 * machine: retried as any failed ping */
	int loop = reg_host_is_loopback(r->host);
	unsigned tries = 0;
	int si = 0, ret = 0;
	char *url = NULL;

	if (r->pinged)
		return 0;
	if (!r->c && !(r->c = curl_easy_init()))
		return err_set(e, ERR_FAIL, "cannot initialise libcurl");
	if (loop) {
		schemes[0] = "http";
		schemes[1] = "https";
	}
	http_resp_init(&rs);
	for (;;) {
		struct err e2 = ERR_INIT;

		free(url);
		url = xasprintf("%s://%s/v2/", schemes[si], r->host);
		memset(&rq, 0, sizeof(rq));
		rq.method = "GET";
		rq.url = url;
		ret = http_perform(s, r->c, &rq, &rs, &e2);
		if (si == 0 && loop &&
		    ((ret == ERR_NET && rs.cc != CURLE_COULDNT_CONNECT &&
		      rs.cc != CURLE_OPERATION_TIMEDOUT &&
		      rs.cc != CURLE_ABORTED_BY_CALLBACK) ||
		     (!ret && rs.status == 400))) {
			reg_log(s, "%s does not speak plain HTTP; using HTTPS", r->host);
			si = 1;
			continue;
		}
		if (ret == ERR_NET && si == 0 && r->plain_ok && tls_handshake_error(rs.cc)) {
			reg_log(s, "%s does not speak TLS; using plain HTTP", r->host);
			si = 1;
			continue;
		}
		if (ret || retry_status(rs.status)) {
			long ms = backoff_ms(r, tries + 1, &rs);
			/* nothing listening or no such host: say so now, so that a
			 * cache restore can fail open without waiting */
			int hopeless = ret && (rs.cc == CURLE_COULDNT_CONNECT ||
					       rs.cc == CURLE_COULDNT_RESOLVE_HOST ||
					       rs.cc == CURLE_COULDNT_RESOLVE_PROXY ||
					       rs.cc == CURLE_PEER_FAILED_VERIFICATION ||
					       rs.cc == CURLE_SSL_CACERT_BADFILE ||
					       rs.cc == CURLE_SSL_CONNECT_ERROR);

			if (++tries < s->o.max_tries && ms >= 0 && !hopeless) {
				s->st.retries++;
				reg_log(s, "GET %s: %s; retrying in %ld ms", url,
					ret ? e2.msg : "server error", ms);
				sleep_ms_in(s, ms);
				continue;
			}
			if (ret) {
				if (!strcmp(schemes[si], "https") && !r->plain_ok &&
				    (rs.cc == CURLE_SSL_CONNECT_ERROR))
					ret = err_set(e, ERR_NET, "cannot reach %s over TLS: %s "
						      "(plain HTTP only for localhost, 127.0.0.0/8 "
						      "and ::1, or with --insecure)",
						      r->host, e2.msg);
				else if (rs.cc == CURLE_PEER_FAILED_VERIFICATION)
					ret = err_set(e, ERR_NET, "cannot reach %s: %s (a private CA? "
						      "use --ca-file FILE)", r->host, e2.msg);
				else
					ret = err_set(e, e2.code, "cannot reach %s: %s", r->host,
						      e2.msg);
			} else {
				ret = http_fail(s, &rs, e, "registry %s", r->host);
			}
			goto out;
		}
		break;
	}
	if (rs.status == 401) {
		struct reg_challenge ch;

		if (reg_challenge_parse(rs.www_auth, &ch)) {
			ret = err_set(e, ERR_AUTH, "registry %s wants an authentication scheme "
				      "other than Basic or Bearer", r->host);
			goto out;
		}
		auth_set_challenge(&r->auth, &ch);
		reg_log(s, "%s uses %s auth", r->host,
			ch.scheme == REG_AUTH_BEARER ? "bearer token" : "basic");
		reg_challenge_release(&ch);
	} else if (rs.status != 200) {
		ret = http_fail(s, &rs, e, "%s is not an OCI registry (GET /v2/)", r->host);
		goto out;
	}
	r->base = xasprintf("%s://%s", schemes[si], r->host);
	r->pinged = 1;
out:
	free(url);
	http_resp_release(&rs);
	return ret;
}

/*
 * One request with credentials for scope; on a 401 the challenge is read
 * again, the token dropped and the request repeated once.  0 when a
 * response arrived (any status).
 */
static int rq_auth(struct reg_store *s, struct http_req *rq,
		   struct http_resp *rs, const char *scope, struct err *e)
{
	struct reg_remote *r = s->rm;
	char *sc, *hdr = NULL;
	int ret, again = 0;

	ret = ensure_ping(s, e);
	if (ret)
		return ret;
	sc = xstrdup(scope);
	for (;;) {
		int sent_auth;

		ret = auth_header(s, &r->auth, r->c, sc, &hdr, e);
		if (ret)
			break;
		sent_auth = hdr != NULL;
		rq->auth_header = hdr;
		rq->auth_origin = r->base;
		ret = http_perform(s, r->c, rq, rs, e);
		rq->auth_header = NULL;
		if (hdr) {
			memset(hdr, 0, strlen(hdr));
			free(hdr);
			hdr = NULL;
		}
		if (ret || rs->status != 401 || again++)
			break;
		{
			struct reg_challenge ch;

			if (!reg_challenge_parse(rs->www_auth, &ch)) {
				auth_set_challenge(&r->auth, &ch);
				if (ch.scope && !strstr(sc, ch.scope)) {
					char *m = xasprintf("%s %s", sc, ch.scope);

					free(sc);
					sc = m;
				}
				reg_challenge_release(&ch);
			}
		}
		auth_drop_token(&r->auth, sc);
		if (r->auth.scheme == REG_AUTH_BASIC) {
			int have = auth_load_cred(&r->auth, e);

			if (have < 0) {
				ret = have;
				break;
			}
			/* the same password again would not help */
			if (!have || sent_auth)
				break;
		}
		reg_log(s, "401 from %s: authenticating again", r->host);
	}
	free(sc);
	return ret;
}

/* rq_auth with retries on network errors, 408, 429 and 5xx. */
static int rq_retry(struct reg_store *s, struct http_req *rq,
		    struct http_resp *rs, const char *scope, struct err *e)
{
	unsigned tries = 0;

	for (;;) {
		struct err e2 = ERR_INIT;
		long ms;
		int ret;

		if (rq->out)
			buf_reset(rq->out);
		ret = rq_auth(s, rq, rs, scope, &e2);
		if (!ret && !retry_status(rs->status))
			return 0;
		if (ret && (ret != ERR_NET || !reg_time_left(s)))
			return err_set(e, e2.code, "%s", e2.msg);
		tries++;
		ms = backoff_ms(s->rm, tries, ret ? NULL : rs);
		if (tries >= s->o.max_tries || ms < 0) {
			if (ret)
				return err_set(e, e2.code, "%s (after %u tries)", e2.msg, tries);
			return 0; /* the caller reports the status */
		}
		s->st.retries++;
		reg_log(s, "%s %s: %s; retrying in %ld ms", rq->method, rq->url,
			ret ? e2.msg : "server error", ms);
		sleep_ms_in(s, ms);
	}
}

static char *scope_for(struct reg_remote *r, const char *actions)
{
	return xasprintf("repository:%s:%s", r->repo, actions);
}

static char *api_url(struct reg_remote *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static char *api_url(struct reg_remote *r, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;

	buf_addf(&b, "%s/v2/%s/", r->base, r->repo);
	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	return buf_detach(&b, NULL);
}

/* ---- blobs ---- */

/* HEAD a blob with a token for actions ("pull", or "pull,push" inside a
 * push so that one token serves the whole push). */
static int blob_head(struct reg_store *s, const char *digest, uint64_t *size,
		     const char *actions, struct err *e)
{
	struct reg_remote *r = s->rm;
	struct http_req rq;
	struct http_resp rs;
	char *url = NULL, *scope = scope_for(r, actions);
	int ret;

	http_resp_init(&rs);
	ret = ensure_ping(s, e);
	if (ret)
		goto out;
	url = api_url(r, "blobs/%s", digest);
	memset(&rq, 0, sizeof(rq));
	rq.method = "HEAD";
	rq.url = url;
	rq.follow = 1;
	ret = rq_retry(s, &rq, &rs, scope, e);
	if (ret)
		goto out;
	if (rs.status == 200) {
		if (size)
			*size = rs.content_length >= 0 ? (uint64_t)rs.content_length : 0;
		ret = 1;
	} else if (rs.status == 404) {
		ret = 0;
	} else {
		ret = http_fail(s, &rs, e, "blob %s", digest);
	}
out:
	free(url);
	free(scope);
	http_resp_release(&rs);
	return ret;
}

int remote_blob_exists(struct reg_store *s, const char *digest, uint64_t *size,
		       struct err *e)
{
	return blob_head(s, digest, size, "pull", e);
}

static char *with_digest(const char *loc, const char *digest)
{
	char *d = reg_url_escape(digest);
	char *u = xasprintf("%s%sdigest=%s", loc, strchr(loc, '?') ? "&" : "?", d);

	free(d);
	return u;
}

/* Parse a Range value "0-N" or "bytes=0-N": the next offset (N+1). */
static int parse_range_end(const char *v, uint64_t *next)
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

struct upload {
	char *loc;      /* newest upload URL */
	uint64_t off;   /* bytes the registry holds */
};

static void upload_reset(struct upload *u)
{
	free(u->loc);
	u->loc = NULL;
	u->off = 0;
}

/* Take a Location from a response, resolved against the request URL. */
static int take_location(struct upload *u, const struct http_resp *rs,
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

/* DELETE an abandoned upload session; failures are ignored. */
static void upload_cancel(struct reg_store *s, struct upload *u, const char *scope)
{
	struct http_req rq;
	struct http_resp rs;
	struct err e2 = ERR_INIT;

	if (!u->loc)
		return;
	http_resp_init(&rs);
	memset(&rq, 0, sizeof(rq));
	rq.method = "DELETE";
	rq.url = u->loc;
	rq_auth(s, &rq, &rs, scope, &e2);
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
	memset(&rq, 0, sizeof(rq));
	rq.method = "GET";
	rq.url = u->loc;
	ret = rq_auth(s, &rq, &rs, scope, e);
	if (ret)
		goto out;
	if (rs.status == 204 || rs.status == 202 || rs.status == 200) {
		if (rs.location)
			take_location(u, &rs, e);
		if (!parse_range_end(rs.range, &next))
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
		ret = http_fail(s, &rs, e, "upload status");
	}
out:
	http_resp_release(&rs);
	return ret;
}

/* POST a new upload session (or a mount). 0, or 1 when mounted. */
static int upload_start(struct reg_store *s, struct upload *u, const char *digest,
			const char *mount_from, const char *scope,
			uint64_t *chunk, struct err *e)
{
	struct reg_remote *r = s->rm;
	struct http_req rq;
	struct http_resp rs;
	char *url;
	int ret;

	upload_reset(u);
	http_resp_init(&rs);
	if (mount_from) {
		char *d = reg_url_escape(digest), *f = reg_url_escape(mount_from);

		url = api_url(r, "blobs/uploads/?mount=%s&from=%s", d, f);
		free(d);
		free(f);
	} else {
		url = api_url(r, "blobs/uploads/");
	}
	memset(&rq, 0, sizeof(rq));
	rq.method = "POST";
	rq.url = url;
	rq.has_body = 1;
	rq.body_mem = "";
	rq.body_len = 0;
	ret = rq_retry(s, &rq, &rs, scope, e);
	if (ret)
		goto out;
	if (mount_from && rs.status == 201) {
		ret = 1;
		goto out;
	}
	if (rs.status != 202) {
		ret = http_fail(s, &rs, e, "start upload of %s", digest);
		goto out;
	}
	ret = take_location(u, &rs, e);
	if (!ret && rs.chunk_min) {
		uint64_t min;

		if (!parse_u64(rs.chunk_min, &min) && min > *chunk && min <= (256u << 20))
			*chunk = min;
	}
out:
	free(url);
	http_resp_release(&rs);
	return ret;
}

/*
 * While a file streams up before its digest is known: a HEAD for the blob
 * as soon as the hash is done, from a thread and a connection of its own,
 * so that the stream need not stop to ask.  It only says whether to stop
 * streaming: the blob is probably there (200, or a redirect to where it
 * is stored); the HEAD in the main thread afterwards decides.
 */
enum { PROBE_WAITING, PROBE_THERE, PROBE_NOT_THERE };

struct probe {
	pthread_t th;
	int started;
	int stop_at_hash;   /* end the stream when the hash is done */
	struct reg_hash *h;
	const struct reg_opts *o;
	char *prefix;       /* "<base>/v2/<repo>/blobs/" */
	char *auth;         /* "Authorization: ..." or NULL */
	char *url;          /* the HEAD's, once sent */
	long status;        /* -1 when none came */
	atomic_int state;
	atomic_int cancel;  /* the stream is over: no need to ask any more */
};

static void *probe_thread(void *arg)
{
	struct probe *p = arg;
	char dg[REG_DIGEST_SIZE];
	struct err e = ERR_INIT;
	long st = -1;

	if (!reg_hash_wait(p->h, dg, &e) && !atomic_load(&p->cancel)) {
		p->url = xasprintf("%s%s", p->prefix, dg);
		st = http_head_status(p->o, p->url, p->auth, &p->cancel);
	}
	p->status = st;
	atomic_store(&p->state, st == 200 || st == 301 || st == 302 || st == 303 ||
				st == 307 || st == 308 ? PROBE_THERE : PROBE_NOT_THERE);
	return NULL;
}

/* body_stop of the stream: the blob is probably there, or the digest is
 * known and the stream is to end then (or there is no probe) */
static int stream_stop(void *arg)
{
	struct probe *p = arg;

	if ((p->stop_at_hash || !p->started) && reg_hash_done(p->h))
		return 1;
	return p->started && atomic_load(&p->state) == PROBE_THERE;
}

/* Start the probe (best effort: p->started says whether it runs). */
static void probe_start(struct reg_store *s, struct probe *p, struct reg_hash *h,
			const char *scope)
{
	struct reg_remote *r = s->rm;
	struct err e2 = ERR_INIT;

	memset(p, 0, sizeof(*p));
	p->h = h;
	p->o = &s->o;
	p->status = -1;
	atomic_init(&p->state, PROBE_WAITING);
	atomic_init(&p->cancel, 0);
	if (auth_header(s, &r->auth, r->c, scope, &p->auth, &e2))
		return;
	p->prefix = api_url(r, "blobs/");
	p->started = !pthread_create(&p->th, NULL, probe_thread, p);
}

/* Stop the probe (it waits for the hash, not for an answer) and log what
 * it did. */
static void probe_end(struct reg_store *s, struct probe *p)
{
	if (p->started) {
		atomic_store(&p->cancel, 1);
		pthread_join(p->th, NULL);
		if (p->url) {
			s->st.requests++;
			if (p->status >= 0)
				reg_log(s, "HEAD %s -> %ld (while streaming)", p->url,
					p->status);
			else
				reg_log(s, "HEAD %s: no answer while streaming", p->url);
		}
	}
	if (p->auth) {
		memset(p->auth, 0, strlen(p->auth));
		free(p->auth);
	}
	free(p->prefix);
	free(p->url);
	memset(p, 0, sizeof(*p));
}

/*
 * The upload while the digest is still being computed: open the session
 * and, for a file of o.overlap_min bytes or more, stream the file into it
 * (one PATCH, chunked, no Content-Range: what docker push does) while a
 * probe HEADs the blob once the hash is done.  The stream ends early when
 * the probe finds the blob (then the HEAD here decides), and, when the
 * file is to go in chunks (!whole), as soon as the hash is done.  1 when
 * the registry has the blob (the session cancelled); 0 with u the session
 * (u->loc NULL: none, start one) holding u->off bytes; <0 error.  digest
 * gets the digest, *sent the bytes sent.
 *
 * Why not hash first: hashing 256 MiB takes about a fifth of the upload on
 * loopback, all of it on the critical path.  Why not end the stream when
 * the hash ends: distribution answers a PATCH only after it has written
 * and fsync'ed what it got, a pause in the middle of the upload that the
 * probe avoids.  Why end it all the same for chunks: so that a cut costs
 * at most a chunk once the hash is done, as it would have.
 */
static int upload_while_hashing(struct reg_store *s, struct upload *u, int fd,
				uint64_t size, int whole, struct reg_hash *h,
				const char *scope, uint64_t *chunk, char *digest,
				uint64_t *sent, struct err *e)
{
	struct http_req rq;
	struct http_resp rs;
	struct curl_slist *hdrs = NULL;
	struct err e2 = ERR_INIT;
	struct probe p;
	uint64_t next;
	int ret;

	http_resp_init(&rs);
	memset(&p, 0, sizeof(p));
	if (upload_start(s, u, "(being hashed)", NULL, scope, chunk, &e2)) {
		/* the upload after the hash opens one again, and reports */
		reg_log(s, "cannot open an upload session ahead: %s", e2.msg);
		upload_reset(u);
	} else if (size >= s->o.overlap_min && !reg_hash_done(h)) {
		probe_start(s, &p, h, scope);
		p.stop_at_hash = !whole;
		hdrs = curl_slist_append(NULL, "Content-Type: application/octet-stream");
		memset(&rq, 0, sizeof(rq));
		rq.method = "PATCH";
		rq.url = u->loc;
		rq.headers = hdrs;
		rq.has_body = 1;
		rq.body_fd = fd;
		rq.body_len = size;
		rq.body_chunked = 1;
		rq.body_stop = stream_stop;
		rq.body_stop_arg = &p;
		ret = rq_auth(s, &rq, &rs, scope, &e2);
		*sent += rs.sent;
		s->st.blob_bytes_sent += rs.sent;
		probe_end(s, &p);
		if (!ret && rs.status == 202 && rs.sent &&
		    (parse_range_end(rs.range, &next) || next == rs.sent))
			ret = take_location(u, &rs, &e2);
		else if (!ret)
			ret = rs.status == 202 ? err_set(&e2, ERR_FAIL, "Range %s after %llu bytes",
							 rs.range ? rs.range : "none",
							 (unsigned long long)rs.sent)
					       : http_fail(s, &rs, &e2, "PATCH");
		if (!ret) {
			u->off = rs.sent;
			reg_log(s, "%llu bytes streamed while hashing",
				(unsigned long long)u->off);
		} else {
			reg_log(s, "streaming while hashing failed (%s); uploading after "
				"the hash", e2.msg);
			upload_cancel(s, u, scope);
		}
	}
	ret = reg_hash_wait(h, digest, e);
	if (ret || (u->loc && u->off == size))
		goto out; /* on error the caller cancels the session */
	ret = blob_head(s, digest, NULL, "pull,push", e);
	if (ret == 1)
		upload_cancel(s, u, scope);
out:
	curl_slist_free_all(hdrs);
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
	unsigned fails = 0, restarts = 0;
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
		ret = ensure_ping(s, e);
		if (ret)
			goto out;
		scope = scope_for(r, "pull,push");
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
		ret = blob_head(s, digest, NULL, "pull,push", e);
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
		scope = scope_for(r, "pull,push");
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
		long ms;

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
		hdrs = curl_slist_append(NULL, "Content-Type: application/octet-stream");
		memset(&rq, 0, sizeof(rq));
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
		ret = rq_auth(s, &rq, &rs, scope, &e2);
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
			fails = 0;
			if ((ret = take_location(&u, &rs, e)))
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
			ret = http_fail(s, &rs, e, "upload of %s", digest);
			goto out;
		}
		if (!net && !strcmp(rq.method, "PATCH") && !stream &&
		    rs.status != 404 && rs.status != 416 && !retry_status(rs.status)) {
			/* the registry refuses chunks: one streamed PATCH instead */
			struct buf m = BUF_INIT;

			registry_errors(&rs, &m);
			reg_log(s, "chunked upload refused (HTTP %ld %s); streaming instead",
				rs.status, m.data);
			buf_release(&m);
			r->chunks_refused = 1;
			stream = 1;
			upload_cancel(s, &u, scope);
			continue;
		}
		if (!net && mono && !retry_status(rs.status) && rs.status != 404 &&
		    size > chunk) {
			/* the registry refuses one big PUT: chunks (or a stream) */
			struct buf m = BUF_INIT;

			registry_errors(&rs, &m);
			reg_log(s, "monolithic upload refused (HTTP %ld %s); uploading in chunks",
				rs.status, m.data);
			buf_release(&m);
			r->mono_refused = 1;
			mono = 0;
			stream = r->chunks_refused;
			upload_cancel(s, &u, scope);
			continue;
		}
		if (!net && !retry_status(rs.status) && rs.status != 404 && rs.status != 416) {
			ret = http_fail(s, &rs, e, "upload of %s", digest);
			goto out;
		}
		/* a dropped connection, 5xx, 429, 404 or 416: find out where we are */
		if (++fails >= s->o.max_tries) {
			if (net)
				ret = err_set(e, ERR_NET, "upload of %s: %s (after %u tries)",
					      digest, e2.msg, fails);
			else
				ret = http_fail(s, &rs, e, "upload of %s (after %u tries)",
						digest, fails);
			goto out;
		}
		s->st.retries++;
		ms = backoff_ms(r, fails, net ? NULL : &rs);
		if (ms < 0) {
			ret = http_fail(s, &rs, e, "upload of %s", digest);
			goto out;
		}
		reg_log(s, "%s of %s failed (%s); retrying in %ld ms", rq.method, digest,
			net ? e2.msg : "server error", ms);
		sleep_ms_in(s, ms);
		if (!strcmp(rq.method, "PUT")) {
			/* maybe it went through before the connection dropped */
			struct err e3 = ERR_INIT;

			if (blob_head(s, digest, NULL, "pull,push", &e3) == 1) {
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

	ret = ensure_ping(s, e);
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
	char *scope = scope_for(r, "pull,push"), *url = NULL;
	uint64_t chunk = s->o.chunk_size;
	unsigned tries;
	int ret;

	http_resp_init(&rs);
	ret = blob_head(s, digest, NULL, "pull,push", e);
	if (ret < 0)
		goto out;
	if (ret == 1) {
		s->st.blobs_skipped++;
		ret = 0;
		goto out;
	}
	hdrs = curl_slist_append(NULL, "Content-Type: application/octet-stream");
	for (tries = 1;; tries++) {
		ret = upload_start(s, &u, digest, NULL, scope, &chunk, e);
		if (ret)
			goto out;
		free(url);
		url = with_digest(u.loc, digest);
		memset(&rq, 0, sizeof(rq));
		rq.method = "PUT";
		rq.url = url;
		rq.headers = hdrs;
		rq.has_body = 1;
		rq.body_mem = p;
		rq.body_len = n;
		ret = rq_retry(s, &rq, &rs, scope, e);
		if (ret)
			goto out;
		if (rs.status == 201)
			break;
		if (!retry_status(rs.status) || tries >= s->o.max_tries) {
			ret = http_fail(s, &rs, e, "upload of %s", digest);
			goto out;
		}
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
	char *url = NULL, *scope = scope_for(r, "pull"), range[64], hex[72];
	unsigned char md[32];
	unsigned fails = 0, attempts = 0;
	int ret = 0;

	memset(&f, 0, sizeof(f));
	f.fd = fd;
	f.h = sha256_new();
	f.rs = &rs;
	f.limit = size;
	http_resp_init(&rs);
	ret = ensure_ping(s, e);
	if (ret)
		goto out;
	url = api_url(r, "blobs/%s", digest);
	for (;;) {
		struct err e2 = ERR_INIT;
		uint64_t before = f.got;
		int net;
		long ms;

		curl_slist_free_all(hdrs);
		hdrs = NULL;
		if (f.got) {
			snprintf(range, sizeof(range), "Range: bytes=%llu-",
				 (unsigned long long)f.got);
			hdrs = curl_slist_append(hdrs, range);
		}
		memset(&rq, 0, sizeof(rq));
		rq.method = "GET";
		rq.url = url;
		rq.headers = hdrs;
		rq.follow = 1;
		rq.sink = fetch_sink;
		rq.sink_arg = &f;
		f.start = f.got;
		f.first = 1;
		attempts++;
		ret = rq_auth(s, &rq, &rs, scope, &e2);
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
		if (net && !reg_time_left(s)) {
			ret = err_set(e, ERR_NET, "blob %s: %s (at byte %llu)", digest, e2.msg,
				      (unsigned long long)f.got);
			goto out;
		}
		if (!net && (rs.status == 200 || rs.status == 206) && !f.bad_range)
			break;
		if (!net && rs.status == 416 && size >= 0 && f.got == (uint64_t)size)
			break;
		if (!net && rs.status == 404) {
			ret = http_fail(s, &rs, e, "blob %s not found", digest);
			goto out;
		}
		if (!net && !retry_status(rs.status) && !f.bad_range) {
			ret = http_fail(s, &rs, e, "blob %s", digest);
			goto out;
		}
		if (f.got > before)
			fails = 0; /* progress: a cut connection, resume */
		if (++fails >= s->o.max_tries || attempts > 1000) {
			if (net)
				ret = err_set(e, ERR_NET, "blob %s: %s (after %u tries)", digest,
					      e2.msg, attempts);
			else if (f.bad_range)
				ret = err_set(e, ERR_NET, "blob %s: the registry answered a "
					      "resumed download at the wrong offset", digest);
			else
				ret = http_fail(s, &rs, e, "blob %s (after %u tries)", digest,
						attempts);
			goto out;
		}
		if (f.bad_range) {
			/* cannot line the bytes up again for an fd: give up cleanly */
			ret = err_set(e, ERR_NET, "blob %s: the registry answered a resumed "
				      "download at the wrong offset", digest);
			goto out;
		}
		ms = f.got > before ? 0 : backoff_ms(r, fails, net ? NULL : &rs);
		if (ms < 0) {
			ret = http_fail(s, &rs, e, "blob %s", digest);
			goto out;
		}
		s->st.retries++;
		reg_log(s, "download of %s stopped at byte %llu (%s); resuming in %ld ms",
			digest, (unsigned long long)f.got, net ? e2.msg : "server error", ms);
		if (ms)
			sleep_ms_in(s, ms);
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

/* ---- manifests ---- */

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
	struct reg_remote *r = s->rm;
	struct http_req rq;
	struct http_resp rs;
	struct curl_slist *hdrs = NULL;
	char *url = NULL, *scope = scope_for(r, "pull,push"), *ct;
	int ret;

	http_resp_init(&rs);
	ret = ensure_ping(s, e);
	if (ret)
		goto out;
	url = api_url(r, "manifests/%s", tag ? tag : digest);
	ct = xasprintf("Content-Type: %s", media_type);
	hdrs = curl_slist_append(NULL, ct);
	free(ct);
	memset(&rq, 0, sizeof(rq));
	rq.method = "PUT";
	rq.url = url;
	rq.headers = hdrs;
	rq.has_body = 1;
	rq.body_mem = p;
	rq.body_len = n;
	ret = rq_retry(s, &rq, &rs, scope, e);
	if (ret)
		goto out;
	if (rs.status != 201 && rs.status != 200 && rs.status != 202) {
		ret = http_fail(s, &rs, e, "put manifest %s", tag ? tag : digest);
		goto out;
	}
	if (rs.digest && strcmp(rs.digest, digest)) {
		ret = err_set(e, ERR_CORRUPT, "put manifest %s: the registry stored digest %s, "
			      "not %s", tag ? tag : digest, rs.digest, digest);
		goto out;
	}
out:
	curl_slist_free_all(hdrs);
	http_resp_release(&rs);
	free(url);
	free(scope);
	return ret;
}

int remote_manifest_get(struct reg_store *s, const char *ref, struct buf *out,
			char **media_type, char *digest_out, struct err *e)
{
	struct reg_remote *r = s->rm;
	struct http_req rq;
	struct http_resp rs;
	struct curl_slist *hdrs = NULL;
	char *url = NULL, *scope = scope_for(r, "pull"), *body_mt = NULL;
	char dg[REG_DIGEST_SIZE];
	size_t oldmax = out->max;
	int ret;

	http_resp_init(&rs);
	buf_reset(out);
	out->max = REG_MANIFEST_MAX;
	ret = ensure_ping(s, e);
	if (ret)
		goto out;
	url = api_url(r, "manifests/%s", ref);
	hdrs = curl_slist_append(NULL, accept_manifest);
	memset(&rq, 0, sizeof(rq));
	rq.method = "GET";
	rq.url = url;
	rq.headers = hdrs;
	rq.follow = 1;
	rq.out = out;
	ret = rq_retry(s, &rq, &rs, scope, e);
	if (ret) {
		err_wrap(e, "manifest %s", ref);
		goto out;
	}
	if (rs.status == 404) {
		ret = http_fail(s, &rs, e, "manifest %s not found", ref);
		goto out;
	}
	if (rs.status != 200) {
		ret = http_fail(s, &rs, e, "manifest %s", ref);
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
	curl_slist_free_all(hdrs);
	http_resp_release(&rs);
	free(url);
	free(scope);
	return ret;
}

int remote_manifest_head(struct reg_store *s, const char *ref, char *digest_out,
			 uint64_t *size, struct err *e)
{
	struct reg_remote *r = s->rm;
	struct http_req rq;
	struct http_resp rs;
	struct curl_slist *hdrs = NULL;
	char *url = NULL, *scope = scope_for(r, "pull");
	int ret;

	http_resp_init(&rs);
	ret = ensure_ping(s, e);
	if (ret)
		goto out;
	url = api_url(r, "manifests/%s", ref);
	hdrs = curl_slist_append(NULL, accept_manifest);
	memset(&rq, 0, sizeof(rq));
	rq.method = "HEAD";
	rq.url = url;
	rq.headers = hdrs;
	rq.follow = 1;
	ret = rq_retry(s, &rq, &rs, scope, e);
	if (ret)
		goto out;
	if (rs.status == 404) {
		ret = 0;
		goto out;
	}
	if (rs.status != 200) {
		ret = http_fail(s, &rs, e, "manifest %s", ref);
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
	curl_slist_free_all(hdrs);
	http_resp_release(&rs);
	free(url);
	free(scope);
	return ret;
}

static void tags_add(struct reg_tags *t, const char *tag)
{
	t->v = xreallocarray(t->v, t->n + 1, sizeof(*t->v));
	t->v[t->n++] = xstrdup(tag);
}

int remote_tags_list(struct reg_store *s, struct reg_tags *tags, struct err *e)
{
	struct reg_remote *r = s->rm;
	struct http_req rq;
	struct http_resp rs;
	struct buf body;
	char *url = NULL, *scope = scope_for(r, "pull"), *last = NULL;
	unsigned pages = 0;
	int ret, saw_link = 0;

	http_resp_init(&rs);
	buf_init(&body, TAGS_BODY_MAX);
	ret = ensure_ping(s, e);
	if (ret)
		goto out;
	url = api_url(r, "tags/list?n=%d", TAGS_PAGE);
	while (url) {
		json_t *root, *arr, *v;
		size_t i, page_n = 0;
		char *next;

		if (++pages > MAX_PAGES) {
			ret = err_set(e, ERR_FAIL, "tags list: too many pages");
			goto out;
		}
		memset(&rq, 0, sizeof(rq));
		rq.method = "GET";
		rq.url = url;
		rq.follow = 1;
		rq.out = &body;
		ret = rq_retry(s, &rq, &rs, scope, e);
		if (ret) {
			err_wrap(e, "tags list");
			goto out;
		}
		if (rs.status == 404) {
			/* NAME_UNKNOWN: no repository yet, so no tags */
			break;
		}
		if (rs.status != 200) {
			ret = http_fail(s, &rs, e, "tags list");
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
				tags_add(tags, json_string_value(v));
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

			url = api_url(r, "tags/list?n=%d&last=%s", TAGS_PAGE, l);
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
	struct reg_remote *r = s->rm;
	struct http_req rq;
	char *url = api_url(r, "manifests/%s", ref);
	char *scope = scope_for(r, "delete");
	int ret;

	memset(&rq, 0, sizeof(rq));
	rq.method = "DELETE";
	rq.url = url;
	ret = rq_retry(s, &rq, rs, scope, e);
	free(url);
	free(scope);
	return ret;
}

int remote_manifest_delete(struct reg_store *s, const char *ref, struct err *e)
{
	struct http_resp rs;
	char dg[REG_DIGEST_SIZE];
	int ret;

	http_resp_init(&rs);
	ret = ensure_ping(s, e);
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
			ret = http_fail(s, &rs, e, "delete %s", ref);
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
		ret = http_fail(s, &rs, e, "delete %s: not found", ref);
	} else if (rs.status == 405 || rs.status == 400) {
		struct buf m = BUF_INIT;

		registry_errors(&rs, &m);
		ret = err_set(e, ERR_FAIL, "delete %s: the registry does not allow deletes "
			      "(%ld%s%s)", ref, rs.status, m.len ? " " : "", m.data);
		buf_release(&m);
	} else {
		ret = http_fail(s, &rs, e, "delete %s", ref);
	}
out:
	http_resp_release(&rs);
	return ret;
}
