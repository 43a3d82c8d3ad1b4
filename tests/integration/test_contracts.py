"""Typed contracts end to end: the real gateway and barista-worker-test's `typed`
service (tests/workers/typed_service.c) over real HTTP.  A body that breaks its schema
never reaches the worker and gets FastAPI's 422 (pydantic v2 error types, loc paths,
every error at once); a good one reaches it converted (integers as integers, defaults
filled in, declared fields in order); parameters get enums, lists, defaults, formats,
aliases and cookies; content types follow FastAPI's rules; a worker whose reply breaks
its declared response is named in the gateway's log (debug mode)."""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

import harness as h
from test_async import AsyncTestCase

GOOD_ORDER = {
    "customer": "ada",
    "email": "ada@example.com",
    "items": [{"sku": "ABC-1", "qty": 2}],
}

UUID = "12345678-1234-5678-1234-567812345678"


class ContractCase(AsyncTestCase):
    def setUp(self):
        self.start("--check-replies")
        self.w = self.worker("typed,echo", binary="barista-worker-test")
        self.wait_joined(1)
        self.wait_ready()

    def post(self, path, body, content_type="application/json", headers=None):
        hdrs = list((headers or {}).items())
        if content_type is not None:
            hdrs.append(("Content-Type", content_type))
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.request("POST", path, hdrs, data)

    def errors(self, r):
        self.assertEqual(r.status, 422, r.body)
        self.assertEqual(r.header("content-type"), "application/json")
        return r.json()["detail"]


