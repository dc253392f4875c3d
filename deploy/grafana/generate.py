"""Generate Tradewire's Grafana dashboards with grafana-foundation-sdk (dashboards as code).

Writes ``deploy/grafana/dashboards/{overview,strategies,execution,system}.json``, which Grafana loads
from files (``deploy/grafana/provisioning/dashboards/tradewire.yml``; the k8s ConfigMap is made from
the same files by ``deploy/k8s/generate.py``). The JSON is never edited by hand: change this file
and regenerate. ``tests/unit/test_grafana_dashboards.py`` fails while a committed file differs from a
fresh generation, and checks every PromQL expression against the metrics the services export
(``python -m tradewire_common.metrics_catalog``).

* Every panel, query and variable uses the provisioned Prometheus datasource, by the uid read from
  ``deploy/grafana/provisioning/datasources/`` (``prometheus`` while there is no such file).
* Thresholds that mirror an alert (drawdown near/over the limit, reject ratio, data staleness,
  consumer backlog, restarts) are read from ``deploy/prometheus/rules/*.yml``, so a dashboard turns
  orange or red where the alert fires.
* What a dashboard should show but no service exports yet is a text panel naming the metric it waits
  for (``NOT_EXPORTED``, empty now); the test fails once the metric exists, so the note is replaced
  by the real panel.

Usage::

    .venv/bin/python deploy/grafana/generate.py           # write the dashboards
    .venv/bin/python deploy/grafana/generate.py --check   # exit 1 if a committed dashboard is out of date
    .venv/bin/python deploy/k8s/generate.py               # then refresh the k8s ConfigMap
    .venv/bin/python deploy/grafana/preview.py            # and the pictures (needs chromium)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import bargauge, common, prometheus, stat, statetimeline, text, timeseries
from grafana_foundation_sdk.builders import dashboard as board
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import text as tm
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS_DIR = GRAFANA / "dashboards"
DATASOURCES_DIR = GRAFANA / "provisioning" / "datasources"
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"
RUN_HINT = "run: .venv/bin/python deploy/grafana/generate.py (then deploy/k8s/generate.py)"
#: The datasource uid when no provisioning file names one.
DEFAULT_DATASOURCE_UID = "prometheus"
TAGS = ["tradewire"]

#: Grafana units (https://grafana.com/docs/grafana/latest/panels-visualizations/configure-standard-options/).
MONEY = "short"  # the portfolio currency (ledger.currency), with k/M suffixes
RATIO = "percentunit"  # 0.1 shows as 10 %
SECONDS = "s"
BYTES = "bytes"
COUNT = "short"
PER_MIN = "suffix: /min"
PER_SEC = "suffix: /s"

GREEN, ORANGE, RED, BLUE = "green", "orange", "red", "blue"
#: The threshold of "anything at all" (errors, rejects, dead letters: bars turn red above it).
ANY = 1e-9

#: Panels whose metric no service exports yet: dashboard -> title -> (metrics it needs, what). Each
#: becomes a ``note`` until the metric exists. (Slippage and the per-strategy positions and PnL, the
#: last ones, are exported now.)
NOT_EXPORTED: dict[str, dict[str, tuple[tuple[str, ...], str]]] = {}


# --- what the dashboards depend on: the datasource and the alert thresholds ------------------------

def datasource_uid(directory: Path = DATASOURCES_DIR) -> str:
    """The uid of the provisioned Prometheus datasource (the default one if several)."""
    found: list[tuple[bool, str]] = []
    for path in sorted([*directory.glob("*.yml"), *directory.glob("*.yaml")]):
        for source in (YAML(typ="safe").load(path.read_text()) or {}).get("datasources") or []:
            if source.get("type") == "prometheus" and source.get("uid"):
                found.append((bool(source.get("isDefault")), str(source["uid"])))
    if not found:
        return DEFAULT_DATASOURCE_UID
    return sorted(found, key=lambda f: not f[0])[0][1]


@dataclass(frozen=True)
class AlertLimits:
    """The numbers in the alert rules that the dashboards draw as thresholds."""

    drawdown_limit: float  # tradewire:drawdown_limit:ratio
    drawdown_near_factor: float  # DrawdownNearLimit: this × the limit
    reject_ratio: float  # OrderRejectRatioHigh
    staleness_s: float  # MarketDataStale
    consumer_backlog: float  # ConsumerLag
    restarts: float  # ServiceRestarting (changes over 30 m)

    @property
    def drawdown_near(self) -> float:
        return round(self.drawdown_near_factor * self.drawdown_limit, 6)


def _rule_exprs(directory: Path) -> dict[str, str]:
    exprs: dict[str, str] = {}
    for path in sorted(directory.glob("*.yml")):
        for group in YAML(typ="safe").load(path.read_text())["groups"]:
            for rule in group["rules"]:
                exprs[rule.get("alert") or rule["record"]] = " ".join(str(rule["expr"]).split())
    return exprs


def _number(exprs: dict[str, str], rule: str, pattern: str) -> float:
    match = re.search(pattern, exprs.get(rule, ""))
    if match is None:
        raise SystemExit(f"deploy/prometheus/rules: no threshold of {rule} matches {pattern!r}: update generate.py")
    return float(match.group(1))


def alert_limits(directory: Path = RULES_DIR) -> AlertLimits:
    exprs = _rule_exprs(directory)
    num = r"([0-9]+(?:\.[0-9]+)?)"
    return AlertLimits(
        drawdown_limit=_number(exprs, "tradewire:drawdown_limit:ratio", rf"^vector\({num}\)$"),
        drawdown_near_factor=_number(exprs, "DrawdownNearLimit", rf"{num} \* tradewire:drawdown_limit:ratio"),
        reject_ratio=_number(exprs, "OrderRejectRatioHigh", rf"\[15m\]\)\) > {num}"),
        staleness_s=_number(exprs, "MarketDataStale", rf"tradewire:market_data_staleness:seconds > {num}"),
        consumer_backlog=_number(exprs, "ConsumerLag", rf"\) > {num}$"),
        restarts=_number(exprs, "ServiceRestarting", rf"\[30m\]\) >= {num}$"),
    )


# --- building blocks -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Q:
    """One PromQL query of a panel and the legend of its series."""

    expr: str
    legend: str = ""
    instant: bool = False


class Board:
    """A dashboard under construction: rows and panels in reading order, ids and query refs set here."""

    def __init__(self, uid: str, title: str, description: str, ds: dm.DataSourceRef) -> None:
        self.ds = ds
        self._next_id = 1
        self.builder = (
            board.Dashboard(title)
            .uid(uid)
            .description(description)
            .tags(TAGS)
            .time("now-6h", "now")
            .refresh("30s")
            .timezone("browser")
            .tooltip(dm.DashboardCursorSync.CROSSHAIR)
            .readonly()
            .link(
                board.DashboardLink("Tradewire")
                .type(dm.DashboardLinkType.DASHBOARDS)
                .tags(TAGS)
                .as_dropdown(False)
                .include_vars(False)
                .keep_time(True)
            )
        )

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def row(self, title: str) -> None:
        self.builder.with_row(board.Row(title).id(self._id()))

    def panel(self, panel: Any, queries: Sequence[Q] = ()) -> None:
        panel.id(self._id()).datasource(self.ds)
        for index, query in enumerate(queries):
            target = (
                prometheus.Dataquery()
                .expr(query.expr)
                .legend_format(query.legend or "__auto")
                .ref_id(chr(ord("A") + index))
                .datasource(self.ds)
            )
            panel.with_target(target.instant() if query.instant else target.range())
        self.builder.with_panel(panel)

    def variable(self, name: str, label: str, metric: str, description: str) -> None:
        """A multi-value query variable over one label of one metric, "All" by default."""
        self.builder.with_variable(
            board.QueryVariable(name)
            .label(label)
            .description(description)
            .datasource(self.ds)
            .query(f"label_values({metric}, {name})")
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dm.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(dm.VariableOption(selected=True, text="All", value="$__all"))
        )

    def json(self) -> dict[str, Any]:
        encoded: dict[str, Any] = json.loads(json.dumps(self.builder.build(), cls=JSONEncoder))
        return encoded


def _steps(*steps: tuple[float | None, str]) -> board.ThresholdsConfig:
    return board.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(
        [dm.Threshold(value=value, color=color) for value, color in steps]
    )


def _legend(table: bool = False, calcs: tuple[str, ...] = ()) -> common.VizLegendOptions:
    legend = (
        common.VizLegendOptions()
        .show_legend(True)
        .display_mode(cm.LegendDisplayMode.TABLE if table else cm.LegendDisplayMode.LIST)
        .placement(cm.LegendPlacement.BOTTOM)
    )
    return legend.calcs(list(calcs)) if calcs else legend


def _mapping(values: dict[int, tuple[str, str]]) -> list[dm.ValueMapping]:
    return [
        dm.ValueMap(
            options={
                str(value): dm.ValueMappingResult(text=label, color=color, index=index)
                for index, (value, (label, color)) in enumerate(sorted(values.items()))
            }
        )
    ]


def graph(
    title: str, description: str, unit: str, *, w: int = 12, h: int = 8, bars: bool = False,
    thresholds: tuple[tuple[float | None, str], ...] = (), soft_max: float | None = None,
    minimum: float | None = None, legend_table: bool = False, alarm: bool = False,
) -> timeseries.Panel:
    """A time series panel; thresholds, if any, are drawn as dashed lines. ``bars`` are stacked.
    ``alarm``: a count that should stay at zero, drawn green at zero and red above it."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .span(w)
        .height(h)
        .line_width(1)
        .fill_opacity(80 if bars else 10)
        .show_points(cm.VisibilityMode.NEVER)
        .draw_style(cm.GraphDrawStyle.BARS if bars else cm.GraphDrawStyle.LINE)
        .legend(_legend(legend_table, ("lastNotNull", "max") if legend_table else ()))
        .tooltip(common.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING))
    )
    if thresholds:
        panel.thresholds(_steps(*thresholds)).thresholds_style(
            common.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.DASHED)
        )
    if alarm:
        panel.thresholds(_steps((None, GREEN), (ANY, RED))).color_scheme(
            board.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS)
        )
    if soft_max is not None:
        panel.axis_soft_max(soft_max)
    if minimum is not None:
        panel.min(minimum)
    if bars:  # bars of several series side by side would hide each other
        panel.stacking(common.StackingConfig().mode(cm.StackingMode.NORMAL))
    return panel


