"""An independent reader of LMDB data files, for the index damage tests
(t3080): the test's oracle, written from LMDB's file format, not from
ctxpack's checks.

Format: LMDB 0.9 (data version 1) as written on a 64-bit little-endian
host.  Pages 0 and 1 are the meta pages; transaction N writes meta N % 2,
and a reader takes the one with the higher txnid.  Every page starts with
a 16-byte header (pgno u64, pad u16, flags u16, lower u16, upper u16; an
overflow page has a u32 page count in place of lower/upper).  A branch or
leaf page holds (lower - 16) / 2 u16 node offsets; a node is lo u16, hi u16,
flags u16, ksize u16, then the key, then (leaf) the data of lo | hi << 16
bytes, or (branch) nothing: lo | hi << 16 | flags << 32 is the child's page
number.  Nodes take an even number of bytes and fill [upper, psize)
exactly.  Database 0 is the free list (keys: u64 txnids; data: a u64 count
and that many page numbers), database 1 the main one.

snapshot(data) walks the newest snapshot and returns what it means: the
fields of the meta pages that LMDB uses, and every record of both trees.
It raises Damaged when the structure is not one LMDB could have written.
Two files whose snapshots are equal behave alike under LMDB, for reads and
for writes; a file whose snapshot changed, or is Damaged, must be noticed.
"""
import struct

P_BRANCH, P_LEAF, P_OVERFLOW, P_META = 0x01, 0x02, 0x04, 0x08
F_BIGDATA = 0x01
MAGIC = 0xBEEFC0DE
INVALID = (1 << 64) - 1
META_END = 152


class Damaged(Exception):
    pass


def num(k):
    """A free-list key: a u64 commit id."""
    if len(k) != 8:
        raise Damaged("a free-list key of %d bytes" % len(k))
    return struct.unpack("<Q", k)[0]


def _meta(data, off, want_pgno):
    if len(data) < off + META_END:
        raise Damaged("meta page %d is cut" % want_pgno)
    pgno, _pad, flags = struct.unpack_from("<QHH", data, off)
    magic, version, address, _mapsize = struct.unpack_from("<IIQQ", data, off + 16)
    dbs = [struct.unpack_from("<IHHQQQQQ", data, off + 40 + 48 * i) for i in range(2)]
    last_pg, txnid = struct.unpack_from("<QQ", data, off + 136)
    if flags != P_META or magic != MAGIC or version != 1:
        raise Damaged("meta page %d: flags, magic or version" % want_pgno)
    return {"pgno": pgno, "psize": dbs[0][0], "flags": dbs[0][1], "address": address,
            "dbs": dbs, "last_pg": last_pg, "txnid": txnid}


