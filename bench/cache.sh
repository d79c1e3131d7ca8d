#!/bin/sh
# Benchmark (issue 6): the CI cache on a real frontend.
#
# bench/frontend/package.json is a Vite + React app (the create-vite react
# template's dependencies) with its package-lock.json.  Measured, medians:
#   npm ci       cold `npm ci` from the npm registry (empty npm cache and
#                node_modules each run)
#   cache hit    `ctxpack cache run --key-file package-lock.json --path
#                node_modules -- npm ci` on a hit (restores, skips npm ci),
#                store: a docker-registry on 127.0.0.1
#   restore      `ctxpack cache restore` of that node_modules (into an
#                empty directory)
#   curl         the same blob downloaded with curl from the same registry
#                and piped through `zstd -d | tar -x` (into an empty
#                directory)
# restore and curl runs alternate, so both see the same machine load.
# Goals: npm ci / cache hit >= 10; restore / curl <= 1.0.
#
#   bench/cache.sh [--quick]     (--quick: one npm ci, 3 runs of the rest)
# Results: printed, and written to bench/results/cache[-quick]-FS.json, FS
# being the file system type of $BENCH_WORK (ext4, tmpfs, ...): file
# creation dominates both the restore and npm ci, so the disk matters.
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh

runs=5; npm_runs=5; tag=
[ "${1:-}" = --quick ] && { runs=3; npm_runs=1; tag=-quick; }
CTXPACK=${CTXPACK:-./ctxpack}
case "$CTXPACK" in /*) ;; *) CTXPACK=$(pwd)/$CTXPACK ;; esac
for t in /usr/bin/docker-registry npm node curl zstd tar python3 "$CTXPACK"; do
	command -v "$t" >/dev/null 2>&1 || { echo "bench/cache.sh: $t is missing" >&2; exit 1; }
done
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy
export NO_PROXY=127.0.0.1 no_proxy=127.0.0.1

W=$(mktemp -d "$BENCH_WORK/cache.XXXXXX")
export XDG_CACHE_HOME=$W/xdg HOME=$W/home
mkdir -p "$XDG_CACHE_HOME" "$HOME" "$W/app" "$W/reg"
REGPID=
cleanup() {
	if [ -n "$REGPID" ]; then
		kill "$REGPID" 2>/dev/null || true
		wait "$REGPID" 2>/dev/null || true
	fi
	chmod -R u+rwX "$W" 2>/dev/null || true
	rm -rf "$W"
}
trap 'rc=$?; cleanup; exit $rc' EXIT
trap 'exit 130' INT TERM

bench_registry_start "$W"

cp bench/frontend/package.json bench/frontend/package-lock.json "$W/app/"
export npm_config_cache=$W/npm-cache npm_config_audit=false npm_config_fund=false \
	npm_config_update_notifier=false npm_config_loglevel=error

fs=$(df --output=fstype "$W" | tail -1 | tr -cd 'A-Za-z0-9_.-')
# not exec: the EXIT trap stops the registry and removes $W
python3 - "$CTXPACK" "$W" "$REG" "$runs" "$npm_runs" "bench/results/cache$tag-$fs.json" "$fs" <<'PY'
import json, os, shutil, statistics, subprocess, sys, time

ctxpack, w, reg, runs, npm_runs, out, fs = sys.argv[1:8]
load = os.getloadavg()
runs, npm_runs = int(runs), int(npm_runs)
app = os.path.join(w, "app")
store = reg + "/bench/cache"
nm = os.path.join(app, "node_modules")
run_cmd = [ctxpack, "cache", "run", "--store", store, "--key-file", "package-lock.json",
           "--path", "node_modules", "--", "npm", "ci"]

def rm(p):
    if os.path.lexists(p):
        subprocess.run(["rm", "-rf", p], check=True)

def timed(cmd, shell=False, want=None):
    os.sync()  # the previous run's deletes are not this run's cost
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=app, shell=shell, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    e = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit("bench/cache.sh: failed: %s\n%s" % (cmd, r.stderr))
    if want is not None and want not in r.stderr + r.stdout:
        sys.exit("bench/cache.sh: %s did not say %r:\n%s" % (cmd, want, r.stderr))
    return e

def listing(root):
    v = []
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            # type, exec bits, and the link target or file size (not a
            # directory's size, which depends on its history)
            v.append((os.path.relpath(p, root), st.st_mode & 0o170111,
                      os.readlink(p) if os.path.islink(p) else
                      st.st_size if os.path.isfile(p) else 0))
    return sorted(v)

def say(*a):
    print(*a, flush=True)

# 1. cold npm ci
t_npm = []
for i in range(npm_runs):
    rm(nm); rm(os.environ["npm_config_cache"])
    t_npm.append(timed(["npm", "ci"]))
    say("npm ci run %d: %.2f s" % (i + 1, t_npm[-1]))
ref = listing(nm)
files = sum(1 for x in ref if x[1] & 0o170000 == 0o100000)

# 2. seed the cache: a miss runs npm ci and saves node_modules
rm(nm); rm(os.environ["npm_config_cache"])
timed(run_cmd, want="saved")
ls = json.loads(subprocess.run([ctxpack, "cache", "ls", "--json", "--store", store],
                               check=True, stdout=subprocess.PIPE).stdout)
key, size = ls[0]["key"], ls[0]["size"]
man = json.loads(subprocess.run(
    ["curl", "-sf", "-H", "Accept: application/vnd.oci.image.manifest.v1+json",
     "http://%s/v2/bench/cache/manifests/%s" % (reg, ls[0]["tag"])],
    check=True, stdout=subprocess.PIPE).stdout)
blob = man["layers"][0]["digest"]

# 3. cache run on a hit: restores, skips npm ci
t_hit = []
for i in range(runs):
    rm(nm)
    t_hit.append(timed(run_cmd, want="cache hit"))
    say("cache run (hit) run %d: %.2f s" % (i + 1, t_hit[-1]))
if listing(nm) != ref:
    sys.exit("bench/cache.sh: the restored node_modules differs from npm ci's")
subprocess.run(["node", "-e", "require('react'); require('vite/package.json')"], cwd=app,
               check=True)

# 4. restore against curl | zstd -d | tar -x, alternating
out_dir = os.path.join(app, "curl-out")
curl = ("mkdir -p curl-out && curl -sf http://%s/v2/bench/cache/blobs/%s | zstd -d -q "
        "| tar -x -C curl-out" % (reg, blob))
t_res, t_curl = [], []
for i in range(runs):
    rm(nm); rm(out_dir)
    t_res.append(timed([ctxpack, "cache", "restore", "-q", "--store", store, "--key", key,
                        "node_modules"]))
    rm(nm); rm(out_dir)
    t_curl.append(timed(curl, shell=True))
    say("restore run %d: %.2f s, curl pipeline: %.2f s" % (i + 1, t_res[-1], t_curl[-1]))
if listing(out_dir) != ref:
    sys.exit("bench/cache.sh: the curl pipeline's tree differs")

med = statistics.median
r = {
    "files": files, "entries": len(ref), "blob_bytes": size,
    "npm_ci_s": med(t_npm), "cache_hit_s": med(t_hit),
    "restore_s": med(t_res), "curl_pipeline_s": med(t_curl),
    "runs": runs, "npm_runs": npm_runs, "fs": fs, "cpus": os.cpu_count(),
    "loadavg_before": load[0], "loadavg_after": os.getloadavg()[0],
    "samples": {"npm_ci": t_npm, "cache_hit": t_hit, "restore": t_res, "curl": t_curl},
}
r["speedup_vs_npm_ci"] = r["npm_ci_s"] / r["cache_hit_s"]
r["restore_vs_curl"] = r["restore_s"] / r["curl_pipeline_s"]
say("")
say("node_modules: %d entries, %d files; blob %.1f MiB (zstd); %s, %d CPUs, load %.1f -> %.1f" % (
    len(ref), files, size / 2**20, fs, r["cpus"], r["loadavg_before"], r["loadavg_after"]))
say("%-34s %8.2f s" % ("npm ci (cold)", r["npm_ci_s"]))
say("%-34s %8.2f s   %.1fx faster (goal >= 10x): %s" % (
    "ctxpack cache run (hit)", r["cache_hit_s"], r["speedup_vs_npm_ci"],
    "met" if r["speedup_vs_npm_ci"] >= 10 else "NOT met"))
say("%-34s %8.2f s" % ("curl | zstd -d | tar -x", r["curl_pipeline_s"]))
say("%-34s %8.2f s   %.2fx the curl pipeline (goal <= 1.0x): %s" % (
    "ctxpack cache restore", r["restore_s"], r["restore_vs_curl"],
    "met" if r["restore_vs_curl"] <= 1.0 else "NOT met"))
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as f:
    json.dump(r, f, indent=1)
    f.write("\n")
PY
