"""A fake Alpaca on 127.0.0.1 that the unmodified ``alpaca-py`` clients talk to.

It speaks Alpaca's wire formats (verified facts in ``shared/notes/venue-facts.md``):

* **Trading REST** ``/v2/...`` (``TradingClient(url_override=fake.url)``): every request must carry
  ``APCA-API-KEY-ID`` and ``APCA-API-SECRET-KEY`` (else ``401 {"code": 40110000, ...}``); orders with
  every field the SDK's strict pydantic ``Order`` model requires; ``client_order_id`` unique (a
  duplicate is ``422 {"code": 40010001, "message": "client_order_id must be unique"}``); ``bracket``,
  ``oco`` and ``oto`` order classes with their legs; replace (``PATCH``) makes a new order that
  ``replaces`` the old one; cancel (``DELETE``) answers 204, an unknown order 404, a closed one 422;
  ``/v2/orders:by_client_order_id``; positions; account.
* **Market data REST** ``/v2/stocks/bars`` paginated with ``next_page_token`` (the fake's own page size is
  small so pagination is real), ``/v2/stocks/trades/latest``.
* **Trading stream** ``/stream``: JSON in *binary* frames; ``authenticate`` -> ``authorization``,
  ``listen`` -> ``listening``, then ``trade_updates`` events (``new``, ``partial_fill``, ``fill``,
  ``canceled``, ``expired``, ``replaced``, ``rejected``) with an ``execution_id`` per fill.
* **Market data stream** ``/v2/iex`` (and ``/v2/sip``): msgpack; ``[{"T":"success","msg":"connected"}]``
  first, then ``auth`` -> ``authenticated`` or ``[{"T":"error","code":402,"msg":"auth failed"}]``,
  ``subscribe`` -> ``subscription``; bars/trades/quotes with msgpack ``Timestamp`` times.

The test drives the market (:meth:`AlpacaFake.fill`, :meth:`expire`, :meth:`push_bar`...) and injects
faults (:meth:`fault`): a request that is carried out but never answered (``timeout``: the order exists,
the client times out), a ``5xx``, or ``429`` with ``Retry-After``. The server runs in its own thread with
its own event loop, so a synchronous client in a worker thread and the test's loop both reach it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgpack
import uvicorn
from fastapi import FastAPI, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

from tests.support.ports import free_tcp_port

KEY_ID = "PKTESTKEY0000000001"
SECRET = "test-secret-never-logged-7f3a9c"


# --- a FastAPI app served by uvicorn in a thread ----------------------------------------------------


class ThreadedApp:
    """Serve an ASGI app with uvicorn on 127.0.0.1 in a thread of its own (own event loop)."""

    def __init__(self, app: Any) -> None:
        self.port = free_tcp_port()
        self.host = "127.0.0.1"
        config = uvicorn.Config(app, host=self.host, port=self.port, log_level="warning", lifespan="off",
                                ws_ping_interval=None, timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name=f"fake-venue-{self.port}", daemon=True)
        self._ready = threading.Event()

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self._ready.set()
        self.loop.run_until_complete(self.server.serve())

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        while not self.server.started:  # uvicorn binds the socket before setting started
            if not self._thread.is_alive():
                raise RuntimeError("fake venue server failed to start")
            threading.Event().wait(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)

    def call(self, fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        """Run a coroutine on the server's loop from another thread and return its result."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(timeout=10)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass
class Fault:
    """One injected fault, used by the first request matching ``method`` and ``path`` (a prefix)."""

    method: str
    path: str
    #: ``timeout``: carry the request out and never answer; ``5xx``: answer ``status`` without doing it;
    #: ``429``: answer 429 with ``Retry-After`` without doing it.
    kind: str
    status: int = 503
    retry_after: str = "1"
    times: int = 1


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _num(value: Decimal) -> str:
    return format(value.normalize(), "f") if value == value.to_integral() else str(value)


# --- the venue's state --------------------------------------------------------------------------------


