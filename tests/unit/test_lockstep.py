"""Lockstep replays: the pipeline is quiet only when every subscription consumed what was published."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from decimal import Decimal

import msgspec
import pytest

from tradewire_common import subjects
from tradewire_common.bus import Envelope, Handler, MemoryBroker, MemoryBus
from tradewire_common.config import Config
from tradewire_common.ids import derive_id
from tradewire_common.lockstep import Lockstep, ServiceStats, balanced
from tradewire_common.schemas import Alert, Bar
from tradewire_common.service import Service

BTC_1M = subjects.bar("BINANCE", "BTCUSDT", "1m")
ETH_5M = subjects.bar("BYBIT", "ETHUSDT", "5m")
FORWARD = "toy.forward"
_n = itertools.count(1)


def stats(service: str, published: dict[str, int] | None = None, consumed: dict[str, int] | None = None,
          instance: str = "") -> ServiceStats:
    """A ``ctl.stats`` reply as the driver decodes it."""
    body = {"service": service, "published": published or {}, "consumed": consumed or {}, "ready": True,
            "instance": instance or service}
    return msgspec.convert(body, ServiceStats)


# --- balanced() -------------------------------------------------------------------------------


def test_nothing_published_and_nothing_consumed_is_balanced() -> None:
    assert balanced([]) is True
    assert balanced([stats("datafeed"), stats("signals")]) is True


def test_a_subscription_that_consumed_everything_published_is_balanced() -> None:
    assert balanced([stats("datafeed", {BTC_1M: 3}), stats("signals", consumed={BTC_1M: 3})])


def test_a_subscription_behind_its_publishers_is_not_balanced() -> None:
    assert not balanced([stats("datafeed", {BTC_1M: 3}), stats("signals", consumed={BTC_1M: 2})])


def test_a_subscription_ahead_of_its_publishers_is_not_balanced() -> None:
    # e.g. the publisher's reply came from before a publish the consumer already saw
    assert not balanced([stats("datafeed", {BTC_1M: 3}), stats("signals", consumed={BTC_1M: 4})])


def test_wildcard_patterns_sum_every_subject_they_match() -> None:
    published = stats("datafeed", {BTC_1M: 2, ETH_5M: 1, "md.quote.BINANCE.BTCUSDT": 7})
    assert balanced([published, stats("signals", consumed={"md.bar.>": 3})])
    assert balanced([published, stats("execution", consumed={"md.bar.BINANCE.>": 2})])
    assert balanced([published, stats("ledger", consumed={"md.bar.*.*.5m": 1})])
    assert balanced([published, stats("ledger", consumed={"md.>": 10})])
    assert not balanced([published, stats("signals", consumed={"md.bar.>": 2})])
    assert not balanced([published, stats("execution", consumed={"md.bar.BINANCE.>": 3})])


def test_publishers_in_several_services_add_up() -> None:
    signals = stats("signals", {"sig.sma": 2})
    other = stats("signals2", {"sig.rsi": 1})
    assert balanced([signals, other, stats("risk", consumed={"sig.*": 3})])
    assert not balanced([signals, other, stats("risk", consumed={"sig.*": 2})])


def test_every_consumer_must_be_caught_up_not_just_one() -> None:
    published, signals = stats("datafeed", {BTC_1M: 4}), stats("signals", consumed={"md.bar.>": 4})
    assert not balanced([published, signals, stats("ledger", consumed={"md.bar.>": 3})])
    assert balanced([published, signals, stats("ledger", consumed={"md.bar.>": 4})])


def test_instances_of_one_service_share_the_work_of_a_pattern() -> None:
    # two risk instances in a queue group: between them they consumed every signal once
    published = stats("signals", {"sig.sma": 5})
    assert balanced([published, stats("risk", consumed={"sig.*": 3}, instance="a"),
                     stats("risk", consumed={"sig.*": 2}, instance="b")])
    assert not balanced([published, stats("risk", consumed={"sig.*": 3}, instance="a"),
                         stats("risk", consumed={"sig.*": 1}, instance="b")])
    assert not balanced([published, stats("risk", consumed={"sig.*": 3}, instance="a"),
                         stats("risk", consumed={"sig.*": 3}, instance="b")])


def test_subjects_nobody_subscribes_to_do_not_matter() -> None:
    assert balanced([stats("ledger", {subjects.PORTFOLIO_SNAPSHOT: 9, "dlq.ledger": 1})])


# --- Lockstep over toy services ---------------------------------------------------------------


def make_bar(seq: int) -> Bar:
    return Bar(
        id=derive_id("lockstep-bar", next(_n)), ts_event=seq, ts_init=seq, instrument_id="BTCUSDT.BINANCE",
        interval="1m", open=Decimal("10"), high=Decimal("11"), low=Decimal("9"), close=Decimal("10"),
        volume=Decimal("1"), seq=seq,
    )


class Toy(Service):
    """A toy service on the memory bus: the real lifecycle (``ctl.stats``, readiness), toy handlers."""

    def __init__(self, name: str, broker: MemoryBroker, max_deliver: int = 5) -> None:
        super().__init__(Config(), MemoryBus(name, broker, max_deliver=max_deliver))
        self.name = name
        self.routes: list[tuple[str, Handler, str | None]] = []
        self.seen: list[int] = []

    def route(self, pattern: str, handler: Handler, durable: str | None = None) -> Toy:
        self.routes.append((pattern, handler, durable))
        return self

    async def on_start(self) -> None:
        for pattern, handler, durable in self.routes:
            await self.bus.subscribe(pattern, handler, durable=durable)


@pytest.fixture
def broker() -> MemoryBroker:
    return MemoryBroker()


@pytest.fixture
async def pipeline(broker: MemoryBroker) -> AsyncIterator[tuple[Toy, Toy, Toy]]:
    """datafeed → alpha (forwards each bar after 20 ms) → beta (records it after 20 ms)."""
    driver, alpha, beta = Toy("datafeed", broker), Toy("alpha", broker), Toy("beta", broker)

    async def forward(envelope: Envelope) -> None:
        await asyncio.sleep(0.02)
        await alpha.bus.publish(FORWARD, envelope.message)

    async def record(envelope: Envelope) -> None:
        await asyncio.sleep(0.02)
        assert isinstance(envelope.message, Bar)
        beta.seen.append(envelope.message.seq)

    alpha.route(subjects.ALL_BARS, forward)
    beta.route(FORWARD, record)
    for toy in (driver, alpha, beta):
        await toy.start()
    yield driver, alpha, beta
    for toy in (driver, alpha, beta):
        await toy.stop()


async def test_wait_quiet_returns_only_after_every_message_was_consumed_downstream(
    pipeline: tuple[Toy, Toy, Toy],
) -> None:
    driver, _alpha, beta = pipeline
    lockstep = Lockstep(driver.bus, ("alpha", "beta"), timeout_s=10)
    for seq in range(5):
        await driver.bus.publish(BTC_1M, make_bar(seq))
    assert beta.seen == []
    assert await lockstep.wait_quiet() is True
    assert beta.seen == [0, 1, 2, 3, 4]


async def test_wait_quiet_after_each_bar_keeps_the_pipeline_in_lockstep(pipeline: tuple[Toy, Toy, Toy]) -> None:
    driver, alpha, beta = pipeline
    lockstep = Lockstep(driver.bus, ("alpha", "beta"), timeout_s=10)
    for seq in range(4):
        await driver.bus.publish(BTC_1M, make_bar(seq))
        assert await lockstep.wait_quiet() is True
        assert beta.seen == list(range(seq + 1))
    assert alpha.bus.stats.published[FORWARD] == 4
    assert beta.bus.stats.consumed[FORWARD] == 4


async def test_wait_quiet_on_an_idle_pipeline_returns_at_once(pipeline: tuple[Toy, Toy, Toy]) -> None:
    driver, _, _ = pipeline
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await Lockstep(driver.bus, ("alpha", "beta"), timeout_s=10).wait_quiet() is True
    assert loop.time() - started < 1.0


async def test_wait_quiet_gives_up_after_its_timeout_when_a_service_is_stuck(broker: MemoryBroker) -> None:
    driver, stuck = Toy("datafeed", broker), Toy("stuck", broker)
    release = asyncio.Event()

    async def blocked(envelope: Envelope) -> None:
        await release.wait()

    stuck.route(subjects.ALL_BARS, blocked)
    await driver.start()
    await stuck.start()
    await driver.bus.publish(BTC_1M, make_bar(0))
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await Lockstep(driver.bus, ("stuck",), timeout_s=0.3, round_timeout_s=0.1).wait_quiet() is False
    assert 0.3 <= loop.time() - started < 3.0
    release.set()
    await driver.stop()
    await stuck.stop()


async def test_wait_quiet_waits_for_a_service_that_does_not_answer(broker: MemoryBroker) -> None:
    driver = Toy("datafeed", broker)
    await driver.start()
    lockstep = Lockstep(driver.bus, ("ghost",), timeout_s=0.3, round_timeout_s=0.05)
    assert await lockstep.wait_quiet() is False
    await driver.stop()


async def test_wait_ready_names_the_services_that_never_answered(broker: MemoryBroker) -> None:
    driver, alpha = Toy("datafeed", broker), Toy("alpha", broker)
    await driver.start()
    await alpha.start()
    lockstep = Lockstep(driver.bus, ("alpha", "ghost"), round_timeout_s=0.05)
    with pytest.raises(TimeoutError, match=r"services not ready after .*: ghost$"):
        await lockstep.wait_ready(0.2)
    await Lockstep(driver.bus, ("alpha",), round_timeout_s=0.05).wait_ready(1.0)
    await driver.stop()
    await alpha.stop()


async def test_wait_quiet_balances_after_a_durable_handler_failed_once_and_was_retried(
    broker: MemoryBroker,
) -> None:
    # alpha turns bars into alerts (a stream subject); beta's durable consumer fails the first try
    driver, alpha, beta = Toy("datafeed", broker), Toy("alpha", broker), Toy("beta", broker, max_deliver=5)
    attempts: list[int] = []

    async def to_alert(envelope: Envelope) -> None:
        n = next(_n)
        alert = Alert(id=derive_id("lockstep-alert", n), ts_event=n, ts_init=n, severity="info",
                      title=envelope.message.id, body="", source="alpha")
        await alpha.bus.publish(subjects.alert("info"), alert)

    async def flaky(envelope: Envelope) -> None:
        attempts.append(envelope.delivery)
        if envelope.delivery == 1:
            raise RuntimeError("transient")

    alpha.route(subjects.ALL_BARS, to_alert)
    beta.route(subjects.ALL_ALERTS, flaky, durable="beta-alerts")
    for toy in (driver, alpha, beta):
        await toy.start()
    lockstep = Lockstep(driver.bus, ("alpha", "beta"), timeout_s=3, round_timeout_s=0.5)
    for seq in range(2):
        await driver.bus.publish(BTC_1M, make_bar(seq))
        assert await lockstep.wait_quiet() is True
    assert attempts == [1, 2, 1, 2]
    for toy in (driver, alpha, beta):
        await toy.stop()
