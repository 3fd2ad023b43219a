"""create_app(settings): the NormScope service — API routers, lifespan, the dashboard.

Run it with `normscope serve`, or `uvicorn --factory app.main:create_app`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from app import contract, errors
from app.api import api_router, health
from app.jobs import make_executor
from app.jobs.recorder import Recorder
from app.live import Hub
from app.settings import Settings
from app.store import Store
from app.token_gate import TokenGate

log = logging.getLogger("normscope")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI app for these settings (from NORMSCOPE_* variables when None)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store(settings.db_path)
        left = store.mark_interrupted("the server stopped while the run was active")
        if left:
            log.warning("marked %d runs interrupted: %s", len(left), ", ".join(left))
        hub = Hub()
        hub.bind(asyncio.get_running_loop())
        recorder = Recorder(store, hub.publish_threadsafe)
        recorder.start()
        executor = make_executor(settings, recorder)
        executor.start()
        app.state.settings, app.state.store = settings, store
        app.state.hub, app.state.executor, app.state.recorder = hub, executor, recorder
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(executor.stop)  # running runs -> interrupted
            await anyio.to_thread.run_sync(recorder.stop)
            store.mark_interrupted("the server stopped before the run started")
            store.close()

    app = FastAPI(
        title="NormScope",
        summary="Watch what normalization does inside a neural network, live.",
        lifespan=lifespan,
        max_body_size=settings.max_body_bytes,
    )
    app.state.settings = settings  # also before start-up, for dependency overrides in tests
    errors.install(app)
    app.add_middleware(TokenGate)
    app.include_router(health.router)
    app.include_router(api_router)
    contract.install(
        app, settings.limits(), auth=settings.token is not None
    )  # the OpenAPI document with every error answer
    if (settings.frontend_dir / "index.html").is_file():
        app.frontend("/", directory=settings.frontend_dir)
    return app
