"""The whole pipeline with the ledger on PostgreSQL: the same fills and equity as on SQLite (and as
the independent exact model), and a ledger restarted mid-run loses and doubles nothing.

Skips, naming the reason, when PostgreSQL is not reachable on 127.0.0.1:5432 (``postgres_dsn``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.e2e.reference import RefBar, RefParams, RefResult, read_bars, simulate
from tests.support.inproc import InProcessStack
from tests.support.nats_server import NatsServer
from tests.support.stack import DEMO_CSV, demo_config
from tradewire_common import subjects
from tradewire_common.bus import Envelope, MemoryBroker, MemoryBus, NatsBus
from tradewire_common.config import Config, LedgerConfig, load_config
from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    Bar,
    ExecutionWatermark,
    Liquidity,
    Message,
    OrderFilled,
    PortfolioSnapshot,
    Side,
)
from tradewire_ledger.service import LedgerService
from tradewire_ledger.store import LedgerStore, PostgresLedgerStore

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]

BARS = 800
#: what the ledger's summary must agree on between backends
SUMMARY_KEYS = ("orders", "fills", "denials", "signals", "dead_letters", "strategy_errors", "final_equity", "cash",
                "realized_pnl", "unrealized_pnl", "return_pct")
#: a fill as compared between runs: everything but the database sequence number
FILL_KEYS = ("message_id", "client_order_id", "trade_id", "strategy_id", "instrument_id", "venue_order_id", "side",
             "last_qty", "last_px", "fee", "fee_currency", "liquidity", "ts_event")


@dataclass
class Run:
    summary: dict[str, Any]
    #: the ledger's fills, oldest first
    fills: list[dict[str, Any]]
    #: orders the ledger had recorded just after each restart
    orders_at_restarts: list[int]


def ledger_config(tmp_path: Path, ledger: str) -> Config:
    path = tmp_path / "tw.toml"
    path.write_text(demo_config(limit=BARS, extra=ledger, lockstep_timeout=2.0))
    return load_config(path, environ={})


def postgres_config(tmp_path: Path, dsn: str) -> Config:
    config = ledger_config(tmp_path, f'backend = "postgres"\ndsn = "{dsn}"')
    assert config.ledger.backend == "postgres" and config.ledger.dsn == dsn
    return config


async def run_pipeline(config: Config, nats_url: str, *, restart_ledger_at: tuple[int, ...] = ()) -> Run:
    """The five services over ``nats_url`` until the replay is done; the ledger is restarted as
    soon as bar number ``restart_ledger_at[i]`` is on the wire."""
    seen = {seq: asyncio.Event() for seq in restart_ledger_at}

    async def on_bar(envelope: Envelope) -> None:
        if isinstance(envelope.message, Bar) and envelope.message.seq in seen:
            seen[envelope.message.seq].set()

    probe = NatsBus("probe", nats_url)
    await probe.connect()
    await probe.subscribe(subjects.ALL_BARS, on_bar)
    stack = InProcessStack(config, nats_url)
    await stack.start()
    orders_at_restarts: list[int] = []
    try:
        for seq in restart_ledger_at:
            await asyncio.wait_for(seen[seq].wait(), 60)
            await stack.restart_service("ledger")
            orders_at_restarts.append((await stack.get("ledger", "/v1/summary")).json()["orders"])
        await stack.wait_replay_done()
        summary = (await stack.get("ledger", "/v1/summary")).json()
        fills = (await stack.get("ledger", "/v1/fills?limit=100000")).json()
    finally:
        await stack.close()
        await probe.close()
    return Run(summary, sorted(fills, key=lambda f: f["seq"]), orders_at_restarts)


def sma_crossings(bars: list[RefBar], fast: int = 10, slow: int = 30) -> list[int]:
    """Bars on which the reference SMA crossover would signal."""
    closes = [b.close for b in bars]
    out, prev = [], None
    for i in range(slow - 1, len(closes)):
        diff = sum(closes[i - fast + 1 : i + 1]) / fast - sum(closes[i - slow + 1 : i + 1]) / slow
        sign = (diff > 0) - (diff < 0)
        if prev is not None and sign != prev and sign != 0:
            out.append(i)
        prev = sign
    return out


def exact_fills(fills: list[dict[str, Any]]) -> list[tuple[str, Fraction, Fraction, Fraction]]:
    """As the reference model writes them: side, quantity, price, fee (in fill order)."""
    return [(f["side"], Fraction(Decimal(f["last_qty"])), Fraction(Decimal(f["last_px"])),
             Fraction(Decimal(f["fee"]))) for f in fills]


def assert_matches_model(run: Run, model: RefResult) -> None:
    assert exact_fills(run.fills) == model.fills
    assert run.summary["fills"] == len(model.fills)
    assert run.summary["orders"] == model.orders
    assert run.summary["signals"] == model.signals
    assert run.summary["denials"] == model.denials
    assert Fraction(Decimal(run.summary["final_equity"])) == model.equity
    assert run.summary["dead_letters"] == 0 and run.summary["strategy_errors"] == 0


@pytest.fixture(scope="module")
def model() -> RefResult:
    result = simulate(read_bars(DEMO_CSV, BARS), RefParams())
    assert result.orders > 20 and {side for side, *_ in result.fills} == {"BUY", "SELL"}
    return result


@pytest.fixture
def second_nats(tmp_path: Path) -> Iterator[NatsServer]:
    """Another broker of this test's own, for a second pipeline run from scratch."""
    server = NatsServer.started_in(tmp_path / "nats-second")
    try:
        yield server
    finally:
        server.stop()


