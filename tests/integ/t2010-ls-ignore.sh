#!/bin/sh
# ctxpack ls with .dockerignore: selection of the file, --why, --excluded,
# refusing bad patterns before walking.
. "$(dirname "$0")/lib.sh"

C=$TESTDIR/ctx
mkdir -p "$C/src" "$C/node_modules/pkg" "$C/docs" "$C/docker"
echo 1 > "$C/src/app.py"; echo 2 > "$C/node_modules/pkg/i.js"
echo 3 > "$C/docs/README.md"; echo 4 > "$C/docs/other.md"
printf 'FROM scratch\n' > "$C/Dockerfile"
printf 'FROM scratch\n' > "$C/docker/app.Dockerfile"
printf '# comment\nnode_modules\ndocs\n!docs/README.md\n' > "$C/.dockerignore"

out=$(ctxpack ls "$C" | tr '\n' ' ')
is "$out" ".dockerignore Dockerfile docker/ docker/app.Dockerfile docs/ docs/README.md src/ src/app.py " \
	"root .dockerignore applies; an exception re-includes one file below an excluded dir"

out=$(ctxpack ls --why "$C" | grep README)
is "$out" "docs/README.md	.dockerignore:4:!docs/README.md" "--why names file:line:pattern (the file relative to the context)"
out=$(ctxpack ls --why "$C" | grep app.py)
is "$out" "src/app.py" "--why appends nothing when no pattern matched"

out=$(ctxpack ls --excluded "$C" | tr '\n' ' ')
is "$out" "docs/other.md node_modules/ " "--excluded lists what was left out (pruned dirs once)"
out=$(ctxpack ls --excluded --why "$C" | grep node_modules)
is "$out" "node_modules/	.dockerignore:2:node_modules" "--excluded --why"

# -f selects <Dockerfile>.dockerignore, which replaces the root file
printf 'src\n' > "$C/docker/app.Dockerfile.dockerignore"
out=$(cd "$C" && ctxpack ls -f docker/app.Dockerfile | tr '\n' ' ')
is "$out" ".dockerignore Dockerfile docker/ docker/app.Dockerfile docker/app.Dockerfile.dockerignore docs/ docs/README.md docs/other.md node_modules/ node_modules/pkg/ node_modules/pkg/i.js " \
	"-f DOCKERFILE uses DOCKERFILE.dockerignore instead of the root file"

# --ignore-file overrides both
printf '*\n!src\n' > "$TESTDIR/custom.ignore"
out=$(cd "$C" && ctxpack ls -f docker/app.Dockerfile --ignore-file "$TESTDIR/custom.ignore" | tr '\n' ' ')
is "$out" "src/ src/app.py " "--ignore-file overrides both (allow-list style)"
exits 1 "--ignore-file that does not exist fails" ctxpack ls --ignore-file "$TESTDIR/nope" "$C"
like "$(cat "$TESTDIR/.out")" "nope" "the missing ignore file is named"

# the Dockerfile and .dockerignore are listed only when the patterns keep them
printf 'Dockerfile\n.dockerignore\n' > "$C/.dockerignore"
out=$(ctxpack ls "$C" | grep -c -E '^(Dockerfile|\.dockerignore)$')
is "$out" "0" "Dockerfile and .dockerignore excluded when the patterns say so (BuildKit)"

# a symlinked .dockerignore is followed
printf 'src\n' > "$TESTDIR/real.ignore"
rm "$C/.dockerignore"; ln -s "$TESTDIR/real.ignore" "$C/.dockerignore"
out=$(ctxpack ls "$C" | grep -c '^src')
is "$out" "0" "a symlinked .dockerignore is read"
rm "$C/.dockerignore"

# invalid patterns are refused before anything is walked, naming file:line
printf 'ok\n# c\n[z-\n' > "$C/.dockerignore"
exits 2 "syntax error in a pattern is refused" ctxpack ls "$C"
like "$(cat "$TESTDIR/.out")" "\.dockerignore:3: \[z-: syntax error in pattern" "error names file:line: pattern: reason"
printf 'a\n!\n' > "$C/.dockerignore"
exits 2 "bare ! is refused" ctxpack ls "$C"
like "$(cat "$TESTDIR/.out")" '\.dockerignore:2: !: illegal exclusion pattern: "!"' "bare ! message"
# the shared error vectors, through the CLI
if [ -r "$SHARED/data/dockerignore-error-vectors.tsv" ]; then
	tail -n +2 "$SHARED/data/dockerignore-error-vectors.tsv" | while IFS='	' read -r pat stage msg src; do
		printf '%s\n' "$pat" > "$C/.dockerignore"
		ctxpack ls "$C" >/dev/null 2>"$TESTDIR/verr"; rc=$?
		case $stage in
		none) [ $rc -eq 0 ] || echo "accepted pattern refused: $pat" ;;
		*) if [ $rc -eq 0 ] || ! grep -qF "$msg" "$TESTDIR/verr" ||
			! grep -q '\.dockerignore:1: ' "$TESTDIR/verr"; then
			echo "bad pattern not refused properly: [$pat] rc=$rc $(cat "$TESTDIR/verr")"; fi ;;
		esac
	done > "$TESTDIR/vres"
	is "$(cat "$TESTDIR/vres")" "" "every error vector is refused (or accepted) through the CLI"
