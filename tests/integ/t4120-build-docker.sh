#!/bin/sh
# ctxpack build against Debian's real Docker daemon: `ctxpack build --
# docker build -t app -` gives the image `docker build .` gives, with the
# classic builder and with BuildKit, with Debian's client and a newer one
# on PATH: what COPY . /ctx puts in the image (paths, types, content, link
# targets, hard links, permission bits) for a context with 0600/0640/0750
# files, setuid/setgid, a sticky and a 0700 directory, hard links,
# symlinks (also a symlinked Dockerfile), empty directories, odd names, an
# excluded Dockerfile and .dockerignore, a ! exception, a
# Dockerfile.dockerignore with -f, and a Dockerfile outside the context.
# Also: the format chosen for the builder, an excluded Dockerfile's edit
# leaving COPY cached, a remote (tcp://) daemon and a docker context.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-docker.sh"
docker_require
docker_start || { echo "1..0 # SKIP dockerd did not start"; exit 0; }
docker_base bb

# mkctx DIR: the context
mkctx() {
	d=$1
	mkdir -p "$d" && (
	cd "$d" || exit 1
	umask 022
	printf 'FROM bb\nCOPY . /ctx\n' > Dockerfile.real
	ln -s Dockerfile.real Dockerfile
	printf 'secret\n' > key; chmod 600 key
	printf 'g\n' > grp; chmod 640 grp
	printf '#!/bin/sh\n' > run.sh; chmod 750 run.sh
	printf 'suid\n' > suid; chmod 4755 suid
	printf 'sgid\n' > sgid; chmod 2755 sgid
	mkdir tmp; chmod 1777 tmp; echo t > tmp/f
	mkdir priv; chmod 700 priv; echo p > priv/f
	echo hl > hl1; ln hl1 hl2; mkdir sub; ln hl1 sub/hl3
	ln -s key link-rel; ln -s /etc/passwd link-abs; ln -s ../outside link-up
	ln -s nothere link-dangling
	mkdir empty; mkdir -p emptytree/a/b
	echo s > 'with space'; echo u > 'ünï cødé'
	mkdir -p node_modules/x; chmod 700 node_modules
	echo n > node_modules/x/i.js; echo keep > node_modules/keep.txt
	printf 'node_modules\n!node_modules/keep.txt\nDockerfile\nDockerfile.real\n.dockerignore\n*.log\n' \
		> .dockerignore
	echo l > a.log
	# for -f app.Dockerfile: BuildKit reads app.Dockerfile.dockerignore,
	# the classic builder .dockerignore
	printf 'FROM bb\nCOPY . /ctx\n' > app.Dockerfile
	printf 'app.Dockerfile*\n*.log\nkey\n' > app.Dockerfile.dockerignore
	)
}
C=$TESTDIR/ctx
mkctx "$C"
printf 'FROM bb\nCOPY . /ctx\n' > "$TESTDIR/outside.Dockerfile"

n=0
# same NAME CLIENT BUILDKIT(0|1|unset) CTXPACK_ARGS -- DOCKER_ARGS: build
# with `docker build DOCKER_ARGS .` and with `ctxpack build CTXPACK_ARGS --
# docker build DOCKER_ARGS -` from $C and compare /ctx in the two images
same() {
	name=$1 client=$2 bk=$3; shift 3
	cargs=
	while [ "$1" != -- ]; do cargs="$cargs $1"; shift; done
	shift
	n=$((n + 1))
	if [ "$bk" = unset ]; then envp="env -u DOCKER_BUILDKIT"; else envp="env DOCKER_BUILDKIT=$bk"; fi
	# shellcheck disable=SC2086
	(cd "$C" && $envp "$client" build -q -t "ref$n" "$@" .) > "$TESTDIR/ref.log" 2>&1 ||
		{ _fail "$name: docker build . failed"; sed 's/^/#   /' "$TESTDIR/ref.log" >&2; return; }
	# shellcheck disable=SC2086
	(cd "$C" && $envp $EXEC_PREFIX "$CTXPACK" build -v $cargs -- "$client" build -q -t "got$n" "$@" -) \
		> "$TESTDIR/got.log" 2>&1 ||
		{ _fail "$name: ctxpack build failed"; sed 's/^/#   /' "$TESTDIR/got.log" >&2; return; }
	image_tree "ref$n" /ctx > "$TESTDIR/ref.tree"
	image_tree "got$n" /ctx > "$TESTDIR/got.tree"
	if [ -s "$TESTDIR/ref.tree" ] && cmp -s "$TESTDIR/ref.tree" "$TESTDIR/got.tree"; then
		_pass "$name: the same /ctx as docker build ."
	else
		_fail "$name: the same /ctx as docker build ."
		diff "$TESTDIR/ref.tree" "$TESTDIR/got.tree" | sed 's/^/#   /' >&2
		sed 's/^/#   ctxpack: /' "$TESTDIR/got.log" >&2
	fi
}