def single(
    title: str, description: str, unit: str, *, w: int = 4, h: int = 4,
    thresholds: tuple[tuple[float | None, str], ...] = ((None, BLUE),),
    mapping: dict[int, tuple[str, str]] | None = None, decimals: int | None = None, sparkline: bool = False,
) -> stat.Panel:
    """A stat panel: the last value, coloured by its thresholds or its value mapping."""
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .span(w)
        .height(h)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .color_mode(cm.BigValueColorMode.BACKGROUND if mapping else cm.BigValueColorMode.VALUE)
        .graph_mode(cm.BigValueGraphMode.AREA if sparkline else cm.BigValueGraphMode.NONE)
        .text_mode(cm.BigValueTextMode.AUTO)
        .thresholds(_steps(*thresholds))
    )
    if mapping:
        panel.mappings(_mapping(mapping))
    if decimals is not None:
        panel.decimals(decimals)
    return panel


def bars(
    title: str, description: str, unit: str, *, w: int = 6, h: int = 8,
    thresholds: tuple[tuple[float | None, str], ...] = ((None, BLUE),),
) -> bargauge.Panel:
    """Horizontal bars, one per series (a total per strategy, per service)."""
    return (
        bargauge.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .span(w)
        .height(h)
        .orientation(cm.VizOrientation.HORIZONTAL)
        .display_mode(cm.BarGaugeDisplayMode.GRADIENT)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(_steps(*thresholds))
        .min(0)
    )


