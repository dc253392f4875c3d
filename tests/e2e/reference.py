"""An independent model of the demo pipeline, in exact rational arithmetic.

It shares no code with Tradewire: it reads the CSV itself and re-implements, from the written
rules, SMA crossover signals, long-only fixed-fraction sizing with the position/exposure limits,
and the paper fill model (next bar's open, slippage, fees, a per-bar volume cap with partial fills).
The end-to-end test compares Tradewire's ledger with it.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path


@dataclass(frozen=True)
class RefBar:
    open: Fraction
    high: Fraction
    low: Fraction
    close: Fraction
    volume: Fraction


@dataclass(frozen=True)
class RefParams:
    fast: int = 10
    slow: int = 30
    fraction: Fraction = Fraction(1, 10)
    max_position: Fraction = Fraction(1, 10)
    max_exposure: Fraction = Fraction(1, 4)
    step: Fraction = Fraction(1, 100_000)
    min_qty: Fraction = Fraction(1, 100_000)
    slippage_bps: Fraction = Fraction(1)
    fee_bps: Fraction = Fraction(10)
    #: share of bar volume per order per bar; None disables the cap
    volume_share: Fraction | None = None
    cash: Fraction = Fraction(10_000)


@dataclass
class RefResult:
    fills: list[tuple[str, Fraction, Fraction, Fraction]] = field(default_factory=list)  # side, qty, px, fee
    orders: int = 0
    denials: int = 0
    signals: int = 0
    cash: Fraction = Fraction(0)
    position: Fraction = Fraction(0)
    equity: Fraction = Fraction(0)


def read_bars(path: Path, limit: int) -> list[RefBar]:
    bars = []
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            bars.append(RefBar(*(Fraction(row[k]) for k in ("open", "high", "low", "close", "volume"))))
            if len(bars) == limit:
                break
    return bars


def _floor_step(value: Fraction, step: Fraction) -> Fraction:
    return math.floor(value / step) * step if value > 0 else Fraction(0)


def simulate(bars: list[RefBar], p: RefParams) -> RefResult:
    r = RefResult(cash=p.cash)
    working: list[list[object]] = []  # [side, remaining]
    closes: list[Fraction] = []
    prev_sign: int | None = None
    slip = p.slippage_bps / 10_000
    fee_rate = p.fee_bps / 10_000
    for bar in bars:
        # 1. the venue fills working orders at this bar's open (each order capped separately)
        for order in list(working):
            side, remaining = order[0], order[1]
            assert isinstance(side, str) and isinstance(remaining, Fraction)
            qty = remaining
            if p.volume_share is not None:
                qty = min(qty, _floor_step(p.volume_share * bar.volume, p.step))
            if qty > 0:
                px = bar.open * (1 + slip) if side == "BUY" else bar.open * (1 - slip)
                fee = qty * px * fee_rate
                r.cash += -qty * px if side == "BUY" else qty * px
                r.cash -= fee
                r.position += qty if side == "BUY" else -qty
                r.fills.append((side, qty, px, fee))
                order[1] = remaining - qty
            if order[1] == 0:
                working.remove(order)
        # 2. the strategy on this bar's close
        closes.append(bar.close)
        if len(closes) < p.slow:
            continue
        fast = sum(closes[-p.fast :]) / p.fast
        slow = sum(closes[-p.slow :]) / p.slow
        sign = (fast > slow) - (fast < slow)
        previous, prev_sign = prev_sign, sign
        if previous is None:
            continue
        side = "BUY" if previous <= 0 < sign else "SELL" if previous >= 0 > sign else None
        if side is None:
            continue
        r.signals += 1
        # 3. risk: equity marked at this bar's close
        price = bar.close
        equity = r.cash + r.position * price
        if side == "SELL":
            if r.position > 0:
                working.append(["SELL", r.position])
                r.orders += 1
            else:
                r.denials += 1
            continue
        sized = _floor_step(equity * p.fraction / price, p.step)
        base = r.position if r.position > 0 else Fraction(0)
        by_position = _floor_step((p.max_position * equity - base * price) / price, p.step)
        by_exposure = _floor_step((p.max_exposure * equity - abs(r.position * price)) / price, p.step)
        qty = min(sized, by_position, by_exposure)
        if qty < p.min_qty or qty * price > r.cash:
            r.denials += 1
            continue
        working.append(["BUY", qty])
        r.orders += 1
    r.equity = r.cash + r.position * bars[-1].close
    return r
