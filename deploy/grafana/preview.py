"""Pictures of the dashboards without Grafana: each dashboard's JSON drawn as an HTML page (its grid of
panels, titles, units, thresholds, value mappings and legends, with synthetic sample series) and
screenshotted by headless Chromium into ``deploy/grafana/previews/<name>.png`` for the README.

The sample data are made up (seeded, so a re-run draws the same picture); the layout, titles, units,
thresholds and legends are the dashboard's own. Needs Debian's ``chromium`` package::

    .venv/bin/python deploy/grafana/preview.py              # all four
    .venv/bin/python deploy/grafana/preview.py --html DIR   # only write the HTML pages
"""

from __future__ import annotations

import argparse
import hashlib
import html
import itertools
import json
import math
import random
import re
import shutil
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS_DIR = GRAFANA / "dashboards"
PREVIEWS_DIR = GRAFANA / "previews"
#: sha256 of each dashboard's JSON as last drawn (the test tells when a picture is out of date).
SOURCES = PREVIEWS_DIR / "sources.json"

WIDTH = 1440  # page width in CSS pixels
PAD = 16
ROW_H = 30  # Grafana's grid: 24 columns, rows of 30 px with 8 px gaps
GAP = 8
POINTS = 72  # samples per synthetic series (6 h at 5 min)
#: Sample label values for legends ({{strategy}} ...).
SAMPLE_LABELS: dict[str, list[str]] = {
    "strategy": ["sma_cross", "breakout"],
    "instrument": ["BTCUSDT.BINANCE", "ETHUSDT.BINANCE"],
    "venue": ["BINANCE"],
    "service": ["datafeed", "signals", "risk", "execution", "ledger"],
    "status": ["filled", "accepted", "rejected"],
    "type": ["submit", "cancel"],
    "reason": ["MAX_EXPOSURE", "ALREADY_IN_POSITION"],
    "consumer": ["risk-signals", "ledger-orders"],
}
#: Dead letters' reasons are the bus's (decode, rejected), not risk's denial codes.
DEAD_LETTER_LABELS = {"reason": ["decode", "rejected"], "service": ["risk", "ledger"]}
COLORS = {"green": "#73bf69", "orange": "#ff9830", "red": "#f2495c", "blue": "#5794f2", "yellow": "#fade2a"}
PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#705da0"]

CSS = """
body { margin: 0; background: #111217; color: #ccccdc; font: 15px/1.35 'DejaVu Sans', sans-serif; }
.top { padding: 12px 16px 6px; display: flex; align-items: baseline; gap: 18px; flex-wrap: wrap; }
.top h1 { font-size: 22px; margin: 0; color: #fff; font-weight: 600; }
.chip { background: #22252b; border: 1px solid #34373e; border-radius: 3px; padding: 3px 9px; font-size: 14px; }
.chip b { color: #8e8e9e; font-weight: normal; margin-right: 6px; }
.note { color: #8e8e9e; font-size: 13px; padding: 0 16px 8px; }
.grid { position: relative; margin: 0 16px; }
.panel { position: absolute; background: #181b1f; border: 1px solid #24272e; border-radius: 3px; overflow: hidden; }
.panel h2 { font-size: 15px; margin: 0; padding: 6px 10px 2px; color: #e0e0ec; font-weight: 600;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.row { position: absolute; font-size: 17px; color: #fff; font-weight: 600; padding-top: 4px; }
.row::before { content: '\\2304  '; color: #8e8e9e; }
.legend { font-size: 13px; padding: 0 10px; line-height: 1.5; }
.legend span { margin-right: 14px; }
.legend i { display: inline-block; width: 14px; height: 4px; margin-right: 5px; vertical-align: middle; }
.stats { display: flex; gap: 6px; padding: 4px 8px 8px; height: calc(100% - 40px); box-sizing: border-box; }
.stat { flex: 1; border-radius: 3px; display: flex; flex-direction: column; align-items: center;
  justify-content: center; font-weight: 600; min-width: 0; }
.stat .v { font-size: 30px; }
.stat .n { font-size: 12px; font-weight: normal; opacity: .85; }
.text { padding: 2px 12px; font-size: 14px; }
.text code { background: #22252b; padding: 1px 4px; border-radius: 2px; font-size: 13px; }
.text ul { margin: 4px 0; padding-left: 20px; }
.text p { margin: 4px 0; }
.bar { display: flex; align-items: center; gap: 8px; padding: 4px 10px; font-size: 13px; }
.bar .name { width: 90px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.bar .track { flex: 1; height: 22px; background: #22252b; }
.bar .fill { height: 100%; }
.bar .val { width: 50px; text-align: right; font-weight: 600; }
"""