def note(dashboard: str, title: str, *, w: int = 12, h: int = 8) -> text.Panel:
    """A text panel standing in for a panel whose metric is not exported yet (see ``NOT_EXPORTED``)."""
    metrics, why = NOT_EXPORTED[dashboard][title]
    names = "\n".join(f"* `{name}`" for name in metrics)
    content = f"**Not exported yet.** {why}\n\nThis panel is drawn once a service exports:\n\n{names}\n"
    return (
        text.Panel()
        .title(title)
        .description("Waiting for a metric: see deploy/grafana/generate.py NOT_EXPORTED.")
        .mode(tm.TextMode.MARKDOWN)
        .content(content)
        .span(w)
        .height(h)
    )


def per_minute(selector: str, by: str) -> str:
    return f"60 * sum by ({by}) (rate({selector}[$__rate_interval]))"


def quantile(q: float, metric: str, by: str, matchers: str = "") -> str:
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{matchers}[$__rate_interval])))"


def named(family: str, matchers: str = "") -> str:
    """A selector of one metric family in every service: ``tradewire_<service>_<family>``."""
    extra = f", {matchers}" if matchers else ""
    return f'{{__name__=~"tradewire_[a-z]+_{family}"{extra}}}'


# --- the four dashboards -----------------------------------------------------------------------------

