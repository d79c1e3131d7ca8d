#!/bin/sh
# ctxpack --version: the version from VERSION, then one line per library
# with the version it runs with, each as the library itself reports it;
# checked against the versions installed (pkg-config, the same packages on
# Debian).  `ctxpack version` says the same.  libcurl's line comes from a
# memo after the first run (loading libcurl costs three times the rest of
# --version), used only while the loader would map the same file: a forged
# version in a memo with the right keys shows (so it is read), and any key
# that no longer holds (LD_LIBRARY_PATH, the library's stat, a damaged
# file) makes it load libcurl and ask again.
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
memo=$XDG_CACHE_HOME/ctxpack/libcurl-version
curl_line=$(printf '%s\n' "$out" | grep '^libcurl ')
ok "the first --version left a memo of libcurl's version" test -s "$memo"
is "$(ctxpack --version)" "$out" "the next --version says the same"
real=$(sed -n 6p "$memo")
forge() { # SED-EXPRESSION: the memo rewritten
	sed "$1" "$memo" > "$memo.new" && mv "$memo.new" "$memo"
}
forge "6s/.*/0.0.1-memo/"
like "$(ctxpack --version | grep '^libcurl ')" '^libcurl 0\.0\.1-memo ' \
	"a memo whose keys hold is what --version says (libcurl not loaded)"
mkdir -p "$TESTDIR/nolibs"
is "$(LD_LIBRARY_PATH=$TESTDIR/nolibs ctxpack --version | grep '^libcurl ')" "$curl_line" \
	"another LD_LIBRARY_PATH: libcurl is loaded and asked"
is "$(sed -n 6p "$memo")" "$real" "and the memo says the real version again"
forge "6s/.*/0.0.1-memo/"
forge '5s/^\([^ ]*\) [0-9]*/\1 1/'
is "$(ctxpack --version | grep '^libcurl ')" "$curl_line" \
	"the library's stat differs (another file): libcurl is loaded and asked"
printf 'garbage\n' > "$memo"
is "$(ctxpack --version | grep '^libcurl ')" "$curl_line" "a damaged memo: libcurl is asked"
: > "$memo"
is "$(ctxpack --version | grep '^libcurl ')" "$curl_line" "an empty memo: libcurl is asked"

like "$(ctxpack --help)" "--version +print the version and those of the libraries" \
	"--help describes it"
done_testing
