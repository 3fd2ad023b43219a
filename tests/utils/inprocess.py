"""The app in-process: its lifespan, and an httpx client that calls it without a socket.

Starlette's TestClient does the same but warns unless httpx2 is installed, and this project
uses httpx; the real uvicorn server (tests/utils/server.py) stays for streams, faults and the
browser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI


@asynccontextmanager
async def in_process(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Start the app's lifespan, yield a client of it, then shut the app down."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://normscope.test") as c:
            yield c
