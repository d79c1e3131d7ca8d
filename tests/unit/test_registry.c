/*
 * Unit tests of the OCI store: reference parsing, WWW-Authenticate and Link
 * parsing, URL resolution, credential lookup from config files and helper
 * programs, manifest build/parse, media type sniffing, and a whole local
 * OCI layout (push, get, tags, delete, gc, corruption) in a temp dir.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctxpack/registry.h"
#include "ctxpack/util.h"

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define DG "sha256:" HEX64

/* ---- helpers ---- */

static char *tmpdir_new(void)
{
	char tmpl[] = "/tmp/ctxpack-unit-reg.XXXXXX";
	char *d = mkdtemp(tmpl);

	assert_non_null(d);
	return xstrdup(d);
}

static void rm_rf(const char *path)
{
	struct err e = ERR_INIT;

	remove_tree(path, &e);
}

static void write_file(const char *path, const void *p, size_t n, int mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, p, n), 0);
	close(fd);
}

static void write_str(const char *path, const char *s)
{
	write_file(path, s, strlen(s), 0644);
}

/* ---- references ---- */

static void check_ref(const char *s, int kind, const char *host, const char *repo,
		      const char *path, const char *tag, const char *digest,
		      const char *canon)
{
	struct reg_ref r;
	struct err e = ERR_INIT;
	char *str;

	if (reg_ref_parse(&r, s, &e))
		fail_msg("parse '%s': %s", s, e.msg);
	assert_int_equal(r.kind, kind);
#define SAME(a, b) do { if (b) assert_string_equal(a, b); else assert_null(a); } while (0)
	SAME(r.host, host);
	SAME(r.repo, repo);
	SAME(r.path, path);
	SAME(r.tag, tag);
	SAME(r.digest, digest);
#undef SAME
	str = reg_ref_str(&r);
	assert_string_equal(str, canon);
	free(str);
	reg_ref_release(&r);
}

static void test_ref_docker_hub(void **state)
{
	(void)state;
	check_ref("alpine", REG_REMOTE, "docker.io", "library/alpine", NULL, NULL, NULL,
		  "docker.io/library/alpine");
	check_ref("alpine:3.19", REG_REMOTE, "docker.io", "library/alpine", NULL, "3.19",
		  NULL, "docker.io/library/alpine:3.19");
	check_ref("user/app", REG_REMOTE, "docker.io", "user/app", NULL, NULL, NULL,
		  "docker.io/user/app");
	check_ref("docker.io/alpine", REG_REMOTE, "docker.io", "library/alpine", NULL,
		  NULL, NULL, "docker.io/library/alpine");
	check_ref("index.docker.io/library/alpine:edge", REG_REMOTE, "docker.io",
		  "library/alpine", NULL, "edge", NULL, "docker.io/library/alpine:edge");
	check_ref("docker://busybox", REG_REMOTE, "docker.io", "library/busybox", NULL,
		  NULL, NULL, "docker.io/library/busybox");
}

static void test_ref_hosts(void **state)
{
	struct reg_ref r;
	struct err e = ERR_INIT;

	(void)state;
	check_ref("localhost:5000/foo/bar:tag", REG_REMOTE, "localhost:5000", "foo/bar",
		  NULL, "tag", NULL, "localhost:5000/foo/bar:tag");
	check_ref("localhost/x", REG_REMOTE, "localhost", "x", NULL, NULL, NULL,
		  "localhost/x");
	check_ref("127.0.0.1:5000/x@" DG, REG_REMOTE, "127.0.0.1:5000", "x", NULL, NULL,
		  DG, "127.0.0.1:5000/x@" DG);
	check_ref("ghcr.io/org/repo:v1@" DG, REG_REMOTE, "ghcr.io", "org/repo", NULL,
		  "v1", DG, "ghcr.io/org/repo:v1@" DG);
	check_ref("[::1]:5000/a/b-c_d.e:T_1", REG_REMOTE, "[::1]:5000", "a/b-c_d.e", NULL,
		  "T_1", NULL, "[::1]:5000/a/b-c_d.e:T_1");
	check_ref("quay.io/a__b/c--d", REG_REMOTE, "quay.io", "a__b/c--d", NULL, NULL,
		  NULL, "quay.io/a__b/c--d");
	/* target: digest, else tag, else latest */
	assert_int_equal(reg_ref_parse(&r, "h.io/x", &e), 0);
	assert_string_equal(reg_ref_target(&r), "latest");
	reg_ref_release(&r);
	assert_int_equal(reg_ref_parse(&r, "h.io/x:t@" DG, &e), 0);
	assert_string_equal(reg_ref_target(&r), DG);
	reg_ref_release(&r);
}

static void test_ref_layout(void **state)
{
	(void)state;
	check_ref("oci:/tmp/store", REG_LAYOUT, NULL, NULL, "/tmp/store", NULL, NULL,
		  "oci:/tmp/store");
	check_ref("oci:dir:v1.0", REG_LAYOUT, NULL, NULL, "dir", "v1.0", NULL,
		  "oci:dir:v1.0");
	check_ref("oci:../d@" DG, REG_LAYOUT, NULL, NULL, "../d", NULL, DG,
		  "oci:../d@" DG);
}

static void test_ref_invalid(void **state)
{
	static const char *bad[] = {
		"", "oci:", "oci::tag", "oci:d:bad tag", "oci:d:-x",
		"docker.io/Library/x", "h.io/x:", "h.io/x:-x", "h.io/x:a b",
		"h.io/x@sha256:abc", "h.io/x@md5:" HEX64, "h.io/x@sha256:" HEX64 "0",
		"h.io:99999/x", "h.io:0/x", "h.io:port/x", "a//b", "h.io/a/", "h.io/",
		"h.io/x:" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		"h.io/x..y", "h.io/-x", "h.io/x-", "h.io/x___y", "[zz]:5000/x",
		"h_o.io/x", "@" DG,
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct reg_ref r;
		struct err e = ERR_INIT;

		if (reg_ref_parse(&r, bad[i], &e) != ERR_USAGE)
			fail_msg("'%s' parsed", bad[i]);
		assert_non_null(strstr(e.msg, "invalid reference"));
		assert_null(r.host);
	}
	assert_true(reg_tag_valid("_"));
	assert_true(reg_tag_valid("A.b-C_9"));
	assert_false(reg_tag_valid(".x"));
	assert_false(reg_digest_valid("sha256:" "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"));
}

static void test_default_store(void **state)
{
	char *s;

	(void)state;
	setenv("CTXPACK_STORE", "oci:/x/y", 1);
	env_load();
	s = reg_default_store();
	assert_string_equal(s, "oci:/x/y");
	free(s);
	unsetenv("CTXPACK_STORE");
	setenv("XDG_CACHE_HOME", "/tmp/xdg-unit", 1);
	env_load();
	s = reg_default_store();
	assert_string_equal(s, "oci:/tmp/xdg-unit/ctxpack/store");
	free(s);
	unsetenv("XDG_CACHE_HOME");
	env_load();
}

/* ---- WWW-Authenticate, Link, URLs ---- */

static void test_challenge(void **state)
{
	struct reg_challenge c;

	(void)state;
	assert_int_equal(reg_challenge_parse(
		"Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
		"scope=\"repository:samalba/my-app:pull,push\"", &c), 0);
	assert_int_equal(c.scheme, REG_AUTH_BEARER);
	assert_string_equal(c.realm, "https://auth.docker.io/token");
	assert_string_equal(c.service, "registry.docker.io");
	assert_string_equal(c.scope, "repository:samalba/my-app:pull,push");
	assert_null(c.error);
	reg_challenge_release(&c);

	/* several challenges: Bearer preferred; case, spaces, escapes, token values */
	assert_int_equal(reg_challenge_parse(
		"Basic realm=\"basic \\\"r\\\"\", BEARER realm=https://h/t , "
		"service = \"svc\", error=\"insufficient_scope\"", &c), 0);
	assert_int_equal(c.scheme, REG_AUTH_BEARER);
	assert_string_equal(c.realm, "https://h/t");
	assert_string_equal(c.service, "svc");
	assert_string_equal(c.error, "insufficient_scope");
	assert_null(c.scope);
	reg_challenge_release(&c);

	assert_int_equal(reg_challenge_parse("Basic realm=\"Registry \\\"x\\\" Realm\"", &c), 0);
	assert_int_equal(c.scheme, REG_AUTH_BASIC);
	assert_string_equal(c.realm, "Registry \"x\" Realm");
	reg_challenge_release(&c);

	/* Basic first, then an unknown scheme: Basic */
	assert_int_equal(reg_challenge_parse("Negotiate abc==, Basic realm=\"r\"", &c), 0);
	assert_int_equal(c.scheme, REG_AUTH_BASIC);
	reg_challenge_release(&c);

	assert_int_equal(reg_challenge_parse("Negotiate", &c), -1);
	assert_int_equal(reg_challenge_parse("", &c), -1);
	assert_int_equal(reg_challenge_parse(NULL, &c), -1);
}

