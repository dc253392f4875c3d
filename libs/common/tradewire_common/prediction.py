"""Prediction-market arithmetic shared by signals (the edge rule, arbitrage), risk, the paper venue and the
backtester: venue fee schedules, the price actually payable at a book's depth, and the edge after both.

Prices are probabilities in (0, 1) per contract that pays 1 at a YES resolution (Kalshi: dollars; Polymarket:
USDC; Manifold: mana). All arithmetic is ``Decimal``.

Fee schedules (taker unless said; published by the venues, configurable where they vary by market):

* **Kalshi**: ``ceil_to_cent(rate * C * P * (1 - P))`` per order, ``rate`` 0.07 for takers and 0.0175 for
  makers on markets with maker fees (else 0);
* **Polymarket**: ``fee_rate_bps / 10_000 * min(P, 1 - P) * C`` (most markets have ``fee_rate_bps`` 0; the
  CLOB's ``/fee-rate`` says);
* **Manifold**: no trading fee (play money).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Literal

ONE = Decimal(1)
ZERO = Decimal(0)
CENT = Decimal("0.01")

FeeVenue = Literal["kalshi", "polymarket", "manifold", "none"]


def check_probability_price(price: Decimal, what: str = "price") -> None:
    """A contract price must be a finite probability strictly within (0, 1)."""
    if not (price.is_finite() and ZERO < price < ONE):
        raise ValueError(f"{what} must be a probability within (0, 1), got {price}")


@dataclass(frozen=True)
class FeeSchedule:
    """One venue's trading fee for binary contracts (see the module docstring)."""

    venue: FeeVenue
    taker_rate: Decimal = ZERO
    maker_rate: Decimal = ZERO

    @classmethod
    def for_venue(cls, venue: str, *, fee_rate_bps: Decimal | None = None, maker_fees: bool = False) -> FeeSchedule:
        """The published schedule of ``venue`` (case-insensitive; unknown venues are fee-free)."""
        name = venue.lower()
        if name.startswith("kalshi"):
            return cls("kalshi", Decimal("0.07"), Decimal("0.0175") if maker_fees else ZERO)
        if name.startswith("polymarket"):
            rate = (fee_rate_bps or ZERO) / Decimal(10_000)
            return cls("polymarket", rate, ZERO)
        if name.startswith("manifold"):
            return cls("manifold")
        return cls("none")

    def fee(self, price: Decimal, contracts: Decimal, *, maker: bool = False) -> Decimal:
        """The fee of one order (or fill) of ``contracts`` at ``price``."""
        check_probability_price(price)
        rate = self.maker_rate if maker else self.taker_rate
        if rate == 0 or contracts <= 0:
            return ZERO
        if self.venue == "kalshi":
            return (rate * contracts * price * (ONE - price)).quantize(CENT, rounding=ROUND_CEILING)
        return rate * min(price, ONE - price) * contracts

    def fee_per_contract(self, price: Decimal, contracts: Decimal, *, maker: bool = False) -> Decimal:
        return self.fee(price, contracts, maker=maker) / contracts if contracts > 0 else ZERO


def payable_price(asks: Iterable[tuple[Decimal, Decimal]], contracts: Decimal) -> Decimal | None:
    """Average price of buying ``contracts`` against ``asks`` (best first, ``(price, size)``): what a
    taker actually pays at the book's depth. None when the book cannot fill them all."""
    if contracts <= 0:
        raise ValueError(f"contracts must be positive, got {contracts}")
    left, cost = contracts, ZERO
    for price, size in asks:
        take = min(left, size)
        cost += take * price
        left -= take
        if left == 0:
            return cost / contracts
    return None


def no_asks_from_yes_bids(yes_bids: Iterable[tuple[Decimal, Decimal]]) -> list[tuple[Decimal, Decimal]]:
    """In a single-book market (Kalshi), buying NO at ``1 - p`` is selling YES to a YES bid at ``p``."""
    return [(ONE - price, size) for price, size in yes_bids]


def edge_after_costs(model_p: Decimal, avg_price: Decimal, fee_per_contract: Decimal) -> Decimal:
    """Expected profit per contract of buying at ``avg_price`` when the outcome has probability ``model_p``."""
    return model_p - avg_price - fee_per_contract


def pair_cost(yes_price: Decimal, no_price: Decimal, yes_fee: Decimal, no_fee: Decimal) -> Decimal:
    """Cost per contract pair of buying YES on one venue and NO on another: an arbitrage when below 1 (each
    pair pays exactly 1 whichever way the event resolves, if the two markets are truly the same event)."""
    return yes_price + no_price + yes_fee + no_fee
