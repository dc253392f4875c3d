"""What the live-venue adapter tests share: a recording sleep, polling, stock orders, submitting."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from tradewire_common.ids import derive_id
from tradewire_common.schemas import OrderEvent, OrderType, Side, SubmitOrder, TimeInForce
from tradewire_execution.live.base import LiveVenueAdapter


class Sleeps:
    """The rate limiter's sleep: records each wait and yields once (no wall time in the tests)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


async def eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def stock_order(venue: str, coid_prefix: str, n: int, kind: OrderType = OrderType.LIMIT, *, side: Side = Side.BUY,
                qty: str = "10", limit: str | None = "185.50", trigger: str | None = None,
                tif: TimeInForce = TimeInForce.DAY, ts_init: int = 1, **kw: Any) -> SubmitOrder:
    """Order ``n`` of strategy ``sma`` for ``AAPL.<venue>`` (market and stop-market orders drop ``limit``)."""
    if kind in (OrderType.MARKET, OrderType.STOP_MARKET):
        limit = None
    return SubmitOrder(
        id=derive_id(f"{venue}-test", n), ts_event=1_700_000_000_000_000_000 + n, ts_init=ts_init,
        correlation_id=f"sig-{n}", strategy_id="sma", instrument_id=f"AAPL.{venue}",
        client_order_id=f"{coid_prefix}-{n:04d}", side=side, order_type=kind, quantity=Decimal(qty),
        limit_price=Decimal(limit) if limit else None, trigger_price=Decimal(trigger) if trigger else None,
        time_in_force=tif, **kw)


async def submit(adapter: LiveVenueAdapter, o: SubmitOrder) -> list[OrderEvent]:
    """As the execution service calls it: holding the lock the adapter's own tasks publish under."""
    async with adapter.host.lock:
        return await adapter.submit(o, 1)
