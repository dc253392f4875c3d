"""Issue 4: execution killed with SIGKILL mid-run against a (fake) Binance, started again, and reconciliation
leaves the ledger equal to the venue.

Over a real nats-server, ``tradewire run execution`` runs as a process of its own (``adapter = "ccxt"``,
``mode = "sandbox"``, ``url_override`` = the fake on 127.0.0.1, ``execution.ledger_url`` = the in-process ledger,
so it reconciles at start and every ``reconcile_interval_s``). Orders go in on ``ord.cmd.BINANCE`` as risk
publishes them. Execution is killed while the venue has taken a create whose answer it holds back (the order is
journaled in execution's KV state, its ``OrderSubmitted`` never published, the command never acknowledged); while
execution is dead the venue fills that order and others. After the restart:

* the ledger's fills are the venue's trades exactly (trade ids, quantities, prices; none missing, none twice),
  and every order at the venue is in the ledger with its venue order id, filled quantity and status;
* the unanswered create is resolved by query, never sent again, not even when JetStream redelivers the
  unacknowledged command 30 s (``ack_wait``) later;
* an account that matches raises no mismatch: the venue stays ACTIVE (no critical alert, no latch, a new
  entry is accepted); one holding BTC the ledger cannot explain (second test) is latched REDUCING, alerted
  and escalated to risk, after the missed fill was still applied.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import msgspec
import pytest
from aiohttp import web

from tests.fakes.binance import API_KEY, SECRET, FakeBinance
from tests.support.inproc import InProcessStack
from tests.support.nats_server import NatsServer
from tests.support.ports import free_tcp_port
from tradewire_common import subjects
from tradewire_common.bus import Envelope, NatsBus
from tradewire_common.config import config_from_dict
from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    Alert,
    Message,
    OrderAccepted,
    OrderRejected,
    OrderSubmitted,
    OrderType,
    Side,
    SubmitOrder,
)
from tradewire_execution.service import state_key

pytestmark = pytest.mark.timeout(120)
VENUE = "BINANCE"
BTC = "BTCUSDT.BINANCE"
API_TOKEN = "sigkill-test-token-0123456789"
#: The fake's order statuses as the ledger records them.
LEDGER_STATUS = {"NEW": "ACCEPTED", "PARTIALLY_FILLED": "PARTIALLY_FILLED", "FILLED": "FILLED"}


@dataclass
class HoldingBinance(FakeBinance):
    """The fake Binance that can take a create and hold its answer back (the venue processed the order; the
    client waits) until :attr:`release` is set."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.hold: set[str] = set()
        self.held = asyncio.Event()
        self.release = asyncio.Event()

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        response = await super()._rest(request)
        if request.method == "POST" and request.path == "/api/v3/order":
            coid = dict(parse_qsl(await request.text())).get("newClientOrderId", "")
            if coid in self.hold:
                self.held.set()
                await self.release.wait()
        return response

    def creates(self) -> Counter[str]:
        """POST /api/v3/order per client order id."""
        return Counter(r.query.get("newClientOrderId", "") for r in self.requests
                       if r.method == "POST" and r.path == "/api/v3/order")


