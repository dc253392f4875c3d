"""Services restarted mid-replay resume from their durable consumers: nothing lost or doubled."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
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
from tradewire_common.config import load_config
from tradewire_common.lockstep import Lockstep
from tradewire_execution.service import ExecutionService

BARS = 1500
#: The demo CSV's volume is USD notional: this share caps fills at about 0.02 BTC a bar, so most
#: orders fill over several bars (208 fills for 73 orders over the first 1500 bars).
PARTIAL_FILLS = "0.00000001"


def stack_for(tmp_path: Path, nats_url: str, volume_share: str = "1.0") -> InProcessStack:
    path = tmp_path / "tw.toml"
    path.write_text(demo_config(limit=BARS, volume_share=volume_share, extra=f'path = "{tmp_path / "ledger.db"}"'))
    return InProcessStack(load_config(path, environ={}), nats_url)


async def results(stack: InProcessStack) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    await stack.wait_replay_done()
    summary = (await stack.get("ledger", "/v1/summary")).json()
    fills = (await stack.get("ledger", "/v1/fills?limit=100000")).json()
    return summary, fills


def assert_matches_model(summary: dict[str, Any], fills: list[dict[str, Any]], params: RefParams) -> None:
    model = simulate(read_bars(DEMO_CSV, BARS), params)
    assert summary["fills"] == len(model.fills) == len(fills)
    assert len({(f["client_order_id"], f["trade_id"]) for f in fills}) == len(fills)
    assert summary["orders"] == model.orders
    assert Fraction(Decimal(summary["final_equity"])) == model.equity


@pytest.mark.parametrize("victim", ["ledger", "risk"])
async def test_service_restarted_mid_replay_loses_and_doubles_nothing(
    victim: str, fresh_nats: NatsServer, tmp_path: Path
) -> None:
    stack = stack_for(tmp_path, fresh_nats.url)
    await stack.start()
    try:
        for target in (3, 8):  # restart twice, after some orders each time
            async with asyncio.timeout(60):
                while (await stack.get("ledger", "/v1/summary")).json()["orders"] < target:
                    await asyncio.sleep(0.02)
            await stack.restart_service(victim)
        summary, fills = await results(stack)
    finally:
        await stack.close()

    assert_matches_model(summary, fills, RefParams())


class FeedHold:
    """Holds the replay at a quiet point between two bars once ``when`` is true there.

    Bars are core NATS: a bar published while the execution service is down never reaches its
    paper venue, and an order working at that moment then fills on a later bar (by design:
    market data losses are tolerated). The replay is held so that the restart misses no bar and
    the result can be compared exactly; what is tested is that the working orders survive.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.when: Callable[[], bool] | None = None
        self.parked = asyncio.Event()
        self.release = asyncio.Event()
        wait_quiet = Lockstep.wait_quiet

        async def held_wait_quiet(lockstep: Lockstep) -> bool:
            quiet = await wait_quiet(lockstep)
            if self.when is not None and self.when():
                self.when = None
                self.parked.set()
                await self.release.wait()
            return quiet

        monkeypatch.setattr(Lockstep, "wait_quiet", held_wait_quiet)

    async def hold_when(self, when: Callable[[], bool], timeout: float = 60.0) -> None:
        self.parked.clear()
        self.release.clear()
        self.when = when
        async with asyncio.timeout(timeout):
            await self.parked.wait()

    def resume(self) -> None:
        self.release.set()


async def test_execution_restarted_mid_replay_keeps_its_working_orders(
    fresh_nats: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hold = FeedHold(monkeypatch)
    stack = stack_for(tmp_path, fresh_nats.url, PARTIAL_FILLS)
    await stack.start()

    def venue_state() -> dict[str, Any]:
        """The paper venue's state, as it exports it."""
        execution = stack.service("execution")
        assert isinstance(execution, ExecutionService)
        state: dict[str, Any] = msgspec.json.decode(execution.venues["BINANCE"].export_state())
        return state

    def working() -> list[dict[str, Any]]:
        orders: list[dict[str, Any]] = venue_state()["orders"]
        return orders

    def partly_filled() -> bool:
        return any(Decimal(o["filled"]) > 0 for o in working())

    def waiting_for_first_bar() -> bool:
        state = venue_state()
        return len(state["seen"]) >= 8 and any(not o["worked"] for o in state["orders"])

    restarted = []
    try:
        # restart once with the rest of a partially filled order working, once with an order
        # accepted but not yet matched against any bar
        for when in (partly_filled, waiting_for_first_bar):
            await hold.hold_when(when)
            before = working()
            assert before
            await stack.restart_service("execution")
            assert working() == before  # restored, not rebuilt: no bar arrived in between
            restarted.append(before)
            hold.resume()
        summary, fills = await results(stack)
    finally:
        hold.resume()
        await stack.close()

    assert any(Decimal(o["filled"]) > 0 for o in restarted[0])
    assert_matches_model(summary, fills, RefParams(volume_share=Fraction(PARTIAL_FILLS)))
