/*
 * unpack_name.c: the name rules of an extraction, bytes in, verdict out:
 * an entry name cleaned or refused (unpack_clean_name) and the lexical
 * check of a symlink's target (unpack_link_inside).
 */
#include "ctxpack/unpack.h"

int unpack_clean_name(const char *name, struct buf *out, struct err *e)
{
	const char *p = name;
	size_t depth = 0;

	buf_reset(out);
	if (*name == '/')
		return err_set(e, ERR_CORRUPT, "refused absolute name '%s'", name);
	while (*p) {
		const char *s = p;
		size_t n;

		while (*p && *p != '/')
			p++;
		n = (size_t)(p - s);
		if (*p)
			p++;
		if (n == 0 || (n == 1 && s[0] == '.'))
			continue;
		if (n == 2 && s[0] == '.' && s[1] == '.')
			return err_set(e, ERR_CORRUPT, "refused name with '..': '%s'", name);
		if (++depth > UNPACK_MAX_DEPTH)
			return err_set(e, ERR_CORRUPT, "refused name deeper than %d levels: '%.200s'",
				       UNPACK_MAX_DEPTH, name);
		if (out->len && buf_addch(out, '/'))
			return err_set(e, ERR_NOMEM, "name too long");
		if (buf_add(out, s, n))
			return err_set(e, ERR_NOMEM, "name too long");
	}
	return out->len ? 0 : 1;
}

int unpack_link_inside(const char *path, const char *target)
{
	const char *p;
	size_t depth = 0;

	if (!*target || *target == '/')
		return 0;
	/* the link's own directory: the components of path but the last */
	for (p = path; *p; p++)
		if (*p == '/')
			depth++;
	p = target;
	while (*p) {
		const char *s = p;
		size_t n;

		while (*p && *p != '/')
			p++;
		n = (size_t)(p - s);
		if (*p)
			p++;
		if (n == 0 || (n == 1 && s[0] == '.'))
			continue;
		if (n == 2 && s[0] == '.' && s[1] == '.') {
			if (depth == 0)
				return 0;
			depth--;
		} else {
			depth++;
		}
	}
	return 1;
}