class ExecutionProcess:
    """``tradewire run execution`` as a process of its own, with the venue's credentials in its environment."""

    def __init__(self, tmp_path: Path, nats_url: str, fake: FakeBinance, *, ledger_url: str,
                 risk_url: str = "") -> None:
        self.config = tmp_path / "execution.toml"
        self.config.write_text(f"""
[execution]
ledger_url = "{ledger_url}"
risk_url = "{risk_url}"

[[execution.venues]]
name = "{VENUE}"
adapter = "ccxt"
mode = "sandbox"
exchange = "binance"
symbols = ["BTC/USDT"]
url_override = "{fake.url}"
poll_interval_s = 0.2
reconcile_interval_s = 0.5
in_flight_grace_s = 1.0
""")
        self.port = free_tcp_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIRE")}
        self.env |= {"TRADEWIRE__HTTP__PORTS__EXECUTION": str(self.port), "TRADEWIRE_BINANCE_API_KEY": API_KEY,
                     "TRADEWIRE_BINANCE_API_SECRET": SECRET, "TRADEWIRE_API_TOKEN": API_TOKEN}
        self.nats_url = nats_url
        self.log = tmp_path / "execution.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "tradewire_common.cli.main", "run", "execution", "--nats", self.nats_url,
                 "--config", str(self.config)], env=self.env, stdout=out, stderr=subprocess.STDOUT)

    async def start(self) -> None:
        """Spawn and wait until ready (its start-up reconciliation is done by then)."""
        self.proc = proc = self.spawn()
        async with asyncio.timeout(40), httpx.AsyncClient(timeout=2) as client:
            while True:
                assert proc.poll() is None, self.log.read_text()[-3000:]
                try:
                    if (await client.get(f"http://127.0.0.1:{self.port}/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)

    def sigkill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)  # no graceful stop: nothing finished or saved on the way out
        self.proc.wait(10)

    async def venues(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=5) as client:
            body: dict[str, Any] = (await client.get(f"http://127.0.0.1:{self.port}/v1/venues")).json()
        return body

    def stop(self) -> None:
        """At the end of a test: killed too (a graceful stop takes ~10 s and proves nothing here)."""
        if self.proc is not None and self.proc.poll() is None:
            self.sigkill()


class Probe:
    """A bus of the test's own: publishes commands as risk does, collects order events and alerts."""

    def __init__(self, bus: NatsBus) -> None:
        self.bus = bus
        self.messages: list[Message] = []

    async def on_message(self, envelope: Envelope) -> None:
        self.messages.append(envelope.message)

    def seen(self, kind: type[Message], client_order_id: str) -> bool:
        return any(isinstance(m, kind) and getattr(m, "client_order_id", None) == client_order_id
                   for m in self.messages)

    def alerts(self, severity: str) -> list[Alert]:
        return [m for m in self.messages if isinstance(m, Alert) and m.severity == severity]

    async def submit(self, coid: str, qty: str, price: str = "42000") -> None:
        order = SubmitOrder(id=derive_id("cmd", coid), ts_event=1, ts_init=1, correlation_id=f"corr-{coid}",
                            strategy_id="sma", instrument_id=BTC, client_order_id=coid, side=Side.BUY,
                            order_type=OrderType.LIMIT, quantity=Decimal(qty), limit_price=Decimal(price))
        await self.bus.publish(subjects.order_command(VENUE), order)


@dataclass
class World:
    fake: HoldingBinance
    stack: InProcessStack
    execution: ExecutionProcess
    probe: Probe

    async def ledger(self, path: str) -> Any:
        return (await self.stack.get("ledger", path)).json()

    async def ledger_fills(self) -> list[tuple[str, Decimal, Decimal]]:
        rows = await self.ledger("/v1/fills?limit=1000")
        return sorted((r["trade_id"], Decimal(str(r["last_qty"])), Decimal(str(r["last_px"]))) for r in rows)

    def venue_trades(self) -> list[tuple[str, Decimal, Decimal]]:
        return sorted((str(t.trade_id), t.qty, t.price) for t in self.fake.trades)

    async def ledger_orders(self) -> dict[str, tuple[str | None, Decimal, str]]:
        rows = await self.ledger("/v1/orders?limit=1000")
        return {r["client_order_id"]: (r["venue_order_id"], Decimal(str(r["filled_qty"] or 0)), r["status"])
                for r in rows}

    def venue_orders(self) -> dict[str, tuple[str | None, Decimal, str]]:
        return {o.client_order_id: (str(o.order_id), o.executed, LEDGER_STATUS[o.status])
                for o in self.fake.orders.values()}

    async def ledger_equals_venue(self) -> bool:
        try:
            return (await self.ledger_fills() == self.venue_trades()
                    and await self.ledger_orders() == self.venue_orders())
        except httpx.HTTPError:
            return False

    async def saved_reducing(self) -> str:
        raw = await self.probe.bus.kv_get(state_key(VENUE))
        assert raw is not None
        reducing: str = msgspec.json.decode(raw)["reducing"]
        return reducing


async def until(check: Callable[[], bool | Awaitable[bool]], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if result if isinstance(result, bool) else await result:
                return
            await asyncio.sleep(0.05)


@pytest.fixture
async def world(tmp_path: Path, fresh_nats: NatsServer, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    monkeypatch.setenv("TRADEWIRE_API_TOKEN", API_TOKEN)  # risk (in process) checks execution's escalation
    fake = HoldingBinance()
    await fake.start()
    config = config_from_dict({"ledger": {"starting_cash": "100000", "currency": "USDT",
                                          "path": str(tmp_path / "ledger.db")}})
    stack = InProcessStack(config, fresh_nats.url)
    bus = NatsBus("probe", fresh_nats.url)
    bus.report_stats = False
    await bus.connect()
    probe = Probe(bus)
    await bus.subscribe(subjects.ALL_ORDER_EVENTS, probe.on_message, durable="probe-events")
    await bus.subscribe(subjects.ALL_ALERTS, probe.on_message, durable="probe-alerts")
    execution: ExecutionProcess | None = None
    try:
        await stack.start(("ledger", "risk"))
        execution = ExecutionProcess(tmp_path, fresh_nats.url, fake, ledger_url=stack.url("ledger"),
                                     risk_url=stack.url("risk"))
        await execution.start()
        yield World(fake, stack, execution, probe)
    finally:
        if execution is not None:
            execution.stop()
        fake.release.set()
        await stack.close()
        await bus.close()
        await fake.stop()


async def test_after_a_sigkill_mid_create_reconciliation_leaves_the_ledger_equal_to_the_venue_and_it_stays_active(
    world: World,
) -> None:
    fake, execution, probe = world.fake, world.execution, world.probe
    for coid, qty in (("tw-k-a", "0.5"), ("tw-k-b", "0.3"), ("tw-k-c", "0.4")):
        await probe.submit(coid, qty)
    await until(lambda: all(probe.seen(OrderAccepted, c) for c in ("tw-k-a", "tw-k-b", "tw-k-c")))
    fake.fill("tw-k-a", "0.2")
    fake.fill("tw-k-b", "0.3")  # b is filled whole
    await until(world.ledger_equals_venue)

    fake.hold.add("tw-k-d")  # the venue takes d's create and holds the answer back ...
    await probe.submit("tw-k-d", "0.5")
    await asyncio.wait_for(fake.held.wait(), 20)
    execution.sigkill()  # ... and execution dies waiting for it
    assert not probe.seen(OrderSubmitted, "tw-k-d")  # the command was never finished nor acknowledged
    fake.release.set()
    fake.fill("tw-k-a", "0.3", "41999.5")  # while execution is dead: a is filled whole at a better price,
    fake.fill("tw-k-c", "0.1")  # c and the unanswered d partly
    fake.fill("tw-k-d", "0.25")
    fake.fill("tw-k-d", "0.05", "41990")

    await execution.start()  # reconciles at start
    await until(world.ledger_equals_venue)
    assert len(world.venue_trades()) == 6
    await until(lambda: probe.seen(OrderAccepted, "tw-k-d"))  # the in-flight create was resolved by query
    orders = await world.ledger_orders()
    assert orders["tw-k-d"] == (str(fake.order_by_client_id("tw-k-d").order_id), Decimal("0.3"), "PARTIALLY_FILLED")
    assert orders["tw-k-a"][1:] == (Decimal("0.5"), "FILLED")

    # JetStream redelivers d's unacknowledged command after its ack_wait (30 s): it is now acknowledged,
    # and the venue still got exactly one create per client order id
    await until(lambda: probe.seen(OrderSubmitted, "tw-k-d"), timeout=45)
    assert fake.creates() == Counter({"tw-k-a": 1, "tw-k-b": 1, "tw-k-c": 1, "tw-k-d": 1})
    assert await world.ledger_equals_venue()  # nothing doubled by the redelivery either
    assert {r["client_order_id"]: r["venue"] for r in await world.ledger("/v1/orders?limit=1000")}["tw-k-d"] == VENUE

    # dozens of reconciliation rounds later: no false mismatch, the venue is ACTIVE and takes new entries
    assert probe.alerts("critical") == [], probe.alerts("critical")
    assert await world.saved_reducing() == ""
    assert (await execution.venues())[VENUE]["trading_state"] == "ACTIVE"
    await probe.submit("tw-k-e", "0.1")
    await until(lambda: probe.seen(OrderAccepted, "tw-k-e"))
    assert fake.creates()["tw-k-e"] == 1


async def test_after_a_sigkill_a_balance_changed_behind_tradewires_back_makes_the_venue_reducing_with_an_alert(
    world: World,
) -> None:
    fake, execution, probe = world.fake, world.execution, world.probe
    await probe.submit("tw-m-a", "0.5")
    await until(lambda: probe.seen(OrderAccepted, "tw-m-a"))
    fake.fill("tw-m-a", "0.2")
    await until(world.ledger_equals_venue)

    execution.sigkill()
    fake.fill("tw-m-a", "0.1")  # missed while dead: explained once applied
    fake.balances["BTC"] += Decimal(1)  # a deposit (or a manual trade) nobody told the ledger of
    await execution.start()
    await until(world.ledger_equals_venue)  # the missed fill is applied all the same

    async def venue_scope_reducing() -> bool:
        body = await world.stack.get("risk", "/v1/trading-state")
        return bool(body.json()["scopes"].get(f"venue:{VENUE}", {}).get("state") == "REDUCING")

    await until(venue_scope_reducing)
    await until(lambda: bool(probe.alerts("critical")))
    (alert,) = probe.alerts("critical")
    assert "reconciliation mismatch" in alert.body and "BTC: the venue holds 1.3" in alert.body, alert.body
    assert "reconciliation mismatch" in await world.saved_reducing()  # latched in execution, across restarts
    await probe.submit("tw-m-b", "0.1")  # a new entry is refused before it reaches the venue
    await until(lambda: probe.seen(OrderRejected, "tw-m-b"))
    assert fake.creates() == Counter({"tw-m-a": 1})
