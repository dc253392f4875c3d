"""Run-time parameter changes, for ``adaptive`` strategies only and only within their ``param_bounds``.

A scheduled re-optimisation (a job of its own, not part of this service) moves an adaptive strategy's
parameters with ``POST /v1/strategies/{id}/params`` ``{"params": {...}, "reason": "..."}`` (API token).
The signals service applies a change only when

* the strategy's ``automation`` is ``adaptive`` (any other level: 409, its parameters change only with a
  new configuration and a restart);
* every parameter named has bounds in ``param_bounds`` (one without: 409, it never changes at run time)
  and its new value is a number within them (both ends allowed; outside: 409);
* the merged parameters pass the strategy's own parameter struct (422 naming the field).

The strategy is then rebuilt with the new parameters (it warms up again from the next bar, like after a
restart), the change is logged as an audit line (``audit = "strategy_params"``) and published as a
``StrategyParamsChanged`` (new and previous parameters, reason, actor) on ``gov.params.{strategy}``, which
the ledger records. Changes live in memory: after a restart the configured parameters apply until the
next re-optimisation. ``GET /v1/strategies`` shows every strategy's level, bounds and current parameters.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated

import msgspec
from fastapi import FastAPI, HTTPException
from msgspec import Meta

from tradewire_common import subjects
from tradewire_common.config import StrategyConfig
from tradewire_common.http import Actor
from tradewire_common.ids import derive_id
from tradewire_common.schemas import StrategyParamsChanged
from tradewire_signals.strategy import build_strategy

if TYPE_CHECKING:
    from tradewire_signals.service import SignalsService

log = logging.getLogger(__name__)

ParamValue = int | float | str | bool


class ParamsRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    params: dict[str, ParamValue]
    reason: Annotated[str, Meta(min_length=1, max_length=500)]


class ParamsChangeRefused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def check_change(config: StrategyConfig, requested: Mapping[str, ParamValue]) -> None:
    """Refuse a change the strategy's automation level or bounds do not allow (see the module docstring)."""
    if config.automation != "adaptive":
        raise ParamsChangeRefused(409, f"strategy {config.id} is {config.automation}: its parameters change only "
                                       "with a new configuration (automation = 'adaptive' allows bounded changes)")
    if not requested:
        raise ParamsChangeRefused(422, "no parameters given")
    for name, value in requested.items():
        bound = config.param_bounds.get(name)
        if bound is None:
            raise ParamsChangeRefused(409, f"parameter {name} of {config.id} has no param_bounds: it never "
                                           "changes at run time")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParamsChangeRefused(409, f"parameter {name} = {value!r} is not a number")
        if not bound.min <= value <= bound.max:
            raise ParamsChangeRefused(409, f"parameter {name} = {value} is outside its bounds "
                                           f"[{bound.min:g}, {bound.max:g}]")


class AdaptiveParams:
    """The signals service's parameter changes (see the module docstring)."""

    def __init__(self, service: SignalsService) -> None:
        self.service = service
        self.configs = {sc.id: sc for sc in service.config.signals.strategies}
        self.changes = service.metrics.counter("strategy_param_changes_total",
                                               "Run-time parameter changes applied, per strategy", ("strategy",))

    def _index(self, strategy_id: str) -> int:
        for i, (strategy, _interval) in enumerate(self.service.strategies):
            if strategy.strategy_id == strategy_id:
                return i
        raise ParamsChangeRefused(404, f"unknown strategy {strategy_id!r}")

    def describe(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for strategy, interval in self.service.strategies:
            config = self.configs[strategy.strategy_id]
            out.append({"id": config.id, "kind": config.kind, "interval": interval, "automation": config.automation,
                        "params": msgspec.to_builtins(strategy.params),
                        "param_bounds": msgspec.to_builtins(config.param_bounds)})
        return out

    async def change(self, strategy_id: str, requested: Mapping[str, ParamValue], reason: str,
                     actor: str) -> dict[str, object]:
        index = self._index(strategy_id)
        config = self.configs[strategy_id]
        check_change(config, requested)
        old, interval = self.service.strategies[index]
        previous: dict[str, ParamValue] = msgspec.to_builtins(old.params)
        merged = {**previous, **requested}
        try:
            rebuilt = build_strategy(msgspec.structs.replace(config, params=merged), index)
        except ValueError as exc:
            raise ParamsChangeRefused(422, str(exc)) from None
        self.service.strategies[index] = (rebuilt, interval)
        current: dict[str, ParamValue] = msgspec.to_builtins(rebuilt.params)
        now = self.service.clock.now_ns()
        log.warning("strategy %s parameters %s -> %s by %s: %s", strategy_id, previous, current, actor, reason,
                    extra={"audit": "strategy_params", "strategy": strategy_id, "actor": actor, "reason": reason})
        self.changes.labels(strategy_id).inc()
        await self.service.bus.publish(subjects.strategy_params(strategy_id), StrategyParamsChanged(
            id=derive_id("params", strategy_id, now, sorted(current.items()), reason, actor), ts_event=now, ts_init=now,
            strategy_id=strategy_id, params=current, previous=previous, reason=reason, actor=actor))
        return {"id": strategy_id, "params": current, "previous": previous}

    def add_routes(self, app: FastAPI) -> None:
        @app.get("/v1/strategies")
        async def strategies() -> dict[str, object]:
            return {"strategies": self.describe()}

        @app.post("/v1/strategies/{strategy_id}/params")
        async def change(strategy_id: str, body: dict[str, object], actor: Actor) -> dict[str, object]:
            try:
                request = msgspec.convert(body, ParamsRequest)
            except msgspec.ValidationError as exc:
                raise HTTPException(status_code=422, detail=str(exc)) from None
            try:
                return await self.change(strategy_id, request.params, request.reason, actor)
            except ParamsChangeRefused as exc:
                raise HTTPException(status_code=exc.status, detail=exc.detail) from None
