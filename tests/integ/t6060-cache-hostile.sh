#!/bin/sh
# A hostile store cannot harm the runner (issue 14).  Entries are saved into
# an oci: layout, rewritten by the test where an attack needs it, and
# served either as the layout itself or by the project's hostile registry
# (tests/tools/hostile-registry.py, 127.0.0.1 only), which can send wrong
# or longer bodies, drip, stall and redirect:
#   - a blob with the wrong digest, or longer than its descriptor, is a miss
#     and nothing of it is extracted: while a download stalls one byte
#     short, the staging directory is still empty;
#   - a 34 KB layer that would unpack to a 1 GiB file is refused before the
#     file is made (the recorded size, else --max-size);
#   - slow drip, stalls, and a FIFO or device in an oci: store end in a
#     miss within --timeout, never a hang;
#   - keys, tags and titles with newlines or control characters never
#     reach stdout, $GITHUB_OUTPUT or the terminal as such;
#   - a redirect from the loopback registry to plain HTTP elsewhere is
#     refused (run in a network namespace of its own: nothing can leave);
#   - pull never overwrites a file named by the store unless --force.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-registry.sh"
. "$(dirname "$0")/lib-hostile.sh"

command -v zstd >/dev/null || { echo "1..0 # SKIP zstd not installed"; exit 0; }
cd "$TESTDIR" || exit 1
umask 022
L=$TESTDIR/layout
STORE=oci:$L
# a guard, not a measure: a restore that hangs fails here instead of
# hanging the suite
guard() { timeout 300 $EXEC_PREFIX "$CTXPACK" "$@"; }

# the tree: random data, so the blob is ~300 KB and a prefix of it already
# holds whole files
mkdir -p src && python3 - <<'EOF'
import os, random
r = random.Random(5)
for i in range(30):
    open("src/f%02d" % i, "wb").write(r.randbytes(10000))
EOF
ctxpack cache save -q --store "$STORE" --key real src
tree_list src >src.list
mkdir -p other && echo other >other/x
ctxpack cache save -q --store "$STORE" --key other other

# layer DIGEST of KEY's first layer; manifest helpers
entry() { # KEY FIELD (digest|size|tag)
	python3 - "$L" "$1" "$2" <<'EOF'
import json, sys
L, key, field = sys.argv[1:]
ix = json.load(open(L + "/index.json"))
for d in ix["manifests"]:
    m = json.load(open("%s/blobs/sha256/%s" % (L, d["digest"][7:])))
    if m["annotations"]["io.ctxpack.cache.key"] == key:
        l = m["layers"][0]
        print({"digest": l["digest"], "size": l["size"],
               "tag": d["annotations"]["org.opencontainers.image.ref.name"]}[field])
EOF
}
# rewrite KEY CODE [BLOBFILE]: run python CODE on the manifest m of KEY (and
# its first layer l), with the layer's blob replaced by BLOBFILE if given;
# the manifest and index.json are rewritten to match.
rewrite() {
	python3 - "$L" "$1" "$2" "${3:-}" <<'EOF'
import hashlib, json, os, sys
L, key, code, blobfile = sys.argv[1:]
ix = json.load(open(L + "/index.json"))
for d in ix["manifests"]:
    m = json.load(open("%s/blobs/sha256/%s" % (L, d["digest"][7:])))
    if m["annotations"]["io.ctxpack.cache.key"] != key:
        continue
    l = m["layers"][0]
    if blobfile:
        blob = open(blobfile, "rb").read()
        bd = hashlib.sha256(blob).hexdigest()
        open("%s/blobs/sha256/%s" % (L, bd), "wb").write(blob)
        l["digest"], l["size"] = "sha256:" + bd, len(blob)
    exec(code)
    raw = json.dumps(m, separators=(",", ":"), sort_keys=True).encode()
    md = hashlib.sha256(raw).hexdigest()
    open("%s/blobs/sha256/%s" % (L, md), "wb").write(raw)
    d["digest"], d["size"] = "sha256:" + md, len(raw)
json.dump(ix, open(L + "/index.json", "w"))
EOF
}
fresh() { rm -rf src && mkdir src && echo mine >src/mine; }
unchanged() { is "$(ls -A src)" mine "$1: the old directory is unchanged"; }
no_stage() { ok "$1: no staging directory left" sh -c '! ls -a | grep -q "^\.ctxpack-"'; }

# ---- the hostile registry, behaving
hostile_start "$L"
R=$HOSTILE/cache
fresh
is "$(ctxpack cache restore -q --store "$R" --key real src)" hit "the hostile registry serves a real entry"
is "$(tree_list src)" "$(cat src.list)" "and the tree is restored"
hostile_stop

