#!/bin/sh
# Bearer token auth against docker-registry's token mode, with a token server
# of the test's own (python3, JWTs signed by openssl): anonymous pull tokens,
# credentialed push tokens, the OAuth2 refresh-token POST flow, a registry
# token used as is, a 401 in the middle of an upload, and redirects that must
# not carry the credentials to another origin.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-registry.sh"
reg_require "$REGISTRY_BIN" python3 openssl curl

cd "$TESTDIR" || exit 1
PASS='tok:en$pw'
REFRESH=refresh-0123456789abcdef
token_server_start "ci:$PASS" "$REFRESH" ||
	{ echo "1..0 # SKIP token server did not start"; exit 0; }
reg_start --token || { echo "1..0 # SKIP docker-registry did not start"; exit 0; }
head -c 2000000 /dev/urandom >f.bin
head -c 20000000 /dev/urandom >big.bin
mkdir -p creds idtok regtok bad
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$REG" "$(printf 'ci:%s' "$PASS" | base64 -w0)" \
	>creds/config.json
printf '{"auths":{"%s":{"identitytoken":"%s"}}}\n' "$REG" "$REFRESH" >idtok/config.json
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$REG" "$(printf 'ci:nope' | base64 -w0)" \
	>bad/config.json
logn() { wc -l <"$TOKEN_LOG" | tr -d ' '; }
# FILE holds no password, Basic credential or refresh token, no Authorization
# header, and no token: not the JWT shape (header.payload, both base64url of
# a JSON object) nor the header or claims this token server puts in every
# token.  Case matters for the token: the registry's upload URLs carry
# random base64url (_state) that holds "eyj" in some case now and then.
no_secret() {
	! grep -qF -e "$PASS" -e "$(printf 'ci:%s' "$PASS" | base64 -w0)" -e "$REFRESH" "$1" &&
		! grep -qi authorization "$1" &&
		! grep -qE 'eyJ[A-Za-z0-9_-]*[.]eyJ' "$1" &&
		! grep -qF -e "$(printf '{"typ": "JWT", "alg": "RS256"' | base64 -w0 | cut -c1-24)" \
			-e "$(printf '{"iss": "ctxpack-test-issuer"' | base64 -w0 | cut -c1-24)" "$1"
}

exits 1 "an anonymous token cannot push" ctxpack push f.bin "$REG/tok/a:v1"
like "$(cat "$TESTDIR/.out")" "authentication required and no credentials for $REG" \
	"and the message says why"
like "$(cat "$TOKEN_LOG")" 'GET anonymous scopes=repository:tok/a:pull,push' \
	"an anonymous token was asked for pull,push"

DOCKER_CONFIG=$TESTDIR/creds ctxpack push -v f.bin "$REG/tok/a:v1" >push.out 2>&1
is "$?" 0 "push with a credentialed token (Basic to the token server)"
like "$(grep -c 'GET ci scopes=repository:tok/a:pull,push' "$TOKEN_LOG")" '^[1-9]' \
	"the token server granted push to the user"
ok "-v shows neither the password nor a token" no_secret push.out
# a file big enough to go up while it is hashed, the upload slowed by a
# proxy: the HEAD that asks for the blob meanwhile carries the token
head -c 17000000 /dev/urandom >p.bin
proxy_start --match PATCH --trickle-request 20000000
mkdir -p credsp
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$PROXY" "$(printf 'ci:%s' "$PASS" | base64 -w0)" \
	>credsp/config.json
env DOCKER_CONFIG="$TESTDIR/credsp" CTXPACK_OVERLAP_MIN=1048576 CTXPACK_TEST_HASH_DELAY_MS=300 \
	$EXEC_PREFIX "$CTXPACK" push -v p.bin "$PROXY/tok/a:v2" >probe.out 2>&1
like "$(cat probe.out)" "HEAD .*/blobs/sha256:[0-9a-f]+ -> 404 \\(while streaming\\)" \
	"the HEAD made while a file streams up carries the token"
ok "-v shows no token there either" no_secret probe.out
proxy_stop

