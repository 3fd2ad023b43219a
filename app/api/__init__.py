"""The HTTP API: one router per resource, all under /api and behind the token check."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from app.api import catalog, claims, frames, jobs, reports, runs
from app.deps import require_token

api_router = APIRouter(prefix="/api", dependencies=[Depends(require_token)])
for module in (catalog, runs, frames, jobs, reports, claims):
    api_router.include_router(module.router)
