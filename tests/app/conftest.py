"""Fixtures of the app tests: the shared live server and private servers (tests/utils/server.py).
Run helpers are in tests/utils/runs.py."""

from tests.utils.server import server, start_server  # noqa: F401  (fixtures)
