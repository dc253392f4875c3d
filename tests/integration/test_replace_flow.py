"""Replace end to end over a real nats-server: risk (HTTP API, and ``tradewire orders replace``) -> execution ->
ledger, with the paper venue (an amend in place, kept across an execution restart) and with the fake Alpaca
(its native amend); post-only and GTD options travel with the order."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.alpaca_fake import KEY_ID, SECRET, alpaca_fake
from tests.support.inproc import InProcessStack
from tests.support.nats_server import NatsServer
from tradewire_common import subjects
from tradewire_common.bus import NatsBus
from tradewire_common.cli.main import main
from tradewire_common.config import Config, config_from_dict
from tradewire_common.ids import client_order_id, derive_id
from tradewire_common.schemas import Bar, OrderType, PortfolioSnapshot, Side, Signal, TimeInForce

pytestmark = pytest.mark.timeout(90)
D = Decimal
T0 = 1_700_000_040 * 10**9
MINUTE = 60 * 10**9
TOKEN = "replace-flow-token"


def stack_config(tmp_path: Path, instrument: dict[str, Any], venue: dict[str, Any]) -> Config:
    return config_from_dict({
        "signals": {"strategies": [{"id": "sma", "kind": "sma_cross", "instruments": [instrument["id"]],
                                    "initial_stage": "live"}]},
        "risk": {"instruments": [instrument], "fraction": 0.1, "max_position_pct": 0.5, "max_exposure_pct": 1.0,
                 "price_band_pct": 0.2, "portfolio_wait_s": 10.0},
        "execution": {"venues": [venue], "paper": {"fee_bps": 0.0}},
        "ledger": {"path": str(tmp_path / "ledger.db"), "starting_cash": "10000"},
    })


async def eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def send_signal(probe: NatsBus, instrument: str, price: str, limit: str, **options: Any) -> str:
    """A portfolio snapshot covering the signal, then a limit BUY signal; the client order id risk will use."""
    await probe.publish(subjects.PORTFOLIO_SNAPSHOT, PortfolioSnapshot(
        id=derive_id("snap", instrument), ts_event=T0, ts_init=T0, account="paper", cash=D(10000), equity=D(10000),
        realized_pnl=D(0), unrealized_pnl=D(0), gross_exposure=D(0), positions=(), as_of=T0 + MINUTE))
    signal = Signal(id=derive_id("flow-signal", instrument), ts_event=T0, ts_init=T0, strategy_id="sma",
                    instrument_id=instrument, side=Side.BUY, price=D(price), confidence=0.9, reason="flow test",
                    order_type=OrderType.LIMIT, limit_price=D(limit), **options)
    await probe.publish(subjects.signal("sma"), signal)
    return client_order_id("sma", signal.id)


async def orders(stack: InProcessStack) -> dict[str, dict[str, Any]]:
    return {row["client_order_id"]: row for row in (await stack.get("ledger", "/v1/orders?limit=100")).json()}


async def fills(stack: InProcessStack) -> list[dict[str, Any]]:
    return list((await stack.get("ledger", "/v1/fills?limit=100")).json())


async def test_a_paper_order_replaced_through_the_cli_is_amended_kept_across_a_restart_and_filled(
    fresh_nats: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRADEWIRE_API_TOKEN", TOKEN)
    btc = {"id": "BTCUSDT.BINANCE", "quantity_step": "0.0001", "min_quantity": "0.0001", "price_tick": "0.5"}
    stack = InProcessStack(stack_config(tmp_path, btc, {"name": "BINANCE"}), fresh_nats.url)
    probe = NatsBus("probe", fresh_nats.url, auth=None)
    await probe.connect()
    await stack.start(("ledger", "execution", "risk"))
    try:
        await probe.publish(subjects.bar("BINANCE", "BTCUSDT", "1m"), bar(0, "40000", "39900"))
        coid = await send_signal(probe, btc["id"], "40000", "38000", post_only=True,
                                 time_in_force=TimeInForce.GTD, expire_time_ns=T0 + 60 * MINUTE)
        row = await eventually(lambda: _row(stack, coid, status="SUBMITTED"))  # post-only: decided on arrival
        assert row["post_only"] in (1, True) and int(row["expire_time_ns"]) == T0 + 60 * MINUTE
        await probe.publish(subjects.bar("BINANCE", "BTCUSDT", "1m"), bar(1, "39800", "39400"))
        await eventually(lambda: _row(stack, coid, status="ACCEPTED"))  # it did not cross: resting

        run_dir = tmp_path / "run"
        run_dir.mkdir()
        (run_dir / "endpoints.json").write_text(json.dumps({"services": {"risk": stack.url("risk")}}))
        args = ["orders", "replace", coid, "--qty", "0.03", "--limit", "39500", "--run-dir", str(run_dir), "--json"]
        assert await asyncio.to_thread(main, args) == 0
        answer = json.loads(capsys.readouterr().out)
        new = answer["new_client_order_id"]
        replaced = await eventually(lambda: _row(stack, new))
        assert (D(replaced["quantity"]), D(replaced["limit_price"]), replaced["replaces"]) == (D("0.03"), D(39500),
                                                                                               coid)
        assert (await orders(stack))[coid]["status"] == "REPLACED"

        await stack.restart_service("execution")  # the amended order was saved before the command's ack
        await probe.publish(subjects.bar("BINANCE", "BTCUSDT", "1m"), bar(2, "39800", "39400"))
        (fill,) = await eventually(lambda: _fills_of(stack, new))
        assert (D(fill["last_qty"]), D(fill["last_px"]), fill["liquidity"]) == (D("0.03"), D(39500), "MAKER")

        denied = await stack.post("risk", f"/v1/orders/{new}/replace", {"limit_price": "39000"}, token=TOKEN)
        assert denied.status_code == 409  # filled: no longer open
        assert (await stack.post("risk", f"/v1/orders/{new}/replace", {"limit_price": "1"})).status_code == 401
    finally:
        await stack.close()
        await probe.close()


async def test_an_alpaca_order_replaced_through_risk_is_amended_at_alpaca_and_its_fills_reach_the_ledger(
    fresh_nats: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEWIRE_API_TOKEN", TOKEN)
    monkeypatch.setenv("TRADEWIRE_ALPACA_API_KEY", KEY_ID)
    monkeypatch.setenv("TRADEWIRE_ALPACA_API_SECRET", SECRET)
    aapl = {"id": "AAPL.ALPACA", "quantity_step": "1", "min_quantity": "1", "price_tick": "0.01"}
    with alpaca_fake() as fake:
        venue = {"name": "ALPACA", "adapter": "alpaca", "mode": "sandbox", "symbols": ["AAPL"],
                 "url_override": fake.url, "poll_interval_s": 0.1, "reconcile_interval_s": 0}
        stack = InProcessStack(stack_config(tmp_path, aapl, venue), fresh_nats.url)
        probe = NatsBus("probe", fresh_nats.url, auth=None)
        await probe.connect()
        await stack.start(("ledger", "execution", "risk"))
        try:
            coid = await send_signal(probe, aapl["id"], "185.00", "184.00")
            await eventually(lambda: _async(coid in fake.by_coid))
            await asyncio.to_thread(fake.fill, coid, "2", "184.00")  # partly filled before the replace
            await eventually(lambda: _fills_of(stack, coid))
            response = await stack.post("risk", f"/v1/orders/{coid}/replace", {"limit_price": "184.50"}, token=TOKEN)
            assert response.status_code == 200 and response.json()["decision"] == "REPLACE"
            new = response.json()["new_client_order_id"]
            await eventually(lambda: _async(new in fake.by_coid))
            assert fake.order(coid).status == "replaced" and fake.order(new).limit_price == D("184.50")
            row = await eventually(lambda: _row(stack, new))
            assert (D(row["filled_qty"]), row["replaces"]) == (D(2), coid)
            left = fake.order(new).qty - fake.order(new).filled_qty
            await asyncio.to_thread(fake.fill, new, str(left), "184.50")
            (fill,) = await eventually(lambda: _fills_of(stack, new))
            assert (D(fill["last_qty"]), D(fill["last_px"])) == (left, D("184.50"))
            done = await eventually(lambda: _row(stack, new, status="FILLED"))
            assert D(done["filled_qty"]) == fake.order(new).qty
        finally:
            await stack.close()
            await probe.close()


def bar(i: int, open_: str, low: str) -> Bar:
    return Bar(id=derive_id("flow-bar", i), ts_event=T0 + i * MINUTE, ts_init=T0 + (i + 1) * MINUTE,
               instrument_id="BTCUSDT.BINANCE", interval="1m", open=D(open_), high=D(open_), low=D(low), close=D(open_),
               volume=D(100), seq=i)


async def _async(value: Any) -> Any:
    return value


async def _row(stack: InProcessStack, coid: str, status: str | None = None) -> dict[str, Any] | None:
    row = (await orders(stack)).get(coid)
    if row is None or (status is not None and row["status"] != status):
        return None
    return row


async def _fills_of(stack: InProcessStack, coid: str) -> list[dict[str, Any]]:
    return [f for f in await fills(stack) if f["client_order_id"] == coid]
