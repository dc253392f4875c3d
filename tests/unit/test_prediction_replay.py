"""A replay's recorded resolution (``datafeed.replay[].resolution``): the file format, its errors, and the
datafeed publishing it once, after the last bar, on ``pm.resolved.<venue>`` at its own event time."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal as D
from pathlib import Path

import pytest

from tradewire_common import subjects
from tradewire_common.bus import Envelope, MemoryBroker, MemoryBus
from tradewire_common.clock import SimulatedClock
from tradewire_common.config import Config, DatafeedConfig, ReplaySource
from tradewire_common.schemas import Bar, MarketResolved, Message
from tradewire_datafeed.readers_resolution import ResolutionFileError, read_resolution, resolution_id
from tradewire_datafeed.service import DatafeedService

RESOLUTION = {"venue": "KALSHI", "market_id": "KX-1", "resolution": "NO", "ts": "2024-03-01T12:00:00Z",
              "payouts": {"KX-1-YES.KALSHI": 0, "KX-1-NO.KALSHI": "1"}, "source": "test"}
MAR1_NOON = 1_709_294_400_000_000_000


def test_a_resolution_file_reads_as_market_resolved_with_the_shared_id(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(RESOLUTION))
    resolved = read_resolution(path)
    assert resolved.id == resolution_id("KALSHI", "KX-1")
    assert (resolved.ts_event, resolved.venue, resolved.market_id, resolved.resolution) == (
        MAR1_NOON, "KALSHI", "KX-1", "NO")
    assert {p.instrument_id: p.payout for p in resolved.payouts} == {"KX-1-YES.KALSHI": 0, "KX-1-NO.KALSHI": 1}
    for ts in (1_709_294_400, 1_709_294_400_000, MAR1_NOON):  # seconds, ms, ns
        path.write_text(json.dumps({**RESOLUTION, "ts": ts}))
        assert read_resolution(path).ts_event == MAR1_NOON


@pytest.mark.parametrize(("change", "message"), [
    ({"payouts": {"KX-1-YES.KALSHI": "1.5"}}, "payout must be within 0..1"),
    ({"payouts": {}}, "at least one outcome payout"),
    ({"ts": "yesterday"}, "neither ISO 8601 nor an epoch"),
    ({"market_id": None}, "missing field 'market_id'"),
])
def test_a_bad_resolution_file_names_the_file_and_the_problem(tmp_path: Path, change: dict[str, object],
                                                              message: str) -> None:
    data = {**RESOLUTION, **change}
    data = {k: v for k, v in data.items() if v is not None}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ResolutionFileError, match=message) as info:
        read_resolution(path)
    assert str(path) in str(info.value)


async def test_the_replay_publishes_the_resolution_once_after_its_last_bar(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(json.dumps(RESOLUTION))
    for side in ("yes", "no"):
        (tmp_path / f"{side}.csv").write_text("timestamp,open,high,low,close,volume\n"
                                              "2024-02-29,0.4,0.5,0.3,0.45,10\n2024-03-01,0.45,0.5,0.1,0.2,5\n")
    sources = tuple(ReplaySource(path=str(tmp_path / f"{side}.csv"), instrument_id=f"KX-1-{side.upper()}.KALSHI",
                                 interval="1d", resolution=str(tmp_path / "r.json")) for side in ("yes", "no"))
    config = Config(datafeed=DatafeedConfig(replay=sources, lockstep_services=()))
    broker = MemoryBroker()
    clock = SimulatedClock()
    seen: list[Message] = []

    async def collect(envelope: Envelope) -> None:
        seen.append(envelope.message)

    probe = MemoryBus("probe", broker)
    await probe.subscribe(subjects.ALL_BARS, collect)
    await probe.subscribe(subjects.ALL_RESOLUTIONS, collect)
    feed = DatafeedService(config, MemoryBus("datafeed", broker, clock=clock), clock=clock)
    assert len(feed.resolutions) == 1  # two sources, one file
    await feed.start()
    try:
        async with asyncio.timeout(10):
            while not feed.done:
                await asyncio.sleep(0.01)
        await probe.wait_idle(5)
    finally:
        await feed.stop()
    assert [type(m).__name__ for m in seen] == ["Bar"] * 4 + ["MarketResolved"]
    resolved = seen[-1]
    assert isinstance(resolved, MarketResolved) and resolved.ts_event == MAR1_NOON
    assert resolved.ts_init >= max(m.ts_event for m in seen if isinstance(m, Bar))
    assert clock.now_ns() == MAR1_NOON and resolved.payouts[1].payout == D(1)


def test_a_resolution_written_by_tradewire_markets_history_reads_back_to_the_nanosecond(tmp_path: Path) -> None:
    from tradewire_datafeed.readers import format_ts

    path = tmp_path / "r.json"
    path.write_text(json.dumps({**RESOLUTION, "ts": format_ts(MAR1_NOON + 123_456_789)}))
    assert read_resolution(path).ts_event == MAR1_NOON + 123_456_789
