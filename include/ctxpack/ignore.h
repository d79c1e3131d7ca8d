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
 * \q) are refused here too (stricter than Docker, on purpose), except in
 * exceptions that can never be evaluated because no normal pattern
 * precedes them (section 8 notes), which are accepted.
 * Returns 0 or ERR_USAGE.
 */
int ign_parse(struct ign *ig, const char *fname, const char *data, size_t len,
	      struct err *e);

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
 * this entry's vector, to pass to its children.  *deciding (may be NULL)
 * receives the index of the last pattern that changed the verdict, or -1.
 * Returns 1 when excluded, 0 when included.
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

/* Pattern i as written in the file (after trimming), its 1-based line, and
 * whether it is an exception.  Borrowed until ign_free. */
const char *ign_pattern_text(const struct ign *ig, size_t i);
unsigned ign_pattern_line(const struct ign *ig, size_t i);
int ign_pattern_is_exception(const struct ign *ig, size_t i);
/* The fname given to ign_parse (borrowed). */
const char *ign_file_name(const struct ign *ig);

#endif
