"""Risk and a prediction market over a real nats-server, with the real ledger: a NO bought against a held YES
at the exposure limit passes (complements), a price of 1 is not a probability, and once the market resolves
(``pm.resolved.KALSHI``) its outcomes no longer trade, also for a risk restarted after the resolution (rebuilt
from the ledger's ``/v1/resolutions``)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from tests.integration.test_risk_checks_live import Seen, make_config, probe, start  # noqa: F401 (fixture)
from tests.support.nats_server import NatsServer
from tradewire_common import subjects
from tradewire_common.bus import NatsBus
from tradewire_common.config import InstrumentSpec
from tradewire_common.ids import derive_id, new_id
from tradewire_common.schemas import (
    DenyReason,
    ExecutionWatermark,
    Liquidity,
    MarketResolved,
    OrderDenied,
    OrderFilled,
    OrderType,
    OutcomePayout,
    PortfolioSnapshot,
    Side,
    Signal,
    SubmitOrder,
)

pytestmark = pytest.mark.timeout(120)
D = Decimal
MARKET = "KXRAIN-25NOV"
YES = f"{MARKET}-YES.KALSHI"
NO = f"{MARKET}-NO.KALSHI"
STRATEGY = "probe_strategy"
SECOND = 1_000_000_000
T1 = 1_700_000_000 * SECOND


def outcome(iid: str, complement: str) -> InstrumentSpec:
    return InstrumentSpec(id=iid, kind="binary", market_id=MARKET, complement=complement, quantity_step=D(1),
                          min_quantity=D(1), price_tick=D("0.01"))


def signal(instrument: str, price: str, ts: int, *, limit: str | None = None) -> Signal:
    return Signal(id=new_id(), ts_event=ts, ts_init=ts, strategy_id=STRATEGY, instrument_id=instrument,
                  side=Side.BUY, price=D(price), confidence=1.0, reason="probe",
                  order_type=OrderType.LIMIT if limit else OrderType.MARKET, limit_price=D(limit) if limit else None)


async def test_complements_price_rules_and_resolved_markets_over_a_real_broker(
    tmp_path: Path, fresh_nats: NatsServer, probe: NatsBus  # noqa: F811
) -> None:
    config = make_config(tmp_path, instruments=(outcome(YES, NO), outcome(NO, YES)), fraction=0.10,
                         max_position_pct=0.10, max_exposure_pct=0.25)
    config = msgspec.structs.replace(config, execution=msgspec.structs.replace(config.execution, venues=()))
    stack = await start(config, fresh_nats.url)
    seen = Seen()
    await probe.subscribe(subjects.ALL_ORDER_COMMANDS, seen, durable="probe-commands")
    await probe.subscribe(subjects.ALL_ORDER_EVENTS, seen, durable="probe-events")
    await probe.subscribe(subjects.PORTFOLIO_SNAPSHOT, seen)
    try:
        # 6250 YES at 0.40 = 2500: exactly the exposure limit (25% of 10000)
        start_cash = stack.config.ledger.starting_cash
        await probe.publish(subjects.order_event(STRATEGY), OrderFilled(
            id=derive_id("pm-live-fill"), ts_event=T1, ts_init=T1, strategy_id=STRATEGY, instrument_id=YES,
            client_order_id="tw-held-yes", venue_order_id="v1", trade_id="t1", side=Side.BUY, last_qty=D(6250),
            last_px=D("0.40"), fee=D(0), fee_currency="USD", liquidity=Liquidity.TAKER, partial=False))
        await probe.publish(subjects.execution_watermark("KALSHI"), ExecutionWatermark(
            id=derive_id("pm-live-wm"), ts_event=T1, ts_init=T1, venue="KALSHI", instrument_id=YES, close=D("0.40")))
        snap: PortfolioSnapshot = await seen.first(PortfolioSnapshot, as_of=T1)
        assert snap.equity == start_cash == D(10000) and snap.gross_exposure == D(2500)

        # NO at 0.55: 10% of 10000 = 1818 contracts, every one pairs with a held YES (exposure goes down)
        buy_no = signal(NO, "0.55", T1)
        await probe.publish(subjects.signal(STRATEGY), buy_no)
        order = await seen.first(SubmitOrder, signal_id=buy_no.id)
        assert order.quantity == D(1818) and order.instrument_id == NO

        not_a_probability = signal(YES, "0.40", T1, limit="1.00")
        await probe.publish(subjects.signal(STRATEGY), not_a_probability)
        denial = await seen.first(OrderDenied, signal_id=not_a_probability.id)
        assert denial.reason_code is DenyReason.INVALID_ORDER and "strictly within (0, 1)" in denial.reason

        await probe.publish(subjects.resolution("KALSHI"), MarketResolved(
            id=derive_id("resolved", "KALSHI", MARKET), ts_event=T1 + SECOND, ts_init=T1 + SECOND, venue="KALSHI",
            market_id=MARKET, resolution="YES", payouts=(OutcomePayout(instrument_id=YES, payout=D(1)),
                                                         OutcomePayout(instrument_id=NO, payout=D(0)))))
        settled = await seen.first(PortfolioSnapshot, positions=())
        assert settled.cash == start_cash - 2500 + 6250

        after = signal(NO, "0.55", T1)
        await probe.publish(subjects.signal(STRATEGY), after)
        denial = await seen.first(OrderDenied, signal_id=after.id)
        assert denial.reason_code is DenyReason.INSTRUMENT_NOT_TRADABLE and "has resolved" in denial.reason

        # a risk restarted after the resolution learns it from the ledger
        await stack.restart_service("risk")
        again = signal(YES, "0.40", T1)
        await probe.publish(subjects.signal(STRATEGY), again)
        denial = await seen.first(OrderDenied, signal_id=again.id)
        assert denial.reason_code is DenyReason.INSTRUMENT_NOT_TRADABLE
    finally:
        await stack.close()
