# Helpers for the registry tests: a private docker-registry on 127.0.0.1,
# a test CA and server certificate, htpasswd files, skopeo with a private
# policy, and the fault-injecting proxy.  Source after lib.sh.
#
#   reg_start [--tls] [--htpasswd FILE] [--token] [--data DIR] [--readonly]
#                                          start a registry; sets REG (host:port),
#                                          REG_DIR, REG_PID; stopped at exit;
#                                          --data: serve another registry's
#                                          storage (its REG_DIR/data),
#                                          --readonly: refuse every write
#   token_server_start USER:PASS REFRESH   a Bearer token server (python3,
#                                          JWTs signed with openssl) for
#                                          reg_start --token; sets TOKEN_REALM,
#                                          TOKEN_LOG
#   reg_make_ca                            $TESTDIR/ca/{ca.pem,server.pem,server.key}
#   proxy_start ARGS...                    faultproxy in front of $REG; sets PROXY
#                                          (host:port), PROXY_LOG, PROXY_PID
#   skop ARGS...                           skopeo with a private policy/auth file
#
# Nothing here listens anywhere but 127.0.0.1, and every process started is
# killed by its PID when the test exits.

REGISTRY_BIN=${REGISTRY_BIN:-/usr/bin/docker-registry}
# Never go through a proxy from the environment for loopback traffic.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
# Retries and idle timeouts short enough for tests.
export CTXPACK_IDLE_TIMEOUT=${CTXPACK_IDLE_TIMEOUT:-10}

_reg_n=0
_proxy_n=0

# Skip the whole script (TAP "1..0 # SKIP") when a tool is missing.
reg_require() {
	for t in "$@"; do
		if ! command -v "$t" >/dev/null 2>&1 && [ ! -x "$t" ]; then
			echo "1..0 # SKIP $t not installed"
			exit 0
		fi
	done
}

_kill_pid() {
	# $1: pid of a process this test started
	if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
		kill "$1" 2>/dev/null
		i=0
		while kill -0 "$1" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
		kill -9 "$1" 2>/dev/null
	fi
	return 0
}

reg_make_ca() {
	d=$TESTDIR/ca
	[ -f "$d/server.pem" ] && return 0
	mkdir -p "$d"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=ctxpack test CA" \
		-keyout "$d/ca.key" -out "$d/ca.pem" >/dev/null 2>&1 || return 1
	openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
		-keyout "$d/server.key" -out "$d/server.csr" >/dev/null 2>&1 || return 1
	printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
		>"$d/ext.cnf"
	openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
		-CAcreateserial -days 2 -extfile "$d/ext.cnf" -out "$d/server.pem" >/dev/null 2>&1
}

# _listens PID PORT: PID is the process listening on 127.0.0.1:PORT
_listens() {
	kill -0 "$1" 2>/dev/null || return 1
	command -v ss >/dev/null 2>&1 || return 0
	ss -Hltnp "sport = :$2" | grep -q "pid=$1,"
}