def postgres_rows(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        return conn.execute(sql).fetchall()


async def test_postgres_ledger_records_the_same_fills_and_equity_as_sqlite(
    postgres_dsn: str, fresh_nats: NatsServer, second_nats: NatsServer, tmp_path: Path, model: RefResult
) -> None:
    (tmp_path / "pg").mkdir()
    (tmp_path / "sqlite").mkdir()
    on_postgres = await run_pipeline(postgres_config(tmp_path / "pg", postgres_dsn), fresh_nats.url)
    sqlite_db = tmp_path / "sqlite" / "ledger.db"
    on_sqlite = await run_pipeline(ledger_config(tmp_path / "sqlite", f'path = "{sqlite_db}"'), second_nats.url)

    assert sqlite_db.is_file()
    # identical, field by field: same ids, quantities, prices, fees, and the same account
    assert [{k: f[k] for k in FILL_KEYS} for f in on_postgres.fills] == [
        {k: f[k] for k in FILL_KEYS} for f in on_sqlite.fills]
    assert {k: on_postgres.summary[k] for k in SUMMARY_KEYS} == {k: on_sqlite.summary[k] for k in SUMMARY_KEYS}
    assert_matches_model(on_postgres, model)
    assert_matches_model(on_sqlite, model)

    # and it really is in PostgreSQL
    (count,) = postgres_rows(postgres_dsn, "SELECT count(*) FROM fills")
    assert count == (len(model.fills),)


async def test_ledger_restarted_mid_run_on_postgres_loses_and_doubles_nothing(
    postgres_dsn: str, fresh_nats: NatsServer, tmp_path: Path, model: RefResult
) -> None:
    # Bars are core NATS: a bar published while the ledger restarts is lost to it, so the first
    # snapshot covering that bar waits for the next one. Restart where no signal is near, so that
    # gap cannot change a decision; the durable trading flow must then come through whole.
    restart_at = (100, 190)
    crossings = sma_crossings(read_bars(DEMO_CSV, BARS))
    assert all(not any(seq <= c <= seq + 10 for c in crossings) for seq in restart_at)
    run = await run_pipeline(postgres_config(tmp_path, postgres_dsn), fresh_nats.url, restart_ledger_at=restart_at)

    assert run.orders_at_restarts[0] >= 3 and run.orders_at_restarts[1] > run.orders_at_restarts[0]  # mid-run
    assert_matches_model(run, model)
    rows = postgres_rows(postgres_dsn, "SELECT side, last_qty, last_px, fee FROM fills ORDER BY ts_event, seq")
    assert exact_fills([dict(zip(("side", "last_qty", "last_px", "fee"), r, strict=True)) for r in rows]) == model.fills
    (unique_trades,) = postgres_rows(postgres_dsn,
                                     "SELECT count(DISTINCT (client_order_id, trade_id)) FROM fills")
    assert unique_trades == (len(model.fills),)
    orders = postgres_rows(postgres_dsn, "SELECT status, filled_qty, quantity FROM orders")
    assert len(orders) == model.orders + model.denials
    assert {status for status, _, _ in orders} <= {"FILLED", "ACCEPTED"}  # the last may still be working
    assert all(Decimal(filled) == Decimal(qty) for status, filled, qty in orders if status == "FILLED")
    assert sum(Fraction(Decimal(filled)) for _, filled, _ in orders) == sum(q for _, q, _, _ in model.fills)
    per_type = dict(postgres_rows(postgres_dsn, "SELECT type, count(*) FROM messages GROUP BY type"))
    assert per_type["SubmitOrder"] == model.orders
    assert per_type["Signal"] == model.signals
    assert per_type["OrderFilled"] == len(model.fills)
    assert per_type.get("DeadLetter", 0) == 0


# --- transient PostgreSQL failures: the in-memory portfolio must not drift from the database -------

MINUTE = 60_000_000_000
BTC = "BTCUSDT.BINANCE"


class FlakyPostgresStore(PostgresLedgerStore):
    """Fails chosen calls the way a dropped connection does: ``record_fill`` after its commit went
    through (the acknowledgement is lost, the fill *is* stored), ``append_equity`` before writing."""

    def __init__(self, dsn: str, *, lose_fill_ack: int = 0, fail_equity: int = 0) -> None:
        super().__init__(dsn)
        self.lose_fill_ack = lose_fill_ack
        self.fail_equity = fail_equity

    def record_fill(self, fill: OrderFilled, subject: str) -> bool:
        stored = super().record_fill(fill, subject)
        if self.lose_fill_ack:
            self.lose_fill_ack -= 1
            raise psycopg.OperationalError("server closed the connection unexpectedly (test)")
        return stored

    def append_equity(self, snapshot: PortfolioSnapshot) -> None:
        if self.fail_equity:
            self.fail_equity -= 1
            raise psycopg.OperationalError("server closed the connection unexpectedly (test)")
        super().append_equity(snapshot)


@dataclass
class MemoryLedger:
    service: LedgerService
    feed: MemoryBus
    probe: MemoryBus
    snapshots: list[PortfolioSnapshot]

    async def send(self, subject: str, message: Message) -> None:
        await self.feed.publish(subject, message)
        assert await self.feed.wait_idle(20)

    async def close(self) -> None:
        await self.service.stop()
        await self.probe.close()


async def memory_ledger(dsn: str, store: LedgerStore | None) -> MemoryLedger:
    """The ledger service on the in-memory bus, over ``store`` (or the configured PostgreSQL)."""
    broker = MemoryBroker()
    config = Config(ledger=LedgerConfig(backend="postgres", dsn=dsn))
    service = LedgerService(config, MemoryBus("ledger", broker), store=store)
    snapshots: list[PortfolioSnapshot] = []

    async def on_snapshot(envelope: Envelope) -> None:
        assert isinstance(envelope.message, PortfolioSnapshot)
        snapshots.append(envelope.message)

    probe = MemoryBus("probe", broker)
    await probe.subscribe(subjects.PORTFOLIO_SNAPSHOT, on_snapshot)
    await service.start()
    return MemoryLedger(service, MemoryBus("feed", broker), probe, snapshots)


def a_fill(n: int = 1) -> OrderFilled:
    return OrderFilled(id=derive_id("pg-flaky-fill", n), ts_event=n * MINUTE, ts_init=n * MINUTE,
                       strategy_id="sma_cross", instrument_id=BTC, client_order_id=f"tw-pg-flaky-{n}",
                       venue_order_id=f"v{n}", trade_id=f"t{n}", side=Side.BUY, last_qty=Decimal("0.1"),
                       last_px=Decimal("40000"), fee=Decimal("4"), fee_currency="USD", liquidity=Liquidity.TAKER,
                       partial=False)


def a_bar(n: int, close: str) -> Bar:
    c = Decimal(close)
    return Bar(id=derive_id("pg-flaky-bar", n), ts_event=n * MINUTE, ts_init=n * MINUTE, instrument_id=BTC,
               interval="1m", open=c, high=c, low=c, close=c, volume=Decimal(1), seq=n)


async def test_a_fill_whose_commit_acknowledgement_is_lost_is_applied_to_the_portfolio_once(
    postgres_dsn: str,
) -> None:
    ledger = await memory_ledger(postgres_dsn, FlakyPostgresStore(postgres_dsn, lose_fill_ack=1))
    try:
        # the first delivery stores the fill but raises; the redelivery finds it already stored
        await ledger.send(subjects.order_event("sma_cross"), a_fill())
        live = ledger.service.portfolio.position(BTC)
        live_cash, live_fills = ledger.service.portfolio.cash, ledger.service.portfolio.fills
    finally:
        await ledger.close()
    assert live is not None and live.quantity == Decimal("0.1")
    assert live_fills == 1 and live_cash == Decimal("10000") - Decimal("4000") - Decimal("4")
    assert ledger.snapshots and ledger.snapshots[-1].fills == 1

    # a restarted ledger rebuilds the same account from PostgreSQL: nothing lost, nothing doubled
    again = await memory_ledger(postgres_dsn, None)
    try:
        assert again.service.store.backend == "postgres"
        rebuilt = again.service.portfolio
        assert (rebuilt.fills, rebuilt.cash, rebuilt.position(BTC)) == (live_fills, live_cash, live)
        await again.send(subjects.order_event("sma_cross"), a_fill())  # redelivered after the restart
        assert again.service.portfolio.fills == 1
    finally:
        await again.close()
    assert postgres_rows(postgres_dsn, "SELECT count(*) FROM fills") == [(1,)]


async def test_a_snapshot_whose_write_failed_is_still_published_once_the_write_succeeds(postgres_dsn: str) -> None:
    ledger = await memory_ledger(postgres_dsn, FlakyPostgresStore(postgres_dsn, fail_equity=1))
    try:
        await ledger.send(subjects.bar("BINANCE", "BTCUSDT", "1m"), a_bar(1, "40000"))
        # the execution watermark completes as_of = bar 1: the first snapshot write fails, the
        # redelivered watermark must still get the snapshot out (risk waits for one covering bar 1)
        await ledger.send(subjects.execution_watermark("BINANCE"),
                          ExecutionWatermark(id=derive_id("pg-flaky-wm", 1), ts_event=MINUTE, ts_init=MINUTE,
                                             venue="BINANCE"))
        snapshots = list(ledger.snapshots)
        dead_letters = ledger.service.metrics.render().decode()
    finally:
        await ledger.close()
    assert [s.as_of for s in snapshots] == [MINUTE]
    assert "tradewire_ledger_dead_letters_total{" not in dead_letters
    assert postgres_rows(postgres_dsn, "SELECT ts, equity FROM equity") == [(MINUTE, "10000")]
