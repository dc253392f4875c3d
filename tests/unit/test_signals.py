"""The signals service and its SMA crossover strategy.

The crossings are checked against an independent computation in exact rational arithmetic
(``fractions.Fraction``) on the demo data; the plugin rules (parameters fail at start naming the
field, unknown kinds list the known ones, user strategies registered with ``@register``) and the
failure isolation (a strategy that raises becomes a ``StrategyError`` event, the rest carries on)
run the real ``SignalsService`` on the in-memory bus.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Annotated, Any

import msgspec
import pytest
from msgspec import Meta

from tests.support.stack import DEMO_CSV
from tradewire_common import subjects
from tradewire_common.bus import Envelope, MemoryBroker, MemoryBus
from tradewire_common.config import Config, SignalsConfig, StrategyConfig
from tradewire_common.ids import derive_id
from tradewire_common.schemas import Bar, Message, OrderType, Side, Signal, StrategyError, TimeInForce
from tradewire_signals.service import SignalsService
from tradewire_signals.sma_cross import SmaCross, SmaCrossParams
from tradewire_signals.strategy import Intent, Strategy, StrategyParams, build_strategy, register

BTC = "BTCUSDT.BINANCE"
ETH = "ETHUSDT.BINANCE"
MINUTE = 60_000_000_000
DEMO_BARS = 3000
FAST, SLOW = 10, 30


# --- helpers ------------------------------------------------------------------------------------


def flat_bar(i: int, close: str | Decimal, *, instrument: str = BTC, interval: str = "1m") -> Bar:
    """A bar whose open, high, low and close are all ``close`` (ids unique per instrument and i)."""
    c = Decimal(close)
    return Bar(id=derive_id("test-signals-bar", instrument, interval, i), ts_event=i * MINUTE, ts_init=i * MINUTE,
               instrument_id=instrument, interval=interval, open=c, high=c, low=c, close=c, volume=Decimal(1),
               seq=i)


def read_demo(limit: int) -> tuple[list[Bar], list[Fraction]]:
    """The first ``limit`` rows of the demo file, as Bars and (independently) as exact closes."""
    bars: list[Bar] = []
    closes: list[Fraction] = []
    with DEMO_CSV.open(newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            if i == limit:
                break
            ts = int(datetime.strptime(row["timestamp"], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC).timestamp())
            bars.append(Bar(
                id=derive_id("test-signals-demo", i), ts_event=ts * 1_000_000_000, ts_init=ts * 1_000_000_000,
                instrument_id=BTC, interval="1m", open=Decimal(row["open"]), high=Decimal(row["high"]),
                low=Decimal(row["low"]), close=Decimal(row["close"]), volume=Decimal(row["volume"]), seq=i,
            ))
            closes.append(Fraction(row["close"]))
    assert len(bars) == limit
    return bars, closes


def reference_crossings(closes: Sequence[Fraction], fast: int = FAST, slow: int = SLOW) -> dict[int, Side]:
    """Index of every bar on which SMA``fast`` crosses SMA``slow``, in exact rationals.

    A cross needs both averages on the previous bar too: above means fast > slow now and
    fast <= slow before (equal counts as "not above"), below the mirror image.
    """
    out: dict[int, Side] = {}
    prev: int | None = None
    for i in range(slow - 1, len(closes)):
        fast_avg = sum(closes[i - fast + 1 : i + 1], Fraction(0)) / fast
        slow_avg = sum(closes[i - slow + 1 : i + 1], Fraction(0)) / slow
        sign = (fast_avg > slow_avg) - (fast_avg < slow_avg)
        if prev is not None and prev <= 0 < sign:
            out[i] = Side.BUY
        elif prev is not None and prev >= 0 > sign:
            out[i] = Side.SELL
        prev = sign
    return out


def sma(params: dict[str, Any] | None = None) -> SmaCross:
    strategy = build_strategy(StrategyConfig(id="sma", kind="sma_cross", instruments=(BTC, ETH),
                                             params=params or {"fast": FAST, "slow": SLOW}))
    assert isinstance(strategy, SmaCross)
    return strategy


def run_strategy(strategy: Strategy[Any], bars: Iterable[Bar]) -> dict[int, Intent]:
    return {bar.seq: intent for bar in bars if (intent := strategy.on_bar(bar)) is not None}


def strategy_config(sid: str, kind: str, params: dict[str, int | float | str | bool] | None = None,
                    instruments: tuple[str, ...] = (BTC,)) -> StrategyConfig:
    return StrategyConfig(id=sid, kind=kind, instruments=instruments, params=params or {})


class Collector:
    """Every message seen on the subjects it is subscribed to (core: duplicates included)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Message]] = []

    async def __call__(self, envelope: Envelope) -> None:
        self.items.append((envelope.subject, envelope.message))

    def signals(self, strategy_id: str | None = None) -> list[Signal]:
        return [m for _, m in self.items
                if isinstance(m, Signal) and (strategy_id is None or m.strategy_id == strategy_id)]

    def errors(self) -> list[StrategyError]:
        return [m for _, m in self.items if isinstance(m, StrategyError)]


