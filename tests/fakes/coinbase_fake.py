"""A fake Coinbase Advanced Trade venue on 127.0.0.1 that speaks its wire format, for the real (unmodified) ccxt.

REST under ``/api/v3/brokerage``: public ``time``, ``market/products`` (spot; ``product_type=FUTURE`` -> none),
``market/products/{id}/candles``, ``market/products/{id}/ticker``; private ``transaction_summary``, ``accounts``,
``orders`` (create: ``limit_limit_gtc``/``limit_limit_gtd`` with ``end_time``, ``post_only``, ``sor_limit_ioc``,
``limit_limit_fok``, ``market_market_ioc``), ``orders/batch_cancel``, ``orders/historical/{id}``,
``orders/historical/batch``, ``orders/historical/fills``. Private calls need ``Authorization: Bearer <JWT>``: an
ES256 token verified with the public key of the test's EC key pair (``kid``/``sub`` = the key name, ``nbf``/``exp``
against the fake's clock, ``uri`` = ``METHOD host/path``; ccxt strips only ``https://`` from the URL, so over plain
http the fake also takes ``METHOD http://host/path``). A bad token is answered 401 with Coinbase's error JSON.

Errors are Coinbase's: ``{"error": .., "error_details": .., "message": ..}`` with the HTTP status, and a refused
create is HTTP 200 ``{"success": false, "error_response": {...}}`` (insufficient funds, post-only crossing).
A reused ``client_order_id`` returns the existing order (Coinbase de-duplicates creates by it). Orders rest until
:meth:`FakeCoinbase.fill`; market orders fill at once at :attr:`FakeCoinbase.price`; GTD orders expire at their
``end_time``. Faults (:meth:`FakeCoinbase.inject`): ``drop`` (processed, connection cut), ``503`` (processed,
non-JSON 503 as a proxy sends it), ``429`` (not processed; ``rate_limit_exceeded``), ``drop_before`` (cut, not
processed), ``latency`` (processed, answered
``delay_s`` later). No websocket: the adapter and the data feed poll this venue.
Field sets follow the recorded responses in ``tests/fixtures/venue-wire/coinbase`` (PROVENANCE.md there).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.fakes.common import Fault, LoopbackFake, drop, fault_after_processing, take_fault

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "venue-wire" / "coinbase"
API_KEY = "organizations/7f0e2a47-0000-4d3c-9a1b-fake00000001/apiKeys/3b910e93-0000-4c8e-8f11-fake00000002"
PREFIX = "/api/v3/brokerage/"


def new_key_pair() -> tuple[str, ec.EllipticCurvePublicKey]:
    """A CDP-style EC P-256 key: the PEM private key (the ccxt ``secret``) and its public key."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption()).decode()
    return pem, key.public_key()


def recorded(name: str) -> Any:
    return json.loads((FIXTURES / "responses.json").read_text())[name]


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Order:
    order_id: str
    client_order_id: str
    product_id: str
    side: str
    config_key: str
    config: dict[str, Any]
    size: Decimal
    price: Decimal
    created_ms: int
    status: str = "OPEN"
    filled: Decimal = Decimal(0)
    value: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    end_ms: int = 0
    last_fill_ms: int = 0


@dataclass
class Fill:
    trade_id: str
    order_id: str
    product_id: str
    side: str
    price: Decimal
    size: Decimal
    commission: Decimal
    time_ms: int
    maker: bool


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any]
    at: float


