"""The kill switch in full over a real broker: every service sees HALTED, execution cancels the resting
orders, no order command leaves risk afterwards, ``--flatten`` closes the positions, the operator
halts over NATS (nobody else may), the state survives a risk restart, releasing needs the token and a
reason, and a circuit breaker trips a scope that stays tripped.

The test drives the market itself: ETH bars and signals published on the broker (no strategy trades
ETH), so what rests, fills and closes is known exactly.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.support.inproc import START_ORDER, InProcessStack
from tests.support.nats_server import NatsServer
from tests.support.stack import demo_config
from tradewire_common import subjects
from tradewire_common.bus import NatsBus
from tradewire_common.cli.control import halt_over_nats
from tradewire_common.cli.main import main
from tradewire_common.cli.nats_config import write_nats_config
from tradewire_common.config import Config, load_config
from tradewire_common.ids import derive_id
from tradewire_common.nats_auth import ALL_ROLES, ClientAuth, new_password, password_env
from tradewire_common.schemas import Bar, OrderType, Side, Signal
from tradewire_common.trading_state import HaltRequest

TOKEN = "kill-switch-full-token"
ETH = "ETHUSDT.BINANCE"
MINUTE = 60 * 10**9
T = 1_640_995_200 * 10**9  # 2022-01-01T00:00Z: after the replayed bars (2021-12-31)
D = Decimal
#: generous bound on waiting for the system's asynchronous reaction (never hit when things work)
WAIT_S = 60.0

EXTRA = """
[[risk.instruments]]
id = "ETHUSDT.BINANCE"
quantity_step = "0.00001"
min_quantity = "0.00001"
"""


def write_config(tmp_path: Path, *, limit: int = 20, extra: str = "") -> Path:
    path = tmp_path / "tw.toml"
    path.write_text(demo_config(limit=limit, extra=f'path = "{tmp_path / "ledger.db"}"') + EXTRA + extra)
    return path


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEWIRE_API_TOKEN", TOKEN)
    monkeypatch.delenv("TRADEWIRE_API_TOKEN_FILE", raising=False)


@pytest.fixture
async def driver(fresh_nats: NatsServer) -> AsyncIterator[Market]:
    bus = NatsBus("driver", fresh_nats.url, auth=None)
    await bus.connect()
    try:
        yield Market(bus)
    finally:
        await bus.close()


class Market:
    """Publishes ETH bars and signals the way the datafeed and a strategy would."""

    def __init__(self, bus: NatsBus) -> None:
        self.bus = bus
        self.n = 0

    async def bar(self, ts: int, price: str) -> None:
        p = D(price)
        await self.bus.publish(subjects.bar("BINANCE", "ETHUSDT", "1m"), Bar(
            id=derive_id("ks-bar", ts), ts_event=ts, ts_init=ts, instrument_id=ETH, interval="1m", open=p, high=p,
            low=p, close=p, volume=D("1000")))

    async def signal(self, ts: int, side: Side = Side.BUY, *, limit: str | None = None) -> Signal:
        self.n += 1
        signal = Signal(
            id=derive_id("ks-signal", self.n, ts), ts_event=ts, ts_init=ts, strategy_id="sma_cross", instrument_id=ETH,
            side=side, price=D("3000"), confidence=1.0, reason="test",
            order_type=OrderType.LIMIT if limit else OrderType.MARKET, limit_price=D(limit) if limit else None)
        await self.bus.publish(subjects.signal("sma_cross"), signal)
        return signal


async def wait_until(check: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not await check():
            await asyncio.sleep(0.05)


async def views(stack: InProcessStack) -> dict[str, dict[str, str]]:
    """Each running service's own view of the trading state (from its /readyz)."""
    return {name: (await stack.get(name, "/readyz")).json()["trading_state"] for name in stack.running}


async def orders(stack: InProcessStack) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = (await stack.get("ledger", "/v1/orders?limit=1000")).json()
    return result