@dataclass
class Harness:
    broker: MemoryBroker
    service: SignalsService
    feed: MemoryBus
    probe: MemoryBus
    seen: Collector

    async def send(self, bars: Iterable[Bar]) -> None:
        for bar in bars:
            symbol, venue = bar.instrument_id.rsplit(".", 1)
            await self.feed.publish(subjects.bar(venue, symbol, bar.interval), bar)
        assert await self.feed.wait_idle(30), "the signals service did not go quiet"

    async def close(self) -> None:
        await self.service.stop()
        await self.probe.close()


async def start_harness(*strategies: StrategyConfig) -> Harness:
    broker = MemoryBroker()
    config = Config(signals=SignalsConfig(strategies=strategies))
    service = SignalsService(config, MemoryBus("signals", broker))
    seen = Collector()
    probe = MemoryBus("probe", broker)
    await probe.subscribe(subjects.ALL_SIGNALS, seen)
    await probe.subscribe(subjects.ALL_STRATEGY_ERRORS, seen)
    await service.start()
    return Harness(broker, service, MemoryBus("feed", broker), probe, seen)


@pytest.fixture
async def demo_harness() -> AsyncIterator[Harness]:
    harness = await start_harness(strategy_config("sma_cross", "sma_cross", {"fast": FAST, "slow": SLOW}))
    yield harness
    await harness.close()


# --- user strategies for the plugin tests ---------------------------------------------------------


class EveryBarParams(StrategyParams, frozen=True):
    side: Side = Side.BUY
    confidence: Annotated[float, Meta(ge=0, le=1)] = 0.25


@register("test_every_bar")
class EveryBar(Strategy[EveryBarParams]):
    """Emits on every bar (a user strategy, registered from outside the signals package)."""

    params_type = EveryBarParams

    def on_bar(self, bar: Bar) -> Intent | None:
        return Intent(self.params.side, self.params.confidence, f"bar {bar.seq}")


class FlakyParams(StrategyParams, frozen=True):
    #: raise on every bar whose seq is a multiple of this
    fail_every: int = 2


@register("test_flaky")
class Flaky(Strategy[FlakyParams]):
    """Raises on some bars, emits a SELL on the others."""

    params_type = FlakyParams

    def on_bar(self, bar: Bar) -> Intent | None:
        if bar.seq % self.params.fail_every == 0:
            raise RuntimeError(f"boom on bar {bar.seq}")
        return Intent(Side.SELL, 0.5, "survived")


class BadIntentParams(StrategyParams, frozen=True):
    mistake: str = "confidence"


@register("test_bad_intent")
class BadIntent(Strategy[BadIntentParams]):
    """Returns an intent that breaks the wire contract, without raising itself."""

    params_type = BadIntentParams

    def on_bar(self, bar: Bar) -> Intent | None:
        if self.params.mistake == "confidence":
            return Intent(Side.BUY, 2.0, "too sure")
        if self.params.mistake == "float_target":
            return Intent(Side.BUY, 0.5, "float target", target=0.5)  # type: ignore[arg-type]
        if self.params.mistake == "side":
            return Intent("HOLD", 0.5, "not a side")  # type: ignore[arg-type]
        raise AssertionError(self.params.mistake)


# --- SMA crossover: the rule ---------------------------------------------------------------------


async def test_sma_cross_signals_exactly_where_exact_averages_cross_on_3000_demo_bars(
    demo_harness: Harness,
) -> None:
    bars, closes = read_demo(DEMO_BARS)
    expected = reference_crossings(closes)
    assert len(expected) > 50  # the data really does cross, both ways
    assert {Side.BUY, Side.SELL} == set(expected.values())

    await demo_harness.send(bars)

    signals = demo_harness.seen.signals()
    index_of = {bar.id: i for i, bar in enumerate(bars)}
    by_index = {index_of[s.correlation_id]: s for s in signals}
    assert len(by_index) == len(signals)  # one signal per crossing bar, never two
    assert {i: s.side for i, s in by_index.items()} == expected
    for i, s in by_index.items():
        assert s.price == bars[i].close and s.ts_event == bars[i].ts_event
        assert s.strategy_id == "sma_cross" and s.instrument_id == BTC
        assert 0.0 <= s.confidence <= 1.0
    assert {subject for subject, _ in demo_harness.seen.items} == {"sig.sma_cross"}
    assert demo_harness.seen.errors() == []


