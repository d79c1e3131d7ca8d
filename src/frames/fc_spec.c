/*
 * fc_spec: the copy of the context's last archive made while the context
 * is walked, and its look-ahead, both on one thread.  Before the walk the
 * copy starts writing the last archive's frames to the output; if the walk
 * reports an entry changed since that archive was made, the look-ahead
 * makes the frame holding it again (fc_ahead.c) and hashes and writes the
 * rest of the archive after it, all while the walk goes on.  After the
 * walk, fc_pack_write keeps what the new archive's keys say is its own
 * (fc_ahead_target, fc_ahead_take, fc_spec_finish) and cuts the rest.
 */
#include "fc_pack_internal.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
size_t fc_frame_of(const struct fc_manifest *m, const char *path)
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
		     struct fc_copier *cp)
{
	/* only files not written since their bytes were checked */
	int fd = fc_frame_open_stamped(s->c, s->m.fkeys[k], s->m.lens[k], &s->m.stamps[k]);
	int ok;

	if (fd < 0)
		return 0;
	ok = fc_copy_range(fd, FC_FRAME_HDR, s->m.lens[k], s->fd, at, sha, cp) == s->m.lens[k];
	close(fd);
	return ok;
}

/* Make frame j again and the archive from it on (frames before j are out). */
static void ahead_run(struct fc_spec *s, size_t j, unsigned nhints, struct fc_copier *cp)
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
	struct fc_copier cp;
	size_t k = 0, want = SIZE_MAX;
	unsigned nhints = 0;
	int copying = 1, ahead_ok = 1, quit, go;
	off_t pos = s->start;

	fc_copier_init(&cp, s->fd, NULL, NULL);
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
			want = fc_frame_of(&s->m, s->hint);
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
	fc_copier_release(&cp);
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
void fc_spec_join(struct fc_spec *s, size_t limit, int quit)
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
 * fc_cut_after() to cut what is left of it once the output is complete.
 */
int fc_spec_finish(struct fc_spec *s, size_t keep, uint64_t *kept_bytes, off_t *defer,
		   struct err *e)
{
	uint64_t b = 0;
	off_t pos, to;
	size_t k;
	int ret = 0;

	fc_spec_join(s, 0, SPEC_STOP);
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
int fc_cut_after(int fd, off_t end, struct err *e)
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
		fc_spec_finish(s, 0, NULL, NULL, &e);
}

/*
 * The frame the look-ahead should have made for this archive to be its
 * result: the first of the run's frames that differs from the last
 * archive's, when all after it are the last archive's and the look-ahead
 * is on it (or will be); else SIZE_MAX.
 */
size_t fc_ahead_target(const struct fc_run *r, struct fc_spec *s)
{
	const struct fc_manifest *m = &s->m;
	size_t j = fc_common_prefix(r, m, m->nframes), k, aj, want;

	if (r->nplan != m->nframes || j >= r->nplan)
		return SIZE_MAX;
	for (k = j + 1; k < r->nplan; k++)
		if (!r->keyed[k] || memcmp(r->keys[k], m->fkeys[k], FC_KEY_LEN))
			return SIZE_MAX;
	if (!r->keyed[j])
		return SIZE_MAX;
	pthread_mutex_lock(&s->mu);
	aj = s->aj;
	want = s->nhints ? fc_frame_of(m, s->hint) : SIZE_MAX;
	pthread_mutex_unlock(&s->mu);
	return (aj == SIZE_MAX ? want : aj) == j ? j : SIZE_MAX;
}

/* The look-ahead made this archive (the output is complete): its result
 * for the run, res and the output's end. */
int fc_ahead_take(struct fc_run *r, struct fc_spec *s, struct pack_result *res, int *cut_fd,
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
	fc_run_store(r, j, a->frame.data, a->frame.len);
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
