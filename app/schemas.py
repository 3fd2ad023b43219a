"""Response models of the API: what clients get, validated and documented in OpenAPI."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

RunStatus = Literal[
    "queued", "running", "completed", "diverged", "failed", "cancelled", "interrupted"
]


class FinalMetrics(BaseModel):
    loss: float | None = None
    acc: float | None = None
    eval_loss: float | None = None
    eval_acc: float | None = None


class Run(BaseModel):
    """A run: its config, where it stands, and (once ended) its final metrics."""

    id: str
    status: RunStatus
    config: dict[str, Any]
    label: str
    device: str | None = None
    error: str | None = None
    created_at: float  # unix seconds, like a frame's `time`
    started_at: float | None = None
    finished_at: float | None = None
    step: int = 0
    steps: int
    frame_count: int = 0
    last_seq: int = -1  # the seq of the newest stored frame (-1: none yet)
    final: FinalMetrics | None = None  # set when the run has ended
    metrics: FinalMetrics | None = None  # the latest metrics, also while running


class RunList(BaseModel):
    data: list[Run]
    count: int  # all runs matching the filter, not only this page


class FramesPage(BaseModel):
    """Frames of a run, downsampled to at most max_points (first and last always kept)."""

    data: list[dict[str, Any]]
    count: int  # frames in `data`
    total: int  # frames with seq >= since_seq in the store
    dropped: int  # total - count: left out by downsampling (evenly spread)
    first_seq: int | None
    last_seq: int | None


class Job(BaseModel):
    run_id: str
    pid: int | None
    slot: int
    started_at: float


class JobList(BaseModel):
    """What the executor is doing now: running jobs, the waiting queue, its capacity."""

    data: list[Job]
    count: int
    queued: list[str]
    slots: int
    queue_length: int
    warm_workers: int


class Preset(BaseModel):
    id: str
    title: str
    description: str
    runs: list[dict[str, Any]]  # partial RunConfigs over the defaults; two or more: Compare


class Catalog(BaseModel):
    norms: list[dict[str, Any]]
    models: list[str]
    activations: list[str]
    datasets: list[str]
    batch_orders: list[str]
    optimizers: list[str]
    placements: list[str]
    inits: list[str]
    cells: list[str]
    devices: list[str]
    limits: dict[str, int]
    defaults: dict[str, Any]
    presets: list[Preset]


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    device: str
    auth: bool = Field(description="whether /api needs a bearer token")
