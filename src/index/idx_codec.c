/*
 * The index's pure parts: key and value encoding, the reuse rules and the
 * context digest.  No I/O, so the unit tests can pin every byte.
 */
#include "ctxpack/index.h"
#include "idx_internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

void idx_hash_bytes(const void *p, size_t n, unsigned char out[16])
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, XXH3_128bits(p, n));
	memcpy(out, c.digest, 16);
}

void idx_entry_archived(struct walk_entry *we, const void *p, size_t n)
{
	idx_hash_bytes(p, n, we->hash);
	we->hashed = WALK_HASH_ARCHIVED;
}

void idx_entry_confirmed(struct walk_entry *we)
{
	we->hashed = WALK_HASH_ARCHIVED;
}

void idx_entry_link(struct walk_entry *we)
{
	idx_hash_bytes(we->link ? we->link : "", we->link_len, we->hash);
	we->hashed = WALK_HASH_KNOWN;
}

uint64_t idx_hash64(const void *p, size_t n)
{
	return XXH3_64bits(p, n);
}

_Static_assert(sizeof(XXH3_state_t) <= sizeof(((struct idx_hasher *)0)->state),
	       "struct idx_hasher holds an XXH3_state_t");
_Static_assert(_Alignof(XXH3_state_t) <= 64, "and its alignment");

void idx_hasher_init(struct idx_hasher *h)
{
	XXH3_128bits_reset((XXH3_state_t *)(void *)h->state);
}

void idx_hasher_update(struct idx_hasher *h, const void *p, size_t n)
{
	XXH3_128bits_update((XXH3_state_t *)(void *)h->state, p, n);
}

void idx_hasher_final(struct idx_hasher *h, unsigned char out[16])
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, XXH3_128bits_digest((XXH3_state_t *)(void *)h->state));
	memcpy(out, c.digest, 16);
}

size_t idx_key_prefix(unsigned char *out, const char *root, size_t rootlen)
{
	if (rootlen > IDX_ROOT_MAX) {
		unsigned char h[16];
		char hex[33];

		idx_hash_bytes(root, rootlen, h);
		hex_encode(hex, h, 16);
		out[0] = '#';
		memcpy(out + 1, hex, 32);
		out[33] = '\0';
		return 34;
	}
	memcpy(out, root, rootlen);
	out[rootlen] = '\0';
	return rootlen + 1;
}

size_t idx_key_encode(unsigned char *out, const char *root, size_t rootlen,
		      const char *path, size_t pathlen)
{
	unsigned char pre[IDX_ROOT_MAX + 1 + 33];
	size_t np = idx_key_prefix(pre, root, rootlen);
	unsigned char *k = out, *tmp = NULL;
	size_t i;

	if (np + pathlen > IDX_KEY_MAX)
		k = tmp = xmalloc(np + pathlen);
	memcpy(k, pre, np);
	for (i = 0; i < pathlen; i++)
		k[np + i] = path[i] == '/' ? '\0' : (unsigned char)path[i];
	if (!tmp)
		return np + pathlen;
	/* Too long for LMDB: keep a prefix (the order is kept up to it) and
	 * make it unique with the hash of the whole key. */
	memcpy(out, tmp, IDX_KEY_MAX - 16);
	idx_hash_bytes(tmp, np + pathlen, out + IDX_KEY_MAX - 16);
	free(tmp);
	return IDX_KEY_MAX;
}

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static void put64(unsigned char *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static uint32_t val_check(const unsigned char *key, size_t klen,
			  const unsigned char *val)
{
	XXH3_state_t st;

	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, key, klen);
	XXH3_64bits_update(&st, val + 4, IDX_VAL_LEN - 4);
	return (uint32_t)XXH3_64bits_digest(&st);
}

void idx_val_encode(unsigned char out[IDX_VAL_LEN], const unsigned char *key,
		    size_t klen, const struct idx_rec *r)
{
	put32(out + 4, r->mode);
	put64(out + 8, r->dev);
	put64(out + 16, r->ino);
	put64(out + 24, r->size);
	put64(out + 32, (uint64_t)r->mtime_ns);
	put64(out + 40, (uint64_t)r->ctime_ns);
	put64(out + 48, (uint64_t)r->written_ns);
	memcpy(out + 56, r->hash, 16);
	put32(out, val_check(key, klen, out));
}

int idx_val_decode(struct idx_rec *r, const unsigned char *key, size_t klen,
		   const void *val, size_t vlen)
{
	const unsigned char *v = val;

	if (vlen != IDX_VAL_LEN || get32(v) != val_check(key, klen, v))
		return -1;
	r->mode = get32(v + 4);
	r->dev = get64(v + 8);
	r->ino = get64(v + 16);
	r->size = get64(v + 24);
	r->mtime_ns = (int64_t)get64(v + 32);
	r->ctime_ns = (int64_t)get64(v + 40);
	r->written_ns = (int64_t)get64(v + 48);
	memcpy(r->hash, v + 56, 16);
	return 0;
}

