/*
 * unpack_name.c: the name rules of an extraction, bytes in, verdict out:
 * an entry name cleaned or refused (unpack_clean_name) and the lexical
 * check of a symlink's target (unpack_link_inside).
 */
#include "unpack_internal.h"

/*
 * The next component of the name at *pp (advanced past it): its start in
 * *s and its length in *n, empty components and "." skipped.  0 at the
 * end of the name.
 */
static int next_comp(const char **pp, const char **s, size_t *n)
{
	const char *p = *pp;

	while (*p) {
		*s = p;
		while (*p && *p != '/')
			p++;
		*n = (size_t)(p - *s);
		if (*p)
			p++;
		if (*n == 0 || (*n == 1 && (*s)[0] == '.'))
			continue;
		*pp = p;
		return 1;
	}
	return 0;
}

int unpack_clean_name(const char *name, struct buf *out, struct err *e)
{
	const char *p = name, *s;
	size_t depth = 0, n;

	buf_reset(out);
	if (*name == '/')
		return err_set(e, ERR_CORRUPT, "refused absolute name '%s'", name);
	while (next_comp(&p, &s, &n)) {
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
	const char *p, *s;
	size_t depth = 0, n;

	if (!*target || *target == '/')
		return 0;
	/* the link's own directory: the components of path but the last */
	for (p = path; *p; p++)
		if (*p == '/')
			depth++;
	p = target;
	while (next_comp(&p, &s, &n)) {
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
