/*
 * builder: what `ctxpack build` is about to run, read from COMMAND's own
 * words (docs/build.md): which builder reads the context, how it wants it
 * (an uncompressed tar, gzip, zstd, or a directory), where its daemon is,
 * and which words name the context and the Dockerfile.
 *
 * Docker decides between its two builders like this, and so do we:
 *  - `docker buildx build`: BuildKit;
 *  - DOCKER_BUILDKIT (in ctxpack's environment, or set by an `env VAR=...`
 *    in front of COMMAND), parsed as Go's strconv.ParseBool: 1/true is
 *    BuildKit, 0/false the classic builder;
 *  - otherwise a client of version 23 or later runs BuildKit through the
 *    buildx plugin when it is installed, and the classic builder (with a
 *    deprecation notice) when it is not; an older client asks the daemon
 *    (the Builder-Version header of GET /_ping: "2" is BuildKit).
 * With BuildKit, a client older than 23 walks the context with the file
 * sync library of 2020 (dockerignore rules of its own: WALK_FSUTIL2020);
 * with either builder such a client matches the patterns with the
 * deprecated rule of its time (WALK_OLD_MATCHER).
 * The client's version comes from `docker --version`, kept in
 * $XDG_CACHE_HOME/ctxpack/docker-clients by the binary's identity (path,
 * inode, size, mtime): the Go client takes 0.1-0.3 s to start.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"

/* docker build / buildx build options that take a value */
static const char *const value_opts[] = {
	"add-host", "allow", "annotation", "attest", "build-arg", "build-context", "builder",
	"cache-from", "cache-to", "call", "cgroup-parent", "cpu-period", "cpu-quota",
	"cpu-shares", "cpuset-cpus", "cpuset-mems", "file", "iidfile", "isolation", "label",
	"memory", "memory-swap", "metadata-file", "network", "output", "platform",
	"progress", "provenance", "sbom", "secret", "security-opt", "shm-size", "ssh", "tag",
	"target", "ulimit", NULL,
};
/* their short forms that take a value */
#define VALUE_SHORTS "fmtoc"

/* docker's global options that take a value */
static const char *const global_value_opts[] = {
	"host", "context", "config", "log-level", "tlscacert", "tlscert", "tlskey", NULL,
};
#define GLOBAL_VALUE_SHORTS "Hcl"

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

static int in_list(const char *const *list, const char *s, size_t n)
{
	for (; *list; list++)
		if (strlen(*list) == n && !memcmp(*list, s, n))
			return 1;
	return 0;
}

/* A long option "--NAME" or "--NAME=VALUE" (a, from its dashes): NAME's
 * length; *val is VALUE, or NULL without '='. */
static size_t long_opt(const char *a, const char **val)
{
	const char *eq = strchr(a + 2, '=');

	*val = eq ? eq + 1 : NULL;
	return eq ? (size_t)(eq - a - 2) : strlen(a + 2);
}

/* Go's strconv.ParseBool: 1 true, 0 false, -1 neither. */
static int parse_bool(const char *s)
{
	static const char *const t[] = {"1", "t", "T", "TRUE", "true", "True", NULL};
	static const char *const f[] = {"0", "f", "F", "FALSE", "false", "False", NULL};
	size_t n = strlen(s);

	if (in_list(t, s, n))
		return 1;
	if (in_list(f, s, n))
		return 0;
	return -1;
}

/* A variable as COMMAND will see it: an `env NAME=...` word in the
 * command, else ours (env_value), which COMMAND inherits. */
static const char *cmd_env(const struct builder *b, const char *name)
{
	size_t n = strlen(name);
	int i;

	for (i = b->env_from; i < b->env_to; i++)
		if (!strncmp(b->argv[i], name, n) && b->argv[i][n] == '=')
			return b->argv[i] + n + 1;
	return env_value(name);
}

/* ---- where the daemon is ---- */

static char *read_small_file(const char *path, size_t max)
{
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;

	if (buf_read_file(&b, path, max, &e)) {
		buf_release(&b);
		return NULL;
	}
	return buf_detach(&b, NULL);
}

