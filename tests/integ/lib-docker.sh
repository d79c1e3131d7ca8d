# Helpers for the tests against a real Docker daemon (Debian's docker.io):
# a private dockerd on a socket and data root of its own, bases imported
# from a busybox-static rootfs (no network), and a dump of what an image
# holds below a path.  Source after lib.sh.
#
#   docker_require              skip the script unless dockerd, Debian's
#                               /usr/bin/docker and root are there
#   docker_start                start dockerd; sets DOCKER_HOST, DOCKERD_PID,
#                               DOCKERD_DIR; stopped by its PID at exit
#   docker_base NAME [ARGS...]  import a busybox-static rootfs as image NAME
#                               (ARGS go to docker import: --change ...)
#   dk ARGS...                  Debian's docker client on that daemon
#   image_tree IMAGE PATH       one line per entry of IMAGE below PATH (from
#                               `docker export`): type, mode, path, and the
#                               content sha256, symlink or hard link target
#   DOCKER_CLIENTS              the docker clients to test: /usr/bin/docker,
#                               and a newer one first on PATH if there is one
#
# dockerd runs with --storage-driver=vfs --iptables=false --bridge=none and
# an empty configuration file; it is given a proxy on a closed loopback port
# so that nothing it might try to pull ever leaves the machine.  Nothing is
# pulled: bases are imported, containers are created with --pull=never.

DOCKERD_BIN=${DOCKERD_BIN:-/usr/sbin/dockerd}
DOCKER_BIN=${DOCKER_BIN:-/usr/bin/docker}

docker_require() {
	if [ "$(id -u)" != 0 ]; then
		echo "1..0 # SKIP dockerd needs root"
		exit 0
	fi
	for t in "$DOCKERD_BIN" "$DOCKER_BIN" /bin/busybox; do
		if [ ! -x "$t" ]; then
			echo "1..0 # SKIP $t not installed"
			exit 0
		fi
	done
}

# The clients to test: Debian's, and a newer one on PATH if it is another.
DOCKER_CLIENTS=$DOCKER_BIN
_other=$(command -v docker 2>/dev/null || true)
if [ -n "$_other" ] && [ -x "$_other" ] && [ "$(readlink -f "$_other")" != "$(readlink -f "$DOCKER_BIN")" ]; then
	DOCKER_CLIENTS="$DOCKER_BIN $_other"
fi

dk() { "$DOCKER_BIN" "$@"; }

_dockerd_stop() {
	[ -n "${DOCKERD_PID:-}" ] || return 0
	if kill -0 "$DOCKERD_PID" 2>/dev/null; then
		kill "$DOCKERD_PID" 2>/dev/null
		i=0
		while kill -0 "$DOCKERD_PID" 2>/dev/null && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
		kill -9 "$DOCKERD_PID" 2>/dev/null
	fi
	# the containerd it started, if dockerd was killed before stopping it
	if [ -f "$DOCKERD_DIR/exec/containerd/containerd.pid" ]; then
		cpid=$(cat "$DOCKERD_DIR/exec/containerd/containerd.pid" 2>/dev/null)
		[ -n "$cpid" ] && kill -9 "$cpid" 2>/dev/null
	fi
	# vfs layers are plain directories; mounts below exec are gone with dockerd
	DOCKERD_PID=
	return 0
}

docker_start() {
	# a short path: the sockets below it must fit in sun_path
	DOCKERD_DIR=$(mktemp -d /tmp/ctxpack-dk.XXXXXX)
	mkdir -p "$DOCKERD_DIR/root" "$DOCKERD_DIR/exec"
	echo '{}' > "$DOCKERD_DIR/daemon.json"
	export DOCKER_HOST="unix://$DOCKERD_DIR/docker.sock"
	# a private client config: no credentials or contexts of the user's
	export DOCKER_CONFIG=$DOCKERD_DIR/client
	mkdir -p "$DOCKER_CONFIG"
	unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH
	HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 NO_PROXY=127.0.0.1,localhost \
	"$DOCKERD_BIN" --storage-driver=vfs --iptables=false --ip-masq=false --bridge=none \
		--userland-proxy=false --config-file "$DOCKERD_DIR/daemon.json" \
		-H "$DOCKER_HOST" --data-root "$DOCKERD_DIR/root" --exec-root "$DOCKERD_DIR/exec" \
		--pidfile "$DOCKERD_DIR/dockerd.pid" > "$DOCKERD_DIR/dockerd.log" 2>&1 &
	DOCKERD_PID=$!
	at_exit "_dockerd_stop; rm -rf '$DOCKERD_DIR'"
	if ! wait_for 300 dk version; then
		diag "dockerd did not start:"
		tail -20 "$DOCKERD_DIR/dockerd.log" | sed 's/^/#   /' >&2
		return 1
	fi
	return 0
}

# docker_base NAME [ARGS...]: a busybox-static rootfs (sh and the usual
# applets), imported as NAME (ARGS for docker import, e.g. --change).
docker_base() {
	_name=$1
	shift
	r=$TESTDIR/.rootfs
	if [ ! -d "$r" ]; then
		mkdir -p "$r/bin" "$r/tmp" "$r/etc"
		cp /bin/busybox "$r/bin/busybox"
		for a in sh ls cat find stat echo id env pwd test wc sha256sum readlink \
			 mkdir touch sleep true false; do
			ln -s busybox "$r/bin/$a"
		done
		echo 'root:x:0:0:root:/:/bin/sh' > "$r/etc/passwd"
		echo 'nobody:x:65534:65534:nobody:/:/bin/sh' >> "$r/etc/passwd"
		echo 'root:x:0:' > "$r/etc/group"
		echo 'nogroup:x:65534:' >> "$r/etc/group"
	fi
	tar -C "$r" -c . | dk import "$@" - "$_name" >/dev/null
}

# image_tree IMAGE PATH
image_tree() {
	_id=$(dk create --pull=never "$1" /bin/true) || return 1
	dk export "$_id" | python3 "$ROOT/tests/integ/tartree.py" "$2"
	_rc=$?
	dk rm "$_id" >/dev/null
	return $_rc
}
