/*
 * ctxpack cache: the entry point of the CI cache commands (cmd_cache, in
 * main.c's table): the help and the getopt_long table of each subcommand,
 * the options they all share, a few output helpers, and the dispatch
 * (include/ctxpack/cache.h has the model, docs/ci.md the guide).  The
 * subcommands themselves are in cmd_cache_save.c, cmd_cache_restore.c,
 * cmd_cache_ls.c and cmd_cache_stats.c (cmd_cache.h).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd_cache.h"
#include "ctxpack/cache.h"
#include "ctxpack/frames.h"

/* The default --timeout of restore and run under CI ($CI set). */
#define RESTORE_TIMEOUT_CI (5 * 60)

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

/* ---- the options of each subcommand ---- */

static const struct option save_longopts[] = {
	{"key", required_argument, NULL, 'k'},
	{"force", no_argument, NULL, OPT_FORCE},
	{"update", no_argument, NULL, OPT_UPDATE},
	STORE_OPTS,
	CLI_GLOBAL_LONGOPTS,
	{NULL, 0, NULL, 0},
};

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

static const struct option ls_longopts[] = {
	STORE_OPTS,
	CLI_GLOBAL_LONGOPTS,
	{NULL, 0, NULL, 0},
};

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

static const struct option stats_longopts[] = {
	{"prefix", required_argument, NULL, OPT_PREFIX},
	STORE_OPTS,
	CLI_GLOBAL_LONGOPTS,
	{NULL, 0, NULL, 0},
};

static const struct option why_longopts[] = {
	{"key-file", required_argument, NULL, 'f'},
	{"key-prefix", required_argument, NULL, OPT_KEY_PREFIX},
	{"path", required_argument, NULL, 'p'},
	STORE_OPTS,
	CLI_GLOBAL_LONGOPTS,
	{NULL, 0, NULL, 0},
};

/* ---- what the subcommands share ---- */

static void cli_cache_warn(void *arg, const char *msg)
{
	cli_warn("%s", msg);
}

static void cli_reg_log(void *arg, const char *msg)
{
	cli_log_line(msg);
}

void cmd_cache_common_init(struct cmd_cache_common *c, int restoring)
{
	const char *ci = env_get()->ci;

	memset(c, 0, sizeof(*c));
	cache_opts_init(&c->co);
	c->co.warn = cli_cache_warn;
	/* blob uploads and downloads; drawn between cli_progress_start and
	 * cli_progress_end only */
	c->co.reg.progress = cli_progress_reg;
	c->restoring = restoring;
	if (restoring && ci && strcmp(ci, "false") && strcmp(ci, "0"))
		c->timeout = RESTORE_TIMEOUT_CI;
}

/* 1 when opt is one of the shared options (arg taken), else 0. */
static int common_opt(struct cmd_cache_common *c, const struct cli_cmd *cmd, int opt,
		      const char *arg)
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

void cmd_cache_opt(struct cmd_cache_common *c, const struct cli_cmd *cmd, int opt,
		   const char *arg)
{
	if (!common_opt(c, cmd, opt, arg) && !cli_global_opt(cmd, opt, arg))
		cli_usage_error(cmd, "unknown option");
}

int cmd_cache_open(struct cmd_cache_common *c, struct cache **out, struct err *e)
{
	int ret;

	if (cli_opt.verbose)
		c->co.reg.log = cli_reg_log;
	ret = cache_open(out, &c->co, e);
	if (!ret && c->timeout)
		cache_set_timeout(*out, c->timeout * 1000);
	return ret;
}

const char *cmd_cache_result_name(int r)
{
	return r == CACHE_HIT ? "hit" : r == CACHE_PARTIAL ? "partial" : "miss";
}

void cmd_cache_json_opt(const char *name, const char *s)
{
	printf(",\"%s\":", name);
	if (s)
		cli_json_str(stdout, s, strlen(s));
	else
		fputs("null", stdout);
}

/* ---- dispatch ---- */

static const struct cmd_cache_sub subs[] = {
	{"ls", cmd_cache_ls, &sub_ls, ls_longopts},
	{"prune", cmd_cache_prune, &sub_prune, prune_longopts},
	{"restore", cmd_cache_restore, &sub_restore, restore_longopts},
	{"run", cmd_cache_run, &sub_run, run_longopts},
	{"save", cmd_cache_save, &sub_save, save_longopts},
	{"stats", cmd_cache_stats, &sub_stats, stats_longopts},
	{"why", cmd_cache_why, &sub_why, why_longopts},
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
			return subs[i].fn(argc - 1, argv + 1, &subs[i]);
	fprintf(stderr, "ctxpack cache: '%s' is not a subcommand (save, restore, run, ls, "
		"prune, stats, why)\n", argv[1]);
	return EXIT_USAGE;
}
