/*
 * Snapshots (issue 15): the last walk of a context, with every entry's
 * stat fields and content hash, kept as one file in the index directory,
 * so that a run on an unchanged tree is answered with one fstatat per
 * entry: no directory is read, no name sorted or matched against the
 * ignore patterns, no index record looked up, no digest computed.  Also
 * the archive digests of cache saves (idx_memo_*).  include/ctxpack/index.h
 * has the contract, docs/index.md the reasoning.
 *
 * File: <index>/snapshots/<32 hex of the key>, made under a temporary name
 * and renamed, later rewritten in place (never fsync'd: a torn or half
 * written file fails its size and checksum checks), at most SNAP_MAX of
 * them (the oldest written go first).  Layout, in host byte
 * order (a cache of this machine and this build: the key covers the
 * version and sizeof(struct walk_entry), so another build never reads it):
 *
 *   struct snap_hdr
 *   n struct walk_entry, path and link holding offsets into the strings
 *   the strings
 *
 * The header's sum is XXH3-128 over the rest; a file whose sum, key, sizes
 * or any offset is wrong is not used.
 */
#include "ctxpack/index.h"
#include "idx_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "ctxpack/ignore.h"

#define SNAP_MAGIC "ctxsnap1"
#define SNAP_DIR "snapshots"
#define MEMO_DIR "archive-digests"
#define SNAP_MAX 64          /* snapshot files kept */
#define MEMO_MAX 256         /* memo files kept */
#define PAR_MIN 2048         /* fewer entries: validate on the calling thread */
#define THREADS_MAX 4
#define IGNORE_MAX (64u << 20)
/* The walk flavours a snapshot may replay (part of its key): each walks
 * the tree the same way when the ignore file has no exception, and
 * differs only in which ignore file is read (in the key too) and in how
 * the result is used.  Not WALK_EXCLUDED, WALK_FULL or WALK_TYPES_ONLY,
 * whose results a stored walk does not hold. */
#define SNAP_FLAGS (WALK_CLASSIC | WALK_NO_HARDLINKS | WALK_NORMALIZE_MODES | WALK_FSUTIL2020 | \
		    WALK_OLD_MATCHER | WALK_CONTAINERFILE)

struct snap_hdr {
	char magic[8];
	unsigned char key[16];
	unsigned char sum[16];     /* XXH3-128 of what follows the header */
	unsigned char digest[16];  /* idx_context_hash of the entries */
	uint64_t n, strings_len;
	int64_t written_ns;        /* the start of the run that made it */
	int64_t root_mtime_ns, root_ctime_ns;
	uint64_t root_ino;
	uint64_t n_excluded_files, n_excluded_bytes, n_sockets_skipped;
};

struct idx_snap {
	char *dir;                 /* the index directory */
	int64_t t0;                /* before the walk: the racy reference */
	int usable;                /* replay was asked and the walk qualifies */
	int stat_only;             /* walks without content hashes */
	int result;                /* enum idx_snap_result */
	unsigned char key[16];
	struct walk_entry root;    /* the root's stat at replay time */
	unsigned char digest[16];  /* IDX_SNAP_HIT: the stored digest */
	uint64_t changed;          /* IDX_SNAP_PARTIAL: files found changed */
};

struct idx_snap *idx_snap_new(const char *dir)
{
	struct idx_snap *s = xcalloc(1, sizeof(*s));

	s->dir = idx_dir_for(dir);
	s->t0 = time_real_ns();
	return s;
}

void idx_snap_stat_only(struct idx_snap *s)
{
	s->stat_only = 1;
}

void idx_snap_free(struct idx_snap *s)
{
	if (!s)
		return;
	free(s->dir);
	free(s);
}

int idx_snap_result(const struct idx_snap *s)
{
	return s ? s->result : IDX_SNAP_NONE;
}

