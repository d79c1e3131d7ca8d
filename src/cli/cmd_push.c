/*
 * ctxpack push: upload FILE as the single layer of an OCI artifact to a
 * registry or an oci: layout, and print the manifest digest.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ctxpack/registry.h"

enum {
	OPT_ARTIFACT_TYPE = OPT_CMD_BASE,
	OPT_MEDIA_TYPE,
	OPT_TITLE,
	OPT_MOUNT_FROM,
};

static void push_log(void *arg, const char *msg)
{
	(void)arg;
	if (!cli_opt.verbose)
		return;
	cli_log_line(msg);
}

static void print_json(const char *ref, const struct reg_push_out *o)
{
	const char *title = reg_annot_get(o->layer.annotations, o->layer.nannotations,
					  REG_ANNOT_TITLE);

	printf("{\"digest\":\"%s\",\"size\":%llu,\"ref\":", o->digest,
	       (unsigned long long)o->size);
	cli_json_str(stdout, ref, strlen(ref));
	printf(",\"layer\":{\"mediaType\":");
	cli_json_str(stdout, o->layer.media_type, strlen(o->layer.media_type));
	printf(",\"digest\":\"%s\",\"size\":%llu", o->layer.digest,
	       (unsigned long long)o->layer.size);
	if (title) {
		printf(",\"title\":");
		cli_json_str(stdout, title, strlen(title));
	}
	printf("},\"uploaded\":%llu}\n", (unsigned long long)o->sent);
}

int cmd_push(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"artifact-type", required_argument, NULL, OPT_ARTIFACT_TYPE},
		{"annotation", required_argument, NULL, 'a'},
		{"media-type", required_argument, NULL, OPT_MEDIA_TYPE},
		{"title", required_argument, NULL, OPT_TITLE},
		{"mount-from", required_argument, NULL, OPT_MOUNT_FROM},
		CLI_REG_LONGOPTS,
		CLI_GLOBAL_LONGOPTS,
		{NULL, 0, NULL, 0},
	};
	const struct cli_cmd *cmd = cli_find("push");
	struct reg_kv *annots = NULL;
	size_t nannots = 0, i;
	struct reg_opts o;
	struct reg_push_in in;
	struct reg_push_out out;
	struct reg_store *s = NULL;
	struct err e = ERR_INIT;
	const char *file, *refstr, *tag;
	char *canon = NULL;
	int c, rc, status = EXIT_FAIL;

	reg_opts_init(&o);
	memset(&in, 0, sizeof(in));
	memset(&out, 0, sizeof(out));
	o.log = push_log;
	o.progress = cli_progress_reg;
	optind = 1;
	while ((c = getopt_long(argc, argv, "a:" CLI_GLOBAL_SHORTOPTS, longopts, NULL)) != -1) {
		if (cli_global_opt(cmd, c, optarg) || cli_reg_opt(cmd, c, optarg, &o))
			continue;
		switch (c) {
		case OPT_ARTIFACT_TYPE:
			if (!*optarg || !strchr(optarg, '/'))
				cli_usage_error(cmd, "--artifact-type wants a media type like "
						"application/vnd.example.thing.v1, not '%s'", optarg);
			in.artifact_type = optarg;
			break;
		case 'a': {
			char *eq = strchr(optarg, '=');

			if (!eq || eq == optarg)
				cli_usage_error(cmd, "--annotation wants KEY=VALUE, not '%s'", optarg);
			annots = xreallocarray(annots, nannots + 1, sizeof(*annots));
			annots[nannots].key = xstrndup(optarg, (size_t)(eq - optarg));
			annots[nannots].value = xstrdup(eq + 1);
			for (i = 0; i < nannots; i++)
				if (!strcmp(annots[i].key, annots[nannots].key))
					cli_usage_error(cmd, "annotation '%s' given twice",
							annots[i].key);
			nannots++;
			break;
		}
		case OPT_MEDIA_TYPE:
			in.media_type = optarg;
			break;
		case OPT_TITLE:
			in.title = optarg;
			break;
		case OPT_MOUNT_FROM:
			in.mount_from = optarg;
			break;
		default:
			cli_usage_error(cmd, "unknown option");
		}
	}
	if (argc - optind != 2)
		cli_usage_error(cmd, "want FILE and REF");
	file = argv[optind];
	refstr = argv[optind + 1];
	if (reg_store_open(&s, refstr, &o, &e)) {
		status = cli_fail(&e);
		goto out;
	}
	if (reg_store_ref(s)->digest)
		cli_usage_error(cmd, "push needs a tag, not a digest: '%s'", refstr);
	tag = reg_ref_target(reg_store_ref(s));
	{
		struct reg_ref r = *reg_store_ref(s);

		r.tag = (char *)tag;
		canon = reg_ref_str(&r);
	}
	in.path = file;
	in.annotations = annots;
	in.nannotations = nannots;
	cli_progress_start("push", 0);
	rc = reg_push_artifact(s, tag, &in, &out, &e);
	cli_progress_end(!rc);
	if (rc) {
		err_wrap(&e, "push %s", canon);
		status = cli_fail(&e);
		goto out;
	}
	if (cli_opt.json) {
		print_json(canon, &out);
	} else {
		char h[32];

		printf("%s\n", out.digest);
		if (out.skipped && out.sent)
			cli_info("pushed %s to %s (blob already there; %s sent while "
				 "it was hashed)", file, canon, cli_human(out.sent, h));
		else if (cli_opt.verbose || out.sent)
			cli_info("pushed %s to %s (%s uploaded)", file, canon,
				 cli_human(out.sent, h));
		else
			cli_info("pushed %s to %s (blob already there)", file, canon);
	}
	status = EXIT_OK;
out:
	reg_push_out_release(&out);
	reg_store_free(s);
	for (i = 0; i < nannots; i++) {
		free(annots[i].key);
		free(annots[i].value);
	}
	free(annots);
	free(canon);
	return status;
}
