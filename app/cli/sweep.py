"""`normscope sweep`: a grid of runs over config fields × seeds, ending in a table of the metric.

    normscope sweep --grid norm=batch,group --grid batch_size=2,4,8,16,32 --seeds 3
    normscope sweep --preset wu-he --server http://gpu-box:8000 --json result.json
    normscope sweep --base-preset figure-1 --grid depth=2,4,8 --base steps=500

Locally the sweep runs on the server's own machinery (the store in NORMSCOPE_DATA_DIR, the
local or Ray executor of NORMSCOPE_EXECUTOR), so its runs show up in the dashboard later;
with --server URL a remote NormScope runs it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from app.cli.sources import add_server_option
from normcore.sweep import METRICS, SWEEP_PRESETS, parse_value

EXIT_INVALID = 2


def add_sweep_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="run a grid of runs over config fields with seeds; print mean ± std per cell",
        description="Every cell is validated before anything runs. Values are parsed as "
        "JSON where they can be (2, 0.1, true, null), else taken as text (batch, group).",
    )
    base = p.add_mutually_exclusive_group()
    base.add_argument(
        "--preset",
        choices=sorted(SWEEP_PRESETS),
        help="a built-in sweep (base, grid, seeds and metric)",
    )
    base.add_argument(
        "--base-preset", metavar="ID", help="the first run of a Launch preset as the base config"
    )
    p.add_argument(
        "--base",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a base config field (repeatable), e.g. --base steps=500",
    )
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="FIELD=V1,V2,...",
        help="a field to vary and its values (repeatable)",
    )
    p.add_argument("--seeds", type=int, default=None, help="seeds per cell (default 1)")
    p.add_argument(
        "--metric",
        choices=list(METRICS),
        default=None,
        help="what to summarise (default eval_acc: final held-out accuracy)",
    )
    p.add_argument(
        "--skip-invalid",
        action="store_true",
        help="skip invalid cells (listed) instead of refusing the sweep",
    )
    p.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write the whole sweep (cells, summary) as JSON",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    add_server_option(p)
    p.set_defaults(func=cmd_sweep)


def request_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The POST /api/sweeps body the flags describe (ValueError naming the bad flag)."""
    request: dict[str, Any] = {"base": {}, "grid": {}, "seeds": 1, "metric": "eval_acc"}
    if args.preset:
        preset = SWEEP_PRESETS[args.preset]
        request.update({k: preset[k] for k in ("base", "grid", "seeds", "metric")})
    elif args.base_preset:
        from app.api.catalog import PRESETS

        found = {p.id: p for p in PRESETS}
        if args.base_preset not in found:
            raise ValueError(
                f"--base-preset {args.base_preset!r} is unknown; known: {', '.join(found)}"
            )
        request["base"] = dict(found[args.base_preset].runs[0])
    for item in args.base:
        name, value = _split(item, "--base")
        request["base"][name] = parse_value(value)
    for item in args.grid:
        name, values = _split(item, "--grid")
        request["grid"][name] = [parse_value(v) for v in values.split(",")]
    if not request["grid"]:
        raise ValueError("give at least one --grid FIELD=V1,V2 (or --preset)")
    if args.seeds is not None:
        request["seeds"] = args.seeds
    if args.metric is not None:
        request["metric"] = args.metric
    request["skip_invalid"] = bool(args.skip_invalid)
    return request


