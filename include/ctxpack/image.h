/*
 * image: `ctxpack image` (issue 18).  An OCI image assembled without a
 * builder: a base image's manifest and config (never its layers unless an
 * output needs them), one layer per directory given (packed with the
 * archive rules below a path prefix: pack.h), the config a Dockerfile
 * would set, pushed to registries and written to OCI layouts.
 *
 * Content addressing end to end: a layer's key is the frame cache's
 * archive key of its entries (their content hashes from the index, the
 * prefix and the pack settings), and a layer record under
 * <cache>/layers/<key> maps it to the compressed blob's digest and size
 * and the tar's digest (diff_id).  An unchanged layer is thus known from
 * a stat of each file, without reading them; it is neither compressed nor
 * sent again: an output that has its blob is only asked (HEAD), and one
 * that lacks it gets it from the frame store.  A changed layer is packed
 * through the frame cache, so only its changed frames are compressed.
 *
 * Layering: image uses cache (the index, the frame store), pack and
 * registry; only the cli uses image.  docs/image.md is the user's guide.
 */
#ifndef CTXPACK_IMAGE_H
#define CTXPACK_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "ctxpack/frames.h"
#include "ctxpack/index.h"
#include "ctxpack/registry.h"
#include "ctxpack/util.h"

#define IMG_RECORD_FORMAT 1
/* The history comment of the layers ctxpack adds. */
#define IMG_HISTORY_COMMENT "ctxpack image"
/* Records unused this long are removed (a record is a few hundred bytes;
 * its layer's frames are long gone from the frame store by then). */
#define IMG_RECORD_MAX_AGE (30 * 24 * 3600)
/* Temporary files older than this are left over from a killed run. */
#define IMG_TMP_STALE_S 3600
/* The largest base config read. */
#define IMG_CONFIG_MAX (8u << 20)

/* One --layer SRC:DEST. */
struct img_layer_spec {
	const char *src;     /* a directory, walked as a build context (its own
				.dockerignore applies, as to `COPY . DEST`) */
	const char *dest;    /* absolute path in the image: "/app" */
	const char *ignore_file; /* NULL: SRC's own (SRC/.dockerignore); else
				    this file's patterns, matched relative to SRC */
};

/* A log line for -v (no newline). */
typedef void (*img_log_fn)(void *arg, const char *msg);

struct img_opts {
	const char *from;            /* a reference, or "scratch" */
	const char *platform;        /* "os/arch[/variant]" to pick from an index,
					NULL: linux/amd64 (then not checked
					against a single-platform base) */
	const struct img_layer_spec *layers;
	size_t nlayers;
	/* the config: reg_config_edit without what image fills in (created,
	 * base_layers, diff_ids, history, and os/architecture/variant) */
	struct reg_config_edit edit;
	/* the history lines of the config edits, in order (Dockerfile
	 * instructions: "ENV A=1", "CMD [\"x\"]"), borrowed */
	const char *const *edit_history;
	size_t nedit_history;
	int compress;                /* PACK_GZIP (default) or PACK_ZSTD, PACK_NONE */
	int level;                   /* 0: the codec's default */
	unsigned threads;            /* pack workers, 0: default */
	int64_t created;             /* seconds: every entry's mtime and the
					config's "created" (SOURCE_DATE_EPOCH) */
	const char *index_dir;       /* NULL: the default index */
	struct fc_opts fo;           /* the frame store (dir, max_bytes);
					versions are filled in */
	int no_cache;                /* no index, no frame store, no records */
	const char *const *outputs;  /* "host/repo[:tag]" or "oci:DIR[:tag]" */
	size_t noutputs;
	struct reg_opts ro;          /* for every store (base and outputs) */
	img_log_fn log;              /* NULL: silent */
	void *log_arg;
};
void img_opts_init(struct img_opts *o);

/* A layer of the image, as built. */
struct img_layer {
	const char *src;             /* borrowed from the opts; NULL: the base's */
	const char *dest;
	struct reg_desc desc;        /* media type, digest, size (owned) */
	char diff_id[REG_DIGEST_SIZE]; /* the tar's sha256 (base: from its config) */
	uint64_t entries;            /* entries packed (not the prefix's directories) */
	int reused;                  /* known from its record: nothing read or packed */
	int packed;                  /* packed in this run (the frame cache may
					have served some or all frames) */
	int made;                    /* its blob was written out (packed, or
					taken from the frame store for an output
					that lacked it) */
	struct fc_stats fst;         /* the frame cache's account, when made */
	struct idx_stats ist;        /* the index's, for new layers */
};