async def eth_position(stack: InProcessStack) -> Decimal:
    positions = (await stack.get("ledger", "/v1/positions")).json()["positions"]
    return sum((D(p["quantity"]) for p in positions if p["instrument_id"] == ETH), D(0))


def endpoints(stack: InProcessStack, run_dir: Path, **extra: str) -> Path:
    run_dir.mkdir(exist_ok=True)
    (run_dir / "endpoints.json").write_text(json.dumps(
        {"services": {name: stack.url(name) for name in stack.running}, **extra}))
    return run_dir


def ledger_rows(tmp_path: Path, kind: str) -> list[dict[str, Any]]:
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        rows = db.execute("SELECT payload FROM messages WHERE type = ?", (kind,)).fetchall()
    return [json.loads(p) for (p,) in rows]


async def test_engaging_halts_every_service_cancels_resting_orders_and_lets_no_order_out(
    fresh_nats: NatsServer, driver: Market, tmp_path: Path
) -> None:
    stack = InProcessStack(load_config(write_config(tmp_path), environ={}), fresh_nats.url)
    await stack.start()
    try:
        await stack.wait_replay_done()
        await driver.bar(T, "3000")
        await driver.signal(T, limit="1000")  # rests: no bar trades that low
        await wait_until(lambda: _open_orders(stack, 1))
        [resting] = [o for o in await orders(stack) if o["instrument_id"] == ETH]

        engaged = await stack.post("risk", "/v1/kill-switch", {"state": "HALTED", "reason": "incident"}, token=TOKEN)
        assert engaged.status_code == 200, engaged.text
        assert (engaged.json()["state"], engaged.json()["actor"]) == ("HALTED", "api-token")
        halted_at = engaged.json()["since_ns"]

        async def everyone_halted() -> bool:
            return all(view["global"] == "HALTED" for view in (await views(stack)).values())

        await wait_until(everyone_halted)
        assert set(await views(stack)) == set(START_ORDER)
        await wait_until(lambda: _open_orders(stack, 0))

        async def cancelled() -> bool:
            return any(o["client_order_id"] == resting["client_order_id"] and o["status"] == "CANCELED"
                       for o in await orders(stack))

        await wait_until(cancelled)

        denials = (await stack.get("ledger", "/v1/summary")).json()["denials"]
        await driver.bar(T + MINUTE, "3000")
        await driver.signal(T + MINUTE)

        async def denied() -> bool:
            return bool((await stack.get("ledger", "/v1/summary")).json()["denials"] > denials)

        await wait_until(denied)

        await stack.restart_service("risk")
        state = (await stack.get("risk", "/v1/trading-state")).json()["scopes"]["global"]
        assert (state["state"], state["reason"], state["since_ns"]) == ("HALTED", "incident", halted_at)

        release = {"scope": "global", "state": "ACTIVE"}
        assert (await stack.post("risk", "/v1/trading-state", {**release, "reason": "ok"})).status_code == 401
        no_reason = await stack.post("risk", "/v1/trading-state", release, token=TOKEN)
        assert no_reason.status_code == 422 and "needs a reason" in no_reason.text
        released = await stack.post("risk", "/v1/trading-state", {**release, "reason": "incident over"}, token=TOKEN)
        assert released.status_code == 200 and released.json()["state"] == "ACTIVE"

        async def everyone_active() -> bool:
            return all(view["global"] == "ACTIVE" for view in (await views(stack)).values())

        await wait_until(everyone_active)
    finally:
        await stack.close()

    submits = ledger_rows(tmp_path, "SubmitOrder")
    assert [s["client_order_id"] for s in submits] == [resting["client_order_id"]]
    assert all(s["ts_init"] < halted_at for s in submits)
    assert any(d["reason_code"] == "TRADING_HALTED" for d in ledger_rows(tmp_path, "OrderDenied"))
    [cancel] = ledger_rows(tmp_path, "OrderCanceled")
    assert cancel["reason"] == "kill switch: global HALTED: incident"
    changes = ledger_rows(tmp_path, "TradingStateChanged")
    assert [(c["state"], c["previous"], c["reason"]) for c in changes] == [
        ("HALTED", "ACTIVE", "incident"), ("ACTIVE", "HALTED", "incident over")]


