"""Where `normscope report` and `export` read runs: the local store by default (NORMSCOPE_DATA_DIR,
no server needed: a report can be made after the server is gone) or, with `--server URL`, a
remote NormScope through `normcore.client`, so a laptop can pull runs trained on a GPU box.
`normscope run --server URL` uses the same option to train there.
"""

from __future__ import annotations

import argparse
import os
import sys


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


def local_store():
    from app.settings import Settings
    from app.store import Store

    settings = Settings()
    if not settings.db_path.exists():
        raise SystemExit(
            f"error: no runs stored at {settings.db_path}; set NORMSCOPE_DATA_DIR to the "
            "server's data dir, or pass --server URL"
        )
    return Store(settings.db_path)


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1
