"""Pointing a client library's URL table at another base (a proxy, or a fake venue in the tests)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit


def rewrite_urls(node: Any, base: str) -> Any:
    """Every URL in a nested dict/list of URLs (ccxt's ``exchange.urls['api']``) with its scheme and host
    replaced by ``base``'s, keeping its path (``ws``/``wss`` stay websockets: ``wss`` for an https base)."""
    if isinstance(node, str):
        if "://" not in node:
            return node
        target = urlsplit(base)
        scheme = target.scheme
        if urlsplit(node).scheme in ("ws", "wss"):
            scheme = "wss" if target.scheme == "https" else "ws"
        rest = node.split("://", 1)[1]
        path = rest[rest.index("/"):] if "/" in rest else ""
        return f"{scheme}://{target.netloc}{target.path.rstrip('/')}{path}"
    if isinstance(node, dict):
        return {k: rewrite_urls(v, base) for k, v in node.items()}
    if isinstance(node, list):
        return [rewrite_urls(v, base) for v in node]
    return node
