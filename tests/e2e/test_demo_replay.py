"""`tradewire up --exit-after-replay --json` end to end, checked against an independent model."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

from tests.e2e.reference import RefParams, read_bars, simulate
from tests.support.stack import DEMO_CSV, demo_config, run_up_json

BARS = 2500
#: a tiny share of this file's (USD-notional) volume, so that many fills are partial
VOLUME_SHARE = "0.00000001"


def test_demo_replay_matches_an_independent_exact_model(tmp_path: Path) -> None:
    summary, run_dir = run_up_json(demo_config(limit=BARS, volume_share=VOLUME_SHARE), tmp_path)

    model = simulate(read_bars(DEMO_CSV, BARS), RefParams(volume_share=Fraction(VOLUME_SHARE)))
    assert model.orders > 10 and any(q < 0.02 for _, q, _, _ in model.fills)  # the test exercises partials

    with sqlite3.connect(run_dir / "ledger.db") as db:
        rows = db.execute("SELECT side, last_qty, last_px, fee FROM fills ORDER BY ts_event, seq").fetchall()
    ledger_fills = [(side, Fraction(Decimal(q)), Fraction(Decimal(px)), Fraction(Decimal(fee)))
                    for side, q, px, fee in rows]
    assert ledger_fills == model.fills
    assert summary["fills"] == len(model.fills)
    assert summary["orders"] == model.orders
    assert summary["denials"] == model.denials
    assert summary["signals"] == model.signals
    assert Fraction(Decimal(summary["final_equity"])) == model.equity
    assert summary["dead_letters"] == 0
    assert summary["bars"] == BARS
    expected_return = float((model.equity / 10_000 - 1) * 100)
    assert abs(summary["return_pct"] - expected_return) < 1e-9
