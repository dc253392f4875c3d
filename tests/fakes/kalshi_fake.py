"""A fake Kalshi trade API v2 on 127.0.0.1 (REST ``/trade-api/v2`` and websocket ``/trade-api/ws/v2``).

**Auth.** Every ``/portfolio`` request and the websocket handshake must carry ``KALSHI-ACCESS-KEY``,
``KALSHI-ACCESS-TIMESTAMP`` (ms) and ``KALSHI-ACCESS-SIGNATURE``: RSA-PSS (MGF1 SHA-256, salt = digest length)
over ``timestamp + METHOD + path`` (path with ``/trade-api/v2``, without the query), verified with the public key
the test registered (:meth:`KalshiFake.register_key`); public market data verifies the headers when they are sent.
A bad signature, an unknown key or a timestamp more than :attr:`KalshiFake.window_ms` away from the fake's clock
(``clock_skew_ms`` shifts it) is ``401`` in Kalshi's error shape ``{"error": {"code", "message", "details"}}``.

**Two wire revisions** (``wire``): ``"current"`` is what Kalshi answers today (the recorded responses in
``tests/fixtures/prediction/kalshi``): prices only as ``*_dollars`` strings, counts only as ``*_fp`` strings, the
book under ``orderbook_fp``. ``"sdk-3.2.0"`` (the default) adds what the strict pydantic models of
``kalshi-python-sync`` 3.2.0 require: the legacy integer twins (cents for ``*_dollars``, whole contracts for
``*_fp``: :func:`legacy_twins`) and the few fields that have no twin (``Market.subtitle``/``category``/
``risk_limit_cents``/``tick_size``, ``Order.user_id``/``queue_position``, ``Fill.price``/``*_price_fixed``...).

**Matching.** One YES book per market: buy YES at p and sell NO at 1 - p are YES bids; sell YES at p and buy NO
at 1 - p are YES asks. A crossing order trades at the resting order's price; each order gets a fill on its own
side (``yes_price_dollars``/``no_price_dollars`` both given, ``side``/``action`` the order's). Taker fees are
Kalshi's ``ceil(0.07 * C * P * (1 - P))`` to the cent; makers pay none. ``immediate_or_cancel``/``fill_or_kill``,
``post_only`` (crossing: refused), ``expiration_ts`` (GTD: cancelled when due), ``reduce_only``; a second order with
a ``client_order_id`` already used is ``409 order_already_exists``. Other participants' orders come from
:meth:`KalshiFake.counterparty`; :meth:`KalshiFake.settle` determines a market and pays the positions.

**Faults** (:meth:`fault`, the Alpaca fake's): ``timeout`` (carried out, never answered), ``latency`` (answered
after ``delay_s``), ``5xx``, ``429`` with ``Retry-After``, ``reject`` (answers ``status`` with Kalshi's error
``code``, nothing done); ``clock_skew_ms`` shifts the clock signatures are checked against.
**Websocket**: ``subscribe`` to ``orderbook_delta`` (a snapshot, then deltas), ``trade``, ``fill``,
``market_lifecycle_v2``; ``seq`` per subscription; :meth:`skip_seq` makes the next message jump one number.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi import FastAPI, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, PlainTextResponse

from tests.fakes.alpaca_fake import Fault, ThreadedApp

BASE = "/trade-api/v2"
WS_PATH = "/trade-api/ws/v2"
ME = "user-tradewire-0001"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "prediction" / "kalshi"
ONE = Decimal(1)
CENT = Decimal("0.01")
#: Fields 3.2.0's models require that have no ``_dollars``/``_fp`` twin, per object kind.
SDK_EXTRAS: dict[str, dict[str, Any]] = {
    "market": {"subtitle": "", "category": "", "risk_limit_cents": 0, "tick_size": 1},
    "order": {"user_id": ME, "queue_position": 0},
    "position": {"resting_orders_count": 0},
}


def dollars(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.0001"), ROUND_HALF_UP))


def fp(value: Decimal) -> str:
    return str(value.quantize(CENT, ROUND_HALF_UP))


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def legacy_twins(node: Any) -> Any:
    """``node`` with the 3.2.0 revision's integer twins added: ``x_dollars`` -> ``x`` in cents, ``x_fp`` -> ``x``
    in whole contracts (recursively; string epochs become integers)."""
    if isinstance(node, list):
        return [legacy_twins(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: legacy_twins(v) for k, v in node.items()}
    for key, value in node.items():
        if not isinstance(value, str) or not value:
            continue
        if key.endswith("_dollars") and key[:-8] not in out:
            out[key[:-8]] = int((Decimal(value) * 100).to_integral_value(ROUND_HALF_UP))
        elif key.endswith("_fp") and key[:-3] not in out:
            out[key[:-3]] = int(Decimal(value).to_integral_value(ROUND_HALF_UP))
        elif key in ("end_period_ts", "settlement_timer_seconds") and value.isdigit():
            out[key] = int(value)
    return out


def kalshi_error(status: int, code: str, message: str, details: str = "") -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message, "service": "exchange"}
    if details:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status)


def new_key_pair() -> tuple[str, str]:
    """``(private PEM, public PEM)`` of a fresh 2048-bit RSA key (what Kalshi's key generation gives)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


@dataclass
class KOrder:
    order_id: str
    client_order_id: str
    user: str
    ticker: str
    side: str  # yes / no
    action: str  # buy / sell
    price: Decimal  # on its own side
    count: Decimal
    time_in_force: str = "good_till_canceled"
    expiration_ts: int | None = None
    post_only: bool = False
    reduce_only: bool = False
    filled: Decimal = Decimal(0)
    status: str = "resting"
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    taker_fees: Decimal = Decimal(0)
    taker_cost: Decimal = Decimal(0)
    maker_cost: Decimal = Decimal(0)

    @property
    def yes_bid(self) -> bool:
        return (self.side == "yes") == (self.action == "buy")

    @property
    def yes_price(self) -> Decimal:
        return self.price if self.side == "yes" else ONE - self.price

    def to_json(self) -> dict[str, Any]:
        yes = self.yes_price
        return {
            "order_id": self.order_id, "client_order_id": self.client_order_id, "ticker": self.ticker,
            "side": self.side, "action": self.action, "type": "limit", "status": self.status,
            "outcome_side": self.side, "book_side": "bid" if self.action == "buy" else "ask",
            "yes_price_dollars": dollars(yes), "no_price_dollars": dollars(ONE - yes),
            "fill_count_fp": fp(self.filled), "initial_count_fp": fp(self.count),
            "remaining_count_fp": fp(self.count - self.filled if self.status == "resting" else Decimal(0)),
            "taker_fees_dollars": dollars(self.taker_fees), "maker_fees_dollars": dollars(Decimal(0)),
            "taker_fill_cost_dollars": dollars(self.taker_cost), "maker_fill_cost_dollars": dollars(self.maker_cost),
            "expiration_time": iso(self.expiration_ts) if self.expiration_ts else None,
            "created_time": iso(self.created), "last_update_time": iso(self.updated),
            "self_trade_prevention_type": "taker_at_cross", "order_group_id": None,
        }


@dataclass
class Position:
    yes: Decimal = Decimal(0)  # signed: + YES contracts, - NO contracts
    cost: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    traded: Decimal = Decimal(0)
    realized: Decimal = Decimal(0)


class KalshiFake:
    def __init__(self, *, wire: str = "sdk-3.2.0", window_ms: int = 5000) -> None:
        self.wire = wire
        self.window_ms = window_ms
        self.clock_skew_ms = 0
        self.keys: dict[str, Any] = {}
        self.markets: dict[str, dict[str, Any]] = {}
        self.events: dict[str, dict[str, Any]] = {}
        self.candles: dict[str, list[dict[str, Any]]] = {}
        self.orders: dict[str, KOrder] = {}
        self.fills: list[dict[str, Any]] = []
        self.trades: list[dict[str, Any]] = []
        self.positions: dict[str, Position] = {}
        self.settlements: list[dict[str, Any]] = []
        self.balance = Decimal("1000.00")
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.auth_failures: list[str] = []
        #: Kalshi honours ``limit`` (up to 200/1000); the fake's pages are smaller so that paging is real.
        self.page_size = 3
        self._skip = 0
        self._ids = itertools.count(1)
        self._hold = asyncio.Event()
        self._subs: list[tuple[asyncio.Queue[dict[str, Any]], dict[str, Any]]] = []
        self.server = ThreadedApp(self._build_app())

    @property
    def url(self) -> str:
        return self.server.url + BASE

    @property
    def ws_url(self) -> str:
        return self.server.url.replace("http://", "ws://") + WS_PATH

    # --- control (from the test's thread: everything runs on the server's loop) ----------------------

    def register_key(self, key_id: str, public_pem: str) -> None:
        self.keys[key_id] = serialization.load_pem_public_key(public_pem.encode())

    def fault(self, method: str, path: str, kind: str, **kw: Any) -> None:
        """``path`` is relative to ``/trade-api/v2``; ``reject`` takes ``status`` and ``code``, ``latency``
        ``delay_s``."""
        code, delay_s = kw.pop("code", ""), kw.pop("delay_s", 0.0)
        f = Fault(method.upper(), BASE + path, kind, **kw)
        f.code, f.delay_s = code, delay_s  # type: ignore[attr-defined]
        self.faults.append(f)

    def add_market(self, ticker: str, *, event: str = "", series: str = "", title: str = "", status: str = "active",
                   close_ts: float | None = None, volume: str = "0", liquidity: str = "0",
                   price_level_structure: str = "linear_cent", **extra: Any) -> dict[str, Any]:
        event = event or ticker.rsplit("-", 1)[0]
        series = series or event.split("-", 1)[0]
        now, close = time.time(), close_ts or time.time() + 86400 * 30
        market = {
            "ticker": ticker, "event_ticker": event, "market_type": "binary", "title": title or f"Will {ticker}?",
            "yes_sub_title": "Yes", "no_sub_title": "No", "created_time": iso(now - 86400),
            "open_time": iso(now - 3600), "close_time": iso(close), "expected_expiration_time": iso(close + 3600),
            "expiration_time": iso(close + 7200),
            "latest_expiration_time": iso(close + 7200), "settlement_timer_seconds": "1800", "status": status,
            "response_price_units": "usd_cent", "yes_bid_dollars": "0.0000", "yes_ask_dollars": "1.0000",
            "no_bid_dollars": "0.0000", "no_ask_dollars": "1.0000", "last_price_dollars": "0.0000",
            "previous_yes_bid_dollars": "0.0000", "previous_yes_ask_dollars": "0.0000",
            "previous_price_dollars": "0.0000", "volume_fp": fp(Decimal(volume)), "volume_24h_fp": "0.00",
            "open_interest_fp": "0.00", "notional_value_dollars": "1.0000",
            "liquidity_dollars": dollars(Decimal(liquidity)), "result": "", "can_close_early": True,
            "expiration_value": "", "rules_primary": f"Resolves Yes if {ticker}.",
            "rules_secondary": "", "price_level_structure": price_level_structure, "fractional_trading_enabled": False,
            "price_ranges": [{"start": "0.0000", "end": "1.0000",
                              "step": "0.0010" if price_level_structure == "deci_cent" else "0.0100"}],
        }
        market.update(extra)
        self.markets[ticker] = market
        self.events.setdefault(event, {
            "event_ticker": event, "series_ticker": series, "sub_title": "", "title": market["title"],
            "collateral_return_type": "", "mutually_exclusive": False, "category": "World",
            "available_on_brokers": True, "product_metadata": None, "strike_period": ""})
        return market

    def load_recorded_markets(self) -> None:
        """The two real-looking markets of the ccxt recording (``KXELONMARS-99``, ``KXCOLONIZEMARS-50``)."""
        recorded = json.loads((FIXTURES / "ccxt-kalshi.httpResponses.json").read_text())
        for market in recorded["methods"]["fetchTickers"][0]["httpResponse"]["markets"]:
            self.markets[market["ticker"]] = dict(market)
        event = recorded["methods"]["fetchEvent"][0]["httpResponse"]["event"]
        self.events[event["event_ticker"]] = {k: v for k, v in event.items() if k != "markets"} | {
            "product_metadata": None}
        self.events.setdefault("KXCOLONIZEMARS-50", dict(self.events[event["event_ticker"]], event_ticker=
                                                         "KXCOLONIZEMARS-50", series_ticker="KXCOLONIZEMARS"))
        self.candles["KXELONMARS-99"] = recorded["methods"]["fetchOHLCV"][0]["httpResponse"]["candlesticks"]

    def counterparty(self, ticker: str, side: str, action: str, price: str, count: str) -> str:
        """Another participant's order (it rests or trades like ours); its order id."""
        return str(self.server.call(lambda: self._place(KOrder(
            order_id=str(uuid.uuid4()), client_order_id=str(uuid.uuid4()), user="mm-0001", ticker=ticker, side=side,
            action=action, price=Decimal(price), count=Decimal(count)))).order_id)

    def settle(self, ticker: str, result: str) -> None:
        self.server.call(lambda: self._settle(ticker, result))

    def skip_seq(self) -> None:
        """The next websocket message of each subscription skips a sequence number (a lost message)."""
        self._skip += 1

    def stream_clients(self) -> int:
        """Websocket connections with at least one subscription."""
        return len({id(q) for q, _s in self._subs})

    def order_by_coid(self, client_order_id: str) -> list[KOrder]:
        return [o for o in self.orders.values() if o.client_order_id == client_order_id]

    def creates(self) -> list[dict[str, Any]]:
        return [body for method, path, body in self.requests if method == "POST" and path == BASE + "/portfolio/orders"]

    def book(self, ticker: str) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
        """``(YES bids, NO bids)``: price -> resting contracts (Kalshi's single book)."""
        yes: dict[Decimal, Decimal] = {}
        no: dict[Decimal, Decimal] = {}
        for o in self.orders.values():
            if o.ticker == ticker and o.status == "resting":
                left = o.count - o.filled
                if o.yes_bid:
                    yes[o.yes_price] = yes.get(o.yes_price, Decimal(0)) + left
                else:
                    no[ONE - o.yes_price] = no.get(ONE - o.yes_price, Decimal(0)) + left
        return yes, no

    # --- the exchange ---------------------------------------------------------------------------------

    def _wire(self, kind: str, node: dict[str, Any]) -> dict[str, Any]:
        if self.wire == "current":
            return node
        out: dict[str, Any] = legacy_twins(node) | SDK_EXTRAS.get(kind, {})
        if kind in ("trade", "fill"):  # the deprecated ``price`` (cents of YES) and the fills' ``*_fixed`` names
            out["price"] = out["yes_price"]
            if kind == "fill":
                out |= {"yes_price_fixed": node["yes_price_dollars"], "no_price_fixed": node["no_price_dollars"]}
        return out

    async def _place(self, order: KOrder) -> KOrder:
        before = self.book(order.ticker)
        self.orders[order.order_id] = order
        for maker in sorted((o for o in self.orders.values() if o.ticker == order.ticker and o.status == "resting"
                             and o.order_id != order.order_id and o.yes_bid != order.yes_bid),
                            key=lambda o: (o.yes_price if order.yes_bid else -o.yes_price, o.created)):
            crosses = maker.yes_price <= order.yes_price if order.yes_bid else maker.yes_price >= order.yes_price
            if not crosses or order.filled >= order.count:
                break
            qty = min(order.count - order.filled, maker.count - maker.filled)
            await self._trade(order, maker, qty, maker.yes_price)
        if order.filled >= order.count:
            order.status = "executed"
        elif order.time_in_force in ("immediate_or_cancel", "fill_or_kill") or (
                order.expiration_ts is not None and order.expiration_ts <= time.time()):
            order.status = "canceled"
        await self._book_changed(order.ticker, before)
        return order

    async def _trade(self, taker: KOrder, maker: KOrder, qty: Decimal, yes_px: Decimal) -> None:
        trade_id = str(uuid.uuid4())
        now = time.time()
        taker_yes = taker.yes_bid
        self.trades.append({"trade_id": trade_id, "ticker": taker.ticker, "yes_price_dollars": dollars(yes_px),
                            "no_price_dollars": dollars(ONE - yes_px), "count_fp": fp(qty),
                            "taker_side": "yes" if taker_yes else "no", "taker_outcome_side": taker.side,
                            "taker_book_side": "bid" if taker.action == "buy" else "ask", "created_time": iso(now)})
        for order, is_taker in ((taker, True), (maker, False)):
            px = yes_px if order.side == "yes" else ONE - yes_px
            fee = (Decimal("0.07") * qty * yes_px * (ONE - yes_px)).quantize(CENT, ROUND_CEILING) if is_taker else 0
            order.filled += qty
            order.updated = now
            if order.filled >= order.count:
                order.status = "executed"
            if is_taker:
                order.taker_cost += qty * px
                order.taker_fees += Decimal(fee)
            else:
                order.maker_cost += qty * px
            if order.user != ME:
                continue
            fill_id = f"{trade_id}-{'t' if is_taker else 'm'}"
            fill = {"fill_id": fill_id, "trade_id": fill_id, "order_id": order.order_id,
                    "client_order_id": order.client_order_id, "ticker": order.ticker, "market_ticker": order.ticker,
                    "side": order.side, "action": order.action, "outcome_side": order.side,
                    "book_side": "bid" if order.action == "buy" else "ask", "count_fp": fp(qty),
                    "yes_price_dollars": dollars(yes_px), "no_price_dollars": dollars(ONE - yes_px),
                    "is_taker": is_taker, "fee_cost": dollars(Decimal(fee)), "created_time": iso(now), "ts": int(now)}
            self.fills.append(fill)
            pos = self.positions.setdefault(order.ticker, Position())
            signed = qty if order.yes_bid else -qty
            pos.yes += signed
            pos.cost += signed * yes_px
            pos.fees += Decimal(fee)
            pos.traded += qty * px
            self.balance += -qty * px if order.action == "buy" else qty * px
            self.balance -= Decimal(fee)
            await self._publish("fill", order.ticker, {
                "trade_id": fill_id, "order_id": order.order_id, "client_order_id": order.client_order_id,
                "market_ticker": order.ticker, "is_taker": is_taker, "side": order.side, "action": order.action,
                "yes_price_dollars": dollars(yes_px), "count_fp": fp(qty), "ts": int(now)})
        market = self.markets.get(taker.ticker)
        if market is not None:
            market["last_price_dollars"] = dollars(yes_px)
        await self._publish("trade", taker.ticker, {
            "trade_id": trade_id, "market_ticker": taker.ticker, "yes_price_dollars": dollars(yes_px),
            "no_price_dollars": dollars(ONE - yes_px), "count_fp": fp(qty), "taker_side": "yes" if taker_yes else "no",
            "ts": int(now)})

    async def _settle(self, ticker: str, result: str) -> None:
        market = self.markets[ticker]
        before = self.book(ticker)
        for o in self.orders.values():
            if o.ticker == ticker and o.status == "resting":
                o.status = "canceled"
        market.update(status="finalized", result=result,
                      settlement_value_dollars="1.0000" if result == "yes" else "0.0000")
        pos = self.positions.get(ticker)
        if pos is not None and pos.yes != 0:
            revenue = (pos.yes if result == "yes" and pos.yes > 0 else -pos.yes if result == "no" and pos.yes < 0
                       else Decimal(0))
            self.balance += revenue
            self.settlements.append({
                "ticker": ticker, "event_ticker": market["event_ticker"], "market_result": result,
                "yes_count_fp": fp(max(pos.yes, Decimal(0))), "no_count_fp": fp(max(-pos.yes, Decimal(0))),
                "yes_total_cost_dollars": dollars(max(pos.cost, Decimal(0))),
                "no_total_cost_dollars": dollars(max(-pos.cost, Decimal(0))), "revenue_dollars": dollars(revenue),
                "settled_time": iso(time.time()), "fee_cost": dollars(pos.fees),
                "value": 100 if result == "yes" else 0})
            pos.realized += revenue - abs(pos.cost)
            pos.yes, pos.cost = Decimal(0), Decimal(0)
        await self._book_changed(ticker, before)
        await self._publish("market_lifecycle_v2", ticker, {
            "market_ticker": ticker, "event_type": "determined", "result": result,
            "determination_ts": int(time.time())})

    def _expire_due(self) -> None:
        now = time.time()
        for o in self.orders.values():
            if o.status == "resting" and o.expiration_ts is not None and o.expiration_ts <= now:
                o.status, o.updated = "canceled", now

    # --- websocket ------------------------------------------------------------------------------------

    async def _publish(self, channel: str, ticker: str, msg: dict[str, Any], *, kind: str = "") -> None:
        for queue, sub in list(self._subs):
            if sub["channel"] == channel and (not sub["tickers"] or ticker in sub["tickers"]):
                await queue.put({"type": kind or channel, "sid": sub["sid"], "msg": msg, "sub": sub})

    async def _book_changed(self, ticker: str, before: tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]) -> None:
        after = self.book(ticker)
        for side, old, new in (("yes", before[0], after[0]), ("no", before[1], after[1])):
            for price in sorted(set(old) | set(new)):
                delta = new.get(price, Decimal(0)) - old.get(price, Decimal(0))
                if delta:
                    await self._publish("orderbook_delta", ticker, {
                        "market_ticker": ticker, "price_dollars": dollars(price), "delta_fp": fp(delta), "side": side,
                        "ts": iso(time.time())}, kind="orderbook_delta")

    def _snapshot(self, ticker: str) -> dict[str, Any]:
        yes, no = self.book(ticker)
        return {"market_ticker": ticker,
                "yes_dollars_fp": [[dollars(p), fp(q)] for p, q in sorted(yes.items())],
                "no_dollars_fp": [[dollars(p), fp(q)] for p, q in sorted(no.items())]}

    async def _serve_ws(self, ws: WebSocket) -> None:
        problem = self._auth_problem("GET", WS_PATH, ws.headers)
        if problem:
            self.auth_failures.append(problem)
            await ws.close(code=4001)
            return
        await ws.accept()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        sids = itertools.count(1)

        async def pump() -> None:
            while True:
                item = await queue.get()
                sub = item.pop("sub")
                sub["seq"] += 1 + (1 if self._skip else 0)
                if self._skip:
                    self._skip -= 1
                await ws.send_text(json.dumps(item | {"seq": sub["seq"]}))

        task = asyncio.create_task(pump())
        try:
            while True:
                cmd = json.loads(await ws.receive_text())
                if cmd.get("cmd") != "subscribe":
                    await ws.send_text(json.dumps({"id": cmd.get("id"), "type": "error",
                                                   "msg": {"code": 5, "msg": "Unknown command"}}))
                    continue
                params = cmd.get("params") or {}
                tickers = set(params.get("market_tickers") or ([params["market_ticker"]]
                                                                if params.get("market_ticker") else []))
                for channel in params.get("channels", []):
                    sub = {"sid": next(sids), "channel": channel, "tickers": tickers, "seq": 0}
                    self._subs.append((queue, sub))
                    await ws.send_text(json.dumps({"id": cmd.get("id"), "type": "subscribed",
                                                   "msg": {"channel": channel, "sid": sub["sid"]}}))
                    if channel == "orderbook_delta":
                        for ticker in sorted(tickers):
                            await queue.put({"type": "orderbook_snapshot", "sid": sub["sid"],
                                             "msg": self._snapshot(ticker), "sub": sub})
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            task.cancel()
            self._subs = [(q, s) for q, s in self._subs if q is not queue]

    # --- auth -----------------------------------------------------------------------------------------

    def _auth_problem(self, method: str, path: str, headers: Any) -> str:
        key_id = headers.get("KALSHI-ACCESS-KEY", "")
        stamp = headers.get("KALSHI-ACCESS-TIMESTAMP", "")
        signature = headers.get("KALSHI-ACCESS-SIGNATURE", "")
        if not (key_id and stamp and signature):
            return "missing authentication headers"
        public = self.keys.get(key_id)
        if public is None:
            return "unknown api key"
        now_ms = int(time.time() * 1000) + self.clock_skew_ms
        if not stamp.isdigit() or abs(now_ms - int(stamp)) > self.window_ms:
            return "request timestamp outside the allowed window"
        try:
            public.verify(base64.b64decode(signature), f"{stamp}{method}{path}".encode(),
                          padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH),
                          hashes.SHA256())
        except (InvalidSignature, ValueError):
            return "invalid signature"
        return ""

    # --- HTTP -----------------------------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def gate(request: Request, call_next: Any) -> Response:
            raw = await request.body()
            body = json.loads(raw) if raw else {}
            path = request.url.path
            self.requests.append((request.method, path, body | dict(request.query_params)))
            if path.startswith(BASE + "/portfolio") or "KALSHI-ACCESS-SIGNATURE" in request.headers:
                problem = self._auth_problem(request.method, path, request.headers)
                if problem:
                    self.auth_failures.append(problem)
                    return kalshi_error(401, "authentication_error", "authentication error", problem)
            for fault in list(self.faults):
                if fault.method == request.method and path.startswith(fault.path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    if fault.kind == "429":
                        return kalshi_error(429, "too_many_requests", "too many requests") if not fault.retry_after \
                            else JSONResponse({"error": {"code": "too_many_requests", "message": "too many requests"}},
                                              status_code=429, headers={"Retry-After": fault.retry_after})
                    if fault.kind == "5xx":
                        return PlainTextResponse("upstream connect error", status_code=fault.status)
                    if fault.kind == "reject":
                        return kalshi_error(fault.status, fault.code, fault.code.replace("_", " "))  # type: ignore
                    if fault.kind == "timeout":
                        await call_next(request)
                        await self._hold.wait()
                    if fault.kind == "latency":  # answered, late
                        await asyncio.sleep(fault.delay_s)  # type: ignore[attr-defined]
            self._expire_due()
            response: Response = await call_next(request)
            return response

        def page(items: list[dict[str, Any]], request: Request, key: str, kind: str) -> JSONResponse:
            start = int(request.query_params.get("cursor") or 0)
            size = min(int(request.query_params.get("limit") or 100), self.page_size)
            chunk = items[start:start + size]
            cursor = str(start + size) if start + size < len(items) else ""
            return JSONResponse({key: [self._wire(kind, i) for i in chunk], "cursor": cursor})

        @app.get(BASE + "/exchange/status")
        async def status() -> Response:
            return JSONResponse({"exchange_active": True, "trading_active": True})

        @app.get(BASE + "/markets")
        async def markets(request: Request) -> Response:
            q = request.query_params
            groups = {"open": ("active", "open"), "closed": ("closed",), "unopened": ("initialized", "unopened"),
                      "settled": ("settled", "finalized", "determined")}
            found = [m for m in self.markets.values()
                     if (not q.get("status") or m["status"] in groups.get(q["status"], ()))
                     and (not q.get("series_ticker") or self.events.get(m["event_ticker"], {}).get("series_ticker")
                          == q["series_ticker"])
                     and (not q.get("event_ticker") or m["event_ticker"] in q["event_ticker"].split(","))
                     and (not q.get("tickers") or m["ticker"] in q["tickers"].split(","))
                     and (not q.get("min_close_ts") or _epoch(m["close_time"]) >= int(q["min_close_ts"]))
                     and (not q.get("max_close_ts") or _epoch(m["close_time"]) <= int(q["max_close_ts"]))]
            return page(found, request, "markets", "market")

        @app.get(BASE + "/markets/trades")
        async def trades(request: Request) -> Response:
            q = request.query_params
            found = [t for t in reversed(self.trades) if not q.get("ticker") or t["ticker"] == q["ticker"]]
            found = [t for t in found if not q.get("min_ts") or _epoch(t["created_time"]) >= int(q["min_ts"])]
            return page(found, request, "trades", "trade")

        @app.get(BASE + "/markets/{ticker}")
        async def market(ticker: str) -> Response:
            if ticker not in self.markets:
                return kalshi_error(404, "not_found", "not found")
            return JSONResponse({"market": self._wire("market", self.markets[ticker])})

        @app.get(BASE + "/markets/{ticker}/orderbook")
        async def orderbook(ticker: str, depth: int = 0) -> Response:
            if ticker not in self.markets:
                return kalshi_error(404, "not_found", "not found")
            yes, no = self.book(ticker)
            levels = {"yes_dollars": [[dollars(p), fp(q)] for p, q in sorted(yes.items())],
                      "no_dollars": [[dollars(p), fp(q)] for p, q in sorted(no.items())]}
            if depth > 0:
                levels = {k: v[-depth:] for k, v in levels.items()}
            body: dict[str, Any] = {"orderbook_fp": levels}
            if self.wire != "current":
                body["orderbook"] = levels | {"yes": [[int(Decimal(p) * 100), int(Decimal(c))] for p, c in levels[
                    "yes_dollars"]], "no": [[int(Decimal(p) * 100), int(Decimal(c))] for p, c in levels["no_dollars"]]}
            return JSONResponse(body)

        @app.get(BASE + "/series/{series}/markets/{ticker}/candlesticks")
        async def candles(series: str, ticker: str, start_ts: int, end_ts: int, period_interval: int) -> Response:
            rows = [c for c in self.candles.get(ticker, []) if start_ts <= int(c["end_period_ts"]) <= end_ts]
            return JSONResponse({"ticker": ticker, "candlesticks": [self._wire("candle", c) for c in rows]})

        @app.get(BASE + "/events")
        async def events(request: Request) -> Response:
            q = request.query_params
            found = [e for e in self.events.values()
                     if not q.get("series_ticker") or e["series_ticker"] == q["series_ticker"]]
            return page(found, request, "events", "event")

        @app.get(BASE + "/events/{event_ticker}")
        async def event(event_ticker: str) -> Response:
            if event_ticker not in self.events:
                return kalshi_error(404, "not_found", "not found")
            markets = [self._wire("market", m) for m in self.markets.values() if m["event_ticker"] == event_ticker]
            return JSONResponse({"event": self.events[event_ticker] | {"markets": markets}, "markets": markets})

        @app.get(BASE + "/portfolio/balance")
        async def balance() -> Response:
            cents = int((self.balance * 100).to_integral_value())
            return JSONResponse({"balance": cents, "portfolio_value": cents, "updated_ts": int(time.time()),
                                 "balance_dollars": dollars(self.balance)})

        @app.get(BASE + "/portfolio/positions")
        async def positions(request: Request) -> Response:
            rows = [{"ticker": t, "position_fp": fp(p.yes), "market_exposure_dollars": dollars(abs(p.cost)),
                     "realized_pnl_dollars": dollars(p.realized), "total_traded_dollars": dollars(p.traded),
                     "fees_paid_dollars": dollars(p.fees), "last_updated_ts": iso(time.time())}
                    for t, p in self.positions.items()]
            return JSONResponse({"market_positions": [self._wire("position", r) for r in rows], "event_positions": [],
                                 "cursor": ""})

        @app.get(BASE + "/portfolio/settlements")
        async def settlements(request: Request) -> Response:
            since = int(request.query_params.get("min_ts") or 0)
            found = [r for r in reversed(self.settlements) if _epoch(r["settled_time"]) >= since]
            return page(found, request, "settlements", "settlement")

        @app.get(BASE + "/portfolio/fills")
        async def fills(request: Request) -> Response:
            q = request.query_params
            found = [f for f in reversed(self.fills) if (not q.get("ticker") or f["ticker"] == q["ticker"])
                     and (not q.get("order_id") or f["order_id"] == q["order_id"])
                     and (not q.get("min_ts") or f["ts"] >= int(q["min_ts"]))]
            return page(found, request, "fills", "fill")

        @app.get(BASE + "/portfolio/orders")
        async def orders(request: Request) -> Response:
            q = request.query_params
            found = [o.to_json() for o in reversed(list(self.orders.values())) if o.user == ME
                     and (not q.get("ticker") or o.ticker == q["ticker"])
                     and (not q.get("status") or o.status == q["status"])
                     and (not q.get("min_ts") or o.created >= int(q["min_ts"]))]
            return page(found, request, "orders", "order")

        @app.get(BASE + "/portfolio/orders/{order_id}")
        async def get_order(order_id: str) -> Response:
            o = self.orders.get(order_id)
            if o is None or o.user != ME:
                return kalshi_error(404, "not_found", "not found")
            return JSONResponse({"order": self._wire("order", o.to_json())})

        @app.delete(BASE + "/portfolio/orders/{order_id}")
        async def cancel(order_id: str) -> Response:
            o = self.orders.get(order_id)
            if o is None or o.user != ME or o.status != "resting":
                return kalshi_error(404, "not_found", "not found")
            before = self.book(o.ticker)
            left = o.count - o.filled
            o.status, o.updated = "canceled", time.time()
            await self._book_changed(o.ticker, before)
            return JSONResponse({"order": self._wire("order", o.to_json()), "reduced_by": int(left),
                                 "reduced_by_fp": fp(left)})

        @app.post(BASE + "/portfolio/orders/{order_id}/decrease")
        async def decrease(order_id: str, request: Request) -> Response:
            o = self.orders.get(order_id)
            if o is None or o.user != ME or o.status != "resting":
                return kalshi_error(404, "not_found", "not found")
            body = json.loads(await request.body() or b"{}")
            before = self.book(o.ticker)
            if body.get("reduce_to") is not None:
                o.count = max(o.filled, o.filled + Decimal(body["reduce_to"]))
            else:
                o.count = max(o.filled, o.count - Decimal(body.get("reduce_by") or 0))
            if o.count <= o.filled:
                o.status = "canceled" if o.filled < o.count or o.filled == 0 else "executed"
            await self._book_changed(o.ticker, before)
            return JSONResponse({"order": self._wire("order", o.to_json())})

        @app.post(BASE + "/portfolio/orders")
        async def create(request: Request) -> Response:
            return await self._create(json.loads(await request.body() or b"{}"))

        @app.websocket(WS_PATH)
        async def ws(websocket: WebSocket) -> None:
            await self._serve_ws(websocket)

        return app

    async def _create(self, b: dict[str, Any]) -> Response:
        market = self.markets.get(str(b.get("ticker")))
        if market is None:
            return kalshi_error(404, "market_not_found", "market not found")
        if b.get("side") not in ("yes", "no") or b.get("action") not in ("buy", "sell"):
            return kalshi_error(400, "invalid_parameters", "invalid parameters", "side and action are required")
        prices = [k for k in ("yes_price", "no_price", "yes_price_dollars", "no_price_dollars") if b.get(k) is not None]
        if len(prices) != 1:
            return kalshi_error(400, "invalid_order", "invalid order",
                                "exactly one of yes_price, no_price, yes_price_dollars, or no_price_dollars should be "
                                "provided")
        raw = Decimal(str(b[prices[0]]))
        price = raw / 100 if not prices[0].endswith("_dollars") else raw
        if prices[0].startswith("yes") != (b["side"] == "yes"):
            price = ONE - price
        step = Decimal(market["price_ranges"][0]["step"])
        if not (0 < price < 1) or price % step:
            return kalshi_error(400, "invalid_price", "invalid price")
        count = Decimal(str(b.get("count_fp") or b.get("count") or 0))
        if count <= 0 or (count != count.to_integral_value() and not market.get("fractional_trading_enabled")):
            return kalshi_error(400, "invalid_parameters", "invalid parameters", "count must be a positive integer")
        if market["status"] not in ("active", "open"):
            return kalshi_error(409, "market_closed", "market closed")
        coid = b.get("client_order_id") or str(uuid.uuid4())
        if any(o.client_order_id == coid and o.user == ME for o in self.orders.values()):
            return kalshi_error(409, "order_already_exists", "order already exists")
        if b["action"] == "buy" and price * count > self.balance:
            return kalshi_error(400, "insufficient_balance", "insufficient balance")
        order = KOrder(order_id=str(uuid.uuid4()), client_order_id=coid, user=ME, ticker=market["ticker"],
                       side=b["side"], action=b["action"], price=price, count=count,
                       time_in_force=b.get("time_in_force") or "good_till_canceled",
                       expiration_ts=b.get("expiration_ts"),
                       post_only=bool(b.get("post_only")), reduce_only=bool(b.get("reduce_only")))
        yes, no = self.book(order.ticker)
        crosses = (any(ONE - q <= order.yes_price for q in no) if order.yes_bid
                   else any(p >= order.yes_price for p in yes))
        if order.post_only and crosses:
            return kalshi_error(400, "post_only_cross", "post only order would cross")
        if order.time_in_force == "fill_or_kill":
            side_book = no if order.yes_bid else yes
            available = sum((q for p, q in side_book.items()
                             if (ONE - p <= order.yes_price if order.yes_bid else p >= order.yes_price)), Decimal(0))
            if available < count:
                order.status = "canceled"
                self.orders[order.order_id] = order
                return JSONResponse({"order": self._wire("order", order.to_json())}, status_code=201)
        await self._place(order)
        return JSONResponse({"order": self._wire("order", order.to_json())}, status_code=201)


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@contextmanager
def kalshi_fake(**kw: Any) -> Iterator[KalshiFake]:
    fake = KalshiFake(**kw)
    fake.server.start()
    try:
        yield fake
    finally:
        fake.server.stop()
