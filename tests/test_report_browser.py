"""The report in a real browser: headless Chromium loads it with no console errors, no network
requests, every study visible and every figure decoded, and a screenshot is saved.

Chromium is driven through the DevTools protocol over ``--remote-debugging-pipe`` (fds 3 and
4, JSON messages ending in NUL), so the test needs no driver, no port and no extra package.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from reslab.report import render_report
from reslab.report.sample import sample_results

pytestmark = pytest.mark.slow


def _chromium() -> str | None:
    for path in ("/usr/lib/chromium/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if path and os.access(path, os.X_OK):
            return path
    return None


CHROMIUM = _chromium()
FLAGS = [
    "--headless",
    "--no-sandbox",  # we run as root in CI
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",  # this machine has no network
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-pipe",
]
TIMEOUT = 90.0


class Chromium:
    """A minimal DevTools client over the pipe transport; events are kept for inspection."""

    def __init__(self, profile: Path, log: Path):
        cmd_read, self._cmd = os.pipe()  # we write commands; Chromium reads them on fd 3
        self._res, res_write = os.pipe()  # Chromium writes replies and events on fd 4
        # Park the child's ends above 4 so dup2 onto 3 and 4 never meets itself.
        child_in = fcntl.fcntl(cmd_read, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(res_write, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(cmd_read)
        os.close(res_write)

        def onto_3_and_4() -> None:
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        self._log = open(log, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            close_fds=False,  # fds 3 and 4 must survive; Python's own fds are non-inheritable anyway
            preexec_fn=onto_3_and_4,
        )
        os.close(child_in)
        os.close(child_out)
        self._buf = b""
        self._next = 0
        self.events: list[dict] = []

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise TimeoutError("Chromium did not answer (see chromium.log beside the screenshot)")
            ready, _, _ = select.select([self._res], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(self._res, 1 << 20)
                if not chunk:
                    raise ConnectionError("Chromium closed the DevTools pipe")
                self._buf += chunk
        message, self._buf = self._buf.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next += 1
        message = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._cmd, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> dict:
        deadline = time.monotonic() + TIMEOUT
        while True:
            for event in self.events:
                if event.get("method") == method:
                    return event
            self.events.append(self._receive(deadline))

    def close(self) -> None:
        try:
            os.write(self._cmd, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
            self.proc.wait(timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            os.close(self._cmd)
            os.close(self._res)
            self._log.close()


def open_page(path: Path, work: Path) -> dict:
    """Load ``path`` in headless Chromium; return what a reader would see, plus every problem."""
    browser = Chromium(work / "profile", work / "chromium.log")
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session=session)
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        browser.events.clear()
        browser.send("Page.navigate", {"url": path.resolve().as_uri()}, session=session)
        browser.wait_for("Page.loadEventFired")
        check = """(() => {
            const visible = el => { if (!el) return false; const r = el.getBoundingClientRect(), s = getComputedStyle(el);
                return r.width > 0 && r.height > 0 && s.display !== 'none' && s.visibility !== 'hidden'; };
            const sections = [...document.querySelectorAll('section.study')];
            return {
                ids: sections.filter(visible).map(s => s.id),
                summaryLinks: [...document.querySelectorAll('#summary a')].map(a => a.getAttribute('href')),
                images: document.images.length,
                decoded: [...document.images].filter(i => i.complete && i.naturalWidth > 0).length,
                scripts: document.scripts.length,
                text: document.body.innerText,
                xss: window.__xss === undefined ? null : window.__xss,
            };
        })()"""
        result = browser.send("Runtime.evaluate", {"expression": check, "returnByValue": True}, session=session)
        page = result["result"]["value"]
        time.sleep(0.5)  # late console messages (e.g. a blocked request) arrive asynchronously
        browser.send("Runtime.evaluate", {"expression": "1"}, session=session)
        size = browser.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
        height = min(int(size["height"]), 16000)
        shot = browser.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": 1280, "height": height, "scale": 1},
            },
            session=session,
        )
    finally:
        browser.close()
    page["screenshot"] = base64.b64decode(shot["data"])
    page["errors"] = [
        e["params"]
        for e in browser.events
        if e.get("method") in ("Runtime.exceptionThrown", "Network.loadingFailed")
        or (e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") in ("error", "assert", "warning"))
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"].get("level") in ("error", "warning"))
    ]
    page["requests"] = [
        e["params"]["request"]["url"] for e in browser.events if e.get("method") == "Network.requestWillBeSent"
    ]
    return page


needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make system-deps installs it)")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    data = sample_results(5)
    evil = dict(data["studies"][0])
    evil["id"] = "escaping"
    evil["claim"] = "A <script>window.__xss = 1</script> & <img src=x onerror='window.__xss=2'> claim"
    evil["figures"] = []
    data["studies"].append(evil)
    (out / "results.json").write_text(json.dumps(data))
    render_report(out)
    return out


@needs_chromium
def test_report_loads_cleanly_and_shows_every_study(rendered, tmp_path):
    page = open_page(rendered / "report.html", tmp_path)
    shot = tmp_path / "report-screenshot.png"
    shot.write_bytes(page["screenshot"])
    print(f"screenshot: {shot}")
    assert page["screenshot"][:8] == b"\x89PNG\r\n\x1a\n" and len(page["screenshot"]) > 20_000
    assert page["errors"] == []
    studies = json.loads((rendered / "results.json").read_text())["studies"]
    expected = [f"study-{s['id']}" for s in studies]
    assert page["ids"] == expected  # every study present, visible, in order
    assert page["summaryLinks"] == [f"#{i}" for i in expected]
    assert page["images"] >= 8 and page["decoded"] == page["images"]  # every figure is a valid image
    assert page["scripts"] == 0 and page["xss"] is None
    assert "<script>window.__xss = 1</script> & <img src=x" in page["text"]  # shown as text, not run
    assert all(u.startswith(("file:", "data:")) for u in page["requests"]), page["requests"]


@needs_chromium
def test_the_browser_check_sees_errors_and_requests(tmp_path):
    """The harness itself must be able to fail: a page with a script error and an external image."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><body><section class='study' id='study-x'>x</section>"
        "<img src='http://127.0.0.1:9/none.png'><script>console.error('boom'); undefined_fn();</script></body></html>"
    )
    page = open_page(bad, tmp_path)
    assert page["ids"] == ["study-x"]
    assert any(u.startswith("http://127.0.0.1:9/") for u in page["requests"])
    kinds = json.dumps(page["errors"])
    assert "boom" in kinds and "undefined_fn" in kinds
