/* The options `ctxpack pack` and `ctxpack build` share. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "cli.h"
#include "ctxpack/frames.h"
#include "ctxpack/pack.h"
#include "ctxpack/walk.h"

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
	uint64_t v;

	if (parse_u64(s, &v) || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

int cli_pack_opt(const struct cli_cmd *cmd, int c, const char *arg,
		 const struct cli_pack_args *a)
{
	struct err e = ERR_INIT;
	unsigned u;

	switch (c) {
	case 'f': a->wo->dockerfile = arg; return 1;
	case OPT_PACK_IGNORE_FILE: a->wo->ignore_file = arg; return 1;
	case OPT_PACK_COMPRESS:
		if (pack_parse_compress(arg, &a->po->compress, &e))
			cli_usage_error(cmd, "%s", e.msg);
		return 1;
	case OPT_PACK_LEVEL:
		if (parse_uint(arg, 1000, &u) || u == 0)
			cli_usage_error(cmd, "--level takes a positive number, not '%s'", arg);
		a->po->level = (int)u;
		return 1;
	case OPT_PACK_THREADS:
		if (parse_uint(arg, PACK_MAX_THREADS, &u) || u == 0)
			cli_usage_error(cmd, "--threads takes 1 to %d, not '%s'",
					PACK_MAX_THREADS, arg);
		a->po->threads = u;
		return 1;
	case OPT_PACK_INDEX:
		if (!*arg)
			cli_usage_error(cmd, "--index needs a directory");
		*a->index_dir = arg;
		return 1;
	case OPT_PACK_NO_CACHE:
		*a->no_cache = 1;
		return 1;
	case OPT_PACK_NORMALIZE_MODES:
		a->wo->flags |= WALK_NORMALIZE_MODES;
		a->po->normalize_modes = 1;
		return 1;
	case OPT_PACK_NO_HARDLINKS:
		a->wo->flags |= WALK_NO_HARDLINKS;
		return 1;
	case OPT_PACK_CLASSIC:
		a->wo->flags |= WALK_CLASSIC;
		return 1;
	case OPT_PACK_DOCKER_CLIENT:
		*a->docker_major = cli_docker_client_major(cmd, arg);
		return 1;
	case OPT_PACK_CACHE_MAX:
		if (fc_parse_size(arg, &a->fo->max_bytes))
			cli_usage_error(cmd, "--cache-max takes a size like 2G or 500M, not '%s'",
					arg);
		return 1;
	}
	return 0;
}

int cli_docker_client_major(const struct cli_cmd *cmd, const char *arg)
{
	const char *p = arg + (arg[0] == 'v');
	unsigned long v = 0;
	char *end = NULL;

	if (*p >= '0' && *p <= '9') {
		errno = 0;
		v = strtoul(p, &end, 10);
		if (errno || (*end && *end != '.'))
			v = 0;
	}
	if (!v || v > 999)
		cli_usage_error(cmd, "--docker-client takes a docker client's version, such as "
				"20.10.24 or 28.2.2 (docker --version), not '%s'", arg);
	return (int)v;
}

void cli_docker_client_flags(unsigned *flags, int major)
{
	if (major <= 0 || major >= 23)
		return;
	*flags |= WALK_OLD_MATCHER;
	if (!(*flags & WALK_CLASSIC))
		*flags |= WALK_FSUTIL2020;
}

const char *cli_pack_path_name(int path)
{
	switch (path) {
	case FC_PATH_ARCHIVE: return "archive";
	case FC_PATH_ASSEMBLE: return "assemble";
	case FC_PATH_FRAMES: return "frames";
	}
	return "off";
}

void cli_warn_msg(const char *msg)
{
	cli_warn("%s", msg);
}
