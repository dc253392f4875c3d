"""Paper trading a prediction market against its live book, over a real nats-server with the five services: the
prediction feed polls the Polymarket fake (books and quotes, no bars) -> ``prediction_edge`` signals the edge ->
risk sizes it with binary Kelly -> the *paper* venue fills it against the book it got from the feed (taker at
the ask, the rest resting at its limit until a later book adds asks through it: maker) -> the ledger holds the
fills -> the fake resolves the market -> the ledger settles. No order reaches the fake."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tests.e2e.test_prediction_lifecycle import (
    PM,
    PM_CONDITION,
    PM_NO,
    PM_YES,
    STARTING_CASH,
    _position,
    config_for,
    kelly_contracts,
    pm_fake,
    settled_position,
    started,
)
from tests.fakes.polymarket import PolymarketFake
from tests.support.nats_server import NatsServer
from tradewire_common import subjects
from tradewire_common.bus import Envelope, NatsBus
from tradewire_common.config import Config
from tradewire_common.prediction import FeeSchedule
from tradewire_common.schemas import (
    ExecutionWatermark,
    Liquidity,
    OrderDenied,
    OrderFilled,
    Side,
    Signal,
    SubmitOrder,
)

pytestmark = pytest.mark.timeout(90)
__all__ = ["pm_fake"]  # the fixture, imported for this module's tests

D = Decimal


async def test_the_paper_venue_fills_a_polymarket_edge_against_the_live_book_and_the_ledger_settles_it(
    pm_fake: PolymarketFake, fresh_nats: NatsServer, tmp_path: Path,
) -> None:
    yes, no = f"{PM_YES}.{PM}", f"{PM_NO}.{PM}"
    config = config_for(
        tmp_path, venue={"name": PM, "adapter": "paper"},
        feed={"venue": PM, "adapter": "polymarket", "markets": [PM_CONDITION], "url_override": pm_fake.url,
              "poll_interval_s": 0.2},
        yes=yes, no=no, market=PM_CONDITION, tick="0.01", probability=0.6, min_quantity="5")
    # YES asks 100 @ 0.40 (a bid at 0.35 so that there is a quote); model p 0.6: edge 0.2
    pm_fake.rest(PM_YES, "BUY", "0.35", "50")
    pm_fake.rest(PM_YES, "SELL", "0.40", "100")
    expected = kelly_contracts("0.6", "0.40")
    assert expected == 416

    watermarks: list[ExecutionWatermark] = []

    async def on_watermark(envelope: Envelope) -> None:
        if isinstance(envelope.message, ExecutionWatermark):
            watermarks.append(envelope.message)

    probe = NatsBus("probe_wm", fresh_nats.url)
    await probe.connect()
    await probe.subscribe(subjects.execution_watermark(PM), on_watermark)
    try:
        await _run(config, fresh_nats, pm_fake, watermarks, yes, expected)
    finally:
        await probe.close()


async def _run(config: Config, fresh_nats: NatsServer, pm_fake: PolymarketFake, watermarks: list[ExecutionWatermark],
               yes: str, expected: int) -> None:
    async with started(config, fresh_nats.url) as run:
        await run.until(lambda: run.of(SubmitOrder) or run.of(OrderDenied), what="risk's decision")
        assert not run.of(OrderDenied), [(d.reason_code, d.reason) for d in run.of(OrderDenied)]
        (signal,) = run.of(Signal)
        (order,) = run.of(SubmitOrder)
        assert (order.instrument_id, order.side, order.limit_price, order.quantity) == (
            yes, Side.BUY, D("0.40"), D(expected))

        # taker: the 100 displayed at 0.40, at the book's event time (the signal's: no latency)
        await run.until(lambda: run.of(OrderFilled), what="the taker fill")
        (taker,) = run.of(OrderFilled)
        assert (taker.last_qty, taker.last_px, taker.liquidity, taker.partial, taker.provisional) == (
            D(100), D("0.40"), Liquidity.TAKER, True, False)
        assert taker.ts_event == signal.ts_event
        assert taker.fee == FeeSchedule.for_venue(PM).fee(D("0.40"), D(100), maker=False)
        # execution's watermarks follow the books (risk waited for the one at the signal's time)
        assert any(m.ts_event >= signal.ts_event and m.close is None for m in watermarks)
        await run.until(lambda: _position(run, yes, D(100)), what="100 held in the ledger")

        # maker: a seller adds 400 at 0.39, through the resting bid at 0.40: the rest fills at 0.40
        pm_fake.rest(PM_YES, "SELL", "0.39", "400")
        await run.until(lambda: len(run.of(OrderFilled)) == 2, what="the maker fill")
        maker = run.of(OrderFilled)[1]
        assert (maker.last_qty, maker.last_px, maker.liquidity, maker.partial, maker.leaves_qty) == (
            D(expected - 100), D("0.40"), Liquidity.MAKER, False, D(0))
        assert maker.ts_event > taker.ts_event
        await run.until(lambda: _position(run, yes, D(expected)), what=f"{expected} held in the ledger")
        assert pm_fake.trades() == []  # paper: nothing reached the venue
        fills = {f["trade_id"] for f in await run.ledger("/v1/fills")}
        assert fills == {taker.trade_id, maker.trade_id}

        # YES wins: the feed publishes the resolution, the ledger settles at 1
        pm_fake.resolve(PM_CONDITION, "1")
        row = await settled_position(run, yes)
        summary = await run.ledger("/v1/summary")
        positions = (await run.ledger("/v1/positions"))["positions"]

    cost = D(expected) * D("0.40") + taker.fee + maker.fee
    assert D(row["quantity"]) == expected and D(row["payout"]) == 1
    assert D(summary["cash"]) == STARTING_CASH - cost + expected
    assert [p for p in positions if p["instrument_id"] == yes] == []
