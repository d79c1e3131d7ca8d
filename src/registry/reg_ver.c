/*
 * reg_ver: the versions of the libraries the registry module runs with,
 * for `ctxpack --version` (util.h, lib_info_fn).  Asked of the libraries
 * themselves, so that what is reported is what was loaded.
 *
 * libcurl is loaded with dlopen only by the commands that talk to a
 * registry (curl_dl.c): loading it costs 15-20 ms, three times the rest
 * of `--version` (issue 15's start-up goal).  So what it said is kept in
 * a memo, libcurl-version in cache_home() (util.h), with what decides which
 * file the loader maps and what that file is: LD_LIBRARY_PATH and
 * LD_PRELOAD, /etc/ld.so.cache's inode, size and mtime (rewritten by
 * ldconfig whenever a library package is installed or upgraded, libcurl's
 * TLS library included), and the path the loader chose with its inode,
 * size and mtime.  The memo is used only while every one of those is the
 * same; else libcurl is loaded and asked again.
 */
#include "ctxpack/registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <curl/curl.h>
#include <jansson.h>

#include "ctxpack/util.h"
#include "reg_impl.h"

#define MEMO_MAGIC "ctxpack libcurl memo 1"

static void stat_key(struct buf *b, const char *path)
{
	struct stat st;

	if (stat(path, &st))
		buf_addf(b, "%s -", path);
	else
		buf_addf(b, "%s %llu %llu %lld.%09ld", path, (unsigned long long)st.st_ino,
			 (unsigned long long)st.st_size, (long long)st.st_mtim.tv_sec,
			 st.st_mtim.tv_nsec);
}

/* What decides the loader's choice, up to the library's own path. */
static void loader_key(struct buf *b)
{
	const char *lp = env_get()->ld_library_path, *pre = env_get()->ld_preload;

	buf_addf(b, "%s\n%s\n%s\n", MEMO_MAGIC, lp ? lp : "", pre ? pre : "");
	stat_key(b, "/etc/ld.so.cache");
	buf_add(b, "\n", 1);
}

/*
 * The memo's answer: 1 with version and detail filled (NUL-terminated,
 * no newline), or 0.  The file: the loader key, the library's stat key,
 * then a line of version and a line of detail.
 */
static int memo_get(const char *file, char *version, size_t vn, char *detail, size_t dn)
{
	struct buf want = BUF_INIT, have = BUF_INIT, lib = BUF_INIT;
	struct err e = ERR_INIT;
	char *p, *nl, *v, *d;
	int ok = 0;

	loader_key(&want);
	if (buf_read_file(&have, file, 16384, &e) || have.len < want.len ||
	    memcmp(have.data, want.data, want.len))
		goto out;
	/* the library's line: "PATH INO SIZE MTIME" */
	p = have.data + want.len;
	if (!(nl = memchr(p, '\n', have.len - want.len)) || *p != '/')
		goto out;
	*nl = '\0';
	{
		char *sp = strchr(p, ' ');

		if (!sp)
			goto out;
		*sp = '\0';
		stat_key(&lib, p);
		*sp = ' ';
	}
	if (strcmp(lib.data ? lib.data : "", p))
		goto out;
	v = nl + 1;
	if (!(nl = memchr(v, '\n', (size_t)(have.data + have.len - v))))
		goto out;
	*nl = '\0';
	d = nl + 1;
	if (!(nl = memchr(d, '\n', (size_t)(have.data + have.len - d))) || !*v ||
	    strlen(v) >= vn || (size_t)(nl - d) >= dn)
		goto out;
	*nl = '\0';
	snprintf(version, vn, "%s", v);
	snprintf(detail, dn, "%s", d);
	ok = 1;
out:
	buf_release(&want);
	buf_release(&have);
	buf_release(&lib);
	return ok;
}

/* Keep what the loaded library said; a memo that cannot be written is
 * simply not kept. */
static void memo_put(const char *file, const char *version, const char *detail)
{
	const char *lib = reg_curl_path();
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	char *dir;

	if (!lib || *lib != '/' || strchr(lib, '\n') || strchr(version, '\n') ||
	    strchr(detail, '\n'))
		return;
	loader_key(&b);
	stat_key(&b, lib);
	buf_addf(&b, "\n%s\n%s\n", version, detail);
	dir = xstrdup(file);
	*strrchr(dir, '/') = '\0';
	if (!mkdir_p(dir, 0755, &e))
		atomic_write_nosync(file, b.data, b.len, 0644, &e);
	free(dir);
	buf_release(&b);
}

void reg_lib_info(lib_info_fn fn, void *arg)
{
	const curl_version_info_data *d;
	const char *jv = JANSSON_VERSION;
	char detail[256], version[64];
	char *home = cache_home(), *memo = xasprintf("%s/libcurl-version", home);

	free(home);
	if (memo_get(memo, version, sizeof(version), detail, sizeof(detail))) {
		fn(arg, "libcurl", version, strcmp(version, LIBCURL_VERSION) ? LIBCURL_VERSION : NULL,
		   detail);
		goto jansson;
	}
	d = curl_version_info(CURLVERSION_NOW);
	/* loaded with dlopen (curl_dl.c): it may be missing */
	if (!d) {
		fn(arg, "libcurl", "not loadable", NULL, "needed by the registry commands only");
		goto jansson;
	}

	/* the TLS library curl was built on decides which registries it can
	 * talk to, and how */
	snprintf(detail, sizeof(detail), "%s%s%s", d->ssl_version ? d->ssl_version : "no TLS",
		 d->libz_version ? " zlib/" : "", d->libz_version ? d->libz_version : "");
	fn(arg, "libcurl", d->version, strcmp(d->version, LIBCURL_VERSION) ? LIBCURL_VERSION : NULL,
	   detail);
	memo_put(memo, d->version, detail);
jansson:
	free(memo);
#if JANSSON_VERSION_HEX >= 0x020d00
	jv = jansson_version_str();
#endif
	fn(arg, "jansson", jv, strcmp(jv, JANSSON_VERSION) ? JANSSON_VERSION : NULL, NULL);
}
