/*
 * walk_merge.c: the entries of a parallel walk's tasks put back in
 * archive order, with the first failure in walk order.
 *
 * When every task is done, the calling thread copies the runs into the
 * result in slot order (recursively: tasks hand off too), chains the
 * arenas into it and sums the counters.  A walk that handed nothing off
 * keeps its vector as it is.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "walk_internal.h"

/* The first failed task in walk order: a task fails after its subtasks. */
static const struct task *first_failure(const struct task *t)
{
	const struct task *f;
	size_t i;

	for (i = 0; i < t->nslots; i++)
		if ((f = first_failure(t->slots[i].t)))
			return f;
	return t->status < 0 ? t : NULL;
}

static void copy_entries(struct walk_entry *dst, const struct walk_entry *src, size_t n)
{
	if (n)
		memcpy(dst, src, n * sizeof(*dst));
}

/* Copy t's entries with its subtasks' spliced in to dst (t->total of them). */
static void copy_task(struct walk_entry *dst, const struct task *t)
{
	size_t from = t->start, i;

	for (i = 0; i < t->nslots; i++) {
		const struct slot *s = &t->slots[i];

		copy_entries(dst, t->w->v + from, s->pos - from);
		dst += s->pos - from;
		copy_task(dst, s->t);
		dst += s->t->total;
		from = s->pos;
	}
	copy_entries(dst, t->w->v + from, t->end - from);
}

/*
 * Everything found into r, or the first failure into e; frees the tasks
 * and the walkers' state.  When nothing was handed off, the calling
 * thread's vector holds the root task alone and becomes the result.
 */
int wk_merge(struct walk_ctx *c, struct task *root, struct walk_result *r,
		 struct err *e)
{
	const struct task *f = first_failure(root);
	struct walker *w0 = &c->walkers[0];
	struct task *t, *older;
	unsigned i;
	int ret = 0;

	/* newest first: a task's subtasks are newer than it */
	for (t = c->all; t; t = t->older) {
		assert(!t->nslots || t->slots[t->nslots - 1].pos <= t->end);
		t->total += t->end - t->start;
		t->parent->total += t->total;
	}
	root->total += root->end - root->start;
	if (f) {
		if (!err_isset(e))
			*e = *f->err;
		ret = f->status;
	}
	if (!f && c->all) {
		assert(root->status == 0);
		r->v = xmallocarray_big(root->total, sizeof(*r->v));
		r->n = r->alloc = root->total;
		copy_task(r->v, root);
	} else {
		r->v = w0->v;
		r->n = w0->n;
		r->alloc = w0->alloc;
		w0->v = NULL;
	}
	for (i = 0; i < c->nthreads; i++) {
		struct walker *w = &c->walkers[i];

		if (w->arena) {
			struct arena_chunk *last = w->arena;

			while (last->next)
				last = last->next;
			last->next = r->arena;
			r->arena = w->arena;
		}
		r->n_excluded_files += w->n_excluded_files;
		r->n_excluded_bytes += w->n_excluded_bytes;
		r->n_sockets_skipped += w->n_sockets_skipped;
		free(w->v);
		buf_release(&w->path);
		free(w->pending);
		free(w->dbuf);
	}
	free(root->slots);
	free(root->err);
	for (t = c->all; t; t = older) {
		older = t->older;
		assert(t->dfd < 0); /* every task was walked */
		free(t->prefix);
		free(t->flags);
		free(t->slots);
		free(t->err);
		free(t);
	}
	c->all = NULL;
	return ret;
}

