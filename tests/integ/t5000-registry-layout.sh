#!/bin/sh
# push/pull on a local OCI layout (oci:DIR:tag), read by skopeo.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-registry.sh"
reg_require skopeo

cd "$TESTDIR" || exit 1
head -c 300000 /dev/urandom >data.bin
printf '\050\265\057\375' >z.tar.zst; head -c 5000 /dev/urandom >>z.tar.zst

out=$(ctxpack push -q -a com.example.k=v --artifact-type application/vnd.example.test.v1 data.bin oci:lay:v1)
ok "push to an oci: layout" test -n "$out"
like "$out" '^sha256:[0-9a-f]{64}$' "push prints the manifest digest"
mdigest=${out#sha256:}
is "$(sha256sum "lay/blobs/sha256/$mdigest" | cut -d' ' -f1)" "$mdigest" \
	"the digest is the sha256 of the stored manifest"
is "$(cat lay/oci-layout)" '{"imageLayoutVersion":"1.0.0"}' "oci-layout file"
like "$(cat lay/index.json)" '"org.opencontainers.image.ref.name":"v1"' "index.json names the tag"
ok "the layer blob is stored under its digest" test -f "lay/blobs/sha256/$(sha256_of data.bin)"

raw=$(skop inspect --raw oci:lay:v1 2>&1)
like "$raw" '"artifactType":"application/vnd.example.test.v1"' "skopeo inspect reads the layout"
like "$raw" '"com.example.k":"v"' "manifest annotation from --annotation"
like "$raw" '"org.opencontainers.image.title":"data.bin"' "layer title is the file name"
like "$raw" '"mediaType":"application/vnd.oci.image.layer.v1.tar"' "random bytes are a plain tar layer"
like "$raw" '"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","mediaType":"application/vnd.oci.empty.v1\+json","size":2' \
	"the empty config"

ok "skopeo copies the ctxpack layout (verifying every blob)" \
	skop copy oci:lay:v1 oci:copy:c1
is "$(sha256_of "copy/blobs/sha256/$(sha256_of data.bin)")" "$(sha256_of data.bin)" \
	"skopeo's copy has the same layer"

mkdir -p p && cd p || exit 1
ok "pull into the current dir by title" ctxpack pull -q oci:../copy:c1
same_files data.bin ../data.bin "pulled bytes equal (from a skopeo-written layout)"
ok "pull -o FILE" ctxpack pull -q -o named.bin oci:../lay:v1
same_files named.bin ../data.bin "pull -o bytes equal"
ctxpack pull -q -o - oci:../lay:v1 >stdout.bin
same_files stdout.bin ../data.bin "pull -o - writes the layer to stdout"
cd .. || exit 1

zd=$(ctxpack push -q z.tar.zst oci:lay:z)
like "$(skop inspect --raw oci:lay:z)" 'tar\+zstd' "zstd magic gives a tar+zstd layer"
json=$(ctxpack push --json z.tar.zst oci:lay:z)
like "$json" "^\\{\"digest\":\"$zd\",\"size\":[0-9]+,\"ref\":\"oci:lay:z\",\"layer\":\\{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\\+zstd\"" \
	"push --json"
like "$json" '"uploaded":0}$' "a re-push writes no blob"

# a hostile title is refused as a file name
ctxpack push -q --title ../evil data.bin oci:lay:evil >/dev/null
mkdir -p q && cd q || exit 1
exits 2 "pull refuses a title with '..' or '/'" ctxpack pull oci:../lay:evil
like "$(cat "$TESTDIR/.out")" "refusing the layer title" "and says why"
ok "nothing was written outside" test ! -e ../evil
cd .. || exit 1

# errors name the reference
exits 1 "pull of a missing tag fails" ctxpack pull oci:lay:nope
like "$(cat "$TESTDIR/.out")" "pull oci:lay:nope: manifest nope not found" "missing tag message"
exits 2 "bad reference is a usage error" ctxpack push data.bin 'oci:lay:bad tag'
exits 2 "push by digest is refused" ctxpack push data.bin "oci:lay@sha256:$mdigest"
exits 1 "missing file" ctxpack push nosuch.bin oci:lay:x
exits 2 "bad --annotation" ctxpack push -a novalue data.bin oci:lay:x

# the digest cache: an unchanged old file is not hashed again; any write
# (even one that keeps the size and the mtime) is noticed through ctime
head -c 100000 /dev/urandom >old.bin
touch -d '2 hours ago' old.bin
sleep 3 # entries are stored only for files whose ctime is over 2 s old
ctxpack push -q old.bin oci:lay:old >/dev/null
ctxpack push -v old.bin oci:lay:old2 >/dev/null 2>dc.log
ok "an unchanged file's digest comes from the digest cache" grep -q 'from the digest cache' dc.log
m=$(stat -c %y old.bin)
head -c 100000 /dev/urandom >new.bin
cat new.bin >old.bin
touch -d "$m" old.bin
ctxpack push -v old.bin oci:lay:changed >/dev/null 2>dc2.log
ok "a rewritten file (same size and mtime) is hashed again" sh -c "! grep -q 'digest cache' dc2.log"
ctxpack pull -q -o changed.out oci:lay:changed
same_files changed.out new.bin "and its new bytes are stored"

# several pushers at once: every tag lands, index.json stays whole
for i in 1 2 3 4 5 6; do
	ctxpack push -q data.bin "oci:conc:t$i" >/dev/null &
done
wait
n=$(skop inspect --raw oci:conc:t1 >/dev/null 2>&1 && grep -o '"org.opencontainers.image.ref.name"' conc/index.json | wc -l)
is "$n" 6 "six concurrent pushes, six tags"
ok "no temporary files left" sh -c '! ls conc/blobs/sha256 | grep -q tmp'

done_testing
