"""Alpaca (US stocks) through the official ``alpaca-py`` SDK, on the live venue framework.

The framework (:mod:`tradewire_execution.live.base`) keeps the contract (idempotency by client order id,
journal before sending, in-flight resolution, fill de-duplication, closing events); this module only speaks
Alpaca. Endpoints: the **paper** API unless the venue's ``mode`` is ``live`` (which also needs ``--live``);
``url_override`` replaces every base URL (REST ``/v2``, the trading stream ``/stream``, market data), which is
how tests reach the fake on 127.0.0.1. Credentials: ``{prefix}_API_KEY`` (Alpaca's key id) and
``{prefix}_API_SECRET`` (its secret key), sent only as the ``APCA-API-*`` headers, never logged.

**Orders** (``TradingClient``). ``SubmitOrder.client_order_id`` is Alpaca's ``client_order_id`` (Alpaca
refuses a second order with the same one, ``422 {"code": 40010001}``: the framework then resolves it by
query, never places it twice). Types: ``MARKET`` -> ``market``, ``LIMIT`` -> ``limit``, ``STOP_MARKET`` ->
``stop``, ``STOP_LIMIT`` -> ``stop_limit``; time in force ``GTC``/``DAY``/``IOC``/``FOK`` as they are (no
GTD at Alpaca: a ``GTD`` limit order is refused before anything is sent, as is a post-only one, which Alpaca
does not have). **Replace** (``ReplaceOrder``, ``CAP_AMEND``): Alpaca's native ``PATCH /v2/orders/{id}``
(``replace_order_by_id``) with the new client order id, quantity (whole shares) and prices; Alpaca makes a new
order that carries the old one's filled quantity and marks the old one ``replaced``. Quantities and prices
are sent as the SDK's JSON numbers (``float(Decimal)``, whose shortest text is the decimal's own for prices and
share counts).

**Exits, natively** (``CAP_BRACKET``):

* an entry with ``stop_loss_pct`` and ``take_profit_pct`` is one Alpaca ``bracket`` order (with only one of
  them: ``oto``). Alpaca needs absolute prices when the entry is placed, so the levels are fractions of the
  entry's reference price: its limit price (``LIMIT``, ``STOP_LIMIT``), its trigger (``STOP_MARKET``), or the
  latest trade (``MARKET``, from the market-data API), rounded to the venue's tick (a cent from $1, else
  $0.0001) and kept at least one tick beyond the reference, as Alpaca requires. The exits therefore sit
  relative to that price rather than to the average fill (they differ by the entry's slippage);
* a **reduce-only** order with both ``stop_loss_pct`` and ``take_profit_pct`` is an Alpaca ``oco`` order: exits
  for the position it reduces (a take-profit limit and a stop, one cancelling the other), levels from the
  order's limit price or, for ``MARKET``, the latest trade; a reduce-only order with only ``trailing_stop_pct``
  is an Alpaca ``trailing_stop`` order (``trail_percent``) protecting that position;
* the legs Alpaca creates (their client order ids are Alpaca's) are followed as Tradewire's exit orders
  ``tw-tp-``/``tw-sl-`` + ``derive_id("exit", parent, kind)[:24]``, with the parent's strategy and instrument:
  their fills and cancellations are published like the paper venue's exits;
* an entry with a trailing or a time stop is refused before anything is sent: Alpaca cannot attach either to
  an entry (no trailing leg in a bracket, no time stop at all). Through execution it never gets one: the
  adapter lacks ``CAP_BRACKET_TRAILING``/``CAP_BRACKET_TIME``, so execution's exit emulator keeps such an entry's
  whole bracket (and every bracket with ``native_brackets = false`` on the venue).

**Updates**: the ``trade_updates`` stream (``TradingStream``, JSON in binary frames) while it is up, REST
polling while it is down (the SDK reconnects on its own; a lost connection is reported to the framework,
which polls what was missed). Every fill is identified by its order and the order's cumulative quantity after
it (``<alpaca order id>:<cum qty>``): the stream (``order.filled_qty`` of the update) and the FILL account
activities (``cum_qty``) name the same execution the same way, so a fill seen on both paths, or twice on the
stream after a reconnect, is published once. (The stream's ``execution_id`` is logged; the activities' own
ids are not known to match it, so neither is used as the trade id.)

**The SDK's own behaviour, changed**: its REST client retries 429 and 504 answers by itself (sleeping a fixed
3 s, ignoring ``Retry-After``, and sending a create again after a 504): those retries are switched off
(``_retry_codes``), so a 429 reaches the framework's rate limiter with its ``Retry-After`` and a 504 on a create
leaves the order in flight (resolved by query). Its ``requests`` session has no timeout: every request gets
``request_timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, TypeVar

import msgspec
import requests

from tradewire_common.ids import derive_id, split_instrument_id
from tradewire_common.schemas import OrderType, Side, SubmitOrder, TimeInForce
from tradewire_execution.live.base import (
    ZERO,
    Ambiguous,
    DuplicateClientOrderId,
    LiveVenueAdapter,
    NotSent,
    OrderNotFoundAtVenue,
    OrderStatus,
    RateLimited,
    VenueFill,
    VenueOrder,
    VenueRefused,
)
from tradewire_execution.live.credentials import Credentials
from tradewire_execution.live.guard import assert_loopback
from tradewire_execution.live.ratelimit import TokenBucket, parse_retry_after
from tradewire_execution.live.wire import cumulative_trade_id, iso_ns, venue_decimal
from tradewire_execution.venue import (
    CAP_AMEND,
    CAP_BRACKET,
    CAP_DAY,
    CAP_FOK,
    CAP_GTC,
    CAP_IOC,
    CAP_LIMIT,
    CAP_MARKET,
    CAP_PARTIAL_FILLS,
    CAP_STOP,
    CAP_STOP_LIMIT,
)

log = logging.getLogger(__name__)

CAPABILITIES = frozenset({CAP_MARKET, CAP_LIMIT, CAP_STOP, CAP_STOP_LIMIT, CAP_PARTIAL_FILLS, CAP_GTC, CAP_DAY,
                          CAP_IOC, CAP_FOK, CAP_BRACKET, CAP_AMEND})
#: Alpaca's published limit: 200 requests a minute per account.
DEFAULT_RATE_PER_S = 200 / 60
PAPER_URL = "https://paper-api.alpaca.markets"
LIVE_URL = "https://api.alpaca.markets"
DATA_URL = "https://data.alpaca.markets"
STATUS: dict[str, OrderStatus] = {"filled": "filled", "canceled": "canceled", "expired": "expired",
                                  "rejected": "rejected", "replaced": "canceled"}
T = TypeVar("T")


def tick(price: Decimal) -> Decimal:
    """Alpaca's price increment: $0.01 from $1 up, $0.0001 below."""
    return Decimal("0.01") if price >= 1 else Decimal("0.0001")


