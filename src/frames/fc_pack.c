/*
 * The pack side of the frame store: the copy of the context's last
 * archive made while the context is walked (fc_spec), whole-archive reuse
 * from a manifest (serve), the re-pack after a small change (assemble),
 * and the pack_frame_cache hooks pack_write calls from its workers for
 * everything else.  frames.h describes the paths and their order.
 *
 * The frames are planned here too (pack_plan is a pure function of the
 * list, so this plan is the one pack_write makes) and every frame's key is
 * computed once, up front; the hooks find their frame by its start
 * position.  A frame is "present" once it was copied from the store or
 * stored; the manifest is written only when all of them are, so a served
 * manifest never names a frame that was never stored.
 *
 * The sha256 of the archive is computed here (util's sha256, whose state
 * can be saved), not by pack_write, so that the hash state at every frame
 * boundary can be kept in the manifest: after an edit in frame j, the
 * frames before j are the same bytes at the same offsets as in the
 * context's last archive, so they are copied without being read and the
 * sha256 resumes at frame j.
 *
 * Output goes through the caller's sink, except that stored frames may be
 * copied straight to out_fd (copy_out: read and write, no sink) when the
 * caller says the sink writes there with nothing buffered; both advance
 * the same file offset, so the order holds.
 */
#include "fc_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctxpack/index.h"

/* At most this many frames are compressed up front by assemble();
 * more, and pack_write's pipeline does the work with bounded memory. */
#define ASSEMBLE_MAX 2

struct run {
	struct fc *c;
	const struct pack_list *l;
	const struct pack_opts *o;
	int rootfd;
	unsigned char settings[FC_KEY_LEN];
	struct pack_frame *plan;
	size_t nplan;
	unsigned char (*keys)[FC_KEY_LEN];
	unsigned char *keyed;      /* keys[k] is valid */
	unsigned char *present;    /* frame k is in the store (set by one worker) */
	uint64_t *lens;            /* its payload length, once present */
	struct fc_stamp *stamps;   /* its file's stamp, once present */
	unsigned char (*mids)[FC_SHA_MID]; /* the sha256 state at its start */
	int have_mids;             /* mids[] is complete */
	struct fc_stats *st;       /* counters, updated atomically */
};

static void inc(uint64_t *p, uint64_t n)
{
	__atomic_fetch_add(p, n, __ATOMIC_RELAXED);
}

static int pos_cmp(const struct pack_pos *a, const struct pack_pos *b)
{
	if (a->i != b->i)
		return a->i < b->i ? -1 : 1;
	if (a->off != b->off)
		return a->off < b->off ? -1 : 1;
	return 0;
}