static void test_link(void **state)
{
	char *s;

	(void)state;
	s = reg_link_next("</v2/x/tags/list?n=2&last=b>; rel=\"next\"");
	assert_string_equal(s, "/v2/x/tags/list?n=2&last=b");
	free(s);
	s = reg_link_next("<https://h/prev>; rel=\"prev\", <https://h/v2/x/tags/list?last=c>; "
			  "title=\"a, b\"; rel=next");
	assert_string_equal(s, "https://h/v2/x/tags/list?last=c");
	free(s);
	s = reg_link_next("</a>; rel=\"last next\"");
	assert_string_equal(s, "/a");
	free(s);
	assert_null(reg_link_next("</a>; rel=\"prev\""));
	assert_null(reg_link_next("</a>; rel=\"nextpage\""));
	assert_null(reg_link_next(""));
	assert_null(reg_link_next("garbage"));
}

static void test_url_resolve(void **state)
{
	const char *base = "http://127.0.0.1:5000/v2/x/blobs/uploads/";
	char *s;

	(void)state;
	s = reg_url_resolve(base, "/v2/x/blobs/uploads/uuid?_state=a%2Bb%3D%3D");
	assert_string_equal(s, "http://127.0.0.1:5000/v2/x/blobs/uploads/uuid?_state=a%2Bb%3D%3D");
	free(s);
	s = reg_url_resolve(base, "uuid2?x=1");
	assert_string_equal(s, "http://127.0.0.1:5000/v2/x/blobs/uploads/uuid2?x=1");
	free(s);
	s = reg_url_resolve(base, "https://cdn.example/blob?sig=abc");
	assert_string_equal(s, "https://cdn.example/blob?sig=abc");
	free(s);
	s = reg_url_resolve("https://h/v2/x/tags/list?n=2", "/v2/x/tags/list?n=2&last=b");
	assert_string_equal(s, "https://h/v2/x/tags/list?n=2&last=b");
	free(s);
	assert_true(reg_url_same_origin("https://h/a", "https://H:443/b"));
	assert_true(reg_url_same_origin("http://127.0.0.1:5000/a", "http://127.0.0.1:5000"));
	assert_false(reg_url_same_origin("http://127.0.0.1:5000/a", "http://127.0.0.1:5001/a"));
	assert_false(reg_url_same_origin("http://h/a", "https://h/a"));
	assert_false(reg_url_same_origin("https://h/a", "https://cdn.h/a"));
}

/* ---- credentials ---- */

static const char helper_script[] =
	"#!/bin/sh\n"
	"[ \"$1\" = get ] || exit 3\n"
	"read -r server\n"
	"case \"$server\" in\n"
	"helped.io) echo '{\"ServerURL\":\"helped.io\",\"Username\":\"hu\",\"Secret\":\"hs\"}' ;;\n"
	"tok.io) echo '{\"ServerURL\":\"tok.io\",\"Username\":\"<token>\",\"Secret\":\"refresh\"}' ;;\n"
	"broken.io) echo 'the keychain is locked'; exit 1 ;;\n"
	"*) echo 'credentials not found in native keychain'; exit 1 ;;\n"
	"esac\n";

struct credenv {
	char *dir;
	char *oldpath;
};

static int cred_setup(void **state)
{
	struct credenv *ce = xcalloc(1, sizeof(*ce));
	char *bin, *p;
	const char *old = getenv("PATH");

	ce->dir = tmpdir_new();
	ce->oldpath = xstrdup(old ? old : "/usr/bin:/bin");
	bin = xasprintf("%s/bin", ce->dir);
	mkdir(bin, 0755);
	/* a helper that knows one server and says "not found" to others */
	p = xasprintf("%s/docker-credential-unit", bin);
	write_file(p, helper_script, strlen(helper_script), 0755);
	free(p);
	p = xasprintf("%s:%s", bin, ce->oldpath);
	setenv("PATH", p, 1);
	env_load();
	free(p);
	free(bin);
	setenv("DOCKER_CONFIG", ce->dir, 1);
	unsetenv("REGISTRY_AUTH_FILE");
	env_load();
	*state = ce;
	return 0;
}

static int cred_teardown(void **state)
{
	struct credenv *ce = *state;

	setenv("PATH", ce->oldpath, 1);
	unsetenv("DOCKER_CONFIG");
	unsetenv("REGISTRY_AUTH_FILE");
	env_load();
	rm_rf(ce->dir);
	free(ce->dir);
	free(ce->oldpath);
	free(ce);
	return 0;
}

static void put_config(struct credenv *ce, const char *json)
{
	char *p = xasprintf("%s/config.json", ce->dir);

	write_str(p, json);
	free(p);
}

static void test_cred_auths(void **state)
{
	struct credenv *ce = *state;
	struct reg_cred c;
	struct err e = ERR_INIT;

	/* "user:pa:ss" base64; the split is on the first ':' */
	put_config(ce, "{\"auths\":{"
		       "\"https://index.docker.io/v1/\":{\"auth\":\"aHViOmh1YnB3\"},"
		       "\"127.0.0.1:5000\":{\"auth\":\"dXNlcjpwYTpzcw==\"},"
		       "\"https://reg.example:8443/v2/\":{\"username\":\"u2\",\"password\":\"p2\"},"
		       "\"acr.example\":{\"auth\":\"MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAwOg==\","
		       "\"identitytoken\":\"idtok\"},"
		       "\"ghcr.io\":{\"registrytoken\":\"regtok\"},"
		       "\"quay.io\":{}}}");
	assert_int_equal(reg_cred_lookup("127.0.0.1:5000", "x", &c, &e), 1);
	assert_string_equal(c.username, "user");
	assert_string_equal(c.password, "pa:ss");
	reg_cred_release(&c);
	assert_int_equal(reg_cred_lookup("docker.io", "library/alpine", &c, &e), 1);
	assert_string_equal(c.username, "hub");
	assert_string_equal(c.password, "hubpw");
	reg_cred_release(&c);
	assert_int_equal(reg_cred_lookup("reg.example:8443", "a", &c, &e), 1);
	assert_string_equal(c.username, "u2");
	assert_string_equal(c.password, "p2");
	reg_cred_release(&c);
	assert_int_equal(reg_cred_lookup("acr.example", "a", &c, &e), 1);
	assert_string_equal(c.identity_token, "idtok");
	assert_string_equal(c.username, "00000000-0000-0000-0000-000000000000");
	reg_cred_release(&c);
	assert_int_equal(reg_cred_lookup("ghcr.io", "a", &c, &e), 1);
	assert_string_equal(c.registry_token, "regtok");
	assert_null(c.username);
	reg_cred_release(&c);
	/* an empty entry only records a login; another port is another host */
	assert_int_equal(reg_cred_lookup("quay.io", "a", &c, &e), 0);
	assert_int_equal(reg_cred_lookup("127.0.0.1:5001", "a", &c, &e), 0);
	assert_int_equal(reg_cred_lookup("reg.example", "a", &c, &e), 0);
	assert_false(err_isset(&e));
}

