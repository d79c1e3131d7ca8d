/*
 * ctxpack cache save | restore | run | ls | prune: the CI cache commands
 * (include/ctxpack/cache.h has the model, docs/ci.md the guide).
 *
 * restore and run fail open: a miss, an unreachable store or a refused
 * entry is reported on stderr and the job goes on (exit 0), unless
 * --fail-on-miss.  Failing open is bounded in time: --timeout (by default
 * RESTORE_TIMEOUT_CI when $CI is set, as on GitHub Actions and GitLab CI)
 * limits the whole lookup and restore.  save fails loudly (exit 1), so a
 * broken store is seen; in run, a failed save is a warning and the exit
 * status stays COMMAND's.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ctxpack/cache.h"
#include "ctxpack/frames.h"

/* The default --timeout of restore and run under CI ($CI set). */
#define RESTORE_TIMEOUT_CI (5 * 60)

enum {
	OPT_KEY = OPT_CMD_BASE,
	OPT_STORE,
	OPT_FORCE,
	OPT_RESTORE_KEY,
	OPT_FAIL_ON_MISS,
	OPT_LOOKUP_ONLY,
	OPT_KEY_FILE,
	OPT_KEY_PREFIX,
	OPT_PATH,
	OPT_OLDER_THAN,
	OPT_KEEP,
	OPT_PREFIX,
	OPT_DRY_RUN,
	OPT_GC_GRACE,
	OPT_MAX_SIZE,
	OPT_SAFE_LINKS,
};

#define STORE_OPTS \
	{"store", required_argument, NULL, OPT_STORE}, \
	CLI_REG_LONGOPTS

#define STORE_HELP_BASE \
	"      --store STORE       oci:DIR or host[:port]/repo (default: $CTXPACK_STORE,\n" \
	"                          else oci:$XDG_CACHE_HOME/ctxpack/store)\n"
#define STORE_HELP STORE_HELP_BASE CLI_REG_HELP

/* The options of restore and run (the restoring side). */
#define RESTORE_OPTS \
	{"max-size", required_argument, NULL, OPT_MAX_SIZE}, \
	{"safe-links", no_argument, NULL, OPT_SAFE_LINKS}
#define RESTORE_HELP STORE_HELP_BASE CLI_REG_HELP_BASE \
	"      --timeout D         give up the restore (lookup, download, extraction)\n" \
	"                          after D (30s, 10m, or seconds) and go on as on a miss;\n" \
	"                          default 5m when $CI is set, else none; 0: none\n" \
	"      --max-size SIZE     refuse a layer larger than SIZE, compressed or not\n" \
	"                          (default 16G; an entry's recorded sizes bound it too)\n" \
	"      --safe-links        refuse symlinks that lead out of the restored directory\n" \
	"                          (by default they are restored as they are, like tar)\n"

static const struct cli_cmd sub_save = {
	"cache", NULL,
	"ctxpack cache save --key KEY [--store STORE] [--force] PATH...",
	"save directories under KEY (a no-op when KEY is saved already)",
	"  -k, --key KEY           the key (up to 512 bytes)\n"
	"      --force             replace an existing entry\n" STORE_HELP
	"PATHs are directories, relative or absolute; a leading ~ is $HOME. They are\n"
	"recorded as given and are part of the key: restore them with the same list.\n"};

static const struct cli_cmd sub_restore = {
	"cache", NULL,
	"ctxpack cache restore --key KEY [--restore-key PREFIX]... [--store STORE] "
	"[--fail-on-miss] [--lookup-only] [--timeout D] [--max-size SIZE] [--safe-links] "
	"[--json] PATH...",
	"restore directories saved under KEY, else under the newest key with PREFIX",
	"  -k, --key KEY           the exact key to look for first\n"
	"  -r, --restore-key P     then the newest entry whose key starts with P (in order)\n"
	"      --fail-on-miss      exit 1 when nothing was restored\n"
	"      --lookup-only       report hit/partial/miss without downloading\n"
	"      --json              {\"result\",\"key\",\"matched_key\",...} on stdout\n" RESTORE_HELP
	"Prints 'hit', 'partial MATCHED-KEY' or 'miss'. A miss or an unreachable store\n"
	"exits 0 (fail open). With $GITHUB_OUTPUT set, appends cache-hit and matched-key.\n"};

