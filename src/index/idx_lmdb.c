/*
 * Checks of LMDB's data file, for the content index (idx_internal.h).
 *
 * LMDB trusts its file: it takes the page size and the roots from a meta
 * page, and page numbers, node offsets and sizes from the pages, and only
 * bounds page numbers by the last page the meta names.  A truncated file
 * makes it read past the end of the map's file (SIGBUS), a garbled page
 * can make it follow a NULL pointer, assert, or, in a write transaction,
 * copy a node past the end of a page buffer.  So the index checks what
 * LMDB is about to trust: the meta pages before LMDB opens the file, the
 * free tree and the main tree's branch pages at open, and before each
 * write the leaves it will touch (docs/index.md, "A damaged index").
 * The format facts below are LMDB 0.9's (mdb.c: MDB_page, MDB_node,
 * MDB_meta, MDB_db); the code is ours.  Pages come from a source: the
 * file (pread into a buffer per tree level), or memory in the tests.
 */
#include "idx_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Page header: pgno u64, pad u16, flags u16, lower u16, upper u16 (an
 * overflow page: a u32 page count instead of lower/upper); then the u16
 * node offsets.  Node: lo u16, hi u16, flags u16, ksize u16, key, data. */
#define PAGEHDR 16
#define NODEHDR 8
#define P_BRANCH 0x01
#define P_LEAF 0x02
#define P_OVERFLOW 0x04
#define P_META 0x08
#define F_BIGDATA 0x01
#define LM_MAGIC 0xBEEFC0DEu
#define LM_VERSION 1
#define DB_INTEGERKEY 0x08     /* the free tree's keys are u64 commit ids */
#define FREE_DBI 0
#define MAIN_DBI 1
#define SLACK_PAGES 32768      /* see idx_lm_check */

_Static_assert(sizeof(size_t) == 8, "LMDB's 64-bit file format");

static uint16_t rd16(const unsigned char *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

static uint32_t rd32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t rd64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

void idx_lm_meta_decode(const unsigned char *p, struct idx_lm_meta *m)
{
	const unsigned char *q = p + PAGEHDR;
	int i;

	m->pgno = rd64(p);
	m->pflags = rd16(p + 10);
	m->magic = rd32(q);
	m->version = rd32(q + 4);
	m->address = rd64(q + 8);
	/* q + 16: the map size, which LMDB takes from us, not the file */
	for (i = 0; i < 2; i++) {
		const unsigned char *d = q + 24 + 48 * i;
		struct idx_lm_db *db = &m->db[i];

		db->pad = rd32(d);
		db->flags = rd16(d + 4);
		db->depth = rd16(d + 6);
		db->branch = rd64(d + 8);
		db->leaf = rd64(d + 16);
		db->overflow = rd64(d + 24);
		db->entries = rd64(d + 32);
		db->root = rd64(d + 40);
	}
	m->last_pg = rd64(q + 120);
	m->txnid = rd64(q + 128);
}

static int fail(char *why, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, n, fmt, ap);
	va_end(ap);
	return -1;
}

static int db_check(const struct idx_lm_meta *m, int k, int d, char *why, size_t n)
{
	const struct idx_lm_db *db = &m->db[d];
	const char *name = d == FREE_DBI ? "free" : "main";

	if (db->root == IDX_LM_NONE) {
		if (db->depth || db->branch || db->leaf || db->overflow || db->entries)
			return fail(why, n, "meta page %d: an empty %s tree with pages", k, name);
		return 0;
	}
	if (db->root < 2 || db->root > m->last_pg)
		return fail(why, n, "meta page %d: %s tree root %llu out of range", k, name,
			    (unsigned long long)db->root);
	if (db->depth < 1 || db->depth > IDX_LM_DEPTH_MAX)
		return fail(why, n, "meta page %d: %s tree depth %u", k, name, db->depth);
	return 0;
}

