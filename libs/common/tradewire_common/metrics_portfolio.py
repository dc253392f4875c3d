"""Portfolio gauges the ledger exports from each snapshot: drawdown, exposure, positions.

Decimals become floats here, for metrics only (the ledger and the wire keep Decimal). The
drawdown's peak is the highest equity seen since the ledger process started, and never below the
starting cash, so a restart during a drawdown can understate it until equity recovers; the alert
rules also look at equity falls over time windows (loss spike), which survive restarts.
"""

from __future__ import annotations

from decimal import Decimal

from tradewire_common.metrics import ServiceMetrics
from tradewire_common.schemas import PortfolioSnapshot


class PortfolioMetrics:
    """Risk-facing gauges derived from the ledger's portfolio snapshots."""

    def __init__(self, metrics: ServiceMetrics, starting_cash: Decimal) -> None:
        self.peak = float(starting_cash)
        self.peak_equity = metrics.gauge(
            "peak_equity_value", "Highest equity since the ledger started (at least the starting cash)"
        )
        self.drawdown = metrics.gauge(
            "drawdown_ratio", "Fall of equity below its peak, as a fraction of the peak (0.1 = 10 %)"
        )
        self.exposure_ratio = metrics.gauge(
            "exposure_ratio", "Gross exposure as a fraction of equity (0 when equity is not positive)"
        )
        self.net_exposure = metrics.gauge("net_exposure_value", "Signed sum of quantity × last price")
        self.position_notional = metrics.gauge(
            "position_notional_value", "Signed position quantity × last price, per instrument", ("instrument",)
        )
        self.peak_equity.set(self.peak)
        self._instruments: set[str] = set()

    def update(self, snapshot: PortfolioSnapshot) -> None:
        equity = float(snapshot.equity)
        self.peak = max(self.peak, equity)
        self.peak_equity.set(self.peak)
        self.drawdown.set((self.peak - equity) / self.peak if self.peak > 0 else 0.0)
        self.exposure_ratio.set(float(snapshot.gross_exposure) / equity if equity > 0 else 0.0)
        net = 0.0
        seen: set[str] = set()
        for position in snapshot.positions:
            notional = float(position.quantity * position.last_price)
            net += notional
            seen.add(position.instrument_id)
            self.position_notional.labels(position.instrument_id).set(notional)
        for gone in self._instruments - seen:  # closed since the last snapshot: flat, not stale
            self.position_notional.labels(gone).set(0.0)
        self._instruments |= seen
        self.net_exposure.set(net)