def snapshot(data):
    m0 = _meta(data, 0, 0)
    psize = m0["psize"]
    if psize < 512 or psize > 65536 or psize & (psize - 1):
        raise Damaged("page size %d" % psize)
    m1 = _meta(data, psize, 1)
    if m1["psize"] != psize:
        raise Damaged("page sizes differ")
    metas = [m0, m1]
    cur = metas[m0["txnid"] < m1["txnid"]]
    last = cur["last_pg"]
    npages = len(data) // psize
    seen = set()

    def page(pgno, npg=1):
        if pgno < 2 or pgno + npg - 1 > last or pgno + npg > npages:
            raise Damaged("page %d out of range" % pgno)
        for p in range(pgno, pgno + npg):
            if p in seen:
                raise Damaged("page %d reached twice" % p)
            seen.add(p)
        off = pgno * psize
        if struct.unpack_from("<Q", data, off)[0] != pgno:
            raise Damaged("page %d: pgno field" % pgno)
        return off

    def nodes(off, pgno):
        flags, lower, upper = struct.unpack_from("<HHH", data, off + 10)
        if lower < 16 or lower > upper or upper > psize or lower & 1:
            raise Damaged("page %d: lower/upper" % pgno)
        n = (lower - 16) // 2
        if n == 0:
            raise Damaged("page %d: empty" % pgno)
        used = 0
        out = []
        for i in range(n):
            ptr = struct.unpack_from("<H", data, off + 16 + 2 * i)[0]
            if ptr < upper or ptr + 8 > psize or ptr & 1:
                raise Damaged("page %d: node %d offset" % (pgno, i))
            lo, hi, nflags, ksize = struct.unpack_from("<HHHH", data, off + ptr)
            k0 = off + ptr + 8
            if ptr + 8 + ksize > psize:
                raise Damaged("page %d: node %d key" % (pgno, i))
            key = data[k0:k0 + ksize]
            if flags == P_BRANCH:
                size = 8 + ksize
                out.append((key, lo | hi << 16 | nflags << 32, nflags))
            else:
                dsz = lo | hi << 16
                dlen = 8 if nflags & F_BIGDATA else dsz
                size = 8 + ksize + dlen
                if ptr + size > psize:
                    raise Damaged("page %d: node %d data" % (pgno, i))
                out.append((key, data[k0 + ksize:k0 + ksize + dlen], nflags, dsz))
            used += size + (size & 1)
        if used != psize - upper:
            raise Damaged("page %d: nodes do not fill it" % pgno)
        return flags, out

    def walk(dbi, db):
        """The records of one tree in order, checking the B-tree."""
        recs = []
        counts = {"branch": 0, "leaf": 0, "overflow": 0}
        root, depth = db[7], db[2]
        if root == INVALID:
            if depth or any(db[3:7]):
                raise Damaged("db %d: empty but counted" % dbi)
            return recs, counts

        def rec(pgno, level):
            """(the smallest, the largest key) below pgno"""
            off = page(pgno)
            flags, ns = nodes(off, pgno)
            if flags == P_BRANCH:
                counts["branch"] += 1
                if level >= depth:
                    raise Damaged("page %d: too deep" % pgno)
                ranges = [rec(child, level + 1) for _key, child, _nf in ns]
                # a search for any key, present or new, must take the
                # child where it belongs: node i's key lies above all of
                # child i - 1 and not above any of child i
                for i in range(1, len(ns)):
                    k = ns[i][0] if dbi == 1 else num(ns[i][0])
                    if not ranges[i - 1][1] < k <= ranges[i][0]:
                        raise Damaged("page %d: key %d misroutes" % (pgno, i))
                return ranges[0][0], ranges[-1][1]
            elif flags == P_LEAF:
                counts["leaf"] += 1
                if level != depth:
                    raise Damaged("page %d: leaf at depth %d of %d" % (pgno, level, depth))
                for key, val, nflags, dsz in ns:
                    if dbi == 1 and nflags:
                        raise Damaged("page %d: node flags" % pgno)
                    if dbi == 0 and nflags & ~F_BIGDATA:
                        raise Damaged("page %d: node flags" % pgno)
                    if nflags & F_BIGDATA:
                        opg = struct.unpack("<Q", val)[0]
                        if opg < 2 or opg >= npages:
                            raise Damaged("overflow page %d out of range" % opg)
                        oflags = struct.unpack_from("<H", data, opg * psize + 10)[0]
                        npg = struct.unpack_from("<I", data, opg * psize + 12)[0]
                        if oflags != P_OVERFLOW or npg < 1 or dsz > npg * psize - 16:
                            raise Damaged("overflow page %d" % opg)
                        o = page(opg, npg)
                        counts["overflow"] += npg
                        val = data[o + 16:o + 16 + dsz]
                    recs.append((key, val))
                return ((ns[0][0], ns[-1][0]) if dbi == 1 else
                        (num(ns[0][0]), num(ns[-1][0])))
            else:
                raise Damaged("page %d: flags %#x" % (pgno, flags))

        rec(root, 1)
        return recs, counts

    free, fcounts = walk(0, cur["dbs"][0])
    main, mcounts = walk(1, cur["dbs"][1])
    for dbi, recs, counts in ((0, free, fcounts), (1, main, mcounts)):
        db = cur["dbs"][dbi]
        if (db[3], db[4], db[5]) != (counts["branch"], counts["leaf"], counts["overflow"]):
            raise Damaged("db %d: counts" % dbi)
        # the entry count is a statistic (mdb_stat) that LMDB never reads
        # for a database without duplicates, so the main tree's may be
        # anything (ctxpack checks the free tree's)
        if dbi == 0 and db[6] != len(recs):
            raise Damaged("db 0: entries")
    keys = [k for k, _ in main]
    if any(a >= b for a, b in zip(keys, keys[1:])):
        raise Damaged("main keys out of order")
    fkeys = [struct.unpack("<Q", k)[0] if len(k) == 8 else -1 for k, _ in free]
    if -1 in fkeys or any(a >= b for a, b in zip(fkeys, fkeys[1:])):
        raise Damaged("free list keys")
    freed = []
    for k, v in free:
        if len(v) < 8 or len(v) % 8:
            raise Damaged("free list record size")
        ids = struct.unpack("<%dQ" % (len(v) // 8), v)
        if ids[0] != len(ids) - 1:
            raise Damaged("free list record count")
        for p in ids[1:]:
            if p < 2 or p > last or p in seen:
                raise Damaged("free page %d" % p)
            seen.add(p)
            freed.append(p)
    other = metas[1 - metas.index(cur)]
    return {
        "psize": psize,
        "cur": (metas.index(cur), cur["pgno"], cur["flags"], cur["address"],
                [cur["dbs"][0], cur["dbs"][1][:6] + cur["dbs"][1][7:]], last,
                cur["txnid"]),
        "other": (other["pgno"], other["flags"], other["txnid"]),
        "main": main,
        "free": free,
        "unreached": sorted(set(range(2, last + 1)) - seen),
    }


def tree_pages(data):
    """The pages of the newest snapshot's trees (branch, leaf, overflow),
    as a set of page numbers, and the page size."""
    s = snapshot(data)
    psize = s["psize"]
    free = set()
    for _k, v in s["free"]:
        ids = struct.unpack("<%dQ" % (len(v) // 8), v)
        free.update(ids[1:])
    last = s["cur"][5]
    return set(range(2, last + 1)) - free - set(s["unreached"]), psize


def judge(before, after):
    """'same' when the damaged file behaves like the original, else why not."""
    try:
        a = snapshot(after)
    except (Damaged, struct.error) as ex:
        return "damaged: %s" % ex
    b = snapshot(before)
    for k in ("psize", "cur", "other", "main", "free"):
        if a[k] != b[k]:
            return "changed: %s" % k
    return "same"
