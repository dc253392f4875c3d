"""Promotion stages: what each stage lets through at decision time (paper venues, live venues, the live-small
capital cap, each at its boundary), the promotion actions (one stage up through its gate, any stage down,
stored and published), and the gates themselves at their boundaries with simulated time.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from tests.support.risk_harness import BTC, DAY, T0, D, RiskHarness, risk_config
from tradewire_common import subjects
from tradewire_common.bus import MemoryBroker
from tradewire_common.config import Config, InstrumentSpec, PromotionConfig
from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    DenyReason,
    OrderDenied,
    OrderType,
    PortfolioSnapshot,
    PositionSnapshot,
    Side,
    StrategyStage,
    StrategyStageChanged,
    SubmitOrder,
)
from tradewire_risk.context import RiskContext
from tradewire_risk.promotion import stage_key
from tradewire_risk.stages import (
    PromotionRefused,
    StageDenial,
    StageRecord,
    check_order,
    live_gate,
    paper_gate,
)

XBT = "XBTUSD.KRAKEN"  # KRAKEN is live (promotion.live_venues)
CAP = "1500"
REPORT = {"mode": "event", "strategy": "sma_cross", "bars": 20_160, "trades": 4, "total_return": 0.0123}


def config(**risk: Any) -> Config:
    strategies = [
        {"id": "paper"},
        {"id": "bt", "initial_stage": "backtest"},
        {"id": "small", "initial_stage": "live-small"},
        {"id": "full", "initial_stage": "live"},
    ]
    cfg = risk_config(
        [{**s, "instruments": [BTC, XBT]} for s in strategies],
        promotion={"live_venues": ["KRAKEN"], "live_small_capital": CAP, "clock": "wall", "paper_days": 14,
                   "live_small_days": 30},
        execution={"venues": [{"name": "BINANCE"}, {"name": "KRAKEN"}]},
    )
    specs = tuple(InstrumentSpec(id=i, quantity_step=D("0.0001"), min_quantity=D("0.0001")) for i in (BTC, XBT))
    return msgspec.structs.replace(cfg, risk=msgspec.structs.replace(
        cfg.risk, max_position_pct=1.0, max_exposure_pct=1.0, instruments=specs, **risk))


@pytest.fixture
async def risk() -> AsyncIterator[RiskHarness]:
    harness = await RiskHarness(config()).start()
    await harness.snapshot()
    yield harness
    await harness.stop()


# --- decision time ----------------------------------------------------------------------------------


async def test_a_paper_strategy_trades_paper_venues_but_is_denied_live_ones(risk: RiskHarness) -> None:
    await risk.signal("paper")
    await risk.signal("paper", instrument=XBT)
    [order] = risk.of(SubmitOrder)
    assert order.instrument_id == BTC
    [denied] = risk.of(OrderDenied)
    assert (denied.reason_code, denied.instrument_id) == (DenyReason.STAGE_NOT_LIVE, XBT)
    assert "venue KRAKEN is live and strategy paper is at stage paper" in denied.reason
    # the order the engine had recorded is taken back out of risk's context
    assert list(risk.service.context_feed.context.open_orders) == [order.client_order_id]


async def test_a_backtest_strategy_sends_nothing_but_may_always_close(risk: RiskHarness) -> None:
    await risk.signal("bt")
    [denied] = risk.of(OrderDenied)
    assert denied.reason_code is DenyReason.STAGE_BACKTEST_ONLY
    await risk.snapshot("9600", (XBT, "0.01", "40000"))
    await risk.signal("bt", Side.SELL, instrument=XBT)
    [close] = risk.of(SubmitOrder)
    assert (close.reduce_only, close.quantity, close.instrument_id) == (True, D("0.01"), XBT)


@pytest.mark.parametrize(("held", "expected"), [
    ("0", D("0.025")),  # 1,000 of 1,500
    ("0.0125", D("0.025")),  # 500 + 1,000: exactly at the cap
    ("0.0126", D("0.0249")),  # 504 + 1,000 > 1,500: clipped to the room of 996
    ("0.0374", D("0.0001")),  # room of 4: one step, the minimum
])
async def test_live_small_caps_the_capital_on_live_venues(risk: RiskHarness, held: str, expected: Decimal) -> None:
    notional = D(held) * 40000
    await risk.snapshot(str(D(10000) - notional), (XBT, held, "40000"))
    await risk.signal("small", instrument=XBT)
    [order] = risk.of(SubmitOrder)
    assert order.quantity == expected
    assert risk.service.context_feed.context.open_orders[order.client_order_id].quantity == expected


async def test_live_small_denies_when_no_step_fits(risk: RiskHarness) -> None:
    await risk.snapshot("8505", (XBT, "0.037375", "40000"))  # 1,495 used: room for one step
    await risk.signal("small", instrument=XBT)
    assert [o.quantity for o in risk.of(SubmitOrder)] == [D("0.0001")]
    await risk.snapshot("8500", (XBT, "0.0375", "40000"))  # 1,500 used
    await risk.signal("small", instrument=XBT)
    [denied] = risk.of(OrderDenied)
    assert denied.reason_code is DenyReason.STAGE_CAPITAL_CAP
    assert "would exceed the cap 1500" in denied.reason


async def test_live_small_does_not_cap_paper_venues_and_live_has_no_cap(risk: RiskHarness) -> None:
    await risk.snapshot("8500", (XBT, "0.0375", "40000"))
    await risk.signal("small")  # BINANCE is a paper venue
    await risk.signal("full", instrument=XBT)
    assert [(o.strategy_id, o.quantity) for o in risk.of(SubmitOrder)] == [("small", D("0.025")), ("full", D("0.025"))]


def _order(qty: str, side: Side = Side.BUY) -> SubmitOrder:
    return SubmitOrder(id=derive_id("gate-order", qty, side), ts_event=T0, ts_init=T0, strategy_id="small",
                       instrument_id=XBT, client_order_id=f"tw-gate-{qty}", side=side, order_type=OrderType.MARKET,
                       quantity=D(qty), stop_loss_pct=D("0.02"))


def _portfolio(*positions: tuple[str, str, str]) -> PortfolioSnapshot:
    return PortfolioSnapshot(
        id="p", ts_event=T0, ts_init=T0, account="paper", cash=D(0), equity=D(10000), realized_pnl=D(0),
        unrealized_pnl=D(0), gross_exposure=D(0), as_of=T0,
        positions=tuple(PositionSnapshot(instrument_id=i, quantity=D(q), avg_price=D(p), last_price=D(p),
                                         realized_pnl=D(0), unrealized_pnl=D(0)) for i, q, p in positions))


def _check(order: SubmitOrder, portfolio: PortfolioSnapshot) -> SubmitOrder | StageDenial:
    return check_order(order, "live-small", live=frozenset({"KRAKEN"}),
                       config=PromotionConfig(live_small_capital=D(CAP)),
                       spec=InstrumentSpec(id=XBT, quantity_step=D("0.0001"), min_quantity=D("0.0001")),
                       price=D("40000"), portfolio=portfolio, context=RiskContext(), follows_fills=False,
                       instruments=(XBT, "ETHUSD.KRAKEN"))


def test_a_flip_at_live_small_counts_only_what_it_opens() -> None:
    flip = _order("0.1")  # closes a short of 0.05 (2,000) and opens 0.05 (2,000)
    clipped = _check(flip, _portfolio((XBT, "-0.05", "40000")))
    assert isinstance(clipped, SubmitOrder) and clipped.quantity == D("0.0875")  # 0.05 + 1,500 of room


def test_a_flip_without_room_sends_its_closing_part_alone() -> None:
    flip = _order("0.1")
    other = ("ETHUSD.KRAKEN", "1", "1500")  # the strategy's other live position uses the whole cap
    closing = _check(flip, _portfolio((XBT, "-0.05", "40000"), other))
    assert isinstance(closing, SubmitOrder)
    assert (closing.quantity, closing.reduce_only, closing.stop_loss_pct) == (D("0.05"), True, None)


def test_positions_of_instruments_the_strategy_does_not_trade_do_not_count() -> None:
    fits = _check(_order("0.0375"), _portfolio(("SOLUSD.KRAKEN", "100", "100")))
    assert isinstance(fits, SubmitOrder) and fits.quantity == D("0.0375")


# --- promotion actions ----------------------------------------------------------------------------------


async def test_promotions_go_one_stage_at_a_time_with_a_reason(risk: RiskHarness) -> None:
    promotions = risk.service.automation.promotions
    with pytest.raises(PromotionRefused, match="one stage at a time"):
        await promotions.promote("bt", "live-small", "skip", "api-token", REPORT)
    with pytest.raises(PromotionRefused, match="already at stage paper"):
        await promotions.promote("paper", "paper", "again", "api-token")
    with pytest.raises(PromotionRefused, match="needs a reason"):
        await promotions.promote("paper", "backtest", "  ", "api-token")
    assert risk.broker.kv.get(stage_key("bt")) is None and risk.of(StrategyStageChanged) == []


@pytest.mark.parametrize(("report", "message"), [
    (None, "needs a recorded backtest"),
    ({"bars": 10}, "no numeric total_return"),
    ({"total_return": "x", "bars": 10}, "total_return is not a number"),
    ({"total_return": 0.1, "bars": 0}, "has no bars"),
    ({"total_return": 0.1, "bars": 10, "strategy": "breakout"}, "is of strategy 'breakout', not 'sma_cross'"),
])
async def test_promotion_to_paper_needs_a_recorded_backtest(risk: RiskHarness, report: dict[str, Any] | None,
                                                            message: str) -> None:
    with pytest.raises(PromotionRefused, match=message):
        await risk.service.automation.promotions.promote("bt", "paper", "backtest looks fine", "api-token", report)
    assert risk.service.automation.promotions.stage("bt") == "backtest"


async def test_a_promotion_is_stored_published_and_lets_the_strategy_trade(risk: RiskHarness) -> None:
    promotions = risk.service.automation.promotions
    risk.clock.advance_to(T0 + 5)
    body = await promotions.promote("bt", "paper", "backtest looks fine", "api-token", REPORT)
    assert (body["stage"], body["since_ns"]) == ("paper", T0 + 5)
    record = msgspec.json.decode(risk.broker.kv[stage_key("bt")], type=StageRecord)
    [entry] = record.history
    assert (entry.stage, entry.previous, entry.actor, entry.reason) == ("paper", "backtest", "api-token",
                                                                        "backtest looks fine")
    assert json.loads(entry.backtest_report) == REPORT and entry.evidence["backtest_return"] == "0.0123"
    await risk.settle()
    [event] = risk.of(StrategyStageChanged)
    assert risk.subjects_of(StrategyStageChanged) == [subjects.strategy_stage("bt")]
    assert (event.stage, event.previous, event.ts_event) == (StrategyStage.PAPER, StrategyStage.BACKTEST, T0 + 5)
    assert json.loads(event.backtest_report) == REPORT
    await risk.signal("bt", ts=T0)
    assert [o.strategy_id for o in risk.of(SubmitOrder)] == ["bt"]
    assert b'tradewire_risk_strategy_stage_value{strategy="bt"} 1.0' in risk.service.metrics.render()


async def test_demotion_is_always_allowed_and_a_recorded_backtest_is_reused(risk: RiskHarness) -> None:
    promotions = risk.service.automation.promotions
    await promotions.promote("bt", "paper", "backtest ok", "api-token", REPORT)
    await promotions.promote("full", "backtest", "losing money", "api-token")  # live -> backtest in one step
    await risk.signal("full")
    [denied] = risk.of(OrderDenied)
    assert denied.reason_code is DenyReason.STAGE_BACKTEST_ONLY
    await promotions.promote("bt", "backtest", "rethink", "api-token")
    body = await promotions.promote("bt", "paper", "same backtest", "api-token")  # no report: the recorded one
    history: Any = body["history"]
    assert [h["stage"] for h in history] == ["paper", "backtest", "paper"]
    assert json.loads(history[-1]["backtest_report"]) == REPORT


@pytest.mark.parametrize(("elapsed", "allowed"), [(30 * DAY - 1, False), (30 * DAY, True)])
async def test_promotion_to_live_needs_the_live_small_period(risk: RiskHarness, elapsed: int, allowed: bool) -> None:
    promotions = risk.service.automation.promotions
    await promotions.promote("full", "live-small", "scale down", "api-token")  # at live-small since T0
    risk.clock.advance_to(T0 + elapsed)
    if allowed:
        body = await promotions.promote("full", "live", "a month at live-small", "api-token")
        history: Any = body["history"]
        assert history[-1]["evidence"] == {"live_small_start_ns": str(T0), "live_small_days": "30"}
    else:
        with pytest.raises(PromotionRefused, match=r"at live-small for 29\.9999 days; 30 needed"):
            await promotions.promote("full", "live", "too early", "api-token")


async def test_a_strategy_at_its_initial_live_small_stage_has_no_period_to_show(risk: RiskHarness) -> None:
    with pytest.raises(PromotionRefused, match=r"at live-small for 0\.0000 days"):
        await risk.service.automation.promotions.promote("small", "live", "never demoted", "api-token")


async def test_stages_survive_a_risk_restart() -> None:
    broker = MemoryBroker()
    first = await RiskHarness(config(), broker=broker).start()
    await first.service.automation.promotions.promote("bt", "paper", "ok", "api-token", REPORT)
    await first.stop()
    second = await RiskHarness(config(), broker=broker).start()
    try:
        promotions = second.service.automation.promotions
        assert promotions.stage("bt") == "paper" and promotions.stage("paper") == "paper"
        assert promotions.body("bt")["since_ns"] == T0
    finally:
        await second.stop()


async def test_promotion_to_live_small_without_a_report_or_a_ledger_is_refused(risk: RiskHarness) -> None:
    promotions = risk.service.automation.promotions
    with pytest.raises(PromotionRefused, match="needs a backtest report over the paper period"):
        await promotions.promote("paper", "live-small", "two weeks", "api-token")
    with pytest.raises(PromotionRefused, match=r"risk\.ledger_url is not set"):
        await promotions.promote("paper", "live-small", "two weeks", "api-token", REPORT)


# --- the paper gate ---------------------------------------------------------------------------------

PAPER = PromotionConfig(paper_days=14, tolerance=0.05, period_slack_s=3600)
END = T0 + 14 * DAY


def _fill(ts: int, side: str, qty: str, px: str, fee: str, *, strategy: str = "s", instrument: str = BTC,
          seq: int = 0) -> dict[str, Any]:
    return {"seq": seq or ts, "strategy_id": strategy, "instrument_id": instrument, "side": side, "last_qty": qty,
            "last_px": px, "fee": fee, "ts_event": ts}


ROUND_TRIP = [_fill(T0 + DAY, "BUY", "0.1", "40000", "4"), _fill(T0 + 2 * DAY, "SELL", "0.1", "41000", "4.1")]
EQUITY = [{"ts": T0 - DAY, "equity": "9000"}, {"ts": T0, "equity": "10000"}, {"ts": T0 + DAY, "equity": "10100"}]


def gate(*, since: int | None = T0, now: int = END, fills: list[dict[str, Any]] = ROUND_TRIP,
         equity: list[dict[str, Any]] = EQUITY, marks: dict[str, Decimal] | None = None,
         report: dict[str, Any] | None = None, config: PromotionConfig = PAPER) -> Any:
    return paper_gate(strategy_id="s", kind="sma_cross", stage_since=since, now_ns=now, fills=fills, equity=equity,
                      marks=marks or {}, report=report if report is not None else {**REPORT, "total_return": "0.00919"},
                      config=config, live=frozenset({"KRAKEN"}), starting_cash=D("5000"))


def test_the_paper_return_is_the_strategys_pnl_over_the_equity_at_the_start() -> None:
    result = gate()
    # (41,000 - 40,000) * 0.1 - 4 - 4.1 = 91.9 on 10,000
    assert (result.pnl, result.base_equity, result.paper_return, result.difference) == (
        D("91.9"), D("10000"), D("0.00919"), D(0))
    assert (result.start_ns, result.end_ns, result.days, result.fills) == (T0, END, D(14), 2)
    assert result.evidence()["paper_return"] == "0.00919"


@pytest.mark.parametrize(("now", "passes"), [(END - 1, False), (END, True)])
def test_the_paper_period_must_last_paper_days(now: int, passes: bool) -> None:
    if passes:
        assert gate(now=now).days == 14
    else:
        with pytest.raises(PromotionRefused, match=r"paper trading for 13\.9999 days; 14 needed"):
            gate(now=now)


@pytest.mark.parametrize(("backtest", "passes"), [
    ("0.05919", True), ("-0.04081", True),  # exactly 0.05 away either way
    ("0.05920", False), ("-0.04082", False),
])
def test_the_paper_return_must_be_within_the_tolerance_of_the_backtests(backtest: str, passes: bool) -> None:
    report = {**REPORT, "total_return": backtest}
    if passes:
        assert gate(report=report).difference == D("0.05")
    else:
        with pytest.raises(PromotionRefused, match=r"> tolerance 0\.05"):
            gate(report=report)


def test_an_open_paper_position_is_marked_at_the_latest_mark() -> None:
    fills = [_fill(T0 + DAY, "BUY", "0.1", "40000", "4")]
    result = gate(fills=fills, marks={BTC: D("40500")}, report={**REPORT, "total_return": 0})
    assert result.pnl == D("46.0")  # 0.1 * 40,500 - 4,000 - 4
    with pytest.raises(PromotionRefused, match=f"no mark for {BTC}"):
        gate(fills=fills, report={**REPORT, "total_return": 0})


def test_fills_of_other_strategies_live_venues_and_before_the_period_are_not_paper_results() -> None:
    noise = [_fill(T0 + DAY, "BUY", "5", "40000", "1", strategy="other"),
             _fill(T0 + DAY, "BUY", "5", "40000", "1", instrument=XBT),
             _fill(T0 - DAY, "BUY", "1", "30000", "1"), _fill(T0 - 1, "SELL", "1", "30500", "1")]
    assert gate(fills=[*noise, *ROUND_TRIP]).pnl == D("91.9")


def test_the_period_must_start_flat() -> None:
    carried = [_fill(T0 - DAY, "BUY", "0.1", "30000", "1")]
    with pytest.raises(PromotionRefused, match="comparison needs a flat start"):
        gate(fills=[*carried, *ROUND_TRIP])


def test_without_a_promotion_to_paper_the_period_starts_at_the_first_paper_fill() -> None:
    result = gate(since=None, now=T0 + 15 * DAY)
    assert (result.start_ns, result.base_equity) == (T0 + DAY, D("10100"))
    with pytest.raises(PromotionRefused, match="no paper fills yet"):
        gate(since=None, fills=[])


@pytest.mark.parametrize(("equity", "base"), [
    (EQUITY, D("10000")),  # the last point at or before the start
    ([{"ts": T0 + DAY, "equity": "10100"}], D("10100")),  # none before: the first one
    ([], D("5000")),  # none: the starting cash
])
def test_the_base_equity(equity: list[dict[str, Any]], base: Decimal) -> None:
    assert gate(equity=equity, report={**REPORT, "total_return": 0}).base_equity == base


@pytest.mark.parametrize(("shift", "passes"), [(3600 * 10**9, True), (3600 * 10**9 + 1, False)])
def test_a_report_with_its_period_must_cover_the_paper_period(shift: int, passes: bool) -> None:
    report = {**REPORT, "total_return": "0.00919", "start_ns": T0 - shift, "end_ns": END}
    if passes:
        gate(report=report)
        gate(report={**report, "start_ns": T0, "end_ns": END + shift})
    else:
        with pytest.raises(PromotionRefused, match=r"start_ns \d+ is more than 3600 s from the paper period"):
            gate(report=report)


def test_live_gate_counts_from_the_promotion_to_live_small() -> None:
    config = PromotionConfig(live_small_days=30)
    assert live_gate(strategy_id="s", stage_since=T0, now_ns=T0 + 30 * DAY, config=config) == {
        "live_small_start_ns": str(T0), "live_small_days": "30"}
    with pytest.raises(PromotionRefused):
        live_gate(strategy_id="s", stage_since=T0, now_ns=T0 + 30 * DAY - 1, config=config)
