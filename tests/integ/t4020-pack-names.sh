#!/bin/sh
# ctxpack pack with hard names: over 100 and over 255 bytes, components of
# 255 bytes, non-ASCII UTF-8, bytes that are not UTF-8, newlines, spaces,
# backslashes, leading dashes, long and non-ASCII symlink targets, empty
# directories.  GNU tar, bsdtar and Python's tarfile must give back the
# same names; pax records only where needed.
. "$(dirname "$0")/lib.sh"

C=$TESTDIR/ctx
python3 - "$C" <<'PY'
import os, sys
root = sys.argv[1].encode()
def w(rel, data=b"x\n"):
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
w(b"short.txt")
w(b"a" * 99)                                   # 99: fits ustar name
w(b"b" * 100)                                  # 100: fits exactly
w(b"c" * 101)                                  # needs the prefix or pax
w(b"p" * 150 + b"/" + b"q" * 99)               # 250, splits into prefix/name
w(b"r" * 200 + b"/" + b"s" * 120)              # 321, needs pax path
w(b"t" * 255)                                  # the longest component
w(b"/".join([b"d%03d" % i + b"x" * 60 for i in range(12)]) + b"/leaf")  # ~790 bytes
w("ünïcødé/日本語/файл.txt".encode())
w("é".encode() * 60 + b".txt")                 # 120 bytes of UTF-8
w(b"latin1-\xe9\xe8.txt")                       # not UTF-8
w(b"bad\xff\xfe/inside.txt")
w(b"with space/and\ttab")
w(b"new\nline")
w(b"back\\slash")
w(b"-dash")
w(b"quote\"s'")
os.makedirs(os.path.join(root, b"empty/dir/chain"))
os.makedirs(os.path.join(root, b"emptydir2"))
os.symlink(b"x" * 101, os.path.join(root, b"link-long-target"))
os.symlink(b"../" * 40 + b"y" * 200, os.path.join(root, b"link-very-long"))
os.symlink("цель/ünï".encode(), os.path.join(root, b"link-utf8"))
os.symlink(b"\xff\xfe-target", os.path.join(root, b"link-binary"))
os.symlink(b"t" * 255, os.path.join(root, b"link-to-long-name"))
PY

ctxpack ls -0 "$C" > "$TESTDIR/ls0"
is "$(tr -cd '\0' < "$TESTDIR/ls0" | wc -c)" 44 "ls lists every entry"
python3 "$ROOT/tests/integ/treecmp.py" "$C" "$TESTDIR/ls0" src > "$TESTDIR/want.txt"

for comp in zstd none; do
	A=$TESTDIR/ctx.$comp
	ok "$comp: packs" ctxpack pack -q --compress "$comp" -o "$A" "$C"
	if [ "$comp" = zstd ]; then zstd -dqc "$A" > "$TESTDIR/raw.tar"; else cp "$A" "$TESTDIR/raw.tar"; fi
	ok "$comp: Python tarfile: the same names, in order, normalized" \
		python3 "$ROOT/tests/integ/tar-check.py" "$TESTDIR/raw.tar" "$C" "$TESTDIR/ls0"
	rm -rf "$TESTDIR/x1" "$TESTDIR/x2" "$TESTDIR/x3"
	mkdir "$TESTDIR/x1" "$TESTDIR/x2" "$TESTDIR/x3"
	tar -xf "$TESTDIR/raw.tar" -C "$TESTDIR/x1" 2>/dev/null # warns about hdrcharset
	python3 "$ROOT/tests/integ/treecmp.py" "$TESTDIR/x1" "$TESTDIR/ls0" > "$TESTDIR/got.txt"
	is "$(cat "$TESTDIR/got.txt")" "$(cat "$TESTDIR/want.txt")" "$comp: GNU tar extracts the same names"
	bsdtar -xf "$A" -C "$TESTDIR/x2"
	python3 "$ROOT/tests/integ/treecmp.py" "$TESTDIR/x2" "$TESTDIR/ls0" > "$TESTDIR/got.txt"
	is "$(cat "$TESTDIR/got.txt")" "$(cat "$TESTDIR/want.txt")" "$comp: bsdtar extracts the same names"
	python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1], encoding="utf-8", errors="surrogateescape").extractall(sys.argv[2])' \
		"$TESTDIR/raw.tar" "$TESTDIR/x3"
	python3 "$ROOT/tests/integ/treecmp.py" "$TESTDIR/x3" "$TESTDIR/ls0" > "$TESTDIR/got.txt"
	is "$(cat "$TESTDIR/got.txt")" "$(cat "$TESTDIR/want.txt")" "$comp: Python tarfile extracts the same names"
