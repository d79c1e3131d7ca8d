/*
 * cache: CI dependency caches kept in an OCI store (issue 6).
 *
 * An entry is one OCI artifact manifest (the empty config, artifactType
 * CACHE_ARTIFACT_TYPE) with one layer per cached path: the deterministic
 * archive (pack_write, zstd) of that path's tree, entries relative to the
 * path.  The manifest's annotations hold the full key, the path list, the
 * implicit version, the platform, the format and the creation time; each
 * layer's hold the path as given.  docs/ci.md is the user's guide.
 *
 * Keys.  A key is 1..CACHE_KEY_MAX bytes of UTF-8 with no control
 * characters (C0, DEL, C1).  Every key is combined with an implicit version (the path
 * list, the compression, the OS/architecture and the format versions), so
 * an entry saved for other paths or another platform is never restored.
 * The key and version map to a valid OCI tag:
 *
 *     <readable>-<version:8 hex><sha256(version, key):24 hex>
 *
 * where <readable> is the key's first CACHE_TAG_READABLE bytes with every
 * byte outside [A-Za-z0-9_.-] (and a leading '.' or '-') replaced by '_'.
 * The mapping is byte for byte, so the tag of any key that starts with a
 * prefix P starts with the mapping of P: prefix lookups pick candidate
 * tags from the tag list alone, then read those manifests and compare the
 * full key annotation (which also rules out hash collisions).
 *
 * Saves are immutable and idempotent: blobs first, the manifest (by tag)
 * last; an existing key is left alone unless forced.  Of concurrent saves
 * of one key, exactly one reports it saved and the others that it exists:
 * they queue on a lock file under cache_home() (one machine), and the
 * manifest is put only if the tag is still absent (atomic on an oci:
 * layout; on a registry a HEAD just before the PUT).  Paths that nest ("a"
 * and "a/b") are refused.
 *
 * Restores download each layer into a private temporary file (O_TMPFILE)
 * and verify its size and sha256 before a byte of it reaches the
 * decompressor; the extraction (unpack.h: nothing written outside or
 * through a link, links verbatim, exact modes) is bounded by the layer's
 * recorded uncompressed size and entry count and by max_size, and goes
 * into a staging directory beside the target.  Only when every layer is
 * in are the targets swapped in (renameat2 RENAME_EXCHANGE, else rename
 * aside), all of them or, should one swap fail, none: a failed or killed
 * restore leaves the old directories as they were.  A target that is a
 * mount point cannot be swapped and is refused before anything is
 * fetched.  Everything read from the store is untrusted: entries whose
 * key, paths, titles, version or counts are not valid are refused as
 * corrupt.
 *
 * Errors follow util.h.  Nothing here prints; warnings go to the opts'
 * warn callback.
 */
#ifndef CTXPACK_CACHE_H
#define CTXPACK_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "ctxpack/registry.h"
#include "ctxpack/util.h"

#define CACHE_ARTIFACT_TYPE "application/vnd.ctxpack.cache.v1"
/* The entry layout version; part of the implicit version. */
#define CACHE_FORMAT 1
#define CACHE_KEY_MAX 512
#define CACHE_TAG_MAX 128
#define CACHE_TAG_READABLE 95
/* "-" + 8 hex of the version + 24 hex of the key hash */
#define CACHE_TAG_SUFFIX 33
#define CACHE_VERSION_LEN 64
/* The default --max-size: a layer's compressed and uncompressed bytes. */
#define CACHE_MAX_SIZE (16ull << 30)
/* The most entries a layer may have when its count is not recorded. */
#define CACHE_MAX_ENTRIES (16u << 20)

#define CACHE_ANNOT_KEY "io.ctxpack.cache.key"
#define CACHE_ANNOT_PATHS "io.ctxpack.cache.paths"       /* JSON list of strings */
#define CACHE_ANNOT_VERSION "io.ctxpack.cache.version"   /* 64 hex */
#define CACHE_ANNOT_FORMAT "io.ctxpack.cache.format"
#define CACHE_ANNOT_PLATFORM "io.ctxpack.cache.platform" /* "linux/amd64" */
#define CACHE_ANNOT_PATH "io.ctxpack.cache.path"         /* layer: the path as given */
#define CACHE_ANNOT_TAR_SIZE "io.ctxpack.cache.uncompressed.size"
#define CACHE_ANNOT_ENTRIES "io.ctxpack.cache.entries"
/* What `cache run` records of its key (cache why): the key prefix, the
 * sha256 hex of the command line, the number of key files and, for each
 * (i from 0), "sha256:<hex> <path, %-encoded (cache_pct_encode)>". */
