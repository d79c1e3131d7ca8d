#!/bin/sh
# Issue 17's cache asks, on an oci: layout and on a real docker-registry:
#
#   - cache run --restore-key: a warm start from another family when the
#     key prefix has no entry (the key prefix first when it has one);
#   - --no-save: the command runs, the store does not change;
#   - --save-on-failure: a failed command's paths are saved, its status
#     kept; without it a failure saves nothing;
#   - --read-only: nothing written to the store (the layout's tree the same
#     byte for byte; a read-only registry behind the fault proxy gets GET
#     and HEAD only; a layout the process may not write, as nobody);
#   - cache save --update: a new entry, the old one listed (replaced) until
#     prune; restores take the new one; the same content stores nothing;
#   - cache stats: hits, partial hits and misses per prefix; two processes
#     recording at once lose nothing; the log is trimmed; a store without a
#     log has no events; a damaged event is skipped, never printed;
#   - cache why: the key file that changed, from the log of the miss or
#     from the run's options; added and removed files; the command.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-registry.sh"

cd "$TESTDIR" || exit 1
umask 022
chmod 755 "$TESTDIR"
if [ -x "$REGISTRY_BIN" ] && reg_start; then
	RW_REG=$REG RW_DIR=$REG_DIR
	stores="oci:$TESTDIR/store $REG/ci/opts"
else
	stores="oci:$TESTDIR/store"
	diag "no docker-registry: the layout only"
fi

# The "install": counts its runs (cold or warm), fills node_modules from
# the lock file, exits with $INSTALL_EXIT.
cat >install.sh <<'EOF'
#!/bin/sh
if [ -d node_modules/pkg ]; then echo warm >>"$COUNTER"; else echo cold >>"$COUNTER"; fi
mkdir -p node_modules/pkg
cp package-lock.json node_modules/pkg/lock-copy
exit "${INSTALL_EXIT:-0}"
EOF
chmod 755 install.sh

# jget PATH...: values of the compact JSON ctxpack prints, on stdin,
# space-separated: the first value of the path's last name ("a.0.b": the
# first "b"), a string, a number or a flat list as written.  (sed, not
# python: a python per field made this test slow.)
jget() {
	awk -v paths="$*" '{ doc = doc $0 } END {
		n = split(paths, p, " ")
		for (i = 1; i <= n; i++) {
			k = p[i]; sub(/.*\./, "", k); k = "\"" k "\":"
			at = index(doc, k); v = ""
			if (at) {
				r = substr(doc, at + length(k))
				if (substr(r, 1, 1) == "\"") { r = substr(r, 2); v = substr(r, 1, index(r, "\"") - 1) }
				else if (substr(r, 1, 1) == "[") v = substr(r, 1, index(r, "]"))
				else { match(r, /^[^,}]*/); v = substr(r, 1, RLENGTH) }
			}
			printf "%s%s", (i > 1 ? " " : ""), v
		}
		printf "\n"
	}'
}
runs() { wc -l <"$COUNTER" | tr -d ' '; }
entries() { ctxpack cache ls --store "$STORE" | wc -l | tr -d ' '; }
# store_state: what a write to the store would change
store_state() {
	case $STORE in
	oci:*) (cd "${STORE#oci:}" && find . -printf '%y %m %s %T@ %p\n' | LC_ALL=C sort &&
		find . -type f -exec sha256sum {} + | LC_ALL=C sort) ;;
	*) curl -s "http://${STORE%%/*}/v2/${STORE#*/}/tags/list" | tr ',' '\n' | LC_ALL=C sort ;;
	esac
}

