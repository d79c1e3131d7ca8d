/*
 * The reader pool of one update: the files the lookup could not trust
 * are read and hashed on a few threads (idx_hash_file; the threads never
 * touch LMDB), while the calling thread commits what they finish in
 * batches, so that a run killed midway keeps most of its work and no
 * write transaction is long.
 */
#include "ctxpack/index.h"

#include "idx_internal.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define READ_BUF (256 << 10)
#define BATCH_MAX 65536          /* entries per write transaction at most */
#define BATCH_NS 100000000LL     /* commit hashed entries at least this often */
#define INLINE_MAX 8             /* fewer files than this: no threads */

/* The reader pool. */
struct pool {
	struct upd *u;
	const size_t *todo;
	size_t ntodo;
	int rootfd;
	size_t next;           /* atomic: the next todo slot to take */
	int failed;            /* atomic: stop taking work */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t *done;          /* files hashed, appended under mu */
	size_t ndone;
	unsigned running;
	uint64_t bytes;
	struct err err;        /* the first failure, under mu */
};

static int hash_one(struct pool *p, size_t fi, void *buf, struct err *e)
{
	struct walk_entry *we = &p->u->w->v[p->u->f[fi].wi];
	uint64_t nread = 0;
	int ret;

	ret = idx_hash_file(p->rootfd, we, buf, READ_BUF, &nread, e);
	pthread_mutex_lock(&p->mu);
	p->bytes += nread;
	if (ret) {
		if (!err_isset(&p->err))
			p->err = *e;
		__atomic_store_n(&p->failed, 1, __ATOMIC_RELAXED);
	} else {
		we->hashed = WALK_HASH_KNOWN;
		p->done[p->ndone++] = fi;
	}
	pthread_mutex_unlock(&p->mu);
	return ret;
}

static void *worker(void *arg)
{
	struct pool *p = arg;
	void *buf = xmalloc(READ_BUF);
	struct err e = ERR_INIT;

	while (!__atomic_load_n(&p->failed, __ATOMIC_RELAXED)) {
		size_t i = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED);

		if (i >= p->ntodo)
			break;
		if (hash_one(p, p->todo[i], buf, &e))
			break;
	}
	free(buf);
	pthread_mutex_lock(&p->mu);
	p->running--;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static unsigned pick_threads(const struct idx *x, size_t ntodo)
{
	long ncpu;
	unsigned n = x->threads;

	if (!n) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		n = ncpu < 2 ? 2 : ncpu > 4 ? 4 : (unsigned)ncpu;
	}
	if (ntodo < INLINE_MAX)
		n = 1;
	return n;
}

/* Commit now?  Every BATCH_NS or BATCH_MAX entries. */
static int batch_due(size_t pending, int64_t last)
{
	return pending >= BATCH_MAX || (pending && time_mono_ns() - last >= BATCH_NS);
}

/* Hash on the calling thread (few files, or threads = 1). */
static void hash_inline(struct pool *p)
{
	void *buf = xmalloc(READ_BUF);
	struct err le = ERR_INIT;
	size_t i, taken = 0;
	int64_t last = time_mono_ns();

	for (i = 0; i < p->ntodo; i++) {
		if (hash_one(p, p->todo[i], buf, &le))
			break;
		if (batch_due(p->ndone - taken, last)) {
			idx_write_batch(p->u, p->done + taken, p->ndone - taken);
			taken = p->ndone;
			last = time_mono_ns();
		}
	}
	free(buf);
	idx_write_batch(p->u, p->done + taken, p->ndone - taken);
}

/* Wait for the workers, committing what they finish as it comes. */
static void collect(struct pool *p)
{
	size_t taken = 0, end;
	int64_t last = time_mono_ns();
	int fin;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->running && !batch_due(p->ndone - taken, last)) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 50000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&p->cv, &p->mu, &ts);
		}
		end = p->ndone;
		fin = !p->running;
		pthread_mutex_unlock(&p->mu);
		/* done[taken..end) is stable: it is only appended to */
		if (fin || end > taken) {
			idx_write_batch(p->u, p->done + taken, end - taken);
			taken = end;
			last = time_mono_ns();
		}
		if (fin)
			return;
		pthread_mutex_lock(&p->mu);
	}
}

/*
 * Hash todo[] on the pool while this thread commits what is done in
 * batches, so a run killed midway keeps most of its work and no write
 * transaction is long.  The stale keys go with the first batch.
 */
int idx_hash_all(struct upd *u, const size_t *todo, size_t ntodo, struct err *e)
{
	struct pool p;
	pthread_t tids[IDX_THREADS_MAX];
	unsigned nt = pick_threads(u->x, ntodo), started = 0, i;
	int ret = 0;

	memset(&p, 0, sizeof(p));
	p.u = u;
	p.todo = todo;
	p.ntodo = ntodo;
	p.done = xreallocarray(NULL, ntodo ? ntodo : 1, sizeof(*p.done));
	p.rootfd = open(u->w->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (p.rootfd < 0) {
		ret = err_errno(e, "cannot open %s", u->w->root);
		free(p.done);
		return ret;
	}
	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.cv, NULL);

	if (nt > sizeof(tids) / sizeof(tids[0]))
		nt = sizeof(tids) / sizeof(tids[0]);
	if (nt > 1) {
		pthread_mutex_lock(&p.mu);
		for (i = 0; i < nt; i++) {
			if (pthread_create(&tids[i], NULL, worker, &p))
				break;
			started++;
			p.running++;
		}
		pthread_mutex_unlock(&p.mu);
	}
	if (started) {
		collect(&p);
		for (i = 0; i < started; i++)
			pthread_join(tids[i], NULL);
	} else {
		hash_inline(&p);
	}
	u->st.hashed = p.ndone;
	u->st.bytes_hashed = p.bytes;
	if (err_isset(&p.err)) {
		*e = p.err;
		ret = e->code;
	}
	close(p.rootfd);
	pthread_mutex_destroy(&p.mu);
	pthread_cond_destroy(&p.cv);
	free(p.done);
	return ret;
}