def exit_levels(side: Side, reference: Decimal, stop_loss_pct: Decimal | None,
                take_profit_pct: Decimal | None) -> tuple[Decimal | None, Decimal | None]:
    """``(take profit limit, stop loss stop)`` of a position opened by ``side`` at ``reference``: on the venue's
    tick, and at least one tick beyond the reference (Alpaca refuses an exit at the entry price)."""
    step = tick(reference)
    sign = 1 if side is Side.BUY else -1
    tp = sl = None
    if take_profit_pct is not None:
        tp = (reference * (1 + sign * take_profit_pct)).quantize(step, ROUND_HALF_EVEN)
        tp = max(tp, reference + step) if sign > 0 else min(tp, reference - step)
    if stop_loss_pct is not None:
        sl = (reference * (1 - sign * stop_loss_pct)).quantize(step, ROUND_HALF_EVEN)
        sl = min(sl, reference - step) if sign > 0 else max(sl, reference + step)
    return tp, sl


def exit_coid(parent: str, kind: str) -> str:
    """The client order id Tradewire gives a bracket leg Alpaca created (``tw-tp-``/``tw-sl-``...)."""
    return f"tw-{kind}-" + derive_id("exit", parent, kind)[:24]





class _TimeoutSession(requests.Session):
    """A ``requests`` session with a default timeout (the SDK passes none)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.timeout_s = timeout_s

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout_s)
        return super().request(*args, **kwargs)


class AlpacaAdapter(LiveVenueAdapter):
    """Alpaca's trading API (see the module docstring)."""

    spot = True  # no reduce-only flag at Alpaca: a reduce-only SELL is a plain SELL of what is held

    def __init__(
        self, name: str, *, credentials: Credentials, symbols: Iterable[str] = (), live: bool = False,
        url_override: str = "", limiter: TokenBucket | None = None, in_flight_grace_s: float = 15.0,
        poll_interval_s: float = 2.0, websocket: bool = True, request_timeout_s: float = 10.0,
        data_feed: str = "iex", wall_ns: Callable[[], int] | None = None,
    ) -> None:
        extra: dict[str, Any] = {"wall_ns": wall_ns} if wall_ns is not None else {}
        super().__init__(name, capabilities=CAPABILITIES, limiter=limiter or TokenBucket(DEFAULT_RATE_PER_S),
                         credentials=credentials, in_flight_grace_s=in_flight_grace_s,
                         poll_interval_s=poll_interval_s, websocket=websocket, **extra)
        base = url_override.rstrip("/")
        self.trading_url = base or (LIVE_URL if live else PAPER_URL)
        self.data_url = base or DATA_URL
        host = self.trading_url.split("://", 1)[1]
        ws_scheme = "ws" if self.trading_url.startswith("http://") else "wss"
        self.stream_url = f"{ws_scheme}://{host}/stream"
        self.live = live
        self.symbols = frozenset(symbols)
        self.request_timeout_s = request_timeout_s
        self.data_feed = data_feed
        self._trading: Any = None
        self._data: Any = None
        #: Alpaca order id of a leg -> Tradewire's client order id for it (and back)
        self._leg_coid: dict[str, str] = {}

    # --- clients ------------------------------------------------------------------------------------------

    def _urls(self) -> list[str]:
        return [self.trading_url, self.data_url, self.stream_url]

    def _client(self) -> Any:
        if self._trading is None:
            from alpaca.trading.client import TradingClient

            assert_loopback(self._urls(), f"venue {self.name}")
            client = TradingClient(self.credentials.api_key, self.credentials.secret, paper=not self.live,
                                   url_override=self.trading_url)
            client._retry_codes = []  # no blind retry of a create after a 504, no fixed sleep on a 429
            client._session = _TimeoutSession(self.request_timeout_s)
            self._trading = client
        return self._trading

    def _data_client(self) -> Any:
        if self._data is None:
            from alpaca.data.historical.stock import StockHistoricalDataClient

            assert_loopback(self._urls(), f"venue {self.name}")
            client = StockHistoricalDataClient(self.credentials.api_key, self.credentials.secret,
                                               url_override=self.data_url)
            client._retry_codes = []
            client._session = _TimeoutSession(self.request_timeout_s)
            self._data = client
        return self._data

    async def _run(self, fn: Callable[[], T]) -> T:
        """Run one SDK call in a worker thread; map its failures onto the framework's exceptions."""
        from alpaca.common.exceptions import APIError

        assert_loopback(self._urls(), f"venue {self.name}")
        try:
            return await asyncio.to_thread(fn)
        except APIError as exc:
            raise self._api_error(exc) from None
        except requests.exceptions.ConnectTimeout as exc:
            raise NotSent(f"connect timeout: {self.scrub(str(exc))}") from None
        except requests.exceptions.ConnectionError as exc:
            text = self.scrub(str(exc))
            if "NewConnectionError" in text or "Connection refused" in text:
                raise NotSent(f"connection refused: {text}") from None
            raise Ambiguous(f"connection lost: {text}") from None
        except requests.exceptions.Timeout as exc:
            raise Ambiguous(f"no answer within {self.request_timeout_s}s: {self.scrub(str(exc))}") from None

    def _api_error(self, exc: Any) -> Exception:
        status = exc.status_code
        try:
            code, message = exc.code, exc.message
        except (ValueError, KeyError, TypeError):  # not Alpaca's JSON (a proxy's page)
            code, message = None, str(exc)
        text = self.scrub(f"Alpaca {status}: {message}" + (f" (code {code})" if code else ""))
        if status == 429:
            response = exc.response
            retry_after = parse_retry_after(response.headers.get("Retry-After") if response is not None else None)
            return RateLimited(text, retry_after)
        if status is None or status >= 500:
            return Ambiguous(text)
        if status == 404:
            return OrderNotFoundAtVenue(text)
        if code == 40010001 or "client_order_id must be unique" in str(message):
            return DuplicateClientOrderId(text)
        return VenueRefused(text)

    def position_keys(self) -> dict[str, str]:
        """Reconciliation compares each configured symbol's position (signed shares) with the ledger's."""
        return {f"{symbol}.{self.name}": symbol for symbol in sorted(self.symbols)}

    async def connect(self) -> None:
        self._client()
        for tracked in self.tracked_orders():  # legs followed before a restart
            coid = tracked.order.client_order_id
            if tracked.venue_order_id and coid[:6] in ("tw-tp-", "tw-sl-"):
                self._leg_coid[tracked.venue_order_id] = coid

    async def disconnect(self) -> None:
        for client in (self._trading, self._data):
            if client is not None:
                client._session.close()

    # --- orders -------------------------------------------------------------------------------------------

    def refusal(self, order: SubmitOrder) -> str:
        reason = super().refusal(order)
        if reason:
            return reason
        symbol, _venue = split_instrument_id(order.instrument_id)
        if self.symbols and symbol not in self.symbols:
            return f"venue {self.name}: {symbol} is not among the configured symbols"
        exits = (order.stop_loss_pct, order.take_profit_pct)
        if order.reduce_only and (any(e is not None for e in exits) or order.trailing_stop_pct is not None):
            if order.time_stop_s is not None:
                return f"venue {self.name}: Alpaca has no time stops"
            if order.trailing_stop_pct is not None and any(e is not None for e in exits):
                return f"venue {self.name}: Alpaca cannot combine a trailing stop with a stop loss or take profit"
            if order.trailing_stop_pct is None and None in exits:
                return f"venue {self.name}: a reduce-only order with exits is an OCO and needs both stop_loss_pct " \
                       "and take_profit_pct"
            if order.order_type not in (OrderType.MARKET, OrderType.LIMIT):
                return f"venue {self.name}: OCO and trailing-stop exits are MARKET or LIMIT orders"
            if order.order_type is OrderType.LIMIT and order.trailing_stop_pct is not None:
                return f"venue {self.name}: a trailing-stop exit is a MARKET order"
            if order.time_in_force not in (TimeInForce.GTC, TimeInForce.DAY):
                return f"venue {self.name}: OCO and trailing-stop orders are GTC or DAY"
            return ""
        if order.trailing_stop_pct is not None or order.time_stop_s is not None:
            return (f"venue {self.name}: Alpaca cannot attach a trailing or time stop to an entry (brackets hold a "
                    "stop loss and a take profit only)")
        if any(e is not None for e in exits) and order.time_in_force not in (TimeInForce.GTC, TimeInForce.DAY):
            return f"venue {self.name}: Alpaca brackets are GTC or DAY orders"
        return ""

    async def _reference_price(self, order: SubmitOrder, symbol: str) -> Decimal:
        if order.limit_price is not None:
            return order.limit_price
        if order.trigger_price is not None:
            return order.trigger_price
        from alpaca.data.enums import DataFeed
        from alpaca.data.requests import StockLatestTradeRequest

        client = self._data_client()
        request = StockLatestTradeRequest(symbol_or_symbols=symbol, feed=DataFeed(self.data_feed))
        trades = await self._call(lambda: self._run(lambda: client.get_stock_latest_trade(request)))
        trade = trades.get(symbol)
        if trade is None:
            raise VenueRefused(f"no latest trade for {symbol}: bracket levels of a MARKET entry need one")
        return venue_decimal(trade.price)

    async def order_request(self, order: SubmitOrder) -> Any:
        """The SDK request for ``order`` (see the module docstring)."""
        from alpaca.trading import enums as e
        from alpaca.trading import requests as r

        symbol, _venue = split_instrument_id(order.instrument_id)
        common: dict[str, Any] = {
            "symbol": symbol, "qty": float(order.quantity), "client_order_id": order.client_order_id,
            "side": e.OrderSide.BUY if order.side is Side.BUY else e.OrderSide.SELL,
            "time_in_force": e.TimeInForce(order.time_in_force.value.lower()),
        }
        if order.reduce_only and order.trailing_stop_pct is not None:
            return r.TrailingStopOrderRequest(**common, trail_percent=float(order.trailing_stop_pct * 100))
        sl_pct, tp_pct = order.stop_loss_pct, order.take_profit_pct
        if sl_pct is not None or tp_pct is not None:
            reference = await self._reference_price(order, symbol)
            if order.reduce_only:  # OCO: exits of the position this order reduces (a long is reduced by a SELL)
                held = Side.BUY if order.side is Side.SELL else Side.SELL
                tp, sl = exit_levels(held, reference, sl_pct, tp_pct)
                assert tp is not None and sl is not None  # refusal() asks for both
                return r.LimitOrderRequest(**common, limit_price=float(tp), order_class=e.OrderClass.OCO,
                                           take_profit=r.TakeProfitRequest(limit_price=float(tp)),
                                           stop_loss=r.StopLossRequest(stop_price=float(sl)))
            tp, sl = exit_levels(order.side, reference, sl_pct, tp_pct)
            common["order_class"] = e.OrderClass.BRACKET if tp is not None and sl is not None else e.OrderClass.OTO
            if tp is not None:
                common["take_profit"] = r.TakeProfitRequest(limit_price=float(tp))
            if sl is not None:
                common["stop_loss"] = r.StopLossRequest(stop_price=float(sl))
        kind = order.order_type
        if kind is OrderType.MARKET:
            return r.MarketOrderRequest(**common)
        if kind is OrderType.LIMIT:
            assert order.limit_price is not None
            return r.LimitOrderRequest(**common, limit_price=float(order.limit_price))
        assert order.trigger_price is not None
        if kind is OrderType.STOP_MARKET:
            return r.StopOrderRequest(**common, stop_price=float(order.trigger_price))
        assert order.limit_price is not None
        return r.StopLimitOrderRequest(**common, stop_price=float(order.trigger_price),
                                       limit_price=float(order.limit_price))

    async def venue_place(self, order: SubmitOrder) -> VenueOrder:
        try:
            request = await self.order_request(order)
        except (Ambiguous, OrderNotFoundAtVenue, NotSent) as exc:  # the create never left: it may be sent again
            raise NotSent(f"reference price for the exits not known: {exc}") from None
        client = self._client()
        placed = await self._run(lambda: client.submit_order(request))
        return self._venue_order(placed, order)

    async def venue_cancel(self, order: SubmitOrder, venue_order_id: str) -> VenueOrder:
        client = self._client()
        if not venue_order_id:
            venue_order_id = str((await self._run(lambda: client.get_order_by_client_id(order.client_order_id))).id)
        await self._run(lambda: client.cancel_order_by_id(venue_order_id))
        # Alpaca answers 204: the order's state after the cancel is asked for
        current = await self._run(lambda: client.get_order_by_id(venue_order_id))
        return self._venue_order(current, order)

    async def venue_replace(self, order: SubmitOrder, venue_order_id: str, new: SubmitOrder) -> VenueOrder:
        from alpaca.trading.requests import ReplaceOrderRequest

        if new.quantity != new.quantity.to_integral_value():
            raise VenueRefused(f"Alpaca amends whole share quantities only, not {new.quantity}")
        client = self._client()
        if not venue_order_id:
            venue_order_id = str((await self._run(lambda: client.get_order_by_client_id(order.client_order_id))).id)
        fields: dict[str, Any] = {"client_order_id": new.client_order_id}
        if new.quantity != order.quantity:
            fields["qty"] = int(new.quantity)
        if new.limit_price != order.limit_price and new.limit_price is not None:
            fields["limit_price"] = float(new.limit_price)
        if new.trigger_price != order.trigger_price and new.trigger_price is not None:
            fields["stop_price"] = float(new.trigger_price)
        request = ReplaceOrderRequest(**fields)
        placed = await self._run(lambda: client.replace_order_by_id(venue_order_id, request))
        return self._venue_order(placed, new)

    async def venue_order(self, order: SubmitOrder) -> VenueOrder:
        client = self._client()
        coid = order.client_order_id
        leg_id = next((vid for vid, c in self._leg_coid.items() if c == coid), None)
        if leg_id is not None:
            found = await self._run(lambda: client.get_order_by_id(leg_id))
        else:
            found = await self._run(lambda: client.get_order_by_client_id(coid))
        return self._venue_order(found, order)

    async def venue_open_orders(self) -> list[VenueOrder]:
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        client = self._client()
        request = GetOrdersRequest(status=QueryOrderStatus.OPEN, nested=True, limit=500)
        found = await self._run(lambda: client.get_orders(request))
        out: list[VenueOrder] = []
        for parent in found:
            for one in [parent, *(parent.legs or [])]:
                if self.symbols and one.symbol not in self.symbols:
                    continue
                out.append(self._venue_order(one, None))
        return out

    async def venue_order_fills(self, order: SubmitOrder, venue_order_id: str) -> list[VenueFill]:
        return [f for f in await self._activities(None) if f.venue_order_id == venue_order_id]

    async def venue_fills(self, since_ns: int) -> list[VenueFill]:
        return await self._activities(since_ns)

    async def _activities(self, since_ns: int | None) -> list[VenueFill]:
        """FILL account activities (the SDK has no call for them: its raw ``get``), newest pages first."""
        client = self._client()
        params: dict[str, Any] = {"direction": "desc", "page_size": 100}
        if since_ns is not None:
            params["after"] = datetime.fromtimestamp(since_ns / 1e9, UTC).isoformat()
        fills: list[VenueFill] = []
        for _page in range(20):
            rows = await self._call(lambda: self._run(lambda: client.get("/account/activities/FILL", dict(params))))
            if not rows:
                break
            for row in rows:
                symbol = row.get("symbol", "")
                if self.symbols and symbol not in self.symbols:
                    continue
                vid = str(row["order_id"])
                fills.append(VenueFill(
                    trade_id=cumulative_trade_id(vid, venue_decimal(row["cum_qty"])), venue_order_id=vid,
                    client_order_id=self._leg_coid.get(vid, ""), symbol=symbol,
                    side=Side.BUY if row.get("side") == "buy" else Side.SELL, quantity=venue_decimal(row["qty"]),
                    price=venue_decimal(row["price"]), fee=ZERO, fee_currency="USD",
                    ts_ns=iso_ns(row.get("transaction_time"))))
            if len(rows) < params["page_size"]:
                break
            params["page_token"] = rows[-1]["id"]
        return fills

    async def venue_balances(self) -> dict[str, Decimal]:
        client = self._client()
        positions = await self._run(client.get_all_positions)
        account = await self._run(client.get_account)
        out = {p.symbol: venue_decimal(p.qty) * (1 if str(getattr(p.side, "value", p.side)) == "long" else -1)
               for p in positions}
        out["USD"] = venue_decimal(account.cash)
        return out

    # --- what Alpaca says ---------------------------------------------------------------------------------

    def _venue_order(self, placed: Any, order: SubmitOrder | None) -> VenueOrder:
        """A VenueOrder from the SDK's ``Order`` model (and the legs it carries, followed as exits)."""
        raw = placed.model_dump(mode="json") if hasattr(placed, "model_dump") else dict(placed)
        return self.parse_order(raw, order)

    def parse_order(self, raw: dict[str, Any], order: SubmitOrder | None) -> VenueOrder:
        vid = str(raw["id"])
        parent_coid = order.client_order_id if order is not None else str(raw.get("client_order_id", ""))
        if order is not None and raw.get("legs"):
            self._follow_legs(order, raw)
        coid = self._leg_coid.get(vid, str(raw.get("client_order_id", "")))
        if order is not None and vid not in self._leg_coid:
            coid = parent_coid
        status_text = str(raw.get("status", ""))
        status: OrderStatus = STATUS.get(status_text, "open")
        side = raw.get("side")
        kind = raw.get("type") or raw.get("order_type")
        return VenueOrder(
            client_order_id=coid, venue_order_id=vid, status=status, filled_qty=venue_decimal(raw.get("filled_qty")),
            symbol=str(raw.get("symbol") or ""),
            side=None if side is None else (Side.BUY if side == "buy" else Side.SELL),
            quantity=venue_decimal(raw.get("qty")) if raw.get("qty") is not None else None,
            order_type={"market": OrderType.MARKET, "limit": OrderType.LIMIT, "stop": OrderType.STOP_MARKET,
                        "stop_limit": OrderType.STOP_LIMIT}.get(str(kind)),
            limit_price=venue_decimal(raw["limit_price"]) if raw.get("limit_price") is not None else None,
            ts_ns=iso_ns(raw.get("updated_at")),
            reason="replaced by another order" if status_text == "replaced" else "")

    def _follow_legs(self, parent: SubmitOrder, raw: dict[str, Any]) -> None:
        """Follow the legs Alpaca made for ``parent`` as Tradewire exit orders (once)."""
        for leg in raw.get("legs") or []:  # an OCO order is itself the take profit: its one leg is the stop
            vid = str(leg["id"])
            if vid in self._leg_coid:
                continue
            kind = "tp" if leg.get("type") == "limit" else "sl"
            coid = exit_coid(parent.client_order_id, kind)
            self._leg_coid[vid] = coid
            if coid in self._orders or coid in self._closed:
                continue
            limit = venue_decimal(leg["limit_price"]) if leg.get("limit_price") is not None else None
            stop = venue_decimal(leg["stop_price"]) if leg.get("stop_price") is not None else None
            leg_type = OrderType.LIMIT if kind == "tp" else (OrderType.STOP_LIMIT if limit is not None
                                                              else OrderType.STOP_MARKET)
            exit_order = SubmitOrder(
                id=derive_id("alpaca-leg", parent.client_order_id, kind), ts_event=parent.ts_event,
                ts_init=parent.ts_init, correlation_id=parent.correlation_id, strategy_id=parent.strategy_id,
                instrument_id=parent.instrument_id, client_order_id=coid,
                side=Side.BUY if leg.get("side") == "buy" else Side.SELL, order_type=leg_type,
                quantity=venue_decimal(leg.get("qty")),
                limit_price=limit if leg_type is not OrderType.STOP_MARKET else None,
                trigger_price=stop if kind == "sl" else None,
                time_in_force=TimeInForce(str(leg.get("time_in_force", "gtc")).upper()), reduce_only=True,
                signal_id=parent.signal_id)
            self.adopt(exit_order, vid)

    # --- the trade_updates stream -------------------------------------------------------------------------

    def update_batch(self, msg: dict[str, Any]) -> tuple[list[VenueOrder], list[VenueFill]]:
        """One ``trade_updates`` message as ``(orders, fills)`` for the framework."""
        data = msg.get("data") or {}
        raw = data.get("order") or {}
        if not raw:
            return [], []
        vid = str(raw["id"])
        coid = self._leg_coid.get(vid) or str(raw.get("client_order_id", ""))
        tracked = self.tracked(coid)
        venue_order = self.parse_order(raw, tracked.order if tracked is not None and vid not in self._leg_coid
                                       else None)
        venue_order = msgspec.structs.replace(venue_order, client_order_id=coid)
        fills: list[VenueFill] = []
        if data.get("event") in ("fill", "partial_fill") and data.get("qty") is not None:
            log.info("venue %s: %s %s of %s at %s (execution %s)", self.name, data.get("event"), data.get("qty"),
                     coid, data.get("price"), data.get("execution_id"))
            fills.append(VenueFill(
                trade_id=cumulative_trade_id(vid, venue_decimal(raw.get("filled_qty"))), venue_order_id=vid,
                client_order_id=coid,
                symbol=str(raw.get("symbol") or ""),
                side=Side.BUY if raw.get("side") == "buy" else Side.SELL, quantity=venue_decimal(data["qty"]),
                price=venue_decimal(data["price"]), fee=ZERO, fee_currency="USD", ts_ns=iso_ns(data.get("timestamp"))))
        return [venue_order], fills

    async def venue_stream(self) -> AsyncIterator[tuple[list[VenueOrder], list[VenueFill]]]:
        from alpaca.trading.stream import TradingStream

        assert_loopback(self._urls(), f"venue {self.name}")
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

        async def on_update(msg: Any) -> None:
            await queue.put(msg)

        stream = TradingStream(self.credentials.api_key, self.credentials.secret, paper=not self.live,
                               raw_data=True, url_override=self.stream_url)
        stream.subscribe_trade_updates(on_update)
        run: Callable[[], Any] = stream._run_forever
        task = asyncio.create_task(run(), name=f"{self.name}-trade-updates")

        async def watch() -> None:
            """The SDK reconnects by itself and says nothing: a lost connection ends this stream (None), so
            the framework polls what was missed meanwhile and starts it again."""
            was_up = False
            while True:
                await asyncio.sleep(0.25)
                up = bool(stream._running)
                if task.done() or (was_up and not up):
                    await queue.put(None)
                    return
                was_up = was_up or up

        watcher = asyncio.create_task(watch(), name=f"{self.name}-trade-updates-watch")
        try:
            while True:
                msg = await queue.get()
                if msg is None:
                    raise ConnectionError("trade_updates stream disconnected")
                batch = self.update_batch(msg)
                if batch[0] or batch[1]:
                    yield batch
        finally:
            watcher.cancel()
            with contextlib.suppress(Exception):
                await stream.stop_ws()
                await stream.close()
            task.cancel()
            await asyncio.wait([task, watcher], timeout=5)  # a cancel of this task itself still propagates


def build(venue: Any, config: Any) -> AlpacaAdapter:
    """The factory of ``tradewire_execution.venues`` (``adapter = "alpaca"``): ``mode = "sandbox"`` is Alpaca's
    paper API, ``mode = "live"`` its live API (armed by ``--live``, checked by the factory)."""
    from tradewire_execution.live.credentials import default_prefix, load_credentials

    credentials = load_credentials(venue.credentials_env_prefix or default_prefix(venue.name))
    if not credentials.present:
        prefix = venue.credentials_env_prefix or default_prefix(venue.name)
        raise ValueError(f"venue {venue.name}: Alpaca credentials missing: set {prefix}_API_KEY and "
                         f"{prefix}_API_SECRET (or their _FILE twins)")
    return AlpacaAdapter(
        venue.name, credentials=credentials, symbols=venue.symbols, live=venue.mode == "live",
        url_override=venue.url_override, limiter=TokenBucket(venue.rate_limit_per_s or DEFAULT_RATE_PER_S),
        in_flight_grace_s=venue.in_flight_grace_s, poll_interval_s=venue.poll_interval_s,
        websocket=venue.websocket)
