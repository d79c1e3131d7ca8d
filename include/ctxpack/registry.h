/*
 * registry: the OCI store.  One interface over two kinds of store:
 *
 *   - a local OCI image layout, "oci:DIR[:tag]" (oci-layout, index.json,
 *     blobs/sha256/...), the embedded default store;
 *   - a remote registry, "host[:port]/repo[:tag|@sha256:...]" as Docker
 *     writes it, spoken to over the OCI distribution API with libcurl.
 *
 * A store is one repository: blobs, manifests and tags.  The tag or digest
 * in the string it was opened from is kept in reg_store_ref() for commands
 * that act on one artifact (push, pull); the store itself ignores it.
 *
 * Every blob that leaves the store is sha256-verified before the caller
 * may rely on it; files are written under a temporary name and renamed into
 * place only after the check, so a failed or interrupted fetch never leaves
 * a partial file under the output name.  Blobs are streamed, never held in
 * memory; manifests are capped at REG_MANIFEST_MAX.
 *
 * Errors follow util.h: functions return 0 (or the documented non-negative
 * result) or a negative ERR_* code with the message in struct err, naming
 * the reference and, for registry failures, the registry's own error code
 * and message ("push 127.0.0.1:5000/x:y: MANIFEST_INVALID: manifest
 * invalid").  ERR_NOTFOUND: no such blob/manifest/tag; ERR_AUTH: the
 * credentials were refused or missing; ERR_NET: the registry could not be
 * reached or kept failing after the retries; ERR_CORRUPT: a digest or size
 * check failed.
 *
 * Credentials are never put in messages or log lines.
 *
 * Only this module includes libcurl and jansson.
 */
#ifndef CTXPACK_REGISTRY_H
#define CTXPACK_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "ctxpack/util.h"

/* Media types and well-known values. */
#define REG_MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define REG_MT_INDEX "application/vnd.oci.image.index.v1+json"
#define REG_MT_EMPTY "application/vnd.oci.empty.v1+json"
#define REG_MT_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"
#define REG_MT_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define REG_MT_LAYER_TAR "application/vnd.oci.image.layer.v1.tar"
#define REG_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define REG_MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define REG_MT_IMAGE_CONFIG "application/vnd.oci.image.config.v1+json"
#define REG_MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define REG_MT_LAYER_NONDIST_GZIP "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
#define REG_MT_DOCKER_LAYER_GZIP "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define REG_MT_DOCKER_LAYER_FOREIGN "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
#define REG_ANNOT_BASE_DIGEST "org.opencontainers.image.base.digest"
#define REG_ANNOT_BASE_NAME "org.opencontainers.image.base.name"
/* The empty config blob "{}" (2 bytes). */
#define REG_EMPTY_DIGEST \
	"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
#define REG_ANNOT_TITLE "org.opencontainers.image.title"
#define REG_ANNOT_REF_NAME "org.opencontainers.image.ref.name"
#define REG_ANNOT_CREATED "org.opencontainers.image.created"
/* artifactType of `ctxpack push` when none is given. */
#define REG_DEFAULT_ARTIFACT_TYPE "application/vnd.ctxpack.artifact.v1"
/* The largest manifest read or written (distribution's limit). */
#define REG_MANIFEST_MAX (4u << 20)
/* A digest string "sha256:<64 hex>" plus NUL fits in this. */
#define REG_DIGEST_SIZE 72

/* ------------------------------------------------------------------ */
/* References                                                          */

enum reg_kind { REG_REMOTE = 1, REG_LAYOUT = 2 };

/*
 * A parsed reference.  All strings are malloc'd and owned by the struct.
 *   remote: host ("docker.io", "ghcr.io", "127.0.0.1:5000", "[::1]:5000"),
 *           repo ("library/alpine"), path NULL.
 *   layout: path (the directory), host and repo NULL.
 * tag and digest are NULL when the string did not give them; a reference
 * with both ("repo:tag@sha256:...") keeps both and the digest decides.
 */
