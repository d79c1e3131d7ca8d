/*
 * The upload that starts before the digest is known: the file streams
 * into an upload session while it is hashed, and a probe on a connection
 * of its own HEADs the blob once the hash is done.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "remote_internal.h"

/*
 * While a file streams up before its digest is known: a HEAD for the blob
 * as soon as the hash is done, from a thread and a connection of its own,
 * so that the stream need not stop to ask.  It only says whether to stop
 * streaming: the blob is probably there (200, or a redirect to where it
 * is stored); the HEAD in the main thread afterwards decides.
 */
enum { PROBE_WAITING, PROBE_THERE, PROBE_NOT_THERE };

struct probe {
	pthread_t th;
	int started;
	int stop_at_hash;   /* end the stream when the hash is done */
	struct reg_hash *h;
	const struct reg_opts *o;
	char *prefix;       /* "<base>/v2/<repo>/blobs/" */
	char *auth;         /* "Authorization: ..." or NULL */
	char *url;          /* the HEAD's, once sent */
	long status;        /* -1 when none came */
	atomic_int state;
	atomic_int cancel;  /* the stream is over: no need to ask any more */
};

static void *probe_thread(void *arg)
{
	struct probe *p = arg;
	char dg[REG_DIGEST_SIZE];
	struct err e = ERR_INIT;
	long st = -1;

	if (!reg_hash_wait(p->h, dg, &e) && !atomic_load(&p->cancel)) {
		p->url = xasprintf("%s%s", p->prefix, dg);
		st = http_head_status(p->o, p->url, p->auth, &p->cancel);
	}
	p->status = st;
	atomic_store(&p->state, st == 200 || st == 301 || st == 302 || st == 303 ||
				st == 307 || st == 308 ? PROBE_THERE : PROBE_NOT_THERE);
	return NULL;
}

/* body_stop of the stream: the blob is probably there, or the digest is
 * known and the stream is to end then (or there is no probe) */
static int stream_stop(void *arg)
{
	struct probe *p = arg;

	if ((p->stop_at_hash || !p->started) && reg_hash_done(p->h))
		return 1;
	return p->started && atomic_load(&p->state) == PROBE_THERE;
}

/* Start the probe (best effort: p->started says whether it runs). */
static void probe_start(struct reg_store *s, struct probe *p, struct reg_hash *h,
			const char *scope)
{
	struct reg_remote *r = s->rm;
	struct err e2 = ERR_INIT;

	memset(p, 0, sizeof(*p));
	p->h = h;
	p->o = &s->o;
	p->status = -1;
	atomic_init(&p->state, PROBE_WAITING);
	atomic_init(&p->cancel, 0);
	if (auth_header(s, &r->auth, r->c, scope, &p->auth, &e2))
		return;
	p->prefix = rm_url(r, "blobs/");
	p->started = !pthread_create(&p->th, NULL, probe_thread, p);
}

/* Stop the probe (it waits for the hash, not for an answer) and log what
 * it did. */
static void probe_end(struct reg_store *s, struct probe *p)
{
	if (p->started) {
		atomic_store(&p->cancel, 1);
		pthread_join(p->th, NULL);
		if (p->url) {
			s->st.requests++;
			if (p->status >= 0)
				reg_log(s, "HEAD %s -> %ld (while streaming)", p->url,
					p->status);
			else
				reg_log(s, "HEAD %s: no answer while streaming", p->url);
		}
	}
	if (p->auth) {
		memset(p->auth, 0, strlen(p->auth));
		free(p->auth);
	}
	free(p->prefix);
	free(p->url);
	memset(p, 0, sizeof(*p));
}

/*
 * The upload while the digest is still being computed: open the session
 * and, for a file of o.overlap_min bytes or more, stream the file into it
 * (one PATCH, chunked, no Content-Range: what docker push does) while a
 * probe HEADs the blob once the hash is done.  The stream ends early when
 * the probe finds the blob (then the HEAD here decides), and, when the
 * file is to go in chunks (!whole), as soon as the hash is done.  1 when
 * the registry has the blob (the session cancelled); 0 with u the session
 * (u->loc NULL: none, start one) holding u->off bytes; <0 error.  digest
 * gets the digest, *sent the bytes sent.
 *
 * Why not hash first: hashing 256 MiB takes about a fifth of the upload on
 * loopback, all of it on the critical path.  Why not end the stream when
 * the hash ends: distribution answers a PATCH only after it has written
 * and fsync'ed what it got, a pause in the middle of the upload that the
 * probe avoids.  Why end it all the same for chunks: so that a cut costs
 * at most a chunk once the hash is done, as it would have.
 */
int upload_while_hashing(struct reg_store *s, struct upload *u, int fd,
				uint64_t size, int whole, struct reg_hash *h,
				const char *scope, uint64_t *chunk, char *digest,
				uint64_t *sent, struct err *e)
{
	struct http_req rq;
	struct http_resp rs;
	struct curl_slist *hdrs = NULL;
	struct err e2 = ERR_INIT;
	struct probe p;
	uint64_t next;
	int ret;

	http_resp_init(&rs);
	memset(&p, 0, sizeof(p));
	if (upload_start(s, u, "(being hashed)", NULL, scope, chunk, &e2)) {
		/* the upload after the hash opens one again, and reports */
		reg_log(s, "cannot open an upload session ahead: %s", e2.msg);
		upload_reset(u);
	} else if (size >= s->o.overlap_min && !reg_hash_done(h)) {
		probe_start(s, &p, h, scope);
		p.stop_at_hash = !whole;
		hdrs = rm_octets();
		rm_req(&rq, "PATCH", u->loc);
		rq.headers = hdrs;
		rq.has_body = 1;
		rq.body_fd = fd;
		rq.body_len = size;
		rq.body_chunked = 1;
		rq.body_stop = stream_stop;
		rq.body_stop_arg = &p;
		ret = rm_send_once(s, &rq, &rs, scope, &e2);
		*sent += rs.sent;
		s->st.blob_bytes_sent += rs.sent;
		probe_end(s, &p);
		if (!ret && rs.status == 202 && rs.sent &&
		    (upload_range_end(rs.range, &next) || next == rs.sent))
			ret = upload_take_location(u, &rs, &e2);
		else if (!ret)
			ret = rs.status == 202 ? err_set(&e2, ERR_FAIL, "Range %s after %llu bytes",
							 rs.range ? rs.range : "none",
							 (unsigned long long)rs.sent)
					       : rm_fail(s, &rs, &e2, "PATCH");
		if (!ret) {
			u->off = rs.sent;
			reg_log(s, "%llu bytes streamed while hashing",
				(unsigned long long)u->off);
		} else {
			reg_log(s, "streaming while hashing failed (%s); uploading after "
				"the hash", e2.msg);
			upload_cancel(s, u, scope);
		}
	}
	ret = reg_hash_wait(h, digest, e);
	if (ret || (u->loc && u->off == size))
		goto out; /* on error the caller cancels the session */
	ret = rm_blob_head(s, digest, NULL, "pull,push", e);
	if (ret == 1)
		upload_cancel(s, u, scope);
out:
	curl_slist_free_all(hdrs);
	http_resp_release(&rs);
	return ret;
}
