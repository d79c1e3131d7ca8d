/*
 * The progress display of --progress: one status line on stderr.
 *
 * Why one static display and not a handle: there is one stderr, so there
 * is at most one status line, and the message helpers (cli_warn, cli_info,
 * cli_fail, the -v loggers) must be able to erase it before they print
 * without being handed anything.
 *
 * Why rate-limited by the clock and not by bytes: updates come from the
 * pack writer once per frame and from libcurl many times a second; a
 * clock_gettime (vDSO) per update and a draw at most 8 times a second
 * cost nothing measurable, whatever the speed of the transfer.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define NS 1000000000ull
#define DRAW_EVERY (NS / 8) /* at most 8 draws a second */
/* plain lines: each 10% of a known total, with one at least every 5 s in
 * between; one a second when the total is not known */
#define LINE_EVERY NS
#define LINE_EVERY_KNOWN (5 * NS)

enum { P_OFF, P_TTY, P_LINES };

static struct {
	int mode;
	const char *label;
	uint64_t done, total;  /* total 0: unknown */
	uint64_t t0;           /* CLOCK_MONOTONIC ns at start */
	uint64_t next_draw;    /* ns since t0 */
	uint64_t next_line;    /* P_LINES */
	int step;              /* P_LINES: the last 10% step printed */
	int drawn;             /* P_TTY: the line is on the terminal */
	int updated;           /* a byte count came in */
	unsigned width;        /* P_TTY: terminal columns, 0 unknown */
} pg;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

static int percent(void)
{
	if (!pg.total)
		return -1;
	if (pg.done >= pg.total)
		return 100;
	return (int)(pg.done * 100 / pg.total);
}

/* "ctxpack: LABEL 12.3 MiB / 45.6 MiB (27%), 80.1 MB/s[, done]" */
static void draw(uint64_t elapsed, int final)
{
	char line[256], h1[32], h2[32];
	size_t n;
	int pct = percent();

	n = (size_t)snprintf(line, sizeof(line), "%sctxpack: %s %s", pg.mode == P_TTY ? "\r" : "",
			     pg.label, cli_human(pg.done, h1));
	if (pct >= 0 && n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n, " / %s (%d%%)",
				      cli_human(pg.total, h2), pct);
	/* a rate over less than a tenth of a second says little */
	if ((final || elapsed >= NS / 10) && elapsed && n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n, ", %.1f MB/s",
				      (double)pg.done / 1e6 / ((double)elapsed / NS));
	if (final && n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n, ", done");
	if (n > sizeof(line) - 4)
		n = sizeof(line) - 4; /* room for the end */
	if (pg.mode == P_TTY) {
		/* a line wider than the terminal would wrap, and \r would then
		 * redraw only its last row */
		if (pg.width > 1 && n > pg.width)
			n = pg.width; /* the \r plus width - 1 columns */
		memcpy(line + n, "\033[K", 3);
		n += 3;
		pg.drawn = 1;
	} else {
		line[n++] = '\n';
	}
	fwrite(line, 1, n, stderr); /* one write: stderr is unbuffered */
}

/* always: drawn on a terminal, else plain lines, even with -q (asked for
 * by name); auto: drawn on a terminal unless -q; never: nothing. */
static int wanted(void)
{
	if (cli_opt.progress == 1)
		return isatty(2) ? P_TTY : P_LINES;
	if (cli_opt.progress == 0 || cli_opt.quiet || !isatty(2))
		return P_OFF;
	return P_TTY;
}

void cli_progress_start(const char *label, uint64_t total)
{
	struct winsize ws;

	cli_progress_end(0);
	memset(&pg, 0, sizeof(pg));
	pg.mode = wanted();
	if (pg.mode == P_OFF)
		return;
	pg.label = label;
	pg.total = total;
	/* plain lines: the first after a second or at 10%, so that a short
	 * transfer leaves only its last line in a log */
	pg.next_line = total ? LINE_EVERY_KNOWN : LINE_EVERY;
	pg.t0 = now_ns();
	if (pg.mode == P_TTY && !ioctl(2, TIOCGWINSZ, &ws))
		pg.width = ws.ws_col;
}

void cli_progress_update(uint64_t done, uint64_t total)
{
	uint64_t t;

	if (pg.mode == P_OFF)
		return;
	pg.done = done;
	pg.updated = 1;
	if (total)
		pg.total = total;
	t = now_ns() - pg.t0;
	if (t < pg.next_draw)
		return;
	pg.next_draw = t + DRAW_EVERY;
	if (pg.mode == P_LINES) {
		int pct = percent(), step;

		/* not 100%: the last line says that, with ", done" */
		step = pct >= 0 && pct < 100 ? pct / 10 : pg.step;
		if (t < pg.next_line && step <= pg.step)
			return;
		pg.next_line = t + (pg.total ? LINE_EVERY_KNOWN : LINE_EVERY);
		pg.step = step;
	}
	draw(t, 0);
}

void cli_progress_reg(void *arg, uint64_t done, uint64_t total)
{
	(void)arg;
	cli_progress_update(done, total);
}

void cli_progress_clear(void)
{
	if (pg.mode != P_TTY || !pg.drawn)
		return;
	fputs("\r\033[K", stderr);
	pg.drawn = 0;
	pg.next_draw = 0; /* the next update draws it again */
}

void cli_progress_end(int ok)
{
	/* nothing moved (a blob already there, a miss): no line */
	if (pg.mode == P_LINES && ok && pg.updated)
		draw(now_ns() - pg.t0, 1);
	cli_progress_clear();
	pg.mode = P_OFF;
}
