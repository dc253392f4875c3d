"""The HTML report: one offline file, escaped text, bounded size, correct monthly figures."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradewire_backtest.metrics import compute_metrics
from tradewire_backtest.report import minmax_indices, monthly_returns, render_html_report, write_html_report

DAY = 86_400 * 10**9
T0 = 1_704_067_200 * 10**9  # 2024-01-01T00:00:00Z


@dataclass(frozen=True)
class Tr:
    entry_idx: int
    exit_idx: int
    side: int | str
    qty: float
    entry_px: float
    exit_px: float
    pnl: float
    fees: float


def synthetic(n: int, step: int = DAY, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ts = T0 + np.arange(n, dtype=np.int64) * step
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    equity = 10_000 * np.exp(np.cumsum(rng.normal(0.0005, 0.01, n)))
    return ts, close, equity


def report(tmp_path: Path, n: int = 200, trades: list[Tr] | None = None, **kw: object) -> str:
    ts, close, equity = synthetic(n)
    trades = trades if trades is not None else [Tr(10, 30, 1, 1.0, close[10], close[30], 5.0, 0.1),
                                                Tr(40, 60, "SELL", 1.0, close[40], close[60], -3.0, 0.1),
                                                Tr(150, -1, "BUY", 2.0, close[150], 0.0, 0.0, 0.2)]
    metrics = compute_metrics(equity, ts, trades)
    path = write_html_report(tmp_path / "sub" / "r.html", title=str(kw.pop("title", "demo")), ts=ts, close=close,
                             equity=equity, trades=trades, metrics=metrics, **kw)  # type: ignore[arg-type]
    return path.read_text(encoding="utf-8")


def test_the_report_is_one_self_contained_file_without_scripts_or_external_resources(tmp_path: Path) -> None:
    text = report(tmp_path)
    assert text.startswith("<!DOCTYPE html>")
    assert "<script" not in text.lower()
    assert not re.search(r"\b(src|href)\s*=", text, re.I)
    assert "@import" not in text and "url(" not in text
    assert set(re.findall(r"https?://[^\s\"'<>]+", text)) == {"http://www.w3.org/2000/svg"}  # the SVG namespace only
    assert text.count("<svg") == 3  # equity, drawdown, price with trades
    for heading in ("Equity", "Drawdown", "Price and trades", "Monthly returns", "Metrics", "Trades"):
        assert f"<h2>{heading}</h2>" in text


def test_all_text_is_html_escaped(tmp_path: Path) -> None:
    text = report(tmp_path, title='<script>alert("x")</script> & <marquee>')
    assert "<script" not in text and "<marquee" not in text
    escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;marquee&gt;"
    assert f"<title>{escaped}</title>" in text and f"<h1>{escaped}</h1>" in text


def test_trades_appear_as_entry_and_exit_markers_on_the_price_chart(tmp_path: Path) -> None:
    text = report(tmp_path)
    price_svg = text.split("<h2>Price and trades</h2>")[1].split("</svg>")[0]
    assert len(re.findall(r"<polygon [^>]*fill=\"#15803d\"><title>#\d+ Long entry", price_svg)) == 2
    assert len(re.findall(r"<polygon [^>]*fill=\"#dc2626\"><title>#\d+ Short entry", price_svg)) == 1
    assert len(re.findall(r"<circle [^>]*><title>#\d+ exit", price_svg)) == 2  # the open trade has no exit yet
    assert "#1 exit 2024-01-31" in price_svg  # bar 30 of a daily series from 2024-01-01


def test_metrics_table_shows_infinite_and_undefined_values_readably(tmp_path: Path) -> None:
    ts, close, equity = synthetic(50)
    trades = [Tr(1, 5, 1, 1.0, 100.0, 101.0, 1.0, 0.0)]
    text = render_html_report(title="t", ts=ts, close=close, equity=equity, trades=trades,
                              metrics=compute_metrics(equity, ts, trades))
    assert "<tr><th>Profit factor</th><td>∞</td></tr>" in text
    no_trades = render_html_report(title="t", ts=ts, close=close, equity=equity, trades=[],
                                   metrics=compute_metrics(equity, ts, []))
    assert "<tr><th>Profit factor</th><td>n/a</td></tr>" in no_trades
    assert "No trades." in no_trades


def test_monthly_returns_compound_month_end_equity_like_pandas(tmp_path: Path) -> None:
    ts, _, equity = synthetic(120, step=DAY // 2)  # two bars a day, about two months
    got = monthly_returns(ts, equity)
    s = pd.Series(equity, index=pd.to_datetime(ts, utc=True))
    month_end = s.resample("ME").last()
    expected = month_end / pd.concat([pd.Series([equity[0]]), pd.Series(month_end.values[:-1])]).values - 1
    assert list(got) == [(d.year, d.month) for d in month_end.index]
    np.testing.assert_allclose(list(got.values()), expected.values)


def test_the_monthly_heatmap_colours_gains_green_and_losses_red(tmp_path: Path) -> None:
    ts, close, equity = synthetic(40)
    monthly = {(2023, 11): 0.05, (2023, 12): -0.10, (2024, 1): 0.02}
    text = render_html_report(title="t", ts=ts, close=close, equity=equity, trades=[],
                              metrics=compute_metrics(equity, ts, []), monthly=monthly)
    heat = text.split("<table class=heat>")[1].split("</table>")[0]
    assert "<th>2023</th>" in heat and "<th>2024</th>" in heat
    assert re.search(r'rgba\(22,163,74,[0-9.]+\)">5\.0%', heat)
    assert re.search(r'rgba\(220,38,38,[0-9.]+\)">-10\.0%', heat)
    assert f"{(1.05 * 0.90 - 1) * 100:.1f}%" in heat  # 2023 compounded


def test_minmax_downsampling_keeps_the_extremes_and_the_ends() -> None:
    rng = np.random.default_rng(1)
    y = np.cumsum(rng.normal(size=100_003))
    idx = minmax_indices(y, 500)
    assert len(idx) <= 502
    assert np.all(np.diff(idx) > 0)
    assert idx[0] == 0 and idx[-1] == len(y) - 1
    assert np.argmin(y) in idx and np.argmax(y) in idx
    assert np.array_equal(minmax_indices(y[:300], 500), np.arange(300))


def test_a_long_run_makes_a_small_report_with_at_most_max_points_per_line(tmp_path: Path) -> None:
    n = 1_000_000
    ts, close, equity = synthetic(n, step=60 * 10**9)
    entries = np.arange(100, n - 200, 200)
    trades = [Tr(int(e), int(e) + 100, 1, 1.0, close[e], close[e + 100], 1.0, 0.0) for e in entries]
    path = write_html_report(tmp_path / "big.html", title="big", ts=ts, close=close, equity=equity, trades=trades,
                             metrics=compute_metrics(equity, ts, trades), max_markers=300)
    text = path.read_text()
    assert path.stat().st_size < 400_000
    for points in re.findall(r'<polyline [^>]*points="([^"]*)"', text):
        assert len(points.split()) <= 2002
    assert f"(markers for 300 of {len(trades):,} trades)" in text
    assert f"First 200 of {len(trades):,} trades." in text


def test_a_one_bar_run_still_renders(tmp_path: Path) -> None:
    ts = np.array([T0], dtype=np.int64)
    text = render_html_report(title="one", ts=ts, close=np.array([100.0]), equity=np.array([1000.0]), trades=[],
                              metrics=compute_metrics(np.array([1000.0]), ts, []))
    assert text.count("<svg") == 3 and "nan" not in text.lower()


def test_series_of_different_lengths_are_rejected(tmp_path: Path) -> None:
    ts, close, equity = synthetic(20)
    with pytest.raises(ValueError, match="length"):
        render_html_report(title="t", ts=ts, close=close[:-1], equity=equity, trades=[],
                           metrics=compute_metrics(equity, ts, []))
