"""Bad input over a real broker becomes dead letters: kept with the reason and the raw bytes,
stored once by the ledger, counted by each service, and the pipeline carries on unharmed."""

from __future__ import annotations

import asyncio
import base64
import re
from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.e2e.reference import RefParams, read_bars, simulate
from tests.support.inproc import InProcessStack
from tests.support.nats_server import NatsServer
from tests.support.stack import DEMO_CSV, demo_config
from tradewire_common import subjects
from tradewire_common.bus import NatsBus
from tradewire_common.config import Config, load_config
from tradewire_common.ids import derive_id
from tradewire_common.schemas import Bar, DeadLetter, Side, Signal, encode

pytestmark = pytest.mark.timeout(120)

BARS = 300
BTC = "BTCUSDT.BINANCE"
BAR_SUBJECT = subjects.bar("BINANCE", "BTCUSDT", "1m")
SIGNAL_SUBJECT = subjects.signal("sma_cross")
#: who consumes what: bars go to signals, execution (paper venue) and the ledger; signals to risk and the ledger
BAR_CONSUMERS = ("signals", "execution", "ledger")
SIGNAL_CONSUMERS = ("risk", "ledger")
SERVICES = ("ledger", "execution", "risk", "signals")


def _tampered(message: Bar | Signal, **changes: Any) -> bytes:
    """The wire form of ``message`` with some JSON fields replaced (bypassing the checks)."""
    body: dict[str, Any] = msgspec.json.decode(encode(message))
    body.update(changes)
    return msgspec.json.encode(body)


_GOOD_BAR = Bar(id=derive_id("dlq-test-bar"), ts_event=1, ts_init=1, instrument_id=BTC, interval="1m",
                open=Decimal("47000"), high=Decimal("47100"), low=Decimal("46900"), close=Decimal("47050"),
                volume=Decimal("12"))
_GOOD_SIGNAL = Signal(id=derive_id("dlq-test-signal"), ts_event=1, ts_init=1, strategy_id="sma_cross",
                      instrument_id=BTC, side=Side.BUY, price=Decimal("47050"), confidence=0.5, reason="test")

#: (subject, raw bytes, what the reason must say, which services consume it)
BAD_INPUT: tuple[tuple[str, bytes, str, tuple[str, ...]], ...] = (
    (BAR_SUBJECT, b"\x00\xff garbage {not json", "undecodable: JSON is malformed", BAR_CONSUMERS),
    (BAR_SUBJECT, _tampered(_GOOD_BAR, close="-42000"), "close must be positive, got -42000", BAR_CONSUMERS),
    (SIGNAL_SUBJECT, b"\xde\xad\xbe\xef", "undecodable:", SIGNAL_CONSUMERS),
    (SIGNAL_SUBJECT, _tampered(_GOOD_SIGNAL, confidence=2), "confidence must be within 0..1, got 2.0",
     SIGNAL_CONSUMERS),
)
EXPECTED_LETTERS = sum(len(consumers) for *_, consumers in BAD_INPUT)
#: dead letters each service publishes for one round of BAD_INPUT
PER_SERVICE = Counter(service for *_, consumers in BAD_INPUT for service in consumers)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "tw.toml"
    path.write_text(demo_config(limit=BARS, extra=f'path = "{tmp_path / "ledger.db"}"'))
    return load_config(path, environ={})


@pytest.fixture
async def probe(fresh_nats: NatsServer) -> AsyncIterator[NatsBus]:
    bus = NatsBus("probe", fresh_nats.url)
    await bus.connect()
    yield bus
    await bus.close()


async def inject(probe: NatsBus, round_: int) -> None:
    """Publish every bad input raw; JetStream ones under a fresh ``Nats-Msg-Id`` each round, so the
    stream really stores and redelivers them again (the same id would be dropped by the stream)."""
    for n, (subject, raw, _reason, _consumers) in enumerate(BAD_INPUT):
        headers = {"Nats-Msg-Id": f"bad-{round_}-{n}"} if subjects.stream_for(subject) else None
        await probe.publish_raw(subject, raw, headers)
    await probe.nc.flush()


