/*
 * faultproxy: a small HTTP/1.1 proxy on 127.0.0.1 that forwards to one
 * upstream (the test's registry) and injects faults, for the registry
 * integration tests.  It only ever connects to the --target address, which
 * must be a loopback address.
 *
 *   faultproxy --target 127.0.0.1:PORT [--port-file F] [--log F] [fault...]
 *
 * Faults apply to requests whose request line contains --match STR (all
 * requests when not given):
 *   --fail-first K           answer the first K with 500 (JSON errors body)
 *   --throttle-first K       answer the first K with 429 and Retry-After: 1
 *   --unauth-first K         answer the first K with 401 and the
 *                            WWW-Authenticate of --challenge VALUE (an
 *                            expired token, as far as the client can tell)
 *   --cut-request-after N    forward N bytes of a request body, then drop both
 *                            connections (--cuts times, default once)
 *   --cut-response-after N   the same after N bytes of a response body
 *   --stall-response-after N send N bytes of a response body, then nothing
 *                            (until the client gives up)
 *   --delay-ms MS            wait MS before each response
 *   --trickle BPS            send response bodies at about BPS bytes/second
 *   --trickle-request BPS    forward request bodies at about BPS bytes/second
 *                            (for TLS, passed through: all the client sends)
 *   --redirect-to URL        answer 307 with Location: URL + the request path
 *                            (a stand-in for a registry handing blobs to a CDN)
 * and, for every request:
 *   --set-auth VALUE         forward with "Authorization: VALUE" (a stand-in for
 *                            a pre-signed URL that needs no client credentials)
 *
 * The log gets one line per request: "req SEQ METHOD PATH BODYBYTES STATUS",
 * plus " auth" when the client sent an Authorization header (STATUS is 0
 * when the exchange was cut).  Connections that do not start
 * with an HTTP method (a TLS ClientHello) are passed through untouched.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conf {
	struct sockaddr_in target;
	const char *match;
	long fail_first, throttle_first, unauth_first;
	const char *challenge;
	long long cut_req, cut_resp, stall_resp;
	long cuts;
	long delay_ms;
	long trickle, trickle_req;
	const char *redirect_to;
	const char *set_auth;
	int logfd;
};

/* Shared counters, only touched under mu. */
struct state {
	pthread_mutex_t mu;
	long matched;       /* matching requests seen */
	long cuts_done;
	long seq;
};

struct ctx {
	const struct conf *cf;
	struct state *st;
	int cfd;
};

struct rd {
	int fd;
	char buf[65536];
	size_t off, len;
};

