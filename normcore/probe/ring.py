"""The probe's ring buffer: one row per probed step, on the device, read by the host in bulk.

A row is a layer histogram block ``hist`` (L, S), the per-layer columns ``scal`` (L, F,
float64, NaN until written: normcore.probe.frame_numbers.FIELDS) and ``glob`` (loss,
accuracy). Rows are written at ``index``, a device-side counter, so a captured CUDA graph
writes the right row on every replay; nothing reads the device until ``read``, which copies
the used rows to (pinned, on CUDA) host memory in one go: the probe's one host sync per flush.
"""

from __future__ import annotations

import numpy as np
import torch


class Ring:
    def __init__(self, rows: int, layers: int, slots: int, fields: int, device: torch.device):
        self.rows, self.device = rows, device
        self.hist = torch.zeros(rows, layers, slots, device=device)
        self.scal = torch.full(
            (rows, layers, fields), float("nan"), dtype=torch.float64, device=device
        )
        self.glob = torch.zeros(rows, 2, dtype=torch.float64, device=device)
        self.index = torch.zeros(1, dtype=torch.int64, device=device)  # the next row
        self.count = 0  # rows written since the last read (the host's count)
        pin = device.type == "cuda"
        self._host = [
            torch.empty(t.shape, dtype=t.dtype, pin_memory=pin)
            for t in (self.hist, self.scal, self.glob)
        ]
        if device.type == "cpu":  # numpy views of the same memory, for host_row
            self._views = [t.numpy() for t in (self.hist, self.scal, self.glob, self.index)]

    def full(self) -> bool:
        return self.count >= self.rows

    def write(self, hist: torch.Tensor, scal: torch.Tensor, glob: torch.Tensor) -> None:
        """The step's rows at ``index`` and on to the next, on the device (capturable)."""
        for ring, row in ((self.hist, hist), (self.scal, scal), (self.glob, glob)):
            ring.index_copy_(0, self.index, row[None])
        self.index.add_(1)

    def drop_row(self) -> None:
        """Forget the row written last (a step whose other layers failed to measure)."""
        self.index.sub_(1)
        self.count -= 1

    def host_row(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CPU: numpy views of the next row (hist, scal, glob), for the caller to fill;
        ``index`` moves on."""
        hist, scal, glob, index = self._views
        r = self.count  # (the device counter equals it on a CPU: written, dropped, read alike)
        index[0] = r + 1
        return hist[r], scal[r], glob[r]

    def read(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The used rows on the host, (hist, scal, glob) of ``count`` rows; the ring is empty
        after (the one sync)."""
        n, self.count = self.count, 0
        self.index.zero_()
        if self.device.type == "cpu":  # host memory already: views of its rows, no copy
            hist, scal, glob = (v[:n] for v in self._views[:3])  # (read before the next write)
            return hist, scal, glob
        for dev, host in zip((self.hist, self.scal, self.glob), self._host, strict=True):
            host[:n].copy_(dev[:n], non_blocking=True)
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()
        hist, scal, glob = (h[:n].numpy() for h in self._host)
        return hist, scal, glob
