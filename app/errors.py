"""One exception family for the service; each carries its HTTP status, one handler answers.

Deep code (store, executor, limits) raises these without knowing about HTTP responses;
`install(app)` turns them into JSON. Messages name the offending field and value.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


class NormScopeError(Exception):
    """Base: a request the service cannot fulfil, with the status that says why."""

    status_code = 400

    def __init__(self, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.headers = headers

    def detail(self) -> Any:
        return self.message


class RunNotFound(NormScopeError):
    status_code = 404

    def __init__(self, run_id: str):
        super().__init__(f"run {run_id!r} not found")


class RunConflict(NormScopeError):
    """The run exists but is in a state that does not allow the operation."""

    status_code = 409


class QueueFull(NormScopeError):
    status_code = 429

    def __init__(self, queued: int, retry_after_s: int):
        super().__init__(
            f"the run queue is full ({queued} runs waiting); retry in {retry_after_s} s",
            headers={"Retry-After": str(retry_after_s)},
        )


class FieldError(NormScopeError):
    """A value pydantic accepted but the server's settings do not (a limit, a layer name).

    Answers in FastAPI's validation shape, so clients handle one format for every 422:
    {"detail": [{"loc": ["body", "steps"], "msg": ..., "type": ..., "input": ...}]}.
    """

    status_code = 422

    def __init__(self, loc: tuple[str, ...], message: str, value: Any, kind: str = "value_error"):
        super().__init__(message)
        self.loc = loc
        self.value = value
        self.kind = kind

    def detail(self) -> Any:
        loc = list(self.loc)
        return [{"loc": loc, "msg": self.message, "type": self.kind, "input": self.value}]


class AuthError(NormScopeError):
    status_code = 401

    def __init__(self, message: str):
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NormScopeError)
    return JSONResponse({"detail": exc.detail()}, exc.status_code, headers=exc.headers)


def install(app: FastAPI) -> None:
    """Register the single handler for the whole family."""
    app.add_exception_handler(NormScopeError, _handle)
