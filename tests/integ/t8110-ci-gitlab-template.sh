#!/bin/sh
# The GitLab template (ci/gitlab/ctxpack.gitlab-ci.yml) run as a runner
# runs it: a pipeline that includes it and extends .ctxpack-uv,
# .ctxpack-pnpm and .ctxpack-docker-build is resolved by
# tests/integ/gitlab_ci.py (include, extends, !reference, variables) and
# each job's before_script and script lines run under sh -e in a fresh
# checkout of the seed's monorepo, with stand-ins for uv, pnpm and docker
# (offline: they build .venv and node_modules from the lock files and
# count their runs; docker reads the context):
#
#   - without ctxpack in the "image", the first job builds it from
#     CTXPACK_GIT_URL at CTXPACK_GIT_REF into .ctxpack/tool (what the
#     template's cache: keeps), the next jobs use that build;
#   - the store is the project's registry (a docker-registry with htpasswd:
#     the job's CI_REGISTRY_USER/PASSWORD are used), and, with the registry
#     off, the embedded oci: store in the project directory; the
#     credentials file the template writes for the job is gone once the
#     job's after_script ran (a shell runner's /tmp outlives the job);
#   - pipeline 1 misses and runs uv sync and pnpm install; pipeline 2 hits
#     and runs neither, with the trees restored; a changed uv.lock runs uv
#     warm and pnpm not at all; CTXPACK_RUN_ARGS=--read-only (a merge
#     request from a fork) runs it warm and leaves the registry as it was;
#   - the docker build job sends the context, gzip, with its Dockerfile.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-registry.sh"

reg_require "$REGISTRY_BIN" htpasswd git make
python3 -c 'import yaml' 2>/dev/null || { echo "1..0 # SKIP python3-yaml not installed"; exit 0; }
cd "$TESTDIR" || exit 1
umask 022

# --- the stand-ins ---
mkdir -p stand-in bin
ln -s "$CTXPACK" bin/ctxpack
cat >stand-in/uv <<'EOS'
#!/usr/bin/env python3
# uv sync --frozen: a .venv with a dist-info per package of uv.lock
import os, re, sys
assert sys.argv[1:] == ["sync", "--frozen"], sys.argv
warm = os.path.isdir(".venv")
with open(os.environ["RUNS"], "a") as f:
    f.write("uv %s %s\n" % (os.path.basename(os.getcwd()), "warm" if warm else "cold"))
lock = open("uv.lock").read()
sp = ".venv/lib/python3/site-packages"
os.makedirs(sp, exist_ok=True)
os.makedirs(".venv/bin", exist_ok=True)
open(".venv/pyvenv.cfg", "w").write("home = /usr/bin\n")
with open(".venv/bin/python", "w") as f:
    f.write("#!/bin/sh\nexec python3 \"$@\"\n")
os.chmod(".venv/bin/python", 0o755)
for name, ver in re.findall(r'name = "([^"]+)"\nversion = "([^"]+)"', lock):
    d = os.path.join(sp, "%s-%s.dist-info" % (name.replace("-", "_"), ver))
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, "METADATA"), "w").write("Name: %s\nVersion: %s\n" % (name, ver))
EOS
cat >stand-in/pnpm <<'EOS'
#!/usr/bin/env python3
# pnpm install --frozen-lockfile: node_modules/.pnpm/NAME@VERSION and a
# relative link node_modules/NAME to it, per dependency of the lock file
import os, re, sys
assert sys.argv[1:] == ["install", "--frozen-lockfile"], sys.argv
warm = os.path.isdir("node_modules")
with open(os.environ["RUNS"], "a") as f:
    f.write("pnpm %s %s\n" % (os.path.basename(os.getcwd()), "warm" if warm else "cold"))
