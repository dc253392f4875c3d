"""The paper venue: deterministic fills simulated from bars, by event time.

Results never depend on when messages arrive, only on event times. An order's ``ts_event`` is the
open time ``t`` of the bar that caused its signal; the venue keeps each instrument's recent bars in
event-time order and matches every order against the bars after ``t``:

* **Market**, ``fill_at = "next_open"``: fills on the first bar with ``ts_event > t``, at its open.
  ``fill_at = "close"``: fills at the close of the signal bar (``ts_event == t``) if the venue has
  it, else at the open of the first later bar. Slippage: BUY pays ``price * (1 + bps/1e4)``, SELL
  receives ``price * (1 - bps/1e4)``. Liquidity ``TAKER``.
* **Limit** orders always start on the first bar with ``ts_event > t`` (also with
  ``fill_at = "close"``). BUY fills on a bar whose ``low <= limit`` at ``min(open, limit)``; SELL on
  a bar whose ``high >= limit`` at ``max(open, limit)``. No slippage. A fill at the limit is a
  resting fill (``MAKER``); a gap through the limit fills at the better open, as an order meeting
  the market at the open (``TAKER``).
* **Volume cap**: at most ``max_volume_share * bar.volume``, rounded down to ``quantity_step``,
  fills per bar per order (so a zero-volume bar fills nothing); the rest keeps working on later
  bars as partial fills (``partial=True`` with ``leaves_qty``; the last fill has ``partial=False``).
  Remainders of market orders fill at the later bars' opens. ``max_volume_share = 1.0`` disables
  the cap: volume is ignored and the whole order fills on one bar.
* **Fees**: ``last_qty * last_px * fee_bps / 1e4`` in ``fee_currency``.
* **Time in force**: ``GTC`` works until filled or cancelled. ``IOC`` fills what its first eligible
  bar allows and cancels the rest (``OrderCanceled``). ``FOK`` fills all on its first eligible bar
  or cancels all. ``DAY`` expires (``OrderExpired``) at the end of the UTC day of its first
  eligible bar.
* An order arriving after the bars it should fill on fills at once against the stored history,
  with the same result as if it had arrived in time; otherwise it rests and fills from
  :meth:`PaperVenue.on_bar`. Cancels take effect when they arrive (fills already reported stand).

Not simulated: positions and balances (``reduce_only`` is accepted and ignored; the ledger and risk
own positions), price ticks (prices are not rounded), and queue position or the venue's book.
The venue expects one bar interval per instrument: bars of another interval than the first seen for
an instrument are ignored with a warning (route one interval to it).

Identifiers are derived, so a restart replaying the same inputs yields the same ids:
``venue_order_id = derive_id("vo", client_order_id)[:16]``,
``trade_id = derive_id("trade", client_order_id, bar.ts_event)[:20]`` (one fill per order per bar),
message ids ``derive_id(<event type>, client_order_id, trade_id or "")``.

**State across restarts.** :meth:`PaperVenue.export_state` returns the venue's state as msgspec
JSON (the working orders with their filled quantities and match cursors, the newest remembered
client order ids, and the last ``export_bars`` bars per instrument, enough for orders arriving a
little late); :meth:`PaperVenue.restore_state` loads it into a fresh venue, which then continues
exactly as the exporting one would have. ``state_revision`` is bumped whenever something that must
survive a restart changed (an order accepted, rejected, filled or closed, or matched for the first
time); new bars and the cursor of an order a bar did not fill do not bump it (re-matching such a bar
after a restart fills nothing again). The execution service stores the state in the KV bucket.
"""

from __future__ import annotations

import bisect
import itertools
import logging
from dataclasses import dataclass
from decimal import Decimal

import msgspec