async def test_engage_with_flatten_from_the_cli_closes_the_positions(
    fresh_nats: NatsServer, driver: Market, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = write_config(tmp_path)
    stack = InProcessStack(load_config(config_path, environ={}), fresh_nats.url)
    await stack.start(("ledger", "execution", "risk"))
    try:
        await driver.bar(T, "3000")
        await driver.signal(T)  # a market BUY: fills at the next bar's open
        await driver.bar(T + MINUTE, "3000")

        async def risk_knows_the_position() -> bool:
            snap = stack.service("risk").snapshot  # type: ignore[attr-defined]
            return snap is not None and any(p.instrument_id == ETH and p.quantity > 0 for p in snap.positions)

        await wait_until(risk_knows_the_position)
        held = await eth_position(stack)
        assert held > 0

        run_dir = endpoints(stack, tmp_path / "run")
        args = ["--config", str(config_path), "--run-dir", str(run_dir)]
        assert await asyncio.to_thread(main, ["kill-switch", "release", *args]) == 1  # no reason
        assert "needs --reason" in capsys.readouterr().err
        code = await asyncio.to_thread(main, ["kill-switch", "engage", "--flatten", "--reason", "flatten all", *args])
        assert code == 0
        engaged = json.loads(capsys.readouterr().out)
        assert engaged["state"] == "HALTED" and len(engaged["flatten_orders"]) == 1
        [flatten_id] = engaged["flatten_orders"]

        await wait_until(lambda: _open_orders(stack, 1))  # the closing order waits for the next bar
        await driver.bar(T + 2 * MINUTE, "3100")

        async def flat() -> bool:
            return await eth_position(stack) == 0

        await wait_until(flat)
        [closing] = [o for o in await orders(stack) if o["client_order_id"] == flatten_id]
        assert closing["status"] == "FILLED" and closing["side"] == "SELL"
    finally:
        await stack.close()

    [flatten] = [s for s in ledger_rows(tmp_path, "SubmitOrder") if s["client_order_id"] == flatten_id]
    assert (D(flatten["quantity"]), flatten["reduce_only"], flatten["order_type"]) == (held, True, "MARKET")
    assert [s["client_order_id"].startswith("tw-fl-") for s in ledger_rows(tmp_path, "SubmitOrder")] == [False, True]


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[NatsServer, dict[str, str]]]:
    passwords = {role: new_password() for role in ALL_ROLES}
    conf = write_nats_config(tmp_path / "conf", roles=ALL_ROLES)
    server = NatsServer.started_in(tmp_path / "secured", config_file=conf,
                                   env={password_env(role): pw for role, pw in passwords.items()})
    try:
        yield server, passwords
    finally:
        server.stop()


