"""The wire contract: every message type, its exact bytes, its validation and its JSON Schema.

Each type has a representative instance with fixed values whose encoding is pinned by a golden
file in ``tests/unit/golden/<Tag>.json``. A changed golden means the wire format changed: that
must be additive only. To rewrite the goldens after a deliberate, additive change run
``TRADEWIRE_REGEN_GOLDEN=1 pytest tests/unit/test_schemas.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest

from tradewire_common.cli.main import main as tradewire_main
from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    MESSAGE_TYPES,
    Alert,
    ApprovalDecision,
    Bar,
    BookDelta,
    BookLevel,
    BookSnapshot,
    CancelOrder,
    DeadLetter,
    DenyReason,
    ExecutionWatermark,
    FillConfirmed,
    FillReversed,
    Liquidity,
    MarketResolved,
    Message,
    OrderAccepted,
    OrderApprovalDecided,
    OrderCanceled,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderPendingApproval,
    OrderRejected,
    OrderReplaced,
    OrderSubmitted,
    OrderType,
    OutcomePayout,
    PortfolioSnapshot,
    PositionSnapshot,
    Quote,
    ReplaceOrder,
    ReplayCompleted,
    ReplayStarted,
    Side,
    Signal,
    StrategyError,
    StrategyParamsChanged,
    StrategyStage,
    StrategyStageChanged,
    SubmitOrder,
    TimeInForce,
    TradeTick,
    TradingState,
    TradingStateChanged,
    VenueStatus,
    decode,
    decode_as,
    encode,
    json_schema,
    tag_of,
)

GOLDEN_DIR = Path(__file__).parent / "golden"
REGEN = os.environ.get("TRADEWIRE_REGEN_GOLDEN") == "1"

D = Decimal
TS = 1_641_000_000_000_000_000  # 2022-01-01T01:20:00Z in ns
BTC = "BTCUSDT.BINANCE"

#: The complete, pinned set of wire tags. Removing or renaming one breaks every consumer that
#: still speaks it; adding one is fine but must be added here (and get a golden file) too.
EXPECTED_TAGS = (
    "Bar",
    "Quote",
    "TradeTick",
    "BookSnapshot",
    "BookDelta",
    "Signal",
    "StrategyError",
    "SubmitOrder",
    "CancelOrder",
    "OrderDenied",
    "OrderSubmitted",
    "OrderAccepted",
    "OrderRejected",
    "OrderFilled",
    "OrderCanceled",
    "OrderExpired",
    "PortfolioSnapshot",
    "TradingStateChanged",
    "Alert",
    "DeadLetter",
    "ExecutionWatermark",
    "ReplayStarted",
    "ReplayCompleted",
    "VenueStatus",
    "OrderPendingApproval",
    "OrderApprovalDecided",
    "StrategyStageChanged",
    "StrategyParamsChanged",
    "ReplaceOrder",
    "OrderReplaced",
    "MarketResolved",
    "FillConfirmed",
    "FillReversed",
)


def _base(tag: str) -> dict[str, Any]:
    return {
        "id": derive_id("golden", tag),
        "ts_event": TS,
        "ts_init": TS + 1_000,
        "correlation_id": derive_id("golden-correlation", tag),
    }


def _order(tag: str) -> dict[str, Any]:
    return {
        **_base(tag),
        "strategy_id": "sma_cross",
        "instrument_id": BTC,
        "client_order_id": "tw-0123456789abcdef01234567",
    }


def _samples() -> dict[str, Message]:
    bar = Bar(
        **_base("Bar"), instrument_id=BTC, interval="1m", open=D("46216.93"), high=D("46300.5"),
        low=D("46100.00"), close=D("46250.1"), volume=D("123.456789"), seq=42,
    )
    samples: list[Message] = [
        bar,
        Quote(**_base("Quote"), instrument_id=BTC, bid=D("46250.0"), ask=D("46250.5"), bid_size=D("1.25"),
              ask_size=D("0")),
        TradeTick(**_base("TradeTick"), instrument_id=BTC, price=D("46250.25"), size=D("0.001"),
                  aggressor_side=Side.SELL, trade_id="t-981"),
        BookSnapshot(
            **_base("BookSnapshot"), instrument_id=BTC,
            bids=(BookLevel(D("46250.0"), D("1.5")), BookLevel(D("46249.5"), D("0"))),
            asks=(BookLevel(D("46250.5"), D("2")),), sequence=7,
        ),
        BookDelta(**_base("BookDelta"), instrument_id=BTC, side=Side.BUY, price=D("46249.5"), size=D("0"),
                  sequence=8),
        Signal(**_base("Signal"), strategy_id="sma_cross", instrument_id=BTC, side=Side.BUY, price=D("46250.1"),
               confidence=0.75, reason="fast crossed above slow", target=D("0.5"), win_probability=0.55,
               payoff_ratio=D("1.5")),
        StrategyError(**_base("StrategyError"), strategy_id="sma_cross", error_type="ZeroDivisionError",
                      message="division by zero", instrument_id=BTC),
        SubmitOrder(**_order("SubmitOrder"), side=Side.BUY, order_type=OrderType.LIMIT, quantity=D("0.02160"),
                    limit_price=D("46250.1"), time_in_force=TimeInForce.IOC, reduce_only=True,
                    signal_id=derive_id("golden-signal")),
        CancelOrder(**_order("CancelOrder"), reason="operator"),
        OrderDenied(**_order("OrderDenied"), reason_code=DenyReason.MAX_POSITION, reason="position limit 10%",
                    side=Side.BUY, quantity=D("0.5"), signal_id=derive_id("golden-signal")),
        OrderSubmitted(**_order("OrderSubmitted"), venue="PAPER"),
        OrderAccepted(**_order("OrderAccepted"), venue_order_id="v-1"),
        OrderRejected(**_order("OrderRejected"), reason="insufficient margin"),
        OrderFilled(
            **_order("OrderFilled"), venue_order_id="v-1", trade_id="f-1", side=Side.BUY, last_qty=D("0.01"),
            last_px=D("46251.3"), fee=D("0.462513"), fee_currency="USDT", liquidity=Liquidity.TAKER,
            partial=True, leaves_qty=D("0.0116"),
        ),
        OrderCanceled(**_order("OrderCanceled"), reason="ttl", filled_qty=D("0.01")),
        OrderExpired(**_order("OrderExpired"), reason="DAY", filled_qty=D("0")),
        PortfolioSnapshot(
            **_base("PortfolioSnapshot"), account="paper", cash=D("9537.487"),
            equity=D("10000.012"), realized_pnl=D("-1.5"), unrealized_pnl=D("0.012"),
            gross_exposure=D("462.525"),
            positions=(
                PositionSnapshot(instrument_id=BTC, quantity=D("0.01"), avg_price=D("46251.3"),
                                 last_price=D("46252.5"), realized_pnl=D("-1.5"), unrealized_pnl=D("0.012")),
                PositionSnapshot(instrument_id="ETHUSDT.BINANCE", quantity=D("-0.5"), avg_price=D("3700"),
                                 last_price=D("3700"), realized_pnl=D("0"), unrealized_pnl=D("0")),
            ),
            as_of=TS, fills=3,
        ),
        TradingStateChanged(**_base("TradingStateChanged"), scope="global", state=TradingState.HALTED,
                            previous=TradingState.ACTIVE, reason="kill switch", actor="operator"),
        Alert(**_base("Alert"), severity="critical", title="halted", body="kill switch engaged", source="risk"),
        DeadLetter(**_base("DeadLetter"), service="ledger", subject="ord.evt.sma_cross",
                   reason="undecodable: Expected `str` - at `$.id`", raw=b'{"type":"Bar","id":1}\x00\xff',
                   headers={"Nats-Msg-Id": "abc"}),
        ExecutionWatermark(**_base("ExecutionWatermark"), venue="BINANCE"),
        ReplayStarted(**_base("ReplayStarted"), dataset="btcusdt-perp-1m-2022-01",
                      instruments=(BTC, "ETHUSDT.BINANCE")),
        ReplayCompleted(**_base("ReplayCompleted"), dataset="btcusdt-perp-1m-2022-01", bars=44_640),
        VenueStatus(**_base("VenueStatus"), venue="BINANCE", connected=False, reason="websocket closed"),
        OrderPendingApproval(
            **_order("OrderPendingApproval"),
            order=SubmitOrder(**_order("SubmitOrder"), side=Side.BUY, order_type=OrderType.MARKET,
                              quantity=D("0.02160"), signal_id=derive_id("golden-signal")),
            expires_at_ns=TS + 300_000_000_000, clock="event", signal_id=derive_id("golden-signal")),
        OrderApprovalDecided(**_order("OrderApprovalDecided"), decision=ApprovalDecision.REJECTED,
                             actor="api-token", reason="not today"),
        StrategyStageChanged(**_base("StrategyStageChanged"), strategy_id="sma_cross",
                             stage=StrategyStage.LIVE_SMALL, previous=StrategyStage.PAPER,
                             reason="14 days of paper within tolerance", actor="api-token",
                             backtest_report='{"total_return": 0.0123, "bars": 20160}',
                             evidence={"paper_return": "0.0100", "backtest_return": "0.0123"}),
        StrategyParamsChanged(**_base("StrategyParamsChanged"), strategy_id="sma_cross",
                              params={"fast": 12, "slow": 30}, previous={"fast": 10, "slow": 30},
                              reason="weekly re-optimisation", actor="api-token"),
        ReplaceOrder(**_order("ReplaceOrder"), new_client_order_id="tw-0123456789abcdef01234568",
                     quantity=D("0.03"), limit_price=D("46200.5"), reason="chase"),
        OrderReplaced(**_order("OrderReplaced"), new_client_order_id="tw-0123456789abcdef01234568",
                      venue_order_id="v-2", quantity=D("0.03"), limit_price=D("46200.5"), filled_qty=D("0.01")),
        MarketResolved(**_base("MarketResolved"), venue="KALSHI", market_id="KXBTC-25MAR15-B100000",
                       payouts=(OutcomePayout(instrument_id="KXBTC-25MAR15-B100000-YES.KALSHI", payout=D("1")),
                                OutcomePayout(instrument_id="KXBTC-25MAR15-B100000-NO.KALSHI", payout=D("0"))),
                       resolution="YES", source="datafeed"),
        FillConfirmed(**_order("FillConfirmed"), venue_order_id="v-1", trade_id="f-1"),
        FillReversed(**_order("FillReversed"), venue_order_id="v-1", trade_id="f-1", side=Side.BUY,
                     last_qty=D("10"), last_px=D("0.52"), fee=D("0"), reason="FAILED"),
    ]
    return {tag_of(type(m)): m for m in samples}


SAMPLES = _samples()
TAGS = [tag_of(kind) for kind in MESSAGE_TYPES]


def _wire(tag: str) -> dict[str, Any]:
    """The sample's wire form as a mutable JSON object."""
    result: dict[str, Any] = json.loads(encode(SAMPLES[tag]))
    return result


