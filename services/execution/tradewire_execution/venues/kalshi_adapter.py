"""Kalshi (US-regulated event contracts) through the official ``kalshi-python-sync`` SDK, on the live framework.

Endpoints: Kalshi's **demo** environment (``https://demo-api.kalshi.co/trade-api/v2``) with ``mode = "sandbox"``,
production (``https://api.elections.kalshi.com/trade-api/v2``) only with ``mode = "live"`` (which also needs
``--live``); ``url_override`` replaces the scheme and host (tests: the fake on 127.0.0.1). Credentials:
``{prefix}_API_KEY`` is the API key id, ``{prefix}_API_SECRET`` (or its ``_FILE``) the RSA private key in PEM;
each request is signed by the SDK's ``KalshiAuth`` (RSA-PSS SHA-256 over ``timestamp + METHOD + path``). Neither
ever reaches a log (:meth:`~LiveVenueAdapter.scrub`).

**What of the SDK is used, and why not all of it.** ``kalshi-python-sync`` 3.2.0 (the newest release for Python
3.11) speaks the *transitional* wire revision: its strict pydantic response models *require* the legacy integer
fields next to the fixed-point ones (``Market.yes_bid``/``volume``/``open_interest``/``liquidity``/``tick_size``/
``risk_limit_cents``/``category``/``subtitle``, ``Order.fill_count``/``yes_price``/``user_id``, ``Fill.count``/
``price``/``yes_price_fixed``, ``Trade.count``/``price``, candle ``open``/``close`` in cents, the book under
``orderbook``), while Kalshi's current API sends only ``*_dollars`` prices and ``*_fp`` counts (the book under
``orderbook_fp``, ``end_period_ts`` as a string; see the recorded answers in ``tests/fixtures/prediction/kalshi``),
and its ``ErrorResponse`` reads ``code``/``message`` at the top level where Kalshi nests them under ``error``.
So the adapter uses the SDK for what stays right: ``Configuration``, the signing (``KalshiAuth``), the typed
request models (``CreateOrderRequest`` validates side/action/time in force) and the transport, through the SDK's
own ``*_without_preload_content`` calls (which also take a request timeout, unlike the typed ones); it reads the
JSON answers itself (the wire helpers below), preferring ``*_dollars``/``*_fp`` and falling back to the integer
fields, so both revisions parse. urllib3's retries are off (``retries = 0``): a create is never sent twice by the
transport. Two more 3.2.0 quirks worked around: ``KalshiClient`` signs every request twice (one RSA signature
wasted) and ``ApiClient.set_kalshi_auth`` raises ``NameError`` (``KalshiAuth`` is not imported there), so the
adapter sets ``ApiClient.kalshi_auth`` itself.

**Orders.** Instruments are ``<ticker>-YES`` / ``<ticker>-NO`` (:func:`to_kalshi` is the one
mapping: buying ``-NO`` is ``side=no, action=buy``; selling ``-YES`` is ``side=yes, action=sell``), the limit
price is the instrument's own (``yes_price_dollars`` or ``no_price_dollars``), the client order id is Kalshi's
``client_order_id`` (a second one is ``409 order_already_exists``: resolved by query, never placed twice).
Limit orders only; ``GTC``/``IOC``/``FOK`` as Kalshi's ``time_in_force``, ``GTD`` as ``expiration_ts``;
``post_only`` and ``reduce_only`` as they are; whole contracts (3.2.0's request has no ``count_fp``). Kalshi
has no lookup by client order id: an order in flight is found by listing the market's orders (every page).
A GTD order Kalshi cancelled at its expiration is ``OrderExpired``; the rest of an IOC/FOK order is cancelled.

**Fills** come from ``/portfolio/fills`` with Kalshi's ``fill_id`` as the trade id, mapped back to the
instrument of their ``side`` and the Tradewire side of their ``action``, at their own side's price, with
``fee_cost`` as the fee when Kalshi gives one. Orders are polled (no order websocket here).

**Positions and settlement.** Kalshi nets YES and NO into one signed position per market (+YES / -NO contracts:
buying NO while holding YES closes YES): :meth:`venue_balances` reports it per ticker (plus ``USD``), and
:meth:`position_keys` puts ``-YES`` on it positively and ``-NO`` negatively, so reconciliation compares the ledger's
YES minus NO with it.
Each polling round also reads ``/portfolio/settlements``: a settled market the account held becomes
``MarketResolved`` (YES pays 1 and NO 0 on ``yes``, the reverse on ``no``, ``value``/100 for a scalar), handed to
the host's ``adapter_resolved`` (the execution service publishes it on ``pm.resolved.<venue>``, where the ledger
settles it); the adapter keeps them in :attr:`KalshiAdapter.resolutions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import msgspec

from tradewire_common.ids import derive_id, split_instrument_id
from tradewire_common.schemas import (
    Liquidity,
    MarketResolved,
    OrderType,
    OutcomePayout,
    Side,
    SubmitOrder,
    TimeInForce,
)
from tradewire_execution.live.base import (
    CAP_GTD,
    CAP_POST_ONLY,
    ZERO,
    Ambiguous,
    DuplicateClientOrderId,
    LiveVenueAdapter,
    NotSent,
    OrderNotFoundAtVenue,
    OrderStatus,
    VenueFill,
    VenueOrder,
    VenueRefused,
)
from tradewire_execution.live.credentials import Credentials
from tradewire_execution.live.guard import assert_loopback
from tradewire_execution.live.http import raise_for_throttle
from tradewire_execution.live.ratelimit import TokenBucket
from tradewire_execution.live.wire import iso_ns
from tradewire_execution.venue import CAP_FOK, CAP_GTC, CAP_IOC, CAP_LIMIT, CAP_PARTIAL_FILLS, CAP_REDUCE_ONLY

log = logging.getLogger(__name__)

DEMO_URL = "https://demo-api.kalshi.co/trade-api/v2"
LIVE_URL = "https://api.elections.kalshi.com/trade-api/v2"
API_PATH = "/trade-api/v2"
CAPABILITIES = frozenset({CAP_LIMIT, CAP_PARTIAL_FILLS, CAP_GTC, CAP_IOC, CAP_FOK, CAP_GTD, CAP_POST_ONLY,
                          CAP_REDUCE_ONLY})
TIME_IN_FORCE = {TimeInForce.GTC: "good_till_canceled", TimeInForce.IOC: "immediate_or_cancel",
                 TimeInForce.FOK: "fill_or_kill"}
#: Kalshi's basic tier: 10 writes a second (reads: 20).
DEFAULT_RATE_PER_S = 10.0
#: Settlements older than this are not announced again after a restart.
SETTLEMENTS_LOOKBACK_S = 7 * 86400
#: Pages of a listing read at most when looking for one order.
MAX_PAGES = 50


def api_url(url_override: str, live: bool) -> str:
    """The REST base: ``url_override`` (its path, else ``/trade-api/v2``), else demo or production."""
    base = url_override.rstrip("/")
    if not base:
        return LIVE_URL if live else DEMO_URL
    return base if urlsplit(base).path else base + API_PATH


# --- Kalshi's wire (both revisions: fixed-point strings first, legacy integers as the fallback) -------------


def to_kalshi(symbol: str, side: Side) -> tuple[str, str, str]:
    """``(ticker, side, action)`` of trading ``symbol`` (``<ticker>-YES``/``-NO``): the one mapping both ways
    (:func:`from_kalshi` is its inverse). Buying ``-NO`` is ``no``/``buy``; selling ``-YES`` is ``yes``/``sell``."""
    ticker, _, outcome = symbol.rpartition("-")
    if outcome not in ("YES", "NO") or not ticker:
        raise ValueError(f"a Kalshi instrument is <ticker>-YES or <ticker>-NO, not {symbol!r}")
    return ticker, outcome.lower(), "buy" if side is Side.BUY else "sell"


def from_kalshi(ticker: str, side: str, action: str) -> tuple[str, Side]:
    """``(symbol, side)`` of a Kalshi order or fill (``side`` yes/no, ``action`` buy/sell)."""
    if side not in ("yes", "no") or action not in ("buy", "sell"):
        raise ValueError(f"not a Kalshi side/action: {side!r}/{action!r}")
    return f"{ticker}-{side.upper()}", Side.BUY if action == "buy" else Side.SELL


def ticker_of(symbol: str) -> str:
    """The market ticker of ``<ticker>-YES``/``-NO`` (a bare ticker as it is)."""
    ticker, _, outcome = symbol.rpartition("-")
    return ticker if outcome in ("YES", "NO") and ticker else symbol


def dollars(value: Decimal) -> str:
    """A price as Kalshi's fixed-point dollar string (4 decimals)."""
    return str(value.quantize(Decimal("0.0001")))