static void test_cred_helpers(void **state)
{
	struct credenv *ce = *state;
	struct reg_cred c;
	struct err e = ERR_INIT;

	put_config(ce, "{\"credHelpers\":{\"helped.io\":\"unit\",\"tok.io\":\"unit\","
		       "\"broken.io\":\"unit\",\"missing.io\":\"nosuchhelper\"},"
		       "\"auths\":{\"other.io\":{\"auth\":\"YTpi\"}}}");
	assert_int_equal(reg_cred_lookup("helped.io", "x", &c, &e), 1);
	assert_string_equal(c.username, "hu");
	assert_string_equal(c.password, "hs");
	reg_cred_release(&c);
	assert_int_equal(reg_cred_lookup("tok.io", "x", &c, &e), 1);
	assert_string_equal(c.identity_token, "refresh");
	assert_null(c.password);
	reg_cred_release(&c);
	/* not a credHelpers host: auths */
	assert_int_equal(reg_cred_lookup("other.io", "x", &c, &e), 1);
	assert_string_equal(c.username, "a");
	assert_string_equal(c.password, "b");
	reg_cred_release(&c);
	/* a failing helper is an error with its message; secrets never are */
	assert_true(reg_cred_lookup("broken.io", "x", &c, &e) < 0);
	assert_non_null(strstr(e.msg, "the keychain is locked"));
	err_clear(&e);
	assert_true(reg_cred_lookup("missing.io", "x", &c, &e) < 0);
	assert_non_null(strstr(e.msg, "docker-credential-nosuchhelper"));
	err_clear(&e);

	/* credsStore for every host; "not found" falls back to auths, then anonymous */
	put_config(ce, "{\"credsStore\":\"unit\",\"auths\":{\"fallback.io\":{\"auth\":\"Yzpk\"}}}");
	assert_int_equal(reg_cred_lookup("helped.io", "x", &c, &e), 1);
	assert_string_equal(c.username, "hu");
	reg_cred_release(&c);
	assert_int_equal(reg_cred_lookup("fallback.io", "x", &c, &e), 1);
	assert_string_equal(c.username, "c");
	reg_cred_release(&c);
	assert_int_equal(reg_cred_lookup("nobody.io", "x", &c, &e), 0);
	assert_false(err_isset(&e));
}

static void test_cred_auth_file(void **state)
{
	struct credenv *ce = *state;
	struct reg_cred c;
	struct err e = ERR_INIT;
	char *p = xasprintf("%s/auth.json", ce->dir);

	/* podman's namespaced keys: the longest match wins */
	write_str(p, "{\"auths\":{\"quay.io\":{\"auth\":\"aG9zdDpo\"},"
		     "\"quay.io/org\":{\"auth\":\"b3JnOm8=\"},"
		     "\"quay.io/org/repo\":{\"auth\":\"cmVwbzpy\"}}}");
	setenv("REGISTRY_AUTH_FILE", p, 1);
	env_load();
	put_config(ce, "{\"auths\":{\"docker.only\":{\"auth\":\"ZDpk\"}}}");
	assert_int_equal(reg_cred_lookup("quay.io", "org/repo", &c, &e), 1);
	assert_string_equal(c.username, "repo");
	reg_cred_release(&c);
	assert_int_equal(reg_cred_lookup("quay.io", "org/other", &c, &e), 1);
	assert_string_equal(c.username, "org");
	reg_cred_release(&c);
	assert_int_equal(reg_cred_lookup("quay.io", "organic/x", &c, &e), 1);
	assert_string_equal(c.username, "host");
	reg_cred_release(&c);
	/* not in the auth file: the docker config is still read */
	assert_int_equal(reg_cred_lookup("docker.only", "x", &c, &e), 1);
	assert_string_equal(c.username, "d");
	reg_cred_release(&c);
	/* a broken file is an error naming it */
	write_str(p, "{not json");
	assert_true(reg_cred_lookup("quay.io", "x", &c, &e) < 0);
	assert_non_null(strstr(e.msg, "auth.json"));
	unsetenv("REGISTRY_AUTH_FILE");
	env_load();
	free(p);
}

/* ---- manifests ---- */

static void test_manifest_roundtrip(void **state)
{
	struct reg_kv lann[] = {{(char *)REG_ANNOT_TITLE, (char *)"node_modules.tar.zst"},
				{(char *)"dev.ctxpack.path", (char *)"node_modules"}};
	struct reg_kv mann[] = {{(char *)"dev.ctxpack.key", (char *)"npm-linux-abc"},
				{(char *)"org.opencontainers.image.created",
				 (char *)"2026-01-02T03:04:05Z"}};
	struct reg_desc l;
	struct reg_manifest m;
	struct buf b = BUF_INIT, b2 = BUF_INIT;
	struct err e = ERR_INIT;

	(void)state;
	memset(&l, 0, sizeof(l));
	l.media_type = (char *)REG_MT_LAYER_ZSTD;
	memcpy(l.digest, DG, sizeof(DG));
	l.size = 123456789;
	l.annotations = lann;
	l.nannotations = 2;
	assert_int_equal(reg_artifact_manifest(&b, "application/vnd.ctxpack.cache.v1", &l,
					       mann, 2, &e), 0);
	/* deterministic bytes */
	assert_int_equal(reg_artifact_manifest(&b2, "application/vnd.ctxpack.cache.v1", &l,
					       mann, 2, &e), 0);
	assert_string_equal(b.data, b2.data);
	assert_non_null(strstr(b.data, "\"config\":{\"digest\":\"" REG_EMPTY_DIGEST
				       "\",\"mediaType\":\"" REG_MT_EMPTY "\",\"size\":2}"));
	assert_int_equal(reg_manifest_parse(&m, b.data, b.len, &e), 0);
	assert_int_equal(m.schema_version, 2);
	assert_false(m.is_index);
	assert_string_equal(m.media_type, REG_MT_MANIFEST);
	assert_string_equal(m.artifact_type, "application/vnd.ctxpack.cache.v1");
	assert_string_equal(m.config.digest, REG_EMPTY_DIGEST);
	assert_string_equal(m.config.media_type, REG_MT_EMPTY);
	assert_int_equal(m.config.size, 2);
	assert_int_equal(m.nlayers, 1);
	assert_string_equal(m.layers[0].media_type, REG_MT_LAYER_ZSTD);
	assert_string_equal(m.layers[0].digest, DG);
	assert_int_equal(m.layers[0].size, 123456789);
	assert_string_equal(reg_annot_get(m.layers[0].annotations, m.layers[0].nannotations,
					  REG_ANNOT_TITLE), "node_modules.tar.zst");
	assert_string_equal(reg_annot_get(m.annotations, m.nannotations, "dev.ctxpack.key"),
			    "npm-linux-abc");
	assert_null(reg_annot_get(m.annotations, m.nannotations, "nope"));
	reg_manifest_release(&m);

	/* an index */
	{
		const char *idx = "{\"schemaVersion\":2,\"mediaType\":\"" REG_MT_INDEX "\","
				  "\"manifests\":[{\"mediaType\":\"" REG_MT_MANIFEST "\","
				  "\"digest\":\"" DG "\",\"size\":7,\"artifactType\":\"a/b\"}]}";

		assert_int_equal(reg_manifest_parse(&m, idx, strlen(idx), &e), 0);
		assert_true(m.is_index);
		assert_int_equal(m.nlayers, 1);
		assert_string_equal(m.layers[0].artifact_type, "a/b");
		reg_manifest_release(&m);
	}
	/* bad ones */
	{
		static const char *bad[] = {
			"not json", "[]", "{\"schemaVersion\":1}",
			"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"" DG
			"\",\"size\":2}}",
			"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"sha256:1\","
			"\"size\":2},\"layers\":[]}",
			"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"" DG
			"\",\"size\":-1},\"layers\":[]}",
			"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"" DG
			"\",\"size\":2},\"layers\":[{\"digest\":\"" DG "\",\"size\":1}]}",
			"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"" DG
			"\",\"size\":2},\"layers\":[],\"annotations\":{\"a\":1}}",
		};
		size_t i;

		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			err_clear(&e);
			if (reg_manifest_parse(&m, bad[i], strlen(bad[i]), &e) != ERR_CORRUPT)
				fail_msg("parsed bad manifest %zu", i);
		}
	}
	buf_release(&b);
	buf_release(&b2);
}