static const struct cli_cmd sub_run = {
	"cache", NULL,
	"ctxpack cache run --key-file FILE... [--key-prefix P] [--path PATH]... "
	"[--store STORE] -- COMMAND [ARG...]",
	"restore PATHs and skip COMMAND on a hit; else warm-start, run it and save",
	"  -f, --key-file FILE     a file whose content is part of the key (repeatable)\n"
	"      --key-prefix P      the key's prefix, also the warm-start prefix (default run-)\n"
	"  -p, --path PATH         a directory COMMAND fills (repeatable)\n" RESTORE_HELP
	"The key is P + sha256 of the key files, COMMAND and the PATHs. Exits with\n"
	"COMMAND's status (0 on a hit); saves only when COMMAND exits 0.\n"};

static const struct cli_cmd sub_ls = {
	"cache", NULL,
	"ctxpack cache ls [--store STORE] [--json]",
	"list the cache entries, newest first (created, size, key, tag)",
	STORE_HELP "      --json              a JSON array\n"};

static const struct cli_cmd sub_prune = {
	"cache", NULL,
	"ctxpack cache prune [--store STORE] [--older-than DURATION] [--keep N] "
	"[--prefix P] [--dry-run]",
	"delete old cache entries",
	"      --older-than D      delete entries created more than D ago (30m, 12h, 7d, 2w)\n"
	"      --keep N            always keep the newest N (alone: delete all but N)\n"
	"      --prefix P          only entries whose key starts with P\n"
	"      --dry-run           list what would be deleted\n"
	"      --gc-grace D        on oci: stores, keep unreferenced blobs younger than D\n"
	"                          (default 1h, protects saves in progress)\n" STORE_HELP
	"On a registry, entries are deleted where the registry allows it; its own garbage\n"
	"collection frees the blobs.\n"};

static void cli_cache_warn(void *arg, const char *msg)
{
	cli_warn("%s", msg);
}

static void cli_reg_log(void *arg, const char *msg)
{
	cli_log_line(msg);
}

/* The options every subcommand shares. */
struct common {
	struct cache_opts co;
	int restoring;        /* restore or run: --timeout is the restore's limit */
	uint64_t timeout;     /* s; 0: none */
};

static void common_init(struct common *c, int restoring)
{
	const char *ci = getenv("CI");

	memset(c, 0, sizeof(*c));
	cache_opts_init(&c->co);
	c->co.warn = cli_cache_warn;
	/* blob uploads and downloads; drawn between cli_progress_start and
	 * cli_progress_end only */
	c->co.reg.progress = cli_progress_reg;
	c->restoring = restoring;
	if (restoring && ci && *ci && strcmp(ci, "false") && strcmp(ci, "0"))
		c->timeout = RESTORE_TIMEOUT_CI;
}

static int common_opt(struct common *c, const struct cli_cmd *cmd, int opt, const char *arg)
{
	switch (opt) {
	case OPT_STORE:
		c->co.store = arg;
		return 1;
	case OPT_REG_TIMEOUT:
		if (!c->restoring)
			break;
		if (parse_duration(arg, &c->timeout) || c->timeout > 7 * 86400)
			cli_usage_error(cmd, "--timeout takes a duration (30s, 10m, 1h, or seconds; "
				       "0 for none), not '%s'", arg);
		return 1;
	case OPT_MAX_SIZE:
		if (!c->restoring)
			break;
		if (fc_parse_size(arg, &c->co.max_size) || !c->co.max_size)
			cli_usage_error(cmd, "--max-size takes a size like 2G or 500M, not '%s'", arg);
		return 1;
	case OPT_SAFE_LINKS:
		if (!c->restoring)
			break;
		c->co.safe_links = 1;
		return 1;
	}
	return cli_reg_opt(cmd, opt, arg, &c->co.reg);
}

