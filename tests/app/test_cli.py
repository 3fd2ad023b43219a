"""`normscope run`: trains headless, writes JSON lines, rejects invalid options by field."""

import io
import json
import re

import pytest
import torch

from app.cli import build_parser, main
from app.cli.run import ProgressBar
from normcore.config import RunConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def test_run_trains_prints_a_summary_and_writes_frames(tmp_path, capsys):
    out = tmp_path / "frames.jsonl"
    argv = [
        "run",
        "--norm",
        "batch",
        "--model",
        "mlp",
        "--depth",
        "3",
        "--width",
        "20",
        "--activation",
        "sigmoid",
        "--dataset",
        "digits",
        "--batch-size",
        "30",
        "--lr",
        "0.1",
        "--steps",
        "30",
        "--probe-every",
        "10",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "30/30" in captured.err  # the progress bar, on stderr
    assert "completed at step 30" in captured.out
    assert "final loss" in captured.out and "held-out" in captured.out
    rows = [line.split() for line in captured.out.splitlines()]
    assert [
        "layer",
        "sat",
        "sat",
        "pre",
        "drift",
        "W1",
        "grad",
        "norm",
        "p15",
        "p50",
        "p85",
    ] in rows
    assert [r[0] for r in rows if r and re.fullmatch(r"h\d+", r[0])] == ["h1", "h2", "h3"]
    frames = [json.loads(line) for line in out.read_text().splitlines()]
    assert [f["step"] for f in frames] == [1, 11, 21, 30]
    for frame in frames:
        assert {"seq", "step", "loss", "layers"} <= set(frame)
        for layer in frame["layers"]:
            assert {"name", "mean", "std", "p15", "p50", "p85", "sat", "grad_norm"} <= set(layer)
            assert {"lo", "hi", "counts", "under", "over"} <= set(layer["hist"])


@pytest.mark.parametrize(
    ("argv", "field", "message"),
    [
        (["--norm", "batch", "--batch-size", "1"], "batch_size", "needs more than one value"),
        (["--norm", "bn2"], "norm", "norm 'bn2' is unknown; known: none, batch"),
        (["--lr", "-1"], "lr", "greater than 0"),
        (["--width", "abc"], "width", "valid integer"),
        (["--steps", "9999999"], "steps", "less than or equal to 1000000"),
    ],
)
def test_invalid_options_exit_non_zero_with_the_message_naming_the_field(
    argv, field, message, capsys
):
    assert main(["run", *argv]) == 2
    err = capsys.readouterr().err
    assert f"{field}: " in err and message in err


def test_every_run_config_field_is_a_kebab_case_flag():
    parser = build_parser()
    for name, field in RunConfig.model_fields.items():
        flag = "--" + name.replace("_", "-")
        args = parser.parse_args(
            ["run", flag, "x"] if field.annotation is not bool else ["run", flag]
        )
        assert name in vars(args)
    assert vars(parser.parse_args(["run", "--no-affine"]))["affine"] is False


def test_run_help_says_what_each_field_means_and_lists_the_choices(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "--norm NORM the normalization: none, batch, layer, weight, cosine, group" in text
    assert "--init INIT initial weights: PyTorch's default, or N(0, init_std)" in text
    assert "--lr LR learning rate (default: 0.1)" in text
    assert not re.search(r"--(\w+) \w+ \1 \(default", text), "a flag's name as its own help"


def test_an_unknown_subcommand_or_flag_is_a_usage_error():
    with pytest.raises(SystemExit) as exc:
        main(["run", "--bogus", "1"])
    assert exc.value.code == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_run_on_a_missing_gpu_exits_2_naming_the_device(capsys):
    assert main(["run", "--device", "cuda", "--steps", "1"]) == 2
    assert "device: device 'cuda' is not available" in capsys.readouterr().err


def test_a_diverged_run_exits_1_after_its_summary(capsys):
    argv = [
        "run",
        "--activation",
        "relu",
        "--lr",
        "1000",
        "--steps",
        "50",
        "--device",
        "cpu",
        "--quiet",
    ]
    assert main(argv) == 1
    assert "diverged at step" in capsys.readouterr().out


def test_progress_off_a_terminal_is_one_plain_line_per_tenth():
    """Piped to a log file the bar must not pile carriage returns into one huge line."""
    stream = io.StringIO()  # not a tty
    bar = ProgressBar(200, stream)
    for step in range(1, 201):
        bar.update({"step": step, "status": "running", "loss": 1.0, "steps_per_s": 50.0})
    bar.update({"step": 200, "status": "completed", "loss": 1.0, "steps_per_s": 50.0})
    bar.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and len(lines) == 11  # step 1, then each 10 %
    assert lines[0].endswith("1/200  loss 1  50 steps/s") and "200/200" in lines[-1]