TRADING_STATES = {0: ("ACTIVE", GREEN), 1: ("REDUCING", ORANGE), 2: ("HALTED", RED)}
KILL_SWITCH = {0: ("released", GREEN), 1: ("ENGAGED", RED)}


def overview(ds: dm.DataSourceRef, limits: AlertLimits) -> dict[str, Any]:
    b = Board(
        "tradewire-overview", "Tradewire / Overview",
        "Equity, PnL, drawdown, exposure, trading state and kill switch (ledger and risk).", ds,
    )
    drawdown = ((None, GREEN), (limits.drawdown_near, ORANGE), (limits.drawdown_limit, RED))
    near_pct, limit_pct = f"{limits.drawdown_near:.0%}", f"{limits.drawdown_limit:.0%}"
    b.row("Now")
    b.panel(
        single("Trading state", "Risk's global trading state (REDUCING: exits only; HALTED: no orders).",
               "none", mapping=TRADING_STATES),
        [Q("tradewire_risk_trading_state_value", "state", instant=True)],
    )
    b.panel(
        single("Kill switch", "ENGAGED: risk lets no order out (tradewire kill-switch status).", "none",
               mapping=KILL_SWITCH),
        [Q("tradewire_risk_kill_switch_engaged_info", "kill switch", instant=True)],
    )
    b.panel(
        single("Current equity", "Portfolio equity in the portfolio currency (ledger).", MONEY, decimals=2,
               sparkline=True),
        [Q("tradewire_ledger_equity_value", "equity")],
    )
    b.panel(
        single("Current PnL", "Realised plus unrealised PnL (ledger).", MONEY, decimals=2, sparkline=True,
               thresholds=((None, RED), (0, GREEN))),
        [Q("tradewire_ledger_realized_pnl_value + tradewire_ledger_unrealized_pnl_value", "PnL")],
    )
    b.panel(
        single("Current drawdown", f"Equity below its peak; alerts at {near_pct} (near) and {limit_pct} (limit).",
               RATIO, decimals=1, thresholds=drawdown),
        [Q("tradewire_ledger_drawdown_ratio", "drawdown")],
    )
    b.panel(
        single("Current exposure", "Gross exposure as a fraction of equity.", RATIO, decimals=1),
        [Q("tradewire_ledger_exposure_ratio", "exposure")],
    )
    b.row("Portfolio")
    b.panel(
        graph("Equity", "Equity, cash and the peak equity the drawdown is measured from.", MONEY),
        [Q("tradewire_ledger_equity_value", "equity"), Q("tradewire_ledger_peak_equity_value", "peak equity"),
         Q("tradewire_ledger_cash_value", "cash")],
    )
    b.panel(
        graph("PnL", "Realised, unrealised and total PnL of the portfolio.", MONEY),
        [Q("tradewire_ledger_realized_pnl_value", "realised"), Q("tradewire_ledger_unrealized_pnl_value", "unrealised"),
         Q("tradewire_ledger_realized_pnl_value + tradewire_ledger_unrealized_pnl_value", "total")],
    )
    b.panel(
        graph("Drawdown",
              f"Fall of equity below its peak. Dashed lines: DrawdownNearLimit ({near_pct}) and DrawdownOverLimit "
              f"({limit_pct}, the recording rule tradewire:drawdown_limit:ratio).",
              RATIO, thresholds=drawdown, soft_max=limits.drawdown_limit * 1.2, minimum=0),
        [Q("tradewire_ledger_drawdown_ratio", "drawdown")],
    )
    b.panel(
        graph("Exposure", "Gross exposure as a fraction of equity, and risk's configured exposure limit.", RATIO,
              minimum=0),
        [Q("tradewire_ledger_exposure_ratio", "exposure"),
         Q('max(tradewire_risk_limit_ratio{limit="max_exposure_pct"})', "limit (risk.max_exposure_pct)")],
    )
    b.row("Risk state")
    b.panel(
        statetimeline.Panel()
        .title("Trading state and kill switch")
        .description("Risk's trading state and kill switch over time.")
        .span(12)
        .height(6)
        .mappings(_mapping(TRADING_STATES))
        .override_by_query("B", [dm.DynamicConfigValue(id_val="mappings", value=_mapping(KILL_SWITCH))])
        .show_value(cm.VisibilityMode.AUTO)
        .merge_values(True)
        .legend(_legend()),
        [Q("tradewire_risk_trading_state_value", "trading state"),
         Q("tradewire_risk_kill_switch_engaged_info", "kill switch")],
    )
    b.panel(
        graph("Gross and net exposure", "Gross (sum of |position|) and net (signed) exposure.", MONEY, h=6),
        [Q("tradewire_ledger_gross_exposure_value", "gross"), Q("tradewire_ledger_net_exposure_value", "net")],
    )
    return b.json()


