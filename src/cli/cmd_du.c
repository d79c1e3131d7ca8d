/*
 * ctxpack du: the context size report.  Totals included and excluded, the
 * largest included directories and files, ignore lines for the usual
 * offenders that are still in the context, and warnings for secrets.
 */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ctxpack/walk.h"

enum { OPT_IGNORE_FILE = OPT_CMD_BASE, OPT_CLASSIC, OPT_DOCKER_CLIENT };

/* Directory names that rarely belong in a build context. */
static const struct offender {
	const char *name;
	const char *why;
	int exact_path; /* suggest the path itself rather than **\/name */
} offenders[] = {
	{".git", "version control history", 0},
	{".hg", "version control history", 0},
	{".svn", "version control history", 0},
	{"node_modules", "installed npm/pnpm packages (the image installs its own)", 0},
	{".pnpm-store", "pnpm store", 0},
	{".venv", "Python virtualenv (the image creates its own)", 0},
	{"venv", "Python virtualenv", 0},
	{"__pycache__", "Python bytecode caches", 0},
	{".pytest_cache", "pytest cache", 0},
	{".mypy_cache", "mypy cache", 0},
	{".ruff_cache", "ruff cache", 0},
	{".tox", "tox environments", 0},
	{".next", "Next.js build output", 0},
	{".turbo", "turborepo cache", 0},
	{".cache", "tool caches", 0},
	{"dist", "build output", 1},
	{"build", "build output", 1},
	{"coverage", "coverage output", 0},
	{"htmlcov", "coverage output", 0},
	{".nyc_output", "coverage output", 0},
	{".idea", "editor settings", 0},
	{".vscode", "editor settings", 0},
	{".DS_Store", "macOS metadata", 0},
};
#define N_OFFENDERS (sizeof(offenders) / sizeof(offenders[0]))

struct dirsize {
	size_t idx;
	uint64_t bytes;
	uint64_t files;
};

struct suggestion {
	char *line;
	const char *why;
	uint64_t bytes;
	uint64_t entries;
	unsigned count;
};

/* 1 when a directory component of path (not the last) is an offender. */
static int inside_offender(const char *path, size_t len)
{
	const char *p = path, *end = path + len, *slash;
	size_t k;

	while ((slash = memchr(p, '/', (size_t)(end - p)))) {
		for (k = 0; k < N_OFFENDERS; k++)
			if ((size_t)(slash - p) == strlen(offenders[k].name) &&
			    !memcmp(p, offenders[k].name, (size_t)(slash - p)))
				return 1;
		p = slash + 1;
	}
	return 0;
}

static const char *base_name(const struct walk_entry *we, size_t *len)
{
	const char *s = memrchr(we->path, '/', we->path_len);

	s = s ? s + 1 : we->path;
	*len = we->path_len - (size_t)(s - we->path);
	return s;
}

static int name_is(const char *s, size_t n, const char *lit)
{
	return strlen(lit) == n && !memcmp(s, lit, n);
}

static int ends_with(const char *s, size_t n, const char *suf)
{
	size_t k = strlen(suf);

	return n >= k && !memcmp(s + n - k, suf, k);
}

/* .npmrc with an auth token inside. */
static int npmrc_has_token(const char *root, const char *rel)
{
	char *p = xasprintf("%s/%s", root, rel), buf[8192];
	int fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), hit = 0;
	ssize_t n;

	free(p);
	if (fd < 0)
		return 0;
	n = read_full(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n > 0) {
		buf[n] = '\0';
		hit = strstr(buf, "_authToken") || strstr(buf, "_auth=") ||
		      strstr(buf, "_password");
	}
	return hit;
}

