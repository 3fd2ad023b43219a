"""`normscope report`, `normscope export` and the `--server URL` option, wired into app/cli.py.

Both subcommands read the local store by default (NORMSCOPE_DATA_DIR, no server needed: a
report can be made after the server is gone) or, with `--server URL`, ask a remote NormScope
through `normcore.client`, so a laptop can pull a report of runs trained on a GPU box.
`run_remote` is the `--server` path of `normscope run`: the run trains on the server and its
frames stream back live.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

Handler = Callable[[argparse.Namespace], int]


def add_server_option(parser: argparse.ArgumentParser) -> None:
    """--server URL (default $NORMSCOPE_SERVER) and --token (default $NORMSCOPE_TOKEN)."""
    parser.add_argument(
        "--server",
        metavar="URL",
        default=os.environ.get("NORMSCOPE_SERVER") or None,
        help="a remote NormScope, e.g. http://gpu-box:8000 (default: $NORMSCOPE_SERVER; "
        "without it: the local store)",
    )
    parser.add_argument(
        "--token",
        default=None,
        help="the server's token (default: $NORMSCOPE_TOKEN)",
    )


def add_report_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write a self-contained HTML report of one run, or a comparison of several",
        description="One HTML file (plotly.js embedded, opens offline): config, loss and "
        "accuracy, saturation map, distribution drift, gradient norms. Several runs "
        "render side by side.",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="run ids, or JSON-lines files of frames (normscope run --out, "
                        "export, normcore.watch)")  # fmt: skip
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="the HTML file (default: normscope-report.html)")  # fmt: skip
    add_server_option(parser)
    parser.set_defaults(func=cmd_report)


def add_export_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("export", help="write a run's raw frames as JSON lines or "
                                   "CSV, or as TensorBoard event files")  # fmt: skip
    parser.add_argument("run", metavar="RUN", help="run id")
    parser.add_argument("directory", metavar="DIR", nargs="?", type=Path, default=None,
                        help="--format tensorboard: the log directory to write into")  # fmt: skip
    parser.add_argument("-f", "--format", choices=("jsonl", "csv", "tensorboard"),
                        default="jsonl")  # fmt: skip
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="the file (default: standard output)")  # fmt: skip
    add_server_option(parser)
    parser.set_defaults(func=cmd_export, trailing="directory")


def _local_store():
    from app.settings import Settings
    from app.store import Store

    settings = Settings()
    if not settings.db_path.exists():
        raise SystemExit(
            f"error: no runs stored at {settings.db_path}; set NORMSCOPE_DATA_DIR to the "
            "server's data dir, or pass --server URL"
        )
    return Store(settings.db_path)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def cmd_report(args: argparse.Namespace) -> int:
    """Fetch (remote) or read (local) the runs, render, write only once all were found."""
    from app.errors import NormScopeError as ServiceError
    from normcore.client import NormScopeError

    out = args.output or Path("normscope-report.html")
    files = [Path(run) for run in args.runs if Path(run).is_file()]
    if files and len(files) != len(args.runs):
        return _fail("RUN: give run ids or frames files, not both")
    try:
        if files:
            from app.report import from_files, render_report

            html = render_report(from_files(files))
        elif args.server:
            from normcore.client import Client

            with Client(args.server, token=args.token) as client:
                html = client.report(args.runs)
        else:
            from app.report import from_store, render_report

            store = _local_store()
            try:
                html = render_report(from_store(store, args.runs))
            finally:
                store.close()
    except (NormScopeError, ServiceError, ValueError) as exc:
        return _fail(str(exc))
    out.write_text(html, encoding="utf-8")
    print(f"wrote {out} ({len(html) / 1e6:.1f} MB, {len(args.runs)} run(s))", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from app.errors import NormScopeError as ServiceError
    from normcore.client import NormScopeError

    if args.format == "tensorboard":
        return _export_tensorboard(args)
    if args.directory is not None:
        return _fail("DIR is for --format tensorboard; use -o FILE for the others")
    try:
        if args.server:
            from normcore.client import Client

            with Client(args.server, token=args.token) as client:
                chunks: Any = [client.export(args.run, args.format).decode()]
        else:
            from app import service

            store = _local_store()
            export = service.export_csv if args.format == "csv" else service.export_jsonl
            service.get_run(store, args.run)  # a missing run fails before any output
            chunks = export(store, args.run)
        if args.output is None:
            for chunk in chunks:
                sys.stdout.write(chunk)
            sys.stdout.flush()
        else:
            with open(args.output, "w", encoding="utf-8", newline="") as f:
                for chunk in chunks:
                    f.write(chunk)
            print(f"wrote {args.output}", file=sys.stderr)
    except (NormScopeError, ServiceError) as exc:
        return _fail(str(exc))
    return 0


def _export_tensorboard(args: argparse.Namespace) -> int:
    """The run's frames (from the server, or the local store) as a TensorBoard event file."""
    import json

    from app.errors import NormScopeError as ServiceError
    from normcore.client import NormScopeError

    directory = args.directory or args.output
    if directory is None:
        return _fail("--format tensorboard needs DIR, the log directory to write into")
    try:
        from app.tensorboard_export import write_events

        if args.server:
            from normcore.client import Client

            with Client(args.server, token=args.token) as client:
                lines: Any = client.export(args.run, "jsonl").decode().splitlines()
        else:
            from app import service

            store = _local_store()
            service.get_run(store, args.run)
            lines = list(service.export_jsonl(store, args.run))
        path = write_events((json.loads(line) for line in lines if line.strip()), directory)
    except (NormScopeError, ServiceError, RuntimeError) as exc:
        return _fail(str(exc))
    print(f"wrote {path} ({len(lines)} frames): tensorboard --logdir {directory}",
          file=sys.stderr)  # fmt: skip
    return 0


def run_remote(args: argparse.Namespace, config: Any, bar: Any, summary: Callable) -> int:
    """`normscope run --server URL`: the run trains there and its frames stream back through
    the same progress bar, `--out` file and summary as a local run. Exit status as local:
    0 completed, 1 ended otherwise (diverged, failed, ...), 2 rejected config."""
    from normcore.client import Client, NormScopeError
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
    except NormScopeError as exc:
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
