/*
 * frames: incremental packing (issue 7).  A local store of compressed
 * frames and of archive manifests, so that a pack of an unchanged context
 * compresses nothing and a pack after one edit compresses only the frames
 * that hold it, with the bytes of a cold pack either way.  The frame
 * store module (src/frames/); uses pack (the frame plan, the workers and
 * the pack_frame_cache hooks) and the content hashes the index puts in
 * walk_entry.hash.  docs/archive-format.md, "Incremental packing", is the
 * user's view.
 *
 * Usage (what `ctxpack pack` does):
 *   struct fc_opts fo = {NULL, 0, versions};    (pack_lib_versions())
 *   fc_open(&c, &fo, &e);                        before the walk
 *   spec = fc_spec_start(c, dir, &po, out_fd);   may be NULL
 *   wo.seen = fc_spec_seen, wo.seen_ctx = spec;  when not NULL
 *   snap = idx_snap_new(index_dir);              wo.replay = idx_snap_replay
 *   walk_run(&wo, &w, &e);
 *   if (fc_prepare(&w, index_dir, c, snap, &x, &ist, &warn, &e) > 0)
 *           fc_spec_cancel(spec), fc_close(c), spec = c = NULL (pack cold)
 *   pack_list_build(&l, &w, &e);
 *   fc_pack_write(c, spec, &l, &po, sink, ctx, out_fd, &res, &st, &e);
 *   fc_maintain(c, &st);                         after the output is done
 *   idx_store_deferred(x, ...); idx_snap_store(snap, &w);
 *   fc_close(c); idx_close(x); idx_snap_free(snap);
 *
 * The store, under DIR (default $XDG_CACHE_HOME/ctxpack):
 *
 *   frames/ab/<32 hex>   one encoded frame (a zstd frame or gzip member),
 *                        named by its key, with a header holding the key,
 *                        the payload length and the XXH3-128 of the payload;
 *   archives/<32 hex>    one archive manifest, named by the archive key:
 *                        its size, entry count, sha256 and the time its
 *                        pack started, then per frame its key, length, the
 *                        frame file's stamp (inode, mtime) when its bytes
 *                        were last checked and the sha256 state at its
 *                        start, then per frame its first entry's path (for
 *                        the look-ahead, fc_spec_seen); a checksum;
 *   archives/last-<hex>  the archive last packed from a context root with
 *                        given settings;
 *   frames/usage         the estimated size of the store.
 *
 * Keys are XXH3-128 (a local cache key; never an OCI digest).  A frame key
 * covers the settings hash (format version, codec, level, mtime, library
 * versions, name prefix), the frame's split offsets, and for each entry it touches the
 * normalized header fields (path, type, archive mode, size, link target,
 * device number) and the content hash.  The archive key covers the
 * settings hash and every entry of the list in order (so the Dockerfile
 * and ignore-file additions too).  A key is only made when every regular
 * file and symlink in its range has walk_entry.hashed set.
 *
 * Nothing from the store is sent unchecked: a frame file is either read
 * and checked (size, header, key, payload checksum) or, when its inode and
 * mtime are still those recorded when it was last checked (the store never
 * writes a file in place, and the LRU touch sets atime only), trusted.
 * A damaged file is removed and its frame compressed again.  Files are
 * written to a temporary name and renamed, so concurrent processes never
 * see a partial file (two writers of one key write the same bytes).  They
 * are not fsync'd: after a crash a torn file fails its checks like any
 * other damage.
 *
 * The store is bounded (FC_DEFAULT_MAX, $CTXPACK_PACK_CACHE_MAX, or the
 * opts): every use sets the file's atime, and fc_maintain() removes the
 * least recently used files when a pack added bytes and the estimate went
 * over the bound, down to 90% of it.
 *
 * A frame is stored only when it is safe: every regular file in it still
 * has the stat (size, mtime, ctime, inode) that its content hash was taken
 * with, and its ctime is older than the racy window before fc_open (the
 * index's rule): a file edited between the index pass and the packer's
 * read would otherwise put new bytes under the old content's key.  The
 * manifest is written only when every frame of the archive is stored.
 *
 * Nothing here prints; problems that do not stop the pack (an unwritable
 * store) are collected in fc_warning().
 */
#ifndef CTXPACK_FRAMES_H
#define CTXPACK_FRAMES_H

#include <stddef.h>
#include <stdint.h>

#include "ctxpack/index.h"
#include "ctxpack/pack.h"
#include "ctxpack/util.h"
#include "ctxpack/walk.h"

#define FC_DEFAULT_MAX ((uint64_t)2 << 30)  /* 2 GiB */
#define FC_KEY_LEN 16
/* The frame file header: magic(8) key(16) length(8) xxh3-128(16) check(8). */
#define FC_FRAME_HDR 56
/* Temporary files older than this are left over from a killed process. */
#define FC_TMP_STALE_S 3600

struct fc;

