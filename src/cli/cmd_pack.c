/* ctxpack pack: write the context as a deterministic archive. */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "ctxpack/pack.h"
#include "ctxpack/walk.h"

enum { OPT_IGNORE_FILE = OPT_CMD_BASE, OPT_COMPRESS, OPT_LEVEL, OPT_THREADS };

struct fd_sink {
	int fd;
	const char *name;
};

static int fd_sink_write(void *ctx, const void *p, size_t n, struct err *e)
{
	struct fd_sink *s = ctx;

	if (write_all(s->fd, p, n))
		return err_errno(e, "cannot write %s", s->name);
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

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
	uint64_t v;

	if (parse_u64(s, &v) || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

int cmd_pack(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"file", required_argument, NULL, 'f'},
		{"ignore-file", required_argument, NULL, OPT_IGNORE_FILE},
		{"output", required_argument, NULL, 'o'},
		{"compress", required_argument, NULL, OPT_COMPRESS},
		{"level", required_argument, NULL, OPT_LEVEL},
		{"threads", required_argument, NULL, OPT_THREADS},
		CLI_GLOBAL_LONGOPTS,
		{NULL, 0, NULL, 0},
	};
	const struct cli_cmd *cmd = cli_find("pack");
	struct walk_opts wo = {0};
	struct walk_result wr;
	struct pack_list l;
	struct pack_opts po;
	struct pack_result res;
	struct atomic_file af = {-1, NULL, NULL};
	struct fd_sink sink = {1, "standard output"};
	struct err e = ERR_INIT;
	const char *out = NULL;
	unsigned u;
	int c, status = EXIT_OK, have_list = 0, to_file, direct = -1;
	size_t i;

	pack_opts_init(&po);
	while ((c = getopt_long(argc, argv, "f:o:" CLI_GLOBAL_SHORTOPTS, longopts, NULL)) != -1) {
		switch (c) {
		case 'f': wo.dockerfile = optarg; break;
		case OPT_IGNORE_FILE: wo.ignore_file = optarg; break;
		case 'o': out = optarg; break;
		case OPT_COMPRESS:
			if (pack_parse_compress(optarg, &po.compress, &e))
				cli_usage_error(cmd, "%s", e.msg);
			break;
		case OPT_LEVEL:
			if (parse_uint(optarg, 1000, &u) || u == 0)
				cli_usage_error(cmd, "--level takes a positive number, not '%s'",
						optarg);
			po.level = (int)u;
			break;
		case OPT_THREADS:
			if (parse_uint(optarg, PACK_MAX_THREADS, &u) || u == 0)
				cli_usage_error(cmd, "--threads takes 1 to %d, not '%s'",
						PACK_MAX_THREADS, optarg);
			po.threads = u;
			break;
		default: cli_global_opt(cmd, c, optarg);
		}
	}
	if (argc - optind > 1)
		cli_usage_error(cmd, "too many arguments");
	wo.dir = optind < argc ? argv[optind] : ".";
	if (pack_opts_check(&po, &e))
		cli_usage_error(cmd, "%s", e.msg);
	to_file = out && strcmp(out, "-");
	if (cli_opt.json && !to_file)
		cli_usage_error(cmd, "--json needs -o FILE (the archive goes to standard output)");
	if (!out && isatty(1))
		cli_usage_error(cmd, "refusing to write an archive to a terminal; "
				"use -o FILE or -o -");
	if (pack_source_date_epoch(getenv("SOURCE_DATE_EPOCH"), &po.mtime, &e))
		return cli_fail(&e);

	if (walk_run(&wo, &wr, &e)) {
		walk_release(&wr);
		return cli_fail(&e);
	}
	if (pack_list_build(&l, &wr, &e))
		goto fail;
	have_list = 1;
	if (wo.dockerfile) {
		int found = 0;

		for (i = 0; wr.dockerfile_rel && i < l.n && !found; i++)
			found = !strcmp(l.v[i]->path, wr.dockerfile_rel);
		if (!found)
			cli_warn("%s is not in the archive (missing or outside the context)",
				 wo.dockerfile);
	}
	for (i = 0; i < l.n_added && cli_opt.verbose; i++)
		cli_info("added %s%s (excluded by the ignore file)", l.added[i].path,
			 l.added[i].type == WALK_DIR ? "/" : "");

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
			if (atomic_open(&af, out, 0666, &e))
				goto fail;
			sink.fd = af.fd;
		}
	}
	if (pack_write(&l, &po, NULL, fd_sink_write, &sink, &res, &e))
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

	if (cli_opt.json) {
		printf("{\"digest\":\"%s\",\"bytes\":%llu,\"entries\":%llu,\"compress\":\"%s\","
		       "\"level\":%d,\"added\":",
		       res.digest, (unsigned long long)res.bytes, (unsigned long long)res.entries,
		       pack_compress_name(po.compress), pack_level(&po));
		print_added(stdout, &l);
		printf("}\n");
	} else if (!cli_opt.quiet) {
		fprintf(stderr, "%s %llu %llu\n", res.digest, (unsigned long long)res.bytes,
			(unsigned long long)res.entries);
	}
	goto out;
fail:
	if (af.tmp)
		atomic_abort(&af);
	if (direct >= 0)
		close(direct);
	status = cli_fail(&e);
out:
	if (have_list)
		pack_list_release(&l);
	walk_release(&wr);
	return status;
}
