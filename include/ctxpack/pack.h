/*
 * pack: the deterministic archive writer.  A walked context becomes a tar
 * stream (libarchive, restricted pax, normalized headers) cut into frames
 * at entry boundaries by a rule that depends on content only, each frame
 * compressed on its own (zstd frame, gzip member, or stored), so the bytes
 * never depend on the thread count.  docs/archive-format.md is the spec.
 *
 * The only module that includes <archive.h>, <archive_entry.h> and
 * <zstd.h>.  Below cache in the layering: it may use walk_entry.hash when
 * hashed == 1 but never calls the index.
 */
#ifndef CTXPACK_PACK_H
#define CTXPACK_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "ctxpack/util.h"
#include "ctxpack/walk.h"

/* Bumped whenever the bytes for the same content could change (header
 * rules, frame rule, codec settings).  Part of any cache key. */
#define PACK_FORMAT_VERSION 4

/* Append what else decides the bytes for the same content and options:
 * the versions of the libraries that write them (libarchive with its
 * zlib, libzstd).  Part of every cache key (issue 7). */
void pack_lib_versions(struct buf *out);

/* Report libarchive and libzstd (util.h, lib_info_fn). */
void pack_lib_info(lib_info_fn fn, void *arg);

enum pack_compress {
	PACK_ZSTD = 0,
	PACK_GZIP = 1,
	PACK_NONE = 2,
};

/* mtime of every entry when SOURCE_DATE_EPOCH is not set:
 * 2000-01-01T00:00:00Z (after 1980, so ZIP tools can store it). */
#define PACK_DEFAULT_MTIME 946684800
/* The largest SOURCE_DATE_EPOCH accepted: 9999-12-31T23:59:59Z.  From
 * 2^31-1 (2038-01-19) on, libarchive adds a pax mtime record to every
 * header, which is deterministic too. */
#define PACK_MAX_MTIME 253402300799LL

/* The frame rule (docs/archive-format.md, "Frames").  Sizes are estimates
 * of tar bytes computed from the entry alone (pack_entry_est). */
#define PACK_FRAME_MIN (1u << 20)   /* no content-defined cut below this */
#define PACK_FRAME_AVG (512u << 10) /* expected bytes between cuts above MIN */
#define PACK_FRAME_MAX (8u << 20)   /* never grow a frame past this */
#define PACK_SPLIT_OVER (8u << 20)  /* files larger than this are split ... */
#define PACK_CHUNK (4u << 20)       /* ... at multiples of this data offset */
/* Regular files up to this size are read whole before their header is
 * written (so a change during the read can be retried); larger ones are
 * streamed and a change fails the pack. */
#define PACK_SMALL_FILE (1u << 20)

/* The longest pack_opts.prefix. */
#define PACK_PREFIX_MAX 1024

#define PACK_MAX_THREADS 64
/* Frames being compressed at once, whatever --threads says: each holds up
 * to two frames' worth of memory (input and output), and peak memory stays
 * under 64 MiB. */
#define PACK_MAX_WORKERS 4

struct pack_opts {
	int compress;      /* enum pack_compress */
	int level;         /* 0 = the codec's default (zstd 3, gzip 6) */
	unsigned threads;  /* frame workers; 0 = one per CPU; at most
			      PACK_MAX_WORKERS run at once */
	int64_t mtime;     /* the mtime of every entry, seconds */
	/* The list's normalize_modes (the walk's WALK_NORMALIZE_MODES),
	 * repeated here for the cache keys made before the walk (the frame
	 * store's settings); pack_write refuses a mismatch. */
	int normalize_modes;
	/* NULL or "": entries are named relative to the root, as always.
	 * Else a relative directory path ("app", "usr/src/app": no leading or
	 * trailing '/', no empty, "." or ".." component) put in front of
	 * every name ("app/main.py"), and the directories it names written
	 * first ("app/", or "usr/", "usr/src/", "usr/src/app/"; 0755 like
	 * every synthesized directory), so that the archive unpacks below it
	 * the way an image layer made by COPY . /usr/src/app does.  Part of
	 * the frame cache's settings (the bytes differ), not of the frame
	 * rule's choices (cuts stay where they are). */
	const char *prefix;
	/* --compress none only (pack and build set it; images do not): when
	 * the first entry starts with an extended header (a pax 'x' header for
	 * a non-ASCII or long name or link target), write an empty pax global
	 * header (PACK_GLOBAL_HEADER_NAME, typeflag 'g', size 0) before it.
	 * The docker client tells a tar on its stdin from a Dockerfile by
	 * parsing the first 1024 bytes as a tar header, which an 'x' header
	 * and its records fill (so `docker build -` would take the archive
	 * for a Dockerfile); a 'g' header parses alone, and tar readers
	 * (docker's daemon, git archive's own output) skip it.  Part of the
	 * bytes, not of any cache key (no frame store without compression). */
	int stdin_safe;
};

