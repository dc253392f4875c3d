"""Paper venue costs: maker/taker fees, the per-order fee, and the fixed and square-root slippage models."""

from __future__ import annotations

from decimal import Context, Decimal, localcontext
from typing import Any

import msgspec
import pytest

from tests.unit.test_paper_venue import NOW, bar, feed, fills, order, venue
from tradewire_common.config import PaperConfig
from tradewire_common.schemas import Liquidity, Side

# --- fees -----------------------------------------------------------------------------------------


async def test_a_maker_fill_pays_the_maker_rate_and_a_taker_fill_the_taker_rate() -> None:
    v = venue(fee_bps=10.0, maker_fee_bps=2.0)
    await v.submit(order("tw-rest", limit="95", quantity="1"), NOW)
    await v.submit(order("tw-gap", limit="95", quantity="1", side=Side.SELL), NOW)

    gap, rest = fills(await feed(v, bar(1, "99", high="99", low="94", close="96")))
    assert (rest.liquidity, rest.last_px, rest.fee) == (Liquidity.MAKER, Decimal("95"), Decimal("0.019"))
    assert (gap.liquidity, gap.last_px, gap.fee) == (Liquidity.TAKER, Decimal("99"), Decimal("0.099"))


async def test_without_a_maker_rate_maker_fills_pay_the_taker_rate() -> None:
    v = venue(fee_bps=10.0)
    await v.submit(order(limit="95", quantity="1"), NOW)

    (fill,) = fills(await feed(v, bar(1, "99", low="94")))
    assert (fill.liquidity, fill.fee) == (Liquidity.MAKER, Decimal("0.095"))


async def test_a_market_order_pays_the_taker_rate_even_with_a_lower_maker_rate() -> None:
    v = venue(fee_bps=10.0, maker_fee_bps=0.0)
    await v.submit(order(quantity="1"), NOW)

    (fill,) = fills(await feed(v, bar(1, "100")))
    assert fill.fee == Decimal("0.1")


async def test_the_per_order_fee_is_added_to_the_first_fill_only() -> None:
    v = venue(fee_bps=10.0, fee_per_order=Decimal("1.5"), max_volume_share=0.5)
    await v.submit(order(quantity="3"), NOW)

    first, second = fills(await feed(v, bar(1, "100", volume="4"), bar(2, "100", volume="4")))
    assert (first.last_qty, first.fee) == (Decimal("2"), Decimal("1.7"))  # 2 * 100 * 0.001 + 1.5
    assert (second.last_qty, second.fee) == (Decimal("1"), Decimal("0.1"))


async def test_every_order_pays_its_own_per_order_fee() -> None:
    v = venue(fee_per_order=Decimal("2"))
    await v.submit(order("tw-a", quantity="1"), NOW)
    await v.submit(order("tw-b", quantity="1"), NOW)

    assert [f.fee for f in fills(await feed(v, bar(1, "100")))] == [Decimal("2"), Decimal("2")]


async def test_a_restored_partly_filled_order_does_not_pay_the_per_order_fee_again() -> None:
    config: dict[str, Any] = {"fee_per_order": Decimal("1"), "max_volume_share": 0.5}
    v = venue(**config)
    await v.submit(order(quantity="3"), NOW)
    (first,) = fills(await feed(v, bar(1, "100", volume="4")))
    assert first.fee == Decimal("1")

    again = venue(**config)
    again.restore_state(v.export_state())
    (second,) = fills(await feed(again, bar(2, "100", volume="4")))
    assert second.fee == 0


@pytest.mark.parametrize("value", ["-0.01", "NaN", "Infinity"])
def test_a_negative_or_non_finite_per_order_fee_is_refused(value: str) -> None:
    with pytest.raises(msgspec.ValidationError, match="fee_per_order"):
        msgspec.convert({"fee_per_order": value}, PaperConfig)


@pytest.mark.parametrize(
    "field, value",
    [("maker_fee_bps", -1.0), ("impact_coefficient", -0.1), ("max_impact_bps", 10_000.0), ("latency_ms", -1),
     ("slippage_model", "linear")],
)
def test_invalid_cost_settings_are_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(msgspec.ValidationError, match=field):
        msgspec.convert({field: value}, PaperConfig)


