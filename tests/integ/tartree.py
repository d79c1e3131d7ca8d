#!/usr/bin/env python3
"""List what a tar stream on stdin holds below PATH, one line per entry,
sorted by name: type (f d l h p c b), permission bits, owner uid, the name
(repr), and for a file its content's sha256 (16 hex digits), for a symlink
"-> TARGET", for a hard link "=> TARGET".  For comparing what two image
exports hold (tests/integ/lib-docker.sh image_tree, t4115).

    docker export ID | tartree.py /ctx
"""
import hashlib
import sys
import tarfile

KINDS = {tarfile.REGTYPE: "f", tarfile.AREGTYPE: "f", tarfile.DIRTYPE: "d",
         tarfile.SYMTYPE: "l", tarfile.LNKTYPE: "h", tarfile.FIFOTYPE: "p",
         tarfile.CHRTYPE: "c", tarfile.BLKTYPE: "b"}


def plain(name):
    name = name.rstrip("/")
    return name[2:] if name.startswith("./") else name


def main():
    top = sys.argv[1].strip("/")
    rows = []
    with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as t:
        for m in t:
            n = plain(m.name)
            if n != top and not n.startswith(top + "/"):
                continue
            kind = KINDS[m.type]
            x = ""
            if kind == "f":
                x = hashlib.sha256(t.extractfile(m).read()).hexdigest()[:16]
            elif kind == "l":
                x = "-> " + m.linkname
            elif kind == "h":
                x = "=> " + plain(m.linkname)
            rows.append((n, "%s %04o %s %r %s" % (kind, m.mode & 0o7777, m.uid, n, x)))
    for _, row in sorted(rows):
        print(row)


if __name__ == "__main__":
    main()
