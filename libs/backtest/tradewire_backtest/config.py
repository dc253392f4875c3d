"""Build a full Tradewire configuration for a one-file backtest from command-line choices."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Literal

import msgspec

from tradewire_common.config import (
    Config,
    DatafeedConfig,
    ExecutionConfig,
    InstrumentSpec,
    LedgerConfig,
    PaperConfig,
    ReplaySource,
    SignalsConfig,
    StrategyConfig,
    VenueConfig,
)

VENUE = "BACKTEST"
#: All-in sizing trades fractional units; this step is fine enough to compare with float engines.
ALL_IN_STEP = Decimal("1e-12")


@dataclass(frozen=True)
class BacktestSpec:
    data: Path
    strategy: str
    params: dict[str, int | float | str | bool]
    cash: Decimal = Decimal(10_000)
    fee_bps: float = 10.0
    fixed_fee: Decimal = Decimal(0)
    slippage_bps: float = 0.0
    fill: Literal["close", "next_open"] = "close"
    sizing: Literal["all-in", "risk"] = "risk"
    instrument_id: str = ""
    #: Go short too: an opposite signal flips the position (all-in) or opens a short when flat.
    long_short: bool = False
    #: Trade whole units only (quantities rounded down to 1).
    whole_units: bool = False
    #: Exits attached to every entry, as fractions of the entry fill price (0 = none).
    stop_loss: float = 0.0
    take_profit: float = 0.0
    #: A trailing stop (fraction below the best price since entry) and a time stop (seconds after the
    #: entry fill) attached to every entry (0 = none).
    trailing_stop: float = 0.0
    time_stop_s: int = 0
    #: Order latency: the order reaches the simulated venue this long after the signal bar closes.
    latency_ms: int = 0
    #: Maker fee for resting limit fills (None: the taker ``fee_bps``).
    maker_fee_bps: float | None = None
    #: Square-root market impact coefficient (0: fixed ``slippage_bps`` only).
    impact: float = 0.0
    #: At most this share of a bar's volume fills per bar (1: no cap).
    volume_share: float = 1.0
    #: Use only the first ``limit`` bars of the data (0: all).
    limit: int = 0

    def __post_init__(self) -> None:
        for name in ("fee_bps", "slippage_bps", "stop_loss", "take_profit", "trailing_stop", "impact"):
            value = float(getattr(self, name))
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if self.maker_fee_bps is not None and not (math.isfinite(self.maker_fee_bps) and self.maker_fee_bps >= 0):
            raise ValueError(f"maker_fee_bps must be a finite number >= 0, got {self.maker_fee_bps}")
        if self.stop_loss >= 1 or self.take_profit >= 1 or self.trailing_stop >= 1:
            raise ValueError("stop_loss, take_profit and trailing_stop are fractions below 1 (0.02 = 2 %)")
        if self.time_stop_s < 0:
            raise ValueError(f"time_stop_s must be >= 0 seconds, got {self.time_stop_s}")
        if self.limit < 0:
            raise ValueError(f"limit must be >= 0, got {self.limit}")
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms must be >= 0, got {self.latency_ms}")
        if not 0 < self.volume_share <= 1:
            raise ValueError(f"volume_share must be within (0, 1], got {self.volume_share}")
        if not self.cash.is_finite() or self.cash <= 0:
            raise ValueError(f"cash must be positive, got {self.cash}")
        if not self.fixed_fee.is_finite() or self.fixed_fee < 0:
            raise ValueError(f"fixed_fee must be >= 0, got {self.fixed_fee}")

    def vector_unsupported(self) -> list[str]:
        """The options only event mode simulates (vector mode refuses them rather than ignore them)."""
        unsupported = []
        if self.sizing != "all-in":
            unsupported.append("--sizing risk (vector mode sizes all-in only)")
        if self.latency_ms:
            unsupported.append("--latency-ms")
        if self.impact:
            unsupported.append("--impact")
        if self.volume_share < 1:
            unsupported.append("--volume-share")
        return unsupported

    def instrument(self) -> str:
        if self.instrument_id:
            return self.instrument_id
        if str(self.data).startswith("catalog:"):
            from tradewire_datafeed.catalog import parse_entry_name

            return parse_entry_name(str(self.data))[0]
        symbol = re.sub(r"[^A-Za-z0-9_-]+", "_", self.data.stem).strip("_").upper() or "ASSET"
        return f"{symbol}.{VENUE}"


def build_config(spec: BacktestSpec, base: Config | None = None) -> Config:
    """A config whose datafeed replays ``spec.data`` into ``spec.strategy`` on a paper venue."""
    base = base or Config()
    iid = spec.instrument()
    venue = iid.rpartition(".")[2]
    all_in = spec.sizing == "all-in"
    step = Decimal(1) if spec.whole_units else ALL_IN_STEP if all_in else Decimal("0.000001")
    # the base's other risk settings (checks, sizing inputs, breakers) carry over unchanged
    risk = msgspec.structs.replace(
        base.risk,
        sizing="all_in" if all_in else base.risk.sizing,
        cost_fee_bps=spec.fee_bps,
        cost_slippage_bps=spec.slippage_bps,
        cost_fixed_fee=spec.fixed_fee,
        allow_short=spec.long_short,
        reverse_on_opposite=spec.long_short,
        stop_loss_pct=spec.stop_loss,
        take_profit_pct=spec.take_profit,
        trailing_stop_pct=spec.trailing_stop,
        time_stop_s=spec.time_stop_s,
        instruments=(InstrumentSpec(id=iid, quantity_step=step, min_quantity=step),),
    )
    return Config(
        bus=base.bus,
        http=base.http,
        logging=base.logging,
        datafeed=DatafeedConfig(replay=(ReplaySource(path=str(spec.data), instrument_id=iid, limit=spec.limit),),
                                speed="max",
                                lockstep=True),
        signals=SignalsConfig(strategies=(StrategyConfig(id=_strategy_id(spec.strategy), kind=spec.strategy,
                                                         instruments=(iid,), params=spec.params),)),
        risk=risk,
        execution=ExecutionConfig(
            venues=(VenueConfig(name=venue),),
            paper=PaperConfig(fill_at=spec.fill, slippage_bps=spec.slippage_bps, fee_bps=spec.fee_bps,
                              maker_fee_bps=spec.maker_fee_bps, fee_per_order=spec.fixed_fee,
                              slippage_model="sqrt_impact" if spec.impact else "fixed_bps",
                              impact_coefficient=spec.impact, latency_ms=spec.latency_ms,
                              max_volume_share=spec.volume_share, quantity_step=step),
        ),
        ledger=LedgerConfig(starting_cash=spec.cash),
    )


def _strategy_id(kind: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "_", kind.lower()) or "strategy"
