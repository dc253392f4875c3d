"""Failover on a 3-node NATS JetStream cluster: the node leading the streams is killed (SIGKILL) mid-run.

Real nats-server processes on loopback (tests/support/nats_cluster.py), R3 streams. While a stream
has no leader (a new one is elected within seconds) JetStream publishes fail; NatsBus retries them
with the same ``Nats-Msg-Id``, so nothing is lost and nothing is stored twice, and durable consumers
carry on with the new leaders. Select these tests with ``-m failover``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

import tests.support.inproc
from tests.e2e.reference import RefParams, read_bars, simulate
from tests.support.inproc import InProcessStack
from tests.support.nats_cluster import ClusterNode, NatsCluster, running_cluster
from tests.support.stack import DEMO_CSV, demo_config
from tradewire_common import schemas, subjects
from tradewire_common.bus import Envelope, NatsBus
from tradewire_common.config import Config, load_config
from tradewire_common.ids import derive_id
from tradewire_common.schemas import Alert, OrderFilled, SubmitOrder
from tradewire_common.service import nats_bus_for
from tradewire_datafeed.service import DatafeedService

pytestmark = [pytest.mark.failover, pytest.mark.timeout(180)]

#: Generous bounds for things that take seconds (elections, restarts); never timed assertions.
WAIT_S = 60.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    with running_cluster(tmp_path / "cluster") as started:
        yield started


@pytest.fixture
async def make_bus() -> AsyncIterator[Callable[..., Awaitable[NatsBus]]]:
    buses: list[NatsBus] = []

    async def make(service: str, url: str, **kwargs: Any) -> NatsBus:
        kwargs.setdefault("stream_replicas", 3)
        bus = NatsBus(service, url, auth=None, **kwargs)
        await bus.connect()
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        await bus.close()


def node_of(cluster: NatsCluster, bus: NatsBus) -> ClusterNode:
    """The node a bus is connected to."""
    connected = bus.nc.connected_url
    assert connected is not None
    return next(n for n in cluster.nodes if n.port == connected.port)


def retries(bus: NatsBus) -> float:
    value = bus.metrics.registry.get_sample_value(f"tradewire_{bus.service}_publish_retries_total")
    return value or 0.0


async def stream_msg_ids(bus: NatsBus, stream: str, subject: str | None = None) -> list[str]:
    """The ``Nats-Msg-Id`` of every message stored in ``stream`` (on ``subject``), in stream order."""
    info = await bus.js.stream_info(stream)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await bus.js.get_msg(stream, seq)
        if subject is None or msg.subject == subject:
            out.append((msg.headers or {})["Nats-Msg-Id"])
    return out


async def wait_until(check: Callable[[], bool], timeout: float = WAIT_S, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"no {what} after {timeout:g}s")
        await asyncio.sleep(0.02)


# --- layout ------------------------------------------------------------------------------------


async def test_streams_and_state_bucket_are_replicated_on_all_three_nodes(
    cluster: NatsCluster, make_bus: Callable[..., Awaitable[NatsBus]]
) -> None:
    bus = await make_bus("ledger", cluster.url, publish_retry_s=90.0)

    assert bus.servers == cluster.urls
    for spec in subjects.STREAMS:
        info = await bus.js.stream_info(spec.name)
        assert info.config.num_replicas == 3
        # a publish retried for publish_retry_s is still recognised as the same message
        assert info.config.duplicate_window is not None and info.config.duplicate_window >= 90.0
        assert await asyncio.to_thread(cluster.stream_replicas, spec.name) == 3
    kv = await bus.js.stream_info(f"KV_{subjects.STATE_BUCKET}")
    assert kv.config.num_replicas == 3


async def test_a_layout_made_for_one_server_is_moved_to_three_replicas(
    cluster: NatsCluster, make_bus: Callable[..., Awaitable[NatsBus]]
) -> None:
    await make_bus("ledger", cluster.url, stream_replicas=1)
    single = await make_bus("probe", cluster.url, stream_replicas=1)
    assert (await single.js.stream_info("TW_ORDER_EVENTS")).config.num_replicas == 1

    moved = await make_bus("ledger", cluster.url)

    for name in [s.name for s in subjects.STREAMS] + [f"KV_{subjects.STATE_BUCKET}"]:
        assert (await moved.js.stream_info(name)).config.num_replicas == 3, name


# --- the bus through a leader kill ---------------------------------------------------------------


def make_alert(n: int) -> Alert:
    return Alert(id=derive_id("failover-alert", str(n), uuid.uuid4().hex), ts_event=n, ts_init=n,
                 severity="warning", title=f"alert {n}", body="failover", source="test")


async def test_publishes_through_a_kill_of_the_stream_leader_are_retried_and_stored_exactly_once(
    cluster: NatsCluster, make_bus: Callable[..., Awaitable[NatsBus]], monkeypatch: pytest.MonkeyPatch
) -> None:
    subject = subjects.alert("warning")
    # One publisher on the node that leads the stream (the worst case: its own server dies and it
    # must reconnect), one on another node (its publishes meet the leaderless stream head-on).
    publisher = await make_bus("execution", cluster.url)
    victim = node_of(cluster, publisher)
    await cluster.move_leader(victim, "TW_ALERTS")
    bystander = await make_bus("risk", next(n for n in cluster.nodes if n is not victim).url)
    consumer = await make_bus("ledger", cluster.url)
    received: list[str] = []

    async def on_alert(envelope: Envelope) -> None:
        received.append(envelope.message.id)

    await consumer.subscribe(subject, on_alert, durable="failover-alerts")
    await cluster.move_leader(victim, "TW_ALERTS", "failover-alerts")

    attempts: list[str] = []  # the Nats-Msg-Id of every JetStream publish attempt of both publishers
    for bus in (publisher, bystander):
        monkeypatch.setattr(bus.js, "publish", spy_on(bus.js.publish, attempts))

    sent: list[str] = []
    alerts: dict[str, Alert] = {}
    longest = [0.0]
    stop = asyncio.Event()

    async def send(bus: NatsBus, n: int) -> None:
        alert = make_alert(n)
        started = time.monotonic()
        await bus.publish(subject, alert)  # a publish that gives up fails the test
        longest[0] = max(longest[0], time.monotonic() - started)
        sent.append(alert.id)
        alerts[alert.id] = alert

    async def publish_until_stopped() -> None:
        n = 0
        while not stop.is_set():
            await send(publisher, n)
            n += 1
            await asyncio.sleep(0.005)

    publishing = asyncio.create_task(publish_until_stopped())
    try:
        await wait_until(lambda: len(sent) >= 100 and len(received) >= 50, what="traffic")
        killed_at = cluster.kill(victim)
        for n in range(20):
            await send(bystander, 1_000_000 + n)
        await asyncio.to_thread(cluster.wait_stream_leader, "TW_ALERTS", WAIT_S)
        leaderless_s = time.monotonic() - killed_at
        after_kill = len(sent)
        await wait_until(lambda: len(sent) >= after_kill + 100, what="publishes after the election")
        await asyncio.to_thread(cluster.restart, victim)
        after_restart = len(sent)
        await wait_until(lambda: len(sent) >= after_restart + 50, what="publishes after the restart")
    finally:
        stop.set()
        await asyncio.wait_for(publishing, WAIT_S)

    total_retries = retries(publisher) + retries(bystander)
    print(f"TW_ALERTS without a leader for about {leaderless_s:.1f}s; retries: {retries(publisher):.0f} by the "
          f"publisher on the killed node, {retries(bystander):.0f} by the one on a survivor; "
          f"longest publish {longest[0]:.1f}s")
    assert retries(bystander) >= 1  # its first publish met the stream without a leader, and went through
    retried = {i for i in attempts if attempts.count(i) > 1}
    assert retried and retried <= set(sent)  # every retry carried the message's own id, never a new one
    assert len(attempts) == len(sent) + total_retries

    stored = await stream_msg_ids(consumer, "TW_ALERTS", subject)
    assert sorted(stored) == sorted(sent)  # every message once: none lost, none doubled
    # the durable consumer resumed under its new leader (an acked message may come again: consumers
    # are idempotent; the ledger de-duplicates by message id)
    await wait_until(lambda: set(received) == set(sent), what="the consumer to catch up")
    # the new leader still knows the ids: publishing a retried message again stores nothing
    await publisher.publish(subject, alerts[next(iter(retried))])
    assert len(await stream_msg_ids(consumer, "TW_ALERTS", subject)) == len(sent)
    # and the restarted node caught up with what was stored while it was down
    await asyncio.to_thread(cluster.wait_for, lambda: stream_messages_on(victim, "TW_ALERTS") == len(sent) or None,
                            WAIT_S, "the restarted node to catch up")


def spy_on(publish: Callable[..., Awaitable[Any]], attempts: list[str]) -> Callable[..., Awaitable[Any]]:
    """Wrap ``JetStreamContext.publish``: record each attempt's ``Nats-Msg-Id``."""

    async def spy(subject: str, payload: bytes = b"", **kwargs: Any) -> Any:
        attempts.append(kwargs["headers"]["Nats-Msg-Id"])
        return await publish(subject, payload, **kwargs)

    return spy