/* The string value of "key" in a JSON text, by a plain scan (the docker
 * CLI's own files, written by it: no escapes in these values). */
static char *json_string(const char *json, const char *key)
{
	size_t kn = strlen(key);
	const char *p = json;

	while ((p = strstr(p, key))) {
		const char *q = p + kn, *end;

		p = q;
		if (q - kn == json || q[-kn - 1] != '"' || *q != '"')
			continue;
		q++;
		while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
			q++;
		if (*q++ != ':')
			continue;
		while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
			q++;
		if (*q++ != '"')
			continue;
		end = strchr(q, '"');
		if (!end)
			return NULL;
		return xstrndup(q, (size_t)(end - q));
	}
	return NULL;
}

static char *docker_config_dir(const struct builder *b)
{
	const char *d = b->config_dir ? b->config_dir : cmd_env(b, "DOCKER_CONFIG");
	const char *home = env_get()->home;

	if (d && *d)
		return xstrdup(d);
	return xasprintf("%s/.docker", home ? home : "/root");
}

/* The daemon address from a docker context's metadata (its directory is
 * named by the sha256 of the context's name). */
static char *context_host(const char *cfgdir, const char *name)
{
	unsigned char md[32];
	char hex[65], *path, *json, *host;
	struct sha256 s;

	sha256_init(&s, 0);
	sha256_update(&s, name, strlen(name));
	sha256_final(&s, md);
	hex_encode(hex, md, 32);
	path = xasprintf("%s/contexts/meta/%s/meta.json", cfgdir, hex);
	json = read_small_file(path, 1 << 20);
	free(path);
	if (!json)
		return NULL;
	host = json_string(json, "Host");
	free(json);
	return host;
}

static void find_host(struct builder *b)
{
	const char *env = cmd_env(b, "DOCKER_HOST"), *ctx;
	char *cfgdir, *cur = NULL;

	if (b->host_opt) {
		b->host = xstrdup(b->host_opt);
		return;
	}
	ctx = b->context_opt ? b->context_opt : cmd_env(b, "DOCKER_CONTEXT");
	if (!ctx && env && *env) {
		b->host = xstrdup(env);
		return;
	}
	cfgdir = docker_config_dir(b);
	if (!ctx) {
		char *p = xasprintf("%s/config.json", cfgdir), *json = read_small_file(p, 4 << 20);

		free(p);
		if (json)
			cur = json_string(json, "currentContext");
		free(json);
		ctx = cur;
	}
	if (ctx && *ctx && strcmp(ctx, "default"))
		b->host = context_host(cfgdir, ctx);
	free(cur);
	free(cfgdir);
}

/* A daemon reached through a local socket (the default one, unix://,
 * npipe://, fd://); tcp:// and ssh:// go over a network, even to this
 * machine's own addresses. */
static int host_is_local(const char *h)
{
	return !h || !*h || !strncmp(h, "unix://", 7) || !strncmp(h, "npipe://", 8) ||
	       !strncmp(h, "fd://", 5);
}

/* ---- which builder docker runs ---- */

/* The Builder-Version the daemon on a unix socket announces, or 0. */
static int ping_builder_version(const char *host)
{
	struct sockaddr_un sa;
	const char *path = host && !strncmp(host, "unix://", 7) ? host + 7 : "/var/run/docker.sock";
	static const char req[] = "GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n";
	char resp[4096];
	size_t got = 0;
	int fd, v = 0;
	char *h;

	if (host && *host && strncmp(host, "unix://", 7))
		return 0;
	if (strlen(path) >= sizeof(sa.sun_path))
		return 0;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) || write_all(fd, req, sizeof(req) - 1)) {
		close(fd);
		return 0;
	}
	while (got < sizeof(resp) - 1) {
		struct pollfd pf = {fd, POLLIN, 0};
		ssize_t k;

		if (poll(&pf, 1, 2000) <= 0)
			break;
		k = read(fd, resp + got, sizeof(resp) - 1 - got);
		if (k <= 0)
			break;
		got += (size_t)k;
		resp[got] = '\0';
		if (strstr(resp, "\r\n\r\n"))
			break;
	}
	close(fd);
	resp[got] = '\0';
	for (h = resp; (h = strchr(h, '\n')); h++)
		if (!strncasecmp(h + 1, "Builder-Version:", 16)) {
			const char *q = h + 17;

			while (*q == ' ')
				q++;
			v = atoi(q);
			break;
		}
	return v;
}