ok "anonymous pull with an anonymous token" ctxpack pull -q -o a.out "$REG/tok/a:v1"
same_files a.out f.bin "bytes equal"

n0=$(logn)
DOCKER_CONFIG=$TESTDIR/idtok ctxpack push -q f.bin "$REG/tok/b:v1" >/dev/null
is "$?" 0 "push with an identity token (OAuth2 refresh-token POST)"
like "$(tail -n +$((n0 + 1)) "$TOKEN_LOG")" 'POST refresh_token client_id=ctxpack scopes=repository:tok/b:pull,push' \
	"the refresh token went in a POST form with a client_id"

# a registry token is sent as is: no token server round trip
jwt=$(curl -s -u "ci:$PASS" "$TOKEN_REALM?service=ctxpack-test&scope=repository:tok/c:pull,push" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
printf '{"auths":{"%s":{"registrytoken":"%s"}}}\n' "$REG" "$jwt" >regtok/config.json
n0=$(logn)
DOCKER_CONFIG=$TESTDIR/regtok ctxpack push -q f.bin "$REG/tok/c:v1" >/dev/null
is "$?" 0 "push with a registrytoken"
is "$(logn)" "$n0" "without asking the token server"

DOCKER_CONFIG=$TESTDIR/bad
export DOCKER_CONFIG
exits 1 "a wrong password fails" ctxpack push f.bin "$REG/tok/d:v1"
like "$(cat "$TESTDIR/.out")" "token server refused the credentials for $REG \(HTTP 401: invalid username or password\)" \
	"with the token server's message"

# a 401 in the middle of a chunked upload: the token is fetched again and
# the chunk re-sent
proxy_start --match PATCH --unauth-first 1 \
	--challenge "Bearer realm=\"$TOKEN_REALM\",service=\"ctxpack-test\",scope=\"repository:tok/e:pull,push\",error=\"invalid_token\""
mkdir -p viaproxy
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$PROXY" "$(printf 'ci:%s' "$PASS" | base64 -w0)" \
	>viaproxy/config.json
DOCKER_CONFIG=$TESTDIR/viaproxy
n0=$(logn)
ok "a push whose token 'expires' mid-upload" \
	env CTXPACK_MONOLITHIC_MAX=10000000 "$CTXPACK" push -v big.bin "$PROXY/tok/e:big"
like "$(cat "$TESTDIR/.out")" "401 from .*authenticating again" "re-authenticated"
like "$(grep -c 'PATCH .* 401' "$PROXY_LOG")" '^1$' "(one injected 401 on a PATCH)"
ok "a new token was fetched" test "$(logn)" -gt $((n0 + 1))
ok "the blob is whole" ctxpack pull -q -o e.out "$REG/tok/e:big"
same_files e.out big.bin "bytes equal"
proxy_stop

# blob downloads redirected to another origin (a CDN stand-in that needs no
# client credentials) must not get the Authorization header
pulltok=$(curl -s -u "ci:$PASS" "$TOKEN_REALM?service=ctxpack-test&scope=repository:tok/a:pull" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
proxy_start --set-auth "Bearer $pulltok"
CDN=$PROXY; CDN_LOG=$PROXY_LOG
proxy_start --match 'GET /v2/tok/a/blobs/' --redirect-to "http://$CDN"
FRONT=$PROXY; FRONT_LOG=$PROXY_LOG
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$FRONT" "$(printf 'ci:%s' "$PASS" | base64 -w0)" \
	>viaproxy/config.json
ok "pull through a redirect to another origin" ctxpack pull -q -o r.out "$FRONT/tok/a:v1"
same_files r.out f.bin "bytes equal"
like "$(grep 'GET /v2/tok/a/manifests/v1' "$FRONT_LOG")" ' auth$' \
	"the registry itself got the token"
like "$(grep 'GET /v2/tok/a/blobs/' "$FRONT_LOG")" ' 307 auth$' "and redirected the blob request"
like "$(grep 'GET /v2/tok/a/blobs/' "$CDN_LOG")" ' 200$' \
	"the other origin got no Authorization header"

done_testing
