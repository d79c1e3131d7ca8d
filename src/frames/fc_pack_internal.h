/*
 * Internals of the pack side of the frame store, shared by its files and
 * by no other module:
 *   fc_pack.c      the paths, tried in order (fc_pack_write);
 *   fc_run.c       one pack's frames: plan, keys, what is in the store,
 *                  pack_write's hooks, the manifest written at the end;
 *   fc_copy.c      stored frames to the output (copied or through the sink);
 *   fc_spec.c      the copy of the last archive made during the walk, and
 *                  its look-ahead thread;
 *   fc_assemble.c  the last archive plus the few frames an edit changed;
 *   fc_writer.c    assemble's writer thread.
 */
#ifndef CTXPACK_FC_PACK_INTERNAL_H
#define CTXPACK_FC_PACK_INTERNAL_H

#include <pthread.h>
#include <sys/types.h>

#include "fc_internal.h"

/* ---- fc_run.c ---- */

/*
 * One pack through the store (fc_run.c): the frames planned for the list
 * (pack_plan is a pure function of the list, so this plan is the one
 * pack_write makes), every frame's key, computed once up front, and what
 * is known of each frame as the paths go: present (copied from the store
 * or stored), its length, its file's stamp, the sha256 state at its start.
 */
struct fc_run {
	struct fc *c;
	const struct pack_list *l;
	const struct pack_opts *o;
	int rootfd;
	unsigned char settings[FC_KEY_LEN];
	struct pack_frame *plan;
	size_t nplan;
	unsigned char (*keys)[FC_KEY_LEN];
	unsigned char *keyed;      /* keys[k] is valid */
	unsigned char *present;    /* frame k is in the store (set by one worker) */
	uint64_t *lens;            /* its payload length, once present */
	struct fc_stamp *stamps;   /* its file's stamp, once present */
	unsigned char (*mids)[FC_SHA_MID]; /* the sha256 state at its start */
	int have_mids;             /* mids[] is complete */
	struct fc_stats *st;       /* counters, updated atomically */
};

static inline void fc_count(uint64_t *p, uint64_t n)
{
	__atomic_fetch_add(p, n, __ATOMIC_RELAXED);
}

/* Start a run (memset, then rootfd, the added entries' content hashes and
 * the settings key); 0, or an err when l->root cannot be opened. */
int fc_run_open(struct fc_run *r, struct fc *c, struct pack_list *l,
		const struct pack_opts *o, struct fc_stats *st, struct err *e);
/* Plan the frames and key them (st->frames, st->frames_unkeyed). */
void fc_run_plan(struct fc_run *r);
void fc_run_release(struct fc_run *r);
/* Offer frame k's fresh bytes to the store (thread-safe across frames). */
void fc_run_store(struct fc_run *r, size_t k, const void *p, size_t n);
/* pack_write's hooks for this run (frame by frame, PACK_CACHE_OWN_DIGEST). */
void fc_run_hooks(struct fc_run *r, struct pack_frame_cache *hooks);
/* How many of the first `max` frames of m are the run's frames 0.. */
size_t fc_common_prefix(const struct fc_run *r, const struct fc_manifest *m, size_t max);
/* Write the manifest of the archive just made (akey) when every frame is in
 * the store, and make it the context's last (lk); a failure warns. */
void fc_keep_archive(struct fc_run *r, const unsigned char akey[FC_KEY_LEN],
		     const unsigned char lk[FC_KEY_LEN], const struct pack_result *res);

/* ---- fc_copy.c ---- */

/* One copy buffer, and whether copying straight to the output is on:
 * to an output fd, or through the caller's sink_file. */
struct fc_copier {
	char *buf;
	int off;                /* no copying: no output, or it failed */
	pack_sink_file_fn file; /* with out < 0: the output takes the bytes */
	void *file_ctx;
	int out_pipe;           /* out is a pipe (spliced into), 0, or -1: unknown */
};

void fc_copier_init(struct fc_copier *cp, int out_fd, pack_sink_file_fn file, void *file_ctx);
void fc_copier_release(struct fc_copier *cp);
/* n bytes of fd from off to out, at its position (at < 0) or at offset at,
 * and through sha when not NULL; the bytes copied (fewer on an error,
 * which turns the copier off). */
uint64_t fc_copy_range(int fd, uint64_t off, uint64_t n, int out, off_t at,
		       struct sha256 *sha, struct fc_copier *cp);
/* The stored frame key of n payload bytes, opened (and its mtime touched)
 * when it is a regular file of that size with the stamp its bytes were
 * checked under; -1 when not (missing, or written since). */
int fc_frame_open_stamped(struct fc *c, const unsigned char key[FC_KEY_LEN], uint64_t n,
			  const struct fc_stamp *stamp);
/* One stored frame for output, copied to out_fd or read into b (fc_copy.c
 * says when); 1, or 0 when missing or damaged. */
int fc_frame_bytes(struct fc *c, const unsigned char key[FC_KEY_LEN], uint64_t n,
		   struct fc_stamp *stamp, int need_bytes, int out_fd, struct fc_copier *cp,
		   struct buf *b, uint64_t *copied, int *damaged);
/* Send frames [*sent, m->nframes) of m: 1 when all were sent, 0 when one
 * is missing or damaged, or the sink's error. */
