#!/usr/bin/env python3
"""cli_options.py CTXPACK ROOT: the long options the binary accepts, one
"CONTEXT<TAB>--OPTION" line each, CONTEXT being a command ("pack") or a
cache subcommand ("cache restore").

Two sources, united: what the binary's help says (`ctxpack help CMD`,
`ctxpack cache SUB --help`), and the getopt_long tables of
src/cli/cmd_CMD.c after the preprocessor (so that an option taken through
a shared macro such as CLI_PACK_LONGOPTS counts even where the help does
not list it).  A table named SUB_longopts in cmd_cache.c belongs to
`cache SUB`; any other table to its command.  The commands are those
`ctxpack --help` lists and the cache subcommands those `ctxpack cache
--help` shows.  Also prints "values<TAB>--OPTION<TAB>V1 V2 ..." for the
options whose values the binary names when refusing a bad one."""
import os
import re
import shlex
import subprocess
import sys

binary, root = sys.argv[1], sys.argv[2]
LONG = re.compile(r'(?:^|[\s\[,(|`])(--[a-z0-9][a-z0-9-]*)')


def run(*args):
    p = subprocess.run([binary, *args], capture_output=True, text=True)
    return p.stdout + p.stderr


def help_opts(text):
    return set(LONG.findall(text))


main = run("--help")
block = main.split("commands:\n", 1)[1].split("\n\n", 1)[0]
commands = [l.split()[0] for l in block.splitlines() if l.strip()]
subs = re.findall(r"^  ctxpack cache ([a-z]+) ", run("cache", "--help"), re.M)

cc = os.environ.get("CC", "cc")


def source_tables(name):
    """{table name: set of long options} of src/cli/cmd_NAME.c."""
    path = os.path.join(root, "src", "cli", "cmd_%s.c" % name)
    if not os.path.exists(path):
        return {}
    cflags = ["-E", "-P", "-D_GNU_SOURCE", "-I" + os.path.join(root, "include"),
              "-I" + os.path.join(root, "src", "cli")]
    pc = subprocess.run(["pkg-config", "--cflags", "libarchive", "libcurl", "jansson"],
                        capture_output=True, text=True).stdout
    out = subprocess.run([cc] + cflags + shlex.split(pc) + [path],
                         capture_output=True, text=True, check=True).stdout
    tables = {}
    for m in re.finditer(r"struct option\s+(\w+)\s*\[\s*\]\s*=\s*\{(.*?)\};", out, re.S):
        # has_arg is no_argument etc., or its value once getopt.h's
        # macros are expanded
        names = re.findall(r'\{\s*"([a-z0-9][a-z0-9-]*)"\s*,\s*'
                           r'(?:[012]|(?:no|required|optional)_argument)\s*,', m.group(2))
        tables.setdefault(m.group(1), set()).update("--" + n for n in names)
    return tables


result = {}
for c in commands:
    if c == "cache":
        tables = source_tables("cache")
        for s in subs:
            opts = help_opts(run("cache", s, "--help"))
            opts |= tables.get(s + "_longopts", set())
            result["cache " + s] = opts
        continue
    opts = help_opts(run("help", c))
    for t in source_tables(c).values():
        opts |= t
    result[c] = opts

for ctx in sorted(result):
    for o in sorted(result[ctx]):
        print("%s\t%s" % (ctx, o))

# values, from the messages that refuse a bad one
for args, opt in ((["pack", "--compress", "@"], "--compress"),
                  (["ls", "--progress", "@"], "--progress")):
    m = re.search(re.escape(opt) + r" takes (.*?), not '@'", run(*args))
    if m:
        vals = re.split(r",\s*|\s+or\s+", m.group(1))
        print("values\t%s\t%s" % (opt, " ".join(vals)))
