"""Claims: the seed's claims C1..C9 as experiments, their latest verdicts, and running them."""

from __future__ import annotations

import threading
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request, status
from pydantic import BaseModel, Field

from app.claims_service import ClaimService
from app.deps import ExecutorDep, SettingsDep, StoreDep
from app.errors import NormScopeError
from normcore.claims import CLAIMS, Experiment, get_claim

router = APIRouter(prefix="/claims", tags=["claims"])

ClaimId = Annotated[str, Path(min_length=1, max_length=16, description="C1..C9, FIG1, ICS")]
ClaimRunStatus = Literal["queued", "running", "completed", "failed", "interrupted"]
Verdict = Literal["reproduced", "mixed", "not reproduced"]


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
    #  run_configs: [{arm, label, config, run_id, status, frames}], quick, duration_s}
    result: dict[str, Any] | None = None


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


class ClaimNotFound(NormScopeError):
    status_code = 404


_lock = threading.Lock()


def get_claims(request: Request, store: StoreDep, executor: ExecutorDep, settings: SettingsDep):
    """The app's ClaimService, made on first use (it lives on app.state like the store)."""
    with _lock:
        found = getattr(request.app.state, "claims", None)
        if found is None or found.store is not store:
            found = request.app.state.claims = ClaimService(store, executor, settings)
        return found


ClaimsDep = Annotated[ClaimService, Depends(get_claims)]


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
    return dict(id=exp.id, title=exp.title, claim=exp.claim, experiment=exp.experiment,
                latest=latest)  # fmt: skip


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
        dict(summary, arms=exp.describe(quick=True)["arms"],
             result=claims.claims.latest(exp.id, completed=True),
             history=claims.claims.history(exp.id))
    )  # fmt: skip


@router.post("/{claim_id}/run", status_code=status.HTTP_202_ACCEPTED)
def run_claim(
    claim_id: ClaimId, claims: ClaimsDep, body: ClaimRunRequest | None = None
) -> ClaimRun:
    """Start the claim's experiment; poll GET /api/claims/{id} for its result."""
    exp = find(claim_id)
    return ClaimRun.model_validate(claims.start(exp, (body or ClaimRunRequest()).quick))
