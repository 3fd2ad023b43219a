"""The app in-process: its lifespan, and an httpx client that calls it without a socket.

Starlette's TestClient does the same but warns unless httpx2 is installed, and this project
uses httpx; the real uvicorn server (tests/utils/server.py) stays for streams, faults and the
browser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio.from_thread
import httpx
from fastapi import FastAPI


@asynccontextmanager
async def in_process(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Start the app's lifespan, yield a client of it, then shut the app down."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://normscope.test") as c:
            yield c


class InProcessClient:
    """A synchronous client of an app running in-process: its lifespan and its requests run
    on an event loop in a helper thread (anyio's blocking portal), as in Starlette's
    TestClient. Use as a context manager; ``request``, ``get``, ``post`` answer httpx
    responses."""

    def __init__(self, app: FastAPI):
        self.app = app

    def __enter__(self) -> InProcessClient:
        self._portal_cm = anyio.from_thread.start_blocking_portal()
        self._portal = self._portal_cm.__enter__()
        self._client_cm = self._portal.wrap_async_context_manager(in_process(self.app))
        self._client = self._client_cm.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._client_cm.__exit__(*exc)
        finally:
            self._portal_cm.__exit__(*exc)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self._portal.call(partial(self._client.request, method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)
