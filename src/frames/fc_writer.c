/*
 * fc_writer: assemble's writer thread.  From the first hashed frame on,
 * the sink is called on this thread while the main thread reads and
 * hashes the next frame (the walk is over by then, so the second core is
 * free).  Two slots, in turn: the main thread fills one while the writer
 * sends the other.
 */
#include "fc_pack_internal.h"

#include <string.h>

static void *writer_main(void *arg)
{
	struct fc_writer *wr = arg;
	int i = 0;

	pthread_mutex_lock(&wr->mu);
	for (;;) {
		const char *p;
		size_t n;
		struct err e = ERR_INIT;
		int r = 0;

		while (!wr->full[i] && !wr->quit)
			pthread_cond_wait(&wr->cv, &wr->mu);
		if (!wr->full[i])
			break;
		p = wr->ptr[i];
		n = wr->len[i];
		pthread_mutex_unlock(&wr->mu);
		if (!wr->failed)
			r = wr->sink(wr->ctx, p, n, &e);
		pthread_mutex_lock(&wr->mu);
		if (r && !wr->failed) {
			wr->failed = 1;
			wr->err = e;
		}
		wr->full[i] = 0;
		pthread_cond_broadcast(&wr->cv);
		i ^= 1;
	}
	pthread_mutex_unlock(&wr->mu);
	return NULL;
}

void fc_writer_init(struct fc_writer *wr, pack_sink_fn sink, void *ctx)
{
	memset(wr, 0, sizeof(*wr));
	pthread_mutex_init(&wr->mu, NULL);
	pthread_cond_init(&wr->cv, NULL);
	wr->sink = sink;
	wr->ctx = ctx;
	buf_init(&wr->bufs[0], 0);
	buf_init(&wr->bufs[1], 0);
}

/* Slot i's buffer, once the writer is done with it. */
struct buf *fc_writer_slot(struct fc_writer *wr, int i)
{
	pthread_mutex_lock(&wr->mu);
	while (wr->full[i])
		pthread_cond_wait(&wr->cv, &wr->mu);
	pthread_mutex_unlock(&wr->mu);
	return &wr->bufs[i];
}

/* Send p (which must stay valid until the slot is free again) from slot
 * i: on the writer thread when it runs, else here.  Returns the sink's
 * first error. */
int fc_writer_push(struct fc_writer *wr, int i, const char *p, size_t n, struct err *e)
{
	int failed;

	if (!wr->started) {
		if (!pthread_create(&wr->tid, NULL, writer_main, wr))
			wr->started = 1;
		else
			return wr->sink(wr->ctx, p, n, e);
	}
	pthread_mutex_lock(&wr->mu);
	while (wr->full[i])
		pthread_cond_wait(&wr->cv, &wr->mu);
	failed = wr->failed;
	if (failed) {
		*e = wr->err;
	} else {
		wr->ptr[i] = p;
		wr->len[i] = n;
		wr->full[i] = 1;
		pthread_cond_broadcast(&wr->cv);
	}
	pthread_mutex_unlock(&wr->mu);
	return failed ? e->code : 0;
}

/* Wait for everything to be sent; the sink's first error, if any. */
int fc_writer_finish(struct fc_writer *wr, struct err *e)
{
	int ret = 0;

	if (wr->started) {
		pthread_mutex_lock(&wr->mu);
		wr->quit = 1;
		pthread_cond_broadcast(&wr->cv);
		pthread_mutex_unlock(&wr->mu);
		pthread_join(wr->tid, NULL);
		if (wr->failed && !err_isset(e)) {
			*e = wr->err;
			ret = e->code;
		}
	}
	buf_release(&wr->bufs[0]);
	buf_release(&wr->bufs[1]);
	pthread_cond_destroy(&wr->cv);
	pthread_mutex_destroy(&wr->mu);
	return ret;
}
