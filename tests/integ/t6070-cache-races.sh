#!/bin/sh
# All or nothing, and no races (issue 14):
#   - a multi-path restore swaps every path or none: when the second swap
#     fails (an immutable directory), the first is swapped back;
#   - paths that nest ("a" and "a/b", also through a symlink) are refused
#     at save and at restore;
#   - a target that is a mount point is refused with a clear message before
#     anything is fetched;
#   - cleaning stale staging directories removes only the caller's own,
#     never follows a symlink, and empties 0000/0500 directories, also as
#     an unprivileged user;
#   - concurrent saves of one key: exactly one reports saved, the others
#     that it exists (an oci: layout, with and without the shared lock
#     directory, and a registry);
#   - a full disk (for the download, for the tree) is a miss whose message
#     keeps the root cause.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-registry.sh"

cd "$TESTDIR" || exit 1
umask 022
STORE=oci:$TESTDIR/store
no_stage() { ok "$1: no staging directory left" sh -c '! ls -a | grep -q "^\.ctxpack-"'; }

# ---- all or nothing
mkdir -p a b && echo new-a >a/f && echo new-b >b/f
ctxpack cache save -q --store "$STORE" --key two a b
rm -rf a b && mkdir a b && echo old-a >a/f && echo old-b >b/f
if chattr +i b 2>/dev/null; then
	at_exit "chattr -i '$TESTDIR/b'"
	out=$(ctxpack cache restore --store "$STORE" --key two a b 2>err)
	is "$out" miss "the second swap fails: a miss"
	like "$(cat err)" "cannot move the restored tree into .*/b" "the warning names the path"
	is "$(cat a/f) $(cat b/f)" "old-a old-b" "neither path was swapped: the first was swapped back"
	no_stage "failed swap"
	chattr -i b
	is "$(ctxpack cache restore -q --store "$STORE" --key two a b)" hit "then it restores"
	is "$(cat a/f) $(cat b/f)" "new-a new-b" "both paths swapped"
else
	skip "chattr +i is not available here: the failed second swap"
fi

# ---- nested paths
mkdir -p n/inner && echo x >n/inner/x && ln -s n/inner alias
exits 2 "save refuses a and a/b" ctxpack cache save --store "$STORE" --key nest n n/inner
like "$(cat "$TESTDIR/.out")" "paths 'n' and 'n/inner' nest" "and says so"
exits 2 "save refuses them in the other order" ctxpack cache save --store "$STORE" --key nest n/inner/ ./n
exits 2 "save refuses nesting through a symlink" ctxpack cache save --store "$STORE" --key nest n alias
exits 2 "save refuses a directory given twice under two names" ctxpack cache save --store "$STORE" \
	--key nest n/inner alias
exits 2 "restore refuses a and a/b" ctxpack cache restore --store "$STORE" --key nest n n/inner
ok "n and n-sibling do not nest" sh -c "mkdir -p n-sibling && echo y >n-sibling/y &&
	'$CTXPACK' cache save -q --store '$STORE' --key siblings n n-sibling"

# ---- a mount point
mkdir -p mnt && echo inside >mnt/f
ctxpack cache save -q --store "$STORE" --key mnt mnt
if mount -t tmpfs -o size=1m ctxpack-test mnt 2>/dev/null; then
	at_exit "umount '$TESTDIR/mnt'"
	echo on-the-mount >mnt/f
	exits 2 "restoring over a mount point is refused" \
		ctxpack cache restore -v --store "$STORE" --key mnt mnt
	like "$(cat "$TESTDIR/.out")" "cannot restore mnt: it is a mount point" "with a clear message"
	ok "before the layer was fetched" sh -c "! grep -q 'blob' '$TESTDIR/.out'"
	is "$(cat mnt/f)" on-the-mount "the mount is untouched"
	no_stage "mount point"
	umount mnt
else
	skip "cannot mount a tmpfs here: the mount point case"
fi