#define PACK_GLOBAL_HEADER_NAME "pax_global_header"

/* Fill in the defaults: zstd, default level, default threads,
 * PACK_DEFAULT_MTIME. */
void pack_opts_init(struct pack_opts *o);

/* "zstd" | "gzip" | "none" -> enum pack_compress; ERR_USAGE otherwise. */
int pack_parse_compress(const char *s, int *out, struct err *e);
/* Check level, threads and prefix; ERR_USAGE with a message. */
int pack_opts_check(const struct pack_opts *o, struct err *e);
/* The effective level (the default when o->level is 0; 0 for none). */
int pack_level(const struct pack_opts *o);
const char *pack_compress_name(int compress);

/*
 * SOURCE_DATE_EPOCH, strictly: env NULL (unset) gives PACK_DEFAULT_MTIME;
 * otherwise decimal digits only, at most PACK_MAX_MTIME.  An empty or
 * malformed value is an error (ERR_USAGE) naming the value.
 */
int pack_source_date_epoch(const char *env, int64_t *mtime, struct err *e);

/*
 * The list of archive entries: the walk's included entries plus the files
 * a builder needs even when the ignore patterns exclude them (the
 * Dockerfile and the ignore file in use, as the docker CLI sends them) and
 * any directories missing above them, merged in archive order.
 */
struct pack_list {
	struct walk_entry **v;       /* archive order; borrowed from the walk or added;
					the packer's hooks record content hashes in
					them (enum walk_hash) */
	size_t n;
	const char *root;            /* borrowed: the walk's root */
	int normalize_modes;         /* the walk's WALK_NORMALIZE_MODES: git-style
					modes in the headers (walk_archive_mode) */
	struct walk_entry *added;    /* the added entries (owned) */
	size_t n_added;
	char *strings;               /* their paths and link targets (owned) */
};

/*
 * Build the list from a walk (made without WALK_EXCLUDED).  The walk must
 * outlive the list.  A Dockerfile or ignore file that does not exist, is
 * outside the context, or sits below a non-directory is not added.
 * Returns 0 or an err.
 */
int pack_list_build(struct pack_list *l, struct walk_result *r, struct err *e);
/*
 * The list of the walk's included entries alone, nothing added: what
 * `COPY . DEST` copies (a builder hides the Dockerfile and the ignore file
 * from COPY when the patterns exclude them).  Cannot fail.
 */
void pack_list_entries(struct pack_list *l, struct walk_result *r);
void pack_list_release(struct pack_list *l);

/*
 * Frames.  A frame covers the tar bytes from position `first` to `end`
 * (exclusive), where a position is (entry index, data offset): offset 0 is
 * the start of the entry's header, a non-zero offset a point inside its
 * data (only where large files are split).  The last frame holds the
 * end-of-archive blocks alone (first == end == {n, 0}).
 */
struct pack_pos {
	size_t i;
	uint64_t off;
};

struct pack_frame {
	struct pack_pos first, end;
	uint64_t est;        /* estimated tar bytes */
};

/* Estimated tar bytes of an entry's header, and of its data with padding. */
uint64_t pack_header_est(const struct walk_entry *we);
/* The header estimate when extra bytes come before the name (a prefix
 * and its '/'). */
uint64_t pack_header_est_named(const struct walk_entry *we, size_t extra);
uint64_t pack_data_est(const struct walk_entry *we);
/* The 64-bit path hash the frame rule uses (FNV-1a, then a mixer). */
uint64_t pack_path_hash(const char *p, size_t n);

/* Plan the frames for a list; *frames is malloc'd (caller frees). */
void pack_plan(struct walk_entry *const *v, size_t n,
	       struct pack_frame **frames, size_t *nframes);
