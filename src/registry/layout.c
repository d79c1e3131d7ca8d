/*
 * The local OCI image layout (image-spec image-layout.md): oci-layout,
 * index.json with one descriptor per tag (annotation
 * org.opencontainers.image.ref.name), blobs/sha256/<hex>.
 *
 * Why it is safe with several processes: blobs are content-addressed and
 * written to a temporary then renamed, so two writers of one blob both
 * produce the same file; index.json is rewritten (temporary + rename) only
 * while holding an flock on index.json.lock, so concurrent tag updates do
 * not lose each other; readers never lock and see the old or the new file.
 *
 * What a layout holds is untrusted (it may be a shared directory): every
 * file read is opened non-blocking and must be a regular file (a FIFO, a
 * device or a link to one is refused, not waited on), reads are capped,
 * and a blob is never read past the size its descriptor declares.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "reg_impl.h"

#define INDEX_MAX (64u << 20)
#define LAYOUT_FILE "{\"imageLayoutVersion\":\"1.0.0\"}"

static char *blob_path(struct reg_store *s, const char *digest)
{
	return xasprintf("%s/blobs/sha256/%s", s->dir, digest + 7);
}

/*
 * Open path for reading: non-blocking (a FIFO must not hang the open) and
 * a regular file only.  ERR_NOTFOUND when it does not exist, ERR_CORRUPT
 * when it is something else.  *size gets its size.
 */
static int open_regular(const char *path, uint64_t *size, struct err *e)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR
			       ? err_set(e, ERR_NOTFOUND, "%s does not exist", path)
			       : err_errno(e, "cannot open %s", path);
	if (fstat(fd, &st)) {
		int ret = err_errno(e, "cannot stat %s", path);

		close(fd);
		return ret;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(e, ERR_CORRUPT, "%s is not a regular file", path);
	}
	/* back to blocking reads for a regular file */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	if (size)
		*size = (uint64_t)st.st_size;
	return fd;
}

/* Read a whole regular file of at most max bytes into b (reset first). */
static int read_regular(const char *path, size_t max, struct buf *b, struct err *e)
{
	char tmp[65536];
	int fd = open_regular(path, NULL, e), ret = 0;

	if (fd < 0)
		return fd;
	buf_reset(b);
	for (;;) {
		ssize_t n = read(fd, tmp, sizeof(tmp));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = err_errno(e, "cannot read %s", path);
			break;
		}
		if (!n)
			break;
		if (b->len + (size_t)n > max || buf_add(b, tmp, (size_t)n)) {
			ret = err_set(e, ERR_CORRUPT, "%s is larger than %zu bytes", path, max);
			break;
		}
	}
	close(fd);
	return ret;
}

static int write_small(const char *path, const void *p, size_t n, struct err *e)
{
	struct atomic_file af;

	if (atomic_open(&af, path, 0644, e))
		return e->code;
	if (write_all(af.fd, p, n)) {
		atomic_abort(&af);
		return err_errno(e, "cannot write %s", path);
	}
	return atomic_commit(&af, e);
}

static int lock_index(struct reg_store *s, int *fd, struct err *e)
{
	char *path = xasprintf("%s/index.json.lock", s->dir);
	int ret = 0;

	*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (*fd < 0) {
		ret = err_errno(e, "cannot open %s", path);
	} else {
		while (flock(*fd, LOCK_EX) < 0) {
			if (errno != EINTR) {
				ret = err_errno(e, "cannot lock %s", path);
				close(*fd);
				*fd = -1;
				break;
			}
		}
	}
	free(path);
	return ret;
}

static void unlock_index(int fd)
{
	if (fd >= 0)
		close(fd); /* releases the flock */
}

