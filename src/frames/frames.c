/*
 * The frame store: frame files, archive manifests, their keys, and the
 * size bound.  The pack side is fc_pack.c and the files it names
 * (fc_pack_internal.h).
 *
 * Files are small fixed headers followed by a payload and checksums: a
 * truncated, bit-flipped or foreign file is a miss, and is removed.  A
 * file is only trusted without reading it when its inode and mtime are
 * those recorded when it was last checked (fc_copy.c).  Files are written
 * once, to "<name>.tmp.<pid>.<n>" (util's atomic_open), and
 * renamed into place, without an fsync: a cache entry torn by a crash
 * fails its check like any damage, and an fsync per frame would cost
 * more than compressing the frame again (with ext4's ordered mode, even
 * the fsync of a small manifest can wait for the frames' data).
 */
#include "fc_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>


#define FRAME_MAGIC "CTXPKF1\n"
#define MANIFEST_MAGIC "CTXPKA3\n"
#define LAST_MAGIC "CTXPKL1\n"
#define LAST_LEN 32 /* magic(8) key(16) check(8) */
/* magic(8) key(16) nframes(8) bytes(8) entries(8) digest(72) made_ns(8) */
#define MANIFEST_HDR 128
#define MANIFEST_REC (40 + FC_SHA_MID) /* key(16) len(8) ino(8) mtime_ns(8) mid */
/* More frames than this in one manifest is not believed. */
#define MANIFEST_MAX_FRAMES ((uint64_t)1 << 24)
#define WARN_MAX 2048

/* ---- sizes ---- */

int fc_parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0, mul = 1;
	const char *p = s;

	if (!s || *s < '0' || *s > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	switch (*p) {
	case 'k': case 'K': mul = (uint64_t)1 << 10; p++; break;
	case 'm': case 'M': mul = (uint64_t)1 << 20; p++; break;
	case 'g': case 'G': mul = (uint64_t)1 << 30; p++; break;
	case 't': case 'T': mul = (uint64_t)1 << 40; p++; break;
	}
	if (mul > 1 && *p == 'i')
		p++;
	if (*p == 'b' || *p == 'B')
		p++;
	if (*p || v == 0 || v > UINT64_MAX / mul)
		return -1;
	*out = v * mul;
	return 0;
}

/* ---- the handle ---- */

