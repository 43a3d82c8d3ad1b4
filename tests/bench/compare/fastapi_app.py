"""FastAPI twin of Barista's hello, sleep and hash services (see the design
document, ../shared/DESIGN.md beside the repository, "Built-in example
services"), for the comparison benchmark in tests/bench/compare/run.sh.

Run: python3 -m uvicorn fastapi_app:app --loop uvloop --http httptools \
         --workers 1 --log-level warning --host 127.0.0.1 --port PORT
"""
import asyncio
import hashlib

from fastapi import FastAPI, Query

app = FastAPI(title="barista-compare")


@app.get("/hello")
async def hello():
    return {"message": "hello"}


@app.get("/hello/{name}")
async def hello_name(name: str):
    return {"message": "hello " + name}


@app.get("/sleep")
async def sleep(ms: int = Query(..., ge=0, le=60000)):
    await asyncio.sleep(ms / 1000)
    return {"slept_ms": ms}


# A plain def route: FastAPI runs it in its threadpool (the CPU-bound case).
@app.get("/hash")
def hash_(n: int = Query(..., ge=1), data: str = Query(...)):
    digest = data.encode()
    for _ in range(n):
        digest = hashlib.sha256(digest).digest()
    return {"digest": digest.hex(), "n": n}