def stream_messages_on(node: ClusterNode, stream: str) -> int:
    """How many messages ``node``'s own replica of ``stream`` holds."""
    _, body = node.get("/jsz?accounts=true&streams=true")
    for account in body.get("account_details") or []:
        for info in account.get("stream_detail") or []:
            if info.get("name") == stream:
                return int(info["state"]["messages"])
    return -1


async def test_a_redelivery_this_process_never_received_counts_as_consumed_once(
    cluster: NatsCluster, make_bus: Callable[..., Awaitable[NatsBus]]
) -> None:
    """A delivery lost in flight with a dying consumer leader comes again with ``num_delivered`` > 1;
    so does one taken by a process that stopped before acking it. The process that finally handles
    it must count it as consumed, or a lockstep replay waits for it in vain."""
    subject = subjects.alert("critical")
    publisher = await make_bus("execution", cluster.url)
    failing = await make_bus("ledger", cluster.url, max_deliver=1_000)
    first_tries: list[int] = []

    async def fail(envelope: Envelope) -> None:
        first_tries.append(envelope.delivery)
        raise RuntimeError("not now")

    await failing.subscribe(subject, fail, durable="failover-handover")
    await publisher.publish(subject, make_alert(1))
    await wait_until(lambda: len(first_tries) >= 1, what="the first delivery")
    await failing.close()
    assert failing.stats.consumed[subject] == 0

    handled: list[int] = []

    async def handle(envelope: Envelope) -> None:
        handled.append(envelope.delivery)

    successor = await make_bus("ledger", cluster.url)
    await successor.subscribe(subject, handle, durable="failover-handover")
    await wait_until(lambda: len(handled) == 1, what="the redelivery")

    assert handled[0] > 1  # JetStream counts the earlier delivery
    assert successor.stats.consumed[subject] == 1 == publisher.stats.published[subject]


