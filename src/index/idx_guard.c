/*
 * The fault guard of the content index (idx_internal.h).
 *
 * What the checks of idx_lmdb.c cannot see in time is a damaged leaf page
 * of the main tree on a warm run: LMDB reads the page the moment the
 * cursor steps onto it, before anything of ours could look at it, and
 * checking every leaf up front would cost a warm run as much as the
 * lookup itself.  Such a page makes LMDB read past the end of the file
 * (SIGBUS), follow a NULL sub-cursor (SIGSEGV) or fail an assertion; the
 * guard turns that into "the index is damaged" for the code that armed
 * it, which drops the read transaction and rebuilds the index.
 *
 * The handlers are process-wide (installed when a guard is armed and
 * they are not there; two sigaction calls), the armed guard is per
 * thread: the index's reader threads never touch LMDB and never arm one,
 * so a fault there, or anywhere else outside an armed region, goes to
 * whatever disposition was there before (the default: the process dies,
 * as it would without us; or a sanitizer's report).  This is the cache
 * module's only process state, and the only mutable global outside cli:
 * signal dispositions are per process, so there is no other place for it.
 *
 * siglongjmp out of a handler is safe here because the code it leaves is
 * LMDB reading pages of a read-only map (or our own checks): no lock of
 * ours is held there, and the callers only release what LMDB handed out
 * (a cursor, a read transaction) or abandon the environment.
 */
#include "idx_internal.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>

static __thread struct idx_guard *armed;
static struct sigaction old_segv, old_bus;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	struct idx_guard *g = armed;

	(void)si;
	(void)uc;
	if (g) {
		armed = g->prev;
		g->sig = sig;
		siglongjmp(g->jb, 1);
	}
	/* Not ours: put back what was there and return, so the faulting
	 * instruction runs again and gets the old disposition. */
	sigaction(sig, sig == SIGBUS ? &old_bus : &old_segv, NULL);
}

/* (Re)install the handler for sig unless it is ours, keeping the one it
 * replaces: something may have set its own since (a test harness does
 * before every test). */
static void install(int sig, struct sigaction *old)
{
	struct sigaction sa, cur;

	if (sigaction(sig, NULL, &cur) || ((cur.sa_flags & SA_SIGINFO) &&
					   cur.sa_sigaction == on_fault))
		return;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, old);
}

void idx_guard_init(void)
{
	pthread_mutex_lock(&mu);
	install(SIGSEGV, &old_segv);
	install(SIGBUS, &old_bus);
	pthread_mutex_unlock(&mu);
}

void idx_guard_arm(struct idx_guard *g)
{
	idx_guard_init();
	g->sig = 0;
	g->prev = armed;
	armed = g;
}

void idx_guard_disarm(struct idx_guard *g)
{
	if (armed == g)
		armed = g->prev;
}

void idx_guard_assert(void)
{
	struct idx_guard *g = armed;

	if (g) {
		armed = g->prev;
		g->sig = SIGABRT;
		siglongjmp(g->jb, 1);
	}
}

const char *idx_guard_what(int sig)
{
	switch (sig) {
	case SIGBUS:
		return "SIGBUS";
	case SIGSEGV:
		return "SIGSEGV";
	case SIGABRT:
		return "an LMDB assertion";
	default:
		return "a fault";
	}
}
