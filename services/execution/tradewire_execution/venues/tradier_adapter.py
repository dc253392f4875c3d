"""Tradier (US stocks) with plain ``httpx`` against its REST API, on the live venue framework.

Endpoints: the **sandbox** (``https://sandbox.tradier.com/v1``) unless the venue's ``mode`` is ``live``
(``https://api.tradier.com/v1``, which also needs ``--live``); ``url_override`` replaces the base (tests: the
fake on 127.0.0.1). Credentials: ``{prefix}_API_KEY`` is the access token (``Authorization: Bearer``), and
``{prefix}_UID`` the account number; neither is ever logged.

**Tradier's JSON quirks** are handled in one place (:func:`items`): one item comes as an object, several as a
list (``quotes.quote``, ``orders.order``, ``positions.position``, ``history.day``, ``series.data``), nothing as the
*string* ``"null"`` (``{"orders": "null"}``) or ``null`` (``{"history": null}``). Errors are
``{"errors": {"error": "..." | [...]}}`` (400: a definitive refusal), a 401 is the plain text
``Invalid Access Token``; 429 carries ``Retry-After`` (else the ``X-Ratelimit-Expiry`` epoch in ms is used).

**Orders** are form-encoded equity orders: ``side`` buy/sell, ``type`` market/limit/stop/stop_limit, ``duration``
day/gtc (Tradier has no IOC/FOK for equities: such orders are refused before sending), whole shares, and the
client order id as the order's ``tag`` (letters, digits and ``-``). Tradier does **not** enforce unique tags and
answers a create with nothing but its id, so a create is never sent twice: after a timeout or 5xx the order is in
flight and is found by listing the account's orders and matching the tag (the framework's in-flight resolution).
Tradier has no attached exits here (no ``CAP_BRACKET``): execution's exit emulator keeps them.
No post-only and no GTD at Tradier (durations day/gtc/pre/post): such orders are refused before sending.
**Replace** is cancel-then-new (:mod:`tradewire_execution.live.replace`): Tradier's modify (``PUT``) keeps the
order's tag and cannot change its quantity, while a Tradewire replacement has a new client order id (the tag).

**Fills**: Tradier reports per order only the cumulative ``exec_quantity``, ``avg_fill_price`` and the last fill
(``last_fill_quantity``/``last_fill_price``), no execution ids, and the sandbox has no account stream: orders are
polled (``poll_interval_s``). Each growth of an order's executed quantity is one fill, identified by the order
and its cumulative quantity (``<order id>:<exec qty>``); its price is the last fill's when that accounts for the
whole growth, else the volume-weighted price of the growth from the average fill prices (exact when both
snapshots were seen; after a restart the average of the order so far). ``venue_fills`` (the account's fill
history) is therefore empty: reconciliation relies on the orders it follows and on the positions.

**Market data** (:class:`TradierData`): quotes, daily/weekly/monthly history, and time and sales (1/5/15-minute
bars; Tradier's times are America/New_York, its epoch ``timestamp`` is used).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx

from tradewire_common.ids import split_instrument_id
from tradewire_common.schemas import OrderType, Side, SubmitOrder, TimeInForce
from tradewire_execution.live.base import (
    ZERO,
    LiveVenueAdapter,
    OrderNotFoundAtVenue,
    OrderStatus,
    VenueFill,
    VenueOrder,
    VenueRefused,
)
from tradewire_execution.live.credentials import Credentials
from tradewire_execution.live.guard import assert_loopback
from tradewire_execution.live.http import VenueHttp, retry_after_header
from tradewire_execution.live.ratelimit import TokenBucket, parse_retry_after
from tradewire_execution.live.wire import cumulative_trade_id, iso_ns, venue_decimal
from tradewire_execution.venue import (
    CAP_DAY,
    CAP_GTC,
    CAP_LIMIT,
    CAP_MARKET,
    CAP_PARTIAL_FILLS,
    CAP_STOP,
    CAP_STOP_LIMIT,
)

log = logging.getLogger(__name__)

SANDBOX_URL = "https://sandbox.tradier.com/v1"
LIVE_URL = "https://api.tradier.com/v1"
CAPABILITIES = frozenset({CAP_MARKET, CAP_LIMIT, CAP_STOP, CAP_STOP_LIMIT, CAP_PARTIAL_FILLS, CAP_GTC, CAP_DAY})
#: Tradier's published limit for trading and account calls: 120 requests a minute.
DEFAULT_RATE_PER_S = 2.0
STATUS: dict[str, OrderStatus] = {"filled": "filled", "canceled": "canceled", "expired": "expired",
                                  "rejected": "rejected", "error": "rejected"}
TYPES = {OrderType.MARKET: "market", OrderType.LIMIT: "limit", OrderType.STOP_MARKET: "stop",
         OrderType.STOP_LIMIT: "stop_limit"}


def items(node: Any, key: str) -> list[dict[str, Any]]:
    """``node[key]`` as a list, whatever Tradier sent: an object, a list, ``null`` or the string ``"null"``."""
    if not isinstance(node, dict):
        return []
    value = node.get(key)
    if value is None or value == "null":
        return []
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return [value] if isinstance(value, dict) else []


def error_text(response: httpx.Response) -> str:
    """Tradier's error: ``errors.error`` (a string or a list), else the body's text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500]
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, dict):
        error = errors.get("error")
        if isinstance(error, list):
            return "; ".join(str(e) for e in error)
        if error is not None:
            return str(error)
    fault = body.get("fault") if isinstance(body, dict) else None
    if isinstance(fault, dict):
        return str(fault.get("faultstring", fault))
    return response.text.strip()[:500]


def retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After``, else the ``X-Ratelimit-Expiry`` epoch in ms of the window's end."""
    wait = retry_after_header(headers)
    if wait is None and headers.get("X-Ratelimit-Expiry", "").isdigit():
        expiry_s = int(headers["X-Ratelimit-Expiry"]) / 1000
        wait = parse_retry_after(str(max(0.0, expiry_s - time.time())))
    return wait


class TradierHttp(VenueHttp):
    """The HTTP side shared by orders and market data: bearer auth, Tradier's errors and rate limit headers."""

    def __init__(self, base_url: str, token: str, *, timeout_s: float = 10.0, scrub: Callable[[str], str] = str,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__("Tradier", base_url, timeout_s=timeout_s, scrub=scrub, error_text=error_text,
                         retry_after=retry_after, transport=transport,
                         headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})

    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None,  # type: ignore[override]
                      form: dict[str, str] | None = None) -> Any:
        return await super().request(method, path, params=params, data=form)


@dataclass(frozen=True)
class TradierBar:
    ts_ns: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


class TradierData:
    """Tradier market data: quotes, history, time and sales."""

    def __init__(self, http: TradierHttp) -> None:
        self.http = http

    async def quotes(self, symbols: Iterable[str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
        """``({symbol: quote}, unmatched symbols)``; a quote keeps Tradier's fields (``bid``, ``ask``, ``last``...)."""
        body = await self.http.request("GET", "/markets/quotes", params={"symbols": ",".join(symbols)})
        quotes = (body or {}).get("quotes") or {}
        found = {q["symbol"]: q for q in items(quotes, "quote")}
        unmatched = quotes.get("unmatched_symbols") if isinstance(quotes, dict) else None
        missing = unmatched.get("symbol", []) if isinstance(unmatched, dict) else []
        return found, [missing] if isinstance(missing, str) else list(missing)

    async def history(self, symbol: str, start: date, end: date, interval: str = "daily") -> list[TradierBar]:
        """Daily/weekly/monthly bars, oldest first (a bar's time is its date at 00:00 UTC)."""
        body = await self.http.request("GET", "/markets/history", params={
            "symbol": symbol, "interval": interval, "start": start.isoformat(), "end": end.isoformat()})
        out = []
        for day in items((body or {}).get("history"), "day"):
            ts = datetime.fromisoformat(day["date"]).replace(tzinfo=UTC)
            out.append(TradierBar(iso_ns(ts.isoformat()), venue_decimal(day["open"]), venue_decimal(day["high"]),
                                  venue_decimal(day["low"]), venue_decimal(day["close"]),
                                  venue_decimal(day.get("volume", 0))))
        return out

    async def timesales(self, symbol: str, start: str, end: str, interval: str = "1min") -> list[TradierBar]:
        """Intraday bars (``start``/``end`` as Tradier takes them: ``YYYY-MM-DD HH:MM`` New York time)."""
        body = await self.http.request("GET", "/markets/timesales", params={
            "symbol": symbol, "interval": interval, "start": start, "end": end, "session_filter": "all"})
        return [TradierBar(int(row["timestamp"]) * 1_000_000_000, venue_decimal(row["open"]),
                           venue_decimal(row["high"]), venue_decimal(row["low"]), venue_decimal(row["close"]),
                           venue_decimal(row.get("volume", 0)))
                for row in items((body or {}).get("series"), "data")]


class TradierAdapter(LiveVenueAdapter):
    """Tradier's brokerage API (see the module docstring)."""

    spot = True  # a reduce-only SELL is a plain "sell" of shares held (never "sell_short")

    def __init__(
        self, name: str, *, credentials: Credentials, account: str, symbols: Iterable[str] = (), live: bool = False,
        url_override: str = "", limiter: TokenBucket | None = None, in_flight_grace_s: float = 15.0,
        poll_interval_s: float = 2.0, request_timeout_s: float = 10.0, wall_ns: Callable[[], int] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        extra: dict[str, Any] = {"wall_ns": wall_ns} if wall_ns is not None else {}
        super().__init__(name, capabilities=CAPABILITIES, limiter=limiter or TokenBucket(DEFAULT_RATE_PER_S),
                         credentials=credentials, in_flight_grace_s=in_flight_grace_s,
                         poll_interval_s=poll_interval_s, websocket=False, **extra)
        if not account:
            raise ValueError(f"venue {name}: the Tradier account number is missing")
        self.account = account
        self.base_url = url_override.rstrip("/") or (LIVE_URL if live else SANDBOX_URL)
        self.symbols = frozenset(symbols)
        self.http = TradierHttp(self.base_url, credentials.api_key, timeout_s=request_timeout_s, scrub=self.scrub,
                                transport=transport)
        self.data = TradierData(self.http)
        #: order id -> (cumulative quantity, cumulative value) of the fills published
        self._value: dict[str, tuple[Decimal, Decimal]] = {}

    def scrub(self, text: str) -> str:
        text = super().scrub(text)
        return text.replace(self.account, "***") if getattr(self, "account", "") else text

    def position_keys(self) -> dict[str, str]:
        return {f"{symbol}.{self.name}": symbol for symbol in sorted(self.symbols)}

    async def connect(self) -> None:
        assert_loopback([self.base_url], f"venue {self.name}")

    async def disconnect(self) -> None:
        await self.http.close()

    @property
    def _orders_path(self) -> str:
        return f"/accounts/{self.account}/orders"

    # --- orders -------------------------------------------------------------------------------------------

    def refusal(self, order: SubmitOrder) -> str:
        reason = super().refusal(order)
        if reason:
            return reason
        symbol, _venue = split_instrument_id(order.instrument_id)
        if self.symbols and symbol not in self.symbols:
            return f"venue {self.name}: {symbol} is not among the configured symbols"
        if order.time_in_force not in (TimeInForce.DAY, TimeInForce.GTC):
            return f"venue {self.name}: Tradier equity orders are DAY or GTC, not {order.time_in_force}"
        if order.quantity != order.quantity.to_integral_value():
            return f"venue {self.name}: Tradier trades whole shares, not {order.quantity}"
        if not all(c.isalnum() or c == "-" for c in order.client_order_id):
            return f"venue {self.name}: the client order id must be letters, digits and '-' (a Tradier tag)"
        return ""

    def order_form(self, order: SubmitOrder) -> dict[str, str]:
        symbol, _venue = split_instrument_id(order.instrument_id)
        form = {"class": "equity", "symbol": symbol, "side": "buy" if order.side is Side.BUY else "sell",
                "quantity": format(order.quantity.normalize(), "f"), "type": TYPES[order.order_type],
                "duration": order.time_in_force.value.lower(), "tag": order.client_order_id}
        if order.limit_price is not None:
            form["price"] = str(order.limit_price)
        if order.trigger_price is not None:
            form["stop"] = str(order.trigger_price)
        return form

    async def venue_place(self, order: SubmitOrder) -> VenueOrder:
        body = await self.http.request("POST", self._orders_path, form=self.order_form(order))
        placed = (body or {}).get("order") or {}
        if placed.get("status") != "ok" or "id" not in placed:
            raise VenueRefused(f"Tradier did not place the order: {self.scrub(str(body))[:300]}")
        return VenueOrder(client_order_id=order.client_order_id, venue_order_id=str(placed["id"]), status="open",
                          ts_ns=self.wall_ns())

    async def venue_cancel(self, order: SubmitOrder, venue_order_id: str) -> VenueOrder:
        if not venue_order_id:
            venue_order_id = (await self.venue_order(order)).venue_order_id
        try:
            await self.http.request("DELETE", f"{self._orders_path}/{venue_order_id}")
        except VenueRefused as exc:  # "Order cannot be canceled": closed meanwhile; its state tells how
            raise OrderNotFoundAtVenue(str(exc)) from None
        return await self._get(order.client_order_id, venue_order_id)

    async def _get(self, coid: str, venue_order_id: str) -> VenueOrder:
        try:
            body = await self.http.request("GET", f"{self._orders_path}/{venue_order_id}")
        except VenueRefused as exc:
            raise OrderNotFoundAtVenue(str(exc)) from None
        return self.parse_order((body or {}).get("order") or {}, coid)

    async def venue_order(self, order: SubmitOrder) -> VenueOrder:
        tracked = self.tracked(order.client_order_id)
        if tracked is not None and tracked.venue_order_id:
            return await self._get(order.client_order_id, tracked.venue_order_id)
        matches = [o for o in await self._all_orders() if o.get("tag") == order.client_order_id]
        if not matches:
            raise OrderNotFoundAtVenue(f"Tradier has no order tagged {order.client_order_id}")
        if len(matches) > 1:  # tags are not unique at Tradier: the first one placed is ours, the others are alerts
            log.error("venue %s: %d orders tagged %s at Tradier", self.name, len(matches), order.client_order_id)
        first = min(matches, key=lambda o: int(o["id"]))
        return self.parse_order(first, order.client_order_id)

    async def _all_orders(self) -> list[dict[str, Any]]:
        body = await self.http.request("GET", self._orders_path)
        return items((body or {}).get("orders"), "order")

    async def venue_open_orders(self) -> list[VenueOrder]:
        return [self.parse_order(o, str(o.get("tag", ""))) for o in await self._all_orders()
                if o.get("status") in ("open", "partially_filled", "pending")
                and (not self.symbols or o.get("symbol") in self.symbols)]

    def parse_order(self, raw: dict[str, Any], coid: str) -> VenueOrder:
        if "id" not in raw:
            raise OrderNotFoundAtVenue("Tradier answered without an order")
        status = STATUS.get(str(raw.get("status")), "open")
        side = raw.get("side")
        return VenueOrder(
            client_order_id=coid, venue_order_id=str(raw["id"]), status=status,
            filled_qty=venue_decimal(raw.get("exec_quantity")), symbol=str(raw.get("symbol", "")),
            side=None if side is None else (Side.BUY if str(side).startswith("buy") else Side.SELL),
            quantity=venue_decimal(raw.get("quantity")) if raw.get("quantity") is not None else None,
            limit_price=venue_decimal(raw["price"]) if raw.get("price") is not None else None,
            ts_ns=iso_ns(raw.get("transaction_date")), reason=str(raw.get("reason_description") or ""))

    async def venue_order_fills(self, order: SubmitOrder, venue_order_id: str) -> list[VenueFill]:
        """The growth of the order's executed quantity since the last fill published, as one fill."""
        try:
            body = await self.http.request("GET", f"{self._orders_path}/{venue_order_id}")
        except VenueRefused as exc:
            raise OrderNotFoundAtVenue(str(exc)) from None
        raw = (body or {}).get("order") or {}
        cum, avg = venue_decimal(raw.get("exec_quantity")), venue_decimal(raw.get("avg_fill_price"))
        tracked = self.tracked(order.client_order_id)
        seen_qty = tracked.filled if tracked is not None else ZERO
        known_qty, known_value = self._value.get(venue_order_id, (ZERO, ZERO))
        if cum <= seen_qty or cum <= 0:
            return []
        delta = cum - seen_qty
        if delta == venue_decimal(raw.get("last_fill_quantity")) and venue_decimal(raw.get("last_fill_price")) > 0:
            price = venue_decimal(raw.get("last_fill_price"))
        elif known_qty == seen_qty and seen_qty > 0:
            price = (cum * avg - known_value) / delta
        else:
            price = avg
        self._value[venue_order_id] = (cum, cum * avg)
        return [VenueFill(trade_id=cumulative_trade_id(venue_order_id, cum), venue_order_id=venue_order_id,
                          client_order_id=order.client_order_id, symbol=str(raw.get("symbol", "")), side=order.side,
                          quantity=delta, price=price, fee=ZERO, fee_currency="USD",
                          ts_ns=iso_ns(raw.get("transaction_date")) or self.wall_ns())]

    async def venue_fills(self, since_ns: int) -> list[VenueFill]:
        return []  # no fill history with execution ids at Tradier (see the module docstring)

    async def venue_balances(self) -> dict[str, Decimal]:
        positions = await self.http.request("GET", f"/accounts/{self.account}/positions")
        balances = await self.http.request("GET", f"/accounts/{self.account}/balances")
        out = {p["symbol"]: venue_decimal(p["quantity"]) for p in items((positions or {}).get("positions"), "position")}
        out["USD"] = venue_decimal(((balances or {}).get("balances") or {}).get("total_cash"))
        return out


def build(venue: Any, config: Any) -> TradierAdapter:
    """The factory of ``tradewire_execution.venues`` (``adapter = "tradier"``): ``mode = "sandbox"`` is Tradier's
    sandbox, ``mode = "live"`` its brokerage API (armed by ``--live``, checked by the factory)."""
    from tradewire_execution.live.credentials import default_prefix, load_credentials

    prefix = venue.credentials_env_prefix or default_prefix(venue.name)
    credentials = load_credentials(prefix)
    if not credentials.api_key or not credentials.uid:
        raise ValueError(f"venue {venue.name}: Tradier credentials missing: set {prefix}_API_KEY (the access token) "
                         f"and {prefix}_UID (the account number), or their _FILE twins")
    return TradierAdapter(
        venue.name, credentials=credentials, account=credentials.uid, symbols=venue.symbols,
        live=venue.mode == "live", url_override=venue.url_override,
        limiter=TokenBucket(venue.rate_limit_per_s or DEFAULT_RATE_PER_S), in_flight_grace_s=venue.in_flight_grace_s,
        poll_interval_s=venue.poll_interval_s)
