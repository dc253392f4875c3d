"""Venue adapters by name: the factory the execution service builds its venues with.

``execution.venues[]`` entries name an ``adapter`` (``VenueConfig.adapter``) and a ``mode``:

* ``mode = "paper"`` (the default), or ``adapter = "paper"``: the paper venue simulates the venue, whatever
  the adapter (so a configuration can name its real adapter and still trade on paper);
* ``mode = "sandbox"``: the adapter against the venue's testnet/sandbox;
* ``mode = "live"``: the adapter against the real venue; refused unless live trading is armed
  (``--live``, see :mod:`tradewire_execution.live.guard`) and always refused under tests.

Adapters register here by name, as ``"module:function"`` so that a venue's client library is imported only
when a venue uses it. A factory takes ``(VenueConfig, Config)`` and returns the adapter; a
:class:`~tradewire_execution.live.base.LiveVenueAdapter` then gets its rate limiter from the factory and its
reconciliation from :func:`build_adapter` (``execution.ledger_url``, ``execution.risk_url``).
To add one: add its name to ``VenueAdapterName`` in ``tradewire_common.config`` and an entry to :data:`ADAPTERS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from tradewire_common.config import Config, VenueConfig
from tradewire_execution.live.base import LiveVenueAdapter
from tradewire_execution.live.guard import require_live_armed
from tradewire_execution.live.reconcile import HttpLedger, Reconciler, RiskHttpEscalation
from tradewire_execution.paper import PaperVenue
from tradewire_execution.venue import VenueAdapter

AdapterFactory = Callable[[VenueConfig, Config], VenueAdapter]

#: Adapter name -> ``"module:function"`` building it.
ADAPTERS: dict[str, str] = {
    "ccxt": "tradewire_execution.venues.ccxt_adapter:build",
    "alpaca": "tradewire_execution.venues.alpaca_adapter:build",
    "tradier": "tradewire_execution.venues.tradier_adapter:build",
    "ibkr": "tradewire_execution.venues.ibkr_adapter:build",
    "polymarket": "tradewire_execution.venues.polymarket_adapter:build",
    "kalshi": "tradewire_execution.venues.kalshi_adapter:build",
    "manifold": "tradewire_execution.venues.manifold_adapter:build",
}


def adapter_factory(name: str) -> AdapterFactory:
    target = ADAPTERS.get(name)
    if target is None:
        raise ValueError(f"execution.venues: unknown adapter {name!r} (known: paper, {', '.join(sorted(ADAPTERS))})")
    module, _, function = target.partition(":")
    factory: Any = getattr(importlib.import_module(module), function)
    return factory  # type: ignore[no-any-return]


def build_adapter(venue: VenueConfig, config: Config) -> VenueAdapter:
    """The adapter of one configured venue (see the module docstring)."""
    if venue.adapter == "paper" or venue.mode == "paper":
        return PaperVenue(venue.name, config.execution.paper)
    if venue.mode == "live":
        require_live_armed(venue.name)
    adapter = adapter_factory(venue.adapter)(venue, config)
    if isinstance(adapter, LiveVenueAdapter):
        ex = config.execution
        adapter.reconciler = Reconciler(
            adapter, ledger=HttpLedger(ex.ledger_url) if ex.ledger_url else None,
            escalation=RiskHttpEscalation(ex.risk_url) if ex.risk_url else None,
            position_keys=adapter.position_keys(), tolerance=venue.position_tolerance)
        adapter.reconcile_interval_s = venue.reconcile_interval_s
    return adapter
