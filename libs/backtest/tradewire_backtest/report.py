"""One self-contained HTML backtest report: inline SVG charts and CSS, no JavaScript, no network.

Sections: headline figures, equity curve, drawdown (underwater) chart, price with the trades'
entries and exits, monthly returns heatmap (year × month, compounded yearly total), the metrics
table and the first trades. Long series are downsampled for the SVG by keeping each bucket's
minimum and maximum (``max_points`` per chart), so extremes survive and a 10M-bar report stays a
few hundred kilobytes. Every piece of text is HTML-escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tradewire_backtest.metrics import Metrics, TradeLike, drawdown, side_sign

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
MonthlyReturns = Mapping[tuple[int, int], float]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_W, _ML, _MR, _MT, _MB = 1000, 72, 16, 12, 26  # chart width and margins (SVG user units)
_GREEN, _RED, _BLUE, _GREY = "#15803d", "#dc2626", "#2563eb", "#6b7280"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _dt(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(ns) // 1000)


def _fmt_time(ns: int, with_time: bool) -> str:
    return _dt(ns).strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


def _intraday(ts: IntArray) -> bool:
    """Whether any timestamp is not at midnight UTC (then times are shown, not only dates)."""
    return bool(np.any(ts % (86_400 * 10**9)))


# -- data preparation -------------------------------------------------------------------------


def minmax_indices(y: npt.ArrayLike, max_points: int = 2000) -> IntArray:
    """Indices to draw ``y`` with at most ``max_points`` (+2) points: the first and last point plus
    each bucket's minimum and maximum, in order. All indices when ``y`` is short enough."""
    arr = np.asarray(y, dtype=np.float64)
    n = arr.size
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    buckets = max(1, (max_points - 2) // 2)
    k = -(-n // buckets)  # bucket length
    m = n // k
    body = arr[: m * k].reshape(m, k)
    offsets = np.arange(m, dtype=np.int64) * k
    parts = [np.array([0, n - 1], dtype=np.int64), offsets + np.argmin(body, axis=1), offsets + np.argmax(body, axis=1)]
    if m * k < n:
        tail = arr[m * k :]
        parts.append(np.array([m * k + int(np.argmin(tail)), m * k + int(np.argmax(tail))], dtype=np.int64))
    return np.unique(np.concatenate(parts))


def monthly_returns(ts: npt.ArrayLike, equity: npt.ArrayLike) -> dict[tuple[int, int], float]:
    """``{(year, month): return}`` in UTC calendar months: month-end equity over the previous
    month-end's (the first month over the first bar's equity)."""
    stamps = np.asarray(ts, dtype=np.int64)
    eq = np.asarray(equity, dtype=np.float64)
    if stamps.size == 0:
        return {}
    months = stamps.astype("datetime64[ns]").astype("datetime64[M]").astype(np.int64)
    ends = np.append(np.flatnonzero(np.diff(months)), months.size - 1)
    closes = eq[ends]
    refs = np.concatenate(([eq[0]], closes[:-1]))
    out: dict[tuple[int, int], float] = {}
    for month, ref, last in zip(months[ends].tolist(), refs.tolist(), closes.tolist(), strict=True):
        out[(1970 + month // 12, month % 12 + 1)] = last / ref - 1.0 if ref > 0 else math.nan
    return out


# -- formatting -------------------------------------------------------------------------------


def _fmt_num(v: float, digits: int = 2) -> str:
    if not math.isfinite(v):
        return "∞" if v == math.inf else "-∞" if v == -math.inf else "n/a"
    a = abs(v)
    if a >= 1e9:
        return f"{v / 1e9:.{digits}f}B"
    if a >= 1e6:
        return f"{v / 1e6:.{digits}f}M"
    if a >= 1e4:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def _fmt_px(v: float) -> str:
    """A price: cents above 1,000, four decimals above 1, six significant digits below."""
    if not math.isfinite(v):
        return _fmt_num(v)
    return f"{v:,.2f}" if abs(v) >= 1000 else f"{v:,.4f}" if abs(v) >= 1 else f"{v:.6g}"


def _fmt_pct(v: float, digits: int = 2) -> str:
    return f"{v * 100:.{digits}f}%" if math.isfinite(v) else _fmt_num(v)


def _fmt_duration(seconds: float) -> str:
    s = round(seconds)
    d, rem = divmod(s, 86_400)
    h, rem = divmod(rem, 3_600)
    m = rem // 60
    if d:
        return f"{d}d {h}h"
    if h:
        return f"{h}h {m}m"
    return f"{m}m {rem % 60}s" if m else f"{s}s"


#: (attribute, label, format) of the metrics table.
_METRIC_ROWS: tuple[tuple[str, str, str], ...] = (
    ("total_return", "Total return", "pct"), ("cagr", "CAGR", "pct"), ("volatility", "Volatility (ann.)", "pct"),
    ("sharpe", "Sharpe", "ratio"), ("sortino", "Sortino", "ratio"), ("calmar", "Calmar", "ratio"),
    ("max_drawdown", "Max drawdown", "pct"), ("max_drawdown_bars", "Longest drawdown (bars)", "int"),
    ("max_drawdown_seconds", "Longest drawdown (time)", "duration"), ("trades", "Trades", "int"),
    ("closed_trades", "Closed trades", "int"), ("win_rate", "Win rate", "pct"),
    ("profit_factor", "Profit factor", "ratio"), ("expectancy", "Expectancy / trade", "money"),
    ("avg_win", "Average win", "money"), ("avg_loss", "Average loss", "money"),
    ("win_loss_ratio", "Win/loss ratio", "ratio"), ("exposure", "Exposure", "pct"),
    ("turnover", "Turnover (× mean equity)", "ratio"), ("total_fees", "Fees", "money"),
    ("bars", "Bars", "int"), ("years", "Years", "num"), ("bars_per_year", "Bars per year", "num"),
)


def _fmt_metric(value: float | int, kind: str) -> str:
    if kind == "int":
        return f"{int(value):,}"
    v = float(value)
    if not math.isfinite(v):
        return _fmt_num(v)
    if kind == "pct":
        return _fmt_pct(v)
    if kind == "duration":
        return _fmt_duration(v)
    return _fmt_num(v, 2 if kind == "money" else 3)


# -- SVG --------------------------------------------------------------------------------------


def _nice_ticks(lo: float, hi: float, count: int = 5) -> tuple[list[float], float]:
    """Round tick values within ``[lo, hi]`` (steps of 1, 2, 2.5 or 5 × 10^k) and the step."""
    span = hi - lo
    if not span > 0:
        return [lo], 1.0
    raw = span / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(mag * f for f in (1, 2, 2.5, 5, 10) if mag * f >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)], step


def _tick_label(v: float, step: float, fmt: str, top: float) -> str:
    """Axis label with as many decimals as the tick step needs (percent, or a number with a k/M/B suffix)."""
    scale, suffix = 1.0, ""
    if fmt == "pct":
        scale, suffix = 0.01, "%"
    elif top >= 1e9:
        scale, suffix = 1e9, "B"
    elif top >= 1e6:
        scale, suffix = 1e6, "M"
    decimals = max(0, math.ceil(-math.log10(step / scale) - 1e-9)) if step > 0 else 0
    if step / scale * 10**decimals % 1 > 1e-6:  # 2.5-steps need one more digit
        decimals += 1
    return f"{v / scale:,.{min(decimals, 8)}f}{suffix}"


class _Frame:
    """Maps (ns timestamp, value) to SVG coordinates within the plot area of one chart."""

    def __init__(self, t0: int, t1: int, lo: float, hi: float, height: int, *, pad: float = 0.05) -> None:
        if not hi > lo:
            lo, hi = lo - max(abs(lo) * 0.01, 1e-9), hi + max(abs(hi) * 0.01, 1e-9)
        margin = (hi - lo) * pad
        self.lo, self.hi = lo - margin, hi + margin
        self.t0, self.t1 = t0, max(t1, t0 + 1)
        self.height = height
        self.x0, self.x1 = _ML, _W - _MR
        self.y0, self.y1 = _MT, height - _MB

    def xs(self, t: IntArray) -> FloatArray:
        return self.x0 + (t - self.t0).astype(np.float64) / float(self.t1 - self.t0) * (self.x1 - self.x0)

    def ys(self, v: FloatArray) -> FloatArray:
        return self.y1 - (v - self.lo) / (self.hi - self.lo) * (self.y1 - self.y0)

    def axes(self, fmt_y: str, n_x_ticks: int = 6) -> str:
        parts = [f'<rect x="{self.x0}" y="{self.y0}" width="{self.x1 - self.x0}" height="{self.y1 - self.y0}" '
                 'class="plot"/>']
        ticks, step = _nice_ticks(self.lo, self.hi)
        top = max(abs(self.lo), abs(self.hi))
        for v in ticks:
            y = float(self.ys(np.array([v]))[0])
            label = _tick_label(v, step, fmt_y, top)
            parts.append(f'<line x1="{self.x0}" x2="{self.x1}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                         f'<text x="{self.x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{_e(label)}</text>')
        span = self.t1 - self.t0
        for i in range(n_x_ticks):
            t = self.t0 + span * i // (n_x_ticks - 1)
            x = float(self.xs(np.array([t], dtype=np.int64))[0])
            anchor = "start" if i == 0 else "end" if i == n_x_ticks - 1 else "middle"
            parts.append(f'<text x="{x:.1f}" y="{self.height - 8}" text-anchor="{anchor}">'
                         f"{_e(_fmt_time(t, span < 3 * 86_400 * 10**9))}</text>")
        return "".join(parts)


def _points(xs: FloatArray, ys: FloatArray) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs.tolist(), ys.tolist(), strict=True))


def _svg(height: int, body: str, label: str) -> str:
    return (f'<svg viewBox="0 0 {_W} {height}" role="img" aria-label="{_e(label)}" '
            f'xmlns="http://www.w3.org/2000/svg">{body}</svg>')


def _line_chart(ts: IntArray, y: FloatArray, *, height: int, label: str, color: str, max_points: int) -> str:
    idx = minmax_indices(y, max_points)
    t, v = ts[idx], y[idx]
    frame = _Frame(int(ts[0]), int(ts[-1]), float(v.min()), float(v.max()), height)
    line = f'<polyline fill="none" stroke="{color}" stroke-width="1.3" points="{_points(frame.xs(t), frame.ys(v))}"/>'
    return _svg(height, frame.axes("num") + line, label)


def _drawdown_chart(ts: IntArray, dd: FloatArray, *, height: int, max_points: int) -> str:
    idx = minmax_indices(dd, max_points)
    t, v = ts[idx], -dd[idx]
    frame = _Frame(int(ts[0]), int(ts[-1]), min(float(v.min()), -1e-4), 0.0, height, pad=0.03)
    xs, ys = frame.xs(t), frame.ys(v)
    zero = float(frame.ys(np.array([0.0]))[0])
    area = f"{xs[0]:.1f},{zero:.1f} {_points(xs, ys)} {xs[-1]:.1f},{zero:.1f}"
    body = (frame.axes("pct") + f'<polygon fill="{_RED}" fill-opacity="0.25" stroke="none" points="{area}"/>'
            f'<polyline fill="none" stroke="{_RED}" stroke-width="1.1" points="{_points(xs, ys)}"/>')
    return _svg(height, body, "Drawdown")


def _marker_px(px: float, idx: int, close: FloatArray) -> float:
    return px if math.isfinite(px) and px > 0 else float(close[idx])


def _price_chart(
    ts: IntArray, close: FloatArray, trades: Sequence[TradeLike], *, height: int, max_points: int, max_markers: int
) -> tuple[str, int]:
    n = close.size
    idx = minmax_indices(close, max_points)
    t, v = ts[idx], close[idx]
    frame = _Frame(int(ts[0]), int(ts[-1]), float(v.min()), float(v.max()), height)
    body = [frame.axes("num"),
            f'<polyline fill="none" stroke="{_GREY}" stroke-width="1.1" points="{_points(frame.xs(t), frame.ys(v))}"/>']
    shown = [i for i, tr in enumerate(trades) if 0 <= tr.entry_idx < n]
    if len(shown) > max_markers:
        shown = [shown[int(j)] for j in np.linspace(0, len(shown) - 1, max_markers).round().astype(np.int64)]
    with_time = _intraday(ts)
    marks: list[str] = []
    for i in shown:
        tr = trades[i]
        sign = side_sign(tr.side)
        e_idx = int(tr.entry_idx)
        ex = float(frame.xs(ts[e_idx : e_idx + 1])[0])
        ey = float(frame.ys(np.array([_marker_px(float(tr.entry_px), e_idx, close)]))[0])
        kind = "Long" if sign > 0 else "Short"
        tip = f"#{i + 1} {kind} entry {_fmt_time(int(ts[e_idx]), with_time)} @ {_fmt_px(float(tr.entry_px))}"
        colour = _GREEN if sign > 0 else _RED
        tri = (f"{ex:.1f},{ey + 1:.1f} {ex - 5:.1f},{ey + 10:.1f} {ex + 5:.1f},{ey + 10:.1f}" if sign > 0
               else f"{ex:.1f},{ey - 1:.1f} {ex - 5:.1f},{ey - 10:.1f} {ex + 5:.1f},{ey - 10:.1f}")
        x_idx = int(tr.exit_idx)
        if 0 <= x_idx < n:
            xx = float(frame.xs(ts[x_idx : x_idx + 1])[0])
            xy = float(frame.ys(np.array([_marker_px(float(tr.exit_px), x_idx, close)]))[0])
            pnl = float(tr.pnl)
            link = _GREEN if pnl > 0 else _RED
            marks.append(f'<line x1="{ex:.1f}" y1="{ey:.1f}" x2="{xx:.1f}" y2="{xy:.1f}" stroke="{link}" '
                         'stroke-width="1" stroke-dasharray="3 2" opacity="0.7"/>')
            exit_tip = (f"#{i + 1} exit {_fmt_time(int(ts[x_idx]), with_time)} @ {_fmt_px(float(tr.exit_px))}, "
                        f"pnl {_fmt_num(pnl)}")
            marks.append(f'<circle cx="{xx:.1f}" cy="{xy:.1f}" r="3.5" fill="#fff" stroke="#111827" stroke-width="1.3">'
                         f"<title>{_e(exit_tip)}</title></circle>")
        marks.append(f'<polygon points="{tri}" fill="{colour}"><title>{_e(tip)}</title></polygon>')
    body.extend(marks)
    return _svg(height, "".join(body), "Price with trades"), len(shown)


# -- tables -----------------------------------------------------------------------------------


def _heat(r: float, scale: float) -> str:
    if not math.isfinite(r):
        return ""
    alpha = 0.12 + 0.78 * min(1.0, abs(r) / scale) if scale > 0 else 0.12
    rgb = "22,163,74" if r >= 0 else "220,38,38"
    return f' style="background:rgba({rgb},{alpha:.2f})"'


def _monthly_table(monthly: MonthlyReturns) -> str:
    if not monthly:
        return "<p class=note>No monthly returns.</p>"
    values = [abs(v) for v in monthly.values() if math.isfinite(v)]
    scale = float(np.percentile(values, 95)) if values else 0.0
    head = "".join(f"<th>{m}</th>" for m in _MONTHS)
    rows = []
    for year in sorted({y for y, _ in monthly}):
        cells, growth = [], 1.0
        for month in range(1, 13):
            r = monthly.get((year, month))
            if r is None:
                cells.append("<td></td>")
                continue
            if math.isfinite(r):
                growth *= 1.0 + r
            cells.append(f"<td{_heat(r, scale)}>{_e(_fmt_pct(r, 1))}</td>")
        total = growth - 1.0
        rows.append(f"<tr><th>{year}</th>{''.join(cells)}<td class=year{_heat(total, scale * 3)}>"
                    f"{_e(_fmt_pct(total, 1))}</td></tr>")
    return f"<table class=heat><tr><th></th>{head}<th>Year</th></tr>{''.join(rows)}</table>"


def _metrics_table(metrics: Metrics) -> str:
    rows = [f"<tr><th>{_e(label)}</th><td>{_e(_fmt_metric(getattr(metrics, key), kind))}</td></tr>"
            for key, label, kind in _METRIC_ROWS]
    half = (len(rows) + 1) // 2
    return (f"<div class=cols><table class=metrics>{''.join(rows[:half])}</table>"
            f"<table class=metrics>{''.join(rows[half:])}</table></div>")


def _trades_table(ts: IntArray, trades: Sequence[TradeLike], limit: int) -> str:
    if not trades:
        return "<p class=note>No trades.</p>"
    n = ts.size
    with_time = _intraday(ts)

    def when(i: int) -> str:
        return _fmt_time(int(ts[i]), with_time) if 0 <= i < n else "open" if i < 0 else str(i)

    rows = []
    for i, tr in enumerate(trades[:limit]):
        sign = side_sign(tr.side)
        pnl = float(tr.pnl)
        is_open = tr.exit_idx < 0
        cls = "" if is_open else " class=pos" if pnl > 0 else " class=neg" if pnl < 0 else ""
        rows.append(
            f"<tr><td>{i + 1}</td><td>{'Long' if sign > 0 else 'Short'}</td><td>{_e(when(int(tr.entry_idx)))}</td>"
            f"<td>{_e(_fmt_px(float(tr.entry_px)))}</td><td>{_e(when(int(tr.exit_idx)))}</td>"
            f"<td>{'' if is_open else _e(_fmt_px(float(tr.exit_px)))}</td><td>{_e(_fmt_num(float(tr.qty), 6))}</td>"
            f"<td{cls}>{_e(_fmt_num(pnl))}</td><td>{_e(_fmt_num(float(tr.fees)))}</td></tr>")
    more = f"<p class=note>First {limit:,} of {len(trades):,} trades.</p>" if len(trades) > limit else ""
    return ("<table class=trades><tr><th>#</th><th>Side</th><th>Entry</th><th>Entry px</th><th>Exit</th>"
            f"<th>Exit px</th><th>Qty</th><th>PnL</th><th>Fees</th></tr>{''.join(rows)}</table>{more}")


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111827;background:#f8fafc;margin:0}
main{max-width:1100px;margin:0 auto;padding:20px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:26px 0 8px}
.sub,.note{color:#6b7280;font-size:13px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:16px 0}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:10px 14px;min-width:120px}
.card b{display:block;font-size:20px}.card span{color:#6b7280;font-size:12px}
section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:8px 12px;margin:12px 0}
svg{width:100%;height:auto;display:block;font-size:11px;fill:#374151}
svg .plot{fill:#fff;stroke:#e5e7eb}svg .grid{stroke:#eef0f3;stroke-width:1}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
td,th{padding:4px 8px;text-align:right;border-bottom:1px solid #f1f5f9}
.metrics th{text-align:left;font-weight:normal;color:#374151}.metrics td{font-weight:600}
.cols{display:flex;gap:40px;flex-wrap:wrap}
.heat td,.heat th{border:1px solid #fff;min-width:54px;font-size:12px}.heat .year{font-weight:600}
.trades{width:100%;font-size:12px}.pos{color:#15803d}.neg{color:#dc2626}
.legend span{margin-right:14px}
"""


def render_html_report(
    *,
    title: str,
    ts: npt.ArrayLike,
    close: npt.ArrayLike,
    equity: npt.ArrayLike,
    trades: Sequence[TradeLike],
    metrics: Metrics,
    monthly: MonthlyReturns | None = None,
    max_points: int = 2000,
    max_markers: int = 1000,
    max_trade_rows: int = 200,
) -> str:
    """The report as an HTML string (see :func:`write_html_report`)."""
    stamps = np.asarray(ts, dtype=np.int64)
    px = np.asarray(close, dtype=np.float64)
    eq = np.asarray(equity, dtype=np.float64)
    if stamps.size == 0 or not stamps.size == px.size == eq.size:
        raise ValueError(f"ts, close and equity need one equal, non-zero length ({stamps.size}, {px.size}, {eq.size})")
    months = monthly_returns(stamps, eq) if monthly is None else monthly
    with_time = _intraday(stamps)
    first, last = _fmt_time(int(stamps[0]), with_time), _fmt_time(int(stamps[-1]), with_time)
    period = f"{first} → {last} UTC · {stamps.size:,} bars"
    cards = "".join(
        f"<div class=card><span>{_e(label)}</span><b>{_e(text)}</b></div>"
        for label, text in (
            ("Total return", _fmt_pct(metrics.total_return)), ("CAGR", _fmt_pct(metrics.cagr)),
            ("Sharpe", _fmt_metric(metrics.sharpe, "ratio")), ("Max drawdown", _fmt_pct(metrics.max_drawdown)),
            ("Trades", f"{metrics.trades:,}"), ("Win rate", _fmt_pct(metrics.win_rate, 1)),
            ("Final equity", _fmt_num(float(eq[-1]))),
        )
    )
    price_svg, n_marked = _price_chart(stamps, px, trades, height=320, max_points=max_points, max_markers=max_markers)
    n_entries = sum(1 for tr in trades if 0 <= tr.entry_idx < px.size)
    marked_note = f" (markers for {n_marked:,} of {n_entries:,} trades)" if n_marked < n_entries else ""
    legend = (f'<p class="note legend"><span style="color:{_GREEN}">▲ long entry</span>'
              f'<span style="color:{_RED}">▼ short entry</span><span>○ exit</span>'
              f"<span>dashed: entry → exit, green = profit</span>{_e(marked_note)}</p>")
    return "".join((
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        '<meta name=viewport content="width=device-width,initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{_e(title)}</h1><div class=sub>{_e(period)}</div><div class=cards>{cards}</div>",
        "<h2>Equity</h2><section>",
        _line_chart(stamps, eq, height=280, label="Equity curve", color=_BLUE, max_points=max_points),
        "</section><h2>Drawdown</h2><section>",
        _drawdown_chart(stamps, drawdown(eq), height=170, max_points=max_points),
        f"</section><h2>Price and trades</h2><section>{price_svg}{legend}</section>",
        f"<h2>Monthly returns</h2><section>{_monthly_table(months)}</section>",
        f"<h2>Metrics</h2><section>{_metrics_table(metrics)}</section>",
        f"<h2>Trades</h2><section>{_trades_table(stamps, trades, max_trade_rows)}</section>",
        "</main></body></html>\n",
    ))


def write_html_report(
    path: str | Path,
    *,
    title: str,
    ts: npt.ArrayLike,
    close: npt.ArrayLike,
    equity: npt.ArrayLike,
    trades: Sequence[TradeLike],
    metrics: Metrics,
    monthly: MonthlyReturns | None = None,
    max_points: int = 2000,
    max_markers: int = 1000,
    max_trade_rows: int = 200,
) -> Path:
    """Write the report to ``path`` (UTF-8) and return it. ``ts`` are nanosecond timestamps, one per
    bar like ``close`` and ``equity``; ``monthly`` (``{(year, month): return}``) defaults to
    :func:`monthly_returns` of the equity. At most ``max_points`` points per chart, ``max_markers``
    trades marked on the price chart (evenly chosen) and ``max_trade_rows`` rows in the trade list.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        render_html_report(title=title, ts=ts, close=close, equity=equity, trades=trades, metrics=metrics,
                           monthly=monthly, max_points=max_points, max_markers=max_markers,
                           max_trade_rows=max_trade_rows),
        encoding="utf-8",
    )
    return out
