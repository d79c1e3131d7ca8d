#!/bin/sh
# ctxpack pack: GNU tar, bsdtar and Python's tarfile list and extract the
# archive to exactly the entries, modes, link targets and contents of the
# tree (as `ctxpack ls` lists it), for every codec; normalized headers;
# the summary, --json, -o FILE / -o - / no -o, and the usage errors.
. "$(dirname "$0")/lib.sh"

C=$TESTDIR/ctx
python3 - "$C" <<'PY'
import os, sys
from tree import writer
root = sys.argv[1]
w = writer(root)
w("Dockerfile", b"FROM scratch\nCOPY . /ctx/\n")
w(".dockerignore", b"*.log\nbuild/\n")
w("README.md", b"# readme\n" * 100)
w("empty")
w("run.sh", b"#!/bin/sh\necho hi\n", 0o700)
w("group-exec", b"x", 0o610)
w("setuid", b"x", 0o4755)
w("src/a.c", b"int main(void) { return 0; }\n" * 1000)
w("src/a-b.c", b"a-b\n")
w("src/a/x.c", b"x\n")
w("src/deep/er/still/f.txt", b"deep\n", 0o600)
w("data/medium.bin", os.urandom(3 << 20))
w("data/text.txt", b"".join(b"line %d\n" % i for i in range(200000)))
w("noise.log", b"excluded\n")
w("build/out.o", b"excluded\n")
os.makedirs(os.path.join(root, "emptydir"))
os.makedirs(os.path.join(root, "src/emptysub"))
os.symlink("a.c", os.path.join(root, "src/link-to-a"))
os.symlink("../../nowhere/dangling", os.path.join(root, "src/dangling"))
os.symlink("/etc/passwd", os.path.join(root, "abs-link"))
os.symlink("src", os.path.join(root, "dirlink"))
os.mkfifo(os.path.join(root, "fifo"))
os.chmod(os.path.join(root, "src/deep"), 0o700)
w("setgid", b"g", 0o2750)
w("sticky/f", b"t\n")
os.chmod(os.path.join(root, "sticky"), 0o1777)
# hard links: later paths (archive order) link to the first
os.link(os.path.join(root, "README.md"), os.path.join(root, "src/readme-link"))
os.link(os.path.join(root, "README.md"), os.path.join(root, "hl-readme"))
os.link(os.path.join(root, "noise.log"), os.path.join(root, "kept-of-excluded"))
PY

ctxpack ls -0 "$C" > "$TESTDIR/ls0"
python3 "$ROOT/tests/integ/treecmp.py" "$C" "$TESTDIR/ls0" src > "$TESTDIR/want.txt"

for comp in zstd gzip none; do
	A=$TESTDIR/ctx.$comp
	unset NORMALIZE_MODES NO_HARDLINKS
	ok "$comp: pack -o FILE" ctxpack pack --compress "$comp" -o "$A" "$C"
	case $comp in
	zstd) zstd -dqc "$A" > "$TESTDIR/raw.tar"; gnu="--zstd" ;;
	gzip) gzip -dc "$A" > "$TESTDIR/raw.tar"; gnu="--gzip" ;;
	none) cp "$A" "$TESTDIR/raw.tar"; gnu="" ;;
	esac
	ok "$comp: Python tarfile sees exactly the tree, normalized" \
		python3 "$ROOT/tests/integ/tar-check.py" "$TESTDIR/raw.tar" "$C" "$TESTDIR/ls0"
	rm -rf "$TESTDIR/x1" "$TESTDIR/x2" "$TESTDIR/x3"
	mkdir "$TESTDIR/x1" "$TESTDIR/x2" "$TESTDIR/x3"
	# shellcheck disable=SC2086
	tar $gnu -xf "$A" -C "$TESTDIR/x1"
	python3 "$ROOT/tests/integ/treecmp.py" "$TESTDIR/x1" "$TESTDIR/ls0" > "$TESTDIR/got.txt"
	is "$(cat "$TESTDIR/got.txt")" "$(cat "$TESTDIR/want.txt")" "$comp: GNU tar extracts the tree"
	bsdtar -xf "$A" -C "$TESTDIR/x2"
	python3 "$ROOT/tests/integ/treecmp.py" "$TESTDIR/x2" "$TESTDIR/ls0" > "$TESTDIR/got.txt"
	is "$(cat "$TESTDIR/got.txt")" "$(cat "$TESTDIR/want.txt")" "$comp: bsdtar extracts the tree"
	python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
		"$TESTDIR/raw.tar" "$TESTDIR/x3"
	python3 "$ROOT/tests/integ/treecmp.py" "$TESTDIR/x3" "$TESTDIR/ls0" > "$TESTDIR/got.txt"
	is "$(cat "$TESTDIR/got.txt")" "$(cat "$TESTDIR/want.txt")" "$comp: Python tarfile extracts the tree"
	is "$(bsdtar -tf "$A" | wc -l)" "$(tr -cd '\0' < "$TESTDIR/ls0" | wc -c)" \
		"$comp: bsdtar lists every entry"
	is "$(tail -c 1024 "$TESTDIR/raw.tar" | tr -d '\0' | wc -c)" 0 "$comp: ends with the end blocks"
	is "$(( $(wc -c < "$TESTDIR/raw.tar") % 512 ))" 0 "$comp: no record padding beyond the blocks"
