/*
 * The command line's values for `ctxpack image` (layers, paths, ports,
 * commands, platforms) and the layer records.
 *
 * A layer record, <cache>/layers/<32 hex of the layer key>, is a few
 * lines of text ending in a sha256 of the lines before it:
 *
 *     ctxpack layer 1
 *     <media type>
 *     <blob digest>
 *     <blob size>
 *     <diff_id>
 *     <entries>
 *     sha256:<hex of the lines above, newlines included>
 *
 * It is only a map from content to digests: a wrong one would name
 * another blob, so a record that is not exactly this is removed and the
 * layer packed again.  Written to a temporary name and renamed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctxpack/image.h"
#include "ctxpack/pack.h"

int img_parse_layer(const char *arg, struct img_layer_spec *l, char **buf, struct err *e)
{
	char *copy = xstrdup(arg), *sep = NULL, *p;

	/* the last ":/": SRC may hold ':' (not before a '/'), DEST is absolute */
	for (p = copy; (p = strstr(p, ":/")); p++)
		sep = p;
	if (!sep || sep == copy) {
		free(copy);
		return err_set(e, ERR_USAGE, "--layer wants SRC:DEST with an absolute DEST "
			       "(backend/.venv:/app/.venv), not '%s'", arg);
	}
	*sep = '\0';
	l->src = copy;
	l->dest = sep + 1;
	l->ignore_file = NULL;
	*buf = copy;
	return 0;
}

int img_dest_prefix(const char *dest, char **prefix, struct err *e)
{
	struct buf b = BUF_INIT;
	const char *p = dest, *end;

	*prefix = NULL;
	if (*dest != '/')
		return err_set(e, ERR_USAGE, "layer destination '%s' is not an absolute path",
			       dest);
	while (*p) {
		size_t n;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		end = strchrnul(p, '/');
		n = (size_t)(end - p);
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) {
			buf_release(&b);
			return err_set(e, ERR_USAGE, "layer destination '%s' has a '.' or '..' "
				       "component", dest);
		}
		if (b.len)
			buf_addch(&b, '/');
		buf_add(&b, p, n);
		p = end;
	}
	if (b.len > PACK_PREFIX_MAX) {
		buf_release(&b);
		return err_set(e, ERR_USAGE, "layer destination longer than %d bytes",
			       PACK_PREFIX_MAX);
	}
	*prefix = buf_detach(&b, NULL);
	return 0;
}

int img_parse_port(const char *arg, char **out, struct err *e)
{
	const char *slash = strchr(arg, '/'), *proto = slash ? slash + 1 : "tcp";
	char num[16];
	uint64_t port;
	size_t n = slash ? (size_t)(slash - arg) : strlen(arg);

	*out = NULL;
	if (!n || n >= sizeof(num))
		goto bad;
	memcpy(num, arg, n);
	num[n] = '\0';
	if (parse_u64(num, &port) || port < 1 || port > 65535)
		goto bad;
	if (strcmp(proto, "tcp") && strcmp(proto, "udp") && strcmp(proto, "sctp"))
		goto bad;
	*out = xasprintf("%llu/%s", (unsigned long long)port, proto);
	return 0;
bad:
	return err_set(e, ERR_USAGE, "--expose wants PORT or PORT/PROTO (tcp, udp, sctp) "
		       "with PORT 1-65535, not '%s'", arg);
}

void img_strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int img_parse_command(const char *arg, char ***v, size_t *n)
{
	const char *p = arg;

	if (!reg_json_strings(arg, v, n))
		return 0;
	/* the shell form */
	*n = 3;
	*v = xcalloc(4, sizeof(**v));
	(*v)[0] = xstrdup("/bin/sh");
	(*v)[1] = xstrdup("-c");
	(*v)[2] = xstrdup(arg);
	while (*p == ' ' || *p == '\t')
		p++;
	return *p == '[';
}

int img_parse_platform(const char *arg, char **os, char **arch, char **variant,
		       struct err *e)
{
	const char *s1 = strchr(arg, '/'), *s2 = s1 ? strchr(s1 + 1, '/') : NULL;

	*os = *arch = *variant = NULL;
	if (!s1 || s1 == arg || !s1[1] || s2 == s1 + 1 || (s2 && (!s2[1] || strchr(s2 + 1, '/'))))
		return err_set(e, ERR_USAGE, "--platform wants OS/ARCH[/VARIANT] "
			       "(linux/amd64, linux/arm64/v8), not '%s'", arg);
	*os = xstrndup(arg, (size_t)(s1 - arg));
	*arch = s2 ? xstrndup(s1 + 1, (size_t)(s2 - s1 - 1)) : xstrdup(s1 + 1);
	*variant = s2 ? xstrdup(s2 + 1) : NULL;
	return 0;
}

