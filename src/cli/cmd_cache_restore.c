/*
 * ctxpack cache restore | run: the restoring commands, and what they
 * share: look up and restore, count the restore in the store's log
 * (cache stats), write cache-hit and matched-key to $GITHUB_OUTPUT.
 *
 * Both fail open: a miss, an unreachable store or a refused entry is
 * reported on stderr and the job goes on (exit 0), unless --fail-on-miss.
 * Failing open is bounded in time: --timeout (by default 5m when $CI is
 * set, as on GitHub Actions and GitLab CI; cmd_cache.c) limits the whole
 * lookup and restore.  In run, a failed save is a warning and the exit
 * status stays COMMAND's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmd_cache.h"
#include "ctxpack/cache.h"

/* The limit on recording an event in the store's stats log, whatever
 * --timeout the restore had. */
#define STATS_TIMEOUT 15

/* Append cache-hit and matched-key to $GITHUB_OUTPUT when it is set. */
static void github_output(int hit, const char *matched)
{
	const char *path = env_get()->github_output;
	char *s;
	int fd;

	if (!path)
		return;
	/* one line per output: a value from the store never adds one (keys
	 * are checked when read; this says so again where it matters) */
	if (matched && (strchr(matched, '\n') || strchr(matched, '\r') ||
			cache_text_check(matched))) {
		cli_warn("not writing the matched key to GITHUB_OUTPUT: it has control characters");
		matched = NULL;
	}
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		cli_warn("cannot open GITHUB_OUTPUT %s: %s", path, strerror(errno));
		return;
	}
	s = xasprintf("cache-hit=%s\nmatched-key=%s\n", hit ? "true" : "false",
		      matched ? matched : "");
	if (write_all(fd, s, strlen(s)))
		cli_warn("cannot write GITHUB_OUTPUT %s: %s", path, strerror(errno));
	free(s);
	close(fd);
}

/*
 * Count a restore or run in the store's log (cache stats).  Never with
 * --read-only; a failure is a warning (the restore is done), bounded in
 * time whatever --timeout the restore had.
 */
static void record_event(struct cache *c, struct cache_event *ev)
{
	struct err e = ERR_INIT;

	cache_set_timeout(c, STATS_TIMEOUT * 1000);
	if (cache_event_record(c, ev, &e))
		cli_warn("%s; not counted in cache stats (--read-only writes nothing to the "
			 "store)", e.msg);
	cache_set_timeout(c, 0);
}

/*
 * Open the store, look up and restore (with progress); a failure after
 * the lookup is a miss with a warning.  Returns 0 with m filled (result
 * CACHE_MISS on any failure) or <0 when the store could not be opened or
 * asked (*c NULL when it could not be opened); e then holds why, and
 * ERR_USAGE is the caller's to report as a usage error.
 */
static int open_and_restore(struct cmd_cache_common *cm, struct cache **c, const char *key,
			    const char *const *prefixes, size_t np, const char *const *paths,
			    size_t n, int lookup_only, struct cache_match *m,
			    struct cache_restore_result *rr, struct err *e)
{
	int ret;

	memset(rr, 0, sizeof(*rr));
	ret = cmd_cache_open(cm, c, e);
	if (ret)
		return ret;
	cli_progress_start("restore", 0);
	ret = cache_lookup(*c, key, prefixes, np, paths, n, m, e);
	if (!ret && m->result != CACHE_MISS && !lookup_only) {
		ret = cache_restore(*c, &m->entry, paths, n, rr, e);
		if (ret)
			cache_match_release(m);
	}
	cli_progress_end(!ret && m->result != CACHE_MISS && !lookup_only);
	return ret;
}