struct reg_ref {
	enum reg_kind kind;
	char *host;
	char *repo;
	char *path;
	char *tag;
	char *digest;
};

/*
 * Parse "oci:DIR[:tag|@sha256:...]" or "[docker://]host[:port]/repo[:tag]
 * [@sha256:...]".  Docker's rules: a first component without '.' or ':'
 * that is not "localhost" is a Docker Hub repository ("alpine" ->
 * docker.io/library/alpine); "index.docker.io" is "docker.io".  Repository
 * names, tags and digests are checked against the distribution grammar.
 * ERR_USAGE on a malformed reference.  r is zeroed first.
 */
int reg_ref_parse(struct reg_ref *r, const char *s, struct err *e);
void reg_ref_release(struct reg_ref *r);
/* The canonical string ("docker.io/library/alpine:3", "oci:/d:tag"),
 * malloc'd; the tag/digest part only when set. */
char *reg_ref_str(const struct reg_ref *r);
/* The tag or digest an artifact command acts on: digest, else tag, else
 * "latest".  Borrowed from r. */
const char *reg_ref_target(const struct reg_ref *r);

/* Grammar checks (1 valid, 0 not). */
int reg_tag_valid(const char *tag);
int reg_repo_valid(const char *repo);
int reg_digest_valid(const char *digest); /* sha256:<64 lower hex> only */

/* The default store string: $CTXPACK_STORE, else
 * "oci:$XDG_CACHE_HOME/ctxpack/store" (~/.cache/...).  malloc'd. */
char *reg_default_store(void);

/* ------------------------------------------------------------------ */
/* Stores                                                              */

/* Diagnostic callback for -v (one line, no newline, never a secret). */
typedef void (*reg_log_fn)(void *arg, const char *msg);

/*
 * Progress of a blob transfer (reg_blob_push_file, reg_blob_fetch_fd and
 * what calls them), for a progress display: done bytes of the blob so far
 * and its size, 0 when not known.  Called on the thread that made the
 * call, often (every libcurl progress tick, every copied MiB), so it must
 * be cheap; done may go back when a transfer restarts.  Manifests, small
 * blobs and skipped or mounted blobs report nothing.
 */
typedef void (*reg_progress_fn)(void *arg, uint64_t done, uint64_t total);

struct reg_opts {
	const char *ca_file;     /* extra CA bundle for TLS (replaces the default) */
	int insecure;            /* skip TLS verification; allow plain HTTP anywhere */
	unsigned idle_timeout;   /* s without a byte before a transfer fails;
				    0: $CTXPACK_IDLE_TIMEOUT or 60 */
	unsigned connect_timeout;/* s; 0: 30 */
	uint64_t chunk_size;     /* upload chunk size; 0: $CTXPACK_CHUNK_SIZE
				    or 8 MiB (4 MiB on ghcr.io) */
	uint64_t mono_max;       /* largest blob sent in one PUT; 0:
				    $CTXPACK_MONOLITHIC_MAX or 512 MiB */
	uint64_t overlap_min;    /* a file of unknown digest this big or more
				    starts uploading while it is hashed; 0:
				    $CTXPACK_OVERLAP_MIN or 64 MiB */
	unsigned max_tries;      /* tries per request on 5xx/429/network; 0: 6 */
	reg_log_fn log;          /* NULL: silent */
	void *log_arg;
	reg_progress_fn progress;/* NULL: none */
	void *progress_arg;
};
void reg_opts_init(struct reg_opts *o);

struct reg_store;

/*
 * Open the store named by spec (NULL: reg_default_store()).  Nothing is
 * contacted or created yet: a registry is pinged (and the auth challenge
 * read) at the first request, a layout directory is created at the first
 * write.  o may be NULL for defaults; it is copied.  Plain HTTP is used
 * only for localhost, 127.0.0.0/8 and ::1 (after HTTPS fails to
 * handshake), or anywhere with o->insecure.
 */
