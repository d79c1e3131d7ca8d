#!/bin/sh
# Restore memory does not grow per file (issue 14): the peak RSS of a
# restore of 160,000 files is within 4 MiB of that of 20,000 files (the
# extractor once kept the name of every file it queued: 12 MiB more here).
# Max RSS from /usr/bin/time.  Not under ASan (its shadow memory).
. "$(dirname "$0")/lib.sh"

if ldd "$CTXPACK" 2>/dev/null | grep -q libasan; then
	skip "ASan build: RSS is not meaningful"; done_testing; exit 0
fi
if [ ! -x /usr/bin/time ]; then
	skip "/usr/bin/time is not installed"; done_testing; exit 0
fi
cd "$TESTDIR" || exit 1
STORE=oci:$TESTDIR/store
python3 - <<'PY'
import os
for n, name in ((20000, "small"), (160000, "big")):
    for i in range(n):
        d = os.path.join(name, "d%03d" % (i % 400))
        if i < 400:
            os.makedirs(d)
        with open(os.path.join(d, "file-with-a-longish-name-%06d.js" % i), "w") as f:
            f.write("x")
PY
for k in small big; do
	ctxpack cache save -q --store "$STORE" --key $k $k
	rm -rf $k
	kb=$( { /usr/bin/time -f '%M' "$CTXPACK" cache restore -q --store "$STORE" --key $k $k >$k.out; } 2>&1 | tail -1)
	is "$(cat $k.out)" hit "$k: restored"
	like "$kb" '^[0-9]+$' "$k: peak RSS measured ($kb KiB)"
	eval "rss_$k=\$kb"
done
is "$(find big -type f | wc -l)" 160000 "all 160000 files are there"
# shellcheck disable=SC2154
ok "160000 files take at most 4 MiB more than 20000 ($rss_small -> $rss_big KiB)" \
	test $((rss_big - rss_small)) -lt 4096

done_testing
