"""Trading state, alerts, dead letters and replay/execution control events."""

from __future__ import annotations

from decimal import Decimal

from tradewire_common.schemas.base import Message, TradingState


class TradingStateChanged(Message, frozen=True, tag="TradingStateChanged"):
    """The trading state of a scope changed; who did it and why.

    ``scope`` is ``global``, ``strategy:<id>`` or ``venue:<name>`` (see ``tradewire_common.trading_state``).
    """

    scope: str
    state: TradingState
    previous: TradingState
    reason: str
    actor: str
    #: The circuit breaker that made the change (``daily_loss``, ``venue_disconnected``, ...); "" when
    #: a person (HTTP, CLI, ``risk.halt``) did.
    trigger: str = ""


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
    """Execution has published every order event for ``venue`` up to event time ``ts_event``.

    When caused by a bar it also carries that bar's instrument and close, so the ledger can mark
    the position from this durable, ordered stream even if it missed the (core NATS) bar itself.
    """

    venue: str
    instrument_id: str = ""
    close: Decimal | None = None


class ReplayStarted(Message, frozen=True, tag="ReplayStarted"):
    dataset: str
    instruments: tuple[str, ...]


class ReplayCompleted(Message, frozen=True, tag="ReplayCompleted"):
    """The feed published every bar of the replay; ``bars`` is how many."""

    dataset: str
    bars: int


class VenueStatus(Message, frozen=True, tag="VenueStatus"):
    """Execution's connection to a venue went down or came back (published on ``ord.evt._venue.<venue>``
    when it changes; the paper venue is always connected, so it never publishes one)."""

    venue: str
    connected: bool
    reason: str = ""