int reg_store_open(struct reg_store **out, const char *spec,
		   const struct reg_opts *o, struct err *e);
void reg_store_free(struct reg_store *s);
/* The parsed reference the store was opened from (borrowed). */
const struct reg_ref *reg_store_ref(const struct reg_store *s);
/* "host/repo" or "oci:DIR", for messages (borrowed). */
const char *reg_store_name(const struct reg_store *s);

/* Transfer counters since open (blob payload bytes only). */
struct reg_stats {
	uint64_t blob_bytes_sent;
	uint64_t blob_bytes_received;
	unsigned blobs_skipped;  /* pushes skipped because the blob existed */
	unsigned blobs_mounted;
	unsigned retries;
	unsigned requests;       /* HTTP requests made (0 for a layout) */
};
void reg_store_stats(const struct reg_store *s, struct reg_stats *st);

/*
 * An overall time limit: from now on every request, retry wait and copy
 * stops at deadline_ms (CLOCK_MONOTONIC, in ms) with ERR_NET "time limit
 * reached", however slowly bytes still drip in.  0 removes it.
 */
void reg_store_set_deadline(struct reg_store *s, uint64_t deadline_ms);

/* --- blobs --- */

/* 1 when the blob exists (size set when non-NULL), 0 when not, <0 error. */
int reg_blob_exists(struct reg_store *s, const char *digest, uint64_t *size,
		    struct err *e);

/* Result of a blob push. */
struct reg_blob_info {
	char digest[REG_DIGEST_SIZE];
	uint64_t size;
	uint64_t sent;  /* payload bytes sent: 0 when mounted, and when
			   skipped unless the upload had started while the
			   file was hashed */
	int skipped;    /* already present */
	int mounted;    /* cross-repository mount */
};

/*
 * Push the file at path as a blob.  digest is its sha256 when the caller
 * knows it (NULL: from the digest cache, else computed by reading the
 * file: to a registry, in a second thread while the upload session opens
 * and, for files of o.overlap_min or more, while the file streams up in
 * one PATCH).  Skipped when the store has it (HEAD as soon as the digest
 * is known; a stream is stopped and its session cancelled, having sent
 * what went up meanwhile); mounted from repository mount_from on the same
 * registry when given and the registry allows it; else uploaded: in one
 * PUT up to o.mono_max, in chunks (PATCH with Content-Range, o.chunk_size)
 * above it or when a big PUT is refused or cut, and as one streamed PATCH
 * when the registry refuses chunks.  A dropped chunked upload resumes at
 * the offset the registry reports, or restarts; 5xx and 429 (Retry-After)
 * are retried with backoff.  The registry checks the digest at the end.
 * info may be NULL.
 */
int reg_blob_push_file(struct reg_store *s, const char *path, const char *digest,
		       const char *mount_from, struct reg_blob_info *info,
		       struct err *e);
/* Push a small in-memory blob (configs); digest_out may be NULL. */
int reg_blob_push_mem(struct reg_store *s, const void *p, size_t n,
		      char digest_out[REG_DIGEST_SIZE], struct err *e);

/*
 * Stream a blob into fd (a pipe is fine: a dropped download resumes with a
 * Range request and skips what was already written).  size is the
 * expected size or -1.  The data is hashed as it streams; ERR_CORRUPT when
 * the digest or size does not match, in which case fd has received bad
 * bytes - callers writing to a file should use reg_blob_fetch_file().
 */
int reg_blob_fetch_fd(struct reg_store *s, const char *digest, int64_t size,
		      int fd, struct err *e);
/*
 * Fetch a small blob (an image config) into out (reset first), verified:
 * size is the descriptor's, refused (ERR_CORRUPT) when over max.
 */
int reg_blob_fetch_mem(struct reg_store *s, const char *digest, uint64_t size,
		       size_t max, struct buf *out, struct err *e);
