"""`normscope serve`: the dashboard and the API on uvicorn, configured like the server itself.

Flags override the NORMSCOPE_* environment (Settings is the one configuration path); the
token stays an environment variable so it never shows in `ps`.
"""

from __future__ import annotations

import argparse
import gc
import socket
import sys
from pathlib import Path

from pydantic import ValidationError


def add_serve_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="start the dashboard and the REST API",
        description="Serve the dashboard at http://HOST:PORT/ and the API under /api. "
        "Other settings come from NORMSCOPE_* variables (NORMSCOPE_TOKEN, "
        "NORMSCOPE_MAX_JOBS, NORMSCOPE_QUEUE_LENGTH, NORMSCOPE_MAX_STEPS, ...).",
    )
    p.add_argument("--host", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, help="port (default 8000)")
    p.add_argument("--data-dir", type=Path, help="where runs.db lives (default: per-user)")
    p.add_argument("--max-jobs", type=int, help="runs trained at once (default: 1 per GPU)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from app.exposure import check_bind
    from app.settings import Settings

    given = {
        "host": args.host,
        "port": args.port,
        "data_dir": args.data_dir,
        "max_jobs": args.max_jobs,
    }
    try:
        settings = Settings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            print(f"normscope serve: {field}: {err['msg']} (got {err['input']!r})", file=sys.stderr)
        return 2
    check_bind(settings.host, settings.token)  # no open bind without a token
    if in_use := _port_taken(settings.host, settings.port):
        print(
            f"normscope serve: port {settings.port} on {settings.host} is in use ({in_use}); "
            f"pick a free one with --port N (or NORMSCOPE_PORT)",
            file=sys.stderr,
        )
        return 2

    import uvicorn

    from app.main import create_app

    print(
        f"NormScope on http://{settings.host}:{settings.port}/  (data: {settings.data_dir})",
        file=sys.stderr,
    )
    app = create_app(settings)
    tune_collector()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=5,
    )
    return 0


def tune_collector() -> None:
    """CPython's cyclic collector, set for a long-lived server. The server holds a live run's
    frames as dicts until their chunk's columns are written (app.frames_in_hand): thousands
    of containers that outlive the young generations, and with the default thresholds (700,
    10, 10) each full collection also walked the ~250,000 objects of the imports. Over a 4-run
    preset the collector took 1.34 s of the server's 6.4 s of CPU that way, and 0.23 s of 5.5
    s with the imports frozen and a young generation of 20,000 (bench/server_gc.py, medians
    of 2 rounds): CPU the runs on the same cores get back. The frames are freed by reference
    counting; only cyclic garbage waits longer for the collector.
    """
    gc.collect()
    gc.freeze()  # the imports' objects: never garbage, so never scanned again
    gc.set_threshold(20_000, 20, 10)


def _port_taken(host: str, port: int) -> str:
    """Why (host, port) cannot be bound, or "" — checked before the app starts its workers,
    so a taken port is one clear line instead of uvicorn's error after a full startup."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return ""