static void test_sniff(void **state)
{
	char *d = tmpdir_new(), *p = xasprintf("%s/f", d);
	const char *mt = NULL;
	struct err e = ERR_INIT;

	(void)state;
	write_file(p, "\x28\xb5\x2f\xfd\x00\x00", 6, 0644);
	assert_int_equal(reg_sniff_media_type(p, &mt, &e), 0);
	assert_string_equal(mt, REG_MT_LAYER_ZSTD);
	write_file(p, "\x1f\x8b\x08\x00", 4, 0644);
	assert_int_equal(reg_sniff_media_type(p, &mt, &e), 0);
	assert_string_equal(mt, REG_MT_LAYER_GZIP);
	write_file(p, "x", 1, 0644);
	assert_int_equal(reg_sniff_media_type(p, &mt, &e), 0);
	assert_string_equal(mt, REG_MT_LAYER_TAR);
	write_file(p, "", 0, 0644);
	assert_int_equal(reg_sniff_media_type(p, &mt, &e), 0);
	assert_string_equal(mt, REG_MT_LAYER_TAR);
	unlink(p);
	assert_int_equal(reg_sniff_media_type(p, &mt, &e), ERR_NOTFOUND);
	rm_rf(d);
	free(d);
	free(p);
}

/* ---- the local layout ---- */

static void test_layout(void **state)
{
	char *d = tmpdir_new(), *lay = xasprintf("%s/lay", d), *spec;
	char *f = xasprintf("%s/data.tar.zst", d), *out = xasprintf("%s/out", d);
	char mdg[REG_DIGEST_SIZE], dg2[REG_DIGEST_SIZE], *mt = NULL, fdg[REG_DIGEST_SIZE];
	struct reg_kv ann[] = {{(char *)"k", (char *)"v"}};
	struct reg_store *s = NULL;
	struct reg_push_in in;
	struct reg_push_out po;
	struct reg_manifest m;
	struct reg_tags tags;
	struct reg_stats st;
	struct buf b = BUF_INIT, fb = BUF_INIT;
	struct err e = ERR_INIT;
	uint64_t size, freed;
	char data[70000];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(data); i++)
		data[i] = (char)(i * 7 + i / 251);
	memcpy(data, "\x28\xb5\x2f\xfd", 4);
	write_file(f, data, sizeof(data), 0644);
	sha256_digest_str(data, sizeof(data), fdg);

	spec = xasprintf("oci:%s", lay);
	assert_int_equal(reg_store_open(&s, spec, NULL, &e), 0);
	assert_string_equal(reg_store_name(s), spec);
	/* nothing there yet: empty, not an error */
	assert_int_equal(reg_tags_list(s, &tags, &e), 0);
	assert_int_equal(tags.n, 0);
	assert_int_equal(reg_manifest_head(s, "v1", NULL, NULL, &e), 0);
	assert_int_equal(reg_manifest_get(s, "v1", &b, NULL, NULL, &e), ERR_NOTFOUND);
	err_clear(&e);
	assert_int_equal(reg_blob_exists(s, fdg, NULL, &e), 0);

	memset(&in, 0, sizeof(in));
	in.path = f;
	in.annotations = ann;
	in.nannotations = 1;
	assert_int_equal(reg_push_artifact(s, "v1", &in, &po, &e), 0);
	assert_string_equal(po.layer.digest, fdg);
	assert_string_equal(po.layer.media_type, REG_MT_LAYER_ZSTD);
	assert_int_equal(po.sent, sizeof(data));
	memcpy(mdg, po.digest, sizeof(mdg));
	reg_push_out_release(&po);
	/* again: nothing written, same digest, another tag */
	assert_int_equal(reg_push_artifact(s, "v2", &in, &po, &e), 0);
	assert_int_equal(po.sent, 0);
	assert_string_equal(po.digest, mdg);
	reg_push_out_release(&po);
	reg_store_stats(s, &st);
	assert_int_equal(st.blobs_skipped, 1);
	assert_int_equal(st.requests, 0);

	assert_int_equal(reg_blob_exists(s, fdg, &size, &e), 1);
	assert_int_equal(size, sizeof(data));
	assert_int_equal(reg_blob_exists(s, REG_EMPTY_DIGEST, &size, &e), 1);
	assert_int_equal(size, 2);
	assert_int_equal(reg_tags_list(s, &tags, &e), 0);
	assert_int_equal(tags.n, 2);
	assert_string_equal(tags.v[0], "v1");
	assert_string_equal(tags.v[1], "v2");
	reg_tags_release(&tags);

	/* get by tag and by digest; head */
	assert_int_equal(reg_manifest_get(s, "v1", &b, &mt, dg2, &e), 0);
	assert_string_equal(dg2, mdg);
	assert_string_equal(mt, REG_MT_MANIFEST);
	free(mt);
	assert_int_equal(reg_manifest_get(s, mdg, &b, NULL, dg2, &e), 0);
	assert_int_equal(reg_manifest_head(s, "v2", dg2, &size, &e), 1);
	assert_string_equal(dg2, mdg);
	assert_int_equal(size, b.len);
	assert_int_equal(reg_artifact_get(s, "v1", &m, NULL, &e), 0);
	assert_string_equal(reg_annot_get(m.annotations, m.nannotations, "k"), "v");
	assert_string_equal(reg_annot_get(m.layers[0].annotations, m.layers[0].nannotations,
					  REG_ANNOT_TITLE), "data.tar.zst");
	reg_manifest_release(&m);

	/* fetch to a file: verified, same bytes */
	assert_int_equal(reg_blob_fetch_file(s, fdg, sizeof(data), out, 0, &e), 0);
	assert_int_equal(buf_read_file(&fb, out, 0, &e), 0);
	assert_int_equal(fb.len, sizeof(data));
	assert_memory_equal(fb.data, data, sizeof(data));
	buf_release(&fb);
	unlink(out);

	/* a corrupt blob fails and leaves no output file */
	{
		char *bp = xasprintf("%s/blobs/sha256/%s", lay, fdg + 7);

		data[100] ^= 1;
		write_file(bp, data, sizeof(data), 0644);
		assert_int_equal(reg_blob_fetch_file(s, fdg, sizeof(data), out, 0, &e), ERR_CORRUPT);
		assert_non_null(strstr(e.msg, "digest"));
		err_clear(&e);
		assert_int_equal(access(out, F_OK), -1);
		/* wrong size too */
		assert_int_equal(reg_blob_fetch_file(s, fdg, 5, out, 0, &e), ERR_CORRUPT);
		err_clear(&e);
		assert_int_equal(access(out, F_OK), -1);
		data[100] ^= 1;
		write_file(bp, data, sizeof(data), 0644);
		free(bp);
	}
	/* a tag re-pointed replaces its index.json entry */
	in.annotations = NULL;
	in.nannotations = 0;
	assert_int_equal(reg_push_artifact(s, "v2", &in, &po, &e), 0);
	assert_string_not_equal(po.digest, mdg);
	reg_push_out_release(&po);
	assert_int_equal(reg_tags_list(s, &tags, &e), 0);
	assert_int_equal(tags.n, 2);
	reg_tags_release(&tags);

	/* delete */
	assert_int_equal(reg_manifest_delete(s, "v1", &e), 0);
	assert_int_equal(reg_manifest_delete(s, "v1", &e), ERR_NOTFOUND);
	err_clear(&e);
	assert_int_equal(reg_manifest_head(s, "v1", NULL, NULL, &e), 0);
	assert_int_equal(reg_tags_list(s, &tags, &e), 0);
	assert_int_equal(tags.n, 1);
	assert_string_equal(tags.v[0], "v2");
	reg_tags_release(&tags);
	/* gc: the v1 manifest goes, the shared layer and config stay */
	assert_int_equal(reg_store_gc(s, 0, &freed, &e), 0);
	assert_int_equal(freed, b.len);
	assert_int_equal(reg_blob_exists(s, mdg, NULL, &e), 0);
	assert_int_equal(reg_blob_exists(s, fdg, NULL, &e), 1);
	assert_int_equal(reg_blob_exists(s, REG_EMPTY_DIGEST, NULL, &e), 1);
	assert_int_equal(reg_manifest_delete(s, "v2", &e), 0);
	/* min_age keeps young blobs */
	assert_int_equal(reg_store_gc(s, 3600, &freed, &e), 0);
	assert_int_equal(freed, 0);
	assert_int_equal(reg_store_gc(s, 0, &freed, &e), 0);
	assert_true(freed > sizeof(data));
	assert_int_equal(reg_blob_exists(s, fdg, NULL, &e), 0);

	/* the layout files */
	{
		char *p = xasprintf("%s/oci-layout", lay);

		assert_int_equal(buf_read_file(&fb, p, 0, &e), 0);
		assert_string_equal(fb.data, "{\"imageLayoutVersion\":\"1.0.0\"}");
		buf_release(&fb);
		free(p);
	}
	/* bad input */
	assert_int_equal(reg_manifest_get(s, "bad tag", &b, NULL, NULL, &e), ERR_USAGE);
	err_clear(&e);
	assert_int_equal(reg_blob_exists(s, "sha256:xyz", NULL, &e), ERR_USAGE);
	err_clear(&e);
	assert_int_equal(reg_manifest_put(s, "t", "{}", 2, NULL, &e), ERR_USAGE);
	err_clear(&e);
	assert_int_equal(reg_blob_push_mem(s, "hello", 5, dg2, &e), 0);
	assert_int_equal(reg_blob_exists(s, dg2, &size, &e), 1);
	assert_int_equal(size, 5);

	reg_store_free(s);
	buf_release(&b);
	rm_rf(d);
	free(d);
	free(lay);
	free(spec);
	free(f);
	free(out);
}

