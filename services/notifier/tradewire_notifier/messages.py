"""What each event says: notifications from alerts, fills, rejections, denial bursts, the trading
state, the daily summary and Alertmanager's webhook; the Alert a price rule publishes."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, localcontext

import msgspec

from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    Alert,
    OrderDenied,
    OrderFilled,
    OrderRejected,
    PortfolioSnapshot,
    TradingState,
    TradingStateChanged,
)
from tradewire_notifier.delivery import Notification, level_of
from tradewire_notifier.rules import Firing

#: ``Alert.source`` of the notifier's price alerts (their notification kind is ``price_alert``).
PRICE_ALERT_SOURCE = "notifier:price_alert"
MAX_ALERTMANAGER_ALERTS = 50


def when(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def num(value: Decimal | None, places: int = 8) -> str:
    """A decimal for people: no exponent, no trailing zeros, at most ``places`` decimals."""
    if value is None:
        return "n/a"
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -places:
        with localcontext() as ctx:
            ctx.prec = 60
            value = value.quantize(Decimal(1).scaleb(-places))
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


# --- price alerts ------------------------------------------------------------------------------


def price_alert(firing: Firing, now_ns: int) -> Alert:
    """The Alert a firing rule publishes (its id derives from the rule and the market data message,
    so a redelivered bar cannot publish it twice)."""
    rule = firing.rule
    shown_right = rule.right if rule.right[0].isalpha() else num(Decimal(rule.right))
    title = f"{rule.instrument_id} {rule.left} {rule.op} {shown_right}"
    parts = [f"{rule.left} = {num(firing.left, 4)}"]
    if rule.right[0].isalpha():
        parts.append(f"{rule.right} = {num(firing.right, 4)}")
    if rule.left != "price" and rule.right != "price":
        parts.append(f"price {num(firing.price)}")
    body = f"{', '.join(parts)} on the {firing.source} of {when(firing.ts_event)} (rule {rule.id})"
    if rule.note:
        body += f"\n{rule.note}"
    return Alert(id=derive_id("price-alert", rule.id, firing.key, firing.source_id), ts_event=firing.ts_event,
                 ts_init=now_ns, correlation_id=firing.source_id, severity=rule.severity, title=title, body=body,
                 source=PRICE_ALERT_SOURCE)


# --- events of the other services ----------------------------------------------------------------


def from_alert(alert: Alert) -> Notification:
    level, key = level_of(alert.severity), f"alert|{alert.id}"
    if alert.source == PRICE_ALERT_SOURCE:
        return Notification("price_alert", alert.title, alert.body, level, key=key, created_ns=alert.ts_init)
    return Notification("alert", f"[{alert.severity.upper()}] {alert.title}",
                        f"{alert.body}\n(from {alert.source}, {when(alert.ts_event)})", level, key=key,
                        created_ns=alert.ts_init)


def from_fill(fill: OrderFilled) -> Notification:
    more = f", {num(fill.leaves_qty)} left" if fill.partial else ""
    title = f"Filled {fill.side} {num(fill.last_qty)} {fill.instrument_id} @ {num(fill.last_px)}"
    body = (f"{fill.strategy_id}: {'partial fill' if fill.partial else 'fill'} of order {fill.client_order_id}{more}; "
            f"fee {num(fill.fee)} {fill.fee_currency} ({fill.liquidity.lower()}), {when(fill.ts_event)}")
    return Notification("fill", title, body, "info", key=f"fill|{fill.client_order_id}|{fill.trade_id}",
                        created_ns=fill.ts_init)


def from_rejected(event: OrderRejected) -> Notification:
    return Notification(
        "order_rejected", f"Order rejected: {event.instrument_id} ({event.strategy_id})",
        f"The venue rejected order {event.client_order_id}: {event.reason} ({when(event.ts_event)})", "warning",
        key=f"rejected|{event.client_order_id}", created_ns=event.ts_init)


def from_state(event: TradingStateChanged) -> Notification:
    level = {TradingState.HALTED: "failure", TradingState.REDUCING: "warning"}.get(event.state, "success")
    return Notification(
        "trading_state", f"Trading {event.state} (was {event.previous})",
        f"{event.scope}: {event.previous} -> {event.state} by {event.actor}: {event.reason} ({when(event.ts_event)})",
        level, key=f"state|{event.id}", created_ns=event.ts_init)


@dataclass
class DenialBursts:
    """``count`` OrderDenied within ``window_s`` of event time make one ``denial_burst``; the next
    burst needs ``count`` new denials."""

    count: int
    window_s: float
    recent: deque[OrderDenied] = field(default_factory=deque)

    def observe(self, denied: OrderDenied) -> Notification | None:
        window = int(self.window_s * 1e9)
        self.recent.append(denied)
        while self.recent and denied.ts_event - self.recent[0].ts_event > window:
            self.recent.popleft()
        if len(self.recent) < self.count:
            return None
        burst = list(self.recent)
        self.recent.clear()
        reasons = Counter(d.reason_code.value for d in burst)
        strategies = sorted({d.strategy_id for d in burst})
        title = f"{len(burst)} orders denied within {self.window_s:g}s"
        body = (f"Risk denied {len(burst)} orders of {', '.join(strategies)} between {when(burst[0].ts_event)} and "
                f"{when(burst[-1].ts_event)}: " + ", ".join(f"{code} x{n}" for code, n in reasons.most_common())
                + f". Latest: {burst[-1].reason}")
        return Notification("denial_burst", title, body, "warning", key=f"denials|{burst[0].id}",
                            created_ns=denied.ts_init)


# --- the daily summary -------------------------------------------------------------------------


@dataclass
class Tally:
    """What happened since the last summary."""

    fills: int = 0
    price_alerts: int = 0
    denials: int = 0
    rejections: int = 0
    state: str = ""


def daily_summary(snapshot: PortfolioSnapshot | None, tally: Tally, previous_equity: Decimal | None,
                  now_ns: int) -> Notification:
    day = datetime.fromtimestamp(now_ns / 1e9, UTC).strftime("%Y-%m-%d")
    lines: list[str] = []
    if snapshot is None:
        lines.append("No portfolio snapshot received yet.")
    else:
        change = ""
        if previous_equity is not None and previous_equity:
            pct = (snapshot.equity / previous_equity - 1) * 100
            change = f" ({'+' if pct >= 0 else ''}{num(pct, 2)}% since the last summary)"
        lines += [
            f"Account {snapshot.account}: equity {num(snapshot.equity, 2)}{change}, cash {num(snapshot.cash, 2)}",
            f"P&L realized {num(snapshot.realized_pnl, 2)}, unrealized {num(snapshot.unrealized_pnl, 2)}; "
            f"gross exposure {num(snapshot.gross_exposure, 2)}",
        ]
        for p in snapshot.positions:
            if p.quantity:
                lines.append(f"  {p.instrument_id}: {num(p.quantity)} @ {num(p.avg_price, 4)}, last "
                             f"{num(p.last_price, 4)}, unrealized {num(p.unrealized_pnl, 2)}")
        lines.append(f"As of {when(snapshot.as_of)}")
    lines.append(f"Since the last summary: {tally.fills} fills, {tally.price_alerts} price alerts, "
                 f"{tally.denials} denied and {tally.rejections} rejected orders"
                 + (f"; trading is {tally.state}" if tally.state else ""))
    return Notification("daily_summary", f"Tradewire daily summary {day}", "\n".join(lines), "info",
                        key=f"summary|{day}|{now_ns}")


def next_summary_ns(now_ns: int, hhmm: str) -> int:
    """The next time (ns) at ``HH:MM`` UTC strictly after ``now_ns``."""
    hour, _, minute = hhmm.partition(":")
    now = datetime.fromtimestamp(now_ns / 1e9, UTC)
    at = now.replace(hour=int(hour), minute=int(minute), second=0, microsecond=0)
    at_ns = int(at.timestamp()) * 1_000_000_000
    return at_ns if at_ns > now_ns else at_ns + 86_400 * 1_000_000_000


# --- Alertmanager ------------------------------------------------------------------------------


class AlertmanagerAlert(msgspec.Struct, kw_only=True):
    """One alert of a webhook (Alertmanager's camelCase field names)."""

    status: str = "firing"
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    startsAt: str = ""
    endsAt: str = ""
    generatorURL: str = ""
    fingerprint: str = ""


class AlertmanagerPayload(msgspec.Struct, kw_only=True):
    """Alertmanager's webhook body (``version`` 4)."""

    version: str = "4"
    groupKey: str = ""
    truncatedAlerts: int = 0
    status: str = "firing"
    receiver: str = ""
    groupLabels: dict[str, str] = {}
    commonLabels: dict[str, str] = {}
    commonAnnotations: dict[str, str] = {}
    externalURL: str = ""
    alerts: list[AlertmanagerAlert] = []


_SEVERITY_RANK = {"info": 0, "success": 0, "warning": 1, "failure": 2}


def from_alertmanager(payload: AlertmanagerPayload, now_ns: int) -> Notification:
    firing = [a for a in payload.alerts if a.status == "firing"]
    resolved = payload.status == "resolved" or not firing
    if resolved:
        level = "success"
    else:
        levels = [level_of(a.labels.get("severity", "")) for a in firing]
        level = max(levels or ["warning"], key=lambda lv: _SEVERITY_RANK[lv])
    name = " ".join(v for _, v in sorted(payload.groupLabels.items())) or payload.commonLabels.get(
        "alertname", "alerts")
    title = f"[{payload.status.upper()}{'' if resolved else f':{len(firing)}'}] {name}"
    lines: list[str] = []
    for a in payload.alerts[:MAX_ALERTMANAGER_ALERTS]:
        text = a.annotations.get("summary") or a.labels.get("alertname", "alert")
        detail = a.annotations.get("description", "")
        labels = ", ".join(f"{k}={v}" for k, v in sorted(a.labels.items())
                           if k not in ("alertname", "severity") and k not in payload.groupLabels)
        line = f"- [{a.status}] {text}" + (f": {detail}" if detail else "") + (f" ({labels})" if labels else "")
        if a.startsAt:
            line += f" since {a.startsAt}"
        lines.append(line)
    hidden = max(0, len(payload.alerts) - MAX_ALERTMANAGER_ALERTS) + payload.truncatedAlerts
    if hidden > 0:
        lines.append(f"… and {hidden} more")
    fingerprints = ",".join(sorted(f"{a.fingerprint}:{a.status}" for a in payload.alerts))
    return Notification("alertmanager", title, "\n".join(lines) or title, level,
                        key=f"am|{payload.groupKey}|{payload.status}|{fingerprints}", created_ns=now_ns)
