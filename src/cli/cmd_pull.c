/*
 * ctxpack pull: download the single layer of an OCI artifact (verified) to
 * a file or stdout.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ctxpack/registry.h"

static void pull_log(void *arg, const char *msg)
{
	(void)arg;
	if (!cli_opt.verbose)
		return;
	cli_log_line(msg);
}

/* A layer title is used as a file name in the current directory only. */
static int safe_name(const char *t)
{
	const unsigned char *p;

	if (!t || !*t || strchr(t, '/') || strstr(t, "..") || !strcmp(t, ".") ||
	    !strcmp(t, "-") || *t == '-')
		return 0;
	for (p = (const unsigned char *)t; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

int cmd_pull(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"output", required_argument, NULL, 'o'},
		{"force", no_argument, NULL, 'F'},
		CLI_REG_LONGOPTS,
		CLI_GLOBAL_LONGOPTS,
		{NULL, 0, NULL, 0},
	};
	const struct cli_cmd *cmd = cli_find("pull");
	const char *output = NULL, *refstr, *target, *title;
	struct reg_opts o;
	struct reg_store *s = NULL;
	struct reg_manifest m;
	struct reg_desc *l;
	struct err e = ERR_INIT;
	char digest[REG_DIGEST_SIZE], *canon = NULL, h[32];
	int c, rc, status = EXIT_FAIL, force = 0, noreplace = 0;

	reg_opts_init(&o);
	memset(&m, 0, sizeof(m));
	o.log = pull_log;
	o.progress = cli_progress_reg;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:" CLI_GLOBAL_SHORTOPTS, longopts, NULL)) != -1) {
		if (cli_global_opt(cmd, c, optarg) || cli_reg_opt(cmd, c, optarg, &o))
			continue;
		switch (c) {
		case 'o':
			output = optarg;
			break;
		case 'F':
			force = 1;
			break;
		default:
			cli_usage_error(cmd, "unknown option");
		}
	}
	if (argc - optind != 1)
		cli_usage_error(cmd, "want one REF");
	refstr = argv[optind];
	if (output && !*output)
		cli_usage_error(cmd, "-o wants a file name or '-'");
	if (output && !strcmp(output, "-") && cli_opt.json)
		cli_usage_error(cmd, "--json prints to stdout; it cannot go with -o -");
	if (reg_store_open(&s, refstr, &o, &e)) {
		status = cli_fail(&e);
		goto out;
	}
	target = reg_ref_target(reg_store_ref(s));
	canon = reg_ref_str(reg_store_ref(s));
	if (reg_artifact_get(s, target, &m, digest, &e)) {
		err_wrap(&e, "pull %s", canon);
		status = cli_fail(&e);
		goto out;
	}
	l = &m.layers[0];
	title = reg_annot_get(l->annotations, l->nannotations, REG_ANNOT_TITLE);
	if (!output) {
		if (!title) {
			err_set(&e, ERR_USAGE, "pull %s: the layer has no title annotation; "
				"name the output with -o FILE", canon);
			status = cli_fail(&e);
			goto out;
		}
		if (!safe_name(title)) {
			err_set(&e, ERR_USAGE, "pull %s: refusing the layer title '%s' as a file "
				"name (it has '/', '..', a leading '-' or control characters); use -o FILE",
				canon, title);
			status = cli_fail(&e);
			goto out;
		}
		output = title;
		/* a name the store chose never replaces a file of the user's */
		noreplace = !force;
	}
	cli_progress_start("pull", l->size);
	if (!strcmp(output, "-"))
		rc = reg_blob_fetch_fd(s, l->digest, (int64_t)l->size, STDOUT_FILENO, &e);
	else
		rc = reg_blob_fetch_file(s, l->digest, (int64_t)l->size, output, noreplace, &e);
	cli_progress_end(!rc);
	if (rc) {
		err_wrap(&e, "pull %s", canon);
		status = cli_fail(&e);
		goto out;
	}
	if (cli_opt.json) {
		printf("{\"digest\":\"%s\",\"ref\":", digest);
		cli_json_str(stdout, canon, strlen(canon));
		printf(",\"output\":");
		cli_json_str(stdout, output, strlen(output));
		printf(",\"layer\":{\"mediaType\":");
		cli_json_str(stdout, l->media_type, strlen(l->media_type));
		printf(",\"digest\":\"%s\",\"size\":%llu", l->digest,
		       (unsigned long long)l->size);
		if (title) {
			printf(",\"title\":");
			cli_json_str(stdout, title, strlen(title));
		}
		printf("}}\n");
	} else if (strcmp(output, "-")) {
		cli_info("pulled %s to %s (%s, %s)", canon, output,
			 cli_human(l->size, h), l->digest);
	}
	status = EXIT_OK;
out:
	reg_manifest_release(&m);
	reg_store_free(s);
	free(canon);
	return status;
}
