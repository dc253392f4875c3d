"""Event mode: the live services' own code on the in-memory bus with a simulated clock.

The five services (datafeed replay, signals, risk, execution's paper venue, ledger) run in one
process on a :class:`MemoryBroker`, paced by the same lockstep as ``tradewire up``, so a backtest
and a paper run over NATS produce the same fills and the same equity by construction.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import msgspec
import numpy as np

from tradewire_common.bus import MemoryBroker, MemoryBus
from tradewire_common.clock import SimulatedClock
from tradewire_common.config import Config, LedgerConfig
from tradewire_common.registry import service_factory
from tradewire_common.schemas import OrderFilled, Side
from tradewire_common.service import Service

START_ORDER = ("ledger", "execution", "risk", "signals", "datafeed")


@dataclass(frozen=True, slots=True)
class Trade:
    """One round trip (or an open position at the end): what the metrics and reports use."""

    entry_idx: int
    exit_idx: int  # -1 while open
    side: int  # +1 long, -1 short
    qty: float
    entry_px: float
    exit_px: float
    pnl: float
    fees: float


@dataclass(frozen=True)
class EventResult:
    fills: list[OrderFilled]
    trades: list[Trade]
    ts: np.ndarray
    close: np.ndarray
    equity: np.ndarray
    final_equity: Decimal
    starting_cash: Decimal
    bars: int
    elapsed_s: float
    summary: dict[str, Any]
    #: Positions the ledger closed at a market resolution (prediction markets), oldest first.
    settlements: list[dict[str, Any]] = field(default_factory=list)


def trades_from_fills(fills: Sequence[OrderFilled], bar_index: dict[int, int]) -> list[Trade]:
    """Pair fills into round trips by following the signed position through zero.

    A fill that crosses zero (a flip: close, then open the other way in one order) is split: the
    part up to flat closes the round trip, the rest opens the next one; its fee is shared between
    the two parts in proportion to their quantities.
    """
    trades: list[Trade] = []
    position = Decimal(0)
    entry: dict[str, Any] | None = None
    for fill in fills:
        idx = bar_index.get(fill.ts_event, -1)
        sign = 1 if fill.side is Side.BUY else -1
        remaining = fill.last_qty
        while remaining > 0:
            if entry is None:
                entry = {"idx": idx, "side": sign, "qty": Decimal(0), "cost": Decimal(0),
                         "exit_qty": Decimal(0), "exit_value": Decimal(0), "fees": Decimal(0)}
            part = remaining if sign == entry["side"] else min(remaining, abs(position))
            if sign == entry["side"]:
                entry["qty"] += part
                entry["cost"] += part * fill.last_px
            else:
                entry["exit_qty"] += part
                entry["exit_value"] += part * fill.last_px
            entry["fees"] += fill.fee * part / fill.last_qty
            position += sign * part
            remaining -= part
            if position == 0:
                trades.append(_close_trade(entry, idx))
                entry = None
    if entry is not None:
        trades.append(_close_trade(entry, -1))
    return trades


def _close_trade(entry: dict[str, Any], exit_idx: int) -> Trade:
    qty: Decimal = entry["qty"]
    entry_px = entry["cost"] / qty if qty else Decimal(0)
    exit_qty: Decimal = entry["exit_qty"]
    exit_px = entry["exit_value"] / exit_qty if exit_qty else Decimal(0)
    gross = (exit_px - entry_px) * exit_qty * entry["side"]
    return Trade(entry["idx"], exit_idx, entry["side"], float(qty), float(entry_px), float(exit_px),
                 float(gross - entry["fees"]), float(entry["fees"]))


async def run_event_async(config: Config, *, work_dir: Path | None = None) -> EventResult:
    with tempfile.TemporaryDirectory(prefix="tradewire-backtest-") as tmp:
        base = work_dir or Path(tmp)
        ledger_config = LedgerConfig(backend="sqlite", path=str(base / "ledger.db"),
                                     account=config.ledger.account, starting_cash=config.ledger.starting_cash,
                                     currency=config.ledger.currency)
        config = msgspec.structs.replace(config, ledger=ledger_config)
        broker = MemoryBroker()
        clock = SimulatedClock()
        services: dict[str, Service] = {}
        try:
            for name in START_ORDER:
                bus = MemoryBus(name, broker, clock=clock, max_deliver=config.bus.max_deliver)
                service = service_factory(name)(config, bus, clock)
                if hasattr(service, "inline_store"):
                    service.inline_store = True
                await service.start()
                services[name] = service
            feed = cast(Any, services["datafeed"])
            while not feed.done:
                await asyncio.sleep(0.005)
            elapsed = (feed.finished_at or time.monotonic()) - (feed.started_at or time.monotonic())
            ledger = cast(Any, services["ledger"])
            fills = ledger.store.load_fills()
            curve = ledger.store.equity_curve(100_000_000)
            summary = await ledger.summary()
            settlements = list(reversed(ledger.store.list_settlements(100_000)))
            bars = feed.bars
        finally:
            for name in reversed(START_ORDER):
                if name in services:
                    await services[name].stop()
    ts = np.fromiter((b.ts_event for b in bars), dtype=np.int64, count=len(bars))
    close = np.fromiter((float(b.close) for b in bars), dtype=np.float64, count=len(bars))
    equity = _equity_per_bar(ts, curve, float(config.ledger.starting_cash))
    bar_index = {int(t): i for i, t in enumerate(ts)}
    return EventResult(
        fills=fills, trades=trades_from_fills(fills, bar_index), ts=ts, close=close, equity=equity,
        final_equity=Decimal(summary["final_equity"]), starting_cash=config.ledger.starting_cash,
        bars=len(bars), elapsed_s=elapsed, summary=summary, settlements=settlements,
    )


def _equity_per_bar(ts: np.ndarray, curve: list[dict[str, Any]], cash: float) -> np.ndarray:
    """The ledger's equity rows (one per watermark) aligned to the bars, carried forward."""
    equity = np.full(len(ts), cash, dtype=np.float64)
    if not curve:
        return equity
    points = np.array([int(row["ts"]) for row in curve], dtype=np.int64)
    values = np.array([float(row["equity"]) for row in curve], dtype=np.float64)
    order = np.argsort(points, kind="stable")
    points, values = points[order], values[order]
    pos = np.searchsorted(points, ts, side="right") - 1
    has = pos >= 0
    equity[has] = values[pos[has]]
    return equity


def run_event(config: Config, *, work_dir: Path | None = None) -> EventResult:
    return asyncio.run(run_event_async(config, work_dir=work_dir))