from tradewire_common.config import PaperConfig
from tradewire_common.ids import derive_id, split_instrument_id
from tradewire_common.numbers import ZERO, quantize_down
from tradewire_common.schemas import (
    Bar,
    CancelOrder,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderType,
    Side,
    SubmitOrder,
    TimeInForce,
)
from tradewire_execution.venue import (
    CAP_DAY,
    CAP_FOK,
    CAP_GTC,
    CAP_IOC,
    CAP_LIMIT,
    CAP_MARKET,
    CAP_PARTIAL_FILLS,
    CAP_REDUCE_ONLY,
    VenueAdapter,
)

log = logging.getLogger(__name__)

_BPS = Decimal(10_000)
_DAY_NS = 86_400 * 1_000_000_000
#: Bars kept per instrument.
DEFAULT_HISTORY = 10_000
#: Client order ids remembered for de-duplication (open orders are always remembered).
DEFAULT_SEEN_IDS = 100_000
#: Bars per instrument kept in the exported state (late orders match against them after a restart).
DEFAULT_EXPORT_BARS = 64
#: Newest client order ids kept in the exported state (plus those of all open orders). A restarted
#: service sees again only commands it had not acknowledged, which are the newest.
DEFAULT_EXPORT_IDS = 1_000
#: Version of the exported state's layout.
STATE_VERSION = 1


class _History:
    """One instrument's bars, in event-time order, at most ``limit`` of them."""

    def __init__(self, limit: int, interval: str) -> None:
        self.limit = limit
        self.interval = interval
        self.bars: list[Bar] = []
        self.times: list[int] = []
        #: Event time of the newest bar dropped to respect ``limit`` (None: nothing dropped).
        self.dropped_until: int | None = None
        #: Exported bars, encoded once each (by event time; bars never change once stored).
        self._encoded: dict[int, msgspec.Raw] = {}

    def add(self, bar: Bar) -> bool:
        """Insert ``bar`` in order; False if a bar with its event time is already stored."""
        i = bisect.bisect_left(self.times, bar.ts_event)
        if i < len(self.times) and self.times[i] == bar.ts_event:
            return False
        self.times.insert(i, bar.ts_event)
        self.bars.insert(i, bar)
        excess = len(self.bars) - self.limit
        if excess > 0:
            self.dropped_until = self.times[excess - 1]
            del self.times[:excess]
            del self.bars[:excess]
        return True

    def after(self, ts: int) -> list[Bar]:
        """Stored bars with ``ts_event > ts``, oldest first."""
        return self.bars[bisect.bisect_right(self.times, ts) :]

    def export(self, count: int) -> _HistoryState:
        """The newest ``count`` bars, for the exported state."""
        bars = self.bars[-count:]
        cache = self._encoded
        if len(cache) > 2 * count:
            cache = self._encoded = {b.ts_event: cache[b.ts_event] for b in bars if b.ts_event in cache}
        rows = []
        for bar in bars:
            raw = cache.get(bar.ts_event)
            if raw is None:
                raw = cache[bar.ts_event] = msgspec.Raw(msgspec.json.encode(_BarRow.of(bar)))
            rows.append(raw)
        omitted = len(self.bars) - len(bars)
        dropped_until = self.times[omitted - 1] if omitted else self.dropped_until
        return _HistoryState(bars[0].instrument_id, self.interval, rows, dropped_until)


@dataclass
class _Working:
    """An order at the venue and how far it has been matched."""

    order: SubmitOrder
    venue_order_id: str
    #: Event time of the last bar matched against; only bars after it are eligible.
    cursor: int
    filled: Decimal = ZERO
    #: True once the order has met its first eligible bar.
    worked: bool = False
    #: For DAY orders: the event time at which the order expires.
    expires_at: int | None = None
    closed: bool = False

    @property
    def leaves(self) -> Decimal:
        quantity: Decimal = self.order.quantity
        return quantity - self.filled

    def sort_key(self) -> tuple[int, str]:
        return (self.order.ts_event, self.order.client_order_id)


# --- exported state (msgspec JSON; additive changes only, or bump STATE_VERSION) ---------------


