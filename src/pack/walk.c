/*
 * The context walker.
 *
 * Depth-first, each directory's names read in full, sorted bytewise and
 * then visited, so the result is in archive order (parents before
 * children).  Every file system call is relative to an open directory fd
 * (openat/getdents64/fstatat/readlinkat): no path is resolved twice and
 * symlinks inside the context are never followed.
 *
 * The ignore verdict comes before the stat: an excluded entry that is not
 * a directory (d_type tells) is never stat'ed unless the caller wants
 * excluded entries, and an excluded directory is not even opened unless an
 * exception could re-include something below it (ign_must_descend).
 *
 * A name removed while the walk runs is not in the context when it goes
 * before its stat; a directory removed after its stat is sent as found,
 * empty (getdents64 fails with ENOENT on a removed directory).  The
 * parallel walk reads a handed-off directory later than it opened it, so
 * this keeps it as tolerant as the serial walk.
 *
 * Excluded directories that are entered are recorded at once (marked
 * excluded) and flipped to included when a descendant turns out to be
 * included; that is BuildKit's lazy sending of parent directories.  When
 * the caller does not want excluded entries, a directory that ends up with
 * no included descendant is the last record and is simply dropped.
 *
 * The parallel walk.  On a warm page cache the cost is the system calls
 * (an fstatat per entry, openat/getdents64/close per directory), so a big
 * tree is walked by a few threads, with a result identical to the serial
 * walk's.  The unit of work is a task: the subtree under one directory,
 * walked depth-first as above by one thread, into that thread's entry
 * vector (one run of it per task), string arena and counters.  Only
 * *included* directories become tasks: visiting one has already flipped
 * every pending excluded ancestor, so nothing found below it can change
 * an entry outside it, and its task starts with an empty pending stack.
 *
 * A walker about to descend into an included directory may hand it off
 * instead: it opens the directory itself (an error stays where the serial
 * walk meets it), notes a slot in its own task (the entry count at that
 * point, where the subtree's entries belong, and the new task) and queues
 * the task with the fd, the path prefix and a copy of the directory's
 * ignore flags.  It does so only while the queue is short, and for deep
 * directories only when a thread is idle, so that tasks stay big.  The
 * calling thread walks the root task and then helps with the queue; the
 * other threads are started with the first hand-off, which waits until the
 * walk has seen a few hundred names (small trees stay on one thread).
 *
 * When every task is done, the calling thread copies the runs into the
 * result in slot order (recursively: tasks hand off too), chains the
 * arenas into it and sums the counters.  A walk that handed nothing off
 * keeps its vector as it is.
 *
 * Errors: the first in walk order wins, as in the serial walk.  A failing
 * walker records where (the path it was visiting); another walker that is
 * about to visit a name past the earliest recorded failure stops there
 * (WALK_CANCELLED: nothing it finds could come first), while walkers before
 * it go on, as they may meet an earlier error.  The merge reports the
 * first failed task in walk order.
 */
#include "ctxpack/walk.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ctxpack/ignore.h"

#define ARENA_CHUNK (256 * 1024)
#define DENTS_BUF (32 * 1024)
#define MAX_IGNORE_SIZE (64 * 1024 * 1024)

#define DEFAULT_THREADS_MAX 4
#define SPAWN_AFTER 512        /* names the calling thread visits alone */
#define SPAWN_DEPTH 2          /* deeper directories go to idle threads only */
#define EAGER_QUEUE 64         /* WALK_SPLIT_EAGER: queued tasks (open fds) */
#define WALK_CANCELLED 1       /* a walk stopped past an earlier failure */

struct arena_chunk {
	struct arena_chunk *next;
	size_t used, cap;
	char data[];
};

struct task;

/* A handed-off subtree: its entries go right before w->v[pos] (task's w). */
struct slot {
	size_t pos;
	struct task *t;
};

/* One subtree, and where its entries are. */
struct task {
	struct task *qnext;      /* in the queue */
	struct task *older;      /* in walk_ctx.all */
	struct task *parent;     /* NULL for the root */
	int dfd;                 /* the open directory, until walked */
	char *prefix;            /* its path with a trailing '/' (NULL: root) */
	size_t prefix_len;
	uint8_t *flags;          /* its ignore flags (NULL: root) */

	const struct walker *w;  /* who walked it: its entries are */
	size_t start, end;       /* w->v[start, end), with the slots' spliced in */
	struct slot *slots;      /* in walk order */
	size_t nslots, aslots;
	size_t total;            /* its entries and its subtasks' (merge) */
	int status;              /* 0, a negative error code, or WALK_CANCELLED */
	struct err *err;         /* with a negative status */
};

