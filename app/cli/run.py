"""`normscope run`: train one configuration headless, here or on a server (``--server URL``).

``normscope run`` trains headless: every RunConfig field is a ``--kebab-case`` flag, parsed by
RunConfig itself, so an invalid value exits with status 2 and pydantic's message naming the
field — the same message the API returns.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, TextIO

from pydantic import ValidationError

from app.cli.sources import add_server_option
from normcore.config import FIELD_HELP, RunConfig, choices

EXIT_INVALID = 2  # argparse's own status for bad usage


def add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="train one configuration headless and print a summary",
        description="Train headless: a progress bar on stderr, then a summary table. Exit "
        "status 0 completed, 1 diverged, 2 invalid options.",
    )
    named = choices()  # the catalog's source: help says what the form and the API offer
    for name, field in RunConfig.model_fields.items():
        flag = "--" + name.replace("_", "-")
        said = FIELD_HELP.get(name, name)
        if name in named:
            said += f": {', '.join(named[name])}"
        text = f"{said} (default: {field.default})"
        if field.annotation is bool:
            p.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=text
            )
        else:  # a string: RunConfig parses it, so its error names the field
            p.add_argument(flag, metavar=name.upper(), default=argparse.SUPPRESS, help=text)
    p.add_argument("--out", metavar="FRAMES.jsonl", help="write every frame as a JSON line")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_server_option(p)  # --server URL: train on a remote NormScope (run_remote below)
    p.set_defaults(func=cmd_run)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The RunConfig the flags describe (raises pydantic's ValidationError)."""
    given = {k: v for k, v in vars(args).items() if k in RunConfig.model_fields}
    return RunConfig.model_validate(given)


def validation_message(exc: ValidationError) -> str:
    """'batch_size: batch_size 1 with norm 'batch': ...' — one line per invalid field."""
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        shown = f" (got {value!r})" if not isinstance(value, dict) and value is not None else ""
        lines.append(f"{field}: {msg}{shown}")
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args)
    except ValidationError as exc:
        print(f"normscope run: invalid options\n{validation_message(exc)}", file=sys.stderr)
        return EXIT_INVALID
    if args.server:  # train on the server, stream the frames back
        bar = ProgressBar(cfg.steps, sys.stderr, enabled=not args.quiet)
        return run_remote(args, cfg, bar)
    import torch  # imported here, not for --help

    from app.jobs.threads import available_cores, intra_op_threads
    from normcore.cost import flops_per_step
    from normcore.frames import to_json
    from normcore.train import resolve_device, run

    # the run's own ask, else the server's thread policy (one thread for small runs)
    torch.set_num_threads(
        cfg.threads or intra_op_threads(flops_per_step(cfg), cores=available_cores())
    )

    try:
        resolve_device(cfg.device)
    except ValueError as exc:  # device 'cuda' on a machine without one
        print(f"normscope run: device: {exc}", file=sys.stderr)
        return EXIT_INVALID
    out = open(args.out, "w") if args.out else None  # noqa: SIM115 (closed below)
    bar = ProgressBar(cfg.steps, sys.stderr, enabled=not args.quiet)
    frames: list[dict[str, Any]] = []
    try:
        for frame in run(cfg):
            if out is not None:
                out.write(to_json(frame) + "\n")
            bar.update(frame)
            frames = [frames[0], frame] if frames else [frame]
    finally:
        if out is not None:
            out.close()
    bar.close()
    print(summary(cfg, frames[0], frames[-1]))
    return 0 if frames[-1]["status"] == "completed" else 1


