/*
 * run: starting a user's COMMAND and passing signals on to it, the same
 * way for `build` and `cache run` (util.h, "Running COMMAND").
 *
 * While COMMAND runs, SIGINT, SIGTERM and SIGHUP sent to ctxpack are
 * passed on to it, except those the terminal sent (^C reaches COMMAND's
 * process group by itself); ctxpack notes the signal, waits for COMMAND
 * and exits with its status.  COMMAND starts with default signal handling
 * and PR_SET_PDEATHSIG: if ctxpack is killed outright, COMMAND gets
 * SIGTERM, so that no builder or install goes on without it.
 *
 * The child shares ctxpack's memory until it execs (clone with CLONE_VM |
 * CLONE_VFORK, as posix_spawn does): nothing is copied, and ctxpack, which
 * may go on walking while COMMAND starts up, takes no copy-on-write
 * faults.  The child runs on a stack of its own and makes system calls
 * only; what failed is left in spawn_args for the parent to say.
 */
#include "ctxpack/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t got_signal;
static volatile pid_t child_pid;
static int child_ran;

static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP};
#define NFORWARDED (sizeof(forwarded) / sizeof(forwarded[0]))
static struct sigaction saved[NFORWARDED];
static int catching;

static void on_signal(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	got_signal = sig;
	/* the terminal's ^C reached COMMAND too (same process group); a
	 * signal from a process (kill, a CI runner) is ours to pass on */
	if (child_pid > 0 && si && si->si_code <= 0)
		kill(child_pid, sig);
}

void run_catch_signals(void)
{
	struct sigaction sa;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_signal;
	sa.sa_flags = SA_SIGINFO; /* no SA_RESTART: a blocked write returns */
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < NFORWARDED; i++)
		sigaction(forwarded[i], &sa, catching ? NULL : &saved[i]);
	catching = 1;
}

void run_release_signals(void)
{
	size_t i;

	if (!catching)
		return;
	for (i = 0; i < NFORWARDED; i++)
		sigaction(forwarded[i], &saved[i], NULL);
	catching = 0;
}

int run_signal(void)
{
	return got_signal;
}

int run_started(void)
{
	return child_ran;
}

/* Default handling of the signals ctxpack itself handles or ignores
 * (main ignores SIGPIPE, and an ignored signal stays ignored across
 * exec). */
static void default_signals(void)
{
	struct sigaction sa;
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigaction(SIGPIPE, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
	for (i = 0; i < NFORWARDED; i++)
		sigaction(forwarded[i], &sa, NULL);
}

int run_exec(char **argv)
{
	int sig, err;

	fflush(stdout);
	fflush(stderr);
	/* from here a signal has its default effect (ctxpack dies of it);
	 * one caught before is died of now, so none is lost at the exec */
	default_signals();
	if ((sig = got_signal)) {
		raise(sig);
		return 128 + sig;
	}
	child_ran = 1;
	execvp(argv[0], argv);
	err = errno;
	child_ran = 0;
	fprintf(stderr, "ctxpack: error: cannot run %s: %s\n", argv[0], strerror(err));
	return err == ENOENT ? 127 : 126;
}

#define SPAWN_STACK (256u << 10)

struct spawn_args {
	char **argv;
	int fds[3];         /* the child's 0, 1, 2, or -1 for ours */
	pid_t parent;
	sigset_t mask;      /* the signal mask COMMAND starts with */
	int err;            /* errno of what failed in the child */
	int failed;         /* 0, SPAWN_DUP or SPAWN_EXEC */
};
enum { SPAWN_DUP = 1, SPAWN_EXEC };

static int spawn_child(void *p)
{
	struct spawn_args *a = p;
	int k;

	/* default signal handling, and SIGTERM when ctxpack dies; the
	 * handler table is the child's own (no CLONE_SIGHAND) */
	default_signals();
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != a->parent)
		_exit(128 + SIGTERM);
	/* the fds given are close-on-exec (pipes of ours): the copies made
	 * here are not, and a given fd that is already k is made inheritable */
	for (k = 0; k < 3; k++) {
		int fd = a->fds[k];

		if (fd < 0)
			continue;
		if (fd == k ? fcntl(k, F_SETFD, 0) < 0 : dup2(fd, k) < 0) {
			a->err = errno;
			a->failed = SPAWN_DUP;
			_exit(126);
		}
	}
	sigprocmask(SIG_SETMASK, &a->mask, NULL);
	execvp(a->argv[0], a->argv);
	a->err = errno;
	a->failed = SPAWN_EXEC;
	_exit(errno == ENOENT ? 127 : 126);
}

