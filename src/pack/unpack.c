/*
 * unpack: extract an archive below a directory fd, never writing outside
 * it or through a link (include/ctxpack/unpack.h has the rules).
 *
 * Why fds and not paths: a path handed to open() is resolved through any
 * symlink on the way, including one the archive itself created a moment
 * earlier ("a -> /etc", then "a/passwd").  Here each directory is opened
 * with O_NOFOLLOW relative to its parent's fd, and each file is created
 * with O_EXCL|O_NOFOLLOW relative to its directory's fd, so a symlink is
 * only ever created, never followed.  That is what makes it safe to
 * restore symlinks verbatim, wherever they point: a venv's
 * bin/python3 -> /usr/bin/python3 is data, not a way out.  The chain of
 * open directory fds for the current entry's parent is kept between
 * entries: archives from pack_write are sorted with parents first, so most
 * entries reuse it.
 *
 * Modes are restored exactly, whatever the umask.  Directories are created
 * writable by their owner and get their own mode only at the end, deepest
 * first, each reopened beneath the root without following links (openat2
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, or a walk of O_NOFOLLOW opens), so
 * that a 0500 directory can be filled and a 1777 one keeps its sticky bit.
 *
 * With safe_links, symlinks are checked twice: lexically when created
 * (cheap, catches "../x" and "/etc"), and after the whole archive is out
 * by asking the kernel to resolve each one beneath the root (openat2
 * RESOLVE_BENEATH): that catches chains of links that are each harmless
 * alone ("d/up -> ..", then "x -> d/up/..").  A link that does not resolve
 * at all (dangling, a loop) is kept: the kernel would not follow it
 * anywhere today either.
 *
 * Directories are never removed, so an fd in the chain stays the
 * directory it was opened as.
 */
#include "ctxpack/unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

/*
 * A directory the extraction holds open: in the chain of the current
 * entry's parents, and in each queued file job that goes into it.  Closed
 * when the last holder lets go.
 */
struct dnode {
	int fd;
	int owned;  /* 0 for the root, which is the caller's */
	int refs;   /* atomic */
};

/* A small file for a worker to write. */
struct job {
	struct dnode *dir;
	char *name;        /* the clean name, for messages; base points into it */
	const char *base;
	char *data;
	size_t size;
	mode_t mode;
	uint64_t seq;      /* submission order */
};

/*
 * The writer pool.  Creating files is most of a restore's cost (the kernel's
 * work per inode), so small files are created and written by a few worker
 * threads while the main thread parses the archive and makes directories,
 * symlinks and large files itself.  Directories are made before any file
 * is queued into them; whatever could depend on a queued file (the same
 * name again, a hard link) waits for the queue to drain first, so the
 * result is the one a sequential extraction gives.
 */
struct pool;
struct worker_arg {
	struct pool *p;
	unsigned idx;
};

struct pool {
	pthread_t th[UNPACK_MAX_THREADS];
	struct worker_arg wa[UNPACK_MAX_THREADS];
	unsigned n;
	pthread_mutex_t mu;
	pthread_cond_t work, space, idle;
	struct job **q;
	size_t qcap, qhead, qcount;
	size_t bytes;      /* data bytes queued */
	size_t busy;       /* jobs taken by a worker, not finished */
	int quit;
	int failed;
	struct err e;      /* the first worker failure */
	mode_t um;         /* the process umask */
	uint64_t busy_seq[UNPACK_MAX_THREADS]; /* per worker; UINT64_MAX idle */
};

/*
 * Names of the files queued since the last drain, each with its job's seq,
 * so that whatever depends on one of them waits for the writers first.
 * Names whose job is done are dropped when the set grows past PSET_PURGE,
 * so its size follows the queue, not the number of files.
 */
struct pent {
	char *name;
	uint64_t seq;
};
struct pset {
	struct pent *v;
	size_t cap, n;
};
#define PSET_PURGE 2048

/* A directory whose mode is set at the end. */
struct dmode {
	char *path;        /* clean name; "" for the root */
	mode_t mode;
	size_t depth, idx;
};

struct unpacker {
	struct dnode *dirs[UNPACK_MAX_DEPTH + 1]; /* dirs[0]: the root */
	char *names[UNPACK_MAX_DEPTH]; /* names[i]: the directory dirs[i + 1] is */
	size_t depth;                  /* open levels below the root */
	struct buf name;               /* the current entry's clean name */
	struct buf links;              /* safe_links: clean names of symlinks,
					  NUL-separated */
	mode_t um;                     /* the process umask */
	struct pool *pool;             /* NULL: everything inline */
	struct pset pending;
	uint64_t seq;                  /* of the next job */
	struct dmode *dmodes;          /* directory modes to set at the end */
	size_t ndmodes, dmodes_cap;
	struct archive *a;
	const struct unpack_opts *o;
	struct unpack_stats *st;
	struct err *e;
};

int unpack_clean_name(const char *name, struct buf *out, struct err *e)
{
	const char *p = name;
	size_t depth = 0;

	buf_reset(out);
	if (*name == '/')
		return err_set(e, ERR_CORRUPT, "refused absolute name '%s'", name);
	while (*p) {
		const char *s = p;
		size_t n;

		while (*p && *p != '/')
			p++;
		n = (size_t)(p - s);
		if (*p)
			p++;
		if (n == 0 || (n == 1 && s[0] == '.'))
			continue;
		if (n == 2 && s[0] == '.' && s[1] == '.')
			return err_set(e, ERR_CORRUPT, "refused name with '..': '%s'", name);
		if (++depth > UNPACK_MAX_DEPTH)
			return err_set(e, ERR_CORRUPT, "refused name deeper than %d levels: '%.200s'",
				       UNPACK_MAX_DEPTH, name);
		if (out->len && buf_addch(out, '/'))
			return err_set(e, ERR_NOMEM, "name too long");
		if (buf_add(out, s, n))
			return err_set(e, ERR_NOMEM, "name too long");
	}
	return out->len ? 0 : 1;
}

