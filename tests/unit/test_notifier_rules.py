"""Price alert rules: parsing, firing at the boundaries (once per crossing, re-armed when false),
indicators checked against independent computations (pandas, exact fractions) on the demo data,
and rules with their state surviving a restart through the KV bucket."""

from __future__ import annotations

import itertools
import re
from decimal import Decimal
from fractions import Fraction

import msgspec
import pandas as pd
import pytest

from tests.support.stack import DEMO_CSV
from tradewire_common.bus import MemoryBroker, MemoryBus
from tradewire_notifier.rules import (
    PRICE_KEY,
    AlertRule,
    ChangePct,
    Ema,
    Rsi,
    RuleEngine,
    RuleError,
    RuleRequest,
    RuleState,
    Sma,
    build_rule,
    parse_condition,
    step,
)
from tradewire_notifier.store import RULES_KEY, load_rules, save_rules

BTC = "BTCUSDT.BINANCE"
DEMO_BARS = 4000


def rule(condition: str, *, rule_id: str = "r1", interval: str = "*", instrument: str = BTC) -> AlertRule:
    return build_rule(RuleRequest(instrument_id=instrument, condition=condition, interval=interval), rule_id, 1)


def observe(r: AlertRule, values: list[str], state: RuleState | None = None) -> list[bool]:
    state = state or RuleState()
    right = Decimal(r.right)
    return [step(r, state, PRICE_KEY, Decimal(v), right) for v in values]


@pytest.fixture(scope="module")
def closes() -> list[Decimal]:
    frame = pd.read_csv(DEMO_CSV, nrows=DEMO_BARS, dtype={"close": str})
    return [Decimal(c) for c in frame["close"]]


# --- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("above 70000", ("price", "above", "70000")),
    ("below 69999.50", ("price", "below", "69999.5")),
    ("price crosses_above 70000", ("price", "crosses_above", "70000")),
    ("RSI:14 below 30", ("rsi:14", "below", "30")),
    ("sma:10 crosses_above sma:30", ("sma:10", "crosses_above", "sma:30")),
    ("change_pct:60 above 5", ("change_pct:60", "above", "5")),
    ("change_pct:60 below -5", ("change_pct:60", "below", "-5")),
    ("ema:20 > price", ("ema:20", "above", "price")),
    ("< 100", ("price", "below", "100")),
    ("sma:010 crosses-below 1e3", ("sma:10", "crosses_below", "1000")),
])
def test_conditions_parse_into_a_series_an_operator_and_a_value(text: str, expected: tuple[str, str, str]) -> None:
    assert parse_condition(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("above", "expected '[SERIES] OPERATOR VALUE'"),
    ("price is above 1", "expected '[SERIES] OPERATOR VALUE'"),
    ("beyond 70000", "unknown operator 'beyond'"),
    ("above seventy", "neither a number nor a series"),
    ("above nan", "not a usable number"),
    ("above 1e20", "not a usable number"),
    ("rsi:1 below 30", "period must be between 2"),
    ("sma:0 above 5", "period must be between 1"),
    ("vwap:10 above 5", "unknown series 'vwap:10'"),
    ("price above price", "compares price with itself"),
    ("30 below rsi:14", "unknown series '30'"),
])
def test_a_malformed_condition_is_refused_with_what_to_write(text: str, message: str) -> None:
    with pytest.raises(RuleError, match=re.escape(message)):
        parse_condition(text)


def test_an_instrument_must_be_symbol_dot_venue_and_the_interval_a_bar_interval() -> None:
    with pytest.raises(msgspec.ValidationError, match="instrument_id"):
        msgspec.convert({"instrument_id": "BTCUSDT", "condition": "above 1"}, RuleRequest)
    with pytest.raises(RuleError, match="interval"):
        rule("above 1", interval="one minute")
    assert rule("above 1", interval="1h").interval == "1h"


# --- firing at the boundaries --------------------------------------------------------------------


def test_above_fires_just_above_never_at_the_level_and_once_until_it_falls_back() -> None:
    r = rule("above 70000")
    assert observe(r, ["69999.99", "70000", "70000.01", "70500", "70000.01", "70000", "70000.01", "69000"]) == [
        False, False, True, False, False, False, True, False]


def test_below_fires_just_below_and_re_arms_only_when_no_longer_below() -> None:
    r = rule("below 30000")
    assert observe(r, ["30000.01", "29999.99", "29000", "30000", "29999.99", "29999.98"]) == [
        False, True, False, False, True, False]


def test_above_fires_on_the_first_observation_when_the_price_already_is_above() -> None:
    assert observe(rule("above 100"), ["101", "102"]) == [True, False]
    assert observe(rule("below 100"), ["99"]) == [True]


