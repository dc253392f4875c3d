"""Manifold's recorded API v0 responses (PyManifold's cassettes, 2022) through the data client's parsers: markets,
resolutions, trades from bets, the synthetic book of a cpmm-1 pool and open limit bets, paged history."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from tradewire_common.config import PredictionFeedConfig
from tradewire_common.schemas import Side
from tradewire_datafeed.prediction import VENUES, venue_data
from tradewire_datafeed.prediction.manifold import (
    ManifoldData,
    parse_market,
    parse_resolution,
    parse_trades,
    pool_levels,
    resolution_id,
    synthetic_book,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "prediction" / "manifold"
BTC = "rIR6mWqaO9xKLifr6cLL"  # "Will Bitcoin's price fall below $25k for at least one day in 2022?" (resolved YES)


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


MARKETS = load("v0_markets_2022-10-10.json")


def by_id(market_id: str) -> dict[str, Any]:
    return next(m for m in MARKETS if m["id"] == market_id)


def test_binary_markets_have_a_yes_and_a_no_instrument_priced_from_the_probability() -> None:
    info = parse_market(by_id("8gUQD1g6X4BuWZwT4CpZ"), "manifold", now_ms=1665430300000)
    assert info.venue == "MANIFOLD" and info.question == "Does @LivInTheLookingGlass run @v?"
    assert [(o.label, o.instrument_id, o.price) for o in info.outcomes] == [
        ("YES", "8gUQD1g6X4BuWZwT4CpZ-YES.MANIFOLD", Decimal("0.20000000000000004")),
        ("NO", "8gUQD1g6X4BuWZwT4CpZ-NO.MANIFOLD", Decimal("0.79999999999999996"))]
    assert (info.volume, info.liquidity, info.end_ns) == (Decimal("205"), Decimal("100"), 1704085140000 * 1_000_000)
    assert info.active and not info.closed


def test_every_recorded_market_parses_and_only_binary_ones_get_outcomes() -> None:
    infos = [parse_market(m, "MANIFOLD", now_ms=1665430300000) for m in MARKETS]
    assert sum(1 for i in infos if i.outcomes) == 413  # the BINARY markets of the recording
    resolved = [i for i, m in zip(infos, MARKETS, strict=True) if m["isResolved"]]
    assert len(resolved) == 119 and all(i.closed and not i.active for i in resolved)


def test_the_older_schema_with_a_numeric_pool_still_parses_and_has_no_pool_book() -> None:
    old = load("v0_market_rIR6mWqaO9xKLifr6cLL_2022-06-15.json")
    assert parse_market(old, "MANIFOLD").outcomes[0].price == Decimal("0.9911535861392651")
    assert pool_levels(old, 5) == ([], [])


def test_resolutions_yes_no_mkt_and_cancel_become_payouts_with_an_id_from_venue_and_market() -> None:
    btc = parse_resolution(load("v0_slug_will-bitcoins-price-fall-below-25k_2022-10-10.json"), "MANIFOLD")
    assert btc is not None and btc.resolution == "YES" and btc.ts_event == 1655299026599 * 1_000_000
    assert [(p.instrument_id, p.payout) for p in btc.payouts] == [(f"{BTC}-YES.MANIFOLD", 1), (f"{BTC}-NO.MANIFOLD", 0)]
    recorded_earlier = parse_resolution(load("v0_market_rIR6mWqaO9xKLifr6cLL_2022-06-15.json"), "MANIFOLD")
    assert recorded_earlier is not None and btc.id == recorded_earlier.id == resolution_id("manifold", BTC)
    no = parse_resolution(by_id("4glpCEM84dYQSq6Nwvle"), "MANIFOLD")
    assert no is not None and [p.payout for p in no.payouts] == [0, 1]  # not its resolutionProbability
    mkt = parse_resolution(by_id("TaOWd6RLq4npElKPhJOS"), "MANIFOLD")
    assert mkt is not None and [p.payout for p in mkt.payouts] == [Decimal("0.33"), Decimal("0.67")]
    cancel = parse_resolution(by_id("mTv9PIRnmigXD7mDgKVI"), "MANIFOLD")
    assert cancel is not None and cancel.resolution == "CANCEL" and [p.payout for p in cancel.payouts] == [
        Decimal("0.5"), Decimal("0.5")]
    assert parse_resolution(by_id("8gUQD1g6X4BuWZwT4CpZ"), "MANIFOLD") is None  # open
    assert parse_resolution(load("v0_market_MIVgHSvQ1s9MRGpm9QUb_pseudo-numeric_2022-10-11.json"), "MANIFOLD") is None


def test_2022_bets_without_fills_are_trades_buys_of_their_outcome_and_sells_of_the_other() -> None:
    bets = load("v0_bets_market-will-bitcoins-price-fall-below-25k_limit45_2022-10-10.json")
    yes = parse_trades(bets, f"{BTC}-YES.MANIFOLD")
    no = parse_trades(bets, f"{BTC}-NO.MANIFOLD")
    assert len(yes) == len(no) == 45 and yes == sorted(yes, key=lambda t: t.ts_event)
    last = next(t for t in yes if t.trade_id == "hqrtGRb9Pz95DNZt5IEL")  # 712 mana for 721.95 YES shares
    assert last.aggressor_side is Side.BUY and last.size == Decimal("721.950671")
    assert abs(last.price - Decimal(712) / Decimal("721.9506708616732")) < Decimal("1e-12")
    mirrored = next(t for t in no if t.trade_id == "hqrtGRb9Pz95DNZt5IEL")
    assert mirrored.aggressor_side is Side.SELL and mirrored.price == 1 - last.price
    # buying YES: YES bets (positive shares) and sales of NO shares (negative shares and amount)
    buys = {b["id"] for b in bets if (b["outcome"] == "YES") == (b["shares"] > 0)}
    assert {t.trade_id for t in yes if t.aggressor_side is Side.BUY} == buys and len(buys) == 31
    sale = next(t for t in yes if t.trade_id == "xKkct2QfzZ1FZVkoON2q")  # 103.81 NO shares sold for 4.96 mana
    assert sale.aggressor_side is Side.BUY and sale.size == Decimal("103.813094")
    assert abs(sale.price - (1 - Decimal("4.959680475675267") / Decimal("103.8130939698064"))) < Decimal("1e-12")


def test_bets_with_fills_give_one_trade_per_fill_taken_and_none_for_unfilled_limit_bets() -> None:
    bets = load("v0_bets_limit45_2022-10-10.json")
    market = "nAuWvKA0ez4faRYVHV5z"
    trades = parse_trades([b for b in bets if b["contractId"] == market], f"{market}-YES.MANIFOLD")
    assert "OwRdCima5kUa4T8ZDbrk" not in {t.trade_id.split(":")[0] for t in trades}  # a limit bet with no fill
    filled = next(t for t in trades if t.trade_id == "VsRS11elP7HSJZ9Zi4HI:0")  # limit .74, 25.97 mana filled
    assert filled.aggressor_side is Side.BUY and filled.size == Decimal("36.420293") and filled.price < Decimal("0.74")
    every = [t for b in {b["contractId"] for b in bets} for t in parse_trades(bets, f"{b}-YES.MANIFOLD")]
    assert all(0 < t.price < 1 and t.size > 0 for t in every)  # the sale (negative amount and shares) is no trade


def test_the_pool_offers_one_level_per_cent_with_the_shares_a_bet_to_that_price_buys() -> None:
    market = by_id("8gUQD1g6X4BuWZwT4CpZ")  # pool YES 200, NO 50, p = 0.5: probability 0.2
    bids, asks = pool_levels(market, 3)
    k = 200 * 50
    n1 = math.sqrt(0.21 * k / 0.79)  # buying YES up to .21: the NO pool grows by the mana spent
    first_ask = 200 + (n1 - 50) - k / n1
    assert [a.price for a in asks] == [Decimal("0.21"), Decimal("0.22"), Decimal("0.23")]
    assert abs(asks[0].size - Decimal(repr(first_ask))) < Decimal("1e-5")
    y1 = math.sqrt(k * 0.81 / 0.19)  # selling YES down to .19 = buying NO: the YES pool grows
    assert [b.price for b in bids] == [Decimal("0.19"), Decimal("0.18"), Decimal("0.17")]
    assert abs(bids[0].size - Decimal(repr(50 + (y1 - 200) - k / y1))) < Decimal("1e-5")


def test_a_skewed_pool_and_open_limit_bets_make_the_book_and_the_no_book_is_its_mirror() -> None:
    btc = load("v0_slug_will-bitcoins-price-fall-below-25k_2022-10-10.json")  # p = 0.5376, probability 0.9912
    open_bets = [{"outcome": "YES", "limitProb": 0.9, "orderAmount": 45, "amount": 0, "isFilled": False,
                  "isCancelled": False},
                 {"outcome": "YES", "limitProb": 0.5, "orderAmount": 10, "amount": 10, "isFilled": True}]
    yes = synthetic_book(btc, open_bets, f"{BTC}-YES.MANIFOLD", 20)
    assert yes.asks == ()  # .9912 rounds up to 1.00: nothing left to buy below .99
    assert [b.price for b in yes.bids[:2]] == [Decimal("0.99"), Decimal("0.98")]
    limit = next(b for b in yes.bids if b.price == Decimal("0.9"))
    assert limit.size > Decimal(50)  # the pool's .90 slice plus the limit bet's 45 / .9 = 50 shares
    no = synthetic_book(btc, open_bets, f"{BTC}-NO.MANIFOLD", 20)
    assert [(a.price, a.size) for a in no.asks] == [(1 - b.price, b.size) for b in yes.bids]
    assert no.bids == ()


async def test_history_pages_the_bets_and_opens_with_the_last_point_before_the_period() -> None:
    bets = load("v0_bets_market-will-bitcoins-price-fall-below-25k_limit45_2022-10-10.json")
    pages: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        pages.append(params)
        rows = bets if "before" not in params else bets[[b["id"] for b in bets].index(params["before"]) + 1:]
        return httpx.Response(200, json=rows[:int(params["limit"])])

    client = ManifoldData(PredictionFeedConfig(venue="MANIFOLD", adapter="manifold", markets=(BTC,),
                                               url_override="http://127.0.0.1:9"),
                          transport=httpx.MockTransport(handler))
    try:
        import tradewire_datafeed.prediction.manifold as module

        original, module.BET_PAGE = module.BET_PAGE, 20  # three pages of the 45 recorded bets
        try:
            start, end = 1652300000000 * 1_000_000, 1655299000000 * 1_000_000
            points = await client.history(BTC, f"{BTC}-YES.MANIFOLD", start, end)
            no_points = await client.history(BTC, f"{BTC}-NO.MANIFOLD", start, end)
        finally:
            module.BET_PAGE = original
    finally:
        await client.close()
    assert len(pages) == 4 and pages[1]["before"] == bets[19]["id"]  # the second page reaches before the start
    assert points[0].ts_ns == start and all(start < p.ts_ns < end for p in points[1:])
    inside = sorted(b["createdTime"] for b in bets if start <= b["createdTime"] * 1_000_000 < end)
    assert [p.ts_ns for p in points[1:]] == [t * 1_000_000 for t in inside]
    assert points[-1].price == Decimal("0.9911535861392651")  # probAfter of the last bet, 712 mana on YES
    assert [p.price for p in no_points] == [1 - p.price for p in points]


def test_the_registry_builds_the_manifold_client() -> None:
    assert VENUES["manifold"].endswith(":ManifoldData")
    client = venue_data(PredictionFeedConfig(venue="MANIFOLD", adapter="manifold", markets=(BTC,), sandbox=True))
    assert isinstance(client, ManifoldData) and client.base_url == "https://api.dev.manifold.markets"
