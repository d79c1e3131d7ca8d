/*
 * zst: the frame codecs.  Every frame is encoded on its own, from a fresh
 * state, so its bytes depend only on its tar bytes and the settings:
 *
 *  zstd  one zstd frame per pack frame, libzstd used directly with every
 *        parameter that changes the bytes pinned: the level, checksum on,
 *        no content size field, no dictionary ID, nbWorkers 0 (single-thread
 *        mode; its output differs from multi-thread mode, and parallelism
 *        comes from encoding several frames at once instead).  The frame's
 *        tar bytes are gathered first and compressed in one call
 *        (ZSTD_compress2): with the whole input at hand libzstd needs no
 *        window buffer of its own, copies nothing, and knows the size, which
 *        is about 7% faster and a little smaller than streaming.  Frames are
 *        at most PACK_FRAME_MAX plus one entry's headers, so this bounds the
 *        gathering buffer too.  Concatenated frames are one valid zstd
 *        stream.
 *  gzip  one gzip member per pack frame, through libarchive's gzip filter
 *        with the timestamp off (header mtime 0, no name).  Concatenated
 *        members are one valid gzip stream (RFC 1952).
 *  none  the tar bytes as they are.
 *
 * The output of one codec context must not depend on how its input is cut
 * into calls; test_pack checks that.
 */
#include "pack_internal.h"
#include "zstd_internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* bytes of the gathered input kept resident between frames: on huge pages
 * 2 MiB, a typical frame's (1-2 MiB: a frame then faults and zeroes
 * no page again), else 1 MiB */
#define ZIN_KEEP(w) ((size_t)((w)->huge ? 2 : 1) << 20)
/* a frame's tar bytes: at most PACK_FRAME_MAX plus one entry's headers
 * and (small files being whole) up to PACK_SMALL_FILE more */
#define ZIN_SIZE (2 * (size_t)PACK_FRAME_MAX + ((size_t)1 << 20))

static void *zmem_alloc(void *opaque, size_t n)
{
	(void)opaque;
	return xmalloc_big(n);
}

static void zmem_free(void *opaque, void *p)
{
	(void)opaque;
	free(p);
}

static const ZSTD_customMem zmem = {zmem_alloc, zmem_free, NULL};

ZSTD_CCtx *pack_zstd_cctx(int huge)
{
	return huge ? ZSTD_createCCtx_advanced(zmem) : ZSTD_createCCtx();
}

ZSTD_DStream *pack_zstd_dstream(void)
{
	return ZSTD_createDStream_advanced(zmem);
}

static int zerr(struct err *e, const char *what, size_t r)
{
	return err_set(e, ERR_FAIL, "zstd: %s: %s", what, ZSTD_getErrorName(r));
}

int pack_codec_init(struct pack_worker *w, struct err *e)
{
	ZSTD_CCtx *c;
	size_t r;

	if (w->compress != PACK_ZSTD)
		return 0;
	c = pack_zstd_cctx(w->huge);
	if (!c)
		return err_set(e, ERR_NOMEM, "zstd: cannot create a compression context");
	w->zcctx = c;
	if (ZSTD_isError(r = ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, w->level)) ||
	    ZSTD_isError(r = ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)) ||
	    ZSTD_isError(r = ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0)) ||
	    ZSTD_isError(r = ZSTD_CCtx_setParameter(c, ZSTD_c_dictIDFlag, 0)) ||
	    ZSTD_isError(r = ZSTD_CCtx_setParameter(c, ZSTD_c_nbWorkers, 0)))
		return zerr(e, "setting parameters", r);
	/* the gathering buffer is mapped once at its largest and never
	 * reallocated: pages are touched as frames need them (and given back
	 * after a big one), and malloc's arenas never hold a stale copy */
	if (buf_map(&w->zin, ZIN_SIZE, w->huge))
		return err_errno(e, "cannot map %zu bytes", (size_t)ZIN_SIZE);
	return 0;
}

void pack_codec_release(struct pack_worker *w)
{
	ZSTD_freeCCtx(w->zcctx);
	w->zcctx = NULL;
	if (w->compress == PACK_ZSTD)
		buf_unmap(&w->zin);
	else
		buf_release(&w->zin);
	pack_codec_abort(w);
}

static la_ssize_t gz_write_cb(struct archive *a, void *ctx, const void *p, size_t n)
{
	struct pack_worker *w = ctx;

	if (w->gz_discard)
		return (la_ssize_t)n;
	if (buf_add(w->out, p, n)) {
		err_set(w->e, ERR_NOMEM, "out of memory for a gzip frame");
		return -1;
	}
	return (la_ssize_t)n;
}

