/* ctxpack ls: what the builder's COPY would see, in archive order. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ctxpack/ignore.h"
#include "ctxpack/walk.h"

enum {
	OPT_IGNORE_FILE = OPT_CMD_BASE, OPT_WHY, OPT_EXCLUDED, OPT_NORMALIZE_MODES,
	OPT_NO_HARDLINKS, OPT_CLASSIC, OPT_DOCKER_CLIENT,
};

static char type_char(const struct walk_entry *we)
{
	switch (we->type) {
	case WALK_DIR: return 'd';
	case WALK_LNK: return 'l';
	case WALK_FIFO: return 'p';
	case WALK_CHR: return 'c';
	case WALK_BLK: return 'b';
	case WALK_HARDLINK: return 'h';
	default: return 'f';
	}
}

static const char *type_name(const struct walk_entry *we)
{
	switch (we->type) {
	case WALK_DIR: return "dir";
	case WALK_LNK: return "symlink";
	case WALK_FIFO: return "fifo";
	case WALK_CHR: return "char";
	case WALK_BLK: return "block";
	case WALK_HARDLINK: return "hardlink";
	default: return "file";
	}
}

static void print_why(FILE *f, const struct walk_result *r, int deciding, int json)
{
	/* the ignore file as the user knows it: relative to the context
	 * when it lives there, like the listed paths */
	const char *file = r->ignore_rel ? r->ignore_rel : ign_file_name(r->ign);
	const char *pat = ign_pattern_text(r->ign, (size_t)deciding);
	unsigned line = ign_pattern_line(r->ign, (size_t)deciding);
	char buf[64];

	if (json) {
		struct buf b = BUF_INIT;

		buf_addf(&b, "%s:%u:%s", file, line, pat);
		fputs(",\"why\":", f);
		cli_json_str(f, b.data, b.len);
		buf_release(&b);
		return;
	}
	snprintf(buf, sizeof(buf), ":%u:", line);
	fputc('\t', f);
	fputs(file, f);
	fputs(buf, f);
	fputs(pat, f);
}

int cmd_ls(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"file", required_argument, NULL, 'f'},
		{"ignore-file", required_argument, NULL, OPT_IGNORE_FILE},
		{"why", no_argument, NULL, OPT_WHY},
		{"excluded", no_argument, NULL, OPT_EXCLUDED},
		{"long", no_argument, NULL, 'l'},
		{"null", no_argument, NULL, '0'},
		{"normalize-modes", no_argument, NULL, OPT_NORMALIZE_MODES},
		{"no-hardlinks", no_argument, NULL, OPT_NO_HARDLINKS},
		{"classic", no_argument, NULL, OPT_CLASSIC},
		{"docker-client", required_argument, NULL, OPT_DOCKER_CLIENT},
		CLI_GLOBAL_LONGOPTS,
		{NULL, 0, NULL, 0},
	};
	const struct cli_cmd *cmd = cli_find("ls");
	struct walk_opts o = {0};
	struct walk_result r;
	struct err e = ERR_INIT;
	int why = 0, excluded = 0, lng = 0, nul = 0, docker_major = 0, c;
	size_t i;

	while ((c = getopt_long(argc, argv, "f:l0" CLI_GLOBAL_SHORTOPTS, longopts, NULL)) != -1) {
		switch (c) {
		case 'f': o.dockerfile = optarg; break;
		case OPT_IGNORE_FILE: o.ignore_file = optarg; break;
		case OPT_WHY: why = 1; break;
		case OPT_EXCLUDED: excluded = 1; break;
		case 'l': lng = 1; break;
		case '0': nul = 1; break;
		case OPT_NORMALIZE_MODES: o.flags |= WALK_NORMALIZE_MODES; break;
		case OPT_NO_HARDLINKS: o.flags |= WALK_NO_HARDLINKS; break;
		case OPT_CLASSIC: o.flags |= WALK_CLASSIC; break;
		case OPT_DOCKER_CLIENT: docker_major = cli_docker_client_major(cmd, optarg); break;
		default: cli_global_opt(cmd, c, optarg);
		}
	}
	if (argc - optind > 1)
		cli_usage_error(cmd, "too many arguments");
	o.dir = optind < argc ? argv[optind] : ".";
	cli_docker_client_flags(&o.flags, docker_major);
	if (excluded)
		o.flags |= WALK_EXCLUDED;
	if (!lng && !cli_opt.json)
		o.flags |= WALK_TYPES_ONLY; /* names need no stat */

	if (walk_run(&o, &r, &e)) {
		walk_release(&r);
		return cli_fail(&e);
	}
	for (i = 0; i < r.n; i++) {
		const struct walk_entry *we = &r.v[i];
		int isdir = we->type == WALK_DIR;

		if ((int)we->excluded != excluded)
			continue;
		if (cli_opt.json) {
			fputs("{\"path\":", stdout);
			cli_json_str(stdout, we->path, we->path_len);
			printf(",\"type\":\"%s\",\"mode\":\"%04o\"", type_name(we),
			       walk_archive_mode(we, (r.flags & WALK_NORMALIZE_MODES) != 0));
			if (we->type == WALK_REG)
				printf(",\"size\":%llu", (unsigned long long)we->size);
			if (we->link) {
				fputs(we->type == WALK_HARDLINK ? ",\"hardlink\":" : ",\"link\":",
				      stdout);
				cli_json_str(stdout, we->link, we->link_len);
			}
			if (we->deciding >= 0)
				print_why(stdout, &r, we->deciding, 1);
			fputs("}\n", stdout);
			continue;
		}
		if (lng) {
			if (we->type == WALK_REG)
				printf("%c %04o %12llu ", type_char(we), walk_archive_mode(we, (r.flags & WALK_NORMALIZE_MODES) != 0),
				       (unsigned long long)we->size);
			else
				printf("%c %04o %12s ", type_char(we), walk_archive_mode(we, (r.flags & WALK_NORMALIZE_MODES) != 0),
				       "-");
		}
		fwrite(we->path, 1, we->path_len, stdout);
		if (isdir)
			putchar('/');
		if (lng && we->link) {
			fputs(we->type == WALK_HARDLINK ? " => " : " -> ", stdout);
			fwrite(we->link, 1, we->link_len, stdout);
		}
		if (why && we->deciding >= 0)
			print_why(stdout, &r, we->deciding, 0);
		putchar(nul ? '\0' : '\n');
	}
	if (r.n_sockets_skipped && !cli_opt.quiet)
		cli_warn("%llu socket(s) skipped: sockets cannot be sent in a build context",
			 (unsigned long long)r.n_sockets_skipped);
	walk_release(&r);
	return EXIT_OK;
}
