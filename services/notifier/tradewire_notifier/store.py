"""Price alert rules kept in the JetStream KV bucket of the trading state (key ``notifier.rules``).

Why the KV bucket and not a SQLite file: it is already there, replicated like the streams
(``bus.stream_replicas``), survives restarts of the notifier and of ``tradewire up`` (the broker's store
lives in the run directory), and the notifier needs no volume of its own in a container. The rules
are few and small, so one key holds them all with their state (one atomic write per change); the
bucket keeps the last 10 versions of it. One notifier instance owns the key.
"""

from __future__ import annotations

import msgspec

from tradewire_common.bus import Bus
from tradewire_notifier.rules import AlertRule, RuleEngine, RuleState

#: Every KV key of the notifier starts with this prefix (its NATS user may write only these).
KEY_PREFIX = "notifier"
RULES_KEY = f"{KEY_PREFIX}.rules"


class StoredRule(msgspec.Struct, kw_only=True):
    rule: AlertRule
    state: RuleState


class StoredRules(msgspec.Struct, kw_only=True):
    version: int = 1
    rules: list[StoredRule] = msgspec.field(default_factory=list)


async def load_rules(bus: Bus, engine: RuleEngine, key: str = RULES_KEY) -> int:
    """Load the stored rules into ``engine``; returns how many."""
    raw = await bus.kv_get(key)
    if not raw:
        return 0
    stored = msgspec.json.decode(raw, type=StoredRules)
    for item in stored.rules:
        engine.add(item.rule, item.state)
    return len(stored.rules)


def encode_rules(engine: RuleEngine) -> bytes:
    rules = sorted(engine.rules.values(), key=lambda r: (r.created_ns, r.id))
    return msgspec.json.encode(StoredRules(rules=[StoredRule(rule=r, state=engine.states[r.id]) for r in rules]))


async def save_rules(bus: Bus, engine: RuleEngine, key: str = RULES_KEY) -> None:
    await bus.kv_put(key, encode_rules(engine))