int unpack_link_inside(const char *path, const char *target)
{
	const char *p;
	size_t depth = 0;

	if (!*target || *target == '/')
		return 0;
	/* the link's own directory: the components of path but the last */
	for (p = path; *p; p++)
		if (*p == '/')
			depth++;
	p = target;
	while (*p) {
		const char *s = p;
		size_t n;

		while (*p && *p != '/')
			p++;
		n = (size_t)(p - s);
		if (*p)
			p++;
		if (n == 0 || (n == 1 && s[0] == '.'))
			continue;
		if (n == 2 && s[0] == '.' && s[1] == '.') {
			if (depth == 0)
				return 0;
			depth--;
		} else {
			depth++;
		}
	}
	return 1;
}

static struct dnode *dnode_new(int fd, int owned)
{
	struct dnode *d = xmalloc(sizeof(*d));

	d->fd = fd;
	d->owned = owned;
	d->refs = 1;
	return d;
}

static struct dnode *dnode_get(struct dnode *d)
{
	__atomic_add_fetch(&d->refs, 1, __ATOMIC_RELAXED);
	return d;
}

static void dnode_put(struct dnode *d)
{
	if (d && __atomic_sub_fetch(&d->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		if (d->owned)
			close(d->fd);
		free(d);
	}
}

/* ---- the pending-name set ---- */

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static int pset_has(const struct pset *p, const char *s)
{
	size_t i;

	if (!p->n)
		return 0;
	for (i = name_hash(s) & (p->cap - 1); p->v[i].name; i = (i + 1) & (p->cap - 1))
		if (!strcmp(p->v[i].name, s))
			return 1;
	return 0;
}

/* Put an entry into a table with room (no growth). */
static void pset_put(struct pset *p, struct pent ent)
{
	size_t i;

	for (i = name_hash(ent.name) & (p->cap - 1); p->v[i].name; i = (i + 1) & (p->cap - 1))
		;
	p->v[i] = ent;
	p->n++;
}

/* Rebuild the table with room for one more, keeping the entries whose
 * seq is at least keep_from (the others' files are written). */
static void pset_rebuild(struct pset *p, uint64_t keep_from)
{
	struct pset g = {NULL, p->cap ? p->cap : 1024, 0};
	size_t i, kept = 0;

	for (i = 0; i < p->cap; i++)
		if (p->v[i].name && p->v[i].seq >= keep_from)
			kept++;
	while (2 * (kept + 1) > g.cap)
		g.cap *= 2;
	g.v = xcalloc(g.cap, sizeof(*g.v));
	for (i = 0; i < p->cap; i++) {
		if (!p->v[i].name)
			continue;
		if (p->v[i].seq >= keep_from)
			pset_put(&g, p->v[i]);
		else
			free(p->v[i].name);
	}
	free(p->v);
	*p = g;
}

static void pset_add(struct pset *p, const char *s, uint64_t seq)
{
	struct pent ent;

	if (2 * (p->n + 1) > p->cap)
		pset_rebuild(p, 0);
	ent.name = xstrdup(s);
	ent.seq = seq;
	pset_put(p, ent);
}

static void pset_clear(struct pset *p)
{
	size_t i;

	for (i = 0; i < p->cap && p->n; i++) {
		if (p->v[i].name) {
			free(p->v[i].name);
			p->v[i].name = NULL;
			p->n--;
		}
	}
}

static void pset_release(struct pset *p)
{
	pset_clear(p);
	free(p->v);
	memset(p, 0, sizeof(*p));
}

/* ---- file system steps, usable from any thread ---- */

/* Remove an earlier file or symlink where a new entry goes; never a
 * directory. */
static int make_room(int dfd, const char *base, const char *shown, struct err *e)
{
	struct stat st;

	if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW))
		return errno == ENOENT ? 0 : err_errno(e, "cannot stat %s", shown);
	if (S_ISDIR(st.st_mode))
		return err_set(e, ERR_CORRUPT, "refused '%s': it would replace a directory", shown);
	if (unlinkat(dfd, base, 0) && errno != ENOENT)
		return err_errno(e, "cannot replace %s", shown);
	return 0;
}

/* Does mode need an explicit chmod after a create under umask um? */
static int needs_chmod(mode_t mode, mode_t um)
{
	return (mode & 07000) || (mode & 0777 & um);
}

/* Create base in dfd for writing, never through a symlink, replacing an
 * earlier file or symlink of that name.  A new file is writable by this
 * fd whatever its mode. */
static int create_file(int dfd, const char *base, const char *shown, mode_t mode,
		       struct err *e)
{
	int fd, tried = 0;

	for (;;) {
		fd = openat(dfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			    mode & 0777);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST || tried)
			return err_errno(e, "cannot create %s", shown);
		tried = 1;
		if (make_room(dfd, base, shown, e))
			return e->code;
	}
}

/* The end of a file: its final size (a sparse file's trailing hole), its
 * exact mode (after the writes, which would clear setuid), the close. */
static int finish_file(int fd, const char *shown, uint64_t end, uint64_t size, mode_t mode,
		       mode_t um, struct err *e)
{
	int ret = 0;

	if (end < size && ftruncate(fd, (off_t)size))
		ret = err_errno(e, "cannot size %s", shown);
	if (!ret && needs_chmod(mode, um) && fchmod(fd, mode))
		ret = err_errno(e, "cannot chmod %s", shown);
	if (close(fd) && !ret)
		ret = err_errno(e, "cannot write %s", shown);
	return ret;
}

static int write_job(const struct job *j, mode_t um, struct err *e)
{
	int fd = create_file(j->dir->fd, j->base, j->name, j->mode, e);

	if (fd < 0)
		return fd;
	if (j->size && write_all(fd, j->data, j->size)) {
		int ret = err_errno(e, "cannot write %s", j->name);

		close(fd);
		return ret;
	}
	return finish_file(fd, j->name, j->size, j->size, j->mode, um, e);
}

static void job_free(struct job *j)
{
	if (!j)
		return;
	dnode_put(j->dir);
	free(j->name);
	free(j->data);
	free(j);
}

/* ---- the pool ---- */

