"""Subject strings: exact builders, token escaping, wildcard matching and the JetStream layout."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tradewire_common import subjects
from tradewire_common.subjects import (
    STREAMS,
    StreamSpec,
    escape_token,
    matches,
    stream_for,
    stream_for_pattern,
    unescape_token,
)

# --- builders ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("built", "expected"),
    [
        (subjects.bar("BINANCE", "BTCUSDT", "1m"), "md.bar.BINANCE.BTCUSDT.1m"),
        (subjects.quote("BINANCE", "BTCUSDT"), "md.quote.BINANCE.BTCUSDT"),
        (subjects.trade("BINANCE", "BTCUSDT"), "md.trade.BINANCE.BTCUSDT"),
        (subjects.book("BINANCE", "BTCUSDT"), "md.book.BINANCE.BTCUSDT"),
        (subjects.signal("sma_cross"), "sig.sma_cross"),
        (subjects.strategy_error("sma_cross"), "err.strategy.sma_cross"),
        (subjects.order_command("BINANCE"), "ord.cmd.BINANCE"),
        (subjects.order_event("sma_cross"), "ord.evt.sma_cross"),
        (subjects.execution_watermark("BINANCE"), "ord.evt._wm.BINANCE"),
        (subjects.alert("critical"), "alert.critical"),
        (subjects.dead_letter("ledger"), "dlq.ledger"),
    ],
)
def test_each_builder_produces_its_exact_subject(built: str, expected: str) -> None:
    assert built == expected


def test_constant_subjects_and_patterns_are_pinned() -> None:
    assert (subjects.ALL_MARKET_DATA, subjects.ALL_BARS) == ("md.>", "md.bar.>")
    assert (subjects.ALL_SIGNALS, subjects.ALL_STRATEGY_ERRORS) == ("sig.*", "err.strategy.*")
    assert (subjects.ALL_ORDER_COMMANDS, subjects.ALL_ORDER_EVENTS) == ("ord.cmd.*", "ord.evt.>")
    assert (subjects.PORTFOLIO_SNAPSHOT, subjects.RISK_STATE, subjects.RISK_HALT) == (
        "pf.snapshot", "risk.state", "risk.halt",
    )
    assert (subjects.ALL_ALERTS, subjects.ALL_DEAD_LETTERS) == ("alert.*", "dlq.*")
    assert (subjects.REPLAY, subjects.STATS, subjects.STATE_BUCKET) == ("ctl.replay", "ctl.stats", "tradewire_state")


def test_builders_escape_every_token_they_are_given() -> None:
    assert subjects.bar("BIN.ANCE", "BRK.B", "1 m") == "md.bar.BIN%2EANCE.BRK%2EB.1%20m"
    assert subjects.signal("a.b") == "sig.a%2Eb"
    assert subjects.dead_letter("x>y") == "dlq.x%3Ey"


# --- escaping ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("BRK.B", "BRK%2EB"),
        ("*", "%2A"),
        (">", "%3E"),
        ("a b", "a%20b"),
        ("50%", "50%25"),
        ("tab\there", "tab%09here"),
        ("cr\rlf\n", "cr%0Dlf%0A"),
        ("BTCUSDT", "BTCUSDT"),
        ("already%2E", "already%252E"),
        ("ü-ß_1", "ü-ß_1"),
    ],
)
def test_escape_token_replaces_subject_syntax_with_upper_case_hex(raw: str, escaped: str) -> None:
    assert escape_token(raw) == escaped
    assert unescape_token(escaped) == raw


@pytest.mark.parametrize(
    "raw", ["BRK.B", "a.b.c", "*", ">", "*.>", "% %", "%2E", "%%", "x%", "%4", " leading", "trailing.", "..", "a\tb"]
)
def test_unescape_inverts_escape(raw: str) -> None:
    escaped = escape_token(raw)
    assert unescape_token(escaped) == raw
    for forbidden in ".*> \t\r\n":
        assert forbidden not in escaped


def test_unescape_leaves_plain_text_and_a_dangling_percent_alone() -> None:
    assert unescape_token("BTCUSDT") == "BTCUSDT"
    assert unescape_token("50%") == "50%"
    assert unescape_token("5%2") == "5%2"


def test_an_empty_token_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        escape_token("")


@pytest.mark.parametrize(
    "build",
    [
        lambda: subjects.bar("BINANCE", "", "1m"),
        lambda: subjects.bar("", "BTCUSDT", "1m"),
        lambda: subjects.bar("BINANCE", "BTCUSDT", ""),
        lambda: subjects.quote("BINANCE", ""),
        lambda: subjects.signal(""),
        lambda: subjects.order_command(""),
        lambda: subjects.order_event(""),
        lambda: subjects.execution_watermark(""),
        lambda: subjects.alert(""),
        lambda: subjects.dead_letter(""),
        lambda: subjects.strategy_error(""),
    ],
)
def test_builders_refuse_an_empty_token(build: Callable[[], str]) -> None:
    with pytest.raises(ValueError):
        build()


@pytest.mark.parametrize("symbol", ["BRK.B", "A.B.C.D", "*", ">", "X Y", "%2E", "..", "a.>", "*.*"])
def test_a_symbol_cannot_change_the_token_count_of_a_subject(symbol: str) -> None:
    subject = subjects.bar("NYSE", symbol, "1d")
    tokens = subject.split(".")
    assert len(tokens) == 5
    assert tokens[:3] == ["md", "bar", "NYSE"] and tokens[4] == "1d"
    assert unescape_token(tokens[3]) == symbol
    assert matches("md.bar.NYSE.*.1d", subject)
    assert not matches("md.bar.NYSE.*", subject)
    assert len(subjects.quote("NYSE", symbol).split(".")) == 4


def test_an_escaped_wildcard_is_literal_and_does_not_match_other_symbols() -> None:
    star = subjects.bar("NYSE", "*", "1d")
    assert not matches(star, subjects.bar("NYSE", "IBM", "1d"))
    assert matches(star, star)


# --- wildcard matching ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("md.bar.BINANCE.BTCUSDT.1m", "md.bar.BINANCE.BTCUSDT.1m", True),
        ("md.bar.BINANCE.BTCUSDT.1m", "md.bar.BINANCE.BTCUSDT.5m", False),
        ("sig.*", "sig.sma_cross", True),
        ("sig.*", "sig", False),
        ("sig.*", "sig.a.b", False),
        ("*.*", "sig.a", True),
        ("*", "sig", True),
        ("*", "sig.a", False),
        ("md.*.BINANCE.*.1m", "md.bar.BINANCE.BTCUSDT.1m", True),
        ("md.*.BINANCE.*.1m", "md.bar.BYBIT.BTCUSDT.1m", False),
        ("md.>", "md.bar", True),
        ("md.>", "md.bar.BINANCE.BTCUSDT.1m", True),
        ("md.>", "md", False),
        ("md.bar.>", "md.quote.BINANCE.BTCUSDT", False),
        (">", "anything.at.all", True),
        ("ord.evt.>", "ord.evt._wm.BINANCE", True),
        ("ord.evt.*", "ord.evt._wm.BINANCE", False),
        ("*.evt.>", "ord.evt.x", True),
        ("a.b", "a.b.c", False),
        ("a.b.c", "a.b", False),
        ("a.*.c", "a.b", False),
        ("sig.sma", "sig.sma_cross", False),
    ],
)
def test_matches_follows_nats_wildcard_semantics(pattern: str, subject: str, expected: bool) -> None:
    assert matches(pattern, subject) is expected


# --- JetStream layout -------------------------------------------------------------------------

STREAM_SUBJECTS = [
    (subjects.signal("sma_cross"), "TW_SIGNALS"),
    (subjects.strategy_error("sma_cross"), "TW_SIGNALS"),
    (subjects.order_command("BINANCE"), "TW_ORDER_COMMANDS"),
    (subjects.order_event("sma_cross"), "TW_ORDER_EVENTS"),
    (subjects.execution_watermark("BINANCE"), "TW_ORDER_EVENTS"),
    (subjects.RISK_STATE, "TW_STATE"),
    (subjects.alert("critical"), "TW_ALERTS"),
    (subjects.dead_letter("ledger"), "TW_DEAD_LETTERS"),
    (subjects.REPLAY, "TW_CONTROL"),
    (subjects.strategy_stage("sma_cross"), "TW_GOVERNANCE"),
    (subjects.strategy_params("sma_cross"), "TW_GOVERNANCE"),
    (subjects.resolution("KALSHI"), "TW_RESOLUTIONS"),
]


def test_the_stream_layout_is_pinned() -> None:
    assert STREAMS == (
        StreamSpec("TW_SIGNALS", ("sig.*", "err.strategy.*")),
        StreamSpec("TW_ORDER_COMMANDS", ("ord.cmd.*",)),
        StreamSpec("TW_ORDER_EVENTS", ("ord.evt.>",)),
        StreamSpec("TW_STATE", ("risk.state",)),
        StreamSpec("TW_ALERTS", ("alert.*",)),
        StreamSpec("TW_DEAD_LETTERS", ("dlq.*",)),
        StreamSpec("TW_CONTROL", ("ctl.replay",)),
        StreamSpec("TW_GOVERNANCE", ("gov.>",)),
        StreamSpec("TW_RESOLUTIONS", ("pm.resolved.*",)),
    )


def test_no_two_streams_capture_the_same_subject() -> None:
    for subject, _ in STREAM_SUBJECTS:
        owners = [s.name for s in STREAMS if any(matches(p, subject) for p in s.subjects)]
        assert len(owners) == 1, (subject, owners)


@pytest.mark.parametrize(("subject", "stream"), STREAM_SUBJECTS)
def test_stream_for_finds_the_stream_of_every_trading_flow_subject(subject: str, stream: str) -> None:
    spec = stream_for(subject)
    assert spec is not None and spec.name == stream


def test_every_stream_is_reachable_from_some_subject() -> None:
    assert {name for _, name in STREAM_SUBJECTS} == {s.name for s in STREAMS}


@pytest.mark.parametrize(
    "subject",
    [
        subjects.bar("BINANCE", "BTCUSDT", "1m"),
        subjects.quote("BINANCE", "BTCUSDT"),
        subjects.trade("BINANCE", "BTCUSDT"),
        subjects.book("BINANCE", "BTCUSDT"),
        subjects.PORTFOLIO_SNAPSHOT,
        subjects.RISK_HALT,
        subjects.STATS,
        "sig.a.b",  # one token too many for sig.*
        "ord.cmd",
        "_INBOX.abc",
    ],
)
def test_stream_for_is_none_for_core_subjects(subject: str) -> None:
    assert stream_for(subject) is None


@pytest.mark.parametrize(
    ("pattern", "stream"),
    [
        (subjects.ALL_SIGNALS, "TW_SIGNALS"),
        (subjects.ALL_STRATEGY_ERRORS, "TW_SIGNALS"),
        (subjects.ALL_ORDER_COMMANDS, "TW_ORDER_COMMANDS"),
        (subjects.ALL_ORDER_EVENTS, "TW_ORDER_EVENTS"),
        ("ord.evt._wm.*", "TW_ORDER_EVENTS"),
        (subjects.RISK_STATE, "TW_STATE"),
        (subjects.ALL_ALERTS, "TW_ALERTS"),
        (subjects.ALL_DEAD_LETTERS, "TW_DEAD_LETTERS"),
        (subjects.REPLAY, "TW_CONTROL"),
        (subjects.ALL_STRATEGY_STAGES, "TW_GOVERNANCE"),
        (subjects.ALL_STRATEGY_PARAMS, "TW_GOVERNANCE"),
        (subjects.ALL_GOVERNANCE, "TW_GOVERNANCE"),
        (subjects.ALL_RESOLUTIONS, "TW_RESOLUTIONS"),
        (subjects.signal("sma_cross"), "TW_SIGNALS"),
        (subjects.order_command("BINANCE"), "TW_ORDER_COMMANDS"),
    ],
)
def test_stream_for_pattern_finds_the_stream_of_every_durable_pattern(pattern: str, stream: str) -> None:
    spec = stream_for_pattern(pattern)
    assert spec is not None and spec.name == stream


@pytest.mark.parametrize(
    "pattern",
    [subjects.ALL_MARKET_DATA, subjects.ALL_BARS, "md.*", "md.bar.*.*.1m", "md.quote.>", subjects.PORTFOLIO_SNAPSHOT,
     subjects.STATS, "ctl.*"],
)
def test_stream_for_pattern_is_none_for_market_data_and_core_patterns(pattern: str) -> None:
    assert stream_for_pattern(pattern) is None
