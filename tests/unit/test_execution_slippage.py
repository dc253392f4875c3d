"""Execution's slippage histogram: each fill against the last bar close when its order arrived."""

from __future__ import annotations

from decimal import Decimal

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.unit.test_paper_venue import VENUE, bar, order
from tradewire_common import subjects
from tradewire_common.bus import Envelope, MemoryBroker, MemoryBus
from tradewire_common.config import Config, ExecutionConfig, PaperConfig, VenueConfig
from tradewire_common.schemas import Bar, OrderFilled, Side, SubmitOrder
from tradewire_execution.service import ExecutionService
from tradewire_execution.slippage import signed_slippage

D = Decimal
METRIC = "tradewire_execution_fill_slippage_ratio"


@pytest.mark.parametrize(("side", "fill", "arrival", "expected"), [
    (Side.BUY, "101", "100", "0.01"),  # bought above the arrival price: worse, positive
    (Side.SELL, "99", "100", "0.01"),  # sold below it: worse, positive
    (Side.BUY, "99", "100", "-0.01"),  # bought below: better, negative
    (Side.SELL, "102", "100", "-0.02"),  # sold above: better, negative
    (Side.BUY, "100", "100", "0"),
])
def test_slippage_is_positive_when_the_fill_is_worse_for_the_trader(
    side: Side, fill: str, arrival: str, expected: str
) -> None:
    assert signed_slippage(side, D(fill), D(arrival)) == D(expected)


class Paper:
    """An execution service with one paper venue on a memory broker; a probe sends bars and orders."""

    def __init__(self, **paper: object) -> None:
        self.broker = MemoryBroker()
        self.probe = MemoryBus("probe", self.broker)
        self.config = Config(execution=ExecutionConfig(venues=(VenueConfig(name=VENUE),),
                                                       paper=PaperConfig(fee_bps=0.0, **paper)))  # type: ignore[arg-type]
        self.service = ExecutionService(self.config, MemoryBus("execution", self.broker))
        self.fills: list[OrderFilled] = []

    async def start(self) -> None:
        async def collect(envelope: Envelope) -> None:
            if isinstance(envelope.message, OrderFilled):
                self.fills.append(envelope.message)

        await self.probe.subscribe(subjects.order_event("sma"), collect, durable="probe")
        await self.service.start()

    async def send(self, *messages: SubmitOrder | Bar) -> None:
        for m in messages:
            subject = subjects.order_command(VENUE) if isinstance(m, SubmitOrder) else subjects.bar(VENUE, "BTCUSDT",
                                                                                                     "1m")
            await self.probe.publish(subject, m)
            assert await self.probe.wait_idle(5)

    def histogram(self) -> dict[str, float]:
        """The venue's series of the histogram: ``count``, ``sum`` and ``le=<bound>`` cumulative counts."""
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(self.service.metrics.render().decode()):
            if family.name != METRIC:
                continue
            for sample in family.samples:
                assert sample.labels["venue"] == VENUE
                suffix = sample.name.removeprefix(METRIC)
                out["le=" + sample.labels["le"] if suffix == "_bucket" else suffix.lstrip("_")] = sample.value
        return out


async def test_each_fill_is_measured_against_the_close_before_its_order_arrived() -> None:
    paper = Paper(slippage_bps=10.0, fill_at="next_open")
    await paper.start()
    assert paper.histogram()["count"] == 0  # the venue's series exists before the first fill
    await paper.send(
        bar(0, "99", close="100"), order("tw-1"),  # arrives at 100; fills at 101 + 10 bp
        bar(1, "101"), order("tw-2", signal_bar=1, side=Side.SELL),  # arrives at 101; fills at 100 - 10 bp
        bar(2, "100"), order("tw-3", signal_bar=2, limit="95"),  # arrives at 100; a limit fills better
        bar(3, "100", low="94"),
    )
    await paper.service.stop()

    assert [(f.client_order_id, f.last_px) for f in paper.fills[:2]] == [("tw-1", D("101.101")), ("tw-2", D("99.9"))]
    limit_fill = paper.fills[2]
    assert limit_fill.client_order_id == "tw-3" and limit_fill.last_px <= D(95)
    # 0.01101 and 1.1 / 101 = 0.01089 worse; the limit at least 5 % better
    got = paper.histogram()
    assert got["count"] == 3
    assert (got["le=-0.05"], got["le=0.0"], got["le=0.01"], got["le=0.02"]) == (1, 1, 1, 3)
    assert "sum" not in got  # signed buckets: prometheus_client exports no _sum (it would not be a counter)
    assert all(paper.service.slippage.arrival(coid) is None for coid in ("tw-1", "tw-2", "tw-3"))  # forgotten


async def test_an_order_that_arrives_before_any_bar_of_its_instrument_is_not_measured() -> None:
    paper = Paper(slippage_bps=10.0)
    await paper.start()
    await paper.send(order("tw-1"), bar(1, "101"))
    await paper.service.stop()
    assert [f.client_order_id for f in paper.fills] == ["tw-1"]
    assert paper.histogram()["count"] == 0


async def test_partial_fills_are_each_measured_and_the_arrival_kept_until_the_last() -> None:
    paper = Paper(slippage_bps=0.0, max_volume_share=0.5)
    await paper.start()
    await paper.send(bar(0, "100"), order("tw-1", quantity="3"), bar(1, "102", volume="4"))
    assert paper.service.slippage.arrival("tw-1") == D(100)  # 2 of 3 filled: still working
    await paper.send(bar(2, "104", volume="4"))
    await paper.service.stop()
    assert [(f.last_qty, f.last_px) for f in paper.fills] == [(D(2), D(102)), (D(1), D(104))]
    got = paper.histogram()  # 2 % and 4 % worse than the arrival at 100
    assert (got["count"], got["le=0.01"], got["le=0.02"], got["le=0.05"]) == (2, 0, 1, 2)
    assert paper.service.slippage.arrival("tw-1") is None
