/*
 * ctxpack image: assemble an OCI image from a base and directories, with
 * the config a Dockerfile would set, and push it (image.h, docs/image.md).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ctxpack/image.h"
#include "ctxpack/pack.h"
#include "ctxpack/walk.h"

enum {
	OPT_FROM = OPT_CMD_BASE,
	OPT_PLATFORM,
	OPT_LAYER,
	OPT_WORKDIR,
	OPT_ENV,
	OPT_ENTRYPOINT,
	OPT_CMD,
	OPT_USER,
	OPT_EXPOSE,
	OPT_LABEL,
	OPT_IGNORE_FILE,
};

static void image_log(void *arg, const char *msg)
{
	(void)arg;
	if (!cli_opt.verbose)
		return;
	cli_progress_clear();
	fprintf(stderr, "ctxpack: %s\n", msg);
}

/* A list of strings that grows, for repeated options. */
struct strv {
	char **v;
	size_t n;
};

static void strv_push(struct strv *s, char *p)
{
	s->v = xreallocarray(s->v, s->n + 2, sizeof(*s->v));
	s->v[s->n++] = p;
	s->v[s->n] = NULL;
}

static void strv_clear(struct strv *s)
{
	img_strv_free(s->v, s->n);
	s->v = NULL;
	s->n = 0;
}

/* A JSON array of the strings, for history lines ("CMD [...]"). */
static char *json_array_str(const char *head, char **v, size_t n)
{
	char *out = NULL;
	size_t len = 0, i;
	FILE *f = open_memstream(&out, &len);

	fputs(head, f);
	fputc('[', f);
	for (i = 0; i < n; i++) {
		if (i)
			fputc(',', f);
		cli_json_str(f, v[i], strlen(v[i]));
	}
	fputc(']', f);
	fclose(f);
	return out;
}

static void json_opt_str(const char *key, const char *v)
{
	printf(",\"%s\":", key);
	if (v)
		cli_json_str(stdout, v, strlen(v));
	else
		printf("null");
}

static void print_json(const struct img_result *r)
{
	size_t i;

	printf("{\"digest\":\"%s\",\"size\":%llu,\"config\":\"%s\",\"config_size\":%llu",
	       r->digest, (unsigned long long)r->size, r->config_digest,
	       (unsigned long long)r->config_size);
	json_opt_str("base", r->base);
	printf(",\"layers\":[");
	for (i = 0; i < r->nlayers; i++) {
		const struct img_layer *L = &r->layers[i];

		printf("%s{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%llu,\"diff_id\":\"%s\"",
		       i ? "," : "", L->desc.media_type, L->desc.digest,
		       (unsigned long long)L->desc.size, L->diff_id);
		json_opt_str("source", L->src);
		json_opt_str("dest", L->dest);
		if (L->src)
			printf(",\"entries\":%llu,\"reused\":%s,\"packed\":%s,\"made\":%s,"
			       "\"frames_compressed\":%llu,\"frames_reused\":%llu,"
			       "\"files_hashed\":%llu,\"files_reused\":%llu",
			       (unsigned long long)L->entries, L->reused ? "true" : "false",
			       L->packed ? "true" : "false", L->made ? "true" : "false",
			       (unsigned long long)L->fst.frames_compressed,
			       (unsigned long long)L->fst.frames_reused,
			       (unsigned long long)L->ist.hashed,
			       (unsigned long long)L->ist.reused);
		printf("}");
	}
	printf("],\"outputs\":[");
	for (i = 0; i < r->noutputs; i++) {
		const struct img_output *out = &r->outputs[i];

		printf("%s{\"ref\":", i ? "," : "");
		cli_json_str(stdout, out->ref, strlen(out->ref));
		printf(",\"uploaded_bytes\":%llu,\"uploaded\":%u,\"skipped\":%u,\"mounted\":%u,"
		       "\"copied\":%u}", (unsigned long long)out->sent, out->uploaded,
		       out->skipped, out->mounted, out->copied);
	}
	printf("]}\n");
}

static void print_info(const struct img_result *r)
{
	char h[32];
	size_t i;

	for (i = r->nbase; i < r->nlayers; i++) {
		const struct img_layer *L = &r->layers[i];

		cli_info("layer %s -> %s: %s %s (%s)", L->src, L->dest,
			 L->reused ? "unchanged," : L->fst.frames_compressed ? "packed," :
			 "packed from the frame store,", L->desc.digest,
			 cli_human(L->desc.size, h));
	}
	for (i = 0; i < r->noutputs; i++) {
		const struct img_output *out = &r->outputs[i];

		cli_info("pushed %s: %s uploaded (%u layer%s sent, %u already there%s%s)",
			 out->ref, cli_human(out->sent, h), out->uploaded,
			 out->uploaded == 1 ? "" : "s", out->skipped,
			 out->mounted ? ", base layers mounted" : "",
			 out->copied ? ", base layers copied" : "");
	}
}