# reg_start [--tls] [--htpasswd FILE] [--token] [--data DIR] [--readonly]
reg_start() {
	tls= htp= tok= data= ro=
	while [ $# -gt 0 ]; do
		case $1 in
		--tls) tls=1 ;;
		--htpasswd) htp=$2; shift ;;
		--token) tok=1 ;;
		--data) data=$2; shift ;;
		--readonly) ro=1 ;;
		*) echo "reg_start: unknown $1" >&2; return 1 ;;
		esac
		shift
	done
	_reg_n=$((_reg_n + 1))
	REG_DIR=$TESTDIR/registry$_reg_n
	mkdir -p "$REG_DIR/data"
	[ -n "$data" ] || data=$REG_DIR/data
	# a free port, and another if a script running at the same time took
	# it between free_port and the registry's bind
	_try=0
	while :; do
	_try=$((_try + 1))
	port=$(free_port)
	{
		echo "version: 0.1"
		echo "log:"
		echo "  level: warn"
		echo "  accesslog:"
		echo "    disabled: true"
		echo "storage:"
		echo "  filesystem:"
		echo "    rootdirectory: $data"
		echo "  delete:"
		echo "    enabled: true"
		echo "  maintenance:"
		echo "    uploadpurging:"
		echo "      enabled: false"
		if [ -n "$ro" ]; then
			echo "    readonly:"
			echo "      enabled: true"
		fi
		echo "http:"
		echo "  addr: 127.0.0.1:$port"
		echo "  secret: ctxpack-test-secret"
		if [ -n "$tls" ]; then
			reg_make_ca || return 1
			echo "  tls:"
			echo "    certificate: $TESTDIR/ca/server.pem"
			echo "    key: $TESTDIR/ca/server.key"
		fi
		if [ -n "$htp" ]; then
			echo "auth:"
			echo "  htpasswd:"
			echo "    realm: ctxpack-test"
			echo "    path: $htp"
		fi
		if [ -n "$tok" ]; then
			echo "auth:"
			echo "  token:"
			echo "    realm: $TOKEN_REALM"
			echo "    service: ctxpack-test"
			echo "    issuer: ctxpack-test-issuer"
			echo "    rootcertbundle: $TESTDIR/token/tok.pem"
		fi
	} >"$REG_DIR/config.yml"
	"$REGISTRY_BIN" serve "$REG_DIR/config.yml" >"$REG_DIR/log" 2>&1 &
	REG_PID=$!
	at_exit "_kill_pid $REG_PID"
	REG=127.0.0.1:$port
	if [ -n "$tls" ]; then
		url=https://$REG/v2/
	else
		url=http://$REG/v2/
	fi
	# 401 (auth) counts as up: curl without -f; and the one answering is
	# this registry, not another script's on the same port
	if wait_for 100 sh -c 'kill -0 "$1" || exit 0; curl -s -k -o /dev/null "$2"' sh "$REG_PID" "$url" &&
		_listens "$REG_PID" "$port"; then
		break
	fi
	_kill_pid "$REG_PID"
	if [ "$_try" -ge 5 ] || ! grep -q 'address already in use' "$REG_DIR/log"; then
		echo "# registry did not start:" >&2
		sed 's/^/#   /' "$REG_DIR/log" >&2
		return 1
	fi
	done
	export REG REG_DIR REG_PID
}

# token_server_start USER:PASS REFRESH-TOKEN [LIFETIME-SECONDS]
# Anonymous requests get pull only; USER:PASS (Basic on GET) or the refresh
# token (OAuth2 POST, grant_type=refresh_token) get what they ask for.
token_server_start() {
	d=$TESTDIR/token
	mkdir -p "$d"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=ctxpack test token issuer" \
		-keyout "$d/tok.key" -out "$d/tok.pem" >/dev/null 2>&1 || return 1
	cat >"$d/server.py" <<'PY'
import base64, json, os, subprocess, sys, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

d, userpass, refresh, life = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
der = subprocess.run(["openssl", "x509", "-in", d + "/tok.pem", "-outform", "DER"],
                     capture_output=True, check=True).stdout
x5c = base64.b64encode(der).decode()
logf = open(d + "/log", "a", buffering=1)

def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

def jwt(sub, service, access):
    now = int(time.time())
    head = {"typ": "JWT", "alg": "RS256", "x5c": [x5c]}
    claims = {"iss": "ctxpack-test-issuer", "sub": sub, "aud": service,
              "exp": now + 3600, "nbf": now - 10, "iat": now,
              "jti": b64u(os.urandom(12)), "access": access}
    si = b64u(json.dumps(head).encode()) + "." + b64u(json.dumps(claims).encode())
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", d + "/tok.key"],
                         input=si.encode(), capture_output=True, check=True).stdout
    return si + "." + b64u(sig)

