/*
 * The context walker.
 *
 * Depth-first, each directory's names read in full, sorted bytewise and
 * then visited, so the result is in archive order (parents before
 * children).  Every file system call is relative to an open directory fd
 * (openat/fdopendir/fstatat/readlinkat): no path is resolved twice and
 * symlinks inside the context are never followed.
 *
 * The ignore verdict comes before the stat: an excluded entry that is not
 * a directory (d_type tells) is never stat'ed unless the caller wants
 * excluded entries, and an excluded directory is not even opened unless an
 * exception could re-include something below it (ign_must_descend).
 *
 * Excluded directories that are entered are recorded at once (marked
 * excluded) and flipped to included when a descendant turns out to be
 * included; that is BuildKit's lazy sending of parent directories.  When
 * the caller does not want excluded entries, a directory that ends up with
 * no included descendant is the last record and is simply dropped.
 */
#include "ctxpack/walk.h"

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

#define ARENA_CHUNK (256 * 1024)
#define MAX_IGNORE_SIZE (64 * 1024 * 1024)

struct arena_chunk {
	struct arena_chunk *next;
	size_t used, cap;
	char data[];
};

struct walker {
	const struct walk_opts *o;
	struct walk_result *r;
	struct ign *ig;
	size_t npat;
	struct buf path;       /* current directory path, with trailing '/' (or empty) */
	size_t *pending;       /* indices of excluded ancestor dirs not yet flipped */
	size_t npending, apending;
	int is_root; /* euid 0: every file is readable */
	struct err *e;
};

struct name {
	char *s;
	unsigned char d_type;
};

static void *arena_alloc(struct walk_result *r, size_t n)
{
	struct arena_chunk *c = r->arena;

	if (!c || c->cap - c->used < n) {
		size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;

		c = xmalloc(sizeof(*c) + cap);
		c->next = r->arena;
		c->used = 0;
		c->cap = cap;
		r->arena = c;
	}
	c->used += n;
	return c->data + c->used - n;
}

static char *arena_strndup(struct walk_result *r, const char *s, size_t n)
{
	char *p = arena_alloc(r, n + 1);

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
	struct walk_result *r = w->r;
	struct walk_entry *we;

	if (r->n == r->alloc) {
		r->alloc = r->alloc ? r->alloc * 2 : 1024;
		r->v = xreallocarray(r->v, r->alloc, sizeof(*r->v));
	}
	we = &r->v[r->n++];
	memset(we, 0, sizeof(*we));
	return we;
}

/* An entry was included: every excluded ancestor being walked is sent. */
static void flip_pending(struct walker *w)
{
	while (w->npending) {
		size_t k = w->pending[--w->npending];

		w->r->v[k].excluded = 0;
	}
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
		char *p = arena_alloc(w->r, plen + 1);

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
	default: return 1; /* socket: skipped */
	}
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
		we->link = arena_strndup(w->r, t, (size_t)n);
		we->link_len = (uint32_t)n;
		we->size = (uint64_t)n;
		free(t);
	}
	return 0;
}

static int walk_dir(struct walker *w, int dfd, const uint8_t *pflags);

/*
 * Visit one name in the directory dfd.  pflags are the parent's flags.
 */
