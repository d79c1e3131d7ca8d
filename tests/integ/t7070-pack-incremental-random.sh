#!/bin/sh
# A seeded random run of changes (edits in one or two files, growth,
# additions, removals, renames, mode changes, touches, symlink changes),
# some packed right away and some after the racy window: after each, a
# pack through the cache (any path: whole archive, look-ahead, assemble,
# frame by frame) has the bytes and sha256 of a cold --no-cache pack.
. "$(dirname "$0")/lib.sh"

: "${T7070_SEED:=7070}"
: "${T7070_STEPS:=25}"
python3 - "$TESTDIR/ctx" "$T7070_SEED" "$T7070_STEPS" <<'PY'
import hashlib, json, os, random, shlex, subprocess, sys, time
from tree import writer

root, seed, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(seed)
cmd = shlex.split(os.environ.get("EXEC_PREFIX", "")) + [os.environ["CTXPACK"]]
n = 0

def tap(ok, what):
    global n
    n += 1
    print("%s %d - %s" % ("ok" if ok else "not ok", n, what), flush=True)

w = writer(root)

def pack(extra, out):
    r = subprocess.run(cmd + ["pack", "--json", "-o", out] + extra + [root],
                       capture_output=True)
    if r.returncode:
        sys.stderr.write(r.stderr.decode(errors="replace"))
        return None
    return json.loads(r.stdout)

files = []
for i in range(240):
    rel = "d%d/e%d/f%03d.txt" % (i % 5, i % 4, i)
    w(rel, bytes(rnd.choice(b"abcdefgh \n") for _ in range(rnd.randrange(20000, 100000))))
    files.append(rel)
w("Dockerfile", b"FROM scratch\n")
time.sleep(1)
out = os.path.dirname(root)
tap(pack([], os.path.join(out, "first.zst")) is not None, "first pack")
paths = {}
for step in range(steps):
    kind = rnd.choice(["edit", "edit", "edit2", "grow", "add", "rm", "mv", "chmod",
                       "touch", "link", "none"])
    f = rnd.choice(files)
    p = os.path.join(root, f)
    if kind == "edit":
        b = bytearray(open(p, "rb").read())
        b[rnd.randrange(len(b))] ^= 1
        open(p, "wb").write(b)
    elif kind == "edit2":
        for g in rnd.sample(files, 2):
            with open(os.path.join(root, g), "ab") as fh:
                fh.write(b"x")
    elif kind == "grow":
        with open(p, "ab") as fh:
            fh.write(b"more text\n" * rnd.randrange(1, 500))
    elif kind == "add":
        files.append(f + ".new%d" % step)
        w(files[-1], b"new file %d\n" % step)
    elif kind == "rm":
        os.unlink(p)
        files.remove(f)
    elif kind == "mv":
        os.rename(p, p + ".mv")
        files.remove(f)
        files.append(f + ".mv")
    elif kind == "chmod":
        os.chmod(p, 0o755 if os.stat(p).st_mode & 0o100 == 0 else 0o644)
    elif kind == "touch":
        os.utime(p)
    elif kind == "link":
        l = os.path.join(os.path.dirname(p), "lnk")
        if os.path.lexists(l):
            os.unlink(l)
        os.symlink("target%d" % step, l)
    if rnd.random() < 0.3:
        time.sleep(1.1)
    j = pack([], os.path.join(out, "w.zst"))
    c = pack(["--no-cache"], os.path.join(out, "c.zst"))
    if j is None or c is None:
        tap(False, "step %d (%s %s): pack" % (step, kind, f))
        continue
    hw = hashlib.sha256(open(os.path.join(out, "w.zst"), "rb").read()).hexdigest()
    hc = hashlib.sha256(open(os.path.join(out, "c.zst"), "rb").read()).hexdigest()
    path = j["cache"] + (" + look-ahead" if j.get("bytes_ahead") else "")
    paths[path] = paths.get(path, 0) + 1
    tap(hw == hc and j["digest"] == "sha256:" + hc,
        "step %d (%s %s, %s): the bytes and sha256 of a cold pack" % (step, kind, f, path))
print("# paths taken: %s" % ", ".join("%s %d" % kv for kv in sorted(paths.items())), file=sys.stderr)
tap(len(paths) >= 3, "several paths exercised")
print("1..%d" % n)
PY
