"""Response models of the API: what clients get, validated and documented in OpenAPI."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

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


# -- runs of a model of one's own (normcore.watch), trained by the client ----------------------
Name = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Number = Annotated[float, Field(allow_inf_nan=False)] | None  # non-finite: null
Finite = Annotated[float, Field(allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, le=2**63 - 1)]  # SQLite's integers are 64-bit


class WatchedRunIn(BaseModel):
    """A run the client trains: its frames come from ``POST /api/runs/{id}/frames``."""

    model_config = ConfigDict(extra="forbid")

    label: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    activation: Literal["sigmoid", "tanh", "relu", "gelu"]
    layers: Annotated[list[Name], Field(min_length=1, max_length=256)]
    every: int = Field(1, ge=1, le=1_000_000)  # probing every n steps
    steps: int = Field(0, ge=0, le=10**12)  # the planned steps, 0: open-ended


class HistIn(BaseModel):
    lo: Finite
    hi: Finite
    counts: Annotated[list[Count | None], Field(min_length=1, max_length=4096)]
    under: Count | None = 0
    over: Count | None = 0


class LayerIn(BaseModel):
    """A frame's layer as normcore.frames documents it; what the dashboard draws."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    hist: HistIn
    nonfinite: Count | None = 0
    mean: Number = None
    std: Number = None
    p15: Number = None
    p50: Number = None
    p85: Number = None
    sat: Number = None
    sat_pre: Number = None
    grad_norm: Number = None
    act_grad_norm: Number = None
    weight_norm: Number = None
    update_ratio: Number = None
    g_mean: Number = None
    g_std: Number = None
    b_mean: Number = None
    b_std: Number = None
    w1_prev: Number = None
    w1_first: Number = None
    sat_graded: Number = None  # 1 - mean slope / peak slope (normcore.stats)
    out_mean: Number = None  # mean and spread of the activation's outputs
    out_std: Number = None


class FrameIn(BaseModel):
    """One frame of a watched run (normcore.frames); ``seq`` counts from 0 without gaps."""

    model_config = ConfigDict(extra="forbid")

    seq: Count
    step: Count
    time: Finite
    status: Literal["running", "completed", "diverged"]
    device: Annotated[str, StringConstraints(max_length=32)] | None = None
    loss: Number = None
    acc: Number = None
    lr: Number = None
    steps_per_s: Number = None
    eval: dict[str, Number] | None = None
    val: dict[str, Number] | None = None  # the validation split's evaluation (normcore.frames)
    ics: list[dict[str, Any]] | None = None
    layers: Annotated[list[LayerIn], Field(min_length=1, max_length=256)]
