"""Glorot & Bengio 2010 Fig. 2 on Fashion-MNIST: 4x300 sigmoid, standard init
U(-1/sqrt(n), 1/sqrt(n)) (PyTorch's nn.Linear default), batch 10, SGD 0.1.

Per hidden layer, over training: mean and std of the sigmoid outputs, the fraction below 0.1
and above 0.9, the mean slope f'(x)/max f', the fraction |x| > 4.356 (the strict cut) and
|x| > 2.94 (sigma' < 20 % of peak), plus test accuracy. Usage: seed depth act steps
"""

import json
import sys
import time

import torch
import torch.nn.functional as F

from normcore.config import RunConfig
from normcore.data import load_dataset
from normcore.models import build_model

torch.set_num_threads(1)
seed, depth, act, steps = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
batch = int(sys.argv[5]) if len(sys.argv) > 5 else 10
lr = float(sys.argv[6]) if len(sys.argv) > 6 else 0.1
cfg = RunConfig(
    model="mlp",
    depth=depth,
    width=300,
    activation=act,
    dataset="fashion",
    batch_size=batch,
    lr=lr,
    seed=seed,
    device="cpu",
)
torch.manual_seed(seed)
data = load_dataset("fashion", seed=seed)
model = build_model(cfg, data.input_shape, data.n_classes)
opt = torch.optim.SGD(model.parameters(), lr=lr)
xs = {}
for i, b in enumerate(model.blocks):
    b.act_in.register_forward_hook(lambda m, a, o, i=i: xs.__setitem__(i, o.detach()))
probe_x = data.test_x[:1000]


def stats():
    with torch.no_grad():
        model(probe_x)
    rows = []
    for i in range(depth):
        x = xs[i]
        if act == "sigmoid":
            y = torch.sigmoid(x)
            slope = (y * (1 - y)) / 0.25
            cut = 4.356
            loose = 2.94
            lo, hi = (y < 0.1).float().mean(), (y > 0.9).float().mean()
        else:
            y = torch.tanh(x)
            slope = 1 - y * y
            cut = 2.178
            loose = 1.47
            lo, hi = (y < -0.9).float().mean(), (y > 0.9).float().mean()
        rows.append(
            dict(
                m=float(y.mean()),
                s=float(y.std()),
                lo=float(lo),
                hi=float(hi),
                slope=float(slope.mean()),
                strict=float((x.abs() > cut).float().mean()),
                loose=float((x.abs() > loose).float().mean()),
                xm=float(x.mean()),
            )
        )
    return rows


def test_acc():
    with torch.no_grad():
        return float((model(data.test_x).argmax(1) == data.test_y).float().mean())


g = torch.Generator().manual_seed(seed)
n = len(data.train_y)
perm = torch.randperm(n, generator=g)
pos = 0
out = []
t0 = time.time()
checkpoints = sorted(
    set(
        [0, 100, 300, 1000, 2000, 3000, 5000, 7500, 10000, 15000, 20000, 30000, 40000, 60000, 80000]
        + [steps]
    )
)
for step in range(steps + 1):
    if step in checkpoints:
        out.append(dict(step=step, acc=test_acc(), layers=stats(), t=round(time.time() - t0, 1)))
        print(json.dumps(out[-1]), flush=True)
    if step == steps:
        break
    if pos + batch > n:
        perm = torch.randperm(n, generator=g)
        pos = 0
    idx = perm[pos : pos + batch]
    pos += batch
    loss = F.cross_entropy(model(data.train_x[idx]), data.train_y[idx])
    opt.zero_grad()
    loss.backward()
    opt.step()