# --- sample data -------------------------------------------------------------------------------------

def _rng(*parts: str) -> random.Random:
    return random.Random(zlib.crc32("/".join(parts).encode()))


def series_names(legend: str, expr: str = "") -> list[str]:
    """The legend of each sample series: ``{{venue}} p95`` with every sample venue (at most 6)."""
    labels = re.findall(r"\{\{(\w+)\}\}", legend)
    if not labels:
        return [legend if legend and legend != "__auto" else "value"]
    samples = {**SAMPLE_LABELS, **(DEAD_LETTER_LABELS if "dead_letters" in expr else {})}
    combos = itertools.product(*[samples.get(label, [label]) for label in labels])
    names = []
    for combo in itertools.islice(combos, 6):
        name = legend
        for label, value in zip(labels, combo, strict=True):
            name = name.replace("{{" + label + "}}", value)
        names.append(name)
    return names


def _walk(rng: random.Random, start: float, step: float, low: float, high: float) -> list[float]:
    values, value = [], start
    for _ in range(POINTS):
        value = min(high, max(low, value + rng.gauss(0, step)))
        values.append(value)
    return values


#: Legend words of series that are a small share of their panel (rejects among orders, ...).
_RARE = ("rejected", "cancel", "canceled", "denied", "ALREADY_IN_POSITION")


def sample(panel: dict[str, Any], target: dict[str, Any], name: str) -> list[float]:
    """A plausible series for a query: its scale from the unit, thresholds and expression."""
    rng = _rng(target["expr"], name)  # a stat and a graph of the same query show the same data
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
    expr = target["expr"]
    values = [s["value"] for s in _thresholds(panel) if s["value"] is not None]
    alarm = any(0 < v < 0.001 for v in values)
    steps = [v for v in values if v >= 0.001]
    if alarm or "retries" in expr:  # errors, rejects, dead letters, retries: nearly always none
        return [float(rng.random() < 0.012) for _ in range(POINTS)]
    if "drawdown" in expr:
        top = steps[0] * 0.85 if steps else 0.05
        return [abs(math.sin(i / 14)) * top * (0.6 + 0.4 * i / POINTS) for i in range(POINTS)]
    if "histogram_quantile" in expr:
        q = float(re.findall(r"histogram_quantile\(([0-9.]+)", expr)[0])
        if "slippage" in expr:  # signed, a few basis points around a small cost
            return [0.0003 + 0.004 * (q - 0.5) + 0.0002 * (rng.random() - 0.5) for _ in range(POINTS)]
        base = 0.002 if "round_trip" in expr else 0.02
        return [max(0.0005, base * (1 + 6 * q**4) * (1 + 0.25 * rng.random())) for _ in range(POINTS)]
    if "changes(" in expr:  # restarts: one service restarted once
        return [float(name == "execution")] * POINTS
    if "$__range" in expr:  # totals over the time range
        return [float(round(rng.uniform(120, 400)))] * POINTS
    if unit == "percentunit":
        if "limit" in name:
            return [0.25] * POINTS
        if steps:
            return _walk(rng, steps[-1] * 0.3, steps[-1] * 0.05, 0, steps[-1] * 0.7)
        if "cpu" in expr:
            return _walk(rng, 0.05, 0.01, 0.01, 0.2)
        if "replay" in expr:
            return [min(1.0, i / (POINTS * 0.8)) for i in range(POINTS)]
        return _walk(rng, 0.1, 0.02, 0, 0.25)
    if "notional" in expr:
        return [round(v / 500) * 500 for v in _walk(rng, 800, 250, -1500, 2500)]
    if unit == "short" and "_value" in expr:  # money
        if "pnl" in expr:
            return _walk(rng, 50, 40, -400, 600)
        if "cash" in expr:
            return _walk(rng, 8500, 60, 7000, 9500)
        if "exposure" in expr:
            return _walk(rng, 1200, 80, 0, 2500)
        walk = _walk(rng, 10100, 40, 9700, 10500)
        return list(itertools.accumulate(walk, max)) if "peak" in expr else walk
    if unit == "bytes":
        return _walk(rng, 80e6, 2e6, 50e6, 140e6)
    if unit == "s":
        if "staleness" in expr:
            return _walk(rng, 60, 8, 30, 120)
        if "uptime" in expr:
            start = rng.uniform(2, 30) * 3600
            return [start + 300 * i for i in range(POINTS)]
        return _walk(rng, 0.05, 0.01, 0.001, 0.3)
    if "pending" in expr:
        return [round(v) for v in _walk(rng, 40, 15, 0, 400)]
    if "open_orders" in expr:
        return [round(v) for v in _walk(rng, 2, 1, 0, 6)]
    share = 0.15 if any(word in name for word in _RARE) else 1.0
    if "/min" in unit or "/s" in unit:
        return [share * v for v in _walk(rng, 1.5, 0.4, 0, 4)]
    return [share * v for v in _walk(rng, 3, 1, 0, 8)]


