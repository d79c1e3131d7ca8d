#!/usr/bin/env python3
"""gitlab_ci.py PIPELINE ROOT JOB [after]: the shell script a GitLab runner
runs for JOB of the pipeline file PIPELINE, for the template test (t8110);
with `after`, the job's after_script, which the runner runs in a shell of its
own once the job ends (failed or not).

What GitLab does before a job runs, for the keys the template uses:
`include: local:` files (relative to ROOT) merged under the pipeline's own
keys, `extends:` (a name or a list, nested) merged in order with hashes
deep-merged and everything else replaced, `!reference [job, key...]`
resolved on the merged jobs, nested script arrays flattened, and the
global and job `variables:` exported, each expanded with the variables
before it ($NAME and ${NAME}; unknown ones are empty).  The script is
before_script then script (or after_script alone), each entry printed as "$ FIRST-LINE" and then
run, under `set -e`, as the runner's shell does.
"""
import os
import re
import shlex
import sys

import yaml


class Ref(list):
    pass


class Loader(yaml.SafeLoader):
    pass


Loader.add_constructor("!reference", lambda l, n: Ref(l.construct_sequence(n)))


def die(msg):
    print("gitlab_ci.py: " + msg, file=sys.stderr)
    sys.exit(2)


def merge(a, b):
    """b over a: hashes deep-merged, anything else replaced."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(a[k], v) if k in a else v
        return out
    return b


def load(path, root):
    with open(path) as f:
        doc = yaml.load(f, Loader=Loader) or {}
    inc = doc.pop("include", [])
    if isinstance(inc, (str, dict)):
        inc = [inc]
    base = {}
    for i in inc:
        local = i if isinstance(i, str) else i.get("local")
        if not local:
            die("include %r: only local: is supported here" % (i,))
        base = merge(base, load(os.path.join(root, local.lstrip("/")), root))
    return merge(base, doc)


def resolve(cfg, name, seen=()):
    if name not in cfg:
        die("no job %s" % name)
    if name in seen:
        die("extends loop at %s" % name)
    job = cfg[name]
    ext = job.get("extends", [])
    if isinstance(ext, str):
        ext = [ext]
    out = {}
    for e in ext:
        out = merge(out, resolve(cfg, e, seen + (name,)))
    out = merge(out, {k: v for k, v in job.items() if k != "extends"})
    return out


def deref(cfg, v, depth=0):
    if depth > 10:
        die("!reference nested too deep")
    if isinstance(v, Ref):
        node = resolve(cfg, v[0])
        for k in v[1:]:
            node = node[k]
        return deref(cfg, node, depth + 1)
    if isinstance(v, list):
        return [deref(cfg, x, depth) for x in v]
    if isinstance(v, dict):
        return {k: deref(cfg, x, depth) for k, x in v.items()}
    return v


def flatten(v):
    if isinstance(v, list):
        return [y for x in v for y in flatten(x)]
    return [str(v)]


def expand(s, env):
    return re.sub(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))",
                  lambda m: env.get(m.group(1) or m.group(2), ""), s)


def main():
    if len(sys.argv) not in (4, 5) or sys.argv[4:] not in ([], ["after"]):
        die("usage: gitlab_ci.py PIPELINE ROOT JOB [after]")
    path, root, name = sys.argv[1:4]
    parts = ("after_script",) if sys.argv[4:] else ("before_script", "script")
    cfg = load(path, root)
    job = deref(cfg, resolve(cfg, name))
    env = dict(os.environ)
    out = ["set -e"]
    variables = dict(cfg.get("variables") or {})
    variables.update(job.get("variables") or {})
    for k, v in variables.items():
        if isinstance(v, dict):
            v = v.get("value", "")
        v = expand(str(v), env)
        env[k] = v
        out.append("export %s=%s" % (k, shlex.quote(v)))
    for part in parts:
        for line in flatten(job.get(part, [])):
            out.append("printf '%%s\\n' %s" % shlex.quote("$ " + line.split("\n")[0]))
            out.append(line)
    print("\n".join(out))


main()
