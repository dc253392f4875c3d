"""Cross-venue arbitrage executed end to end: ``prediction_arbitrage`` through the five real services (in this
event loop, each with its own NATS connection, over a real nats-server) against the Kalshi and the Polymarket
fakes at the same time, with the unmodified clients.

The same event is listed on both venues. Kalshi's YES is offered at 0.45 (a NO bid at 0.55 in its single book)
and Polymarket's NO at 0.48: a pair costs 0.93 plus both taker fees and pays exactly 1 whichever way the event
resolves. Both prediction feeds publish the books -> the strategy emits two BUY legs (one correlation id) ->
risk sizes each from its ``target`` to the same quantity (computed here independently) under binary price
rules and position/exposure limits -> execution places one order at each fake -> both fill (Kalshi's fee
``ceil_to_cent(0.07 C P (1 - P))``, Polymarket's ``fee_rate_bps`` of ``min(P, 1 - P) C``) -> the ledger holds
YES on Kalshi and an equal NO on Polymarket -> both markets resolve (either way) -> the ledger's settled PnL is
``pairs * (1 - cost - fees)``. And an opportunity the fees erase: no signal, no order created at either venue.

Leg risk, one case of it: Polymarket fails the NO leg's create (a 503) and the Kalshi leg fills alone; the
ledger holds a lone directional YES (nothing hedges or unwinds it: see the strategy's docstring).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_prediction_lifecycle import Run, _position, settled_position, started
from tests.fakes.kalshi_fake import KalshiFake, kalshi_fake, new_key_pair
from tests.fakes.polymarket import WALLET_KEY, PolymarketFake, polymarket_fake
from tests.support.nats_server import NatsServer
from tradewire_common.config import Config, config_from_dict
from tradewire_common.schemas import (
    MarketResolved,
    OrderDenied,
    OrderFilled,
    OrderRejected,
    OrderType,
    Side,
    Signal,
    SubmitOrder,
    TimeInForce,
)
from tradewire_signals.prediction.arbitrage import PredictionArbitrage

pytestmark = pytest.mark.timeout(60)

D = Decimal
STRATEGY = "fed_arb"
STARTING_CASH = 1000

KA, PM = "KALSHI", "POLYMARKET"
KA_TICKER = "KXFEDARB-26DEC-T4.00"
KA_YES, KA_NO = f"{KA_TICKER}-YES.{KA}", f"{KA_TICKER}-NO.{KA}"
KA_KEY_ID = "0b7a3c1e-2f44-4d1e-9a7a-abcdefabcdef"
KA_PRIVATE, KA_PUBLIC = new_key_pair()
PM_CONDITION = "0x" + "fe" * 32
PM_YES_TOKEN, PM_NO_TOKEN = "3" * 70, "4" * 70
PM_YES, PM_NO = f"{PM_YES_TOKEN}.{PM}", f"{PM_NO_TOKEN}.{PM}"
PM_FEE_BPS = 100  # this market charges takers 1 % of min(P, 1 - P) per contract

#: Contracts each leg is priced for, and the equity fraction that buys exactly that many at 0.45 + 0.48.
CONTRACTS = 100
EQUITY_FRACTION = "0.093"


@pytest.fixture
def ka_fake() -> Iterator[KalshiFake]:
    with kalshi_fake() as venue:
        venue.register_key(KA_KEY_ID, KA_PUBLIC)
        venue.add_market(KA_TICKER, title="Will the Fed's upper bound be above 4.00% after December?", volume="5000")
        yield venue


@pytest.fixture
def pm_fake() -> Iterator[PolymarketFake]:
    with polymarket_fake() as venue:
        venue.add_market(PM_CONDITION, PM_YES_TOKEN, PM_NO_TOKEN,
                         "Will the Fed's upper bound be above 4.00% after December?", fee_rate_bps=PM_FEE_BPS)
        yield venue


def kalshi_fee(contracts: int, price: str) -> Decimal:
    """Kalshi's taker fee, independently: 0.07 * C * P * (1 - P), rounded up to the cent."""
    cents = Fraction(7, 100) * contracts * Fraction(price) * (1 - Fraction(price)) * 100
    return D(math.ceil(cents)) / 100


