"""deploy/grafana: the dashboards generated as code are committed as generated, select only metrics the
services export (names and labels), use the provisioned datasource, show what the issue asks for, and
draw the alert thresholds the rules use.

The metric check for the alert rules is in tests/unit/test_prometheus_rules.py; this file applies the
same catalog (``tradewire_common.metrics_catalog``) to every dashboard query and variable.
"""

from __future__ import annotations

import html
import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from types import ModuleType
from typing import Any

import promql_parser
import pytest
from ruamel.yaml import YAML

from tradewire_common.metrics_catalog import ExportedMetric, exported_metrics

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS_DIR = GRAFANA / "dashboards"
PREVIEWS_DIR = GRAFANA / "previews"
DATASOURCES_DIR = GRAFANA / "provisioning" / "datasources"
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"
DEPLOY_README = ROOT / "deploy" / "README.md"
PYPROJECT = ROOT / "pyproject.toml"

STEMS = ("overview", "strategies", "execution", "system")
#: Labels every scraped series gets from Prometheus (job, instance) and the scrape config (service).
TARGET_LABELS = frozenset({"job", "instance", "service"})
#: Series Prometheus makes for every scrape target, with their labels.
SCRAPE_SERIES = {"up": TARGET_LABELS}
#: Grafana's interval variables, which PromQL sees as durations.
INTERVAL_VARIABLES = {"__rate_interval", "__interval", "__range"}
_GRAFANA_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")
_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")

#: What the issue asks each dashboard to show, as panel titles (see NOT_EXPORTED for the notes).
ISSUE_PANELS = {
    "overview": ["Equity", "PnL", "Drawdown", "Exposure", "Trading state", "Kill switch"],
    "strategies": ["Signals per strategy", "Positions per instrument", "PnL, all strategies",
                   "Positions per strategy", "PnL per strategy"],
    "execution": ["Fills per venue", "Slippage", "Order round-trip latency per venue", "Rejects per venue"],
    "system": ["Messages in per service", "Messages out per service", "Market data lag", "JetStream consumer backlog",
               "Dead letters", "Restarts in the last 30 minutes"],
}
#: Panels whose red threshold is the threshold of an alert: (dashboard, panel title, alert).
ALERT_THRESHOLDS = [
    ("execution", "Reject ratio (15 m)", "OrderRejectRatioHigh"),
    ("execution", "Reject ratio per venue (15 m)", "OrderRejectRatioHigh"),
    ("system", "Market data staleness", "MarketDataStale"),
    ("system", "JetStream consumer backlog", "ConsumerLag"),
    ("system", "Restarts in the last 30 minutes", "ServiceRestarting"),
]


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"grafana_{name}", GRAFANA / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


generate = _load("generate")
preview = _load("preview")
DASHBOARDS: dict[str, dict[str, Any]] = {
    path.stem: json.loads(path.read_text()) for path in sorted(DASHBOARDS_DIR.glob("*.json"))
}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included (rows themselves are not yielded)."""
    for panel in dashboard.get("panels", []):
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def queries() -> Iterator[tuple[str, str, str]]:
    """(dashboard, panel title, expression) of every panel query."""
    for stem, dashboard in DASHBOARDS.items():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                yield stem, panel["title"], target["expr"]


def variables() -> Iterator[tuple[str, dict[str, Any]]]:
    for stem, dashboard in DASHBOARDS.items():
        for variable in dashboard.get("templating", {}).get("list", []):
            yield stem, variable


def as_promql(expr: str) -> str:
    """A Grafana query as plain PromQL: interval variables become 5m, every other variable ``.+``
    (they only appear inside regex matchers)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return "5m" if name in INTERVAL_VARIABLES else ".+"

    return _GRAFANA_VARIABLE.sub(value, expr)


def walk(node: promql_parser.Expr) -> list[Any]:
    found: list[Any] = []

    def visit(child: object) -> bool:
        found.append(child)
        return True

    promql_parser.walk(node, visit)
    return found


def selectors(node: promql_parser.Expr) -> list[promql_parser.VectorSelector]:
    return [n for n in walk(node) if isinstance(n, promql_parser.VectorSelector)]


