"""The HTTP API: one router per resource, all under /api and behind the token check."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException

from app.api import catalog, claims, frames, jobs, reports, runs, sweeps, watched
from app.deps import require_token

api_router = APIRouter(prefix="/api", dependencies=[Depends(require_token)])
for module in (catalog, runs, watched, frames, jobs, reports, claims, sweeps):
    api_router.include_router(module.router)


@api_router.api_route(
    "/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
)
def no_such_route(path: str) -> None:
    """Last resort under /api: a JSON 404, never the dashboard's index.html (the frontend's
    deep-link fallback would answer a browser's GET otherwise)."""
    raise HTTPException(404, f"no API route /api/{path}")
