"""FastAPI twin of barista-worker-test's `typed` service (tests/workers/typed_service.c):
the same Order model and the same item parameters, declared the pydantic way, for
test_contracts.py's side-by-side comparison of 422s and for the validation benchmark
(tests/bench/compare/contracts_bench.sh: POST /typed/bench).

Run with Debian's python3: python3 -m uvicorn fastapi_twin:app --port PORT
"""
import datetime
import uuid
from typing import List, Literal, Optional

from fastapi import Cookie, FastAPI, Header, Query, Request, Response
from pydantic import BaseModel, Extra, Field, confloat, conint, constr

app = FastAPI(title="typed-twin")


class OrderItem(BaseModel, extra=Extra.forbid):
    sku: constr(regex=r"^[A-Z]{3}-[0-9]+$")
    qty: conint(ge=1, lt=100)


class Order(BaseModel, extra=Extra.forbid):
    customer: constr(min_length=1, max_length=20)
    email: str
    items: List[OrderItem] = Field(..., min_items=1, max_items=5)
    priority: Literal["low", "normal", "high"] = "normal"
    express: bool = False
    weight: Optional[confloat(gt=0)] = None
    ref: Optional[uuid.UUID] = None
    due: Optional[datetime.date] = None
    at: Optional[datetime.datetime] = None
    meta: Optional[dict] = None


@app.post("/typed/orders", status_code=201)
async def orders(order: Order):
    return order


@app.get("/typed/items/{id}")
async def items(id: uuid.UUID, kind: Literal["a", "b"] = "a",
                tag: List[constr(regex=r"^[a-z]+$")] = Query([], max_items=3),
                limit: conint(ge=1, le=100) = 10, day: Optional[datetime.date] = None,
                request_id: Optional[str] = Header(None, alias="X-Request-Id"),
                session: constr(min_length=3) = Cookie(...)):
    return {"id": str(id), "kind": kind, "limit": str(limit), "request_id": request_id,
            "session": session}


class BenchUser(BaseModel):
    id: uuid.UUID
    name: constr(max_length=200)
    email: str
    age: conint(ge=0)
    score: confloat(ge=0, le=100)
    active: bool
    role: Literal["low", "normal", "high"]
    tags: List[constr(max_length=200)] = Field(..., max_items=20)
    bio: constr(max_length=200)
    visits: Optional[conint(ge=0)] = None


@app.post("/typed/bench", status_code=204)
async def bench(user: BenchUser):
    return Response(status_code=204)


@app.post("/typed/bench-raw", status_code=204)
async def bench_raw(request: Request):
    await request.json()  # parsed, as the gateway converts it, but not validated
    return Response(status_code=204)
