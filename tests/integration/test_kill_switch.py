"""The kill switch over a real broker: token-protected, stops orders, survives a risk restart."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from tests.support.inproc import InProcessStack
from tests.support.nats_server import NatsServer
from tests.support.stack import demo_config
from tradewire_common.config import load_config

TOKEN = "kill-switch-test-token"


@pytest.fixture
def stack_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TRADEWIRE_API_TOKEN", TOKEN)
    path = tmp_path / "tw.toml"
    path.write_text(demo_config(limit=1500, extra=f'path = "{tmp_path / "ledger.db"}"'))
    return load_config(path, environ={})


async def test_kill_switch_requires_the_token(stack_config, fresh_nats: NatsServer) -> None:  # type: ignore[no-untyped-def]
    stack = InProcessStack(stack_config, fresh_nats.url)
    await stack.start(("risk",))
    try:
        body = {"state": "HALTED", "reason": "test"}
        assert (await stack.post("risk", "/v1/kill-switch", body)).status_code == 401
        assert (await stack.post("risk", "/v1/kill-switch", body, token="wrong")).status_code == 401
        bad = await stack.post("risk", "/v1/kill-switch", {"state": "PAUSED", "reason": "x"}, token=TOKEN)
        assert bad.status_code == 422
        assert (await stack.get("risk", "/v1/kill-switch")).json()["state"] == "ACTIVE"
    finally:
        await stack.close()


async def test_engaged_mid_replay_no_order_leaves_risk_and_state_survives_restart(
    stack_config, fresh_nats: NatsServer, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    stack = InProcessStack(stack_config, fresh_nats.url)
    await stack.start()
    try:
        async with asyncio.timeout(60):
            while (await stack.get("ledger", "/v1/summary")).json()["orders"] < 4:
                await asyncio.sleep(0.02)
        engaged = await stack.post("risk", "/v1/kill-switch", {"state": "HALTED", "reason": "runaway"}, token=TOKEN)
        assert engaged.status_code == 200 and engaged.json()["state"] == "HALTED"
        halted_at = engaged.json()["since_ns"]

        await stack.restart_service("risk")
        state = (await stack.get("risk", "/v1/kill-switch")).json()
        assert state["state"] == "HALTED" and state["reason"] == "runaway"

        await stack.wait_replay_done()
        summary = (await stack.get("ledger", "/v1/summary")).json()
    finally:
        await stack.close()

    with sqlite3.connect(tmp_path / "ledger.db") as db:
        submits = db.execute("SELECT ts_init FROM messages WHERE type = 'SubmitOrder'").fetchall()
        halted = [json.loads(p) for (p,) in db.execute(
            "SELECT payload FROM messages WHERE type = 'OrderDenied'").fetchall()]
        changes = db.execute("SELECT payload FROM messages WHERE type = 'TradingStateChanged'").fetchall()
    assert submits and all(ts < halted_at for (ts,) in submits)
    assert any(d["reason_code"] == "TRADING_HALTED" for d in halted)
    assert summary["denials"] >= 1
    assert [json.loads(p)["state"] for (p,) in changes] == ["HALTED"]
