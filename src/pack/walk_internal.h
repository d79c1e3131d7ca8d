/*
 * Internals of the walker (include/ctxpack/walk.h), shared by its files:
 * walk.c (the front: the ignore file, the result, the hard-link pass),
 * walk_dir.c (one directory read, matched and visited), walk_pool.c (the
 * tasks and the threads that walk them) and walk_merge.c (the tasks'
 * entries put back in archive order).  Not for other modules
 * (scripts/check-includes).
 */
#ifndef CTXPACK_WALK_INTERNAL_H
#define CTXPACK_WALK_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "ctxpack/walk.h"

#define WALK_CANCELLED 1       /* a walk stopped past an earlier failure */

/* walk_opts.flags, for tests: split the walk into subtree tasks at every
 * chance (any depth, from the first name on, a long queue), so that small
 * trees exercise the parallel walk.  Same result. */
#define WALK_SPLIT_EAGER (1u << 3)

/* The strings of a walk: walker arenas, chained into the result's. */
struct arena_chunk {
	struct arena_chunk *next;
	size_t used, cap;
	char data[];
};

struct task;

/* A handed-off subtree: its entries go right before w->v[pos] (task's w). */
struct slot {
	size_t pos;
	struct task *t;
};

/* One subtree, and where its entries are. */
struct task {
	struct task *qnext;      /* in the queue */
	struct task *older;      /* in walk_ctx.all */
	struct task *parent;     /* NULL for the root */
	int dfd;                 /* the open directory, until walked */
	char *prefix;            /* its path with a trailing '/' (NULL: root) */
	size_t prefix_len;
	uint8_t *flags;          /* its ignore flags (NULL: root) */

	const struct walker *w;  /* who walked it: its entries are */
	size_t start, end;       /* w->v[start, end), with the slots' spliced in */
	struct slot *slots;      /* in walk order */
	size_t nslots, aslots;
	size_t total;            /* its entries and its subtasks' (merge) */
	int status;              /* 0, a negative error code, or WALK_CANCELLED */
	struct err *err;         /* with a negative status */
};

/*
 * One walk: read-only settings, and the task queue shared by the threads
 * (under mu).  queued, idle, started and failed are also read without the
 * lock, as hints.
 */
struct walk_ctx {
	const struct walk_opts *o;
	const struct ign *ig;
	size_t npat;
	const char *root;
	int is_root;             /* euid 0: every file is readable */
	unsigned nthreads;       /* 1: serial, no locking at all */
	unsigned qmax, spawn_depth;
	size_t spawn_after;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct task *head, **tail; /* the queue */
	struct task *all;        /* every subtask, newest first */
	unsigned queued, idle;
	unsigned active;         /* tasks queued or being walked, root included */
	int started;             /* workers were started (or tried) */
	unsigned nworkers;
	pthread_t tid[WALK_THREADS_MAX];
	struct walker *walkers;  /* nthreads; [0] is the calling thread's */
	int failed;              /* err_pos holds the earliest failure */
	struct buf err_pos;
};

/*
 * One thread's walking state and findings.  The tasks it walks append to
 * its entry vector one after the other; w->t is the one being walked.
 */
struct walker {
	struct walk_ctx *c;
	struct task *t;
	struct walk_entry *v;
	size_t n, alloc;
	struct arena_chunk *arena;
	uint64_t n_excluded_files;
	uint64_t n_excluded_bytes;
	uint64_t n_sockets_skipped;
	struct buf path;         /* current directory path, with trailing '/' (or empty) */
	size_t *pending;         /* indices of excluded ancestor dirs not yet flipped */
	size_t npending, apending;
	size_t nvisited;         /* names visited (the spawn threshold) */
	unsigned pruned;         /* WALK_FULL: inside an excluded directory the
				    walk's flavour would not enter, whose
				    entries are all excluded (> 0) */
	char *dbuf;              /* getdents64 buffer, DENTS_BUF bytes */
	int noted;               /* this task's failure is recorded in c */
	struct err *e;
};

/* ---- walk_dir.c ---- */

/*
 * Read the directory dfd (owned: closed here) of w's current path, sort
 * its names and visit them, descending or handing subdirectories off.
 * pflags are the directory's ignore flags.  0, an err code (in w->e), or
 * WALK_CANCELLED.
 */
int wk_walk_dir(struct walker *w, int dfd, const uint8_t *pflags);
/* Record that w failed at name in the current directory (NULL: at the
 * directory itself), unless an earlier failure is known. */
void wk_note_failure(struct walker *w, const char *name);

/* ---- walk_pool.c ---- */

/* Hand the included directory at depth off as a task, rather than descend? */
int wk_want_spawn(const struct walker *w, unsigned depth);
/* Queue the directory name (open as cfd, owned; its ignore flags are
 * flags) as a task whose entries go where w's next entry would. */
void wk_spawn(struct walker *w, int cfd, const char *name, size_t nlen,
	      const uint8_t *flags);
/* Walk the tree under fd (owned) into r (its ign and root set). */
int wk_walk_tree(const struct walk_opts *o, struct walk_result *r, int fd, struct err *e);

/* ---- walk_merge.c ---- */

/* Everything found into r, or the first failure in walk order into e;
 * frees the tasks and the walkers' state. */
int wk_merge(struct walk_ctx *c, struct task *root, struct walk_result *r, struct err *e);

#endif