done
# the header of a hard link, a setuid file and a 0700 directory, by hand
is "$(python3 - "$TESTDIR/ctx.none" <<'PY'
import sys, tarfile
t = tarfile.open(sys.argv[1])
for n in ("hl-readme", "src/readme-link", "kept-of-excluded", "setuid", "src/deep", "sticky"):
    m = t.getmember(n)
    print(n, m.type.decode(), oct(m.mode), m.linkname or "-", m.size)
PY
)" "hl-readme 1 0o644 README.md 0
src/readme-link 1 0o644 README.md 0
kept-of-excluded 0 0o644 - 9
setuid 0 0o4755 - 1
src/deep 5 0o700 - 0
sticky 5 0o1777 - 0" "headers: hard links (typeflag 1 to the first included path), setuid, 0700, sticky"

# --normalize-modes: git-style modes; --no-hardlinks: every path a file
ok "--normalize-modes --no-hardlinks: pack" \
	ctxpack pack --compress none --normalize-modes --no-hardlinks -o "$TESTDIR/norm.tar" "$C"
ok "... Python tarfile sees the tree with 0644/0755 modes and no hard links" \
	env NORMALIZE_MODES=1 NO_HARDLINKS=1 python3 "$ROOT/tests/integ/tar-check.py" \
	"$TESTDIR/norm.tar" "$C" "$TESTDIR/ls0"
rm -rf "$TESTDIR/xn"; mkdir "$TESTDIR/xn"; tar -xf "$TESTDIR/norm.tar" -C "$TESTDIR/xn"
is "$(python3 "$ROOT/tests/integ/treecmp.py" "$TESTDIR/xn" "$TESTDIR/ls0")" \
	"$(NORMALIZE_MODES=1 python3 "$ROOT/tests/integ/treecmp.py" "$C" "$TESTDIR/ls0" src)" \
	"... GNU tar extracts the tree with normalized modes"
is "$(ctxpack ls -l --normalize-modes "$C" | grep ' setuid$')" \
	"f 0755            1 setuid" "ls -l --normalize-modes shows the normalized mode"
is "$(ctxpack ls -l "$C" | grep -E ' (setuid|hl-readme.*)$')" \
	"h 0644            - hl-readme => README.md
f 4755            1 setuid" "ls -l shows the modes as found and hard links"

is "$(zstd -lv "$TESTDIR/ctx.zstd" 2>/dev/null | grep -c 'Check: XXH64')" 1 "zstd: checksum on"
like "$(zstd -lv "$TESTDIR/ctx.zstd" 2>/dev/null)" "Decompressed Size: +(0|unknown)|Frames" \
	"zstd: readable by zstd -l"
