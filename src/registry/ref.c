/*
 * References: "oci:DIR[:tag]" layouts and Docker-style registry references
 * ("host[:port]/repo[:tag][@sha256:...]"), with Docker Hub's normalisation.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "reg_impl.h"

static int is_lower_alnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* */
static int component_valid(const char *s, size_t n)
{
	size_t i = 0;

	if (!n || !is_lower_alnum((unsigned char)s[0]))
		return 0;
	while (i < n) {
		while (i < n && is_lower_alnum((unsigned char)s[i]))
			i++;
		if (i == n)
			return 1;
		/* a separator, then alnum again */
		if (s[i] == '.') {
			i++;
		} else if (s[i] == '_') {
			i++;
			if (i < n && s[i] == '_')
				i++;
		} else if (s[i] == '-') {
			while (i < n && s[i] == '-')
				i++;
		} else {
			return 0;
		}
		if (i == n || !is_lower_alnum((unsigned char)s[i]))
			return 0;
	}
	return 1;
}

int reg_repo_valid(const char *repo)
{
	const char *p = repo, *slash;

	if (!*repo || strlen(repo) > 255)
		return 0;
	for (;;) {
		slash = strchr(p, '/');
		if (!component_valid(p, slash ? (size_t)(slash - p) : strlen(p)))
			return 0;
		if (!slash)
			return 1;
		p = slash + 1;
	}
}

int reg_tag_valid(const char *tag)
{
	size_t i, n = strlen(tag);

	if (!n || n > 128)
		return 0;
	for (i = 0; i < n; i++) {
		int c = (unsigned char)tag[i];

		if (isalnum(c) || c == '_')
			continue;
		if (i > 0 && (c == '.' || c == '-'))
			continue;
		return 0;
	}
	return 1;
}

int reg_digest_valid(const char *d)
{
	size_t i;

	if (strncmp(d, "sha256:", 7) || strlen(d) != 71)
		return 0;
	for (i = 7; i < 71; i++)
		if (!((d[i] >= '0' && d[i] <= '9') || (d[i] >= 'a' && d[i] <= 'f')))
			return 0;
	return 1;
}

/* host[:port] with a DNS name or IPv4, or [IPv6][:port]. */
static int host_valid(const char *h)
{
	const char *p = h, *colon;

	if (!*h || strlen(h) > 255)
		return 0;
	if (*p == '[') {
		const char *end = strchr(p, ']');
		char v6[64];
		struct in6_addr a;

		if (!end || (size_t)(end - p - 1) >= sizeof(v6))
			return 0;
		memcpy(v6, p + 1, (size_t)(end - p - 1));
		v6[end - p - 1] = '\0';
		if (inet_pton(AF_INET6, v6, &a) != 1)
			return 0;
		colon = end[1] == ':' ? end + 1 : NULL;
		if (!colon && end[1])
			return 0;
	} else {
		colon = strchr(p, ':');
		for (; *p && p != colon; p++)
			if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-')
				return 0;
		if (p == h || h[0] == '.' || h[0] == '-')
			return 0;
	}
	if (colon) {
		uint64_t port;

		if (parse_u64(colon + 1, &port) || port == 0 || port > 65535)
			return 0;
	}
	return 1;
}

void reg_ref_release(struct reg_ref *r)
{
	free(r->host);
	free(r->repo);
	free(r->path);
	free(r->tag);
	free(r->digest);
	memset(r, 0, sizeof(*r));
}

static int parse_layout(struct reg_ref *r, const char *s, const char *orig,
			struct err *e)
{
	size_t n = strlen(s);
	const char *colon;
	char *rest;

	r->kind = REG_LAYOUT;
	/* oci:DIR@sha256:<hex> */
	if (n > 72 && s[n - 72] == '@' && reg_digest_valid(s + n - 71)) {
		r->digest = xstrdup(s + n - 71);
		n -= 72;
	}
	rest = xstrndup(s, n);
	/* like containers/image: the first ':' separates the directory */
	colon = strchr(rest, ':');
	if (colon) {
		r->tag = xstrdup(colon + 1);
		r->path = xstrndup(rest, (size_t)(colon - rest));
	} else {
		r->path = xstrdup(rest);
	}
	free(rest);
	if (!r->path[0])
		return err_set(e, ERR_USAGE, "invalid reference '%s': no directory after oci:",
			       orig);
	if (r->tag && !reg_tag_valid(r->tag))
		return err_set(e, ERR_USAGE,
			       "invalid reference '%s': bad tag '%s' (letters, digits, '_', "
			       "'.', '-'; at most 128; not starting with '.' or '-')",
			       orig, r->tag);
	return 0;
}