const char *idx_snap_name(int result)
{
	return result == IDX_SNAP_HIT ? "hit" : result == IDX_SNAP_PARTIAL ? "partial" : "walked";
}

int idx_snap_digest(const struct idx_snap *s, char out[IDX_DIGEST_LEN])
{
	if (!s || s->result != IDX_SNAP_HIT || s->stat_only)
		return -1;
	memcpy(out, "xxh128:", 7);
	hex_encode(out + 7, s->digest, 16);
	return 0;
}

static char *file_of(const char *dir, const char *sub, const unsigned char key[16])
{
	char hex[33];

	hex_encode(hex, key, 16);
	return xasprintf("%s/%s/%s", dir, sub, hex);
}

/* ---- the key ---- */

static void add_str(XXH3_state_t *h, const char *s)
{
	uint32_t n = s ? (uint32_t)strlen(s) + 1 : 0;

	XXH3_128bits_update(h, &n, sizeof(n));
	if (s)
		XXH3_128bits_update(h, s, n);
}

/*
 * What decides the walk besides the tree: the root, the ignore file (its
 * path and bytes), the Dockerfile's path and the walk's flavour, with this
 * build's version and entry layout, and whether the walk has content
 * hashes.  -1 when the ignore file cannot be read again.
 */
static int make_key(const struct idx_snap *s, const struct walk_result *r,
		    unsigned char key[16])
{
	XXH3_state_t *h = XXH3_createState();
	XXH128_canonical_t c;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	uint32_t v[4] = {(uint32_t)sizeof(struct walk_entry), IDX_DIGEST_VERSION,
			 r->flags & SNAP_FLAGS, (uint32_t)s->stat_only};
	int ret = 0;

	if (!h)
		return -1;
	XXH3_128bits_reset(h);
	add_str(h, "ctxpack snapshot 2 " CTXPACK_VERSION);
	XXH3_128bits_update(h, v, sizeof(v));
	add_str(h, r->root);
	add_str(h, r->dockerfile_rel);
	add_str(h, r->ignore_path);
	if (r->ignore_path) {
		if (buf_read_file(&b, r->ignore_path, IGNORE_MAX, &e))
			ret = -1;
		else
			XXH3_128bits_update(h, b.data, b.len);
	}
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(h));
	memcpy(key, c.digest, 16);
	XXH3_freeState(h);
	buf_release(&b);
	return ret;
}

/* ---- validation ---- */

/* Entries a validating thread takes at a time: the threads share the
 * entries by turns, not in fixed halves, so that one slowed down (by the
 * output's copy on the other core, by a preemption) leaves its part to the
 * others; enough entries that their directories stay mostly open. */
#define VCHUNK 256

struct vwork {
	struct walk_entry *v;       /* the stored entries, checked in place */
	size_t n;
	atomic_size_t *next;        /* the first entry no thread has taken */
	int rootfd;
	int is_root;
	const struct walk_opts *o;
	atomic_int *bad;
	uint64_t changed;
};

struct vdir {
	const char *path;           /* its path: the first len bytes */
	size_t len;
	int fd;
};

/* Whether a fresh stat of an entry says the stored one still holds. */
static int same_stat(const struct walk_entry *old, const struct walk_entry *now)
{
	/* a hard link of the walk is a regular file to stat; its group can
	 * only change with a link or an unlink, which moves a directory's
	 * mtime, so the walk is made again then */
	return (old->type == now->type ||
		(old->type == WALK_HARDLINK && now->type == WALK_REG)) && old->mode == now->mode &&
	       old->mtime_ns == now->mtime_ns && old->ctime_ns == now->ctime_ns &&
	       old->ino == now->ino && old->nlink == now->nlink &&
	       old->rdev == now->rdev && old->size == now->size;
}

