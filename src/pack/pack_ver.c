/*
 * pack_ver: what besides the content and the options decides the bytes of
 * an archive: the versions of the libraries that write them (libarchive
 * writes the headers and, with zlib, the gzip members; libzstd the zstd
 * frames).  Part of every cache key of incremental packing (issue 7).
 * Also the versions `ctxpack --version` prints for this module.
 */
#include "ctxpack/pack.h"

#include <string.h>

#include <archive.h>
#include <pthread.h>
#include <stdio.h>
#include <zstd.h>

/* archive_version_details() allocates a new string at every call (3.6),
 * which is never freed: asked once per process (`ctxpack image` needs it
 * per run of img_build, the tests many times). */
static char versions[512];
static pthread_once_t versions_once = PTHREAD_ONCE_INIT;

static void versions_init(void)
{
	snprintf(versions, sizeof(versions), "ctxpack-pack/%d %s; zstd %s",
		 PACK_FORMAT_VERSION, archive_version_details(), ZSTD_versionString());
}

void pack_lib_versions(struct buf *out)
{
	pthread_once(&versions_once, versions_init);
	buf_addstr(out, versions);
}

void pack_lib_info(lib_info_fn fn, void *arg)
{
	const char *run = archive_version_string(), *details = archive_version_details();
	const char *v = strchr(run, ' ');
	size_t n;

	/* "libarchive 3.6.2" and "libarchive 3.6.2 zlib/1.2.13 liblzma/..." */
	v = v ? v + 1 : run;
	n = strlen(run);
	details = !strncmp(details, run, n) && details[n] == ' ' ? details + n + 1 : NULL;
	fn(arg, "libarchive", v,
	   strcmp(v, ARCHIVE_VERSION_ONLY_STRING) ? ARCHIVE_VERSION_ONLY_STRING : NULL,
	   details && *details ? details : NULL);
	fn(arg, "libzstd", ZSTD_versionString(),
	   strcmp(ZSTD_versionString(), ZSTD_VERSION_STRING) ? ZSTD_VERSION_STRING : NULL, NULL);
}
