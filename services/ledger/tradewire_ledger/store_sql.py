"""The ledger's SQL, shared by the SQLite and PostgreSQL backends.

Statements use ``?`` placeholders (SQLite); the PostgreSQL backend rewrites them to ``%s``, so
no statement may contain a literal ``?`` or ``%``.  The DDL differs only in the auto-increment
primary key.  Decimals are stored as TEXT (``str(Decimal)``), which round-trips exactly.

Schema versions: ``_DDL`` creates version 1 (``IF NOT EXISTS``); ``MIGRATIONS[v]`` brings a database
from ``v - 1`` to ``v`` (a new one goes through them too), so old SQLite and PostgreSQL databases are
upgraded in place, in the transaction that opens the store.
"""

from __future__ import annotations

SCHEMA_VERSION = 2

#: Column type of an auto-incrementing integer primary key, per backend.
AUTO_PK = {
    "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "postgres": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
}

_DDL = (
    """CREATE TABLE IF NOT EXISTS schema_version (
        version INTEGER PRIMARY KEY
    )""",
    """CREATE TABLE IF NOT EXISTS messages (
        id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        subject TEXT NOT NULL,
        ts_event BIGINT NOT NULL,
        ts_init BIGINT NOT NULL,
        correlation_id TEXT NOT NULL,
        strategy_id TEXT,
        instrument_id TEXT,
        client_order_id TEXT,
        payload TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS messages_type_idx ON messages (type, ts_init)",
    "CREATE INDEX IF NOT EXISTS messages_coid_idx ON messages (client_order_id)",
    """CREATE TABLE IF NOT EXISTS orders (
        client_order_id TEXT PRIMARY KEY,
        strategy_id TEXT NOT NULL,
        instrument_id TEXT NOT NULL,
        side TEXT,
        order_type TEXT,
        quantity TEXT,
        limit_price TEXT,
        time_in_force TEXT,
        status TEXT NOT NULL,
        venue TEXT,
        venue_order_id TEXT,
        filled_qty TEXT NOT NULL,
        avg_fill_px TEXT,
        reason TEXT,
        signal_id TEXT,
        created_ts BIGINT NOT NULL,
        updated_ts BIGINT NOT NULL,
        last_message_id TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS orders_strategy_idx ON orders (strategy_id, created_ts)",
    """CREATE TABLE IF NOT EXISTS fills (
        seq {auto_pk},
        message_id TEXT NOT NULL UNIQUE REFERENCES messages (id),
        client_order_id TEXT NOT NULL,
        trade_id TEXT NOT NULL,
        strategy_id TEXT NOT NULL,
        instrument_id TEXT NOT NULL,
        venue_order_id TEXT NOT NULL,
        side TEXT NOT NULL,
        last_qty TEXT NOT NULL,
        last_px TEXT NOT NULL,
        fee TEXT NOT NULL,
        fee_currency TEXT NOT NULL,
        liquidity TEXT NOT NULL,
        ts_event BIGINT NOT NULL,
        UNIQUE (client_order_id, trade_id)
    )""",
    """CREATE TABLE IF NOT EXISTS equity (
        ts BIGINT PRIMARY KEY,
        account TEXT NOT NULL,
        cash TEXT NOT NULL,
        equity TEXT NOT NULL,
        realized TEXT NOT NULL,
        unrealized TEXT NOT NULL,
        exposure TEXT NOT NULL,
        fills INTEGER NOT NULL,
        snapshot_id TEXT NOT NULL
    )""",
)


#: Fill statuses (``fills.status``): an ``OrderFilled`` is stored ``confirmed``, or ``provisional`` until
#: its ``FillConfirmed`` / ``FillReversed``; a ``reversed`` fill no longer counts anywhere.
PROVISIONAL, CONFIRMED, REVERSED = "provisional", "confirmed", "reversed"

MIGRATIONS: dict[int, tuple[str, ...]] = {
    # prediction markets: fill statuses, settlements; post-only/GTD orders and replacements
    2: (
        f"ALTER TABLE fills ADD COLUMN status TEXT NOT NULL DEFAULT '{CONFIRMED}'",
        "ALTER TABLE orders ADD COLUMN post_only INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE orders ADD COLUMN expire_time_ns BIGINT",
        "ALTER TABLE orders ADD COLUMN replaces TEXT",
        "ALTER TABLE orders ADD COLUMN replaced_by TEXT",
        """CREATE TABLE IF NOT EXISTS settlements (
            seq {auto_pk},
            message_id TEXT NOT NULL REFERENCES messages (id),
            venue TEXT NOT NULL,
            market_id TEXT NOT NULL,
            resolution TEXT NOT NULL,
            instrument_id TEXT NOT NULL,
            payout TEXT NOT NULL,
            quantity TEXT NOT NULL,
            avg_price TEXT NOT NULL,
            realized_pnl TEXT NOT NULL,
            cash TEXT NOT NULL,
            after_fill_seq BIGINT NOT NULL,
            ts_event BIGINT NOT NULL,
            UNIQUE (message_id, instrument_id)
        )""",
    ),
}


def ddl(backend: str) -> list[str]:
    return [stmt.replace("{auto_pk}", AUTO_PK[backend]) for stmt in _DDL]


def migrations(backend: str, current: int) -> list[tuple[int, list[str]]]:
    """The migrations a database at version ``current`` needs, in order."""
    return [(version, [stmt.replace("{auto_pk}", AUTO_PK[backend]) for stmt in MIGRATIONS[version]])
            for version in sorted(MIGRATIONS) if version > current]


INSERT_VERSION = "INSERT INTO schema_version (version) VALUES (?) ON CONFLICT (version) DO NOTHING"
MAX_VERSION = "SELECT MAX(version) FROM schema_version"

INSERT_MESSAGE = """INSERT INTO messages
    (id, type, subject, ts_event, ts_init, correlation_id, strategy_id, instrument_id,
     client_order_id, payload)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (id) DO NOTHING"""

INSERT_FILL = """INSERT INTO fills
    (message_id, client_order_id, trade_id, strategy_id, instrument_id, venue_order_id, side,
     last_qty, last_px, fee, fee_currency, liquidity, ts_event, status)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (client_order_id, trade_id) DO NOTHING"""

ORDER_COLUMNS = (
    "client_order_id",
    "strategy_id",
    "instrument_id",
    "side",
    "order_type",
    "quantity",
    "limit_price",
    "time_in_force",
    "status",
    "venue",
    "venue_order_id",
    "filled_qty",
    "avg_fill_px",
    "reason",
    "signal_id",
    "created_ts",
    "updated_ts",
    "last_message_id",
    "post_only",
    "expire_time_ns",
    "replaces",
    "replaced_by",
)
_ORDER_COLS = ", ".join(ORDER_COLUMNS)

SELECT_ORDER = f"SELECT {_ORDER_COLS} FROM orders WHERE client_order_id = ?"
INSERT_ORDER = f"INSERT INTO orders ({_ORDER_COLS}) VALUES ({', '.join('?' for _ in ORDER_COLUMNS)})"
UPDATE_ORDER = (
    "UPDATE orders SET "
    + ", ".join(f"{c} = ?" for c in ORDER_COLUMNS if c != "client_order_id")
    + " WHERE client_order_id = ?"
)
LIST_ORDERS = f"SELECT {_ORDER_COLS} FROM orders ORDER BY created_ts DESC, client_order_id DESC LIMIT ?"
LIST_ORDERS_BY_STRATEGY = (
    f"SELECT {_ORDER_COLS} FROM orders WHERE strategy_id = ?"
    " ORDER BY created_ts DESC, client_order_id DESC LIMIT ?"
)

FILL_COLUMNS = (
    "seq",
    "message_id",
    "client_order_id",
    "trade_id",
    "strategy_id",
    "instrument_id",
    "venue_order_id",
    "side",
    "last_qty",
    "last_px",
    "fee",
    "fee_currency",
    "liquidity",
    "ts_event",
    "status",
)
LIST_FILLS = f"SELECT {', '.join(FILL_COLUMNS)} FROM fills ORDER BY seq DESC LIMIT ?"
LOAD_FILLS = (
    "SELECT m.payload FROM fills f JOIN messages m ON m.id = f.message_id WHERE f.status <> ? ORDER BY f.seq"
)
#: Every fill with its sequence number and status, oldest first (the journal).
LOAD_FILL_JOURNAL = (
    "SELECT f.seq, f.status, m.payload FROM fills f JOIN messages m ON m.id = f.message_id ORDER BY f.seq"
)
FILL_STATUS = "SELECT status FROM fills WHERE client_order_id = ? AND trade_id = ?"
SET_FILL_STATUS = "UPDATE fills SET status = ? WHERE client_order_id = ? AND trade_id = ? AND status = ?"
#: An order's fills that still count, oldest first (its filled quantity and average price).
ORDER_FILLS = "SELECT last_qty, last_px FROM fills WHERE client_order_id = ? AND status <> ? ORDER BY seq"
MAX_FILL_SEQ = "SELECT COALESCE(MAX(seq), 0) FROM fills"
#: Confirmations and reversals of an order's fills already stored (a fill may arrive after them).
FILL_LIFECYCLE = "SELECT type, payload FROM messages WHERE client_order_id = ? AND type IN (?, ?)"

SETTLEMENT_COLUMNS = (
    "seq",
    "message_id",
    "venue",
    "market_id",
    "resolution",
    "instrument_id",
    "payout",
    "quantity",
    "avg_price",
    "realized_pnl",
    "cash",
    "after_fill_seq",
    "ts_event",
)
INSERT_SETTLEMENT = f"""INSERT INTO settlements ({', '.join(SETTLEMENT_COLUMNS[1:])})
    VALUES ({', '.join('?' for _ in SETTLEMENT_COLUMNS[1:])})
    ON CONFLICT (message_id, instrument_id) DO NOTHING"""
LIST_SETTLEMENTS = f"SELECT {', '.join(SETTLEMENT_COLUMNS)} FROM settlements ORDER BY seq DESC LIMIT ?"
LOAD_SETTLEMENTS = f"SELECT {', '.join(SETTLEMENT_COLUMNS)} FROM settlements ORDER BY seq"

UPSERT_EQUITY = """INSERT INTO equity
    (ts, account, cash, equity, realized, unrealized, exposure, fills, snapshot_id)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (ts) DO UPDATE SET
        account = excluded.account, cash = excluded.cash, equity = excluded.equity,
        realized = excluded.realized, unrealized = excluded.unrealized,
        exposure = excluded.exposure, fills = excluded.fills, snapshot_id = excluded.snapshot_id"""
EQUITY_COLUMNS = ("ts", "account", "cash", "equity", "realized", "unrealized", "exposure", "fills")
#: The latest ``limit`` points, returned oldest first (ready to plot).
EQUITY_CURVE = (
    f"SELECT {', '.join(EQUITY_COLUMNS)} FROM"
    f" (SELECT {', '.join(EQUITY_COLUMNS)} FROM equity ORDER BY ts DESC LIMIT ?) AS latest"
    " ORDER BY ts"
)

COUNT_MESSAGES = "SELECT COUNT(*) FROM messages"
COUNT_MESSAGES_OF_TYPE = "SELECT COUNT(*) FROM messages WHERE type = ?"
DEAD_LETTERS = (
    "SELECT id, subject, ts_event, ts_init, payload FROM messages WHERE type = 'DeadLetter'"
    " ORDER BY ts_init DESC, id DESC LIMIT ?"
)
#: Messages of one type, oldest first (by creation time): the latest ``limit`` of them.
MESSAGES_OF_TYPE = (
    "SELECT payload FROM (SELECT payload, ts_init, id FROM messages WHERE type = ?"
    " ORDER BY ts_init DESC, id DESC LIMIT ?) AS latest ORDER BY ts_init, id"
)
MESSAGES_OF_TYPE_BY_STRATEGY = (
    "SELECT payload FROM (SELECT payload, ts_init, id FROM messages WHERE type = ? AND strategy_id = ?"
    " ORDER BY ts_init DESC, id DESC LIMIT ?) AS latest ORDER BY ts_init, id"
)