def test_sma_cross_strategy_alone_matches_the_exact_reference_on_the_demo_bars() -> None:
    bars, closes = read_demo(DEMO_BARS)
    intents = run_strategy(sma(), bars)
    assert {i: intent.side for i, intent in intents.items()} == reference_crossings(closes)


def test_no_signal_during_warm_up_even_when_partial_averages_would_cross() -> None:
    # falling, a spike, a collapse: averages over the bars so far (fewer than 30) would cross at
    # bars 10, 12 and 22; the 30th bar only sets the first full-window side
    closes = [str(200 - i) for i in range(12)] + ["1000"] * 3 + ["1"] * 14 + ["500"] + ["1"] * 5
    closes += ["900"] * 10 + ["1"] * 20
    intents = run_strategy(sma(), (flat_bar(i, c) for i, c in enumerate(closes)))
    assert min(intents) >= SLOW
    expected = reference_crossings([Fraction(c) for c in closes])
    assert expected == {36: Side.BUY, 51: Side.SELL}
    assert {i: x.side for i, x in intents.items()} == expected


def test_warm_up_is_per_instrument() -> None:
    strategy = sma()
    btc = [flat_bar(i, str(100 + (i % 7) * 10)) for i in range(60)]
    run_strategy(strategy, btc)  # BTC warmed up
    eth = [flat_bar(i, c, instrument=ETH) for i, c in enumerate([str(200 - i) for i in range(29)] + ["1000"])]
    assert run_strategy(strategy, eth) == {}


def test_equal_averages_are_not_a_cross_and_the_comparison_is_exact_not_float() -> None:
    # Thirty closes of 0.1: the averages are exactly equal, though float sums say otherwise.
    assert sum([0.1] * 10) / 10 != sum([0.1] * 30) / 30
    strategy = sma()
    assert run_strategy(strategy, (flat_bar(i, "0.1") for i in range(30))) == {}
    # equal -> equal: nothing; equal -> above by one unit in the 28th significant digit: BUY
    tiny_up = "0.1000000000000000000000000001"
    assert float(tiny_up) == 0.1  # invisible to a float implementation
    intents = run_strategy(strategy, [flat_bar(30, "0.1"), flat_bar(31, tiny_up)])
    assert [(i, x.side) for i, x in intents.items()] == [(31, Side.BUY)]


def test_averages_equal_to_the_last_digit_of_28_digit_prices_are_compared_exactly() -> None:
    base = "40000.00000000000000000000000"
    up = "40000.00000000000000000000001"  # 28 significant digits, one unit above
    down = "39999.99999999999999999999999"
    closes = [base] * 30 + [up, down, down, up, up]
    expected = reference_crossings([Fraction(c) for c in closes])
    # above by 20e-23 (BUY); back to exactly equal (nothing); below (SELL); equal; above (BUY)
    assert expected == {30: Side.BUY, 32: Side.SELL, 34: Side.BUY}
    intents = run_strategy(sma(), (flat_bar(i, c) for i, c in enumerate(closes)))
    assert {i: x.side for i, x in intents.items()} == expected


def test_confidence_stays_within_0_and_1_for_tiny_and_huge_crossings() -> None:
    tiny = ["40000"] * 30 + ["40000.00000000000000000000001"]
    huge = ["1"] * 30 + ["90000"]
    for closes in (tiny, huge):
        intents = run_strategy(sma(), (flat_bar(i, c) for i, c in enumerate(closes)))
        (intent,) = intents.values()
        assert intent.side is Side.BUY
        assert isinstance(intent.confidence, float) and 0.0 <= intent.confidence <= 1.0
    assert intent.confidence == 1.0  # the huge one saturates


def test_rsi_reversion_is_exact_too_when_a_loss_needs_more_than_28_digits() -> None:
    # RSI2 with lower 50: a gain of 100000 then a loss of 100000 + 1e-24 puts RSI just below 50
    # (BUY); rounded to 28 digits the loss equals the gain and RSI sits exactly on 50 (no signal)
    closes = ["40000", "40000", "40000", "140000", "39999.999999999999999999999999"]
    strategy = build_strategy(strategy_config("rsi", "rsi_reversion", {"window": 2, "lower": 50, "upper": 70}))
    intents = run_strategy(strategy, (flat_bar(i, c) for i, c in enumerate(closes)))
    assert {i: x.side for i, x in intents.items()} == {4: Side.BUY}


