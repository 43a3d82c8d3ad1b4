"""FastAPI twin of the notes-pg example's read routes, for tests/bench/db/db_bench.sh:
GET /notes/{id} reads one row with asyncpg, GET /cache/{key} reads one Redis key
with redis-py's asyncio client (Debian's python3-fastapi, python3-asyncpg,
python3-redis).

Run: BENCH_PG=conninfo-URI BENCH_REDIS=host:port python3 -m uvicorn fastapi_db:app \
         --loop uvloop --http httptools --workers 1 --log-level warning \
         --host 127.0.0.1 --port PORT
"""
import os

import asyncpg
import redis.asyncio as aioredis
from fastapi import FastAPI, HTTPException

app = FastAPI(title="barista-db-compare")
POOL_SIZE = int(os.environ.get("BENCH_POOL", "8"))


@app.on_event("startup")
async def startup():
    app.state.pg = await asyncpg.create_pool(os.environ["BENCH_PG"], min_size=POOL_SIZE,
                                             max_size=POOL_SIZE)
    host, port = os.environ["BENCH_REDIS"].rsplit(":", 1)
    app.state.redis = aioredis.Redis(host=host, port=int(port),
                                     max_connections=POOL_SIZE * 8)


@app.on_event("shutdown")
async def shutdown():
    await app.state.pg.close()
    await app.state.redis.close()


@app.get("/notes/{note_id}")
async def read_note(note_id: int):
    row = await app.state.pg.fetchrow("SELECT id, title, text FROM notes WHERE id = $1",
                                      note_id)
    if row is None:
        raise HTTPException(status_code=404, detail="Note not found")
    return {"id": row["id"], "title": row["title"], "text": row["text"]}


@app.get("/cache/{key}")
async def read_cache(key: str):
    value = await app.state.redis.get("cache:" + key)
    if value is None:
        raise HTTPException(status_code=404, detail="Not cached")
    return {"key": key, "value": value.decode()}