/*
 * One walk: read-only settings, and the task queue shared by the threads
 * (under mu).  queued, idle, started and failed are also read without the
 * lock, as hints.
 */
struct walk_ctx {
	const struct walk_opts *o;
	const struct ign *ig;
	size_t npat;
	const char *root;
	int is_root;             /* euid 0: every file is readable */
	unsigned nthreads;       /* 1: serial, no locking at all */
	unsigned qmax, spawn_depth;
	size_t spawn_after;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct task *head, **tail; /* the queue */
	struct task *all;        /* every subtask, newest first */
	unsigned queued, idle;
	unsigned active;         /* tasks queued or being walked, root included */
	int started;             /* workers were started (or tried) */
	unsigned nworkers;
	pthread_t tid[WALK_THREADS_MAX];
	struct walker *walkers;  /* nthreads; [0] is the calling thread's */
	int failed;              /* err_pos holds the earliest failure */
	struct buf err_pos;
};

/*
 * One thread's walking state and findings.  The tasks it walks append to
 * its entry vector one after the other; w->t is the one being walked.
 */
struct walker {
	struct walk_ctx *c;
	struct task *t;
	struct walk_entry *v;
	size_t n, alloc;
	struct arena_chunk *arena;
	uint64_t n_excluded_files;
	uint64_t n_excluded_bytes;
	uint64_t n_sockets_skipped;
	struct buf path;         /* current directory path, with trailing '/' (or empty) */
	size_t *pending;         /* indices of excluded ancestor dirs not yet flipped */
	size_t npending, apending;
	size_t nvisited;         /* names visited (the spawn threshold) */
	char *dbuf;              /* getdents64 buffer, DENTS_BUF bytes */
	int noted;               /* this task's failure is recorded in c */
	struct err *e;
};

struct name {
	char *s;
	unsigned char d_type;
};

static void *arena_alloc(struct walker *w, size_t n)
{
	struct arena_chunk *c = w->arena;

	if (!c || c->cap - c->used < n) {
		size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;

		c = xmalloc(sizeof(*c) + cap);
		c->next = w->arena;
		c->used = 0;
		c->cap = cap;
		w->arena = c;
	}
	c->used += n;
	return c->data + c->used - n;
}

static char *arena_strndup(struct walker *w, const char *s, size_t n)
{
	char *p = arena_alloc(w, n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

int walk_path_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t i, n = alen < blen ? alen : blen;

	for (i = 0; i < n; i++) {
		unsigned char ca = (unsigned char)a[i], cb = (unsigned char)b[i];

		if (ca == cb)
			continue;
		/* '/' sorts before every byte: a directory's children come
		 * right after it, before its siblings "dir-x", "dir.y". */
		if (ca == '/')
			return -1;
		if (cb == '/')
			return 1;
		return ca < cb ? -1 : 1;
	}
	return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct name *)a)->s, ((const struct name *)b)->s);
}

static struct walk_entry *new_entry(struct walker *w)
{
	struct walk_entry *we;

	if (w->n == w->alloc) {
		w->alloc = w->alloc ? w->alloc * 2 : 1024;
		w->v = xreallocarray(w->v, w->alloc, sizeof(*w->v));
	}
	we = &w->v[w->n++];
	memset(we, 0, sizeof(*we));
	return we;
}

/* An entry was included: every excluded ancestor being walked is sent.
 * The classic builder's tar has no header for it: the daemon creates it
 * 0755 (WALK_CLASSIC). */
static void flip_pending(struct walker *w)
{
	int classic = (w->c->o->flags & WALK_CLASSIC) != 0;

	while (w->npending) {
		size_t k = w->pending[--w->npending];

		w->v[k].excluded = 0;
		if (classic)
			w->v[k].mode = S_IFDIR | 0755;
	}
}

/* May an excluded directory hold something an exception re-includes? */
static int must_descend(const struct walk_ctx *c, const char *dir, size_t len)
{
	if (c->o->flags & (WALK_CLASSIC | WALK_FSUTIL2020))
		return ign_must_descend_classic(c->ig, dir, len);
	return ign_must_descend(c->ig, dir, len);
}

static int type_of_dtype(unsigned char d_type)
{
	switch (d_type) {
	case DT_REG: return WALK_REG;
	case DT_DIR: return WALK_DIR;
	case DT_LNK: return WALK_LNK;
	case DT_FIFO: return WALK_FIFO;
	case DT_CHR: return WALK_CHR;
	case DT_BLK: return WALK_BLK;
	default: return 0; /* socket or unknown */
	}
}

/*
 * Fill an entry from its stat (st), or from the d_type alone when st is
 * NULL (WALK_TYPES_ONLY).  Returns 1 for a socket (skipped).
 */
