/*
 * fc_run: the bookkeeping of one pack through the frame store.  The frames
 * are planned here (pack_plan is a pure function of the list, so this plan
 * is the one pack_write makes) and every frame's key is computed once, up
 * front; pack_write's hooks find their frame by its start position.  A
 * frame is "present" once it was copied from the store or stored; the
 * manifest is written only when all of them are, so a served manifest
 * never names a frame that was never stored.
 */
#include "fc_pack_internal.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctxpack/index.h"

static int pos_cmp(const struct pack_pos *a, const struct pack_pos *b)
{
	if (a->i != b->i)
		return a->i < b->i ? -1 : 1;
	if (a->off != b->off)
		return a->off < b->off ? -1 : 1;
	return 0;
}

/* The index of f in the plan, or -1 (a plan that differs: no caching). */
static ssize_t find(const struct fc_run *r, const struct pack_frame *f)
{
	size_t lo = 0, hi = r->nplan;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = pos_cmp(&r->plan[mid].first, &f->first);

		if (c == 0) {
			/* frames start at distinct positions, but for the
			 * end-of-archive frame of an empty list and a last
			 * frame that ends where the list does */
			while (mid + 1 < r->nplan && !pos_cmp(&r->plan[mid + 1].first, &f->first) &&
			       pos_cmp(&r->plan[mid].end, &f->end))
				mid++;
			return pos_cmp(&r->plan[mid].end, &f->end) ? -1 : (ssize_t)mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/*
 * May frame f's freshly encoded bytes be stored under its key?  Only when
 * every regular file in it still has the stat its content hash was taken
 * with and its ctime is older than the racy window before fc_open: any
 * write after that moment moves ctime past the stored value, so the bytes
 * the packer read are the bytes that were hashed.
 */
static int frame_safe(const struct fc_run *r, const struct pack_frame *f)
{
	const struct pack_list *l = r->l;
	size_t i, last = f->end.off ? f->end.i + 1 : f->end.i;

	for (i = f->first.i; i < last && i < l->n; i++) {
		const struct walk_entry *we = l->v[i];
		int64_t win;
		struct stat st;

		/* hashed from the bytes this frame holds: they agree */
		if (we->type != WALK_REG || we->hashed == WALK_HASH_ARCHIVED)
			continue;
		win = we->ctime_ns % 1000000000 ? IDX_RACY_FINE_NS : IDX_RACY_COARSE_NS;
		if (we->ctime_ns >= r->c->t0_ns - win)
			return 0;
		if (fstatat(r->rootfd, we->path, &st, AT_SYMLINK_NOFOLLOW) ||
		    !S_ISREG(st.st_mode) || (uint64_t)st.st_size != we->size ||
		    (uint64_t)st.st_ino != we->ino ||
		    (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec != we->mtime_ns ||
		    (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec != we->ctime_ns)
			return 0;
	}
	return 1;
}

/* Offer frame k's fresh bytes to the store.  A frame whose files were
 * hashed while it was encoded (content()) gets its key now. */
void fc_run_store(struct fc_run *r, size_t k, const void *p, size_t n)
{
	struct err e = ERR_INIT;

	if (!r->keyed[k]) {
		if (fc_frame_key(r->l, &r->plan[k], r->settings, r->keys[k]))
			return;
		r->keyed[k] = 1;
	}
	if (!frame_safe(r, &r->plan[k])) {
		fc_count(&r->st->frames_unsafe, 1);
		return;
	}
	if (fc_frame_store(r->c, r->keys[k], p, n, &r->stamps[k], &e)) {
		fc_warn(r->c, "cannot store a frame in the pack cache: %s", e.msg);
		return;
	}
	r->lens[k] = n;
	r->present[k] = 1;
	fc_count(&r->st->frames_stored, 1);
}

static int hook_get(void *ctx, const struct pack_list *l, const struct pack_frame *f,
		    const struct pack_opts *o, struct buf *out)
{
	struct fc_run *r = ctx;
	ssize_t k = find(r, f);
	size_t at = out->len;
	int damaged = 0;

	if (k < 0 || !r->keyed[k]) {
		fc_count(&r->st->frames_compressed, 1);
		return 0;
	}
	if (fc_frame_read(r->c, r->keys[k], out, &damaged, &r->stamps[k])) {
		r->lens[k] = out->len - at;
		r->present[k] = 1;
		fc_count(&r->st->frames_reused, 1);
		fc_count(&r->st->bytes_reused, out->len - at);
		return 1;
	}
	if (damaged)
		fc_count(&r->st->frames_damaged, 1);
	fc_count(&r->st->frames_compressed, 1);
	return 0;
}

static void hook_put(void *ctx, const struct pack_list *l, const struct pack_frame *f,
		     const struct pack_opts *o, const void *p, size_t n)
{
	struct fc_run *r = ctx;
	ssize_t k = find(r, f);

	if (k >= 0)
		fc_run_store(r, (size_t)k, p, n);
}

/* A small file's bytes as the packer read them: its content hash, for a
 * file the index left to the packer (idx_set_defer). */
static void hook_content(void *ctx, size_t i, const void *p, size_t n)
{
	struct fc_run *r = ctx;
	struct walk_entry *we = r->l->v[i];

	idx_entry_archived(we, p, n);
}

/* The content hash of the entries pack_list added (the walk excluded them,
 * so the index did not see them).  One that cannot be read stays without:
 * its frame is then not cached, and the pack itself reports the file. */
static void hash_added(struct pack_list *l, int rootfd)
{
	size_t bufsz = 256 << 10, i;
	char *b = NULL;

	for (i = 0; i < l->n_added; i++) {
		struct walk_entry *we = &l->added[i];
		struct err e = ERR_INIT;
		uint64_t nread;

		if (we->hashed)
			continue;
		if (we->type == WALK_LNK || we->type == WALK_HARDLINK) {
			idx_entry_link(we);
		} else if (we->type == WALK_REG) {
			if (!b)
				b = xmalloc(bufsz);
			(void)idx_hash_file(rootfd, we, b, bufsz, &nread, &e); /* or stays without */
		}
	}
	free(b);
}

int fc_run_open(struct fc_run *r, struct fc *c, struct pack_list *l,
		const struct pack_opts *o, struct fc_stats *st, struct err *e)
{
	memset(r, 0, sizeof(*r));
	r->c = c;
	r->l = l;
	r->o = o;
	r->st = st;
	r->rootfd = open(l->root ? l->root : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->rootfd < 0)
		return err_errno(e, "cannot open %s", l->root ? l->root : ".");
	hash_added(l, r->rootfd);
	fc_settings_hash(o, c->versions, r->settings);
	return 0;
}

void fc_run_plan(struct fc_run *r)
{
	size_t k;

	pack_plan_prefixed(r->l->v, r->l->n, r->o->prefix, &r->plan, &r->nplan);
	r->keys = xreallocarray(NULL, r->nplan, sizeof(*r->keys));
	r->keyed = xcalloc(r->nplan, 1);
	r->present = xcalloc(r->nplan, 1);
	r->lens = xcalloc(r->nplan, sizeof(*r->lens));
	r->stamps = xcalloc(r->nplan, sizeof(*r->stamps));
	r->mids = xcalloc(r->nplan, sizeof(*r->mids));
	for (k = 0; k < r->nplan; k++) {
		r->keyed[k] = !fc_frame_key(r->l, &r->plan[k], r->settings, r->keys[k]);
		r->st->frames_unkeyed += !r->keyed[k];
	}
	r->st->frames = r->nplan;
}

void fc_run_hooks(struct fc_run *r, struct pack_frame_cache *hooks)
{
	hooks->get = hook_get;
	hooks->put = hook_put;
	hooks->content = hook_content;
	hooks->data = NULL;
	hooks->ctx = r;
	hooks->flags = PACK_CACHE_OWN_DIGEST;
}

void fc_run_release(struct fc_run *r)
{
	free(r->plan);
	free(r->keys);
	free(r->keyed);
	free(r->present);
	free(r->lens);
	free(r->stamps);
	free(r->mids);
	if (r->rootfd >= 0)
		close(r->rootfd);
}

/* The first entry of each planned frame, for the manifest. */
static void first_names(const struct fc_run *r, struct fc_manifest *m)
{
	const struct pack_list *l = r->l;
	size_t k, total = 0;

	for (k = 0; k < r->nplan; k++)
		if (r->plan[k].first.i < l->n)
			total += l->v[r->plan[k].first.i]->path_len;
	m->names = xmalloc(total + 1);
	m->noff = xreallocarray(NULL, r->nplan ? r->nplan : 1, sizeof(*m->noff));
	m->nlen = xreallocarray(NULL, r->nplan ? r->nplan : 1, sizeof(*m->nlen));
	m->nfl = xmalloc(r->nplan ? r->nplan : 1);
	for (k = 0, total = 0; k < r->nplan; k++) {
		const struct pack_frame *f = &r->plan[k];

		m->noff[k] = total;
		m->nlen[k] = 0;
		m->nfl[k] = (f->first.off ? FC_FIRST_MID : 0) | (f->end.off ? FC_END_MID : 0);
		if (f->first.i >= l->n) {
			m->nfl[k] |= FC_FIRST_EOA;
			continue;
		}
		m->nlen[k] = l->v[f->first.i]->path_len;
		memcpy(m->names + total, l->v[f->first.i]->path, m->nlen[k]);
		total += m->nlen[k];
	}
}

/* Write the manifest of the archive just made, when every frame is in the
 * store, and make it the context's last. */
void fc_keep_archive(struct fc_run *r, const unsigned char akey[FC_KEY_LEN],
		     const unsigned char lk[FC_KEY_LEN], const struct pack_result *res)
{
	struct fc_manifest m;
	struct err e = ERR_INIT;
	size_t k;
	int bad;

	if (!r->have_mids)
		return;
	for (k = 0; k < r->nplan; k++)
		if (!r->present[k])
			return;
	memset(&m, 0, sizeof(m));
	memcpy(m.key, akey, FC_KEY_LEN);
	m.made_ns = r->c->t0_ns;
	first_names(r, &m);
	m.nframes = r->nplan;
	m.bytes = res->bytes;
	m.entries = r->l->n;
	memcpy(m.digest, res->digest, sizeof(m.digest));
	m.fkeys = r->keys;
	m.lens = r->lens;
	m.stamps = r->stamps;
	m.mids = r->mids;
	bad = fc_manifest_write(r->c, &m, &e);
	free(m.names);
	free(m.noff);
	free(m.nlen);
	free(m.nfl);
	if (bad) {
		fc_warn(r->c, "cannot store the archive manifest: %s", e.msg);
		return;
	}
	r->st->archive_stored = 1;
	fc_last_write(r->c, lk, akey);
}

/* How many of the first `max` frames of m are the run's frames 0.. */
size_t fc_common_prefix(const struct fc_run *r, const struct fc_manifest *m, size_t max)
{
	size_t k;

	for (k = 0; k < max && k < r->nplan && k < m->nframes; k++)
		if (!r->keyed[k] || memcmp(r->keys[k], m->fkeys[k], FC_KEY_LEN))
			break;
	return k;
}
