"""The `build` section of bench/harness.py: `ctxpack build -- docker build -`
against `docker build .` on the same warm local daemon (Debian's dockerd,
started here on a socket and data root of its own, stopped by its PID).

Two contexts made from the monorepo (bench/README.md):
  small: a .dockerignore that leaves out .git, node_modules, .venv, caches
         and secrets: a few hundred MB excluded, about 10 MB included
         (sources, lock files, the built dist/, images, docs);
  big:   the monorepo's own .dockerignore, which leaves .venv in, and
         35 MB of test fixtures: about 150 MB included.
For each, with the classic builder and with BuildKit: an unchanged rebuild
(every step cached) and a rebuild after a one-line edit of a source file
(COPY runs again), medians over the runs, the two sides alternating and
each editing its own file before its run, so that neither reuses the
other's cache.  The bytes each side sends are read from docker's own
output ("Sending build context", BuildKit's "transferring context").

Nothing is pulled: the base image is a busybox-static rootfs imported with
`docker import`; dockerd is given a proxy on a closed loopback port.
"""
import json
import os
import re
import shutil
import statistics
import subprocess
import time

DOCKERD = "/usr/sbin/dockerd"
DOCKER = "/usr/bin/docker"

SMALL_IGNORE = """.git
.gitignore
**/node_modules
**/.venv
**/__pycache__
**/*.pyc
.env
*.md
!docs/**
docker-compose*.yml
.vscode
.idea
Dockerfile
.dockerignore
"""

DOCKERFILE = "FROM bench-base\nWORKDIR /app\nCOPY . /app\nCMD [\"/bin/sh\"]\n"