#define CACHE_ANNOT_RUN_PREFIX "io.ctxpack.cache.run.prefix"
#define CACHE_ANNOT_RUN_COMMAND "io.ctxpack.cache.run.command"
#define CACHE_ANNOT_RUN_FILES "io.ctxpack.cache.run.files"  /* a count, or "omitted" */
#define CACHE_ANNOT_RUN_FILE "io.ctxpack.cache.run.file."   /* + the index */
/* The most key files recorded (more: none recorded, "omitted"). */
#define CACHE_RUN_FILES_MAX 256

/* ------------------------------------------------------------------ */
/* Keys, versions, tags (pure)                                         */

/* Check a key (what names it in the message: "key", "restore key").
 * ERR_USAGE when it is empty, longer than CACHE_KEY_MAX, not UTF-8 or
 * holds a control character. */
int cache_key_check(const char *key, const char *what, struct err *e);
/* 0 when s is UTF-8 without control characters (C0, DEL, C1), else -1. */
int cache_text_check(const char *s);
/* Check a path as given (non-empty, UTF-8, no control characters, not
 * ending in "." or ".."); ERR_USAGE.  (cache_save and cache_restore also
 * refuse a list with a path twice or two paths that nest.) */
int cache_path_check(const char *path, struct err *e);
/* "linux/amd64", "linux/arm64", ... (the build's OS/architecture). */
const char *cache_platform(void);
/* The implicit version: sha256 hex of the format versions, "zstd", the
 * platform and the paths (as given, in order).  out: 65 bytes. */
void cache_version(const char *const *paths, size_t n, char out[CACHE_VERSION_LEN + 1]);
/* The tag of a key under a version.  out: CACHE_TAG_MAX + 1 bytes. */
void cache_tag(const char *key, const char *version, char out[CACHE_TAG_MAX + 1]);
/* 1 when tag has the shape of a cache tag. */
int cache_tag_is_cache(const char *tag);
/* 1 when tag may hold an entry whose key starts with prefix, saved under
 * version (NULL: any version). */
int cache_tag_may_match(const char *tag, const char *prefix, const char *version);

/* ~ and ~/... against $HOME; anything else is copied.  malloc'd. */
char *cache_expand_path(const char *path);

/* RFC 3339 UTC with nanoseconds ("2026-01-02T03:04:05.000000001Z");
 * out: 40 bytes. */
void cache_time_format(int64_t sec, long nsec, char out[40]);
/* Parse RFC 3339 ("Z" or a numeric offset, optional fraction): 0 or -1. */
int cache_time_parse(const char *s, int64_t *sec, long *nsec);

/*
 * The key of `cache run`: prefix + the sha256 hex of the key files (name
 * and content, in order), the command line, the paths and the implicit
 * version.  *key is malloc'd.  ERR_NOTFOUND/ERR_FAIL when a key file
 * cannot be read.
 */
int cache_run_key(const char *prefix, const char *const *key_files, size_t nkf,
		  const char *const *argv, size_t argc, const char *const *paths,
		  size_t npaths, char **key, struct err *e);

/* A key file as `cache run` read it: its path as given and the sha256 hex
 * of its content.  path malloc'd. */
struct cache_keyfile {
	char *path;
	char sha256[65];
};

/* Everything the key of `cache run` is made of. */
struct cache_run_inputs {
	char *key;                   /* prefix + hex, as cache_run_key */
	char *prefix;
	char command[65];            /* sha256 hex of the command line */
	char version[CACHE_VERSION_LEN + 1]; /* the paths' implicit version */
	struct cache_keyfile *files; /* in the order given */
	size_t nfiles;
};
/* cache_run_key, keeping its parts.  in is zeroed first. */
int cache_run_inputs(const char *prefix, const char *const *key_files, size_t nkf,
		     const char *const *argv, size_t argc, const char *const *paths,
		     size_t npaths, struct cache_run_inputs *in, struct err *e);