/* What an output received. */
struct img_output {
	char *ref;                   /* canonical "host/repo:tag", "oci:DIR:tag" */
	uint64_t sent;               /* blob bytes uploaded (or copied into a layout) */
	unsigned uploaded;           /* blobs sent */
	unsigned skipped;            /* blobs it had */
	unsigned mounted;            /* base blobs mounted from the base's repository */
	unsigned copied;             /* base blobs fetched from the base and sent */
};

struct img_result {
	char digest[REG_DIGEST_SIZE];        /* the manifest's */
	uint64_t size;
	char config_digest[REG_DIGEST_SIZE];
	uint64_t config_size;
	char *base;                  /* "ref@sha256:..." resolved, NULL for scratch */
	struct img_layer *layers;    /* the base's, then the new ones */
	size_t nlayers;
	size_t nbase;                /* how many of them are the base's */
	struct img_output *outputs;
	size_t noutputs;
	struct buf manifest;         /* the bytes */
	struct buf config;
	struct buf warnings;         /* lines for the user, or empty */
};
void img_result_release(struct img_result *r);

/*
 * Build the image and write it to every output: the base resolved (an
 * index to o->platform), each layer walked, indexed and either known from
 * its record or packed, then per output the blobs it lacks (base blobs
 * mounted from the base's repository when on the same registry, else
 * fetched from the base), the config, and the manifest last under the
 * output's tag (default "latest").  With no output the image is only
 * computed (its digest, the layers packed into the cache).  Errors name
 * the layer's source, the reference or the file; a failed output may hold
 * blobs but never the manifest.  r is filled (also on failure: what was
 * done) and must be released.
 */
int img_build(const struct img_opts *o, struct img_result *r, struct err *e);

/*
 * Parsing helpers for the command line (pure).
 */
/* "SRC:DEST" split at the last ":/" (DEST absolute); ERR_USAGE. The
 * strings point into a copy owned by the caller (*buf, malloc'd). */
int img_parse_layer(const char *arg, struct img_layer_spec *l, char **buf, struct err *e);
/* "/app", "/usr/src/app/" -> "app", "usr/src/app" (malloc'd); "/" -> "";
 * ERR_USAGE for a relative path or one with "." or ".." components. */
int img_dest_prefix(const char *dest, char **prefix, struct err *e);
/* "8000" -> "8000/tcp"; "53/udp"; ERR_USAGE otherwise (malloc'd). */
int img_parse_port(const char *arg, char **out, struct err *e);
/*
 * A CMD or ENTRYPOINT as a Dockerfile takes it: a JSON array of strings
 * (the exec form), else a command line run by /bin/sh -c (the shell
 * form).  *v is a malloc'd array of malloc'd strings.  Returns 0, or 1
 * when arg starts with '[' but is not a JSON array of strings (then the
 * shell form, as Docker does, and the caller may warn).
 */
int img_parse_command(const char *arg, char ***v, size_t *n);
void img_strv_free(char **v, size_t n);
/* "linux/amd64", "linux/arm64/v8": the parts (malloc'd; variant may be
 * NULL); ERR_USAGE. */
int img_parse_platform(const char *arg, char **os, char **arch, char **variant,
		       struct err *e);

/*
 * Layer records (for the tests).
 */
struct img_record {
	char media_type[96];
	char digest[REG_DIGEST_SIZE];
	uint64_t size;
	char diff_id[REG_DIGEST_SIZE];
	uint64_t entries;
};
/* 1 found and intact, 0 absent or damaged (a damaged one is removed). */
int img_record_get(const char *dir, const unsigned char key[FC_KEY_LEN],
		   struct img_record *r);
/* Remove records unused for max_age seconds (a use sets the mtime) and
 * temporaries of killed runs (IMG_TMP_STALE_S); best effort. */
void img_record_sweep(const char *dir, int64_t max_age);
/* Written to a temporary name and renamed. */
int img_record_put(const char *dir, const unsigned char key[FC_KEY_LEN],
		   const struct img_record *r, struct err *e);

#endif
