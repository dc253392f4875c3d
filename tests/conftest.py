"""Fixtures shared by tests/unit, tests/integration and tests/e2e.

* ``nats_server`` (session): a real nats-server with JetStream on free loopback ports; use unique
  stream names, since every test in the session shares it. ``nats_url`` is its client URL.
* ``postgres_dsn``: a fresh, empty database on 127.0.0.1:5432, dropped afterwards; skips the test
  when PostgreSQL is not reachable.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nats_server import NatsServer

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer.started_in(tmp_path_factory.mktemp("nats") / "server")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_url(nats_server: NatsServer) -> str:
    return nats_server.url


@pytest.fixture
def postgres_dsn() -> Iterator[str]:
    import psycopg
    from psycopg import sql

    try:
        admin = psycopg.connect(PG_ADMIN_DSN, connect_timeout=2, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432: {exc}")
    name = f"tradewire_test_{secrets.token_hex(6)}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield f"postgresql://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def fresh_nats(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server of this test's own (streams and durable consumers start empty)."""
    server = NatsServer.started_in(tmp_path / "nats")
    try:
        yield server
    finally:
        server.stop()