void cache_run_inputs_release(struct cache_run_inputs *in);
/* The manifest annotations that record in (CACHE_ANNOT_RUN_*), appended
 * to *kv (malloc'd keys and values, *n of them). */
void cache_run_annotations(const struct cache_run_inputs *in, struct reg_kv **kv, size_t *n);

/*
 * %-encoding of text written to a store's annotations and logs: every
 * byte up to 0x20, '%' and 0x7f becomes %XX (upper-case hex); the rest is
 * kept.  Decoding is strict (upper-case hex, no %00, no byte the encoding
 * would have encoded): -1 for anything else.  Both malloc'd.
 */
char *cache_pct_encode(const char *s);
int cache_pct_decode(const char *s, size_t n, char **out);

/* ------------------------------------------------------------------ */
/* Entries                                                             */

/* One entry as read from the store.  Strings malloc'd, owned. */
struct cache_entry {
	char *tag;
	char *key;
	char *version;       /* NULL when the annotation is missing */
	char *created;       /* as stored; NULL when missing */
	int64_t created_sec; /* 0 when missing or unparsable */
	long created_nsec;
	uint64_t size;       /* bytes of all layers */
	char digest[REG_DIGEST_SIZE]; /* the manifest's */
	struct reg_manifest m;
};
void cache_entry_release(struct cache_entry *en);
void cache_entries_free(struct cache_entry *v, size_t n);
/* Newest first: created time, then key, then tag (bytewise, greater
 * first), so equal times still give one order. */
int cache_entry_newer(const struct cache_entry *a, const struct cache_entry *b);
/* 1 when the entry is the one a restore of its key takes (it sits at its
 * key's own tag), 0 when a later `save --update` replaced it. */
int cache_entry_current(const struct cache_entry *en);

/* What an entry saved by `cache run` records of its key (cache why). */
struct cache_run_record {
	char *prefix;                /* NULL when not recorded */
	char command[65];            /* "" when not recorded */
	struct cache_keyfile *files;
	size_t nfiles;
	int recorded;                /* the files are recorded */
	int omitted;                 /* there were too many to record */
};
void cache_run_record_release(struct cache_run_record *r);
/* Read the record from en's annotations (untrusted: checked like user
 * input).  0 with r filled (r->recorded 0 when the entry has none: saved
 * by `cache save` or an older ctxpack), or ERR_CORRUPT. */
int cache_entry_run_record(const struct cache_entry *en, struct cache_run_record *r,
			   struct err *e);

/*
 * Build the entry manifest (compact JSON, keys sorted): the empty config,
 * the layers (each with its annotations) and the manifest annotations.
 * out is reset first.  ERR_USAGE when it would exceed REG_MANIFEST_MAX.
 */
int cache_manifest_build(struct buf *out, const struct reg_desc *layers, size_t n,
			 const struct reg_kv *annotations, size_t nannotations,
			 struct err *e);
/* The same for another artifactType (the stats events). */
int cache_manifest_build_type(struct buf *out, const char *artifact_type,
			      const struct reg_desc *layers, size_t n,
			      const struct reg_kv *annotations, size_t nannotations,
			      struct err *e);
/* A JSON list of strings (the paths annotation) into out (appended). */
void cache_json_list(struct buf *out, const char *const *v, size_t n);

/*
 * Fill en from manifest bytes read at tag: checks the artifactType, that
 * it is an image manifest, the key annotation and that every layer has a
 * path annotation.  ERR_CORRUPT (message set) when it is not a cache
 * entry.  en is zeroed first.
 */
int cache_entry_parse(struct cache_entry *en, const char *tag, const char *digest,
		      const void *p, size_t n, struct err *e);

/* ------------------------------------------------------------------ */
/* The cache over a store                                              */

typedef void (*cache_warn_fn)(void *arg, const char *msg);

struct cache_opts {
	const char *store;      /* NULL: reg_default_store() */
	struct reg_opts reg;    /* copied into the store */
	const char *tmp_dir;    /* archives are written here; NULL: cache_home()/tmp */
	cache_warn_fn warn;     /* non-fatal problems (collisions, skipped tags) */
	void *warn_arg;
	uint64_t max_size;      /* restore: the most bytes a layer may have, compressed
				   or not; 0: CACHE_MAX_SIZE */
	int safe_links;         /* restore: refuse symlinks that lead out of the
				   restored directory (unpack_opts.safe_links) */
};
void cache_opts_init(struct cache_opts *o);

