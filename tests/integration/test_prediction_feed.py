"""The datafeed service's prediction feed over a real nats-server against the fake Manifold: books, quotes and
trades of both outcomes on the market-data subjects, the resolution on ``pm.resolved.MANIFOLD`` stored once in
JetStream even when a restarted feed sees it again, and a failed poll healed with REST snapshots."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from tests.fakes.manifold_fake import ManifoldFake, manifold_fake
from tests.support.venue_tests import eventually
from tradewire_common.schemas import BookSnapshot, MarketResolved, Message, Quote, TradeTick

pytestmark = pytest.mark.timeout(60)

MARKET = "feedMarket000000001"
OTHER = "someoneElseUserId0001"


@pytest.fixture
def fake() -> Iterator[ManifoldFake]:
    with manifold_fake() as venue:
        venue.add_market(MARKET, "Will the feed see it?", prob=0.5)
        yield venue


async def test_books_quotes_trades_and_one_resolution_reach_the_broker_and_a_gap_is_healed(
    fake: ManifoldFake, fresh_nats: Any, tmp_path: Any
) -> None:
    import nats

    from tests.support.inproc import InProcessStack
    from tradewire_common.bus import Envelope, NatsBus
    from tradewire_common.config import config_from_dict

    config = config_from_dict({"datafeed": {"prediction": [{
        "venue": "MANIFOLD", "adapter": "manifold", "markets": [MARKET], "url_override": fake.url,
        "poll_interval_s": 0.1, "reconnect_s": 0.5, "book_depth": 5}]}})
    stack = InProcessStack(config, fresh_nats.url)
    probe = NatsBus("probe", fresh_nats.url, auth=None)
    await probe.connect()
    seen: list[tuple[str, Message]] = []

    async def collect(env: Envelope) -> None:
        seen.append((env.subject, env.message))

    for pattern in ("md.book.>", "md.quote.>", "md.trade.>"):
        await probe.subscribe(pattern, collect)

    def of(kind: type[Message], subject: str | None = None) -> list[Any]:
        return [m for s, m in seen if isinstance(m, kind) and (subject is None or s == subject)]

    yes, no = f"md.book.MANIFOLD.{MARKET}-YES", f"md.book.MANIFOLD.{MARKET}-NO"
    await stack.start(("datafeed",))
    try:
        await eventually(lambda: bool(of(BookSnapshot, yes)) and bool(of(BookSnapshot, no)))
        first = of(BookSnapshot, yes)[0]
        assert first.bids[0].price == Decimal("0.49") and first.asks[0].price == Decimal("0.51")  # the pool at .50
        (quote,) = of(Quote, f"md.quote.MANIFOLD.{MARKET}-YES")
        assert (quote.bid, quote.ask) == (Decimal("0.49"), Decimal("0.51"))
        assert len(of(BookSnapshot, yes)) == 1  # polled again and again, unchanged: published once

        await asyncio.to_thread(fake.place, OTHER, MARKET, "YES", 10.0)  # a market bet moves the pool
        await eventually(lambda: bool(of(TradeTick, f"md.trade.MANIFOLD.{MARKET}-YES"))
                         and len(of(Quote, f"md.quote.MANIFOLD.{MARKET}-YES")) == 2)
        (tick,) = of(TradeTick, f"md.trade.MANIFOLD.{MARKET}-YES")
        (mirror,) = of(TradeTick, f"md.trade.MANIFOLD.{MARKET}-NO")
        assert tick.size == mirror.size and tick.price + mirror.price == 1 and tick.aggressor_side.value == "BUY"

        fake.fault("GET", "/v0/bets", "5xx", times=2)  # the polling stream fails, then REST fails once too
        await asyncio.to_thread(fake.place, OTHER, MARKET, "NO", 5.0)  # a trade during the gap
        await eventually(lambda: len(of(TradeTick, f"md.trade.MANIFOLD.{MARKET}-YES")) == 2)
        status = (await stack.get("datafeed", "/v1/replay")).json()["prediction"]["MANIFOLD"]
        assert status["gaps"] >= 1

        await asyncio.to_thread(fake.resolve, MARKET, "MKT", 0.7)
        await eventually(lambda: "MANIFOLD" in _resolved(stack))
        await stack.restart_service("datafeed")  # a new feed sees the resolution again and publishes it again
        await eventually(lambda: bool(stack.service("datafeed").status()["prediction"]["MANIFOLD"]["resolved"]))
        metrics = (await stack.get("datafeed", "/metrics")).text
    finally:
        await stack.close()
        await probe.close()
    staleness = "tradewire_datafeed_prediction_last_update_timestamp_seconds"
    assert f'{staleness}{{instrument="{MARKET}-YES.MANIFOLD"}}' in metrics
    nc = await nats.connect(fresh_nats.url)
    try:
        js = nc.jetstream()
        info = await js.stream_info("TW_RESOLUTIONS")
        stored = await js.get_last_msg("TW_RESOLUTIONS", "pm.resolved.MANIFOLD")
    finally:
        await nc.close()
    assert info.state.messages == 1  # the second publication was a duplicate by its id
    from tradewire_common.schemas import decode

    resolved = decode(stored.data or b"")
    assert isinstance(resolved, MarketResolved) and resolved.market_id == MARKET and resolved.resolution == "MKT"
    assert [(p.instrument_id, p.payout) for p in resolved.payouts] == [
        (f"{MARKET}-YES.MANIFOLD", Decimal("0.7")), (f"{MARKET}-NO.MANIFOLD", Decimal("0.3"))]
    assert len(of(TradeTick)) == 4 and len({m.trade_id for m in of(TradeTick)}) == 2  # each once per outcome


def _resolved(stack: Any) -> dict[str, Any]:
    return {venue: s for venue, s in stack.service("datafeed").status()["prediction"].items() if s["resolved"]}
