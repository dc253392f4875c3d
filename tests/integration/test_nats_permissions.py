"""Per-service NATS users on a real nats-server started with the generated nats.conf: the broker
refuses what a role may not do (signals ordering, anyone but the operator halting, wrong logins),
and the real services run, each as its own user."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import httpx
import nats
import nats.errors
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from tests.e2e.reference import RefParams, read_bars, simulate
from tests.support.nats_server import NatsServer
from tests.support.ports import free_tcp_port
from tests.support.stack import DEMO_CSV, demo_config
from tradewire_common import schemas, subjects
from tradewire_common.bus import NatsBus
from tradewire_common.cli.nats_config import write_nats_config
from tradewire_common.cli.up import Supervisor
from tradewire_common.config import Config, config_from_dict, load_config
from tradewire_common.ids import new_id
from tradewire_common.nats_auth import ALL_ROLES, ClientAuth, new_password, password_env
from tradewire_common.registry import SERVICE_NAMES, service_factory
from tradewire_common.schemas import OrderType, Side, SubmitOrder
from tradewire_common.service import Service, serve_forever

ORDER_SUBJECT = subjects.order_command("BINANCE")
#: generous bound on waiting for the broker's asynchronous answer (never hit when things work)
WAIT_S = 20.0


@dataclass
class SecuredBroker:
    server: NatsServer
    passwords: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    def auth(self, role: str) -> ClientAuth:
        return ClientAuth(role, self.passwords[role])


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[SecuredBroker]:
    passwords = {role: new_password() for role in ALL_ROLES}
    conf = write_nats_config(tmp_path / "conf", roles=ALL_ROLES)
    server = NatsServer.started_in(tmp_path / "nats", config_file=conf,
                                   env={password_env(role): pw for role, pw in passwords.items()})
    try:
        yield SecuredBroker(server, passwords)
    finally:
        server.stop()


@dataclass
class Login:
    """A raw client of one role that records what the broker refused."""

    nc: Client
    refusals: list[str]

    async def refused(self, subject: str) -> str:
        """Wait for the broker's permissions violation naming ``subject`` (nats-py lower-cases it)."""
        async with asyncio.timeout(WAIT_S):
            while True:
                for text in self.refusals:
                    if "permissions violation" in text and f'"{subject.lower()}"' in text:
                        return text
                await asyncio.sleep(0.01)


async def login(url: str, auth: ClientAuth) -> Login:
    refusals: list[str] = []

    async def on_error(exc: Exception) -> None:
        refusals.append(str(exc))

    nc = await nats.connect(url, user=auth.user, password=auth.password, error_cb=on_error,
                            inbox_prefix=subjects.inbox_prefix(auth.user), allow_reconnect=False)
    return Login(nc, refusals)


@pytest.fixture
async def streams(broker: SecuredBroker) -> AsyncIterator[NatsBus]:
    """The streams laid out by a connected risk bus (which the tests also use as risk)."""
    bus = NatsBus("risk", broker.url, auth=broker.auth("risk"), connect_timeout=WAIT_S)
    await bus.connect()
    try:
        yield bus
    finally:
        await bus.close()


def submit_order() -> SubmitOrder:
    return SubmitOrder(id=new_id(), ts_event=1, ts_init=1, strategy_id="sma_cross", instrument_id="BTCUSDT.BINANCE",
                       client_order_id="tw-perm-0001", side=Side.BUY, order_type=OrderType.MARKET,
                       quantity=Decimal("0.5"))


async def stored(bus: NatsBus, stream: str) -> int:
    info = await bus.js.stream_info(stream)
    return int(info.state.messages)


async def test_the_signals_user_is_refused_publishing_an_order_command_and_the_risk_user_is_not(
    broker: SecuredBroker, streams: NatsBus
) -> None:
    commands = subjects.stream_for(ORDER_SUBJECT)
    assert commands is not None
    signals = await login(broker.url, broker.auth("signals"))
    try:
        await signals.nc.publish(ORDER_SUBJECT, schemas.encode(submit_order()))
        await signals.nc.flush()
        assert "for publish" in await signals.refused(ORDER_SUBJECT)
        with pytest.raises(nats.errors.TimeoutError):  # JetStream never saw it, so never acknowledged
            await signals.nc.jetstream(timeout=1.0).publish(ORDER_SUBJECT, schemas.encode(submit_order()))
    finally:
        await signals.nc.close()
    assert await stored(streams, commands.name) == 0

    await streams.publish(ORDER_SUBJECT, submit_order())  # risk: acknowledged by the stream
    assert await stored(streams, commands.name) == 1
    assert list(streams.refusals) == []


