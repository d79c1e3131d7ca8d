#!/bin/sh
# --progress auto|always|never: pack, build, push, pull and cache save and
# restore draw a status line on stderr only when asked (always) or on a
# terminal (auto, not with -q); the archive never changes; plain lines
# without \r when stderr is not a terminal; a bad value is a usage error.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-registry.sh"

cd "$TESTDIR" || exit 1
mkdir -p ctx/src
head -c 6000000 /dev/urandom >ctx/random.bin
seq 1 200000 >ctx/src/numbers.txt
printf 'FROM scratch\nCOPY . /\n' >ctx/Dockerfile

CR=$(printf '\r')
ESC=$(printf '\033')

# --- pack ---
ctxpack pack --no-cache --progress always -o always.tar.zst ctx 2>always.err
is "$?" 0 "pack --progress always"
ctxpack pack --no-cache --progress never -o never.tar.zst ctx 2>never.err
is "$?" 0 "pack --progress never"
# the size as the display shows it
human=$(awk '{ printf "%.1f MiB", $2 / 1048576 }' never.err)
same_files always.tar.zst never.tar.zst "the archive is the same with and without progress"
like "$(cat always.err)" "^ctxpack: pack $human, [0-9.]+ MB/s, done\$" \
	"always, not a terminal: a last plain line with bytes and rate"
ok "always, not a terminal: plain lines, no CR or escapes" \
	sh -c "! grep -q '[$CR$ESC]' always.err"
is "$(tail -n 1 always.err | cut -d' ' -f1)" "sha256:$(sha256_of always.tar.zst)" \
	"the summary comes after the progress lines"
is "$(grep -vc '^ctxpack: pack' always.err)" 1 "nothing else on stderr"
is "$(cat never.err | wc -l)" 1 "never: only the summary"
ctxpack pack --no-cache --progress always -o - ctx >stdout.tar.zst 2>stdout.err
same_files stdout.tar.zst never.tar.zst "-o - with progress: the same bytes on stdout"
like "$(cat stdout.err)" '^ctxpack: pack .*, done$' "-o -: progress on stderr"
ctxpack pack --no-cache -o auto.tar.zst ctx 2>auto.err
is "$(grep -c 'ctxpack: pack' auto.err)" 0 "auto with stderr not a terminal: no progress"
ctxpack pack --no-cache -q -o quiet.tar.zst ctx 2>quiet.err
is "$(wc -c <quiet.err)" 0 "-q: nothing on stderr"
ctxpack pack --progress always -o cached.tar.zst ctx 2>cached.err
ctxpack pack --progress always -o cached2.tar.zst ctx 2>cached2.err
same_files cached2.tar.zst never.tar.zst "a re-pack from the cache with progress: the same bytes"
like "$(cat cached2.err)" "^ctxpack: pack $human, [0-9.]+ MB/s, done\$" \
	"a re-pack from the cache reports the archive's bytes"
exits 2 "--progress bogus is a usage error" ctxpack pack --progress bogus -o x.tar.zst ctx
like "$(cat "$TESTDIR/.out")" "--progress takes auto, always or never, not 'bogus'" \
	"the usage error names the bad value"
ok "and writes nothing" test ! -e x.tar.zst
exits 2 "--progress needs a value" ctxpack pack -o x.tar.zst ctx --progress
like "$(ctxpack pack --help)" '--progress WHEN +a status line on stderr' "--help says what --progress does"

# --- on a pseudo-terminal (script from bsdutils) ---
if command -v script >/dev/null 2>&1; then
	script -qec "$EXEC_PREFIX $CTXPACK pack --no-cache -o tty.tar.zst ctx" /dev/null \
		</dev/null >tty.out 2>&1
	same_files tty.tar.zst never.tar.zst "auto on a terminal: the same bytes"
	ok "auto on a terminal: the line is drawn after a CR and erased with ESC[K" \
		grep -q "${CR}ctxpack: pack .*${ESC}\\[K" tty.out
	# what the terminal shows: the last \r-separated piece of each line
	is "$(sed "s/${ESC}\\[K//g" tty.out |
		awk -F "$CR" '{ for (i = NF; i > 1 && $i == ""; i--) ; print $i }' |
		grep -c '^sha256:')" 1 "the summary is alone on its line once the status is erased"
	ok "the status line is erased before the summary" \
		grep -q "${CR}${ESC}\\[Ksha256:" tty.out
	script -qec "$EXEC_PREFIX $CTXPACK pack --no-cache -q -o ttyq.tar.zst ctx" /dev/null \
		</dev/null >ttyq.out 2>&1
	is "$(wc -c <ttyq.out)" 0 "-q on a terminal: no progress (-q wins over auto)"
	script -qec "$EXEC_PREFIX $CTXPACK pack --no-cache --progress never -o ttyn.tar.zst ctx" \
		/dev/null </dev/null >ttyn.out 2>&1
	ok "never on a terminal: no progress" sh -c "! grep -q 'ctxpack: pack' ttyn.out"
	script -qec "$EXEC_PREFIX $CTXPACK build --no-cache ctx -- sh -c 'cat >/dev/null'" \
		/dev/null </dev/null >ttyb.out 2>&1
	ok "build with auto on a terminal draws nothing (COMMAND shares it)" \
		sh -c "! grep -q 'ctxpack: build' ttyb.out"
else
	skip "script (bsdutils) not installed"
fi

# --- build ---
ctxpack build --no-cache --progress always ctx -- sh -c 'cat >built.tar.zst' 2>build.err
same_files built.tar.zst never.tar.zst "build --progress always: COMMAND gets the same bytes"
like "$(cat build.err)" '^ctxpack: build [0-9.]+ (KiB|MiB), [0-9.]+ MB/s, done$' \
	"build --progress always: progress lines"
