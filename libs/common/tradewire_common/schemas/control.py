"""Trading state, alerts, dead letters and replay/execution control events."""

from __future__ import annotations

from tradewire_common.schemas.base import Message, TradingState


class TradingStateChanged(Message, frozen=True, tag="TradingStateChanged"):
    """The trading state of a scope (``global`` for now) changed; who did it and why."""

    scope: str
    state: TradingState
    previous: TradingState
    reason: str
    actor: str


class Alert(Message, frozen=True, tag="Alert"):
    severity: str
    title: str
    body: str
    source: str


class DeadLetter(Message, frozen=True, tag="DeadLetter"):
    """A message a service could not decode or handle, kept with the reason and the raw bytes."""

    service: str
    subject: str
    reason: str
    raw: bytes
    headers: dict[str, str] = {}


class ExecutionWatermark(Message, frozen=True, tag="ExecutionWatermark"):
    """Execution has published every order event for ``venue`` up to event time ``ts_event``."""

    venue: str


class ReplayStarted(Message, frozen=True, tag="ReplayStarted"):
    dataset: str
    instruments: tuple[str, ...]


class ReplayCompleted(Message, frozen=True, tag="ReplayCompleted"):
    """The feed published every bar of the replay; ``bars`` is how many."""

    dataset: str
    bars: int
