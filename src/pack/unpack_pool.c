/*
 * unpack_pool.c: the writer pool of an extraction, its jobs (small files
 * written by worker threads), the directories they hold open, and the set
 * of names queued to it that later entries must wait for.
 *
 * Creating files is most of a restore's cost (the kernel's work per
 * inode), so small files are created and written by a few worker threads
 * while the main thread parses the archive and makes directories,
 * symlinks and large files itself.  Directories are made before any file
 * is queued into them; whatever could depend on a queued file (the same
 * name again, a hard link) waits for the queue to drain first, so the
 * result is the one a sequential extraction gives.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unpack_internal.h"

struct worker_arg {
	struct pool *p;
	unsigned idx;
};

/* The pool: a queue of jobs in seq order, taken by n worker threads. */
struct pool {
	pthread_t th[UNPACK_MAX_THREADS];
	struct worker_arg wa[UNPACK_MAX_THREADS];
	unsigned n;
	pthread_mutex_t mu;
	pthread_cond_t work, space, idle;
	struct job **q;
	size_t qcap, qhead, qcount;
	size_t bytes;      /* data bytes queued */
	size_t busy;       /* jobs taken by a worker, not finished */
	int quit;
	int failed;
	struct err e;      /* the first worker failure */
	mode_t um;         /* the process umask */
	uint64_t busy_seq[UNPACK_MAX_THREADS]; /* per worker; UINT64_MAX idle */
};

struct dnode *up_dnode_new(int fd, int owned)
{
	struct dnode *d = xmalloc(sizeof(*d));

	d->fd = fd;
	d->owned = owned;
	d->refs = 1;
	return d;
}

struct dnode *up_dnode_get(struct dnode *d)
{
	__atomic_add_fetch(&d->refs, 1, __ATOMIC_RELAXED);
	return d;
}

void up_dnode_put(struct dnode *d)
{
	if (d && __atomic_sub_fetch(&d->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		if (d->owned)
			close(d->fd);
		free(d);
	}
}

/* ---- the pending-name set ---- */

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

int up_pset_has(const struct pset *p, const char *s)
{
	size_t i;

	if (!p->n)
		return 0;
	for (i = name_hash(s) & (p->cap - 1); p->v[i].name; i = (i + 1) & (p->cap - 1))
		if (!strcmp(p->v[i].name, s))
			return 1;
	return 0;
}

/* Put an entry into a table with room (no growth). */
static void pset_put(struct pset *p, struct pent ent)
{
	size_t i;

	for (i = name_hash(ent.name) & (p->cap - 1); p->v[i].name; i = (i + 1) & (p->cap - 1))
		;
	p->v[i] = ent;
	p->n++;
}

/* Rebuild the table with room for one more, keeping the entries whose
 * seq is at least keep_from (the others' files are written). */
void up_pset_rebuild(struct pset *p, uint64_t keep_from)
{
	struct pset g = {NULL, p->cap ? p->cap : 1024, 0};
	size_t i, kept = 0;

	for (i = 0; i < p->cap; i++)
		if (p->v[i].name && p->v[i].seq >= keep_from)
			kept++;
	while (2 * (kept + 1) > g.cap)
		g.cap *= 2;
	g.v = xcalloc(g.cap, sizeof(*g.v));
	for (i = 0; i < p->cap; i++) {
		if (!p->v[i].name)
			continue;
		if (p->v[i].seq >= keep_from)
			pset_put(&g, p->v[i]);
		else
			free(p->v[i].name);
	}
	free(p->v);
	*p = g;
}

void up_pset_add(struct pset *p, const char *s, uint64_t seq)
{
	struct pent ent;

	if (2 * (p->n + 1) > p->cap)
		up_pset_rebuild(p, 0);
	ent.name = xstrdup(s);
	ent.seq = seq;
	pset_put(p, ent);
}

void up_pset_clear(struct pset *p)
{
	size_t i;

	for (i = 0; i < p->cap && p->n; i++) {
		if (p->v[i].name) {
			free(p->v[i].name);
			p->v[i].name = NULL;
			p->n--;
		}
	}
}

void up_pset_release(struct pset *p)
{
	up_pset_clear(p);
	free(p->v);
	memset(p, 0, sizeof(*p));
}

/* ---- the jobs ---- */

static int write_job(const struct job *j, mode_t um, struct err *e)
{
	int fd = up_create_file(j->dir->fd, j->base, j->name, j->mode, e);

	if (fd < 0)
		return fd;
	if (j->size && write_all(fd, j->data, j->size)) {
		int ret = err_errno(e, "cannot write %s", j->name);

		close(fd);
		return ret;
	}
	return up_finish_file(fd, j->name, j->size, j->size, j->mode, um, e);
}

void up_job_free(struct job *j)
{
	if (!j)
		return;
	up_dnode_put(j->dir);
	free(j->name);
	free(j->data);
	free(j);
}

/* ---- the pool ---- */

#define POOL_QUEUE 256
#define POOL_BYTES (32u << 20)

static void *worker(void *arg)
{
	struct worker_arg *wa = arg;
	struct pool *p = wa->p;
	unsigned idx = wa->idx;

	for (;;) {
		struct err e = ERR_INIT;
		struct job *j;
		int failed;

		pthread_mutex_lock(&p->mu);
		while (!p->qcount && !p->quit)
			pthread_cond_wait(&p->work, &p->mu);
		if (!p->qcount) {
			pthread_mutex_unlock(&p->mu);
			return NULL;
		}
		j = p->q[p->qhead];
		p->qhead = (p->qhead + 1) % p->qcap;
		p->qcount--;
		p->busy++;
		p->busy_seq[idx] = j->seq;
		failed = p->failed;
		pthread_mutex_unlock(&p->mu);

		/* after a failure the rest is dropped: the extraction is over */
		if (!failed && write_job(j, p->um, &e)) {
			pthread_mutex_lock(&p->mu);
			if (!p->failed) {
				p->failed = 1;
				p->e = e;
			}
			pthread_mutex_unlock(&p->mu);
		}
		pthread_mutex_lock(&p->mu);
		p->busy--;
		p->busy_seq[idx] = UINT64_MAX;
		p->bytes -= j->size;
		pthread_cond_broadcast(&p->space);
		if (!p->qcount && !p->busy)
			pthread_cond_broadcast(&p->idle);
		pthread_mutex_unlock(&p->mu);
		up_job_free(j);
	}
}

struct pool *up_pool_new(unsigned n, mode_t um)
{
	struct pool *p = xcalloc(1, sizeof(*p));
	unsigned i;

	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->space, NULL);
	pthread_cond_init(&p->idle, NULL);
	p->qcap = POOL_QUEUE;
	p->q = xcalloc(p->qcap, sizeof(*p->q));
	p->um = um;
	for (i = 0; i < UNPACK_MAX_THREADS; i++)
		p->busy_seq[i] = UINT64_MAX;
	for (p->n = 0; p->n < n; p->n++) {
		p->wa[p->n].p = p;
		p->wa[p->n].idx = p->n;
		if (pthread_create(&p->th[p->n], NULL, worker, &p->wa[p->n]))
			break;
	}
	return p;
}

