#!/usr/bin/env python3
"""ctxpack benchmark harness (`make bench`, `make bench-quick`).

usage: bench/run [--quick] [--runs N] [--only SECTION,...] [--allow-missing]
                 [--rebuild] [--out DIR] [--work DIR] [--replot]

Assembles its own contexts under bench/work/harness/ (kept between runs where
they are deterministic), measures every ctxpack command against its baseline
in the same run (medians of N, with min, max and peak memory), and writes
bench/results/latest.{md,json,png} (--quick: bench/results/quick.*; --only:
bench/results/partial.*, so that a run of some sections never replaces the
last full run's results).

Sections: sizes, ls, hash, pack, small, registry, cache, build, image.  A command that fails stops
the run with a non-zero exit and its stderr; nothing is written then.  A
command that says it is not implemented yet marks its section "not run"; the
results are written, marked partial, and the exit status is 1 unless
--allow-missing.  See bench/README.md for what each number means.

Python 3 standard library only.  Network: 127.0.0.1 (the registry this script
starts) and, through npm only, the npm registry.
"""
import argparse
import datetime
import hashlib
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import stat
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
TEMPLATE = os.path.join(BENCH, "monorepo")
# Bump when the way the monorepo is assembled changes (Harness.monorepo and
# the _mono_* methods), so cached copies are rebuilt.
MONOREPO_RECIPE = "3"

# The .dockerignore of 10 patterns that issue 2 uses for `ls` (as in bench/ls.sh).
LS_PATTERNS = """.git
**/node_modules
**/__pycache__
**/*.pyc
**/*.bin
src1*/**/tests*
dist
*.log
!important.log
**/.cache
"""

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Bench Dev", "GIT_AUTHOR_EMAIL": "dev@shop.example",
    "GIT_COMMITTER_NAME": "Bench Dev", "GIT_COMMITTER_EMAIL": "dev@shop.example",
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
}


class BenchError(Exception):
    """A command failed or produced something wrong: the run stops."""


class NotRun(Exception):
    """The section's command is not implemented yet."""


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def human_bytes(n):
    if n is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1000.0
    return str(n)


def md(text):
    """Text for a Markdown table cell."""
    return str(text).replace("|", "\\|")


def fmt_s(t):
    if t is None:
        return "—"
    if t < 0.1:
        return "%.1f ms" % (t * 1000)
    if t < 10:
        return "%.3f s" % t
    return "%.1f s" % t


def fmt_mem(kb):
    if not kb:
        return "—"
    return "%.0f MiB" % (kb / 1024.0) if kb >= 10240 else "%.1f MiB" % (kb / 1024.0)


# ---------------------------------------------------------------------------
# Running commands: pipelines with wall time, peak RSS and CPU per run.

class Sample:
    def __init__(self, wall, rss_kb, cpu, stdout=None):
        self.wall, self.rss_kb, self.cpu, self.stdout = wall, rss_kb, cpu, stdout


class Runner:
    """Each stage runs under GNU time (/usr/bin/time -f '%M %U %S'): a child
    forked from this Python process would report Python's own RSS as its peak
    (Linux keeps the pre-exec high-water mark), so the peak is taken from the
    process that GNU time forks.  Wall time is measured here, around the
    whole pipeline."""
    TIME = "/usr/bin/time"

    def __init__(self, env):
        self.env = env
        if not os.access(self.TIME, os.X_OK):
            raise BenchError("%s is missing (Debian package time; scripts/install-deps)" % self.TIME)

    def run(self, stages, cwd=None, env=None, out=None, capture=False, check=True,
            stdin_path=None):
        """Run a pipeline (a list of argv lists, or one argv list).

        stdout of the last stage goes to the file `out`, or is captured
        (capture=True), else to /dev/null.  Returns a Sample; the peak memory
        is the sum of the stages' max RSS (they run at the same time), the CPU
        time is user+sys of all stages and their children."""
        if stages and isinstance(stages[0], str):
            stages = [stages]
        env = env if env is not None else self.env
        procs, opened = [], []
        errs = [tempfile.TemporaryFile() for _ in stages]
        tfiles = []
        for _ in stages:
            fd, name = tempfile.mkstemp(prefix="bench-time-")
            os.close(fd)
            tfiles.append(name)
        prev = None
        t0 = time.perf_counter()
        try:
            for i, argv in enumerate(stages):
                last = i == len(stages) - 1
                if prev is not None:
                    sin = prev
                elif stdin_path:
                    sin = open(stdin_path, "rb")
                    opened.append(sin)
                else:
                    sin = subprocess.DEVNULL
                if not last:
                    sout = subprocess.PIPE
                elif capture:
                    sout = tempfile.TemporaryFile()
                    opened.append(sout)
                elif out:
                    sout = open(out, "wb")
                    opened.append(sout)
                else:
                    sout = subprocess.DEVNULL
                p = subprocess.Popen([self.TIME, "-f", "%M %U %S", "-o", tfiles[i], "--"] + list(argv),
                                     cwd=cwd, env=env, stdin=sin, stdout=sout, stderr=errs[i])
                if prev is not None:
                    prev.close()
                prev = p.stdout if not last else None
                procs.append(p)
            codes = []
            for p in procs:
                _, status, _ = os.wait4(p.pid, 0)
                p.returncode = os.waitstatus_to_exitcode(status)
                codes.append(p.returncode)
            wall = time.perf_counter() - t0
        except FileNotFoundError as e:
            raise BenchError("cannot run %s: %s" % (stages[len(procs)][0], e))
        rss, cpu = 0, 0.0
        for tf in tfiles:
            try:
                fields = open(tf).read().strip().splitlines()[-1].split()
                rss += int(fields[0])
                cpu += float(fields[1]) + float(fields[2])
            except (OSError, IndexError, ValueError):
                pass
            os.unlink(tf)
        stdout = None
        if capture:
            sout.seek(0)
            stdout = sout.read().decode("utf-8", "replace")
            sout.close()
        for f in opened:
            try:
                f.close()
            except Exception:
                pass
        errtext = []
        for err in errs:
            err.seek(0)
            errtext.append(err.read().decode("utf-8", "replace"))
            err.close()
        bad = [(stages[i], c, errtext[i]) for i, c in enumerate(codes) if c != 0]
        if any(c == 127 for c in codes) and any("cannot run" in t for t in errtext):
            raise BenchError("cannot run: %s" % " | ".join(" ".join(a) for a in stages))
        if bad and check:
            argv, code, text = bad[0]
            if re.search(r"not implemented", text, re.I):
                raise NotRun("`%s` is not implemented yet (%s)" % (
                    " ".join(argv[:3]), text.strip().splitlines()[-1] if text.strip() else ""))
            raise BenchError("command failed (exit %d): %s\n%s" % (
                code, " | ".join(" ".join(a) for a in stages),
                "\n".join("    " + line for line in text.strip().splitlines()[-25:])))
        return Sample(wall, rss, cpu, stdout)

    def out(self, argv, **kw):
        return self.run(argv, capture=True, **kw).stdout


class Measure:
    """Timed samples of one command: median, min, max, peak memory."""

    def __init__(self, name, cmd_text):
        self.name, self.cmd_text, self.samples, self.extra = name, cmd_text, [], {}

    def add(self, s):
        self.samples.append(s)

    @property
    def median(self):
        return statistics.median(s.wall for s in self.samples) if self.samples else None

    def to_json(self):
        w = [s.wall for s in self.samples]
        return {
            "name": self.name,
            "command": self.cmd_text,
            "runs": len(w),
            "median_s": self.median,
            "min_s": min(w) if w else None,
            "max_s": max(w) if w else None,
            "samples_s": w,
            "peak_rss_kb": max(s.rss_kb for s in self.samples) if w else None,
            "median_cpu_s": statistics.median(s.cpu for s in self.samples) if w else None,
            **self.extra,
        }

    def stats(self):
        j = self.to_json()
        return j["median_s"], j["min_s"], j["max_s"], j["peak_rss_kb"]


def dirty_kb():
    kb = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith(("Dirty:", "Writeback:")):
                kb += int(line.split()[1])
    except OSError:
        pass
    return kb


def settle(max_s=20):
    """Between sections: write back what the last one left (the pack
    section writes and deletes gigabytes), then give the disk a few quiet
    seconds, so that its after-effects (writeback, discards) do not land on
    the first runs of the next section."""
    t0 = time.perf_counter()
    os.sync()
    while dirty_kb() > 1024 and time.perf_counter() - t0 < max_s:
        time.sleep(0.2)
    time.sleep(3)


def interleave(runs, variants, warmup=1):
    """variants: list of (Measure, setup_fn or None, run_fn -> Sample, check_fn or None).

    Runs each variant `warmup` times untimed, then alternates the variants
    `runs` times so that drift (page cache, other load) hits both sides.
    Before each timed run, after its setup, dirty pages are written back
    (sync), so that one run's writes are not paid for by the next."""
    for _ in range(warmup):
        for m, setup, fn, check in variants:
            if setup:
                setup(-1)
            s = fn(-1)
            if check:
                check(s, -1)
    for i in range(runs):
        for m, setup, fn, check in variants:
            if setup:
                setup(i)
            os.sync()
            s = fn(i)
            if check:
                check(s, i)
            m.add(s)


# ---------------------------------------------------------------------------

def rmtree(p):
    if os.path.islink(p) or os.path.isfile(p):
        os.unlink(p)
    elif os.path.isdir(p):
        shutil.rmtree(p)


def tree_listing(root):
    """(path, type, mode, link target or size) of every entry below root,
    sorted: what a faithful restore must give back."""
    v = []
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            kind = ("l" if stat.S_ISLNK(st.st_mode) else "d" if stat.S_ISDIR(st.st_mode)
                    else "f" if stat.S_ISREG(st.st_mode) else "o")
            v.append((os.path.relpath(p, root), kind, st.st_mode & 0o7777,
                      os.readlink(p) if kind == "l" else st.st_size if kind == "f" else 0))
    return sorted(v)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(url, headers=None, timeout=10):
    assert url.startswith("http://127.0.0.1:"), url  # loopback only
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, headers=headers or {})
    with opener.open(req, timeout=timeout) as r:
        return r.read()


def walk_raw(d):
    """Entries, regular files, directories, bytes of regular files, like du -b."""
    files = dirs = other = nbytes = 0
    for root, dnames, fnames in os.walk(d):
        links = [x for x in dnames if os.path.islink(os.path.join(root, x))]
        dirs += len(dnames) - len(links)
        for n in fnames + links:
            st = os.lstat(os.path.join(root, n))
            if (st.st_mode & 0o170000) == 0o100000:
                files += 1
                nbytes += st.st_size
            else:
                other += 1
    return {"entries": files + dirs + other, "files": files, "dirs": dirs, "bytes": nbytes}


