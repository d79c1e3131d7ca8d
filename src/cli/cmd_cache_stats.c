/*
 * ctxpack cache stats | why: how well the cache serves: hits and misses
 * per key prefix from the store's log of restores and runs (stats), and
 * the key files that changed since the entry a missed run was compared
 * with, from that log or from the files as they are now (why).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd_cache.h"
#include "ctxpack/cache.h"

/* A path from an entry or the log (untrusted bytes): as it is when it is
 * text, else %-encoded. */
static void print_path(const char *p)
{
	char *enc;

	if (!cache_text_check(p)) {
		fputs(p, stdout);
		return;
	}
	enc = cache_pct_encode(p);
	fputs(enc, stdout);
	free(enc);
}

static unsigned rate(uint64_t part, uint64_t all)
{
	return all ? (unsigned)((part * 100 + all / 2) / all) : 0;
}

int cmd_cache_stats(int argc, char **argv, const struct cmd_cache_sub *sub)
{
	const struct cli_cmd *cmd = sub->cmd;
	struct cache_stats st;
	struct cache_stats_row all;
	struct err e = ERR_INIT;
	struct cmd_cache_common cm;
	struct cache *c = NULL;
	const char *only = NULL;
	size_t i;
	int opt, status = EXIT_OK;

	memset(&st, 0, sizeof(st));
	memset(&all, 0, sizeof(all));
	cmd_cache_common_init(&cm, 0);
	while ((opt = getopt_long(argc, argv, CLI_GLOBAL_SHORTOPTS, sub->longopts, NULL)) != -1) {
		if (opt == OPT_PREFIX)
			only = optarg;
		else
			cmd_cache_opt(&cm, cmd, opt, optarg);
	}
	if (optind < argc)
		cli_usage_error(cmd, "too many arguments");
	if (cmd_cache_open(&cm, &c, &e) || cache_stats_read(c, only, &st, &e)) {
		status = cli_fail(&e);
		goto out;
	}
	if (st.skipped)
		cli_warn("%llu entries of the stats log of %s are not valid events; skipped",
			 (unsigned long long)st.skipped, cache_store_name(c));
	for (i = 0; i < st.n; i++) {
		all.hits += st.rows[i].hits;
		all.partial += st.rows[i].partial;
		all.misses += st.rows[i].misses;
		all.events += st.rows[i].events;
	}
	if (cli_opt.json) {
		printf("{\"store\":");
		cli_json_str(stdout, cache_store_name(c), strlen(cache_store_name(c)));
		printf(",\"events\":%llu,\"hits\":%llu,\"partial\":%llu,\"misses\":%llu,"
		       "\"skipped\":%llu,\"prefixes\":[", (unsigned long long)all.events,
		       (unsigned long long)all.hits, (unsigned long long)all.partial,
		       (unsigned long long)all.misses, (unsigned long long)st.skipped);
		for (i = 0; i < st.n; i++) {
			const struct cache_stats_row *r = &st.rows[i];
			char t[40];

			cache_time_format(r->last_sec, r->last_nsec, t);
			printf("%s{\"prefix\":", i ? "," : "");
			cli_json_str(stdout, r->prefix, strlen(r->prefix));
			printf(",\"events\":%llu,\"hits\":%llu,\"partial\":%llu,\"misses\":%llu",
			       (unsigned long long)r->events, (unsigned long long)r->hits,
			       (unsigned long long)r->partial, (unsigned long long)r->misses);
			cmd_cache_json_opt("last", t);
			printf("}");
		}
		printf("]}\n");
		goto out;
	}
	if (!st.n) {
		cli_info("no restores or runs recorded in %s%s%s", cache_store_name(c),
			 only ? " with a prefix starting with " : "", only ? only : "");
		goto out;
	}
	printf("%8s %8s %8s %8s %5s  %-20s  %s\n", "events", "hits", "partial", "misses", "hit%",
	       "last", "prefix");
	for (i = 0; i < st.n; i++) {
		const struct cache_stats_row *r = &st.rows[i];
		char t[40];

		cache_time_format(r->last_sec, 0, t);
		memmove(t + 19, t + 29, strlen(t + 29) + 1);
		printf("%8llu %8llu %8llu %8llu %4u%%  %-20s  %s\n", (unsigned long long)r->events,
		       (unsigned long long)r->hits, (unsigned long long)r->partial,
		       (unsigned long long)r->misses, rate(r->hits, r->events), t,
		       *r->prefix ? r->prefix : "(empty)");
	}
	if (st.n > 1)
		printf("%8llu %8llu %8llu %8llu %4u%%  %-20s  %s\n", (unsigned long long)all.events,
		       (unsigned long long)all.hits, (unsigned long long)all.partial,
		       (unsigned long long)all.misses, rate(all.hits, all.events), "", "(all)");
out:
	cache_stats_release(&st);
	cache_free(c);
	return status;
}

static void print_short_digest(const char *hex)
{
	printf("sha256:%.12s", hex);
}

