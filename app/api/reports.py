"""Reports: one run, or a comparison of several, as one self-contained HTML file."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from app.api.params import RunId
from app.deps import StoreDep
from app.errors import FieldError
from app.reports.html import from_store, render_report

router = APIRouter(tags=["reports"])

MAX_COMPARED = 8  # runs in one comparison: each adds a column of panels and ~100 KB


# 1 to MAX_COMPARED comma-separated ids, none blank (the check below, as a schema can say it)
IDS = rf"^\s*[^,\s][^,]*(,\s*[^,\s][^,]*){{0,{MAX_COMPARED - 1}}}$"


def _html(html: str, name: str) -> HTMLResponse:
    # inline: a browser shows it; the filename is what "save as" offers
    headers = {"Content-Disposition": f'inline; filename="{name}.html"'}
    return HTMLResponse(html, headers=headers)


@router.get("/runs/{run_id}/report.html", response_class=HTMLResponse)
def read_run_report(run_id: RunId, store: StoreDep) -> HTMLResponse:
    """The run's report: config, curves, drift heatmaps, saturation map, gradient norms."""
    return _html(render_report(from_store(store, [run_id])), f"normscope-{run_id}")


@router.get("/report.html", response_class=HTMLResponse)
def read_comparison_report(
    store: StoreDep,
    ids: Annotated[
        str, Query(max_length=1000, pattern=IDS, description="run ids, comma-separated")
    ],
) -> HTMLResponse:
    """Several runs compared on shared axes: ?ids=a,b,c (at most 8)."""
    run_ids = list(dict.fromkeys(i.strip() for i in ids.split(",") if i.strip()))
    if not run_ids or len(run_ids) > MAX_COMPARED:
        raise FieldError(
            ("query", "ids"),
            f"ids needs 1 to {MAX_COMPARED} comma-separated run ids; got {len(run_ids)}",
            ids,
        )
    return _html(render_report(from_store(store, run_ids)), "normscope-comparison")