void fc_stamp_of(const void *stat_buf, struct fc_stamp *s)
{
	const struct stat *st = stat_buf;

	s->ino = (uint64_t)st->st_ino;
	s->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

void fc_touch(int fd)
{
	struct timespec ts[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};

	futimens(fd, ts);
}

int fc_open(struct fc **out, const struct fc_opts *o, struct err *e)
{
	struct fc *c;
	uint64_t max = o->max_bytes;
	const char *env = env_get()->pack_cache_max;

	*out = NULL;
	if (!max && env && fc_parse_size(env, &max))
		return err_set(e, ERR_USAGE, "CTXPACK_PACK_CACHE_MAX='%.64s' is not a size "
			       "(like 2G or 500M)", env);
	c = xcalloc(1, sizeof(*c));
	c->dir = o->dir ? xstrdup(o->dir) : cache_home();
	c->explicit_dir = o->dir != NULL;
	c->frames_dir = xasprintf("%s/frames", c->dir);
	c->archives_dir = xasprintf("%s/archives", c->dir);
	c->versions = xstrdup(o->versions ? o->versions : "");
	c->max = max ? max : FC_DEFAULT_MAX;
	c->t0_ns = time_real_ns();
	buf_init(&c->warn, 0);
	pthread_mutex_init(&c->mu, NULL);
	*out = c;
	return 0;
}

void fc_close(struct fc *c)
{
	if (!c)
		return;
	pthread_mutex_destroy(&c->mu);
	buf_release(&c->warn);
	free(c->dir);
	free(c->frames_dir);
	free(c->archives_dir);
	free(c->versions);
	free(c);
}

const char *fc_dir(const struct fc *c)
{
	return c->dir;
}

const char *fc_warning(const struct fc *c)
{
	return c->warn.len ? c->warn.data : NULL;
}

void fc_warn(struct fc *c, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&c->mu);
	if (c->warn.len < WARN_MAX) {
		if (c->warn.len)
			buf_addstr(&c->warn, "; ");
		va_start(ap, fmt);
		buf_vaddf(&c->warn, fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&c->mu);
}

int fc_check_dir(const struct fc *c, const char *root, struct err *e)
{
	char *real = path_resolve_future(c->dir);
	size_t n = strlen(root);
	int inside;

	inside = !strcmp(root, "/") ||
		 (real && !strncmp(real, root, n) && (real[n] == '\0' || real[n] == '/'));
	free(real);
	if (inside)
		return err_set(e, ERR_USAGE, "the pack cache directory %s is inside the "
			       "context %s", c->dir, root);
	return 0;
}

/* ---- keys ---- */

void fc_settings_hash(const struct pack_opts *o, const char *versions,
		      unsigned char out[FC_KEY_LEN])
{
	static const char magic[] = "ctxpack pack settings";
	unsigned char b[24];
	struct idx_hasher st;

	idx_hasher_init(&st);
	idx_hasher_update(&st, magic, sizeof(magic));
	fc_put32(b, PACK_FORMAT_VERSION);
	fc_put32(b + 4, (uint32_t)o->compress);
	fc_put32(b + 8, (uint32_t)pack_level(o));
	fc_put64(b + 12, (uint64_t)o->mtime);
	fc_put32(b + 20, (uint32_t)o->normalize_modes);
	idx_hasher_update(&st, b, sizeof(b));
	if (versions)
		idx_hasher_update(&st, versions, strlen(versions) + 1);
	/* an uncompressed archive for a reader that may take it for a
	 * Dockerfile starts with a pax global header when its first entry
	 * has an extended one (pack_write): another archive than the same
	 * tar without it.  Only then, so that the other keys stay as they
	 * were. */
	if (o->compress == PACK_NONE && o->stdin_safe) {
		static const char tag[] = "stdin-safe";

		idx_hasher_update(&st, tag, sizeof(tag));
	}
	/* only when set, so that the keys without one stay as they were */
	if (o->prefix && *o->prefix) {
		static const char tag[] = "prefix";

		idx_hasher_update(&st, tag, sizeof(tag));
		idx_hasher_update(&st, o->prefix, strlen(o->prefix) + 1);
	}
	idx_hasher_final(&st, out);
}

/*
 * One entry as the key sees it; -1 when its content hash is missing.  The
 * permission bits are the header's, so a change the archive does not
 * store (700 -> 755 with --normalize-modes) keeps the key.  A hard link
 * is keyed by its target path, as its header holds nothing else.
 */
static int add_entry(struct idx_hasher *st, const struct walk_entry *we, int normalize)
{
	unsigned char b[48];
	int content = we->type == WALK_REG || we->type == WALK_LNK;
	int linked = we->type == WALK_LNK || we->type == WALK_HARDLINK;

	if (content && !we->hashed)
		return -1;
	memset(b, 0, sizeof(b));
	b[0] = we->type;
	fc_put32(b + 4, walk_archive_mode(we, normalize));
	fc_put32(b + 8, we->path_len);
	fc_put32(b + 12, linked ? we->link_len : 0);
	fc_put64(b + 16, we->type == WALK_REG ? we->size : 0);
	fc_put64(b + 24, we->type == WALK_CHR || we->type == WALK_BLK ? we->rdev : 0);
	if (content)
		memcpy(b + 32, we->hash, 16);
	idx_hasher_update(st, b, sizeof(b));
	idx_hasher_update(st, we->path, we->path_len);
	if (linked && we->link_len)
		idx_hasher_update(st, we->link, we->link_len);
	return 0;
}

int fc_frame_key(const struct pack_list *l, const struct pack_frame *f,
		 const unsigned char settings[FC_KEY_LEN], unsigned char key[FC_KEY_LEN])
{
	static const char magic[] = "ctxpack frame";
	unsigned char b[32];
	struct idx_hasher st;
	size_t i, last;

	/* the entries it touches: [first.i, end.i), plus end.i when the
	 * frame ends inside its data; none for the end-of-archive frame */
	last = f->end.off ? f->end.i + 1 : f->end.i;
	if (f->first.i >= l->n)
		last = f->first.i;
	idx_hasher_init(&st);
	idx_hasher_update(&st, magic, sizeof(magic));
	idx_hasher_update(&st, settings, FC_KEY_LEN);
	fc_put64(b, f->first.off);
	fc_put64(b + 8, f->end.off);
	fc_put64(b + 16, last - f->first.i);
	fc_put64(b + 24, f->first.i >= l->n); /* the end-of-archive frame */
	idx_hasher_update(&st, b, sizeof(b));
	for (i = f->first.i; i < last && i < l->n; i++)
		if (add_entry(&st, l->v[i], l->normalize_modes))
			return -1;
	idx_hasher_final(&st, key);
	return 0;
}

int fc_archive_key(const struct pack_list *l, const unsigned char settings[FC_KEY_LEN],
		   unsigned char key[FC_KEY_LEN])
{
	static const char magic[] = "ctxpack archive";
	unsigned char b[8];
	struct idx_hasher st;
	size_t i;

	idx_hasher_init(&st);
	idx_hasher_update(&st, magic, sizeof(magic));
	idx_hasher_update(&st, settings, FC_KEY_LEN);
	fc_put64(b, l->n);
	idx_hasher_update(&st, b, sizeof(b));
	for (i = 0; i < l->n; i++)
		if (add_entry(&st, l->v[i], l->normalize_modes))
			return -1;
	idx_hasher_final(&st, key);
	return 0;
}

/* ---- frame files ---- */

char *fc_frame_path(const struct fc *c, const unsigned char key[FC_KEY_LEN])
{
	char hex[2 * FC_KEY_LEN + 1];

	hex_encode(hex, key, FC_KEY_LEN);
	return xasprintf("%s/%.2s/%s", c->frames_dir, hex, hex);
}

char *fc_archive_path(const struct fc *c, const unsigned char key[FC_KEY_LEN])
{
	char hex[2 * FC_KEY_LEN + 1];

	hex_encode(hex, key, FC_KEY_LEN);
	return xasprintf("%s/%s", c->archives_dir, hex);
}

static uint64_t hdr_check(const unsigned char *h)
{
	return idx_hash64(h, FC_FRAME_HDR - 8);
}

int fc_payload_ok(const void *p, size_t n, const unsigned char sum[16])
{
	unsigned char cs[16];


	idx_hash_bytes(p, n, cs);
	return !memcmp(cs, sum, 16);
}

void fc_frame_drop(struct fc *c, const unsigned char key[FC_KEY_LEN])
{
	char *path = fc_frame_path(c, key);

	unlink(path);
	free(path);
}

int fc_frame_open(struct fc *c, const unsigned char key[FC_KEY_LEN], uint64_t len,
		  unsigned char sum[16], uint64_t *plen, int *damaged, struct fc_stamp *stamp)
{
	unsigned char h[FC_FRAME_HDR];
	char *path = fc_frame_path(c, key);
	struct stat st;
	uint64_t n;
	int fd;

	*damaged = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0) {
		free(path);
		return -1;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size < FC_FRAME_HDR ||
	    read_full(fd, h, sizeof(h)) != (ssize_t)sizeof(h))
		goto bad;
	n = fc_get64(h + 24);
	if (memcmp(h, FRAME_MAGIC, 8) || memcmp(h + 8, key, FC_KEY_LEN) ||
	    fc_get64(h + 48) != hdr_check(h) ||
	    n != (uint64_t)st.st_size - FC_FRAME_HDR || (len != UINT64_MAX && n != len))
		goto bad;
	memcpy(sum, h + 32, 16);
	*plen = n;
	if (stamp)
		fc_stamp_of(&st, stamp);
	fc_touch(fd);
	free(path);
	return fd;
bad:
	close(fd);
	unlink(path);
	free(path);
	*damaged = 1;
	return -1;
}