/* Read index.json; a missing file is an empty index (*root set). */
static int read_index(struct reg_store *s, json_t **root, struct err *e)
{
	char *path = xasprintf("%s/index.json", s->dir);
	struct buf b = BUF_INIT;
	json_error_t je;
	int ret = 0;

	*root = NULL;
	ret = read_regular(path, INDEX_MAX, &b, e);
	if (ret == ERR_NOTFOUND) {
		err_clear(e);
		ret = 0;
		*root = json_pack("{s:i,s:s,s:[]}", "schemaVersion", 2, "mediaType",
				  REG_MT_INDEX, "manifests");
		goto out;
	}
	if (ret)
		goto out;
	*root = json_loadb(b.data, b.len, 0, &je);
	if (!json_is_object(*root) ||
	    !json_is_array(json_object_get(*root, "manifests"))) {
		json_decref(*root);
		*root = NULL;
		ret = err_set(e, ERR_CORRUPT, "%s is not an OCI image index", path);
	}
out:
	buf_release(&b);
	free(path);
	return ret;
}

static int write_index(struct reg_store *s, json_t *root, struct err *e)
{
	char *path = xasprintf("%s/index.json", s->dir);
	char *txt = json_dumps(root, JSON_COMPACT);
	int ret;

	ret = txt ? write_small(path, txt, strlen(txt), e)
		  : err_set(e, ERR_FAIL, "cannot encode %s", path);
	free(txt);
	free(path);
	return ret;
}

/* Create the layout directory, oci-layout and index.json when missing. */
static int ensure_layout(struct reg_store *s, struct err *e)
{
	char *p = xasprintf("%s/blobs/sha256", s->dir);
	int ret;

	ret = mkdir_p(p, 0755, e);
	free(p);
	if (ret)
		return ret;
	p = xasprintf("%s/oci-layout", s->dir);
	if (access(p, F_OK))
		ret = write_small(p, LAYOUT_FILE, strlen(LAYOUT_FILE), e);
	free(p);
	if (ret)
		return ret;
	p = xasprintf("%s/index.json", s->dir);
	if (access(p, F_OK)) {
		int fd;
		json_t *root;

		ret = lock_index(s, &fd, e);
		if (!ret && access(p, F_OK)) {
			ret = read_index(s, &root, e);
			if (!ret)
				ret = write_index(s, root, e);
			json_decref(root);
		}
		unlock_index(fd);
	}
	free(p);
	return ret;
}

int layout_blob_exists(struct reg_store *s, const char *digest, uint64_t *size,
		       struct err *e)
{
	char *p = blob_path(s, digest);
	struct stat st;
	int ret = 1;

	if (stat(p, &st)) {
		ret = errno == ENOENT || errno == ENOTDIR ? 0
			: err_errno(e, "cannot stat %s", p);
	} else if (!S_ISREG(st.st_mode)) {
		ret = 0; /* not a blob: a push puts one in its place */
	} else if (size) {
		*size = (uint64_t)st.st_size;
	}
	free(p);
	return ret;
}

/* Write a blob from an fd or memory into place, checking its digest. */
static int put_blob(struct reg_store *s, int in, const void *mem, size_t n,
		    const char *digest, uint64_t *written, struct err *e)
{
	char *p = blob_path(s, digest), hex[REG_DIGEST_SIZE];
	struct atomic_file af;
	struct sha256 *h = sha256_new();
	unsigned char md[32];
	uint64_t total = 0;
	int ret;

	ret = ensure_layout(s, e);
	if (ret)
		goto out;
	ret = atomic_open(&af, p, 0644, e);
	if (ret)
		goto out;
	if (in >= 0) {
		struct stat st;

		ret = reg_copy_hash(in, af.fd, h, &total, e, "blob", s,
				    fstat(in, &st) ? 0 : (uint64_t)st.st_size, -1);
	} else {
		sha256_update(h, mem, n);
		total = n;
		if (write_all(af.fd, mem, n))
			ret = err_errno(e, "cannot write %s", af.tmp);
	}
	if (!ret) {
		sha256_final(h, md);
		memcpy(hex, "sha256:", 7);
		hex_encode(hex + 7, md, 32);
		if (strcmp(hex, digest))
			ret = err_set(e, ERR_CORRUPT, "blob %s: the data has digest %s "
				      "(did the file change?)", digest, hex);
	}
	if (ret) {
		atomic_abort(&af);
		goto out;
	}
	ret = atomic_commit(&af, e);
	if (!ret && written)
		*written = total;
out:
	sha256_free(h);
	free(p);
	return ret;
}

