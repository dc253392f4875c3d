"""Safety guards of live trading: the ``--live`` arming, and loopback-only URLs under tests.

* **Live needs two keys.** A venue with ``mode = "live"`` is built only when the process was started with
  ``tradewire up --live`` or ``tradewire run execution --live``; the flag sets :data:`LIVE_ENV` for the
  execution process (containers pass ``--live`` on their command line). Without it
  :func:`require_live_armed` raises :class:`LiveTradingRefused`, naming the venue and what is missing, and
  the service does not start. ``mode = "sandbox"`` (a venue's testnet) and ``mode = "paper"`` need no flag.
* **Tests can never go live.** Under pytest (``PYTEST_CURRENT_TEST`` is set, or pytest is imported) a live
  adapter is refused even with the flag, and every URL an adapter is about to call must be on the loopback
  (:func:`assert_loopback`): a test that forgot to point a client at its fake fails before any request.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Iterable
from urllib.parse import urlsplit

#: Set to ``1`` by ``--live`` (``tradewire up`` passes it to the execution process only).
LIVE_ENV = "TRADEWIRE_LIVE"


class LiveTradingRefused(RuntimeError):
    """A live venue was configured but live trading is not armed (or a test tried to go live)."""


def under_test() -> bool:
    """True inside a pytest run."""
    return "PYTEST_CURRENT_TEST" in os.environ or "pytest" in sys.modules


def live_armed() -> bool:
    return os.environ.get(LIVE_ENV, "") == "1"


def require_live_armed(venue: str) -> None:
    """Raise unless a live venue may be built in this process."""
    if under_test():
        raise LiveTradingRefused(f"venue {venue}: mode = 'live' is refused under tests (use 'sandbox' with a fake "
                                 "venue on 127.0.0.1)")
    if not live_armed():
        raise LiveTradingRefused(
            f"venue {venue} has mode = 'live' (real orders) but live trading is not armed: start with "
            "'tradewire up --live' or 'tradewire run execution --live', or set the venue's mode to 'sandbox' "
            "or 'paper'")


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def walk_urls(node: object) -> Iterable[str]:
    """Every string URL in a nested dict/list (a ccxt ``urls['api']`` tree)."""
    if isinstance(node, str):
        if "://" in node:
            yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from walk_urls(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from walk_urls(value)


def assert_loopback(urls: Iterable[str], what: str) -> None:
    """Under tests, refuse any URL that is not on the loopback (no-op outside tests)."""
    if not under_test():
        return
    bad = sorted({u for u in urls if not is_loopback_url(u)})
    if bad:
        raise LiveTradingRefused(f"{what}: tests may only call 127.0.0.1, not {', '.join(bad[:3])}")
