#!/usr/bin/env python3
# treecmp.py DIR LIST [SRC]: the listing of an extracted tree (or, with a
# third argument, of the source tree normalized as the archive stores it,
# restricted to LIST) as lines of path, type, mode and content hash.  The
# modes of the source are the permission bits as found, or git-style
# 0644/0755 with NORMALIZE_MODES=1.  Used by the pack tests (t4000, t4020).
import hashlib, os, stat, sys
d = sys.argv[1]
want = [p.decode("utf-8", "surrogateescape").rstrip("/")
        for p in open(sys.argv[2], "rb").read().split(b"\0") if p]
src = len(sys.argv) > 3
norm = src and os.environ.get("NORMALIZE_MODES") == "1"
out = []
if src:
    paths = want
else:
    paths = []
    for dp, dns, fns in os.walk(d):
        for n in dns + fns:
            paths.append(os.path.relpath(os.path.join(dp, n), d))
for rel in sorted(paths):
    p = os.path.join(d, rel)
    st = os.lstat(p)
    m = st.st_mode
    if stat.S_ISLNK(m):
        out.append("%s l %s" % (rel, os.readlink(p)))
    elif stat.S_ISDIR(m):
        out.append("%s d %o" % (rel, 0o755 if norm else stat.S_IMODE(m)))
    elif stat.S_ISFIFO(m):
        out.append("%s p %o" % (rel, (0o755 if m & 0o111 else 0o644) if norm else stat.S_IMODE(m)))
    else:
        h = hashlib.sha256(open(p, "rb").read()).hexdigest()
        mode = (0o755 if m & 0o111 else 0o644) if norm else stat.S_IMODE(m)
        out.append("%s f %o %s" % (rel, mode, h))
sys.stdout.write("\n".join(out).encode("utf-8", "surrogateescape").decode("utf-8", "replace") + "\n")
