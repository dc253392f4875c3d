"""Slippage of each fill against the arrival price (``tradewire_execution_fill_slippage_ratio{venue}``).

* **Arrival price**: the close of the last bar execution saw for the instrument when the order arrived,
  i.e. when execution published its ``OrderSubmitted`` (risk's orders and the emulated exits alike).
  Orders that arrive before any bar of their instrument, and orders execution never submitted itself
  (a venue's native bracket exits), have none and are not measured; neither are orders in flight
  across a restart of execution (the arrival prices are kept in memory only).
* **Slippage**: ``(fill price - arrival) / arrival``, signed so that positive is worse for the trader:
  a BUY filled above the arrival price, a SELL filled below it. A limit order filled better than the
  market is negative. Each fill is one observation (a partially filled order gives several).
* With buckets below zero prometheus_client exports no ``_sum`` (a sum of signed values is no
  counter): read the distribution with ``histogram_quantile`` over the ``_bucket`` series.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from decimal import Decimal

from tradewire_common.metrics import ServiceMetrics
from tradewire_common.schemas import (
    Bar,
    Message,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    Side,
)

#: Signed buckets (fractions of the arrival price): ±1 bp to ±5 %, finer near zero.
SLIPPAGE_BUCKETS = (
    -0.05, -0.02, -0.01, -0.005, -0.002, -0.001, -0.0005, -0.0002, -0.0001,
    0.0, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05,
)
_DONE = (OrderCanceled, OrderExpired, OrderRejected)


def signed_slippage(side: Side, fill_px: Decimal, arrival_px: Decimal) -> Decimal:
    """The fill's slippage as a fraction of the arrival price, positive when worse for the trader."""
    move = (fill_px - arrival_px) / arrival_px
    return move if side is Side.BUY else -move


class ArrivalSlippage:
    """Remembers arrival prices and observes each fill's slippage (see the module docstring)."""

    def __init__(self, metrics: ServiceMetrics, venues: Iterable[str], *, remember: int = 100_000) -> None:
        self.histogram = metrics.histogram(
            "fill_slippage_ratio",
            "Fill price against the last bar close when the order arrived, a fraction of it; positive = worse "
            "for the trader (BUY above, SELL below)",
            ("venue",),
            buckets=SLIPPAGE_BUCKETS,
        )
        for venue in venues:  # every venue's series exists from the start
            self.histogram.labels(venue)
        self._last_close: dict[str, Decimal] = {}
        #: client order id -> arrival price, for orders not finished yet (oldest first, bounded)
        self._arrival: OrderedDict[str, Decimal] = OrderedDict()
        self._remember = remember

    def on_bar(self, bar: Bar) -> None:
        self._last_close[bar.instrument_id] = bar.close

    def arrival(self, client_order_id: str) -> Decimal | None:
        return self._arrival.get(client_order_id)

    def observe(self, venue: str, events: Sequence[Message]) -> None:
        """Record arrivals and measure fills, in the order execution publishes the events."""
        for event in events:
            if isinstance(event, OrderSubmitted):
                price = self._last_close.get(event.instrument_id)
                if price is not None and event.client_order_id not in self._arrival:  # a redelivery keeps the first
                    self._arrival[event.client_order_id] = price
                    if len(self._arrival) > self._remember:
                        self._arrival.popitem(last=False)
            elif isinstance(event, OrderFilled):
                arrival = self._arrival.get(event.client_order_id)
                if arrival is not None:
                    self.histogram.labels(venue).observe(float(signed_slippage(event.side, event.last_px, arrival)))
                if not event.partial:
                    self._arrival.pop(event.client_order_id, None)
            elif isinstance(event, _DONE):
                self._arrival.pop(event.client_order_id, None)