class Bodies(ContractCase):
    def test_a_good_body_reaches_the_worker_converted_with_defaults(self):
        body = dict(GOOD_ORDER, items=[{"sku": "ABC-1", "qty": "3"}, {"qty": 4.0, "sku": "XYZ-22"}],
                    weight="2.5", extra_ignored=None)
        del body["extra_ignored"]
        r = self.post("/typed/orders", body)
        self.assertEqual(r.status, 201, r.body)
        got = r.json()
        self.assertEqual(list(got), ["customer", "email", "items", "priority", "express", "weight"])
        self.assertEqual(got["items"], [{"sku": "ABC-1", "qty": 3}, {"sku": "XYZ-22", "qty": 4}])
        self.assertEqual(got["priority"], "normal")
        self.assertIs(got["express"], False)
        self.assertEqual(got["weight"], 2.5)

    def test_every_error_is_reported_at_once_with_pydantic_types(self):
        body = {
            "customer": "",
            "email": "not-an-email",
            "items": [{"sku": "ABC-1", "qty": 1}, {"sku": "abc", "qty": 0},
                      {"sku": "ABC-2", "qty": 1.5}, {"qty": "x", "bogus": 1}],
            "priority": "urgent",
            "express": "perhaps",
            "weight": 0,
            "ref": "1234",
            "due": "2024-02-30",
            "at": "2024-01-01X10:00",
            "surprise": True,
        }
        errs = self.errors(self.post("/typed/orders", body))
        by_loc = {tuple(e["loc"]): e for e in errs}
        expect = {
            ("body", "surprise"): "extra_forbidden",
            ("body", "customer"): "string_too_short",
            ("body", "email"): "value_error",
            ("body", "items", 1, "sku"): "string_pattern_mismatch",
            ("body", "items", 1, "qty"): "greater_than_equal",
            ("body", "items", 2, "qty"): "int_from_float",
            ("body", "items", 3, "bogus"): "extra_forbidden",
            ("body", "items", 3, "sku"): "missing",
            ("body", "items", 3, "qty"): "int_parsing",
            ("body", "priority"): "enum",
            ("body", "express"): "bool_parsing",
            ("body", "weight"): "greater_than",
            ("body", "ref"): "uuid_parsing",
            ("body", "due"): "date_parsing",
            ("body", "at"): "datetime_parsing",
        }
        self.assertEqual({k: v["type"] for k, v in by_loc.items()}, expect)
        self.assertEqual(len(errs), len(expect))
        # pydantic's order: declared fields in declaration order, then undeclared keys.
        self.assertEqual([tuple(e["loc"]) for e in errs], [
            ("body", "customer"), ("body", "email"), ("body", "items", 1, "sku"),
            ("body", "items", 1, "qty"), ("body", "items", 2, "qty"), ("body", "items", 3, "sku"),
            ("body", "items", 3, "qty"), ("body", "items", 3, "bogus"), ("body", "priority"),
            ("body", "express"), ("body", "weight"), ("body", "ref"), ("body", "due"),
            ("body", "at"), ("body", "surprise")])
        self.assertEqual(by_loc[("body", "customer")]["ctx"], {"min_length": 1})
        self.assertEqual(by_loc[("body", "customer")]["msg"], "String should have at least 1 character")
        self.assertEqual(by_loc[("body", "items", 1, "qty")]["ctx"], {"ge": 1})
        self.assertEqual(by_loc[("body", "items", 1, "qty")]["input"], 0)
        self.assertEqual(by_loc[("body", "priority")]["msg"], "Input should be 'low', 'normal' or 'high'")
        self.assertEqual(by_loc[("body", "priority")]["ctx"], {"expected": "'low', 'normal' or 'high'"})
        self.assertEqual(by_loc[("body", "items", 3, "sku")]["input"], {"qty": "x", "bogus": 1})
        self.assertEqual(by_loc[("body", "items", 1, "sku")]["ctx"], {"pattern": "^[A-Z]{3}-[0-9]+$"})
        self.assertEqual(by_loc[("body", "weight")]["msg"], "Input should be greater than 0")
        self.assertEqual(by_loc[("body", "due")]["msg"],
                         "Input should be a valid date in the format YYYY-MM-DD, "
                         "day value is outside expected range")
        for e in errs:
            self.assertEqual(set(e) - {"ctx"}, {"type", "loc", "msg", "input"}, e)

    def test_missing_fields_name_the_object_as_input(self):
        errs = self.errors(self.post("/typed/orders", {"customer": "ada"}))
        self.assertEqual([(e["type"], e["loc"]) for e in errs],
                         [("missing", ["body", "email"]), ("missing", ["body", "items"])])
        self.assertEqual(errs[0]["input"], {"customer": "ada"})
        self.assertEqual(errs[0]["msg"], "Field required")

    def test_wrong_shapes(self):
        errs = self.errors(self.post("/typed/orders", [1, 2]))
        self.assertEqual(errs, [{"type": "model_attributes_type", "loc": ["body"],
                                 "msg": "Input should be a valid dictionary or object to extract "
                                        "fields from", "input": [1, 2]}])
        errs = self.errors(self.post("/typed/orders", dict(GOOD_ORDER, items=[], meta=[1])))
        self.assertEqual({(e["type"], tuple(e["loc"])) for e in errs},
                         {("too_short", ("body", "items")), ("dict_type", ("body", "meta"))})
        short = [e for e in errs if e["type"] == "too_short"][0]
        self.assertEqual(short["ctx"], {"field_type": "List", "min_length": 1, "actual_length": 0})
        errs = self.errors(self.post("/typed/orders", dict(GOOD_ORDER, items=[GOOD_ORDER["items"][0]] * 6)))
        self.assertEqual([(e["type"], e["msg"]) for e in errs],
                         [("too_long", "List should have at most 5 items after validation, not 6")])
        errs = self.errors(self.post("/typed/orders", dict(GOOD_ORDER, customer=5, items="x")))
        self.assertEqual([(e["type"], e["loc"]) for e in errs],
                         [("string_type", ["body", "customer"]), ("list_type", ["body", "items"])])

    def test_a_missing_body_and_invalid_json(self):
        errs = self.errors(self.request("POST", "/typed/orders", [("Content-Type", "application/json")]))
        self.assertEqual(errs, [{"type": "missing", "loc": ["body"], "msg": "Field required",
                                 "input": None}])
        errs = self.errors(self.post("/typed/orders", b'{"customer": '))
        self.assertEqual(errs[0]["type"], "json_invalid")

    def test_json_without_a_content_type_is_accepted_and_others_are_415(self):
        r = self.post("/typed/orders", GOOD_ORDER, content_type=None)
        self.assertEqual(r.status, 201, r.body)
        r = self.post("/typed/orders", GOOD_ORDER, content_type="text/plain")
        self.assertEqual(r.status, 415, r.body)
        r = self.post("/typed/orders", b"customer=ada",
                      content_type="application/x-www-form-urlencoded")
        self.assertEqual(r.status, 415, r.body)

    def test_forms_validate_against_the_same_schema_where_declared(self):
        r = self.post("/typed/signup-form", b"name=ada&age=36&tags=a&tags=b",
                      content_type="application/x-www-form-urlencoded")
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual(r.json(), {"name": "ada", "age": 36, "tags": ["a", "b"]})
        errs = self.errors(self.post("/typed/signup-form", b"name=a&age=old",
                                     content_type="application/x-www-form-urlencoded"))
        self.assertEqual([(e["type"], e["loc"], e["input"]) for e in errs],
                         [("string_too_short", ["body", "name"], "a"),
                          ("int_parsing", ["body", "age"], "old")])
        r = self.post("/typed/signup-form", {"name": "ada", "age": 1})
        self.assertEqual(r.status, 201, r.body)

    def test_msgpack_bodies_are_validated_too(self):
        # {"customer": 7}: msgpack fixmap, str, positive fixint.
        r = self.post("/typed/orders", b"\x81\xa8customer\x07", content_type="application/msgpack")
        errs = self.errors(r)
        self.assertEqual([(e["type"], e["loc"]) for e in errs],
                         [("string_type", ["body", "customer"]), ("missing", ["body", "email"]),
                          ("missing", ["body", "items"])])
        r = self.post("/typed/orders", b"\x81\xa8customer", content_type="application/msgpack")
        self.assertEqual(r.status, 400, r.body)

    def test_routes_without_a_schema_are_unchanged(self):
        r = self.post("/echo", b"anything at all", content_type="text/plain")
        self.assertEqual((r.status, r.body), (200, b"anything at all"))