#define POOL_QUEUE 256
#define POOL_BYTES (32u << 20)

static void *worker(void *arg)
{
	struct worker_arg *wa = arg;
	struct pool *p = wa->p;
	unsigned idx = wa->idx;

	for (;;) {
		struct err e = ERR_INIT;
		struct job *j;
		int failed;

		pthread_mutex_lock(&p->mu);
		while (!p->qcount && !p->quit)
			pthread_cond_wait(&p->work, &p->mu);
		if (!p->qcount) {
			pthread_mutex_unlock(&p->mu);
			return NULL;
		}
		j = p->q[p->qhead];
		p->qhead = (p->qhead + 1) % p->qcap;
		p->qcount--;
		p->busy++;
		p->busy_seq[idx] = j->seq;
		failed = p->failed;
		pthread_mutex_unlock(&p->mu);

		/* after a failure the rest is dropped: the extraction is over */
		if (!failed && write_job(j, p->um, &e)) {
			pthread_mutex_lock(&p->mu);
			if (!p->failed) {
				p->failed = 1;
				p->e = e;
			}
			pthread_mutex_unlock(&p->mu);
		}
		pthread_mutex_lock(&p->mu);
		p->busy--;
		p->busy_seq[idx] = UINT64_MAX;
		p->bytes -= j->size;
		pthread_cond_broadcast(&p->space);
		if (!p->qcount && !p->busy)
			pthread_cond_broadcast(&p->idle);
		pthread_mutex_unlock(&p->mu);
		job_free(j);
	}
}

static struct pool *pool_new(unsigned n, mode_t um)
{
	struct pool *p = xcalloc(1, sizeof(*p));
	unsigned i;

	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->space, NULL);
	pthread_cond_init(&p->idle, NULL);
	p->qcap = POOL_QUEUE;
	p->q = xcalloc(p->qcap, sizeof(*p->q));
	p->um = um;
	for (i = 0; i < UNPACK_MAX_THREADS; i++)
		p->busy_seq[i] = UINT64_MAX;
	for (p->n = 0; p->n < n; p->n++) {
		p->wa[p->n].p = p;
		p->wa[p->n].idx = p->n;
		if (pthread_create(&p->th[p->n], NULL, worker, &p->wa[p->n]))
			break;
	}
	return p;
}

/* The seq of the oldest job not written yet (UINT64_MAX when none): jobs
 * are queued in seq order and taken from the head. */
static uint64_t pool_oldest(struct pool *p)
{
	uint64_t m;
	unsigned i;

	pthread_mutex_lock(&p->mu);
	m = p->qcount ? p->q[p->qhead]->seq : UINT64_MAX;
	for (i = 0; i < p->n; i++)
		if (p->busy_seq[i] < m)
			m = p->busy_seq[i];
	pthread_mutex_unlock(&p->mu);
	return m;
}

/* Queue a job (taking it); an earlier worker failure comes back instead. */
static int pool_submit(struct pool *p, struct job *j, struct err *e)
{
	int ret = 0;

	pthread_mutex_lock(&p->mu);
	while (!p->failed && (p->qcount == p->qcap ||
			      (p->qcount && p->bytes + j->size > POOL_BYTES)))
		pthread_cond_wait(&p->space, &p->mu);
	if (p->failed) {
		*e = p->e;
		ret = e->code;
	} else {
		p->q[(p->qhead + p->qcount) % p->qcap] = j;
		p->qcount++;
		p->bytes += j->size;
		pthread_cond_signal(&p->work);
	}
	pthread_mutex_unlock(&p->mu);
	if (ret)
		job_free(j);
	return ret;
}

/* Wait until every queued file is written; a worker failure is returned. */
static int pool_drain(struct pool *p, struct err *e)
{
	int ret = 0;

	pthread_mutex_lock(&p->mu);
	while (p->qcount || p->busy)
		pthread_cond_wait(&p->idle, &p->mu);
	if (p->failed) {
		*e = p->e;
		ret = e->code;
	}
	pthread_mutex_unlock(&p->mu);
	return ret;
}

static void pool_free(struct pool *p)
{
	unsigned i;

	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->quit = 1;
	p->failed = 1; /* drop what is still queued */
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < p->n; i++)
		pthread_join(p->th[i], NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->space);
	pthread_cond_destroy(&p->idle);
	free(p->q);
	free(p);
}

/* Before anything that may depend on the queued files. */
static int drain(struct unpacker *u)
{
	int ret = 0;

	if (u->pool && u->pending.n) {
		ret = pool_drain(u->pool, u->e);
		pset_clear(&u->pending);
	}
	return ret;
}

/* ---- the chain of open parent directories ---- */

/* Close the chain down to `keep` open levels. */
static void chain_trim(struct unpacker *u, size_t keep)
{
	while (u->depth > keep) {
		u->depth--;
		dnode_put(u->dirs[u->depth + 1]);
		free(u->names[u->depth]);
	}
}

/* Open (creating when missing) directory comp below dfd, never through a
 * symlink. */
static int open_dir(struct unpacker *u, int dfd, const char *comp)
{
	int fd, tried = 0;

	for (;;) {
		fd = openat(dfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0)
			return fd;
		if (errno == ENOENT && !tried) {
			tried = 1;
			if (mkdirat(dfd, comp, 0755) && errno != EEXIST)
				return err_errno(u->e, "cannot create directory %s", u->name.data);
			continue;
		}
		if (errno == ELOOP || errno == ENOTDIR)
			return err_set(u->e, ERR_CORRUPT, "refused '%s': it goes through a symlink "
				       "or a file", u->name.data);
		return err_errno(u->e, "cannot open directory for %s", u->name.data);
	}
}

/*
 * The directory holding the current entry (u->name), the parents created
 * as needed (borrowed from the chain).  *base gets the last component.
 */
static struct dnode *parent_dir(struct unpacker *u, const char **base)
{
	char *path = u->name.data;
	char *slash = strrchr(path, '/');
	size_t level = 0;
	char *p = path;

