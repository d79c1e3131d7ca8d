#!/bin/sh
# push/pull against a real docker-registry on 127.0.0.1 without auth:
# round trip, digest, HEAD skip on re-push, chunked upload of a large blob,
# cross-repository mount, and the registry's own errors.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-registry.sh"
reg_require "$REGISTRY_BIN" curl

reg_start || { echo "1..0 # SKIP docker-registry did not start"; exit 0; }
cd "$TESTDIR" || exit 1
head -c 1000000 /dev/urandom >small.bin
head -c 20971520 /dev/urandom >big.bin

d=$(ctxpack push -q small.bin "$REG/ctx/anon:v1")
like "$d" '^sha256:[0-9a-f]{64}$' "push prints a digest"
curl -s -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
	"http://$REG/v2/ctx/anon/manifests/v1" >manifest.json
is "sha256:$(sha256_of manifest.json)" "$d" "the digest is the sha256 of the manifest the registry serves"
like "$(cat manifest.json)" '"artifactType":"application/vnd.ctxpack.artifact.v1"' "default artifactType"
ok "pull by tag" ctxpack pull -q -o small.out "$REG/ctx/anon:v1"
same_files small.out small.bin "pulled bytes equal"
ok "pull by digest" ctxpack pull -q -o small.out2 "$REG/ctx/anon@$d"
same_files small.out2 small.bin "pulled-by-digest bytes equal"
ok "localhost works too (plain HTTP on loopback)" \
	ctxpack pull -q -o small.out3 "localhost:${REG#*:}/ctx/anon:v1"

# re-push: the proxy counts the request body bytes that reach the registry
proxy_start
json=$(ctxpack push --json small.bin "$PROXY/ctx/anon:v1")
like "$json" '"uploaded":0' "re-push reports nothing uploaded"
up=$(proxy_up_bytes)
ok "re-push sent no blob bytes (request bodies: $up bytes)" test "$up" -lt 4096
like "$(grep -c 'HEAD /v2/ctx/anon/blobs/' "$PROXY_LOG")" '^2$' "one HEAD per blob (layer, config)"
ok "re-push does not POST an upload" sh -c "! grep -q 'POST' '$PROXY_LOG'"
proxy_stop

# a 20 MiB blob above the monolithic limit takes the chunked path
# (8 MiB PATCHes with Content-Range)
CTXPACK_MONOLITHIC_MAX=10000000 ctxpack push -v big.bin "$REG/ctx/anon:big" >big.digest 2>big.log
patches=$(grep -c 'PATCH .*/blobs/uploads/.* -> 202' big.log)
is "$patches" 3 "20 MiB went up in 3 chunks"
ok "then one PUT closes the upload" grep -q 'PUT .*_state=.*digest=sha256.* -> 201' big.log
ctxpack pull -q -o - "$REG/ctx/anon:big" >big.out
same_files big.out big.bin "the chunked blob comes back intact"
ctxpack push -v big.bin "$REG/ctx/mono:big" >/dev/null 2>mono.log
ok "under the monolithic limit (512 MiB) it is one PUT" \
	sh -c "! grep -q PATCH mono.log && grep -q 'PUT .*digest=.* -> 201' mono.log"

# cross-repository mount
ctxpack push -v --mount-from ctx/anon big.bin "$REG/ctx/other:m" >/dev/null 2>mount.log
ok "a blob in a sibling repository is mounted, not uploaded" grep -q 'mounted from ctx/anon' mount.log
ok "mounted blob pulls" ctxpack pull -q -o mounted.out "$REG/ctx/other:m"
same_files mounted.out big.bin "mounted bytes equal"

# the registry's own errors, naming the reference
exits 1 "missing tag fails" ctxpack pull -o x "$REG/ctx/anon:nope"
like "$(cat "$TESTDIR/.out")" "pull $REG/ctx/anon:nope: manifest nope not found: MANIFEST_UNKNOWN: manifest unknown" \
	"message carries the registry's code and message"
ok "no output file on failure" test ! -e x
exits 1 "missing repository fails" ctxpack pull -o x "$REG/ctx/none:v1"
like "$(cat "$TESTDIR/.out")" "(NAME|MANIFEST)_UNKNOWN" "the registry's error code is reported"
port=$(free_port)
exits 1 "nothing listening fails" ctxpack pull -o x "127.0.0.1:$port/ctx/anon:v1"
like "$(cat "$TESTDIR/.out")" "cannot reach 127.0.0.1:$port" "and says it cannot reach it"
ok "verbose output never shows an Authorization header" sh -c "! grep -qi authorization big.log"

done_testing
