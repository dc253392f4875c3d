"""Services restarted mid-replay resume from their durable consumers: nothing lost or doubled."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from tests.e2e.reference import RefParams, read_bars, simulate
from tests.support.inproc import InProcessStack
from tests.support.nats_server import NatsServer
from tests.support.stack import DEMO_CSV, demo_config
from tradewire_common.config import load_config

BARS = 1500


@pytest.mark.parametrize("victim", ["ledger", "risk"])
async def test_service_restarted_mid_replay_loses_and_doubles_nothing(
    victim: str, fresh_nats: NatsServer, tmp_path: Path
) -> None:
    path = tmp_path / "tw.toml"
    path.write_text(demo_config(limit=BARS, extra=f'path = "{tmp_path / "ledger.db"}"'))
    stack = InProcessStack(load_config(path, environ={}), fresh_nats.url)
    await stack.start()
    try:
        for target in (3, 8):  # restart twice, after some orders each time
            async with asyncio.timeout(60):
                while (await stack.get("ledger", "/v1/summary")).json()["orders"] < target:
                    await asyncio.sleep(0.02)
            await stack.restart_service(victim)
        await stack.wait_replay_done()
        summary = (await stack.get("ledger", "/v1/summary")).json()
        fills = (await stack.get("ledger", "/v1/fills?limit=100000")).json()
    finally:
        await stack.close()

    model = simulate(read_bars(DEMO_CSV, BARS), RefParams())
    assert summary["fills"] == len(model.fills) == len(fills)
    assert len({(f["client_order_id"], f["trade_id"]) for f in fills}) == len(fills)
    assert summary["orders"] == model.orders
    assert Fraction(Decimal(summary["final_equity"])) == model.equity
