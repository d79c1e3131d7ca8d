/*
 * ctxpack build: hand the context to COMMAND, e.g.
 * `ctxpack build -- docker build -t app -`, and return COMMAND's status.
 *
 * How the context is handed over depends on who reads it (builder.c,
 * docs/build.md):
 *
 *  - a pipe (docker's classic builder, buildah, podman, anything else):
 *    the archive goes to COMMAND's standard input, an uncompressed tar for
 *    a docker daemon on this machine, gzip for one on another, zstd for
 *    buildah and podman (which read it), an uncompressed tar for an
 *    unknown reader; --compress overrides.  For the classic builder the
 *    context is walked as that builder walks it (WALK_CLASSIC), and a
 *    symlinked Dockerfile is named to docker by its target, as the docker
 *    CLI names it to the daemon.
 *  - a directory (docker with BuildKit): BuildKit takes a tar context as
 *    it is, so an excluded Dockerfile or .dockerignore would be in what
 *    COPY sees; and it syncs a directory incrementally to a warm builder.
 *    So the context goes into a kept directory of exactly its entries
 *    (mirror.h), COMMAND's "-" becomes that directory and its -f a copy of
 *    the Dockerfile beside an ignore file that excludes nothing (the
 *    context is already filtered).
 *
 * The archive goes through a pipe; COMMAND runs with execvp, no shell.
 * ctxpack keeps a copy of the pipe's read end and watches the child with a
 * pidfd, so it can tell exactly how much of the archive COMMAND consumed,
 * even when the whole archive fits in the pipe buffer:
 *
 *  - COMMAND read everything (at most the end-of-archive frame left
 *    unread): its exit status is returned (128+N for signal N);
 *  - COMMAND exited, or closed its input, before reading every entry: this
 *    is reported, and the exit status is COMMAND's when it failed, or 1
 *    when it exited 0 (a builder that did not read the context did not
 *    build it);
 *  - the pack failed (a file changed, a read error): COMMAND is sent
 *    SIGTERM before its input is closed, so it never builds a truncated
 *    context, and the exit status is 1.
 *
 * Signals: SIGINT, SIGTERM and SIGHUP sent to ctxpack are passed on to
 * COMMAND (not when they came from the terminal, which sent them to
 * COMMAND too); packing stops, and ctxpack waits for COMMAND and exits
 * with its status.  COMMAND gets SIGTERM if ctxpack dies (PR_SET_PDEATHSIG),
 * so no builder goes on to tag an image after ctxpack was killed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ctxpack/pack.h"
#include "ctxpack/session.h"
#include "ctxpack/walk.h"

enum { SEND_AUTO = 0, SEND_PIPE, SEND_DIR, SEND_DIRECT };
enum { OPT_SEND = OPT_CMD_BASE + 1 };

/* ---- signals (util.h, run.c) ---- */

int build_interrupted(struct err *e)
{
	if (!run_signal())
		return 0;
	return err_set(e, ERR_FAIL, "interrupted by signal %d", (int)run_signal());
}

/* ---- the pipe ---- */

struct pipe_sink {
	int wfd;
	int pidfd;          /* -1 when unavailable */
	const char *name;   /* COMMAND, for messages */
	uint64_t written;
	uint64_t last;      /* the size of the last frame written */
	int gone;           /* COMMAND exited or closed its input */
	int no_splice;      /* splice() refused: pipe_sink_file takes nothing */
};

/* Wait until the pipe takes more: 0, or 1 when COMMAND is gone, or -1
 * (errno) when poll fails. */
