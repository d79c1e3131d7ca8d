/*
 * cmd_cache (internal to src/cli): what the files of `ctxpack cache`
 * share.  cmd_cache.c is the entry point (cmd_cache, in main.c's table):
 * the help and the option table of each subcommand, the options they all
 * take, the output helpers; the subcommands are in cmd_cache_save.c
 * (save), cmd_cache_restore.c (restore, run), cmd_cache_ls.c (ls, prune)
 * and cmd_cache_stats.c (stats, why).
 */
#ifndef CTXPACK_CMD_CACHE_H
#define CTXPACK_CMD_CACHE_H

#include <getopt.h>

#include "cli.h"
#include "ctxpack/cache.h"

/* The long options of the subcommands (beside CLI_REG_LONGOPTS' and the
 * global ones). */
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

/* A subcommand: its name, help and getopt_long table (all in
 * cmd_cache.c), and the function that runs it (called with argv[0] the
 * subcommand's name; returns the exit status). */
struct cmd_cache_sub {
	const char *name;
	int (*fn)(int argc, char **argv, const struct cmd_cache_sub *sub);
	const struct cli_cmd *cmd;
	const struct option *longopts;
};

int cmd_cache_save(int argc, char **argv, const struct cmd_cache_sub *sub);
int cmd_cache_restore(int argc, char **argv, const struct cmd_cache_sub *sub);
int cmd_cache_run(int argc, char **argv, const struct cmd_cache_sub *sub);
int cmd_cache_ls(int argc, char **argv, const struct cmd_cache_sub *sub);
int cmd_cache_prune(int argc, char **argv, const struct cmd_cache_sub *sub);
int cmd_cache_stats(int argc, char **argv, const struct cmd_cache_sub *sub);
int cmd_cache_why(int argc, char **argv, const struct cmd_cache_sub *sub);

/* The options every subcommand shares: the store, the registry's, and for
 * the restoring ones (restore, run) --timeout, --max-size, --safe-links. */
struct cmd_cache_common {
	struct cache_opts co;
	int restoring;        /* restore or run: --timeout is the restore's limit */
	uint64_t timeout;     /* s; 0: none */
};

/* Defaults; restoring: --timeout defaults to 5m when $CI is set. */
void cmd_cache_common_init(struct cmd_cache_common *c, int restoring);
/* An option the subcommand does not take itself: one of the shared
 * options or a global one (cli_global_opt); anything else, or a bad
 * value, is a usage error (which exits). */
void cmd_cache_opt(struct cmd_cache_common *c, const struct cli_cmd *cmd, int opt,
		   const char *arg);
/* cache_open with the options, and the --timeout set.  cache_open's
 * result. */
int cmd_cache_open(struct cmd_cache_common *c, struct cache **out, struct err *e);

/* "hit", "partial" or "miss". */
const char *cmd_cache_result_name(int r);
/* ,"name":"s" on stdout (,"name":null when s is NULL). */
void cmd_cache_json_opt(const char *name, const char *s);

#endif
