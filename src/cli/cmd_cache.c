/*
 * ctxpack cache save | restore | run | ls | prune | stats | why: the CI cache
 * commands
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
	OPT_UPDATE,
	OPT_NO_SAVE,
	OPT_READ_ONLY,
	OPT_SAVE_ON_FAILURE,
};

/* The limit on recording an event in the store's stats log, whatever
 * --timeout the restore had. */
#define STATS_TIMEOUT 15

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
	"ctxpack cache save --key KEY [--store STORE] [--force|--update] [--json] PATH...",
	"save directories under KEY (a no-op when KEY is saved already, unless --update)",
	"  -k, --key KEY           the key (up to 512 bytes)\n"
	"      --update            KEY has an entry: store a new one and make it the one\n"
	"                          restored; the old one stays (cache ls) until pruned\n"
	"                          (nothing is stored when the content is the same)\n"
	"      --force             replace an existing entry (the old one is dropped)\n"
	"      --json              {\"result\":\"saved|exists|updated|unchanged\",...}\n"
	STORE_HELP
	"PATHs are directories, relative or absolute; a leading ~ is $HOME. They are\n"
	"recorded as given and are part of the key: restore them with the same list.\n"};

static const struct cli_cmd sub_restore = {
	"cache", NULL,
	"ctxpack cache restore --key KEY [--restore-key PREFIX]... [--store STORE] "
	"[--fail-on-miss] [--lookup-only] [--read-only] [--timeout D] [--max-size SIZE] "
	"[--safe-links] [--json] PATH...",
	"restore directories saved under KEY, else under the newest key with PREFIX",
	"  -k, --key KEY           the exact key to look for first\n"
	"  -r, --restore-key P     then the newest entry whose key starts with P (in order)\n"
	"      --fail-on-miss      exit 1 when nothing was restored\n"
	"      --lookup-only       report hit/partial/miss without downloading\n"
	"      --read-only         write nothing to the store, not even the stats log\n"
	"                          (for a store this job may only read)\n"
	"      --json              {\"result\",\"key\",\"matched_key\",...} on stdout\n" RESTORE_HELP
	"Prints 'hit', 'partial MATCHED-KEY' or 'miss'. A miss or an unreachable store\n"
	"exits 0 (fail open). With $GITHUB_OUTPUT set, appends cache-hit and matched-key.\n"
	"Each restore (not --lookup-only) is counted in the store's log (cache stats).\n"};

static const struct cli_cmd sub_run = {
	"cache", NULL,
	"ctxpack cache run --key-file FILE... [--key-prefix P] [--path PATH]... "
	"[--restore-key PREFIX]... [--no-save|--read-only|--save-on-failure] "
	"[--store STORE] -- COMMAND [ARG...]",
	"restore PATHs and skip COMMAND on a hit; else warm-start, run it and save",
	"  -f, --key-file FILE     a file whose content is part of the key (repeatable)\n"
	"      --key-prefix P      the key's prefix, also the first warm-start prefix\n"
	"                          (default run-)\n"
	"  -p, --path PATH         a directory COMMAND fills (repeatable)\n"
	"  -r, --restore-key P     on a miss, when no entry has the key prefix, warm-start\n"
	"                          from the newest entry whose key starts with P\n"
	"                          (repeatable, tried in order)\n"
	"      --no-save           restore and run, never save\n"
	"      --read-only         write nothing to the store: no save and no stats log\n"
	"                          entry; works with a store the job cannot write to\n"
	"                          (pull requests from forks, read-only credentials)\n"
	"      --save-on-failure   save even when COMMAND exits non-zero\n" RESTORE_HELP
	"The key is P + sha256 of the key files, COMMAND and the PATHs; the entry records\n"
	"each key file's digest (cache why). Exits with COMMAND's status (0 on a hit);\n"
	"saves only when COMMAND exits 0, unless --save-on-failure.\n"};

static const struct cli_cmd sub_stats = {
	"cache", NULL,
	"ctxpack cache stats [--store STORE] [--prefix P] [--json]",
	"hits, partial hits and misses per key prefix, from the store's log",
	"      --prefix P          only the key prefixes that start with P\n"
	"      --json              {\"events\",\"prefixes\":[{\"prefix\",\"hits\",...}]}\n"
	STORE_HELP
	"Each restore and run appends an event to a log the store keeps (the newest\n"
	"1000, or $CTXPACK_STATS_KEEP). A run counts under its key prefix, a restore\n"
	"under the first restore key its key starts with, else under its key. A\n"
	"partial hit restored an entry found through a prefix. A store without a log\n"
	"(older ctxpack) has no events.\n"};

