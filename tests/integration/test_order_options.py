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