def strategies(ds: dm.DataSourceRef, limits: AlertLimits) -> dict[str, Any]:
    b = Board(
        "tradewire-strategies", "Tradewire / Strategies",
        "Signals, errors and latency per strategy; positions and PnL per instrument, per strategy and in total.", ds,
    )
    b.variable("strategy", "Strategy", "tradewire_signals_signals_total", "Strategies (signals' strategy label)")
    b.variable("instrument", "Instrument", "tradewire_ledger_position_notional_value", "Instruments held (ledger)")
    s = 'strategy=~"$strategy"'
    b.row("Signals")
    b.panel(
        graph("Signals per strategy", "Signals emitted per minute, per strategy (stacked).", PER_MIN, bars=True),
        [Q(per_minute(f"tradewire_signals_signals_total{{{s}}}", "strategy"), "{{strategy}}")],
    )
    b.panel(
        bars("Signals in the time range", "Signals each strategy emitted in the dashboard's time range.", COUNT),
        [Q(f"sum by (strategy) (increase(tradewire_signals_signals_total{{{s}}}[$__range]))", "{{strategy}}",
           instant=True)],
    )
    b.panel(
        graph("Strategy errors", "Strategy code failures per minute (alert StrategyErrors: any in 10 m).", PER_MIN,
              w=6, bars=True, alarm=True),
        [Q(per_minute(f"tradewire_signals_strategy_errors_total{{{s}}}", "strategy"), "{{strategy}}")],
    )
    b.panel(
        graph("Tick-to-order latency per strategy",
              "From the feed publishing a bar to risk issuing the order it caused (p50 and p95; ledger).", SECONDS),
        [Q(quantile(0.5, "tradewire_ledger_tick_to_order_seconds", "strategy", f"{{{s}}}"), "{{strategy}} p50"),
         Q(quantile(0.95, "tradewire_ledger_tick_to_order_seconds", "strategy", f"{{{s}}}"), "{{strategy}} p95")],
    )
    b.panel(
        graph("Signals denied by risk", "Signals risk denied per minute, by reason code (all strategies).", PER_MIN,
              bars=True),
        [Q(per_minute("tradewire_risk_orders_denied_total", "reason"), "{{reason}}")],
    )
    b.row("Positions and PnL")
    b.panel(
        graph("Positions per instrument", "Signed position notional (quantity × last price) per instrument.",
              MONEY, legend_table=True),
        [Q('tradewire_ledger_position_notional_value{instrument=~"$instrument"}', "{{instrument}}")],
    )
    b.panel(
        graph("PnL, all strategies", "Realised and unrealised PnL of the whole portfolio.", MONEY),
        [Q("tradewire_ledger_realized_pnl_value", "realised"),
         Q("tradewire_ledger_unrealized_pnl_value", "unrealised")],
    )
    b.panel(
        graph("Positions per strategy",
              "Signed position notional (quantity × last price) per strategy and instrument, from the fills each "
              "strategy's orders got (ledger).", MONEY, legend_table=True),
        [Q(f'tradewire_ledger_strategy_position_notional_value{{{s}, instrument=~"$instrument"}}',
           "{{strategy}} {{instrument}}")],
    )
    b.panel(
        graph("PnL per strategy",
              "Realised (fees included) and unrealised PnL per strategy at the portfolio's last prices. Strategies "
              "holding the same instrument each keep their own position, so only their totals add up to the "
              "portfolio's PnL.", MONEY, legend_table=True),
        [Q(f"tradewire_ledger_strategy_realized_pnl_value{{{s}}} + tradewire_ledger_strategy_unrealized_pnl_value"
           f"{{{s}}}", "{{strategy}} total"),
         Q(f"tradewire_ledger_strategy_realized_pnl_value{{{s}}}", "{{strategy}} realised"),
         Q(f"tradewire_ledger_strategy_unrealized_pnl_value{{{s}}}", "{{strategy}} unrealised")],
    )
    return b.json()