n=0
for STORE in $stores; do
	n=$((n + 1))
	case $STORE in oci:*) kind=layout ;; *) kind=registry ;; esac
	mkdir -p "p$n" && cd "p$n" || exit 1
	export COUNTER=$TESTDIR/runs$n
	: >"$COUNTER"
	echo v1 >package-lock.json
	echo 20 >.nvmrc
	run() { ctxpack cache run --store "$STORE" -f package-lock.json -f .nvmrc \
		--key-prefix "npm-$n-" -p node_modules "$@" -- ../install.sh; }

	# --- a cold miss in another family, for the stats ---
	ok "$kind: a run of another family misses" ctxpack cache run --store "$STORE" \
		-f package-lock.json --key-prefix "cold-$n-" -p node_modules -- ../install.sh
	rm -rf node_modules

	# --- --restore-key ---
	mkdir -p node_modules/pkg && echo base >node_modules/pkg/marker
	ok "$kind: an entry of the base family" ctxpack cache save --store "$STORE" -k "base-$n-1" node_modules
	rm -rf node_modules
	ok "$kind: run --restore-key (the key prefix has no entry)" \
		run --restore-key "nomatch-" --restore-key "base-$n-"
	like "$(cat "$TESTDIR/.out")" "warm start from base-$n-1" "$kind: warm start from the restore key's newest entry"
	is "$(tail -n 1 "$COUNTER")" warm "$kind: the command ran warm"
	is "$(cat node_modules/pkg/marker)" base "$kind: on the base family's tree"
	KEY1=$(sed -n 's/.*cache miss for \(npm-[^;]*\);.*/\1/p' "$TESTDIR/.out")
	like "$KEY1" "^npm-$n-[0-9a-f]{64}\$" "$kind: the run's key"
	like "$(ctxpack cache ls --store "$STORE")" " $KEY1 " "$kind: and was saved under the run's key"
	rm -rf node_modules
	ok "$kind: the same run again" run --restore-key "base-$n-"
	is "$(runs)" 2 "$kind: is a hit (the command skipped)"
	echo v2 >package-lock.json
	rm -rf node_modules
	ok "$kind: a changed lock file, --restore-key given" run --restore-key "base-$n-"
	like "$(cat "$TESTDIR/.out")" "warm start from $KEY1" "$kind: the key prefix is tried before the restore key"
	KEY2=$(sed -n 's/.*cache miss for \(npm-[^;]*\);.*/\1/p' "$TESTDIR/.out")
	is "$(cat node_modules/pkg/lock-copy)" v2 "$kind: the command ran on the warm tree"

	# --- cache why ---
	ok "$kind: why KEY (from the log of the miss)" ctxpack cache why --store "$STORE" "$KEY2"
	why=$(cat "$TESTDIR/.out")
	like "$why" "^$KEY2 missed at .* \\(warm start from $KEY1\\)" "$kind: why: names the miss and its warm start"
	like "$why" "compared with $KEY1 " "$kind: why: compared with the entry it warm-started from"
	like "$why" "^changed +package-lock.json \\(sha256:[0-9a-f]{12} -> sha256:[0-9a-f]{12}\\)\$" \
		"$kind: why: names the key file that changed"
	is "$(printf '%s\n' "$why" | grep -c '^changed\|^added\|^removed')" 1 "$kind: why: and only that one"
	like "$why" "^command +the same\$" "$kind: why: the command is the same"
	j=$(ctxpack cache why --store "$STORE" --json "$KEY2")
	is "$(echo "$j" | jget changed.0.path added removed changed.0.now)" \
		"package-lock.json [] [] sha256:$(sha256_of package-lock.json)" \
		"$kind: why --json: changed (the digest now is the file's), added, removed"
	echo 22 >.nvmrc
	ok "$kind: why with the run's options (the files as they are now)" ctxpack cache why \
		--store "$STORE" -f package-lock.json -f .nvmrc --key-prefix "npm-$n-" -p node_modules -- ../install.sh
	like "$(cat "$TESTDIR/.out")" "^changed +.nvmrc " "$kind: why: .nvmrc changed since the newest entry"
	like "$(cat "$TESTDIR/.out")" "compared with $KEY2 " "$kind: why: the newest entry of the prefix"
	echo extra >extra.txt
	ok "$kind: why with another key file and another command" ctxpack cache why \
		--store "$STORE" -f package-lock.json -f extra.txt --key-prefix "npm-$n-" -p node_modules \
		-- ../install.sh --other
	like "$(cat "$TESTDIR/.out")" "^added +extra.txt\$" "$kind: why: a key file added"
	like "$(cat "$TESTDIR/.out")" "^removed +.nvmrc\$" "$kind: why: a key file removed"
	like "$(cat "$TESTDIR/.out")" "^command +changed\$" "$kind: why: the command changed"
	echo 20 >.nvmrc
	ok "$kind: why of a key that has an entry" ctxpack cache why --store "$STORE" \
		-f package-lock.json -f .nvmrc --key-prefix "npm-$n-" -p node_modules -- ../install.sh
	like "$(cat "$TESTDIR/.out")" "^$KEY2 has an entry in .*: a run now restores it" "$kind: why: says it hits"
	exits 1 "$kind: why of a key no run missed" ctxpack cache why --store "$STORE" "npm-$n-nope"
	like "$(cat "$TESTDIR/.out")" "error: no run of npm-$n-nope that missed is in the stats log of" \
		"$kind: why: says so, naming the key and the store"

	# --- --no-save ---
	echo v3 >package-lock.json
	before=$(entries)
	ok "$kind: run --no-save (a miss)" run --no-save
	is "$(runs)" 4 "$kind: --no-save: the command ran"
	like "$(cat "$TESTDIR/.out")" "not saved \\(--no-save\\)" "$kind: --no-save: says it did not save"
	is "$(entries)" "$before" "$kind: --no-save: no entry added"

	# --- --save-on-failure, and the default ---
	echo v4 >package-lock.json
	INSTALL_EXIT=3 exits 3 "$kind: run --save-on-failure exits with the command's status" \
		run --save-on-failure
	like "$(cat "$TESTDIR/.out")" "exited with 3; saving anyway" "$kind: --save-on-failure: says so"
	is "$(entries)" $((before + 1)) "$kind: --save-on-failure: the entry was saved"
	rm -rf node_modules
	ok "$kind: the next run" run
	is "$(runs)" 5 "$kind: hits the entry saved after the failure"
	is "$(cat node_modules/pkg/lock-copy)" v4 "$kind: and restores it"
	echo v5 >package-lock.json
	INSTALL_EXIT=4 exits 4 "$kind: a failing run without --save-on-failure" run
	is "$(entries)" $((before + 1)) "$kind: saves nothing"

	# --- --read-only ---
	echo v6 >package-lock.json
	rm -rf node_modules
	state=$(store_state)
	ok "$kind: run --read-only (a miss)" run --read-only
	is "$(runs)" 7 "$kind: --read-only: the command ran"
	like "$(cat "$TESTDIR/.out")" "not saved \\(--read-only\\)" "$kind: --read-only: not saved"
	is "$(grep -c warning "$TESTDIR/.out")" 0 "$kind: --read-only: no warning"
	echo v1 >package-lock.json
	rm -rf node_modules
	ok "$kind: run --read-only (a hit)" run --read-only
	is "$(cat node_modules/pkg/lock-copy):$(runs)" "v1:7" "$kind: --read-only: restores, the command skipped"
	ok "$kind: restore --read-only" ctxpack cache restore --read-only --store "$STORE" -k "$KEY1" node_modules
	is "$(store_state)" "$state" "$kind: --read-only: the store did not change"

	# --- cache save --update ---
	mkdir -p upd && echo one >upd/f
	ok "$kind: save" ctxpack cache save --store "$STORE" -k "upd-$n" upd
	echo two >upd/f
	is "$(ctxpack cache save -q --store "$STORE" --json -k "upd-$n" upd | jget result)" exists \
		"$kind: a save of the key again, without --update, is a no-op"
	before=$(entries)
	res=$(ctxpack cache save -q --store "$STORE" --json --update -k "upd-$n" upd)
	is "$(echo "$res" | jget result)" updated "$kind: save --update stores a new entry"
	old_tag=$(echo "$res" | jget replaced_tag)
	is "$(entries)" $((before + 1)) "$kind: --update: the old entry stays"
	like "$(ctxpack cache ls --store "$STORE" | grep " upd-$n ")" "$old_tag  \\(replaced\\)" \
		"$kind: cache ls marks the old entry replaced"
	is "$(ctxpack cache ls --store "$STORE" --json | python3 -c 'import json,sys
