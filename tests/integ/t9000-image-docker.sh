#!/bin/sh
# ctxpack image against real parts: a base made from a busybox-static rootfs
# (imported into a private dockerd, pushed to a local docker-registry),
# an app image built on it by ctxpack and pushed; dockerd pulls it from
# 127.0.0.1 and runs it (--network none), and what it prints proves the
# layers, env, workdir, user and cmd; skopeo inspects it; two copies of the
# tree give the same digest; an edit changes only the app layer's digest
# and uploads only it (counted by the proxy).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-registry.sh"
. "$(dirname "$0")/lib-docker.sh"
docker_require
reg_require "$REGISTRY_BIN" skopeo curl

reg_start || { echo "1..0 # SKIP docker-registry did not start"; exit 0; }
docker_start || { echo "1..0 # SKIP dockerd did not start"; exit 0; }
cd "$TESTDIR" || exit 1

# the base: busybox-static imported (with Docker's usual PATH), pushed to
# the local registry by dockerd itself (Docker's manifest types)
docker_base ctxpack-test/base:1 \
	--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' 
dk tag ctxpack-test/base:1 "$REG/base:1"
ok "dockerd pushes the base to the local registry" dk push -q "$REG/base:1"

# a backend: a dependency tree (a venv-like tree with a script, a
# package, a 0600 secret-ish file, a symlink) and an app whose
# .dockerignore leaves out the venv, caches and a local env file
mk_backend() {
	mkdir -p "$1/.venv/bin" "$1/.venv/lib/pkg" "$1/app" "$1/__pycache__"
	printf '#!/bin/sh\necho "hello from $1 in $(pwd) as $(id -u):$(id -g)"\n' \
		>"$1/.venv/bin/serve"
	chmod 755 "$1/.venv/bin/serve"
	printf 'VERSION = "1.0"\n' >"$1/.venv/lib/pkg/__init__.py"
	ln -s pkg "$1/.venv/lib/pkg-link"
	head -c 200000 /dev/zero | tr '\0' 'x' >"$1/.venv/lib/pkg/data.bin"
	printf 'print("app")\n' >"$1/app/main.py"
	printf 'cache\n' >"$1/__pycache__/main.cpython.pyc"
	printf 'SECRET=1\n' >"$1/.env"
	printf '.venv\n__pycache__\n.env\n' >"$1/.dockerignore"
}
mk_backend one
cp -a one two
# the copies differ in what the image must not depend on: mtimes, and
# the order files were made in
touch -d '2001-02-03 04:05:06' two/app/main.py two/.venv/lib/pkg/__init__.py
sleep 1 # past the index's racy window: the layers may be recorded

img() {
	src=$1
	shift
	ctxpack image --from "$REG/base:1" --layer "$src/.venv:/srv/.venv" --layer "$src:/srv" \
		--workdir /srv --env 'PATH=/srv/.venv/bin:$PATH' --env GREETING=hi \
		--user 65534:65534 --expose 8000 --label org.example.app=backend \
		--cmd '["serve", "backend"]' "$@"
}

img one -t "$REG/app:1" --json >one.json 2>one.err
ok "ctxpack image builds and pushes the app" test -s one.json
d1=$(python3 -c 'import json; print(json.load(open("one.json"))["digest"])')
like "$d1" '^sha256:[0-9a-f]{64}$' "it reports the manifest digest"

# skopeo reads it as an ordinary image
skop inspect --tls-verify=false "docker://$REG/app:1" >inspect.json 2>inspect.err
ok "skopeo inspects it" test -s inspect.json
is "$(python3 -c 'import json; d=json.load(open("inspect.json")); print(d["Digest"], len(d["Layers"]), d["Os"], d["Architecture"], d["Labels"]["org.example.app"])')" \
	"$d1 3 linux amd64 backend" "digest, three layers (base, deps, app), platform and label"
skop inspect --tls-verify=false --raw "docker://$REG/app:1" >raw.json
is "sha256:$(sha256_of raw.json)" "$d1" "the digest is the sha256 of the manifest served"
like "$(cat raw.json)" '"mediaType":"application/vnd.oci.image.layer.v1.tar\+gzip"' "gzip layers"
skop inspect --tls-verify=false --config "docker://$REG/app:1" >config.json
is "$(python3 -c '
import json; c = json.load(open("config.json")); k = c["config"]
print(k["WorkingDir"], k["User"], k["Cmd"], sorted(k["ExposedPorts"]), c["created"],
      len(c["rootfs"]["diff_ids"]), len(c["history"]))')" \
	"/srv 65534:65534 ['serve', 'backend'] ['8000/tcp'] 2000-01-01T00:00:00Z 3 10" \
	"config: workdir, user, cmd, ports, created, 3 diff_ids, history (the base's, 2 COPY, 7 config lines)"