/*
 * Mount a blob from repository `from` on the same registry (POST
 * ?mount=&from=).  1 mounted; 0 when the registry would not (the upload
 * session it offers instead is cancelled), and always for a layout or
 * from == the store's own repository; <0 error.
 */
int reg_blob_mount(struct reg_store *s, const char *digest, const char *from,
		   struct err *e);
/*
 * Fetch a blob into path: written to a temporary beside it, verified, then
 * renamed over path (mode 0644 before umask).  On failure nothing is left.
 * With noreplace, an existing path is never replaced: ERR_USAGE when it is
 * there, checked before the download and again, atomically, at the rename
 * (RENAME_NOREPLACE).
 */
int reg_blob_fetch_file(struct reg_store *s, const char *digest, int64_t size,
			const char *path, int noreplace, struct err *e);

/* --- manifests and tags --- */

/*
 * Put manifest bytes under tag (NULL: by digest only).  The Content-Type
 * is the manifest's own "mediaType" (required).  digest_out receives the
 * sha256 of exactly these bytes; a registry that reports another digest is
 * an error.  Re-putting identical bytes under the same tag succeeds.
 */
int reg_manifest_put(struct reg_store *s, const char *tag, const void *p,
		     size_t n, char digest_out[REG_DIGEST_SIZE], struct err *e);

/*
 * reg_manifest_put for a tag that must not exist yet: 0 when put, 1 when
 * the tag exists (nothing written; digest_out untouched).  On a layout the
 * check and the put are one step under the index lock, so of concurrent
 * callers exactly one gets 0; a registry has no such operation, so there
 * it is a HEAD just before the PUT (a window remains).
 */
int reg_manifest_put_new(struct reg_store *s, const char *tag, const void *p,
			 size_t n, char digest_out[REG_DIGEST_SIZE], struct err *e);

/*
 * Get a manifest by tag or digest ("sha256:...") into out (reset first,
 * capped at REG_MANIFEST_MAX).  Accepts OCI manifests and indexes.
 * media_type (malloc'd, may be NULL) gets the Content-Type; digest_out
 * the sha256 of the bytes, which must equal ref when ref is a digest.
 * ERR_NOTFOUND when there is no such tag or manifest (or no repository).
 */
int reg_manifest_get(struct reg_store *s, const char *ref, struct buf *out,
		     char **media_type, char digest_out[REG_DIGEST_SIZE],
		     struct err *e);
/* Existence check by tag or digest without fetching (HEAD): 1 found with
 * digest_out/size set (either may be NULL), 0 not found, <0 error. */
int reg_manifest_head(struct reg_store *s, const char *ref,
		      char digest_out[REG_DIGEST_SIZE], uint64_t *size,
		      struct err *e);

/* A list of tags, malloc'd. */
struct reg_tags {
	char **v;
	size_t n;
};
/* All tags of the repository (following Link pagination), each once, in
 * the order first listed; names that are not valid tags (a store is
 * untrusted: control characters, newlines) are dropped with a log line.  A
 * repository or layout that does not exist is an empty list, not an
 * error. */
int reg_tags_list(struct reg_store *s, struct reg_tags *tags, struct err *e);
void reg_tags_release(struct reg_tags *tags);

/*
 * Delete a tag or a manifest (ref is a tag or a digest).  A layout drops
 * the index.json entries (blobs stay until reg_store_gc).  A registry is
 * asked to delete the tag; where it only deletes by digest (distribution
 * 2.x), the tag is resolved and the manifest deleted by digest, which also
 * removes other tags that point at the same manifest.  A registry that
 * refuses deletes gives ERR_FAIL with a message saying so ("... registry
 * does not allow deletes (405 UNSUPPORTED: ...)").  ERR_NOTFOUND when
 * there is nothing to delete.
 */
int reg_manifest_delete(struct reg_store *s, const char *ref, struct err *e);

