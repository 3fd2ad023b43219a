"""normcore.client against a real NormScope server (uvicorn in a subprocess, real sockets).

The stream tests consume the stream; the resume test cuts the TCP connection mid-stream with
a real proxy and checks that every frame still arrives exactly once, in order.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading

import httpx
import pytest

from normcore.client import ApiError, Client, parse_sse
from tests.utils.server import ROOT
from tests.utils.tcp_proxy import TcpProxy

SMALL = {"width": 16, "depth": 2, "probe_every": 1, "eval_every": 20}


def test_parse_sse_follows_the_event_stream_rules():
    lines = [
        ": keep-alive",
        "event: frame",
        "id: 3",
        'data: {"a":',
        "data: 1}",
        "",
        "retry: 1500",
        "event: status",
        "data: {}",
        "",
        "data: cut short, no blank line",
    ]
    events = list(parse_sse(lines))
    assert events == [("frame", "3", '{"a":\n1}', None), ("status", "3", "{}", 1500)]


def test_normcore_imports_without_httpx():
    # httpx blocked: the package and the client module import; only Client() needs it.
    code = textwrap.dedent(
        """
        import sys
        sys.modules["httpx"] = None
        import normcore, normcore.client
        from normcore.config import RunConfig
        RunConfig()
        try:
            normcore.client.Client()
        except ImportError:
            print("lazy")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "lazy"


def test_client_health_catalog_and_norms(server):
    with Client(server.url, token=server.token) as client:
        assert client.health()["status"] == "ok"
        norms = client.norms()
        names = [n["name"] for n in norms]
        assert "batch" in names and "layer" in names
        assert all("properties" in n for n in norms)


def test_client_rejects_a_bad_config_naming_the_field(server):
    with Client(server.url, token=server.token) as client:
        with pytest.raises(ApiError) as err:
            client.create_run(norm="batch", batch_size=1)
    assert err.value.status == 422
    assert "batch_size" in str(err.value.detail)


def test_client_unknown_run_is_a_404(server):
    with Client(server.url, token=server.token) as client:
        with pytest.raises(ApiError) as err:
            client.run("no-such-run")
    assert err.value.status == 404


@pytest.fixture(scope="module")
def finished(server) -> tuple[dict, dict]:
    """One run made and awaited through the client: (the run as created, as finished)."""
    with Client(server.url, token=server.token) as client:
        run = client.create_run({**SMALL, "steps": 40}, norm="layer")
        return run, client.wait(run["id"], timeout=180)


def test_client_creates_waits_and_reads_frames_and_exports(server, finished, tmp_path):
    run, done = finished
    assert run["status"] in ("queued", "running") and run["config"]["norm"] == "layer"
    assert done["status"] == "completed" and done["step"] == 40
    with Client(server.url, token=server.token) as client:
        assert run["id"] in [r["id"] for r in client.runs(status="completed")]

        frames = client.frames(run["id"])
        assert frames["total"] == done["frame_count"] == len(frames["data"])
        assert [f["seq"] for f in frames["data"]] == list(range(frames["total"]))
        thin = client.frames(run["id"], max_points=5)
        evals = {f["seq"] for f in frames["data"] if f["eval"]}
        kept = {f["seq"] for f in thin["data"]}
        # about max_points frames, plus every evaluation (never dropped), first and last
        assert evals <= kept and thin["count"] == len(thin["data"]) <= 5 + len(evals) + 2
        assert thin["dropped"] > 0 and thin["data"][-1]["seq"] == frames["data"][-1]["seq"]

        jsonl = client.export(run["id"], "jsonl", path=tmp_path / "run.jsonl")
        assert len(jsonl.splitlines()) == done["frame_count"]
        assert (tmp_path / "run.jsonl").read_bytes() == jsonl
        csv = client.export(run["id"], "csv").decode()
        assert "loss" in csv.splitlines()[0]


def test_iter_frames_streams_a_live_run_to_its_end(server):
    with Client(server.url, token=server.token) as client:
        run = client.create_run(SMALL, steps=60)
        seqs = [frame["seq"] for frame in client.iter_frames(run["id"])]
        done = client.run(run["id"])
    assert done["status"] == "completed"
    assert seqs == list(range(done["frame_count"]))


def test_iter_frames_since_seq_skips_earlier_frames(server, finished):
    run, _ = finished
    with Client(server.url, token=server.token) as client:
        seqs = [frame["seq"] for frame in client.iter_frames(run["id"], since_seq=7)]
    assert seqs[0] == 7 and seqs == list(range(7, 7 + len(seqs)))


def test_stream_resumes_after_a_dropped_connection(server):
    proxy = TcpProxy("127.0.0.1", server.port)
    try:
        with Client(proxy.url, token=server.token) as client:
            run = client.create_run(SMALL, steps=300)
            seqs, dropped = [], threading.Event()
            for frame in client.iter_frames(run["id"]):
                seqs.append(frame["seq"])
                if len(seqs) == 5 and not dropped.is_set():
                    assert proxy.drop() >= 1  # the stream's socket dies mid-run
                    dropped.set()
            total = client.run(run["id"])["frame_count"]
            reconnects = client.reconnects
    finally:
        proxy.close()
    assert seqs == list(range(total)), "every frame exactly once, in order"
    assert reconnects >= 1 and proxy.connections >= 2