static void *validate(void *arg)
{
	struct vwork *w = arg;
	struct vdir *st = xmalloc(64 * sizeof(*st));
	size_t nst = 1, ast = 64, i = 0, last = 0;
	char name[NAME_MAX + 1];

	st[0].path = "";
	st[0].len = 0;
	st[0].fd = w->rootfd;
	for (;; i++) {
		struct walk_entry *we, now;
		const char *p, *slash;
		size_t plen, nlen;
		struct stat sb;

		if (i == last) {
			if (atomic_load_explicit(w->bad, memory_order_relaxed))
				break;
			i = atomic_fetch_add_explicit(w->next, VCHUNK, memory_order_relaxed);
			if (i >= w->n)
				break;
			last = w->n - i < VCHUNK ? w->n : i + VCHUNK;
		}
		we = &w->v[i];
		p = we->path;
		slash = memrchr(p, '/', we->path_len);
		plen = slash ? (size_t)(slash - p) : 0;
		/* the open directories are the parent's ancestors, the root first */
		while (nst > 1 && !(st[nst - 1].len <= plen &&
				    (st[nst - 1].len == plen || p[st[nst - 1].len] == '/') &&
				    !memcmp(st[nst - 1].path, p, st[nst - 1].len)))
			close(st[--nst].fd);
		while (st[nst - 1].len < plen) {
			size_t b = st[nst - 1].len ? st[nst - 1].len + 1 : 0;
			const char *end = memchr(p + b, '/', plen - b);
			size_t e = end ? (size_t)(end - p) : plen;
			int fd;

			if (e - b > NAME_MAX)
				goto bad;
			memcpy(name, p + b, e - b);
			name[e - b] = '\0';
			fd = openat(st[nst - 1].fd, name,
				    O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0)
				goto bad;
			if (nst == ast)
				st = xreallocarray(st, ast *= 2, sizeof(*st));
			st[nst].path = p;
			st[nst].len = e;
			st[nst++].fd = fd;
		}
		nlen = we->path_len - (slash ? plen + 1 : 0);
		if (nlen > NAME_MAX)
			goto bad;
		memcpy(name, slash ? slash + 1 : p, nlen);
		name[nlen] = '\0';
		if (fstatat(st[nst - 1].fd, name, &sb, AT_SYMLINK_NOFOLLOW))
			goto bad;
		memset(&now, 0, sizeof(now));
		walk_fill_stat(&now, &sb);
		if (now.type == WALK_LNK)
			now.size = (uint64_t)sb.st_size; /* the target's length */
		if (!same_stat(we, &now)) {
			/* a file rewritten in place (its directory did not
			 * change, or that fails too): read it again */
			if (we->type != WALK_REG || now.type != WALK_REG)
				goto bad;
			we->size = now.size;
			we->mtime_ns = now.mtime_ns;
			we->ctime_ns = now.ctime_ns;
			we->ino = now.ino;
			we->mode = now.mode;
			we->nlink = now.nlink;
			we->hashed = WALK_HASH_NONE;
			memset(we->hash, 0, sizeof(we->hash));
			w->changed++;
		}
		we->dev = now.dev;
		/* as the walk: an included file must be readable */
		if (we->type == WALK_REG && !w->is_root && (we->mode & 0444) != 0444 &&
		    faccessat(st[nst - 1].fd, name, R_OK, AT_EACCESS))
			goto bad;
		if (w->o->seen && we->type != WALK_DIR)
			w->o->seen(w->o->seen_ctx, we);
	}
	goto out;
bad:
	atomic_store(w->bad, 1);
out:
	while (nst > 1)
		close(st[--nst].fd);
	free(st);
	return NULL;
}

/*
 * A path as the walk makes them: relative, '/'-separated, no empty, "." or
 * ".." component, and after prev (if any) in archive order.  A snapshot is
 * a cache file anyone with write access to the index could have made:
 * its entries become archive entries, so they must be ones a walk could
 * give.
 */
