"""Reconciliation of a live venue with the ledger: at start and every ``reconcile_interval_s``.

One round (:meth:`Reconciler.run`) fetches from the venue its open orders, its fills of the last
``lookback_s`` (after the first round: since the previous round, with an overlap) and its balances, and from
the ledger (``execution.ledger_url``: ``GET /v1/orders``, ``/v1/fills``, ``/v1/positions``) what it recorded,
then, holding the service's lock:

1. **Open orders.** One the adapter follows is brought up to date (fills it missed, e.g. while execution was
   down, become ``OrderFilled``). One it does not follow but the ledger knows (its ``OrderSubmitted`` was
   recorded: the adapter's state was lost) is **adopted**: followed from now on under the ledger's strategy and
   instrument. One nobody knows (placed by hand, another program) is **flagged**: an ``Alert`` (warning) names
   it; it is left alone. One the adapter had closed (e.g. rejected after its create went unanswered) that is
   open at the venue is a **mismatch**.
2. **Fills.** Every venue fill the ledger lacks (by client order id and trade id) is **applied**: published as
   the ``OrderFilled`` of its order (the same derived id as when first published, so repeats are dropped; an
   order known only to the ledger is adopted for it). A fill of an order neither knows is a **mismatch**.
3. **Positions.** Per position key of the adapter (spot: the base currency of each configured symbol), the
   venue's balance must equal the ledger's positions of the instruments on that key plus the fills applied in
   this round, within ``position_tolerance``; otherwise a **mismatch**. The account must therefore be
   Tradewire's alone (a dedicated (sub)account): holdings the ledger never saw are a mismatch. A key written
   ``-KEY`` counts its instrument negatively on ``KEY`` (a venue netting two instruments into one signed position,
   e.g. Kalshi's YES minus NO contracts of a market).

**An unexplained mismatch halts new exposure on that venue instead of trading on a wrong position**: the adapter
latches REDUCING at once (it rejects every order that is not reduce-only, see ``LiveVenueAdapter.set_reducing``),
an ``Alert`` (critical) is published, and risk is asked to set the scope ``venue:<name>`` REDUCING through its
token-protected ``POST /v1/trading-state`` (``execution.risk_url``, the API token of
``tradewire_common.security``; the actor is recorded by risk), so every service sees it and it survives restarts.
Choice: a direct, authenticated request to the owner of the trading states rather than an event for a new risk
breaker, so the reason is recorded as given and no risk change is needed; without ``risk_url`` (or when risk
cannot be reached) the adapter's own latch and the alert still stop new exposure. The latch is cleared when a
person sets the venue scope ACTIVE again. Ledger errors skip the comparison (logged), never trip it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import httpx
import msgspec

from tradewire_common.ids import derive_id
from tradewire_common.schemas import OrderEvent, OrderFilled, OrderType, Side, SubmitOrder, TimeInForce
from tradewire_common.security import api_token
from tradewire_common.trading_state import venue_scope
from tradewire_execution.live.base import ZERO, LiveVenueAdapter, TrackedOrder, VenueFill, VenueOrder

log = logging.getLogger(__name__)

#: Overlap of the fill window between two rounds (fills arriving late at the venue's history).
OVERLAP_NS = 300 * 1_000_000_000


class LedgerOrder(msgspec.Struct, frozen=True, kw_only=True):
    client_order_id: str
    strategy_id: str
    instrument_id: str
    side: str
    order_type: str = "MARKET"
    quantity: Decimal | None = None
    limit_price: Decimal | None = None
    time_in_force: str | None = None
    status: str = ""
    venue: str | None = None
    venue_order_id: str | None = None
    filled_qty: Decimal | None = None
    signal_id: str | None = None
    created_ts: int | None = None


class LedgerFill(msgspec.Struct, frozen=True, kw_only=True):
    client_order_id: str
    trade_id: str
    instrument_id: str = ""
    side: str = ""
    last_qty: Decimal = ZERO


class LedgerView(Protocol):
    """What reconciliation reads from the ledger."""

    async def orders(self) -> list[LedgerOrder]: ...

    async def fills(self) -> list[LedgerFill]: ...

    async def positions(self) -> dict[str, Decimal]: ...


class HttpLedger:
    """The ledger's HTTP API (``GET /v1/orders``, ``/v1/fills``, ``/v1/positions``)."""

    def __init__(self, url: str, *, timeout_s: float = 10.0, max_rows: int = 10_000) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_rows = max_rows

    async def _get(self, path: str) -> Any:
        async with httpx.AsyncClient(timeout=self.timeout_s) as client:
            response = await client.get(self.url + path)
            response.raise_for_status()
            return response.json()

    async def orders(self) -> list[LedgerOrder]:
        rows = await self._get(f"/v1/orders?limit={self.max_rows}")
        return msgspec.convert(rows, list[LedgerOrder], strict=False)

    async def fills(self) -> list[LedgerFill]:
        rows = await self._get(f"/v1/fills?limit={self.max_rows * 10}")
        return msgspec.convert(rows, list[LedgerFill], strict=False)

    async def positions(self) -> dict[str, Decimal]:
        body = await self._get("/v1/positions")
        return {p["instrument_id"]: Decimal(str(p["quantity"])) for p in body.get("positions", [])}