def series_index() -> dict[str, ExportedMetric]:
    """Every sample name the services can expose, to the metric that exposes it."""
    return {series: metric for metric in exported_metrics() for series in metric.series}


def recording_rules() -> set[str]:
    return {
        rule["record"]
        for path in sorted(RULES_DIR.glob("*.yml"))
        for group in YAML(typ="safe").load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def alert_exprs() -> dict[str, promql_parser.Expr]:
    return {
        rule.get("alert") or rule["record"]: promql_parser.parse(str(rule["expr"]))
        for path in sorted(RULES_DIR.glob("*.yml"))
        for group in YAML(typ="safe").load(path.read_text())["groups"]
        for rule in group["rules"]
    }


def labels_of(selector: promql_parser.VectorSelector, index: dict[str, ExportedMetric]) -> set[str] | None:
    """The labels the series a selector names can carry (None: a recording rule, labels unknown)."""
    names = [selector.name] if selector.name else []
    names += [m.value for m in selector.matchers.matchers if m.name == "__name__" and str(m.op) == "MatchOp.Equal"]
    patterns = [m.value for m in selector.matchers.matchers if m.name == "__name__" and str(m.op) == "MatchOp.Re"]
    matched = [index[n] for n in index if any(re.fullmatch(p, n) for p in patterns)] + [
        index[n] for n in names if n in index
    ]
    scrape = [SCRAPE_SERIES[n] for n in names if n in SCRAPE_SERIES]
    if not matched and not scrape:
        return None
    found = set(TARGET_LABELS)
    for metric in matched:
        found |= set(metric.labels) | ({"le"} if metric.kind == "histogram" else set())
    for extra in scrape:
        found |= extra
    return found


def problems_in(expr: str, index: dict[str, ExportedMetric], records: set[str]) -> list[str]:
    """Metric names no service exports, and labels the selected metrics do not have."""
    tree = promql_parser.parse(as_promql(expr))
    problems: list[str] = []
    for selector in selectors(tree):
        name_patterns = [m.value for m in selector.matchers.matchers if m.name == "__name__"]
        if selector.name is not None:
            if selector.name not in index and selector.name not in SCRAPE_SERIES and selector.name not in records:
                problems.append(f"{selector.name} is not exported")
                continue
        elif not name_patterns:
            problems.append(f"{selector.prettify()} names no metric")
        for pattern in name_patterns:
            if not any(re.fullmatch(pattern, name) for name in index):
                problems.append(f"no exported metric matches {pattern!r}")
        known = labels_of(selector, index)
        if known is not None:
            for matcher in selector.matchers.matchers:
                if matcher.name != "__name__" and matcher.name not in known:
                    problems.append(f"{selector.prettify()}: label {matcher.name!r} is not on the metric")
    for node in walk(tree):
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            if str(node.modifier.type) != "AggModifierType.By":
                continue
            inner = [labels_of(s, index) for s in selectors(node.expr)]
            if any(labels is None for labels in inner):
                continue
            available = set().union(*[labels for labels in inner if labels is not None])
            for label in node.modifier.labels:
                if label not in available:
                    problems.append(f"by ({label}): no metric under it has that label")
    return problems


def comparison_constants(node: promql_parser.Expr) -> set[float]:
    """The numbers an expression compares against (``x > 0.2`` gives 0.2)."""
    return {
        n.rhs.val
        for n in walk(node)
        if isinstance(n, promql_parser.BinaryExpr)
        and str(n.op) in {">", ">=", "<", "<=", "==", "!="}
        and isinstance(n.rhs, promql_parser.NumberLiteral)
    }


def panel(stem: str, title: str) -> dict[str, Any]:
    matches = [p for p in panels(DASHBOARDS[stem]) if p["title"] == title]
    assert len(matches) == 1, f"{stem}: {len(matches)} panels titled {title!r}"
    return matches[0]


def threshold_values(p: dict[str, Any]) -> list[float | None]:
    return [step["value"] for step in p["fieldConfig"]["defaults"]["thresholds"]["steps"]]


def datasource_refs(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            else:
                yield from datasource_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from datasource_refs(value)


# --- generated, committed, pinned -------------------------------------------------------------------

def test_the_committed_dashboards_are_what_the_generator_makes() -> None:
    stale = [str(path.relative_to(ROOT)) for path in generate.stale()]
    assert stale == [], f"out of date: {stale}; run: .venv/bin/python deploy/grafana/generate.py"


def test_there_are_four_dashboards_each_with_a_stable_uid_and_the_tradewire_tag() -> None:
    assert sorted(DASHBOARDS) == sorted(STEMS)
    for stem, dashboard in DASHBOARDS.items():
        assert dashboard["uid"] == f"tradewire-{stem}"
        assert "tradewire" in dashboard["tags"]
        assert dashboard["title"].startswith("Tradewire / ")


def test_the_sdk_is_pinned_with_its_epoch_to_the_11_x_types_and_installed_at_that_version() -> None:
    pins = re.findall(r'"grafana-foundation-sdk==(\d+)!(11\.\d+\.\d+)"', PYPROJECT.read_text())
    assert len(pins) == 1, "pin grafana-foundation-sdk as ==<epoch>!11.x.y (unpinned, it resolves to 10.1)"
    epoch, types = pins[0]
    assert version("grafana-foundation-sdk") == f"{epoch}!{types}"
    assert all(d["schemaVersion"] >= 39 for d in DASHBOARDS.values())


def test_the_generator_reports_a_hand_edited_dashboard_as_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for path in DASHBOARDS_DIR.glob("*.json"):
        (tmp_path / path.name).write_text(path.read_text())
    edited = tmp_path / "overview.json"
    edited.write_text(edited.read_text().replace('"Kill switch"', '"Kill switch (edited)"'))
    (tmp_path / "extra.json").write_text("{}\n")
    monkeypatch.setattr(generate, "DASHBOARDS_DIR", tmp_path)
    assert sorted(p.name for p in generate.stale()) == ["extra.json", "overview.json"]


# --- every query selects what the services export ---------------------------------------------------

QUERIES = list(queries())


def test_every_dashboard_has_queries() -> None:
    assert {stem for stem, _, _ in QUERIES} == set(STEMS)


@pytest.mark.parametrize("stem, title, expr", QUERIES, ids=[f"{s}:{t}:{i}" for i, (s, t, _) in enumerate(QUERIES)])
def test_every_panel_query_parses_as_promql(stem: str, title: str, expr: str) -> None:
    assert isinstance(promql_parser.parse(as_promql(expr)), promql_parser.Expr)


def test_every_metric_and_label_a_dashboard_query_selects_is_exported_by_a_service() -> None:
    index, records = series_index(), recording_rules()
    problems = [f"{stem} / {title}: {p}" for stem, title, expr in QUERIES for p in problems_in(expr, index, records)]
    assert problems == []


def test_every_template_variable_lists_a_label_of_an_exported_metric() -> None:
    index = series_index()
    seen = []
    for stem, variable in variables():
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        match = _LABEL_VALUES.match(query)
        assert match, f"{stem} ${variable['name']}: {query!r} is not label_values(<selector>, <label>)"
        selector = promql_parser.parse(match["selector"])
        assert isinstance(selector, promql_parser.VectorSelector)
        labels = labels_of(selector, index)
        assert labels is not None, f"{stem} ${variable['name']}: {selector.name} is not exported"
        assert match["label"] in labels, f"{stem} ${variable['name']}: {selector.name} has no label {match['label']}"
        assert match["label"] == variable["name"]
        seen.append((stem, variable["name"]))
    assert {("strategies", "strategy"), ("strategies", "instrument"), ("execution", "venue"),
            ("system", "service")} <= set(seen)


def test_a_variable_is_only_used_where_its_dashboard_defines_it() -> None:
    for stem, dashboard in DASHBOARDS.items():
        defined = {v["name"] for v in dashboard.get("templating", {}).get("list", [])} | INTERVAL_VARIABLES
        for _, title, expr in (q for q in QUERIES if q[0] == stem):
            used = {m.group(1) or m.group(2) for m in _GRAFANA_VARIABLE.finditer(expr)}
            assert used <= defined, f"{stem} / {title}: undefined {used - defined}"


@pytest.mark.parametrize("expr, problem", [
    ('sum by (venue) (rate(tradewire_execution_fils_total{venue=~"$venue"}[$__rate_interval]))',
     "tradewire_execution_fils_total is not exported"),
    ("rate(tradewire_execution_fills_bucket[5m])", "tradewire_execution_fills_bucket is not exported"),
    ("tradewire_ledger_equity_value_total", "tradewire_ledger_equity_value_total is not exported"),
    ('tradewire_execution_fills_total{instrument="BTCUSDT"}', "label 'instrument' is not on the metric"),
    ("sum by (strategy) (tradewire_execution_fills_total)", "by (strategy): no metric under it has that label"),
    ('{__name__=~"tradewire_[a-z]+_dead_leters_total"}', "no exported metric matches"),
])
def test_the_check_catches_a_misspelt_metric_a_wrong_suffix_and_a_missing_label(expr: str, problem: str) -> None:
    problems = problems_in(expr, series_index(), recording_rules())
    assert any(problem in p for p in problems), problems


def test_the_check_accepts_histogram_counter_and_scrape_series_and_recording_rules() -> None:
    exprs = [
        'histogram_quantile(0.9, sum by (le, venue) (rate(tradewire_execution_order_round_trip_seconds_bucket[5m])))',
        "tradewire_execution_order_round_trip_seconds_count + tradewire_execution_order_round_trip_seconds_sum",
        'sum by (service) (rate({__name__=~"tradewire_[a-z]+_messages_in_total", service=~"$service"}[5m]))',
        'up{job=~"tradewire-.+"} * 0 + tradewire:market_data_staleness:seconds{instrument=~"$instrument"}',
    ]
    assert [p for e in exprs for p in problems_in(e, series_index(), recording_rules())] == []


# --- datasource, panels, thresholds -----------------------------------------------------------------

def test_every_datasource_reference_is_the_provisioned_prometheus_datasource() -> None:
    provisioned = [
        source
        for path in sorted(DATASOURCES_DIR.glob("*.y*ml"))
        for source in YAML(typ="safe").load(path.read_text())["datasources"]
        if source["type"] == "prometheus"
    ]
    uid = provisioned[0]["uid"] if provisioned else "prometheus"
    assert generate.datasource_uid() == uid
    for stem, dashboard in DASHBOARDS.items():
        refs = list(datasource_refs(dashboard))
        assert refs, f"{stem}: no datasource reference"
        assert all(ref == {"type": "prometheus", "uid": uid} for ref in refs), f"{stem}: {refs}"
        for p in panels(dashboard):
            assert p["datasource"] == {"type": "prometheus", "uid": uid}, f"{stem} / {p['title']}"


@pytest.mark.parametrize("stem", STEMS)
def test_each_dashboard_has_the_panels_the_issue_lists(stem: str) -> None:
    titles = [p["title"] for p in panels(DASHBOARDS[stem])]
    assert [t for t in ISSUE_PANELS[stem] if t not in titles] == []
    assert len(titles) == len(set(titles)), "panel titles are unique within a dashboard"


def test_panels_that_wait_for_a_metric_are_notes_naming_metrics_no_service_exports_yet() -> None:
    """A panel whose metric no service exports yet is a note saying so (none today: slippage and the
    per-strategy positions and PnL were the last). Once a service exports one, this fails: replace the
    note with the real panel (and drop its NOT_EXPORTED entry)."""
    index = series_index()
    notes = {(stem, p["title"]) for stem, d in DASHBOARDS.items() for p in panels(d) if p["type"] == "text"}
    expected = {(stem, title) for stem, entries in generate.NOT_EXPORTED.items() for title in entries}
    assert notes == expected
    for stem, entries in generate.NOT_EXPORTED.items():
        for title, (metrics, _why) in entries.items():
            content = panel(stem, title)["options"]["content"]
            for metric in metrics:
                assert f"`{metric}`" in content
                exported = [s for s in index if s == metric or s.startswith(metric + "_")]
                assert exported == [], f"{metric} is exported now: draw {stem} / {title} from it"


def test_the_drawdown_panels_turn_orange_and_red_where_the_drawdown_alerts_fire() -> None:
    rules = alert_exprs()
    numbers = {
        name: [n.val for n in walk(rules[name]) if isinstance(n, promql_parser.NumberLiteral)]
        for name in ("tradewire:drawdown_limit:ratio", "DrawdownNearLimit")
    }
    (limit,), (factor,) = numbers["tradewire:drawdown_limit:ratio"], numbers["DrawdownNearLimit"]
    near_names = {s.name for s in selectors(rules["DrawdownNearLimit"])}
    assert near_names == {"tradewire_ledger_drawdown_ratio", "tradewire:drawdown_limit:ratio"}
    for title in ("Drawdown", "Current drawdown"):
        p = panel("overview", title)
        assert [t["expr"] for t in p["targets"]] == ["tradewire_ledger_drawdown_ratio"]
        assert threshold_values(p) == [None, pytest.approx(factor * limit), pytest.approx(limit)]
        assert p["fieldConfig"]["defaults"]["unit"] == "percentunit"
    custom = panel("overview", "Drawdown")["fieldConfig"]["defaults"]["custom"]
    assert custom["thresholdsStyle"]["mode"] != "off"


@pytest.mark.parametrize("stem, title, alert", ALERT_THRESHOLDS, ids=[f"{s}:{t}" for s, t, _ in ALERT_THRESHOLDS])
def test_panels_mirroring_an_alert_turn_red_at_its_threshold(stem: str, title: str, alert: str) -> None:
    red = threshold_values(panel(stem, title))[-1]
    assert red in comparison_constants(alert_exprs()[alert])


def test_the_trading_state_and_kill_switch_panels_name_each_state() -> None:
    state = panel("overview", "Trading state")["fieldConfig"]["defaults"]["mappings"][0]["options"]
    assert {k: v["text"] for k, v in state.items()} == {"0": "ACTIVE", "1": "REDUCING", "2": "HALTED"}
    kill = panel("overview", "Kill switch")["fieldConfig"]["defaults"]["mappings"][0]["options"]
    assert kill["1"] == {"text": "ENGAGED", "color": "red", "index": 1}


def test_units_fit_what_the_panels_show() -> None:
    expected = {
        ("overview", "Equity"): "short", ("overview", "Exposure"): "percentunit",
        ("execution", "Order round-trip latency per venue"): "s", ("system", "Resident memory"): "bytes",
        ("system", "Market data lag"): "s", ("strategies", "Tick-to-order latency per strategy"): "s",
    }
    assert {key: panel(*key)["fieldConfig"]["defaults"]["unit"] for key in expected} == expected


def test_panels_tile_the_24_column_grid_without_overlapping() -> None:
    for stem, dashboard in DASHBOARDS.items():
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids)), f"{stem}: duplicate panel ids"
        cells: dict[tuple[int, int], str] = {}
        for p in dashboard["panels"]:
            g = p["gridPos"]
            assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, f"{stem} / {p['title']}: {g}"
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, f"{stem}: {p['title']} overlaps {cells[(x, y)]}"
                    cells[(x, y)] = p["title"]


# --- pictures in the README ---------------------------------------------------------------------------

@pytest.mark.parametrize("stem", STEMS)
def test_the_deploy_readme_shows_a_picture_of_each_dashboard(stem: str) -> None:
    picture = PREVIEWS_DIR / f"{stem}.png"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"grafana/previews/{stem}.png" in DEPLOY_README.read_text()


def test_the_pictures_were_drawn_from_the_committed_dashboards() -> None:
    drawn = json.loads((PREVIEWS_DIR / "sources.json").read_text())
    assert drawn == preview.fingerprints(), "pictures out of date; run: .venv/bin/python deploy/grafana/preview.py"


@pytest.mark.parametrize("stem", STEMS)
def test_the_preview_page_draws_every_panel_and_variable_of_the_dashboard(stem: str) -> None:
    document, height = preview.page(stem, DASHBOARDS[stem])
    for p in DASHBOARDS[stem]["panels"]:
        assert f">{html.escape(p['title'])}</" in document
    for variable in DASHBOARDS[stem].get("templating", {}).get("list", []):
        assert f"<b>{html.escape(variable['label'])}</b>" in document
    assert height > max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in DASHBOARDS[stem]["panels"]) * preview.ROW_H