struct fc_opts {
	const char *dir;       /* NULL: cache_home() */
	uint64_t max_bytes;    /* 0: $CTXPACK_PACK_CACHE_MAX, else FC_DEFAULT_MAX */
	/* What else decides the bytes for the same content and settings: the
	 * libraries' versions (pack_lib_versions()).  Part of every key. */
	const char *versions;
};

/*
 * Open the store (creating DIR/frames and DIR/archives).  Also notes the
 * time, for the racy rule above: open it before idx_update.  Returns 0
 * and sets *out, or an err naming the directory (*out NULL); a bad
 * $CTXPACK_PACK_CACHE_MAX is ERR_USAGE.
 */
int fc_open(struct fc **out, const struct fc_opts *o, struct err *e);
void fc_close(struct fc *c);   /* NULL is a no-op */
const char *fc_dir(const struct fc *c);
/* Warnings for the user ("cannot store a frame: ..."), or NULL; borrowed
 * until fc_close. */
const char *fc_warning(const struct fc *c);

/*
 * ERR_USAGE when the store directory is root or below it (it would be
 * packed while it changes).  root is a real path (walk_result.root).
 */
int fc_check_dir(const struct fc *c, const char *root, struct err *e);

enum fc_path {
	FC_PATH_NONE = 0,      /* no cache */
	FC_PATH_ARCHIVE = 1,   /* the whole archive from the store */
	FC_PATH_ASSEMBLE = 2,  /* the last archive of the context and a few new frames */
	FC_PATH_FRAMES = 3,    /* pack_write, each frame copied or compressed */
};

struct fc_stats {
	int path;                    /* enum fc_path: how the archive was made */
	int archive_reused;          /* 1: served whole from a manifest */
	int archive_stored;          /* 1: a manifest was written */
	uint64_t frames;             /* frames in the archive */
	uint64_t frames_reused;      /* copied from the store */
	uint64_t frames_compressed;  /* encoded in this run */
	uint64_t frames_stored;      /* written to the store */
	uint64_t frames_damaged;     /* stored frames that failed a check */
	uint64_t frames_unsafe;      /* not stored: a file changed or is too recent */
	uint64_t frames_unkeyed;     /* no key: an entry without a content hash */
	uint64_t bytes_reused;       /* encoded bytes copied from the store */
	uint64_t bytes_hashed;       /* archive bytes run through sha256 (the rest
					were known from the last archive) */
	uint64_t bytes_early;        /* archive bytes copied while walking and kept */
	uint64_t bytes_ahead;        /* of those, bytes hashed and written while walking
					(the look-ahead after a change) */
	uint64_t seen_changed;       /* entries the walk saw changed since the last
					archive's pack started (the look-ahead's cue) */
	uint64_t evicted;            /* files removed by fc_maintain */
	uint64_t evicted_bytes;
	uint64_t store_bytes;        /* the store's size after fc_maintain (0: not scanned) */
};

/*
 * The cache side of `ctxpack pack` and `ctxpack build`, after the walk:
 * check that neither the store c (opened with fc_open before the walk)
 * nor the index (index_dir as for idx_open) lies in w->root, open the
 * index and bring it up to date (idx_update: the content hashes of w),
 * unless the walk was replayed unchanged from its snapshot (snap, from
 * idx_snap_new, may be NULL) and the index needed no rebuild: every hash
 * is known then.
 * Returns 0 with *xp set; or 1 with the reason appended to warn when the
 * cache is unusable in a way that only costs speed (the index cannot be
 * opened, or a default location lies inside the context): the caller
 * then cancels any fc_spec, closes c and packs cold.  Errors: an index or
 * store directory given explicitly (index_dir, $CTXPACK_INDEX,
 * fc_opts.dir) inside the context (ERR_USAGE), and idx_update's failures
 * (a file that cannot be read or keeps changing; the message names it).
 * ist may be NULL; c may be NULL (the index alone: `cache save`).
 */
int fc_prepare(struct walk_result *w, const char *index_dir, struct fc *c,
	       const struct idx_snap *snap, struct idx **xp, struct idx_stats *ist,
	       struct buf *warn, struct err *e);

/*
 * Speculative reuse: before the walk, start copying the last archive
 * packed from DIR with these settings to out_fd on a thread, so that the
 * copy overlaps the walk and the index pass (on two cores an unchanged
 * context then costs about the walk alone).  Only when out_fd is a
 * regular file, not O_APPEND, positioned at its end: the caller's own
 * output, which can be cut back to where it was.  fc_pack_write keeps the
 * part of the copy that is the new archive's beginning and cuts the rest.
 * Returns NULL when there is nothing to copy or out_fd does not qualify.
 * The caller must not write to out_fd until fc_pack_write or
 * fc_spec_cancel.
 */
struct fc_spec;
struct fc_spec *fc_spec_start(struct fc *c, const char *dir, const struct pack_opts *o,
			      int out_fd);
