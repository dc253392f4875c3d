"""The ledger's durable store: every message, the orders, the fills and the equity curve.

Two backends share the SQL in :mod:`tradewire_ledger.store_sql`: :class:`SqliteLedgerStore`
(WAL, ``synchronous=NORMAL``) and :class:`PostgresLedgerStore` (psycopg 3).  The API is
synchronous and each call is one transaction; calls are serialised by a lock, so the store may be
used from a worker thread (``asyncio.to_thread``), one call at a time.

Idempotency: :meth:`LedgerStore.record` returns False and changes nothing when the message id is
already stored; :meth:`LedgerStore.record_fill` also when the fill's ``(client_order_id,
trade_id)`` is already stored under another message id.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from tradewire_common.config import LedgerConfig
from tradewire_ledger.store_base import LedgerStore, Row, Tx

__all__ = ["LedgerStore", "PostgresLedgerStore", "SqliteLedgerStore", "open_store"]


# --- SQLite -------------------------------------------------------------------------------------


class _SqliteTx:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cur = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._cur.execute(sql, params).rowcount

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row: Row | None = self._cur.execute(sql, params).fetchone()
        return row

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(self._cur.execute(sql, params).fetchall())


class SqliteLedgerStore(LedgerStore):
    """SQLite file in WAL mode (``synchronous=NORMAL``); creates the parent directory."""

    backend = "sqlite"

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transactions, we BEGIN/COMMIT explicitly.
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._init_schema()

    @contextmanager
    def _transaction(self) -> Iterator[Tx]:
        cur = self._conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTx(cur)
                cur.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    cur.execute("ROLLBACK")
                raise
        finally:
            cur.close()

    def _close(self) -> None:
        self._conn.close()


# --- PostgreSQL ---------------------------------------------------------------------------------


_PG_SQL: dict[str, str] = {}


def _pg(sql: str) -> str:
    converted = _PG_SQL.get(sql)
    if converted is None:
        converted = _PG_SQL[sql] = sql.replace("?", "%s")
    return converted


class _PgTx:
    def __init__(self, cursor: psycopg.Cursor[Row]) -> None:
        self._cur = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._cur.execute(_pg(sql), params)
        return self._cur.rowcount

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        self._cur.execute(_pg(sql), params)
        return self._cur.fetchone()

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self._cur.execute(_pg(sql), params)
        return self._cur.fetchall()


class PostgresLedgerStore(LedgerStore):
    """PostgreSQL via psycopg 3 (autocommit off, one transaction per call); reconnects after a
    broken connection on the next call."""

    backend = "postgres"

    def __init__(self, dsn: str, *, connect_timeout: int = 10) -> None:
        super().__init__()
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._conn = self._connect()
        self._init_schema()

    def _connect(self) -> psycopg.Connection[Row]:
        return psycopg.connect(self._dsn, autocommit=False, connect_timeout=self._connect_timeout)

    @contextmanager
    def _transaction(self) -> Iterator[Tx]:
        if self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        conn = self._conn
        with conn.cursor() as cur:
            try:
                yield _PgTx(cur)
                conn.commit()
            except BaseException:
                if not conn.broken and not conn.closed:
                    conn.rollback()
                raise

    def _close(self) -> None:
        self._conn.close()


def open_store(config: LedgerConfig) -> LedgerStore:
    """The store the ledger config asks for."""
    if config.backend == "postgres":
        return PostgresLedgerStore(config.dsn)
    return SqliteLedgerStore(config.path)