int fc_frame_get(struct fc *c, const unsigned char key[FC_KEY_LEN], struct buf *out,
		 int *damaged)
{
	return fc_frame_read(c, key, out, damaged, NULL);
}

int fc_frame_read(struct fc *c, const unsigned char key[FC_KEY_LEN], struct buf *out,
		  int *damaged, struct fc_stamp *stamp)
{
	unsigned char sum[16];
	uint64_t n;
	size_t at = out->len;
	int fd = fc_frame_open(c, key, UINT64_MAX, sum, &n, damaged, stamp);

	if (fd < 0)
		return 0;
	if (n > SIZE_MAX - at - 1 || buf_grow(out, (size_t)n)) {
		close(fd);
		return 0;
	}
	if (read_full(fd, out->data + at, (size_t)n) != (ssize_t)n ||
	    !fc_payload_ok(out->data + at, (size_t)n, sum)) {
		close(fd);
		out->data[at] = '\0';
		fc_frame_drop(c, key);
		*damaged = 1;
		return 0;
	}
	close(fd);
	buf_setlen(out, at + (size_t)n);
	return 1;
}

/* Write hdr + payload to path through a temporary and a rename; stamp
 * (may be NULL) gets the file's. */
static int write_file(const char *path, const void *hdr, size_t hn, const void *p,
		      size_t n, struct fc_stamp *stamp, struct err *e)
{
	struct stat st;
	struct atomic_file af;
	struct iovec iov[2];
	size_t done = 0, total = hn + n;

	if (atomic_open(&af, path, 0644, e))
		return e->code;
	while (done < total) {
		ssize_t k;

		if (done < hn) {
			iov[0].iov_base = (char *)hdr + done;
			iov[0].iov_len = hn - done;
			iov[1].iov_base = (void *)p;
			iov[1].iov_len = n;
			k = writev(af.fd, iov, 2);
		} else {
			k = write(af.fd, (const char *)p + (done - hn), total - done);
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			err_errno(e, "cannot write %s", af.tmp);
			atomic_abort(&af);
			return e->code;
		}
		done += (size_t)k;
	}
	if (stamp) {
		if (fstat(af.fd, &st)) {
			err_errno(e, "cannot stat %s", af.tmp);
			atomic_abort(&af);
			return e->code;
		}
		fc_stamp_of(&st, stamp);
	}
	/* no fsync (see the top of the file) */
	af.nosync = 1;
	return atomic_commit(&af, e);
}