@pytest.mark.parametrize("role", [r for r in ALL_ROLES if r != "operator"])
async def test_only_the_operator_may_publish_on_the_halt_subject(
    broker: SecuredBroker, streams: NatsBus, role: str
) -> None:
    heard: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_halt(msg: Msg) -> None:
        heard.put_nowait(msg.data)

    risk = await login(broker.url, broker.auth("risk"))
    intruder = await login(broker.url, broker.auth(role))
    operator = await login(broker.url, broker.auth("operator"))
    try:
        await risk.nc.subscribe(subjects.RISK_HALT, cb=on_halt)
        await risk.nc.flush()
        await intruder.nc.publish(subjects.RISK_HALT, b"halt from " + role.encode())
        await intruder.nc.flush()
        assert "for publish" in await intruder.refused(subjects.RISK_HALT)
        await operator.nc.publish(subjects.RISK_HALT, b"halt from operator")
        await operator.nc.flush()
        async with asyncio.timeout(WAIT_S):
            first = await heard.get()
        assert first == b"halt from operator"  # the intruder's message never arrived before it
        assert operator.refusals == []
    finally:
        for client in (risk, intruder, operator):
            await client.nc.close()


async def test_a_wrong_password_or_no_login_is_refused_at_connect(broker: SecuredBroker) -> None:
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(broker.url, user="risk", password=broker.passwords["signals"], allow_reconnect=False)
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(broker.url, allow_reconnect=False)

    bus = NatsBus("risk", broker.url, auth=ClientAuth("risk", "tw-not-the-password"), connect_timeout=WAIT_S)
    with pytest.raises(ConnectionError, match="refused user risk") as refused:
        await bus.connect()
    assert "tw-not-the-password" not in str(refused.value)


async def test_an_unreachable_broker_fails_the_connect_instead_of_waiting_forever() -> None:
    bus = NatsBus("risk", f"nats://127.0.0.1:{free_tcp_port()}", auth=ClientAuth("risk", "tw-whatever"),
                  connect_timeout=1.0)
    with pytest.raises(ConnectionError, match="cannot reach NATS"):
        await bus.connect()


async def test_a_service_running_with_another_roles_credentials_is_refused_by_the_broker(
    broker: SecuredBroker, tmp_path: Path, streams: NatsBus
) -> None:
    config = load_config(_config_file(tmp_path, limit=10), environ={})
    bus = NatsBus("risk", broker.url, auth=broker.auth("signals"), connect_timeout=WAIT_S)
    service = service_factory("risk")(config, bus, None)
    try:
        # risk consumes the signals durably at start (every service may read the trading state, but
        # only risk may consume signals): the signals user may not
        with pytest.raises(nats.errors.TimeoutError):
            await service.start()
        refused = " ".join(bus.refusals)
        assert 'permissions violation for publish to "$js.api.consumer.info.tw_signals.risk-signals"' in refused
        assert 'permissions violation for subscription to "risk.halt"' in refused
        assert not service.ready
    finally:
        await bus.close()


BARS = 400


def _config_file(tmp_path: Path, *, limit: int) -> Path:
    path = tmp_path / "tw.toml"
    path.write_text(demo_config(limit=limit, extra=f'path = "{tmp_path / "ledger.db"}"'))
    return path


async def _start(name: str, config: Config, bus: NatsBus) -> tuple[Service, int, asyncio.Event, asyncio.Task[None]]:
    service = service_factory(name)(config, bus, None)
    port, stop = free_tcp_port(), asyncio.Event()
    task = asyncio.create_task(serve_forever(service, host="127.0.0.1", port=port, stop=stop))
    async with asyncio.timeout(WAIT_S):
        while not service.ready:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
    return service, port, stop, task


