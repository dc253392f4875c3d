"""A fake Kraken spot venue on 127.0.0.1 that speaks Kraken's REST wire format, for the real (unmodified) ccxt.

Public (GET ``/0/public/``): ``Time``, ``AssetPairs``, ``Ticker``, ``OHLC`` (``since`` exclusive, at most 720
rows, Kraken's ``[time, o, h, l, c, vwap, volume, count]``), ``Depth``. Private (POST ``/0/private/``, form
body): ``Balance``, ``BalanceEx`` (ccxt's ``fetch_balance``), ``AddOrder`` (``cl_ord_id``, ``oflags=post``,
``timeinforce`` GTC/IOC/GTD with ``expiretm``), ``CancelOrder`` (``txid`` = order id or ``cl_ord_id``),
``QueryOrders``, ``OpenOrders``/``ClosedOrders`` (``cl_ord_id`` filter), ``TradesHistory``. Private calls need
``API-Key`` and ``API-Sign`` = base64(HMAC-SHA512(URI path + SHA256(nonce + POST data), base64-decoded secret))
over the body exactly as sent, and a ``nonce`` greater than the key's last one. Every answer is
``{"error": [...], "result": ...}`` with HTTP 200 and Kraken's codes: ``EAPI:Invalid key``,
``EAPI:Invalid signature``, ``EAPI:Invalid nonce``, ``EGeneral:Too many requests``, ``EOrder:Insufficient funds``,
``EOrder:Post only order``, ``EOrder:Order minimum not met``, ``EOrder:Unknown order``,
``EQuery:Unknown asset pair``. ``cl_ord_id`` must be a UUID (36 or 32 hex characters) or at most 18 characters
and a create past its ``deadline`` is refused (the texts of these two refusals are the fake's guesses).

Orders rest until :meth:`FakeKraken.fill`; market orders fill at once at :attr:`FakeKraken.price`; GTD orders
expire at ``expiretm``. Faults (:meth:`FakeKraken.inject`): ``drop`` (processed, connection cut), ``503``
(processed, non-JSON 503), ``429`` (not processed; ``EGeneral:Too many requests``), ``nonce`` (not processed;
``EAPI:Invalid nonce``), ``drop_before`` (cut, not processed), ``latency`` (processed, answered ``delay_s``
later), ``queued`` (processed ``delay_s`` late: signature, nonce and ``deadline`` checked then). A nonce is
checked against the key's highest one, or within :attr:`FakeKraken.nonce_window` below it (Kraken's key
setting). No
websocket: the adapter and the data feed poll this venue. Field sets follow the recorded responses in
``tests/fixtures/venue-wire/kraken`` (PROVENANCE.md there).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.fakes.common import Fault, LoopbackFake, drop, fault_after_processing, take_fault

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "venue-wire" / "kraken"
API_KEY = "fake-kraken-key-0123456789abcdef"
SECRET = base64.b64encode(b"fake-kraken-secret-0123456789-abcdefghijklmnopqrstuvwxyz").decode()
#: The ``cl_ord_id`` formats Kraken takes besides free text of at most 18 characters: long and short UUIDs.
CL_ORD_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32}")


def recorded(name: str) -> Any:
    return json.loads((FIXTURES / "responses.json").read_text())[name]


def sign(path: str, body: str, nonce: str, secret: str = SECRET) -> str:
    digest = hashlib.sha256((nonce + body).encode()).digest()
    mac = hmac.new(base64.b64decode(secret), path.encode() + digest, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


@dataclass(frozen=True)
class Pair:
    """An asset pair: Kraken's id (``XXBTZUSD``), altname (``XBTUSD``) and asset ids (``XXBT``, ``ZUSD``)."""

    id: str
    altname: str
    base: str
    quote: str


@dataclass
class Order:
    txid: str
    cl_ord_id: str
    pair: Pair
    side: str
    ordertype: str
    vol: Decimal
    price: Decimal
    oflags: str
    opentm: float
    expiretm: int = 0
    status: str = "open"
    vol_exec: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)
    closetm: float = 0.0
    reason: str | None = None
    trades: list[str] = field(default_factory=list)


@dataclass
class Trade:
    txid: str
    ordertxid: str
    pair: Pair
    side: str
    ordertype: str
    price: Decimal
    vol: Decimal
    fee: Decimal
    time: float
    maker: bool
    trade_id: int


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    at: float