static const struct cli_cmd sub_why = {
	"cache", NULL,
	"ctxpack cache why [--store STORE] [--json] KEY | ctxpack cache why --key-file FILE... "
	"[--key-prefix P] --path PATH... [--store STORE] [--json] [-- COMMAND [ARG...]]",
	"name the key files that changed since the entry a missed run key was compared with",
	"  -f, --key-file FILE     as given to the run: compare the files as they are now\n"
	"      --key-prefix P      as given to the run (default run-)\n"
	"  -p, --path PATH         as given to the run (repeatable)\n"
	"      --json              {\"changed\",\"added\",\"removed\",\"command\",...}\n"
	STORE_HELP
	"With KEY (a key a run missed), the key files and digests come from the store's\n"
	"log of that run, and the entry compared with is the one the run warm-started\n"
	"from, else the newest entry of its prefix and paths saved before it. With the\n"
	"run's options instead (COMMAND after --, if its change is to be checked too),\n"
	"the key files are read now and compared with the newest entry of the prefix.\n"
	"Prints the key files changed, added and removed, and whether the command\n"
	"changed; exits 0 when it could compare, 1 when the store or the log fails.\n"};

static const struct cli_cmd sub_ls = {
	"cache", NULL,
	"ctxpack cache ls [--store STORE] [--json]",
	"list the cache entries, newest first (created, size, key, tag)",
	STORE_HELP "      --json              a JSON array\n"
	"An entry that a later save of its key with update replaced is marked (replaced)\n"
	"(\"current\":false).\n"};

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

/*
 * Count a restore or run in the store's log (cache stats).  Never with
 * --read-only; a failure is a warning (the restore is done), bounded in
 * time whatever --timeout the restore had.
 */
static void record_event(struct cache *c, struct cache_event *ev)
{
	struct err e = ERR_INIT;

	cache_set_timeout(c, STATS_TIMEOUT * 1000);
	if (cache_event_record(c, ev, &e))
		cli_warn("%s; not counted in cache stats (--read-only writes nothing to the "
			 "store)", e.msg);
	cache_set_timeout(c, 0);
}

/* A path from an entry or the log (untrusted bytes): as it is when it is
 * text, else %-encoded. */
static void print_path(const char *p)
{
	char *enc;

	if (!cache_text_check(p)) {
		fputs(p, stdout);
		return;
	}
	enc = cache_pct_encode(p);
	fputs(enc, stdout);
	free(enc);
}

/* ---- save ---- */

static const struct option save_longopts[] = {
	{"key", required_argument, NULL, 'k'},
	{"force", no_argument, NULL, OPT_FORCE},
	{"update", no_argument, NULL, OPT_UPDATE},
	STORE_OPTS,
	CLI_GLOBAL_LONGOPTS,
	{NULL, 0, NULL, 0},
};

