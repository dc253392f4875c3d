"""Decimal helpers: money and quantities are never binary floats."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation

ZERO = Decimal(0)
ONE = Decimal(1)
#: Prices or sizes above this are treated as absurd input, not as data.
ABSURD = Decimal("1e15")


def to_decimal(value: object, *, field: str = "value") -> Decimal:
    """Convert text or an int (or a float via its shortest repr) to Decimal, rejecting junk."""
    try:
        if isinstance(value, Decimal):
            result = value
        elif isinstance(value, float):
            result = Decimal(repr(value))
        else:
            result = Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"{field}: not a number: {value!r}") from exc
    if not result.is_finite():
        raise ValueError(f"{field}: must be finite, got {value!r}")
    return result


def check_positive(value: Decimal, field: str) -> None:
    """Raise ValueError unless ``0 < value < ABSURD`` and finite."""
    if not value.is_finite():
        raise ValueError(f"{field} must be finite, got {value}")
    if value <= 0:
        raise ValueError(f"{field} must be positive, got {value}")
    if value >= ABSURD:
        raise ValueError(f"{field} is absurdly large: {value}")


def check_non_negative(value: Decimal, field: str) -> None:
    """Raise ValueError unless ``0 <= value < ABSURD`` and finite."""
    if not value.is_finite():
        raise ValueError(f"{field} must be finite, got {value}")
    if value < 0:
        raise ValueError(f"{field} must not be negative, got {value}")
    if value >= ABSURD:
        raise ValueError(f"{field} is absurdly large: {value}")


def check_finite(value: Decimal, field: str) -> None:
    """Raise ValueError unless finite and of sane magnitude (signed values such as PnL)."""
    if not value.is_finite() or abs(value) >= ABSURD * 1000:
        raise ValueError(f"{field} must be finite and sane, got {value}")


def quantize_down(value: Decimal, step: Decimal) -> Decimal:
    """Round ``value`` down to a multiple of ``step`` (lot sizes: never buy more than sized)."""
    if step <= 0:
        raise ValueError("step must be positive")
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


def round_money(value: Decimal, places: int = 8) -> Decimal:
    """Round money to ``places`` decimals, banker's rounding."""
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