/* A blob that is there already: its mtime refreshed, so that a
 * concurrent reg_store_gc keeps it. */
static void keep_blob(struct reg_store *s, const char *digest)
{
	char *bp = blob_path(s, digest);

	utimensat(AT_FDCWD, bp, NULL, 0);
	free(bp);
}

int layout_blob_push_file(struct reg_store *s, const char *path,
			  const char *digest, struct reg_blob_info *info,
			  struct err *e)
{
	int fd, ret;

	ret = layout_blob_exists(s, digest, NULL, e);
	if (ret < 0)
		return ret;
	if (ret == 1) {
		keep_blob(s, digest);
		reg_log(s, "blob %s exists, skipped", digest);
		s->st.blobs_skipped++;
		info->skipped = 1;
		return 0;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_errno(e, "cannot open %s", path);
	ret = put_blob(s, fd, NULL, 0, digest, &info->sent, e);
	close(fd);
	if (!ret)
		s->st.blob_bytes_sent += info->sent;
	return ret;
}

int layout_blob_push_mem(struct reg_store *s, const void *p, size_t n,
			 const char *digest, struct err *e)
{
	int ret = layout_blob_exists(s, digest, NULL, e);

	if (ret < 0)
		return ret;
	if (ret == 1) {
		keep_blob(s, digest);
		return 0;
	}
	return put_blob(s, -1, p, n, digest, NULL, e);
}

int layout_blob_fetch_fd(struct reg_store *s, const char *digest, int64_t size,
			 int fd, struct err *e)
{
	char *p = blob_path(s, digest), hex[REG_DIGEST_SIZE], *what;
	struct sha256 *h = sha256_new();
	unsigned char md[32];
	uint64_t total = 0;
	int in, ret;

	in = open_regular(p, NULL, e);
	if (in < 0) {
		if (in == ERR_NOTFOUND) {
			err_clear(e);
			ret = err_set(e, ERR_NOTFOUND, "blob %s not found", digest);
		} else {
			ret = err_wrap(e, "blob %s", digest);
		}
		goto out;
	}
	/* never more than the descriptor says: a 1 GiB file behind a 34 KB
	 * descriptor costs 34 KB + 1 of reading */
	what = xasprintf("blob %s", digest);
	ret = reg_copy_hash(in, fd, h, &total, e, what, s, size > 0 ? (uint64_t)size : 0,
			    size);
	free(what);
	close(in);
	if (ret)
		goto out;
	s->st.blob_bytes_received += total;
	if (size >= 0 && total != (uint64_t)size) {
		ret = err_set(e, ERR_CORRUPT, "blob %s: %llu bytes, want %lld", digest,
			      (unsigned long long)total, (long long)size);
		goto out;
	}
	sha256_final(h, md);
	memcpy(hex, "sha256:", 7);
	hex_encode(hex + 7, md, 32);
	if (strcmp(hex, digest))
		ret = err_set(e, ERR_CORRUPT, "blob %s: the data has digest %s", digest, hex);
out:
	sha256_free(h);
	free(p);
	return ret;
}

static const char *entry_tag(json_t *d)
{
	return json_string_value(json_object_get(json_object_get(d, "annotations"),
						 REG_ANNOT_REF_NAME));
}

static const char *entry_digest(json_t *d)
{
	return json_string_value(json_object_get(d, "digest"));
}

static int manifest_put(struct reg_store *s, const char *tag, const void *p,
			size_t n, const char *media_type, const char *digest,
			const char *artifact_type, int only_new, struct err *e)
{
	json_t *root = NULL, *arr, *d, *ent;
	size_t i;
	int fd = -1, ret;

	ret = layout_blob_push_mem(s, p, n, digest, e);
	if (ret)
		return ret;
	ret = lock_index(s, &fd, e);
	if (ret)
		return ret;
	ret = read_index(s, &root, e);
	if (ret)
		goto out;
	arr = json_object_get(root, "manifests");
	for (i = json_array_size(arr); i-- > 0;) {
		d = json_array_get(arr, i);
		if (tag ? (entry_tag(d) && !strcmp(entry_tag(d), tag))
			: (!entry_tag(d) && entry_digest(d) && !strcmp(entry_digest(d), digest))) {
			if (only_new) {
				ret = 1; /* someone else's, put first */
				goto out;
			}
			json_array_remove(arr, i);
		}
	}
	ent = json_pack("{s:s,s:s,s:I}", "mediaType", media_type, "digest", digest,
			"size", (json_int_t)n);
	if (artifact_type)
		json_object_set_new(ent, "artifactType", json_string(artifact_type));
	if (tag)
		json_object_set_new(ent, "annotations",
				    json_pack("{s:s}", REG_ANNOT_REF_NAME, tag));
	json_array_append_new(arr, ent);
	ret = write_index(s, root, e);
out:
	json_decref(root);
	unlock_index(fd);
	return ret;
}

int layout_manifest_put(struct reg_store *s, const char *tag, const void *p,
			size_t n, const char *media_type, const char *digest,
			const char *artifact_type, struct err *e)
{
	return manifest_put(s, tag, p, n, media_type, digest, artifact_type, 0, e);
}

int layout_manifest_put_new(struct reg_store *s, const char *tag, const void *p,
			    size_t n, const char *media_type, const char *digest,
			    const char *artifact_type, struct err *e)
{
	return manifest_put(s, tag, p, n, media_type, digest, artifact_type, 1, e);
}

/* Find the descriptor for a tag or digest in index.json (a new reference). */
static int find_entry(struct reg_store *s, const char *ref, json_t **desc,
		      struct err *e)
{
	json_t *root, *arr, *d, *found = NULL;
	int by_digest = reg_digest_valid(ref);
	size_t i;
	int ret;

