"""Run one backtest in either mode and summarise it the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tradewire_backtest.config import BacktestSpec, build_config


def run_backtest(spec: BacktestSpec, *, mode: str = "event", report: Path | None = None) -> dict[str, Any]:
    """Backtest ``spec``; returns the JSON summary (``bars``, ``trades``, ``final_equity``, …)."""
    from tradewire_backtest.metrics import compute_metrics

    if mode == "event":
        from tradewire_backtest.event import run_event

        result = run_event(build_config(spec))
        ts, close, equity, trades = result.ts, result.close, result.equity, result.trades
        final_equity, bars, elapsed = float(result.final_equity), result.bars, result.elapsed_s
        extra: dict[str, Any] = {"fills": len(result.fills), "denials": result.summary.get("denials", 0)}
    elif mode == "vector":
        from tradewire_backtest.arrays import BarArrays
        from tradewire_backtest.vector import run_vector

        unsupported = spec.vector_unsupported()
        if unsupported:
            raise ValueError(f"vector mode does not simulate {', '.join(unsupported)}: use --mode event")
        data = BarArrays.from_file(spec.data, limit=spec.limit)
        vr = run_vector(spec.strategy, dict(spec.params), data, cash=float(spec.cash), fee_bps=spec.fee_bps,
                        fixed_fee=float(spec.fixed_fee), slippage_bps=spec.slippage_bps, fill=spec.fill,
                        long_short=spec.long_short, whole_units=spec.whole_units, stop_loss=spec.stop_loss,
                        take_profit=spec.take_profit, trailing_stop=spec.trailing_stop, time_stop_s=spec.time_stop_s,
                        equity_curve=True)
        ts, close, trades = data.ts, data.close, list(vr.trades)
        equity = vr.equity if vr.equity is not None else np.full(len(ts), vr.final_equity)
        final_equity, bars, elapsed = float(vr.final_equity), len(ts), vr.elapsed_s
        extra = {}
    else:
        raise ValueError(f"unknown mode {mode!r}")
    metrics = compute_metrics(equity, ts, trades)
    summary: dict[str, Any] = {
        "mode": mode,
        "strategy": spec.strategy,
        "data": str(spec.data),
        "bars": bars,
        #: The period (first and last bar open time, ns), so a promotion gate can compare like with like.
        "start_ns": int(ts[0]) if len(ts) else None,
        "end_ns": int(ts[-1]) if len(ts) else None,
        "trades": len(trades),
        "final_equity": final_equity,
        "total_return": final_equity / float(spec.cash) - 1.0,
        **{k: v for k, v in metrics.to_dict().items() if k not in ("total_return", "trades")},
        **extra,
        "elapsed_s": round(elapsed, 6),
    }
    if report is not None:
        from tradewire_backtest.report import write_html_report

        write_html_report(report, title=f"{spec.strategy} on {spec.data.name} ({mode} mode)", ts=ts, close=close,
                          equity=equity, trades=trades, metrics=metrics)
    return summary