pid_t run_start(char **argv, const int fds[3], unsigned flags)
{
	struct spawn_args a;
	sigset_t all;
	char *stack;
	pid_t pid;
	int saved_errno, k;

	fflush(stdout);
	fflush(stderr);
	memset(&a, 0, sizeof(a));
	a.argv = argv;
	for (k = 0; k < 3; k++)
		a.fds[k] = fds ? fds[k] : -1;
	a.parent = getpid();
	stack = mmap(NULL, SPAWN_STACK, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED)
		return -1;
	/* no handler of ours may run in the child before it resets them, and
	 * a signal that comes as soon as the child exists is passed on */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &a.mask);
	pid = clone(spawn_child, stack + SPAWN_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
	saved_errno = errno;
	if (pid > 0 && !(flags & RUN_HELPER)) {
		child_pid = pid;
		child_ran = 1;
	}
	pthread_sigmask(SIG_SETMASK, &a.mask, NULL);
	munmap(stack, SPAWN_STACK);
	if (pid < 0) {
		errno = saved_errno;
		return -1;
	}
	if (flags & RUN_HELPER)
		; /* its exit status (127, 126) says it */
	else if (a.failed == SPAWN_DUP)
		fprintf(stderr, "ctxpack: error: cannot set up the input of %s: %s\n", argv[0],
			strerror(a.err));
	else if (a.failed == SPAWN_EXEC)
		fprintf(stderr, "ctxpack: error: cannot run %s: %s\n", argv[0], strerror(a.err));
	return pid;
}

int run_wait(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			st = -1;
			break;
		}
	}
	if (child_pid == pid)
		child_pid = 0;
	return st;
}

int run_exit_status(const char *name, int st)
{
	if (st == -1) {
		fprintf(stderr, "ctxpack: error: cannot wait for %s: %s\n", name, strerror(errno));
		return 1;
	}
	if (WIFSIGNALED(st)) {
		fprintf(stderr, "ctxpack: %s was killed by signal %d\n", name, WTERMSIG(st));
		return 128 + WTERMSIG(st);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

int run_command(char **argv)
{
	pid_t pid;
	int st;

	run_catch_signals();
	pid = run_start(argv, NULL, 0);
	if (pid < 0) {
		fprintf(stderr, "ctxpack: error: cannot start %s: %s\n", argv[0], strerror(errno));
		run_release_signals();
		return 127;
	}
	st = run_wait(pid);
	run_release_signals();
	return run_exit_status(argv[0], st);
}

/*
 * A helper program's answer: its input written through a socket (a helper
 * that exits without reading it gives EPIPE, never SIGPIPE), its output
 * read as it comes, both in one poll loop so that neither side waits on
 * the other, and a deadline after which it is killed.
 */
int run_capture(char **argv, const void *in, size_t n, struct buf *out, size_t max,
		long timeout_ms, unsigned flags)
{
	int sv[2] = {-1, -1}, po[2] = {-1, -1}, fds[3] = {-1, -1, -1}, st = -1, err = 0;
	int devnull = -1;
	size_t sent = 0;
	uint64_t end = time_mono_ms() + (uint64_t)timeout_ms;
	pid_t pid = -1;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) ||
	    pipe2(po, O_CLOEXEC))
		goto fail;
	if (flags & RUN_NO_STDERR) {
		devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (devnull < 0)
			goto fail;
	}
	fds[0] = sv[1];
	fds[1] = po[1];
	fds[2] = devnull;
	pid = run_start(argv, fds, flags | RUN_HELPER);
	if (pid < 0)
		goto fail;
	close(sv[1]);
	close(po[1]);
	sv[1] = po[1] = -1;
	if (!n)
		shutdown(sv[0], SHUT_WR);
	for (;;) {
		struct pollfd pf[2] = {{po[0], POLLIN, 0}, {sv[0], POLLOUT, 0}};
		int64_t left = (int64_t)(end - time_mono_ms());
		char tmp[4096];
		ssize_t k;

		if (left <= 0) {
			kill(pid, SIGKILL);
			err = ETIMEDOUT;
			break;
		}
		if (poll(pf, sent < n ? 2 : 1, (int)(left > 60000 ? 60000 : left)) < 0) {
			if (errno == EINTR)
				continue;
			err = errno;
			kill(pid, SIGKILL);
			break;
		}
		if (sent < n && pf[1].revents) {
			k = send(sv[0], (const char *)in + sent, n - sent,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
			if (k > 0)
				sent += (size_t)k;
			if (k < 0 && errno != EAGAIN && errno != EINTR)
				sent = n; /* EPIPE: it did not want it all */
			if (sent == n)
				shutdown(sv[0], SHUT_WR);
		}
		if (!pf[0].revents)
			continue;
		k = read(po[0], tmp, sizeof(tmp));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		if (out && out->len < max)
			buf_add(out, tmp, (size_t)k < max - out->len ? (size_t)k : max - out->len);
	}
	st = run_wait(pid);
	if (err)
		st = -1;
	else if (st == -1)
		err = errno;
	goto done;
fail:
	err = errno;
done:
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	if (po[0] >= 0)
		close(po[0]);
	if (po[1] >= 0)
		close(po[1]);
	if (devnull >= 0)
		close(devnull);
	if (st == -1)
		errno = err;
	return st;
}
