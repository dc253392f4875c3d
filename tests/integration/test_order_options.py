"""Post-only and GTD orders on the stock venues (Alpaca, Tradier, IBKR) against their fakes: none of them offers
either through its adapter, so both are refused before anything is sent (no capability, no request)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from tests.fakes.alpaca_fake import alpaca_fake
from tests.fakes.ibkr_fake import ibkr_fake
from tests.fakes.tradier_fake import tradier_fake
from tests.integration import test_alpaca, test_ibkr, test_tradier
from tests.support.venue_tests import stock_order, submit
from tradewire_common.schemas import OrderRejected, SubmitOrder, TimeInForce
from tradewire_execution.live.base import CollectingHost, LiveVenueAdapter
from tradewire_execution.venue import CAP_AMEND, CAP_GTD, CAP_POST_ONLY

pytestmark = pytest.mark.timeout(60)

Venue = tuple[str, Callable[[], Any], Callable[[Any], LiveVenueAdapter], Callable[[Any], int]]
VENUES: list[Venue] = [
    ("ALPACA", alpaca_fake, lambda f: test_alpaca.make_adapter(f, websocket=False),
     lambda f: len(f.orders_posted())),
    ("TRADIER", tradier_fake, lambda f: test_tradier.make_adapter(f), lambda f: len(f.orders_posted())),
    ("IBKR", ibkr_fake, lambda f: test_ibkr.make_adapter(f), lambda f: len(f.order_posts())),
]


@pytest.fixture(params=VENUES, ids=[v[0] for v in VENUES])
def venue(request: pytest.FixtureRequest) -> Iterator[tuple[str, Any, Callable[[Any], LiveVenueAdapter],
                                                            Callable[[Any], int]]]:
    name, make_fake, make_adapter, posts = request.param
    with make_fake() as fake:
        yield name, fake, make_adapter, posts


def limit_order(venue: str, n: int, **changes: Any) -> SubmitOrder:
    return msgspec.structs.replace(stock_order(venue, "tw-opt", n, tif=TimeInForce.GTC), **changes)


async def test_post_only_and_gtd_orders_are_refused_before_anything_is_sent(venue: tuple[Any, ...]) -> None:
    name, fake, make_adapter, posts = venue
    adapter = make_adapter(fake)
    adapter.attach(CollectingHost())
    await adapter.start()
    try:
        assert CAP_POST_ONLY not in adapter.capabilities and CAP_GTD not in adapter.capabilities
        (post_only,) = await submit(adapter, limit_order(name, 1, post_only=True))
        (gtd,) = await submit(adapter, limit_order(name, 2, time_in_force=TimeInForce.GTD,
                                                   expire_time_ns=1_900_000_000_000_000_000))
        assert isinstance(post_only, OrderRejected) and "post-only" in post_only.reason
        assert isinstance(gtd, OrderRejected) and "GTD" in gtd.reason
        assert posts(fake) == 0
        (placed,) = await submit(adapter, limit_order(name, 3, limit_price=Decimal("185.50")))
        assert not isinstance(placed, OrderRejected) and posts(fake) == 1  # a plain limit order goes through
        assert (CAP_AMEND in adapter.capabilities) == (name == "ALPACA")  # the others replace cancel-then-new
    finally:
        await adapter.close()


# --- native brackets per venue: what Alpaca cannot hold goes to execution's emulator whole ------------------------


@pytest.mark.parametrize("native", [True, False], ids=["native-brackets", "native-brackets-off"])
async def test_alpaca_keeps_sl_tp_brackets_and_the_emulator_keeps_entries_with_trailing_stops(
    native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fakes.alpaca_fake import KEY_ID, SECRET
    from tradewire_common import subjects
    from tradewire_common.bus import MemoryBroker, MemoryBus
    from tradewire_common.config import config_from_dict
    from tradewire_execution.service import ExecutionService

    monkeypatch.setenv("TRADEWIRE_ALPACA_API_KEY", KEY_ID)
    monkeypatch.setenv("TRADEWIRE_ALPACA_API_SECRET", SECRET)
    with alpaca_fake() as fake:
        config = config_from_dict({"execution": {"venues": [{
            "name": "ALPACA", "adapter": "alpaca", "mode": "sandbox", "symbols": ["AAPL"], "url_override": fake.url,
            "websocket": False, "poll_interval_s": 0.1, "reconcile_interval_s": 0, "native_brackets": native}]}})
        broker = MemoryBroker()
        service = ExecutionService(config, MemoryBus("execution", broker))
        probe = MemoryBus("probe", broker)
        await service.start()
        try:
            sl_tp = limit_order("ALPACA", 1, stop_loss_pct=Decimal("0.02"), take_profit_pct=Decimal("0.04"))
            trailing = limit_order("ALPACA", 2, stop_loss_pct=Decimal("0.02"), trailing_stop_pct=Decimal("0.03"))
            for order in (sl_tp, trailing):
                await probe.publish(subjects.order_command("ALPACA"), order)
            assert await probe.wait_idle(10)
            classes = {b["client_order_id"]: b.get("order_class") for b in fake.orders_posted()}
            # with native brackets on, SL/TP stay at Alpaca; an entry with a trailing stop goes whole to the emulator
            assert classes == {"tw-opt-0001": "bracket" if native else None, "tw-opt-0002": None}
            tracked = msgspec.json.decode(service.exits["ALPACA"].export_state())["orders"]
            assert sorted(t["order"]["client_order_id"] for t in tracked) == (
                ["tw-opt-0002"] if native else ["tw-opt-0001", "tw-opt-0002"])
        finally:
            await service.stop()