# --- the set of types -------------------------------------------------------------------------


def test_message_types_carry_exactly_the_pinned_tags_in_a_stable_order() -> None:
    assert tuple(TAGS) == EXPECTED_TAGS


def test_every_message_type_has_a_distinct_tag_and_a_sample() -> None:
    assert len(set(TAGS)) == len(TAGS)
    assert set(SAMPLES) == set(EXPECTED_TAGS)
    for kind in MESSAGE_TYPES:
        assert type(SAMPLES[tag_of(kind)]) is kind


def test_the_golden_directory_holds_one_file_per_tag_and_nothing_else() -> None:
    if REGEN:
        pytest.skip("regenerating goldens")
    assert {p.stem for p in GOLDEN_DIR.glob("*.json")} == set(EXPECTED_TAGS)


# --- bytes on the wire ------------------------------------------------------------------------


@pytest.mark.parametrize("tag", EXPECTED_TAGS)
def test_encoding_equals_the_committed_golden_bytes(tag: str) -> None:
    data = encode(SAMPLES[tag])
    path = GOLDEN_DIR / f"{tag}.json"
    if REGEN:
        GOLDEN_DIR.mkdir(exist_ok=True)
        path.write_bytes(data)
    assert path.exists(), f"missing golden {path}; run with TRADEWIRE_REGEN_GOLDEN=1 once and commit it"
    assert data == path.read_bytes()


