#!/usr/bin/env python3
"""Damage a real index and run ctxpack hash on it (t3080).

  damage.py truncate CTX INDEX WANT
  damage.py garble CTX INDEX WANT SEED PER_PAGE

INDEX is a pristine index of CTX (left as it is: each case works on a
copy), WANT the digest a fresh index gives.  CTXPACK (and EXEC_PREFIX) name
the binary.  Prints one line per case that went wrong ("FAIL ...") and a
last line "cases N damaged D warned W failed F".

truncate: data.mdb cut to every 256th length of its first three pages (the
meta pages and the first tree page) and around the ends of the meta page
records, and to both sides of every page boundary after them.  A cut that takes away part of a page of the trees
(lmdbfile.tree_pages, the oracle) must be reported and the index rebuilt;
a cut that takes only free pages at the end loses nothing, and must not
be; a file cut to nothing is a new index to LMDB (an interrupted creation
leaves one), taken as such.

garble: in every page of data.mdb, PER_PAGE places (seeded): a bit flipped
or 2..16 random bytes.  Damage that changes what LMDB reads or writes
(lmdbfile.judge: the snapshot differs, or is not one LMDB could have
written) must be reported by the first run (a read) or the second (which
writes an entry for every file, so every leaf is checked); damage that
changes nothing (free pages, the gap in a page) needs no report.

Every run: exit 0 (no crash), the right digest; any warning names
INDEX/data.mdb and says it was rebuilt; and the run after that reads only
what the racy rule asks for, without a warning: the rebuilt index works.
"""
import json
import os
import random
import shutil
import struct
import subprocess
import sys

import lmdbfile

CTXPACK = os.environ["CTXPACK"]
PREFIX = os.environ.get("EXEC_PREFIX", "").split()


def run(index, ctx):
    p = subprocess.run(PREFIX + [CTXPACK, "hash", "--json", "--index", index, ctx],
                       capture_output=True, text=True, errors="replace")
    try:
        j = json.loads(p.stdout) if p.returncode == 0 else None
    except ValueError:
        j = None
    return p.returncode, j, p.stderr


class Case:
    def __init__(self, index, ctx, want, name):
        self.index, self.ctx, self.want, self.name = index, ctx, want, name
        self.problems = []
        self.warned = False

    def hash(self, what):
        rc, j, err = run(self.index, self.ctx)
        if rc != 0 or j is None:
            self.problems.append("%s: exit %d %s" % (what, rc, err.strip()[-300:]))
            return None
        if j["digest"] != self.want:
            self.problems.append("%s: digest %s" % (what, j["digest"]))
        if err:
            good = ("warning: the index %s/data.mdb " % self.index in err and
                    "rebuilt it" in err and err.count("\n") == 1)
            if not good:
                self.problems.append("%s: warning %r" % (what, err.strip()))
            self.warned = True
        return j

    def clean(self, what):
        """The run after: no warning, nothing read but racy entries."""
        before = self.warned
        j = self.hash(what)
        if self.warned != before:
            self.problems.append("%s: warned again" % what)
        if j and j["hashed"] != j["racy"]:
            self.problems.append("%s: read %d files, %d racy" % (what, j["hashed"], j["racy"]))

    def report(self):
        for p in self.problems:
            print("FAIL %s: %s" % (self.name, p))
        sys.stdout.flush()
        return not self.problems


def fresh_copy(pristine, work, data):
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(pristine, work)
    with open(os.path.join(work, "data.mdb"), "wb") as f:
        f.write(data)


def truncate(ctx, pristine, want):
    orig = open(os.path.join(pristine, "data.mdb"), "rb").read()
    pages, psize = lmdbfile.tree_pages(orig)
    need = (max(pages) + 1) * psize
    work = pristine + ".work"
    meta = lmdbfile.META_END
    lengths = sorted(set(list(range(0, 3 * psize, 256)) +
                         [1, meta - 1, meta, psize - 1, psize + meta - 1, psize + meta,
                          2 * psize - 1] +
                         [k * psize + d for k in range(2, len(orig) // psize + 1)
                          for d in (-1, 0)]))
    n = damaged = warned = failed = 0
    for length in lengths:
        if length >= len(orig):
            continue
        c = Case(work, ctx, want, "cut to %d bytes" % length)
        fresh_copy(pristine, work, orig[:length])
        j = c.hash("run 1")
        cut = 0 < length < need
        if cut and not c.warned:
            c.problems.append("a cut through the tree's pages, not reported")
        if not cut and c.warned:
            c.problems.append("a harmless cut reported")
        if j and length and not cut and j["hashed"]:
            c.problems.append("a harmless cut lost %d entries" % j["hashed"])
        c.clean("run 2")
        n += 1
        damaged += cut
        warned += c.warned
        failed += not c.report()
    shutil.rmtree(work, ignore_errors=True)
    print("cases %d damaged %d warned %d failed %d" % (n, damaged, warned, failed))


def garble(ctx, pristine, want, seed, per_page):
    orig = open(os.path.join(pristine, "data.mdb"), "rb").read()
    psize = lmdbfile.snapshot(orig)["psize"]
    work = pristine + ".work"
    files = [os.path.join(d, f) for d, _, fs in os.walk(ctx) for f in fs]
    r = random.Random(seed)
    n = damaged = warned = failed = 0
    for pg in range(len(orig) // psize):
        for _ in range(per_page):
            d = bytearray(orig)
            size = r.choice([1, 1, 2, 4, 8, 16])
            off = pg * psize + r.randrange(psize - size)
            if size == 1:
                d[off] ^= 1 << r.randrange(8)
            else:
                d[off:off + size] = r.randbytes(size)
            verdict = lmdbfile.judge(orig, bytes(d))
            c = Case(work, ctx, want, "page %d, %d bytes at %d (%s)" %
                     (pg, size, off % psize, verdict))
            fresh_copy(pristine, work, bytes(d))
            c.hash("run 1 (read)")
            for f in files:
                os.utime(f)
            c.hash("run 2 (every entry written)")
            if verdict != "same" and not c.warned:
                c.problems.append("not reported")
            c.clean("run 3")
            n += 1
            damaged += verdict != "same"
            warned += c.warned
            failed += not c.report()
    shutil.rmtree(work, ignore_errors=True)
    print("cases %d damaged %d warned %d failed %d" % (n, damaged, warned, failed))


if __name__ == "__main__":
    if sys.argv[1] == "truncate":
        truncate(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        garble(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
