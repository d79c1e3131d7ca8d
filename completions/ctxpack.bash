# bash completion for ctxpack(1)
#
# Installed as $(PREFIX)/share/bash-completion/completions/ctxpack (loaded on
# demand by bash-completion), or sourced as is: it needs nothing but bash.
#
# The tables below are the options of each command, as `ctxpack help CMD`
# and `ctxpack cache SUB --help` list them.  A trailing '=' marks an option
# that takes a value.  When you add an option to the binary, add it here,
# in completions/_ctxpack and in man/ctxpack-CMD.1: tests/integ/t8020 fails
# until all three have it.

_ctxpack_commands='build cache du hash image ls pack pull push'
_ctxpack_cache_subcommands='ls prune restore run save stats why'
_ctxpack_global='-h --help -q --quiet -v --verbose --json --progress='
_ctxpack_reg='--ca-file= --insecure --timeout= --idle-timeout='
_ctxpack_walk='-f= --file= --ignore-file='
_ctxpack_modes='--classic --docker-client= --normalize-modes --no-hardlinks'
_ctxpack_pack="$_ctxpack_walk $_ctxpack_modes --compress= --level= --threads= --index= --no-cache --cache-max="

_ctxpack_opts_ls="$_ctxpack_walk $_ctxpack_modes --why --excluded -l --long -0 --null"
_ctxpack_opts_du="$_ctxpack_walk --classic --docker-client= -n="
_ctxpack_opts_hash="$_ctxpack_walk $_ctxpack_modes --index= --threads="
_ctxpack_opts_pack="$_ctxpack_pack -o= --output="
_ctxpack_opts_build="$_ctxpack_pack --send="
_ctxpack_opts_push="--artifact-type= -a= --annotation= --title= --media-type= --mount-from= $_ctxpack_reg"
_ctxpack_opts_pull="-o= --output= --force $_ctxpack_reg"
_ctxpack_opts_image="--from= --platform= --layer= --ignore-file= --workdir= --env= --entrypoint= --cmd= --user= --expose= --label= -t= --tag= --compress= --level= --threads= --index= --no-cache --cache-max= $_ctxpack_reg"
_ctxpack_opts_cache_save="-k= --key= --force --update --store= $_ctxpack_reg"
_ctxpack_opts_cache_restore="-k= --key= -r= --restore-key= --fail-on-miss --lookup-only --read-only --max-size= --safe-links --store= $_ctxpack_reg"
_ctxpack_opts_cache_run="-f= --key-file= --key-prefix= -p= --path= -r= --restore-key= --no-save --read-only --save-on-failure --max-size= --safe-links --store= $_ctxpack_reg"
_ctxpack_opts_cache_ls="--store= $_ctxpack_reg"
_ctxpack_opts_cache_prune="--older-than= --keep= --prefix= --dry-run --gc-grace= --store= $_ctxpack_reg"
_ctxpack_opts_cache_stats="--prefix= --store= $_ctxpack_reg"
_ctxpack_opts_cache_why="-f= --key-file= --key-prefix= -p= --path= --store= $_ctxpack_reg"

# _ctxpack_values CMD OPTION CUR: complete OPTION's value into COMPREPLY.
_ctxpack_values() {
	local IFS=$'\n'
	case $2 in
	--compress) COMPREPLY=($(compgen -W $'zstd\ngzip\nnone' -- "$3")) ;;
	--send) COMPREPLY=($(compgen -W $'auto\npipe\ndir\ndirect' -- "$3")) ;;
	--progress) COMPREPLY=($(compgen -W $'auto\nalways\nnever' -- "$3")) ;;
	--index | -p | --path)
		compopt -o filenames 2>/dev/null
		COMPREPLY=($(compgen -d -- "$3")) ;;
	--store)
		if [[ $3 == oci:* ]]; then
			COMPREPLY=($(compgen -d -P oci: -- "${3#oci:}"))
		else
			COMPREPLY=($(compgen -W oci: -- "$3"))
		fi
		# oci:DIR goes on: no space after it
		compopt -o nospace 2>/dev/null
		;;
	-f | --file | --ignore-file | --key-file | --ca-file | -o | --output)
		compopt -o filenames 2>/dev/null
		COMPREPLY=($(compgen -f -- "$3")) ;;
	*) COMPREPLY=() ;;
	esac
}