static int path_ok(const char *p, size_t n, const struct walk_entry *prev)
{
	size_t i = 0;

	while (i < n) {
		const char *c = p + i, *slash = memchr(c, '/', n - i);
		size_t len = slash ? (size_t)(slash - c) : n - i;

		if (!len || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.') ||
		    (slash && (size_t)(slash - p) + 1 == n))
			return 0;
		i += len + 1;
	}
	return !prev || walk_path_cmp(prev->path, prev->path_len, p, n) < 0;
}

/* Read and check the snapshot of key; 0 with r->v, r->n and the strings
 * filled, else -1 (nothing kept). */
static int load(struct idx_snap *s, struct walk_result *r, struct snap_hdr *h)
{
	char *path = file_of(s->dir, SNAP_DIR, s->key);
	XXH3_state_t *xs = NULL;
	XXH128_canonical_t c;
	struct stat sb;
	char *strings = NULL;
	struct walk_entry *v = NULL;
	size_t i, vbytes;
	int fd, ret = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	free(path);
	if (fd < 0)
		return -1;
	if (fstat(fd, &sb) || read_full(fd, h, sizeof(*h)) != (ssize_t)sizeof(*h) ||
	    memcmp(h->magic, SNAP_MAGIC, 8) || memcmp(h->key, s->key, 16) ||
	    h->n > (uint64_t)sb.st_size / sizeof(struct walk_entry) ||
	    h->strings_len > (uint64_t)sb.st_size ||
	    (uint64_t)sb.st_size != sizeof(*h) + h->n * sizeof(struct walk_entry) +
					 h->strings_len)
		goto out;
	/* the entries and their strings in one buffer, read at once: from
	 * 512 KiB it is on huge pages, where 4 KiB pages cost the read a
	 * fault each and the first look at each page after it about half as
	 * much again on these VMs (4,295 entries, 797 KB: 3.1 ms -> 0.3 ms
	 * to read and sum).  The strings are the buffer's tail, freed with
	 * r->v (which nothing grows once a walk is made) */
	vbytes = (size_t)h->n * sizeof(struct walk_entry);
	v = xmalloc_big(vbytes + (size_t)h->strings_len + 1);
	strings = (char *)v + vbytes;
	if (read_full(fd, v, vbytes + (size_t)h->strings_len) !=
	    (ssize_t)(vbytes + h->strings_len))
		goto out;
	strings[h->strings_len] = '\0';
	xs = XXH3_createState();
	if (!xs)
		goto out;
	XXH3_128bits_reset(xs);
	XXH3_128bits_update(xs, v, vbytes);
	XXH3_128bits_update(xs, strings, (size_t)h->strings_len);
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(xs));
	if (memcmp(c.digest, h->sum, 16))
		goto out;
	for (i = 0; i < h->n; i++) {
		struct walk_entry *we = &v[i];
		uintptr_t po = (uintptr_t)we->path, lo = (uintptr_t)we->link;

		if (po >= h->strings_len || we->path_len >= h->strings_len - po ||
		    !we->path_len || strings[po + we->path_len] ||
		    (we->link && (lo >= h->strings_len || we->link_len >= h->strings_len - lo ||
				  strings[lo + we->link_len])))
			goto out;
		we->path = strings + po;
		we->link = we->link ? strings + lo : NULL;
		if (!path_ok(we->path, we->path_len, i ? &v[i - 1] : NULL) ||
		    we->type < WALK_REG || we->type > WALK_BLK || (we->type == WALK_LNK) != !!we->link)
			goto out;
		we->excluded = 0;
		we->hashed = (we->type == WALK_REG || we->type == WALK_LNK) && !s->stat_only ?
			     WALK_HASH_KNOWN : WALK_HASH_NONE;
	}
	r->v = v;
	r->n = r->alloc = (size_t)h->n;
	v = NULL;
	ret = 0;
out:
	if (xs)
		XXH3_freeState(xs);
	free(v);
	close(fd);
	return ret;
}