async def test_the_operator_halts_over_nats_and_any_other_user_is_refused(
    secured: tuple[NatsServer, dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, passwords = secured
    secret = tmp_path / "risk.password"
    secret.write_text(passwords["risk"])
    config_path = write_config(tmp_path, extra=f'\n[bus]\nuser = "risk"\npassword_file = "{secret}"\n')
    config: Config = load_config(config_path, environ={})
    stack = InProcessStack(config, server.url)
    await stack.start(("risk",))
    try:
        engage = json.dumps({"state": "HALTED", "reason": "intruder"}).encode()
        with pytest.raises(RuntimeError, match=r"(?i)permissions violation"):
            await asyncio.to_thread(halt_over_nats, server.url, ClientAuth("signals", passwords["signals"]),
                                    engage, 3.0)
        assert (await stack.get("risk", "/v1/kill-switch")).json()["state"] == "ACTIVE"

        operator_file = tmp_path / "operator.password"
        operator_file.write_text(passwords["operator"])
        run_dir = endpoints(stack, tmp_path / "run", nats=server.url, nats_operator_password_file=str(operator_file))
        args = ["--via", "nats", "--config", str(config_path), "--run-dir", str(run_dir)]
        assert await asyncio.to_thread(main, ["kill-switch", "engage", "--reason", "from the console", *args]) == 0
        answer = json.loads(capsys.readouterr().out)
        assert (answer["scope"], answer["state"], answer["actor"]) == ("global", "HALTED", "nats:operator")
        state = (await stack.get("risk", "/v1/kill-switch")).json()
        assert (state["state"], state["reason"], state["actor"]) == ("HALTED", "from the console", "nats:operator")

        status = HaltRequest(scope="venue:BINANCE")
        reply = await asyncio.to_thread(halt_over_nats, server.url, ClientAuth("operator", passwords["operator"]),
                                        msgspec.json.encode(status))
        assert (reply["scope"], reply["state"]) == ("venue:BINANCE", "ACTIVE")
        assert await asyncio.to_thread(main, ["kill-switch", "release", "--reason", "console: all clear",
                                              *args]) == 0
        assert json.loads(capsys.readouterr().out)["state"] == "ACTIVE"
        assert list(stack.service("risk").bus.refusals) == []  # type: ignore[attr-defined]
    finally:
        await stack.close()


async def test_a_tripped_breaker_halts_its_scope_everywhere_alerts_and_stays_tripped(
    fresh_nats: NatsServer, tmp_path: Path
) -> None:
    config = load_config(write_config(tmp_path, extra="\n[risk.breakers]\nvenue_disconnected = true\n"), environ={})
    stack = InProcessStack(config, fresh_nats.url)
    await stack.start(("ledger", "execution", "risk"))
    try:
        execution: Any = stack.service("execution")
        await execution.report_venue_status("BINANCE", False, "websocket closed")

        async def venue_halted_everywhere() -> bool:
            return all(view["venue:BINANCE"] == "HALTED" for view in (await views(stack)).values())

        await wait_until(venue_halted_everywhere)
        state = (await stack.get("risk", "/v1/trading-state")).json()["scopes"]
        assert state["global"]["state"] == "ACTIVE"
        assert (state["venue:BINANCE"]["trigger"], state["venue:BINANCE"]["actor"]) == (
            "venue_disconnected", "breaker:venue_disconnected")
        assert "websocket closed" in state["venue:BINANCE"]["reason"]
        assert (await stack.get("execution", "/v1/venues")).json()["BINANCE"]["connected"] is False
        metrics = (await stack.get("risk", "/metrics")).text
        assert 'tradewire_risk_breaker_trips_total{breaker="venue_disconnected"} 1.0' in metrics

        await execution.report_venue_status("BINANCE", True, "back")
        assert (await stack.get("execution", "/v1/venues")).json()["BINANCE"]["connected"] is True

        async def alert_recorded() -> bool:
            return bool(await asyncio.to_thread(ledger_rows, tmp_path, "Alert"))

        await wait_until(alert_recorded)
        assert (await stack.get("risk", "/v1/trading-state")).json()["scopes"]["venue:BINANCE"]["state"] == "HALTED"
    finally:
        await stack.close()

    [alert] = ledger_rows(tmp_path, "Alert")
    assert (alert["severity"], alert["source"]) == ("critical", "risk")
    assert "venue_disconnected" in alert["title"] and "websocket closed" in alert["body"]
    changes = ledger_rows(tmp_path, "TradingStateChanged")
    assert [(c["scope"], c["state"], c["trigger"]) for c in changes] == [
        ("venue:BINANCE", "HALTED", "venue_disconnected")]
    statuses = ledger_rows(tmp_path, "VenueStatus")
    assert [(s["venue"], s["connected"]) for s in statuses] == [("BINANCE", False), ("BINANCE", True)]


async def _open_orders(stack: InProcessStack, count: int) -> bool:
    return len((await stack.get("execution", "/v1/venues")).json()["BINANCE"]["open_orders"]) == count