static int pipe_sink_wait(struct pipe_sink *s)
{
	struct pollfd pf[2] = {{s->wfd, POLLOUT, 0}, {s->pidfd, POLLIN, 0}};

	if (poll(pf, s->pidfd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR)
		return -1;
	return s->pidfd >= 0 && (pf[1].revents & POLLIN);
}

static void pipe_sink_took(struct pipe_sink *s, uint64_t k)
{
	s->written += k;
	cli_progress_update(s->written, 0);
}

/* splice_to_pipe's hooks: wait for room unless a signal came or COMMAND
 * is gone (then the rest goes through pipe_sink_write, which says so) */
static int pipe_sink_file_wait(void *ctx)
{
	return run_signal() || pipe_sink_wait(ctx) != 0;
}

static void pipe_sink_file_took(void *ctx, uint64_t k)
{
	pipe_sink_took(ctx, k);
}

static int pipe_sink_write(void *ctx, const void *p, size_t n, struct err *e)
{
	struct pipe_sink *s = ctx;
	const char *c = p;

	s->last = n;
	while (n) {
		ssize_t k;

		if (build_interrupted(e))
			return e->code;
		k = write(s->wfd, c, n);
		if (k > 0) {
			c += k;
			n -= (size_t)k;
			pipe_sink_took(s, (uint64_t)k);
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN) {
			int w = pipe_sink_wait(s);

			if (w < 0)
				return err_errno(e, "poll");
			if (w)
				goto gone;
			continue;
		}
		if (k < 0 && errno == EPIPE)
			goto gone;
		return err_errno(e, "cannot write to %s", s->name);
	}
	return 0;
gone:
	s->gone = 1;
	return err_set(e, ERR_FAIL, "%s stopped reading its input after %llu bytes", s->name,
		       (unsigned long long)s->written);
}

/*
 * A stored frame's bytes from its file straight into the pipe
 * (pack_sink_file_fn): splice() hands COMMAND the page cache's pages, with
 * no copy through ctxpack (a reused archive of 13.5 MB cost two copies of
 * it and a third of ctxpack's CPU beside the docker client's).  Whatever
 * it cannot take (COMMAND gone, a signal, a file system without splice)
 * goes through pipe_sink_write, which says why.
 */
static uint64_t pipe_sink_file(void *ctx, int fd, uint64_t off, uint64_t n)
{
	struct pipe_sink *s = ctx;
	int64_t k;

	if (s->no_splice || run_signal())
		return 0;
	s->last = n;
	k = splice_to_pipe(fd, off, n, s->wfd, pipe_sink_file_wait, pipe_sink_file_took, s);
	if (k < 0)
		s->no_splice = 1;
	return k < 0 ? 0 : (uint64_t)k;
}

/* COMMAND's exit status as ours (128+N for signal N, said on stderr). */
static int child_status(const char *name, int st, struct err *e)
{
	if (st == -1) {
		err_errno(e, "cannot wait for %s", name);
		return cli_fail(e);
	}
	if (WIFSIGNALED(st)) {
		fprintf(stderr, "ctxpack: %s was killed by signal %d\n", name, WTERMSIG(st));
		return 128 + WTERMSIG(st);
	}
	return WEXITSTATUS(st);
}

/* ---- COMMAND's words ---- */

/* COMMAND with word ctx_at replaced (>= 0) and "-f FILE" set: the word
 * holding -f's value replaced, or "-f FILE" inserted after "build".  A
 * word made for it ("--file=FILE") is left in *made (free it), else NULL. */
static char **rewrite(const struct builder *b, int ctx_at, const char *ctx, const char *file,
		      char **made)
{
	struct buf owned = BUF_INIT;

	char **v = xcalloc((size_t)b->argc + 3, sizeof(*v));
	int i, n = 0;

	*made = NULL;
	for (i = 0; i < b->argc; i++) {
		if (i == ctx_at) {
			v[n++] = (char *)ctx;
			continue;
		}
		if (file && i == b->file_at) {
			const char *w = b->argv[i];

			if (i + 1 < b->argc && b->file == b->argv[i + 1]) {
				v[n++] = (char *)w;      /* "-f" / "--file" */
				v[n++] = (char *)file;   /* its value */
				i++;
				continue;
			}
			/* "--file=X", "-fX": keep what precedes the value */
			buf_add(&owned, w, (size_t)(b->file - w));
			buf_addstr(&owned, file);
			v[n++] = *made = buf_detach(&owned, NULL);
			continue;
		}
		v[n++] = b->argv[i];
		if (file && b->file_at < 0 && i == b->build_at) {
			v[n++] = (char *)"-f";
			v[n++] = (char *)file;
		}
	}
	v[n] = NULL;
	return v;
}

static void print_cmd(char **v)
{
	struct buf b = BUF_INIT;

	for (; *v; v++)
		buf_addf(&b, "%s%s", b.len ? " " : "", *v);
	cli_info("running %s", b.data);
	buf_release(&b);
}

/* path relative to root when it lies inside it ("" for root), else NULL */
static char *inside(const char *root, const char *path)
{
	size_t n = strlen(root);

	if (!strncmp(path, root, n) && (path[n] == '/' || !path[n]))
		return xstrdup(path[n] ? path + n + 1 : "");
	return NULL;
}

/* ---- the command ---- */

struct build {
	const struct cli_cmd *cmd;
	struct walk_opts wo;
	struct pack_opts po;
	struct fc_opts fo;
	const char *index_dir;
	int no_cache, compress_set, send;
	int docker_major;    /* --docker-client's major version, else 0 */
	struct builder b;
	char **cmdv;
	int cmdc;
	char *df_abs;        /* the Dockerfile ctxpack uses (absolute or as given) */
};

/* The options before "--"; "--help" anywhere before it prints the help. */
static void parse_options(struct build *bd, int argc, char **argv, int dd)
{
	static const struct option longopts[] = {
		CLI_PACK_LONGOPTS,
		{"send", required_argument, NULL, OPT_SEND},
		CLI_GLOBAL_LONGOPTS,
		{NULL, 0, NULL, 0},
	};
	struct cli_pack_args pa;
	int c, i;

	for (i = 1; i < dd; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			cli_help(bd->cmd);
	if (dd >= argc || dd + 1 >= argc)
		cli_usage_error(bd->cmd, "missing -- COMMAND");
	pack_opts_init(&bd->po);
	/* docker must see a tar in the first 1024 bytes of its stdin */
	bd->po.stdin_safe = 1;
	pa.wo = &bd->wo;
	pa.po = &bd->po;
	pa.fo = &bd->fo;
	pa.index_dir = &bd->index_dir;
	pa.no_cache = &bd->no_cache;
	pa.docker_major = &bd->docker_major;
	/* options end at "--": getopt never sees COMMAND's arguments */
	while ((c = getopt_long(dd, argv, "f:" CLI_GLOBAL_SHORTOPTS, longopts, NULL)) != -1) {
		switch (c) {
		case OPT_SEND:
			if (!strcmp(optarg, "auto"))
				bd->send = SEND_AUTO;
			else if (!strcmp(optarg, "pipe"))
				bd->send = SEND_PIPE;
			else if (!strcmp(optarg, "dir"))
				bd->send = SEND_DIR;
			else if (!strcmp(optarg, "direct"))
				bd->send = SEND_DIRECT;
			else
				cli_usage_error(bd->cmd, "--send takes auto, pipe, dir or direct, "
						"not '%s'", optarg);
			break;
		case OPT_PACK_COMPRESS:
			bd->compress_set = 1;
			/* fall through */
		default:
			if (!cli_pack_opt(bd->cmd, c, optarg, &pa))
				cli_global_opt(bd->cmd, c, optarg);
		}
	}
	if (dd - optind > 1)
		cli_usage_error(bd->cmd, "too many arguments before --");
	bd->wo.dir = optind < dd ? argv[optind] : ".";
	bd->cmdv = argv + dd + 1;
	bd->cmdc = argc - dd - 1;
	if (cli_opt.json)
		cli_usage_error(bd->cmd, "--json is not supported: standard output belongs to COMMAND");
}

/*
 * Decide what COMMAND gets, from its words: the walk's flavour, the
 * Dockerfile, the hand-over and the compression.  Usage errors exit.
 */
static void plan(struct build *bd)
{
	struct builder *b = &bd->b;
	int docker = b->kind == BUILDER_DOCKER;
	/* options that make ctxpack's context another than docker's own */
	int shaped = bd->wo.ignore_file || (bd->wo.flags & (WALK_CLASSIC | WALK_NORMALIZE_MODES |
							    WALK_NO_HARDLINKS));

	if (bd->docker_major && !docker)
		cli_warn("--docker-client is for a docker COMMAND, not %s: ignored",
			 b->argv[b->prog_at]);
	if (docker && !b->buildkit)
		bd->wo.flags |= WALK_CLASSIC;
	/* a client before 23 walks by the rules of its time, for the
	 * builder it runs (not for a --classic given to ctxpack) */
	if (docker && b->old_client) {
		unsigned f = b->buildkit ? 0 : WALK_CLASSIC;

		cli_docker_client_flags(&f, b->client_major);
		bd->wo.flags |= f;
	}
	/* buildah reads the archive it unpacks with the Containerfile and
	 * ignore file it finds there by its own rules, and matches with the
	 * deprecated rule (fileutils' Matches, to this day) and the classic
	 * builder's descent: the walk does the same, so that what is sent
	 * holds what buildah keeps */
	if (b->kind == BUILDER_BUILDAH)
		bd->wo.flags |= WALK_CONTAINERFILE | WALK_CLASSIC | WALK_OLD_MATCHER;
	if (docker && b->ctx_at >= 0 && strcmp(b->argv[b->ctx_at], "-"))
		cli_usage_error(bd->cmd, "%s reads its context from '%s', not from ctxpack: give - "
				"as its context (ctxpack build [DIR] -- docker build [OPTIONS] -)",
				b->argv[b->prog_at], b->argv[b->ctx_at]);
	if (docker && b->ctx_at < 0)
		cli_usage_error(bd->cmd, "%s has no context argument: end it with - (the context "
				"ctxpack sends)", b->argv[b->prog_at]);
	if ((bd->send == SEND_DIR || bd->send == SEND_DIRECT) && !docker)
		cli_usage_error(bd->cmd, "--send %s is for docker build (COMMAND is %s)",
				bd->send == SEND_DIR ? "dir" : "direct", b->argv[b->prog_at]);
	if ((bd->send == SEND_DIR || bd->send == SEND_DIRECT) && bd->compress_set)
		cli_usage_error(bd->cmd, "--compress does not apply to --send %s",
				bd->send == SEND_DIR ? "dir" : "direct");
	if (bd->send == SEND_DIRECT && shaped)
		cli_usage_error(bd->cmd, "--send direct hands docker the directory as it is: "
				"--ignore-file, --classic, --normalize-modes and --no-hardlinks "
				"need --send dir");

	/* the Dockerfile: ctxpack's -f (relative to the working directory,
	 * like docker build DIR), else COMMAND's (relative to the context it
	 * reads, the archive's root), else DIR/Dockerfile (for buildah
	 * DIR/Containerfile first) */
	if ((docker || b->kind == BUILDER_BUILDAH) && b->file && strcmp(b->file, "-")) {
		if (!bd->wo.dockerfile) {
			/* buildah takes an absolute -f from this machine */
			bd->df_abs = !docker && b->file[0] == '/' ? xstrdup(b->file) :
				     xasprintf("%s/%s", bd->wo.dir, b->file);
			bd->wo.dockerfile = bd->df_abs;
			cli_warn("%s -f %s: ctxpack takes %s as the Dockerfile; give -f to "
				 "ctxpack too", b->argv[b->prog_at], b->file, bd->df_abs);
		}
	}
	/* buildah's --ignorefile (relative to the working directory) is the
	 * ignore file it applies: the walk's too */
	if (b->kind == BUILDER_BUILDAH && b->ignorefile && !bd->wo.ignore_file)
		bd->wo.ignore_file = b->ignorefile;
	if (docker && b->file && !strcmp(b->file, "-"))
		cli_usage_error(bd->cmd, "%s -f -: the Dockerfile cannot come from standard "
				"input, which carries the context", b->argv[b->prog_at]);

	/* BuildKit: the directory itself, unless ctxpack's options shape the
	 * context (then a kept directory of exactly that context) */
	if (bd->send == SEND_AUTO)
		bd->send = !docker || !b->buildkit || bd->compress_set ? SEND_PIPE :
			   shaped ? SEND_DIR : SEND_DIRECT;
	if (!bd->compress_set) {
		if (docker)
			bd->po.compress = b->remote ? PACK_GZIP : PACK_NONE;
		else if (b->kind == BUILDER_BUILDAH)
			bd->po.compress = PACK_ZSTD;
		else
			bd->po.compress = PACK_NONE;
	}
	if (cli_opt.verbose) {
		if (docker)
			cli_info("docker with %s (%s%s), daemon %s%s: %s", b->buildkit ?
				 "BuildKit" : "the classic builder", b->why,
				 bd->send == SEND_DIRECT ? "" :
				 b->old_client && b->buildkit ? "; a client < 23: its 2020 context walk and matcher" :
				 b->old_client ? "; a client < 23: its matcher" : "",
				 b->host ? b->host : "on the default socket",
				 b->remote ? " (remote)" : "",
				 bd->send == SEND_DIR ? "the context as a directory" :
				 bd->send == SEND_DIRECT ? "the context directory itself" :
				 pack_compress_name(bd->po.compress));
		else
			cli_info("%s reads the archive: %s", b->argv[b->prog_at],
				 pack_compress_name(bd->po.compress));
	}
}

/* The Dockerfile must exist before COMMAND starts (for a known builder,
 * or when -f names one).  root is the context, rel the walk's Dockerfile
 * in it (NULL: Dockerfile), empty whether the context holds nothing (-1:
 * not walked, look when it matters).  Returns 0 or an err. */
static int check_dockerfile(const struct build *bd, const char *root, const char *rel,
			    int empty, struct err *e)
{
	const char *df = bd->wo.dockerfile;
	char *dflt = NULL;
	struct stat st;
	int ret = 0;

	if (!df) {
		if (bd->b.kind == BUILDER_OTHER)
			return 0;
		/* the walk's: DIR/Dockerfile, or for buildah DIR/Containerfile
		 * when there is one */
		df = dflt = xasprintf("%s/%s", root, rel ? rel : "Dockerfile");
	}
	if (stat(df, &st)) {
		int saved = errno;

		if (empty < 0 && !bd->wo.dockerfile) {
			struct err ignore = ERR_INIT;
			char **names = NULL;
			size_t n = 1;

			if (!dir_names(root, 0, &names, &n, &ignore))
				dir_names_free(names, n);
			empty = !n;
		}
		errno = saved;
		if (empty > 0 && !bd->wo.dockerfile)
			ret = err_set(e, ERR_NOTFOUND, "the context %s is empty: there is no "
				      "Dockerfile to build", root);
		else if (!bd->wo.dockerfile && bd->b.kind == BUILDER_BUILDAH)
			ret = err_set(e, ERR_NOTFOUND, "no Containerfile or Dockerfile in %s "
				      "(-f names another)", root);
		else
			ret = err_errno(e, "no Dockerfile %s (-f names another)", df);
	} else if (!S_ISREG(st.st_mode)) {
		ret = err_set(e, ERR_USAGE, "the Dockerfile %s is not a regular file", df);
	}
	free(dflt);
	return ret;
}

static int run_dir(struct build *bd, struct pack_session *ps, struct walk_result *wr,
		   struct err *e)
{
	char *ctx_dir = NULL, *df = NULL, **v, *made = NULL;
	const char *dockerfile = bd->wo.dockerfile;
	char *dflt = NULL;
	int lockfd = -1, status, st;
	pid_t pid;

	if (!dockerfile)
		dockerfile = dflt = xasprintf("%s/Dockerfile", wr->root);
	if (build_dir_prepare(wr, dockerfile, &ctx_dir, &df, &lockfd, e) || build_interrupted(e)) {
		status = cli_fail(e);
		goto out;
	}
	v = rewrite(&bd->b, bd->b.ctx_at, ctx_dir, df, &made);
	if (cli_opt.verbose)
		print_cmd(v);
	if (!cli_opt.quiet)
		fprintf(stderr, "ctxpack: context %s: %zu entries in %s\n", wr->root,
			wr->n, ctx_dir);
	fflush(stdout);
	fflush(stderr);
	pid = run_start(v, NULL, 0);
	/* the walk's snapshot, for the next build, while COMMAND builds */
	pack_session_keep_walk(ps);
	if (pid < 0) {
		err_errno(e, "cannot start %s", v[0]);
		status = cli_fail(e);
	} else {
		st = run_wait(pid);
		status = child_status(v[0], st, e);
	}
	free(made);
	free(v);
out:
	if (lockfd >= 0)
		close(lockfd);
	free(ctx_dir);
	free(df);
	free(dflt);
	return status;
}

/*
 * BuildKit reading the context directory itself (SEND_DIRECT, the default
 * for docker with BuildKit; docs/build.md): COMMAND's "-" becomes DIR and
 * its -f the Dockerfile's path from here, and the docker client syncs DIR
 * to the builder as `docker build DIR` does.  That is the image `docker
 * build .` gives by construction (its ignore rules, whatever the client's
 * version), the daemon's incremental sync of the directory, and nothing of
 * ctxpack's before COMMAND starts but its start and the Dockerfile check:
 * the kept copy of the context (run_dir) had to be walked and brought up
 * to date first (about 20 ms on the bench's 4,295-entry context, 1.05-1.07x
 * docker's own time).  Nothing is walked, and ctxpack execs COMMAND: no
 * process of its own stays to wait (a parent that forks, waits and exits
 * cost about 2% of a 0.16 s build, as any wrapper does).
 */
static int run_direct(struct build *bd, struct err *e)
{
	const char *dir = bd->wo.dir;
	char *made = NULL, **v;
	struct stat st;
	int status;

	/* as the walk says it */
	if (stat(dir, &st)) {
		if (errno == ENOENT)
			err_set(e, ERR_NOTFOUND, "context %s does not exist", dir);
		else
			err_errno(e, "cannot open %s", dir);
		return cli_fail(e);
	}
	if (!S_ISDIR(st.st_mode)) {
		err_set(e, ERR_USAGE, "context %s is not a directory", dir);
		return cli_fail(e);
	}
	if (check_dockerfile(bd, dir, NULL, -1, e))
		return cli_fail(e);
	if (bd->wo.dockerfile && !bd->b.file)
		cli_warn("-f %s is given to ctxpack but not to %s: passing it on",
			 bd->wo.dockerfile, bd->b.argv[bd->b.prog_at]);
	/* a -f (ctxpack's, or docker's taken over: DIR/FILE) as a path from
	 * here, which is how docker reads -f beside a directory */
	v = rewrite(&bd->b, bd->b.ctx_at, dir, bd->wo.dockerfile, &made);
	if (cli_opt.verbose)
		print_cmd(v);
	if (!cli_opt.quiet)
		fprintf(stderr, "ctxpack: context %s: read by %s itself (BuildKit syncs the "
			"directory)\n", dir, bd->b.argv[bd->b.prog_at]);
	/* nothing is left for ctxpack to do: it becomes COMMAND, so that
	 * signals, the exit status and the process are COMMAND's own (and no
	 * parent waits and exits after it) */
	status = run_exec(v);
	free(made);
	free(v);
	return status;
}

/* ---- the pipe hand-over ---- */

/* The pipe's size: COMMAND and ctxpack wake each other less often than
 * with the default 64 KiB (1 MiB is the default most an unprivileged
 * process may ask for; a refusal keeps the default). */
#define PIPE_SIZE (1 << 20)

/* COMMAND fed through a pipe. */
struct piped {
	char **v;            /* COMMAND as run: bd->cmdv or a rewrite of it */
	char *made;          /* a word rewrite() made, or NULL */
	char *resolved;      /* the -f value passed to docker, or NULL */
	int worded;          /* pipe_words() ran */
	int fds[2];          /* the pipe; fds[0] kept while the pidfd watches */
	struct pipe_sink sink;
	pid_t pid;           /* > 0 once COMMAND runs */
};

static void piped_init(struct piped *pp, struct build *bd)
{
	memset(pp, 0, sizeof(*pp));
	pp->v = bd->cmdv;
	pp->fds[0] = pp->fds[1] = -1;
	pp->sink.wfd = pp->sink.pidfd = -1;
}

/*
 * COMMAND's words for a piped archive.  Needs only what the walk knows
 * before it walks the tree (wr's root, flags and dockerfile_rel), so that
 * COMMAND can start while the tree is walked; may replace
 * wr->dockerfile_rel (a symlinked Dockerfile, classic builder).
 */
static void pipe_words(struct build *bd, struct walk_result *wr, struct piped *pp)
{
	pp->worded = 1;
	/* docker and buildah read the Dockerfile the archive holds at their
	 * -f path: ctxpack's -f, when COMMAND was not given one, is passed on */
	if ((bd->b.kind == BUILDER_DOCKER || bd->b.kind == BUILDER_BUILDAH) && bd->wo.dockerfile &&
	    wr->dockerfile_rel) {
		const char *want = bd->b.file ? bd->b.file : NULL;

		if (!want) {
			cli_warn("-f %s is given to ctxpack but not to %s: passing it -f %s",
				 bd->wo.dockerfile, bd->b.argv[bd->b.prog_at], wr->dockerfile_rel);
			pp->resolved = xstrdup(wr->dockerfile_rel);
		} else if (!bd->df_abs) {
			/* both given: they must name the same file */
			char *a = xasprintf("%s/%s", wr->root, want);
			char *ra = realpath(a, NULL), *rb = realpath(bd->wo.dockerfile, NULL);

			if (!ra || !rb || strcmp(ra, rb))
				cli_warn("ctxpack's -f %s and %s's -f %s name different files; "
					 "%s reads %s from the archive", bd->wo.dockerfile,
					 bd->b.argv[bd->b.prog_at], want, bd->b.argv[bd->b.prog_at], want);
			free(a);
			free(ra);
			free(rb);
		}
	}
	/* the classic CLI names a symlinked Dockerfile to the daemon by its
	 * target (and sends the target even when it is excluded) */
	if (bd->b.kind == BUILDER_DOCKER && (wr->flags & WALK_CLASSIC) && wr->dockerfile_rel) {
		char *full = xasprintf("%s/%s", wr->root, wr->dockerfile_rel);
		char *real = realpath(full, NULL), *rel = real ? inside(wr->root, real) : NULL;

		if (rel && *rel && strcmp(rel, wr->dockerfile_rel)) {
			free(wr->dockerfile_rel);
			wr->dockerfile_rel = rel;
			free(pp->resolved);
			pp->resolved = xstrdup(rel);
			rel = NULL;
			if (cli_opt.verbose)
				cli_info("the Dockerfile is a symlink: naming its target %s to %s, as "
					 "docker build does", pp->resolved, bd->b.argv[bd->b.prog_at]);
		}
		free(rel);
		free(real);
		free(full);
	}
	if (pp->resolved)
		pp->v = rewrite(&bd->b, -1, NULL, pp->resolved, &pp->made);
}

/* The pipe, and COMMAND reading it. */
static int pipe_start(struct build *bd, struct piped *pp, struct err *e)
{
	pid_t pid;

	if (pipe2(pp->fds, O_CLOEXEC))
		return err_errno(e, "cannot create a pipe");
	fcntl(pp->fds[1], F_SETPIPE_SZ, PIPE_SIZE);
	if (cli_opt.verbose && pp->v != bd->cmdv)
		print_cmd(pp->v);
	fflush(stdout);
	fflush(stderr);
	pid = run_start(pp->v, (int[3]){pp->fds[0], -1, -1}, 0);
	if (pid < 0) {
		err_errno(e, "cannot start %s", pp->v[0]);
		close(pp->fds[0]);
		close(pp->fds[1]);
		pp->fds[0] = pp->fds[1] = -1;
		return e->code;
	}
	pp->pid = pid;
	pp->sink.wfd = pp->fds[1];
	pp->sink.name = pp->v[0];
#ifdef SYS_pidfd_open
	pp->sink.pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif
	if (pp->sink.pidfd >= 0) {
		fcntl(pp->sink.pidfd, F_SETFD, FD_CLOEXEC);
		fcntl(pp->sink.wfd, F_SETFL, fcntl(pp->sink.wfd, F_GETFL) | O_NONBLOCK);
	} else {
		close(pp->fds[0]);
		pp->fds[0] = -1;
	}
	return 0;
}

/* The pipe's ends and the pidfd closed (COMMAND's input ends). */
static void pipe_close(struct piped *pp)
{
	if (pp->sink.wfd >= 0)
		close(pp->sink.wfd);
	pp->sink.wfd = pp->fds[1] = -1;
	if (pp->fds[0] >= 0)
		close(pp->fds[0]);
	pp->fds[0] = -1;
	if (pp->sink.pidfd >= 0)
		close(pp->sink.pidfd);
	pp->sink.pidfd = -1;
}

static void piped_release(struct build *bd, struct piped *pp)
{
	pipe_close(pp);
	if (pp->v != bd->cmdv)
		free(pp->v);
	free(pp->made);
	free(pp->resolved);
}

/*
 * COMMAND started, and what it was to read failed before any of it was
 * sent (e: the walk, the Dockerfile check, the pack's set-up), or a signal
 * came: a signal was passed on to it, and its status is ctxpack's; else it
 * gets SIGTERM before its input ends, so that it never builds an empty
 * context, and the status is e's.
 */
static int pipe_abort(struct piped *pp, struct err *e)
{
	int st, status;

	if (!run_signal())
		kill(pp->pid, SIGTERM);
	pipe_close(pp);
	st = run_wait(pp->pid);
	if (run_signal()) {
		cli_warn("interrupted by signal %d before the context was sent", (int)run_signal());
		status = child_status(pp->v[0], st, e);
		return status ? status : 128 + run_signal();
	}
	status = cli_fail(e);
	cli_warn("%s was stopped (SIGTERM) so that it does not use an incomplete context",
		 pp->v[0]);
	return status;
}

/*
 * The walk's hook before it walks the tree (walk_opts.replay: the root is
 * resolved and the ignore file parsed, nothing walked yet).  For docker's
 * classic builder COMMAND starts here, so that the docker client's own
 * start-up (tens of milliseconds, before it reads its input) overlaps the
 * walk rather than following it: in `docker build .` the client starts
 * before it walks, too.  Nothing COMMAND does depends on the tree until it
 * reads the archive, and what fails from here on stops it before its
 * input ends (pipe_abort).  Only when the checks that must come before
 * COMMAND pass already: the Dockerfile is in the context (else docker gets
 * a directory) and is a regular file (else the error is said first).  The
 * pack session calls it (pack_session_opts.before_tree), then replays the
 * snapshot.
 */
struct before_tree {
	struct build *bd;
	struct piped *pp;
};

static void before_tree(void *ctx, const struct walk_opts *o, struct walk_result *r, int rootfd)
{
	struct before_tree *bt = ctx;
	struct build *bd = bt->bd;

	if (bd->b.kind == BUILDER_DOCKER && !bd->b.buildkit && bd->send == SEND_PIPE &&
	    r->dockerfile_rel && !run_signal()) {
		struct err ignore = ERR_INIT;
		struct stat st;

		if (!fstatat(rootfd, r->dockerfile_rel, &st, 0) && S_ISREG(st.st_mode)) {
			pipe_words(bd, r, bt->pp);
			/* a failure is tried again, and said, after the walk */
			pipe_start(bd, bt->pp, &ignore);
		}
	}
}

static int run_pipe(struct build *bd, struct pack_session *ps, struct piped *pp,
		    struct err *e)
{
	const struct pack_list *l;
	struct pack_result res;
	struct pipe_sink *sink = &pp->sink;
	char **v;
	int st, status, packed, unread = 0, have_unread = 0;
	pid_t pid;

	if (!pp->worded)
		pipe_words(bd, pack_session_walk_result(ps), pp);
	v = pp->v;
	if (pack_session_list(ps, e))
		goto fail;
	l = pack_session_pack_list(ps);
	if (bd->b.kind == BUILDER_DOCKER && bd->b.buildkit && l->n_added)
		cli_warn("BuildKit takes a piped context as it is: %s%s (excluded by the ignore "
			 "file) will be in what COPY sees; without --send pipe or --compress, "
			 "ctxpack hands BuildKit a directory instead", l->added[0].path,
			 l->n_added > 1 ? " and others" : "");
	if (build_interrupted(e))
		goto fail;
	if (!pp->pid && pipe_start(bd, pp, e)) {
		status = cli_fail(e);
		goto out;
	}
	pid = pp->pid;

	/* --progress auto draws nothing here: COMMAND writes to the same
	 * terminal (docker and buildah draw their own progress) */
	if (cli_opt.progress == 1)
		cli_progress_start("build", 0);
	packed = pack_session_write(ps, pipe_sink_write, sink, &res, e) == 0;
	cli_progress_end(packed);
	if (!packed && !sink->gone && !run_signal()) {
		/* our failure: stop COMMAND before it sees the end of its input */
		kill(pid, SIGTERM);
	}
	close(sink->wfd);
	sink->wfd = pp->fds[1] = -1;
	/* COMMAND has the end of its input: the hashes the packer took, the
	 * snapshot and the store's bound are seen to while it builds */
	if (packed)
		pack_session_commit(ps);
	st = run_wait(pid);
	if (pp->fds[0] >= 0) {
		have_unread = ioctl(pp->fds[0], FIONREAD, &unread) == 0;
		close(pp->fds[0]);
		pp->fds[0] = -1;
	}

	if (!packed && run_signal()) {
		/* passed on to COMMAND, whose status tells how it ended */
		cli_warn("interrupted by signal %d while sending the context", (int)run_signal());
		status = child_status(v[0], st, e);
		if (!status)
			status = 128 + run_signal();
		goto out;
	}
	if (!packed && !sink->gone) {
		status = cli_fail(e);
		cli_warn("%s was stopped (SIGTERM) so that it does not use an incomplete context",
			 v[0]);
		goto out;
	}
	if (packed && !cli_opt.quiet)
		fprintf(stderr, "%s %llu %llu\n", res.digest, (unsigned long long)res.bytes,
			(unsigned long long)res.entries);
	if (packed && cli_opt.verbose && pack_session_fc(ps)) {
		const struct fc_stats *fst = pack_session_fc_stats(ps);

		cli_info("cache: %s: %llu frames, %llu reused, %llu compressed",
			 fst->path == FC_PATH_ARCHIVE ? "archive reused" :
			 cli_pack_path_name(fst->path), (unsigned long long)fst->frames,
			 (unsigned long long)fst->frames_reused,
			 (unsigned long long)fst->frames_compressed);
	}
	status = child_status(v[0], st, e);
	if (st == -1 || WIFSIGNALED(st))
		goto out;
	/* the end-of-archive frame may stay unread: readers stop at the tar
	 * end blocks and need not read the zstd checksum after them */
	if (sink->gone || (have_unread && (uint64_t)unread > sink->last)) {
		uint64_t consumed = sink->written - (have_unread ? (uint64_t)unread : 0);

		if (packed)
			fprintf(stderr, "ctxpack: error: %s exited with status %d after reading "
				"%llu of %llu archive bytes\n", v[0], status,
				(unsigned long long)consumed, (unsigned long long)res.bytes);
		else
			fprintf(stderr, "ctxpack: error: %s exited with status %d before reading "
				"the whole archive (it read %llu bytes)\n", v[0], status,
				(unsigned long long)consumed);
		if (status == 0)
			status = EXIT_FAIL;
	} else if (have_unread && unread > 0 && cli_opt.verbose) {
		cli_info("%s left the last %d bytes (the end-of-archive frame) unread", v[0],
			 unread);
	}
	goto out;
fail:
	/* before anything was sent: a COMMAND started early is stopped */
	status = pp->pid > 0 ? pipe_abort(pp, e) : cli_fail(e);
out:
	return status;
}

int cmd_build(int argc, char **argv)
{
	struct build bd;
	struct walk_result *wr = NULL;
	struct err e = ERR_INIT;
	struct pack_session_opts so;
	struct pack_session *ps = NULL;
	struct piped pp;
	struct before_tree bt;
	int dd, status;

	memset(&bd, 0, sizeof(bd));
	bd.cmd = cli_find("build");
	for (dd = 1; dd < argc && strcmp(argv[dd], "--"); dd++)
		;
	parse_options(&bd, argc, argv, dd);
	if (pack_opts_check(&bd.po, &e))
		cli_usage_error(bd.cmd, "%s", e.msg);
	if (pack_source_date_epoch(env_get()->source_date_epoch, &bd.po.mtime, &e))
		return cli_fail(&e);
	builder_detect(&bd.b, bd.cmdc, bd.cmdv, bd.docker_major);
	plan(&bd);
	if (pack_opts_check(&bd.po, &e))
		cli_usage_error(bd.cmd, "%s", e.msg);
	run_catch_signals();
	piped_init(&pp, &bd);
	if (bd.send == SEND_DIRECT) {
		status = run_direct(&bd, &e);
		goto out;
	}
	bt.bd = &bd;
	bt.pp = &pp;
	/* one pack of the context, as `pack` makes it: a piped archive goes
	 * through the frame store (an unchanged context is replayed from its
	 * snapshot); for a directory only the walk is used */
	memset(&so, 0, sizeof(so));
	so.wo = &bd.wo;
	so.po = &bd.po;
	so.fo = bd.fo;
	so.index_dir = bd.index_dir;
	so.no_cache = bd.no_cache;
	/* a directory: the walk only, checked against its snapshot */
	so.walk_only = bd.send == SEND_DIR;
	so.out_fd = -1;
	so.sink_file = pipe_sink_file;
	so.before_tree = before_tree;
	so.before_tree_ctx = &bt;
	if (pack_session_open(&ps, &so, &e) || pack_session_walk(ps, &e) ||
	    (wr = pack_session_walk_result(ps),
	     check_dockerfile(&bd, wr->root, wr->dockerfile_rel, !wr->n, &e)) ||
	    build_interrupted(&e)) {
		status = pp.pid > 0 ? pipe_abort(&pp, &e) : cli_fail(&e);
		goto out;
	}
	if (!wr->n && !cli_opt.quiet)
		cli_warn("the context %s is empty", wr->root);
	if (bd.send == SEND_PIPE && bd.b.kind == BUILDER_DOCKER && !wr->dockerfile_rel &&
	    !bd.b.buildkit) {
		/* the classic builder reads the Dockerfile from the archive: one
		 * from outside the context goes the way docker build sends it
		 * (COMMAND was not started early: before_tree) */
		if (!cli_opt.quiet)
			cli_info("the Dockerfile is outside the context: handing %s a directory",
				 bd.b.argv[bd.b.prog_at]);
		bd.send = SEND_DIR;
	}
	if (bd.send == SEND_DIR && cli_opt.verbose)
		cli_info("context %s: %zu entries, snapshot: %s", wr->root, wr->n,
			 pack_session_snapshot(ps));
	status = bd.send == SEND_DIR ? run_dir(&bd, ps, wr, &e) : run_pipe(&bd, ps, &pp, &e);
out:
	/* interrupted before COMMAND started: die of it, in effect */
	if (run_signal() && !run_started())
		status = 128 + run_signal();
	if (ps)
		pack_session_warnings(ps, cli_warn_msg);
	pack_session_free(ps);
	piped_release(&bd, &pp);
	builder_release(&bd.b);
	free(bd.df_abs);
	return status;
}
