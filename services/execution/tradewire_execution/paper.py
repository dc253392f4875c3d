"""The paper venue: deterministic fills simulated from bars, or from books and quotes, by event time.

Results never depend on when messages arrive, only on event times. An order's ``ts_event`` is the
open time ``t`` of the bar that caused its signal; the venue keeps each instrument's recent bars in
event-time order and matches every order against the bars after ``t``:

* **Market**, ``fill_at = "next_open"``: fills on the first bar with ``ts_event > t``, at its open.
  ``fill_at = "close"``: fills at the close of the signal bar (``ts_event == t``) if the venue has
  it, else at the open of the first later bar. Slippage (below) applies. Liquidity ``TAKER``.
* **Limit** orders always start on the first bar with ``ts_event > t`` (also with
  ``fill_at = "close"``). BUY fills on a bar whose ``low <= limit`` at ``min(open, limit)``; SELL on
  a bar whose ``high >= limit`` at ``max(open, limit)``. No slippage. A fill at the limit is a
  resting fill (``MAKER``); a gap through the limit fills at the better open, as an order meeting
  the market at the open (``TAKER``).
* **Stop market** (``STOP_MARKET``, ``trigger_price``): eligible like limit orders. A BUY triggers
  on the first eligible bar with ``high >= trigger`` and fills there at ``max(open, trigger)`` (a gap
  up through the trigger fills at the open); a SELL triggers on ``low <= trigger`` and fills at
  ``min(open, trigger)``. Slippage applies, ``TAKER``. A remainder left by the volume cap fills at
  the later bars' opens, as a market order's.
* **Stop limit** (``STOP_LIMIT``, ``trigger_price`` and ``limit_price``): triggers like a stop
  market. On its trigger bar it fills at the stop's price ``p`` (``max(open, trigger)`` for a BUY,
  ``min(open, trigger)`` for a SELL) only if ``p`` does not pass the limit (BUY ``p <= limit``, SELL
  ``p >= limit``), ``TAKER``, without slippage (a limit caps its own price). Otherwise, and for what
  the volume cap left, it rests from the next bar as a limit order at ``limit_price`` (rules above).
* **Slippage** applies to the taker fills of market and stop-market orders and of bracket exits
  (never to limit or stop-limit fills): a BUY pays ``price * (1 + s)``, a SELL receives
  ``price * (1 - s)``. ``slippage_model = "fixed_bps"``: ``s = slippage_bps / 1e4``.
  ``"sqrt_impact"``: ``s = slippage_bps / 1e4 + impact_coefficient * sqrt(last_qty / bar.volume)``,
  at most ``max_impact_bps / 1e4``, where ``last_qty`` is the fill's quantity (after the volume cap)
  and ``bar`` the bar it fills on; a bar with ``volume <= 0`` costs the cap. Computed in Decimal in a
  fixed context (28 digits, half-even), so it is deterministic.
* **Volume cap**: at most ``max_volume_share * bar.volume``, rounded down to ``quantity_step``,
  fills per bar per order (so a zero-volume bar fills nothing); the rest keeps working on later
  bars as partial fills (``partial=True`` with ``leaves_qty``; the last fill has ``partial=False``).
  Remainders of market orders fill at the later bars' opens. ``max_volume_share = 1.0`` disables
  the cap: volume is ignored and the whole order fills on one bar.
* **Fees**: ``last_qty * last_px * rate / 1e4`` in ``fee_currency``, with ``rate = fee_bps`` for a
  ``TAKER`` fill and ``maker_fee_bps`` for a ``MAKER`` fill (``None``: ``fee_bps``). ``fee_per_order``
  is added to the fee of each order's first fill (the fill made while its filled quantity was 0),
  so an order pays it once however many fills it has; a bracket exit is an order too.
* **Latency**: with ``latency_ms = 0`` an order is at the venue when its signal bar closes (the
  rules above). With ``latency_ms > 0`` it arrives at ``arrival = t + interval + latency_ms`` (the
  signal bar's close plus the latency; ``interval`` is the instrument's bar interval as the venue
  stores it: ``<count><unit>`` with ns, us, ms, s, m, h, d, w, or M for calendar months) and is
  matched only against whole bars with ``ts_event >= arrival``, whatever its type: it fills on a
  later bar, and ``fill_at = "close"`` has no effect on it. An order that arrives before the venue
  has a bar of its instrument gets its arrival when the first bar comes; an interval the venue
  cannot read counts as 0. Bracket exits are the venue's own and have no latency.
* **Time in force**: ``GTC`` works until filled or cancelled. ``IOC`` fills what its first eligible
  bar allows and cancels the rest (``OrderCanceled``). ``FOK`` fills all on its first eligible bar
  or cancels all. For stop orders both are judged on the trigger bar (an untriggered stop waits).
  ``DAY`` expires (``OrderExpired``) at the end of the UTC day of its first eligible bar.
* ``GTD`` expires (``OrderExpired``, ``ts_event = expire_time_ns``) on its first eligible bar with
  ``ts_event >= expire_time_ns`` (event time; a bar opening before it is matched whole).
* **Post-only** (``post_only``, limit orders): decided on arrival, i.e. on its first eligible bar (with
  latency: the first bar at or after its arrival): if that bar opens through the limit (where a plain
  limit would fill at once as ``TAKER``) it is rejected (``OrderRejected``, reason "post-only would
  cross"), else accepted then (``OrderAccepted`` with that bar's time; no ``OrderAccepted`` at submit). A
  resting post-only order fills at its limit as ``MAKER`` on every bar that reaches the limit, also one
  gapping through it (it rests in the book at its own price).
* **Replace** (``ReplaceOrder``): a working order is amended in place: its client order id becomes the new
  one, quantity and prices as given (``None`` = unchanged), everything else kept (filled quantity, fill
  value, cursor, trigger state, venue order id, bracket). Answered by ``OrderReplaced`` (``ts_event`` = the
  command's); the new values apply from the next bar. Rejected (``OrderRejected`` on the new id, the order
  keeps working): an unknown or closed order, a bracket exit, a post-only order not decided yet, a new
  quantity not above the filled quantity, a limit (trigger) price for an order without one, a trigger of
  a stop that already triggered. A post-only amend is not checked for crossing again.
* **Binary instruments** (``kind = "binary"`` in ``risk.instruments``, given by
  :meth:`PaperVenue.set_instruments`): limit and trigger prices must be within (0, 1) (else
  ``OrderRejected``); fill prices are kept one ``price_tick`` inside (0, 1) after slippage; the fee is
  the venue's schedule (``tradewire_common.prediction.FeeSchedule.for_venue(venue name)``, maker or taker
  by the fill's liquidity) instead of ``fee_bps``/``fee_per_order``. :meth:`PaperVenue.resolve`
  (``MarketResolved``) cancels every open order in the market's instruments (``OrderCanceled``, reason
  "market resolved") and ends their tracked positions and brackets.
* An order arriving after the bars it should fill on fills at once against the stored history,
  with the same result as if it had arrived in time (its bracket is checked on those bars too);
  otherwise it rests and fills from :meth:`PaperVenue.on_bar`. Cancels take effect when they arrive
  (fills already reported stand).

**Brackets** (``stop_loss_pct`` / ``take_profit_pct`` / ``trailing_stop_pct`` / ``time_stop_s`` on
``SubmitOrder``) are emulated with exactly the vectorized backtester's stop rules
(``tradewire_backtest.kernels``, "Stops"); with ``native_brackets = false`` the venue has none (it
does not list ``CAP_BRACKET`` and ignores those fields) and execution's exit emulator keeps them
(:mod:`tradewire_execution.exits`):

* The venue tracks the net position made by its own fills per ``(strategy_id, instrument_id)``
  (signed Decimal, kept in the exported state).
* Each fill of an order carrying any of them sets that pair's bracket: direction = the order's
  side (BUY protects a long), levels relative to the order's average fill price so far (``entry``,
  slippage included). Long: ``stop = entry * (1 - sl)``, ``target = entry * (1 + tp)``; short:
  ``stop = entry * (1 + sl)``, ``target = entry * (1 - tp)``. There is one bracket per pair: a fill
  of a newer bracketed order (by ``(ts_event, client_order_id)``) replaces it, fills of an older
  one leave it alone.
* It protects (is armed) once its parent's fills put the position in its direction; it is
  cancelled when the position then goes flat or to the other side (the strategy exited, or
  reversed: a reversing order with its own bracket replaces it instead), and dropped if its parent
  closes without arming it (a bracketed order that only reduced the opposite position).
* It is checked once on every bar with ``ts_event > t`` of its parent, from the bar of the parent's
  first fill on: for a next-open fill on the fill bar itself, after that open; for a fill at the
  signal bar's close, from the next bar. Within a bar the working orders match first (entries at
  the open), then the brackets, so a bracket can fire on the bar its parent filled at the open.
* **Time stop** first: on a bar with ``ts_event >= entry_ts + time_stop_s`` (``entry_ts``: the event
  time of the parent's first fill, i.e. the bar it filled on; for a fill at the signal bar's close
  that bar's open time) it exits at that bar's open, before anything else the bar does.
* **Trailing stop**: ``trail = max(entry, peak) * (1 - tr)`` long, ``min(entry, peak) * (1 + tr)``
  short, where ``peak`` is the highest high (short: lowest low) of the bars the bracket was checked
  on *before* this one. A bar's own high never raises the stop its low is tested against (the
  order of the high and the low within a bar is unknown, so the conservative reading); its high
  counts from the next bar on. The peak starts at the entry price (the first check uses ``entry``).
  With a stop loss too, the stop is the tighter of the two (long: the higher; the stop loss on a
  tie); the exit's kind says which.
* Long: if ``low <= stop`` it exits at ``min(open, stop)``; elif ``high >= target`` at
  ``max(open, target)`` (the stop wins when both are in range). Short: if ``high >= stop`` at
  ``max(open, stop)``; elif ``low <= target`` at ``min(open, target)``. A fired bracket is gone.
* The exit is a venue-made reduce-only order for the whole position in the bracket's direction,
  client order id ``tw-<kind>-<24 hex>`` with kind ``sl`` (stop loss), ``tp`` (take profit), ``tr``
  (trailing stop) or ``tm`` (time stop) (``derive_id("exit", parent client order id, kind,
  bar.ts_event)[:24]``), ``ts_event`` = the bar, with the parent's strategy,
  instrument and correlation id. It fills on that bar at the exit price as a ``TAKER`` fill
  (slippage against the trader, taker fee, ``fee_per_order``). Only its ``OrderFilled`` events are
  published: the ledger records fills of orders it never saw (the fill creates the order row).
  With a volume cap it fills at most the cap on that bar and the rest at the later bars' opens
  (matched with the working orders); it never closes more than the tracked position left, and is
  cancelled (``OrderCanceled``) once that position is flat.

**Books** (prediction markets, or any instrument published as ``BookSnapshot`` / ``BookDelta`` / ``Quote`` /
``TradeTick`` without bars: :meth:`PaperVenue.on_book`, :meth:`~PaperVenue.on_quote`,
:meth:`~PaperVenue.on_trade`). The venue keeps one book per instrument: a snapshot replaces it, a delta sets one
level (size 0 removes it), a quote is a one-level book (bid and ask with their sizes); once the instrument had a
snapshot or delta a quote only moves the book's time (the book has the depth the quote summarises). A message
older than the book (``ts_event`` below the book's) or with the id of the last one applied is ignored. Every
message matches the instrument's working orders, oldest first (``(ts_event, client_order_id)``):

* **Bars win**: an instrument that gets a bar is a bar instrument for good (the bar rules above; its book is
  dropped and its books, quotes and trades are ignored from then on), so one instrument never mixes both. A
  venue may trade bar instruments and book instruments side by side.
* **Arrival**: an order reaches the venue at ``ts_event + latency_ms`` (its signal's event time plus the
  latency) and meets the first book with its ``ts_event`` at or after that arrival: at once when submitted if the
  venue's book is already there (with ``latency_ms = 0`` the book its signal came from), else with the first
  such message. The venue keeps no book history: an order arriving late meets the current book.
* **Taker**: on arrival a market order, or a limit order at or through the opposite side (a BUY limit at or
  above the best ask, a SELL at or below the best bid), takes the opposite side's levels, best first, up to its
  limit and quantity: **one fill per level** at that level's price (``TAKER``; a partial fill per level,
  ``partial``/``leaves_qty`` as for bars). No slippage and no volume cap: the displayed sizes are the limit.
  IOC cancels what the levels did not fill; FOK fills only if the levels up to its limit hold its whole
  quantity, else it is cancelled whole. A GTC/DAY/GTD market order's rest takes again from each later book.
* **Resting (maker)**: what a limit order did not take rests at its limit. It fills as ``MAKER`` at its limit
  when a later message shows the opposite side at or through its price, for the size that message **added**
  at those levels (a level's size beyond what the previous book showed there; a new level counts whole) -
  not the whole displayed size, so liquidity the order already took or that stood there without trading
  with it is never counted again; and when a ``TradeTick`` trades at or through its price, for the traded
  size. Several resting orders share one message's added size or one trade, oldest first.
* **Shared sizes**: the venue's fills never change the published book: within one book, orders share its
  displayed sizes (what a fill took is not available to the next order until the next message replaces the
  book); the next message shows the venue's levels as published.
* **Post-only** orders are decided on arrival: rejected (reason "post-only would cross") if the opposite
  side's best is at or through the limit, else accepted with that book's time; then they rest as above.
* **Stops** trigger on a book whose opposite best reaches the trigger (BUY: best ask at or above it, SELL:
  best bid at or below it), then take like a market order (stop market) or a limit order (stop limit) on
  that book; IOC/FOK are judged there.
* **Expiry**: DAY at the end of the UTC day of its arrival book, GTD on the first message at or after
  ``expire_time_ns`` (both before matching that message).
* **Fees**: binary instruments the venue's schedule (``FeeSchedule.for_venue``, maker or taker), others
  ``fee_bps`` / ``maker_fee_bps`` and ``fee_per_order`` as for bars.
* **Replace**: an amended book order keeps working as it was (resting, or a market order's rest); a new limit
  through the book does not take the levels already displayed, only what later messages add or trade there.
* Fills carry the message's event time; trade ids are derived from the order, the message id and the price.
  Native brackets and ``fill_at`` do not apply to book instruments (brackets are checked on bars only).

Not simulated: balances (``reduce_only`` of submitted orders is accepted and ignored; the ledger and
risk own positions, the venue's tracked positions only drive brackets), price ticks (prices are not
rounded), and queue position or the venue's book. The venue expects one bar interval per
instrument: bars of another interval than the first seen for an instrument are ignored with a
warning (route one interval to it).

Identifiers are derived, so a restart replaying the same inputs yields the same ids:
``venue_order_id = derive_id("vo", client_order_id)[:16]``,
``trade_id = derive_id("trade", client_order_id, bar.ts_event)[:20]`` (one fill per order per bar),
message ids ``derive_id(<event type>, client_order_id, trade_id or "")``.

**State across restarts.** :meth:`PaperVenue.export_state` returns the venue's state as msgspec
JSON (the working orders, bracket exits included, with their filled quantities, fill values,
triggers and match cursors; the tracked positions and brackets; the newest remembered client order
ids; and the last ``export_bars`` bars per instrument, enough for orders arriving a little late);
:meth:`PaperVenue.restore_state` loads it into a fresh venue, which then continues exactly as the
exporting one would have (an order's first fill, which pays ``fee_per_order``, follows from its
filled quantity). ``state_revision`` is bumped whenever something that must survive a restart
changed (an order accepted, rejected, filled, triggered or closed, or matched for the first time; a
bracket set, armed, fired or cancelled, or a trailing stop's peak moved); new bars and the cursor of
an order or bracket a bar did not change do not bump it (re-matching such a bar after a restart
changes nothing again). A restored venue continues a trailing stop from its saved peak, so it fires
where the uninterrupted venue would. The execution service stores the state in the KV bucket.
"""

