#!/bin/sh
# ctxpack --version: the version from VERSION, then one line per library
# with the version it runs with, each as the library itself reports it;
# checked against the versions installed (pkg-config, the same packages on
# Debian).  `ctxpack version` says the same.
. "$(dirname "$0")/lib.sh"

out=$(ctxpack --version)
is "$?" 0 "--version exits 0"
is "$(printf '%s\n' "$out" | head -n 1)" "ctxpack $(cat "$ROOT/VERSION")" \
	"the first line is ctxpack and the version"
is "$(ctxpack version)" "$out" "'ctxpack version' says the same"
is "$(ctxpack --version 2>&1 >/dev/null)" "" "nothing on stderr"

for lib in libarchive libzstd lmdb libxxhash libcurl jansson; do
	line=$(printf '%s\n' "$out" | grep "^$lib ")
	want=$(pkg-config --modversion "$lib" 2>/dev/null)
	if [ -z "$want" ]; then
		skip "$lib: pkg-config does not know it"
		continue
	fi
	is "$(printf '%s\n' "$line" | cut -d' ' -f2)" "$want" "$lib: runs with $want"
done
like "$(printf '%s\n' "$out" | grep '^libcurl ')" '\((OpenSSL|GnuTLS|wolfSSL|mbedTLS|no TLS)' \
	"libcurl: its TLS library"
like "$(printf '%s\n' "$out" | grep '^libarchive ')" 'zlib/[0-9]' \
	"libarchive: the libraries it writes gzip with"
is "$(printf '%s\n' "$out" | wc -l)" 7 "ctxpack and six libraries, one line each"
like "$(ctxpack --help)" "--version +print the version and those of the libraries" \
	"--help describes it"
done_testing
