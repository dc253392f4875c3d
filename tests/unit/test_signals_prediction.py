"""The signals service routes quotes, book snapshots and deltas (kept as one local book per instrument) and
market resolutions to the strategies that ask for them, on the in-memory bus; bar-only configurations
subscribe to nothing new; ``prediction_edge`` publishes a valid, deterministic Signal from a book."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal as D
from pathlib import Path

import pytest

from tradewire_common import subjects
from tradewire_common.bus import Envelope, MemoryBroker, MemoryBus
from tradewire_common.config import Config, InstrumentSpec, RiskConfig, SignalsConfig, StrategyConfig
from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    Bar,
    BookDelta,
    BookLevel,
    BookSnapshot,
    MarketResolved,
    Message,
    OrderType,
    OutcomePayout,
    Quote,
    Side,
    Signal,
    StrategyError,
)
from tradewire_signals.prediction.book import LocalBook
from tradewire_signals.service import SignalsService
from tradewire_signals.strategy import Intent, Strategy, StrategyParams, register

YES, NO = "M-YES.KALSHI", "M-NO.KALSHI"
SPECS = (InstrumentSpec(id=YES, kind="binary", market_id="M", complement=NO),
         InstrumentSpec(id=NO, kind="binary", market_id="M", complement=YES))


class RecorderParams(StrategyParams, frozen=True):
    pass


@register("test_book_recorder")
class BookRecorder(Strategy[RecorderParams]):
    """Records what the service hands it: (instrument, best bid, best ask) per book change; resolutions."""

    params_type = RecorderParams
    market_data = frozenset({"quotes", "books", "resolutions"})
    seen: list[tuple[str, list[tuple[D, D]], list[tuple[D, D]]]] = []
    resolutions: list[str] = []

    def on_bar(self, bar: Bar) -> Intent | None:
        return None

    def on_book(self, instrument_id: str, books: Mapping[str, LocalBook]) -> Sequence[Intent]:
        book = books[instrument_id]
        type(self).seen.append((instrument_id, book.bid_levels(), book.ask_levels()))
        return ()

    def on_resolution(self, resolved: MarketResolved) -> Sequence[Intent]:
        type(self).resolutions.append(resolved.market_id)
        return ()


@dataclass
class Harness:
    service: SignalsService
    feed: MemoryBus
    seen: list[Message]

    async def send(self, subject: str, *messages: Message) -> None:
        for message in messages:
            await self.feed.publish(subject, message)
        assert await self.feed.wait_idle(10), "the signals service did not go quiet"

    def signals(self) -> list[Signal]:
        return [m for m in self.seen if isinstance(m, Signal)]


async def harness_for(*strategies: StrategyConfig) -> Harness:
    broker = MemoryBroker()
    config = Config(signals=SignalsConfig(strategies=strategies), risk=RiskConfig(instruments=SPECS))
    service = SignalsService(config, MemoryBus("signals", broker))
    seen: list[Message] = []

    async def collect(envelope: Envelope) -> None:
        seen.append(envelope.message)

    probe = MemoryBus("probe", broker)
    await probe.subscribe(subjects.ALL_SIGNALS, collect)
    await probe.subscribe(subjects.ALL_STRATEGY_ERRORS, collect)
    await service.start()
    return Harness(service, MemoryBus("feed", broker), seen)


@pytest.fixture
async def recorder() -> AsyncIterator[Harness]:
    BookRecorder.seen, BookRecorder.resolutions = [], []
    h = await harness_for(StrategyConfig(id="rec", kind="test_book_recorder", instruments=(YES, NO)))
    yield h
    await h.service.stop()


def snapshot(iid: str, bids: list[tuple[str, int]], asks: list[tuple[str, int]], seq: int, ts: int = 1) -> BookSnapshot:
    return BookSnapshot(id=derive_id("snap", iid, seq), ts_event=ts, ts_init=ts, instrument_id=iid, sequence=seq,
                        bids=tuple(BookLevel(D(p), D(s)) for p, s in bids),
                        asks=tuple(BookLevel(D(p), D(s)) for p, s in asks))


def delta(iid: str, side: Side, price: str, size: int, seq: int) -> BookDelta:
    return BookDelta(id=derive_id("delta", iid, seq), ts_event=seq, ts_init=seq, instrument_id=iid, side=side,
                     price=D(price), size=D(size), sequence=seq)


BOOK_SUBJECT = subjects.book("KALSHI", "M-YES")


async def test_snapshot_and_deltas_are_kept_as_one_local_book(recorder: Harness) -> None:
    await recorder.send(BOOK_SUBJECT, snapshot(YES, [("0.40", 10), ("0.39", 5)], [("0.42", 7)], seq=10),
                        delta(YES, Side.BUY, "0.41", 3, 11),    # a better bid
                        delta(YES, Side.BUY, "0.40", 0, 12),    # a level deleted
                        delta(YES, Side.SELL, "0.42", 2, 13))   # an ask resized
    assert BookRecorder.seen[-1] == (YES, [(D("0.41"), D(3)), (D("0.39"), D(5))], [(D("0.42"), D(2))])
    assert len(BookRecorder.seen) == 4


async def test_a_sequence_gap_leaves_the_book_stale_until_the_next_snapshot(recorder: Harness) -> None:
    await recorder.send(BOOK_SUBJECT, snapshot(YES, [("0.40", 10)], [("0.42", 7)], seq=1),
                        delta(YES, Side.BUY, "0.41", 3, 1),     # a repeat: ignored
                        delta(YES, Side.BUY, "0.41", 3, 3))     # 2 is missing: stale
    assert len(BookRecorder.seen) == 1
    await recorder.send(BOOK_SUBJECT, delta(YES, Side.BUY, "0.30", 1, 4))  # still stale
    assert len(BookRecorder.seen) == 1
    await recorder.send(BOOK_SUBJECT, snapshot(YES, [("0.35", 4)], [("0.45", 4)], seq=9),
                        delta(YES, Side.SELL, "0.44", 1, 10))
    assert BookRecorder.seen[-1] == (YES, [(D("0.35"), D(4))], [(D("0.44"), D(1)), (D("0.45"), D(4))])


async def test_a_quote_is_a_one_level_book_unless_the_instrument_has_a_snapshot_book(recorder: Harness) -> None:
    quote = Quote(id=derive_id("q", 1), ts_event=1, ts_init=1, instrument_id=NO, bid=D("0.55"), ask=D("0.57"),
                  bid_size=D(8), ask_size=D(9))
    await recorder.send(subjects.quote("KALSHI", "M-NO"), quote)
    assert BookRecorder.seen == [(NO, [(D("0.55"), D(8))], [(D("0.57"), D(9))])]
    await recorder.send(BOOK_SUBJECT, snapshot(YES, [("0.40", 1)], [("0.42", 1)], seq=1))
    await recorder.send(subjects.quote("KALSHI", "M-YES"), Quote(
        id=derive_id("q", 2), ts_event=2, ts_init=2, instrument_id=YES, bid=D("0.10"), ask=D("0.90"),
        bid_size=D(1), ask_size=D(1)))
    assert BookRecorder.seen[-1] == (YES, [(D("0.40"), D(1))], [(D("0.42"), D(1))])  # the quote was not applied


async def test_resolutions_reach_strategies_that_ask_for_them(recorder: Harness) -> None:
    resolved = MarketResolved(id=derive_id("res", "M"), ts_event=5, ts_init=5, venue="KALSHI", market_id="M",
                              resolution="YES", payouts=(OutcomePayout(instrument_id=YES, payout=D(1)),))
    await recorder.send(subjects.resolution("KALSHI"), resolved)
    assert BookRecorder.resolutions == ["M"]


async def test_bar_only_strategies_subscribe_to_bars_alone() -> None:
    h = await harness_for(StrategyConfig(id="sma", kind="sma_cross", instruments=("BTCUSDT.BINANCE",)))
    try:
        assert set(h.service.bus.stats.consumed) == {subjects.ALL_BARS}
    finally:
        await h.service.stop()


async def test_prediction_edge_publishes_a_deterministic_limit_signal_from_a_book_and_stops_at_resolution(
    tmp_path: Path,
) -> None:
    (tmp_path / "p.toml").write_text("[estimates.M]\nprobability = 0.7\nconfidence = 0.9\n")
    h = await harness_for(StrategyConfig(id="edge", kind="prediction_edge", instruments=(YES,), params={
        "model_source": str(tmp_path / "p.toml"), "min_edge": "0.05", "contracts": "20"}))
    try:
        snap = snapshot(YES, [("0.50", 10)], [("0.55", 10), ("0.60", 30)], seq=1, ts=1_000)
        await h.send(BOOK_SUBJECT, snap)
        [signal] = h.signals()
        # 20 contracts: (10 * 0.55 + 10 * 0.60) / 20 = 0.575; Kalshi fee ceil(0.07 * 20 * 0.575 * 0.425) = 0.35,
        # 0.0175 a contract: edge 0.7 - 0.575 - 0.0175 = 0.1075
        assert signal.id == derive_id("signal", "edge", snap.id, 0) and signal.correlation_id == snap.id
        assert (signal.instrument_id, signal.side, signal.price, signal.order_type, signal.limit_price) == (
            YES, Side.BUY, D("0.575"), OrderType.LIMIT, D("0.60"))
        assert signal.win_probability == 0.7 and signal.ts_event == 1_000 and "edge 0.1075" in signal.reason
        await h.send(subjects.resolution("KALSHI"), MarketResolved(
            id=derive_id("res", "M"), ts_event=2_000, ts_init=2_000, venue="KALSHI", market_id="M", resolution="NO",
            payouts=(OutcomePayout(instrument_id=YES, payout=D(0)), OutcomePayout(instrument_id=NO, payout=D(1)))))
        # NO at 1 - 0.90 = 0.10 against p(NO) 0.3 would be a large edge, but the market is over
        await h.send(BOOK_SUBJECT, snapshot(YES, [("0.90", 100)], [("0.95", 100)], seq=2, ts=3_000))
        assert len(h.signals()) == 1
        assert not [m for m in h.seen if isinstance(m, StrategyError)]
    finally:
        await h.service.stop()


async def test_a_strategy_that_raises_on_a_book_becomes_a_strategy_error(recorder: Harness) -> None:
    def boom(instrument_id: str, books: Mapping[str, LocalBook]) -> Sequence[Intent]:
        raise RuntimeError("bad book code")

    strategy = recorder.service.strategies[0][0]
    strategy.on_book = boom  # type: ignore[method-assign]
    await recorder.send(BOOK_SUBJECT, snapshot(YES, [("0.40", 1)], [("0.42", 1)], seq=1))
    [error] = [m for m in recorder.seen if isinstance(m, StrategyError)]
    assert (error.strategy_id, error.error_type, error.instrument_id) == ("rec", "RuntimeError", YES)
