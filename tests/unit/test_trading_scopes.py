"""Trading states per scope: the most restrictive of global, the strategy's and the venue's wins;
REDUCING lets reductions and cancels through, HALTED only cancels. Risk's state changes (validation,
KV, events, breakers) and execution's enforcement, on the in-memory bus with a simulated clock.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from tradewire_common import schemas, subjects
from tradewire_common.bus import MemoryBroker, MemoryBus
from tradewire_common.clock import SimulatedClock
from tradewire_common.config import Config, config_from_dict
from tradewire_common.ids import derive_id
from tradewire_common.nats_auth import ALL_ROLES, role_permissions
from tradewire_common.schemas import (
    Alert,
    DenyReason,
    OrderDenied,
    OrderType,
    PortfolioSnapshot,
    PositionSnapshot,
    Side,
    Signal,
    SubmitOrder,
    TradingState,
    TradingStateChanged,
)
from tradewire_common.trading_state import (
    GLOBAL,
    HaltRequest,
    StoredState,
    TradingStateView,
    configured_scopes,
    flatten_client_order_id,
    most_restrictive,
    permits,
    scope_key,
)
from tradewire_execution.service import ExecutionService
from tradewire_risk.breakers import Trip
from tradewire_risk.kill_switch import StateChangeError
from tradewire_risk.service import RiskService

ACTIVE, REDUCING, HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED
BTC = "BTCUSDT.BINANCE"
T0 = 1_641_000_000_000_000_000
D = Decimal
_ids = itertools.count()

CONFIG: dict[str, Any] = {
    "signals": {"strategies": [
        {"id": "sma_cross", "kind": "sma_cross", "instruments": [BTC]},
        {"id": "breakout", "kind": "breakout", "instruments": [BTC, "ETHUSDT.KRAKEN"]},
    ]},
    "execution": {"venues": [{"name": "BINANCE"}, {"name": "KRAKEN"}]},
}
SCOPES = ("global", "strategy:sma_cross", "strategy:breakout", "venue:BINANCE", "venue:KRAKEN")


def config(**breakers: Any) -> Config:
    return config_from_dict({**CONFIG, "risk": {"breakers": breakers}})


def view_with(**states: TradingState) -> TradingStateView:
    view = TradingStateView(SCOPES)
    for key, state in states.items():
        scope = key.replace("__", ":")
        view.states[scope] = StoredState(state, "test", "test", 1)
    return view


# --- precedence ----------------------------------------------------------------------------------


def test_the_scopes_come_from_the_configuration() -> None:
    assert configured_scopes(config()) == SCOPES
    assert configured_scopes(Config()) == ("global", "venue:BINANCE")


@pytest.mark.parametrize(("states", "expected"), [
    ((ACTIVE, ACTIVE, ACTIVE), ACTIVE),
    ((REDUCING, ACTIVE, ACTIVE), REDUCING),
    ((ACTIVE, REDUCING, ACTIVE), REDUCING),
    ((ACTIVE, ACTIVE, HALTED), HALTED),
    ((REDUCING, HALTED, ACTIVE), HALTED),
    ((HALTED, ACTIVE, REDUCING), HALTED),
])
def test_the_most_restrictive_of_global_strategy_and_venue_wins(
    states: tuple[TradingState, TradingState, TradingState], expected: TradingState
) -> None:
    g, s, v = states
    view = view_with(**{"global": g, "strategy__sma_cross": s, "venue__BINANCE": v})
    assert view.effective("sma_cross", "BINANCE") is expected
    assert most_restrictive(states) is expected


def test_another_strategy_or_venue_is_not_affected() -> None:
    view = view_with(strategy__sma_cross=HALTED, venue__KRAKEN=REDUCING)
    assert view.effective("sma_cross", "BINANCE") is HALTED
    assert view.effective("breakout", "BINANCE") is ACTIVE
    assert view.effective("breakout", "KRAKEN") is REDUCING
    assert view.binding_scope("breakout", "KRAKEN") == "venue:KRAKEN"
    assert view.effective("unknown", "ELSEWHERE") is ACTIVE  # unconfigured scopes have no state
    assert view.binding_scope("breakout", "BINANCE") == "global"


def test_reducing_allows_reductions_and_cancels_and_halted_only_cancels() -> None:
    assert permits(ACTIVE) and permits(ACTIVE, reduce_only=True) and permits(ACTIVE, cancel=True)
    assert not permits(REDUCING) and permits(REDUCING, reduce_only=True) and permits(REDUCING, cancel=True)
    assert not permits(HALTED) and not permits(HALTED, reduce_only=True) and permits(HALTED, cancel=True)


def test_the_view_ignores_older_events_and_unknown_scopes() -> None:
    view = TradingStateView(SCOPES)

    def change(scope: str, state: TradingState, ts: int) -> TradingStateChanged:
        return TradingStateChanged(id=derive_id("scope-test", next(_ids)), ts_event=ts, ts_init=ts, scope=scope,
                                   state=state, previous=ACTIVE, reason="r", actor="a", trigger="drawdown")

    assert view.apply(change("venue:BINANCE", HALTED, 10))
    assert not view.apply(change("venue:BINANCE", ACTIVE, 9))
    assert not view.apply(change("venue:NOWHERE", HALTED, 11))
    assert view.get("venue:BINANCE") == StoredState(HALTED, "r", "a", 10, "drawdown")
    assert view.summary() == {s: ("HALTED" if s == "venue:BINANCE" else "ACTIVE") for s in SCOPES}


# --- KV keys and permissions ---------------------------------------------------------------------


def test_every_scope_has_a_key_only_risk_may_write_and_every_service_may_read() -> None:
    keys = {scope_key(scope) for scope in SCOPES}
    assert keys == {"trading_state.global", "trading_state.strategy.sma_cross", "trading_state.strategy.breakout",
                    "trading_state.venue.BINANCE", "trading_state.venue.KRAKEN"}
    assert scope_key("venue:some.venue") == "trading_state.venue.some=2Evenue"
    with pytest.raises(ValueError, match="invalid scope"):
        scope_key("desk:fx")
    for role in ALL_ROLES:
        perms = role_permissions(role)
        for key in keys:
            assert perms.may_publish(f"$KV.{subjects.STATE_BUCKET}.{key}") is (role == "risk")
        if role not in ("operator", "monitor"):
            assert perms.may_subscribe(subjects.RISK_STATE)
            assert perms.may_publish(f"$JS.API.STREAM.MSG.GET.KV_{subjects.STATE_BUCKET}")


# --- risk ----------------------------------------------------------------------------------------


class Recorder:
    def __init__(self, broker: MemoryBroker) -> None:
        self.bus = MemoryBus("recorder", broker)
        self.messages: list[tuple[str, schemas.Message]] = []

    async def start(self) -> None:
        for pattern in (subjects.RISK_STATE, subjects.ALL_ALERTS, subjects.ALL_ORDER_COMMANDS):
            await self.bus.subscribe(pattern, self.record)

    async def record(self, envelope: Any) -> None:
        self.messages.append((envelope.subject, envelope.message))

    async def settle(self) -> None:
        await self.bus.wait_idle(5)

    def of(self, kind: type[Any]) -> list[Any]:
        return [m for _, m in self.messages if isinstance(m, kind)]


@pytest.fixture
async def risk() -> Any:
    broker = MemoryBroker()
    clock = SimulatedClock(T0)
    service = RiskService(config(drawdown_pct=0.10, max_orders_per_minute=1), MemoryBus("risk", broker),
                          clock=clock)
    recorder = Recorder(broker)
    await recorder.start()
    yield service, recorder, clock, broker
    await recorder.bus.close()


async def test_a_change_is_stored_under_its_key_and_published_with_the_actor(risk: Any) -> None:
    service, recorder, _clock, broker = risk
    body = await service.control.change("venue:BINANCE", HALTED, "exchange incident", "api-token")
    assert body == {"scope": "venue:BINANCE", "state": "HALTED", "reason": "exchange incident", "actor": "api-token",
                    "since_ns": T0, "trigger": ""}
    stored = msgspec.json.decode(broker.kv[scope_key("venue:BINANCE")], type=StoredState)
    assert stored == StoredState(HALTED, "exchange incident", "api-token", T0)
    await recorder.settle()
    [change] = recorder.of(TradingStateChanged)
    assert (change.scope, change.state, change.previous, change.actor, change.trigger) == (
        "venue:BINANCE", HALTED, ACTIVE, "api-token", "")
    assert service.control.state_for(_signal("sma_cross")) is HALTED
    assert service.control.state_for(_signal("sma_cross", "ETHUSDT.KRAKEN")) is ACTIVE


async def test_leaving_halted_needs_a_reason_and_unknown_scopes_are_refused(risk: Any) -> None:
    service, _recorder, clock, _broker = risk
    await service.control.change(GLOBAL, HALTED, "", "api-token")  # engaging needs none
    clock.advance_to(T0 + 1)
    for state in (ACTIVE, REDUCING):
        with pytest.raises(StateChangeError, match="leaving HALTED needs a reason"):
            await service.control.change(GLOBAL, state, "   ", "api-token")
    assert service.control.view.get(GLOBAL).state is HALTED
    with pytest.raises(StateChangeError, match="unknown scope 'strategy:nope'"):
        await service.control.change("strategy:nope", HALTED, "x", "api-token")
    with pytest.raises(StateChangeError, match="flatten goes with HALTED"):
        await service.control.change("strategy:sma_cross", HALTED, "x", "api-token", flatten=True)
    with pytest.raises(StateChangeError, match="flatten goes with HALTED"):
        await service.control.change(GLOBAL, REDUCING, "x", "api-token", flatten=True)
    assert (await service.control.change(GLOBAL, ACTIVE, "all clear", "api-token"))["state"] == "ACTIVE"


async def test_the_halt_subject_answers_with_the_new_state_or_an_error(risk: Any) -> None:
    service, _recorder, _clock, _broker = risk
    engage = msgspec.json.encode(HaltRequest(state=HALTED, reason="from the console"))
    answer = msgspec.json.decode(await service.control.answer_halt(engage))
    assert (answer["state"], answer["actor"], answer["reason"]) == ("HALTED", "nats:operator", "from the console")
    release = msgspec.json.encode(HaltRequest(state=ACTIVE))
    assert "leaving HALTED needs a reason" in msgspec.json.decode(await service.control.answer_halt(release))["error"]
    assert "error" in msgspec.json.decode(await service.control.answer_halt(b'{"state": "PAUSED"}'))
    status = msgspec.json.decode(await service.control.answer_halt(b'{"scope": "venue:KRAKEN"}'))
    assert (status["scope"], status["state"]) == ("venue:KRAKEN", "ACTIVE")


async def test_flatten_sends_reduce_only_market_orders_closing_the_snapshots_positions(risk: Any) -> None:
    service, recorder, _clock, _broker = risk
    service.snapshot = _snapshot("10000", (BTC, "0.5", "40000"), ("ETHUSDT.KRAKEN", "-2", "3000"))
    body = await service.control.change("venue:BINANCE", HALTED, "close BINANCE", "api-token", flatten=True)
    await recorder.settle()
    [order] = recorder.of(SubmitOrder)
    [change] = recorder.of(TradingStateChanged)
    assert body["flatten_orders"] == [order.client_order_id] == [flatten_client_order_id(change.id, BTC)]
    assert (order.instrument_id, order.side, order.order_type, order.quantity, order.reduce_only) == (
        BTC, Side.SELL, OrderType.MARKET, D("0.5"), True)
    assert order.strategy_id == "kill-switch"  # two configured strategies trade BTC
    assert order.ts_event == service.snapshot.as_of
    assert [s for s, m in recorder.messages if m is order] == [subjects.order_command("BINANCE")]

    await service.control.change(GLOBAL, HALTED, "close all", "api-token", flatten=True)
    await recorder.settle()
    eth = [o for o in recorder.of(SubmitOrder) if o.instrument_id == "ETHUSDT.KRAKEN"]
    assert [(o.side, o.quantity, o.strategy_id) for o in eth] == [(Side.BUY, D("2"), "breakout")]


async def test_a_breaker_trip_is_in_effect_at_once_published_alerted_and_never_released(risk: Any) -> None:
    service, recorder, _clock, _broker = risk
    for equity in ("10000", "8999"):  # 10.01 % below the peak
        await service.on_snapshot(_envelope(_snapshot(equity)))
    assert service.control.view.get(GLOBAL).state is HALTED
    await recorder.settle()
    [change] = recorder.of(TradingStateChanged)
    assert (change.scope, change.state, change.trigger, change.actor) == ("global", HALTED, "drawdown",
                                                                         "breaker:drawdown")
    [alert] = recorder.of(Alert)
    assert alert.severity == "critical" and "drawdown" in alert.title and alert.body == change.reason
    assert [s for s, m in recorder.messages if m is alert] == [subjects.alert("critical")]
    for equity in ("12000", "15000"):  # recovering releases nothing
        await service.on_snapshot(_envelope(_snapshot(equity)))
    assert service.control.view.get(GLOBAL).state is HALTED
    assert _counter(service, "breaker_trips_total", breaker="drawdown") == 1


async def test_a_trip_never_loosens_a_more_restrictive_state_and_unconfigured_scopes_escalate(risk: Any) -> None:
    service, recorder, _clock, _broker = risk
    await service.control.change("strategy:sma_cross", HALTED, "manual", "api-token")
    await service.control.publish(service.control.apply_trips([
        Trip("runaway_orders", "strategy:sma_cross", REDUCING, "runaway_orders: test", T0),
        Trip("runaway_orders", "strategy:ghost", HALTED, "runaway_orders: ghost", T0),
    ]))
    await recorder.settle()
    assert service.control.view.get("strategy:sma_cross").reason == "manual"
    assert service.control.view.get(GLOBAL).state is HALTED
    assert "strategy:ghost is not configured" in service.control.view.get(GLOBAL).reason
    assert len(recorder.of(Alert)) == 2
    assert [c.scope for c in recorder.of(TradingStateChanged)] == ["strategy:sma_cross", "global"]


async def test_releasing_a_scope_rearms_its_breakers(risk: Any) -> None:
    service, _recorder, clock, _broker = risk
    order = _order("sma_cross", T0)
    await service.control.order_sent(order)
    await service.control.order_sent(_order("sma_cross", T0 + 1))  # 2 within a minute, limit 1
    assert service.control.view.get("strategy:sma_cross").state is HALTED
    clock.advance_to(T0 + 10)
    await service.control.change("strategy:sma_cross", ACTIVE, "strategy fixed", "api-token")
    await service.control.order_sent(_order("sma_cross", T0 + 2))
    assert service.control.view.get("strategy:sma_cross").state is ACTIVE
    await service.control.order_sent(_order("sma_cross", T0 + 3))
    assert service.control.view.get("strategy:sma_cross").trigger == "runaway_orders"


async def test_risk_denies_with_the_effective_state_of_the_signals_scopes(risk: Any) -> None:
    service, _recorder, _clock, _broker = risk
    service.snapshot = _snapshot("10000", (BTC, "0.01", "40000"))
    await service.control.change("strategy:sma_cross", REDUCING, "wind down", "api-token")
    entry = service.engine.evaluate(_signal("sma_cross", side=Side.BUY), service.snapshot,
                                    service.control.state_for(_signal("sma_cross")), now_ns=T0)
    assert isinstance(entry, OrderDenied) and entry.reason_code is DenyReason.TRADING_REDUCING
    close = service.engine.evaluate(_signal("sma_cross", side=Side.SELL), service.snapshot,
                                    service.control.state_for(_signal("sma_cross")), now_ns=T0)
    assert isinstance(close, SubmitOrder) and close.reduce_only
    other = service.engine.evaluate(_signal("breakout", side=Side.BUY), service.snapshot,
                                    service.control.state_for(_signal("breakout")), now_ns=T0)
    assert isinstance(other, SubmitOrder) and not other.reduce_only
    await service.control.change("venue:BINANCE", HALTED, "venue down", "api-token")
    halted = service.engine.evaluate(_signal("breakout", side=Side.SELL), service.snapshot,
                                     service.control.state_for(_signal("breakout")), now_ns=T0)
    assert isinstance(halted, OrderDenied) and halted.reason_code is DenyReason.TRADING_HALTED


async def test_stale_bars_on_the_bus_trip_the_venue_in_event_time() -> None:
    broker = MemoryBroker()
    cfg = config_from_dict({**CONFIG, "datafeed": {"replay": [{"path": "x.csv", "instrument_id": BTC}]},
                            "risk": {"breakers": {"stale_data_intervals": 3}}})
    service = RiskService(cfg, MemoryBus("risk", broker), clock=SimulatedClock(T0))
    assert service.control.breakers.clock == "event"  # a replay: "auto" measures in event time
    await service.control.start()
    feed = MemoryBus("datafeed", broker)
    for minute in (0, 1, 6):  # 4 intervals without a bar after the one at minute 1 (ends at 2)
        bar = schemas.Bar(id=derive_id("stale-bar", minute), ts_event=T0 + minute * 60 * 10**9, ts_init=T0,
                          instrument_id=BTC, interval="1m", open=D(1), high=D(1), low=D(1), close=D(1), volume=D(1))
        await feed.publish(subjects.bar("BINANCE", "BTCUSDT", "1m"), bar)
        await feed.wait_idle(5)
        if minute < 6:
            assert service.control.view.get("venue:BINANCE").state is ACTIVE
    stored = service.control.view.get("venue:BINANCE")
    assert (stored.state, stored.trigger) == (REDUCING, "stale_data")
    await service.control.stop()
    await service.bus.close()


# --- execution -----------------------------------------------------------------------------------


async def test_execution_refuses_what_the_effective_state_forbids_but_lets_the_kill_switchs_orders_through() -> None:
    service = ExecutionService(config(), MemoryBus("execution", MemoryBroker()), clock=SimulatedClock(T0))
    service.trading = view_with(strategy__sma_cross=REDUCING)
    assert service._trading_refusal(_order("sma_cross", T0), "BINANCE") == \
        "trading REDUCING (strategy:sma_cross): only reduce-only orders pass"
    assert service._trading_refusal(_order("sma_cross", T0, reduce_only=True), "BINANCE") == ""
    assert service._trading_refusal(_order("breakout", T0), "BINANCE") == ""
    service.trading = view_with(venue__BINANCE=HALTED)
    assert "trading HALTED (venue:BINANCE)" in service._trading_refusal(_order("breakout", T0, reduce_only=True),
                                                                       "BINANCE")
    flatten = _order("breakout", T0, reduce_only=True, coid=flatten_client_order_id("change", BTC))
    assert service._trading_refusal(flatten, "BINANCE") == ""
    assert service._trading_refusal(_order("breakout", T0), "KRAKEN") == ""


async def test_execution_cancels_what_a_halted_scope_covers_and_keeps_the_closing_orders() -> None:
    broker = MemoryBroker()
    service = ExecutionService(config(), MemoryBus("execution", broker), clock=SimulatedClock(T0))
    recorder = MemoryBus("recorder", broker)
    events: list[schemas.Message] = []

    async def record(envelope: Any) -> None:
        events.append(envelope.message)

    await recorder.subscribe(subjects.ALL_ORDER_EVENTS, record)
    venue = service.venues["BINANCE"]
    resting = [_order("sma_cross", T0, limit="1000"), _order("breakout", T0, limit="1000"),
               _order("breakout", T0, limit="1000", reduce_only=True, coid=flatten_client_order_id("c", BTC))]
    for order in resting:
        await venue.submit(order, T0)
    assert len(venue.open_orders()) == 3

    assert await service.cancel_for_halt("strategy:sma_cross", "runaway", "c1") == 1
    assert await service.cancel_for_halt("venue:KRAKEN", "down", "c2") == 0
    assert await service.cancel_for_halt(GLOBAL, "kill switch", "c3") == 1
    assert venue.open_orders() == [resting[2].client_order_id]
    await recorder.wait_idle(5)
    cancels = [e for e in events if isinstance(e, schemas.OrderCanceled)]
    assert [(c.client_order_id, c.strategy_id) for c in cancels] == [
        (resting[0].client_order_id, "sma_cross"), (resting[1].client_order_id, "breakout")]
    assert cancels[1].reason == "kill switch: global HALTED: kill switch"
    await recorder.close()


# --- helpers -------------------------------------------------------------------------------------


def _signal(strategy: str, instrument: str = BTC, side: Side = Side.BUY) -> Signal:
    n = next(_ids)
    return Signal(id=derive_id("scope-signal", n), ts_event=T0, ts_init=T0, strategy_id=strategy,
                  instrument_id=instrument, side=side, price=D("40000"), confidence=1.0, reason="test")


def _order(strategy: str, ts: int, *, reduce_only: bool = False, limit: str | None = None,
           coid: str | None = None) -> SubmitOrder:
    n = next(_ids)
    return SubmitOrder(
        id=derive_id("scope-order", n), ts_event=ts, ts_init=ts, strategy_id=strategy, instrument_id=BTC,
        client_order_id=coid or f"tw-scope-{n}", side=Side.BUY,
        order_type=OrderType.LIMIT if limit else OrderType.MARKET, quantity=D("0.01"),
        limit_price=D(limit) if limit else None, reduce_only=reduce_only)


def _snapshot(equity: str, *positions: tuple[str, str, str]) -> PortfolioSnapshot:
    n = next(_ids)
    return PortfolioSnapshot(
        id=derive_id("scope-snapshot", n), ts_event=T0 + n, ts_init=T0 + n, account="paper", cash=D(equity),
        equity=D(equity), realized_pnl=D(0), unrealized_pnl=D(0), gross_exposure=D(0),
        positions=tuple(PositionSnapshot(instrument_id=i, quantity=D(q), avg_price=D(p), last_price=D(p),
                                         realized_pnl=D(0), unrealized_pnl=D(0)) for i, q, p in positions),
        as_of=T0 + n)


def _envelope(message: schemas.Message) -> Any:
    from tradewire_common.bus import Envelope

    return Envelope(subjects.PORTFOLIO_SNAPSHOT, message, {})


def _counter(service: RiskService, name: str, **labels: str) -> float:
    value = service.metrics.registry.get_sample_value(f"tradewire_risk_{name}", labels)
    return float(value or 0)