int walk_fill_stat(struct walk_entry *we, const struct stat *st)
{
	we->mode = st->st_mode;
	we->size = S_ISREG(st->st_mode) ? (uint64_t)st->st_size : 0;
	we->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	we->ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
	we->dev = st->st_dev;
	we->ino = st->st_ino;
	we->nlink = (uint32_t)st->st_nlink;
	switch (st->st_mode & S_IFMT) {
	case S_IFREG: we->type = WALK_REG; break;
	case S_IFDIR: we->type = WALK_DIR; break;
	case S_IFLNK: we->type = WALK_LNK; break;
	case S_IFIFO: we->type = WALK_FIFO; break;
	case S_IFCHR: we->type = WALK_CHR; we->rdev = st->st_rdev; break;
	case S_IFBLK: we->type = WALK_BLK; we->rdev = st->st_rdev; break;
	default: we->type = 0; break;
	}
	return we->type;
}

static int fill_entry(struct walker *w, struct walk_entry *we, int dfd,
		      const char *name, const struct stat *st, unsigned char d_type)
{
	size_t plen = w->path.len + strlen(name);
	unsigned depth = 0;
	size_t i;

	if (plen > UINT32_MAX)
		return err_set(w->e, ERR_FAIL, "%s%s: path too long", w->path.data, name);
	we->path_len = (uint32_t)plen;
	{
		char *p = arena_alloc(w, plen + 1);

		memcpy(p, w->path.data, w->path.len);
		memcpy(p + w->path.len, name, plen - w->path.len + 1);
		we->path = p;
	}
	for (i = 0; i < w->path.len; i++)
		if (w->path.data[i] == '/')
			depth++;
	we->depth = depth > 255 ? 255 : (uint8_t)depth;
	we->deciding = -1;
	if (!st) {
		we->type = (uint8_t)type_of_dtype(d_type);
		return we->type ? 0 : 1;
	}
	if (!walk_fill_stat(we, st))
		return 1; /* socket: skipped */
	if (we->type == WALK_LNK) {
		size_t cap = (size_t)st->st_size + 1;
		char *t;
		ssize_t n;

		if (cap < 64 || (size_t)st->st_size == 0)
			cap = PATH_MAX; /* some file systems report 0 */
		t = xmalloc(cap);
		n = readlinkat(dfd, name, t, cap);
		if (n < 0) {
			free(t);
			return err_errno(w->e, "cannot read symlink %s", we->path);
		}
		if ((size_t)n >= cap) {
			free(t);
			return err_set(w->e, ERR_CHANGED,
				       "symlink %s changed while it was read", we->path);
		}
		we->link = arena_strndup(w, t, (size_t)n);
		we->link_len = (uint32_t)n;
		we->size = (uint64_t)n;
		free(t);
	}
	return 0;
}

static void start_workers(struct walk_ctx *c);

/* Hand the included directory at depth off as a task, rather than descend? */
static int want_spawn(const struct walker *w, unsigned depth)
{
	const struct walk_ctx *c = w->c;

	if (c->nthreads < 2)
		return 0;
	if (!__atomic_load_n(&c->started, __ATOMIC_RELAXED))
		return w->nvisited >= c->spawn_after;
	if (__atomic_load_n(&c->queued, __ATOMIC_RELAXED) >= c->qmax)
		return 0;
	return depth <= c->spawn_depth || __atomic_load_n(&c->idle, __ATOMIC_RELAXED) > 0;
}

/*
 * Queue the directory name (open as cfd, whose ignore flags are flags) as
 * a task whose entries go where the walker's next entry would.
 */
