"""Over a real nats-server: a Kalshi order book reaches the signals service, ``prediction_edge`` finds an edge
after the fee at the book's depth, and risk turns the signal into a LIMIT order sized by binary Kelly (half
Kelly by default), computed here independently; a resolution then stops the strategy."""

from __future__ import annotations

import asyncio
import math
from decimal import Decimal as D
from fractions import Fraction
from pathlib import Path

import pytest

from tests.support.inproc import InProcessStack
from tests.support.nats_server import NatsServer
from tradewire_common import subjects
from tradewire_common.bus import Envelope
from tradewire_common.config import load_config
from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    BookLevel,
    BookSnapshot,
    MarketResolved,
    Message,
    OrderDenied,
    OrderType,
    OutcomePayout,
    Side,
    Signal,
    SubmitOrder,
)
from tradewire_common.service import nats_bus_for

YES, NO = "KXRATE-25DEC-YES.KALSHI", "KXRATE-25DEC-NO.KALSHI"

CONFIG = """
[[signals.strategies]]
id = "pm_edge"
kind = "prediction_edge"
instruments = ["{yes}"]
params = {{ model = "static", model_source = "{model}", min_edge = "0.05", contracts = "20" }}

[risk]
sizing = "binary_kelly"
max_position_pct = 0.5
max_exposure_pct = 1.0

[[risk.instruments]]
id = "{yes}"
kind = "binary"
market_id = "KXRATE-25DEC"
complement = "{no}"
quantity_step = "1"
min_quantity = "1"
price_tick = "0.01"

[[risk.instruments]]
id = "{no}"
kind = "binary"
market_id = "KXRATE-25DEC"
complement = "{yes}"
quantity_step = "1"
min_quantity = "1"
price_tick = "0.01"

[ledger]
backend = "sqlite"
path = "{ledger}"
starting_cash = "10000"
currency = "USD"
"""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    (tmp_path / "model.toml").write_text('[estimates."KXRATE-25DEC"]\nprobability = 0.7\nconfidence = 0.9\n')
    path = tmp_path / "tw.toml"
    path.write_text(CONFIG.format(yes=YES, no=NO, model=tmp_path / "model.toml", ledger=tmp_path / "ledger.db"))
    return path


def snapshot(seq: int, ts: int, bids: list[tuple[str, int]], asks: list[tuple[str, int]]) -> BookSnapshot:
    return BookSnapshot(id=derive_id("pipeline-book", seq), ts_event=ts, ts_init=ts, instrument_id=YES, sequence=seq,
                        bids=tuple(BookLevel(D(p), D(s)) for p, s in bids),
                        asks=tuple(BookLevel(D(p), D(s)) for p, s in asks))


async def test_an_edge_on_a_kalshi_book_becomes_a_binary_kelly_sized_limit_order(
    config_path: Path, fresh_nats: NatsServer
) -> None:
    config = load_config(config_path, environ={})
    stack = InProcessStack(config, fresh_nats.url)
    await stack.start(("ledger", "risk", "signals"))
    probe = nats_bus_for("probe", config, fresh_nats.url)
    await probe.connect()
    seen: list[Message] = []

    async def collect(envelope: Envelope) -> None:
        seen.append(envelope.message)

    try:
        await probe.subscribe(subjects.ALL_SIGNALS, collect)
        await probe.subscribe(subjects.ALL_ORDER_COMMANDS, collect)
        await probe.subscribe(subjects.ALL_ORDER_EVENTS, collect)
        ts = 1_765_000_000_000_000_000
        # no bars: the ledger's snapshot watermark follows the book (risk sizes with a snapshot covering its time)
        # YES asks 10 @ 0.55 and 30 @ 0.60: 20 contracts cost 0.575 on average; Kalshi's fee
        # ceil(0.07 * 20 * 0.575 * 0.425) = 0.35, 0.0175 a contract; edge 0.7 - 0.575 - 0.0175 = 0.1075 > 0.05
        await probe.publish(subjects.book("KALSHI", "KXRATE-25DEC-YES"),
                            snapshot(1, ts, [("0.50", 10)], [("0.55", 10), ("0.60", 30)]))
        async with asyncio.timeout(15):
            while not any(isinstance(m, SubmitOrder | OrderDenied) for m in seen):
                await asyncio.sleep(0.02)
        assert not [m for m in seen if isinstance(m, OrderDenied)]
        [signal] = [m for m in seen if isinstance(m, Signal)]
        [order] = [m for m in seen if isinstance(m, SubmitOrder)]
        # the signal's price: the payable 0.575 rounded up to the 0.01 tick (risk takes prices on the grid only)
        assert (signal.price, signal.win_probability, signal.limit_price) == (D("0.58"), 0.7, D("0.60"))
        assert "price 0.575" in signal.reason and "fee 0.0175" in signal.reason
        # binary Kelly: (p - price) / (1 - price) * 0.5 of equity 10000, in contracts at the signal's price
        kelly = (Fraction("0.7") - Fraction("0.58")) / (1 - Fraction("0.58")) * Fraction(1, 2)
        expected = math.floor(10_000 * kelly / Fraction("0.58"))
        assert expected == 2463
        assert (order.instrument_id, order.side, order.order_type, order.limit_price, order.quantity) == (
            YES, Side.BUY, OrderType.LIMIT, D("0.60"), D(expected))
        assert order.strategy_id == "pm_edge" and order.correlation_id == signal.correlation_id

        await probe.publish(subjects.resolution("KALSHI"), MarketResolved(
            id=derive_id("resolution", "KALSHI", "KXRATE-25DEC"), ts_event=ts + 1, ts_init=ts + 1, venue="KALSHI",
            market_id="KXRATE-25DEC", resolution="NO",
            payouts=(OutcomePayout(instrument_id=YES, payout=D(0)), OutcomePayout(instrument_id=NO, payout=D(1)))))
        # a book that would be a large NO edge (1 - 0.90 = 0.10 against p(NO) 0.3) after the resolution
        await probe.publish(subjects.book("KALSHI", "KXRATE-25DEC-YES"),
                            snapshot(2, ts + 2, [("0.90", 100)], [("0.95", 100)]))
        signals_service = stack.service("signals")
        async with asyncio.timeout(10):  # the strategy has seen the later book (its local copy is updated)
            while signals_service.books[YES].sequence != 2:  # type: ignore[attr-defined]
                await asyncio.sleep(0.02)
        assert len([m for m in seen if isinstance(m, Signal)]) == 1
    finally:
        await probe.close()
        await stack.close()
