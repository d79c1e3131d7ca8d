/*
 * The environment, read once (util.h: struct env_vars).  The table below is
 * the whole list of variables ctxpack reads; scripts/check-includes keeps
 * getenv out of every other file.
 */
#include "ctxpack/util.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* empty: set but empty is a value of its own (as the program that reads
 * it takes it); for the others it is unset, NULL */
static const struct {
	const char *name;
	size_t off;
	int empty;
} vars[] = {
#define V(name, field) { name, offsetof(struct env_vars, field), 0 }
#define E(name, field) { name, offsetof(struct env_vars, field), 1 }
	V("HOME", home),
	V("XDG_CACHE_HOME", xdg_cache_home),
	E("PATH", path),                           /* "": the current directory */
	V("LD_LIBRARY_PATH", ld_library_path),
	V("LD_PRELOAD", ld_preload),
	E("SOURCE_DATE_EPOCH", source_date_epoch), /* "": an error */
	V("CI", ci),
	V("GITHUB_OUTPUT", github_output),
	V("REGISTRY_AUTH_FILE", registry_auth_file),
	V("DOCKER_CONFIG", docker_config),
	V("DOCKER_HOST", docker_host),
	E("DOCKER_CONTEXT", docker_context),       /* "": no context, no DOCKER_HOST */
	V("DOCKER_BUILDKIT", docker_buildkit),
	V("CTXPACK_INDEX", index),
	V("CTXPACK_STORE", store),
	V("CTXPACK_PACK_CACHE_MAX", pack_cache_max),
	V("CTXPACK_STATS_KEEP", stats_keep),
	V("CTXPACK_RESTORE_THREADS", restore_threads),
	V("CTXPACK_IDLE_TIMEOUT", idle_timeout),
	V("CTXPACK_CHUNK_SIZE", chunk_size),
	V("CTXPACK_MONOLITHIC_MAX", monolithic_max),
	V("CTXPACK_OVERLAP_MIN", overlap_min),
	V("CTXPACK_TEST_HASH_DELAY_MS", test_hash_delay_ms),
#undef V
#undef E
};

static struct env_vars current;
static int loaded;

void env_load(void)
{
	size_t i;

	for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		char **slot = (char **)((char *)&current + vars[i].off);
		const char *v = getenv(vars[i].name);

		free(*slot);
		*slot = v && (*v || vars[i].empty) ? xstrdup(v) : NULL;
	}
	loaded = 1;
}

const struct env_vars *env_get(void)
{
	if (!loaded)
		env_load();
	return &current;
}

const char *env_value(const char *name)
{
	const struct env_vars *ev = env_get();
	size_t i;

	for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		if (!strcmp(vars[i].name, name))
			return *(const char *const *)((const char *)ev + vars[i].off);
	/* a name missing from the table is a bug here, not a user's error */
	fprintf(stderr, "ctxpack: internal error: %s is not in env.c's table\n", name);
	abort();
}
