"""The example prediction configs load, and their strategies build with their models and pairs."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from tradewire_common.bus import MemoryBroker, MemoryBus
from tradewire_common.config import load_config
from tradewire_signals.prediction.arbitrage import PredictionArbitrage
from tradewire_signals.prediction.edge import PredictionEdge
from tradewire_signals.prediction.models import Estimate, StaticModel
from tradewire_signals.service import SignalsService

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "config" / "examples"


@pytest.fixture(autouse=True)
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


def strategies(name: str) -> list[object]:
    config = load_config(EXAMPLES / name, environ={})
    return [s for s, _ in SignalsService(config, MemoryBus("signals", MemoryBroker())).strategies]


def test_the_backtest_example_runs_prediction_edge_on_both_outcomes_with_the_static_model() -> None:
    [edge] = strategies("prediction-backtest.toml")
    assert isinstance(edge, PredictionEdge) and isinstance(edge.model, StaticModel)
    assert edge.instruments == ("rIR6mWqaO9xKLifr6cLL-YES.MANIFOLD", "rIR6mWqaO9xKLifr6cLL-NO.MANIFOLD")
    # the file's p(YES) 0.95, keyed by the market id: NO gets 1 - 0.95
    assert edge.model.estimate(edge.outcomes["rIR6mWqaO9xKLifr6cLL-NO.MANIFOLD"], 0) == Estimate(D("0.05"), 0.9)


def test_the_live_edge_example_has_an_estimate_for_its_market() -> None:
    [edge] = strategies("prediction-edge.toml")
    assert isinstance(edge, PredictionEdge)
    yes = edge.outcomes[edge.instruments[0]]
    estimate = edge.model.estimate(yes, 0)
    assert estimate is not None and str(estimate.probability) == "0.2"


def test_the_arbitrage_example_pairs_yes_and_no_across_venues() -> None:
    [arb] = strategies("prediction-arbitrage.toml")
    assert isinstance(arb, PredictionArbitrage)
    assert [(p.yes.rsplit(".", 1)[1], p.no.rsplit(".", 1)[1]) for p in arb.pairs] == [
        ("KALSHI", "POLYMARKET"), ("POLYMARKET", "KALSHI")]
    assert arb.complements["KXPRES28-JDVANCE-YES.KALSHI"] == "KXPRES28-JDVANCE-NO.KALSHI"