static int mkdir_for(const char *path, struct err *e)
{
	char *d = xstrdup(path), *s = strrchr(d, '/');
	int r = 0;

	if (s) {
		*s = '\0';
		if (mkdir(d, 0755) && errno != EEXIST) {
			if (errno == ENOENT)
				r = mkdir_p(d, 0755, e);
			else
				r = err_errno(e, "cannot create directory %s", d);
		}
	}
	free(d);
	return r;
}

int fc_frame_put(struct fc *c, const unsigned char key[FC_KEY_LEN], const void *p,
		 size_t n, struct err *e)
{
	return fc_frame_store(c, key, p, n, NULL, e);
}

int fc_frame_store(struct fc *c, const unsigned char key[FC_KEY_LEN], const void *p,
		   size_t n, struct fc_stamp *stamp, struct err *e)
{
	unsigned char h[FC_FRAME_HDR];
	char *path = fc_frame_path(c, key);
	int r;

	memcpy(h, FRAME_MAGIC, 8);
	memcpy(h + 8, key, FC_KEY_LEN);
	fc_put64(h + 24, n);
	idx_hash_bytes(p, n, h + 32);
	fc_put64(h + 48, hdr_check(h));
	r = mkdir_for(path, e);
	if (!r)
		r = write_file(path, h, sizeof(h), p, n, stamp, e);
	if (!r)
		__atomic_fetch_add(&c->added, (uint64_t)n + FC_FRAME_HDR, __ATOMIC_RELAXED);
	free(path);
	return r;
}

/* ---- manifests ---- */

void fc_manifest_release(struct fc_manifest *m)
{
	free(m->fkeys);
	free(m->lens);
	free(m->stamps);
	free(m->mids);
	free(m->names);
	free(m->noff);
	free(m->nlen);
	free(m->nfl);
	m->fkeys = NULL;
	m->lens = NULL;
	m->stamps = NULL;
	m->mids = NULL;
	m->names = NULL;
	m->noff = NULL;
	m->nlen = NULL;
	m->nfl = NULL;
}