static int meta_page(const struct idx_lm_meta *x, int k, char *why, size_t n)
{
	if (x->pgno != (uint64_t)k || x->pflags != P_META || x->magic != LM_MAGIC)
		return fail(why, n, "meta page %d is not one", k);
	if (x->version != LM_VERSION)
		return fail(why, n, "meta page %d: LMDB file version %u", k, x->version);
	return 0;
}

unsigned idx_lm_page_size(const struct idx_lm_meta *m0, char *why, size_t n)
{
	uint32_t psize = m0->db[FREE_DBI].pad;

	if (meta_page(m0, 0, why, n))
		return 0;
	if (psize < 4096 || psize > 32768 || (psize & (psize - 1))) {
		fail(why, n, "meta page 0: page size %u", psize);
		return 0;
	}
	return psize;
}

int idx_lm_metas_check(const struct idx_lm_meta m[2], uint64_t fsize, char *why,
		       size_t n)
{
	uint32_t psize = idx_lm_page_size(&m[0], why, n);
	uint64_t t0 = m[0].txnid, t1 = m[1].txnid;
	int k;

	if (!psize)
		return -1;
	for (k = 0; k < 2; k++) {
		const struct idx_lm_meta *x = &m[k];

		if (meta_page(x, k, why, n))
			return -1;
		if (x->db[FREE_DBI].pad != psize)
			return fail(why, n, "meta page %d: page size %u, not %u", k,
				    x->db[FREE_DBI].pad, psize);
		if (x->db[FREE_DBI].flags != DB_INTEGERKEY || x->db[MAIN_DBI].flags ||
		    x->db[MAIN_DBI].pad || x->address)
			return fail(why, n, "meta page %d: flags", k);
		if (x->last_pg < 1)
			return fail(why, n, "meta page %d: last page %llu", k,
				    (unsigned long long)x->last_pg);
		if (db_check(x, k, FREE_DBI, why, n) || db_check(x, k, MAIN_DBI, why, n))
			return -1;
	}
	if (fsize / psize < 2)
		return fail(why, n, "%llu bytes: shorter than its two meta pages",
			    (unsigned long long)fsize);
	/* commit N writes meta N % 2: ids of each one's parity, one apart
	 * (a new file has 0 in both) */
	if (!(t0 == 0 && t1 == 0) &&
	    ((t0 & 1) || !(t1 & 1) || (t0 > t1 ? t0 - t1 : t1 - t0) != 1))
		return fail(why, n, "meta pages: commits %llu and %llu",
			    (unsigned long long)t0, (unsigned long long)t1);
	return t1 > t0;
}

/* ---- the trees ---- */

struct chk {
	const struct idx_lm_src *src;
	uint64_t npages;        /* whole pages in the file */
	uint64_t last;          /* the snapshot's last page */
	unsigned psize;
	int mode;
	const struct idx_lm_key *keys; /* IDX_LM_WRITE: sorted */
	size_t nkeys;
	unsigned char *seen;    /* a bit per page 0..last */
	uint64_t nseen;
	unsigned char *need;    /* IDX_LM_WRITE: per child of a branch page */
	/* the tree being walked */
	int dbi;
	int leaves;             /* read all its leaves */
	unsigned depth;
	uint64_t branch, leaf, overflow, entries;
	char *why;
	size_t n;
};

static int key_cmp(const struct chk *c, struct idx_lm_key a, struct idx_lm_key b)
{
	int r;

	if (c->dbi == FREE_DBI) {
		/* u64 ids, host order (the caller checked the sizes) */
		uint64_t x = rd64(a.p), y = rd64(b.p);

		return (x > y) - (x < y);
	}
	r = memcmp(a.p, b.p, a.n < b.n ? a.n : b.n);
	return r ? r : (a.n > b.n) - (a.n < b.n);
}

/* Mark npg pages from pgno as used, checking they exist in the file
 * (need_file) or at least in the snapshot. */