static int common_open(struct common *c, struct cache **out, struct err *e)
{
	int ret;

	if (cli_opt.verbose)
		c->co.reg.log = cli_reg_log;
	ret = cache_open(out, &c->co, e);
	if (!ret && c->timeout)
		cache_set_timeout(*out, c->timeout * 1000);
	return ret;
}

/* Append cache-hit and matched-key to $GITHUB_OUTPUT when it is set. */
static void github_output(int hit, const char *matched)
{
	const char *path = getenv("GITHUB_OUTPUT");
	char *s;
	int fd;

	if (!path || !*path)
		return;
	/* one line per output: a value from the store never adds one (keys
	 * are checked when read; this says so again where it matters) */
	if (matched && (strchr(matched, '\n') || strchr(matched, '\r') ||
			cache_text_check(matched))) {
		cli_warn("not writing the matched key to GITHUB_OUTPUT: it has control characters");
		matched = NULL;
	}
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		cli_warn("cannot open GITHUB_OUTPUT %s: %s", path, strerror(errno));
		return;
	}
	s = xasprintf("cache-hit=%s\nmatched-key=%s\n", hit ? "true" : "false",
		      matched ? matched : "");
	if (write_all(fd, s, strlen(s)))
		cli_warn("cannot write GITHUB_OUTPUT %s: %s", path, strerror(errno));
	free(s);
	close(fd);
}

static const char *result_name(int r)
{
	return r == CACHE_HIT ? "hit" : r == CACHE_PARTIAL ? "partial" : "miss";
}

static void print_json_opt(const char *name, const char *s)
{
	printf(",\"%s\":", name);
	if (s)
		cli_json_str(stdout, s, strlen(s));
	else
		fputs("null", stdout);
}

/* ---- save ---- */

static const struct option save_longopts[] = {
	{"key", required_argument, NULL, 'k'},
	{"force", no_argument, NULL, OPT_FORCE},
	STORE_OPTS,
	CLI_GLOBAL_LONGOPTS,
	{NULL, 0, NULL, 0},
};

static int cache_save_cmd(int argc, char **argv)
{
	const struct cli_cmd *cmd = &sub_save;
	struct cache_save_result r;
	struct err e = ERR_INIT;
	struct common cm;
	struct cache *c = NULL;
	const char *key = NULL;
	char hb[32], hs[32];
	int opt, force = 0, status = EXIT_OK, ret;

	common_init(&cm, 0);
	while ((opt = getopt_long(argc, argv, "k:" CLI_GLOBAL_SHORTOPTS, save_longopts,
				  NULL)) != -1) {
		if (opt == 'k')
			key = optarg;
		else if (opt == OPT_FORCE)
			force = 1;
		else if (!common_opt(&cm, cmd, opt, optarg) && !cli_global_opt(cmd, opt, optarg))
			cli_usage_error(cmd, "unknown option");
	}
	if (!key)
		cli_usage_error(cmd, "--key is required");
	if (optind >= argc)
		cli_usage_error(cmd, "no PATH given");
	if (common_open(&cm, &c, &e)) {
		status = cli_fail(&e);
		goto out;
	}
	cli_progress_start("save", 0);
	ret = cache_save(c, key, (const char *const *)argv + optind, (size_t)(argc - optind),
			 force, &r, &e);
	cli_progress_end(!ret);
	if (ret) {
		status = cli_fail(&e);
		goto out;
	}
	if (cli_opt.json) {
		printf("{\"result\":\"%s\"", r.existed ? "exists" : "saved");
		print_json_opt("key", key);
		print_json_opt("tag", r.tag);
		print_json_opt("digest", r.digest);
		print_json_opt("store", cache_store_name(c));
		printf(",\"layers\":%zu,\"reused\":%zu,\"bytes\":%llu,\"sent\":%llu}\n",
		       r.layers, r.reused, (unsigned long long)r.bytes,
		       (unsigned long long)r.sent);
	}
	if (r.existed)
		cli_info("%s is saved in %s already; nothing to do", key, cache_store_name(c));
	else
		cli_info("saved %s to %s: %zu path%s, %s (%s uploaded%s)", key, cache_store_name(c),
			 r.layers, r.layers == 1 ? "" : "s", cli_human(r.bytes, hb),
			 cli_human(r.sent, hs), r.reused ? "; packed before, not again" : "");
out:
	cache_free(c);
	return status;
}