async def test_the_services_each_logged_in_as_itself_replay_the_demo_exactly(
    broker: SecuredBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEWIRE_API_TOKEN", "perm-test-token")
    config = load_config(_config_file(tmp_path, limit=BARS), environ={})
    buses = {name: NatsBus(name, broker.url, auth=broker.auth(name), connect_timeout=WAIT_S,
                           max_deliver=config.bus.max_deliver) for name in SERVICE_NAMES}
    running: dict[str, tuple[Service, int, asyncio.Event, asyncio.Task[None]]] = {}
    try:
        for name in ("notifier", "ledger", "execution", "risk", "signals", "datafeed"):
            running[name] = await _start(name, config, buses[name])
        url = {name: f"http://127.0.0.1:{port}" for name, (_, port, _, _) in running.items()}
        async with httpx.AsyncClient(timeout=10) as client:
            async with asyncio.timeout(300):  # lockstep: once the feed is done, everything is processed
                while not (await client.get(url["datafeed"] + "/v1/replay")).json()["done"]:
                    await asyncio.sleep(0.05)
            summary = (await client.get(url["ledger"] + "/v1/summary")).json()
            # the kill switch writes risk's own KV key
            engaged = await client.post(url["risk"] + "/v1/kill-switch", json={"state": "HALTED", "reason": "test"},
                                        headers={"Authorization": "Bearer perm-test-token"})
            assert engaged.status_code == 200, engaged.text
    finally:
        for name in ("datafeed", "signals", "risk", "execution", "ledger", "notifier"):
            if name in running:
                running[name][2].set()
                await asyncio.wait_for(running[name][3], WAIT_S)

    model = simulate(read_bars(DEMO_CSV, BARS), RefParams())
    assert model.orders > 0
    assert summary["orders"] == model.orders
    assert summary["fills"] == len(model.fills)
    assert Fraction(Decimal(summary["final_equity"])) == model.equity
    assert summary["dead_letters"] == 0
    assert {name: list(bus.refusals) for name, bus in buses.items()} == {name: [] for name in SERVICE_NAMES}
    assert all(bus.nc.is_closed for bus in buses.values())


def test_tradewire_up_runs_each_service_as_its_own_user_on_a_broker_that_refuses_anonymous_clients(
    tmp_path: Path,
) -> None:
    ports = {name: free_tcp_port() for name in SERVICE_NAMES}
    config_path = tmp_path / "tw.toml"
    config_path.write_text("[http.ports]\n" + "".join(f"{n} = {p}\n" for n, p in ports.items()))
    config = config_from_dict({"http": {"ports": ports}})
    supervisor = Supervisor(config, str(config_path), tmp_path / "runs" / "one", quiet=True)
    try:
        supervisor.start()
        supervisor.wait_ready()
        assert supervisor.embedded is not None
        with urllib.request.urlopen(supervisor.embedded.monitor_url + "/connz?auth=true", timeout=5) as resp:
            connections = json.loads(resp.read())["connections"]
        users = {c.get("name"): c.get("authorized_user") for c in connections}
        assert {name: users.get(name) for name in SERVICE_NAMES} == {name: name for name in SERVICE_NAMES}

        async def anonymous() -> None:
            await nats.connect(supervisor.nats_url, allow_reconnect=False)

        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            asyncio.run(anonymous())
        conf_text = (tmp_path / "runs" / "one" / "nats" / "nats.conf").read_text()
        assert "$TRADEWIRE_NATS_PASSWORD_RISK" in conf_text
        assert not any(pw in conf_text for pw in supervisor.passwords.values())
        operator_file = tmp_path / "runs" / "one" / "nats" / "operator.password"
        assert operator_file.stat().st_mode & 0o077 == 0
        assert operator_file.read_text() == supervisor.passwords["operator"]
        for name in SERVICE_NAMES:
            log_text = (tmp_path / "runs" / "one" / "logs" / f"{name}.log").read_text()
            assert not any(pw in log_text for pw in supervisor.passwords.values())
    finally:
        supervisor.stop()
