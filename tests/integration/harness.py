"""Integration-test harness: start Barista's binaries, talk raw HTTP/1.1 to them.

Standard library only.  Every process started here is stopped when the test ends,
even when it fails: `Process` is a context manager and `start_process` registers the
stop with `TestCase.addCleanup`.  A clean stop is SIGTERM followed by exit code 0, so
a leak reported by LeakSanitizer (exit code 23 in ASan builds) fails the test.

    gw = start_gateway(self, "--max-headers", "10")
    with HttpClient(gw.port) as c:
        r = c.request("GET", "/healthz")
        self.assertEqual(r.status, 200)
"""

import os
import signal
import socket
import subprocess
import tempfile
import time

# How long a process may take to start accepting, and to exit after SIGTERM.  Wide,
# because the machine is shared and sanitizer builds start slowly.
START_TIMEOUT = 20.0
STOP_TIMEOUT = 30.0
# Default socket timeout of HttpClient.
IO_TIMEOUT = 10.0


def bin_dir():
    """Directory holding the built binaries (BARISTA_BIN, else ../../build/bin)."""
    d = os.environ.get("BARISTA_BIN")
    if not d:
        here = os.path.dirname(os.path.abspath(__file__))
        d = os.path.join(here, "..", "..", "build", "bin")
    return os.path.abspath(d)


def binary(name):
    path = os.path.join(bin_dir(), name)
    if not os.access(path, os.X_OK):
        raise FileNotFoundError("%s not built (BARISTA_BIN=%s)" % (name, bin_dir()))
    return path


# Ports for servers under test come from below the kernel's ephemeral range
# (/proc/sys/net/ipv4/ip_local_port_range, 32768-60999 by default): a port the
# kernel picked (bind to 0) could be handed out again - to a client connection's
# local end or to another test's bind to 0 - between the pick and the server's bind.
_PORT_LOW, _PORT_HIGH = 20000, 32767


def free_port(host="127.0.0.1"):
    """A TCP port nothing listens on right now: a random one below the ephemeral
    range that binds."""
    import random
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(200):
        port = random.randint(_PORT_LOW, _PORT_HIGH)
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def store_is_pg():
    """True when the job and actor stores under test are PostgreSQL: BARISTA_TEST_STORE=pg,
    with the server dbservers.py started (BARISTA_TEST_PG_URL)."""
    return os.environ.get("BARISTA_TEST_STORE") == "pg"


def store_url(path):
    """What --jobs-db or --actors-db gets for a test's store at `path`: the path itself
    (SQLite), or with BARISTA_TEST_STORE=pg a PostgreSQL database of its own, created
    on first use and named after the path, so that a gateway restarted on the same path
    finds the same rows."""
    if not store_is_pg():
        return path
    import hashlib
    import dbservers
    base = os.environ["BARISTA_TEST_PG_URL"]
    name = "t_" + hashlib.sha1(path.encode()).hexdigest()[:20]
    url = base.rsplit("/", 1)[0] + "/" + name
    psql = os.path.join(dbservers.pg_bindir(), "psql")
    exists = subprocess.run([psql, "-X", "-Atq", base, "-c",
                             "SELECT 1 FROM pg_database WHERE datname = '%s'" % name],
                            stdout=subprocess.PIPE, check=True).stdout.strip()
    if not exists:
        subprocess.run([psql, "-X", "-q", base, "-c", "CREATE DATABASE " + name], check=True)
    return url


def store_sql(url, query):
    """Runs query on the PostgreSQL store at url (store_url's); its rows as lists of text."""
    import dbservers
    psql = os.path.join(dbservers.pg_bindir(), "psql")
    out = subprocess.run([psql, "-X", "-At", "-F", "\x1f", url, "-c", query],
                         stdout=subprocess.PIPE, check=True).stdout.decode()
    return [line.split("\x1f") for line in out.splitlines() if line]


