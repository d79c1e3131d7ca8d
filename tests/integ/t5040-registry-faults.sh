#!/bin/sh
# Faults injected by faultproxy between ctxpack and a real registry:
# connections cut mid-upload and mid-download, 500s, 429 with Retry-After,
# slow and stalled responses.  Every run ends in a verified blob or a clear
# error, and never leaves a partial file under the output name.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-registry.sh"
reg_require "$REGISTRY_BIN" "$TOOLS/faultproxy"

reg_start || { echo "1..0 # SKIP docker-registry did not start"; exit 0; }
cd "$TESTDIR" || exit 1
head -c 20971520 /dev/urandom >big.bin
head -c 2000000 /dev/urandom >small.bin

no_temps() { ! ls -a "${1:-.}" | grep -q '\.tmp\.'; }

# --- uploads ---
# two cuts: libcurl itself re-sends a request once when a reused connection
# dies before any answer, so the first cut may not reach ctxpack
proxy_start --match PATCH --cut-request-after 3000000 --cuts 2
ok "push survives a connection cut mid-chunk" \
	env CTXPACK_MONOLITHIC_MAX=10000000 "$CTXPACK" push -v big.bin "$PROXY/f/a:big"
# distribution 2.x cannot report the offset of a cut PATCH, so it restarts
like "$(cat "$TESTDIR/.out")" "(upload resumes at byte [0-9]+|upload session lost; restarting)" \
	"and resumed or restarted the upload session"
ok "(the cut happened)" grep -q cut-request "$PROXY_LOG"
ok "the blob in the registry is whole" ctxpack pull -q -o big.out "$REG/f/a:big"
same_files big.out big.bin "bytes equal"
proxy_stop

proxy_start --match 'PUT /v2/f/b/blobs' --cut-request-after 500000 --cuts 2
ok "a cut monolithic PUT restarts the upload" ctxpack push -q small.bin "$PROXY/f/b:s"
ctxpack pull -q -o small.out "$REG/f/b:s"
same_files small.out small.bin "bytes equal"
proxy_stop

head -c 12000000 /dev/urandom >mid.bin
proxy_start --match 'PUT /v2/f/g/blobs' --cut-request-after 5000000 --cuts 2
ok "a big monolithic PUT that is cut" ctxpack push -v mid.bin "$PROXY/f/g:m"
like "$(cat "$TESTDIR/.out")" "uploading sha256:[0-9a-f]+ in chunks after the cut" \
	"is retried in chunks"
ctxpack pull -q -o mid.out "$REG/f/g:m"
same_files mid.out mid.bin "bytes equal"
proxy_stop

proxy_start --fail-first 3
ok "three 500s are retried" ctxpack push -v small.bin "$PROXY/f/c:s"
like "$(grep -c 'retrying in' "$TESTDIR/.out")" '^3$' "three retries logged"
proxy_stop

proxy_start --throttle-first 2 --match 'blobs/uploads'
t0=$(date +%s)
ok "429 with Retry-After is honoured" ctxpack push -v small.bin "$PROXY/f/d:s"
t1=$(date +%s)
like "$(cat "$TESTDIR/.out")" "retrying in 1000 ms" "waited the Retry-After second"
ok "(took at least 2 s: $((t1 - t0)) s)" test $((t1 - t0)) -ge 2
proxy_stop

proxy_start --match PATCH --fail-first 100
exits 1 "a registry that keeps failing: push fails" \
	env CTXPACK_MONOLITHIC_MAX=10000000 "$CTXPACK" push big.bin "$PROXY/f/e:big"
like "$(cat "$TESTDIR/.out")" "push $PROXY/f/e:big: .*injected failure" \
	"with the registry's message"
proxy_stop
exits 1 "and the tag was never created" ctxpack pull -o x "$REG/f/e:big"
ok "no output file" test ! -e x

# --- downloads ---
proxy_start --match 'GET /v2/f/a/blobs' --cut-response-after 5000000
ok "pull survives a connection cut mid-download" ctxpack pull -v -o cut.out "$PROXY/f/a:big"
like "$(cat "$TESTDIR/.out")" "stopped at byte 5000000" "and resumed where it stopped"
same_files cut.out big.bin "bytes equal"
proxy_stop

proxy_start --match 'GET /v2/f/a/blobs' --cut-response-after 7000000
ctxpack pull -q -o - "$PROXY/f/a:big" >stdout.out
same_files stdout.out big.bin "a resumed download to stdout is whole too"
proxy_stop

proxy_start --delay-ms 300 --trickle 4000000
ok "slow responses are fine" ctxpack pull -q -o slow.out "$PROXY/f/b:s"
same_files slow.out small.bin "bytes equal"
proxy_stop

proxy_start --match 'GET /v2/f/b/blobs' --stall-response-after 1000000
t0=$(date +%s)
ok "a stalled download hits the idle timeout and resumes" \
	env CTXPACK_IDLE_TIMEOUT=2 "$CTXPACK" pull -v -o stall.out "$PROXY/f/b:s"
t1=$(date +%s)
like "$(cat "$TESTDIR/.out")" "stopped at byte 1000000 \\(no data for 2 s" "stopped at the stall"
same_files stall.out small.bin "bytes equal"
ok "(idle timeout, not a hang: $((t1 - t0)) s)" test $((t1 - t0)) -lt 6
proxy_stop

echo old >keep.out
proxy_start --match 'GET /v2/f/a/blobs' --cut-response-after 0 --cuts 1000
exits 1 "a download that never gets through fails" ctxpack pull -o keep.out "$PROXY/f/a:big"
like "$(cat "$TESTDIR/.out")" "pull $PROXY/f/a:big: blob sha256:[0-9a-f]+: .*after [0-9]+ tries" \
	"with a clear message"
is "$(cat keep.out)" old "the existing output file is untouched"
ok "no temporary files left behind" no_temps .
proxy_stop

done_testing
