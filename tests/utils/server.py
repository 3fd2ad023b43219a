"""A real NormScope server for tests: uvicorn in a subprocess on a free loopback port, with its
own temporary NORMSCOPE_DATA_DIR. Real sockets, real worker processes, no mocks.

Use the `server` fixture (one per test session, shared) or `start_server` (a private one, for
tests that kill or restart the server or need other settings):

    from tests.utils.server import server, start_server  # noqa: F401  (in a conftest.py)

    def test_health(server):
        assert server.client().get("/healthz").status_code == 200

Every server's access log is checked when it stops: a 500 anywhere fails the test that
owns the server ("no test ever sees a 500").
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]

# Steps enough to outlast any test on any machine: a test that needs a run still running
# starts one this long and cancels it, so no check rests on how fast the machine trains.
LONG_RUN = 500_000

# Small and quick for a shared 2-core machine; tests override what they need.
TEST_ENV = {
    "NORMSCOPE_MAX_JOBS": "2",
    "NORMSCOPE_WARM_WORKERS": "2",  # tests start runs back to back: keep one ready
    "NORMSCOPE_QUEUE_LENGTH": "8",
    "NORMSCOPE_KEEPALIVE_S": "1",
    "NORMSCOPE_MAX_STEPS": str(LONG_RUN),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """One `uvicorn --factory app.main:create_app` process; restartable on the same data dir."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None):
        self.data_dir = Path(data_dir)
        self.env = {**TEST_ENV, **(env or {})}
        self.token: str | None = self.env.get("NORMSCOPE_TOKEN") or None
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.log_path = self.data_dir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __str__(self) -> str:
        return self.url

    def start(self, timeout: float = 90) -> LiveServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        env = {**os.environ, **self.env, "NORMSCOPE_DATA_DIR": str(self.data_dir)}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "app.main:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "info",
            "--timeout-graceful-shutdown",
            "5",
        ]
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer within {timeout}s:\n{self.log()}")

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client for this server, sending the token when there is one."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)

    def kill(self) -> None:
        """SIGKILL the server: no shutdown, no cleanup (its workers exit on their own)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        """Graceful stop (SIGTERM), SIGKILL after 20 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def server_errors(self) -> list[str]:
        """Access-log lines with a 5xx status, and tracebacks: what no test may cause."""
        text = self.log()
        lines = [line for line in text.splitlines() if re.search(r'HTTP/1\.1" 5\d\d', line)]
        return lines + (["Traceback in the server log"] if "Traceback" in text else [])


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The shared server of the session (settings: TEST_ENV)."""
    live = LiveServer(tmp_path_factory.mktemp("normscope-server")).start()
    try:
        yield live
    finally:
        live.stop()
    assert not live.server_errors(), "\n".join(live.server_errors())


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Factory: start_server(data_dir=None, **env) -> a started private server, stopped and
    checked for 5xx answers at the end of the test."""
    started: list[LiveServer] = []

    def start(data_dir: Path | None = None, **env: str) -> LiveServer:
        live = LiveServer(data_dir or tmp_path / f"server{len(started)}", env).start()
        started.append(live)
        return live

    yield start
    for live in started:
        live.stop()
    for live in started:
        assert not live.server_errors(), "\n".join(live.server_errors())


def sse_events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """Parse a streaming text/event-stream response into {"event", "id", "data", "comment"}
    dicts as they arrive (comments — keep-alives — are yielded too, with event None)."""
    event: dict[str, Any] = {}
    data: list[str] = []
    for line in response.iter_lines():
        if not line:
            if data or event:
                yield {
                    "event": event.get("event", "message"),
                    "id": event.get("id"),
                    "data": "\n".join(data) if data else None,
                    "comment": None,
                }
            event, data = {}, []
        elif line.startswith(":"):
            yield {"event": None, "id": None, "data": None, "comment": line[1:].strip()}
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            else:
                event[name] = value
