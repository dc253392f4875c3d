"""Risk's context over a real broker: built from the real order events, fills and snapshots of the ledger,
execution's paper venue and risk, and rebuilt from the ledger after risk restarts.

A probe plays the datafeed and the strategy: it publishes bars and signals; ledger, execution and risk
are the real services (each with its own NATS connection and HTTP port).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.support.inproc import InProcessStack
from tests.support.nats_server import NatsServer
from tests.support.stack import demo_config
from tradewire_common import subjects
from tradewire_common.bus import Envelope, NatsBus
from tradewire_common.config import Config, load_config
from tradewire_common.ids import derive_id, new_id
from tradewire_common.schemas import (
    Bar,
    DenyReason,
    Message,
    OrderAccepted,
    OrderDenied,
    OrderFilled,
    OrderType,
    PortfolioSnapshot,
    Side,
    Signal,
    SubmitOrder,
)
from tradewire_risk.service import RiskService

pytestmark = pytest.mark.timeout(120)
BTC = "BTCUSDT.BINANCE"
MINUTE = 60_000_000_000
STRATEGY = "probe_strategy"
WAIT_S = 20.0


class Seen:
    """Everything the probe received, by type."""

    def __init__(self) -> None:
        self.items: list[Message] = []
        self.changed = asyncio.Event()

    async def __call__(self, envelope: Envelope) -> None:
        self.items.append(envelope.message)
        self.changed.set()

    def of(self, kind: type[Message]) -> list[Any]:
        return [m for m in self.items if isinstance(m, kind)]

    async def first(self, kind: type[Message], **fields: object) -> Any:
        """The first message of ``kind`` whose fields have these values (waiting for it)."""
        async with asyncio.timeout(WAIT_S):
            while True:
                for m in self.of(kind):
                    if all(getattr(m, k) == v for k, v in fields.items()):
                        return m
                self.changed.clear()
                await self.changed.wait()


def bar(i: int, close: str, *, low: str | None = None, open_: str | None = None) -> Bar:
    c = Decimal(close)
    o = Decimal(open_) if open_ else c
    lo = Decimal(low) if low else min(o, c)
    return Bar(id=derive_id("live-bar", i), ts_event=i * MINUTE, ts_init=i * MINUTE, instrument_id=BTC, interval="1m",
               open=o, high=max(o, c), low=lo, close=c, volume=Decimal("1000000"), seq=i)


def signal(i: int, side: Side = Side.BUY, *, limit: str | None = None) -> Signal:
    return Signal(id=new_id(), ts_event=i * MINUTE, ts_init=i * MINUTE, strategy_id=STRATEGY, instrument_id=BTC,
                  side=side, price=Decimal("100"), confidence=1.0, reason="probe",
                  order_type=OrderType.LIMIT if limit else OrderType.MARKET,
                  limit_price=Decimal(limit) if limit else None)


@pytest.fixture
async def probe(fresh_nats: NatsServer) -> AsyncIterator[NatsBus]:
    bus = NatsBus("probe", fresh_nats.url)
    await bus.connect()
    yield bus
    await bus.close()


def make_config(tmp_path: Path, **risk: Any) -> Config:
    path = tmp_path / "tw.toml"
    path.write_text(demo_config(limit=10, extra=f'path = "{tmp_path / "ledger.db"}"'))
    config = load_config(path, environ={})
    return msgspec.structs.replace(config, risk=msgspec.structs.replace(config.risk, **risk))


async def start(config: Config, url: str) -> InProcessStack:
    """Ledger and execution, then risk told where the ledger's HTTP API is."""
    stack = InProcessStack(config, url)
    await stack.start(("ledger", "execution"))
    stack.config = msgspec.structs.replace(
        config, risk=msgspec.structs.replace(config.risk, ledger_url=stack.url("ledger")))
    await stack.start_service("risk")
    return stack


async def ledger_status(stack: InProcessStack, coid: str, status: str) -> None:
    async with asyncio.timeout(WAIT_S):
        while True:
            rows = (await stack.get("ledger", "/v1/orders")).json()
            if any(r["client_order_id"] == coid and r["status"] == status for r in rows):
                return
            await asyncio.sleep(0.05)


async def covered(probe: NatsBus, seen: Seen, i: int, close: str, **fields: str) -> None:
    """Publish bar ``i`` and wait for the ledger's snapshot covering it."""
    await probe.publish(subjects.bar("BINANCE", "BTCUSDT", "1m"), bar(i, close, **fields))
    await seen.first(PortfolioSnapshot, as_of=i * MINUTE)