# what the reference image holds: the cases are really there
same "classic" "$DOCKER_BIN" 0 --
t=$(cat "$TESTDIR/ref.tree")
like "$t" "f 0600 0 'ctx/key'" "reference: the 0600 file stays 0600"
like "$t" "d 1777 0 'ctx/tmp'" "reference: the sticky directory"
like "$t" "h 0644 0 'ctx/hl2' => ctx/hl1" "reference: hard links"
like "$t" "l 0777 0 'ctx/link-up' -> ../outside" "reference: a link out of the context"
is "$(grep -c -E "'ctx/(Dockerfile|Dockerfile.real|.dockerignore|a.log)'" "$TESTDIR/ref.tree")" 0 \
	"reference: the excluded Dockerfile, its target and .dockerignore are not in /ctx"
like "$t" "'ctx/node_modules/keep.txt'" "reference: the ! exception"
like "$(cat "$TESTDIR/got.log")" "classic builder \\(DOCKER_BUILDKIT=0; a client < 23: its matcher\\).*: none" \
	"classic, local daemon: an uncompressed tar, the patterns matched as Debian's 20.10 client matches them"

same "BuildKit" "$DOCKER_BIN" 1 --
like "$(cat "$TESTDIR/got.log")" "BuildKit \\(DOCKER_BUILDKIT=1\\).*: the context directory itself" \
	"BuildKit: docker reads the context directory itself"
like "$(cat "$TESTDIR/got.log")" "running $DOCKER_BIN build -q -t got$n \\.\$" "... given as docker build . gets it"
like "$(cat "$TESTDIR/ref.tree")" "f 4755 0 'ctx/suid'" "reference (BuildKit): setuid kept"
same "BuildKit, --send dir" "$DOCKER_BIN" 1 --send dir --
like "$(cat "$TESTDIR/got.log")" "BuildKit \\(DOCKER_BUILDKIT=1; a client < 23: its 2020 context walk and matcher\\).*the context as a directory" \
	"BuildKit, --send dir: a kept directory of the context, walked as Debian's 20.10 client walks it"
# an option that makes ctxpack's context another than docker's: a kept
# directory of that context
(cd "$C" && DOCKER_BUILDKIT=1 ctxpack build -v --normalize-modes -- "$DOCKER_BIN" build -q \
	-t norm -) > "$TESTDIR/norm.log" 2>&1
is "$?" 0 "BuildKit, --normalize-modes: the build works"
like "$(cat "$TESTDIR/norm.log")" "the context as a directory" "... from a kept directory of the context"
image_tree norm /ctx > "$TESTDIR/norm.tree"
like "$(cat "$TESTDIR/norm.tree")" "f 0644 0 'ctx/key'" "... whose modes are normalized (the 0600 key is 0644)"
exits 2 "--send direct with --normalize-modes: usage error" ctxpack build --send direct \
	--normalize-modes "$C" -- "$DOCKER_BIN" build -t x -

# BuildKit's kept directory (--send dir) from the walk's snapshot (no
# exception in the ignore file, so one is kept): unchanged, then a file
# rewritten in place
C0=$C
C=$TESTDIR/snap
mkdir -p "$C/src/deep" "$C/node_modules/x"
printf 'FROM bb\nCOPY . /ctx\n' > "$C/Dockerfile"
echo one > "$C/src/a.txt"; echo two > "$C/src/deep/b.txt"; echo n > "$C/node_modules/x/i.js"
ln -s a.txt "$C/src/link"
printf 'node_modules\n*.log\n' > "$C/.dockerignore"
sleep 0.3 # past the racy window: the first build keeps a snapshot
same "BuildKit, a context without exceptions" "$DOCKER_BIN" 1 --send dir --
like "$(cat "$TESTDIR/got.log")" "entries, snapshot: walked" "... walked the first time"
same "BuildKit, the same context unchanged" "$DOCKER_BIN" 1 --send dir --
like "$(cat "$TESTDIR/got.log")" "entries, snapshot: hit" "... then from its snapshot"
like "$(cat "$TESTDIR/got.log")" " 0 copied, 0 linked, 0 directories made, 0 removed" \
	"... and the directory kept as it was"
