"""Position sizing: a fixed fraction of equity, fractional Kelly (capped), binary-contract Kelly,
volatility targeting (ATR), all-in, and the ramp-up schedule of new strategies.

Pure ``Decimal`` arithmetic, no I/O. Quantities are always rounded *down* to the instrument's
quantity step, so sizing never buys more than the formula allows.
"""

from __future__ import annotations

from decimal import Decimal

from tradewire_common.config import RiskConfig
from tradewire_common.numbers import quantize_down
from tradewire_common.schemas.base import Side


def fixed_fraction_quantity(equity: Decimal, price: Decimal, fraction: Decimal, step: Decimal) -> Decimal:
    """Quantity worth ``fraction`` of ``equity`` at ``price``, rounded down to ``step``::

        quantity = floor_to_step(equity * fraction / price)

    Non-positive equity (nothing left to risk) or a zero fraction gives 0.
    Raises ``ValueError`` for a non-positive price or step, or a negative fraction.
    """
    if not price.is_finite() or price <= 0:
        raise ValueError(f"price must be positive, got {price}")
    if not step.is_finite() or step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    if not fraction.is_finite() or fraction < 0:
        raise ValueError(f"fraction must not be negative, got {fraction}")
    if equity <= 0 or fraction == 0:
        return Decimal(0)
    quantity: Decimal = quantize_down(equity * fraction / price, step)
    return quantity


def kelly_fraction(p: Decimal, b: Decimal, multiplier: Decimal) -> Decimal:
    """Fraction of equity to stake by (fractional) Kelly::

        q = 1 - p
        f* = (b * p - q) / b
        fraction = max(0, f*) * multiplier

    ``p`` is the win probability (0..1), ``b`` the payoff ratio (average win / average loss,
    must be > 0) and ``multiplier`` scales full Kelly (0.5 = half Kelly). The result is never
    negative: a negative edge means "do not bet", not "bet the other way".

    Example: p = 0.6, b = 1 gives f* = 0.2 (full Kelly) and 0.1 with multiplier 0.5.
    """
    if not b.is_finite() or b <= 0:
        raise ValueError(f"payoff ratio b must be positive, got {b}")
    if not p.is_finite() or not 0 <= p <= 1:
        raise ValueError(f"win probability p must be within 0..1, got {p}")
    if not multiplier.is_finite() or multiplier < 0:
        raise ValueError(f"Kelly multiplier must not be negative, got {multiplier}")
    q = Decimal(1) - p
    full = (b * p - q) / b
    return max(Decimal(0), full) * multiplier


def capped(fraction: Decimal, cap: Decimal) -> Decimal:
    """``min(fraction, cap)``: the Kelly cap (``risk.kelly_cap``)."""
    if not cap.is_finite() or cap < 0:
        raise ValueError(f"cap must not be negative, got {cap}")
    return min(fraction, cap)


def binary_kelly_fraction(p: Decimal, price: Decimal, multiplier: Decimal) -> Decimal:
    """Fraction of equity to stake on a binary contract that pays 1 if it resolves YES::

        fraction = max(0, (p - price) / (1 - price)) * multiplier

    ``price`` is the contract's price in (0, 1) (the market's implied probability) and ``p`` the
    strategy's probability of YES. This is Kelly with ``b = (1 - price) / price``: a stake of
    ``price`` wins ``1 - price``. Example: p = 0.6 at price 0.5 gives 0.2 (full Kelly), 0.1 halved.
    """
    if not price.is_finite() or not 0 < price < 1:
        raise ValueError(f"a binary contract's price must be within (0, 1), got {price}")
    if not p.is_finite() or not 0 <= p <= 1:
        raise ValueError(f"win probability p must be within 0..1, got {p}")
    if not multiplier.is_finite() or multiplier < 0:
        raise ValueError(f"Kelly multiplier must not be negative, got {multiplier}")
    return max(Decimal(0), (p - price) / (1 - price)) * multiplier


def volatility_target_quantity(
    equity: Decimal, atr: Decimal, risk_fraction: Decimal, atr_multiple: Decimal, step: Decimal
) -> Decimal:
    """Quantity whose move of ``atr_multiple`` ATRs costs ``risk_fraction`` of equity::

        quantity = floor_to_step(risk_fraction * equity / (atr_multiple * ATR))

    Example: equity 10000, 1% risk, ATR 2.5, multiple 2 -> 100 / 5 = 20 units. Non-positive equity
    gives 0; a non-positive ATR (a flat market) or multiple raises ``ValueError``.
    """
    if not atr.is_finite() or atr <= 0:
        raise ValueError(f"ATR must be positive, got {atr}")
    if not atr_multiple.is_finite() or atr_multiple <= 0:
        raise ValueError(f"ATR multiple must be positive, got {atr_multiple}")
    if not step.is_finite() or step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    if equity <= 0 or risk_fraction <= 0:
        return Decimal(0)
    quantity: Decimal = quantize_down(risk_fraction * equity / (atr_multiple * atr), step)
    return quantity


