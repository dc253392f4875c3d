"""Kalshi's wire, from the recorded answers in tests/fixtures/prediction/kalshi: what kalshi-python-sync 3.2.0's
strict models can and cannot read, the YES/NO <-> side/action mapping, orders and fills in both wire revisions,
books, trades and resolutions."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tests.fakes.kalshi_fake import SDK_EXTRAS, legacy_twins
from tradewire_common.config import PredictionFeedConfig
from tradewire_common.schemas import BookDelta, BookLevel, BookSnapshot, Liquidity, Side, TradeTick
from tradewire_datafeed.prediction.kalshi import KalshiData, book_levels, snapshot
from tradewire_datafeed.prediction.kalshi import resolution_of as data_resolution
from tradewire_execution.venues.kalshi_adapter import (
    error_text,
    from_kalshi,
    parse_fill,
    parse_order,
    resolution_of,
    to_kalshi,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "prediction" / "kalshi"
RECORDED = json.loads((FIXTURES / "ccxt-kalshi.httpResponses.json").read_text())["methods"]


def recorded(method: str) -> Any:
    return RECORDED[method][0]["httpResponse"]


def synthetic(name: str) -> Any:
    return json.loads((FIXTURES / f"nt-synthetic-{name}.json").read_text())


D = Decimal
CONFIG = PredictionFeedConfig(venue="KALSHI", adapter="kalshi", markets=("KXELONMARS-99",),
                              url_override="http://127.0.0.1:9")


# --- the SDK's models against the recorded (current) wire ------------------------------------------------


def test_sdk_3_2_0_cannot_read_the_current_market_book_trade_and_candle_answers() -> None:
    from kalshi_python_sync.models import (
        GetMarketCandlesticksResponse,
        GetMarketOrderbookResponse,
        GetTradesResponse,
        Market,
    )

    with pytest.raises(ValidationError) as market:
        Market.from_dict(recorded("fetchTicker")["market"])
    missing = {e["loc"][0] for e in market.value.errors()}
    assert {"subtitle", "yes_bid", "yes_ask", "last_price", "volume", "open_interest", "notional_value",
            "liquidity", "category", "risk_limit_cents", "tick_size"} <= missing
    assert "settlement_timer_seconds" in missing  # a string ("1800") where 3.2.0 wants an int
    with pytest.raises(ValidationError):  # the book is under "orderbook_fp" now
        GetMarketOrderbookResponse.from_dict(recorded("fetchOrderBook"))
    with pytest.raises(ValidationError) as trades:
        GetTradesResponse.from_dict(recorded("fetchTrades"))
    assert {"count", "yes_price", "price"} <= {e["loc"][0] for e in trades.value.errors()}
    with pytest.raises(ValidationError):  # no integer OHLC, end_period_ts a string
        GetMarketCandlesticksResponse.from_dict(recorded("fetchOHLCV"))


def test_sdk_3_2_0_reads_the_same_answers_with_the_fakes_legacy_twins() -> None:
    from kalshi_python_sync.models import GetMarketCandlesticksResponse, GetTradesResponse, Market

    market = Market.from_dict(legacy_twins(recorded("fetchTicker")["market"]) | SDK_EXTRAS["market"])
    assert market is not None and (market.yes_bid, market.volume, market.yes_bid_dollars) == (8, 94885, "0.0800")
    trades = GetTradesResponse.from_dict(
        {"cursor": "", "trades": [legacy_twins(t) | {"price": legacy_twins(t)["yes_price"]}
                                  for t in recorded("fetchTrades")["trades"]]})
    assert trades is not None and [t.count for t in trades.trades] == [9, 1, 9]
    candles = GetMarketCandlesticksResponse.from_dict(legacy_twins(recorded("fetchOHLCV")))
    assert candles is not None and candles.candlesticks[0].yes_ask.close == 10


def test_sdk_3_2_0_error_model_misses_kalshis_nested_error_which_the_adapter_reads() -> None:
    from kalshi_python_sync.models import ErrorResponse

    body = {"error": {"code": "invalid_order", "message": "invalid order",
                      "details": "exactly one of yes_price, no_price, yes_price_dollars, or no_price_dollars"}}
    parsed = ErrorResponse.from_dict(body)
    assert parsed is not None and (parsed.code, parsed.message) == (None, None)
    assert error_text(json.dumps(body).encode()) == (
        "invalid_order: invalid order (exactly one of yes_price, no_price, yes_price_dollars, or no_price_dollars)")


# --- orders and fills -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("symbol", "side", "kalshi"), [
    ("KXELONMARS-99-YES", Side.BUY, ("KXELONMARS-99", "yes", "buy")),
    ("KXELONMARS-99-YES", Side.SELL, ("KXELONMARS-99", "yes", "sell")),
    ("KXELONMARS-99-NO", Side.BUY, ("KXELONMARS-99", "no", "buy")),
    ("KXELONMARS-99-NO", Side.SELL, ("KXELONMARS-99", "no", "sell")),
])
def test_yes_no_instruments_map_to_kalshi_side_and_action_and_back(symbol: str, side: Side,
                                                                   kalshi: tuple[str, str, str]) -> None:
    assert to_kalshi(symbol, side) == kalshi
    assert from_kalshi(*kalshi) == (symbol, side)


def test_a_symbol_without_an_outcome_is_refused() -> None:
    with pytest.raises(ValueError, match="<ticker>-YES"):
        to_kalshi("KXELONMARS-99", Side.BUY)


def test_the_recorded_open_orders_parse_on_their_own_sides() -> None:
    buy_yes, sell_no = (parse_order(o, None, 0) for o in recorded("fetchOpenOrders")["orders"])
    assert (buy_yes.symbol, buy_yes.side, buy_yes.limit_price, buy_yes.quantity, buy_yes.status) == (
        "KXELONMARS-99-YES", Side.BUY, D("0.0800"), D("10.00"), "open")
    assert (sell_no.symbol, sell_no.side, sell_no.limit_price) == ("KXELONMARS-99-NO", Side.SELL, D("0.9300"))


def test_a_fill_reads_the_same_in_the_current_revision_and_in_3_2_0s() -> None:
    current = {"fill_id": "f-1", "trade_id": "f-1", "order_id": "o-1", "client_order_id": "tw-1",
               "ticker": "KXELONMARS-99", "market_ticker": "KXELONMARS-99", "side": "no", "action": "buy",
               "count_fp": "9.40", "yes_price_dollars": "0.1000", "no_price_dollars": "0.9000", "is_taker": True,
               "fee_cost": "0.0100", "created_time": "2026-06-12T17:11:11.927591Z"}
    legacy = {"trade_id": "f-1", "order_id": "o-1", "client_order_id": "tw-1", "ticker": "KXELONMARS-99",
              "side": "no", "action": "buy", "count": 9, "yes_price": 10, "no_price": 90, "is_taker": False,
              "ts": 1781284271}
    new, old = parse_fill(current), parse_fill(legacy)
    assert (new.symbol, new.side, new.quantity, new.price, new.fee, new.liquidity) == (
        "KXELONMARS-99-NO", Side.BUY, D("9.40"), D("0.9000"), D("0.0100"), Liquidity.TAKER)
    assert (old.symbol, old.side, old.quantity, old.price, old.liquidity) == (
        "KXELONMARS-99-NO", Side.BUY, D(9), D("0.9"), Liquidity.MAKER)
    assert new.ts_ns == 1781284271_927591000 and old.ts_ns == 1781284271_000000000


def test_settlements_and_markets_resolve_to_payouts_of_both_outcomes() -> None:
    resolved = resolution_of("KALSHI", "KXELONMARS-99", {"market_result": "yes", "settled_time":
                                                         "2026-06-12T00:00:00Z"}, 1, source="test")
    assert resolved is not None and resolved.resolution == "YES" and resolved.ts_event == 1781222400 * 10**9
    assert [(p.instrument_id, p.payout) for p in resolved.payouts] == [
        ("KXELONMARS-99-YES.KALSHI", D(1)), ("KXELONMARS-99-NO.KALSHI", D(0))]
    scalar = resolution_of("KALSHI", "X-1", {"market_result": "scalar", "value": 37}, 1, source="test")
    assert scalar is not None and [p.payout for p in scalar.payouts] == [D("0.37"), D("0.63")]
    assert resolution_of("KALSHI", "X-1", {"market_result": ""}, 1, source="test") is None
    assert data_resolution("KALSHI", recorded("fetchTicker")["market"], 1) is None  # "result": "" while active
    settled = data_resolution("KALSHI", {"ticker": "X-1", "result": "no", "determination_ts": 5}, 1)
    assert settled is not None and settled.id == resolution_of("KALSHI", "X-1", {"market_result": "no"}, 1,
                                                               source="other").id  # one id, whoever learns it


# --- market data --------------------------------------------------------------------------------------------------


def test_the_recorded_book_is_a_yes_book_whose_asks_are_the_no_bids_mirrored() -> None:
    yes, no = book_levels(recorded("fetchOrderBook"))
    book = snapshot("KXELONMARS-99-YES.KALSHI", "YES", yes, no, 3, 1)
    assert book.bids == (BookLevel(D("0.0800"), D("444.32")), BookLevel(D("0.0700"), D("3195.84")),
                         BookLevel(D("0.0600"), D("2201.86")))
    assert book.asks[0] == BookLevel(D("0.1200"), D("1967.33"))  # = the market's yes_ask / yes_ask_size_fp
    market = recorded("fetchTicker")["market"]
    assert (str(book.asks[0].price), str(book.asks[0].size)) == (market["yes_ask_dollars"], market["yes_ask_size_fp"])
    mirror = snapshot("KXELONMARS-99-NO.KALSHI", "NO", yes, no, 1, 1)
    assert (mirror.bids, mirror.asks) == ((BookLevel(D("0.8800"), D("1967.33")),),
                                          (BookLevel(D("0.9200"), D("444.32")),))


def test_recorded_markets_and_trades_become_market_info_and_ticks() -> None:
    data = KalshiData(CONFIG)
    mars, colony = (data.market_info(m) for m in recorded("fetchTickers")["markets"])
    assert (mars.market_id, mars.volume, mars.liquidity, mars.active, mars.tick_size) == (
        "KXELONMARS-99", D("94884.62"), D(0), True, D("0.0100"))
    assert mars.end_ns == int(datetime(2099, 8, 1, 4, 59, tzinfo=UTC).timestamp()) * 10**9  # close_time
    assert colony.tick_size == D("0.0010")
    first, _, third = (data.trade_tick(t, "KXELONMARS-99-YES.KALSHI") for t in recorded("fetchTrades")["trades"])
    assert (first.price, first.size, first.aggressor_side) == (D("0.1000"), D("9.40"), Side.BUY)
    assert (third.price, third.aggressor_side) == (D("0.0800"), Side.SELL)
    no = data.trade_tick(recorded("fetchTrades")["trades"][2], "KXELONMARS-99-NO.KALSHI")
    assert (no.price, no.aggressor_side) == (D("0.9200"), Side.BUY)


def test_websocket_snapshot_delta_and_trade_messages_apply_to_the_single_book() -> None:
    data = KalshiData(CONFIG)
    books: dict[str, Any] = {}
    yes, no = data._apply(synthetic("ws_orderbook_snapshot"), books, 1)
    assert isinstance(yes, BookSnapshot) and isinstance(no, BookSnapshot)
    assert yes.bids[0] == BookLevel(D("0.4200"), D("13.00")) and yes.asks[0] == BookLevel(D("0.4400"), D("17.00"))
    own, mirror = data._apply(synthetic("ws_orderbook_delta"), books, 2)
    assert isinstance(own, BookDelta) and isinstance(mirror, BookDelta)
    assert (own.instrument_id, own.side, own.price, own.size) == (
        "KXBTC-25MAR15-B100000-YES.KALSHI", Side.BUY, D("0.4200"), D("63.00"))  # 13 + 50
    assert (mirror.instrument_id, mirror.side, mirror.price, mirror.size) == (
        "KXBTC-25MAR15-B100000-NO.KALSHI", Side.SELL, D("0.5800"), D("63.00"))
    tick, _no_tick = data._apply(synthetic("ws_trade"), books, 1)
    assert isinstance(tick, TradeTick) and (tick.price, tick.size, tick.aggressor_side, tick.ts_event) == (
        D("0.3600"), D("136.00"), Side.SELL, 1741052641 * 10**9)


def test_the_data_clients_signature_verifies_like_the_sdks_over_timestamp_method_and_path() -> None:
    import base64

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    from kalshi_python_sync.auth import KalshiAuth

    from tests.fakes.kalshi_fake import new_key_pair
    from tradewire_datafeed.prediction.kalshi import signed_headers

    private, public = new_key_pair()
    key: Any = serialization.load_pem_public_key(public.encode())
    ours = signed_headers("kid", private, "get", "/trade-api/ws/v2?x=1", now_ms=1781284271000)
    sdks = KalshiAuth("kid", private).create_auth_headers("GET", "/trade-api/ws/v2")
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
    for headers in (ours, sdks):
        message = f"{headers['KALSHI-ACCESS-TIMESTAMP']}GET/trade-api/ws/v2".encode()
        key.verify(base64.b64decode(headers["KALSHI-ACCESS-SIGNATURE"]), message, pss, hashes.SHA256())
    assert ours["KALSHI-ACCESS-TIMESTAMP"] == "1781284271000" and ours["KALSHI-ACCESS-KEY"] == "kid"
