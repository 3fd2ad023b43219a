"""Fixtures of the browser tests: the real server (tests/utils/server.py), Debian's chromium
driven by Playwright, and a page that records console errors and every request it makes."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from normcore.frames import TERMINAL

# the session server (two warm workers: a preset starts two runs at once) and the factory
from tests.utils.server import LiveServer, server, start_server  # noqa: F401  (fixtures)

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).parent / "screenshots"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


# Small runs for a shared 2-core machine; probing every other step keeps the charts growing.
SMALL: dict[str, Any] = {
    "depth": 3,
    "width": 32,
    "activation": "sigmoid",
    "steps": 300,
    "probe_every": 2,
    "eval_every": 50,
    "hist_bins": 48,
}


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing (.ci/system-packages installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield chromium
        chromium.close()


class Dashboard:
    """A page on the dashboard of one server, with what it logged and requested."""

    def __init__(self, page: Any, base_url: str):
        self.page, self.base = page, base_url
        self.console: list[str] = []
        self.requests: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda e: self.console.append(f"uncaught: {e}"))
        page.on("request", lambda r: self.requests.append(r.url))

    def _on_console(self, message: Any) -> None:
        if message.type == "error":
            self.console.append(message.text)

    def open(self, route: str = "#/launch") -> None:
        self.page.goto(f"{self.base}/{route}")

    def traces(self, selector: str) -> list[int] | None:
        """Points per trace of the Plotly chart at `selector` (None: not drawn)."""
        return self.page.evaluate(
            """(sel) => { const el = document.querySelector(sel);
                 return el && el.data ? el.data.map((t) => (t.x || []).length) : null; }""",
            selector,
        )

    def points(self, selector: str) -> int:
        return max(self.traces(selector) or [0])

    def assert_points(self, selector: str, n: int, timeout_s: float = 15) -> None:
        """The chart at `selector` comes to hold n points: its last throttled update may wait
        up to 2 s on a loaded machine (feed.js adapts the interval to the drawing's cost)."""
        try:
            self.page.wait_for_function(
                """([sel, n]) => { const el = document.querySelector(sel);
                     const lengths = el && el.data ? el.data.map((t) => (t.x || []).length) : [];
                     return Math.max(0, ...lengths) === n; }""",
                arg=[selector, n],
                timeout=timeout_s * 1000,
            )
        except Exception:
            raise AssertionError(f"{selector}: {self.points(selector)} points, not {n}") from None

    def status(self) -> str:
        return self.page.get_attribute(".run-status [data-status]", "data-status") or ""

    def wait_status(self, statuses: set[str], timeout_s: float = 90) -> str:
        self.page.wait_for_function(
            """(want) => { const b = document.querySelector('.run-status [data-status]');
                 return b && want.includes(b.dataset.status); }""",
            arg=sorted(statuses),
            timeout=timeout_s * 1000,
        )
        return self.status()

    def screenshot(self, name: str, full_page: bool = False) -> Path:
        SCREENSHOTS.mkdir(exist_ok=True)
        path = SCREENSHOTS / name
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def assert_clean(self, allowed: tuple[str, ...] = ()) -> None:
        """No console errors (but the `allowed` patterns), no request off this server."""
        errors = [c for c in self.console if not any(re.search(a, c) for a in allowed)]
        assert not errors, errors
        origin = urlsplit(self.base)
        foreign = [
            u
            for u in self.requests
            if not u.startswith(("data:", "blob:"))
            and (urlsplit(u).hostname, urlsplit(u).port) != (origin.hostname, origin.port)
        ]
        assert not foreign, foreign


@pytest.fixture
def dash(browser: Any, server: LiveServer) -> Iterator[Dashboard]:  # noqa: F811
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield Dashboard(page, server.url)
    context.close()


def wait_run(client: httpx.Client, run_id: str, timeout_s: float = 120) -> dict[str, Any]:
    """Poll a run until it has ended."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = client.get(f"/api/runs/{run_id}").json()
        if run["status"] in TERMINAL:
            return run
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} did not end within {timeout_s}s")