@pytest.mark.parametrize("tag", EXPECTED_TAGS)
def test_decode_of_encode_is_the_same_message(tag: str) -> None:
    message = SAMPLES[tag]
    back = decode(encode(message))
    assert type(back) is type(message)
    assert back == message
    assert decode_as(encode(message), type(message)) == message


@pytest.mark.parametrize("tag", EXPECTED_TAGS)
def test_committed_golden_bytes_still_decode_to_the_sample(tag: str) -> None:
    assert decode((GOLDEN_DIR / f"{tag}.json").read_bytes()) == SAMPLES[tag]


@pytest.mark.parametrize("tag", EXPECTED_TAGS)
def test_the_type_tag_is_on_the_wire(tag: str) -> None:
    assert _wire(tag)["type"] == tag


def test_decode_as_refuses_another_message_type() -> None:
    with pytest.raises(msgspec.ValidationError, match="expected Quote, got Bar"):
        decode_as(encode(SAMPLES["Bar"]), Quote)


def _decimal_pairs(value: Any, wire: Any, path: str = "$") -> Iterator[tuple[str, Decimal, Any]]:
    """(path, Decimal, its JSON value) for every Decimal inside a message, nested ones included."""
    if isinstance(value, Decimal):
        yield path, value, wire
    elif isinstance(value, msgspec.Struct):
        if value.__struct_config__.array_like:
            for i, name in enumerate(value.__struct_fields__):
                yield from _decimal_pairs(getattr(value, name), wire[i], f"{path}[{i}]")
        else:
            for name in value.__struct_fields__:
                yield from _decimal_pairs(getattr(value, name), wire[name], f"{path}.{name}")
    elif isinstance(value, tuple):
        for i, (item, wire_item) in enumerate(zip(value, wire, strict=True)):
            yield from _decimal_pairs(item, wire_item, f"{path}[{i}]")


