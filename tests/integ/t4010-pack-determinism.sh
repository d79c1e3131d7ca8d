#!/bin/sh
# ctxpack pack gives byte-identical archives for the same content: repeated
# runs, copies with other mtimes, owners (also above 2^21), creation order,
# hard links to outside the tree and sparseness, any --threads, any locale,
# and a file, a pipe or /dev/stdout as the output; for zstd, gzip and none.
# The permission bits are the archive's (as Docker keeps them): a copy made
# with another umask gives other bytes, the same with --normalize-modes.
. "$(dirname "$0")/lib.sh"

# make.py DIR ORDER: the fixture, created in ORDER (fwd|rev); about 25 MB
# with a file that is split into frames, long and non-UTF-8 names.
cat > "$TESTDIR/make.py" <<'PY'
import os, random, sys
root, order = sys.argv[1], sys.argv[2]
rnd = random.Random(42)
um = os.umask(0)
os.umask(um)
words = b"alpha beta gamma delta import return class def const let 0 1 2 { } ( ) ;\n".split(b" ")
spec = []
for i in range(400):
    d = "/".join("d%d" % rnd.randrange(6) for _ in range(rnd.randrange(4)))
    size = int(rnd.lognormvariate(7, 2)) % (2 << 20)
    spec.append((os.path.join(d, "f%03d.txt" % i), size, rnd.random() < 0.1))
spec.append(("big/split.bin", (9 << 20) + 12345, False))
spec.append(("big/medium.bin", (5 << 20) + 1, False))
spec.append(("L" * 120 + "/" + "n" * 150 + ".txt", 10, False))
spec.append(("ünïcødé/naïve.txt", 20, False))
spec.append((b"bad\xff\xfename".decode("utf-8", "surrogateescape"), 30, False))
if order == "rev":
    spec.reverse()