static int take(struct chk *c, uint64_t pgno, uint64_t npg, int need_file, const char *what)
{
	uint64_t i;

	if (pgno < 2 || npg > c->last || pgno > c->last - npg + 1)
		return fail(c->why, c->n, "%s page %llu out of range (last %llu)", what,
			    (unsigned long long)pgno, (unsigned long long)c->last);
	if (need_file && (npg > c->npages || pgno > c->npages - npg))
		return fail(c->why, c->n, "%s page %llu lies past the end of the file "
					  "(%llu pages: truncated)", what,
			    (unsigned long long)pgno, (unsigned long long)c->npages);
	for (i = pgno; i < pgno + npg; i++) {
		if (c->seen[i >> 3] & (1u << (i & 7)))
			return fail(c->why, c->n, "page %llu is used twice",
				    (unsigned long long)i);
		c->seen[i >> 3] |= (unsigned char)(1u << (i & 7));
		c->nseen++;
	}
	return 0;
}

static const unsigned char *get(struct chk *c, uint64_t pgno, uint64_t npg, unsigned slot)
{
	const unsigned char *p = c->src->read(c->src->ctx, pgno, npg, slot);

	if (!p)
		fail(c->why, c->n, "cannot read page %llu", (unsigned long long)pgno);
	return p;
}

/* A free-list record: u64 count, then that many page numbers. */
static int free_record(struct chk *c, uint64_t pgno, const unsigned char *d, uint64_t dsz)
{
	uint64_t cnt, i;

	if (dsz < 8 || dsz % 8)
		return fail(c->why, c->n, "page %llu: a free-list record of %llu bytes",
			    (unsigned long long)pgno, (unsigned long long)dsz);
	cnt = rd64(d);
	if (cnt != dsz / 8 - 1)
		return fail(c->why, c->n, "page %llu: a free-list record of %llu bytes "
					  "counts %llu pages", (unsigned long long)pgno,
			    (unsigned long long)dsz, (unsigned long long)cnt);
	/* (pages at the end of the file may be free and not written) */
	for (i = 1; i <= cnt; i++)
		if (take(c, rd64(d + 8 * i), 1, 0, "free"))
			return -1;
	return 0;
}

/* The data of a free-tree node kept on overflow pages. */
static int overflow(struct chk *c, uint64_t pgno, const unsigned char *node, size_t ksize,
		    uint64_t dsz)
{
	uint64_t opg = rd64(node + NODEHDR + ksize), npg;
	const unsigned char *o;

	if (opg < 2 || opg >= c->npages || opg > c->last)
		return fail(c->why, c->n, "page %llu: overflow page %llu out of range",
			    (unsigned long long)pgno, (unsigned long long)opg);
	if (!(o = get(c, opg, 1, 0)))
		return -1;
	npg = rd32(o + 12);
	if (rd64(o) != opg || rd16(o + 10) != P_OVERFLOW || npg < 1 ||
	    dsz > npg * c->psize - PAGEHDR)
		return fail(c->why, c->n, "overflow page %llu: a bad header",
			    (unsigned long long)opg);
	if (take(c, opg, npg, 1, "overflow") || !(o = get(c, opg, npg, 0)))
		return -1;
	c->overflow += npg;
	return free_record(c, pgno, o + PAGEHDR, dsz);
}

static int walk(struct chk *c, uint64_t pgno, unsigned level, struct idx_lm_key lo,
		struct idx_lm_key hi);