@pytest.mark.parametrize("tag", EXPECTED_TAGS)
def test_decimals_travel_as_strings(tag: str) -> None:
    for path, number, on_wire in _decimal_pairs(SAMPLES[tag], _wire(tag)):
        assert isinstance(on_wire, str), f"{path} travels as {type(on_wire).__name__}"
        assert Decimal(on_wire) == number
        assert on_wire == str(number), f"{path}: {on_wire!r} is not the exact decimal {number}"


def test_the_samples_exercise_decimals_in_nested_structures() -> None:
    paths = {p for tag in EXPECTED_TAGS for p, _, _ in _decimal_pairs(SAMPLES[tag], _wire(tag))}
    assert "$.bids[0][0]" in paths  # BookLevel is array-like
    assert "$.positions[1].quantity" in paths


def test_decimals_keep_every_digit_and_trailing_zero() -> None:
    wire = _wire("Bar")
    wire["close"] = "46250.123456789012345678901234"
    wire["low"] = "46100.00"
    bar = decode(json.dumps(wire).encode())
    assert isinstance(bar, Bar)
    assert bar.close == D("46250.123456789012345678901234")
    assert str(bar.low) == "46100.00"
    assert json.loads(encode(bar))["close"] == "46250.123456789012345678901234"


def test_bytes_travel_as_base64_and_come_back_identical() -> None:
    letter = SAMPLES["DeadLetter"]
    assert isinstance(letter, DeadLetter)
    assert _wire("DeadLetter")["raw"] == "eyJ0eXBlIjoiQmFyIiwiaWQiOjF9AP8="
    back = decode(encode(letter))
    assert isinstance(back, DeadLetter)
    assert back.raw == b'{"type":"Bar","id":1}\x00\xff'


# --- validation -------------------------------------------------------------------------------