	*base = slash ? slash + 1 : path;
	if (!slash) {
		chain_trim(u, 0);
		return u->dirs[0];
	}
	while (p < slash) {
		char *s = p, *end = p, *comp;
		size_t n;
		int fd;

		while (end < slash && *end != '/')
			end++;
		n = (size_t)(end - s);
		p = end + 1;
		if (level < u->depth && strlen(u->names[level]) == n &&
		    !memcmp(u->names[level], s, n)) {
			level++;
			continue;
		}
		chain_trim(u, level);
		/* a name queued as a file must be there before it is a parent */
		if (u->pool && u->pending.n) {
			char c = *end;

			*end = '\0';
			if (pset_has(&u->pending, path) && drain(u)) {
				*end = c;
				return NULL;
			}
			*end = c;
		}
		comp = xstrndup(s, n);
		fd = open_dir(u, u->dirs[level]->fd, comp);
		if (fd < 0) {
			free(comp);
			return NULL;
		}
		u->names[level] = comp;
		u->dirs[level + 1] = dnode_new(fd, 1);
		u->depth = ++level;
	}
	chain_trim(u, level);
	return u->dirs[level];
}

/* ---- entries ---- */

static int read_error(struct unpacker *u, struct archive *a)
{
	return err_set(u->e, ERR_CORRUPT, "%s: %s", u->name.data,
		       archive_error_string(a) ? archive_error_string(a) : "cannot read data");
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The bounds checked as the stream goes: its length and the deadline. */
static int check_stream(struct unpacker *u)
{
	const struct unpack_opts *o = u->o;

	if (!o)
		return 0;
	if (o->max_stream && (uint64_t)archive_filter_bytes(u->a, 0) > o->max_stream)
		return err_set(u->e, ERR_CORRUPT, "the archive is longer than the %llu bytes "
			       "it was declared to have", (unsigned long long)o->max_stream);
	if (o->deadline_ms && now_ms() >= o->deadline_ms)
		return err_set(u->e, ERR_FAIL, "timed out while extracting %s", u->name.data);
	return 0;
}

/* A file's declared size, holes included, against max_bytes: checked
 * before anything is written, so a sparse file cannot grow past it. */
static int count_bytes(struct unpacker *u, uint64_t n)
{
	if (u->o && u->o->max_bytes &&
	    (n > u->o->max_bytes || u->st->bytes > u->o->max_bytes - n))
		return err_set(u->e, ERR_CORRUPT, "archive holds more than %llu bytes of files "
			       "(at %s)", (unsigned long long)u->o->max_bytes, u->name.data);
	u->st->bytes += n;
	return 0;
}

/* A small file: its data read into memory, written by a worker. */
static int queue_file(struct unpacker *u, struct archive *a, struct dnode *dir,
		      const char *base, uint64_t size, mode_t mode)
{
	struct job *j = xcalloc(1, sizeof(*j));
	const void *blk;
	size_t n;
	la_int64_t off;
	int r;

	j->name = xstrdup(u->name.data);
	j->base = j->name + (base - u->name.data);
	j->size = (size_t)size;
	j->data = size ? xcalloc(1, (size_t)size) : NULL; /* zeros: sparse holes */
	j->mode = mode;
	for (;;) {
		r = archive_read_data_block(a, &blk, &n, &off);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK || off < 0 || (uint64_t)off > size || n > size - (uint64_t)off) {
			job_free(j);
			return r != ARCHIVE_OK ? read_error(u, a)
				: err_set(u->e, ERR_CORRUPT, "%s: bad data offset", u->name.data);
		}
		memcpy(j->data + off, blk, n);
		if (check_stream(u)) {
			job_free(j);
			return u->e->code;
		}
	}
	j->dir = dnode_get(dir);
	j->seq = u->seq++;
	pset_add(&u->pending, u->name.data, j->seq);
	if (u->pending.n > PSET_PURGE)
		pset_rebuild(&u->pending, pool_oldest(u->pool));
	u->st->files++;
	return pool_submit(u->pool, j, u->e);
}

static int extract_file(struct unpacker *u, struct archive *a, struct archive_entry *ent,
			struct dnode *dir, const char *base)
{
	mode_t mode = archive_entry_perm(ent) & 07777;
	la_int64_t size = archive_entry_size(ent), off, pos = 0;
	const void *blk;
	size_t n;
	int fd, r, ret = 0;

	if (size < 0)
		size = 0;
	if (count_bytes(u, (uint64_t)size))
		return u->e->code;
	if (u->pool && (uint64_t)size <= UNPACK_SMALL_FILE)
		return queue_file(u, a, dir, base, (uint64_t)size, mode);
	fd = create_file(dir->fd, base, u->name.data, mode, u->e);
	if (fd < 0)
		return fd;
	for (;;) {
		r = archive_read_data_block(a, &blk, &n, &off);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK) {
			ret = read_error(u, a);
			break;
		}
		if (off < pos || off > size || (la_int64_t)n > size - off) {
			ret = err_set(u->e, ERR_CORRUPT, "%s: bad data offset", u->name.data);
			break;
		}
		if (off != pos) {
			/* a sparse file's hole: skipped, the final size covers it */
			if (lseek(fd, off, SEEK_SET) < 0) {
				ret = err_errno(u->e, "cannot seek in %s", u->name.data);
				break;
			}
			pos = off;
		}
		if (n && write_all(fd, blk, n)) {
			ret = err_errno(u->e, "cannot write %s", u->name.data);
			break;
		}
		pos += (la_int64_t)n;
		if ((ret = check_stream(u)))
			break;
	}
	if (ret) {
		close(fd);
		return ret;
	}
	ret = finish_file(fd, u->name.data, (uint64_t)pos, (uint64_t)size, mode, u->um, u->e);
	if (!ret)
		u->st->files++;
	return ret;
}

