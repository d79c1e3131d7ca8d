/*
 * walk.c: the walker's front (walk_run): the context checked, the
 * Dockerfile and the ignore file found and parsed, the tree walked
 * (walk_pool.c), then the hard-link pass; and the result's ownership.
 *
 * How the tree itself is walked: walk_dir.c (one directory, in archive
 * order, the ignore verdict before the stat), walk_pool.c (the parallel
 * walk: tasks and threads), walk_merge.c (the tasks' entries back in
 * archive order, the first error in walk order).
 */
#include "ctxpack/walk.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctxpack/ignore.h"
#include "walk_internal.h"

#define MAX_IGNORE_SIZE (64 * 1024 * 1024)

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
	char *df = NULL;
	int fd, ret;

	memset(r, 0, sizeof(*r));
	r->ign = ign_new();
	if (o->flags & WALK_OLD_MATCHER)
		ign_old_matcher(r->ign);
	if (o->flags & WALK_CONTAINERFILE)
		ign_buildah_lines(r->ign);
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
	 * docker's; the default is DIR/Dockerfile (buildah's: Containerfile
	 * first). */
	if (o->dockerfile) {
		df = xstrdup(o->dockerfile);
	} else if (o->flags & WALK_CONTAINERFILE) {
		df = xasprintf("%s/Containerfile", r->root);
		if (stat(df, &st)) {
			free(df);
			df = NULL;
		}
	}
	if (!df)
		df = xasprintf("%s/Dockerfile", r->root);
	r->dockerfile_rel = rel_to_root(r->root, df);

	if (o->ignore_file) {
		ret = read_ignore(r, o->ignore_file, 1, e);
	} else {
		int container = (o->flags & WALK_CONTAINERFILE) != 0;
		char *cand[4];
		size_t nc = 0, i;

		/* the candidates, first found wins */
		if (container || !(o->flags & WALK_CLASSIC))
			cand[nc++] = xasprintf("%s.dockerignore", df);
		if (container) {
			cand[nc++] = xasprintf("%s.containerignore", df);
			cand[nc++] = xasprintf("%s/.containerignore", r->root);
		}
		cand[nc++] = xasprintf("%s/.dockerignore", r->root);
		for (ret = 1, i = 0; i < nc && ret == 1; i++)
			ret = read_ignore(r, cand[i], 0, e);
		for (i = 0; i < nc; i++)
			free(cand[i]);
		if (ret == 1)
			ret = ign_parse(r->ign, "(none)", "", 0, e);
	}
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

	ret = wk_walk_tree(o, r, fd, e);
	if (!ret && !(o->flags & (WALK_NO_HARDLINKS | WALK_TYPES_ONLY)))
		mark_hardlinks(r);
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
