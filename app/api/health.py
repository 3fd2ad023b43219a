"""Liveness for load balancers and docker's healthcheck, plus the vendored plotly.js."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import plotly
import torch
from fastapi import APIRouter
from fastapi.responses import FileResponse

from app.deps import SettingsDep
from app.schemas import Health

router = APIRouter(tags=["health"])

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _version() -> str:
    try:
        return version("normscope")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "0+unknown"


@router.get("/healthz")
def read_health(settings: SettingsDep) -> Health:
    """The server answers; which version, which device new runs get by default."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return Health(version=_version(), device=device, auth=settings.token is not None)


@router.get("/vendor/plotly.min.js", include_in_schema=False)
def read_plotly() -> FileResponse:
    """plotly.js from the installed plotly package: no CDN, works offline."""
    return FileResponse(
        PLOTLY_JS, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"}
    )
