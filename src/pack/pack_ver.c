/*
 * pack_ver: what besides the content and the options decides the bytes of
 * an archive: the versions of the libraries that write them (libarchive
 * writes the headers and, with zlib, the gzip members; libzstd the zstd
 * frames).  Part of every cache key of incremental packing (issue 7).
 */
#include "ctxpack/pack.h"

#include <archive.h>
#include <zstd.h>

void pack_lib_versions(struct buf *out)
{
	buf_addf(out, "ctxpack-pack/%d %s; zstd %s", PACK_FORMAT_VERSION,
		 archive_version_details(), ZSTD_versionString());
}