echo ONE > "$C/src/a.txt"
same "BuildKit, a file rewritten in place" "$DOCKER_BIN" 1 --send dir --
like "$(cat "$TESTDIR/got.log")" "entries, snapshot: partial" "... from the snapshot, that file's new stat"
like "$(cat "$TESTDIR/got.log")" " 1 copied" "... and only that file copied"
C=$C0
same "daemon's default (classic)" "$DOCKER_BIN" unset --
like "$(cat "$TESTDIR/got.log")" "classic builder \\(the daemon's default builder" \
	"DOCKER_BUILDKIT unset: the daemon's default builder, asked"

for bk in 0 1 dir; do
	send=
	[ $bk = dir ] && { bk=1 send="--send dir"; }
	# shellcheck disable=SC2086
	{
	same "-f app.Dockerfile, builder $bk $send" "$DOCKER_BIN" "$bk" $send -f app.Dockerfile -- -f app.Dockerfile
	same "-f given to docker only, builder $bk $send" "$DOCKER_BIN" "$bk" $send -- -f app.Dockerfile
	same "a Dockerfile outside the context, builder $bk $send" "$DOCKER_BIN" "$bk" $send \
		-f "$TESTDIR/outside.Dockerfile" -- -f "$TESTDIR/outside.Dockerfile"
	}
done
# -f given to ctxpack only, BuildKit reading the directory: passed on as a
# path from here, and said
(cd "$C" && DOCKER_BUILDKIT=1 ctxpack build -v -f app.Dockerfile -- "$DOCKER_BIN" build -q \
	-t fonly -) > "$TESTDIR/fonly.log" 2>&1
is "$?" 0 "BuildKit, -f given to ctxpack only: the build works"
like "$(cat "$TESTDIR/fonly.log")" "running $DOCKER_BIN build -f app.Dockerfile -q -t fonly \\.\$" \
	"... docker is given the -f"
like "$(cat "$TESTDIR/fonly.log")" "-f app.Dockerfile is given to ctxpack but not to" "... and that is said"
(cd "$C" && DOCKER_BUILDKIT=1 "$DOCKER_BIN" build -q -t fonly-ref -f app.Dockerfile .) > /dev/null 2>&1
is "$(image_tree fonly /ctx)" "$(image_tree fonly-ref /ctx)" "... the same /ctx as docker build -f app.Dockerfile ."
like "$(cat "$TESTDIR/ref.tree")" "'ctx/app.Dockerfile.dockerignore'" \
	"reference (BuildKit, -f): app.Dockerfile.dockerignore is not .dockerignore's exclusion"

# a newer client first on PATH (classic without buildx; BuildKit through it
# when it has the plugin)
for client in $DOCKER_CLIENTS; do
	[ "$client" = "$DOCKER_BIN" ] && continue
	same "newer client $client, classic" "$client" 0 --
	same "newer client $client, its default" "$client" unset --
	like "$(cat "$TESTDIR/got.log")" "docker client >= 23" "... decided from the client's version"
	same "newer client $client, -f" "$client" unset -f app.Dockerfile -- -f app.Dockerfile
done

# an edit of the excluded Dockerfile does not re-run COPY (it is not in
# what COPY sees): a comment added, then the build again
for bk in 0 1; do
	(cd "$C" && DOCKER_BUILDKIT=$bk ctxpack build -q -- "$DOCKER_BIN" build --progress=plain \
		-t cached$bk - ) > "$TESTDIR/c1.log" 2>&1
	printf '# a comment\n' >> "$C/Dockerfile.real"
	(cd "$C" && DOCKER_BUILDKIT=$bk ctxpack build -q -- "$DOCKER_BIN" build --progress=plain \
		-t cached$bk - ) > "$TESTDIR/c2.log" 2>&1
	if [ $bk = 0 ]; then
		like "$(grep -A1 'COPY \. /ctx' "$TESTDIR/c2.log")" "Using cache" \
			"classic: an edit of the excluded Dockerfile leaves COPY cached"
	else
		like "$(grep -A2 'COPY \. /ctx' "$TESTDIR/c2.log")" "CACHED" \
			"BuildKit: an edit of the excluded Dockerfile leaves COPY cached"
	fi
done

