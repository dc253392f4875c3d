"""What risk knows beyond the portfolio snapshot: its open orders, recent submissions, fills by
strategy, last prices, equity history and recent bars.

Pure state, no I/O and no clock: the risk service feeds it messages (its own ``SubmitOrder``s, the
order events and execution watermarks of ``ord.evt.>``, portfolio snapshots, bars) and passes it
to the engine, which reads it and records its own decisions in it. Every time is an *event* time,
so a backtest gives the same decisions however fast messages arrive. After a restart the service
rebuilds it from the ledger (:meth:`restore_orders`, :meth:`restore_fills`, :meth:`restore_equity`).

* **Open orders**: an order risk submitted stays open until its final fill (``partial`` false),
  cancel, expiry or reject. Its notional is its unfilled quantity at its limit price, else its
  trigger price, else the signal's price (an order rebuilt from the ledger without one: the last
  price of its instrument).
* **Submissions**: event times of risk's orders per strategy and per venue; "in the last minute"
  at time ``t`` means ``ts > t - 60 s``.
* **Equity**: the peak of every equity seen, and the start-of-UTC-day equity: the last equity seen
  before the day (of ``as_of``) began, or the day's first equity when there is none.
* **Coverage**: execution publishes a watermark per venue after each bar, after that bar's order
  events, on the same stream; the context *covers* time ``t`` once every venue that has published
  one is at ``t`` or later (the rule the ledger's snapshot ``as_of`` follows).
* **Prediction markets**: a provisional fill counts at once; ``FillReversed`` takes it out of the
  strategy's book (rebuilt without it) and gives the order its quantity back (an order its final fill
  closed opens again); ``FillConfirmed`` makes it final. ``MarketResolved`` marks the instruments and
  the market resolved (:mod:`tradewire_risk.binary`: no longer tradable), settles the strategies' legs
  at the payouts and closes the open orders in them (the venue ends them). ``OrderReplaced`` moves an
  open order to its new client order id, quantity and price.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from tradewire_common.ids import split_instrument_id
from tradewire_common.schemas import (
    Bar,
    ExecutionWatermark,
    FillConfirmed,
    FillReversed,
    MarketResolved,
    Message,
    OrderCanceled,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    PortfolioSnapshot,
    Side,
    SubmitOrder,
)
from tradewire_common.trading_state import FLATTEN_PREFIX
from tradewire_risk.bars import BarHistory
from tradewire_risk.book import Fill, StrategyBook

NS = 1_000_000_000
MINUTE_NS = 60 * NS
DAY_NS = 86_400 * NS
_ZERO = Decimal(0)
#: Ledger order statuses of orders still working.
OPEN_STATUSES = frozenset({"NEW", "SUBMITTED", "ACCEPTED", "PARTIALLY_FILLED"})


@dataclass(slots=True)
class OpenOrder:
    client_order_id: str
    strategy_id: str
    instrument_id: str
    venue: str
    side: Side
    quantity: Decimal
    #: Price its notional is counted at (None: unknown, use the instrument's last price).
    price: Decimal | None
    reduce_only: bool
    ts_event: int
    filled: Decimal = _ZERO

    @property
    def remaining(self) -> Decimal:
        return max(self.quantity - self.filled, _ZERO)


class RiskContext:
    """Risk's view of orders, fills, prices and equity over time (see the module docstring)."""

    def __init__(self, *, atr_window: int = 14, memory: int = 100_000) -> None:
        self.memory = memory
        self.open_orders: dict[str, OpenOrder] = {}
        #: Client order ids risk decided on (submitted or denied) or found in the ledger, oldest first.
        self._known: OrderedDict[str, None] = OrderedDict()
        self._closed: OrderedDict[str, None] = OrderedDict()
        self._submits_by_strategy: dict[str, deque[int]] = {}
        self._submits_by_venue: dict[str, deque[int]] = {}
        self.book = StrategyBook()
        self.bars = BarHistory(atr_window)
        self._last_price: dict[str, tuple[int, Decimal]] = {}
        self.watermarks: dict[str, int] = {}
        self.peak_equity: Decimal | None = None
        self.day_start_equity: Decimal | None = None
        self._day: int | None = None
        self._last_equity: tuple[int, Decimal] | None = None
        #: False while a rebuild from the ledger is wanted but has not succeeded (entries are denied).
        self.complete = True
        #: Resolved prediction markets: instrument -> payout, market id -> resolution label.
        self.resolved: dict[str, Decimal] = {}
        self.resolved_markets: dict[str, str] = {}
        #: Orders closed by a provisional final fill, kept until it is confirmed (reopened if reversed).
        self._provisional_closes: dict[tuple[str, str], OpenOrder] = {}

    # -- feeding --------------------------------------------------------------------------------

    def apply(self, message: Message) -> None:
        """Apply one message from the bus (others are ignored)."""
        match message:
            case OrderFilled():
                self.apply_fill(message)
            case FillReversed():
                self.reverse_fill(message)
            case FillConfirmed():
                self._provisional_closes.pop((message.client_order_id, message.trade_id), None)
            case MarketResolved():
                self.resolve(message)
            case OrderReplaced():
                self.replace_order(message)
            case OrderCanceled() | OrderExpired() | OrderRejected():
                self._close(message.client_order_id)
                # ended at the venue: a reversal of its fill no longer reopens it
                for key in [k for k in self._provisional_closes if k[0] == message.client_order_id]:
                    del self._provisional_closes[key]
            case OrderDenied():
                self._remember(message.client_order_id)
            case ExecutionWatermark():
                self.watermarks[message.venue] = max(self.watermarks.get(message.venue, 0), message.ts_event)
                if message.instrument_id and message.close is not None:
                    self.observe_price(message.instrument_id, message.ts_event, message.close)
            case Bar():
                self.bars.add(message)
                self.observe_price(message.instrument_id, message.ts_event, message.close)
            case PortfolioSnapshot():
                self.observe_equity(message.as_of, message.equity)
            case _:
                pass

    def record_submit(self, order: SubmitOrder, price: Decimal) -> None:
        """Risk sent ``order``, decided at ``price`` (the signal's)."""
        coid = order.client_order_id
        self._remember(coid)
        if coid in self._closed or coid in self.open_orders:
            return
        _symbol, venue = split_instrument_id(order.instrument_id)
        notional_price = order.limit_price or order.trigger_price or price
        self.open_orders[coid] = OpenOrder(coid, order.strategy_id, order.instrument_id, venue, order.side,
                                           order.quantity, notional_price, order.reduce_only, order.ts_event)
        self._record_time(self._submits_by_strategy, order.strategy_id, order.ts_event)
        self._record_time(self._submits_by_venue, venue, order.ts_event)

    def record_denial(self, client_order_id: str) -> None:
        self._remember(client_order_id)

    def apply_fill(self, fill: OrderFilled) -> None:
        new = self.book.apply(Fill(fill.client_order_id, fill.trade_id, fill.strategy_id, fill.instrument_id,
                                   fill.side, fill.last_qty, fill.last_px, fill.fee, fill.ts_event))
        order = self.open_orders.get(fill.client_order_id)
        if order is not None and new:
            order.filled += fill.last_qty
        if not fill.partial:
            if order is not None and new and fill.provisional:
                self._provisional_closes[(fill.client_order_id, fill.trade_id)] = order
            self._close(fill.client_order_id)

    def reverse_fill(self, event: FillReversed) -> None:
        """A fill failed at the venue: out of the book, its quantity back to its order (idempotent)."""
        if not self.book.reverse(event.client_order_id, event.trade_id):
            return
        order = self.open_orders.get(event.client_order_id)
        closed = self._provisional_closes.pop((event.client_order_id, event.trade_id), None)
        if order is None and closed is not None:
            order = self.open_orders[event.client_order_id] = closed
            self._closed.pop(event.client_order_id, None)
        if order is not None:
            order.filled = max(order.filled - event.last_qty, _ZERO)

    def resolve(self, message: MarketResolved) -> None:
        """A market resolved: its instruments stop trading, legs settle, open orders in them end."""
        self.resolved_markets[message.market_id] = message.resolution
        for outcome in message.payouts:
            if outcome.instrument_id in self.resolved:
                continue
            self.resolved[outcome.instrument_id] = outcome.payout
            self.book.settle(outcome.instrument_id, outcome.payout)
            for order in [o for o in self.open_orders.values() if o.instrument_id == outcome.instrument_id]:
                self._close(order.client_order_id)

    def replace_order(self, message: OrderReplaced) -> None:
        """The open order continues under its new client order id, quantity and limit price."""
        self._remember(message.new_client_order_id)
        order = self.open_orders.get(message.client_order_id)
        if order is None or message.new_client_order_id in self._closed:
            return
        self._close(message.client_order_id)
        order.client_order_id = message.new_client_order_id
        order.quantity = message.quantity
        order.filled = message.filled_qty
        order.price = message.limit_price or message.trigger_price or order.price
        self.open_orders[message.new_client_order_id] = order

    def observe_price(self, instrument_id: str, ts_event: int, price: Decimal) -> None:
        current = self._last_price.get(instrument_id)
        if current is None or ts_event >= current[0]:
            self._last_price[instrument_id] = (ts_event, price)

    def observe_equity(self, as_of: int, equity: Decimal) -> None:
        """One equity point (a snapshot's ``as_of`` and equity); older than the last one: peak only."""
        if self.peak_equity is None or equity > self.peak_equity:
            self.peak_equity = equity
        if self._last_equity is not None and as_of < self._last_equity[0]:
            return
        day = as_of // DAY_NS
        if self._day is None:
            self._day, self.day_start_equity = day, equity
        elif day > self._day:
            assert self._last_equity is not None
            self._day, self.day_start_equity = day, self._last_equity[1]
        self._last_equity = (as_of, equity)

    # -- queries --------------------------------------------------------------------------------

    def knows(self, client_order_id: str) -> bool:
        return client_order_id in self._known

    def covers(self, ts_event: int) -> bool:
        """Whether every venue's order events up to ``ts_event`` have been applied."""
        return all(mark >= ts_event for mark in self.watermarks.values())

    def last_price(self, instrument_id: str) -> Decimal | None:
        current = self._last_price.get(instrument_id)
        return current[1] if current is not None else None

    def orders(self, *, strategy_id: str | None = None) -> list[OpenOrder]:
        return [o for o in self.open_orders.values() if strategy_id is None or o.strategy_id == strategy_id]

    def submits_in_minute(self, now: int, *, strategy_id: str | None = None, venue: str | None = None) -> int:
        """Orders with event time in ``(now - 60 s, now]`` of a strategy or a venue."""
        times = (self._submits_by_strategy.get(strategy_id, ()) if strategy_id is not None
                 else self._submits_by_venue.get(venue or "", ()))
        return sum(1 for ts in times if now - MINUTE_NS < ts <= now)

    def order_notional(self, order: OpenOrder) -> Decimal | None:
        """Unfilled quantity times the order's price (its instrument's last price if it has none)."""
        price = order.price if order.price is not None else self.last_price(order.instrument_id)
        return None if price is None else order.remaining * price

    # -- rebuilding from the ledger --------------------------------------------------------------

    def restore_orders(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Ledger order rows (``/v1/orders``): every id becomes known; working ones open; the
        submissions' times count for the rate limits. Rows of orders already closed here are skipped."""
        for row in sorted(rows, key=lambda r: (int(r["created_ts"]), str(r["client_order_id"]))):
            coid = str(row["client_order_id"])
            self._remember(coid)
            status = str(row.get("status") or "")
            if status == "DENIED" or not row.get("side") or row.get("quantity") is None:
                continue
            _symbol, venue = split_instrument_id(str(row["instrument_id"]))
            ts = int(row["created_ts"])
            if coid not in self.open_orders and coid not in self._closed:
                self._record_time(self._submits_by_strategy, str(row["strategy_id"]), ts)
                self._record_time(self._submits_by_venue, venue, ts)
            if status not in OPEN_STATUSES:
                self._close(coid)
                continue
            if coid in self._closed or coid in self.open_orders:
                continue
            # the ledger does not store reduce_only: only the kill switch's closing orders are known to be
            self.open_orders[coid] = OpenOrder(
                coid, str(row["strategy_id"]), str(row["instrument_id"]), venue, Side(str(row["side"])),
                _decimal(row["quantity"]), _decimal(row["limit_price"]) if row.get("limit_price") else None,
                coid.startswith(FLATTEN_PREFIX), ts, _decimal(row.get("filled_qty") or "0"))

    def restore_fills(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Ledger fill rows (``/v1/fills``), applied oldest first (by ``seq``); repeats and reversed fills
        are ignored."""
        for row in sorted(rows, key=lambda r: int(r["seq"])):
            if row.get("status") == "reversed":  # remembered, so a late delivery of it is not applied
                self.book.reverse(str(row["client_order_id"]), str(row["trade_id"]))
                continue
            self.book.apply(Fill(str(row["client_order_id"]), str(row["trade_id"]), str(row["strategy_id"]),
                                 str(row["instrument_id"]), Side(str(row["side"])), _decimal(row["last_qty"]),
                                 _decimal(row["last_px"]), _decimal(row["fee"]), int(row["ts_event"])))

    def restore_resolutions(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Ledger resolution rows (``/v1/resolutions``: ``MarketResolved`` fields), after the fills."""
        for row in rows:
            payouts = [(str(p["instrument_id"]), _decimal(p["payout"])) for p in row.get("payouts") or ()]
            market = str(row.get("market_id") or "")
            if market:
                self.resolved_markets[market] = str(row.get("resolution") or "")
            for instrument_id, payout in payouts:
                if instrument_id not in self.resolved:
                    self.resolved[instrument_id] = payout
                    self.book.settle(instrument_id, payout)

    def restore_equity(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Ledger equity rows (``/v1/equity``: ``ts`` is a snapshot's ``as_of``), oldest first."""
        for row in sorted(rows, key=lambda r: int(r["ts"])):
            self.observe_equity(int(row["ts"]), _decimal(row["equity"]))

    # -- internals ------------------------------------------------------------------------------

    def _close(self, coid: str) -> None:
        self.open_orders.pop(coid, None)
        self._closed[coid] = None
        _trim(self._closed, self.memory)

    def _remember(self, coid: str) -> None:
        self._known[coid] = None
        self._known.move_to_end(coid)
        _trim(self._known, self.memory)

    def _record_time(self, table: dict[str, deque[int]], key: str, ts: int) -> None:
        """Keep the times of the last two minutes (of the newest time), at most ``memory`` of them."""
        times = table.setdefault(key, deque(maxlen=self.memory))
        times.append(ts)
        newest = max(times)
        while times and times[0] <= newest - 2 * MINUTE_NS:
            times.popleft()


def _trim(table: OrderedDict[str, None], memory: int) -> None:
    while len(table) > memory:
        table.popitem(last=False)


def _decimal(value: object) -> Decimal:
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None
    if not result.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return result
