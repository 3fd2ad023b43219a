"""Refuse to serve beyond loopback without a token.

Anyone who can reach the port can start runs (CPU/GPU time) and read every run, so a server
bound to anything but loopback — `0.0.0.0` in Docker, a LAN address, `::` — must have
NORMSCOPE_TOKEN. `normscope serve` calls `check_bind` before it opens the socket, so the
refusal happens before anything listens, and the Docker image cannot start open by mistake.
"""

from __future__ import annotations

import ipaddress

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost are loopback; '' and '0.0.0.0' / '::' are every address."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a hostname: it may resolve to a public address


class OpenBindRefused(SystemExit):
    """Exits (status 1) printing the reason to stderr; raised before the server binds."""


def check_bind(host: str, token: object | None) -> None:
    """Raise OpenBindRefused when `host` is not loopback and there is no token."""
    if (token is not None and token != "") or is_loopback(host):
        return
    raise OpenBindRefused(
        f"normscope serve: refusing to bind host {host!r} without NORMSCOPE_TOKEN: every "
        "client that can reach it could start runs and read all of them. Set one, e.g.\n"
        '  export NORMSCOPE_TOKEN="$(python -c "import secrets; '
        'print(secrets.token_urlsafe(32))")"\n'
        "or bind loopback only (--host 127.0.0.1, the default)."
    )
