"""Automation levels per strategy: alert (an Alert, no order), semi-auto (risk's approval queue: parked,
listed, approved after a re-check, rejected, expired after the TTL, persisted across a restart), full-auto
(unchanged), adaptive (parameters move only within their bounds). Real risk and signals services on the
in-memory bus with a simulated clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from tests.support.risk_harness import BTC, DAY, MINUTE, T0, D, RiskHarness, S, risk_config
from tradewire_common import subjects
from tradewire_common.bus import MemoryBroker, MemoryBus
from tradewire_common.clock import SimulatedClock
from tradewire_common.config import Config, ConfigError, config_from_dict
from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    Alert,
    ApprovalDecision,
    Bar,
    DenyReason,
    OrderApprovalDecided,
    OrderDenied,
    OrderPendingApproval,
    Side,
    StrategyParamsChanged,
    SubmitOrder,
    TradingState,
)
from tradewire_risk.approvals import KEY, ApprovalBook, ApprovalError
from tradewire_signals.adaptive import ParamsChangeRefused, check_change
from tradewire_signals.service import SignalsService

STRATEGIES = [{"id": "auto"}, {"id": "semi", "automation": "semi-auto"}, {"id": "watch", "automation": "alert"}]
TTL_S = 120


def config(*, clock: str = "wall", max_pending: int = 100, **sections: Any) -> Config:
    return risk_config(STRATEGIES, approvals={"ttl_s": TTL_S, "clock": clock, "max_pending": max_pending},
                       **sections)


@pytest.fixture
async def risk() -> AsyncIterator[RiskHarness]:
    harness = await RiskHarness(config()).start()
    await harness.snapshot()
    yield harness
    await harness.stop()


def book(harness: RiskHarness) -> ApprovalBook:
    return msgspec.json.decode(harness.broker.kv[KEY], type=ApprovalBook)


# --- configuration --------------------------------------------------------------------------------


def test_strategies_default_to_full_auto_at_the_paper_stage_and_the_paper_venue_is_not_live() -> None:
    cfg = risk_config([{"id": "s"}])
    [strategy] = cfg.signals.strategies
    assert (strategy.automation, strategy.param_bounds, strategy.initial_stage) == ("full-auto", {}, None)
    assert cfg.promotion.initial_stage == "paper" and cfg.promotion.live_venues == ()
    assert [v.adapter for v in cfg.execution.venues] == ["paper"]
    assert (cfg.approvals.ttl_s, cfg.approvals.clock) == (300.0, "auto")


@pytest.mark.parametrize(("strategy", "message"), [
    ({"param_bounds": {"fast": {"min": 5, "max": 20}}}, "param_bounds only apply to automation = 'adaptive'"),
    ({"automation": "adaptive", "params": {"fast": 4}, "param_bounds": {"fast": {"min": 5, "max": 20}}},
     "params.fast = 4 is outside param_bounds.fast"),
    ({"automation": "adaptive", "param_bounds": {"fast": {"min": 21, "max": 20}}}, "min 21.0 is above max 20.0"),
    ({"automation": "manual"}, r"Invalid enum value .manual. - at `\$.signals.strategies\[0\].automation`"),
])
def test_bad_automation_settings_stop_the_configuration_naming_the_field(strategy: dict[str, Any],
                                                                        message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"signals": {"strategies": [{"id": "s", "kind": "sma_cross", "instruments": [BTC],
                                                      **strategy}]}})


# --- alert and full-auto --------------------------------------------------------------------------


async def test_an_alert_level_signal_becomes_an_alert_and_never_an_order(risk: RiskHarness) -> None:
    signal = await risk.signal("watch", price="41000")
    [alert] = risk.of(Alert)
    assert risk.subjects_of(Alert) == [subjects.alert("info")]
    assert (alert.severity, alert.source, alert.ts_event) == ("info", "risk", signal.ts_event)
    assert alert.title == f"signal from watch: BUY {BTC} at 41000"
    assert "no order was placed" in alert.body and signal.reason in alert.body
    assert risk.of(SubmitOrder) == [] and risk.of(OrderDenied) == []
    assert risk.service.context_feed.context.open_orders == {}


async def test_a_full_auto_signal_goes_straight_to_execution(risk: RiskHarness) -> None:
    await risk.signal("auto")
    [order] = risk.of(SubmitOrder)
    assert risk.subjects_of(SubmitOrder) == [subjects.order_command("BINANCE")]
    assert order.quantity == D("0.025")  # 10 % of 10,000 at 40,000
    assert risk.of(OrderPendingApproval) == [] and risk.service.automation.approvals.pending == {}


# --- semi-auto: parking -----------------------------------------------------------------------------


async def test_a_semi_auto_order_waits_in_the_queue_instead_of_going_out(risk: RiskHarness) -> None:
    signal = await risk.signal("semi")
    assert risk.of(SubmitOrder) == []
    [pending] = risk.of(OrderPendingApproval)
    assert risk.subjects_of(OrderPendingApproval) == [subjects.order_event("semi")]
    assert (pending.order.quantity, pending.signal_id, pending.clock) == (D("0.025"), signal.id, "wall")
    assert pending.expires_at_ns == T0 + TTL_S * S
    listed: Any = risk.service.automation.approvals.bodies()["pending"]
    [item] = listed
    assert item["id"] == pending.client_order_id == pending.order.client_order_id
    assert (item["side"], item["quantity"], item["signal_price"]) == ("BUY", "0.025", "40000")
    assert [p.id for p in book(risk).pending] == [pending.client_order_id]  # stored in the KV bucket
    # it counts as an open order while it waits
    assert list(risk.service.context_feed.context.open_orders) == [pending.client_order_id]


async def test_a_redelivered_signal_parks_nothing_twice(risk: RiskHarness) -> None:
    signal = await risk.signal("semi")
    await risk.service.on_signal(_envelope(signal))
    await risk.settle()
    first, again = risk.of(OrderPendingApproval)
    assert first.id == again.id  # same id: JetStream drops the repeat
    assert len(risk.service.automation.approvals.pending) == 1


async def test_a_full_queue_denies_the_next_order() -> None:
    harness = await RiskHarness(config(max_pending=1)).start()
    try:
        await harness.snapshot()
        await harness.signal("semi")
        await harness.signal("semi")
        [denied] = harness.of(OrderDenied)
        assert denied.reason_code is DenyReason.APPROVAL_QUEUE_FULL
        assert len(harness.service.automation.approvals.pending) == 1
        assert len(harness.service.context_feed.context.open_orders) == 1
    finally:
        await harness.stop()


# --- semi-auto: deciding ------------------------------------------------------------------------------


async def test_approving_sends_the_parked_order_after_checking_it_again(risk: RiskHarness) -> None:
    await risk.signal("semi")
    [pending] = risk.of(OrderPendingApproval)
    risk.clock.advance_to(T0 + 30 * S)
    result = await risk.service.automation.approvals.approve(pending.client_order_id, "api-token", "looks right")
    await risk.settle()
    assert (result["decision"], result["outcome"]) == ("APPROVED", "SUBMITTED")
    [decided] = risk.of(OrderApprovalDecided)
    assert (decided.decision, decided.actor, decided.reason) == (ApprovalDecision.APPROVED, "api-token", "looks right")
    [order] = risk.of(SubmitOrder)
    assert risk.subjects_of(SubmitOrder) == [subjects.order_command("BINANCE")]
    assert msgspec.structs.replace(order, ts_event=pending.order.ts_event, ts_init=pending.order.ts_init) \
        == pending.order
    assert order.ts_event == T0 + 30 * S  # sent at the approval's time (wall clock)
    assert risk.service.automation.approvals.pending == {}
    assert [(r.decision, r.outcome) for r in book(risk).recent] == [("APPROVED", "SUBMITTED")]
    with pytest.raises(ApprovalError, match="already decided: APPROVED by api-token"):
        await risk.service.automation.approvals.approve(pending.client_order_id, "api-token")


async def test_approval_under_a_halted_state_denies_the_order(risk: RiskHarness) -> None:
    await risk.signal("semi")
    [pending] = risk.of(OrderPendingApproval)
    await risk.service.control.change("global", TradingState.HALTED, "incident", "api-token")
    result = await risk.service.automation.approvals.approve(pending.client_order_id, "api-token")
    await risk.settle()
    assert result["outcome"] == "DENIED"
    [denied] = risk.of(OrderDenied)
    assert (denied.reason_code, denied.client_order_id) == (DenyReason.TRADING_HALTED, pending.client_order_id)
    assert denied.reason.startswith("at approval: trading is HALTED")
    assert risk.of(SubmitOrder) == [] and risk.service.context_feed.context.open_orders == {}


async def test_approval_after_the_portfolio_changed_sends_no_more_than_fits_now(risk: RiskHarness) -> None:
    await risk.signal("semi")
    [pending] = risk.of(OrderPendingApproval)
    await risk.snapshot("5000", (BTC, "0.1", "40000"), equity="9000")  # a position of 4,000 was opened meanwhile
    result = await risk.service.automation.approvals.approve(pending.client_order_id, "api-token")
    await risk.settle()
    # 10 % of 9,000 is 900 of position room, already used by 4,000: nothing fits
    assert result["outcome"] == "DENIED"
    [denied] = risk.of(OrderDenied)
    assert denied.reason_code is DenyReason.MAX_POSITION


async def test_approval_sends_the_smaller_quantity_when_the_limits_shrank(risk: RiskHarness) -> None:
    await risk.signal("semi")
    [pending] = risk.of(OrderPendingApproval)
    await risk.snapshot("8000")  # equity fell: 10 % is now 800, i.e. 0.02 BTC
    await risk.service.automation.approvals.approve(pending.client_order_id, "api-token")
    await risk.settle()
    [order] = risk.of(SubmitOrder)
    assert (order.quantity, pending.order.quantity) == (D("0.02"), D("0.025"))
    assert risk.service.context_feed.context.open_orders[order.client_order_id].quantity == D("0.02")


async def test_approval_refuses_an_order_whose_meaning_changed(risk: RiskHarness) -> None:
    await risk.snapshot("10000", (BTC, "0.01", "40000"))
    await risk.signal("semi", Side.SELL)  # closes the long: reduce-only SELL 0.01
    [pending] = risk.of(OrderPendingApproval)
    assert pending.order.reduce_only
    await risk.snapshot("10400")  # the position is gone
    await risk.service.automation.approvals.approve(pending.client_order_id, "api-token")
    await risk.settle()
    [denied] = risk.of(OrderDenied)
    assert denied.reason_code is DenyReason.NO_POSITION


async def test_rejecting_denies_the_order_with_who_and_why(risk: RiskHarness) -> None:
    await risk.signal("semi")
    [pending] = risk.of(OrderPendingApproval)
    approvals = risk.service.automation.approvals
    with pytest.raises(ApprovalError, match="needs a reason"):
        await approvals.reject(pending.client_order_id, "api-token", "  ")
    await approvals.reject(pending.client_order_id, "api-token", "not in this market")
    await risk.settle()
    [decided] = risk.of(OrderApprovalDecided)
    assert (decided.decision, decided.reason) == (ApprovalDecision.REJECTED, "not in this market")
    [denied] = risk.of(OrderDenied)
    assert (denied.reason_code, denied.reason) == (DenyReason.APPROVAL_REJECTED,
                                                   "rejected by api-token: not in this market")
    assert risk.subjects_of(OrderDenied) == [subjects.order_event("semi")]
    assert risk.of(SubmitOrder) == [] and approvals.pending == {}
    assert risk.service.context_feed.context.open_orders == {}
    with pytest.raises(ApprovalError, match="no order 'tw-nope' waits"):
        await approvals.reject("tw-nope", "api-token", "x")


# --- semi-auto: expiry -----------------------------------------------------------------------------


async def test_an_order_expires_exactly_at_its_ttl_in_wall_time(risk: RiskHarness) -> None:
    await risk.signal("semi")
    [pending] = risk.of(OrderPendingApproval)
    approvals = risk.service.automation.approvals
    risk.clock.advance_to(T0 + TTL_S * S - 1)
    assert await approvals.sweep() == 0 and len(approvals.pending) == 1
    risk.clock.advance_to(T0 + TTL_S * S)
    assert await approvals.sweep() == 1
    await risk.settle()
    [decided] = risk.of(OrderApprovalDecided)
    assert (decided.decision, decided.actor) == (ApprovalDecision.EXPIRED, "risk")
    [denied] = risk.of(OrderDenied)
    assert (denied.reason_code, denied.ts_event) == (DenyReason.APPROVAL_EXPIRED, T0 + TTL_S * S)
    assert denied.client_order_id == pending.client_order_id
    with pytest.raises(ApprovalError, match="already decided: EXPIRED"):
        await approvals.approve(pending.client_order_id, "api-token")
    assert risk.of(SubmitOrder) == []


async def test_in_event_time_the_ttl_runs_with_the_replay_not_the_wall_clock() -> None:
    harness = await RiskHarness(config(clock="event")).start()
    try:
        await harness.snapshot(as_of=T0)
        signal = await harness.signal("semi", ts=T0)
        [pending] = harness.of(OrderPendingApproval)
        assert (pending.clock, pending.expires_at_ns) == ("event", signal.ts_event + TTL_S * S)
        approvals = harness.service.automation.approvals
        harness.clock.advance_to(T0 + DAY)  # a day of wall time changes nothing
        assert await approvals.sweep() == 0
        await harness.snapshot(as_of=T0 + TTL_S * S - 1)
        assert await approvals.sweep() == 0
        await harness.signal("watch", ts=T0 + TTL_S * S)  # a later signal (any strategy's) moves event time
        [denied] = harness.of(OrderDenied)
        assert (denied.reason_code, denied.ts_event) == (DenyReason.APPROVAL_EXPIRED, T0 + TTL_S * S)
    finally:
        await harness.stop()


async def test_approving_in_event_time_sends_the_order_at_the_latest_event_time() -> None:
    harness = await RiskHarness(config(clock="event")).start()
    try:
        await harness.snapshot(as_of=T0)
        await harness.signal("semi", ts=T0)
        [pending] = harness.of(OrderPendingApproval)
        await harness.snapshot(as_of=T0 + MINUTE)
        await harness.service.automation.approvals.approve(pending.client_order_id, "api-token")
        await harness.settle()
        [order] = harness.of(SubmitOrder)
        assert order.ts_event == T0 + MINUTE  # fills on the first bar after the approval, not after the signal
    finally:
        await harness.stop()


# --- semi-auto: restart ------------------------------------------------------------------------------


async def test_the_queue_survives_a_risk_restart() -> None:
    broker = MemoryBroker()
    first = await RiskHarness(config(), broker=broker).start()
    await first.snapshot()
    await first.signal("semi")
    await first.signal("semi")
    one, two = first.of(OrderPendingApproval)
    await first.service.automation.approvals.reject(one.client_order_id, "api-token", "no")
    await first.stop()

    second = await RiskHarness(config(), broker=broker).start()
    try:
        approvals = second.service.automation.approvals
        assert list(approvals.pending) == [two.client_order_id]
        assert [r.decision for r in approvals.recent] == ["REJECTED"]
        assert list(second.service.context_feed.context.open_orders) == [two.client_order_id]
        await second.snapshot()
        await approvals.approve(two.client_order_id, "api-token")
        await second.settle()
        [order] = second.of(SubmitOrder)
        assert order.client_order_id == two.client_order_id
    finally:
        await second.stop()


# --- adaptive -------------------------------------------------------------------------------------

ADAPTIVE = [
    {"id": "tuned", "automation": "adaptive", "params": {"fast": 10, "slow": 30},
     "param_bounds": {"fast": {"min": 5, "max": 35}}},
    {"id": "fixed", "params": {"fast": 10, "slow": 30}},
]


@pytest.mark.parametrize(("strategy", "params", "message"), [
    (1, {"fast": 12}, "fixed is full-auto: its parameters change only with a new configuration"),
    (0, {"slow": 40}, "parameter slow of tuned has no param_bounds"),
    (0, {"fast": 4}, r"fast = 4 is outside its bounds \[5, 35\]"),
    (0, {"fast": 36}, r"fast = 36 is outside its bounds \[5, 35\]"),
    (0, {"fast": "12"}, "is not a number"),
    (0, {}, "no parameters given"),
])
def test_parameter_changes_outside_the_bounds_or_of_non_adaptive_strategies_are_refused(
    strategy: int, params: dict[str, Any], message: str,
) -> None:
    cfg = risk_config(ADAPTIVE)
    with pytest.raises(ParamsChangeRefused, match=message):
        check_change(cfg.signals.strategies[strategy], params)


@pytest.mark.parametrize("fast", [5, 35])
def test_a_change_exactly_at_a_bound_passes_the_bounds(fast: int) -> None:
    check_change(risk_config(ADAPTIVE).signals.strategies[0], {"fast": fast})


@pytest.fixture
async def signals() -> AsyncIterator[tuple[SignalsService, list[Any]]]:
    broker = MemoryBroker()
    clock = SimulatedClock(T0)
    service = SignalsService(risk_config(ADAPTIVE), MemoryBus("signals", broker, clock=clock), clock=clock)
    recorder = MemoryBus("recorder", broker)
    seen: list[Any] = []

    async def record(envelope: Any) -> None:
        seen.append((envelope.subject, envelope.message))

    await recorder.subscribe(subjects.ALL_GOVERNANCE, record)
    yield service, seen
    await recorder.wait_idle(5)
    await recorder.close()


async def test_an_adaptive_change_rebuilds_the_strategy_and_is_published(
    signals: tuple[SignalsService, list[Any]],
) -> None:
    service, seen = signals
    await service.on_bar(_envelope(_bar(T0)))
    result = await service.adaptive.change("tuned", {"fast": 20}, "weekly re-optimisation", "api-token")
    assert (result["params"], result["previous"]) == ({"fast": 20, "slow": 30}, {"fast": 10, "slow": 30})
    strategy, interval = service.strategies[0]
    assert (strategy.strategy_id, strategy.params.fast, interval) == ("tuned", 20, "*")
    assert service.strategies[1][0].params.fast == 10  # the other strategy is untouched
    await service.bus.wait_idle(5)
    [(subject, event)] = seen
    assert subject == subjects.strategy_params("tuned") and isinstance(event, StrategyParamsChanged)
    assert (event.params, event.previous, event.reason, event.actor) == (
        {"fast": 20, "slow": 30}, {"fast": 10, "slow": 30}, "weekly re-optimisation", "api-token")


async def test_a_change_the_strategy_itself_refuses_leaves_it_as_it_was(
    signals: tuple[SignalsService, list[Any]],
) -> None:
    service, seen = signals
    with pytest.raises(ParamsChangeRefused, match=r"fast \(35\) must be below slow \(30\)") as refused:
        await service.adaptive.change("tuned", {"fast": 35}, "re-optimisation", "api-token")
    assert refused.value.status == 422
    assert service.strategies[0][0].params.fast == 10 and seen == []


def _envelope(message: Any) -> Any:
    from tradewire_common.bus import Envelope

    return Envelope("test", message, {})


def _bar(ts: int) -> Bar:
    p = D("40000")
    return Bar(id=derive_id("adaptive-bar", ts), ts_event=ts, ts_init=ts, instrument_id=BTC, interval="1m", open=p,
               high=p, low=p, close=p, volume=D(1))
