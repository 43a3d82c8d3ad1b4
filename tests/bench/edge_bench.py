#!/usr/bin/python3
"""The edge's cost per request: /hello plain, with a JWT verified (HS256, RS256), and
POST /echo of a 4 KiB JSON body plain and gzip-compressed - Barista's gateway and an
I/O worker side by side with FastAPI doing the same (HTTPBearer + PyJWT,
GZipMiddleware; Debian's python3-fastapi, python3-jwt, python3-uvicorn).

Each row is one `wrk -t2 -c64` run; the number that matters is the server's CPU time
(user + system of every server process, from /proc) per request, which does not
depend on how the two shared cores were split with wrk (docs/benchmarks.md).

    tests/bench/edge_bench.py                 # BENCH_DURATION=5 by default
    BARISTA_BIN=build/bin BENCH_DURATION=10 tests/bench/edge_bench.py

Needs wrk, openssl, and /usr/bin/python3 with fastapi, uvicorn and jwt (Debian).
"""
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BIN = os.path.abspath(os.environ.get("BARISTA_BIN", os.path.join(ROOT, "build", "bin")))
DURATION = int(os.environ.get("BENCH_DURATION", "5"))
SECRET = b"bench-secret-" + b"x" * 32
BODY = json.dumps({"items": ["item number %d" % i for i in range(240)]})[:4096]
BODY = BODY[:BODY.rfind(",")] + "]}"