print(sorted(e["current"] for e in json.load(sys.stdin) if e["key"] == sys.argv[1]))' "upd-$n")" \
		"[False, True]" "$kind: cache ls --json: one current, one not"
	rm -rf upd
	ok "$kind: restore of the key" ctxpack cache restore --store "$STORE" -k "upd-$n" upd
	is "$(cat upd/f)" two "$kind: takes the new entry"
	is "$(ctxpack cache save -q --store "$STORE" --json --update -k "upd-$n" upd | jget result)" \
		unchanged "$kind: save --update of the same content stores nothing"
	is "$(entries)" $((before + 1)) "$kind: no entry added"
	exits 2 "$kind: --force with --update is a usage error" ctxpack cache save --store "$STORE" \
		--force --update -k "upd-$n" upd
	ok "$kind: prune --keep 1 of the key's entries" ctxpack cache prune --store "$STORE" --keep 1 --prefix "upd-$n"
	is "$(ctxpack cache ls --store "$STORE" | grep -c " upd-$n ")" 1 "$kind: prune removes the replaced entry"
	rm -rf upd
	ok "$kind: restore after the prune" ctxpack cache restore --store "$STORE" -k "upd-$n" upd
	is "$(cat upd/f)" two "$kind: still the new entry"

	# --- cache stats ---
	j=$(ctxpack cache stats --store "$STORE" --json --prefix "npm-$n-")
	is "$(echo "$j" | jget prefixes.0.prefix events hits partial misses)" \
		"npm-$n- 7 2 5 0" "$kind: stats: the runs of the prefix (the --read-only ones not counted)"
	j=$(ctxpack cache stats --store "$STORE" --json --prefix "cold-")
	is "$(echo "$j" | jget prefixes.0.prefix events misses)" \
		"cold-$n- 1 1" "$kind: stats --prefix: one miss of the other family"
	j=$(ctxpack cache stats --store "$STORE" --json --prefix "upd-$n")
	is "$(echo "$j" | jget prefixes.0.prefix hits)" "upd-$n 2" \
		"$kind: stats: a restore without restore keys counts under its key"
	ok "$kind: stats as a table" ctxpack cache stats --store "$STORE"
	like "$(cat "$TESTDIR/.out")" "^ +7 +2 +5 +0 +29% +[0-9T:-]+Z +npm-$n-\$" "$kind: stats: the table's row"

	# two processes recording at once: nothing lost
	pids=
	for w in a b; do
		(for i in 1 2 3 4 5 6 7 8; do
			ctxpack cache restore -q --store "$STORE" -k "conc-$n-$w$i" --restore-key "conc-$n-" none >/dev/null 2>&1
		done) &
		pids="$pids $!"
	done
	# shellcheck disable=SC2086
	wait $pids
	j=$(ctxpack cache stats --store "$STORE" --json --prefix "conc-$n-")
	is "$(echo "$j" | jget events misses)" "16 16" \
		"$kind: stats: 16 restores from two processes at once, none lost"
	cd .. || exit 1