def test_the_defaults_are_todays_costs() -> None:
    config = PaperConfig()
    assert (config.maker_fee_bps, config.fee_per_order, config.slippage_model, config.latency_ms) == (
        None, Decimal(0), "fixed_bps", 0
    )


# --- slippage models ------------------------------------------------------------------------------


async def test_fixed_bps_slippage_does_not_depend_on_size() -> None:
    v = venue(slippage_bps=10.0)
    await v.submit(order("tw-small", quantity="1"), NOW)
    await v.submit(order("tw-big", quantity="900"), NOW)

    assert [f.last_px for f in fills(await feed(v, bar(1, "100", volume="1000")))] == [Decimal("100.1")] * 2


async def test_sqrt_impact_adds_the_square_root_of_the_volume_share_to_the_fixed_part() -> None:
    v = venue(slippage_model="sqrt_impact", slippage_bps=5.0, impact_coefficient=0.1)
    await v.submit(order("tw-buy", quantity="4"), NOW)
    await v.submit(order("tw-sell", quantity="4", side=Side.SELL), NOW)

    buy, sell = fills(await feed(v, bar(1, "100", volume="100")))
    assert buy.last_px == Decimal("102.05")  # 100 * (1 + 0.0005 + 0.1 * sqrt(0.04))
    assert sell.last_px == Decimal("97.95")
    assert buy.liquidity is Liquidity.TAKER


async def test_sqrt_impact_grows_with_the_fill_size() -> None:
    v = venue(slippage_model="sqrt_impact", impact_coefficient=0.1)
    await v.submit(order("tw-1", quantity="1"), NOW)
    await v.submit(order("tw-9", quantity="9"), NOW)

    small, big = fills(await feed(v, bar(1, "100", volume="100")))
    assert (small.last_px, big.last_px) == (Decimal("101"), Decimal("103"))


async def test_sqrt_impact_is_capped_at_max_impact_bps() -> None:
    v = venue(slippage_model="sqrt_impact", impact_coefficient=0.1, max_impact_bps=200.0)
    await v.submit(order("tw-at-cap", quantity="4"), NOW)
    await v.submit(order("tw-over", quantity="9"), NOW)

    at_cap, over = fills(await feed(v, bar(1, "100", volume="100")))
    assert at_cap.last_px == Decimal("102")  # 0.1 * sqrt(0.04) = 0.02, exactly the cap
    assert over.last_px == Decimal("102")  # 0.03 capped to 0.02


async def test_sqrt_impact_on_a_bar_without_volume_costs_the_cap() -> None:
    v = venue(slippage_model="sqrt_impact", max_impact_bps=1000.0)
    await v.submit(order(quantity="0.001"), NOW)

    (fill,) = fills(await feed(v, bar(1, "100", volume="0")))
    assert fill.last_px == Decimal("110")


async def test_sqrt_impact_uses_the_fill_quantity_after_the_volume_cap() -> None:
    v = venue(slippage_model="sqrt_impact", impact_coefficient=0.1, max_volume_share=0.25)
    await v.submit(order(quantity="10"), NOW)

    (fill,) = fills(await feed(v, bar(1, "100", volume="16")))
    assert (fill.last_qty, fill.last_px) == (Decimal("4"), Decimal("105"))  # sqrt(4 / 16) = 0.5


async def test_sqrt_impact_does_not_touch_limit_fills() -> None:
    v = venue(slippage_model="sqrt_impact", slippage_bps=5.0, impact_coefficient=1.0)
    await v.submit(order(limit="95", quantity="50"), NOW)

    (fill,) = fills(await feed(v, bar(1, "99", low="94", volume="100")))
    assert fill.last_px == Decimal("95")


async def test_sqrt_impact_is_exact_decimal_whatever_the_callers_context() -> None:
    async def price() -> Decimal:
        v = venue(slippage_model="sqrt_impact", impact_coefficient=0.1)
        await v.submit(order(quantity="2"), NOW)
        (fill,) = fills(await feed(v, bar(1, "100", volume="100")))
        return fill.last_px

    ctx = Context(prec=28)
    expected = ctx.multiply(Decimal(100), ctx.add(1, ctx.multiply(Decimal("0.1"), ctx.sqrt(Decimal("0.02")))))
    assert await price() == expected
    with localcontext(prec=6):
        assert await price() == expected
