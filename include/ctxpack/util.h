/*
 * util: the error record, the growable buffer, small helpers and the sha256
 * digest.  Depends on libc only.
 */
#ifndef CTXPACK_UTIL_H
#define CTXPACK_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Error codes.  Functions return 0 on success or one of these (negative).
 * The code says what kind of failure it was; the message in struct err says
 * which file, line, path or reference.
 */
enum {
	ERR_OK = 0,
	ERR_FAIL = -1,     /* generic failure (I/O, library error) */
	ERR_USAGE = -2,    /* bad argument or option value */
	ERR_NOTFOUND = -3, /* a file, blob, manifest or tag does not exist */
	ERR_CORRUPT = -4,  /* data failed a check (digest, format, size) */
	ERR_NET = -5,      /* network or server-side failure (retryable) */
	ERR_AUTH = -6,     /* credentials refused */
	ERR_CHANGED = -7,  /* a file changed while it was being read */
	ERR_NOMEM = -8,
};

/*
 * The error record.  The first failure wins: err_set() on a record that
 * already holds an error keeps the old one.  err_wrap() prefixes context on
 * the way up ("push x/y: " + message).
 */
struct err {
	int code;
	int saved_errno;
	char msg[2048];
};

#define ERR_INIT {0, 0, {0}}

