"""Order round-trip latency through the execution service against each fake venue.

For each venue: a real nats-server (own store, free ports), the ledger and execution services in this process
(each with its own NATS connection), the fake venue on 127.0.0.1 with the unmodified client library; then, one
order at a time, a resting limit ``SubmitOrder`` is published on ``ord.cmd.<VENUE>`` (as risk does) and the
time until its ``OrderAccepted`` arrives on ``ord.evt.<strategy>`` is measured: NATS → execution (JetStream
consumer, state saved before the create leaves) → the client library → the fake (signature checked) → the
answer → the event published durably → a core subscriber. Each order is then cancelled and its
``OrderCanceled`` awaited before the next one is sent (untimed), so no order waits behind a cancel.

    .venv/bin/python tests/bench/venue_roundtrip.py [--orders 200] [--venues binance,alpaca,tradier,ibkr]

Prints p50/p90/p99/max per venue. By default each adapter keeps to its venue's published request rate (Alpaca
200/min, Tradier 120/min, ...), so with the create, the cancel and the order polling sharing one bucket a create
often waits for a token: ``--rate-limit 1000`` measures the path alone. Medians move with the machine's load:
quote them with the load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.inproc import InProcessStack  # noqa: E402
from tests.support.nats_server import NatsServer  # noqa: E402
from tradewire_common import subjects  # noqa: E402
from tradewire_common.bus import Envelope, NatsBus  # noqa: E402
from tradewire_common.config import config_from_dict  # noqa: E402
from tradewire_common.ids import derive_id  # noqa: E402
from tradewire_common.schemas import (  # noqa: E402
    CancelOrder,
    OrderAccepted,
    OrderCanceled,
    OrderRejected,
    OrderType,
    Side,
    SubmitOrder,
    TimeInForce,
)


@dataclass(frozen=True)
class VenueCase:
    """How to run one fake venue and configure execution for it."""

    name: str  # the venue name in Tradewire (``BINANCE``)
    fake: Callable[[], contextlib.AbstractAsyncContextManager[Any]]
    env: Callable[[Any], dict[str, str]]
    venue: Callable[[Any], dict[str, Any]]
    symbol: str  # instrument symbol (``BTCUSDT``)
    quantity: str
    limit_price: str  # resting: far from the market
    tif: TimeInForce = TimeInForce.GTC
    #: Prepares the fake (markets) before the services start.
    setup: Callable[[Any], None] = lambda _fake: None


@contextlib.asynccontextmanager
async def _binance() -> AsyncIterator[Any]:
    from tests.fakes.binance import FakeBinance

    venue = await FakeBinance().start()
    try:
        yield venue
    finally:
        await venue.stop()


@contextlib.asynccontextmanager
async def _started(factory: Callable[[], Any]) -> AsyncIterator[Any]:
    """An asyncio fake (``start()``/``stop()``) made by ``factory``."""
    venue = await factory().start()
    try:
        yield venue
    finally:
        await venue.stop()


PM_CONDITION = "0xdd22472e552920b8438158ea7238bfadfa4f736aa4cee91a6b86c39ead110917"
PM_YES = "21742633143463906290569050155826241533067272736897614950488156847949938836455"
PM_NO = "48331043336612883890938759509493159234755048973500640148014422747788308965732"
MANIFOLD_MARKET = "fakeMarket000000001"


def _threaded(factory: str) -> Callable[[], contextlib.AbstractAsyncContextManager[Any]]:
    """A fake started by its own sync context manager (a server thread)."""
    module, _, name = factory.partition(":")

    @contextlib.asynccontextmanager
    async def run() -> AsyncIterator[Any]:
        import importlib

        with getattr(importlib.import_module(module), name)() as fake:
            yield fake

    return run


def _cases() -> dict[str, VenueCase]:
    from tests.fakes import (
        alpaca_fake,
        binance,
        coinbase_fake,
        ibkr_fake,
        kraken_fake,
        manifold_fake,
        polymarket,
        tradier_fake,
    )

    def live(adapter: str, **kw: Any) -> Callable[[Any], dict[str, Any]]:
        return lambda fake: {"adapter": adapter, "mode": "sandbox", "url_override": fake.url,
                             "reconcile_interval_s": 0, **kw}

    return {
        "binance": VenueCase(
            "BINANCE", _binance,
            lambda _f: {"TRADEWIRE_BINANCE_API_KEY": binance.API_KEY, "TRADEWIRE_BINANCE_API_SECRET": binance.SECRET},
            live("ccxt", exchange="binance", symbols=["BTC/USDT"]), "BTCUSDT", "0.01", "30000.00"),
        "coinbase": VenueCase(
            "COINBASE", lambda: _started(coinbase_fake.FakeCoinbase.with_new_key),
            lambda f: {"TRADEWIRE_COINBASE_API_KEY": coinbase_fake.API_KEY,
                       "TRADEWIRE_COINBASE_API_SECRET": f.private_pem},
            live("ccxt", exchange="coinbase", symbols=["BTC/USD"]), "BTCUSD", "0.01", "30000.00"),
        "kraken": VenueCase(
            "KRAKEN", lambda: _started(kraken_fake.FakeKraken),
            lambda _f: {"TRADEWIRE_KRAKEN_API_KEY": kraken_fake.API_KEY,
                        "TRADEWIRE_KRAKEN_API_SECRET": kraken_fake.SECRET},
            live("ccxt", exchange="kraken", symbols=["BTC/USD"]), "BTCUSD", "0.01", "30000.0"),
        "alpaca": VenueCase(
            "ALPACA", _threaded("tests.fakes.alpaca_fake:alpaca_fake"),
            lambda _f: {"TRADEWIRE_ALPACA_API_KEY": alpaca_fake.KEY_ID,
                        "TRADEWIRE_ALPACA_API_SECRET": alpaca_fake.SECRET},
            live("alpaca", symbols=["AAPL"]), "AAPL", "1", "150.00", TimeInForce.DAY),
        "tradier": VenueCase(
            "TRADIER", _threaded("tests.fakes.tradier_fake:tradier_fake"),
            lambda _f: {"TRADEWIRE_TRADIER_API_KEY": tradier_fake.TOKEN, "TRADEWIRE_TRADIER_UID": tradier_fake.ACCOUNT},
            live("tradier", symbols=["AAPL"]), "AAPL", "1", "150.00", TimeInForce.DAY),
        "ibkr": VenueCase(
            "IBKR", _threaded("tests.fakes.ibkr_fake:ibkr_fake"),
            lambda _f: {"TRADEWIRE_IBKR_UID": ibkr_fake.ACCOUNT},
            live("ibkr", symbols=["AAPL"]), "AAPL", "1", "150.00", TimeInForce.DAY),
        "polymarket": VenueCase(
            "POLYMARKET", _threaded("tests.fakes.polymarket:polymarket_fake"),
            lambda _f: {"TRADEWIRE_POLYMARKET_API_SECRET": polymarket.WALLET_KEY},
            live("polymarket", symbols=[PM_YES, PM_NO]), PM_YES, "10", "0.20",
            setup=lambda fake: fake.add_market(PM_CONDITION, PM_YES, PM_NO, "Will the bench resolve YES?")),
        "manifold": VenueCase(
            "MANIFOLD", _threaded("tests.fakes.manifold_fake:manifold_fake"),
            lambda _f: {"TRADEWIRE_MANIFOLD_API_KEY": manifold_fake.API_KEY},
            live("manifold", symbols=[f"{MANIFOLD_MARKET}-YES", f"{MANIFOLD_MARKET}-NO"]),
            f"{MANIFOLD_MARKET}-YES", "10", "0.20",
            setup=lambda fake: fake.add_market(MANIFOLD_MARKET, "Will the bench resolve YES?", prob=0.5)),
    }


async def measure(case: VenueCase, orders: int, work: Path, rate_limit_per_s: float = 0.0) -> list[float]:
    server = NatsServer.started_in(work / f"nats-{case.name}")
    try:
        async with case.fake() as fake:
            os.environ.update(case.env(fake))
            case.setup(fake)
            config = config_from_dict({
                "execution": {"venues": [{"name": case.name, **case.venue(fake),
                                          "rate_limit_per_s": rate_limit_per_s}]},
                "ledger": {"path": str(work / f"ledger-{case.name}.db")},
            })
            stack = InProcessStack(config, server.url)
            probe = NatsBus("probe", server.url, auth=None)
            await probe.connect()
            answers: dict[str, asyncio.Future[float]] = {}
            canceled: dict[str, asyncio.Future[float]] = {}

            async def on_event(envelope: Envelope) -> None:
                message = envelope.message
                if isinstance(message, OrderCanceled):
                    done = canceled.get(message.client_order_id)
                    if done is not None and not done.done():
                        done.set_result(time.perf_counter())
                if isinstance(message, OrderAccepted | OrderRejected):
                    future = answers.get(message.client_order_id)
                    if future is not None and not future.done():
                        if isinstance(message, OrderRejected):
                            future.set_exception(RuntimeError(f"rejected: {message.reason}"))
                        else:
                            future.set_result(time.perf_counter())

            await probe.subscribe(subjects.STRATEGY_ORDER_EVENTS, on_event)
            await stack.start(("ledger", "execution"))
            latencies: list[float] = []
            try:
                instrument = f"{case.symbol}.{case.name}"
                for n in range(orders + 5):  # the first 5 warm the connections up (not counted)
                    coid = f"tw-rt-{case.name.lower()[:6]}-{n:05d}"
                    now = time.time_ns()
                    order = SubmitOrder(
                        id=derive_id("roundtrip", case.name, n), ts_event=now, ts_init=now, strategy_id="bench",
                        instrument_id=instrument, client_order_id=coid, side=Side.BUY, order_type=OrderType.LIMIT,
                        quantity=Decimal(case.quantity), limit_price=Decimal(case.limit_price),
                        time_in_force=case.tif)
                    answers[coid] = asyncio.get_running_loop().create_future()
                    sent = time.perf_counter()
                    await probe.publish(subjects.order_command(case.name), order)
                    accepted = await asyncio.wait_for(answers[coid], 30)
                    if n >= 5:
                        latencies.append((accepted - sent) * 1000)
                    cancel = CancelOrder(id=derive_id("roundtrip-cancel", case.name, n), ts_event=now, ts_init=now,
                                         strategy_id="bench", instrument_id=instrument, client_order_id=coid)
                    canceled[coid] = asyncio.get_running_loop().create_future()
                    await probe.publish(subjects.order_command(case.name), cancel)
                    await asyncio.wait_for(canceled[coid], 30)  # untimed: the next order starts on a quiet venue
            finally:
                await stack.close()
                await probe.close()
            return latencies
    finally:
        server.stop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def main_async(argv: list[str]) -> int:
    cases = _cases()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--rate-limit", type=float, default=0.0,
                        help="requests/s the adapters allow themselves (0 = each venue's published limit, so a "
                             "create may wait for a token; e.g. 1000 measures the path alone)")
    parser.add_argument("--venues", default=",".join(cases), help=f"comma-separated, of: {', '.join(cases)}")
    args = parser.parse_args(argv)
    print(f"order round trip (SubmitOrder published -> OrderAccepted received), {args.orders} orders per venue, "
          f"one at a time; python {sys.version.split()[0]}, cpus {os.cpu_count()}")
    print(f"{'venue':10} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'mean ms':>8}")
    with tempfile.TemporaryDirectory(prefix="tw-roundtrip-") as tmp:
        for key in [v.strip() for v in args.venues.split(",") if v.strip()]:
            case = cases[key]
            values = await measure(case, args.orders, Path(tmp), args.rate_limit)
            print(f"{key:10} {statistics.median(values):8.1f} {percentile(values, 0.9):8.1f} "
                  f"{percentile(values, 0.99):8.1f} {max(values):8.1f} {statistics.fmean(values):8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main_async(sys.argv[1:])))