def ramp_up_scale(
    start: Decimal, *, days: Decimal, trades: int, elapsed_ns: int | None, filled_orders: int
) -> Decimal:
    """Share of its normal size a strategy may trade during its ramp-up::

        progress = max(elapsed / days, filled_orders / trades), at most 1  (a measure set to 0 is off)
        scale    = start + (1 - start) * progress

    ``elapsed_ns`` is the time since the strategy's first fill (None: it never traded, progress 0).
    With both measures off the scale is 1. Example: start 0.25, 10 days, 4 days in -> 0.25 + 0.75 * 0.4 = 0.55.
    """
    if days <= 0 and trades <= 0:
        return Decimal(1)
    progress = Decimal(0)
    if days > 0 and elapsed_ns is not None:
        progress = max(progress, Decimal(max(elapsed_ns, 0)) / (days * 86_400 * 1_000_000_000))
    if trades > 0:
        progress = max(progress, Decimal(filled_orders) / trades)
    return start + (1 - start) * min(progress, Decimal(1))


def kelly_quantity(
    equity: Decimal, price: Decimal, p: Decimal, b: Decimal, multiplier: Decimal, step: Decimal
) -> Decimal:
    """Quantity for a fractional-Kelly stake, rounded down to ``step``::

        quantity = floor_to_step(equity * kelly_fraction(p, b, multiplier) / price)

    Zero when the edge is not positive.
    """
    return fixed_fraction_quantity(equity, price, kelly_fraction(p, b, multiplier), step)


def all_in_quantity(cash: Decimal, price: Decimal, config: RiskConfig, step: Decimal) -> tuple[Decimal, str]:
    """All cash into one entry, reserving the expected costs:

    ``qty = (cash - fixed_fee) / (price * (1 + slippage) * (1 + fee_rate))``, rounded down to ``step``.
    The same rule as the vectorized backtester's all-in mode, so both give the same trades.
    """
    fee_rate = Decimal(str(config.cost_fee_bps)) / 10_000
    slippage = Decimal(str(config.cost_slippage_bps)) / 10_000
    budget = cash - config.cost_fixed_fee
    if budget <= 0:
        return Decimal(0), f"all-in: cash {cash} does not cover the fixed fee {config.cost_fixed_fee}"
    qty = quantize_down(budget / (price * (1 + slippage) * (1 + fee_rate)), step)
    return qty, f"all-in: cash {cash} at {price}"


def all_in_flip_quantity(
    cash: Decimal, closing: Decimal, side: Side, price: Decimal, config: RiskConfig, step: Decimal
) -> tuple[Decimal, str]:
    """The opening part of an all-in flip: one ``side`` order that first closes ``closing`` (the whole
    opposite position), then puts all the cash that close leaves into the other direction.

    The close fills at ``price`` with slippage against the trader and pays the proportional fee and
    the order's one fixed fee; the opening part pays only the proportional fee (one order, one fixed
    fee)::

        fill  = price * (1 - slippage)  (closing a long with a SELL)  or  price * (1 + slippage)
        cash' = cash + closing * fill - closing * fill * fee_rate - fixed_fee   (SELL)
        cash' = cash - closing * fill - closing * fill * fee_rate - fixed_fee   (BUY)
        qty   = cash' / (price * (1 + slippage) * (1 + fee_rate)), rounded down to ``step``

    The vectorized backtester's long-short reversal uses the same rule.
    """
    fee_rate = Decimal(str(config.cost_fee_bps)) / 10_000
    slippage = Decimal(str(config.cost_slippage_bps)) / 10_000
    if side is Side.SELL:
        fill = price * (1 - slippage)
        after = cash + closing * fill - closing * fill * fee_rate - config.cost_fixed_fee
    else:
        fill = price * (1 + slippage)
        after = cash - closing * fill - closing * fill * fee_rate - config.cost_fixed_fee
    if after <= 0:
        return Decimal(0), f"all-in flip: cash {cash} after closing {closing} at {price} is {after}"
    qty = quantize_down(after / (price * (1 + slippage) * (1 + fee_rate)), step)
    return qty, f"all-in flip: cash {after} after closing {closing} at {price}"