def money(raw: dict[str, Any], name: str) -> Decimal:
    """``name`` in dollars: ``<name>_dollars``, else ``<name>_fixed``, else the legacy cents ``<name>``."""
    for key in (f"{name}_dollars", f"{name}_fixed"):
        if raw.get(key) not in (None, ""):
            return Decimal(str(raw[key]))
    return Decimal(str(raw[name])) / 100 if raw.get(name) is not None else ZERO


def count(raw: dict[str, Any], name: str) -> Decimal:
    """Contracts: ``<name>_fp``, else the legacy integer ``<name>``."""
    if raw.get(f"{name}_fp") not in (None, ""):
        return Decimal(str(raw[f"{name}_fp"]))
    return Decimal(str(raw[name])) if raw.get(name) is not None else ZERO


def error_text(data: bytes) -> str:
    """Kalshi's ``{"error": {"code", "message", "details"}}`` as ``code: message (details)``."""
    try:
        body = json.loads(data)
    except ValueError:
        return data.decode(errors="replace").strip()[:300]
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return str(body)[:300]
    text = f"{error.get('code', '')}: {error.get('message', '')}"
    return text + (f" ({error['details']})" if error.get("details") else "")


def parse_order(raw: dict[str, Any], order: SubmitOrder | None, now_ns: int) -> VenueOrder:
    """A Kalshi order; ``order`` (ours, when known) tells an expiry and an IOC/FOK remainder from a cancel."""
    if "order_id" not in raw:
        raise OrderNotFoundAtVenue("Kalshi answered without an order")
    filled, initial = count(raw, "fill_count"), count(raw, "initial_count")
    symbol, side = from_kalshi(str(raw.get("ticker")), str(raw.get("side")), str(raw.get("action")))
    kalshi_status = str(raw.get("status"))
    status: OrderStatus = "open"
    if kalshi_status == "executed" or (initial and filled >= initial):
        status = "filled"
    elif kalshi_status == "canceled":
        expiry = iso_ns(raw.get("expiration_time"))
        tif = order.time_in_force if order is not None else None
        status = "expired" if (tif in (TimeInForce.IOC, TimeInForce.FOK)
                               or (tif is TimeInForce.GTD and expiry and expiry <= now_ns)) else "canceled"
    return VenueOrder(
        client_order_id=str(raw.get("client_order_id") or (order.client_order_id if order else "")),
        venue_order_id=str(raw["order_id"]), status=status, filled_qty=filled, symbol=symbol, side=side,
        quantity=initial or None, order_type=OrderType.LIMIT, limit_price=money(raw, f"{raw.get('side')}_price"),
        ts_ns=iso_ns(raw.get("last_update_time") or raw.get("created_time")))


