"""RunConfig: the one description of a run, validated the same way by the CLI, the API and tests.

Names are forgiving on the way in ("Batch_Norm", "BN" -> "batch") and canonical on the way
out; an unknown name is rejected with the list of known ones. Cross-field rules say *why*
a combination cannot work (BN with batch size 1 has no variance per channel).
"""

from __future__ import annotations

import re

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

# Canonical names, in the order the catalog shows them.
NORM_NAMES = ("none", "batch", "layer", "weight", "cosine", "group", "instance", "rms")
MODELS = ("mlp", "convnet", "rnn")
ACTIVATIONS = ("sigmoid", "tanh", "relu", "gelu")
DATASETS = ("digits", "fashion", "spirals", "moons", "circles", "xor", "blobs", "sequence")
BATCH_ORDERS = ("shuffled", "fixed", "class_sorted", "one_class")
OPTIMIZERS = ("sgd", "momentum", "adam")
PLACEMENTS = ("before", "after")  # the norm before or after the activation
INITS = ("default", "gaussian")  # PyTorch's default, or N(0, init_std) (the BN paper)
CELLS = ("elman", "lstm")
# the sequence task: where the class motif sits, so how long the RNN must carry it
SEQ_TASKS = ("late", "early")
# where an RNN's norm acts: the summed inputs W[x; h] (Ba et al. 2016), or the input term W_x x
# and the recurrent term W_h h each on its own before they are summed (Cooijmans et al. 2016)
NORM_TERMS = ("summed", "separate")
DEVICES = ("auto", "cpu", "cuda")

# What each field means: the one text for `normscope run --help`, the catalog and the form.
FIELD_HELP = {
    "model": "the network",
    "depth": "hidden layers (conv blocks for convnet)",
    "width": "units per hidden layer (channels for convnet)",
    "activation": "the nonlinearity; sets what counts as saturated",
    "norm": "the normalization",
    "affine": "the norm's own scale g and shift b",
    "groups": "group norm only; must divide width",
    "placement": "norm before the activation (BN paper) or after it",
    "init": "initial weights: PyTorch's default, or N(0, init_std) (the BN paper)",
    "init_std": "std of N(0, std) when init is gaussian",
    "cell": "rnn only",
    "seq_len": "rnn only: training (and validation) sequence length",
    "seq_len_test": "rnn only: held-out test sequence length, >= seq_len; empty = seq_len",
    "seq_vary": "rnn only: lengths vary within a batch (uniform in [seq_len/2, seq_len]), "
    "padded steps masked",
    "seq_task": "rnn only: the motif sits late (step 8 on) or early (first quarter: carried "
    "through the rest, a longer dependency)",
    "bn_per_step": "rnn + batch norm only: statistics per time step, g initialised at 0.1 "
    "(Cooijmans et al. 2016); longer test sequences reuse the last step's",
    "norm_terms": "rnn only: one norm on the summed inputs, or separate norms on the input "
    "and recurrent terms (Cooijmans et al. 2016)",
    "dataset": "the data set",
    "batch_order": "how batches are drawn",
    "batch_size": "examples per step",
    "input_scale": "every input multiplied by this (train, validation, test); 1 = as loaded",
    "optimizer": "the optimizer",
    "lr": "learning rate",
    "momentum": "optimizer 'momentum' only",
    "steps": "optimizer steps to train",
    "clip": "gradient-norm clipping; empty = off",
    "probe_every": "probe every k-th step",
    "hist_bins": "histogram bins per layer",
    "eval_every": "held-out evaluation every n steps",
    "ics": "Santurkar et al.'s ICS measure (extra passes)",
    "seed": "random seed",
    "device": "auto: CUDA when available, else CPU",
    "threads": "CPU threads for this run (each takes a core); empty = the thread policy",
}

NORM_ALIASES = {
    "bn": "batch",
    "ln": "layer",
    "wn": "weight",
    "cn": "cosine",
    "gn": "group",
    "in": "instance",
    "rmsnorm": "rms",
    "identity": "none",
    "no": "none",
    "off": "none",
}

