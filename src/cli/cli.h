/*
 * cli: the command table, global options and output helpers.  Only this
 * module prints to stdout or exits.
 */
#ifndef CTXPACK_CLI_H
#define CTXPACK_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "ctxpack/util.h"

/* Exit codes. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* Global options, parsed before and among each command's own options. */
struct cli_global {
	int quiet;     /* -q */
	int verbose;   /* -v (repeatable) */
	int json;      /* --json */
	int progress;  /* --progress: 0 never, 1 always, -1 auto */
};

extern struct cli_global cli_opt;

struct cli_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *usage;   /* one line: "ctxpack ls [options] [DIR]" */
	const char *summary; /* one line for --help */
	const char *help;    /* option list for `ctxpack help CMD` */
};

const struct cli_cmd *cli_find(const char *name);

/*
 * Long option values for the global options; commands include these in
 * their getopt_long tables via CLI_GLOBAL_LONGOPTS and route them through
 * cli_global_opt().  Short -q, -v, -h are handled the same way.
 */
enum {
	OPT_JSON = 1000,
	OPT_PROGRESS,
	OPT_HELP,
	OPT_CMD_BASE = 1100, /* commands number their own long options from here */
};
#define CLI_GLOBAL_LONGOPTS \
	{"json", no_argument, NULL, OPT_JSON}, \
	{"progress", required_argument, NULL, OPT_PROGRESS}, \
	{"help", no_argument, NULL, 'h'}, \
	{"quiet", no_argument, NULL, 'q'}, \
	{"verbose", no_argument, NULL, 'v'}
#define CLI_GLOBAL_SHORTOPTS "hqv"
/* Their help, for `ctxpack --help` and every command's. */
#define CLI_GLOBAL_HELP \
	"global options:\n" \
	"  -h, --help            this help\n" \
	"  -q, --quiet           no messages on stderr but warnings and errors\n" \
	"  -v, --verbose         more detail on stderr (repeatable)\n" \
	"      --json            machine-readable output, where a command has it\n" \
	"      --progress WHEN   a status line on stderr (bytes, total and %% when known,\n" \
	"                        MB/s) while pack, build, push, pull and cache save,\n" \
	"                        restore and run transfer data: auto (default) only when\n" \
	"                        stderr is a terminal and not with -q (never for build:\n" \
	"                        COMMAND shares the terminal); always, as plain lines\n" \
	"                        when stderr is not a terminal; never\n"

/*
 * Handle a global option returned by getopt_long.  Returns 1 when it was
 * one (handled), 0 when not, and exits for -h (prints the command's help)
 * or a bad --progress value.
 */
int cli_global_opt(const struct cli_cmd *cmd, int c, const char *arg);

/* Print "usage: ..." + "try 'ctxpack help CMD'" to stderr and exit 2. */
void cli_usage_error(const struct cli_cmd *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));
/* Print the command's full help to stdout and exit 0. */
void cli_help(const struct cli_cmd *cmd) __attribute__((noreturn));

/*
 * Messages on stderr.  Whatever they quote (names from an archive, keys and
 * errors from a store) is escaped: a newline as \n, other control bytes
 * (C0, DEL, the C1 controls) and bytes that are not UTF-8 as \xNN, so a
 * message is always one line and never drives the terminal.
 */
/* Write s to f escaped so. */
void cli_msg(FILE *f, const char *s);
/* "ctxpack: <msg>" (the -v loggers). */
void cli_log_line(const char *msg);
/* "ctxpack: error: <msg>" to stderr; returns EXIT_FAIL (or EXIT_USAGE for
 * ERR_USAGE). */
int cli_fail(const struct err *e);
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Flush stdout and report a write error (full disk, closed pipe) as a
 * failure.  Returns status unchanged or EXIT_FAIL. */
int cli_finish(int status);

/* Write s as a JSON string literal (with quotes), escaping bytes that are
 * not valid UTF-8 as \u00XX of each byte. */
void cli_json_str(FILE *f, const char *s, size_t len);

/* Human-readable byte count ("1.2 MiB") into out (32 bytes). */
const char *cli_human(unsigned long long n, char out[32]);

