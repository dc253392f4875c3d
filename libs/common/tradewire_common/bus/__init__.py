"""The message bus: one contract, a NATS implementation and an in-memory one."""

from tradewire_common.bus.base import (
    Bus,
    BusStats,
    Envelope,
    Handler,
    Outcome,
    PermanentError,
    Responder,
    Subscription,
    stats_reply,
)
from tradewire_common.bus.memory import MemoryBroker, MemoryBus
from tradewire_common.bus.nats import NatsBus

__all__ = [
    "Bus",
    "BusStats",
    "Envelope",
    "Handler",
    "MemoryBroker",
    "MemoryBus",
    "NatsBus",
    "Outcome",
    "PermanentError",
    "Responder",
    "Subscription",
    "stats_reply",
]
