/*
 * fuzz_idxcheck: libFuzzer target for the checks of LMDB's data file that
 * stand between a damaged index and LMDB (src/cache/idx_lmdb.c).
 *
 * Input: the bytes of a data.mdb (the corpus holds small real ones).  Both
 * meta pages are checked as before an open; when they pass, the trees of
 * the newer one are checked in every mode (as at open, as before a write
 * of a key taken from the input, and whole).  Whatever the bytes, the
 * checks read only inside the input (the sanitizers see any read past
 * its end: the replay driver copies each input into a buffer of exactly
 * its size) and return a verdict; and a file that passes the whole check
 * passes the others too (they check less).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/index/idx_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct mem {
	const uint8_t *data;
	unsigned psize;
};

static const unsigned char *mem_read(void *ctx, uint64_t pgno, uint64_t npg, unsigned slot)
{
	const struct mem *m = ctx;

	(void)npg;
	(void)slot;
	return m->data + pgno * m->psize;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct idx_lm_meta m[2];
	struct mem mem = {data, 0};
	struct idx_lm_src src = {mem_read, &mem, size};
	struct idx_lm_key key;
	char why[256];
	unsigned psize;
	int cur, all;

	if (size < IDX_LM_META_LEN)
		return 0;
	idx_lm_meta_decode(data, &m[0]);
	psize = idx_lm_page_size(&m[0], why, sizeof(why));
	if (!psize || size < psize + (size_t)IDX_LM_META_LEN)
		return 0;
	idx_lm_meta_decode(data + psize, &m[1]);
	cur = idx_lm_metas_check(m, size, why, sizeof(why));
	if (cur < 0)
		return 0;
	mem.psize = psize;
	/* a key from the input's last bytes: some key, anywhere */
	key.n = size % 64;
	key.p = data + size - key.n;
	all = idx_lm_check(&src, &m[cur], IDX_LM_ALL, NULL, 0, why, sizeof(why));
	if (idx_lm_check(&src, &m[cur], IDX_LM_OPEN, NULL, 0, why, sizeof(why)) && !all)
		abort();
	if (idx_lm_check(&src, &m[cur], IDX_LM_WRITE, &key, 1, why, sizeof(why)) && !all)
		abort();
	return 0;
}
