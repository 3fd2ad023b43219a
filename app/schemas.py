"""Response models of the API: what clients get, validated and documented in OpenAPI."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from normcore.frames import RunStatus


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
    rerun_of: str | None = None  # the run this one re-runs with the same config
    layers: list[str] | None = None  # its layers' names: GET /api/runs/{id} only, not lists


class RunList(BaseModel):
    data: list[Run]
    count: int  # all runs matching the filter, not only this page


class FramesPage(BaseModel):
    """Frames of a run, downsampled to about max_points: the loss's extremes, every evaluation,
    status frame, the first and the last kept (app/series.frame_selection)."""

    data: list[dict[str, Any]]
    count: int  # frames in `data`
    total: int  # frames with seq >= since_seq in the store
    dropped: int  # total - count: left out by downsampling (app/downsample.py)
    first_seq: int | None
    last_seq: int | None


class Job(BaseModel):
    run_id: str
    pid: int | None
    slot: int  # the first slot it holds (a GPU's index, or a core's on a CPU)
    slots: list[int] = []  # every slot it holds: on a CPU one core per intra-op thread
    threads: int | None = None  # intra-op threads it was given
    torch_threads: int | None = None  # what torch.get_num_threads() says in its worker
    started_at: float
    node: str | None = None  # where it runs, on a Ray cluster (the node's address)


class JobList(BaseModel):
    """What the executor is doing now: running jobs, the waiting queue, its capacity."""

    data: list[Job]
    count: int
    queued: list[str]
    slots: int  # capacity: GPUs, or on a CPU the cores runs may use
    slots_used: int | None = None
    device: str | None = None  # what a slot is: "cuda" (a GPU) or "cpu" (a core)
    queue_length: int
    warm_workers: int
    warm_ready: int | None = None  # warm workers whose warm-up is done


class Preset(BaseModel):
    id: str
    title: str
    description: str
    runs: list[dict[str, Any]]  # partial RunConfigs over the defaults; two or more: Compare


class Statuses(BaseModel):
    """A run's statuses (normcore.frames): active ones change again, terminal ones never."""

    active: list[str]
    terminal: list[str]


class SweepPreset(BaseModel):
    id: str
    title: str
    description: str
    base: dict[str, Any]
    grid: dict[str, list[Any]]
    seeds: int
    metric: str


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
    seq_tasks: list[str] = []  # the rnn's sequence task (RunConfig.seq_task)
    norm_terms: list[str] = []  # where the rnn's norm acts (RunConfig.norm_terms)
    devices: list[str]
    limits: dict[str, int]
    defaults: dict[str, Any]
    presets: list[Preset]
    statuses: Statuses
    sweep_presets: list[SweepPreset] = []
    sweep_metrics: dict[str, str] = {}  # name -> what it measures
    max_sweep_cells: int = 0
    # per activation: {"rule": "abs_above" | "at_or_below", "at": x}, what counts as saturated
    saturation: dict[str, dict[str, Any]] = {}
    help: dict[str, str] = {}  # what each RunConfig field means (normcore.config.FIELD_HELP)


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
    every: int = Field(1, ge=1, le=1_000_000, strict=True)  # probing every n steps
    steps: int = Field(0, ge=0, le=10**12, strict=True)  # the planned steps, 0: open-ended


class HistIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lo: Finite
    hi: Finite = Field(description="above lo")
    counts: Annotated[list[Count | None], Field(min_length=1, max_length=4096)]
    under: Count | None = 0
    over: Count | None = 0

    @model_validator(mode="after")
    def _ordered(self) -> HistIn:
        if not self.lo < self.hi:
            raise ValueError(f"hist: lo ({self.lo}) must be below hi ({self.hi})")
        return self


class EvalIn(BaseModel):
    """A frame's held-out evaluation (normcore.frames): these keys only, each optional."""

    model_config = ConfigDict(extra="forbid")

    loss: Number = None
    acc: Number = None
    loss_batch: Number = None  # norms with running statistics: with batch statistics
    acc_batch: Number = None


