"""Celery twin of Barista's email task and POST /jobs/email, for
tests/bench/jobs_bench.sh: Redis as broker, acks_late (the message is acknowledged
after the task ran, so a killed worker's task runs again), one outbox line per job,
fsynced, as Barista's email task writes it.

    celery -A celery_app worker --pool prefork --concurrency 2 -O fair
    python3 -m uvicorn celery_app:api --loop uvloop --http httptools --port PORT

Environment: BENCH_REDIS (redis://127.0.0.1:6390/0), BENCH_OUTBOX (outbox path).
"""
import os

from celery import Celery
from fastapi import FastAPI
from fastapi.responses import JSONResponse

REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6390/0")
OUTBOX = os.environ.get("BENCH_OUTBOX", "/tmp/celery-outbox.txt")

app = Celery("bench", broker=REDIS)
app.conf.update(
    task_acks_late=True,              # ack after the task ran: at-least-once, as Barista
    task_reject_on_worker_lost=True,  # a killed worker's task is redelivered
    # Celery's default, 4.  The 1 its docs advise with acks_late ran at about 5
    # tasks/s with the prefork pool here (BENCH_CELERY_PREFETCH=1 to see it).
    worker_prefetch_multiplier=int(os.environ.get("BENCH_CELERY_PREFETCH", "4")),
    task_ignore_result=True,          # no result backend: only the side effect
)


@app.task(name="email", bind=True)
def email(self, to):
    fd = os.open(OUTBOX, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, ("%s %s\n" % (self.request.id, to)).encode())
        os.fsync(fd)
    finally:
        os.close(fd)


api = FastAPI()


@api.post("/jobs/email", status_code=202)
def submit(body: dict):
    # A plain def: FastAPI runs it on its thread pool, as a blocking Redis client
    # needs.  apply_async returns once the message is in Redis.
    r = email.apply_async(args=(body["to"],))
    return JSONResponse({"job_id": r.id, "status_url": "/jobs/" + r.id}, status_code=202)
