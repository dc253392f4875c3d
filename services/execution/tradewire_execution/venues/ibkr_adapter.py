"""Interactive Brokers through the **Client Portal Web API** (the gateway's REST API), with plain ``httpx``.

**Why the Client Portal and not TWS/IB Gateway through ``ib_async``.** ``ib_async`` speaks IB's TWS socket
protocol: a length-prefixed, NUL-separated binary message stream whose field layout depends on the negotiated
server version (a handshake picks one of ~20 versions), and whose ``connect`` alone expects a dozen message
types back (server version, next valid id, managed accounts, then the replies to the position, open order,
completed order, account update and execution requests it sends). A fake would have to re-implement that
encoder per server version field by field, with nothing here to check it against (no TWS, no recorded
sessions), so tests would prove only that the fake agrees with itself. The Client Portal API is JSON over HTTPS
with documented shapes (orders with their ``cOID``, the confirmation ``reply`` step, executions with ids,
positions), which a fake on 127.0.0.1 can serve faithfully and the adapter can use with the same ``httpx`` as
Tradier. The cost: the gateway must run beside execution and its brokerage session must be logged in through
IB's browser login (no API key), and kept alive (``POST /tickle``).

**The gateway**: ``url_override`` (tests: the fake), else ``https://localhost:5000/v1/api`` (the gateway's
self-signed certificate is accepted for ``localhost`` only). ``mode = "sandbox"`` requires a paper account (ids
starting with ``D``); ``mode = "live"`` trades whatever account the gateway is logged in to (and needs
``--live``). The account is ``{prefix}_UID`` or the gateway's selected account.

**Orders**: ``POST /iserver/account/{acct}/orders`` with the client order id as ``cOID``; ``MARKET``/``LIMIT``/
``STOP_MARKET``/``STOP_LIMIT`` -> ``MKT``/``LMT``/``STP``/``STOP_LIMIT``, ``DAY``/``GTC``/``IOC``. IB may answer with
confirmation prompts (``[{"id", "message", "messageIds"}]``) instead of an order: each is confirmed with
``POST /iserver/reply/{id}`` (``{"confirmed": true}``) and logged with its message id (an audit of what was
accepted on the trader's behalf), at most :data:`MAX_PROMPTS` in a row. A create whose answer (or a reply's) is
lost is in flight and is resolved by the ``order_ref`` (= ``cOID``) of the account's orders; IB refuses a second
order with the same ``cOID`` ("Local order ID ... is already registered"), treated as "already placed".
No post-only and no GTD here (``DAY``/``GTC``/``IOC`` only): refused before sending. **Replace** is
cancel-then-new (:mod:`tradewire_execution.live.replace`): IB's modify keeps the order's ``cOID``, while a
Tradewire replacement has a new client order id.
**Fills** come from ``GET /iserver/account/trades`` with IB's ``execution_id`` as the trade id and its
commission as the fee; orders are polled (no websocket here). **Positions**: ``/portfolio/{acct}/positions/0``
after ``/portfolio/accounts``, as IB requires.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from tradewire_common.ids import split_instrument_id
from tradewire_common.schemas import OrderType, Side, SubmitOrder
from tradewire_execution.live.base import (
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
from tradewire_execution.live.http import VenueHttp
from tradewire_execution.live.ratelimit import TokenBucket
from tradewire_execution.live.wire import venue_decimal
from tradewire_execution.venue import (
    CAP_DAY,
    CAP_GTC,
    CAP_IOC,
    CAP_LIMIT,
    CAP_MARKET,
    CAP_PARTIAL_FILLS,
    CAP_STOP,
    CAP_STOP_LIMIT,
)

log = logging.getLogger(__name__)

GATEWAY_URL = "https://localhost:5000/v1/api"
CAPABILITIES = frozenset({CAP_MARKET, CAP_LIMIT, CAP_STOP, CAP_STOP_LIMIT, CAP_PARTIAL_FILLS, CAP_GTC, CAP_DAY,
                          CAP_IOC})
#: The gateway allows 10 requests a second in total; half of it is left to other users of the session.
DEFAULT_RATE_PER_S = 5.0
#: Confirmation prompts answered for one order before giving up (each is logged).
MAX_PROMPTS = 5
TYPES = {OrderType.MARKET: "MKT", OrderType.LIMIT: "LMT", OrderType.STOP_MARKET: "STP",
         OrderType.STOP_LIMIT: "STOP_LIMIT"}
STATUS: dict[str, OrderStatus] = {"Filled": "filled", "Cancelled": "canceled", "ApiCancelled": "canceled",
                                  "Inactive": "rejected"}
OPEN = ("PendingSubmit", "PreSubmitted", "Submitted", "ApiPending", "PendingCancel")



def _error(body: Any) -> str:
    return str(body.get("error")) if isinstance(body, dict) and body.get("error") is not None else ""


class IbkrAdapter(LiveVenueAdapter):
    """IBKR's Client Portal Web API (see the module docstring)."""

    spot = True  # no reduce-only flag: a reduce-only SELL is a plain SELL of what is held

    def __init__(
        self, name: str, *, credentials: Credentials | None = None, account: str = "", symbols: Iterable[str] = (),
        paper_only: bool = True, url_override: str = "", limiter: TokenBucket | None = None,
        in_flight_grace_s: float = 15.0, poll_interval_s: float = 2.0, request_timeout_s: float = 10.0,
        wall_ns: Callable[[], int] | None = None,
    ) -> None:
        extra: dict[str, Any] = {"wall_ns": wall_ns} if wall_ns is not None else {}
        super().__init__(name, capabilities=CAPABILITIES, limiter=limiter or TokenBucket(DEFAULT_RATE_PER_S),
                         credentials=credentials, in_flight_grace_s=in_flight_grace_s,
                         poll_interval_s=poll_interval_s, websocket=False, **extra)
        self.base_url = url_override.rstrip("/") or GATEWAY_URL
        self.account = account
        self.paper_only = paper_only
        self.symbols = frozenset(symbols)
        self.conids: dict[str, int] = {}
        verify = urlsplit(self.base_url).hostname != "localhost"  # the gateway's own self-signed certificate
        self.http = VenueHttp("IBKR", self.base_url, timeout_s=request_timeout_s, verify=verify, scrub=self.scrub,
                              headers={"User-Agent": "tradewire"}, reach_name="IBKR gateway",
                              guard_label=f"venue {self.name}")
        #: prompts confirmed (message id, text), for the audit
        self.confirmed: list[tuple[str, str]] = []

    def position_keys(self) -> dict[str, str]:
        return {f"{symbol}.{self.name}": symbol for symbol in sorted(self.symbols)}

    async def _request(self, method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None,
                       allow_error: bool = False) -> Any:
        response = await self.http.send(method, path, json=json, params=params)
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = {"error": response.text.strip()[:300]}
        status = response.status_code
        self.http.raise_for_throttle(response, "too many requests" if status == 429 else
                                     _error(body) or response.text[:300])
        if status == 401:
            raise NotSent("IBKR: the gateway's brokerage session is not authenticated (log in through the gateway)")
        error = _error(body)
        if (status >= 400 or error) and not allow_error:
            if "already registered" in error:
                raise DuplicateClientOrderId(f"IBKR: {self.scrub(error)}")
            if "doesn't exist" in error or "cannot be cancelled" in error:
                raise OrderNotFoundAtVenue(f"IBKR: {self.scrub(error)}")
            raise VenueRefused(f"IBKR {status}: {self.scrub(error or response.text[:300])}")
        return body

    async def connect(self) -> None:
        status = await self._request("GET", "/iserver/auth/status")
        if not (status or {}).get("authenticated"):
            raise ConnectionError(f"venue {self.name}: the IBKR gateway session is not authenticated")
        accounts = await self._request("GET", "/iserver/accounts")  # IB requires this before any order call
        known = list((accounts or {}).get("accounts") or [])
        account = self.account or self.credentials.uid or str((accounts or {}).get("selectedAccount") or "")
        if account not in known:
            raise ValueError(f"venue {self.name}: account {account!r} is not among the gateway's accounts")
        if self.paper_only and not account.startswith("D"):
            raise ValueError(f"venue {self.name}: mode 'sandbox' needs an IBKR paper account (DU...), the gateway is "
                             "logged in to another; use mode 'live' (with --live) for it")
        self.account = account
        for symbol in sorted(self.symbols):
            await self.conid(symbol)

    async def disconnect(self) -> None:
        await self.http.close()

    async def conid(self, symbol: str) -> int:
        """IB's contract id of a US stock (``/iserver/secdef/search``)."""
        if symbol not in self.conids:
            found = await self._request("GET", "/iserver/secdef/search", params={"symbol": symbol}, allow_error=True)
            stocks = [c for c in found if isinstance(c, dict) and any(s.get("secType") == "STK"
                                                                      for s in c.get("sections") or [])] \
                if isinstance(found, list) else []
            if not stocks:
                raise VenueRefused(f"IBKR has no stock {symbol}: {_error(found)}")
            self.conids[symbol] = int(stocks[0]["conid"])
        return self.conids[symbol]

    # --- orders -------------------------------------------------------------------------------------------

    def refusal(self, order: SubmitOrder) -> str:
        reason = super().refusal(order)
        if reason:
            return reason
        symbol, _venue = split_instrument_id(order.instrument_id)
        if self.symbols and symbol not in self.symbols:
            return f"venue {self.name}: {symbol} is not among the configured symbols"
        return ""

    async def order_spec(self, order: SubmitOrder) -> dict[str, Any]:
        symbol, _venue = split_instrument_id(order.instrument_id)
        spec: dict[str, Any] = {
            "acctId": self.account, "conid": await self.conid(symbol), "cOID": order.client_order_id,
            "orderType": TYPES[order.order_type], "side": order.side.value, "quantity": float(order.quantity),
            "tif": order.time_in_force.value, "listingExchange": "SMART", "outsideRTH": False, "ticker": symbol,
        }
        if order.limit_price is not None:
            spec["price"] = float(order.limit_price)
        if order.trigger_price is not None:
            spec["auxPrice"] = float(order.trigger_price)
        return spec

    async def _confirm(self, answer: Any, what: str) -> dict[str, Any]:
        """Answer IB's confirmation prompts until the order's own answer comes (``order_id``)."""
        for _ in range(MAX_PROMPTS + 1):
            first = answer[0] if isinstance(answer, list) and answer else answer
            if isinstance(first, dict) and first.get("order_id") is not None:
                return first
            if not (isinstance(first, dict) and first.get("id") and first.get("message") is not None):
                raise VenueRefused(f"IBKR: unexpected answer to {what}: {self.scrub(str(answer))[:300]}")
            ids = ",".join(str(i) for i in first.get("messageIds") or [])
            text = " ".join(str(m) for m in first.get("message") or []).replace("\n", " ")
            self.confirmed.append((ids, text))
            log.warning("venue %s: %s: confirming IB prompt %s: %s", self.name, what, ids, text[:300],
                        extra={"audit": "ibkr_prompt", "venue": self.name, "prompt": ids})
            answer = await self._request("POST", f"/iserver/reply/{first['id']}", json={"confirmed": True})
        raise VenueRefused(f"IBKR: more than {MAX_PROMPTS} confirmation prompts for {what}; not confirmed")

    async def venue_place(self, order: SubmitOrder) -> VenueOrder:
        spec = await self.order_spec(order)
        answer = await self._request("POST", f"/iserver/account/{self.account}/orders", json={"orders": [spec]})
        try:
            placed = await self._confirm(answer, order.client_order_id)
        except VenueRefused:
            raise
        except Exception as exc:  # a reply lost after the create: the order may exist
            raise Ambiguous(f"IBKR: confirmation of {order.client_order_id} unanswered: {exc}") from None
        status = str(placed.get("order_status") or "")
        return VenueOrder(client_order_id=order.client_order_id, venue_order_id=str(placed["order_id"]),
                          status=STATUS.get(status, "open"), ts_ns=self.wall_ns())

    async def venue_cancel(self, order: SubmitOrder, venue_order_id: str) -> VenueOrder:
        if not venue_order_id:
            venue_order_id = (await self.venue_order(order)).venue_order_id
        await self._request("DELETE", f"/iserver/account/{self.account}/order/{venue_order_id}")
        return await self.venue_order(order)

    async def _ib_orders(self) -> list[dict[str, Any]]:
        body = await self._request("GET", "/iserver/account/orders", params={"force": "true"})
        return [o for o in (body or {}).get("orders") or [] if isinstance(o, dict)]

    async def venue_order(self, order: SubmitOrder) -> VenueOrder:
        for raw in await self._ib_orders():
            if raw.get("order_ref") == order.client_order_id:
                return self.parse_order(raw)
        raise OrderNotFoundAtVenue(f"IBKR has no order {order.client_order_id}")

    async def venue_open_orders(self) -> list[VenueOrder]:
        return [self.parse_order(o) for o in await self._ib_orders()
                if o.get("status") in OPEN and (not self.symbols or o.get("ticker") in self.symbols)]

    def parse_order(self, raw: dict[str, Any]) -> VenueOrder:
        kinds = {"Market": OrderType.MARKET, "Limit": OrderType.LIMIT, "Stop": OrderType.STOP_MARKET,
                 "Stop Limit": OrderType.STOP_LIMIT}
        return VenueOrder(
            client_order_id=str(raw.get("order_ref") or ""), venue_order_id=str(raw["orderId"]),
            status=STATUS.get(str(raw.get("status")), "open"), filled_qty=venue_decimal(raw.get("filledQuantity")),
            symbol=str(raw.get("ticker") or ""), side=Side.BUY if raw.get("side") == "BUY" else Side.SELL,
            quantity=venue_decimal(raw.get("totalSize")), order_type=kinds.get(str(raw.get("orderType"))),
            limit_price=venue_decimal(raw["price"]) if raw.get("price") is not None else None,
            ts_ns=int(raw.get("lastExecutionTime_r") or 0) * 1_000_000,
            reason="inactive at IB (rejected or not allowed)" if raw.get("status") == "Inactive" else "")

    async def _trades(self) -> list[VenueFill]:
        body = await self._request("GET", "/iserver/account/trades")
        fills = []
        for t in body if isinstance(body, list) else []:
            if self.symbols and t.get("symbol") not in self.symbols:
                continue
            fills.append(VenueFill(
                trade_id=str(t["execution_id"]), venue_order_id=str(t.get("order_id", "")),
                client_order_id=str(t.get("order_ref") or ""), symbol=str(t.get("symbol", "")),
                side=Side.BUY if t.get("side") == "B" else Side.SELL, quantity=venue_decimal(t.get("size")),
                price=venue_decimal(t.get("price")), fee=abs(venue_decimal(t.get("commission"))), fee_currency="USD",
                ts_ns=int(t.get("trade_time_r") or 0) * 1_000_000))
        return fills

    async def venue_order_fills(self, order: SubmitOrder, venue_order_id: str) -> list[VenueFill]:
        return [f for f in await self._trades()
                if f.venue_order_id == venue_order_id or f.client_order_id == order.client_order_id]

    async def venue_fills(self, since_ns: int) -> list[VenueFill]:
        return [f for f in await self._trades() if f.ts_ns >= since_ns]

    async def venue_balances(self) -> dict[str, Decimal]:
        await self._request("GET", "/portfolio/accounts")  # IB requires it before the portfolio endpoints
        rows = await self._request("GET", f"/portfolio/{self.account}/positions/0")
        return {str(r.get("ticker") or r.get("contractDesc")): venue_decimal(r.get("position"))
                for r in rows if isinstance(r, dict)} if isinstance(rows, list) else {}


def build(venue: Any, config: Any) -> IbkrAdapter:
    """The factory of ``tradewire_execution.venues`` (``adapter = "ibkr"``)."""
    from tradewire_execution.live.credentials import default_prefix, load_credentials

    credentials = load_credentials(venue.credentials_env_prefix or default_prefix(venue.name))
    return IbkrAdapter(
        venue.name, credentials=credentials, account=credentials.uid, symbols=venue.symbols,
        paper_only=venue.mode != "live", url_override=venue.url_override,
        limiter=TokenBucket(venue.rate_limit_per_s or DEFAULT_RATE_PER_S), in_flight_grace_s=venue.in_flight_grace_s,
        poll_interval_s=venue.poll_interval_s)