static void spawn(struct walker *w, int cfd, const char *name, size_t nlen,
		  const uint8_t *flags)
{
	struct walk_ctx *c = w->c;
	struct task *t = xcalloc(1, sizeof(*t)), *parent = w->t;
	size_t nflags = c->npat ? c->npat : 1;

	t->parent = parent;
	t->dfd = cfd;
	t->prefix_len = w->path.len + nlen + 1;
	t->prefix = xmalloc(t->prefix_len + 1);
	memcpy(t->prefix, w->path.data, w->path.len);
	memcpy(t->prefix + w->path.len, name, nlen);
	t->prefix[t->prefix_len - 1] = '/';
	t->prefix[t->prefix_len] = '\0';
	t->flags = xmalloc(nflags);
	memcpy(t->flags, flags, nflags);
	if (parent->nslots == parent->aslots) {
		parent->aslots = parent->aslots ? 2 * parent->aslots : 8;
		parent->slots = xreallocarray(parent->slots, parent->aslots,
					      sizeof(*parent->slots));
	}
	parent->slots[parent->nslots].pos = w->n;
	parent->slots[parent->nslots++].t = t;

	pthread_mutex_lock(&c->mu);
	t->older = c->all;
	c->all = t;
	*c->tail = t;
	c->tail = &t->qnext;
	__atomic_add_fetch(&c->queued, 1, __ATOMIC_RELAXED);
	c->active++;
	if (!c->started)
		start_workers(c);
	else if (c->idle)
		pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static int walk_dir(struct walker *w, int dfd, const uint8_t *pflags);

/*
 * Visit one name in the directory dfd.  pflags are the parent's flags.
 */
static int visit(struct walker *w, int dfd, const struct name *nm,
		 const uint8_t *pflags, uint8_t *flags)
{
	const struct walk_ctx *c = w->c;
	size_t base = w->path.len, nlen = strlen(nm->s);
	int excluded, deciding = -1, is_dir, ret = 0, types_only;
	struct walk_entry *we;
	struct stat st;
	size_t idx;
	int want_excl = (c->o->flags & WALK_EXCLUDED) != 0;

	w->nvisited++;
	if (buf_add(&w->path, nm->s, nlen))
		return err_set(w->e, ERR_FAIL, "%s: path too long", w->path.data);
	excluded = ign_match(c->ig, w->path.data, w->path.len, pflags, flags, &deciding);
	buf_setlen(&w->path, base);

	/* An excluded non-directory that nobody wants to see: no stat. */
	if (excluded && !want_excl && !(c->o->flags & WALK_FULL) &&
	    nm->d_type != DT_UNKNOWN && nm->d_type != DT_DIR)
		return 0;
	if (excluded && nm->d_type == DT_DIR && !(c->o->flags & (WALK_FULL | WALK_EXCLUDED))) {
		buf_add(&w->path, nm->s, nlen);
		is_dir = must_descend(c, w->path.data, w->path.len);
		buf_setlen(&w->path, base);
		if (!is_dir)
			return 0; /* pruned without a stat */
	}

	types_only = (c->o->flags & WALK_TYPES_ONLY) && nm->d_type != DT_UNKNOWN;
	if (!types_only && fstatat(dfd, nm->s, &st, AT_SYMLINK_NOFOLLOW)) {
		if (errno == ENOENT)
			return 0; /* removed while we walked: not in the context */
		if (excluded)
			return 0;
		return err_errno(w->e, "cannot stat %s%s", w->path.data, nm->s);
	}
	is_dir = types_only ? nm->d_type == DT_DIR : S_ISDIR(st.st_mode);

	idx = w->n;
	we = new_entry(w);
	ret = fill_entry(w, we, dfd, nm->s, types_only ? NULL : &st, nm->d_type);
	if (ret) {
		w->n--;
		if (ret > 0) {
			w->n_sockets_skipped++;
			return 0;
		}
		return ret;
	}
	we->deciding = deciding;
	we->excluded = (uint8_t)excluded;

	if (!excluded) {
		flip_pending(w);
		/* BuildKit fails on an unreadable included file; check only
		 * when the mode bits leave doubt (root passes anyway). */
		if (we->type == WALK_REG && !c->is_root &&
		    (types_only || (st.st_mode & 0444) != 0444) &&
		    faccessat(dfd, nm->s, R_OK, AT_EACCESS))
			return err_errno(w->e, "cannot read %s", we->path);
		if (c->o->seen && !is_dir && !types_only)
			c->o->seen(c->o->seen_ctx, we);
	} else if (we->type == WALK_REG) {
		w->n_excluded_files++;
		w->n_excluded_bytes += we->size;
	}

	if (!is_dir) {
		if (excluded && !want_excl)
			w->n--;
		return 0;
	}

	if (excluded) {
		int enter = (c->o->flags & WALK_FULL) ||
			    must_descend(c, we->path, we->path_len);

		if (!enter) {
			if (!want_excl)
				w->n--;
			return 0;
		}
		if (c->o->flags & WALK_FSUTIL2020) {
			/* sent as soon as it is entered */
			flip_pending(w);
			we->excluded = 0;
			excluded = 0;
			goto descend;
		}
		if (w->npending == w->apending) {
			w->apending = w->apending ? 2 * w->apending : 16;
			w->pending = xreallocarray(w->pending, w->apending, sizeof(size_t));
		}
		w->pending[w->npending++] = idx;
	}

descend:
	{
		int cfd = openat(dfd, nm->s, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		size_t depth_pending = w->npending;

		if (cfd < 0) {
			/* Removed since its stat: an empty directory, as if it
			 * went right after it was read.  BuildKit ignores
			 * permission errors on excluded entries. */
			if (errno == ENOENT ||
			    (excluded && (errno == EACCES || errno == EPERM))) {
				if (w->npending == depth_pending && depth_pending)
					w->npending--;
				if (!want_excl && w->v[idx].excluded)
					w->n = idx;
				return 0;
			}
			return err_errno(w->e, "cannot open directory %s", w->v[idx].path);
		}
		if (!excluded && want_spawn(w, we->depth)) {
			spawn(w, cfd, nm->s, nlen, flags);
			return 0;
		}
		buf_add(&w->path, nm->s, nlen);
		buf_addch(&w->path, '/');
		ret = walk_dir(w, cfd, flags);
		buf_setlen(&w->path, base);
		if (ret)
			return ret;
		/* still pending: no included descendant */
		if (excluded && w->npending == depth_pending) {
			w->npending--;
			if (!want_excl)
				w->n = idx; /* drop it (and nothing follows it) */
		}
	}
	return 0;
}

/*
 * Record that this walker failed at name in the current directory (NULL:
 * at the directory itself), unless an earlier failure is known.
 */
static void note_failure(struct walker *w, const char *name)
{
	struct walk_ctx *c = w->c;
	size_t base = w->path.len, len;

	if (c->nthreads < 2 || w->noted)
		return;
	w->noted = 1;
	if (name)
		buf_addstr(&w->path, name);
	len = name ? w->path.len : base ? base - 1 : 0;
	pthread_mutex_lock(&c->mu);
	if (!c->failed ||
	    walk_path_cmp(w->path.data, len, c->err_pos.data, c->err_pos.len) < 0) {
		buf_reset(&c->err_pos);
		buf_add(&c->err_pos, w->path.data, len);
		__atomic_store_n(&c->failed, 1, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&c->mu);
	buf_setlen(&w->path, base);
}

/* Does name in the current directory come after the earliest failure? */
static int past_failure(struct walker *w, const char *name)
{
	struct walk_ctx *c = w->c;
	size_t base = w->path.len;
	int past;

	buf_addstr(&w->path, name);
	pthread_mutex_lock(&c->mu);
	past = walk_path_cmp(w->path.data, w->path.len, c->err_pos.data,
			     c->err_pos.len) > 0;
	pthread_mutex_unlock(&c->mu);
	buf_setlen(&w->path, base);
	return past;
}

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/*
 * Read a directory's names with getdents64 on the fd itself (no DIR*:
 * fdopendir costs an fstat and fcntls per directory), sort them, visit
 * them.  Takes ownership of dfd.  The names are all read before the
 * first visit, so one buffer per thread serves every level: recursion
 * costs little stack, which matters on threads (2 MiB of stack by
 * default when the stack rlimit is unlimited).
 */
static int walk_dir(struct walker *w, int dfd, const uint8_t *pflags)
{
	struct name *names = NULL;
	size_t n = 0, alloc = 0, i;
	uint8_t *flags = NULL;
	int ret = 0;

	if (!w->dbuf)
		w->dbuf = xmalloc(DENTS_BUF); /* malloc's alignment suits dirents */
	for (;;) {
		long got = syscall(SYS_getdents64, dfd, w->dbuf, DENTS_BUF);
		long off;

		if (got < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ENOENT)
				break; /* removed since it was opened: read as empty */
			ret = err_errno(w->e, "cannot read directory %s",
					w->path.len ? w->path.data : w->c->root);
			goto out;
		}
		if (got == 0)
			break;
		for (off = 0; off < got;) {
			struct linux_dirent64 *de = (struct linux_dirent64 *)(w->dbuf + off);
			const char *nm = de->d_name;

			off += de->d_reclen;
			if (nm[0] == '.' && (!nm[1] || (nm[1] == '.' && !nm[2])))
				continue;
			if (n == alloc) {
				alloc = alloc ? alloc * 2 : 32;
				names = xreallocarray(names, alloc, sizeof(*names));
			}
			names[n].s = xstrdup(nm);
			names[n].d_type = de->d_type;
			n++;
		}
	}
	if (n)
		qsort(names, n, sizeof(*names), name_cmp);

	flags = xcalloc(w->c->npat ? w->c->npat : 1, 1);
	for (i = 0; i < n && !ret; i++) {
		if (__atomic_load_n(&w->c->failed, __ATOMIC_RELAXED) &&
		    past_failure(w, names[i].s)) {
			ret = WALK_CANCELLED;
			break;
		}
		ret = visit(w, dfd, &names[i], pflags, flags);
		if (ret < 0)
			note_failure(w, names[i].s);
	}
out:
	for (i = 0; i < n; i++)
		free(names[i].s);
	free(names);
	free(flags);
	close(dfd);
	return ret;
}

/* Walk task t on this thread. */
static void run_task(struct walker *w, struct task *t)
{
	struct err e = ERR_INIT;
	int ret;

	w->t = t;
	w->e = &e;
	w->noted = 0;
	w->npending = 0;
	buf_reset(&w->path);
	if (t->prefix_len)
		buf_add(&w->path, t->prefix, t->prefix_len);
	t->w = w;
	t->start = w->n;
	ret = walk_dir(w, t->dfd, t->flags);
	t->dfd = -1;
	t->end = w->n;
	if (ret < 0) {
		note_failure(w, NULL);
		t->err = xmalloc(sizeof(*t->err));
		*t->err = e;
	}
	t->status = ret;
}

/* Walk queued tasks until none is queued or being walked. */
static void work(struct walker *w)
{
	struct walk_ctx *c = w->c;
	struct task *t;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (!c->head && c->active) {
			__atomic_add_fetch(&c->idle, 1, __ATOMIC_RELAXED);
			pthread_cond_wait(&c->cv, &c->mu);
			__atomic_sub_fetch(&c->idle, 1, __ATOMIC_RELAXED);
		}
		t = c->head;
		if (!t)
			break;
		c->head = t->qnext;
		if (!c->head)
			c->tail = &c->head;
		__atomic_sub_fetch(&c->queued, 1, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&c->mu);
		run_task(w, t);
		pthread_mutex_lock(&c->mu);
		if (!--c->active)
			pthread_cond_broadcast(&c->cv);
	}
	pthread_mutex_unlock(&c->mu);
}

static void *worker_main(void *arg)
{
	work(arg);
	return NULL;
}

/* With c->mu held.  Without any worker, the calling thread does it all. */
static void start_workers(struct walk_ctx *c)
{
	unsigned i;

	__atomic_store_n(&c->started, 1, __ATOMIC_RELAXED);
	for (i = 1; i < c->nthreads; i++)
		if (!pthread_create(&c->tid[c->nworkers], NULL, worker_main,
				    &c->walkers[c->nworkers + 1]))
			c->nworkers++;
}

static unsigned pick_threads(const struct walk_opts *o)
{
	long n;

	if (o->threads)
		return o->threads < WALK_THREADS_MAX ? o->threads : WALK_THREADS_MAX;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		return 1;
	return n < DEFAULT_THREADS_MAX ? (unsigned)n : DEFAULT_THREADS_MAX;
}

/* The first failed task in walk order: a task fails after its subtasks. */
static const struct task *first_failure(const struct task *t)
{
	const struct task *f;
	size_t i;

	for (i = 0; i < t->nslots; i++)
		if ((f = first_failure(t->slots[i].t)))
			return f;
	return t->status < 0 ? t : NULL;
}

static void copy_entries(struct walk_entry *dst, const struct walk_entry *src, size_t n)
{
	if (n)
		memcpy(dst, src, n * sizeof(*dst));
}

/* Copy t's entries with its subtasks' spliced in to dst (t->total of them). */
static void copy_task(struct walk_entry *dst, const struct task *t)
{
	size_t from = t->start, i;

	for (i = 0; i < t->nslots; i++) {
		const struct slot *s = &t->slots[i];

		copy_entries(dst, t->w->v + from, s->pos - from);
		dst += s->pos - from;
		copy_task(dst, s->t);
		dst += s->t->total;
		from = s->pos;
	}
	copy_entries(dst, t->w->v + from, t->end - from);
}

/*
 * Everything found into r, or the first failure into e; frees the tasks
 * and the walkers' state.  When nothing was handed off, the calling
 * thread's vector holds the root task alone and becomes the result.
 */
static int merge(struct walk_ctx *c, struct task *root, struct walk_result *r,
		 struct err *e)
{
	const struct task *f = first_failure(root);
	struct walker *w0 = &c->walkers[0];
	struct task *t, *older;
	unsigned i;
	int ret = 0;

	/* newest first: a task's subtasks are newer than it */
	for (t = c->all; t; t = t->older) {
		assert(!t->nslots || t->slots[t->nslots - 1].pos <= t->end);
		t->total += t->end - t->start;
		t->parent->total += t->total;
	}
	root->total += root->end - root->start;
	if (f) {
		if (!err_isset(e))
			*e = *f->err;
		ret = f->status;
	}
	if (!f && c->all) {
		assert(root->status == 0);
		r->v = xreallocarray(NULL, root->total, sizeof(*r->v));
		r->n = r->alloc = root->total;
		copy_task(r->v, root);
	} else {
		r->v = w0->v;
		r->n = w0->n;
		r->alloc = w0->alloc;
		w0->v = NULL;
	}
	for (i = 0; i < c->nthreads; i++) {
		struct walker *w = &c->walkers[i];

		if (w->arena) {
			struct arena_chunk *last = w->arena;

			while (last->next)
				last = last->next;
			last->next = r->arena;
			r->arena = w->arena;
		}
		r->n_excluded_files += w->n_excluded_files;
		r->n_excluded_bytes += w->n_excluded_bytes;
		r->n_sockets_skipped += w->n_sockets_skipped;
		free(w->v);
		buf_release(&w->path);
		free(w->pending);
		free(w->dbuf);
	}
	free(root->slots);
	free(root->err);
	for (t = c->all; t; t = older) {
		older = t->older;
		assert(t->dfd < 0); /* every task was walked */
		free(t->prefix);
		free(t->flags);
		free(t->slots);
		free(t->err);
		free(t);
	}
	c->all = NULL;
	return ret;
}

/* Walk the tree under fd (owned) into r. */
static int walk_tree(const struct walk_opts *o, struct walk_result *r, int fd,
		     struct err *e)
{
	struct walk_ctx c;
	struct task root;
	unsigned i;
	int ret;

	memset(&c, 0, sizeof(c));
	c.o = o;
	c.ig = r->ign;
	c.npat = ign_count(r->ign);
	c.root = r->root;
	c.is_root = geteuid() == 0;
	c.nthreads = pick_threads(o);
	if (o->flags & WALK_SPLIT_EAGER) {
		c.qmax = EAGER_QUEUE;
		c.spawn_depth = UINT_MAX;
		c.spawn_after = 0;
	} else {
		c.qmax = c.nthreads;
		c.spawn_depth = SPAWN_DEPTH;
		c.spawn_after = SPAWN_AFTER;
	}
	pthread_mutex_init(&c.mu, NULL);
	pthread_cond_init(&c.cv, NULL);
	c.tail = &c.head;
	c.active = 1; /* the root task */
	buf_init(&c.err_pos, 0);
	c.walkers = xcalloc(c.nthreads, sizeof(*c.walkers));
	for (i = 0; i < c.nthreads; i++) {
		c.walkers[i].c = &c;
		buf_init(&c.walkers[i].path, 0);
	}

	memset(&root, 0, sizeof(root));
	root.dfd = fd;
	run_task(&c.walkers[0], &root);
	if (c.nthreads > 1) {
		pthread_mutex_lock(&c.mu);
		if (!--c.active)
			pthread_cond_broadcast(&c.cv);
		pthread_mutex_unlock(&c.mu);
		work(&c.walkers[0]);
		for (i = 0; i < c.nworkers; i++)
			pthread_join(c.tid[i], NULL);
	}
	ret = merge(&c, &root, r, e);
	free(c.walkers);
	buf_release(&c.err_pos);
	pthread_cond_destroy(&c.cv);
	pthread_mutex_destroy(&c.mu);
	/* the threads' vectors were freed into their malloc arenas, which
	 * keep the pages: hand them back before the packer needs its own */
	if (c.nthreads > 1)
		malloc_trim(0);
	return ret;
}

/*
 * The hard-link pass: the first included path of an inode with more than
 * one link stays a regular file, every later one (in archive order) links
 * to it, as go-archive and fsutil send them (only included paths count:
 * an excluded path is never a link's target).  Open addressing on
 * (dev, ino) over the candidates only, so a tree without hard links costs
 * one pass over the entries.
 */
static void mark_hardlinks(struct walk_result *r)
{
	size_t i, n = 0, cap, *slot;

	for (i = 0; i < r->n; i++)
		if (!r->v[i].excluded && r->v[i].type == WALK_REG && r->v[i].nlink > 1)
			n++;
	if (n < 2)
		return;
	for (cap = 16; cap < 2 * n; cap *= 2)
		;
	slot = xreallocarray(NULL, cap, sizeof(*slot));
	memset(slot, 0xff, cap * sizeof(*slot));
	for (i = 0; i < r->n; i++) {
		struct walk_entry *we = &r->v[i];
		uint64_t h;
		size_t k;

		if (we->excluded || we->type != WALK_REG || we->nlink <= 1)
			continue;
		h = (we->ino * 0x9e3779b97f4a7c15ULL) ^ (we->dev * 0xbf58476d1ce4e5b9ULL);
		for (k = (size_t)(h >> 7) & (cap - 1); slot[k] != (size_t)-1; k = (k + 1) & (cap - 1)) {
			const struct walk_entry *first = &r->v[slot[k]];

			if (first->ino == we->ino && first->dev == we->dev)
				break;
		}
		if (slot[k] == (size_t)-1) {
			slot[k] = i;
			continue;
		}
		we->type = WALK_HARDLINK;
		we->link = r->v[slot[k]].path;
		we->link_len = r->v[slot[k]].path_len;
		r->n_hardlinks++;
	}
	free(slot);
}

/* dirname(realpath(dirname(p))) + "/" + basename(p), or NULL. */
static char *resolve_parent(const char *p)
{
	const char *slash = strrchr(p, '/');
	char *dir, *real, *out;

	if (!slash)
		dir = xstrdup(".");
	else if (slash == p)
		dir = xstrdup("/");
	else
		dir = xstrndup(p, (size_t)(slash - p));
	real = realpath(dir, NULL);
	free(dir);
	if (!real)
		return NULL;
	out = xasprintf("%s/%s", strcmp(real, "/") ? real : "", slash ? slash + 1 : p);
	free(real);
	return out;
}

/* p relative to root when it lies inside it, else NULL. */
static char *rel_to_root(const char *root, const char *p)
{
	char *full = resolve_parent(p), *rel = NULL;
	size_t rl = strlen(root);

	if (full && !strncmp(full, root, rl) && full[rl] == '/' && full[rl + 1])
		rel = xstrdup(full + rl + 1);
	free(full);
	return rel;
}

static int read_ignore(struct walk_result *r, const char *path, int must_exist,
		       struct err *e)
{
	struct buf b = BUF_INIT;
	struct stat st;
	int ret;

	if (stat(path, &st)) {
		if (errno == ENOENT && !must_exist)
			return 1;
		return err_errno(e, "cannot read ignore file %s", path);
	}
	if (S_ISDIR(st.st_mode))
		return err_set(e, ERR_USAGE, "ignore file %s is a directory", path);
	ret = buf_read_file(&b, path, MAX_IGNORE_SIZE, e);
	if (!ret)
		ret = ign_parse(r->ign, path, b.data, b.len, e);
	if (!ret)
		r->ignore_path = xstrdup(path);
	buf_release(&b);
	return ret;
}

int walk_run(const struct walk_opts *o, struct walk_result *r, struct err *e)
{
	const char *dir = o->dir ? o->dir : ".";
	struct stat st;
	char *df = NULL, *tmp = NULL;
	int fd, ret;

	memset(r, 0, sizeof(*r));
	r->ign = ign_new();
	r->flags = o->flags;

	if (stat(dir, &st)) {
		if (errno == ENOENT)
			return err_set(e, ERR_NOTFOUND, "context %s does not exist", dir);
		return err_errno(e, "cannot access context %s", dir);
	}
	if (!S_ISDIR(st.st_mode))
		return err_set(e, ERR_USAGE, "context %s is not a directory", dir);
	r->root = realpath(dir, NULL);
	if (!r->root)
		return err_errno(e, "cannot resolve context %s", dir);

	/* Which Dockerfile: -f is relative to the working directory, like
	 * docker's; the default is DIR/Dockerfile. */
	if (o->dockerfile)
		df = xstrdup(o->dockerfile);
	else
		df = xasprintf("%s/Dockerfile", r->root);
	r->dockerfile_rel = rel_to_root(r->root, df);

	if (o->ignore_file) {
		ret = read_ignore(r, o->ignore_file, 1, e);
	} else {
		ret = 1;
		if (!(o->flags & WALK_CLASSIC)) {
			tmp = xasprintf("%s.dockerignore", df);
			ret = read_ignore(r, tmp, 0, e);
		}
		if (ret == 1) {
			free(tmp);
			tmp = xasprintf("%s/.dockerignore", r->root);
			ret = read_ignore(r, tmp, 0, e);
		}
		if (ret == 1) {
			ret = ign_parse(r->ign, "(none)", "", 0, e);
		}
	}
	free(tmp);
	free(df);
	if (ret)
		return ret;
	if (r->ignore_path)
		r->ignore_rel = rel_to_root(r->root, r->ignore_path);

	fd = open(r->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return err_errno(e, "cannot open context %s", r->root);
	if (o->replay && o->replay(o->replay_ctx, o, r, fd) == 1) {
		close(fd);
		return 0;
	}

	ret = walk_tree(o, r, fd, e);
	if (!ret && !(o->flags & (WALK_NO_HARDLINKS | WALK_TYPES_ONLY)))
		mark_hardlinks(r);
	return ret;
}

void *walk_result_alloc(struct walk_result *r, size_t n)
{
	struct arena_chunk *c = xmalloc(sizeof(*c) + n);

	c->next = r->arena;
	c->used = c->cap = n;
	r->arena = c;
	return c->data;
}

void walk_release(struct walk_result *r)
{
	struct arena_chunk *c = r->arena, *next;

	for (; c; c = next) {
		next = c->next;
		free(c);
	}
	free(r->v);
	free(r->root);
	free(r->ignore_path);
	free(r->ignore_rel);
	free(r->dockerfile_rel);
	ign_free(r->ign);
	memset(r, 0, sizeof(*r));
}