done

# --- read-only stores ---
if [ -n "${RW_REG:-}" ]; then
	# a registry that refuses every write, on the same storage, behind the
	# proxy that logs each request
	if reg_start --data "$RW_DIR/data" --readonly && proxy_start; then
		cd p2 || exit 1
		export COUNTER=$TESTDIR/runs2
		RO=$PROXY/ci/opts
		: >"$PROXY_LOG"
		echo v1 >package-lock.json
		rm -rf node_modules
		ok "read-only registry: run --read-only (a hit)" ctxpack cache run --read-only --store "$RO" \
			-f package-lock.json -f .nvmrc --key-prefix npm-2- -p node_modules -- ../install.sh
		is "$(cat node_modules/pkg/lock-copy)" v1 "read-only registry: restored"
		echo v7 >package-lock.json
		ok "read-only registry: run --read-only (a miss)" ctxpack cache run --read-only --store "$RO" \
			-f package-lock.json -f .nvmrc --key-prefix npm-2- -p node_modules -- ../install.sh
		is "$(tail -n 1 "$COUNTER")" warm "read-only registry: the command ran (warm)"
		is "$(grep -c warning "$TESTDIR/.out")" 0 "read-only registry: no warning"
		ok "read-only registry: restore --read-only" ctxpack cache restore --read-only --store "$RO" \
			-k "$KEY1" node_modules
		is "$(awk '$1 == "req" && $3 != "GET" && $3 != "HEAD"' "$PROXY_LOG")" "" \
			"read-only registry: GET and HEAD requests only"
		ok "read-only registry: requests were made" grep -q '^req .* GET ' "$PROXY_LOG"
		# without --read-only the same restore tries to write its event
		ok "read-only registry: restore without --read-only" ctxpack cache restore --store "$RO" \
			-k "$KEY1" node_modules
		like "$(cat "$TESTDIR/.out")" "warning: record the restore of $KEY1 in the stats log of .*; not counted" \
			"read-only registry: without it, the refused write is a warning, not a failure"
		cd .. || exit 1
	else
		skip "a read-only registry did not start"
	fi
