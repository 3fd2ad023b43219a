"""`normscope export`: a run's raw frames as JSON lines or CSV, or as TensorBoard event files,
from the local store or a `--server URL` (see sources.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from app.cli.sources import add_server_option, fail, local_store


def add_export_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a run's raw frames as JSON lines or CSV, or as TensorBoard event files",
    )
    parser.add_argument("run", metavar="RUN", help="run id")
    parser.add_argument(
        "directory",
        metavar="DIR",
        nargs="?",
        type=Path,
        default=None,
        help="--format tensorboard: the log directory to write into",
    )
    parser.add_argument("-f", "--format", choices=("jsonl", "csv", "tensorboard"), default="jsonl")
    parser.add_argument(
        "-o", "--output", type=Path, default=None, help="the file (default: standard output)"
    )
    add_server_option(parser)
    parser.set_defaults(func=cmd_export, trailing="directory")


def cmd_export(args: argparse.Namespace) -> int:
    from app.errors import NormScopeError
    from normcore.client import ApiError

    if args.format == "tensorboard":
        return _export_tensorboard(args)
    if args.directory is not None:
        return fail("DIR is for --format tensorboard; use -o FILE for the others")
    try:
        if args.server:
            from normcore.client import Client

            with Client(args.server, token=args.token) as client:
                chunks: Any = [client.export(args.run, args.format).decode()]
        else:
            from app.services import runs as service

            store = local_store()
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
    except (ApiError, NormScopeError) as exc:
        return fail(str(exc))
    return 0


def _export_tensorboard(args: argparse.Namespace) -> int:
    """The run's frames (from the server, or the local store) as a TensorBoard event file."""
    import json

    from app.errors import NormScopeError
    from normcore.client import ApiError

    directory = args.directory or args.output
    if directory is None:
        return fail("--format tensorboard needs DIR, the log directory to write into")
    try:
        from app.tensorboard_export import write_events

        if args.server:
            from normcore.client import Client

            with Client(args.server, token=args.token) as client:
                lines: Any = client.export(args.run, "jsonl").decode().splitlines()
        else:
            from app.services import runs as service

            store = local_store()
            service.get_run(store, args.run)
            lines = list(service.export_jsonl(store, args.run))
        path = write_events((json.loads(line) for line in lines if line.strip()), directory)
    except (ApiError, NormScopeError, RuntimeError) as exc:
        return fail(str(exc))
    print(f"wrote {path} ({len(lines)} frames): tensorboard --logdir {directory}", file=sys.stderr)
    return 0
