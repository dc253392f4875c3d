"""The prediction backtest over recorded history: the Manifold market "Will Bitcoin's price fall below $25k
for at least one day in 2022?" (real bets, resolved YES) replayed as daily YES/NO probability bars through
``prediction_edge`` with a static model file, risk's binary Kelly sizing, the paper venue and the ledger,
ending in the recorded resolution, which settles the position. The expected fill, size and PnL are computed
here independently, in exact rationals, from the data files and the rule as documented."""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
import sys
import tomllib
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from tradewire_backtest.event import run_event
from tradewire_common.config import load_config

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data" / "prediction"
CONFIG = REPO / "config" / "examples" / "prediction-backtest.toml"
MARKET_JSON = DATA / "manifold-market-rIR6mWqaO9xKLifr6cLL-2022-06-15.json"
YES, NO = "rIR6mWqaO9xKLifr6cLL-YES.MANIFOLD", "rIR6mWqaO9xKLifr6cLL-NO.MANIFOLD"


def derived_bars() -> tuple[str, str]:
    """The YES and NO bar files as data/prediction/PROVENANCE.md says they were made from the bets."""
    market = json.loads(MARKET_JSON.read_text())
    bets = sorted(market["bets"], key=lambda b: (b["createdTime"], b["id"]))
    days: dict[dt.date, list[dict[str, float]]] = {}
    for bet in bets:
        days.setdefault(dt.datetime.fromtimestamp(bet["createdTime"] / 1000, dt.UTC).date(), []).append(bet)

    def q(value: float) -> Decimal:
        return Decimal(repr(value)).quantize(Decimal("0.0001"), ROUND_HALF_EVEN)

    yes = ["timestamp,open,high,low,close,volume"]
    no = list(yes)
    for day, day_bets in days.items():
        probs = [v for b in day_bets for v in (b["probBefore"], b["probAfter"])]
        o, h, lo, c = q(day_bets[0]["probBefore"]), q(max(probs)), q(min(probs)), q(day_bets[-1]["probAfter"])
        volume = sum((abs(Decimal(repr(b["amount"]))) for b in day_bets), Decimal(0))
        vol = volume.quantize(Decimal("0.01"), ROUND_HALF_EVEN)
        yes.append(f"{day.isoformat()},{o},{h},{lo},{c},{vol}")
        no.append(f"{day.isoformat()},{1 - o},{1 - lo},{1 - h},{1 - c},{vol}")
    return "\n".join(yes) + "\n", "\n".join(no) + "\n"


def test_the_bar_files_are_the_documented_derivation_of_the_recorded_bets() -> None:
    yes, no = derived_bars()
    assert (DATA / "manifold-btc-below-25k-yes-1d.csv").read_text() == yes
    assert (DATA / "manifold-btc-below-25k-no-1d.csv").read_text() == no
    market = json.loads(MARKET_JSON.read_text())
    resolution = json.loads((DATA / "manifold-btc-below-25k-resolution.json").read_text())
    assert (market["isResolved"], market["resolution"]) == (True, resolution["resolution"]) == (True, "YES")
    assert resolution["ts"] == market["resolutionTime"]
    assert resolution["payouts"] == {YES: "1", NO: "0"}


def expected_outcome() -> tuple[int, Fraction, Fraction]:
    """(quantity, fill price, settled PnL) of the one trade the example config makes, from first principles:
    the first daily close where p - close > min_edge is bought with a LIMIT at that close (IOC); the paper
    venue fills it on the next bar at min(open, limit); binary Kelly sizes ``(p - price) / (1 - price) *
    kelly_fraction`` of equity in contracts at the signal's price, rounded down to whole contracts; YES pays 1."""
    config = tomllib.loads(CONFIG.read_text())
    params = config["signals"]["strategies"][0]["params"]
    estimates = tomllib.loads((REPO / params["model_source"]).read_text())["estimates"]
    p = Fraction(str(estimates["rIR6mWqaO9xKLifr6cLL"]["probability"]))
    min_edge = Fraction(params["min_edge"])
    rows = [line.split(",") for line in (DATA / "manifold-btc-below-25k-yes-1d.csv").read_text().split()[1:]]
    index = next(i for i, row in enumerate(rows) if p - Fraction(row[4]) > min_edge)
    price = Fraction(rows[index][4])
    next_open, next_low = Fraction(rows[index + 1][1]), Fraction(rows[index + 1][3])
    assert next_low <= price, "the limit must be reachable on the next bar for this scenario"
    fill = min(next_open, price)
    kelly = (p - price) / (1 - price) * Fraction(str(config["risk"]["kelly_fraction"]))
    cash = Fraction(config["ledger"]["starting_cash"])
    quantity = math.floor(cash * kelly / price)
    assert quantity * fill < cash * Fraction(str(config["risk"]["max_position_pct"])), "no position limit binds"
    return quantity, fill, quantity * (1 - fill)


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # the example config's paths are relative to the checkout


@pytest.mark.usefixtures("in_repo")
def test_the_example_config_buys_yes_with_binary_kelly_and_the_resolution_settles_it_exactly() -> None:
    quantity, fill_price, pnl = expected_outcome()
    assert (quantity, fill_price) == (9858, Fraction("0.4602"))  # the hand figures of the README example
    result = run_event(load_config(CONFIG))
    [fill] = result.fills
    assert (fill.instrument_id, fill.side.value, fill.last_qty, fill.last_px, fill.fee) == (
        YES, "BUY", Decimal(quantity), Decimal(str(float(fill_price))), Decimal(0))
    [settlement] = result.settlements  # both replay sources name the resolution: published and settled once
    assert settlement["instrument_id"] == YES and settlement["resolution"] == "YES"
    assert Decimal(settlement["quantity"]) == quantity and Decimal(settlement["payout"]) == 1
    assert Fraction(settlement["realized_pnl"]) == pnl == Fraction("5321.3484")
    assert settlement["ts_event"] == 1_655_299_026_599_000_000
    assert Fraction(result.summary["realized_pnl"]) == pnl
    assert Decimal(result.summary["unrealized_pnl"]) == 0
    assert Fraction(str(result.final_equity)) == 10_000 + pnl
    assert result.summary["signals"] == 1 and result.summary["denials"] == 0


@pytest.mark.usefixtures("in_repo")
def test_tradewire_backtest_config_prints_the_settled_result() -> None:
    proc = subprocess.run([sys.executable, "-m", "tradewire_common.cli.main", "backtest", "--config", str(CONFIG),
                           "--json"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["final_equity"] == pytest.approx(15321.3484, abs=1e-9)
    assert out["fills"] == 1 and Decimal(out["ledger"]["realized_pnl"]) == Decimal("5321.3484")
    assert [s["instrument_id"] for s in out["settlements"]] == [YES]
