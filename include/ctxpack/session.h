/*
 * session: one pack of a context, the protocol `pack` and `build` share
 * (issue 16).  It owns the order of the steps that used to be repeated in
 * each command: open the frame store (before the walk: its time is the
 * racy rule's reference), start the speculative copy of the last archive,
 * walk (or replay the walk's snapshot), bring the index up to date, list,
 * write through the frame store, then, once the output is complete, store
 * the hashes the packer took, the snapshot, and bound the store.  `pack`,
 * `build` and `cache save` use it.  Part of the frame store module
 * (src/frames/session.c).
 *
 * Usage:
 *   struct pack_session_opts so = {&wo, &po, fo, index_dir, no_cache, out_fd};
 *   struct pack_session *ps;
 *   if (pack_session_open(&ps, &so, &e)) ... fail
 *   if (pack_session_walk(ps, &e)) ... fail (pack_session_free)
 *   (the caller may look at, and adjust, pack_session_walk_result(ps))
 *   if (pack_session_list(ps, &e)) ... fail
 *   (no_frames: pack_session_known may say the archive is made already)
 *   if (pack_session_write(ps, sink, ctx, &res, &e)) ... fail
 *   (the output is complete: renamed, closed, read by COMMAND)
 *   pack_session_commit(ps);
 *   pack_session_free(ps);   (prints nothing: pack_session_warnings)
 * Each step runs the ones before it that were not run.  Not thread-safe.
 */
#ifndef CTXPACK_SESSION_H
#define CTXPACK_SESSION_H

#include "ctxpack/frames.h"
#include "ctxpack/index.h"
#include "ctxpack/pack.h"
#include "ctxpack/util.h"
#include "ctxpack/walk.h"

struct pack_session_opts {
	struct walk_opts *wo;    /* borrowed until pack_session_free; the
				    session sets its seen and replay hooks */
	const struct pack_opts *po; /* borrowed, checked by the caller */
	struct fc_opts fo;       /* the frame store; versions are filled in */
	const char *index_dir;   /* NULL: as idx_open picks it */
	int no_cache;            /* 1: no frame store, no index, no snapshot */
	int no_frames;           /* 1: the index and its snapshot without the
				    frame store: the archive is packed whole,
				    its digest kept by its key (idx_memo) for
				    pack_session_known; an index that cannot
				    be used is left out without a word */
	int walk_only;           /* 1 (with no_cache 0): no pack follows, only
				    the walk is used (build's directory
				    hand-over): no frame store, no index, a
				    snapshot of the walk without content
				    hashes (idx_snap_stat_only), stored by
				    pack_session_keep_walk */
	int out_fd;              /* the output file, where the last archive may
				    be copied while walking; -1: none (a pipe) */
	pack_sink_file_fn sink_file; /* with out_fd -1, or NULL: stored frames
				    handed to the output as files (with
				    pack_session_write's sink_ctx) */
	/* When set, called at walk_opts.replay's moment (the root open, the
	 * ignore file read, nothing walked yet), before the snapshot's replay,
	 * also without a cache: `build` starts COMMAND there.  It may change
	 * r->dockerfile_rel. */
	void (*before_tree)(void *ctx, const struct walk_opts *o, struct walk_result *r,
			    int rootfd);
	void *before_tree_ctx;
};

struct pack_session;

/* Opens the frame store (not with no_cache or --compress none: nothing to
 * save).  Returns 0 or an err (the store cannot be opened). */
int pack_session_open(struct pack_session **ps, const struct pack_session_opts *o,
		      struct err *e);
/* The walk, then the index's hashes.  A store or index that cannot be
 * used is left out with a warning, not an error. */
int pack_session_walk(struct pack_session *ps, struct err *e);
/* Valid after pack_session_walk, owned by the session. */
struct walk_result *pack_session_walk_result(struct pack_session *ps);
/* The archive list (pack_list_build), owned by the session. */
int pack_session_list(struct pack_session *ps, struct err *e);
const struct pack_list *pack_session_pack_list(const struct pack_session *ps);
/* no_frames: 1 with m filled when this very archive (the same entries,
 * content and settings: its archive key) was written before by a session
 * whose index directory is this one; else 0.  Runs pack_session_list. */
int pack_session_known(struct pack_session *ps, struct idx_memo *m);
/* Write the archive to sink (on the writer thread; see pack_sink_fn).
 * res is filled on success. */
int pack_session_write(struct pack_session *ps, pack_sink_fn sink, void *sink_ctx,
		       struct pack_result *res, struct err *e);
/* The output is complete: the hashes the packer took go to the index, the
 * walk's snapshot is stored, the store is kept within its size (no_frames:
 * the archive's digest and sizes are kept by its key).  Only
 * after a pack_session_write that succeeded. */
void pack_session_commit(struct pack_session *ps);
/* walk_only: the walk was used; its snapshot is stored (unless it came
 * from an unchanged one).  A no-op otherwise. */
void pack_session_keep_walk(struct pack_session *ps);

/* What the session did, for -v and --json.  fc: the frame store used
 * (NULL: none, the cache was off or could not be used); ist: the index's
 * counts (NULL: no index was read); snapshot: idx_snap_name's word. */
const struct fc *pack_session_fc(const struct pack_session *ps);
const struct fc_stats *pack_session_fc_stats(const struct pack_session *ps);
const struct idx_stats *pack_session_idx_stats(const struct pack_session *ps);
const char *pack_session_snapshot(const struct pack_session *ps);
/* Calls fn for each warning (the store, the index), in order. */
void pack_session_warnings(const struct pack_session *ps, void (*fn)(const char *msg));

/* The pack failed: stop the speculative copy (out_fd is cut back to where
 * it was) before the caller drops the output.  NULL is a no-op. */
void pack_session_cancel(struct pack_session *ps);
/* Cancels what runs and frees.  NULL is a no-op. */
void pack_session_free(struct pack_session *ps);

#endif