/* Set path's mode at the end (after everything below it is written). */
static void defer_mode(struct unpacker *u, const char *path, mode_t mode)
{
	struct dmode *d;
	const char *p;

	if (u->ndmodes == u->dmodes_cap) {
		u->dmodes_cap = u->dmodes_cap ? 2 * u->dmodes_cap : 64;
		u->dmodes = xreallocarray(u->dmodes, u->dmodes_cap, sizeof(*u->dmodes));
	}
	d = &u->dmodes[u->ndmodes];
	d->path = xstrdup(path);
	d->mode = mode;
	d->depth = *path ? 1 : 0;
	for (p = path; *p; p++)
		if (*p == '/')
			d->depth++;
	d->idx = u->ndmodes++;
}

static int extract_dir(struct unpacker *u, struct archive_entry *ent, int dfd,
		       const char *base)
{
	mode_t mode = archive_entry_perm(ent) & 07777;
	mode_t made = (mode | 0700) & 0777; /* its owner may fill it meanwhile */
	struct stat st;

	if (!mkdirat(dfd, base, made)) {
		if (mode != (made & ~u->um))
			defer_mode(u, u->name.data, mode);
		u->st->dirs++;
		return 0;
	}
	if (errno != EEXIST)
		return err_errno(u->e, "cannot create directory %s", u->name.data);
	if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW))
		return err_errno(u->e, "cannot stat %s", u->name.data);
	if (!S_ISDIR(st.st_mode))
		return err_set(u->e, ERR_CORRUPT, "refused directory '%s': a file or symlink "
			       "of that name came first", u->name.data);
	/* made earlier as a parent, or named twice: this entry's mode wins */
	if ((st.st_mode & 07777) != mode)
		defer_mode(u, u->name.data, mode);
	u->st->dirs++;
	return 0;
}

static int extract_symlink(struct unpacker *u, struct archive_entry *ent, int dfd,
			   const char *base)
{
	const char *target = archive_entry_symlink(ent);

	if (!target)
		target = archive_entry_symlink_utf8(ent);
	if (!target)
		return err_set(u->e, ERR_CORRUPT, "symlink %s has no target", u->name.data);
	if (u->o && u->o->safe_links && !unpack_link_inside(u->name.data, target))
		return err_set(u->e, ERR_CORRUPT, "refused symlink '%s' -> '%s': it leads out of "
			       "the directory (--safe-links)", u->name.data, target);
	if (symlinkat(target, dfd, base)) {
		if (errno != EEXIST)
			return err_errno(u->e, "cannot create symlink %s", u->name.data);
		if (make_room(dfd, base, u->name.data, u->e))
			return u->e->code;
		if (symlinkat(target, dfd, base))
			return err_errno(u->e, "cannot create symlink %s", u->name.data);
	}
	if (u->o && u->o->safe_links && buf_add(&u->links, u->name.data, u->name.len + 1))
		return err_set(u->e, ERR_NOMEM, "too many symlinks");
	u->st->symlinks++;
	return 0;
}

/* A FIFO, with its exact mode. */
static int extract_fifo(struct unpacker *u, struct archive_entry *ent, int dfd,
			const char *base)
{
	mode_t mode = archive_entry_perm(ent) & 07777;

	if (make_room(dfd, base, u->name.data, u->e))
		return u->e->code;
	if (mkfifoat(dfd, base, mode & 0777))
		return err_errno(u->e, "cannot create fifo %s", u->name.data);
	/* the name is the FIFO just made in a directory of the extraction's
	 * own; AT_SYMLINK_NOFOLLOW says so too where the C library can */
	if (needs_chmod(mode, u->um) && fchmodat(dfd, base, mode, AT_SYMLINK_NOFOLLOW) &&
	    ((errno != EOPNOTSUPP && errno != ENOSYS) || fchmodat(dfd, base, mode, 0)))
		return err_errno(u->e, "cannot chmod %s", u->name.data);
	u->st->files++;
	return 0;
}

/*
 * A hard link: the target must be an entry of this archive extracted
 * before it (the directory is the archive's own: nothing else is there),
 * not a directory.  Its directories are opened without following links.
 */
