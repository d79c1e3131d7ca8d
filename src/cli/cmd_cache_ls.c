/*
 * ctxpack cache ls | prune: the entries of a store, listed (newest first)
 * or deleted (by age, count and prefix; on an oci: layout the blobs no
 * entry uses are collected).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cmd_cache.h"
#include "ctxpack/cache.h"

/* The created time to the second, for the table. */
static void short_time(const struct cache_entry *en, char out[40])
{
	if (!en->created_sec && !en->created) {
		snprintf(out, 40, "-");
		return;
	}
	cache_time_format(en->created_sec, 0, out);
	/* drop ".000000000" */
	memmove(out + 19, out + 29, strlen(out + 29) + 1);
}

static void print_entry_json(const struct cache_entry *en)
{
	size_t i;

	printf("{\"key\":");
	cli_json_str(stdout, en->key, strlen(en->key));
	cmd_cache_json_opt("tag", en->tag);
	cmd_cache_json_opt("created", en->created);
	printf(",\"size\":%llu", (unsigned long long)en->size);
	cmd_cache_json_opt("digest", en->digest);
	printf(",\"current\":%s", cache_entry_current(en) ? "true" : "false");
	printf(",\"paths\":[");
	for (i = 0; i < en->m.nlayers; i++) {
		const struct reg_desc *l = &en->m.layers[i];
		const char *p = reg_annot_get(l->annotations, l->nannotations, CACHE_ANNOT_PATH);

		if (i)
			putchar(',');
		cli_json_str(stdout, p, strlen(p));
	}
	printf("]}");
}

int cmd_cache_ls(int argc, char **argv, const struct cmd_cache_sub *sub)
{
	const struct cli_cmd *cmd = sub->cmd;
	struct cache_entry *v = NULL;
	struct err e = ERR_INIT;
	struct cmd_cache_common cm;
	struct cache *c = NULL;
	size_t n = 0, i;
	int opt, status = EXIT_OK;

	cmd_cache_common_init(&cm, 0);
	while ((opt = getopt_long(argc, argv, CLI_GLOBAL_SHORTOPTS, sub->longopts, NULL)) != -1)
		cmd_cache_opt(&cm, cmd, opt, optarg);
	if (optind < argc)
		cli_usage_error(cmd, "too many arguments");
	if (cmd_cache_open(&cm, &c, &e) || cache_list(c, &v, &n, &e)) {
		status = cli_fail(&e);
		goto out;
	}
	if (cli_opt.json)
		putchar('[');
	for (i = 0; i < n; i++) {
		char t[40], h[32];

		if (cli_opt.json) {
			if (i)
				putchar(',');
			print_entry_json(&v[i]);
			continue;
		}
		short_time(&v[i], t);
		printf("%s  %10s  %s  %s%s\n", t, cli_human(v[i].size, h), v[i].key, v[i].tag,
		       cache_entry_current(&v[i]) ? "" : "  (replaced)");
	}
	if (cli_opt.json)
		printf("]\n");
out:
	cache_entries_free(v, n);
	cache_free(c);
	return status;
}

int cmd_cache_prune(int argc, char **argv, const struct cmd_cache_sub *sub)
{
	const struct cli_cmd *cmd = sub->cmd;
	struct cache_prune_opts po;
	struct cache_entry *v = NULL;
	struct err e = ERR_INIT;
	struct cmd_cache_common cm;
	struct cache *c = NULL;
	uint64_t grace = 3600, freed = 0;
	size_t n = 0, i, chosen, deleted = 0;
	int *del = NULL, opt, dry = 0, status = EXIT_OK, is_layout, first = 1;
	char h[32];

	memset(&po, 0, sizeof(po));
	cmd_cache_common_init(&cm, 0);
	while ((opt = getopt_long(argc, argv, CLI_GLOBAL_SHORTOPTS, sub->longopts, NULL)) !=
	       -1) {
		switch (opt) {
		case OPT_OLDER_THAN:
			if (parse_duration(optarg, &po.older_than))
				cli_usage_error(cmd, "--older-than takes a duration (30m, 12h, 7d), "
					       "not '%s'", optarg);
			po.has_older = 1;
			break;
		case OPT_KEEP:
			if (parse_u64(optarg, &po.keep))
				cli_usage_error(cmd, "--keep takes a number, not '%s'", optarg);
			po.has_keep = 1;
			break;
		case OPT_PREFIX:
			po.prefix = optarg;
			break;
		case OPT_DRY_RUN:
			dry = 1;
			break;
		case OPT_GC_GRACE:
			if (parse_duration(optarg, &grace))
				cli_usage_error(cmd, "--gc-grace takes a duration, not '%s'", optarg);
			break;
		default:
			cmd_cache_opt(&cm, cmd, opt, optarg);
		}
	}
	if (optind < argc)
		cli_usage_error(cmd, "too many arguments");
	if (!po.has_older && !po.has_keep)
		cli_usage_error(cmd, "give --older-than, --keep or both");
	if (cmd_cache_open(&cm, &c, &e) || cache_list(c, &v, &n, &e)) {
		status = cli_fail(&e);
		goto out;
	}
	is_layout = reg_store_ref(cache_store(c))->kind == REG_LAYOUT;
	del = xcalloc(n + 1, sizeof(*del));
	chosen = cache_prune_select(v, n, &po, (int64_t)time(NULL), del);
	if (cli_opt.json)
		printf("{\"dry_run\":%s,\"deleted\":[", dry ? "true" : "false");
	for (i = 0; i < n; i++) {
		char t[40];

		if (!del[i])
			continue;
		if (!dry && cache_delete(c, &v[i], &e)) {
			if (e.code == ERR_NOTFOUND) {
				err_clear(&e);
				continue;
			}
			break;
		}
		deleted++;
		if (cli_opt.json) {
			if (!first)
				putchar(',');
			first = 0;
			print_entry_json(&v[i]);
			continue;
		}
		short_time(&v[i], t);
		printf("%s %s  %s  %s\n", dry ? "would delete" : "deleted", t, v[i].key, v[i].tag);
	}
	if (!dry && !err_isset(&e) && is_layout && deleted && cache_gc(c, grace, &freed, &e))
		cli_warn("%s", e.msg);
	if (cli_opt.json)
		printf("],\"entries\":%zu,\"freed\":%llu}\n", n, (unsigned long long)freed);
	if (err_isset(&e) && e.code != ERR_OK && deleted < chosen) {
		status = cli_fail(&e);
		if (!is_layout)
			fprintf(stderr, "ctxpack: %zu of %zu entries deleted; delete them with the "
				"registry's own tools, or enable deletes (distribution: "
				"storage.delete.enabled)\n", deleted, chosen);
		goto out;
	}
	if (dry)
		cli_info("%zu of %zu entries would be deleted", chosen, n);
	else if (is_layout)
		cli_info("deleted %zu of %zu entries; %s of blobs freed", deleted, n,
			 cli_human(freed, h));
	else
		cli_info("deleted %zu of %zu entries; the registry frees their blobs when its "
			 "garbage collection runs", deleted, n);
out:
	free(del);
	cache_entries_free(v, n);
	cache_free(c);
	return status;
}
