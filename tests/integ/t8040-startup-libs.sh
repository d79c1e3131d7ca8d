#!/bin/sh
# Start-up (issue 15): the binary needs no shared library but libc (and the
# sanitizer runtimes in an ASan build) when it starts; libcurl is loaded
# only by the commands that talk to a registry, and when it cannot be
# loaded those commands fail with an error naming it while every other
# command works.  (How fast it starts is measured in bench/, not here.)
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integ/lib-registry.sh"

needed=$(ldd "$CTXPACK" 2>&1)
ok "ldd runs on the binary" ldd "$CTXPACK"
is "$(printf '%s\n' "$needed" | grep -cE 'lib(curl|archive|xml2|icu|zstd|lmdb|jansson|xxhash|ssl|crypto|nettle|gnutls|ldap|gssapi)')" \
	0 "no libcurl, libarchive (nor what they pull in), libzstd, liblmdb, libjansson or libxxhash is loaded at start"
like "$needed" 'libc\.so\.6' "libc is"

C=$TESTDIR/ctx
mkdir -p "$C/src"
printf 'FROM busybox\nCOPY . /app\n' > "$C/Dockerfile"
printf '*.log\n' > "$C/.dockerignore"
echo hello > "$C/src/a.txt"
echo noise > "$C/debug.log"
ctxpack pack -q --no-cache -o "$TESTDIR/ref.tar.zst" "$C"

reg_start || { echo "# docker-registry did not start" >&2; }
CURL_SO=$(ldconfig -p 2>/dev/null | sed -n 's/^[[:space:]]*libcurl\.so\.4 (libc6,x86-64) => //p' | head -n 1)
[ -n "$CURL_SO" ] && CURL_SO=$(readlink -f "$CURL_SO")

# without_curl CMD...: CMD in a mount namespace where libcurl.so.4 is
# /dev/null (so dlopen finds the file and cannot load it).
without_curl() {
	unshare -m --propagation private sh -c \
		'mount --bind /dev/null "$0" && exec "$@"' "$CURL_SO" "$@"
}
if [ -z "$CURL_SO" ] || [ -z "${REG:-}" ] ||
	! unshare -m --propagation private sh -c "mount --bind /dev/null '$CURL_SO'" 2>/dev/null; then
	for i in 1 2 3 4 5 6 7 8 9; do
		skip "cannot hide libcurl here (needs unshare -m, mount and a registry)"
	done
	done_testing
	exit 0
fi
run() { without_curl $EXEC_PREFIX "$CTXPACK" "$@"; }

exits 0 "libcurl unloadable: --version works" run --version
exits 0 "ls works" run ls "$C"
is "$(run ls "$C")" "$(ctxpack ls "$C")" "and lists the same"
exits 0 "pack works" run pack -q -o "$TESTDIR/nocurl.tar.zst" "$C"
same_files "$TESTDIR/nocurl.tar.zst" "$TESTDIR/ref.tar.zst" "the same archive"
exits 0 "cache save to an oci: store works" \
	run cache save --key k1 --store "oci:$TESTDIR/store" "$C/src"

exits 1 "push to a registry: exit 1" run push "$TESTDIR/ref.tar.zst" "$REG/t/ctx:1"
like "$(cat "$TESTDIR/.out")" "^ctxpack: error: cannot load libcurl \(libcurl\.so\.4\).*registry" \
	"the error names libcurl"

# with libcurl there, the same push works (the library is loaded on demand)
exits 0 "with libcurl: the push works" ctxpack push "$TESTDIR/ref.tar.zst" "$REG/t/ctx:1"
done_testing