/* Stop, cut out_fd back to where it was, and free (the pack failed or
 * runs without the cache).  NULL is a no-op. */
void fc_spec_cancel(struct fc_spec *s);
/*
 * The walk's seen() hook (walk_opts.seen, ctx the spec): an entry changed
 * since the last archive was made starts the look-ahead, which makes the
 * frame holding it again and hashes and writes the rest of the archive
 * while the walk goes on; fc_pack_write takes that result only when the
 * keys show it is this archive.
 */
void fc_spec_seen(void *ctx, const struct walk_entry *we);

/*
 * Write the archive of l to the sink, exactly as pack_write does (the same
 * bytes, sha256 and result), reusing what the store holds.  Paths, tried
 * in order (st->path says which one made the archive):
 *  0. spec (from fc_spec_start, or NULL; always consumed): when it copied
 *     this very archive, done; else the frames it copied that this archive
 *     starts with are kept and the rest cut away;
 *  1. FC_PATH_ARCHIVE: the archive key has a manifest whose frames are all
 *     there: they are sent (copied straight to out_fd when >= 0: the fd
 *     the sink writes to, holding nothing unwritten; else handed to
 *     sink_file when not NULL; else through the sink) and the stored
 *     sha256 is reported;
 *  2. FC_PATH_ASSEMBLE: the context's last archive (archives/last-*) has a
 *     manifest, and at most a few of this archive's frames are missing
 *     from the store: those are compressed, the rest copied; the frames
 *     before the first one that differs from the last archive's are not
 *     read, and the sha256 resumes at that frame from the saved state;
 *  3. FC_PATH_FRAMES: pack_write with frame hooks: a frame whose key is in
 *     the store is copied, the others are compressed and stored.
 * Then the manifest is written when every frame is in the store.  A
 * frame found damaged on the way after earlier ones reached the sink
 * makes the next path skip what was already sent, so the output is whole
 * either way.
 *
 * Fills the content hash of l's added entries (the Dockerfile or ignore
 * file the walk excluded) first, which is why l is not const.  c NULL
 * means pack_write with no cache.  Errors are pack_write's (or the
 * sink's, or cutting back what spec copied); store failures are only
 * warnings.  st may be NULL.
 */
int fc_pack_write(struct fc *c, struct fc_spec *spec, struct pack_list *l,
		  const struct pack_opts *o, pack_sink_fn sink, pack_sink_file_fn sink_file,
		  void *sink_ctx, int out_fd, struct pack_result *res, struct fc_stats *st,
		  struct err *e);

/*
 * Keep the size bound: when this handle stored bytes and the store's
 * estimated size (DIR/frames/usage, kept up to date by every process) is
 * over the bound, scan it and remove the least recently used files down to
 * 90% of the bound; also remove temporaries older than FC_TMP_STALE_S.
 * Never fails (a cache); st may be NULL.
 */
void fc_maintain(struct fc *c, struct fc_stats *st);

/* Scan and evict now, whatever the estimate, down to max bytes (for
 * tests; fc_maintain uses it).  Returns the bytes left. */
uint64_t fc_evict(struct fc *c, uint64_t max, struct fc_stats *st);

/* "2G", "512M", "64k", "1000000" (binary units, case-insensitive, an
 * optional trailing B/iB) -> bytes; -1 when malformed or 0. */
int fc_parse_size(const char *s, uint64_t *out);

/*
 * Lower level, for the tests.
 */
/* The settings hash: format version, codec, effective level, mtime,
 * versions, and the name prefix when there is one. */
void fc_settings_hash(const struct pack_opts *o, const char *versions,
		      unsigned char out[FC_KEY_LEN]);
/* The key of frame f of l; -1 when an entry in it has no content hash. */
int fc_frame_key(const struct pack_list *l, const struct pack_frame *f,
		 const unsigned char settings[FC_KEY_LEN], unsigned char key[FC_KEY_LEN]);
/* The key of the whole archive of l; -1 as above. */
int fc_archive_key(const struct pack_list *l, const unsigned char settings[FC_KEY_LEN],
		   unsigned char key[FC_KEY_LEN]);

/* Read the frame stored under key, appending its payload to out: 1 when
 * found and intact, 0 when absent, damaged (the file is then removed and
 * *damaged set) or larger than out may grow. */
int fc_frame_get(struct fc *c, const unsigned char key[FC_KEY_LEN], struct buf *out,
		 int *damaged);
/* Store a frame (temporary file + rename).  Returns 0 or an err. */
int fc_frame_put(struct fc *c, const unsigned char key[FC_KEY_LEN], const void *p,
		 size_t n, struct err *e);
/* The path of a key's frame file or manifest (malloc'd). */
char *fc_frame_path(const struct fc *c, const unsigned char key[FC_KEY_LEN]);
char *fc_archive_path(const struct fc *c, const unsigned char key[FC_KEY_LEN]);

#endif
