/*
 * cache_internal (internal to src/cache): what the files of the cache
 * module share beyond include/ctxpack/cache.h: the handle, and the checks
 * and reads that save (cache_save.c), lookup and listing
 * (cache_entries.c) and restore (cache_restore.c) all make.
 */
#ifndef CTXPACK_CACHE_INTERNAL_H
#define CTXPACK_CACHE_INTERNAL_H

#include "ctxpack/cache.h"

/* The handle of include/ctxpack/cache.h (cache_open, cache.c). */
struct cache {
	struct reg_store *s;
	char *tmp_dir;
	cache_warn_fn warn;
	void *warn_arg;
	uint64_t max_size;
	int safe_links;
	uint64_t deadline_ms;  /* CLOCK_MONOTONIC; 0: none */
};

/* A warning through the cache's warn callback (nothing when it has none). */
void cache_warnf(struct cache *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * The path list of a save, lookup or restore: at least one path, each
 * valid (cache_path_check), none given twice, none inside another (also
 * through a symlink).  0, or ERR_USAGE (or cache_path_check's error) with
 * e naming the paths.
 */
int cache_check_paths(const char *const *paths, size_t n, struct err *e);

/*
 * Read and parse the entry at tag into en (the caller's, released with
 * cache_entry_release; empty on failure).  b, when not NULL, gets the
 * manifest's bytes (an update puts them under another tag).  0, or
 * ERR_NOTFOUND (no such tag), ERR_CORRUPT (not an entry of ours) or the
 * store's error.
 */
int cache_read_entry(struct cache *c, const char *tag, struct cache_entry *en, struct buf *b,
		     struct err *e);

/*
 * cache_read_entry for a tag from a listing: 1 when it is to be skipped
 * (deleted since the listing, or not one of ours: warned), else
 * cache_read_entry's result.
 */
int cache_read_listed(struct cache *c, const char *tag, struct cache_entry *en, struct err *e);

#endif