for rel, size, ex in spec:
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    r = random.Random(rel.encode("utf-8", "surrogateescape"))
    data = b" ".join(r.choice(words) for _ in range(size // 4 + 1))[:size]
    with open(p, "wb") as f:
        f.write(data)
    os.chmod(p, (0o777 if ex else 0o666) & ~um)
links = [("links/to-f", "../f000.txt"), ("links/long", "t" * 150), ("links/dir", "../d1")]
empties = ["empty/one", "empty/two/three"]
if order == "rev":
    links.reverse(); empties.reverse()
for rel, target in links:
    os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
    os.symlink(target, os.path.join(root, rel))
for rel in empties:
    os.makedirs(os.path.join(root, rel))
PY

A=$TESTDIR/a
(umask 022 && python3 "$TESTDIR/make.py" "$A" fwd)

# digest COMP [pack args...]: the sha256 of the archive (written to a pipe;
# -o FILE syncs, which is slow, and is covered below)
digest() {
	comp=$1; shift
	# shellcheck disable=SC2086
	{ ctxpack pack -q --no-cache --compress "$comp" $lv "$@" -o - || echo failed; } | sha256sum | cut -d' ' -f1
}

# the copies
cp -r "$A" "$TESTDIR/cp-r"                      # fresh mtimes, readdir order of cp
cp -a "$A" "$TESTDIR/cp-a"
cp -al "$A" "$TESTDIR/hardlinked"                # every file a hard link
(umask 022 && python3 "$TESTDIR/make.py" "$TESTDIR/rev" rev)   # other order
(umask 002 && python3 "$TESTDIR/make.py" "$TESTDIR/umask" fwd) # group-writable
cp -a "$A" "$TESTDIR/owned"
chown -R 3000000:3000001 "$TESTDIR/owned"        # uid/gid above 2^21
touch -h -d '2031-05-06 07:08:09.123456789' "$TESTDIR/owned/big/split.bin" "$TESTDIR/owned/links/dir"
cp -a --sparse=never "$A" "$TESTDIR/dense"
cp -a "$A" "$TESTDIR/sparse"
dd if=/dev/zero of="$TESTDIR/dense/big/hole.bin" bs=1M count=16 status=none
truncate -s 16M "$TESTDIR/sparse/big/hole.bin"   # all hole, same content
is "$(find "$TESTDIR/rev" -type f | wc -l)" "$(find "$A" -type f | wc -l)" "fixture: complete copies"
is "$(stat -c %a "$TESTDIR/umask/big/split.bin")" 664 "fixture: the umask 002 copy is group-writable"

lv=
for comp in zstd gzip none; do
	lv=; [ "$comp" = gzip ] && lv="--level 1" # level 6 is slow, and not what is tested
	d0=$(digest "$comp" "$A")
	isnt "$d0" "" "$comp: packs"
	is "$(digest "$comp" "$A")" "$d0" "$comp: a second run"
	# the whole matrix for zstd, the main cases for the others
	copies="rev owned"; threads="1 4"; locales="C"
	if [ "$comp" = zstd ]; then
		copies="cp-r cp-a hardlinked rev owned"; threads="1 2 4 7"
		locales="C C.UTF-8 POSIX en_US.ISO-8859-1 tr_TR.UTF-8"
	fi
	for copy in $copies; do
		is "$(digest "$comp" "$TESTDIR/$copy")" "$d0" "$comp: copy $copy"
	done
	isnt "$(digest "$comp" "$TESTDIR/umask")" "$d0" "$comp: a copy made with umask 002: other modes, other bytes"
	is "$(digest "$comp" --normalize-modes "$TESTDIR/umask")" "$(digest "$comp" --normalize-modes "$A")" \
		"$comp: ... the same bytes with --normalize-modes"
	is "$(digest "$comp" "$TESTDIR/sparse")" "$(digest "$comp" "$TESTDIR/dense")" \
		"$comp: a sparse file and a dense one with the same bytes"
	for t in $threads; do
		is "$(digest "$comp" --threads "$t" "$A")" "$d0" "$comp: --threads $t"
	done
	for loc in $locales; do
		is "$(LANG=$loc LC_ALL=$loc digest "$comp" "$A" 2>/dev/null)" "$d0" "$comp: LC_ALL=$loc"
	done
	# shellcheck disable=SC2086
	ctxpack pack -q --compress "$comp" $lv -o "$TESTDIR/out" "$A"
	is "$(sha256sum < "$TESTDIR/out" | cut -d' ' -f1)" "$d0" "$comp: -o FILE"
	# shellcheck disable=SC2086
	ctxpack pack -q --compress "$comp" $lv -o - "$A" > "$TESTDIR/redirected"
	is "$(sha256sum < "$TESTDIR/redirected" | cut -d' ' -f1)" "$d0" "$comp: stdout redirected to a file"
	# shellcheck disable=SC2086
	ctxpack pack -q --compress "$comp" $lv -o /dev/stdout "$A" > "$TESTDIR/devstdout"
	is "$(sha256sum < "$TESTDIR/devstdout" | cut -d' ' -f1)" "$d0" "$comp: -o /dev/stdout"
	# shellcheck disable=SC2086
	is "$(ctxpack pack -q --compress "$comp" $lv -o /dev/stdout "$A" | cat | sha256sum | cut -d' ' -f1)" \
		"$d0" "$comp: -o /dev/stdout on a pipe"
done
ok "/dev/stdout is still a symlink" test -L /dev/stdout

# different content or settings give different bytes
lv=
d0=$(digest zstd "$A")
isnt "$(digest zstd --level 4 "$A")" "$d0" "another level: other bytes"
isnt "$(SOURCE_DATE_EPOCH=1700000000 digest zstd "$A")" "$d0" "another mtime: other bytes"
chmod +x "$TESTDIR/cp-r/big/medium.bin"
isnt "$(digest zstd "$TESTDIR/cp-r")" "$d0" "an exec bit changed: other bytes"
# the archive has many frames, and decompresses the same way each time
ctxpack pack -q -o "$TESTDIR/out.zst" "$A"
ok "zstd -t checks every frame" zstd -tq "$TESTDIR/out.zst"
frames=$(python3 - "$CTXPACK" "$A" <<'PY'
import subprocess, sys
data = subprocess.run([sys.argv[1], "pack", "-q", "-o", "-", sys.argv[2]], capture_output=True).stdout
print(data.count(b"\x28\xb5\x2f\xfd"))
PY
)
like "$frames" '^([4-9]|[1-9][0-9]+)$' "several zstd frames ($frames)"

done_testing
