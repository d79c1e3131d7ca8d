/*
 * ignore: the .dockerignore reader and matcher, exactly as BuildKit reads it
 * (shared/docs/dockerignore.md).  Pure: bytes in, verdicts out; no I/O.
 *
 * Usage:
 *   struct ign *ig = ign_new();
 *   if (ign_parse(ig, ".dockerignore", data, len, &e)) ... (e names file:line)
 *   for each path, top-down, with the parent's flags:
 *       ign_match(ig, "a/b", 3, parent_flags, my_flags, &deciding, &e)
 *   ign_free(ig);
 */
#ifndef CTXPACK_IGNORE_H
#define CTXPACK_IGNORE_H

#include <stddef.h>
#include <stdint.h>

#include "ctxpack/util.h"

struct ign;

struct ign *ign_new(void);
void ign_free(struct ign *ig);

/*
 * Read an ignore file's content (section 2: lines, BOM, first-byte '#'
 * comments, TrimSpace, '!', filepath.Clean, leading '/') and compile every
 * pattern (section 3).  fname is only used in messages.  May be called once
 * per ign.  Invalid patterns fail here with
 *   "<fname>:<line>: <pattern as written>: <reason>"
 * where reason is e.g. `illegal exclusion pattern: "!"` or
 * `syntax error in pattern`; a line over 64 KiB fails with
 *   "<fname>:<line>: line too long (over 65536 bytes)".
 * Patterns whose regex would only fail when first evaluated by Go ([z-a],
 * \q) are refused here too (stricter than Docker, on purpose), with
 * reason "syntax error in pattern (invalid regular expression: ...)",
 * except in exceptions that can never be evaluated because no normal
 * pattern precedes them (section 8 notes), which are accepted.  Regex
 * features Go accepts but this engine lacks (\pL Unicode classes) fail
 * the same way with reason "unsupported in pattern (...)".
 * Note: like upstream (its escape bitmap overflows for bytes >= 64), '|',
 * '{' and '}' are NOT escaped in regexp-kind patterns: "*.js|*.ts" is an
 * alternation and "x{2}*" a counted repetition, exactly as in Docker.
 * Returns 0 or ERR_USAGE.
 */
int ign_parse(struct ign *ig, const char *fname, const char *data, size_t len,
	      struct err *e);

/*
 * Match as Docker clients before 23 do (moby pkg/fileutils of 20.10: the
 * classic builder's tar and the 2020 file-sync walk for BuildKit): every
 * pattern a regexp with only '.' and '$' escaped, tested on every path
 * (a regex Go rejects fails the parse, exceptions included), and the
 * deprecated Matches rule in ign_match (below).  Call before ign_parse.
 */
void ign_old_matcher(struct ign *ig);
int ign_old(const struct ign *ig);
/*
 * Read the lines as buildah and podman do (containers/storage's
 * NewPatternMatcher, as Debian 12's buildah 1.28 and podman 4.3 run it):
 * what follows a '!' is not trimmed again.  Call before ign_parse.
 */
void ign_buildah_lines(struct ign *ig);

/* Number of patterns (the length of a flags vector). */
size_t ign_count(const struct ign *ig);

/* 1 when any pattern is an exception. */
int ign_has_exceptions(const struct ign *ig);

/*
 * The walker rule (section 4.2, MatchesUsingParentResults).  path is the
 * entry's path relative to the context root, '/'-separated, no leading or
 * trailing '/', len bytes (need not be NUL-terminated; may hold any bytes).
 * parent_flags is the flags vector computed for the parent directory, or
 * NULL for a top-level entry.  flags (ign_count bytes, written) receives
 * this entry's vector, to pass to its children (flags may be NULL when
 * the caller does not need it).  Without parent flags, a pattern that
 * matches an ancestor directory of path also counts (Go's behaviour for
 * MatchInfo{}).  *deciding (may be NULL)
 * receives the index of the last pattern that changed the verdict, or -1.
 * Returns 1 when excluded, 0 when included.
 * With ign_old_matcher: parent_flags are ignored and flags zeroed; each
 * pattern matches when it matches the path or, failing that, the path's
 * ancestor at the pattern's depth (the first N elements of the parent
 * directory for a pattern of N '/'-separated elements, when the parent
 * has that many), and the last pattern that matches decides.
 */
int ign_match(const struct ign *ig, const char *path, size_t len,
	      const uint8_t *parent_flags, uint8_t *flags, int *deciding);

/*
 * The stateless rule (section 4.1, MatchesOrParentMatches), for callers
 * that test a single path without walking (e.g. "would the Dockerfile be
 * excluded").  Returns 1 when excluded.
 */
