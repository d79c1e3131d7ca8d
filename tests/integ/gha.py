#!/usr/bin/env python3
"""gha.py: run a JavaScript action's entry points, or a run step, the way
the GitHub Actions runner does, for the action tests (t8100).

  gha.py action JOB ACTION_DIR main|post ID [--status S] [--with NAME=VALUE]...
  gha.py run JOB -- COMMAND [ARG...]

JOB is a directory holding the job's state between steps: the environment
that GITHUB_ENV and GITHUB_PATH added, each action step's `with` (the post
step gets the main step's), outputs and saved state.  For an action step:

  - action.yml is read; runs.using must be nodeNN; the entry point is
    runs.main or runs.post; a post step runs only when runs.post-if (default
    always()) holds for the job status --status (default success);
  - every declared input is passed as INPUT_<NAME> (upper case, spaces as
    '_'), from `with` or else its default; a default of ${{ job.status }} is
    the job status; inputs not declared are warned about, as the runner does;
  - the step gets fresh GITHUB_OUTPUT, GITHUB_STATE, GITHUB_ENV and
    GITHUB_PATH files, the post step STATE_<name> for what the main step
    saved, and GITHUB_ACTION_PATH, GITHUB_WORKSPACE (the current directory),
    RUNNER_TEMP, RUNNER_TOOL_CACHE (kept if set), RUNNER_OS, RUNNER_ARCH,
    GITHUB_ACTIONS and CI;
  - `node ENTRY` runs; afterwards the files are read as the runner reads
    them (NAME=VALUE lines and NAME<<DELIMITER heredocs; a malformed file
    fails the step), outputs are printed as NAME=VALUE lines on stdout and
    kept in JOB, and the exit status is node's.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml


def die(msg):
    print("gha.py: " + msg, file=sys.stderr)
    sys.exit(2)


def parse_file_command(path):
    """The pairs of a GITHUB_OUTPUT/STATE/ENV file, as the runner reads it."""
    pairs = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip():
            continue
        eq, hd = line.find("="), line.find("<<")
        if eq >= 0 and (hd < 0 or eq < hd):
            name, value = line[:eq], line[eq + 1:]
        elif hd >= 0:
            name, delim = line[:hd], line[hd + 2:]
            if not delim:
                die("%s: empty delimiter for %s" % (path, name))
            body = []
            while True:
                if i >= len(lines):
                    die("%s: no end delimiter %r for %s" % (path, delim, name))
                if lines[i] == delim:
                    i += 1
                    break
                body.append(lines[i])
                i += 1
            value = "\n".join(body)
        else:
            die("%s: malformed line %r" % (path, line))
        if not name:
            die("%s: empty name" % path)
        pairs.append((name, value))
    return pairs


def load(job, name, default):
    p = os.path.join(job, name)
    if os.path.exists(p):
        with open(p) as f:
            return json.load(f)
    return default


def save(job, name, value):
    with open(os.path.join(job, name), "w") as f:
        json.dump(value, f)


def condition(expr, status):
    expr = expr.strip()
    if expr.startswith("${{") and expr.endswith("}}"):
        expr = expr[3:-2].strip()
    table = {"always()": True, "success()": status == "success",
             "failure()": status == "failure", "cancelled()": status == "cancelled",
             "!cancelled()": status != "cancelled"}
    if expr not in table:
        die("post-if %r: not an expression this emulator knows" % expr)
    return table[expr]


def step_env(job, extra):
    """The environment of a step: ours, what earlier steps added, extra."""
    env = dict(os.environ)
    env.update(load(job, "env.json", {}))
    paths = load(job, "path.json", [])
    env["PATH"] = os.pathsep.join(paths + [env.get("PATH", "")])
    tmp = os.path.join(job, "runner-temp")
    os.makedirs(tmp, exist_ok=True)
    env.update({"GITHUB_ACTIONS": "true", "CI": "true", "RUNNER_OS": "Linux",
                "RUNNER_ARCH": "X64", "RUNNER_TEMP": tmp,
                "GITHUB_WORKSPACE": os.getcwd()})
    env.setdefault("RUNNER_TOOL_CACHE", os.path.join(job, "tool-cache"))
    files = {}
    for var in ("GITHUB_OUTPUT", "GITHUB_STATE", "GITHUB_ENV", "GITHUB_PATH"):
        fd, p = tempfile.mkstemp(prefix=var.lower() + "-", dir=job)
        os.close(fd)
        env[var] = files[var] = p
    env.update(extra)
    return env, files


def after_step(job, files):
    """Apply what the step wrote to GITHUB_ENV and GITHUB_PATH; its outputs."""
    env = load(job, "env.json", {})
    env.update(dict(parse_file_command(files["GITHUB_ENV"])))
    save(job, "env.json", env)
    with open(files["GITHUB_PATH"]) as f:
        added = [l.strip() for l in f if l.strip()]
    save(job, "path.json", list(reversed(added)) + load(job, "path.json", []))
    return parse_file_command(files["GITHUB_OUTPUT"])


def action(argv):
    job, adir, stage, sid = argv[:4]
    rest = argv[4:]
    status, with_ = "success", {}
    while rest:
        if rest[0] == "--status":
            status = rest[1]
        elif rest[0] == "--with":
            k, _, v = rest[1].partition("=")
            with_[k] = v
        else:
            die("unknown argument %r" % rest[0])
        rest = rest[2:]
    os.makedirs(job, exist_ok=True)
    adir = os.path.abspath(adir)
    with open(os.path.join(adir, "action.yml")) as f:
        meta = yaml.safe_load(f)
    runs = meta["runs"]
    if not re.fullmatch(r"node\d+", str(runs.get("using"))):
        die("runs.using %r: not a node action" % runs.get("using"))
    if stage == "post":
        # the post step runs with the main step's `with`
        with_ = load(job, "with-%s.json" % sid, None)
        if with_ is None:
            print("gha.py: no main step %s ran: no post step" % sid, file=sys.stderr)
            return 0
        if "post" not in runs:
            return 0
        if not condition(runs.get("post-if", "always()"), status):
            print("gha.py: post-if %r is false for a job that is %s: post step skipped"
                  % (runs.get("post-if"), status), file=sys.stderr)
            return 0
    else:
        save(job, "with-%s.json" % sid, with_)
    declared = meta.get("inputs") or {}
    unexpected = sorted(set(with_) - set(declared))
    if unexpected:
        print("Warning: Unexpected input(s) '%s', valid inputs are %s"
              % ("', '".join(unexpected), sorted(declared)), file=sys.stderr)
    extra = {"GITHUB_ACTION_PATH": adir}
    for name, spec in declared.items():
        if name in with_:
            v = with_[name]
        else:
            v = str((spec or {}).get("default", ""))
            if "${{" in v:
                if re.fullmatch(r"\$\{\{\s*job\.status\s*\}\}", v.strip()):
                    v = status
                else:
                    die("input %s: default %r: not an expression this emulator knows" % (name, v))
        extra["INPUT_" + name.replace(" ", "_").upper()] = v
    if stage == "post":
        for k, v in load(job, "state-%s.json" % sid, {}).items():
            extra["STATE_" + k] = v
    env, files = step_env(job, extra)
    entry = os.path.join(adir, runs[stage])
    # the action's log to stderr: stdout is for the outputs
    rc = subprocess.call(["node", entry], env=env, stdout=sys.stderr)
    outputs = after_step(job, files)
    if stage == "main":
        save(job, "state-%s.json" % sid, dict(parse_file_command(files["GITHUB_STATE"])))
        save(job, "outputs-%s.json" % sid, dict(outputs))
    for k, v in outputs:
        print("%s=%s" % (k, v))
    return rc


def run(argv):
    job = argv[0]
    if argv[1:2] != ["--"]:
        die("usage: gha.py run JOB -- COMMAND [ARG...]")
    os.makedirs(job, exist_ok=True)
    env, files = step_env(job, {})
    rc = subprocess.call(argv[2:], env=env)
    for k, v in after_step(job, files):
        print("%s=%s" % (k, v))
    return rc


if __name__ == "__main__":
    if len(sys.argv) > 5 and sys.argv[1] == "action":
        sys.exit(action(sys.argv[2:]))
    if len(sys.argv) > 3 and sys.argv[1] == "run":
        sys.exit(run(sys.argv[2:]))
    die("usage: gha.py action JOB ACTION_DIR main|post ID [--status S] [--with K=V]... | "
        "gha.py run JOB -- COMMAND...")
