/*
 * The look-ahead's frame (fc_spec.c): one frame of the
 * context's last archive made again from the tree as it is now, while the
 * walk is still going on.  The stored frame says which entries it holds
 * (its tar headers); each is looked up again below the root without
 * following a symlink, the frame is encoded from the tree, and its key is
 * computed from the bytes that were encoded (the content() hook), so the
 * key says exactly what the frame holds.  Whether it is the new archive's
 * frame is decided after the walk by comparing keys: nothing here has to
 * be right about the entry list, only about what it encoded.
 *
 * Only frames that start and end at entry boundaries and hold no file
 * over PACK_SMALL_FILE (whose content the hook does not see) qualify.
 *
 * The files not changed since the stored frame was made (their ctime
 * older than its pack's start, by the racy window) are not read again:
 * their bytes come from the stored frame (pack_frame_reader), which is
 * about a fifth of the cost of opening and reading a frame's thousand
 * small files on a small tree (issue 15).  The key still comes from the
 * bytes encoded, so a stale or wrong byte could only make it differ from
 * the new archive's, and the frame is then not used.
 */
#include "fc_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctxpack/index.h"

struct mini {
	struct walk_entry *e;
	struct walk_entry **v;
	char **paths;
	size_t n;
	struct pack_frame_reader *old; /* the stored frame's files */
	int64_t made_ns;               /* its pack's start */
};

static void mini_release(struct mini *m)
{
	size_t i;

	for (i = 0; i < m->n; i++) {
		free(m->paths[i]);
		free((char *)m->e[i].link);
	}
	free(m->e);
	free(m->v);
	free(m->paths);
}

/* The walk's entry for each path, from the tree as it is now. */
static int restat(struct mini *m, int rootfd)
{
	struct buf dir;
	int dfd = -1, ret = -1;
	size_t i;

	m->e = xcalloc(m->n, sizeof(*m->e));
	m->v = xreallocarray(NULL, m->n, sizeof(*m->v));
	buf_init(&dir, 0);
	for (i = 0; i < m->n; i++) {
		struct walk_entry *we = &m->e[i];
		const char *p = m->paths[i], *slash = strrchr(p, '/'), *name = p;
		struct stat st;
		const char *q;

		m->v[i] = we;
		if (slash) {
			size_t dl = (size_t)(slash - p);

			name = slash + 1;
			if (dfd < 0 || dir.len != dl || memcmp(dir.data, p, dl)) {
				if (dfd >= 0)
					close(dfd);
				buf_reset(&dir);
				buf_add(&dir, p, dl);
				dfd = pack_open_beneath(rootfd, dir.data,
							O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (dfd < 0)
					goto out;
			}
		}
		if (fstatat(slash ? dfd : rootfd, name, &st, AT_SYMLINK_NOFOLLOW) ||
		    !walk_fill_stat(we, &st))
			goto out;
		we->path = p;
		we->path_len = (uint32_t)strlen(p);
		we->deciding = -1;
		for (q = p; (q = strchr(q, '/')); q++)
			if (we->depth < 255)
				we->depth++;
		/* a big file, or one with other links (whether this path is a
		 * hard link depends on paths outside the frame): no guess */
		if (we->type == WALK_REG && (we->size > PACK_SMALL_FILE || we->nlink > 1))
			goto out;
		if (we->type == WALK_LNK) {
			char *t = xmalloc(PATH_MAX);
			ssize_t n = readlinkat(slash ? dfd : rootfd, name, t, PATH_MAX);

			if (n < 0 || n >= PATH_MAX) {
				free(t);
				goto out;
			}
			t[n] = '\0';
			we->link = t;
			we->link_len = (uint32_t)n;
			we->size = (uint64_t)n;
			idx_entry_link(we);
		}
	}
	ret = 0;
out:
	if (dfd >= 0)
		close(dfd);
	buf_release(&dir);
	return ret;
}

/* A file unchanged since the stored frame was made: its bytes from it. */
static int data(void *ctx, size_t i, void *dst, size_t n)
{
	struct mini *m = ctx;
	const struct walk_entry *we = &m->e[i];
	int64_t win = we->ctime_ns % 1000000000 ? IDX_RACY_FINE_NS : IDX_RACY_COARSE_NS;

	if (!m->old || we->ctime_ns >= m->made_ns - win || we->mtime_ns >= m->made_ns - win)
		return 0;
	return pack_frame_reader_get(m->old, we->path, we->path_len, dst, n);
}

static void content(void *ctx, size_t i, const void *p, size_t n)
{
	struct mini *m = ctx;

	idx_entry_archived(&m->e[i], p, n);
}

int fc_ahead_frame(struct fc *c, const unsigned char old_key[FC_KEY_LEN], int64_t made_ns,
		   const char *root, int rootfd, const struct pack_opts *o,
		   const unsigned char settings[FC_KEY_LEN], struct buf *out,
		   unsigned char key[FC_KEY_LEN])
{
	struct buf z;
	struct mini m;
	struct pack_list l;
	struct pack_frame f;
	struct pack_frame_cache hooks;
	struct pack_worker *w = NULL;
	struct fc_stamp stamp;
	struct err e = ERR_INIT;
	int damaged, ret = -1;
	size_t i;

	memset(&m, 0, sizeof(m));
	buf_init(&z, 0);
	if (o->compress != PACK_ZSTD || !fc_frame_read(c, old_key, &z, &damaged, &stamp) ||
	    pack_frame_paths_small(z.data, z.len, &m.paths, &m.n) || restat(&m, rootfd))
		goto out;
	m.old = pack_frame_reader_new(z.data, z.len);
	m.made_ns = made_ns;
	memset(&l, 0, sizeof(l));
	l.v = m.v;
	l.n = m.n;
	l.root = root;
	l.normalize_modes = o->normalize_modes;
	memset(&f, 0, sizeof(f));
	f.end.i = m.n;
	memset(&hooks, 0, sizeof(hooks));
	hooks.content = content;
	hooks.data = data;
	hooks.ctx = &m;
	w = pack_worker_new(o, 1, &e); /* one worker: its buffers on huge pages */
	if (!w)
		goto out;
	pack_worker_set_cache(w, &hooks);
	buf_reset(out);
	if (pack_frame_encode(w, &l, rootfd, &f, out, NULL, &e))
		goto out;
	for (i = 0; i < m.n; i++)
		if (m.e[i].type == WALK_REG && !m.e[i].hashed)
			goto out;
	ret = fc_frame_key(&l, &f, settings, key);
out:
	pack_worker_free(w);
	pack_frame_reader_free(m.old);
	mini_release(&m);
	buf_release(&z);
	return ret;
}
