/*
 * SHA-256, the one digest of ctxpack (blobs, archives, cache entries).
 * Its state can be saved and resumed: incremental packing keeps the state
 * at every frame boundary of an archive, so that after an edit the
 * archive's sha256 is computed from the first changed frame on, not from
 * the start (speed.md 5.3).
 *
 * The block function uses the x86 SHA extensions when the CPU has them
 * (as fast as OpenSSL's, about 1.7 GB/s here), else portable C.  It is
 * our own rather than OpenSSL's so that the state can be saved, and so
 * that packing does not pay OpenSSL's start-up (about 2 MiB resident).
 * The unit tests check both paths against the FIPS 180-2 examples and
 * each other.
 */
#include "ctxpack/util.h"

#include <stdlib.h>

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define SHA_X86 1
#endif

static const uint32_t K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
	0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
	0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
	0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
	0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
	0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
	0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
	0xc67178f2,
};

static const uint32_t H0[8] = {
	0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

static void put_le(unsigned char *p, uint64_t v, int n)
{
	int i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n)
{
	uint64_t v = 0;
	int i;

	for (i = n - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void blocks_c(uint32_t h[8], const unsigned char *p, size_t nblocks)
{
	uint32_t w[64];

	while (nblocks--) {
		uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
		uint32_t e = h[4], f = h[5], g = h[6], hh = h[7];
		int t;

		for (t = 0; t < 16; t++)
			w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 |
			       (uint32_t)p[4 * t + 2] << 8 | p[4 * t + 3];
		for (; t < 64; t++) {
			uint32_t s0 = ROR(w[t - 15], 7) ^ ROR(w[t - 15], 18) ^ (w[t - 15] >> 3);
			uint32_t s1 = ROR(w[t - 2], 17) ^ ROR(w[t - 2], 19) ^ (w[t - 2] >> 10);

			w[t] = w[t - 16] + s0 + w[t - 7] + s1;
		}
		for (t = 0; t < 64; t++) {
			uint32_t s1 = ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25);
			uint32_t ch = (e & f) ^ (~e & g);
			uint32_t t1 = hh + s1 + ch + K[t] + w[t];
			uint32_t s0 = ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22);
			uint32_t mj = (a & b) ^ (a & c) ^ (b & c);
			uint32_t t2 = s0 + mj;

			hh = g;
			g = f;
			f = e;
			e = d + t1;
			d = c;
			c = b;
			b = a;
			a = t1 + t2;
		}
		h[0] += a;
		h[1] += b;
		h[2] += c;
		h[3] += d;
		h[4] += e;
		h[5] += f;
		h[6] += g;
		h[7] += hh;
		p += 64;
	}
}

#ifdef SHA_X86
/*
 * The SHA extensions: the state kept as ABEF/CDGH, four rounds per
 * message group, the schedule with sha256msg1/msg2.
 */
__attribute__((target("sha,sse4.1,ssse3")))
static void blocks_ni(uint32_t h[8], const unsigned char *p, size_t nblocks)
{
	const __m128i mask = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
	__m128i st0, st1, tmp;

	tmp = _mm_loadu_si128((const __m128i *)&h[0]);
	st1 = _mm_loadu_si128((const __m128i *)&h[4]);
	tmp = _mm_shuffle_epi32(tmp, 0xB1);          /* CDAB */
	st1 = _mm_shuffle_epi32(st1, 0x1B);          /* EFGH */
	st0 = _mm_alignr_epi8(tmp, st1, 8);          /* ABEF */
	st1 = _mm_blend_epi16(st1, tmp, 0xF0);       /* CDGH */

	while (nblocks--) {
		__m128i save0 = st0, save1 = st1, m[4], msg;
		int i;

#pragma GCC unroll 16
		for (i = 0; i < 16; i++) {
			if (i < 4) {
				m[i] = _mm_shuffle_epi8(
					_mm_loadu_si128((const __m128i *)(p + 16 * i)), mask);
			} else {
				__m128i t = _mm_sha256msg1_epu32(m[i % 4], m[(i + 1) % 4]);

				t = _mm_add_epi32(t, _mm_alignr_epi8(m[(i + 3) % 4],
								     m[(i + 2) % 4], 4));
				m[i % 4] = _mm_sha256msg2_epu32(t, m[(i + 3) % 4]);
			}
			msg = _mm_add_epi32(m[i % 4],
					    _mm_loadu_si128((const __m128i *)&K[4 * i]));
			st1 = _mm_sha256rnds2_epu32(st1, st0, msg);
			msg = _mm_shuffle_epi32(msg, 0x0E);
			st0 = _mm_sha256rnds2_epu32(st0, st1, msg);
		}
		st0 = _mm_add_epi32(st0, save0);
		st1 = _mm_add_epi32(st1, save1);
		p += 64;
	}

	tmp = _mm_shuffle_epi32(st0, 0x1B);          /* FEBA */
	st1 = _mm_shuffle_epi32(st1, 0xB1);          /* DCHG */
	st0 = _mm_blend_epi16(tmp, st1, 0xF0);       /* DCBA */
	st1 = _mm_alignr_epi8(st1, tmp, 8);          /* HGFE */
	_mm_storeu_si128((__m128i *)&h[0], st0);
	_mm_storeu_si128((__m128i *)&h[4], st1);
}

static int have_ni(void)
{
	unsigned a, b, c, d;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSE4_1) || !(c & bit_SSSE3))
		return 0;
	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
		return 0;
	return (b >> 29) & 1;
}
#endif