class _BarRow(msgspec.Struct, frozen=True, array_like=True):
    """A stored bar without its instrument and interval (those are its history's)."""

    id: str
    ts_event: int
    ts_init: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    seq: int
    correlation_id: str

    @classmethod
    def of(cls, bar: Bar) -> _BarRow:
        return cls(bar.id, bar.ts_event, bar.ts_init, bar.open, bar.high, bar.low, bar.close, bar.volume,
                   bar.seq, bar.correlation_id)

    def bar(self, instrument_id: str, interval: str) -> Bar:
        return Bar(id=self.id, ts_event=self.ts_event, ts_init=self.ts_init, correlation_id=self.correlation_id,
                   instrument_id=instrument_id, interval=interval, open=self.open, high=self.high, low=self.low,
                   close=self.close, volume=self.volume, seq=self.seq)


class _HistoryState(msgspec.Struct, frozen=True):
    instrument_id: str
    interval: str
    #: Encoded ``_BarRow`` objects, oldest first.
    bars: list[msgspec.Raw]
    #: Event time of the newest bar not kept (None: none was dropped).
    dropped_until: int | None = None


class _OrderState(msgspec.Struct, frozen=True):
    order: SubmitOrder
    cursor: int
    filled: Decimal
    worked: bool
    expires_at: int | None = None


class _VenueState(msgspec.Struct, frozen=True):
    version: int
    venue: str
    #: Working orders, oldest first.
    orders: list[_OrderState]
    #: Remembered client order ids, oldest first.
    seen: list[str]
    histories: list[_HistoryState]


