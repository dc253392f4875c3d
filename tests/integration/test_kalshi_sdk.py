"""The unmodified kalshi-python-sync 3.2.0 (its typed calls and strict pydantic models) against the fake Kalshi
in the SDK's wire revision: every call the adapter and the data client make parses, signed with RSA-PSS; and the
same calls against the current revision fail in the SDK's models, which is why Tradewire reads the JSON itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from tests.fakes.kalshi_fake import KalshiFake, kalshi_fake, new_key_pair

pytestmark = pytest.mark.timeout(60)

KEY_ID = "c0ffee00-sdk-key"
PRIVATE, PUBLIC = new_key_pair()
TICKER = "KXTWSDK-26DEC31-Y"


def sdk_client(fake: KalshiFake) -> Any:
    from kalshi_python_sync import Configuration, KalshiClient  # type: ignore[attr-defined]

    config = Configuration(host=fake.url)
    config.api_key_id = KEY_ID
    config.private_key_pem = PRIVATE
    return KalshiClient(config)


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> Iterator[KalshiFake]:
    with kalshi_fake(wire=getattr(request, "param", "sdk-3.2.0")) as venue:
        venue.register_key(KEY_ID, PUBLIC)
        venue.load_recorded_markets()
        venue.add_market(TICKER)
        yield venue


def test_every_call_tradewire_makes_parses_in_the_sdks_own_models(fake: KalshiFake) -> None:
    client = sdk_client(fake)
    assert client.get_exchange_status().trading_active is True
    page = client.get_markets(limit=2)
    assert len(page.markets) == 2 and page.cursor == "2"
    assert client.get_market("KXELONMARS-99").market.yes_ask_dollars == "0.1200"
    fake.counterparty(TICKER, "no", "buy", "0.60", "2")
    created = client.create_order(ticker=TICKER, side="yes", action="buy", count=5, yes_price_dollars="0.4500",
                                  client_order_id="tw-sdk-1", time_in_force="good_till_canceled").order
    assert (created.client_order_id, created.fill_count, created.remaining_count, str(created.status)) == (
        "tw-sdk-1", 2, 3, "OrderStatus.RESTING")
    assert client.get_order(created.order_id).order.yes_price == 45
    assert [o.client_order_id for o in client.get_orders(ticker=TICKER, status="resting").orders] == ["tw-sdk-1"]
    (fill,) = client.get_fills(order_id=created.order_id).fills
    assert (fill.count, fill.yes_price_fixed, fill.side, fill.action, fill.is_taker) == (2, "0.4000", "yes", "buy",
                                                                                         True)
    book = client.get_market_orderbook(TICKER).orderbook
    assert book.yes_dollars == [["0.4500", "3.00"]] and book.no_dollars == []
    assert client.decrease_order(created.order_id, reduce_by=1).order.remaining_count == 2
    assert client.cancel_order(created.order_id).reduced_by == 2
    (position,) = client.get_positions().market_positions
    assert (position.ticker, position.position) == (TICKER, 2)
    assert client.get_balance().balance == 100000 - 80 - 4  # 2 x 40c, and a taker fee of ceil(0.07*2*.4*.6) = 4c
    (trade,) = client.get_trades(ticker=TICKER).trades
    assert (trade.count, trade.yes_price, trade.taker_side) == (2, 40, "yes")
    candles = client.get_market_candlesticks("KXELONMARS", "KXELONMARS-99", start_ts=1781100000,
                                             end_ts=1781200000, period_interval=60).candlesticks
    assert [c.yes_bid.close for c in candles] == [8, 8]
    assert client.get_event("KXELONMARS-99").event.series_ticker == "KXELONMARS"
    fake.settle(TICKER, "yes")
    (settled,) = client.get_settlements().settlements
    assert (settled.market_result, settled.yes_count, settled.revenue) == ("yes", 2, 200)


def test_a_duplicate_client_order_id_is_kalshis_409_which_the_sdks_error_model_cannot_read(fake: KalshiFake) -> None:
    from kalshi_python_sync.exceptions import ConflictException

    client = sdk_client(fake)
    client.create_order(ticker=TICKER, side="no", action="buy", count=1, no_price_dollars="0.1000",
                        client_order_id="tw-sdk-2")
    with pytest.raises(ConflictException) as conflict:
        client.create_order(ticker=TICKER, side="no", action="buy", count=1, no_price_dollars="0.1000",
                            client_order_id="tw-sdk-2")
    assert '"code":"order_already_exists"' in (conflict.value.body or "").replace(" ", "")
    assert conflict.value.data.code is None  # ErrorResponse reads a flat {code, message}; Kalshi nests "error"


@pytest.mark.parametrize("fake", ["current"], indirect=True)
def test_the_current_wire_revision_breaks_the_sdks_typed_calls(fake: KalshiFake) -> None:
    client = sdk_client(fake)
    for call in (lambda: client.get_market("KXELONMARS-99"), lambda: client.get_market_orderbook(TICKER),
                 lambda: client.get_markets(limit=2)):
        with pytest.raises(ValidationError):
            call()
    assert client.get_exchange_status().exchange_active is True  # what has no integer twins still parses