/* ---- restore ---- */

static const struct option restore_longopts[] = {
	{"key", required_argument, NULL, 'k'},
	{"restore-key", required_argument, NULL, 'r'},
	{"fail-on-miss", no_argument, NULL, OPT_FAIL_ON_MISS},
	{"lookup-only", no_argument, NULL, OPT_LOOKUP_ONLY},
	RESTORE_OPTS,
	STORE_OPTS,
	CLI_GLOBAL_LONGOPTS,
	{NULL, 0, NULL, 0},
};

/*
 * Look up and restore; a failure after the lookup is a miss with a
 * warning.  Returns 0 with m filled (result CACHE_MISS on any failure) or
 * <0 when the store could not be asked; e then holds why.
 */
static int lookup_and_restore(struct cache *c, const char *key, const char *const *prefixes,
			      size_t np, const char *const *paths, size_t n, int lookup_only,
			      struct cache_match *m, struct cache_restore_result *rr,
			      struct err *e)
{
	int ret;

	memset(rr, 0, sizeof(*rr));
	ret = cache_lookup(c, key, prefixes, np, paths, n, m, e);
	if (ret || m->result == CACHE_MISS || lookup_only)
		return ret;
	ret = cache_restore(c, &m->entry, paths, n, rr, e);
	if (ret)
		cache_match_release(m);
	return ret;
}

static int cache_restore_cmd(int argc, char **argv)
{
	const struct cli_cmd *cmd = &sub_restore;
	struct cache_restore_result rr;
	struct cache_match m;
	struct err e = ERR_INIT;
	struct common cm;
	struct cache *c = NULL;
	const char *key = NULL, **prefixes = NULL;
	size_t np = 0;
	char hb[32];
	int opt, fail_on_miss = 0, lookup_only = 0, status = EXIT_OK, ret;

	memset(&m, 0, sizeof(m));
	common_init(&cm, 1);
	prefixes = xcalloc((size_t)argc + 1, sizeof(*prefixes));
	while ((opt = getopt_long(argc, argv, "k:r:" CLI_GLOBAL_SHORTOPTS, restore_longopts,
				  NULL)) != -1) {
		switch (opt) {
		case 'k':
			key = optarg;
			break;
		case 'r':
			if (!*optarg)
				cli_usage_error(cmd, "--restore-key needs a prefix");
			prefixes[np++] = optarg;
			break;
		case OPT_FAIL_ON_MISS:
			fail_on_miss = 1;
			break;
		case OPT_LOOKUP_ONLY:
			lookup_only = 1;
			break;
		default:
			if (!common_opt(&cm, cmd, opt, optarg) && !cli_global_opt(cmd, opt, optarg))
				cli_usage_error(cmd, "unknown option");
		}
	}
	if (!key)
		cli_usage_error(cmd, "--key is required");
	if (optind >= argc)
		cli_usage_error(cmd, "no PATH given");

	ret = common_open(&cm, &c, &e);
	if (ret == ERR_USAGE) {
		status = cli_fail(&e);
		goto out;
	}
	if (!ret) {
		cli_progress_start("restore", 0);
		ret = lookup_and_restore(c, key, prefixes, np, (const char *const *)argv + optind,
					 (size_t)(argc - optind), lookup_only, &m, &rr, &e);
		cli_progress_end(!ret && m.result != CACHE_MISS && !lookup_only);
	}
	if (ret == ERR_USAGE) {
		status = cli_fail(&e);
		goto out;
	}
	if (ret)
		cli_warn("cache restore of %s failed, reported as a miss: %s", key, e.msg);
	else if (m.result == CACHE_MISS)
		cli_info("cache miss for %s in %s", key, cache_store_name(c));
	else if (lookup_only)
		cli_info("found %s in %s (not restored: --lookup-only)", m.entry.key,
			 cache_store_name(c));
	else
		cli_info("restored %s from %s: %zu path%s, %s", m.entry.key, cache_store_name(c),
			 rr.layers, rr.layers == 1 ? "" : "s", cli_human(rr.bytes, hb));

	if (cli_opt.json) {
		printf("{\"result\":\"%s\"", result_name(m.result));
		print_json_opt("key", key);
		print_json_opt("matched_key", m.result ? m.entry.key : NULL);
		print_json_opt("tag", m.result ? m.entry.tag : NULL);
		print_json_opt("created", m.result ? m.entry.created : NULL);
		print_json_opt("store", c ? cache_store_name(c) : NULL);
		printf(",\"restored\":%s,\"bytes\":%llu", m.result && !lookup_only ? "true" : "false",
		       (unsigned long long)rr.bytes);
		print_json_opt("error", ret ? e.msg : NULL);
		printf("}\n");
	} else if (m.result == CACHE_PARTIAL) {
		printf("partial %s\n", m.entry.key);
	} else {
		printf("%s\n", result_name(m.result));
	}
	github_output(m.result == CACHE_HIT, m.result ? m.entry.key : NULL);
	if (m.result == CACHE_MISS && fail_on_miss) {
		cli_warn("no cache entry restored and --fail-on-miss given");
		status = EXIT_FAIL;
	}
out:
	cache_match_release(&m);
	cache_free(c);
	free(prefixes);
	return status;
}

