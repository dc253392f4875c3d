"""Polymarket fills from recorded user-channel trades (taker and maker legs, each on its own token and side), the
client's errors as the framework's, and the framework's provisional-fill rules on a stub venue."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from py_clob_client_v2.exceptions import PolyApiException, PolyException

from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    FillConfirmed,
    FillReversed,
    Liquidity,
    OrderFilled,
    OrderType,
    Side,
    SubmitOrder,
    TimeInForce,
)
from tradewire_execution.live.base import (
    Ambiguous,
    CollectingHost,
    LiveVenueAdapter,
    NotSent,
    OrderNotFoundAtVenue,
    RateLimited,
    VenueFill,
    VenueOrder,
    VenueRefused,
)
from tradewire_execution.live.credentials import Credentials
from tradewire_execution.venue import CAP_GTC, CAP_LIMIT
from tradewire_execution.venues.polymarket_adapter import PolymarketAdapter, venue_error

FIXTURES = Path(__file__).parents[1] / "fixtures" / "prediction" / "polymarket"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def adapter() -> PolymarketAdapter:
    return PolymarketAdapter("POLYMARKET", credentials=Credentials(secret="0x" + "4c" * 32), symbols=[],
                             url_override="http://127.0.0.1:9")


def test_a_no_taker_crossing_a_yes_maker_gives_each_order_a_buy_on_its_own_token() -> None:
    trade = load("ws_user_trade3.json")  # BUY No 0.49 (taker) against BUY Yes 0.513 (maker), CONFIRMED
    taker_id, maker_id = trade["taker_order_id"], trade["maker_orders"][0]["order_id"]
    (taker,) = adapter()._fills_of(trade, {taker_id})
    (maker,) = adapter()._fills_of(trade, {maker_id})
    assert (taker.side, taker.price, taker.quantity, taker.liquidity, taker.status) == (
        Side.BUY, Decimal("0.49"), Decimal(5), Liquidity.TAKER, "final")
    assert (maker.symbol, maker.side, maker.price, maker.quantity, maker.liquidity) == (
        trade["maker_orders"][0]["asset_id"], Side.BUY, Decimal("0.513"), Decimal(5), Liquidity.MAKER)
    # the recorded message's top-level asset_id is the YES token although the taker bought NO (outcome "No"):
    # a fill's instrument is therefore always its own order's, never the trade's asset_id
    assert trade["outcome"] == "No" and trade["asset_id"] == maker.symbol
    assert taker.trade_id == maker.trade_id == trade["id"]
    assert taker.ts_ns == int(trade["match_time"]) * 1_000_000_000


def test_a_matched_trade_is_provisional_and_only_our_maker_legs_are_fills() -> None:
    trade = load("ws_user_trade2.json")
    (fill,) = adapter()._fills_of(trade, {trade["taker_order_id"]})
    assert fill.status == "provisional" and fill.fee == 0
    several = load("ws_user_trade4.json")
    ours = {several["maker_orders"][1]["order_id"]}
    (leg,) = adapter()._fills_of(several, ours)
    assert (leg.price, leg.quantity) == (Decimal("0.35"), Decimal(5))


def _api_error(status: int | None, body: Any = None, cause: Exception | None = None) -> PolyApiException:
    if status is None:
        try:
            try:
                raise cause or httpx.ReadTimeout("slow")
            except httpx.RequestError:
                raise PolyApiException(error_msg="Request exception!") from None
        except PolyApiException as exc:
            exc.__context__ = cause or httpx.ReadTimeout("slow")
            return exc
    response = httpx.Response(status, json=body, request=httpx.Request("POST", "http://127.0.0.1/order"))
    return PolyApiException(response)


def test_client_errors_map_to_refused_rate_limited_ambiguous_and_not_sent() -> None:
    refused = venue_error(_api_error(400, {"error": "invalid signature"}), creating=True)
    assert isinstance(refused, VenueRefused) and str(refused) == "invalid signature (400)"
    assert isinstance(venue_error(_api_error(429, {"error": "Too Many Requests"}), creating=True), RateLimited)
    assert isinstance(venue_error(_api_error(503, {"error": "x"}), creating=True), Ambiguous)
    assert isinstance(venue_error(_api_error(None), creating=True), Ambiguous)
    assert isinstance(venue_error(_api_error(None, cause=httpx.ConnectError("refused")), creating=True), NotSent)
    assert isinstance(venue_error(_api_error(404, {"error": "order not found"}), creating=False), OrderNotFoundAtVenue)
    assert isinstance(venue_error(PolyException("invalid price (0.999)"), creating=True), VenueRefused)


# --- the framework's provisional fills, on a stub venue ---------------------------------------------------------


class Stub(LiveVenueAdapter):
    def __init__(self) -> None:
        super().__init__("PM", capabilities={CAP_LIMIT, CAP_GTC}, websocket=False)
        self.fills: list[VenueFill] = []

    async def venue_place(self, order: SubmitOrder) -> VenueOrder:
        return VenueOrder(client_order_id=order.client_order_id, venue_order_id="h1", status="open")

    async def venue_cancel(self, order: SubmitOrder, venue_order_id: str) -> VenueOrder:
        raise OrderNotFoundAtVenue("no")

    async def venue_order(self, order: SubmitOrder) -> VenueOrder:
        filled = sum((f.quantity for f in self.fills if f.status != "failed"), Decimal(0))
        return VenueOrder(client_order_id=order.client_order_id, venue_order_id="h1", status="open",
                          filled_qty=filled)

    async def venue_open_orders(self) -> list[VenueOrder]:
        return [await self.venue_order(self.tracked_orders()[0].order)] if self.tracked_orders() else []

    async def venue_order_fills(self, order: SubmitOrder, venue_order_id: str) -> list[VenueFill]:
        return list(self.fills)

    async def venue_fills(self, since_ns: int) -> list[VenueFill]:
        return list(self.fills)

    async def venue_balances(self) -> dict[str, Decimal]:
        return {}


def fill(trade: str, qty: str, status: str) -> VenueFill:
    return VenueFill(trade_id=trade, venue_order_id="h1", side=Side.BUY, quantity=Decimal(qty),
                     price=Decimal("0.4"), ts_ns=5, status=status)  # type: ignore[arg-type]


ORDER = SubmitOrder(id=derive_id("stub", 1), ts_event=1, ts_init=1, strategy_id="edge", instrument_id="123.PM",
                    client_order_id="tw-stub-1", side=Side.BUY, order_type=OrderType.LIMIT, quantity=Decimal(10),
                    limit_price=Decimal("0.4"), time_in_force=TimeInForce.GTC)


async def test_each_of_filled_confirmed_and_reversed_is_emitted_once_per_trade_id_across_a_restart() -> None:
    venue, host = Stub(), CollectingHost()
    venue.attach(host)
    await venue.submit(ORDER, 1)
    venue.fills = [fill("t1", "4", "provisional"), fill("t2", "6", "provisional"), fill("t0", "3", "failed")]
    await venue.poll_once()
    await venue.poll_once()
    provisional = [e for e in host.events if isinstance(e, OrderFilled)]
    assert [(e.trade_id, e.provisional) for e in provisional] == [("t1", True), ("t2", True)]  # t0: never counted

    restarted, host2 = Stub(), CollectingHost()
    restarted.restore_state(venue.export_state())
    restarted.attach(host2)
    restarted.fills = [fill("t1", "4", "final"), fill("t2", "6", "failed"), fill("t3", "6", "final")]
    for _ in range(3):
        await restarted.poll_once()
    kinds = [(type(e).__name__, getattr(e, "trade_id", "")) for e in host2.events
             if isinstance(e, OrderFilled | FillConfirmed | FillReversed)]
    assert kinds == [("FillConfirmed", "t1"), ("FillReversed", "t2"), ("OrderFilled", "t3")]
    tracked = restarted.tracked("tw-stub-1")
    assert tracked is not None and tracked.filled == Decimal(10) and tracked.provisional == {}
    (t3,) = [e for e in host2.events if isinstance(e, OrderFilled)]
    assert not t3.provisional and not t3.partial


@pytest.mark.parametrize("status", ["final", "failed"])
async def test_a_trade_first_seen_settled_is_a_plain_fill_or_nothing(status: str) -> None:
    venue, host = Stub(), CollectingHost()
    venue.attach(host)
    await venue.submit(ORDER, 1)
    venue.fills = [fill("t9", "10", status)]
    await venue.poll_once()
    fills = [e for e in host.events if isinstance(e, OrderFilled)]
    assert [(f.trade_id, f.provisional) for f in fills] == ([("t9", False)] if status == "final" else [])
    assert not [e for e in host.events if isinstance(e, FillConfirmed | FillReversed)]
