/*
 * idx_ver: the versions of the libraries the cache module runs with, for
 * `ctxpack --version` (util.h, lib_info_fn).
 */
#include "ctxpack/index.h"
#include "idx_internal.h"

#include <stdio.h>
#include <string.h>

#include <lmdb.h>
/* As everywhere in this module: xxhash is compiled in, not linked. */
#define XXH_INLINE_ALL
#include <xxhash.h>

void idx_lib_info(lib_info_fn fn, void *arg)
{
	char run[32], built[32], xxh[32];
	int major, minor, patch;
	unsigned x = XXH_versionNumber();

	mdb_version(&major, &minor, &patch);
	snprintf(run, sizeof(run), "%d.%d.%d", major, minor, patch);
	snprintf(built, sizeof(built), "%d.%d.%d", MDB_VERSION_MAJOR, MDB_VERSION_MINOR,
		 MDB_VERSION_PATCH);
	fn(arg, "lmdb", run, strcmp(run, built) ? built : NULL, NULL);
	snprintf(xxh, sizeof(xxh), "%u.%u.%u", x / 10000, x / 100 % 100, x % 100);
	fn(arg, "libxxhash", xxh, NULL, "compiled in");
}