# Hard limits of the library itself; the server narrows them further with its settings.
MAX_DEPTH = 32
MAX_WIDTH = 4096
MAX_STEPS = 1_000_000
MAX_BATCH = 4096
MAX_SEQ_LEN = 500
# Two motif lengths (normcore.data.datasets.MOTIF_LEN = 5): a varied length, at least half the
# longest, still holds the motif.
MIN_SEQ_LEN = 10
SEQ_LEN = 20  # the sequence task's length before it was an option (the default)
# Fields that only an RNN reads, with the value that leaves it as it was before they existed.
RNN_ONLY = {
    "seq_len": SEQ_LEN,
    "seq_len_test": None,
    "seq_vary": False,
    "seq_task": "late",
    "bn_per_step": False,
    "norm_terms": "summed",
}
# Norms that live inside the linear map (normcore.norms.make_linear): no separate norm module
# can act on one term of it.
IN_LINEAR_NORMS = ("weight", "cosine")


def canonical(
    value: str, known: tuple[str, ...], what: str, aliases: dict[str, str] | None = None
) -> str:
    """'Batch_Norm' -> 'batch'; raise ValueError naming the value and the known names."""
    key = re.sub(r"[\s_\-]", "", str(value).lower())
    if key in known:
        return key
    if aliases and key in aliases:
        return aliases[key]
    if key.endswith("norm") and key[:-4] in known:
        return key[:-4]
    if aliases and key.endswith("norm") and key[:-4] in aliases:
        return aliases[key[:-4]]
    for name in known:  # 'class-sorted' -> 'class_sorted'
        if name.replace("_", "") == key:
            return name
    raise ValueError(f"{what} {value!r} is unknown; known: {', '.join(known)}")


def _named(known: tuple[str, ...], what: str, aliases: dict[str, str] | None = None):
    def check(cls, value: str) -> str:
        if not isinstance(value, str):  # (null would read as "none")
            raise ValueError(f"{what} takes a name, one of {', '.join(known)}; not {value!r}")
        return canonical(value, known, what, aliases)

    return field_validator(what, mode="before")(classmethod(check))


def choices() -> dict[str, tuple[str, ...]]:
    """The named fields and their choices, in catalog order."""
    return {
        "model": MODELS,
        "activation": ACTIVATIONS,
        "norm": NORM_NAMES,
        "placement": PLACEMENTS,
        "init": INITS,
        "cell": CELLS,
        "seq_task": SEQ_TASKS,
        "norm_terms": NORM_TERMS,
        "dataset": DATASETS,
        "batch_order": BATCH_ORDERS,
        "optimizer": OPTIMIZERS,
        "device": DEVICES,
    }


# Fields that change what is measured, not what is trained: left out of labels.
OBSERVATION = ("steps", "probe_every", "hist_bins", "eval_every", "ics", "device", "threads")