#: (tag, path to the number in the wire object, may it be zero?)
NUMERIC_FIELDS: list[tuple[str, tuple[str | int, ...], bool]] = [
    ("Bar", ("open",), False),
    ("Bar", ("high",), False),
    ("Bar", ("low",), False),
    ("Bar", ("close",), False),
    ("Bar", ("volume",), True),
    ("Quote", ("bid",), False),
    ("Quote", ("ask",), False),
    ("Quote", ("bid_size",), True),
    ("Quote", ("ask_size",), True),
    ("TradeTick", ("price",), False),
    ("TradeTick", ("size",), False),
    ("BookSnapshot", ("bids", 0, 0), False),
    ("BookSnapshot", ("asks", 0, 1), True),
    ("BookDelta", ("price",), False),
    ("BookDelta", ("size",), True),
    ("Signal", ("price",), False),
    ("Signal", ("payoff_ratio",), False),
    ("SubmitOrder", ("quantity",), False),
    ("SubmitOrder", ("limit_price",), False),
    ("OrderFilled", ("last_qty",), False),
    ("OrderFilled", ("last_px",), False),
    ("OrderFilled", ("fee",), True),
    ("OrderFilled", ("leaves_qty",), True),
]
BOOK_LEVEL_NAMES = ("price", "size")
BAD_NUMBERS = {
    "nan": "NaN",
    "inf": "Infinity",
    "-inf": "-Infinity",
    "negative": "-0.01",
    "absurd": "1e15",
    "absurd_plain": "1000000000000000",
    "far_beyond": "1e30",
}


def _field_name(path: tuple[str | int, ...]) -> str:
    if isinstance(path[-1], int):  # inside an array-like BookLevel
        return BOOK_LEVEL_NAMES[path[-1]]
    return path[-1]


def _set(obj: Any, path: tuple[str | int, ...], value: Any) -> None:
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


def _rejected_cases() -> Iterator[Any]:
    for tag, path, zero_ok in NUMERIC_FIELDS:
        bad = dict(BAD_NUMBERS)
        if not zero_ok:
            bad["zero"] = "0"
            bad["negative_zero"] = "-0"
        for label, text in bad.items():
            name = ".".join(str(p) for p in path)
            yield pytest.param(tag, path, text, id=f"{tag}.{name}={label}")


@pytest.mark.parametrize(("tag", "path", "text"), list(_rejected_cases()))
def test_junk_prices_and_quantities_are_rejected_naming_the_field(
    tag: str, path: tuple[str | int, ...], text: str
) -> None:
    wire = _wire(tag)
    _set(wire, path, text)
    with pytest.raises(msgspec.ValidationError) as info:
        decode(json.dumps(wire).encode())
    assert re.search(rf"\b{_field_name(path)}\b", str(info.value)), str(info.value)


#: Bars, quotes and limit prices are also bounded by the other fields of their message.
UNCOUPLED_FIELDS = [f for f in NUMERIC_FIELDS if f[0] not in ("Bar", "Quote") and f[1] != ("limit_price",)]


@pytest.mark.parametrize(("tag", "path", "zero_ok"), UNCOUPLED_FIELDS)
def test_sane_values_next_to_the_limits_are_accepted(tag: str, path: tuple[str | int, ...], zero_ok: bool) -> None:
    wire = _wire(tag)
    for text in ["999999999999999.99", *(["0"] if zero_ok else ["0.00000001"])]:
        _set(wire, path, text)
        assert isinstance(decode(json.dumps(wire).encode()), Message)


def test_direct_construction_rejects_junk_with_a_value_error_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"^price must be finite"):
        TradeTick(**_base("TradeTick"), instrument_id=BTC, price=D("NaN"), size=D("1"), aggressor_side=None,
                  trade_id="t")
    with pytest.raises(ValueError, match=r"^size must be positive"):
        TradeTick(**_base("TradeTick"), instrument_id=BTC, price=D("1"), size=D("0"), aggressor_side=None,
                  trade_id="t")


def test_a_non_numeric_decimal_string_is_rejected_with_its_path() -> None:
    wire = _wire("Bar")
    wire["open"] = "abc"
    with pytest.raises(msgspec.ValidationError, match=r"\$\.open"):
        decode(json.dumps(wire).encode())


@pytest.mark.parametrize(
    ("high", "low"),
    [("46000", "46100.00"), ("46100", "46100.01"), ("46200", "46100")],  # last: high below open and close
    ids=["high_below_low", "high_a_cent_below_low", "high_below_open_and_close"],
)
def test_a_bar_whose_high_is_below_its_low_or_body_is_rejected(high: str, low: str) -> None:
    wire = _wire("Bar")
    wire["high"], wire["low"] = high, low
    with pytest.raises(msgspec.ValidationError, match="inconsistent bar"):
        decode(json.dumps(wire).encode())


def test_a_bar_whose_low_is_above_its_open_is_rejected() -> None:
    wire = _wire("Bar")
    wire["low"] = "46220"  # open is 46216.93
    with pytest.raises(msgspec.ValidationError, match="inconsistent bar"):
        decode(json.dumps(wire).encode())