@dataclass
class FakeKraken(LoopbackFake):
    """See the module docstring. ``start()`` binds 127.0.0.1 on a free port; ``url`` is its base URL."""

    pairs: list[Pair] = field(default_factory=lambda: [Pair("XXBTZUSD", "XBTUSD", "XXBT", "ZUSD"),
                                                       Pair("XETHZUSD", "ETHUSD", "XETH", "ZUSD")])
    price: Decimal = Decimal("43000.0")
    balances: dict[str, Decimal] = field(default_factory=lambda: {"XXBT": Decimal(0), "ZUSD": Decimal(100000)})
    clock_offset_ms: int = 0
    requests: list[Request] = field(default_factory=list)
    orders: dict[str, Order] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    #: Every error code answered, in order.
    errors: list[str] = field(default_factory=list)
    #: pair id -> [[open s, o, h, l, c, v], ...] (ascending)
    ohlc: dict[str, list[list[Any]]] = field(default_factory=dict)
    last_nonce: int = 0
    #: The API key's "nonce window": a nonce this much below the highest seen is still taken (once).
    nonce_window: int = 0
    port: int = 0

    def __post_init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._seq = 0
        self._nonces: set[int] = set()

    async def start(self) -> FakeKraken:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._rest)
        await self.serve(app)
        return self

    def now(self) -> float:
        return time.time() + self.clock_offset_ms / 1000

    def inject(self, path: str, kind: str, *, times: int = 1, delay_s: float = 0.0) -> None:
        self.faults.append(Fault("", path, kind, times, delay_s=delay_s))

    def _id(self, prefix: str) -> str:
        self._seq += 1
        tail = f"{self._seq:011d}"
        return f"{prefix}{tail[:5]}-{tail[5:10]}-FAKE{tail[10:]}"

    # --- REST -------------------------------------------------------------------------------------

    def error(self, *codes: str) -> web.Response:
        self.errors.extend(codes)
        return web.json_response({"error": list(codes), "result": {}})

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        body = await request.text()
        params = {**dict(request.query), **dict(parse_qsl(body, keep_blank_values=True))}
        path = request.path
        self.requests.append(Request(request.method, path, params, time.monotonic()))
        fault = take_fault(self.faults, request.method, path)
        if fault is not None and fault.kind == "429":
            return self.error("EGeneral:Too many requests")
        if fault is not None and fault.kind == "drop_before":
            return drop(request)
        if fault is not None and fault.kind == "queued":
            await asyncio.sleep(fault.delay_s)
        self._expire()
        if path.startswith("/0/public/") and request.method == "GET":
            answer: Any = self._public(path.removeprefix("/0/public/"), params)
        elif path.startswith("/0/private/") and request.method == "POST":
            refusal = self._check_signature(request, path, body, params)
            if refusal is not None:
                return refusal
            if fault is not None and fault.kind == "nonce":
                return self.error("EAPI:Invalid nonce")
            answer = self._private(path.removeprefix("/0/private/"), params)
        else:
            return web.json_response({"error": ["EGeneral:Unknown method"], "result": {}}, status=404)
        if isinstance(answer, web.Response):
            return answer
        late = await fault_after_processing(fault, request,
                                            lambda: web.Response(status=503, text="Service Unavailable"))
        return late if late is not None else web.json_response({"error": [], "result": answer})

    def _check_signature(self, request: web.Request, path: str, body: str,
                         params: dict[str, str]) -> web.Response | None:
        if request.headers.get("API-Key") != API_KEY:
            return self.error("EAPI:Invalid key")
        nonce = params.get("nonce", "")
        if not nonce.isdigit():
            return self.error("EAPI:Invalid nonce")
        if not hmac.compare_digest(sign(path, body, nonce), request.headers.get("API-Sign", "")):
            return self.error("EAPI:Invalid signature")
        value = int(nonce)
        late_ok = self.last_nonce - value <= self.nonce_window and value not in self._nonces
        if value <= self.last_nonce and not late_ok:
            return self.error("EAPI:Invalid nonce")
        self._nonces.add(value)
        self.last_nonce = max(self.last_nonce, value)
        return None

    def _pair(self, name: str) -> Pair | None:
        return next((p for p in self.pairs if name in (p.id, p.altname)), None)

    def _public(self, endpoint: str, params: dict[str, str]) -> Any:
        if endpoint == "Time":
            now = int(self.now())
            return {"unixtime": now, "rfc1123": time.strftime("%a, %d %b %y %H:%M:%S +0000", time.gmtime(now))}
        if endpoint == "AssetPairs":
            return {p.id: self._asset_pair(p) for p in self.pairs}
        pair = self._pair(params.get("pair", ""))
        if pair is None:
            return self.error("EQuery:Unknown asset pair")
        if endpoint == "Ticker":
            px, bid = f"{self.price}", f"{self.price - Decimal('0.1')}"
            return {pair.id: {"a": [px, "1", "1.000"], "b": [bid, "2", "2.000"], "c": [px, "0.01000000"],
                              "v": ["10.0", "100.0"], "p": [px, px], "t": [10, 100], "l": [bid, bid],
                              "h": [px, px], "o": px}}
        if endpoint == "Depth":
            bid = self.price - Decimal("0.1")
            return {pair.id: {"asks": [[f"{self.price}", "1.000", int(self.now())]],
                              "bids": [[f"{bid}", "2.000", int(self.now())]]}}
        if endpoint == "OHLC":
            since = int(params.get("since", "0"))
            rows = [r for r in self.ohlc.get(pair.id, []) if r[0] > since][:720]
            out = [[r[0], r[1], r[2], r[3], r[4], r[4], r[5], 1] for r in rows]
            return {pair.id: out, "last": out[-1][0] if out else since}
        return self.error("EGeneral:Unknown method")

    @staticmethod
    def _asset_pair(p: Pair) -> dict[str, Any]:
        return {"altname": p.altname, "wsname": f"{p.altname[:3]}/{p.altname[3:]}", "aclass_base": "currency",
                "base": p.base, "aclass_quote": "currency", "quote": p.quote, "lot": "unit", "cost_decimals": 5,
                "pair_decimals": 1, "lot_decimals": 8, "lot_multiplier": 1, "leverage_buy": [], "leverage_sell": [],
                "fees": [[0, 0.4], [10000, 0.35]], "fees_maker": [[0, 0.25], [10000, 0.2]],
                "fee_volume_currency": "ZUSD", "margin_call": 80, "margin_stop": 40, "ordermin": "0.0001",
                "costmin": "0.5", "tick_size": "0.1", "status": "online"}

    def _private(self, endpoint: str, params: dict[str, str]) -> Any:
        if endpoint == "Balance":
            return {k: f"{v:.10f}" for k, v in self.balances.items()}
        if endpoint == "BalanceEx":
            return {k: {"balance": f"{v:.10f}", "hold_trade": f"{self._held(k):.10f}"}
                    for k, v in self.balances.items()}
        if endpoint == "AddOrder":
            return self._add(params)
        if endpoint == "CancelOrder":
            order = self._find(params.get("txid", "") or params.get("cl_ord_id", ""))
            if order is None or order.status not in ("open", "pending"):
                return self.error("EOrder:Unknown order")
            self._close(order, "canceled", "User requested")
            return {"count": 1}
        if endpoint == "QueryOrders":
            found = {t: self._order_json(self.orders[t]) for t in params.get("txid", "").split(",") if t in self.orders}
            return found if found else self.error("EOrder:Invalid order")
        if endpoint in ("OpenOrders", "ClosedOrders"):
            wanted = {"OpenOrders": ("open", "pending")}.get(endpoint, ("closed", "canceled", "expired"))
            coid = params.get("cl_ord_id")
            listed = {o.txid: self._order_json(o) for o in reversed(list(self.orders.values()))
                      if o.status in wanted and (coid is None or o.cl_ord_id == coid)}
            return {"open": listed} if endpoint == "OpenOrders" else {"closed": listed, "count": len(listed)}
        if endpoint == "TradesHistory":
            start = float(params.get("start", "0"))
            listed = {t.txid: self._trade_json(t) for t in reversed(self.trades) if t.time > start}
            return {"trades": listed, "count": len(listed)}
        return self.error("EGeneral:Unknown method")

    def _held(self, asset: str) -> Decimal:
        return sum(((o.vol - o.vol_exec) * (o.price if o.side == "buy" else 1) for o in self.orders.values()
                    if o.status == "open" and (o.pair.quote if o.side == "buy" else o.pair.base) == asset), Decimal(0))

    def _find(self, ref: str) -> Order | None:
        return self.orders.get(ref) or next((o for o in self.orders.values() if o.cl_ord_id and o.cl_ord_id == ref),
                                            None)

    def _add(self, params: dict[str, str]) -> Any:
        pair = self._pair(params.get("pair", ""))
        if pair is None:
            return self.error("EQuery:Unknown asset pair")
        vol = Decimal(params.get("volume", "0"))
        price = Decimal(params.get("price", "0"))
        side, ordertype = params.get("type", ""), params.get("ordertype", "")
        if vol < Decimal("0.0001"):
            return self.error("EOrder:Order minimum not met")
        coid = params.get("cl_ord_id", "")
        if coid and not (CL_ORD_ID.fullmatch(coid) or len(coid) <= 18):
            return self.error("EGeneral:Invalid arguments:cl_ord_id")
        deadline = params.get("deadline")
        if deadline and datetime.fromisoformat(deadline.replace("Z", "+00:00")).timestamp() < self.now():
            return self.error("EOrder:Deadline elapsed")
        needed_quote = vol * (price or self.price)
        if side == "buy" and needed_quote > self.balances.get(pair.quote, Decimal(0)):
            return self.error("EOrder:Insufficient funds")
        if side == "sell" and vol > self.balances.get(pair.base, Decimal(0)):
            return self.error("EOrder:Insufficient funds")
        oflags = params.get("oflags", "")
        crosses = (side == "buy" and price >= self.price) or (side == "sell" and price <= self.price)
        if "post" in oflags.split(",") and ordertype == "limit" and crosses:
            return self.error("EOrder:Post only order")
        tif = params.get("timeinforce", "GTC")
        expiretm = params.get("expiretm", "0")
        expire = int(self.now()) + int(expiretm[1:]) if expiretm.startswith("+") else int(expiretm or "0")
        if tif == "GTD" and expire <= self.now():
            return self.error("EGeneral:Invalid arguments:expiretm")
        order = Order(self._id("O"), coid, pair, side, ordertype, vol, price, oflags, self.now(),
                      expire if tif == "GTD" else 0)
        self.orders[order.txid] = order
        if ordertype == "market":
            self._execute(order, vol, self.price, maker=False)
        elif tif == "IOC":
            self._close(order, "canceled", "Insufficient liquidity")
        answer = recorded("createOrder")["result"]
        price_text = "market" if ordertype == "market" else f"limit {price}"
        return {**answer, "txid": [order.txid], "descr": {"order": f"{side} {vol:.8f} {pair.altname} @ {price_text}"}}

    def _order_json(self, order: Order) -> dict[str, Any]:
        template = next(iter(recorded("fetchOrder")["result"].values()))
        values: dict[str, Any] = {
            "userref": 0, "cl_ord_id": order.cl_ord_id or None, "status": order.status,
            "opentm": order.opentm, "expiretm": str(order.expiretm),
            "descr": {"pair": order.pair.altname, "type": order.side, "ordertype": order.ordertype,
                      "price": f"{order.price}", "price2": "0", "leverage": "none",
                      "order": f"{order.side} {order.vol:.8f} {order.pair.altname} @ {order.ordertype} {order.price}",
                      "close": ""},
            "vol": f"{order.vol:.8f}", "vol_exec": f"{order.vol_exec:.8f}", "cost": f"{order.cost}",
            "fee": f"{order.fee}", "price": f"{order.cost / order.vol_exec}" if order.vol_exec else "0.00000",
            "oflags": order.oflags or "fciq", "trades": list(order.trades), "reason": order.reason,
            "closetm": order.closetm or None,
        }
        out = {k: values.get(k, v) for k, v in template.items()}
        out["cl_ord_id"] = values["cl_ord_id"]
        if not order.closetm:
            out.pop("closetm", None)
        return out

    @staticmethod
    def _trade_json(t: Trade) -> dict[str, Any]:
        return {"ordertxid": t.ordertxid, "postxid": f"P{t.txid[1:]}", "pair": t.pair.id, "aclass": "currency",
                "time": t.time, "type": t.side, "ordertype": t.ordertype, "price": f"{t.price}",
                "cost": f"{t.price * t.vol}", "fee": f"{t.fee}", "vol": f"{t.vol:.8f}", "margin": "0.00000",
                "leverage": "0", "misc": "", "trade_id": t.trade_id, "maker": t.maker}

    # --- the test's matching engine ------------------------------------------------------------------

    def _close(self, order: Order, status: str, reason: str | None = None) -> None:
        order.status, order.reason, order.closetm = status, reason, self.now()

    def _expire(self) -> None:
        for order in self.orders.values():
            if order.status == "open" and order.expiretm and self.now() >= order.expiretm:
                self._close(order, "expired")

    def order_by_client_id(self, coid: str) -> Order:
        return next(o for o in self.orders.values() if o.cl_ord_id == coid)

    def _execute(self, order: Order, vol: Decimal, price: Decimal, *, maker: bool) -> Trade:
        rate = Decimal("0.0025") if maker else Decimal("0.004")
        fee = (vol * price * rate).quantize(Decimal("0.00001"))
        trade = Trade(self._id("T"), order.txid, order.pair, order.side, order.ordertype, price, vol, fee, self.now(),
                      maker, 1000 + len(self.trades))
        self.trades.append(trade)
        order.trades.append(trade.txid)
        order.vol_exec += vol
        order.cost += vol * price
        order.fee += fee
        if order.vol_exec >= order.vol:
            self._close(order, "closed")
        sign_ = 1 if order.side == "buy" else -1
        self.balances[order.pair.base] = self.balances.get(order.pair.base, Decimal(0)) + sign_ * vol
        self.balances[order.pair.quote] = (self.balances.get(order.pair.quote, Decimal(0)) - sign_ * vol * price
                                           - fee)
        return trade

    def fill(self, coid: str, vol: str, price: str | None = None) -> Trade:
        """The venue executes part of a resting order."""
        order = self.order_by_client_id(coid)
        return self._execute(order, Decimal(vol), Decimal(price) if price else order.price, maker=True)