def _thresholds(panel: dict[str, Any]) -> list[dict[str, Any]]:
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    steps: list[dict[str, Any]] = defaults.get("thresholds", {}).get("steps", [])
    return steps


def fmt(value: float, unit: str, decimals: int | None = None) -> str:
    if value == 0:
        return "0"
    if unit == "percentunit":
        return f"{value * 100:.{1 if decimals is None else decimals}f}%"
    if unit == "s":
        if value < 1:
            return f"{value * 1000:.0f} ms"
        if value >= 3600:
            return f"{value / 3600:.1f} h"
        return f"{value:.0f} s"
    if unit == "bytes":
        return f"{value / 1e6:.0f} MB"
    suffix = unit.split(":", 1)[1].strip() if unit.startswith("suffix:") else ""
    if abs(value) >= 1000:
        text = f"{value / 1000:.{1 if decimals is None else min(decimals, 2)}f}k"
    elif decimals is not None:
        text = f"{value:.{decimals}f}"
    else:
        text = f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{text} {suffix}".strip()


def _color(name: str) -> str:
    return COLORS.get(name, name)


def _step_color(panel: dict[str, Any], value: float) -> str:
    color = "blue"
    for step in _thresholds(panel):
        if step["value"] is None or value >= step["value"]:
            color = step["color"]
    return _color(color)


def _mapped(panel: dict[str, Any], value: float) -> tuple[str, str] | None:
    for mapping in panel.get("fieldConfig", {}).get("defaults", {}).get("mappings", []):
        hit = mapping.get("options", {}).get(str(int(value)))
        if hit:
            return str(hit["text"]), _color(hit["color"])
    return None


# --- panels ------------------------------------------------------------------------------------------

