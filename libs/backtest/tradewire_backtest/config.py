"""Build a full Tradewire configuration for a one-file backtest from command-line choices."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Literal

from tradewire_common.config import (
    Config,
    DatafeedConfig,
    ExecutionConfig,
    InstrumentSpec,
    LedgerConfig,
    PaperConfig,
    ReplaySource,
    RiskConfig,
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
    step = ALL_IN_STEP if all_in else Decimal("0.000001")
    risk = RiskConfig(
        sizing="all_in" if all_in else base.risk.sizing,
        fraction=base.risk.fraction,
        kelly_fraction=base.risk.kelly_fraction,
        max_position_pct=base.risk.max_position_pct,
        max_exposure_pct=base.risk.max_exposure_pct,
        cost_fee_bps=spec.fee_bps,
        cost_slippage_bps=spec.slippage_bps,
        cost_fixed_fee=spec.fixed_fee,
        instruments=(InstrumentSpec(id=iid, quantity_step=step, min_quantity=step),),
    )
    return Config(
        bus=base.bus,
        http=base.http,
        logging=base.logging,
        datafeed=DatafeedConfig(replay=(ReplaySource(path=str(spec.data), instrument_id=iid),), speed="max",
                                lockstep=True),
        signals=SignalsConfig(strategies=(StrategyConfig(id=_strategy_id(spec.strategy), kind=spec.strategy,
                                                         instruments=(iid,), params=spec.params),)),
        risk=risk,
        execution=ExecutionConfig(
            venues=(VenueConfig(name=venue),),
            paper=PaperConfig(fill_at=spec.fill, slippage_bps=spec.slippage_bps, fee_bps=spec.fee_bps,
                              max_volume_share=1.0, quantity_step=step),
        ),
        ledger=LedgerConfig(starting_cash=spec.cash),
    )


def _strategy_id(kind: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "_", kind.lower()) or "strategy"
