"""The ledger service over a real nats-server: a provisional fill reversed on ``ord.evt.*`` and a market
resolution on ``pm.resolved.<venue>`` (its own durable consumer on TW_RESOLUTIONS) settle the account, the
HTTP API shows the fill statuses and the settlement, and a restarted ledger neither loses nor repeats it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.integration.test_ledger_prediction import STRAT, VENUE, YES, filled, resolved, reversed_
from tests.support.nats_server import NatsServer
from tests.support.venue_tests import eventually
from tradewire_common import subjects
from tradewire_common.bus import Envelope, NatsBus
from tradewire_common.config import Config, LedgerConfig
from tradewire_common.ids import derive_id
from tradewire_common.schemas import PortfolioSnapshot, Side
from tradewire_ledger.service import LedgerService

pytestmark = pytest.mark.timeout(60)
D = Decimal


@pytest.fixture
async def probe(fresh_nats: NatsServer) -> AsyncIterator[NatsBus]:
    bus = NatsBus("probe", fresh_nats.url)
    await bus.connect()
    yield bus
    await bus.close()


def ledger(url: str, path: Path) -> LedgerService:
    config = Config(ledger=LedgerConfig(path=str(path), starting_cash=D(1000)))
    return LedgerService(config, NatsBus("ledger", url))


async def get(service: LedgerService, route: str) -> Any:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app()), base_url="http://ledger") as c:
        response = await c.get(route)
        response.raise_for_status()
        return response.json()


async def test_a_reversal_and_a_resolution_over_nats_settle_the_ledger_once_across_a_restart(
        fresh_nats: NatsServer, probe: NatsBus, tmp_path: Path) -> None:
    snapshots: list[PortfolioSnapshot] = []

    async def on_snapshot(envelope: Envelope) -> None:
        if isinstance(envelope.message, PortfolioSnapshot):
            snapshots.append(envelope.message)

    await probe.subscribe(subjects.PORTFOLIO_SNAPSHOT, on_snapshot)
    first = ledger(fresh_nats.url, tmp_path / "ledger.db")
    await first.start()
    try:
        held = filled(Side.BUY, "100", "0.40", ts=1)  # cost 40
        failed = filled(Side.BUY, "20", "0.50", ts=2, provisional=True)
        for message in (held, failed):
            await probe.publish(subjects.order_event(STRAT), message)
        await eventually(lambda: bool(snapshots) and snapshots[-1].positions[0].quantity == 120)
        await probe.publish(subjects.order_event(STRAT), reversed_(failed, 3))
        await eventually(lambda: snapshots[-1].positions[0].quantity == 100 and snapshots[-1].cash == 960)
        await probe.publish(subjects.resolution(VENUE), resolved("1", "0", "YES"))
        await eventually(lambda: snapshots[-1].positions == ())
        assert snapshots[-1].cash == D(1060) == snapshots[-1].equity and snapshots[-1].realized_pnl == D(60)

        statuses = {row["trade_id"]: row["status"] for row in await get(first, "/v1/fills")}
        assert statuses == {held.trade_id: "confirmed", failed.trade_id: "reversed"}
        (settlement,) = await get(first, "/v1/settlements")
        assert (settlement["instrument_id"], settlement["quantity"], settlement["payout"],
                settlement["realized_pnl"]) == (YES, "100", "1", "60.00")
        (resolution,) = await get(first, "/v1/resolutions")
        assert resolution["market_id"] == "KXRAIN-25NOV" and resolution["resolution"] == "YES"
    finally:
        await first.stop()

    second = ledger(fresh_nats.url, tmp_path / "ledger.db")
    await second.start()
    try:
        assert second.portfolio.cash == D(1060) and second.portfolio.position(YES) is None
        # the resolution again, under another id (another source): JetStream does not drop it, the ledger does
        again = msgspec.structs.replace(resolved("1", "0", "YES"), id=derive_id("resolution from execution"))
        await probe.publish(subjects.resolution(VENUE), again)
        await eventually(lambda: second.store.count_messages("MarketResolved") == 2)
        assert second.portfolio.cash == D(1060) and second.portfolio.realized_pnl == D(60)
        assert len(await get(second, "/v1/settlements")) == 1
    finally:
        await second.stop()