void err_clear(struct err *e);
/* Record a failure; returns code (so `return err_set(e, ERR_FAIL, ...)`). */
int err_set(struct err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Like err_set with ": strerror(errno)" appended; code ERR_FAIL, or
 * ERR_NOTFOUND for ENOENT. */
int err_errno(struct err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Prefix the message with context; returns the held code. */
int err_wrap(struct err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* 1 when the record holds an error. */
static inline int err_isset(const struct err *e) { return e->code != 0; }

/* Allocation that aborts on out-of-memory (like git's xmalloc). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t sz);
void *xrealloc(void *p, size_t n);
/* xreallocarray checks n * sz for overflow. */
void *xreallocarray(void *p, size_t n, size_t sz);
/* For buffers of 512 KiB or more that are filled soon (a snapshot read, a
 * walk's entries, a copy buffer): 2 MiB aligned, rounded up to 2 MiB and
 * marked for transparent huge pages, which spares most page faults (a
 * fault costs 10 us on the VMs this runs on); freed with free().  The
 * array forms check n * sz as xreallocarray does; xreallocarray_big grows
 * p, of which the first old elements are used, to n.  Smaller sizes are
 * plain xmalloc/xreallocarray. */
void *xmalloc_big(size_t n);
void *xmallocarray_big(size_t n, size_t sz);
void *xreallocarray_big(void *p, size_t old, size_t n, size_t sz);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * The one growable buffer.  data is never NULL and always NUL-terminated.
 * max (0 = unlimited) caps len: growing past it fails with ERR_FAIL and the
 * buffer is left as it was.
 */
struct buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;
};

extern char buf_empty[1];
#define BUF_INIT {buf_empty, 0, 0, 0}

void buf_init(struct buf *b, size_t max);
void buf_release(struct buf *b);
void buf_reset(struct buf *b);
int buf_grow(struct buf *b, size_t extra);
int buf_add(struct buf *b, const void *p, size_t n);
int buf_addstr(struct buf *b, const char *s);
int buf_addch(struct buf *b, int c);
int buf_addf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int buf_vaddf(struct buf *b, const char *fmt, va_list ap);
void buf_setlen(struct buf *b, size_t len);
/* Hand the malloc'd string to the caller; the buffer is reset. */
char *buf_detach(struct buf *b, size_t *len);
/* A buffer of fixed capacity `size` mapped once (never reallocated; growing
 * past it fails).  With `huge`, on transparent huge pages where the kernel
 * has them, so that filling it faults once per 2 MiB rather than once per
 * 4 KiB (at the price of resident memory in 2 MiB steps); without, never
 * on huge pages, even where the kernel would use them unasked.  buf_trim gives
 * the pages of its first `used` bytes back to the kernel, all but those
 * holding the first `keep` bytes. */
int buf_map(struct buf *b, size_t size, int huge);
void buf_unmap(struct buf *b);
void buf_trim(struct buf *b, size_t used, size_t keep);

/* Read a whole file (at most max bytes, 0 = unlimited) into b. */
int buf_read_file(struct buf *b, const char *path, size_t max, struct err *e);

/* I/O helpers that retry on EINTR and short counts. */
int write_all(int fd, const void *p, size_t n);       /* 0 or -1 (errno) */
int pwrite_all(int fd, const void *p, size_t n, off_t off); /* at off; 0 or -1 */
ssize_t read_full(int fd, void *p, size_t n);          /* bytes or -1 */
/*
 * n bytes of the file fd from offset off into the pipe out with splice():
 * the pipe takes the page cache's pages, nothing is copied through this
 * process.  With wait, a full pipe is not waited on in splice: wait(ctx) is
 * called, and the move goes on if it returns 0; without, splice blocks
 * while the pipe is full (unless out is non-blocking: then it stops).
 * took(ctx, k) (may be NULL) hears of every k bytes moved.  Returns the bytes moved (fewer
 * than n on an error, errno set), or -1 when splice cannot be used between
 * these two at all (nothing moved).
 */
int64_t splice_to_pipe(int fd, uint64_t off, uint64_t n, int out, int (*wait)(void *ctx),
		       void (*took)(void *ctx, uint64_t k), void *ctx);
/* A sparse file's next data extent at or after pos, below end:
 * [*data, *hole), *data == end when a hole runs to end (or the file
 * shrank: the caller's stat after the read sees it); -1 when the file
 * system cannot say (read everything).  Holes read as zeros. */
int file_next_data(int fd, uint64_t pos, uint64_t end, uint64_t *data, uint64_t *hole);

/*
 * The version of an external library as the program runs with it, for
 * `ctxpack --version`.  The module that links a library reports it through
 * its own X_lib_info(fn, arg) (pack_lib_info, idx_lib_info, reg_lib_info),
 * calling fn once per library with the library's pkg-config name
 * ("libzstd"), the version it runs with, the version of the headers it was
 * built with when that is another (else NULL) and what else the library
 * says of itself (its own dependencies; else NULL).  The strings are
 * borrowed for the call.
 */
typedef void (*lib_info_fn)(void *arg, const char *name, const char *version,
			    const char *built, const char *detail);

/* Hex encoding: out must hold 2*n+1 bytes. */
void hex_encode(char *out, const unsigned char *in, size_t n);

/* Parse a non-negative decimal integer strictly (whole string). */
int parse_u64(const char *s, uint64_t *out);
/* Parse "30s", "15m", "12h", "7d", "2w" (or plain seconds) into seconds. */
int parse_duration(const char *s, uint64_t *secs);

/*
 * Write a file atomically: create "<path>.tmp.<pid>.<n>" beside it, and
 * rename it over path on commit.  atomic_abort removes the temporary.
 * The commit fsyncs the data first unless nosync was set after
 * atomic_open: for outputs that can be made again (an archive), where a
 * crash may lose the new file but an interrupted run never leaves a
 * partial one under the name, and the flush would cost more than the run.
 */
struct atomic_file {
	int fd;
	int nosync;
	char *path;
	char *tmp;
};
int atomic_open(struct atomic_file *af, const char *path, int mode, struct err *e);
int atomic_commit(struct atomic_file *af, struct err *e); /* [fsync +] rename */
void atomic_abort(struct atomic_file *af);
/* The whole of a small file that can be made again (a memo, a stamp):
 * atomic_open, write, commit without fsync; 0 or an err naming path. */
int atomic_write_nosync(const char *path, const void *data, size_t n, int mode, struct err *e);
/*
 * Temporaries open now are also listed where a signal handler can reach
 * them: atomic_unlink_all() removes them, and is async-signal-safe (main's
 * SIGINT/SIGTERM/SIGHUP handler calls it before dying of the signal).  At
 * most ATOMIC_TRACKED at once are listed (more are still removed by their
 * own abort, just not by a signal).
 */
#define ATOMIC_TRACKED 32
void atomic_unlink_all(void);
/*
 * Remove the temporaries "<path>.tmp.<pid>.<n>" beside path that a run
 * killed outright (SIGKILL, a crash) left: those whose pid is no longer a
 * process.  Returns how many were removed.
 */
int atomic_clear_stale(const char *path);

/* mkdir -p; returns 0 or an err. */
int mkdir_p(const char *path, int mode, struct err *e);
/* rm -rf of a path (no error when absent), never following a symlink
 * below it; directories it may not read or write are made 0700 first. */
int remove_tree(const char *path, struct err *e);
/* The same for name in directory dfd (shown names it in messages; NULL:
 * name). */
int remove_tree_at(int dfd, const char *name, const char *shown, struct err *e);

/*
 * The names in directory path (without "." and ".."), unsorted, as a
 * malloc'd array of malloc'd strings; free with dir_names_free.  A missing
 * directory is an empty list when missing_ok, else ERR_NOTFOUND.
 */
int dir_names(const char *path, int missing_ok, char ***names, size_t *n,
	      struct err *e);
void dir_names_free(char **names, size_t n);

/* Where path would be once created: the real path of its longest existing
 * ancestor, then the rest as written (relative paths against the working
 * directory).  malloc'd, or NULL when nothing of it resolves. */
char *path_resolve_future(const char *path);
/* 1 when the directory dir (a canonical path) is path (also canonical) or
 * holds it, by name. */
int path_holds(const char *dir, const char *path);

/* $XDG_CACHE_HOME/ctxpack (or ~/.cache/ctxpack), malloc'd. */
char *cache_home(void);

/*
 * The environment, read once (env.c).  Every variable ctxpack reads is a
 * field here, copied by env_load (main calls it before anything else;
 * env_get loads on first use), and no other file calls getenv: this struct
 * is the complete list of what the environment changes.  Unset is NULL,
 * and so is set but empty except where empty means something else to the
 * program that reads it (env.c's table: PATH, SOURCE_DATE_EPOCH, which is
 * an error then, and DOCKER_CONTEXT); values are as written: each user
 * parses its own and names the variable in its error.  A program that
 * changes its own environment (the unit tests) calls env_load again.
 */
struct env_vars {
	const char *home;               /* HOME */
	const char *xdg_cache_home;     /* XDG_CACHE_HOME: cache_home() */
	const char *path;               /* PATH: finding COMMAND's program */
	const char *ld_library_path;    /* LD_LIBRARY_PATH, LD_PRELOAD: which */
	const char *ld_preload;         /*   libcurl the loader finds (reg_ver.c) */
	const char *source_date_epoch;  /* SOURCE_DATE_EPOCH: archive mtimes */
	const char *ci;                 /* CI: cache commands' progress default */
	const char *github_output;      /* GITHUB_OUTPUT: cache restore's outputs */
	const char *registry_auth_file; /* REGISTRY_AUTH_FILE, DOCKER_CONFIG: */
	const char *docker_config;      /*   credentials; the docker client's */
	const char *docker_host;        /* DOCKER_HOST, DOCKER_CONTEXT, */
	const char *docker_context;     /* DOCKER_BUILDKIT: the daemon and */
	const char *docker_buildkit;    /*   builder `build` hands the context to */
	const char *index;              /* CTXPACK_INDEX: the index directory */
	const char *store;              /* CTXPACK_STORE: the default store */
	const char *pack_cache_max;     /* CTXPACK_PACK_CACHE_MAX: frame store bound */
	const char *stats_keep;         /* CTXPACK_STATS_KEEP: cache stats kept */
	const char *restore_threads;    /* CTXPACK_RESTORE_THREADS: writer threads */
	const char *idle_timeout;       /* CTXPACK_IDLE_TIMEOUT, CTXPACK_CHUNK_SIZE, */
	const char *chunk_size;         /* CTXPACK_MONOLITHIC_MAX, */
	const char *monolithic_max;     /* CTXPACK_OVERLAP_MIN: registry transfer */
	const char *overlap_min;        /*   tuning (store.c) */
	const char *test_hash_delay_ms; /* CTXPACK_TEST_HASH_DELAY_MS: tests only */
};
void env_load(void);
const struct env_vars *env_get(void);
/* The field of the variable NAME, for code that has the name in hand (a
 * variable COMMAND may also be given: builder.c); NAME must be one above. */
const char *env_value(const char *name);

/*
 * sha256, streamed (sha256.c), on the stack or from sha256_new.
 *
 * Its state can be saved at a point of the stream and resumed there: a
 * saved state ("mid", SHA256_MID bytes) holds the hash after the whole
 * 64-byte blocks before the point; resuming at point len (a multiple of 64
 * or not) takes that state, and the caller feeds the len % 64 bytes before
 * the point again, then the rest.
 */
#define SHA256_MID 40
struct sha256 {
	uint32_t h[8];
	uint64_t len;
	unsigned char buf[64];
	size_t n;
	int ni;               /* use the x86 SHA extensions */
};
/* portable: never the SHA extensions (for the tests). */
void sha256_init(struct sha256 *s, int portable);
void sha256_update(struct sha256 *s, const void *p, size_t n);
/* Writes 32 bytes; the object can be reused after sha256_reset. */
void sha256_final(struct sha256 *s, unsigned char out[32]);
void sha256_save(const struct sha256 *s, unsigned char mid[SHA256_MID]);
/* -1 when mid is not a state saved at point len. */
int sha256_resume(struct sha256 *s, const unsigned char mid[SHA256_MID], uint64_t len);
struct sha256 *sha256_new(void);
void sha256_reset(struct sha256 *s);
void sha256_free(struct sha256 *s);
/* "sha256:<64 hex>" of a buffer; out must hold 72 bytes. */
void sha256_digest_str(const void *p, size_t n, char out[72]);
/* Same, of a whole file. */
int sha256_file(const char *path, char out[72], uint64_t *size, struct err *e);

/* ---- time ---- */
/* CLOCK_REALTIME in ns (file times compare with it: the racy rules). */
int64_t time_real_ns(void);
/* CLOCK_MONOTONIC in ns and in ms (deadlines, durations). */
int64_t time_mono_ns(void);
uint64_t time_mono_ms(void);
/* Sleep ms milliseconds, resumed after a signal handler returns. */
void sleep_ms(long ms);

/*
 * Running COMMAND (run.c), the same for `build` and `cache run`, and the
 * helper programs ctxpack asks (a docker client's version, a credential
 * helper).
 * run_catch_signals: from now on SIGINT, SIGTERM and SIGHUP are noted
 * (run_signal() says which came last, 0 for none) and passed on to the
 * COMMAND running, unless the terminal sent them (it sent them to COMMAND
 * too); run_release_signals puts back the handlers there were before.
 * run_start: start argv (execvp, no shell) with fds[0], fds[1], fds[2] as
 * its standard input, output and error (fds NULL or an entry -1: ours),
 * default signal handling and SIGTERM when ctxpack dies; its PID, or -1
 * with errno set.  When it cannot be run, it exits 127 (not found) or 126
 * at once, and the reason is said on stderr unless flags has RUN_HELPER
 * (a helper is not the COMMAND that signals are passed on to either).
 * run_started: whether run_start ever started COMMAND.
 * run_exec: become argv (execvp, no shell), with the signal handling
 * run_start gives COMMAND; a signal caught before is died of instead (as
 * COMMAND would have been sent it).  Returns only when argv cannot be run:
 * the exit status to use (127 not found, 126 else), said on stderr.
 * run_wait: wait for it; the wait status, -1 with errno set.
 * run_exit_status: a wait status as an exit status (128+N for signal N,
 * which is said on stderr; -1: said, and 1).  run_command: catch, start,
 * wait and release in one; the exit status.
 * run_capture: run a helper with in (n bytes, none when 0) on its standard
 * input and the first max bytes of its standard output added to out (the
 * rest is read and dropped); its standard error is ours, or /dev/null with
 * RUN_NO_STDERR; killed after timeout_ms.  The wait status, or -1 with
 * errno set (ETIMEDOUT when it was killed for taking too long).
 */
enum { RUN_HELPER = 1, RUN_NO_STDERR = 2 };
void run_catch_signals(void);
void run_release_signals(void);
int run_signal(void);
int run_started(void);
pid_t run_start(char **argv, const int fds[3], unsigned flags);
int run_exec(char **argv);
int run_wait(pid_t pid);
int run_exit_status(const char *name, int st);
int run_command(char **argv);
int run_capture(char **argv, const void *in, size_t n, struct buf *out, size_t max,
		long timeout_ms, unsigned flags);

#endif
