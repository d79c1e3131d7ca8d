#!/usr/bin/env python3
"""Where `ctxpack build` with BuildKit spends its time (issue 13, item 4).

Runs on the bench's big build context (bench/work/harness/build-ctx-big, made
by `python3 bench/harness.py --only build`) with a private dockerd (the one
bench/docker_build.py starts), BuildKit, nothing changed between runs, the
five commands interleaved, N runs each (default 11):

  ref            docker build .
  direct         ctxpack build -- docker build - (the default: DIR itself)
  ctxpack        ctxpack build --send dir -- docker build - (a kept directory)
  mirror         docker build -f DIR/dockerfile/Dockerfile DIR/context: docker
                 alone on the kept directory ctxpack hands it
  mirror-own-df  docker build DIR/context (the Dockerfile inside it)

ref vs mirror is what the kept directory costs docker; ctxpack vs mirror is
ctxpack's own time (its walk) before docker starts; direct vs ref is what
ctxpack costs when it hands docker DIR itself.

  python3 bench/build_split.py [N]
"""
import glob
import os
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
import docker_build as db  # noqa: E402

work = os.path.join(BENCH, "work", "harness")
ctx = os.path.join(work, "build-ctx-big")
if not os.path.isdir(ctx):
    sys.exit("%s is missing: run `python3 bench/harness.py --only build` once" % ctx)
runs = int(sys.argv[1]) if len(sys.argv) > 1 else 11
xdg = tempfile.mkdtemp(prefix="ctxpack-split.")
d = db.Dockerd(work, print)
d.start()
try:
    db.base_image(d.host, work)
    env = dict(os.environ, DOCKER_HOST=d.host, DOCKER_BUILDKIT="1", XDG_CACHE_HOME=xdg)
    D = db.DOCKER
    cp = [os.path.join(BENCH, "..", "ctxpack"), "build", "-q", "--send", "dir", "--", D,
          "build", "--progress=plain", "-t", "bench-got", "-"]
    direct = [os.path.join(BENCH, "..", "ctxpack"), "build", "-q", "--", D, "build",
              "--progress=plain", "-t", "bench-dir", "-"]
    ref = [D, "build", "--progress=plain", "-t", "bench-ref", "."]
    for c in (ref, cp, ref, cp):  # warm the builder and the directory
        subprocess.run(c, cwd=ctx, env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    sd = glob.glob(os.path.join(xdg, "ctxpack", "build", "*", ""))[0]
    cmds = {
        "ref": ref,
        "direct": direct,
        "ctxpack": cp,
        "mirror": [D, "build", "--progress=plain", "-f", sd + "dockerfile/Dockerfile",
                   "-t", "bench-mir", sd + "context"],
        "mirror-own-df": [D, "build", "--progress=plain", "-t", "bench-mir2", sd + "context"],
    }
    t = {k: [] for k in cmds}
    for _ in range(runs):
        for k, c in cmds.items():
            os.sync()
            t0 = time.perf_counter()
            subprocess.run(c, cwd=ctx, env=env, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            t[k].append(time.perf_counter() - t0)
    for k, v in t.items():
        print("%-14s median %.3f s  min %.3f s" % (k, statistics.median(v), min(v)))
finally:
    d.stop()
    subprocess.run(["rm", "-rf", xdg])