# --- the five services through a leader kill -----------------------------------------------------

BARS = 2000
#: A tiny share of the demo's (USD-notional) volume per bar: most orders fill in several parts.
PARTIAL_FILLS = "0.00000001"


def cluster_config(tmp_path: Path) -> Config:
    path = tmp_path / "tw.toml"
    path.write_text(demo_config(limit=BARS, volume_share=PARTIAL_FILLS, lockstep_timeout=WAIT_S,
                                extra=f'path = "{tmp_path / "ledger.db"}"'))
    return load_config(path, environ={
        "TRADEWIRE__BUS__STREAM_REPLICAS": "3",
        # sizing waits for a portfolio snapshot covering the signal's bar: let it wait out an election
        "TRADEWIRE__RISK__PORTFOLIO_WAIT_S": str(WAIT_S),
    })


def cluster_bus_for(name: str, config: Config, url: str | None = None) -> NatsBus:
    """``nats_bus_for`` with the bus settings of the cluster (replicas, retry time) applied."""
    bus = nats_bus_for(name, config, url)
    bus.stream_replicas = config.bus.stream_replicas
    bus.publish_retry_s = config.bus.publish_retry_s
    return bus


async def stream_messages(bus: NatsBus, stream: str) -> list[schemas.Message]:
    info = await bus.js.stream_info(stream)
    return [schemas.decode((await bus.js.get_msg(stream, seq)).data or b"")
            for seq in range(info.state.first_seq, info.state.last_seq + 1)]


