/*
 * ctxpack cache save: store directories under a key.  It fails loudly
 * (exit 1), so a broken store is seen.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd_cache.h"
#include "ctxpack/cache.h"

int cmd_cache_save(int argc, char **argv, const struct cmd_cache_sub *sub)
{
	const struct cli_cmd *cmd = sub->cmd;
	struct cache_save_result r;
	struct cache_save_opts so;
	struct err e = ERR_INIT;
	struct cmd_cache_common cm;
	struct cache *c = NULL;
	const char *key = NULL, *result;
	char hb[32], hs[32];
	int opt, status = EXIT_OK, ret;

	memset(&so, 0, sizeof(so));
	cmd_cache_common_init(&cm, 0);
	while ((opt = getopt_long(argc, argv, "k:" CLI_GLOBAL_SHORTOPTS, sub->longopts,
				  NULL)) != -1) {
		if (opt == 'k')
			key = optarg;
		else if (opt == OPT_FORCE)
			so.force = 1;
		else if (opt == OPT_UPDATE)
			so.update = 1;
		else
			cmd_cache_opt(&cm, cmd, opt, optarg);
	}
	if (!key)
		cli_usage_error(cmd, "--key is required");
	if (so.force && so.update)
		cli_usage_error(cmd, "--force and --update do not go together (--force drops the "
			       "old entry, --update keeps it)");
	if (optind >= argc)
		cli_usage_error(cmd, "no PATH given");
	if (cmd_cache_open(&cm, &c, &e)) {
		status = cli_fail(&e);
		goto out;
	}
	cli_progress_start("save", 0);
	ret = cache_save_opt(c, key, (const char *const *)argv + optind,
			     (size_t)(argc - optind), &so, &r, &e);
	cli_progress_end(!ret);
	if (ret) {
		status = cli_fail(&e);
		goto out;
	}
	result = r.unchanged ? "unchanged" : r.existed ? "exists" : r.updated ? "updated" : "saved";
	if (cli_opt.json) {
		printf("{\"result\":\"%s\"", result);
		cmd_cache_json_opt("key", key);
		cmd_cache_json_opt("tag", r.tag);
		cmd_cache_json_opt("digest", r.digest);
		cmd_cache_json_opt("store", cache_store_name(c));
		cmd_cache_json_opt("replaced_tag", r.updated ? r.old_tag : NULL);
		printf(",\"layers\":%zu,\"reused\":%zu,\"bytes\":%llu,\"sent\":%llu}\n",
		       r.layers, r.reused, (unsigned long long)r.bytes,
		       (unsigned long long)r.sent);
	}
	if (r.unchanged)
		cli_info("%s in %s has this content already; nothing to do", key,
			 cache_store_name(c));
	else if (r.existed)
		cli_info("%s is saved in %s already; nothing to do (--update stores a new "
			 "entry)", key, cache_store_name(c));
	else if (r.updated)
		cli_info("updated %s in %s: %zu path%s, %s (%s uploaded); the entry it replaced "
			 "stays under %s until pruned", key, cache_store_name(c), r.layers,
			 r.layers == 1 ? "" : "s", cli_human(r.bytes, hb), cli_human(r.sent, hs),
			 r.old_tag);
	else
		cli_info("saved %s to %s: %zu path%s, %s (%s uploaded%s)", key, cache_store_name(c),
			 r.layers, r.layers == 1 ? "" : "s", cli_human(r.bytes, hb),
			 cli_human(r.sent, hs), r.reused ? "; packed before, not again" : "");
out:
	cache_free(c);
	return status;
}