ctxpack build --no-cache ctx -- sh -c 'cat >/dev/null' 2>buildauto.err
is "$(grep -c 'ctxpack: build' buildauto.err)" 0 "build, auto, not a terminal: none"

# --- oci: layout store ---
ctxpack push --progress always ctx/random.bin "oci:$TESTDIR/layout:v1" >/dev/null 2>lpush.err
like "$(cat lpush.err)" '^ctxpack: push 5\.7 MiB / 5\.7 MiB \(100%\), .*done$' \
	"push to a layout: progress with the total"
ctxpack pull --progress always -o lpull.bin "oci:$TESTDIR/layout:v1" 2>lpull.err
same_files lpull.bin ctx/random.bin "pull from a layout with progress: the same bytes"
like "$(cat lpull.err)" '^ctxpack: pull 5\.7 MiB / 5\.7 MiB \(100%\), .*done$' \
	"pull from a layout: progress with the total"
ctxpack push --progress always ctx/random.bin "oci:$TESTDIR/layout:v2" >/dev/null 2>lpush2.err
is "$(grep -c '^ctxpack: push [0-9]' lpush2.err)" 0 "a blob already there: no progress line"
ctxpack cache save --progress always --key k1 --store "oci:$TESTDIR/cstore" ctx 2>csave.err
like "$(cat csave.err)" '^ctxpack: save [0-9.]+ MiB / [0-9.]+ MiB \(100%\), .*done$' \
	"cache save: progress of the upload"
mv ctx ctx.orig
ctxpack cache restore --progress always --key k1 --store "oci:$TESTDIR/cstore" ctx \
	>crestore.out 2>crestore.err
is "$(cat crestore.out)" hit "cache restore with progress: a hit"
ok "the restored tree is the saved one" diff -r ctx.orig ctx
like "$(cat crestore.err)" '^ctxpack: restore [0-9.]+ MiB / [0-9.]+ MiB \(100%\), .*done$' \
	"cache restore: progress of the download"
ctxpack cache restore -q --key k1 --store "oci:$TESTDIR/cstore" ctx >/dev/null 2>cq.err
is "$(wc -c <cq.err)" 0 "cache restore -q: nothing on stderr"

# --- a registry ---
if [ -x "$REGISTRY_BIN" ] && command -v curl >/dev/null 2>&1 && reg_start; then
	ctxpack push --progress always ctx/random.bin "$REG/ctx/progress:v1" >/dev/null 2>rpush.err
	like "$(cat rpush.err)" '^ctxpack: push 5\.7 MiB / 5\.7 MiB \(100%\), .*done$' \
		"push to a registry: progress with the total"
	ok "push: every line has the total" sh -c \
		"! grep '^ctxpack: push [0-9]' rpush.err | grep -v ' / 5\\.7 MiB ('"
	ctxpack pull --progress always -o rpull.bin "$REG/ctx/progress:v1" 2>rpull.err
	same_files rpull.bin ctx/random.bin "pull with progress: the same bytes"
	like "$(cat rpull.err)" '^ctxpack: pull 5\.7 MiB / 5\.7 MiB \(100%\), .*done$' \
		"pull from a registry: progress with the total"
	ctxpack pull --progress always -o - "$REG/ctx/progress:v1" >rpull2.bin 2>rpull2.err
	same_files rpull2.bin ctx/random.bin "pull -o - with progress: the same bytes on stdout"
	CTXPACK_MONOLITHIC_MAX=3000000 CTXPACK_CHUNK_SIZE=2000000 \
		ctxpack push --progress always ctx/random.bin "$REG/ctx/chunked:v1" >/dev/null \
		2>rchunk.err
	like "$(cat rchunk.err)" '^ctxpack: push 5\.7 MiB / 5\.7 MiB \(100%\), .*done$' \
		"a chunked upload counts the whole blob, not one chunk"
	if [ -x "$TOOLS/faultproxy" ] && proxy_start --match 'GET /v2/ctx/progress/blobs' \
		--cut-response-after 3000000; then
		ctxpack pull -v --progress always -o rcut.bin "$PROXY/ctx/progress:v1" 2>rcut.err
		same_files rcut.bin ctx/random.bin "a resumed pull with progress: the same bytes"
		ok "(the download was resumed)" grep -q 'resuming' rcut.err
		like "$(grep '^ctxpack: pull [0-9]' rcut.err | tail -n 1)" \
			'^ctxpack: pull 5\.7 MiB / 5\.7 MiB \(100%\), .*done$' \
			"a resumed download counts from where it resumed"
		proxy_stop
	else
		skip "faultproxy not available"
	fi
	ctxpack push ctx/random.bin "$REG/ctx/progress:v3" >/dev/null 2>rpushn.err
	ctxpack pull -o rpulln.bin "$REG/ctx/progress:v1" 2>rpulln.err
	is "$(cat rpushn.err rpulln.err | grep -c 'ctxpack: pu[sl][hl] ')" 0 \
		"push and pull, auto, not a terminal: no progress"
	ctxpack cache save --progress always --key k2 --store "$REG/ctx/cache" ctx 2>rsave.err
	like "$(cat rsave.err)" '^ctxpack: save [0-9.]+ MiB / [0-9.]+ MiB \(100%\), .*done$' \
		"cache save to a registry: progress"
	ctxpack cache restore --progress always --key k2 --store "$REG/ctx/cache" ctx \
		>/dev/null 2>rrestore.err
	like "$(cat rrestore.err)" '^ctxpack: restore [0-9.]+ MiB / [0-9.]+ MiB \(100%\), .*done$' \
		"cache restore from a registry: progress"
else
	skip "docker-registry not available"
fi

done_testing
