/* sha256 digests of buffers and files, as "sha256:<hex>" (sha256.c). */
#include "ctxpack/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void to_str(const unsigned char md[32], char out[72])
{
	memcpy(out, "sha256:", 7);
	hex_encode(out + 7, md, 32);
}

void sha256_digest_str(const void *p, size_t n, char out[72])
{
	struct sha256 *s = sha256_new();
	unsigned char md[32];

	sha256_update(s, p, n);
	sha256_final(s, md);
	sha256_free(s);
	to_str(md, out);
}

int sha256_file(const char *path, char out[72], uint64_t *size, struct err *e)
{
	static const size_t bufsz = 1 << 20;
	unsigned char md[32];
	struct sha256 *s;
	uint64_t total = 0;
	char *b;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_errno(e, "cannot open %s", path);
	s = sha256_new();
	b = xmalloc(bufsz);
	for (;;) {
		ssize_t n = read(fd, b, bufsz);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = err_errno(e, "cannot read %s", path);
			break;
		}
		if (!n)
			break;
		sha256_update(s, b, (size_t)n);
		total += (uint64_t)n;
	}
	close(fd);
	free(b);
	if (!ret) {
		sha256_final(s, md);
		to_str(md, out);
		if (size)
			*size = total;
	}
	sha256_free(s);
	return ret;
}
