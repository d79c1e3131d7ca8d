/*
 * The index handle: finding the index directory, opening the environment
 * under the shared lock of ctxpack.lock, and rebuilding it when it is
 * damaged (at open, or when a lookup or a write finds damage later),
 * with the exclusive lock and the rebuild generation that keep several
 * processes from rebuilding it twice.  The environment itself (opening
 * and checking one) is idx_env.c's.
 */
#include "ctxpack/index.h"

#include "idx_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define REBUILD_WAIT_MS 5000     /* wait this long for others to let go */

void idx_add_warning(struct idx *x, const char *fmt, ...)
{
	va_list ap;

	if (x->warn.len)
		buf_addstr(&x->warn, "; ");
	va_start(ap, fmt);
	buf_vaddf(&x->warn, fmt, ap);
	va_end(ap);
}

static int remove_env_files(const char *dir, struct err *e)
{
	static const char *const names[] = {"data.mdb", "lock.mdb"};
	size_t i;

	for (i = 0; i < 2; i++) {
		char *p = xasprintf("%s/%s", dir, names[i]);
		int r = unlink(p);

		if (r && errno != ENOENT) {
			err_errno(e, "cannot remove %s", p);
			free(p);
			return e->code;
		}
		free(p);
	}
	return 0;
}

/*
 * The rebuild generation, a u64 at the start of ctxpack.lock, counts the
 * rebuilds of this index.  A process that finds damage after it opened
 * the environment (in a page only a lookup or a write reads) compares it
 * with the one it opened: changed, another process has rebuilt the index
 * meanwhile and it is only reopened; the same, it is rebuilt here.  An
 * empty or unreadable file counts as 0.
 */
static uint64_t gen_read(const struct idx *x)
{
	unsigned char b[8];
	uint64_t g = 0;
	int i;

	if (pread(x->lockfd, b, 8, 0) != 8)
		return 0;
	for (i = 7; i >= 0; i--)
		g = g << 8 | b[i];
	return g;
}

static void gen_write(const struct idx *x, uint64_t g)
{
	unsigned char b[8];
	int i;

	for (i = 0; i < 8; i++)
		b[i] = (unsigned char)(g >> (8 * i));
	/* a full disk: the count stays, which costs at most one more
	 * rebuild by a process that saw the old environment damaged */
	(void)pwrite_all(x->lockfd, b, 8, 0);
}

/*
 * Open the environment, rebuilding it when it is damaged.  Every user
 * holds a shared flock on DIR/ctxpack.lock while it has the environment
 * open; removing the files takes the exclusive lock, so a process never
 * keeps using a data file whose lock file was replaced under it (LMDB
 * pairs the two).
 *
 * damaged is NULL when opening; after open, it says why the environment
 * this handle had (now closed; of generation x->gen) is damaged.  Then
 * an environment another process rebuilt meanwhile is taken as it is.
 * No room on the disk, or others keeping a damaged index open for more
 * than REBUILD_WAIT_MS, leave the handle without an index (a warning).
 */
static int env_open_or_rebuild(struct idx *x, const char *damaged, struct err *e)
{
	struct err why = ERR_INIT, e2 = ERR_INIT;
	uint64_t bad = x->gen, g;
	int waited = 0, known_bad = damaged != NULL;

	if (damaged)
		err_set(&why, ERR_CORRUPT, "%s", damaged);
	for (;;) {
		if (flock(x->lockfd, LOCK_SH))
			return err_errno(e, "cannot lock the index %s", x->dir);
		g = gen_read(x);
		if (!known_bad || g != bad) {
			err_clear(&why);
			if (!idx_env_try(x, &why)) {
				x->gen = g;
				return 0;
			}
			if (idx_nospace(why.saved_errno))
				goto without;
			known_bad = 1;
			bad = g;
		}
		flock(x->lockfd, LOCK_UN);
		if (!flock(x->lockfd, LOCK_EX | LOCK_NB))
			break;
		if (waited >= REBUILD_WAIT_MS) {
			/* others keep it open: work without it this time */
			if (flock(x->lockfd, LOCK_SH))
				return err_errno(e, "cannot lock the index %s", x->dir);
			idx_add_warning(x, "the index %s/data.mdb is unusable (%s) and in use by "
				       "other processes; hashing without it", x->dir,
				    why.msg);
			return 0;
		}
		sleep_ms(50);
		waited += 50;
	}
	/* exclusive: maybe another process rebuilt it meanwhile */
	g = gen_read(x);
	if (g != bad) {
		err_clear(&why);
		if (!idx_env_try(x, &why))
			goto shared;
		if (idx_nospace(why.saved_errno)) {
			flock(x->lockfd, LOCK_SH);
			goto without;
		}
	}
	if (!remove_env_files(x->dir, e))
		gen_write(x, ++g);
	if (err_isset(e) || idx_env_try(x, &e2)) {
		if (!err_isset(e))
			err_set(e, e2.code, "cannot create the index %s: %s", x->dir, e2.msg);
		e->saved_errno = e2.saved_errno;
		flock(x->lockfd, LOCK_UN);
		if (idx_nospace(e2.saved_errno)) {
			/* the damaged one is gone; no room for a new one */
			flock(x->lockfd, LOCK_SH);
			err_clear(e);
			err_set(&why, ERR_FAIL, "%s", e2.msg);
			goto without;
		}
		return e->code;
	}
	idx_add_warning(x, "the index %s/data.mdb %s (%s); rebuilt it", x->dir,
		    damaged ? "is damaged" : "could not be used", why.msg);
shared:
	x->gen = g;
	/* downgrade: the rebuilt environment is shared again */
	if (flock(x->lockfd, LOCK_SH)) {
		idx_env_close(x);
		return err_errno(e, "cannot lock the index %s", x->dir);
	}
	return 0;
without:
	idx_add_warning(x, "cannot use the index %s: %s; hashing without it", x->dir, why.msg);
	return 0;
}