/*
 * Layouts only (a no-op returning 0 on a registry): remove blobs that no
 * manifest in index.json references and that are older than min_age
 * seconds (so blobs of a push in progress in another process survive).
 * freed (may be NULL) receives the bytes removed.
 */
int reg_store_gc(struct reg_store *s, uint64_t min_age, uint64_t *freed,
		 struct err *e);

/*
 * Layouts only: a side log of text lines kept beside the layout (DIR/name,
 * name a plain file name), for the cache's stats (cache.h).  On a
 * registry both give ERR_USAGE.
 *
 * reg_store_log_append appends line (n bytes, no newline in it; one is
 * added) under an flock on DIR/name.lock, so that concurrent appends from
 * several processes are neither lost nor interleaved; DIR is created when
 * missing.  When the file has grown past max_bytes it is rewritten, still
 * under the lock (temporary + rename), with its newest lines that fit in
 * max_bytes / 2, at most keep of them.  Neither file is opened through a
 * symlink, and the log must be a regular file (ERR_CORRUPT otherwise).
 *
 * reg_store_log_read puts the last max_bytes of DIR/name into out (reset
 * first), starting at a line boundary; no lock is taken (a trim renames a
 * whole new file into place).  A missing file is an empty log (0).
 */
int reg_store_log_append(struct reg_store *s, const char *name, const char *line,
			 size_t n, size_t keep, uint64_t max_bytes, struct err *e);
int reg_store_log_read(struct reg_store *s, const char *name, uint64_t max_bytes,
		       struct buf *out, struct err *e);

/* ------------------------------------------------------------------ */
/* Artifacts: a single-layer image manifest with the empty config      */

struct reg_kv {
	char *key;
	char *value;
};

/* A descriptor.  Strings and the annotation array are malloc'd. */
struct reg_desc {
	char *media_type;
	char digest[REG_DIGEST_SIZE];
	uint64_t size;
	char *artifact_type;         /* NULL when absent */
	struct reg_kv *annotations;
	size_t nannotations;
	/* an index entry's "platform" (NULL when absent) */
	char *os;
	char *architecture;
	char *variant;
};
void reg_desc_release(struct reg_desc *d);

/* A parsed image manifest (or index: then layers holds its manifests). */
struct reg_manifest {
	int schema_version;
	char *media_type;            /* NULL when the manifest has none */
	char *artifact_type;         /* NULL when absent */
	struct reg_desc config;      /* zeroed for an index */
	struct reg_desc *layers;
	size_t nlayers;
	struct reg_kv *annotations;
	size_t nannotations;
	int is_index;
};

/* Parse manifest JSON (ERR_CORRUPT when it is not a valid image manifest
 * or index).  m is zeroed first. */
int reg_manifest_parse(struct reg_manifest *m, const void *p, size_t n,
		       struct err *e);
void reg_manifest_release(struct reg_manifest *m);
/* The value of key in an annotation array, or NULL (borrowed). */
const char *reg_annot_get(const struct reg_kv *kv, size_t n, const char *key);

/* The layer media type of a file by its magic bytes: zstd, gzip, else tar. */
int reg_sniff_media_type(const char *path, const char **media_type,
			 struct err *e);

/*
 * Build the artifact manifest (compact JSON, keys sorted, so equal inputs
 * give equal bytes) for one layer: schemaVersion 2, REG_MT_MANIFEST,
 * artifactType, the empty config, the layer descriptor (with its
 * annotations) and the manifest annotations.  out is reset first.
 */
int reg_artifact_manifest(struct buf *out, const char *artifact_type,
			  const struct reg_desc *layer,
			  const struct reg_kv *annotations, size_t nannotations,
			  struct err *e);