int ign_excluded_path(const struct ign *ig, const char *path, size_t len);

/*
 * The descent rule (section 5, BuildKit/fsutil): for a directory that
 * ign_match() excluded, 1 when the walker must still enter it because an
 * exception could re-include something below it; 0 when it may be pruned
 * without being read.  With no exceptions: always 0.  With any wildcard
 * exception: always 1.  With only literal exceptions: 1 when some trimmed
 * exception + "/" starts with dir + "/".
 */
int ign_must_descend(const struct ign *ig, const char *dir, size_t len);

/*
 * The classic builder's descent rule (section 5, go-archive): 1 when some
 * exception's cleaned text + "/" starts with dir + "/", compared as text,
 * wildcards included; 0 otherwise (and always 0 without exceptions).  So
 * "*" with "!*" + "/" + "*.txt" never enters "recipes" (moby/moby#30018).
 */
int ign_must_descend_classic(const struct ign *ig, const char *dir, size_t len);

/* Pattern i as written in the file (after trimming), its 1-based line, and
 * whether it is an exception.  Borrowed until ign_free. */
const char *ign_pattern_text(const struct ign *ig, size_t i);
unsigned ign_pattern_line(const struct ign *ig, size_t i);
int ign_pattern_is_exception(const struct ign *ig, size_t i);
/* The fname given to ign_parse (borrowed). */
const char *ign_file_name(const struct ign *ig);

/*
 * Internals shared by src/pack/ignore.c and src/pack/ignore_re.c, exposed
 * for the unit tests and the fuzz target.  Not for other modules.
 *
 * ign_utf8_decode: decode one code point from s (len > 0 bytes) the way Go
 * does: an invalid or truncated sequence (including surrogates and
 * overlong forms) yields U+FFFD with *width 1; a genuine U+FFFD has
 * *width 3.  len 0 yields U+FFFD with *width 0.
 */
uint32_t ign_utf8_decode(const char *s, size_t len, size_t *width);
/* Encode code point c (<= U+10FFFF) as UTF-8 into out (4 bytes room). */
size_t ign_utf8_encode(uint32_t c, char *out);

/*
 * The regular-expression engine behind regexp-kind patterns: Go's regexp
 * (RE2 syntax with Go's Perl flags: ^ and $ are begin and end of text, '.'
 * does not match a newline, negated classes do) on code points, as a
 * Thompson NFA simulation (linear in pattern x path, never exponential).
 * Supported: literals, '.', [classes] with ranges, negation, [:posix:]
 * names, \d \s \w and their negations, escapes (punctuation,
 * \a \f \n \r \t \v, octal, \xHH, \x{H..}), \Q..\E, ^ $ \A \z \b \B,
 * groups, | and * + ? {n,m} (lazy forms accepted: same verdict).  \p and
 * \P Unicode classes, (?flags) and programs over 1M instructions are
 * refused as unsupported.
 *
 * ign_re_compile: expr is len bytes (must be valid UTF-8).  Returns 0 and
 * sets *out (free with ign_re_free), or IGN_RE_INVALID (Go would fail to
 * compile it) or IGN_RE_UNSUPPORTED, with a lowercase reason in why[]
 * (whysz bytes, may be NULL).
 * ign_re_match: 1 when the expression matches somewhere in s (len bytes,
 * any bytes; an invalid byte is one U+FFFD).  Small programs without \b
 * or \B are turned into a DFA at compile time (a table walk per code
 * point); the rest run the NFA, allocation-free up to 512 instructions.
 * Thread-safe (re is read-only after compiling).
 * ign_re_match_nfa: the same verdict from the NFA alone (tests, fuzzing).
 */
enum { IGN_RE_INVALID = 1, IGN_RE_UNSUPPORTED = 2 };
struct ign_re;
int ign_re_compile(const char *expr, size_t len, struct ign_re **out,
		   char *why, size_t whysz);
int ign_re_match(const struct ign_re *re, const char *s, size_t len);
int ign_re_match_nfa(const struct ign_re *re, const char *s, size_t len);
void ign_re_free(struct ign_re *re);

/*
 * Pattern i's compiled form, for tests and debugging: its kind ('e' exact,
 * 'p' prefix, 's' suffix, 'r' regexp, 'n' never evaluated: an exception
 * whose regex is invalid but which no normal pattern precedes) and, for
 * the regexp kind, the Go regex text it was translated to (borrowed until
 * ign_free; "" for the other kinds).
 */
int ign_pattern_kind(const struct ign *ig, size_t i);
const char *ign_pattern_regex(const struct ign *ig, size_t i);

#endif
