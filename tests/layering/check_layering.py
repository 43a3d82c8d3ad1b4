#!/usr/bin/env python3
"""Checks the gateway's layering and the ban on msgpack-c's unpacker.

The gateway is one static library per folder of gateway/src, declared in
gateway/CMakeLists.txt as `gw_subsystem(NAME DEPS gw_A gw_B ...)`, lowest first.  This
check reads those declarations and every #include "..." of every gateway source and
fails when:

  - a subsystem depends on one declared after it (the order is the layering);
  - a file includes a header of a subsystem it does not depend on, directly or
    through the subsystems it depends on (the include goes the wrong way);
  - a file includes another subsystem's private header (one next to that
    subsystem's .c files rather than in its include/ folder);
  - a gateway or worker source calls msgpack_unpack or msgpack_unpack_next, which
    allocate for a declared count before checking that the bytes exist: hostile
    bytes are read with proto's bounded cursor (barista/mpread.h, br_cursor).

Usage: check_layering.py [REPO_ROOT]   (default: two folders up from this file)
Prints one line per violation and exits 1 when there is any; 0 and a summary line
otherwise.
"""
import os
import re
import sys

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(__file__), "..", ".."))
SRC = os.path.join(ROOT, "gateway", "src")
CMAKE = os.path.join(ROOT, "gateway", "CMakeLists.txt")


def subsystems():
    """[(name, [deps])] in declaration order, from gateway/CMakeLists.txt."""
    text = open(CMAKE).read()
    found = []
    for m in re.finditer(r"^gw_subsystem\((\w+)(?:\s+DEPS([^)]*))?\)", text, re.M):
        deps = [d[3:] for d in (m.group(2) or "").split() if d.startswith("gw_")]
        found.append((m.group(1), deps))
    return found


def main():
    problems = []
    subs = subsystems()
    order = {name: i for i, (name, _) in enumerate(subs)}
    if not subs:
        problems.append(f"{CMAKE}: no gw_subsystem() declarations found")
    folders = sorted(d for d in os.listdir(SRC) if os.path.isdir(os.path.join(SRC, d)))
    for d in folders:
        if d not in order:
            problems.append(f"gateway/src/{d}: a folder that is no gw_subsystem() in "
                            "gateway/CMakeLists.txt")

    # Direct dependencies point down; reach = transitive closure.
    reach = {}
    for name, deps in subs:
        for dep in deps:
            if dep not in order:
                problems.append(f"gw_{name} depends on gw_{dep}, which is not declared")
            elif order[dep] >= order[name]:
                problems.append(f"gw_{name} depends on gw_{dep}, declared after it: "
                                "dependencies must point down")
        reach[name] = set(deps)
    for name, _ in subs:
        todo = list(reach[name])
        while todo:
            d = todo.pop()
            for dd in reach.get(d, ()):
                if dd not in reach[name]:
                    reach[name].add(dd)
                    todo.append(dd)

    # Where every header lives: name -> (subsystem, public?).
    headers = {}
    for d in folders:
        for sub, public in ((os.path.join(SRC, d), False),
                            (os.path.join(SRC, d, "include"), True)):
            if os.path.isdir(sub):
                for f in os.listdir(sub):
                    if f.endswith(".h"):
                        if f in headers:
                            problems.append(f"header {f} exists in gateway/src/{headers[f][0]} "
                                            f"and gateway/src/{d}: names must be unique")
                        headers[f] = (d, public)

    include_re = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
    nfiles = 0
    for d in folders:
        for dirpath, _, files in os.walk(os.path.join(SRC, d)):
            for f in sorted(files):
                if not f.endswith((".c", ".h")):
                    continue
                nfiles += 1
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, ROOT)
                for inc in include_re.findall(open(path, errors="replace").read()):
                    if inc not in headers:
                        continue  # proto's, llhttp's or a system header
                    owner, public = headers[inc]
                    if owner == d:
                        continue
                    if not public:
                        problems.append(f"{rel}: includes {inc}, a private header of "
                                        f"gateway/src/{owner}")
                    elif owner not in reach.get(d, ()):
                        problems.append(f"{rel}: includes {inc} of gw_{owner}, which gw_{d} "
                                        "does not depend on (the include goes the wrong way)")

    unpack_re = re.compile(r"\bmsgpack_unpack(_next)?\s*\(")
    for top in ("gateway", "workers"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if f.endswith((".c", ".h")):
                    path = os.path.join(dirpath, f)
                    for n, line in enumerate(open(path, errors="replace"), 1):
                        if unpack_re.search(line):
                            problems.append(f"{os.path.relpath(path, ROOT)}:{n}: calls msgpack-c's "
                                            "unpacker; read hostile bytes with br_cursor")

    for p in problems:
        print(p)
    if problems:
        print(f"layering: {len(problems)} problems")
        return 1
    print(f"layering: {len(subs)} subsystems, {nfiles} files, every include points down; "
          "no msgpack_unpack in gateway or workers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
