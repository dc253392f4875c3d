"""What the notifications say: Alertmanager's version 4 webhook, fills, rejections, denial bursts,
the trading state, the daily summary and its schedule, and the Alert a price rule publishes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import msgspec
import pytest

from tradewire_common import schemas
from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    Alert,
    DenyReason,
    Liquidity,
    OrderDenied,
    OrderFilled,
    PortfolioSnapshot,
    PositionSnapshot,
    Side,
    TradingState,
    TradingStateChanged,
)
from tradewire_notifier import messages
from tradewire_notifier.rules import Firing, RuleRequest, build_rule

BTC = "BTCUSDT.BINANCE"
SECOND = 1_000_000_000


def ns(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * SECOND


#: What Alertmanager 0.25+ posts to a webhook receiver (version 4), two alerts of one group.
ALERTMANAGER_FIRING = {
    "receiver": "tradewire-notifier",
    "status": "firing",
    "alerts": [
        {"status": "firing",
         "labels": {"alertname": "ServiceDown", "job": "risk", "instance": "risk:8103", "severity": "critical"},
         "annotations": {"summary": "risk is down", "description": "risk:8103 has not answered for 1m"},
         "startsAt": "2024-05-01T10:00:00.000Z", "endsAt": "0001-01-01T00:00:00Z",
         "generatorURL": "http://prometheus:9090/graph?g0.expr=up", "fingerprint": "a1b2c3d4e5f60718"},
        {"status": "firing",
         "labels": {"alertname": "ServiceDown", "job": "risk", "instance": "risk-2:8103", "severity": "warning"},
         "annotations": {"summary": "risk-2 is down"},
         "startsAt": "2024-05-01T10:00:30.000Z", "endsAt": "0001-01-01T00:00:00Z",
         "generatorURL": "http://prometheus:9090/graph?g0.expr=up", "fingerprint": "0102030405060708"},
    ],
    "groupLabels": {"alertname": "ServiceDown", "job": "risk"},
    "commonLabels": {"alertname": "ServiceDown", "job": "risk"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
    "version": "4",
    "groupKey": '{}/{severity=~"critical|warning|info"}:{alertname="ServiceDown", job="risk"}',
    "truncatedAlerts": 0,
}


def alertmanager(payload: dict[str, object]) -> messages.AlertmanagerPayload:
    return msgspec.json.decode(msgspec.json.encode(payload), type=messages.AlertmanagerPayload)


def test_an_alertmanager_group_becomes_one_notification_at_its_worst_severity() -> None:
    note = messages.from_alertmanager(alertmanager(ALERTMANAGER_FIRING), 0)
    assert note.kind == "alertmanager" and note.level == "failure"
    assert note.title == "[FIRING:2] ServiceDown risk"
    assert note.body.splitlines() == [
        "- [firing] risk is down: risk:8103 has not answered for 1m (instance=risk:8103)"
        " since 2024-05-01T10:00:00.000Z",
        "- [firing] risk-2 is down (instance=risk-2:8103) since 2024-05-01T10:00:30.000Z",
    ]


def test_a_resolved_group_is_a_success_and_not_a_duplicate_of_its_firing() -> None:
    resolved = {**ALERTMANAGER_FIRING, "status": "resolved",
                "alerts": [{**a, "status": "resolved"} for a in ALERTMANAGER_FIRING["alerts"]]}  # type: ignore[attr-defined]
    firing_note = messages.from_alertmanager(alertmanager(ALERTMANAGER_FIRING), 0)
    note = messages.from_alertmanager(alertmanager(resolved), 0)
    assert note.level == "success" and note.title == "[RESOLVED] ServiceDown risk"
    assert note.key != firing_note.key


def test_an_alertmanager_payload_with_truncated_alerts_says_how_many_are_missing() -> None:
    payload = {**ALERTMANAGER_FIRING, "truncatedAlerts": 3}
    assert messages.from_alertmanager(alertmanager(payload), 0).body.splitlines()[-1] == "… and 3 more"


def fill(**overrides: object) -> OrderFilled:
    fields: dict[str, object] = dict(
        id=derive_id("fill"), ts_event=ns("2022-01-03T12:00:00"), ts_init=1, strategy_id="sma_cross",
        instrument_id=BTC, client_order_id="tw-abc", venue_order_id="v1", trade_id="t1", side=Side.BUY,
        last_qty=Decimal("0.02150"), last_px=Decimal("46377.00"), fee=Decimal("0.99710550"), fee_currency="USD",
        liquidity=Liquidity.TAKER, partial=False)
    fields.update(overrides)
    return OrderFilled(**fields)  # type: ignore[arg-type]


def test_a_fill_reads_side_quantity_instrument_and_price() -> None:
    note = messages.from_fill(fill())
    assert note.kind == "fill" and note.title == "Filled BUY 0.0215 BTCUSDT.BINANCE @ 46377"
    assert note.body == "sma_cross: fill of order tw-abc; fee 0.9971055 USD (taker), 2022-01-03 12:00:00 UTC"
    partial = messages.from_fill(fill(partial=True, leaves_qty=Decimal("0.5"), trade_id="t2"))
    assert "partial fill of order tw-abc, 0.5 left" in partial.body and partial.key != note.key


def denied(n: int, seconds: int) -> OrderDenied:
    return OrderDenied(id=derive_id("denied", n), ts_event=ns("2022-01-03T12:00:00") + seconds * SECOND, ts_init=1,
                       strategy_id="sma_cross", instrument_id=BTC, client_order_id=f"tw-{n}",
                       reason_code=DenyReason.MAX_EXPOSURE if n % 2 else DenyReason.INSUFFICIENT_CASH,
                       reason=f"denial {n}", side=Side.BUY)


def test_denials_make_one_burst_notification_when_enough_fall_within_the_window() -> None:
    bursts = messages.DenialBursts(count=3, window_s=60)
    results = [bursts.observe(denied(n, s)) for n, s in enumerate([0, 30, 61, 70, 80, 81])]
    # 0 and 30 are one minute apart from 61 and beyond: the first burst is 30, 61, 70 (within 60 s)
    assert [r is not None for r in results] == [False, False, False, True, False, False]
    burst = results[3]
    assert burst is not None and burst.kind == "denial_burst" and burst.title == "3 orders denied within 60s"
    assert ": MAX_EXPOSURE x2, INSUFFICIENT_CASH x1." in burst.body
    assert burst.body.endswith("Latest: denial 3")


@pytest.mark.parametrize(("state", "level"), [
    (TradingState.HALTED, "failure"), (TradingState.REDUCING, "warning"), (TradingState.ACTIVE, "success")])
def test_a_trading_state_change_is_as_urgent_as_the_new_state(state: TradingState, level: str) -> None:
    event = TradingStateChanged(id=derive_id("state", state), ts_event=ns("2022-01-03T12:00:00"), ts_init=1,
                                scope="global", state=state, previous=TradingState.ACTIVE, reason="runaway",
                                actor="api-token")
    note = messages.from_state(event)
    assert (note.kind, note.level, note.title) == ("trading_state", level, f"Trading {state} (was ACTIVE)")
    assert note.body == f"global: ACTIVE -> {state} by api-token: runaway (2022-01-03 12:00:00 UTC)"


def test_alerts_of_other_services_name_their_source_and_price_alerts_are_their_own_kind() -> None:
    alert = Alert(id=derive_id("a"), ts_event=ns("2022-01-03T12:00:00"), ts_init=5, severity="critical",
                  title="Ledger behind", body="30 s", source="ledger")
    note = messages.from_alert(alert)
    assert (note.kind, note.level, note.title, note.created_ns) == ("alert", "failure", "[CRITICAL] Ledger behind", 5)
    assert note.body == "30 s\n(from ledger, 2022-01-03 12:00:00 UTC)"


def test_a_price_alert_is_a_valid_alert_with_an_id_derived_from_rule_and_bar() -> None:
    rule = build_rule(RuleRequest(instrument_id=BTC, condition="rsi:14 below 30", severity="warning",
                                  note="oversold"), "rule1", 0)
    firing = Firing(rule, "1m", Decimal("28.123456"), Decimal(30), Decimal("46000.5"), "b" * 32,
                    ns("2022-01-03T12:00:00"), "1m bar")
    alert = messages.price_alert(firing, 7)
    assert schemas.decode_as(schemas.encode(alert), Alert) == alert
    assert alert.id == messages.price_alert(firing, 8).id == derive_id("price-alert", "rule1", "1m", "b" * 32)
    assert (alert.severity, alert.source, alert.correlation_id) == ("warning", messages.PRICE_ALERT_SOURCE, "b" * 32)
    assert alert.title == "BTCUSDT.BINANCE rsi:14 below 30"
    assert alert.body == "rsi:14 = 28.1235, price 46000.5 on the 1m bar of 2022-01-03 12:00:00 UTC (rule rule1)\n" \
                         "oversold"
    assert messages.from_alert(alert).kind == "price_alert"


def test_the_daily_summary_reports_equity_positions_and_the_day() -> None:
    snapshot = PortfolioSnapshot(
        id=derive_id("pf"), ts_event=0, ts_init=0, account="paper", cash=Decimal("9000.123"),
        equity=Decimal("10100"), realized_pnl=Decimal("50"), unrealized_pnl=Decimal("50"),
        gross_exposure=Decimal("1100"),
        positions=(PositionSnapshot(instrument_id=BTC, quantity=Decimal("0.025"), avg_price=Decimal("42000"),
                                    last_price=Decimal("44000"), realized_pnl=Decimal(0),
                                    unrealized_pnl=Decimal("50")),),
        as_of=ns("2022-01-03T23:59:00"))
    tally = messages.Tally(fills=4, price_alerts=2, denials=1, state="ACTIVE")
    note = messages.daily_summary(snapshot, tally, Decimal("10000"), ns("2022-01-04T00:00:00"))
    assert note.kind == "daily_summary" and note.title == "Tradewire daily summary 2022-01-04"
    assert note.body.splitlines() == [
        "Account paper: equity 10100 (+1% since the last summary), cash 9000.12",
        "P&L realized 50, unrealized 50; gross exposure 1100",
        "  BTCUSDT.BINANCE: 0.025 @ 42000, last 44000, unrealized 50",
        "As of 2022-01-03 23:59:00 UTC",
        "Since the last summary: 4 fills, 2 price alerts, 1 denied and 0 rejected orders; trading is ACTIVE",
    ]
    empty = messages.daily_summary(None, messages.Tally(), None, ns("2022-01-04T00:00:00"))
    assert empty.body.startswith("No portfolio snapshot received yet.")


@pytest.mark.parametrize(("now", "at", "expected"), [
    ("2022-01-03T06:59:59", "07:00", "2022-01-03T07:00:00"),
    ("2022-01-03T07:00:00", "07:00", "2022-01-04T07:00:00"),
    ("2022-01-03T23:30:00", "00:00", "2022-01-04T00:00:00"),
    ("2022-12-31T12:00:00", "09:15", "2023-01-01T09:15:00"),
])
def test_the_next_summary_is_the_next_occurrence_of_its_utc_time(now: str, at: str, expected: str) -> None:
    assert messages.next_summary_ns(ns(now), at) == ns(expected)


@pytest.mark.parametrize(("value", "places", "text"), [
    (Decimal("46377.00"), 8, "46377"), (Decimal("0.000012345678912"), 8, "0.00001235"),
    (Decimal("-1.50"), 2, "-1.5"), (Decimal("1E+3"), 8, "1000"), (None, 8, "n/a"),
])
def test_numbers_are_shown_plainly(value: Decimal | None, places: int, text: str) -> None:
    assert messages.num(value, places) == text