def metric_total(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        m = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if m is None:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
    return total


async def dead_letter_counts(stack: InProcessStack) -> dict[str, float]:
    counts = {}
    for name in SERVICES:
        text = (await stack.get(name, "/metrics")).text
        counts[name] = metric_total(text, f"tradewire_{name}_dead_letters_total")
    return counts


async def stored_letters(stack: InProcessStack) -> list[dict[str, Any]]:
    response = await stack.get("ledger", "/v1/dead-letters?limit=1000")
    assert response.status_code == 200
    letters: list[dict[str, Any]] = response.json()
    return letters


async def eventually(check: Any, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def test_bad_messages_become_dead_letters_once_and_the_pipeline_carries_on(
    config: Config, fresh_nats: NatsServer, probe: NatsBus
) -> None:
    stack = InProcessStack(config, fresh_nats.url)
    await stack.start(SERVICES)
    try:
        await inject(probe, 1)

        async def all_stored() -> bool:
            return len(await stored_letters(stack)) >= EXPECTED_LETTERS

        await eventually(all_stored)
        letters = await stored_letters(stack)
        first_counts = await dead_letter_counts(stack)
        readiness = {name: (await stack.get(name, "/readyz")).status_code for name in SERVICES}

        # valid input afterwards: a replay that must produce exactly the model's results
        await stack.start_service("datafeed")
        await stack.wait_replay_done()
        summary = (await stack.get("ledger", "/v1/summary")).json()
        fills = (await stack.get("ledger", "/v1/fills?limit=100000")).json()

        # the same bad messages again (and a stored letter republished as a new stream message)
        await inject(probe, 2)
        again = msgspec.json.decode(msgspec.json.encode(letters[0]), type=DeadLetter)
        await probe.publish_raw(subjects.dead_letter(again.service), encode(again), {"Nats-Msg-Id": "republished"})

        async def redelivered() -> bool:
            counts = await dead_letter_counts(stack)
            ledger = (await stack.get("ledger", "/metrics")).text
            duplicates = metric_total(ledger, "tradewire_ledger_duplicates_total", type="DeadLetter")
            return all(counts[s] == 2 * PER_SERVICE[s] for s in SERVICES) and duplicates >= 1

        await eventually(redelivered)
        letters_after = await stored_letters(stack)
        summary_after = (await stack.get("ledger", "/v1/summary")).json()
        ready_after = {name: (await stack.get(name, "/readyz")).json()["ready"] for name in SERVICES}
    finally:
        await stack.close()

    # one dead letter per consuming service and bad message, with the reason and the raw bytes
    assert len(letters) == EXPECTED_LETTERS
    by_key = {(d["service"], d["subject"], base64.b64decode(d["raw"])): d for d in letters}
    assert len(by_key) == EXPECTED_LETTERS
    for subject, raw, reason, consumers in BAD_INPUT:
        for service in consumers:
            letter = by_key[(service, subject, raw)]
            assert reason in letter["reason"], letter["reason"]
            assert letter["received_subject"] == f"dlq.{service}"
            assert letter["type"] == "DeadLetter"
    sig_letters = [d for d in letters if d["subject"] == SIGNAL_SUBJECT]
    assert all(d["headers"].get("Nats-Msg-Id", "").startswith("bad-1-") for d in sig_letters)

    # each service counted its own, and stayed ready
    assert first_counts == {s: float(PER_SERVICE[s]) for s in SERVICES}
    assert readiness == dict.fromkeys(SERVICES, 200)
    assert ready_after == dict.fromkeys(SERVICES, True)

    # the pipeline was not disturbed: exactly the independent model's fills and equity
    model = simulate(read_bars(DEMO_CSV, BARS), RefParams())
    assert model.orders > 5
    assert summary["fills"] == len(fills) == len(model.fills)
    assert summary["orders"] == model.orders and summary["signals"] == model.signals
    assert Fraction(Decimal(summary["final_equity"])) == model.equity
    assert summary["dead_letters"] == EXPECTED_LETTERS

    # redelivered bad messages were dead-lettered (and counted) again, but stored only once
    assert sorted(d["id"] for d in letters_after) == sorted(d["id"] for d in letters)
    assert summary_after["dead_letters"] == EXPECTED_LETTERS