def _series(panel: dict[str, Any]) -> Iterator[tuple[str, list[float]]]:
    for target in panel.get("targets", []):
        for name in series_names(target.get("legendFormat", ""), target["expr"]):
            yield name, sample(panel, target, name)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round axis values (1, 2 or 5 times a power of ten apart) covering low..high, as Grafana draws."""
    raw = max(high - low, 1e-9) / (count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = [first + k * step for k in range(count + 2)]
    return [t for t in ticks if t <= high + step * 0.999][: count + 1]


def legend_lines(panel: dict[str, Any], width: float) -> int:
    """How many lines the legend wraps to (about 7.5 px a character, 34 px per key and gap)."""
    lines, used = 1, 0.0
    for name, _ in _series(panel):
        item = len(name) * 7.5 + 34
        if used and used + item > width - 20:
            lines, used = lines + 1, 0.0
        used += item
    return lines


def timeseries_svg(panel: dict[str, Any], width: float, height: float) -> str:
    defaults = panel["fieldConfig"]["defaults"]
    unit, custom = defaults.get("unit", "short"), defaults.get("custom", {})
    series = list(_series(panel))
    stacked = custom.get("stacking", {}).get("mode") == "normal"
    bars = custom.get("drawStyle") == "bars"
    if stacked:
        sums = [0.0] * POINTS
        stacked_series = []
        for name, values in series:
            sums = [s + v for s, v in zip(sums, values, strict=True)]
            stacked_series.append((name, list(sums)))
        series = stacked_series
    lines = [s["value"] for s in _thresholds(panel) if s["value"] is not None]
    show_lines = custom.get("thresholdsStyle", {}).get("mode", "off") != "off"
    everything = [v for _, values in series for v in values] + (lines if show_lines else [])
    if bars or stacked:
        everything.append(0.0)
    low = float(min(everything) if defaults.get("min") is None else defaults["min"])
    high = float(max([*everything, custom.get("axisSoftMax", low), low + 1e-9]))
    ticks = nice_ticks(low, high)
    low, high = min(low, ticks[0]), max(high, ticks[-1])
    left, bottom = 64.0, 22.0
    plot_w, plot_h = width - left - 10, height - bottom - 6

    def y(v: float) -> float:
        return 6 + plot_h - (v - low) / (high - low) * plot_h

    def x(i: int) -> float:
        return left + i / (POINTS - 1) * plot_w

    out = [f'<svg width="{width:.0f}" height="{height:.0f}" xmlns="http://www.w3.org/2000/svg">']
    for v in ticks:
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#2c3037"/>')
        out.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" fill="#9fa0ad" font-size="12" text-anchor="end">'
                   f"{html.escape(fmt(v, unit))}</text>")
    for k, label in enumerate(["-6h", "-5h", "-4h", "-3h", "-2h", "-1h", "now"]):
        out.append(f'<text x="{left + plot_w * k / 6:.1f}" y="{height - 4}" fill="#9fa0ad" font-size="12" '
                   f'text-anchor="middle">{label}</text>')
    by_threshold = defaults.get("color", {}).get("mode") == "thresholds"
    for index, (_, values) in reversed(list(enumerate(series))):
        color = PALETTE[index % len(PALETTE)]
        if bars:
            w = plot_w / POINTS * 0.7
            for i, v in enumerate(values):
                if v > low:
                    fill = _step_color(panel, v) if by_threshold else color
                    out.append(f'<rect x="{x(i) - w / 2:.1f}" y="{y(v):.1f}" width="{w:.1f}" '
                               f'height="{max(0.5, y(low) - y(v)):.1f}" fill="{fill}" fill-opacity="0.8"/>')
        else:
            points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
            out.append(f'<polygon points="{x(0):.1f},{y(max(low, 0)):.1f} {points} {x(POINTS - 1):.1f},'
                       f'{y(max(low, 0)):.1f}" fill="{color}" fill-opacity="0.08"/>')
            out.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.6"/>')
    if show_lines:
        for step in _thresholds(panel):
            if step["value"] is not None and low <= step["value"] <= high:
                out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(step["value"]):.1f}" '
                           f'y2="{y(step["value"]):.1f}" stroke="{_color(step["color"])}" stroke-dasharray="8 6" '
                           'stroke-width="1.5"/>')
    out.append("</svg>")
    legend = "".join(
        f'<span><i style="background:{PALETTE[i % len(PALETTE)]}"></i>{html.escape(name)}</span>'
        for i, (name, _) in enumerate(series)
    )
    return "".join(out) + f'<div class="legend">{legend}</div>'


def stat_html(panel: dict[str, Any]) -> str:
    defaults = panel["fieldConfig"]["defaults"]
    unit, decimals = defaults.get("unit", "short"), defaults.get("decimals")
    background = panel.get("options", {}).get("colorMode") == "background"
    boxes = []
    series = list(_series(panel))
    for name, values in series:
        value = values[-1]
        if defaults.get("mappings"):  # states: show the healthy one
            options = defaults["mappings"][0]["options"]
            value = float(next(key for key, hit in options.items() if hit["color"] == "green"))
        mapped = _mapped(panel, value)
        text, color = mapped or (fmt(value, unit, decimals), _step_color(panel, value))
        style = f"background:{color};color:#fff" if background else f"color:{color}"
        caption = f'<span class="n">{html.escape(name)}</span>' if len(series) > 1 else ""
        size = 30 if len(series) <= 2 else 18
        boxes.append(f'<div class="stat" style="{style}"><span class="v" style="font-size:{size}px">'
                     f"{html.escape(text)}</span>{caption}</div>")
    return f'<div class="stats">{"".join(boxes)}</div>'


def bargauge_html(panel: dict[str, Any]) -> str:
    unit = panel["fieldConfig"]["defaults"].get("unit", "short")
    series = [(name, abs(values[-1])) for name, values in _series(panel)]
    top = max(v for _, v in series) or 1.0
    return "".join(
        f'<div class="bar"><span class="name">{html.escape(name)}</span><div class="track"><div class="fill" '
        f'style="width:{v / top * 100:.0f}%;background:linear-gradient(90deg,#1f60c4,#5794f2)"></div></div>'
        f'<span class="val">{html.escape(fmt(round(v), unit))}</span></div>'
        for name, v in series
    )


def _for_query(panel: dict[str, Any], ref_id: str) -> dict[str, Any]:
    """The panel as one query's series see it: its ``byFrameRefID`` overrides applied."""
    defaults = dict(panel.get("fieldConfig", {}).get("defaults", {}))
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        if override["matcher"] == {"id": "byFrameRefID", "options": ref_id}:
            defaults.update({prop["id"]: prop["value"] for prop in override["properties"]})
    return {**panel, "fieldConfig": {"defaults": defaults}}