/* The full path of prog as execvp would find it, or NULL. */
static char *which(const char *prog)
{
	const char *path = env_get()->path, *p;

	if (strchr(prog, '/'))
		return access(prog, X_OK) ? NULL : xstrdup(prog);
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path;; ) {
		const char *c = strchr(p, ':');
		size_t n = c ? (size_t)(c - p) : strlen(p);
		char *f = xasprintf("%.*s/%s", (int)n, n ? p : ".", prog);

		if (!access(f, X_OK))
			return f;
		free(f);
		if (!c)
			return NULL;
		p = c + 1;
	}
}

/* "Docker version 20.10.24+dfsg1, build ..." -> 20; 0 when unknown. */
static int run_version(const char *bin)
{
	char *argv[] = {(char *)bin, (char *)"--version", NULL};
	struct buf out = BUF_INIT;
	int st, major = 0;

	st = run_capture(argv, NULL, 0, &out, 255, 10000, RUN_NO_STDERR);
	if (st != -1 && out.len && !strncmp(out.data, "Docker version ", 15))
		major = atoi(out.data + 15);
	buf_release(&out);
	return major;
}

/* The client's major version, from the cache file or by running it. */
static int client_major(const char *prog)
{
	char *bin = which(prog), *cache, *home, *data, key[512];
	struct stat st;
	int major = 0;

	if (!bin || stat(bin, &st)) {
		free(bin);
		return 0;
	}
	snprintf(key, sizeof(key), "%llu %llu %lld.%09ld %s\t",
		 (unsigned long long)st.st_ino, (unsigned long long)st.st_size,
		 (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, bin);
	home = cache_home();
	cache = xasprintf("%s/docker-clients", home);
	free(home);
	if ((data = read_small_file(cache, 1 << 16))) {
		char *p = strstr(data, key);

		if (p && (p == data || p[-1] == '\n'))
			major = atoi(p + strlen(key));
	}
	if (!major) {
		major = run_version(bin);
		if (major) {
			struct err e = ERR_INIT;
			struct buf b = BUF_INIT;
			char *dir = xstrdup(cache);

			*strrchr(dir, '/') = '\0';
			/* keep the other clients' lines, drop this one's old ones */
			if (data) {
				char *line, *save = NULL;

				for (line = strtok_r(data, "\n", &save); line;
				     line = strtok_r(NULL, "\n", &save))
					if (!strstr(line, bin) && b.len < 8192)
						buf_addf(&b, "%s\n", line);
			}
			buf_addf(&b, "%s%d\n", key, major);
			if (!mkdir_p(dir, 0755, &e))
				atomic_write_nosync(cache, b.data, b.len, 0644, &e);
			free(dir);
			buf_release(&b);
		}
	}
	free(data);
	free(cache);
	free(bin);
	return major;
}

static int buildx_installed(const struct builder *b)
{
	static const char *const dirs[] = {
		"/usr/local/lib/docker/cli-plugins", "/usr/local/libexec/docker/cli-plugins",
		"/usr/lib/docker/cli-plugins", "/usr/libexec/docker/cli-plugins", NULL,
	};
	char *cfg = docker_config_dir(b), *p = xasprintf("%s/cli-plugins/docker-buildx", cfg);
	int i, found = !access(p, X_OK);

	free(p);
	free(cfg);
	for (i = 0; !found && dirs[i]; i++) {
		p = xasprintf("%s/docker-buildx", dirs[i]);
		found = !access(p, X_OK);
		free(p);
	}
	return found;
}

static void docker_buildkit(struct builder *b, int buildx)
{
	const char *env = cmd_env(b, "DOCKER_BUILDKIT");
	int v, major;

	if (buildx) {
		b->buildkit = 1;
		b->why = "docker buildx build";
		return;
	}
	/* the client walks the context: one before 23 by the rules of its time */
	major = b->client_major ? b->client_major : client_major(b->argv[b->prog_at]);
	b->client_major = major;
	b->old_client = major > 0 && major < 23;
	if (env && (v = parse_bool(env)) >= 0) {
		b->buildkit = v;
		b->why = v ? "DOCKER_BUILDKIT=1" : "DOCKER_BUILDKIT=0";
	} else if (major >= 23) {
		b->buildkit = buildx_installed(b);
		b->why = b->buildkit ? "a docker client >= 23 with the buildx plugin" :
			 "a docker client >= 23 without the buildx plugin";
	} else {
		b->buildkit = ping_builder_version(b->host) == 2;
		b->why = b->buildkit ? "the daemon's default builder (Builder-Version 2)" :
			 "the daemon's default builder (classic)";
	}
}

/* ---- reading COMMAND ---- */

static void parse_docker(struct builder *b)
{
	int i = b->prog_at + 1, buildx = 0;

	/* global options, then the (sub)command */
	for (; i < b->argc; i++) {
		const char *a = b->argv[i];

		if (a[0] != '-' || !a[1])
			break;
		if (a[1] == '-') {
			const char *val;
			size_t n = long_opt(a, &val);

			if (!val && in_list(global_value_opts, a + 2, n) && i + 1 < b->argc)
				val = b->argv[++i];
			if (val && n == 4 && !memcmp(a + 2, "host", 4))
				b->host_opt = val;
			else if (val && n == 7 && !memcmp(a + 2, "context", 7))
				b->context_opt = val;
			else if (val && n == 6 && !memcmp(a + 2, "config", 6))
				b->config_dir = val;
		} else if (strchr(GLOBAL_VALUE_SHORTS, a[1])) {
			const char *val = a[2] ? a + 2 : (i + 1 < b->argc ? b->argv[++i] : NULL);

			if (a[1] == 'H')
				b->host_opt = val;
			else if (a[1] == 'c')
				b->context_opt = val;
		}
	}
	if (i >= b->argc)
		return;
	if (!strcmp(b->argv[i], "build")) {
		b->build_at = i;
	} else if ((!strcmp(b->argv[i], "image") || !strcmp(b->argv[i], "builder")) &&
		   i + 1 < b->argc && !strcmp(b->argv[i + 1], "build")) {
		b->build_at = ++i;
	} else if (!strcmp(b->argv[i], "buildx") && i + 1 < b->argc &&
		   (!strcmp(b->argv[i + 1], "build") || !strcmp(b->argv[i + 1], "b"))) {
		b->build_at = ++i;
		buildx = 1;
	} else {
		return; /* another docker command: an unknown reader */
	}
	b->kind = BUILDER_DOCKER;
	for (i = b->build_at + 1; i < b->argc; i++) {
		const char *a = b->argv[i];

		if (!strcmp(a, "--")) {
			if (i + 1 < b->argc)
				b->ctx_at = i + 1;
			break;
		}
		if (a[0] != '-' || !a[1]) {
			b->ctx_at = i;
			continue;
		}
		if (a[1] == '-') {
			const char *val;
			size_t n = long_opt(a, &val);
			int is_file = n == 4 && !memcmp(a + 2, "file", 4);

			if (val) {
				if (is_file) {
					b->file_at = i;
					b->file = val;
				}
			} else if (in_list(value_opts, a + 2, n) && i + 1 < b->argc) {
				if (is_file) {
					b->file_at = i;
					b->file = b->argv[i + 1];
				}
				i++;
			}
		} else {
			/* a cluster of short flags, the last of which may take
			 * a value: attached (-fX) or the next word */
			size_t k;

			for (k = 1; a[k]; k++) {
				if (!strchr(VALUE_SHORTS, a[k]))
					continue;
				if (a[k] == 'f') {
					b->file_at = i;
					b->file = a[k + 1] ? a + k + 1 : (i + 1 < b->argc ? b->argv[i + 1] : NULL);
				}
				if (!a[k + 1])
					i++;
				break;
			}
		}
	}
	find_host(b);
	b->remote = !host_is_local(b->host);
	docker_buildkit(b, buildx);
}

/* buildah's and podman's global options that take no value (the others
 * all do: --root DIR, --storage-driver NAME, -c CONNECTION...) */
static const char *const buildah_bool_opts[] = {
	"debug", "help", "noout", "remote", "syslog", "transient-store", "version", NULL,
};
#define BUILDAH_BOOL_SHORTS "hrv"

/* buildah|podman [GLOBAL OPTIONS] build|bud|build-using-dockerfile,
 * podman image build, podman buildx build */
static void parse_buildah(struct builder *b)
{
	int i = b->prog_at + 1;
	int podman = !strcmp(base_name(b->argv[b->prog_at]), "podman");

	for (; i < b->argc; i++) {
		const char *a = b->argv[i];

		if (a[0] != '-' || !a[1])
			break;
		if (a[1] == '-') {
			const char *val;
			size_t n = long_opt(a, &val);

			if (!n) /* "--": the command follows */
				continue;
			if (!val && !in_list(buildah_bool_opts, a + 2, n))
				i++;
		} else if (!strchr(BUILDAH_BOOL_SHORTS, a[1]) && !a[2]) {
			i++;
		}
	}
	if (podman && i + 1 < b->argc &&
	    (!strcmp(b->argv[i], "image") || !strcmp(b->argv[i], "buildx")))
		i++;
	if (!(i < b->argc && (!strcmp(b->argv[i], "build") || !strcmp(b->argv[i], "bud") ||
			      !strcmp(b->argv[i], "build-using-dockerfile"))))
		return;
	b->kind = BUILDER_BUILDAH;
	b->build_at = i;
	/* its -f (--file) and --ignorefile: only those options are looked
	 * for, as -f V, -fV, --file V, --file=V, --ignorefile V or
	 * --ignorefile=V; a value that merely looks like one is not told
	 * apart from it */
	for (i++; i < b->argc && strcmp(b->argv[i], "--"); i++) {
		const char *a = b->argv[i];

		if (!strcmp(a, "--ignorefile")) {
			if (i + 1 < b->argc)
				b->ignorefile = b->argv[++i];
		} else if (!strncmp(a, "--ignorefile=", 13)) {
			b->ignorefile = a + 13;
		} else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
			if (i + 1 < b->argc) {
				b->file_at = i;
				b->file = b->argv[++i];
			}
		} else if (!strncmp(a, "--file=", 7)) {
			b->file_at = i;
			b->file = a + 7;
		} else if (a[0] == '-' && a[1] == 'f' && a[2]) {
			b->file_at = i;
			b->file = a + 2 + (a[2] == '=');
		}
	}
}

void builder_detect(struct builder *b, int argc, char **argv, int client_major)
{
	int i = 0;
	const char *p;

	memset(b, 0, sizeof(*b));
	b->client_major = client_major;
	b->argc = argc;
	b->argv = argv;
	b->ctx_at = b->file_at = -1;
	b->why = "";
	/* env [-i] [NAME=VALUE]... COMMAND */
	if (argc > 1 && !strcmp(base_name(argv[0]), "env")) {
		for (i = 1; i < argc && argv[i][0] == '-'; i++)
			;
		b->env_from = i;
		while (i < argc && strchr(argv[i], '=') && argv[i][0] != '=')
			i++;
		b->env_to = i;
	}
	if (i >= argc)
		return;
	b->prog_at = i;
	p = base_name(argv[i]);
	if (!strcmp(p, "docker"))
		parse_docker(b);
	else if (!strcmp(p, "buildah") || !strcmp(p, "podman"))
		parse_buildah(b);
}

void builder_release(struct builder *b)
{
	free(b->host);
	b->host = NULL;
}