from __future__ import annotations

import itertools
import logging
from decimal import Decimal

import msgspec

from tradewire_common.config import InstrumentSpec, PaperConfig
from tradewire_common.ids import derive_id, split_instrument_id
from tradewire_common.numbers import ZERO
from tradewire_common.schemas import (
    Bar,
    BookDelta,
    BookSnapshot,
    CancelOrder,
    MarketResolved,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    OrderType,
    Quote,
    ReplaceOrder,
    SubmitOrder,
    TimeInForce,
    TradeTick,
)
from tradewire_execution.paper_books import BookMatching, LocalBook, restore_books
from tradewire_execution.paper_brackets import BracketBook, Key
from tradewire_execution.paper_orders import (
    MARKET_RESOLVED,
    POST_ONLY_CROSSES,
    amend_problem,
    binary_fee,
    binary_fill_price,
    binary_price_problem,
    post_only_crosses,
    resting_quote,
)
from tradewire_execution.paper_pricing import CONTEXT, Costs, fill_quote, triggered
from tradewire_execution.paper_state import STATE_VERSION, BarRow, History, VenueState, Working
from tradewire_execution.venue import (
    CAP_AMEND,
    CAP_BRACKET,
    CAP_BRACKET_TIME,
    CAP_BRACKET_TRAILING,
    CAP_DAY,
    CAP_FOK,
    CAP_GTC,
    CAP_GTD,
    CAP_IOC,
    CAP_LIMIT,
    CAP_MARKET,
    CAP_PARTIAL_FILLS,
    CAP_POST_ONLY,
    CAP_REDUCE_ONLY,
    CAP_STOP,
    CAP_STOP_LIMIT,
    VenueAdapter,
    replace_rejected,
)

