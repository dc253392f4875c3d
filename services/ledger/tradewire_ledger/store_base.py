"""The backend-independent part of the ledger store: all reads and writes, over a small
transaction protocol that :mod:`tradewire_ledger.store` implements for SQLite and PostgreSQL.

Idempotency: :meth:`LedgerStore.record` returns False and changes nothing when the message id is
already stored; :meth:`LedgerStore.record_fill` also when the fill's ``(client_order_id,
trade_id)`` is already stored under another message id.

Prediction markets (:mod:`tradewire_ledger.store_lifecycle`): ``FillConfirmed`` / ``FillReversed``
move a fill's status (:meth:`LedgerStore.record` returns whether the message is new; the service asks
:meth:`LedgerStore.fill_status` and :meth:`LedgerStore.load_journal`), ``MarketResolved`` stores its
settlement rows (:meth:`LedgerStore.record_resolution`).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

import msgspec

from tradewire_common.schemas import (
    FillConfirmed,
    FillReversed,
    MarketResolved,
    Message,
    OrderFilled,
    OrderReplaced,
    PortfolioSnapshot,
    decode_as,
    encode,
    tag_of,
)
from tradewire_ledger import store_lifecycle as lifecycle
from tradewire_ledger import store_sql as q
from tradewire_ledger.accounting import Settled
from tradewire_ledger.store_lifecycle import Journal
from tradewire_ledger.store_orders import replacement_order, tracks_order, updated_order

Row = tuple[Any, ...]


class Tx(Protocol):
    """One open transaction; statements use ``?`` placeholders."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int: ...

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...


class Duplicate(Exception):
    """Raised inside a transaction to roll it back: the input was already recorded."""


def _opt_str(message: Message, name: str) -> str | None:
    value = getattr(message, name, None)
    return value if isinstance(value, str) and value else None


