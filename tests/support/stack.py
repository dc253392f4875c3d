"""Run ``tradewire up`` as a subprocess with a test config, on free ports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.ports import free_tcp_port
from tradewire_common.registry import SERVICE_NAMES

REPO = Path(__file__).resolve().parents[2]
DEMO_CSV = REPO / "data" / "demo" / "btcusdt-perp-1m-2022-01.csv"
#: Every service ``tradewire up`` runs (each gets a free port).
SERVICES = SERVICE_NAMES


def demo_config(*, limit: int, volume_share: str = "1.0", extra: str = "", lockstep_timeout: float = 5.0) -> str:
    """The shipped demo's settings over the first ``limit`` bars."""
    return f"""
[datafeed]
speed = "max"
lockstep = true
lockstep_timeout_s = {lockstep_timeout}

[[datafeed.replay]]
path = "{DEMO_CSV}"
instrument_id = "BTCUSDT.BINANCE"
interval = "1m"
limit = {limit}

[[signals.strategies]]
id = "sma_cross"
kind = "sma_cross"
instruments = ["BTCUSDT.BINANCE"]
params = {{ fast = 10, slow = 30 }}

[risk]
fraction = 0.10
max_position_pct = 0.10
max_exposure_pct = 0.25

[[risk.instruments]]
id = "BTCUSDT.BINANCE"
quantity_step = "0.00001"
min_quantity = "0.00001"

[[execution.venues]]
name = "BINANCE"

[execution.paper]
fill_at = "next_open"
slippage_bps = 1.0
fee_bps = 10.0
max_volume_share = {volume_share}
quantity_step = "0.00001"

[ledger]
starting_cash = "10000"
{extra}
"""


def port_env() -> dict[str, str]:
    return {f"TRADEWIRE__HTTP__PORTS__{name.upper()}": str(free_tcp_port()) for name in SERVICES}


def stack_env(tmp_path: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIRE")}
    env.update(port_env())
    env["TRADEWIRE_API_TOKEN"] = "test-token-" + tmp_path.name
    env.update(extra or {})
    return env


def run_up_json(config_text: str, tmp_path: Path, *, timeout: float = 600,
                env: dict[str, str] | None = None) -> tuple[dict[str, Any], Path]:
    """``tradewire up --exit-after-replay --json``; returns the summary and the run dir."""
    config = tmp_path / "tradewire.toml"
    config.write_text(config_text)
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "tradewire_common.cli.main", "up", "--config", str(config),
         "--exit-after-replay", "--json", "--run-dir", str(run_dir)],
        cwd=tmp_path, env=env or stack_env(tmp_path), capture_output=True, text=True, timeout=timeout,
    )
    if proc.returncode != 0:
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted((run_dir / "logs").glob("*.log")))
        raise AssertionError(f"tradewire up exited {proc.returncode}\n{proc.stderr[-3000:]}\n{logs}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), run_dir
