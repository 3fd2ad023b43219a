"""A small Python client of the NormScope REST API.

    from normcore.client import Client

    with Client("http://127.0.0.1:8000", token="...") as ns:
        run = ns.create_run(norm="batch", steps=500)
        for frame in ns.iter_frames(run["id"]):      # live, resumes after a dropped link
            print(frame["step"], frame["loss"])
        print(ns.wait(run["id"])["final"])

httpx is imported inside `Client.__init__`, not at module level: normcore is the science and
must import (and train) on a machine without any web library; only this client needs one.

The live stream is Server-Sent Events. The parser below follows the WHATWG event-stream rules
(fields `event`, `data` (joined by newlines), `id`, `retry`; `:` comments; an event ends at a
blank line) because frames must arrive exactly once: after a dropped connection the client
reconnects with `Last-Event-ID` = the last frame it handed out, and the server replays from the
store only the frames after it.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from normcore.config import RunConfig
from normcore.frames import TERMINAL, to_json

if TYPE_CHECKING:
    from normcore.watch import Watch


class ApiError(RuntimeError):
    """An error response of the server: the HTTP status and the server's `detail`."""

    def __init__(self, status: int, detail: Any, url: str = ""):
        self.status = status
        self.detail = detail
        self.url = url
        super().__init__(f"HTTP {status} from {url}: {detail}")


@dataclass(frozen=True)
class Event:
    """One server-sent event: `event` name, `id` (a frame's seq) and decoded JSON `data`."""

    event: str
    id: str | None
    data: Any


def parse_sse(lines: Iterable[str]) -> Iterator[tuple[str, str | None, str, int | None]]:
    """Raw SSE lines -> (event, id, data, retry) per dispatched event.

    `id` is the stream's last event id at dispatch time (it persists across events, as in
    browsers); an event without data is not dispatched; a trailing event without its blank
    line is dropped, since a cut connection may have truncated it.
    """
    event, last_id, retry = "", None, None
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield event or "message", last_id, "\n".join(data), retry
            event, data, retry = "", [], None
            continue
        if line.startswith(":"):
            continue  # comment / keep-alive
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id" and "\0" not in value:
            last_id = value
        elif name == "retry" and value.isdigit():
            retry = int(value)


class _WatchedRun:
    """Sends a Watch's frames to its run on the server.

    Frames a send could not deliver (the server away, busy or failing: a transport error,
    429 or 5xx) wait and go first with the next batch, so a hiccup loses nothing (the
    server skips what it already has). Once the server says the run has ended (a cancel,
    a restart: 409), the error reaches the loop once and later frames are dropped; any other
    refusal (a bug: 413, 422) is raised as it comes."""

    def __init__(self, client: Client):
        self.client, self.id, self.ended = client, "", False
        self.pending: list[dict] = []

    def send(self, frames: list[dict]) -> None:
        if self.ended:
            return
        self.pending.extend(frames)
        try:
            self.client.append_frames(self.id, self.pending)
        except ApiError as exc:
            if not (exc.status == 429 or exc.status >= 500):  # ended (409), or never (413, 422)
                self.ended, self.pending = True, []
                raise
            warnings.warn(f"{len(self.pending)} frames wait for the next send: {exc}", stacklevel=2)
        except self.client._httpx.TransportError as exc:
            warnings.warn(
                f"{len(self.pending)} frames wait for the next send: {exc!r}", stacklevel=2
            )
        else:
            self.pending = []

    def end(self, completed: bool) -> None:
        """The Watch closed: what still waits is sent (a last try: it raises), and a run its
        frames did not end (the loop raised, or the frames could not go) is cancelled."""
        if not self.id:
            return  # the run was never made
        try:
            if self.pending and not self.ended:
                self.client.append_frames(self.id, self.pending)
        finally:
            try:
                if self.client.run(self.id)["status"] not in TERMINAL:
                    self.client.cancel(self.id)
            except (ApiError, self.client._httpx.HTTPError) as exc:
                warnings.warn(f"run {self.id} may stay running: {exc!r}", stacklevel=2)