def test_a_crossing_needs_an_observed_change_and_fires_once_per_crossing() -> None:
    up = rule("crosses_above 100")
    assert observe(up, ["101", "102", "100", "100.01", "100.02", "99", "101"]) == [
        False, False, False, True, False, False, True]
    down = rule("crosses_below 100")
    assert observe(down, ["99", "100", "99.99", "98", "100.5", "99.5"]) == [False, False, True, False, False, True]


def test_the_condition_state_carries_over_so_a_restarted_rule_does_not_fire_again() -> None:
    r = rule("above 100")
    state = RuleState()
    assert observe(r, ["101"], state) == [True]
    revived = msgspec.json.decode(msgspec.json.encode(state), type=RuleState)
    assert observe(r, ["102", "99", "103"], revived) == [False, False, True]


# --- the engine on market data -------------------------------------------------------------------


def test_a_plain_price_rule_follows_bars_trades_and_quotes_as_one_series() -> None:
    engine = RuleEngine()
    engine.add(rule("crosses_above 100"))
    fired, _ = engine.on_bar(BTC, "1m", Decimal("99"), "a" * 32, 1)
    assert fired == []
    fired, changed = engine.on_price(BTC, Decimal("100.5"), "b" * 32, 2, "trade")
    assert [(f.source, f.price, f.key) for f in fired] == [("trade", Decimal("100.5"), PRICE_KEY)] and changed
    fired, changed = engine.on_price(BTC, Decimal("101"), "c" * 32, 3, "quote")
    assert fired == [] and not changed
    assert engine.states["r1"].fired == 1


def test_rules_see_only_their_instrument_and_interval() -> None:
    engine = RuleEngine()
    engine.add(rule("above 100", rule_id="hourly", interval="1h"))
    engine.add(rule("above 100", rule_id="eth", instrument="ETHUSDT.BINANCE"))
    assert engine.on_bar(BTC, "1m", Decimal("150"), "a" * 32, 1)[0] == []
    assert engine.on_price(BTC, Decimal("150"), "b" * 32, 2, "trade")[0] == []  # 1h rules read 1h bars only
    assert [f.rule.id for f in engine.on_bar(BTC, "1h", Decimal("150"), "c" * 32, 3)[0]] == ["hourly"]
    assert not engine.has_rules_for("SOLUSDT.BINANCE")


def test_removing_the_last_rule_of_an_instrument_stops_following_it() -> None:
    engine = RuleEngine()
    engine.add(rule("sma:3 above 10", rule_id="a"))
    engine.add(rule("above 10", rule_id="b"))
    engine.on_bar(BTC, "1m", Decimal(11), "a" * 32, 1)
    assert engine.remove("a") and engine.has_rules_for(BTC)
    assert engine.remove("b") and not engine.has_rules_for(BTC) and engine.books == {}
    assert not engine.remove("b")


def test_indicator_rules_wait_until_their_indicators_are_warm() -> None:
    engine = RuleEngine()
    engine.add(rule("sma:3 above 10"))
    results = [engine.on_bar(BTC, "1m", Decimal(p), f"{i:032x}", i)[0] for i, p in enumerate(["11", "11", "11"])]
    assert [len(r) for r in results] == [0, 0, 1]
    assert results[2][0].left == Decimal(11) and results[2][0].source == "1m bar"


def test_indicator_series_are_kept_per_bar_interval() -> None:
    engine = RuleEngine()
    engine.add(rule("sma:2 crosses_above 10"))
    feed = [("1m", "9"), ("1h", "20"), ("1m", "9"), ("1h", "20"), ("1m", "12"), ("1m", "12")]
    fired = [bool(engine.on_bar(BTC, interval, Decimal(p), f"{i:032x}", i)[0]) for i, (interval, p) in enumerate(feed)]
    # 1h: the first value (20) is already above: no crossing. 1m: 9, 9 -> (9+12)/2 = 10.5 crosses above 10.
    assert fired == [False, False, False, False, True, False]
    assert engine.states["r1"].last == {"1h": True, "1m": True}


# --- indicators on real data ---------------------------------------------------------------------


def run_indicator(indicator: Sma | Ema | Rsi | ChangePct, values: list[Decimal]) -> list[float]:
    out = []
    for v in values:
        value = indicator.update(v)
        out.append(float("nan") if value is None else float(value))
    return out


def assert_series_equal(ours: list[float], reference: pd.Series, warmup: int) -> None:
    assert all(pd.isna(x) for x in ours[:warmup])
    assert not pd.isna(reference.iloc[warmup])
    assert ours[warmup:] == pytest.approx(reference.iloc[warmup:].tolist(), rel=1e-9, abs=1e-9)


def test_sma_and_change_pct_equal_pandas_on_the_demo_bars(closes: list[Decimal]) -> None:
    series = pd.Series([float(c) for c in closes])
    assert_series_equal(run_indicator(Sma(30), closes), series.rolling(30).mean(), 29)
    assert_series_equal(run_indicator(ChangePct(60), closes), series.pct_change(60) * 100, 60)