static int extract_hardlink(struct unpacker *u, const char *target, int dfd,
			    const char *base)
{
	struct buf t = BUF_INIT;
	struct stat st;
	const char *tbase, *slash;
	int tfd = u->dirs[0]->fd, ret = 0, owned = 0;

	ret = unpack_clean_name(target, &t, u->e);
	if (ret) {
		if (ret > 0)
			ret = err_set(u->e, ERR_CORRUPT, "refused hard link '%s' to the root",
				      u->name.data);
		else
			err_wrap(u->e, "hard link %s", u->name.data);
		goto out;
	}
	slash = strrchr(t.data, '/');
	tbase = slash ? slash + 1 : t.data;
	if (slash) {
		/* open the target's directory without the chain: no creation */
		char *p = t.data;

		while (p < slash) {
			char *end = strchr(p, '/'), *comp;
			int fd;

			comp = xstrndup(p, (size_t)(end - p));
			fd = openat(tfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			free(comp);
			if (owned)
				close(tfd);
			owned = 0;
			if (fd < 0) {
				ret = err_set(u->e, ERR_CORRUPT, "refused hard link '%s' -> '%s': "
					      "no such entry before it in the archive", u->name.data,
					      target);
				goto out;
			}
			tfd = fd;
			owned = 1;
			p = end + 1;
		}
	}
	if (fstatat(tfd, tbase, &st, AT_SYMLINK_NOFOLLOW)) {
		ret = err_set(u->e, ERR_CORRUPT, "refused hard link '%s' -> '%s': no such entry "
			      "before it in the archive", u->name.data, target);
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		ret = err_set(u->e, ERR_CORRUPT, "refused hard link '%s' -> '%s': a directory",
			      u->name.data, target);
		goto out;
	}
	/* flags 0: a link to a symlink is a link to the symlink itself */
	if (linkat(tfd, tbase, dfd, base, 0)) {
		if (errno != EEXIST) {
			ret = err_errno(u->e, "cannot link %s", u->name.data);
			goto out;
		}
		ret = make_room(dfd, base, u->name.data, u->e);
		if (!ret && linkat(tfd, tbase, dfd, base, 0))
			ret = err_errno(u->e, "cannot link %s", u->name.data);
	}
	if (!ret)
		u->st->hardlinks++;
out:
	if (owned)
		close(tfd);
	buf_release(&t);
	return ret;
}

static int extract_entry(struct unpacker *u, struct archive *a, struct archive_entry *ent)
{
	const char *path = archive_entry_pathname(ent), *hl, *base;
	mode_t type = archive_entry_filetype(ent);
	struct dnode *dir;
	int ret;

	if (!path)
		path = archive_entry_pathname_utf8(ent);
	if (!path)
		return err_set(u->e, ERR_CORRUPT, "an entry has no name");
	ret = unpack_clean_name(path, &u->name, u->e);
	if (ret < 0)
		return ret;
	if (ret == 1) {
		if (type != AE_IFDIR)
			return err_set(u->e, ERR_CORRUPT, "refused entry '%s' at the root itself",
				       path);
		/* "./": the directory's own mode, set last */
		defer_mode(u, "", archive_entry_perm(ent) & 07777);
		u->st->skipped++;
		return 0;
	}
	hl = archive_entry_hardlink(ent);
	if (!hl)
		hl = archive_entry_hardlink_utf8(ent);
	if (!hl && (type == AE_IFCHR || type == AE_IFBLK || type == AE_IFSOCK)) {
		u->st->skipped++;
		return 0;
	}
	/* the same name again, or a link to a queued file: let the queue
	 * finish first, so later entries win as in a sequential extraction */
	if (u->pool && (hl || pset_has(&u->pending, u->name.data)) && drain(u))
		return u->e->code;
	dir = parent_dir(u, &base);
	if (!dir)
		return u->e->code;
	if (hl)
		return extract_hardlink(u, hl, dir->fd, base);
	switch (type) {
	case AE_IFREG:
		return extract_file(u, a, ent, dir, base);
	case AE_IFDIR:
		return extract_dir(u, ent, dir->fd, base);
	case AE_IFLNK:
		return extract_symlink(u, ent, dir->fd, base);
	case AE_IFIFO:
		return extract_fifo(u, ent, dir->fd, base);
	default:
		return err_set(u->e, ERR_CORRUPT, "refused '%s': unknown entry type 0%o", path,
			       (unsigned)type);
	}
}

/*
 * Open path (a clean name, "" for root itself) beneath root without
 * following any link: openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, or,
 * where the kernel has no openat2, a walk of O_NOFOLLOW opens.
 */
static int open_beneath(int root, const char *path, int flags)
{
	struct open_how how;
	char *copy, *p, *slash;
	long fd;
	int cur;

	if (!*path)
		return openat(root, ".", flags | O_CLOEXEC);
	memset(&how, 0, sizeof(how));
	how.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC);
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
	fd = syscall(SYS_openat2, root, path, &how, sizeof(how));
	if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
		return (int)fd;
	copy = xstrdup(path);
	cur = root;
	for (p = copy;; p = slash + 1) {
		int next;

		slash = strchr(p, '/');
		if (slash)
			*slash = '\0';
		next = openat(cur, p, (slash ? O_RDONLY | O_DIRECTORY : flags) | O_NOFOLLOW |
			      O_CLOEXEC);
		if (cur != root)
			close(cur);
		cur = next;
		if (cur < 0 || !slash)
			break;
	}
	free(copy);
	return cur;
}

static int dmode_order(const void *a, const void *b)
{
	const struct dmode *x = a, *y = b;

	/* deepest first; among equals, archive order (the last entry wins) */
	if (x->depth != y->depth)
		return x->depth > y->depth ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* The directories' own modes, children before parents, the root last. */
static int apply_modes(struct unpacker *u)
{
	size_t i;
	int ret = 0;

	if (u->ndmodes)
		qsort(u->dmodes, u->ndmodes, sizeof(*u->dmodes), dmode_order);
	for (i = 0; i < u->ndmodes && !ret; i++) {
		struct dmode *d = &u->dmodes[i];
		int fd = open_beneath(u->dirs[0]->fd, d->path, O_RDONLY | O_DIRECTORY);

		if (fd < 0) {
			ret = err_errno(u->e, "cannot open directory %s", *d->path ? d->path : ".");
			break;
		}
		if (fchmod(fd, d->mode))
			ret = err_errno(u->e, "cannot chmod %s", *d->path ? d->path : ".");
		else if (!*d->path)
			u->st->root_mode = 010000 | (unsigned)d->mode;
		close(fd);
	}
	return ret;
}

/* The second symlink check: does the kernel resolve it beneath the root? */
static int check_links(struct unpacker *u)
{
	struct open_how how;
	size_t off = 0;

	memset(&how, 0, sizeof(how));
	how.flags = O_PATH | O_CLOEXEC;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
	while (off < u->links.len) {
		const char *p = u->links.data + off;
		long fd = syscall(SYS_openat2, u->dirs[0]->fd, p, &how, sizeof(how));

		off += strlen(p) + 1;
		if (fd >= 0) {
			close((int)fd);
			continue;
		}
		if (errno == EXDEV)
			return err_set(u->e, ERR_CORRUPT, "refused symlink '%s': it leads out of the "
				       "directory through other links", p);
		if (errno == ENOSYS || errno == EPERM)
			return 0; /* no openat2 (old kernel, seccomp): the lexical rule stands */
		/* ENOENT, ELOOP, ENOTDIR...: it does not resolve at all */
	}
	return 0;
}

static int run(struct archive *a, int dirfd, const struct unpack_opts *o,
	       struct unpack_stats *st, struct err *e)
{
	struct unpacker *u = xcalloc(1, sizeof(*u));
	struct unpack_stats tmp;
	struct archive_entry *ent;
	unsigned threads = o && o->threads ? o->threads : UNPACK_THREADS;
	size_t i;
	int r, ret = 0;

	if (!st)
		st = &tmp;
	memset(st, 0, sizeof(*st));
	u->dirs[0] = dnode_new(dirfd, 0);
	u->o = o;
	u->st = st;
	u->e = e;
	u->a = a;
	buf_init(&u->name, 0);
	buf_init(&u->links, 0);
	/* umask is process-wide: read it back at once */
	u->um = umask(022);
	umask(u->um);
	if (threads > UNPACK_MAX_THREADS)
		threads = UNPACK_MAX_THREADS;
	if (threads > 1)
		u->pool = pool_new(threads, u->um);

	for (;;) {
		r = archive_read_next_header(a, &ent);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
			ret = err_set(e, ERR_CORRUPT, "damaged archive: %s",
				      archive_error_string(a) ? archive_error_string(a)
							      : "cannot read a header");
			break;
		}
		st->entries++;
		if (o && o->max_entries && st->entries > o->max_entries) {
			ret = err_set(e, ERR_CORRUPT, "archive holds more than %llu entries",
				      (unsigned long long)o->max_entries);
			break;
		}
		ret = check_stream(u);
		if (!ret)
			ret = extract_entry(u, a, ent);
		if (ret)
			break;
	}
	/* every file written before the link check, the modes and before
	 * the caller may swap the tree in; after a failure the queue is
	 * dropped */
	if (u->pool && !ret)
		ret = pool_drain(u->pool, e);
	pool_free(u->pool);
	chain_trim(u, 0);
	if (!ret && o && o->safe_links)
		ret = check_links(u);
	if (!ret)
		ret = apply_modes(u);
	dnode_put(u->dirs[0]);
	pset_release(&u->pending);
	for (i = 0; i < u->ndmodes; i++)
		free(u->dmodes[i].path);
	free(u->dmodes);
	buf_release(&u->name);
	buf_release(&u->links);
	free(u);
	return ret;
}

