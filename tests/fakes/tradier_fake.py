"""A fake Tradier brokerage API on 127.0.0.1 (REST, ``/v1``), speaking Tradier's JSON with its quirks.

* Every request needs ``Authorization: Bearer <token>`` (else ``401`` with the plain text body
  ``Invalid Access Token``, as Tradier answers) and ``Accept: application/json``.
* One item is an object, several are a list: ``{"quotes": {"quote": {...}}}`` vs ``[...]``; the same for
  ``history.day``, ``orders.order``, ``positions.position``, ``series.data``. Nothing is the *string*
  ``"null"``: ``{"orders": "null"}``, ``{"positions": "null"}``; no history is ``{"history": null}``.
  Unknown quote symbols come back under ``quotes.unmatched_symbols.symbol``.
* Orders are form-encoded (``class=equity``, ``symbol``, ``side``, ``quantity``, ``type``, ``duration``,
  ``price``, ``stop``, ``tag``); the answer is only ``{"order": {"id": N, "status": "ok"}}``. Tags are not
  unique at Tradier (the fake, like Tradier, accepts the same tag twice). Errors are
  ``{"errors": {"error": "..."}}`` (a string, or a list of strings) with status 400.
* Orders report ``exec_quantity``, ``avg_fill_price``, ``last_fill_price``, ``last_fill_quantity``,
  ``remaining_quantity``; there are no execution ids. Modify (``PUT``) keeps the order id.
* Market data: ``/v1/markets/quotes``, ``/v1/markets/history`` (daily/weekly/monthly), ``/v1/markets/timesales``
  (times in America/New_York plus an epoch ``timestamp``).
* Rate limit headers ``X-Ratelimit-Allowed/Used/Available/Expiry`` on every answer; faults as in the Alpaca
  fake (``timeout`` carried out but never answered, ``5xx``, ``429`` with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from tests.fakes.alpaca_fake import Fault, ThreadedApp

TOKEN = "tradier-sandbox-token-never-logged-91bd"
ACCOUNT = "VA00000001"


def one_or_many(items: list[Any]) -> Any:
    """Tradier's shape: one item as itself, several as a list."""
    return items[0] if len(items) == 1 else items


def _f(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


@dataclass
class TradierOrder:
    id: int
    symbol: str
    side: str
    type: str
    quantity: Decimal
    duration: str
    price: Decimal | None
    stop: Decimal | None
    tag: str | None
    status: str = "open"
    exec_quantity: Decimal = Decimal(0)
    exec_value: Decimal = Decimal(0)
    last_fill_price: Decimal = Decimal(0)
    last_fill_quantity: Decimal = Decimal(0)
    create_date: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds")
                             .replace("+00:00", "Z"))
    transaction_date: str = ""
    reason_description: str | None = None

    def to_json(self) -> dict[str, Any]:
        avg = self.exec_value / self.exec_quantity if self.exec_quantity else Decimal(0)
        working = self.status in ("open", "partially_filled")
        out: dict[str, Any] = {
            "id": self.id, "type": self.type, "symbol": self.symbol, "side": self.side,
            "quantity": float(self.quantity), "status": self.status, "duration": self.duration,
            "avg_fill_price": float(avg), "exec_quantity": float(self.exec_quantity),
            "last_fill_price": float(self.last_fill_price), "last_fill_quantity": float(self.last_fill_quantity),
            "remaining_quantity": float(self.quantity - self.exec_quantity if working else 0),
            "create_date": self.create_date, "transaction_date": self.transaction_date or self.create_date,
            "class": "equity",
        }
        if self.price is not None:
            out["price"] = _f(self.price)
        if self.stop is not None:
            out["stop_price"] = _f(self.stop)
        if self.tag:
            out["tag"] = self.tag
        if self.reason_description:
            out["reason_description"] = self.reason_description
        return out


def _errors(*messages: str) -> JSONResponse:
    return JSONResponse({"errors": {"error": messages[0] if len(messages) == 1 else list(messages)}},
                        status_code=400)


