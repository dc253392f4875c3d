"""The ledger service and prediction markets, on SQLite and on PostgreSQL (skipped, naming the reason,
when 127.0.0.1:5432 is not reachable): settlement at resolution (YES wins, NO wins, partial payout,
idempotent, across a restart), provisional fills confirmed or reversed (a reversed fill leaves the ledger
exactly as if it never happened), the schema migration of an existing database, and the new order fields."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest

from tradewire_common import subjects
from tradewire_common.bus import MemoryBroker, MemoryBus
from tradewire_common.config import Config, LedgerConfig
from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    ExecutionWatermark,
    FillConfirmed,
    FillReversed,
    Liquidity,
    MarketResolved,
    Message,
    OrderFilled,
    OrderReplaced,
    OrderType,
    OutcomePayout,
    PortfolioSnapshot,
    Side,
    SubmitOrder,
    TimeInForce,
)
from tradewire_ledger import store_sql
from tradewire_ledger.service import LedgerService
from tradewire_ledger.store import LedgerStore, PostgresLedgerStore, SqliteLedgerStore

D = Decimal
VENUE = "KALSHI"
MARKET = "KXRAIN-25NOV"
YES = f"{MARKET}-YES.{VENUE}"
NO = f"{MARKET}-NO.{VENUE}"
STRAT = "pm_edge"
SECOND = 1_000_000_000
_n = itertools.count(1)

Opener = Callable[[str], LedgerStore]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens (again) the store named ``name``: a SQLite file, or a PostgreSQL schema of a fresh database."""
    opened: list[LedgerStore] = []
    dsn: str | None = request.getfixturevalue("postgres_dsn") if request.param == "postgres" else None

    def opener(name: str) -> LedgerStore:
        if dsn is None:
            opened.append(SqliteLedgerStore(tmp_path / f"{name}.db"))
        else:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {name}")
            opened.append(PostgresLedgerStore(f"{dsn}?options=-csearch_path%3D{name}"))
        return opened[-1]

    yield opener
    for store in opened:
        store.close()


class Ledger:
    """A ledger service on its own in-memory broker, fed message by message."""

    def __init__(self, store: LedgerStore) -> None:
        self.broker = MemoryBroker()
        self.service = LedgerService(Config(ledger=LedgerConfig(starting_cash=D(1000))),
                                     MemoryBus("ledger", self.broker), store=store)
        self.feed = MemoryBus("feed", self.broker)

    async def __aenter__(self) -> Ledger:
        await self.service.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.service.stop()

    async def send(self, *messages: Message) -> None:
        for m in messages:
            if isinstance(m, MarketResolved):
                subject = subjects.resolution(m.venue)
            elif isinstance(m, ExecutionWatermark):
                subject = subjects.execution_watermark(m.venue)
            else:
                subject = subjects.order_event(STRAT)
            await self.feed.publish(subject, m)
            assert await self.feed.wait_idle(10)

    def snapshot(self) -> PortfolioSnapshot:
        return self.service.portfolio.snapshot(message_id="0" * 32, ts_init=1)

    def fills(self) -> dict[str, str]:
        return {row["trade_id"]: row["status"] for row in self.service.store.list_fills(1000)}

    def order(self, coid: str) -> dict[str, Any]:
        (row,) = [o for o in self.service.store.list_orders(1000) if o["client_order_id"] == coid]
        return row


def filled(side: Side, qty: str, px: str, *, instrument: str = YES, ts: int, coid: str | None = None,
           fee: str = "0", provisional: bool = False, partial: bool = False) -> OrderFilled:
    n = next(_n)
    coid = coid or f"tw-pm-{n}"
    return OrderFilled(id=derive_id("pm-fill", n), ts_event=ts * SECOND, ts_init=ts * SECOND, strategy_id=STRAT,
                       instrument_id=instrument, client_order_id=coid, venue_order_id=f"v-{coid}",
                       trade_id=f"trade-{n}", side=side, last_qty=D(qty), last_px=D(px), fee=D(fee),
                       fee_currency="USD", liquidity=Liquidity.TAKER, partial=partial, provisional=provisional)


def confirmed(f: OrderFilled, ts: int) -> FillConfirmed:
    return FillConfirmed(id=derive_id("pm-confirm", f.trade_id, ts), ts_event=ts * SECOND, ts_init=ts * SECOND,
                         strategy_id=STRAT, instrument_id=f.instrument_id, client_order_id=f.client_order_id,
                         venue_order_id=f.venue_order_id, trade_id=f.trade_id)