struct cache;

/* Open the store (nothing is contacted yet). */
int cache_open(struct cache **c, const struct cache_opts *o, struct err *e);
void cache_free(struct cache *c);
/*
 * An overall time limit for what follows (cache_lookup, cache_restore):
 * ms from now, 0 for none.  Past it every request, copy and extraction
 * stops with a "time limit reached" error (a slow-drip registry, a stalled
 * transfer).
 */
void cache_set_timeout(struct cache *c, uint64_t ms);
/* The store (borrowed), and its name for messages. */
struct reg_store *cache_store(struct cache *c);
const char *cache_store_name(const struct cache *c);

struct cache_save_result {
	int existed;          /* the key was there already: nothing sent */
	char tag[CACHE_TAG_MAX + 1];
	char digest[REG_DIGEST_SIZE]; /* the manifest's */
	size_t layers;
	uint64_t bytes;       /* archive bytes of all layers */
	uint64_t tar_bytes;
	uint64_t entries;     /* archive entries */
	uint64_t sent;        /* blob bytes uploaded (0 when all existed) */
	size_t reused;        /* layers not packed: their archive, made before,
				 was in the store (issue 15) */
	int updated;          /* update: a new entry replaced the key's entry,
				 which stays under old_tag */
	int unchanged;        /* update: the key's entry has these very layers
				 (existed is set too): nothing stored */
	char old_tag[CACHE_TAG_MAX + 1];
};

/*
 * Save paths (as given; each a directory, "~" expanded) under key.  With
 * force, an existing entry is replaced.  r may be NULL.
 */
int cache_save(struct cache *c, const char *key, const char *const *paths, size_t n,
	       int force, struct cache_save_result *r, struct err *e);

struct cache_save_opts {
	int force;           /* replace the key's entry (it is dropped) */
	/*
	 * Store a new entry even when the key has one, and make it the one
	 * restored: the old entry's manifest is first put under another tag
	 * (cache_tag_replaced: listed and pruned like any entry, found by
	 * prefix lookups, never by the exact key any more), then the new one
	 * under the key's tag.  When the old entry has the same layers
	 * nothing is stored (r->unchanged).  Of two updates of one key at
	 * once on one machine, the second waits for the first (the save
	 * lock); on a registry from two machines, each checks after its put
	 * that the key's tag holds its entry and otherwise keeps its entry
	 * under a replaced tag too, so neither is lost.
	 */
	int update;
	const struct reg_kv *annotations; /* more manifest annotations (borrowed) */
	size_t nannotations;
};
/* cache_save with options (o NULL: none).  force and update together are
 * ERR_USAGE. */
int cache_save_opt(struct cache *c, const char *key, const char *const *paths, size_t n,
		   const struct cache_save_opts *o, struct cache_save_result *r,
		   struct err *e);
/* The tag under which an update keeps the entry (manifest digest) that
 * it replaced: a cache tag with the key's readable part and version, so
 * prefix lookups still find it.  out: CACHE_TAG_MAX + 1 bytes. */
void cache_tag_replaced(const char *key, const char *version, const char *digest,
			char out[CACHE_TAG_MAX + 1]);

enum cache_result { CACHE_MISS = 0, CACHE_HIT = 1, CACHE_PARTIAL = 2 };

struct cache_match {
	int result;               /* enum cache_result */
	struct cache_entry entry; /* valid unless CACHE_MISS */
};
void cache_match_release(struct cache_match *m);

/*
 * Find the entry for key (exact), else for each prefix in order the
 * newest entry whose key starts with it, all under the implicit version of
 * paths.  A miss is 0 with m->result CACHE_MISS; <0 only when the store
 * failed (unreachable, refused credentials, broken listing).
 */
int cache_lookup(struct cache *c, const char *key, const char *const *prefixes,
		 size_t nprefixes, const char *const *paths, size_t npaths,
		 struct cache_match *m, struct err *e);

struct cache_restore_result {
	size_t layers;
	uint64_t bytes;     /* blob bytes fetched */
	uint64_t entries;   /* archive entries extracted */
};

