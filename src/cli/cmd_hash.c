/*
 * ctxpack hash: walk the context, bring the content index up to date and
 * print the context digest.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "ctxpack/index.h"
#include "ctxpack/walk.h"

enum {
	OPT_IGNORE_FILE = OPT_CMD_BASE,
	OPT_INDEX,
	OPT_THREADS,
	OPT_NORMALIZE_MODES,
	OPT_NO_HARDLINKS,
	OPT_CLASSIC,
	OPT_DOCKER_CLIENT,
};

static const struct option hash_longopts[] = {
	{"file", required_argument, NULL, 'f'},
	{"ignore-file", required_argument, NULL, OPT_IGNORE_FILE},
	{"index", required_argument, NULL, OPT_INDEX},
	{"threads", required_argument, NULL, OPT_THREADS},
	{"normalize-modes", no_argument, NULL, OPT_NORMALIZE_MODES},
	{"no-hardlinks", no_argument, NULL, OPT_NO_HARDLINKS},
	{"classic", no_argument, NULL, OPT_CLASSIC},
	{"docker-client", required_argument, NULL, OPT_DOCKER_CLIENT},
	CLI_GLOBAL_LONGOPTS,
	{NULL, 0, NULL, 0},
};

static void print_json(const char *digest, const struct idx_stats *st, int snap)
{
	printf("{\"digest\":\"%s\",\"entries\":%llu,\"files\":%llu,"
	       "\"hashed\":%llu,\"reused\":%llu,\"bytes_hashed\":%llu,"
	       "\"symlinks\":%llu,\"racy\":%llu,\"dropped\":%llu,\"snapshot\":\"%s\"}\n",
	       digest, (unsigned long long)st->entries,
	       (unsigned long long)st->files, (unsigned long long)st->hashed,
	       (unsigned long long)st->reused,
	       (unsigned long long)st->bytes_hashed,
	       (unsigned long long)st->symlinks, (unsigned long long)st->racy,
	       (unsigned long long)st->dropped, idx_snap_name(snap));
}

int cmd_hash(int argc, char **argv)
{
	const struct cli_cmd *cmd = cli_find("hash");
	struct walk_opts wo = {0};
	struct walk_result w = {0};
	struct idx_stats st = {0};
	struct err e = ERR_INIT;
	struct idx *x = NULL;
	struct idx_snap *snap = NULL;
	const char *index_dir = NULL;
	char digest[IDX_DIGEST_LEN];
	uint64_t threads = 0;
	int c, status = EXIT_OK, docker_major = 0;

	while ((c = getopt_long(argc, argv, "f:" CLI_GLOBAL_SHORTOPTS,
				hash_longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			wo.dockerfile = optarg;
			break;
		case OPT_IGNORE_FILE:
			wo.ignore_file = optarg;
			break;
		case OPT_INDEX:
			if (!*optarg)
				cli_usage_error(cmd, "--index needs a directory");
			index_dir = optarg;
			break;
		case OPT_NORMALIZE_MODES:
			wo.flags |= WALK_NORMALIZE_MODES;
			break;
		case OPT_NO_HARDLINKS:
			wo.flags |= WALK_NO_HARDLINKS;
			break;
		case OPT_CLASSIC:
			wo.flags |= WALK_CLASSIC;
			break;
		case OPT_DOCKER_CLIENT:
			docker_major = cli_docker_client_major(cmd, optarg);
			break;
		case OPT_THREADS:
			if (parse_u64(optarg, &threads) || threads > IDX_THREADS_MAX)
				cli_usage_error(cmd, "--threads takes 0 to %d, not '%s'",
						IDX_THREADS_MAX, optarg);
			break;
		default:
			if (!cli_global_opt(cmd, c, optarg))
				cli_usage_error(cmd, "unknown option");
		}
	}
	if (argc - optind > 1)
		cli_usage_error(cmd, "too many arguments");
	if (optind < argc)
		wo.dir = argv[optind];
	cli_docker_client_flags(&wo.flags, docker_major);

	/* walk first: the index must not be created inside the context; an
	 * unchanged tree is replayed from its snapshot (docs/index.md) */
	snap = idx_snap_new(index_dir);
	wo.replay = idx_snap_replay;
	wo.replay_ctx = snap;
	if (walk_run(&wo, &w, &e)) {
		status = cli_fail(&e);
		goto out;
	}
	if (idx_check_dir(index_dir, w.root, &e) || idx_open(&x, index_dir, 0, &e)) {
		status = cli_fail(&e);
		goto out;
	}
	/* an index rebuilt (or not in use) trusts nothing: nor its snapshots */
	if (idx_warning(x))
		w.replayed = 0;
	if (w.replayed && idx_snap_result(snap) == IDX_SNAP_HIT) {
		idx_snap_counts(&w, &st);
		idx_snap_digest(snap, digest);
	} else {
		idx_set_threads(x, (unsigned)threads);
		if (idx_update(x, &w, &st, &e)) {
			status = cli_fail(&e);
			goto out;
		}
		idx_snap_store(snap, &w);
		idx_context_digest(&w, digest);
	}
	if (cli_opt.json)
		print_json(digest, &st, w.replayed ? idx_snap_result(snap) : IDX_SNAP_NONE);
	else
		printf("%s\n", digest);
	if (cli_opt.verbose)
		cli_info("%llu entries, %llu files: %llu hashed (%llu racy), "
			 "%llu reused, %llu bytes read; %llu index entries dropped",
			 (unsigned long long)st.entries, (unsigned long long)st.files,
			 (unsigned long long)st.hashed, (unsigned long long)st.racy,
			 (unsigned long long)st.reused,
			 (unsigned long long)st.bytes_hashed,
			 (unsigned long long)st.dropped);
out:
	/* the index's warnings come last, after any error, so they are seen */
	if (x && idx_warning(x))
		cli_warn("%s", idx_warning(x));
	walk_release(&w); /* also after a failed walk_run; w started zeroed */
	idx_close(x);
	idx_snap_free(snap);
	return status;
}
