"""An emulated stop survives a hard kill of execution: over a real broker, execution (a venue without
native brackets: the paper venue with ``native_brackets = false``) is killed with SIGKILL while a stop
is armed, started again, and the stop still fires on the next bar that crosses it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec
import pytest

from tests.support.nats_server import NatsServer
from tests.support.ports import free_tcp_port
from tradewire_common import subjects
from tradewire_common.bus import Envelope, NatsBus
from tradewire_common.ids import derive_id
from tradewire_common.schemas import Bar, Message, OrderAccepted, OrderEvent, OrderFilled, OrderType, Side, SubmitOrder
from tradewire_execution.service import exits_key

pytestmark = pytest.mark.timeout(120)
M = TypeVar("M", bound=OrderEvent)
VENUE = "BINANCE"
BTC = "BTCUSDT.BINANCE"
MINUTE = 60_000_000_000
CONFIG = f"""
[[execution.venues]]
name = "{VENUE}"

[execution.paper]
fill_at = "next_open"
fee_bps = 0.0
native_brackets = false
"""


def bar(i: int, open_: str, low: str | None = None) -> Bar:
    o = Decimal(open_)
    return Bar(id=derive_id("bar", BTC, i), ts_event=i * MINUTE, ts_init=(i + 1) * MINUTE, instrument_id=BTC,
               interval="1m", open=o, high=o, low=Decimal(low) if low else o, close=o, volume=Decimal(1000), seq=i)


ENTRY = SubmitOrder(id=derive_id("entry"), ts_event=0, ts_init=MINUTE, correlation_id="corr-entry",
                    strategy_id="sma_cross", instrument_id=BTC, client_order_id="tw-entry-1", side=Side.BUY,
                    order_type=OrderType.MARKET, quantity=Decimal(2), stop_loss_pct=Decimal("0.02"))


class Execution:
    """``tradewire run execution`` as a process of its own, so it can be killed for real."""

    def __init__(self, tmp_path: Path, nats_url: str) -> None:
        self.config = tmp_path / "tw.toml"
        self.config.write_text(CONFIG)
        self.port = free_tcp_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIRE")}
        self.env["TRADEWIRE__HTTP__PORTS__EXECUTION"] = str(self.port)
        self.nats_url = nats_url
        self.log = tmp_path / "execution.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "tradewire_common.cli.main", "run", "execution", "--nats", self.nats_url,
                 "--config", str(self.config)], env=self.env, stdout=out, stderr=subprocess.STDOUT)

    async def start(self) -> None:
        self.proc = self.spawn()
        async with asyncio.timeout(30), httpx.AsyncClient(timeout=2) as client:
            while True:
                assert self.proc.poll() is None, self.log.read_text()[-3000:]
                try:
                    if (await client.get(f"http://127.0.0.1:{self.port}/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)

    async def venues(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=5) as client:
            data: dict[str, Any] = (await client.get(f"http://127.0.0.1:{self.port}/v1/venues")).json()
        return data

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: no graceful stop, nothing saved on the way out
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def execution(tmp_path: Path, fresh_nats: NatsServer) -> Iterator[Execution]:
    process = Execution(tmp_path, fresh_nats.url)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def probe(fresh_nats: NatsServer) -> AsyncIterator[NatsBus]:
    bus = NatsBus("probe", fresh_nats.url)
    bus.report_stats = False
    await bus.connect()
    yield bus
    await bus.close()


class Events:
    """The order events execution publishes."""

    def __init__(self) -> None:
        self.items: list[Message] = []
        self.changed = asyncio.Event()

    async def __call__(self, envelope: Envelope) -> None:
        self.items.append(envelope.message)
        self.changed.set()

    def fills(self) -> list[OrderFilled]:
        return [m for m in self.items if isinstance(m, OrderFilled)]

    async def wait_for(self, kind: type[M], client_order_id: str, timeout: float = 20.0) -> M:
        async with asyncio.timeout(timeout):
            while True:
                for m in self.items:
                    if isinstance(m, kind) and m.client_order_id == client_order_id:
                        return m
                self.changed.clear()
                await self.changed.wait()


async def armed_in_kv(probe: NatsBus, timeout: float = 20.0) -> list[dict[str, Any]]:
    """The armed brackets in execution's saved exit state, once there are any."""
    async with asyncio.timeout(timeout):
        while True:
            raw = await probe.kv_get(exits_key(VENUE))
            brackets: list[dict[str, Any]] = msgspec.json.decode(raw)["brackets"] if raw else []
            if any(b["armed"] for b in brackets):
                return brackets
            await asyncio.sleep(0.05)


async def test_an_emulated_stop_armed_before_execution_is_killed_fires_after_it_restarts(
    execution: Execution, probe: NatsBus
) -> None:
    events = Events()
    await probe.subscribe("ord.evt.>", events, durable="probe-events")
    await execution.start()
    venue = (await execution.venues())[VENUE]
    assert venue["exits"] == "emulated" and "bracket" not in venue["capabilities"]

    bar_subject = subjects.bar(VENUE, "BTCUSDT", "1m")
    await probe.publish(bar_subject, bar(0, "100"))
    await probe.publish(subjects.order_command(VENUE), ENTRY)
    await events.wait_for(OrderAccepted, ENTRY.client_order_id)  # at the venue before the next bar
    await probe.publish(bar_subject, bar(1, "100"))  # the entry fills at 100: the stop at 98 is armed
    entry = await events.wait_for(OrderFilled, ENTRY.client_order_id)
    assert (entry.last_qty, entry.last_px) == (Decimal(2), Decimal(100))
    (bracket,) = await armed_in_kv(probe)
    assert (bracket["parent"], Decimal(bracket["entry"])) == (ENTRY.client_order_id, Decimal(100))

    execution.kill()
    await execution.start()
    assert (await execution.venues())[VENUE]["emulated_exits_armed"] == [["sma_cross", BTC]]

    await probe.publish(bar_subject, bar(2, "99", low="98.01"))
    await probe.publish(bar_subject, bar(3, "99", low="98"))  # crosses the stop: a market exit is sent
    await probe.publish(bar_subject, bar(4, "97"))  # and fills at the next open
    stop_id = "tw-sl-" + derive_id("exit", ENTRY.client_order_id, "sl", 3 * MINUTE)[:24]
    stop = await events.wait_for(OrderFilled, stop_id)
    assert (stop.side, stop.last_qty, stop.last_px, stop.ts_event) == (Side.SELL, Decimal(2), Decimal(97), 4 * MINUTE)
    assert stop.strategy_id == "sma_cross" and stop.correlation_id == "corr-entry"
    assert [f.client_order_id for f in events.fills()] == [ENTRY.client_order_id, stop_id]
    assert (await execution.venues())[VENUE]["emulated_exits_armed"] == []