int cmd_image(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"from", required_argument, NULL, OPT_FROM},
		{"platform", required_argument, NULL, OPT_PLATFORM},
		{"layer", required_argument, NULL, OPT_LAYER},
		{"workdir", required_argument, NULL, OPT_WORKDIR},
		{"env", required_argument, NULL, OPT_ENV},
		{"entrypoint", required_argument, NULL, OPT_ENTRYPOINT},
		{"cmd", required_argument, NULL, OPT_CMD},
		{"user", required_argument, NULL, OPT_USER},
		{"expose", required_argument, NULL, OPT_EXPOSE},
		{"label", required_argument, NULL, OPT_LABEL},
		{"ignore-file", required_argument, NULL, OPT_IGNORE_FILE},
		{"tag", required_argument, NULL, 't'},
		{"compress", required_argument, NULL, OPT_PACK_COMPRESS},
		{"level", required_argument, NULL, OPT_PACK_LEVEL},
		{"threads", required_argument, NULL, OPT_PACK_THREADS},
		{"index", required_argument, NULL, OPT_PACK_INDEX},
		{"no-cache", no_argument, NULL, OPT_PACK_NO_CACHE},
		{"cache-max", required_argument, NULL, OPT_PACK_CACHE_MAX},
		CLI_REG_LONGOPTS,
		CLI_GLOBAL_LONGOPTS,
		{NULL, 0, NULL, 0},
	};
	const struct cli_cmd *cmd = cli_find("image");
	struct img_opts o;
	struct img_result r;
	struct walk_opts wo;
	struct pack_opts po;
	struct cli_pack_args pa;
	struct err e = ERR_INIT;
	struct img_layer_spec *layers = NULL;
	struct strv bufs = {0}, env = {0}, expose = {0}, hist = {0}, outs = {0};
	struct reg_kv *labels = NULL;
	char **ep = NULL, **cm = NULL;
	size_t nlayers = 0, nlabels = 0, nep = 0, ncm = 0, i;
	const char *workdir = NULL, *user = NULL, *ignore_file = NULL;
	int c, status = EXIT_FAIL, set_ep = 0, set_cmd = 0;

	img_opts_init(&o);
	memset(&r, 0, sizeof(r));
	memset(&wo, 0, sizeof(wo));
	pack_opts_init(&po);
	po.compress = PACK_GZIP; /* every Docker pulls it */
	pa.wo = &wo;
	pa.po = &po;
	pa.fo = &o.fo;
	pa.index_dir = &o.index_dir;
	pa.no_cache = &o.no_cache;
	o.log = image_log;
	o.ro.log = image_log;
	optind = 1;
	while ((c = getopt_long(argc, argv, "t:" CLI_GLOBAL_SHORTOPTS, longopts, NULL)) != -1) {
		if (cli_global_opt(cmd, c, optarg) || cli_reg_opt(cmd, c, optarg, &o.ro) ||
		    cli_pack_opt(cmd, c, optarg, &pa))
			continue;
		switch (c) {
		case OPT_FROM:
			o.from = optarg;
			break;
		case OPT_PLATFORM:
			o.platform = optarg;
			break;
		case OPT_LAYER: {
			char *b, *pfx;

			layers = xreallocarray(layers, nlayers + 1, sizeof(*layers));
			if (img_parse_layer(optarg, &layers[nlayers], &b, &e) ||
			    img_dest_prefix(layers[nlayers].dest, &pfx, &e))
				cli_usage_error(cmd, "%s", e.msg);
			free(pfx);
			layers[nlayers].ignore_file = ignore_file;
			strv_push(&bufs, b);
			nlayers++;
			break;
		}
		case OPT_IGNORE_FILE:
			/* for the --layer options after it; "" for their own again */
			ignore_file = *optarg ? optarg : NULL;
			break;
		case OPT_WORKDIR:
			if (!*optarg)
				cli_usage_error(cmd, "--workdir wants a directory");
			workdir = optarg;
			break;
		case OPT_ENV:
			if (!strchr(optarg, '=') || *optarg == '=')
				cli_usage_error(cmd, "--env wants NAME=VALUE, not '%s'", optarg);
			strv_push(&env, xstrdup(optarg));
			break;
		case OPT_ENTRYPOINT:
		case OPT_CMD: {
			char ***v = c == OPT_CMD ? &cm : &ep;
			size_t *n = c == OPT_CMD ? &ncm : &nep;

			img_strv_free(*v, *n);
			if (img_parse_command(optarg, v, n))
				cli_warn("--%s '%s' is not a JSON array of strings: run by "
					 "/bin/sh -c as a shell command", c == OPT_CMD ?
					 "cmd" : "entrypoint", optarg);
			if (c == OPT_CMD)
				set_cmd = 1;
			else
				set_ep = 1;
			break;
		}
		case OPT_USER:
			if (!*optarg)
				cli_usage_error(cmd, "--user wants a user[:group]");
			user = optarg;
			break;
		case OPT_EXPOSE: {
			char *p;

			if (img_parse_port(optarg, &p, &e))
				cli_usage_error(cmd, "%s", e.msg);
			strv_push(&expose, p);
			break;
		}
		case OPT_LABEL: {
			const char *eq = strchr(optarg, '=');

			if (!eq || eq == optarg)
				cli_usage_error(cmd, "--label wants KEY=VALUE, not '%s'", optarg);
			labels = xreallocarray(labels, nlabels + 1, sizeof(*labels));
			labels[nlabels].key = xstrndup(optarg, (size_t)(eq - optarg));
			labels[nlabels].value = xstrdup(eq + 1);
			nlabels++;
			break;
		}
		case 't':
			strv_push(&outs, xstrdup(optarg));
			break;
		default:
			cli_usage_error(cmd, "unknown option");
		}
	}
	if (optind < argc)
		cli_usage_error(cmd, "unexpected argument '%s' (layers are --layer SRC:DEST)",
				argv[optind]);
	if (!o.from)
		cli_usage_error(cmd, "--from REF is required (--from scratch for no base)");
	if (pack_source_date_epoch(env_get()->source_date_epoch, &o.created, &e))
		return cli_fail(&e);

	/* the history: one line per config instruction, as a Dockerfile's */
	if (workdir)
		strv_push(&hist, xasprintf("WORKDIR %s", workdir));
	for (i = 0; i < env.n; i++)
		strv_push(&hist, xasprintf("ENV %s", env.v[i]));
	if (user)
		strv_push(&hist, xasprintf("USER %s", user));
	for (i = 0; i < expose.n; i++)
		strv_push(&hist, xasprintf("EXPOSE %s", expose.v[i]));
	for (i = 0; i < nlabels; i++)
		strv_push(&hist, xasprintf("LABEL %s=%s", labels[i].key, labels[i].value));
	if (set_ep)
		strv_push(&hist, json_array_str("ENTRYPOINT ", ep, nep));
	if (set_cmd)
		strv_push(&hist, json_array_str("CMD ", cm, ncm));

	o.layers = layers;
	o.nlayers = nlayers;
	o.compress = po.compress;
	o.level = po.level;
	o.threads = po.threads;
	o.edit.workdir = workdir;
	o.edit.user = user;
	o.edit.env = (const char *const *)env.v;
	o.edit.nenv = env.n;
	o.edit.set_entrypoint = set_ep;
	o.edit.entrypoint = (const char *const *)ep;
	o.edit.nentrypoint = nep;
	o.edit.set_cmd = set_cmd;
	o.edit.cmd = (const char *const *)cm;
	o.edit.ncmd = ncm;
	o.edit.expose = (const char *const *)expose.v;
	o.edit.nexpose = expose.n;
	o.edit.labels = labels;
	o.edit.nlabels = nlabels;
	o.edit_history = (const char *const *)hist.v;
	o.nedit_history = hist.n;
	o.outputs = (const char *const *)outs.v;
	o.noutputs = outs.n;

	if (img_build(&o, &r, &e)) {
		if (r.warnings.len)
			cli_warn("%s", r.warnings.data);
		status = cli_fail(&e);
		goto out;
	}
	if (r.warnings.len)
		cli_warn("%s", r.warnings.data);
	if (cli_opt.json) {
		print_json(&r);
	} else {
		printf("%s\n", r.digest);
		if (!cli_opt.quiet)
			print_info(&r);
	}
	status = EXIT_OK;
out:
	img_result_release(&r);
	free(layers);
	strv_clear(&bufs);
	strv_clear(&env);
	strv_clear(&expose);
	strv_clear(&hist);
	strv_clear(&outs);
	for (i = 0; i < nlabels; i++) {
		free(labels[i].key);
		free(labels[i].value);
	}
	free(labels);
	img_strv_free(ep, nep);
	img_strv_free(cm, ncm);
	return status;
}