class Parameters(ContractCase):
    def get_item(self, query="", headers=None, cookie="session=abcd", item=UUID):
        hdrs = list((headers or {}).items())
        if cookie is not None:
            hdrs.append(("Cookie", cookie))
        return self.get("/typed/items/%s%s" % (item, query), hdrs)

    def test_defaults_aliases_and_cookies_reach_the_worker(self):
        r = self.get_item(headers={"X-Request-Id": "r-1"}, cookie="theme=dark; session=\"abcd\"")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json(), {"id": UUID, "kind": "a", "limit": "10", "request_id": "r-1",
                                    "session": "abcd"})

    def test_enum_pattern_list_uuid_date_and_cookie_errors_together(self):
        r = self.get_item("?kind=c&tag=ok&tag=NO&limit=0&day=2024-13-01", cookie="session=x",
                          item="not-a-uuid")
        errs = self.errors(r)
        self.assertEqual([(e["type"], e["loc"]) for e in errs], [
            ("uuid_parsing", ["path", "id"]),
            ("enum", ["query", "kind"]),
            ("string_pattern_mismatch", ["query", "tag", 1]),
            ("greater_than_equal", ["query", "limit"]),
            ("date_parsing", ["query", "day"]),
            ("string_too_short", ["cookie", "session"]),
        ])
        self.assertEqual(errs[1]["input"], "c")

    def test_a_missing_cookie_and_too_many_list_values(self):
        errs = self.errors(self.get_item("?tag=a&tag=b&tag=c&tag=d", cookie=None))
        self.assertEqual([(e["type"], e["loc"]) for e in errs],
                         [("too_long", ["query", "tag"]), ("missing", ["cookie", "session"])])


class Replies(ContractCase):
    def test_a_reply_that_breaks_its_declared_schema_is_logged_with_the_route(self):
        r = self.get("/typed/broken")
        self.assertEqual(r.status, 200)
        self.wait_until(lambda: "GET /typed/broken" in self.gw.stderr() and
                        "breaks its declared 200 response" in self.gw.stderr(),
                        "the contract error in the gateway's log")
        self.assertIn("int_parsing", self.gw.stderr())

    def test_a_conforming_reply_logs_nothing(self):
        r = self.post("/typed/orders", GOOD_ORDER)
        self.assertEqual(r.status, 201, r.body)
        self.assertNotIn("breaks its declared", self.gw.stderr())


DEBIAN_PYTHON = "/usr/bin/python3"


