/*
 * A file's sha256 for the registry: in line, or in a thread of its own so
 * that an upload can start before the digest is known; either way the
 * digest cache learns it when the file did not change meanwhile.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "reg_impl.h"

/* sha256 of a file, remembered in the digest cache when it did not change
 * while it was read.  st is the file's stat from before. */
int reg_hash_file(const char *path, const struct stat *st, char digest[72],
		     uint64_t *size, struct err *e)
{
	struct stat st2;
	struct timespec t0;
	int ret;

	clock_gettime(CLOCK_REALTIME, &t0);

	ret = sha256_file(path, digest, size, e);
	if (ret)
		return ret;
	if (!stat(path, &st2) && st2.st_size == st->st_size &&
	    st2.st_mtim.tv_sec == st->st_mtim.tv_sec &&
	    st2.st_mtim.tv_nsec == st->st_mtim.tv_nsec &&
	    st2.st_ctim.tv_sec == st->st_ctim.tv_sec &&
	    st2.st_ctim.tv_nsec == st->st_ctim.tv_nsec &&
	    (uint64_t)st->st_size == *size)
		reg_digest_cache_put(st, digest, &t0);
	return 0;
}

struct reg_hash {
	char *path;
	struct stat st;
	unsigned delay_ms;  /* $CTXPACK_TEST_HASH_DELAY_MS: a slow hash, for tests */
	int asked;          /* under mu: the result was asked for (the delay runs) */
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	atomic_int done;    /* set under mu; the fields below are fixed then */
	char digest[REG_DIGEST_SIZE];
	uint64_t size;
	struct err e;
	int ret;
};

static void *hash_thread(void *arg)
{
	struct reg_hash *h = arg;

	if (h->delay_ms) {
		struct timespec ts = {h->delay_ms / 1000, (h->delay_ms % 1000) * 1000000L};

		/* counted from the first question, not from the start: the
		 * work before it (an upload session opened through a proxy)
		 * takes what it takes on a busy machine */
		pthread_mutex_lock(&h->mu);
		while (!h->asked)
			pthread_cond_wait(&h->cond, &h->mu);
		pthread_mutex_unlock(&h->mu);
		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
	}
	h->ret = reg_hash_file(h->path, &h->st, h->digest, &h->size, &h->e);
	pthread_mutex_lock(&h->mu);
	atomic_store_explicit(&h->done, 1, memory_order_release);
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

struct reg_hash *reg_hash_start(const char *path, const struct stat *st)
{
	struct reg_hash *h = xcalloc(1, sizeof(*h));

	h->path = xstrdup(path);
	h->st = *st;
	h->delay_ms = reg_uint_or(env_get()->test_hash_delay_ms, 0);
	err_clear(&h->e);
	atomic_init(&h->done, 0);
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cond, NULL);
	if (pthread_create(&h->th, NULL, hash_thread, h)) {
		pthread_cond_destroy(&h->cond);
		pthread_mutex_destroy(&h->mu);
		free(h->path);
		free(h);
		return NULL;
	}
	return h;
}

/* The result is asked for: a test's delay starts now. */
static void hash_asked(struct reg_hash *h)
{
	if (!h->delay_ms)
		return;
	pthread_mutex_lock(&h->mu);
	h->asked = 1;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->mu);
}

int reg_hash_done(struct reg_hash *h)
{
	hash_asked(h);
	return atomic_load_explicit(&h->done, memory_order_acquire);
}

int reg_hash_wait(struct reg_hash *h, char digest[REG_DIGEST_SIZE], struct err *e)
{
	hash_asked(h);
	pthread_mutex_lock(&h->mu);
	while (!atomic_load_explicit(&h->done, memory_order_acquire))
		pthread_cond_wait(&h->cond, &h->mu);
	pthread_mutex_unlock(&h->mu);
	if (h->ret)
		return err_set(e, h->e.code, "%s", h->e.msg);
	if (h->size != (uint64_t)h->st.st_size)
		return err_set(e, ERR_FAIL, "%s changed size while it was read", h->path);
	memcpy(digest, h->digest, REG_DIGEST_SIZE);
	return 0;
}

void reg_hash_free(struct reg_hash *h)
{
	if (!h)
		return;
	hash_asked(h);
	pthread_join(h->th, NULL);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->mu);
	free(h->path);
	free(h);
}
