"""The trading states, one per scope, held in the JetStream KV bucket so they survive restarts.

Scope names, KV keys, precedence (the most restrictive of global, the strategy's and the venue's
wins) and the view every service keeps are in :mod:`tradewire_common.trading_state`; only risk
writes the states (its NATS user may write ``trading_state.>`` keys).
"""

from __future__ import annotations

import msgspec

from tradewire_common.bus import Bus
from tradewire_common.trading_state import GLOBAL, INITIAL, KEY_GLOBAL, StoredState, load_state, scope_key

__all__ = ["GLOBAL", "INITIAL", "KEY_GLOBAL", "StoredState", "load_state", "save_state", "scope_key"]


async def save_state(bus: Bus, value: StoredState, scope: str = GLOBAL) -> None:
    await bus.kv_put(scope_key(scope), msgspec.json.encode(value))
