"""Runs the commands of a Markdown document, so that every command it shows is tested.

    python3 doctest.py DOC.md PHASE WORKDIR [--check] [--no-files] [--keep=PIDFILE]

A fenced block is preceded by an HTML comment saying what to do with it:

    <!-- file: hello/hello.c -->     the next block is written to WORKDIR/hello/hello.c
    <!-- run: PHASE -->              the next ```sh block runs in that phase
    <!-- show -->                    the next block is only shown (output, a fragment)

The blocks of PHASE run in order, each in its own `bash -e`, from WORKDIR (a `cd` in
a block lasts for that block).  Commands sent to the background (`&`) are killed at
the end of the phase.  A command with a trailing comment that starts with `{` or `[`
(`curl ... # {"message":"hello"}`) must print that text.  Ports 8000 and 5555 in the
commands are replaced by BARISTA_DOC_HTTP_PORT and BARISTA_DOC_BROKER_PORT when those
are set, so that tests never fight over them.

--check fails when a ```sh block has no marker at all: every command in the document
is run by some phase.  --no-files runs the commands without writing the file blocks
(a phase that runs in a tree of its own, like the repository).  --keep=PIDFILE
leaves the background commands running and writes their pids to PIDFILE, for the
caller to check them further and stop them.  Standard library only.
"""

import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

MARK = re.compile(r"^<!--\s*(file|run|show)\s*:?\s*(\S*)\s*-->\s*$")
FENCE = re.compile(r"^```(\w*)\s*$")
EXPECT = re.compile(r"^(.*?)\s+#\s*([\[{].*)$")


def blocks(path):
    """Yields (marker, argument, language, text, line) for every fenced block."""
    lines = open(path, encoding="utf-8").read().split("\n")
    mark = None
    i = 0
    while i < len(lines):
        m = MARK.match(lines[i])
        if m:
            mark = (m.group(1), m.group(2))
            i += 1
            continue
        f = FENCE.match(lines[i])
        if f:
            start = i
            body = []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            kind, arg = mark if mark else (None, None)
            yield kind, arg, f.group(1), "\n".join(body) + "\n", start + 1
            mark = None
        elif lines[i].strip():
            mark = None
        i += 1


def ports(text):
    http = os.environ.get("BARISTA_DOC_HTTP_PORT")
    broker = os.environ.get("BARISTA_DOC_BROKER_PORT")
    if http:
        text = re.sub(r"\b8000\b", http, text)
    if broker:
        text = re.sub(r"\b5555\b", broker, text)
    return text


def script(text):
    """The block as a bash script: expected outputs checked, background jobs noted."""
    # Background jobs outlive the block: their pids are kept for the end of the phase.
    out = ["trap 'jobs -p >>\"$BARISTA_DOC_PIDS\"' EXIT", "set -e"]
    for line in text.split("\n"):
        m = EXPECT.match(line)
        if m and not line.lstrip().startswith("#"):
            cmd, want = m.group(1), m.group(2).strip()
            out.append("__out=$(%s)" % cmd)
            out.append('printf "%s\\n" "$__out"')
            out.append('case "$__out" in *%s*) ;; *) echo "doctest: expected %s" >&2; exit 1;; esac'
                       % (shlex.quote(want), shlex.quote(want).replace('"', '\\"')))
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def stop(pids):
    """SIGTERM to each background command, then up to 20 s for them to go."""
    alive = []
    for pid in pids:
        try:
            os.kill(int(pid), 15)
            alive.append(int(pid))
        except (OSError, ValueError):
            pass
    deadline = time.monotonic() + 20
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        still = []
        for pid in alive:
            try:
                os.kill(pid, 0)
                still.append(pid)
            except OSError:
                pass
        alive = still
    for pid in alive:
        try:
            os.kill(pid, 9)
        except OSError:
            pass


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 3:
        sys.exit(__doc__)
    doc, phase, work = args
    found = list(blocks(doc))
    if "--check" in sys.argv:
        bad = [line for kind, _, lang, _, line in found if lang == "sh" and kind is None]
        if bad:
            sys.exit("%s: ```sh blocks at lines %s have no <!-- run: ... --> marker"
                     % (doc, ", ".join(map(str, bad))))
    os.makedirs(work, exist_ok=True)
    fd, pids = tempfile.mkstemp(prefix="doctest-pids-")
    os.close(fd)
    env = dict(os.environ, BARISTA_DOC_PIDS=pids)
    ran = 0
    try:
        for kind, arg, lang, text, line in found:
            if kind == "file" and "--no-files" not in sys.argv:
                path = os.path.join(work, arg)
                os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
            elif kind == "run" and arg == phase:
                print("doctest: %s:%d" % (doc, line), flush=True)
                r = subprocess.run(["bash", "-c", script(ports(text))], cwd=work, env=env)
                if r.returncode != 0:
                    sys.exit("doctest: %s:%d failed (exit %d)" % (doc, line, r.returncode))
                ran += 1
    finally:
        keep = [a[len("--keep="):] for a in sys.argv if a.startswith("--keep=")]
        if keep:
            with open(keep[0], "w") as f:
                f.write(open(pids).read())
        else:
            stop(open(pids).read().split())
        os.unlink(pids)
    print("doctest: %s: %d blocks of phase %s passed" % (doc, ran, phase))


if __name__ == "__main__":
    main()