def reversed_(f: OrderFilled, ts: int) -> FillReversed:
    return FillReversed(id=derive_id("pm-reverse", f.trade_id, ts), ts_event=ts * SECOND, ts_init=ts * SECOND,
                        strategy_id=STRAT, instrument_id=f.instrument_id, client_order_id=f.client_order_id,
                        venue_order_id=f.venue_order_id, trade_id=f.trade_id, side=f.side, last_qty=f.last_qty,
                        last_px=f.last_px, fee=f.fee, reason="match FAILED on chain")


def mark(instrument: str, close: str, ts: int) -> ExecutionWatermark:
    return ExecutionWatermark(id=derive_id("pm-wm", instrument, ts), ts_event=ts * SECOND, ts_init=ts * SECOND,
                              venue=VENUE, instrument_id=instrument, close=D(close))


def resolved(yes: str, no: str, label: str, ts: int = 100) -> MarketResolved:
    return MarketResolved(id=derive_id("resolved", VENUE, MARKET), ts_event=ts * SECOND, ts_init=ts * SECOND,
                          venue=VENUE, market_id=MARKET, resolution=label, source="test",
                          payouts=(OutcomePayout(instrument_id=YES, payout=D(yes)),
                                   OutcomePayout(instrument_id=NO, payout=D(no))))


# -- settlement ------------------------------------------------------------------------------------


async def test_yes_winning_settles_the_yes_long_at_1_and_the_no_long_at_0(open_store: Opener) -> None:
    async with Ledger(open_store("settle")) as ledger:
        await ledger.send(filled(Side.BUY, "100", "0.40", ts=1),  # cost 40
                          filled(Side.BUY, "30", "0.50", instrument=NO, ts=2, fee="0.15"),  # cost 15 + 0.15
                          mark(YES, "0.97", 3), resolved("1", "0", "YES"))
        s = ledger.snapshot()
        assert s.positions == ()
        assert s.cash == D(1000) - 40 - 15 - D("0.15") + 100 == s.equity
        assert s.realized_pnl == D(60) - 15 - D("0.15") and s.unrealized_pnl == 0
        rows = {r["instrument_id"]: r for r in ledger.service.store.list_settlements()}
        assert set(rows) == {YES, NO}
        assert (rows[YES]["quantity"], rows[YES]["avg_price"], rows[YES]["payout"], rows[YES]["realized_pnl"],
                rows[YES]["cash"]) == ("100", "0.40", "1", "60.00", "100")
        assert (rows[NO]["realized_pnl"], rows[NO]["cash"], rows[NO]["resolution"]) == ("-15.00", "0", "YES")


async def test_no_winning_pays_the_no_holder_and_a_payout_of_0_needs_no_fill(open_store: Opener) -> None:
    async with Ledger(open_store("settle_no")) as ledger:
        await ledger.send(filled(Side.BUY, "100", "0.40", ts=1), resolved("0", "1", "NO"))
        s = ledger.snapshot()
        assert s.positions == () and s.cash == D(960) == s.equity and s.realized_pnl == D(-40)
        assert ledger.service.store.count_messages("OrderFilled") == 1  # no fill was made up


async def test_a_partial_payout_settles_at_that_price(open_store: Opener) -> None:
    async with Ledger(open_store("settle_partial")) as ledger:
        await ledger.send(filled(Side.BUY, "80", "0.30", ts=1), resolved("0.625", "0.375", "MKT"))
        s = ledger.snapshot()
        assert s.cash == D(1000) - 24 + 50 and s.realized_pnl == D(26) and s.positions == ()


async def test_the_same_resolution_settles_once_also_after_a_restart(open_store: Opener) -> None:
    async with Ledger(open_store("settle_once")) as ledger:
        await ledger.send(filled(Side.BUY, "100", "0.40", ts=1), resolved("1", "0", "YES"))
        once = ledger.snapshot()
        await ledger.send(resolved("1", "0", "YES"))  # the same message again
        again = msgspec.structs.replace(resolved("1", "0", "YES"), id=derive_id("another source"))
        await ledger.send(again)  # the same resolution from another source
        assert ledger.snapshot() == once
    async with Ledger(open_store("settle_once")) as restarted:
        assert restarted.snapshot().cash == once.cash and restarted.snapshot().realized_pnl == once.realized_pnl
        assert restarted.snapshot().positions == ()
        await restarted.send(resolved("1", "0", "YES"))
        assert restarted.snapshot().cash == once.cash
        assert len(restarted.service.store.list_settlements()) == 1


