"""A fake Binance spot venue on 127.0.0.1 that speaks Binance's wire format, for the real (unmodified) ccxt.

REST (``/api/v3``): ``time``, ``exchangeInfo``, ``klines``, ``ticker/24hr``, ``ticker/bookTicker``, ``depth``,
``aggTrades``; signed: ``order`` (POST/GET/DELETE, by ``orderId`` or ``origClientOrderId``), ``openOrders``,
``myTrades``, ``account``. Signed requests need ``X-MBX-APIKEY`` and an HMAC-SHA256 ``signature`` over the query
string (GET/DELETE) or form body (POST) exactly as sent, with ``timestamp`` within ``recvWindow`` of the fake's
clock; errors are Binance's own ``{"code": .., "msg": ..}`` with its HTTP statuses. Answers follow the recorded
responses in ``tests/fixtures/venue-wire/ccxt`` (see its PROVENANCE.md). Every request is recorded
(:attr:`FakeBinance.requests`); any other path (``/fapi``, ``/sapi``, ...) is recorded and answered 404, so a test
can prove a client never called it.

Websockets: market streams on ``/ws`` (``SUBSCRIBE`` -> ``{"result": null, "id": n}``; ``<sym>@miniTicker``,
``@trade``, ``@kline_<i>``, ``@depth``, ``@bookTicker``) and the WebSocket API on ``/ws-api/v3`` with
``userDataStream.subscribe.signature`` (signature checked) pushing ``executionReport`` events.

The matching engine is the test's: orders rest until :meth:`FakeBinance.fill` executes them (market orders fill at
once at :attr:`FakeBinance.price`). Fault injection (:meth:`FakeBinance.inject`): ``drop`` (process the request,
then cut the connection without an answer), ``503`` (process, then answer 503), ``429`` (not processed; 429 with
``Retry-After``), ``drop_before`` (cut without processing). :meth:`FakeBinance.kill_websockets` closes every socket
and refuses new ones.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from tests.fakes.common import Fault, LoopbackFake, drop, fault_after_processing, take_fault

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "venue-wire" / "ccxt"
API_KEY = "fake-binance-key-0123456789"
SECRET = "fake-binance-secret-9876543210"
MINUTE_MS = 60_000


def recorded(method: str, index: int = 0) -> Any:
    data = json.loads((FIXTURES / "binance.response.httpResponses.json").read_text())
    return data["methods"][method][index]["httpResponse"]


def _fmt(value: Decimal) -> str:
    return f"{value:.8f}"


@dataclass
class Order:
    symbol: str
    order_id: int
    client_order_id: str
    side: str
    type: str
    time_in_force: str
    quantity: Decimal
    price: Decimal
    stop_price: Decimal
    time_ms: int
    status: str = "NEW"
    executed: Decimal = Decimal(0)
    quote: Decimal = Decimal(0)
    update_ms: int = 0


@dataclass
class Trade:
    symbol: str
    trade_id: int
    order_id: int
    side: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    time_ms: int
    maker: bool


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    at: float
    signed: bool = False


@dataclass
class FakeBinance(LoopbackFake):
    """See the module docstring. ``start()`` binds 127.0.0.1 on a free port; ``url`` is its base URL."""

    symbols: dict[str, tuple[str, str]] = field(default_factory=lambda: {"BTCUSDT": ("BTC", "USDT"),
                                                                          "ETHUSDT": ("ETH", "USDT")})
    price: Decimal = Decimal("43000.00")
    balances: dict[str, Decimal] = field(default_factory=lambda: {"BTC": Decimal(0), "USDT": Decimal(100000)})
    clock_offset_ms: int = 0
    requests: list[Request] = field(default_factory=list)
    orders: dict[int, Order] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    #: Klines served by /api/v3/klines: symbol -> [[open ms, o, h, l, c, v], ...] (ascending).
    klines: dict[str, list[list[Any]]] = field(default_factory=dict)
    port: int = 0
    ws_enabled: bool = True
    book_update_id: int = 1000

    def __post_init__(self) -> None:
        self._next_order = 5_000_000
        self._next_trade = 900_000
        self._runner: web.AppRunner | None = None
        self._market_sockets: list[tuple[web.WebSocketResponse, set[str]]] = []
        self._user_sockets: list[web.WebSocketResponse] = []
        self.ws_subscriptions: list[str] = []
        self._sends: set[asyncio.Future[None]] = set()

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> FakeBinance:
        app = web.Application()
        app.router.add_route("GET", "/ws-api/v3", self._ws_api)
        app.router.add_route("GET", "/ws", self._ws_market)
        app.router.add_route("GET", "/ws/{tail:.*}", self._ws_market)
        app.router.add_route("*", "/{tail:.*}", self._rest)
        await self.serve(app)
        return self

    async def stop(self) -> None:
        await self.kill_websockets()
        await super().stop()

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_offset_ms

    def inject(self, method: str, path: str, kind: str, *, times: int = 1, retry_after: str = "1") -> None:
        self.faults.append(Fault(method, path, kind, times, retry_after=retry_after))

    # --- REST -----------------------------------------------------------------------------------

    @staticmethod
    def error(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> web.Response:
        return web.json_response({"code": code, "msg": msg}, status=status, headers=headers)

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        body = await request.text()
        query = dict(parse_qsl(request.query_string, keep_blank_values=True))
        params = {**query, **dict(parse_qsl(body, keep_blank_values=True))}
        path = request.path
        self.requests.append(Request(request.method, path, params, time.monotonic(), "signature" in params))
        if not path.startswith("/api/v3/"):
            return self.error(404, -1, f"not served by the fake: {path}")
        fault = take_fault(self.faults, request.method, path)
        if fault is not None and fault.kind == "429":
            return self.error(429, -1003, "Too much request weight used; current limit is 6000 request weight per "
                                          "1 MINUTE. Please use WebSocket Streams for live updates to avoid polling "
                                          "the API.", {"Retry-After": fault.retry_after})
        if fault is not None and fault.kind == "drop_before":
            return drop(request)
        endpoint = path.removeprefix("/api/v3/")
        public: dict[str, Callable[[dict[str, str]], Any]] = {
                  "time": self._time, "exchangeInfo": self._exchange_info, "klines": self._klines,
                  "ticker/24hr": self._ticker, "ticker/bookTicker": self._book_ticker, "depth": self._depth,
                  "aggTrades": self._agg_trades, "ping": lambda _p: {}}
        if request.method == "GET" and endpoint in public:
            answer: Any = public[endpoint](params)
        else:
            refusal = self._check_signature(request, query, body)
            if refusal is not None:
                return refusal
            handler = {("POST", "order"): self._new_order, ("GET", "order"): self._get_order,
                       ("DELETE", "order"): self._cancel_order, ("GET", "openOrders"): self._open_orders,
                       ("GET", "myTrades"): self._my_trades, ("GET", "account"): self._account}.get(
                (request.method, endpoint))
            if handler is None:
                return self.error(404, -1, f"not served by the fake: {request.method} {path}")
            answer = handler(params)
            if isinstance(answer, web.Response):
                return answer
        late = await fault_after_processing(fault, request, lambda: self.error(
            503, -1001, "Internal error; unable to process your request. Please try again."))
        return late if late is not None else web.json_response(answer)

    def _check_signature(self, request: web.Request, query: str | dict[str, str], body: str) -> web.Response | None:
        if request.headers.get("X-MBX-APIKEY") != API_KEY:
            return self.error(401, -2015, "Invalid API-key, IP, or permissions for action.")
        payload = body if request.method == "POST" else request.query_string
        unsigned, sep, signature = payload.rpartition("&signature=")
        if not sep:
            return self.error(400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or "
                                          "malformed.")
        expected = hmac.new(SECRET.encode(), unsigned.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return self.error(400, -1022, "Signature for this request is not valid.")
        params = dict(parse_qsl(unsigned))
        timestamp = int(params.get("timestamp", "0"))
        window = int(params.get("recvWindow", "5000"))
        now = self.now_ms()
        if timestamp > now + 1000 or now - timestamp > window:
            return self.error(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        return None

    def _time(self, _params: dict[str, str]) -> dict[str, int]:
        return {"serverTime": self.now_ms()}

    def _exchange_info(self, _params: dict[str, str]) -> dict[str, Any]:
        symbols = []
        for name, (base, quote) in self.symbols.items():
            symbols.append({
                "symbol": name, "status": "TRADING", "baseAsset": base, "baseAssetPrecision": 8, "quoteAsset": quote,
                "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
                "quoteCommissionPrecision": 8,
                "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT",
                               "TAKE_PROFIT_LIMIT"],
                "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True, "quoteOrderQtyMarketAllowed": True,
                "allowTrailingStop": True, "cancelReplaceAllowed": True, "isSpotTradingAllowed": True,
                "isMarginTradingAllowed": True,
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000",
                     "tickSize": "0.01000000"},
                    {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000",
                     "stepSize": "0.00001000"},
                    {"filterType": "ICEBERG_PARTS", "limit": 10},
                    {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "83.50000000",
                     "stepSize": "0.00000000"},
                    {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
                     "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
                    {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
                ],
                "permissions": [], "permissionSets": [["SPOT", "MARGIN"]],
                "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
            })
        return {"timezone": "UTC", "serverTime": self.now_ms(),
                "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                                "limit": 6000},
                               {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                               {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5,
                                "limit": 61000}],
                "exchangeFilters": [], "symbols": symbols}

    def _klines(self, params: dict[str, str]) -> list[list[Any]] | web.Response:
        rows = self.klines.get(params.get("symbol", ""))
        if rows is None:
            return self.error(400, -1121, "Invalid symbol.")
        start = int(params.get("startTime", "0"))
        end = int(params.get("endTime", str(2**62)))
        limit = min(int(params.get("limit", "500")), 1000)
        out = []
        for row in rows:
            if start <= row[0] <= end:
                open_ms = row[0]
                out.append([open_ms, row[1], row[2], row[3], row[4], row[5], open_ms + MINUTE_MS - 1, "0.00000000",
                            1, "0.00000000", "0.00000000", "0"])
                if len(out) >= limit:
                    break
        return out

    def _ticker(self, params: dict[str, str]) -> dict[str, Any]:
        template = recorded("fetchTicker")
        now = self.now_ms()
        values = {"symbol": params.get("symbol", "BTCUSDT"), "lastPrice": _fmt(self.price),
                  "bidPrice": _fmt(self.price - Decimal("0.01")), "askPrice": _fmt(self.price),
                  "openTime": now - 86_400_000, "closeTime": now, "firstId": 1, "lastId": 2, "count": 2}
        return {k: values.get(k, v) for k, v in template.items()}

    def _book_ticker(self, params: dict[str, str]) -> dict[str, Any]:
        return {"symbol": params.get("symbol", "BTCUSDT"), "bidPrice": _fmt(self.price - Decimal("0.01")),
                "bidQty": "1.00000000", "askPrice": _fmt(self.price), "askQty": "2.00000000"}

    def _depth(self, _params: dict[str, str]) -> dict[str, Any]:
        bid, ask = self.price - Decimal("0.01"), self.price
        return {"lastUpdateId": self.book_update_id,
                "bids": [[_fmt(bid), "1.00000000"], [_fmt(bid - 1), "2.00000000"]],
                "asks": [[_fmt(ask), "1.50000000"], [_fmt(ask + 1), "3.00000000"]]}

    def _agg_trades(self, params: dict[str, str]) -> list[dict[str, Any]]:
        symbol = params.get("symbol", "BTCUSDT")
        return [{"a": t.trade_id, "p": _fmt(t.price), "q": _fmt(t.qty), "f": t.trade_id, "l": t.trade_id,
                 "T": t.time_ms, "m": t.maker, "M": True} for t in self.trades if t.symbol == symbol][-500:]

    # --- orders ---------------------------------------------------------------------------------

    def _find(self, params: dict[str, str]) -> Order | None:
        if "orderId" in params:
            return self.orders.get(int(params["orderId"]))
        coid = params.get("origClientOrderId")
        for order in self.orders.values():
            if order.client_order_id == coid and order.symbol == params.get("symbol"):
                return order
        return None

    def _order_json(self, order: Order, template_method: str = "fetchOrder") -> dict[str, Any]:
        template = recorded(template_method)
        values: dict[str, Any] = {
            "symbol": order.symbol, "orderId": order.order_id, "orderListId": -1,
            "clientOrderId": order.client_order_id, "price": _fmt(order.price), "origQty": _fmt(order.quantity),
            "executedQty": _fmt(order.executed), "cummulativeQuoteQty": _fmt(order.quote), "status": order.status,
            "timeInForce": order.time_in_force, "type": order.type, "side": order.side,
            "stopPrice": _fmt(order.stop_price), "icebergQty": _fmt(Decimal(0)), "time": order.time_ms,
            "updateTime": order.update_ms or order.time_ms, "isWorking": True, "workingTime": order.time_ms,
            "origQuoteOrderQty": _fmt(Decimal(0)), "selfTradePreventionMode": "EXPIRE_MAKER",
            "transactTime": order.update_ms or order.time_ms,
        }
        return {k: values.get(k, v) for k, v in template.items()}

    def _new_order(self, params: dict[str, str]) -> dict[str, Any] | web.Response:
        symbol = params.get("symbol", "")
        if symbol not in self.symbols:
            return self.error(400, -1121, "Invalid symbol.")
        coid = params.get("newClientOrderId") or f"fake-{self._next_order}"
        if any(o.client_order_id == coid and o.status in ("NEW", "PARTIALLY_FILLED") for o in self.orders.values()):
            return self.error(400, -2010, "Duplicate order sent.")
        kind = params.get("type", "")
        quantity = Decimal(params.get("quantity", "0"))
        if quantity <= 0:
            return self.error(400, -1013, "Filter failure: LOT_SIZE")
        price = Decimal(params.get("price", "0"))
        base, quote = self.symbols[symbol]
        if params.get("side") == "BUY" and quantity * (price or self.price) > self.balances.get(quote, Decimal(0)):
            return self.error(400, -2010, "Account has insufficient balance for requested action.")
        if params.get("side") == "SELL" and quantity > self.balances.get(base, Decimal(0)):
            return self.error(400, -2010, "Account has insufficient balance for requested action.")
        self._next_order += 1
        now = self.now_ms()
        order = Order(symbol, self._next_order, coid, params.get("side", ""), kind,
                      params.get("timeInForce", "GTC"), quantity, price, Decimal(params.get("stopPrice", "0")), now)
        self.orders[order.order_id] = order
        fills = []
        if kind == "MARKET":
            fills.append(self._execute(order, quantity, self.price, maker=False))
        elif kind == "LIMIT" and order.time_in_force in ("IOC", "FOK"):
            order.status = "EXPIRED"  # no liquidity at the limit in the fake's book
        answer = self._order_json(order, "createOrder")
        answer["fills"] = [{"price": _fmt(t.price), "qty": _fmt(t.qty), "commission": _fmt(t.commission),
                            "commissionAsset": quote, "tradeId": t.trade_id} for t in fills]
        self._push_report(order, "NEW", None)
        if fills:
            self._push_report(order, "TRADE", fills[-1])
        return answer

    def _get_order(self, params: dict[str, str]) -> dict[str, Any] | web.Response:
        order = self._find(params)
        if order is None:
            return self.error(400, -2013, "Order does not exist.")
        return self._order_json(order)

    def _cancel_order(self, params: dict[str, str]) -> dict[str, Any] | web.Response:
        order = self._find(params)
        if order is None or order.status not in ("NEW", "PARTIALLY_FILLED"):
            return self.error(400, -2011, "Unknown order sent.")
        order.status = "CANCELED"
        order.update_ms = self.now_ms()
        answer = self._order_json(order)
        answer = {"symbol": order.symbol, "origClientOrderId": order.client_order_id, "orderId": order.order_id,
                  "orderListId": -1, "clientOrderId": f"cancel-{order.order_id}",
                  "transactTime": order.update_ms, **{k: answer[k] for k in
                                                      ("price", "origQty", "executedQty", "cummulativeQuoteQty",
                                                       "status", "timeInForce", "type", "side")},
                  "selfTradePreventionMode": "EXPIRE_MAKER"}
        self._push_report(order, "CANCELED", None)
        return answer

    def _open_orders(self, params: dict[str, str]) -> list[dict[str, Any]]:
        return [self._order_json(o) for o in self.orders.values()
                if o.status in ("NEW", "PARTIALLY_FILLED") and o.symbol == params.get("symbol", o.symbol)]

    def _my_trades(self, params: dict[str, str]) -> list[dict[str, Any]]:
        template = recorded("fetchMyTrades")[0]
        out = []
        for t in self.trades:
            if t.symbol != params.get("symbol") or ("orderId" in params and t.order_id != int(params["orderId"])):
                continue
            if "startTime" in params and t.time_ms < int(params["startTime"]):
                continue
            _base, quote = self.symbols[t.symbol]
            values = {"symbol": t.symbol, "id": t.trade_id, "orderId": t.order_id, "orderListId": -1,
                      "price": _fmt(t.price), "qty": _fmt(t.qty), "quoteQty": _fmt(t.price * t.qty),
                      "commission": _fmt(t.commission), "commissionAsset": quote, "time": t.time_ms,
                      "isBuyer": t.side == "BUY", "isMaker": t.maker, "isBestMatch": True}
            out.append({k: values.get(k, v) for k, v in template.items()})
        return out

    def _account(self, _params: dict[str, str]) -> dict[str, Any]:
        answer = dict(recorded("fetchBalance"))
        answer["updateTime"] = self.now_ms()
        answer["balances"] = [{"asset": a, "free": _fmt(v), "locked": "0.00000000"} for a, v in self.balances.items()]
        return answer

    # --- the test's matching engine ------------------------------------------------------------

    def order_by_client_id(self, coid: str) -> Order:
        return next(o for o in self.orders.values() if o.client_order_id == coid)

    def _execute(self, order: Order, qty: Decimal, price: Decimal, *, maker: bool) -> Trade:
        self._next_trade += 1
        base, quote = self.symbols[order.symbol]
        commission = (qty * price * Decimal("0.001")).quantize(Decimal("0.00000001"))
        trade = Trade(order.symbol, self._next_trade, order.order_id, order.side, price, qty, commission,
                      self.now_ms(), maker)
        self.trades.append(trade)
        order.executed += qty
        order.quote += qty * price
        order.status = "FILLED" if order.executed >= order.quantity else "PARTIALLY_FILLED"
        order.update_ms = trade.time_ms
        sign = 1 if order.side == "BUY" else -1
        self.balances[base] = self.balances.get(base, Decimal(0)) + sign * qty
        self.balances[quote] = self.balances.get(quote, Decimal(0)) - sign * qty * price - commission
        self._push_trade(trade)
        return trade

    def fill(self, coid: str, qty: str, price: str | None = None) -> Trade:
        """The venue executes part of a resting order (and reports it on the user stream)."""
        order = self.order_by_client_id(coid)
        trade = self._execute(order, Decimal(qty), Decimal(price) if price else order.price, maker=True)
        self._push_report(order, "TRADE", trade)
        return trade

    # --- websockets ------------------------------------------------------------------------------

    async def kill_websockets(self, *, refuse_new: bool = True) -> None:
        self.ws_enabled = not refuse_new
        sockets = [ws for ws, _ in self._market_sockets] + self._user_sockets
        self._market_sockets.clear()
        self._user_sockets.clear()
        for ws in sockets:
            await ws.close()

    async def _ws_market(self, request: web.Request) -> web.StreamResponse:
        if not self.ws_enabled:
            return web.Response(status=503)
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        streams: set[str] = set()
        entry = (ws, streams)
        self._market_sockets.append(entry)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if data.get("method") == "SUBSCRIBE":
                streams.update(data.get("params", []))
                self.ws_subscriptions += data.get("params", [])
                await ws.send_json({"result": None, "id": data.get("id")})
            elif data.get("method") == "UNSUBSCRIBE":
                streams.difference_update(data.get("params", []))
                await ws.send_json({"result": None, "id": data.get("id")})
        if entry in self._market_sockets:
            self._market_sockets.remove(entry)
        return ws

    async def _ws_api(self, request: web.Request) -> web.StreamResponse:
        if not self.ws_enabled:
            return web.Response(status=503)
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if data.get("method") != "userDataStream.subscribe.signature":
                await ws.send_json({"id": data.get("id"), "status": 400,
                                    "error": {"code": -1100, "msg": "unknown method"}})
                continue
            params = dict(data.get("params") or {})
            signature = params.pop("signature", "")
            payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
            expected = hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
            if params.get("apiKey") != API_KEY or not hmac.compare_digest(expected, signature):
                await ws.send_json({"id": data.get("id"), "status": 400,
                                    "error": {"code": -1022, "msg": "Signature for this request is not valid."}})
                continue
            self._user_sockets.append(ws)
            await ws.send_json({"id": data.get("id"), "status": 200, "result": {"subscriptionId": 0}})
        if ws in self._user_sockets:
            self._user_sockets.remove(ws)
        return ws

    def _send(self, ws: web.WebSocketResponse, payload: dict[str, Any]) -> None:
        task = asyncio.ensure_future(ws.send_json(payload))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    def _broadcast(self, stream: str, payload: dict[str, Any]) -> None:
        for ws, streams in list(self._market_sockets):
            if stream in streams and not ws.closed:
                self._send(ws, payload)

    def _push_report(self, order: Order, execution: str, trade: Trade | None) -> None:
        _base, quote = self.symbols[order.symbol]
        event = {
            "e": "executionReport", "E": self.now_ms(), "s": order.symbol, "c": order.client_order_id,
            "S": order.side, "o": order.type, "f": order.time_in_force, "q": _fmt(order.quantity),
            "p": _fmt(order.price), "P": _fmt(order.stop_price), "F": "0.00000000", "g": -1, "C": "",
            "x": execution, "X": order.status, "r": "NONE", "i": order.order_id,
            "l": _fmt(trade.qty) if trade else "0.00000000", "z": _fmt(order.executed),
            "L": _fmt(trade.price) if trade else "0.00000000",
            "n": _fmt(trade.commission) if trade else "0", "N": quote if trade else None,
            "T": trade.time_ms if trade else self.now_ms(), "t": trade.trade_id if trade else -1,
            "I": order.order_id * 10, "w": order.status == "NEW", "m": bool(trade and trade.maker), "M": False,
            "O": order.time_ms, "Z": _fmt(order.quote), "Y": _fmt(trade.qty * trade.price) if trade else "0",
            "Q": "0.00000000", "W": order.time_ms, "V": "EXPIRE_MAKER",
        }
        for ws in list(self._user_sockets):
            if not ws.closed:
                self._send(ws, {"subscriptionId": 0, "event": event})

    def _push_trade(self, trade: Trade) -> None:
        stream = f"{trade.symbol.lower()}@trade"
        self._broadcast(stream, {"e": "trade", "E": trade.time_ms, "s": trade.symbol, "t": trade.trade_id,
                                 "p": _fmt(trade.price), "q": _fmt(trade.qty), "T": trade.time_ms,
                                 "m": trade.maker, "M": True})

    def push_trade(self, symbol: str, price: str, qty: str) -> Trade:
        """A public trade (someone else's) on the market streams."""
        self._next_trade += 1
        trade = Trade(symbol, self._next_trade, 0, "BUY", Decimal(price), Decimal(qty), Decimal(0), self.now_ms(),
                      False)
        self.trades.append(trade)
        self._push_trade(trade)
        return trade

    def push_kline(self, symbol: str, open_ms: int, o: str, h: str, low: str, c: str, v: str, *,
                   closed: bool, interval: str = "1m") -> None:
        stream = f"{symbol.lower()}@kline_{interval}"
        self._broadcast(stream, {"e": "kline", "E": open_ms + MINUTE_MS, "s": symbol, "k": {
            "t": open_ms, "T": open_ms + MINUTE_MS - 1, "s": symbol, "i": interval, "f": 1, "L": 2, "o": o, "c": c,
            "h": h, "l": low, "v": v, "n": 2, "x": closed, "q": "0", "V": "0", "Q": "0", "B": "0"}})

    def push_book_ticker(self, symbol: str, bid: str, ask: str) -> None:
        self.book_update_id += 1
        self._broadcast(f"{symbol.lower()}@bookTicker", {"u": self.book_update_id, "s": symbol, "b": bid,
                                                         "B": "1.00000000", "a": ask, "A": "2.00000000"})

    def push_depth(self, symbol: str, bid: str, ask: str) -> None:
        first = self.book_update_id + 1
        self.book_update_id += 1
        payload = {"e": "depthUpdate", "E": self.now_ms(), "s": symbol, "U": first, "u": self.book_update_id,
                   "b": [[bid, "1.00000000"]], "a": [[ask, "1.00000000"]]}
        for stream in (f"{symbol.lower()}@depth", f"{symbol.lower()}@depth@100ms"):
            self._broadcast(stream, payload)
