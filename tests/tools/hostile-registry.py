#!/usr/bin/env python3
"""hostile-registry: a small read-only OCI registry on 127.0.0.1 that
serves an OCI image layout (what `ctxpack cache save --store oci:DIR`
wrote, maybe rewritten by the test) and misbehaves on request, for the
tests of what a hostile store must not be able to do to a restore.

    hostile-registry.py --layout DIR --port-file F [--log F] [faults...]

Every repository name serves the same layout.  GET and HEAD only; any other
method gets 405.  Faults apply to requests whose path contains --match STR
(default "/blobs/sha256:"):

  --drip BPS            send the body at BPS bytes a second (1 byte at a time)
  --stall-after N       send N bytes of the body, then nothing until the
                        client gives up (--state-file then gets "stalled N")
  --body-file FILE      send FILE's bytes instead (a wrong digest, a body
                        longer than declared); Content-Length is FILE's size
  --redirect-to URL     answer 307 with Location: URL + the request path
  --extra-tag TAG       add TAG to every tags list (repeatable; may hold
                        newlines or control characters: JSON escapes them)

It listens on 127.0.0.1 only, writes its port to --port-file once it
listens, and runs until killed (by PID, by the test that started it).
The log gets one line per request: "METHOD PATH STATUS".
"""
import argparse
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

A = None
LOG_LOCK = threading.Lock()


def log(line):
    if A.log:
        with LOG_LOCK, open(A.log, "a") as f:
            f.write(line + "\n")


def index():
    with open(os.path.join(A.layout, "index.json")) as f:
        return json.load(f)


def blob_path(digest):
    if not digest.startswith("sha256:") or len(digest) != 71 or \
            any(c not in "0123456789abcdef" for c in digest[7:]):
        return None
    return os.path.join(A.layout, "blobs", "sha256", digest[7:])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body=b"", ctype="application/json", headers=None):
        faulty = A.match in self.path
        if faulty and A.redirect_to and status == 200:
            self.send_response(307)
            self.send_header("Location", A.redirect_to + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            log("%s %s 307" % (self.command, self.path))
            return
        if faulty and A.body_file and status == 200:
            with open(A.body_file, "rb") as f:
                body = f.read()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        log("%s %s %d" % (self.command, self.path, status))
        if self.command == "HEAD":
            return
        if not faulty or status != 200:
            self.wfile.write(body)
            return
        if A.stall_after is not None:
            self.wfile.write(body[:A.stall_after])
            self.wfile.flush()
            if A.state_file:
                with open(A.state_file + ".tmp", "w") as f:
                    f.write("stalled %d\n" % min(A.stall_after, len(body)))
                os.rename(A.state_file + ".tmp", A.state_file)
            # until the client hangs up
            while True:
                time.sleep(0.2)
                try:
                    if self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                        return
                except BlockingIOError:
                    pass
                except OSError:
                    return
        if A.drip:
            for i in range(len(body)):
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
                time.sleep(1.0 / A.drip)
            return
        self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        try:
            self.route()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def route(self):
        p = self.path.split("?")[0]
        if p in ("/v2/", "/v2"):
            return self.reply(200, b"{}")
        parts = p.split("/")
        if len(parts) < 5 or parts[1] != "v2":
            return self.reply(404, b'{"errors":[{"code":"NOT_FOUND"}]}')
        kind, ref = parts[-2], parts[-1]
        repo = "/".join(parts[2:-2])
        if parts[-2:] == ["tags", "list"]:
            tags = []
            for d in index()["manifests"]:
                t = (d.get("annotations") or {}).get("org.opencontainers.image.ref.name")
                if t:
                    tags.append(t)
            tags += A.extra_tag
            return self.reply(200, json.dumps({"name": repo, "tags": tags}).encode())
        if kind == "manifests":
            digest = ref
            if not ref.startswith("sha256:"):
                digest = None
                for d in index()["manifests"]:
                    if (d.get("annotations") or {}).get("org.opencontainers.image.ref.name") == ref:
                        digest = d["digest"]
            bp = blob_path(digest) if digest else None
            if not bp or not os.path.exists(bp):
                return self.reply(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
            with open(bp, "rb") as f:
                body = f.read()
            mt = json.loads(body).get("mediaType", "application/vnd.oci.image.manifest.v1+json")
            return self.reply(200, body, mt, {"Docker-Content-Digest": digest})
        if kind == "blobs":
            bp = blob_path(ref)
            if not bp or not os.path.exists(bp):
                return self.reply(404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}')
            with open(bp, "rb") as f:
                body = f.read()
            return self.reply(200, body, "application/octet-stream",
                              {"Docker-Content-Digest": ref})
        return self.reply(404, b'{"errors":[{"code":"NOT_FOUND"}]}')

    def refuse(self):
        self.send_response(405)
        self.send_header("Content-Length", "0")
        self.end_headers()
        log("%s %s 405" % (self.command, self.path))

    do_PUT = do_POST = do_PATCH = do_DELETE = refuse


def main():
    global A
    ap = argparse.ArgumentParser()
    ap.add_argument("--layout", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log")
    ap.add_argument("--match", default="/blobs/sha256:")
    ap.add_argument("--drip", type=float)
    ap.add_argument("--stall-after", type=int)
    ap.add_argument("--state-file")
    ap.add_argument("--body-file")
    ap.add_argument("--redirect-to")
    ap.add_argument("--extra-tag", action="append", default=[])
    A = ap.parse_args()
    class Server(ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            pass  # clients hanging up mid-body is what the tests do
    srv = Server(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    with open(A.port_file + ".tmp", "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(A.port_file + ".tmp", A.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
