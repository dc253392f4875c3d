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

All arithmetic runs in a local decimal context with 34 significant digits (IEEE decimal128),
independent of the calling thread's context.
"""

from __future__ import annotations

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
        #: instrument -> (last price, event time of that price)
        self._last: dict[str, tuple[Decimal, int]] = {}

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
        last = self._last.get(instrument_id)
        return None if last is None else last[0]

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
        self._observe(fill.instrument_id, px, fill.ts_event)

    def mark(self, instrument_id: str, price: Decimal, ts: int) -> None:
        """Record a market price for unrealised PnL (ignored if older than the last price seen)."""
        if not price.is_finite() or price <= 0:
            raise ValueError(f"mark price must be positive and finite, got {price}")
        self._observe(instrument_id, price, ts)

    def advance(self, ts: int) -> None:
        """Move the ``as_of`` watermark forward (never backwards)."""
        if ts > self._as_of:
            self._as_of = ts

    def _observe(self, instrument_id: str, price: Decimal, ts: int) -> None:
        last = self._last.get(instrument_id)
        if last is None or ts >= last[1]:
            self._last[instrument_id] = (price, ts)

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
                last = self._last[instrument_id][0]  # every position has had at least a fill price
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
    def rebuild(
        cls, account: str, starting_cash: Decimal, currency: str, fills: list[OrderFilled]
    ) -> Portfolio:
        """A portfolio with ``fills`` applied in order (after a restart, from ``load_fills``)."""
        portfolio = cls(account, starting_cash, currency)
        for fill in fills:
            portfolio.apply_fill(fill)
        return portfolio