/*
 * The feeder: a thread that reads the input (an fd or memory) and, when it
 * starts with the zstd magic, decompresses it, handing libarchive plain tar
 * in SLOTS buffers of SLOT_SIZE.  So the decompression runs beside the
 * extraction (as in `curl | zstd -d | tar -x`) instead of before each
 * write; anything else (gzip, plain tar) passes through to libarchive's
 * own filters.  libarchive holds one slot at a time (until its next read);
 * the producer fills the others.
 */
#define SLOTS 4
#define SLOT_SIZE (1u << 20)

struct feeder {
	int fd;                       /* the input, or -1 for memory */
	const unsigned char *mem;
	size_t mem_len, mem_off;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned char *buf[SLOTS];
	size_t len[SLOTS];
	size_t head;                  /* oldest filled slot */
	size_t filled;                /* filled slots not yet taken */
	int held;                     /* libarchive holds slot head - 1 */
	int done;                     /* the producer has finished */
	int stop;                     /* the consumer has finished */
	int ret;                      /* the producer's failure */
	struct err e;
	pthread_t th;
};

static ssize_t src_read(struct feeder *f, void *p, size_t n)
{
	if (f->fd < 0) {
		size_t k = f->mem_len - f->mem_off;

		if (k > n)
			k = n;
		memcpy(p, f->mem + f->mem_off, k);
		f->mem_off += k;
		return (ssize_t)k;
	}
	for (;;) {
		ssize_t k = read(f->fd, p, n);

		if (k >= 0 || errno != EINTR)
			return k;
	}
}

/* Wait for a free slot; -1 when the consumer is gone. */
static int slot_acquire(struct feeder *f)
{
	int idx = -1;

	pthread_mutex_lock(&f->mu);
	while (!f->stop && f->filled + (size_t)f->held >= SLOTS)
		pthread_cond_wait(&f->cv, &f->mu);
	if (!f->stop)
		idx = (int)((f->head + f->filled) % SLOTS);
	pthread_mutex_unlock(&f->mu);
	return idx;
}

static void slot_publish(struct feeder *f, size_t n)
{
	pthread_mutex_lock(&f->mu);
	f->len[(f->head + f->filled) % SLOTS] = n;
	f->filled++;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
}

static void *produce(void *arg)
{
	struct feeder *f = arg;
	unsigned char *in = NULL;
	ZSTD_DStream *z = NULL;
	size_t in_cap = ZSTD_DStreamInSize(), in_len = 0, in_pos = 0, last = 0;
	int idx, zstd = 0, eof = 0, ret = 0;

	in = xmalloc(in_cap);
	/* the first bytes decide: zstd or passthrough */
	while (in_len < 4) {
		ssize_t k = src_read(f, in + in_len, in_cap - in_len);

		if (k < 0) {
			ret = err_errno(&f->e, "cannot read the archive");
			goto out;
		}
		if (!k) {
			eof = 1;
			break;
		}
		in_len += (size_t)k;
	}
	if (in_len >= 4 && in[0] == 0x28 && in[1] == 0xb5 && in[2] == 0x2f && in[3] == 0xfd) {
		zstd = 1;
		z = ZSTD_createDStream();
		if (!z) {
			ret = err_set(&f->e, ERR_NOMEM, "cannot allocate a zstd decoder");
			goto out;
		}
	}
	for (;;) {
		ZSTD_outBuffer ob;
		int finished = 0;

		idx = slot_acquire(f);
		if (idx < 0)
			break;
		ob.dst = f->buf[idx];
		ob.size = SLOT_SIZE;
		ob.pos = 0;
		while (ob.pos < ob.size) {
			if (in_pos == in_len && !eof) {
				ssize_t k = src_read(f, in, in_cap);

				if (k < 0) {
					ret = err_errno(&f->e, "cannot read the archive");
					goto out;
				}
				in_pos = 0;
				in_len = (size_t)k;
				eof = k == 0;
			}
			if (!zstd) {
				size_t k = in_len - in_pos;

				if (!k && eof) {
					finished = 1;
					break;
				}
				if (k > ob.size - ob.pos)
					k = ob.size - ob.pos;
				memcpy((char *)ob.dst + ob.pos, in + in_pos, k);
				ob.pos += k;
				in_pos += k;
				continue;
			}
			if (in_pos == in_len && eof && last == 0) {
				/* the last frame is complete and flushed */
				finished = 1;
				break;
			}
			{
				ZSTD_inBuffer ib = {in, in_len, in_pos};
				size_t before = ob.pos;

				last = ZSTD_decompressStream(z, &ob, &ib);
				in_pos = ib.pos;
				if (ZSTD_isError(last)) {
					ret = err_set(&f->e, ERR_CORRUPT, "zstd: %s",
						      ZSTD_getErrorName(last));
					goto out;
				}
				/* no input left and nothing more comes out */
				if (eof && in_pos == in_len && last != 0 && ob.pos == before) {
					ret = err_set(&f->e, ERR_CORRUPT, "truncated zstd stream");
					goto out;
				}
			}
		}
		if (ob.pos)
			slot_publish(f, ob.pos);
		if (finished)
			break;
	}
out:
	pthread_mutex_lock(&f->mu);
	f->ret = ret;
	f->done = 1;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	ZSTD_freeDStream(z);
	free(in);
	return NULL;
}