class IcsIn(BaseModel):
    """One layer's internal covariate shift (normcore.drift.ics)."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    l2: Number = None
    cos: Number = None


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
    sat_graded: Number = None  # 1 - mean slope / peak slope (normcore.probe.stats)
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
    eval: EvalIn | None = None
    val: EvalIn | None = None  # the validation split's evaluation (normcore.frames)
    ics: Annotated[list[IcsIn], Field(max_length=256)] | None = None
    layers: Annotated[list[LayerIn], Field(min_length=1, max_length=256)]


# --- claims -----------------------------------------------------------------------------------

ClaimRunStatus = Literal["queued", "running", "completed", "failed", "interrupted"]
# normcore.claims.protocol.CLAIM_VERDICTS, spelled out for the OpenAPI document and mypy
# (tests/app/test_claims_published.py holds the two equal)
Verdict = Literal[
    "reproduced",
    "mixed",
    "not reproduced",
    "no difference measured",
    "degenerate baseline",
    "unmeasured",
]


class ClaimRun(BaseModel):
    """One execution of a claim's experiment; `result` once it completed."""

    id: str
    claim_id: str
    quick: bool
    status: ClaimRunStatus
    verdict: Verdict | None = None
    error: str | None = None
    run_ids: list[str]  # the stored runs of its arms (GET /api/runs/{id})
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    # {id, title, claim, experiment, criterion, verdict, checks, numbers, series,
    #  run_configs: [{arm, label, config, run_id, status, frames}], quick, duration_s, run_at}
    result: dict[str, Any] | None = None
    # True: the published result stored with the code (`normscope claims --full`, setting
    # claim_results), not run by this server; result.run_at says where and when it ran
    published: bool = False


class Claim(BaseModel):
    id: str
    title: str
    claim: str
    experiment: str
    latest: ClaimRun | None = None  # the newest claim run, whatever its status


class ClaimDetail(Claim):
    arms: dict[str, dict[str, Any]]  # the quick mode's RunConfigs by arm name
    result: ClaimRun | None = None  # the newest completed claim run, with its result
    history: list[ClaimRun]  # newest first, without results


class ClaimList(BaseModel):
    data: list[Claim]
    count: int


class ClaimRunRequest(BaseModel):
    # quick: < 1 min on 2 CPU cores; full: larger nets, longer runs (strict: 0 is no bool)
    quick: bool = Field(True, strict=True)


# -- sweeps: a grid of runs over config fields, with seeds --------------------------------------
class SweepIn(BaseModel):
    """A sweep: the base config, a grid (field -> values) over any RunConfig field, seeds."""

    model_config = ConfigDict(extra="forbid")

    base: dict[str, Any] = Field(default_factory=dict, description="a partial RunConfig")
    grid: Annotated[
        dict[str, Annotated[list[Any], Field(min_length=1, max_length=1000)]],
        Field(min_length=1, max_length=16),
    ]
    seeds: int = Field(1, ge=1, le=100, description="seeds base.seed, base.seed + 1, ...")
    metric: str = Field(
        "eval_acc", description="eval_acc | eval_loss | loss | sat_last | drift_mean"
    )
    skip_invalid: bool = Field(False, description="skip invalid cells instead of a 422")


class SweepCell(BaseModel):
    point: int  # index of the grid point (the grid's product, first field slowest)
    values: dict[str, Any]
    seed: int
    run_id: str
    status: RunStatus
    metric: float | None = None  # set once the run has ended with a result
    ended: bool = False  # the run has ended and its metric (if any) has been read


class SweepPoint(BaseModel):
    point: int
    values: dict[str, Any]
    per_seed: list[float | None]
    n: int  # seeds with a value
    mean: float | None = None
    std: float | None = None  # sample std over seeds (None below two)


class SkippedCell(BaseModel):
    point: int
    values: dict[str, Any]
    field: str
    message: str


class Sweep(BaseModel):
    id: str
    base: dict[str, Any]
    grid: dict[str, list[Any]]
    seeds: int
    metric: str
    created_at: float
    status: Literal["queued", "running", "completed", "cancelled", "interrupted"]
    cells_total: int
    cells_done: int
    skipped: list[SkippedCell]
    cells: list[SweepCell] | None = None
    summary: list[SweepPoint] | None = None


class SweepList(BaseModel):
    data: list[Sweep]
    count: int
