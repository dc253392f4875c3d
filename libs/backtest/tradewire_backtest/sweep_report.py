"""The rich tables of ``tradewire sweep``: the ranking (or the folds), the headline, the guards.

Rendering only: it reads the same dictionary that ``--json`` prints, so both outputs always agree.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

COLUMNS = ("total_return", "sharpe", "max_drawdown", "trades")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _short(value: Any) -> str:
    """Compact cells for the folds table: ``fast=10 slow=30``, ``0-500``, 4 significant digits."""
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return "-".join(map(str, value))
    return f"{value:.4g}" if isinstance(value, float) else _fmt(value)


def _pairs(title: str, rows: list[tuple[str, Any]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("value")
    for key, value in rows:
        table.add_row(key, _fmt(value))
    return table


def _ranking(out: dict[str, Any], top: int) -> Table:
    objective = out["objective"]
    rows = out["results"]
    if out["mode"] == "train_test":
        train = out["headline"]["train"]
        table = Table(title=f"{out['strategy']}: {len(rows)} trials chosen on bars [{train[0]}, {train[1]}) "
                            f"by in-sample {objective} (selection only, not performance)")
        table.add_column("params")
        table.add_column(f"in-sample {objective}")
        for row in rows[:top]:
            table.add_row(_fmt(row["params"]), _fmt(row["in_sample_score"]))
        return table
    table = Table(title=f"{out['strategy']} on {out['data']}: {len(rows)} trials on all {out['bars']} bars "
                        f"(in sample), by {objective}")
    for column in ("params", objective, *(c for c in COLUMNS if c != objective)):
        table.add_column(column)
    for row in rows[:top]:
        table.add_row(_fmt(row["params"]), _fmt(row["score"]), *(_fmt(row.get(c)) for c in COLUMNS if c != objective))
    return table


def _folds(out: dict[str, Any]) -> Table:
    walk = out["walk_forward"]
    kind = "anchored" if walk["anchored"] else "rolling"
    table = Table(title=f"walk-forward ({kind}, train {walk['train']}, test {walk['test']}, step {walk['step']} bars): "
                        f"params chosen in sample, results out of sample")
    for column in ("fold", "train", "test", "params", "IS score", "OOS score", "OOS return", "DSR"):
        table.add_column(column)
    for i, f in enumerate(walk["folds"]):
        oos = f["oos"] or {}
        table.add_row(str(i), *(_short(v) for v in (f["train"], f["test"], f["params"], f["in_sample_score"],
                                                     f["oos_score"], oos.get("total_return"), f["dsr"])))
    return table


def _headline(out: dict[str, Any]) -> Table:
    h = out["headline"]
    metrics = h["metrics"] or {}
    figures = [(k, metrics.get(k)) for k in ("total_return", "cagr", "sharpe", "sortino", "max_drawdown",
                                              "win_rate", "trades", "bars")]
    if out["mode"] == "full":
        return _pairs(f"best on all bars (IN SAMPLE): {_fmt(h['params'])}", figures)
    if out["mode"] == "train_test":
        w = h["window"]
        return _pairs(f"OUT OF SAMPLE, bars [{w[0]}, {w[1]}): best in-sample params {_fmt(h['params'])}", [
            *figures, (f"{out['objective']} out of sample", h["score"]),
            (f"{out['objective']} in sample (decay comparison only)", h["in_sample_score"]),
            ("decay (out - in)", h["decay"])])
    return _pairs(f"OUT OF SAMPLE, {len(h['windows'])} test windows stitched ({h['oos_bars']} bars)",
                  [*figures, ("compounded fold returns", h["compounded_return"])])


def _guards(out: dict[str, Any]) -> Table:
    g = out["overfitting"]
    dsr, pbo = g["dsr"], g["pbo"]
    rows: list[tuple[str, Any]] = [
        ("trials (valid)", dsr["trials"]), ("best params there", g["best_params"]),
        ("per-bar Sharpe of the best", dsr.get("sharpe_per_bar")),
        ("per-bar Sharpe std across trials", dsr.get("sharpe_std_per_bar")),
        ("expected best Sharpe from luck alone", dsr.get("expected_max_sharpe_per_bar")),
        ("probabilistic Sharpe ratio (vs 0)", dsr.get("psr")),
        ("deflated Sharpe ratio", dsr["dsr"] if dsr["skipped"] is None else f"skipped: {dsr['skipped']}"),
        (f"PBO (CSCV, {pbo['splits']} blocks, {pbo['combinations']} splits)",
         pbo["pbo"] if pbo["skipped"] is None else f"skipped: {pbo['skipped']}"),
    ]
    w = g["window"]
    return _pairs(f"overfitting guards (selection on bars [{w[0]}, {w[1]}))", rows)


def print_report(out: dict[str, Any], top: int) -> None:
    """Print the sweep result ``out`` (the ``--json`` dictionary) as tables."""
    console = Console()
    console.print(_folds(out) if out["mode"] == "walk_forward" else _ranking(out, top))
    console.print(_headline(out))
    console.print(_guards(out))
