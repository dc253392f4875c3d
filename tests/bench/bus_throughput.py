"""Bus throughput: Tradewire's NatsBus (codec + validation + dispatch) against raw nats-py.

Both publish N Bar messages on core NATS to a subscriber in the same process on a bundled
nats-server; the raw peer does msgspec decoding too, so the ratio is the cost of Tradewire's
envelope (metrics, dead-letter handling, counters). Prints medians of --repeats runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import nats

from tradewire_common import schemas
from tradewire_common.bus import Envelope, NatsBus
from tradewire_common.cli.embedded_nats import EmbeddedNats
from tradewire_common.ids import derive_id
from tradewire_common.schemas import Bar


def make_bars(n: int) -> list[Bar]:
    return [Bar(id=derive_id("b", i), ts_event=i, ts_init=i, instrument_id="BTCUSDT.BINANCE", interval="1m",
                open=Decimal("100.5"), high=Decimal("101"), low=Decimal("99.5"), close=Decimal("100.25"),
                volume=Decimal("12.5"), seq=i) for i in range(n)]


async def tradewire_run(url: str, bars: list[Bar]) -> float:
    pub, sub = NatsBus("benchpub", url), NatsBus("benchsub", url)
    pub.report_stats = sub.report_stats = False
    await pub.connect()
    await sub.connect()
    done = asyncio.Event()
    count = 0

    async def handler(_env: Envelope) -> None:
        nonlocal count
        count += 1
        if count == len(bars):
            done.set()

    await sub.subscribe("bench.tw", handler)
    start = time.perf_counter()
    for bar in bars:
        await pub.publish_raw("bench.tw", schemas.encode(bar))
    await done.wait()
    elapsed = time.perf_counter() - start
    await pub.close()
    await sub.close()
    return len(bars) / elapsed


async def raw_run(url: str, bars: list[Bar]) -> float:
    nc = await nats.connect(url)
    nc2 = await nats.connect(url)
    done = asyncio.Event()
    count = 0

    async def cb(msg: nats.aio.msg.Msg) -> None:
        nonlocal count
        schemas.decode(msg.data)
        count += 1
        if count == len(bars):
            done.set()

    await nc2.subscribe("bench.raw", cb=cb)
    await nc2.flush()
    start = time.perf_counter()
    for bar in bars:
        await nc.publish("bench.raw", schemas.encode(bar))
    await done.wait()
    elapsed = time.perf_counter() - start
    await nc.close()
    await nc2.close()
    return len(bars) / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    bars = make_bars(args.messages)
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedNats(Path(tmp)).start()
        try:
            tw, raw = [], []
            for _ in range(args.repeats):
                raw.append(await raw_run(server.url, bars))
                tw.append(await tradewire_run(server.url, bars))
        finally:
            server.stop()
    tw_med, raw_med = statistics.median(tw), statistics.median(raw)
    print(f"messages per run         {args.messages}")
    print(f"raw nats-py + decode     {raw_med:>10,.0f} msg/s (median of {args.repeats})")
    print(f"tradewire NatsBus        {tw_med:>10,.0f} msg/s (median of {args.repeats})")
    print(f"ratio tradewire / raw    {tw_med / raw_med:>10.2f}")


if __name__ == "__main__":
    asyncio.run(main())
