"""normcore.watch on every layer of models nobody wrote taps for, against a bare step, on CPU.

Models: a resnet18-like ConvNet (torchvision's BasicBlock layout, [2, 2, 2, 2] blocks, in-place
ReLUs and residual sums; narrower, for a 2-core machine), a transformer encoder (torch's
nn.TransformerEncoder) and an LSTM model. ``watch(model)`` picks the layers itself (every
conv/Linear with the norm after it, the attention and recurrent modules) and probes every
step. Variants are timed in one process in interleaved rounds, and the ratio to bare is the
median over rounds of the per-round ratio of process CPU time (and of wall time), as in
bench/probe_overhead.py. Target: at most 1.15x.

    nice python bench/watch_any_model.py --threads 1 --rounds 10
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from normcore.watch import watch  # noqa: E402


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class ResNet18ish(nn.Module):
    def __init__(self, width: int = 16, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1, self.relu = nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        blocks, cin = [], width
        for k, cout in enumerate((width, 2 * width, 4 * width, 8 * width)):
            blocks += [BasicBlock(cin, cout, 1 if k == 0 else 2), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(self.layers(self.relu(self.bn1(self.conv1(x)))).mean((2, 3)))


class Encoder(nn.Module):
    def __init__(self, d: int = 128, classes: int = 10) -> None:
        super().__init__()
        self.embed = nn.Linear(16, d)
        layer = nn.TransformerEncoderLayer(d, 4, 4 * d, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x)).mean(1))


class LSTMNet(nn.Module):
    def __init__(self, hidden: int = 128, classes: int = 10) -> None:
        super().__init__()
        self.lstm = nn.LSTM(16, hidden, batch_first=True)
        self.fc, self.ln = nn.Linear(hidden, hidden), nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(F.relu(self.ln(self.fc(out[:, -1]))))


MODELS = {
    "resnet18ish": (ResNet18ish, lambda b: torch.randn(b, 3, 32, 32)),
    "transformer": (Encoder, lambda b: torch.randn(b, 32, 16)),
    "lstm": (LSTMNet, lambda b: torch.randn(b, 32, 16)),
}


def make_step(name: str, watched: bool, batch: int):
    torch.manual_seed(0)
    build, inputs = MODELS[name]
    model = build()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = inputs(batch), torch.randint(0, 10, (batch,))
    w = watch(model, optimizer=opt, on_frame=lambda frame: None) if watched else None

    def step() -> None:
        if w is None:
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return
        with w.step():
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            w.measure(loss, logits, y)
            opt.step()

    return step, (len(w.probes) if w else 0)


def timed(step, n: int) -> tuple[float, float]:
    t, c = time.perf_counter(), time.process_time()
    for _ in range(n):
        step()
    return (time.perf_counter() - t) / n * 1e3, (time.process_time() - c) / n * 1e3


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per variant per round")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = {}
    print(
        f"cpu ({torch.get_num_threads()} threads), batch {args.batch}, {args.rounds} rounds × "
        f"{args.steps} steps, median of per-round ratios"
    )
    print(
        f"{'model':<12} {'layers':>6} {'bare ms':>8} {'watch ms':>9} {'× wall':>7} "
        f"{'bare cpu':>9} {'watch cpu':>10} {'× cpu':>6}"
    )
    for name in args.models.split(","):
        (bare, _), (watched, layers) = (
            make_step(name, False, args.batch),
            make_step(name, True, args.batch),
        )
        for step in (bare, watched):  # warm-up: allocator, the first probe's edges
            timed(step, 3)
        rows = {"bare": [], "watch": []}
        for r in range(args.rounds):
            order = [("bare", bare), ("watch", watched)][:: 1 if r % 2 == 0 else -1]
            for v, step in order:
                rows[v].append(timed(step, args.steps))
        pairs = list(zip(rows["watch"], rows["bare"], strict=True))
        wall = statistics.median(w / b for (w, _), (b, _) in pairs)
        cpu = statistics.median(w / b for (_, w), (_, b) in pairs)
        med = {v: [statistics.median(t[i] for t in rows[v]) for i in (0, 1)] for v in rows}
        out[name] = dict(layers=layers, wall_ratio=wall, cpu_ratio=cpu, ms=med)
        (bare_ms, bare_cpu), (watch_ms, watch_cpu) = med["bare"], med["watch"]
        print(
            f"{name:<12} {layers:>6} {bare_ms:>8.2f} {watch_ms:>9.2f} {wall:>7.3f} "
            f"{bare_cpu:>9.2f} {watch_cpu:>10.2f} {cpu:>6.3f}"
        )
    return out


if __name__ == "__main__":
    main()