static unsigned pick_threads(size_t n)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned t;

	if (n < PAR_MIN || cpus < 2)
		return 1;
	t = cpus < THREADS_MAX ? (unsigned)cpus : THREADS_MAX;
	return n / t < PAR_MIN / 2 ? 2 : t;
}

int idx_snap_replay(void *ctx, const struct walk_opts *o, struct walk_result *r, int rootfd)
{
	struct idx_snap *s = ctx;
	struct snap_hdr h;
	struct stat sb;
	struct vwork w[THREADS_MAX];
	pthread_t tid[THREADS_MAX];
	atomic_int bad = 0;
	unsigned nt, i, started = 1;
	atomic_size_t next = 0;

	s->result = IDX_SNAP_NONE;
	s->usable = 0;
	/* a walk as hash and pack make it, whose pruned directories stay
	 * pruned whatever appears below them (no exception can re-include) */
	if ((o->flags & ~SNAP_FLAGS) || ign_has_exceptions(r->ign) || fstat(rootfd, &sb))
		return 0;
	memset(&s->root, 0, sizeof(s->root));
	walk_fill_stat(&s->root, &sb);
	if (make_key(s, r, s->key))
		return 0;
	s->usable = 1;
	if (load(s, r, &h))
		return 0;
	if (h.root_mtime_ns != s->root.mtime_ns || h.root_ctime_ns != s->root.ctime_ns ||
	    h.root_ino != s->root.ino)
		goto miss;

	nt = pick_threads(r->n);
	for (i = 0; i < nt; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].v = r->v;
		w[i].n = r->n;
		w[i].next = &next;
		w[i].rootfd = rootfd;
		w[i].is_root = geteuid() == 0;
		w[i].o = o;
		w[i].bad = &bad;
	}
	for (i = 1; i < nt; i++)
		if (pthread_create(&tid[i], NULL, validate, &w[i]))
			break;
	started = i;
	validate(&w[0]);
	for (i = started; i < nt; i++) /* threads that could not start */
		validate(&w[i]);
	for (i = 1; i < started; i++)
		pthread_join(tid[i], NULL);
	if (atomic_load(&bad))
		goto miss;
	for (i = 0; i < nt; i++)
		s->changed += w[i].changed;
	r->n_excluded_files = h.n_excluded_files;
	r->n_excluded_bytes = h.n_excluded_bytes;
	r->n_sockets_skipped = h.n_sockets_skipped;
	r->replayed = 1;
	s->result = s->changed ? IDX_SNAP_PARTIAL : IDX_SNAP_HIT;
	memcpy(s->digest, h.digest, 16);
	return 1;
miss:
	free(r->v);
	r->v = NULL;
	r->n = r->alloc = 0;
	return 0;
}

void idx_snap_counts(const struct walk_result *w, struct idx_stats *st)
{
	size_t i;

	memset(st, 0, sizeof(*st));
	for (i = 0; i < w->n; i++) {
		const struct walk_entry *we = &w->v[i];

		if (we->excluded)
			continue;
		st->entries++;
		st->files += we->type == WALK_REG;
		st->symlinks += we->type == WALK_LNK;
	}
	st->reused = st->files;
}

/* ---- writing ---- */