int cmd_cache_restore(int argc, char **argv, const struct cmd_cache_sub *sub)
{
	const struct cli_cmd *cmd = sub->cmd;
	struct cache_restore_result rr;
	struct cache_match m;
	struct err e = ERR_INIT;
	struct cmd_cache_common cm;
	struct cache *c = NULL;
	const char *key = NULL, **prefixes = NULL;
	size_t np = 0;
	char hb[32];
	int opt, fail_on_miss = 0, lookup_only = 0, read_only = 0, status = EXIT_OK, ret;

	memset(&m, 0, sizeof(m));
	cmd_cache_common_init(&cm, 1);
	prefixes = xcalloc((size_t)argc + 1, sizeof(*prefixes));
	while ((opt = getopt_long(argc, argv, "k:r:" CLI_GLOBAL_SHORTOPTS, sub->longopts,
				  NULL)) != -1) {
		switch (opt) {
		case 'k':
			key = optarg;
			break;
		case 'r':
			if (!*optarg)
				cli_usage_error(cmd, "--restore-key needs a prefix");
			prefixes[np++] = optarg;
			break;
		case OPT_FAIL_ON_MISS:
			fail_on_miss = 1;
			break;
		case OPT_LOOKUP_ONLY:
			lookup_only = 1;
			break;
		case OPT_READ_ONLY:
			read_only = 1;
			break;
		default:
			cmd_cache_opt(&cm, cmd, opt, optarg);
		}
	}
	if (!key)
		cli_usage_error(cmd, "--key is required");
	if (optind >= argc)
		cli_usage_error(cmd, "no PATH given");

	ret = open_and_restore(&cm, &c, key, prefixes, np, (const char *const *)argv + optind,
			       (size_t)(argc - optind), lookup_only, &m, &rr, &e);
	if (ret == ERR_USAGE) {
		status = cli_fail(&e);
		goto out;
	}
	if (ret)
		cli_warn("cache restore of %s failed, reported as a miss: %s", key, e.msg);
	else if (m.result == CACHE_MISS)
		cli_info("cache miss for %s in %s", key, cache_store_name(c));
	else if (lookup_only)
		cli_info("found %s in %s (not restored: --lookup-only)", m.entry.key,
			 cache_store_name(c));
	else
		cli_info("restored %s from %s: %zu path%s, %s", m.entry.key, cache_store_name(c),
			 rr.layers, rr.layers == 1 ? "" : "s", cli_human(rr.bytes, hb));
	if (!ret && !lookup_only && !read_only) {
		struct cache_event ev;

		memset(&ev, 0, sizeof(ev));
		ev.op = CACHE_OP_RESTORE;
		ev.result = m.result;
		ev.prefix = xstrdup(cache_event_prefix(key, prefixes, np));
		ev.key = xstrdup(key);
		ev.matched = m.result ? xstrdup(m.entry.key) : NULL;
		cache_version((const char *const *)argv + optind, (size_t)(argc - optind),
			      ev.version);
		record_event(c, &ev);
		cache_event_release(&ev);
	}

	if (cli_opt.json) {
		printf("{\"result\":\"%s\"", cmd_cache_result_name(m.result));
		cmd_cache_json_opt("key", key);
		cmd_cache_json_opt("matched_key", m.result ? m.entry.key : NULL);
		cmd_cache_json_opt("tag", m.result ? m.entry.tag : NULL);
		cmd_cache_json_opt("created", m.result ? m.entry.created : NULL);
		cmd_cache_json_opt("store", c ? cache_store_name(c) : NULL);
		printf(",\"restored\":%s,\"bytes\":%llu", m.result && !lookup_only ? "true" : "false",
		       (unsigned long long)rr.bytes);
		cmd_cache_json_opt("error", ret ? e.msg : NULL);
		printf("}\n");
	} else if (m.result == CACHE_PARTIAL) {
		printf("partial %s\n", m.entry.key);
	} else {
		printf("%s\n", cmd_cache_result_name(m.result));
	}
	github_output(m.result == CACHE_HIT, m.result ? m.entry.key : NULL);
	if (m.result == CACHE_MISS && fail_on_miss) {
		cli_warn("no cache entry restored and --fail-on-miss given");
		status = EXIT_FAIL;
	}
out:
	cache_match_release(&m);
	cache_free(c);
	free(prefixes);
	return status;
}