static void msleep(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int rd_fill(struct rd *r)
{
	ssize_t n;

	if (r->off < r->len)
		return 1;
	r->off = r->len = 0;
	do
		n = read(r->fd, r->buf, sizeof(r->buf));
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return 0;
	r->len = (size_t)n;
	return 1;
}

/* A line including its CRLF into out (NUL-terminated); 0 at EOF. */
static int rd_line(struct rd *r, char *out, size_t cap)
{
	size_t n = 0;

	for (;;) {
		char c;

		if (!rd_fill(r))
			return 0;
		c = r->buf[r->off++];
		if (n + 1 < cap)
			out[n++] = c;
		if (c == '\n')
			break;
	}
	out[n] = '\0';
	return 1;
}

static int send_all(int fd, const void *p, size_t n)
{
	const char *s = p;

	while (n) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

static void logf_(const struct conf *cf, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void logf_(const struct conf *cf, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n;

	if (cf->logfd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0)
		(void)!write(cf->logfd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* How a body is delimited. */
enum { BODY_NONE, BODY_LEN, BODY_CHUNKED, BODY_EOF };

struct head {
	char *text;        /* the raw head, CRLFs included */
	size_t len;
	int kind;
	long long clen;
	int status;        /* responses */
	char method[16];
	char path[1024];
	int close;         /* Connection: close */
	int has_auth;      /* an Authorization header was there */
};

static void head_free(struct head *h)
{
	free(h->text);
	memset(h, 0, sizeof(*h));
}

/* Read a request or response head. 0 at a clean EOF, -1 on error. */
static int read_head(struct rd *r, struct head *h, int is_resp, const char *req_method)
{
	char line[8192];
	size_t cap = 0;
	int first = 1, chunked = 0, have_len = 0;

	memset(h, 0, sizeof(*h));
	for (;;) {
		size_t n;

		if (!rd_line(r, line, sizeof(line)))
			return first ? 0 : -1;
		n = strlen(line);
		if (h->len + n + 1 > cap) {
			cap = (h->len + n + 1) * 2;
			h->text = realloc(h->text, cap);
		}
		memcpy(h->text + h->len, line, n + 1);
		h->len += n;
		if (first) {
			first = 0;
			if (is_resp)
				h->status = atoi(strchr(line, ' ') ? strchr(line, ' ') + 1 : "0");
			else
				sscanf(line, "%15s %1023s", h->method, h->path);
			continue;
		}
		if (!strcmp(line, "\r\n") || !strcmp(line, "\n"))
			break;
		if (!strncasecmp(line, "content-length:", 15)) {
			h->clen = atoll(line + 15);
			have_len = 1;
		} else if (!strncasecmp(line, "transfer-encoding:", 18) && strcasestr(line, "chunked")) {
			chunked = 1;
		} else if (!strncasecmp(line, "connection:", 11) && strcasestr(line, "close")) {
			h->close = 1;
		} else if (!strncasecmp(line, "authorization:", 14)) {
			h->has_auth = 1;
		}
	}
	if (is_resp && (h->status / 100 == 1 || h->status == 204 || h->status == 304 ||
			!strcmp(req_method, "HEAD")))
		h->kind = BODY_NONE;
	else if (chunked)
		h->kind = BODY_CHUNKED;
	else if (have_len)
		h->kind = h->clen ? BODY_LEN : BODY_NONE;
	else
		h->kind = is_resp ? BODY_EOF : BODY_NONE;
	return 1;
}

struct fwd {
	long long cut_after;   /* drop after this many bytes (-1 never) */
	long long stall_after;
	long trickle;
	int watch_fd;          /* the client, for stalls */
	unsigned long long count;
	int cut;
};

/* Send to dst (if >= 0) applying the fault rules; -1 when cut. */
static int fwd_bytes(struct fwd *f, int dst, const char *p, size_t n)
{
	while (n) {
		size_t k = n;

		if (f->cut_after >= 0 && f->count + k > (unsigned long long)f->cut_after)
			k = (size_t)((unsigned long long)f->cut_after - f->count);
		if (f->stall_after >= 0 && f->count + k > (unsigned long long)f->stall_after)
			k = (size_t)((unsigned long long)f->stall_after - f->count);
		if (f->trickle > 0 && k > (size_t)(f->trickle / 10 + 1))
			k = (size_t)(f->trickle / 10 + 1);
		if (k && dst >= 0 && send_all(dst, p, k))
			return -1;
		f->count += k;
		p += k;
		n -= k;
		if (f->trickle > 0 && k)
			msleep((long)(k * 1000 / (unsigned long)f->trickle) + 1);
		if (n && f->cut_after >= 0 && f->count >= (unsigned long long)f->cut_after) {
			f->cut = 1;
			return -1;
		}
		if (n && f->stall_after >= 0 && f->count >= (unsigned long long)f->stall_after) {
			/* hold the connection open, silent, until the client leaves */
			for (;;) {
				struct pollfd pfd = {f->watch_fd, POLLIN, 0};
				char tmp[4096];

				if (poll(&pfd, 1, 100) > 0 && read(f->watch_fd, tmp, sizeof(tmp)) <= 0)
					break;
			}
			f->cut = 1;
			return -1;
		}
	}
	return 0;
}

/* Forward a body of the given kind from r to dst; -1 on a cut or error. */
static int fwd_body(struct rd *r, int dst, const struct head *h, struct fwd *f)
{
	char line[256];

	if (h->kind == BODY_NONE)
		return 0;
	if (h->kind == BODY_LEN || h->kind == BODY_EOF) {
		long long left = h->kind == BODY_LEN ? h->clen : -1;

		while (left != 0) {
			size_t k;

			if (!rd_fill(r))
				return h->kind == BODY_EOF ? 0 : -1;
			k = r->len - r->off;
			if (left > 0 && (long long)k > left)
				k = (size_t)left;
			if (fwd_bytes(f, dst, r->buf + r->off, k))
				return -1;
			r->off += k;
			if (left > 0)
				left -= (long long)k;
		}
		return 0;
	}
	for (;;) {
		long long size;

		if (!rd_line(r, line, sizeof(line)))
			return -1;
		size = strtoll(line, NULL, 16);
		if (fwd_bytes(f, dst, line, strlen(line)))
			return -1;
		if (size == 0) {
			/* trailers up to the empty line */
			do {
				if (!rd_line(r, line, sizeof(line)))
					return -1;
				if (fwd_bytes(f, dst, line, strlen(line)))
					return -1;
			} while (strcmp(line, "\r\n") && strcmp(line, "\n"));
			return 0;
		}
		size += 2; /* the CRLF after the data */
		while (size > 0) {
			size_t k;

			if (!rd_fill(r))
				return -1;
			k = r->len - r->off;
			if ((long long)k > size)
				k = (size_t)size;
			if (fwd_bytes(f, dst, r->buf + r->off, k))
				return -1;
			r->off += k;
			size -= (long long)k;
		}
	}
}

/* Replace the Authorization header of a request head (has_auth keeps what
 * the client sent). */
static void set_auth_header(struct head *h, const char *value)
{
	char *out = malloc(h->len + strlen(value) + 32), *o = out;
	const char *p = h->text, *end = h->text + h->len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p + 1) : (size_t)(end - p);

		if (n <= 2 && (p[0] == '\r' || p[0] == '\n')) {
			o += sprintf(o, "Authorization: %s\r\n", value);
			memcpy(o, p, n);
			o += n;
			break;
		}
		if (strncasecmp(p, "authorization:", 14)) {
			memcpy(o, p, n);
			o += n;
		}
		p += n;
	}
	free(h->text);
	h->text = out;
	h->len = (size_t)(o - out);
}

/* Relay a and b both ways; what a sends goes at about trickle bytes/second
 * when trickle > 0. */
static void pass_through(int a, int b, const char *pre, size_t npre, long trickle)
{
	struct pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
	char buf[65536];

	if (npre && send_all(b, pre, npre))
		return;
	for (;;) {
		int i;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		for (i = 0; i < 2; i++) {
			if (p[i].revents & (POLLIN | POLLHUP | POLLERR)) {
				ssize_t n = read(p[i].fd, buf, sizeof(buf));

				if (n <= 0 || send_all(p[1 - i].fd, buf, (size_t)n))
					return;
				if (i == 0 && trickle > 0)
					msleep((long)((unsigned long)n * 1000 / (unsigned long)trickle) + 1);
			}
		}
	}
}

static void *serve(void *arg)
{
	struct ctx *c = arg;
	const struct conf *cf = c->cf;
	struct state *st = c->st;
	struct rd *cr = calloc(1, sizeof(*cr)), *ur = calloc(1, sizeof(*ur));
	int ufd = -1;

	cr->fd = c->cfd;
	ufd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ufd < 0 || connect(ufd, (const struct sockaddr *)&cf->target, sizeof(cf->target)))
		goto out;
	{
		int one = 1;

		setsockopt(ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(c->cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	ur->fd = ufd;
	/* not HTTP (a TLS handshake): pass it through untouched */
	if (!rd_fill(cr))
		goto out;
	if (!(cr->buf[0] >= 'A' && cr->buf[0] <= 'Z')) {
		pass_through(c->cfd, ufd, cr->buf, cr->len, cf->trickle_req);
		goto out;
	}
	for (;;) {
		struct head rq, rs;
		struct fwd f;
		char reqline[1100];
		int match, fail = 0, throttle = 0, unauth = 0, cut_req = 0, cut_resp = 0, stall = 0;
		long seq;
		int r;

		r = read_head(cr, &rq, 0, "");
		if (r <= 0)
			break;
		snprintf(reqline, sizeof(reqline), "%s %s", rq.method, rq.path);
		match = !cf->match || strstr(reqline, cf->match);
		pthread_mutex_lock(&st->mu);
		seq = ++st->seq;
		if (match) {
			long k = st->matched++;

			fail = k < cf->fail_first;
			throttle = !fail && k < cf->fail_first + cf->throttle_first;
			unauth = !fail && !throttle &&
				 k < cf->fail_first + cf->throttle_first + cf->unauth_first;
			if (!fail && !throttle && !unauth && st->cuts_done < cf->cuts) {
				if (cf->cut_req >= 0 && rq.kind != BODY_NONE &&
				    (rq.kind != BODY_LEN || rq.clen > cf->cut_req)) {
					cut_req = 1;
					st->cuts_done++;
				} else if ((cf->cut_resp >= 0 || cf->stall_resp >= 0) &&
					   strcmp(rq.method, "HEAD")) {
					/* decided when the response length is known */
					cut_resp = cf->cut_resp >= 0;
					stall = cf->stall_resp >= 0;
				}
			}
		}
		pthread_mutex_unlock(&st->mu);
		if (match && cf->redirect_to && !fail && !throttle) {
			char hdr[2048];

			memset(&f, 0, sizeof(f));
			f.cut_after = f.stall_after = -1;
			if (fwd_body(cr, -1, &rq, &f)) {
				head_free(&rq);
				break;
			}
			snprintf(hdr, sizeof(hdr),
				 "HTTP/1.1 307 Temporary Redirect\r\nLocation: %s%s\r\n"
				 "Content-Length: 0\r\n\r\n", cf->redirect_to, rq.path);
			logf_(cf, "req %ld %s %s %llu 307%s\n", seq, rq.method, rq.path,
			      (unsigned long long)f.count, rq.has_auth ? " auth" : "");
			head_free(&rq);
			if (send_all(c->cfd, hdr, strlen(hdr)))
				break;
			continue;
		}
		if (cf->set_auth)
			set_auth_header(&rq, cf->set_auth);
		if (unauth) {
			static const char body401[] =
				"{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"injected: token expired\"}]}";
			char hdr[2048];

			memset(&f, 0, sizeof(f));
			f.cut_after = f.stall_after = -1;
			if (fwd_body(cr, -1, &rq, &f)) {
				head_free(&rq);
				break;
			}
			snprintf(hdr, sizeof(hdr),
				 "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
				 "WWW-Authenticate: %s\r\nContent-Length: %zu\r\n\r\n",
				 cf->challenge ? cf->challenge : "Bearer realm=\"none\"", strlen(body401));
			logf_(cf, "req %ld %s %s %llu 401%s\n", seq, rq.method, rq.path,
			      (unsigned long long)f.count, rq.has_auth ? " auth" : "");
			head_free(&rq);
			if (send_all(c->cfd, hdr, strlen(hdr)) ||
			    send_all(c->cfd, body401, strlen(body401)))
				break;
			continue;
		}
		if (fail || throttle) {
			/* swallow the body, answer ourselves */
			static const char body500[] =
				"{\"errors\":[{\"code\":\"UNKNOWN\",\"message\":\"injected failure\"}]}";
			static const char body429[] =
				"{\"errors\":[{\"code\":\"TOOMANYREQUESTS\",\"message\":\"injected rate limit\"}]}";
			char hdr[512];
			const char *b = fail ? body500 : body429;

			memset(&f, 0, sizeof(f));
			f.cut_after = f.stall_after = -1;
			if (fwd_body(cr, -1, &rq, &f)) {
				head_free(&rq);
				break;
			}
			snprintf(hdr, sizeof(hdr),
				 "HTTP/1.1 %s\r\nContent-Type: application/json\r\n%s"
				 "Content-Length: %zu\r\n\r\n",
				 fail ? "500 Internal Server Error" : "429 Too Many Requests",
				 fail ? "" : "Retry-After: 1\r\n", strlen(b));
			logf_(cf, "req %ld %s %s %llu %d%s\n", seq, rq.method, rq.path,
			      (unsigned long long)f.count, fail ? 500 : 429,
			      rq.has_auth ? " auth" : "");
			head_free(&rq);
			if (send_all(c->cfd, hdr, strlen(hdr)) || send_all(c->cfd, b, strlen(b)))
				break;
			continue;
		}
		if (send_all(ufd, rq.text, rq.len)) {
			head_free(&rq);
			break;
		}
		memset(&f, 0, sizeof(f));
		f.cut_after = cut_req ? cf->cut_req : -1;
		f.stall_after = -1;
		f.trickle = match ? cf->trickle_req : 0;
		if (fwd_body(cr, ufd, &rq, &f)) {
			logf_(cf, "req %ld %s %s %llu 0 cut-request\n", seq, rq.method, rq.path,
			      (unsigned long long)f.count);
			head_free(&rq);
			break;
		}
		r = read_head(ur, &rs, 1, rq.method);
		if (r <= 0) {
			head_free(&rq);
			break;
		}
		if (cf->delay_ms > 0 && match)
			msleep(cf->delay_ms);
		if ((cut_resp || stall) && rs.kind == BODY_NONE) {
			cut_resp = stall = 0; /* nothing to cut: keep the fault for later */
		} else if (cut_resp || stall) {
			pthread_mutex_lock(&st->mu);
			if (st->cuts_done < cf->cuts)
				st->cuts_done++;
			else
				cut_resp = stall = 0;
			pthread_mutex_unlock(&st->mu);
		}
		if (send_all(c->cfd, rs.text, rs.len)) {
			head_free(&rq);
			head_free(&rs);
			break;
		}
		{
			struct fwd g;

			memset(&g, 0, sizeof(g));
			g.cut_after = cut_resp ? cf->cut_resp : -1;
			g.stall_after = stall ? cf->stall_resp : -1;
			g.trickle = match ? cf->trickle : 0;
			g.watch_fd = c->cfd;
			r = fwd_body(ur, c->cfd, &rs, &g);
			logf_(cf, "req %ld %s %s %llu %d%s%s\n", seq, rq.method, rq.path,
			      (unsigned long long)f.count, r ? 0 : rs.status,
			      r ? " cut-response" : "", rq.has_auth ? " auth" : "");
		}
		{
			int closing = r || rs.close || rs.kind == BODY_EOF;

			head_free(&rq);
			head_free(&rs);
			if (closing)
				break;
		}
	}
out:
	if (ufd >= 0)
		close(ufd);
	close(c->cfd);
	free(cr);
	free(ur);
	free(c);
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: faultproxy --target 127.0.0.1:PORT [--port-file F] [--log F]\n"
			"  [--match STR] [--fail-first K] [--throttle-first K]\n"
			"  [--unauth-first K --challenge VALUE]\n"
			"  [--cut-request-after N] [--cut-response-after N] [--cuts K]\n"
			"  [--stall-response-after N] [--delay-ms MS] [--trickle BPS]\n"
			"  [--trickle-request BPS]\n"
			"  [--redirect-to URL] [--set-auth VALUE]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static struct conf cf;
	static struct state st;
	const char *target = NULL, *port_file = NULL, *log = NULL;
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	int lfd, i, one = 1;

	signal(SIGPIPE, SIG_IGN);
	cf.cut_req = cf.cut_resp = cf.stall_resp = -1;
	cf.cuts = 1;
	cf.logfd = -1;
	pthread_mutex_init(&st.mu, NULL);
	for (i = 1; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			usage();
		i++;
		if (!strcmp(o, "--target"))
			target = v;
		else if (!strcmp(o, "--port-file"))
			port_file = v;
		else if (!strcmp(o, "--log"))
			log = v;
		else if (!strcmp(o, "--match"))
			cf.match = v;
		else if (!strcmp(o, "--fail-first"))
			cf.fail_first = atol(v);
		else if (!strcmp(o, "--throttle-first"))
			cf.throttle_first = atol(v);
		else if (!strcmp(o, "--unauth-first"))
			cf.unauth_first = atol(v);
		else if (!strcmp(o, "--challenge"))
			cf.challenge = v;
		else if (!strcmp(o, "--cut-request-after"))
			cf.cut_req = atoll(v);
		else if (!strcmp(o, "--cut-response-after"))
			cf.cut_resp = atoll(v);
		else if (!strcmp(o, "--stall-response-after"))
			cf.stall_resp = atoll(v);
		else if (!strcmp(o, "--cuts"))
			cf.cuts = atol(v);
		else if (!strcmp(o, "--delay-ms"))
			cf.delay_ms = atol(v);
		else if (!strcmp(o, "--trickle"))
			cf.trickle = atol(v);
		else if (!strcmp(o, "--trickle-request"))
			cf.trickle_req = atol(v);
		else if (!strcmp(o, "--redirect-to"))
			cf.redirect_to = v;
		else if (!strcmp(o, "--set-auth"))
			cf.set_auth = v;
		else
			usage();
	}
	if (!target)
		usage();
	{
		char host[64];
		const char *colon = strrchr(target, ':');

		if (!colon || (size_t)(colon - target) >= sizeof(host))
			usage();
		memcpy(host, target, (size_t)(colon - target));
		host[colon - target] = '\0';
		memset(&cf.target, 0, sizeof(cf.target));
		cf.target.sin_family = AF_INET;
		cf.target.sin_port = htons((uint16_t)atoi(colon + 1));
		if (inet_pton(AF_INET, host, &cf.target.sin_addr) != 1 ||
		    (ntohl(cf.target.sin_addr.s_addr) >> 24) != 127) {
			fprintf(stderr, "faultproxy: the target must be a 127.0.0.0/8 address\n");
			return 2;
		}
	}
	if (log) {
		cf.logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (cf.logfd < 0) {
			perror(log);
			return 1;
		}
	}
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 64) ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen)) {
		perror("faultproxy: listen");
		return 1;
	}
	if (port_file) {
		char tmp[4096];
		FILE *f;

		snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
		f = fopen(tmp, "w");
		if (!f || fprintf(f, "%u\n", ntohs(a.sin_port)) < 0 || fclose(f) ||
		    rename(tmp, port_file)) {
			perror(port_file);
			return 1;
		}
	} else {
		printf("%u\n", ntohs(a.sin_port));
		fflush(stdout);
	}
	for (;;) {
		struct ctx *c;
		pthread_t t;
		int cfd = accept(lfd, NULL, NULL);

		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			perror("faultproxy: accept");
			return 1;
		}
		c = calloc(1, sizeof(*c));
		c->cf = &cf;
		c->st = &st;
		c->cfd = cfd;
		if (pthread_create(&t, NULL, serve, c)) {
			close(cfd);
			free(c);
			continue;
		}
		pthread_detach(t);
	}
}
