#!/bin/sh
# make install / make uninstall: the binary, one man page per command (the
# commands `ctxpack --help` lists, and ctxpack(1)) and the completions under
# $DESTDIR$PREFIX (PREFIX default /usr/local), where man, bash-completion
# and zsh's compinit find them; the man pages render without
# warnings (man -l), have a NAME lexgrog reads, pass mandoc -T lint, carry
# the version, and are found by man through the installed tree; uninstall
# removes every file install put there.
. "$(dirname "$0")/lib.sh"

for t in man lexgrog mandoc make zsh; do
	command -v $t >/dev/null 2>&1 || { echo "1..0 # SKIP $t not installed (scripts/install-deps)"; exit 0; }
done
VERSION=$(cat "$ROOT/VERSION")
# the Makefile's defaults are under test: an environment's own (perf record,
# for one, exports PREFIX=/usr to what it runs; `make check PREFIX=..`
# passes it down in MAKEFLAGS) must not stand in for them
unset PREFIX BINDIR MANDIR BASHCOMPDIR ZSHCOMPDIR DESTDIR INSTALL MAKEFLAGS MFLAGS MAKELEVEL
mk() { make -s --no-print-directory -C "$ROOT" "$@"; }

# the commands, from the binary itself
cmds=$(ctxpack --help | sed -n '/^commands:/,/^$/p' | awk 'NR > 1 && NF { print $1 }')
isnt "$cmds" "" "ctxpack --help lists commands"

D=$TESTDIR/dest
ok "make install DESTDIR PREFIX=/usr" mk install DESTDIR="$D" PREFIX=/usr
is "$("$D/usr/bin/ctxpack" --version | head -n 1)" "ctxpack $VERSION" "the installed binary runs"
ok "it is executable by all" test "$(stat -c %a "$D/usr/bin/ctxpack")" = 755

M=$D/usr/share/man/man1
for p in ctxpack $(printf 'ctxpack-%s\n' $cmds); do
	f=$M/$p.1
	if [ ! -f "$f" ]; then
		_fail "$p(1) installed ($f)"
		continue
	fi
	_pass "$p(1) installed"
	is "$(stat -c %a "$f")" 644 "$p(1): mode 644"
	is "$(sed -n 's/^\.TH \([^ ]*\) 1 [0-9-]* "\([^"]*\)".*/\1 \2/p' "$f")" \
		"$(echo "$p" | tr a-z A-Z) ctxpack $VERSION" "$p(1): .TH names it and the version"
	# groff's warnings on stderr, the page on stdout
	MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings=all -l "$f" >"$TESTDIR/page" 2>"$TESTDIR/warn"
	is "$?:$(cat "$TESTDIR/warn")" "0:" "$p(1): man -l renders it without warnings"
	like "$(head -n 1 "$TESTDIR/page")" "^$(echo "$p" | tr a-z A-Z)\\(1\\)" "$p(1): the header line"
	like "$(lexgrog "$f")" "^$f: \"$p - [a-z]" "$p(1): lexgrog reads its NAME"
	is "$(mandoc -T lint -W warning "$f" 2>&1)" "" "$p(1): mandoc -T lint finds nothing"
done
# man finds the pages in the installed tree, by name
like "$(MANWIDTH=80 man -M "$D/usr/share/man" ctxpack-cache 2>&1 | head -n 1)" \
	'^CTXPACK-CACHE\(1\)' "man -M finds ctxpack-cache(1) in the installed tree"

# the completions, where bash-completion and zsh look for them
B=$D/usr/share/bash-completion/completions/ctxpack
Z=$D/usr/share/zsh/site-functions/_ctxpack
same_files "$B" "$ROOT/completions/ctxpack.bash" "bash completion installed"
same_files "$Z" "$ROOT/completions/_ctxpack" "zsh completion installed"
if [ -r /usr/share/bash-completion/bash_completion ]; then
	is "$(XDG_DATA_DIRS=$D/usr/share bash --norc -c '. /usr/share/bash-completion/bash_completion
		_completion_loader ctxpack; complete -p ctxpack' 2>&1)" "complete -F _ctxpack ctxpack" \
		"bash-completion's loader finds it through XDG_DATA_DIRS"
else
	skip "bash-completion not installed"
fi
is "$(zsh -f -c "fpath=($D/usr/share/zsh/site-functions \$fpath); autoload -Uz compinit
	compinit -u -d $TESTDIR/zcompdump; print -r -- \$_comps[ctxpack]" 2>&1)" "_ctxpack" \
	"zsh's compinit finds it in the installed site-functions"

ok "make uninstall DESTDIR PREFIX=/usr" mk uninstall DESTDIR="$D" PREFIX=/usr
is "$(find "$D" ! -type d | sort)" "" "uninstall leaves no file behind"

# the default PREFIX is /usr/local
D2=$TESTDIR/dest2
ok "make install DESTDIR (default PREFIX)" mk install DESTDIR="$D2"
ok "binary in /usr/local/bin" test -x "$D2/usr/local/bin/ctxpack"
ok "ctxpack(1) in /usr/local/share/man/man1" test -f "$D2/usr/local/share/man/man1/ctxpack.1"
ok "make uninstall DESTDIR (default PREFIX)" mk uninstall DESTDIR="$D2"
is "$(find "$D2" ! -type d | sort)" "" "uninstall leaves no file behind"
done_testing