	*desc = NULL;
	ret = read_index(s, &root, e);
	if (ret)
		return ret;
	arr = json_object_get(root, "manifests");
	json_array_foreach(arr, i, d) {
		const char *v = by_digest ? entry_digest(d) : entry_tag(d);

		if (v && !strcmp(v, ref))
			found = d;  /* the last one wins, like a re-tag */
	}
	if (found)
		*desc = json_incref(found);
	json_decref(root);
	return found ? 1 : 0;
}

int layout_manifest_get(struct reg_store *s, const char *ref, struct buf *out,
			char **media_type, char *digest_out, struct err *e)
{
	json_t *desc = NULL;
	const char *dg = ref, *mt = NULL;
	char *path = NULL, *body_mt = NULL, hex[REG_DIGEST_SIZE];
	int ret;

	buf_reset(out);
	if (!reg_digest_valid(ref)) {
		ret = find_entry(s, ref, &desc, e);
		if (ret < 0)
			return ret;
		if (!ret)
			return err_set(e, ERR_NOTFOUND, "manifest %s not found", ref);
		dg = entry_digest(desc);
		mt = json_string_value(json_object_get(desc, "mediaType"));
		if (!dg || !reg_digest_valid(dg)) {
			ret = err_set(e, ERR_CORRUPT, "index.json: bad digest for %s", ref);
			goto out;
		}
	}
	path = blob_path(s, dg);
	ret = read_regular(path, REG_MANIFEST_MAX, out, e);
	if (ret == ERR_NOTFOUND) {
		err_clear(e);
		ret = err_set(e, ERR_NOTFOUND, "manifest %s not found", ref);
		goto out;
	}
	if (ret) {
		err_wrap(e, "manifest %s", ref);
		goto out;
	}
	sha256_digest_str(out->data, out->len, hex);
	if (strcmp(hex, dg)) {
		ret = err_set(e, ERR_CORRUPT, "manifest %s: blob %s has digest %s", ref, dg, hex);
		goto out;
	}
	ret = reg_manifest_peek(out->data, out->len, &body_mt, NULL, e);
	if (ret) {
		err_wrap(e, "manifest %s", ref);
		goto out;
	}
	if (media_type)
		*media_type = xstrdup(mt ? mt : body_mt ? body_mt : REG_MT_MANIFEST);
	if (digest_out)
		memcpy(digest_out, hex, REG_DIGEST_SIZE);
out:
	if (ret)
		buf_reset(out);
	free(body_mt);
	free(path);
	json_decref(desc);
	return ret;
}

int layout_manifest_head(struct reg_store *s, const char *ref, char *digest_out,
			 uint64_t *size, struct err *e)
{
	json_t *desc = NULL;
	int ret;

	if (reg_digest_valid(ref)) {
		ret = layout_blob_exists(s, ref, size, e);
		if (ret == 1 && digest_out)
			memcpy(digest_out, ref, REG_DIGEST_SIZE);
		return ret;
	}
	ret = find_entry(s, ref, &desc, e);
	if (ret == 1) {
		const char *dg = entry_digest(desc);
		json_t *sz = json_object_get(desc, "size");

		if (!dg || !reg_digest_valid(dg) || !json_is_integer(sz)) {
			ret = err_set(e, ERR_CORRUPT, "index.json: bad descriptor for %s", ref);
		} else {
			if (digest_out)
				memcpy(digest_out, dg, REG_DIGEST_SIZE);
			if (size)
				*size = (uint64_t)json_integer_value(sz);
		}
	}
	json_decref(desc);
	return ret;
}

int layout_tags_list(struct reg_store *s, struct reg_tags *tags, struct err *e)
{
	json_t *root, *d;
	size_t i;
	int ret;

	ret = read_index(s, &root, e);
	if (ret)
		return ret;
	/* duplicates (a tag re-put) are dropped by reg_tags_list */
	json_array_foreach(json_object_get(root, "manifests"), i, d) {
		const char *t = entry_tag(d);

		if (t)
			reg_tags_push(tags, xstrdup(t));
	}
	json_decref(root);
	return 0;
}

int layout_manifest_delete(struct reg_store *s, const char *ref, struct err *e)
{
	json_t *root = NULL, *arr;
	int by_digest = reg_digest_valid(ref), fd = -1, ret, removed = 0;
	char *p = xasprintf("%s/index.json", s->dir);
	size_t i;

	if (access(p, F_OK)) {
		free(p);
		return err_set(e, ERR_NOTFOUND, "delete %s: not found", ref);
	}
	free(p);
	ret = lock_index(s, &fd, e);
	if (ret)
		return ret;
	ret = read_index(s, &root, e);
	if (ret)
		goto out;
	arr = json_object_get(root, "manifests");
	for (i = json_array_size(arr); i-- > 0;) {
		json_t *d = json_array_get(arr, i);
		const char *v = by_digest ? entry_digest(d) : entry_tag(d);

		if (v && !strcmp(v, ref)) {
			json_array_remove(arr, i);
			removed++;
		}
	}
	if (!removed) {
		ret = err_set(e, ERR_NOTFOUND, "delete %s: not found", ref);
		goto out;
	}
	ret = write_index(s, root, e);
out:
	json_decref(root);
	unlock_index(fd);
	return ret;
}

/* Add a digest to the referenced set (a sorted-on-demand string list). */
static void ref_add(struct reg_tags *set, const char *d)
{
	set->v = xreallocarray(set->v, set->n + 1, sizeof(*set->v));
	set->v[set->n++] = xstrdup(d);
}

static int ref_has(const struct reg_tags *set, const char *hex)
{
	size_t i;

	for (i = 0; i < set->n; i++)
		if (!strcmp(set->v[i] + 7, hex))
			return 1;
	return 0;
}

/* Mark a manifest and what it points at (one level of index nesting). */
static void mark(struct reg_store *s, const char *digest, struct reg_tags *set,
		 int depth)
{
	struct buf b = BUF_INIT;
	struct reg_manifest m;
	struct err e2 = ERR_INIT;
	char *p;
	size_t i;

	ref_add(set, digest);
	p = blob_path(s, digest);
	if (!read_regular(p, REG_MANIFEST_MAX, &b, &e2) &&
	    !reg_manifest_parse(&m, b.data, b.len, &e2)) {
		if (!m.is_index)
			ref_add(set, m.config.digest);
		for (i = 0; i < m.nlayers; i++) {
			if (m.is_index && depth < 2)
				mark(s, m.layers[i].digest, set, depth + 1);
			else
				ref_add(set, m.layers[i].digest);
		}
		reg_manifest_release(&m);
	}
	buf_release(&b);
	free(p);
}

int layout_gc(struct reg_store *s, uint64_t min_age, uint64_t *freed,
	      struct err *e)
{
	struct reg_tags set = {NULL, 0};
	json_t *root = NULL, *d;
	char *dirp = xasprintf("%s/blobs/sha256", s->dir);
	char **names = NULL;
	size_t nnames = 0;
	time_t now = time(NULL);
	size_t i;
	int fd = -1, ret;

