#!/usr/bin/env python3
# tar-check.py TAR SRC LIST: an archive's members against the tree SRC and
# the NUL-separated list (`ctxpack ls -0`): names and order, owners, mtime
# (WANT_MTIME, default 2000-01-01), pax records, types, sizes, link targets
# and modes: the permission bits as found (0777 for symlinks), or git-style
# 0644/0755 with NORMALIZE_MODES=1; a later path of an inode is a hard link
# to the first (unless NO_HARDLINKS=1).  Used by the pack tests (t4000, t4020).
import hashlib, os, stat, sys, tarfile
tarpath, src, listpath = sys.argv[1:4]
want = [p.decode("utf-8", "surrogateescape")
        for p in open(listpath, "rb").read().split(b"\0") if p]
errs = []
with tarfile.open(tarpath, "r:", encoding="utf-8", errors="surrogateescape") as t:
    ms = t.getmembers()
names = [m.name + ("/" if m.isdir() else "") for m in ms]
if names != want:
    errs.append("names differ:\n got  %r\n want %r" % (names, want))
norm = os.environ.get("NORMALIZE_MODES") == "1"
hard = os.environ.get("NO_HARDLINKS") != "1"
first = {}
for m in ms:
    p = os.path.join(src, m.name)
    st = os.lstat(p)
    if m.uid or m.gid or m.uname or m.gname:
        errs.append("%s: owner %d/%d %r/%r" % (m.name, m.uid, m.gid, m.uname, m.gname))
    if m.mtime != int(os.environ.get("WANT_MTIME", "946684800")):
        errs.append("%s: mtime %r" % (m.name, m.mtime))
    bad = set(m.pax_headers) - {"path", "linkpath", "size", "hdrcharset"}
    if bad:
        errs.append("%s: pax records %r" % (m.name, sorted(bad)))
    perm = stat.S_IMODE(st.st_mode)
    if norm:
        perm = 0o755 if stat.S_ISDIR(st.st_mode) or st.st_mode & 0o111 else 0o644
    if stat.S_ISDIR(st.st_mode):
        ok, mode = m.isdir(), perm
    elif stat.S_ISLNK(st.st_mode):
        ok, mode = m.issym() and m.linkname == os.readlink(p), 0o777
    elif stat.S_ISFIFO(st.st_mode):
        ok, mode = m.isfifo(), perm
    else:
        key = (st.st_dev, st.st_ino)
        if hard and st.st_nlink > 1 and key in first:
            ok = m.islnk() and m.linkname == first[key] and m.size == 0
        else:
            ok = m.isreg() and m.size == st.st_size
            first.setdefault(key, m.name)
        mode = perm
    if not ok:
        errs.append("%s: type, size or link target differ" % m.name)
    if m.mode != mode:
        errs.append("%s: mode %o, want %o" % (m.name, m.mode, mode))
for e in errs[:20]:
    print(e)
sys.exit(1 if errs else 0)
