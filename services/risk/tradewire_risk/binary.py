"""Binary (prediction-market) instruments in risk: ``InstrumentSpec.kind == "binary"``.

An outcome contract costs its price, a probability, and pays 0..1 at resolution. Rules (checked with the
prices, rule 2 of :mod:`tradewire_risk.engine`, so closes are held to them too):

* **Prices.** The signal's price and the limit and trigger prices must be probabilities strictly within
  (0, 1) and on the instrument's ``price_tick`` grid, else ``INVALID_ORDER`` (never rounded). The notional
  of ``q`` contracts is ``q * price``: what they cost (the existing limits and the cash check use it).
* **Resolved markets.** An instrument named in a ``MarketResolved`` risk has seen (``pm.resolved.*``, or the
  ledger's ``/v1/resolutions`` at a rebuild), or whose ``market_id`` resolved, is no longer tradable:
  ``INSTRUMENT_NOT_TRADABLE`` for every order, closes included (the ledger settles the position).
* **Complements.** A YES and a NO of the same market (``complement``) held long together are ``min(yes,
  no)`` pairs, each paying exactly 1 whatever the outcome: riskless. Only the unpaired part counts toward
  the position and the gross exposure limits (:func:`gross`, :func:`pairing`), so a BUY of the complement
  of a held outcome first *reduces* exposure, and is not denied by those limits for the paired part.
  Shorts are never paired. The allocation, per-order and cash limits count the whole order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from tradewire_common.config import InstrumentSpec
from tradewire_common.schemas.base import DenyReason, Side
from tradewire_common.schemas.portfolio import PortfolioSnapshot
from tradewire_common.schemas.signals import Signal
from tradewire_risk.context import RiskContext
from tradewire_risk.params import Denial

_ZERO = Decimal(0)
_ONE = Decimal(1)


def tradable(signal: Signal, spec: InstrumentSpec, ctx: RiskContext) -> Denial | None:
    """``INSTRUMENT_NOT_TRADABLE`` once the instrument's market has resolved."""
    payout = ctx.resolved.get(signal.instrument_id)
    if payout is not None:
        return Denial(DenyReason.INSTRUMENT_NOT_TRADABLE,
                      f"{signal.instrument_id} has resolved (payout {payout}): it no longer trades")
    if spec.market_id and (label := ctx.resolved_markets.get(spec.market_id)) is not None:
        return Denial(DenyReason.INSTRUMENT_NOT_TRADABLE,
                      f"{signal.instrument_id}: its market {spec.market_id} has resolved ({label}): "
                      "it no longer trades")
    return None


def prices(signal: Signal, spec: InstrumentSpec) -> Denial | None:
    """A binary contract's prices: probabilities strictly within (0, 1), on the tick grid."""
    if spec.kind != "binary":
        return None
    for name, value in (("signal", signal.price), ("limit", signal.limit_price), ("trigger", signal.trigger_price)):
        if value is None:
            continue
        if not _ZERO < value < _ONE:
            return Denial(DenyReason.INVALID_ORDER,
                          f"{name} price {value} of the binary contract {signal.instrument_id} is not a probability "
                          "strictly within (0, 1)")
        if value % spec.price_tick != 0:
            return Denial(DenyReason.INVALID_ORDER,
                          f"{name} price {value} is not a multiple of the price tick {spec.price_tick} of "
                          f"{signal.instrument_id} (risk does not round prices)")
    return None


def complements(instruments: Iterable[InstrumentSpec]) -> dict[str, str]:
    """Instrument -> its complement, both ways (one side's ``complement`` is enough)."""
    out: dict[str, str] = {}
    for spec in instruments:
        if spec.kind == "binary" and spec.complement:
            out[spec.id] = spec.complement
            out.setdefault(spec.complement, spec.id)
    return out


def gross(portfolio: PortfolioSnapshot, pairs: Mapping[str, str], instrument_id: str, price: Decimal) -> Decimal:
    """Gross exposure ``sum |qty * price|``, ``instrument_id`` marked at ``price``, where a long held with a
    long of its complement counts only for its unpaired quantity."""
    held = {p.instrument_id: p.quantity for p in portfolio.positions}
    total = _ZERO
    for p in portfolio.positions:
        mark = price if p.instrument_id == instrument_id else p.last_price
        quantity = abs(p.quantity)
        other = pairs.get(p.instrument_id)
        if other is not None and p.quantity > 0 and held.get(other, _ZERO) > 0:
            quantity -= min(p.quantity, held[other])
        total += quantity * mark
    return total


def pairing(spec: InstrumentSpec, portfolio: PortfolioSnapshot, pairs: Mapping[str, str], side: Side,
            position: Decimal) -> tuple[Decimal, Decimal, Decimal] | None:
    """For a BUY of a binary outcome (not short) while its complement is held long: ``(held, complement
    held, complement's last price)``; None when no pairing applies."""
    other = pairs.get(spec.id)
    if other is None or side is not Side.BUY or position < 0:
        return None
    for p in portfolio.positions:
        if p.instrument_id == other and p.quantity > 0:
            return position, p.quantity, p.last_price
    return None
