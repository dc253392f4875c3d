"""Promotion stages as pure logic: the order of the stages, what each lets through, and the promotion gates.

No I/O and no clock: the caller (:mod:`tradewire_risk.promotion`, the risk service) passes the time, the
ledger's rows and the portfolio marks. Money is ``Decimal``; config fractions go through ``Decimal(str(x))``.

**At decision time** (:func:`check_order`), for an order risk is about to send:

* reduce-only orders always pass (a position must always be exitable, whatever the stage);
* ``backtest``: nothing leaves risk, not even to a paper venue -> ``STAGE_BACKTEST_ONLY``;
* a *live* venue (configured with an adapter other than ``paper``, or named in ``promotion.live_venues``)
  needs ``live-small`` or ``live`` -> else ``STAGE_NOT_LIVE``;
* ``live-small`` on a live venue: the strategy's capital on live venues (its positions marked at the last
  price, the order's own instrument at the order's price, plus its other open entry orders on live venues)
  plus what the order opens may not exceed ``promotion.live_small_capital``. The opening part is clipped
  down to the room left (a quantity-step multiple); below the instrument's ``min_quantity`` a flip sends
  its closing part alone and any other order is ``STAGE_CAPITAL_CAP``. Exactly at the cap passes.

**Gates** (a promotion goes one stage up at a time; a demotion to any lower stage is always allowed):

* to ``paper``: a backtest report (the ``tradewire backtest --json`` summary) with a numeric
  ``total_return`` and ``bars`` > 0, given with the promotion or recorded with an earlier stage change; a
  report naming a ``strategy`` must name the strategy's kind (or id).
* to ``live-small`` (:func:`paper_gate`): the paper period ``[start, end]`` runs from the time the strategy
  entered ``paper`` (its promotion; for a strategy at ``paper`` without one, its first paper fill) to now,
  and must last at least ``paper_days``. Over it, the **paper return** is the strategy's PnL from its own
  fills on paper venues with ``start <= ts_event <= end`` (sells minus buys minus fees, plus the net
  quantity they leave marked at the latest portfolio mark) divided by the account's equity at ``start``
  (the last equity point at or before it; else the first one; else ``ledger.starting_cash``). The period
  must start flat (no net paper position of the strategy from fills before ``start``), so no position
  carried in distorts it. The **backtest return** is the ``total_return`` of the backtest report given
  with this promotion, run by the operator over the same period's bars with ``--cash`` the equity at
  ``start``; a report carrying ``start_ns``/``end_ns`` must start and end within ``period_slack_s`` of
  the period's. Passes when ``|paper return - backtest return| <= tolerance`` (exactly at it passes).
* to ``live``: at least ``live_small_days`` at ``live-small`` (since its promotion to it).

Times are the automation clock's (event time in replays, wall time live).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

import msgspec

from tradewire_common.config import STAGES, Config, InstrumentSpec, PromotionConfig, Stage
from tradewire_common.ids import split_instrument_id
from tradewire_common.schemas import DenyReason, PortfolioSnapshot, Side, SubmitOrder
from tradewire_risk.context import RiskContext
from tradewire_risk.limits import room_quantity

DAY_NS = 86_400 * 10**9
_ZERO = Decimal(0)
LIVE_STAGES: frozenset[str] = frozenset({"live-small", "live"})


class PromotionRefused(Exception):
    """A gate said no; the message says why (with the numbers)."""


class StageEntry(msgspec.Struct, frozen=True):
    """One stage change as stored (KV ``risk.stage.<strategy>``) and served."""

    stage: Stage
    previous: Stage
    #: Automation-clock time of the change (event time in replays): the stage's start for the gates.
    since_ns: int
    #: Wall-clock time of the change.
    at_ns: int
    actor: str
    reason: str
    #: The backtest summary given with the change (JSON text, verbatim), if any.
    backtest_report: str = ""
    evidence: dict[str, str] = {}


class StageRecord(msgspec.Struct):
    """A strategy's stage history, oldest first; its stage is the last entry's (or the initial stage)."""

    history: list[StageEntry] = msgspec.field(default_factory=list)

    def stage(self, initial: Stage) -> Stage:
        return self.history[-1].stage if self.history else initial

    def since(self) -> int | None:
        """When the current stage began (None: the initial stage, never changed)."""
        return self.history[-1].since_ns if self.history else None

    def latest_backtest(self) -> str:
        return next((e.backtest_report for e in reversed(self.history) if e.backtest_report), "")


def rank(stage: str) -> int:
    return STAGES.index(stage)


def initial_stage(config: Config, strategy_id: str) -> Stage:
    for strategy in config.signals.strategies:
        if strategy.id == strategy_id and strategy.initial_stage is not None:
            return strategy.initial_stage
    return config.promotion.initial_stage


def live_venues(config: Config) -> frozenset[str]:
    """Venues that count as live: configured with an adapter other than ``paper``, or listed as live."""
    return frozenset({v.name for v in config.execution.venues if v.adapter != "paper"}
                     | set(config.promotion.live_venues))


def venue_of(instrument_id: str) -> str:
    try:
        return split_instrument_id(instrument_id)[1]
    except ValueError:
        return ""


# --- decision time -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StageDenial:
    code: DenyReason
    reason: str


def check_order(
    order: SubmitOrder,
    stage: Stage,
    *,
    live: frozenset[str],
    config: PromotionConfig,
    spec: InstrumentSpec,
    price: Decimal,
    portfolio: PortfolioSnapshot | None,
    context: RiskContext,
    follows_fills: bool,
    instruments: Iterable[str] = (),
) -> SubmitOrder | StageDenial:
    """The order as the stage lets it through (maybe clipped), or why not (see the module docstring).

    ``price`` is the price the engine sized at (the signal's); ``follows_fills`` whether ``context`` sees
    the order events (fills by strategy, open orders closing); otherwise the portfolio's positions in the
    strategy's ``instruments`` on live venues count as its capital (conservative: the whole account's).
    """
    if order.reduce_only:
        return order
    venue = venue_of(order.instrument_id)
    if stage == "backtest":
        return StageDenial(DenyReason.STAGE_BACKTEST_ONLY,
                           f"strategy {order.strategy_id} is at stage backtest: promote it to paper first")
    if venue not in live:
        return order
    if stage not in LIVE_STAGES:
        return StageDenial(DenyReason.STAGE_NOT_LIVE,
                           f"venue {venue} is live and strategy {order.strategy_id} is at stage {stage}: "
                           "promote it to live-small first")
    if stage == "live":
        return order
    return _cap(order, live=live, cap=config.live_small_capital, spec=spec, price=price, portfolio=portfolio,
                context=context, follows_fills=follows_fills, instruments=instruments)


def _cap(
    order: SubmitOrder, *, live: frozenset[str], cap: Decimal, spec: InstrumentSpec, price: Decimal,
    portfolio: PortfolioSnapshot | None, context: RiskContext, follows_fills: bool, instruments: Iterable[str],
) -> SubmitOrder | StageDenial:
    at = order.limit_price or order.trigger_price or price
    held = _position(order, portfolio, context, follows_fills)
    opposite = (held > 0 and order.side is Side.SELL) or (held < 0 and order.side is Side.BUY)
    closing = min(abs(held), order.quantity) if opposite else _ZERO
    opening = order.quantity - closing
    used = live_capital(order.strategy_id, live=live, exclude=order.client_order_id, portfolio=portfolio,
                        context=context, follows_fills=follows_fills, instrument_id=order.instrument_id, price=at,
                        instruments=instruments)
    if opposite:
        used -= closing * at  # the part of its position the order closes frees capital
    room = room_quantity(cap - used, at, spec.quantity_step)
    if opening <= room:
        return order
    if room >= spec.min_quantity:
        return msgspec.structs.replace(order, quantity=closing + room)
    if closing > 0:
        return msgspec.structs.replace(order, quantity=closing, reduce_only=True, stop_loss_pct=None,
                                       take_profit_pct=None)
    return StageDenial(DenyReason.STAGE_CAPITAL_CAP,
                       f"strategy {order.strategy_id} is at live-small: capital on live venues "
                       f"{used + opening * at:.2f} would exceed the cap {cap}; room for {room} "
                       f"< min quantity {spec.min_quantity}")


def _position(order: SubmitOrder, portfolio: PortfolioSnapshot | None, context: RiskContext,
              follows_fills: bool) -> Decimal:
    if follows_fills:
        return context.book.position(order.strategy_id, order.instrument_id)
    if portfolio is None:
        return _ZERO
    return sum((p.quantity for p in portfolio.positions if p.instrument_id == order.instrument_id), _ZERO)


def live_capital(
    strategy_id: str, *, live: frozenset[str], exclude: str, portfolio: PortfolioSnapshot | None,
    context: RiskContext, follows_fills: bool, instrument_id: str, price: Decimal,
    instruments: Iterable[str] = (),
) -> Decimal:
    """What the strategy uses on live venues: its positions (``instrument_id`` marked at ``price``, the
    others at the last price) plus its open entry orders other than ``exclude``."""
    marks = {p.instrument_id: p.last_price for p in portfolio.positions} if portfolio is not None else {}
    used = _ZERO
    if follows_fills:
        for iid, leg in context.book.positions(strategy_id).items():
            if venue_of(iid) in live:
                mark = price if iid == instrument_id else (context.last_price(iid) or marks.get(iid) or leg.avg_price)
                used += abs(leg.quantity) * mark
        for open_order in context.orders(strategy_id=strategy_id):
            if open_order.reduce_only or open_order.client_order_id == exclude or open_order.venue not in live:
                continue
            notional = context.order_notional(open_order)
            used += notional if notional is not None else _ZERO
        return used
    if portfolio is not None:
        mine = {instrument_id, *instruments}
        for p in portfolio.positions:
            if p.instrument_id in mine and venue_of(p.instrument_id) in live:
                used += abs(p.quantity) * (price if p.instrument_id == instrument_id else p.last_price)
    return used


# --- gates ---------------------------------------------------------------------------------------


def parse_report(raw: Mapping[str, Any] | str, *, strategy_id: str, kind: str) -> dict[str, Any]:
    """A backtest summary (``tradewire backtest --json``), checked: numeric ``total_return``, ``bars`` > 0,
    and ``strategy`` (when present) the strategy's kind or id."""
    try:
        report = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except ValueError:
        raise PromotionRefused("the backtest report is not JSON") from None
    if not isinstance(report, dict):
        raise PromotionRefused("the backtest report must be a JSON object (tradewire backtest --json)")
    total = report.get("total_return")
    if isinstance(total, bool) or not isinstance(total, int | float | str):
        raise PromotionRefused("the backtest report has no numeric total_return")
    _decimal(total, "total_return")
    bars = report.get("bars")
    if isinstance(bars, bool) or not isinstance(bars, int) or bars <= 0:
        raise PromotionRefused("the backtest report has no bars (bars > 0 expected)")
    named = report.get("strategy")
    if named is not None and named not in (kind, strategy_id):
        raise PromotionRefused(f"the backtest report is of strategy {named!r}, not {kind!r}")
    return report