# ---- a full disk: the message keeps the root cause
mkdir -p full-cache full-target
if mount -t tmpfs -o size=512k ctxpack-test full-cache 2>/dev/null; then
	at_exit "umount '$TESTDIR/full-cache'"
	mkdir -p big && head -c 2000000 /dev/urandom >big/f
	ctxpack cache save -q --store "$STORE" --key big big
	rm -rf big && mkdir big && echo mine >big/mine
	out=$(XDG_CACHE_HOME=$TESTDIR/full-cache ctxpack cache restore --store "$STORE" --key big big 2>err)
	is "$out" miss "no room for the download: a miss"
	like "$(cat err)" "restore big: .*No space left on device" "the warning keeps the root cause"
	is "$(ls -A big)" mine "no room: the old directory is unchanged"
	umount full-cache
else
	skip "cannot mount a tmpfs here: the full disk case"
fi
if mount -t tmpfs -o size=512k ctxpack-test full-target 2>/dev/null; then
	at_exit "umount '$TESTDIR/full-target'"
	mkdir -p full-target/big && echo mine >full-target/big/mine
	# another path list: another version; save it under this one
	mkdir -p src-big && head -c 2000000 /dev/urandom >src-big/f
	mkdir -p "$TESTDIR/alt/full-target" && mv src-big "$TESTDIR/alt/full-target/big"
	(cd "$TESTDIR/alt" && "$CTXPACK" cache save -q --store "$STORE" --key big2 full-target/big)
	out=$(ctxpack cache restore --store "$STORE" --key big2 full-target/big 2>err)
	is "$out" miss "no room for the tree: a miss"
	like "$(cat err)" "restore full-target/big: cannot write .*No space left on device" \
		"the warning names the file and keeps the root cause"
	is "$(ls -A full-target/big)" mine "no room: the old tree is unchanged"
	ok "no room: no staging directory left" sh -c "! ls -a full-target | grep -q '^\.ctxpack-'"
	umount full-target
else
	skip "cannot mount a tmpfs here: the full target case"
fi

# ---- stale staging: only ours, never through a link
mkdir -p st && cd st || exit 1
sh -c 'echo $$ >../deadpid'
dead=$(cat ../deadpid)
mkdir -p "$TESTDIR/victim-dir/sub" && echo keep >"$TESTDIR/victim-dir/sub/f"
chmod 0 "$TESTDIR/victim-dir/sub"
echo keep >"$TESTDIR/victim-file" && chmod 600 "$TESTDIR/victim-file"
# a link named as a stale staging directory, to a directory outside
ln -s "$TESTDIR/victim-dir" ".ctxpack-new-$dead-0-a"
# another user's directory of that name
mkdir ".ctxpack-new-$dead-0-b" && echo theirs >".ctxpack-new-$dead-0-b/f"
chown -R nobody ".ctxpack-new-$dead-0-b"
# ours, with an unreadable directory and links out inside
mkdir -p ".ctxpack-new-$dead-0-c/locked/deeper" ".ctxpack-new-$dead-0-c/ro"
echo x >".ctxpack-new-$dead-0-c/locked/deeper/x"
ln -s "$TESTDIR/victim-dir/sub" ".ctxpack-new-$dead-0-c/locked/sub"
ln -s "$TESTDIR/victim-file" ".ctxpack-new-$dead-0-c/ro/file"
chmod 0 ".ctxpack-new-$dead-0-c/locked/deeper" ".ctxpack-new-$dead-0-c/locked"
chmod 500 ".ctxpack-new-$dead-0-c/ro"
# and a live process's
mkdir ".ctxpack-new-$$-0-d"
cd .. || exit 1
mkdir -p st/target && echo new >st/target/f
ctxpack cache save -q --store "$STORE" --key stale st/target
is "$(ctxpack cache restore -q --store "$STORE" --key stale st/target)" hit "a restore beside stale entries"
is "$(cd st && ls -A | LC_ALL=C sort | tr '\n' ' ')" \
	"$(printf '%s\n' .ctxpack-new-$dead-0-a .ctxpack-new-$dead-0-b .ctxpack-new-$$-0-d target |
		LC_ALL=C sort | tr '\n' ' ')" \
	"our dead staging directory is removed; a link, another user's and a live one are not"
