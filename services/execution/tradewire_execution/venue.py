"""The venue adapter interface: what the execution service needs from any venue.

The execution service turns ``SubmitOrder``/``CancelOrder``/``ReplaceOrder`` commands into calls on a
:class:`VenueAdapter` and publishes the :class:`~tradewire_common.schemas.OrderEvent` objects it
returns. The paper venue (:mod:`tradewire_execution.paper`) is the reference implementation; real
adapters (ccxt, alpaca, ...) follow the same contract:

* **Idempotent by client order id.** ``client_order_id`` is deterministic (derived from the signal),
  so a redelivered ``SubmitOrder`` carries the same id. Submitting an id the adapter has already
  seen must not place a second order: return ``[]`` (the events of the first submit were already
  returned). Real adapters pass the id to the venue as its client order id, and treat the venue's
  "duplicate client order id" error as "already placed", not as a rejection.
* **Events are facts, in the past tense.** Return what happened (``OrderAccepted``,
  ``OrderRejected``, ``OrderFilled``, ``OrderCanceled``, ``OrderExpired``); never raise for a
  refusal by the venue: a refusal is an ``OrderRejected`` event. Raise only for faults of the
  adapter itself (lost connection, ...), which the service retries.
* **Deterministic event ids.** Derive message ids from the order and the fact (``derive_id``),
  so a redelivered command yields the same ids and JetStream drops the duplicates.
* **Trade ids are unique per venue.** ``OrderFilled.trade_id`` is what consumers (the ledger)
  de-duplicate executions on; use the venue's own execution id when it has one.
* **Times.** ``ts_event`` is when the fact happened at the venue (for the paper venue: the event
  time of the bar that filled), ``ts_init`` is ``now_ns``, and ``correlation_id`` is the order's.
* **State across restarts.** A simulated venue *is* the venue, so its working orders would vanish
  with the process: it exports its state (:meth:`VenueAdapter.export_state`), the service stores
  it before acknowledging the command that changed it and loads it back on start
  (:meth:`VenueAdapter.restore_state`). Real venues keep the defaults (nothing to export): the
  venue holds the truth, and :meth:`VenueAdapter.start` reconciles with it (open orders, fills
  missed while down) instead.
"""

from __future__ import annotations

import abc

from tradewire_common.ids import derive_id
from tradewire_common.schemas import Bar, CancelOrder, OrderEvent, OrderRejected, ReplaceOrder, SubmitOrder

#: Capability names an adapter may list in :attr:`VenueAdapter.capabilities`.
CAP_MARKET = "market"
CAP_LIMIT = "limit"
CAP_PARTIAL_FILLS = "partial_fills"
CAP_GTC = "gtc"
CAP_IOC = "ioc"
CAP_FOK = "fok"
CAP_DAY = "day"
CAP_REDUCE_ONLY = "reduce_only"
#: ``STOP_MARKET`` orders (``trigger_price``).
CAP_STOP = "stop"
#: ``STOP_LIMIT`` orders (``trigger_price`` and ``limit_price``).
CAP_STOP_LIMIT = "stop_limit"
#: Attached exits (``stop_loss_pct``/``take_profit_pct``/``trailing_stop_pct``/``time_stop_s``), native
#: at the venue or emulated by the adapter. For an adapter without it the execution service keeps them
#: (:mod:`tradewire_execution.exits`): it sends such an adapter reduce-only ``MARKET`` exits of its own.
CAP_BRACKET = "bracket"
#: With ``CAP_BRACKET``: the venue also attaches a trailing stop / a time stop to an entry. A venue with
#: ``CAP_BRACKET`` but not these (Alpaca) gets such an entry without exits, and execution's emulator keeps
#: the whole bracket (one keeper per position: a native stop loss beside an emulated trailing stop could
#: both close the same position).
CAP_BRACKET_TRAILING = "bracket_trailing"
CAP_BRACKET_TIME = "bracket_time"
#: Post-only (maker-only) limit orders (``SubmitOrder.post_only``).
CAP_POST_ONLY = "post_only"
#: ``TimeInForce.GTD`` orders (``SubmitOrder.expire_time_ns``).
CAP_GTD = "gtd"
#: A native amend of a working order (``ReplaceOrder`` without cancel-then-new).
CAP_AMEND = "amend"