async def test_ledger_holds_every_order_and_fill_once_when_the_node_leading_every_stream_dies_mid_replay(
    cluster: NatsCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tests.support.inproc, "nats_bus_for", cluster_bus_for)
    config = cluster_config(tmp_path)
    victim, survivors = cluster.nodes[0], cluster.nodes[1:]
    # The services connect to the two survivors: core NATS (bars, snapshots) is at-most-once, and a
    # client of the killed node would lose what was in flight to it, by design. What is tested here
    # is the JetStream side: every stream and consumer loses its leader in the middle of the replay.
    stack = InProcessStack(config, ",".join(node.url for node in survivors))
    try:
        # all but the feed: the streams and every durable consumer exist, nothing flows yet
        await stack.start(tuple(name for name in tests.support.inproc.START_ORDER if name != "datafeed"))
        await cluster.move_all_leaders(victim)
        led = await asyncio.to_thread(cluster.leaders)
        assert len(led) >= len(subjects.STREAMS) + 3 and set(led.values()) == {victim.name}
        await stack.start_service("datafeed")
        feed = stack.service("datafeed")
        assert isinstance(feed, DatafeedService)
        await wait_until(lambda: feed.published >= BARS // 2, what="half of the replay")

        killed_at = cluster.kill(victim)
        killed_at_bar = feed.published
        await asyncio.to_thread(cluster.wait_for, lambda: all_led(cluster, led), WAIT_S, "leaders for everything")
        leaderless_s = time.monotonic() - killed_at
        await asyncio.to_thread(cluster.restart, victim)
        await stack.wait_replay_done(timeout=150)

        summary = (await stack.get("ledger", "/v1/summary")).json()
        buses = [running.service.bus for running in stack.running.values()]
        total_retries = sum(retries(bus) for bus in buses if isinstance(bus, NatsBus))
        lockstep_timeouts = stack.service("datafeed").metrics.registry.get_sample_value(
            "tradewire_datafeed_lockstep_timeouts_total") or 0.0
        probe = cluster_bus_for("probe", config, cluster.url)
        await probe.connect()
        try:
            events = await stream_messages(probe, "TW_ORDER_EVENTS")
            commands = await stream_messages(probe, "TW_ORDER_COMMANDS")
        finally:
            await probe.close()
        # the restarted node caught up with what the others stored while it was down
        await asyncio.to_thread(
            cluster.wait_for, lambda: stream_messages_on(victim, "TW_ORDER_EVENTS") == len(events) or None,
            WAIT_S, "the restarted node to catch up")
    finally:
        await stack.close()

    print(f"killed at bar {killed_at_bar} of {BARS}; every stream and consumer led again after about "
          f"{leaderless_s:.1f}s; {total_retries:.0f} publish retries")
    model = simulate(read_bars(DEMO_CSV, BARS), RefParams(volume_share=Fraction(PARTIAL_FILLS)))
    assert model.orders > 10 and len(model.fills) > model.orders  # orders, many filled in parts
    assert killed_at_bar < BARS  # in the middle of the run

    # The pipeline waited for the elections (and for any delivery lost with a consumer leader, which
    # comes again after ack_wait) instead of moving on without it.
    assert lockstep_timeouts == 0
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        rows = db.execute("SELECT side, last_qty, last_px, fee FROM fills ORDER BY ts_event, seq").fetchall()
        fill_keys = db.execute("SELECT client_order_id, trade_id FROM fills").fetchall()
        orders = db.execute("SELECT client_order_id FROM orders").fetchall()
    ledger_fills = [(side, Fraction(Decimal(q)), Fraction(Decimal(px)), Fraction(Decimal(fee)))
                    for side, q, px, fee in rows]
    assert ledger_fills == model.fills  # the uninterrupted exact model's fills, in order
    assert len(set(fill_keys)) == len(fill_keys) == len(model.fills)
    assert len(set(orders)) == len(orders) == model.orders
    assert summary["orders"] == model.orders and summary["fills"] == len(model.fills)
    assert summary["dead_letters"] == 0
    assert Fraction(Decimal(summary["final_equity"])) == model.equity

    # the streams themselves hold each order command and each fill exactly once
    filled = [(e.client_order_id, e.trade_id) for e in events if isinstance(e, OrderFilled)]
    assert len(filled) == len(set(filled)) == len(model.fills)
    submitted = [c.client_order_id for c in commands if isinstance(c, SubmitOrder)]
    assert len(submitted) == len(set(submitted)) == model.orders
    assert len({e.id for e in events}) == len(events)


def all_led(cluster: NatsCluster, names: dict[str, str | None]) -> bool | None:
    """True once every stream and consumer in ``names`` has a leader among the running nodes."""
    now = cluster.leaders()
    return True if all(now.get(name) for name in names) else None
