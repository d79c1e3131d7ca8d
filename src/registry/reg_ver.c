/*
 * reg_ver: the versions of the libraries the registry module runs with,
 * for `ctxpack --version` (util.h, lib_info_fn).  Asked of the libraries
 * themselves, so that what is reported is what was loaded.
 */
#include "ctxpack/registry.h"

#include <stdio.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

void reg_lib_info(lib_info_fn fn, void *arg)
{
	const curl_version_info_data *d = curl_version_info(CURLVERSION_NOW);
	const char *jv = JANSSON_VERSION;
	char detail[256];

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
jansson:
#if JANSSON_VERSION_HEX >= 0x020d00
	jv = jansson_version_str();
#endif
	fn(arg, "jansson", jv, strcmp(jv, JANSSON_VERSION) ? JANSSON_VERSION : NULL, NULL);
}
