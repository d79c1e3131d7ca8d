/*
 * walk_pool.c: the parallel walk: subtrees handed off as tasks, the queue
 * and the threads that walk them, and the walk of a whole tree.
 *
 * The parallel walk.  On a warm page cache the cost is the system calls
 * (an fstatat per entry, openat/getdents64/close per directory), so a big
 * tree is walked by a few threads, with a result identical to the serial
 * walk's.  The unit of work is a task: the subtree under one directory,
 * walked depth-first as above by one thread, into that thread's entry
 * vector (one run of it per task), string arena and counters.  Only
 * *included* directories become tasks: visiting one has already flipped
 * every pending excluded ancestor, so nothing found below it can change
 * an entry outside it, and its task starts with an empty pending stack.
 *
 * A walker about to descend into an included directory may hand it off
 * instead: it opens the directory itself (an error stays where the serial
 * walk meets it), notes a slot in its own task (the entry count at that
 * point, where the subtree's entries belong, and the new task) and queues
 * the task with the fd, the path prefix and a copy of the directory's
 * ignore flags.  It does so only while the queue is short, and for deep
 * directories only when a thread is idle, so that tasks stay big.  The
 * calling thread walks the root task and then helps with the queue; the
 * other threads are started with the first hand-off, which waits until the
 * walk has seen a few hundred names (small trees stay on one thread).
 */
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctxpack/ignore.h"
#include "walk_internal.h"

#define DEFAULT_THREADS_MAX 4
#define SPAWN_AFTER 512        /* names the calling thread visits alone */
#define SPAWN_DEPTH 2          /* deeper directories go to idle threads only */
#define EAGER_QUEUE 64         /* WALK_SPLIT_EAGER: queued tasks (open fds) */

static void start_workers(struct walk_ctx *c);

/* Hand the included directory at depth off as a task, rather than descend? */
int wk_want_spawn(const struct walker *w, unsigned depth)
{
	const struct walk_ctx *c = w->c;

	if (c->nthreads < 2)
		return 0;
	if (!__atomic_load_n(&c->started, __ATOMIC_RELAXED))
		return w->nvisited >= c->spawn_after;
	if (__atomic_load_n(&c->queued, __ATOMIC_RELAXED) >= c->qmax)
		return 0;
	return depth <= c->spawn_depth || __atomic_load_n(&c->idle, __ATOMIC_RELAXED) > 0;
}

/*
 * Queue the directory name (open as cfd, whose ignore flags are flags) as
 * a task whose entries go where the walker's next entry would.
 */
void wk_spawn(struct walker *w, int cfd, const char *name, size_t nlen,
		  const uint8_t *flags)
{
	struct walk_ctx *c = w->c;
	struct task *t = xcalloc(1, sizeof(*t)), *parent = w->t;
	size_t nflags = c->npat ? c->npat : 1;

	t->parent = parent;
	t->dfd = cfd;
	t->prefix_len = w->path.len + nlen + 1;
	t->prefix = xmalloc(t->prefix_len + 1);
	memcpy(t->prefix, w->path.data, w->path.len);
	memcpy(t->prefix + w->path.len, name, nlen);
	t->prefix[t->prefix_len - 1] = '/';
	t->prefix[t->prefix_len] = '\0';
	t->flags = xmalloc(nflags);
	memcpy(t->flags, flags, nflags);
	if (parent->nslots == parent->aslots) {
		parent->aslots = parent->aslots ? 2 * parent->aslots : 8;
		parent->slots = xreallocarray(parent->slots, parent->aslots,
					      sizeof(*parent->slots));
	}
	parent->slots[parent->nslots].pos = w->n;
	parent->slots[parent->nslots++].t = t;

	pthread_mutex_lock(&c->mu);
	t->older = c->all;
	c->all = t;
	*c->tail = t;
	c->tail = &t->qnext;
	__atomic_add_fetch(&c->queued, 1, __ATOMIC_RELAXED);
	c->active++;
	if (!c->started)
		start_workers(c);
	else if (c->idle)
		pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

/* Walk task t on this thread. */
static void run_task(struct walker *w, struct task *t)
{
	struct err e = ERR_INIT;
	int ret;

	w->t = t;
	w->e = &e;
	w->noted = 0;
	w->npending = 0;
	buf_reset(&w->path);
	if (t->prefix_len)
		buf_add(&w->path, t->prefix, t->prefix_len);
	t->w = w;
	t->start = w->n;
	ret = wk_walk_dir(w, t->dfd, t->flags);
	t->dfd = -1;
	t->end = w->n;
	if (ret < 0) {
		wk_note_failure(w, NULL);
		t->err = xmalloc(sizeof(*t->err));
		*t->err = e;
	}
	t->status = ret;
}

/* Walk queued tasks until none is queued or being walked. */
static void work(struct walker *w)
{
	struct walk_ctx *c = w->c;
	struct task *t;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (!c->head && c->active) {
			__atomic_add_fetch(&c->idle, 1, __ATOMIC_RELAXED);
			pthread_cond_wait(&c->cv, &c->mu);
			__atomic_sub_fetch(&c->idle, 1, __ATOMIC_RELAXED);
		}
		t = c->head;
		if (!t)
			break;
		c->head = t->qnext;
		if (!c->head)
			c->tail = &c->head;
		__atomic_sub_fetch(&c->queued, 1, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&c->mu);
		run_task(w, t);
		pthread_mutex_lock(&c->mu);
		if (!--c->active)
			pthread_cond_broadcast(&c->cv);
	}
	pthread_mutex_unlock(&c->mu);
}

