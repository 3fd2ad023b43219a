"""Device-side per-layer statistics: where a model is read (taps.py), what is measured (stats.py,
its CPU kernels in kernels.py), where rows wait for the host (ring.py), CUDA graphs of the
statistics (graphs.py), how the rows become a Frame's layers on the host (frame_numbers.py),
and the Probe that wires them to a model's hooks (probe.py), with its two recorders behind one
interface (recorder.py): host_recorder.py on a CPU, device_recorder.py on a GPU.

Nothing is imported here, so ``normcore.models`` can import ``normcore.probe.taps`` without
loading the statistics and their compiled kernels.
"""
