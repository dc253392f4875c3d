"""The live venue framework (tradewire_execution.live): the VenueAdapter contract for real venues, on a scripted
in-memory venue (no network): in-flight resolution, definitive-only rejections, one create per order, trade-id
dedup, closing events, rate limits and Retry-After, reconciliation, credentials and the live guard."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from tradewire_common.config import Config, ExecutionConfig, VenueConfig, config_from_dict
from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    CancelOrder,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderType,
    Side,
    SubmitOrder,
    TimeInForce,
)
from tradewire_execution.live import (
    Ambiguous,
    CollectingHost,
    Credentials,
    DuplicateClientOrderId,
    LiveTradingRefused,
    LiveVenueAdapter,
    OrderNotFoundAtVenue,
    RateLimited,
    Reconciler,
    TokenBucket,
    VenueFill,
    VenueOrder,
    VenueRefused,
    assert_loopback,
    load_credentials,
    parse_retry_after,
)
from tradewire_execution.live.reconcile import LedgerFill, LedgerOrder
from tradewire_execution.venue import CAP_DAY, CAP_GTC, CAP_IOC, CAP_LIMIT, CAP_MARKET
from tradewire_execution.venues import build_adapter

BTC = "BTCUSDT.BINANCE"
S = 1_000_000_000


class Clock:
    """Wall and monotonic time that only moves when told; ``sleep`` records and advances."""

    def __init__(self) -> None:
        self.t = 1_700_000_000.0
        self.sleeps: list[float] = []

    def wall_ns(self) -> int:
        return int(self.t * S)

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


class ScriptedVenue(LiveVenueAdapter):
    """A venue in memory; ``place_script`` says what each create does: "ok", "timeout" (placed, answer lost),
    "lost" (not placed, answer lost), "refuse", "duplicate", "429"."""

    def __init__(self, clock: Clock, **kwargs: object) -> None:
        super().__init__("BINANCE", capabilities={CAP_MARKET, CAP_LIMIT, CAP_GTC, CAP_IOC, CAP_DAY},
                         limiter=TokenBucket(0, clock=clock.monotonic, sleep=clock.sleep), in_flight_grace_s=10,
                         wall_ns=clock.wall_ns, **kwargs)  # type: ignore[arg-type]
        self.clock = clock
        self.place_script: list[str] = []
        self.creates: list[str] = []
        self.orders: dict[str, VenueOrder] = {}
        self.fills: dict[str, list[VenueFill]] = {}
        self.balances: dict[str, Decimal] = {}
        self.queries = 0

    async def venue_place(self, order: SubmitOrder) -> VenueOrder:
        step = self.place_script.pop(0) if self.place_script else "ok"
        self.creates.append(order.client_order_id)
        if step == "refuse":
            raise VenueRefused("Account has insufficient balance for requested action.")
        if step == "duplicate":
            raise DuplicateClientOrderId("Duplicate order sent.")
        if step == "429":
            raise RateLimited("429 Too Many Requests", retry_after_s=3.0)
        if step == "lost":
            raise Ambiguous("timeout")
        answer = VenueOrder(client_order_id=order.client_order_id, venue_order_id=f"v{len(self.creates)}",
                            status="open", ts_ns=self.clock.wall_ns())
        self.orders[order.client_order_id] = answer
        if step == "timeout":
            raise Ambiguous("RequestTimeout after the order reached the venue")
        return answer

    async def venue_cancel(self, order: SubmitOrder, venue_order_id: str) -> VenueOrder:
        current = self.orders.get(order.client_order_id)
        if current is None or current.status != "open":
            raise OrderNotFoundAtVenue("Unknown order sent.")
        self.orders[order.client_order_id] = VenueOrder(
            client_order_id=current.client_order_id, venue_order_id=current.venue_order_id, status="canceled",
            filled_qty=current.filled_qty)
        return self.orders[order.client_order_id]

    async def venue_order(self, order: SubmitOrder) -> VenueOrder:
        self.queries += 1
        if order.client_order_id not in self.orders:
            raise OrderNotFoundAtVenue("Order does not exist.")
        return self.orders[order.client_order_id]

    async def venue_open_orders(self) -> list[VenueOrder]:
        return [o for o in self.orders.values() if o.status == "open"]

    async def venue_order_fills(self, order: SubmitOrder, venue_order_id: str) -> list[VenueFill]:
        return list(self.fills.get(order.client_order_id, []))

    async def venue_fills(self, since_ns: int) -> list[VenueFill]:
        return [f for fills in self.fills.values() for f in fills if f.ts_ns >= since_ns]

    async def venue_balances(self) -> dict[str, Decimal]:
        return dict(self.balances)

    def position_keys(self) -> dict[str, str]:
        return {BTC: "BTC"}

    # the venue's own doings
    def trade(self, coid: str, qty: str, price: str, trade_id: str, status: str = "") -> VenueFill:
        current = self.orders[coid]
        fill = VenueFill(trade_id=trade_id, venue_order_id=current.venue_order_id, client_order_id=coid,
                         side=Side.BUY, quantity=Decimal(qty), price=Decimal(price), fee=Decimal("0.01"),
                         fee_currency="USDT", ts_ns=self.clock.wall_ns())
        self.fills.setdefault(coid, []).append(fill)
        filled = current.filled_qty + Decimal(qty)
        self.orders[coid] = VenueOrder(client_order_id=coid, venue_order_id=current.venue_order_id,
                                       status=status or "open", filled_qty=filled)  # type: ignore[arg-type]
        return fill


def order(coid: str = "tw-order-1", qty: str = "2", kind: OrderType = OrderType.LIMIT,
          tif: TimeInForce = TimeInForce.GTC, reduce_only: bool = False) -> SubmitOrder:
    return SubmitOrder(id=derive_id("cmd", coid), ts_event=1, ts_init=2, correlation_id="corr", strategy_id="sma",
                       instrument_id=BTC, client_order_id=coid, side=Side.BUY, order_type=kind,
                       quantity=Decimal(qty), limit_price=Decimal("100") if kind is OrderType.LIMIT else None,
                       time_in_force=tif, reduce_only=reduce_only)


def kinds(events: list[OrderEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def venue(clock: Clock) -> ScriptedVenue:
    return ScriptedVenue(clock)


async def test_an_accepted_order_is_accepted_once_with_the_venue_order_id(venue: ScriptedVenue) -> None:
    events = await venue.submit(order(), 0)
    assert kinds(events) == ["OrderAccepted"]
    assert isinstance(events[0], OrderAccepted) and events[0].venue_order_id == "v1"
    assert events[0].id == derive_id("OrderAccepted", "tw-order-1")
    assert venue.open_orders() == ["tw-order-1"]


async def test_a_timeout_after_sending_leaves_the_order_in_flight_and_the_query_finds_it_accepted(
    venue: ScriptedVenue,
) -> None:
    venue.place_script = ["timeout"]
    events = await venue.submit(order(), 0)
    assert kinds(events) == ["OrderAccepted"]  # resolved at once by asking for the client order id
    assert venue.creates == ["tw-order-1"] and venue.queries == 1


async def test_an_unanswered_create_is_never_sent_twice_and_redeliveries_return_nothing(venue: ScriptedVenue) -> None:
    venue.place_script = ["lost"]  # not at the venue, answer lost
    assert await venue.submit(order(), 0) == []  # in flight: only OrderSubmitted is published
    assert await venue.submit(order(), 0) == []  # a redelivered command
    await venue.resolve_in_flight()
    assert venue.creates == ["tw-order-1"]
    assert venue.tracked("tw-order-1") is not None and venue.tracked("tw-order-1").status == "in_flight"  # type: ignore[union-attr]


async def test_not_found_becomes_a_rejection_only_once_the_venue_could_no_longer_accept_the_create(
    venue: ScriptedVenue, clock: Clock,
) -> None:
    host = CollectingHost()
    venue.attach(host)
    venue.place_script = ["lost"]
    assert await venue.submit(order(), 0) == []
    clock.t += 9  # within the grace: "no such order" may be the venue still processing it
    await venue.resolve_in_flight()
    assert host.events == []
    clock.t += 2  # beyond it: the venue's answer is definitive
    await venue.resolve_in_flight()
    assert kinds(host.events) == ["OrderRejected"]
    assert isinstance(host.events[0], OrderRejected) and "no order tw-order-1" in host.events[0].reason
    assert venue.creates == ["tw-order-1"] and venue.open_orders() == []


async def test_an_order_found_late_is_accepted_with_the_fills_it_got_meanwhile(
    venue: ScriptedVenue, clock: Clock,
) -> None:
    host = CollectingHost()
    venue.attach(host)
    venue.place_script = ["lost"]
    await venue.submit(order(), 0)
    # the create reached the venue after all (slow path): the resolver finds it, filled
    venue.orders["tw-order-1"] = VenueOrder(client_order_id="tw-order-1", venue_order_id="late", status="open")
    venue.trade("tw-order-1", "2", "100", "t1", status="filled")
    clock.t += 30
    await venue.resolve_in_flight()
    assert kinds(host.events) == ["OrderAccepted", "OrderFilled"]
    fill = host.events[1]
    assert isinstance(fill, OrderFilled) and not fill.partial and fill.leaves_qty == 0 and fill.trade_id == "t1"
    assert venue.creates == ["tw-order-1"]


async def test_a_definitive_refusal_is_a_rejection_with_the_venue_reason(venue: ScriptedVenue) -> None:
    venue.place_script = ["refuse"]
    events = await venue.submit(order(), 0)
    assert kinds(events) == ["OrderRejected"]
    assert "insufficient balance" in events[0].reason  # type: ignore[attr-defined]
    assert await venue.submit(order(), 0) == []  # remembered: a redelivery is not sent again
    assert venue.creates == ["tw-order-1"]


async def test_a_duplicate_client_order_id_is_already_placed_not_rejected(venue: ScriptedVenue) -> None:
    venue.orders["tw-order-1"] = VenueOrder(client_order_id="tw-order-1", venue_order_id="v0", status="open")
    venue.place_script = ["duplicate"]
    events = await venue.submit(order(), 0)
    assert kinds(events) == ["OrderAccepted"] and events[0].venue_order_id == "v0"  # type: ignore[attr-defined]


async def test_a_rate_limited_create_waits_its_retry_after_then_is_sent_again(
    venue: ScriptedVenue, clock: Clock,
) -> None:
    venue.place_script = ["429", "ok"]
    events = await venue.submit(order(), 0)
    assert kinds(events) == ["OrderAccepted"]
    assert venue.creates == ["tw-order-1", "tw-order-1"]  # the first was definitely not processed
    assert clock.sleeps == [3.0]


async def test_fills_are_deduplicated_by_trade_id_across_stream_polling_and_queries(venue: ScriptedVenue) -> None:
    host = CollectingHost()
    venue.attach(host)
    await venue.submit(order(qty="2"), 0)
    f1 = venue.trade("tw-order-1", "0.5", "100", "t1")
    await venue.ingest([], [f1])  # from the stream
    await venue.ingest([venue.orders["tw-order-1"]], [f1])  # again, with the order update
    await venue.poll_once()  # and polling sees nothing new
    f2 = venue.trade("tw-order-1", "1.5", "99", "t2", status="filled")
    await venue.poll_once()  # the order is filled: its missing fill is fetched
    await venue.ingest([], [f2])  # the stream's late copy
    fills = [e for e in host.events if isinstance(e, OrderFilled)]
    assert [(f.trade_id, f.last_qty, f.partial, f.leaves_qty) for f in fills] == [
        ("t1", Decimal("0.5"), True, Decimal("1.5")), ("t2", Decimal("1.5"), False, Decimal(0))]
    assert fills[0].id == derive_id("OrderFilled", "BINANCE", "tw-order-1", "t1")
    assert venue.open_orders() == []


async def test_cancel_reports_the_filled_quantity_and_an_unknown_cancel_is_nothing(venue: ScriptedVenue) -> None:
    await venue.submit(order(), 0)
    venue.trade("tw-order-1", "0.5", "100", "t1")
    cancel = CancelOrder(id=derive_id("c"), ts_event=5, ts_init=5, strategy_id="sma", instrument_id=BTC,
                         client_order_id="tw-order-1", reason="signal gone")
    events = await venue.cancel(cancel, 0)
    assert kinds(events) == ["OrderFilled", "OrderCanceled"]
    closed = events[1]
    assert isinstance(closed, OrderCanceled) and closed.filled_qty == Decimal("0.5") and closed.reason == "signal gone"
    assert await venue.cancel(cancel, 0) == []


async def test_a_cancel_of_an_order_that_filled_meanwhile_reports_the_fill_not_a_cancel(venue: ScriptedVenue) -> None:
    await venue.submit(order(), 0)
    venue.trade("tw-order-1", "2", "100", "t1", status="filled")
    cancel = CancelOrder(id=derive_id("c"), ts_event=5, ts_init=5, strategy_id="sma", instrument_id=BTC,
                         client_order_id="tw-order-1")
    assert kinds(await venue.cancel(cancel, 0)) == ["OrderFilled"]


@pytest.mark.parametrize(("tif", "closing"), [(TimeInForce.IOC, OrderCanceled), (TimeInForce.DAY, OrderExpired)])
async def test_an_expired_remainder_is_a_cancel_for_ioc_and_an_expiry_for_day(
    venue: ScriptedVenue, tif: TimeInForce, closing: type,
) -> None:
    host = CollectingHost()
    venue.attach(host)
    await venue.submit(order(tif=tif), 0)
    venue.trade("tw-order-1", "1", "100", "t1", status="expired")
    await venue.poll_once()
    assert kinds(host.events) == ["OrderFilled", closing.__name__]
    assert host.events[1].filled_qty == Decimal(1)  # type: ignore[attr-defined]


async def test_orders_the_venue_cannot_take_are_rejected_before_anything_is_sent(venue: ScriptedVenue) -> None:
    stop = SubmitOrder(id=derive_id("s"), ts_event=1, ts_init=1, strategy_id="sma", instrument_id=BTC,
                       client_order_id="tw-stop", side=Side.SELL, order_type=OrderType.STOP_MARKET,
                       quantity=Decimal(1), trigger_price=Decimal(90))
    fok = order("tw-fok", tif=TimeInForce.FOK)
    assert "does not support STOP_MARKET" in (await venue.submit(stop, 0))[0].reason  # type: ignore[attr-defined]
    assert "time in force FOK" in (await venue.submit(fok, 0))[0].reason  # type: ignore[attr-defined]
    assert venue.creates == []


async def test_reduce_only_orders_go_to_a_spot_venue_as_plain_orders(venue: ScriptedVenue) -> None:
    assert kinds(await venue.submit(order(kind=OrderType.MARKET, reduce_only=True), 0)) == ["OrderAccepted"]


async def test_the_reducing_latch_lets_only_reduce_only_orders_through(venue: ScriptedVenue) -> None:
    venue.set_reducing("reconciliation mismatch")
    assert "REDUCING" in (await venue.submit(order("tw-a"), 0))[0].reason  # type: ignore[attr-defined]
    assert kinds(await venue.submit(order("tw-b", kind=OrderType.MARKET, reduce_only=True), 0)) == ["OrderAccepted"]
    venue.clear_reducing()
    assert kinds(await venue.submit(order("tw-c"), 0)) == ["OrderAccepted"]


async def test_a_journaled_order_survives_a_restart_and_is_resolved_by_query_not_sent_again(clock: Clock) -> None:
    first = ScriptedVenue(clock)
    host = CollectingHost()
    first.attach(host)
    first.place_script = ["timeout"]
    saved: list[bytes] = []

    async def save(_venue: str) -> None:  # the service saves the state before the create leaves
        saved.append(first.export_state())

    host.adapter_state_changed = save  # type: ignore[method-assign,assignment]
    first.venue_order = _unreachable  # type: ignore[method-assign,assignment]  # the query fails too: still in flight
    assert await first.submit(order(), 0) == []
    second = ScriptedVenue(clock)
    second.orders = first.orders  # the same venue
    second.restore_state(saved[0])  # the state saved before sending: "pending"
    second.attach(host)
    await second.resolve_in_flight()
    assert kinds(host.events) == ["OrderAccepted"]
    assert first.creates == ["tw-order-1"] and second.creates == []
    assert await second.submit(order(), 0) == []


async def _unreachable(_order: SubmitOrder) -> VenueOrder:
    raise ConnectionError("venue unreachable")


# --- rate limits ---------------------------------------------------------------------------------------


async def test_the_token_bucket_spaces_requests_at_its_rate(clock: Clock) -> None:
    bucket = TokenBucket(10, burst=2, clock=clock.monotonic, sleep=clock.sleep)
    for _ in range(4):
        await bucket.acquire()
    assert clock.sleeps == pytest.approx([0.1, 0.1])  # two banked, then one every 1/10 s


async def test_retry_after_blocks_every_request_until_it_has_passed(clock: Clock) -> None:
    bucket = TokenBucket(0, clock=clock.monotonic, sleep=clock.sleep)
    assert bucket.penalize(parse_retry_after("2")) == 2.0
    await bucket.acquire()
    await bucket.acquire()
    assert clock.sleeps == [2.0]
    assert bucket.penalties == 1


def test_retry_after_values_are_parsed_and_capped() -> None:
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None and parse_retry_after("-1") is None
    assert parse_retry_after("86400") == 300.0


async def test_queries_rate_limited_by_the_venue_wait_and_ask_again(venue: ScriptedVenue, clock: Clock) -> None:
    calls = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RateLimited("429", retry_after_s=1.0)
        return "ok"

    assert await venue._call(flaky) == "ok"
    assert clock.sleeps == [1.0]


# --- reconciliation -------------------------------------------------------------------------------------


class MemoryLedger:
    def __init__(self) -> None:
        self.order_rows: list[LedgerOrder] = []
        self.fill_rows: list[LedgerFill] = []
        self.position_rows: dict[str, Decimal] = {}

    async def orders(self) -> list[LedgerOrder]:
        return self.order_rows

    async def fills(self) -> list[LedgerFill]:
        return self.fill_rows

    async def positions(self) -> dict[str, Decimal]:
        return self.position_rows


class RecordingEscalation:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def reducing(self, venue: str, reason: str) -> str:
        self.calls.append((venue, reason))
        return "risk set venue:BINANCE REDUCING"


async def test_reconciliation_applies_a_fill_the_ledger_missed_and_finds_positions_equal(
    venue: ScriptedVenue,
) -> None:
    host = CollectingHost()
    venue.attach(host)
    ledger, escalation = MemoryLedger(), RecordingEscalation()
    reconciler = Reconciler(venue, ledger=ledger, escalation=escalation, position_keys=venue.position_keys(),
                            confirm_delay_s=0)
    await venue.submit(order(), 0)
    venue.trade("tw-order-1", "2", "100", "t1", status="filled")  # while execution was away
    venue.balances = {"BTC": Decimal(2)}
    report = await reconciler.run()
    assert report.applied_fills == ["t1"] and report.mismatches == []
    assert kinds(host.events) == ["OrderFilled"]
    assert escalation.calls == [] and venue.reducing_reason == ""


async def test_reconciliation_adopts_an_order_the_ledger_knows_and_flags_a_stranger(venue: ScriptedVenue) -> None:
    host = CollectingHost()
    venue.attach(host)
    ledger = MemoryLedger()
    ledger.order_rows = [LedgerOrder(client_order_id="tw-lost", strategy_id="sma", instrument_id=BTC, side="BUY",
                                     order_type="LIMIT", quantity=Decimal(1), limit_price=Decimal(100),
                                     venue="BINANCE")]
    venue.orders["tw-lost"] = VenueOrder(client_order_id="tw-lost", venue_order_id="v9", status="open")
    venue.orders["manual-1"] = VenueOrder(client_order_id="manual-1", venue_order_id="v10", status="open",
                                          symbol="BTCUSDT", side=Side.SELL, quantity=Decimal(3))
    report = await Reconciler(venue, ledger=ledger, position_keys={}, confirm_delay_s=0).run()
    assert report.adopted == ["tw-lost"] and venue.open_orders() == ["tw-lost"]
    assert report.flagged and report.flagged[0].startswith("manual-1")
    assert host.alerts[0][0] == "warning" and "manual-1" in host.alerts[0][2]


async def test_an_unexplained_position_mismatch_latches_reducing_alerts_and_asks_risk_once(
    venue: ScriptedVenue,
) -> None:
    host = CollectingHost()
    venue.attach(host)
    ledger, escalation = MemoryLedger(), RecordingEscalation()
    ledger.position_rows = {BTC: Decimal(1)}
    venue.balances = {"BTC": Decimal("1.5")}
    reconciler = Reconciler(venue, ledger=ledger, escalation=escalation, position_keys=venue.position_keys(),
                            confirm_delay_s=0)
    report = await reconciler.run()
    assert report.mismatches == ["BTC: the venue holds 1.5, the ledger 1"]
    assert "mismatch" in venue.reducing_reason
    assert escalation.calls == [("BINANCE", venue.reducing_reason)]
    assert host.alerts[-1][0] == "critical" and "REDUCING" in host.alerts[-1][1]
    assert "REDUCING" in (await venue.submit(order(), 0))[0].reason  # type: ignore[attr-defined]
    await reconciler.run()
    assert len(escalation.calls) == 1  # the same mismatch is not escalated again every round


async def test_a_fill_of_an_order_nobody_knows_is_a_mismatch(venue: ScriptedVenue) -> None:
    venue.attach(CollectingHost())
    venue.fills["ghost"] = [VenueFill(trade_id="x1", venue_order_id="v77", client_order_id="ghost", side=Side.BUY,
                                      quantity=Decimal(1), price=Decimal(100), ts_ns=venue.wall_ns())]
    report = await Reconciler(venue, ledger=MemoryLedger(), position_keys={}, confirm_delay_s=0).run()
    assert report.mismatches and "x1" in report.mismatches[0] and venue.reducing_reason


# --- credentials and the live guard ---------------------------------------------------------------------


def test_credentials_come_from_the_environment_or_files_and_never_show(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object,
) -> None:
    from pathlib import Path

    secret_file = Path(str(tmp_path)) / "secret"
    secret_file.write_text("s3cr3t-value\n")
    monkeypatch.setenv("TW_TEST_API_KEY", "key-123456")
    monkeypatch.setenv("TW_TEST_API_SECRET_FILE", str(secret_file))
    creds = load_credentials("TW_TEST")
    assert creds.api_key == "key-123456" and creds.secret == "s3cr3t-value" and creds.present
    text = f"{creds!r} {creds} {creds.as_ccxt().keys()}"
    assert "key-123456" not in text and "s3cr3t" not in text
    scrubbed = creds.scrub("GET http://x/api/v3/order?symbol=B&signature=abcd1234 with key-123456 / s3cr3t-value")
    assert "abcd1234" not in scrubbed and "key-123456" not in scrubbed and "s3cr3t" not in scrubbed
    assert not Credentials().present


def _live_config(**venue: object) -> Config:
    return config_from_dict({"execution": {"venues": [
        {"name": "BINANCE", "adapter": "ccxt", "mode": "live", "symbols": ["BTC/USDT"], **venue}]}})


def test_a_live_venue_is_refused_without_the_live_flag_and_under_tests_even_with_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _live_config()
    monkeypatch.delenv("TRADEWIRE_LIVE", raising=False)
    with pytest.raises(LiveTradingRefused, match="refused under tests"):
        build_adapter(config.execution.venues[0], config)
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    import tradewire_execution.live.guard as guard

    monkeypatch.setattr(guard, "under_test", lambda: False)  # as outside pytest, still without --live
    with pytest.raises(LiveTradingRefused, match="tradewire up --live"):
        build_adapter(config.execution.venues[0], config)


def test_paper_mode_simulates_the_venue_whatever_the_adapter() -> None:
    from tradewire_execution.paper import PaperVenue

    config = Config(execution=ExecutionConfig(venues=(VenueConfig(name="BINANCE", adapter="ccxt"),)))
    assert isinstance(build_adapter(config.execution.venues[0], config), PaperVenue)


def test_tests_may_only_call_loopback_urls() -> None:
    assert_loopback(["http://127.0.0.1:9/api", "ws://localhost:1/ws", "http://[::1]:2/"], "fake")
    with pytest.raises(LiveTradingRefused, match=r"only call 127\.0\.0\.1"):
        assert_loopback(["http://127.0.0.1:9/api", "https://api.binance.com/api/v3"], "binance")


async def test_the_stream_feeds_updates_and_polling_takes_over_when_it_fails(venue: ScriptedVenue) -> None:
    host = CollectingHost()
    venue.attach(host)
    await venue.submit(order(), 0)
    f1 = venue.trade("tw-order-1", "1", "100", "t1")
    delivered = asyncio.Event()

    async def stream() -> AsyncIterator[tuple[list[VenueOrder], list[VenueFill]]]:
        yield [venue.orders["tw-order-1"]], [f1]
        delivered.set()
        raise ConnectionError("websocket closed")

    venue.venue_stream = stream  # type: ignore[method-assign]
    venue.poll_interval_s = 0.01
    task = asyncio.create_task(venue._stream_forever())
    await asyncio.wait_for(delivered.wait(), 5)
    venue.trade("tw-order-1", "1", "101", "t2", status="filled")  # happens while the stream is down
    async with asyncio.timeout(5):
        while venue.open_orders():
            await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert [e.trade_id for e in host.events if isinstance(e, OrderFilled)] == ["t1", "t2"]