/*
 * Restore an entry found by cache_lookup into paths (the same list, as
 * given).  Each layer streams from the store through sha256 and the
 * extractor into a staging directory beside its target; the targets are
 * swapped in only when all layers were verified.  r may be NULL.
 */
int cache_restore(struct cache *c, const struct cache_entry *en,
		  const char *const *paths, size_t npaths,
		  struct cache_restore_result *r, struct err *e);

/* Every cache entry in the store (all versions), newest first. */
int cache_list(struct cache *c, struct cache_entry **v, size_t *n, struct err *e);
/* The entries whose key starts with prefix, saved under version (NULL:
 * any), newest first: only the tags that may hold one are read. */
int cache_list_prefix(struct cache *c, const char *prefix, const char *version,
		      struct cache_entry **v, size_t *n, struct err *e);

/* Delete one entry (its tag; on a registry the manifest). */
int cache_delete(struct cache *c, const struct cache_entry *en, struct err *e);
/* On a layout, remove the blobs no entry references any more (older than
 * grace seconds); a no-op on a registry.  freed may be NULL. */
int cache_gc(struct cache *c, uint64_t grace, uint64_t *freed, struct err *e);

struct cache_prune_opts {
	int has_older;      /* older_than is set */
	uint64_t older_than;/* seconds */
	int has_keep;       /* keep is set */
	uint64_t keep;      /* always keep the newest N (of those matching prefix) */
	const char *prefix; /* only entries whose key starts with it; NULL: all */
};
/*
 * Which entries to delete (pure): v sorted newest first; del[i] is set to
 * 1 for an entry to delete.  An entry matching the prefix is deleted when
 * it is older than older_than (if set) and not among the newest keep (if
 * set); with only keep set, everything past the newest keep goes.  An
 * entry whose manifest digest is also an entry that stays is kept (a
 * registry that deletes by digest would take both).  Returns the number
 * chosen.
 */
size_t cache_prune_select(const struct cache_entry *v, size_t n,
			  const struct cache_prune_opts *o, int64_t now, int *del);

/* ------------------------------------------------------------------ */
/* Stats: the store's log of restores and runs (cache_stats.c)          */

/*
 * Each restore and run appends one event to a log the store keeps: on an
 * oci: layout a file beside it (DIR/CACHE_STATS_LOG, reg_store_log_append:
 * appends under a lock, trimmed to the newest events); on a registry one
 * small manifest per event under its own tag (registries have no
 * compare-and-swap, so a shared log rewritten by several jobs would lose
 * events; unique tags cannot).  The log keeps the newest cache_stats_keep()
 * events: on a layout the file is rewritten when it passes 1 KiB per event
 * kept; on a registry each append deletes the event tags past that many
 * (where deletes are refused, appends stop at twice that many).  A store
 * without a log has no events.
 */
#define CACHE_STATS_LOG "ctxpack-stats.log"
#define CACHE_EVENT_ARTIFACT_TYPE "application/vnd.ctxpack.cache.event.v1"
#define CACHE_ANNOT_EVENT "io.ctxpack.cache.event" /* the event's log line */
#define CACHE_STATS_KEEP 1000
/* The longest log line; an event whose key files do not fit omits them. */
#define CACHE_EVENT_MAX 16384

enum cache_op { CACHE_OP_RESTORE = 0, CACHE_OP_RUN = 1 };

/* One event.  Strings malloc'd, owned. */
struct cache_event {
	char id[17];                 /* 16 hex, random */
	int64_t sec;                 /* when */
	long nsec;
	int op;                      /* enum cache_op */
	int result;                  /* enum cache_result */
	char *prefix;                /* the key prefix it counts under (may be "") */
	char *key;
	char *matched;               /* the key restored; NULL on a miss */
	char version[CACHE_VERSION_LEN + 1]; /* the paths' version, "" if unknown */
	char command[65];            /* run: sha256 hex of the command, else "" */
	struct cache_keyfile *files; /* run: the key files */
	size_t nfiles;
	int files_omitted;           /* run: too many to record */
};
void cache_event_release(struct cache_event *ev);

/* The events kept: $CTXPACK_STATS_KEEP (1..100000), else CACHE_STATS_KEEP. */
size_t cache_stats_keep(void);

