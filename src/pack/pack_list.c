/*
 * pack_list: which entries go into the archive, and the pack options.
 *
 * The walk gives the included entries in archive order.  A builder reading
 * a context from a tar also needs the Dockerfile and the ignore file: the
 * docker CLI always sends them (it appends "!Dockerfile" and
 * "!.dockerignore" exceptions) and the builder hides them from COPY itself.
 * So they are added when the patterns excluded them, together with any
 * directory above them that is missing, so that every entry's parent
 * precedes it in the archive.
 */
#include "ctxpack/pack.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void pack_opts_init(struct pack_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->compress = PACK_ZSTD;
	o->mtime = PACK_DEFAULT_MTIME;
}

const char *pack_compress_name(int compress)
{
	switch (compress) {
	case PACK_ZSTD: return "zstd";
	case PACK_GZIP: return "gzip";
	case PACK_NONE: return "none";
	}
	return "?";
}

int pack_parse_compress(const char *s, int *out, struct err *e)
{
	if (!strcmp(s, "zstd"))
		*out = PACK_ZSTD;
	else if (!strcmp(s, "gzip"))
		*out = PACK_GZIP;
	else if (!strcmp(s, "none"))
		*out = PACK_NONE;
	else
		return err_set(e, ERR_USAGE, "--compress takes zstd, gzip or none, not '%s'", s);
	return 0;
}

int pack_level(const struct pack_opts *o)
{
	if (o->compress == PACK_NONE)
		return 0;
	if (o->level)
		return o->level;
	return o->compress == PACK_GZIP ? 6 : 3;
}

/* A relative directory path of non-empty components other than "." and
 * "..", at most PACK_PREFIX_MAX bytes. */
