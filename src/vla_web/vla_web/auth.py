"""The operator page's token and where it may listen (no ROS)."""
from __future__ import annotations

import hmac
import ipaddress
import secrets

from vla_core.errors import ConfigError

MIN_TOKEN_CHARS = 12
TOKEN_HEADER = "X-VLA-Token"


def new_token() -> str:
    """A random URL-safe token (128 bits)."""
    return secrets.token_urlsafe(16)


def is_loopback(bind: str) -> bool:
    if bind == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError as exc:
        raise ConfigError(f"bind = {bind!r} is not an IP address; use 127.0.0.1 (this machine), the robot's "
                          "LAN address, or 0.0.0.0 (every interface)") from exc


def check_bind(bind: str, token: str) -> None:
    """Refuse to listen beyond this machine without a token the operator chose, and a token too short to guess."""
    if token and len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f"token is {len(token)} characters; use at least {MIN_TOKEN_CHARS} (e.g. the output of "
                          "`python -c 'import secrets; print(secrets.token_urlsafe(16))'`)")
    if not is_loopback(bind) and not token:
        raise ConfigError(f"bind = {bind!r} opens the operator page (e-stop, reset, episodes) to the network: "
                          f"set the token parameter too (at least {MIN_TOKEN_CHARS} characters), or bind 127.0.0.1")


def token_ok(given: str | None, token: str) -> bool:
    """Constant-time comparison; an empty or missing token never matches."""
    return bool(given) and bool(token) and hmac.compare_digest(given.encode(), token.encode())


def token_from(headers, query: dict) -> str | None:
    """The token a request carries: the X-VLA-Token header, ``Authorization: Bearer``, or ``?token=``."""
    given = headers.get(TOKEN_HEADER)
    if not given:
        auth = headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            given = auth[len("Bearer "):].strip()
    if not given and query.get("token"):
        given = query["token"][0]
    return given