done

# pax records only where a name needs one
recs=$(python3 - "$TESTDIR/raw.tar" <<'PY'
import sys, tarfile
t = tarfile.open(sys.argv[1], encoding="utf-8", errors="surrogateescape")
need = []
for m in t.getmembers():
    n = m.name + ("/" if m.isdir() else "")
    raw = n.encode("utf-8", "surrogateescape")
    link = m.linkname.encode("utf-8", "surrogateescape")
    has = bool(m.pax_headers)
    ascii_ = all(b < 128 for b in raw + link)
    if not has and (not ascii_ or len(link) > 100):
        need.append("missing " + repr(n))
    if has and ascii_ and len(raw) <= 100 and len(link) <= 100:
        need.append("extra " + repr(n) + repr(m.pax_headers))
    if b"\xff" in raw or b"\xe9\xe8" in raw or b"\xff" in link:
        if m.pax_headers.get("hdrcharset") != "BINARY":
            need.append("no hdrcharset " + repr(n))
print("\n".join(need) or "ok")
PY
)
is "$recs" ok "pax records exactly for long, non-ASCII and non-UTF-8 names"
is "$(tar -tf "$TESTDIR/raw.tar" 2>/dev/null | grep -c PaxHeader)" 0 "no PaxHeader entries leak into listings"

# a first entry with a pax 'x' header: an empty pax global header goes
# before it in an uncompressed archive (docker build - parses the first 1024
# bytes as one header); not when the first entry is plain, nor inside zstd
G=$TESTDIR/g
mkdir -p "$G"
printf 'FROM scratch\n' > "$G/Dockerfile"; echo u > "$G/#ü"; echo n > "$G/n.txt"
ctxpack pack -q --compress none -o "$TESTDIR/g.tar" "$G"
ctxpack pack -q -o "$TESTDIR/g.zst" "$G"
python3 - "$TESTDIR/g.tar" > "$TESTDIR/g.out" 2>&1 <<'PY'
import sys, tarfile
b = open(sys.argv[1], "rb").read()
print(b[156:157].decode(), int(b[124:135], 8), b[:17].decode(), b[512 + 156:512 + 157].decode())
print(" ".join(m.name for m in tarfile.open(sys.argv[1])))
PY
is "$(cat "$TESTDIR/g.out")" "g 0 pax_global_header x
#ü Dockerfile n.txt" "a non-ASCII first entry: an empty global header first, then its 'x' header"
is "$(tar -tf "$TESTDIR/g.tar" | tr '\n' ' ')" "#ü Dockerfile n.txt " "GNU tar lists no extra entry"
is "$(bsdtar -tf "$TESTDIR/g.tar" | tr '\n' ' ')" "#ü Dockerfile n.txt " "bsdtar neither"
is "$(zstd -dc "$TESTDIR/g.zst" | head -c 512 | cut -c1-3)" "Pax" "inside zstd: no global header (the 'x' header first)"
# through the frame store: the same bytes when the archive is reused
sleep 0.3 # out of the racy window
ctxpack pack -q --compress none -o "$TESTDIR/g.1.tar" "$G"
ctxpack pack --json --compress none -o "$TESTDIR/g.2.tar" "$G" > "$TESTDIR/g.2.json"
ctxpack pack -q --no-cache --compress none -o "$TESTDIR/g.cold.tar" "$G"
same_files "$TESTDIR/g.1.tar" "$TESTDIR/g.tar" "the global header: a second pack, the same bytes"
same_files "$TESTDIR/g.2.tar" "$TESTDIR/g.tar" "the global header: a third pack, the same bytes"
same_files "$TESTDIR/g.cold.tar" "$TESTDIR/g.tar" "the global header: --no-cache, the same bytes"
ok "the global header: the third pack reused stored frames" \
	grep -q '"frames_reused":[1-9]' "$TESTDIR/g.2.json"
rm "$G/#ü"
ctxpack pack -q --compress none -o "$TESTDIR/g2.tar" "$G"
is "$(head -c 10 "$TESTDIR/g2.tar")" "Dockerfile" "a plain first entry: no global header"

done_testing