def timeline_html(panel: dict[str, Any], width: float) -> str:
    rows = []
    for index, target in enumerate(panel.get("targets", [])):
        name = target.get("legendFormat", "")
        # trading state ACTIVE, REDUCING, HALTED by the kill switch, ACTIVE again
        segments = [(0.0, 0.45, 0), (0.45, 0.6, 1), (0.6, 0.75, 2), (0.75, 1.0, 0)] if index == 0 else [
            (0.0, 0.6, 0), (0.6, 0.75, 1), (0.75, 1.0, 0)]
        own = _for_query(panel, target["refId"])
        cells = "".join(
            f'<div style="position:absolute;left:{a * 100:.0f}%;width:{(b - a) * 100:.0f}%;top:0;bottom:0;'
            f'background:{(_mapped(own, v) or ("", "#555"))[1]};color:#fff;font-size:13px;padding:10px 6px;'
            f'box-sizing:border-box;border-right:2px solid #181b1f">{html.escape((_mapped(own, v) or ("", ""))[0])}'
            "</div>"
            for a, b, v in segments
        )
        rows.append(
            f'<div style="display:flex;align-items:center;gap:8px;padding:4px 10px"><span style="width:100px;'
            f'font-size:13px">{html.escape(name)}</span><div style="position:relative;flex:1;height:40px">{cells}'
            "</div></div>"
        )
    return "".join(rows)


def markdown_html(content: str) -> str:
    out, in_list = [], False
    for line in content.splitlines():
        text = html.escape(line)
        text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
        text = re.sub(r"`(.+?)`", r"<code>\1</code>", text)
        if line.startswith("* "):
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{text[2:]}</li>")
            continue
        if in_list:
            out.append("</ul>")
            in_list = False
        if line.strip():
            out.append(f"<p>{text}</p>")
    if in_list:
        out.append("</ul>")
    return f'<div class="text">{"".join(out)}</div>'