# exceptions below excluded directories: a wildcard one (the classic CLI
# and Docker 20.10's BuildKit lose it, the current BuildKit keeps it) and a
# literal one naming nothing (20.10's BuildKit sends the directory anyway)
C0=$C
C=$TESTDIR/exc
mkdir -p "$C/foo/sub" "$C/bar/in" "$C/docs"
printf 'FROM bb\nCOPY . /ctx\n' > "$C/Dockerfile"
echo a > "$C/foo/sub/a.txt"; echo b > "$C/foo/b.c"; echo t > "$C/foo/top.txt"
echo x > "$C/bar/in/x"; echo r > "$C/docs/README.md"; echo d > "$C/docs/d.tmp"
printf 'foo\n!foo/**/*.txt\nbar\n!bar/nothere\n*/*.tmp\n*.md\n!docs/README.md\n' > "$C/.dockerignore"
for bk in 0 1; do
	same "exceptions below excluded directories, builder $bk" "$DOCKER_BIN" "$bk" --
done

# the matcher of clients before 23 (Debian's 20.10), which differs from
# today's: q/keep is excluded again by q* (matched at its parent, where
# today's rule skipped it), lib's files are kept by !lib (the same, for an
# exception), and notes(old).txt is a regex matching notesold.txt; a newer
# client sends the other way round.  The first entry, #ü, has a pax
# header: the piped tar must still look like one to the client.
C=$TESTDIR/old
mkdir -p "$C/q" "$C/lib/sub"
printf 'FROM bb\nCOPY . /ctx\n' > "$C/Dockerfile"
echo u > "$C/#ü"
echo k > "$C/q/keep"; echo o > "$C/q/other"; echo a > "$C/lib/a.js"; echo b > "$C/lib/sub/b.js"
echo n > "$C/notes(old).txt"; echo m > "$C/notesold.txt"
printf 'q\n!q/keep\nq*\nlib/**\n!lib\nnotes(old).txt\n' > "$C/.dockerignore"
for bk in 0 1; do
	same "the matcher of clients before 23, builder $bk" "$DOCKER_BIN" "$bk" --
	like "$(cat "$TESTDIR/got.tree")" "'ctx/#ü'" "... with its first entry, #ü (a pax header first)"
	is "$(grep -c -E "'ctx/(lib/sub/b.js|notes\(old\).txt)'" "$TESTDIR/got.tree"):$(grep -c \
		-E "'ctx/(q/keep|notesold.txt)'" "$TESTDIR/got.tree")" "2:0" "... which keeps and drops what it did"
done
for client in $DOCKER_CLIENTS; do
	[ "$client" = "$DOCKER_BIN" ] && continue
	same "newer client $client, today's matcher, classic" "$client" 0 --
	is "$(grep -c -E "'ctx/(q/keep|notesold.txt)'" "$TESTDIR/got.tree")" 2 "... which keeps q/keep and notesold.txt"
done
# a regex Go rejects (c++: a nested repetition) fails the old client's
# build, and ctxpack's before it starts COMMAND
printf 'c++\n' > "$C/.dockerignore"
(cd "$C" && DOCKER_BUILDKIT=0 "$DOCKER_BIN" build -q -t bad .) > "$TESTDIR/ref.log" 2>&1
isnt "$?" 0 "reference: c++ fails the 20.10 client's build"
(cd "$C" && DOCKER_BUILDKIT=0 ctxpack build -- "$DOCKER_BIN" build -q -t bad -) > "$TESTDIR/got.log" 2>&1
is "$?" 2 "... and ctxpack build, a usage error"
like "$(cat "$TESTDIR/got.log")" "\\.dockerignore:1: c\\+\\+: syntax error in pattern" "... naming the file, line and pattern"
C=$C0

# BuildKit's kept directory (--send dir) follows the context from run to
# run: after each round of changes, the same /ctx as docker build . again
sleep 0.2
rm "$C/grp"; mkdir -p "$C/added/deep"; echo new > "$C/added/deep/n"; chmod 700 "$C/run.sh"
same "BuildKit after removing, adding and chmod" "$DOCKER_BIN" 1 --send dir --
rm -f "$C/link-rel"; ln -s grp "$C/link-rel"; rm "$C/with space"; mkdir "$C/with space"
echo inside > "$C/with space/f"; rm "$C/hl2"; echo alone > "$C/hl2"
same "BuildKit after a link retargeted, a file turned directory, a hard link split" "$DOCKER_BIN" 1 \
	--send dir --
printf 'node_modules\n!node_modules/keep.txt\nDockerfile\nDockerfile.real\n.dockerignore\n*.log\nadded\n' \
	> "$C/.dockerignore"
