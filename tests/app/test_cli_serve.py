"""`normscope serve` starts the real server with its flags, and refuses bad settings."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx

from tests.utils.server import ROOT, free_port


def _serve(*flags: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", *flags],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_serve_answers_on_the_given_port_with_the_given_data_dir(tmp_path):
    port = free_port()
    proc = _serve("--port", str(port), "--data-dir", str(tmp_path), NORMSCOPE_WARM_WORKERS="0")
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/api/catalog", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "serve did not answer"
                time.sleep(0.2)
        assert response.status_code == 200 and response.json()["limits"]["steps"] > 0
        assert (tmp_path / "runs.db").is_file()
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    # uvicorn re-raises the SIGTERM it handled, after a graceful shutdown
    assert proc.returncode in (0, -15) and "Application shutdown complete" in out, out
    assert f"http://127.0.0.1:{port}/" in out


def test_serve_rejects_an_invalid_setting_naming_it(tmp_path):
    proc = _serve("--port", "70000", "--data-dir", str(tmp_path))
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 2 and "port" in out and "70000" in out


def test_serve_on_a_taken_port_says_so_and_names_the_flag(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _serve("--port", str(port), "--data-dir", str(tmp_path))
        out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 2, out
    assert f"port {port}" in out and "--port" in out and "Started server" not in out, out
