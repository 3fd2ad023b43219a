"""Dependencies: the store, executor, hub and settings live on app.state (set by the
lifespan), never in module globals, so each app — and each test — has its own."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.errors import AuthError
from app.jobs.base import Executor
from app.live import Hub
from app.services.claims import ClaimService
from app.services.sweeps import SweepService
from app.settings import Settings
from app.store import Store


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_executor(request: Request) -> Executor:
    return request.app.state.executor


def get_hub(request: Request) -> Hub:
    return request.app.state.hub


def get_claims(request: Request) -> ClaimService:
    return request.app.state.claims


def get_sweeps(request: Request) -> SweepService:
    return request.app.state.sweeps


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
ExecutorDep = Annotated[Executor, Depends(get_executor)]
HubDep = Annotated[Hub, Depends(get_hub)]
ClaimsDep = Annotated[ClaimService, Depends(get_claims)]
SweepsDep = Annotated[SweepService, Depends(get_sweeps)]

_bearer = HTTPBearer(auto_error=False, description="NORMSCOPE_TOKEN, when the server has one")


def token_problem(
    settings: Settings, authorization: str | None, method: str, query_token: str | None
) -> str | None:
    """Why a request may not use /api (None: it may). With a token configured, demand it: the
    Authorization header, or on GET requests a `?token=` (EventSource, download links and new
    tabs cannot send headers)."""
    if settings.token is None:
        return None
    scheme, _, value = (authorization or "").partition(" ")
    given = value.strip() if scheme.lower() == "bearer" and value.strip() else None
    if given is None and method == "GET":
        given = query_token
    if given is None:
        return "this server needs a token: send 'Authorization: Bearer <token>'"
    expected = settings.token.get_secret_value().encode()
    if not hmac.compare_digest(given.encode(), expected):
        return "the token is not valid"
    return None


def require_token(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """The token check as the OpenAPI document shows it (HTTP bearer); ``TokenGate`` has
    already made it, before routing."""
    header = f"Bearer {credentials.credentials}" if credentials else None
    problem = token_problem(settings, header, request.method, request.query_params.get("token"))
    if problem:
        raise AuthError(problem)
