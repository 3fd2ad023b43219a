"""A sweep on a real two-node Ray cluster on this machine: `ray start --head` and a second
`ray start --address` node as separate processes, token auth on, every address loopback.

Ray maps 127.0.0.1 to the machine's routable address on purpose (a node must be reachable by
the others), so `--node-ip-address 127.0.0.1` still advertises eth0's address. The nodes here
advertise 127.0.0.2 and 127.0.0.3 instead: other loopback addresses, which Ray takes as given,
so no byte leaves the machine; `ray.nodes()` is checked to say so. The cluster is stopped at
the end (`ray stop` of the processes started here)."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.utils.runs import SMALL
from tests.utils.server import LONG_RUN, LiveServer, free_port

HEAD, SECOND = "127.0.0.2", "127.0.0.3"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[dict[str, str]]:
    """A head and a worker node with one CPU each; yields the env a driver needs to join."""
    ray_bin = shutil.which("ray")
    assert ray_bin, "the `ray` command is missing: pip install -e '.[dev]' installs it"
    temp = tmp_path_factory.mktemp("ray")
    port = free_port()
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    common = ["--num-cpus", "1", "--disable-usage-stats"]
    head = [
        ray_bin,
        "start",
        "--head",
        "--port",
        str(port),
        "--node-ip-address",
        HEAD,
        "--include-dashboard",
        "false",
        "--temp-dir",
        str(temp),
        *common,
    ]
    second = [ray_bin, "start", "--address", f"{HEAD}:{port}", "--node-ip-address", SECOND, *common]
    try:
        for command in (head, second):
            subprocess.run(command, env=env, check=True, capture_output=True, timeout=180)
        yield {
            "RAY_ADDRESS": f"{HEAD}:{port}",
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": env["RAY_AUTH_TOKEN"],
        }
    finally:
        subprocess.run([ray_bin, "stop", "--force"], env=env, capture_output=True, timeout=120)


def test_cluster_nodes_advertise_loopback_addresses(cluster):
    probe = (
        "import ray; ray.init(logging_level='ERROR'); "
        "print(sorted(n['NodeManagerAddress'] for n in ray.nodes() if n['Alive']))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, **cluster},
        text=True,
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == str([HEAD, SECOND])
    wrong = {**os.environ, **cluster, "RAY_AUTH_TOKEN": "not-the-token"}
    command = [sys.executable, "-c", probe]
    refused = subprocess.run(command, env=wrong, capture_output=True, timeout=120)
    assert refused.returncode != 0  # token auth is on


def test_a_sweep_runs_its_cells_on_both_nodes(cluster, tmp_path):
    env = {"NORMSCOPE_EXECUTOR": "ray", "NORMSCOPE_MAX_JOBS": "2", **cluster}
    server = LiveServer(tmp_path / "server", env).start()
    try:
        with server.client() as client:
            quick = {**SMALL, "steps": 20, "eval_every": 20, "probe_every": 5}
            done = client.post(
                "/api/sweeps", json={"base": quick, "grid": {"norm": ["none", "layer"]}, "seeds": 2}
            ).json()
            long = client.post(
                "/api/sweeps",
                json={"base": {**quick, "steps": LONG_RUN}, "grid": {"width": [8, 16]}},
            ).json()
            nodes: set[str] = set()
            deadline = time.monotonic() + 240
            while len(nodes) < 2 and time.monotonic() < deadline:
                jobs = client.get("/api/jobs").json()["data"]
                nodes |= {
                    j["node"]
                    for j in jobs
                    if j["node"] and j["run_id"] in {c["run_id"] for c in long["cells"]}
                }
                time.sleep(0.2)
            assert nodes == {HEAD, SECOND}, nodes  # one cell on each node (one CPU each)
            assert client.post(f"/api/sweeps/{long['id']}/cancel").status_code == 200
            while client.get(f"/api/sweeps/{done['id']}").json()["status"] == "running":
                assert time.monotonic() < deadline + 120, "the short sweep did not end"
                time.sleep(0.2)
            finished = client.get(f"/api/sweeps/{done['id']}").json()
    finally:
        server.stop()
    assert not server.server_errors(), server.log()
    assert finished["status"] == "completed" and all(p["n"] == 2 for p in finished["summary"])
