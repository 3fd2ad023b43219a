"""normcore: the science of NormScope — norms, models, device-side probes, the trainer.

Importable and useful without the server::

    from normcore import RunConfig, run
    for frame in run(RunConfig(norm="batch", steps=300)):
        print(frame["step"], frame["loss"], frame["layers"][-1]["p50"])
"""

from normcore.config import RunConfig
from normcore.data import Dataset, batch_indices, load_dataset
from normcore.drift import ics, jensen_shannon, wasserstein1
from normcore.frames import Frame, decode, encode, to_json
from normcore.models import build_model
from normcore.norms import (
    NORMS,
    NormSpec,
    create_norm_layer,
    make_conv2d,
    make_linear,
    norm_catalog,
)
from normcore.probe.probe import Probe
from normcore.probe.taps import ProbePoint, Tap
from normcore.train import resolve_device, run


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("normscope")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


__version__ = _version()

__all__ = [
    "NORMS",
    "Dataset",
    "Frame",
    "NormSpec",
    "Probe",
    "ProbePoint",
    "RunConfig",
    "Tap",
    "__version__",
    "batch_indices",
    "build_model",
    "create_norm_layer",
    "decode",
    "encode",
    "ics",
    "jensen_shannon",
    "load_dataset",
    "make_conv2d",
    "make_linear",
    "norm_catalog",
    "resolve_device",
    "run",
    "to_json",
    "wasserstein1",
]
