"""Find services and strategies by name through entry points, so packages never import each other."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tradewire_common.bus import Bus
    from tradewire_common.clock import Clock
    from tradewire_common.config import Config
    from tradewire_common.service import Service

SERVICE_GROUP = "tradewire.services"
SERVICE_NAMES: tuple[str, ...] = ("datafeed", "signals", "risk", "execution", "ledger", "notifier")

ServiceFactory = Callable[["Config", "Bus", "Clock | None"], "Service"]


def service_factory(name: str) -> ServiceFactory:
    """The ``build(config, bus, clock)`` function of an installed service package."""
    for ep in entry_points(group=SERVICE_GROUP):
        if ep.name == name:
            factory: Any = ep.load()
            return factory  # type: ignore[no-any-return]
    known = sorted(ep.name for ep in entry_points(group=SERVICE_GROUP))
    raise LookupError(f"unknown service {name!r}; installed: {', '.join(known) or 'none'}")