class VenueAdapter(abc.ABC):
    """One trading venue (real or simulated), as seen by the execution service.

    Calls for one adapter are made from one task, one at a time; an adapter need not be
    thread-safe nor re-entrant.
    """

    #: The venue's name, as in ``VenueConfig.name`` and in instrument ids (``BTCUSDT.BINANCE``).
    name: str
    #: What the adapter supports (see the ``CAP_*`` names), e.g. ``{"market", "limit"}``.
    capabilities: frozenset[str] = frozenset()
    #: Bumped whenever state that :meth:`export_state` returns changed in a way that must survive a
    #: restart; the service saves the state when it moved. Stays 0 for adapters without state.
    state_revision: int = 0

    @abc.abstractmethod
    async def submit(self, order: SubmitOrder, now_ns: int) -> list[OrderEvent]:
        """Place ``order``; return what happened.

        Normally ``[OrderAccepted]`` (followed by any fills that happened at once), or
        ``[OrderRejected]`` when the venue refuses it. A ``client_order_id`` already seen returns
        ``[]``. Later fills and expiries come from :meth:`on_bar` (paper) or the venue's stream
        (real adapters, via the service).
        """

    @abc.abstractmethod
    async def cancel(self, command: CancelOrder, now_ns: int) -> list[OrderEvent]:
        """Cancel an open order; return ``[OrderCanceled]`` with the quantity filled so far.

        Cancelling an unknown or already closed order returns ``[]`` (the order's own events
        already said how it ended); it is not an error and not an ``OrderRejected``.
        """

    async def replace(self, command: ReplaceOrder, now_ns: int) -> list[OrderEvent]:
        """Replace a working order (``ReplaceOrder``): ``[OrderReplaced]`` (the order continues under the new
        client order id, its filled quantity carried over) or ``[OrderRejected]`` on the new id (the old order
        keeps working). A new client order id already seen returns ``[]``. The default refuses."""
        return [replace_rejected(command, now_ns, f"venue {self.name} cannot replace orders")]

    @abc.abstractmethod
    async def on_bar(self, bar: Bar, now_ns: int) -> list[OrderEvent]:
        """Market data the venue needs to simulate fills; returns the events it caused.

        Real venues ignore it and return ``[]``.
        """

    @abc.abstractmethod
    def open_orders(self) -> list[str]:
        """Client order ids of the orders still working at the venue."""

    async def start(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Connect and load state (e.g. open orders) before the first call. No-op by default."""

    def export_state(self) -> bytes:
        """State to keep across restarts (``b""``: none, the default).

        Only simulated venues have any: a real venue's orders live at the venue, and a restarted
        adapter reconciles with it in :meth:`start` instead of restoring a snapshot.
        """
        return b""

    def restore_state(self, data: bytes) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Load what :meth:`export_state` returned, before :meth:`start` and the first call.

        Raises ``ValueError`` for data it cannot load. No-op by default.
        """

    async def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release connections. No-op by default; safe to call twice."""


def replace_rejected(command: ReplaceOrder, now_ns: int, reason: str) -> OrderRejected:
    """The ``OrderRejected`` of a refused replacement: on the new client order id (the old one keeps working)."""
    return OrderRejected(
        id=derive_id("OrderRejected", command.new_client_order_id, "replace"), ts_event=command.ts_event,
        ts_init=now_ns, correlation_id=command.correlation_id, strategy_id=command.strategy_id,
        instrument_id=command.instrument_id, client_order_id=command.new_client_order_id, reason=reason[:500])
