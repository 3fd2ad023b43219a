"""The API contract, checked by schemathesis against a real server on 127.0.0.1: a bounded,
fixed-seed run of its stateless phases (configuration: schemathesis.toml at the repository
root), with a token and without one; any 5xx or failed check fails the test. Also: the token
is checked before routing."""

from __future__ import annotations

import shutil
import subprocess

import httpx
import pytest

from tests.utils.server import ROOT, LiveServer

TOKEN = "contract-token"
ST = shutil.which("st") or shutil.which("schemathesis")
# runs the fuzzing starts: short (the default steps are accepted), one at a time
ENV = {"NORMSCOPE_MAX_STEPS": "2000", "NORMSCOPE_MAX_JOBS": "1", "NORMSCOPE_QUEUE_LENGTH": "2"}


@pytest.mark.slow
@pytest.mark.parametrize("token", [TOKEN, None], ids=["token", "open"])
def test_schemathesis_finds_nothing(tmp_path, token):
    assert ST, "schemathesis is not installed: pip install -e '.[dev]'"
    live = LiveServer(tmp_path, {**ENV, **({"NORMSCOPE_TOKEN": token} if token else {})})
    live.start()
    try:
        headers = ["-H", f"Authorization: Bearer {token}"] if token else []
        done = subprocess.run(
            [
                ST,
                "--config-file",
                str(ROOT / "schemathesis.toml"),
                "run",
                f"{live.url}/openapi.json",
                *headers,
                "--no-color",
                "--phases",
                "examples,coverage,fuzzing",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
    finally:
        live.stop()
    # the failures section first (the report's tail is warnings and the summary)
    failures = done.stdout[done.stdout.find("FAILURES") :][:6000]
    assert done.returncode == 0, failures + done.stdout[-2000:] + done.stderr[-2000:]
    assert not live.server_errors(), "\n".join(live.server_errors())


def test_without_the_token_every_api_request_is_401_before_routing(tmp_path):
    live = LiveServer(tmp_path, {**ENV, "NORMSCOPE_TOKEN": TOKEN}).start()
    try:
        for method, path in [
            ("HEAD", "/api/runs"),
            ("OPTIONS", "/api/runs"),
            ("GET", "/api"),
            ("GET", "/api/"),
            ("PUT", "/api/catalog"),
            ("GET", "/api/nosuch"),
            ("OPTIONS", "/api/runs/abc"),
        ]:
            answer = httpx.request(method, live.url + path, follow_redirects=False)
            assert answer.status_code == 401, (method, path, answer.status_code)
            assert answer.headers["www-authenticate"] == "Bearer"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        # past the gate: a method the path lacks is 405 naming all its methods
        answer = httpx.request("PUT", live.url + "/api/runs/abc", headers=auth)
        assert answer.status_code == 405 and answer.headers["allow"] == "DELETE, GET"
        assert httpx.get(live.url + "/api/nosuch", headers=auth).status_code == 404
        doc = httpx.get(live.url + "/openapi.json").json()
        cancel = doc["paths"]["/api/runs/{run_id}/cancel"]["post"]["responses"]
        assert {"401", "404", "409", "422"} <= set(cancel)
        assert doc["components"]["schemas"]["RunConfig"]["properties"]["steps"]["maximum"] == 2000
    finally:
        live.stop()
    assert not live.server_errors(), "\n".join(live.server_errors())