async def test_a_restart_replays_fills_and_settlements_in_their_order(open_store: Opener) -> None:
    async with Ledger(open_store("settle_order")) as ledger:
        # settled, then a new position in another market opened afterwards
        await ledger.send(filled(Side.BUY, "10", "0.40", ts=1), resolved("1", "0", "YES"),
                          filled(Side.BUY, "5", "0.20", instrument="OTHER-YES.KALSHI", ts=101))
        live = ledger.snapshot()
    async with Ledger(open_store("settle_order")) as restarted:
        assert restarted.snapshot() == live


# -- provisional fills -------------------------------------------------------------------------------


async def test_a_provisional_fill_counts_at_once_and_is_confirmed_idempotently(open_store: Opener) -> None:
    async with Ledger(open_store("confirm")) as ledger:
        f = filled(Side.BUY, "50", "0.55", ts=1, provisional=True)
        await ledger.send(f)
        assert ledger.fills() == {f.trade_id: "provisional"}
        held = ledger.snapshot()
        assert held.positions[0].quantity == 50 and held.cash == D(1000) - D("27.5")
        await ledger.send(confirmed(f, 2), confirmed(f, 2), confirmed(f, 3))
        assert ledger.fills() == {f.trade_id: "confirmed"}
        assert ledger.snapshot() == held
        await ledger.send(reversed_(f, 4))  # a confirmed fill may still be reversed by the venue
        assert ledger.fills() == {f.trade_id: "reversed"} and ledger.snapshot().positions == ()


async def test_a_reversed_fill_leaves_the_ledger_exactly_as_if_it_never_happened(open_store: Opener) -> None:
    f1 = filled(Side.BUY, "100", "0.40", ts=1, fee="0.07", coid="tw-one")
    f2 = filled(Side.BUY, "50", "0.55", ts=3, fee="0.11", provisional=True, coid="tw-two")
    f3 = filled(Side.SELL, "30", "0.61", ts=4, fee="0.03", coid="tw-three")
    f4 = filled(Side.BUY, "7", "0.66", ts=5, provisional=True, coid="tw-four", partial=True)  # the latest price
    async with Ledger(open_store("never")) as never:
        await never.send(f1, mark(YES, "0.42", 2), f3)
        expected = never.snapshot()
        expected_fees = never.service.portfolio.fees_paid
        expected_book = never.service.strategy_metrics.book.strategies(never.service.portfolio.last_price)
    async with Ledger(open_store("reversed")) as ledger:
        await ledger.send(f1, mark(YES, "0.42", 2), f2, f3, f4)
        assert ledger.snapshot() != expected
        await ledger.send(reversed_(f2, 6), reversed_(f4, 7))
        assert ledger.snapshot() == expected
        assert ledger.service.portfolio.fees_paid == expected_fees
        assert ledger.service.strategy_metrics.book.strategies(ledger.service.portfolio.last_price) == expected_book
        assert ledger.fills() == {f1.trade_id: "confirmed", f2.trade_id: "reversed", f3.trade_id: "confirmed",
                                  f4.trade_id: "reversed"}
        two = ledger.order("tw-two")
        assert (two["filled_qty"], two["avg_fill_px"], two["status"]) == ("0", None, "ACCEPTED")
        assert ledger.order("tw-four")["filled_qty"] == "0"
        # idempotent: the same reversal again, another message for it, a redelivered fill, a late confirmation
        await ledger.send(reversed_(f2, 6), reversed_(f2, 8), f2, confirmed(f2, 9))
        assert ledger.snapshot() == expected and ledger.fills()[f2.trade_id] == "reversed"
    async with Ledger(open_store("reversed")) as restarted:
        await restarted.send(mark(YES, "0.42", 2))  # marks are not stored: the same mark again
        assert restarted.snapshot() == expected


async def test_a_reversal_that_overtakes_its_fill_keeps_the_fill_out(open_store: Opener) -> None:
    f = filled(Side.BUY, "10", "0.5", ts=1, provisional=True, coid="tw-late")
    async with Ledger(open_store("overtaken")) as ledger:
        await ledger.send(reversed_(f, 2), f)
        assert ledger.fills() == {f.trade_id: "reversed"}
        assert ledger.snapshot().positions == () and ledger.snapshot().cash == D(1000)
        # the order row is not touched by a fill that does not count (here: no row at all)
        assert [o for o in ledger.service.store.list_orders() if o["client_order_id"] == "tw-late"] == []