class Dockerd:
    def __init__(self, work, log):
        self.dir = os.path.join(work, "dockerd")
        self.log = log
        self.proc = None

    def start(self):
        # short paths: sockets below must fit in sun_path
        self.run_dir = "/tmp/ctxpack-bench-dk"
        shutil.rmtree(self.run_dir, ignore_errors=True)
        os.makedirs(os.path.join(self.run_dir, "exec"))
        os.makedirs(self.dir, exist_ok=True)
        cfg = os.path.join(self.run_dir, "daemon.json")
        with open(cfg, "w") as f:
            f.write("{}\n")
        self.host = "unix://%s/docker.sock" % self.run_dir
        env = dict(os.environ, HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
                   NO_PROXY="127.0.0.1,localhost")
        driver = "overlay2" if self._overlay_ok() else "vfs"
        self.driver = driver
        self.proc = subprocess.Popen(
            [DOCKERD, "--storage-driver=" + driver, "--iptables=false", "--ip-masq=false",
             "--bridge=none", "--userland-proxy=false", "--config-file", cfg, "-H", self.host,
             "--data-root", os.path.join(self.dir, "root-" + driver),
             "--exec-root", os.path.join(self.run_dir, "exec"),
             "--pidfile", os.path.join(self.run_dir, "dockerd.pid")],
            env=env, stdout=open(os.path.join(self.run_dir, "dockerd.log"), "w"),
            stderr=subprocess.STDOUT)
        for _ in range(300):
            if subprocess.run([DOCKER, "-H", self.host, "version"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode == 0:
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("dockerd did not start (see %s/dockerd.log)" % self.dir)

    def _overlay_ok(self):
        try:
            return "overlay" in open("/proc/filesystems").read()
        except OSError:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        # the run directory goes (its log is kept in the work directory)
        run_dir = getattr(self, "run_dir", None)
        if run_dir and os.path.isdir(run_dir):
            log = os.path.join(run_dir, "dockerd.log")
            if os.path.exists(log):
                os.makedirs(self.dir, exist_ok=True)
                shutil.move(log, os.path.join(self.dir, "dockerd.log"))
            shutil.rmtree(run_dir, ignore_errors=True)


def base_image(host, work):
    r = os.path.join(work, "busybox-rootfs")
    if not os.path.isdir(r):
        os.makedirs(os.path.join(r, "bin"))
        shutil.copy("/bin/busybox", os.path.join(r, "bin", "busybox"))
        os.symlink("busybox", os.path.join(r, "bin", "sh"))
    tar = subprocess.Popen(["tar", "-C", r, "-c", "."], stdout=subprocess.PIPE)
    subprocess.run([DOCKER, "-H", host, "import", "-", "bench-base"], stdin=tar.stdout,
                   stdout=subprocess.DEVNULL, check=True)
    tar.wait()


def make_contexts(mono, work):
    """small and big copies of the monorepo (cp -a once, kept)."""
    out = {}
    for name in ("small", "big"):
        d = os.path.join(work, "build-ctx-" + name)
        if not os.path.isdir(d):
            tmp = d + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            subprocess.run(["cp", "-a", mono, tmp], check=True)
            if name == "small":
                with open(os.path.join(tmp, ".dockerignore"), "w") as f:
                    f.write(SMALL_IGNORE)
                # project documentation and design assets, about 8 MB
                docs = os.path.join(tmp, "docs")
                os.makedirs(docs, exist_ok=True)
                for i in range(160):
                    with open(os.path.join(docs, "page-%03d.md" % i), "w") as f:
                        f.write(("Section %d. " % i + "lorem ipsum dolor sit amet " * 8 + "\n") * 220)
            else:
                # test fixtures and seed data, about 35 MB, so that about
                # 150 MB is included
                fx = os.path.join(tmp, "backend", "tests", "fixtures")
                os.makedirs(fx, exist_ok=True)
                for i in range(70):
                    with open(os.path.join(fx, "orders-%02d.json" % i), "w") as f:
                        for j in range(4000):
                            f.write('{"order": %d, "item": %d, "qty": %d, "note": "%s"},\n'
                                    % (i * 4000 + j, (i * 7919 + j * 104729) % 100003, j % 17,
                                       "x" * (40 + (i * j) % 60)))
            with open(os.path.join(tmp, "Dockerfile"), "w") as f:
                f.write(DOCKERFILE)
            os.rename(tmp, d)
        out[name] = d
    return out


def sent_bytes(text):
    """Bytes of context docker reports sending, from its output."""
    units = {"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 1024, "mib": 1 << 20, "gib": 1 << 30}
    total = 0.0
    for m in re.finditer(r"Sending build context to Docker daemon\s+([\d.]+)\s*([kKmMgG]?i?B)", text):
        total = max(total, float(m.group(1)) * units[m.group(2).lower()])
    # BuildKit: "#N transferring context: 12.3MB 0.2s done" (the last per step)
    last = {}
    for m in re.finditer(r"#(\d+) transferring context: ([\d.]+)([kKmMgG]?i?B)", text):
        last[m.group(1)] = float(m.group(2)) * units[m.group(3).lower()]
    return int(total + sum(last.values()))


def run_section(h):
    """h: the Harness.  Adds results["sections"]["build"] and goals."""
    if not (os.access(DOCKERD, os.X_OK) and os.access(DOCKER, os.X_OK)) or os.geteuid() != 0:
        raise h.NotRunError("needs root and Debian's docker.io (dockerd, /usr/bin/docker)")
    h.monorepo()
    ctxs = make_contexts(h.mono, h.work)
    d = Dockerd(h.work, h.log)
    d.start()
    res = {"storage_driver": d.driver, "contexts": {}}
    try:
        base_image(d.host, h.work)
        env = dict(h.env, DOCKER_HOST=d.host)
        env.pop("DOCKER_BUILDKIT", None)
        # a build's time moves by several hundredths from run to run (the
        # daemon's own work): more runs than the other sections' default,
        # and for the short builds as many more as fit in about 20 s (a
        # 0.2 s build moves by 10-20 ms, its ctxpack side costs ~6 ms)
        runs = max(h.runs, 9)
        budget_s, most = 20.0, 31
        for cname, ctx in ctxs.items():
            size = json.loads(h.r.out(h.cp("du", "--json", ctx), env=env))
            res["contexts"][cname] = {"included": size["included"], "excluded": size["excluded"]}
            h.log("build context %s: %s" % (cname, res["contexts"][cname]))
            edit_file = os.path.join(ctx, "backend", "app", "main.py")
            counter = [0]

            def edit():
                counter[0] += 1
                with open(edit_file, "a") as f:
                    f.write("# edit %d at %f\n" % (counter[0], time.time()))

            for bk in ("0", "1"):
                bname = "classic" if bk == "0" else "BuildKit"
                benv = dict(env, DOCKER_BUILDKIT=bk)
                prog = ["--progress=plain"] if bk == "1" else []
                ref_cmd = [DOCKER, "build"] + prog + ["-t", "bench-ref", "."]
                got_cmd = h.cp("build", "-q", "--") + [DOCKER, "build"] + prog + ["-t", "bench-got", "-"]
                for scen in ("unchanged", "edit"):
                    times = {"docker": [], "ctxpack": []}
                    sent = {"docker": [], "ctxpack": []}
                    i, t_scen = (-1 if scen == "edit" else -2), 0.0
                    while i < runs or (i < most and t_scen < budget_s):
                        # which side goes first alternates, so that what the
                        # daemon still does after one build (the session's
                        # teardown, its own bookkeeping) weighs on both alike
                        order = (("docker", ref_cmd), ("ctxpack", got_cmd))
                        for side, cmd in order if i % 2 == 0 else order[::-1]:
                            if scen == "edit":
                                edit()
                            os.sync()
                            t0 = time.perf_counter()
                            p = subprocess.run(cmd, cwd=ctx, env=benv, stdout=subprocess.PIPE,
                                               stderr=subprocess.STDOUT)
                            t = time.perf_counter() - t0
                            out = p.stdout.decode("utf-8", "replace")
                            if p.returncode:
                                raise h.Error("build failed: %s\n%s" % (" ".join(cmd), out[-3000:]))
                            if i >= 0:
                                times[side].append(t)
                                sent[side].append(sent_bytes(out))
                                t_scen += t
                        i += 1
                    med = {s: statistics.median(v) for s, v in times.items()}
                    key = "%s %s %s" % (cname, bname, scen)
                    res[key] = {"docker_s": times["docker"], "ctxpack_s": times["ctxpack"],
                                "docker_median_s": med["docker"],
                                "ctxpack_median_s": med["ctxpack"],
                                "docker_sent_bytes": statistics.median(sent["docker"]),
                                "ctxpack_sent_bytes": statistics.median(sent["ctxpack"])}
                    ratio = med["ctxpack"] / med["docker"]
                    goal = 1.0 if bk == "0" else 1.05
                    h.goal("build", "build %s, %s, %s vs docker build ." % (cname, bname, scen),
                           ratio, goal, "le", "docker build .",
                           "%.2f vs %.2f s; sent %s vs %s" % (
                               med["ctxpack"], med["docker"],
                               h.human(res[key]["ctxpack_sent_bytes"]),
                               h.human(res[key]["docker_sent_bytes"])))
                    h.log("build %s: %.3f vs %.3f s (%.2fx)" % (key, med["ctxpack"], med["docker"], ratio))
    finally:
        d.stop()
    h.results["sections"]["build"] = res