def execution(ds: dm.DataSourceRef, limits: AlertLimits) -> dict[str, Any]:
    b = Board(
        "tradewire-execution", "Tradewire / Execution quality",
        "Fills, rejects, order latency and open orders per venue (execution).", ds,
    )
    b.variable("venue", "Venue", "tradewire_execution_order_commands_total", "Venues (execution's venue label)")
    v = 'venue=~"$venue"'
    ratio_q = (
        f'sum by (venue) (increase(tradewire_execution_orders_total{{status="rejected", {v}}}[15m]))'
        f' / sum by (venue) (increase(tradewire_execution_order_commands_total{{type="submit", {v}}}[15m]))'
    )
    reject = ((None, GREEN), (limits.reject_ratio, RED))
    b.row("Now")
    b.panel(
        single("Fills in the time range", "Fills published in the dashboard's time range.", COUNT, w=6),
        [Q(f"sum(increase(tradewire_execution_fills_total{{{v}}}[$__range]))", "fills", instant=True)],
    )
    b.panel(
        single("Reject ratio (15 m)",
               f"Rejected / submitted orders in 15 m (alert OrderRejectRatioHigh over {limits.reject_ratio:.0%}).",
               RATIO, w=6, decimals=1, thresholds=reject),
        [Q(f"max({ratio_q})", "reject ratio")],
    )
    b.panel(
        single("Open orders", "Orders working at the venues.", COUNT, w=6),
        [Q(f"sum(tradewire_execution_open_orders{{{v}}})", "open orders")],
    )
    b.panel(
        single("Order round-trip p95", "95th percentile of risk's SubmitOrder to the venue's answer.", SECONDS, w=6),
        [Q(f"histogram_quantile(0.95, sum by (le) (rate(tradewire_execution_order_round_trip_seconds_bucket{{{v}}}"
           f"[$__rate_interval])))", "p95")],
    )
    b.row("Orders and fills")
    b.panel(
        graph("Fills per venue", "Fills published per minute, per venue.", PER_MIN, bars=True),
        [Q(per_minute(f"tradewire_execution_fills_total{{{v}}}", "venue"), "{{venue}}")],
    )
    b.panel(
        graph("Orders by status", "Order events per minute by resulting status, per venue.", PER_MIN, bars=True),
        [Q(per_minute(f"tradewire_execution_orders_total{{{v}}}", "venue, status"), "{{venue}} {{status}}")],
    )
    b.panel(
        graph("Rejects per venue", "Orders the venue rejected, per minute.", PER_MIN, bars=True, alarm=True),
        [Q(per_minute(f'tradewire_execution_orders_total{{status="rejected", {v}}}', "venue"), "{{venue}}")],
    )
    b.panel(
        graph("Reject ratio per venue (15 m)", "Rejected / submitted orders over 15 minutes; dashed: the alert.",
              RATIO, thresholds=reject, minimum=0, soft_max=limits.reject_ratio * 1.5),
        [Q(ratio_q, "{{venue}}")],
    )
    b.row("Latency and slippage")
    b.panel(
        graph("Order round-trip latency per venue",
              "From risk issuing a SubmitOrder to the venue's answer being published (p50, p95, p99).", SECONDS),
        [Q(quantile(q, "tradewire_execution_order_round_trip_seconds", "venue", f"{{{v}}}"), f"{{{{venue}}}} p{p}")
         for q, p in ((0.5, 50), (0.95, 95), (0.99, 99))],
    )
    b.panel(
        graph("Slippage",
              "Each fill's price against the last bar close when its order arrived at execution, a fraction of it: "
              "positive is worse for the trader (a BUY above, a SELL below), negative better (limit orders). "
              "Median, 95th and 5th percentile per venue.", RATIO),
        [Q(quantile(q, "tradewire_execution_fill_slippage_ratio", "venue", f"{{{v}}}"), f"{{{{venue}}}} p{p}")
         for q, p in ((0.5, 50), (0.95, 95), (0.05, 5))],
    )
    b.panel(
        graph("Open orders per venue", "Orders working at each venue.", COUNT),
        [Q(f"sum by (venue) (tradewire_execution_open_orders{{{v}}})", "{{venue}}")],
    )
    b.panel(
        graph("Order commands per venue", "Order commands received per minute, by type (submit, cancel, ...).",
              PER_MIN, bars=True),
        [Q(per_minute(f"tradewire_execution_order_commands_total{{{v}}}", "venue, type"), "{{venue}} {{type}}")],
    )
    return b.json()