/* The same for entries named below a prefix (pack_opts.prefix, NULL for
 * none): the estimates count the longer names and the prefix's directory
 * entries in the first frame, so that a frame stays within its memory
 * bound.  Deterministic like pack_plan; with no prefix it is pack_plan. */
void pack_plan_prefixed(struct walk_entry *const *v, size_t n, const char *prefix,
			struct pack_frame **frames, size_t *nframes);

/*
 * Optional frame cache hooks (issue 7).  Called from the worker threads,
 * concurrently: get() returns 1 after filling out with the frame's encoded
 * bytes (exactly what a cold pack would produce), 0 to encode it; put()
 * offers freshly encoded bytes.  content(), when set, is given the whole
 * content of each regular file l->v[i] read in one piece (up to
 * PACK_SMALL_FILE) whose hashed is 0, right after the read and before its
 * frame's put(): the bytes that go into the archive, for hashing on the
 * way (the worker encoding the frame is the only thread touching the
 * entry then).  data(), when set, may supply such a file's bytes instead
 * of the file (zstd frames only): it fills dst with exactly n bytes and
 * returns 1, or returns 0 and the file is read; content() then sees
 * what data() gave.  Any of them may be NULL.
 *
 * flags: PACK_CACHE_OWN_DIGEST makes pack_write skip its sha256 and leave
 * res->digest empty: the caller hashes in its sink (the frame cache keeps
 * the hash state at every frame boundary, which pack_write's cannot).
 */
#define PACK_CACHE_OWN_DIGEST 1u
struct pack_frame_cache {
	int (*get)(void *ctx, const struct pack_list *l, const struct pack_frame *f,
		   const struct pack_opts *o, struct buf *out);
	void (*put)(void *ctx, const struct pack_list *l, const struct pack_frame *f,
		    const struct pack_opts *o, const void *p, size_t n);
	void (*content)(void *ctx, size_t i, const void *p, size_t n);
	int (*data)(void *ctx, size_t i, void *dst, size_t n);
	void *ctx;
	unsigned flags;
};

/*
 * The output sink: called from one thread, in order, once per frame with
 * that frame's encoded bytes (the last call is the end-of-archive frame).
 * Returns 0, or an err (which stops the pack and is returned).
 */
typedef int (*pack_sink_fn)(void *ctx, const void *p, size_t n, struct err *e);

/*
 * Optional, beside a sink: the output takes n bytes of the regular file fd
 * from offset off itself, at the sink's place in the stream (`build`
 * splices stored frames into COMMAND's pipe: no copy through this
 * process).  Called with the sink's ctx, never while the sink runs.
 * Returns the bytes it took; fewer than n when it cannot take more, and
 * the rest then goes through the sink, which reports an error.
 */
typedef uint64_t (*pack_sink_file_fn)(void *ctx, int fd, uint64_t off, uint64_t n);

struct pack_result {
	char digest[72];     /* "sha256:<64 hex>" of the bytes written */
	uint64_t bytes;      /* archive bytes written */
	uint64_t tar_bytes;  /* uncompressed tar bytes */
	uint64_t entries;
	uint64_t frames;
};

/*
 * Write the archive of the list to the sink.  Files are opened below
 * l->root without following symlinks; each regular file must still have
 * its walked size (and, when streamed, its walked mtime) and must not
 * change while it is read: a small file is re-read once, otherwise the
 * pack fails with ERR_CHANGED naming the file.  On failure some bytes may
 * already have reached the sink; the caller discards them (atomic_abort).
 * cache may be NULL.  Needs a UTF-8 LC_CTYPE (main sets C.UTF-8).
 */
int pack_write(const struct pack_list *l, const struct pack_opts *o,
	       const struct pack_frame_cache *cache, pack_sink_fn sink, void *sink_ctx,
	       struct pack_result *res, struct err *e);

