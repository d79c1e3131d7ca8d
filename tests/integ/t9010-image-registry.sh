#!/bin/sh
# ctxpack image without a daemon: OCI layouts as outputs and bases, a
# base that is a multi-platform index (--platform), base layers mounted
# from the base's repository on the same registry and copied from another
# registry, zstd layers, SOURCE_DATE_EPOCH, --no-cache giving the same
# digest, and bad input (each error names what is wrong, exit 1 or 2,
# nothing half-pushed).  skopeo is the independent reader.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-registry.sh"
reg_require "$REGISTRY_BIN" skopeo

reg_start || { echo "1..0 # SKIP docker-registry did not start"; exit 0; }
REG1=$REG
reg_start || { echo "1..0 # SKIP second docker-registry did not start"; exit 0; }
REG2=$REG
REG=$REG1 # the proxy goes in front of registry 1
cd "$TESTDIR" || exit 1

json() { python3 -c "import json, sys; d = json.load(open(sys.argv[1])); print($2)" "$1"; }

# a small web site and a "dependency" tree
mkdir -p site/dist/assets deps/lib
printf '<h1>hi</h1>\n' >site/dist/index.html
printf 'console.log(1)\n' >site/dist/assets/app.js
head -c 300000 /dev/urandom >deps/lib/blob.so
sleep 1

# a base in a layout: from scratch, with a file and an env
mkdir -p rootfs/bin
printf '#!/bin/sh\n' >rootfs/bin/sh
chmod 755 rootfs/bin/sh
ok "an image from scratch into a layout" \
	ctxpack image --from scratch --layer rootfs:/ --env PATH=/bin -t oci:base-layout:v1
skop inspect oci:base-layout:v1 >base.json
is "$(json base.json 'len(d["Layers"]), d["Env"], d["Os"], d["Architecture"]')" \
	"1 ['PATH=/bin'] linux amd64" "skopeo reads it: one layer, env, linux/amd64"

# the layout base, pushed by skopeo to registry 1 as an index of two
# platforms (the amd64 one is ours; an arm64 one made the same way)
ok "an arm64 image from scratch" \
	ctxpack image --platform linux/arm64/v8 --from scratch --layer rootfs:/ -t oci:base-layout:arm
is "$(skop inspect --config oci:base-layout:arm | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["architecture"], d.get("variant"))')" \
	"arm64 v8" "--platform sets a scratch image's platform"
skop copy -q --dest-tls-verify=false oci:base-layout:v1 "docker://$REG1/base/amd64:1"
skop copy -q --dest-tls-verify=false oci:base-layout:arm "docker://$REG1/base/arm64:1"
amd=$(skop inspect --tls-verify=false --raw "docker://$REG1/base/amd64:1" | sha256sum | cut -d' ' -f1)
arm=$(skop inspect --tls-verify=false --raw "docker://$REG1/base/arm64:1" | sha256sum | cut -d' ' -f1)
amdsz=$(skop inspect --tls-verify=false --raw "docker://$REG1/base/amd64:1" | wc -c)
armsz=$(skop inspect --tls-verify=false --raw "docker://$REG1/base/arm64:1" | wc -c)
# the index goes into repository base/multi with its manifests
skop copy -q --src-tls-verify=false --dest-tls-verify=false "docker://$REG1/base/amd64:1" "docker://$REG1/base/multi:amd64"
skop copy -q --src-tls-verify=false --dest-tls-verify=false "docker://$REG1/base/arm64:1" "docker://$REG1/base/multi:arm64"
cat >index.json <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$arm","size":$armsz,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$amd","size":$amdsz,"platform":{"os":"linux","architecture":"amd64"}}]}
EOF
curl -s -f -X PUT -H 'Content-Type: application/vnd.oci.image.index.v1+json' --data-binary @index.json \
	"http://$REG1/v2/base/multi/manifests/1" >/dev/null
ok "the index is in the registry" curl -s -f -o /dev/null \
	-H 'Accept: application/vnd.oci.image.index.v1+json' "http://$REG1/v2/base/multi/manifests/1"