def test_ema_is_seeded_with_the_sma_then_smoothed_with_2_over_n_plus_1(closes: list[Decimal]) -> None:
    n = 20
    series = pd.Series([float(c) for c in closes])
    seeded = series.copy()
    seeded.iloc[n - 1] = series.iloc[:n].mean()
    reference = pd.concat([series.iloc[: n - 1] * float("nan"), seeded.iloc[n - 1:].ewm(span=n, adjust=False).mean()])
    assert_series_equal(run_indicator(Ema(n), closes), reference, n - 1)


def wilder_rsi(series: pd.Series, n: int) -> pd.Series:
    """Wilder's RSI with pandas: averages seeded with the mean of the first n changes."""
    change = series.diff()
    out = []
    for part in (change.clip(lower=0), -change.clip(upper=0)):
        seeded = part.copy()
        seeded.iloc[n] = part.iloc[1:n + 1].mean()
        out.append(pd.concat([part.iloc[:n] * float("nan"), seeded.iloc[n:].ewm(alpha=1 / n, adjust=False).mean()]))
    gain, loss = out
    return 100 - 100 / (1 + gain / loss)


def test_rsi_is_wilders_rsi_as_charting_tools_show_it(closes: list[Decimal]) -> None:
    series = pd.Series([float(c) for c in closes])
    reference = wilder_rsi(series, 14)
    ours = run_indicator(Rsi(14), closes)
    assert_series_equal(ours, reference, 14)
    assert min(ours[14:]) < 30 < 70 < max(ours[14:])  # the data reaches both usual thresholds


def test_rsi_is_100_without_losses_and_undefined_on_a_flat_series() -> None:
    assert run_indicator(Rsi(2), [Decimal(v) for v in ("1", "2", "3", "4")])[2:] == [100.0, 100.0]
    assert all(pd.isna(v) for v in run_indicator(Rsi(2), [Decimal(5)] * 4))


def fire_indices(engine: RuleEngine, closes: list[Decimal]) -> list[int]:
    return [i for i, c in enumerate(closes) if engine.on_bar(BTC, "1m", c, f"{i:032x}", i)[0]]


def test_sma_crossover_rule_fires_exactly_where_exact_arithmetic_sees_a_crossing(closes: list[Decimal]) -> None:
    engine = RuleEngine()
    engine.add(rule("sma:10 crosses_above sma:30"))
    exact = [Fraction(c) for c in closes]
    zero = Fraction(0)
    diff = [sum(exact[i - 9:i + 1], zero) / 10 - sum(exact[i - 29:i + 1], zero) / 30 for i in range(29, len(exact))]
    expected = [i + 29 for i in range(1, len(diff)) if diff[i - 1] <= 0 < diff[i]]
    assert len(expected) > 10
    assert fire_indices(engine, closes) == expected


def test_rsi_rule_fires_at_each_crossing_below_30_of_the_reference_rsi(closes: list[Decimal]) -> None:
    engine = RuleEngine()
    engine.add(rule("rsi:14 crosses_below 30"))
    reference = wilder_rsi(pd.Series([float(c) for c in closes]), 14).tolist()
    expected = [i for i, (a, b) in enumerate(itertools.pairwise(reference), start=1) if a >= 30 > b]
    assert expected
    assert fire_indices(engine, closes) == expected


def test_change_pct_rule_fires_once_per_move_beyond_the_threshold(closes: list[Decimal]) -> None:
    engine = RuleEngine()
    engine.add(rule("change_pct:60 below -1"))
    reference = (pd.Series([float(c) for c in closes]).pct_change(60) * 100).tolist()
    below = [not pd.isna(v) and v < -1 for v in reference]
    expected = [i for i in range(len(below)) if below[i] and (i == 0 or not below[i - 1])]
    assert expected
    assert fire_indices(engine, closes) == expected


# --- storage -------------------------------------------------------------------------------------


async def test_rules_and_their_state_survive_a_restart_through_the_kv_bucket() -> None:
    broker = MemoryBroker()
    engine = RuleEngine()
    engine.add(rule("above 100", rule_id="a"))
    engine.add(rule("rsi:14 below 30", rule_id="b"))
    engine.on_bar(BTC, "1m", Decimal(150), "a" * 32, 1)
    await save_rules(MemoryBus("notifier", broker), engine)
    assert RULES_KEY in broker.kv

    revived = RuleEngine()
    assert await load_rules(MemoryBus("notifier", broker), revived) == 2
    assert revived.rules == engine.rules
    assert revived.states["a"].fired == 1 and revived.states["a"].last == {PRICE_KEY: True}
    assert revived.on_bar(BTC, "1m", Decimal(151), "b" * 32, 2)[0] == []  # already above: no second alert


async def test_an_empty_bucket_holds_no_rules() -> None:
    assert await load_rules(MemoryBus("notifier", MemoryBroker()), RuleEngine()) == 0