# --- plugin rules: parameters, kinds, registration ------------------------------------------------


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"fast": 30, "slow": 10}, ["fast", "slow"]),
        ({"fast": 10, "slow": 10}, ["fast", "slow"]),
        ({"fast": 10, "slow": 30, "window": 5}, ["window"]),
        ({"fast": "ten"}, ["$.fast", "int"]),
        ({"slow": 2.5}, ["$.slow", "int"]),
        ({"fast": True}, ["$.fast"]),
        ({"fast": 0}, ["$.fast"]),
    ],
    ids=["fast-above-slow", "fast-equal-slow", "unknown-key", "text-for-int", "float-for-int", "bool-for-int",
         "fast-zero"],
)
def test_bad_sma_params_fail_at_start_naming_the_field(params: dict[str, Any], names: list[str]) -> None:
    config = strategy_config("sma-btc", "sma_cross", params)
    with pytest.raises(ValueError, match=r"signals\.strategies\[3\] \(sma-btc\): invalid params") as info:
        build_strategy(config, 3)
    for name in names:
        assert name in str(info.value)
    # and the service refuses to start with it
    with pytest.raises(ValueError, match="invalid params"):
        SignalsService(Config(signals=SignalsConfig(strategies=(config,))), MemoryBus("signals", MemoryBroker()))


def test_sma_params_default_to_10_and_30() -> None:
    assert build_strategy(strategy_config("s", "sma_cross")).params == SmaCrossParams(fast=10, slow=30)


def test_unknown_kind_is_refused_listing_the_known_kinds() -> None:
    with pytest.raises(LookupError, match="unknown strategy kind 'sma_crosss'") as info:
        build_strategy(strategy_config("s", "sma_crosss"))
    known = str(info.value).split("known:", 1)[1]
    for kind in ("breakout", "rsi_reversion", "sma_cross", "test_every_bar"):
        assert kind in known