@dataclass
class FakeOrder:
    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    qty: Decimal
    time_in_force: str
    order_class: str
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_percent: Decimal | None = None
    trail_price: Decimal | None = None
    status: str = "new"
    filled_qty: Decimal = Decimal(0)
    filled_value: Decimal = Decimal(0)
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    filled_at: str | None = None
    canceled_at: str | None = None
    expired_at: str | None = None
    replaced_at: str | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    legs: list[FakeOrder] = field(default_factory=list)
    parent: str | None = None
    #: bracket/oto legs wait (``held``) until the parent filled
    asset_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def open(self) -> bool:
        return self.status in {"new", "accepted", "partially_filled", "held", "pending_new"}

    def to_json(self, nested: bool = True) -> dict[str, Any]:
        avg = self.filled_value / self.filled_qty if self.filled_qty else None
        return {
            "id": self.id, "client_order_id": self.client_order_id, "created_at": self.created_at,
            "updated_at": self.updated_at, "submitted_at": self.created_at, "filled_at": self.filled_at,
            "expired_at": self.expired_at, "canceled_at": self.canceled_at, "failed_at": None,
            "replaced_at": self.replaced_at, "replaced_by": self.replaced_by, "replaces": self.replaces,
            "asset_id": self.asset_id, "symbol": self.symbol, "asset_class": "us_equity", "notional": None,
            "qty": _num(self.qty), "filled_qty": _num(self.filled_qty),
            "filled_avg_price": None if avg is None else str(avg.quantize(Decimal("0.0001")).normalize()),
            "order_class": "" if self.order_class == "simple" else self.order_class,
            "order_type": self.type, "type": self.type, "side": self.side,
            "position_intent": "buy_to_open" if self.side == "buy" else "sell_to_close",
            "time_in_force": self.time_in_force,
            "limit_price": None if self.limit_price is None else _num(self.limit_price),
            "stop_price": None if self.stop_price is None else _num(self.stop_price),
            "status": self.status, "extended_hours": False,
            "legs": [leg.to_json() for leg in self.legs] if nested and self.legs else None,
            "trail_percent": None if self.trail_percent is None else _num(self.trail_percent),
            "trail_price": None if self.trail_price is None else _num(self.trail_price),
            "hwm": None, "source": None, "subtag": None, "expires_at": None,
        }


def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status, headers=headers)


def _dec(value: Any, name: str) -> Decimal:
    try:
        out = Decimal(str(value))
    except Exception:
        raise ValueError(f"invalid {name}") from None
    if not out.is_finite() or out <= 0:
        raise ValueError(f"invalid {name}")
    return out


def _penny_ok(price: Decimal) -> bool:
    """Alpaca's sub-penny rule: at most 2 decimals at or above $1, 4 below."""
    places = 2 if price >= 1 else 4
    return price == price.quantize(Decimal(1).scaleb(-places))