else
	skip "shared error vectors not found"
fi
rm -f "$C/.dockerignore"

# du
mkdir -p "$C/.git/objects" "$C/frontend/node_modules/x" "$C/backend/__pycache__"
head -c 100000 /dev/zero > "$C/.git/objects/pack"
echo 1 > "$C/frontend/node_modules/x/i.js"; echo 2 > "$C/backend/__pycache__/m.pyc"
echo 'TOKEN=1' > "$C/.env"; printf '//registry.npmjs.org/:_authToken=abc\n' > "$C/.npmrc"
printf 'node_modules\n' > "$C/.dockerignore"
ctxpack du "$C" > "$TESTDIR/du.out" 2> "$TESTDIR/du.err"
like "$(cat "$TESTDIR/du.out")" '^included: [0-9]+ entries' "du prints included totals"
like "$(cat "$TESTDIR/du.out")" '^excluded: 3 entries, 1 files, 2 B' "du prints excluded totals"
like "$(cat "$TESTDIR/du.out")" '^  \.git +#' "du suggests .git"
like "$(cat "$TESTDIR/du.out")" '^  \*\*/node_modules +#' "du suggests **/node_modules for a nested one"
like "$(cat "$TESTDIR/du.out")" '^  \*\*/__pycache__ +#' "du suggests **/__pycache__"
like "$(cat "$TESTDIR/du.err")" 'possible secret in the context: \.env' "du warns about .env"
like "$(cat "$TESTDIR/du.err")" 'possible secret in the context: \.npmrc' "du warns about .npmrc with a token"
ctxpack du --json -n 2 "$C" > "$TESTDIR/du.json" 2>/dev/null
out=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["excluded"]["files"], len(d["largest_files"]), d["largest_files"][0]["path"], ".env" in [s["path"] for s in d["secrets"]])' "$TESTDIR/du.json")
is "$out" "1 2 .git/objects/pack True" "du --json: totals, -n, largest file, secrets"


# du --classic counts what the classic builder's walk sends: a wildcard
# exception below an excluded directory is lost there (du walks every
# excluded directory for its size, and once counted it as included)
K=$TESTDIR/classic; mkdir -p "$K/sub"
echo a > "$K/sub/a.txt"; echo b > "$K/sub/b.md"; echo 'FROM x' > "$K/Dockerfile"
printf 'sub\n!s*/a.txt\n' > "$K/.dockerignore"
is "$(ctxpack ls "$K" | tr '\n' ' ')" ".dockerignore Dockerfile sub/ sub/a.txt " "ls: the exception applies"
is "$(ctxpack ls --classic "$K" | tr '\n' ' ')" ".dockerignore Dockerfile " "ls --classic: it is lost"
du_inc() { ctxpack du --json "$@" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["included"]["entries"], d["excluded"]["entries"])'; }
is "$(du_inc "$K")" "4 1" "du: 4 entries included, 1 excluded"
is "$(du_inc --classic "$K")" "2 3" "du --classic: 2 included, 3 excluded (sub/, both files)"

# --docker-client V: the matcher of a client before 23 (a pattern is a
# regular expression: the parentheses group), today's from 23 on
D=$TESTDIR/dclient; mkdir -p "$D"
: > "$D/notes(old).txt"; : > "$D/notesold.txt"; echo 'FROM x' > "$D/Dockerfile"
printf 'notes(old).txt\n' > "$D/.dockerignore"
is "$(ctxpack ls "$D" | tr '\n' ' ')" ".dockerignore Dockerfile notesold.txt " "ls: today's matcher"
is "$(ctxpack ls --docker-client 28.2.2 "$D" | tr '\n' ' ')" ".dockerignore Dockerfile notesold.txt " "ls --docker-client 28.2.2: the same"
is "$(ctxpack ls --docker-client 20.10.24+dfsg1 "$D" | tr '\n' ' ')" ".dockerignore Dockerfile notes(old).txt " \
	"ls --docker-client 20.10.24+dfsg1: the old matcher"
is "$(ctxpack ls --classic --docker-client v20.10 "$D" | tr '\n' ' ')" ".dockerignore Dockerfile notes(old).txt " \
	"ls --classic --docker-client v20.10: the old matcher"
is "$(du_inc --docker-client 20.10.24 "$D")" "3 1" "du --docker-client 20.10.24"
h_new=$(ctxpack hash --index "$TESTDIR/dci" "$D" 2>/dev/null)
h_old=$(ctxpack hash --index "$TESTDIR/dci" --docker-client 20.10.24 "$D" 2>/dev/null)
ok "hash --docker-client 20.10.24: another context, another digest" test -n "$h_old" -a "$h_new" != "$h_old"
ctxpack pack --docker-client 20.10.24 --compress none -o "$TESTDIR/dc.tar" "$D" 2>/dev/null
is "$(tar tf "$TESTDIR/dc.tar" | tr '\n' ' ')" ".dockerignore Dockerfile notes(old).txt " "pack --docker-client 20.10.24"
for v in nope 0 1000 20x .20 ''; do
	exits 2 "--docker-client '$v' is a usage error" ctxpack ls --docker-client "$v" "$D"
done
like "$(cat "$TESTDIR/.out")" "docker-client takes a docker client's version, such as 20.10.24" "and says what it takes"

done_testing