class PaperVenue(VenueAdapter):
    """A simulated venue filling orders from bars (see the module docstring for the rules)."""

    capabilities = frozenset(
        {CAP_MARKET, CAP_LIMIT, CAP_PARTIAL_FILLS, CAP_GTC, CAP_IOC, CAP_FOK, CAP_DAY, CAP_REDUCE_ONLY}
    )

    def __init__(
        self,
        name: str,
        config: PaperConfig,
        *,
        history: int = DEFAULT_HISTORY,
        remember_ids: int = DEFAULT_SEEN_IDS,
        export_bars: int = DEFAULT_EXPORT_BARS,
        export_ids: int = DEFAULT_EXPORT_IDS,
    ) -> None:
        if min(history, remember_ids, export_bars, export_ids) < 1:
            raise ValueError("history, remember_ids, export_bars and export_ids must be positive")
        self.name = name
        self.config = config
        self._history_limit = history
        self._remember_ids = remember_ids
        self._export_bars = export_bars
        self._export_ids = export_ids
        #: Bumped when state that must survive a restart changed (see the module docstring).
        self.state_revision = 0
        self._slippage = Decimal(str(config.slippage_bps)) / _BPS
        self._fee_rate = Decimal(str(config.fee_bps)) / _BPS
        share = Decimal(str(config.max_volume_share))
        #: None: the volume cap is disabled.
        self._volume_share: Decimal | None = None if share >= 1 else share
        self._bars: dict[str, _History] = {}
        #: Open orders by instrument, then client order id.
        self._open: dict[str, dict[str, _Working]] = {}
        #: Every client order id seen (insertion-ordered; the oldest closed ones are forgotten).
        self._seen: dict[str, None] = {}

    # --- VenueAdapter -------------------------------------------------------------------------

    async def submit(self, order: SubmitOrder, now_ns: int) -> list[OrderEvent]:
        coid = order.client_order_id
        if coid in self._seen:
            log.info("paper %s: duplicate client order id %s ignored", self.name, coid)
            return []
        self._remember(coid)
        self.state_revision += 1
        reason = self._reject_reason(order)
        if reason:
            log.warning("paper %s: rejected %s: %s", self.name, coid, reason)
            return [
                OrderRejected(
                    id=derive_id("OrderRejected", coid, ""),
                    ts_event=order.ts_event,
                    ts_init=now_ns,
                    correlation_id=order.correlation_id,
                    strategy_id=order.strategy_id,
                    instrument_id=order.instrument_id,
                    client_order_id=coid,
                    reason=reason,
                )
            ]
        # A market order filling at the close may fill on the signal bar itself (ts_event == t).
        at_close = order.order_type is OrderType.MARKET and self.config.fill_at == "close"
        working = _Working(
            order=order,
            venue_order_id=derive_id("vo", coid)[:16],
            cursor=order.ts_event - 1 if at_close else order.ts_event,
        )
        events: list[OrderEvent] = [
            OrderAccepted(
                id=derive_id("OrderAccepted", coid, ""),
                ts_event=order.ts_event,
                ts_init=now_ns,
                correlation_id=order.correlation_id,
                strategy_id=order.strategy_id,
                instrument_id=order.instrument_id,
                client_order_id=coid,
                venue_order_id=working.venue_order_id,
            )
        ]
        history = self._bars.get(order.instrument_id)
        if history is not None:
            if history.dropped_until is not None and working.cursor < history.dropped_until:
                log.warning(
                    "paper %s: order %s at %d is older than the kept bar history; "
                    "it matches the oldest bars kept",
                    self.name,
                    coid,
                    order.ts_event,
                )
            for bar in history.after(working.cursor):
                events.extend(self._match(working, bar, now_ns))
                if working.closed:
                    break
        if not working.closed:
            self._open.setdefault(order.instrument_id, {})[coid] = working
        return events

    async def cancel(self, command: CancelOrder, now_ns: int) -> list[OrderEvent]:
        coid = command.client_order_id
        working = self._find_open(coid)
        if working is None:
            log.info("paper %s: cancel of unknown or closed order %s ignored", self.name, coid)
            return []
        self._close(working)
        order = working.order
        return [
            OrderCanceled(
                id=derive_id("OrderCanceled", coid, ""),
                ts_event=command.ts_event,
                ts_init=now_ns,
                correlation_id=order.correlation_id,
                strategy_id=order.strategy_id,
                instrument_id=order.instrument_id,
                client_order_id=coid,
                reason=command.reason or "canceled",
                filled_qty=working.filled,
            )
        ]

    async def on_bar(self, bar: Bar, now_ns: int) -> list[OrderEvent]:
        history = self._bars.get(bar.instrument_id)
        if history is None:
            history = self._bars[bar.instrument_id] = _History(self._history_limit, bar.interval)
        elif bar.interval != history.interval:
            log.warning(
                "paper %s: %s bar of %s ignored: this venue matches %s bars",
                self.name,
                bar.interval,
                bar.instrument_id,
                history.interval,
            )
            return []
        if not history.add(bar):
            log.info("paper %s: duplicate bar %s at %d ignored", self.name, bar.instrument_id, bar.ts_event)
            return []
        events: list[OrderEvent] = []
        orders = self._open.get(bar.instrument_id)
        if not orders:
            return events
        for working in sorted(orders.values(), key=_Working.sort_key):
            if bar.ts_event > working.cursor:
                events.extend(self._match(working, bar, now_ns))
        return events

    def open_orders(self) -> list[str]:
        working = [w for orders in self._open.values() for w in orders.values()]
        return [w.order.client_order_id for w in sorted(working, key=_Working.sort_key)]

    def export_state(self) -> bytes:
        """The working orders, the newest ``export_ids`` remembered client order ids (and those of
        all open orders) and the last ``export_bars`` bars per instrument, as msgspec JSON."""
        working = sorted((w for orders in self._open.values() for w in orders.values()), key=_Working.sort_key)
        newest = list(itertools.islice(reversed(self._seen), self._export_ids))[::-1]
        kept = set(newest)
        # open orders' ids are always remembered; older ones go first to keep the oldest-first order
        seen = [w.order.client_order_id for w in working if w.order.client_order_id not in kept] + newest
        histories = [h.export(self._export_bars) for _, h in sorted(self._bars.items()) if h.bars]
        state = _VenueState(
            version=STATE_VERSION,
            venue=self.name,
            orders=[_OrderState(w.order, w.cursor, w.filled, w.worked, w.expires_at) for w in working],
            seen=seen,
            histories=histories,
        )
        return msgspec.json.encode(state)

    def restore_state(self, data: bytes) -> None:
        """Replace this venue's orders, remembered ids and bars by ``export_state`` output.

        Raises ``ValueError`` (``msgspec.DecodeError`` is one) for data it cannot load: not a paper
        venue state, another layout version, or another venue's state.
        """
        state = msgspec.json.decode(data, type=_VenueState)
        if state.version != STATE_VERSION:
            raise ValueError(f"paper venue state version {state.version} is not {STATE_VERSION}")
        if state.venue != self.name:
            raise ValueError(f"paper venue state of {state.venue!r} cannot be loaded into {self.name!r}")
        bars: dict[str, _History] = {}
        for h in state.histories:
            history = bars[h.instrument_id] = _History(self._history_limit, h.interval)
            for raw in h.bars:
                history.add(msgspec.json.decode(raw, type=_BarRow).bar(h.instrument_id, h.interval))
            if h.dropped_until is not None:
                history.dropped_until = max(h.dropped_until, history.dropped_until or h.dropped_until)
        open_orders: dict[str, dict[str, _Working]] = {}
        for o in state.orders:
            coid = o.order.client_order_id
            open_orders.setdefault(o.order.instrument_id, {})[coid] = _Working(
                order=o.order,
                venue_order_id=derive_id("vo", coid)[:16],
                cursor=o.cursor,
                filled=o.filled,
                worked=o.worked,
                expires_at=o.expires_at,
            )
        self._bars = bars
        self._open = open_orders
        self._seen = dict.fromkeys(state.seen)
        for orders in open_orders.values():
            for coid in orders:
                self._seen.setdefault(coid, None)
        self.state_revision += 1

    # --- queries ------------------------------------------------------------------------------

    def last_bar_ts(self, instrument_id: str) -> int | None:
        """Event time of the newest bar seen for ``instrument_id`` (None if none)."""
        history = self._bars.get(instrument_id)
        return history.times[-1] if history is not None and history.times else None

    # --- matching -----------------------------------------------------------------------------

    def _reject_reason(self, order: SubmitOrder) -> str:
        try:
            _, venue = split_instrument_id(order.instrument_id)
        except ValueError as exc:
            return str(exc)
        if venue != self.name.upper():
            return f"instrument {order.instrument_id} is not traded on venue {self.name}"
        return ""

    def _match(self, working: _Working, bar: Bar, now_ns: int) -> list[OrderEvent]:
        """Match ``working`` against one eligible bar (``bar.ts_event > working.cursor``)."""
        order = working.order
        tif = order.time_in_force
        first = not working.worked
        if first:
            self.state_revision += 1  # DAY orders fix their expiry, IOC/FOK orders close
        working.worked = True
        working.cursor = bar.ts_event
        if tif is TimeInForce.DAY:
            if working.expires_at is None:
                working.expires_at = (bar.ts_event // _DAY_NS + 1) * _DAY_NS
            elif bar.ts_event >= working.expires_at:
                self._close(working)
                return [self._ended(OrderExpired, working, working.expires_at, now_ns, "DAY order expired")]

        events: list[OrderEvent] = []
        quote = self._price(order, bar)
        qty = ZERO
        if quote is not None:
            qty = working.leaves
            cap = self._cap(bar)
            if cap is not None:
                qty = min(qty, cap)
            if tif is TimeInForce.FOK and qty < working.leaves:
                qty = ZERO
        if quote is not None and qty > 0:
            price, liquidity = quote
            working.filled += qty
            self.state_revision += 1
            leaves = working.leaves
            trade_id = derive_id("trade", order.client_order_id, bar.ts_event)[:20]
            events.append(
                OrderFilled(
                    id=derive_id("OrderFilled", order.client_order_id, trade_id),
                    ts_event=bar.ts_event,
                    ts_init=now_ns,
                    correlation_id=order.correlation_id,
                    strategy_id=order.strategy_id,
                    instrument_id=order.instrument_id,
                    client_order_id=order.client_order_id,
                    venue_order_id=working.venue_order_id,
                    trade_id=trade_id,
                    side=order.side,
                    last_qty=qty,
                    last_px=price,
                    fee=qty * price * self._fee_rate,
                    fee_currency=self.config.fee_currency,
                    liquidity=liquidity,
                    partial=leaves > 0,
                    leaves_qty=leaves,
                )
            )
            if leaves <= 0:
                self._close(working)
                return events
        if first and tif in (TimeInForce.IOC, TimeInForce.FOK):
            self._close(working)
            reason = f"{tif.value}: rest canceled"
            events.append(self._ended(OrderCanceled, working, bar.ts_event, now_ns, reason))
        return events

    def _price(self, order: SubmitOrder, bar: Bar) -> tuple[Decimal, Liquidity] | None:
        """Fill price and liquidity of ``order`` on ``bar``, or None if it does not fill there."""
        if order.order_type is OrderType.MARKET:
            # Only a fill_at="close" order is eligible on its signal bar; later bars fill at the open.
            base = bar.close if bar.ts_event == order.ts_event else bar.open
            if order.side is Side.BUY:
                return base * (1 + self._slippage), Liquidity.TAKER
            return base * (1 - self._slippage), Liquidity.TAKER
        limit = order.limit_price
        assert limit is not None  # SubmitOrder guarantees it for limit orders
        if order.side is Side.BUY:
            if bar.low > limit:
                return None
            return (bar.open, Liquidity.TAKER) if bar.open < limit else (limit, Liquidity.MAKER)
        if bar.high < limit:
            return None
        return (bar.open, Liquidity.TAKER) if bar.open > limit else (limit, Liquidity.MAKER)

    def _cap(self, bar: Bar) -> Decimal | None:
        """Most quantity one order may fill on ``bar`` (None: no cap)."""
        if self._volume_share is None:
            return None
        cap: Decimal = quantize_down(self._volume_share * bar.volume, self.config.quantity_step)
        return cap

    def _ended(
        self,
        kind: type[OrderCanceled] | type[OrderExpired],
        working: _Working,
        ts_event: int,
        now_ns: int,
        reason: str,
    ) -> OrderCanceled | OrderExpired:
        order = working.order
        return kind(
            id=derive_id(kind.__name__, order.client_order_id, ""),
            ts_event=ts_event,
            ts_init=now_ns,
            correlation_id=order.correlation_id,
            strategy_id=order.strategy_id,
            instrument_id=order.instrument_id,
            client_order_id=order.client_order_id,
            reason=reason,
            filled_qty=working.filled,
        )

    def _close(self, working: _Working) -> None:
        working.closed = True
        self.state_revision += 1
        orders = self._open.get(working.order.instrument_id)
        if orders is not None:
            orders.pop(working.order.client_order_id, None)
            if not orders:
                del self._open[working.order.instrument_id]

    def _find_open(self, coid: str) -> _Working | None:
        for orders in self._open.values():
            working = orders.get(coid)
            if working is not None:
                return working
        return None

    def _remember(self, coid: str) -> None:
        """Remember ``coid``; past the limit, forget the oldest closed ids down to 90% of it."""
        self._seen[coid] = None
        if len(self._seen) <= self._remember_ids:
            return
        keep = max(1, self._remember_ids * 9 // 10)
        open_ids = {c for orders in self._open.values() for c in orders}
        for old in list(self._seen):
            if len(self._seen) <= keep:
                break
            if old not in open_ids and old != coid:
                del self._seen[old]