class LedgerStore(ABC):
    """Backend-independent ledger storage (see the module docstring)."""

    backend: str

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Tx]:
        """One transaction: commit on normal exit, roll back on an exception."""

    @abstractmethod
    def _close(self) -> None: ...

    def _init_schema(self) -> None:
        with self._tx() as tx:
            for stmt in q.ddl(self.backend):
                tx.execute(stmt)
            row = tx.fetchone(q.MAX_VERSION)
            # a new database: the DDL made version 1, the migrations do the rest
            current = int(row[0]) if row and row[0] is not None else 1
            for step, statements in q.migrations(self.backend, current):
                for stmt in statements:
                    tx.execute(stmt)
                tx.execute(q.INSERT_VERSION, (step,))
            tx.execute(q.INSERT_VERSION, (q.SCHEMA_VERSION,))
            row = tx.fetchone(q.MAX_VERSION)
            version = row[0] if row else None
        if version != q.SCHEMA_VERSION:
            raise RuntimeError(
                f"ledger schema version {version} is newer than this code ({q.SCHEMA_VERSION})"
            )

    @contextmanager
    def _tx(self) -> Iterator[Tx]:
        with self._lock, self._transaction() as tx:
            yield tx

    # --- writes -----------------------------------------------------------------------------

    def record(self, message: Message, subject: str) -> bool:
        """Store any message (and update its order); False if its id was already stored.

        An :class:`OrderFilled` goes through :meth:`record_fill`.
        """
        if isinstance(message, OrderFilled):
            return self.record_fill(message, subject)
        try:
            with self._tx() as tx:
                self._insert_message(tx, message, subject)
                if isinstance(message, FillConfirmed):
                    lifecycle.confirm(tx, message)
                elif isinstance(message, FillReversed):
                    lifecycle.reverse(tx, message)
                else:
                    self._update_order(tx, message)
        except Duplicate:
            return False
        return True

    def record_resolution(self, message: MarketResolved, subject: str, settled: list[Settled]) -> bool:
        """Store a resolution and the settlements it made (the service works them out from its portfolio)
        in one transaction; False (nothing changed) when its id is already stored."""
        try:
            with self._tx() as tx:
                self._insert_message(tx, message, subject)
                lifecycle.insert_settlements(tx, message, settled)
        except Duplicate:
            return False
        return True

    def record_fill(self, fill: OrderFilled, subject: str) -> bool:
        """Store a fill message, its ``fills`` row and the order update in one transaction.

        False (nothing changed) if the message id or ``(client_order_id, trade_id)`` is known.
        """
        try:
            with self._tx() as tx:
                self._insert_message(tx, fill, subject)
                inserted = tx.execute(
                    q.INSERT_FILL,
                    (
                        fill.id,
                        fill.client_order_id,
                        fill.trade_id,
                        fill.strategy_id,
                        fill.instrument_id,
                        fill.venue_order_id,
                        str(fill.side),
                        str(fill.last_qty),
                        str(fill.last_px),
                        str(fill.fee),
                        fill.fee_currency,
                        str(fill.liquidity),
                        fill.ts_event,
                        lifecycle.status_on_arrival(tx, fill),
                    ),
                )
                if inserted == 0:
                    raise Duplicate
                if lifecycle.fill_status(tx, fill.client_order_id, fill.trade_id) != q.REVERSED:
                    self._update_order(tx, fill)
        except Duplicate:
            return False
        return True

    def append_equity(self, snapshot: PortfolioSnapshot) -> None:
        """One equity-curve point per ``as_of``; a later snapshot with the same ``as_of`` replaces it."""
        with self._tx() as tx:
            tx.execute(
                q.UPSERT_EQUITY,
                (
                    snapshot.as_of,
                    snapshot.account,
                    str(snapshot.cash),
                    str(snapshot.equity),
                    str(snapshot.realized_pnl),
                    str(snapshot.unrealized_pnl),
                    str(snapshot.gross_exposure),
                    snapshot.fills,
                    snapshot.id,
                ),
            )

    def _insert_message(self, tx: Tx, message: Message, subject: str) -> None:
        inserted = tx.execute(
            q.INSERT_MESSAGE,
            (
                message.id,
                tag_of(type(message)),
                subject,
                message.ts_event,
                message.ts_init,
                message.correlation_id,
                _opt_str(message, "strategy_id"),
                _opt_str(message, "instrument_id"),
                _opt_str(message, "client_order_id"),
                encode(message).decode(),
            ),
        )
        if inserted == 0:
            raise Duplicate

    def _update_order(self, tx: Tx, message: Message) -> None:
        if not tracks_order(message):
            return
        current = self._order(tx, message.client_order_id)
        self._write_order(tx, current, updated_order(current, message))
        if isinstance(message, OrderReplaced):
            old = self._order(tx, message.client_order_id)
            assert old is not None
            new = self._order(tx, message.new_client_order_id)
            self._write_order(tx, new, replacement_order(old, new, message))

    @staticmethod
    def _order(tx: Tx, coid: str) -> dict[str, Any] | None:
        row = tx.fetchone(q.SELECT_ORDER, (coid,))
        return None if row is None else dict(zip(q.ORDER_COLUMNS, row, strict=True))

    @staticmethod
    def _write_order(tx: Tx, current: dict[str, Any] | None, order: dict[str, Any]) -> None:
        if current is None:
            tx.execute(q.INSERT_ORDER, [order[c] for c in q.ORDER_COLUMNS])
        else:
            values = [order[c] for c in q.ORDER_COLUMNS if c != "client_order_id"]
            tx.execute(q.UPDATE_ORDER, [*values, order["client_order_id"]])

    # --- reads ------------------------------------------------------------------------------

    def load_fills(self) -> list[OrderFilled]:
        """Every stored fill that counts (not reversed), in insertion order."""
        with self._tx() as tx:
            rows = tx.fetchall(q.LOAD_FILLS, (q.REVERSED,))
        return [decode_as(str(row[0]).encode(), OrderFilled) for row in rows]

    def load_journal(self) -> Journal:
        """Every fill with its status and every settlement (to rebuild the Portfolio after a restart
        or a reversal: ``Journal.entries()``)."""
        with self._tx() as tx:
            return lifecycle.load_journal(tx)

    def fill_status(self, client_order_id: str, trade_id: str) -> str | None:
        """``provisional``, ``confirmed`` or ``reversed`` (None: no such fill)."""
        with self._tx() as tx:
            return lifecycle.fill_status(tx, client_order_id, trade_id)

    def list_settlements(self, limit: int = 100) -> list[dict[str, Any]]:
        """Settlements, most recently recorded first."""
        with self._tx() as tx:
            rows = tx.fetchall(q.LIST_SETTLEMENTS, (limit,))
        return [dict(zip(q.SETTLEMENT_COLUMNS, row, strict=True)) for row in rows]

    def list_orders(self, limit: int = 100, strategy_id: str | None = None) -> list[dict[str, Any]]:
        """Orders, newest first (by the event time of their first message)."""
        with self._tx() as tx:
            if strategy_id is None:
                rows = tx.fetchall(q.LIST_ORDERS, (limit,))
            else:
                rows = tx.fetchall(q.LIST_ORDERS_BY_STRATEGY, (strategy_id, limit))
        return [dict(zip(q.ORDER_COLUMNS, row, strict=True)) for row in rows]

    def list_fills(self, limit: int = 100) -> list[dict[str, Any]]:
        """Fills, most recently recorded first."""
        with self._tx() as tx:
            rows = tx.fetchall(q.LIST_FILLS, (limit,))
        return [dict(zip(q.FILL_COLUMNS, row, strict=True)) for row in rows]

    def equity_curve(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The latest ``limit`` equity points, oldest first."""
        with self._tx() as tx:
            rows = tx.fetchall(q.EQUITY_CURVE, (limit,))
        return [dict(zip(q.EQUITY_COLUMNS, row, strict=True)) for row in rows]

    def count_messages(self, type: str | None = None) -> int:
        """How many messages are stored (of one ``type`` tag, e.g. ``"Signal"``, if given)."""
        with self._tx() as tx:
            row = (
                tx.fetchone(q.COUNT_MESSAGES)
                if type is None
                else tx.fetchone(q.COUNT_MESSAGES_OF_TYPE, (type,))
            )
        return int(row[0]) if row else 0

    def messages_of_type(self, kind: str, limit: int = 1000, strategy_id: str | None = None) -> list[dict[str, Any]]:
        """The latest ``limit`` stored messages of one ``type`` tag (of one strategy, if given), oldest first,
        as their JSON fields."""
        with self._tx() as tx:
            if strategy_id is None:
                rows = tx.fetchall(q.MESSAGES_OF_TYPE, (kind, limit))
            else:
                rows = tx.fetchall(q.MESSAGES_OF_TYPE_BY_STRATEGY, (kind, strategy_id, limit))
        out: list[dict[str, Any]] = [msgspec.json.decode(str(payload)) for (payload,) in rows]
        return out

    def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        """Dead letters, newest first: the DeadLetter's JSON fields (``raw`` in base64) plus
        ``received_subject``, the subject the ledger got it on."""
        with self._tx() as tx:
            rows = tx.fetchall(q.DEAD_LETTERS, (limit,))
        out: list[dict[str, Any]] = []
        for _id, subject, _ts_event, _ts_init, payload in rows:
            item: dict[str, Any] = msgspec.json.decode(str(payload))
            item["received_subject"] = subject
            out.append(item)
        return out

    def close(self) -> None:
        with self._lock:
            self._close()

    def __enter__(self) -> LedgerStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
