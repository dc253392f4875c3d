"""The ledger on a live pipeline without bars: quotes and books mark positions at the mid and move the snapshot
watermark, so risk finds a snapshot covering a prediction signal's time; a busy quote stream publishes at most
one snapshot per second of event time, plus one for each signal the published snapshots do not cover yet."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from tradewire_common import subjects
from tradewire_common.bus import Envelope, MemoryBroker, MemoryBus
from tradewire_common.config import Config, LedgerConfig
from tradewire_common.ids import derive_id, split_instrument_id
from tradewire_common.nats_auth import role_permissions
from tradewire_common.schemas import (
    Bar,
    BookDelta,
    BookLevel,
    BookSnapshot,
    ExecutionWatermark,
    Liquidity,
    Message,
    OrderFilled,
    PortfolioSnapshot,
    Quote,
    Side,
    Signal,
)
from tradewire_ledger.service import QUOTE_SNAPSHOT_EVERY_NS, LedgerService
from tradewire_ledger.store import SqliteLedgerStore

D = Decimal
YES = "KXRAIN-25NOV-YES.KALSHI"
MS = 1_000_000
T0 = 1_764_000_000_000_000_000
_n = itertools.count(1)


class Ledger:
    """A ledger on an in-memory broker; records every snapshot it publishes."""

    def __init__(self, tmp: Path) -> None:
        self.broker = MemoryBroker()
        self.service = LedgerService(Config(ledger=LedgerConfig(starting_cash=D(1000))),
                                     MemoryBus("ledger", self.broker), store=SqliteLedgerStore(tmp / "l.db"))
        self.feed = MemoryBus("feed", self.broker)
        self.snapshots: list[PortfolioSnapshot] = []

    async def on_snapshot(self, envelope: Envelope) -> None:
        assert isinstance(envelope.message, PortfolioSnapshot)
        self.snapshots.append(envelope.message)

    async def send(self, *messages: Message) -> None:
        for m in messages:
            await self.feed.publish(subject_of(m), m)
            assert await self.feed.wait_idle(10)

    @property
    def as_of(self) -> list[int]:
        return [s.as_of for s in self.snapshots]


def subject_of(m: Message) -> str:
    if isinstance(m, Quote):
        return subjects.quote("KALSHI", split_instrument_id(m.instrument_id)[0])
    if isinstance(m, BookSnapshot | BookDelta):
        return subjects.book("KALSHI", split_instrument_id(m.instrument_id)[0])
    if isinstance(m, Signal):
        return subjects.signal(m.strategy_id)
    if isinstance(m, ExecutionWatermark):
        return subjects.execution_watermark(m.venue)
    if isinstance(m, Bar):
        return subjects.bar("BINANCE", split_instrument_id(m.instrument_id)[0], "1m")
    return subjects.order_event("pm_edge")


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    led = Ledger(tmp_path)
    await led.feed.subscribe(subjects.PORTFOLIO_SNAPSHOT, led.on_snapshot)
    await led.service.start()
    yield led
    await led.service.stop()


def quote(bid: str, ask: str, ts: int, instrument: str = YES) -> Quote:
    return Quote(id=derive_id("q", instrument, ts, bid, ask), ts_event=ts, ts_init=ts, instrument_id=instrument,
                 bid=D(bid), ask=D(ask), bid_size=D(10), ask_size=D(10))


def book(bids: list[str], asks: list[str], ts: int) -> BookSnapshot:
    return BookSnapshot(id=derive_id("b", ts, *bids, *asks), ts_event=ts, ts_init=ts, instrument_id=YES,
                        bids=tuple(BookLevel(D(p), D(5)) for p in bids),
                        asks=tuple(BookLevel(D(p), D(5)) for p in asks))


def signal(ts: int) -> Signal:
    return Signal(id=derive_id("sig", ts), ts_event=ts, ts_init=ts, strategy_id="pm_edge", instrument_id=YES,
                  side=Side.BUY, price=D("0.45"), confidence=1.0, reason="edge", win_probability=0.6)


def bought(qty: str, px: str, ts: int) -> OrderFilled:
    n = next(_n)
    return OrderFilled(id=derive_id("f", n), ts_event=ts, ts_init=ts, strategy_id="pm_edge", instrument_id=YES,
                       client_order_id=f"tw-{n}", venue_order_id=f"v-{n}", trade_id=f"t-{n}", side=Side.BUY,
                       last_qty=D(qty), last_px=D(px), fee=D(0), fee_currency="USD", liquidity=Liquidity.TAKER,
                       partial=False)


async def test_a_quote_alone_publishes_a_snapshot_covering_its_time(ledger: Ledger) -> None:
    await ledger.send(quote("0.40", "0.44", T0))
    assert ledger.as_of == [T0]


async def test_a_position_is_marked_at_the_quote_mid(ledger: Ledger) -> None:
    await ledger.send(bought("100", "0.44", T0), quote("0.50", "0.56", T0 + 2_000 * MS))
    last = ledger.snapshots[-1]
    assert last.as_of == T0 + 2_000 * MS
    (pos,) = last.positions
    assert pos.last_price == D("0.53") and pos.unrealized_pnl == D(9)  # 100 * (0.53 - 0.44)
    assert last.equity == D(1000) - 44 + 53


async def test_a_busy_quote_stream_publishes_one_snapshot_per_second_of_event_time(ledger: Ledger) -> None:
    # 250 quotes, 10 ms apart: 2.49 s of event time
    await ledger.send(*(quote("0.40", f"0.{41 + n % 2}", T0 + n * 10 * MS) for n in range(250)))
    assert ledger.as_of == [T0, T0 + QUOTE_SNAPSHOT_EVERY_NS, T0 + 2 * QUOTE_SNAPSHOT_EVERY_NS]
    # the watermark itself follows every quote (the next snapshot starts there)
    assert ledger.service.portfolio.as_of == T0 + 2_490 * MS


async def test_a_signal_between_throttled_quotes_gets_a_snapshot_covering_it_at_once(ledger: Ledger) -> None:
    await ledger.send(quote("0.40", "0.44", T0), quote("0.41", "0.44", T0 + 300 * MS))
    assert ledger.as_of == [T0]  # throttled
    await ledger.send(signal(T0 + 300 * MS))
    assert ledger.as_of == [T0, T0 + 300 * MS]


async def test_a_signal_recorded_before_its_quote_is_covered_when_the_quote_arrives(ledger: Ledger) -> None:
    await ledger.send(quote("0.40", "0.44", T0), signal(T0 + 300 * MS))
    assert ledger.as_of == [T0]  # the ledger has not seen market data at the signal's time yet
    await ledger.send(quote("0.41", "0.44", T0 + 200 * MS))
    assert ledger.as_of == [T0]
    await ledger.send(quote("0.42", "0.44", T0 + 300 * MS))
    assert ledger.as_of == [T0, T0 + 300 * MS]


async def test_an_older_signal_is_covered_even_while_a_newer_one_waits_for_its_market_data(ledger: Ledger) -> None:
    await ledger.send(quote("0.40", "0.44", T0), quote("0.41", "0.44", T0 + 300 * MS))
    await ledger.send(signal(T0 + 600 * MS))  # its quote has not reached the ledger yet
    assert ledger.as_of == [T0]
    await ledger.send(signal(T0 + 300 * MS))  # another instrument's, whose market data is in
    assert ledger.as_of == [T0, T0 + 300 * MS]
    await ledger.send(quote("0.42", "0.44", T0 + 600 * MS))
    assert ledger.as_of == [T0, T0 + 300 * MS, T0 + 600 * MS]
    assert ledger.service.uncovered_signals == [T0 + 600 * MS]  # popped once a later snapshot covers it
    await ledger.send(quote("0.43", "0.44", T0 + 700 * MS))
    assert ledger.as_of == [T0, T0 + 300 * MS, T0 + 600 * MS] and ledger.service.uncovered_signals == []


async def test_books_mark_at_the_top_mid_and_deltas_and_one_sided_books_move_only_the_watermark(
        ledger: Ledger) -> None:
    await ledger.send(bought("10", "0.30", T0))
    await ledger.send(book(["0.35", "0.30"], ["0.39", "0.45"], T0 + 1_000 * MS))
    assert ledger.snapshots[-1].positions[0].last_price == D("0.37")
    await ledger.send(book(["0.36"], [], T0 + 2_000 * MS))  # one side empty: no mark
    assert ledger.snapshots[-1].as_of == T0 + 2_000 * MS
    assert ledger.snapshots[-1].positions[0].last_price == D("0.37")
    delta = BookDelta(id=derive_id("d", 1), ts_event=T0 + 3_000 * MS, ts_init=T0, instrument_id=YES,
                      side=Side.BUY, price=D("0.36"), size=D(0))
    await ledger.send(delta)
    assert ledger.snapshots[-1].as_of == T0 + 3_000 * MS


async def test_a_venue_marked_by_bars_still_holds_the_watermark_at_its_execution_watermark(
        ledger: Ledger) -> None:
    # BINANCE is the executing venue of the default config: its bars make the ledger wait for its watermarks
    bar = Bar(id=derive_id("bar", 1), ts_event=T0, ts_init=T0, instrument_id="BTCUSDT.BINANCE", interval="1m",
              open=D(100), high=D(100), low=D(100), close=D(100), volume=D(1))
    wm = ExecutionWatermark(id=derive_id("wm", 1), ts_event=T0, ts_init=T0, venue="BINANCE")
    await ledger.send(bar, wm, quote("0.40", "0.44", T0 + 5_000 * MS))
    assert ledger.service.portfolio.as_of == T0 and ledger.as_of == [T0]


async def test_the_same_messages_publish_the_same_snapshots(tmp_path: Path) -> None:
    messages = [quote("0.40", "0.44", T0), bought("5", "0.44", T0 + 1 * MS),
                *(quote("0.40", f"0.{43 + n % 2}", T0 + n * 70 * MS) for n in range(1, 40)),
                signal(T0 + 2_500 * MS), quote("0.39", "0.45", T0 + 3_100 * MS)]
    runs: list[list[str]] = []
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        led = Ledger(tmp_path / run)
        await led.feed.subscribe(subjects.PORTFOLIO_SNAPSHOT, led.on_snapshot)
        await led.service.start()
        try:
            await led.send(*messages)
        finally:
            await led.service.stop()
        runs.append([s.id for s in led.snapshots])
    # T0, the fill, 1.05 s and 2.1 s (rule a), the signal at 2.5 s with the watermark at 2.73 s (rule b)
    assert runs[0] == runs[1] and len(runs[0]) == 5


def test_the_ledgers_nats_user_may_subscribe_to_quotes_and_books() -> None:
    ledger = role_permissions("ledger")
    symbol = "KXRAIN-25NOV-YES"
    assert ledger.may_subscribe(subjects.ALL_QUOTES) and ledger.may_subscribe(subjects.ALL_BOOKS)
    assert ledger.may_subscribe(subjects.quote("KALSHI", symbol))
    assert ledger.may_subscribe(subjects.book("KALSHI", symbol))
    assert not ledger.may_subscribe(subjects.trade("KALSHI", symbol))  # trades do not mark