/* Several processes tagging one layout at once lose no tag. */
/* 40,000 tags (listed in one pass), repeats dropped keeping the first
 * place, names that are not tags (a newline, an escape) dropped; and
 * put-if-absent on a layout. */
static void test_layout_tags(void **state)
{
	char *d = tmpdir_new(), *lay = xasprintf("%s/lay", d), *spec = xasprintf("oci:%s", lay);
	char *p = xasprintf("%s/index.json", lay), dg[REG_DIGEST_SIZE];
	static const char man[] = "{\"schemaVersion\":2,\"mediaType\":\"" REG_MT_MANIFEST "\","
				  "\"config\":{\"mediaType\":\"" REG_MT_EMPTY "\",\"digest\":\""
				  REG_EMPTY_DIGEST "\",\"size\":2},\"layers\":[]}";
	struct reg_store *s;
	struct reg_tags tags;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	size_t i;

	(void)state;
	assert_int_equal(reg_store_open(&s, spec, NULL, &e), 0);
	assert_int_equal(reg_manifest_put_new(s, "first", man, strlen(man), dg, &e), 0);
	assert_int_equal(reg_manifest_put_new(s, "first", man, strlen(man), NULL, &e), 1);
	buf_addstr(&b, "{\"schemaVersion\":2,\"manifests\":[");
	for (i = 0; i < 40000; i++)
		buf_addf(&b, "%s{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu,\"annotations\":"
			 "{\"org.opencontainers.image.ref.name\":\"t%05zu\"}}", i ? "," : "",
			 REG_MT_MANIFEST, dg, strlen(man), i % 30000 == 7 ? (size_t)7 : i);
	buf_addf(&b, ",{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":1,\"annotations\":"
		 "{\"org.opencontainers.image.ref.name\":\"bad\\ntag\"}}", REG_MT_MANIFEST, dg);
	buf_addf(&b, ",{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":1,\"annotations\":"
		 "{\"org.opencontainers.image.ref.name\":\"\\u001b[31m\"}}]}", REG_MT_MANIFEST, dg);
	write_file(p, b.data, b.len, 0644);
	assert_int_equal(reg_tags_list(s, &tags, &e), 0);
	assert_int_equal(tags.n, 39999); /* t00007 twice, two invalid */
	assert_string_equal(tags.v[0], "t00000");
	assert_string_equal(tags.v[7], "t00007");
	assert_string_equal(tags.v[8], "t00008");
	assert_string_equal(tags.v[tags.n - 1], "t39999");
	for (i = 0; i < tags.n; i++)
		assert_null(strpbrk(tags.v[i], "\n\x1b"));
	reg_tags_release(&tags);
	buf_release(&b);
	reg_store_free(s);
	rm_rf(d);
	free(d);
	free(lay);
	free(spec);
	free(p);
}

static void test_layout_concurrent(void **state)
{
	char *d = tmpdir_new(), *spec = xasprintf("oci:%s/lay", d);
	char *f = xasprintf("%s/blob", d);
	struct reg_store *s;
	struct reg_tags tags;
	struct err e = ERR_INIT;
	pid_t pids[4];
	int i, st;

	(void)state;
	write_file(f, "shared blob", 11, 0644);
	for (i = 0; i < 4; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			int k, bad = 0;

			for (k = 0; k < 10; k++) {
				struct reg_store *cs;
				struct reg_push_in in;
				struct err ce = ERR_INIT;
				char tag[32];

				memset(&in, 0, sizeof(in));
				in.path = f;
				snprintf(tag, sizeof(tag), "p%d-%d", i, k);
				if (reg_store_open(&cs, spec, NULL, &ce) ||
				    reg_push_artifact(cs, tag, &in, NULL, &ce))
					bad = 1;
				reg_store_free(cs);
			}
			_exit(bad);
		}
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	assert_int_equal(reg_store_open(&s, spec, NULL, &e), 0);
	assert_int_equal(reg_tags_list(s, &tags, &e), 0);
	assert_int_equal(tags.n, 40);
	reg_tags_release(&tags);
	reg_store_free(s);
	rm_rf(d);
	free(d);
	free(spec);
	free(f);
}


/* ---- a real registry: docker-registry started here on 127.0.0.1 ---- */

#define REGISTRY_BIN "/usr/bin/docker-registry"

struct regenv {
	char *dir;
	pid_t pid;
	int port;
	char host[64];
};

static int free_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof(a)) &&
	    !getsockname(fd, (struct sockaddr *)&a, &len))
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static int can_connect(int port)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = fd >= 0 && !connect(fd, (struct sockaddr *)&a, sizeof(a));
	if (fd >= 0)
		close(fd);
	return ok;
}

