"""Paper venue latency: an order reaches the venue ``latency_ms`` after its signal bar closes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.unit.test_paper_venue import MINUTE, NOW, T0, bar, feed, fills, order, venue
from tradewire_common.schemas import OrderAccepted, OrderFilled, TimeInForce
from tradewire_execution.paper_pricing import bar_end

BARS = [bar(i, str(100 + i), volume="1000") for i in range(5)]


async def filled_on(latency_ms: int) -> list[int]:
    """Indexes of the bars the order (signal bar 0, sent before bar 1) filled on."""
    v = venue(latency_ms=latency_ms)
    await feed(v, BARS[0])
    await v.submit(order(), NOW)
    return [(f.ts_event - T0) // MINUTE for f in fills(await feed(v, *BARS[1:]))]


async def test_without_latency_an_order_fills_on_the_next_bar() -> None:
    assert await filled_on(0) == [1]


async def test_one_millisecond_of_latency_pushes_the_fill_to_the_bar_after_next() -> None:
    assert await filled_on(1) == [2]


async def test_an_order_arriving_exactly_at_a_bars_open_fills_on_that_bar() -> None:
    assert await filled_on(60_000) == [2]  # arrival = close of bar 0 + 1 minute = open of bar 2
    assert await filled_on(60_001) == [3]


async def test_the_fill_price_is_the_open_of_the_first_bar_after_arrival() -> None:
    v = venue(latency_ms=1, slippage_bps=10.0)
    await feed(v, BARS[0])
    await v.submit(order(), NOW)
    (fill,) = fills(await feed(v, *BARS[1:3]))
    assert fill.last_px == Decimal("102.102")


async def test_latency_overrides_fills_at_the_signal_bars_close() -> None:
    v = venue(latency_ms=1, fill_at="close")
    await feed(v, bar(0, "100", close="110"))

    assert [type(e) for e in await v.submit(order(), NOW)] == [OrderAccepted]
    (fill,) = fills(await feed(v, *BARS[1:3]))
    assert (fill.ts_event, fill.last_px) == (T0 + 2 * MINUTE, Decimal("102"))


async def test_a_limit_order_does_not_fill_on_a_bar_open_before_its_arrival() -> None:
    v = venue(latency_ms=1)
    await feed(v, BARS[0])
    await v.submit(order(limit="95"), NOW)

    assert await feed(v, bar(1, "96", low="90")) == []
    (fill,) = fills(await feed(v, bar(2, "96", low="94")))
    assert (fill.ts_event, fill.last_px) == (T0 + 2 * MINUTE, Decimal("95"))


async def test_an_order_sent_before_any_bar_gets_its_arrival_when_the_first_bar_comes() -> None:
    v = venue(latency_ms=1)
    await v.submit(order(), NOW)

    (fill,) = fills(await feed(v, *BARS))
    assert fill.ts_event == T0 + 2 * MINUTE


async def test_a_late_order_with_latency_fills_as_if_it_had_arrived_in_time() -> None:
    late = venue(latency_ms=1)
    await feed(late, *BARS)
    (fill,) = fills(await late.submit(order(), NOW))
    assert fill.ts_event == T0 + 2 * MINUTE
    assert await filled_on(1) == [2]


async def test_latency_is_measured_from_the_close_of_the_instruments_interval() -> None:
    five = [bar(i, "100", interval="5m") for i in range(0, 20, 5)]
    v = venue(latency_ms=1)
    await feed(v, five[0])
    await v.submit(order(), NOW)
    (fill,) = fills(await feed(v, *five[1:]))
    assert fill.ts_event == T0 + 10 * MINUTE  # closes at +5m, arrives at +5m 1ms, fills at +10m


async def test_the_first_eligible_bar_of_an_ioc_order_is_the_first_after_arrival() -> None:
    v = venue(latency_ms=1, max_volume_share=0.5)
    await v.submit(order(quantity="3", tif=TimeInForce.IOC), NOW)

    events = await feed(v, bar(0, "100"), bar(1, "100", volume="100"), bar(2, "100", volume="2"))
    assert [(type(e).__name__, e.ts_event) for e in events] == [
        ("OrderFilled", T0 + 2 * MINUTE), ("OrderCanceled", T0 + 2 * MINUTE)
    ]
    assert isinstance(events[0], OrderFilled) and events[0].last_qty == Decimal("1")


def _ns(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()) * 10**9


@pytest.mark.parametrize(
    "start, interval, end",
    [
        (_ns(2024, 1, 1), "1m", _ns(2024, 1, 1, 0, 1)),
        (_ns(2024, 1, 1), "90s", _ns(2024, 1, 1, 0, 1, 30)),
        (_ns(2024, 1, 1), "4h", _ns(2024, 1, 1, 4)),
        (_ns(2024, 1, 1), "1w", _ns(2024, 1, 8)),
        (_ns(2023, 12, 1), "1M", _ns(2024, 1, 1)),
        (_ns(2024, 1, 1), "3M", _ns(2024, 4, 1)),
        (_ns(2024, 1, 31), "1M", _ns(2024, 2, 29)),
    ],
)
def test_bar_end_is_the_close_of_the_bar(start: int, interval: str, end: int) -> None:
    assert bar_end(start, interval) == end


@pytest.mark.parametrize("interval", ["", "m", "0m", "1y", "1 m", "*"])
def test_bar_end_refuses_what_is_not_an_interval(interval: str) -> None:
    with pytest.raises(ValueError, match="interval"):
        bar_end(0, interval)


async def test_an_unreadable_interval_counts_as_zero() -> None:
    odd = [bar(i, str(100 + i), interval="tick") for i in range(4)]
    v = venue(latency_ms=60_000)
    await feed(v, odd[0])
    await v.submit(order(), NOW)
    (fill,) = fills(await feed(v, *odd[1:]))
    assert fill.ts_event == T0 + MINUTE  # arrival = t + 1 minute
