#!/bin/sh
# The man pages and the bash and zsh completions keep up with the binary:
# every long option a command accepts (its help, and its getopt_long table:
# tests/integ/cli_options.py) is in the command's man page and is offered
# by both completions after "ctxpack CMD [SUB] --"; every command has a man
# page and is offered, as is every cache subcommand and every value the
# binary names for --compress and --progress.  Each failure names the
# option and the file to add it to.
. "$(dirname "$0")/lib.sh"

for t in mandoc col bash zsh; do
	command -v $t >/dev/null 2>&1 || { echo "1..0 # SKIP $t not installed (scripts/install-deps)"; exit 0; }
done
cd "$TESTDIR" || exit 1
python3 "$ROOT/tests/integ/cli_options.py" "$CTXPACK" "$ROOT" >accepted || { echo "1..0 # SKIP cli_options.py failed"; exit 1; }
grep -v '^values' accepted >opts
commands=$(cut -f1 opts | cut -d' ' -f1 | sort -u)
subs=$(cut -f1 opts | sed -n 's/^cache //p' | sort -u)
ok "the binary accepts long options (found $(wc -l <opts))" test "$(wc -l <opts)" -gt 50
like "$commands" "cache" "commands found, cache among them"
like "$subs" "restore" "cache subcommands found"

# --- man pages ---
for c in $commands; do
	f=$ROOT/man/ctxpack-$c.1
	if [ ! -f "$f" ]; then
		_fail "man/ctxpack-$c.1 exists (write it for the new command $c)"
		continue
	fi
	mandoc -T ascii -O width=1000 "$f" | col -b >"man-$c.txt"
	missing=
	for o in $(awk -F'\t' -v c="$c" '$1 == c || index($1, c " ") == 1 { print $2 }' opts | sort -u); do
		grep -q -e "$o\([^a-z0-9-]\|\$\)" "man-$c.txt" || missing="$missing $o"
	done
	is "${missing# }" "" "man/ctxpack-$c.1 has every option of ctxpack $c"
done
mandoc -T ascii -O width=1000 "$ROOT/man/ctxpack.1" | col -b >man.txt
missing=
for c in $commands; do
	grep -q "ctxpack-$c(1)" man.txt || missing="$missing $c"
done
is "${missing# }" "" "man/ctxpack.1 names every command's page"

# --- bash ---
# the completion function called as bash calls it (COMP_WORDS split at
# COMP_WORDBREAKS, as for "ctxpack pack --compress=")
cat >comp.bash <<'EOB'
source "$1"
comp() {
	COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()
	_ctxpack 2>/dev/null
	printf '%s\n' "${COMPREPLY[@]}"
}
while IFS= read -r line; do
	# shellcheck disable=SC2086
	eval "set -- $line"
	comp "$@" | sed "s|^|$line	|"
done
EOB
{
	echo "ctxpack ''"
	echo "ctxpack cache ''"
	echo "ctxpack pack --compress ''"
	echo "ctxpack ls --progress ''"
	cut -f1 opts | sort -u | sed "s/\$/ --/; s/^/ctxpack /"
} >bash.in
bash --norc --noprofile comp.bash "$ROOT/completions/ctxpack.bash" <bash.in >bash.out 2>bash.err
is "$(cat bash.err)" "" "the bash completion runs without errors"

# --- zsh ---
# a real interactive zsh with compinit, in a pseudo-terminal
sed "s/''\$//" bash.in >zsh.in
tr '\n' '\0' <zsh.in | xargs -0 timeout 120 zsh -f "$ROOT/tests/integ/zsh-complete.zsh" \
	"$ROOT/completions" >zsh.out 2>zsh.err
is "$?:$(cat zsh.err)" "0:" "the zsh completion runs in an interactive zsh"

# offered: OUT LINE: the matches for LINE
offered() { awk -F'\t' -v l="$2" '$1 == l { print $2 }' "$1" | sort -u; }
for sh in bash zsh; do
	file=completions/ctxpack.bash
	[ $sh = zsh ] && file=completions/_ctxpack
	q=
	[ $sh = bash ] && q="''"
	got=$(offered $sh.out "ctxpack $q")
	missing=
	for c in $commands help; do
		printf '%s\n' "$got" | grep -qx -- "$c" || missing="$missing $c"
	done
	is "${missing# }" "" "$sh: 'ctxpack <TAB>' offers every command ($file)"
	got=$(offered $sh.out "ctxpack cache $q")
	missing=
	for s in $subs; do
		printf '%s\n' "$got" | grep -qx -- "$s" || missing="$missing $s"
	done
	is "${missing# }" "" "$sh: 'ctxpack cache <TAB>' offers every subcommand ($file)"
	for v in compress:pack progress:ls; do
		o=--${v%%:*}
		want=$(awk -F'\t' -v o="$o" '$1 == "values" && $2 == o { print $3 }' accepted | tr ' ' '\n' | sort)
		isnt "$want" "" "the binary names the values of $o"
		is "$(offered $sh.out "ctxpack ${v#*:} $o $q")" "$want" "$sh: $o offers exactly them ($file)"
	done
	for ctx in $(cut -f1 opts | sort -u | tr ' ' '+'); do
		ctx=$(echo "$ctx" | tr '+' ' ')
		got=$(offered $sh.out "ctxpack $ctx --")
		missing=
		for o in $(awk -F'\t' -v c="$ctx" '$1 == c { print $2 }' opts); do
			printf '%s\n' "$got" | grep -qx -- "$o" || missing="$missing $o"
		done
		is "${missing# }" "" "$sh: 'ctxpack $ctx --<TAB>' offers every option ($file)"
	done
done
done_testing
