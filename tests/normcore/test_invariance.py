"""Measured invariance verdicts against the published table and first principles."""

import pytest

from normcore.invariance import PUBLISHED, TOLERANCE, TRANSFORMS, check, check_all, table
from normcore.norms import NORMS

# Expected verdicts, columns in TRANSFORMS order: weight-matrix re-scaling, weight-matrix
# re-centering, weight-vector re-scaling, data re-scaling, data re-centering, single-case
# re-scaling, gradient law ∇_{λW} = ∇_W / λ. BN, WN, LN rows are Ba et al. 2016 Table 1; CN's
# are the seed's C8/C9 extended the same way. The gradient law follows from weight-matrix
# re-scaling invariance (a function homogeneous of degree 0 has a gradient of degree -1).
EXPECTED = {
    # Nothing normalizes: every transformation shows up in the output.
    "none": (0, 0, 0, 0, 0, 0, 0),
    "batch": (1, 0, 1, 1, 1, 0, 1),
    "weight": (1, 0, 1, 0, 0, 0, 1),
    "layer": (1, 1, 0, 1, 0, 1, 1),
    # cos(w, x): each row and each sample is divided by its own norm, nothing is centred.
    "cosine": (1, 0, 1, 1, 0, 1, 1),
    # Per sample over groups of units: a shift shared by all units (re-centering) cancels in
    # every group, but re-scaling one unit changes its group's statistics; like LN otherwise.
    "group": (1, 1, 0, 1, 0, 1, 1),
    # Per sample and unit over positions, i.e. BN with positions in place of the batch:
    # W + 1γᵀ adds γ·x_l, which varies over positions l, so re-centering is not removed;
    # a data shift c adds the constant (Wc)_i to unit i at every position and is removed;
    # one sample's scale only touches that sample's own statistics.
    "instance": (1, 0, 1, 1, 1, 1, 1),
    # LN without centring: every scale cancels per sample, no shift does; one unit's scale
    # changes the sample's RMS.
    "rms": (1, 0, 0, 1, 0, 1, 1),
}


def test_expectations_cover_the_registry() -> None:
    assert set(EXPECTED) == set(NORMS)


@pytest.mark.parametrize("norm", list(NORMS))
def test_measured_verdicts_match_first_principles(norm: str) -> None:
    rows = check(norm)
    assert [r["transform"] for r in rows] == list(TRANSFORMS)
    got = {r["transform"]: r["invariant"] for r in rows}
    assert got == {t: bool(v) for t, v in zip(TRANSFORMS, EXPECTED[norm], strict=True)}


@pytest.mark.parametrize("norm", list(NORMS))
def test_measured_verdicts_agree_with_the_published_table(norm: str) -> None:
    for row in check(norm):
        assert row["published"] == PUBLISHED.get((norm, row["transform"]))
        if row["published"] is not None:
            assert row["invariant"] == row["published"], row


def test_published_table_covers_ba_et_al_and_the_seed() -> None:
    assert sum(1 for norm, _ in PUBLISHED if norm in ("batch", "weight", "layer")) == 3 * 7
    assert PUBLISHED[("weight", "data_rescaling")] is False  # seed C9: WN is not
    assert PUBLISHED[("cosine", "data_rescaling")] is True  # seed C9: CN is


@pytest.mark.parametrize("norm", list(NORMS))
def test_registry_properties_agree_with_the_measurement(norm: str) -> None:
    got = {r["transform"]: r["invariant"] for r in check(norm)}
    props = NORMS[norm].properties
    assert props["weight_scale_invariant"] == got["weight_matrix_rescaling"]
    assert props["data_scale_invariant"] == got["data_rescaling"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_verdicts_do_not_depend_on_the_random_draw(seed: int) -> None:
    for row in check_all(seed=seed):
        want = EXPECTED[row["norm"]][TRANSFORMS.index(row["transform"])]
        assert row["invariant"] == bool(want), row


def test_deviations_separate_eps_effects_from_real_changes() -> None:
    rows = check_all()
    held = [r["max_deviation"] for r in rows if r["invariant"]]
    broken = [r["max_deviation"] for r in rows if not r["invariant"]]
    assert max(held) < TOLERANCE / 3 and min(broken) > 30 * TOLERANCE
    assert all(r["tolerance"] == TOLERANCE for r in rows)


def test_eps_makes_batch_norm_only_approximately_invariant_and_it_is_reported() -> None:
    """BN divides by sqrt(var + 1e-5): re-scaling W moves the output by a little, not zero."""
    row = check("batch", tolerance=0.0)[TRANSFORMS.index("weight_matrix_rescaling")]
    assert row["invariant"] is False
    assert 1e-8 < row["max_deviation"] < TOLERANCE


def test_table_shows_every_norm_and_transform_without_disagreement() -> None:
    text = table()
    lines = text.splitlines()
    assert len(lines) == 1 + len(NORMS)
    assert [line.split()[0] for line in lines[1:]] == list(NORMS)
    assert "!" not in text
    assert "gradient law" in lines[0]


def test_table_marks_a_verdict_that_disagrees_with_the_literature() -> None:
    rows = check("weight")
    rows[TRANSFORMS.index("data_rescaling")]["invariant"] = True  # pretend WN were invariant
    assert "!" in table(rows)
