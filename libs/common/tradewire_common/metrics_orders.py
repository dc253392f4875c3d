"""Order-flow metrics: order status labels, tick-to-order latency and fill reconciliation.

The ledger sees every bar, order command and order event, so it can measure across services:

* **tick-to-order**: a ``SubmitOrder``'s ``ts_init`` (risk decided) minus the ``ts_init`` of the bar
  that caused it (the feed published it; the order's ``correlation_id`` is the bar's id). Both are
  stamped by their producers, so the figure does not depend on when the ledger got either.
* **reconciliation**: the quantities execution reports must agree with what risk ordered. A fill
  whose order's seen fills plus the reported ``leaves_qty`` exceed the ordered quantity is an
  overfill. Fills the ledger may have missed (it restarted) only make that sum smaller, so the
  check has no false alarms; orders risk never sent (bracket exits) are not checked.
"""

from __future__ import annotations

from collections import OrderedDict
from decimal import Decimal
from typing import TypeVar

from tradewire_common.metrics import LATENCY_BUCKETS, ServiceMetrics
from tradewire_common.schemas import Bar, Message, OrderFilled, SubmitOrder

V = TypeVar("V")

_STATUS = {
    "OrderSubmitted": "submitted",
    "OrderAccepted": "accepted",
    "OrderRejected": "rejected",
    "OrderCanceled": "canceled",
    "OrderExpired": "expired",
    "OrderDenied": "denied",
}


def order_status(event: Message) -> str:
    """The ``status`` label of an order event (bounded: one per event type)."""
    if isinstance(event, OrderFilled):
        return "partially_filled" if event.partial else "filled"
    return _STATUS.get(type(event).__name__, "other")


class TickToOrder:
    """Bar-to-order latency per strategy, from the bars and order commands the ledger records."""

    def __init__(self, metrics: ServiceMetrics, *, remember: int = 4096) -> None:
        self.latency = metrics.histogram(
            "tick_to_order_seconds",
            "From the feed publishing a bar to risk issuing the order it caused (producer timestamps)",
            ("strategy",),
            buckets=LATENCY_BUCKETS,
        )
        self._bars: OrderedDict[str, int] = OrderedDict()
        self._remember = remember

    def on_bar(self, bar: Bar) -> None:
        self._bars[bar.id] = bar.ts_init
        if len(self._bars) > self._remember:
            self._bars.popitem(last=False)

    def on_order(self, order: SubmitOrder) -> None:
        bar_ts = self._bars.get(order.correlation_id)
        if bar_ts is not None:
            self.latency.labels(order.strategy_id).observe(max(0, order.ts_init - bar_ts) / 1e9)


class OrderReconciler:
    """Counts fills that disagree with the ordered quantity (see the module docstring)."""

    def __init__(self, metrics: ServiceMetrics, *, remember: int = 10_000) -> None:
        self.mismatches = metrics.counter(
            "reconciliation_mismatches_total",
            "Order events that disagree with what risk ordered (kind: overfill)",
            ("kind",),
        )
        self.mismatches.labels("overfill")  # exported at 0 from the start, so rates are defined
        self._ordered: OrderedDict[str, Decimal] = OrderedDict()
        #: per client order id: quantity of the fills seen, and the latest leaves_qty reported
        self._fills: OrderedDict[str, tuple[Decimal, Decimal]] = OrderedDict()
        #: orders already counted (an overfilled order counts once, however many fills follow)
        self._flagged: OrderedDict[str, None] = OrderedDict()
        self._remember = remember

    def observe(self, message: Message) -> None:
        """Feed a newly recorded message (never a redelivered one: fills would count twice)."""
        if isinstance(message, SubmitOrder):
            coid = message.client_order_id
            _remember(self._ordered, coid, message.quantity, self._remember)
        elif isinstance(message, OrderFilled):
            coid = message.client_order_id
            filled, _ = self._fills.get(coid, (Decimal(0), Decimal(0)))
            _remember(self._fills, coid, (filled + message.last_qty, message.leaves_qty), self._remember)
        else:
            return
        ordered = self._ordered.get(coid)
        seen = self._fills.get(coid)
        if ordered is not None and seen is not None and sum(seen) > ordered and coid not in self._flagged:
            _remember(self._flagged, coid, None, self._remember)
            self.mismatches.labels("overfill").inc()


def _remember(store: OrderedDict[str, V], key: str, value: V, limit: int) -> None:
    store[key] = value
    store.move_to_end(key)
    if len(store) > limit:
        store.popitem(last=False)