class AlpacaFake:
    """The fake venue. Use :func:`alpaca_fake` to run it."""

    def __init__(self, *, key_id: str = KEY_ID, secret: str = SECRET, page_size: int = 3) -> None:
        self.key_id = key_id
        self.secret = secret
        self.page_size = page_size
        self.orders: dict[str, FakeOrder] = {}
        self.by_coid: dict[str, FakeOrder] = {}
        self.positions: dict[str, tuple[Decimal, Decimal]] = {}  # symbol -> (qty, cost)
        self.cash = Decimal("100000")
        self.bars: dict[str, list[dict[str, Any]]] = {}
        self.last_trade: dict[str, Decimal] = {}
        self.faults: list[Fault] = []
        #: every request: (method, path, query, json body or None)
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.bad_auth = 0
        self.trade_updates: list[dict[str, Any]] = []
        #: FILL account activities (``/v2/account/activities/FILL``), oldest first
        self.activities: list[dict[str, Any]] = []
        self._trading_clients: list[WebSocket] = []
        self._data_clients: dict[WebSocket, dict[str, set[str]]] = {}
        self._exec_ids = itertools.count(1)
        self._hold = asyncio.Event()  # never set: a "timeout" fault waits here until the server stops
        self.app = self._build_app()
        self.server = ThreadedApp(self.app)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}"

    # --- control API for tests (thread-safe: runs on the server's loop) --------------------------

    def fault(self, method: str, path: str, kind: str, **kw: Any) -> None:
        self.faults.append(Fault(method.upper(), path, kind, **kw))

    def order(self, client_order_id: str) -> FakeOrder:
        return self.by_coid[client_order_id]

    def orders_posted(self) -> list[dict[str, Any]]:
        return [body for method, path, _q, body in self.requests if method == "POST" and path == "/v2/orders"]

    def fill(self, client_order_id: str, qty: Decimal | str, price: Decimal | str) -> str:
        """Execute ``qty`` of an open order at ``price``; returns the execution id."""
        return str(self.server.call(lambda: self._fill(self.by_coid[client_order_id], Decimal(qty), Decimal(price))))

    def fill_leg(self, parent_coid: str, leg_type: str, price: Decimal | str) -> str:
        """Fill the whole open leg of type ``limit`` (take profit) or ``stop`` (stop loss) of a parent."""
        parent = self.by_coid[parent_coid]
        legs = [parent, *parent.legs] if parent.order_class == "oco" else parent.legs
        leg = next(o for o in legs if o.type == leg_type)
        return str(self.server.call(lambda: self._fill(leg, leg.qty - leg.filled_qty, Decimal(price))))

    def expire(self, client_order_id: str) -> None:
        self.server.call(lambda: self._close(self.by_coid[client_order_id], "expired"))

    def venue_cancel(self, client_order_id: str) -> None:
        """The venue cancels an order on its own (as at the close for a DAY order's remainder)."""
        self.server.call(lambda: self._close(self.by_coid[client_order_id], "canceled"))

    def resend_last_update(self) -> None:
        """Send the last trade update again (a duplicate delivery, as after a stream reconnect)."""
        self.server.call(lambda: self._broadcast(self.trade_updates[-1]))

    def drop_stream_clients(self) -> None:
        async def drop() -> None:
            for ws in list(self._trading_clients):
                await ws.close()
        self.server.call(drop)

    def add_bars(self, symbol: str, bars: list[dict[str, Any]]) -> None:
        """Historical bars: ``{"t": iso, "o", "h", "l", "c", "v"}`` (numbers as JSON numbers, as Alpaca)."""
        self.bars.setdefault(symbol, []).extend(bars)

    def push_bar(self, symbol: str, ts_ns: int, o: float, h: float, low: float, c: float, v: float) -> None:
        seconds, nanos = divmod(ts_ns, 1_000_000_000)
        msg = {"T": "b", "S": symbol, "o": o, "h": h, "l": low, "c": c, "v": v,
               "t": msgpack.Timestamp(seconds, nanos), "n": 10, "vw": c}
        self.server.call(lambda: self._publish_data("bars", symbol, msg))

    def push_trade(self, symbol: str, ts_ns: int, price: float, size: float, trade_id: int) -> None:
        seconds, nanos = divmod(ts_ns, 1_000_000_000)
        msg = {"T": "t", "S": symbol, "i": trade_id, "x": "V", "p": price, "s": size,
               "t": msgpack.Timestamp(seconds, nanos), "c": ["@"], "z": "C"}
        self.server.call(lambda: self._publish_data("trades", symbol, msg))

    def push_quote(self, symbol: str, ts_ns: int, bid: float, ask: float, bid_size: float, ask_size: float) -> None:
        seconds, nanos = divmod(ts_ns, 1_000_000_000)
        msg = {"T": "q", "S": symbol, "bx": "V", "bp": bid, "bs": bid_size, "ax": "V", "ap": ask, "as": ask_size,
               "t": msgpack.Timestamp(seconds, nanos), "c": ["R"], "z": "C"}
        self.server.call(lambda: self._publish_data("quotes", symbol, msg))

    def data_subscriptions(self) -> list[dict[str, set[str]]]:
        return [dict(s) for s in self._data_clients.values()]

    def trading_stream_clients(self) -> int:
        return len(self._trading_clients)

    # --- the market ----------------------------------------------------------------------------

    async def _update(self, event: str, order: FakeOrder, **extra: Any) -> None:
        order.updated_at = now_iso()
        data: dict[str, Any] = {"event": event, "order": order.to_json(), "timestamp": now_iso(), **extra}
        msg = {"stream": "trade_updates", "data": data}
        self.trade_updates.append(msg)
        await self._broadcast(msg)

    async def _broadcast(self, msg: dict[str, Any]) -> None:
        raw = json.dumps(msg).encode()
        for ws in list(self._trading_clients):
            try:
                await ws.send_bytes(raw)
            except Exception:  # a client that went away
                self._trading_clients.remove(ws)

    async def _fill(self, order: FakeOrder, qty: Decimal, price: Decimal) -> str:
        if not order.open or order.status == "held":
            raise ValueError(f"order {order.client_order_id} is {order.status}")
        qty = min(qty, order.qty - order.filled_qty)
        order.filled_qty += qty
        order.filled_value += qty * price
        done = order.filled_qty == order.qty
        order.status = "filled" if done else "partially_filled"
        if done:
            order.filled_at = now_iso()
        held, cost = self.positions.get(order.symbol, (Decimal(0), Decimal(0)))
        signed = qty if order.side == "buy" else -qty
        self.positions[order.symbol] = (held + signed, cost + signed * price)
        self.cash -= signed * price
        exec_id = str(uuid.UUID(int=next(self._exec_ids)))
        stamp = datetime.now(UTC)
        self.activities.append({
            "id": stamp.strftime("%Y%m%d%H%M%S") + f"{stamp.microsecond // 1000:03d}::{exec_id}",
            "activity_type": "FILL", "transaction_time": stamp.isoformat().replace("+00:00", "Z"),
            "type": "fill" if done else "partial_fill", "price": str(price), "qty": _num(qty), "side": order.side,
            "symbol": order.symbol, "leaves_qty": _num(order.qty - order.filled_qty), "order_id": order.id,
            "cum_qty": _num(order.filled_qty), "order_status": order.status,
        })
        await self._update("fill" if done else "partial_fill", order, execution_id=exec_id, price=str(price),
                           qty=_num(qty), position_qty=_num(held + signed))
        if done:
            await self._after_fill(order)
        return exec_id

    async def _after_fill(self, order: FakeOrder) -> None:
        if order.legs and order.order_class in ("bracket", "oto"):  # the exits go live
            for leg in order.legs:
                leg.status = "new"
                await self._update("new", leg)
        siblings = self._siblings(order)
        for other in siblings:
            if other.open:
                await self._close(other, "canceled")

    def _siblings(self, order: FakeOrder) -> list[FakeOrder]:
        """The other side of an OCO pair (bracket legs, or an oco parent and its leg)."""
        if order.parent is not None:
            parent = self.orders[order.parent]
            group = [parent, *parent.legs] if parent.order_class == "oco" else list(parent.legs)
        elif order.order_class == "oco":
            group = [order, *order.legs]
        else:
            return []
        return [o for o in group if o is not order]

    async def _close(self, order: FakeOrder, status: str) -> None:
        order.status = status
        stamp = now_iso()
        if status == "canceled":
            order.canceled_at = stamp
        elif status == "expired":
            order.expired_at = stamp
        await self._update(status, order)
        if order.parent is None and order.order_class in ("bracket", "oto"):
            for leg in order.legs:  # held exits of an entry that never filled go with it
                if leg.open and order.filled_qty == 0:
                    await self._close(leg, status)

    async def _publish_data(self, channel: str, symbol: str, msg: dict[str, Any]) -> None:
        raw = msgpack.packb([msg])
        for ws, subs in list(self._data_clients.items()):
            if symbol in subs.get(channel, set()) or "*" in subs.get(channel, set()):
                await ws.send_bytes(raw)

    # --- HTTP ------------------------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def gate(request: Request, call_next: Any) -> Response:
            body: Any = None
            raw = await request.body()
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
            self.requests.append((request.method, request.url.path, dict(request.query_params), body))
            if (request.headers.get("APCA-API-KEY-ID") != self.key_id
                    or request.headers.get("APCA-API-SECRET-KEY") != self.secret):
                self.bad_auth += 1
                return _error(401, 40110000, "request is not authorized")
            for fault in list(self.faults):
                if fault.method == request.method and request.url.path.startswith(fault.path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    if fault.kind == "429":
                        return _error(429, 42900000, "rate limit exceeded", {"Retry-After": fault.retry_after})
                    if fault.kind == "5xx":
                        return _error(fault.status, 50000000, "internal server error")
                    if fault.kind == "timeout":
                        await call_next(request)  # carried out...
                        await self._hold.wait()  # ...and never answered
            response: Response = await call_next(request)
            return response

        @app.post("/v2/orders")
        async def create_order(request: Request) -> Response:
            body = await request.json()
            try:
                order = self._new_order(body)
            except ValueError as exc:
                return _error(422, 42210000, str(exc))
            except KeyError as exc:
                return _error(422, 40010001, str(exc.args[0]))
            await self._update("new", order)
            return JSONResponse(order.to_json())

        @app.get("/v2/orders")
        async def list_orders(status: str = "open", nested: bool = False, limit: int = 50) -> Response:
            chosen = [o for o in self.orders.values() if o.parent is None or not nested]
            if status == "open":
                chosen = [o for o in chosen if o.open]
            elif status == "closed":
                chosen = [o for o in chosen if not o.open]
            chosen.sort(key=lambda o: o.created_at, reverse=True)
            return JSONResponse([o.to_json(nested=nested) for o in chosen[:limit]])

        @app.get("/v2/orders:by_client_order_id")
        async def by_client_order_id(client_order_id: str) -> Response:
            order = self.by_coid.get(client_order_id)
            if order is None:
                return _error(404, 40410000, "order not found")
            return JSONResponse(order.to_json())

        @app.get("/v2/orders/{order_id}")
        async def get_order(order_id: str) -> Response:
            order = self.orders.get(order_id)
            if order is None:
                return _error(404, 40410000, "order not found")
            return JSONResponse(order.to_json())

        @app.delete("/v2/orders/{order_id}")
        async def cancel_order(order_id: str) -> Response:
            order = self.orders.get(order_id)
            if order is None:
                return _error(404, 40410000, "order not found")
            if not order.open:
                return _error(422, 42210000, f"order is not cancelable (status {order.status})")
            await self._close(order, "canceled")
            return Response(status_code=204)

        @app.patch("/v2/orders/{order_id}")
        async def replace_order(order_id: str, request: Request) -> Response:
            old = self.orders.get(order_id)
            if old is None:
                return _error(404, 40410000, "order not found")
            if not old.open or old.status == "held":
                return _error(422, 42210000, f"order is not replaceable (status {old.status})")
            body = await request.json()
            coid = str(body.get("client_order_id") or uuid.uuid4())
            if coid in self.by_coid:
                return _error(422, 40010001, "client_order_id must be unique")
            try:
                qty = _dec(body["qty"], "qty") if "qty" in body else old.qty
                limit = _dec(body["limit_price"], "limit_price") if "limit_price" in body else old.limit_price
                stop = _dec(body["stop_price"], "stop_price") if "stop_price" in body else old.stop_price
            except ValueError as exc:
                return _error(422, 42210000, str(exc))
            if qty <= old.filled_qty:
                return _error(422, 42210000, "qty must be greater than the filled quantity")
            for name, price in (("limit_price", limit), ("stop_price", stop)):
                if price is not None and not _penny_ok(price):
                    return _error(422, 42210000, f"invalid {name} {price}. sub-penny increment does not fulfill "
                                                 "minimum pricing criteria")
            new = FakeOrder(id=str(uuid.uuid4()), client_order_id=coid, symbol=old.symbol, side=old.side,
                            type=old.type, qty=qty, time_in_force=str(body.get("time_in_force", old.time_in_force)),
                            order_class=old.order_class, limit_price=limit, stop_price=stop, replaces=old.id,
                            trail_percent=old.trail_percent, trail_price=old.trail_price)
            new.filled_qty, new.filled_value = old.filled_qty, old.filled_value
            old.status, old.replaced_by, old.replaced_at = "replaced", new.id, now_iso()
            self.orders[new.id] = new
            self.by_coid[coid] = new
            await self._update("replaced", old)
            await self._update("new", new)
            return JSONResponse(new.to_json())

        @app.get("/v2/positions")
        async def positions() -> Response:
            out = []
            for symbol, (qty, cost) in sorted(self.positions.items()):
                if qty == 0:
                    continue
                avg = cost / qty
                out.append({
                    "asset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, symbol)), "symbol": symbol, "exchange": "NASDAQ",
                    "asset_class": "us_equity", "asset_marginable": True,
                    "avg_entry_price": str(avg.quantize(Decimal("0.0001"))), "qty": _num(abs(qty)),
                    "side": "long" if qty > 0 else "short", "market_value": str(cost), "cost_basis": str(cost),
                    "unrealized_pl": "0", "unrealized_plpc": "0", "unrealized_intraday_pl": "0",
                    "unrealized_intraday_plpc": "0", "current_price": str(avg.quantize(Decimal("0.01"))),
                    "lastday_price": str(avg.quantize(Decimal("0.01"))), "change_today": "0",
                    "qty_available": _num(abs(qty)),
                })
            return JSONResponse(out)

        @app.get("/v2/account/activities/FILL")
        async def fill_activities(after: str | None = None, direction: str = "desc", page_size: int = 100,
                                  page_token: str | None = None) -> Response:
            rows = [a for a in self.activities if after is None or a["transaction_time"] > after.replace("+00:00", "Z")]
            if direction == "desc":
                rows.reverse()
            if page_token is not None:  # the id of the last activity of the previous page
                ids = [a["id"] for a in rows]
                rows = rows[ids.index(page_token) + 1:] if page_token in ids else []
            return JSONResponse(rows[:page_size])

        @app.get("/v2/account")
        async def account() -> Response:
            return JSONResponse({
                "id": "8f7d6c5b-0000-4000-8000-000000000001", "account_number": "PA3TESTFAKE",
                "status": "ACTIVE", "crypto_status": "ACTIVE", "currency": "USD", "buying_power": str(self.cash),
                "regt_buying_power": str(self.cash), "non_marginable_buying_power": str(self.cash),
                "cash": str(self.cash), "accrued_fees": "0", "portfolio_value": str(self.cash),
                "trading_blocked": False, "transfers_blocked": False, "account_blocked": False,
                "created_at": "2024-01-02T15:00:00Z", "trade_suspended_by_user": False, "multiplier": "1",
                "shorting_enabled": False, "equity": str(self.cash), "last_equity": str(self.cash),
                "long_market_value": "0", "short_market_value": "0", "initial_margin": "0",
                "maintenance_margin": "0", "last_maintenance_margin": "0", "sma": "0", "daytrade_count": 0,
            })

        @app.get("/v2/stocks/bars")
        async def bars(symbols: str, timeframe: str, limit: int = 1000, page_token: str | None = None,
                       start: str | None = None, end: str | None = None) -> Response:
            size = min(limit, self.page_size)
            rows = [(s, b) for s in symbols.split(",") for b in self.bars.get(s, [])
                    if (start is None or b["t"] >= start.replace("+00:00", "Z"))
                    and (end is None or b["t"] < end.replace("+00:00", "Z"))]
            offset = int(page_token) if page_token else 0
            page = rows[offset:offset + size]
            out: dict[str, list[dict[str, Any]]] = {}
            for s, b in page:
                out.setdefault(s, []).append(b)
            following = offset + size
            return JSONResponse({"bars": out, "next_page_token": str(following) if following < len(rows) else None})

        @app.get("/v2/stocks/trades/latest")
        async def latest_trades(symbols: str) -> Response:
            out = {}
            for s in symbols.split(","):
                if s in self.last_trade:
                    out[s] = {"t": now_iso(), "x": "V", "p": float(self.last_trade[s]), "s": 100, "c": ["@"],
                              "i": 1, "z": "C"}
            return JSONResponse({"trades": out})

        @app.websocket("/stream")
        async def trading_stream(ws: WebSocket) -> None:
            await ws.accept()
            try:
                first = json.loads(await _receive(ws))
                data = first.get("data", {})
                ok = (first.get("action") == "authenticate" and data.get("key_id") == self.key_id
                      and data.get("secret_key") == self.secret)
                status = "authorized" if ok else "unauthorized"
                await ws.send_bytes(json.dumps({"stream": "authorization",
                                                "data": {"action": "authenticate", "status": status}}).encode())
                if not ok:
                    self.bad_auth += 1
                    await ws.close()
                    return
                while True:
                    msg = json.loads(await _receive(ws))
                    if msg.get("action") == "listen":
                        streams = msg.get("data", {}).get("streams", [])
                        await ws.send_bytes(json.dumps({"stream": "listening",
                                                        "data": {"streams": streams}}).encode())
                        if "trade_updates" in streams and ws not in self._trading_clients:
                            self._trading_clients.append(ws)
            except (WebSocketDisconnect, RuntimeError):
                pass
            finally:
                if ws in self._trading_clients:
                    self._trading_clients.remove(ws)

        async def data_stream(ws: WebSocket) -> None:
            await ws.accept()
            await ws.send_bytes(msgpack.packb([{"T": "success", "msg": "connected"}]))
            subs: dict[str, set[str]] = {"trades": set(), "quotes": set(), "bars": set()}
            try:
                auth = msgpack.unpackb(await _receive(ws))
                if auth.get("action") != "auth" or auth.get("key") != self.key_id or auth.get("secret") != self.secret:
                    self.bad_auth += 1
                    await ws.send_bytes(msgpack.packb([{"T": "error", "code": 402, "msg": "auth failed"}]))
                    await ws.close()
                    return
                await ws.send_bytes(msgpack.packb([{"T": "success", "msg": "authenticated"}]))
                self._data_clients[ws] = subs
                while True:
                    msg = msgpack.unpackb(await _receive(ws))
                    action = msg.get("action")
                    for channel in subs:
                        for symbol in msg.get(channel, []):
                            (subs[channel].add if action == "subscribe" else subs[channel].discard)(symbol)
                    await ws.send_bytes(msgpack.packb([{"T": "subscription", **{c: sorted(s) for c, s in subs.items()},
                                                        "updatedBars": [], "dailyBars": [], "statuses": [],
                                                        "lulds": [], "corrections": [], "cancelErrors": []}]))
            except (WebSocketDisconnect, RuntimeError):
                pass
            finally:
                self._data_clients.pop(ws, None)

        app.add_api_websocket_route("/v2/iex", data_stream)
        app.add_api_websocket_route("/v2/sip", data_stream)
        return app

    def _new_order(self, body: dict[str, Any]) -> FakeOrder:
        coid = str(body.get("client_order_id") or uuid.uuid4())
        if coid in self.by_coid:
            raise KeyError("client_order_id must be unique")
        if len(coid) > 128:
            raise ValueError("client_order_id must be no more than 128 characters")
        symbol = str(body.get("symbol") or "")
        side = body.get("side")
        kind = body.get("type")
        tif = body.get("time_in_force")
        order_class = body.get("order_class") or "simple"
        if not symbol:
            raise ValueError("symbol is required")
        if side not in ("buy", "sell"):
            raise ValueError(f"invalid side {side!r}")
        if kind not in ("market", "limit", "stop", "stop_limit", "trailing_stop"):
            raise ValueError(f"invalid order type {kind!r}")
        if tif not in ("day", "gtc", "opg", "cls", "ioc", "fok"):
            raise ValueError(f"invalid time_in_force {tif!r}")
        qty = _dec(body.get("qty"), "qty")
        limit = _dec(body["limit_price"], "limit_price") if body.get("limit_price") is not None else None
        stop = _dec(body["stop_price"], "stop_price") if body.get("stop_price") is not None else None
        if kind in ("limit", "stop_limit") and limit is None:
            raise ValueError("limit_price is required")
        if kind in ("stop", "stop_limit") and stop is None:
            raise ValueError("stop_price is required")
        if kind in ("market", "stop", "trailing_stop") and limit is not None:
            raise ValueError(f"limit_price must not be given for {kind} orders")
        for name, price in (("limit_price", limit), ("stop_price", stop)):
            if price is not None and not _penny_ok(price):
                raise ValueError(f"invalid {name} {price}. sub-penny increment does not fulfill minimum pricing "
                                 "criteria")
        if qty != qty.to_integral() and not (kind == "market" and tif == "day"):
            raise ValueError("fractional orders must be DAY market orders")
        trail_percent = trail_price = None
        if kind == "trailing_stop":
            if body.get("trail_percent") is not None:
                trail_percent = _dec(body["trail_percent"], "trail_percent")
            elif body.get("trail_price") is not None:
                trail_price = _dec(body["trail_price"], "trail_price")
            else:
                raise ValueError("trail_price or trail_percent is required for trailing_stop orders")
        order = FakeOrder(id=str(uuid.uuid4()), client_order_id=coid, symbol=symbol, side=side, type=kind, qty=qty,
                          time_in_force=tif, order_class=order_class, limit_price=limit, stop_price=stop,
                          trail_percent=trail_percent, trail_price=trail_price)
        exit_side = "sell" if side == "buy" else "buy"
        take_profit = body.get("take_profit")
        stop_loss = body.get("stop_loss")
        if order_class in ("bracket", "oco", "oto"):
            if order_class != "oto" and not (take_profit and stop_loss):
                raise ValueError(f"{order_class} orders require take_profit and stop_loss")
            if order_class == "oto" and not (take_profit or stop_loss):
                raise ValueError("oto orders require take_profit or stop_loss")
            if tif not in ("day", "gtc"):
                raise ValueError(f"time_in_force {tif} is not supported for {order_class} orders")
            tp = _dec(take_profit["limit_price"], "take_profit.limit_price") if take_profit else None
            sl = _dec(stop_loss["stop_price"], "stop_loss.stop_price") if stop_loss else None
            sl_limit = (_dec(stop_loss["limit_price"], "stop_loss.limit_price")
                        if stop_loss and stop_loss.get("limit_price") is not None else None)
            for name, price in (("take_profit.limit_price", tp), ("stop_loss.stop_price", sl)):
                if price is not None and not _penny_ok(price):
                    raise ValueError(f"invalid {name} {price}. sub-penny increment does not fulfill minimum "
                                     "pricing criteria")
            base = limit or stop or self.last_trade.get(symbol)
            long = side == "buy" if order_class != "oco" else side == "sell"
            if tp is not None and sl is not None and (tp <= sl if long else tp >= sl):
                raise ValueError("take_profit.limit_price must be beyond stop_loss.stop_price")
            if base is not None and order_class != "oco":
                if tp is not None and (tp < base + Decimal("0.01") if long else tp > base - Decimal("0.01")):
                    raise ValueError(f"take_profit.limit_price must be >= base_price + 0.01 (base {base})")
                if sl is not None and (sl > base - Decimal("0.01") if long else sl < base + Decimal("0.01")):
                    raise ValueError(f"stop_loss.stop_price must be <= base_price - 0.01 (base {base})")
            if order_class == "oco":  # the order itself is the take profit; its one leg is the stop
                if kind != "limit" or tp is None or limit != tp:
                    raise ValueError("oco orders must be limit orders whose limit_price is take_profit.limit_price")
                assert sl is not None
                order.legs.append(FakeOrder(id=str(uuid.uuid4()), client_order_id=str(uuid.uuid4()), symbol=symbol,
                                            side=side, type="stop" if sl_limit is None else "stop_limit", qty=qty,
                                            time_in_force=tif, order_class="oco", stop_price=sl, limit_price=sl_limit,
                                            parent=order.id))
            else:
                leg_status = "held"
                if tp is not None:
                    order.legs.append(FakeOrder(id=str(uuid.uuid4()), client_order_id=str(uuid.uuid4()),
                                                symbol=symbol, side=exit_side, type="limit", qty=qty,
                                                time_in_force=tif, order_class=order_class, limit_price=tp,
                                                status=leg_status, parent=order.id))
                if sl is not None:
                    order.legs.append(FakeOrder(id=str(uuid.uuid4()), client_order_id=str(uuid.uuid4()),
                                                symbol=symbol, side=exit_side,
                                                type="stop" if sl_limit is None else "stop_limit", qty=qty,
                                                time_in_force=tif, order_class=order_class, stop_price=sl,
                                                limit_price=sl_limit, status=leg_status, parent=order.id))
        elif take_profit or stop_loss:
            raise ValueError("take_profit and stop_loss need order_class bracket, oco or oto")
        self.orders[order.id] = order
        self.by_coid[coid] = order
        for leg in order.legs:
            self.orders[leg.id] = leg
            self.by_coid[leg.client_order_id] = leg
        return order


async def _receive(ws: WebSocket) -> bytes:
    """One frame's payload, text or binary (the SDK sends the trading stream's JSON as text)."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    if message.get("bytes") is not None:
        return bytes(message["bytes"])
    return str(message.get("text", "")).encode()


@contextmanager
def alpaca_fake(**kw: Any) -> Iterator[AlpacaFake]:
    fake = AlpacaFake(**kw)
    fake.server.start()
    try:
        yield fake
    finally:
        fake.server.stop()
