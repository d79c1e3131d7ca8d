#!/bin/sh
# A first pack with an empty cache hashes the small files from the bytes it
# archives and stores them in the index afterwards, in several write
# transactions when there are many (idx_write.c, BATCH_DEFERRED): every one of
# 40,000 files is in the index after it, with the digest a plain `hash`
# computes, and the next pack reuses the whole archive.
. "$(dirname "$0")/lib.sh"

C=$TESTDIR/ctx
python3 - "$C" <<'PY'
import os, sys
for i in range(40000):
    d = os.path.join(sys.argv[1], "d%03d" % (i % 200))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d.txt" % i), "w") as f:
        f.write("file %d\n" % i)
PY
sleep 1 # out of the index's racy window
jget() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get(sys.argv[2]))' "$1" "$2"; }

ctxpack pack --json -o "$TESTDIR/a.zst" "$C" > "$TESTDIR/a.json"
is "$(jget "$TESTDIR/a.json" files_hashed)" 40000 "first pack: the packer hashed every file"
ctxpack hash --json "$C" > "$TESTDIR/h.json"
is "$(jget "$TESTDIR/h.json" reused)" 40000 "the index holds all 40000 afterwards"
is "$(jget "$TESTDIR/h.json" hashed)" 0 "and reads none of them again"
want=$(ctxpack hash --index "$TESTDIR/fresh" "$C")
is "$(jget "$TESTDIR/h.json" digest)" "$want" "the stored hashes give the digest of a fresh hash"
ctxpack pack --json -o "$TESTDIR/b.zst" "$C" > "$TESTDIR/b.json"
is "$(jget "$TESTDIR/b.json" cache)" archive "the next pack reuses the whole archive"
same_files "$TESTDIR/a.zst" "$TESTDIR/b.zst" "with the same bytes"

done_testing