static int visit(struct walker *w, int dfd, const struct name *nm,
		 const uint8_t *pflags, uint8_t *flags)
{
	size_t base = w->path.len, nlen = strlen(nm->s);
	int excluded, deciding = -1, is_dir, ret = 0, types_only;
	struct walk_entry *we;
	struct stat st;
	size_t idx;
	int want_excl = (w->o->flags & WALK_EXCLUDED) != 0;

	if (buf_add(&w->path, nm->s, nlen))
		return err_set(w->e, ERR_FAIL, "%s: path too long", w->path.data);
	excluded = ign_match(w->ig, w->path.data, w->path.len, pflags, flags, &deciding);
	buf_setlen(&w->path, base);

	/* An excluded non-directory that nobody wants to see: no stat. */
	if (excluded && !want_excl && !(w->o->flags & WALK_FULL) &&
	    nm->d_type != DT_UNKNOWN && nm->d_type != DT_DIR)
		return 0;
	if (excluded && nm->d_type == DT_DIR && !(w->o->flags & (WALK_FULL | WALK_EXCLUDED))) {
		buf_add(&w->path, nm->s, nlen);
		is_dir = ign_must_descend(w->ig, w->path.data, w->path.len);
		buf_setlen(&w->path, base);
		if (!is_dir)
			return 0; /* pruned without a stat */
	}

	types_only = (w->o->flags & WALK_TYPES_ONLY) && nm->d_type != DT_UNKNOWN;
	if (!types_only && fstatat(dfd, nm->s, &st, AT_SYMLINK_NOFOLLOW)) {
		if (errno == ENOENT)
			return 0; /* removed while we walked: not in the context */
		if (excluded)
			return 0;
		return err_errno(w->e, "cannot stat %s%s", w->path.data, nm->s);
	}
	is_dir = types_only ? nm->d_type == DT_DIR : S_ISDIR(st.st_mode);

	idx = w->r->n;
	we = new_entry(w);
	ret = fill_entry(w, we, dfd, nm->s, types_only ? NULL : &st, nm->d_type);
	if (ret) {
		w->r->n--;
		if (ret > 0) {
			w->r->n_sockets_skipped++;
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
		if (we->type == WALK_REG && !w->is_root &&
		    (types_only || (st.st_mode & 0444) != 0444) &&
		    faccessat(dfd, nm->s, R_OK, AT_EACCESS))
			return err_errno(w->e, "cannot read %s", we->path);
	} else if (we->type == WALK_REG) {
		w->r->n_excluded_files++;
		w->r->n_excluded_bytes += we->size;
	}

	if (!is_dir) {
		if (excluded && !want_excl)
			w->r->n--;
		return 0;
	}

	if (excluded) {
		int enter = (w->o->flags & WALK_FULL) ||
			    ign_must_descend(w->ig, we->path, we->path_len);

		if (!enter) {
			if (!want_excl)
				w->r->n--;
			return 0;
		}
		if (w->npending == w->apending) {
			w->apending = w->apending ? 2 * w->apending : 16;
			w->pending = xreallocarray(w->pending, w->apending, sizeof(size_t));
		}
		w->pending[w->npending++] = idx;
	}

	/* descend */
	{
		int cfd = openat(dfd, nm->s, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		size_t depth_pending = w->npending;

		if (cfd < 0) {
			if (excluded && (errno == EACCES || errno == EPERM)) {
				/* BuildKit ignores permission errors on excluded entries */
				if (w->npending == depth_pending && depth_pending)
					w->npending--;
				if (!want_excl && w->r->v[idx].excluded)
					w->r->n = idx;
				return 0;
			}
			return err_errno(w->e, "cannot open directory %s", w->r->v[idx].path);
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
				w->r->n = idx; /* drop it (and nothing follows it) */
		}
	}
	return 0;
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
 * them.  Takes ownership of dfd.
 */
static int walk_dir(struct walker *w, int dfd, const uint8_t *pflags)
{
	char dbuf[32768] __attribute__((aligned(8)));
	struct name *names = NULL;
	size_t n = 0, alloc = 0, i;
	uint8_t *flags = NULL;
	int ret = 0;

	for (;;) {
		long got = syscall(SYS_getdents64, dfd, dbuf, sizeof(dbuf));
		long off;

		if (got < 0) {
			if (errno == EINTR)
				continue;
			ret = err_errno(w->e, "cannot read directory %s",
					w->path.len ? w->path.data : w->r->root);
			goto out;
		}
		if (got == 0)
			break;
		for (off = 0; off < got;) {
			struct linux_dirent64 *de = (struct linux_dirent64 *)(dbuf + off);
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

	flags = xcalloc(w->npat ? w->npat : 1, 1);
	for (i = 0; i < n && !ret; i++)
		ret = visit(w, dfd, &names[i], pflags, flags);
out:
	for (i = 0; i < n; i++)
		free(names[i].s);
	free(names);
	free(flags);
	close(dfd);
	return ret;
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
	struct walker w;
	struct stat st;
	char *df = NULL, *tmp = NULL;
	int fd, ret;

	memset(r, 0, sizeof(*r));
	r->ign = ign_new();

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
		tmp = xasprintf("%s.dockerignore", df);
		ret = read_ignore(r, tmp, 0, e);
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

	memset(&w, 0, sizeof(w));
	w.o = o;
	w.r = r;
	w.ig = r->ign;
	w.npat = ign_count(r->ign);
	w.e = e;
	w.is_root = geteuid() == 0;
	buf_init(&w.path, 0);
	ret = walk_dir(&w, fd, NULL);
	buf_release(&w.path);
	free(w.pending);
	return ret;
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