static const char *secret_kind(const struct walk_result *r, const struct walk_entry *we)
{
	size_t n;
	const char *b = base_name(we, &n);

	if (we->type != WALK_REG)
		return NULL;
	if (name_is(b, n, ".env") ||
	    (n > 5 && !memcmp(b, ".env.", 5) && !ends_with(b, n, ".example") &&
	     !ends_with(b, n, ".sample") && !ends_with(b, n, ".template")))
		return "environment file";
	if (ends_with(b, n, ".pem") || ends_with(b, n, ".key") || ends_with(b, n, ".p12") ||
	    ends_with(b, n, ".pfx"))
		return "private key or certificate";
	if (name_is(b, n, "id_rsa") || name_is(b, n, "id_ed25519") || name_is(b, n, "id_ecdsa") ||
	    name_is(b, n, "id_dsa"))
		return "SSH private key";
	if (name_is(b, n, ".npmrc") && npmrc_has_token(r->root, we->path))
		return ".npmrc with an auth token";
	if (name_is(b, n, ".pypirc") || name_is(b, n, ".netrc") ||
	    name_is(b, n, ".git-credentials"))
		return "credentials file";
	if (ends_with(we->path, we->path_len, ".aws/credentials") ||
	    ends_with(we->path, we->path_len, ".docker/config.json"))
		return "credentials file";
	return NULL;
}

