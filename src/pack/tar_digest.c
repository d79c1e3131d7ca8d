/*
 * tar_digest: the sha256 of the tar inside an archive of ours, from the
 * archive's bytes.  An OCI image config lists each layer's "diff_id", the
 * digest of its uncompressed tar, beside the compressed blob's digest in
 * the manifest; the packer's workers encode frames in parallel, so the
 * tar bytes are never in order in one place.  The sink sees the encoded
 * frames in order, and decoding them again costs less than the encoding
 * (inflate and zstd decode several hundred MB/s a core, sha256 with the
 * SHA extensions 1.7 GB/s), on the sink's thread while the workers
 * compress.
 *
 * zstd: ZSTD_decompressStream reads concatenated frames as one stream.
 * gzip: one inflate per member (windowBits 16 + 15: gzip wrapping), reset
 * at each member's end when more bytes follow.  zlib is used directly:
 * libarchive's read side pulls its input, the sink pushes it.
 */
#include "ctxpack/pack.h"
#include "zstd_internal.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define OUT_BUF (128u << 10)
/* our frames are at most a few MiB of tar: a window far larger than
 * that is not ours */
#define WINDOW_LOG_MAX 27

struct pack_tar_digest {
	int compress;
	struct sha256 sha;
	uint64_t tar_bytes;
	unsigned char *out;
	ZSTD_DStream *zd;
	z_stream z;
	int z_init;
	int mid;       /* inside a zstd frame or gzip member */
};

struct pack_tar_digest *pack_tar_digest_new(int compress, struct err *e)
{
	struct pack_tar_digest *d = xcalloc(1, sizeof(*d));

	d->compress = compress;
	sha256_init(&d->sha, 0);
	d->out = xmalloc(OUT_BUF);
	if (compress == PACK_ZSTD) {
		size_t r;

		d->zd = pack_zstd_dstream();
		if (!d->zd) {
			err_set(e, ERR_NOMEM, "zstd: cannot create a decompression context");
			goto fail;
		}
		r = ZSTD_DCtx_setParameter(d->zd, ZSTD_d_windowLogMax, WINDOW_LOG_MAX);
		if (ZSTD_isError(r)) {
			err_set(e, ERR_FAIL, "zstd: %s", ZSTD_getErrorName(r));
			goto fail;
		}
	} else if (compress == PACK_GZIP) {
		if (inflateInit2(&d->z, 16 + MAX_WBITS) != Z_OK) {
			err_set(e, ERR_NOMEM, "zlib: cannot set up inflate");
			goto fail;
		}
		d->z_init = 1;
	}
	return d;
fail:
	pack_tar_digest_free(d);
	return NULL;
}

void pack_tar_digest_free(struct pack_tar_digest *d)
{
	if (!d)
		return;
	ZSTD_freeDStream(d->zd);
	if (d->z_init)
		inflateEnd(&d->z);
	free(d->out);
	free(d);
}

static void take(struct pack_tar_digest *d, const void *p, size_t n)
{
	sha256_update(&d->sha, p, n);
	d->tar_bytes += n;
}

static int zstd_update(struct pack_tar_digest *d, const void *p, size_t n, struct err *e)
{
	ZSTD_inBuffer in = {p, n, 0};

	while (in.pos < in.size) {
		ZSTD_outBuffer ob = {d->out, OUT_BUF, 0};
		size_t r = ZSTD_decompressStream(d->zd, &ob, &in);

		if (ZSTD_isError(r))
			return err_set(e, ERR_CORRUPT, "zstd: %s", ZSTD_getErrorName(r));
		take(d, d->out, ob.pos);
		d->mid = r != 0;
		/* a full output buffer may hold more of the frame back */
		while (ob.pos == ob.size) {
			ob.pos = 0;
			r = ZSTD_decompressStream(d->zd, &ob, &in);
			if (ZSTD_isError(r))
				return err_set(e, ERR_CORRUPT, "zstd: %s", ZSTD_getErrorName(r));
			take(d, d->out, ob.pos);
			d->mid = r != 0;
		}
	}
	return 0;
}

static int gzip_update(struct pack_tar_digest *d, const void *p, size_t n, struct err *e)
{
	d->z.next_in = (unsigned char *)(uintptr_t)p;
	d->z.avail_in = (uInt)n;
	while (d->z.avail_in) {
		int r;

		if (!d->mid) {
			/* a new member starts */
			if (inflateReset(&d->z) != Z_OK)
				return err_set(e, ERR_FAIL, "zlib: cannot reset inflate");
			d->mid = 1;
		}
		d->z.next_out = d->out;
		d->z.avail_out = OUT_BUF;
		r = inflate(&d->z, Z_NO_FLUSH);
		if (r != Z_OK && r != Z_STREAM_END && !(r == Z_BUF_ERROR && !d->z.avail_in))
			return err_set(e, ERR_CORRUPT, "gzip: %s",
				       d->z.msg ? d->z.msg : "cannot decompress");
		take(d, d->out, OUT_BUF - d->z.avail_out);
		if (r == Z_STREAM_END)
			d->mid = 0;
	}
	return 0;
}

int pack_tar_digest_update(struct pack_tar_digest *d, const void *p, size_t n,
			   struct err *e)
{
	while (n) {
		/* zlib counts in uInt */
		size_t k = n > (1u << 30) ? (1u << 30) : n;
		int r;

		switch (d->compress) {
		case PACK_ZSTD:
			r = zstd_update(d, p, k, e);
			break;
		case PACK_GZIP:
			r = gzip_update(d, p, k, e);
			break;
		default:
			take(d, p, k);
			r = 0;
		}
		if (r)
			return r;
		p = (const char *)p + k;
		n -= k;
	}
	return 0;
}

int pack_tar_digest_final(struct pack_tar_digest *d, char digest[72], uint64_t *tar_bytes,
			  struct err *e)
{
	unsigned char md[32];

	if (d->mid)
		return err_set(e, ERR_CORRUPT, "%s: the archive ends inside a %s",
			       pack_compress_name(d->compress),
			       d->compress == PACK_ZSTD ? "frame" : "member");
	sha256_final(&d->sha, md);
	memcpy(digest, "sha256:", 7);
	hex_encode(digest + 7, md, 32);
	if (tar_bytes)
		*tar_bytes = d->tar_bytes;
	return 0;
}