/* ---- run ---- */

static const struct option run_longopts[] = {
	{"key-file", required_argument, NULL, 'f'},
	{"key-prefix", required_argument, NULL, OPT_KEY_PREFIX},
	{"path", required_argument, NULL, 'p'},
	RESTORE_OPTS,
	STORE_OPTS,
	CLI_GLOBAL_LONGOPTS,
	{NULL, 0, NULL, 0},
};

/* Run argv; its exit status, 128 + signal when killed, 127 when it could
 * not be started. */
static int run_command(char **argv)
{
	struct sigaction ign, old_int, old_quit;
	pid_t pid;
	int st;

	fflush(stdout);
	fflush(stderr);
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigaction(SIGINT, &ign, &old_int);
	sigaction(SIGQUIT, &ign, &old_quit);
	pid = fork();
	if (pid < 0) {
		cli_warn("cannot start %s: %s", argv[0], strerror(errno));
		st = 127 << 8;
	} else if (pid == 0) {
		sigaction(SIGINT, &old_int, NULL);
		sigaction(SIGQUIT, &old_quit, NULL);
		signal(SIGPIPE, SIG_DFL);
		execvp(argv[0], argv);
		fprintf(stderr, "ctxpack: error: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	} else {
		while (waitpid(pid, &st, 0) < 0) {
			if (errno != EINTR) {
				st = 127 << 8;
				break;
			}
		}
	}
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGQUIT, &old_quit, NULL);
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return EXIT_FAIL;
}

