#!/bin/sh
# ctxpack build feeding Debian's podman: `ctxpack build -- podman [GLOBAL
# OPTIONS] build -` (and `podman image build`, `podman buildx build`) is
# recognized as a builder that reads zstd, sends it, and gives the image
# `podman build .` gives: the same /ctx (paths, types, modes, content, link
# targets, hard links) for a context with a 0600 key, a 0750 script, a
# symlink, a hard link, an empty directory, odd names, an excluded
# Dockerfile and .dockerignore and a ! exception; a failing build returns
# podman's status.  podman uses a private storage root under $TESTDIR.
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ]; then
	echo "1..0 # SKIP podman's build needs root here"; exit 0
fi
if ! command -v podman >/dev/null 2>&1; then
	echo "1..0 # SKIP podman not installed (scripts/install-deps)"; exit 0
fi
mkdir -p "$TESTDIR/ptmp"
# global options before the subcommand, as a CI script sets them
PM="podman --root $TESTDIR/storage --runroot $TESTDIR/run --storage-driver vfs
 --events-backend file --cgroup-manager cgroupfs --tmpdir $TESTDIR/ptmp"
# shellcheck disable=SC2086
pm() { $PM "$@"; }
at_exit "pm rm -a -f >/dev/null 2>&1; pm rmi -a -f >/dev/null 2>&1"

C=$TESTDIR/ctx
mkdir -p "$C" && (
	cd "$C" || exit 1
	umask 022
	printf 'FROM scratch\nCOPY . /ctx\n' > Dockerfile
	printf 'secret\n' > key; chmod 600 key
	printf '#!/bin/sh\n' > run.sh; chmod 750 run.sh
	mkdir -p empty sub node_modules/x
	echo n > node_modules/x/i.js; echo keep > node_modules/keep.txt
	ln -s key link; echo hl > sub/h1; ln sub/h1 h2
	echo s > 'with space'; echo u > 'ünï cødé'; echo l > a.log
	printf 'node_modules\n!node_modules/keep.txt\nDockerfile\n.dockerignore\n*.log\n' > .dockerignore
)

# tree IMAGE: one line per entry of the image's /ctx (type, mode, owner,
# name, content hash or link target: tartree.py), from `podman export`
tree() {
	id=$(pm create "$1" /none) || return 1
	pm export "$id" | python3 "$ROOT/tests/integ/tartree.py" /ctx
	pm rm "$id" >/dev/null
}

(cd "$C" && pm build --isolation chroot -q -t ref .) > "$TESTDIR/ref.log" 2>&1 ||
	{ sed 's/^/#   /' "$TESTDIR/ref.log" >&2; }
tree ref > "$TESTDIR/ref.tree"
t=$(cat "$TESTDIR/ref.tree")
like "$t" "f 0600 0 'ctx/key'" "reference: the 0600 key"
like "$t" "'ctx/node_modules/keep.txt'" "reference: the ! exception"
is "$(grep -c -E "'ctx/(Dockerfile|.dockerignore|a.log|node_modules/x)'" "$TESTDIR/ref.tree")" 0 \
	"reference: the excluded entries are not in /ctx"

n=0
# same DESC SUBCOMMAND...: ctxpack build -- podman GLOBALS SUBCOMMAND... -
# gives the reference's /ctx, sending zstd
same() {
	desc=$1; shift
	n=$((n + 1))
	# shellcheck disable=SC2086
	if ! (cd "$C" && ctxpack build -v -- $PM "$@" --isolation chroot -q -t "got$n" -) \
		> "$TESTDIR/got.log" 2>&1; then
		_fail "$desc: ctxpack build failed"; sed 's/^/#   /' "$TESTDIR/got.log" >&2
		return
	fi
	like "$(cat "$TESTDIR/got.log")" "podman reads the archive: zstd" "$desc: zstd, chosen for podman"
	tree "got$n" > "$TESTDIR/got.tree"
	if [ -s "$TESTDIR/ref.tree" ] && cmp -s "$TESTDIR/ref.tree" "$TESTDIR/got.tree"; then
		_pass "$desc: the same /ctx as podman build ."
	else
		_fail "$desc: the same /ctx as podman build ."
		diff "$TESTDIR/ref.tree" "$TESTDIR/got.tree" | sed 's/^/#   /' >&2
	fi
}
same "podman build" build
same "podman image build" image build
same "podman buildx build" buildx build

# a failing build: podman's status comes back
printf 'FROM scratch\nCOPY missing-file /x\n' > "$TESTDIR/bad.Dockerfile"
# shellcheck disable=SC2086
(cd "$C" && ctxpack build -f "$TESTDIR/bad.Dockerfile" -- $PM build --isolation chroot -q \
	-t bad -f "$TESTDIR/bad.Dockerfile" -) > "$TESTDIR/bad.log" 2>&1
rc=$?
(cd "$C" && pm build --isolation chroot -q -t bad -f "$TESTDIR/bad.Dockerfile" .) >/dev/null 2>&1
is "$rc" "$?" "a failing build returns podman's status"
isnt "$rc" 0 "... which is not 0"


# podman's own files, as buildah's: a Containerfile (no Dockerfile), and
# .containerignore before .dockerignore
P=$TESTDIR/cfile
mkdir -p "$P" && (
	cd "$P" || exit 1
	printf 'FROM scratch\nCOPY . /ctx\n' > Containerfile
	echo a > a.txt; echo b > b.txt; echo c > c.txt
	printf 'a.txt\n' > .containerignore; printf 'b.txt\n' > .dockerignore
)
(cd "$P" && pm build --isolation chroot -q -t cref .) > "$TESTDIR/cref.log" 2>&1 ||
	{ sed 's/^/#   /' "$TESTDIR/cref.log" >&2; }
tree cref > "$TESTDIR/cref.tree"
# shellcheck disable=SC2086
(cd "$P" && ctxpack build -- $PM build --isolation chroot -q -t cgot -) > "$TESTDIR/cgot.log" 2>&1
is "$?" 0 "a Containerfile only: ctxpack build -- podman build - works"
tree cgot > "$TESTDIR/cgot.tree"
like "$(cat "$TESTDIR/cref.tree")" "'ctx/b.txt'" "reference: .containerignore read, not .dockerignore"
is "$(cat "$TESTDIR/cgot.tree")" "$(cat "$TESTDIR/cref.tree")" "... and ctxpack's image has the same /ctx"

done_testing
