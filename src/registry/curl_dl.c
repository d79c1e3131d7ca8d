/*
 * curl_dl: libcurl, loaded with dlopen when a command first talks to a
 * registry (issue 15).
 *
 * Linked normally, libcurl and the 40-odd libraries it needs (TLS, LDAP,
 * Kerberos, SSH, RTMP, IDN, ...) were mapped and relocated by the dynamic
 * loader at every start, `ctxpack --version` included: about 40 ms of a
 * 50 ms start on the build machine (docs/startup.md).  So the binary is not
 * linked with libcurl at all.  This file defines the libcurl functions
 * src/registry calls, each a trampoline to the real one found with dlsym;
 * the rest of src/registry keeps calling libcurl's API as documented, and
 * <curl/curl.h> still gives the types, constants and type checks.
 *
 * reg_curl_load() is called where a store that talks HTTP is opened
 * (reg_store_open) and names the missing library when it cannot be
 * loaded.  The trampolines load on first use as well (once, thread-safe),
 * so any other caller works too; when the library is missing they return
 * libcurl's own failure values (NULL, CURLE_FAILED_INIT, CURLUE_...),
 * never crash.  The handle and the function table are process-wide by
 * nature, written once under pthread_once and only read afterwards.
 */
#define CURL_DISABLE_TYPECHECK 1 /* the definitions below are the functions */
#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "reg_impl.h"

/* The soname Debian's libcurl4 (and every Linux libcurl since 7.16) has. */
#define CURL_SONAME "libcurl.so.4"

static struct {
	__typeof__(&curl_global_init) global_init;
	__typeof__(&curl_global_cleanup) global_cleanup;
	__typeof__(&curl_easy_init) easy_init;
	__typeof__(&curl_easy_setopt) easy_setopt;
	__typeof__(&curl_easy_perform) easy_perform;
	__typeof__(&curl_easy_getinfo) easy_getinfo;
	__typeof__(&curl_easy_reset) easy_reset;
	__typeof__(&curl_easy_cleanup) easy_cleanup;
	__typeof__(&curl_easy_strerror) easy_strerror;
	__typeof__(&curl_slist_append) slist_append;
	__typeof__(&curl_slist_free_all) slist_free_all;
	__typeof__(&curl_free) free;
	__typeof__(&curl_getdate) getdate;
	__typeof__(&curl_url) url;
	__typeof__(&curl_url_cleanup) url_cleanup;
	__typeof__(&curl_url_set) url_set;
	__typeof__(&curl_url_get) url_get;
	__typeof__(&curl_version_info) version_info;
} fn;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int loaded;
static char load_error[512];

static void load(void)
{
	static const struct {
		const char *name;
		size_t off;
	} syms[] = {
#define SYM(f) {"curl_" #f, offsetof(__typeof__(fn), f)}
		SYM(global_init), SYM(global_cleanup), SYM(easy_init),
		SYM(easy_setopt), SYM(easy_perform), SYM(easy_getinfo),
		SYM(easy_reset), SYM(easy_cleanup), SYM(easy_strerror),
		SYM(slist_append), SYM(slist_free_all), SYM(free), SYM(getdate),
		SYM(url), SYM(url_cleanup), SYM(url_set), SYM(url_get),
		SYM(version_info),
#undef SYM
	};
	__typeof__(fn) t;
	const char *why;
	void *h;
	size_t i;

	h = dlopen(CURL_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		why = dlerror();
		snprintf(load_error, sizeof(load_error), "%s", why ? why : "not found");
		return;
	}
	for (i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		void *p = dlsym(h, syms[i].name);

		if (!p) {
			snprintf(load_error, sizeof(load_error),
				 "%s has no %s (libcurl 7.85 or later is needed)",
				 CURL_SONAME, syms[i].name);
			dlclose(h);
			return;
		}
		/* POSIX guarantees that a data pointer from dlsym converts. */
		memcpy((char *)&t + syms[i].off, &p, sizeof(p));
	}
	fn = t;
	loaded = 1;
}

static int have(void)
{
	pthread_once(&load_once, load);
	return loaded;
}

int reg_curl_load(struct err *e)
{
	if (have())
		return 0;
	return err_set(e, ERR_FAIL,
		       "cannot load libcurl (%s), which ctxpack needs to talk to a "
		       "registry: %s; install it (Debian: apt-get install libcurl4)",
		       CURL_SONAME, load_error);
}