def grant(scopes, user):
    access = []
    for sc in scopes:
        parts = sc.split(":")
        if len(parts) < 3 or parts[0] != "repository":
            continue
        want = parts[-1].split(",")
        ok = [a for a in want if a == "pull" or (user and a in ("push", "delete", "*"))]
        access.append({"type": "repository", "name": ":".join(parts[1:-1]), "actions": ok})
    return access

class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(u.query)
        user = None
        auth = self.headers.get("Authorization")
        if auth:
            ok = auth.startswith("Basic ") and \
                base64.b64decode(auth[6:]).decode() == userpass
            if not ok:
                logf.write("GET bad-credentials\n")
                return self.reply(401, {"details": "invalid username or password"})
            user = userpass.split(":")[0]
        access = grant(q.get("scope", []), user)
        logf.write("GET %s scopes=%s granted=%s\n" % (user or "anonymous",
                   " ".join(q.get("scope", [])), json.dumps(access)))
        t = jwt(user or "", q.get("service", [""])[0], access)
        self.reply(200, {"token": t, "access_token": t, "expires_in": life})

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        f = urllib.parse.parse_qs(self.rfile.read(n).decode())
        if f.get("grant_type") != ["refresh_token"] or f.get("refresh_token") != [refresh] \
                or not f.get("client_id"):
            logf.write("POST refused %s\n" % f.get("grant_type"))
            return self.reply(401, {"error": "invalid_grant"})
        scopes = f.get("scope", [""])[0].split()
        access = grant(scopes, userpass.split(":")[0])
        logf.write("POST refresh_token client_id=%s scopes=%s\n" %
                   (f["client_id"][0], " ".join(scopes)))
        t = jwt(userpass.split(":")[0], f.get("service", [""])[0], access)
        self.reply(200, {"access_token": t, "expires_in": life, "scope": " ".join(scopes)})

srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
with open(d + "/port.tmp", "w") as p:
    p.write(str(srv.server_address[1]))
os.rename(d + "/port.tmp", d + "/port")
srv.serve_forever()
PY
	python3 "$d/server.py" "$d" "$1" "$2" "${3:-300}" 2>"$d/stderr" &
	TOKEN_PID=$!
	at_exit "_kill_pid $TOKEN_PID"
	wait_for 100 test -s "$d/port" || { cat "$d/stderr" >&2; return 1; }
	TOKEN_REALM=http://127.0.0.1:$(cat "$d/port")/token
	TOKEN_LOG=$d/log
	export TOKEN_REALM TOKEN_LOG
}

# proxy_start MODE-ARGS...: faultproxy on a free port in front of $REG.
proxy_start() {
	_proxy_n=$((_proxy_n + 1))
	PROXY_LOG=$TESTDIR/proxy$_proxy_n.log
	pf=$PROXY_LOG.port
	"$TOOLS/faultproxy" --target "$REG" --port-file "$pf" --log "$PROXY_LOG" "$@" \
		2>>"$PROXY_LOG.err" &
	PROXY_PID=$!
	at_exit "_kill_pid $PROXY_PID"
	if ! wait_for 50 test -s "$pf"; then
		echo "# faultproxy did not start" >&2
		cat "$PROXY_LOG.err" >&2
		return 1
	fi
	PROXY=127.0.0.1:$(cat "$pf")
	export PROXY PROXY_LOG PROXY_PID
}

proxy_stop() {
	_kill_pid "$PROXY_PID"
	PROXY_PID=
}

# Total request-body bytes the proxy forwarded to the registry.
proxy_up_bytes() {
	awk '$1 == "req" { n += $5 } END { print n + 0 }' "$PROXY_LOG"
}

skop() {
	[ -f "$TESTDIR/policy.json" ] ||
		echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$TESTDIR/policy.json"
	skopeo --policy "$TESTDIR/policy.json" --tmpdir "$TESTDIR" "$@"
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
