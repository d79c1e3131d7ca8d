#!/bin/sh
# What the bash and zsh completions offer besides the option names
# (t8020): directories for a context DIR and the cache PATHs, files for
# --key-file and -f (cache run and why), oci:DIR for --store, the
# --compress value in both "--compress gzip" and "--compress=gzip" (bash
# splits words at '=' and ':'), a command and its own arguments after "--"
# in build, cache run and cache why, and nothing (no error) for a command
# it does not know.
. "$(dirname "$0")/lib.sh"

for t in bash zsh; do
	command -v $t >/dev/null 2>&1 || { echo "1..0 # SKIP $t not installed (scripts/install-deps)"; exit 0; }
done
cd "$TESTDIR" || exit 1
mkdir -p proj/node_modules proj/.venv proj/nested/dir
echo lock >proj/pnpm-lock.yaml
echo lock >proj/uv.lock
cd proj || exit 1

# bash: COMP_WORDS as bash splits the line (given here word by word)
cat >../comp.bash <<'EOB'
source "$1"
shift
[ -n "${WB:-}" ] && COMP_WORDBREAKS=$WB
COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=()
_ctxpack
printf '%s\n' "${COMPREPLY[@]}" | LC_ALL=C sort -u | tr '\n' ' ' | sed 's/ $//'
EOB
bc() { bash --norc --noprofile ../comp.bash "$ROOT/completions/ctxpack.bash" "$@" 2>&1; }

is "$(bc ctxpack pack '')" ".venv nested node_modules" "bash: pack DIR offers directories (not files)"
is "$(bc ctxpack cache save -k k n)" "nested node_modules" "bash: cache save PATH offers directories"
is "$(bc ctxpack cache run --key-file p)" "pnpm-lock.yaml" "bash: --key-file offers files"
is "$(bc ctxpack cache run -f u)" "uv.lock" "bash: -f (cache run) offers files"
is "$(bc ctxpack cache restore --store o)" "oci:" "bash: --store offers oci:"
is "$(bc ctxpack cache restore --store oci : n)" "nested node_modules" \
	"bash: --store oci:DIR offers directories after the ':' bash split at"
is "$(bc ctxpack pack --compress = g)" "gzip" "bash: --compress=VALUE, split at '='"
is "$(WB=' ' bc ctxpack pack --compress=g)" "--compress=gzip" \
	"bash: --compress=VALUE, one word when '=' does not split"
is "$(bc ctxpack build --compress none -- ech)" "echo" "bash: a command after -- (build)"
is "$(bc ctxpack cache run -f uv.lock -p .venv -- ech)" "echo" "bash: a command after -- (cache run)"
is "$(bc ctxpack cache run -f uv.lock -p .venv -- uv sync --frozen p)" "pnpm-lock.yaml" \
	"bash: the command's own arguments after --"
is "$(bc ctxpack cache why --key-file p)" "pnpm-lock.yaml" "bash: --key-file offers files (cache why)"
is "$(bc ctxpack cache why -f uv.lock -p .venv -- ech)" "echo" "bash: a command after -- (cache why)"
is "$(bc ctxpack cache run --save-on)" "--save-on-failure" "bash: cache run's --save-on-failure"
is "$(bc ctxpack cache st)" "stats" "bash: cache stats"
is "$(bc ctxpack cache nosuch --)" "" "bash: an unknown cache subcommand: nothing, no error"
is "$(bc ctxpack nosuch --)" "" "bash: an unknown command: nothing, no error"
is "$(bc ctxpack --progress a)" "" "bash: an option in the command's place: nothing, no error"

# zsh: typed into an interactive zsh, one session for all lines
set -- 'ctxpack pack ' 'ctxpack cache save -k k n' 'ctxpack cache run --key-file p' \
	'ctxpack cache restore --store o' 'ctxpack cache restore --store oci:n' \
	'ctxpack pack --compress=g' 'ctxpack build --compress none -- ech' \
	'ctxpack cache run -f uv.lock -p .venv -- ech' 'ctxpack nosuch --' \
	'ctxpack cache why --key-file p' 'ctxpack cache why -f uv.lock -p .venv -- ech'
timeout 120 zsh -f "$ROOT/tests/integ/zsh-complete.zsh" "$ROOT/completions" "$@" >../zsh.out 2>../zsh.err
is "$?:$(cat ../zsh.err)" "0:" "zsh: the session ran"
zc() { awk -F'\t' -v l="$1" '$1 == l { print $2 }' ../zsh.out | LC_ALL=C sort -u | tr '\n' ' ' | sed 's/ $//'; }
is "$(zc 'ctxpack pack ')" "nested node_modules" "zsh: pack DIR offers directories (not files)"
is "$(zc 'ctxpack cache save -k k n')" "nested node_modules" "zsh: cache save PATH offers directories"
is "$(zc 'ctxpack cache run --key-file p')" "pnpm-lock.yaml" "zsh: --key-file offers files"
is "$(zc 'ctxpack cache restore --store o')" "oci:" "zsh: --store offers oci:"
is "$(zc 'ctxpack cache restore --store oci:n')" "nested node_modules" "zsh: --store oci:DIR offers directories"
is "$(zc 'ctxpack pack --compress=g')" "gzip" "zsh: --compress=VALUE"
like "$(zc 'ctxpack build --compress none -- ech')" "(^| )echo( |$)" "zsh: a command after -- (build)"
like "$(zc 'ctxpack cache run -f uv.lock -p .venv -- ech')" "(^| )echo( |$)" "zsh: a command after -- (cache run)"
is "$(zc 'ctxpack nosuch --')" "" "zsh: an unknown command: nothing"
is "$(zc 'ctxpack cache why --key-file p')" "pnpm-lock.yaml" "zsh: --key-file offers files (cache why)"
like "$(zc 'ctxpack cache why -f uv.lock -p .venv -- ech')" "(^| )echo( |$)" "zsh: a command after -- (cache why)"
done_testing