lock = open("pnpm-lock.yaml").read()
deps = re.findall(r"\n      '?([^'\s:]+)'?:\n        specifier: [^\n]+\n        version: ([^\s(]+)", lock)
assert deps, "no dependencies in pnpm-lock.yaml"
for name, ver in deps:
    real = os.path.join("node_modules", ".pnpm", "%s@%s" % (name.replace("/", "+"), ver),
                        "node_modules", name)
    os.makedirs(real, exist_ok=True)
    open(os.path.join(real, "package.json"), "w").write('{"name":"%s","version":"%s"}\n' % (name, ver))
    link = os.path.join("node_modules", name)
    os.makedirs(os.path.dirname(link), exist_ok=True)
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(os.path.relpath(real, os.path.dirname(link)), link)
open("node_modules/.modules.yaml", "w").write("layoutVersion: 5\n")
EOS
cat >stand-in/docker <<'EOS'
#!/bin/sh
# docker build -f DOCKERFILE -t TAG -: reads the context from stdin
[ "$1 $2 $4 $6" = "build -f -t -" ] || { echo "docker stand-in: $*" >&2; exit 2; }
cat >"$DOCKER_CONTEXT"
echo "$3 $5" >"$DOCKER_ARGS"
tar -tzf "$DOCKER_CONTEXT" | grep -qx "$3" || { echo "docker stand-in: no $3 in the context" >&2; exit 1; }
echo "Successfully tagged $5"
EOS
chmod +x stand-in/*

# the user's pipeline
mkdir -p src
cp -a "$ROOT/examples/monorepo/." src/
cat >src/.gitlab-ci.yml <<'EOF2'
include:
  - local: ci/gitlab/ctxpack.gitlab-ci.yml

backend:
  extends: .ctxpack-uv
  variables:
    CTXPACK_UV_DIR: backend
  script:
    - test -f backend/.venv/lib/python3/site-packages/fastapi-0.115.6.dist-info/METADATA
    - backend/.venv/bin/python -c 'print("venv ok")'

frontend:
  extends: .ctxpack-pnpm
  variables:
    CTXPACK_PNPM_DIR: frontend
  script:
    - test -f frontend/node_modules/react/package.json
    - test -f frontend/node_modules/.modules.yaml

image:
  extends: .ctxpack-docker-build
EOF2

# the registry: htpasswd, the job token as the password
htpasswd -Bbn gitlab-ci-token job-token-secret >htpasswd
reg_start --htpasswd "$TESTDIR/htpasswd" || { echo "1..0 # SKIP the registry did not start"; exit 0; }

export RUNS=$TESTDIR/runs DOCKER_CONTEXT=$TESTDIR/docker-context DOCKER_ARGS=$TESTDIR/docker-args
: >"$RUNS"
BASEPATH=
IFS=:
for d in $PATH; do
	[ -n "$d" ] && [ ! -e "$d/ctxpack" ] && [ "$d" != . ] && BASEPATH=${BASEPATH:+$BASEPATH:}$d
done
unset IFS

# pipeline NAME: a fresh checkout in $P, with what the runner's cache of
# .ctxpack/tool holds
pipeline() {
	P=$TESTDIR/p-$1
	rm -rf "$P"
	cp -a src "$P"
	if [ -d runner-cache/tool ]; then mkdir -p "$P/.ctxpack" && cp -a runner-cache/tool "$P/.ctxpack/"; fi
}
# jobrun JOB: the job's script in $P, under sh -e, then its after_script in
# a shell of its own, as the runner does; its log in $TESTDIR/log. The jobs'
# temporary directory is $TESTDIR/tmp (a shell runner's /tmp): $AUTH_DURING
# is how many credential files the template had left there when the script
# ended, $AUTH_AFTER how many are left once the after_script ran.
JOB_ID=100
jobrun() {
	JOB_ID=$((JOB_ID + 1))
	python3 "$ROOT/tests/integ/gitlab_ci.py" "$P/.gitlab-ci.yml" "$ROOT" "$1" >"$TESTDIR/job-$1.sh" &&
		python3 "$ROOT/tests/integ/gitlab_ci.py" "$P/.gitlab-ci.yml" "$ROOT" "$1" after \
			>"$TESTDIR/job-$1-after.sh" || return 2
	(cd "$P" && CI_JOB_ID=$JOB_ID TMPDIR=$TESTDIR/tmp sh "$TESTDIR/job-$1.sh") >"$TESTDIR/log" 2>&1
	rc=$?
	AUTH_DURING=$(ls "$TESTDIR/tmp" | grep -c '^ctxpack-auth\.')
	(cd "$P" && CI_JOB_ID=$JOB_ID TMPDIR=$TESTDIR/tmp sh "$TESTDIR/job-$1-after.sh") >>"$TESTDIR/log" 2>&1 ||
		rc=$((rc ? rc : 3))
	AUTH_AFTER=$(ls "$TESTDIR/tmp" | grep -c '^ctxpack-auth\.')
	# the runner's cache: keeps .ctxpack/tool
	if [ -d "$P/.ctxpack/tool" ]; then rm -rf runner-cache && mkdir -p runner-cache &&
		cp -a "$P/.ctxpack/tool" runner-cache/; fi
	return $rc
}
runs() { cat "$RUNS" | tr '\n' ' ' | sed 's/ $//'; }
showlog() { sed 's/^/#   /' "$TESTDIR/log" | tail -30 >&2; }

mkdir -p tmp
export CI=true GITLAB_CI=true CI_REGISTRY=$REG CI_REGISTRY_IMAGE=$REG/group/app \
	CI_REGISTRY_USER=gitlab-ci-token CI_REGISTRY_PASSWORD=job-token-secret \
	CI_COMMIT_SHORT_SHA=0a1b2c3d CTXPACK_GIT_URL=$ROOT \
	CTXPACK_GIT_REF=$(git -C "$ROOT" rev-parse HEAD)

# --- pipeline 1: no ctxpack in the image, nothing cached ---
# The template builds this checkout (a full -O2 build) and runs that build,
# never the binary under test: in the ASan pass that would repeat the plain
# pass's work exactly, so there the image has the binary under test and
# only the build's own checks are left to the plain pass.
if ldd "$CTXPACK" 2>/dev/null | grep -q libasan; then
	san=1
	PATH=$TESTDIR/bin:$TESTDIR/stand-in:$BASEPATH
else
	san=
	PATH=$TESTDIR/stand-in:$BASEPATH
fi
export PATH
pipeline 1
export CI_PROJECT_DIR=$P
jobrun backend || showlog
is "$?" 0 "pipeline 1: backend job"
if [ -n "$san" ]; then
	for c in "it builds ctxpack" "into .ctxpack/tool" "and runs it"; do
		skip "$c: the build runs no binary under test: checked in the plain pass"
	done
else
	like "$(cat log)" "building ctxpack from $ROOT $CTXPACK_GIT_REF" "it builds ctxpack (not in the image)"
	ok "into .ctxpack/tool" test -x "$P/.ctxpack/tool/bin/ctxpack"
	like "$(cat log)" "ctxpack $(cat "$ROOT/VERSION")" "and runs it"
fi
like "$(cat log)" "cache miss for uv-" "backend: a miss"
is "$(runs)" "uv backend cold" "backend: uv sync ran"
like "$(cat log)" "saved uv-[^ ]+ to $REG/group/app/ci-cache" "backend: saved to the project's registry"
like "$(cat log)" "venv ok" "backend: the job's own script ran after"
is "$AUTH_DURING $AUTH_AFTER" "1 0" \
	"backend: the job's registry credentials were in a file of the job, and its after_script removed it"
jobrun frontend || showlog
is "$?" 0 "pipeline 1: frontend job"
if [ -n "$san" ]; then
	skip "it uses the build the cache kept: checked in the plain pass"
else
	ok "it uses the build the cache kept" sh -c "! grep -q 'building ctxpack' '$TESTDIR/log'"
fi
is "$(runs)" "uv backend cold pnpm frontend cold" "frontend: pnpm install ran"
like "$(cat log)" "saved pnpm-v[0-9][^ ]+ to $REG/group/app/ci-cache" "frontend: saved"
jobrun image || showlog
is "$?" 0 "pipeline 1: image job"
is "$(cat "$DOCKER_ARGS")" "Dockerfile $REG/group/app:0a1b2c3d" "docker build -f Dockerfile -t the image"
ok "the context is gzip" sh -c "gzip -t '$DOCKER_CONTEXT'"
ok "the context holds the backend's sources" sh -c "tar -tzf '$DOCKER_CONTEXT' | grep -qx backend/pyproject.toml"
ok "the checkout has node_modules and .venv now" test -d "$P/frontend/node_modules" -a -d "$P/backend/.venv"
ok "the context leaves them out (.dockerignore)" \
	sh -c "! tar -tzf '$DOCKER_CONTEXT' | grep -E '(^|/)(node_modules|\.venv)(/|\$)'"
# the entries, read with the same credentials
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$REG" "$(printf gitlab-ci-token:job-token-secret | base64)" >auth.json
is "$(REGISTRY_AUTH_FILE=$TESTDIR/auth.json ctxpack cache ls --store "$REG/group/app/ci-cache" | wc -l)" 2 \
	"two entries in the registry"

# --- pipeline 2: ctxpack in the image (the binary under test); hits ---
PATH=$TESTDIR/bin:$TESTDIR/stand-in:$BASEPATH
rm -rf runner-cache
pipeline 2
CI_PROJECT_DIR=$P
jobrun backend || showlog
is "$?" 0 "pipeline 2: backend job"
like "$(cat log)" "cache hit for uv-.*skipping the command" "backend: a hit"
like "$(cat log)" "venv ok" "backend: the restored .venv works"
jobrun frontend || showlog
is "$?" 0 "pipeline 2: frontend job"
like "$(cat log)" "cache hit for pnpm-.*skipping the command" "frontend: a hit"
is "$(readlink "$P/frontend/node_modules/react")" ".pnpm/react@18.3.1/node_modules/react" \
	"frontend: pnpm's relative links restored"
is "$(runs)" "uv backend cold pnpm frontend cold" "neither uv nor pnpm ran"

# --- pipeline 3: uv.lock changed ---
pipeline 3
CI_PROJECT_DIR=$P
sed -i 's/version = "0.115.6"/version = "0.115.7"/' "$P/backend/uv.lock"
sed -i 's/fastapi-0.115.6/fastapi-0.115.7/' "$P/.gitlab-ci.yml"
jobrun backend || showlog
is "$?" 0 "pipeline 3: backend job"
like "$(cat log)" "warm start from uv-" "backend: a warm start from the old entry"
jobrun frontend || showlog
is "$(runs)" "uv backend cold pnpm frontend cold uv backend warm" "uv ran warm, pnpm not at all"
is "$(ls "$TESTDIR/tmp" | grep -c '^ctxpack-auth\.')" 0 "no job left its credentials behind"

# --- a merge request from a fork: CTXPACK_RUN_ARGS=--read-only ---
before=$(REGISTRY_AUTH_FILE=$TESTDIR/auth.json ctxpack cache ls --store "$REG/group/app/ci-cache")
pipeline fork
CI_PROJECT_DIR=$P
sed -i 's/version = "0.115.6"/version = "0.115.8"/' "$P/backend/uv.lock"
sed -i 's/fastapi-0.115.6/fastapi-0.115.8/' "$P/.gitlab-ci.yml"
CTXPACK_RUN_ARGS=--read-only jobrun backend || showlog
is "$?" 0 "fork: backend job with CTXPACK_RUN_ARGS=--read-only"
like "$(cat log)" "warm start from uv-" "fork: a warm start"
like "$(cat log)" "not saved \\(--read-only\\)" "fork: nothing saved"
is "$(REGISTRY_AUTH_FILE=$TESTDIR/auth.json ctxpack cache ls --store "$REG/group/app/ci-cache")" \
	"$before" "fork: the registry's entries are as they were"

# --- no registry: the embedded store in the project directory ---
unset CI_REGISTRY CI_REGISTRY_IMAGE CI_REGISTRY_USER CI_REGISTRY_PASSWORD
: >"$RUNS"
pipeline 4
CI_PROJECT_DIR=$P
jobrun frontend || showlog
is "$?" 0 "registry off: frontend job"
like "$(cat log)" "saved pnpm-[^ ]+ to oci:$P/.ctxpack/store" "the entry goes to .ctxpack/store"
rm -rf "$P/frontend/node_modules"
jobrun frontend || showlog
like "$(cat log)" "cache hit for pnpm-" "and the next job hits it"
is "$(runs)" "pnpm frontend cold" "pnpm ran once"

# an image without ctxpack and no CTXPACK_GIT_URL: a clear failure
PATH=$TESTDIR/stand-in:$BASEPATH
unset CTXPACK_GIT_URL
pipeline 5
CI_PROJECT_DIR=$P
jobrun frontend
is "$?" 1 "no ctxpack and no CTXPACK_GIT_URL: the job fails"
like "$(cat log)" "ctxpack is not in this image: use an image with it, or set CTXPACK_GIT_URL" "and says why"
done_testing
