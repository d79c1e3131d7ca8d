/*
 * Internals shared by the files of src/registry/ (not a public header).
 *
 *   ref.c       reference parsing and the default store
 *   store.c     reg_store: open, dispatch to layout or remote, artifacts
 *   manifest.c  manifest JSON build/parse, media type sniffing
 *   layout.c    the local OCI image layout
 *   http.c      the libcurl request wrapper and header parsers
 *   auth.c      credentials (config.json, helpers), challenges, tokens
 *   reg_util.c  the log line, the deadline, tag lists, copy-and-hash
 *   reg_hash.c  a file's sha256, in line or in a thread
 *   remote*.c   the OCI distribution API (remote_internal.h)
 *
 * The files under store.c use reg_util.c and reg_hash.c, never store.c.
 */
#ifndef CTXPACK_REG_IMPL_H
#define CTXPACK_REG_IMPL_H

#include <stdint.h>
#include <time.h>

#include "ctxpack/registry.h"
#include "ctxpack/util.h"

struct reg_remote;

struct reg_store {
	struct reg_ref ref;
	char *name;           /* "host/repo" or "oci:DIR" */
	struct reg_opts o;    /* o.ca_file points at ca_file */
	char *ca_file;
	struct reg_stats st;
	struct reg_remote *rm; /* REG_REMOTE */
	char *dir;             /* REG_LAYOUT */
	uint64_t deadline_ms;  /* reg_store_set_deadline; 0: none */
};

/* reg_util.c */

/* ms left before s's deadline: UINT64_MAX when there is none, 0 when it
 * has passed. */
uint64_t reg_time_left(const struct reg_store *s);
/* The message of a passed deadline, set into e; returns ERR_NET. */
int reg_deadline_err(struct err *e, const char *what);
/* Add tag (taken) to a list, growing it geometrically. */
void reg_tags_push(struct reg_tags *t, char *tag);

