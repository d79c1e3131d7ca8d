/*
 * pack internals shared by tar.c (entries and headers), zst.c (the codecs)
 * and pack_run.c (the worker pool).  Not for other modules.
 */
#ifndef CTXPACK_PACK_INTERNAL_H
#define CTXPACK_PACK_INTERNAL_H

#include "ctxpack/pack.h"

struct archive;
struct archive_entry;

/* One worker's reusable state: a codec context, a read buffer, and the
 * state of the frame being encoded.  Used by one thread at a time. */
struct pack_worker {
	int compress;           /* enum pack_compress */
	int level;              /* effective level */
	int64_t mtime;
	int normalize_modes;     /* the list's, for the frame being encoded */
	char *prefix;           /* pack_opts.prefix (a copy), or NULL */
	size_t prefix_len;
	const int *stop;        /* set by another thread to abandon the frame */
	const struct pack_frame_cache *cache; /* its content() hook, or NULL */

	void *zcctx;            /* ZSTD_CCtx (zstd) */
	struct buf zin;         /* the frame's tar bytes, gathered (zstd) */
	int huge;               /* zin on huge pages */
	struct archive_entry *ae;
	char *rbuf;             /* read buffer, PACK_READ_BUF bytes */
	char *zbuf;             /* PACK_READ_BUF zeros, for holes (lazily) */
	struct buf name;        /* scratch for pathnames */
	struct buf link;        /* scratch for link targets */
	int dirfd;              /* the directory last opened from (or -1) */
	int dir_root;           /* ... below this root fd */
	struct buf dir;         /* ... its path relative to the root */

	/* the frame in progress */
	struct buf *out;        /* encoded bytes are appended here */
	struct archive *tar;    /* this frame's tar writer (lazily created) */
	struct archive *gz;     /* this frame's gzip member writer */
	uint64_t tar_bytes;     /* tar bytes fed to the codec */
	uint64_t entry_left;    /* data bytes the tar writer still expects */
	int discard;            /* drop what the tar writer emits (closing) */
	int gz_discard;         /* same for the gzip writer */
	struct err *e;          /* where callbacks record their failure */
};

#define PACK_READ_BUF (PACK_SMALL_FILE + 4096)

/* zst.c: the codecs.  begin starts a frame (zstd frame, gzip member or
 * stored bytes) appending to w->out; put feeds tar bytes; end finishes it. */
int pack_codec_init(struct pack_worker *w, struct err *e);
void pack_codec_release(struct pack_worker *w);
int pack_codec_begin(struct pack_worker *w, struct err *e);
int pack_codec_put(struct pack_worker *w, const void *p, size_t n, struct err *e);
int pack_codec_end(struct pack_worker *w, struct err *e);
/* Drop a half-encoded frame (after a failure). */
void pack_codec_abort(struct pack_worker *w);

#endif