static int cmp_size_desc(const void *a, const void *b)
{
	const struct dirsize *x = a, *y = b;

	if (x->bytes != y->bytes)
		return x->bytes < y->bytes ? 1 : -1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static void add_suggestion(struct suggestion **sv, size_t *ns, const char *line,
			   const char *why, uint64_t bytes, uint64_t entries)
{
	size_t i;

	for (i = 0; i < *ns; i++) {
		if (!strcmp((*sv)[i].line, line)) {
			(*sv)[i].bytes += bytes;
			(*sv)[i].entries += entries;
			(*sv)[i].count++;
			return;
		}
	}
	*sv = xreallocarray(*sv, *ns + 1, sizeof(**sv));
	(*sv)[*ns].line = xstrdup(line);
	(*sv)[*ns].why = why;
	(*sv)[*ns].bytes = bytes;
	(*sv)[*ns].entries = entries;
	(*sv)[*ns].count = 1;
	(*ns)++;
}

int cmd_du(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"file", required_argument, NULL, 'f'},
		{"ignore-file", required_argument, NULL, OPT_IGNORE_FILE},
		{"classic", no_argument, NULL, OPT_CLASSIC},
		{"docker-client", required_argument, NULL, OPT_DOCKER_CLIENT},
		CLI_GLOBAL_LONGOPTS,
		{NULL, 0, NULL, 0},
	};
	const struct cli_cmd *cmd = cli_find("du");
	struct walk_opts o = {0};
	struct walk_result r;
	struct err e = ERR_INIT;
	uint64_t top = 10, inc_entries = 0, inc_files = 0, inc_bytes = 0;
	uint64_t exc_entries = 0, exc_files = 0, exc_bytes = 0;
	struct dirsize *dirs = NULL, *files = NULL;
	size_t ndirs = 0, nfiles = 0, *stack = NULL, nstack = 0, i, k;
	struct suggestion *sug = NULL;
	size_t nsug = 0;
	const struct walk_entry **secrets = NULL;
	const char **secret_why = NULL;
	size_t nsecrets = 0;
	char h[32];
	int c, docker_major = 0;

	while ((c = getopt_long(argc, argv, "f:n:" CLI_GLOBAL_SHORTOPTS, longopts, NULL)) != -1) {
		switch (c) {
		case 'f': o.dockerfile = optarg; break;
		case OPT_IGNORE_FILE: o.ignore_file = optarg; break;
		case OPT_CLASSIC: o.flags |= WALK_CLASSIC; break;
		case OPT_DOCKER_CLIENT: docker_major = cli_docker_client_major(cmd, optarg); break;
		case 'n':
			if (parse_u64(optarg, &top))
				cli_usage_error(cmd, "-n takes a number, not '%s'", optarg);
			break;
		default: cli_global_opt(cmd, c, optarg);
		}
	}
	if (argc - optind > 1)
		cli_usage_error(cmd, "too many arguments");
	o.dir = optind < argc ? argv[optind] : ".";
	o.flags |= WALK_EXCLUDED | WALK_FULL;
	cli_docker_client_flags(&o.flags, docker_major);

	if (walk_run(&o, &r, &e)) {
		walk_release(&r);
		return cli_fail(&e);
	}

	dirs = xcalloc(r.n + 1, sizeof(*dirs));
	files = xcalloc(r.n + 1, sizeof(*files));
	stack = xcalloc(r.n + 1, sizeof(*stack));
	for (i = 0; i < r.n; i++) {
		const struct walk_entry *we = &r.v[i];

		if (we->excluded) {
			exc_entries++;
			if (we->type == WALK_REG) {
				exc_files++;
				exc_bytes += we->size;
			}
			continue;
		}
		inc_entries++;
		/* the included ancestors of this entry are on the stack */
		while (nstack && (r.v[dirs[stack[nstack - 1]].idx].path_len >= we->path_len ||
				  memcmp(r.v[dirs[stack[nstack - 1]].idx].path, we->path,
					 r.v[dirs[stack[nstack - 1]].idx].path_len) ||
				  we->path[r.v[dirs[stack[nstack - 1]].idx].path_len] != '/'))
			nstack--;
		if (we->type == WALK_REG) {
			inc_files++;
			inc_bytes += we->size;
			files[nfiles].idx = i;
			files[nfiles].bytes = we->size;
			nfiles++;
			for (k = 0; k < nstack; k++) {
				dirs[stack[k]].bytes += we->size;
				dirs[stack[k]].files++;
			}
		} else if (we->type == WALK_HARDLINK) {
			/* a file, whose bytes the archive holds once */
			inc_files++;
			for (k = 0; k < nstack; k++)
				dirs[stack[k]].files++;
		} else if (we->type == WALK_DIR) {
			dirs[ndirs].idx = i;
			stack[nstack++] = ndirs++;
		}
		{
			const char *kind = secret_kind(&r, we);

			if (kind) {
				secrets = xreallocarray(secrets, nsecrets + 1, sizeof(*secrets));
				secret_why = xreallocarray(secret_why, nsecrets + 1, sizeof(*secret_why));
				secrets[nsecrets] = we;
				secret_why[nsecrets++] = kind;
			}
		}
	}

	/* offenders: included directories (or files) with a telltale name */
	for (i = 0; i < ndirs; i++) {
		const struct walk_entry *we = &r.v[dirs[i].idx];
		size_t n;
		const char *b = base_name(we, &n);

		for (k = 0; k < N_OFFENDERS; k++) {
			struct buf line = BUF_INIT;

			if (!name_is(b, n, offenders[k].name))
				continue;
			if (inside_offender(we->path, we->path_len))
				break; /* counted with the offender it sits in */
			if (offenders[k].exact_path || we->depth == 0)
				buf_add(&line, we->path, we->path_len);
			else
				buf_addf(&line, "**/%s", offenders[k].name);
			add_suggestion(&sug, &nsug, line.data, offenders[k].why, dirs[i].bytes,
				       dirs[i].files);
			buf_release(&line);
			break;
		}
	}
	for (i = 0; i < nfiles; i++) {
		const struct walk_entry *we = &r.v[files[i].idx];
		size_t n;
		const char *b = base_name(we, &n);

		if (inside_offender(we->path, we->path_len))
			continue;
		if (name_is(b, n, ".DS_Store"))
			add_suggestion(&sug, &nsug, "**/.DS_Store", "macOS metadata", we->size, 1);
		else if (ends_with(b, n, ".pyc"))
			add_suggestion(&sug, &nsug, "**/*.pyc", "Python bytecode", we->size, 1);
	}
	for (i = 0; i < nsecrets; i++) {
		/* suggest the exact path of every secret */
		add_suggestion(&sug, &nsug, secrets[i]->path, secret_why[i], secrets[i]->size, 1);
	}

	qsort(dirs, ndirs, sizeof(*dirs), cmp_size_desc);
	qsort(files, nfiles, sizeof(*files), cmp_size_desc);
	if (ndirs > top)
		ndirs = (size_t)top;
	if (nfiles > top)
		nfiles = (size_t)top;

	if (cli_opt.json) {
		printf("{\"context\":");
		cli_json_str(stdout, r.root, strlen(r.root));
		printf(",\"ignore_file\":");
		if (r.ignore_path)
			cli_json_str(stdout, r.ignore_path, strlen(r.ignore_path));
		else
			printf("null");
		printf(",\"included\":{\"entries\":%llu,\"files\":%llu,\"bytes\":%llu}",
		       (unsigned long long)inc_entries, (unsigned long long)inc_files,
		       (unsigned long long)inc_bytes);
		printf(",\"excluded\":{\"entries\":%llu,\"files\":%llu,\"bytes\":%llu}",
		       (unsigned long long)exc_entries, (unsigned long long)exc_files,
		       (unsigned long long)exc_bytes);
		printf(",\"largest_dirs\":[");
		for (i = 0; i < ndirs; i++) {
			const struct walk_entry *we = &r.v[dirs[i].idx];

			printf("%s{\"path\":", i ? "," : "");
			cli_json_str(stdout, we->path, we->path_len);
			printf(",\"bytes\":%llu,\"files\":%llu}", (unsigned long long)dirs[i].bytes,
			       (unsigned long long)dirs[i].files);
		}
		printf("],\"largest_files\":[");
		for (i = 0; i < nfiles; i++) {
			const struct walk_entry *we = &r.v[files[i].idx];

			printf("%s{\"path\":", i ? "," : "");
			cli_json_str(stdout, we->path, we->path_len);
			printf(",\"bytes\":%llu}", (unsigned long long)files[i].bytes);
		}
		printf("],\"suggestions\":[");
		for (i = 0; i < nsug; i++) {
			printf("%s{\"line\":", i ? "," : "");
			cli_json_str(stdout, sug[i].line, strlen(sug[i].line));
			printf(",\"reason\":\"%s\",\"bytes\":%llu,\"files\":%llu,\"matches\":%u}",
			       sug[i].why, (unsigned long long)sug[i].bytes,
			       (unsigned long long)sug[i].entries, sug[i].count);
		}
		printf("],\"secrets\":[");
		for (i = 0; i < nsecrets; i++) {
			printf("%s{\"path\":", i ? "," : "");
			cli_json_str(stdout, secrets[i]->path, secrets[i]->path_len);
			printf(",\"kind\":\"%s\"}", secret_why[i]);
		}
		printf("]}\n");
	} else {
		printf("context:  %s\n", r.root);
		printf("ignore:   %s\n", r.ignore_path ? r.ignore_path : "(none)");
		printf("included: %llu entries, %llu files, %s\n", (unsigned long long)inc_entries,
		       (unsigned long long)inc_files, cli_human(inc_bytes, h));
		printf("excluded: %llu entries, %llu files, %s\n", (unsigned long long)exc_entries,
		       (unsigned long long)exc_files, cli_human(exc_bytes, h));
		if (ndirs) {
			printf("\nlargest included directories:\n");
			for (i = 0; i < ndirs; i++) {
				const struct walk_entry *we = &r.v[dirs[i].idx];

				printf("  %10s  %8llu files  ", cli_human(dirs[i].bytes, h),
				       (unsigned long long)dirs[i].files);
				fwrite(we->path, 1, we->path_len, stdout);
				fputs("/\n", stdout);
			}
		}
		if (nfiles) {
			printf("\nlargest included files:\n");
			for (i = 0; i < nfiles; i++) {
				const struct walk_entry *we = &r.v[files[i].idx];

				printf("  %10s  ", cli_human(files[i].bytes, h));
				fwrite(we->path, 1, we->path_len, stdout);
				fputc('\n', stdout);
			}
		}
		if (nsug) {
			printf("\nsuggested ignore lines (add to %s):\n",
			       r.ignore_rel ? r.ignore_rel : ".dockerignore");
			for (i = 0; i < nsug; i++)
				printf("  %-28s # %s, %s in %llu file(s)\n", sug[i].line, sug[i].why,
				       cli_human(sug[i].bytes, h), (unsigned long long)sug[i].entries);
		}
	}
	fflush(stdout);
	for (i = 0; i < nsecrets; i++)
		cli_warn("possible secret in the context: %s (%s)", secrets[i]->path, secret_why[i]);

	for (i = 0; i < nsug; i++)
		free(sug[i].line);
	free(sug);
	free(secrets);
	free(secret_why);
	free(dirs);
	free(files);
	free(stack);
	walk_release(&r);
	return EXIT_OK;
}