void reg_log(struct reg_store *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* 1 when host ("name[:port]" or "[v6]:port") is localhost, 127/8 or ::1. */
int reg_host_is_loopback(const char *host);
/* The API host for a reference host ("docker.io" -> registry-1.docker.io). */
const char *reg_api_host(const char *host);

/* Copy fd to fd (or to the sha256), 1 MiB at a time.  With s, each MiB
 * is reported to s->o.progress as part of a blob of total bytes, and s's
 * deadline is kept.  limit >= 0: ERR_CORRUPT as soon as the input turns
 * out longer (never reading more than limit + 1 bytes). */
int reg_copy_hash(int in, int out, struct sha256 *h, uint64_t *n, struct err *e,
		  const char *what, struct reg_store *s, uint64_t total, int64_t limit);
const char *reg_basename(const char *path);
/* A tuning variable's value (env_get; NULL when unset): a number in
 * 1..99999, else dflt; a byte count of at least 1024, else dflt. */
unsigned reg_uint_or(const char *v, unsigned dflt);
uint64_t reg_size_or(const char *v, uint64_t dflt);

/*
 * curl_dl.c: load libcurl (dlopen, once per process).  0, or ERR_FAIL with
 * a message naming the library when it cannot be loaded.  Called before
 * anything talks HTTP; the curl_* functions of src/registry are
 * trampolines that load it on first use too (issue 15, docs/startup.md).
 */
int reg_curl_load(struct err *e);
/* the file the loader mapped for libcurl (loading it), or NULL */
const char *reg_curl_path(void);

/*
 * reg_hash.c: a file's sha256 (digest "sha256:<hex>", *size its bytes),
 * remembered in the digest cache when the file did not change while it
 * was read (st: its stat from before).
 */
struct stat;
int reg_hash_file(const char *path, const struct stat *st, char digest[72],
		  uint64_t *size, struct err *e);
/*
 * reg_hash.c: a file's sha256 computed in a second thread, so that the upload
 * can start before the digest is known.  The digest cache is updated as by
 * a plain hash.  reg_hash_start returns NULL when no thread could be
 * started (hash in line then).  reg_hash_done never blocks: 1 once the
 * result is ready.  reg_hash_wait blocks until then and gives the result:
 * 0 with digest set, or the hashing error, or ERR_FAIL when the file's
 * size changed; any thread may call these two.  reg_hash_free (one thread,
 * at the end) joins the thread; NULL is a no-op.
 * $CTXPACK_TEST_HASH_DELAY_MS makes the hash that much slower (tests),
 * counted from the first reg_hash_done or reg_hash_wait: the upload that
 * asks whether the digest is known once its session is open then always
 * finds it is not, however long opening the session took.
 */
struct reg_hash;
struct reg_hash *reg_hash_start(const char *path, const struct stat *st);
int reg_hash_done(struct reg_hash *h);
int reg_hash_wait(struct reg_hash *h, char digest[REG_DIGEST_SIZE], struct err *e);
void reg_hash_free(struct reg_hash *h);

/* digcache.c: a stat-keyed cache of file digests (best effort). */
int reg_digest_cache_get(const struct stat *st, char out[REG_DIGEST_SIZE]);
void reg_digest_cache_put(const struct stat *st, const char *digest,
			  const struct timespec *hashed_at);

/* layout.c */
int layout_blob_exists(struct reg_store *s, const char *digest, uint64_t *size,
		       struct err *e);
int layout_blob_push_file(struct reg_store *s, const char *path,
			  const char *digest, struct reg_blob_info *info,
			  struct err *e);
int layout_blob_push_mem(struct reg_store *s, const void *p, size_t n,
			 const char *digest, struct err *e);
int layout_blob_fetch_fd(struct reg_store *s, const char *digest, int64_t size,
			 int fd, struct err *e);
int layout_manifest_put(struct reg_store *s, const char *tag, const void *p,
			size_t n, const char *media_type, const char *digest,
			const char *artifact_type, struct err *e);
/* The same, only when tag is not there yet: 1 (nothing written) when it
 * is, checked under the index lock. */
int layout_manifest_put_new(struct reg_store *s, const char *tag, const void *p,
			    size_t n, const char *media_type, const char *digest,
			    const char *artifact_type, struct err *e);
int layout_manifest_get(struct reg_store *s, const char *ref, struct buf *out,
			char **media_type, char *digest_out, struct err *e);
int layout_manifest_head(struct reg_store *s, const char *ref, char *digest_out,
			 uint64_t *size, struct err *e);
int layout_tags_list(struct reg_store *s, struct reg_tags *tags, struct err *e);
int layout_manifest_delete(struct reg_store *s, const char *ref, struct err *e);
int layout_gc(struct reg_store *s, uint64_t min_age, uint64_t *freed,
	      struct err *e);
int layout_log_append(struct reg_store *s, const char *name, const char *line,
		      size_t n, size_t keep, uint64_t max_bytes, struct err *e);
int layout_log_read(struct reg_store *s, const char *name, uint64_t max_bytes,
		    struct buf *out, struct err *e);

/* remote.c */
struct reg_remote *remote_new(struct reg_store *s);
void remote_free(struct reg_remote *r);
int remote_blob_exists(struct reg_store *s, const char *digest, uint64_t *size,
		       struct err *e);
/*
 * Upload a file as a blob unless the registry has it (HEAD first).  With
 * hash (digest NULL), the digest is still being computed: the upload
 * session is opened meanwhile and, for a file of at least o.overlap_min
 * bytes, the file streams up in one PATCH while a second connection HEADs
 * the blob once the hash is done; the stream stops if it is there (then
 * the session is cancelled or the rest sent, as a HEAD decides), and ends
 * with the hash anyway above the monolithic limit (then chunks).
 * info->digest gets the digest either way; mount_from waits for it.
 */
int remote_blob_push_file(struct reg_store *s, const char *path,
			  const char *digest, struct reg_hash *hash, uint64_t size,
			  const char *mount_from, struct reg_blob_info *info,
			  struct err *e);
int remote_blob_push_mem(struct reg_store *s, const void *p, size_t n,
			 const char *digest, struct err *e);
/* POST ?mount=&from=: 1 mounted, 0 not (the session offered instead is
 * cancelled), <0 error. */
int remote_blob_mount(struct reg_store *s, const char *digest, const char *from,
		      struct err *e);
int remote_blob_fetch_fd(struct reg_store *s, const char *digest, int64_t size,
			 int fd, struct err *e);
int remote_manifest_put(struct reg_store *s, const char *tag, const void *p,
			size_t n, const char *media_type, const char *digest,
			struct err *e);
int remote_manifest_get(struct reg_store *s, const char *ref, struct buf *out,
			char **media_type, char *digest_out, struct err *e);
int remote_manifest_head(struct reg_store *s, const char *ref, char *digest_out,
			 uint64_t *size, struct err *e);
int remote_tags_list(struct reg_store *s, struct reg_tags *tags, struct err *e);
int remote_manifest_delete(struct reg_store *s, const char *ref, struct err *e);

/* manifest.c: the "mediaType" and "artifactType" of manifest bytes
 * (malloc'd; NULL when absent).  ERR_CORRUPT when it is not JSON. */
int reg_manifest_peek(const void *p, size_t n, char **media_type,
		      char **artifact_type, struct err *e);

#endif
