"""The fake Polymarket's HTTP and websocket server (aiohttp on 127.0.0.1, in a thread with its own loop).

One host serves what Polymarket splits over four: Gamma (``/markets``, ``/events``, ``/public-search``), the CLOB
(``/version``, ``/tick-size``, ``/neg-risk``, ``/fee-rate``, ``/book``, ``/books``, ``/price``, ``/midpoint``,
``/prices-history``, ``/markets/<condition id>``, ``/auth/*``, ``/order``, ``/data/*``), the data API's public
``/trades`` and the market websocket channel ``/ws/market``. Errors are Polymarket's ``{"error": "..."}``.
Faults (:class:`Fault`) apply to the first matching requests: ``latency`` (answer late), ``timeout`` (carry it
out, never answer), ``drop`` (carry it out, close the connection without an answer: a lost response), ``5xx`` and
``429`` (answer without doing it, 429 with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.polymarket import crypto
from tests.fakes.polymarket.engine import ONE, UNIT, Engine, Market, Order, Refused, Trade, num
from tests.fakes.polymarket.public import PublicRoutes, error
from tests.support.ports import free_tcp_port

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Fault:
    method: str
    path: str
    kind: str
    status: int = 503
    retry_after: str = "1"
    delay_s: float = 0.0
    times: int = 1


class Server(PublicRoutes):
    """HTTP + websocket routes over an :class:`Engine`."""

    def __init__(self, engine: Engine, chain_id: int) -> None:
        self.engine = engine
        self.chain_id = chain_id
        self.port = free_tcp_port()
        self.faults: list[Fault] = []
        #: api key -> (address, secret, passphrase)
        self.keys: dict[str, tuple[str, str, str]] = {}
        #: every private request: (method, path, api key or "")
        self.requests: list[tuple[str, str, str]] = []
        self.posted: list[dict[str, Any]] = []
        self.refused: list[str] = []
        self.ws_clients: dict[web.WebSocketResponse, set[str]] = {}
        self.ws_skip = 0
        self._sends: set[asyncio.Future[None]] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, name=f"fake-polymarket-{self.port}", daemon=True)
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        engine.on_book.append(self._push_price_change)
        engine.on_trade.append(self._push_trade)

    # --- running ------------------------------------------------------------------------------------------

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        app = web.Application(middlewares=[self._middleware])
        self._routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._ready.set()
        await self._stop.wait()
        for ws in list(self.ws_clients):
            await ws.close()
        await self._runner.cleanup()

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake Polymarket did not start")

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)

    def on_loop(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop (engine state belongs to it) and return its result."""
        assert self.loop is not None

        async def run() -> Any:
            return fn()
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=10)

    # --- middleware: faults -----------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        for fault in list(self.faults):
            if fault.method == request.method and request.path.startswith(fault.path):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                if fault.kind == "429":
                    return error(429, "Too Many Requests", {"Retry-After": fault.retry_after})
                if fault.kind == "5xx":
                    return error(fault.status, "Internal server error")
                if fault.kind == "latency":
                    await asyncio.sleep(fault.delay_s)
                    return await handler(request)
                await handler(request)  # carried out...
                if fault.kind == "drop":  # ...and the connection closes without an answer
                    assert request.transport is not None
                    request.transport.abort()
                    raise web.HTTPServiceUnavailable()
                await asyncio.sleep(3600)  # timeout: never answered
        return await handler(request)

    # --- auth ---------------------------------------------------------------------------------------------

    def _l1(self, request: web.Request) -> str:
        h = request.headers
        try:
            signer = crypto.clob_auth_signer(h["POLY_ADDRESS"], h["POLY_TIMESTAMP"], int(h["POLY_NONCE"]),
                                             h["POLY_SIGNATURE"], self.chain_id)
        except Exception as exc:
            raise web.HTTPUnauthorized(text=json.dumps({"error": f"Invalid L1 Request headers: {exc}"}),
                                       content_type="application/json") from None
        if signer.lower() != h["POLY_ADDRESS"].lower():
            raise web.HTTPUnauthorized(text=json.dumps({"error": "Invalid L1 Request headers"}),
                                       content_type="application/json")
        return signer

    async def _l2(self, request: web.Request) -> tuple[str, str]:
        """(api key, address) of a correctly signed private request, else 401."""
        h = request.headers
        body = await request.text()
        key = h.get("POLY_API_KEY", "")
        self.requests.append((request.method, request.path, key))
        known = self.keys.get(key)
        expected = (crypto.hmac_signature(known[1], h.get("POLY_TIMESTAMP", ""), request.method, request.path, body)
                    if known else "")
        if (known is None or h.get("POLY_PASSPHRASE") != known[2]
                or h.get("POLY_ADDRESS", "").lower() != known[0].lower() or h.get("POLY_SIGNATURE") != expected):
            raise web.HTTPUnauthorized(text=json.dumps({"error": "Unauthorized/Invalid api key"}),
                                       content_type="application/json")
        return key, known[0]

    async def derive_key(self, request: web.Request) -> web.Response:
        address = self._l1(request)
        creds = crypto.derive_creds(address, int(request.headers["POLY_NONCE"]))
        self.keys[creds["apiKey"]] = (address, creds["secret"], creds["passphrase"])
        return web.json_response(creds)

    # --- routes -----------------------------------------------------------------------------------------

    def _routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/version", self._simple(lambda _q: {"version": 2}))
        r.add_get("/ok", self._simple(lambda _q: "OK"))
        r.add_get("/tick-size", self._simple(lambda q: {"minimum_tick_size": float(self._token(q).tick_size)}))
        r.add_get("/neg-risk", self._simple(lambda q: {"neg_risk": self._token(q).neg_risk}))
        r.add_get("/fee-rate", self._simple(lambda q: {"base_fee": self._token(q).fee_rate_bps}))
        r.add_get("/book", self._simple(lambda q: self._book(q.query.get("token_id", ""))))
        r.add_post("/books", self._books)
        r.add_get("/price", self._price)
        r.add_get("/midpoint", self._midpoint)
        r.add_get("/prices-history", self._history)
        r.add_get("/markets", self._gamma_markets)
        r.add_get("/markets/{id}", self._market_by_id)
        r.add_get("/events", self._gamma_events)
        r.add_get("/public-search", self._search)
        r.add_get("/trades", self._public_trades)
        r.add_get("/auth/derive-api-key", self.derive_key)
        r.add_post("/auth/api-key", self.derive_key)
        r.add_post("/order", self._post_order)
        r.add_delete("/order", self._cancel)
        r.add_get("/data/orders", self._open_orders)
        r.add_get("/data/order/{id}", self._order)
        r.add_get("/data/trades", self._user_trades)
        r.add_get("/balance-allowance", self._balance)
        r.add_get("/ws/market", self._ws_market)

    @staticmethod
    def _simple(fn: Callable[[web.Request], Any]) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            return web.json_response(fn(request))
        return handle

    # --- private ----------------------------------------------------------------------------------------

    async def _post_order(self, request: web.Request) -> web.Response:
        key, address = await self._l2(request)
        body = await request.json()
        self.posted.append(body)
        signed = body["order"]
        try:
            market = self.engine.market_of(str(signed["tokenId"]))
        except KeyError:
            return self._refuse(400, "Invalid order payload: unknown token id")
        if signed["signer"].lower() != address.lower():
            return self._refuse(400, "the order signer address has to be the address of the API KEY")
        try:
            recovered = crypto.order_signer(signed, self.chain_id, market.neg_risk)
        except Exception:
            recovered = ""
        eoa_maker_ok = int(signed["signatureType"]) != 0 or signed["maker"].lower() == signed["signer"].lower()
        if recovered.lower() != signed["signer"].lower() or not eoa_maker_ok:
            return self._refuse(400, "invalid signature")
        maker_amt, taker_amt = Decimal(signed["makerAmount"]) / UNIT, Decimal(signed["takerAmount"]) / UNIT
        buy = signed["side"] == "BUY"
        size, price = (taker_amt, maker_amt / taker_amt) if buy else (maker_amt, taker_amt / maker_amt)
        if body["orderType"] in ("FOK", "FAK"):
            price = price.quantize(market.tick_size)
        order = Order(id=crypto.order_hash(signed, self.chain_id, market.neg_risk), owner=key,
                      maker_address=signed["maker"], market=market, asset_id=str(signed["tokenId"]),
                      side=signed["side"], price=price, original_size=size, order_type=body["orderType"],
                      expiration=int(signed.get("expiration") or 0), salt=int(signed["salt"]))
        try:
            trades = self.engine.place(order, bool(body.get("postOnly")))
        except Refused as exc:
            return self._refuse(400, str(exc))
        status = "matched" if order.size_matched else ("live" if order.status == "LIVE" else "unmatched")
        return web.json_response({
            "success": True, "errorMsg": "", "orderID": order.id, "status": status,
            "makingAmount": num(order.size_matched * (price if buy else ONE)) if trades else "",
            "takingAmount": num(order.size_matched * (ONE if buy else price)) if trades else "",
            "tradeIDs": [t.id for t in trades], "transactionsHashes": [t.transaction_hash for t in trades]})

    def _refuse(self, status: int, message: str) -> web.Response:
        self.refused.append(message)
        return error(status, message)

    async def _cancel(self, request: web.Request) -> web.Response:
        key, _address = await self._l2(request)
        order_id = (await request.json())["orderID"]
        order = self.engine.orders.get(order_id)
        why = "order not found" if order is None or order.owner != key else self.engine.cancel(order_id)
        return web.json_response({"canceled": [] if why else [order_id],
                                  "not_canceled": {order_id: why} if why else {}})

    async def _open_orders(self, request: web.Request) -> web.Response:
        key, _address = await self._l2(request)
        q = request.query
        now = self.engine.clock()
        data = [o.to_json() for o in self.engine.orders.values()
                if o.owner == key and o.resting(now) and q.get("id", o.id) == o.id
                and q.get("market", o.market.condition_id) == o.market.condition_id
                and q.get("asset_id", o.asset_id) == o.asset_id]
        return web.json_response({"data": data, "next_cursor": "LTE=", "limit": 500, "count": len(data)})

    async def _order(self, request: web.Request) -> web.Response:
        key, _address = await self._l2(request)
        order = self.engine.orders.get(request.match_info["id"])
        if order is None or order.owner != key:
            return error(404, "order not found")
        order.resting(self.engine.clock())
        return web.json_response(order.to_json())

    async def _user_trades(self, request: web.Request) -> web.Response:
        key, _address = await self._l2(request)
        q = request.query
        data = [t.to_json() for t in self.engine.trades_of(key)
                if q.get("id", t.id) == t.id and int(q.get("after", 0)) <= t.match_time
                and q.get("market", t.taker.market.condition_id) == t.taker.market.condition_id]
        return web.json_response({"data": data, "next_cursor": "LTE=", "limit": 500, "count": len(data)})

    async def _balance(self, request: web.Request) -> web.Response:
        await self._l2(request)
        return web.json_response({"balance": "1000000000", "allowances": {}})

    # --- websocket market channel -------------------------------------------------------------------------

    async def _ws_market(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            if msg.data == "PING":
                await ws.send_str("PONG")
                continue
            sub = json.loads(msg.data)
            assets = set(sub.get("assets_ids", []))
            self.ws_clients[ws] = self.ws_clients.get(ws, set()) | assets
            await ws.send_str(json.dumps([{**self._book(a), "event_type": "book"} for a in assets]))
        self.ws_clients.pop(ws, None)
        return ws

    def broadcast(self, token: str, message: dict[str, Any]) -> None:
        if self.ws_skip > 0:
            self.ws_skip -= 1
            return
        text = json.dumps(message)
        for ws, assets in list(self.ws_clients.items()):
            if token in assets and not ws.closed:
                task = asyncio.ensure_future(ws.send_str(text))  # in order: tasks start FIFO
                self._sends.add(task)
                task.add_done_callback(self._sends.discard)

    def _push_price_change(self, token: str, side: str, price: Decimal) -> None:
        market = self.engine.market_of(token)
        bids, asks = self.engine.levels(token, "BUY"), self.engine.levels(token, "SELL")
        self.broadcast(token, {"event_type": "price_change", "market": market.condition_id,
                                "timestamp": str(int(self.engine.clock() * 1000)), "price_changes": [{
                                    "asset_id": token, "price": num(price), "side": side,
                                    "size": num(self.engine.level_size(token, side, price)), "hash": "",
                                    "best_bid": num(bids[0][0]) if bids else "0",
                                    "best_ask": num(asks[0][0]) if asks else "1"}]})

    def _push_trade(self, trade: Trade) -> None:
        if trade.status != "MATCHED" and not (trade.status == "CONFIRMED" and self.engine.auto_confirm):
            return
        t = trade.taker
        self.broadcast(t.asset_id, {"event_type": "last_trade_price", "asset_id": t.asset_id,
                                     "market": t.market.condition_id, "price": num(trade.price), "side": t.side,
                                     "size": num(trade.size), "fee_rate_bps": str(t.market.fee_rate_bps),
                                     "timestamp": str(int(self.engine.clock() * 1000))})

    def push_resolved(self, market: Market) -> None:
        assert market.payouts is not None
        winner = market.yes if market.payouts[0] == 1 else market.no
        message = {"event_type": "market_resolved", "id": market.condition_id[-6:], "market": market.condition_id,
                   "assets_ids": [market.yes, market.no], "winning_asset_id": winner,
                   "winning_outcome": market.outcome(winner), "timestamp": str(int(self.engine.clock() * 1000))}
        self.broadcast(market.yes, message)

    async def drop_ws(self) -> None:
        for ws in list(self.ws_clients):
            await ws.close()
        self.ws_clients.clear()
