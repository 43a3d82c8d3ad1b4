"""A real PostgreSQL and a real redis-server for tests, started from Debian's packages
on 127.0.0.1 at a free port in a temporary directory, and stopped at the end.

PostgreSQL refuses to run as root: as root the server runs as the `postgres` user the
postgresql package creates (the temporary directory is handed to it).  Every server
started here also gets a parent-death signal, so a test runner killed outright takes
its servers with it; normally `stop()` (or the context manager, or addCleanup) stops
them and removes the directory.

As a module (integration tests):

    pg = dbservers.PgServer(); pg.start()        # pg.conninfo, pg.sql("SELECT 1")
    pg.stop(); pg.start()                         # a restart keeps data and port
    r = dbservers.RedisServer(); r.start()       # r.port

As a program (CTest runs the C tests and benchmarks this way):

    python3 dbservers.py [--pg] [--redis] -- COMMAND ARGS...

starts the servers asked for, runs COMMAND with BARISTA_TEST_PG (a libpq conninfo),
BARISTA_TEST_PG_URL (the same as a postgres:// URL),
BARISTA_TEST_PG_CTL (a command line: `... ctl DIR stop|start|kill` controls that
server) and BARISTA_TEST_REDIS (host:port) in its environment, stops the servers
whatever happens, and exits with COMMAND's status.
"""

import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
PR_SET_PDEATHSIG = 1


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pdeathsig(sig):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)


def _as_user(user, sig):
    """preexec_fn: drop to `user` when root, then ask for `sig` when the parent dies
    (a uid change clears the parent-death signal, so it comes last)."""
    def run():
        os.setsid()
        if user is not None:
            os.setgid(user.pw_gid)
            os.setgroups([user.pw_gid])
            os.setuid(user.pw_uid)
        if sig:
            _pdeathsig(sig)
    return run


def pg_bindir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL server not installed: apt-get install postgresql-15")
    return os.path.dirname(found[-1])


