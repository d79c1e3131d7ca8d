#!/bin/sh
# htpasswd Basic auth behind TLS with a CA the test makes: credentials from
# DOCKER_CONFIG, REGISTRY_AUTH_FILE and a credential helper of the test's
# own; wrong or missing credentials fail clearly; secrets never printed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-registry.sh"
reg_require "$REGISTRY_BIN" htpasswd openssl curl

cd "$TESTDIR" || exit 1
USER=ci-user
PASS='s3cr:et$pw'
htpasswd -Bbn "$USER" "$PASS" >htpasswd
reg_start --tls --htpasswd "$TESTDIR/htpasswd" ||
	{ echo "1..0 # SKIP docker-registry did not start"; exit 0; }
CA=$TESTDIR/ca/ca.pem
head -c 2000000 /dev/urandom >f.bin
AUTH=$(printf '%s:%s' "$USER" "$PASS" | base64 -w0)
mkdir -p dc bad helper bin
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$REG" "$AUTH" >dc/config.json
printf '{"auths":{"https://%s":{"auth":"%s"}}}\n' "$REG" \
	"$(printf '%s:wrong' "$USER" | base64 -w0)" >bad/config.json

exits 1 "no credentials: push fails" ctxpack push --ca-file "$CA" f.bin "$REG/sec/a:v1"
like "$(cat "$TESTDIR/.out")" "authentication required and no credentials for $REG" \
	"and says credentials are missing"

export DOCKER_CONFIG=$TESTDIR/dc
ok "push with credentials from DOCKER_CONFIG over verified TLS" \
	ctxpack push -q --ca-file "$CA" f.bin "$REG/sec/a:v1"
ok "pull" ctxpack pull -q --ca-file "$CA" -o f.out "$REG/sec/a:v1"
same_files f.out f.bin "bytes equal"

exits 1 "without the CA the certificate is not trusted" ctxpack pull -o x "$REG/sec/a:v1"
like "$(cat "$TESTDIR/.out")" "(certificate|SSL)" "and the message says why"
ok "--insecure skips verification" ctxpack pull -q --insecure -o f.out2 "$REG/sec/a:v1"

ctxpack push -v --ca-file "$CA" f.bin "$REG/sec/a:v2" >verbose.out 2>&1
ok "-v works with credentials" grep -q 'PUT .*/manifests/v2 -> 201' verbose.out
ok "-v never prints the password or the auth string" \
	sh -c "! grep -F -e '$PASS' -e '$AUTH' -i -e authorization verbose.out"

# a file that goes up while it is hashed (16 MiB or more, digest not
# cached): the HEAD that asks for the blob meanwhile, on a connection of
# its own, has the credentials and the CA too.  The proxy passes TLS
# through, slowly, so that the answer comes while the file streams up.
head -c 17000000 /dev/urandom >p.bin
proxy_start --trickle-request 20000000
mkdir -p dcp
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$PROXY" "$AUTH" >dcp/config.json
env DOCKER_CONFIG="$TESTDIR/dcp" CTXPACK_OVERLAP_MIN=1048576 CTXPACK_TEST_HASH_DELAY_MS=300 \
	$EXEC_PREFIX "$CTXPACK" push -v --ca-file "$CA" p.bin "$PROXY/sec/a:v3" >probe.out 2>&1
like "$(cat probe.out)" "HEAD .*/blobs/sha256:[0-9a-f]+ -> 404 \\(while streaming\\)" \
	"the HEAD made while streaming authenticates over TLS"
ok "(and the push worked)" grep -q 'PUT .*/manifests/v3 -> 201' probe.out
ok "(no secret in -v)" sh -c "! grep -F -e '$PASS' -e '$AUTH' -i -e authorization probe.out"
proxy_stop

DOCKER_CONFIG=$TESTDIR/bad
exits 1 "wrong password fails" ctxpack pull --ca-file "$CA" -o x "$REG/sec/a:v1"
like "$(cat "$TESTDIR/.out")" "pull $REG/sec/a:v1: .*credentials for $REG were refused .*401" \
	"and says the credentials were refused"
ok "no password in the message" sh -c "! grep -qF 'wrong' '$TESTDIR/.out'"
ok "no output file" test ! -e x

# REGISTRY_AUTH_FILE (podman's auth.json) comes first
cp dc/config.json auth.json
REGISTRY_AUTH_FILE=$TESTDIR/auth.json ctxpack pull -q --ca-file "$CA" -o f.out3 "$REG/sec/a:v1"
same_files f.out3 f.bin "credentials from REGISTRY_AUTH_FILE"

# a credential helper of the test's own, run without a shell, fed the
# server address on stdin
cat >bin/docker-credential-testhelper <<EOS
#!/bin/sh
echo "args: \$*" >>"$TESTDIR/helper.log"
read -r server || true
echo "server: \$server" >>"$TESTDIR/helper.log"
if [ "\$server" = "$REG" ] && [ ! -e "$TESTDIR/helper-forget" ]; then
	printf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}\n' "\$server" "$USER" '$PASS'
else
	echo "credentials not found in native keychain"
	exit 1
fi
EOS
chmod +x bin/docker-credential-testhelper
printf '{"credHelpers":{"%s":"testhelper"}}\n' "$REG" >helper/config.json
DOCKER_CONFIG=$TESTDIR/helper
PATH=$TESTDIR/bin:$PATH
export DOCKER_CONFIG PATH
ok "push with a credHelpers entry" ctxpack push -q --ca-file "$CA" f.bin "$REG/sec/h:v1"
ok "pull with it" ctxpack pull -q --ca-file "$CA" -o f.out4 "$REG/sec/h:v1"
same_files f.out4 f.bin "bytes equal"
like "$(head -2 helper.log)" "args: get" "the helper was run as 'get'"
like "$(sed -n 2p helper.log)" "server: $REG\$" "with the server address on stdin"

printf '{"credsStore":"testhelper"}\n' >helper/config.json
ok "credsStore works the same" ctxpack pull -q --ca-file "$CA" -o f.out5 "$REG/sec/h:v1"
touch helper-forget
exits 1 "'credentials not found' means anonymous, refused here" \
	ctxpack pull --ca-file "$CA" -o x "$REG/sec/h:v1"
like "$(cat "$TESTDIR/.out")" "authentication required and no credentials" "clear message"

done_testing
