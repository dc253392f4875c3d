"""The prediction-market life cycle through the five real services (in this event loop, each with its own NATS
connection, over a real nats-server) against each venue's fake with the unmodified client:

discover the market with the data client's search -> the datafeed's prediction feed publishes its books and
quotes (no bars: the ledger's snapshot watermark follows the quotes and books) -> ``prediction_edge`` with a
static model file signals the edge -> risk sizes it with binary Kelly (the quantity computed here
independently) -> execution places it at the fake -> the fake fills it partly, then fully (Polymarket: the rest
by a NO buyer, a YES/NO cross; the fills provisional, then confirmed, or a FAILED match reversed) -> the market
resolves in the fake -> ``MarketResolved`` reaches the ledger -> the ledger settles: cash, realised PnL and the
position gone, read from its HTTP API.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.kalshi_fake import KalshiFake, kalshi_fake, new_key_pair
from tests.fakes.manifold_fake import API_KEY as MF_API_KEY
from tests.fakes.manifold_fake import ManifoldFake, manifold_fake
from tests.fakes.polymarket import WALLET_KEY, PolymarketFake, polymarket_fake
from tests.support.inproc import InProcessStack
from tests.support.nats_server import NatsServer
from tradewire_common import subjects
from tradewire_common.bus import Envelope, NatsBus
from tradewire_common.config import Config, PredictionFeedConfig, config_from_dict
from tradewire_common.schemas import (
    FillConfirmed,
    FillReversed,
    MarketResolved,
    Message,
    OrderDenied,
    OrderFilled,
    Side,
    Signal,
    SubmitOrder,
)
from tradewire_datafeed.prediction import MarketInfo, venue_data

pytestmark = pytest.mark.timeout(90)

D = Decimal
STRATEGY = "pm_edge"
STARTING_CASH = 1000


def kelly_contracts(p: str, price: str, cash: int = STARTING_CASH, multiplier: Fraction = Fraction(1, 2)) -> int:
    """Binary Kelly, independently: ``(p - price) / (1 - price) * multiplier`` of equity, in whole contracts."""
    fraction = (Fraction(p) - Fraction(price)) / (1 - Fraction(price)) * multiplier
    return math.floor(cash * fraction / Fraction(price))


def config_for(tmp: Path, venue: dict[str, Any], feed: dict[str, Any], yes: str, no: str, market: str,
               tick: str, probability: float, min_quantity: str = "1") -> Config:
    model = tmp / "model.toml"
    model.write_text(f'[estimates."{market}"]\nprobability = {probability}\nconfidence = 0.9\n')
    instrument = {"kind": "binary", "market_id": market, "quantity_step": "1", "min_quantity": min_quantity,
                  "price_tick": tick}
    return config_from_dict({
        "datafeed": {"prediction": [feed]},
        "signals": {"strategies": [{
            "id": STRATEGY, "kind": "prediction_edge", "instruments": [yes], "initial_stage": "live",
            "params": {"model": "static", "model_source": str(model), "min_edge": "0.05", "contracts": "10",
                       "time_in_force": "GTC"}}]},
        "risk": {"sizing": "binary_kelly", "max_position_pct": 0.5, "max_exposure_pct": 1.0,
                 "instruments": [instrument | {"id": yes, "complement": no},
                                 instrument | {"id": no, "complement": yes}]},
        "execution": {"venues": [venue]},
        "ledger": {"path": str(tmp / "ledger.db"), "starting_cash": str(STARTING_CASH), "currency": "USD"},
    })


@dataclass
class Run:
    """The stack and what a probe saw on the bus."""

    stack: InProcessStack
    seen: list[Message]

    def of(self, kind: type[Any]) -> list[Any]:
        return [m for m in self.seen if isinstance(m, kind)]

    async def ledger(self, path: str) -> Any:
        return (await self.stack.get("ledger", path)).json()

    async def until(self, check: Callable[[], Any], timeout: float = 20.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not await _maybe_async(check()):
            assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
            await asyncio.sleep(0.05)


async def _maybe_async(value: Any) -> Any:
    return await value if asyncio.iscoroutine(value) else value


class started:
    """The five services over ``nats_url`` and a probe of signals, commands, order events and resolutions."""

    def __init__(self, config: Config, nats_url: str) -> None:
        self.run = Run(InProcessStack(config, nats_url), [])
        self.probe = NatsBus("probe", nats_url)

    async def __aenter__(self) -> Run:
        await self.probe.connect()

        async def collect(envelope: Envelope) -> None:
            self.run.seen.append(envelope.message)

        for pattern in (subjects.ALL_SIGNALS, subjects.ALL_ORDER_COMMANDS, subjects.STRATEGY_ORDER_EVENTS,
                        subjects.ALL_RESOLUTIONS):
            await self.probe.subscribe(pattern, collect)
        await self.run.stack.start()
        return self.run

    async def __aexit__(self, *exc: object) -> None:
        await self.run.stack.close()
        await self.probe.close()


async def feed_published(run: Run, venue: str, market: str) -> dict[str, int]:
    """The prediction feed's counts of what it published; waits until it has published the market's resolution
    (execution's adapter may have announced it first: the broker keeps one, by its id)."""
    async def status() -> dict[str, Any]:
        body: dict[str, Any] = (await run.stack.get("datafeed", "/v1/replay")).json()["prediction"][venue]
        return body

    async def resolved() -> bool:
        return market in (await status())["resolved"]

    await run.until(resolved, what=f"the feed's resolution of {market}")
    published: dict[str, int] = (await status())["published"]
    return published


async def settled_position(run: Run, instrument: str) -> dict[str, Any]:
    """Waits for the ledger's settlement of ``instrument``; its row."""
    async def settlements() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = await run.ledger("/v1/settlements")
        return [r for r in rows if r["instrument_id"] == instrument]

    await run.until(settlements, what=f"the settlement of {instrument}")
    (row,) = await settlements()
    return row


# -- Polymarket ------------------------------------------------------------------------------------------------

PM = "POLYMARKET"
PM_CONDITION = "0xdd22472e552920b8438158ea7238bfadfa4f736aa4cee91a6b86c39ead110917"
PM_YES = "21742633143463906290569050155826241533067272736897614950488156847949938836455"
PM_NO = "48331043336612883890938759509493159234755048973500640148014422747788308965732"


@pytest.fixture
def pm_fake() -> Iterator[PolymarketFake]:
    with polymarket_fake() as venue:
        venue.add_market(PM_CONDITION, PM_YES, PM_NO, "Will Donald Trump win the 2024 US Presidential Election?")
        venue.add_market("0x" + "ab" * 32, "1" * 70, "2" * 70, "Will it rain in Paris on New Year's Day?")
        venue.set_auto_confirm(False)
        yield venue


async def discover_polymarket(fake: PolymarketFake) -> MarketInfo:
    data = venue_data(PredictionFeedConfig(venue=PM, adapter="polymarket", markets=("search",),
                                           url_override=fake.url))
    try:
        found = await data.search_markets("Trump")
    finally:
        await data.close()
    (market,) = found
    return market


@pytest.mark.parametrize("failed_match", [False, True], ids=["confirmed", "failed-match-reversed"])
async def test_polymarket_edge_to_settlement_with_provisional_fills(
    pm_fake: PolymarketFake, fresh_nats: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    failed_match: bool,
) -> None:
    market = await discover_polymarket(pm_fake)
    assert market.market_id == PM_CONDITION
    yes, no = (o.instrument_id for o in market.outcomes)
    assert (yes, no) == (f"{PM_YES}.{PM}", f"{PM_NO}.{PM}")
    monkeypatch.setenv("TRADEWIRE_POLYMARKET_API_SECRET", WALLET_KEY)
    config = config_for(
        tmp_path,
        venue={"name": PM, "adapter": "polymarket", "mode": "sandbox", "symbols": [PM_YES, PM_NO],
               "url_override": pm_fake.url, "poll_interval_s": 0.1, "reconcile_interval_s": 0},
        feed={"venue": PM, "adapter": "polymarket", "markets": [PM_CONDITION], "url_override": pm_fake.url,
              "poll_interval_s": 0.2},
        yes=yes, no=no, market=PM_CONDITION, tick="0.01", probability=0.6, min_quantity="5")
    # the book: YES asks 100 @ 0.40 (a bid at 0.35 so that there is a quote); model p 0.6: edge 0.2
    pm_fake.rest(PM_YES, "BUY", "0.35", "50")
    pm_fake.rest(PM_YES, "SELL", "0.40", "100")
    expected = kelly_contracts("0.6", "0.40")
    assert expected == 416  # (0.6 - 0.4) / 0.6 / 2 = 1/6 of 1000, at 0.40 a contract

    async with started(config, fresh_nats.url) as run:
        await run.until(lambda: run.of(SubmitOrder) or run.of(OrderDenied), what="risk's decision")
        assert not run.of(OrderDenied), [(d.reason_code, d.reason) for d in run.of(OrderDenied)]
        (signal,) = run.of(Signal)
        (order,) = run.of(SubmitOrder)
        assert (signal.instrument_id, signal.price, signal.win_probability) == (yes, D("0.40"), 0.6)
        assert (order.instrument_id, order.side, order.limit_price, order.quantity) == (
            yes, Side.BUY, D("0.40"), D(expected))

        # partly filled at once against the 100 resting, provisionally
        await run.until(lambda: len(run.of(OrderFilled)) == 1, what="the first fill")
        (first,) = run.of(OrderFilled)
        assert (first.last_qty, first.last_px, first.partial, first.provisional) == (D(100), D("0.40"), True, True)
        (trade,) = [t for t in pm_fake.trades()]
        if failed_match:
            pm_fake.fail(trade.id)
            await run.until(lambda: run.of(FillReversed), what="the reversal")
            await run.until(lambda: _position(run, yes, D(0)), what="the reversed fill out of the ledger")
            rest = expected  # the failed 100 are back on the order
        else:
            pm_fake.confirm(trade.id)
            await run.until(lambda: run.of(FillConfirmed), what="the confirmation")
            rest = expected - 100
        # the rest: another trader buys NO at 0.60, matched with our YES bid at 0.40 (a YES/NO cross)
        pm_fake.take(PM_NO, "BUY", "0.60", str(rest))
        await run.until(lambda: len(run.of(OrderFilled)) == 2, what="the second fill")
        second = run.of(OrderFilled)[1]
        assert (second.instrument_id, second.side, second.last_qty, second.last_px, second.partial,
                second.provisional) == (yes, Side.BUY, D(rest), D("0.40"), False, True)
        pm_fake.confirm(pm_fake.trades()[-1].id)
        await run.until(lambda: len(run.of(FillConfirmed)) == (1 if failed_match else 2), what="confirmed")
        await run.until(lambda: _position(run, yes, D(expected)), what=f"{expected} held in the ledger")
        fills = {f["trade_id"]: f["status"] for f in await run.ledger("/v1/fills")}
        assert fills == {first.trade_id: "reversed" if failed_match else "confirmed", second.trade_id: "confirmed"}

        # YES wins: the feed (or execution) publishes the resolution, the ledger settles at 1
        pm_fake.resolve(PM_CONDITION, "1")
        row = await settled_position(run, yes)
        await run.until(lambda: run.of(MarketResolved), what="the resolution on the bus")
        published = await feed_published(run, PM, PM_CONDITION)
        assert published["books"] >= 2 and published["quotes"] >= 1 and published["resolutions"] >= 1
        summary = await run.ledger("/v1/summary")
        positions = (await run.ledger("/v1/positions"))["positions"]

    cost = D(expected) * D("0.40")
    assert D(row["quantity"]) == expected and D(row["payout"]) == 1
    assert D(summary["cash"]) == STARTING_CASH - cost + expected  # 1249.6
    assert D(summary["realized_pnl"]) == expected - cost == D("249.6")
    assert [p for p in positions if p["instrument_id"] == yes] == []
    (resolved,) = {m.id: m for m in run.of(MarketResolved)}.values()
    assert resolved.market_id == PM_CONDITION and resolved.resolution.upper() in ("YES", "Y")


async def _position(run: Run, instrument: str, quantity: Decimal) -> bool:
    positions = (await run.ledger("/v1/positions"))["positions"]
    held = {p["instrument_id"]: D(str(p["quantity"])) for p in positions}
    return held.get(instrument, D(0)) == quantity


# -- Kalshi ----------------------------------------------------------------------------------------------------

KA = "KALSHI"
KA_TICKER = "KXTWLIFE-26DEC31-B50"
KA_KEY_ID = "5f1c2b7e-9a41-4c1e-8d7a-0123456789ab"
KA_PRIVATE, KA_PUBLIC = new_key_pair()


@pytest.fixture
def ka_fake() -> Iterator[KalshiFake]:
    with kalshi_fake() as venue:
        venue.register_key(KA_KEY_ID, KA_PUBLIC)
        venue.add_market(KA_TICKER, title="Will the life-cycle index close above 50 on Dec 31?", volume="1000")
        venue.add_market("KXOTHER-26DEC31", title="Will something else happen?")
        yield venue


def kalshi_fee(contracts: int, price: str) -> Decimal:
    """Kalshi's taker fee, independently: 0.07 * C * P * (1 - P), rounded up to the cent."""
    cents = Fraction(7, 100) * contracts * Fraction(price) * (1 - Fraction(price)) * 100
    return D(math.ceil(cents)) / 100


@pytest.mark.parametrize("bought", ["yes", "no"])
async def test_kalshi_edge_to_settlement_crossing_the_other_outcome(
    ka_fake: KalshiFake, fresh_nats: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bought: str,
) -> None:
    """The edge is on ``bought`` (model p 0.6 for it): taker fill against the other outcome's bid, the rest
    rests as a bid of ``bought`` until a buyer of the other outcome crosses it; ``bought`` wins."""
    other = "no" if bought == "yes" else "yes"
    monkeypatch.setenv("TRADEWIRE_KALSHI_API_KEY", KA_KEY_ID)
    monkeypatch.setenv("TRADEWIRE_KALSHI_API_SECRET", KA_PRIVATE)
    data = venue_data(PredictionFeedConfig(venue=KA, adapter="kalshi", markets=("search",),
                                           url_override=ka_fake.server.url))
    try:
        (market,) = await data.search_markets("life-cycle index")
    finally:
        await data.close()
    assert market.market_id == KA_TICKER
    outcomes = {o.label.upper(): o.instrument_id for o in market.outcomes}
    yes, no = outcomes["YES"], outcomes["NO"]
    assert (yes, no) == (f"{KA_TICKER}-YES.{KA}", f"{KA_TICKER}-NO.{KA}")
    target = yes if bought == "yes" else no
    config = config_for(
        tmp_path,
        venue={"name": KA, "adapter": "kalshi", "mode": "sandbox", "symbols": [KA_TICKER],
               "url_override": ka_fake.server.url, "poll_interval_s": 0.1, "reconcile_interval_s": 0},
        feed={"venue": KA, "adapter": "kalshi", "markets": [KA_TICKER], "url_override": ka_fake.server.url,
              "poll_interval_s": 0.2},
        yes=yes, no=no, market=KA_TICKER, tick="0.01", probability=0.6 if bought == "yes" else 0.4)
    # Kalshi's single book: a bid of 100 at 0.60 for the other outcome is an ask of ours at 0.40; our bid at 0.35
    await asyncio.to_thread(ka_fake.counterparty, KA_TICKER, other, "buy", "0.60", "100")
    await asyncio.to_thread(ka_fake.counterparty, KA_TICKER, bought, "buy", "0.35", "50")
    expected = kelly_contracts("0.6", "0.40")
    assert expected == 416

    async with started(config, fresh_nats.url) as run:
        await run.until(lambda: run.of(SubmitOrder) or run.of(OrderDenied), what="risk's decision")
        assert not run.of(OrderDenied), [(d.reason_code, d.reason) for d in run.of(OrderDenied)]
        (signal,) = run.of(Signal)
        (order,) = run.of(SubmitOrder)
        # 10 contracts at 0.40 pay Kalshi's fee 0.17: edge 0.6 - 0.40 - 0.017 = 0.183
        assert "fee 0.017" in signal.reason
        assert (signal.instrument_id, signal.price, signal.win_probability) == (target, D("0.40"), 0.6)
        assert (order.instrument_id, order.side, order.limit_price, order.quantity) == (
            target, Side.BUY, D("0.40"), D(expected))

        # partly filled at once (taker: 100 against the other outcome's bid), the rest rests as our bid at 0.40 ...
        await run.until(lambda: len(run.of(OrderFilled)) == 1, what="the first fill")
        # ... until a buyer of the other outcome at 0.60 crosses it (we are the maker: no fee)
        await asyncio.to_thread(ka_fake.counterparty, KA_TICKER, other, "buy", "0.60", str(expected - 100))
        await run.until(lambda: len(run.of(OrderFilled)) == 2, what="the second fill")
        first, second = run.of(OrderFilled)
        assert [(f.instrument_id, f.side, f.last_qty, f.last_px, f.partial, f.provisional)
                for f in (first, second)] == [(target, Side.BUY, D(100), D("0.40"), True, False),
                                              (target, Side.BUY, D(expected - 100), D("0.40"), False, False)]
        assert (first.fee, second.fee) == (kalshi_fee(100, "0.40"), 0) == (D("1.68"), 0)
        await run.until(lambda: _position(run, target, D(expected)), what=f"{expected} held in the ledger")

        await asyncio.to_thread(ka_fake.settle, KA_TICKER, bought)
        row = await settled_position(run, target)
        await run.until(lambda: run.of(MarketResolved), what="the resolution on the bus")
        published = await feed_published(run, KA, KA_TICKER)
        assert published["books"] >= 2 and published["quotes"] >= 1 and published["resolutions"] >= 1
        summary = await run.ledger("/v1/summary")
        positions = (await run.ledger("/v1/positions"))["positions"]

    cost, fee = D(expected) * D("0.40"), D("1.68")
    assert D(row["quantity"]) == expected and D(row["payout"]) == 1
    assert D(summary["cash"]) == STARTING_CASH - cost - fee + expected == D("1247.92")
    assert D(summary["realized_pnl"]) == expected - cost - fee == D("247.92")
    assert [p for p in positions if p["instrument_id"] in (yes, no)] == []
    (resolved,) = {m.id: m for m in run.of(MarketResolved)}.values()
    assert resolved.market_id == KA_TICKER and resolved.resolution == bought.upper()


# -- Manifold --------------------------------------------------------------------------------------------------

MF = "MANIFOLD"
MF_MARKET = "lifeCycleMarket00001"
MF_OTHER = "someoneElseUserId0001"
MF_LIQUIDITY = 100.0


@pytest.fixture
def mf_fake() -> Iterator[ManifoldFake]:
    with manifold_fake() as venue:
        venue.add_market(MF_MARKET, "Will the life cycle close the loop?", prob=0.5, liquidity=MF_LIQUIDITY)
        venue.add_market("otherMarket000000001", "Will something else happen?", prob=0.3)
        yield venue


def pool_at(q: float) -> tuple[float, float]:
    """The fake's cpmm pool (p = 0.5, YES * NO = L²) at probability ``q``: ``(YES, NO)``."""
    return MF_LIQUIDITY * math.sqrt((1 - q) / q), MF_LIQUIDITY * math.sqrt(q / (1 - q))


def pool_shares(q0: float, q1: float) -> tuple[float, float]:
    """Mana spent and YES shares bought moving the pool from ``q0`` up to ``q1``: ``(spend, shares)``."""
    (y0, n0), (y1, n1) = pool_at(q0), pool_at(q1)
    return n1 - n0, y0 + (n1 - n0) - y1


async def test_manifold_edge_to_settlement_pool_then_matched_limit_bet(
    mf_fake: ManifoldFake, fresh_nats: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRADEWIRE_MANIFOLD_API_KEY", MF_API_KEY)
    data = venue_data(PredictionFeedConfig(venue=MF, adapter="manifold", markets=("search",),
                                           url_override=mf_fake.url))
    try:
        (market,) = await data.search_markets("life cycle")
    finally:
        await data.close()
    assert market.market_id == MF_MARKET
    outcomes = {o.label.upper(): o.instrument_id for o in market.outcomes}
    yes, no = outcomes["YES"], outcomes["NO"]
    assert (yes, no) == (f"{MF_MARKET}-YES.{MF}", f"{MF_MARKET}-NO.{MF}")
    config = config_for(
        tmp_path,
        venue={"name": MF, "adapter": "manifold", "mode": "sandbox", "symbols": [f"{MF_MARKET}-YES", f"{MF_MARKET}-NO"],
               "url_override": mf_fake.url, "poll_interval_s": 0.1, "reconcile_interval_s": 0},
        feed={"venue": MF, "adapter": "manifold", "markets": [MF_MARKET], "url_override": mf_fake.url,
              "poll_interval_s": 0.2},
        yes=yes, no=no, market=MF_MARKET, tick="0.01", probability=0.7)
    # the synthetic book of the pool at 0.50: about 4 shares a cent; 10 contracts take 0.51, 0.52 and part of 0.53
    slices = [pool_shares(q / 100 - 0.01, q / 100)[1] for q in (51, 52)]
    average = (slices[0] * 0.51 + slices[1] * 0.52 + (10 - sum(slices)) * 0.53) / 10
    assert 0.51 < average < 0.52  # the signal's price: up to the 0.01 grid, 0.52; the order's limit 0.53
    expected = kelly_contracts("0.7", "0.52")
    assert expected == 360  # (0.7 - 0.52) / 0.48 / 2 = 0.1875 of 1000, at 0.52 a contract

    async with started(config, fresh_nats.url) as run:
        await run.until(lambda: run.of(SubmitOrder) or run.of(OrderDenied), what="risk's decision")
        assert not run.of(OrderDenied), [(d.reason_code, d.reason) for d in run.of(OrderDenied)]
        (signal,) = run.of(Signal)
        (order,) = run.of(SubmitOrder)
        assert (signal.instrument_id, signal.price, signal.win_probability) == (yes, D("0.52"), 0.7)
        assert (order.instrument_id, order.side, order.limit_price, order.quantity) == (
            yes, Side.BUY, D("0.53"), D(expected))

        # the limit bet (360 * 0.53 = 190.8 mana at limitProb 0.53) buys from the pool up to 0.53, the rest rests
        await run.until(mf_fake.bets_posted, what="the bet at Manifold")
        (bet,) = mf_fake.bets_posted()
        assert (bet["outcome"], bet["limitProb"], D(str(bet["amount"]))) == ("YES", 0.53, D("190.8"))
        await run.until(lambda: len(run.of(OrderFilled)) == 1, what="the pool's fill")
        # another trader's NO limit bet at 0.53 takes the resting rest (a YES/NO match at the bet's price)
        await asyncio.to_thread(mf_fake.place, MF_OTHER, MF_MARKET, "NO", 200.0, 0.53)
        await run.until(lambda: len(run.of(OrderFilled)) == 2, what="the matched fill")
        first, second = run.of(OrderFilled)
        spend, pool_bought = pool_shares(0.50, 0.53)
        matched = (190.8 - spend) / 0.53
        assert (first.instrument_id, first.side, first.partial, second.side, second.partial) == (
            yes, Side.BUY, True, Side.BUY, False)
        assert abs(float(first.last_qty) - pool_bought) < 1e-6 and abs(float(second.last_qty) - matched) < 1e-6
        assert abs(float(first.last_px) - spend / pool_bought) < 1e-9 and second.last_px == D("0.53")
        held = first.last_qty + second.last_qty
        await run.until(lambda: _position(run, yes, held), what="the shares held in the ledger")

        await asyncio.to_thread(mf_fake.resolve, MF_MARKET, "YES")
        row = await settled_position(run, yes)
        await run.until(lambda: run.of(MarketResolved), what="the resolution on the bus")
        published = await feed_published(run, MF, MF_MARKET)
        assert published["books"] >= 2 and published["quotes"] >= 1 and published["resolutions"] >= 1
        summary = await run.ledger("/v1/summary")
        positions = (await run.ledger("/v1/positions"))["positions"]

    # the bet's shares exceed the 360 ordered: the pool sold the first ones below the limit
    assert held > expected and abs(float(held) - (pool_bought + matched)) < 1e-6
    cost = first.last_qty * first.last_px + second.last_qty * second.last_px
    assert abs(cost - D("190.8")) < D("1e-6")  # exactly the mana the bet spent
    assert D(row["quantity"]) == held and D(row["payout"]) == 1
    assert D(summary["cash"]) == STARTING_CASH - cost + held
    assert D(summary["realized_pnl"]) == held - cost
    assert abs(D(summary["realized_pnl"]) - D(repr(pool_bought + matched - 190.8))) < D("1e-6")
    assert [p for p in positions if p["instrument_id"] == yes] == []
    (resolved,) = {m.id: m for m in run.of(MarketResolved)}.values()
    assert resolved.market_id == MF_MARKET and resolved.resolution == "YES"