class Escalation(Protocol):
    async def reducing(self, venue: str, reason: str) -> str:
        """Ask for the venue's scope to become REDUCING; a description of the outcome."""


class RiskHttpEscalation:
    """``POST {risk_url}/v1/trading-state`` ``{scope: venue:<name>, state: REDUCING, reason}`` with the API token."""

    def __init__(self, url: str, *, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    async def reducing(self, venue: str, reason: str) -> str:
        token = api_token()
        if not token:
            raise RuntimeError("no API token (TRADEWIRE_API_TOKEN or TRADEWIRE_API_TOKEN_FILE) to call risk with")
        body = {"scope": venue_scope(venue), "state": "REDUCING", "reason": reason[:500]}
        async with httpx.AsyncClient(timeout=self.timeout_s) as client:
            response = await client.post(self.url + "/v1/trading-state", json=body,
                                         headers={"Authorization": f"Bearer {token}"})
        if response.status_code != 200:
            raise RuntimeError(f"risk answered {response.status_code}: {response.text[:200]}")
        return f"risk set {venue_scope(venue)} {response.json().get('state')}"


@dataclass
class ReconcileReport:
    """What one round found and did."""

    applied_fills: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    flagged: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    ledger_checked: bool = False
    escalated: str = ""


def order_from_ledger(row: LedgerOrder, now_ns: int) -> SubmitOrder:
    """A stand-in ``SubmitOrder`` for an order known only from the ledger (for its events: strategy, instrument,
    side, quantity); a stop order becomes a limit (or market) one, as the ledger keeps no trigger price."""
    limit = row.limit_price if row.limit_price is not None and row.limit_price > 0 else None
    tif = row.time_in_force if row.time_in_force and row.time_in_force in TimeInForce.__members__ else "GTC"
    return SubmitOrder(
        id=derive_id("adopted", row.client_order_id), ts_event=row.created_ts or now_ns, ts_init=now_ns,
        correlation_id=row.signal_id or "", strategy_id=row.strategy_id, instrument_id=row.instrument_id,
        client_order_id=row.client_order_id, side=Side(row.side),
        order_type=OrderType.LIMIT if limit is not None else OrderType.MARKET,
        quantity=row.quantity if row.quantity is not None and row.quantity > 0 else Decimal(1),
        limit_price=limit, time_in_force=TimeInForce(tif), signal_id=row.signal_id or "")


class Reconciler:
    """Reconciliation rounds for one adapter (see the module docstring)."""

    def __init__(
        self, adapter: LiveVenueAdapter, *, ledger: LedgerView | None, escalation: Escalation | None = None,
        position_keys: Mapping[str, str] | None = None, tolerance: Decimal = Decimal("0.00000001"),
        lookback_s: float = 2 * 86_400.0, confirm_delay_s: float = 1.0,
    ) -> None:
        self.adapter = adapter
        self.ledger = ledger
        self.escalation = escalation
        #: instrument id -> the key of its position in ``venue_balances`` (spot: the base currency).
        self.position_keys = dict(position_keys or {})
        self.tolerance = tolerance
        self.lookback_ns = int(lookback_s * 1e9)
        self.confirm_delay_s = confirm_delay_s
        self._since_ns = 0
        self._escalated_reason = ""
        self.rounds = 0
        self.last: ReconcileReport | None = None

    async def run(self) -> ReconcileReport:
        """One round; a mismatch is confirmed by a second round (a fill landing between the venue's fills and
        balances answers would otherwise look like one) before anything is latched or escalated."""
        report = await self._round()
        if report.mismatches:
            await asyncio.sleep(self.confirm_delay_s)
            report = await self._round()
        self.rounds += 1
        self.last = report
        await self._report(report)
        return report

    async def _round(self) -> ReconcileReport:
        adapter = self.adapter
        now = adapter.wall_ns()
        since = self._since_ns or now - self.lookback_ns
        open_orders = await adapter._call(adapter.venue_open_orders)
        fills = await adapter._call(lambda: adapter.venue_fills(since))
        balances = await adapter._call(adapter.venue_balances) if self.position_keys else None
        report = ReconcileReport()
        ledger_orders: dict[str, LedgerOrder] = {}
        ledger_trades: set[tuple[str, str]] = set()
        positions: dict[str, Decimal] | None = None
        if self.ledger is not None:
            try:
                ledger_orders = {o.client_order_id: o for o in await self.ledger.orders()}
                ledger_trades = {(f.client_order_id, f.trade_id) for f in await self.ledger.fills()}
                positions = await self.ledger.positions()
                report.ledger_checked = True
            except (httpx.HTTPError, msgspec.ValidationError, ValueError, KeyError) as exc:
                log.warning("venue %s: ledger not readable, reconciliation compares nothing this round: %s",
                            adapter.name, exc)
        async with adapter.host.lock:
            now = adapter.wall_ns()
            events: list[OrderEvent] = []
            open_ids = set()
            for answer in open_orders:
                coid = answer.client_order_id
                open_ids.add(coid)
                tracked = adapter.tracked(coid)
                if tracked is None:
                    tracked = self._adopt(coid, answer.venue_order_id, ledger_orders, ledger_trades, report, now)
                    if tracked is None:
                        report.flagged.append(f"{coid or answer.venue_order_id}: {answer.side} {answer.quantity} "
                                              f"{answer.symbol} ({answer.order_type})")
                        continue
                elif tracked.status == "closed":
                    report.mismatches.append(f"order {coid} is open at the venue but was closed here")
                    continue
                events += await adapter._apply_order(tracked, answer, [], now)
            by_voi = {o.venue_order_id: o.client_order_id for o in ledger_orders.values() if o.venue_order_id}
            for fill in fills:
                events += self._apply_fill(fill, by_voi, ledger_orders, ledger_trades, report, now)
            if report.ledger_checked and positions is not None and balances is not None:
                self._compare_positions(positions, balances, events, ledger_trades, report)
            if events:
                await adapter._emit(events, locked=True)
            report.applied_fills = [e.trade_id for e in events if isinstance(e, OrderFilled)
                                    and (e.client_order_id, e.trade_id) not in ledger_trades]
        self._since_ns = max(0, now - OVERLAP_NS)
        return report

    def _adopt(
        self, coid: str, venue_order_id: str, ledger_orders: Mapping[str, LedgerOrder],
        ledger_trades: set[tuple[str, str]], report: ReconcileReport, now: int,
    ) -> TrackedOrder | None:
        row = ledger_orders.get(coid)
        if row is None or (row.venue and row.venue != self.adapter.name):
            return None
        try:
            order = order_from_ledger(row, now)
        except ValueError as exc:
            log.warning("venue %s: ledger order %s cannot be adopted: %s", self.adapter.name, coid, exc)
            return None
        report.adopted.append(coid)
        log.warning("venue %s: adopted order %s (%s, %s) known to the ledger", self.adapter.name, coid,
                    order.strategy_id, order.instrument_id, extra={"audit": "reconcile_adopt"})
        # what the ledger already has of it counts as seen (its fills were published before)
        seen = [trade for c, trade in ledger_trades if c == coid]
        return self.adapter.adopt(order, venue_order_id, trade_ids=seen, filled=row.filled_qty or ZERO)

    def _apply_fill(
        self, fill: VenueFill, by_voi: Mapping[str, str], ledger_orders: Mapping[str, LedgerOrder],
        ledger_trades: set[tuple[str, str]], report: ReconcileReport, now: int,
    ) -> list[OrderEvent]:
        adapter = self.adapter
        coid = fill.client_order_id or by_voi.get(fill.venue_order_id, "")
        if not coid:
            coid = next((t.order.client_order_id for t in adapter.tracked_orders()
                         if t.venue_order_id == fill.venue_order_id), "")
        if coid and (coid, fill.trade_id) in ledger_trades:
            return []
        tracked = adapter.tracked(coid) if coid else None
        if tracked is None and coid:
            tracked = self._adopt(coid, fill.venue_order_id, ledger_orders, ledger_trades, report, now)
        if tracked is None:
            if self.ledger is None:
                return []  # nothing to compare with
            report.mismatches.append(f"fill {fill.trade_id} of an unknown order {coid or fill.venue_order_id}: "
                                     f"{fill.side} {fill.quantity} {fill.symbol} at {fill.price}")
            return []
        if fill.trade_id in tracked.trade_ids:
            if (coid, fill.trade_id) in ledger_trades or self.ledger is None:
                return []
            # published before but the ledger lacks it: publish it again (same id)
            leaves = max(ZERO, tracked.order.quantity - tracked.filled)
            return [adapter.fill_event(tracked, fill, now, leaves=leaves)]
        return list(adapter._apply_now(tracked, _order_snapshot(tracked, fill), [fill], now))

    def _compare_positions(
        self, positions: Mapping[str, Decimal], balances: Mapping[str, Decimal], events: Iterable[OrderEvent],
        ledger_trades: set[tuple[str, str]], report: ReconcileReport,
    ) -> None:
        expected: dict[str, Decimal] = {}
        for instrument, key in self.position_keys.items():
            sign, key = (-1, key[1:]) if key.startswith("-") else (1, key)
            expected[key] = expected.get(key, ZERO) + sign * positions.get(instrument, ZERO)
        for event in events:
            if isinstance(event, OrderFilled) and (event.client_order_id, event.trade_id) not in ledger_trades:
                fill_key = self.position_keys.get(event.instrument_id)
                if fill_key is not None:
                    signed = event.last_qty if event.side is Side.BUY else -event.last_qty
                    sign, fill_key = (-1, fill_key[1:]) if fill_key.startswith("-") else (1, fill_key)
                    expected[fill_key] = expected.get(fill_key, ZERO) + sign * signed
        for key, want in sorted(expected.items()):
            have = balances.get(key, ZERO)
            if abs(have - want) > self.tolerance:
                report.mismatches.append(f"{key}: the venue holds {have}, the ledger {want}")

    async def _report(self, report: ReconcileReport) -> None:
        adapter = self.adapter
        host = adapter.host
        if report.applied_fills or report.adopted:
            log.warning("venue %s: reconciliation applied %d missing fills, adopted %d orders", adapter.name,
                        len(report.applied_fills), len(report.adopted),
                        extra={"audit": "reconcile", "fills": report.applied_fills, "adopted": report.adopted})
        if report.flagged:
            await host.adapter_alert(adapter.name, "warning", f"venue {adapter.name}: unknown open orders",
                                     adapter.scrub("; ".join(report.flagged))[:2000])
        if not report.mismatches:
            return
        reason = adapter.scrub("reconciliation mismatch: " + "; ".join(report.mismatches))[:480]
        log.error("venue %s: %s; the venue is REDUCING", adapter.name, reason,
                  extra={"audit": "reconcile_mismatch", "venue": adapter.name})
        if reason == self._escalated_reason:
            return  # already latched, alerted and escalated for this very mismatch
        self._escalated_reason = reason
        adapter.set_reducing(reason)
        await host.adapter_state_changed(adapter.name)
        outcome = "risk not asked (no execution.risk_url)"
        if self.escalation is not None:
            try:
                outcome = await self.escalation.reducing(adapter.name, reason)
            except Exception as exc:  # the local latch holds anyway
                outcome = f"asking risk failed: {adapter.scrub(str(exc))}"
                log.error("venue %s: %s", adapter.name, outcome)
        report.escalated = outcome
        await host.adapter_alert(adapter.name, "critical", f"venue {adapter.name}: reconciliation mismatch, REDUCING",
                                 f"{reason} ({outcome})")


def _order_snapshot(tracked: TrackedOrder, fill: VenueFill) -> VenueOrder:
    filled = tracked.filled + fill.quantity
    return VenueOrder(client_order_id=tracked.order.client_order_id,
                      venue_order_id=tracked.venue_order_id or fill.venue_order_id,
                      status="filled" if filled >= tracked.order.quantity else "open", filled_qty=filled)