/*
 * The progress display (--progress): one status line on stderr,
 * "ctxpack: LABEL 12.3 MiB / 45.6 MiB (27%), 80.1 MB/s", for one long
 * transfer at a time.  --progress auto (the default) draws it only when
 * stderr is a terminal and -q is not given; always draws it anyway, and
 * where stderr is not a terminal writes plain lines instead (each 10% of
 * a known total and at least every 5 s, else one a second; a last one
 * ending in ", done"), so that logs stay readable; never draws nothing.
 * On a terminal the line is redrawn in place with \r, at most 8 times a
 * second, and erased by cli_progress_end, before any summary line.
 *
 * start (label borrowed until end; total 0 when unknown) and end are
 * called on the main thread; update may be called on another thread in
 * between (the pack writer, a libcurl callback), from one thread at a
 * time.  update costs a clock read when the display is on, nothing when
 * off.  cli_warn, cli_info, cli_fail and the -v loggers call
 * cli_progress_clear first; the next update draws the line again.
 */
void cli_progress_start(const char *label, uint64_t total);
/* done bytes so far; total 0 keeps the one known. */
void cli_progress_update(uint64_t done, uint64_t total);
/* The same as a reg_progress_fn (include/ctxpack/registry.h). */
void cli_progress_reg(void *arg, uint64_t done, uint64_t total);
/* Erase the line if it is drawn. */
void cli_progress_clear(void);
/* Erase the line; with plain lines and ok, print the last one.  A no-op
 * when no display was started. */
void cli_progress_end(int ok);

/*
 * The options every registry client takes (push, pull and the cache
 * commands): their long-option values, CLI_REG_LONGOPTS for the
 * getopt_long tables and CLI_REG_HELP for --help.  cli_reg_opt() sets o
 * from one of them and returns 1, or returns 0 for any other option.
 */
enum {
	OPT_REG_CA_FILE = OPT_CMD_BASE + 80, OPT_REG_INSECURE, OPT_REG_TIMEOUT,
	OPT_REG_IDLE_TIMEOUT,
};
#define CLI_REG_LONGOPTS \
	{"ca-file", required_argument, NULL, OPT_REG_CA_FILE}, \
	{"insecure", no_argument, NULL, OPT_REG_INSECURE}, \
	{"timeout", required_argument, NULL, OPT_REG_TIMEOUT}, \
	{"idle-timeout", required_argument, NULL, OPT_REG_IDLE_TIMEOUT}
/* The help of all but --timeout, which `cache restore` and `cache run`
 * give another meaning (a time limit for the whole restore). */
#define CLI_REG_HELP_BASE \
	"      --ca-file F         trust the CA certificates in F\n" \
	"      --insecure          skip TLS verification, allow plain HTTP (always allowed\n" \
	"                          for localhost, 127.0.0.0/8 and ::1)\n" \
	"      --idle-timeout SECS fail a transfer after SECS without progress (default 60)\n"
#define CLI_REG_HELP CLI_REG_HELP_BASE \
	"      --timeout SECS      the same as --idle-timeout\n"
struct reg_opts;
int cli_reg_opt(const struct cli_cmd *cmd, int c, const char *arg, struct reg_opts *o);

/*
 * The options `pack` and `build` share.  Their long-option values, and
 * CLI_PACK_LONGOPTS for the getopt_long tables (plus "f:" in the short
 * options).
 */
enum {
	OPT_PACK_IGNORE_FILE = OPT_CMD_BASE + 50, OPT_PACK_COMPRESS, OPT_PACK_LEVEL, OPT_PACK_THREADS,
	OPT_PACK_INDEX, OPT_PACK_NO_CACHE, OPT_PACK_CACHE_MAX, OPT_PACK_NORMALIZE_MODES,
	OPT_PACK_NO_HARDLINKS, OPT_PACK_CLASSIC, OPT_PACK_DOCKER_CLIENT,
};
#define CLI_PACK_LONGOPTS \
	{"file", required_argument, NULL, 'f'}, \
	{"ignore-file", required_argument, NULL, OPT_PACK_IGNORE_FILE}, \
	{"compress", required_argument, NULL, OPT_PACK_COMPRESS}, \
	{"level", required_argument, NULL, OPT_PACK_LEVEL}, \
	{"threads", required_argument, NULL, OPT_PACK_THREADS}, \
	{"index", required_argument, NULL, OPT_PACK_INDEX}, \
	{"no-cache", no_argument, NULL, OPT_PACK_NO_CACHE}, \
	{"cache-max", required_argument, NULL, OPT_PACK_CACHE_MAX}, \
	{"normalize-modes", no_argument, NULL, OPT_PACK_NORMALIZE_MODES}, \
	{"no-hardlinks", no_argument, NULL, OPT_PACK_NO_HARDLINKS}, \
	{"classic", no_argument, NULL, OPT_PACK_CLASSIC}, \
	{"docker-client", required_argument, NULL, OPT_PACK_DOCKER_CLIENT}

