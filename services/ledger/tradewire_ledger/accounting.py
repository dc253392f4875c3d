"""Pure portfolio accounting: cash, signed positions, average entry price, realised/unrealised PnL.

Conventions
-----------
* Quantities are signed: positive long, negative short.  A BUY fill adds ``last_qty``, a SELL
  subtracts it; a BUY spends ``last_qty * last_px`` of cash, a SELL receives it.
* The fee is always subtracted from cash and is charged to the realised PnL of the position it
  was paid on, so ``equity == starting_cash + realized_pnl + unrealized_pnl`` holds (up to the
  34-digit rounding of average prices).  ``fees_paid`` keeps the running total.
  ``fee_currency`` is not converted: fees are assumed to be in the account currency.
* Increasing a position (or opening one) moves the average entry price to the quantity-weighted
  mean; reducing realises ``(price - avg) * closed_qty`` (sign-adjusted for shorts) and keeps
  the average; going through zero closes the old side completely and opens the rest at the fill
  price.  A flat position keeps its realised PnL and stays in the snapshot with ``avg_price`` 0.
* The last price of an instrument is the latest price observation by event time: a mark, or a
  fill price (so a position with a fill but no mark yet is valued at its fill price).
* ``as_of`` is a watermark moved only by :meth:`Portfolio.advance` (monotonic): the caller
  advances it once it knows every fill and mark up to that event time has been applied.
* The portfolio does not de-duplicate fills; apply a fill only when the store accepted it
  (``LedgerStore.record_fill`` returned True).
* **Settlement** (prediction markets, :class:`Settle`): a resolved instrument's position closes at the
  payout (0..1 per contract, no fee): a position of signed quantity ``Q`` with average cost ``A``
  realises ``Q * (payout - A)`` and cash moves by ``Q * payout``; the position leaves the snapshot
  (a flat one too). A payout of 0 is not a fill (fills have positive prices) and is not a mark.
* **Reversal** (a provisional fill undone): the caller rebuilds the portfolio from the fills that
  still count and the settlements, in their original order (:meth:`Portfolio.rebuild`), and keeps
  the marks (:meth:`Portfolio.keep_marks`): the result equals a portfolio that never saw the fill,
  last prices included (a last price is the newer of the latest mark and the latest fill price; on
  equal event times the mark).

All arithmetic runs in a local decimal context with 34 significant digits (IEEE decimal128),
independent of the calling thread's context.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, localcontext

from tradewire_common.schemas import OrderFilled, PortfolioSnapshot, PositionSnapshot, Side

PRECISION = 34
_ZERO = Decimal(0)


def _nz(value: Decimal) -> Decimal:
    """``value`` without a negative zero (``-0`` would show up in JSON as ``"-0"``)."""
    return _ZERO if value.is_zero() and value.is_signed() else value


@dataclass
class Position:
    """Mutable state of one instrument's position."""

    instrument_id: str
    quantity: Decimal = _ZERO
    avg_price: Decimal = _ZERO
    realized_pnl: Decimal = _ZERO
    fills: int = 0


def apply_to_position(pos: Position, fill: OrderFilled) -> Decimal:
    """Apply one execution to ``pos`` (quantity, average entry, realised PnL net of the fee, fill
    count); returns the PnL it realised. Call inside ``localcontext(prec=PRECISION)``."""
    qty = fill.last_qty if fill.side is Side.BUY else -fill.last_qty
    px = fill.last_px
    realized = _ZERO
    old = pos.quantity
    new = old + qty
    if old == 0 or (old > 0) == (qty > 0):
        # Opening or increasing: weighted average of the entry prices.
        pos.avg_price = (abs(old) * pos.avg_price + abs(qty) * px) / abs(new)
    else:
        # Reducing, closing or flipping.
        closed = min(abs(qty), abs(old))
        direction = 1 if old > 0 else -1
        realized = (px - pos.avg_price) * closed * direction
        if new == 0:
            pos.avg_price = _ZERO
        elif (new > 0) != (old > 0):
            pos.avg_price = px  # flipped: the remainder opened at this fill's price
    pos.quantity = new
    realized -= fill.fee
    pos.realized_pnl += realized
    pos.fills += 1
    return realized