/* The header and node table of a branch or leaf page. */
static int page_nodes(struct chk *c, const unsigned char *p, uint64_t pgno, int leaf,
		      unsigned *nkeys)
{
	unsigned lower = rd16(p + 12), upper = rd16(p + 14), psize = c->psize;
	unsigned nk, i;
	uint64_t used = 0;

	if (lower < PAGEHDR || lower > upper || upper > psize || (lower & 1))
		return fail(c->why, c->n, "page %llu: free space %u..%u",
			    (unsigned long long)pgno, lower, upper);
	nk = (lower - PAGEHDR) / 2;
	if (!nk)
		return fail(c->why, c->n, "page %llu: no nodes", (unsigned long long)pgno);
	for (i = 0; i < nk; i++) {
		unsigned ptr = rd16(p + PAGEHDR + 2 * i);
		const unsigned char *node = p + ptr;
		uint64_t size;

		if (ptr < upper || ptr + NODEHDR > psize || (ptr & 1))
			return fail(c->why, c->n, "page %llu: node %u at %u",
				    (unsigned long long)pgno, i, ptr);
		size = NODEHDR + (uint64_t)rd16(node + 6);
		if (leaf)
			size += (rd16(node + 4) & F_BIGDATA) ? 8 :
				rd16(node) | (uint64_t)rd16(node + 2) << 16;
		if (ptr + size > psize)
			return fail(c->why, c->n, "page %llu: node %u of %llu bytes at %u",
				    (unsigned long long)pgno, i, (unsigned long long)size,
				    ptr);
		used += (size + 1) & ~(uint64_t)1;
	}
	/* nodes are kept packed from the end of the page */
	if (used != psize - upper)
		return fail(c->why, c->n, "page %llu: its nodes fill %llu bytes, not %u",
			    (unsigned long long)pgno, (unsigned long long)used,
			    psize - upper);
	*nkeys = nk;
	return 0;
}

static struct idx_lm_key node_key(const unsigned char *p, unsigned i)
{
	const unsigned char *node = p + rd16(p + PAGEHDR + 2 * i);
	struct idx_lm_key k = {node + NODEHDR, rd16(node + 6)};

	return k;
}

/* k within [lo, hi) (a NULL bound: none) */
static int in_bounds(const struct chk *c, struct idx_lm_key k, struct idx_lm_key lo,
		     struct idx_lm_key hi)
{
	return (!lo.p || key_cmp(c, k, lo) >= 0) && (!hi.p || key_cmp(c, k, hi) < 0);
}

static int leaf_page(struct chk *c, const unsigned char *p, uint64_t pgno, unsigned nk,
		     struct idx_lm_key lo, struct idx_lm_key hi)
{
	unsigned i;

	c->entries += nk;
	for (i = 0; i < nk; i++) {
		const unsigned char *node = p + rd16(p + PAGEHDR + 2 * i);
		unsigned nflags = rd16(node + 4);
		uint64_t dsz = rd16(node) | (uint64_t)rd16(node + 2) << 16;
		struct idx_lm_key k = node_key(p, i);

		if (c->dbi == FREE_DBI ? (nflags & ~F_BIGDATA) != 0 : nflags != 0)
			return fail(c->why, c->n, "page %llu: node %u flags %#x",
				    (unsigned long long)pgno, i, nflags);
		if (c->dbi == FREE_DBI && k.n != 8)
			return fail(c->why, c->n, "page %llu: a free-list key of %zu bytes",
				    (unsigned long long)pgno, k.n);
		/* the bounds from the parents order the leaves among
		 * themselves */
		if (!in_bounds(c, k, lo, hi) ||
		    (i && key_cmp(c, node_key(p, i - 1), k) >= 0))
			return fail(c->why, c->n, "page %llu: key %u out of order",
				    (unsigned long long)pgno, i);
		if (c->dbi != FREE_DBI)
			continue;
		if ((nflags & F_BIGDATA) ? overflow(c, pgno, node, k.n, dsz) :
		    free_record(c, pgno, node + NODEHDR + k.n, dsz))
			return -1;
	}
	return 0;
}

/* IDX_LM_WRITE: is one of the keys in [lo, hi)? */
static int key_in(const struct chk *c, struct idx_lm_key lo, struct idx_lm_key hi)
{
	size_t a = 0, b = c->nkeys;

	/* the first key >= lo */
	while (lo.p && a < b) {
		size_t mid = a + (b - a) / 2;

		if (key_cmp(c, c->keys[mid], lo) < 0)
			a = mid + 1;
		else
			b = mid;
	}
	return a < c->nkeys && (!hi.p || key_cmp(c, c->keys[a], hi) < 0);
}