fi
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	# a layout this process may not write: nobody, on root's store
	mkdir -p nb/home nb/work
	cp p1/package-lock.json p1/.nvmrc nb/work/
	cp install.sh nb/ # the command line is part of the key: ../install.sh as in p1
	: >nb/runs
	echo v1 >nb/work/package-lock.json
	chown -R nobody nb
	chmod -R a-w store
	state=$(STORE=oci:$TESTDIR/store store_state)
	asnobody() { (cd nb/work && setpriv --reuid=65534 --regid=65534 --clear-groups \
		env HOME="$TESTDIR/nb/home" XDG_CACHE_HOME="$TESTDIR/nb/home/.cache" \
		COUNTER="$TESTDIR/nb/runs" "$CTXPACK" "$@"); }
	ok "unwritable layout (nobody): run --read-only (a hit)" asnobody cache run --read-only \
		--store "oci:$TESTDIR/store" -f package-lock.json -f .nvmrc --key-prefix npm-1- \
		-p node_modules -- ../install.sh
	is "$(cat nb/work/node_modules/pkg/lock-copy):$(cat nb/runs)" v1: \
		"unwritable layout: restored, the command skipped"
	is "$(grep -c warning "$TESTDIR/.out")" 0 "unwritable layout: no warning"
	echo v8 >nb/work/package-lock.json
	ok "unwritable layout: run --read-only (a miss)" asnobody cache run --read-only \
		--store "oci:$TESTDIR/store" -f package-lock.json -f .nvmrc --key-prefix npm-1- \
		-p node_modules -- ../install.sh
	is "$(cat nb/runs)" warm "unwritable layout: the command ran"
	is "$(grep -c warning "$TESTDIR/.out")" 0 "unwritable layout: no warning"
	ok "unwritable layout: restore without --read-only" asnobody cache restore \
		--store "oci:$TESTDIR/store" -k base-1-1 node_modules
	like "$(cat "$TESTDIR/.out")" "warning: record the restore of base-1-1 in the stats log of oci:$TESTDIR/store: cannot open .*Permission denied; not counted" \
		"unwritable layout: without it, the refused write is a warning naming the store"
	is "$(STORE=oci:$TESTDIR/store store_state)" "$state" "unwritable layout: the store did not change"
	chmod -R u+w store
else
	skip "an unwritable layout (needs root to drop to nobody)"
fi

# --- the log: trimmed, missing, damaged ---
mkdir -p trim && cd trim || exit 1
for i in $(seq 1 30); do
	CTXPACK_STATS_KEEP=3 ctxpack cache restore -q --store "oci:$TESTDIR/trimstore" -k "t-$i" none >/dev/null
done
lines=$(wc -l <"$TESTDIR/trimstore/ctxpack-stats.log")
ok "layout: the log was trimmed ($lines lines of 30 events, 3 kept)" test "$lines" -lt 30 -a "$lines" -ge 3
is "$(CTXPACK_STATS_KEEP=3 ctxpack cache stats --store "oci:$TESTDIR/trimstore" --json | jget events)" 3 \
	"layout: stats counts the newest 3"