static int check_prefix(const char *p, struct err *e)
{
	const char *c, *end;

	if (!p || !*p)
		return 0;
	if (strlen(p) > PACK_PREFIX_MAX)
		return err_set(e, ERR_USAGE, "path prefix longer than %d bytes: '%.64s...'",
			       PACK_PREFIX_MAX, p);
	for (c = p; *c; c = *end ? end + 1 : end) {
		size_t n;

		end = strchrnul(c, '/');
		n = (size_t)(end - c);
		if (!n || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return err_set(e, ERR_USAGE, "bad path prefix '%s': want a relative path "
				       "without empty, '.' or '..' components", p);
		if (*end && !end[1])
			return err_set(e, ERR_USAGE, "bad path prefix '%s': it ends in '/'", p);
	}
	return 0;
}

int pack_opts_check(const struct pack_opts *o, struct err *e)
{
	switch (o->compress) {
	case PACK_ZSTD:
		/* 20-22 ("ultra") need windows far beyond the frame size and
		 * hundreds of MiB per worker. */
		if (o->level < 0 || o->level > 19)
			return err_set(e, ERR_USAGE, "--level for zstd is 1 to 19, not %d",
				       o->level);
		break;
	case PACK_GZIP:
		if (o->level < 0 || o->level > 9)
			return err_set(e, ERR_USAGE, "--level for gzip is 1 to 9, not %d",
				       o->level);
		break;
	case PACK_NONE:
		if (o->level)
			return err_set(e, ERR_USAGE, "--level does not apply to --compress none");
		break;
	default:
		return err_set(e, ERR_USAGE, "unknown compression %d", o->compress);
	}
	if (o->threads > PACK_MAX_THREADS)
		return err_set(e, ERR_USAGE, "--threads is 1 to %d, not %u", PACK_MAX_THREADS,
			       o->threads);
	if (o->mtime < 0 || o->mtime > PACK_MAX_MTIME)
		return err_set(e, ERR_USAGE, "mtime %lld out of range", (long long)o->mtime);
	return check_prefix(o->prefix, e);
}

int pack_source_date_epoch(const char *env, int64_t *mtime, struct err *e)
{
	uint64_t v;

	if (!env) {
		*mtime = PACK_DEFAULT_MTIME;
		return 0;
	}
	if (parse_u64(env, &v))
		return err_set(e, ERR_USAGE, "SOURCE_DATE_EPOCH='%.64s' is not a number of "
			       "seconds since 1970", env);
	if (v > (uint64_t)PACK_MAX_MTIME)
		return err_set(e, ERR_USAGE, "SOURCE_DATE_EPOCH=%s is out of range (at most %lld)",
			       env, PACK_MAX_MTIME);
	*mtime = (int64_t)v;
	return 0;
}

/* Index of path in the sorted walk entries, or -1. */
static ssize_t find_entry(const struct walk_result *r, const char *p, size_t n)
{
	size_t lo = 0, hi = r->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct walk_entry *we = &r->v[mid];
		int c = walk_path_cmp(we->path, we->path_len, p, n);

		if (c == 0)
			return (ssize_t)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

struct pending {
	char *path;
	size_t path_len;
	char *link;
	size_t link_len;
	struct stat st;
};

struct pendings {
	struct pending *v;
	size_t n, alloc;
};

static int pending_has(const struct pendings *p, const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (p->v[i].path_len == len && !memcmp(p->v[i].path, s, len))
			return 1;
	return 0;
}

static struct pending *pending_add(struct pendings *p, char *path, size_t len,
				   const struct stat *st)
{
	struct pending *x;

	if (p->n == p->alloc) {
		p->alloc = p->alloc ? 2 * p->alloc : 8;
		p->v = xreallocarray(p->v, p->alloc, sizeof(*p->v));
	}
	x = &p->v[p->n++];
	x->path = path;
	x->path_len = len;
	x->link = NULL;
	x->link_len = 0;
	x->st = *st;
	return x;
}

static void pending_truncate(struct pendings *p, size_t n)
{
	while (p->n > n) {
		p->n--;
		free(p->v[p->n].path);
		free(p->v[p->n].link);
	}
}

/*
 * Queue rel (and its missing parents) for adding.  Nothing is queued when
 * the file is missing, is not a regular file or symlink, or a parent on
 * the way is not a directory.
 */
static int queue_path(const struct walk_result *r, int rootfd, const char *rel,
		      struct pendings *p, struct err *e)
{
	size_t len = strlen(rel), i, start = p->n;
	struct pending *x;
	struct stat st;

	if (!len || rel[0] == '/' || len > UINT32_MAX || find_entry(r, rel, len) >= 0 ||
	    pending_has(p, rel, len))
		return 0;
	if (fstatat(rootfd, rel, &st, AT_SYMLINK_NOFOLLOW)) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		return err_errno(e, "cannot stat %s/%s", r->root, rel);
	}
	if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
		return 0;

	/* the missing parents, outermost first */
	for (i = 1; i < len; i++) {
		struct stat pst;
		char *dir;

		if (rel[i] != '/' || find_entry(r, rel, i) >= 0 || pending_has(p, rel, i))
			continue;
		dir = xstrndup(rel, i);
		if (fstatat(rootfd, dir, &pst, AT_SYMLINK_NOFOLLOW) || !S_ISDIR(pst.st_mode)) {
			free(dir);
			pending_truncate(p, start);
			return 0;
		}
		pending_add(p, dir, i, &pst);
	}
	x = pending_add(p, xstrdup(rel), len, &st);
	if (S_ISLNK(st.st_mode)) {
		size_t cap = (size_t)st.st_size + 2;
		char *t = xmalloc(cap);
		ssize_t k = readlinkat(rootfd, rel, t, cap);

		if (k < 0 || (size_t)k >= cap - 1) {
			free(t);
			pending_truncate(p, start);
			if (k < 0)
				return err_errno(e, "cannot read link %s/%s", r->root, rel);
			return err_set(e, ERR_CHANGED, "link changed while reading it: %s/%s",
				       r->root, rel);
		}
		t[k] = '\0';
		x->link = t;
		x->link_len = (size_t)k;
	}
	return 0;
}

static void fill_entry(struct walk_entry *we, const struct pending *p, char *path, char *link)
{
	const struct stat *st = &p->st;
	size_t k;

	memset(we, 0, sizeof(*we));
	we->path = path;
	we->path_len = (uint32_t)p->path_len;
	we->link = link;
	we->link_len = (uint32_t)p->link_len;
	if (S_ISDIR(st->st_mode))
		we->type = WALK_DIR;
	else if (S_ISLNK(st->st_mode))
		we->type = WALK_LNK;
	else
		we->type = WALK_REG;
	for (k = 0; k < p->path_len; k++)
		if (path[k] == '/' && we->depth < 255)
			we->depth++;
	we->deciding = -1;
	we->mode = st->st_mode;
	we->size = S_ISDIR(st->st_mode) ? 0 : (uint64_t)st->st_size;
	we->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	we->ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
	we->dev = st->st_dev;
	we->ino = st->st_ino;
	we->nlink = (uint32_t)st->st_nlink;
}

static int added_cmp(const void *a, const void *b)
{
	const struct walk_entry *x = a, *y = b;

	return walk_path_cmp(x->path, x->path_len, y->path, y->path_len);
}

int pack_list_build(struct pack_list *l, struct walk_result *r, struct err *e)
{
	struct pendings p = {NULL, 0, 0};
	const char *cand[2];
	size_t i, j, k, strsz = 0, off = 0;
	int rootfd, ret = 0;

	memset(l, 0, sizeof(*l));
	l->root = r->root;
	l->normalize_modes = (r->flags & WALK_NORMALIZE_MODES) != 0;
	cand[0] = r->dockerfile_rel;
	cand[1] = r->ignore_rel;

	rootfd = open(r->root ? r->root : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return err_errno(e, "cannot open %s", r->root ? r->root : ".");
	for (i = 0; i < 2 && !ret; i++)
		if (cand[i])
			ret = queue_path(r, rootfd, cand[i], &p, e);
	close(rootfd);
	if (ret)
		goto out;

	for (i = 0; i < p.n; i++)
		strsz += p.v[i].path_len + 1 + (p.v[i].link ? p.v[i].link_len + 1 : 0);
	l->n_added = p.n;
	l->added = p.n ? xcalloc(p.n, sizeof(*l->added)) : NULL;
	l->strings = xmalloc(strsz + 1);
	for (i = 0; i < p.n; i++) {
		char *path = l->strings + off, *link = NULL;

		memcpy(path, p.v[i].path, p.v[i].path_len + 1);
		off += p.v[i].path_len + 1;
		if (p.v[i].link) {
			link = l->strings + off;
			memcpy(link, p.v[i].link, p.v[i].link_len + 1);
			off += p.v[i].link_len + 1;
		}
		fill_entry(&l->added[i], &p.v[i], path, link);
	}
	if (p.n > 1)
		qsort(l->added, p.n, sizeof(*l->added), added_cmp);

	/* merge the two sorted sequences */
	l->n = r->n + p.n;
	l->v = xreallocarray(NULL, l->n ? l->n : 1, sizeof(*l->v));
	for (i = j = k = 0; k < l->n; k++) {
		if (j >= p.n || (i < r->n && walk_path_cmp(r->v[i].path, r->v[i].path_len,
							    l->added[j].path,
							    l->added[j].path_len) < 0))
			l->v[k] = &r->v[i++];
		else
			l->v[k] = &l->added[j++];
	}
out:
	pending_truncate(&p, 0);
	free(p.v);
	return ret;
}

void pack_list_entries(struct pack_list *l, struct walk_result *r)
{
	size_t i;

	memset(l, 0, sizeof(*l));
	l->root = r->root;
	l->n = r->n;
	l->v = xreallocarray(NULL, r->n ? r->n : 1, sizeof(*l->v));
	for (i = 0; i < r->n; i++)
		l->v[i] = &r->v[i];
}

void pack_list_release(struct pack_list *l)
{
	free(l->v);
	free(l->added);
	free(l->strings);
	memset(l, 0, sizeof(*l));
}