static int cache_run_cmd(int argc, char **argv)
{
	const struct cli_cmd *cmd = &sub_run;
	struct cache_restore_result rr;
	struct cache_save_result sr;
	struct cache_match m;
	struct err e = ERR_INIT;
	struct common cm;
	struct cache *c = NULL;
	const char **files, **paths, *prefix = "run-";
	const char *const *pfx;
	size_t nf = 0, npaths = 0;
	char *key = NULL, hb[32], hs[32];
	int opt, status, ret, hit = 0;

	memset(&m, 0, sizeof(m));
	common_init(&cm, 1);
	files = xcalloc((size_t)argc + 1, sizeof(*files));
	paths = xcalloc((size_t)argc + 1, sizeof(*paths));
	/* '+': COMMAND's own options are not ours */
	while ((opt = getopt_long(argc, argv, "+f:p:" CLI_GLOBAL_SHORTOPTS, run_longopts,
				  NULL)) != -1) {
		switch (opt) {
		case 'f':
			files[nf++] = optarg;
			break;
		case 'p':
			paths[npaths++] = optarg;
			break;
		case OPT_KEY_PREFIX:
			prefix = optarg;
			break;
		default:
			if (!common_opt(&cm, cmd, opt, optarg) && !cli_global_opt(cmd, opt, optarg))
				cli_usage_error(cmd, "unknown option");
		}
	}
	if (!nf)
		cli_usage_error(cmd, "at least one --key-file is required");
	if (!npaths)
		cli_usage_error(cmd, "at least one --path is required");
	if (optind >= argc)
		cli_usage_error(cmd, "no COMMAND given (put it after --)");
	if (strlen(prefix) > CACHE_KEY_MAX - 64)
		cli_usage_error(cmd, "--key-prefix is longer than %d bytes", CACHE_KEY_MAX - 64);

	if (cache_run_key(prefix, files, nf, (const char *const *)argv + optind,
			  (size_t)(argc - optind), paths, npaths, &key, &e)) {
		status = cli_fail(&e);
		goto out;
	}
	ret = common_open(&cm, &c, &e);
	if (ret == ERR_USAGE) {
		status = cli_fail(&e);
		goto out;
	}
	pfx = (const char *const *)&prefix;
	if (!ret) {
		cli_progress_start("restore", 0);
		ret = lookup_and_restore(c, key, pfx, 1, paths, npaths, 0, &m, &rr, &e);
		cli_progress_end(!ret && m.result != CACHE_MISS);
	}
	if (ret == ERR_USAGE) {
		status = cli_fail(&e);
		goto out;
	}
	if (ret) {
		cli_warn("cache restore of %s failed, running the command: %s", key, e.msg);
		err_clear(&e);
	} else if (m.result == CACHE_HIT) {
		hit = 1;
		cli_info("cache hit for %s: restored %s; skipping the command", key,
			 cli_human(rr.bytes, hb));
	} else if (m.result == CACHE_PARTIAL) {
		cli_info("cache miss for %s; warm start from %s", key, m.entry.key);
	} else {
		cli_info("cache miss for %s", key);
	}
	github_output(hit, m.result ? m.entry.key : NULL);
	if (hit) {
		status = EXIT_OK;
		goto out;
	}
	status = run_command(argv + optind);
	if (status) {
		cli_info("the command exited with %d; nothing saved", status);
		goto out;
	}
	if (!c) {
		cli_warn("no store to save %s to", key);
		goto out;
	}
	/* --timeout was the restore's: the save takes what it takes */
	cache_set_timeout(c, 0);
	cli_progress_start("save", 0);
	ret = cache_save(c, key, paths, npaths, 0, &sr, &e);
	cli_progress_end(!ret);
	if (ret)
		cli_warn("cannot save the cache (the command succeeded): %s", e.msg);
	else if (!sr.existed)
		cli_info("saved %s to %s: %s (%s uploaded)", key, cache_store_name(c),
			 cli_human(sr.bytes, hb), cli_human(sr.sent, hs));
out:
	cache_match_release(&m);
	cache_free(c);
	free(key);
	free(files);
	free(paths);
	return status;
}

/* ---- ls ---- */

static const struct option ls_longopts[] = {
	STORE_OPTS,
	CLI_GLOBAL_LONGOPTS,
	{NULL, 0, NULL, 0},
};

/* The created time to the second, for the table. */
static void short_time(const struct cache_entry *en, char out[40])
{
	if (!en->created_sec && !en->created) {
		snprintf(out, 40, "-");
		return;
	}
	cache_time_format(en->created_sec, 0, out);
	/* drop ".000000000" */
	memmove(out + 19, out + 29, strlen(out + 29) + 1);
}