# words[] and cword from COMP_WORDS and COMP_CWORD with "--opt=VALUE" and
# "oci:DIR" whole again (bash splits words at '=' and ':'); widx[k] is the
# index in COMP_WORDS where words[k] starts.
_ctxpack_words() {
	local i w glue=0
	words=()
	widx=()
	cword=0
	for ((i = 0; i < ${#COMP_WORDS[@]}; i++)); do
		w=${COMP_WORDS[i]}
		if ((${#words[@]} > 1)) && [[ $w == [=:] || $glue == 1 ]]; then
			words[${#words[@]}-1]+=$w
			[[ $w == [=:] ]] && glue=1 || glue=0
		else
			widx[${#words[@]}]=$i
			words+=("$w")
			glue=0
		fi
		((i == COMP_CWORD)) && cword=$((${#words[@]} - 1))
	done
	((cword < ${#words[@]})) || words+=("")
}

_ctxpack() {
	local words widx cword cur prev cmd= sub= opts= i start=2 wb= pre after=0 IFS=$' \t\n'

	COMPREPLY=()
	_ctxpack_words
	cur=${words[cword]}
	prev=${words[cword-1]}
	_ctxpack_reply
	((after)) && return
	# bash replaces only what follows the last '=' or ':' it splits at
	[[ $COMP_WORDBREAKS == *=* ]] && wb+='='
	[[ $COMP_WORDBREAKS == *:* ]] && wb+=':'
	if [[ -n $wb && $cur == *[$wb]* ]]; then
		pre=${cur%"${cur##*[$wb]}"}
		COMPREPLY=("${COMPREPLY[@]#"$pre"}")
	fi
}

# COMPREPLY for cur, given words[] and cword: whole words.
_ctxpack_reply() {
	if ((cword == 1)); then
		COMPREPLY=($(compgen -W "$_ctxpack_commands help --help --version" -- "$cur"))
		return
	fi
	cmd=${words[1]}
	case $cmd in
	help)
		((cword == 2)) && COMPREPLY=($(compgen -W "$_ctxpack_commands" -- "$cur"))
		return ;;
	cache)
		if ((cword == 2)); then
			COMPREPLY=($(compgen -W "$_ctxpack_cache_subcommands --help" -- "$cur"))
			return
		fi
		sub=${words[2]}
		start=3
		opts=_ctxpack_opts_cache_$sub ;;
	*) opts=_ctxpack_opts_$cmd ;;
	esac
	[[ $opts =~ ^[A-Za-z0-9_]+$ && -n ${!opts+set} ]] || return
	opts="${!opts} $_ctxpack_global"

	# after "--": COMMAND and its arguments (build, cache run)
	for ((i = start; i < cword; i++)); do
		if [[ ${words[i]} == -- ]]; then
			after=1
			if declare -F _command_offset >/dev/null; then
				_command_offset $((widx[i] + 1))
			elif ((cword == i + 1)); then
				COMPREPLY=($(compgen -c -- "$cur"))
			else
				compopt -o filenames 2>/dev/null
				COMPREPLY=($(compgen -f -- "$cur"))
			fi
			return
		fi
	done

	# --opt=VALUE, and the value after an option that takes one
	if [[ $cur == --*=* ]]; then
		local o=${cur%%=*}
		if [[ " $opts " == *" $o= "* ]]; then
			_ctxpack_values "$cmd" "$o" "${cur#*=}"
			COMPREPLY=("${COMPREPLY[@]/#/$o=}")
		fi
		return
	fi
	if ((cword > start)) && [[ $prev == -* && " $opts " == *" $prev= "* ]]; then
		_ctxpack_values "$cmd" "$prev" "$cur"
		return
	fi

	if [[ $cur == -* ]]; then
		local o list=
		for o in $opts; do
			list+=" ${o%=}"
		done
		COMPREPLY=($(compgen -W "$list" -- "$cur"))
		return
	fi

	# operands
	local IFS=$'\n'
	case $cmd${sub:+ $sub} in
	ls | du | hash | pack | build | "cache save" | "cache restore")
		compopt -o filenames 2>/dev/null
		COMPREPLY=($(compgen -d -- "$cur")) ;;
	push)
		compopt -o filenames 2>/dev/null
		COMPREPLY=($(compgen -f -- "$cur")) ;;
	esac
}

complete -F _ctxpack ctxpack