/* Keep at most max files in dir: the oldest written go. */
static void trim_dir(const char *dir, size_t max)
{
	char **names = NULL;
	size_t n = 0, i;
	struct err e = ERR_INIT;

	if (dir_names(dir, 1, &names, &n, &e) || n <= max) {
		dir_names_free(names, n);
		return;
	}
	{
		struct old {
			int64_t t;
			size_t i;
		} *o = xreallocarray(NULL, n, sizeof(*o));
		size_t j, k;

		for (i = 0; i < n; i++) {
			char *p = xasprintf("%s/%s", dir, names[i]);
			struct stat sb;

			o[i].i = i;
			o[i].t = stat(p, &sb) ? 0 :
				 (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
			free(p);
		}
		/* remove the n - max oldest: a partial selection is enough */
		for (k = 0; k < n - max; k++) {
			size_t m = k;
			struct old t;

			for (j = k + 1; j < n; j++)
				if (o[j].t < o[m].t)
					m = j;
			t = o[k];
			o[k] = o[m];
			o[m] = t;
			{
				char *p = xasprintf("%s/%s", dir, names[o[k].i]);

				unlink(p);
				free(p);
			}
		}
		free(o);
	}
	dir_names_free(names, n);
}

/*
 * Rewrite the file at path in place, if it is there: 1 when done, 0 when
 * it is not there (or not a regular file), -1 when the write failed (the
 * file is then removed).  A snapshot's new version goes over the old one's
 * pages instead of into a new file renamed over it: replacing the 8k
 * tree's 1.1 MB snapshot took 3.2-3.5 ms here (fresh pages for the new
 * file, the old one's freed by the rename), rewriting it 1.8-1.9 ms.  A
 * reader that meets it half written, or a file torn by a crash or by two
 * writers at once, fails the size and checksum checks of load() and walks
 * instead.
 */
static int rewrite_file(const char *path, const void *h, size_t hn, const void *a, size_t an,
			const void *b, size_t bn)
{
	int fd = open(path, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	struct stat st;
	int ret = -1;

	if (fd < 0)
		return 0;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return 0;
	}
	if (!pwrite_all(fd, h, hn, 0) && (!an || !pwrite_all(fd, a, an, (off_t)hn)) &&
	    (!bn || !pwrite_all(fd, b, bn, (off_t)(hn + an))) &&
	    !ftruncate(fd, (off_t)(hn + an + bn)))
		ret = 1;
	if (close(fd))
		ret = -1;
	if (ret < 0)
		unlink(path);
	return ret;
}

/* Write h, a and b to dir/sub/<key>: in place when in_place and the file
 * is there, else to a new file renamed over it; best effort. */
static void put_file(const char *dir, const char *sub, const unsigned char key[16],
		     const void *h, size_t hn, const void *a, size_t an, const void *b,
		     size_t bn, size_t max, int in_place)
{
	char *d = xasprintf("%s/%s", dir, sub), *path = file_of(dir, sub, key);
	struct atomic_file af = {-1, 1, NULL, NULL};
	struct err e = ERR_INIT;

	if (in_place && rewrite_file(path, h, hn, a, an, b, bn))
		goto out;
	if (mkdir_p(d, 0755, &e) || atomic_open(&af, path, 0644, &e))
		goto out;
	af.nosync = 1; /* a cache: a torn file fails its checksum */
	if (write_all(af.fd, h, hn) || (an && write_all(af.fd, a, an)) ||
	    (bn && write_all(af.fd, b, bn))) {
		atomic_abort(&af);
		goto out;
	}
	if (atomic_commit(&af, &e))
		goto out;
	trim_dir(d, max);
out:
	free(d);
	free(path);
}

static int racy(int64_t t, int64_t t0)
{
	struct idx_rec rec;

	memset(&rec, 0, sizeof(rec));
	rec.mtime_ns = rec.ctime_ns = t;
	rec.written_ns = t0;
	return idx_rec_racy(&rec);
}

void idx_snap_store(struct idx_snap *s, const struct walk_result *w)
{
	struct snap_hdr h;
	struct walk_entry *v = NULL;
	struct buf strings = BUF_INIT;
	XXH3_state_t *xs = NULL;
	XXH128_canonical_t c;
	size_t i;

	if (!s || !s->usable || (w->replayed && s->result == IDX_SNAP_HIT) || !w->root)
		return;
	if (racy(s->root.mtime_ns, s->t0) || racy(s->root.ctime_ns, s->t0))
		return;
	for (i = 0; i < w->n; i++) {
		const struct walk_entry *we = &w->v[i];

		if (we->excluded || racy(we->mtime_ns, s->t0) || racy(we->ctime_ns, s->t0) ||
		    ((we->type == WALK_REG || we->type == WALK_LNK) && !we->hashed &&
		     !s->stat_only))
			return;
	}
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, SNAP_MAGIC, 8);
	memcpy(h.key, s->key, 16);
	if (!s->stat_only)
		idx_context_hash(w, h.digest);
	h.n = w->n;
	h.written_ns = s->t0;
	h.root_mtime_ns = s->root.mtime_ns;
	h.root_ctime_ns = s->root.ctime_ns;
	h.root_ino = s->root.ino;
	h.n_excluded_files = w->n_excluded_files;
	h.n_excluded_bytes = w->n_excluded_bytes;
	h.n_sockets_skipped = w->n_sockets_skipped;
	v = xmallocarray_big(w->n ? w->n : 1, sizeof(*v));
	for (i = 0; i < w->n; i++) {
		v[i] = w->v[i];
		v[i].path = (const char *)(uintptr_t)strings.len;
		/* NUL-terminated, as the walk's strings are */
		buf_add(&strings, w->v[i].path, w->v[i].path_len + 1u);
		if (w->v[i].link) {
			v[i].link = (const char *)(uintptr_t)strings.len;
			buf_add(&strings, w->v[i].link, w->v[i].link_len + 1u);
		}
		v[i].hashed = WALK_HASH_NONE;
		v[i].dev = 0;
	}
	h.strings_len = strings.len;
	xs = XXH3_createState();
	if (xs) {
		XXH3_128bits_reset(xs);
		XXH3_128bits_update(xs, v, w->n * sizeof(*v));
		XXH3_128bits_update(xs, strings.data, strings.len);
		XXH128_canonicalFromHash(&c, XXH3_128bits_digest(xs));
		memcpy(h.sum, c.digest, 16);
		XXH3_freeState(xs);
		put_file(s->dir, SNAP_DIR, s->key, &h, sizeof(h), v, w->n * sizeof(*v),
			 strings.data, strings.len, SNAP_MAX, 1);
	}
	free(v);
	buf_release(&strings);
}