curl_version_info_data *curl_version_info(CURLversion v)
{
	return have() ? fn.version_info(v) : NULL;
}

CURLcode curl_global_init(long flags)
{
	return have() ? fn.global_init(flags) : CURLE_FAILED_INIT;
}

void curl_global_cleanup(void)
{
	if (have())
		fn.global_cleanup();
}

CURL *curl_easy_init(void)
{
	return have() ? fn.easy_init() : NULL;
}

/*
 * The variadic argument is passed on with the type the option's number
 * says it has (libcurl's CURLOPTTYPE_* ranges: long, object pointer,
 * function pointer, curl_off_t, blob pointer), which is how libcurl reads
 * it back.
 */
CURLcode curl_easy_setopt(CURL *c, CURLoption opt, ...)
{
	CURLcode r;
	va_list ap;

	if (!have())
		return CURLE_FAILED_INIT;
	va_start(ap, opt);
	if (opt < CURLOPTTYPE_OBJECTPOINT)
		r = fn.easy_setopt(c, opt, va_arg(ap, long));
	else if (opt < CURLOPTTYPE_FUNCTIONPOINT)
		r = fn.easy_setopt(c, opt, va_arg(ap, void *));
	else if (opt < CURLOPTTYPE_OFF_T)
		r = fn.easy_setopt(c, opt, va_arg(ap, void (*)(void)));
	else if (opt < CURLOPTTYPE_BLOB)
		r = fn.easy_setopt(c, opt, va_arg(ap, curl_off_t));
	else
		r = fn.easy_setopt(c, opt, va_arg(ap, void *));
	va_end(ap);
	return r;
}

CURLcode curl_easy_perform(CURL *c)
{
	return have() ? fn.easy_perform(c) : CURLE_FAILED_INIT;
}

/* Every CURLINFO_* takes a pointer to where the answer goes. */
CURLcode curl_easy_getinfo(CURL *c, CURLINFO info, ...)
{
	CURLcode r;
	va_list ap;

	if (!have())
		return CURLE_FAILED_INIT;
	va_start(ap, info);
	r = fn.easy_getinfo(c, info, va_arg(ap, void *));
	va_end(ap);
	return r;
}

void curl_easy_reset(CURL *c)
{
	if (have())
		fn.easy_reset(c);
}

void curl_easy_cleanup(CURL *c)
{
	if (have())
		fn.easy_cleanup(c);
}

const char *curl_easy_strerror(CURLcode cc)
{
	return have() ? fn.easy_strerror(cc) : "libcurl is not loaded";
}

struct curl_slist *curl_slist_append(struct curl_slist *l, const char *s)
{
	return have() ? fn.slist_append(l, s) : NULL;
}

void curl_slist_free_all(struct curl_slist *l)
{
	if (have())
		fn.slist_free_all(l);
}

void curl_free(void *p)
{
	if (have())
		fn.free(p);
}

time_t curl_getdate(const char *s, const time_t *unused)
{
	return have() ? fn.getdate(s, unused) : -1;
}

CURLU *curl_url(void)
{
	return have() ? fn.url() : NULL;
}

void curl_url_cleanup(CURLU *u)
{
	if (have())
		fn.url_cleanup(u);
}

CURLUcode curl_url_set(CURLU *u, CURLUPart what, const char *part, unsigned int flags)
{
	return have() ? fn.url_set(u, what, part, flags) : CURLUE_OUT_OF_MEMORY;
}

CURLUcode curl_url_get(CURLU *u, CURLUPart what, char **part, unsigned int flags)
{
	return have() ? fn.url_get(u, what, part, flags) : CURLUE_OUT_OF_MEMORY;
}

/*
 * The file the loader mapped for CURL_SONAME (after a load), or NULL: for
 * reg_lib_info's memo of the version (reg_ver.c).
 */
const char *reg_curl_path(void)
{
	static char path[4096];
	Dl_info info;

	if (!have() || !dladdr((void *)fn.version_info, &info) || !info.dli_fname)
		return NULL;
	snprintf(path, sizeof(path), "%s", info.dli_fname);
	return path;
}