def parse_fill(raw: dict[str, Any]) -> VenueFill:
    """A Kalshi fill at its own side's price (``yes_price_dollars`` for a YES fill, ``no_...`` for NO); its
    ``fee_cost`` is in dollars (absent from 3.2.0's revision: 0)."""
    symbol, side = from_kalshi(str(raw.get("ticker") or raw.get("market_ticker")), str(raw.get("side")),
                               str(raw.get("action")))
    ts = iso_ns(raw.get("created_time")) or int(raw.get("ts") or 0) * 1_000_000_000
    return VenueFill(
        trade_id=str(raw.get("fill_id") or raw["trade_id"]), venue_order_id=str(raw.get("order_id", "")),
        client_order_id=str(raw.get("client_order_id") or ""), symbol=symbol, side=side, quantity=count(raw, "count"),
        price=money(raw, f"{raw.get('side')}_price"), fee=Decimal(str(raw.get("fee_cost") or 0)), fee_currency="USD",
        liquidity=Liquidity.TAKER if raw.get("is_taker") else Liquidity.MAKER, ts_ns=ts)


def resolution_of(venue: str, ticker: str, raw: dict[str, Any], now_ns: int, *, source: str) -> MarketResolved | None:
    """``MarketResolved`` of a settlement (``market_result``) or a market (``result``); None while undetermined."""
    result = str(raw.get("market_result") or raw.get("result") or "").lower()
    if result == "yes":
        yes = Decimal(1)
    elif result == "no":
        yes = Decimal(0)
    elif result == "scalar" and raw.get("value") is not None:
        yes = Decimal(str(raw["value"])) / 100
    elif result == "scalar" and raw.get("settlement_value_dollars"):
        yes = Decimal(str(raw["settlement_value_dollars"]))
    else:
        return None
    ts = iso_ns(raw.get("settled_time") or raw.get("settlement_ts") or raw.get("expiration_time")) or now_ns
    payouts = (OutcomePayout(instrument_id=f"{ticker}-YES.{venue}", payout=yes),
               OutcomePayout(instrument_id=f"{ticker}-NO.{venue}", payout=1 - yes))
    return MarketResolved(id=derive_id("MarketResolved", venue, ticker), ts_event=ts, ts_init=now_ns, venue=venue,
                          market_id=ticker, payouts=payouts, resolution=result.upper(), source=source)


