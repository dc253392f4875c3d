"""The trading state (kill switch) held in the JetStream KV bucket, so it survives restarts."""

from __future__ import annotations

import msgspec

from tradewire_common.bus import Bus
from tradewire_common.schemas import TradingState

KEY_GLOBAL = "trading_state.global"


class StoredState(msgspec.Struct, frozen=True):
    state: TradingState
    reason: str
    actor: str
    since_ns: int


async def load_state(bus: Bus, key: str = KEY_GLOBAL) -> StoredState:
    raw = await bus.kv_get(key)
    if raw is None:
        return StoredState(TradingState.ACTIVE, "initial", "system", 0)
    return msgspec.json.decode(raw, type=StoredState)


async def save_state(bus: Bus, value: StoredState, key: str = KEY_GLOBAL) -> None:
    await bus.kv_put(key, msgspec.json.encode(value))