	if (freed)
		*freed = 0;
	if (access(dirp, F_OK)) {
		free(dirp);
		return 0;
	}
	ret = lock_index(s, &fd, e);
	if (ret)
		goto out;
	ret = read_index(s, &root, e);
	if (ret)
		goto out;
	json_array_foreach(json_object_get(root, "manifests"), i, d) {
		const char *dg = entry_digest(d);

		if (dg && reg_digest_valid(dg))
			mark(s, dg, &set, 0);
	}
	ret = dir_names(dirp, 1, &names, &nnames, e);
	if (ret)
		goto out;
	for (i = 0; i < nnames; i++) {
		char *p = xasprintf("%s/%s", dirp, names[i]);
		struct stat st;

		if (names[i][0] != '.' && !ref_has(&set, names[i]) &&
		    !lstat(p, &st) && S_ISREG(st.st_mode) &&
		    (uint64_t)(now - st.st_mtime) >= min_age && unlink(p) == 0) {
			reg_log(s, "removed unreferenced blob %s", names[i]);
			if (freed)
				*freed += (uint64_t)st.st_size;
		}
		free(p);
	}
out:
	dir_names_free(names, nnames);
	for (i = 0; i < set.n; i++)
		free(set.v[i]);
	free(set.v);
	json_decref(root);
	unlock_index(fd);
	free(dirp);
	return ret;
}

/* ---- the side log ---- */

/*
 * Why appends cannot be lost: an append opens the log only while it holds
 * the lock, and a trim renames the new file into place while holding it,
 * so no append ever writes into a file that a trim has already replaced.
 */

static int lock_log(const char *path, int *fd, struct err *e)
{
	*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY,
		   0644);
	if (*fd < 0)
		return err_errno(e, "cannot open %s", path);
	while (flock(*fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			int ret = err_errno(e, "cannot lock %s", path);

			close(*fd);
			*fd = -1;
			return ret;
		}
	}
	return 0;
}

