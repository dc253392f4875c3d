"""LedgerStore on both backends: idempotency, order states, fills, equity, queries."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tradewire_common.ids import derive_id, new_id
from tradewire_common.schemas import (
    Alert,
    CancelOrder,
    DeadLetter,
    DenyReason,
    Liquidity,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    OrderType,
    Side,
    Signal,
    StrategyError,
    SubmitOrder,
    TradingState,
    TradingStateChanged,
)
from tradewire_ledger.accounting import Portfolio
from tradewire_ledger.store import LedgerStore, PostgresLedgerStore, SqliteLedgerStore

D = Decimal
BTC = "BTCUSDT.BINANCE"
STRAT = "sma_cross"
SUBJ = "ord.evt.sma_cross"

Opener = Callable[[], LedgerStore]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """A function opening (again) the same store; every store it opened is closed afterwards."""
    opened: list[LedgerStore] = []
    if request.param == "sqlite":
        path = tmp_path / "nested" / "ledger.db"

        def opener() -> LedgerStore:
            opened.append(SqliteLedgerStore(path))
            return opened[-1]
    else:
        dsn: str = request.getfixturevalue("postgres_dsn")

        def opener() -> LedgerStore:
            opened.append(PostgresLedgerStore(dsn))
            return opened[-1]

    yield opener
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Opener) -> LedgerStore:
    return open_store()


def base(ts: int = 1_000) -> dict[str, Any]:
    return {"id": new_id(), "ts_event": ts, "ts_init": ts + 1, "correlation_id": "corr"}


def submit(coid: str, qty: str = "2", ts: int = 1_000) -> SubmitOrder:
    return SubmitOrder(
        **base(ts),
        strategy_id=STRAT,
        instrument_id=BTC,
        client_order_id=coid,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=D(qty),
        limit_price=D("100.5"),
        signal_id="s" * 32,
    )


def filled(
    coid: str, trade_id: str, qty: str, px: str, *, partial: bool, side: Side = Side.BUY, ts: int = 3_000
) -> OrderFilled:
    return OrderFilled(
        id=derive_id("fill", coid, trade_id),
        ts_event=ts,
        ts_init=ts + 1,
        strategy_id=STRAT,
        instrument_id=BTC,
        client_order_id=coid,
        venue_order_id="v-" + coid,
        trade_id=trade_id,
        side=side,
        last_qty=D(qty),
        last_px=D(px),
        fee=D("0.0001234567890123456789"),
        fee_currency="USD",
        liquidity=Liquidity.MAKER,
        partial=partial,
    )


def ev(kind: type[Message], coid: str, ts: int, **kw: Any) -> Message:
    factory: Any = kind
    message: Message = factory(**base(ts), strategy_id=STRAT, instrument_id=BTC, client_order_id=coid, **kw)
    return message


def order(store: LedgerStore, coid: str) -> dict[str, Any]:
    (row,) = [o for o in store.list_orders(1000) if o["client_order_id"] == coid]
    return row


def every_kind() -> list[Message]:
    return [
        Signal(
            **base(),
            strategy_id=STRAT,
            instrument_id=BTC,
            side=Side.BUY,
            price=D("100"),
            confidence=0.5,
            reason="cross",
        ),
        StrategyError(**base(), strategy_id=STRAT, error_type="ZeroDivisionError", message="boom"),
        submit("tw-a"),
        CancelOrder(**base(), strategy_id=STRAT, instrument_id=BTC, client_order_id="tw-a"),
        ev(OrderDenied, "tw-b", 1_000, reason_code=DenyReason.MAX_POSITION, reason="too big", side=Side.SELL),
        ev(OrderSubmitted, "tw-a", 1_100, venue="PAPER"),
        ev(OrderAccepted, "tw-a", 1_200, venue_order_id="v-tw-a"),
        ev(OrderRejected, "tw-c", 1_300, reason="no"),
        filled("tw-a", "t1", "1", "100", partial=True),
        ev(OrderCanceled, "tw-a", 4_000, reason="user"),
        ev(OrderExpired, "tw-d", 4_000),
        DeadLetter(**base(), service="risk", subject="sig.x", reason="bad json", raw=b"\x00{oops"),
        TradingStateChanged(
            **base(),
            scope="global",
            state=TradingState.HALTED,
            previous=TradingState.ACTIVE,
            reason="test",
            actor="op",
        ),
        Alert(**base(), severity="warning", title="t", body="b", source="ledger"),
    ]


def snapshot_of(store: LedgerStore) -> tuple[object, ...]:
    return (
        store.count_messages(),
        store.list_orders(1000),
        store.list_fills(1000),
        store.equity_curve(1000),
        store.dead_letters(1000),
    )


def test_records_every_kind_and_duplicate_message_changes_nothing(store: LedgerStore) -> None:
    messages = every_kind()
    for m in messages:
        assert store.record(m, "subj." + type(m).__name__) is True
    assert store.count_messages() == len(messages)
    for kind in ("Signal", "StrategyError", "SubmitOrder", "CancelOrder", "OrderFilled", "Alert"):
        assert store.count_messages(kind) == 1
    assert store.count_messages("Bar") == 0
    before = snapshot_of(store)
    for m in messages:
        assert store.record(m, "other.subject") is False
    assert snapshot_of(store) == before

    (dl,) = store.dead_letters(10)
    assert (
        dl["service"] == "risk" and dl["reason"] == "bad json" and dl["received_subject"] == "subj.DeadLetter"
    )
    assert dl["raw"] == "AHtvb3Bz"  # base64 of the raw bytes


def test_duplicate_trade_id_with_other_message_id_changes_nothing(store: LedgerStore) -> None:
    store.record(submit("tw-a"), SUBJ)
    first = filled("tw-a", "t1", "1", "100", partial=True)
    assert store.record_fill(first, SUBJ) is True
    before = snapshot_of(store)
    again = OrderFilled(**{f: getattr(first, f) for f in first.__struct_fields__ if f != "id"}, id=new_id())
    assert again.id != first.id
    assert store.record_fill(again, SUBJ) is False
    assert store.record(again, SUBJ) is False  # record() routes fills through record_fill
    assert store.record_fill(first, SUBJ) is False
    assert snapshot_of(store) == before
    assert store.count_messages("OrderFilled") == 1
    # The same trade id on another order is a different trade.
    assert store.record_fill(filled("tw-b", "t1", "1", "100", partial=False), SUBJ) is True
    assert len(store.list_fills(10)) == 2


def test_order_status_transitions(store: LedgerStore) -> None:
    store.record(submit("tw-a", qty="3"), SUBJ)
    assert order(store, "tw-a")["status"] == "NEW"
    assert order(store, "tw-a")["quantity"] == "3" and order(store, "tw-a")["limit_price"] == "100.5"
    store.record(ev(OrderSubmitted, "tw-a", 1_100, venue="PAPER"), SUBJ)
    assert order(store, "tw-a")["status"] == "SUBMITTED"
    store.record(ev(OrderAccepted, "tw-a", 1_200, venue_order_id="v-tw-a"), SUBJ)
    row = order(store, "tw-a")
    assert row["status"] == "ACCEPTED" and row["venue_order_id"] == "v-tw-a" and row["venue"] == "PAPER"
    store.record_fill(filled("tw-a", "t1", "1", "100", partial=True), SUBJ)
    row = order(store, "tw-a")
    assert row["status"] == "PARTIALLY_FILLED" and row["filled_qty"] == "1" and D(row["avg_fill_px"]) == 100
    store.record_fill(filled("tw-a", "t2", "2", "101", partial=False), SUBJ)
    row = order(store, "tw-a")
    assert row["status"] == "FILLED" and row["filled_qty"] == "3"
    assert D(row["avg_fill_px"]).quantize(D("1e-20")) == (D(302) / D(3)).quantize(D("1e-20"))
    # A late event does not move a terminal order back.
    store.record(ev(OrderAccepted, "tw-a", 1_250, venue_order_id="v-tw-a"), SUBJ)
    assert order(store, "tw-a")["status"] == "FILLED"

    store.record(
        ev(
            OrderDenied,
            "tw-b",
            1_000,
            reason_code=DenyReason.TRADING_HALTED,
            reason="halt",
            side=Side.SELL,
            quantity=D("0.5"),
        ),
        SUBJ,
    )
    row = order(store, "tw-b")
    assert row["status"] == "DENIED" and row["side"] == "SELL" and row["quantity"] == "0.5"
    assert "TRADING_HALTED" in str(row["reason"])

    store.record(submit("tw-c"), SUBJ)
    store.record(ev(OrderRejected, "tw-c", 1_500, reason="insufficient balance"), SUBJ)
    assert order(store, "tw-c")["status"] == "REJECTED"

    # Out of order: accepted arrives before the command; cancel after a partial fill.
    store.record(ev(OrderAccepted, "tw-d", 1_200, venue_order_id="v-tw-d"), SUBJ)
    assert order(store, "tw-d")["status"] == "ACCEPTED"
    store.record(submit("tw-d", ts=1_000), SUBJ)
    row = order(store, "tw-d")
    assert row["status"] == "ACCEPTED" and row["quantity"] == "2" and row["created_ts"] == 1_000
    store.record_fill(filled("tw-d", "t9", "0.5", "99", partial=True), SUBJ)
    store.record(ev(OrderCanceled, "tw-d", 5_000, reason="user", filled_qty=D("0.5")), SUBJ)
    row = order(store, "tw-d")
    assert row["status"] == "CANCELED" and row["filled_qty"] == "0.5" and row["reason"] == "user"

    store.record(submit("tw-e"), SUBJ)
    store.record(ev(OrderExpired, "tw-e", 6_000, reason="DAY"), SUBJ)
    assert order(store, "tw-e")["status"] == "EXPIRED"

    assert {o["client_order_id"] for o in store.list_orders(100, strategy_id=STRAT)} == {
        "tw-a",
        "tw-b",
        "tw-c",
        "tw-d",
        "tw-e",
    }
    assert store.list_orders(100, strategy_id="other") == []
    assert len(store.list_orders(2)) == 2


def test_rebuilt_portfolio_equals_live_one_after_reopen(open_store: Opener) -> None:
    store = open_store()
    live = Portfolio("paper", D("10000"), "USD")
    fills = [
        filled("tw-a", "t1", "0.3", "20001.17", partial=True),
        filled("tw-a", "t2", "0.7", "20100.013", partial=False),
        filled("tw-b", "t1", "1.5", "20333.33", partial=False, side=Side.SELL),
        filled("tw-c", "t1", "0.25", "19999.99", partial=False),
    ]
    for f in fills:
        if store.record_fill(f, SUBJ):
            live.apply_fill(f)
        assert store.record_fill(f, SUBJ) is False  # redelivery is not applied twice
    store.close()

    reopened = open_store()
    loaded = reopened.load_fills()
    assert loaded == fills  # insertion order, every field exact
    rebuilt = Portfolio.rebuild("paper", D("10000"), "USD", loaded)
    kwargs: dict[str, Any] = {"message_id": "0" * 32, "ts_init": 7}
    assert rebuilt.snapshot(**kwargs) == live.snapshot(**kwargs)


def test_decimals_round_trip_exactly(store: LedgerStore) -> None:
    f = filled(
        "tw-a", "t1", "0.000000000000000000000000000001", "123456789012345.1234567890123", partial=False
    )
    store.record_fill(f, SUBJ)
    (row,) = store.list_fills(10)
    assert D(row["last_qty"]) == f.last_qty and row["last_qty"] == str(f.last_qty)
    assert row["last_px"] == "123456789012345.1234567890123"
    assert row["fee"] == "0.0001234567890123456789"
    assert store.load_fills() == [f]

    p = Portfolio("paper", D("10000.000000000000000000001"))
    p.apply_fill(f)
    p.advance(50)
    snap = p.snapshot(message_id=new_id(), ts_init=51)
    store.append_equity(snap)
    (pt,) = store.equity_curve(10)
    assert pt["ts"] == 50 and pt["fills"] == 1 and pt["account"] == "paper"
    assert D(pt["cash"]) == snap.cash and pt["cash"] == str(snap.cash)
    assert (D(pt["equity"]), D(pt["realized"]), D(pt["unrealized"]), D(pt["exposure"])) == (
        snap.equity,
        snap.realized_pnl,
        snap.unrealized_pnl,
        snap.gross_exposure,
    )


def test_equity_curve_keeps_one_row_per_as_of(store: LedgerStore) -> None:
    p = Portfolio("paper", D("1000"))
    for ts in (10, 20, 20, 30):
        p.advance(ts)
        store.append_equity(p.snapshot(message_id=new_id(), ts_init=ts))
    p.apply_fill(filled("tw-a", "t1", "1", "10", partial=False))
    store.append_equity(p.snapshot(message_id=new_id(), ts_init=31))  # same as_of 30: replaces
    curve = store.equity_curve(100)
    assert [pt["ts"] for pt in curve] == [10, 20, 30]
    assert curve[-1]["fills"] == 1 and curve[-1]["cash"] == str(D(990) - D("0.0001234567890123456789"))
    assert [pt["ts"] for pt in store.equity_curve(2)] == [20, 30]  # the latest, oldest first


def test_list_fills_newest_first(store: LedgerStore) -> None:
    for i in range(5):
        store.record_fill(filled("tw-a", f"t{i}", "1", "100", partial=i < 4), SUBJ)
    rows = store.list_fills(3)
    assert [r["trade_id"] for r in rows] == ["t4", "t3", "t2"]
    assert rows[0]["side"] == "BUY" and rows[0]["liquidity"] == "MAKER" and rows[0]["ts_event"] == 3_000


def test_sqlite_uses_wal_and_creates_parent_dir(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "ledger.db"
    store = SqliteLedgerStore(path)
    try:
        store.record(submit("tw-a"), SUBJ)
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            # a new database goes through the migrations to the current version
            assert conn.execute("SELECT MAX(version) FROM schema_version").fetchall() == [(2,)]
    finally:
        store.close()


def test_schema_is_idempotent_and_versioned(open_store: Opener) -> None:
    first = open_store()
    first.record(submit("tw-a"), SUBJ)
    first.close()
    second = open_store()  # CREATE TABLE IF NOT EXISTS: reopening keeps the data
    assert second.count_messages() == 1


def test_usable_from_worker_threads(store: LedgerStore) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda i: store.record(submit(f"tw-{i}"), SUBJ), range(40)))
    assert all(results)
    assert store.count_messages("SubmitOrder") == 40
