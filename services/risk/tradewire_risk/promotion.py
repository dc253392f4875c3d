"""Promotion stages of the strategies: stored, served, changed by people through the gates.

* Each configured strategy's stage history is a :class:`~tradewire_risk.stages.StageRecord` under the KV key
  ``risk.stage.<strategy>`` (risk's NATS user may write ``risk.>``), loaded at start, so it survives
  restarts. A strategy without one is at its ``initial_stage`` (default ``promotion.initial_stage``,
  ``paper``: paper trading works out of the box, live venues need promotions).
* ``POST /v1/strategies/{id}/promote`` ``{to, reason, backtest_report}`` (API token) and ``tradewire
  promote STRATEGY --to STAGE --reason R [--backtest-report FILE]``: one stage up through its gate
  (:mod:`tradewire_risk.stages`), or any stage down (always allowed). A refused promotion is 409 with the
  gate's reason; an unknown strategy 404; a bad body 422.
* Each change is stored, logged as an audit line (``audit = "promotion"``) and published as a
  ``StrategyStageChanged`` on ``gov.stage.{strategy}``, which the ledger records (``GET /v1/promotions``).
* ``GET /v1/strategies`` (and ``/v1/strategies/{id}``): automation level, stage, since, history.

The paper gate reads the strategy's fills and the equity curve from the ledger (``risk.ledger_url``:
``/v1/fills``, ``/v1/equity``) and marks from the latest portfolio snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import httpx
import msgspec
from fastapi import FastAPI, HTTPException
from msgspec import Meta

from tradewire_common import subjects
from tradewire_common.config import STAGES, Stage
from tradewire_common.http import Actor
from tradewire_common.ids import derive_id
from tradewire_common.schemas import StrategyStage, StrategyStageChanged
from tradewire_risk.stages import (
    PromotionRefused,
    StageEntry,
    StageRecord,
    backtest_gate,
    initial_stage,
    live_gate,
    paper_gate,
    rank,
)

if TYPE_CHECKING:
    from tradewire_risk.automation import EventTime
    from tradewire_risk.service import RiskService

log = logging.getLogger(__name__)

#: KV key prefix of the stage records.
KEY_PREFIX = "risk.stage"
REASON_MAX = 500
_R = TypeVar("_R")


def stage_key(strategy_id: str) -> str:
    """The KV key of a strategy's stage record (characters keys cannot hold escaped as ``=XX``)."""
    token = re.sub(r"[^A-Za-z0-9_-]", lambda m: "".join(f"={b:02X}" for b in m.group().encode()), strategy_id)
    return f"{KEY_PREFIX}.{token}"


class PromoteRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /v1/strategies/{id}/promote``."""

    to: Stage
    reason: Annotated[str, Meta(min_length=1, max_length=REASON_MAX)]
    #: The ``tradewire backtest --json`` summary (to ``paper``: the backtest; to ``live-small``: the backtest
    #: over the paper period).
    backtest_report: dict[str, Any] | None = None


class UnknownStrategy(LookupError):
    pass


class Promotions:
    """The stages of one risk service's strategies (see the module docstring)."""

    def __init__(self, service: RiskService, clock: EventTime) -> None:
        self.service = service
        self.clock = clock
        self.kinds = {s.id: s.kind for s in service.config.signals.strategies}
        self.records: dict[str, StageRecord] = {sid: StageRecord() for sid in self.kinds}
        self.initial = {sid: initial_stage(service.config, sid) for sid in self.kinds}
        self.default: Stage = service.config.promotion.initial_stage
        self._lock = asyncio.Lock()
        self.stage_gauge = service.metrics.gauge(
            "strategy_stage_value", "Promotion stage of each strategy: 0 backtest, 1 paper, 2 live-small, 3 live",
            ("strategy",))
        self._show()

    async def start(self) -> None:
        for strategy_id in self.kinds:
            raw = await self.service.bus.kv_get(stage_key(strategy_id))
            if raw is None:
                continue
            try:
                self.records[strategy_id] = msgspec.json.decode(raw, type=StageRecord)
            except msgspec.DecodeError:
                log.error("undecodable stage record of %s in KV; keeping its initial stage", strategy_id)
        self._show()
        for strategy_id in self.kinds:
            log.info("strategy %s is at stage %s", strategy_id, self.stage(strategy_id))

    def stage(self, strategy_id: str) -> Stage:
        """A strategy's stage (an unconfigured strategy's: ``promotion.initial_stage``)."""
        record = self.records.get(strategy_id)
        return record.stage(self.initial[strategy_id]) if record is not None else self.default

    def body(self, strategy_id: str) -> dict[str, object]:
        if strategy_id not in self.kinds:
            raise UnknownStrategy(strategy_id)
        record = self.records[strategy_id]
        return {"strategy_id": strategy_id, "kind": self.kinds[strategy_id], "stage": self.stage(strategy_id),
                "since_ns": record.since(), **self.service.automation.describe(strategy_id),
                "history": msgspec.to_builtins(record.history)}

    async def promote(
        self, strategy_id: str, to: Stage, reason: str, actor: str, report: dict[str, Any] | None = None,
    ) -> dict[str, object]:
        """Move a strategy to ``to`` through its gate; raises :class:`PromotionRefused` or :class:`UnknownStrategy`."""
        if strategy_id not in self.kinds:
            raise UnknownStrategy(strategy_id)
        reason = reason.strip()
        if not reason:
            raise PromotionRefused("a stage change needs a reason")
        async with self._lock:
            record = self.records[strategy_id]
            current = self.stage(strategy_id)
            now = self.clock.now_ns()
            if to == current:
                raise PromotionRefused(f"{strategy_id} is already at stage {to}")
            report_text, evidence = "", dict[str, str]()
            if rank(to) > rank(current):
                if rank(to) != rank(current) + 1:
                    raise PromotionRefused(f"{strategy_id} is at {current}: promotions go one stage at a time "
                                           f"({' -> '.join(STAGES)})")
                report_text, evidence = await self._gate(strategy_id, to, record, report, now)
            elif report is not None:
                report_text = msgspec.json.encode(report).decode()
            entry = StageEntry(stage=to, previous=current, since_ns=now, at_ns=self.service.clock.now_ns(),
                               actor=actor, reason=reason, backtest_report=report_text, evidence=evidence)
            updated = StageRecord([*record.history, entry])
            await self.service.bus.kv_put(stage_key(strategy_id), msgspec.json.encode(updated))
            self.records[strategy_id] = updated
            self._show()
            kind = "promotion" if rank(to) > rank(current) else "demotion"
            log.warning("strategy %s %s: %s -> %s by %s: %s", strategy_id, kind, current, to, actor, reason,
                        extra={"audit": "promotion", "strategy": strategy_id, "stage": to, "previous": current,
                               "actor": actor, "reason": reason, "evidence": evidence})
            await self.service.bus.publish(subjects.strategy_stage(strategy_id), StrategyStageChanged(
                id=derive_id("stage", strategy_id, entry.at_ns, to, reason, actor), ts_event=now, ts_init=entry.at_ns,
                strategy_id=strategy_id, stage=StrategyStage(to), previous=StrategyStage(current), reason=reason,
                actor=actor, backtest_report=report_text, evidence=evidence))
            return self.body(strategy_id)

    async def _gate(self, strategy_id: str, to: Stage, record: StageRecord, report: dict[str, Any] | None,
                    now: int) -> tuple[str, dict[str, str]]:
        config = self.service.config
        kind = self.kinds[strategy_id]
        if to == "paper":
            return backtest_gate(report, record.latest_backtest(), strategy_id=strategy_id, kind=kind)
        if to == "live":
            return "", live_gate(strategy_id=strategy_id, stage_since=record.since(), now_ns=now,
                                 config=config.promotion)
        if report is None:  # checked before reading the ledger
            raise PromotionRefused(f"promotion of {strategy_id} to live-small needs a backtest report over the "
                                   "paper period (--backtest-report FILE) to compare the paper results with")
        fills, equity = await self._ledger_rows()
        snapshot = self.service.snapshot
        marks = {p.instrument_id: p.last_price for p in snapshot.positions} if snapshot is not None else {}
        result = paper_gate(strategy_id=strategy_id, kind=kind, stage_since=record.since(), now_ns=now, fills=fills,
                            equity=equity, marks=marks, report=report, config=config.promotion,
                            live=self.service.automation.live, starting_cash=config.ledger.starting_cash)
        return msgspec.json.encode(report).decode(), result.evidence()

    async def _ledger_rows(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        url = self.service.config.risk.ledger_url.rstrip("/")
        if not url:
            raise PromotionRefused("risk.ledger_url is not set: the paper results cannot be read from the ledger")
        try:
            async with httpx.AsyncClient(timeout=30.0) as client:
                fills = await client.get(f"{url}/v1/fills", params={"limit": 100_000})
                fills.raise_for_status()
                equity = await client.get(f"{url}/v1/equity", params={"limit": 1_000_000})
                equity.raise_for_status()
                return list(fills.json()), list(equity.json())
        except (httpx.HTTPError, ValueError, TypeError) as exc:
            raise PromotionRefused(f"cannot read the paper results from the ledger at {url}: {exc}") from None

    def _show(self) -> None:
        for strategy_id in self.kinds:
            self.stage_gauge.labels(strategy_id).set(rank(self.stage(strategy_id)))

    def add_routes(self, app: FastAPI) -> None:
        @app.get("/v1/strategies")
        async def strategies() -> dict[str, object]:
            return {"strategies": [self.body(sid) for sid in self.kinds]}

        @app.get("/v1/strategies/{strategy_id}")
        async def strategy(strategy_id: str) -> dict[str, object]:
            try:
                return self.body(strategy_id)
            except UnknownStrategy:
                raise HTTPException(status_code=404, detail=f"unknown strategy {strategy_id!r}") from None

        @app.post("/v1/strategies/{strategy_id}/promote")
        async def promote(strategy_id: str, body: dict[str, object], actor: Actor) -> dict[str, object]:
            request = _convert(body, PromoteRequest)
            try:
                return await self.promote(strategy_id, request.to, request.reason, actor, request.backtest_report)
            except UnknownStrategy:
                raise HTTPException(status_code=404, detail=f"unknown strategy {strategy_id!r}") from None
            except PromotionRefused as exc:
                raise HTTPException(status_code=409, detail=str(exc)) from None


def _convert(body: dict[str, object], kind: type[_R]) -> _R:
    try:
        return msgspec.convert(body, kind)
    except msgspec.ValidationError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