def test_a_flat_bar_is_accepted() -> None:
    wire = _wire("Bar")
    wire.update(open="5", high="5", low="5", close="5", volume="0")
    assert isinstance(decode(json.dumps(wire).encode()), Bar)


def test_a_crossed_quote_is_rejected() -> None:
    wire = _wire("Quote")
    wire["bid"], wire["ask"] = "46251", "46250.5"
    with pytest.raises(msgspec.ValidationError, match="crossed quote"):
        decode(json.dumps(wire).encode())


@pytest.mark.parametrize("confidence", [1.0000001, -0.0001, 2, -1, 1e308])
def test_signal_confidence_outside_zero_to_one_is_rejected(confidence: float) -> None:
    wire = _wire("Signal")
    wire["confidence"] = confidence
    with pytest.raises(msgspec.ValidationError, match="confidence"):
        decode(json.dumps(wire).encode())


@pytest.mark.parametrize("confidence", [0.0, 1.0, 0.5])
def test_signal_confidence_at_and_within_the_bounds_is_accepted(confidence: float) -> None:
    wire = _wire("Signal")
    wire["confidence"] = confidence
    signal = decode(json.dumps(wire).encode())
    assert isinstance(signal, Signal) and signal.confidence == confidence


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_signal_confidence_nan_or_infinite_is_rejected(value: float) -> None:
    wire = _wire("Signal")
    wire["confidence"] = value
    with pytest.raises(msgspec.ValidationError, match="confidence"):
        msgspec.convert(wire, Signal)
    fields = msgspec.structs.asdict(SAMPLES["Signal"])
    fields["confidence"] = value
    with pytest.raises(ValueError, match="confidence"):
        Signal(**fields)


def test_json_cannot_smuggle_a_nan_confidence() -> None:
    data = encode(SAMPLES["Signal"]).replace(b'"confidence":0.75', b'"confidence":NaN')
    assert b"NaN" in data
    with pytest.raises(msgspec.DecodeError):
        decode(data)


@pytest.mark.parametrize(("name", "value"), [("win_probability", 1.5), ("target", "1.01"), ("target", "NaN")])
def test_signal_edge_and_target_outside_their_ranges_are_rejected(name: str, value: Any) -> None:
    wire = _wire("Signal")
    wire[name] = value
    with pytest.raises(msgspec.ValidationError, match=name):
        decode(json.dumps(wire).encode())


def test_a_limit_order_needs_a_limit_price_and_a_market_order_must_not_have_one() -> None:
    wire = _wire("SubmitOrder")
    wire["limit_price"] = None
    with pytest.raises(msgspec.ValidationError, match="limit order needs limit_price"):
        decode(json.dumps(wire).encode())
    wire = _wire("SubmitOrder")
    wire["order_type"] = "MARKET"
    with pytest.raises(msgspec.ValidationError, match="market order must not carry limit_price"):
        decode(json.dumps(wire).encode())


@pytest.mark.parametrize(
    ("field", "value"),
    [("id", "not-hex"), ("id", "A" * 32), ("instrument_id", "BTCUSDT"), ("instrument_id", "BTC USDT.BINANCE"),
     ("strategy_id", "SMA"), ("client_order_id", "x" * 37), ("side", "HOLD")],
)
def test_malformed_ids_and_enums_are_rejected_with_their_path(field: str, value: str) -> None:
    wire = _wire("SubmitOrder")
    wire[field] = value
    with pytest.raises(msgspec.ValidationError, match=rf"\$\.{field}"):
        decode(json.dumps(wire).encode())


@pytest.mark.parametrize("tag", EXPECTED_TAGS)
def test_unknown_extra_fields_are_accepted_for_additive_evolution(tag: str) -> None:
    wire = _wire(tag)
    wire["added_in_v2"] = {"nested": [1, 2, 3]}
    wire["another_new_field"] = "x"
    assert decode(json.dumps(wire).encode()) == SAMPLES[tag]


def test_an_unknown_type_tag_is_rejected() -> None:
    wire = _wire("Bar")
    wire["type"] = "BarV2"
    with pytest.raises(msgspec.ValidationError, match=r"Invalid value 'BarV2' - at `\$\.type`"):
        decode(json.dumps(wire).encode())


