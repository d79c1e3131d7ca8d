/*
 * pack_plan: where the frames of an archive start and end.
 *
 * The rule must depend on the content only (never on timing or the thread
 * count), and should stay put when files are edited, added or removed, so
 * that an incremental pack (issue 7) recompresses only the frames around a
 * change.  It is content-defined chunking over the entry sequence:
 *
 *  - cut after an entry when the frame already holds PACK_FRAME_MIN
 *    estimated bytes and the entry's path hash "hits", with a probability
 *    proportional to the entry's size (so the expected distance between
 *    cuts is PACK_FRAME_AVG bytes whatever the file sizes);
 *  - cut before an entry that would push the frame past PACK_FRAME_MAX;
 *  - split files larger than PACK_SPLIT_OVER at data offsets that are
 *    multiples of PACK_CHUNK (a frame may then end inside the entry);
 *  - the end-of-archive blocks form the last frame on their own.
 *
 * Sizes are estimates computed from one entry alone (pack_header_est,
 * pack_data_est), not the exact header bytes libarchive writes: exactness
 * does not matter, determinism does.  docs/archive-format.md has the rule.
 */
#include "ctxpack/pack.h"

#include <stdlib.h>
#include <string.h>

uint64_t pack_path_hash(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 0x100000001b3ULL;
	}
	/* FNV's high bits mix poorly; finish with splitmix64's mixer */
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h;
}

static uint64_t round512(uint64_t n)
{
	return (n + 511) & ~(uint64_t)511;
}

uint64_t pack_header_est_named(const struct walk_entry *we, size_t extra)
{
	uint64_t n = 512, name = (uint64_t)we->path_len + extra;

	/* a pax 'x' header for long names; the +1 is a directory's '/' */
	if (name + 1 > 100 || we->link_len > 100)
		n += 512 + round512(name + we->link_len + 64);
	return n;
}

uint64_t pack_header_est(const struct walk_entry *we)
{
	return pack_header_est_named(we, 0);
}

uint64_t pack_data_est(const struct walk_entry *we)
{
	return we->type == WALK_REG ? round512(we->size) : 0;
}

/* The content-defined cut: h's top 32 bits below weight/AVG of 2^32. */
static int hits(const struct walk_entry *we, uint64_t weight)
{
	uint64_t h = pack_path_hash(we->path, we->path_len) >> 32;

	if (weight >= PACK_FRAME_AVG)
		return 1;
	return h * PACK_FRAME_AVG < (weight << 32);
}

struct planner {
	struct pack_frame *v;
	size_t n, alloc;
	struct pack_pos start;
	uint64_t cur;
};

static void cut(struct planner *p, size_t i, uint64_t off)
{
	struct pack_frame *f;

	if (p->n == p->alloc) {
		p->alloc = p->alloc ? 2 * p->alloc : 64;
		p->v = xreallocarray(p->v, p->alloc, sizeof(*p->v));
	}
	f = &p->v[p->n++];
	f->first = p->start;
	f->end.i = i;
	f->end.off = off;
	f->est = p->cur;
	p->start.i = i;
	p->start.off = off;
	p->cur = 0;
}

void pack_plan_prefixed(struct walk_entry *const *v, size_t n, const char *prefix,
			struct pack_frame **frames, size_t *nframes)
{
	struct planner p = {NULL, 0, 0, {0, 0}, 0};
	uint64_t lead = 0;
	size_t i, extra = 0;

	if (prefix && *prefix) {
		/* the prefix's directories open the first frame (never a frame
		 * of their own: no cut before the first entry) */
		size_t k, len = strlen(prefix);
		struct walk_entry dir;

		memset(&dir, 0, sizeof(dir));
		for (k = 1; k <= len; k++) {
			if (k < len && prefix[k] != '/')
				continue;
			dir.path_len = (uint32_t)k;
			lead += pack_header_est(&dir);
		}
		extra = len + 1;
	}
	for (i = 0; i < n; i++) {
		const struct walk_entry *we = v[i];
		uint64_t h = pack_header_est_named(we, extra), d = pack_data_est(we);

		if (we->type == WALK_REG && we->size > PACK_SPLIT_OVER) {
			uint64_t off;

			if (p.cur > 0 && p.cur + h + PACK_CHUNK > PACK_FRAME_MAX)
				cut(&p, i, 0);
			p.cur += lead + h + PACK_CHUNK;
			lead = 0;
			for (off = PACK_CHUNK; off < we->size; off += PACK_CHUNK) {
				cut(&p, i, off);
				p.cur = we->size - off < PACK_CHUNK ? we->size - off : PACK_CHUNK;
			}
			p.cur += d - we->size; /* the padding */
		} else {
			if (p.cur > 0 && p.cur + h + d > PACK_FRAME_MAX)
				cut(&p, i, 0);
			p.cur += lead + h + d;
			lead = 0;
		}
		if (p.cur >= PACK_FRAME_MIN && hits(we, h + d))
			cut(&p, i + 1, 0);
	}
	if (p.cur > 0)
		cut(&p, n, 0);
	/* the end-of-archive frame */
	p.cur = 1024;
	cut(&p, n, 0);
	*frames = p.v;
	*nframes = p.n;
}

void pack_plan(struct walk_entry *const *v, size_t n, struct pack_frame **frames,
	       size_t *nframes)
{
	pack_plan_prefixed(v, n, NULL, frames, nframes);
}