# on the index: linux/amd64 by default, the base layers mounted from
# base/multi into app/web (same registry), never downloaded
proxy_start
ctxpack image --json --from "$PROXY/base/multi:1" --layer site/dist:/www \
	--cmd 'httpd -f -p 8080 -h /www' -t "$PROXY/app/web:1" >web.json 2>web.err
ok "an image on a multi-platform base" test -s web.json
is "$(json web.json 'd["base"].split("@")[1], d["outputs"][0]["mounted"], d["outputs"][0]["uploaded"], d["outputs"][0]["copied"]')" \
	"sha256:$amd 1 1 0" "the amd64 entry picked; its layer mounted, ours uploaded, nothing copied"
base_layer=$(json web.json 'd["layers"][0]["digest"]')
ok "the base's layer was never downloaded (its config was)" \
	sh -c "! grep -q 'GET /v2/base/multi/blobs/$base_layer' '$PROXY_LOG'"
ok "the mount was asked for" grep -qE 'req [0-9]+ POST /v2/app/web/blobs/uploads/\?mount=' "$PROXY_LOG"
proxy_stop
skop inspect --tls-verify=false --config "docker://$REG1/app/web:1" >web-config.json
is "$(json web-config.json 'd["config"]["Cmd"], d["config"]["Env"], d["architecture"]')" \
	"['/bin/sh', '-c', 'httpd -f -p 8080 -h /www'] ['PATH=/bin'] amd64" \
	"the shell form of --cmd, the base's env kept"
like "$(skop inspect --tls-verify=false --raw "docker://$REG1/app/web:1")" \
	"\"org.opencontainers.image.base.digest\":\"sha256:$amd\"" "the base's digest as an annotation"

ctxpack image --json --platform linux/arm64/v8 --from "$REG1/base/multi:1" --layer site/dist:/www \
	>arm.json 2>arm.err
is "$(json arm.json 'd["base"].split("@")[1], len(d["outputs"])')" "sha256:$arm 0" \
	"--platform linux/arm64/v8 picks the arm64 entry (no output: the digest only)"
exits 1 "a platform the index lacks" ctxpack image --platform linux/s390x --from "$REG1/base/multi:1"
like "$(cat "$TESTDIR/.out")" "no linux/s390x image in the index \(it has: linux/arm64/v8, linux/amd64\)" \
	"the error lists the platforms there are"

# to another registry: the base layer is fetched once and sent
ctxpack image --json --from "$REG1/base/multi:1" --layer site/dist:/www \
	--cmd 'httpd -f -p 8080 -h /www' -t "$REG2/web:1" \
	-t "oci:web-layout:1" >two.json 2>two.err
is "$(json two.json '[(o["copied"], o["uploaded"]) for o in d["outputs"]]')" "[(1, 1), (1, 1)]" \
	"another registry and a layout get the base's layer copied and ours uploaded"
is "$(json two.json 'd["digest"]')" "$(json web.json 'd["digest"]')" \
	"the same image wherever it goes, whatever address the base was read from"
ok "skopeo copies it from the second registry" \
	skop copy -q --src-tls-verify=false "docker://$REG2/web:1" oci:copied:1
ok "and from the layout" skop copy -q oci:web-layout:1 oci:copied:2

# SOURCE_DATE_EPOCH, --no-cache, zstd
d0=$(json web.json 'd["digest"]')
d_nc=$(ctxpack image -q --no-cache --from "$REG1/base/multi:1" --layer site/dist:/www \
	--cmd 'httpd -f -p 8080 -h /www')
is "$d_nc" "$d0" "--no-cache packs cold and gives the same digest"
d_epoch=$(SOURCE_DATE_EPOCH=1700000000 ctxpack image -q --from "$REG1/base/multi:1" \
	--layer site/dist:/www --cmd 'httpd -f -p 8080 -h /www' -t oci:epoch:1)
