"""/docs in a real browser: Debian's headless chromium, driven over the DevTools
protocol (python3-websockets), loads the page from the real gateway with the `typed`
test service joined, expands an operation, finds the request body pre-filled with an
example made from the schema, sends it with "Try it" and sees the 201; then sends a
body that breaks the schema and sees the 422.  Nothing is fetched from outside: the
browser runs with networking limited to the gateway's loopback port.

chromium and python3-websockets come from `deploy/install-deps.sh browser`; without
them the test skips, except in CI (CI set), where it fails."""

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.request

import harness as h
from test_async import AsyncTestCase

try:
    import websockets
except ImportError:
    # Debian's python3-websockets, when the interpreter running the tests is another.
    import sys
    sys.path.append("/usr/lib/python3/dist-packages")
    try:
        import websockets
    except ImportError:  # the skip below says what to install
        websockets = None

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """A headless chromium and one DevTools page session."""

    def __init__(self, test):
        self.dir = tempfile.mkdtemp(prefix="barista-chromium-")
        test.addCleanup(shutil.rmtree, self.dir, True)
        port = h.free_port()
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--no-first-run", "--disable-extensions", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--metrics-recording-only",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=%d" % port,
             "--user-data-dir=" + self.dir, "--window-size=1200,1600", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        test.addCleanup(self.close)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port, timeout=2) as r:
                    pages = [t for t in json.load(r) if t["type"] == "page"]
                if pages:
                    self.ws_url = pages[0]["webSocketDebuggerUrl"]
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("chromium did not start")
            time.sleep(0.2)
        self.loop = asyncio.new_event_loop()

        async def connect():
            return await websockets.connect(self.ws_url, max_size=None)

        self.ws = self.loop.run_until_complete(connect())
        self.next_id = 0

    def close(self):
        if getattr(self, "ws", None):
            self.loop.run_until_complete(self.ws.close())
            self.ws = None
        if getattr(self, "loop", None):
            self.loop.close()
            self.loop = None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def call(self, method, **params):
        self.next_id += 1
        mid = self.next_id

        async def run():
            await self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
            while True:
                msg = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
                if msg.get("id") == mid:
                    return msg

        msg = self.loop.run_until_complete(run())
        if "error" in msg:
            raise RuntimeError("%s: %s" % (method, msg["error"]))
        return msg["result"]

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError("page error: %s" % r["exceptionDetails"])
        return r["result"].get("value")

    def wait_for(self, expr, what, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = self.eval(expr)
            if v:
                return v
            time.sleep(0.1)
        raise AssertionError("timed out waiting for " + what)

    def screenshot(self, path):
        import base64
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))


def require_browser(test):
    """Skips `test` when chromium or python3-websockets is missing (fails it in CI)."""
    missing = [n for n, ok in (("chromium", CHROMIUM), ("python3-websockets", websockets))
               if not ok]
    if missing:
        if os.environ.get("CI"):
            test.fail("missing %s: run deploy/install-deps.sh browser" % ", ".join(missing))
        test.skipTest("missing %s (deploy/install-deps.sh browser)" % ", ".join(missing))


class DocsInABrowser(AsyncTestCase):
    def setUp(self):
        require_browser(self)
        self.start()
        self.worker("typed", binary="barista-worker-test")
        self.wait_joined(1)
        self.wait_ready()
        self.b = Browser(self)
        self.b.call("Page.enable")
        self.b.call("Page.navigate", url="http://127.0.0.1:%d/docs" % self.gw.port)
        self.b.wait_for("document.body && document.body.dataset.ready === 'yes'", "the page")

    def op(self, op_id, js):
        return self.b.eval("(function () { var d = document.getElementById(%s); %s })()"
                           % (json.dumps(op_id), js))

    def test_expand_an_operation_send_its_example_body_and_see_the_answer(self):
        op = "typed_post__typed_orders"
        self.assertEqual(self.op(op, "return d.open;"), False)
        self.op(op, "d.querySelector('summary').click(); return true;")
        self.assertTrue(self.op(op, "return d.open;"))
        # The schema is shown, $refs resolved, and the body pre-filled from it.
        schema_text = self.op(op, "return d.querySelector('pre.schema').textContent;")
        self.assertIn("customer: string (minLength 1, maxLength 20)", schema_text)
        self.assertIn("items: array of OrderItem", schema_text)
        body = json.loads(self.op(op, "return d.querySelector('textarea.body').value;"))
        self.assertEqual(body["priority"], "normal")
        self.assertEqual(body["email"], "user@example.com")
        self.assertEqual(body["items"], [{"sku": "AAA-0", "qty": 1}])
        self.op(op, "d.querySelector('form.try button').click(); return true;")
        status = self.b.wait_for(
            "document.getElementById('%s').querySelector('pre.out').dataset.status" % op,
            "the answer")
        self.assertEqual(status, "201", self.op(op, "return d.querySelector('pre.out').textContent;"))
        answer = self.op(op, "return d.querySelector('pre.out').textContent;")
        self.assertIn('"customer": "string"', answer)
        if os.environ.get("BARISTA_DOCS_SCREENSHOT"):
            self.b.screenshot(os.environ["BARISTA_DOCS_SCREENSHOT"])

        # A body that breaks the schema: the page shows the gateway's 422.
        self.op(op, "var t = d.querySelector('textarea.body'); t.value = '{\"customer\": 5}';"
                    "d.querySelector('pre.out').dataset.status = '';"
                    "d.querySelector('form.try button').click(); return true;")
        status = self.b.wait_for(
            "document.getElementById('%s').querySelector('pre.out').dataset.status" % op,
            "the 422")
        self.assertEqual(status, "422")
        self.assertIn("string_type", self.op(op, "return d.querySelector('pre.out').textContent;"))

    def test_parameters_get_enum_choices_defaults_and_cookies(self):
        op = "typed_get__typed_items__id_"
        self.op(op, "d.querySelector('summary').click(); return true;")
        kinds = self.op(op, "return Array.from(d.querySelector('select[name=kind]').options)"
                            ".map(function (o) { return o.value; });")
        self.assertEqual(kinds, ["", "a", "b"])
        self.assertEqual(self.op(op, "return d.querySelector('select[name=kind]').value;"), "a")
        self.assertEqual(self.op(op, "return d.querySelector('input[name=limit]').value;"), "10")
        self.op(op, "d.querySelector('input[name=session]').value = 'abcd';"
                    "d.querySelector('input[name=\"X-Request-Id\"]').value = 'from-docs';"
                    "d.querySelector('form.try button').click(); return true;")
        status = self.b.wait_for(
            "document.getElementById('%s').querySelector('pre.out').dataset.status" % op,
            "the answer")
        out = self.op(op, "return d.querySelector('pre.out').textContent;")
        self.assertEqual(status, "200", out)
        self.assertIn('"session": "abcd"', out)
        self.assertIn('"request_id": "from-docs"', out)


if __name__ == "__main__":
    unittest.main()