class TradierFake:
    def __init__(self, *, token: str = TOKEN, account: str = ACCOUNT) -> None:
        self.token = token
        self.account = account
        self.orders: dict[int, TradierOrder] = {}
        self.positions: dict[str, tuple[Decimal, Decimal]] = {}
        self.cash = Decimal("100000")
        self.quotes: dict[str, dict[str, Any]] = {}
        self.days: dict[str, list[dict[str, Any]]] = {}
        self.timesales: dict[str, list[dict[str, Any]]] = {}
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []
        self.bad_auth = 0
        self._ids = itertools.count(1001)
        self._hold = asyncio.Event()
        self.server = ThreadedApp(self._build_app())

    @property
    def url(self) -> str:
        return self.server.url + "/v1"

    # --- control --------------------------------------------------------------------------------

    def fault(self, method: str, path: str, kind: str, **kw: Any) -> None:
        self.faults.append(Fault(method.upper(), path, kind, **kw))

    def order_by_tag(self, tag: str) -> list[TradierOrder]:
        return [o for o in self.orders.values() if o.tag == tag]

    def orders_posted(self) -> list[dict[str, list[str]]]:
        return [form for method, path, form in self.requests
                if method == "POST" and path == f"/v1/accounts/{self.account}/orders"]

    def fill(self, order_id: int, qty: Decimal | str, price: Decimal | str) -> None:
        order = self.orders[order_id]
        q, p = Decimal(qty), Decimal(price)
        assert order.status in ("open", "partially_filled"), order.status
        q = min(q, order.quantity - order.exec_quantity)
        order.exec_quantity += q
        order.exec_value += q * p
        order.last_fill_price, order.last_fill_quantity = p, q
        order.status = "filled" if order.exec_quantity == order.quantity else "partially_filled"
        order.transaction_date = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        held, cost = self.positions.get(order.symbol, (Decimal(0), Decimal(0)))
        signed = q if order.side in ("buy", "buy_to_cover") else -q
        self.positions[order.symbol] = (held + signed, cost + signed * p)
        self.cash -= signed * p

    def set_status(self, order_id: int, status: str, reason: str | None = None) -> None:
        self.orders[order_id].status = status
        self.orders[order_id].reason_description = reason

    # --- HTTP -----------------------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        app = FastAPI()
        acct = f"/v1/accounts/{self.account}"

        @app.middleware("http")
        async def gate(request: Request, call_next: Any) -> Response:
            raw = (await request.body()).decode()
            form = parse_qs(raw) if raw else {}
            for key, values in request.query_params.multi_items():
                form.setdefault(key, []).append(values)
            self.requests.append((request.method, request.url.path, form))
            request.state.form = {k: v[-1] for k, v in form.items()}
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                self.bad_auth += 1
                return PlainTextResponse("Invalid Access Token", status_code=401)
            headers = {"X-Ratelimit-Allowed": "120", "X-Ratelimit-Used": "1", "X-Ratelimit-Available": "119",
                       "X-Ratelimit-Expiry": str(int(time.time() * 1000) + 60_000)}
            for fault in list(self.faults):
                if fault.method == request.method and request.url.path.startswith(fault.path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    if fault.kind == "429":
                        return PlainTextResponse("Rate limit exceeded", status_code=429,
                                                 headers={**headers, "X-Ratelimit-Available": "0",
                                                          "Retry-After": fault.retry_after})
                    if fault.kind == "5xx":
                        return PlainTextResponse("Internal Server Error", status_code=fault.status)
                    if fault.kind == "timeout":
                        await call_next(request)
                        await self._hold.wait()
            response: Response = await call_next(request)
            response.headers.update(headers)
            return response

        def form_of(request: Request) -> dict[str, str]:
            out: dict[str, str] = request.state.form
            return out

        @app.get("/v1/markets/quotes")
        async def quotes(request: Request) -> Response:
            symbols = [s for s in form_of(request).get("symbols", "").split(",") if s]
            found = [self.quotes[s] for s in symbols if s in self.quotes]
            missing = [s for s in symbols if s not in self.quotes]
            body: dict[str, Any] = {}
            if found:
                body["quote"] = one_or_many(found)
            if missing:
                body["unmatched_symbols"] = {"symbol": one_or_many(missing)}
            return JSONResponse({"quotes": body})

        @app.get("/v1/markets/history")
        async def history(request: Request) -> Response:
            q = form_of(request)
            if q.get("interval", "daily") not in ("daily", "weekly", "monthly"):
                return _errors(f"Invalid Parameter: interval {q.get('interval')}")
            days = [d for d in self.days.get(q.get("symbol", ""), [])
                    if q.get("start", "0") <= d["date"] <= q.get("end", "9999")]
            return JSONResponse({"history": {"day": one_or_many(days)} if days else None})

        @app.get("/v1/markets/timesales")
        async def timesales(request: Request) -> Response:
            q = form_of(request)
            if q.get("interval", "1min") not in ("tick", "1min", "5min", "15min"):
                return _errors(f"Invalid Parameter: interval {q.get('interval')}")
            rows = [r for r in self.timesales.get(q.get("symbol", ""), [])
                    if q.get("start", "0") <= r["time"].replace("T", " ")[:16] <= q.get("end", "9999")]
            return JSONResponse({"series": {"data": one_or_many(rows)} if rows else None})

        @app.post(f"{acct}/orders")
        async def create(request: Request) -> Response:
            f = form_of(request)
            problems = []
            if f.get("class") != "equity":
                problems.append(f"Invalid Parameter: class {f.get('class')}")
            if not f.get("symbol"):
                problems.append("Invalid Parameter: symbol")
            if f.get("side") not in ("buy", "buy_to_cover", "sell", "sell_short"):
                problems.append(f"Invalid Parameter: side {f.get('side')}")
            kind = f.get("type")
            if kind not in ("market", "limit", "stop", "stop_limit"):
                problems.append(f"Invalid Parameter: type {kind}")
            if f.get("duration") not in ("day", "gtc", "pre", "post"):
                problems.append(f"Invalid Parameter: duration {f.get('duration')}")
            try:
                qty = Decimal(f.get("quantity", ""))
                if qty <= 0 or qty != qty.to_integral():
                    raise ValueError
            except (ValueError, ArithmeticError):
                problems.append(f"Invalid Parameter: quantity {f.get('quantity')}")
                qty = Decimal(0)
            if kind in ("limit", "stop_limit") and not f.get("price"):
                problems.append("Invalid Parameter: price is required for limit orders")
            if kind in ("stop", "stop_limit") and not f.get("stop"):
                problems.append("Invalid Parameter: stop is required for stop orders")
            tag = f.get("tag")
            if tag is not None and (len(tag) > 255 or not all(c.isalnum() or c == "-" for c in tag)):
                problems.append("Invalid Parameter: tag")
            if problems:
                return _errors(*problems)
            if f.get("side") == "sell":
                held = self.positions.get(f["symbol"], (Decimal(0), Decimal(0)))[0]
                if held < qty:
                    return _errors("Backoffice rejected override of the order.",
                                   f"Sell order quantity {qty} exceeds position {held}")
            order = TradierOrder(id=next(self._ids), symbol=f["symbol"], side=f["side"], type=str(kind), quantity=qty,
                                 duration=f["duration"], price=Decimal(f["price"]) if f.get("price") else None,
                                 stop=Decimal(f["stop"]) if f.get("stop") else None, tag=tag)
            self.orders[order.id] = order
            return JSONResponse({"order": {"id": order.id, "status": "ok", "partner_id": "c4998eb7-06e8-4820-a7ab"}})

        @app.get(f"{acct}/orders")
        async def list_orders() -> Response:
            orders = [o.to_json() for o in self.orders.values()]
            return JSONResponse({"orders": {"order": one_or_many(orders)} if orders else "null"})

        @app.get(acct + "/orders/{order_id}")
        async def get_order(order_id: int) -> Response:
            order = self.orders.get(order_id)
            if order is None:
                return _errors("Order not found")
            return JSONResponse({"order": order.to_json()})

        @app.put(acct + "/orders/{order_id}")
        async def modify(order_id: int, request: Request) -> Response:
            order = self.orders.get(order_id)
            if order is None:
                return _errors("Order not found")
            if order.status not in ("open", "partially_filled"):
                return _errors(f"Order cannot be modified: status {order.status}")
            f = form_of(request)
            if "type" in f:
                order.type = f["type"]
            if "duration" in f:
                order.duration = f["duration"]
            if "price" in f:
                order.price = Decimal(f["price"])
            if "stop" in f:
                order.stop = Decimal(f["stop"])
            return JSONResponse({"order": {"id": order.id, "status": "ok"}})

        @app.delete(acct + "/orders/{order_id}")
        async def cancel(order_id: int) -> Response:
            order = self.orders.get(order_id)
            if order is None:
                return _errors("Order not found")
            if order.status not in ("open", "partially_filled", "pending"):
                return _errors(f"Order cannot be canceled: status {order.status}")
            order.status = "canceled"
            return JSONResponse({"order": {"id": order.id, "status": "ok"}})

        @app.get(f"{acct}/positions")
        async def positions() -> Response:
            rows = [{"cost_basis": float(cost), "date_acquired": "2024-01-02T15:00:00.000Z", "id": i + 1,
                     "quantity": float(qty), "symbol": symbol}
                    for i, (symbol, (qty, cost)) in enumerate(sorted(self.positions.items())) if qty]
            return JSONResponse({"positions": {"position": one_or_many(rows)} if rows else "null"})

        @app.get(f"{acct}/balances")
        async def balances() -> Response:
            market = sum((c for _q, c in self.positions.values()), Decimal(0))
            return JSONResponse({"balances": {
                "option_short_value": 0, "total_equity": float(self.cash + market), "account_number": self.account,
                "account_type": "cash", "close_pl": 0, "current_requirement": 0, "equity": 0,
                "long_market_value": float(market), "market_value": float(market), "open_pl": 0,
                "option_long_value": 0, "option_requirement": 0,
                "pending_orders_count": sum(o.status == "open" for o in self.orders.values()),
                "short_market_value": 0, "stock_long_value": float(market), "total_cash": float(self.cash),
                "uncleared_funds": 0, "pending_cash": 0,
                "cash": {"cash_available": float(self.cash), "sweep": 0, "unsettled_funds": 0},
            }})

        return app


@contextmanager
def tradier_fake(**kw: Any) -> Iterator[TradierFake]:
    fake = TradierFake(**kw)
    fake.server.start()
    try:
        yield fake
    finally:
        fake.server.stop()
