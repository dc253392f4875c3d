"""The ccxt adapter: any ccxt exchange id as a live venue (spot), on the live framework.

* **Client.** One ``ccxt.pro`` instance (it is also the ``ccxt.async_support`` REST client) per venue, with
  ccxt's own rate limiter and retries off (``enableRateLimit = False``, ``maxRetriesOnFailure = 0``): the
  framework's token bucket paces requests (``rate_limit_per_s``, default: ccxt's published ``rateLimit``) and an
  order creation is never retried blindly. ``mode = "sandbox"`` calls ``set_sandbox_mode(True)`` (testnets; an
  exchange without one in ccxt, such as Coinbase and Kraken spot, needs ``url_override`` then); ``url_override``
  rewrites the scheme and host of every API URL, REST and websocket (a proxy, or a fake venue
  in tests). Under tests every URL must be on 127.0.0.1 before the first call (``live.guard``).
* **Restricted market loading.** Options ``defaultType = spot``, ``fetchMarkets.types = ['spot']``,
  ``fetchCurrencies = False``, ``fetchMargins = False`` and per exchange what these cannot say
  (``tradewire_common.urls.EXCHANGE_CONFIG``): start-up loads the spot markets only and calls no currency or
  margin endpoint (Coinbase's ccxt still asks ``market/products?product_type=FUTURE`` and ignores a failure);
  the configured ``symbols`` must exist there (else the start fails).
* **Symbols.** ``symbols`` are ccxt unified symbols (``BTC/USDT``); the instrument id is base and quote joined
  (``BTCUSDT.<VENUE>``). Spot only: reduce-only orders are sent as plain ones (no shorts on spot).
* **Orders.** ``client_order_id`` goes to the venue as its client order id (Binance ``newClientOrderId``, Coinbase
  ``client_order_id``, Kraken ``cl_ord_id``) and orders are looked up by it (Binance ``origClientOrderId``; Kraken
  its open and closed orders filtered by ``cl_ord_id``; Coinbase its order list searched). ``MARKET``, ``LIMIT``
  (time in force per :data:`PROFILES`), ``STOP_MARKET``/``STOP_LIMIT`` (the exchange's trigger parameter),
  post-only (``postOnly``: Coinbase ``post_only``, Kraken ``oflags=post``) and ``GTD`` with ``expire_time_ns``
  (Binance none; Coinbase ``limit_limit_gtd`` with ``end_time``; Kraken ``timeinforce=GTD`` with ``expiretm``)
  as capabilities from ``exchange.has`` and :data:`PROFILES`: an order asking for one the venue lacks is
  rejected before anything is sent. Coinbase market buys are sized in the base currency (``base_size``), as
  every Tradewire order, not in quote currency (ccxt's default).
* **Errors** (ccxt's hierarchy, from the venue's own error codes): ``OrderNotFound`` -> not found;
  ``DuplicateOrderId`` or Binance's "Duplicate order sent." -> already placed; ``DDoSProtection`` /
  ``RateLimitExceeded`` (429/418) -> rate limited with the answer's ``Retry-After``; ``InvalidNonce`` and a
  connection refused before sending -> not sent; any other ``ExchangeError`` (invalid order, insufficient
  funds, authentication...) -> a definitive refusal; ``RequestTimeout``, ``ExchangeNotAvailable`` (5xx, dropped
  connection) and other ``OperationFailed`` -> ambiguous (the order is in flight).
* **Updates.** ``watch_orders`` (ccxt.pro) where the exchange has it and its profile allows it, else (and while
  it fails) REST polling; fills come from ``fetch_my_trades`` (by order where the venue filters by order) with
  the venue's trade ids. Coinbase and Kraken poll: their private websockets (Coinbase ``user`` channel with a
  JWT, Kraken ``ws-auth`` with a REST-issued token) are not exercised by the tests.
* **Per exchange** (:data:`PROFILES`, one row per exchange id, no ``if`` on the id): ccxt options, the client
  order id and trigger parameters, time in force, GTD encoding, how an order is found by client order id and
  how its fills are fetched, one request at a time (Kraken: its nonces must arrive in order). An exchange without
  a row gets :data:`DEFAULT_PROFILE` (GTC only, search of the open and closed orders).
* **Numbers.** Quantities and prices are sent as decimal strings; ccxt returns floats, read back through
  ``str`` (the shortest text of the double, exact for the venue's decimal strings of up to 15 digits).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import ccxt.pro as ccxtpro
from ccxt.base import errors as ccxt_errors
from ccxt.base.decimal_to_precision import DECIMAL_PLACES, SIGNIFICANT_DIGITS

from tradewire_common.config import Config, InstrumentSpec, VenueConfig
from tradewire_common.ids import instrument_id
from tradewire_common.schemas import Liquidity, OrderType, Side, SubmitOrder, TimeInForce
from tradewire_common.urls import RESTRICTED_OPTIONS as BASE_OPTIONS
from tradewire_common.urls import ccxt_config, rewrite_urls
from tradewire_execution.live.base import (
    CAP_GTD,
    CAP_POST_ONLY,
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
from tradewire_execution.live.credentials import Credentials, default_prefix, load_credentials
from tradewire_execution.live.guard import assert_loopback, walk_urls
from tradewire_execution.live.ratelimit import TokenBucket, parse_retry_after
from tradewire_execution.venue import (
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

def _iso_ms(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}")


def _kraken_client_id(coid: str) -> str:
    """Kraken takes a ``cl_ord_id`` that is a UUID (36 or 32 hex characters) or free text of at most 18
    characters; a longer id (Tradewire's are 27) is sent as the first 32 hex digits of its SHA-256."""
    if _UUID.fullmatch(coid) or (len(coid) <= 18 and coid.isascii() and coid.isprintable()):
        return coid
    return hashlib.sha256(coid.encode()).hexdigest()[:32]


def _kraken_deadline(order: SubmitOrder, grace_s: float) -> dict[str, Any]:
    """``deadline``: the matching engine refuses the create after it, so an order still unknown to Kraken once
    the in-flight grace has passed can no longer appear (Kraken takes 2..60 s ahead)."""
    ahead = min(60.0, max(2.0, grace_s))
    return {"deadline": datetime.fromtimestamp(time.time() + ahead, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}


def _coinbase_market(order: SubmitOrder, _grace_s: float) -> dict[str, Any]:
    """Coinbase sizes a ccxt market buy in quote currency; Tradewire's quantity is base currency."""
    if order.order_type is not OrderType.MARKET or order.side is not Side.BUY:
        return {}
    return {"createMarketBuyOrderRequiresPrice": False,
            "order_configuration": {"market_market_ioc": {"base_size": str(order.quantity)}}}


@dataclass(frozen=True)
class ExchangeProfile:
    """How the adapter talks to one exchange through ccxt (the module docstring's "per exchange")."""

    #: Time in force taken on limit orders (ccxt has no ``has`` flag for it); ``CAP_GTD`` needs ``gtd_params``.
    time_in_force: frozenset[str] = frozenset({CAP_GTC})
    #: Post-only orders (``postOnly``) are taken; None: as ``has.createPostOnlyOrder`` says.
    post_only: bool | None = None
    #: ccxt's parameter carrying our client order id (Coinbase's ccxt ignores ``clientOrderId``).
    client_id_param: str = "clientOrderId"
    #: Our client order id -> the venue's (a format the venue takes); None: the same.
    client_id_of: Callable[[str], str] | None = None
    #: ccxt's parameter of a stop order's trigger price on spot (Kraken's ccxt ignores ``triggerPrice``).
    trigger_param: str = "triggerPrice"
    #: expire time (ns) -> ccxt params of a GTD order.
    gtd_params: Callable[[int], dict[str, Any]] | None = None
    #: Extra ccxt params of an order (a venue's own wire encoding), given the in-flight grace (s).
    order_params: Callable[[SubmitOrder, float], dict[str, Any]] | None = None
    #: ``fetch_order`` takes ``{"clientOrderId": ..}`` (a lookup by client order id at the venue).
    fetch_by_client_id: bool = False
    #: Else the order is searched in these ccxt listings (method, ``has`` flag) ...
    search: tuple[tuple[str, str], ...] = (("fetch_open_orders", "fetchOpenOrders"),
                                           ("fetch_closed_orders", "fetchClosedOrders"))
    #: ... with ``{"clientOrderId": ..}`` passed as a filter the venue applies.
    search_filters_by_client_id: bool = False
    #: ``fetch_my_trades`` param filtering by venue order id ("" = fetch by time and filter here).
    trades_order_param: str = ""
    #: Use ``fetch_order_trades`` when ``has`` says so (Kraken's needs the trade ids: no).
    order_trades: bool = True
    #: Follow ccxt.pro ``watch_orders`` when ``has`` says so.
    watch_orders: bool = True
    #: One request at a time: Kraken refuses a nonce lower than the key's last one (``EAPI:Invalid nonce``), so
    #: a poll and a create sent together would make one of them fail and be sent again.
    sequential: bool = False
    #: ccxt options of the client (beyond ``tradewire_common.urls.ccxt_config``).
    options: Mapping[str, Any] = field(default_factory=dict)


_BINANCE = ExchangeProfile(time_in_force=frozenset({CAP_GTC, CAP_IOC, CAP_FOK}), fetch_by_client_id=True,
                           trades_order_param="orderId")
#: One row per ccxt exchange id.
PROFILES: Mapping[str, ExchangeProfile] = {
    "binance": _BINANCE,
    "binanceus": _BINANCE,
    "coinbase": ExchangeProfile(
        time_in_force=frozenset({CAP_GTC, CAP_IOC, CAP_FOK, CAP_GTD}), client_id_param="client_order_id",
        gtd_params=lambda ns: {"timeInForce": "GTD", "end_time": _iso_ms(ns)}, order_params=_coinbase_market,
        search=(("fetch_orders", "fetchOrders"),), trades_order_param="order_id", watch_orders=False),
    "kraken": ExchangeProfile(
        time_in_force=frozenset({CAP_GTC, CAP_IOC, CAP_GTD}), post_only=True, trigger_param="stopLossPrice",
        gtd_params=lambda ns: {"timeInForce": "GTD", "expiretm": str(ns // 1_000_000_000)},
        client_id_of=_kraken_client_id, order_params=_kraken_deadline,
        search_filters_by_client_id=True, order_trades=False, watch_orders=False, sequential=True),
}
DEFAULT_PROFILE = ExchangeProfile()
#: Options that keep ccxt's start-up to the spot markets, and its own retries off.
RESTRICTED_OPTIONS: Mapping[str, Any] = {**BASE_OPTIONS, "warnOnFetchOpenOrdersWithoutSymbol": False}
_STATUS: Mapping[str, OrderStatus] = {"open": "open", "closed": "filled", "canceled": "canceled",
                                      "cancelled": "canceled", "expired": "expired", "rejected": "rejected"}


def instrument_symbol(symbol: str) -> str:
    """``BTC/USDT`` -> ``BTCUSDT`` (the symbol part of the instrument id)."""
    base, _, quote = symbol.partition("/")
    return (base + quote.split(":")[0]).replace(" ", "")


def make_exchange(
    exchange_id: str, *, credentials: Credentials | None = None, sandbox: bool = False, url_override: str = "",
    timeout_ms: int = 10_000, options: Mapping[str, Any] | None = None,
) -> Any:
    """A ccxt.pro exchange with market loading restricted to spot and ccxt's retries and rate limiter off."""
    cls = getattr(ccxtpro, exchange_id, None)
    if cls is None:
        raise ValueError(f"unknown ccxt exchange id {exchange_id!r} (or not in ccxt.pro)")
    profile = PROFILES.get(exchange_id, DEFAULT_PROFILE)
    config: dict[str, Any] = {"enableRateLimit": False, "timeout": timeout_ms,
                              **ccxt_config(exchange_id, {**RESTRICTED_OPTIONS, **profile.options, **(options or {})})}
    if credentials is not None:
        config.update(credentials.as_ccxt())
    exchange = cls(config)
    if sandbox and exchange.urls.get("test"):
        exchange.set_sandbox_mode(True)
    elif sandbox and not url_override:
        raise ValueError(f"{exchange_id} has no testnet in ccxt (Coinbase's Advanced Trade sandbox is static and "
                         "serves no products; Kraken spot has none): give the venue a url_override (a test venue) "
                         "or use mode = 'live'")
    if url_override:
        exchange.urls["api"] = rewrite_urls(exchange.urls["api"], url_override)
    return exchange


def _dec(value: Any) -> Decimal:
    if value is None:
        return Decimal(0)
    return Decimal(str(value))


def _ns(ms: Any) -> int:
    return int(ms) * 1_000_000 if ms else 0


def _step(value: Any, mode: int) -> Decimal | None:
    """A ccxt precision as a step (``precisionMode`` TICK_SIZE: the step itself; DECIMAL_PLACES: 10**-n)."""
    if value is None:
        return None
    if mode == DECIMAL_PLACES or mode == SIGNIFICANT_DIGITS:
        return Decimal(1).scaleb(-int(value))
    return _dec(value)


class CcxtVenue(LiveVenueAdapter):
    """A ccxt exchange as a live venue (see the module docstring)."""

    def __init__(
        self, name: str, exchange: Any, symbols: Iterable[str], *, credentials: Credentials | None = None,
        limiter: TokenBucket | None = None, websocket: bool = True, in_flight_grace_s: float = 15.0,
        poll_interval_s: float = 2.0,
    ) -> None:
        self.exchange = exchange
        self.exchange_id: str = exchange.id
        self.symbols = tuple(symbols)
        #: instrument id -> ccxt symbol
        self.symbol_of = {instrument_id(instrument_symbol(s), name): s for s in self.symbols}
        self.instrument_of = {s: i for i, s in self.symbol_of.items()}
        has = exchange.has
        self.profile = PROFILES.get(self.exchange_id, DEFAULT_PROFILE)
        caps = {CAP_PARTIAL_FILLS, *self.profile.time_in_force}
        if self.profile.gtd_params is None:
            caps.discard(CAP_GTD)
        if has.get("createMarketOrder", True):
            caps.add(CAP_MARKET)
        if has.get("createLimitOrder", True):
            caps.add(CAP_LIMIT)
        if has.get("createStopMarketOrder"):
            caps.add(CAP_STOP)
        if has.get("createStopLimitOrder"):
            caps.add(CAP_STOP_LIMIT)
        if self.profile.post_only or (self.profile.post_only is None and has.get("createPostOnlyOrder")):
            caps.add(CAP_POST_ONLY)
        super().__init__(name, capabilities=caps, limiter=limiter, credentials=credentials,
                         in_flight_grace_s=in_flight_grace_s, poll_interval_s=poll_interval_s,
                         websocket=websocket and self.profile.watch_orders and bool(has.get("watchOrders")))
        self.markets_loaded = False
        self._one_at_a_time = asyncio.Lock() if self.profile.sequential else None
        #: venue client order id -> ours (venues whose ids have another format, see ``client_id_of``)
        self._coid_by_venue_coid: dict[str, str] = {}

    # --- connection and markets ----------------------------------------------------------------------

    def _check_urls(self) -> None:
        assert_loopback(walk_urls(self.exchange.urls.get("api")), f"venue {self.name} ({self.exchange_id})")

    async def connect(self) -> None:
        self._check_urls()
        if not self.credentials.present:
            log.warning("venue %s: no credentials (%s_API_KEY / _API_SECRET); private calls will fail", self.name,
                        "the configured prefix")
        await self._call(self._guarded(self.exchange.load_markets))
        missing = [s for s in self.symbols if s not in self.exchange.markets]
        if missing:
            raise RuntimeError(f"venue {self.name}: {self.exchange_id} has no spot market {', '.join(missing)}")
        self.markets_loaded = True
        log.info("venue %s: %s markets loaded (%d spot), trading %s", self.name, self.exchange_id,
                 len(self.exchange.markets), ", ".join(self.symbols))

    async def disconnect(self) -> None:
        try:
            await self.exchange.close()
        except Exception as exc:  # closing twice, or a socket already gone
            log.debug("venue %s: close: %s", self.name, exc)

    def position_keys(self) -> dict[str, str]:
        return {i: s.partition("/")[0] for i, s in self.symbol_of.items()}

    def instrument_specs(self) -> list[InstrumentSpec]:
        """Risk's ``InstrumentSpec`` of each configured symbol, from the loaded markets' precision and limits."""
        mode = self.exchange.precisionMode
        out = []
        for iid, symbol in self.symbol_of.items():
            market = self.exchange.markets[symbol]
            precision, limits = market.get("precision", {}), market.get("limits", {})
            step = _step(precision.get("amount"), mode) or Decimal("0.00000001")
            tick = _step(precision.get("price"), mode) or Decimal("0.00000001")
            amount, cost = limits.get("amount", {}) or {}, limits.get("cost", {}) or {}
            min_qty = _dec(amount.get("min")) if amount.get("min") else step
            out.append(InstrumentSpec(
                id=iid, quantity_step=step, min_quantity=max(min_qty, step), price_tick=tick,
                max_quantity=_dec(amount["max"]) if amount.get("max") else None,
                min_notional=_dec(cost["min"]) if cost.get("min") else None,
                max_notional=_dec(cost["max"]) if cost.get("max") else None))
        return out

    # --- errors ----------------------------------------------------------------------------------------

    def _translate(self, exc: Exception) -> Exception:
        text = self.scrub(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, ccxt_errors.OrderNotFound):
            return OrderNotFoundAtVenue(text)
        if isinstance(exc, ccxt_errors.DuplicateOrderId) or "Duplicate order sent" in str(exc):
            return DuplicateClientOrderId(text)
        if isinstance(exc, ccxt_errors.DDoSProtection | ccxt_errors.RateLimitExceeded):
            headers = self.exchange.last_response_headers or {}
            retry = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
            return RateLimited(text, retry_after_s=parse_retry_after(retry))
        if isinstance(exc, ccxt_errors.InvalidNonce):
            return NotSent(text)
        if isinstance(exc, ccxt_errors.ExchangeNotAvailable) and isinstance(
                exc.__cause__, aiohttp.ClientConnectorError):
            return NotSent(text)  # never connected: nothing was sent
        if isinstance(exc, ccxt_errors.ExchangeError) and not isinstance(exc, ccxt_errors.OperationFailed):
            return VenueRefused(text)
        return Ambiguous(text)

    def _guarded(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        async def call() -> Any:
            try:
                async with self._one_at_a_time or contextlib.nullcontext():
                    return await fn(*args, **kwargs)
            except asyncio.CancelledError:
                raise
            except ccxt_errors.BaseError as exc:
                translated = self._translate(exc)
                if isinstance(exc, ccxt_errors.InvalidNonce):
                    await self._resync_time()
                raise translated from None
        return call

    async def _resync_time(self) -> None:
        try:
            await self.exchange.load_time_difference()
        except Exception as exc:
            log.warning("venue %s: time sync failed: %s", self.name, self.scrub(str(exc)))

    # --- mapping ---------------------------------------------------------------------------------------

    def _venue_coid(self, coid: str) -> str:
        """Our client order id as the venue knows it (remembered for the way back)."""
        if self.profile.client_id_of is None:
            return coid
        venue_coid = self.profile.client_id_of(coid)
        self._coid_by_venue_coid[venue_coid] = coid
        return venue_coid

    def _our_coid(self, venue_coid: str) -> str:
        if self.profile.client_id_of is None or not venue_coid:
            return venue_coid
        if venue_coid not in self._coid_by_venue_coid:
            for tracked in self.tracked_orders():
                self._venue_coid(tracked.order.client_order_id)
        return self._coid_by_venue_coid.get(venue_coid, venue_coid)

    def _to_order(self, raw: Mapping[str, Any]) -> VenueOrder:
        status = _STATUS.get(str(raw.get("status") or "open"), "open")
        info = raw.get("info") or {}
        if isinstance(info, dict) and str(info.get("status") or "").lower() == "expired":
            status = "expired"  # Coinbase's EXPIRED is "canceled" in ccxt
        side = raw.get("side")
        kind = {"market": OrderType.MARKET, "limit": OrderType.LIMIT}.get(str(raw.get("type") or ""))
        symbol = raw.get("symbol") or ""
        reason = str(info.get("rejectReason") or info.get("reject_reason") or "") if isinstance(info, dict) else ""
        return VenueOrder(
            client_order_id=self._our_coid(str(raw.get("clientOrderId") or "")),
            venue_order_id=str(raw.get("id") or ""),
            status=status, filled_qty=_dec(raw.get("filled")),
            symbol=instrument_symbol(symbol) if symbol else "", side=Side(side.upper()) if side else None,
            quantity=_dec(raw["amount"]) if raw.get("amount") is not None else None, order_type=kind,
            limit_price=_dec(raw["price"]) if raw.get("price") else None,
            ts_ns=_ns(raw.get("lastTradeTimestamp") or raw.get("timestamp")), reason=reason)

    def _to_fill(self, raw: Mapping[str, Any], client_order_id: str = "") -> VenueFill:
        fee = raw.get("fee") or {}
        symbol = raw.get("symbol") or ""
        return VenueFill(
            trade_id=str(raw["id"]), venue_order_id=str(raw.get("order") or ""), client_order_id=client_order_id,
            symbol=instrument_symbol(symbol) if symbol else "", side=Side(str(raw["side"]).upper()),
            quantity=_dec(raw["amount"]), price=_dec(raw["price"]), fee=abs(_dec(fee.get("cost"))),
            fee_currency=str(fee.get("currency") or ""),
            liquidity=Liquidity.MAKER if raw.get("takerOrMaker") == "maker" else Liquidity.TAKER,
            ts_ns=_ns(raw.get("timestamp")))

    def _symbol(self, order: SubmitOrder) -> str:
        symbol = self.symbol_of.get(order.instrument_id)
        if symbol is None:
            raise VenueRefused(f"venue {self.name} does not trade {order.instrument_id} (symbols: "
                               f"{', '.join(self.symbols)})")
        return symbol

    # --- the venue calls -------------------------------------------------------------------------------

    async def venue_place(self, order: SubmitOrder) -> VenueOrder:
        self._check_urls()
        symbol = self._symbol(order)
        profile = self.profile
        params: dict[str, Any] = {profile.client_id_param: self._venue_coid(order.client_order_id)}
        kind = "limit" if order.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) else "market"
        price = str(order.limit_price) if order.limit_price is not None else None
        if order.trigger_price is not None:
            params[profile.trigger_param] = str(order.trigger_price)
        if kind == "limit" and order.time_in_force is TimeInForce.GTD:
            if profile.gtd_params is None or not order.expire_time_ns:
                raise VenueRefused(f"venue {self.name}: a GTD order needs expire_time_ns and a venue that takes it")
            params.update(profile.gtd_params(order.expire_time_ns))
        elif kind == "limit" and order.time_in_force is not TimeInForce.GTC:
            params["timeInForce"] = order.time_in_force.value
        if getattr(order, "post_only", False):
            params["postOnly"] = True
        if profile.order_params is not None:
            params.update(profile.order_params(order, self.in_flight_grace_ns / 1e9))
        raw = await self._guarded(self.exchange.create_order, symbol, kind, order.side.value.lower(),
                                  str(order.quantity), price, params)()
        answer = self._to_order(raw)
        if not answer.client_order_id or answer.client_order_id != order.client_order_id:
            # some venues answer with the id only (Kraken: txid; Coinbase: its success_response)
            answer = VenueOrder(**{**_fields(answer), "client_order_id": order.client_order_id})
        return answer

    async def venue_cancel(self, order: SubmitOrder, venue_order_id: str) -> VenueOrder:
        symbol = self._symbol(order)
        params = {} if venue_order_id else {"clientOrderId": self._venue_coid(order.client_order_id)}
        raw = await self._guarded(self.exchange.cancel_order, venue_order_id or None, symbol, params)()
        answer = self._to_order(raw)
        if answer.status == "open" or not answer.venue_order_id:  # some venues only acknowledge the request
            return await self.venue_order(order)
        return answer

    async def venue_order(self, order: SubmitOrder) -> VenueOrder:
        symbol = self._symbol(order)
        coid = order.client_order_id
        if self.profile.fetch_by_client_id:
            raw = await self._guarded(self.exchange.fetch_order, None, symbol,
                                      {"clientOrderId": self._venue_coid(coid)})()
            return self._to_order(raw)
        tracked = self.tracked(coid)
        if tracked is not None and tracked.venue_order_id:
            raw = await self._guarded(self.exchange.fetch_order, tracked.venue_order_id, symbol)()
            return self._to_order(raw)
        # no lookup by client order id: search the venue's order listings
        venue_coid = self._venue_coid(coid)
        params = {"clientOrderId": venue_coid} if self.profile.search_filters_by_client_id else {}
        for method, flag in self.profile.search:
            if not self.exchange.has.get(flag):
                continue
            for raw in await self._guarded(getattr(self.exchange, method), symbol, None, None, params)():
                if raw.get("clientOrderId") == venue_coid:
                    return self._to_order(raw)
        raise OrderNotFoundAtVenue(f"{self.exchange_id} has no order with client order id {coid}")

    async def venue_open_orders(self) -> list[VenueOrder]:
        out: list[VenueOrder] = []
        for symbol in self.symbols:
            out += [self._to_order(raw) for raw in await self._guarded(self.exchange.fetch_open_orders, symbol)()]
        return out

    async def venue_order_fills(self, order: SubmitOrder, venue_order_id: str) -> list[VenueFill]:
        symbol = self._symbol(order)
        if self.profile.trades_order_param and venue_order_id:
            raws = await self._guarded(self.exchange.fetch_my_trades, symbol, None, None,
                                       {self.profile.trades_order_param: venue_order_id})()
        elif self.profile.order_trades and self.exchange.has.get("fetchOrderTrades") and venue_order_id:
            raws = await self._guarded(self.exchange.fetch_order_trades, venue_order_id, symbol)()
        else:
            raws = await self._guarded(self.exchange.fetch_my_trades, symbol, order.ts_event // 1_000_000 or None)()
        return [self._to_fill(r, order.client_order_id) for r in raws
                if not venue_order_id or str(r.get("order") or "") == venue_order_id]

    async def venue_fills(self, since_ns: int) -> list[VenueFill]:
        out: list[VenueFill] = []
        for symbol in self.symbols:
            raws = await self._guarded(self.exchange.fetch_my_trades, symbol, since_ns // 1_000_000 or None)()
            out += [self._to_fill(r) for r in raws]
        return out

    async def venue_balances(self) -> dict[str, Decimal]:
        raw = await self._guarded(self.exchange.fetch_balance)()
        return {currency: _dec(amount) for currency, amount in (raw.get("total") or {}).items()
                if amount is not None}

    async def venue_stream(self) -> AsyncIterator[tuple[list[VenueOrder], list[VenueFill]]]:
        if not self.exchange.has.get("watchOrders"):
            raise NotImplementedError
        self._check_urls()
        while True:
            raws = await self._guarded(self.exchange.watch_orders)()
            orders = [self._to_order(r) for r in raws if not r.get("symbol") or r.get("symbol") in self.instrument_of]
            yield orders, []


def _fields(order: VenueOrder) -> dict[str, Any]:
    return {f: getattr(order, f) for f in order.__struct_fields__}


def build(venue: VenueConfig, config: Config) -> CcxtVenue:
    """The ``ccxt`` adapter of a configured venue (``tradewire_execution.venues``)."""
    exchange_id = venue.exchange or venue.name.lower()
    credentials = load_credentials(venue.credentials_env_prefix or default_prefix(venue.name))
    exchange = make_exchange(exchange_id, credentials=credentials, sandbox=venue.mode == "sandbox",
                             url_override=venue.url_override, options={"adjustForTimeDifference": True})
    rate = venue.rate_limit_per_s or (1000.0 / float(exchange.rateLimit) if exchange.rateLimit else 0.0)
    return CcxtVenue(venue.name, exchange, venue.symbols, credentials=credentials,
                     limiter=TokenBucket(rate, burst=max(1.0, rate)), websocket=venue.websocket,
                     in_flight_grace_s=venue.in_flight_grace_s, poll_interval_s=venue.poll_interval_s)