static int branch_page(struct chk *c, const unsigned char *p, uint64_t pgno, unsigned nk,
		       unsigned level, struct idx_lm_key lo, struct idx_lm_key hi)
{
	int bottom = level + 1 == c->depth;
	unsigned i;

	/* node 0's key is not used: its child holds what sorts below key 1 */
	for (i = 1; i < nk; i++) {
		struct idx_lm_key k = node_key(p, i);

		if ((c->dbi == FREE_DBI && k.n != 8) || !in_bounds(c, k, lo, hi) ||
		    (i > 1 && key_cmp(c, node_key(p, i - 1), k) >= 0))
			return fail(c->why, c->n, "page %llu: key %u out of order",
				    (unsigned long long)pgno, i);
	}
	/* a write reads the leaves its keys lead to, and their neighbours
	 * (which a delete may merge it with) */
	if (bottom && !c->leaves && c->mode == IDX_LM_WRITE)
		for (i = 0; i < nk; i++)
			c->need[i] = (unsigned char)key_in(c, i ? node_key(p, i) : lo,
							   i + 1 < nk ? node_key(p, i + 1) : hi);
	for (i = 0; i < nk; i++) {
		const unsigned char *node = p + rd16(p + PAGEHDR + 2 * i);
		uint64_t child = rd16(node) | (uint64_t)rd16(node + 2) << 16 |
				 (uint64_t)rd16(node + 4) << 32;
		struct idx_lm_key clo = i ? node_key(p, i) : lo;
		struct idx_lm_key chi = i + 1 < nk ? node_key(p, i + 1) : hi;

		if (bottom && !c->leaves &&
		    !(c->mode == IDX_LM_WRITE &&
		      (c->need[i] || (i && c->need[i - 1]) || (i + 1 < nk && c->need[i + 1])))) {
			/* a leaf left unread: it must exist, once */
			if (take(c, child, 1, 1, "leaf"))
				return -1;
			c->leaf++;
			continue;
		}
		if (walk(c, child, level + 1, clo, chi))
			return -1;
	}
	return 0;
}

static int walk(struct chk *c, uint64_t pgno, unsigned level, struct idx_lm_key lo,
		struct idx_lm_key hi)
{
	const unsigned char *p;
	unsigned flags, nk = 0;

	/* a slot per level: the parents' pages (and the bounds in them)
	 * stay while their children are read */
	if (take(c, pgno, 1, 1, "tree") || !(p = get(c, pgno, 1, level)))
		return -1;
	flags = rd16(p + 10);
	if (rd64(p) != pgno)
		return fail(c->why, c->n, "page %llu holds page number %llu",
			    (unsigned long long)pgno, (unsigned long long)rd64(p));
	if (flags == P_BRANCH ? level >= c->depth : flags == P_LEAF ? level != c->depth : 1)
		return fail(c->why, c->n, "page %llu: flags %#x at depth %u of %u",
			    (unsigned long long)pgno, flags, level, c->depth);
	if (page_nodes(c, p, pgno, flags == P_LEAF, &nk))
		return -1;
	if (flags == P_LEAF) {
		c->leaf++;
		return leaf_page(c, p, pgno, nk, lo, hi);
	}
	c->branch++;
	return branch_page(c, p, pgno, nk, level, lo, hi);
}

