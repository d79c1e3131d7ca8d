/*
 * A stat-keyed cache of file digests, so that pushing a large file that has
 * not changed since it was last hashed costs a stat, not a read (a re-push
 * of a 256 MiB blob is then a few HEAD requests).
 *
 * Entries live in $XDG_CACHE_HOME/ctxpack/digests/<dev>-<ino> and hold the
 * size, mtime and ctime (ns) the digest was computed for.  Why it is safe:
 * any write to the file changes its mtime or ctime, and an entry is only
 * stored when both are older than the moment hashing started by more than
 * the timestamp granularity (git's "racily clean" rule), so a write in the
 * same timestamp tick as the hash cannot hide.  The granularity is taken
 * as 2 s for files whose timestamps have no sub-second part (FAT, some
 * network file systems) and 100 ms otherwise (nanosecond timestamps from
 * the kernel's coarse clock tick every few ms).  Best effort: every
 * failure is a miss.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "reg_impl.h"

static char *entry_path(const struct stat *st)
{
	char *home = cache_home(), *p;

	p = xasprintf("%s/digests/%llx-%llx", home, (unsigned long long)st->st_dev,
		      (unsigned long long)st->st_ino);
	free(home);
	return p;
}

static void fmt_entry(char *out, size_t n, const struct stat *st, const char *digest)
{
	snprintf(out, n, "v1 %lld %lld %ld %lld %ld %s\n", (long long)st->st_size,
		 (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec,
		 (long long)st->st_ctim.tv_sec, st->st_ctim.tv_nsec, digest);
}

int reg_digest_cache_get(const struct stat *st, char out[REG_DIGEST_SIZE])
{
	char *p = entry_path(st), want[256], got[256];
	ssize_t n = -1;
	int fd, hit = 0;

	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read_full(fd, got, sizeof(got) - 1);
		close(fd);
	}
	if (n > 72) {
		const char *dg;

		got[n] = '\0';
		dg = got + n - 72; /* "sha256:<64>\n" at the end */
		if (got[n - 1] == '\n') {
			char d[REG_DIGEST_SIZE];

			memcpy(d, dg, 71);
			d[71] = '\0';
			fmt_entry(want, sizeof(want), st, d);
			if (reg_digest_valid(d) && !strcmp(want, got)) {
				memcpy(out, d, REG_DIGEST_SIZE);
				hit = 1;
			}
		}
	}
	free(p);
	return hit;
}

/* ns since the epoch */
static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

void reg_digest_cache_put(const struct stat *st, const char *digest,
			  const struct timespec *hashed_at)
{
	int coarse = st->st_mtim.tv_nsec == 0 && st->st_ctim.tv_nsec == 0;
	int64_t margin = coarse ? 2000000000LL : 100000000LL;
	int64_t limit = ts_ns(hashed_at) - margin;
	char *p, *dir, line[256];
	struct atomic_file af;
	struct err e = ERR_INIT;

	if (ts_ns(&st->st_mtim) >= limit || ts_ns(&st->st_ctim) >= limit)
		return; /* racily clean: do not trust it later */
	p = entry_path(st);
	dir = xstrndup(p, (size_t)(strrchr(p, '/') - p));
	fmt_entry(line, sizeof(line), st, digest);
	if (!mkdir_p(dir, 0755, &e) && !atomic_open(&af, p, 0644, &e)) {
		if (write_all(af.fd, line, strlen(line)))
			atomic_abort(&af);
		else
			atomic_commit(&af, &e);
	}
	free(dir);
	free(p);
}
