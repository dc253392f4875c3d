"""Each service on its own over a real broker: what it consumes, what it publishes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

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
    ExecutionWatermark,
    Message,
    OrderAccepted,
    OrderDenied,
    OrderFilled,
    OrderSubmitted,
    OrderType,
    PortfolioSnapshot,
    PositionSnapshot,
    Side,
    Signal,
    SubmitOrder,
)

pytestmark = pytest.mark.timeout(90)
BTC = "BTCUSDT.BINANCE"
MINUTE = 60_000_000_000


class Collector:
    def __init__(self) -> None:
        self.items: list[tuple[str, Message]] = []
        self.changed = asyncio.Event()

    async def __call__(self, envelope: Envelope) -> None:
        self.items.append((envelope.subject, envelope.message))
        self.changed.set()

    def of(self, kind: type[Message]) -> list[Message]:
        return [m for _, m in self.items if isinstance(m, kind)]

    async def wait_for(self, kind: type[Message], count: int = 1, timeout: float = 15.0) -> list[Message]:
        async with asyncio.timeout(timeout):
            while len(self.of(kind)) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.of(kind)


def bar(i: int, close: str, *, open_: str | None = None, volume: str = "1000") -> Bar:
    c = Decimal(close)
    o = Decimal(open_) if open_ else c
    return Bar(id=derive_id("bar", BTC, i), ts_event=i * MINUTE, ts_init=i * MINUTE, instrument_id=BTC,
               interval="1m", open=o, high=max(o, c) + 1, low=min(o, c) - 1, close=c, volume=Decimal(volume), seq=i)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "tw.toml"
    path.write_text(demo_config(limit=10, extra=f'path = "{tmp_path / "ledger.db"}"'))
    return load_config(path, environ={})


@pytest.fixture
async def probe(fresh_nats: NatsServer) -> AsyncIterator[NatsBus]:
    bus = NatsBus("probe", fresh_nats.url)
    bus.report_stats = False
    await bus.connect()
    yield bus
    await bus.close()


async def test_signals_turns_a_crossing_into_a_signal_on_its_subject(config: Config, fresh_nats: NatsServer,
                                                                    probe: NatsBus) -> None:
    stack = InProcessStack(config, fresh_nats.url)
    await stack.start(("signals",))
    seen = Collector()
    await probe.subscribe("sig.*", seen, durable="probe-signals")
    try:
        closes = ["100"] * 30 + ["90"] * 5 + ["130"] * 10  # fast falls below slow, then crosses above
        for i, close in enumerate(closes):
            await probe.publish(subjects.bar("BINANCE", "BTCUSDT", "1m"), bar(i, close))
        signals = await seen.wait_for(Signal, 2)
    finally:
        await stack.close()
    assert [s.side for s in signals] == [Side.SELL, Side.BUY]  # type: ignore[attr-defined]
    assert all(subject == "sig.sma_cross" for subject, _ in seen.items)
    assert signals[1].price == Decimal("130")  # type: ignore[attr-defined]


async def test_risk_sizes_a_signal_with_a_snapshot_that_covers_its_time(config: Config, fresh_nats: NatsServer,
                                                                       probe: NatsBus) -> None:
    stack = InProcessStack(config, fresh_nats.url)
    await stack.start(("risk",))
    orders, events = Collector(), Collector()
    await probe.subscribe("ord.cmd.*", orders, durable="probe-orders")
    await probe.subscribe("ord.evt.>", events, durable="probe-events")
    try:
        t = 5 * MINUTE
        sig = Signal(id=new_id(), ts_event=t, ts_init=t, strategy_id="sma_cross", instrument_id=BTC, side=Side.BUY,
                     price=Decimal("40000"), confidence=0.7, reason="test")
        await probe.publish(subjects.signal("sma_cross"), sig)
        await asyncio.sleep(0.3)
        assert orders.of(SubmitOrder) == []  # waits: no snapshot covers t yet
        snap = PortfolioSnapshot(id=new_id(), ts_event=t, ts_init=t, account="paper", cash=Decimal("10000"),
                                 equity=Decimal("10000"), realized_pnl=Decimal(0), unrealized_pnl=Decimal(0),
                                 gross_exposure=Decimal(0), positions=(), as_of=t)
        await probe.publish(subjects.PORTFOLIO_SNAPSHOT, snap)
        (order,) = await orders.wait_for(SubmitOrder)
        sell = Signal(id=new_id(), ts_event=t, ts_init=t, strategy_id="sma_cross", instrument_id=BTC,
                      side=Side.SELL, price=Decimal("40000"), confidence=0.7, reason="exit with no position")
        await probe.publish(subjects.signal("sma_cross"), sell)
        (denied,) = await events.wait_for(OrderDenied)
    finally:
        await stack.close()
    assert isinstance(order, SubmitOrder)
    assert order.quantity == Decimal("0.025")  # 10% of 10000 at 40000
    assert orders.items[0][0] == "ord.cmd.BINANCE"
    assert isinstance(denied, OrderDenied) and denied.reason_code.value == "NO_POSITION"


async def test_execution_fills_at_the_next_bar_open_and_publishes_a_watermark(
    config: Config, fresh_nats: NatsServer, probe: NatsBus
) -> None:
    stack = InProcessStack(config, fresh_nats.url)
    await stack.start(("execution",))
    events = Collector()
    await probe.subscribe("ord.evt.>", events, durable="probe-exec-events")
    try:
        await probe.publish(subjects.bar("BINANCE", "BTCUSDT", "1m"), bar(1, "40000"))
        order = SubmitOrder(id=new_id(), ts_event=1 * MINUTE, ts_init=0, strategy_id="sma_cross", instrument_id=BTC,
                            client_order_id="tw-test-0001", side=Side.BUY, order_type=OrderType.MARKET,
                            quantity=Decimal("0.5"))
        await probe.publish(subjects.order_command("BINANCE"), order)
        await events.wait_for(OrderAccepted)
        await probe.publish(subjects.bar("BINANCE", "BTCUSDT", "1m"), bar(2, "40100", open_="40050"))
        (fill,) = await events.wait_for(OrderFilled)
        watermarks = await events.wait_for(ExecutionWatermark, 2)
    finally:
        await stack.close()
    assert [type(m).__name__ for m in events.of(OrderSubmitted)] == ["OrderSubmitted"]
    assert isinstance(fill, OrderFilled)
    # 1 bps slippage, 10 bps fee from the demo config
    assert fill.last_px == Decimal("40050") * Decimal("1.0001")
    assert fill.fee == Decimal("0.5") * fill.last_px * Decimal("0.001")
    assert [w.ts_event for w in watermarks] == [1 * MINUTE, 2 * MINUTE]


async def test_ledger_records_a_fill_once_and_publishes_the_position(
    config: Config, fresh_nats: NatsServer, probe: NatsBus
) -> None:
    stack = InProcessStack(config, fresh_nats.url)
    await stack.start(("ledger",))
    snaps = Collector()
    await probe.subscribe(subjects.PORTFOLIO_SNAPSHOT, snaps)
    try:
        fill = OrderFilled(id=new_id(), ts_event=MINUTE, ts_init=0, strategy_id="sma_cross", instrument_id=BTC,
                           client_order_id="tw-ledger-1", venue_order_id="v1", trade_id="t1", side=Side.BUY,
                           last_qty=Decimal("0.1"), last_px=Decimal("40000"), fee=Decimal("4"),
                           fee_currency="USDT", liquidity="TAKER", partial=False)  # type: ignore[arg-type]
        await probe.publish(subjects.order_event("sma_cross"), fill)
        # the same trade again under another message id: trade-id de-duplication
        await probe.publish(subjects.order_event("sma_cross"),
                            OrderFilled(**{**{f: getattr(fill, f) for f in fill.__struct_fields__}, "id": new_id()}))
        await probe.publish(subjects.bar("BINANCE", "BTCUSDT", "1m"), bar(1, "41000"))
        await probe.publish(subjects.execution_watermark("BINANCE"), ExecutionWatermark(
            id=new_id(), ts_event=MINUTE, ts_init=0, venue="BINANCE"))
        async with asyncio.timeout(15):
            while not any(isinstance(m, PortfolioSnapshot) and m.as_of == MINUTE for _, m in snaps.items):
                snaps.changed.clear()
                await snaps.changed.wait()
        positions = (await stack.get("ledger", "/v1/positions")).json()
        fills = (await stack.get("ledger", "/v1/fills")).json()
    finally:
        await stack.close()
    last = snaps.items[-1][1]
    assert isinstance(last, PortfolioSnapshot)
    assert last.positions == (PositionSnapshot(instrument_id=BTC, quantity=Decimal("0.1"), avg_price=Decimal("40000"),
                                               last_price=Decimal("41000"), realized_pnl=Decimal("-4"),
                                               unrealized_pnl=Decimal("100")),)
    assert last.cash == Decimal("10000") - Decimal("4000") - Decimal("4")
    assert len(fills) == 1 and Decimal(positions["equity"]) == Decimal("10096")
