/*
 * The connection to a registry: the handle, the ping that picks the
 * scheme and reads the challenge, authenticated requests (a 401
 * re-authenticates once) under the retry policy of remote_retry.c, the
 * API's URLs and scopes, and the messages of a registry's errors.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "remote_internal.h"

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

/* Error text from a registry body: "CODE: message[; CODE: message]". */
void rm_errors(const struct http_resp *rs, struct buf *out)
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
int rm_fail(struct reg_store *s, const struct http_resp *rs, struct err *e,
	    const char *fmt, ...)
{
	struct reg_remote *r = s->rm;
	struct buf msg = BUF_INIT, ctx = BUF_INIT;
	int code;
	va_list ap;

	va_start(ap, fmt);
	buf_vaddf(&ctx, fmt, ap);
	va_end(ap);
	rm_errors(rs, &msg);
	if (rs->status == 401 || rs->status == 403)
		code = ERR_AUTH;
	else if (rs->status == 404)
		code = ERR_NOTFOUND;
	else if (rm_retry_status(rs->status))
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
int rm_ping(struct reg_store *s, struct err *e)
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
	struct rm_retry rt = {0, 0, NULL};
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
		rm_req(&rq, "GET", url);
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
		if (ret || rm_retry_status(rs.status)) {
			/* nothing listening or no such host: say so now, so that a
			 * cache restore can fail open without waiting */
			int hopeless = ret && (rs.cc == CURLE_COULDNT_CONNECT ||
					       rs.cc == CURLE_COULDNT_RESOLVE_HOST ||
					       rs.cc == CURLE_COULDNT_RESOLVE_PROXY ||
					       rs.cc == CURLE_PEER_FAILED_VERIFICATION ||
					       rs.cc == CURLE_SSL_CACERT_BADFILE ||
					       rs.cc == CURLE_SSL_CONNECT_ERROR);

			if (!hopeless &&
			    rm_retry(s, &rt, ret != 0, &rs, 0, "GET %s: %s", url,
				     ret ? e2.msg : "server error") == RM_RETRY)
				continue;
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
				ret = rm_fail(s, &rs, e, "registry %s", r->host);
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
		ret = rm_fail(s, &rs, e, "%s is not an OCI registry (GET /v2/)", r->host);
		goto out;
	}
	r->base = xasprintf("%s://%s", schemes[si], r->host);
	r->pinged = 1;
out:
	free(url);
	http_resp_release(&rs);
	return ret;
}

int rm_send_once(struct reg_store *s, struct http_req *rq, struct http_resp *rs,
		 const char *scope, struct err *e)
{
	struct reg_remote *r = s->rm;
	char *sc, *hdr = NULL;
	int ret, again = 0;

	ret = rm_ping(s, e);
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

int rm_send(struct reg_store *s, struct http_req *rq, struct http_resp *rs,
	    const char *scope, struct err *e)
{
	struct rm_retry rt = {0, 0, NULL};

	for (;;) {
		struct err e2 = ERR_INIT;
		int ret;

		if (rq->out)
			buf_reset(rq->out);
		ret = rm_send_once(s, rq, rs, scope, &e2);
		if (!ret && !rm_retry_status(rs->status))
			return 0;
		if (ret && ret != ERR_NET)
			return err_set(e, e2.code, "%s", e2.msg);
		switch (rm_retry(s, &rt, ret != 0, rs, 0, "%s %s: %s", rq->method, rq->url,
				 ret ? e2.msg : "server error")) {
		case RM_RETRY:
			continue;
		case RM_DEADLINE:
			return err_set(e, e2.code, "%s", e2.msg);
		default:
			if (ret)
				return err_set(e, e2.code, "%s (after %u tries)", e2.msg,
					       rt.tries);
			return 0; /* the caller reports the status */
		}
	}
}

char *rm_scope(struct reg_remote *r, const char *actions)
{
	return xasprintf("repository:%s:%s", r->repo, actions);
}

char *rm_url(struct reg_remote *r, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;

	buf_addf(&b, "%s/v2/%s/", r->base, r->repo);
	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	return buf_detach(&b, NULL);
}

void rm_req(struct http_req *rq, const char *method, const char *url)
{
	memset(rq, 0, sizeof(*rq));
	rq->method = method;
	rq->url = url;
}

struct curl_slist *rm_octets(void)
{
	return curl_slist_append(NULL, "Content-Type: application/octet-stream");
}

int rm_api(struct reg_store *s, struct http_req *rq, struct http_resp *rs,
	   const char *actions, const char *hdr, struct err *e, const char *fmt, ...)
{
	struct reg_remote *r = s->rm;
	struct curl_slist *hdrs = NULL;
	struct buf path = BUF_INIT;
	char *url, *scope;
	va_list ap;
	int ret;

	ret = rm_ping(s, e);
	if (ret)
		return ret;
	va_start(ap, fmt);
	buf_vaddf(&path, fmt, ap);
	va_end(ap);
	url = rm_url(r, "%s", path.data);
	scope = strchr(actions, ':') ? xstrdup(actions) : rm_scope(r, actions);
	if (hdr)
		hdrs = curl_slist_append(NULL, hdr);
	rq->url = url;
	rq->headers = hdrs;
	ret = rm_send(s, rq, rs, scope, e);
	rq->url = NULL;
	rq->headers = NULL;
	curl_slist_free_all(hdrs);
	buf_release(&path);
	free(url);
	free(scope);
	return ret;
}

int rm_head(struct reg_store *s, struct http_resp *rs, const char *actions,
	    const char *hdr, const char *kind, const char *ref, struct err *e)
{
	struct http_req rq;

	rm_req(&rq, "HEAD", NULL);
	rq.follow = 1;
	return rm_api(s, &rq, rs, actions, hdr, e, "%s/%s", kind, ref);
}