__all__ = ["STATE_VERSION", "PaperVenue"]

log = logging.getLogger(__name__)

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


class PaperVenue(BookMatching, VenueAdapter):
    """A simulated venue filling orders from bars, or books and quotes (see the module docstring for the rules)."""

    capabilities = frozenset({
        CAP_MARKET, CAP_LIMIT, CAP_STOP, CAP_STOP_LIMIT, CAP_BRACKET, CAP_PARTIAL_FILLS, CAP_GTC, CAP_IOC,
        CAP_FOK, CAP_DAY, CAP_REDUCE_ONLY, CAP_GTD, CAP_POST_ONLY, CAP_AMEND, CAP_BRACKET_TRAILING,
        CAP_BRACKET_TIME,
    })

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
        self._costs = Costs(config)
        self._latency_ns = config.latency_ms * 1_000_000
        self._bars: dict[str, History] = {}
        #: Books of the instruments without bars (``on_book`` / ``on_quote``; see the module docstring, "Books").
        self._books: dict[str, LocalBook] = {}
        #: Open orders by instrument, then client order id.
        self._open: dict[str, dict[str, Working]] = {}
        #: Every client order id seen (insertion-ordered; the oldest closed ones are forgotten).
        self._seen: dict[str, None] = {}
        self._book = BracketBook()
        #: Binary (prediction-market) instruments by id (:meth:`set_instruments`).
        self._binary: dict[str, InstrumentSpec] = {}
        if not config.native_brackets:
            self.capabilities = PaperVenue.capabilities - {CAP_BRACKET, CAP_BRACKET_TRAILING, CAP_BRACKET_TIME}

    def set_instruments(self, specs: tuple[InstrumentSpec, ...] | list[InstrumentSpec]) -> None:
        """The instruments' specs (``risk.instruments``): those with ``kind = "binary"`` trade as prediction-market
        contracts (prices within (0, 1), the venue's fee schedule, cancelled at resolution)."""
        self._binary = {spec.id: spec for spec in specs if spec.kind == "binary"}

    # --- VenueAdapter -------------------------------------------------------------------------

    async def submit(self, order: SubmitOrder, now_ns: int) -> list[OrderEvent]:
        coid = order.client_order_id
        if coid in self._seen:
            log.info("paper %s: duplicate client order id %s ignored", self.name, coid)
            return []
        self._remember(coid)
        self.state_revision += 1
        if CAP_BRACKET not in self.capabilities and _has_exits(order):  # execution emulates them
            order = msgspec.structs.replace(order, stop_loss_pct=None, take_profit_pct=None, trailing_stop_pct=None,
                                            time_stop_s=None)
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
        working = Working(
            order=order,
            venue_order_id=derive_id("vo", coid)[:16],
            cursor=order.ts_event - 1 if at_close else order.ts_event,
            accepted=not order.post_only,  # a post-only order is decided on its arrival bar
        )
        events: list[OrderEvent] = [self._accepted(working, order.ts_event, now_ns)] if working.accepted else []
        history = self._bars.get(order.instrument_id)
        book = self._books.get(order.instrument_id)
        if book is not None and history is None:
            events.extend(self._book_step(working, book, now_ns))
        elif history is not None:
            self._apply_latency(working, history)
            if history.dropped_until is not None and working.cursor < history.dropped_until:
                log.warning(
                    "paper %s: order %s at %d is older than the kept bar history; "
                    "it matches the oldest bars kept",
                    self.name,
                    coid,
                    order.ts_event,
                )
            events.extend(self._catch_up(working, history, now_ns))
        if not working.closed:
            self._open.setdefault(order.instrument_id, {})[coid] = working
        return events

    def _accepted(self, working: Working, ts_event: int, now_ns: int) -> OrderAccepted:
        order = working.order
        return OrderAccepted(id=derive_id("OrderAccepted", order.client_order_id, ""), ts_event=ts_event,
                             ts_init=now_ns, correlation_id=order.correlation_id, strategy_id=order.strategy_id,
                             instrument_id=order.instrument_id, client_order_id=order.client_order_id,
                             venue_order_id=working.venue_order_id)

    async def replace(self, command: ReplaceOrder, now_ns: int) -> list[OrderEvent]:
        """Amend a working order in place (see the module docstring, "Replace")."""
        new = command.new_client_order_id
        if new in self._seen:
            log.info("paper %s: duplicate replacement id %s ignored", self.name, new)
            return []
        self._remember(new)
        self.state_revision += 1
        working = self._find_open(command.client_order_id)
        problem = (f"order {command.client_order_id} is not working at venue {self.name}" if working is None
                   else amend_problem(working, command, working.order.instrument_id in self._binary))
        if working is None or problem:
            log.warning("paper %s: replacement %s of %s rejected: %s", self.name, new, command.client_order_id,
                        problem)
            return [replace_rejected(command, now_ns, problem)]
        old = working.order
        order = msgspec.structs.replace(
            old, client_order_id=new,
            quantity=old.quantity if command.quantity is None else command.quantity,
            limit_price=old.limit_price if command.limit_price is None else command.limit_price,
            trigger_price=old.trigger_price if command.trigger_price is None else command.trigger_price)
        working.order = order
        orders = self._open[order.instrument_id]
        del orders[old.client_order_id]
        orders[new] = working
        self._book.rename((order.strategy_id, order.instrument_id), old.client_order_id, new)
        return [OrderReplaced(
            id=derive_id("OrderReplaced", old.client_order_id, new), ts_event=command.ts_event, ts_init=now_ns,
            correlation_id=old.correlation_id, strategy_id=old.strategy_id, instrument_id=old.instrument_id,
            client_order_id=old.client_order_id, new_client_order_id=new, venue_order_id=working.venue_order_id,
            quantity=order.quantity, limit_price=order.limit_price, trigger_price=order.trigger_price,
            filled_qty=working.filled)]

    def resolve(self, resolved: MarketResolved, now_ns: int) -> list[OrderEvent]:
        """A prediction market resolved: every open order in its instruments (its payouts' and the binary specs
        with its ``market_id``) is cancelled (reason "market resolved"), their brackets and tracked positions
        end (the ledger settles the positions)."""
        instruments = {p.instrument_id for p in resolved.payouts} | {
            spec.id for spec in self._binary.values() if spec.market_id and spec.market_id == resolved.market_id}
        events: list[OrderEvent] = []
        for instrument in sorted(instruments):
            for working in sorted(self._open.get(instrument, {}).values(), key=Working.sort_key):
                self._close(working)
                events.append(self._ended(OrderCanceled, working, max(resolved.ts_event, working.order.ts_event),
                                          now_ns, MARKET_RESOLVED))
        if self._book.settle(instruments):
            self.state_revision += 1
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
            history = self._bars[bar.instrument_id] = History(self._history_limit, bar.interval)
            if self._latency_ns and history.close_time(bar.ts_event) is None:
                log.warning("paper %s: interval %r of %s is not understood; latency counts from the bar's open",
                            self.name, bar.interval, bar.instrument_id)
        elif bar.interval != history.interval:
            log.warning(
                "paper %s: %s bar of %s ignored: this venue matches %s bars",
                self.name,
                bar.interval,
                bar.instrument_id,
                history.interval,
            )
            return []
        if self._books.pop(bar.instrument_id, None) is not None:
            log.warning("paper %s: %s has bars now: its orders match bars from now on, not its book", self.name,
                        bar.instrument_id)
            self.state_revision += 1
        if not history.add(bar):
            log.info("paper %s: duplicate bar %s at %d ignored", self.name, bar.instrument_id, bar.ts_event)
            return []
        events: list[OrderEvent] = []
        orders = self._open.get(bar.instrument_id)
        if orders:
            for working in sorted(orders.values(), key=Working.sort_key):
                self._apply_latency(working, history)
                if bar.ts_event > working.cursor and not working.closed:
                    events.extend(self._match(working, bar, now_ns))
        if self._book.brackets:
            events.extend(self._fire_brackets(bar, now_ns))
        return events

    async def on_book(self, message: BookSnapshot | BookDelta, now_ns: int) -> list[OrderEvent]:
        """A book snapshot or delta of an instrument without bars: the working orders match the book after it."""
        return self._on_book_message(message, now_ns)

    async def on_quote(self, quote: Quote, now_ns: int) -> list[OrderEvent]:
        """A quote (a one-level book) of an instrument without bars nor a book with depth."""
        return self._on_book_message(quote, now_ns)

    async def on_trade(self, tick: TradeTick, now_ns: int) -> list[OrderEvent]:
        """A trade of a book instrument: resting limit orders at or through its price fill as makers."""
        book = self._books.get(tick.instrument_id)
        if book is None or tick.ts_event < book.ts or tick.instrument_id in self._bars:
            return []
        return self._book_update(book, now_ns, tick)

    def trades_on_book(self, instrument_id: str) -> bool:
        """Whether the instrument matches against books and quotes (it has had no bar)."""
        return instrument_id not in self._bars

    def _on_book_message(self, message: BookSnapshot | BookDelta | Quote, now_ns: int) -> list[OrderEvent]:
        iid = message.instrument_id
        if iid in self._bars:
            return []  # an instrument with bars keeps the bar rules
        book = self._books.get(iid)
        if book is None:
            book = self._books[iid] = LocalBook(iid)
        if not book.apply(message):
            return []
        return self._book_update(book, now_ns)

    def open_orders(self) -> list[str]:
        working = [w for orders in self._open.values() for w in orders.values()]
        return [w.order.client_order_id for w in sorted(working, key=Working.sort_key)]

    def export_state(self) -> bytes:
        """The working orders, the tracked positions and brackets, the newest ``export_ids`` remembered
        client order ids (and those of all open orders) and the last ``export_bars`` bars per
        instrument, as msgspec JSON."""
        working = sorted((w for orders in self._open.values() for w in orders.values()), key=Working.sort_key)
        newest = list(itertools.islice(reversed(self._seen), self._export_ids))[::-1]
        kept = set(newest)
        # open orders' ids are always remembered; older ones go first to keep the oldest-first order
        seen = [w.order.client_order_id for w in working if w.order.client_order_id not in kept] + newest
        histories = [h.export(self._export_bars) for _, h in sorted(self._bars.items()) if h.bars]
        positions, brackets = self._book.export()
        state = VenueState(
            version=STATE_VERSION,
            venue=self.name,
            orders=[w.to_state() for w in working],
            seen=seen,
            histories=histories,
            positions=positions,
            brackets=brackets,
            books=[b.export() for _, b in sorted(self._books.items())],
        )
        return msgspec.json.encode(state)

    def restore_state(self, data: bytes) -> None:
        """Replace this venue's orders, positions, brackets, remembered ids and bars by ``export_state`` output.

        Raises ``ValueError`` (``msgspec.DecodeError`` is one) for data it cannot load: not a paper
        venue state, another layout version, or another venue's state.
        """
        state = msgspec.json.decode(data, type=VenueState)
        if state.version != STATE_VERSION:
            raise ValueError(f"paper venue state version {state.version} is not {STATE_VERSION}")
        if state.venue != self.name:
            raise ValueError(f"paper venue state of {state.venue!r} cannot be loaded into {self.name!r}")
        bars: dict[str, History] = {}
        for h in state.histories:
            history = bars[h.instrument_id] = History(self._history_limit, h.interval)
            for raw in h.bars:
                history.add(msgspec.json.decode(raw, type=BarRow).bar(h.instrument_id, h.interval))
            if h.dropped_until is not None:
                history.dropped_until = max(h.dropped_until, history.dropped_until or h.dropped_until)
        open_orders: dict[str, dict[str, Working]] = {}
        for o in state.orders:
            coid = o.order.client_order_id
            open_orders.setdefault(o.order.instrument_id, {})[coid] = Working.from_state(
                o, derive_id("vo", coid)[:16]
            )
        self._bars = bars
        self._open = open_orders
        self._seen = dict.fromkeys(state.seen)
        for orders in open_orders.values():
            for coid in orders:
                self._seen.setdefault(coid, None)
        self._book = BracketBook()
        self._book.restore(state.positions, state.brackets)
        self._books = restore_books(state.books)
        self.state_revision += 1

    # --- queries ------------------------------------------------------------------------------

    def last_bar_ts(self, instrument_id: str) -> int | None:
        """Event time of the newest bar (for a book instrument: book or quote) seen for ``instrument_id``
        (None if none)."""
        history = self._bars.get(instrument_id)
        if history is None and instrument_id in self._books:
            return self._books[instrument_id].ts
        return history.times[-1] if history is not None and history.times else None

    def position(self, strategy_id: str, instrument_id: str) -> Decimal:
        """The net position this venue's fills made for a strategy (signed; brackets protect it)."""
        return self._book.position((strategy_id, instrument_id))

    # --- matching -----------------------------------------------------------------------------

    def _reject_reason(self, order: SubmitOrder) -> str:
        try:
            _, venue = split_instrument_id(order.instrument_id)
        except ValueError as exc:
            return str(exc)
        if venue != self.name.upper():
            return f"instrument {order.instrument_id} is not traded on venue {self.name}"
        if order.instrument_id in self._binary:
            return binary_price_problem(order.limit_price, order.trigger_price)
        return ""

    def _apply_latency(self, working: Working, history: History) -> None:
        """Move the cursor of an order with latency to just before its arrival (idempotent)."""
        if not self._latency_ns or working.exit:
            return
        t = working.order.ts_event
        end = history.close_time(t)
        if end is None:
            end = t
        working.cursor = max(working.cursor, end + self._latency_ns - 1)

    def _catch_up(self, working: Working, history: History, now_ns: int) -> list[OrderEvent]:
        """Match a newly submitted order (and the bracket exits it causes) against stored bars."""
        events: list[OrderEvent] = []
        key: Key = (working.order.strategy_id, working.order.instrument_id)
        spawned = [working]
        for bar in history.after(working.cursor):
            for w in spawned:
                if bar.ts_event > w.cursor and not w.closed:
                    events.extend(self._match(w, bar, now_ns))
            events.extend(self._fire_brackets(bar, now_ns, only=key, spawned=spawned))
            bracket = self._book.brackets.get(key)
            if all(w.closed for w in spawned) and (bracket is None or bracket.cursor >= history.times[-1]):
                break
        return events

    def _fire_brackets(
        self, bar: Bar, now_ns: int, only: Key | None = None, spawned: list[Working] | None = None
    ) -> list[OrderEvent]:
        """Check the brackets on ``bar`` (after its working orders) and fill the exits of those that fire."""
        events: list[OrderEvent] = []
        fired, moved = self._book.due(bar, only)
        if moved:  # a trailing stop's new peak must survive a restart
            self.state_revision += 1
        for bracket, kind, level in fired:
            self.state_revision += 1
            held = self._book.position((bracket.strategy_id, bracket.instrument_id))
            if held * bracket.direction <= 0:  # an armed bracket always has a position; never sell short
                continue
            order = bracket.exit_order(kind, bar, abs(held))
            coid = order.client_order_id
            self._remember(coid)
            working = Working(order=order, venue_order_id=derive_id("vo", coid)[:16], cursor=bar.ts_event - 1,
                              exit=True, exit_level=level)
            self._open.setdefault(order.instrument_id, {})[coid] = working
            if spawned is not None:
                spawned.append(working)
            events.extend(self._match(working, bar, now_ns))
        return events

    def _match(self, working: Working, bar: Bar, now_ns: int) -> list[OrderEvent]:
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
        if tif is TimeInForce.GTD and order.expire_time_ns is not None and bar.ts_event >= order.expire_time_ns:
            self._close(working)
            return [self._ended(OrderExpired, working, order.expire_time_ns, now_ns, "GTD order expired")]
        events: list[OrderEvent] = []
        if not working.accepted:  # a post-only order arriving: it must not take liquidity
            if post_only_crosses(order, bar):
                self._close(working)
                log.info("paper %s: post-only %s rejected: it would cross at %s", self.name, order.client_order_id,
                         bar.open)
                return [OrderRejected(
                    id=derive_id("OrderRejected", order.client_order_id, ""), ts_event=bar.ts_event,
                    ts_init=now_ns, correlation_id=order.correlation_id, strategy_id=order.strategy_id,
                    instrument_id=order.instrument_id, client_order_id=order.client_order_id,
                    reason=POST_ONLY_CROSSES)]
            working.accepted = True
            events.append(self._accepted(working, bar.ts_event, now_ns))
        # IOC/FOK orders are decided on their first eligible bar, stops on their trigger bar
        decisive = first
        trigger_bar = False
        if working.is_stop:
            if not working.triggered:
                assert order.trigger_price is not None  # SubmitOrder guarantees it for stop orders
                if not triggered(order.side, order.trigger_price, bar):
                    return events
                working.triggered = trigger_bar = True
                self.state_revision += 1
            decisive = trigger_bar

        if order.post_only:
            resting = resting_quote(order, bar)
            quote = None if resting is None else (resting[0], resting[1], False)
        else:
            quote = fill_quote(order, bar, trigger_bar=trigger_bar, exit=working.exit, exit_level=working.exit_level)
        qty = ZERO
        if quote is not None:
            qty = working.leaves
            cap = self._costs.cap(bar)
            if cap is not None:
                qty = min(qty, cap)
            if working.exit:
                closable = self._book.closable(order)
                if closable <= 0:
                    self._close(working)
                    return [*events, self._ended(OrderCanceled, working, bar.ts_event, now_ns,
                                                 "exit: position closed")]
                qty = min(qty, closable)
            if tif is TimeInForce.FOK and qty < working.leaves:
                qty = ZERO
        if quote is not None and qty > 0:
            base, liquidity, slip = quote
            price = self._costs.slipped(base, order.side, qty, bar) if slip else base
            spec = self._binary.get(order.instrument_id)
            if spec is not None:  # a prediction-market contract: the venue's fee schedule, prices within (0, 1)
                price = binary_fill_price(price, spec)
                fee = binary_fee(self.name, price, qty, liquidity)
            else:
                fee = self._costs.fee(qty, price, liquidity, first_fill=working.filled == 0)
            working.filled += qty
            working.value = CONTEXT.add(working.value, CONTEXT.multiply(qty, price))
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
                    fee=fee,
                    fee_currency=self.config.fee_currency,
                    liquidity=liquidity,
                    partial=leaves > 0,
                    leaves_qty=leaves,
                )
            )
            self._book.on_fill(working, qty, bar.ts_event)
            if leaves <= 0:
                self._close(working)
                return events
        if decisive and tif in (TimeInForce.IOC, TimeInForce.FOK):
            self._close(working)
            reason = f"{tif.value}: rest canceled"
            events.append(self._ended(OrderCanceled, working, bar.ts_event, now_ns, reason))
        return events

    def _ended(
        self,
        kind: type[OrderCanceled] | type[OrderExpired],
        working: Working,
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

    def _close(self, working: Working) -> None:
        working.closed = True
        self.state_revision += 1
        self._book.on_close(working)
        orders = self._open.get(working.order.instrument_id)
        if orders is not None:
            orders.pop(working.order.client_order_id, None)
            if not orders:
                del self._open[working.order.instrument_id]

    def _find_open(self, coid: str) -> Working | None:
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


def _has_exits(order: SubmitOrder) -> bool:
    return (order.stop_loss_pct is not None or order.take_profit_pct is not None
            or order.trailing_stop_pct is not None or order.time_stop_s is not None)