def tree_hash(paths):
    h = hashlib.sha256()
    for base in paths:
        if os.path.isfile(base):
            h.update(base.encode() + b"\0" + open(base, "rb").read())
            continue
        for root, dnames, fnames in os.walk(base):
            dnames.sort()
            for n in sorted(fnames):
                p = os.path.join(root, n)
                h.update(os.path.relpath(p, base).encode() + b"\0")
                h.update(open(p, "rb").read() if not os.path.islink(p) else os.readlink(p).encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------

class Harness:
    # for the sections in modules of their own (bench/docker_build.py)
    NotRunError = NotRun
    Error = BenchError
    log = staticmethod(log)
    human = staticmethod(human_bytes)

    def __init__(self, a):
        self.a = a
        self.quick = a.quick
        self.runs = a.runs or (3 if a.quick else 5)
        self.work = os.path.abspath(a.work or os.path.join(BENCH, "work", "harness"))
        os.makedirs(self.work, exist_ok=True)
        self.ctx = os.path.abspath(os.environ.get("CTXPACK") or os.path.join(ROOT, "ctxpack"))
        if not os.access(self.ctx, os.X_OK):
            raise BenchError("no ctxpack binary at %s: run `make` first (or set CTXPACK)" % self.ctx)
        env = dict(os.environ)
        for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                  "all_proxy", "CTXPACK_INDEX", "CTXPACK_STORE", "SOURCE_DATE_EPOCH"):
            env.pop(k, None)
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        env["XDG_CACHE_HOME"] = os.path.join(self.work, "xdg")
        env["LC_ALL"] = "C"
        self.env = env
        self.r = Runner(env)
        self.files = 10000 if a.quick else 100000
        self.bytes = 100_000_000 if a.quick else 1_000_000_000
        self.blob_mib = 64 if a.quick else 256
        self.results = {"sections": {}, "not_run": {}, "checks": []}
        self.goals = []        # rows for the goal table / chart
        self.reg = None
        self.npm_cache = os.path.join(self.work, "npm-cache")
        self.out_dir = os.path.join(self.work, "out")
        os.makedirs(self.out_dir, exist_ok=True)

    # -- helpers ----------------------------------------------------------

    def cp(self, *args, **kw):
        return [self.ctx] + list(args)

    def env_with(self, **kv):
        e = dict(self.env)
        e.update(kv)
        return e

    def check(self, name, ok, detail):
        self.results["checks"].append({"check": name, "ok": bool(ok), "detail": detail})
        if not ok:
            log("CHECK FAILED: %s: %s" % (name, detail))

    def goal(self, section, name, value, goal, kind, baseline_name, detail="", chart=True,
             unit="x"):
        """kind: 'le' (value <= goal passes) or 'lt'."""
        ok = None
        if value is not None and goal is not None:
            ok = value <= goal if kind == "le" else value < goal
        self.goals.append({"section": section, "name": name, "value": value, "goal": goal,
                           "kind": kind, "pass": ok, "baseline": baseline_name,
                           "detail": detail, "chart": chart, "unit": unit})

    # -- contexts ---------------------------------------------------------

    def gen_tree(self):
        t = os.path.join(self.work, "tree-%d-%d" % (self.files, self.bytes))
        if not os.path.isdir(t):
            log("generating the tree: %d files, %d bytes (bench/gen-tree)" % (self.files, self.bytes))
            tmp = t + ".tmp"
            rmtree(tmp)
            self.r.run([sys.executable, os.path.join(BENCH, "gen-tree"), tmp,
                        "--files", str(self.files), "--bytes", str(self.bytes)])
            os.rename(tmp, t)
        self.tree = t
        self.ls_ignore = os.path.join(self.work, "ls.dockerignore")
        with open(self.ls_ignore, "w") as f:
            f.write(LS_PATTERNS)
        self.empty_ignore = os.path.join(self.work, "empty.dockerignore")
        open(self.empty_ignore, "w").close()
        # The tree committed to git, with the repository outside the tree.
        self.tree_git = t + ".git"
        if not os.path.exists(os.path.join(self.tree_git, "bench-complete")):
            log("committing the tree to git (once)")
            rmtree(self.tree_git)
            g = ["git", "--git-dir", self.tree_git, "--work-tree", t]
            genv = self.env_with(**GIT_ENV)
            self.r.run(["git", "init", "-q", "--bare", self.tree_git], env=genv)
            self.r.run(["git", "--git-dir", self.tree_git, "config", "core.bare", "false"], env=genv)
            self.r.run(g + ["add", "-A"], env=genv)
            self.r.run(g + ["commit", "-q", "-m", "generated tree"], env=genv)
            open(os.path.join(self.tree_git, "bench-complete"), "w").close()
        # The file lists: every entry as ctxpack lists it (for tar -T), and
        # the regular files NUL-separated (for xxhsum).
        self.tree_list = os.path.join(self.work, "tree.list")
        self.tree_files0 = os.path.join(self.work, "tree.files0")
        entries = [json.loads(l) for l in self.r.out(self.cp("ls", "--json", t)).splitlines() if l]
        with open(self.tree_list, "w") as f:
            for e in entries:
                f.write(e["path"] + ("/" if e["type"] == "dir" else "") + "\n")
        regs = [e for e in entries if e["type"] == "file"]
        with open(self.tree_files0, "wb") as f:
            for e in regs:
                f.write(e["path"].encode("utf-8", "surrogateescape") + b"\0")
        self.tree_entries = entries
        self.tree_nfiles = len(regs)
        # The file to edit in the incremental pack benchmark: a text file of about 10 KB.
        cands = [e for e in regs if 9500 <= e.get("size", 0) <= 11000 and not e["path"].endswith(".bin")]
        if not cands:
            raise BenchError("no file of about 10 KB in the generated tree")
        cands.sort(key=lambda e: (abs(e["size"] - 10240), e["path"]))
        self.edit_path = os.path.join(t, cands[0]["path"])

    def monorepo(self):
        m = os.path.join(self.work, "monorepo")
        stamp_file = m + ".stamp"
        stamp = MONOREPO_RECIPE + ":" + tree_hash([TEMPLATE]) + ":" + sys.version.split()[0]
        if os.path.isdir(m) and os.path.exists(stamp_file) and open(stamp_file).read() == stamp \
                and not self.a.rebuild:
            self.mono = m
            self.mono_info = json.load(open(m + ".info.json"))
            return
        log("assembling the monorepo context (once; cached in bench/work/harness/monorepo)")
        tmp = m + ".tmp"
        rmtree(tmp)
        rmtree(m)
        shutil.copytree(os.path.join(TEMPLATE, "context"), tmp, symlinks=True)
        info = {}
        self._mono_git(tmp)
        with open(os.path.join(tmp, ".env"), "w") as f:
            f.write("# local settings: never commit, never send to a builder\n"
                    "DATABASE_URL=postgresql+asyncpg://shop:s3cr3t-db-pass@db/shop\n"
                    "SECRET_KEY=9f1c0b7e3a2d4c5b8e6f7a1b2c3d4e5f60718293a4b5c6d7e8f9012345678\n"
                    "STRIPE_API_KEY=sk_test_51BenchFakeKeyDoNotUse000000000000000000\n"
                    "SMTP_PASSWORD=hunter2\n")
        info["venv"] = self._mono_venv(os.path.join(tmp, "backend"))
        info["frontend"] = self._mono_frontend(os.path.join(tmp, "frontend"))
        with open(m + ".info.json", "w") as f:
            json.dump(info, f, indent=1)
        os.rename(tmp, m)
        with open(stamp_file, "w") as f:
            f.write(stamp)
        self.mono = m
        self.mono_info = info

    def _mono_git(self, d):
        genv = self.env_with(**GIT_ENV)
        g = ["git", "-C", d]
        self.r.run(g + ["init", "-q", "-b", "main"], env=genv)
        # Product images, added and later partly removed, so .git holds history
        # that the work tree does not.
        rnd = random.Random(11)
        imgdir = os.path.join(d, "frontend", "public", "images")
        stages = [
            ("2024-03-04T09:12:00", "Backend skeleton: FastAPI app, config, health check",
             ["Dockerfile", ".dockerignore", ".gitignore", "README.md", "docker-compose.yml",
              "backend/pyproject.toml", "backend/uv.lock", "backend/README.md", "backend/.gitignore",
              "backend/app/__init__.py", "backend/app/config.py", "backend/app/db.py",
              "backend/app/main.py", "backend/app/routers/__init__.py",
              "backend/app/routers/health.py"]),
            ("2024-03-06T14:40:00", "Frontend: Vite + React scaffold", ["frontend"]),
            ("2024-03-11T10:05:00", "Items, cart and users; models and migrations", ["backend"]),
            ("2024-03-15T16:30:00", "Product images", ["frontend/public/images"]),
        ]
        for date, msg, paths in stages:
            if paths == ["frontend/public/images"]:
                os.makedirs(imgdir)
                for i in range(24):
                    with open(os.path.join(imgdir, "product-%02d.webp" % i), "wb") as f:
                        f.write(b"RIFF" + rnd.randbytes(60000 + i * 1000))
            e = dict(genv, GIT_AUTHOR_DATE=date + "+01:00", GIT_COMMITTER_DATE=date + "+01:00")
            self.r.run(g + ["add", "--"] + paths, env=e)
            self.r.run(g + ["commit", "-q", "-m", msg], env=e)
        for i in range(0, 24, 3):
            os.unlink(os.path.join(imgdir, "product-%02d.webp" % i))
        e = dict(genv, GIT_AUTHOR_DATE="2024-04-02T11:00:00+01:00",
                 GIT_COMMITTER_DATE="2024-04-02T11:00:00+01:00")
        self.r.run(g + ["add", "-A"], env=e)
        self.r.run(g + ["commit", "-q", "-m", "Drop discontinued products"], env=e)
        self.r.run(g + ["gc", "-q"], env=e)

    def _mono_venv(self, backend):
        """backend/.venv: `python3 -m venv --without-pip`, then site-packages
        filled per bench/monorepo/venv-packages.txt with real Python sources
        and shared objects copied from this Python's standard library (PyPI is
        not reachable), dist-info and console scripts, then compileall."""
        venv = os.path.join(backend, ".venv")
        self.r.run([sys.executable, "-m", "venv", "--without-pip", venv])
        pyver = "python%d.%d" % sys.version_info[:2]
        site = os.path.join(venv, "lib", pyver, "site-packages")
        stdlib = sysconfig.get_paths()["stdlib"]
        skip = {"test", "tests", "idlelib", "lib2to3", "turtledemo", "site-packages",
                "__pycache__", "ensurepip", "config-%d.%d-x86_64-linux-gnu" % sys.version_info[:2]}
        pys, sos = [], []
        for root, dnames, fnames in os.walk(stdlib):
            dnames[:] = sorted(x for x in dnames if x not in skip and not x.startswith("config-"))
            for n in sorted(fnames):
                p = os.path.join(root, n)
                if os.path.islink(p):
                    continue
                if n.endswith(".py") and "bad" not in n:
                    pys.append(p)
                elif n.endswith(".so"):
                    sos.append(p)
        if not pys or not sos:
            raise BenchError("cannot find the Python standard library under %s" % stdlib)
        pi = si = 0
        packages = []
        for line in open(os.path.join(TEMPLATE, "venv-packages.txt")):
            if not line.strip() or line.startswith("#"):
                continue
            name, ver, imp, py_kb, so_kb = line.split()[:5]
            packages.append((name, ver, imp, int(py_kb) * 1000, int(so_kb) * 1000))
        abi = "cpython-%d%d-x86_64-linux-gnu" % sys.version_info[:2]
        for name, ver, imp, py_b, so_b in packages:
            pkg = os.path.join(site, imp)
            os.makedirs(pkg)
            record = []
            with open(os.path.join(pkg, "__init__.py"), "w") as f:
                f.write('"""%s %s"""\n__version__ = "%s"\n' % (name, ver, ver))
            done = 0
            while done < py_b:
                src = pys[pi % len(pys)]
                rel = os.path.relpath(src, stdlib)
                if pi >= len(pys):
                    rel = "_v%d_" % (pi // len(pys)) + rel.replace("/", "_")
                pi += 1
                dst = os.path.join(pkg, rel)
                if os.path.basename(dst) == "__init__.py" and os.path.dirname(dst) == pkg:
                    continue
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copyfile(src, dst)
                done += os.path.getsize(dst)
            if so_b:
                dst = os.path.join(pkg, "_speedups.%s.so" % abi)
                with open(dst, "wb") as out:
                    left = so_b
                    while left > 0:
                        data = open(sos[si % len(sos)], "rb").read()[:left]
                        si += 1
                        out.write(data)
                        left -= len(data)
                os.chmod(dst, 0o755)
            distinfo = os.path.join(site, "%s-%s.dist-info" % (name.replace("-", "_"), ver))
            os.makedirs(distinfo)
            files = {
                "METADATA": "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, ver),
                "WHEEL": "Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: %s\nTag: %s\n" % (
                    "false" if so_b else "true", "cp%d%d-cp%d%d-manylinux_2_17_x86_64" % (
                        sys.version_info[:2] * 2) if so_b else "py3-none-any"),
                "INSTALLER": "uv\n",
                "top_level.txt": imp + "\n",
            }
            for fn, text in files.items():
                with open(os.path.join(distinfo, fn), "w") as f:
                    f.write(text)
            for root, _, fnames in os.walk(pkg):
                for n in sorted(fnames):
                    p = os.path.join(root, n)
                    dg = hashlib.sha256(open(p, "rb").read()).hexdigest()
                    record.append("%s,sha256=%s,%d" % (os.path.relpath(p, site), dg, os.path.getsize(p)))
            with open(os.path.join(distinfo, "RECORD"), "w") as f:
                f.write("\n".join(sorted(record)) + "\n")
        bindir = os.path.join(venv, "bin")
        for script, mod in (("uvicorn", "uvicorn.main"), ("fastapi", "fastapi.cli"),
                            ("alembic", "alembic.config"), ("pytest", "pytest"),
                            ("httpx", "httpx"), ("dotenv", "dotenv.__main__"),
                            ("watchfiles", "watchfiles.cli"), ("mako-render", "mako.cmd"),
                            ("email_validator", "email_validator.__main__")):
            p = os.path.join(bindir, script)
            with open(p, "w") as f:
                f.write("#!%s/python\n# -*- coding: utf-8 -*-\nimport sys\nfrom %s import main\n"
                        "if __name__ == '__main__':\n    sys.exit(main())\n" % (bindir, mod))
            os.chmod(p, 0o755)
        self.r.run([sys.executable, "-m", "compileall", "-q", "-j", "0", site,
                    os.path.join(backend, "app"), os.path.join(backend, "tests"),
                    os.path.join(backend, "migrations")])
        return {"how": "python3 -m venv --without-pip, site-packages filled with %d packages "
                       "(Python sources and .so files copied from the standard library, sized "
                       "like the real ones), then compileall" % len(packages),
                "bytes": walk_raw(venv)["bytes"]}

    def npm_ci_argv(self):
        return ["npm", "ci", "--cache", self.npm_cache, "--no-audit", "--no-fund",
                "--loglevel", "error"]

    def _mono_frontend(self, fe):
        if not shutil.which("npm"):
            raise BenchError("npm is not installed (Debian: apt-get install nodejs npm)")
        log("npm ci in the monorepo frontend (from the npm registry)")
        self.r.run(self.npm_ci_argv(), cwd=fe)
        how = "npx vite build"
        try:
            self.r.run(["npx", "--no-install", "vite", "build", "--logLevel", "error"], cwd=fe)
        except BenchError as e:
            log("vite build failed, generating dist/ instead: %s" % str(e).splitlines()[0])
            how = "generated (vite build failed)"
            dist = os.path.join(fe, "dist", "assets")
            rmtree(os.path.join(fe, "dist"))
            os.makedirs(dist)
            src = os.path.join(fe, "node_modules", "react-dom", "cjs")
            blob = b"".join(open(os.path.join(src, n), "rb").read() for n in sorted(os.listdir(src)))
            open(os.path.join(dist, "index-bench.js"), "wb").write(blob[:450000])
            open(os.path.join(dist, "index-bench.js.map"), "wb").write(blob * 3)
            open(os.path.join(fe, "dist", "index.html"), "wb").write(open(os.path.join(fe, "index.html"), "rb").read())
        nm = walk_raw(os.path.join(fe, "node_modules"))
        return {"node_modules": "npm ci from the committed package-lock.json",
                "node_modules_files": nm["files"], "node_modules_bytes": nm["bytes"], "dist": how}

    # -- sections ---------------------------------------------------------

    def section_sizes(self):
        res = {}
        for label, ctx, own_ignore in (("monorepo", self.mono, None),
                                       ("generated", self.tree, self.ls_ignore)):
            log("sizes: %s" % label)
            raw = walk_raw(ctx)
            row = {"raw_dir": raw}
            variants = [("raw", ["--ignore-file", self.empty_ignore]),
                        ("dockerignore", ["--ignore-file", own_ignore] if own_ignore else [])]
            du = json.loads(self.r.out(self.cp("du", "--json", *variants[1][1], ctx)))
            sugg = du.get("suggestions") or []
            lines = []
            for s in sugg:
                lines.append(s["line"] if isinstance(s, dict) and "line" in s else
                             (s.get("pattern") if isinstance(s, dict) else str(s)))
            sugg_file = os.path.join(self.work, "%s-suggested.dockerignore" % label)
            base = own_ignore or os.path.join(ctx, ".dockerignore")
            with open(sugg_file, "w") as f:
                f.write(open(base).read().rstrip("\n") + "\n")
                if lines:
                    f.write("# added from `ctxpack du` suggestions\n" + "\n".join(lines) + "\n")
            variants.append(("suggested", ["--ignore-file", sugg_file]))
            row["suggestions"] = lines
            row["secrets"] = du.get("secrets")
            for vname, vargs in variants:
                d = json.loads(self.r.out(self.cp("du", "--json", *vargs, ctx)))
                v = {"entries": d["included"]["entries"], "files": d["included"]["files"],
                     "bytes": d["included"]["bytes"]}
                for comp in ("zstd", "gzip"):
                    if label == "generated" and (comp == "gzip" or vname == "raw"):
                        continue  # from the pack section (gzip of 1 GB is slow: one run there)
                    outp = os.path.join(self.out_dir, "size-%s-%s.%s" % (label, vname, comp))
                    j = json.loads(self.r.out(self.cp("pack", "--compress", comp, "-o", outp,
                                                      "--json", *vargs, ctx)))
                    v[comp] = j["bytes"]
                    os.unlink(outp)
                row[vname] = v
            res[label] = row
        self.results["sections"]["sizes"] = res

    def section_ls(self):
        t = self.tree
        c = Measure("ctxpack ls", "ctxpack ls --ignore-file LS_IGNORE TREE")
        b = Measure("find | sort", "find TREE -printf '%P\\n' | LC_ALL=C sort")
        n = len(self.r.out(self.cp("ls", "--ignore-file", self.ls_ignore, t)).splitlines())
        interleave(self.runs, [
            (c, None, lambda i: self.r.run(self.cp("ls", "--ignore-file", self.ls_ignore, t)), None),
            (b, None, lambda i: self.r.run([["find", t, "-printf", "%P\\n"], ["sort"]]), None),
        ])
        self.results["sections"]["ls"] = {"entries_listed": n, "patterns": 10,
                                          "ctxpack": c.to_json(), "baseline": b.to_json()}
        self.goal("ls", "ls vs find | sort", c.median / b.median, 1.5, "le", "find | sort",
                  "%d files, .dockerignore of 10 patterns, %d entries listed" % (self.files, n))

    def section_hash(self):
        t = self.tree
        cold_idx = os.path.join(self.work, "idx-cold")
        warm_idx = os.path.join(self.work, "idx-warm")
        cold = Measure("ctxpack hash (cold)", "ctxpack hash --index EMPTY_DIR --json TREE")
        xxh = Measure("xxhsum -H2", "xargs -0 -a FILES xxhsum -H2  (cwd TREE, one process at a time)")
        warm = Measure("ctxpack hash (warm)", "ctxpack hash --index WARM_DIR --json TREE")
        git = Measure("git status", "git status --porcelain  (tree committed to git; "
                      "core.untrackedCache=false)")
        digests = set()

        def run_hash(idx, m):
            def fn(i):
                s = self.r.run(self.cp("hash", "--index", idx, "--json", t), capture=True)
                s.json = json.loads(s.stdout)
                digests.add(s.json["digest"])
                return s
            return fn

        def chk_cold(s, i):
            if s.json["hashed"] != s.json["files"]:
                raise BenchError("cold hash hashed %d of %d files" % (s.json["hashed"], s.json["files"]))
            cold.extra["files"] = s.json["files"]
            cold.extra["bytes_hashed"] = s.json["bytes_hashed"]

        def chk_warm(s, i):
            if i >= 0:
                warm.extra.setdefault("hashed_per_run", []).append(s.json["hashed"])

        def chk_git(s, i):
            if s.stdout.strip():
                raise BenchError("git status is not clean in the generated tree:\n" + s.stdout[:500])

        gitargv = ["git", "--git-dir", self.tree_git, "--work-tree", t, "-c",
                   "core.untrackedCache=false", "status", "--porcelain"]
        interleave(self.runs, [
            (cold, lambda i: rmtree(cold_idx), run_hash(cold_idx, cold), chk_cold),
            (xxh, None, lambda i: self.r.run(["xargs", "-0", "-a", self.tree_files0, "xxhsum", "-H2"],
                                             cwd=t), None),
        ])
        # warm: two untimed runs settle the index (racy entries re-hashed once).
        interleave(self.runs, [
            (warm, None, run_hash(warm_idx, warm), chk_warm),
            (git, None, lambda i: self.r.run(gitargv, capture=True, env=self.env_with(**GIT_ENV)),
             chk_git),
        ], warmup=2)
        self.check("hash: one digest for cold and warm runs", len(digests) == 1, sorted(digests))
        hp = warm.extra.get("hashed_per_run", [])
        self.check("hash: warm runs read no file", all(h == 0 for h in hp),
                   "files hashed per warm run: %s" % hp)
        self.results["sections"]["hash"] = {"cold": cold.to_json(), "xxhsum": xxh.to_json(),
                                            "warm": warm.to_json(), "git_status": git.to_json(),
                                            "files": self.tree_nfiles}
        self.goal("hash", "hash cold vs xxhsum -H2", cold.median / xxh.median, 1.0, "le",
                  "xxhsum -H2", "%d files; index empty, page cache warm" % self.tree_nfiles)
        self.goal("hash", "hash warm vs git status", warm.median / git.median, 0.5, "le",
                  "git status --porcelain", "nothing changed; untracked cache off; "
                  "goal 0.5x since issue 15 (1.0x before)")

    def _edit(self, i):
        """Rewrite the chosen ~10 KB file with new text of the same length."""
        n = len(self.edit_orig)
        rnd = random.Random(1000 + i + (0 if i >= 0 else 500))
        words = [b"def", b"class", b"return", b"import", b"value", b"index", b"order", b"\n"]
        data = b" ".join(rnd.choice(words) for _ in range(n))[:n]
        with open(self.edit_path, "wb") as f:
            f.write(data)

    def section_pack(self):
        t = self.tree
        out = self.out_dir
        cold_x = os.path.join(self.work, "xdg-pack-cold")
        warm_x = os.path.join(self.work, "xdg-pack-warm")
        rmtree(warm_x)
        tar = ["tar", "--sort=name", "--no-recursion", "-C", t, "-cf", "-", "-T", self.tree_list]
        tar_txt = "tar --sort=name --no-recursion -C TREE -cf - -T LIST"
        cold = Measure("ctxpack pack --no-cache (cold)", "ctxpack pack --no-cache -o FILE --json TREE")
        first = Measure("ctxpack pack (first run)", "ctxpack pack -o FILE --json TREE  (empty $XDG_CACHE_HOME)")
        tz = Measure("tar | zstd -T0 -3", tar_txt + " | zstd -T0 -3 > FILE")
        warm = Measure("ctxpack pack (warm, unchanged)", "ctxpack pack -o FILE --json TREE")
        edit = Measure("ctxpack pack (warm, one 10 KB file edited)", "edit FILE; ctxpack pack -o FILE --json TREE")
        digests = {}

        def pack(xdg, name, key, extra=()):
            def fn(i):
                o = os.path.join(out, name)
                s = self.r.run(self.cp("pack", "-o", o, "--json", *extra, t), capture=True,
                               env=self.env_with(XDG_CACHE_HOME=xdg))
                s.json = json.loads(s.stdout)
                s.size = os.path.getsize(o)
                if s.size != s.json["bytes"]:
                    raise BenchError("pack --json says %d bytes, the file has %d" % (s.json["bytes"], s.size))
                digests.setdefault(key, set()).add(s.json["digest"])
                return s
            return fn

        def tar_zstd(i):
            o = os.path.join(out, "tar.tar.zst")
            s = self.r.run([tar, ["zstd", "-T0", "-3", "-q", "-c"]], out=o)
            s.size = os.path.getsize(o)
            return s

        def rm(*names):
            def fn(i):
                for n in names:
                    rmtree(os.path.join(out, n))
            return fn

        def setup_cold(i):
            rmtree(cold_x)
            rm("cold.tar.zst")(i)

        sizes = {}

        def keep_size(key):
            def fn(s, i):
                sizes[key] = s.size
            return fn

        # cold is the packer alone (issue 7: "--no-cache packs cold"); the
        # first run with an empty cache also fills the index and the frame
        # store.
        interleave(self.runs, [
            (cold, rm("cold.tar.zst"), pack(cold_x, "cold.tar.zst", "cold", ("--no-cache",)),
             keep_size("cold")),
            (first, setup_cold, pack(cold_x, "first.tar.zst", "first"), None),
            (tz, rm("tar.tar.zst"), tar_zstd, keep_size("tar")),
        ])
        interleave(self.runs, [(warm, rm("warm.tar.zst"), pack(warm_x, "warm.tar.zst", "warm"),
                                keep_size("warm"))], warmup=2)
        self.edit_orig = open(self.edit_path, "rb").read()
        st = os.stat(self.edit_path)
        try:
            def setup_edit(i):
                rm("edit.tar.zst")(i)
                self._edit(i)
            interleave(self.runs, [(edit, setup_edit, pack(warm_x, "edit.tar.zst", "edit"), None)])
            # The last edited state packed cold must give the same bytes.
            s = pack(cold_x, "edit-cold.tar.zst", "edit-cold", ("--no-cache",))(0)
            last_edit = os.path.join(out, "edit.tar.zst")
            same = hashlib.sha256(open(last_edit, "rb").read()).hexdigest() == \
                hashlib.sha256(open(os.path.join(out, "edit-cold.tar.zst"), "rb").read()).hexdigest()
            self.check("pack: warm after an edit == cold pack of the same content (bytes)", same,
                       "sha256 %s" % s.json["digest"])
        finally:
            with open(self.edit_path, "wb") as f:
                f.write(self.edit_orig)
            os.utime(self.edit_path, ns=(st.st_atime_ns, st.st_mtime_ns))
        one = digests["cold"] | digests["first"] | digests["warm"]
        self.check("pack: cold, first and warm unchanged runs give one archive",
                   len(one) == 1, sorted(one))
        # gzip on the generated tree: one run each (1 GB through gzip -6 takes a minute).
        gz = Measure("ctxpack pack --compress gzip", "ctxpack pack --compress gzip -o FILE --json TREE")
        tg = Measure("tar | gzip", tar_txt + " | gzip > FILE")

        def tar_gzip(i):
            o = os.path.join(out, "tar.tar.gz")
            s = self.r.run([tar, ["gzip", "-c"]], out=o)
            s.size = os.path.getsize(o)
            return s
        interleave(1, [(gz, rm("gz.tar.gz"), pack(warm_x, "gz.tar.gz", "gzip", ("--compress", "gzip")),
                        keep_size("gzip")),
                       (tg, rm("tar.tar.gz"), tar_gzip, keep_size("tar_gzip"))], warmup=0)
        for n in ("cold.tar.zst", "first.tar.zst", "warm.tar.zst", "edit.tar.zst", "edit-cold.tar.zst", "tar.tar.zst",
                  "gz.tar.gz", "tar.tar.gz"):
            rmtree(os.path.join(out, n))
        raw_bytes = sum(e.get("size", 0) for e in self.tree_entries if e["type"] == "file")
        for m in (cold, first, warm, edit, tz):
            m.extra["MB_per_s"] = raw_bytes / 1e6 / m.median
        cold.extra["archive_bytes"] = sizes["cold"]
        tz.extra["archive_bytes"] = sizes["tar"]
        gz.extra["archive_bytes"] = sizes["gzip"]
        tg.extra["archive_bytes"] = sizes["tar_gzip"]
        self.results["sections"]["pack"] = {
            "tree_file_bytes": raw_bytes, "edited_file": os.path.relpath(self.edit_path, t),
            "edited_file_bytes": len(self.edit_orig),
            "cold": cold.to_json(), "first": first.to_json(), "tar_zstd": tz.to_json(),
            "warm": warm.to_json(),
            "edit": edit.to_json(), "gzip": gz.to_json(), "tar_gzip": tg.to_json()}
        # sizes of the generated tree's raw archives for the sizes table
        sz = self.results["sections"].get("sizes", {}).get("generated")
        if sz:
            sz["raw"]["zstd"] = sizes["cold"]
            sz["raw"]["gzip"] = sizes["gzip"]
        self.goal("pack", "pack cold vs tar | zstd -T0 -3", cold.median / tz.median, 0.8, "le",
                  "tar --sort=name | zstd -T0 -3",
                  "%.0f MB/s vs %.0f MB/s; peak %s vs %s" % (
                      cold.extra["MB_per_s"], tz.extra["MB_per_s"],
                      fmt_mem(cold.to_json()["peak_rss_kb"]), fmt_mem(tz.to_json()["peak_rss_kb"])))
        self.goal("pack", "pack first run (empty cache) vs tar | zstd -T0 -3", first.median / tz.median,
                  None, "le", "tar --sort=name | zstd -T0 -3",
                  "also fills the index and the frame store; %.2fx the cold pack" % (
                      first.median / cold.median))
        self.goal("pack", "pack size vs tar | zstd -3 (issue 4)", sizes["cold"] / sizes["tar"], 1.03,
                  "le", "tar | zstd -3 size", "%s vs %s" % (human_bytes(sizes["cold"]),
                                                             human_bytes(sizes["tar"])), chart=False)
        self.goal("pack", "pack size vs one zstd stream (issue 7)", sizes["cold"] / sizes["tar"], 1.02,
                  "le", "tar | zstd -3 size", "frames cut at entry boundaries", chart=True)
        self.goal("pack", "pack warm (unchanged) vs cold pack", warm.median / cold.median, 0.1, "le",
                  "ctxpack pack --no-cache", "")
        self.goal("pack", "pack after one 10 KB edit vs cold pack", edit.median / cold.median, 0.2,
                  "le", "ctxpack pack --no-cache", "")
        self.goal("pack", "pack gzip vs tar | gzip", gz.median / tg.median, None, "le",
                  "tar --sort=name | gzip", "one run each; %s vs %s" % (
                      human_bytes(sizes["gzip"]), human_bytes(sizes["tar_gzip"])))

    # -- small contexts (issue 15) ------------------------------------------

    def _spawn(self, argv, cwd=None, env=None, out=None):
        """One run timed around posix_spawn + wait4: no GNU time or shell in
        between, which on a 3 ms command would be most of what is measured.
        Returns a Sample (CPU from the child's rusage; peak memory not taken:
        a spawned child inherits the parent's high-water mark)."""
        env = env if env is not None else self.env
        fo = os.open(out or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        fe = os.open(os.devnull, os.O_WRONLY)
        try:
            fa = [(os.POSIX_SPAWN_DUP2, fo, 1), (os.POSIX_SPAWN_DUP2, fe, 2)]
            old = os.getcwd()
            if cwd:
                os.chdir(cwd)
            try:
                t0 = time.perf_counter()
                pid = os.posix_spawnp(argv[0], argv, env, file_actions=fa)
                _, status, ru = os.wait4(pid, 0)
                wall = time.perf_counter() - t0
            finally:
                os.chdir(old)
        finally:
            os.close(fo)
            os.close(fe)
        code = os.waitstatus_to_exitcode(status)
        if code:
            raise BenchError("command failed (exit %d): %s" % (code, " ".join(argv)))
        return Sample(wall, 0, ru.ru_utime + ru.ru_stime)

    def _small_tree(self, name, files, nbytes):
        t = os.path.join(self.work, name)
        if not os.path.isdir(t):
            log("generating %s: %d files, %d bytes (bench/gen-tree)" % (name, files, nbytes))
            rmtree(t + ".tmp")
            self.r.run([sys.executable, os.path.join(BENCH, "gen-tree"), t + ".tmp",
                        "--files", str(files), "--bytes", str(nbytes), "--seed", "15"])
            os.rename(t + ".tmp", t)
        g = t + ".git"
        if not os.path.exists(os.path.join(g, "bench-complete")):
            rmtree(g)
            genv = self.env_with(**GIT_ENV)
            self.r.run(["git", "init", "-q", "--bare", g], env=genv)
            self.r.run(["git", "--git-dir", g, "config", "core.bare", "false"], env=genv)
            self.r.run(["git", "--git-dir", g, "--work-tree", t, "add", "-A"], env=genv)
            self.r.run(["git", "--git-dir", g, "--work-tree", t, "commit", "-q", "-m", "tree"],
                       env=genv)
            open(os.path.join(g, "bench-complete"), "w").close()
        return t, g

    def section_small(self):
        """Issue 15: the contexts people have are small once .dockerignore is
        applied, so start-up and fixed costs decide.  Each row against its
        baseline in the same run, medians of many runs, interleaved."""
        runs = max(self.runs, 11 if self.quick else 21)
        res = {}
        mk = lambda name, cmd: Measure(name, cmd)
        # 1. start-up: --version and ls of a 10-file context vs zstd --version
        c10 = os.path.join(self.work, "ctx10")
        rmtree(c10)
        os.makedirs(os.path.join(c10, "app"))
        with open(os.path.join(c10, "Dockerfile"), "w") as f:
            f.write("FROM python:3.12-slim\nCOPY . /app\n")
        with open(os.path.join(c10, ".dockerignore"), "w") as f:
            f.write(".git\n*.log\n")
        for i in range(8):
            with open(os.path.join(c10, "app", "m%d.py" % i), "w") as f:
                f.write("def f%d():\n    return %d\n" % (i, i))
        zv = mk("zstd --version", "zstd --version")
        ver = mk("ctxpack --version", "ctxpack --version")
        ls10 = mk("ctxpack ls (10 files)", "ctxpack ls CTX10")
        interleave(runs, [
            (zv, None, lambda i: self._spawn(["zstd", "--version"]), None),
            (ver, None, lambda i: self._spawn([self.ctx, "--version"]), None),
            (ls10, None, lambda i: self._spawn([self.ctx, "ls", c10]), None),
        ], warmup=2)
        res.update({"zstd_version": zv.to_json(), "version": ver.to_json(),
                    "ls10": ls10.to_json()})
        self.goal("small", "--version vs zstd --version", ver.median / zv.median, 1.5, "le",
                  "zstd --version", "%.1f ms vs %.1f ms" % (ver.median * 1e3, zv.median * 1e3))
        self.goal("small", "ls of a 10-file context vs zstd --version", ls10.median / zv.median,
                  1.5, "le", "zstd --version", "%.1f ms" % (ls10.median * 1e3))

        # 2. warm hash of a 4k-file tree vs git status (untracked cache off)
        t4, g4 = self._small_tree("small-4k", 4000, 10_000_000)
        idx4 = os.path.join(self.work, "idx-small-4k")
        rmtree(idx4)
        gitst = lambda t, g: ["git", "--git-dir", g, "--work-tree", t, "-c",
                              "core.untrackedCache=false", "status", "--porcelain"]
        out = self.r.out(gitst(t4, g4), env=self.env_with(**GIT_ENV))
        if out.strip():
            raise BenchError("git status is not clean in %s" % t4)
        h4 = mk("ctxpack hash (warm, 4k files)", "ctxpack hash --index DIR TREE4K")
        gs4 = mk("git status (4k files)", "git status --porcelain, core.untrackedCache=false")
        for _ in range(2):  # the index, then the snapshot once the entries are settled
            self.r.run(self.cp("hash", "--index", idx4, t4))
            time.sleep(0.3)
        j = json.loads(self.r.out(self.cp("hash", "--json", "--index", idx4, t4)))
        self.check("small: warm hash of the 4k tree reads nothing", j["hashed"] == 0, j)
        interleave(runs, [
            (h4, None, lambda i: self._spawn(self.cp("hash", "--index", idx4, t4)), None),
            (gs4, None, lambda i: self._spawn(gitst(t4, g4), env=self.env_with(**GIT_ENV)), None),
        ], warmup=2)
        res.update({"hash4k": h4.to_json(), "git4k": gs4.to_json(),
                    "hash4k_snapshot": j.get("snapshot"), "tree4k_files": j["files"]})
        self.goal("small", "hash warm, 4k files vs git status", h4.median / gs4.median, 1.0, "le",
                  "git status --porcelain", "%d files; untracked cache off; snapshot %s" % (
                      j["files"], j.get("snapshot")))

        # 3. pack of an 8k-entry / 20 MB tree: warm (unchanged) and after one
        #    edit, against a cold pack
        t8, _ = self._small_tree("small-8k", 7200, 20_000_000)
        x8 = os.path.join(self.work, "xdg-small-8k")
        xc = os.path.join(self.work, "xdg-small-8k-cold")
        rmtree(x8)
        o = self.out_dir
        pk = lambda xdg, name, *extra: self.cp("pack", "-o", os.path.join(o, name), *extra, t8)
        cold = mk("ctxpack pack --no-cache (8k entries)", "ctxpack pack --no-cache -o FILE TREE8K")
        warm = mk("ctxpack pack (warm, 8k entries)", "ctxpack pack -o FILE TREE8K")
        # the warm pack's floor: the same stat walk against the same index,
        # with no archive to write at all
        hwarm = mk("ctxpack hash (warm, 8k entries)", "ctxpack hash TREE8K")
        edit = mk("ctxpack pack (one 10 KB edit, 8k entries)", "edit FILE; ctxpack pack -o FILE TREE8K")
        for _ in range(2):
            self.r.run(pk(x8, "s8-warm.tar.zst"), env=self.env_with(XDG_CACHE_HOME=x8))
            time.sleep(0.3)
        j = json.loads(self.r.out(self.cp("pack", "--json", "-o", os.path.join(o, "s8-warm.tar.zst"),
                                          t8), env=self.env_with(XDG_CACHE_HOME=x8)))
        self.check("small: warm pack of the 8k tree reuses the archive", j.get("cache") == "archive", j)
        hj = json.loads(self.r.out(self.cp("hash", "--json", t8), env=self.env_with(XDG_CACHE_HOME=x8)))
        self.check("small: warm hash of the 8k tree reads nothing", hj["hashed"] == 0, hj)
        interleave(runs, [
            (cold, None, lambda i: self._spawn(pk(xc, "s8-cold.tar.zst", "--no-cache"),
                                               env=self.env_with(XDG_CACHE_HOME=xc)), None),
            (warm, None, lambda i: self._spawn(pk(x8, "s8-warm.tar.zst"),
                                               env=self.env_with(XDG_CACHE_HOME=x8)), None),
            (hwarm, None, lambda i: self._spawn(self.cp("hash", t8),
                                                env=self.env_with(XDG_CACHE_HOME=x8)), None),
        ], warmup=2)
        # the edit: the ~10 KB text file nearest 10240 bytes, rewritten in place
        cands = []
        for root, dnames, fnames in os.walk(t8):
            dnames.sort()
            for n in sorted(fnames):
                p = os.path.join(root, n)
                if not os.path.islink(p) and not n.endswith(".bin"):
                    sz = os.path.getsize(p)
                    if 9500 <= sz <= 11000:
                        cands.append((abs(sz - 10240), p))
        if not cands:
            raise BenchError("no file of about 10 KB in %s" % t8)
        epath = min(cands)[1]
        orig = open(epath, "rb").read()
        st = os.stat(epath)

        def do_edit(i):
            rnd = random.Random(2000 + i)
            b = bytearray(orig)
            for k in range(0, len(b), 997):
                b[k] = rnd.choice(b"abcdefghij")
            with open(epath, "r+b") as f:
                f.write(bytes(b))
        try:
            interleave(runs, [
                (edit, do_edit, lambda i: self._spawn(pk(x8, "s8-edit.tar.zst"),
                                                      env=self.env_with(XDG_CACHE_HOME=x8)), None),
            ], warmup=1)
            self._spawn(pk(xc, "s8-editcold.tar.zst", "--no-cache"), env=self.env_with(XDG_CACHE_HOME=xc))
            same = open(os.path.join(o, "s8-edit.tar.zst"), "rb").read() == \
                open(os.path.join(o, "s8-editcold.tar.zst"), "rb").read()
            self.check("small: pack after an edit == cold pack of the same content (bytes)", same, epath)
        finally:
            with open(epath, "wb") as f:
                f.write(orig)
            os.utime(epath, ns=(st.st_atime_ns, st.st_mtime_ns))
        for n in ("s8-cold.tar.zst", "s8-warm.tar.zst", "s8-edit.tar.zst", "s8-editcold.tar.zst"):
            rmtree(os.path.join(o, n))
        nent = sum(1 for _ in os.walk(t8)) - 1 + sum(len(f) for _, _, f in os.walk(t8))
        res.update({"pack8k_cold": cold.to_json(), "pack8k_warm": warm.to_json(),
                    "hash8k_warm": hwarm.to_json(),
                    "pack8k_edit": edit.to_json(), "tree8k_entries": nent,
                    "edited_file": os.path.relpath(epath, t8)})
        self.goal("small", "pack warm (unchanged), 8k entries vs cold pack", warm.median / cold.median,
                  0.15, "le", "ctxpack pack --no-cache", "%d entries, 20 MB" % nent)
        self.goal("small", "hash warm (the walk alone, no output), 8k entries vs cold pack",
                  hwarm.median / cold.median, None, "le", "ctxpack pack --no-cache",
                  "the floor of the warm pack above: the same stat walk and index")
        self.goal("small", "pack after one 10 KB edit, 8k entries vs cold pack",
                  edit.median / cold.median, 0.3, "le", "ctxpack pack --no-cache", "")

        # 4. the monorepo as a builder gets it (its .dockerignore with the
        #    lines du suggests): hash and pack, warm
        self.monorepo()
        mono = self.mono
        du = json.loads(self.r.out(self.cp("du", "--json", mono)))
        lines = [s.get("line") if isinstance(s, dict) else str(s) for s in du.get("suggestions") or []]
        ign = os.path.join(self.work, "monorepo-small.dockerignore")
        with open(ign, "w") as f:
            f.write(open(os.path.join(mono, ".dockerignore")).read().rstrip("\n") + "\n")
            f.write("\n".join(l for l in lines if l) + "\n")
        xm = os.path.join(self.work, "xdg-small-mono")
        xmc = os.path.join(self.work, "xdg-small-mono-cold")
        rmtree(xm)
        mls = self.r.out(self.cp("ls", "--ignore-file", ign, mono)).splitlines()
        mh = mk("ctxpack hash (warm, monorepo)", "ctxpack hash --ignore-file IGN MONOREPO")
        mgit = mk("git status (monorepo)", "git -C MONOREPO status --porcelain, core.untrackedCache=false")
        mcold = mk("ctxpack pack --no-cache (monorepo)", "ctxpack pack --no-cache --ignore-file IGN -o FILE MONOREPO")
        mwarm = mk("ctxpack pack (warm, monorepo)", "ctxpack pack --ignore-file IGN -o FILE MONOREPO")
        mpk = lambda name, *extra: self.cp("pack", "--ignore-file", ign, "-o", os.path.join(o, name),
                                           *extra, mono)
        for _ in range(2):
            self.r.run(self.cp("hash", "--ignore-file", ign, mono), env=self.env_with(XDG_CACHE_HOME=xm))
            self.r.run(mpk("sm-warm.tar.zst"), env=self.env_with(XDG_CACHE_HOME=xm))
            time.sleep(0.3)
        mgit_argv = ["git", "-C", mono, "-c", "core.untrackedCache=false", "status", "--porcelain"]
        interleave(runs, [
            (mh, None, lambda i: self._spawn(self.cp("hash", "--ignore-file", ign, mono),
                                             env=self.env_with(XDG_CACHE_HOME=xm)), None),
            (mgit, None, lambda i: self._spawn(mgit_argv, env=self.env_with(**GIT_ENV)), None),
            (mcold, None, lambda i: self._spawn(mpk("sm-cold.tar.zst", "--no-cache"),
                                                env=self.env_with(XDG_CACHE_HOME=xmc)), None),
            (mwarm, None, lambda i: self._spawn(mpk("sm-warm.tar.zst"),
                                                env=self.env_with(XDG_CACHE_HOME=xm)), None),
        ], warmup=2)
        for n in ("sm-cold.tar.zst", "sm-warm.tar.zst"):
            rmtree(os.path.join(o, n))
        res.update({"mono_hash": mh.to_json(), "mono_git": mgit.to_json(),
                    "mono_cold": mcold.to_json(), "mono_warm": mwarm.to_json(),
                    "mono_entries": len(mls), "mono_ignore_lines": lines})
        self.goal("small", "monorepo (%d entries): hash warm vs git status" % len(mls),
                  mh.median / mgit.median, None, "le", "git status --porcelain",
                  "its .dockerignore + the lines du suggests")
        self.goal("small", "monorepo (%d entries): pack warm vs cold pack" % len(mls),
                  mwarm.median / mcold.median, None, "le", "ctxpack pack --no-cache", "")

        # 5. cache save of content saved before, under a new key, vs a cold
        #    save (the monorepo's node_modules, the issue's case)
        fe = os.path.join(mono, "frontend")
        xs = os.path.join(self.work, "xdg-small-save")
        xsc = os.path.join(self.work, "xdg-small-save-cold")
        st_w = os.path.join(self.work, "small-save-store")
        st_c = os.path.join(self.work, "small-save-store-cold")
        rmtree(xs)
        rmtree(st_w)
        seq = [0]

        def save(xdg, store, key):
            return self._spawn(self.cp("cache", "save", "--key", key, "--store", "oci:" + store,
                                       "node_modules"), cwd=fe, env=self.env_with(XDG_CACHE_HOME=xdg))

        def setup_cold(i):
            rmtree(xsc)
            rmtree(st_c)

        def warm_save(i):
            seq[0] += 1
            return save(xs, st_w, "npm-small-%d" % seq[0])
        save(xs, st_w, "npm-small-0")
        time.sleep(0.3)
        j = json.loads(self.r.out(self.cp("cache", "save", "--json", "--key", "npm-small-probe",
                                          "--store", "oci:" + st_w, "node_modules"), cwd=fe,
                                  env=self.env_with(XDG_CACHE_HOME=xs)))
        self.check("small: a save of content saved before packs nothing", j.get("reused") == 1 and
                   j.get("sent") == 0, j)
        scold = mk("ctxpack cache save (cold)", "ctxpack cache save --key K --store oci:EMPTY node_modules  (empty index)")
        swarm = mk("ctxpack cache save (new key, saved before)", "ctxpack cache save --key NEW --store oci:STORE node_modules")
        sruns = self.runs
        interleave(sruns, [
            (scold, setup_cold, lambda i: save(xsc, st_c, "npm-cold"), None),
            (swarm, None, warm_save, None),
        ], warmup=1)
        rmtree(st_c)
        rmtree(st_w)
        res.update({"save_cold": scold.to_json(), "save_reuse": swarm.to_json(),
                    "save_probe": j})
        self.goal("small", "cache save, new key, content saved before vs cold save",
                  swarm.median / scold.median, 0.2, "le", "ctxpack cache save (empty index and store)",
                  "node_modules of the monorepo (%s)" % human_bytes(j.get("bytes")))
        self.results["sections"]["small"] = res

    # -- registry ---------------------------------------------------------

    def start_registry(self):
        if self.reg:
            return self.reg
        binp = "/usr/bin/docker-registry"
        if not os.access(binp, os.X_OK):
            raise BenchError("%s is missing (Debian package docker-registry; scripts/install-deps)" % binp)
        d = os.path.join(self.work, "registry")
        self.reg_pidfile = os.path.join(self.work, "registry.pid")
        self._stop_stale_registry(os.path.join(d, "config.yml"))
        rmtree(d)
        os.makedirs(os.path.join(d, "data"))
        port = free_port()
        cfg = os.path.join(d, "config.yml")
        with open(cfg, "w") as f:
            f.write("""version: 0.1
log:
  level: error
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %s/data
  cache:
    blobdescriptor: inmemory
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:%d
  secret: ctxpack-bench
""" % (d, port))
        self.reg_log = os.path.join(d, "log")
        logf = open(self.reg_log, "wb")
        p = subprocess.Popen([binp, "serve", cfg], stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
        self.reg_proc = p
        with open(self.reg_pidfile, "w") as f:
            f.write("%d\n" % p.pid)
        self.reg = "127.0.0.1:%d" % port
        for _ in range(100):
            try:
                http_get("http://%s/v2/" % self.reg, timeout=1)
                break
            except Exception:
                if p.poll() is not None:
                    raise BenchError("docker-registry exited:\n" + open(self.reg_log).read()[-2000:])
                time.sleep(0.1)
        else:
            raise BenchError("docker-registry did not answer on %s" % self.reg)
        return self.reg

    def _stop_stale_registry(self, cfg):
        """A registry left by a run of this harness that was killed: stop it
        by the PID it recorded, if that process still serves our config."""
        try:
            pid = int(open(self.reg_pidfile).read())
            cmd = open("/proc/%d/cmdline" % pid, "rb").read().split(b"\0")
        except (OSError, ValueError):
            return
        if cfg.encode() in cmd and any(c.endswith(b"docker-registry") for c in cmd):
            log("stopping a registry left by an earlier run (pid %d)" % pid)
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                if not os.path.exists("/proc/%d" % pid):
                    break
                time.sleep(0.1)

    def stop_registry(self):
        p = getattr(self, "reg_proc", None)
        if p and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p:
            rmtree(self.reg_pidfile)
            # the blobs are not reused by the next run; the log and config stay
            rmtree(os.path.join(self.work, "registry", "data"))
        self.reg = None

    def _blob_base(self):
        n = self.blob_mib << 20
        path = os.path.join(self.work, "blob-%dMiB.base" % self.blob_mib)
        if not os.path.exists(path) or os.path.getsize(path) != n:
            rnd = random.Random(256)
            with open(path + ".tmp", "wb") as f:
                for _ in range(n >> 20):
                    f.write(rnd.randbytes(1 << 20))
            os.rename(path + ".tmp", path)
        return path

    def _unique_blob(self, base, dst, tag):
        """A copy of the base blob whose first bytes name it: a digest no registry has seen."""
        shutil.copyfile(base, dst)
        with open(dst, "r+b") as f:
            f.write(("ctxpack-bench %s %.9f\n" % (tag, time.time())).encode())
        h = hashlib.sha256()
        with open(dst, "rb") as f:
            while True:
                b = f.read(1 << 22)
                if not b:
                    break
                h.update(b)
        return h.hexdigest()

    def _oci_layout(self, d, blob, digest):
        rmtree(d)
        os.makedirs(os.path.join(d, "blobs", "sha256"))
        os.rename(blob, os.path.join(d, "blobs", "sha256", digest))
        cfg = b"{}"
        ch = hashlib.sha256(cfg).hexdigest()
        open(os.path.join(d, "blobs", "sha256", ch), "wb").write(cfg)
        man = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.ctxpack.bench.v1",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": "sha256:" + ch,
                       "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
                        "digest": "sha256:" + digest,
                        "size": os.path.getsize(os.path.join(d, "blobs", "sha256", digest))}]},
            separators=(",", ":")).encode()
        mh = hashlib.sha256(man).hexdigest()
        open(os.path.join(d, "blobs", "sha256", mh), "wb").write(man)
        open(os.path.join(d, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + mh,
            "size": len(man), "annotations": {"org.opencontainers.image.ref.name": "t"}}]},
            open(os.path.join(d, "index.json"), "w"))

    def skopeo(self):
        pol = os.path.join(self.work, "skopeo-policy.json")
        with open(pol, "w") as f:
            f.write('{"default":[{"type":"insecureAcceptAnything"}]}\n')
        tmpd = os.path.join(self.work, "skopeo-tmp")
        os.makedirs(tmpd, exist_ok=True)
        return ["skopeo", "--policy", pol, "--tmpdir", tmpd]

    def _upload_requests(self, start):
        time.sleep(0.3)  # the access log line is written after the response
        with open(self.reg_log, "rb") as f:
            f.seek(start)
            text = f.read().decode("utf-8", "replace")
        lines = text.splitlines()
        # Requests that carry blob bytes: PATCH or PUT to an upload, or a
        # monolithic POST (?digest=).  A bare POST only opens a session.
        data = [l for l in lines if re.search(r'"(PATCH|PUT) /v2/\S*/blobs/uploads/', l) or
                re.search(r'"POST /v2/\S*/blobs/uploads/\?\S*digest=', l)]
        sessions = [l for l in lines if re.search(r'"POST /v2/\S*/blobs/uploads/ ', l)]
        return data, sessions

    def section_registry(self):
        if not shutil.which("skopeo"):
            raise BenchError("skopeo is not installed (scripts/install-deps)")
        reg = self.start_registry()
        base = self._blob_base()
        d = os.path.join(self.work, "reg-bench")
        rmtree(d)
        os.makedirs(d)
        # the last run's registry data and blobs were just deleted (and the
        # disk discards them): let that pass before anything is timed
        settle()
        sk = self.skopeo()
        size = self.blob_mib << 20
        push = Measure("ctxpack push", "ctxpack push FILE %s/bench/push:ctx-N" % "REGISTRY")
        skpush = Measure("skopeo copy (push)",
                         "skopeo copy --dest-tls-verify=false oci:LAYOUT:t docker://REGISTRY/bench/skopeo:N")
        pull = Measure("ctxpack pull", "ctxpack pull REGISTRY/bench/push:ctx-N -o FILE")
        skpull = Measure("skopeo copy (pull)",
                         "skopeo copy --src-tls-verify=false docker://REGISTRY/bench/push:ctx-N oci:DIR:t")
        repush = Measure("ctxpack push (blob already there)", "ctxpack push FILE REGISTRY/bench/push:ctx-N")
        blobs = {}
        nblobs = self.runs + 1

        def setup_push(i):
            f = os.path.join(d, "ctx-%d" % (i + 1))
            blobs[i] = (f, self._unique_blob(base, f, "ctx-%d" % i))

        def setup_skpush(i):
            f = os.path.join(d, "sk-blob")
            dg = self._unique_blob(base, f, "skopeo-%d" % i)
            self._oci_layout(os.path.join(d, "layout"), f, dg)

        def do_push(i):
            return self.r.run(self.cp("push", blobs[i][0], "%s/bench/push:ctx-%d" % (reg, i + 1)),
                              capture=True)

        def do_skpush(i):
            return self.r.run(sk + ["copy", "-q", "--dest-tls-verify=false",
                                    "oci:%s:t" % os.path.join(d, "layout"),
                                    "docker://%s/bench/skopeo:s-%d" % (reg, i + 1)])

        def chk_push(s, i):
            man = json.loads(http_get("http://%s/v2/bench/push/manifests/ctx-%d" % (reg, i + 1), {
                "Accept": "application/vnd.oci.image.manifest.v1+json"}))
            if man["layers"][0]["digest"] != "sha256:" + blobs[i][1]:
                raise BenchError("ctxpack push: the registry's layer is not the file's sha256")
        log("registry: push %d MiB" % self.blob_mib)
        interleave(self.runs, [(push, setup_push, do_push, chk_push),
                               (skpush, setup_skpush, do_skpush, None)])
        rmtree(os.path.join(d, "layout"))

        def setup_pull(i):
            rmtree(os.path.join(d, "pulled"))

        def do_pull(i):
            return self.r.run(self.cp("pull", "%s/bench/push:ctx-%d" % (reg, i + 1), "-o",
                                      os.path.join(d, "pulled")))

        def chk_pull(s, i):
            if os.path.getsize(os.path.join(d, "pulled")) != size:
                raise BenchError("ctxpack pull: wrong size")

        def setup_skpull(i):
            rmtree(os.path.join(d, "skpulled"))

        def do_skpull(i):
            return self.r.run(sk + ["copy", "-q", "--src-tls-verify=false",
                                    "docker://%s/bench/push:ctx-%d" % (reg, i + 1),
                                    "oci:%s:t" % os.path.join(d, "skpulled")])
        log("registry: pull")
        interleave(self.runs, [(pull, setup_pull, do_pull, chk_pull),
                               (skpull, setup_skpull, do_skpull, None)], warmup=0)
        rmtree(os.path.join(d, "pulled"))
        rmtree(os.path.join(d, "skpulled"))
        # re-push: the same file to the same reference; no blob upload allowed.
        uploads, sessions = [], []

        def do_repush(i):
            k = max(i, 0)
            start = os.path.getsize(self.reg_log)
            s = self.r.run(self.cp("push", blobs[k][0], "%s/bench/push:ctx-%d" % (reg, k + 1)))
            s.uploads, s.sessions = self._upload_requests(start)
            return s

        def chk_repush(s, i):
            uploads.extend(s.uploads)
            sessions.extend(s.sessions)
        interleave(self.runs, [(repush, None, do_repush, chk_repush)])
        self.check("registry: a re-push sends no blob bytes", not uploads,
                   "%d requests carrying blob data (PATCH/PUT to an upload, POST ?digest=) "
                   "during %d re-pushes" % (len(uploads), self.runs + 1))
        repush.extra["data_upload_requests"] = len(uploads)
        repush.extra["upload_sessions_opened"] = len(sessions)
        for k in list(blobs):
            rmtree(blobs[k][0])
        mb = size / 1e6
        for m in (push, skpush, pull, skpull):
            m.extra["MB_per_s"] = mb / m.median
        self.results["sections"]["registry"] = {
            "blob_bytes": size, "push": push.to_json(), "skopeo_push": skpush.to_json(),
            "pull": pull.to_json(), "skopeo_pull": skpull.to_json(), "repush": repush.to_json()}
        self.goal("registry", "push %d MiB vs skopeo copy" % self.blob_mib, push.median / skpush.median,
                  1.0, "le", "skopeo copy oci: -> docker://", "loopback docker-registry; %.0f vs %.0f MB/s" % (
                      push.extra["MB_per_s"], skpush.extra["MB_per_s"]))
        self.goal("registry", "pull %d MiB vs skopeo copy" % self.blob_mib, pull.median / skpull.median,
                  1.0, "le", "skopeo copy docker:// -> oci:", "%.0f vs %.0f MB/s" % (
                      pull.extra["MB_per_s"], skpull.extra["MB_per_s"]))
        self.goal("registry", "re-push of an existing blob", repush.median * 1000, 100, "lt",
                  "absolute: < 100 ms", "%d requests carrying blob bytes; %d upload sessions opened "
                  "and left unused" % (len(uploads), len(sessions)), chart=False, unit="ms")

    # -- cache ------------------------------------------------------------

    def section_cache(self):
        reg = self.start_registry()
        # This disk's ext4 has no journal, and then it skips inodes freed
        # "recently" (up to 5 minutes while their inode table block is dirty)
        # when it allocates new ones, checking every one of them, so creating
        # 7,000 files right after deleting 7,000 nearby costs seconds of CPU
        # in the kernel, for npm ci, tar and ctxpack alike.  A CI job starts
        # from a fresh checkout, not from a just-deleted node_modules: the
        # trees a run leaves are moved aside and deleted after the section.
        trash = os.path.join(self.work, "trash")
        rmtree(trash)
        os.makedirs(trash)
        ntrash = [0]

        def discard(p):
            if os.path.lexists(p):
                ntrash[0] += 1
                os.rename(p, os.path.join(trash, str(ntrash[0])))

        fe = os.path.join(self.work, "cache-frontend")
        discard(fe)
        os.makedirs(fe)
        for n in ("package.json", "package-lock.json"):
            shutil.copyfile(os.path.join(TEMPLATE, "context", "frontend", n), os.path.join(fe, n))
        nm = os.path.join(fe, "node_modules")
        marker = os.path.join(self.work, "cache-command-runs")
        rmtree(marker)
        npm = self.npm_ci_argv()
        # The command cache run wraps: npm ci, counting its runs so a "hit" is checked.
        wrapped = ["sh", "-c", 'echo run >> "$0" && exec "$@"', marker] + npm
        store_reg = "%s/bench/cache-run" % reg
        store_oci = "oci:" + os.path.join(self.work, "cache-store-oci")
        rmtree(os.path.join(self.work, "cache-store-oci"))

        def runs_so_far():
            return len(open(marker).read().splitlines()) if os.path.exists(marker) else 0

        def cache_run(store):
            return self.cp("cache", "run", "--key-file", "package-lock.json", "--path", "node_modules",
                           "--store", store, "--") + wrapped

        def clean(i):
            discard(nm)

        def check_nm():
            if not os.path.exists(os.path.join(nm, "vite", "package.json")) or \
                    not os.path.exists(os.path.join(nm, ".bin", "vite")):
                raise BenchError("node_modules is incomplete after the step")

        # prime both stores: a miss runs npm ci and saves
        log("cache: priming (npm ci through cache run, a miss)")
        # (the embedded oci: store is measured too in the full run only)
        stores = (store_reg,) if self.quick else (store_reg, store_oci)
        for store in stores:
            clean(0)
            before = runs_so_far()
            self.r.run(cache_run(store), cwd=fe)
            if runs_so_far() != before + 1:
                raise BenchError("cache run on an empty store did not run the command")
            check_nm()
        npm_m = Measure("npm ci (cold)", "npm ci --cache EMPTY_DIR --no-audit --no-fund  "
                        "(downloads from the npm registry)")
        npm_w = Measure("npm ci (warm npm cache)", "npm ci --cache WARM_DIR --no-audit --no-fund")
        cold_cache = os.path.join(self.work, "npm-cache-cold")
        hit = Measure("ctxpack cache run (hit, registry)",
                      "ctxpack cache run --key-file package-lock.json --path node_modules "
                      "--store REGISTRY/bench/cache-run -- npm ci ...")
        hit_oci = Measure("ctxpack cache run (hit, oci: store)",
                          "ctxpack cache run ... --store oci:DIR -- npm ci ...")

        def do_hit(store, m):
            def fn(i):
                before = runs_so_far()
                s = self.r.run(cache_run(store), cwd=fe)
                if runs_so_far() != before:
                    raise BenchError("cache run ran the command on what should be a hit (%s)" % store)
                check_nm()
                return s
            return fn

        def clean_cold(i):
            discard(nm)
            discard(cold_cache)

        def do_npm(argv):
            def fn(i):
                s = self.r.run(argv, cwd=fe)
                check_nm()
                return s
            return fn
        npm_cold = ["npm", "ci", "--cache", cold_cache] + npm[4:]
        log("cache: npm ci vs cache run (hit)")
        variants = [(npm_m, clean_cold, do_npm(npm_cold), None),
                    (hit, clean, do_hit(store_reg, hit), None)]
        if not self.quick:
            variants.append((npm_w, clean, do_npm(npm), None))
            variants.append((hit_oci, clean, do_hit(store_oci, hit_oci), None))
        # No warm-up runs here: priming already warmed the registry and the
        # npm cache, and each run materializes 100 MB in 7,000 files.
        warm = 0
        interleave(self.runs, variants, warmup=warm)
        # restore vs curl | zstd -d | tar -x of the same blob
        key = "bench-node-modules-" + hashlib.sha256(
            open(os.path.join(fe, "package-lock.json"), "rb").read()).hexdigest()[:16]
        store_r = "%s/bench/cache-restore" % reg
        if not os.path.exists(os.path.join(nm, "vite")):
            self.r.run(npm, cwd=fe)
        self.r.run(self.cp("cache", "save", "--key", key, "--store", store_r, "node_modules"), cwd=fe)
        j = json.loads(self.r.out(self.cp("cache", "restore", "--key", key, "--store", store_r,
                                          "--lookup-only", "--json", "node_modules"), cwd=fe))
        if j.get("result") != "hit":
            raise BenchError("cache restore --lookup-only after save: %s" % j)
        man = json.loads(http_get("http://%s/v2/bench/cache-restore/manifests/%s" % (reg, j["tag"]), {
            "Accept": "application/vnd.oci.image.manifest.v1+json"}))
        layer = [l for l in man["layers"]
                 if (l.get("annotations") or {}).get("io.ctxpack.cache.path", "node_modules") == "node_modules"][0]
        url = "http://%s/v2/bench/cache-restore/blobs/%s" % (reg, layer["digest"])
        rest = Measure("ctxpack cache restore", "ctxpack cache restore --key KEY --store REGISTRY/bench/cache-restore node_modules")
        curl = Measure("curl | zstd -d | tar -x", "curl -s BLOB_URL | zstd -d | tar -x -C node_modules")

        def do_restore(i):
            s = self.r.run(self.cp("cache", "restore", "--key", key, "--store", store_r, "--json",
                                   "node_modules"), cwd=fe, capture=True)
            if json.loads(s.stdout).get("result") != "hit":
                raise BenchError("cache restore: not a hit: %s" % s.stdout)
            check_nm()
            return s

        def setup_curl(i):
            discard(nm)
            os.makedirs(nm)

        def do_curl(i):
            s = self.r.run([["curl", "-sSf", "--noproxy", "127.0.0.1", url], ["zstd", "-d", "-q"],
                            ["tar", "-x", "-C", nm]], cwd=fe)
            check_nm()
            return s
        log("cache: restore vs curl | zstd -d | tar -x (%s)" % human_bytes(layer["size"]))
        interleave(self.runs, [(rest, clean, do_restore, None), (curl, setup_curl, do_curl, None)],
                   warmup=warm)
        discard(nm)
        real = self._cache_real_trees(reg, store_r, discard)
        self.results["sections"]["cache"] = {
            "node_modules_blob_bytes": layer["size"], "npm_ci": npm_m.to_json(), "hit": hit.to_json(),
            "restore": rest.to_json(), "curl": curl.to_json(), "real_trees": real}
        if hit_oci.samples:
            self.results["sections"]["cache"]["hit_oci"] = hit_oci.to_json()
            self.results["sections"]["cache"]["npm_ci_warm"] = npm_w.to_json()
        discard(cold_cache)
        rmtree(trash)
        self.goal("cache", "cache run hit vs npm ci", hit.median / npm_m.median, 0.1, "le",
                  "npm ci, empty npm cache", "%.1fx faster; registry store" % (npm_m.median / hit.median))
        if hit_oci.samples:
            self.goal("cache", "cache run hit vs npm ci, warm npm cache", hit.median / npm_w.median,
                      None, "le", "npm ci, warm npm cache", "%.1fx faster; registry store" % (
                          npm_w.median / hit.median))
            self.goal("cache", "cache run hit (oci: store) vs npm ci", hit_oci.median / npm_m.median,
                      None, "le", "npm ci, empty npm cache", "%.1fx faster; embedded store" % (
                          npm_m.median / hit_oci.median))
        self.goal("cache", "cache restore vs curl | zstd -d | tar -x", rest.median / curl.median, 1.0,
                  "le", "curl | zstd -d | tar -x", "%s blob; ctxpack also verifies its sha256" %
                  human_bytes(layer["size"]))

    def _cache_real_trees(self, reg, store_r, discard):
        """Issue 14: a real npm workspace node_modules (workspace links, .bin
        links) and a venv (bin/python3 -> the system's python), each saved,
        then restored as a hit and checked against the original tree
        (paths, types, modes, link targets, sizes), timed against
        curl | zstd -d | tar -x of the same blob; the workspace also against
        npm ci with a warm npm cache."""
        ws = os.path.join(self.work, "cache-workspace")
        discard(ws)
        shutil.copytree(os.path.join(BENCH, "workspace"), ws, symlinks=True)
        npm = self.npm_ci_argv()
        log("cache: npm ci of the workspace (bench/workspace)")
        self.r.run(npm, cwd=ws)
        self.monorepo()
        vdir = os.path.join(self.work, "cache-venv")
        discard(vdir)
        os.makedirs(vdir)
        # cp -a keeps the venv's links (bin/python3 -> the system's python)
        self.r.run(["cp", "-a", os.path.join(self.mono, "backend", ".venv"), vdir])
        cases = [("workspace node_modules", ws, "node_modules"), ("venv", vdir, ".venv")]
        out = {}
        for label, wd, path in cases:
            full = os.path.join(wd, path)
            ref = tree_listing(full)
            nlinks = sum(1 for x in ref if x[1] == "l")
            key = "bench-" + label.replace(" ", "-")
            self.r.run(self.cp("cache", "save", "--key", key, "--store", store_r, path), cwd=wd)
            j = json.loads(self.r.out(self.cp("cache", "restore", "--key", key, "--store", store_r,
                                              "--lookup-only", "--json", path), cwd=wd))
            if j.get("result") != "hit":
                raise BenchError("cache restore --lookup-only of the %s after save: %s" % (label, j))
            man = json.loads(http_get("http://%s/v2/bench/cache-restore/manifests/%s" % (reg, j["tag"]), {
                "Accept": "application/vnd.oci.image.manifest.v1+json"}))
            layer = man["layers"][0]
            url = "http://%s/v2/bench/cache-restore/blobs/%s" % (reg, layer["digest"])
            rest = Measure("ctxpack cache restore (%s)" % label,
                           "ctxpack cache restore --key K --store REGISTRY/bench/cache-restore %s" % path)
            curl = Measure("curl | zstd -d | tar -x (%s)" % label,
                           "curl -s BLOB_URL | zstd -d | tar -x -C %s" % path)

            def clean(i, full=full):
                discard(full)

            def do_restore(i, wd=wd, key=key, path=path, label=label):
                s = self.r.run(self.cp("cache", "restore", "--key", key, "--store", store_r, "--json",
                                       path), cwd=wd, capture=True)
                if json.loads(s.stdout).get("result") != "hit":
                    raise BenchError("cache restore of the %s: not a hit: %s" % (label, s.stdout))
                return s

            def setup_curl(i, full=full):
                discard(full)
                os.makedirs(full)

            def do_curl(i, wd=wd, url=url, full=full):
                return self.r.run([["curl", "-sSf", "--noproxy", "127.0.0.1", url], ["zstd", "-d", "-q"],
                                   ["tar", "-x", "-C", full]], cwd=wd)
            log("cache: restore of the %s (%d entries, %d symlinks, %s) vs curl | zstd -d | tar -x" % (
                label, len(ref), nlinks, human_bytes(layer["size"])))
            variants = [(rest, clean, do_restore, None), (curl, setup_curl, do_curl, None)]
            npm_ws = None
            if path == "node_modules":
                npm_ws = Measure("npm ci (workspace, warm npm cache)", " ".join(npm))

                def do_npm(i, wd=wd):
                    return self.r.run(npm, cwd=wd)
                variants.append((npm_ws, clean, do_npm, None))
            interleave(self.runs, variants, warmup=0)
            # the last restore, checked against the tree it was saved from
            clean(0)
            do_restore(0)
            got = tree_listing(full)
            diff = sorted(set(got) ^ set(ref))
            self.check("cache restore of the %s is the tree saved" % label, not diff,
                       "%d entries, %d symlinks%s" % (len(ref), nlinks, "; differs at %s" % (diff[:2],)
                                                      if diff else ""))
            out[label] = {"entries": len(ref), "symlinks": nlinks, "blob_bytes": layer["size"],
                          "restore": rest.to_json(), "curl": curl.to_json()}
            self.goal("cache", "cache restore (%s) vs curl | zstd -d | tar -x" % label,
                      rest.median / curl.median, 1.0, "le", "curl | zstd -d | tar -x",
                      "%s blob, %d entries, %d symlinks; a hit" % (human_bytes(layer["size"]), len(ref),
                                                                   nlinks))
            if npm_ws:
                out[label]["npm_ci"] = npm_ws.to_json()
                self.goal("cache", "cache restore (%s) vs npm ci" % label, rest.median / npm_ws.median,
                          None, "le", "npm ci, warm npm cache", "%.1fx faster" % (
                              npm_ws.median / rest.median))
            discard(full)
        discard(ws)
        discard(vdir)
        return out

    # -- image ------------------------------------------------------------
    #
    # `ctxpack image` against `docker build` + `docker push` of the
    # equivalent Dockerfile (issue 18): a backend whose dependency tree
    # (.venv, 200+ MB) is unchanged and one of whose source files was
    # edited, pushed to the local registry.  Docker is Debian's dockerd
    # (BuildKit, as `docker build` is since Docker 23), run on a data root of
    # its own: a fresh one for every cold run (a new CI runner), one kept
    # between runs for the warm daemon.  Nothing is pulled from anywhere but
    # the local registry (dockerd gets a proxy on a closed port).

    DOCKERD = "/usr/sbin/dockerd"
    DOCKER = "/usr/bin/docker"

    def _image_context(self):
        """work/image-ctx: .venv (bench/gen-tree, deterministic) and app/
        (the monorepo template's backend sources), and the Dockerfile that
        copies the same two trees to the same places."""
        files, nbytes = (3000, 40_000_000) if self.quick else (12000, 230_000_000)
        d = os.path.join(self.work, "image-ctx-%d-%d" % (files, nbytes))
        stamp = os.path.join(d, ".bench-complete")
        if not os.path.exists(stamp):
            log("image: generating the backend context (%d files, %s of dependencies)" % (
                files, human_bytes(nbytes)))
            rmtree(d)
            os.makedirs(d)
            self.r.run([sys.executable, os.path.join(BENCH, "gen-tree"), os.path.join(d, ".venv"),
                        "--files", str(files), "--bytes", str(nbytes), "--seed", "18"])
            shutil.copytree(os.path.join(TEMPLATE, "context", "backend", "app"),
                            os.path.join(d, "app"))
            open(stamp, "w").close()
        with open(os.path.join(d, ".dockerignore"), "w") as f:
            f.write(".bench-complete\n")
        return d, files, nbytes

    def _dockerd_start(self, name, fresh):
        """A dockerd on a socket and data root of its own under work/;
        returns its dict (proc, host, dir).  overlay2 where it works, vfs
        otherwise."""
        d = os.path.join(self.work, name)
        if fresh:
            rmtree(d)
        for sub in ("root", "exec"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        with open(os.path.join(d, "daemon.json"), "w") as f:
            f.write("{}\n")
        sock = os.path.join("/tmp", "ctxpack-bench-%s-%d.sock" % (name, os.getpid()))
        host = "unix://" + sock
        env = dict(self.env, HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
                   NO_PROXY="127.0.0.1,localhost")
        for driver in ("overlay2", "vfs"):
            logf = open(os.path.join(d, "dockerd.log"), "ab")
            p = subprocess.Popen([self.DOCKERD, "--storage-driver=" + driver, "--iptables=false",
                                  "--ip-masq=false", "--bridge=none", "--userland-proxy=false",
                                  "--config-file", os.path.join(d, "daemon.json"), "-H", host,
                                  "--data-root", os.path.join(d, "root"),
                                  "--exec-root", os.path.join(d, "exec"),
                                  "--pidfile", os.path.join(d, "dockerd.pid")],
                                 env=env, stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
            dk = {"proc": p, "host": host, "dir": d, "sock": sock, "driver": driver}
            for _ in range(300):
                if p.poll() is not None:
                    break
                r = subprocess.run([self.DOCKER, "-H", host, "version"], capture_output=True)
                if r.returncode == 0:
                    return dk
                time.sleep(0.1)
            self._dockerd_stop(dk)
            if not fresh:
                break
        raise BenchError("dockerd did not start:\n" +
                         open(os.path.join(d, "dockerd.log")).read()[-2000:])

    def _dockerd_stop(self, dk, remove=False):
        p = dk["proc"]
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        cpid = os.path.join(dk["dir"], "exec", "containerd", "containerd.pid")
        try:
            os.kill(int(open(cpid).read()), signal.SIGKILL)
        except (OSError, ValueError):
            pass
        rmtree(dk["sock"])
        if remove:
            rmtree(dk["dir"])

    def _docker_env(self, dk):
        return dict(self.env, DOCKER_HOST=dk["host"], DOCKER_BUILDKIT="1",
                    DOCKER_CONFIG=os.path.join(dk["dir"], "client"))

    def _blob_uploads(self, start):
        """The digests of the blobs uploaded since the access log was at
        start (their closing PUT ?digest=)."""
        data, _ = self._upload_requests(start)
        out = []
        for l in data:
            m = re.search(r"digest=sha256%3A([0-9a-f]{64})", l)
            if m:
                out.append(m.group(1))
        return out

    def _reg_blob_size(self, repo, hexd):
        req = urllib.request.Request("http://%s/v2/%s/blobs/sha256:%s" % (self.reg, repo, hexd),
                                     method="HEAD")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=10) as r:
            return int(r.headers["Content-Length"])

    def section_image(self):
        for t in (self.DOCKERD, self.DOCKER, "/bin/busybox"):
            if not os.access(t, os.X_OK):
                raise BenchError("%s is missing (scripts/install-deps: docker.io, busybox-static)" % t)
        if os.geteuid() != 0:
            raise BenchError("the image section runs dockerd, which needs root")
        reg = self.start_registry()
        ctx, nfiles, nbytes = self._image_context()
        edit_file = os.path.join(ctx, "app", "main.py")
        orig = open(edit_file, "rb").read()
        xdg = os.path.join(self.work, "xdg-image")
        xdg_cold = os.path.join(self.work, "xdg-image-cold")
        rmtree(xdg)
        warm = self._dockerd_start("dockerd-warm", fresh=True)
        cold = None
        try:
            # the base: busybox-static with Docker's usual PATH, pushed by dockerd
            rootfs = os.path.join(self.work, "image-rootfs")
            rmtree(rootfs)
            for sub in ("bin", "tmp", "etc"):
                os.makedirs(os.path.join(rootfs, sub))
            shutil.copy("/bin/busybox", os.path.join(rootfs, "bin", "busybox"))
            for a in ("sh", "ls", "cat", "env", "id"):
                os.symlink("busybox", os.path.join(rootfs, "bin", a))
            base = "%s/bench/base:1" % reg
            denv = self._docker_env(warm)
            self.r.run([["tar", "-C", rootfs, "-c", "."],
                        [self.DOCKER, "import", "--change",
                         "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                         "-", base]], env=denv)
            self.r.run([self.DOCKER, "push", "-q", base], env=denv)
            self.r.run([self.DOCKER, "rmi", base], env=denv)
            with open(os.path.join(ctx, "Dockerfile"), "w") as f:
                f.write("FROM %s\n"
                        "COPY .venv /app/.venv\n"
                        "COPY app /app/app\n"
                        "WORKDIR /app\n"
                        "ENV PATH=/app/.venv/bin:$PATH\n"
                        'CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0"]\n' % base)
            image_args = ["image", "--from", base,
                          "--layer", os.path.join(ctx, ".venv") + ":/app/.venv",
                          "--layer", os.path.join(ctx, "app") + ":/app/app",
                          "--workdir", "/app", "--env", "PATH=/app/.venv/bin:$PATH",
                          "--cmd", '["uvicorn", "app.main:app", "--host", "0.0.0.0"]', "--json"]
            counter = [0]

            def edit(i):
                counter[0] += 1
                with open(edit_file, "wb") as f:
                    f.write(orig + b"\n# edit %d\n" % counter[0])

            ctx_edit = Measure("ctxpack image (one edit)",
                               "ctxpack image --from BASE --layer .venv:/app/.venv --layer app:/app/app "
                               "... -t REGISTRY/bench/app:ctx-N")
            ctx_first = Measure("ctxpack image (first run: empty cache)",
                                "the same with an empty $XDG_CACHE_HOME, to a new repository")
            dk_warm = Measure("docker build + push (warm daemon)",
                              "docker build -t REGISTRY/bench/app:warm-N CTX && docker push ...")
            dk_cold = Measure("docker build + push (cold daemon)",
                              "the same on a dockerd with a fresh data root")
            seen = {"ctx": [], "warm": []}

            def do_ctx(i):
                start = os.path.getsize(self.reg_log)
                s = self.r.run(self.cp(*(image_args + ["-t", "%s/bench/app:ctx-%d" % (reg, i + 2)])),
                               capture=True, env=self.env_with(XDG_CACHE_HOME=xdg))
                s.uploads = self._blob_uploads(start)
                return s

            def chk_ctx(s, i):
                j = json.loads(s.stdout)
                deps, app = j["layers"][1], j["layers"][2]
                if i >= 0 and (not deps["reused"] or deps["made"] or not app["packed"]):
                    raise BenchError("ctxpack image after an edit: the dependency layer was "
                                     "not known from its record: %s" % deps)
                seen["ctx"].append({"uploads": s.uploads, "app": app["digest"], "app_size": app["size"],
                                    "config": j["config"], "config_size": j["config_size"],
                                    "uploaded_bytes": j["outputs"][0]["uploaded_bytes"],
                                    "deps_size": deps["size"]})

            def do_first(i):
                rmtree(xdg_cold)
                start = os.path.getsize(self.reg_log)
                s = self.r.run(self.cp(*(image_args + ["-t", "%s/bench/first-%d:1" % (reg, i + 2)])),
                               capture=True, env=self.env_with(XDG_CACHE_HOME=xdg_cold))
                s.uploads = self._blob_uploads(start)
                return s

            def do_warm(i):
                start = os.path.getsize(self.reg_log)
                ref = "%s/bench/app:warm-%d" % (reg, i + 2)
                s = self.r.run(["sh", "-c", '"$0" build -q -t "$1" "$2" && "$0" push -q "$1"',
                                self.DOCKER, ref, ctx], env=self._docker_env(warm))
                s.uploads = self._blob_uploads(start)
                seen["warm"].append(len(s.uploads))
                return s

            def setup_cold(i):
                if cold[0]:
                    self._dockerd_stop(cold[0], remove=True)
                cold[0] = self._dockerd_start("dockerd-cold", fresh=True)
                edit(i)

            def do_cold(i):
                ref = "%s/bench/app:cold-%d" % (reg, i + 2)
                return self.r.run(["sh", "-c", '"$0" build -q -t "$1" "$2" && "$0" push -q "$1"',
                                   self.DOCKER, ref, ctx], env=self._docker_env(cold[0]))

            log("image: ctxpack image and docker build + push (warm daemon), one edit each")
            interleave(self.runs, [(ctx_edit, edit, do_ctx, chk_ctx),
                                   (dk_warm, edit, do_warm, None)])
            log("image: ctxpack image, first run (empty cache)")
            interleave(self.runs, [(ctx_first, edit, do_first, None)], warmup=0)
            cold_runs = min(self.runs, 3)
            log("image: docker build + push on a fresh dockerd (%d runs)" % cold_runs)
            cold = [None]
            interleave(cold_runs, [(dk_cold, setup_cold, do_cold, None)], warmup=0)
        finally:
            with open(edit_file, "wb") as f:
                f.write(orig)
            if cold and cold[0]:
                self._dockerd_stop(cold[0], remove=True)
            self._dockerd_stop(warm, remove=True)
            rmtree(xdg_cold)

        timed = seen["ctx"][1:]  # after the warm-up
        only_app = all(sorted(t["uploads"]) == sorted([t["app"][7:], t["config"][7:]])
                       for t in timed)
        self.check("image: after an edit ctxpack uploads the app layer and the config only",
                   only_app, "uploads per run (registry access log): %s" % [
                       len(t["uploads"]) for t in timed])
        layer_bytes = [t["uploaded_bytes"] - t["config_size"] for t in timed]
        app_sizes = [t["app_size"] for t in timed]
        dv = subprocess.run([self.DOCKER, "--version"], capture_output=True,
                                             text=True).stdout.strip()
        self.results["sections"]["image"] = {
            "dependency_tree": {"files": nfiles, "bytes": nbytes,
                                "layer_bytes": timed[0]["deps_size"] if timed else None},
            "docker": dv, "storage_driver": warm["driver"],
            "ctxpack_edit": ctx_edit.to_json(), "ctxpack_first": ctx_first.to_json(),
            "docker_warm": dk_warm.to_json(), "docker_cold": dk_cold.to_json(),
            "ctxpack_uploads": [len(t["uploads"]) for t in timed],
            "ctxpack_layer_bytes_uploaded": layer_bytes, "app_layer_bytes": app_sizes,
            "docker_warm_uploads": seen["warm"][1:]}
        self.goal("image", "image after one edit vs docker build+push, cold daemon",
                  ctx_edit.median / dk_cold.median, 0.1, "le", "docker build + push, fresh data root",
                  "%.0fx faster; %s dependency tree unchanged, %s; BuildKit, %s" % (
                      dk_cold.median / ctx_edit.median, human_bytes(nbytes), warm["driver"], dv))
        self.goal("image", "image after one edit vs docker build+push, warm daemon",
                  ctx_edit.median / dk_warm.median, 1.0, "lt", "docker build + push, warm daemon",
                  "%.1fx faster" % (dk_warm.median / ctx_edit.median))
        self.goal("image", "layer bytes pushed after one edit vs the app layer",
                  (sum(layer_bytes) / sum(app_sizes)) if app_sizes and sum(app_sizes) else None,
                  1.0, "le", "the app layer's size", "%s per run; plus the config (%s)" % (
                      human_bytes(statistics.median(app_sizes)) if app_sizes else "?",
                      human_bytes(timed[0]["config_size"]) if timed else "?"), chart=False)
        self.goal("image", "image first run (empty cache) vs docker build+push, cold daemon",
                  ctx_first.median / dk_cold.median, None, "le",
                  "docker build + push, fresh data root",
                  "packs and uploads both layers (gzip), to a new repository")

    # -- output -----------------------------------------------------------

    def machine(self):
        cpu = "unknown"
        try:
            for line in open("/proc/cpuinfo"):
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        mem = None
        try:
            for line in open("/proc/meminfo"):
                if line.startswith("MemTotal"):
                    mem = int(line.split()[1]) * 1024
        except OSError:
            pass

        def ver(argv):
            try:
                r = subprocess.run(argv, capture_output=True, text=True, timeout=20, env=self.env)
                return (r.stdout.strip() or r.stderr.strip()).splitlines()[0]
            except Exception:
                return None
        return {
            "cpu": cpu, "cores": len(os.sched_getaffinity(0)), "memory_bytes": mem,
            "loadavg_at_start": os.getloadavg(),
            "kernel": platform.release(), "date": datetime.datetime.now(datetime.timezone.utc)
            .strftime("%Y-%m-%d %H:%M UTC"),
            "versions": {
                "ctxpack": ver([self.ctx, "--version"]), "git": ver(["git", "--version"]),
                "tar": ver(["tar", "--version"]), "zstd": ver(["zstd", "--version"]),
                "xxhsum": ver(["xxhsum", "--version"]) or None,
                "skopeo": ver(["skopeo", "--version"]),
                "docker-registry": ver(["/usr/bin/docker-registry", "--version"]),
                "npm": ver(["npm", "--version"]), "node": ver(["node", "--version"]),
                "python": sys.version.split()[0]},
        }

    def write(self, elapsed, replot=False):
        res = self.results
        if not replot:
            res["mode"] = "quick" if self.quick else "full"
            res["runs"] = self.runs
            res["elapsed_s"] = elapsed
            res["machine"]["loadavg_at_end"] = os.getloadavg()
            res["goals"] = self.goals
            res["trees"] = {"generated": {"files": self.files, "bytes": self.bytes},
                            "blob_mib": self.blob_mib}
        outd = self.a.out or os.path.join(BENCH, "results")
        os.makedirs(outd, exist_ok=True)
        stem = self.stem()
        paths = {ext: os.path.join(outd, "%s.%s" % (stem, ext)) for ext in ("json", "md", "png")}
        with open(paths["json"] + ".tmp", "w") as f:
            json.dump(res, f, indent=1, sort_keys=True)
            f.write("\n")
        self.chart(paths["png"] + ".tmp", os.path.basename(paths["png"]))
        with open(paths["md"] + ".tmp", "w") as f:
            f.write(self.markdown(os.path.basename(paths["png"])))
        for p in paths.values():
            os.replace(p + ".tmp", p)
        return paths

    def stem(self):
        """The results' file name: a partial run (--only) must not replace
        the full run's."""
        return "quick" if self.quick else "partial" if self.a.only else "latest"

    def markdown(self, png):
        r = self.results
        m = r["machine"]
        L = []
        L.append("# ctxpack benchmarks (%s)\n" % ("`make bench-quick`" if self.quick else "`make bench`"))
        L.append("%s · %s, %d cores, %.1f GiB RAM · Linux %s · %s run in %.0f s, medians of %d runs "
                 "· load average %.1f at the start, %.1f at the end\n" % (
                     m["date"], m["cpu"], m["cores"], (m["memory_bytes"] or 0) / 2**30, m["kernel"],
                     r["mode"], r["elapsed_s"], r["runs"], m["loadavg_at_start"][0],
                     m["loadavg_at_end"][0]))
        budget = 120 if self.quick else 900
        if r.get("phase_s"):
            order = ["contexts", "sizes", "ls", "hash", "pack", "small", "registry", "cache"]
            L.append("Time spent: " + ", ".join("%s %.0f s" % (k, r["phase_s"][k]) for k in order
                                                if k in r["phase_s"]) + ".\n")
        if max(m["loadavg_at_start"][0], m["loadavg_at_end"][0]) > m["cores"]:
            L.append("> The machine was busy (load average above its %d cores): times are longer and "
                     "ratios noisier than on an idle machine.\n" % m["cores"])
        if r["elapsed_s"] > budget:
            L.append("> The run took %.0f s, over its budget of %d s (load average %.1f at the start)."
                     "\n" % (r["elapsed_s"], budget, m["loadavg_at_start"][0]))
        if r["not_run"]:
            L.append("> **Partial run.** Not run: " + "; ".join(
                "%s (%s)" % (k, v) for k, v in r["not_run"].items()) + "\n")
        L.append("![ctxpack against its baselines](%s)\n" % png)
        L.append("## Goals\n")
        L.append("Ratio = ctxpack's median time / the baseline's median time in the same run "
                 "(sizes: bytes / bytes). Lower is better.\n")
        L.append("| benchmark | ratio | goal | | baseline | notes |")
        L.append("|---|---:|---:|:-:|---|---|")
        for g in self.goals:
            if g["unit"] == "ms":
                val = "%.0f ms" % g["value"]
                goal = "< %g ms" % g["goal"]
            else:
                val = "%.2fx" % g["value"] if g["value"] is not None else "—"
                goal = ("<= %gx" % g["goal"]) if g["goal"] is not None else "—"
            mark = {True: "pass", False: "**miss**", None: ""}[g["pass"]]
            L.append("| %s | %s | %s | %s | %s | %s |" % (md(g["name"]), val, goal, mark,
                                                          md(g["baseline"]), md(g["detail"])))
        for sec in r["not_run"]:
            L.append("| %s | — | | not run | | %s |" % (sec, r["not_run"][sec]))
        L.append("")
        # times
        L.append("## Times\n")
        L.append("Median (min–max) wall time of %d runs; peak memory is the largest max RSS of a "
                 "run (the sum over a pipeline's processes).\n" % r["runs"])
        L.append("| section | what | command | median | min – max | peak memory | CPU (user+sys) |")
        L.append("|---|---|---|---:|---:|---:|---:|")
        order = [("ls", ["ctxpack", "baseline"]), ("hash", ["cold", "xxhsum", "warm", "git_status"]),
                 ("pack", ["cold", "first", "tar_zstd", "warm", "edit", "gzip", "tar_gzip"]),
                 ("small", ["zstd_version", "version", "ls10", "hash4k", "git4k", "pack8k_cold",
                            "pack8k_warm", "hash8k_warm", "pack8k_edit", "mono_hash", "mono_git",
                            "mono_cold", "mono_warm", "save_cold", "save_reuse"]),
                 ("registry", ["push", "skopeo_push", "pull", "skopeo_pull", "repush"]),
                 ("cache", ["npm_ci", "npm_ci_warm", "hit", "hit_oci", "restore", "curl"]),
                 ("image", ["ctxpack_edit", "docker_warm", "docker_cold", "ctxpack_first"])]
        for sec, keys in order:
            s = r["sections"].get(sec)
            if not s:
                continue
            for k in keys:
                if k not in s:
                    continue
                j = s[k]
                L.append("| %s | %s | `%s` | %s | %s – %s | %s | %s |" % (
                    sec, md(j.get("name", k)), md(j["command"]), fmt_s(j["median_s"]), fmt_s(j["min_s"]),
                    fmt_s(j["max_s"]), fmt_mem(j["peak_rss_kb"]), fmt_s(j["median_cpu_s"])))
        L.append("")
        sz = r["sections"].get("sizes")
        if sz:
            L.append("## Context sizes\n")
            L.append("What a builder is sent: the directory as it is, under its `.dockerignore`, and "
                     "with the lines `ctxpack du` suggests appended; archives written by "
                     "`ctxpack pack --compress zstd|gzip`.\n")
            L.append("| context | variant | entries | files | bytes | tar.zst | tar.gz |")
            L.append("|---|---|---:|---:|---:|---:|---:|")
            for label in ("monorepo", "generated"):
                row = sz.get(label)
                if not row:
                    continue
                rd = row["raw_dir"]
                L.append("| %s | directory on disk | %d | %d | %s | | |" % (
                    label, rd["entries"], rd["files"], human_bytes(rd["bytes"])))
                names = {"raw": "everything (no ignore file)",
                         "dockerignore": "under its .dockerignore" if label == "monorepo"
                         else "under the 10-pattern ignore file",
                         "suggested": "+ `ctxpack du` suggestions"}
                for v in ("raw", "dockerignore", "suggested"):
                    x = row[v]
                    L.append("| %s | %s | %d | %d | %s | %s | %s |" % (
                        label, names[v], x["entries"], x["files"], human_bytes(x["bytes"]),
                        human_bytes(x.get("zstd")), human_bytes(x.get("gzip"))))
            for label in ("monorepo", "generated"):
                row = sz.get(label)
                if row:
                    L.append("\n%s: `ctxpack du` suggested %s%s." % (
                        label, ", ".join("`%s`" % s for s in row["suggestions"]) or "nothing",
                        "; secrets warned about: " + ", ".join("`%s`" % (
                            s.get("path", s) if isinstance(s, dict) else s)
                            for s in row["secrets"]) if row.get("secrets") else ""))
            L.append("")
        if r["checks"]:
            L.append("## Checks\n")
            for c in r["checks"]:
                L.append("- %s: %s%s" % ("ok" if c["ok"] else "**FAILED**", c["check"],
                                          "" if c["ok"] else " (%s)" % c["detail"]))
            L.append("")
        L.append("## Setup\n")
        mi = r.get("monorepo", {})
        L.append("- Monorepo: FastAPI backend (pyproject.toml, uv.lock, app sources, `.venv`: %s; "
                 "`__pycache__` by compileall), Vite + React frontend (node_modules: %s, %d files, "
                 "%s; dist: %s), `.git` with 5 commits, `.env`, and a `.dockerignore` that misses "
                 "`.venv`, `__pycache__`, `dist` and `.env`." % (
                     mi.get("venv", {}).get("how", "?"), mi.get("frontend", {}).get("node_modules", "?"),
                     mi.get("frontend", {}).get("node_modules_files", 0),
                     human_bytes(mi.get("frontend", {}).get("node_modules_bytes")),
                     mi.get("frontend", {}).get("dist", "?")))
        L.append("- Generated tree: `bench/gen-tree DIR --files %d --bytes %d` (deterministic); "
                 "committed to a git repository kept outside the tree." % (self.files, self.bytes))
        L.append("- Page cache warm in every run (\"cold\" means an empty index or cache, not an "
                 "empty page cache). Registry: Debian's docker-registry on 127.0.0.1, filesystem "
                 "storage; every push sends a blob the registry has not seen.")
        vers = []
        for k, v in sorted(m["versions"].items()):
            if not v:
                continue
            v = v.replace("*", "").replace("/usr/bin/", "").strip()
            vers.append(v if k.split("-")[0].lower() in v.lower() else "%s %s" % (k, v))
        L.append("- Versions: " + "; ".join(vers))
        L.append("")
        return "\n".join(L)

    def chart(self, path, name):
        rows = [g for g in self.goals if g["chart"] and g["value"] is not None and g["unit"] == "x"]
        data = os.path.join(self.work, "chart.dat")
        with open(data, "w") as f:
            for g in rows:
                color = {True: 0x2E7D32, False: 0xC62828, None: 0x78909C}[g["pass"]]
                f.write('"%s" %.6g %d %s "%.2fx" %.6g\n' % (
                    g["name"].replace('"', "'"), max(g["value"], 1e-4), color,
                    ("%.6g" % g["goal"]) if g["goal"] else "NaN", g["value"],
                    max(g["value"], g["goal"] or 0) * 1.3))
        sz = self.results["sections"].get("sizes", {}).get("monorepo")
        sdata = os.path.join(self.work, "chart-sizes.dat")
        if sz:
            with open(sdata, "w") as f:
                for v, label in (("raw", "everything"), ("dockerignore", ".dockerignore"),
                                 ("suggested", "+ du suggestions")):
                    x = sz[v]
                    f.write('"%s" %.3f %.3f %.3f\n' % (label, x["bytes"] / 1e6, (x.get("zstd") or 0) / 1e6,
                                                        (x.get("gzip") or 0) / 1e6))
        m = self.results["machine"]
        vals = [max(g["value"], 1e-4) for g in rows] + [g["goal"] for g in rows if g["goal"]]
        lo = 10 ** math.floor(math.log10(min(vals + [1])) - 0.3)
        hi = 10 ** math.ceil(math.log10(max(vals + [1])) + 0.3)
        title = "ctxpack vs baselines, %s (%s, %d cores, %s)" % (
            "make bench-quick" if self.quick else "make bench", m["cpu"], m["cores"], m["date"])
        gp = ['set terminal pngcairo size 1500,760 font "DejaVu Sans,10" background "white"',
              'set output "%s"' % path,
              'set multiplot title "%s" font ",13"' % title.replace('"', "'"),
              # left: ratios
              'set origin 0,0', 'set size 0.64,0.95',
              'set logscale y', 'set yrange [%g:%g]' % (lo, hi),
              'set ylabel "ctxpack / baseline (time; size row: bytes), log scale"',
              'set style fill solid 0.85 border rgb "#333333"', 'set boxwidth 0.62',
              'set grid ytics', 'set xtics rotate by 30 right nomirror font ",9"',
              'set bmargin 11', 'set key top left',
              'set xrange [-0.6:%g]' % (len(rows) - 0.4),
              'plot "%s" using 0:2:3:xtic(1) with boxes lc rgb variable notitle, \\' % data,
              '  "" using ($0-0.38):4:(0.76):(0) with vectors nohead lw 2.5 dt 2 lc rgb "black" title "goal", \\',
              '  "" using 0:6:5 with labels font ",9" notitle, \\',
              '  1 with lines lw 1 lc rgb "#555555" title "baseline = 1", \\',
              '  NaN with boxes lc rgb "#2E7D32" title "meets goal", \\',
              '  NaN with boxes lc rgb "#C62828" title "misses goal", \\',
              '  NaN with boxes lc rgb "#78909C" title "no goal (reported)"',
              ]
        if sz:
            gp += ['reset',
                   'set origin 0.64,0', 'set size 0.36,0.95',
                   'set title "monorepo: what the builder is sent (MB, log scale)"',
                   'set style data histogram', 'set style histogram clustered gap 1',
                   'set style fill solid 0.85 border rgb "#333333"', 'set logscale y',
                   'set yrange [1:*]', 'set grid ytics', 'set key top right',
                   'set xtics nomirror font ",9"', 'set bmargin 11',
                   'plot "%s" using 2:xtic(1) title "files" lc rgb "#90A4AE", \\' % sdata,
                   '  "" using 3 title "tar.zst" lc rgb "#1565C0", \\',
                   '  "" using 4 title "tar.gz" lc rgb "#F9A825", \\',
                   '  "" using ($0-0.27):($2*1.15):(sprintf("%.3g",$2)) with labels font ",8" notitle, \\',
                   '  "" using ($0):($3*1.15):(sprintf("%.3g",$3)) with labels font ",8" notitle, \\',
                   '  "" using ($0+0.27):($4*1.15):(sprintf("%.3g",$4)) with labels font ",8" notitle']
        gp.append('unset multiplot')
        script = os.path.join(self.work, "chart.gp")
        with open(script, "w") as f:
            f.write("\n".join(gp) + "\n")
        if not shutil.which("gnuplot"):
            raise BenchError("gnuplot is not installed (Debian: gnuplot-nox; scripts/install-deps)")
        self.r.run(["gnuplot", script])

    # -- main -------------------------------------------------------------

    def replot(self):
        """Rewrite the .md and .png from the .json of the last run."""
        outd = self.a.out or os.path.join(BENCH, "results")
        src = os.path.join(outd, self.stem() + ".json")
        self.results = json.load(open(src))
        self.goals = self.results["goals"]
        self.runs = self.results["runs"]
        paths = self.write(self.results["elapsed_s"], replot=True)
        log("rewrote %s" % ", ".join(os.path.relpath(p, ROOT) for p in paths.values()))
        return 0

    def section_build(self):
        sys.path.insert(0, BENCH)
        import docker_build
        docker_build.run_section(self)

    def main(self):
        if self.a.replot:
            return self.replot()
        t0 = time.perf_counter()
        sections = ["sizes", "ls", "hash", "pack", "small", "registry", "cache", "build", "image"]
        only = set(self.a.only.split(",")) if self.a.only else set(sections)
        bad = only - set(sections)
        if bad:
            raise BenchError("unknown section(s): %s (have: %s)" % (",".join(sorted(bad)), ",".join(sections)))
        log("%s run, %d runs per measurement, binary %s" % ("quick" if self.quick else "full",
                                                            self.runs, self.ctx))
        self.results["machine"] = self.machine()
        phases = self.results["phase_s"] = {}
        try:
            ts = time.perf_counter()
            if only & {"sizes", "ls", "hash", "pack"}:
                self.gen_tree()
            if only & {"sizes"}:
                self.monorepo()
                self.results["monorepo"] = self.mono_info
            phases["contexts"] = time.perf_counter() - ts
            log("contexts ready: %.1f s" % phases["contexts"])
            for sec in sections:
                if sec not in only:
                    continue
                settle()
                log("section %s" % sec)
                ts = time.perf_counter()
                try:
                    getattr(self, "section_" + sec)()
                except NotRun as e:
                    log("section %s NOT RUN: %s" % (sec, e))
                    self.results["not_run"][sec] = str(e)
                phases[sec] = time.perf_counter() - ts
                log("section %s: %.1f s" % (sec, phases[sec]))
        finally:
            self.stop_registry()
        elapsed = time.perf_counter() - t0
        paths = self.write(elapsed)
        log("done in %.0f s; wrote %s" % (elapsed, ", ".join(os.path.relpath(p, ROOT) for p in paths.values())))
        print(open(paths["md"]).read().split("## Times")[0])
        failed = [c for c in self.results["checks"] if not c["ok"]]
        if failed:
            log("FAILED checks: " + "; ".join(c["check"] for c in failed))
            return 1
        if self.results["not_run"] and not self.a.allow_missing:
            log("sections not run: %s (pass --allow-missing to accept a partial run)" %
                ", ".join(self.results["not_run"]))
            return 1
        return 0


def main():
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="10k files / 100 MB, 64 MiB blob, 3 runs")
    ap.add_argument("--runs", type=int, help="runs per measurement (default 5, quick 3)")
    ap.add_argument("--only", help="comma-separated sections: sizes,ls,hash,pack,small,registry,cache,build,image")
    ap.add_argument("--allow-missing", action="store_true",
                    help="exit 0 even if a section's command is not implemented yet")
    ap.add_argument("--rebuild", action="store_true", help="re-assemble the monorepo context")
    ap.add_argument("--out", help="results directory (default bench/results)")
    ap.add_argument("--work", help="where the contexts and scratch files go "
                    "(default bench/work/harness)")
    ap.add_argument("--replot", action="store_true",
                    help="only rewrite the .md and .png from the last run's .json")
    a = ap.parse_args()

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        return Harness(a).main()
    except BenchError as e:
        log("FAILED: %s" % e)
        log("no results written")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