/*
 * The encoder pool pack_write runs, for a caller that planned the frames
 * itself (the frame store encodes the few frames an edit changed):
 * frames[0..nframes) of l, in archive order, each taken from cache->get or
 * encoded whole on one of up to `threads` workers (0: one per CPU; at most
 * PACK_MAX_WORKERS) and offered to cache->put, then handed to sink in
 * order from the calling thread (sink may be NULL: the frames only reach
 * put).  rootfd is an open directory fd of l->root.  *bytes and *tar_bytes
 * (either may be NULL) get the encoded and tar bytes added.  Memory: per
 * worker a codec context and a read buffer, and one encoded frame per
 * worker plus one in flight.  Returns 0, or the first error (a
 * worker's or the sink's); the options and the locale are the caller's
 * to check (pack_write does).
 */
int pack_encode_frames(const struct pack_list *l, const struct pack_opts *o, int rootfd,
		       const struct pack_frame *frames, size_t nframes, unsigned threads,
		       const struct pack_frame_cache *cache, pack_sink_fn sink, void *sink_ctx,
		       uint64_t *bytes, uint64_t *tar_bytes, struct err *e);

/*
 * Encode one frame into out (appending): what pack_write emits for it.
 * rootfd is an open directory fd of l->root.  For the frame cache and the
 * tests; pack_write runs this on its workers.  huge: gather the frame's
 * input on transparent huge pages (fewer page faults, memory in 2 MiB
 * steps: for up to two workers at once).
 */
struct pack_worker;
struct pack_worker *pack_worker_new(const struct pack_opts *o, int huge, struct err *e);
void pack_worker_free(struct pack_worker *w);
int pack_frame_encode(struct pack_worker *w, const struct pack_list *l, int rootfd,
		      const struct pack_frame *f, struct buf *out, uint64_t *tar_bytes,
		      struct err *e);
/* Give the worker a content() hook (cache->content and cache->ctx only;
 * NULL: none), as pack_write does with its cache's. */
void pack_worker_set_cache(struct pack_worker *w, const struct pack_frame_cache *cache);

/*
 * The entry names (in order, a directory's without its '/') of one zstd
 * frame of ours (z, n bytes): its tar headers read back.  *paths gets a
 * malloc'd array of *np malloc'd strings.  0, or -1 when it is not a
 * whole zstd frame of whole tar entries (nothing is returned then).
 */
int pack_frame_paths(const void *z, size_t n, char ***paths, size_t *np);
/* The same, -1 as soon as an entry is larger than PACK_SMALL_FILE. */
int pack_frame_paths_small(const void *z, size_t n, char ***paths, size_t *np);

/*
 * The regular files' bytes of such a frame, read back in order (for the
 * look-ahead, issue 15: a frame made again after an edit takes its other
 * files from the frame it replaces instead of reading them).  get() is
 * asked for entries in archive order: it skips the frame's entries that
 * sort before path and, when the next one is the regular file path of n
 * bytes, copies its data to dst and returns 1; else 0 (then or after an
 * error, for good).  z must outlive the reader.
 */
struct pack_frame_reader;
struct pack_frame_reader *pack_frame_reader_new(const void *z, size_t n);
int pack_frame_reader_get(struct pack_frame_reader *r, const char *path, size_t plen,
			  void *dst, size_t n);
void pack_frame_reader_free(struct pack_frame_reader *r);

/*
 * The sha256 of the tar inside an archive of ours (an OCI layer's
 * diff_id), from the archive's encoded bytes fed in order, in pieces of
 * any size: zstd frames and gzip members are decoded one after another,
 * stored bytes hashed as they come.  Memory: the codec's state and a
 * 128 KiB buffer.  new: NULL with an err.  update: 0, or ERR_CORRUPT
 * when the bytes do not decode.  final: "sha256:<hex>" into digest and
 * the tar's size into tar_bytes (may be NULL), or ERR_CORRUPT when the
 * bytes stop inside a frame or member.  free(NULL) is a no-op.
 */
struct pack_tar_digest;
struct pack_tar_digest *pack_tar_digest_new(int compress, struct err *e);
int pack_tar_digest_update(struct pack_tar_digest *d, const void *p, size_t n,
			   struct err *e);
int pack_tar_digest_final(struct pack_tar_digest *d, char digest[72], uint64_t *tar_bytes,
			  struct err *e);
void pack_tar_digest_free(struct pack_tar_digest *d);

/* Open path below rootfd without following a symlink in any component
 * (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS; O_NOFOLLOW only on a
 * kernel without openat2).  flags as for openat. */
int pack_open_beneath(int rootfd, const char *path, int flags);

#endif
