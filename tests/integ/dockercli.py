#!/usr/bin/env python3
"""What a docker client sends for `docker build .` against what it sends
when ctxpack build pipes the context to it, on random trees and ignore files.

  dockercli.py serve SOCKET DIR     a stand-in daemon on a unix socket: answers
                                    /_ping and /version, keeps the body of each
                                    POST .../build as DIR/ctx-N.tar and refuses
                                    the build (nothing is built)
  dockercli.py diff SOCKET DIR CTXPACK FIRST COUNT CLIENT...
                                    for seeds FIRST..FIRST+COUNT-1: a random
                                    context, `CLIENT build .` and `ctxpack build
                                    -- CLIENT build -` with the classic builder,
                                    the two archives the client sent compared
                                    (names, types, permission bits, link
                                    targets), and so is what `ctxpack pack
                                    --classic --docker-client VERSION` writes
                                    (VERSION: the client's own); prints one
                                    line per difference and a last line "N
                                    contexts, N differ"
  dockercli.py duls CTXPACK FIRST COUNT
                                    for the same contexts, in each flavour
                                    (default, --classic, --docker-client
                                    20.10.24 with and without --classic):
                                    du's count of included entries is the
                                    number of entries ls lists; last line
                                    "N contexts, N differ"

The client is the real one: it reads the ignore file, walks and tars the
context itself (or detects ctxpack's tar on its stdin) and sends it; only the
daemon is ours, so that what crosses the socket can be read.  One difference
is Docker's own and expected: the classic client sends no header for an
excluded directory it entered for an exception (its daemon creates it 0755),
ctxpack sends it 0755 (docs/archive-format.md), so such a directory counts
when it has a descendant in the client's archive.
"""
import glob
import http.server
import itertools
import json
import os
import random
import shutil
import socketserver
import subprocess
import sys
import tarfile

import tartree  # beside this file: the entry kinds and names

NAMES = ["a", "b", "ab", "ba", "c.md", "x.txt", ".h", "a b", "é", "[x]", "a*", "q?",
         "d\\e", "node_modules", "sub", "aa", "-x", "#c", "!n", "  sp", "(g)", "v+1"]
BAD = ["[", "a[", "\\", "[]", "[a-]", "[z-a]", "!", "a/**/[", "\\q", "a^b*", "c++"]


def serve(sock, outdir):
    count = itertools.count()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, code, body, ctype="application/json"):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Api-Version", "1.41")
            self.send_header("Ostype", "linux")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self):
            self.reply(200, b"OK", "text/plain")

        def do_GET(self):
            if self.path.endswith("/_ping"):
                return self.reply(200, b"OK", "text/plain")
            if self.path.endswith("/version"):
                return self.reply(200, json.dumps({
                    "ApiVersion": "1.41", "MinAPIVersion": "1.12", "Version": "20.10.24",
                    "Os": "linux", "Arch": "amd64"}).encode())
            self.reply(404, b'{"message":"not here"}')

        def do_POST(self):
            body = bytearray()
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    body += self.rfile.read(size)
                    self.rfile.readline()
            else:
                body += self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if "/build" not in self.path:
                return self.reply(404, b'{"message":"not here"}')
            path = os.path.join(outdir, "ctx-%d.tar" % next(count))
            with open(path + ".tmp", "wb") as f:
                f.write(body)
            os.rename(path + ".tmp", path)
            self.reply(500, b'{"message":"captured, not built"}')

    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

    if os.path.exists(sock):
        os.unlink(sock)
    Server(sock, Handler).serve_forever()


def make_tree(root, rnd):
    os.makedirs(root)
    made = []

    def fill(d, depth):
        for _ in range(rnd.randint(1 if depth == 0 else 0, 4 if depth < 3 else 0)):
            p = os.path.join(d, rnd.choice(NAMES))
            if os.path.lexists(p):
                continue
            k = rnd.random()
            if k < 0.35 and depth < 3:
                os.mkdir(p)
                if rnd.random() < 0.1:
                    os.chmod(p, rnd.choice([0o700, 0o1777, 0o750]))
                made.append(p)
                fill(p, depth + 1)
            elif k < 0.85:
                with open(p, "w") as f:
                    f.write(os.path.basename(p))
                os.chmod(p, rnd.choice([0o644, 0o644, 0o600, 0o755, 0o4755, 0o640]))
                made.append(p)
            elif k < 0.95 and made:
                target = rnd.choice(made)
                os.symlink(os.path.relpath(target, d) if rnd.random() < 0.7 else "nowhere", p)
                made.append(p)
            elif made:
                target = rnd.choice(made)
                if os.path.isfile(target) and not os.path.islink(target):
                    os.link(target, p)
                    made.append(p)

    fill(root, 0)
    with open(os.path.join(root, "Dockerfile"), "w") as f:
        f.write("FROM scratch\nCOPY . /\n")


def make_pattern(rnd, paths):
    """A pattern made from a path of the tree, parts of it turned into
    wildcards, sometimes an exception, anchored or broken."""
    if rnd.random() < 0.03:
        return rnd.choice(BAD)
    parts = []
    for c in rnd.choice(paths).split("/"):
        r = rnd.random()
        if r < 0.15:
            c = "*"
        elif r < 0.25:
            c = "**"
        elif r < 0.32:
            c = c[0] + "*"
        elif r < 0.38:
            c = "?" * len(c)
        elif r < 0.42:
            c = "[" + c[0] + "]" + c[1:]
        parts.append(c)
    if len(parts) > 1 and rnd.random() < 0.2:
        parts.pop()
    if rnd.random() < 0.1:
        parts.insert(0, "**")
    p = "/".join(parts)
    if rnd.random() < 0.35:
        p = "!" + p
    if rnd.random() < 0.05:
        p = "/" + p
    return p