def system(ds: dm.DataSourceRef, limits: AlertLimits) -> dict[str, Any]:
    b = Board(
        "tradewire-system", "Tradewire / System",
        "Readiness, restarts, throughput, lag, dead letters and process resources of the services.", ds,
    )
    b.variable("service", "Service", 'up{job=~"tradewire-.+"}', "Tradewire services (scrape target label)")
    b.variable("instrument", "Instrument", "tradewire_signals_market_events_total", "Instruments of the market data")
    sv = 'service=~"$service"'
    ins = 'instrument=~"$instrument"'
    b.row("Health")
    b.panel(
        single("Ready", "Each service's readiness (broker and store reachable, not draining).", "none", w=8,
               mapping={0: ("NOT READY", RED), 1: ("ready", GREEN)}),
        [Q(f"max by (service) ({named('up_info', sv)})", "{{service}}", instant=True)],
    )
    b.panel(
        single("Scrape target up", "Whether Prometheus can scrape each service (alert ServiceDown).", "none", w=8,
               mapping={0: ("DOWN", RED), 1: ("up", GREEN)}),
        [Q(f'max by (service) (up{{job=~"tradewire-.+", {sv}}})', "{{service}}", instant=True)],
    )
    b.panel(
        single("Restarts in the last 30 minutes",
               f"Process restarts (changes of the start time; alert ServiceRestarting at {limits.restarts:.0f}).",
               COUNT, w=8, thresholds=((None, GREEN), (1, ORANGE), (limits.restarts, RED))),
        [Q(f"max by (service) (changes({named('start_time_seconds', sv)}[30m]))", "{{service}}", instant=True)],
    )
    b.row("Throughput")
    b.panel(
        graph("Messages in per service", "Messages delivered to each service per second.", PER_SEC),
        [Q(f"sum by (service) (rate({named('messages_in_total', sv)}[$__rate_interval]))", "{{service}}")],
    )
    b.panel(
        graph("Messages out per service", "Messages each service published per second.", PER_SEC),
        [Q(f"sum by (service) (rate({named('messages_out_total', sv)}[$__rate_interval]))", "{{service}}")],
    )
    b.panel(
        graph("Market data per instrument", "Bars the datafeed published and signals received, per minute.", PER_MIN),
        [Q(per_minute(f"tradewire_datafeed_bars_published_total{{{ins}}}", "instrument"), "published {{instrument}}"),
         Q(per_minute(f"tradewire_signals_market_events_total{{{ins}}}", "instrument"), "received {{instrument}}")],
    )
    b.panel(
        graph("Replay progress", "Share of the replay's bars the datafeed has published.", RATIO, minimum=0),
        [Q("tradewire_datafeed_replay_progress_ratio", "replay")],
    )
    b.row("Lag")
    b.panel(
        graph("Market data lag", "Feed publish to arrival at signals, per instrument (p95).", SECONDS, w=8),
        [Q(quantile(0.95, "tradewire_signals_market_event_lag_seconds", "instrument", f"{{{ins}}}"),
           "{{instrument}} p95")],
    )
    b.panel(
        graph("Market data staleness",
              f"Seconds since signals last received a bar (alert MarketDataStale over {limits.staleness_s:.0f} s).",
              SECONDS, w=8, thresholds=((None, GREEN), (limits.staleness_s, RED)), minimum=0),
        [Q(f"tradewire:market_data_staleness:seconds{{{ins}}}", "{{instrument}}")],
    )
    b.panel(
        graph("JetStream consumer backlog",
              f"Messages waiting for each durable consumer (alert ConsumerLag over {limits.consumer_backlog:.0f}).",
              COUNT, w=8, thresholds=((None, GREEN), (limits.consumer_backlog, RED)), minimum=0),
        [Q(f"max by (service, consumer) ({named('consumer_pending_messages', sv)})", "{{service}} {{consumer}}")],
    )
    b.row("Errors")
    b.panel(
        graph("Dead letters", "Messages sent to the dead-letter subject, per service and reason (alert DeadLetters).",
              COUNT, w=8, bars=True, alarm=True),
        [Q(f"sum by (service, reason) (increase({named('dead_letters_total', sv)}[$__rate_interval]))",
           "{{service}} {{reason}}")],
    )
    b.panel(
        graph("Handler errors", "Handler failures (retried or dead-lettered), per service.", COUNT, w=8, bars=True,
              alarm=True),
        [Q(f"sum by (service) (increase({named('handler_errors_total', sv)}[$__rate_interval]))", "{{service}}")],
    )
    b.panel(
        graph("Publish retries", "JetStream publishes retried with the same Nats-Msg-Id, per service.", COUNT, w=8,
              bars=True),
        [Q(f"sum by (service) (increase({named('publish_retries_total', sv)}[$__rate_interval]))", "{{service}}")],
    )
    b.row("Processes")
    b.panel(
        graph("CPU", "CPU time per second of each process (1 = one core).", RATIO, w=8),
        [Q(f"sum by (service) (rate({named('process_cpu_seconds_total', sv)}[$__rate_interval]))", "{{service}}")],
    )
    b.panel(
        graph("Resident memory", "Resident memory of each process.", BYTES, w=8),
        [Q(f"max by (service) ({named('process_resident_memory_bytes', sv)})", "{{service}}")],
    )
    b.panel(
        graph("Uptime", "Seconds since each process started.", SECONDS, w=8),
        [Q(f"max by (service) ({named('uptime_seconds', sv)})", "{{service}}")],
    )
    return b.json()