class ProgressBar:
    """A one-line bar on a terminal, redrawn at most 10 times a second. On anything else (a log
    file, CI) carriage returns would pile up into one huge line, so it writes a plain line per
    tenth of the run instead."""

    def __init__(self, total: int, stream: TextIO, enabled: bool = True, width: int = 30):
        self.total, self.stream, self.enabled, self.width = total, stream, enabled, width
        self.last = 0.0
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.tenth, self.written = -1, -1  # the last tenth of the run, and step, written

    def update(self, frame: dict[str, Any]) -> None:
        now = time.monotonic()
        if not self.enabled:
            return
        if not self.tty:
            tenth = 10 * frame["step"] // max(self.total, 1)
            ended = frame["status"] != "running" and frame["step"] != self.written
            if tenth > self.tenth or ended:
                self.tenth, self.written = tenth, frame["step"]
                self.stream.write(self._line(frame).lstrip("\r") + "\n")
                self.stream.flush()
            return
        if now - self.last < 0.1 and frame["status"] == "running":
            return
        self.last = now
        self.stream.write(self._line(frame))
        self.stream.flush()

    def _line(self, frame: dict[str, Any]) -> str:
        done = int(self.width * frame["step"] / self.total)
        bar = "█" * done + "░" * (self.width - done)
        loss = _fmt(frame["loss"])
        rate = _fmt(frame["steps_per_s"], ".0f")
        return f"\r{bar} {frame['step']:,}/{self.total:,}  loss {loss}  {rate} steps/s"

    def close(self) -> None:
        if self.enabled and self.tty and self.last:
            self.stream.write("\n")
            self.stream.flush()


def _fmt(value: float | None, spec: str = ".4g") -> str:
    return "—" if value is None or value != value else format(value, spec)


def summary(cfg: RunConfig, first: dict[str, Any], last: dict[str, Any]) -> str:
    """The table printed after a run: final metrics, then one row per hidden layer."""
    ev = last.get("eval") or {}
    lines = [
        f"{cfg.label()}  ·  {last['status']} at step {last['step']:,} on {last['device']}",
        f"final loss {_fmt(last['loss'])}  acc {_fmt(last['acc'])}  ·  held-out loss "
        f"{_fmt(ev.get('loss'))}  acc {_fmt(ev.get('acc'))}",
    ]
    if ev.get("acc_batch") is not None:
        lines.append(
            f"held-out with batch statistics: loss {_fmt(ev['loss_batch'])}  "
            f"acc {_fmt(ev['acc_batch'])}"
        )
    head = ("layer", "sat", "sat pre", "drift W1", "grad norm", "p15", "p50", "p85")
    rows = [head]
    for layer in last["layers"]:
        rows.append(
            (
                layer["name"],
                _fmt(layer["sat"], ".3f"),
                _fmt(layer["sat_pre"], ".3f"),
                _fmt(layer["w1_first"], ".3g"),
                _fmt(layer["grad_norm"], ".3g"),
                _fmt(layer["p15"], ".3g"),
                _fmt(layer["p50"], ".3g"),
                _fmt(layer["p85"], ".3g"),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines.append("")
    for r in rows:
        lines.append(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    lines.append(
        "sat: saturated fraction of the activation's input (before the norm: sat pre); "
        "drift: W1 to the first probe"
    )
    return "\n".join(lines)


def run_remote(args: argparse.Namespace, config: RunConfig, bar: ProgressBar) -> int:
    """`normscope run --server URL`: the run trains there and its frames stream back through
    the same progress bar, `--out` file and summary as a local run. Exit status as local:
    0 completed, 1 ended otherwise (diverged, failed, ...), 2 rejected config."""
    from normcore.client import ApiError, Client
    from normcore.frames import to_json

    out = open(args.out, "w") if args.out else None  # noqa: SIM115 (closed below)
    first = last = None
    try:
        with Client(args.server, token=args.token) as client:
            run = client.create_run(config)
            print(f"run {run['id']} on {args.server}", file=sys.stderr)
            try:
                for frame in client.iter_frames(run["id"]):
                    first = first or frame
                    last = frame
                    bar.update(frame)
                    if out is not None:
                        out.write(to_json(frame) + "\n")
            except KeyboardInterrupt:
                client.cancel(run["id"])
                print(f"\ncancelled run {run['id']}", file=sys.stderr)
                return 130
            done = client.run(run["id"])
    except ApiError as exc:
        print(f"normscope run: {exc}", file=sys.stderr)
        return 2 if exc.status == 422 else 1
    finally:
        if out is not None:
            out.close()
    bar.close()
    if first is not None and last is not None:
        print(summary(config, first, last))
    if done.get("error"):
        print(f"normscope run: run {done['id']} {done['status']}: {done['error']}", file=sys.stderr)
    return 0 if done["status"] == "completed" else 1
