/*
 * Internals of the frame store shared by frames.c (files, keys, eviction)
 * and the pack side (fc_pack.c and the files of fc_pack_internal.h).  Not
 * for other modules.
 */
#ifndef CTXPACK_FC_INTERNAL_H
#define CTXPACK_FC_INTERNAL_H

#include <pthread.h>

#include "ctxpack/frames.h"
#include "ctxpack/index.h"

struct fc {
	char *dir;            /* the store's root */
	char *frames_dir;     /* dir/frames */
	char *archives_dir;   /* dir/archives */
	char *versions;
	uint64_t max;         /* the size bound */
	int explicit_dir;     /* the directory was given (fc_opts.dir) */
	int64_t t0_ns;        /* when opened: the racy rule's reference */
	uint64_t added;       /* bytes stored through this handle (atomic) */
	struct buf warn;      /* guarded by mu */
	pthread_mutex_t mu;
};

/* Add a warning (thread-safe; only the first few are kept). */
void fc_warn(struct fc *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define FC_SHA_MID SHA256_MID /* a saved sha256 state (util.h) */

/* What a frame file looked like when its bytes were last checked: while
 * these still match (with the size), the file was not written since.  The
 * LRU touch sets only atime, which keeps mtime. */
struct fc_stamp {
	uint64_t ino;
	int64_t mtime_ns;
};

void fc_stamp_of(const void *stat_buf, struct fc_stamp *s);
/* Mark a store file used (atime = now, mtime kept). */
void fc_touch(int fd);

/* An archive manifest. */
struct fc_manifest {
	unsigned char key[FC_KEY_LEN];
	uint64_t nframes;
	uint64_t bytes;       /* the archive's size: the sum of lens */
	uint64_t entries;
	char digest[72];      /* "sha256:<64 hex>" */
	unsigned char (*fkeys)[FC_KEY_LEN];
	uint64_t *lens;       /* each frame's payload length */
	struct fc_stamp *stamps; /* each frame file's, when last checked */
	unsigned char (*mids)[FC_SHA_MID]; /* the sha256 state at each frame's start */
	int64_t made_ns;      /* fc_open time of the run that made it: files
				 changed since have a later ctime */
	/* Each frame's first entry (for the look-ahead of fc_spec): its path,
	 * nlen[k] bytes at names + noff[k], and FC_FIRST_* flags; all NULL
	 * when not known (fc_manifest_write then writes FC_FIRST_NONE). */
	char *names;
	uint64_t *noff;
	uint32_t *nlen;
	uint8_t *nfl;
};

/*
 * fc_ahead.c: encode again, from the tree under root (rootfd) as it is
 * now, the entries that the stored frame old_key holds; out gets the
 * frame, key its key (computed from the bytes encoded).  The files not
 * changed since made_ns (the start of the pack whose archive holds the
 * frame) are taken from the stored frame.  0, or -1 when the frame does
 * not qualify or anything fails (nothing to report: the look-ahead is
 * only an attempt).
 */
int fc_ahead_frame(struct fc *c, const unsigned char old_key[FC_KEY_LEN], int64_t made_ns,
		   const char *root, int rootfd, const struct pack_opts *o,
		   const unsigned char settings[FC_KEY_LEN], struct buf *out,
		   unsigned char key[FC_KEY_LEN]);

#define FC_FIRST_MID 1u   /* the frame starts inside the entry's data */
#define FC_FIRST_EOA 2u   /* the end-of-archive frame: no entry */
#define FC_END_MID 4u     /* the frame ends inside an entry's data */
#define FC_FIRST_NONE 8u  /* not recorded */

/* 1 when found and intact (m filled; release it), 0 when absent or
 * damaged (a damaged one is removed).  Touches it when found. */
int fc_manifest_read(struct fc *c, const unsigned char key[FC_KEY_LEN],
		     struct fc_manifest *m);
int fc_manifest_write(struct fc *c, const struct fc_manifest *m, struct err *e);
void fc_manifest_release(struct fc_manifest *m);

/*
 * The last archive packed from a context root with given settings, for
 * resuming its sha256 after an edit: archives/last-<32 hex>, where the
 * name is fc_last_key(root, settings).
 */
void fc_last_key(const char *root, const unsigned char settings[FC_KEY_LEN],
		 unsigned char lk[FC_KEY_LEN]);
/* 0 and the archive key, or -1. */
int fc_last_read(struct fc *c, const unsigned char lk[FC_KEY_LEN],
		 unsigned char akey[FC_KEY_LEN]);
void fc_last_write(struct fc *c, const unsigned char lk[FC_KEY_LEN],
		   const unsigned char akey[FC_KEY_LEN]);

/* Open the frame file of key and check its size and header against len
 * (or any length when len is UINT64_MAX): returns the fd positioned at
 * the payload, or -1 (absent: *damaged 0; wrong: removed, *damaged 1).
 * stamp may be NULL. */
int fc_frame_open(struct fc *c, const unsigned char key[FC_KEY_LEN], uint64_t len,
		  unsigned char sum[16], uint64_t *plen, int *damaged, struct fc_stamp *stamp);
/* fc_frame_get and fc_frame_put, also giving the file's stamp. */
int fc_frame_read(struct fc *c, const unsigned char key[FC_KEY_LEN], struct buf *out,
		  int *damaged, struct fc_stamp *stamp);
int fc_frame_store(struct fc *c, const unsigned char key[FC_KEY_LEN], const void *p,
		   size_t n, struct fc_stamp *stamp, struct err *e);
/* Check a payload against the sum from its header. */
int fc_payload_ok(const void *p, size_t n, const unsigned char sum[16]);
/* Remove a damaged frame file. */
void fc_frame_drop(struct fc *c, const unsigned char key[FC_KEY_LEN]);

/* Little-endian helpers. */
static inline void fc_put32(unsigned char *p, uint32_t v)
{
	int i;

	for (i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint32_t fc_get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline void fc_put64(unsigned char *p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint64_t fc_get64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

#endif