is "$(gzip -dc "$TESTDIR/ctx.gzip" | cmp - "$TESTDIR/ctx.none" && echo same)" same \
	"gzip: the members decompress to the tar"
is "$(od -An -tx1 -j4 -N5 "$TESTDIR/ctx.gzip" | tr -d ' ')" 0000000000 "gzip: header mtime 0, no name"

# the summary and the outputs
ctxpack pack -o "$TESTDIR/s.zst" "$C" 2> "$TESTDIR/err"
sum=$(sha256sum < "$TESTDIR/s.zst" | cut -d' ' -f1)
n=$(tr -cd '\0' < "$TESTDIR/ls0" | wc -c)
is "$(cat "$TESTDIR/err")" "sha256:$sum $(wc -c < "$TESTDIR/s.zst") $n" "summary: sha256:<hex> <bytes> <entries>"
ctxpack pack -o - "$C" > "$TESTDIR/s2.zst" 2>/dev/null
same_files "$TESTDIR/s.zst" "$TESTDIR/s2.zst" "-o - streams the same bytes"
ctxpack pack "$C" > "$TESTDIR/s3.zst" 2>/dev/null
same_files "$TESTDIR/s.zst" "$TESTDIR/s3.zst" "no -o writes to a non-terminal stdout"
ctxpack pack -q -o "$TESTDIR/s4.zst" "$C" 2> "$TESTDIR/err"
is "$(cat "$TESTDIR/err")" "" "-q: no summary"
json=$(ctxpack pack --json --no-cache --level 5 -o "$TESTDIR/s5.zst" "$C" 2>/dev/null)
sum5=$(sha256sum < "$TESTDIR/s5.zst" | cut -d' ' -f1)
is "$json" "{\"digest\":\"sha256:$sum5\",\"bytes\":$(wc -c < "$TESTDIR/s5.zst"),\"entries\":$n,\"compress\":\"zstd\",\"level\":5,\"added\":[]}" \
	"--json summary on stdout"
(cd "$C" && ctxpack pack -q -o "$TESTDIR/s6.zst")
same_files "$TESTDIR/s.zst" "$TESTDIR/s6.zst" "DIR defaults to ."
is "$(ls "$TESTDIR" | grep -c '\.tmp\.')" 0 "no temporary files left"

# refusals
rc=$(python3 - "$CTXPACK" "$C" <<'PY'
import os, pty, subprocess, sys
m, s = pty.openpty()
r = subprocess.run([sys.argv[1], "pack", sys.argv[2]], stdout=s, stderr=subprocess.PIPE)
print(r.returncode, b"terminal" in r.stderr)
PY
)
is "$rc" "2 True" "no -o and a terminal stdout: refused (exit 2)"
exits 2 "--json with -o -: usage error" ctxpack pack --json -o - "$C"
exits 2 "--compress xz: usage error" ctxpack pack --compress xz -o "$TESTDIR/u" "$C"
exits 2 "--level 0: usage error" ctxpack pack --level 0 -o "$TESTDIR/u" "$C"
exits 2 "--level 20: usage error" ctxpack pack --level 20 -o "$TESTDIR/u" "$C"
exits 2 "--level with none: usage error" ctxpack pack --compress none --level 3 -o "$TESTDIR/u" "$C"
exits 2 "--threads 0: usage error" ctxpack pack --threads 0 -o "$TESTDIR/u" "$C"
exits 2 "two DIRs: usage error" ctxpack pack -o "$TESTDIR/u" "$C" "$C"
fails "missing context fails" ctxpack pack -o "$TESTDIR/u" "$TESTDIR/nope"
is "$(ls "$TESTDIR" | grep -c '^u')" 0 "nothing written on usage errors"
mkdir -p "$TESTDIR/isdir/x"
fails "-o onto a directory fails" ctxpack pack -o "$TESTDIR/isdir" "$C"
is "$(ls "$TESTDIR" | grep -c '\.tmp\.')" 0 "... and removes its temporary file"
ok "pack --help" ctxpack pack --help

done_testing