def backtest_gate(report: Mapping[str, Any] | str | None, recorded: str, *, strategy_id: str,
                  kind: str) -> tuple[str, dict[str, str]]:
    """To ``paper``: the report given, else the recorded one; returns it (JSON text) and the evidence."""
    if report is None and not recorded:
        raise PromotionRefused(f"promotion of {strategy_id} to paper needs a recorded backtest: give the "
                               "`tradewire backtest --json` summary (--backtest-report FILE)")
    chosen: Mapping[str, Any] | str = report if report is not None else recorded
    checked = parse_report(chosen, strategy_id=strategy_id, kind=kind)
    text = chosen if isinstance(chosen, str) else json.dumps(checked, sort_keys=True)
    return text, {"backtest_return": str(_decimal(checked["total_return"], "total_return")),
                  "backtest_bars": str(checked["bars"])}


@dataclass(frozen=True, slots=True)
class PaperResult:
    """What the paper gate compared (all of it goes into the stage change's evidence)."""

    start_ns: int
    end_ns: int
    days: Decimal
    fills: int
    pnl: Decimal
    base_equity: Decimal
    paper_return: Decimal
    backtest_return: Decimal
    difference: Decimal

    def evidence(self) -> dict[str, str]:
        return {"period_start_ns": str(self.start_ns), "period_end_ns": str(self.end_ns), "paper_days": str(self.days),
                "paper_fills": str(self.fills), "paper_pnl": str(self.pnl), "base_equity": str(self.base_equity),
                "paper_return": str(self.paper_return), "backtest_return": str(self.backtest_return),
                "difference": str(self.difference)}


