"""Secrets come only from the environment or secret files, and are never logged."""

from __future__ import annotations

import hmac
import os
from pathlib import Path

TOKEN_ENV = "TRADEWIRE_API_TOKEN"
TOKEN_FILE_ENV = "TRADEWIRE_API_TOKEN_FILE"


def read_secret(name: str) -> str:
    """``$NAME``, or the contents of the file named by ``$NAME_FILE`` (stripped); empty if neither."""
    value = os.environ.get(name, "")
    if value:
        return value
    path = os.environ.get(f"{name}_FILE", "")
    if path:
        return Path(path).read_text().strip()
    return ""


def api_token() -> str:
    return read_secret(TOKEN_ENV)


def token_matches(presented: str, expected: str) -> bool:
    """Constant-time comparison; an unset expected token never matches (deny by default)."""
    if not expected:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


def redact(value: str) -> str:
    return "***" if value else ""