static la_ssize_t feed_read(struct archive *a, void *cd, const void **out)
{
	struct feeder *f = cd;
	la_ssize_t n = 0;

	pthread_mutex_lock(&f->mu);
	if (f->held) {
		f->held = 0;
		pthread_cond_broadcast(&f->cv);
	}
	while (!f->filled && !f->done)
		pthread_cond_wait(&f->cv, &f->mu);
	if (f->filled) {
		*out = f->buf[f->head];
		n = (la_ssize_t)f->len[f->head];
		f->head = (f->head + 1) % SLOTS;
		f->filled--;
		f->held = 1;
	} else if (f->ret) {
		archive_set_error(a, EIO, "%s", f->e.msg);
		n = -1;
	}
	pthread_mutex_unlock(&f->mu);
	return n;
}

static int feeder_start(struct feeder *f, int fd, const void *p, size_t n, struct err *e)
{
	int i, r;

	memset(f, 0, sizeof(*f));
	f->fd = fd;
	f->mem = p;
	f->mem_len = n;
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	for (i = 0; i < SLOTS; i++)
		f->buf[i] = xmalloc(SLOT_SIZE);
	r = pthread_create(&f->th, NULL, produce, f);
	if (r) {
		for (i = 0; i < SLOTS; i++)
			free(f->buf[i]);
		errno = r;
		return err_errno(e, "cannot start the decompressor");
	}
	return 0;
}

/* Stop the producer (it may be waiting for a slot) and reap it. */
static void feeder_finish(struct feeder *f)
{
	int i;

	pthread_mutex_lock(&f->mu);
	f->stop = 1;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	pthread_join(f->th, NULL);
	for (i = 0; i < SLOTS; i++)
		free(f->buf[i]);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cv);
}

static int unpack_any(int fd, const void *p, size_t n, int dirfd, const struct unpack_opts *o,
		      struct unpack_stats *st, struct err *e)
{
	struct archive *a = archive_read_new();
	struct feeder f;
	int ret;

	if (!a)
		return err_set(e, ERR_NOMEM, "cannot allocate an archive reader");
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_format_tar(a);
	ret = feeder_start(&f, fd, p, n, e);
	if (ret) {
		archive_read_free(a);
		return ret;
	}
	if (archive_read_open(a, &f, NULL, feed_read, NULL) != ARCHIVE_OK)
		ret = err_set(e, ERR_CORRUPT, "not an archive: %s",
			      archive_error_string(a) ? archive_error_string(a) : "unreadable");
	else
		ret = run(a, dirfd, o, st, e);
	archive_read_free(a);
	feeder_finish(&f);
	/* a broken stream explains libarchive's complaint about it */
	if (f.ret && ret) {
		err_clear(e);
		*e = f.e;
		ret = f.ret;
	}
	return ret;
}

int unpack_fd(int fd, int dirfd, const struct unpack_opts *o,
	      struct unpack_stats *st, struct err *e)
{
	return unpack_any(fd, NULL, 0, dirfd, o, st, e);
}

int unpack_mem(const void *p, size_t n, int dirfd, const struct unpack_opts *o,
	       struct unpack_stats *st, struct err *e)
{
	return unpack_any(-1, p, n, dirfd, o, st, e);
}

/* 0 when name is PREFIX<pid>-... of a process that is gone. */
static int keep_entry(const char *name, const char *prefix)
{
	const char *p = name + strlen(prefix);
	unsigned long pid = 0;

	if (strncmp(name, prefix, strlen(prefix)))
		return 1;
	while (*p >= '0' && *p <= '9' && pid < 0x80000000ul)
		pid = pid * 10 + (unsigned long)(*p++ - '0');
	if (*p != '-' || !pid || pid >= 0x80000000ul)
		return 1; /* not ours */
	return kill((pid_t)pid, 0) == 0 || errno != ESRCH;
}

int unpack_remove_stale(const char *dir, const char *prefix, struct err *e)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), fd2;
	DIR *d;
	struct dirent *de;
	int n = 0, ret = 0;

	if (dfd < 0)
		return errno == ENOENT ? 0 : err_errno(e, "cannot read %s", dir);
	/* a second fd for the removals: readdir keeps its own position */
	fd2 = dup(dfd);
	d = fd2 < 0 ? NULL : fdopendir(dfd);
	if (!d) {
		ret = err_errno(e, "cannot read %s", dir);
		close(dfd);
		if (fd2 >= 0)
			close(fd2);
		return ret;
	}
	while ((de = readdir(d))) {
		struct stat st;
		char *full;

		if (keep_entry(de->d_name, prefix))
			continue;
		/* only what this user made: in a shared sticky directory another
		 * user's entry of that name is theirs, whatever it claims */
		if (fstatat(fd2, de->d_name, &st, AT_SYMLINK_NOFOLLOW) || st.st_uid != geteuid() ||
		    !S_ISDIR(st.st_mode))
			continue;
		full = xasprintf("%s/%s", dir, de->d_name);
		if (remove_tree_at(fd2, de->d_name, full, e)) {
			if (!ret)
				ret = e->code;
		} else {
			n++;
		}
		free(full);
	}
	closedir(d);
	close(fd2);
	return ret ? ret : n;
}