class SideBySideWithFastAPI(ContractCase):
    """The same models in FastAPI (Debian's python3-fastapi, pydantic 1.10:
    fastapi_twin.py) and in Barista, the same bad inputs: the status, the set of locs
    and the number of errors must agree.  (Types and messages follow pydantic v2, which
    current FastAPI answers; Debian's pydantic 1.10 words them differently.)"""

    def setUp(self):
        probe = subprocess.run([DEBIAN_PYTHON, "-c", "import fastapi, uvicorn"],
                               capture_output=True)
        if probe.returncode != 0:
            if os.environ.get("CI"):
                self.fail("python3-fastapi / python3-uvicorn missing (deploy/install-deps.sh)")
            self.skipTest("python3-fastapi / python3-uvicorn missing")
        super().setUp()
        self.port = h.free_port()
        self.twin = h.start_process(self, [DEBIAN_PYTHON, "-m", "uvicorn", "fastapi_twin:app",
                                           "--host", "127.0.0.1", "--port", str(self.port),
                                           "--log-level", "warning"])
        h.wait_accepting("127.0.0.1", self.port, proc=self.twin.proc)

    def both(self, method, path, body=None, headers=()):
        hdrs = list(headers)
        data = b""
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.append(("Content-Type", "application/json"))
        ours = self.request(method, path, hdrs, data)
        with h.HttpClient(self.port) as c:
            theirs = c.request(method, path, hdrs, data)
        return ours, theirs

    def assert_same_errors(self, method, path, body=None, headers=()):
        ours, theirs = self.both(method, path, body, headers)
        self.assertEqual(ours.status, theirs.status, (ours.body, theirs.body))
        if ours.status != 422:
            return
        mine = sorted(tuple(e["loc"]) for e in ours.json()["detail"])
        twin = sorted(tuple(e["loc"]) for e in theirs.json()["detail"])
        self.assertEqual(mine, twin, (ours.body, theirs.body))

    def test_bodies(self):
        self.assert_same_errors("POST", "/typed/orders", GOOD_ORDER)
        self.assert_same_errors("POST", "/typed/orders", {"customer": "ada"})
        self.assert_same_errors("POST", "/typed/orders", [1, 2])
        self.assert_same_errors("POST", "/typed/orders", dict(GOOD_ORDER, items=[], meta=[1]))
        self.assert_same_errors("POST", "/typed/orders", {
            "customer": "", "email": "a@b.c",
            "items": [{"sku": "abc", "qty": 0}, {"qty": "x", "bogus": 1}],
            "priority": "urgent", "express": "perhaps", "weight": 0, "ref": "1234",
            "due": "2024-02-30", "at": "2024-01-01X10:00", "surprise": True})
        self.assert_same_errors("POST", "/typed/orders",
                                dict(GOOD_ORDER, items=[GOOD_ORDER["items"][0]] * 6))

    def test_parameters(self):
        cookie = [("Cookie", "session=abcd")]
        self.assert_same_errors("GET", "/typed/items/%s" % UUID, headers=cookie)
        self.assert_same_errors("GET", "/typed/items/%s?kind=b&tag=x&tag=y&limit=100" % UUID,
                                headers=cookie)
        self.assert_same_errors(
            "GET", "/typed/items/not-a-uuid?kind=c&tag=ok&tag=NO&limit=0&day=2024-13-01",
            headers=[("Cookie", "session=x")])
        self.assert_same_errors("GET", "/typed/items/%s?limit=x" % UUID)


class GeneratedClient(AsyncTestCase):
    """A client generated from the live /openapi.json by an independent generator
    (oapi-codegen, tests/openapi/clientgen) calls the signup service: the typed 201, the
    declared 422, a path parameter.  oapi-codegen reads OpenAPI 3.0's vocabulary, so
    the gateway here hosts services whose schemas stay within it (hello, signup)."""

    def test_a_generated_client_calls_the_signup_service(self):
        gen = h.binary("oapi-codegen")
        go = shutil.which("go") or "/usr/local/go/bin/go"
        if not os.path.exists(str(gen)) or not os.path.exists(go):
            if os.environ.get("CI"):
                self.fail("oapi-codegen or go missing")
            self.skipTest("oapi-codegen not built (no Go toolchain)")
        self.start()
        self.worker("hello,signup,email")
        self.wait_joined(1)
        self.wait_ready()
        doc = self.get("/openapi.json").body
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "openapi",
                           "clientgen")
        with tempfile.TemporaryDirectory() as tmp:
            mod = os.path.join(tmp, "clientgen")
            shutil.copytree(src, mod, ignore=shutil.ignore_patterns("client.gen.go"))
            with open(os.path.join(tmp, "openapi.json"), "wb") as f:
                f.write(doc)
            out = subprocess.run([str(gen), "-generate", "types,client", "-package", "client",
                                  os.path.join(tmp, "openapi.json")],
                                 capture_output=True, text=True, timeout=120)
            self.assertEqual(out.returncode, 0, out.stderr)
            with open(os.path.join(mod, "client", "client.gen.go"), "w") as f:
                f.write(out.stdout)
            env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-buildvcs=false")
            run = subprocess.run([go, "run", ".", "http://127.0.0.1:%d" % self.gw.port],
                                 cwd=mod, capture_output=True, text=True, timeout=600, env=env)
            self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
            self.assertIn("generated client: 3 passed, 0 failed", run.stdout)