static int cache_save_cmd(int argc, char **argv)
{
	const struct cli_cmd *cmd = &sub_save;
	struct cache_save_result r;
	struct cache_save_opts so;
	struct err e = ERR_INIT;
	struct common cm;
	struct cache *c = NULL;
	const char *key = NULL, *result;
	char hb[32], hs[32];
	int opt, status = EXIT_OK, ret;

	memset(&so, 0, sizeof(so));
	common_init(&cm, 0);
	while ((opt = getopt_long(argc, argv, "k:" CLI_GLOBAL_SHORTOPTS, save_longopts,
				  NULL)) != -1) {
		if (opt == 'k')
			key = optarg;
		else if (opt == OPT_FORCE)
			so.force = 1;
		else if (opt == OPT_UPDATE)
			so.update = 1;
		else if (!common_opt(&cm, cmd, opt, optarg) && !cli_global_opt(cmd, opt, optarg))
			cli_usage_error(cmd, "unknown option");
	}
	if (!key)
		cli_usage_error(cmd, "--key is required");
	if (so.force && so.update)
		cli_usage_error(cmd, "--force and --update do not go together (--force drops the "
			       "old entry, --update keeps it)");
	if (optind >= argc)
		cli_usage_error(cmd, "no PATH given");
	if (common_open(&cm, &c, &e)) {
		status = cli_fail(&e);
		goto out;
	}
	cli_progress_start("save", 0);
	ret = cache_save_opt(c, key, (const char *const *)argv + optind,
			     (size_t)(argc - optind), &so, &r, &e);
	cli_progress_end(!ret);
	if (ret) {
		status = cli_fail(&e);
		goto out;
	}
	result = r.unchanged ? "unchanged" : r.existed ? "exists" : r.updated ? "updated" : "saved";
	if (cli_opt.json) {
		printf("{\"result\":\"%s\"", result);
		print_json_opt("key", key);
		print_json_opt("tag", r.tag);
		print_json_opt("digest", r.digest);
		print_json_opt("store", cache_store_name(c));
		print_json_opt("replaced_tag", r.updated ? r.old_tag : NULL);
		printf(",\"layers\":%zu,\"reused\":%zu,\"bytes\":%llu,\"sent\":%llu}\n",
		       r.layers, r.reused, (unsigned long long)r.bytes,
		       (unsigned long long)r.sent);
	}
	if (r.unchanged)
		cli_info("%s in %s has this content already; nothing to do", key,
			 cache_store_name(c));
	else if (r.existed)
		cli_info("%s is saved in %s already; nothing to do (--update stores a new "
			 "entry)", key, cache_store_name(c));
	else if (r.updated)
		cli_info("updated %s in %s: %zu path%s, %s (%s uploaded); the entry it replaced "
			 "stays under %s until pruned", key, cache_store_name(c), r.layers,
			 r.layers == 1 ? "" : "s", cli_human(r.bytes, hb), cli_human(r.sent, hs),
			 r.old_tag);
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
	{"read-only", no_argument, NULL, OPT_READ_ONLY},
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
	int opt, fail_on_miss = 0, lookup_only = 0, read_only = 0, status = EXIT_OK, ret;

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
		case OPT_READ_ONLY:
			read_only = 1;
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
	if (!ret && !lookup_only && !read_only) {
		struct cache_event ev;

		memset(&ev, 0, sizeof(ev));
		ev.op = CACHE_OP_RESTORE;
		ev.result = m.result;
		ev.prefix = xstrdup(cache_event_prefix(key, prefixes, np));
		ev.key = xstrdup(key);
		ev.matched = m.result ? xstrdup(m.entry.key) : NULL;
		cache_version((const char *const *)argv + optind, (size_t)(argc - optind),
			      ev.version);
		record_event(c, &ev);
		cache_event_release(&ev);
	}

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
	{"restore-key", required_argument, NULL, 'r'},
	{"no-save", no_argument, NULL, OPT_NO_SAVE},
	{"read-only", no_argument, NULL, OPT_READ_ONLY},
	{"save-on-failure", no_argument, NULL, OPT_SAVE_ON_FAILURE},
	RESTORE_OPTS,
	STORE_OPTS,
	CLI_GLOBAL_LONGOPTS,
	{NULL, 0, NULL, 0},
};