static void blocks(struct sha256 *s, const unsigned char *p, size_t nblocks)
{
#ifdef SHA_X86
	if (s->ni) {
		blocks_ni(s->h, p, nblocks);
		return;
	}
#endif
	blocks_c(s->h, p, nblocks);
}

void sha256_init(struct sha256 *s, int portable)
{
	memcpy(s->h, H0, sizeof(s->h));
	s->len = 0;
	s->n = 0;
	s->ni = 0;
#ifdef SHA_X86
	s->ni = !portable && have_ni();
#endif
}

void sha256_update(struct sha256 *s, const void *data, size_t n)
{
	const unsigned char *p = data;

	s->len += n;
	if (s->n) {
		size_t k = 64 - s->n < n ? 64 - s->n : n;

		memcpy(s->buf + s->n, p, k);
		s->n += k;
		p += k;
		n -= k;
		if (s->n < 64)
			return;
		blocks(s, s->buf, 1);
		s->n = 0;
	}
	if (n >= 64) {
		blocks(s, p, n / 64);
		p += n / 64 * 64;
		n %= 64;
	}
	memcpy(s->buf, p, n);
	s->n = n;
}

void sha256_final(struct sha256 *s, unsigned char out[32])
{
	unsigned char pad[72];
	uint64_t bits = s->len * 8;
	size_t padn = (s->n < 56 ? 56 : 120) - s->n;
	int i;

	memset(pad, 0, sizeof(pad));
	pad[0] = 0x80;
	for (i = 0; i < 8; i++)
		pad[padn + i] = (unsigned char)(bits >> (56 - 8 * i));
	sha256_update(s, pad, padn + 8);
	for (i = 0; i < 8; i++) {
		out[4 * i] = (unsigned char)(s->h[i] >> 24);
		out[4 * i + 1] = (unsigned char)(s->h[i] >> 16);
		out[4 * i + 2] = (unsigned char)(s->h[i] >> 8);
		out[4 * i + 3] = (unsigned char)s->h[i];
	}
}

void sha256_save(const struct sha256 *s, unsigned char mid[SHA256_MID])
{
	int i;

	/* the state after the whole blocks; the len % 64 bytes after them
	 * are re-read from the data when resuming */
	for (i = 0; i < 8; i++)
		put_le(mid + 4 * i, s->h[i], 4);
	put_le(mid + 32, s->len - s->n, 8);
}

int sha256_resume(struct sha256 *s, const unsigned char mid[SHA256_MID], uint64_t len)
{
	int i;

	if (get_le(mid + 32, 8) != len - len % 64)
		return -1;
	for (i = 0; i < 8; i++)
		s->h[i] = (uint32_t)get_le(mid + 4 * i, 4);
	s->len = len - len % 64;
	s->n = 0;
	return 0;
}

struct sha256 *sha256_new(void)
{
	struct sha256 *s = xmalloc(sizeof(*s));

	sha256_init(s, 0);
	return s;
}

void sha256_reset(struct sha256 *s)
{
	sha256_init(s, 0);
}

void sha256_free(struct sha256 *s)
{
	free(s);
}