# ---- a wrong digest (another valid archive) and a longer body
cp "$L/blobs/sha256/$(entry other digest | cut -c8-)" other.blob
hostile_start "$L" --body-file other.blob
R=$HOSTILE/cache
fresh
out=$(ctxpack cache restore --store "$R" --key real src 2>err)
is "$out" miss "wrong digest: a miss"
like "$(cat err)" "digest|bytes, want" "wrong digest: the warning says why"
unchanged "wrong digest"
no_stage "wrong digest"
hostile_stop
cp "$L/blobs/sha256/$(entry real digest | cut -c8-)" long.blob
head -c 1000000 /dev/zero >>long.blob
hostile_start "$L" --body-file long.blob
R=$HOSTILE/cache
fresh
out=$(ctxpack cache restore --store "$R" --key real src 2>err)
is "$out" miss "a body longer than declared: a miss"
like "$(cat err)" "larger than" "longer body: the warning says so"
unchanged "longer body"
hostile_stop

# ---- verified before extraction: the download stalls one byte short; the
# client holds all those bytes, and the staging directory is still empty
size=$(entry real size)
hostile_start "$L" --stall-after $((size - 1)) --state-file "$TESTDIR/stalled"
R=$HOSTILE/cache
fresh
( CTXPACK_IDLE_TIMEOUT=600 exec $EXEC_PREFIX "$CTXPACK" cache restore --store "$R" --key real src \
	>stall.out 2>stall.err ) &
