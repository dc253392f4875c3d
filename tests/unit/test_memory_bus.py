"""The in-memory bus keeps the NATS semantics the services rely on.

Wildcards, queue groups, per-subscription ordering, JetStream-like streams (``Nats-Msg-Id``
de-duplication, durable consumers that resume, retry then dead-letter), KV, request/reply and
the counters behind the lockstep replay.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import pytest

from tradewire_common import schemas, subjects
from tradewire_common.bus import Envelope, MemoryBroker, MemoryBus, PermanentError, stats_reply
from tradewire_common.ids import derive_id
from tradewire_common.logs import correlation_id
from tradewire_common.schemas import Alert, Bar, DeadLetter

_n = itertools.count(1)
BAR_SUBJECT = subjects.bar("BINANCE", "BTCUSDT", "1m")
ALERT_SUBJECT = subjects.alert("warning")


def make_bar(seq: int = 0, *, instrument: str = "BTCUSDT.BINANCE", correlation: str = "") -> Bar:
    return Bar(
        id=derive_id("memory-bus-bar", next(_n)), ts_event=1_000 + seq, ts_init=2_000 + seq,
        correlation_id=correlation, instrument_id=instrument, interval="1m", open=Decimal("100"),
        high=Decimal("101"), low=Decimal("99"), close=Decimal("100.5"), volume=Decimal("3"), seq=seq,
    )


def make_alert(title: str = "") -> Alert:
    n = next(_n)
    return Alert(id=derive_id("memory-bus-alert", n), ts_event=n, ts_init=n, severity="warning",
                 title=title or f"alert {n}", body="body", source="test")


async def eventually(check: Callable[[], bool], timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.002)


async def settle() -> None:
    """Let every subscription task run until nothing moves (a few scheduler rounds)."""
    for _ in range(20):
        await asyncio.sleep(0.001)


class Recorder:
    """A handler that records what it saw."""

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


def dead_letters_counted(bus: MemoryBus, reason: str) -> float:
    value = bus.metrics.registry.get_sample_value(
        f"tradewire_{bus.service}_dead_letters_total", {"reason": reason}
    )
    return value or 0.0


@pytest.fixture
def broker() -> MemoryBroker:
    return MemoryBroker()


@pytest.fixture
async def pub(broker: MemoryBroker) -> MemoryBus:
    bus = MemoryBus("publisher", broker)
    await bus.connect()
    return bus


@pytest.fixture
async def dlq(broker: MemoryBroker) -> AsyncIterator[Recorder]:
    """Everything dead-lettered by any service (a durable consumer of ``dlq.*``)."""
    bus = MemoryBus("dlqwatch", broker)
    recorder = Recorder()
    await bus.subscribe(subjects.ALL_DEAD_LETTERS, recorder, durable="test-dlq")
    yield recorder
    await bus.close()


# --- delivery ---------------------------------------------------------------------------------


async def test_a_message_reaches_every_subscription_whose_wildcard_matches(
    broker: MemoryBroker, pub: MemoryBus
) -> None:
    consumer = MemoryBus("consumer", broker)
    seen = {p: Recorder() for p in ["md.bar.>", "md.bar.*.*.1m", "md.*.BINANCE.BTCUSDT.1m", "md.>", "md.quote.>",
                                    "md.bar.BINANCE.*", BAR_SUBJECT]}
    for pattern, recorder in seen.items():
        await consumer.subscribe(pattern, recorder)
    btc, eth = subjects.bar("BINANCE", "BTCUSDT", "1m"), subjects.bar("BYBIT", "ETHUSDT", "5m")
    await pub.publish(btc, make_bar())
    await pub.publish(eth, make_bar(instrument="ETHUSDT.BYBIT"))
    await eventually(lambda: len(seen["md.>"].envelopes) == 2)
    await settle()
    assert seen["md.bar.>"].subjects == [btc, eth]
    assert seen["md.>"].subjects == [btc, eth]
    assert seen["md.bar.*.*.1m"].subjects == [btc]
    assert seen["md.*.BINANCE.BTCUSDT.1m"].subjects == [btc]
    assert seen[BAR_SUBJECT].subjects == [btc]
    assert seen["md.quote.>"].subjects == []
    assert seen["md.bar.BINANCE.*"].subjects == []  # one token short of a bar subject
    await consumer.close()


async def test_handlers_get_a_decoded_copy_with_the_message_id_header(broker: MemoryBroker, pub: MemoryBus) -> None:
    consumer = MemoryBus("consumer", broker)
    recorder = Recorder()
    await consumer.subscribe(BAR_SUBJECT, recorder)
    bar = make_bar(7)
    await pub.publish(BAR_SUBJECT, bar)
    await eventually(lambda: len(recorder.envelopes) == 1)
    envelope = recorder.envelopes[0]
    assert envelope.message == bar and envelope.message is not bar
    assert envelope.headers["Nats-Msg-Id"] == bar.id
    assert envelope.subject == BAR_SUBJECT
    assert envelope.delivery == 1
    await consumer.close()


async def test_the_handler_runs_with_the_message_correlation_id(broker: MemoryBroker, pub: MemoryBus) -> None:
    consumer = MemoryBus("consumer", broker)
    seen: list[str] = []

    async def handler(envelope: Envelope) -> None:
        seen.append(correlation_id.get())

    await consumer.subscribe(BAR_SUBJECT, handler)
    with_correlation, without = make_bar(correlation="bar-chain-1"), make_bar()
    await pub.publish(BAR_SUBJECT, with_correlation)
    await pub.publish(BAR_SUBJECT, without)
    await eventually(lambda: len(seen) == 2)
    assert seen == ["bar-chain-1", without.id]
    assert correlation_id.get() == ""
    await consumer.close()


async def test_a_queue_group_delivers_each_message_to_exactly_one_member_spread_over_members(
    broker: MemoryBroker, pub: MemoryBus
) -> None:
    members = [MemoryBus(f"worker{i}", broker) for i in range(3)]
    recorders = [Recorder() for _ in members]
    for bus, recorder in zip(members, recorders, strict=True):
        await bus.subscribe("md.bar.>", recorder, queue="workers")
    other_group, plain = Recorder(), Recorder()
    await members[0].subscribe("md.bar.>", other_group, queue="auditors")
    await members[0].subscribe("md.bar.>", plain)
    sent = [make_bar(i) for i in range(60)]
    for bar in sent:
        await pub.publish(BAR_SUBJECT, bar)
    await eventually(lambda: sum(len(r.envelopes) for r in recorders) == 60 and len(plain.envelopes) == 60)
    await settle()
    received = [i for r in recorders for i in r.ids]
    assert sorted(received) == sorted(b.id for b in sent)  # each exactly once
    assert all(len(r.envelopes) >= 10 for r in recorders), [len(r.envelopes) for r in recorders]
    assert other_group.ids == [b.id for b in sent]  # another group gets its own copy
    assert plain.ids == [b.id for b in sent]
    for bus in members:
        await bus.close()


async def test_one_subscription_sees_a_thousand_messages_in_publish_order(broker: MemoryBroker, pub: MemoryBus) -> None:
    consumer = MemoryBus("consumer", broker)
    seqs: list[int] = []

    async def slow_sometimes(envelope: Envelope) -> None:
        assert isinstance(envelope.message, Bar)
        if envelope.message.seq % 97 == 0:
            await asyncio.sleep(0.001)
        seqs.append(envelope.message.seq)

    await consumer.subscribe("md.bar.>", slow_sometimes)
    for i in range(1000):
        await pub.publish(BAR_SUBJECT, make_bar(i))
    await eventually(lambda: len(seqs) == 1000, timeout=5)
    assert seqs == list(range(1000))
    await consumer.close()


async def test_a_durable_consumer_sees_a_thousand_stream_messages_in_order(
    broker: MemoryBroker, pub: MemoryBus
) -> None:
    consumer = MemoryBus("consumer", broker)
    recorder = Recorder()
    await consumer.subscribe(subjects.ALL_ALERTS, recorder, durable="ordered")
    sent = [make_alert() for _ in range(1000)]
    for alert in sent:
        await pub.publish(ALERT_SUBJECT, alert)
    await eventually(lambda: len(recorder.envelopes) == 1000, timeout=5)
    assert recorder.ids == [a.id for a in sent]
    await consumer.close()


async def test_a_durable_subscription_needs_a_stream_subject(broker: MemoryBroker) -> None:
    bus = MemoryBus("consumer", broker)
    with pytest.raises(ValueError, match="durable subscription needs a stream subject"):
        await bus.subscribe("md.bar.>", Recorder(), durable="nope")


# --- streams ----------------------------------------------------------------------------------


async def test_publishing_the_same_message_twice_delivers_it_once_to_a_durable_consumer(
    broker: MemoryBroker, pub: MemoryBus
) -> None:
    consumer = MemoryBus("consumer", broker)
    recorder = Recorder()
    await consumer.subscribe(subjects.ALL_ALERTS, recorder, durable="dedup")
    alert, other = make_alert(), make_alert()
    await pub.publish(ALERT_SUBJECT, alert)
    await pub.publish(ALERT_SUBJECT, alert)  # a retry after a lost ack: same Nats-Msg-Id
    await pub.publish(ALERT_SUBJECT, other)
    await eventually(lambda: len(recorder.envelopes) == 2)
    await settle()
    assert recorder.ids == [alert.id, other.id]
    assert len(broker.streams["TW_ALERTS"].messages) == 2
    await consumer.close()


async def test_raw_publishes_without_a_message_id_are_all_stored(broker: MemoryBroker, pub: MemoryBus) -> None:
    data = schemas.encode(make_alert())
    await pub.publish_raw(ALERT_SUBJECT, data)
    await pub.publish_raw(ALERT_SUBJECT, data)
    assert len(broker.streams["TW_ALERTS"].messages) == 2


async def test_a_durable_consumer_resumes_after_resubscribing_without_loss_or_duplicates(
    broker: MemoryBroker, pub: MemoryBus
) -> None:
    consumer = MemoryBus("consumer", broker)
    first = Recorder()
    sub = await consumer.subscribe(subjects.ALL_ALERTS, first, durable="resume")
    before = [make_alert() for _ in range(5)]
    for alert in before:
        await pub.publish(ALERT_SUBJECT, alert)
    await eventually(lambda: len(first.envelopes) == 5)
    await sub.unsubscribe()

    while_away = [make_alert() for _ in range(5)]
    for alert in while_away:
        await pub.publish(ALERT_SUBJECT, alert)
    await settle()
    assert len(first.envelopes) == 5  # nothing delivered after unsubscribe

    second = Recorder()
    await consumer.subscribe(subjects.ALL_ALERTS, second, durable="resume")
    after = make_alert()
    await pub.publish(ALERT_SUBJECT, after)
    await eventually(lambda: len(second.envelopes) == 6)
    await settle()
    assert second.ids == [a.id for a in [*while_away, after]]
    assert first.ids == [a.id for a in before]

    fresh = Recorder()  # another durable name starts from the beginning of the stream
    await consumer.subscribe(subjects.ALL_ALERTS, fresh, durable="another")
    await eventually(lambda: len(fresh.envelopes) == 11)
    assert fresh.ids == [a.id for a in [*before, *while_away, after]]
    await consumer.close()


async def test_a_durable_consumer_resumes_on_a_new_bus_connection(broker: MemoryBroker, pub: MemoryBus) -> None:
    one = MemoryBus("ledger", broker)
    first = Recorder()
    await one.subscribe(subjects.ALL_ALERTS, first, durable="ledger-alerts")
    await pub.publish(ALERT_SUBJECT, make_alert())
    await eventually(lambda: len(first.envelopes) == 1)
    await one.close()
    later = make_alert()
    await pub.publish(ALERT_SUBJECT, later)

    two = MemoryBus("ledger", broker)  # the restarted service
    second = Recorder()
    await two.subscribe(subjects.ALL_ALERTS, second, durable="ledger-alerts")
    await eventually(lambda: len(second.envelopes) == 1)
    await settle()
    assert second.ids == [later.id]
    await two.close()


async def test_a_durable_consumer_only_sees_the_subjects_of_its_filter(broker: MemoryBroker, pub: MemoryBus) -> None:
    consumer = MemoryBus("consumer", broker)
    recorder = Recorder()
    await consumer.subscribe(subjects.alert("critical"), recorder, durable="critical-only")
    warning, critical = make_alert(), make_alert()
    await pub.publish(subjects.alert("warning"), warning)
    await pub.publish(subjects.alert("critical"), critical)
    await eventually(lambda: len(recorder.envelopes) == 1)
    await settle()
    assert recorder.ids == [critical.id]
    await consumer.close()


# --- failures and dead letters ----------------------------------------------------------------


async def test_a_failing_handler_is_retried_then_dead_lettered_after_max_deliver(
    broker: MemoryBroker, pub: MemoryBus, dlq: Recorder
) -> None:
    consumer = MemoryBus("ledger", broker, max_deliver=3)
    deliveries: list[int] = []

    async def always_fails(envelope: Envelope) -> None:
        deliveries.append(envelope.delivery)
        raise RuntimeError("disk full")

    await consumer.subscribe(subjects.ALL_ALERTS, always_fails, durable="failing")
    alert = make_alert()
    await pub.publish(ALERT_SUBJECT, alert)
    await eventually(lambda: len(dlq.envelopes) == 1)
    await settle()
    assert deliveries == [1, 2, 3]
    letter = dlq.envelopes[0].message
    assert isinstance(letter, DeadLetter)
    assert dlq.envelopes[0].subject == "dlq.ledger"
    assert letter.service == "ledger"
    assert letter.subject == ALERT_SUBJECT
    assert "handler failed after 3 deliveries" in letter.reason and "disk full" in letter.reason
    assert letter.raw == schemas.encode(alert)
    assert letter.headers["Nats-Msg-Id"] == alert.id
    assert dead_letters_counted(consumer, "handler") == 1
    assert consumer.metrics.registry.get_sample_value(
        "tradewire_ledger_handler_errors_total", {"subject_class": "alert.warning"}
    ) == 3

    # the consumer moved on: the next message is delivered (and fails on its own)
    await pub.publish(ALERT_SUBJECT, make_alert())
    await eventually(lambda: len(deliveries) == 6)
    await consumer.close()


async def test_a_handler_that_recovers_on_retry_is_not_dead_lettered(
    broker: MemoryBroker, pub: MemoryBus, dlq: Recorder
) -> None:
    consumer = MemoryBus("ledger", broker, max_deliver=5)
    deliveries: list[int] = []

    async def flaky(envelope: Envelope) -> None:
        deliveries.append(envelope.delivery)
        if len(deliveries) < 3:
            raise ConnectionError("database restarting")

    await consumer.subscribe(subjects.ALL_ALERTS, flaky, durable="flaky")
    await pub.publish(ALERT_SUBJECT, make_alert())
    await eventually(lambda: len(deliveries) == 3)
    await settle()
    assert deliveries == [1, 2, 3]
    assert dlq.envelopes == []
    assert dead_letters_counted(consumer, "handler") == 0
    # a message that finally succeeded counts as consumed once, so the lockstep replay can balance
    assert consumer.stats.consumed == {subjects.ALL_ALERTS: 1}
    await consumer.close()


async def test_a_dead_lettered_message_counts_as_consumed_once(
    broker: MemoryBroker, pub: MemoryBus, dlq: Recorder
) -> None:
    consumer = MemoryBus("ledger", broker, max_deliver=2)

    async def always_fails(envelope: Envelope) -> None:
        raise RuntimeError("nope")

    await consumer.subscribe(subjects.ALL_ALERTS, always_fails, durable="counted")
    await pub.publish(ALERT_SUBJECT, make_alert())
    await eventually(lambda: len(dlq.envelopes) == 1)
    assert consumer.stats.consumed == {subjects.ALL_ALERTS: 1}
    assert consumer.stats.published == {"dlq.ledger": 1}
    await consumer.close()


async def test_permanent_error_dead_letters_without_retry(
    broker: MemoryBroker, pub: MemoryBus, dlq: Recorder
) -> None:
    consumer = MemoryBus("risk", broker, max_deliver=5)
    deliveries: list[int] = []

    async def refuses(envelope: Envelope) -> None:
        deliveries.append(envelope.delivery)
        raise PermanentError("unknown instrument")

    await consumer.subscribe(subjects.ALL_ALERTS, refuses, durable="refuses")
    alert = make_alert()
    await pub.publish(ALERT_SUBJECT, alert)
    await eventually(lambda: len(dlq.envelopes) == 1)
    await settle()
    assert deliveries == [1]
    letter = dlq.envelopes[0].message
    assert isinstance(letter, DeadLetter)
    assert letter.reason == "rejected: unknown instrument"
    assert letter.raw == schemas.encode(alert)
    assert dead_letters_counted(consumer, "rejected") == 1
    assert dead_letters_counted(consumer, "handler") == 0
    await consumer.close()


async def test_a_failing_core_handler_is_dead_lettered_at_once(
    broker: MemoryBroker, pub: MemoryBus, dlq: Recorder
) -> None:
    consumer = MemoryBus("signals", broker, max_deliver=5)
    calls: list[int] = []

    async def fails(envelope: Envelope) -> None:
        calls.append(envelope.delivery)
        raise ValueError("bad bar")

    await consumer.subscribe("md.bar.>", fails)
    bar = make_bar()
    await pub.publish(BAR_SUBJECT, bar)
    await eventually(lambda: len(dlq.envelopes) == 1)
    assert calls == [1]
    letter = dlq.envelopes[0].message
    assert isinstance(letter, DeadLetter)
    assert "handler failed after 1 deliveries" in letter.reason
    assert letter.raw == schemas.encode(bar)
    await consumer.close()


@pytest.mark.parametrize("durable", [None, "bytes-in"], ids=["core", "durable"])
async def test_undecodable_bytes_are_dead_lettered_with_the_field_and_counted(
    broker: MemoryBroker, pub: MemoryBus, dlq: Recorder, durable: str | None
) -> None:
    consumer = MemoryBus("risk", broker)
    recorder = Recorder()
    subject = ALERT_SUBJECT if durable else BAR_SUBJECT
    pattern = subjects.ALL_ALERTS if durable else "md.bar.>"
    await consumer.subscribe(pattern, recorder, durable=durable)
    wire = json.loads(schemas.encode(make_bar()))
    wire["close"] = "NaN"
    bad_field = json.dumps(wire).encode()
    not_json = b"\x00\x01 definitely not json"
    await pub.publish_raw(subject, bad_field, {"Nats-Msg-Id": "bad-1", "Authorization": "secret"})
    await pub.publish_raw(subject, not_json, {"Nats-Msg-Id": "bad-2"})
    good = make_bar() if not durable else make_alert()
    await pub.publish(subject, good)
    await eventually(lambda: len(dlq.envelopes) == 2 and len(recorder.envelopes) == 1)
    await settle()
    assert recorder.ids == [good.id]  # the service kept running
    letters = [e.message for e in dlq.envelopes]
    assert all(isinstance(m, DeadLetter) for m in letters)
    first, second = letters
    assert isinstance(first, DeadLetter) and isinstance(second, DeadLetter)
    assert first.reason.startswith("undecodable: ") and "close" in first.reason
    assert first.raw == bad_field and first.subject == subject and first.service == "risk"
    assert first.headers == {"Nats-Msg-Id": "bad-1"}  # credentials never end up in the DLQ
    assert second.reason.startswith("undecodable: ") and second.raw == not_json
    assert dead_letters_counted(consumer, "decode") == 2
    assert consumer.stats.consumed[pattern] == 3
    await consumer.close()


async def test_dead_letters_of_the_same_bytes_share_an_id_so_the_stream_keeps_one(
    broker: MemoryBroker, pub: MemoryBus, dlq: Recorder
) -> None:
    consumer = MemoryBus("risk", broker)
    await consumer.subscribe("md.bar.>", Recorder())
    await pub.publish_raw(BAR_SUBJECT, b"garbage")
    await pub.publish_raw(BAR_SUBJECT, b"garbage")
    await eventually(lambda: dead_letters_counted(consumer, "decode") == 2)
    await settle()
    assert len(dlq.envelopes) == 1
    await consumer.close()


# --- KV and request/reply ---------------------------------------------------------------------


async def test_kv_returns_none_for_a_missing_key_and_the_last_value_put(broker: MemoryBroker) -> None:
    one, two = MemoryBus("risk", broker), MemoryBus("datafeed", broker)
    assert await one.kv_get("trading_state") is None
    await one.kv_put("trading_state", b"HALTED")
    assert await one.kv_get("trading_state") == b"HALTED"
    assert await two.kv_get("trading_state") == b"HALTED"  # one bucket per broker
    await two.kv_put("trading_state", b"ACTIVE")
    assert await one.kv_get("trading_state") == b"ACTIVE"
    assert await one.kv_get("other") is None
    assert await MemoryBus("x", MemoryBroker()).kv_get("trading_state") is None


async def test_gather_collects_the_replies_of_several_responders(broker: MemoryBroker) -> None:
    responders = [MemoryBus(name, broker) for name in ("alpha", "beta", "gamma")]
    requests: list[bytes] = []
    for bus in responders:

        async def answer(data: bytes, name: str = bus.service) -> bytes:
            requests.append(data)
            return f"{name}:{data.decode()}".encode()

        await bus.serve("ctl.test", answer)
    asker = MemoryBus("asker", broker)
    replies = await asker.gather("ctl.test", b"ping", expected=3, timeout=2.0)
    assert sorted(replies) == [b"alpha:ping", b"beta:ping", b"gamma:ping"]
    assert requests == [b"ping"] * 3

    loop = asyncio.get_running_loop()
    started = loop.time()
    replies = await asker.gather("ctl.test", b"again", expected=5, timeout=0.2)
    assert len(replies) == 3  # all there are, after the timeout
    assert loop.time() - started >= 0.19
    assert await asker.gather("ctl.nobody", b"", expected=1, timeout=0.05) == []
    assert not any(s.pattern.startswith("_INBOX.") for s in broker.core_subs)  # inboxes cleaned up
    for bus in responders:
        await bus.close()


# --- counters ---------------------------------------------------------------------------------


async def test_stats_count_published_per_subject_and_consumed_per_pattern(
    broker: MemoryBroker, pub: MemoryBus
) -> None:
    consumer = MemoryBus("consumer", broker)
    await consumer.subscribe("md.bar.>", Recorder())
    await consumer.subscribe("md.bar.*.*.1m", Recorder())
    await consumer.subscribe(subjects.ALL_ALERTS, Recorder(), durable="counting")
    core_on_stream = Recorder()
    await consumer.subscribe(subjects.ALL_ALERTS, core_on_stream)
    eth = subjects.bar("BYBIT", "ETHUSDT", "5m")
    for _ in range(3):
        await pub.publish(BAR_SUBJECT, make_bar())
    await pub.publish(eth, make_bar(instrument="ETHUSDT.BYBIT"))
    alert = make_alert()
    await pub.publish(ALERT_SUBJECT, alert)
    await pub.publish(ALERT_SUBJECT, alert)  # duplicate: dropped by the stream, not counted
    await pub.publish(subjects.STATS, make_alert())  # the control plane is never counted
    await eventually(lambda: consumer.stats.consumed.get("md.bar.>") == 4 and len(core_on_stream.envelopes) == 2)
    await settle()
    assert dict(pub.stats.published) == {BAR_SUBJECT: 3, eth: 1, ALERT_SUBJECT: 1}
    assert dict(consumer.stats.consumed) == {"md.bar.>": 4, "md.bar.*.*.1m": 3, subjects.ALL_ALERTS: 1}
    assert dict(consumer.stats.published) == {}
    body = json.loads(stats_reply(pub))
    assert body["service"] == "publisher"
    assert body["published"] == {BAR_SUBJECT: 3, eth: 1, ALERT_SUBJECT: 1}
    assert body["consumed"] == {}
    await consumer.close()


async def test_close_stops_delivery(broker: MemoryBroker, pub: MemoryBus) -> None:
    consumer = MemoryBus("consumer", broker)
    core, durable = Recorder(), Recorder()
    await consumer.subscribe("md.bar.>", core)
    await consumer.subscribe(subjects.ALL_ALERTS, durable, durable="closing")
    await pub.publish(BAR_SUBJECT, make_bar())
    await pub.publish(ALERT_SUBJECT, make_alert())
    await eventually(lambda: len(core.envelopes) == 1 and len(durable.envelopes) == 1)
    await consumer.close()
    await pub.publish(BAR_SUBJECT, make_bar())
    await pub.publish(ALERT_SUBJECT, make_alert())
    await settle()
    assert (len(core.envelopes), len(durable.envelopes)) == (1, 1)
    assert broker.core_subs == []