class PgServer:
    """A PostgreSQL cluster in a temporary directory, trust authentication, user and
    database `barista`."""

    def __init__(self, port=None, base=None, pdeath=True):
        self.bindir = pg_bindir()
        self.pdeath = pdeath
        self.user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        self.dir = base or tempfile.mkdtemp(prefix="barista-pg-")
        self.own_dir = base is None
        self.port = port or free_port()
        self.proc = None
        if self.user is not None:
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgres.log")

    @property
    def conninfo(self):
        return "host=127.0.0.1 port=%d user=barista dbname=barista" % self.port

    @property
    def url(self):
        """The same as a URL: what the gateway's --jobs-db and --actors-db take."""
        return "postgres://barista@127.0.0.1:%d/barista" % self.port

    def _run(self, args, **kw):
        return subprocess.run(args, preexec_fn=_as_user(self.user, signal.SIGKILL),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120,
                              **kw)

    def start(self):
        fresh = not os.path.exists(os.path.join(self.data, "PG_VERSION"))
        if fresh:
            r = self._run([os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", "barista",
                           "-A", "trust", "-E", "UTF8", "--no-sync", "--locale=C"])
            if r.returncode != 0:
                raise RuntimeError("initdb failed:\n" + r.stdout.decode(errors="replace"))
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [os.path.join(self.bindir, "postgres"), "-D", self.data, "-p", str(self.port),
             "-k", self.dir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
             "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=300", "-c", "shared_buffers=32MB"],
            stdout=logf, stderr=subprocess.STDOUT,
            preexec_fn=_as_user(self.user, signal.SIGINT if self.pdeath else 0))
        logf.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited %s:\n%s" % (self.proc.returncode, self.tail()))
            r = subprocess.run([os.path.join(self.bindir, "pg_isready"), "-h", "127.0.0.1",
                                "-p", str(self.port), "-U", "barista", "-d", "postgres"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if r.returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("postgres did not start:\n" + self.tail())
        if fresh:
            self.sql("CREATE DATABASE barista", db="postgres")
        return self

    def tail(self, n=4000):
        try:
            with open(self.log, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def sql(self, query, db="barista"):
        """Runs query with psql and returns its unaligned output, stripped."""
        r = subprocess.run([os.path.join(self.bindir, "psql"), "-X", "-q", "-At", "-v",
                            "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port),
                            "-U", "barista", "-d", db, "-c", query],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("psql %r: %s" % (query, r.stderr.decode(errors="replace")))
        return r.stdout.decode().strip()

    def stop(self, sig=signal.SIGINT):
        """Stops the server (SIGINT: fast shutdown; SIGKILL: a crash)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if sig == signal.SIGKILL:
            # The postmaster's children outlive it: wait until the port is free.
            self._wait_port_free()

    def _wait_port_free(self):
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.05)

    def close(self):
        self.stop()
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


class RedisServer:
    """redis-server on a free port, no persistence."""

    def __init__(self, port=None):
        self.dir = tempfile.mkdtemp(prefix="barista-redis-")
        self.port = port or free_port()
        self.proc = None
        self.log = os.path.join(self.dir, "redis.log")

    def start(self):
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.exists(exe):
            raise RuntimeError("redis-server not installed: apt-get install redis-server")
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--daemonize", "no", "--maxclients", "1000",
             "--enable-debug-command", "yes"],
            stdout=logf, stderr=subprocess.STDOUT, preexec_fn=_as_user(None, signal.SIGTERM))
        logf.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited %s" % self.proc.returncode)
            try:
                if self.command("PING") == "PONG":
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def command(self, *args):
        """One command over RESP; returns the reply (str, int, list or None)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            out = b"*%d\r\n" % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            f = s.makefile("rb")
            return _read_resp(f)

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


def _read_resp(f):
    line = f.readline()
    if not line:
        raise OSError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_resp(f) for _ in range(n)]
    raise OSError("bad RESP line %r" % line)


def _alive(pid):
    """True while pid runs (a zombie, which the runner has not reaped yet, is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _ctl(argv):
    """ctl DIR PORT stop|start|kill: control a PgServer started by the runner."""
    base, port, what = argv[0], int(argv[1]), argv[2]
    pg = PgServer(port=port, base=base, pdeath=False)
    pidfile = os.path.join(pg.data, "postmaster.pid")
    if what in ("stop", "kill"):
        try:
            with open(pidfile) as f:
                pid = int(f.readline())
        except (OSError, ValueError):
            return 0
        os.kill(pid, signal.SIGINT if what == "stop" else signal.SIGKILL)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if what == "kill":
            pg._wait_port_free()
        return 0
    if what == "start":
        pg.start()
        # The runner's server object does not own this process: detach it.
        print(pg.proc.pid)
        return 0
    return 2


def main(argv):
    if argv and argv[0] == "ctl":
        return _ctl(argv[1:])
    want_pg = "--pg" in argv
    want_redis = "--redis" in argv
    if "--" not in argv:
        print("usage: dbservers.py [--pg] [--redis] -- COMMAND...", file=sys.stderr)
        return 2
    cmd = argv[argv.index("--") + 1:]
    env = dict(os.environ)
    servers = []
    try:
        if want_pg:
            try:
                pg_bindir()
            except RuntimeError as e:
                # CTest reads 77 as skipped (SKIP_RETURN_CODE) where a test says so.
                print("skipped: %s" % e, file=sys.stderr)
                return 77
            pg = PgServer()
            servers.append(pg)
            pg.start()
            env["BARISTA_TEST_PG"] = pg.conninfo
            env["BARISTA_TEST_PG_URL"] = pg.url
            env["BARISTA_TEST_PG_CTL"] = "%s %s ctl %s %d" % (
                sys.executable, os.path.abspath(__file__), pg.dir, pg.port)
        if want_redis:
            r = RedisServer()
            servers.append(r)
            r.start()
            env["BARISTA_TEST_REDIS"] = "127.0.0.1:%d" % r.port
        proc = subprocess.Popen(cmd, env=env)
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            return proc.wait()
    finally:
        for s in servers:
            if isinstance(s, PgServer):
                # A server restarted through ctl is not s.proc: stop by its pid file.
                _ctl([s.dir, str(s.port), "stop"])
            s.close()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    sys.exit(main(sys.argv[1:]))
