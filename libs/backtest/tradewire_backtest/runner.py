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


def run_config_backtest(path: Path, *, report: Path | None = None) -> dict[str, Any]:
    """Event mode over a whole config (``tradewire backtest --config``): every replay source, strategy, risk
    setting and paper venue as configured, and the recorded resolutions the replay publishes at its end
    (prediction markets: the ledger settles them). The summary is the ledger's plus its settlements."""
    from tradewire_backtest.event import run_event
    from tradewire_backtest.metrics import compute_metrics
    from tradewire_common.config import load_config

    config = load_config(path)
    result = run_event(config)
    # one point per event time (several instruments share bar times), plus the final equity at the ledger's
    # last event (a resolution after the last bar); trade statistics are left out: a settlement closes a
    # position without a fill, which the fill-pairing of single-instrument backtests does not know
    ts = np.unique(result.ts)
    last = np.searchsorted(result.ts, ts, side="right") - 1
    equity = result.equity[last] if len(ts) else result.equity
    as_of = int(result.summary.get("as_of") or 0)
    if len(ts) and as_of > int(ts[-1]):
        ts, equity = np.append(ts, as_of), np.append(equity, float(result.final_equity))
    metrics = compute_metrics(equity, ts, []) if len(ts) else None
    curve_keys = ("cagr", "volatility", "sharpe", "sortino", "calmar", "max_drawdown", "max_drawdown_bars",
                  "max_drawdown_seconds", "years", "bars_per_year")
    summary: dict[str, Any] = {
        "mode": "event",
        "config": str(path),
        "bars": result.bars,
        "start_ns": int(result.ts[0]) if len(result.ts) else None,
        "end_ns": int(result.ts[-1]) if len(result.ts) else None,
        "fills": len(result.fills),
        "final_equity": float(result.final_equity),
        "total_return": float(result.final_equity / result.starting_cash - 1),
        **({k: v for k, v in metrics.to_dict().items() if k in curve_keys} if metrics else {}),
        "ledger": {k: v for k, v in result.summary.items() if k not in ("replay", "first_fill_wall_s")},
        "settlements": result.settlements,
        "elapsed_s": round(result.elapsed_s, 6),
    }
    if report is not None and metrics is not None:
        from tradewire_backtest.report import write_html_report

        close = np.append(result.close[last], result.close[-1])[: len(ts)]
        write_html_report(report, title=f"{path.name} (event mode)", ts=ts, close=close, equity=equity, trades=[],
                          metrics=metrics)
    return summary