int fc_manifest_write(struct fc *c, const struct fc_manifest *m, struct err *e)
{
	struct buf b;
	unsigned char h[MANIFEST_HDR], rec[MANIFEST_REC], cs[16];
	char *path = fc_archive_path(c, m->key);
	uint64_t i;
	int r;

	buf_init(&b, 0);
	memset(h, 0, sizeof(h));
	memcpy(h, MANIFEST_MAGIC, 8);
	memcpy(h + 8, m->key, FC_KEY_LEN);
	fc_put64(h + 24, m->nframes);
	fc_put64(h + 32, m->bytes);
	fc_put64(h + 40, m->entries);
	memcpy(h + 48, m->digest, strnlen(m->digest, 71));
	fc_put64(h + 120, (uint64_t)m->made_ns);
	buf_add(&b, h, sizeof(h));
	for (i = 0; i < m->nframes; i++) {
		memcpy(rec, m->fkeys[i], FC_KEY_LEN);
		fc_put64(rec + 16, m->lens[i]);
		fc_put64(rec + 24, m->stamps[i].ino);
		fc_put64(rec + 32, (uint64_t)m->stamps[i].mtime_ns);
		memcpy(rec + 40, m->mids[i], FC_SHA_MID);
		buf_add(&b, rec, sizeof(rec));
	}
	/* each frame's first entry: flags(1) length(4) path */
	for (i = 0; i < m->nframes; i++) {
		unsigned char fl[5];
		uint32_t n = m->names ? m->nlen[i] : 0;

		fl[0] = m->names ? m->nfl[i] : FC_FIRST_NONE;
		fl[1] = (unsigned char)(n >> 24);
		fl[2] = (unsigned char)(n >> 16);
		fl[3] = (unsigned char)(n >> 8);
		fl[4] = (unsigned char)n;
		buf_add(&b, fl, sizeof(fl));
		if (n)
			buf_add(&b, m->names + m->noff[i], n);
	}
	idx_hash_bytes(b.data, b.len, cs);
	buf_add(&b, cs, 16);
	r = mkdir_for(path, e);
	if (!r)
		r = write_file(path, b.data, b.len, NULL, 0, NULL, e);
	if (!r)
		__atomic_fetch_add(&c->added, (uint64_t)b.len, __ATOMIC_RELAXED);
	buf_release(&b);
	free(path);
	return r;
}

int fc_manifest_read(struct fc *c, const unsigned char key[FC_KEY_LEN],
		     struct fc_manifest *m)
{
	char *path = fc_archive_path(c, key);
	struct buf b;
	struct err e = ERR_INIT;
	const unsigned char *p;
	uint64_t i, n, sum = 0;
	int fd, ok = 0;

	memset(m, 0, sizeof(*m));
	buf_init(&b, 0);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0)
		goto out;
	fc_touch(fd);
	close(fd);
	if (buf_read_file(&b, path, MANIFEST_HDR + MANIFEST_MAX_FRAMES * MANIFEST_REC + 16,
			  &e))
		goto bad;
	p = (const unsigned char *)b.data;
	if (b.len < MANIFEST_HDR + 16 || memcmp(p, MANIFEST_MAGIC, 8) ||
	    memcmp(p + 8, key, FC_KEY_LEN))
		goto bad;
	n = fc_get64(p + 24);
	if (n == 0 || n > MANIFEST_MAX_FRAMES ||
	    b.len < MANIFEST_HDR + n * (MANIFEST_REC + 5) + 16 ||
	    !fc_payload_ok(p, b.len - 16, p + b.len - 16) || p[48 + 71] != '\0' ||
	    memcmp(p + 48, "sha256:", 7) || strlen((const char *)p + 48) != 71)
		goto bad;
	memcpy(m->key, key, FC_KEY_LEN);
	m->nframes = n;
	m->bytes = fc_get64(p + 32);
	m->entries = fc_get64(p + 40);
	memcpy(m->digest, p + 48, 72);
	m->made_ns = (int64_t)fc_get64(p + 120);
	m->fkeys = xreallocarray(NULL, n, sizeof(*m->fkeys));
	m->lens = xreallocarray(NULL, n, sizeof(*m->lens));
	m->stamps = xreallocarray(NULL, n, sizeof(*m->stamps));
	m->mids = xreallocarray(NULL, n, sizeof(*m->mids));
	for (i = 0; i < n; i++) {
		const unsigned char *r = p + MANIFEST_HDR + i * MANIFEST_REC;

		memcpy(m->fkeys[i], r, FC_KEY_LEN);
		m->lens[i] = fc_get64(r + 16);
		m->stamps[i].ino = fc_get64(r + 24);
		m->stamps[i].mtime_ns = (int64_t)fc_get64(r + 32);
		memcpy(m->mids[i], r + 40, FC_SHA_MID);
		if (m->lens[i] > UINT64_MAX - sum)
			goto bad;
		sum += m->lens[i];
	}
	if (sum != m->bytes)
		goto bad;
	{
		size_t at = MANIFEST_HDR + (size_t)n * MANIFEST_REC, end = b.len - 16;

		m->names = xmalloc(end - at + 1);
		m->noff = xreallocarray(NULL, n, sizeof(*m->noff));
		m->nlen = xreallocarray(NULL, n, sizeof(*m->nlen));
		m->nfl = xmalloc(n);
		for (i = 0, sum = 0; i < n; i++) {
			uint32_t l;

			if (end - at < 5)
				goto bad;
			m->nfl[i] = p[at];
			l = (uint32_t)p[at + 1] << 24 | (uint32_t)p[at + 2] << 16 |
			    (uint32_t)p[at + 3] << 8 | p[at + 4];
			at += 5;
			if (end - at < l)
				goto bad;
			memcpy(m->names + sum, p + at, l);
			m->noff[i] = sum;
			m->nlen[i] = l;
			sum += l;
			at += l;
		}
		if (at != end)
			goto bad;
	}
	ok = 1;
	goto out;
