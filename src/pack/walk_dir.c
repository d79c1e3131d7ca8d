/*
 * walk_dir.c: the walk of one directory: its names read with getdents64,
 * sorted, matched against the ignore patterns, stat'ed and visited; and
 * the notes on failures that keep the first error in walk order when
 * several threads walk.
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
 * Errors: the first in walk order wins, as in the serial walk.  A failing
 * walker records where (the path it was visiting); another walker that is
 * about to visit a name past the earliest recorded failure stops there
 * (WALK_CANCELLED: nothing it finds could come first), while walkers before
 * it go on, as they may meet an earlier error.  The merge reports the
 * first failed task in walk order.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ctxpack/ignore.h"
#include "walk_internal.h"

#define ARENA_CHUNK (256 * 1024)
#define ARENA_CHUNK_MAX ((size_t)8 << 20)
#define DENTS_BUF (32 * 1024)

struct name {
	char *s;
	unsigned char d_type;
};

static void *arena_alloc(struct walker *w, size_t n)
{
	struct arena_chunk *c = w->arena;

	if (!c || c->cap - c->used < n) {
		/* each chunk twice the last, up to ARENA_CHUNK_MAX: big trees
		 * get big chunks, on huge pages (xmalloc_big) */
		size_t cap = !c ? ARENA_CHUNK : c->cap < ARENA_CHUNK_MAX ? 2 * c->cap : c->cap;

		if (cap < n)
			cap = n;
		c = xmalloc_big(sizeof(*c) + cap);
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

static int name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct name *)a)->s, ((const struct name *)b)->s);
}

static struct walk_entry *new_entry(struct walker *w)
{
	struct walk_entry *we;

	if (w->n == w->alloc) {
		w->alloc = w->alloc ? w->alloc * 2 : 1024;
		w->v = xreallocarray_big(w->v, w->n, w->alloc, sizeof(*w->v));
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


/*
 * Visit one name in the directory dfd.  pflags are the parent's flags.
 */
static int visit(struct walker *w, int dfd, const struct name *nm,
		 const uint8_t *pflags, uint8_t *flags)
{
	const struct walk_ctx *c = w->c;
	size_t base = w->path.len, nlen = strlen(nm->s);
	int excluded, deciding = -1, is_dir, ret = 0, types_only, prune = 0;
	struct walk_entry *we;
	struct stat st;
	size_t idx;
	int want_excl = (c->o->flags & WALK_EXCLUDED) != 0;

	w->nvisited++;
	if (buf_add(&w->path, nm->s, nlen))
		return err_set(w->e, ERR_FAIL, "%s: path too long", w->path.data);
	excluded = ign_match(c->ig, w->path.data, w->path.len, pflags, flags, &deciding);
	buf_setlen(&w->path, base);
	/* below a directory only WALK_FULL enters, no exception applies */
	if (w->pruned)
		excluded = 1;

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
		prune = w->pruned || !must_descend(c, we->path, we->path_len);
		if (prune && !(c->o->flags & WALK_FULL)) {
			if (!want_excl)
				w->n--;
			return 0;
		}
		if (!prune && (c->o->flags & WALK_FSUTIL2020)) {
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
		if (!excluded && wk_want_spawn(w, we->depth)) {
			wk_spawn(w, cfd, nm->s, nlen, flags);
			return 0;
		}
		buf_add(&w->path, nm->s, nlen);
		buf_addch(&w->path, '/');
		w->pruned += (unsigned)prune;
		ret = wk_walk_dir(w, cfd, flags);
		w->pruned -= (unsigned)prune;
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
void wk_note_failure(struct walker *w, const char *name)
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
int wk_walk_dir(struct walker *w, int dfd, const uint8_t *pflags)
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
			wk_note_failure(w, names[i].s);
	}
out:
	for (i = 0; i < n; i++)
		free(names[i].s);
	free(names);
	free(flags);
	close(dfd);
	return ret;
}