def test_build_strategy_knows_the_built_in_kinds_without_importing_the_service() -> None:
    code = textwrap.dedent("""
        from tradewire_common.config import StrategyConfig
        from tradewire_signals.strategy import build_strategy
        for kind in ("sma_cross", "breakout", "rsi_reversion"):
            print(type(build_strategy(StrategyConfig(id="s", kind=kind, instruments=()))).__name__)
        try:
            build_strategy(StrategyConfig(id="s", kind="nope", instruments=()))
        except LookupError as exc:
            print(exc)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:3] == ["SmaCross", "Breakout", "RsiReversion"]
    assert lines[3] == ("unknown strategy kind 'nope'; known: breakout, prediction_arbitrage, prediction_edge, "
                        "rsi_reversion, sma_cross")


async def test_a_user_strategy_registered_with_the_decorator_is_run_by_the_service() -> None:
    harness = await start_harness(
        strategy_config("mine", "test_every_bar", {"side": "SELL", "confidence": 0.75}),
    )
    try:
        await harness.send(flat_bar(i, "100") for i in range(3))
    finally:
        await harness.close()
    signals = harness.seen.signals("mine")
    assert [(s.side, s.confidence, s.reason) for s in signals] == [(Side.SELL, 0.75, f"bar {i}") for i in range(3)]
    assert {subject for subject, _ in harness.seen.items} == {"sig.mine"}


async def test_strategies_only_see_their_instruments_and_interval() -> None:
    harness = await start_harness(
        StrategyConfig(id="eth-5m", kind="test_every_bar", instruments=(ETH,), interval="5m"),
        StrategyConfig(id="any", kind="test_every_bar", instruments=(BTC, ETH)),
    )
    try:
        await harness.send([flat_bar(0, "100"), flat_bar(1, "100", instrument=ETH),
                            flat_bar(2, "100", instrument=ETH, interval="5m")])
    finally:
        await harness.close()
    assert [s.correlation_id for s in harness.seen.signals("eth-5m")] == [
        flat_bar(2, "100", instrument=ETH, interval="5m").id]
    assert len(harness.seen.signals("any")) == 3


# --- failure isolation -------------------------------------------------------------------------


async def test_a_raising_strategy_becomes_a_strategy_error_and_everything_else_carries_on() -> None:
    harness = await start_harness(
        strategy_config("flaky", "test_flaky", {"fail_every": 2}),
        strategy_config("steady", "test_every_bar"),
    )
    bars = [flat_bar(i, "100") for i in range(5)]
    try:
        await harness.send(bars)
        metrics = harness.service.metrics.render().decode()
        assert harness.service.ready
    finally:
        await harness.close()

    errors = harness.seen.errors()
    assert [e.correlation_id for e in errors] == [bars[0].id, bars[2].id, bars[4].id]
    for error in errors:
        assert error.strategy_id == "flaky" and error.error_type == "RuntimeError"
        assert error.message.startswith("boom on bar") and error.instrument_id == BTC
    err_subjects = [subject for subject, m in harness.seen.items if isinstance(m, StrategyError)]
    assert err_subjects == ["err.strategy.flaky"] * 3
    # later bars still reach the flaky strategy, and the other strategy sees every bar
    assert [s.correlation_id for s in harness.seen.signals("flaky")] == [bars[1].id, bars[3].id]
    assert [s.correlation_id for s in harness.seen.signals("steady")] == [b.id for b in bars]
    assert 'tradewire_signals_strategy_errors_total{strategy="flaky"} 3.0' in metrics
    assert "tradewire_signals_dead_letters_total{" not in metrics  # no bar was dead-lettered


@pytest.mark.parametrize("mistake", ["confidence", "float_target", "side"])
async def test_an_intent_that_breaks_the_wire_contract_is_a_strategy_error_not_a_bad_signal(mistake: str) -> None:
    harness = await start_harness(
        strategy_config("bad", "test_bad_intent", {"mistake": mistake}),
        strategy_config("steady", "test_every_bar"),
    )
    bars = [flat_bar(i, "100") for i in range(2)]
    try:
        await harness.send(bars)
        metrics = harness.service.metrics.render().decode()
    finally:
        await harness.close()
    assert harness.seen.signals("bad") == []
    assert [e.correlation_id for e in harness.seen.errors()] == [b.id for b in bars]
    assert [s.correlation_id for s in harness.seen.signals("steady")] == [b.id for b in bars]
    assert "tradewire_signals_dead_letters_total{" not in metrics
    # nothing invalid reached the stream
    stored = harness.broker.streams["TW_SIGNALS"].messages
    for item in stored:
        msgspec.json.decode(item.data, type=Signal | StrategyError)


# --- ids ------------------------------------------------------------------------------------------


async def test_signal_ids_are_deterministic_per_bar_and_strategy() -> None:
    bars, _ = read_demo(400)
    runs = []
    for _ in range(2):
        harness = await start_harness(strategy_config("sma_cross", "sma_cross"),
                                      strategy_config("steady", "test_every_bar"))
        try:
            await harness.send(bars)
        finally:
            await harness.close()
        runs.append(harness.seen.signals())
    first, second = runs
    assert len(first) > 400  # steady on every bar plus some crossings
    assert [s.id for s in first] == [s.id for s in second]
    ids = [s.id for s in first]
    assert len(set(ids)) == len(ids)  # different bars or strategies: different ids


async def test_the_same_bar_twice_yields_the_same_signal_id_and_the_stream_keeps_one() -> None:
    harness = await start_harness(strategy_config("steady", "test_every_bar"))
    bar = flat_bar(7, "100")
    try:
        await harness.send([bar, bar])
    finally:
        await harness.close()
    first, again = harness.seen.signals("steady")  # the core subscriber sees both publishes
    assert first.id == again.id
    assert len(harness.broker.streams["TW_SIGNALS"].messages) == 1


@register("test_limit_with_exits")
class LimitWithExits(Strategy[EveryBarParams]):
    """Asks for a limit entry 1% under the close with its own bracket and time stop."""

    params_type = EveryBarParams

    def on_bar(self, bar: Bar) -> Intent | None:
        return Intent(Side.BUY, 0.5, "dip", order_type=OrderType.LIMIT, limit_price=bar.close * Decimal("0.99"),
                      time_in_force=TimeInForce.DAY, stop_loss_pct=Decimal("0.02"),
                      take_profit_pct=Decimal("0.04"), trailing_stop_pct=Decimal("0.03"), time_stop_s=3600)


async def test_a_strategy_sets_its_order_type_and_exits_on_the_signal() -> None:
    harness = await start_harness(strategy_config("lim", "test_limit_with_exits", {}))
    try:
        await harness.send([flat_bar(0, "100")])
    finally:
        await harness.close()
    [signal] = harness.seen.signals("lim")
    assert (signal.order_type, signal.limit_price, signal.time_in_force) == (
        OrderType.LIMIT, Decimal("99.00"), TimeInForce.DAY)
    assert (signal.stop_loss_pct, signal.take_profit_pct, signal.trailing_stop_pct, signal.time_stop_s) == (
        Decimal("0.02"), Decimal("0.04"), Decimal("0.03"), 3600)