bad:
	fc_manifest_release(m);
	unlink(path);
out:
	buf_release(&b);
	free(path);
	return ok;
}

/* ---- the last archive of a context ---- */

void fc_last_key(const char *root, const unsigned char settings[FC_KEY_LEN],
		 unsigned char lk[FC_KEY_LEN])
{
	static const char magic[] = "ctxpack last archive";
	struct idx_hasher st;

	idx_hasher_init(&st);
	idx_hasher_update(&st, magic, sizeof(magic));
	idx_hasher_update(&st, settings, FC_KEY_LEN);
	idx_hasher_update(&st, root, strlen(root) + 1);
	idx_hasher_final(&st, lk);
}

static char *last_path(const struct fc *c, const unsigned char lk[FC_KEY_LEN])
{
	char hex[2 * FC_KEY_LEN + 1];

	hex_encode(hex, lk, FC_KEY_LEN);
	return xasprintf("%s/last-%s", c->archives_dir, hex);
}

int fc_last_read(struct fc *c, const unsigned char lk[FC_KEY_LEN],
		 unsigned char akey[FC_KEY_LEN])
{
	char *path = last_path(c, lk);
	unsigned char b[LAST_LEN + 1];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY), r = -1;

	free(path);
	if (fd < 0)
		return -1;
	if (read_full(fd, b, sizeof(b)) == LAST_LEN && !memcmp(b, LAST_MAGIC, 8) &&
	    fc_get64(b + 24) == idx_hash64(b, 24)) {
		memcpy(akey, b + 8, FC_KEY_LEN);
		fc_touch(fd);
		r = 0;
	}
	close(fd);
	return r;
}

void fc_last_write(struct fc *c, const unsigned char lk[FC_KEY_LEN],
		   const unsigned char akey[FC_KEY_LEN])
{
	char *path = last_path(c, lk);
	unsigned char b[LAST_LEN], cur[FC_KEY_LEN];
	struct err e = ERR_INIT;

	if (fc_last_read(c, lk, cur) || memcmp(cur, akey, FC_KEY_LEN)) {
		memcpy(b, LAST_MAGIC, 8);
		memcpy(b + 8, akey, FC_KEY_LEN);
		fc_put64(b + 24, idx_hash64(b, 24));
		if (!mkdir_for(path, &e))
			write_file(path, b, sizeof(b), NULL, 0, NULL, &e);
	}
	free(path);
}

/* ---- the size bound ---- */

struct item {
	char *path;
	int64_t used_ns;
	uint64_t size;
};

struct items {
	struct item *v;
	size_t n, alloc;
	uint64_t total;
};