static void print_entry_json(const struct cache_entry *en)
{
	size_t i;

	printf("{\"key\":");
	cli_json_str(stdout, en->key, strlen(en->key));
	print_json_opt("tag", en->tag);
	print_json_opt("created", en->created);
	printf(",\"size\":%llu", (unsigned long long)en->size);
	print_json_opt("digest", en->digest);
	printf(",\"paths\":[");
	for (i = 0; i < en->m.nlayers; i++) {
		const struct reg_desc *l = &en->m.layers[i];
		const char *p = reg_annot_get(l->annotations, l->nannotations, CACHE_ANNOT_PATH);

		if (i)
			putchar(',');
		cli_json_str(stdout, p, strlen(p));
	}
	printf("]}");
}

static int cache_ls_cmd(int argc, char **argv)
{
	const struct cli_cmd *cmd = &sub_ls;
	struct cache_entry *v = NULL;
	struct err e = ERR_INIT;
	struct common cm;
	struct cache *c = NULL;
	size_t n = 0, i;
	int opt, status = EXIT_OK;

	common_init(&cm, 0);
	while ((opt = getopt_long(argc, argv, CLI_GLOBAL_SHORTOPTS, ls_longopts, NULL)) != -1)
		if (!common_opt(&cm, cmd, opt, optarg) && !cli_global_opt(cmd, opt, optarg))
			cli_usage_error(cmd, "unknown option");
	if (optind < argc)
		cli_usage_error(cmd, "too many arguments");
	if (common_open(&cm, &c, &e) || cache_list(c, &v, &n, &e)) {
		status = cli_fail(&e);
		goto out;
	}
	if (cli_opt.json)
		putchar('[');
	for (i = 0; i < n; i++) {
		char t[40], h[32];

		if (cli_opt.json) {
			if (i)
				putchar(',');
			print_entry_json(&v[i]);
			continue;
		}
		short_time(&v[i], t);
		printf("%s  %10s  %s  %s\n", t, cli_human(v[i].size, h), v[i].key, v[i].tag);
	}
	if (cli_opt.json)
		printf("]\n");
out:
	cache_entries_free(v, n);
	cache_free(c);
	return status;
}

/* ---- prune ---- */

static const struct option prune_longopts[] = {
	{"older-than", required_argument, NULL, OPT_OLDER_THAN},
	{"keep", required_argument, NULL, OPT_KEEP},
	{"prefix", required_argument, NULL, OPT_PREFIX},
	{"dry-run", no_argument, NULL, OPT_DRY_RUN},
	{"gc-grace", required_argument, NULL, OPT_GC_GRACE},
	STORE_OPTS,
	CLI_GLOBAL_LONGOPTS,
	{NULL, 0, NULL, 0},
};