is "$(stat -c '%a %U' "$TESTDIR/victim-dir/sub" "$TESTDIR/victim-file" | tr '\n' ' ')" "0 root 600 root " \
	"nothing outside was chmodded"
is "$(chmod 700 "$TESTDIR/victim-dir/sub" && cat "$TESTDIR/victim-dir/sub/f" "$TESTDIR/victim-file" | tr '\n' ' ')" \
	"keep keep " "nor removed"

# an unprivileged user's restore over its own old tree with 0500 and 0000
# directories (a restored read-only tree): the old tree goes
if id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null; then
	mkdir -p u && chown nobody u && chmod 755 "$TESTDIR"
	asnobody() { (cd u && setpriv --reuid nobody --regid nogroup --clear-groups env \
		HOME="$TESTDIR/u" XDG_CACHE_HOME="$TESTDIR/u/.cache" "$@"); }
	asnobody sh -c 'umask 022 && mkdir -p t/ro/sub t/zero/in && echo x >t/ro/sub/x && echo y >t/zero/in/y'
	asnobody $EXEC_PREFIX "$CTXPACK" cache save -q --store "oci:$TESTDIR/u/store" --key ro t 2>u.err
	# the tree in place now has directories its owner may not write or read
	asnobody sh -c 'chmod 500 t/ro/sub t/ro && chmod 0 t/zero/in t/zero'
	is "$(asnobody $EXEC_PREFIX "$CTXPACK" cache restore -q --store "oci:$TESTDIR/u/store" \
		--key ro t 2>>u.err)" hit "as nobody: restored over a tree with 0500 and 0000 directories"
	ok "as nobody: the old tree is gone" sh -c "! ls -a u | grep -q '^\.ctxpack-'"
	is "$(cat u/t/ro/sub/x)" x "as nobody: the new tree is in place"
	sed 's/^/#   /' u.err >&2
else
	skip "no nobody user or setpriv: the unprivileged restore"
fi

# ---- concurrent saves of one key
mkdir -p conc && head -c 3000000 /dev/urandom >conc/big && echo x >conc/small
saves() { # STORE N [separate]: N saves at once; prints the results
	i=0
	while [ $i -lt "$2" ]; do
		if [ "${3:-}" = separate ]; then
			(XDG_CACHE_HOME=$TESTDIR/xdg-$i exec $EXEC_PREFIX "$CTXPACK" cache save --json \
				--store "$1" --key same conc >"save.$i" 2>"save.$i.err") &
		else
			(exec $EXEC_PREFIX "$CTXPACK" cache save --json --store "$1" --key same conc \
				>"save.$i" 2>"save.$i.err") &
		fi
		i=$((i + 1))
	done
	wait
	cat save.[0-9] save.[0-9][0-9] 2>/dev/null | python3 -c '
import json, sys
r = [json.loads(l)["result"] for l in sys.stdin if l.strip()]
print(r.count("saved"), r.count("exists"), len(r))'
	# the others say "... is saved ... already"; anything else is shown
	cat save.*.err | grep -v "already; nothing to do" | sed 's/^/#   /' >&2
	rm -f save.*
}
is "$(saves "oci:$TESTDIR/conc-store" 8)" "1 7 8" "oci: layout: exactly one of 8 concurrent saves reports saved"
is "$(saves "oci:$TESTDIR/conc-store2" 8 separate)" "1 7 8" \
	"oci: layout, no lock shared: still exactly one (the manifest is put only if absent)"
is "$(ctxpack cache ls --json --store "oci:$TESTDIR/conc-store2" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" \
	1 "and the layout holds one entry"
if [ -x "$REGISTRY_BIN" ]; then
	reg_start
	is "$(saves "$REG/conc" 6)" "1 5 6" "registry: exactly one of 6 concurrent saves reports saved"
	mv conc conc.orig
	is "$(ctxpack cache restore -q --store "$REG/conc" --key same conc)" hit "and the entry restores"
	ok "whole" diff -r conc.orig conc
else
	skip "docker-registry is not installed: concurrent saves to a registry"
fi

done_testing
