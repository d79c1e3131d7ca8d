/*
 * Authentication: WWW-Authenticate challenges, Basic and Bearer (anonymous,
 * user/password, identity-token OAuth2 refresh, registry token), and the
 * credential sources Docker and Podman use (config.json, auth.json,
 * docker-credential-* helpers).  Secrets never reach a log line or an error
 * message.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2 */
#endif
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>

#include "auth.h"

#define HELPER_TIMEOUT_MS 30000
#define HELPER_OUT_MAX (64u << 10)
#define TOKEN_BODY_MAX (1u << 20)
#define DOCKER_HUB_KEY "https://index.docker.io/v1/"

/* ---- WWW-Authenticate ---- */

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

static int tchar(int c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Read a quoted-string or token value; returns the end. */
static const char *read_value(const char *p, char **out)
{
	struct buf b = BUF_INIT;

	if (*p == '"') {
		p++;
		while (*p && *p != '"') {
			if (*p == '\\' && p[1])
				p++;
			buf_addch(&b, *p++);
		}
		if (*p == '"')
			p++;
	} else {
		while (*p && *p != ',' && *p != ' ' && *p != '\t')
			buf_addch(&b, *p++);
	}
	*out = buf_detach(&b, NULL);
	return p;
}

void reg_challenge_release(struct reg_challenge *c)
{
	free(c->realm);
	free(c->service);
	free(c->scope);
	free(c->error);
	memset(c, 0, sizeof(*c));
}

int reg_challenge_parse(const char *hdr, struct reg_challenge *out)
{
	struct reg_challenge cur, best;
	const char *p = hdr;

	memset(out, 0, sizeof(*out));
	memset(&best, 0, sizeof(best));
	if (!hdr)
		return -1;
	for (;;) {
		const char *s;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		s = p;
		while (tchar((unsigned char)*p))
			p++;
		if (p == s) {
			p++; /* junk: skip a byte */
			continue;
		}
		memset(&cur, 0, sizeof(cur));
		if (p - s == 6 && !strncasecmp(s, "bearer", 6))
			cur.scheme = REG_AUTH_BEARER;
		else if (p - s == 5 && !strncasecmp(s, "basic", 5))
			cur.scheme = REG_AUTH_BASIC;
		/* the parameters: key=value pairs until a token without '=' */
		for (;;) {
			const char *save, *k;
			size_t klen;
			char *v;

			p = skip_ws(p);
			while (*p == ',')
				p = skip_ws(p + 1);
			save = p;
			k = p;
			while (tchar((unsigned char)*p))
				p++;
			klen = (size_t)(p - k);
			p = skip_ws(p);
			if (!klen || *p != '=') {
				/* token68 ("Basic abc") or the next scheme */
				p = save;
				if (klen) {
					/* token68 is followed by '=' padding only */
					const char *q = k + klen;

					while (*q == '=')
						q++;
					q = skip_ws(q);
					if (q != k + klen && (*q == ',' || !*q)) {
						p = q;
						continue;
					}
				}
				break;
			}
			p = read_value(skip_ws(p + 1), &v);
#define KEY(name) (klen == sizeof(name) - 1 && !strncasecmp(k, name, klen))
			if (KEY("realm")) {
				free(cur.realm);
				cur.realm = v;
			} else if (KEY("service")) {
				free(cur.service);
				cur.service = v;
			} else if (KEY("scope")) {
				free(cur.scope);
				cur.scope = v;
			} else if (KEY("error")) {
				free(cur.error);
				cur.error = v;
			} else {
				free(v);
			}
#undef KEY
		}
		if (cur.scheme == REG_AUTH_BEARER && best.scheme != REG_AUTH_BEARER) {
			reg_challenge_release(&best);
			best = cur;
		} else if (cur.scheme == REG_AUTH_BASIC && best.scheme == REG_AUTH_NONE) {
			best = cur;
		} else {
			reg_challenge_release(&cur);
		}
	}
	if (best.scheme == REG_AUTH_NONE)
		return -1;
	*out = best;
	return 0;
}

/* ---- credentials ---- */

void reg_cred_release(struct reg_cred *c)
{
	/* wipe secrets before freeing */
	if (c->password)
		memset(c->password, 0, strlen(c->password));
	if (c->identity_token)
		memset(c->identity_token, 0, strlen(c->identity_token));
	if (c->registry_token)
		memset(c->registry_token, 0, strlen(c->registry_token));
	free(c->username);
	free(c->password);
	free(c->identity_token);
	free(c->registry_token);
	memset(c, 0, sizeof(*c));
}

/* The key Docker uses for a host in config.json and with helpers. */
static const char *server_key(const char *host)
{
	return strcmp(host, "docker.io") ? host : DOCKER_HUB_KEY;
}

/* Normalise an auths key: no scheme, no /v1/ or /v2/ suffix, Hub aliases. */
static char *norm_key(const char *k)
{
	char *s, *p;
	size_t n;

	if (!strncasecmp(k, "https://", 8))
		k += 8;
	else if (!strncasecmp(k, "http://", 7))
		k += 7;
	s = xstrdup(k);
	n = strlen(s);
	while (n && s[n - 1] == '/')
		s[--n] = '\0';
	if (n > 3 && (!strcmp(s + n - 3, "/v1") || !strcmp(s + n - 3, "/v2")))
		s[n - 3] = '\0';
	p = strchr(s, '/');
	if ((p ? (size_t)(p - s) : strlen(s)) &&
	    ((!strncmp(s, "index.docker.io", 15) && (s[15] == '/' || !s[15])) ||
	     (!strncmp(s, "registry-1.docker.io", 20) && (s[20] == '/' || !s[20])))) {
		char *t = xasprintf("docker.io%s", p ? p : "");

		free(s);
		s = t;
	}
	return s;
}

/*
 * How well an auths key matches host/repo: the key's length for a match
 * (host alone, or host/namespace prefix of repo at a '/' boundary), else 0.
 */
static size_t key_match(const char *key, const char *host, const char *repo)
{
	char *k = norm_key(key);
	size_t hl = strlen(host), n = 0;

	if (!strcmp(k, host)) {
		n = strlen(k);
	} else if (!strncmp(k, host, hl) && k[hl] == '/' && repo) {
		const char *ns = k + hl + 1;
		size_t nl = strlen(ns);

		if (!strncmp(repo, ns, nl) && (repo[nl] == '/' || !repo[nl]))
			n = strlen(k);
	}
	free(k);
	return n;
}

static int set_from_auth(struct reg_cred *c, json_t *ent, const char *file,
			 const char *host, struct err *e)
{
	json_t *v;

	v = json_object_get(ent, "auth");
	if (json_is_string(v) && json_string_length(v)) {
		char *dec = reg_b64_decode(json_string_value(v), NULL), *colon;

		if (!dec || !(colon = strchr(dec, ':'))) {
			free(dec);
			return err_set(e, ERR_AUTH, "%s: the auth entry for %s is not base64 of "
				       "user:password", file, host);
		}
		*colon = '\0';
		c->username = xstrdup(dec);
		c->password = xstrdup(colon + 1);
		memset(dec, 0, strlen(colon + 1) + (size_t)(colon - dec) + 1);
		free(dec);
	} else {
		json_t *u = json_object_get(ent, "username");
		json_t *p = json_object_get(ent, "password");

		if (json_is_string(u) && json_is_string(p)) {
			c->username = xstrdup(json_string_value(u));
			c->password = xstrdup(json_string_value(p));
		}
	}
	v = json_object_get(ent, "identitytoken");
	if (json_is_string(v) && json_string_length(v))
		c->identity_token = xstrdup(json_string_value(v));
	v = json_object_get(ent, "registrytoken");
	if (json_is_string(v) && json_string_length(v))
		c->registry_token = xstrdup(json_string_value(v));
	return 0;
}

static int cred_empty(const struct reg_cred *c)
{
	return !c->username && !c->password && !c->identity_token && !c->registry_token;
}

/*
 * Run "docker-credential-NAME get" with the server address on stdin and a
 * timeout; no shell.  1 found, 0 "credentials not found", <0 error.
 */
static int run_helper(const char *name, const char *server, struct reg_cred *c,
		      struct err *e)
{
	char prog[256], *argv[] = {prog, (char *)"get", NULL};
	int ret = 0, status;
	struct buf b = BUF_INIT;
	json_t *root = NULL, *u, *sec;

	if (!*name || strchr(name, '/') || strlen(name) > 200)
		return err_set(e, ERR_AUTH, "bad credential helper name '%s'", name);
	snprintf(prog, sizeof(prog), "docker-credential-%s", name);
	status = run_capture(argv, server, strlen(server), &b, HELPER_OUT_MAX,
			     HELPER_TIMEOUT_MS, 0);
	if (status == -1 && errno == ETIMEDOUT) {
		ret = err_set(e, ERR_AUTH, "credential helper %s timed out", prog);
		goto out;
	}
	if (status == -1) {
		ret = err_errno(e, "cannot run %s", prog);
		goto out;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && !b.len) {
		ret = err_set(e, ERR_AUTH, "credential helper %s not found on PATH", prog);
		goto out;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		/* the helper's stdout is its error message, never a secret */
		if (strstr(b.data, "credentials not found")) {
			ret = 0;
			goto out;
		}
		while (b.len && isspace((unsigned char)b.data[b.len - 1]))
			buf_setlen(&b, b.len - 1);
		ret = err_set(e, ERR_AUTH, "credential helper %s failed%s%.200s", prog,
			      b.len ? ": " : "", b.data);
		goto out;
	}
	root = json_loadb(b.data, b.len, 0, NULL);
	u = json_object_get(root, "Username");
	sec = json_object_get(root, "Secret");
	if (!json_is_object(root) || !json_is_string(sec)) {
		ret = err_set(e, ERR_AUTH, "credential helper %s gave no Username/Secret JSON",
			      prog);
		goto out;
	}
	if (json_is_string(u) && !strcmp(json_string_value(u), "<token>")) {
		c->identity_token = xstrdup(json_string_value(sec));
	} else {
		c->username = xstrdup(json_is_string(u) ? json_string_value(u) : "");
		c->password = xstrdup(json_string_value(sec));
	}
	ret = 1;
out:
	if (b.len)
		memset(b.data, 0, b.len);
	buf_release(&b);
	json_decref(root);
	return ret;
}

/* One config file: 1 found, 0 not, <0 error.  A missing file is 0. */
static int lookup_file(const char *file, const char *host, const char *repo,
		       struct reg_cred *c, struct err *e)
{
	struct buf b = BUF_INIT;
	json_error_t je;
	json_t *root = NULL, *auths, *helpers, *v, *best = NULL;
	const char *k, *helper = NULL;
	size_t best_len = 0;
	int ret = 0;

	if (access(file, F_OK))
		return 0;
	if (buf_read_file(&b, file, 4u << 20, e) < 0)
		return e->code;
	root = json_loadb(b.data, b.len, 0, &je);
	if (!json_is_object(root)) {
		ret = err_set(e, ERR_AUTH, "%s: not a JSON object (%s, line %d)", file,
			      je.text, je.line);
		goto out;
	}
	helpers = json_object_get(root, "credHelpers");
	if (json_is_object(helpers)) {
		json_object_foreach(helpers, k, v) {
			if (json_is_string(v) && key_match(k, host, NULL))
				helper = json_string_value(v);
		}
	}
	if (!helper) {
		v = json_object_get(root, "credsStore");
		if (json_is_string(v) && json_string_length(v))
			helper = json_string_value(v);
	}
	if (helper) {
		ret = run_helper(helper, server_key(host), c, e);
		if (ret)
			goto out;
	}
	auths = json_object_get(root, "auths");
	if (json_is_object(auths)) {
		json_object_foreach(auths, k, v) {
			size_t m = json_is_object(v) ? key_match(k, host, repo) : 0;

			if (m > best_len) {
				best_len = m;
				best = v;
			}
		}
	}
	if (best) {
		ret = set_from_auth(c, best, file, host, e);
		if (!ret)
			ret = cred_empty(c) ? 0 : 1;
	}
out:
	json_decref(root);
	if (b.len)
		memset(b.data, 0, b.len);
	buf_release(&b);
	return ret;
}

int reg_cred_lookup(const char *host, const char *repo, struct reg_cred *c,
		    struct err *e)
{
	const char *env;
	char *file;
	int r;

	memset(c, 0, sizeof(*c));
	env = env_get()->registry_auth_file;
	if (env) {
		r = lookup_file(env, host, repo, c, e);
		if (r)
			return r;
	}
	env = env_get()->docker_config;
	if (env) {
		file = xasprintf("%s/config.json", env);
	} else {
		const char *home = env_get()->home;

		if (!home)
			return 0;
		file = xasprintf("%s/.docker/config.json", home);
	}
	r = lookup_file(file, host, repo, c, e);
	free(file);
	if (r <= 0)
		reg_cred_release(c);
	return r;
}

/* ---- auth state ---- */

void auth_init(struct reg_auth *a, const char *host, const char *repo)
{
	memset(a, 0, sizeof(*a));
	a->host = xstrdup(host);
	a->repo = xstrdup(repo);
}

static void tok_clear(struct reg_auth *a, size_t i)
{
	free(a->tok[i].scope);
	if (a->tok[i].token)
		memset(a->tok[i].token, 0, strlen(a->tok[i].token));
	free(a->tok[i].token);
	a->tok[i].scope = a->tok[i].token = NULL;
}

void auth_release(struct reg_auth *a)
{
	size_t i;

	for (i = 0; i < a->ntok; i++)
		tok_clear(a, i);
	free(a->host);
	free(a->repo);
	free(a->realm);
	free(a->service);
	reg_cred_release(&a->cred);
	memset(a, 0, sizeof(*a));
}

void auth_set_challenge(struct reg_auth *a, const struct reg_challenge *c)
{
	a->scheme = c->scheme;
	if (c->realm) {
		free(a->realm);
		a->realm = xstrdup(c->realm);
	}
	if (c->service) {
		free(a->service);
		a->service = xstrdup(c->service);
	}
}

void auth_drop_token(struct reg_auth *a, const char *scope)
{
	size_t i;

	for (i = 0; i < a->ntok; i++) {
		if (!strcmp(a->tok[i].scope, scope)) {
			tok_clear(a, i);
			a->tok[i] = a->tok[--a->ntok];
			a->tok[a->ntok].scope = a->tok[a->ntok].token = NULL;
			return;
		}
	}
}

int auth_load_cred(struct reg_auth *a, struct err *e)
{
	int r;

	if (a->cred_loaded)
		return a->have_cred;
	r = reg_cred_lookup(a->host, a->repo, &a->cred, e);
	if (r < 0)
		return r;
	a->cred_loaded = 1;
	a->have_cred = r;
	return r;
}

/* Append "&name=value" (escaped). */
static void add_param(struct buf *b, const char *name, const char *value)
{
	char *v = reg_url_escape(value);

	buf_addf(b, "%s%s=%s", b->len ? "&" : "", name, v);
	free(v);
}

/* Parse a token response: "token" or "access_token", "expires_in". */
static int parse_token(const struct buf *body, char **token, long *expires,
		       struct err *e)
{
	json_t *root = json_loadb(body->data, body->len, 0, NULL), *v;
	const char *t = NULL;

	*token = NULL;
	*expires = 60;
	if (!json_is_object(root)) {
		json_decref(root);
		return err_set(e, ERR_AUTH, "the token server's answer is not JSON");
	}
	v = json_object_get(root, "access_token");
	if (json_is_string(v) && json_string_length(v))
		t = json_string_value(v);
	v = json_object_get(root, "token");
	if (!t && json_is_string(v) && json_string_length(v))
		t = json_string_value(v);
	v = json_object_get(root, "expires_in");
	if (json_is_integer(v) && json_integer_value(v) > 0)
		*expires = (long)json_integer_value(v);
	if (t)
		*token = xstrdup(t);
	json_decref(root);
	if (!t)
		return err_set(e, ERR_AUTH, "the token server's answer has no token");
	return 0;
}

/* The registry's error text from a token server body, if JSON-ish. */
static void token_error(struct http_resp *rs, char *msg, size_t n)
{
	json_t *root = json_loadb(rs->errbody.data, rs->errbody.len, 0, NULL), *v;

	msg[0] = '\0';
	if (json_is_object(root)) {
		v = json_object_get(root, "details");
		if (!json_is_string(v))
			v = json_object_get(root, "error_description");
		if (!json_is_string(v))
			v = json_object_get(root, "error");
		if (json_is_string(v))
			snprintf(msg, n, ": %s", json_string_value(v));
		else if (json_is_array(v = json_object_get(root, "errors")) &&
			 json_is_string(json_object_get(json_array_get(v, 0), "message")))
			snprintf(msg, n, ": %s",
				 json_string_value(json_object_get(json_array_get(v, 0),
								   "message")));
	}
	json_decref(root);
}

static int fetch_token(struct reg_store *s, struct reg_auth *a, CURL *c,
		       const char *scope, char **token, long *expires,
		       struct err *e)
{
	struct http_req rq;
	struct http_resp rs;
	struct buf url = BUF_INIT, q = BUF_INIT, body = BUF_INIT, form = BUF_INIT;
	struct curl_slist *hdrs = NULL;
	char *auth = NULL, msg[300];
	int ret = 0, post;

	if (!a->realm)
		return err_set(e, ERR_AUTH, "the registry asked for a bearer token but gave "
			       "no realm");
	if (strncasecmp(a->realm, "https://", 8) && !s->o.insecure) {
		char *h = NULL;
		CURLU *u = curl_url();
		int loop = 0;

		if (u && !curl_url_set(u, CURLUPART_URL, a->realm, 0) &&
		    !curl_url_get(u, CURLUPART_HOST, &h, 0))
			loop = reg_host_is_loopback(h);
		curl_free(h);
		curl_url_cleanup(u);
		if (!loop)
			return err_set(e, ERR_AUTH, "refusing the plain-HTTP token realm %s "
				       "(use --insecure to allow it)", a->realm);
	}
	buf_init(&body, TOKEN_BODY_MAX);
	http_resp_init(&rs);
	post = a->have_cred && a->cred.identity_token;
	if (post) {
		/* OAuth2: the refresh token goes in a form body, never a URL */
		add_param(&form, "grant_type", "refresh_token");
		add_param(&form, "refresh_token", a->cred.identity_token);
		if (a->service)
			add_param(&form, "service", a->service);
		add_param(&form, "client_id", "ctxpack");
		add_param(&form, "scope", scope);
		hdrs = curl_slist_append(hdrs,
					 "Content-Type: application/x-www-form-urlencoded");
		memset(&rq, 0, sizeof(rq));
		rq.method = "POST";
		rq.url = a->realm;
		rq.headers = hdrs;
		rq.has_body = 1;
		rq.body_mem = form.data;
		rq.body_len = form.len;
		rq.out = &body;
		rq.quiet = 1;
		reg_log(s, "POST %s (oauth2 refresh token)", a->realm);
		ret = http_perform(s, c, &rq, &rs, e);
		if (ret)
			goto out;
		if (rs.status == 200) {
			ret = parse_token(&body, token, expires, e);
			goto out;
		}
		if (rs.status != 404 && rs.status != 405) {
			token_error(&rs, msg, sizeof(msg));
			ret = err_set(e, ERR_AUTH, "the token server %s refused the identity "
				      "token (HTTP %ld%s)", a->realm, rs.status, msg);
			goto out;
		}
		/* no OAuth2 endpoint: fall back to GET */
		buf_reset(&body);
	}
	if (a->service)
		add_param(&q, "service", a->service);
	{
		/* one scope= per space-separated scope */
		const char *p = scope;

		while (*p) {
			const char *sp = strchr(p, ' ');
			char *one = sp ? xstrndup(p, (size_t)(sp - p)) : xstrdup(p);

			if (*one)
				add_param(&q, "scope", one);
			free(one);
			p = sp ? sp + 1 : p + strlen(p);
		}
	}
	buf_addf(&url, "%s%s%s", a->realm, strchr(a->realm, '?') ? "&" : "?", q.data);
	if (a->have_cred && a->cred.username && a->cred.password) {
		char *up = xasprintf("%s:%s", a->cred.username, a->cred.password);
		char *b64 = reg_b64_encode(up, strlen(up));

		auth = xasprintf("Authorization: Basic %s", b64);
		memset(up, 0, strlen(up));
		free(up);
		free(b64);
	}
	memset(&rq, 0, sizeof(rq));
	rq.method = "GET";
	rq.url = url.data;
	rq.auth_header = auth;
	rq.auth_origin = a->realm;
	rq.out = &body;
	rq.follow = 1;
	rq.quiet = 1;
	reg_log(s, "GET %s (%s token)", url.data, auth ? "credentialed" : "anonymous");
	ret = http_perform(s, c, &rq, &rs, e);
	if (ret) {
		err_wrap(e, "token server %s", a->realm);
		goto out;
	}
	if (rs.status != 200) {
		token_error(&rs, msg, sizeof(msg));
		ret = err_set(e, ERR_AUTH, "the token server refused %s for %s (HTTP %ld%s)",
			      auth ? "the credentials" : "an anonymous token", a->host,
			      rs.status, msg);
		goto out;
	}
	ret = parse_token(&body, token, expires, e);
out:
	if (auth)
		memset(auth, 0, strlen(auth));
	free(auth);
	if (form.len)
		memset(form.data, 0, form.len);
	buf_release(&form);
	if (body.len)
		memset(body.data, 0, body.len);
	buf_release(&body);
	buf_release(&url);
	buf_release(&q);
	curl_slist_free_all(hdrs);
	http_resp_release(&rs);
	return ret;
}

int auth_header(struct reg_store *s, struct reg_auth *a, CURL *c,
		const char *scope, char **hdr, struct err *e)
{
	time_t now = time(NULL);
	char *token = NULL;
	long expires;
	size_t i;
	int r;

	*hdr = NULL;
	if (a->scheme == REG_AUTH_NONE)
		return 0;
	r = auth_load_cred(a, e);
	if (r < 0)
		return r;
	if (a->scheme == REG_AUTH_BASIC) {
		char *up, *b64;

		if (!a->have_cred || !a->cred.username || !a->cred.password)
			return 0;
		up = xasprintf("%s:%s", a->cred.username, a->cred.password);
		b64 = reg_b64_encode(up, strlen(up));
		*hdr = xasprintf("Authorization: Basic %s", b64);
		memset(up, 0, strlen(up));
		memset(b64, 0, strlen(b64));
		free(up);
		free(b64);
		return 0;
	}
	if (a->have_cred && a->cred.registry_token) {
		*hdr = xasprintf("Authorization: Bearer %s", a->cred.registry_token);
		return 0;
	}
	for (i = 0; i < a->ntok; i++) {
		if (!strcmp(a->tok[i].scope, scope)) {
			if (a->tok[i].expires > now) {
				*hdr = xasprintf("Authorization: Bearer %s", a->tok[i].token);
				return 0;
			}
			auth_drop_token(a, scope);
			break;
		}
	}
	r = fetch_token(s, a, c, scope, &token, &expires, e);
	if (r)
		return r;
	if (a->ntok == AUTH_MAX_TOKENS)
		auth_drop_token(a, a->tok[0].scope);
	a->tok[a->ntok].scope = xstrdup(scope);
	a->tok[a->ntok].token = token;
	/* refresh a little before the server's expiry */
	a->tok[a->ntok].expires = now + expires - (expires > 60 ? 15 : expires / 4);
	a->ntok++;
	*hdr = xasprintf("Authorization: Bearer %s", token);
	return 0;
}