@dataclass
class FakeCoinbase(LoopbackFake):
    """See the module docstring. ``start()`` binds 127.0.0.1 on a free port; ``url`` is its base URL."""

    public_key: ec.EllipticCurvePublicKey
    products: dict[str, tuple[str, str]] = field(default_factory=lambda: {"BTC-USD": ("BTC", "USD"),
                                                                           "ETH-USD": ("ETH", "USD")})
    price: Decimal = Decimal("43000.00")
    balances: dict[str, Decimal] = field(default_factory=lambda: {"BTC": Decimal(0), "USD": Decimal(100000)})
    clock_offset_ms: int = 0
    requests: list[Request] = field(default_factory=list)
    orders: dict[str, Order] = field(default_factory=dict)
    fills: list[Fill] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    #: product id -> [[open ms, o, h, l, c, v], ...] (ascending)
    candles: dict[str, list[list[Any]]] = field(default_factory=dict)
    port: int = 0
    #: The PEM private key of ``public_key`` when the fake made the pair (:meth:`with_new_key`).
    private_pem: str = ""

    def __post_init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._next_trade = 700_000

    @classmethod
    def with_new_key(cls) -> FakeCoinbase:
        """A fake that knows one new CDP key (its PEM in :attr:`private_pem`, the key name :data:`API_KEY`)."""
        pem, public_key = new_key_pair()
        return cls(public_key, private_pem=pem)

    async def start(self) -> FakeCoinbase:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._rest)
        await self.serve(app)
        return self

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_offset_ms

    def inject(self, method: str, path: str, kind: str, *, times: int = 1, delay_s: float = 0.0) -> None:
        self.faults.append(Fault(method, path, kind, times, delay_s=delay_s))

    # --- REST ---------------------------------------------------------------------------------------

    @staticmethod
    def error(status: int, error: str, message: str, details: str = "") -> web.Response:
        return web.json_response({"error": error, "error_details": details or message, "message": message},
                                 status=status)

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        raw = await request.text()
        body = json.loads(raw) if raw else {}
        path = request.path
        self.requests.append(Request(request.method, path, dict(request.query), body, time.monotonic()))
        if not path.startswith(PREFIX):
            return self.error(404, "NOT_FOUND", f"not served by the fake: {path}")
        self._expire()
        fault = take_fault(self.faults, request.method, path)
        if fault is not None and fault.kind == "429":
            return self.error(429, "rate_limit_exceeded", "Too many requests")
        if fault is not None and fault.kind == "drop_before":
            return drop(request)
        endpoint = path.removeprefix(PREFIX)
        if endpoint == "time" or endpoint.startswith("market/"):
            answer: Any = self._public(endpoint, request.query)
        else:
            refusal = self._check_jwt(request)
            if refusal is not None:
                return refusal
            answer = self._private(request.method, endpoint, request.query, body)
        if isinstance(answer, web.Response):
            return answer
        late = await fault_after_processing(fault, request, lambda: web.Response(
            status=503, text="upstream connect error or disconnect/reset before headers"))
        return late if late is not None else web.json_response(answer)

    def _check_jwt(self, request: web.Request) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return self.error(401, "unauthorized", "Unauthorized", "missing bearer token")
        try:
            head_b64, payload_b64, sig_b64 = auth.removeprefix("Bearer ").split(".")
            header, claims = json.loads(_b64url(head_b64)), json.loads(_b64url(payload_b64))
            signature = _b64url(sig_b64)
            der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
            self.public_key.verify(der, f"{head_b64}.{payload_b64}".encode(), ec.ECDSA(hashes.SHA256()))
        except (ValueError, InvalidSignature):
            return self.error(401, "unauthorized", "Unauthorized", "invalid JWT signature")
        now = self.now_ms() // 1000
        host_path = f"{request.host}{request.path}"
        uris = {f"{request.method} {host_path}", f"{request.method} http://{host_path}"}
        if header.get("alg") != "ES256" or header.get("kid") != API_KEY or claims.get("sub") != API_KEY:
            return self.error(401, "unauthorized", "Unauthorized", "unknown key")
        if claims.get("uri") not in uris:
            return self.error(401, "unauthorized", "Unauthorized", "JWT uri does not match the request")
        if not int(claims.get("nbf", 0)) - 5 <= now < int(claims.get("exp", 0)):
            return self.error(401, "unauthorized", "Unauthorized", "JWT expired or not yet valid")
        return None

    def _public(self, endpoint: str, query: Any) -> Any:
        if endpoint == "time":
            now = self.now_ms()
            return {"iso": iso(now), "epochSeconds": str(now // 1000), "epochMillis": str(now)}
        if endpoint == "market/products":
            if query.get("product_type", "SPOT") != "SPOT":
                return {"products": [], "num_products": 0}
            return {"products": [self._product(p) for p in self.products], "num_products": len(self.products)}
        parts = endpoint.split("/")  # market/products/{id}/candles|ticker
        if len(parts) == 4 and parts[2] in self.products and parts[3] == "candles":
            return self._candles(parts[2], query)
        if len(parts) == 4 and parts[2] in self.products and parts[3] == "ticker":
            answer = recorded("fetchTicker")
            trade = {**answer["trades"][0], "product_id": parts[2], "price": f"{self.price}",
                     "time": iso(self.now_ms())}
            return {"trades": [trade], "best_bid": f"{self.price - Decimal('0.01')}", "best_ask": f"{self.price}"}
        return self.error(404, "NOT_FOUND", f"no such product or endpoint: {endpoint}")

    def _product(self, product_id: str) -> dict[str, Any]:
        base, quote = self.products[product_id]
        return {"product_id": product_id, "price": f"{self.price}", "price_percentage_change_24h": "0",
                "volume_24h": "100", "volume_percentage_change_24h": "0", "base_increment": "0.00000001",
                "quote_increment": "0.01", "quote_min_size": "1", "quote_max_size": "150000000",
                "base_min_size": "0.00000001", "base_max_size": "3400", "base_name": base, "quote_name": quote,
                "watched": False, "is_disabled": False, "new": False, "status": "online", "cancel_only": False,
                "limit_only": False, "post_only": False, "trading_disabled": False, "auction_mode": False,
                "product_type": "SPOT", "quote_currency_id": quote, "base_currency_id": base,
                "fcm_trading_session_details": None, "mid_market_price": "", "alias": "", "alias_to": [],
                "base_display_symbol": base, "quote_display_symbol": quote, "view_only": False,
                "price_increment": "0.01", "display_name": product_id, "product_venue": "CBE"}

    def _candles(self, product_id: str, query: Any) -> dict[str, Any]:
        start, end = int(query.get("start", 0)) * 1000, int(query.get("end", 2**40)) * 1000
        limit = min(int(query.get("limit", 350)), 350)
        rows = [r for r in self.candles.get(product_id, []) if start <= r[0] <= end][:limit]
        return {"candles": [{"start": str(r[0] // 1000), "low": r[3], "high": r[2], "open": r[1], "close": r[4],
                             "volume": r[5]} for r in reversed(rows)]}  # newest first, as Coinbase sends them

    def _private(self, method: str, endpoint: str, query: Any, body: dict[str, Any]) -> Any:
        if method == "GET" and endpoint == "transaction_summary":
            return {"total_volume": 0, "total_fees": 0, "fee_tier": {
                "pricing_tier": "Advanced 1", "usd_from": "0", "usd_to": "10000", "taker_fee_rate": "0.006",
                "maker_fee_rate": "0.004", "aop_from": "", "aop_to": ""}, "margin_rate": None,
                "goods_and_services_tax": None, "advanced_trade_only_volume": 0, "advanced_trade_only_fees": 0,
                "coinbase_pro_volume": 0, "coinbase_pro_fees": 0, "total_balance": "", "has_promo_fee": False}
        if method == "GET" and endpoint == "accounts":
            return self._accounts()
        if method == "POST" and endpoint == "orders":
            return self._create(body)
        if method == "POST" and endpoint == "orders/batch_cancel":
            return self._cancel(body)
        if method == "GET" and endpoint == "orders/historical/batch":
            return self._list(query)
        if method == "GET" and endpoint == "orders/historical/fills":
            return self._fills(query)
        if method == "GET" and endpoint.startswith("orders/historical/"):
            order = self.orders.get(endpoint.rsplit("/", 1)[1])
            if order is None:
                return self.error(404, "unknown", "order with this orderID was not found")
            return {"order": self._order_json(order)}
        return self.error(404, "NOT_FOUND", f"not served by the fake: {method} {endpoint}")

    def _accounts(self) -> dict[str, Any]:
        accounts = []
        for i, (currency, amount) in enumerate(sorted(self.balances.items())):
            held = sum((o.size - o.filled) * (o.price if o.side == "BUY" else 1) for o in self.orders.values()
                       if o.status == "OPEN" and self.products[o.product_id][0 if o.side == "SELL" else 1]
                       == currency)
            accounts.append({
                "uuid": str(uuid.UUID(int=i + 1)), "name": f"{currency} Wallet", "currency": currency,
                "available_balance": {"value": f"{amount - held}", "currency": currency}, "default": True,
                "active": True, "created_at": "2023-01-04T06:20:06.456Z", "updated_at": "2023-01-04T06:20:07.181Z",
                "deleted_at": None, "type": "ACCOUNT_TYPE_FIAT" if currency == "USD" else "ACCOUNT_TYPE_CRYPTO",
                "ready": True, "hold": {"value": f"{held}", "currency": currency}})
        return {"accounts": accounts, "has_next": False, "cursor": "", "size": len(accounts)}

    @staticmethod
    def failure(error: str, message: str, preview: str, config: dict[str, Any]) -> dict[str, Any]:
        return {"success": False, "failure_reason": "UNKNOWN_FAILURE_REASON", "order_id": "",
                "error_response": {"error": error, "message": message, "error_details": "",
                                   "preview_failure_reason": preview},
                "order_configuration": config}

    def _create(self, body: dict[str, Any]) -> Any:
        product_id, side, coid = body.get("product_id", ""), body.get("side", ""), body.get("client_order_id", "")
        config = body.get("order_configuration") or {}
        if product_id not in self.products:
            return self.error(400, "INVALID_ARGUMENT", f"ProductID is invalid: {product_id}")
        if not coid or len(config) != 1:
            return self.error(400, "INVALID_ARGUMENT", "client_order_id and one order_configuration are required")
        existing = next((o for o in self.orders.values() if o.client_order_id == coid), None)
        if existing is not None:  # Coinbase de-duplicates by client_order_id
            return self._success(existing)
        key, spec = next(iter(config.items()))
        size = Decimal(spec.get("base_size") or "0")
        price = Decimal(spec.get("limit_price") or "0")
        base, quote = self.products[product_id]
        if side == "BUY" and size * (price or self.price) > self.balances.get(quote, Decimal(0)):
            return self.failure("INSUFFICIENT_FUND", "Insufficient balance in source account",
                                "PREVIEW_INSUFFICIENT_FUND", config)
        if side == "SELL" and size > self.balances.get(base, Decimal(0)):
            return self.failure("INSUFFICIENT_FUND", "Insufficient balance in source account",
                                "PREVIEW_INSUFFICIENT_FUND", config)
        crosses = (side == "BUY" and price >= self.price) or (side == "SELL" and price <= self.price)
        if spec.get("post_only") and crosses:
            return self.failure("INVALID_LIMIT_PRICE_POST_ONLY", "Invalid limit price for post only order",
                                "PREVIEW_INVALID_LIMIT_PRICE_POST_ONLY", config)
        order = Order(str(uuid.uuid4()), coid, product_id, side, key, spec, size, price, self.now_ms())
        if key == "limit_limit_gtd":
            end = datetime.fromisoformat(str(spec["end_time"]).replace("Z", "+00:00"))
            order.end_ms = int(end.timestamp() * 1000)
        self.orders[order.order_id] = order
        if key == "market_market_ioc":
            self._execute(order, size, self.price, maker=False)
        elif key in ("sor_limit_ioc", "limit_limit_fok"):
            order.status = "CANCELLED"  # no liquidity at the limit in the fake's book
        return self._success(order)

    @staticmethod
    def _success(order: Order) -> dict[str, Any]:
        return {"success": True, "failure_reason": "UNKNOWN_FAILURE_REASON", "order_id": order.order_id,
                "success_response": {"order_id": order.order_id, "product_id": order.product_id,
                                     "side": order.side, "client_order_id": order.client_order_id},
                "order_configuration": {order.config_key: order.config}}

    def _cancel(self, body: dict[str, Any]) -> dict[str, Any]:
        results = []
        for oid in body.get("order_ids") or []:
            order = self.orders.get(oid)
            if order is None or order.status != "OPEN":
                results.append({"success": False, "failure_reason": "UNKNOWN_CANCEL_ORDER", "order_id": oid})
                continue
            order.status = "CANCELLED"
            results.append({"success": True, "failure_reason": "UNKNOWN_CANCEL_FAILURE_REASON", "order_id": oid})
        return {"results": results}

    def _list(self, query: Any) -> dict[str, Any]:
        statuses = set(query.getall("order_status", []))
        product = query.get("product_id")
        orders = [self._order_json(o) for o in reversed(list(self.orders.values()))
                  if (not statuses or o.status in statuses) and (not product or o.product_id == product)]
        return {"orders": orders, "sequence": "0", "has_next": False, "cursor": ""}

    def _fills(self, query: Any) -> dict[str, Any]:
        wanted = set(query.getall("order_id", [])) | set(query.getall("order_ids", []))
        product = query.get("product_id")
        since = query.get("start_sequence_timestamp")
        since_ms = int(datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp() * 1000) if since else 0
        template = recorded("fetchMyTrades")["fills"][0]
        out = []
        for f in reversed(self.fills):
            if (wanted and f.order_id not in wanted) or (product and f.product_id != product) or f.time_ms < since_ms:
                continue
            values = {"entry_id": f"entry-{f.trade_id}", "trade_id": f.trade_id, "order_id": f.order_id,
                      "trade_time": iso(f.time_ms), "price": f"{f.price}", "size": f"{f.size}",
                      "commission": f"{f.commission}", "product_id": f.product_id,
                      "sequence_timestamp": iso(f.time_ms), "liquidity_indicator": "MAKER" if f.maker else "TAKER",
                      "side": f.side, "cursor": f.trade_id}
            out.append({k: values.get(k, v) for k, v in template.items()})
        return {"fills": out, "cursor": ""}

    def _order_json(self, order: Order) -> dict[str, Any]:
        template = recorded("fetchClosedOrders")["orders"][0]
        tif = {"market_market_ioc": "IMMEDIATE_OR_CANCEL", "sor_limit_ioc": "IMMEDIATE_OR_CANCEL",
               "limit_limit_fok": "FILL_OR_KILL", "limit_limit_gtd": "GOOD_UNTIL_DATE_TIME"}.get(
            order.config_key, "GOOD_UNTIL_CANCELLED")
        values: dict[str, Any] = {
            "order_id": order.order_id, "product_id": order.product_id, "user_id": "fake-user",
            "order_configuration": {order.config_key: order.config}, "side": order.side,
            "client_order_id": order.client_order_id, "status": order.status, "time_in_force": tif,
            "created_time": iso(order.created_ms),
            "completion_percentage": f"{(order.filled / order.size * 100):.2f}" if order.size else "0",
            "filled_size": f"{order.filled}",
            "average_filled_price": f"{order.value / order.filled}" if order.filled else "0",
            "number_of_fills": str(sum(1 for f in self.fills if f.order_id == order.order_id)),
            "filled_value": f"{order.value}", "total_fees": f"{order.fees}",
            "total_value_after_fees": f"{order.value + order.fees}",
            "order_type": "MARKET" if order.config_key == "market_market_ioc" else "LIMIT",
            "settled": order.status != "OPEN", "outstanding_hold_amount": "0",
            "last_fill_time": iso(order.last_fill_ms) if order.last_fill_ms else None, "cursor": "",
        }
        return {k: values.get(k, v) for k, v in template.items()}

    # --- the test's matching engine ------------------------------------------------------------------

    def _expire(self) -> None:
        now = self.now_ms()
        for order in self.orders.values():
            if order.status == "OPEN" and order.end_ms and now >= order.end_ms:
                order.status = "EXPIRED"

    def order_by_client_id(self, coid: str) -> Order:
        return next(o for o in self.orders.values() if o.client_order_id == coid)

    def _execute(self, order: Order, size: Decimal, price: Decimal, *, maker: bool) -> Fill:
        self._next_trade += 1
        base, quote = self.products[order.product_id]
        rate = Decimal("0.004") if maker else Decimal("0.006")
        commission = (size * price * rate).quantize(Decimal("0.00000001"))
        fill = Fill(str(uuid.UUID(int=self._next_trade)), order.order_id, order.product_id, order.side, price, size,
                    commission, self.now_ms(), maker)
        self.fills.append(fill)
        order.filled += size
        order.value += size * price
        order.fees += commission
        order.last_fill_ms = fill.time_ms
        if order.filled >= order.size:
            order.status = "FILLED"
        sign = 1 if order.side == "BUY" else -1
        self.balances[base] = self.balances.get(base, Decimal(0)) + sign * size
        self.balances[quote] = self.balances.get(quote, Decimal(0)) - sign * size * price - commission
        return fill

    def fill(self, coid: str, size: str, price: str | None = None) -> Fill:
        """The venue executes part of a resting order."""
        order = self.order_by_client_id(coid)
        return self._execute(order, Decimal(size), Decimal(price) if price else order.price, maker=True)
