"""Claims: the seed's claims C1..C9 as experiments, their latest verdicts, and running them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, status

from app.deps import ClaimsDep
from app.errors import ClaimNotFound
from app.schemas import Claim, ClaimDetail, ClaimList, ClaimRun, ClaimRunRequest
from app.services.claims import ClaimService
from normcore.claims import CLAIMS, Experiment, get_claim

router = APIRouter(prefix="/claims", tags=["claims"])

ClaimId = Annotated[str, Path(min_length=1, max_length=16, description="C1..C9, FIG1, ICS")]


def find(claim_id: str) -> Experiment:
    try:
        return get_claim(claim_id)
    except ValueError:
        known = ", ".join(CLAIMS)
        raise ClaimNotFound(f"claim {claim_id!r} not found; known: {known}") from None


def _summary(exp: Experiment, claims: ClaimService) -> dict[str, Any]:
    latest = claims.claims.latest(exp.id)
    if latest is not None:
        latest["result"] = None  # the list stays small; GET /api/claims/{id} has it
    return dict(
        id=exp.id, title=exp.title, claim=exp.claim, experiment=exp.experiment, latest=latest
    )


@router.get("")
def read_claims(claims: ClaimsDep) -> ClaimList:
    """Every claim with its newest claim run's status and verdict."""
    data = [Claim.model_validate(_summary(exp, claims)) for exp in CLAIMS.values()]
    return ClaimList(data=data, count=len(data))


@router.get("/{claim_id}")
def read_claim(claim_id: ClaimId, claims: ClaimsDep) -> ClaimDetail:
    """One claim: its experiment, arms, newest run, newest result and history."""
    exp = find(claim_id)
    summary = _summary(exp, claims)
    summary["latest"] = claims.claims.latest(exp.id)
    return ClaimDetail.model_validate(
        dict(
            summary,
            arms=exp.describe(quick=True)["arms"],
            result=claims.claims.latest(exp.id, completed=True),
            history=claims.claims.history(exp.id),
        )
    )


@router.post("/{claim_id}/run", status_code=status.HTTP_202_ACCEPTED)
def run_claim(
    claim_id: ClaimId, claims: ClaimsDep, body: ClaimRunRequest | None = None
) -> ClaimRun:
    """Start the claim's experiment; poll GET /api/claims/{id} for its result."""
    exp = find(claim_id)
    return ClaimRun.model_validate(claims.start(exp, body.quick if body else True))
