"""The approval queue of ``semi-auto`` strategies, served by the risk service.

**Parking.** When a ``semi-auto`` strategy's signal passes every check (and its promotion stage), the
``SubmitOrder`` is not sent: it is parked here and announced as an ``OrderPendingApproval`` on
``ord.evt.{strategy}`` (the ledger records it). While it waits it counts as one of risk's open orders
(open orders, allocations, reserved cash), so the checks of later signals leave room for it. The queue
(``pending`` and the latest ``RECENT`` decisions) is stored under the KV key ``risk.approvals`` on every
change, so it survives a risk restart (parked orders re-enter risk's context at start). At most
``approvals.max_pending`` wait; a further order is denied ``APPROVAL_QUEUE_FULL``.

**Deciding** (API token; ``tradewire approvals list|approve ID|reject ID --reason R``):

* ``GET /v1/approvals``: ``{"pending": [...], "recent": [...], "ttl_s", "clock"}``; an item's ``id`` is the
  order's client order id.
* ``POST /v1/approvals/{id}/approve`` ``{"reason": ""}``: the order is **checked again** with the current
  portfolio snapshot, trading state, context and stage: the signal is re-evaluated by the engine (under a
  derived id, on a copy of the context without the parked order) at the approval's time. A denial then
  (``TRADING_HALTED``, ``MAX_POSITION``, ``STAGE_NOT_LIVE``, ...) is published as the order's
  ``OrderDenied`` with that code; a re-evaluated order of another side or reduce-only flag is
  ``APPROVAL_STALE``; otherwise the parked order is sent with the smaller of the two quantities (never more
  than was approved) and event time the approval's. Answer: ``{"id", "decision": "APPROVED", "outcome":
  "SUBMITTED" | "DENIED", "order" | "denial"}``.
* ``POST /v1/approvals/{id}/reject`` ``{"reason": "..."}`` (required): ``OrderDenied`` ``APPROVAL_REJECTED``.
* Expiry: an order not decided before ``parked + approvals.ttl_s`` (at that instant it has expired) is
  ``OrderDenied`` ``APPROVAL_EXPIRED`` with event time its expiry. Parked time and TTL are in the automation
  clock's time: the signal's event time in replays (so a replay expires orders after TTL of *event* time,
  checked on every signal, every request and every second), the wall clock live.

Every decision is an ``OrderApprovalDecided`` (decision, actor, reason) on ``ord.evt.{strategy}`` before its
outcome, an audit log line (``audit = "approval"``), and counted in
``tradewire_risk_approvals_total{status}``; ``tradewire_risk_approvals_pending_orders`` is the queue's length.
Unknown ids are 404; ids already decided 409.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections import OrderedDict
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import msgspec
from fastapi import FastAPI, HTTPException
from msgspec import Meta

from tradewire_common import subjects
from tradewire_common.http import Actor
from tradewire_common.ids import derive_id, split_instrument_id
from tradewire_common.schemas import (
    ApprovalDecision,
    DenyReason,
    OrderApprovalDecided,
    OrderDenied,
    OrderPendingApproval,
    Signal,
    SubmitOrder,
)

if TYPE_CHECKING:
    from tradewire_risk.automation import Automation, EventTime
    from tradewire_risk.service import RiskService

log = logging.getLogger(__name__)

#: The KV key of the queue.
KEY = "risk.approvals"
#: Decisions kept for ``GET /v1/approvals``.
RECENT = 100
#: Seconds between two expiry checks on the wall clock.
SWEEP_S = 1.0
REASON_MAX = 500
_NS = 1_000_000_000


class PendingApproval(msgspec.Struct, frozen=True):
    """An order waiting for a person."""

    id: str
    signal: Signal
    order: SubmitOrder
    parked_at_ns: int
    expires_at_ns: int
    clock: str


class ResolvedApproval(msgspec.Struct, frozen=True):
    """How an order left the queue."""

    id: str
    strategy_id: str
    instrument_id: str
    decision: str
    #: ``SUBMITTED`` or ``DENIED``.
    outcome: str
    actor: str
    reason: str
    at_ns: int
    reason_code: str = ""


class ApprovalBook(msgspec.Struct):
    """What the KV key holds."""

    pending: list[PendingApproval] = msgspec.field(default_factory=list)
    recent: list[ResolvedApproval] = msgspec.field(default_factory=list)


class ApproveBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reason: Annotated[str, Meta(max_length=REASON_MAX)] = ""


class RejectBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reason: Annotated[str, Meta(min_length=1, max_length=REASON_MAX)]


class ApprovalError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class ApprovalQueue:
    """Parked orders of one risk service (see the module docstring)."""

    def __init__(self, service: RiskService, automation: Automation, clock: EventTime) -> None:
        self.service = service
        self.automation = automation
        self.clock = clock
        config = service.config.approvals
        self.ttl_ns = int(Decimal(str(config.ttl_s)) * _NS)  # exact: 0.1 s is 100_000_000 ns
        self.max_pending = config.max_pending
        self.pending: OrderedDict[str, PendingApproval] = OrderedDict()
        self.recent: list[ResolvedApproval] = []
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.enabled = any(s.automation == "semi-auto" for s in service.config.signals.strategies)
        m = service.metrics
        self.pending_gauge = m.gauge("approvals_pending_orders", "Orders waiting in the approval queue")
        self.decisions = m.counter("approvals_total", "Orders that left the approval queue, by decision",
                                   ("status",))
        for decision in ApprovalDecision:
            self.decisions.labels(decision.value)

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        raw = await self.service.bus.kv_get(KEY)
        if raw is not None:
            try:
                book = msgspec.json.decode(raw, type=ApprovalBook)
            except msgspec.DecodeError:
                log.error("undecodable approval queue in KV (%s); starting empty", KEY)
                book = ApprovalBook()
            self.pending = OrderedDict((item.id, item) for item in book.pending)
            self.recent = list(book.recent)
        context = self.service.context_feed.context
        for item in self.pending.values():  # they wait as open orders, as before the restart
            context.record_submit(item.order, item.signal.price)
        self.pending_gauge.set(len(self.pending))
        if self.pending:
            log.info("approval queue: %d orders waiting", len(self.pending))
        if self.enabled or self.pending:
            self._task = asyncio.create_task(self._sweep_forever(), name="risk-approvals-expiry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            try:
                await self.sweep()
            except Exception:  # a failed publish or put is retried on the next sweep
                log.exception("approval expiry check failed")

    # --- parking -----------------------------------------------------------------------------------

    async def park(self, signal: Signal, order: SubmitOrder) -> OrderPendingApproval | OrderDenied:
        """Park ``order`` (already recorded in risk's context by the engine); the event to publish."""
        wall = self.service.clock.now_ns()
        async with self._lock:
            item = self.pending.get(order.client_order_id)
            if item is None:
                if len(self.pending) >= self.max_pending:
                    self.service.context_feed.context.open_orders.pop(order.client_order_id, None)
                    return OrderDenied(
                        id=derive_id("denied", signal.id), ts_event=order.ts_event, ts_init=wall,
                        correlation_id=order.correlation_id, strategy_id=order.strategy_id,
                        instrument_id=order.instrument_id, client_order_id=order.client_order_id,
                        reason_code=DenyReason.APPROVAL_QUEUE_FULL,
                        reason=f"the approval queue is full ({self.max_pending} orders waiting)", side=order.side,
                        quantity=order.quantity, signal_id=signal.id)
                parked = signal.ts_event if self.clock.mode == "event" else wall
                item = PendingApproval(order.client_order_id, signal, order, parked, parked + self.ttl_ns,
                                       self.clock.mode)
                self.pending[item.id] = item
                await self._save()
                log.warning("order %s of %s waits for approval: %s %s %s until %d (%s time)", item.id,
                            order.strategy_id, order.side, order.quantity, order.instrument_id, item.expires_at_ns,
                            item.clock, extra={"audit": "approval", "approval_id": item.id, "decision": "PENDING"})
        return OrderPendingApproval(
            id=derive_id("pending-approval", order.id), ts_event=order.ts_event, ts_init=wall,
            correlation_id=order.correlation_id, strategy_id=order.strategy_id, instrument_id=order.instrument_id,
            client_order_id=order.client_order_id, order=order, expires_at_ns=item.expires_at_ns, clock=item.clock,
            signal_id=signal.id)

    # --- deciding ----------------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Expire every order whose TTL has run out; how many."""
        if not self.pending:
            return 0
        async with self._lock:
            now = self.clock.now_ns()
            due = [item for item in self.pending.values() if now >= item.expires_at_ns]
            for item in due:
                await self._expire(item)
            if due:
                await self._save()
        return len(due)

    async def approve(self, approval_id: str, actor: str, reason: str = "") -> dict[str, object]:
        await self.sweep()
        async with self._lock:
            item = self._find(approval_id)
            now = self.clock.now_ns()
            if now >= item.expires_at_ns:
                await self._expire(item)
                await self._save()
                raise ApprovalError(409, f"{approval_id} expired at {item.expires_at_ns} ({item.clock} time)")
            wall = self.service.clock.now_ns()
            ts = max(item.signal.ts_event, now)
            outcome = self._recheck(item, ts, wall)
            await self._publish_decision(item, ApprovalDecision.APPROVED, actor, reason, ts, wall)
            service = self.service
            context = service.context_feed.context
            if isinstance(outcome, SubmitOrder):
                _symbol, venue = split_instrument_id(outcome.instrument_id)
                await service.bus.publish(subjects.order_command(venue), outcome)
                service.orders_out.labels(venue).inc()
                recorded = context.open_orders.get(outcome.client_order_id)
                if recorded is None:
                    context.record_submit(outcome, item.signal.price)
                else:
                    recorded.quantity, recorded.ts_event = outcome.quantity, outcome.ts_event
                await service.control.order_sent(outcome)
                body: dict[str, object] = {"order": msgspec.to_builtins(outcome)}
            else:
                await self._deny(outcome)
                body = {"denial": msgspec.to_builtins(outcome)}
            resolved = self._resolve(item, ApprovalDecision.APPROVED, actor, reason, wall, outcome)
            await self._save()
        return {"id": approval_id, "decision": resolved.decision, "outcome": resolved.outcome, **body}

    async def reject(self, approval_id: str, actor: str, reason: str) -> dict[str, object]:
        reason = reason.strip()
        if not reason:
            raise ApprovalError(422, "rejecting needs a reason")
        await self.sweep()
        async with self._lock:
            item = self._find(approval_id)
            wall = self.service.clock.now_ns()
            ts = max(item.signal.ts_event, self.clock.now_ns())
            await self._publish_decision(item, ApprovalDecision.REJECTED, actor, reason, ts, wall)
            denial = self._denial(item, DenyReason.APPROVAL_REJECTED, f"rejected by {actor}: {reason}", ts, wall)
            await self._deny(denial)
            resolved = self._resolve(item, ApprovalDecision.REJECTED, actor, reason, wall, denial)
            await self._save()
        return {"id": approval_id, "decision": resolved.decision, "outcome": resolved.outcome,
                "denial": msgspec.to_builtins(denial)}

    def _find(self, approval_id: str) -> PendingApproval:
        item = self.pending.get(approval_id)
        if item is not None:
            return item
        done = next((r for r in reversed(self.recent) if r.id == approval_id), None)
        if done is not None:
            raise ApprovalError(409, f"{approval_id} was already decided: {done.decision} by {done.actor}")
        raise ApprovalError(404, f"no order {approval_id!r} waits for approval")

    def _recheck(self, item: PendingApproval, ts: int, wall: int) -> SubmitOrder | OrderDenied:
        """The parked order as it may go now, or its denial (see the module docstring)."""
        service = self.service
        context = copy.deepcopy(service.context_feed.context)
        context.open_orders.pop(item.id, None)
        check = msgspec.structs.replace(item.signal, id=derive_id("approval-check", item.id, ts, wall), ts_event=ts)
        decision = service.engine.evaluate(check, service.snapshot, service.control.state_for(item.signal),
                                           now_ns=wall, context=context)
        decision = self.automation.gate(check, decision, context)
        order = item.order
        if isinstance(decision, OrderDenied):
            return self._denial(item, decision.reason_code, f"at approval: {decision.reason}", ts, wall)
        if decision.side is not order.side or decision.reduce_only != order.reduce_only:
            return self._denial(item, DenyReason.APPROVAL_STALE,
                                f"at approval risk would send {decision.side} {decision.quantity} (reduce-only "
                                f"{decision.reduce_only}), not the approved {order.side} {order.quantity} "
                                f"(reduce-only {order.reduce_only}): the position changed", ts, wall)
        return msgspec.structs.replace(order, quantity=min(order.quantity, decision.quantity), ts_event=ts,
                                       ts_init=wall)

    async def _expire(self, item: PendingApproval) -> None:
        wall = self.service.clock.now_ns()
        reason = f"not approved within {self.ttl_ns / _NS:g} s ({item.clock} time)"
        await self._publish_decision(item, ApprovalDecision.EXPIRED, "risk", reason, item.expires_at_ns, wall)
        denial = self._denial(item, DenyReason.APPROVAL_EXPIRED, reason, item.expires_at_ns, wall)
        await self._deny(denial)
        self._resolve(item, ApprovalDecision.EXPIRED, "risk", reason, wall, denial)

    def _denial(self, item: PendingApproval, code: DenyReason, reason: str, ts: int, wall: int) -> OrderDenied:
        order = item.order
        return OrderDenied(
            id=derive_id("approval-denied", item.id), ts_event=ts, ts_init=wall, correlation_id=order.correlation_id,
            strategy_id=order.strategy_id, instrument_id=order.instrument_id, client_order_id=item.id,
            reason_code=code, reason=reason, side=order.side, quantity=order.quantity, signal_id=item.signal.id)

    async def _deny(self, denial: OrderDenied) -> None:
        self.service.context_feed.context.open_orders.pop(denial.client_order_id, None)
        await self.service.bus.publish(subjects.order_event(denial.strategy_id), denial)
        self.service.denials.labels(denial.reason_code.value).inc()

    async def _publish_decision(self, item: PendingApproval, decision: ApprovalDecision, actor: str, reason: str,
                                ts: int, wall: int) -> None:
        order = item.order
        log.warning("approval %s of %s (%s %s %s): %s by %s: %s", item.id, order.strategy_id, order.side,
                    order.quantity, order.instrument_id, decision, actor, reason,
                    extra={"audit": "approval", "approval_id": item.id, "decision": decision.value, "actor": actor,
                           "reason": reason, "strategy": order.strategy_id})
        await self.service.bus.publish(subjects.order_event(order.strategy_id), OrderApprovalDecided(
            id=derive_id("approval-decided", item.id), ts_event=ts, ts_init=wall, correlation_id=order.correlation_id,
            strategy_id=order.strategy_id, instrument_id=order.instrument_id, client_order_id=item.id,
            decision=decision, actor=actor, reason=reason))

    def _resolve(self, item: PendingApproval, decision: ApprovalDecision, actor: str, reason: str, wall: int,
                 outcome: SubmitOrder | OrderDenied) -> ResolvedApproval:
        self.pending.pop(item.id, None)
        denied = isinstance(outcome, OrderDenied)
        resolved = ResolvedApproval(item.id, item.order.strategy_id, item.order.instrument_id, decision.value,
                                    "DENIED" if denied else "SUBMITTED", actor, reason, wall,
                                    outcome.reason_code.value if isinstance(outcome, OrderDenied) else "")
        self.recent = [*self.recent, resolved][-RECENT:]
        self.decisions.labels(decision.value).inc()
        return resolved

    async def _save(self) -> None:
        self.pending_gauge.set(len(self.pending))
        book = ApprovalBook(list(self.pending.values()), self.recent)
        await self.service.bus.kv_put(KEY, msgspec.json.encode(book))

    # --- reading -----------------------------------------------------------------------------------

    def bodies(self) -> dict[str, object]:
        return {"pending": [_item_body(item) for item in self.pending.values()],
                "recent": msgspec.to_builtins(self.recent[::-1]), "ttl_s": self.ttl_ns / _NS,
                "clock": self.clock.mode}

    def add_routes(self, app: FastAPI) -> None:
        @app.get("/v1/approvals")
        async def approvals() -> dict[str, object]:
            await self.sweep()
            return self.bodies()

        @app.post("/v1/approvals/{approval_id}/approve")
        async def approve(approval_id: str, actor: Actor, body: dict[str, object] | None = None) -> dict[str, object]:
            request = _convert(body or {}, ApproveBody)
            try:
                return await self.approve(approval_id, actor, request.reason)
            except ApprovalError as exc:
                raise HTTPException(status_code=exc.status, detail=exc.detail) from None

        @app.post("/v1/approvals/{approval_id}/reject")
        async def reject(approval_id: str, actor: Actor, body: dict[str, object] | None = None) -> dict[str, object]:
            request = _convert(body or {}, RejectBody)
            try:
                return await self.reject(approval_id, actor, request.reason)
            except ApprovalError as exc:
                raise HTTPException(status_code=exc.status, detail=exc.detail) from None


def _item_body(item: PendingApproval) -> dict[str, object]:
    order, signal = item.order, item.signal
    return {
        "id": item.id, "strategy_id": order.strategy_id, "instrument_id": order.instrument_id,
        "side": order.side.value, "quantity": str(order.quantity), "order_type": order.order_type.value,
        "limit_price": None if order.limit_price is None else str(order.limit_price),
        "trigger_price": None if order.trigger_price is None else str(order.trigger_price),
        "reduce_only": order.reduce_only, "signal_id": signal.id, "signal_price": str(signal.price),
        "signal_reason": signal.reason, "ts_event": signal.ts_event, "parked_at_ns": item.parked_at_ns,
        "expires_at_ns": item.expires_at_ns, "clock": item.clock,
    }


def _convert(body: dict[str, object], kind: type[msgspec.Struct]) -> ApproveBody | RejectBody:
    try:
        result = msgspec.convert(body, kind)
    except msgspec.ValidationError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    assert isinstance(result, ApproveBody | RejectBody)
    return result