# -- orders: post-only, GTD, replacements -------------------------------------------------------------


async def test_the_orders_table_keeps_post_only_gtd_and_replacements(open_store: Opener) -> None:
    submit = SubmitOrder(id=derive_id("pm-submit"), ts_event=SECOND, ts_init=SECOND, strategy_id=STRAT,
                         instrument_id=YES, client_order_id="tw-old", side=Side.BUY, order_type=OrderType.LIMIT,
                         quantity=D(100), limit_price=D("0.40"), time_in_force=TimeInForce.GTD,
                         expire_time_ns=9 * SECOND, post_only=True)
    part = filled(Side.BUY, "20", "0.40", ts=2, coid="tw-old", partial=True)
    replaced = OrderReplaced(id=derive_id("pm-replaced"), ts_event=3 * SECOND, ts_init=3 * SECOND, strategy_id=STRAT,
                             instrument_id=YES, client_order_id="tw-old", new_client_order_id="tw-new",
                             venue_order_id="v-tw-old", quantity=D(60), limit_price=D("0.42"), filled_qty=D(20))
    async with Ledger(open_store("orders")) as ledger:
        await ledger.send(submit, part, replaced, filled(Side.BUY, "40", "0.42", ts=4, coid="tw-new"))
        await ledger.feed.publish(subjects.order_command(VENUE), submit)  # commands too (same id: once)
        old, new = ledger.order("tw-old"), ledger.order("tw-new")
        assert (old["post_only"], old["expire_time_ns"], old["time_in_force"]) == (1, 9 * SECOND, "GTD")
        assert (old["status"], old["replaced_by"], old["filled_qty"]) == ("REPLACED", "tw-new", "20")
        assert (new["replaces"], new["quantity"], new["limit_price"], new["status"]) == ("tw-old", "60", "0.42",
                                                                                         "FILLED")
        assert new["filled_qty"] == "60" and abs(D(new["avg_fill_px"]) - D("24.8") / 60) < D("1e-25")


# -- schema migration ---------------------------------------------------------------------------------


def test_a_version_1_sqlite_database_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as conn:
        for stmt in store_sql.ddl("sqlite"):
            conn.execute(stmt)
        conn.execute("INSERT INTO schema_version (version) VALUES (1)")
    v1 = version_1_fill()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO messages VALUES (?, 'OrderFilled', 's', 1, 1, '', ?, ?, ?, ?)",
                     (v1.id, STRAT, YES, v1.client_order_id, msgspec.json.encode(v1).decode()))
        conn.execute("INSERT INTO fills (message_id, client_order_id, trade_id, strategy_id, instrument_id,"
                     " venue_order_id, side, last_qty, last_px, fee, fee_currency, liquidity, ts_event)"
                     " VALUES (?, ?, ?, ?, ?, 'v', 'BUY', '1', '0.5', '0', 'USD', 'TAKER', 1)",
                     (v1.id, v1.client_order_id, v1.trade_id, STRAT, YES))
    store = SqliteLedgerStore(path)
    try:
        assert [f["status"] for f in store.list_fills()] == ["confirmed"]
        assert [f.status for f in store.load_journal().fills] == ["confirmed"]
        assert store.list_settlements() == []
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall() == [(1,), (2,)]
    SqliteLedgerStore(path).close()  # opening again: nothing left to migrate


@pytest.mark.postgres
def test_a_version_1_postgres_database_is_migrated_in_place(postgres_dsn: str) -> None:
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        for stmt in store_sql.ddl("postgres"):
            conn.execute(stmt)
        conn.execute("INSERT INTO schema_version (version) VALUES (1)")
        conn.execute("INSERT INTO orders (client_order_id, strategy_id, instrument_id, status, filled_qty,"
                     " created_ts, updated_ts, last_message_id) VALUES ('tw-a', 's', %s, 'NEW', '0', 1, 1, 'm')",
                     (YES,))
    store = PostgresLedgerStore(postgres_dsn)
    try:
        (row,) = store.list_orders()
        assert (row["post_only"], row["expire_time_ns"], row["replaced_by"]) == (0, None, None)
        assert store.record(filled(Side.BUY, "1", "0.5", ts=1, provisional=True), "s")
        assert [f["status"] for f in store.list_fills()] == ["provisional"]
    finally:
        store.close()


def version_1_fill() -> OrderFilled:
    return filled(Side.BUY, "1", "0.5", ts=1, coid="tw-v1")
