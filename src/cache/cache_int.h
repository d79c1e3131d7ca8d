/*
 * cache_int (internal to src/cache): what the files of the cache module
 * share beyond include/ctxpack/cache.h.
 */
#ifndef CTXPACK_CACHE_INT_H
#define CTXPACK_CACHE_INT_H

#include "ctxpack/cache.h"

/* A warning through the cache's warn callback (nothing when it has none). */
void cache_warnf(struct cache *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