def panel_html(panel: dict[str, Any], col: float) -> str:
    g = panel["gridPos"]
    left, top = g["x"] * col, g["y"] * (ROW_H + GAP)
    width, height = g["w"] * col - GAP, g["h"] * (ROW_H + GAP) - GAP
    box = f"left:{left:.0f}px;top:{top}px;width:{width:.0f}px;height:{height}px"
    if panel["type"] == "row":
        return f'<div class="row" style="{box}">{html.escape(panel["title"])}</div>'
    kind = panel["type"]
    if kind == "timeseries":
        body = timeseries_svg(panel, width - 2, height - 38 - 20 * legend_lines(panel, width))
    elif kind == "stat":
        body = stat_html(panel)
    elif kind == "bargauge":
        body = bargauge_html(panel)
    elif kind == "state-timeline":
        body = timeline_html(panel, width)
    elif kind == "text":
        body = markdown_html(panel["options"]["content"])
    else:
        body = f'<div class="text">{html.escape(kind)}</div>'
    return f'<div class="panel" style="{box}"><h2>{html.escape(panel["title"])}</h2>{body}</div>'


def page(stem: str, dashboard: dict[str, Any]) -> tuple[str, int]:
    """The HTML page of one dashboard and its height in pixels."""
    col = (WIDTH - 2 * PAD + GAP) / 24
    panels = dashboard["panels"]
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    grid_height = bottom * (ROW_H + GAP)
    chips = "".join(
        f'<span class="chip"><b>{html.escape(v.get("label") or v["name"])}</b>All</span>'
        for v in dashboard.get("templating", {}).get("list", [])
    )
    body = "".join(panel_html(p, col) for p in panels)
    document = (
        f"<!doctype html><html><head><meta charset='utf-8'><style>{CSS}</style></head><body>"
        f'<div class="top"><h1>{html.escape(dashboard["title"])}</h1>{chips}'
        '<span class="chip"><b>time</b>Last 6 hours</span><span class="chip"><b>refresh</b>'
        f'{html.escape(dashboard.get("refresh", ""))}</span></div>'
        f'<div class="note">Preview of deploy/grafana/dashboards/{stem}.json drawn without Grafana: layout, titles, '
        "units, thresholds and legends are the dashboard's; the data are synthetic.</div>"
        f'<div class="grid" style="height:{grid_height}px">{body}</div></body></html>'
    )
    return document, grid_height + 110


def fingerprints() -> dict[str, str]:
    """sha256 of every dashboard's JSON file, by name."""
    return {
        path.stem: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(DASHBOARDS_DIR.glob("*.json"))
    }


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("chromium is not installed (apt-get install chromium); --html writes the pages only")


def screenshot(browser: str, source: Path, target: Path, height: int) -> None:
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1",
         f"--window-size={WIDTH},{height}", f"--screenshot={target}", source.as_uri()],
        check=True, capture_output=True, timeout=120,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--html", type=Path, help="write the HTML pages into this directory and stop")
    parser.add_argument("--out", type=Path, default=PREVIEWS_DIR, help="where the PNGs go")
    args = parser.parse_args(argv)
    pages = {
        path.stem: page(path.stem, json.loads(path.read_text())) for path in sorted(DASHBOARDS_DIR.glob("*.json"))
    }
    if args.html:
        args.html.mkdir(parents=True, exist_ok=True)
        for stem, (document, _) in pages.items():
            (args.html / f"{stem}.html").write_text(document)
        return 0
    browser = chromium()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for stem, (document, height) in pages.items():
            source = Path(tmp) / f"{stem}.html"
            source.write_text(document)
            screenshot(browser, source, args.out / f"{stem}.png", height)
            print(f"wrote {(args.out / f'{stem}.png').relative_to(ROOT) if args.out == PREVIEWS_DIR else stem}")
    if args.out == PREVIEWS_DIR:
        SOURCES.write_text(json.dumps(fingerprints(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