FASTAPI_APP = r'''
import jwt
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

SECRET = open("SECRET_PATH", "rb").read()
PUBLIC = open("PUBLIC_PATH", "rb").read()
app = FastAPI()
app.add_middleware(GZipMiddleware, minimum_size=1024)
bearer = HTTPBearer()


def claims(cred: HTTPAuthorizationCredentials = Depends(bearer)):
    alg = jwt.get_unverified_header(cred.credentials)["alg"]
    key = SECRET if alg == "HS256" else PUBLIC
    try:
        return jwt.decode(cred.credentials, key, algorithms=[alg], audience="bench")
    except jwt.PyJWTError:
        raise HTTPException(status_code=401, detail="Could not validate credentials")


@app.get("/hello")
async def hello():
    return {"message": "hello"}


@app.get("/secure/hello")
async def secure_hello(c: dict = Depends(claims)):
    return {"message": "hello"}


@app.post("/echo")
async def echo(request: Request):
    return Response(await request.body(), media_type="application/json")
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(alg, key_path=None):
    head = b64u(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64u(json.dumps({"sub": "bench", "aud": "bench",
                            "exp": int(time.time()) + 3600}).encode())
    msg = (head + "." + body).encode()
    if alg == "HS256":
        sig = hmac.new(SECRET, msg, hashlib.sha256).digest()
    else:
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key_path], input=msg,
                             capture_output=True, check=True).stdout
    return msg.decode() + "." + b64u(sig)


def cpu_ticks(pids):
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total


def wait_port(port, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("port %d not accepting" % port)


def wrk(port, path, headers=(), lua=None):
    args = ["wrk", "-t2", "-c64", "-d%ds" % DURATION, "--latency"]
    for h in headers:
        args += ["-H", h]
    if lua:
        args += ["-s", lua]
    out = subprocess.run(args + ["http://127.0.0.1:%d%s" % (port, path)],
                         capture_output=True, text=True).stdout
    n = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return n, rps, int(non2xx.group(1)) if non2xx else 0


def measure(pids, port, path, headers=(), lua=None):
    wrk(port, path, headers, lua)  # warm-up run, not counted (short: same duration)
    t0 = cpu_ticks(pids)
    n, rps, bad = wrk(port, path, headers, lua)
    us = (cpu_ticks(pids) - t0) * 1e6 / os.sysconf("SC_CLK_TCK") / max(n, 1)
    return rps, us, bad


def main():
    if not shutil.which("wrk"):
        sys.exit("edge_bench: wrk not installed (apt-get install wrk)")
    tmp = tempfile.mkdtemp(prefix="barista-edge-bench-")
    procs = []
    try:
        secret = os.path.join(tmp, "secret")
        with open(secret, "wb") as f:
            f.write(SECRET)
        rsa = os.path.join(tmp, "rsa.pem")
        pub = os.path.join(tmp, "rsa.pub")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:2048", "-out", rsa], check=True, capture_output=True)
        subprocess.run(["openssl", "pkey", "-in", rsa, "-pubout", "-out", pub], check=True,
                       capture_output=True)
        hs, rs = token("HS256"), token("RS256", rsa)
        lua = os.path.join(tmp, "echo.lua")
        with open(lua, "w") as f:
            f.write('wrk.method = "POST"\nwrk.body = %s\n'
                    'wrk.headers["Content-Type"] = "application/json"\n' % json.dumps(BODY))
        gzip_h = ["Accept-Encoding: gzip"]
        rows = [("/hello, plain", "/hello", [], None),
                ("/hello, JWT HS256", "/hello", ["Authorization: Bearer " + hs], None),
                ("/hello, JWT RS256", "/hello", ["Authorization: Bearer " + rs], None),
                ("POST /echo 4 KiB, identity", "/echo", [], lua),
                ("POST /echo 4 KiB, gzip", "/echo", gzip_h, lua)]
        results = {}

        # Barista: gateway + one I/O worker; auth optional so that the plain row
        # verifies nothing and the token rows verify every request.
        port, bport = free_port(), free_port()
        log = open(os.path.join(tmp, "barista.log"), "w")
        gw = subprocess.Popen([os.path.join(BIN, "barista-gateway"), "--listen",
                               "127.0.0.1:%d" % port, "--broker", "tcp://127.0.0.1:%d" % bport,
                               "--jobs-db", os.path.join(tmp, "jobs.db"), "--access-log", "off",
                               "--auth-default", "optional", "--jwt-secret-file", secret,
                               "--jwt-public-key-file", pub, "--jwt-audience", "bench"],
                              stdout=log, stderr=log)
        procs.append(gw)
        wk = subprocess.Popen([os.path.join(BIN, "barista-worker"), "--services", "hello,echo",
                               "--connect", "tcp://127.0.0.1:%d" % bport], stdout=log,
                              stderr=log)
        procs.append(wk)
        wait_port(port)
        time.sleep(1.0)
        for name, path, hdrs, script in rows:
            results[(name, "barista")] = measure([gw.pid, wk.pid], port, path, hdrs, script)

        # FastAPI + uvicorn (uvloop, httptools), one process.
        app_dir = os.path.join(tmp, "app")
        os.mkdir(app_dir)
        with open(os.path.join(app_dir, "edge_app.py"), "w") as f:
            f.write(FASTAPI_APP.replace("SECRET_PATH", secret).replace("PUBLIC_PATH", pub))
        fport = free_port()
        fa = subprocess.Popen(["/usr/bin/python3", "-m", "uvicorn", "edge_app:app", "--loop",
                               "uvloop", "--http", "httptools", "--log-level", "warning",
                               "--host", "127.0.0.1", "--port", str(fport)], cwd=app_dir,
                              stdout=log, stderr=log)
        procs.append(fa)
        wait_port(fport)
        for name, path, hdrs, script in rows:
            fpath = "/secure/hello" if "JWT" in name else path
            results[(name, "fastapi")] = measure([fa.pid], fport, fpath, hdrs, script)

        print("| request | Barista req/s | Barista CPU µs/req | FastAPI req/s | "
              "FastAPI CPU µs/req | FastAPI / Barista CPU |")
        print("|---|---:|---:|---:|---:|---:|")
        base = {s: results[(rows[0][0], s)][1] for s in ("barista", "fastapi")}
        for name, *_ in rows:
            b, f = results[(name, "barista")], results[(name, "fastapi")]
            note = "" if not (b[2] or f[2]) else " (non-2xx: %d/%d)" % (b[2], f[2])
            print("| %s | %.0f | %.1f | %.0f | %.1f | %.1f ×%s |" % (
                name, b[0], b[1], f[0], f[1], f[1] / b[1], note))
        print()
        print("cost over the plain row, CPU µs/request: " + "; ".join(
            "%s: Barista %+.1f, FastAPI %+.1f" % (
                name, results[(name, "barista")][1] - base["barista"],
                results[(name, "fastapi")][1] - base["fastapi"])
            for name, *_ in rows[1:3]))
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