class KalshiAdapter(LiveVenueAdapter):
    """Kalshi's trade API v2 (see the module docstring)."""

    spot = False  # one signed position per market; reduce-only is Kalshi's own flag

    def __init__(
        self, name: str, *, credentials: Credentials, symbols: Iterable[str] = (), live: bool = False,
        url_override: str = "", limiter: TokenBucket | None = None, in_flight_grace_s: float = 15.0,
        poll_interval_s: float = 2.0, request_timeout_s: float = 10.0, wall_ns: Callable[[], int] | None = None,
    ) -> None:
        extra: dict[str, Any] = {"wall_ns": wall_ns} if wall_ns is not None else {}
        super().__init__(name, capabilities=CAPABILITIES, limiter=limiter or TokenBucket(DEFAULT_RATE_PER_S),
                         credentials=credentials, in_flight_grace_s=in_flight_grace_s,
                         poll_interval_s=poll_interval_s, websocket=False, **extra)
        self.base_url = api_url(url_override, live)
        self.live = live
        self.tickers = frozenset(ticker_of(s) for s in symbols)
        self.request_timeout_s = float(request_timeout_s)
        self.resolutions: list[MarketResolved] = []
        self._resolved: set[str] = set()
        self._sdk: Any = None
        self._apis: list[Any] = []

    # --- the SDK ------------------------------------------------------------------------------------------

    def _client(self) -> Any:
        """The SDK's ``ApiClient`` signing with ``KalshiAuth`` in ``call_api`` (its ``KalshiClient`` signs every
        request twice, in ``update_params_for_auth`` and again in ``call_api``: 3 ms of RSA each), and the API
        groups used."""
        if self._sdk is None:
            from kalshi_python_sync.api.exchange_api import ExchangeApi
            from kalshi_python_sync.api.orders_api import OrdersApi
            from kalshi_python_sync.api.portfolio_api import PortfolioApi
            from kalshi_python_sync.api_client import ApiClient
            from kalshi_python_sync.auth import KalshiAuth
            from kalshi_python_sync.configuration import Configuration

            assert_loopback([self.base_url], f"venue {self.name}")
            config = Configuration(host=self.base_url)
            config.retries = 0  # never a transport retry of a create
            client: Any = ApiClient(config)
            # what ``set_kalshi_auth`` would do, had 3.2.0's api_client.py imported KalshiAuth (NameError)
            client.kalshi_auth = KalshiAuth(self.credentials.api_key, self.credentials.secret)
            self._sdk = client
            self._apis = [OrdersApi(client), PortfolioApi(client), ExchangeApi(client)]
        return self._sdk

    def _operation(self, call: str) -> Any:
        self._client()
        for api in self._apis:
            if hasattr(api, call):
                return getattr(api, call)
        raise AttributeError(f"no Kalshi SDK call {call}")

    def _send(self, call: str, *args: Any, **kw: Any) -> Any:
        """One SDK call (``<call>_without_preload_content``, in a worker thread): the decoded JSON answer, or
        the framework's exception for Kalshi's error."""
        import urllib3

        operation = self._operation(call + "_without_preload_content")
        response = None
        try:
            response = operation(
                *args, _request_timeout=self.request_timeout_s, **{k: v for k, v in kw.items() if v is not None})
            data = response.data
        except urllib3.exceptions.MaxRetryError as exc:
            if isinstance(exc.reason, urllib3.exceptions.NewConnectionError):
                raise NotSent(f"Kalshi unreachable: {self.scrub(str(exc.reason))}") from None
            raise Ambiguous(f"Kalshi: no answer ({self.scrub(str(exc.reason))})") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise Ambiguous(f"Kalshi: no answer ({type(exc).__name__}: {self.scrub(str(exc))})") from None
        finally:
            if response is not None:
                response.release_conn()
        status = response.status
        if status == 429 or status >= 500:
            raise_for_throttle("Kalshi", status, response.headers, self.scrub(error_text(data)))
        if status >= 400:
            text = f"Kalshi {status} {self.scrub(error_text(data))}"
            if status == 404:
                raise OrderNotFoundAtVenue(text)
            if status == 409 and b"order_already_exists" in data:
                raise DuplicateClientOrderId(text)
            raise VenueRefused(text)
        return json.loads(data) if data else {}

    async def _request(self, call: str, *args: Any, **kw: Any) -> Any:
        return await asyncio.to_thread(self._send, call, *args, **kw)

    async def _pages(self, call: str, key: str, **kw: Any) -> list[dict[str, Any]]:
        """Every page of a cursor-paginated listing."""
        out: list[dict[str, Any]] = []
        cursor = None
        for _ in range(MAX_PAGES):
            body = await self._request(call, cursor=cursor, **kw)
            out += body.get(key) or []
            cursor = body.get("cursor") or None
            if cursor is None:
                break
        return out

    # --- framework hooks ----------------------------------------------------------------------------------

    def position_keys(self) -> dict[str, str]:
        """Both outcomes on the market's one signed position: YES counts +, NO - (``-KEY``, see reconcile)."""
        out: dict[str, str] = {}
        for ticker in sorted(self.tickers):
            out |= {f"{ticker}-YES.{self.name}": ticker, f"{ticker}-NO.{self.name}": "-" + ticker}
        return out

    async def connect(self) -> None:
        """Check the exchange is up and trading (a warning otherwise: polling catches up once it is)."""
        assert_loopback([self.base_url], f"venue {self.name}")
        try:
            status = await self._request("get_exchange_status")
        except (ConnectionError, VenueRefused) as exc:
            log.warning("venue %s: Kalshi's exchange status not read: %s", self.name, self.scrub(str(exc)))
            return
        if not (status.get("exchange_active") and status.get("trading_active")):
            log.warning("venue %s: Kalshi is not trading now (%s)", self.name, status)

    async def disconnect(self) -> None:
        if self._sdk is not None:
            with contextlib.suppress(Exception):
                self._sdk.rest_client.pool_manager.clear()

    def refusal(self, order: SubmitOrder) -> str:
        reason = super().refusal(order)
        if reason:
            return reason
        try:
            to_kalshi(split_instrument_id(order.instrument_id)[0], order.side)
        except ValueError as exc:
            return f"venue {self.name}: {exc}"
        if self.tickers and ticker_of(split_instrument_id(order.instrument_id)[0]) not in self.tickers:
            return f"venue {self.name}: {order.instrument_id} is not among the configured markets"
        if order.quantity != order.quantity.to_integral_value():
            return f"venue {self.name}: Kalshi orders are whole contracts, not {order.quantity}"
        if order.limit_price is None or not 0 < order.limit_price < 1:
            return f"venue {self.name}: a Kalshi limit price is a probability in (0, 1), not {order.limit_price}"
        return ""

    # --- orders -------------------------------------------------------------------------------------------

    def create_request(self, order: SubmitOrder) -> Any:
        """The SDK's ``CreateOrderRequest`` of ``order`` (validated by the SDK before anything is sent)."""
        from kalshi_python_sync.models.create_order_request import CreateOrderRequest

        ticker, side, action = to_kalshi(split_instrument_id(order.instrument_id)[0], order.side)
        fields: dict[str, Any] = {
            "ticker": ticker, "client_order_id": order.client_order_id, "side": side, "action": action,
            "count": int(order.quantity), "type": "limit", f"{side}_price_dollars": dollars(order.limit_price or ZERO)}
        if order.time_in_force is TimeInForce.GTD:
            fields["expiration_ts"] = int((order.expire_time_ns or 0) // 1_000_000_000)
        else:
            fields["time_in_force"] = TIME_IN_FORCE[order.time_in_force]
        if order.post_only:
            fields["post_only"] = True
        if order.reduce_only:
            fields["reduce_only"] = True
        return CreateOrderRequest(**fields)

    async def venue_place(self, order: SubmitOrder) -> VenueOrder:
        request = self.create_request(order)
        body = await self._request("create_order", request)
        return parse_order(body.get("order") or {}, order, self.wall_ns())

    async def venue_cancel(self, order: SubmitOrder, venue_order_id: str) -> VenueOrder:
        if not venue_order_id:
            venue_order_id = (await self.venue_order(order)).venue_order_id
        body = await self._request("cancel_order", venue_order_id)
        return parse_order(body.get("order") or {}, order, self.wall_ns())

    async def venue_order(self, order: SubmitOrder) -> VenueOrder:
        tracked = self.tracked(order.client_order_id)
        if tracked is not None and tracked.venue_order_id:
            body = await self._request("get_order", tracked.venue_order_id)
            return parse_order(body.get("order") or {}, order, self.wall_ns())
        ticker, _side, _action = to_kalshi(split_instrument_id(order.instrument_id)[0], order.side)
        for raw in await self._pages("get_orders", "orders", ticker=ticker, limit=200):
            if raw.get("client_order_id") == order.client_order_id:
                return parse_order(raw, order, self.wall_ns())
        raise OrderNotFoundAtVenue(f"Kalshi has no order {order.client_order_id} in {ticker}")

    async def venue_open_orders(self) -> list[VenueOrder]:
        out = []
        for raw in await self._pages("get_orders", "orders", status="resting", limit=200):
            if self.tickers and raw.get("ticker") not in self.tickers:
                continue
            tracked = self.tracked(str(raw.get("client_order_id", "")))
            out.append(parse_order(raw, tracked.order if tracked else None, self.wall_ns()))
        return out

    async def venue_order_fills(self, order: SubmitOrder, venue_order_id: str) -> list[VenueFill]:
        if not venue_order_id:
            venue_order_id = (await self.venue_order(order)).venue_order_id
        return [parse_fill(raw) for raw in await self._pages("get_fills", "fills", order_id=venue_order_id, limit=200)]

    async def venue_fills(self, since_ns: int) -> list[VenueFill]:
        rows = await self._pages("get_fills", "fills", min_ts=int(since_ns // 1_000_000_000), limit=200)
        return [parse_fill(raw) for raw in rows if not self.tickers or raw.get("ticker") in self.tickers]

    async def venue_balances(self) -> dict[str, Decimal]:
        """Per market ticker its signed position (YES minus NO contracts, as Kalshi nets them), and ``USD``."""
        body = await self._request("get_positions", limit=1000)
        out = dict.fromkeys(self.tickers, ZERO)
        for row in body.get("market_positions") or []:
            out[str(row.get("ticker"))] = count(row, "position")
        balance = await self._request("get_balance")
        out["USD"] = money(balance, "balance")
        return out

    # --- settlement ---------------------------------------------------------------------------------------

    async def poll_once(self) -> None:
        await super().poll_once()
        try:
            await self.check_settlements()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("venue %s: settlements not read: %s", self.name, self.scrub(str(exc)))

    async def check_settlements(self) -> list[MarketResolved]:
        """``MarketResolved`` for each market settled with a position of this account in the last
        :data:`SETTLEMENTS_LOOKBACK_S` and not announced since start (published; the same id and content each time,
        so a restart's repeats are dropped downstream)."""
        since_s = (self.wall_ns() // 1_000_000_000) - SETTLEMENTS_LOOKBACK_S
        rows = (await self._request("get_settlements", limit=200, min_ts=since_s)).get("settlements") or []
        new: list[MarketResolved] = []
        for row in rows:
            ticker = str(row.get("ticker", ""))
            if ticker in self._resolved or (self.tickers and ticker not in self.tickers):
                continue
            resolved = resolution_of(self.name, ticker, row, self.wall_ns(), source="kalshi settlement")
            if resolved is None or resolved.ts_event < since_s * 1_000_000_000:
                continue
            resolved = msgspec.structs.replace(resolved, ts_init=resolved.ts_event)
            self._resolved.add(ticker)
            new.append(resolved)
        for resolved in new:
            await self.publish_resolution(resolved)
        return new

    async def publish_resolution(self, resolved: MarketResolved) -> None:
        self.resolutions.append(resolved)
        await self.host.adapter_resolved(self.name, resolved)


def build(venue: Any, config: Any) -> KalshiAdapter:
    """The factory of ``tradewire_execution.venues`` (``adapter = "kalshi"``): ``mode = "sandbox"`` is Kalshi's
    demo, ``mode = "live"`` production (armed by ``--live``, checked by the factory)."""
    from tradewire_execution.live.credentials import default_prefix, load_credentials

    prefix = venue.credentials_env_prefix or default_prefix(venue.name)
    credentials = load_credentials(prefix)
    if not credentials.api_key or not credentials.secret:
        raise ValueError(f"venue {venue.name}: Kalshi credentials missing: set {prefix}_API_KEY (the API key id) and "
                         f"{prefix}_API_SECRET (the RSA private key, PEM), or their _FILE twins")
    return KalshiAdapter(
        venue.name, credentials=credentials, symbols=venue.symbols, live=venue.mode == "live",
        url_override=venue.url_override, limiter=TokenBucket(venue.rate_limit_per_s or DEFAULT_RATE_PER_S),
        in_flight_grace_s=venue.in_flight_grace_s, poll_interval_s=venue.poll_interval_s)

