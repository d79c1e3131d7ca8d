/*
 * build's directory hand-over (docs/build.md, "BuildKit: a directory, not
 * a pipe"): a kept directory holding exactly the context, brought up to
 * date in place (mirror.h) unless the last sync's stamp says it is right,
 * the Dockerfile copied beside an ignore file that excludes nothing, and
 * the lock that makes a second build of the same context wait.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "ctxpack/mirror.h"
#include "ctxpack/walk.h"

/* cache_home()/build/<16 hex of sha256(root, flavour)> */
static char *state_dir(const char *root, unsigned flags)
{
	unsigned char md[32];
	char hex[65], fl[16], *home, *dir;
	struct sha256 s;

	snprintf(fl, sizeof(fl), "%u", flags & (WALK_CLASSIC | WALK_NORMALIZE_MODES |
						 WALK_NO_HARDLINKS | WALK_FSUTIL2020 |
						 WALK_OLD_MATCHER));
	sha256_init(&s, 0);
	sha256_update(&s, root, strlen(root) + 1);
	sha256_update(&s, fl, strlen(fl));
	sha256_final(&s, md);
	hex_encode(hex, md, 32);
	home = cache_home();
	dir = xasprintf("%s/build/%.16s", home, hex);
	free(home);
	return dir;
}

/* Write path with data unless it already holds exactly that. */
static int write_if_changed(const char *path, const char *data, size_t n, struct err *e)
{
	struct buf old = BUF_INIT;
	struct err ignore = ERR_INIT;

	if (!buf_read_file(&old, path, n + 1, &ignore) && old.len == n &&
	    !memcmp(old.data, data, n)) {
		buf_release(&old);
		return 0;
	}
	buf_release(&old);
	return atomic_write_nosync(path, data, n, 0644, e);
}

/*
 * What the last sync of a context's directory was made from: the stat of
 * every included entry as walked (a change to any file's content or mode
 * moves its ctime), the walk's flags, and the directory's own identity.
 * When it is the same as the last successful sync's, the directory is
 * still right and is not looked at (an unchanged rebuild then costs the
 * walk alone).
 */
static void sync_digest(const struct walk_result *wr, const struct stat *dir,
			unsigned char out[32])
{
	struct sha256 s;
	uint64_t v[12];
	size_t i;

	sha256_init(&s, 0);
	v[0] = wr->flags;
	v[1] = dir->st_dev;
	v[2] = dir->st_ino;
	sha256_update(&s, v, 3 * sizeof(v[0]));
	for (i = 0; i < wr->n; i++) {
		const struct walk_entry *we = &wr->v[i];

		if (we->excluded)
			continue;
		memset(v, 0, sizeof(v));
		v[0] = we->type;
		v[1] = we->mode;
		v[2] = we->size;
		v[3] = (uint64_t)we->mtime_ns;
		v[4] = (uint64_t)we->ctime_ns;
		v[5] = we->ino;
		v[6] = we->dev;
		v[7] = we->rdev;
		v[8] = we->path_len;
		v[9] = we->link_len;
		v[10] = we->nlink;
		sha256_update(&s, v, sizeof(v));
		sha256_update(&s, we->path, we->path_len);
		if (we->link)
			sha256_update(&s, we->link, we->link_len);
	}
	sha256_final(&s, out);
}

/* Was any entry changed so shortly before t that another change in the
 * same timestamp tick would not show? */
static int racy(const struct walk_result *wr, int64_t t)
{
	size_t i;

	for (i = 0; i < wr->n; i++) {
		int64_t c = wr->v[i].ctime_ns;
		int64_t win = c % 1000000000 ? 100000000LL : 2000000000LL;

		if (!wr->v[i].excluded && c >= t - win)
			return 1;
	}
	return 0;
}

/*
 * Bring the context's directory up to date and put the Dockerfile beside
 * it.  *ctx_dir and *df get the paths for COMMAND; *lockfd the lock held
 * until COMMAND is done (another build of this context waits).
 */
int build_dir_prepare(const struct walk_result *wr, const char *dockerfile, char **ctx_dir,
		      char **df, int *lockfd, struct err *e)
{
	char *sd = state_dir(wr->root, wr->flags), *p;
	const char *base = strrchr(dockerfile, '/') ? strrchr(dockerfile, '/') + 1 : dockerfile;
	struct mirror_stats ms;
	struct buf b = BUF_INIT;
	int ret;

	*ctx_dir = *df = NULL;
	ret = mkdir_p(sd, 0700, e);
	if (!ret) {
		p = xasprintf("%s/lock", sd);
		*lockfd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (*lockfd < 0)
			ret = err_errno(e, "cannot open %s", p);
		free(p);
	}
	if (!ret && flock(*lockfd, LOCK_EX | LOCK_NB)) {
		if (!cli_opt.quiet)
			cli_info("waiting for another build of %s", wr->root);
		while (flock(*lockfd, LOCK_EX) && errno == EINTR)
			if (build_interrupted(e))
				break;
		ret = e->code;
	}
	if (!ret) {
		struct stat dst;
		struct buf old = BUF_INIT;
		struct err ignore = ERR_INIT;
		char *stamp = xasprintf("%s/synced", sd);
		unsigned char d[32];
		int same = 0;
		int64_t t0 = time_real_ns();

		*ctx_dir = xasprintf("%s/context", sd);
		if (!stat(*ctx_dir, &dst)) {
			sync_digest(wr, &dst, d);
			same = !buf_read_file(&old, stamp, 64, &ignore) && old.len == 32 &&
			       !memcmp(old.data, d, 32);
		}
		buf_release(&old);
		memset(&ms, 0, sizeof(ms));
		if (!same) {
			/* not known to be right: the stamp goes until it is */
			unlink(stamp);
			ret = mirror_sync(wr, *ctx_dir, &ms, e);
			/* a file written in the walk's timestamp tick may change
			 * again without its stat showing it (git's racy rule):
			 * then the next run syncs again */
			if (!ret && !stat(*ctx_dir, &dst) && !racy(wr, t0)) {
				sync_digest(wr, &dst, d);
				ret = write_if_changed(stamp, (const char *)d, 32, e);
			}
		} else {
			ms.kept = wr->n;
		}
		free(stamp);
	}
	if (!ret && cli_opt.verbose)
		cli_info("context directory %s: %llu kept, %llu copied, %llu linked, "
			 "%llu directories made, %llu removed", *ctx_dir,
			 (unsigned long long)ms.kept, (unsigned long long)ms.copied,
			 (unsigned long long)ms.linked, (unsigned long long)ms.dirs,
			 (unsigned long long)ms.removed);
	/* the Dockerfile in a directory of its own, with an ignore file that
	 * excludes nothing: BuildKit then applies no patterns to the
	 * directory, which holds exactly the context already */
	if (!ret)
		ret = buf_read_file(&b, dockerfile, 16 << 20, e);
	if (!ret) {
		p = xasprintf("%s/dockerfile", sd);
		ret = mkdir_p(p, 0700, e);
		free(p);
	}
	if (!ret) {
		static const char nothing[] =
			"# ctxpack: the context directory holds exactly the context already\n";

		*df = xasprintf("%s/dockerfile/%s", sd, base);
		p = xasprintf("%s.dockerignore", *df);
		ret = write_if_changed(*df, b.data, b.len, e);
		if (!ret)
			ret = write_if_changed(p, nothing, sizeof(nothing) - 1, e);
		free(p);
	}
	buf_release(&b);
	free(sd);
	return ret;
}
