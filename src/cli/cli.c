/* Shared CLI helpers: global options, messages, output checks. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ctxpack/registry.h"

struct cli_global cli_opt = {0, 0, 0, -1};

void cli_help(const struct cli_cmd *cmd)
{
	printf("usage: %s\n\n%s\n", cmd->usage, cmd->summary);
	if (cmd->help)
		printf("\n%s", cmd->help);
	printf("\n" CLI_GLOBAL_HELP);
	exit(cli_finish(EXIT_OK));
}

void cli_usage_error(const struct cli_cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ctxpack %s: ", cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: %s\ntry 'ctxpack help %s'\n", cmd->usage, cmd->name);
	exit(EXIT_USAGE);
}

int cli_global_opt(const struct cli_cmd *cmd, int c, const char *arg)
{
	switch (c) {
	case 'h':
		cli_help(cmd);
	case 'q':
		cli_opt.quiet = 1;
		return 1;
	case 'v':
		cli_opt.verbose++;
		return 1;
	case OPT_JSON:
		cli_opt.json = 1;
		return 1;
	case OPT_PROGRESS:
		if (!strcmp(arg, "auto"))
			cli_opt.progress = -1;
		else if (!strcmp(arg, "always"))
			cli_opt.progress = 1;
		else if (!strcmp(arg, "never"))
			cli_opt.progress = 0;
		else
			cli_usage_error(cmd, "--progress takes auto, always or never, not '%s'", arg);
		return 1;
	case '?':
		cli_usage_error(cmd, "unknown option or missing argument");
	}
	return 0;
}

/* The length of the valid UTF-8 sequence at p[i] (2-4 bytes, no
 * overlong form, no surrogate, nothing past U+10FFFF), else 0. */
static size_t utf8_seq(const unsigned char *p, size_t i, size_t len)
{
	unsigned char c = p[i];
	size_t n = 0, k;

	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	if (!n || i + n > len)
		return 0;
	for (k = 1; k < n; k++)
		if ((p[i + k] & 0xc0) != 0x80)
			return 0;
	if (n == 3 && ((c == 0xe0 && p[i + 1] < 0xa0) || (c == 0xed && p[i + 1] > 0x9f)))
		return 0;
	if (n == 4 && ((c == 0xf0 && p[i + 1] < 0x90) || (c == 0xf4 && p[i + 1] > 0x8f)))
		return 0;
	return n;
}

void cli_msg(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s), i = 0;

	while (i < len) {
		unsigned char c = p[i];
		size_t n;

		if (c == '\n') {
			fputs("\\n", f);
			i++;
			continue;
		}
		if (c < 0x20 || c == 0x7f) {
			fprintf(f, "\\x%02x", c);
			i++;
			continue;
		}
		if (c < 0x80) {
			fputc(c, f);
			i++;
			continue;
		}
		/* one valid UTF-8 sequence that is not a C1 control, else bytes */
		n = utf8_seq(p, i, len);
		if (n && !(c == 0xc2 && p[i + 1] <= 0x9f)) {
			fwrite(p + i, 1, n, f);
			i += n;
			continue;
		}
		fprintf(f, "\\x%02x", c);
		i++;
	}
}

/* "ctxpack: " PREFIX + the message, escaped, on one line of stderr. */
static void say(const char *prefix, const char *fmt, va_list ap)
{
	char line[4096];

	vsnprintf(line, sizeof(line), fmt, ap);
	cli_progress_clear();
	fprintf(stderr, "ctxpack: %s", prefix);
	cli_msg(stderr, line);
	fputc('\n', stderr);
}

int cli_fail(const struct err *e)
{
	cli_progress_clear();
	fputs("ctxpack: error: ", stderr);
	cli_msg(stderr, e->msg[0] ? e->msg : "failed");
	fputc('\n', stderr);
	return e->code == ERR_USAGE ? EXIT_USAGE : EXIT_FAIL;
}

void cli_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	say("warning: ", fmt, ap);
	va_end(ap);
}

void cli_info(const char *fmt, ...)
{
	va_list ap;

	if (cli_opt.quiet)
		return;
	va_start(ap, fmt);
	say("", fmt, ap);
	va_end(ap);
}

void cli_log_line(const char *msg)
{
	cli_progress_clear();
	fputs("ctxpack: ", stderr);
	cli_msg(stderr, msg);
	fputc('\n', stderr);
}

int cli_finish(int status)
{
	if (fflush(stdout) || ferror(stdout)) {
		if (errno != EPIPE)
			fprintf(stderr, "ctxpack: error: cannot write to standard output: %s\n",
				strerror(errno));
		return status ? status : EXIT_FAIL;
	}
	return status;
}

void cli_json_str(FILE *f, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	fputc('"', f);
	while (i < len) {
		unsigned char c = p[i];
		size_t n;

		if (c == '"' || c == '\\') {
			fputc('\\', f);
			fputc(c, f);
			i++;
			continue;
		}
		if (c < 0x20 || c == 0x7f) {
			fprintf(f, "\\u%04x", c);
			i++;
			continue;
		}
		if (c < 0x80) {
			fputc(c, f);
			i++;
			continue;
		}
		/* one valid UTF-8 sequence as it is; invalid bytes are escaped */
		n = utf8_seq(p, i, len);
		if (n) {
			fwrite(p + i, 1, n, f);
			i += n;
			continue;
		}
		fprintf(f, "\\udc%02x", c); /* lone surrogate escape, like Python's surrogateescape */
		i++;
	}
	fputc('"', f);
}

const char *cli_human(unsigned long long n, char out[32])
{
	static const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	int i = 0;

	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(out, 32, "%llu B", n);
	else
		snprintf(out, 32, "%.1f %s", v, u[i]);
	return out;
}

int cli_reg_opt(const struct cli_cmd *cmd, int c, const char *arg, struct reg_opts *o)
{
	uint64_t t;

	switch (c) {
	case OPT_REG_CA_FILE:
		o->ca_file = arg;
		return 1;
	case OPT_REG_INSECURE:
		o->insecure = 1;
		return 1;
	case OPT_REG_TIMEOUT:
	case OPT_REG_IDLE_TIMEOUT:
		if (parse_u64(arg, &t) || !t || t > 86400)
			cli_usage_error(cmd, "--%s wants seconds (1-86400), not '%s'",
					c == OPT_REG_TIMEOUT ? "timeout" : "idle-timeout", arg);
		o->idle_timeout = (unsigned)t;
		return 1;
	}
	return 0;
}