async def test_resting_limit_orders_count_as_open_until_filled_and_again_after_a_risk_restart(
    tmp_path: Path, fresh_nats: NatsServer, probe: NatsBus
) -> None:
    config = make_config(tmp_path, max_open_orders=2, max_position_pct=1.0, max_exposure_pct=1.0)
    stack = await start(config, fresh_nats.url)
    seen = Seen()
    await probe.subscribe(subjects.ALL_ORDER_COMMANDS, seen, durable="probe-commands")
    await probe.subscribe(subjects.ALL_ORDER_EVENTS, seen, durable="probe-events")
    await probe.subscribe(subjects.PORTFOLIO_SNAPSHOT, seen)
    sig_subject = subjects.signal(STRATEGY)
    try:
        await covered(probe, seen, 1, "100")
        a, b, c = signal(1, limit="90"), signal(1, limit="91"), signal(1, limit="92")
        for s in (a, b):
            await probe.publish(sig_subject, s)
            order = await seen.first(SubmitOrder, signal_id=s.id)
            await seen.first(OrderAccepted, client_order_id=order.client_order_id)
        await probe.publish(sig_subject, c)
        full = await seen.first(OrderDenied, signal_id=c.id)
        assert full.reason_code is DenyReason.MAX_OPEN_ORDERS
        assert "2 open orders" in full.reason

        # a bar down to 90.5 fills the BUY at 91 only: one order open again
        await covered(probe, seen, 2, "95", low="90.5")
        filled = await seen.first(OrderFilled, side=Side.BUY)
        assert filled.last_px == Decimal("91")
        d = signal(2, limit="85")
        await probe.publish(sig_subject, d)
        order_d = await seen.first(SubmitOrder, signal_id=d.id)
        await seen.first(OrderAccepted, client_order_id=order_d.client_order_id)
        await ledger_status(stack, order_d.client_order_id, "ACCEPTED")

        # a restarted risk rebuilds its open orders from the ledger: still two (a's and d's)
        service = await stack.restart_service("risk")
        assert isinstance(service, RiskService)
        open_now = set(service.context_feed.context.open_orders)
        order_a = await seen.first(SubmitOrder, signal_id=a.id)
        assert open_now == {order_a.client_order_id, order_d.client_order_id}
        e = signal(2, limit="86")
        await probe.publish(sig_subject, e)
        again = await seen.first(OrderDenied, signal_id=e.id)
        assert again.reason_code is DenyReason.MAX_OPEN_ORDERS
    finally:
        await stack.close()


async def test_the_daily_loss_limit_stops_entries_after_real_losses_and_after_a_risk_restart(
    tmp_path: Path, fresh_nats: NatsServer, probe: NatsBus
) -> None:
    # half the equity into BTC at 100, then BTC at 89: 50 * 11 = 550 lost (plus fees) > 5% of 10000
    config = make_config(tmp_path, daily_loss_limit_pct=0.05, fraction=0.5, max_position_pct=1.0,
                         max_exposure_pct=1.0)
    stack = await start(config, fresh_nats.url)
    seen = Seen()
    await probe.subscribe(subjects.ALL_ORDER_COMMANDS, seen, durable="probe-commands")
    await probe.subscribe(subjects.ALL_ORDER_EVENTS, seen, durable="probe-events")
    await probe.subscribe(subjects.PORTFOLIO_SNAPSHOT, seen)
    sig_subject = subjects.signal(STRATEGY)
    try:
        await covered(probe, seen, 1, "100")
        entry = signal(1)
        await probe.publish(sig_subject, entry)
        order = await seen.first(SubmitOrder, signal_id=entry.id)
        assert order.quantity == Decimal("50")
        await covered(probe, seen, 2, "100", open_="100")
        await seen.first(OrderFilled, client_order_id=order.client_order_id)
        await covered(probe, seen, 3, "89")
        more = signal(3)
        await probe.publish(sig_subject, more)
        stopped = await seen.first(OrderDenied, signal_id=more.id)
        assert stopped.reason_code is DenyReason.DAILY_LOSS_LIMIT
        assert "below the start-of-day equity 10000" in stopped.reason

        # restarted, risk takes the day's reference from the ledger's equity curve, not from today's low
        await stack.restart_service("risk")
        after = signal(3)
        await probe.publish(sig_subject, after)
        still = await seen.first(OrderDenied, signal_id=after.id)
        assert still.reason_code is DenyReason.DAILY_LOSS_LIMIT
        exit_ = signal(3, Side.SELL)
        await probe.publish(sig_subject, exit_)
        close = await seen.first(SubmitOrder, signal_id=exit_.id)
        assert (close.side, close.quantity, close.reduce_only) == (Side.SELL, Decimal("50"), True)
    finally:
        await stack.close()
