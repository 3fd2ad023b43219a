"""The HTTP API: one router per resource, all under /api and behind the token check."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request

from app.api import catalog, claims, frames, jobs, reports, runs, sweeps, watched
from app.contract import methods_of
from app.deps import require_token

api_router = APIRouter(prefix="/api", dependencies=[Depends(require_token)])
for module in (catalog, runs, watched, frames, jobs, reports, claims, sweeps):
    api_router.include_router(module.router)


@api_router.api_route(
    "/{path:path}",
    include_in_schema=False,
    methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
)
def no_such_route(path: str, request: Request) -> None:
    """Last resort under /api: a JSON 404, never the dashboard's index.html (the frontend's
    deep-link fallback would answer a browser's GET otherwise); a 405 listing every method
    of the path where the path exists (routing alone would list one route's)."""
    allowed = methods_of(request.app, request.url.path)
    if allowed:
        raise HTTPException(
            405,
            f"{request.method} is not a method of /api/{path}: {', '.join(sorted(allowed))} are",
            headers={"Allow": ", ".join(sorted(allowed))},
        )
    raise HTTPException(404, f"no API route /api/{path}")
