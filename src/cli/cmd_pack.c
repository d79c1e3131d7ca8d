/* ctxpack pack: write the context as a deterministic archive. */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "ctxpack/session.h"


struct fd_sink {
	int fd;
	const char *name;
	uint64_t written;
};

/* Called on the pack's writer thread. */
static int fd_sink_write(void *ctx, const void *p, size_t n, struct err *e)
{
	struct fd_sink *s = ctx;

	if (write_all(s->fd, p, n))
		return err_errno(e, "cannot write %s", s->name);
	s->written += n;
	cli_progress_update(s->written, 0);
	return 0;
}

static void print_added(FILE *f, const struct pack_list *l)
{
	size_t i;

	fputc('[', f);
	for (i = 0; i < l->n_added; i++) {
		const struct walk_entry *we = &l->added[i];
		struct buf b = BUF_INIT;

		buf_add(&b, we->path, we->path_len);
		if (we->type == WALK_DIR)
			buf_addch(&b, '/');
		if (i)
			fputc(',', f);
		cli_json_str(f, b.data, b.len);
		buf_release(&b);
	}
	fputc(']', f);
}

/* The cache's part of --json (none with --no-cache or --compress none):
 * "cache" is "archive" (served whole from the store), "assemble" (the
 * context's last archive and a few new frames), "frames" (packed frame by
 * frame, each copied or compressed) or "off" (the cache could not be
 * used; a warning says why). */
static void print_cache_json(FILE *f, const struct fc *fc, const struct fc_stats *st,
			     const struct idx_stats *ist)
{
	fprintf(f, ",\"cache\":\"%s\"", !fc ? "off" : cli_pack_path_name(st->path));
	if (!fc)
		return;
	fprintf(f, ",\"frames\":%llu,\"frames_reused\":%llu,\"frames_compressed\":%llu,"
		"\"frames_stored\":%llu,\"frames_damaged\":%llu,\"frames_unsafe\":%llu,"
		"\"archive_stored\":%s,\"bytes_hashed\":%llu,\"bytes_early\":%llu,"
		"\"bytes_ahead\":%llu,\"seen_changed\":%llu,\"evicted\":%llu",
		(unsigned long long)st->frames, (unsigned long long)st->frames_reused,
		(unsigned long long)st->frames_compressed, (unsigned long long)st->frames_stored,
		(unsigned long long)st->frames_damaged, (unsigned long long)st->frames_unsafe,
		st->archive_stored ? "true" : "false", (unsigned long long)st->bytes_hashed,
		(unsigned long long)st->bytes_early, (unsigned long long)st->bytes_ahead,
		(unsigned long long)st->seen_changed, (unsigned long long)st->evicted);
	if (ist)
		fprintf(f, ",\"files_hashed\":%llu,\"files_reused\":%llu",
			(unsigned long long)ist->hashed, (unsigned long long)ist->reused);
}

static void print_cache_info(const struct fc *fc, const struct fc_stats *st,
			     const struct idx_stats *ist)
{
	char h1[32], h2[32];

	if (!fc) {
		cli_info("cache: off");
		return;
	}
	if (ist)
		cli_info("index: %llu files, %llu hashed, %llu reused",
			 (unsigned long long)ist->files, (unsigned long long)ist->hashed,
			 (unsigned long long)ist->reused);
	if (st->archive_reused)
		cli_info("cache: archive reused (%llu frames, %s)", (unsigned long long)st->frames,
			 cli_human(st->bytes_reused, h1));
	else
		cli_info("cache: %s, %llu frames: %llu reused (%s), %llu compressed, %llu stored, "
			 "%llu damaged, %llu not stored (files changed or too recent)%s",
			 cli_pack_path_name(st->path),
			 (unsigned long long)st->frames, (unsigned long long)st->frames_reused,
			 cli_human(st->bytes_reused, h1), (unsigned long long)st->frames_compressed,
			 (unsigned long long)st->frames_stored,
			 (unsigned long long)st->frames_damaged,
			 (unsigned long long)st->frames_unsafe,
			 st->archive_stored ? "; archive stored" : "");
	if (st->evicted)
		cli_info("cache: evicted %llu files (%s), %s left in %s",
			 (unsigned long long)st->evicted, cli_human(st->evicted_bytes, h1),
			 cli_human(st->store_bytes, h2), fc_dir(fc));
}

