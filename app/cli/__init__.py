"""`normscope` — the command line, one module per command (run, serve, claims, report, export).

``main`` is the console script (pyproject: ``app.cli:main``); ``python -m app.cli`` runs it too.
"""

from app.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