@dataclass(frozen=True, slots=True)
class Settle:
    """A resolved instrument's position closes at ``payout`` per contract (see the module docstring)."""

    instrument_id: str
    payout: Decimal
    ts_event: int


@dataclass(frozen=True, slots=True)
class Settled:
    """What one settlement did: the position it closed and the PnL and cash it moved."""

    instrument_id: str
    quantity: Decimal
    avg_price: Decimal
    payout: Decimal
    realized_pnl: Decimal
    cash: Decimal


#: What the portfolio applies, in order: fills and settlements.
Entry = OrderFilled | Settle


def settle_position(pos: Position, payout: Decimal) -> Decimal:
    """Close ``pos`` at ``payout``; returns the PnL it realised. Call inside ``localcontext(prec=PRECISION)``."""
    realized = pos.quantity * (payout - pos.avg_price) if pos.quantity else _ZERO
    pos.realized_pnl += realized
    pos.quantity = _ZERO
    pos.avg_price = _ZERO
    return realized


def unrealized_pnl(pos: Position, last: Decimal) -> Decimal:
    """``pos``'s unrealised PnL at the price ``last`` (0 when flat)."""
    return (last - pos.avg_price) * pos.quantity if pos.quantity else _ZERO


class Portfolio:
    """The ledger's live account: apply fills and marks, then take snapshots."""

    def __init__(self, account: str, starting_cash: Decimal, currency: str = "USD") -> None:
        if not starting_cash.is_finite():
            raise ValueError(f"starting_cash must be finite, got {starting_cash}")
        self.account = account
        self.currency = currency
        self.starting_cash = starting_cash
        self._cash = starting_cash
        self._realized = _ZERO
        self._fees = _ZERO
        self._fills = 0
        self._as_of = 0
        self._positions: dict[str, Position] = {}
        #: instrument -> (price, event time) of the latest mark, and of the latest fill
        self._marks: dict[str, tuple[Decimal, int]] = {}
        self._fill_px: dict[str, tuple[Decimal, int]] = {}

    # --- read-only views --------------------------------------------------------------------

    @property
    def cash(self) -> Decimal:
        return self._cash

    @property
    def realized_pnl(self) -> Decimal:
        return self._realized

    @property
    def fees_paid(self) -> Decimal:
        return self._fees

    @property
    def fills(self) -> int:
        return self._fills

    @property
    def as_of(self) -> int:
        return self._as_of

    def position(self, instrument_id: str) -> Position | None:
        """A copy of the position in ``instrument_id`` (None if it never traded)."""
        pos = self._positions.get(instrument_id)
        if pos is None:
            return None
        return Position(pos.instrument_id, pos.quantity, pos.avg_price, pos.realized_pnl, pos.fills)

    def last_price(self, instrument_id: str) -> Decimal | None:
        last = self._last(instrument_id)
        return None if last is None else last[0]

    def _last(self, instrument_id: str) -> tuple[Decimal, int] | None:
        mark, fill = self._marks.get(instrument_id), self._fill_px.get(instrument_id)
        if mark is None or (fill is not None and fill[1] > mark[1]):
            return fill
        return mark

    # --- updates ----------------------------------------------------------------------------

    def apply_fill(self, fill: OrderFilled) -> None:
        """Apply one execution to cash, the position and realised PnL."""
        with localcontext(prec=PRECISION):
            px = fill.last_px
            pos = self._positions.get(fill.instrument_id)
            if pos is None:
                pos = self._positions[fill.instrument_id] = Position(fill.instrument_id)
            realized = apply_to_position(pos, fill)

            notional = fill.last_qty * px
            self._cash += -notional if fill.side is Side.BUY else notional
            self._cash -= fill.fee
            self._realized += realized
            self._fees += fill.fee
            self._fills += 1
        _observe(self._fill_px, fill.instrument_id, px, fill.ts_event)

    def apply(self, entry: Entry) -> Settled | None:
        """Apply a fill or a settlement (what a settlement did, else None)."""
        if isinstance(entry, Settle):
            return self.settle(entry.instrument_id, entry.payout)
        self.apply_fill(entry)
        return None

    def settle(self, instrument_id: str, payout: Decimal) -> Settled | None:
        """Close the position in ``instrument_id`` at ``payout`` and drop it from the snapshot; None
        when there is no open position (a flat one is dropped all the same)."""
        if not (payout.is_finite() and 0 <= payout <= 1):
            raise ValueError(f"payout must be within 0..1, got {payout}")
        pos = self._positions.pop(instrument_id, None)
        if pos is None or pos.quantity == 0:
            return None
        with localcontext(prec=PRECISION):
            quantity, avg = pos.quantity, pos.avg_price
            realized = settle_position(pos, payout)
            cash = quantity * payout
            self._cash += cash
            self._realized += realized
        return Settled(instrument_id, quantity, avg, payout, realized, cash)

    def preview_settle(self, instrument_id: str, payout: Decimal) -> Settled | None:
        """What :meth:`settle` would do, without doing it."""
        pos = self._positions.get(instrument_id)
        if pos is None or pos.quantity == 0:
            return None
        with localcontext(prec=PRECISION):
            copy = Position(instrument_id, pos.quantity, pos.avg_price)
            realized = settle_position(copy, payout)
            return Settled(instrument_id, pos.quantity, pos.avg_price, payout, realized, pos.quantity * payout)

    def keep_marks(self, other: Portfolio) -> None:
        """Take ``other``'s marks and watermark (after a rebuild that replaces ``other``)."""
        self._marks = dict(other._marks)
        self.advance(other.as_of)

    def mark(self, instrument_id: str, price: Decimal, ts: int) -> None:
        """Record a market price for unrealised PnL (ignored if older than the last price seen)."""
        if not price.is_finite() or price <= 0:
            raise ValueError(f"mark price must be positive and finite, got {price}")
        _observe(self._marks, instrument_id, price, ts)

    def advance(self, ts: int) -> None:
        """Move the ``as_of`` watermark forward (never backwards)."""
        if ts > self._as_of:
            self._as_of = ts

    # --- snapshot ---------------------------------------------------------------------------

    def snapshot(self, *, message_id: str, ts_init: int, correlation_id: str = "") -> PortfolioSnapshot:
        """The account as of the watermark; ``ts_event`` is the watermark too."""
        with localcontext(prec=PRECISION):
            positions: list[PositionSnapshot] = []
            market_value = _ZERO
            unrealized = _ZERO
            exposure = _ZERO
            for instrument_id in sorted(self._positions):
                pos = self._positions[instrument_id]
                last_seen = self._last(instrument_id)
                assert last_seen is not None  # every position has had at least a fill price
                last = last_seen[0]
                upnl = unrealized_pnl(pos, last)
                value = pos.quantity * last
                market_value += value
                unrealized += upnl
                exposure += abs(value)
                positions.append(
                    PositionSnapshot(
                        instrument_id=instrument_id,
                        quantity=_nz(pos.quantity),
                        avg_price=pos.avg_price,
                        last_price=last,
                        realized_pnl=_nz(pos.realized_pnl),
                        unrealized_pnl=_nz(upnl),
                    )
                )
            equity = self._cash + market_value
        return PortfolioSnapshot(
            id=message_id,
            ts_event=self._as_of,
            ts_init=ts_init,
            correlation_id=correlation_id,
            account=self.account,
            cash=_nz(self._cash),
            equity=_nz(equity),
            realized_pnl=_nz(self._realized),
            unrealized_pnl=_nz(unrealized),
            gross_exposure=exposure,
            positions=tuple(positions),
            as_of=self._as_of,
            fills=self._fills,
        )

    @classmethod
    def rebuild(cls, account: str, starting_cash: Decimal, currency: str, entries: Iterable[Entry]) -> Portfolio:
        """A portfolio with ``entries`` (fills and settlements) applied in order (after a restart, from the
        store's ``load_journal``; or after a reversal)."""
        portfolio = cls(account, starting_cash, currency)
        for entry in entries:
            portfolio.apply(entry)
        return portfolio


def _observe(table: dict[str, tuple[Decimal, int]], instrument_id: str, price: Decimal, ts: int) -> None:
    last = table.get(instrument_id)
    if last is None or ts >= last[1]:
        table[instrument_id] = (price, ts)
