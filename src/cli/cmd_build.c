/*
 * ctxpack build: pack the context into COMMAND's standard input, e.g.
 * `ctxpack build -- docker build -t app -`, and return COMMAND's status.
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
 * Without pidfd_open (Linux < 5.3) the read end is not kept; an early exit
 * is then seen as EPIPE only when the archive did not fit in the pipe.
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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "ctxpack/frames.h"
#include "ctxpack/index.h"
#include "ctxpack/pack.h"
#include "ctxpack/walk.h"


struct pipe_sink {
	int wfd;
	int pidfd;          /* -1 when unavailable */
	const char *name;   /* COMMAND, for messages */
	uint64_t written;
	uint64_t last;      /* the size of the last frame written */
	int gone;           /* COMMAND exited or closed its input */
};

static int pipe_sink_write(void *ctx, const void *p, size_t n, struct err *e)
{
	struct pipe_sink *s = ctx;
	const char *c = p;

	s->last = n;
	while (n) {
		ssize_t k = write(s->wfd, c, n);

		if (k > 0) {
			c += k;
			n -= (size_t)k;
			s->written += (uint64_t)k;
			cli_progress_update(s->written, 0);
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN) {
			struct pollfd pf[2] = {{s->wfd, POLLOUT, 0}, {s->pidfd, POLLIN, 0}};

			if (poll(pf, s->pidfd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR)
				return err_errno(e, "poll");
			if (s->pidfd >= 0 && (pf[1].revents & POLLIN))
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

static int wait_child(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR)
			return -1;
	}
	return st;
}

static pid_t spawn(char **cmdv, int rfd, int wfd)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	/* the child: the pipe on stdin, SIGPIPE back to its default (main
	 * ignores it, and an ignored signal stays ignored across exec) */
	signal(SIGPIPE, SIG_DFL);
	if (dup2(rfd, 0) < 0) {
		fprintf(stderr, "ctxpack: error: cannot set up the input of %s: %s\n", cmdv[0],
			strerror(errno));
		_exit(126);
	}
	close(wfd);
	if (rfd != 0)
		close(rfd);
	execvp(cmdv[0], cmdv);
	fprintf(stderr, "ctxpack: error: cannot run %s: %s\n", cmdv[0], strerror(errno));
	_exit(errno == ENOENT ? 127 : 126);
}

int cmd_build(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_PACK_LONGOPTS,
		CLI_GLOBAL_LONGOPTS,
		{NULL, 0, NULL, 0},
	};
	const struct cli_cmd *cmd = cli_find("build");
	struct walk_opts wo = {0};
	struct walk_result wr;
	struct pack_list l;
	struct pack_opts po;
	struct cli_pack_args pa;
	struct pack_result res;
	struct pipe_sink sink = {-1, -1, NULL, 0, 0, 0};
	struct err e = ERR_INIT;
	const char *index_dir = NULL;
	struct fc_opts fo = {NULL, 0, NULL};
	struct fc_stats fst;
	struct idx *x = NULL;
	struct idx_snap *snap = NULL;
	struct fc *fc = NULL;
	struct buf warn = BUF_INIT, versions = BUF_INIT;
	char **cmdv;
	int fds[2], c, dd, st, status, packed, unread = 0, have_unread = 0, no_cache = 0;
	pid_t pid;

	for (dd = 1; dd < argc && strcmp(argv[dd], "--"); dd++)
		;
	if (dd >= argc || dd + 1 >= argc)
		cli_usage_error(cmd, "missing -- COMMAND");
	cmdv = argv + dd + 1;

	pack_opts_init(&po);
	pa.wo = &wo;
	pa.po = &po;
	pa.fo = &fo;
	pa.index_dir = &index_dir;
	pa.no_cache = &no_cache;
	/* options end at "--": getopt never sees COMMAND's arguments */
	while ((c = getopt_long(dd, argv, "f:" CLI_GLOBAL_SHORTOPTS, longopts, NULL)) != -1) {
		switch (c) {
		default:
			if (!cli_pack_opt(cmd, c, optarg, &pa))
				cli_global_opt(cmd, c, optarg);
		}
	}
	if (dd - optind > 1)
		cli_usage_error(cmd, "too many arguments before --");
	wo.dir = optind < dd ? argv[optind] : ".";
	if (cli_opt.json)
		cli_usage_error(cmd, "--json is not supported: standard output belongs to COMMAND");
	if (pack_opts_check(&po, &e))
		cli_usage_error(cmd, "%s", e.msg);
	if (pack_source_date_epoch(getenv("SOURCE_DATE_EPOCH"), &po.mtime, &e))
		return cli_fail(&e);

	/* the cache as for `ctxpack pack` (--compress none: nothing to save);
	 * opened before the walk, whose time is the racy rule's reference */
	if (!no_cache && po.compress != PACK_NONE) {
		pack_lib_versions(&versions);
		fo.versions = versions.data;
		if (fc_open(&fc, &fo, &e)) {
			buf_release(&versions);
			return cli_fail(&e);
		}
	}
	if (fc) {
		/* an unchanged context is replayed from its snapshot */
		snap = idx_snap_new(index_dir);
		wo.replay = idx_snap_replay;
		wo.replay_ctx = snap;
	}
	if (walk_run(&wo, &wr, &e)) {
		fc_close(fc);
		idx_snap_free(snap);
		buf_release(&versions);
		walk_release(&wr);
		return cli_fail(&e);
	}
	if (fc) {
		int r = fc_prepare(&wr, index_dir, fc, snap, &x, NULL, &warn, &e);

		if (r < 0) {
			fc_close(fc);
			idx_snap_free(snap);
			walk_release(&wr);
			buf_release(&versions);
			return cli_fail(&e);
		}
		if (r > 0) {
			cli_warn("%s", warn.data);
			fc_close(fc);
			fc = NULL;
		}
	}
	if (pack_list_build(&l, &wr, &e)) {
		fc_close(fc);
		idx_close(x);
		idx_snap_free(snap);
		walk_release(&wr);
		buf_release(&warn);
		buf_release(&versions);
		return cli_fail(&e);
	}

	if (pipe2(fds, O_CLOEXEC)) {
		err_errno(&e, "cannot create a pipe");
		status = cli_fail(&e);
		goto out;
	}
	fflush(stdout);
	fflush(stderr);
	pid = spawn(cmdv, fds[0], fds[1]);
	if (pid < 0) {
		err_errno(&e, "cannot start %s", cmdv[0]);
		close(fds[0]);
		close(fds[1]);
		status = cli_fail(&e);
		goto out;
	}
	sink.wfd = fds[1];
	sink.name = cmdv[0];
#ifdef SYS_pidfd_open
	sink.pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif
	if (sink.pidfd >= 0) {
		fcntl(sink.pidfd, F_SETFD, FD_CLOEXEC);
		fcntl(sink.wfd, F_SETFL, fcntl(sink.wfd, F_GETFL) | O_NONBLOCK);
	} else {
		close(fds[0]);
		fds[0] = -1;
	}

	/* --progress auto draws nothing here: COMMAND writes to the same
	 * terminal (docker and buildah draw their own progress) */
	if (cli_opt.progress == 1)
		cli_progress_start("build", 0);
	packed = fc_pack_write(fc, NULL, &l, &po, pipe_sink_write, &sink, -1, &res, &fst,
			       &e) == 0;
	cli_progress_end(packed);
	if (packed && x)
		idx_store_deferred(x, &wr, NULL); /* hashed by the packer */
	if (packed && fc)
		idx_snap_store(snap, &wr);
	if (!packed && !sink.gone) {
		/* our failure: stop COMMAND before it sees the end of its input */
		kill(pid, SIGTERM);
	}
	close(sink.wfd);
	st = wait_child(pid);
	if (fds[0] >= 0) {
		have_unread = ioctl(fds[0], FIONREAD, &unread) == 0;
		close(fds[0]);
	}
	if (sink.pidfd >= 0)
		close(sink.pidfd);

	if (!packed && !sink.gone) {
		status = cli_fail(&e);
		cli_warn("%s was stopped (SIGTERM) so that it does not use an incomplete context",
			 cmdv[0]);
		goto out;
	}
	if (packed && !cli_opt.quiet)
		fprintf(stderr, "%s %llu %llu\n", res.digest, (unsigned long long)res.bytes,
			(unsigned long long)res.entries);
	if (packed && fc) {
		fc_maintain(fc, &fst);
		if (cli_opt.verbose)
			cli_info("cache: %s: %llu frames, %llu reused, %llu compressed",
				 fst.path == FC_PATH_ARCHIVE ? "archive reused" :
				 fst.path == FC_PATH_ASSEMBLE ? "assemble" : "frames",
				 (unsigned long long)fst.frames,
				 (unsigned long long)fst.frames_reused,
				 (unsigned long long)fst.frames_compressed);
	}
	if (st == -1) {
		err_errno(&e, "cannot wait for %s", cmdv[0]);
		status = cli_fail(&e);
		goto out;
	}
	if (WIFSIGNALED(st)) {
		fprintf(stderr, "ctxpack: %s was killed by signal %d\n", cmdv[0], WTERMSIG(st));
		status = 128 + WTERMSIG(st);
		goto out;
	}
	status = WEXITSTATUS(st);
	/* the end-of-archive frame may stay unread: readers stop at the tar
	 * end blocks and need not read the zstd checksum after them */
	if (sink.gone || (have_unread && (uint64_t)unread > sink.last)) {
		uint64_t consumed = sink.written - (have_unread ? (uint64_t)unread : 0);

		if (packed)
			fprintf(stderr, "ctxpack: error: %s exited with status %d after reading "
				"%llu of %llu archive bytes\n", cmdv[0], status,
				(unsigned long long)consumed, (unsigned long long)res.bytes);
		else
			fprintf(stderr, "ctxpack: error: %s exited with status %d before reading "
				"the whole archive (it read %llu bytes)\n", cmdv[0], status,
				(unsigned long long)consumed);
		if (status == 0)
			status = EXIT_FAIL;
	} else if (have_unread && unread > 0 && cli_opt.verbose) {
		cli_info("%s left the last %d bytes (the end-of-archive frame) unread", cmdv[0],
			 unread);
	}
out:
	if (x && idx_warning(x))
		cli_warn("%s", idx_warning(x));
	if (fc && fc_warning(fc))
		cli_warn("%s", fc_warning(fc));
	fc_close(fc);
	idx_close(x);
	idx_snap_free(snap);
	buf_release(&warn);
	buf_release(&versions);
	pack_list_release(&l);
	walk_release(&wr);
	return status;
}