int reg_ref_parse(struct reg_ref *r, const char *s, struct err *e)
{
	const char *orig = s, *at, *slash, *colon;
	char *name = NULL, *first;
	size_t flen;
	int ret = 0;

	memset(r, 0, sizeof(*r));
	if (!strncmp(s, "oci:", 4)) {
		ret = parse_layout(r, s + 4, orig, e);
		goto out;
	}
	if (!strncmp(s, "docker://", 9))
		s += 9;
	r->kind = REG_REMOTE;
	if (!*s) {
		ret = err_set(e, ERR_USAGE, "invalid reference '%s': empty", orig);
		goto out;
	}
	at = strchr(s, '@');
	if (at) {
		if (!reg_digest_valid(at + 1)) {
			ret = err_set(e, ERR_USAGE,
				      "invalid reference '%s': bad digest '%s' "
				      "(want sha256:<64 lowercase hex>)", orig, at + 1);
			goto out;
		}
		r->digest = xstrdup(at + 1);
		name = xstrndup(s, (size_t)(at - s));
	} else {
		name = xstrdup(s);
	}
	slash = strrchr(name, '/');
	colon = strrchr(name, ':');
	if (colon && (!slash || colon > slash)) {
		r->tag = xstrdup(colon + 1);
		name[colon - name] = '\0';
		if (!reg_tag_valid(r->tag)) {
			ret = err_set(e, ERR_USAGE,
				      "invalid reference '%s': bad tag '%s' (letters, digits, "
				      "'_', '.', '-'; at most 128; not starting with '.' or '-')",
				      orig, r->tag);
			goto out;
		}
	}
	slash = strchr(name, '/');
	flen = slash ? (size_t)(slash - name) : 0;
	first = slash ? xstrndup(name, flen) : NULL;
	if (!first || (!strpbrk(first, ".:[") && strcmp(first, "localhost") &&
		       !strpbrk(first, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"))) {
		r->host = xstrdup("docker.io");
		r->repo = xstrdup(name);
	} else {
		r->host = first;
		first = NULL;
		r->repo = xstrdup(slash + 1);
	}
	free(first);
	if (!strcmp(r->host, "index.docker.io") || !strcmp(r->host, "registry-1.docker.io")) {
		free(r->host);
		r->host = xstrdup("docker.io");
	}
	if (!strcmp(r->host, "docker.io") && !strchr(r->repo, '/')) {
		char *lib = xasprintf("library/%s", r->repo);

		free(r->repo);
		r->repo = lib;
	}
	if (!host_valid(r->host)) {
		ret = err_set(e, ERR_USAGE, "invalid reference '%s': bad registry host '%s'",
			      orig, r->host);
		goto out;
	}
	if (!reg_repo_valid(r->repo)) {
		ret = err_set(e, ERR_USAGE,
			      "invalid reference '%s': bad repository name '%s' (lowercase "
			      "letters, digits and separators . _ __ -, '/' between parts)",
			      orig, r->repo);
		goto out;
	}
	if (strlen(r->host) + 1 + strlen(r->repo) > 255) {
		ret = err_set(e, ERR_USAGE, "invalid reference '%s': name too long", orig);
		goto out;
	}
out:
	free(name);
	if (ret) {
		/* keep the message, drop the half-filled fields */
		reg_ref_release(r);
	}
	return ret;
}

char *reg_ref_str(const struct reg_ref *r)
{
	struct buf b = BUF_INIT;

	if (r->kind == REG_LAYOUT)
		buf_addf(&b, "oci:%s", r->path);
	else
		buf_addf(&b, "%s/%s", r->host, r->repo);
	if (r->tag)
		buf_addf(&b, ":%s", r->tag);
	if (r->digest)
		buf_addf(&b, "@%s", r->digest);
	return buf_detach(&b, NULL);
}

const char *reg_ref_target(const struct reg_ref *r)
{
	if (r->digest)
		return r->digest;
	if (r->tag)
		return r->tag;
	return "latest";
}

char *reg_default_store(void)
{
	const char *env = env_get()->store;
	char *home, *s;

	if (env)
		return xstrdup(env);
	home = cache_home();
	s = xasprintf("oci:%s/store", home);
	free(home);
	return s;
}

int reg_host_is_loopback(const char *host)
{
	char h[256];
	const char *end;
	struct in_addr a4;
	size_t n;

	if (host[0] == '[') {
		end = strchr(host, ']');
		if (!end)
			return 0;
		n = (size_t)(end - host - 1);
		if (n >= sizeof(h))
			return 0;
		memcpy(h, host + 1, n);
		h[n] = '\0';
		return !strcmp(h, "::1");
	}
	end = strchr(host, ':');
	n = end ? (size_t)(end - host) : strlen(host);
	if (n >= sizeof(h))
		return 0;
	memcpy(h, host, n);
	h[n] = '\0';
	if (!strcasecmp(h, "localhost"))
		return 1;
	if (inet_pton(AF_INET, h, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return 0;
}

const char *reg_api_host(const char *host)
{
	if (!strcmp(host, "docker.io"))
		return "registry-1.docker.io";
	return host;
}