class OpenAPI(ContractCase):
    def openapi(self):
        r = self.get("/openapi.json")
        self.assertEqual(r.status, 200)
        return r.json()

    def test_models_requests_and_responses_are_documented(self):
        doc = self.openapi()
        schemas = doc["components"]["schemas"]
        self.assertEqual(schemas["Order"]["required"], ["customer", "email", "items"])
        self.assertEqual(schemas["Order"]["properties"]["items"]["items"],
                         {"$ref": "#/components/schemas/OrderItem"})
        self.assertEqual(schemas["Order"]["additionalProperties"], False)
        self.assertEqual(schemas["OrderItem"]["properties"]["qty"],
                         {"type": "integer", "minimum": 1, "exclusiveMaximum": 100})
        self.assertIn("HTTPValidationError", schemas)
        post = doc["paths"]["/typed/orders"]["post"]
        self.assertEqual(post["requestBody"]["content"]["application/json"]["schema"],
                         {"$ref": "#/components/schemas/Order"})
        self.assertEqual(sorted(post["responses"]), ["201", "409", "422", "502", "503", "504"])
        self.assertEqual(post["responses"]["201"]["content"]["application/json"]["schema"],
                         {"$ref": "#/components/schemas/Order"})
        self.assertEqual(post["responses"]["409"]["content"]["application/json"]["schema"],
                         {"$ref": "#/components/schemas/HTTPError"})
        form = doc["paths"]["/typed/signup-form"]["post"]["requestBody"]["content"]
        self.assertIn("application/x-www-form-urlencoded", form)
        params = {p["name"]: p for p in doc["paths"]["/typed/items/{id}"]["get"]["parameters"]}
        self.assertEqual(params["kind"]["schema"], {"type": "string", "enum": ["a", "b"],
                                                    "default": "a"})
        self.assertEqual(params["X-Request-Id"]["in"], "header")
        self.assertEqual(params["session"]["in"], "cookie")
        self.assertEqual(params["tag"]["schema"]["type"], "array")
        self.assertEqual(params["id"]["schema"], {"type": "string", "format": "uuid"})
        # An operation that declares no 2xx keeps FastAPI's 200.
        self.assertIn("200", doc["paths"]["/echo"]["post"]["responses"])

    def test_an_independent_validator_accepts_the_document_and_the_exchanges(self):
        check = h.binary("openapi-check")
        if not os.path.exists(str(check)):
            if os.environ.get("CI"):
                self.fail("openapi-check was not built (no Go toolchain?)")
            self.skipTest("openapi-check not built (no Go toolchain)")
        doc = self.openapi()
        exchanges = []

        def record(method, path, body=None, headers=()):
            hdrs = list(headers)
            data = b""
            if body is not None:
                data = json.dumps(body).encode()
                hdrs.append(("Content-Type", "application/json"))
            r = self.request(method, path, hdrs, data)
            exchanges.append({
                "method": method, "url": "http://127.0.0.1" + path,
                "request_headers": dict(hdrs), "request_body": data.decode(),
                "status": r.status,
                "response_headers": {"Content-Type": r.header("content-type") or ""},
                "response_body": r.body.decode()})
            return r

        self.assertEqual(record("POST", "/typed/orders", GOOD_ORDER).status, 201)
        self.assertEqual(record("POST", "/typed/orders", {"customer": 1}).status, 422)
        self.assertEqual(record("GET", "/typed/items/%s?kind=b&tag=x&tag=y" % UUID,
                                headers=[("Cookie", "session=abcd")]).status, 200)
        with tempfile.TemporaryDirectory() as tmp:
            dpath, xpath = os.path.join(tmp, "doc.json"), os.path.join(tmp, "x.json")
            with open(dpath, "w") as f:
                json.dump(doc, f)
            with open(xpath, "w") as f:
                json.dump(exchanges, f)
            out = subprocess.run([str(check), dpath, xpath], capture_output=True, text=True,
                                 timeout=120)
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
            self.assertIn("4 passed, 0 failed", out.stdout)
            # The validator can fail: a response the document does not allow.
            exchanges[0]["response_body"] = json.dumps(dict(GOOD_ORDER, customer=7))
            with open(xpath, "w") as f:
                json.dump(exchanges, f)
            out = subprocess.run([str(check), dpath, xpath], capture_output=True, text=True,
                                 timeout=120)
            self.assertEqual(out.returncode, 1, out.stdout + out.stderr)


if __name__ == "__main__":
    unittest.main()
