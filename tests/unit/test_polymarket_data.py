"""Polymarket's recorded messages (tests/fixtures/prediction/polymarket, see its PROVENANCE.md) parsed by the
data client's pure functions: books best first, websocket deltas/trades/resolutions, gap detection, Gamma markets
and resolutions."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tradewire_common.schemas import BookDelta, BookSnapshot, MarketResolved, Side, TradeTick
from tradewire_datafeed.prediction.polymarket import book_snapshot, market_info, resolution_of, ws_events

FIXTURES = Path(__file__).parents[1] / "fixtures" / "prediction" / "polymarket"
VENUE = "POLYMARKET"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def test_a_rest_book_listed_worst_first_becomes_a_snapshot_best_first() -> None:
    raw = load("http_book.json")
    snap = book_snapshot(raw, VENUE, depth=3)
    assert snap.instrument_id == f"{raw['asset_id']}.{VENUE}"
    assert snap.bids[0].price == max(Decimal(b["price"]) for b in raw["bids"]) == Decimal("0.1")
    assert snap.asks[0].price == min(Decimal(a["price"]) for a in raw["asks"]) == Decimal("0.14")
    assert [b.price for b in snap.bids] == sorted((b.price for b in snap.bids), reverse=True) and len(snap.bids) == 3
    assert snap.ts_event == 1728799418260 * 1_000_000


def test_the_recorded_websocket_book_then_its_price_change_give_a_snapshot_and_a_delta() -> None:
    books: dict[str, Any] = {}
    (snap,) = ws_events(load("ws_book.json"), VENUE, books, depth=5)
    assert isinstance(snap, BookSnapshot)
    assert (snap.bids[0].price, snap.asks[0].price) == (Decimal("0.511"), Decimal("0.514"))
    (delta,) = ws_events(load("ws_price_change.json"), VENUE, books)  # the old single-level form
    assert isinstance(delta, BookDelta)
    assert (delta.instrument_id, delta.side, delta.price, delta.size) == (
        snap.instrument_id, Side.SELL, Decimal("0.514"), Decimal("21574.08"))
    token = snap.instrument_id.split(".")[0]
    assert books[token]["SELL"][Decimal("0.514")] == Decimal("21574.08")


def test_price_changes_that_agree_with_the_kept_book_pass_and_a_disagreeing_best_bid_is_a_gap() -> None:
    message = load("ws_price_change_v2_edited.json")  # three changes; each says best bid 0.6, best ask 0.7
    token = message["price_changes"][0]["asset_id"]
    books = {token: {"BUY": {Decimal("0.6"): Decimal(10)}, "SELL": {Decimal("0.7"): Decimal(5)}}}
    first_two = {**message, "price_changes": message["price_changes"][:2]}
    deltas = ws_events(first_two, VENUE, books)
    assert [(d.side, d.price, d.size) for d in deltas if isinstance(d, BookDelta)] == [
        (Side.BUY, Decimal("0.6"), Decimal(3300)), (Side.BUY, Decimal("0.5"), Decimal(3400))]
    assert all(d.ts_event == 1729084877448 * 1_000_000 for d in deltas)
    # the third change puts a bid at 0.7 while it reports the best bid still 0.6: a change was lost
    with pytest.raises(ConnectionError, match="book gap"):
        ws_events(message, VENUE, books)
    with pytest.raises(ConnectionError, match="book gap"):
        ws_events(first_two, VENUE, {token: {"BUY": {Decimal("0.61"): Decimal(1)}, "SELL": {}}})


def test_last_trade_price_is_a_trade_tick_with_its_aggressor_side() -> None:
    (tick,) = ws_events(load("ws_last_trade_price.json"), VENUE, {})
    assert isinstance(tick, TradeTick)
    assert (tick.price, tick.size, tick.aggressor_side, tick.ts_event) == (
        Decimal("0.491"), Decimal("85.36"), Side.SELL, 1724564136087 * 1_000_000)


def test_a_tick_size_change_is_not_a_market_event() -> None:
    assert ws_events(load("ws_tick_size_change.json"), VENUE, {}) == []


def test_market_resolved_pays_the_winning_token_one_and_the_other_zero() -> None:
    raw = load("ws_market_resolved_msg.json")
    (resolved,) = ws_events(raw, VENUE, {})
    assert isinstance(resolved, MarketResolved)
    assert (resolved.venue, resolved.market_id, resolved.resolution) == (VENUE, raw["market"], "YES")
    assert {p.instrument_id: p.payout for p in resolved.payouts} == {
        f"{raw['assets_ids'][0]}.{VENUE}": Decimal(1), f"{raw['assets_ids'][1]}.{VENUE}": Decimal(0)}


def test_a_gamma_market_with_json_in_strings_becomes_market_info() -> None:
    info = market_info(load("gamma_market.json"), VENUE)
    assert [o.label for o in info.outcomes] == ["Up", "Down"]
    assert info.outcomes[0].instrument_id.startswith("1042398980388071360523998001514085214677370759339649911625")
    assert (info.outcomes[0].price, info.outcomes[1].price) == (Decimal("0.505"), Decimal("0.495"))
    assert info.liquidity == Decimal("20328.3747") and info.tick_size == Decimal("0.01")
    assert info.end_ns == 1773307500 * 1_000_000_000 and not info.closed


def test_gamma_resolutions_yes_no_and_the_unresolvable_legacy_zero_zero_market() -> None:
    no = resolution_of(load("gamma_market_closed_binary_accepting_false.json"), VENUE)
    yes = resolution_of(load("gamma_market_closed_binary_accepting_true.json"), VENUE)
    assert no is not None and no.resolution == "NO" and [p.payout for p in no.payouts] == [0, 1]
    assert yes is not None and yes.resolution == "YES" and [p.payout for p in yes.payouts] == [1, 0]
    assert yes.ts_event > 0
    assert resolution_of(load("gamma_market_closed_zero_zero_legacy.json"), VENUE) is None
    assert resolution_of(load("gamma_market.json"), VENUE) is None  # still open


def test_the_search_response_markets_parse() -> None:
    raws = [m for e in load("search_response.json")["events"] for m in e.get("markets", [])]
    infos = [market_info(r, VENUE) for r in raws]
    assert infos and all(i.market_id.startswith("0x") and len(i.outcomes) == 2 for i in infos)


def test_the_recorded_clob_book_of_ccxts_capture_parses_with_the_same_function() -> None:
    case = load("ccxt_polymarket.httpResponses.json")["methods"]["fetchOrderBook"][0]["httpResponse"]
    snap = book_snapshot(case, VENUE)
    assert (snap.bids[0].price, snap.asks[0].price) == (Decimal("0.005"), Decimal("0.995"))