struct walk_opts;
struct pack_opts;
struct fc_opts;
/* The values they set. */
struct cli_pack_args {
	struct walk_opts *wo;
	struct pack_opts *po;
	struct fc_opts *fo;
	const char **index_dir;
	int *no_cache;
	int *docker_major;       /* --docker-client's major version, 0 if not given */
};
/*
 * Handle option c (from getopt_long) when it is one of the shared pack
 * options: returns 1 when handled, 0 when not; a bad value is a usage
 * error (exit 2).
 */
int cli_pack_opt(const struct cli_cmd *cmd, int c, const char *arg,
		 const struct cli_pack_args *a);

/*
 * --docker-client VERSION ("20.10.24", "v28.2", "20.10.24+dfsg1"): the
 * client's major version, 1-999; anything else is a usage error.
 */
int cli_docker_client_major(const struct cli_cmd *cmd, const char *arg);
/*
 * The walk flags of a docker client of that major version (0: none
 * given, nothing changes): a client before 23 matches with the deprecated
 * rule of its time (WALK_OLD_MATCHER) and, unless the walk is the classic
 * builder's, walks for BuildKit with the file sync of 2020
 * (WALK_FSUTIL2020); build applies it to the client it runs.
 */
void cli_docker_client_flags(unsigned *flags, int major);

/* The frame store's path as --json names it: archive, assemble, frames. */
const char *cli_pack_path_name(int path);
/* cli_warn("%s", msg), for the library's warning callbacks. */
void cli_warn_msg(const char *msg);

/*
 * What `ctxpack build` runs (builder.c, docs/build.md): COMMAND's words
 * read as docker, buildah or podman read them.
 */
enum { BUILDER_OTHER = 0, BUILDER_DOCKER, BUILDER_BUILDAH };
struct builder {
	int kind;            /* BUILDER_* */
	int buildkit;        /* docker: 1 BuildKit, 0 the classic builder */
	int remote;          /* docker: the daemon is on another machine */
	int old_client;      /* docker: a client < 23 walks the context, with the
				matcher of its time (WALK_OLD_MATCHER) and, for
				BuildKit, the file sync of 2020 (WALK_FSUTIL2020) */
	int client_major;    /* docker: the client's major version, given
				(--docker-client) or asked; 0 unknown */
	const char *why;     /* how buildkit was decided, for -v */
	char **argv;         /* COMMAND (borrowed) */
	int argc;
	int prog_at;         /* the program's word (after an `env ...` prefix) */
	int env_from, env_to;/* the env prefix's NAME=VALUE words */
	int build_at;        /* docker, buildah: the "build" word */
	int ctx_at;          /* docker: the context argument, or -1 */
	int file_at;         /* docker, buildah: the word holding -f's value's
				option, or -1 */
	const char *file;    /* docker, buildah: COMMAND's -f value, or NULL */
	const char *ignorefile; /* buildah: its --ignorefile, or NULL */
	const char *host_opt, *context_opt, *config_dir; /* docker's -H, -c, --config */
	char *host;          /* the daemon address docker will use, or NULL (default) */
};
/* client_major: the docker client's major version when the user gave it
 * (--docker-client), else 0 and `docker --version` is asked. */
void builder_detect(struct builder *b, int argc, char **argv, int client_major);
void builder_release(struct builder *b);

/* build: an err when a signal came (run_signal), else 0. */
int build_interrupted(struct err *e);
/*
 * build's directory hand-over (build_dir.c): bring the context's kept
 * directory up to date and put the Dockerfile beside it.  *ctx_dir and *df
 * get the paths for COMMAND (freed by the caller), *lockfd the lock held
 * until COMMAND is done (another build of this context waits).
 */
struct walk_result;
int build_dir_prepare(const struct walk_result *wr, const char *dockerfile, char **ctx_dir,
		      char **df, int *lockfd, struct err *e);

/* The commands. */
int cmd_ls(int argc, char **argv);
int cmd_du(int argc, char **argv);
int cmd_hash(int argc, char **argv);
int cmd_image(int argc, char **argv);
int cmd_pack(int argc, char **argv);
int cmd_build(int argc, char **argv);
int cmd_push(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_cache(int argc, char **argv);

#endif