def paper_gate(
    *,
    strategy_id: str,
    kind: str,
    stage_since: int | None,
    now_ns: int,
    fills: Iterable[Mapping[str, Any]],
    equity: Iterable[Mapping[str, Any]],
    marks: Mapping[str, Decimal],
    report: Mapping[str, Any] | str | None,
    config: PromotionConfig,
    live: frozenset[str],
    starting_cash: Decimal,
) -> PaperResult:
    """To ``live-small`` (see the module docstring); raises :class:`PromotionRefused` with the numbers."""
    if report is None:
        raise PromotionRefused(f"promotion of {strategy_id} to live-small needs a backtest report over the paper "
                               "period (--backtest-report FILE) to compare the paper results with")
    checked = parse_report(report, strategy_id=strategy_id, kind=kind)
    paper = sorted((row for row in fills if str(row["strategy_id"]) == strategy_id
                    and venue_of(str(row["instrument_id"])) not in live),
                   key=lambda row: (int(row["ts_event"]), int(row.get("seq", 0))))
    start = stage_since
    if start is None:
        if not paper:
            raise PromotionRefused(f"{strategy_id} has no paper fills yet: nothing to compare with the backtest")
        start = int(paper[0]["ts_event"])
    days = Decimal(now_ns - start) / DAY_NS
    if now_ns - start < Decimal(str(config.paper_days)) * DAY_NS:
        raise PromotionRefused(f"{strategy_id} has been paper trading for {_floor(days)} days; "
                               f"{config.paper_days:g} needed")
    carried: dict[str, Decimal] = {}
    held: dict[str, Decimal] = {}
    pnl = _ZERO
    count = 0
    for row in paper:
        ts = int(row["ts_event"])
        if ts > now_ns:
            continue
        iid = str(row["instrument_id"])
        qty, px, fee = (_decimal(row[name], name) for name in ("last_qty", "last_px", "fee"))
        signed = qty if Side(str(row["side"])) is Side.BUY else -qty
        if ts < start:
            carried[iid] = carried.get(iid, _ZERO) + signed
            continue
        count += 1
        held[iid] = held.get(iid, _ZERO) + signed
        pnl += -signed * px - fee
    open_before = {iid: q for iid, q in carried.items() if q != 0}
    if open_before:
        raise PromotionRefused(f"{strategy_id} held {open_before} on paper when the paper period began: the "
                               "comparison needs a flat start (demote and promote it again once flat)")
    for iid, qty in held.items():
        if qty == 0:
            continue
        mark = marks.get(iid)
        if mark is None:
            raise PromotionRefused(f"no mark for {iid}, where {strategy_id} holds {qty} on paper")
        pnl += qty * mark
    base = _equity_at(equity, start, starting_cash)
    if base <= 0:
        raise PromotionRefused(f"the account's equity at the start of the paper period is {base}")
    _check_period(checked, start, now_ns, config)
    paper_return = pnl / base
    backtest_return = _decimal(checked["total_return"], "total_return")
    difference = abs(paper_return - backtest_return)
    result = PaperResult(start, now_ns, days, count, pnl, base, paper_return, backtest_return, difference)
    if difference > Decimal(str(config.tolerance)):
        raise PromotionRefused(f"paper return {paper_return:.6f} differs from the backtest's {backtest_return:.6f} "
                               f"by {difference:.6f} > tolerance {config.tolerance} (pnl {pnl:.2f} on equity "
                               f"{base} over {days:.4f} days)")
    return result