static int reg_setup(void **state)
{
	struct regenv *re = xcalloc(1, sizeof(*re));
	const int *deletes = *state; /* prestate: deletes enabled? */
	char *cfg, *yml, *logp;
	int i;

	*state = re;
	if (access(REGISTRY_BIN, X_OK))
		return 0; /* the tests skip */
	re->dir = tmpdir_new();
	re->port = free_port();
	snprintf(re->host, sizeof(re->host), "127.0.0.1:%d", re->port);
	cfg = xasprintf("%s/config.yml", re->dir);
	yml = xasprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
			"storage:\n  filesystem:\n    rootdirectory: %s/data\n"
			"  delete:\n    enabled: %s\n"
			"http:\n  addr: 127.0.0.1:%d\n  secret: unit\n", re->dir,
			deletes && *deletes ? "true" : "false", re->port);
	write_str(cfg, yml);
	logp = xasprintf("%s/log", re->dir);
	re->pid = fork();
	if (re->pid == 0) {
		int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		dup2(fd, 1);
		dup2(fd, 2);
		execl(REGISTRY_BIN, "docker-registry", "serve", cfg, (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 200 && !can_connect(re->port); i++) {
		struct timespec ts = {0, 50000000};

		nanosleep(&ts, NULL);
	}
	free(cfg);
	free(yml);
	free(logp);
	return can_connect(re->port) ? 0 : -1;
}

static int reg_teardown(void **state)
{
	struct regenv *re = *state;

	if (re->pid > 0) {
		kill(re->pid, SIGTERM);
		waitpid(re->pid, NULL, 0);
	}
	if (re->dir) {
		rm_rf(re->dir);
		free(re->dir);
	}
	free(re);
	return 0;
}

static void test_remote_api(void **state)
{
	struct regenv *re = *state;
	struct reg_store *s = NULL, *s2 = NULL;
	struct reg_push_in in;
	struct reg_push_out po;
	struct reg_tags tags;
	struct reg_blob_info bi;
	struct reg_stats st;
	struct reg_kv ann[] = {{(char *)"k", (char *)"one"}};
	struct buf b = BUF_INIT, fb = BUF_INIT;
	struct err e = ERR_INIT;
	char *spec, *f, *out, d1[REG_DIGEST_SIZE], d2[REG_DIGEST_SIZE], *mt = NULL;
	char data[300000];
	uint64_t size;
	size_t i;

	if (!re->pid)
		skip();
	for (i = 0; i < sizeof(data); i++)
		data[i] = (char)(i * 13 + i / 1000);
	f = xasprintf("%s/blob.bin", re->dir);
	out = xasprintf("%s/out.bin", re->dir);
	write_file(f, data, sizeof(data), 0644);
	spec = xasprintf("%s/unit/r", re->host);
	assert_int_equal(reg_store_open(&s, spec, NULL, &e), 0);
	assert_string_equal(reg_store_name(s), spec);

	/* a repository that does not exist: no tags, no manifest */
	assert_int_equal(reg_tags_list(s, &tags, &e), 0);
	assert_int_equal(tags.n, 0);
	assert_int_equal(reg_manifest_head(s, "v1", NULL, NULL, &e), 0);
	assert_int_equal(reg_manifest_get(s, "v1", &b, NULL, NULL, &e), ERR_NOTFOUND);
	assert_non_null(strstr(e.msg, "MANIFEST_UNKNOWN"));
	err_clear(&e);

	memset(&in, 0, sizeof(in));
	in.path = f;
	in.annotations = ann;
	in.nannotations = 1;
	if (reg_push_artifact(s, "v1", &in, &po, &e))
		fail_msg("push: %s", e.msg);
	memcpy(d1, po.digest, sizeof(d1));
	assert_int_equal(po.sent, sizeof(data));
	reg_push_out_release(&po);
	in.annotations = NULL;
	in.nannotations = 0;
	assert_int_equal(reg_push_artifact(s, "v2", &in, &po, &e), 0);
	memcpy(d2, po.digest, sizeof(d2));
	assert_int_equal(po.sent, 0);
	assert_string_not_equal(d1, d2);
	reg_push_out_release(&po);

	assert_int_equal(reg_tags_list(s, &tags, &e), 0);
	assert_int_equal(tags.n, 2);
	assert_string_equal(tags.v[0], "v1");
	assert_string_equal(tags.v[1], "v2");
	reg_tags_release(&tags);

	assert_int_equal(reg_manifest_head(s, "v1", d2, &size, &e), 1);
	assert_string_equal(d2, d1);
	assert_int_equal(reg_manifest_get(s, "v1", &b, &mt, d2, &e), 0);
	assert_string_equal(mt, REG_MT_MANIFEST);
	assert_string_equal(d2, d1);
	assert_int_equal(size, b.len);
	free(mt);
	assert_int_equal(reg_manifest_get(s, d1, &b, NULL, NULL, &e), 0);

	/* blobs */
	{
		char dg[REG_DIGEST_SIZE];

		sha256_digest_str(data, sizeof(data), dg);
		assert_int_equal(reg_blob_exists(s, dg, &size, &e), 1);
		assert_int_equal(size, sizeof(data));
		assert_int_equal(reg_blob_fetch_file(s, dg, sizeof(data), out, 0, &e), 0);
		assert_int_equal(buf_read_file(&fb, out, 0, &e), 0);
		assert_int_equal(fb.len, sizeof(data));
		assert_memory_equal(fb.data, data, sizeof(data));
		buf_release(&fb);
		/* the wrong expected size: an error, and no file */
		unlink(out);
		assert_int_equal(reg_blob_fetch_file(s, dg, 10, out, 0, &e), ERR_CORRUPT);
		err_clear(&e);
		assert_int_equal(access(out, F_OK), -1);
		assert_int_equal(reg_blob_fetch_file(s, DG, -1, out, 0, &e), ERR_NOTFOUND);
		assert_non_null(strstr(e.msg, "BLOB_UNKNOWN"));
		err_clear(&e);
		assert_int_equal(access(out, F_OK), -1);
		assert_int_equal(reg_blob_push_mem(s, "hello", 5, dg, &e), 0);
		assert_int_equal(reg_blob_exists(s, dg, &size, &e), 1);
		assert_int_equal(size, 5);

		/* cross-repository mount */
		free(spec);
		spec = xasprintf("%s/unit/other", re->host);
		assert_int_equal(reg_store_open(&s2, spec, NULL, &e), 0);
		assert_int_equal(reg_blob_push_file(s2, f, NULL, "unit/r", &bi, &e), 0);
		assert_true(bi.mounted);
		assert_int_equal(bi.sent, 0);
		assert_int_equal(reg_blob_push_file(s2, f, NULL, NULL, &bi, &e), 0);
		assert_true(bi.skipped);
		reg_store_stats(s2, &st);
		assert_int_equal(st.blobs_mounted, 1);
		assert_int_equal(st.blobs_skipped, 1);
		assert_int_equal(st.blob_bytes_sent, 0);
		assert_true(st.requests > 0);
		reg_store_free(s2);

		/* a mount alone (image bases): there, not there */
		free(spec);
		spec = xasprintf("%s/unit/third", re->host);
		assert_int_equal(reg_store_open(&s2, spec, NULL, &e), 0);
		sha256_digest_str(data, sizeof(data), dg);
		assert_int_equal(reg_blob_mount(s2, dg, "unit/r", &e), 1);
		assert_int_equal(reg_blob_exists(s2, dg, NULL, &e), 1);
		assert_int_equal(reg_blob_mount(s2, DG, "unit/r", &e), 0);
		assert_int_equal(reg_blob_exists(s2, DG, NULL, &e), 0);
		assert_int_equal(reg_blob_mount(s2, dg, "unit/third", &e), 0); /* itself */
		assert_int_equal(reg_blob_mount(s2, dg, "Bad Repo", &e), ERR_USAGE);
		err_clear(&e);
		reg_store_stats(s2, &st);
		assert_int_equal(st.blobs_mounted, 1);
		reg_store_free(s2);

		/* a small blob into memory, verified and bounded */
		sha256_digest_str("hello", 5, dg);
		assert_int_equal(reg_blob_fetch_mem(s, dg, 5, 100, &fb, &e), 0);
		assert_int_equal(fb.len, 5);
		assert_memory_equal(fb.data, "hello", 5);
		assert_int_equal(reg_blob_fetch_mem(s, dg, 5, 4, &fb, &e), ERR_CORRUPT);
		err_clear(&e);
		assert_int_equal(reg_blob_fetch_mem(s, dg, 4, 100, &fb, &e), ERR_CORRUPT);
		err_clear(&e);
		assert_int_equal(fb.len, 0);
		buf_release(&fb);
	}

	/* a manifest whose blob is missing: the registry's own error */
	{
		const char *bad = "{\"schemaVersion\":2,\"mediaType\":\"" REG_MT_MANIFEST "\","
				  "\"config\":{\"mediaType\":\"" REG_MT_EMPTY "\",\"digest\":\""
				  REG_EMPTY_DIGEST "\",\"size\":2},\"layers\":[{\"mediaType\":\""
				  REG_MT_LAYER_TAR "\",\"digest\":\"" DG "\",\"size\":1}]}";

		assert_int_equal(reg_manifest_put(s, "bad", bad, strlen(bad), NULL, &e), ERR_FAIL);
		assert_non_null(strstr(e.msg, "put manifest bad: MANIFEST_BLOB_UNKNOWN"));
		err_clear(&e);
	}

	/* delete: distribution 2.x deletes by digest, ctxpack resolves the tag */
	if (reg_manifest_delete(s, "v1", &e))
		fail_msg("delete: %s", e.msg);
	assert_int_equal(reg_manifest_head(s, "v1", NULL, NULL, &e), 0);
	assert_int_equal(reg_manifest_head(s, "v2", NULL, NULL, &e), 1);
	assert_int_equal(reg_manifest_delete(s, "v1", &e), ERR_NOTFOUND);
	err_clear(&e);
	assert_int_equal(reg_tags_list(s, &tags, &e), 0);
	assert_int_equal(tags.n, 1);
	assert_string_equal(tags.v[0], "v2");
	reg_tags_release(&tags);
	assert_int_equal(reg_store_gc(s, 0, NULL, &e), 0);

	reg_store_free(s);
	buf_release(&b);
	free(spec);
	free(f);
	free(out);
}

/* A registry with deletes turned off says so, and ctxpack reports it. */
static void test_remote_no_delete(void **state)
{
	struct regenv *re = *state;
	struct reg_store *s = NULL;
	struct reg_push_in in;
	struct err e = ERR_INIT;
	char *spec, *f;

	if (!re->pid)
		skip();
	f = xasprintf("%s/blob.bin", re->dir);
	write_file(f, "some bytes", 10, 0644);
	spec = xasprintf("%s/unit/nodel", re->host);
	assert_int_equal(reg_store_open(&s, spec, NULL, &e), 0);
	memset(&in, 0, sizeof(in));
	in.path = f;
	assert_int_equal(reg_push_artifact(s, "v1", &in, NULL, &e), 0);
	assert_int_equal(reg_manifest_delete(s, "v1", &e), ERR_FAIL);
	assert_non_null(strstr(e.msg, "the registry does not allow deletes (405 UNSUPPORTED"));
	err_clear(&e);
	assert_int_equal(reg_manifest_head(s, "v1", NULL, NULL, &e), 1);
	reg_store_free(s);
	free(spec);
	free(f);
}

/*
 * A blob of unknown digest big enough to stream up while it is hashed (the
 * hash made slow, so that it surely is): the digest comes out right, every
 * byte is sent once, the blob comes back whole; pushed again (digest not
 * cached: the file is too fresh), it ends skipped or sent whole, and right
 * either way.
 */
static void test_remote_stream(void **state)
{
	struct regenv *re = *state;
	struct reg_store *s = NULL;
	struct reg_opts o;
	struct reg_blob_info bi;
	struct reg_stats st;
	struct err e = ERR_INIT;
	char *spec, *f, *out, *xdg, dg[REG_DIGEST_SIZE], dg2[REG_DIGEST_SIZE];
	const size_t n = 20u << 20;
	char *data = xmalloc(n);
	uint64_t size;
	size_t i;

	if (!re->pid)
		skip();
	for (i = 0; i < n; i++)
		data[i] = (char)(i * 7 + i / 4093);
	f = xasprintf("%s/stream.bin", re->dir);
	out = xasprintf("%s/stream.out", re->dir);
	xdg = xasprintf("%s/xdg", re->dir);
	setenv("XDG_CACHE_HOME", xdg, 1);
	setenv("CTXPACK_TEST_HASH_DELAY_MS", "200", 1);
	env_load();
	write_file(f, data, n, 0644);
	assert_int_equal(sha256_file(f, dg, &size, &e), 0);
	reg_opts_init(&o);
	o.overlap_min = 1u << 20;
	spec = xasprintf("%s/unit/stream", re->host);
	assert_int_equal(reg_store_open(&s, spec, &o, &e), 0);
	if (reg_blob_push_file(s, f, NULL, NULL, &bi, &e))
		fail_msg("push: %s", e.msg);
	assert_string_equal(bi.digest, dg);
	assert_int_equal(bi.size, n);
	assert_false(bi.skipped);
	assert_int_equal(bi.sent, n);
	reg_store_stats(s, &st);
	assert_int_equal(st.blob_bytes_sent, n);
	assert_int_equal(reg_blob_fetch_file(s, dg, (int64_t)n, out, 0, &e), 0);
	assert_int_equal(sha256_file(out, dg2, &size, &e), 0);
	assert_string_equal(dg2, dg);
	if (reg_blob_push_file(s, f, NULL, NULL, &bi, &e))
		fail_msg("push again: %s", e.msg);
	assert_string_equal(bi.digest, dg);
	assert_true(bi.skipped || bi.sent == n);
	reg_store_free(s);
	unsetenv("XDG_CACHE_HOME");
	unsetenv("CTXPACK_TEST_HASH_DELAY_MS");
	env_load();
	free(spec);
	free(xdg);
	free(out);
	free(f);
	free(data);
}

/* ---- image configs and manifests ---- */

#define DG1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define DG2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"

static void config_ok(struct buf *out, const char *base, const struct reg_config_edit *ed)
{
	struct err e = ERR_INIT;

	if (reg_image_config(out, base, base ? strlen(base) : 0, ed, &e))
		fail_msg("reg_image_config: %s", e.msg);
}

static void test_image_config(void **state)
{
	static const char *const env1[] = {"PATH=/app/.venv/bin:$PATH", "PYTHONUNBUFFERED=1"};
	static const char *const cmd1[] = {"uvicorn", "app.main:app"};
	static const char *const exp1[] = {"8000/tcp"};
	static const char *const ids1[] = {DG1};
	struct reg_kv lab1[] = {{(char *)"org.example.team", (char *)"web"}};
	struct reg_history_in h1[] = {{"COPY dir:1111 in /app", "ctxpack image", 0},
				      {"CMD [\"uvicorn\"]", NULL, 1}};
	struct reg_config_edit ed;
	struct reg_config_info ci;
	struct buf out = BUF_INIT, again = BUF_INIT;
	struct err e = ERR_INIT;
	const char *base;

	/* scratch */
	memset(&ed, 0, sizeof(ed));
	ed.created = 946684800;
	ed.env = env1;
	ed.nenv = 2;
	ed.workdir = "/app";
	ed.set_cmd = 1;
	ed.cmd = cmd1;
	ed.ncmd = 2;
	ed.expose = exp1;
	ed.nexpose = 1;
	ed.labels = lab1;
	ed.nlabels = 1;
	ed.user = "65534";
	ed.diff_ids = ids1;
	ed.ndiff_ids = 1;
	ed.history = h1;
	ed.nhistory = 2;
	config_ok(&out, NULL, &ed);
	assert_string_equal(out.data,
		"{\"architecture\":\"amd64\",\"config\":{\"Cmd\":[\"uvicorn\",\"app.main:app\"],"
		"\"Env\":[\"PATH=/app/.venv/bin:\",\"PYTHONUNBUFFERED=1\"],"
		"\"ExposedPorts\":{\"8000/tcp\":{}},\"Labels\":{\"org.example.team\":\"web\"},"
		"\"User\":\"65534\",\"WorkingDir\":\"/app\"},\"created\":\"2000-01-01T00:00:00Z\","
		"\"history\":[{\"comment\":\"ctxpack image\",\"created\":\"2000-01-01T00:00:00Z\","
		"\"created_by\":\"COPY dir:1111 in /app\"},{\"created\":\"2000-01-01T00:00:00Z\","
		"\"created_by\":\"CMD [\\\"uvicorn\\\"]\",\"empty_layer\":true}],\"os\":\"linux\","
		"\"rootfs\":{\"diff_ids\":[\"" DG1 "\"],\"type\":\"layers\"}}");
	config_ok(&again, NULL, &ed);
	assert_string_equal(again.data, out.data);

	/* a base as docker writes it: only the OCI fields stay; ENV expands
	 * against what is there; a relative WORKDIR; ENTRYPOINT drops the
	 * base's CMD */
	base = "{\"architecture\":\"amd64\",\"config\":{\"Cmd\":[\"sh\"],\"Env\":"
	       "[\"PATH=/usr/bin:/bin\",\"A=1\"],\"Hostname\":\"\",\"WorkingDir\":\"/srv\"},"
	       "\"container\":\"abc\",\"container_config\":{\"Cmd\":[\"x\"]},"
	       "\"created\":\"2020-01-01T00:00:00.123Z\",\"docker_version\":\"20.10.24\","
	       "\"history\":[{\"created\":\"2020-01-01T00:00:00.123Z\",\"created_by\":\"import\"}],"
	       "\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" DG2 "\"]}}";
	{
		static const char *const env2[] = {
			"PATH=/app/.venv/bin:$PATH", "B=${A}-${NOPE:-d}-${A:+set}-${NOPE:+x}",
			"C=\\$A $ $1 a$", "A=2", "D=$A"};
		static const char *const ep[] = {"python"};

		memset(&ed, 0, sizeof(ed));
		ed.created = 1700000000;
		ed.base_layers = 1;
		ed.env = env2;
		ed.nenv = 5;
		ed.workdir = "app/./x/../api";
		ed.set_entrypoint = 1;
		ed.entrypoint = ep;
		ed.nentrypoint = 1;
		ed.diff_ids = ids1;
		ed.ndiff_ids = 1;
		config_ok(&out, base, &ed);
		assert_string_equal(out.data,
			"{\"architecture\":\"amd64\",\"config\":{\"Entrypoint\":[\"python\"],"
			"\"Env\":[\"PATH=/app/.venv/bin:/usr/bin:/bin\",\"A=2\",\"B=1-d-set-\","
			"\"C=$A $ $1 a$\",\"D=2\"],\"Hostname\":\"\",\"WorkingDir\":\"/srv/app/api\"},"
			"\"created\":\"2023-11-14T22:13:20Z\",\"history\":[{\"created\":"
			"\"2020-01-01T00:00:00.123Z\",\"created_by\":\"import\"}],\"os\":\"linux\","
			"\"rootfs\":{\"diff_ids\":[\"" DG2 "\",\"" DG1 "\"],\"type\":\"layers\"}}");
		/* an empty CMD and ENTRYPOINT remove both; ".." stops at / */
		ed.nentrypoint = 0;
		ed.set_cmd = 1;
		ed.ncmd = 0;
		ed.nenv = 0;
		ed.workdir = "../../..";
		config_ok(&out, base, &ed);
		assert_null(strstr(out.data, "Cmd"));
		assert_null(strstr(out.data, "Entrypoint"));
		assert_non_null(strstr(out.data, "\"WorkingDir\":\"/\""));
	}
	assert_int_equal(reg_config_info(base, strlen(base), &ci, &e), 0);
	assert_string_equal(ci.os, "linux");
	assert_string_equal(ci.architecture, "amd64");
	assert_null(ci.variant);
	assert_int_equal(ci.ndiff_ids, 1);
	reg_config_info_release(&ci);

	/* the base's layers must match its manifest's */
	ed.base_layers = 2;
	assert_int_equal(reg_image_config(&out, base, strlen(base), &ed, &e), ERR_CORRUPT);
	assert_non_null(strstr(e.msg, "diff_ids"));
	err_clear(&e);
	ed.base_layers = 1;
	/* bad bases, bad edits */
	assert_int_equal(reg_image_config(&out, "[1]", 3, &ed, &e), ERR_CORRUPT);
	err_clear(&e);
	assert_int_equal(reg_image_config(&out, "{\"rootfs\":{\"diff_ids\":[\"x\"]}}", 29, &ed,
					  &e), ERR_CORRUPT);
	err_clear(&e);
	assert_int_equal(reg_config_info("{}", 2, &ci, &e), ERR_CORRUPT);
	err_clear(&e);
	{
		static const char *const bad[] = {"A=${B", "A=${B:x}", "A=${}", "=x", "NOEQ"};
		size_t i;

		for (i = 0; i < 5; i++) {
			ed.env = &bad[i];
			ed.nenv = 1;
			assert_int_equal(reg_image_config(&out, base, strlen(base), &ed, &e),
					 ERR_USAGE);
			err_clear(&e);
		}
	}
	buf_release(&out);
	buf_release(&again);
}

static void test_image_manifest(void **state)
{
	struct reg_desc cfg, layers[2];
	struct reg_kv ann[] = {{(char *)REG_ANNOT_BASE_DIGEST, (char *)DG2}};
	struct reg_manifest m;
	struct buf out = BUF_INIT;
	struct err e = ERR_INIT;
	const char *idx;

	memset(&cfg, 0, sizeof(cfg));
	memset(layers, 0, sizeof(layers));
	cfg.media_type = (char *)REG_MT_IMAGE_CONFIG;
	memcpy(cfg.digest, DG1, sizeof(DG1));
	cfg.size = 123;
	layers[0].media_type = (char *)REG_MT_LAYER_GZIP;
	memcpy(layers[0].digest, DG2, sizeof(DG2));
	layers[0].size = 1000;
	layers[1].media_type = (char *)REG_MT_LAYER_ZSTD;
	memcpy(layers[1].digest, DG1, sizeof(DG1));
	layers[1].size = 2000;
	assert_int_equal(reg_image_manifest(&out, &cfg, layers, 2, ann, 1, &e), 0);
	assert_string_equal(out.data,
		"{\"annotations\":{\"" REG_ANNOT_BASE_DIGEST "\":\"" DG2 "\"},"
		"\"config\":{\"digest\":\"" DG1 "\",\"mediaType\":\"" REG_MT_IMAGE_CONFIG "\","
		"\"size\":123},\"layers\":[{\"digest\":\"" DG2 "\",\"mediaType\":\""
		REG_MT_LAYER_GZIP "\",\"size\":1000},{\"digest\":\"" DG1 "\",\"mediaType\":\""
		REG_MT_LAYER_ZSTD "\",\"size\":2000}],\"mediaType\":\"" REG_MT_MANIFEST "\","
		"\"schemaVersion\":2}");
	assert_int_equal(reg_manifest_parse(&m, out.data, out.len, &e), 0);
	assert_int_equal(m.nlayers, 2);
	assert_string_equal(m.config.media_type, REG_MT_IMAGE_CONFIG);
	reg_manifest_release(&m);

	/* an index's platforms */
	idx = "{\"schemaVersion\":2,\"mediaType\":\"" REG_MT_DOCKER_LIST "\",\"manifests\":["
	      "{\"mediaType\":\"" REG_MT_DOCKER_MANIFEST "\",\"digest\":\"" DG1 "\",\"size\":1,"
	      "\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v7\"}},"
	      "{\"mediaType\":\"" REG_MT_DOCKER_MANIFEST "\",\"digest\":\"" DG2 "\",\"size\":2,"
	      "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}},"
	      "{\"mediaType\":\"" REG_MT_MANIFEST "\",\"digest\":\"" DG2 "\",\"size\":3}]}";
	assert_int_equal(reg_manifest_parse(&m, idx, strlen(idx), &e), 0);
	assert_true(m.is_index);
	assert_int_equal(m.nlayers, 3);
	assert_string_equal(m.layers[0].architecture, "arm");
	assert_string_equal(m.layers[0].variant, "v7");
	assert_string_equal(m.layers[1].os, "linux");
	assert_string_equal(m.layers[1].architecture, "amd64");
	assert_null(m.layers[1].variant);
	assert_null(m.layers[2].os);
	reg_manifest_release(&m);

	assert_string_equal(reg_layer_oci_type(REG_MT_DOCKER_LAYER_GZIP), REG_MT_LAYER_GZIP);
	assert_string_equal(reg_layer_oci_type(REG_MT_DOCKER_LAYER_FOREIGN),
			    REG_MT_LAYER_NONDIST_GZIP);
	assert_string_equal(reg_layer_oci_type(REG_MT_LAYER_ZSTD), REG_MT_LAYER_ZSTD);
	{
		char t[32];

		reg_time_rfc3339(0, t);
		assert_string_equal(t, "1970-01-01T00:00:00Z");
		reg_time_rfc3339(253402300799LL, t);
		assert_string_equal(t, "9999-12-31T23:59:59Z");
	}
	buf_release(&out);
}

static const int deletes_on = 1, deletes_off = 0;

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ref_docker_hub),
		cmocka_unit_test(test_ref_hosts),
		cmocka_unit_test(test_ref_layout),
		cmocka_unit_test(test_ref_invalid),
		cmocka_unit_test(test_default_store),
		cmocka_unit_test(test_challenge),
		cmocka_unit_test(test_link),
		cmocka_unit_test(test_url_resolve),
		cmocka_unit_test_setup_teardown(test_cred_auths, cred_setup, cred_teardown),
		cmocka_unit_test_setup_teardown(test_cred_helpers, cred_setup, cred_teardown),
		cmocka_unit_test_setup_teardown(test_cred_auth_file, cred_setup, cred_teardown),
		cmocka_unit_test(test_manifest_roundtrip),
		cmocka_unit_test(test_sniff),
		cmocka_unit_test(test_image_config),
		cmocka_unit_test(test_image_manifest),
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_layout_concurrent),
		cmocka_unit_test(test_layout_tags),
		cmocka_unit_test_prestate_setup_teardown(test_remote_api, reg_setup, reg_teardown,
							 (void *)&deletes_on),
		cmocka_unit_test_prestate_setup_teardown(test_remote_no_delete, reg_setup,
							 reg_teardown, (void *)&deletes_off),
		cmocka_unit_test_prestate_setup_teardown(test_remote_stream, reg_setup,
							 reg_teardown, (void *)&deletes_on),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