cpid=$!
spooled() {
	for f in /proc/$cpid/fd/*; do
		case $(readlink "$f") in
		"$XDG_CACHE_HOME"/ctxpack/tmp/*) [ "$(stat -L -c %s "$f")" = $((size - 1)) ] && return 0 ;;
		esac
	done
	return 1
}
if wait_for 600 test -s "$TESTDIR/stalled" && wait_for 600 spooled; then
	_pass "the client holds all but the last byte of the layer"
	stage=$(ls -d .ctxpack-new-* 2>/dev/null | head -1)
	ok "a staging directory exists" test -n "$stage"
	is "$(ls -A "$stage" 2>&1)" "" "and not a byte of the unverified layer is extracted in it"
else
	_fail "the client holds all but the last byte of the layer"
fi
hostile_stop
wait $cpid
is "$(cat stall.out)" miss "the cut download is a miss"
unchanged "stalled download"
no_stage "stalled download"

# ---- a 34 KB layer that unpacks to a 1 GiB file
python3 - <<'EOF' | zstd -q >bomb.tar.zst
import sys, tarfile
i = tarfile.TarInfo("huge"); i.size = 1 << 30; i.mode = 0o644
out = sys.stdout.buffer
out.write(i.tobuf(tarfile.PAX_FORMAT))
z = bytes(1 << 20)
for _ in range(1024):
    out.write(z)
out.write(bytes(1024))
EOF
mkdir -p bombdir && echo mine >bombdir/mine
ctxpack cache save -q --store "$STORE" --key bomb bombdir
rewrite bomb "pass" bomb.tar.zst
diag "bomb: $(stat -c %s bomb.tar.zst) bytes"
ok "the bomb is a small blob" test "$(stat -c %s bomb.tar.zst)" -lt 100000
out=$(guard cache restore --store "$STORE" --key bomb bombdir 2>err)
is "$out" miss "bomb, as saved sizes bound it: a miss"
like "$(cat err)" "more than [0-9]+ bytes of files \(at huge\)" "bomb: refused at the entry, by the recorded size"
is "$(ls -A bombdir)" mine "bomb: the old directory is unchanged"
no_stage "bomb"
ok "bomb: no huge file was made anywhere" sh -c "! find '$TESTDIR' -name huge | grep -q ."
rewrite bomb 'del l["annotations"]["io.ctxpack.cache.uncompressed.size"]'
out=$(guard cache restore --store "$STORE" --key bomb --max-size 100M bombdir 2>err)
is "$out" miss "bomb, no recorded size: a miss under --max-size"
like "$(cat err)" "more than 104857600 bytes" "bomb: refused by --max-size"
rewrite bomb 'l["annotations"]["io.ctxpack.cache.uncompressed.size"] = str(1 << 40)'
out=$(guard cache restore --store "$STORE" --key bomb bombdir 2>err)
is "$out" miss "bomb declaring 1 TiB: a miss"
like "$(cat err)" "unpacks to 1099511627776 bytes, more than --max-size" "refused before the download"
rewrite bomb 'l["size"] = 1000; l["annotations"]["io.ctxpack.cache.uncompressed.size"] = "4096"' # a descriptor smaller than the blob
out=$(guard cache restore --store "$STORE" --key bomb bombdir 2>err)
is "$out" miss "an oci: blob longer than its descriptor: a miss"
like "$(cat err)" "larger than the 1000 bytes declared" "the oci: store enforces the declared size"

# ---- slow drip and stalls end within --timeout
for fault in "--drip 1" "--drip 1 --match /manifests/" "--drip 1 --match /tags/" "--stall-after 10"; do
	# shellcheck disable=SC2086
	hostile_start "$L" $fault
	R=$HOSTILE/cache
	fresh
	out=$(guard cache restore --store "$R" --key nope --restore-key re --timeout 3 src 2>err)
	rc=$?
	is "$rc $out" "0 miss" "$fault: fails open, a miss"
	like "$(cat err)" "time limit reached" "$fault: the warning names the time limit"
	unchanged "$fault"
	hostile_stop
done
hostile_start "$L" --stall-after 10
R=$HOSTILE/cache
fresh
out=$(CI=true guard cache run --store "$R" --timeout 2s --key-file src/mine --key-prefix re \
	--path src -- true 2>err)
like "$(cat err)" "time limit reached" "cache run: --timeout bounds its restore too"
hostile_stop
hostile_start "$L" --stall-after 10
R=$HOSTILE/cache
out=$(guard cache restore --store "$R" --key real --idle-timeout 1 src 2>err)
is "$out" miss "a stalled transfer: a miss after --idle-timeout"
like "$(cat err)" "no data for 1 s" "the warning says the transfer stalled"
hostile_stop

# ---- an oci: store of FIFOs and devices: refused, not waited on
cp -a "$L" fifo-layout
FL=$TESTDIR/fifo-layout
realblob=$FL/blobs/sha256/$(entry real digest | cut -c8-)
rm "$realblob" && mkfifo "$realblob"
fresh
out=$(guard cache restore --store "oci:$FL" --key real src 2>err)
is "$out" miss "a layer blob that is a FIFO: a miss"
like "$(cat err)" "not a regular file" "the FIFO is named as such"
rm "$realblob" && ln -s /dev/zero "$realblob"
out=$(guard cache restore --store "oci:$FL" --key real src 2>err)
is "$out" miss "a layer blob that is a link to /dev/zero: a miss"
like "$(cat err)" "not a regular file" "the device is refused"
man=$FL/blobs/sha256/$(python3 -c 'import json,sys; print([d["digest"][7:] for d in json.load(open(sys.argv[1]))["manifests"]][0])' "$FL/index.json")
rm "$man" && mkfifo "$man"
out=$(guard cache ls --store "oci:$FL" 2>err)
ok "cache ls with a manifest that is a FIFO ends" test $? -ne 124
like "$(cat err)" "not a regular file" "the manifest FIFO is refused"
mv "$FL/index.json" "$FL/index.real" && mkfifo "$FL/index.json"
out=$(guard cache restore --store "oci:$FL" --key real src 2>err)
is "$out" miss "an index.json that is a FIFO: a miss"
like "$(cat err)" "index.json is not a regular file" "the warning names index.json"
rm "$FL/index.json" && ln -s /dev/zero "$FL/index.json"
out=$(guard cache restore --store "oci:$FL" --key real src 2>err)
is "$out" miss "an index.json linked to /dev/zero: a miss"
unchanged "FIFO store"

# ---- keys, tags and titles with newlines or control characters
for k in pfx-real pfx-Xinjected=yes pfx-Yevil pfx-Zevil; do
	ctxpack cache save -q --store "$STORE" --key "$k" other
done
# the newest ones: a key with a newline, a title with an escape sequence
rewrite "pfx-Xinjected=yes" 'm["annotations"]["io.ctxpack.cache.key"] = "pfx-\ninjected=yes"'
rewrite "pfx-Yevil" 'm["annotations"]["io.ctxpack.cache.key"] = "pfx-\x1b]0;pwned\x07"'
rewrite "pfx-Zevil" 'l["annotations"]["org.opencontainers.image.title"] = "x\n::warning::pwned"'
hostile_start "$L" --extra-tag "$(printf 'bad\ntag')" --extra-tag "$(printf '\033[31mred')"
for st in "$STORE" "$HOSTILE/cache"; do
	rm -rf other2 && cp -a other other2
	rm -f gh.out
	out=$(GITHUB_OUTPUT=$TESTDIR/gh.out ctxpack cache restore --store "$st" --key pfx-none \
		--restore-key pfx- other 2>err)
	is "$out" "partial pfx-real" "$st: only the valid entry is chosen; stdout is one line"
	is "$(cat gh.out)" "$(printf 'cache-hit=false\nmatched-key=pfx-real')" \
		"$st: GITHUB_OUTPUT gets exactly its two lines"
	ok "$st: no line from the store on stderr" sh -c "! grep -Eq '^(injected|::warning)' err"
	ok "$st: stderr has no escape or bell byte" python3 -c \
		'import sys; d = open(sys.argv[1], "rb").read(); sys.exit(b"\x1b" in d or b"\x07" in d)' err
	like "$(cat err)" 'pfx-\\ninjected' "$st: the refused key is shown escaped"
	ls_out=$(ctxpack cache ls --json --store "$st" 2>ls.err)
	rc=$?
	is "$rc" 0 "$st: cache ls works"
	is "$(printf '%s\n' "$ls_out" | python3 -c 'import json, sys; print(" ".join(sorted(e["key"] for e in json.load(sys.stdin))))')" \
		"bomb other pfx-real real" "$st: cache ls lists the valid entries only"
	ok "$st: nothing from the store starts a line" sh -c "! grep -Eq '^(tag|injected|::warning)' ls.err"
done
hostile_stop

# ---- a redirect to plain HTTP elsewhere, in a namespace where nothing can leave
cat >redirect.sh <<EOF
python3 "$ROOT/tests/tools/hostile-registry.py" --layout "$L" --port-file "$TESTDIR/rport" \
	--redirect-to http://192.0.2.1:5000 &
pid=\$!
i=0; while [ ! -s "$TESTDIR/rport" ] && [ \$i -lt 100 ]; do sleep 0.1; i=\$((i + 1)); done
port=\$(cat "$TESTDIR/rport")
rm -rf src && mkdir src && echo mine >src/mine
$EXEC_PREFIX "$CTXPACK" cache restore --store 127.0.0.1:\$port/cache --key real src \
	>redir.out 2>redir.err
$EXEC_PREFIX "$CTXPACK" cache restore --insecure --store 127.0.0.1:\$port/cache --key real src \
	>redir2.out 2>redir2.err
kill \$pid
EOF
in_netns sh redirect.sh
rc=$?
if [ $rc = 99 ]; then
	skip "no network namespaces here: the redirect case"
else
	is "$(cat redir.out)" miss "a redirect to plain HTTP elsewhere: a miss"
	like "$(cat redir.err)" "refusing a redirect to http://192.0.2.1:5000/v2/cache/blobs/sha256:[0-9a-f]+: plain HTTP" \
		"the redirect is refused, naming the rule"
	is "$(cat redir2.out)" miss "with --insecure it is followed (and fails here: nothing can leave)"
	ok "--insecure: not refused by the rule" sh -c "! grep -q 'refusing a redirect' redir2.err"
	unchanged "redirect"
fi

# ---- pull never overwrites a file the store names
mkdir -p pulls && cd pulls || exit 1
echo payload >data.bin
ctxpack push -q data.bin "oci:$TESTDIR/art:t" >/dev/null
echo mine >data.bin
fails "pull without -o refuses to replace data.bin" ctxpack pull "oci:$TESTDIR/art:t"
is "$(cat data.bin)" mine "data.bin is unchanged"
like "$(cat "$TESTDIR/.out")" "data.bin exists; not overwritten" "the error says why"
ok "pull --force replaces it" ctxpack pull --force "oci:$TESTDIR/art:t"
is "$(cat data.bin)" payload "with --force, data.bin is the layer"
ok "pull -o names the file itself (and may replace it)" ctxpack pull -o data.bin "oci:$TESTDIR/art:t"
ls -A >before
cd .. || exit 1
python3 - "$TESTDIR/art" <<'EOF'
import hashlib, json, sys
L = sys.argv[1]
ix = json.load(open(L + "/index.json"))
d = ix["manifests"][0]
m = json.load(open("%s/blobs/sha256/%s" % (L, d["digest"][7:])))
m["layers"][0]["annotations"]["org.opencontainers.image.title"] = "x\n::warning::pwned"
raw = json.dumps(m, separators=(",", ":"), sort_keys=True).encode()
md = hashlib.sha256(raw).hexdigest()
open("%s/blobs/sha256/%s" % (L, md), "wb").write(raw)
d["digest"], d["size"] = "sha256:" + md, len(raw)
json.dump(ix, open(L + "/index.json", "w"))
EOF
cd pulls || exit 1
fails "a title with a newline is refused as a file name" ctxpack pull "oci:$TESTDIR/art:t"
like "$(cat "$TESTDIR/.out")" 'x\\n::warning::pwned' "and shown escaped"
is "$(ls -A)" "$(cat before)" "no file was made"
cd .. || exit 1

done_testing
