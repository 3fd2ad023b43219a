"""An independent reference for a Watch's frames: float64 clones of each watched layer's
outputs, taken in forward hooks of the test's own (before any later in-place op), and the
frame's numbers recomputed from them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from normcore.probe import kernels
from normcore.probe.host_recorder import HostRecorder
from normcore.watch import Watch
from tests.utils.own_model import training_step

NUMBA = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is missing")
# every probe path, the host ones only where numba is installed
PATHS = [
    pytest.param("in-hooks", marks=NUMBA),
    pytest.param("after-backward", marks=NUMBA),
    "torch",
    "staged",
]


def watched(w: Watch) -> list[tuple[str, object]]:
    """The layers a Watch measures as a layer map: a module alone, or (layer, norm)."""
    return [(p.name, p.pre if p.pre is p.act else (p.pre, p.act)) for p in w.points]


def output(out) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


def numpy_hist(x: np.ndarray, lo: float, hi: float, bins: int):
    """Counts of [a, b) bins on [lo, hi], under (x < lo) and over (x >= hi), in float64."""
    inside = x[(x >= lo) & (x < hi)]
    k = np.minimum(((inside - lo) / ((hi - lo) / bins)).astype(np.int64), bins - 1)
    return np.bincount(k, minlength=bins), int((x < lo).sum()), int((x >= hi).sum())


class Clones:
    """Per probed step, float64 clones of each layer's output (``name``) and of its first
    module's output (``name/pre``: the layer's own, before its norm), from forward hooks."""

    def __init__(self, layers: dict) -> None:
        self.seen: dict[str, list[np.ndarray]] = {}
        self.steps: list[dict[str, np.ndarray]] = []
        self._handles = []
        for layer, spec in layers.items():
            first, norm = spec if isinstance(spec, tuple) else (spec, spec)
            self._handles.append(first.register_forward_hook(self._keep(f"{layer}/pre")))
            self._handles.append(norm.register_forward_hook(self._keep(layer)))

    def _keep(self, key: str):
        def hook(module: nn.Module, args, out) -> None:
            self.seen.setdefault(key, []).append(output(out).detach().double().numpy().copy())

        return hook

    def step(self, w: Watch, model, opt, x, y) -> None:
        """One training step around ``w``, its clones kept."""
        self.seen.clear()
        training_step(w, model, opt, x, y)
        self.steps.append({k: np.concatenate([c.ravel() for c in v]) for k, v in self.seen.items()})

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def assert_on_path(w: Watch, path: str) -> None:
    """Each layer's probe took the recorder ``path`` asked for."""
    host = path in ("in-hooks", "after-backward")
    recorders = [p.recorder for p in w.probes]
    assert all(isinstance(r, HostRecorder) == host and r.path == path for r in recorders)
    assert all(r.eager == (path == "in-hooks") for r in recorders if isinstance(r, HostRecorder))


def assert_frames_match(w: Watch, clones: Clones, bins: int, label: str) -> None:
    """Every frame's mean, std, saturation (x <= 0: relu, gelu), saturation before the norm and
    histogram against the clones of its step, recomputed in float64."""
    assert len(w.frames) == len(clones.steps)
    for frame, record in zip(w.frames, clones.steps, strict=True):
        for layer in frame["layers"]:
            act, pre = record[layer["name"]], record[layer["name"] + "/pre"]
            where = f"{label} step {frame['step']} {layer['name']}"
            assert layer["mean"] == pytest.approx(act.mean(), rel=1e-5, abs=1e-5), where
            assert layer["std"] == pytest.approx(act.std(), rel=1e-4), where
            assert layer["sat"] == pytest.approx((act <= 0).mean()), where
            assert layer["sat_pre"] == pytest.approx((pre <= 0).mean()), where
            h = layer["hist"]
            counts, under, over = numpy_hist(act, h["lo"], h["hi"], bins)
            got = np.array([h["under"], *h["counts"], h["over"]])
            # float32 binning may put a value lying on a bin edge in the next bin
            assert np.abs(got - [under, *counts, over]).sum() <= 2, where