/* The seq of the oldest job not written yet (UINT64_MAX when none): jobs
 * are queued in seq order and taken from the head. */
uint64_t up_pool_oldest(struct pool *p)
{
	uint64_t m;
	unsigned i;

	pthread_mutex_lock(&p->mu);
	m = p->qcount ? p->q[p->qhead]->seq : UINT64_MAX;
	for (i = 0; i < p->n; i++)
		if (p->busy_seq[i] < m)
			m = p->busy_seq[i];
	pthread_mutex_unlock(&p->mu);
	return m;
}

/* Queue a job (taking it); an earlier worker failure comes back instead. */
int up_pool_submit(struct pool *p, struct job *j, struct err *e)
{
	int ret = 0;

	pthread_mutex_lock(&p->mu);
	while (!p->failed && (p->qcount == p->qcap ||
			      (p->qcount && p->bytes + j->size > POOL_BYTES)))
		pthread_cond_wait(&p->space, &p->mu);
	if (p->failed) {
		*e = p->e;
		ret = e->code;
	} else {
		p->q[(p->qhead + p->qcount) % p->qcap] = j;
		p->qcount++;
		p->bytes += j->size;
		pthread_cond_signal(&p->work);
	}
	pthread_mutex_unlock(&p->mu);
	if (ret)
		up_job_free(j);
	return ret;
}

/* Wait until every queued file is written; a worker failure is returned. */
int up_pool_drain(struct pool *p, struct err *e)
{
	int ret = 0;

	pthread_mutex_lock(&p->mu);
	while (p->qcount || p->busy)
		pthread_cond_wait(&p->idle, &p->mu);
	if (p->failed) {
		*e = p->e;
		ret = e->code;
	}
	pthread_mutex_unlock(&p->mu);
	return ret;
}

void up_pool_free(struct pool *p)
{
	unsigned i;

	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->quit = 1;
	p->failed = 1; /* drop what is still queued */
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < p->n; i++)
		pthread_join(p->th[i], NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->space);
	pthread_cond_destroy(&p->idle);
	free(p->q);
	free(p);
}