def make_context(root, seed):
    rnd = random.Random(seed)
    make_tree(root, rnd)
    paths = []
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            paths.append(os.path.relpath(os.path.join(d, n), root))
    lines = [make_pattern(rnd, paths) for _ in range(rnd.randint(1, 6))]
    with open(os.path.join(root, ".dockerignore"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return lines


def listing(path):
    out = {}
    with tarfile.open(path) as t:
        for m in t.getmembers():
            kind = tartree.KINDS.get(m.type, "?")
            out[tartree.plain(m.name)] = (kind, "%04o" % (m.mode & 0o7777),
                                          m.linkname if kind in "lh" else "")
    return out


def capture(outdir, argv, cwd, env):
    for old in glob.glob(os.path.join(outdir, "*.tar")):
        os.unlink(old)
    p = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    tars = glob.glob(os.path.join(outdir, "*.tar"))
    if not tars:
        last = p.stdout.decode("utf-8", "replace").strip().splitlines()[-1:]
        return None, last[0] if last else "exit %d" % p.returncode
    return listing(tars[0]), None


def client_version(client):
    """'Docker version 20.10.24+dfsg1, build 297e128' -> '20.10.24+dfsg1'"""
    out = subprocess.run([client, "--version"], stdout=subprocess.PIPE, check=True).stdout
    return out.decode().split()[2].rstrip(",")


def pack_listing(outdir, argv, cwd):
    """ctxpack pack ARGV's archive (uncompressed) as listing() reads it."""
    out = os.path.join(outdir, "pack.out")
    p = subprocess.run(argv + ["-q", "--compress", "none", "-o", out, "."], cwd=cwd,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    if p.returncode:
        last = p.stdout.decode("utf-8", "replace").strip().splitlines()[-1:]
        return None, last[0] if last else "exit %d" % p.returncode
    return listing(out), None


def same(ref, got):
    """Whether two sends agree, but for Docker's own expected difference."""
    if ref is not None and got is not None:
        got = dict(got)
        for name in [n for n in got if n not in ref]:
            if got[name] == ("d", "0755", "") and any(r.startswith(name + "/") for r in ref):
                del got[name]
    return (ref is None) == (got is None) and ref == got, got


def diff(sock, outdir, ctxpack, first, count, clients):
    env = dict(os.environ, DOCKER_HOST="unix://" + sock, DOCKER_BUILDKIT="0")
    work = os.path.join(outdir, "work")
    versions = {c: client_version(c) for c in clients}
    bad = 0
    for seed in range(first, first + count):
        shutil.rmtree(work, ignore_errors=True)
        lines = make_context(work, seed)
        for client in clients:
            ref, ref_err = capture(outdir, [client, "build", "."], work, env)
            sends = [("ctxpack build", capture(outdir, [ctxpack, "build", "-q", "--", client,
                                                        "build", "-"], work, env)),
                     ("ctxpack pack --docker-client " + versions[client],
                      pack_listing(outdir, [ctxpack, "pack", "--classic", "--docker-client",
                                            versions[client]], work))]
            for what, (got, got_err) in sends:
                agree, got = same(ref, got)
                if agree:
                    continue
                bad += 1
                print("seed %d, %s, %s, ignore file %r:" % (seed, client, what, "\n".join(lines)))
                if ref is None or got is None:
                    print("  docker: %s; ctxpack: %s" % (ref_err or "sent", got_err or "sent"))
                    continue
                for name in sorted(set(ref) | set(got)):
                    if ref.get(name) != got.get(name):
                        print("  %r: docker %s, ctxpack %s" % (name, ref.get(name), got.get(name)))
    print("%d contexts, %d differ" % (count * len(clients), bad))


FLAVOURS = [[], ["--classic"], ["--docker-client", "20.10.24"],
            ["--classic", "--docker-client", "20.10.24"]]


def duls(ctxpack, first, count):
    work = os.path.join(os.environ.get("TMPDIR", "/tmp"), "duls-%d" % os.getpid())
    bad = 0
    try:
        for seed in range(first, first + count):
            shutil.rmtree(work, ignore_errors=True)
            lines = make_context(work, seed)
            for f in FLAVOURS:
                ls = subprocess.run([ctxpack, "ls"] + f + ["."], cwd=work,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                du = subprocess.run([ctxpack, "du", "--json"] + f + ["."], cwd=work,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                if ls.returncode or du.returncode:
                    n = "exit %d" % ls.returncode
                    m = "exit %d" % du.returncode
                else:
                    n = len(ls.stdout.splitlines())
                    m = json.loads(du.stdout)["included"]["entries"]
                if n != m:
                    bad += 1
                    print("seed %d, %s, ignore file %r: ls %s, du %s" %
                          (seed, " ".join(f) or "default", "\n".join(lines), n, m))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("%d contexts, %d differ" % (count * len(FLAVOURS), bad))


def main():
    if sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "diff":
        diff(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]),
             sys.argv[7:])
    elif sys.argv[1] == "duls":
        duls(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit("usage: dockercli.py serve SOCKET DIR | diff SOCKET DIR CTXPACK FIRST COUNT "
                 "CLIENT... | duls CTXPACK FIRST COUNT")


if __name__ == "__main__":
    main()