def polymarket_fee(contracts: int, price: str) -> Decimal:
    """Polymarket's taker fee, independently: fee_rate_bps / 10 000 * min(P, 1 - P) * C."""
    fee = Fraction(PM_FEE_BPS, 10_000) * min(Fraction(price), 1 - Fraction(price)) * contracts
    return D(fee.numerator) / D(fee.denominator)


def config_for(tmp: Path, ka: KalshiFake, pm: PolymarketFake, pm_grace_s: float = 15.0) -> Config:
    def binary(iid: str, market: str, complement: str, min_quantity: str) -> dict[str, Any]:
        return {"id": iid, "kind": "binary", "market_id": market, "complement": complement, "quantity_step": "1",
                "min_quantity": min_quantity, "price_tick": "0.01"}

    venue = {"mode": "sandbox", "poll_interval_s": 0.1, "reconcile_interval_s": 0}
    return config_from_dict({
        "datafeed": {"prediction": [
            {"venue": KA, "adapter": "kalshi", "markets": [KA_TICKER], "url_override": ka.server.url,
             "poll_interval_s": 0.2},
            {"venue": PM, "adapter": "polymarket", "markets": [PM_CONDITION], "url_override": pm.url,
             "poll_interval_s": 0.2}]},
        "signals": {"strategies": [{
            "id": STRATEGY, "kind": "prediction_arbitrage", "instruments": [KA_YES, PM_NO], "initial_stage": "live",
            "params": {"pairs": f"{KA_YES}|{PM_NO}", "contracts": str(CONTRACTS), "min_profit": "0.01",
                       "equity_fraction": EQUITY_FRACTION, "polymarket_fee_bps": str(PM_FEE_BPS),
                       "time_in_force": "IOC", "cooldown_s": 300}}]},
        "risk": {"sizing": "fixed_fraction", "max_position_pct": 0.1, "max_exposure_pct": 0.2,
                 "instruments": [binary(KA_YES, KA_TICKER, KA_NO, "1"), binary(KA_NO, KA_TICKER, KA_YES, "1"),
                                 binary(PM_YES, PM_CONDITION, PM_NO, "5"), binary(PM_NO, PM_CONDITION, PM_YES, "5")]},
        "execution": {"venues": [
            venue | {"name": KA, "adapter": "kalshi", "symbols": [KA_TICKER], "url_override": ka.server.url},
            venue | {"name": PM, "adapter": "polymarket", "symbols": [PM_YES_TOKEN, PM_NO_TOKEN],
                     "url_override": pm.url, "in_flight_grace_s": pm_grace_s}]},
        "ledger": {"path": str(tmp / "ledger.db"), "starting_cash": str(STARTING_CASH), "currency": "USD"},
    })


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEWIRE_KALSHI_API_KEY", KA_KEY_ID)
    monkeypatch.setenv("TRADEWIRE_KALSHI_API_SECRET", KA_PRIVATE)
    monkeypatch.setenv("TRADEWIRE_POLYMARKET_API_SECRET", WALLET_KEY)


async def offer(ka: KalshiFake, pm: PolymarketFake, kalshi_yes_ask: str, polymarket_no_ask: str) -> None:
    """Kalshi's YES ask (a NO bid at ``1 - ask``) and Polymarket's NO ask, 150 deep, each with a bid below."""
    await asyncio.to_thread(ka.counterparty, KA_TICKER, "no", "buy", str(1 - D(kalshi_yes_ask)), "150")
    await asyncio.to_thread(ka.counterparty, KA_TICKER, "yes", "buy", "0.30", "50")
    pm.rest(PM_NO_TOKEN, "SELL", polymarket_no_ask, "150")
    pm.rest(PM_NO_TOKEN, "BUY", "0.30", "50")