isnt "$d_epoch" "$d0" "another SOURCE_DATE_EPOCH is another image"
is "$(skop inspect oci:epoch:1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["Created"])')" \
	"2023-11-14T22:13:20Z" "created from SOURCE_DATE_EPOCH"
ctxpack image --json --compress zstd --from scratch --layer deps:/deps -t oci:zstd:1 >zstd.json
is "$(json zstd.json 'd["layers"][0]["mediaType"]')" "application/vnd.oci.image.layer.v1.tar+zstd" \
	"--compress zstd makes zstd layers"
ok "skopeo reads the zstd image" skop copy -q oci:zstd:1 oci:zstd-copy:1
mkdir -p unpacked
blob=$(json zstd.json 'd["layers"][0]["digest"].split(":")[1]')
zstd -dc "zstd/blobs/sha256/$blob" | tar -C unpacked -xf -
same_files unpacked/deps/lib/blob.so deps/lib/blob.so "the zstd layer holds the files below /deps"

# --ignore-file: a monorepo's root .dockerignore for a layer below it
# (its patterns matched relative to the layer's SRC), then SRC's own again
mkdir -p mono/backend/app mono/backend/.venv/lib mono/backend/app/__pycache__ mono/site
printf '**/.venv\n**/__pycache__\n' >mono/.dockerignore
printf 'print(1)\n' >mono/backend/app/main.py
printf 'x\n' >mono/backend/.venv/lib/dep.py
printf 'c\n' >mono/backend/app/__pycache__/main.pyc
printf 'junk\n' >mono/site/junk.tmp
printf '*.tmp\n' >mono/site/.dockerignore
printf 'ok\n' >mono/site/index.html
ctxpack image --json --from scratch --ignore-file mono/.dockerignore --layer mono/backend:/app \
	--ignore-file '' --layer mono/site:/www -t oci:mono:1 >mono.json
layer_names() {
	tar -tzf "mono/blobs/sha256/$(json mono.json "d['layers'][$1]['digest'].split(':')[1]")" | tr '\n' ' '
}
is "$(layer_names 0)" "app/ app/app/ app/app/main.py " \
	"the root's patterns apply to the backend layer (no .venv, no __pycache__)"
is "$(layer_names 1)" "www/ www/.dockerignore www/index.html " \
	"--ignore-file '' gives the next layer its own ignore file back"

# bad input: usage errors (2) and failures (1), each naming what is wrong
exits 2 "no --from" ctxpack image --layer site:/www
exits 2 "a --layer without an absolute DEST" ctxpack image --from scratch --layer site:www
like "$(cat "$TESTDIR/.out")" "site:www" "names the argument"
exits 2 "a bad --expose" ctxpack image --from scratch --expose 99999
exits 2 "a bad --env" ctxpack image --from scratch --env NOVALUE
exits 2 "a bad --platform" ctxpack image --from scratch --platform amd64
exits 2 "a destination with .." ctxpack image --from scratch --layer site:/a/../b
exits 1 "a missing source" ctxpack image --from scratch --layer nothere:/x
like "$(cat "$TESTDIR/.out")" "layer nothere" "names the layer"
exits 1 "a missing base" ctxpack image --from "$REG1/base/none:1" -t "$REG1/app/x:1"
like "$(cat "$TESTDIR/.out")" "base $REG1/base/none:1" "names the base"
ok "nothing was pushed" sh -c "! curl -s -f -o /dev/null 'http://$REG1/v2/app/x/manifests/1'"
exits 2 "an output by digest" ctxpack image --from scratch -t "$REG1/app/x@sha256:$amd"
ctxpack image --from scratch --cmd '["a", b]' >cmd.out 2>cmd.err
like "$(cat cmd.err)" "not a JSON array of strings: run by /bin/sh -c" "an almost-JSON --cmd is warned about"
exits 2 "a bad variable reference" ctxpack image --from scratch --env 'A=${B'
like "$(cat "$TESTDIR/.out")" "bad variable reference" "says so"

done_testing
