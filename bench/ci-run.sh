#!/bin/sh
# One CI-style job run twice, as two fresh runners would run it (issue 17):
# cache run keyed by package-lock.json around `npm ci` of bench/frontend
# (Vite + React, from the npm registry), store: docker-registry on 127.0.0.1.
# Job 1 misses, installs and saves; job 2 hits and skips npm ci.
#   bench/ci-run.sh   (after make; prints each job's time, then cache ls and stats)
set -eu
cd "$(dirname "$0")/.."; ROOT=$(pwd)
. bench/lib.sh
W=$(mktemp -d "$BENCH_WORK/ci-run.XXXXXX")
bench_registry_start "$W"
trap 'kill $REGPID; rm -rf "$W"' EXIT
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false npm_config_loglevel=error
for run in 1 2; do
	rm -rf "$W/job" && mkdir -p "$W/job" && cp bench/frontend/package.json bench/frontend/package-lock.json "$W/job/"
	export XDG_CACHE_HOME=$W/xdg$run npm_config_cache=$W/npmcache$run   # a fresh runner each time
	cd "$W/job"
	echo "== job $run: ctxpack cache run --key-file package-lock.json --path node_modules --store $REG/app/ci-cache -- npm ci"
	s=$(date +%s.%N)
	"$ROOT"/ctxpack cache run --insecure --key-file package-lock.json --key-prefix npm- --path node_modules --store "$REG/app/ci-cache" -- npm ci
	e=$(date +%s.%N)
	echo "job $run: $(python3 -c "print('%.2f s' % ($e - $s))"), node_modules: $(find node_modules | wc -l) entries, $(du -sh node_modules | cut -f1)"
	cd "$ROOT"
done
"$ROOT"/ctxpack cache ls --insecure --store "$REG/app/ci-cache"
"$ROOT"/ctxpack cache stats --insecure --store "$REG/app/ci-cache"