def arbitrage(run: Run) -> PredictionArbitrage:
    (strategy,) = [s for s, _ in run.stack.service("signals").strategies]  # type: ignore[attr-defined]
    assert isinstance(strategy, PredictionArbitrage)
    return strategy


@pytest.mark.parametrize("resolution", ["yes", "no"])
async def test_a_pair_below_one_after_fees_is_bought_on_both_venues_and_pays_one_per_pair_at_resolution(
    ka_fake: KalshiFake, pm_fake: PolymarketFake, fresh_nats: NatsServer, tmp_path: Path, credentials: None,
    resolution: str,
) -> None:
    await offer(ka_fake, pm_fake, kalshi_yes_ask="0.45", polymarket_no_ask="0.48")
    # independently: each leg is target * equity / price = 0.093 * 1000 / (0.45 + 0.48) = 100 contracts
    pairs = int(D(EQUITY_FRACTION) * STARTING_CASH / (D("0.45") + D("0.48")))
    assert pairs == CONTRACTS == 100
    cost = D("0.45") + D("0.48")
    fees = kalshi_fee(pairs, "0.45") + polymarket_fee(pairs, "0.48")
    assert (kalshi_fee(pairs, "0.45"), polymarket_fee(pairs, "0.48")) == (D("1.74"), D("0.48"))
    expected_pnl = pairs * (1 - cost - fees / pairs)
    assert expected_pnl == D("4.78")

    async with started(config_for(tmp_path, ka_fake, pm_fake), fresh_nats.url) as run:
        await run.until(lambda: len(run.of(SubmitOrder)) + len(run.of(OrderDenied)) >= 2, what="both legs decided")
        assert not run.of(OrderDenied), [(d.reason_code, d.reason) for d in run.of(OrderDenied)]
        signals = {s.instrument_id: s for s in run.of(Signal)}
        assert set(signals) == {KA_YES, PM_NO} and len(run.of(Signal)) == 2
        assert signals[KA_YES].correlation_id == signals[PM_NO].correlation_id
        assert "pair cost 0.9522" in signals[KA_YES].reason  # 0.45 + 0.48 + 0.0174 + 0.0048
        orders = {o.instrument_id: o for o in run.of(SubmitOrder)}
        assert {iid: (o.side, o.order_type, o.time_in_force, o.limit_price, o.quantity)
                for iid, o in orders.items()} == {
            KA_YES: (Side.BUY, OrderType.LIMIT, TimeInForce.IOC, D("0.45"), D(pairs)),
            PM_NO: (Side.BUY, OrderType.LIMIT, TimeInForce.IOC, D("0.48"), D(pairs))}

        # one order created at each venue, both filled in full as takers
        await run.until(lambda: len(run.of(OrderFilled)) == 2, what="both fills")
        (ka_order,) = ka_fake.creates()
        assert (ka_order["ticker"], ka_order["side"], ka_order["action"]) == (KA_TICKER, "yes", "buy")
        assert len(pm_fake.posted) == 1
        fills = {f.instrument_id: f for f in run.of(OrderFilled)}
        assert {iid: (f.side, f.last_qty, f.last_px, f.fee, f.partial) for iid, f in fills.items()} == {
            KA_YES: (Side.BUY, D(pairs), D("0.45"), D("1.74"), False),
            PM_NO: (Side.BUY, D(pairs), D("0.48"), D("0.48"), False)}
        await run.until(lambda: _position(run, KA_YES, D(pairs)), what=f"{pairs} YES in the ledger")
        await run.until(lambda: _position(run, PM_NO, D(pairs)), what=f"{pairs} NO in the ledger")
        # the legs of one opportunity share one correlation id, from the signals to the fills
        assert {m.correlation_id for m in (*orders.values(), *fills.values())} == {signals[KA_YES].correlation_id}

        # the same event resolves on both venues: one leg pays 1 a contract, the other 0
        await asyncio.to_thread(ka_fake.settle, KA_TICKER, resolution)
        pm_fake.resolve(PM_CONDITION, "1" if resolution == "yes" else "0")
        ka_row = await settled_position(run, KA_YES)
        pm_row = await settled_position(run, PM_NO)
        await run.until(lambda: {m.market_id for m in run.of(MarketResolved)} == {KA_TICKER, PM_CONDITION},
                        what="both resolutions on the bus")
        summary = await run.ledger("/v1/summary")
        positions = (await run.ledger("/v1/positions"))["positions"]

    won = resolution == "yes"
    assert (D(ka_row["payout"]), D(pm_row["payout"])) == ((D(1), D(0)) if won else (D(0), D(1)))
    assert D(ka_row["quantity"]) == D(pm_row["quantity"]) == pairs
    assert D(summary["realized_pnl"]) == expected_pnl
    assert D(summary["cash"]) == STARTING_CASH + expected_pnl
    assert [p for p in positions if p["instrument_id"] in (KA_YES, KA_NO, PM_YES, PM_NO)] == []


