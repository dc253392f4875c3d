"""Per-strategy book built from fills: positions, round trips and the live trading record.

Pure ``Decimal`` bookkeeping, no I/O. The account's position comes from the ledger's snapshot; this
book splits it by strategy (each fill carries its strategy id), for the capital allocation check, the
ramp-up schedule (first fill, number of filled orders) and Kelly from the live record (closed round
trips: win rate and average win / average loss).

A round trip runs from flat back to flat (or through zero, in a flip) in one (strategy, instrument);
its result is the realised price difference minus every fee paid on its fills (a flip's whole fee
counts for the round trip it closes). A round trip with a result of exactly 0 is neither a win nor a loss.

Prediction markets: a settlement (:meth:`StrategyBook.settle`) closes every strategy's leg in a resolved
instrument at the payout, like a fee-free fill at that price (it ends the round trip); a reversed fill
(:meth:`StrategyBook.reverse`) is taken out and the book is rebuilt from the fills and settlements that
remain, in their order, so it is exactly what it would be had the fill never happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from tradewire_common.schemas.base import Side

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Fill:
    """The parts of an ``OrderFilled`` (or a ledger fill row) the book needs."""

    client_order_id: str
    trade_id: str
    strategy_id: str
    instrument_id: str
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal
    ts_event: int


@dataclass(slots=True)
class Leg:
    """A strategy's position in one instrument and the round trip it is in."""

    #: Signed: positive long, negative short.
    quantity: Decimal = _ZERO
    avg_price: Decimal = _ZERO
    #: Realised result of the current round trip so far, fees subtracted.
    result: Decimal = _ZERO


@dataclass(slots=True)
class TradeRecord:
    """A strategy's live record."""

    #: Event time of its first fill (None: it never traded).
    first_fill_ts: int | None = None
    #: Orders with at least one fill (its "trades" for the ramp-up).
    filled_orders: int = 0
    wins: int = 0
    losses: int = 0
    #: Sum of the winning round trips' results and of the losing ones' absolute results.
    win_sum: Decimal = _ZERO
    loss_sum: Decimal = _ZERO
    _orders: set[str] = field(default_factory=set)

    @property
    def round_trips(self) -> int:
        return self.wins + self.losses

    def edge(self) -> tuple[Decimal, Decimal] | None:
        """``(win rate, average win / average loss)``; None without at least one win and one loss."""
        if self.wins == 0 or self.losses == 0 or self.loss_sum == 0:
            return None
        p = Decimal(self.wins) / Decimal(self.round_trips)
        b = (self.win_sum / self.wins) / (self.loss_sum / self.losses)
        return p, b

    def full_kelly(self) -> Decimal | None:
        """The mission's ``(b*p - q)/b`` for this record in one division (no rounding of p and b on the way):
        with p = W/N and b = (S_w/W) / (S_l/L) it is ``W * (S_w - S_l) / (N * S_w)``, never negative."""
        if self.edge() is None:
            return None
        full = Decimal(self.wins) * (self.win_sum - self.loss_sum) / (Decimal(self.round_trips) * self.win_sum)
        return max(full, _ZERO)


@dataclass(frozen=True, slots=True)
class Settlement:
    instrument_id: str
    payout: Decimal


class StrategyBook:
    """Fills by strategy: positions, round trips, records. Each fill is applied once."""

    def __init__(self) -> None:
        self._legs: dict[tuple[str, str], Leg] = {}
        self._records: dict[str, TradeRecord] = {}
        self._applied: set[tuple[str, str]] = set()
        #: Fills and settlements applied, in order (to rebuild the book without a reversed fill).
        self._history: list[Fill | Settlement] = []

    def apply(self, fill: Fill) -> bool:
        """Apply a fill; False when this ``(client_order_id, trade_id)`` was applied before."""
        key = (fill.client_order_id, fill.trade_id)
        if key in self._applied:
            return False
        self._applied.add(key)
        self._history.append(fill)
        self._apply(fill)
        return True

    def settle(self, instrument_id: str, payout: Decimal) -> None:
        """Close every strategy's leg in ``instrument_id`` at ``payout`` (a resolved market)."""
        self._history.append(Settlement(instrument_id, payout))
        self._settle(instrument_id, payout)

    def reverse(self, client_order_id: str, trade_id: str) -> bool:
        """Take a fill out as if it never happened; False when it is not in the book (a repeat, or
        unknown: it is then remembered, so a late delivery of it is not applied)."""
        key = (client_order_id, trade_id)
        kept = [e for e in self._history
                if isinstance(e, Settlement) or (e.client_order_id, e.trade_id) != key]
        self._applied.add(key)
        if len(kept) == len(self._history):
            return False
        self._legs, self._records, self._history = {}, {}, kept
        for entry in kept:
            if isinstance(entry, Settlement):
                self._settle(entry.instrument_id, entry.payout)
            else:
                self._apply(entry)
        return True

    def _settle(self, instrument_id: str, payout: Decimal) -> None:
        for (strategy, instrument), leg in self._legs.items():
            if instrument != instrument_id or leg.quantity == 0:
                continue
            side = Side.SELL if leg.quantity > 0 else Side.BUY
            close = Fill("", "", strategy, instrument, side, abs(leg.quantity), payout, _ZERO, 0)
            _apply_to_leg(leg, self._records.setdefault(strategy, TradeRecord()), close)

    def _apply(self, fill: Fill) -> None:
        record = self._records.setdefault(fill.strategy_id, TradeRecord())
        if record.first_fill_ts is None or fill.ts_event < record.first_fill_ts:
            record.first_fill_ts = fill.ts_event
        if fill.client_order_id not in record._orders:
            record._orders.add(fill.client_order_id)
            record.filled_orders += 1
        leg = self._legs.setdefault((fill.strategy_id, fill.instrument_id), Leg())
        _apply_to_leg(leg, record, fill)

    def position(self, strategy_id: str, instrument_id: str) -> Decimal:
        leg = self._legs.get((strategy_id, instrument_id))
        return leg.quantity if leg is not None else _ZERO

    def positions(self, strategy_id: str) -> dict[str, Leg]:
        """The strategy's open legs by instrument."""
        return {iid: leg for (sid, iid), leg in self._legs.items() if sid == strategy_id and leg.quantity != 0}

    def record(self, strategy_id: str) -> TradeRecord:
        return self._records.get(strategy_id) or TradeRecord()


def _apply_to_leg(leg: Leg, record: TradeRecord, fill: Fill) -> None:
    sign = 1 if fill.side is Side.BUY else -1
    leg.result -= fill.fee
    if leg.quantity == 0 or (leg.quantity > 0) == (sign > 0):
        held = abs(leg.quantity)
        leg.avg_price = (held * leg.avg_price + fill.quantity * fill.price) / (held + fill.quantity)
        leg.quantity += sign * fill.quantity
        return
    closing = min(fill.quantity, abs(leg.quantity))
    direction = 1 if leg.quantity > 0 else -1
    leg.result += (fill.price - leg.avg_price) * closing * direction
    leg.quantity += sign * closing
    if leg.quantity != 0:
        return
    if leg.result > 0:
        record.wins += 1
        record.win_sum += leg.result
    elif leg.result < 0:
        record.losses += 1
        record.loss_sum += -leg.result
    leg.result = _ZERO
    rest = fill.quantity - closing
    if rest > 0:  # a flip: the rest opens the other way
        leg.quantity = sign * rest
        leg.avg_price = fill.price
    else:
        leg.avg_price = _ZERO
