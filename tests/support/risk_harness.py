"""A real risk service on the in-memory bus with a simulated clock, and a recorder of what it publishes.

Signals and snapshots are handed to the service's own handlers (``on_signal``, ``on_snapshot``), so a test
drives time and the portfolio exactly; everything risk publishes is recorded by a core subscriber.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any, TypeVar

from tradewire_common import schemas, subjects
from tradewire_common.bus import Envelope, MemoryBroker, MemoryBus
from tradewire_common.clock import SimulatedClock
from tradewire_common.config import Config, config_from_dict
from tradewire_common.ids import derive_id
from tradewire_common.schemas import OrderType, PortfolioSnapshot, PositionSnapshot, Side, Signal
from tradewire_risk.service import RiskService

T0 = 1_641_000_000_000_000_000  # 2022-01-01T01:20Z
S = 10**9
MINUTE = 60 * S
DAY = 86_400 * S
D = Decimal
BTC = "BTCUSDT.BINANCE"
M = TypeVar("M", bound=schemas.Message)
_ids = itertools.count()


def risk_config(strategies: list[dict[str, Any]], **sections: Any) -> Config:
    """A config with these strategies on BTC (BINANCE, a paper venue) and whole-ish BTC steps."""
    data: dict[str, Any] = {
        "signals": {"strategies": [{"kind": "sma_cross", "instruments": [BTC], **s} for s in strategies]},
        "risk": {"instruments": [{"id": BTC, "quantity_step": "0.0001", "min_quantity": "0.0001"}]},
        **sections,
    }
    return config_from_dict(data)


class RiskHarness:
    def __init__(self, config: Config, *, broker: MemoryBroker | None = None, start_ns: int = T0) -> None:
        self.broker = broker or MemoryBroker()
        self.clock = SimulatedClock(start_ns)
        self.service = RiskService(config, MemoryBus("risk", self.broker, clock=self.clock), clock=self.clock)
        self.recorder = MemoryBus("recorder", self.broker)
        self.messages: list[tuple[str, schemas.Message]] = []

    async def start(self) -> RiskHarness:
        for pattern in (subjects.ALL_ORDER_COMMANDS, subjects.STRATEGY_ORDER_EVENTS, subjects.ALL_ALERTS,
                        subjects.ALL_GOVERNANCE):
            await self.recorder.subscribe(pattern, self._record)
        await self.service.automation.start()
        return self

    async def stop(self) -> None:
        await self.service.automation.stop()
        await self.recorder.close()

    async def _record(self, envelope: Envelope) -> None:
        self.messages.append((envelope.subject, envelope.message))

    async def snapshot(self, cash: str = "10000", *positions: tuple[str, str, str], as_of: int | None = None,
                       equity: str | None = None) -> PortfolioSnapshot:
        """Hand risk a snapshot; ``positions`` are ``(instrument, quantity, price)``."""
        n = next(_ids)
        at = self.clock.now_ns() if as_of is None else as_of
        held = sum((D(q) * D(p) for _, q, p in positions), D(0))
        snap = PortfolioSnapshot(
            id=derive_id("harness-snapshot", n), ts_event=at, ts_init=at, account="paper", cash=D(cash),
            equity=D(equity) if equity is not None else D(cash) + held, realized_pnl=D(0), unrealized_pnl=D(0),
            gross_exposure=abs(held),
            positions=tuple(PositionSnapshot(instrument_id=i, quantity=D(q), avg_price=D(p), last_price=D(p),
                                             realized_pnl=D(0), unrealized_pnl=D(0)) for i, q, p in positions),
            as_of=at)
        await self.service.on_snapshot(Envelope(subjects.PORTFOLIO_SNAPSHOT, snap, {}))
        return snap

    async def signal(self, strategy: str, side: Side = Side.BUY, *, ts: int | None = None, price: str = "40000",
                     instrument: str = BTC, limit: str | None = None) -> Signal:
        n = next(_ids)
        at = self.clock.now_ns() if ts is None else ts
        signal = Signal(id=derive_id("harness-signal", n), ts_event=at, ts_init=at, strategy_id=strategy,
                        instrument_id=instrument, side=side, price=D(price), confidence=0.8, reason=f"test {n}",
                        order_type=OrderType.LIMIT if limit else OrderType.MARKET,
                        limit_price=D(limit) if limit else None)
        await self.service.on_signal(Envelope(subjects.signal(strategy), signal, {}))
        await self.settle()
        return signal

    async def settle(self) -> None:
        await self.recorder.wait_idle(5)

    def of(self, kind: type[M]) -> list[M]:
        return [m for _, m in self.messages if isinstance(m, kind)]

    def subjects_of(self, kind: type[schemas.Message]) -> list[str]:
        return [s for s, m in self.messages if isinstance(m, kind)]