/* ---- layer records ---- */

static char *record_path(const char *dir, const unsigned char key[FC_KEY_LEN])
{
	char hex[2 * FC_KEY_LEN + 1];

	hex_encode(hex, key, FC_KEY_LEN);
	return xasprintf("%s/%s", dir, hex);
}

static void record_text(const struct img_record *r, struct buf *b)
{
	char dg[REG_DIGEST_SIZE];

	buf_reset(b);
	buf_addf(b, "ctxpack layer %d\n%s\n%s\n%llu\n%s\n%llu\n", IMG_RECORD_FORMAT,
		 r->media_type, r->digest, (unsigned long long)r->size, r->diff_id,
		 (unsigned long long)r->entries);
	sha256_digest_str(b->data, b->len, dg);
	buf_addf(b, "%s\n", dg);
}

/* The next line of b from *pos into out (NUL-terminated, at most max-1
 * bytes); -1 when there is none or it is too long. */
static int take_line(const struct buf *b, size_t *pos, char *out, size_t max)
{
	const char *nl = memchr(b->data + *pos, '\n', b->len - *pos);
	size_t n;

	if (!nl)
		return -1;
	n = (size_t)(nl - (b->data + *pos));
	if (n >= max)
		return -1;
	memcpy(out, b->data + *pos, n);
	out[n] = '\0';
	*pos += n + 1;
	return 0;
}

int img_record_get(const char *dir, const unsigned char key[FC_KEY_LEN],
		   struct img_record *r)
{
	char *path = record_path(dir, key), line[128];
	struct buf b = BUF_INIT, again = BUF_INIT;
	struct err e = ERR_INIT;
	size_t pos = 0;
	int ok = 0;

	memset(r, 0, sizeof(*r));
	if (buf_read_file(&b, path, 4096, &e))
		goto out;
	if (take_line(&b, &pos, line, sizeof(line)) ||
	    strcmp(line, "ctxpack layer 1") ||
	    take_line(&b, &pos, r->media_type, sizeof(r->media_type)) ||
	    take_line(&b, &pos, r->digest, sizeof(r->digest)) || !reg_digest_valid(r->digest) ||
	    take_line(&b, &pos, line, sizeof(line)) || parse_u64(line, &r->size) ||
	    take_line(&b, &pos, r->diff_id, sizeof(r->diff_id)) ||
	    !reg_digest_valid(r->diff_id) ||
	    take_line(&b, &pos, line, sizeof(line)) || parse_u64(line, &r->entries))
		goto bad;
	record_text(r, &again);
	if (again.len != b.len || memcmp(again.data, b.data, b.len))
		goto bad;
	ok = 1;
	/* used: its mtime says so, for img_record_sweep */
	utimensat(AT_FDCWD, path, NULL, 0);
	goto out;
bad:
	unlink(path);
	memset(r, 0, sizeof(*r));
out:
	buf_release(&b);
	buf_release(&again);
	free(path);
	return ok;
}

void img_record_sweep(const char *dir, int64_t max_age)
{
	struct err e = ERR_INIT;
	time_t now = time(NULL);
	char **names;
	size_t n, i;
	int dfd;

	if (dir_names(dir, 1, &names, &n, &e))
		return;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (i = 0; dfd >= 0 && i < n; i++) {
		struct stat st;
		int tmp = !strncmp(names[i], "tmp.", 4);

		if ((!tmp && strlen(names[i]) != 2 * FC_KEY_LEN) ||
		    fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode))
			continue;
		if (now - st.st_mtime > (tmp ? IMG_TMP_STALE_S : max_age))
			unlinkat(dfd, names[i], 0);
	}
	if (dfd >= 0)
		close(dfd);
	dir_names_free(names, n);
}

int img_record_put(const char *dir, const unsigned char key[FC_KEY_LEN],
		   const struct img_record *r, struct err *e)
{
	char *path = record_path(dir, key);
	struct buf b = BUF_INIT;
	struct atomic_file af;
	int ret;

	record_text(r, &b);
	ret = mkdir_p(dir, 0755, e);
	if (!ret)
		ret = atomic_open(&af, path, 0644, e);
	if (!ret) {
		af.nosync = 1; /* a record can be made again */
		if (write_all(af.fd, b.data, b.len)) {
			ret = err_errno(e, "cannot write %s", path);
			atomic_abort(&af);
		} else {
			ret = atomic_commit(&af, e);
		}
	}
	buf_release(&b);
	free(path);
	return ret;
}