def test_stream_reconnects_when_a_connection_goes_silent(server):
    # The server's keep-alive comes every 1 s (TEST_ENV), so 3 s of silence is a dead link.
    proxy = TcpProxy("127.0.0.1", server.port)
    try:
        with Client(proxy.url, token=server.token) as client:
            run = client.create_run(SMALL, steps=300)
            seqs = []
            for frame in client.iter_frames(run["id"], idle_timeout=3):
                seqs.append(frame["seq"])
                if len(seqs) == 5:
                    assert proxy.freeze() >= 1
            total = client.run(run["id"])["frame_count"]
            reconnects = client.reconnects
    finally:
        proxy.close()
    assert seqs == list(range(total))
    assert reconnects >= 1


def test_client_sends_the_token_to_api_and_stream(start_server, monkeypatch):
    secured = start_server(NORMSCOPE_TOKEN="s3cret-token")
    monkeypatch.delenv("NORMSCOPE_TOKEN", raising=False)
    with Client(secured.url) as anonymous:
        assert anonymous.health()["status"] == "ok"  # /healthz is open for probes
        with pytest.raises(ApiError) as err:
            anonymous.norms()
        assert err.value.status == 401
    monkeypatch.setenv("NORMSCOPE_TOKEN", "s3cret-token")  # the default token source
    with Client(secured.url) as client:
        run = client.create_run(SMALL, steps=10)
        seqs = [frame["seq"] for frame in client.iter_frames(run["id"])]
        assert seqs == list(range(client.run(run["id"])["frame_count"]))
    # A download link or a new tab cannot send a header: GET takes ?token= (the report link).
    report = f"{secured.url}/api/runs/{run['id']}/report.html"
    assert httpx.get(report, timeout=60).status_code == 401
    response = httpx.get(report, params={"token": "s3cret-token"}, timeout=60)
    assert response.status_code == 200 and run["id"] in response.text


def normscope(*args: str, **env: str) -> subprocess.CompletedProcess:
    """The `normscope` console script in a clean NORMSCOPE_ environment plus `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("NORMSCOPE_")}
    exe = shutil.which("normscope")
    assert exe, "the `normscope` console script is not installed: pip install -e ."
    return subprocess.run(
        [exe, *args], env={**base, **env}, capture_output=True, text=True, timeout=180
    )


def test_cli_run_with_server_trains_there_and_streams_back(server, tmp_path):
    out = tmp_path / "frames.jsonl"
    flags = ("--width", "16", "--depth", "2", "--steps", "30", "--probe-every", "3")
    result = normscope("run", *flags, "--out", str(out), "--quiet", "--server", server.url)
    assert result.returncode == 0, result.stderr
    run_id = re.search(r"run (\w+) on ", result.stderr).group(1)
    with Client(server.url, token=server.token) as client:
        stored = client.frames(run_id)["data"]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [f["seq"] for f in lines] == [f["seq"] for f in stored]
    assert "completed at step 30" in result.stdout  # the same summary as a local run


def test_cli_run_with_server_reports_a_rejected_config(server):
    result = normscope("run", "--norm", "batch", "--batch-size", "1", "--server", server.url)
    assert result.returncode == 2
    assert "batch_size" in result.stderr


def test_cli_export_local_and_remote_agree(server, finished, tmp_path):
    run, _ = finished
    with Client(server.url, token=server.token) as client:
        api = client.export(run["id"], "csv").decode()
    local = normscope("export", run["id"], "-f", "csv", NORMSCOPE_DATA_DIR=str(server.data_dir))
    assert local.returncode == 0, local.stderr
    remote_file = tmp_path / "run.csv"
    remote = normscope(
        "export", run["id"], "-f", "csv", "-o", str(remote_file), "--server", server.url
    )
    assert remote.returncode == 0, remote.stderr
    assert local.stdout == api == remote_file.read_text()


def test_cli_export_unknown_run_fails_naming_it(server):
    result = normscope("export", "nope", "--server", server.url)
    assert result.returncode == 1 and "'nope'" in result.stderr and result.stdout == ""


def test_cli_export_into_a_closed_pipe_exits_quietly(server, finished):
    """`normscope export RUN | head` must not end in a BrokenPipeError traceback."""
    run, _ = finished
    env = {**os.environ, "NORMSCOPE_DATA_DIR": str(server.data_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "export", run["id"]],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()  # the reader is gone before the first write, as `head` after its lines
    stderr = proc.communicate(timeout=180)[1]
    assert proc.returncode == 141, stderr
    assert "Traceback" not in stderr and "Exception" not in stderr, stderr