same "BuildKit after the .dockerignore changed" "$DOCKER_BIN" 1 --send dir --
is "$(grep -c "'ctx/added" "$TESTDIR/got.tree")" 0 "... the newly excluded directory is gone from /ctx"

# the format for a daemon reached over tcp:// (a "remote" one): gzip, and
# Docker reads it; through DOCKER_HOST, -H and a docker context
port=$(free_port)
kill "$DOCKERD_PID"; wait_for 150 sh -c "! kill -0 $DOCKERD_PID 2>/dev/null"
HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 NO_PROXY=127.0.0.1,localhost \
"$DOCKERD_BIN" --storage-driver=vfs --iptables=false --ip-masq=false --bridge=none \
	--userland-proxy=false --config-file "$DOCKERD_DIR/daemon.json" \
	-H "$DOCKER_HOST" -H "tcp://127.0.0.1:$port" --data-root "$DOCKERD_DIR/root" \
	--exec-root "$DOCKERD_DIR/exec" --pidfile "$DOCKERD_DIR/dockerd.pid" \
	>> "$DOCKERD_DIR/dockerd.log" 2>&1 &
DOCKERD_PID=$!
wait_for 300 dk version || diag "dockerd did not restart"
(cd "$C" && DOCKER_BUILDKIT=0 DOCKER_HOST=tcp://127.0.0.1:$port ctxpack build -v -- \
	"$DOCKER_BIN" build -q -t remote1 -) > "$TESTDIR/r.log" 2>&1
is "$?" 0 "DOCKER_HOST=tcp://: the build works"
like "$(cat "$TESTDIR/r.log")" "daemon tcp://127.0.0.1:$port \\(remote\\): gzip" "... with a gzip context"
(cd "$C" && DOCKER_BUILDKIT=0 ctxpack build -v -- "$DOCKER_BIN" -H "tcp://127.0.0.1:$port" build \
	-q -t remote2 -) > "$TESTDIR/r.log" 2>&1
like "$(cat "$TESTDIR/r.log")" "\\(remote\\): gzip" "docker -H tcp://: gzip"
dk context create ctxpack-remote --docker "host=tcp://127.0.0.1:$port" >/dev/null 2>&1
(cd "$C" && DOCKER_BUILDKIT=0 ctxpack build -v -- "$DOCKER_BIN" --context ctxpack-remote build \
	-q -t remote3 -) > "$TESTDIR/r.log" 2>&1
is "$?" 0 "docker --context (tcp://): the build works"
like "$(cat "$TESTDIR/r.log")" "\\(remote\\): gzip" "... with a gzip context"
(cd "$C" && DOCKER_BUILDKIT=0 dk build -q -t ref-now . >/dev/null 2>&1)
is "$(image_tree remote3 /ctx)" "$(image_tree ref-now /ctx)" "... and the same /ctx as docker build ."
(cd "$C" && DOCKER_BUILDKIT=0 ctxpack build -v --compress zstd -- "$DOCKER_BIN" build -q -t z -) \
	> "$TESTDIR/z.log" 2>&1
isnt "$?" 0 "--compress zstd overrides (and Docker cannot read it)"

# BuildKit reading DIR itself: what must hold before COMMAND starts still
# does (docker is not started: it would build nothing or the wrong file)
mkdir -p "$TESTDIR/emptyctx"
exits 1 "BuildKit, DIR itself: an empty context fails before docker starts" \
	ctxpack build "$TESTDIR/emptyctx" -- env DOCKER_BUILDKIT=1 "$DOCKER_BIN" build -t x -
like "$(cat "$TESTDIR/.out")" "the context .*emptyctx is empty: there is no Dockerfile to build" "... said so"
exits 1 "BuildKit, DIR itself: a missing -f Dockerfile fails before docker starts" \
	ctxpack build -f "$C/nope" "$C" -- env DOCKER_BUILDKIT=1 "$DOCKER_BIN" build -t x -
like "$(cat "$TESTDIR/.out")" "no Dockerfile .*/nope" "... naming it"
exits 2 "BuildKit, DIR itself: a DIR that is a file" \
	ctxpack build "$C/key" -- env DOCKER_BUILDKIT=1 "$DOCKER_BIN" build -t x -

# COMMAND's context must be - : anything else is refused before it runs
exits 2 "docker build . (not -): usage error" ctxpack build "$C" -- "$DOCKER_BIN" build -t x .
like "$(cat "$TESTDIR/.out")" "give - as its context" "... saying what to do"

done_testing
