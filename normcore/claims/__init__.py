"""The seed's claims C1..C9 (and Santurkar et al.'s ICS) as experiments with measured verdicts.

    >>> from normcore.claims import run_claim
    >>> result = run_claim("C4", quick=True)   # runs the arms, measures, judges
    >>> result["verdict"], result["criterion"], result["numbers"]

One module per experiment family, all on the protocol of protocol.py (seeds, regimes,
learning rates tuned on validation, two standard errors): saturation (C2), ics_protocol (ICS),
rnn_protocol (C5), depth (C1), figure1 (the BN paper's Figure 1, C3), batches (C4, C6), cosine
(C7), scale (C8) and data_scale (C9). checks holds the verdict rules and margins, measures the
frame-to-number functions, base the Experiment shape and the runner, parallel the process pool
that runs a sweep's arms, budget what a claim's sweep costs, estimated from its configs
(``budget.full_cost()``; ``normscope claims --dry-run``).
"""

from __future__ import annotations

from typing import Any

from normcore.claims.base import ArmRun, Cancelled, Experiment, LocalRunner, Runner, run_experiment
from normcore.claims.batches import C4, C6
from normcore.claims.cosine import C7
from normcore.claims.data_scale import C9
from normcore.claims.depth import C1
from normcore.claims.figure1 import C3, FIG1
from normcore.claims.ics_protocol import ICS
from normcore.claims.rnn_protocol import C5
from normcore.claims.saturation import C2
from normcore.claims.scale import C8

__all__ = [
    "CLAIMS",
    "ArmRun",
    "Cancelled",
    "Experiment",
    "LocalRunner",
    "Runner",
    "claim_catalog",
    "get_claim",
    "run_claim",
]

# In the seed's order; FIG1 sits with C1/C2 (same question), ICS after them (it answers them).
CLAIMS: dict[str, Experiment] = {e.id: e for e in (C1, C2, FIG1, ICS, C3, C4, C5, C6, C7, C8, C9)}


def get_claim(claim_id: str) -> Experiment:
    """The experiment for `claim_id` (case-insensitive); ValueError naming the known ids."""
    key = str(claim_id).strip().upper()
    if key not in CLAIMS:
        raise ValueError(f"claim {claim_id!r} is unknown; known: {', '.join(CLAIMS)}")
    return CLAIMS[key]


def claim_catalog(quick: bool = True) -> list[dict[str, Any]]:
    """Every claim's description and arms, JSON-ready, without running anything."""
    return [e.describe(quick) for e in CLAIMS.values()]


def run_claim(claim_id: str, *, quick: bool = True, runner: Runner | None = None) -> dict[str, Any]:
    """Run one claim's experiment and return its result (see base.run_experiment)."""
    return run_experiment(get_claim(claim_id), quick=quick, runner=runner)