/*
 * Damage found after open (a lookup, the check before a write, a fault):
 * the environment is dropped (abandon: after a fault in a write
 * transaction) and rebuilt, or, when that cannot be done, the handle goes
 * on without an index.  Never an error: the hashes do not depend on it.
 */
void idx_env_damaged(struct idx *x, const char *why, int abandon)
{
	struct err e = ERR_INIT;
	char *w = xstrdup(why);

	if (abandon)
		idx_env_abandon(x);
	else
		idx_env_close(x);
	flock(x->lockfd, LOCK_UN);
	x->rebuilds++;
	x->nowrite = 0;
	if (env_open_or_rebuild(x, w, &e)) {
		idx_env_close(x);
		idx_add_warning(x, "the index %s/data.mdb is damaged (%s) and could not be "
			       "rebuilt: %s", x->dir, w, e.msg);
	}
	free(w);
}

char *idx_dir_for(const char *dir)
{
	const char *env;
	char *home, *d;

	if (dir && *dir)
		return xstrdup(dir);
	env = env_get()->index;
	if (env)
		return xstrdup(env);
	home = cache_home();
	d = xasprintf("%s/index", home);
	free(home);
	return d;
}

int idx_dir_inside(const char *dir, const char *real, const char *root, struct err *e)
{
	if (!real || !path_holds(root, real))
		return 0;
	return err_set(e, ERR_USAGE,
		       "the index directory %s is inside the context %s; "
		       "put it elsewhere with --index or CTXPACK_INDEX",
		       dir, root);
}

int idx_check_dir(const char *dir, const char *root, struct err *e)
{
	char *d = idx_dir_for(dir);
	char *real = path_resolve_future(d);
	int ret = idx_dir_inside(d, real, root, e);

	free(real);
	free(d);
	return ret;
}

int idx_open(struct idx **out, const char *dir, unsigned flags, struct err *e)
{
	struct idx *x = xcalloc(1, sizeof(*x));
	char *lockpath = NULL;
	int ret;

	*out = NULL;
	x->lockfd = -1;
	x->flags = flags;
	buf_init(&x->warn, 0);
	x->dir = idx_dir_for(dir);
	ret = mkdir_p(x->dir, 0755, e);
	if (ret) {
		err_wrap(e, "cannot create the index directory");
		goto out;
	}
	x->real = realpath(x->dir, NULL);
	if (!x->real) {
		ret = err_errno(e, "cannot resolve the index directory %s", x->dir);
		goto out;
	}
	lockpath = xasprintf("%s/ctxpack.lock", x->dir);
	x->lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (x->lockfd < 0) {
		ret = err_errno(e, "cannot open %s", lockpath);
		goto out;
	}
	ret = env_open_or_rebuild(x, NULL, e);
out:
	free(lockpath);
	if (ret) {
		idx_close(x);
		return ret;
	}
	*out = x;
	return 0;
}

void idx_close(struct idx *x)
{
	if (!x)
		return;
	idx_env_close(x);
	if (x->lockfd >= 0)
		close(x->lockfd); /* releases the flock */
	free(x->dir);
	free(x->real);
	buf_release(&x->warn);
	free(x->df);
	free(x);
}

const char *idx_dir(const struct idx *x)
{
	return x->dir;
}

const char *idx_warning(const struct idx *x)
{
	return x->warn.len ? x->warn.data : NULL;
}

void idx_set_threads(struct idx *x, unsigned n)
{
	x->threads = n;
}
