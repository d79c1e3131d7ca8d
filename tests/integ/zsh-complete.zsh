#!/usr/bin/env zsh
# zsh-complete.zsh FPATH-DIR LINE...: the matches zsh's completion system
# offers at the end of each LINE, for the completion functions in
# FPATH-DIR; for each line, one "LINE<TAB>MATCH" line per match.
#
# A real interactive zsh (zsh -f -i) runs in a pseudo-terminal (zsh/zpty)
# with compinit loaded; a widget bound to ^T runs completion with compadd
# wrapped so that each match is printed, then prints an end mark.  Each
# LINE is typed, ^T pressed, the output read to the end mark, and the line
# killed.
emulate -L zsh
zmodload zsh/zpty || exit 2
dir=$1; shift
tmp=${TMPDIR:-/tmp}/zsh-complete.$$
mkdir -p $tmp || exit 2
trap 'rm -rf $tmp' EXIT

TERM=dumb zpty z zsh -f -i || exit 2
# everything before the first command's output is start-up noise
send() { zpty -w z "$1" }
send "PS1='' PS2='' RPS1=''; unsetopt zle_bracketed_paste 2>/dev/null"
send "fpath=(${(q)dir} \$fpath); autoload -Uz compinit; compinit -u -d $tmp/dump"
send 'zstyle ":completion:*" list-prompt ""; zstyle ":completion:*" menu no; unsetopt beep list_beep'
send 'compadd() { local -a __m; builtin compadd -O __m "$@"; (( $#__m )) && print -r -l -- "<<M>>"${^__m} >/dev/tty; builtin compadd "$@" }'
send 'zle -C __capc complete-word _main_complete'
send '__cap() { zle __capc; print -r -- "<<END>>" >/dev/tty; zle kill-whole-line }'
send 'zle -N __cap; bindkey "^T" __cap; print -r -- "<<READY>>"'
out=
while zpty -r -t z line 2>/dev/null || { sleep 0.05; zpty -r z line; }; do
	[[ $line == '<<READY>>'* ]] && break
done

for l in "$@"; do
	zpty -w -n z "$l"$'\x14'
	while zpty -r z line; do
		line=${line//$'\r'/}
		line=${line%$'\n'}
		[[ $line == *'<<END>>'* ]] && break
		# the first match may follow the echo of the typed line
		[[ $line == *'<<M>>'* ]] && print -r -- "$l"$'\t'"${line##*<<M>>}"
	done
done
zpty -d z