def _jobs_store_env(args, env):
    """A gateway started without a job store or actor store option gets them in a new
    temporary directory (returned, for cleanup), never ./barista-jobs.db or
    ./barista-actors.db in the source tree."""
    if os.path.basename(str(args[0])) != "barista-gateway":
        return None
    given = dict(os.environ)
    given.update(env or {})
    # On PostgreSQL a gateway killed and started again gets its previous life's jobs
    # when that life's lease runs out: a short one keeps the tests' restarts quick.
    if (store_is_pg() and "--jobs-gateway-lease" not in args
            and "BARISTA_JOBS_GATEWAY_LEASE" not in given):
        env["BARISTA_JOBS_GATEWAY_LEASE"] = "3s"
    want_jobs = "--jobs-db" not in args and "BARISTA_JOBS_DB" not in given
    want_actors = "--actors-db" not in args and "BARISTA_ACTORS_DB" not in given
    if not want_jobs and not want_actors:
        return None
    d = tempfile.TemporaryDirectory(prefix="barista-jobs-")
    if want_jobs:
        env["BARISTA_JOBS_DB"] = store_url(os.path.join(d.name, "jobs.db"))
    if want_actors:
        env["BARISTA_ACTORS_DB"] = store_url(os.path.join(d.name, "actors.db"))
    return d


def outbox_lines(path):
    """The email task's outbox at path (workers/services/email.c) as [job id, address]
    pairs, complete lines only; [] before the first one."""
    try:
        with open(path) as f:
            return [l.rstrip("\n").split(" ", 1) for l in f if l.endswith("\n")]
    except FileNotFoundError:
        return []


def poll_until(cond, timeout, interval=0.05):
    """Calls cond() every `interval` seconds until it returns something true, and
    returns that; None when `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    return None


def mapped_libraries(pid):
    """The file names (no folders) of the shared libraries process pid has mapped, from
    /proc/PID/maps: what a library loaded on first use (proto/include/barista/dl.h)
    shows up in once used, and never before."""
    names = set()
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            cols = line.split(None, 5)
            if len(cols) == 6 and cols[5].startswith("/"):
                names.add(os.path.basename(cols[5].strip()))
    return names


def maps_library(pid, soname):
    """True when process pid has the library `soname` (say libpq.so.5) mapped, by that
    name or by the versioned file it links to (libpq.so.5.15)."""
    return any(n == soname or n.startswith(soname + ".") for n in mapped_libraries(pid))


def without_library(soname):
    """A command prefix that runs a program with the system's `soname` unloadable: in a
    user and mount namespace of its own (unshare -rm, no privilege needed where user
    namespaces are allowed), /dev/null is bind-mounted over the library's file, so
    dlopen finds it and fails ("file too short").  The program keeps its pid (unshare
    execs it).  None where that is not possible (no unshare, namespaces refused, no
    such library): the caller skips."""
    import shutil
    path = None
    for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"):
        if os.path.exists(os.path.join(d, soname)):
            path = os.path.realpath(os.path.join(d, soname))
            break
    if not path or not shutil.which("unshare"):
        return None
    prefix = ["unshare", "-rm", "sh", "-c", 'mount --bind /dev/null "$0" && exec "$@"', path]
    try:
        ok = subprocess.run(prefix + ["true"], capture_output=True, timeout=STOP_TIMEOUT)
    except (OSError, subprocess.SubprocessError):
        return None
    return prefix if ok.returncode == 0 else None


def _listening_inodes(port):
    """Inodes of the sockets listening on TCP `port` (any address), from /proc/net."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(cols[9])
        except OSError:
            pass
    return inodes


