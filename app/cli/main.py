"""`normscope` — the command line: run | serve | claims | sweep | report | export, one module
each.

Each command module has a pair of functions: ``add_<name>(subparsers)`` declares its flags and
``cmd_<name>(args) -> int`` does the work (the exit status). ``main()`` is the console script.
Heavy imports (torch, the server) happen inside the commands, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from app.cli.claims import add_claims_parser
from app.cli.export import add_export_parser
from app.cli.report import add_report_parser
from app.cli.run import add_run
from app.cli.serve import add_serve_parser
from app.cli.sweep import add_sweep_parser

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell tool killed by a closed pipe returns

# Each command registers here: add_<name>(subparsers) sets func=cmd_<name>.
SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    add_run,
    add_serve_parser,
    add_claims_parser,
    add_sweep_parser,
    add_report_parser,
    add_export_parser,
)


def build_parser(adders: Iterable[Callable[[argparse._SubParsersAction], None]] = SUBCOMMANDS):
    parser = argparse.ArgumentParser(
        prog="normscope", description="See what normalization does inside a neural network."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in adders:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Console script entry: parse, dispatch, return the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse fills an optional positional (export's DIR) before the options that follow
    # RUN are read, so `export RUN --format tensorboard DIR` leaves DIR over: it is taken here
    trailing = getattr(args, "trailing", None)
    if trailing and getattr(args, trailing) is None and len(extra) == 1 and extra[0][:1] != "-":
        setattr(args, trailing, Path(extra.pop()))
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except BrokenPipeError:  # `normscope export RUN | head`: the reader left, not an error of ours
        # Point stdout at /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
