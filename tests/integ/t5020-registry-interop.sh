#!/bin/sh
# Interop with skopeo, an independent registry client: skopeo reads what
# ctxpack pushed, ctxpack reads what skopeo pushed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-registry.sh"
reg_require "$REGISTRY_BIN" skopeo

reg_start || { echo "1..0 # SKIP docker-registry did not start"; exit 0; }
cd "$TESTDIR" || exit 1
head -c 3000000 /dev/urandom >blob.bin
printf '\037\213\010\000' >layer.tar.gz; head -c 200000 /dev/urandom >>layer.tar.gz
want=$(sha256_of blob.bin)

d=$(ctxpack push -q -a org.opencontainers.image.created=2026-01-02T03:04:05Z \
	blob.bin "$REG/interop/a:v1")
raw=$(skop inspect --tls-verify=false --raw "docker://$REG/interop/a:v1")
is "sha256:$(printf '%s' "$raw" | sha256sum | cut -d' ' -f1)" "$d" \
	"skopeo sees the manifest ctxpack pushed, byte for byte"

ok "skopeo copies ctxpack's artifact to an OCI layout" \
	skop copy --src-tls-verify=false "docker://$REG/interop/a:v1" oci:sk:v1
man=$(cat "sk/blobs/sha256/$(sed 's/.*"digest":"sha256:\([0-9a-f]*\)".*/\1/' sk/index.json)")
like "$man" "\"digest\":\"sha256:$want\"" "the layer digest in skopeo's copy matches"
is "$(sha256_of "sk/blobs/sha256/$want")" "$want" "skopeo verified and stored the same layer bytes"

# skopeo pushes (from a layout ctxpack wrote); ctxpack pulls
ctxpack push -q layer.tar.gz oci:lay:gz >/dev/null
ok "skopeo pushes an artifact to the registry" \
	skop copy --dest-tls-verify=false oci:lay:gz "docker://$REG/interop/b:gz"
ok "ctxpack pulls what skopeo pushed" ctxpack pull -q -o got.tar.gz "$REG/interop/b:gz"
same_files got.tar.gz layer.tar.gz "bytes equal"
like "$(skop inspect --tls-verify=false --raw "docker://$REG/interop/b:gz")" 'tar\+gzip' \
	"gzip magic gave a tar+gzip layer"

# skopeo copies registry to registry; ctxpack pulls the copy by digest
ok "skopeo copies between repositories" skop copy --src-tls-verify=false \
	--dest-tls-verify=false "docker://$REG/interop/a:v1" "docker://$REG/interop/c:v1"
ok "ctxpack pulls the copy by digest" ctxpack pull -q -o c.bin "$REG/interop/c@$d"
same_files c.bin blob.bin "bytes equal"

done_testing
