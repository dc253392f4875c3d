"""The ``postgres_dsn`` fixture gives each test its own empty database and drops it afterwards."""

from __future__ import annotations

import psycopg
import pytest

pytestmark = pytest.mark.postgres


def test_postgres_dsn_is_a_fresh_writable_database(postgres_dsn: str) -> None:
    assert postgres_dsn.rsplit("/", 1)[1].startswith("tradewire_test_")
    with psycopg.connect(postgres_dsn, connect_timeout=2) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
        assert tables == (0,)
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (42)")
        assert conn.execute("SELECT x FROM t").fetchone() == (42,)