/* ---- archive digests ---- */

struct memo_file {
	char magic[8];
	unsigned char key[16];
	struct idx_memo m;
	unsigned char sum[16];
};

static void memo_sum(const struct memo_file *f, unsigned char out[16])
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, XXH3_128bits(f, offsetof(struct memo_file, sum)));
	memcpy(out, c.digest, 16);
}

int idx_memo_get(const char *dir, const unsigned char key[16], struct idx_memo *m)
{
	char *d = idx_dir_for(dir), *path = file_of(d, MEMO_DIR, key);
	struct memo_file f;
	unsigned char sum[16];
	int fd, ret = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0) {
		if (read_full(fd, &f, sizeof(f)) == (ssize_t)sizeof(f) &&
		    !memcmp(f.magic, "ctxmemo1", 8) && !memcmp(f.key, key, 16)) {
			memo_sum(&f, sum);
			if (!memcmp(sum, f.sum, 16) && memchr(f.m.digest, '\0', sizeof(f.m.digest))) {
				*m = f.m;
				ret = 0;
			}
		}
		close(fd);
	}
	free(path);
	free(d);
	return ret;
}

void idx_memo_put(const char *dir, const unsigned char key[16], const struct idx_memo *m)
{
	char *d = idx_dir_for(dir);
	struct memo_file f;

	memset(&f, 0, sizeof(f));
	memcpy(f.magic, "ctxmemo1", 8);
	memcpy(f.key, key, 16);
	f.m = *m;
	memo_sum(&f, f.sum);
	put_file(d, MEMO_DIR, key, &f, sizeof(f), NULL, 0, NULL, 0, MEMO_MAX, 0);
	free(d);
}
