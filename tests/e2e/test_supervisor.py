"""`tradewire up` supervises its services: a killed one is restarted and the run still ends right."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import httpx

from tests.e2e.reference import RefParams, read_bars, simulate
from tests.support.stack import DEMO_CSV, demo_config, stack_env

BARS = 2000


def _child_pid(service: str, nats_url: str) -> int:
    out = subprocess.run(["pgrep", "-f", f"run {service} --nats {nats_url}"], capture_output=True, text=True)
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 1, f"expected one {service} process, found {pids}"
    return pids[0]


def test_a_killed_service_is_restarted_and_the_replay_result_is_unchanged(tmp_path: Path) -> None:
    config = tmp_path / "tw.toml"
    config.write_text(demo_config(limit=BARS))
    run_dir = tmp_path / "run"
    env = stack_env(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradewire_common.cli.main", "up", "--config", str(config),
         "--exit-after-replay", "--json", "--run-dir", str(run_dir)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        ledger = f"http://127.0.0.1:{env['TRADEWIRE__HTTP__PORTS__LEDGER']}"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if httpx.get(ledger + "/v1/summary", timeout=2).json()["orders"] >= 5:
                    break
            except (httpx.HTTPError, ValueError):
                pass
            assert time.monotonic() < deadline, "no orders within 120 s"
            time.sleep(0.1)
        nats_url = json.loads((run_dir / "endpoints.json").read_text())["nats"]
        victim = _child_pid("risk", nats_url)
        os.kill(victim, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "risk exited with -9; restarting (1/5)" in stderr
    assert _child_pid_gone(victim)
    summary = json.loads(stdout.strip().splitlines()[-1])
    model = simulate(read_bars(DEMO_CSV, BARS), RefParams())
    assert summary["fills"] == len(model.fills)
    assert summary["orders"] == model.orders
    assert Fraction(Decimal(summary["final_equity"])) == model.equity


def _child_pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
