"""What a watched run's frames must say beyond their types: a histogram's lo below its hi,
steps that never go back, only the documented keys in eval and ics."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.errors import FieldError
from app.schemas import FrameIn
from app.services.watched import _check


def frame(seq: int = 0, step: int = 1, **extra) -> dict:
    layer = {"name": "fc", "hist": {"lo": -1.0, "hi": 1.0, "counts": [1, 2]}}
    return {"seq": seq, "step": step, "time": 0.0, "status": "running", "layers": [layer], **extra}


def test_a_frame_as_normcore_writes_it_is_taken():
    f = FrameIn.model_validate(
        frame(eval={"loss": 0.5, "acc": 0.9}, ics=[{"name": "fc", "l2": 0.1, "cos": 0.99}])
    )
    assert f.eval is not None and f.eval.loss == 0.5 and f.ics is not None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"layers": [{"name": "fc", "hist": {"lo": 1.0, "hi": 1.0, "counts": [1]}}]},
            r"lo \(1.0\) must be below hi \(1.0\)",
        ),
        ({"layers": [{"name": "fc", "hist": {"lo": 2.0, "hi": -1.0, "counts": [1]}}]}, "below hi"),
        ({"eval": {"loss": 0.5, "nested": {"a": 1}}}, "nested"),
        ({"ics": [{"name": "fc", "l2": 0.1, "extra": [1, 2]}]}, "extra"),
        (
            {"layers": [{"name": "fc", "hist": {"lo": 0, "hi": 1, "counts": [1], "more": 1}}]},
            "more",
        ),
    ],
)
def test_what_a_frame_cannot_say_is_refused(change, message):
    with pytest.raises(ValidationError, match=message):
        FrameIn.model_validate({**frame(), **change})


def test_steps_never_go_back():
    run = {"last_seq": 0, "step": 10, "config": {"layers": ["fc"]}}
    _check(run, [(0, FrameIn.model_validate(frame(seq=1, step=10)))])  # equal: taken
    with pytest.raises(FieldError, match="step 9 goes back: the frame before is at step 10"):
        _check(run, [(0, FrameIn.model_validate(frame(seq=1, step=9)))])
    with pytest.raises(FieldError, match="step 11 goes back: the frame before is at step 12"):
        _check(
            run,
            [
                (0, FrameIn.model_validate(frame(seq=1, step=12))),
                (1, FrameIn.model_validate(frame(seq=2, step=11))),
            ],
        )
