"""The Coinbase row of the ccxt adapter's exchange profiles, offline: what reaches ccxt's ``create_order`` for
each order shape (client order id, GTD end time, post-only, market buys in base currency), the start-up options,
capabilities, and Coinbase's EXPIRED read as expired."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tradewire_common.ids import derive_id
from tradewire_common.schemas import OrderType, Side, SubmitOrder, TimeInForce
from tradewire_common.urls import ccxt_config
from tradewire_execution.venues.ccxt_adapter import CcxtVenue, make_exchange


class Recording:
    """Stands in for the ccxt client: records ``create_order`` and answers like Coinbase's ccxt."""

    def __init__(self, exchange: Any) -> None:
        self.id, self.has, self.urls = exchange.id, exchange.has, exchange.urls
        self.calls: list[tuple[Any, ...]] = []

    async def create_order(self, *args: Any) -> dict[str, Any]:
        self.calls.append(args)
        return {"id": "0b1e4c53-0000-4000-8000-000000000001", "clientOrderId": args[5]["client_order_id"],
                "status": None, "symbol": "BTC/USD"}


def venue() -> tuple[CcxtVenue, Recording]:
    stub = Recording(make_exchange("coinbase", url_override="http://127.0.0.1:9"))
    return CcxtVenue("COINBASE", stub, ["BTC/USD"]), stub


def order(coid: str, **kw: Any) -> SubmitOrder:
    fields: dict[str, Any] = {"order_type": OrderType.LIMIT, "limit_price": Decimal("42000.01"), **kw}
    if fields["order_type"] is OrderType.MARKET:
        fields.pop("limit_price")
    return SubmitOrder(id=derive_id("c", coid), ts_event=1, ts_init=1, strategy_id="sma",
                       instrument_id="BTCUSD.COINBASE", client_order_id=coid, side=kw.pop("side", Side.BUY),
                       quantity=Decimal("0.1"), **{k: v for k, v in fields.items() if k != "side"})


def test_coinbase_takes_gtc_ioc_fok_gtd_and_post_only() -> None:
    v, _ = venue()
    assert {"gtc", "ioc", "fok", "gtd", "post_only", "market", "limit"} <= v.capabilities
    assert "day" not in v.capabilities and not v.websocket  # polled


def test_start_up_stays_on_the_advanced_trade_api() -> None:
    config = ccxt_config("coinbase")
    assert config["has"] == {"fetchCurrencies": False}  # no v2 currencies / exchange-rates calls
    assert config["options"]["fetchTime"] == "v3PublicGetBrokerageTime"
    assert config["options"]["fetchBalance"] == "v3PrivateGetBrokerageAccounts"
    assert config["options"]["fetchMarkets"] == "fetchMarketsV3"  # the string option, not the spot-types dict


async def test_our_client_order_id_is_coinbase_client_order_id_not_ccxt_random_one() -> None:
    v, stub = venue()
    answer = await v.venue_place(order("tw-cb-1"))
    params = stub.calls[0][5]
    assert params["client_order_id"] == "tw-cb-1" and "clientOrderId" not in params
    assert answer.client_order_id == "tw-cb-1"


async def test_a_gtd_post_only_limit_carries_end_time_in_iso_8601() -> None:
    v, stub = venue()
    await v.venue_place(order("tw-cb-gtd", post_only=True, time_in_force=TimeInForce.GTD,
                              expire_time_ns=1_900_000_000_123_456_789))
    params = stub.calls[0][5]
    assert (params["timeInForce"], params["end_time"], params["postOnly"]) == (
        "GTD", "2030-03-17T17:46:40.123Z", True)


async def test_a_market_buy_is_sized_in_base_currency() -> None:
    v, stub = venue()
    await v.venue_place(order("tw-cb-mkt", order_type=OrderType.MARKET))
    _symbol, kind, side, amount, price, params = stub.calls[0]
    assert (kind, side, amount, price) == ("market", "buy", "0.1", None)
    assert params["order_configuration"] == {"market_market_ioc": {"base_size": "0.1"}}
    assert params["createMarketBuyOrderRequiresPrice"] is False


async def test_a_market_sell_is_left_to_ccxt() -> None:
    v, stub = venue()
    await v.venue_place(order("tw-cb-sell", order_type=OrderType.MARKET, side=Side.SELL))
    assert "order_configuration" not in stub.calls[0][5]


def test_coinbase_expired_status_is_an_expiry_not_a_cancel() -> None:
    v, _ = venue()
    raw = {"id": "x", "clientOrderId": "tw-1", "status": "canceled", "symbol": "BTC/USD",
           "info": {"status": "EXPIRED"}}
    assert v._to_order(raw).status == "expired"
    assert v._to_order({**raw, "info": {"status": "CANCELLED"}}).status == "canceled"