int idx_rec_matches(const struct idx_rec *r, const struct walk_entry *we)
{
	return r->size == we->size && r->mtime_ns == we->mtime_ns &&
	       r->ctime_ns == we->ctime_ns && r->ino == we->ino &&
	       r->mode == we->mode;
}

static int64_t racy_window(int64_t t)
{
	return t % 1000000000 == 0 ? IDX_RACY_COARSE_NS : IDX_RACY_FINE_NS;
}

int idx_rec_racy(const struct idx_rec *r)
{
	return r->mtime_ns >= r->written_ns - racy_window(r->mtime_ns) ||
	       r->ctime_ns >= r->written_ns - racy_window(r->ctime_ns);
}

/* The digest's serialization: fixed-width little-endian fields and
 * length-prefixed strings, so no two entry lists give the same bytes. */
struct dbuf {
	XXH3_state_t st;
	unsigned char b[8192];
	size_t n;
};

static void d_flush(struct dbuf *d)
{
	XXH3_128bits_update(&d->st, d->b, d->n);
	d->n = 0;
}

static void d_add(struct dbuf *d, const void *p, size_t n)
{
	if (d->n + n > sizeof(d->b)) {
		d_flush(d);
		if (n > sizeof(d->b)) {
			XXH3_128bits_update(&d->st, p, n);
			return;
		}
	}
	memcpy(d->b + d->n, p, n);
	d->n += n;
}

static void d_u32(struct dbuf *d, uint32_t v)
{
	unsigned char t[4];

	put32(t, v);
	d_add(d, t, 4);
}

static void d_u64(struct dbuf *d, uint64_t v)
{
	unsigned char t[8];

	put64(t, v);
	d_add(d, t, 8);
}

static int cmp_ent(const void *a, const void *b)
{
	const struct walk_entry *x = *(const struct walk_entry *const *)a;
	const struct walk_entry *y = *(const struct walk_entry *const *)b;

	return walk_path_cmp(x->path, x->path_len, y->path, y->path_len);
}

static void digest_entry(struct dbuf *d, const struct walk_entry *we, int normalize)
{
	static const unsigned char zero[16];

	d_u32(d, we->type);
	d_u32(d, walk_archive_mode(we, normalize));
	d_u32(d, we->path_len);
	d_add(d, we->path, we->path_len);
	d_u64(d, we->type == WALK_REG ? we->size : 0);
	if (we->type == WALK_LNK || we->type == WALK_HARDLINK) {
		d_u32(d, we->link_len);
		d_add(d, we->link, we->link_len);
	}
	if (we->type == WALK_CHR || we->type == WALK_BLK) {
		d_u64(d, major((dev_t)we->rdev));
		d_u64(d, minor((dev_t)we->rdev));
	}
	if (we->type == WALK_REG)
		d_add(d, we->hashed ? we->hash : zero, 16);
}

void idx_context_hash(const struct walk_result *w, unsigned char out[16])
{
	static const char magic[] = "ctxpack context digest";
	struct dbuf *d = xmalloc(sizeof(*d));
	const struct walk_entry **ord = NULL;
	size_t i, sorted = 1;
	XXH128_canonical_t c;

	XXH3_128bits_reset(&d->st);
	d->n = 0;
	d_add(d, magic, sizeof(magic));
	d_u32(d, IDX_DIGEST_VERSION);

	for (i = 1; i < w->n && sorted; i++)
		if (walk_path_cmp(w->v[i - 1].path, w->v[i - 1].path_len,
				 w->v[i].path, w->v[i].path_len) > 0)
			sorted = 0;
	if (!sorted) {
		/* Not from walk_run (which sorts): sort pointers. */
		ord = xreallocarray(NULL, w->n, sizeof(*ord));
		for (i = 0; i < w->n; i++)
			ord[i] = &w->v[i];
		qsort(ord, w->n, sizeof(*ord), cmp_ent);
	}
	for (i = 0; i < w->n; i++) {
		const struct walk_entry *we = ord ? ord[i] : &w->v[i];

		if (!we->excluded)
			digest_entry(d, we, (w->flags & WALK_NORMALIZE_MODES) != 0);
	}
	d_flush(d);
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(&d->st));
	memcpy(out, c.digest, 16);
	free(ord);
	free(d);
}

void idx_context_digest(const struct walk_result *w, char out[IDX_DIGEST_LEN])
{
	unsigned char h[16];

	idx_context_hash(w, h);
	memcpy(out, "xxh128:", 7);
	hex_encode(out + 7, h, 16);
	assert(strlen(out) == IDX_DIGEST_LEN - 1);
}