int cmd_cache_run(int argc, char **argv, const struct cmd_cache_sub *sub)
{
	const struct cli_cmd *cmd = sub->cmd;
	struct cache_restore_result rr;
	struct cache_save_result sr;
	struct cache_save_opts so;
	struct cache_run_inputs in;
	struct cache_match m;
	struct err e = ERR_INIT;
	struct cmd_cache_common cm;
	struct cache *c = NULL;
	struct reg_kv *an = NULL;
	const char **files, **paths, **pfx, *prefix = "run-";
	size_t nf = 0, npaths = 0, npfx = 1, nan = 0, i;
	char hb[32], hs[32];
	int opt, status, ret, hit = 0, no_save = 0, read_only = 0, save_on_failure = 0;

	memset(&m, 0, sizeof(m));
	memset(&in, 0, sizeof(in));
	cmd_cache_common_init(&cm, 1);
	files = xcalloc((size_t)argc + 1, sizeof(*files));
	paths = xcalloc((size_t)argc + 1, sizeof(*paths));
	/* the key prefix first, then the restore keys */
	pfx = xcalloc((size_t)argc + 2, sizeof(*pfx));
	/* '+': COMMAND's own options are not ours */
	while ((opt = getopt_long(argc, argv, "+f:p:r:" CLI_GLOBAL_SHORTOPTS, sub->longopts,
				  NULL)) != -1) {
		switch (opt) {
		case 'f':
			files[nf++] = optarg;
			break;
		case 'p':
			paths[npaths++] = optarg;
			break;
		case 'r':
			if (!*optarg)
				cli_usage_error(cmd, "--restore-key needs a prefix");
			pfx[npfx++] = optarg;
			break;
		case OPT_KEY_PREFIX:
			prefix = optarg;
			break;
		case OPT_NO_SAVE:
			no_save = 1;
			break;
		case OPT_READ_ONLY:
			read_only = 1;
			break;
		case OPT_SAVE_ON_FAILURE:
			save_on_failure = 1;
			break;
		default:
			cmd_cache_opt(&cm, cmd, opt, optarg);
		}
	}
	if (!nf)
		cli_usage_error(cmd, "at least one --key-file is required");
	if (!npaths)
		cli_usage_error(cmd, "at least one --path is required");
	if (optind >= argc)
		cli_usage_error(cmd, "no COMMAND given (put it after --)");
	if (strlen(prefix) > CACHE_KEY_MAX - 64)
		cli_usage_error(cmd, "--key-prefix is longer than %d bytes", CACHE_KEY_MAX - 64);
	if (save_on_failure && (no_save || read_only))
		cli_usage_error(cmd, "--save-on-failure saves; it does not go with %s",
				no_save ? "--no-save" : "--read-only");
	pfx[0] = prefix;

	if (cache_run_inputs(prefix, files, nf, (const char *const *)argv + optind,
			     (size_t)(argc - optind), paths, npaths, &in, &e)) {
		status = cli_fail(&e);
		goto out;
	}
	ret = open_and_restore(&cm, &c, in.key, pfx, npfx, paths, npaths, 0, &m, &rr, &e);
	if (ret == ERR_USAGE) {
		status = cli_fail(&e);
		goto out;
	}
	if (ret) {
		cli_warn("cache restore of %s failed, running the command: %s", in.key, e.msg);
		err_clear(&e);
	} else if (m.result == CACHE_HIT) {
		hit = 1;
		cli_info("cache hit for %s: restored %s; skipping the command", in.key,
			 cli_human(rr.bytes, hb));
	} else if (m.result == CACHE_PARTIAL) {
		cli_info("cache miss for %s; warm start from %s", in.key, m.entry.key);
	} else {
		cli_info("cache miss for %s", in.key);
	}
	if (!ret && !read_only) {
		struct cache_event ev;

		memset(&ev, 0, sizeof(ev));
		ev.op = CACHE_OP_RUN;
		ev.result = m.result;
		ev.prefix = xstrdup(prefix);
		ev.key = xstrdup(in.key);
		ev.matched = m.result ? xstrdup(m.entry.key) : NULL;
		memcpy(ev.version, in.version, sizeof(ev.version));
		memcpy(ev.command, in.command, sizeof(ev.command));
		/* what cache why compares, for the runs that missed */
		if (!hit && in.nfiles > CACHE_RUN_FILES_MAX) {
			ev.files_omitted = 1;
		} else if (!hit) {
			ev.files = xcalloc(in.nfiles + 1, sizeof(*ev.files));
			for (i = 0; i < in.nfiles; i++) {
				ev.files[i].path = xstrdup(in.files[i].path);
				memcpy(ev.files[i].sha256, in.files[i].sha256, 65);
			}
			ev.nfiles = in.nfiles;
		}
		record_event(c, &ev);
		cache_event_release(&ev);
	}
	github_output(hit, m.result ? m.entry.key : NULL);
	if (hit) {
		status = EXIT_OK;
		goto out;
	}
	/* as build does: SIGINT, SIGTERM and SIGHUP sent to ctxpack reach the
	 * command (util.h, run.c); a run that was stopped saves nothing */
	status = run_command(argv + optind);
	if (run_signal()) {
		cli_info("interrupted by signal %d; the command exited with %d; nothing saved",
			 run_signal(), status);
		goto out;
	}
	if (read_only || no_save) {
		cli_info("the command exited with %d; not saved (%s)", status,
			 read_only ? "--read-only" : "--no-save");
		goto out;
	}
	if (status && !save_on_failure) {
		cli_info("the command exited with %d; nothing saved", status);
		goto out;
	}
	if (status)
		cli_info("the command exited with %d; saving anyway (--save-on-failure)", status);
	if (!c) {
		cli_warn("no store to save %s to", in.key);
		goto out;
	}
	/* --timeout was the restore's: the save takes what it takes */
	cache_set_timeout(c, 0);
	cache_run_annotations(&in, &an, &nan);
	memset(&so, 0, sizeof(so));
	so.annotations = an;
	so.nannotations = nan;
	cli_progress_start("save", 0);
	ret = cache_save_opt(c, in.key, paths, npaths, &so, &sr, &e);
	cli_progress_end(!ret);
	if (ret)
		cli_warn("cannot save the cache (the command %s): %s",
			 status ? "failed; --save-on-failure" : "succeeded", e.msg);
	else if (!sr.existed)
		cli_info("saved %s to %s: %s (%s uploaded)", in.key, cache_store_name(c),
			 cli_human(sr.bytes, hb), cli_human(sr.sent, hs));
out:
	for (i = 0; i < nan; i++) {
		free(an[i].key);
		free(an[i].value);
	}
	free(an);
	cache_match_release(&m);
	cache_free(c);
	cache_run_inputs_release(&in);
	free(files);
	free(paths);
	free(pfx);
	return status;
}
