"""A fake Interactive Brokers Client Portal gateway (Web API, ``/v1/api``) on 127.0.0.1.

Why the Client Portal Web API and not TWS through ``ib_async``: see ``tradewire_execution.venues.ibkr_adapter``.

What it speaks, as the gateway does:

* A brokerage session: ``GET /iserver/auth/status`` (``authenticated``/``connected``), ``POST /tickle``;
  order endpoints answer ``401`` until ``/iserver/accounts`` was read in the session (IB requires it
  before any order call) and while the fake's session is set unauthenticated.
* ``GET /iserver/secdef/search?symbol=`` -> contract ids (``conid``) as strings.
* ``POST /iserver/account/{acct}/orders`` with ``{"orders": [{conid, cOID, orderType (MKT/LMT/STP/STOP_LIMIT),
  side, quantity, tif (DAY/GTC/IOC/OPG), price, auxPrice, ...}]}``: either a confirmation prompt
  ``[{"id": <reply id>, "message": [...], "isSuppressed": false, "messageIds": ["o354"]}]`` that must be answered
  with ``POST /iserver/reply/{id}`` ``{"confirmed": true}`` (prompts may chain), or the placed order
  ``[{"order_id": "...", "order_status": "Submitted", "encrypt_message": "1"}]``. A ``cOID`` already used is
  refused (``{"error": "... Local order ID=... is already registered."}``); an unanswered prompt places nothing.
* ``GET /iserver/account/orders`` (``order_ref`` = the ``cOID``, ``filledQuantity``, ``remainingQuantity``,
  ``avgPrice``, ``status``), ``GET /iserver/account/order/status/{id}``, modify
  ``POST /iserver/account/{acct}/order/{id}`` (same body, same order id, may prompt), cancel
  ``DELETE /iserver/account/{acct}/order/{id}``.
* ``GET /iserver/account/trades``: executions with an ``execution_id`` each (what fills are de-duplicated on).
* ``GET /portfolio/accounts`` then ``GET /portfolio/{acct}/positions/0``.
* Errors are ``{"error": "..."}``; faults as in the other fakes (``timeout``, ``5xx``, ``429``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from tests.fakes.alpaca_fake import Fault, ThreadedApp

ACCOUNT = "DU1234567"
CONIDS = {"AAPL": 265598, "MSFT": 272093, "SPY": 756733}
TYPES = {"MKT": "Market", "LMT": "Limit", "STP": "Stop", "STOP_LIMIT": "Stop Limit"}
PROMPTS = {
    "o354": "You are submitting an order without market data. We strongly recommend against this as it may result "
            "in erroneous and unexpected trades.\nAre you sure you want to submit this order?",
    "o163": "The following order exceeds the price percentage limit\nAre you sure you want to submit this order?",
}


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


@dataclass
class IbOrder:
    order_id: int
    acct: str
    conid: int
    ticker: str
    coid: str
    order_type: str
    side: str
    quantity: Decimal
    tif: str
    price: Decimal | None
    aux_price: Decimal | None
    status: str = "Submitted"
    filled: Decimal = Decimal(0)
    value: Decimal = Decimal(0)
    time_ms: int = field(default_factory=lambda: int(datetime.now(UTC).timestamp() * 1000))

    def to_json(self) -> dict[str, Any]:
        avg = self.value / self.filled if self.filled else None
        out: dict[str, Any] = {
            "acct": self.acct, "conidex": str(self.conid), "conid": self.conid, "account": self.acct,
            "orderId": self.order_id, "cashCcy": "USD", "sizeAndFills": f"{self.filled}/{self.quantity}",
            "orderDesc": f"{'Buy' if self.side == 'BUY' else 'Sell'} {self.quantity} {TYPES[self.order_type]}",
            "description1": self.ticker, "ticker": self.ticker, "secType": "STK", "listingExchange": "NASDAQ.NMS",
            "remainingQuantity": float(self.quantity - self.filled) if self.status not in ("Cancelled",) else 0.0,
            "filledQuantity": float(self.filled), "totalSize": float(self.quantity), "companyName": self.ticker,
            "status": self.status, "order_ccp_status": self.status, "origOrderType": TYPES[self.order_type].upper(),
            "supportsTaxOpt": "1", "lastExecutionTime": "231120151431", "orderType": TYPES[self.order_type],
            "bgColor": "#FFFFFF", "fgColor": "#000000", "order_ref": self.coid, "timeInForce": self.tif,
            "lastExecutionTime_r": self.time_ms, "side": self.side,
        }
        if avg is not None:
            out["avgPrice"] = str(avg.quantize(Decimal("0.0001")).normalize())
        if self.price is not None:
            out["price"] = str(self.price)
        if self.aux_price is not None:
            out["auxPrice"] = str(self.aux_price)
        return out


class IbkrFake:
    def __init__(self, *, account: str = ACCOUNT) -> None:
        self.account = account
        self.authenticated = True
        self.accounts_read = False
        #: Prompt ids asked before each new order (and each modify) is placed, in order.
        self.prompts: list[str] = ["o354"]
        self.orders: dict[int, IbOrder] = {}
        self.trades: list[dict[str, Any]] = []
        self.positions: dict[int, tuple[Decimal, Decimal]] = {}
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, Any]] = []
        self._pending: dict[str, tuple[list[str], Any]] = {}  # reply id -> (prompts left, action)
        self._ids = itertools.count(1_600_000_001)
        self._exec = itertools.count(1)
        self._hold = asyncio.Event()
        self.server = ThreadedApp(self._build_app())

    @property
    def url(self) -> str:
        return self.server.url + "/v1/api"

    # --- control --------------------------------------------------------------------------------

    def fault(self, method: str, path: str, kind: str, **kw: Any) -> None:
        self.faults.append(Fault(method.upper(), "/v1/api" + path, kind, **kw))

    def by_coid(self, coid: str) -> IbOrder:
        return next(o for o in self.orders.values() if o.coid == coid)

    def order_posts(self) -> list[Any]:
        return [body for method, path, body in self.requests
                if method == "POST" and path == f"/v1/api/iserver/account/{self.account}/orders"]

    def fill(self, coid: str, qty: Decimal | str, price: Decimal | str, commission: str = "1.00") -> str:
        order = self.by_coid(coid)
        q, p = Decimal(qty), Decimal(price)
        assert order.status in ("Submitted", "PreSubmitted"), order.status
        q = min(q, order.quantity - order.filled)
        order.filled += q
        order.value += q * p
        if order.filled == order.quantity:
            order.status = "Filled"
        held, cost = self.positions.get(order.conid, (Decimal(0), Decimal(0)))
        signed = q if order.side == "BUY" else -q
        self.positions[order.conid] = (held + signed, cost + signed * p)
        exec_id = f"0000e0d5.6576fd38.{next(self._exec):02d}.01"
        now = datetime.now(UTC)
        self.trades.append({
            "execution_id": exec_id, "symbol": order.ticker, "supports_tax_opt": "1",
            "side": "B" if order.side == "BUY" else "S",
            "order_description": f"{'Bot' if order.side == 'BUY' else 'Sold'} {q} @ {p} on ISLAND",
            "trade_time": now.strftime("%Y%m%d-%H:%M:%S"), "trade_time_r": int(now.timestamp() * 1000),
            "size": float(q), "price": str(p), "order_ref": order.coid, "submitter": "tradewire",
            "exchange": "ISLAND", "commission": commission, "net_amount": float(q * p), "account": order.acct,
            "accountCode": order.acct, "company_name": order.ticker, "contract_description_1": order.ticker,
            "sec_type": "STK", "listing_exchange": "NASDAQ.NMS", "conid": order.conid, "conidex": str(order.conid),
            "clearing_id": "IB", "clearing_name": "IB", "liquidation_trade": "0", "is_event_trading": "0",
            "order_id": order.order_id,
        })
        return exec_id

    def set_status(self, coid: str, status: str) -> None:
        self.by_coid(coid).status = status

    # --- HTTP -----------------------------------------------------------------------------------

    def _build_app(self) -> FastAPI:  # one route table
        app = FastAPI()
        api = "/v1/api"

        @app.middleware("http")
        async def gate(request: Request, call_next: Any) -> Response:
            raw = await request.body()
            body: Any = None
            if raw:
                body = json.loads(raw)
            self.requests.append((request.method, request.url.path, body))
            request.state.body = body
            for fault in list(self.faults):
                if fault.method == request.method and request.url.path.startswith(fault.path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    if fault.kind == "429":
                        return JSONResponse({"error": "Too many requests"}, status_code=429,
                                            headers={"Retry-After": fault.retry_after})
                    if fault.kind == "5xx":
                        return _error("Service Unavailable", fault.status)
                    if fault.kind == "timeout":
                        await call_next(request)
                        await self._hold.wait()
            path = request.url.path
            if not self.authenticated and not path.endswith(("/auth/status", "/tickle")):
                return _error("not authenticated", 401)
            if "/iserver/account/" in path and not self.accounts_read:
                return _error("Please query /accounts first", 400)
            response: Response = await call_next(request)
            return response

        @app.get(api + "/iserver/auth/status")
        async def auth_status() -> Response:
            return JSONResponse({"authenticated": self.authenticated, "competing": False,
                                 "connected": self.authenticated, "message": "", "MAC": "98:F2:B3:23:BF:A0",
                                 "serverInfo": {"serverName": "JifN19053", "serverVersion": "Build 10.25.0p"},
                                 "fail": ""})

        @app.post(api + "/tickle")
        async def tickle() -> Response:
            return JSONResponse({"session": uuid.uuid4().hex, "ssoExpires": 460000, "collission": False,
                                 "userId": 12345678, "iserver": {"authStatus": {
                                     "authenticated": self.authenticated, "competing": False,
                                     "connected": self.authenticated}}})

        @app.get(api + "/iserver/accounts")
        async def accounts() -> Response:
            self.accounts_read = True
            return JSONResponse({"accounts": [self.account], "aliases": {self.account: self.account},
                                 "selectedAccount": self.account, "allowFeatures": {"allowCrypto": False}})

        @app.get(api + "/portfolio/accounts")
        async def portfolio_accounts() -> Response:
            return JSONResponse([{"id": self.account, "accountId": self.account, "accountTitle": "Paper",
                                  "currency": "USD", "type": "DEMO", "tradingType": "PMRGN"}])

        @app.get(api + "/iserver/secdef/search")
        async def search(symbol: str) -> Response:
            if symbol not in CONIDS:
                return _error(f"No symbol found for {symbol}", 200)
            return JSONResponse([{"conid": str(CONIDS[symbol]), "companyHeader": f"{symbol} - NASDAQ",
                                  "companyName": symbol, "symbol": symbol, "description": "NASDAQ",
                                  "restricted": None, "sections": [{"secType": "STK"}]}])

        def validate(spec: dict[str, Any]) -> str:
            if spec.get("orderType") not in TYPES:
                return f"invalid orderType {spec.get('orderType')}"
            if spec.get("side") not in ("BUY", "SELL"):
                return f"invalid side {spec.get('side')}"
            if spec.get("tif") not in ("DAY", "GTC", "IOC", "OPG"):
                return f"invalid tif {spec.get('tif')}"
            if spec.get("conid") not in CONIDS.values():
                return f"invalid conid {spec.get('conid')}"
            if spec.get("orderType") in ("LMT", "STOP_LIMIT") and spec.get("price") is None:
                return "price is required"
            if spec.get("orderType") in ("STP", "STOP_LIMIT") and spec.get("auxPrice") is None:
                return "auxPrice is required"
            if not isinstance(spec.get("quantity"), int | float) or spec["quantity"] <= 0:
                return "invalid quantity"
            return ""

        def place(spec: dict[str, Any]) -> list[dict[str, Any]]:
            ticker = next(s for s, c in CONIDS.items() if c == spec["conid"])
            order = IbOrder(order_id=next(self._ids), acct=self.account, conid=spec["conid"], ticker=ticker,
                            coid=spec["cOID"], order_type=spec["orderType"], side=spec["side"],
                            quantity=Decimal(str(spec["quantity"])), tif=spec["tif"],
                            price=Decimal(str(spec["price"])) if spec.get("price") is not None else None,
                            aux_price=Decimal(str(spec["auxPrice"])) if spec.get("auxPrice") is not None else None)
            self.orders[order.order_id] = order
            return [{"order_id": str(order.order_id), "order_status": order.status, "encrypt_message": "1"}]

        def ask(prompts: list[str], action: Any) -> Response:
            if not prompts:
                return JSONResponse(action())
            reply_id = str(uuid.uuid4())
            self._pending[reply_id] = (prompts[1:], action)
            return JSONResponse([{"id": reply_id, "message": [PROMPTS.get(prompts[0], prompts[0])],
                                  "isSuppressed": False, "messageIds": [prompts[0]]}])

        @app.post(api + "/iserver/account/{acct}/orders")
        async def create(acct: str, request: Request) -> Response:
            if acct != self.account:
                return _error(f"Account {acct} is not authorized", 400)
            specs = (request.state.body or {}).get("orders") or []
            if len(specs) != 1:
                return _error("exactly one order is supported by this fake")
            spec = specs[0]
            problem = validate(spec)
            if problem:
                return _error(problem)
            coid = spec.get("cOID")
            if not coid:
                return _error("cOID is required by this fake")
            if any(o.coid == coid for o in self.orders.values()):
                return _error(f"Order couldn't be submitted: Local order ID={coid} is already registered.")
            return ask(list(self.prompts), lambda: place(spec))

        @app.post(api + "/iserver/reply/{reply_id}")
        async def reply(reply_id: str, request: Request) -> Response:
            pending = self._pending.pop(reply_id, None)
            if pending is None:
                return _error("Invalid reply ID", 400)
            body = request.state.body or {}
            if body.get("confirmed") is not True:
                return _error("Order not confirmed", 200)
            prompts, action = pending
            return ask(prompts, action)

        @app.get(api + "/iserver/account/orders")
        async def orders() -> Response:
            return JSONResponse({"orders": [o.to_json() for o in self.orders.values()], "snapshot": True})

        @app.get(api + "/iserver/account/order/status/{order_id}")
        async def status(order_id: int) -> Response:
            order = self.orders.get(order_id)
            if order is None:
                return _error(f"OrderID {order_id} doesn't exist", 400)
            j = order.to_json()
            return JSONResponse({"order_id": order.order_id, "conid": order.conid, "symbol": order.ticker,
                                 "side": "B" if order.side == "BUY" else "S",
                                 "size": str(order.quantity - order.filled),
                                 "total_size": str(order.quantity), "currency": "USD", "account": order.acct,
                                 "order_type": j["origOrderType"], "cum_fill": str(order.filled),
                                 "order_status": order.status, "tif": order.tif, "average_price": j.get("avgPrice"),
                                 "order_ref": order.coid, "sec_type": "STK"})

        @app.post(api + "/iserver/account/{acct}/order/{order_id}")
        async def modify(acct: str, order_id: int, request: Request) -> Response:
            order = self.orders.get(order_id)
            if order is None:
                return _error(f"OrderID {order_id} doesn't exist", 400)
            if order.status not in ("Submitted", "PreSubmitted"):
                return _error(f"Order {order_id} cannot be modified: {order.status}")
            spec = request.state.body or {}

            def apply() -> list[dict[str, Any]]:
                if spec.get("quantity") is not None:
                    order.quantity = Decimal(str(spec["quantity"]))
                if spec.get("price") is not None:
                    order.price = Decimal(str(spec["price"]))
                if spec.get("auxPrice") is not None:
                    order.aux_price = Decimal(str(spec["auxPrice"]))
                return [{"order_id": str(order.order_id), "order_status": order.status, "encrypt_message": "1"}]

            return ask(list(self.prompts), apply)

        @app.delete(api + "/iserver/account/{acct}/order/{order_id}")
        async def cancel(acct: str, order_id: int) -> Response:
            order = self.orders.get(order_id)
            if order is None:
                return _error(f"OrderID {order_id} doesn't exist", 400)
            if order.status not in ("Submitted", "PreSubmitted"):
                return _error(f"OrderID {order_id} is {order.status} and cannot be cancelled", 400)
            order.status = "Cancelled"
            return JSONResponse({"msg": "Request was submitted", "order_id": order.order_id, "conid": order.conid,
                                 "account": order.acct})

        @app.get(api + "/iserver/account/trades")
        async def trades() -> Response:
            return JSONResponse(self.trades)

        @app.get(api + "/portfolio/{acct}/positions/{page}")
        async def positions(acct: str, page: int) -> Response:
            rows = []
            for conid, (qty, cost) in sorted(self.positions.items()):
                if not qty:
                    continue
                ticker = next(s for s, c in CONIDS.items() if c == conid)
                avg = cost / qty
                rows.append({"acctId": acct, "conid": conid, "contractDesc": ticker, "position": float(qty),
                             "mktPrice": float(avg), "mktValue": float(cost), "currency": "USD",
                             "avgCost": float(avg), "avgPrice": float(avg), "realizedPnl": 0.0, "unrealizedPnl": 0.0,
                             "assetClass": "STK", "ticker": ticker})
            return JSONResponse(rows if page == 0 else [])

        return app


@contextmanager
def ibkr_fake(**kw: Any) -> Iterator[IbkrFake]:
    fake = IbkrFake(**kw)
    fake.server.start()
    try:
        yield fake
    finally:
        fake.server.stop()
