/*
 * cache: the handle of the CI cache over an OCI store (include/ctxpack/
 * cache.h has the model), and what its save, lookup and restore share:
 * the check of a path list and the reading of an entry
 * (cache_internal.h).  Save is cache_save.c, restore cache_restore.c,
 * lookup, listing and deletion cache_entries.c.
 */
#include "ctxpack/cache.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache_internal.h"

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void cache_opts_init(struct cache_opts *o)
{
	memset(o, 0, sizeof(*o));
	reg_opts_init(&o->reg);
}

void cache_warnf(struct cache *c, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	if (!c->warn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->warn(c->warn_arg, msg);
}

int cache_open(struct cache **out, const struct cache_opts *o, struct err *e)
{
	struct cache *c = xcalloc(1, sizeof(*c));
	int ret;

	*out = NULL;
	ret = reg_store_open(&c->s, o->store, &o->reg, e);
	if (ret) {
		free(c);
		return ret;
	}
	if (o->tmp_dir) {
		c->tmp_dir = xstrdup(o->tmp_dir);
	} else {
		char *home = cache_home();

		c->tmp_dir = xasprintf("%s/tmp", home);
		free(home);
	}
	c->warn = o->warn;
	c->warn_arg = o->warn_arg;
	c->max_size = o->max_size ? o->max_size : CACHE_MAX_SIZE;
	c->safe_links = o->safe_links;
	*out = c;
	return 0;
}

void cache_set_timeout(struct cache *c, uint64_t ms)
{
	c->deadline_ms = ms ? mono_ms() + ms : 0;
	reg_store_set_deadline(c->s, c->deadline_ms);
}

void cache_free(struct cache *c)
{
	if (!c)
		return;
	reg_store_free(c->s);
	free(c->tmp_dir);
	free(c);
}

struct reg_store *cache_store(struct cache *c)
{
	return c->s;
}

const char *cache_store_name(const struct cache *c)
{
	return reg_store_name(c->s);
}


/*
 * Where a path is: ~ expanded, made absolute, its existing part resolved
 * (symlinks included) and the rest cleaned of ".", ".." and "//".
 * malloc'd.
 */
static char *canon_path(const char *path)
{
	char *x = cache_expand_path(path), *r = path_resolve_future(x), *out, *o;
	const char *p;

	if (!r)
		r = xstrdup(x);
	free(x);
	out = xmalloc(strlen(r) + 2);
	o = out;
	for (p = r; *p;) {
		const char *s;
		size_t n;

		while (*p == '/')
			p++;
		s = p;
		while (*p && *p != '/')
			p++;
		n = (size_t)(p - s);
		if (!n || (n == 1 && s[0] == '.'))
			continue;
		if (n == 2 && s[0] == '.' && s[1] == '.') {
			while (o > out && o[-1] != '/')
				o--;
			if (o > out)
				o--;
			continue;
		}
		*o++ = '/';
		memcpy(o, s, n);
		o += n;
	}
	if (o == out)
		*o++ = '/';
	*o = '\0';
	free(r);
	return out;
}

int cache_check_paths(const char *const *paths, size_t n, struct err *e)
{
	char **canon;
	size_t i, j;
	int ret = 0;

	if (!n)
		return err_set(e, ERR_USAGE, "no path given");
	for (i = 0; i < n; i++) {
		if (cache_path_check(paths[i], e))
			return e->code;
		for (j = 0; j < i; j++)
			if (!strcmp(paths[i], paths[j]))
				return err_set(e, ERR_USAGE, "path '%s' is given twice", paths[i]);
	}
	/* one directory inside another would be archived twice, and a
	 * restore would swap the outer one over the inner one's swap */
	canon = xcalloc(n, sizeof(*canon));
	for (i = 0; i < n; i++)
		canon[i] = canon_path(paths[i]);
	for (i = 0; i < n && !ret; i++) {
		for (j = 0; j < n && !ret; j++) {
			if (i == j || !path_holds(canon[i], canon[j]))
				continue;
			if (!strcmp(canon[i], canon[j]))
				ret = err_set(e, ERR_USAGE, "paths '%s' and '%s' are the same directory",
					      paths[i], paths[j]);
			else
				ret = err_set(e, ERR_USAGE, "paths '%s' and '%s' nest (the second is "
					      "inside the first): cache them under separate keys or "
					      "as one path", paths[i], paths[j]);
		}
	}
	for (i = 0; i < n; i++)
		free(canon[i]);
	free(canon);
	return ret;
}

int cache_read_entry(struct cache *c, const char *tag, struct cache_entry *en, struct buf *b,
		     struct err *e)
{
	struct buf own = BUF_INIT;
	char digest[REG_DIGEST_SIZE];
	int ret;

	if (!b)
		b = &own;
	memset(en, 0, sizeof(*en));
	ret = reg_manifest_get(c->s, tag, b, NULL, digest, e);
	if (!ret)
		ret = cache_entry_parse(en, tag, digest, b->data, b->len, e);
	buf_release(&own);
	return ret;
}

int cache_read_listed(struct cache *c, const char *tag, struct cache_entry *en, struct err *e)
{
	int ret = cache_read_entry(c, tag, en, NULL, e);

	if (ret == ERR_NOTFOUND || ret == ERR_CORRUPT) {
		if (ret == ERR_CORRUPT)
			cache_warnf(c, "%s; skipped", e->msg);
		err_clear(e);
		return 1;
	}
	return ret;
}