/*
 * The log line of an event (pure; no newline) into out (reset first):
 *   v1 ID TIME OP RESULT PREFIX KEY MATCHED VERSION COMMAND [SHA256:PATH]...
 * text fields %-encoded, "-" for none ("-" itself is "%2D"), "..." for key
 * files omitted.  Longer than CACHE_EVENT_MAX with its files: without.
 */
void cache_event_format(const struct cache_event *ev, struct buf *out);
/* Parse a line (untrusted: every field checked like user input).  0, or
 * ERR_CORRUPT (message set).  ev is zeroed first. */
int cache_event_parse(struct cache_event *ev, const char *line, size_t n, struct err *e);

/* The prefix a restore counts under: the first of the restore keys that
 * key starts with, else the key itself (borrowed). */
const char *cache_event_prefix(const char *key, const char *const *prefixes, size_t n);

/*
 * Registry event tags (pure):
 *   ctxpack-stats.<ms since 1970, 13 digits>.<op r|u><result h|p|m>.
 *   <12 hex of sha256(prefix)>.<12 hex of sha256(key)>.<first 8 of id>
 * Fixed width, so they sort by time; never a cache tag.
 */
struct cache_event_tag {
	int64_t ms;
	int op;
	int result;
	char prefix_hash[13];
	char key_hash[13];
};
void cache_event_tag(const struct cache_event *ev, char out[CACHE_TAG_MAX + 1]);
/* 0 and t filled when tag is an event tag, else -1. */
int cache_event_tag_parse(const char *tag, struct cache_event_tag *t);
/* The 12 hex of sha256(s) the tags use.  out: 13 bytes. */
void cache_event_hash12(const char *s, char out[13]);

/* Counts per prefix. */
struct cache_stats_row {
	char *prefix;
	uint64_t events, hits, partial, misses;
	int64_t last_sec;            /* the newest event */
	long last_nsec;
};
struct cache_stats {
	struct cache_stats_row *rows; /* sorted by prefix (bytewise) */
	size_t n;
	uint64_t events;             /* counted */
	uint64_t skipped;            /* log entries that were not valid events */
};
void cache_stats_release(struct cache_stats *st);
/* Count one event (pure). */
void cache_stats_add(struct cache_stats *st, const char *prefix, int result,
		     int64_t sec, long nsec);

/*
 * Append ev to the store's log; its id and time are set here.  The store
 * is written: callers that must not write (--read-only) do not call it.
 */
int cache_event_record(struct cache *c, struct cache_event *ev, struct err *e);
/* Count the events of the store's log (the newest cache_stats_keep()),
 * only those whose prefix starts with only_prefix (NULL: all).  st is
 * zeroed first. */
int cache_stats_read(struct cache *c, const char *only_prefix, struct cache_stats *st,
		     struct err *e);
/* The newest logged run of key that was not a hit: 1 with ev filled, 0
 * when there is none. */
int cache_event_last_miss(struct cache *c, const char *key, struct cache_event *ev,
			  struct err *e);

/* ------------------------------------------------------------------ */
/* Why a run missed (pure)                                             */

enum cache_why_kind { CACHE_WHY_CHANGED = 0, CACHE_WHY_ADDED, CACHE_WHY_REMOVED };

struct cache_why_item {
	int kind;                    /* enum cache_why_kind */
	const char *path;            /* borrowed from the lists compared */
	const char *was;             /* sha256 hex, NULL when added */
	const char *now;             /* NULL when removed */
};
struct cache_why {
	struct cache_why_item *items; /* changed, then added, then removed,
					 each in list order */
	size_t n;
	int order_changed;           /* the same files and contents in another
					order (the key hashes them in order) */
};
/* Compare the key files an entry recorded (was) with those of the miss
 * (now): by path, a path given twice matched in turn. */
void cache_why_diff(const struct cache_keyfile *was, size_t nwas,
		    const struct cache_keyfile *now, size_t nnow, struct cache_why *w);
void cache_why_release(struct cache_why *w);
/*
 * The entry a missed key is best compared with, from v (newest first):
 * the entry of matched when given and there (a run's warm start), else
 * the newest whose key is not key (NULL: any) and that was created no
 * later than before_sec (0: any time).  -1 when there is none.
 */
long cache_why_pick(const struct cache_entry *v, size_t n, const char *key,
		    const char *matched, int64_t before_sec);

#endif
