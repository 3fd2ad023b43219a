"""Measured invariance checks for every registered norm (seed C8, C9; Ba et al. 2016 Table 1).

Each check builds the norm from the registry, as training uses it, in float64 with affine off
(g = 1, b = 0), applies one transformation to the weights or the data, and measures how far the
output moves: ``max |y' - y| / max |y|`` over the batch. A norm is called invariant when that
relative deviation stays below ``tolerance``. Eps terms (BN/LN/GN/IN add 1e-5 to the variance,
CN 1e-8 to ‖x‖²) make some verdicts approximate; their deviation is reported, not hidden.

The layer under test is ``norm(W x)``, with W (out, in) and a batch x (B, in). Weight and cosine
norm are the normalized linear layer itself (W is WN's v, CN's w). Instance norm needs positions
to be itself, so it sees x (B, L, in) mapped per position to (B, out, L), a 1×1 convolution.

Transformations (λ in LAMBDAS, γ and c random vectors):
- weight_matrix_rescaling: W -> λW;  weight_matrix_recentering: W -> W + 1γᵀ (every unit
  gets the same extra input γ·x);  weight_vector_rescaling: W[0] -> λW[0];
- data_rescaling: x -> λx;  data_recentering: x -> x + c;  single_case_rescaling: x[0] -> λx[0];
- gradient_law: ∇ at λW equals ∇ at W divided by λ (BN paper §3.3, seed C8 (2)), for the
  loss sum(R * y) with a fixed random R.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from normcore.norms import NORMS, create_norm_layer, make_linear, resolve

TRANSFORMS = (
    "weight_matrix_rescaling",
    "weight_matrix_recentering",
    "weight_vector_rescaling",
    "data_rescaling",
    "data_recentering",
    "single_case_rescaling",
    "gradient_law",
)
LAMBDAS = (0.5, 3.0)  # one shrink, one growth: eps effects show up on the shrink side
TOLERANCE = 1e-3
BATCH, IN, OUT, POSITIONS, GROUPS = 16, 6, 32, 12, 4

# What the literature says: Ba et al. 2016 Table 1 (BN, WN, LN), the seed's C8/C9 for CN, and
# the BN paper §3.3 / seed C8 (2) for the gradient law of the four mainstream norms.
_TABLE1 = {
    "batch": (True, False, True, True, True, False),
    "weight": (True, False, True, False, False, False),
    "layer": (True, True, False, True, False, True),
}
PUBLISHED: dict[tuple[str, str], bool] = {
    (norm, t): v for norm, row in _TABLE1.items() for t, v in zip(TRANSFORMS, row, strict=False)
}
PUBLISHED |= {
    ("cosine", "weight_matrix_rescaling"): True,
    ("cosine", "data_rescaling"): True,
    **{(norm, "gradient_law"): True for norm in ("batch", "layer", "weight", "cosine")},
}


class _Probe:
    """One norm in float64, as a function of (W, x) with access to the gradient w.r.t. W."""

    def __init__(self, name: str) -> None:
        self.name = resolve(name).name
        self.positions = self.name == "instance"
        if NORMS[self.name].in_linear:
            self.linear = make_linear(self.name, IN, OUT, affine=False).double()
            self.norm: nn.Module = nn.Identity()
        else:
            self.linear = nn.Linear(IN, OUT, bias=False).double()
            self.norm = create_norm_layer(self.name, OUT, affine=False, groups=GROUPS).double()
        self.norm.train()  # batch statistics: what training sees and what Table 1 is about

    @property
    def weight(self) -> torch.Tensor:
        """The tensor Table 1's W stands for: WN's direction v, else the plain weight."""
        param = getattr(self.linear, "parametrizations", None)
        weight = param.weight.original1 if param is not None else self.linear.weight
        assert isinstance(weight, torch.Tensor)
        return weight

    def __call__(self, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            self.weight.copy_(w)
        y = self.linear(x)  # (B, OUT) or (B, L, OUT)
        if self.positions:
            y = y.transpose(1, 2)  # (B, OUT, L): channels over positions
        return self.norm(y)

    def grad(self, w: torch.Tensor, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        self.weight.grad = None
        (self(w, x) * r).sum().backward()
        assert self.weight.grad is not None
        return self.weight.grad.detach().clone()


def _relative(new: torch.Tensor, ref: torch.Tensor) -> float:
    scale = ref.abs().max().clamp_min(1e-300)
    return float(((new - ref).abs().max() / scale).item())


def _transforms(
    probe: _Probe, w: torch.Tensor, x: torch.Tensor, gen: torch.Generator
) -> dict[str, Callable[[float], float]]:
    """Each transformation as λ -> relative deviation of the output (or of the gradient)."""
    y = probe(w, x)
    gamma = torch.randn(IN, generator=gen, dtype=w.dtype)
    c = torch.randn(IN, generator=gen, dtype=w.dtype)
    r = torch.randn(y.shape, generator=gen, dtype=w.dtype)
    g = probe.grad(w, x, r)

    def row_scaled(lam: float) -> torch.Tensor:
        w2 = w.clone()
        w2[0] *= lam
        return w2

    def case_scaled(lam: float) -> torch.Tensor:
        x2 = x.clone()
        x2[0] *= lam
        return x2

    return {
        "weight_matrix_rescaling": lambda lam: _relative(probe(lam * w, x), y),
        "weight_matrix_recentering": lambda lam: _relative(probe(w + lam * gamma, x), y),
        "weight_vector_rescaling": lambda lam: _relative(probe(row_scaled(lam), x), y),
        "data_rescaling": lambda lam: _relative(probe(w, lam * x), y),
        "data_recentering": lambda lam: _relative(probe(w, x + lam * c), y),
        "single_case_rescaling": lambda lam: _relative(probe(w, case_scaled(lam)), y),
        "gradient_law": lambda lam: _relative(lam * probe.grad(lam * w, x, r), g),
    }


def check(norm: str, *, seed: int = 0, tolerance: float = TOLERANCE) -> list[dict[str, Any]]:
    """Measure every transformation for one norm: rows of {norm, transform, invariant,
    max_deviation, tolerance, published} (published: the literature's verdict, or None)."""
    probe = _Probe(norm)
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(OUT, IN, generator=gen, dtype=torch.float64)
    shape = (BATCH, POSITIONS, IN) if probe.positions else (BATCH, IN)
    x = torch.randn(shape, generator=gen, dtype=torch.float64) + 0.5  # not centred already
    rows = []
    for transform, deviation in _transforms(probe, w, x, gen).items():
        worst = max(deviation(lam) for lam in LAMBDAS)
        rows.append(
            dict(
                norm=probe.name,
                transform=transform,
                invariant=worst <= tolerance,
                max_deviation=worst,
                tolerance=tolerance,
                published=PUBLISHED.get((probe.name, transform)),
            )
        )
    return rows


def check_all(norms: Iterable[str] = NORMS, **kw: Any) -> list[dict[str, Any]]:
    """``check`` for every registered norm (or the given ones), in registry order."""
    return [row for norm in norms for row in check(norm, **kw)]


def table(rows: list[dict[str, Any]] | None = None) -> str:
    """A fixed-width text table, norms × transformations: 'yes 2e-06' / 'no 0.83'.

    A '!' marks a measured verdict that disagrees with the published one.
    """
    rows = check_all() if rows is None else rows
    cells: dict[str, dict[str, str]] = {}
    for row in rows:
        mark = "!" if row["published"] is not None and row["published"] != row["invariant"] else ""
        verdict = "yes" if row["invariant"] else "no"
        cells.setdefault(row["norm"], {})[row["transform"]] = (
            f"{verdict} {row['max_deviation']:.0e}{mark}"
        )
    heads = [t.replace("_", " ").replace("weight ", "w ") for t in TRANSFORMS]
    width = max(12, *(len(h) for h in heads))
    lines = ["norm".ljust(9) + "".join(h.rjust(width + 1) for h in heads)]
    for norm, by_transform in cells.items():
        line = norm.ljust(9)
        line += "".join(by_transform.get(t, "-").rjust(width + 1) for t in TRANSFORMS)
        lines.append(line)
    return "\n".join(lines)


if __name__ == "__main__":  # python -m normcore.invariance
    print(table())