def live_gate(*, strategy_id: str, stage_since: int | None, now_ns: int, config: PromotionConfig) -> dict[str, str]:
    """To ``live``: long enough at ``live-small``."""
    start = stage_since if stage_since is not None else now_ns
    days = Decimal(now_ns - start) / DAY_NS
    if now_ns - start < Decimal(str(config.live_small_days)) * DAY_NS:
        raise PromotionRefused(f"{strategy_id} has been at live-small for {_floor(days)} days; "
                               f"{config.live_small_days:g} needed")
    return {"live_small_start_ns": str(start), "live_small_days": str(days)}


def _check_period(report: Mapping[str, Any], start: int, end: int, config: PromotionConfig) -> None:
    if "start_ns" not in report or "end_ns" not in report:
        return
    slack = Decimal(str(config.period_slack_s)) * 10**9
    for name, ours in (("start_ns", start), ("end_ns", end)):
        theirs = _decimal(report[name], name)
        if abs(theirs - ours) > slack:
            raise PromotionRefused(f"the backtest report's {name} {theirs} is more than {config.period_slack_s:g} s "
                                   f"from the paper period's {ours}: backtest the same period")


def _equity_at(rows: Iterable[Mapping[str, Any]], ts: int, fallback: Decimal) -> Decimal:
    points = sorted(((int(r["ts"]), _decimal(r["equity"], "equity")) for r in rows), key=lambda p: p[0])
    before = [value for at, value in points if at <= ts]
    if before:
        return before[-1]
    return points[0][1] if points else fallback


def _floor(days: Decimal) -> Decimal:
    """Days shown to 4 places, rounded down (13.99999 days is not 14)."""
    return days.quantize(Decimal("0.0001"), rounding=ROUND_DOWN)


def _decimal(value: object, name: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise PromotionRefused(f"{name} is not a number: {value!r}") from None
    if not result.is_finite():
        raise PromotionRefused(f"{name} is not a finite number: {value!r}")
    return result
