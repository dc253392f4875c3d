"""The trailing and time stop fields: validated on Signal and SubmitOrder, attached by risk to entries."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pytest

from tests.unit.test_risk_engine import BTC, evaluate, make_portfolio, make_signal, position, submitted
from tradewire_common.config import RiskConfig
from tradewire_common.ids import derive_id
from tradewire_common.schemas import OrderType, Side, Signal, SubmitOrder, decode_as, encode

D = Decimal


def submit_order(**exits: Any) -> SubmitOrder:
    return SubmitOrder(id=derive_id("o"), ts_event=1, ts_init=1, strategy_id="sma", instrument_id=BTC,
                       client_order_id="tw-1", side=Side.BUY, order_type=OrderType.MARKET, quantity=D(1), **exits)


def signal(**exits: Any) -> Signal:
    return Signal(id=derive_id("s"), ts_event=1, ts_init=1, strategy_id="sma", instrument_id=BTC, side=Side.BUY,
                  price=D(100), confidence=1.0, reason="test", **exits)


# -- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [submit_order, signal])
@pytest.mark.parametrize("value", ["0", "1", "-0.1", "1.5", "NaN", "Infinity"])
def test_a_trailing_stop_outside_zero_to_one_is_rejected(make: Any, value: str) -> None:
    with pytest.raises(ValueError, match="trailing_stop_pct must be a fraction within"):
        make(trailing_stop_pct=D(value))


@pytest.mark.parametrize("make", [submit_order, signal])
@pytest.mark.parametrize("value", ["0.0001", "0.9999"])
def test_a_trailing_stop_just_inside_zero_to_one_is_accepted(make: Any, value: str) -> None:
    assert make(trailing_stop_pct=D(value)).trailing_stop_pct == D(value)


@pytest.mark.parametrize("make", [submit_order, signal])
@pytest.mark.parametrize("value", [0, -1])
def test_a_time_stop_of_zero_or_less_seconds_is_rejected(make: Any, value: int) -> None:
    with pytest.raises(ValueError, match="time_stop_s must be a positive number of seconds"):
        make(time_stop_s=value)


@pytest.mark.parametrize("kind", [SubmitOrder, Signal])
def test_a_time_stop_of_zero_seconds_is_refused_on_the_wire_too(kind: Any) -> None:
    message = submit_order(time_stop_s=1) if kind is SubmitOrder else signal(time_stop_s=1)
    data = encode(message).replace(b'"time_stop_s":1', b'"time_stop_s":0')
    with pytest.raises(msgspec.ValidationError, match="time_stop_s"):
        decode_as(data, kind)


@pytest.mark.parametrize("kind", [SubmitOrder, Signal])
def test_one_second_is_the_shortest_time_stop_and_it_round_trips(kind: Any) -> None:
    message = submit_order(time_stop_s=1, trailing_stop_pct=D("0.03")) if kind is SubmitOrder else signal(
        time_stop_s=1, trailing_stop_pct=D("0.03"))
    again = decode_as(encode(message), kind)
    assert (again.time_stop_s, again.trailing_stop_pct) == (1, D("0.03"))


def test_the_new_exit_fields_are_optional_on_the_wire() -> None:
    data = encode(submit_order()).replace(b',"trailing_stop_pct":null,"time_stop_s":null', b"")
    assert b"time_stop_s" not in data
    again = decode_as(data, SubmitOrder)
    assert (again.trailing_stop_pct, again.time_stop_s) == (None, None)


def test_risk_config_defaults_attach_no_trailing_or_time_stop() -> None:
    config = RiskConfig()
    assert (config.trailing_stop_pct, config.time_stop_s) == (0.0, 0)


@pytest.mark.parametrize(("name", "value"), [("trailing_stop_pct", 1.0), ("trailing_stop_pct", -0.01),
                                             ("time_stop_s", -1)])
def test_risk_config_refuses_out_of_range_defaults(name: str, value: float) -> None:
    with pytest.raises(msgspec.ValidationError, match=name):
        msgspec.convert({name: value}, RiskConfig)


# -- risk attaches them ----------------------------------------------------------------------------


def test_entries_carry_the_configured_trailing_and_time_stops() -> None:
    order = submitted(evaluate(make_signal(Side.BUY), trailing_stop_pct=0.03, time_stop_s=3600))
    assert (order.trailing_stop_pct, order.time_stop_s) == (D("0.03"), 3600)


def test_a_signals_trailing_and_time_stops_override_the_defaults() -> None:
    sig = msgspec.structs.replace(make_signal(Side.BUY), trailing_stop_pct=D("0.01"), time_stop_s=60)
    order = submitted(evaluate(sig, trailing_stop_pct=0.03, time_stop_s=3600))
    assert (order.trailing_stop_pct, order.time_stop_s) == (D("0.01"), 60)


def test_a_signal_may_set_one_and_take_the_default_of_the_other() -> None:
    sig = msgspec.structs.replace(make_signal(Side.BUY), time_stop_s=60)
    order = submitted(evaluate(sig, trailing_stop_pct=0.03))
    assert (order.trailing_stop_pct, order.time_stop_s) == (D("0.03"), 60)


def test_entries_carry_no_trailing_or_time_stop_by_default() -> None:
    order = submitted(evaluate(make_signal(Side.BUY)))
    assert (order.trailing_stop_pct, order.time_stop_s) == (None, None)


def test_closing_orders_carry_no_trailing_or_time_stop() -> None:
    sig = msgspec.structs.replace(make_signal(Side.SELL), trailing_stop_pct=D("0.01"), time_stop_s=60)
    order = submitted(evaluate(sig, make_portfolio(position(BTC, "4")), trailing_stop_pct=0.03, time_stop_s=3600))
    assert order.reduce_only
    assert (order.trailing_stop_pct, order.time_stop_s) == (None, None)