if [ -n "${RW_REG:-}" ]; then
	for i in 1 2 3 4 5; do
		CTXPACK_STATS_KEEP=3 ctxpack cache restore -q --store "$RW_REG/ci/trim" -k "t-$i" none >/dev/null
	done
	is "$(curl -s "http://$RW_REG/v2/ci/trim/tags/list" | grep -o 'ctxpack-stats\.' | wc -l)" 3 \
		"registry: the event tags past the newest 3 were deleted"
	is "$(CTXPACK_STATS_KEEP=3 ctxpack cache stats --store "$RW_REG/ci/trim" --json | jget events)" 3 \
		"registry: stats counts 3"
	is "$(ctxpack cache stats -q --store "$RW_REG/ci/none" --json | jget events)" 0 \
		"registry: a repository without events has none (not an error)"
fi
cd .. || exit 1
mkdir -p old/blobs
echo '{"imageLayoutVersion":"1.0.0"}' >old/oci-layout
is "$(ctxpack cache stats -q --store "oci:$TESTDIR/old" --json | jget events)" 0 \
	"a layout of an older ctxpack (no log) has no events (not an error)"
printf 'v1 0123456789abcdef 2026-01-02T03:04:05Z run miss evil%%1B[31m- evil-k - - -\n' \
	>>"$TESTDIR/store/ctxpack-stats.log"
printf 'garbage\n' >>"$TESTDIR/store/ctxpack-stats.log"
ctxpack cache stats --store "oci:$TESTDIR/store" >stats.out 2>stats.err
is "$?" 0 "layout: stats of a log with damaged lines"
like "$(cat stats.err)" "2 entries of the stats log of oci:.* are not valid events; skipped" "layout: skipped, with a warning"
is "$(grep -c "$(printf '\033')" stats.out stats.err | cut -d: -f2 | tr '\n' ' ')" "0 0 " \
	"layout: no control character printed"
if [ -n "${RW_REG:-}" ]; then
	# an event tag whose manifest says something else: its prefix is not taken
	echo x >evil.bin
	ph=$(printf '%s' 'npm-2-' | sha256sum | cut -c1-12)
	ok "registry: a forged event" ctxpack push --artifact-type application/vnd.ctxpack.cache.event.v1 \
		--annotation "io.ctxpack.cache.event=v1 0123456789abcdef 2026-01-02T03:04:05Z run miss evil%1B[31m- evil-k - - -" \
		evil.bin "$RW_REG/ci/opts:ctxpack-stats.9999999999999.um.$ph.0123456789ab.01234567"
	ctxpack cache stats --store "$RW_REG/ci/opts" >stats.out 2>stats.err
	is "$?" 0 "registry: stats with a forged event"
	is "$(grep -c "$(printf '\033')" stats.out stats.err | cut -d: -f2 | tr '\n' ' ')" "0 0 " \
		"registry: no control character printed"
	like "$(cat stats.out)" "npm-2-\$" "registry: the prefix comes from a valid event"
fi

# --- usage errors ---
cd p1 || exit 1
exits 2 "run --save-on-failure --no-save" ctxpack cache run --save-on-failure --no-save \
	-f package-lock.json -p node_modules -- true
like "$(cat "$TESTDIR/.out")" "--save-on-failure saves; it does not go with --no-save" "says why"
exits 2 "run --save-on-failure --read-only" ctxpack cache run --save-on-failure --read-only \
	-f package-lock.json -p node_modules -- true
exits 2 "run --restore-key ''" ctxpack cache run --restore-key '' -f package-lock.json -p node_modules -- true
exits 2 "why without KEY" ctxpack cache why
exits 2 "why --path KEY" ctxpack cache why --path node_modules some-key
exits 2 "why --key-file without --path" ctxpack cache why -f package-lock.json
exits 2 "stats with an argument" ctxpack cache stats extra
like "$(ctxpack cache run --help)" "--read-only +write nothing to the store" "run --help explains --read-only"
like "$(ctxpack cache run --help)" "cannot write to" "run --help: works with a store it cannot write to"
like "$(ctxpack cache --help)" "ctxpack cache why" "cache --help lists why"

done_testing