/* What to push as an artifact. */
struct reg_push_in {
	const char *path;            /* the file: the single layer */
	const char *digest;          /* its sha256 when known, else NULL */
	const char *media_type;      /* layer type; NULL: sniffed */
	const char *title;           /* layer title; NULL: basename(path), "": none */
	const char *artifact_type;   /* NULL: REG_DEFAULT_ARTIFACT_TYPE */
	const struct reg_kv *annotations;        /* manifest annotations */
	size_t nannotations;
	const struct reg_kv *layer_annotations;  /* extra layer annotations */
	size_t nlayer_annotations;
	const char *mount_from;      /* repository that may hold the blob, or NULL */
};

struct reg_push_out {
	char digest[REG_DIGEST_SIZE]; /* the manifest's */
	uint64_t size;                /* the manifest's size */
	struct reg_desc layer;        /* owned: reg_push_out_release() */
	uint64_t sent;                /* blob bytes sent */
	int skipped;                  /* the store had the blob */
};
void reg_push_out_release(struct reg_push_out *o);

/*
 * Push an artifact: the layer blob, the empty config, then the manifest
 * under tag (the commit point: blobs first, manifest last).  out may be
 * NULL.
 */
int reg_push_artifact(struct reg_store *s, const char *tag,
		      const struct reg_push_in *in, struct reg_push_out *out,
		      struct err *e);

/*
 * Get and parse the artifact manifest at ref (tag or digest) and check it
 * is an image manifest with exactly one layer with a valid digest.
 * digest_out (may be NULL) gets the manifest digest.
 */
int reg_artifact_get(struct reg_store *s, const char *ref,
		     struct reg_manifest *m, char digest_out[REG_DIGEST_SIZE],
		     struct err *e);

/* ------------------------------------------------------------------ */
/* Images: configs and manifests (`ctxpack image`)                      */

/* What `ctxpack image` needs to know of a base image's config. */
struct reg_config_info {
	char *os;             /* malloc'd; NULL when absent */
	char *architecture;
	char *variant;
	char **diff_ids;      /* its layers' tar digests (malloc'd) */
	size_t ndiff_ids;
};
/* Parse a config (OCI or Docker's): ERR_CORRUPT when it is not JSON or
 * its rootfs.diff_ids are not a list of sha256 digests. */
int reg_config_info(const void *p, size_t n, struct reg_config_info *ci, struct err *e);
void reg_config_info_release(struct reg_config_info *ci);

/* A JSON array of strings (a Dockerfile's exec form) into *v (malloc'd
 * strings, *n of them); -1 when s is not exactly that. */
int reg_json_strings(const char *s, char ***v, size_t *n);

/* A history entry to append. */
struct reg_history_in {
	const char *created_by;
	const char *comment;       /* NULL: none */
	int empty_layer;
};

/* The edits to a base's config, as a Dockerfile's instructions make them.
 * Arrays are borrowed; NULL / 0 leaves a field as the base has it. */
struct reg_config_edit {
	const char *os;            /* for scratch only: "linux" when NULL */
	const char *architecture;  /* for scratch only: "amd64" when NULL */
	const char *variant;       /* for scratch only */
	int64_t created;           /* seconds since 1970: "created" of the
				      image and of each new history entry */
	size_t base_layers;        /* layers of the base manifest: its config
				      must list as many diff_ids */
	const char *workdir;       /* WORKDIR: $VAR expanded; a relative one
				      is taken from the base's */
	const char *user;          /* USER */
	const char *const *env;    /* ENV, each "NAME=VALUE" in order: $NAME,
				      ${NAME}, ${NAME:-w}, ${NAME:+w} expanded
				      against the env so far (\$ is a '$');
				      replaces NAME or is appended */
	size_t nenv;
	int set_entrypoint;        /* ENTRYPOINT: an empty list removes it; a
				      base's Cmd goes too unless set_cmd */
	const char *const *entrypoint;
	size_t nentrypoint;
	int set_cmd;               /* CMD: an empty list removes it */
	const char *const *cmd;
	size_t ncmd;
	const char *const *expose; /* EXPOSE: "8000/tcp", checked by the caller */
	size_t nexpose;
	const struct reg_kv *labels; /* LABEL: set or replaced */
	size_t nlabels;
	const char *const *diff_ids; /* appended to rootfs.diff_ids */
	size_t ndiff_ids;
	const struct reg_history_in *history; /* appended to history */
	size_t nhistory;
};