static int tree(struct chk *c, const struct idx_lm_db *db, int dbi)
{
	static const struct idx_lm_key none = {NULL, 0};
	const char *name = dbi == FREE_DBI ? "free" : "main";

	c->dbi = dbi;
	/* the main tree's leaves are the bulk of the file */
	c->leaves = dbi == FREE_DBI || c->mode == IDX_LM_ALL;
	c->depth = db->depth;
	c->branch = c->leaf = c->overflow = c->entries = 0;
	if (db->root != IDX_LM_NONE && walk(c, db->root, 1, none, none))
		return -1;
	if (c->branch != db->branch || c->leaf != db->leaf || c->overflow != db->overflow ||
	    (c->leaves && c->entries != db->entries))
		return fail(c->why, c->n, "the %s tree has %llu/%llu/%llu pages and %llu "
					  "entries, its meta says %llu/%llu/%llu and %llu",
			    name, (unsigned long long)c->branch, (unsigned long long)c->leaf,
			    (unsigned long long)c->overflow, (unsigned long long)c->entries,
			    (unsigned long long)db->branch, (unsigned long long)db->leaf,
			    (unsigned long long)db->overflow, (unsigned long long)db->entries);
	return 0;
}

int idx_lm_check(const struct idx_lm_src *src, const struct idx_lm_meta *m, int mode,
		 const struct idx_lm_key *keys, size_t nkeys, char *why, size_t n)
{
	struct chk c;
	int ret;

	memset(&c, 0, sizeof(c));
	c.src = src;
	c.psize = m->db[FREE_DBI].pad;
	c.npages = src->size / c.psize;
	c.last = m->last_pg;
	c.mode = mode;
	c.keys = keys;
	c.nkeys = nkeys;
	c.why = why;
	c.n = n;
	/* The file may end before the last page when the pages at the end
	 * are free (LMDB lists pages it allocated and freed in one commit
	 * without writing them), but never by much: a last page far past
	 * the end is damage, and must not size the bitmap. */
	if (c.last / 2 > c.npages + SLACK_PAGES)
		return fail(why, n, "last page %llu, the file has %llu",
			    (unsigned long long)c.last, (unsigned long long)c.npages);
	c.seen = calloc(c.last / 8 + 1, 1);
	c.need = malloc(c.psize / 2);
	if (!c.seen || !c.need) {
		free(c.seen);
		free(c.need);
		return fail(why, n, "out of memory for %llu pages", (unsigned long long)c.last);
	}
	c.nseen = 2; /* the meta pages */
	c.seen[0] = 3;
	ret = tree(&c, &m->db[FREE_DBI], FREE_DBI);
	if (!ret)
		ret = tree(&c, &m->db[MAIN_DBI], MAIN_DBI);
	/* every page is in a tree or on the free list, once */
	if (!ret && c.nseen != c.last + 1)
		ret = fail(why, n, "%llu of pages 0..%llu are neither used nor free",
			   (unsigned long long)(c.last + 1 - c.nseen),
			   (unsigned long long)c.last);
	free(c.seen);
	free(c.need);
	return ret;
}

/* ---- reading pages from the file ---- */

void idx_lm_file_init(struct idx_lm_file *f, int fd, unsigned psize, uint64_t size)
{
	memset(f, 0, sizeof(*f));
	f->fd = fd;
	f->psize = psize;
	f->src.read = idx_lm_file_read;
	f->src.ctx = f;
	f->src.size = size;
}

void idx_lm_file_release(struct idx_lm_file *f)
{
	unsigned i;

	for (i = 0; i < IDX_LM_SLOTS; i++)
		free(f->slot[i]);
}

const unsigned char *idx_lm_file_read(void *ctx, uint64_t pgno, uint64_t npg, unsigned slot)
{
	struct idx_lm_file *f = ctx;
	size_t len = (size_t)(npg * f->psize), done = 0;

	if (slot >= IDX_LM_SLOTS)
		return NULL;
	if (f->cap[slot] < len) {
		unsigned char *b = realloc(f->slot[slot], len);

		if (!b)
			return NULL;
		f->slot[slot] = b;
		f->cap[slot] = len;
	}
	while (done < len) {
		ssize_t r = pread(f->fd, f->slot[slot] + done, len - done,
				  (off_t)(pgno * f->psize + done));

		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			return NULL;
		}
		done += (size_t)r;
	}
	return f->slot[slot];
}
