"""The Lightning and transformers adapters (normcore.integrations) on real ``Trainer.fit`` and
``Trainer.train`` calls, each producing a watched run on a real server (tests/utils/server.py).

The models are small and built here (a Lightning MLP with a BatchNorm; a 2-layer BERT from a
config, random weights: nothing is downloaded, HF_HUB_OFFLINE=1), trained a few steps on CPU;
whatever the frameworks write goes to tmp_path."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from normcore.client import Client
from normcore.frames import TERMINAL
from normcore.integrations import lightning as nl
from normcore.integrations import transformers as nt
from tests.utils.runs import stored_frames
from tests.utils.server import ROOT, free_port

STATS = ("mean", "std", "p50")

# Lightning's own notes on a CPU test run, not about the code under test: a DataLoader
# without workers, and its use of torch's deprecated pytree LeafSpec (Lightning 2.6, torch 2.13)
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*does not have many workers:UserWarning"),
    pytest.mark.filterwarnings(
        r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated:FutureWarning"
    ),
]


@pytest.fixture(scope="module")
def client(server):
    with Client(server.url, token=server.token) as client:
        yield client


@pytest.fixture
def target(server) -> dict:
    """Where an adapter sends its frames: the shared live server."""
    return {"url": server.url, "token": server.token}


def assert_run(client: Client, run_id: str, layers: list[str], status: str, frames: int):
    """The stored run: its status, every frame naming ``layers`` with finite statistics and
    a histogram of the probed values. The last frame says how the loop ended; a run the
    loop left by raising was cancelled by the client after its last frame (``running``)."""
    run = client.run(run_id)
    assert (run["status"], run["frame_count"]) == (status, frames)
    assert status in TERMINAL and run["config"]["layers"] == layers
    stored = stored_frames(client._http, run_id)
    assert [f["seq"] for f in stored] == list(range(frames)) and stored[-1]["status"] == (
        status if status == "completed" else "running"
    )
    for frame in stored:
        assert [layer["name"] for layer in frame["layers"]] == layers
        assert math.isfinite(frame["loss"])
        for layer in frame["layers"]:
            assert all(math.isfinite(layer[key]) for key in STATS), layer
            assert sum(layer["hist"]["counts"]) > 0 and layer["hist"]["lo"] < layer["hist"]["hi"]
    return run, stored


# --- Lightning ----------------------------------------------------------------------------------
class TinyNet(pl.LightningModule):
    def __init__(self, fail_at: int | None = None, skip_at: int | None = None):
        super().__init__()
        self.fc1, self.bn1, self.fc2 = nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Linear(16, 3)
        self.fail_at, self.skip_at = fail_at, skip_at

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.bn1(self.fc1(x))))  # (B, 3)

    def training_step(self, batch, batch_idx):
        if batch_idx == self.fail_at:
            raise KeyError("a training step that raises")
        if batch_idx == self.skip_at:
            return None  # Lightning skips the backward and the optimizer step
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def lightning_fit(
    tmp_path,
    callback,
    model: pl.LightningModule,
    steps: int = 7,
    examples: int = 96,
    drop_last: bool = False,
    **options,
):
    """``Trainer.fit`` of ``steps`` optimizer steps on batches of 16; nothing written."""
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(examples, 8), torch.randint(0, 3, (examples,)))
    trainer = pl.Trainer(
        max_steps=steps,
        **options,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[callback],
    )
    trainer.fit(model, DataLoader(data, batch_size=16, drop_last=drop_last))


def test_lightning_fit_makes_a_completed_watched_run(client, target, tmp_path):
    callback = nl.NormScopeCallback(**target, every=2)
    lightning_fit(tmp_path, callback, TinyNet())
    assert callback.session is not None and callback.session.closed
    # steps 1, 3, 5 and the planned last, 7; fc1 paired with the BatchNorm after it
    run, frames = assert_run(client, callback.watch.run_id, ["fc1", "fc2"], "completed", 4)
    assert [f["step"] for f in frames] == [1, 3, 5, 7] and run["steps"] == 7
    assert frames[0]["lr"] == pytest.approx(0.05) and run["label"] == "TinyNet"
    # fc1's activation input is the BatchNorm's output: mean 0, std 1 over the batch
    assert abs(frames[0]["layers"][0]["mean"]) < 1e-4
    assert frames[0]["layers"][0]["std"] == pytest.approx(1.0, abs=0.05)
    assert not list(tmp_path.iterdir())  # no logs, no checkpoints


def test_lightning_fit_that_raises_ends_its_run_cancelled(client, target, tmp_path):
    callback = nl.NormScopeCallback(**target, layers=["fc2"])
    with pytest.raises(KeyError, match="a training step that raises"):
        lightning_fit(tmp_path, callback, TinyNet(fail_at=3))
    assert callback.session is not None and callback.session.closed
    # every=10: step 1 probed, then the fit raised in step 4
    assert_run(client, callback.watch.run_id, ["fc2"], "cancelled", 1)


@pytest.mark.filterwarnings("ignore:`training_step` returned `None`:UserWarning")  # meant here
def test_lightning_a_batch_without_an_optimizer_step_leaves_no_frame(tmp_path):
    callback = nl.NormScopeCallback(every=1)  # no server: the frames stay in the Watch
    lightning_fit(tmp_path, callback, TinyNet(skip_at=2))
    # batch 3's training_step returned None: no backward, no optimizer step, no row
    frames, batches = callback.watch.frames, callback.watch.steps
    assert batches >= 7 and [f["step"] for f in frames] == [1, 2, *range(4, batches + 1)]
    assert frames[-1]["status"] == "completed" and callback.session.closed


def test_lightning_gradient_accumulation_is_refused_at_the_start(tmp_path):
    callback = nl.NormScopeCallback()
    with pytest.raises(ValueError, match="accumulate_grad_batches: .* not 2"):
        lightning_fit(tmp_path, callback, TinyNet(), accumulate_grad_batches=2)
    assert callback.session is None


# --- transformers ---------------------------------------------------------------------------
class Tokens(Dataset):
    """Random token sequences with a class label: a sequence classification set."""

    def __init__(self, n: int = 64, length: int = 12, vocab: int = 50):
        generator = torch.Generator().manual_seed(0)
        self.ids = torch.randint(1, vocab, (n, length), generator=generator)
        self.labels = torch.randint(0, 2, (n,), generator=generator)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def tiny_bert():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=2,
    )
    return BertForSequenceClassification(config)


def hf_train(tmp_path, callback, steps: int = 5, examples: int = 64, **options):
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=steps,
        **options,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        eval_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    data = Tokens(n=examples)
    trainer = Trainer(model=tiny_bert(), args=args, train_dataset=data, callbacks=[callback])
    trainer.train()


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def test_transformers_train_makes_a_completed_watched_run(client, target, tmp_path, offline):
    picked = ["bert.encoder.layer.0.attention.self.query", "bert.pooler.dense", "classifier"]
    with nt.NormScopeCallback(**target, every=2, layers=picked) as callback:
        hf_train(tmp_path, callback)
    run, frames = assert_run(client, callback.watch.run_id, picked, "completed", 3)
    assert [f["step"] for f in frames] == [1, 3, 5] and run["steps"] == 5
    assert run["label"] == "BertForSequenceClassification" and run["config"]["activation"] == "gelu"
    # logits (8, 2) and integer labels: the batch accuracy, a multiple of 1/8
    assert all(f["acc"] is not None and (f["acc"] * 8) % 1 == 0 for f in frames)


def test_transformers_watches_the_whole_model_by_default(client, target, tmp_path, offline):
    callback = nt.NormScopeCallback(**target, every=4)
    hf_train(tmp_path, callback, steps=2)
    layers = client.run(callback.watch.run_id)["config"]["layers"]
    for block in ("bert.encoder.layer.0", "bert.encoder.layer.1"):
        assert {f"{block}.attention.self.query", f"{block}.intermediate.dense"} <= set(layers)
    assert layers[-1] == "classifier"
    assert_run(client, callback.watch.run_id, layers, "completed", 2)  # steps 1 and 2 (last)


def test_transformers_train_that_raises_ends_its_run_cancelled(client, target, tmp_path, offline):
    class Broken(Tokens):
        """Reading its 30th example raises: in the 4th batch of 8."""

        reads = 0

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            self.reads += 1
            if self.reads == 30:
                raise KeyError("a batch that cannot be read")
            return super().__getitem__(i)

    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=20,
        per_device_train_batch_size=8,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    data = Broken()
    with pytest.raises(KeyError, match="cannot be read"):
        only_head = lambda path, module: path == "classifier"  # noqa: E731  (a predicate)
        with nt.NormScopeCallback(**target, layers=only_head) as callback:
            Trainer(model=tiny_bert(), args=args, train_dataset=data, callbacks=[callback]).train()
    assert callback.session is not None and callback.session.closed
    # every=10: step 1 probed, then train() raised in step 4
    assert_run(client, callback.watch.run_id, ["classifier"], "cancelled", 1)


def test_transformers_gradient_accumulation_is_refused_when_training_begins(tmp_path, offline):
    callback = nt.NormScopeCallback()
    with pytest.raises(ValueError, match="gradient_accumulation_steps: .* not 2"):
        hf_train(tmp_path, callback, steps=2, gradient_accumulation_steps=2)
    assert callback.session is None


def test_a_last_partial_batch_is_refused_when_training_starts_and_dropped_it_trains(
    tmp_path, offline
):
    # 100 examples in batches of 16, 60 in batches of 8
    with pytest.raises(ValueError, match=r"drop_last: .* holds 4 of 16 examples \(100 in all\)"):
        lightning_fit(tmp_path, nl.NormScopeCallback(), TinyNet(), examples=100)
    with pytest.raises(ValueError, match="dataloader_drop_last: .* holds 4 of 8 examples"):
        hf_train(tmp_path, nt.NormScopeCallback(), examples=60)
    # dropped, training goes on into a second epoch: 6 batches of 16 an epoch, 7 of 8
    pl_callback, hf_callback = nl.NormScopeCallback(every=3), nt.NormScopeCallback(every=4)
    lightning_fit(tmp_path, pl_callback, TinyNet(), steps=7, examples=100, drop_last=True)
    hf_train(tmp_path, hf_callback, steps=8, examples=60, dataloader_drop_last=True)
    assert [f["step"] for f in pl_callback.watch.frames] == [1, 4, 7]
    assert [f["step"] for f in hf_callback.watch.frames] == [1, 5, 8]


# A loop that dies with its watch open (a Trainer that raised outside any ``with``): the
# interpreter's exit ends the run cancelled, its measured step stored.
DIES = """
import sys, torch
from torch import nn
from normcore.integrations.session import WatchOptions, WatchSession
model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
session = WatchSession(model, opt, WatchOptions(url=sys.argv[1], every=1), steps=100)
print(session.run_id, flush=True)
for step in range(2):
    session.begin()
    loss = model(torch.randn(16, 4)).square().mean()
    opt.zero_grad()
    loss.backward()
    if step == 1:
        raise KeyError("the training died")
    session.measure(loss)
    opt.step()
    session.end()