static int cache_run_cmd(int argc, char **argv)
{
	const struct cli_cmd *cmd = &sub_run;
	struct cache_restore_result rr;
	struct cache_save_result sr;
	struct cache_save_opts so;
	struct cache_run_inputs in;
	struct cache_match m;
	struct err e = ERR_INIT;
	struct common cm;
	struct cache *c = NULL;
	struct reg_kv *an = NULL;
	const char **files, **paths, **pfx, *prefix = "run-";
	size_t nf = 0, npaths = 0, npfx = 1, nan = 0, i;
	char hb[32], hs[32];
	int opt, status, ret, hit = 0, no_save = 0, read_only = 0, save_on_failure = 0;

	memset(&m, 0, sizeof(m));
	memset(&in, 0, sizeof(in));
	common_init(&cm, 1);
	files = xcalloc((size_t)argc + 1, sizeof(*files));
	paths = xcalloc((size_t)argc + 1, sizeof(*paths));
	/* the key prefix first, then the restore keys */
	pfx = xcalloc((size_t)argc + 2, sizeof(*pfx));
	/* '+': COMMAND's own options are not ours */
	while ((opt = getopt_long(argc, argv, "+f:p:r:" CLI_GLOBAL_SHORTOPTS, run_longopts,
				  NULL)) != -1) {
		switch (opt) {
		case 'f':
			files[nf++] = optarg;
			break;
		case 'p':
			paths[npaths++] = optarg;
			break;
		case 'r':
			if (!*optarg)
				cli_usage_error(cmd, "--restore-key needs a prefix");
			pfx[npfx++] = optarg;
			break;
		case OPT_KEY_PREFIX:
			prefix = optarg;
			break;
		case OPT_NO_SAVE:
			no_save = 1;
			break;
		case OPT_READ_ONLY:
			read_only = 1;
			break;
		case OPT_SAVE_ON_FAILURE:
			save_on_failure = 1;
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
	if (save_on_failure && (no_save || read_only))
		cli_usage_error(cmd, "--save-on-failure saves; it does not go with %s",
				no_save ? "--no-save" : "--read-only");
	pfx[0] = prefix;

	if (cache_run_inputs(prefix, files, nf, (const char *const *)argv + optind,
			     (size_t)(argc - optind), paths, npaths, &in, &e)) {
		status = cli_fail(&e);
		goto out;
	}
	ret = common_open(&cm, &c, &e);
	if (ret == ERR_USAGE) {
		status = cli_fail(&e);
		goto out;
	}
	if (!ret) {
		cli_progress_start("restore", 0);
		ret = lookup_and_restore(c, in.key, pfx, npfx, paths, npaths, 0, &m, &rr, &e);
		cli_progress_end(!ret && m.result != CACHE_MISS);
	}
	if (ret == ERR_USAGE) {
		status = cli_fail(&e);
		goto out;
	}
	if (ret) {
		cli_warn("cache restore of %s failed, running the command: %s", in.key, e.msg);
		err_clear(&e);
	} else if (m.result == CACHE_HIT) {
		hit = 1;
		cli_info("cache hit for %s: restored %s; skipping the command", in.key,
			 cli_human(rr.bytes, hb));
	} else if (m.result == CACHE_PARTIAL) {
		cli_info("cache miss for %s; warm start from %s", in.key, m.entry.key);
	} else {
		cli_info("cache miss for %s", in.key);
	}
	if (!ret && !read_only) {
		struct cache_event ev;

		memset(&ev, 0, sizeof(ev));
		ev.op = CACHE_OP_RUN;
		ev.result = m.result;
		ev.prefix = xstrdup(prefix);
		ev.key = xstrdup(in.key);
		ev.matched = m.result ? xstrdup(m.entry.key) : NULL;
		memcpy(ev.version, in.version, sizeof(ev.version));
		memcpy(ev.command, in.command, sizeof(ev.command));
		/* what cache why compares, for the runs that missed */
		if (!hit && in.nfiles > CACHE_RUN_FILES_MAX) {
			ev.files_omitted = 1;
		} else if (!hit) {
			ev.files = xcalloc(in.nfiles + 1, sizeof(*ev.files));
			for (i = 0; i < in.nfiles; i++) {
				ev.files[i].path = xstrdup(in.files[i].path);
				memcpy(ev.files[i].sha256, in.files[i].sha256, 65);
			}
			ev.nfiles = in.nfiles;
		}
		record_event(c, &ev);
		cache_event_release(&ev);
	}
	github_output(hit, m.result ? m.entry.key : NULL);
	if (hit) {
		status = EXIT_OK;
		goto out;
	}
	/* as build does: SIGINT, SIGTERM and SIGHUP sent to ctxpack reach the
	 * command (util.h, run.c); a run that was stopped saves nothing */
	status = run_command(argv + optind);
	if (run_signal()) {
		cli_info("interrupted by signal %d; the command exited with %d; nothing saved",
			 run_signal(), status);
		goto out;
	}
	if (read_only || no_save) {
		cli_info("the command exited with %d; not saved (%s)", status,
			 read_only ? "--read-only" : "--no-save");
		goto out;
	}
	if (status && !save_on_failure) {
		cli_info("the command exited with %d; nothing saved", status);
		goto out;
	}
	if (status)
		cli_info("the command exited with %d; saving anyway (--save-on-failure)", status);
	if (!c) {
		cli_warn("no store to save %s to", in.key);
		goto out;
	}
	/* --timeout was the restore's: the save takes what it takes */
	cache_set_timeout(c, 0);
	cache_run_annotations(&in, &an, &nan);
	memset(&so, 0, sizeof(so));
	so.annotations = an;
	so.nannotations = nan;
	cli_progress_start("save", 0);
	ret = cache_save_opt(c, in.key, paths, npaths, &so, &sr, &e);
	cli_progress_end(!ret);
	if (ret)
		cli_warn("cannot save the cache (the command %s): %s",
			 status ? "failed; --save-on-failure" : "succeeded", e.msg);
	else if (!sr.existed)
		cli_info("saved %s to %s: %s (%s uploaded)", in.key, cache_store_name(c),
			 cli_human(sr.bytes, hb), cli_human(sr.sent, hs));
out:
	for (i = 0; i < nan; i++) {
		free(an[i].key);
		free(an[i].value);
	}
	free(an);
	cache_match_release(&m);
	cache_free(c);
	cache_run_inputs_release(&in);
	free(files);
	free(paths);
	free(pfx);
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
	printf(",\"current\":%s", cache_entry_current(en) ? "true" : "false");
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
		printf("%s  %10s  %s  %s%s\n", t, cli_human(v[i].size, h), v[i].key, v[i].tag,
		       cache_entry_current(&v[i]) ? "" : "  (replaced)");
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

/* ---- stats ---- */

static const struct option stats_longopts[] = {
	{"prefix", required_argument, NULL, OPT_PREFIX},
	STORE_OPTS,
	CLI_GLOBAL_LONGOPTS,
	{NULL, 0, NULL, 0},
};

static unsigned rate(uint64_t part, uint64_t all)
{
	return all ? (unsigned)((part * 100 + all / 2) / all) : 0;
}

static int cache_stats_cmd(int argc, char **argv)
{
	const struct cli_cmd *cmd = &sub_stats;
	struct cache_stats st;
	struct cache_stats_row all;
	struct err e = ERR_INIT;
	struct common cm;
	struct cache *c = NULL;
	const char *only = NULL;
	size_t i;
	int opt, status = EXIT_OK;

	memset(&st, 0, sizeof(st));
	memset(&all, 0, sizeof(all));
	common_init(&cm, 0);
	while ((opt = getopt_long(argc, argv, CLI_GLOBAL_SHORTOPTS, stats_longopts, NULL)) != -1) {
		if (opt == OPT_PREFIX)
			only = optarg;
		else if (!common_opt(&cm, cmd, opt, optarg) && !cli_global_opt(cmd, opt, optarg))
			cli_usage_error(cmd, "unknown option");
	}
	if (optind < argc)
		cli_usage_error(cmd, "too many arguments");
	if (common_open(&cm, &c, &e) || cache_stats_read(c, only, &st, &e)) {
		status = cli_fail(&e);
		goto out;
	}
	if (st.skipped)
		cli_warn("%llu entries of the stats log of %s are not valid events; skipped",
			 (unsigned long long)st.skipped, cache_store_name(c));
	for (i = 0; i < st.n; i++) {
		all.hits += st.rows[i].hits;
		all.partial += st.rows[i].partial;
		all.misses += st.rows[i].misses;
		all.events += st.rows[i].events;
	}
	if (cli_opt.json) {
		printf("{\"store\":");
		cli_json_str(stdout, cache_store_name(c), strlen(cache_store_name(c)));
		printf(",\"events\":%llu,\"hits\":%llu,\"partial\":%llu,\"misses\":%llu,"
		       "\"skipped\":%llu,\"prefixes\":[", (unsigned long long)all.events,
		       (unsigned long long)all.hits, (unsigned long long)all.partial,
		       (unsigned long long)all.misses, (unsigned long long)st.skipped);
		for (i = 0; i < st.n; i++) {
			const struct cache_stats_row *r = &st.rows[i];
			char t[40];

			cache_time_format(r->last_sec, r->last_nsec, t);
			printf("%s{\"prefix\":", i ? "," : "");
			cli_json_str(stdout, r->prefix, strlen(r->prefix));
			printf(",\"events\":%llu,\"hits\":%llu,\"partial\":%llu,\"misses\":%llu",
			       (unsigned long long)r->events, (unsigned long long)r->hits,
			       (unsigned long long)r->partial, (unsigned long long)r->misses);
			print_json_opt("last", t);
			printf("}");
		}
		printf("]}\n");
		goto out;
	}
	if (!st.n) {
		cli_info("no restores or runs recorded in %s%s%s", cache_store_name(c),
			 only ? " with a prefix starting with " : "", only ? only : "");
		goto out;
	}
	printf("%8s %8s %8s %8s %5s  %-20s  %s\n", "events", "hits", "partial", "misses", "hit%",
	       "last", "prefix");
	for (i = 0; i < st.n; i++) {
		const struct cache_stats_row *r = &st.rows[i];
		char t[40];

		cache_time_format(r->last_sec, 0, t);
		memmove(t + 19, t + 29, strlen(t + 29) + 1);
		printf("%8llu %8llu %8llu %8llu %4u%%  %-20s  %s\n", (unsigned long long)r->events,
		       (unsigned long long)r->hits, (unsigned long long)r->partial,
		       (unsigned long long)r->misses, rate(r->hits, r->events), t,
		       *r->prefix ? r->prefix : "(empty)");
	}
	if (st.n > 1)
		printf("%8llu %8llu %8llu %8llu %4u%%  %-20s  %s\n", (unsigned long long)all.events,
		       (unsigned long long)all.hits, (unsigned long long)all.partial,
		       (unsigned long long)all.misses, rate(all.hits, all.events), "", "(all)");
out:
	cache_stats_release(&st);
	cache_free(c);
	return status;
}

/* ---- why ---- */

static const struct option why_longopts[] = {
	{"key-file", required_argument, NULL, 'f'},
	{"key-prefix", required_argument, NULL, OPT_KEY_PREFIX},
	{"path", required_argument, NULL, 'p'},
	STORE_OPTS,
	CLI_GLOBAL_LONGOPTS,
	{NULL, 0, NULL, 0},
};

static void print_short_digest(const char *hex)
{
	printf("sha256:%.12s", hex);
}

static void json_item_list(const struct cache_why *w, int kind, const char *name)
{
	size_t i;
	int first = 1;

	printf(",\"%s\":[", name);
	for (i = 0; i < w->n; i++) {
		const struct cache_why_item *it = &w->items[i];

		if (it->kind != kind)
			continue;
		printf("%s{\"path\":", first ? "" : ",");
		first = 0;
		cli_json_str(stdout, it->path, strlen(it->path));
		if (it->was)
			printf(",\"was\":\"sha256:%s\"", it->was);
		if (it->now)
			printf(",\"now\":\"sha256:%s\"", it->now);
		printf("}");
	}
	printf("]");
}

static int cache_why_cmd(int argc, char **argv)
{
	const struct cli_cmd *cmd = &sub_why;
	struct cache_run_inputs in;
	struct cache_event ev;
	struct cache_run_record rec;
	struct cache_why w;
	struct cache_match m;
	struct cache_entry *v = NULL, *other = NULL;
	struct err e = ERR_INIT;
	struct common cm;
	struct cache *c = NULL;
	const char **files, **paths, *prefix = "run-", *key = NULL, *version;
	const char *now_cmd = "", *command = "unknown", *source;
	const struct cache_keyfile *now_files;
	const struct cache_entry *cmp = NULL;
	size_t nf = 0, npaths = 0, n = 0, nother = 0, now_n, i;
	long pick;
	int opt, status = EXIT_OK, ret, have_prefix = 0, from_log, hit = 0, now_omitted = 0;

	memset(&in, 0, sizeof(in));
	memset(&ev, 0, sizeof(ev));
	memset(&rec, 0, sizeof(rec));
	memset(&w, 0, sizeof(w));
	memset(&m, 0, sizeof(m));
	common_init(&cm, 0);
	files = xcalloc((size_t)argc + 1, sizeof(*files));
	paths = xcalloc((size_t)argc + 1, sizeof(*paths));
	while ((opt = getopt_long(argc, argv, "f:p:" CLI_GLOBAL_SHORTOPTS, why_longopts, NULL)) !=
	       -1) {
		switch (opt) {
		case 'f':
			files[nf++] = optarg;
			break;
		case 'p':
			paths[npaths++] = optarg;
			break;
		case OPT_KEY_PREFIX:
			prefix = optarg;
			have_prefix = 1;
			break;
		default:
			if (!common_opt(&cm, cmd, opt, optarg) && !cli_global_opt(cmd, opt, optarg))
				cli_usage_error(cmd, "unknown option");
		}
	}
	from_log = !nf;
	if (from_log) {
		if (have_prefix || npaths)
			cli_usage_error(cmd, "--key-prefix and --path go with --key-file (without "
				       "them, give the KEY a run missed)");
		if (optind >= argc)
			cli_usage_error(cmd, "give the KEY a run missed, or the run's --key-file, "
				       "--key-prefix and --path");
		if (argc - optind > 1)
			cli_usage_error(cmd, "one KEY only (a COMMAND goes after the run's "
				       "--key-file and --path, after --)");
		key = argv[optind];
		if (cache_key_check(key, "key", &e)) {
			status = cli_fail(&e);
			goto out;
		}
	} else {
		if (!npaths)
			cli_usage_error(cmd, "--path is required with --key-file (the paths are part "
				       "of the key, as in the run)");
		if (strlen(prefix) > CACHE_KEY_MAX - 64)
			cli_usage_error(cmd, "--key-prefix is longer than %d bytes",
					CACHE_KEY_MAX - 64);
		if (cache_run_inputs(prefix, files, nf, (const char *const *)argv + optind,
				     (size_t)(argc - optind), paths, npaths, &in, &e)) {
			status = cli_fail(&e);
			goto out;
		}
		if (optind < argc)
			key = in.key;
	}
	if (common_open(&cm, &c, &e)) {
		status = cli_fail(&e);
		goto out;
	}

	if (from_log) {
		ret = cache_event_last_miss(c, key, &ev, &e);
		if (ret < 0) {
			status = cli_fail(&e);
			goto out;
		}
		if (!ret) {
			err_set(&e, ERR_NOTFOUND, "no run of %s that missed is in the stats log of "
				"%s (it keeps the newest %zu events, and --read-only runs write "
				"none); give the run's --key-file, --key-prefix and --path to compare "
				"the key files as they are now", key, cache_store_name(c),
				cache_stats_keep());
			status = cli_fail(&e);
			goto out;
		}
		prefix = ev.prefix;
		version = ev.version[0] ? ev.version : NULL;
		now_files = ev.files;
		now_n = ev.nfiles;
		now_omitted = ev.files_omitted;
		now_cmd = ev.command;
		source = "log";
	} else {
		version = in.version;
		now_files = in.files;
		now_n = in.nfiles;
		now_omitted = in.nfiles > CACHE_RUN_FILES_MAX;
		now_cmd = key ? in.command : "";
		source = "files";
		/* the key has an entry: nothing missed */
		if (key) {
			ret = cache_lookup(c, key, NULL, 0, paths, npaths, &m, &e);
			if (ret) {
				status = cli_fail(&e);
				goto out;
			}
			hit = m.result == CACHE_HIT;
		}
	}
	if (!hit) {
		if (cache_list_prefix(c, prefix, version, &v, &n, &e)) {
			status = cli_fail(&e);
			goto out;
		}
		pick = cache_why_pick(v, n, key,
				      from_log && ev.result == CACHE_PARTIAL ? ev.matched : NULL,
				      from_log ? ev.sec : 0);
		cmp = pick >= 0 ? &v[pick] : NULL;
		if (!cmp && version && cache_list_prefix(c, prefix, NULL, &other, &nother, &e)) {
			status = cli_fail(&e);
			goto out;
		}
	}
	if (cmp && cache_entry_run_record(cmp, &rec, &e)) {
		cli_warn("%s; its key files are not compared", e.msg);
		err_clear(&e);
	}
	if (cmp && rec.recorded && !now_omitted)
		cache_why_diff(rec.files, rec.nfiles, now_files, now_n, &w);
	if (cmp && rec.command[0] && now_cmd[0])
		command = strcmp(rec.command, now_cmd) ? "changed" : "same";

	if (cli_opt.json) {
		printf("{\"source\":\"%s\"", source);
		print_json_opt("key", key);
		print_json_opt("prefix", prefix);
		print_json_opt("store", cache_store_name(c));
		printf(",\"hit\":%s", hit ? "true" : "false");
		if (from_log) {
			char t[40];

			cache_time_format(ev.sec, ev.nsec, t);
			printf(",\"event\":{\"time\":\"%s\",\"result\":\"%s\"", t,
			       result_name(ev.result));
			print_json_opt("matched_key", ev.matched);
			printf("}");
		}
		if (cmp) {
			printf(",\"compared\":{\"key\":");
			cli_json_str(stdout, cmp->key, strlen(cmp->key));
			print_json_opt("tag", cmp->tag);
			print_json_opt("created", cmp->created);
			printf("}");
		} else {
			printf(",\"compared\":null");
		}
		printf(",\"recorded\":%s", rec.recorded && !now_omitted ? "true" : "false");
		json_item_list(&w, CACHE_WHY_CHANGED, "changed");
		json_item_list(&w, CACHE_WHY_ADDED, "added");
		json_item_list(&w, CACHE_WHY_REMOVED, "removed");
		printf(",\"order_changed\":%s,\"command\":\"%s\"}\n",
		       w.order_changed ? "true" : "false", command);
		goto out;
	}
	if (hit) {
		printf("%s has an entry in %s (saved %s): a run now restores it\n", key,
		       cache_store_name(c), m.entry.created ? m.entry.created : "at an unknown time");
		goto out;
	}
	if (from_log) {
		char t[40];

		cache_time_format(ev.sec, ev.nsec, t);
		printf("%s missed at %s", key, t);
		if (ev.result == CACHE_PARTIAL)
			printf(" (warm start from %s)", ev.matched);
		printf("\n");
	} else if (key) {
		printf("%s has no entry in %s\n", key, cache_store_name(c));
	}
	if (!cmp) {
		printf("no entry with prefix %s%s%s in %s to compare with", *prefix ? prefix : "''",
		       version ? " for these paths" : "", from_log ? " from before the miss" : "",
		       cache_store_name(c));
		if (nother)
			printf(" (%zu with that prefix were saved for other paths, platform or format)",
			       nother);
		printf("\n");
		goto out;
	}
	printf("compared with %s (saved %s)\n", cmp->key,
	       cmp->created ? cmp->created : "at an unknown time");
	if (now_omitted) {
		printf("too many key files to record (more than %d): not compared\n",
		       CACHE_RUN_FILES_MAX);
	} else if (!rec.recorded) {
		printf("%s does not record its key files (saved by cache save, or by an older "
		       "ctxpack)\n", cmp->key);
	} else {
		for (i = 0; i < w.n; i++) {
			const struct cache_why_item *it = &w.items[i];

			printf("%-8s ", it->kind == CACHE_WHY_CHANGED ? "changed"
					: it->kind == CACHE_WHY_ADDED ? "added" : "removed");
			print_path(it->path);
			if (it->kind == CACHE_WHY_CHANGED) {
				printf(" (");
				print_short_digest(it->was);
				printf(" -> ");
				print_short_digest(it->now);
				printf(")");
			}
			printf("\n");
		}
		if (w.order_changed)
			printf("order    the same key files, given in another order (the key "
			       "hashes them in order)\n");
		else if (!w.n)
			printf("no key file differs\n");
	}
	if (!strcmp(command, "unknown"))
		printf("command  %s\n", !now_cmd[0] && !from_log
			   ? "not compared (give COMMAND after --)" : "not recorded");
	else
		printf("command  %s\n", !strcmp(command, "same") ? "the same" : "changed");
out:
	cache_why_release(&w);
	cache_run_record_release(&rec);
	cache_entries_free(v, n);
	cache_entries_free(other, nother);
	cache_match_release(&m);
	cache_event_release(&ev);
	cache_run_inputs_release(&in);
	cache_free(c);
	free(files);
	free(paths);
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
	{"stats", cache_stats_cmd, &sub_stats},
	{"why", cache_why_cmd, &sub_why},
};

static void cache_help(FILE *f)
{
	size_t i;

	fprintf(f, "usage: ctxpack cache (save|restore|run|ls|prune|stats|why) [options]\n\n"
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
		"prune, stats, why)\n", argv[1]);
	return EXIT_USAGE;
}
