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
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
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

#define SPAWN_STACK (256u << 10)

struct spawn_args {
	char **argv;
	int rfd, wfd;       /* the pipe (rfd becomes stdin), or -1 */
	pid_t parent;
	sigset_t mask;      /* the signal mask COMMAND starts with */
	int err;            /* errno of what failed in the child */
	int failed;         /* 0, SPAWN_DUP or SPAWN_EXEC */
};
enum { SPAWN_DUP = 1, SPAWN_EXEC };

static int spawn_child(void *p)
{
	struct spawn_args *a = p;
	struct sigaction sa;
	size_t i;

	/* default signal handling (main ignores SIGPIPE, and an ignored
	 * signal stays ignored across exec), and SIGTERM when ctxpack dies;
	 * the handler table is the child's own (no CLONE_SIGHAND) */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigaction(SIGPIPE, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
	for (i = 0; i < NFORWARDED; i++)
		sigaction(forwarded[i], &sa, NULL);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != a->parent)
		_exit(128 + SIGTERM);
	if (a->rfd >= 0) {
		if (dup2(a->rfd, 0) < 0) {
			a->err = errno;
			a->failed = SPAWN_DUP;
			_exit(126);
		}
		if (a->wfd >= 0)
			close(a->wfd);
		if (a->rfd != 0)
			close(a->rfd);
	}
	sigprocmask(SIG_SETMASK, &a->mask, NULL);
	execvp(a->argv[0], a->argv);
	a->err = errno;
	a->failed = SPAWN_EXEC;
	_exit(errno == ENOENT ? 127 : 126);
}

pid_t run_start(char **argv, int rfd, int wfd)
{
	struct spawn_args a;
	sigset_t all;
	char *stack;
	pid_t pid;
	int saved_errno;

	fflush(stdout);
	fflush(stderr);
	memset(&a, 0, sizeof(a));
	a.argv = argv;
	a.rfd = rfd;
	a.wfd = wfd;
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
	if (pid > 0) {
		child_pid = pid;
		child_ran = 1;
	}
	pthread_sigmask(SIG_SETMASK, &a.mask, NULL);
	munmap(stack, SPAWN_STACK);
	if (pid < 0) {
		errno = saved_errno;
		return -1;
	}
	if (a.failed == SPAWN_DUP)
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
	pid = run_start(argv, -1, -1);
	if (pid < 0) {
		fprintf(stderr, "ctxpack: error: cannot start %s: %s\n", argv[0], strerror(errno));
		run_release_signals();
		return 127;
	}
	st = run_wait(pid);
	run_release_signals();
	return run_exit_status(argv[0], st);
}