"""


def test_a_loop_that_dies_with_its_watch_open_ends_its_run_at_exit(client, server):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", DIES, server.url], env=env, capture_output=True, text=True
    )
    assert done.returncode == 1 and "KeyError: 'the training died'" in done.stderr
    run_id = done.stdout.strip()
    run, _ = assert_run(client, run_id, ["0", "2"], "cancelled", 1)
    assert run["label"] == "Sequential"


# --- options ------------------------------------------------------------------------------------
@pytest.mark.parametrize("adapter", [nl.NormScopeCallback, nt.NormScopeCallback])
@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"every": 0}, ValueError, "every: a whole number >= 1, not 0"),
        ({"activation": "swish"}, ValueError, "activation: one of gelu, relu, sigmoid, tanh"),
        ({"url": "127.0.0.1:8000"}, ValueError, "url: a server's http(s) address, not '127"),
        ({"token": "t"}, ValueError, "token: given without url"),
        ({"url": "http://h", "out": "f.jsonl"}, ValueError, "out: frames go to the server"),
        ({"layers": 3}, TypeError, "layers: module paths or a predicate"),
        ({"layers": ["fc1", 2]}, TypeError, "layers: module paths or a predicate"),
        ({"evry": 2}, TypeError, "evry"),
    ],
)
def test_a_bad_option_is_refused_when_the_callback_is_made(adapter, options, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        adapter(**options)


def test_layers_given_as_a_generator_are_read_once_and_kept(tmp_path):
    callback = nl.NormScopeCallback(layers=(name for name in ["fc2"]))
    lightning_fit(tmp_path, callback, TinyNet(), steps=1)
    assert [layer["name"] for layer in callback.watch.frames[-1]["layers"]] == ["fc2"]


def test_an_unknown_layer_is_named_when_fit_starts(tmp_path):
    callback = nl.NormScopeCallback(layers=["fc1", "fc9"])
    with pytest.raises(
        ValueError, match="layers: 'fc9' not among the layers watch picks: fc1, fc2"
    ):
        lightning_fit(tmp_path, callback, TinyNet(), steps=1)


def test_a_server_that_does_not_answer_is_named_when_fit_starts(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    callback = nl.NormScopeCallback(url=url)
    with pytest.raises(ConnectionError, match=f"url: no NormScope server answers at '{url}'"):
        lightning_fit(tmp_path, callback, TinyNet(), steps=1)
    assert callback.session is None