static int is_hex(const char *s, size_t n)
{
	size_t i;

	if (strlen(s) != n)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

struct scan {
	struct items *it;
	const char *dir;
	int64_t now;
};

/* One file of the store: an item, or a stale temporary to remove. */
static void scan_one(void *ctx, int dfd, const char *name)
{
	struct scan *sc = ctx;
	struct items *it = sc->it;
	struct stat st;
	int64_t m;

	if (name[0] == '.' || fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) ||
	    !S_ISREG(st.st_mode))
		return;
	m = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	if (strstr(name, ".tmp.")) {
		if (sc->now - m > (int64_t)FC_TMP_STALE_S * 1000000000)
			unlinkat(dfd, name, 0);
		return;
	}
	if (!is_hex(name, 2 * FC_KEY_LEN) &&
	    !(!strncmp(name, "last-", 5) && is_hex(name + 5, 2 * FC_KEY_LEN)))
		return;
	if (it->n == it->alloc) {
		it->alloc = it->alloc ? 2 * it->alloc : 256;
		it->v = xreallocarray(it->v, it->alloc, sizeof(*it->v));
	}
	it->v[it->n].path = xasprintf("%s/%s", sc->dir, name);
	/* the LRU clock: atime, set on every use (fc_touch) */
	it->v[it->n].used_ns = (int64_t)st.st_atim.tv_sec * 1000000000 + st.st_atim.tv_nsec;
	it->v[it->n].size = (uint64_t)st.st_blocks * 512 > (uint64_t)st.st_size ?
			    (uint64_t)st.st_blocks * 512 : (uint64_t)st.st_size;
	it->total += it->v[it->n].size;
	it->n++;
}

/* Add the store's files in dir; remove stale temporaries. */
static void scan_dir(const char *dir, struct items *it, int64_t now)
{
	struct scan sc = {it, dir, now};
	struct err e = ERR_INIT;
	char **names;
	size_t n, i;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd < 0)
		return;
	if (!dir_names(dir, 1, &names, &n, &e)) {
		for (i = 0; i < n; i++)
			scan_one(&sc, dfd, names[i]);
		dir_names_free(names, n);
	}
	close(dfd);
}

static int item_cmp(const void *a, const void *b)
{
	const struct item *x = a, *y = b;

	if (x->used_ns != y->used_ns)
		return x->used_ns < y->used_ns ? -1 : 1;
	return strcmp(x->path, y->path);
}

static void write_usage(struct fc *c, uint64_t total)
{
	char *path = xasprintf("%s/usage", c->frames_dir);
	char s[32];
	struct err e = ERR_INIT;
	int n = snprintf(s, sizeof(s), "%llu\n", (unsigned long long)total);

	if (!mkdir_for(path, &e))
		write_file(path, s, (size_t)n, NULL, 0, NULL, &e);
	free(path);
}

/* The estimate, or -1 when there is none. */
static int read_usage(struct fc *c, uint64_t *total)
{
	char *path = xasprintf("%s/usage", c->frames_dir);
	struct buf b;
	struct err e = ERR_INIT;
	int r = -1;

	buf_init(&b, 64);
	if (!buf_read_file(&b, path, 64, &e) && b.len > 1 && b.data[b.len - 1] == '\n') {
		b.data[b.len - 1] = '\0';
		if (!parse_u64(b.data, total))
			r = 0;
	}
	buf_release(&b);
	free(path);
	return r;
}

uint64_t fc_evict(struct fc *c, uint64_t max, struct fc_stats *st)
{
	struct items it = {NULL, 0, 0, 0};
	int64_t now = time_real_ns();
	size_t i;
	int k;

	/* frames/00 .. frames/ff */
	for (k = 0; k < 256; k++) {
		char *sub = xasprintf("%s/%02x", c->frames_dir, k);

		scan_dir(sub, &it, now);
		free(sub);
	}
	scan_dir(c->archives_dir, &it, now);
	qsort(it.v, it.n, sizeof(*it.v), item_cmp);
	for (i = 0; i < it.n && it.total > max; i++) {
		if (unlink(it.v[i].path) && errno != ENOENT)
			continue;
		it.total -= it.v[i].size;
		if (st) {
			st->evicted++;
			st->evicted_bytes += it.v[i].size;
		}
	}
	for (i = 0; i < it.n; i++)
		free(it.v[i].path);
	free(it.v);
	write_usage(c, it.total);
	if (st)
		st->store_bytes = it.total;
	return it.total;
}

void fc_maintain(struct fc *c, struct fc_stats *st)
{
	uint64_t added, usage;

	if (!c)
		return;
	added = __atomic_exchange_n(&c->added, 0, __ATOMIC_RELAXED);
	if (!added)
		return;
	/* Other processes add to the estimate too; a lost update only
	 * delays a scan until the next pack that stores something. */
	if (read_usage(c, &usage) || usage + added > c->max) {
		fc_evict(c, c->max - c->max / 10, st);
		return;
	}
	write_usage(c, usage + added);
}