int cmd_pack(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_PACK_LONGOPTS,
		{"output", required_argument, NULL, 'o'},
		CLI_GLOBAL_LONGOPTS,
		{NULL, 0, NULL, 0},
	};
	const struct cli_cmd *cmd = cli_find("pack");
	struct walk_opts wo = {0};
	struct pack_opts po;
	struct cli_pack_args pa;
	struct pack_result res;
	struct atomic_file af = {-1, 0, NULL, NULL};
	struct fd_sink sink = {1, "standard output", 0};
	struct err e = ERR_INIT;
	const char *out = NULL, *index_dir = NULL;
	struct pack_session_opts so;
	struct pack_session *ps = NULL;
	const struct pack_list *l;
	const struct walk_result *wr;
	int c, rc, status = EXIT_OK, to_file, direct = -1, no_cache = 0, docker_major = 0;
	size_t i;

	memset(&so, 0, sizeof(so));
	pack_opts_init(&po);
	/* an uncompressed archive may go to `docker build -` */
	po.stdin_safe = 1;
	pa.wo = &wo;
	pa.po = &po;
	pa.fo = &so.fo;
	pa.index_dir = &index_dir;
	pa.no_cache = &no_cache;
	pa.docker_major = &docker_major;
	while ((c = getopt_long(argc, argv, "f:o:" CLI_GLOBAL_SHORTOPTS, longopts, NULL)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		default:
			if (!cli_pack_opt(cmd, c, optarg, &pa))
				cli_global_opt(cmd, c, optarg);
		}
	}
	if (argc - optind > 1)
		cli_usage_error(cmd, "too many arguments");
	wo.dir = optind < argc ? argv[optind] : ".";
	cli_docker_client_flags(&wo.flags, docker_major);
	if (pack_opts_check(&po, &e))
		cli_usage_error(cmd, "%s", e.msg);
	to_file = out && strcmp(out, "-");
	if (cli_opt.json && !to_file)
		cli_usage_error(cmd, "--json needs -o FILE (the archive goes to standard output)");
	if (!out && isatty(1))
		cli_usage_error(cmd, "refusing to write an archive to a terminal; "
				"use -o FILE or -o -");
	if (pack_source_date_epoch(env_get()->source_date_epoch, &po.mtime, &e))
		return cli_fail(&e);

	/* the output first: the last archive of this context may be copied
	 * to it while the context is walked */
	if (to_file) {
		struct stat st;

		sink.name = out;
		if (!lstat(out, &st) && !S_ISREG(st.st_mode)) {
			/* a device, a FIFO, or a symlink such as /dev/stdout: write
			 * in place (a rename would replace the link or the node) */
			int trunc = stat(out, &st) == 0 && S_ISREG(st.st_mode) ? O_TRUNC : 0;

			direct = open(out, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY | trunc, 0666);
			if (direct < 0) {
				err_errno(&e, "cannot open %s", out);
				goto fail;
			}
			sink.fd = direct;
		} else {
			/* what a killed run left beside it goes first */
			if (atomic_clear_stale(out) && cli_opt.verbose)
				cli_info("removed the temporaries of an earlier run killed "
					 "while writing %s", out);
			if (atomic_open(&af, out, 0666, &e))
				goto fail;
			af.nosync = 1; /* an archive can be packed again */
			sink.fd = af.fd;
		}
	}
	so.wo = &wo;
	so.po = &po;
	so.index_dir = index_dir;
	so.no_cache = no_cache;
	so.out_fd = sink.fd;
	if (pack_session_open(&ps, &so, &e))
		goto fail;
	if (wo.seen && cli_opt.verbose)
		cli_info("cache: copying the last archive of %s to the output while walking",
			 wo.dir);
	if (pack_session_list(ps, &e))
		goto fail;
	wr = pack_session_walk_result(ps);
	l = pack_session_pack_list(ps);
	if (wo.dockerfile) {
		int found = 0;

		for (i = 0; wr->dockerfile_rel && i < l->n && !found; i++)
			found = !strcmp(l->v[i]->path, wr->dockerfile_rel);
		if (!found)
			cli_warn("%s is not in the archive (missing or outside the context)",
				 wo.dockerfile);
	}
	for (i = 0; i < l->n_added && cli_opt.verbose; i++)
		cli_info("added %s%s (excluded by the ignore file)", l->added[i].path,
			 l->added[i].type == WALK_DIR ? "/" : "");

	cli_progress_start("pack", 0);
	rc = pack_session_write(ps, fd_sink_write, &sink, &res, &e);
	if (!rc) /* a reused archive may have been copied to the output directly */
		cli_progress_update(res.bytes, 0);
	cli_progress_end(!rc);
	if (rc)
		goto fail;
	if (af.tmp && atomic_commit(&af, &e))
		goto fail;
	if (direct >= 0) {
		int r = close(direct);

		direct = -1;
		if (r) {
			err_errno(&e, "cannot write %s", out);
			goto fail;
		}
	}

	/* the output is complete */
	pack_session_commit(ps);
	if (cli_opt.verbose)
		print_cache_info(pack_session_fc(ps), pack_session_fc_stats(ps),
				 pack_session_idx_stats(ps));
	if (cli_opt.json) {
		printf("{\"digest\":\"%s\",\"bytes\":%llu,\"entries\":%llu,\"compress\":\"%s\","
		       "\"level\":%d,\"added\":",
		       res.digest, (unsigned long long)res.bytes, (unsigned long long)res.entries,
		       pack_compress_name(po.compress), pack_level(&po));
		print_added(stdout, l);
		if (pack_session_fc(ps))
			printf(",\"snapshot\":\"%s\"", pack_session_snapshot(ps));
		if (!no_cache)
			print_cache_json(stdout, pack_session_fc(ps), pack_session_fc_stats(ps),
					 pack_session_idx_stats(ps));
		printf("}\n");
	} else if (!cli_opt.quiet) {
		fprintf(stderr, "%s %llu %llu\n", res.digest, (unsigned long long)res.bytes,
			(unsigned long long)res.entries);
	}
	goto out;
fail:
	pack_session_cancel(ps);
	if (af.tmp)
		atomic_abort(&af);
	if (direct >= 0)
		close(direct);
	status = cli_fail(&e);
out:
	if (ps)
		pack_session_warnings(ps, cli_warn_msg);
	pack_session_free(ps);
	return status;
}
