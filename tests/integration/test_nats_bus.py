"""NatsBus on a real nats-server keeps the semantics the services rely on.

The broker is shared by the whole session, so every test uses its own subjects (a random token),
its own durable names and its own service names.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from tests.support.nats_server import NatsServer
from tradewire_common import schemas, subjects
from tradewire_common.bus import Envelope, NatsBus, PermanentError
from tradewire_common.ids import derive_id
from tradewire_common.schemas import Alert, Bar, DeadLetter

pytestmark = pytest.mark.timeout(60)

_n = itertools.count(1)
MakeBus = Callable[..., Awaitable[NatsBus]]


def uid() -> str:
    return "t" + uuid.uuid4().hex[:12]


def make_bar(seq: int = 0, *, instrument: str = "BTCUSDT.BINANCE") -> Bar:
    return Bar(
        id=derive_id("nats-bus-bar", uuid.uuid4().hex), ts_event=1_000 + seq, ts_init=2_000 + seq,
        instrument_id=instrument, interval="1m", open=Decimal("100"), high=Decimal("101"), low=Decimal("99"),
        close=Decimal("100.5"), volume=Decimal("3"), seq=seq,
    )


def make_alert() -> Alert:
    n = next(_n)
    return Alert(id=derive_id("nats-bus-alert", uuid.uuid4().hex), ts_event=n, ts_init=n, severity="warning",
                 title=f"alert {n}", body="body", source="test")


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


class Recorder:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def __call__(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    @property
    def ids(self) -> list[str]:
        return [e.message.id for e in self.envelopes]

    @property
    def subjects(self) -> list[str]:
        return [e.subject for e in self.envelopes]


def counted(bus: NatsBus, name: str, labels: dict[str, str] | None = None) -> float:
    return bus.metrics.registry.get_sample_value(f"tradewire_{bus.service}_{name}", labels or {}) or 0.0


@pytest.fixture
async def make_bus(nats_url: str) -> AsyncIterator[MakeBus]:
    """Connected NatsBus factory; every bus is closed after the test."""
    created: list[NatsBus] = []

    async def make(service: str, **kwargs: Any) -> NatsBus:
        bus = NatsBus(service, nats_url, connect_timeout=10.0, **kwargs)
        await bus.connect()
        created.append(bus)
        return bus

    yield make
    for bus in reversed(created):
        await bus.close()


def _server_subscriptions(server: NatsServer, client_id: int) -> list[str]:
    with urllib.request.urlopen(f"{server.monitor_url}/connz?cid={client_id}&subs=1", timeout=2) as resp:
        connections = json.load(resp).get("connections") or [{}]
    result: list[str] = connections[0].get("subscriptions_list") or []
    return result


async def subscribed(server: NatsServer, bus: NatsBus, *patterns: str) -> None:
    """Wait until the server lists ``patterns`` among this bus connection's subscriptions.

    A core subscription registered after a publish misses it. nats-py's ``flush()`` is no barrier
    for that: it writes its PING straight to the socket, ahead of SUBs still queued for its flusher.
    """
    client_id = bus.nc.client_id
    assert client_id is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while not set(patterns) <= set(await asyncio.to_thread(_server_subscriptions, server, client_id)):
        if loop.time() > deadline:
            raise AssertionError(f"subscriptions {patterns} not registered on the server")
        await asyncio.sleep(0.01)


async def stream_count(bus: NatsBus, stream: str, subject: str) -> int:
    info = await bus.js.stream_info(stream, subjects_filter=subject)
    return (info.state.subjects or {}).get(subject, 0)


async def dlq_recorder(make_bus: MakeBus, service: str) -> Recorder:
    """A durable consumer of ``dlq.<service>`` (sees letters published before it subscribed, too)."""
    watcher = await make_bus(f"watch_{service}")
    recorder = Recorder()
    await watcher.subscribe(subjects.dead_letter(service), recorder, durable=f"dlq-{service}")
    return recorder


# --- core delivery ----------------------------------------------------------------------------


async def test_wildcards_deliver_to_every_matching_subscription(make_bus: MakeBus, nats_server: NatsServer) -> None:
    venue = uid()
    pub, consumer = await make_bus("publisher"), await make_bus("consumer")
    patterns = [f"md.bar.{venue}.>", f"md.bar.{venue}.*.1m", f"md.*.{venue}.BTCUSDT.1m", f"md.quote.{venue}.>",
                f"md.bar.{venue}.*"]
    seen = {p: Recorder() for p in patterns}
    for pattern, recorder in seen.items():
        await consumer.subscribe(pattern, recorder)
    await subscribed(nats_server, consumer, *patterns)
    btc, eth = subjects.bar(venue, "BTCUSDT", "1m"), subjects.bar(venue, "ETHUSDT", "5m")
    await pub.publish(btc, make_bar())
    await pub.publish(eth, make_bar(instrument="ETHUSDT.BINANCE"))
    await eventually(lambda: len(seen[f"md.bar.{venue}.>"].envelopes) == 2)
    await asyncio.sleep(0.1)
    assert seen[f"md.bar.{venue}.>"].subjects == [btc, eth]
    assert seen[f"md.bar.{venue}.*.1m"].subjects == [btc]
    assert seen[f"md.*.{venue}.BTCUSDT.1m"].subjects == [btc]
    assert seen[f"md.quote.{venue}.>"].subjects == []
    assert seen[f"md.bar.{venue}.*"].subjects == []
    received = seen[f"md.bar.{venue}.>"].envelopes[0]
    assert received.headers["Nats-Msg-Id"] == received.message.id


async def test_a_queue_group_delivers_each_message_to_exactly_one_member(
    make_bus: MakeBus, nats_server: NatsServer
) -> None:
    venue, group = uid(), f"workers-{uid()}"
    pub = await make_bus("publisher")
    members = [await make_bus(f"worker{i}") for i in range(3)]
    recorders = [Recorder() for _ in members]
    for bus, recorder in zip(members, recorders, strict=True):
        await bus.subscribe(f"md.bar.{venue}.>", recorder, queue=group)
        await subscribed(nats_server, bus, f"md.bar.{venue}.>")
    sent = [make_bar(i) for i in range(90)]
    for bar in sent:
        await pub.publish(subjects.bar(venue, "BTCUSDT", "1m"), bar)
    await eventually(lambda: sum(len(r.envelopes) for r in recorders) == len(sent))
    await asyncio.sleep(0.1)
    received = [i for r in recorders for i in r.ids]
    assert sorted(received) == sorted(b.id for b in sent)
    assert all(r.envelopes for r in recorders), [len(r.envelopes) for r in recorders]


async def test_one_subscription_sees_a_thousand_messages_in_publish_order(
    make_bus: MakeBus, nats_server: NatsServer
) -> None:
    venue = uid()
    pub, consumer = await make_bus("publisher"), await make_bus("consumer")
    seqs: list[int] = []

    async def handler(envelope: Envelope) -> None:
        assert isinstance(envelope.message, Bar)
        seqs.append(envelope.message.seq)

    await consumer.subscribe(f"md.bar.{venue}.>", handler)
    await subscribed(nats_server, consumer, f"md.bar.{venue}.>")
    for i in range(1000):
        await pub.publish(subjects.bar(venue, "BTCUSDT", "1m"), make_bar(i))
    await eventually(lambda: len(seqs) == 1000, timeout=10)
    assert seqs == list(range(1000))


async def test_a_durable_consumer_sees_stream_messages_in_publish_order(make_bus: MakeBus) -> None:
    subject = subjects.alert(uid())
    pub, consumer = await make_bus("publisher"), await make_bus("consumer")
    recorder = Recorder()
    await consumer.subscribe(subject, recorder, durable=f"ordered-{uid()}")
    sent = [make_alert() for _ in range(300)]
    for alert in sent:
        await pub.publish(subject, alert)
    await eventually(lambda: len(recorder.envelopes) == 300, timeout=10)
    assert recorder.ids == [a.id for a in sent]


# --- streams ----------------------------------------------------------------------------------


async def test_publishing_the_same_message_twice_stores_and_delivers_it_once(make_bus: MakeBus) -> None:
    subject = subjects.alert(uid())
    pub, consumer = await make_bus("publisher"), await make_bus("consumer")
    recorder = Recorder()
    await consumer.subscribe(subject, recorder, durable=f"dedup-{uid()}")
    alert, other = make_alert(), make_alert()
    await pub.publish(subject, alert)
    await pub.publish(subject, alert)
    await pub.publish(subject, other)
    await eventually(lambda: len(recorder.envelopes) == 2)
    await asyncio.sleep(0.3)
    assert recorder.ids == [alert.id, other.id]
    assert await stream_count(pub, "TW_ALERTS", subject) == 2
    assert pub.stats.published[subject] == 2  # the dropped duplicate is not counted
    assert consumer.stats.consumed[subject] == 2


async def test_a_durable_consumer_resumes_across_a_bus_close_and_reconnect(make_bus: MakeBus) -> None:
    subject, durable = subjects.alert(uid()), f"resume-{uid()}"
    pub = await make_bus("publisher")
    first_bus = await make_bus("ledger")
    first = Recorder()
    await first_bus.subscribe(subject, first, durable=durable)
    before = [make_alert() for _ in range(3)]
    for alert in before:
        await pub.publish(subject, alert)
    await eventually(lambda: len(first.envelopes) == 3)
    await first_bus.close()

    while_away = [make_alert() for _ in range(3)]
    for alert in while_away:
        await pub.publish(subject, alert)

    second_bus = await make_bus("ledger")
    second = Recorder()
    await second_bus.subscribe(subject, second, durable=durable)
    await eventually(lambda: len(second.envelopes) == 3)
    after = make_alert()
    await pub.publish(subject, after)
    await eventually(lambda: len(second.envelopes) == 4)
    await asyncio.sleep(0.3)
    assert first.ids == [a.id for a in before]
    assert second.ids == [a.id for a in [*while_away, after]]  # nothing lost, nothing twice
    assert all(e.delivery == 1 for e in second.envelopes)


# --- failures and dead letters ----------------------------------------------------------------


async def test_a_failing_handler_is_retried_then_dead_lettered(make_bus: MakeBus) -> None:
    subject, service = subjects.alert(uid()), f"svc_{uid()}"
    letters = await dlq_recorder(make_bus, service)
    pub, consumer = await make_bus("publisher"), await make_bus(service, max_deliver=3)
    deliveries: list[int] = []

    async def always_fails(envelope: Envelope) -> None:
        deliveries.append(envelope.delivery)
        raise RuntimeError("disk full")

    await consumer.subscribe(subject, always_fails, durable=f"failing-{uid()}")
    alert = make_alert()
    await pub.publish(subject, alert)
    await eventually(lambda: len(letters.envelopes) == 1, timeout=10)
    await asyncio.sleep(0.3)
    assert deliveries == [1, 2, 3]
    letter = letters.envelopes[0].message
    assert isinstance(letter, DeadLetter)
    assert letters.envelopes[0].subject == f"dlq.{service}"
    assert (letter.service, letter.subject) == (service, subject)
    assert "handler failed after 3 deliveries" in letter.reason and "disk full" in letter.reason
    assert letter.raw == schemas.encode(alert)
    assert counted(consumer, "dead_letters_total", {"reason": "handler"}) == 1
    assert consumer.stats.consumed[subject] == 1  # counted once, so a lockstep replay can balance


async def test_a_handler_that_recovers_on_redelivery_is_counted_once(make_bus: MakeBus) -> None:
    subject, service = subjects.alert(uid()), f"svc_{uid()}"
    letters = await dlq_recorder(make_bus, service)
    pub, consumer = await make_bus("publisher"), await make_bus(service, max_deliver=5)
    deliveries: list[int] = []

    async def flaky(envelope: Envelope) -> None:
        deliveries.append(envelope.delivery)
        if envelope.delivery == 1:
            raise ConnectionError("database restarting")

    await consumer.subscribe(subject, flaky, durable=f"flaky-{uid()}")
    await pub.publish(subject, make_alert())
    await eventually(lambda: len(deliveries) == 2)
    await asyncio.sleep(0.4)
    assert deliveries == [1, 2]
    assert letters.envelopes == []
    assert consumer.stats.consumed[subject] == 1


async def test_permanent_error_is_dead_lettered_without_retry(make_bus: MakeBus) -> None:
    subject, service = subjects.alert(uid()), f"svc_{uid()}"
    letters = await dlq_recorder(make_bus, service)
    pub, consumer = await make_bus("publisher"), await make_bus(service, max_deliver=5)
    deliveries: list[int] = []

    async def refuses(envelope: Envelope) -> None:
        deliveries.append(envelope.delivery)
        raise PermanentError("unknown instrument")

    await consumer.subscribe(subject, refuses, durable=f"refuses-{uid()}")
    await pub.publish(subject, make_alert())
    await eventually(lambda: len(letters.envelopes) == 1)
    await asyncio.sleep(0.5)  # a retry would have come by now (first nak delay is 0.2 s)
    assert deliveries == [1]
    letter = letters.envelopes[0].message
    assert isinstance(letter, DeadLetter) and letter.reason == "rejected: unknown instrument"


@pytest.mark.parametrize("on_stream", [False, True], ids=["core", "durable"])
async def test_undecodable_bytes_are_dead_lettered_and_the_service_keeps_running(
    make_bus: MakeBus, nats_server: NatsServer, on_stream: bool
) -> None:
    token, service = uid(), f"svc_{uid()}"
    letters = await dlq_recorder(make_bus, service)
    pub, consumer = await make_bus("publisher"), await make_bus(service)
    recorder = Recorder()
    if on_stream:
        subject = subjects.alert(token)
        await consumer.subscribe(subject, recorder, durable=f"bytes-{token}")
        good: Alert | Bar = make_alert()
    else:
        subject = subjects.bar(token, "BTCUSDT", "1m")
        await consumer.subscribe(subject, recorder)
        await subscribed(nats_server, consumer, subject)
        good = make_bar()
    wire = json.loads(schemas.encode(make_bar()))
    wire["high"] = "-5"
    bad = json.dumps(wire).encode()
    await pub.publish_raw(subject, bad, {"Nats-Msg-Id": uid()})
    await pub.publish(subject, good)
    await eventually(lambda: len(recorder.envelopes) == 1)
    await eventually(lambda: len(letters.envelopes) == 1)
    letter = letters.envelopes[0].message
    assert isinstance(letter, DeadLetter)
    assert letter.reason.startswith("undecodable: ") and "high" in letter.reason
    assert letter.raw == bad and letter.subject == subject
    assert recorder.ids == [good.id]
    assert counted(consumer, "dead_letters_total", {"reason": "decode"}) == 1


# --- request/reply ----------------------------------------------------------------------------


async def test_gather_collects_the_replies_of_several_responders(make_bus: MakeBus, nats_server: NatsServer) -> None:
    subject = f"ctl.test.{uid()}"
    responders = [await make_bus(name) for name in ("alpha", "beta", "gamma")]
    for bus in responders:

        async def answer(data: bytes, name: str = bus.service) -> bytes:
            return f"{name}:{data.decode()}".encode()

        await bus.serve(subject, answer)
        await subscribed(nats_server, bus, subject)
    asker = await make_bus("asker")
    replies = await asker.gather(subject, b"ping", expected=3, timeout=5.0)
    assert sorted(replies) == [b"alpha:ping", b"beta:ping", b"gamma:ping"]
    loop = asyncio.get_running_loop()
    started = loop.time()
    replies = await asker.gather(subject, b"again", expected=4, timeout=0.3)
    assert sorted(replies) == [b"alpha:again", b"beta:again", b"gamma:again"]
    assert loop.time() - started >= 0.29
    assert await asker.gather(f"ctl.nobody.{uid()}", b"", expected=1, timeout=0.1) == []


# --- broker restarts --------------------------------------------------------------------------


async def test_kv_values_survive_a_broker_restart(make_bus: MakeBus, nats_server: NatsServer) -> None:
    key = f"k_{uid()}"
    bus = await make_bus("risk")
    assert await bus.kv_get(key) is None
    await bus.kv_put(key, b"HALTED")
    await bus.kv_put(key, b"REDUCING")
    await bus.close()

    await asyncio.to_thread(nats_server.restart)

    again = await make_bus("risk")
    assert await again.kv_get(key) == b"REDUCING"
    assert await again.kv_get(f"missing_{uid()}") is None


async def test_a_publish_retried_across_a_broker_restart_is_stored_exactly_once(
    make_bus: MakeBus, nats_server: NatsServer
) -> None:
    subject = subjects.alert(uid())
    bus = await make_bus("execution", publish_attempts=60)
    # Short JetStream timeouts, so attempts made while the broker is down time out and are retried;
    # each buffered attempt reaches the broker after the reconnect, all with the same Nats-Msg-Id.
    bus._js = bus.nc.jetstream(timeout=0.3)
    alert = make_alert()

    await asyncio.to_thread(nats_server.stop)
    try:
        publishing = asyncio.create_task(bus.publish(subject, alert))
        await asyncio.sleep(1.0)
        assert not publishing.done()
    finally:
        await asyncio.to_thread(nats_server.start)
    await asyncio.wait_for(publishing, 20)

    assert counted(bus, "publish_retries_total") >= 1
    checker = await make_bus("checker")
    assert await stream_count(checker, "TW_ALERTS", subject) == 1
    await bus.publish(subject, alert)  # and a later retry is still recognised as the same message
    assert await stream_count(checker, "TW_ALERTS", subject) == 1
    assert bus.stats.published[subject] == 1
    recorder = Recorder()
    await checker.subscribe(subject, recorder, durable=f"once-{uid()}")
    await eventually(lambda: len(recorder.envelopes) == 1)
    await asyncio.sleep(0.3)
    assert recorder.ids == [alert.id]
