/*
 * pack_frame_paths: the entry names a zstd frame of ours holds, read back
 * from its tar headers (for the frame store's look-ahead, which makes a
 * stored frame again from the tree); pack_frame_reader: its files' bytes,
 * for the same (issue 15).  Decompressed a piece at a time, so the frame's
 * tar bytes are never all in memory.
 */
#include "pack_internal.h"
#include "zstd_internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>
#include <string.h>

/* A frame's tar bytes are about PACK_FRAME_MAX at most; more is not
 * believed. */
#define PATHS_TAR_MAX ((size_t)PACK_FRAME_MAX * 2)

/* The stored frame's tar bytes, a piece at a time, for libarchive. */
struct unz {
	ZSTD_DStream *d;
	ZSTD_inBuffer in;
	size_t last;             /* ZSTD_decompressStream's last return */
	size_t total;
	char out[128 << 10];
};

static la_ssize_t unz_read(struct archive *a, void *ctx, const void **p)
{
	struct unz *u = ctx;
	ZSTD_outBuffer ob = {u->out, sizeof(u->out), 0};

	(void)a;
	*p = u->out;
	while (!ob.pos && u->total < PATHS_TAR_MAX) {
		if (u->in.pos == u->in.size && !u->last)
			return 0; /* the frame's end */
		u->last = ZSTD_decompressStream(u->d, &ob, &u->in);
		if (ZSTD_isError(u->last) || (!ob.pos && u->in.pos == u->in.size && u->last))
			return -1; /* damaged or truncated */
	}
	u->total += ob.pos;
	return ob.pos ? (la_ssize_t)ob.pos : -1;
}

static int frame_paths(const void *z, size_t n, int64_t max_file, char ***paths, size_t *np);

int pack_frame_paths(const void *z, size_t n, char ***paths, size_t *np)
{
	return frame_paths(z, n, INT64_MAX, paths, np);
}

int pack_frame_paths_small(const void *z, size_t n, char ***paths, size_t *np)
{
	return frame_paths(z, n, PACK_SMALL_FILE, paths, np);
}

static int frame_paths(const void *z, size_t n, int64_t max_file, char ***paths, size_t *np)
{
	struct archive *a = archive_read_new();
	struct archive_entry *ae;
	struct unz *u = xcalloc(1, sizeof(*u));
	size_t alloc = 0, i;
	int r, ret = -1;

	*paths = NULL;
	*np = 0;
	u->d = pack_zstd_dstream();
	u->in.src = z;
	u->in.size = n;
	u->last = 1;
	if (!a || !u->d)
		goto out;
	archive_read_support_format_tar(a);
	if (archive_read_open(a, u, NULL, unz_read, NULL) != ARCHIVE_OK)
		goto out;
	while ((r = archive_read_next_header(a, &ae)) == ARCHIVE_OK) {
		const char *p = archive_entry_pathname(ae);
		size_t len = p ? strlen(p) : 0;

		if (len && p[len - 1] == '/')
			len--;
		if (!len || archive_entry_size(ae) > max_file)
			goto out; /* (the rest is not decompressed) */
		if (*np == alloc) {
			alloc = alloc ? 2 * alloc : 256;
			*paths = xreallocarray(*paths, alloc, sizeof(**paths));
		}
		(*paths)[*np] = xmalloc(len + 1);
		memcpy((*paths)[*np], p, len);
		(*paths)[*np][len] = '\0';
		(*np)++;
	}
	ret = r == ARCHIVE_EOF && *np && !u->last ? 0 : -1;
out:
	if (a)
		archive_read_free(a);
	ZSTD_freeDStream(u->d);
	free(u);
	if (ret) {
		for (i = 0; i < *np; i++)
			free((*paths)[i]);
		free(*paths);
		*paths = NULL;
		*np = 0;
	}
	return ret;
}

struct pack_frame_reader {
	struct archive *a;
	struct unz *u;
	char *name;          /* the entry read ahead (its header), or NULL */
	size_t name_len;
	int64_t size;
	int file;            /* it is a regular file */
	int done;            /* the end, or an error: nothing more */
};

/* The next header into r->name, or done. */
static void reader_next(struct pack_frame_reader *r)
{
	struct archive_entry *ae;
	const char *p;

	free(r->name);
	r->name = NULL;
	if (r->done || archive_read_next_header(r->a, &ae) != ARCHIVE_OK ||
	    !(p = archive_entry_pathname(ae))) {
		r->done = 1;
		return;
	}
	r->name_len = strlen(p);
	if (r->name_len && p[r->name_len - 1] == '/')
		r->name_len--;
	r->name = xstrndup(p, r->name_len);
	r->size = archive_entry_size(ae);
	r->file = archive_entry_filetype(ae) == AE_IFREG;
}

struct pack_frame_reader *pack_frame_reader_new(const void *z, size_t n)
{
	struct pack_frame_reader *r = xcalloc(1, sizeof(*r));

	r->u = xcalloc(1, sizeof(*r->u));
	r->u->d = pack_zstd_dstream();
	r->u->in.src = z;
	r->u->in.size = n;
	r->u->last = 1;
	r->a = archive_read_new();
	if (!r->a || !r->u->d || archive_read_support_format_tar(r->a) != ARCHIVE_OK ||
	    archive_read_open(r->a, r->u, NULL, unz_read, NULL) != ARCHIVE_OK)
		r->done = 1;
	else
		reader_next(r);
	return r;
}

int pack_frame_reader_get(struct pack_frame_reader *r, const char *path, size_t plen,
			  void *dst, size_t n)
{
	int c = 1;

	/* the frame's entries before path are not asked for */
	while (!r->done && (c = walk_path_cmp(r->name, r->name_len, path, plen)) < 0)
		reader_next(r);
	if (r->done || c || !r->file || r->size < 0 || (uint64_t)r->size != n)
		return 0;
	if (archive_read_data(r->a, dst, n) != (la_ssize_t)n) {
		r->done = 1;
		return 0;
	}
	reader_next(r);
	return 1;
}

void pack_frame_reader_free(struct pack_frame_reader *r)
{
	if (!r)
		return;
	free(r->name);
	if (r->a)
		archive_read_free(r->a);
	ZSTD_freeDStream(r->u->d);
	free(r->u);
	free(r);
}
