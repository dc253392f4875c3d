"""The Kraken row of the ccxt adapter's exchange profiles, offline: what reaches ccxt's ``create_order`` for each
order shape, the ``cl_ord_id`` format Kraken takes, the create ``deadline``, capabilities."""

from __future__ import annotations

import time
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from tradewire_common.ids import client_order_id, derive_id
from tradewire_common.schemas import OrderType, Side, SubmitOrder, TimeInForce
from tradewire_common.urls import ccxt_config
from tradewire_execution.venues.ccxt_adapter import CcxtVenue, _kraken_client_id, make_exchange


class Recording:
    """Stands in for the ccxt client: records ``create_order`` and answers like Kraken's ccxt (txid only)."""

    def __init__(self, exchange: Any) -> None:
        self.id, self.has, self.urls = exchange.id, exchange.has, exchange.urls
        self.calls: list[tuple[Any, ...]] = []

    async def create_order(self, *args: Any) -> dict[str, Any]:
        self.calls.append(args)
        return {"id": "OABCDE-FGHIJ-KLMNOP", "clientOrderId": None, "status": None, "symbol": "BTC/USD"}


def venue(grace_s: float = 15.0) -> tuple[CcxtVenue, Recording]:
    stub = Recording(make_exchange("kraken", url_override="http://127.0.0.1:9"))
    return CcxtVenue("KRAKEN", stub, ["BTC/USD"], in_flight_grace_s=grace_s), stub


def order(coid: str, **kw: Any) -> SubmitOrder:
    fields: dict[str, Any] = {"order_type": OrderType.LIMIT, "limit_price": Decimal("42000.5"), **kw}
    return SubmitOrder(id=derive_id("k", coid), ts_event=1, ts_init=1, strategy_id="sma", instrument_id="BTCUSD.KRAKEN",
                       client_order_id=coid, side=Side.BUY, quantity=Decimal("0.25"), **fields)


def test_kraken_takes_gtc_ioc_gtd_and_post_only_but_not_fok() -> None:
    v, _ = venue()
    assert {"gtc", "ioc", "gtd", "post_only"} <= v.capabilities and "fok" not in v.capabilities
    assert v.refusal(order("tw-fok", time_in_force=TimeInForce.FOK)).endswith("time in force FOK")


def test_start_up_skips_the_assets_call_kraken_ccxt_would_make() -> None:
    assert ccxt_config("kraken")["has"] == {"fetchCurrencies": False}
    assert make_exchange("kraken").has["fetchCurrencies"] is False


@pytest.mark.parametrize("coid", ["tw-short-1", "d15708c1-dbb6-465d-b77d-47258319cc90",
                                  "da8e4ad59b78481c93e589746b0cf91f", "x" * 18])
def test_a_client_order_id_kraken_takes_is_sent_as_it_is(coid: str) -> None:
    assert _kraken_client_id(coid) == coid


def test_a_tradewire_client_order_id_is_sent_as_a_short_uuid_and_read_back_as_ours() -> None:
    coid = client_order_id("sma", "signal-1")  # "tw-" + 24 hex digits: 27 characters, no Kraken format
    sent = _kraken_client_id(coid)
    assert len(coid) == 27 and len(sent) == 32 and int(sent, 16) >= 0 and _kraken_client_id(coid) == sent
    v, _ = venue()
    assert v._venue_coid(coid) == sent
    answer = v._to_order({"id": "O1", "clientOrderId": sent, "status": "open", "symbol": "BTC/USD"})
    assert answer.client_order_id == coid


async def test_a_post_only_gtd_limit_reaches_ccxt_with_kraken_parameters() -> None:
    v, stub = venue(grace_s=15.0)
    expire = 1_900_000_000
    answer = await v.venue_place(order("tw-gtd-1", post_only=True, time_in_force=TimeInForce.GTD,
                                       expire_time_ns=expire * 1_000_000_000))
    symbol, kind, side, amount, price, params = stub.calls[0]
    assert (symbol, kind, side, amount, price) == ("BTC/USD", "limit", "buy", "0.25", "42000.5")
    assert params["clientOrderId"] == "tw-gtd-1" and params["postOnly"] is True
    assert (params["timeInForce"], params["expiretm"]) == ("GTD", str(expire))
    deadline = datetime.fromisoformat(params["deadline"].replace("Z", "+00:00")).timestamp()
    assert 14.0 <= deadline - time.time() <= 15.5  # the in-flight grace, within Kraken's 2..60 s
    assert answer.client_order_id == "tw-gtd-1" and answer.venue_order_id == "OABCDE-FGHIJ-KLMNOP"


@pytest.mark.parametrize(("grace_s", "ahead"), [(0.5, 2.0), (300.0, 60.0)])
async def test_the_deadline_stays_within_what_kraken_takes(grace_s: float, ahead: float) -> None:
    v, stub = venue(grace_s=grace_s)
    await v.venue_place(order("tw-dl-1"))
    deadline = datetime.fromisoformat(stub.calls[0][5]["deadline"].replace("Z", "+00:00")).timestamp()
    assert abs(deadline - time.time() - ahead) < 1.0


async def test_a_stop_limit_goes_as_kraken_stop_loss_price() -> None:
    v, stub = venue()
    await v.venue_place(order("tw-stop-1", order_type=OrderType.STOP_LIMIT, trigger_price=Decimal("43000")))
    params = stub.calls[0][5]
    assert params["stopLossPrice"] == "43000" and "triggerPrice" not in params