static void json_item_list(const struct cache_why *w, int kind, const char *name)
{
	size_t i;
	int first = 1;

	printf(",\"%s\":[", name);
	for (i = 0; i < w->n; i++) {
		const struct cache_why_item *it = &w->items[i];

		if (it->kind != kind)
			continue;
		printf("%s{\"path\":", first ? "" : ",");
		first = 0;
		cli_json_str(stdout, it->path, strlen(it->path));
		if (it->was)
			printf(",\"was\":\"sha256:%s\"", it->was);
		if (it->now)
			printf(",\"now\":\"sha256:%s\"", it->now);
		printf("}");
	}
	printf("]");
}

int cmd_cache_why(int argc, char **argv, const struct cmd_cache_sub *sub)
{
	const struct cli_cmd *cmd = sub->cmd;
	struct cache_run_inputs in;
	struct cache_event ev;
	struct cache_run_record rec;
	struct cache_why w;
	struct cache_match m;
	struct cache_entry *v = NULL, *other = NULL;
	struct err e = ERR_INIT;
	struct cmd_cache_common cm;
	struct cache *c = NULL;
	const char **files, **paths, *prefix = "run-", *key = NULL, *version;
	const char *now_cmd = "", *command = "unknown", *source;
	const struct cache_keyfile *now_files;
	const struct cache_entry *cmp = NULL;
	size_t nf = 0, npaths = 0, n = 0, nother = 0, now_n, i;
	long pick;
	int opt, status = EXIT_OK, ret, have_prefix = 0, from_log, hit = 0, now_omitted = 0;

	memset(&in, 0, sizeof(in));
	memset(&ev, 0, sizeof(ev));
	memset(&rec, 0, sizeof(rec));
	memset(&w, 0, sizeof(w));
	memset(&m, 0, sizeof(m));
	cmd_cache_common_init(&cm, 0);
	files = xcalloc((size_t)argc + 1, sizeof(*files));
	paths = xcalloc((size_t)argc + 1, sizeof(*paths));
	while ((opt = getopt_long(argc, argv, "f:p:" CLI_GLOBAL_SHORTOPTS, sub->longopts, NULL)) !=
	       -1) {
		switch (opt) {
		case 'f':
			files[nf++] = optarg;
			break;
		case 'p':
			paths[npaths++] = optarg;
			break;
		case OPT_KEY_PREFIX:
			prefix = optarg;
			have_prefix = 1;
			break;
		default:
			cmd_cache_opt(&cm, cmd, opt, optarg);
		}
	}
	from_log = !nf;
	if (from_log) {
		if (have_prefix || npaths)
			cli_usage_error(cmd, "--key-prefix and --path go with --key-file (without "
				       "them, give the KEY a run missed)");
		if (optind >= argc)
			cli_usage_error(cmd, "give the KEY a run missed, or the run's --key-file, "
				       "--key-prefix and --path");
		if (argc - optind > 1)
			cli_usage_error(cmd, "one KEY only (a COMMAND goes after the run's "
				       "--key-file and --path, after --)");
		key = argv[optind];
		if (cache_key_check(key, "key", &e)) {
			status = cli_fail(&e);
			goto out;
		}
	} else {
		if (!npaths)
			cli_usage_error(cmd, "--path is required with --key-file (the paths are part "
				       "of the key, as in the run)");
		if (strlen(prefix) > CACHE_KEY_MAX - 64)
			cli_usage_error(cmd, "--key-prefix is longer than %d bytes",
					CACHE_KEY_MAX - 64);
		if (cache_run_inputs(prefix, files, nf, (const char *const *)argv + optind,
				     (size_t)(argc - optind), paths, npaths, &in, &e)) {
			status = cli_fail(&e);
			goto out;
		}
		if (optind < argc)
			key = in.key;
	}
	if (cmd_cache_open(&cm, &c, &e)) {
		status = cli_fail(&e);
		goto out;
	}

	if (from_log) {
		ret = cache_event_last_miss(c, key, &ev, &e);
		if (ret < 0) {
			status = cli_fail(&e);
			goto out;
		}
		if (!ret) {
			err_set(&e, ERR_NOTFOUND, "no run of %s that missed is in the stats log of "
				"%s (it keeps the newest %zu events, and --read-only runs write "
				"none); give the run's --key-file, --key-prefix and --path to compare "
				"the key files as they are now", key, cache_store_name(c),
				cache_stats_keep());
			status = cli_fail(&e);
			goto out;
		}
		prefix = ev.prefix;
		version = ev.version[0] ? ev.version : NULL;
		now_files = ev.files;
		now_n = ev.nfiles;
		now_omitted = ev.files_omitted;
		now_cmd = ev.command;
		source = "log";
	} else {
		version = in.version;
		now_files = in.files;
		now_n = in.nfiles;
		now_omitted = in.nfiles > CACHE_RUN_FILES_MAX;
		now_cmd = key ? in.command : "";
		source = "files";
		/* the key has an entry: nothing missed */
		if (key) {
			ret = cache_lookup(c, key, NULL, 0, paths, npaths, &m, &e);
			if (ret) {
				status = cli_fail(&e);
				goto out;
			}
			hit = m.result == CACHE_HIT;
		}
	}
	if (!hit) {
		if (cache_list_prefix(c, prefix, version, &v, &n, &e)) {
			status = cli_fail(&e);
			goto out;
		}
		pick = cache_why_pick(v, n, key,
				      from_log && ev.result == CACHE_PARTIAL ? ev.matched : NULL,
				      from_log ? ev.sec : 0);
		cmp = pick >= 0 ? &v[pick] : NULL;
		if (!cmp && version && cache_list_prefix(c, prefix, NULL, &other, &nother, &e)) {
			status = cli_fail(&e);
			goto out;
		}
	}
	if (cmp && cache_entry_run_record(cmp, &rec, &e)) {
		cli_warn("%s; its key files are not compared", e.msg);
		err_clear(&e);
	}
	if (cmp && rec.recorded && !now_omitted)
		cache_why_diff(rec.files, rec.nfiles, now_files, now_n, &w);
	if (cmp && rec.command[0] && now_cmd[0])
		command = strcmp(rec.command, now_cmd) ? "changed" : "same";

	if (cli_opt.json) {
		printf("{\"source\":\"%s\"", source);
		cmd_cache_json_opt("key", key);
		cmd_cache_json_opt("prefix", prefix);
		cmd_cache_json_opt("store", cache_store_name(c));
		printf(",\"hit\":%s", hit ? "true" : "false");
		if (from_log) {
			char t[40];

			cache_time_format(ev.sec, ev.nsec, t);
			printf(",\"event\":{\"time\":\"%s\",\"result\":\"%s\"", t,
			       cmd_cache_result_name(ev.result));
			cmd_cache_json_opt("matched_key", ev.matched);
			printf("}");
		}
		if (cmp) {
			printf(",\"compared\":{\"key\":");
			cli_json_str(stdout, cmp->key, strlen(cmp->key));
			cmd_cache_json_opt("tag", cmp->tag);
			cmd_cache_json_opt("created", cmp->created);
			printf("}");
		} else {
			printf(",\"compared\":null");
		}
		printf(",\"recorded\":%s", rec.recorded && !now_omitted ? "true" : "false");
		json_item_list(&w, CACHE_WHY_CHANGED, "changed");
		json_item_list(&w, CACHE_WHY_ADDED, "added");
		json_item_list(&w, CACHE_WHY_REMOVED, "removed");
		printf(",\"order_changed\":%s,\"command\":\"%s\"}\n",
		       w.order_changed ? "true" : "false", command);
		goto out;
	}
	if (hit) {
		printf("%s has an entry in %s (saved %s): a run now restores it\n", key,
		       cache_store_name(c), m.entry.created ? m.entry.created : "at an unknown time");
		goto out;
	}
	if (from_log) {
		char t[40];

		cache_time_format(ev.sec, ev.nsec, t);
		printf("%s missed at %s", key, t);
		if (ev.result == CACHE_PARTIAL)
			printf(" (warm start from %s)", ev.matched);
		printf("\n");
	} else if (key) {
		printf("%s has no entry in %s\n", key, cache_store_name(c));
	}
	if (!cmp) {
		printf("no entry with prefix %s%s%s in %s to compare with", *prefix ? prefix : "''",
		       version ? " for these paths" : "", from_log ? " from before the miss" : "",
		       cache_store_name(c));
		if (nother)
			printf(" (%zu with that prefix were saved for other paths, platform or format)",
			       nother);
		printf("\n");
		goto out;
	}
	printf("compared with %s (saved %s)\n", cmp->key,
	       cmp->created ? cmp->created : "at an unknown time");
	if (now_omitted) {
		printf("too many key files to record (more than %d): not compared\n",
		       CACHE_RUN_FILES_MAX);
	} else if (!rec.recorded) {
		printf("%s does not record its key files (saved by cache save, or by an older "
		       "ctxpack)\n", cmp->key);
	} else {
		for (i = 0; i < w.n; i++) {
			const struct cache_why_item *it = &w.items[i];

			printf("%-8s ", it->kind == CACHE_WHY_CHANGED ? "changed"
					: it->kind == CACHE_WHY_ADDED ? "added" : "removed");
			print_path(it->path);
			if (it->kind == CACHE_WHY_CHANGED) {
				printf(" (");
				print_short_digest(it->was);
				printf(" -> ");
				print_short_digest(it->now);
				printf(")");
			}
			printf("\n");
		}
		if (w.order_changed)
			printf("order    the same key files, given in another order (the key "
			       "hashes them in order)\n");
		else if (!w.n)
			printf("no key file differs\n");
	}
	if (!strcmp(command, "unknown"))
		printf("command  %s\n", !now_cmd[0] && !from_log
			   ? "not compared (give COMMAND after --)" : "not recorded");
	else
		printf("command  %s\n", !strcmp(command, "same") ? "the same" : "changed");
out:
	cache_why_release(&w);
	cache_run_record_release(&rec);
	cache_entries_free(v, n);
	cache_entries_free(other, nother);
	cache_match_release(&m);
	cache_event_release(&ev);
	cache_run_inputs_release(&in);
	cache_free(c);
	free(files);
	free(paths);
	return status;
}
