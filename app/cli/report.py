"""`normscope report`: one self-contained HTML file of one run, or a comparison of several,
from run ids (local store or `--server URL`, see sources.py) or from frames files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from app.cli.sources import add_server_option, fail, local_store


def add_report_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write a self-contained HTML report of one run, or a comparison of several",
        description="One HTML file (plotly.js embedded, opens offline): config, loss and "
        "accuracy, saturation map, distribution drift, gradient norms. Several runs "
        "render side by side.",
    )
    parser.add_argument(
        "runs",
        nargs="+",
        metavar="RUN",
        help="run ids, or JSON-lines files of frames (normscope run --out, export, normcore.watch)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="the HTML file (default: normscope-report.html)",
    )
    add_server_option(parser)
    parser.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    """Fetch (remote) or read (local) the runs, render, write only once all were found."""
    from app.errors import NormScopeError
    from normcore.client import ApiError

    out = args.output or Path("normscope-report.html")
    files = [Path(run) for run in args.runs if Path(run).is_file()]
    if files and len(files) != len(args.runs):
        return fail("RUN: give run ids or frames files, not both")
    try:
        if files:
            from app.reports.html import from_files, render_report

            html = render_report(from_files(files))
        elif args.server:
            from normcore.client import Client

            with Client(args.server, token=args.token) as client:
                html = client.report(args.runs)
        else:
            from app.reports.html import from_store, render_report

            store = local_store()
            try:
                html = render_report(from_store(store, args.runs))
            finally:
                store.close()
    except (ApiError, NormScopeError, ValueError) as exc:
        return fail(str(exc))
    out.write_text(html, encoding="utf-8")
    print(f"wrote {out} ({len(html) / 1e6:.1f} MB, {len(args.runs)} run(s))", file=sys.stderr)
    return 0
