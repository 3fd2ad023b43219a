"""Replay a device function as a captured CUDA graph: one launch instead of dozens.

A GPU training step of a small or medium model is bound by the host launching kernels
(~5–10 µs each, and as much again in PyTorch's dispatch), so the probes' few dozen statistics
kernels would cost more host time than the statistics cost the GPU. ``GraphReplay`` captures
such a function once its inputs sit at device addresses it has seen them at within the last
few calls (the caching allocator's steady state: a training step allocates the same sizes in
the same order; where the last step's loss is still alive during the next, addresses
alternate between two sets) and from then on replays that graph whenever they do again; any
other call runs the function eagerly, so a changed address never reads stale memory, it only
costs the eager launches.

The function must read only the tensors it is keyed on and tensors that outlive its graphs
(parameters, preallocated buffers), write only into the latter, branch on nothing but the
key, and never sync the host. Capture runs on a side stream and, unlike ``torch.cuda.graph``,
does not synchronize the device or empty the allocator's cache (which would move the very
addresses the graphs are keyed on). Off CUDA the function simply runs.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Sequence

import torch

MAX_GRAPHS = 4  # kept at once (least recently replayed first out): each holds a memory pool
MAX_CAPTURES = 16  # per function and run: an allocator that never settles falls back to eager
RECENT = 8  # a key seen again within this many calls is captured


class GraphReplay:
    """``fn`` replayed from captured CUDA graphs keyed on its inputs' addresses."""

    def __init__(self, fn: Callable[[], None], device: torch.device) -> None:
        self.fn, self.device = fn, device
        self.enabled = device.type == "cuda"
        self.graphs: OrderedDict[Hashable, torch.cuda.CUDAGraph] = OrderedDict()
        self.recent: deque[Hashable] = deque(maxlen=RECENT)
        self.captures = self.replays = self.eager = 0

    def __call__(self, inputs: Sequence[torch.Tensor | None], extra: Hashable = ()) -> None:
        """Run ``fn`` on the tensors now in ``inputs``; ``extra``: host values it depends on."""
        if not self.enabled:
            self.fn()
            return
        key = (
            extra,
            *(None if t is None else (t.data_ptr(), t.dtype, t.shape, t.stride()) for t in inputs),
        )
        graph = self.graphs.get(key)
        if graph is None and key in self.recent and self.captures < MAX_CAPTURES:
            graph = self._capture(key)
        self.recent.append(key)
        if graph is None:
            self.eager += 1
            self.fn()
            return
        self.graphs.move_to_end(key)
        self.replays += 1
        graph.replay()

    def _capture(self, key: Hashable) -> torch.cuda.CUDAGraph:
        graph = torch.cuda.CUDAGraph()
        main = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(main)  # capture records kernels; it runs nothing
        with torch.cuda.stream(side):
            graph.capture_begin()
            try:
                self.fn()
            finally:
                graph.capture_end()
        main.wait_stream(side)
        self.captures += 1
        self.graphs[key] = graph
        if len(self.graphs) > MAX_GRAPHS:
            self.graphs.popitem(last=False)[1].reset()
        return graph