static void *worker_main(void *arg)
{
	work(arg);
	return NULL;
}

/* With c->mu held.  Without any worker, the calling thread does it all. */
static void start_workers(struct walk_ctx *c)
{
	unsigned i;

	__atomic_store_n(&c->started, 1, __ATOMIC_RELAXED);
	for (i = 1; i < c->nthreads; i++)
		if (!pthread_create(&c->tid[c->nworkers], NULL, worker_main,
				    &c->walkers[c->nworkers + 1]))
			c->nworkers++;
}

static unsigned pick_threads(const struct walk_opts *o)
{
	long n;

	if (o->threads)
		return o->threads < WALK_THREADS_MAX ? o->threads : WALK_THREADS_MAX;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		return 1;
	return n < DEFAULT_THREADS_MAX ? (unsigned)n : DEFAULT_THREADS_MAX;
}


/* Walk the tree under fd (owned) into r. */
int wk_walk_tree(const struct walk_opts *o, struct walk_result *r, int fd,
		     struct err *e)
{
	struct walk_ctx c;
	struct task root;
	unsigned i;
	int ret;

	memset(&c, 0, sizeof(c));
	c.o = o;
	c.ig = r->ign;
	c.npat = ign_count(r->ign);
	c.root = r->root;
	c.is_root = geteuid() == 0;
	c.nthreads = pick_threads(o);
	if (o->flags & WALK_SPLIT_EAGER) {
		c.qmax = EAGER_QUEUE;
		c.spawn_depth = UINT_MAX;
		c.spawn_after = 0;
	} else {
		c.qmax = c.nthreads;
		c.spawn_depth = SPAWN_DEPTH;
		c.spawn_after = SPAWN_AFTER;
	}
	pthread_mutex_init(&c.mu, NULL);
	pthread_cond_init(&c.cv, NULL);
	c.tail = &c.head;
	c.active = 1; /* the root task */
	buf_init(&c.err_pos, 0);
	c.walkers = xcalloc(c.nthreads, sizeof(*c.walkers));
	for (i = 0; i < c.nthreads; i++) {
		c.walkers[i].c = &c;
		buf_init(&c.walkers[i].path, 0);
	}

	memset(&root, 0, sizeof(root));
	root.dfd = fd;
	run_task(&c.walkers[0], &root);
	if (c.nthreads > 1) {
		pthread_mutex_lock(&c.mu);
		if (!--c.active)
			pthread_cond_broadcast(&c.cv);
		pthread_mutex_unlock(&c.mu);
		work(&c.walkers[0]);
		for (i = 0; i < c.nworkers; i++)
			pthread_join(c.tid[i], NULL);
	}
	ret = wk_merge(&c, &root, r, e);
	free(c.walkers);
	buf_release(&c.err_pos);
	pthread_cond_destroy(&c.cv);
	pthread_mutex_destroy(&c.mu);
	/* the threads' vectors were freed into their malloc arenas, which
	 * keep the pages: hand them back before the packer needs its own */
	if (c.nthreads > 1)
		malloc_trim(0);
	return ret;
}