def _split(item: str, flag: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name or not value:
        raise ValueError(f"{flag} {item!r}: write FIELD=VALUE")
    return name.strip(), value.strip()


def cmd_sweep(args: argparse.Namespace) -> int:
    try:
        request = request_from_args(args)
    except ValueError as exc:
        print(f"normscope sweep: {exc}", file=sys.stderr)
        return EXIT_INVALID
    backend = _remote(args) if args.server else _local()
    with backend as (create, read):
        try:
            sweep = create(request)
        except _Invalid as exc:
            print(f"normscope sweep: invalid sweep\n{exc}", file=sys.stderr)
            return EXIT_INVALID
        for skipped in sweep["skipped"]:
            print(
                f"skipped cell {skipped['point']} {skipped['values']}: {skipped['field']}: "
                f"{skipped['message']}",
                file=sys.stderr,
            )
        bar = _Progress(sys.stderr, enabled=not args.quiet)
        while sweep["status"] in ("queued", "running"):
            bar.update(sweep)
            time.sleep(0.25)
            sweep = read(sweep["id"])
        bar.update(sweep)
        bar.close()
    if args.json:
        args.json.write_text(json.dumps(sweep, indent=1))
    print(table(sweep))
    return 0 if sweep["status"] == "completed" else 1


class _Invalid(Exception):
    pass


@contextmanager
def _local():
    """The server's own pieces without HTTP: store, recorder, executor, sweep service."""
    from app.errors import NormScopeError
    from app.services.engine import start_engine
    from app.settings import Settings

    engine = start_engine(Settings(), owner=False)  # a server may share the store: its runs
    sweeps = engine.sweeps  # are left alone

    def create(request: dict[str, Any]) -> dict[str, Any]:
        try:
            return sweeps.create(request)
        except NormScopeError as exc:
            raise _Invalid(_detail_text(exc.detail)) from None

    try:
        yield create, sweeps.read
    except KeyboardInterrupt:
        print(
            "\ninterrupted: the sweep's runs end interrupted; `resume` runs the rest",
            file=sys.stderr,
        )
        raise
    finally:
        engine.stop()


@contextmanager
def _remote(args: argparse.Namespace):
    from normcore.client import ApiError, Client

    with Client(args.server, token=args.token) as client:

        def create(request: dict[str, Any]) -> dict[str, Any]:
            try:
                return client.create_sweep(
                    request["base"],
                    grid=request["grid"],
                    seeds=request["seeds"],
                    metric=request["metric"],
                    skip_invalid=request["skip_invalid"],
                )
            except ApiError as exc:
                if exc.status == 422:
                    raise _Invalid(_detail_text(exc.detail)) from None
                raise

        yield create, client.sweep


def _detail_text(detail: Any) -> str:
    if isinstance(detail, list):
        return "\n".join(
            f"  {'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" for d in detail
        )
    return f"  {detail}"


class _Progress:
    """cells done / total, on one line on a terminal, a line per change elsewhere."""

    def __init__(self, stream: TextIO, enabled: bool, width: int = 30):
        self.stream, self.enabled, self.width = stream, enabled, width
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.shown: tuple[int, str] | None = None

    def update(self, sweep: dict[str, Any]) -> None:
        state = (sweep["cells_done"], sweep["status"])
        if not self.enabled or state == self.shown:
            return
        self.shown = state
        total = max(sweep["cells_total"], 1)
        done = int(self.width * sweep["cells_done"] / total)
        line = (
            f"{'█' * done}{'░' * (self.width - done)} {sweep['cells_done']}/"
            f"{sweep['cells_total']} cells  {sweep['status']}"
        )
        self.stream.write(f"\r{line}" if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")


def table(sweep: dict[str, Any], fmt: Callable[[float], str] = "{:.4g}".format) -> str:
    """The metric over the grid: one row per grid point, mean ± std (n seeds)."""
    fields = list(sweep["grid"])
    head = [*fields, f"{sweep['metric']} (mean ± std)", "n"]
    rows = []
    for point in sweep["summary"]:
        value = "—" if point["mean"] is None else fmt(point["mean"])
        if point["std"] is not None:
            value += f" ± {fmt(point['std'])}"
        rows.append([*(str(point["values"][f]) for f in fields), value, str(point["n"])])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.append(
        f"sweep {sweep['id']}: {sweep['status']}, {sweep['cells_done']}/"
        f"{sweep['cells_total']} cells"
    )
    return "\n".join(lines)