#: file stem -> builder; the file names the k8s ConfigMap and the README use.
DASHBOARDS: dict[str, Callable[[dm.DataSourceRef, AlertLimits], dict[str, Any]]] = {
    "overview": overview,
    "strategies": strategies,
    "execution": execution,
    "system": system,
}


def dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard as Grafana's JSON model, by file stem."""
    ds = dm.DataSourceRef(type_val="prometheus", uid=datasource_uid())
    limits = alert_limits()
    return {name: build(ds, limits) for name, build in DASHBOARDS.items()}


def render(dashboard: dict[str, Any]) -> str:
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def outputs() -> dict[Path, str]:
    return {DASHBOARDS_DIR / f"{name}.json": render(model) for name, model in dashboards().items()}


def stale() -> Iterator[Path]:
    for path, content in outputs().items():
        if not path.exists() or path.read_text() != content:
            yield path
    expected = set(outputs())
    yield from (path for path in sorted(DASHBOARDS_DIR.glob("*.json")) if path not in expected)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report out-of-date dashboards (exit 1)")
    args = parser.parse_args(argv)
    if args.check:
        out_of_date = list(stale())
        for path in out_of_date:
            print(f"out of date: {path.relative_to(ROOT)} ({RUN_HINT})", file=sys.stderr)
        return 1 if out_of_date else 0
    DASHBOARDS_DIR.mkdir(parents=True, exist_ok=True)
    for path, content in outputs().items():
        if not path.exists() or path.read_text() != content:
            path.write_text(content)
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