# dockerd pulls it from 127.0.0.1 and runs it
ok "dockerd pulls the image" dk pull -q "$REG/app:1"
out=$(dk run --rm --network none --pull=never "$REG/app:1" 2>&1)
is "$out" "hello from backend in /srv as 65534:65534" "the cmd runs, from the deps layer on PATH, in the workdir, as the user"
env_out=$(dk run --rm --network none --pull=never "$REG/app:1" sh -c 'echo "$GREETING $PATH"')
is "$env_out" "hi /srv/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
	"env: set, and PATH expanded from the base's"
image_tree "$REG/app:1" srv >tree.txt
like "$(cat tree.txt)" "f 0755 0 'srv/.venv/bin/serve'" "the deps layer's files, exec bit kept"
like "$(cat tree.txt)" "l 0777 0 'srv/.venv/lib/pkg-link' -> pkg" "its symlink"
like "$(cat tree.txt)" "f 0644 0 'srv/app/main.py'" "the app layer's files"
ok "what the app's .dockerignore leaves out is not in the image" \
	sh -c "! grep -E \"'srv/(__pycache__|\\.env)\" tree.txt"
ok "the base is still there" dk run --rm --network none --pull=never "$REG/app:1" test -x /bin/busybox

# the same image from the other copy of the tree (other mtimes): the same
# digest, and nothing to upload
proxy_start
img two -t "$PROXY/app:2" --json >two.json 2>two.err
d2=$(python3 -c 'import json; print(json.load(open("two.json"))["digest"])')
is "$d2" "$d1" "two copies of the tree give the same digest"
ok "no blob was uploaded for it" sh -c "! grep -qE 'req [0-9]+ (PATCH|PUT) /v2/app/blobs/uploads/' '$PROXY_LOG'"
ok "the base's layer was not downloaded" sh -c "! grep -qE 'req [0-9]+ GET /v2/base/blobs/' '$PROXY_LOG'"
proxy_stop

# a second run on the same tree: both layers from their records
img one --json >again.json
is "$(python3 -c '
import json; d = json.load(open("again.json"))
print(d["digest"], [(l["reused"], l["made"]) for l in d["layers"][1:]])')" \
	"$d1 [(True, False), (True, False)]" "an unchanged tree: layers known from the index, nothing packed"

# an edit: only the app layer changes, and only it goes up
printf 'print("app, edited")\n' >one/app/main.py
sleep 1
proxy_start
img one -t "$PROXY/app:3" --json >edit.json 2>edit.err
python3 - edit.json one.json >edit.txt <<'EOF'
import json, sys
e, o = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
L, M = e["layers"], o["layers"]
print("base", L[0]["digest"] == M[0]["digest"])
print("deps", L[1]["digest"] == M[1]["digest"], L[1]["reused"], L[1]["made"])
print("app", L[2]["digest"] == M[2]["digest"], L[2]["packed"])
print("app-digest", L[2]["digest"])
print("uploaded", e["outputs"][0]["uploaded"],
      e["outputs"][0]["uploaded_bytes"] == L[2]["size"] + e["config_size"])
print("sizes", L[2]["size"], e["config"], e["config_size"])
EOF
is "$(sed -n 1,3p edit.txt)" "base True
deps True True False
app False True" "after an edit: base and deps unchanged (deps not packed), the app layer new"
is "$(sed -n 5p edit.txt)" "uploaded 1 True" "one layer uploaded: the blob bytes sent are the app layer's and the config's"
set -- $(sed -n 4p edit.txt) $(sed -n 6p edit.txt)
app_digest=${2#sha256:} app_size=$4 cfg_digest=${5#sha256:} cfg_size=$6
# what reached the registry: "req N METHOD PATH BODY-BYTES STATUS"
awk '$1 == "req" && $5 > 0 && $4 ~ "^/v2/app/blobs/uploads/" { print $4, $5 }' "$PROXY_LOG" |
	sed 's/.*digest=sha256%3A//' | sort >uploads.txt
printf '%s %s\n%s %s\n' "$app_digest" "$app_size" "$cfg_digest" "$cfg_size" | sort >want.txt
is "$(cat uploads.txt)" "$(cat want.txt)" "the registry received exactly the app layer and the config, each once"
proxy_stop
ok "dockerd pulls the edit" dk pull -q "$REG/app:3"
is "$(dk run --rm --network none --pull=never "$REG/app:3" cat /srv/app/main.py)" \
	'print("app, edited")' "the edited file is in the image"

done_testing