def _family_pids(pid):
    """pid and every process descended from it."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    stat = f.read()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    family, grew = {pid}, True
    while grew:
        kids = {p for p, pp in parents.items() if pp in family} - family
        family |= kids
        grew = bool(kids)
    return family


def _owns_listener(pid, port):
    """True when pid (or a process it started) holds the socket listening on port: a
    connection that succeeds may reach another test's server on a port that both picked,
    and a process signalled before it is ready dies of the signal."""
    wanted = {"socket:[%s]" % i for i in _listening_inodes(port)}
    for p in _family_pids(pid):
        try:
            fds = os.listdir("/proc/%d/fd" % p)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink("/proc/%d/fd/%s" % (p, fd)) in wanted:
                    return True
            except OSError:
                continue
    return False


def wait_accepting(host, port, timeout=START_TIMEOUT, proc=None):
    """Waits until host:port accepts a connection (on a socket of proc's, when given);
    raises if proc exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s before accepting" % proc.returncode)
        try:
            with socket.create_connection((host, port), timeout=1.0):
                if proc is None or _owns_listener(proc.pid, port):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError("%s:%d not accepting after %.0fs" % (host, port, timeout))


class Process:
    """A child process with its output captured to temporary files.

    stop() sends SIGTERM, waits, and kills with SIGKILL past STOP_TIMEOUT; it returns
    the exit code.  Used as a context manager, it always stops the child."""

    def __init__(self, args, env=None):
        self.args = [str(a) for a in args]
        env = dict(env or {})
        self.jobs_dir = _jobs_store_env(self.args, env)
        full_env = dict(os.environ)
        full_env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        full_env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        if env:
            full_env.update({k: str(v) for k, v in env.items()})
        self._out = tempfile.TemporaryFile()
        self._err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.args, env=full_env, stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=self._err)
        self.returncode = None

    @property
    def pid(self):
        return self.proc.pid

    def poll(self):
        return self.proc.poll()

    def signal(self, signum):
        if self.proc.poll() is None:
            self.proc.send_signal(signum)

    def wait(self, timeout=STOP_TIMEOUT):
        """Waits for exit; SIGKILL past the timeout (then raises TimeoutError)."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.returncode = self.proc.wait()
            raise TimeoutError("%s did not exit within %.0fs" % (self.args[0], timeout))
        return self.returncode

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then wait (SIGKILL on timeout).  Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.returncode = self.proc.wait()

    def _read(self, f):
        f.flush()
        f.seek(0)
        return f.read().decode("utf-8", "replace")

    def stdout(self):
        return self._read(self._out)

    def stderr(self):
        return self._read(self._err)

    def close(self):
        if self.proc.poll() is None:
            self.kill()
        self._out.close()
        self._err.close()
        if self.jobs_dir:
            self.jobs_dir.cleanup()
            self.jobs_dir = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            if self.proc.poll() is None:
                self.stop()
        finally:
            self.close()


def start_process(test, args, env=None):
    """Starts a Process that is stopped (SIGKILL if need be) when `test` ends."""
    p = Process(args, env=env)
    test.addCleanup(p.close)
    return p


def run(args, env=None, timeout=STOP_TIMEOUT):
    """Runs a binary to completion; returns CompletedProcess with text output."""
    args = [str(a) for a in args]
    env = dict(env or {})
    jobs_dir = _jobs_store_env(args, env)
    full_env = dict(os.environ)
    full_env.update(env)
    try:
        return subprocess.run(args, env=full_env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    finally:
        if jobs_dir:
            jobs_dir.cleanup()


class Gateway(Process):
    """barista-gateway listening on a free loopback port."""

    def __init__(self, *args, env=None, host="127.0.0.1", port=None):
        self.host = host
        # A port of our own pick may be taken between the pick and the bind (another
        # test's server): then the gateway exits "address already in use" and we pick
        # again.  A port the caller gave is not changed.
        for attempt in range(5):
            self.port = port or free_port(host)
            listen = "[%s]:%d" % (host, self.port) if ":" in host else "%s:%d" % (host, self.port)
            super().__init__([binary("barista-gateway"), "--listen", listen] + list(args),
                             env=env)
            try:
                wait_accepting(host, self.port, proc=self.proc)
                return
            except Exception:
                err = self.stderr()  # before close() drops the captured output
                self.close()
                if port or attempt == 4 or "uv_listen failed: address already in use" not in err:
                    raise RuntimeError("gateway failed to start:\n" + err)

    def client(self, timeout=IO_TIMEOUT):
        return HttpClient(self.port, host=self.host, timeout=timeout)


def start_gateway(test, *args, env=None, host="127.0.0.1"):
    """Starts a Gateway; when the test ends it is stopped with SIGTERM and the test
    fails unless it exited 0 (so sanitizer findings and leaks fail it)."""
    gw = Gateway(*args, env=env, host=host)

    def stop():
        try:
            code = gw.stop()
            if code != 0:
                test.fail("gateway exited %s:\n%s" % (code, gw.stderr()))
        finally:
            gw.close()

    test.addCleanup(stop)
    return gw


class Response:
    """A parsed HTTP response."""

    def __init__(self, status, reason, version, headers, body):
        self.status = status        # int
        self.reason = reason        # str
        self.version = version      # "HTTP/1.1"
        self.headers = headers      # [(name, value)] in order, names as sent
        self.body = body            # bytes

    def header(self, name):
        """The first value of a header (case-insensitive), or None."""
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None

    def header_count(self, name):
        return sum(1 for n, _ in self.headers if n.lower() == name.lower())

    def json(self):
        import json
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<Response %d %r>" % (self.status, self.body[:80])


class HttpClient:
    """A raw-socket HTTP/1.1 client: send exact bytes, parse what comes back."""

    def __init__(self, port, host="127.0.0.1", timeout=IO_TIMEOUT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by server")
        self.buf += chunk

    def _read_until(self, marker):
        while marker not in self.buf:
            self._fill()
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response(self, head=False):
        """Reads one response (skipping 1xx unless it is all there is)."""
        while True:
            r = self._read_one(head)
            if r.status >= 200 or r.status == 101:
                return r

    def read_interim_or_final(self, head=False):
        """Reads one response, 1xx included."""
        return self._read_one(head)

    def _read_one(self, head):
        raw = self._read_until(b"\r\n\r\n").decode("latin-1")
        lines = raw.split("\r\n")
        version, status, reason = (lines[0].split(" ", 2) + [""])[:3]
        headers = []
        for line in lines[1:]:
            if line:
                n, _, v = line.partition(":")
                headers.append((n, v.strip()))
        r = Response(int(status), reason, version, headers, b"")
        if head or r.status < 200 or r.status in (204, 304):
            return r
        te = r.header("transfer-encoding")
        cl = r.header("content-length")
        if te and te.lower() == "chunked":
            body = b""
            while True:
                size = int(self._read_until(b"\r\n").strip().split(b";")[0], 16)
                if size == 0:
                    self._read_until(b"\r\n")
                    break
                body += self._read_exact(size)
                self._read_exact(2)
            r.body = body
        elif cl is not None:
            r.body = self._read_exact(int(cl))
        else:
            r.body = self.read_to_close()
        return r

    def request(self, method, path, headers=None, body=b"", version="HTTP/1.1"):
        """Sends one request (Host added unless given) and reads its response."""
        self.send(build_request(method, path, headers, body, version))
        return self.read_response(head=(method == "HEAD"))

    def read_to_close(self):
        """Everything until the server closes (timeout raises)."""
        out = self.buf
        self.buf = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out

    def closed_by_server(self):
        """True when the server has closed (EOF or reset) before the socket timeout,
        and nothing but EOF follows what was already read."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return not self.buf
                self.buf += chunk
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


def build_request(method, path, headers=None, body=b"", version="HTTP/1.1"):
    """The bytes of a simple request; Host and Content-Length added when missing."""
    headers = list(headers or [])
    names = {n.lower() for n, _ in headers}
    if "host" not in names and version == "HTTP/1.1":
        headers.insert(0, ("Host", "test"))
    if body and "content-length" not in names and "transfer-encoding" not in names:
        headers.append(("Content-Length", str(len(body))))
    out = "%s %s %s\r\n" % (method, path, version)
    out += "".join("%s: %s\r\n" % (n, v) for n, v in headers)
    return out.encode("latin-1") + b"\r\n" + body
