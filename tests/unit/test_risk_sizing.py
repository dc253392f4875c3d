"""Position sizing: fixed fraction and fractional Kelly (expected values computed by hand)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from tradewire_risk.sizing import fixed_fraction_quantity, kelly_fraction, kelly_quantity

D = Decimal


def mission_kelly(p: Fraction, b: Fraction, multiplier: Fraction) -> Fraction:
    """The mission's formula, independently: f* = (b*p - q)/b, q = 1 - p, never negative."""
    q = 1 - p
    return max(Fraction(0), (b * p - q) / b) * multiplier


# -- Kelly ------------------------------------------------------------------------------------


def test_kelly_full_fraction_for_p_0_6_and_even_payoff_is_0_2() -> None:
    assert kelly_fraction(D("0.6"), D("1"), D("1")) == D("0.2")


def test_half_kelly_for_p_0_6_and_even_payoff_is_0_1() -> None:
    assert kelly_fraction(D("0.6"), D("1"), D("0.5")) == D("0.1")


def test_negative_edge_gives_zero_not_a_negative_fraction() -> None:
    assert kelly_fraction(D("0.4"), D("1"), D("1")) == 0
    assert kelly_fraction(D("0.3"), D("2"), D("0.5")) == 0  # 2*0.3 - 0.7 = -0.1


def test_zero_edge_gives_zero() -> None:
    assert kelly_fraction(D("0.5"), D("1"), D("1")) == 0


@pytest.mark.parametrize(
    ("p", "b", "multiplier"),
    [("0.55", "1", "0.5"), ("0.6", "2", "1"), ("0.45", "1.5", "0.25"), ("1", "3", "1"), ("0", "1", "1")],
)
def test_kelly_matches_the_mission_formula(p: str, b: str, multiplier: str) -> None:
    expected = mission_kelly(Fraction(p), Fraction(b), Fraction(multiplier))
    # Decimal carries 28 significant digits, so a repeating quotient differs only past them.
    assert abs(Fraction(kelly_fraction(D(p), D(b), D(multiplier))) - expected) < Fraction(1, 10**25)


def test_kelly_with_payoff_2_and_p_0_4() -> None:
    # (2*0.4 - 0.6) / 2 = 0.1
    assert kelly_fraction(D("0.4"), D("2"), D("1")) == D("0.1")


@pytest.mark.parametrize("b", ["0", "-1"])
def test_kelly_rejects_a_non_positive_payoff_ratio(b: str) -> None:
    with pytest.raises(ValueError, match="payoff ratio"):
        kelly_fraction(D("0.6"), D(b), D("1"))


@pytest.mark.parametrize("p", ["-0.1", "1.1"])
def test_kelly_rejects_a_probability_outside_0_1(p: str) -> None:
    with pytest.raises(ValueError, match="win probability"):
        kelly_fraction(D(p), D("1"), D("1"))


def test_kelly_quantity_is_the_kelly_fraction_of_equity_rounded_down() -> None:
    # half Kelly 0.1 of 10000 = 1000 at 30000 -> 0.0333... -> 0.033333
    assert kelly_quantity(D("10000"), D("30000"), D("0.6"), D("1"), D("0.5"), D("0.000001")) == D("0.033333")


def test_kelly_quantity_is_zero_for_a_negative_edge() -> None:
    assert kelly_quantity(D("10000"), D("100"), D("0.4"), D("1"), D("0.5"), D("0.01")) == 0


# -- fixed fraction ---------------------------------------------------------------------------


def test_fixed_fraction_rounds_down_to_the_step() -> None:
    # 10000 * 0.1 / 30000 = 0.03333...
    assert fixed_fraction_quantity(D("10000"), D("30000"), D("0.1"), D("0.000001")) == D("0.033333")
    assert fixed_fraction_quantity(D("10000"), D("30000"), D("0.1"), D("0.001")) == D("0.033")


def test_fixed_fraction_never_rounds_up_even_just_below_the_next_step() -> None:
    # 999.99 / 100 = 9.9999 -> 9 whole units, not 10
    assert fixed_fraction_quantity(D("9999.9"), D("100"), D("0.1"), D("1")) == D("9")


def test_fixed_fraction_exact_multiple_is_kept() -> None:
    assert fixed_fraction_quantity(D("10000"), D("250"), D("0.1"), D("0.5")) == D("4")


@pytest.mark.parametrize(
    ("equity", "price", "fraction", "step"),
    [("12345.67", "123.45", "0.07", "0.001"), ("10000", "3", "0.1", "0.000001"), ("500", "0.37", "1", "10")],
)
def test_fixed_fraction_matches_floor_of_exact_quotient(
    equity: str, price: str, fraction: str, step: str
) -> None:
    exact = Fraction(equity) * Fraction(fraction) / Fraction(price)
    expected = (exact // Fraction(step)) * Fraction(step)
    assert Fraction(fixed_fraction_quantity(D(equity), D(price), D(fraction), D(step))) == expected


@pytest.mark.parametrize("equity", ["0", "-100"])
def test_fixed_fraction_with_no_equity_is_zero(equity: str) -> None:
    assert fixed_fraction_quantity(D(equity), D("100"), D("0.1"), D("0.01")) == 0


def test_fixed_fraction_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="price"):
        fixed_fraction_quantity(D("100"), D("0"), D("0.1"), D("0.01"))
    with pytest.raises(ValueError, match="step"):
        fixed_fraction_quantity(D("100"), D("1"), D("0.1"), D("0"))
    with pytest.raises(ValueError, match="fraction"):
        fixed_fraction_quantity(D("100"), D("1"), D("-0.1"), D("0.01"))