def test_a_message_without_a_type_tag_is_rejected() -> None:
    wire = _wire("Bar")
    del wire["type"]
    with pytest.raises(msgspec.ValidationError, match="type"):
        decode(json.dumps(wire).encode())


def test_a_missing_required_field_is_rejected_naming_it() -> None:
    wire = _wire("OrderFilled")
    del wire["trade_id"]
    with pytest.raises(msgspec.ValidationError, match="trade_id"):
        decode(json.dumps(wire).encode())


def test_optional_fields_may_be_omitted_and_take_their_defaults() -> None:
    wire = _wire("SubmitOrder")
    for name in ("time_in_force", "reduce_only", "signal_id", "correlation_id"):
        del wire[name]
    order = decode(json.dumps(wire).encode())
    assert isinstance(order, SubmitOrder)
    assert (order.time_in_force, order.reduce_only, order.signal_id, order.correlation_id) == (
        TimeInForce.GTC, False, "", "",
    )


def test_bytes_that_are_not_json_are_a_decode_error() -> None:
    with pytest.raises(msgspec.DecodeError):
        decode(b"\x00\xffnot json")


@pytest.mark.parametrize("tag", EXPECTED_TAGS)
def test_messages_are_frozen(tag: str) -> None:
    message = SAMPLES[tag]
    with pytest.raises(AttributeError):
        message.id = "0" * 32  # type: ignore[misc]
    with pytest.raises(AttributeError):
        message.ts_event = 0  # type: ignore[misc]
    assert message.id == derive_id("golden", tag)
    assert encode(message) == (GOLDEN_DIR / f"{tag}.json").read_bytes()


def test_nested_structs_are_frozen_too() -> None:
    level = BookLevel(D("1"), D("2"))
    with pytest.raises(AttributeError):
        level.price = D("3")  # type: ignore[misc]
    position = PositionSnapshot(instrument_id=BTC, quantity=D("1"), avg_price=D("1"), last_price=D("1"),
                                realized_pnl=D("0"), unrealized_pnl=D("0"))
    with pytest.raises(AttributeError):
        position.quantity = D("2")  # type: ignore[misc]


# --- JSON Schema ------------------------------------------------------------------------------


def _schema_tags(schema: dict[str, Any]) -> set[str]:
    tags: set[str] = set()
    for ref in schema["oneOf"]:
        name = ref["$ref"].removeprefix("#/$defs/")
        tags.update(schema["$defs"][name]["properties"]["type"]["enum"])
    return tags


def test_json_schema_covers_every_tag_once() -> None:
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert len(schema["oneOf"]) == len(EXPECTED_TAGS)
    assert _schema_tags(schema) == set(EXPECTED_TAGS)
    jsonschema.Draft202012Validator.check_schema(schema)


def test_json_schema_documents_decimals_as_strings() -> None:
    bar = json_schema()["$defs"]["Bar"]
    assert bar["properties"]["open"] == {"type": "string", "format": "decimal"}
    assert "open" in bar["required"] and "seq" not in bar["required"]


@pytest.mark.parametrize("tag", EXPECTED_TAGS)
def test_every_golden_is_valid_against_the_json_schema(tag: str) -> None:
    validator = jsonschema.Draft202012Validator(json_schema())
    validator.validate(json.loads((GOLDEN_DIR / f"{tag}.json").read_bytes()))


def test_the_json_schema_refuses_an_unknown_tag() -> None:
    validator = jsonschema.Draft202012Validator(json_schema())
    wire = _wire("Alert")
    wire["type"] = "Nope"
    assert not validator.is_valid(wire)


def test_schema_dump_writes_the_json_schema_of_every_tag_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "contract.json"
    assert tradewire_main(["schema", "dump", "-o", str(out)]) == 0
    written = json.loads(out.read_text())
    assert _schema_tags(written) == set(EXPECTED_TAGS)
    assert written == json.loads(json.dumps(json_schema()))


def test_schema_dump_without_a_file_writes_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert tradewire_main(["schema", "dump"]) == 0
    assert _schema_tags(json.loads(capsys.readouterr().out)) == set(EXPECTED_TAGS)