/*
 * Read up to max bytes of the end of the regular file fd (size bytes) into
 * b, from a line boundary: when the read starts inside the file, the
 * partial first line is dropped.
 */
static int read_tail(int fd, const char *path, uint64_t size, uint64_t max, struct buf *b,
		     struct err *e)
{
	uint64_t off = size > max ? size - max : 0;
	char *nl;

	buf_reset(b);
	if (buf_grow(b, (size_t)(size - off)))
		return err_set(e, ERR_FAIL, "%s: out of memory", path);
	while (off < size) {
		ssize_t k = pread(fd, b->data + b->len, (size_t)(size - off), (off_t)off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return err_errno(e, "cannot read %s", path);
		if (!k)
			break; /* truncated meanwhile */
		buf_setlen(b, b->len + (size_t)k);
		off += (uint64_t)k;
	}
	if (size > max) {
		nl = memchr(b->data, '\n', b->len);
		if (!nl) {
			buf_reset(b);
		} else {
			size_t skip = (size_t)(nl + 1 - b->data);

			memmove(b->data, b->data + skip, b->len - skip);
			buf_setlen(b, b->len - skip);
		}
	}
	return 0;
}

/* Rewrite the log with its newest lines that fit in max_bytes / 2, at most
 * keep of them.  Called with the lock held. */
static int trim_log(struct reg_store *s, const char *path, int fd, uint64_t size,
		    size_t keep, uint64_t max_bytes, struct err *e)
{
	struct buf b = BUF_INIT;
	struct atomic_file af;
	size_t start, lines = 0;
	int ret;

	ret = read_tail(fd, path, size, max_bytes / 2, &b, e);
	if (ret)
		goto out;
	/* the newest keep lines: walk back from the end */
	start = b.len;
	while (start > 0 && lines < keep) {
		size_t p = start - 1;

		while (p > 0 && b.data[p - 1] != '\n')
			p--;
		start = p;
		lines++;
	}
	ret = atomic_open(&af, path, 0644, e);
	if (ret)
		goto out;
	af.nosync = 1; /* statistics: a crash may lose them, never corrupt them */
	if (write_all(af.fd, b.data + start, b.len - start)) {
		ret = err_errno(e, "cannot write %s", af.tmp);
		atomic_abort(&af);
		goto out;
	}
	ret = atomic_commit(&af, e);
	if (!ret)
		reg_log(s, "trimmed %s to its newest %zu lines", path, lines);
out:
	buf_release(&b);
	return ret;
}

int layout_log_append(struct reg_store *s, const char *name, const char *line, size_t n,
		      size_t keep, uint64_t max_bytes, struct err *e)
{
	char *path = xasprintf("%s/%s", s->dir, name);
	char *lockp = xasprintf("%s/%s.lock", s->dir, name);
	struct stat st;
	char *rec = NULL;
	int lfd = -1, fd = -1, ret;

	ret = mkdir_p(s->dir, 0755, e);
	if (ret)
		goto out;
	ret = lock_log(lockp, &lfd, e);
	if (ret)
		goto out;
	fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK |
		  O_NOCTTY, 0644);
	if (fd < 0) {
		ret = err_errno(e, "cannot open %s", path);
		goto out;
	}
	if (fstat(fd, &st)) {
		ret = err_errno(e, "cannot stat %s", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = err_set(e, ERR_CORRUPT, "%s is not a regular file", path);
		goto out;
	}
	/* one write: a reader never sees half a line, even of a log that is
	 * not locked the same way */
	rec = xmalloc(n + 1);
	memcpy(rec, line, n);
	rec[n] = '\n';
	if (write_all(fd, rec, n + 1)) {
		ret = err_errno(e, "cannot write %s", path);
		goto out;
	}
	if ((uint64_t)st.st_size + n + 1 > max_bytes)
		ret = trim_log(s, path, fd, (uint64_t)st.st_size + n + 1, keep, max_bytes, e);
out:
	if (fd >= 0)
		close(fd);
	if (lfd >= 0)
		close(lfd); /* releases the flock */
	free(rec);
	free(lockp);
	free(path);
	return ret;
}

int layout_log_read(struct reg_store *s, const char *name, uint64_t max_bytes,
		    struct buf *out, struct err *e)
{
	char *path = xasprintf("%s/%s", s->dir, name);
	uint64_t size;
	int fd, ret;

	fd = open_regular(path, &size, e);
	if (fd == ERR_NOTFOUND) {
		err_clear(e);
		free(path);
		return 0;
	}
	if (fd < 0) {
		free(path);
		return fd;
	}
	ret = read_tail(fd, path, size, max_bytes, out, e);
	close(fd);
	free(path);
	return ret;
}
