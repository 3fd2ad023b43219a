"""The catalog: everything the Launch form is built from (names, limits, defaults, presets)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.deps import SettingsDep
from app.schemas import Catalog, Preset, Statuses, SweepPreset
from normcore import config as C
from normcore.claims.figure1 import FIGURE_1_NET
from normcore.frames import ACTIVE, TERMINAL
from normcore.norms import norm_catalog
from normcore.probe.stats import DEAD_AT_ZERO, SAT_THRESHOLD
from normcore.sweep import METRICS, SWEEP_PRESETS

router = APIRouter(prefix="/catalog", tags=["catalog"])

_FIGURE_1: dict[str, Any] = {**FIGURE_1_NET, "steps": 3000}  # the BN paper's Figure 1 net
# No norm, the standard init U(-1/sqrt(n), 1/sqrt(n)), plain SGD 0.1: Glorot & Bengio's nets
_PLAIN_SIGMOID: dict[str, Any] = {
    "model": "mlp",
    "activation": "sigmoid",
    "norm": "none",
    "init": "default",
    "optimizer": "sgd",
    "lr": 0.1,
}
_SMALL_BATCH: dict[str, Any] = {
    "model": "mlp",
    "depth": 3,
    "width": 64,
    "activation": "relu",
    "dataset": "digits",
    "steps": 2000,
    "lr": 0.05,
}

PRESETS = [
    Preset(
        id="bn-figure-1",
        title="BN paper Figure 1: 3×100 sigmoid with and without BN",
        description="Ioffe & Szegedy's Figure 1: with BN the last layer's 15/50/85 "
        "percentiles settle early and accuracy rises faster (C1).",
        runs=[{**_FIGURE_1, "norm": "none"}, {**_FIGURE_1, "norm": "batch"}],
    ),
    Preset(
        id="deep-sigmoid-saturation",
        title="Glorot & Bengio's Fig. 2: saturation reaches the top sigmoid layer first (C2)",
        description="4×300 sigmoid, standard init U(−1/√n, 1/√n), Fashion-MNIST, batch 10, "
        "SGD 0.1, no norm: within ~1000 steps the top layer's graded saturation rises far "
        "above the lower layers' (its outputs sink toward 0 while the others stay near 0.5) "
        "and held-out accuracy sits at chance; around step 7500–10000 the top layer recovers "
        "and the network learns (C2).",
        runs=[
            {
                **_PLAIN_SIGMOID,
                "depth": 4,
                "width": 300,
                "dataset": "fashion",
                "batch_size": 10,
                "steps": 12000,
                "probe_every": 40,
                "eval_every": 500,
            }
        ],
    ),
    Preset(
        id="deep-sigmoid-vanishing-gradients",
        title="10 sigmoid layers: vanishing gradients without saturation",
        description="10×100 sigmoid, default init, digits, plain SGD 0.1, no norm: the "
        "first layer's gradient norm is about 1e-7 of the last one's from the first step "
        "(each sigmoid layer scales the gradient by its slope, at most 1/4, times small "
        "weights), no layer saturates, and accuracy stays at chance.",
        runs=[{**_PLAIN_SIGMOID, "depth": 10, "width": 100, "dataset": "digits", "steps": 2000}],
    ),
    Preset(
        id="bn-batch-2-vs-ln",
        title="BN at batch size 2 vs LN",
        description="Two examples per batch make BN's statistics noise; LN normalizes each "
        "example on its own and does not care (C4, Wu & He).",
        runs=[
            {**_SMALL_BATCH, "norm": "batch", "batch_size": 2},
            {**_SMALL_BATCH, "norm": "layer", "batch_size": 2},
        ],
    ),
    Preset(
        id="bn-one-class-vs-ln",
        title="BN with one-class batches vs LN",
        description="Batches that each hold a single class: BN's batch statistics differ "
        "from the held-out data's and its eval-mode accuracy collapses; LN's does not (C4).",
        runs=[
            {**_SMALL_BATCH, "norm": "batch", "batch_size": 32, "batch_order": "one_class"},
            {**_SMALL_BATCH, "norm": "layer", "batch_size": 32, "batch_order": "one_class"},
        ],
    ),
    Preset(
        id="bn-affine",
        title="BN with and without its second shift/scale (g, b)",
        description="Without g and b the normalized inputs stay near the sigmoid's linear "
        "middle; with them the network can reach the saturated region if it helps (C3).",
        runs=[
            {**_FIGURE_1, "norm": "batch", "affine": False},
            {**_FIGURE_1, "norm": "batch", "affine": True},
        ],
    ),
    Preset(
        id="none-bn-ln-rms",
        title="None vs BN vs LN vs RMSNorm on one network",
        description="The same 6×100 tanh network four times: how each norm changes "
        "the drift, the saturation and the speed of training.",
        runs=[
            {
                "model": "mlp",
                "depth": 6,
                "width": 100,
                "activation": "tanh",
                "dataset": "digits",
                "steps": 2000,
                "norm": norm,
            }
            for norm in ("none", "batch", "layer", "rms")
        ],
    ),
]


@router.get("")
def read_catalog(settings: SettingsDep) -> Catalog:
    """Norms with the seed's properties, every choice the Launch form offers, limits,
    defaults and presets."""
    return Catalog(
        norms=norm_catalog(),
        models=list(C.MODELS),
        activations=list(C.ACTIVATIONS),
        datasets=list(C.DATASETS),
        batch_orders=list(C.BATCH_ORDERS),
        optimizers=list(C.OPTIMIZERS),
        placements=list(C.PLACEMENTS),
        inits=list(C.INITS),
        cells=list(C.CELLS),
        seq_tasks=list(C.SEQ_TASKS),
        norm_terms=list(C.NORM_TERMS),
        devices=list(C.DEVICES),
        limits=settings.limits(),
        defaults=C.RunConfig.model_validate({}).model_dump(),
        presets=PRESETS,
        statuses=Statuses(active=list(ACTIVE), terminal=list(TERMINAL)),
        sweep_presets=[SweepPreset(id=k, **v) for k, v in SWEEP_PRESETS.items()],
        sweep_metrics=METRICS,
        max_sweep_cells=settings.max_sweep_cells,
        saturation=saturation_rules(),
        help=C.FIELD_HELP,
    )


def saturation_rules() -> dict[str, dict[str, Any]]:
    """What counts as saturated for each activation (normcore.stats, the one source): the
    charts draw these lines and say the rule."""
    rules: dict[str, dict[str, Any]] = {
        act: {"rule": "abs_above", "at": at} for act, at in SAT_THRESHOLD.items()
    }
    rules.update({act: {"rule": "at_or_below", "at": 0.0} for act in DEAD_AT_ZERO})
    return rules