/*
 * The new image config (compact JSON, keys sorted: equal inputs, equal
 * bytes) into out (reset first): base's (NULL for scratch) OCI fields
 * (architecture, os, os.version, os.features, variant, author, config,
 * rootfs, history; nothing else), edited, with "created" set.
 * ERR_CORRUPT for a bad base config, ERR_USAGE for a bad edit.
 */
int reg_image_config(struct buf *out, const void *base, size_t nbase,
		     const struct reg_config_edit *ed, struct err *e);
/*
 * An OCI image manifest (compact JSON, keys sorted) into out (reset
 * first): REG_MT_MANIFEST, the config descriptor (its media_type, e.g.
 * REG_MT_IMAGE_CONFIG), the layers in order (with their annotations) and
 * the manifest annotations.
 */
int reg_image_manifest(struct buf *out, const struct reg_desc *config,
		       const struct reg_desc *layers, size_t nlayers,
		       const struct reg_kv *annotations, size_t nannotations,
		       struct err *e);
/* The OCI media type for a layer type (Docker's gzip layer types name
 * the same bytes); other types as they are.  Borrowed. */
const char *reg_layer_oci_type(const char *media_type);
/* "2000-01-01T00:00:00Z" (UTC, RFC 3339) for t seconds since 1970. */
void reg_time_rfc3339(int64_t t, char out[32]);

/* ------------------------------------------------------------------ */
/* Protocol helpers (pure; exposed for the unit tests)                 */

enum reg_auth_scheme { REG_AUTH_NONE = 0, REG_AUTH_BASIC, REG_AUTH_BEARER };

struct reg_challenge {
	enum reg_auth_scheme scheme;
	char *realm;
	char *service;
	char *scope;
	char *error;
};
/* Parse a WWW-Authenticate value (several challenges allowed; Bearer is
 * preferred over Basic).  0 and c filled, or -1 when there is no Basic or
 * Bearer challenge.  c is zeroed first. */
int reg_challenge_parse(const char *hdr, struct reg_challenge *c);
void reg_challenge_release(struct reg_challenge *c);

/* The rel="next" URL of a Link header value, malloc'd, or NULL. */
char *reg_link_next(const char *hdr);
/* Resolve a (possibly relative) URL against base (RFC 3986), malloc'd, or
 * NULL when it cannot be parsed. */
char *reg_url_resolve(const char *base, const char *ref);
/* 1 when a and b have the same scheme, host and port. */
int reg_url_same_origin(const char *a, const char *b);

/* Report libcurl (with its TLS library) and jansson (util.h, lib_info_fn). */
void reg_lib_info(lib_info_fn fn, void *arg);

/* Credentials for a registry host.  Secrets: never print these. */
struct reg_cred {
	char *username;
	char *password;
	char *identity_token;  /* OAuth2 refresh token */
	char *registry_token;  /* bearer token sent as is */
};
/*
 * Look up credentials for host (as in the reference: "docker.io" uses the
 * key https://index.docker.io/v1/) and repo (for namespaced auth.json keys;
 * may be NULL): $REGISTRY_AUTH_FILE, then $DOCKER_CONFIG/config.json or
 * ~/.docker/config.json; in each, credHelpers[host], then credsStore (run
 * as docker-credential-NAME get), then auths.  1 found, 0 none (anonymous),
 * <0 error (a broken config file or a failing helper).
 */
int reg_cred_lookup(const char *host, const char *repo, struct reg_cred *c,
		    struct err *e);
void reg_cred_release(struct reg_cred *c);

#endif
