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

from normcore import config as C


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


# RunConfig's own bounds (normcore.config): a 422 at one of these is a server limit exceeded.
_LIBRARY_BOUNDS = {
    "steps": C.MAX_STEPS,
    "width": C.MAX_WIDTH,
    "depth": C.MAX_DEPTH,
    "batch_size": C.MAX_BATCH,
}


def limit_message(name: str, value: Any, limit: int) -> str:
    """The one message for a value above a server limit (the form shows the same limit)."""
    return f"{name} {value} is above this server's limit of {limit} (NORMSCOPE_MAX_{name.upper()})"


def _one_voice(error: dict[str, Any], limits: dict[str, int]) -> dict[str, Any]:
    """A pydantic error as the server says it: its own limit where it has one (pydantic's
    bound is the library's, looser), without pydantic's "Value error, " prefix."""
    loc, value = error.get("loc", ()), error.get("input")
    name = loc[-1] if loc and loc[0] == "body" else None
    bound = (error.get("ctx") or {}).get("le")
    if name in limits and bound is not None and bound == _LIBRARY_BOUNDS.get(name):
        return {
            **error,
            "msg": limit_message(name, value, limits[name]),
            "ctx": {"le": limits[name]},
        }
    msg = error.get("msg", "")
    if isinstance(msg, str) and msg.startswith("Value error, "):
        return {**error, "msg": msg.removeprefix("Value error, ")}
    return error


async def _handle_validation(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own 422 shape in the server's words (`_one_voice`), safe for non-finite
    inputs."""
    assert isinstance(exc, RequestValidationError)
    settings = getattr(request.app.state, "settings", None)
    limits = settings.limits() if settings is not None else {}
    errors = [_one_voice(e, limits) for e in exc.errors()]
    return JSONResponse({"detail": json_safe(jsonable_encoder(errors))}, 422)


def install(app: FastAPI) -> None:
    """Register the single handler for the whole family, and the JSON-safe 422."""
    app.add_exception_handler(NormScopeError, _handle)
    app.add_exception_handler(RequestValidationError, _handle_validation)