/* The index of f in the plan, or -1 (a plan that differs: no caching). */
static ssize_t find(const struct run *r, const struct pack_frame *f)
{
	size_t lo = 0, hi = r->nplan;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = pos_cmp(&r->plan[mid].first, &f->first);

		if (c == 0) {
			/* frames start at distinct positions, but for the
			 * end-of-archive frame of an empty list and a last
			 * frame that ends where the list does */
			while (mid + 1 < r->nplan && !pos_cmp(&r->plan[mid + 1].first, &f->first) &&
			       pos_cmp(&r->plan[mid].end, &f->end))
				mid++;
			return pos_cmp(&r->plan[mid].end, &f->end) ? -1 : (ssize_t)mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/*
 * May frame f's freshly encoded bytes be stored under its key?  Only when
 * every regular file in it still has the stat its content hash was taken
 * with and its ctime is older than the racy window before fc_open: any
 * write after that moment moves ctime past the stored value, so the bytes
 * the packer read are the bytes that were hashed.
 */
static int frame_safe(const struct run *r, const struct pack_frame *f)
{
	const struct pack_list *l = r->l;
	size_t i, last = f->end.off ? f->end.i + 1 : f->end.i;

	for (i = f->first.i; i < last && i < l->n; i++) {
		const struct walk_entry *we = l->v[i];
		int64_t win;
		struct stat st;

		/* hashed from the bytes this frame holds: they agree */
		if (we->type != WALK_REG || we->hashed == WALK_HASH_ARCHIVED)
			continue;
		win = we->ctime_ns % 1000000000 ? IDX_RACY_FINE_NS : IDX_RACY_COARSE_NS;
		if (we->ctime_ns >= r->c->t0_ns - win)
			return 0;
		if (fstatat(r->rootfd, we->path, &st, AT_SYMLINK_NOFOLLOW) ||
		    !S_ISREG(st.st_mode) || (uint64_t)st.st_size != we->size ||
		    (uint64_t)st.st_ino != we->ino ||
		    (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec != we->mtime_ns ||
		    (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec != we->ctime_ns)
			return 0;
	}
	return 1;
}

/* Offer frame k's fresh bytes to the store.  A frame whose files were
 * hashed while it was encoded (content()) gets its key now. */
static void store(struct run *r, size_t k, const void *p, size_t n)
{
	struct err e = ERR_INIT;

	if (!r->keyed[k]) {
		if (fc_frame_key(r->l, &r->plan[k], r->settings, r->keys[k]))
			return;
		r->keyed[k] = 1;
	}
	if (!frame_safe(r, &r->plan[k])) {
		inc(&r->st->frames_unsafe, 1);
		return;
	}
	if (fc_frame_store(r->c, r->keys[k], p, n, &r->stamps[k], &e)) {
		fc_warn(r->c, "cannot store a frame in the pack cache: %s", e.msg);
		return;
	}
	r->lens[k] = n;
	r->present[k] = 1;
	inc(&r->st->frames_stored, 1);
}

static int hook_get(void *ctx, const struct pack_list *l, const struct pack_frame *f,
		    const struct pack_opts *o, struct buf *out)
{
	struct run *r = ctx;
	ssize_t k = find(r, f);
	size_t at = out->len;
	int damaged = 0;

	if (k < 0 || !r->keyed[k]) {
		inc(&r->st->frames_compressed, 1);
		return 0;
	}
	if (fc_frame_read(r->c, r->keys[k], out, &damaged, &r->stamps[k])) {
		r->lens[k] = out->len - at;
		r->present[k] = 1;
		inc(&r->st->frames_reused, 1);
		inc(&r->st->bytes_reused, out->len - at);
		return 1;
	}
	if (damaged)
		inc(&r->st->frames_damaged, 1);
	inc(&r->st->frames_compressed, 1);
	return 0;
}

static void hook_put(void *ctx, const struct pack_list *l, const struct pack_frame *f,
		     const struct pack_opts *o, const void *p, size_t n)
{
	struct run *r = ctx;
	ssize_t k = find(r, f);

	if (k >= 0)
		store(r, (size_t)k, p, n);
}

/* A small file's bytes as the packer read them: its content hash, for a
 * file the index left to the packer (idx_set_defer). */
static void hook_content(void *ctx, size_t i, const void *p, size_t n)
{
	struct run *r = ctx;
	struct walk_entry *we = r->l->v[i];

	idx_entry_archived(we, p, n);
}

/* The content hash of the entries pack_list added (the walk excluded them,
 * so the index did not see them).  One that cannot be read stays without:
 * its frame is then not cached, and the pack itself reports the file. */
static void hash_added(struct pack_list *l, int rootfd)
{
	size_t bufsz = 256 << 10, i;
	char *b = NULL;

	for (i = 0; i < l->n_added; i++) {
		struct walk_entry *we = &l->added[i];
		struct err e = ERR_INIT;
		uint64_t nread;

		if (we->hashed)
			continue;
		if (we->type == WALK_LNK || we->type == WALK_HARDLINK) {
			idx_entry_link(we);
		} else if (we->type == WALK_REG) {
			if (!b)
				b = xmalloc(bufsz);
			(void)idx_hash_file(rootfd, we, b, bufsz, &nread, &e); /* or stays without */
		}
	}
	free(b);
}

/*
 * Stored frames go to the output through one buffer, read and written in
 * COPY_BUF pieces.  On ext4 that is faster than copy_file_range, which
 * writes page by page through a pipe (850 MB of frames: 0.19 s against
 * 0.30 s), and it works for a pipe as well as a file.  copy_out returns
 * the bytes copied; fewer than n on a read or write error (the copier is
 * then off), and the caller sends the rest through the sink, which reports
 * the error properly.
 */
#define COPY_BUF ((size_t)2 << 20)

struct copier {
	char *buf;
	int off;                /* no copying: no output fd, or it failed */
};

static void copier_init(struct copier *cp, int out_fd)
{
	cp->buf = NULL;
	cp->off = out_fd < 0;
}

static void copier_release(struct copier *cp)
{
	free(cp->buf);
	cp->buf = NULL;
}

/* n bytes of fd from off to out, at its position (at < 0) or at offset
 * at, and through sha when not NULL. */
static uint64_t copy_range(int fd, uint64_t off, uint64_t n, int out, off_t at,
			   struct sha256 *sha, struct copier *cp)
{
	uint64_t done = 0;

	if (cp->off)
		return 0;
	if (!cp->buf)
		cp->buf = xmalloc(COPY_BUF);
	while (done < n) {
		size_t want = n - done < COPY_BUF ? (size_t)(n - done) : COPY_BUF;
		ssize_t k = pread(fd, cp->buf, want, (off_t)(off + done));

		if (k < 0 && errno == EINTR)
			continue;
		if (k > 0 && sha)
			sha256_update(sha, cp->buf, (size_t)k);
		if (k <= 0 || (at < 0 ? write_all(out, cp->buf, (size_t)k) :
				pwrite_all(out, cp->buf, (size_t)k, at + (off_t)done))) {
			cp->off = 1;
			break;
		}
		done += (uint64_t)k;
	}
	return done;
}

static uint64_t copy_out(int fd, uint64_t off, uint64_t n, int out, struct copier *cp)
{
	return copy_range(fd, off, n, out, -1, NULL, cp);
}

/*
 * One stored frame for output: when its file still has the stamp it had
 * when its bytes were checked (it was not written since), trust it and
 * copy it straight to out_fd (unless need_bytes) or read it into b;
 * otherwise read it into b and check it, refreshing *stamp.  Returns 1
 * with *copied bytes already at out_fd and the rest in b, or 0 (missing
 * or damaged; a damaged file is removed and *damaged set).
 */
static int frame_bytes(struct fc *c, const unsigned char key[FC_KEY_LEN], uint64_t n,
		       struct fc_stamp *stamp, int need_bytes, int out_fd, struct copier *cp,
		       struct buf *b, uint64_t *copied, int *damaged)
{
	char *path = fc_frame_path(c, key);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	unsigned char sum[16];
	struct fc_stamp now;
	struct stat sb;
	uint64_t len;

	free(path);
	*copied = 0;
	*damaged = 0;
	buf_reset(b);
	if (fd >= 0 && !fstat(fd, &sb) && S_ISREG(sb.st_mode) &&
	    (uint64_t)sb.st_size == FC_FRAME_HDR + n) {
		fc_stamp_of(&sb, &now);
		if (now.ino == stamp->ino && now.mtime_ns == stamp->mtime_ns) {
			fc_touch(fd);
			if (!need_bytes)
				*copied = copy_out(fd, FC_FRAME_HDR, n, out_fd, cp);
			if (*copied < n && (buf_grow(b, (size_t)(n - *copied)) ||
					    pread(fd, b->data, (size_t)(n - *copied),
						  (off_t)(FC_FRAME_HDR + *copied)) !=
					    (ssize_t)(n - *copied))) {
				close(fd);
				return 0;
			}
			close(fd);
			buf_setlen(b, (size_t)(n - *copied));
			return 1;
		}
	}
	if (fd >= 0)
		close(fd);
	/* written since it was checked (or by another process): check it */
	fd = fc_frame_open(c, key, n, sum, &len, damaged, &now);
	if (fd < 0)
		return 0;
	if (buf_grow(b, (size_t)n) || read_full(fd, b->data, (size_t)n) != (ssize_t)n ||
	    !fc_payload_ok(b->data, (size_t)n, sum)) {
		close(fd);
		fc_frame_drop(c, key);
		*damaged = 1;
		return 0;
	}
	close(fd);
	buf_setlen(b, (size_t)n);
	*stamp = now;
	return 1;
}

/*
 * 1. Send frames [*sent, n) of m (the archive asked for; the ones before
 * are already out) to the sink, or straight to out_fd when >= 0 (the fd
 * the sink writes to).  Returns 1 when all were sent, 0 when one is
 * missing or damaged, or the sink's error; *sent is then the number of
 * frames out.  Presence and sizes are checked before anything is sent,
 * so the usual misses (evicted, truncated) send nothing.  *refreshed is
 * set when a frame's stamp changed in m.
 */
static int serve(struct fc *c, struct fc_manifest *m, pack_sink_fn sink, void *sink_ctx,
		 int out_fd, size_t *sent, int *refreshed, struct fc_stats *st, struct err *e)
{
	struct buf b;
	struct copier cp;
	uint64_t k;
	int ret = 1;

	for (k = *sent; k < m->nframes; k++) {
		char *path = fc_frame_path(c, m->fkeys[k]);
		struct stat sb;
		int ok = !stat(path, &sb) && S_ISREG(sb.st_mode) &&
			 (uint64_t)sb.st_size == FC_FRAME_HDR + m->lens[k];

		free(path);
		if (!ok)
			return 0;
	}
	buf_init(&b, 0);
	copier_init(&cp, out_fd);
	for (k = *sent; k < m->nframes; k++) {
		struct fc_stamp was = m->stamps[k];
		uint64_t copied;
		int damaged;

		if (!frame_bytes(c, m->fkeys[k], m->lens[k], &m->stamps[k], 0, out_fd, &cp,
				 &b, &copied, &damaged)) {
			st->frames_damaged += damaged;
			ret = 0;
			break;
		}
		if (memcmp(&was, &m->stamps[k], sizeof(was)))
			*refreshed = 1;
		if (b.len && sink(sink_ctx, b.data, b.len, e)) {
			ret = e->code;
			break;
		}
		*sent = k + 1;
	}
	copier_release(&cp);
	buf_release(&b);
	return ret;
}

/* ---- speculation ---- */

/*
 * The look-ahead, on the copy's thread: once the walk reports an entry
 * changed since the last archive was made (a ctime after its made_ns),
 * the frame of the last archive that holds it is made again from the
 * tree (fc_ahead_frame), and the frames after it are read from the store,
 * hashed and written at their new offsets, all while the walk goes on:
 * after a small edit, the sha256 of the rest of the archive is what
 * costs, and it no longer waits for the walk.  pack_cached takes the
 * result only when the new archive's keys say it is this frame and the
 * last archive's frames after it; otherwise the output is cut back to
 * the frames copied before it and the usual paths go on from there.
 */
struct ahead {
	int state;               /* 0 none, 1 complete, -1 given up */
	size_t j;                /* the frame made again */
	unsigned char key[FC_KEY_LEN];
	struct buf frame;        /* its bytes */
	unsigned char (*mids)[FC_SHA_MID]; /* the sha256 state at frames j.. */
	uint64_t bytes;          /* the archive's size */
	char digest[72];
};

/* What the thread is told (fc_spec.quit). */
#define SPEC_WALKED 1    /* no more changes will be seen */
#define SPEC_NO_AHEAD 2  /* copy up to the limit, no look-ahead (or stop it) */
#define SPEC_STOP 3      /* stop now */

struct fc_spec {
	struct fc *c;
	int fd;
	off_t start;             /* where out_fd was */
	unsigned char akey[FC_KEY_LEN];
	struct fc_manifest m;    /* the archive being copied */
	pthread_t tid;
	size_t limit;            /* copy no frame from this one on (under mu) */
	size_t done;             /* frames copied whole (the thread's until joined) */
	off_t extent;            /* the end of what was written (the thread's) */
	int joined;

	struct pack_opts o;
	unsigned char settings[FC_KEY_LEN];
	char *root;
	int rootfd;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char *hint;              /* the first changed path seen (under mu) */
	unsigned nhints;         /* changed paths seen (under mu) */
	int quit;                /* under mu: SPEC_* */
	size_t aj;               /* the frame being made again (under mu), or SIZE_MAX */
	struct ahead a;          /* the thread's until joined */
};

void fc_spec_seen(void *ctx, const struct walk_entry *we)
{
	struct fc_spec *s = ctx;
	/* coarse clocks: a change just before made_ns may carry an older stamp */
	int64_t win = we->ctime_ns % 1000000000 ? 20000000 : 1000000000;

	if (we->ctime_ns < s->m.made_ns - win)
		return;
	pthread_mutex_lock(&s->mu);
	if (!s->nhints++ || walk_path_cmp(we->path, we->path_len, s->hint, strlen(s->hint)) < 0) {
		free(s->hint);
		s->hint = xmalloc(we->path_len + 1u);
		memcpy(s->hint, we->path, we->path_len);
		s->hint[we->path_len] = '\0';
	}
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* The last archive's frame that holds path, or SIZE_MAX. */
static size_t frame_of(const struct fc_manifest *m, const char *path)
{
	size_t lo = 0, hi = m->nframes, n = strlen(path);

	if (!m->names)
		return SIZE_MAX;
	/* the last frame whose first entry is <= path */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->nfl[mid] & (FC_FIRST_EOA | FC_FIRST_NONE) ||
		    walk_path_cmp(m->names + m->noff[mid], m->nlen[mid], path, n) > 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo ? lo - 1 : SIZE_MAX;
}

/* 1 when the look-ahead should stop: told so, or another change seen. */
static int ahead_stop(struct fc_spec *s, unsigned nhints)
{
	int stop;

	pthread_mutex_lock(&s->mu);
	stop = s->quit >= SPEC_NO_AHEAD || s->nhints != nhints;
	pthread_mutex_unlock(&s->mu);
	return stop;
}

/* Frame k of the last archive to the output, at its position (at < 0) or
 * at offset at, and through sha when not NULL; only while its file has
 * the stamp it was checked with.  1 when copied whole. */
static int spec_copy(struct fc_spec *s, size_t k, off_t at, struct sha256 *sha,
		     struct copier *cp)
{
	char *path = fc_frame_path(s->c, s->m.fkeys[k]);
	struct fc_stamp now;
	struct stat sb;
	int fd, ok;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	free(path);
	if (fd < 0)
		return 0;
	/* only files not written since their bytes were checked */
	ok = !fstat(fd, &sb) && S_ISREG(sb.st_mode) &&
	     (uint64_t)sb.st_size == FC_FRAME_HDR + s->m.lens[k];
	if (ok) {
		fc_stamp_of(&sb, &now);
		ok = now.ino == s->m.stamps[k].ino && now.mtime_ns == s->m.stamps[k].mtime_ns;
	}
	if (ok) {
		fc_touch(fd);
		ok = copy_range(fd, FC_FRAME_HDR, s->m.lens[k], s->fd, at, sha, cp) ==
		     s->m.lens[k];
	}
	close(fd);
	return ok;
}

/* Make frame j again and the archive from it on (frames before j are out). */
static void ahead_run(struct fc_spec *s, size_t j, unsigned nhints, struct copier *cp)
{
	struct ahead *a = &s->a;
	const struct fc_manifest *m = &s->m;
	struct sha256 sha;
	uint64_t oj = 0, off;
	unsigned char md[32];
	size_t k;

	a->state = -1;
	a->j = j;
	if (j >= m->nframes || !m->names ||
	    m->nfl[j] & (FC_FIRST_MID | FC_FIRST_EOA | FC_FIRST_NONE | FC_END_MID))
		return;
	for (k = 0; k < j; k++)
		oj += m->lens[k];
	if (fc_ahead_frame(s->c, m->fkeys[j], m->made_ns, s->root, s->rootfd, &s->o,
			   s->settings, &a->frame, a->key) || ahead_stop(s, nhints))
		return;
	/* from here on the output past frame j-1 is not the copy's */
	if (s->done > j)
		s->done = j;
	sha256_init(&sha, 0);
	if (j) {
		unsigned char t[64];
		size_t r = (size_t)(oj % 64);

		/* the bytes after the saved state's last whole block: the
		 * end of frame j-1, which the copy wrote (the output may be
		 * write-only: they are read from the store) */
		if (sha256_resume(&sha, m->mids[j], oj) || m->lens[j - 1] < r)
			return;
		if (r) {
			char *path = fc_frame_path(s->c, m->fkeys[j - 1]);
			int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
			ssize_t got = fd < 0 ? -1 :
				pread(fd, t, r, (off_t)(FC_FRAME_HDR + m->lens[j - 1] - r));

			free(path);
			if (fd >= 0)
				close(fd);
			if (got != (ssize_t)r)
				return;
		}
		sha256_update(&sha, t, r);
	}
	a->mids = xreallocarray(NULL, m->nframes, sizeof(*a->mids));
	sha256_save(&sha, a->mids[j]);
	sha256_update(&sha, a->frame.data, a->frame.len);
	if (pwrite_all(s->fd, a->frame.data, a->frame.len, s->start + (off_t)oj))
		return;
	off = oj + a->frame.len;
	if (s->start + (off_t)off > s->extent)
		s->extent = s->start + (off_t)off;
	for (k = j + 1; k < m->nframes; k++) {
		if (ahead_stop(s, nhints))
			break;
		sha256_save(&sha, a->mids[k]);
		if (!spec_copy(s, k, s->start + (off_t)off, &sha, cp))
			break;
		off += m->lens[k];
		if (s->start + (off_t)off > s->extent)
			s->extent = s->start + (off_t)off;
	}
	if (k < m->nframes)
		return;
	sha256_final(&sha, md);
	memcpy(a->digest, "sha256:", 7);
	hex_encode(a->digest + 7, md, 32);
	a->bytes = off;
	a->state = 1;
}

static void *spec_main(void *arg)
{
	struct fc_spec *s = arg;
	struct copier cp;
	size_t k = 0, want = SIZE_MAX;
	unsigned nhints = 0;
	int copying = 1, ahead_ok = 1, quit, go;
	off_t pos = s->start;

	copier_init(&cp, s->fd);
	for (;;) {
		pthread_mutex_lock(&s->mu);
		if (k >= s->m.nframes || k >= s->limit)
			copying = 0;
		/* nothing to do until a change is seen or the walk is over */
		while (!copying && !s->quit && s->nhints == nhints)
			pthread_cond_wait(&s->cv, &s->mu);
		if (k >= s->limit)
			copying = 0;
		if (s->nhints != nhints) {
			nhints = s->nhints;
			want = frame_of(&s->m, s->hint);
		}
		quit = s->quit;
		if (quit >= SPEC_NO_AHEAD)
			ahead_ok = 0;
		if (quit == SPEC_STOP)
			copying = 0;
		/* the changed frame, once the frames before it are out */
		go = ahead_ok && want != SIZE_MAX && want <= k;
		if (go)
			s->aj = want;
		pthread_mutex_unlock(&s->mu);
		if (go) {
			ahead_run(s, want, nhints, &cp);
			break;
		}
		if (copying) {
			if (!spec_copy(s, k, -1, NULL, &cp)) {
				copying = 0;
				continue;
			}
			pos += (off_t)s->m.lens[k];
			if (pos > s->extent)
				s->extent = pos;
			s->done = ++k;
			continue;
		}
		/* the walk is over with no change seen, or the copy stopped
		 * before the changed frame */
		if (quit || !ahead_ok || want != SIZE_MAX)
			break;
	}
	copier_release(&cp);
	return NULL;
}

struct fc_spec *fc_spec_start(struct fc *c, const char *dir, const struct pack_opts *o,
			      int out_fd)
{
	unsigned char lk[FC_KEY_LEN];
	struct fc_spec *s;
	struct stat st;
	char *root;
	off_t pos;
	int fl;

	/* (the look-ahead reads entry names back from stored frames: none
	 * with a prefix, which changes them) */
	if (!c || out_fd < 0 || (o->prefix && *o->prefix) || fstat(out_fd, &st) ||
	    !S_ISREG(st.st_mode))
		return NULL;
	fl = fcntl(out_fd, F_GETFL);
	pos = lseek(out_fd, 0, SEEK_CUR);
	if (fl < 0 || (fl & O_APPEND) || pos < 0 || pos != st.st_size)
		return NULL;
	root = realpath(dir ? dir : ".", NULL);
	if (!root)
		return NULL;
	s = xcalloc(1, sizeof(*s));
	s->c = c;
	s->fd = out_fd;
	s->start = pos;
	s->extent = pos;
	s->limit = SIZE_MAX;
	s->aj = SIZE_MAX;
	buf_init(&s->a.frame, 0);
	s->o = *o;
	s->root = root;
	fc_settings_hash(o, c->versions, s->settings);
	fc_last_key(root, s->settings, lk);
	s->rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->rootfd < 0 || fc_last_read(c, lk, s->akey) || !fc_manifest_read(c, s->akey, &s->m)) {
		if (s->rootfd >= 0)
			close(s->rootfd);
		free(root);
		free(s);
		return NULL;
	}
	/* the blocks the copy will fill, in one go rather than per page as
	 * it writes (ext4: about 5% less time; a no-op where unsupported) */
	fallocate(out_fd, FALLOC_FL_KEEP_SIZE, pos, (off_t)s->m.bytes);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if (pthread_create(&s->tid, NULL, spec_main, s)) {
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mu);
		fc_manifest_release(&s->m);
		close(s->rootfd);
		free(root);
		free(s);
		return NULL;
	}
	return s;
}

/* Let the copy go on up to frame `limit` (SIZE_MAX: all of it), then
 * wait for it. */
static void spec_join(struct fc_spec *s, size_t limit, int quit)
{
	if (s->joined)
		return;
	pthread_mutex_lock(&s->mu);
	s->limit = limit;
	s->quit = quit;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->tid, NULL);
	s->joined = 1;
}

static void spec_free(struct fc_spec *s)
{
	fc_manifest_release(&s->m);
	buf_release(&s->a.frame);
	free(s->a.mids);
	free(s->hint);
	free(s->root);
	close(s->rootfd);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/*
 * Keep the first `keep` (<= done) frames of the copy and free s; *kept_bytes
 * gets their size.  The output goes on from there.  The rest of the copy is
 * cut off now, or, with `defer`, left to be overwritten by what follows
 * (writing over pages the copy allocated is cheaper than allocating them
 * again after a truncate) and *defer set to where it ends, for
 * cut_after() to cut what is left of it once the output is complete.
 */
static int spec_finish(struct fc_spec *s, size_t keep, uint64_t *kept_bytes, off_t *defer,
		       struct err *e)
{
	uint64_t b = 0;
	off_t pos, to;
	size_t k;
	int ret = 0;

	spec_join(s, 0, SPEC_STOP);
	for (k = 0; k < keep; k++)
		b += s->m.lens[k];
	to = s->start + (off_t)b;
	pos = lseek(s->fd, 0, SEEK_CUR);
	if (pos >= 0 && s->extent > pos)
		pos = s->extent; /* the look-ahead wrote past the copy */
	if (pos != to) {
		if (defer && pos > to)
			*defer = pos;
		else if (ftruncate(s->fd, to))
			ret = err_errno(e, "cannot cut the output back");
		if (!ret && lseek(s->fd, to, SEEK_SET) < 0)
			ret = err_errno(e, "cannot cut the output back");
	}
	if (kept_bytes)
		*kept_bytes = b;
	spec_free(s);
	return ret;
}

/* After a deferred spec_finish: cut what the output did not overwrite. */
static int cut_after(int fd, off_t end, struct err *e)
{
	off_t pos;

	if (end < 0)
		return 0;
	pos = lseek(fd, 0, SEEK_CUR);
	if (pos < 0 || (pos < end && ftruncate(fd, pos)))
		return err_errno(e, "cannot cut the output back");
	return 0;
}

void fc_spec_cancel(struct fc_spec *s)
{
	struct err e = ERR_INIT;

	if (s)
		spec_finish(s, 0, NULL, NULL, &e);
}

/* ---- 2. after a small change: assemble ---- */

struct enc_job {
	struct run *r;
	const struct fc_manifest *p; /* the archive the frames replace parts of */
	size_t *ks;             /* frames to encode */
	size_t nk;
	size_t next;            /* guarded by mu */
	struct buf *out;        /* per frame in ks */
	pthread_mutex_t mu;
	struct err err;         /* the first failure, guarded by mu */
};

/*
 * A frame made again after an edit holds mostly files that did not
 * change, whose bytes the frame of the last archive at the same place
 * has: they are taken from it (about a thousand small files a frame not
 * opened and read) when they hash to the entry's content hash, which
 * makes them the file's content whatever happened since (issue 15).
 */
struct enc_src {
	const struct pack_list *l;
	struct pack_frame_reader *rd;
	struct buf z;
};

static int enc_data(void *ctx, size_t i, void *dst, size_t n)
{
	struct enc_src *s = ctx;
	struct walk_entry *we = s->l->v[i];
	unsigned char h[16];

	if (!s->rd || !we->hashed ||
	    !pack_frame_reader_get(s->rd, we->path, we->path_len, dst, n))
		return 0;
	idx_hash_bytes(dst, n, h);
	if (memcmp(h, we->hash, sizeof(h)))
		return 0;
	/* hashed from the bytes archived: frame_safe need not stat it */
	idx_entry_confirmed(we);
	return 1;
}

/* The old frame for frame k, when j->p has one where k starts. */
static void enc_src_open(struct enc_job *j, size_t k, struct enc_src *s)
{
	const struct pack_frame *f = &j->r->plan[k];
	struct fc_stamp stamp;
	int damaged = 0;
	size_t o;

	s->l = j->r->l;
	s->rd = NULL;
	buf_init(&s->z, 0);
	if (!j->p || j->r->o->compress != PACK_ZSTD || f->first.off || f->first.i >= s->l->n)
		return;
	o = frame_of(j->p, s->l->v[f->first.i]->path);
	if (o == SIZE_MAX || !fc_frame_read(j->r->c, j->p->fkeys[o], &s->z, &damaged, &stamp))
		return;
	s->rd = pack_frame_reader_new(s->z.data, s->z.len);
}

static void enc_src_close(struct enc_src *s)
{
	pack_frame_reader_free(s->rd);
	buf_release(&s->z);
}

static void *enc_main(void *arg)
{
	struct enc_job *j = arg;
	struct err e = ERR_INIT;
	struct pack_worker *w = pack_worker_new(j->r->o, 1, &e);
	struct pack_frame_cache hooks;

	memset(&hooks, 0, sizeof(hooks));
	hooks.data = enc_data;
	for (;;) {
		struct enc_src src;
		int bad;
		size_t i;

		pthread_mutex_lock(&j->mu);
		i = j->next++;
		if (err_isset(&j->err))
			i = j->nk;
		if (!w && !err_isset(&j->err))
			j->err = e;
		pthread_mutex_unlock(&j->mu);
		if (!w || i >= j->nk)
			break;
		enc_src_open(j, j->ks[i], &src);
		hooks.ctx = &src;
		pack_worker_set_cache(w, src.rd ? &hooks : NULL);
		bad = pack_frame_encode(w, j->r->l, j->r->rootfd, &j->r->plan[j->ks[i]], &j->out[i],
					NULL, &e);
		pack_worker_set_cache(w, NULL);
		enc_src_close(&src);
		if (bad) {
			pthread_mutex_lock(&j->mu);
			if (!err_isset(&j->err))
				j->err = e;
			pthread_mutex_unlock(&j->mu);
			break;
		}
		store(j->r, j->ks[i], j->out[i].data, j->out[i].len);
	}
	pack_worker_free(w);
	return NULL;
}

/* Encode frames ks[0..nk) into out[], on up to `threads` threads. */
static int encode_frames(struct run *r, const struct fc_manifest *p, size_t *ks, size_t nk,
			 struct buf *out, unsigned threads, struct err *e)
{
	struct enc_job j;
	pthread_t tid[ASSEMBLE_MAX];
	unsigned i, started = 0;

	memset(&j, 0, sizeof(j));
	j.r = r;
	j.p = p;
	j.ks = ks;
	j.nk = nk;
	j.out = out;
	pthread_mutex_init(&j.mu, NULL);
	if (threads > nk)
		threads = (unsigned)nk;
	if (threads > ASSEMBLE_MAX)
		threads = ASSEMBLE_MAX;
	for (i = 1; i < threads; i++)
		if (!pthread_create(&tid[started], NULL, enc_main, &j))
			started++;
	enc_main(&j);
	for (i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
	pthread_mutex_destroy(&j.mu);
	if (err_isset(&j.err)) {
		*e = j.err;
		return e->code;
	}
	return 0;
}

/*
 * assemble()'s writer: from the first hashed frame on, the sink calls run
 * on this thread while the main thread reads and hashes the next frame
 * (the walk is over by then, so the second core is free).  Two slots, in
 * turn: the main thread fills one while the writer sends the other.
 */
struct writer {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t tid;
	int started;
	pack_sink_fn sink;
	void *ctx;
	struct buf bufs[2];
	const char *ptr[2];     /* what slot i sends (bufs[i] or an encoded frame) */
	size_t len[2];
	int full[2];
	int quit;
	int failed;             /* the sink failed: err, and nothing more is sent */
	struct err err;
};

static void *writer_main(void *arg)
{
	struct writer *wr = arg;
	int i = 0;

	pthread_mutex_lock(&wr->mu);
	for (;;) {
		const char *p;
		size_t n;
		struct err e = ERR_INIT;
		int r = 0;

		while (!wr->full[i] && !wr->quit)
			pthread_cond_wait(&wr->cv, &wr->mu);
		if (!wr->full[i])
			break;
		p = wr->ptr[i];
		n = wr->len[i];
		pthread_mutex_unlock(&wr->mu);
		if (!wr->failed)
			r = wr->sink(wr->ctx, p, n, &e);
		pthread_mutex_lock(&wr->mu);
		if (r && !wr->failed) {
			wr->failed = 1;
			wr->err = e;
		}
		wr->full[i] = 0;
		pthread_cond_broadcast(&wr->cv);
		i ^= 1;
	}
	pthread_mutex_unlock(&wr->mu);
	return NULL;
}

static void writer_init(struct writer *wr, pack_sink_fn sink, void *ctx)
{
	memset(wr, 0, sizeof(*wr));
	pthread_mutex_init(&wr->mu, NULL);
	pthread_cond_init(&wr->cv, NULL);
	wr->sink = sink;
	wr->ctx = ctx;
	buf_init(&wr->bufs[0], 0);
	buf_init(&wr->bufs[1], 0);
}

/* Slot i's buffer, once the writer is done with it. */
static struct buf *writer_slot(struct writer *wr, int i)
{
	pthread_mutex_lock(&wr->mu);
	while (wr->full[i])
		pthread_cond_wait(&wr->cv, &wr->mu);
	pthread_mutex_unlock(&wr->mu);
	return &wr->bufs[i];
}

/* Send p (which must stay valid until the slot is free again) from slot
 * i: on the writer thread when it runs, else here.  Returns the sink's
 * first error. */
static int writer_push(struct writer *wr, int i, const char *p, size_t n, struct err *e)
{
	int failed;

	if (!wr->started) {
		if (!pthread_create(&wr->tid, NULL, writer_main, wr))
			wr->started = 1;
		else
			return wr->sink(wr->ctx, p, n, e);
	}
	pthread_mutex_lock(&wr->mu);
	while (wr->full[i])
		pthread_cond_wait(&wr->cv, &wr->mu);
	failed = wr->failed;
	if (failed) {
		*e = wr->err;
	} else {
		wr->ptr[i] = p;
		wr->len[i] = n;
		wr->full[i] = 1;
		pthread_cond_broadcast(&wr->cv);
	}
	pthread_mutex_unlock(&wr->mu);
	return failed ? e->code : 0;
}

/* Wait for everything to be sent; the sink's first error, if any. */
static int writer_finish(struct writer *wr, struct err *e)
{
	int ret = 0;

	if (wr->started) {
		pthread_mutex_lock(&wr->mu);
		wr->quit = 1;
		pthread_cond_broadcast(&wr->cv);
		pthread_mutex_unlock(&wr->mu);
		pthread_join(wr->tid, NULL);
		if (wr->failed && !err_isset(e)) {
			*e = wr->err;
			ret = e->code;
		}
	}
	buf_release(&wr->bufs[0]);
	buf_release(&wr->bufs[1]);
	pthread_cond_destroy(&wr->cv);
	pthread_mutex_destroy(&wr->mu);
	return ret;
}

/* Keep the last 64 bytes of the stream in t, after n more bytes p. */
static void keep_last64(unsigned char t[64], const void *p, size_t n)
{
	if (n >= 64) {
		memcpy(t, (const char *)p + n - 64, 64);
	} else if (n) {
		memmove(t, t + n, 64 - n);
		memcpy(t + 64 - n, p, n);
	}
}

/* Index of key among m's frames, or -1 (m's frames are few hundred: a
 * sorted copy would not pay). */
static ssize_t manifest_find(const struct fc_manifest *m, const unsigned char *key,
			     size_t hint)
{
	size_t i;

	if (hint < m->nframes && !memcmp(m->fkeys[hint], key, FC_KEY_LEN))
		return (ssize_t)hint;
	for (i = 0; i < m->nframes; i++)
		if (!memcmp(m->fkeys[i], key, FC_KEY_LEN))
			return (ssize_t)i;
	return -1;
}

/*
 * The archive from the context's last archive p plus a few frames: the
 * frames missing from the store are compressed first (at most
 * ASSEMBLE_MAX, else this returns 0 having done nothing), then every
 * frame is sent in order; the frames before the first one that differs
 * from p's are copied without being read, and the sha256 resumes there.
 * A stored frame found damaged on the way is compressed on the spot.
 * Returns 1 (done, res filled), 0 (not applicable, nothing sent) or an
 * error (the sink's, or a frame that could not be compressed).
 */
static int assemble(struct run *r, const struct fc_manifest *p, size_t kept,
		    pack_sink_fn sink, void *sink_ctx, int out_fd, struct pack_result *res,
		    struct err *e)
{
	size_t n = r->nplan, k, j, nmiss = 0, *miss = NULL, mi = 0;
	ssize_t *src = NULL;          /* frame k's index in p, or -1 */
	struct buf *enc = NULL, b;
	struct writer wr;
	struct sha256 sha;
	struct pack_worker *w = NULL;
	uint64_t off = 0, oj = 0;
	unsigned char md[32], last64[64];
	struct copier cp;
	int ret = 0, ws = 0;

	copier_init(&cp, out_fd);
	for (k = 0; k < n; k++)
		if (!r->keyed[k])
			return 0;
	/* the first frame that is not p's at the same place */
	for (j = 0; j < n && j < p->nframes && !memcmp(r->keys[j], p->fkeys[j], FC_KEY_LEN); j++)
		;
	if (j == n && p->nframes != n)
		return 0; /* cannot happen: the list ends where p's does */
	src = xreallocarray(NULL, n, sizeof(*src));
	miss = xreallocarray(NULL, ASSEMBLE_MAX, sizeof(*miss));
	for (k = 0; k < n; k++) {
		char *path;
		struct stat sb;
		int have;

		src[k] = manifest_find(p, r->keys[k], k);
		path = fc_frame_path(r->c, r->keys[k]);
		have = !stat(path, &sb);
		if (have && (!S_ISREG(sb.st_mode) ||
			     (src[k] >= 0 && (uint64_t)sb.st_size != FC_FRAME_HDR + p->lens[src[k]]))) {
			/* not what was stored: damaged */
			if (S_ISREG(sb.st_mode))
				unlink(path);
			r->st->frames_damaged++;
			have = 0;
		}
		free(path);
		if (have)
			continue;
		if (nmiss == ASSEMBLE_MAX) {
			free(src);
			free(miss);
			return 0;
		}
		miss[nmiss++] = k;
	}
	enc = xcalloc(nmiss ? nmiss : 1, sizeof(*enc));
	for (k = 0; k < nmiss; k++)
		buf_init(&enc[k], 0);
	if (nmiss) {
		ret = encode_frames(r, p, miss, nmiss, enc, r->o->threads ? r->o->threads : 2, e);
		if (ret)
			goto out;
	}
	r->st->frames_compressed += nmiss;

	/* the offset of frame j, the same as in p */
	for (k = 0; k < j; k++)
		oj += p->lens[k];
	buf_init(&b, 0);
	writer_init(&wr, sink, sink_ctx);
	memset(res, 0, sizeof(*res));
	for (k = 0; k < n; k++) {
		uint64_t copied = 0;
		int damaged = 0, hashed = k >= j, out = k >= kept;
		/* bytes in memory: to hash them, or to keep the 64 before
		 * frame j, where the hash resumes */
		int need = hashed || off + p->lens[k] + 64 > oj;
		/* hashed frames go out through the writer's slots */
		struct buf *bp = hashed && out ? writer_slot(&wr, ws) : &b;
		const struct buf *data = bp;

		if (mi < nmiss && miss[mi] == k) {
			data = &enc[mi++];
		} else if (!out && !need) {
			/* already out (fc_spec), p's frame k */
			r->stamps[k] = p->stamps[k];
			r->lens[k] = p->lens[k];
			r->present[k] = 1;
			r->st->frames_reused++;
			r->st->bytes_reused += p->lens[k];
			memcpy(r->mids[k], p->mids[k], FC_SHA_MID);
			off += p->lens[k];
			continue;
		} else {
			struct fc_stamp stamp = {0, 0};
			int got;

			if (src[k] >= 0) {
				stamp = p->stamps[src[k]];
				got = frame_bytes(r->c, r->keys[k], p->lens[src[k]], &stamp,
						  need || !out, out_fd, &cp, bp, &copied,
						  &damaged);
			} else {
				/* not in p: read and check it */
				buf_reset(bp);
				got = fc_frame_read(r->c, r->keys[k], bp, &damaged, &stamp);
			}
			if (got) {
				r->stamps[k] = stamp;
				r->lens[k] = copied + bp->len;
				r->present[k] = 1;
				r->st->frames_reused++;
				r->st->bytes_reused += copied + bp->len;
			} else {
				/* damaged or gone since the check above */
				r->st->frames_damaged += damaged;
				r->st->frames_compressed++;
				if (!w && !(w = pack_worker_new(r->o, 1, e))) {
					ret = e->code;
					break;
				}
				buf_reset(bp);
				ret = pack_frame_encode(w, r->l, r->rootfd, &r->plan[k], bp, NULL, e);
				if (ret)
					break;
				store(r, k, bp->data, bp->len);
				copied = 0;
			}
		}
		if (k == j) {
			/* resume p's hash at frame j: its state after the whole
			 * blocks before oj, then the oj % 64 bytes after them */
			sha256_init(&sha, 0);
			if (j && sha256_resume(&sha, p->mids[j], oj)) {
				ret = err_set(e, ERR_CORRUPT, "pack cache: a bad hash state");
				break;
			}
			if (j)
				sha256_update(&sha, last64 + 64 - oj % 64, (size_t)(oj % 64));
		}
		if (hashed) {
			sha256_save(&sha, r->mids[k]);
			sha256_update(&sha, data->data, data->len);
			r->st->bytes_hashed += data->len;
		} else {
			memcpy(r->mids[k], p->mids[k], FC_SHA_MID);
			keep_last64(last64, data->data, data->len);
		}
		if (out && data->len) {
			if (hashed) {
				ret = writer_push(&wr, ws, data->data, data->len, e);
				ws ^= 1;
			} else {
				ret = sink(sink_ctx, data->data, data->len, e);
			}
			if (ret)
				break;
		}
		off += copied + data->len;
	}
	if (writer_finish(&wr, e) && !ret)
		ret = e->code;
	buf_release(&b);
	if (ret)
		goto out;
	if (j == n) {
		memcpy(res->digest, p->digest, sizeof(res->digest));
	} else {
		sha256_final(&sha, md);
		memcpy(res->digest, "sha256:", 7);
		hex_encode(res->digest + 7, md, 32);
	}
	res->bytes = off;
	res->entries = r->l->n;
	res->frames = n;
	r->have_mids = 1;
	ret = 1;
out:
	copier_release(&cp);
	pack_worker_free(w);
	for (k = 0; k < nmiss; k++)
		buf_release(&enc[k]);
	free(enc);
	free(miss);
	free(src);
	return ret;
}

/* ---- 3. frame by frame, through pack_write ---- */

/* pack_write's sink: the sha256, with its state saved at every frame's
 * start, then the caller's sink minus the bytes serve() already sent. */
struct hash_sink {
	pack_sink_fn fn;
	void *ctx;
	uint64_t skip;
	struct sha256 sha;
	struct run *r;
	size_t k;          /* frames seen */
};

static int hash_write(void *ctx, const void *p, size_t n, struct err *e)
{
	struct hash_sink *s = ctx;

	if (s->k < s->r->nplan)
		sha256_save(&s->sha, s->r->mids[s->k]);
	s->k++;
	sha256_update(&s->sha, p, n);
	s->r->st->bytes_hashed += n;
	if (s->skip >= n) {
		s->skip -= n;
		return 0;
	}
	p = (const char *)p + s->skip;
	n -= (size_t)s->skip;
	s->skip = 0;
	return s->fn(s->ctx, p, n, e);
}

static void run_release(struct run *r)
{
	free(r->plan);
	free(r->keys);
	free(r->keyed);
	free(r->present);
	free(r->lens);
	free(r->stamps);
	free(r->mids);
	if (r->rootfd >= 0)
		close(r->rootfd);
}

/* The first entry of each planned frame, for the manifest. */
static void first_names(const struct run *r, struct fc_manifest *m)
{
	const struct pack_list *l = r->l;
	size_t k, total = 0;

	for (k = 0; k < r->nplan; k++)
		if (r->plan[k].first.i < l->n)
			total += l->v[r->plan[k].first.i]->path_len;
	m->names = xmalloc(total + 1);
	m->noff = xreallocarray(NULL, r->nplan ? r->nplan : 1, sizeof(*m->noff));
	m->nlen = xreallocarray(NULL, r->nplan ? r->nplan : 1, sizeof(*m->nlen));
	m->nfl = xmalloc(r->nplan ? r->nplan : 1);
	for (k = 0, total = 0; k < r->nplan; k++) {
		const struct pack_frame *f = &r->plan[k];

		m->noff[k] = total;
		m->nlen[k] = 0;
		m->nfl[k] = (f->first.off ? FC_FIRST_MID : 0) | (f->end.off ? FC_END_MID : 0);
		if (f->first.i >= l->n) {
			m->nfl[k] |= FC_FIRST_EOA;
			continue;
		}
		m->nlen[k] = l->v[f->first.i]->path_len;
		memcpy(m->names + total, l->v[f->first.i]->path, m->nlen[k]);
		total += m->nlen[k];
	}
}

/* Write the manifest of the archive just made, when every frame is in the
 * store, and make it the context's last. */
static void keep_archive(struct run *r, const unsigned char akey[FC_KEY_LEN],
			 const unsigned char lk[FC_KEY_LEN], const struct pack_result *res)
{
	struct fc_manifest m;
	struct err e = ERR_INIT;
	size_t k;
	int bad;

	if (!r->have_mids)
		return;
	for (k = 0; k < r->nplan; k++)
		if (!r->present[k])
			return;
	memset(&m, 0, sizeof(m));
	memcpy(m.key, akey, FC_KEY_LEN);
	m.made_ns = r->c->t0_ns;
	first_names(r, &m);
	m.nframes = r->nplan;
	m.bytes = res->bytes;
	m.entries = r->l->n;
	memcpy(m.digest, res->digest, sizeof(m.digest));
	m.fkeys = r->keys;
	m.lens = r->lens;
	m.stamps = r->stamps;
	m.mids = r->mids;
	bad = fc_manifest_write(r->c, &m, &e);
	free(m.names);
	free(m.noff);
	free(m.nlen);
	free(m.nfl);
	if (bad) {
		fc_warn(r->c, "cannot store the archive manifest: %s", e.msg);
		return;
	}
	r->st->archive_stored = 1;
	fc_last_write(r->c, lk, akey);
}

/* How many of the first `max` frames of m are the run's frames 0.. */
static size_t common_prefix(const struct run *r, const struct fc_manifest *m, size_t max)
{
	size_t k;

	for (k = 0; k < max && k < r->nplan && k < m->nframes; k++)
		if (!r->keyed[k] || memcmp(r->keys[k], m->fkeys[k], FC_KEY_LEN))
			break;
	return k;
}

/*
 * The frame the look-ahead should have made for this archive to be its
 * result: the first of the run's frames that differs from the last
 * archive's, when all after it are the last archive's and the look-ahead
 * is on it (or will be); else SIZE_MAX.
 */
static size_t ahead_target(const struct run *r, struct fc_spec *s)
{
	const struct fc_manifest *m = &s->m;
	size_t j = common_prefix(r, m, m->nframes), k, aj, want;

	if (r->nplan != m->nframes || j >= r->nplan)
		return SIZE_MAX;
	for (k = j + 1; k < r->nplan; k++)
		if (!r->keyed[k] || memcmp(r->keys[k], m->fkeys[k], FC_KEY_LEN))
			return SIZE_MAX;
	if (!r->keyed[j])
		return SIZE_MAX;
	pthread_mutex_lock(&s->mu);
	aj = s->aj;
	want = s->nhints ? frame_of(m, s->hint) : SIZE_MAX;
	pthread_mutex_unlock(&s->mu);
	return (aj == SIZE_MAX ? want : aj) == j ? j : SIZE_MAX;
}

/* The look-ahead made this archive (the output is complete): its result
 * for the run, res and the output's end. */
static int ahead_take(struct run *r, struct fc_spec *s, struct pack_result *res, int *cut_fd,
		      off_t *cut_end, struct err *e)
{
	const struct ahead *a = &s->a;
	size_t j = a->j, k;
	off_t end = s->start + (off_t)a->bytes;

	for (k = 0; k < r->nplan; k++) {
		if (k == j)
			continue;
		r->lens[k] = s->m.lens[k];
		r->stamps[k] = s->m.stamps[k];
		r->present[k] = 1;
		memcpy(r->mids[k], k < j ? s->m.mids[k] : a->mids[k], FC_SHA_MID);
		r->st->frames_reused++;
		r->st->bytes_reused += s->m.lens[k];
	}
	memcpy(r->mids[j], a->mids[j], FC_SHA_MID);
	store(r, j, a->frame.data, a->frame.len);
	r->have_mids = 1;
	r->st->path = FC_PATH_ASSEMBLE;
	r->st->frames_compressed = 1;
	r->st->bytes_hashed = a->frame.len;
	for (k = j + 1; k < r->nplan; k++)
		r->st->bytes_hashed += s->m.lens[k];
	r->st->bytes_early = a->bytes;
	r->st->bytes_ahead = r->st->bytes_hashed;
	memset(res, 0, sizeof(*res));
	memcpy(res->digest, a->digest, sizeof(res->digest));
	res->bytes = a->bytes;
	res->entries = r->l->n;
	res->frames = r->nplan;
	*cut_fd = s->fd;
	*cut_end = s->extent > end ? s->extent : -1;
	if (lseek(s->fd, end, SEEK_SET) < 0) {
		spec_free(s);
		return err_errno(e, "cannot seek in the output");
	}
	spec_free(s);
	return 0;
}

static int pack_cached(struct fc *c, struct fc_spec *spec, struct pack_list *l,
		       const struct pack_opts *o, pack_sink_fn sink, void *sink_ctx, int out_fd,
		       struct pack_result *res, struct fc_stats *st, int *cut_fd, off_t *cut_end,
		       struct err *e)
{
	struct fc_stats local;
	struct run r;
	struct pack_frame_cache hooks;
	struct hash_sink hs;
	struct fc_manifest m;
	unsigned char akey[FC_KEY_LEN], lk[FC_KEY_LEN], last[FC_KEY_LEN], md[32];
	uint64_t skip = 0;
	size_t kept = 0, k;
	int akeyed, ret, hinted = 0;

	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	if (!c) {
		fc_spec_cancel(spec);
		return pack_write(l, o, NULL, sink, sink_ctx, res, e);
	}

	memset(&r, 0, sizeof(r));
	r.c = c;
	r.l = l;
	r.o = o;
	r.st = st;
	r.rootfd = open(l->root ? l->root : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r.rootfd < 0) {
		fc_spec_cancel(spec);
		return err_errno(e, "cannot open %s", l->root ? l->root : ".");
	}
	hash_added(l, r.rootfd);
	fc_settings_hash(o, c->versions, r.settings);
	fc_last_key(l->root ? l->root : ".", r.settings, lk);
	akeyed = !fc_archive_key(l, r.settings, akey);

	/* 0. the copy made while the context was walked: all of it when it
	 * is this archive */
	if (spec && akeyed && !memcmp(akey, spec->akey, FC_KEY_LEN)) {
		spec_join(spec, SIZE_MAX, SPEC_NO_AHEAD);
		st->seen_changed = spec->nhints;
		if (spec->done == spec->m.nframes) {
			struct err we = ERR_INIT;

			/* a change seen was no change: the archive is this tree
			 * as of this pack, which the next one need not look
			 * ahead from */
			spec->m.made_ns = c->t0_ns;
			if (spec->nhints && fc_manifest_write(c, &spec->m, &we))
				fc_warn(c, "cannot store the archive manifest: %s", we.msg);
			memset(res, 0, sizeof(*res));
			memcpy(res->digest, spec->m.digest, sizeof(res->digest));
			res->bytes = spec->m.bytes;
			res->entries = l->n;
			res->frames = spec->m.nframes;
			st->path = FC_PATH_ARCHIVE;
			st->archive_reused = 1;
			st->frames = st->frames_reused = spec->m.nframes;
			st->bytes_reused = spec->m.bytes;
			st->bytes_early = spec->m.bytes;
			ret = spec_finish(spec, spec->done, NULL, NULL, e);
			run_release(&r);
			return ret;
		}
	}

	pack_plan_prefixed(l->v, l->n, o->prefix, &r.plan, &r.nplan);
	r.keys = xreallocarray(NULL, r.nplan, sizeof(*r.keys));
	r.keyed = xcalloc(r.nplan, 1);
	r.present = xcalloc(r.nplan, 1);
	r.lens = xcalloc(r.nplan, sizeof(*r.lens));
	r.stamps = xcalloc(r.nplan, sizeof(*r.stamps));
	r.mids = xcalloc(r.nplan, sizeof(*r.mids));
	for (k = 0; k < r.nplan; k++) {
		r.keyed[k] = !fc_frame_key(l, &r.plan[k], r.settings, r.keys[k]);
		st->frames_unkeyed += !r.keyed[k];
	}
	st->frames = r.nplan;
	/* ... else the part of it this archive starts with (the copy goes
	 * on up to there) */
	if (spec) {
		size_t j = ahead_target(&r, spec);

		if (j != SIZE_MAX)
			spec_join(spec, SIZE_MAX, SPEC_WALKED);
		else
			spec_join(spec, common_prefix(&r, &spec->m, spec->m.nframes), SPEC_NO_AHEAD);
		hinted = spec->nhints != 0;
		st->seen_changed = spec->nhints;
		if (j != SIZE_MAX && spec->a.state == 1 && spec->a.j == j &&
		    !memcmp(spec->a.key, r.keys[j], FC_KEY_LEN)) {
			ret = ahead_take(&r, spec, res, cut_fd, cut_end, e);
			if (!ret)
				keep_archive(&r, akey, lk, res);
			run_release(&r);
			return ret;
		}
		kept = common_prefix(&r, &spec->m, spec->done);
		*cut_fd = spec->fd;
		ret = spec_finish(spec, kept, &skip, cut_end, e);
		st->bytes_early = skip;
		if (ret) {
			run_release(&r);
			return ret;
		}
	}

	/* 1. the whole archive */
	if (akeyed && fc_manifest_read(c, akey, &m)) {
		size_t sent = kept;
		int refreshed = 0, tried = 0;

		ret = 0;
		if (m.entries == l->n && common_prefix(&r, &m, m.nframes) == r.nplan &&
		    m.nframes == r.nplan) {
			ret = serve(c, &m, sink, sink_ctx, out_fd, &sent, &refreshed, st, e);
			tried = 1;
		}
		if (ret == 1) {
			struct err we = ERR_INIT;

			/* the checked files' new stamps, so they are not read
			 * again next time */
			if (hinted)
				m.made_ns = c->t0_ns; /* as in 0. */
			if ((refreshed || hinted) && fc_manifest_write(c, &m, &we))
				fc_warn(c, "cannot store the archive manifest: %s", we.msg);
			fc_last_write(c, lk, akey);
			memset(res, 0, sizeof(*res));
			memcpy(res->digest, m.digest, sizeof(res->digest));
			res->bytes = m.bytes;
			res->entries = l->n;
			res->frames = m.nframes;
			st->path = FC_PATH_ARCHIVE;
			st->archive_reused = 1;
			st->frames_reused = m.nframes;
			st->bytes_reused = m.bytes;
		}
		if (tried) {
			/* m's frames are this archive's: its lengths are theirs */
			for (skip = 0, k = 0; k < sent; k++)
				skip += m.lens[k];
			kept = sent;
		}
		fc_manifest_release(&m);
		if (ret) {
			run_release(&r);
			return ret == 1 ? 0 : ret;
		}
	}

	/* 2. a few frames changed since the context's last archive */
	if (akeyed && !fc_last_read(c, lk, last) && fc_manifest_read(c, last, &m)) {
		ret = assemble(&r, &m, kept, sink, sink_ctx, out_fd, res, e);
		fc_manifest_release(&m);
		if (ret < 0) {
			run_release(&r);
			return ret;
		}
		if (ret == 1) {
			st->path = FC_PATH_ASSEMBLE;
			keep_archive(&r, akey, lk, res);
			run_release(&r);
			return 0;
		}
	}

	/* 3. frame by frame, skipping what is already out */
	hooks.get = hook_get;
	hooks.put = hook_put;
	hooks.content = hook_content;
	hooks.data = NULL;
	hooks.ctx = &r;
	hooks.flags = PACK_CACHE_OWN_DIGEST;
	memset(&hs, 0, sizeof(hs));
	hs.fn = sink;
	hs.ctx = sink_ctx;
	hs.skip = skip;
	hs.r = &r;
	sha256_init(&hs.sha, 0);
	st->path = FC_PATH_FRAMES;
	ret = pack_write(l, o, &hooks, hash_write, &hs, res, e);
	if (!ret) {
		sha256_final(&hs.sha, md);
		memcpy(res->digest, "sha256:", 7);
		hex_encode(res->digest + 7, md, 32);
		/* a sink call per frame, so mids[k] is frame k's state */
		r.have_mids = hs.k == r.nplan;
		/* files the index left to the packer are hashed now */
		if (!akeyed)
			akeyed = !fc_archive_key(l, r.settings, akey);
		if (akeyed)
			keep_archive(&r, akey, lk, res);
	}
	run_release(&r);
	return ret;
}

int fc_pack_write(struct fc *c, struct fc_spec *spec, struct pack_list *l,
		  const struct pack_opts *o, pack_sink_fn sink, void *sink_ctx, int out_fd,
		  struct pack_result *res, struct fc_stats *st, struct err *e)
{
	off_t cut_end = -1;
	int cut_fd = -1;
	int ret = pack_cached(c, spec, l, o, sink, sink_ctx, out_fd, res, st, &cut_fd, &cut_end, e);

	if (!ret)
		ret = cut_after(cut_fd, cut_end, e);
	return ret;
}
