"""One exception family for the service; each carries its HTTP status, one handler answers.

Deep code (store, executor, limits) raises these without knowing about HTTP responses;
`install(app)` turns them into JSON. Messages name the offending field and value.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
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


class SweepNotFound(NormScopeError):
    status_code = 404

    def __init__(self, sweep_id: str):
        super().__init__(f"sweep {sweep_id!r} not found")


class ClaimNotFound(NormScopeError):
    status_code = 404


class ClaimConflict(NormScopeError):
    """The claim is already running: one claim run at a time per claim."""

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


def json_safe(value: Any) -> Any:
    """`value` with every NaN/Infinity replaced by its name ("nan", "inf", "-inf") and every
    lone surrogate escaped ("\\ud800").

    Python's json module parses a body's bare NaN/Infinity and "\\ud800" escapes, and a 422
    echoes the offending input back; strict JSON cannot encode the first and UTF-8 not the
    second, so without this the error answer itself would fail (a 500 for a bad request)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NormScopeError)
    detail = json_safe(jsonable_encoder(exc.detail()))
    return JSONResponse({"detail": detail}, exc.status_code, headers=exc.headers)


async def _handle_validation(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own 422 shape, made safe for non-finite inputs."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": json_safe(jsonable_encoder(exc.errors()))}, 422)


def install(app: FastAPI) -> None:
    """Register the single handler for the whole family, and the JSON-safe 422."""
    app.add_exception_handler(NormScopeError, _handle)
    app.add_exception_handler(RequestValidationError, _handle_validation)