static int gz_begin(struct pack_worker *w, struct err *e)
{
	struct archive *a = archive_write_new();
	struct archive_entry *ae = NULL;
	char level[8];
	int r;

	if (!a)
		return err_set(e, ERR_NOMEM, "gzip: cannot create a writer");
	snprintf(level, sizeof(level), "%d", w->level);
	w->gz = a;
	w->e = e;
	if (archive_write_add_filter_gzip(a) != ARCHIVE_OK ||
	    archive_write_set_filter_option(a, "gzip", "timestamp", NULL) != ARCHIVE_OK ||
	    archive_write_set_filter_option(a, "gzip", "compression-level", level) != ARCHIVE_OK ||
	    archive_write_set_format_raw(a) != ARCHIVE_OK ||
	    archive_write_set_bytes_per_block(a, 0) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open2(a, w, NULL, gz_write_cb, NULL, NULL) != ARCHIVE_OK)
		goto fail;
	ae = archive_entry_new();
	if (!ae)
		goto fail;
	archive_entry_set_pathname(ae, "frame");
	archive_entry_set_filetype(ae, AE_IFREG);
	r = archive_write_header(a, ae);
	archive_entry_free(ae);
	if (r != ARCHIVE_OK)
		goto fail;
	return 0;
fail:
	err_set(e, ERR_FAIL, "gzip: %s",
		archive_error_string(a) ? archive_error_string(a) : "cannot set up the filter");
	pack_codec_abort(w);
	return e->code;
}

int pack_codec_begin(struct pack_worker *w, struct err *e)
{
	size_t r;

	switch (w->compress) {
	case PACK_ZSTD:
		r = ZSTD_CCtx_reset(w->zcctx, ZSTD_reset_session_only);
		if (ZSTD_isError(r))
			return zerr(e, "reset", r);
		buf_reset(&w->zin);
		return 0;
	case PACK_GZIP:
		return gz_begin(w, e);
	}
	return 0;
}

/* The gathered tar bytes of the frame, compressed in one call. */
static int z_end(struct pack_worker *w, struct err *e)
{
	size_t bound = ZSTD_compressBound(w->zin.len), r;

	if (buf_grow(w->out, bound))
		return err_set(e, ERR_NOMEM, "out of memory for a zstd frame");
	r = ZSTD_compress2(w->zcctx, w->out->data + w->out->len, w->out->cap - w->out->len - 1,
			   w->zin.data, w->zin.len);
	if (ZSTD_isError(r))
		return zerr(e, "compressing", r);
	buf_setlen(w->out, w->out->len + r);
	/* keep the pages of a small frame's input, give back those of a big
	 * one: resident memory follows the frames in flight */
	buf_trim(&w->zin, w->zin.len, ZIN_KEEP(w));
	return 0;
}

int pack_codec_put(struct pack_worker *w, const void *p, size_t n, struct err *e)
{
	switch (w->compress) {
	case PACK_ZSTD:
		if (buf_add(&w->zin, p, n))
			return err_set(e, ERR_NOMEM, "out of memory for a zstd frame");
		return 0;
	case PACK_GZIP:
		while (n) {
			la_ssize_t k = archive_write_data(w->gz, p, n);

			if (k <= 0) {
				if (!err_isset(e))
					err_set(e, ERR_FAIL, "gzip: %s",
						archive_error_string(w->gz) ?
						archive_error_string(w->gz) : "write failed");
				return e->code;
			}
			p = (const char *)p + k;
			n -= (size_t)k;
		}
		return 0;
	}
	if (buf_add(w->out, p, n))
		return err_set(e, ERR_NOMEM, "out of memory for a frame");
	return 0;
}

int pack_codec_end(struct pack_worker *w, struct err *e)
{
	int r;

	switch (w->compress) {
	case PACK_ZSTD:
		return z_end(w, e);
	case PACK_GZIP:
		w->e = e;
		r = archive_write_close(w->gz);
		if (r != ARCHIVE_OK && !err_isset(e))
			err_set(e, ERR_FAIL, "gzip: %s", archive_error_string(w->gz) ?
				archive_error_string(w->gz) : "close failed");
		archive_write_free(w->gz);
		w->gz = NULL;
		return r == ARCHIVE_OK ? 0 : e->code;
	}
	return 0;
}

/* Closed with its output discarded rather than archive_write_fail()ed,
 * which would leak the client filter's state (libarchive 3.6). */
void pack_codec_abort(struct pack_worker *w)
{
	if (w->gz) {
		w->gz_discard = 1;
		archive_write_close(w->gz);
		archive_write_free(w->gz);
		w->gz = NULL;
		w->gz_discard = 0;
	}
}
