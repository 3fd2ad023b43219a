"""create_app(settings): the NormScope service — API routers, lifespan, the dashboard.

Run it with `normscope serve`, or `uvicorn --factory app.main:create_app`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from app import contract, errors
from app.api import api_router, health
from app.jobs import make_executor
from app.jobs.base import Executor, Sink
from app.live import Hub
from app.services.engine import start_engine
from app.settings import Settings
from app.token_gate import TokenGate


def create_app(
    settings: Settings | None = None,
    *,
    make_executor: Callable[[Settings, Sink], Executor] = make_executor,
) -> FastAPI:
    """The ASGI app for these settings (from NORMSCOPE_* variables when None). Tests of the
    API that need no training pass an executor that trains nothing (tests/utils/fakes.py)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub = Hub()
        hub.bind(asyncio.get_running_loop())
        engine = start_engine(
            settings,
            hub.publish_threadsafe,
            sweep_changed=hub.sweep_changed_threadsafe,
            make_executor=make_executor,
        )
        app.state.settings, app.state.hub, app.state.store = settings, hub, engine.store
        app.state.executor, app.state.recorder = engine.executor, engine.recorder
        app.state.claims, app.state.sweeps = engine.claims, engine.sweeps
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(engine.stop)

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
