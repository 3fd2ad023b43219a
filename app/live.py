"""Live delivery: per-run channels that wake subscribers, and the SSE event generator.

Nothing is queued per subscriber. A subscriber remembers the last seq it sent and, when woken,
takes the frames after it from the channel's short in-memory tail (shared by all viewers of a
run) or, when it has fallen further behind, from the store. So a client that stops reading
holds nothing but its own position: it cannot slow the training, the recorder or other
clients, and memory stays bounded. Resuming with Last-Event-ID is the same read from the store.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi.sse import format_sse_event

from app.schemas import Run
from app.store import TERMINAL, Store, frame_text


class Channel:
    """One run's wake-up signal, latest run row, and tail of recently committed frames."""

    def __init__(self, tail: int):
        self.event = asyncio.Event()
        self.run: dict[str, Any] | None = None
        self.version = 0  # bumped when `run` changes
        self.seqs: list[int] = []
        self.texts: list[str] = []
        self.tail = tail
        self.subscribers = 0

    def push(self, frames: list[tuple[int, str]], run: dict[str, Any] | None) -> None:
        for seq, text in frames:
            if self.seqs and seq <= self.seqs[-1]:
                continue  # the tail stays strictly increasing
            self.seqs.append(seq)
            self.texts.append(text)
        if len(self.seqs) > 2 * self.tail:  # trim in bulk: amortized O(1) per frame
            del self.seqs[: -self.tail], self.texts[: -self.tail]
        if run is not None:
            self.run, self.version = run, self.version + 1
        woken, self.event = self.event, asyncio.Event()
        woken.set()

    def after(self, seq: int) -> list[tuple[int, str]] | None:
        """Frames with seq > `seq` from the tail, or None if the tail starts too late."""
        if not self.seqs or self.seqs[0] > seq + 1:
            return None
        i = bisect.bisect_right(self.seqs, seq)
        return list(zip(self.seqs[i:], self.texts[i:], strict=True))


class Hub:
    """The channels of the runs that have viewers; lives on the server's event loop."""

    def __init__(self, tail: int = 512):
        self.tail = tail
        self.channels: dict[str, Channel] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        # set, then replaced, whenever a sweep's cell has ended (its metric stored): a sweep's
        # stream takes it before reading the store, then waits on it
        self.sweeps_changed = asyncio.Event()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def publish_threadsafe(
        self, run_id: str, frames: list[tuple[int, str]], run: dict[str, Any] | None
    ) -> None:
        """Called by the recorder thread after a commit."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.publish, run_id, frames, run)

    def publish(
        self, run_id: str, frames: list[tuple[int, str]], run: dict[str, Any] | None
    ) -> None:
        channel = self.channels.get(run_id)
        if channel is not None:  # no viewers: nothing to keep, the store has it all
            channel.push(frames, run)

    def sweep_changed_threadsafe(self) -> None:
        """Called by the sweeps' scheduler thread once it stored an ended cell's metric."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._sweep_changed)

    def _sweep_changed(self) -> None:
        woken, self.sweeps_changed = self.sweeps_changed, asyncio.Event()
        woken.set()

    def join(self, run_id: str) -> Channel:
        channel = self.channels.setdefault(run_id, Channel(self.tail))
        channel.subscribers += 1
        return channel

    def leave(self, run_id: str, channel: Channel) -> None:
        channel.subscribers -= 1
        if channel.subscribers <= 0 and self.channels.get(run_id) is channel:
            del self.channels[run_id]


def _read(store: Store, run_id: str, after: int, limit: int) -> list[tuple[int, str]]:
    return [(seq, frame_text(blob)) for seq, blob in store.read_frames(run_id, after, limit)]


def _frames_chunk(frames: list[tuple[int, str]]) -> bytes:
    """Frame events as one chunk, one socket write for a whole burst. Same bytes as
    fastapi.sse.format_sse_event(event="frame", data_str=text, id=seq): a wire JSON text is a
    single line (json.dumps escapes newlines)."""
    return "".join(f"event: frame\ndata: {text}\nid: {seq}\n\n" for seq, text in frames).encode()


async def follow(
    store: Store,
    hub: Hub,
    run_id: str,
    after_seq: int,
    keepalive_s: float,
    page: int = 500,
) -> AsyncIterator[bytes]:
    """The SSE byte stream of one run: frames after `after_seq`, a status event on every
    change, the final status event last; keep-alive comments while nothing happens."""
    channel = hub.join(run_id)
    try:
        seen_version = channel.version
        run = await anyio.to_thread.run_sync(store.get_run, run_id)
        sent_status = None
        last = after_seq
        while run is not None:
            woken = channel.event  # any publish from here on sets it
            if channel.version != seen_version and channel.run is not None:
                run, seen_version = channel.run, channel.version
            # Frames are read *after* taking the status: a terminal status was committed
            # after the run's last frame, so this drain then reaches the end.
            while True:
                frames = channel.after(last)
                if not frames and run["status"] in TERMINAL:
                    frames = None  # a status read from the store can be ahead of the tail
                if frames is None:  # behind the shared tail: read a page from the store
                    frames = await anyio.to_thread.run_sync(_read, store, run_id, last, page)
                if not frames:
                    break
                yield _frames_chunk(frames)
                last = frames[-1][0]
            if run["status"] != sent_status:
                data = Run.model_validate(run).model_dump_json()
                yield format_sse_event(event="status", data_str=data)
                sent_status = run["status"]
            if sent_status in TERMINAL:
                return
            try:
                await asyncio.wait_for(woken.wait(), keepalive_s)
            except TimeoutError:
                yield format_sse_event(comment="keep-alive")
                run = await anyio.to_thread.run_sync(store.get_run, run_id)  # deleted?
    finally:
        hub.leave(run_id, channel)