int fc_serve(struct fc *c, struct fc_manifest *m, pack_sink_fn sink, pack_sink_file_fn sink_file,
	     void *sink_ctx, int out_fd, size_t *sent, int *refreshed, struct fc_stats *st,
	     struct err *e);

/* ---- fc_spec.c ---- */

/*
 * The look-ahead, on the copy's thread: once the walk reports an entry
 * changed since the last archive was made (a ctime after its made_ns),
 * the frame of the last archive that holds it is made again from the
 * tree (fc_ahead_frame), and the frames after it are read from the store,
 * hashed and written at their new offsets, all while the walk goes on:
 * after a small edit, the sha256 of the rest of the archive is what
 * costs, and it no longer waits for the walk.  fc_pack_write takes the
 * result only when the new archive's keys say it is this frame and the
 * last archive's frames after it; otherwise the output is cut back to
 * the frames copied before it and the usual paths go on from there.
 */
struct ahead {
	int state;               /* 0 none, 1 complete, -1 given up */
	size_t j;                /* the frame made again */
	unsigned char key[FC_KEY_LEN];
	struct buf frame;        /* its bytes */
	unsigned char (*mids)[FC_SHA_MID]; /* the sha256 state at frames j.. */
	uint64_t bytes;          /* the archive's size */
	char digest[72];
};

/* What the thread is told (fc_spec.quit). */
#define SPEC_WALKED 1    /* no more changes will be seen */
#define SPEC_NO_AHEAD 2  /* copy up to the limit, no look-ahead (or stop it) */
#define SPEC_STOP 3      /* stop now */

struct fc_spec {
	struct fc *c;
	int fd;
	off_t start;             /* where out_fd was */
	unsigned char akey[FC_KEY_LEN];
	struct fc_manifest m;    /* the archive being copied */
	pthread_t tid;
	size_t limit;            /* copy no frame from this one on (under mu) */
	size_t done;             /* frames copied whole (the thread's until joined) */
	off_t extent;            /* the end of what was written (the thread's) */
	int joined;

	struct pack_opts o;
	unsigned char settings[FC_KEY_LEN];
	char *root;
	int rootfd;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char *hint;              /* the first changed path seen (under mu) */
	unsigned nhints;         /* changed paths seen (under mu) */
	int quit;                /* under mu: SPEC_* */
	size_t aj;               /* the frame being made again (under mu), or SIZE_MAX */
	struct ahead a;          /* the thread's until joined */
};

/* The frame of m that holds path, or SIZE_MAX (m has no first names). */
size_t fc_frame_of(const struct fc_manifest *m, const char *path);
/* Let the copy go on up to frame `limit` (SIZE_MAX: all of it) with quit
 * (SPEC_*), then wait for it; a no-op once joined. */
void fc_spec_join(struct fc_spec *s, size_t limit, int quit);
/* Keep the first `keep` frames of the copy, cut the rest (now, or later
 * with fc_cut_after when defer is not NULL) and free s. */
int fc_spec_finish(struct fc_spec *s, size_t keep, uint64_t *kept_bytes, off_t *defer,
		   struct err *e);
/* After a deferred fc_spec_finish or fc_ahead_take: cut what the output
 * did not overwrite (end < 0: nothing to cut). */
int fc_cut_after(int fd, off_t end, struct err *e);
/* The frame the look-ahead must have made for its result to be this
 * archive, or SIZE_MAX. */
size_t fc_ahead_target(const struct fc_run *r, struct fc_spec *s);
/* Take the look-ahead's archive as the run's (the output is complete) and
 * free s; *cut_fd and *cut_end for fc_cut_after. */
int fc_ahead_take(struct fc_run *r, struct fc_spec *s, struct pack_result *res, int *cut_fd,
		  off_t *cut_end, struct err *e);

/* ---- fc_assemble.c ---- */

/*
 * The archive from the context's last archive p plus at most a few new
 * frames; `kept` frames are already out.  1 (done, res filled), 0 (not
 * applicable, nothing sent) or an error.
 */
int fc_assemble(struct fc_run *r, const struct fc_manifest *p, size_t kept, pack_sink_fn sink,
		pack_sink_file_fn sink_file, void *sink_ctx, int out_fd, struct pack_result *res,
		struct err *e);

/* ---- fc_writer.c ---- */

/* Two slots, in turn: the main thread fills one while the writer thread
 * sends the other. */
struct fc_writer {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t tid;
	int started;
	pack_sink_fn sink;
	void *ctx;
	struct buf bufs[2];
	const char *ptr[2];     /* what slot i sends (bufs[i] or an encoded frame) */
	size_t len[2];
	int full[2];
	int quit;
	int failed;             /* the sink failed: err, and nothing more is sent */
	struct err err;
};

void fc_writer_init(struct fc_writer *wr, pack_sink_fn sink, void *ctx);
/* Slot i's buffer, once the writer is done with it. */
struct buf *fc_writer_slot(struct fc_writer *wr, int i);
/* Send p (valid until slot i is free again) from slot i, on the writer
 * thread (started on first use; here when it cannot start); the sink's
 * first error. */
int fc_writer_push(struct fc_writer *wr, int i, const char *p, size_t n, struct err *e);
/* Wait for everything to be sent and release; the sink's first error. */
int fc_writer_finish(struct fc_writer *wr, struct err *e);

#endif
