"""`tradewire status` and `tradewire kill-switch` against running services."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.support.inproc import START_ORDER, InProcessStack
from tests.support.nats_server import NatsServer
from tests.support.stack import demo_config
from tradewire_common.cli.main import main
from tradewire_common.config import load_config


async def test_status_and_kill_switch_commands_drive_the_running_risk_service(
    fresh_nats: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TRADEWIRE_API_TOKEN", raising=False)
    token_file = tmp_path / "api-token"
    token_file.write_text("cli-test-token\n")
    monkeypatch.setenv("TRADEWIRE_API_TOKEN_FILE", str(token_file))
    config_path = tmp_path / "tw.toml"
    config_path.write_text(demo_config(limit=50, extra=f'path = "{tmp_path / "ledger.db"}"'))
    stack = InProcessStack(load_config(config_path, environ={}), fresh_nats.url)
    await stack.start()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "endpoints.json").write_text(json.dumps(
        {"services": {name: stack.url(name) for name in START_ORDER}, "token_file": str(token_file)}))
    args = ["--config", str(config_path), "--run-dir", str(run_dir)]
    try:
        assert await asyncio.to_thread(main, ["status", "--json", *args]) == 0
        status = json.loads(capsys.readouterr().out)
        assert all(status[name]["ready"] for name in START_ORDER)
        assert status["trading_state"]["state"] == "ACTIVE"

        assert await asyncio.to_thread(main, ["kill-switch", "engage", "--reason", "from cli", *args]) == 0
        engaged = json.loads(capsys.readouterr().out)
        assert engaged["state"] == "HALTED" and engaged["reason"] == "from cli"
        assert (await stack.get("risk", "/v1/kill-switch")).json()["state"] == "HALTED"

        assert await asyncio.to_thread(main, ["kill-switch", "release", "--reason", "all clear", *args]) == 0
        assert json.loads(capsys.readouterr().out)["state"] == "ACTIVE"
        assert (await stack.get("risk", "/v1/kill-switch")).json()["state"] == "ACTIVE"
    finally:
        await stack.close()