static int cache_prune_cmd(int argc, char **argv)
{
	const struct cli_cmd *cmd = &sub_prune;
	struct cache_prune_opts po;
	struct cache_entry *v = NULL;
	struct err e = ERR_INIT;
	struct common cm;
	struct cache *c = NULL;
	uint64_t grace = 3600, freed = 0;
	size_t n = 0, i, chosen, deleted = 0;
	int *del = NULL, opt, dry = 0, status = EXIT_OK, is_layout, first = 1;
	char h[32];

	memset(&po, 0, sizeof(po));
	common_init(&cm, 0);
	while ((opt = getopt_long(argc, argv, CLI_GLOBAL_SHORTOPTS, prune_longopts, NULL)) !=
	       -1) {
		switch (opt) {
		case OPT_OLDER_THAN:
			if (parse_duration(optarg, &po.older_than))
				cli_usage_error(cmd, "--older-than takes a duration (30m, 12h, 7d), "
					       "not '%s'", optarg);
			po.has_older = 1;
			break;
		case OPT_KEEP:
			if (parse_u64(optarg, &po.keep))
				cli_usage_error(cmd, "--keep takes a number, not '%s'", optarg);
			po.has_keep = 1;
			break;
		case OPT_PREFIX:
			po.prefix = optarg;
			break;
		case OPT_DRY_RUN:
			dry = 1;
			break;
		case OPT_GC_GRACE:
			if (parse_duration(optarg, &grace))
				cli_usage_error(cmd, "--gc-grace takes a duration, not '%s'", optarg);
			break;
		default:
			if (!common_opt(&cm, cmd, opt, optarg) && !cli_global_opt(cmd, opt, optarg))
				cli_usage_error(cmd, "unknown option");
		}
	}
	if (optind < argc)
		cli_usage_error(cmd, "too many arguments");
	if (!po.has_older && !po.has_keep)
		cli_usage_error(cmd, "give --older-than, --keep or both");
	if (common_open(&cm, &c, &e) || cache_list(c, &v, &n, &e)) {
		status = cli_fail(&e);
		goto out;
	}
	is_layout = reg_store_ref(cache_store(c))->kind == REG_LAYOUT;
	del = xcalloc(n + 1, sizeof(*del));
	chosen = cache_prune_select(v, n, &po, (int64_t)time(NULL), del);
	if (cli_opt.json)
		printf("{\"dry_run\":%s,\"deleted\":[", dry ? "true" : "false");
	for (i = 0; i < n; i++) {
		char t[40];

		if (!del[i])
			continue;
		if (!dry && cache_delete(c, &v[i], &e)) {
			if (e.code == ERR_NOTFOUND) {
				err_clear(&e);
				continue;
			}
			break;
		}
		deleted++;
		if (cli_opt.json) {
			if (!first)
				putchar(',');
			first = 0;
			print_entry_json(&v[i]);
			continue;
		}
		short_time(&v[i], t);
		printf("%s %s  %s  %s\n", dry ? "would delete" : "deleted", t, v[i].key, v[i].tag);
	}
	if (!dry && !err_isset(&e) && is_layout && deleted && cache_gc(c, grace, &freed, &e))
		cli_warn("%s", e.msg);
	if (cli_opt.json)
		printf("],\"entries\":%zu,\"freed\":%llu}\n", n, (unsigned long long)freed);
	if (err_isset(&e) && e.code != ERR_OK && deleted < chosen) {
		status = cli_fail(&e);
		if (!is_layout)
			fprintf(stderr, "ctxpack: %zu of %zu entries deleted; delete them with the "
				"registry's own tools, or enable deletes (distribution: "
				"storage.delete.enabled)\n", deleted, chosen);
		goto out;
	}
	if (dry)
		cli_info("%zu of %zu entries would be deleted", chosen, n);
	else if (is_layout)
		cli_info("deleted %zu of %zu entries; %s of blobs freed", deleted, n,
			 cli_human(freed, h));
	else
		cli_info("deleted %zu of %zu entries; the registry frees their blobs when its "
			 "garbage collection runs", deleted, n);
out:
	free(del);
	cache_entries_free(v, n);
	cache_free(c);
	return status;
}

/* ---- dispatch ---- */

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const struct cli_cmd *cmd;
} subs[] = {
	{"ls", cache_ls_cmd, &sub_ls},
	{"prune", cache_prune_cmd, &sub_prune},
	{"restore", cache_restore_cmd, &sub_restore},
	{"run", cache_run_cmd, &sub_run},
	{"save", cache_save_cmd, &sub_save},
};

static void cache_help(FILE *f)
{
	size_t i;

	fprintf(f, "usage: ctxpack cache (save|restore|run|ls|prune) [options]\n\n"
		   "Save and restore dependency directories in an OCI store, keyed like\n"
		   "actions/cache (exact key, then restore-key prefixes, newest wins).\n\n");
	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		fprintf(f, "  %s\n      %s\n", subs[i].cmd->usage, subs[i].cmd->summary);
	fprintf(f, "\n'ctxpack cache SUBCOMMAND --help' shows its options.\n");
}

int cmd_cache(int argc, char **argv)
{
	size_t i;

	if (argc < 2) {
		cache_help(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		cache_help(stdout);
		return EXIT_OK;
	}
	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		if (!strcmp(argv[1], subs[i].name))
			return subs[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "ctxpack cache: '%s' is not a subcommand (save, restore, run, ls, "
		"prune)\n", argv[1]);
	return EXIT_USAGE;
}