async def test_an_opportunity_the_fees_erase_creates_no_order_at_either_venue(
    ka_fake: KalshiFake, pm_fake: PolymarketFake, fresh_nats: NatsServer, tmp_path: Path, credentials: None,
) -> None:
    await offer(ka_fake, pm_fake, kalshi_yes_ask="0.49", polymarket_no_ask="0.50")
    # below 1 before fees (0.99), above it after them: + 0.0175 (Kalshi 1.75 on 100) + 0.005 (Polymarket 0.50)
    assert D("0.49") + D("0.50") < 1
    fees = kalshi_fee(CONTRACTS, "0.49") + polymarket_fee(CONTRACTS, "0.50")
    assert fees == D("2.25") and D("0.49") + D("0.50") + fees / CONTRACTS == D("1.0125")

    async with started(config_for(tmp_path, ka_fake, pm_fake), fresh_nats.url) as run:
        strategy = arbitrage(run)
        await run.until(lambda: strategy.refused >= 1, what="the strategy pricing both books")
        # a book change that leaves the 100 contracts' price as it was: priced again, refused again
        seen = strategy.refused
        pm_fake.rest(PM_NO_TOKEN, "SELL", "0.60", "10")
        await run.until(lambda: strategy.refused > seen, what="another refusal")
        assert run.of(Signal) == [] and run.of(SubmitOrder) == []

    assert ka_fake.creates() == []
    assert pm_fake.posted == []


async def test_a_leg_the_venue_fails_leaves_the_other_filled_alone_under_the_same_correlation_id(
    ka_fake: KalshiFake, pm_fake: PolymarketFake, fresh_nats: NatsServer, tmp_path: Path, credentials: None,
) -> None:
    await offer(ka_fake, pm_fake, kalshi_yes_ask="0.45", polymarket_no_ask="0.48")
    pm_fake.fault("POST", "/order", "5xx", status=503)  # not carried out: rejected after the in-flight grace

    async with started(config_for(tmp_path, ka_fake, pm_fake, pm_grace_s=1.0), fresh_nats.url) as run:
        await run.until(lambda: run.of(OrderRejected), what="the Polymarket leg's rejection")
        await run.until(lambda: _position(run, KA_YES, D(CONTRACTS)), what="the Kalshi leg in the ledger")
        (signal, _) = run.of(Signal)
        (rejected,) = run.of(OrderRejected)
        (filled,) = run.of(OrderFilled)
        held = (await run.ledger("/v1/positions"))["positions"]
        positions = {p["instrument_id"]: D(str(p["quantity"])) for p in held}

    assert (rejected.instrument_id, filled.instrument_id) == (PM_NO, KA_YES)
    assert rejected.correlation_id == filled.correlation_id == signal.correlation_id
    assert pm_fake.server.faults == [] and pm_fake.trades() == []  # the 503 was served; nothing traded there
    assert positions.get(KA_YES) == CONTRACTS and PM_NO not in positions  # a lone YES: not an arbitrage
    assert len(ka_fake.creates()) == 1
