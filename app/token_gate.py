"""The token check before routing: every request under /api without the token is answered 401,
whatever its method or path (HEAD and OPTIONS, which routing would answer 405, and /api
itself, which it would redirect to /api/), so nothing about the API shows without it."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.deps import token_problem


class TokenGate:
    """ASGI middleware (pure ASGI: the event stream passes through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == "/api" or path.startswith("/api/")):
            request = Request(scope)
            settings = request.app.state.settings
            problem = token_problem(
                settings,
                request.headers.get("authorization"),
                request.method,
                request.query_params.get("token"),
            )
            if problem:
                response = JSONResponse(
                    {"detail": problem}, 401, headers={"WWW-Authenticate": "Bearer"}
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