class RunConfig(BaseModel):
    """A training run: network, normalization, data, optimization, probing."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    # network
    model: str = "mlp"  # mlp | convnet | rnn
    depth: int = Field(3, ge=1, le=MAX_DEPTH)  # hidden layers (conv blocks for convnet)
    width: int = Field(100, ge=1, le=MAX_WIDTH)  # units per hidden layer (channels for convnet)
    activation: str = "sigmoid"
    norm: str = "none"
    affine: bool = Field(True, strict=True)  # the norm's second shift/scale g, b (seed C3)
    placement: str = "before"  # norm before the activation (BN paper) or after it
    groups: int = Field(4, ge=1)  # group norm's number of groups; must divide width
    init: str = "default"
    init_std: float = Field(0.1, gt=0, le=10)  # std of N(0, std) when init='gaussian'
    cell: str = "elman"  # rnn only
    # the sequence task and the RNN's norm (rnn only; the defaults are the task as it was)
    seq_len: int = Field(SEQ_LEN, ge=MIN_SEQ_LEN, le=MAX_SEQ_LEN)
    seq_len_test: int | None = Field(None, ge=MIN_SEQ_LEN, le=MAX_SEQ_LEN)  # None = seq_len
    seq_vary: bool = Field(False, strict=True)
    seq_task: str = "late"
    bn_per_step: bool = Field(False, strict=True)
    norm_terms: str = "summed"
    # data
    dataset: str = "digits"
    batch_order: str = "shuffled"
    batch_size: int = Field(60, ge=1, le=MAX_BATCH)
    # a fraction of the training data held out as a validation split (evaluated like the
    # test split, frame["val"]), to tune on without touching the test split; 0 = none
    val_fraction: float = Field(0.0, ge=0.0, le=0.5)
    # every input (train, validation, test) multiplied by this: the same data in other units
    # (seed C9, data-scale invariance); 1 = as loaded
    input_scale: float = Field(1.0, ge=1e-6, le=1e6)
    # optimization
    optimizer: str = "sgd"
    lr: float = Field(0.1, gt=0, le=1e6)
    momentum: float = Field(0.9, ge=0, lt=1)  # used by optimizer='momentum'
    steps: int = Field(2000, ge=1, le=MAX_STEPS)
    clip: float | None = Field(None, gt=0)  # gradient-norm clipping; None = off
    # probing
    probe_every: int = Field(1, ge=1, le=100_000)  # probe every k-th step
    hist_bins: int = Field(64, ge=4, le=512)
    eval_every: int = Field(100, ge=1, le=MAX_STEPS)  # held-out eval every n steps, and at the end
    ics: bool = Field(False, strict=True)  # Santurkar et al.'s ICS measure; costs extra passes
    # reproducibility and placement
    seed: int = Field(0, ge=0, le=2**31 - 1)
    device: str = "auto"  # auto = CUDA when available, else CPU
    # intra-op CPU threads; None = the thread policy's choice (app/jobs/threads.py: one for
    # small runs). A server gives a run asking for more that many cores, and waits for them.
    threads: int | None = Field(None, ge=1, le=1024)

    _model = _named(MODELS, "model")
    _activation = _named(ACTIVATIONS, "activation")
    _norm = _named(NORM_NAMES, "norm", NORM_ALIASES)
    _placement = _named(PLACEMENTS, "placement")
    _init = _named(INITS, "init")
    _cell = _named(CELLS, "cell")
    _seq_task = _named(SEQ_TASKS, "seq_task")
    _norm_terms = _named(NORM_TERMS, "norm_terms")
    _dataset = _named(DATASETS, "dataset")
    _batch_order = _named(BATCH_ORDERS, "batch_order")
    _optimizer = _named(OPTIMIZERS, "optimizer")
    _device = _named(DEVICES, "device")

    @field_validator("*", mode="before")
    @classmethod
    def _true_is_not_a_number(cls, value: object, info: ValidationInfo) -> object:
        """JSON's true and false are not numbers or names (pydantic's lax mode reads true as 1)."""
        field = info.field_name
        if isinstance(value, bool) and field and cls.model_fields[field].annotation is not bool:
            raise ValueError(f"{field} takes a number or a name, not {str(value).lower()}")
        return value

    @field_validator("norm", mode="after")
    @classmethod
    def _instance_needs_positions(cls, value: str, info: ValidationInfo) -> str:
        if value == "instance" and info.data.get("model") == "mlp":
            raise ValueError(
                "norm 'instance' normalizes each channel over its positions and an MLP has "
                "none; use model 'convnet' or 'rnn', or norm 'layer'"
            )
        return value

    # Cross-field rules are field validators on the later field, so the error's location names
    # the field a user has to change (the dashboard shows it next to that input).
    @field_validator("batch_size")
    @classmethod
    def _batch_size(cls, value: int, info: ValidationInfo) -> int:
        if value < 2 and info.data.get("norm") == "batch" and info.data.get("model") != "convnet":
            raise ValueError(
                "batch_size 1 with norm 'batch': batch norm needs more than one value per "
                "channel to estimate a variance; use batch_size >= 2 or norm 'layer'"
            )
        return value

    @field_validator(*RNN_ONLY, mode="after")
    @classmethod
    def _rnn_only(cls, value: object, info: ValidationInfo) -> object:
        field, model = str(info.field_name), info.data.get("model")
        if model is not None and model != "rnn" and value != RNN_ONLY[field]:
            raise ValueError(
                f"{field} {value!r} applies to model 'rnn' only, not {model!r}; leave it at "
                f"{RNN_ONLY[field]!r} or use model 'rnn'"
            )
        return value

    @field_validator("seq_len_test")
    @classmethod
    def _test_not_shorter(cls, value: int | None, info: ValidationInfo) -> int | None:
        train = info.data.get("seq_len")
        if value is not None and train is not None and value < train:
            raise ValueError(
                f"seq_len_test {value} is shorter than seq_len {train}: the held-out "
                "sequences are as long as the training ones or longer"
            )
        return value

    @field_validator("bn_per_step")
    @classmethod
    def _per_step_needs_bn(cls, value: bool, info: ValidationInfo) -> bool:
        norm = info.data.get("norm")
        if value and norm is not None and norm != "batch":
            raise ValueError(
                f"bn_per_step true with norm {norm!r}: only batch norm keeps statistics to "
                "keep per time step; use norm 'batch' or bn_per_step false"
            )
        return value

    @field_validator("norm_terms")
    @classmethod
    def _separate_terms(cls, value: str, info: ValidationInfo) -> str:
        norm, placement = info.data.get("norm"), info.data.get("placement")
        if value == "separate" and norm in IN_LINEAR_NORMS:
            raise ValueError(
                f"norm_terms 'separate' with norm {norm!r}: {norm} norm lives inside the "
                "linear map, so it cannot act on the input and recurrent terms one by one; "
                "use norm_terms 'summed'"
            )
        if value == "separate" and placement == "after":
            raise ValueError(
                "norm_terms 'separate' normalizes the input and recurrent terms before they "
                "are summed and go through the activation; use placement 'before'"
            )
        return value

    @field_validator("groups")
    @classmethod
    def _groups(cls, value: int, info: ValidationInfo) -> int:
        width = info.data.get("width")
        if info.data.get("norm") == "group" and width and width % value:
            raise ValueError(f"groups {value} must divide width {width} for norm 'group'")
        return value

    @field_validator("dataset")
    @classmethod
    def _dataset_fits_model(cls, value: str, info: ValidationInfo) -> str:
        model = info.data.get("model")
        if model is None:
            return value
        if (model == "rnn") != (value == "sequence"):
            raise ValueError(
                f"dataset {value!r} with model {model!r}: the rnn model takes the 'sequence' "
                "data set, and the 'sequence' data set needs the rnn model"
            )
        if model == "convnet" and value not in ("digits", "fashion"):
            raise ValueError(
                f"dataset {value!r}: model 'convnet' needs an image data set ('digits' or "
                "'fashion')"
            )
        return value

    @property
    def test_len(self) -> int:
        """The held-out sequences' length (seq_len_test, or seq_len when unset)."""
        return self.seq_len if self.seq_len_test is None else self.seq_len_test

    def label(self) -> str:
        """A short human label: 'batch · mlp 3×100 sigmoid · digits', then every field that
        changes what is trained and differs from the defaults ('init gaussian · init_std 1'),
        so two runs that learn differently never share a label."""
        net = f"{self.model} {self.depth}×{self.width} {self.activation}"
        shown = {"norm", "model", "depth", "width", "activation", "dataset", *OBSERVATION}
        defaults = type(self).model_validate({})
        extra = [
            f"{name} {value}"
            for name in type(self).model_fields
            if name not in shown and (value := getattr(self, name)) != getattr(defaults, name)
        ]
        return " · ".join([self.norm, net, self.dataset, *extra])