class Client:
    """Talks to one NormScope server. The token defaults to $NORMSCOPE_TOKEN."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        token: str | None = None,
        timeout: float = 30.0,
    ):
        import httpx  # lazy: see the module docstring

        self._httpx = httpx
        self.base_url = base_url.rstrip("/")
        token = token if token is not None else os.environ.get("NORMSCOPE_TOKEN") or None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        self.reconnects = 0  # dropped stream connections resumed, for callers that report it

    # --- plumbing ---------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any):
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            self._raise_for(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    # --- catalog ----------------------------------------------------------------------------
    def health(self) -> dict:
        return self._json("GET", "/healthz")

    def catalog(self) -> dict:
        return self._json("GET", "/api/catalog")

    def norms(self) -> list[dict]:
        """The normalization registry: name, title, note and properties of each norm."""
        return self.catalog()["norms"]

    # --- runs -------------------------------------------------------------------------------
    def create_run(self, config: RunConfig | dict | None = None, **fields: Any) -> dict:
        """Queue a run; `fields` override `config`. Validated by the server (422 names the
        field), so a client older than the server never rejects what the server accepts."""
        if isinstance(config, RunConfig):
            config = config.model_dump()
        body = {**(config or {}), **fields}
        return self._json("POST", "/api/runs", json=body)

    def run(self, run_id: str) -> dict:
        return self._json("GET", f"/api/runs/{run_id}")

    def runs(self, status: str | None = None) -> list[dict]:
        params = {"status": status} if status else {}
        return self._json("GET", "/api/runs", params=params)["data"]

    def cancel(self, run_id: str) -> dict:
        return self._json("POST", f"/api/runs/{run_id}/cancel")

    def delete(self, run_id: str) -> None:
        self._request("DELETE", f"/api/runs/{run_id}")

    # --- sweeps -----------------------------------------------------------------------------
    def create_sweep(
        self,
        base: RunConfig | dict | None = None,
        *,
        grid: Mapping[str, list],
        seeds: int = 1,
        metric: str = "eval_acc",
        skip_invalid: bool = False,
    ) -> dict:
        """Start a sweep: `base` × `grid` (field -> values) × `seeds`; every cell validated
        by the server first (a 422 names the cell and the field)."""
        if isinstance(base, RunConfig):
            base = base.model_dump()
        body = {
            "base": base or {},
            "grid": dict(grid),
            "seeds": seeds,
            "metric": metric,
            "skip_invalid": skip_invalid,
        }
        return self._json("POST", "/api/sweeps", json=body)

    def sweep(self, sweep_id: str) -> dict:
        """A sweep with its cells and its summary (mean ± std over seeds per grid point)."""
        return self._json("GET", f"/api/sweeps/{sweep_id}")

    def sweeps(self) -> list[dict]:
        return self._json("GET", "/api/sweeps")["data"]

    def cancel_sweep(self, sweep_id: str) -> dict:
        return self._json("POST", f"/api/sweeps/{sweep_id}/cancel")

    def resume_sweep(self, sweep_id: str) -> dict:
        return self._json("POST", f"/api/sweeps/{sweep_id}/resume")

    def delete_sweep(self, sweep_id: str) -> None:
        self._request("DELETE", f"/api/sweeps/{sweep_id}")

    def sweep_csv(self, sweep_id: str) -> str:
        return self._request("GET", f"/api/sweeps/{sweep_id}/summary.csv").text

    # --- runs of a model of one's own (normcore.watch) ---------------------------------------
    def watch(
        self,
        layers: Mapping[str, Any],
        *,
        label: str,
        activation: str,
        optimizer: Any = None,
        every: int = 1,
        bins: int = 64,
        steps: int = 0,
    ) -> Watch:
        """A ``normcore.watch.Watch`` whose frames go to a new run on this server, drawn
        live like any run. ``steps`` (optional) is the planned length, for the progress bar.
        Its run ends with the Watch: ``completed`` (or ``diverged``) from the last frame, or
        ``cancelled`` when the loop raised. The dashboard's Cancel stops the loop: the next
        batch of frames raises ApiError (409) in it."""
        from normcore.watch import Watch

        run = _WatchedRun(self)  # the Watch first: it checks the layers before the run exists
        watch = Watch(
            layers,
            activation=activation,
            optimizer=optimizer,
            every=every,
            bins=bins,
            on_frames=run.send,
            on_close=run.end,
        )
        spec = dict(
            label=label, activation=activation, layers=list(layers), every=every, steps=steps
        )
        try:
            run.id = watch.run_id = self._json("POST", "/api/runs/watched", json=spec)["id"]
        except BaseException:
            run.ended = True
            watch.close()  # its hooks off the model
            raise
        return watch

    def append_frames(self, run_id: str, frames: list[dict], max_bytes: int = 48_000) -> dict:
        """Send frames of a watched run, in order, in requests of at most ``max_bytes``
        (the server's body limit is 64 KB by default); returns the run."""
        run: dict = {}
        batch: list[str] = []
        for text in (to_json(frame) for frame in frames):
            if batch and sum(map(len, batch)) + len(batch) + len(text) + 2 > max_bytes:
                run = self._post_frames(run_id, batch)
                batch = []
            batch.append(text)
        return self._post_frames(run_id, batch) if batch else run

    def _post_frames(self, run_id: str, texts: list[str]) -> dict:
        """One request; a batch above the server's body limit (413) goes in halves."""
        body = "[" + ",".join(texts) + "]"
        try:
            return self._json(
                "POST",
                f"/api/runs/{run_id}/frames",
                content=body,
                headers={"content-type": "application/json"},
            )
        except ApiError as exc:
            if exc.status != 413:
                raise
            if len(texts) == 1:  # no smaller batch can help
                raise ApiError(
                    413,
                    f"one frame is {len(body):,} bytes, above the "
                    "server's body limit: raise NORMSCOPE_MAX_BODY_BYTES "
                    "there, or watch fewer layers or bins",
                    exc.url,
                ) from None
        half = len(texts) // 2
        self._post_frames(run_id, texts[:half])
        return self._post_frames(run_id, texts[half:])

    def wait(self, run_id: str, *, timeout: float | None = None, poll: float = 0.25) -> dict:
        """Block until the run ends (completed, diverged, failed, cancelled, interrupted)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = self.run(run_id)
            if run["status"] in TERMINAL:
                return run
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"run {run_id!r} still {run['status']!r} after timeout={timeout}s"
                )
            time.sleep(poll)
            poll = min(poll * 1.5, 2.0)

    # --- frames and exports -----------------------------------------------------------------
    def frames(
        self,
        run_id: str,
        *,
        since_seq: int | None = None,
        max_points: int | None = None,
        layers: Iterable[str] | None = None,
    ) -> dict:
        """Stored frames: {data, count, total, dropped, first_seq, last_seq} (downsampled by
        the server to `max_points`, first and last frames kept)."""
        params: dict[str, Any] = {}
        if since_seq is not None:
            params["since_seq"] = since_seq
        if max_points is not None:
            params["max_points"] = max_points
        if layers is not None:
            params["layers"] = ",".join(layers)
        return self._json("GET", f"/api/runs/{run_id}/frames", params=params)

    def export(self, run_id: str, format: str = "jsonl", path: str | Path | None = None) -> bytes:
        """Raw frames as CSV or JSON lines; also written to `path` when given."""
        body = self._request("GET", f"/api/runs/{run_id}/export", params={"format": format})
        if path is not None:
            Path(path).write_bytes(body.content)
        return body.content

    def report(self, run_ids: Iterable[str]) -> str:
        """The self-contained HTML report of one run, or a comparison of several."""
        ids = list(run_ids)
        if len(ids) == 1:
            return self._request("GET", f"/api/runs/{ids[0]}/report.html").text
        return self._request("GET", "/api/report.html", params={"ids": ",".join(ids)}).text

    # --- the live stream --------------------------------------------------------------------
    def events(
        self,
        run_id: str,
        *,
        last_event_id: str | None = None,
        max_retries: int = 5,
        idle_timeout: float = 60.0,
    ) -> Iterator[Event]:
        """Every event of the run's stream until the run ends, each exactly once.

        A connection that drops (or ends before a terminal status) is reopened with
        `Last-Event-ID`; `max_retries` consecutive reconnects that bring no new event give up.
        A connection silent for `idle_timeout` seconds counts as dropped: the server sends a
        keep-alive every NORMSCOPE_KEEPALIVE_S (15 s), so silence means a dead link (a NAT
        or proxy that forgot the connection without resetting it).
        """
        httpx = self._httpx
        path = f"/api/runs/{run_id}/events"
        failures, delay = 0, 0.1
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_event_id is not None:
                headers["Last-Event-ID"] = last_event_id
            progressed = False
            try:
                timeout = httpx.Timeout(self._http.timeout.connect, read=idle_timeout)
                with self._http.stream("GET", path, headers=headers, timeout=timeout) as resp:
                    if resp.status_code >= 400:
                        resp.read()
                        self._raise_for(resp)
                    for name, event_id, data, retry in parse_sse(resp.iter_lines()):
                        if retry is not None:
                            delay = retry / 1000
                        if event_id is not None:
                            last_event_id = event_id
                        event = Event(name, event_id, json.loads(data))
                        # Only a frame is progress: a server may repeat the status on connect.
                        progressed = progressed or name == "frame"
                        yield event
                        if name == "status" and event.data.get("status") in TERMINAL:
                            return
            except (httpx.TransportError, httpx.StreamError) as exc:
                error: Exception | None = exc
            else:
                error = None  # closed by the server before the run ended: resume as well
            failures = 0 if progressed else failures + 1
            if failures > max_retries:
                raise ConnectionError(
                    f"stream of run {run_id!r} lost after {max_retries} retries: {error}"
                )
            self.reconnects += 1
            time.sleep(delay * (2**failures if failures else 1))

    def iter_frames(
        self, run_id: str, *, since_seq: int | None = None, **stream: Any
    ) -> Iterator[dict]:
        """The run's frames in order, live, from `since_seq` on (all of them by default);
        `stream` takes `events`' max_retries and idle_timeout."""
        last = str(since_seq - 1) if since_seq else None
        for event in self.events(run_id, last_event_id=last, **stream):
            if event.event == "frame":
                yield event.data

    def _raise_for(self, response) -> None:
        try:
            detail = response.json().get("detail", response.text)
        except (ValueError, AttributeError):
            detail = response.text
        raise ApiError(response.status_code, detail, str(response.url))
