"""Polymarket (CLOB, binary outcome tokens) with the unmodified ``py-clob-client-v2`` on the live framework.

**Client.** ``ClobClient(host, chain_id, key=<wallet key>, signature_type, funder)``; it signs orders (EIP-712,
CTF Exchange V2) and requests (L1 ``ClobAuth`` to derive the API key at :meth:`connect`, L2 HMAC for every
private call). It is synchronous: every call runs in a worker thread (``asyncio.to_thread``). Credentials: the
wallet's private key is ``{prefix}_API_SECRET``, an optional funder (proxy wallet) ``{prefix}_UID`` (then
``{prefix}_PASSWORD`` may give the signature type, 1 proxy / 2 Gnosis safe; default 0 = EOA); the derived API
key, secret and passphrase live in memory only. None of them is ever logged (:meth:`scrub`). Hosts: the
production CLOB (``live``), Polymarket's staging CLOB (``sandbox``, chain id from ``VenueConfig.chain_id``), or
``url_override`` (tests: the fake on 127.0.0.1).

**Instruments**: ``<token id>.<VENUE>``; prices are probabilities on the market's tick (a price off the tick is
refused here, because the client would silently round it), quantities are shares in hundredths (likewise).

**Orders**: limit only, ``GTC``, ``GTD`` (``expire_time_ns`` -> the order's ``expiration`` in seconds), ``FOK``,
``IOC`` (Polymarket's ``FAK``), post-only (``GTC``/``GTD``). No market orders: Polymarket's market BUY is an
amount of USDC while ``SubmitOrder.quantity`` is shares; a marketable limit ``FOK``/``IOC`` does the same with a
price cap. No stops, no reduce-only beyond spot semantics (a SELL sells held shares).

**Client order ids.** Polymarket has none. Its order id is the EIP-712 hash of the signed order, known *before*
the order is sent: :meth:`venue_place` signs, stores that hash as the tracked order's ``venue_order_id`` and has
the host save the state, and only then posts. So the mapping client order id -> order hash is deterministic from
the saved state, and an in-flight create (timeout, 5xx, lost response, restart) is resolved by looking the hash up
(``GET /data/order/<hash>``, then the account's trades for a taker or maker leg with that order id): found means
accepted, never a second order; an order that was never signed has no hash and cannot be at the venue.

**Fills** are the account's trades (``/data/trades``): the taker leg (``taker_order_id``) or a maker leg
(``maker_orders[].order_id``) of one of our orders, each at its own token, side and price (a YES BUY crossing a NO
BUY fills each on its own token; the instrument is always the order's: a recorded user-channel trade of a NO taker
carries the YES token as its top-level ``asset_id``). ``MATCHED``/``MINED``/``RETRYING`` trades are provisional,
``CONFIRMED`` final, ``FAILED`` reversed (the framework's provisional-fill handling). Taker fees from the trade's
``fee_rate_bps``.

**Errors.** ``400 {"error": ...}`` and ``success: false`` are definitive refusals; ``429`` is rate limited (the
client does not expose ``Retry-After``, so the limiter's default back-off applies); 5xx, timeouts and dropped
connections are ambiguous; a refused connection (``httpx.ConnectError`` behind the client's exception) was not
sent. Limits of the client: after a matching order whose answer has no ``transactionsHashes`` it polls each trade
until it carries a ``transaction_hash`` (up to 30 s, in the worker thread); a recorded MATCHED trade already carries
one, so that poll ends at its first answer. Its HTTP timeout is httpx's default 5 s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

import httpx
from py_clob_client_v2.client import ClobClient
from py_clob_client_v2.clob_types import (
    ApiCreds,
    AssetType,
    BalanceAllowanceParams,
    OrderArgsV2,
    OrderPayload,
    TradeParams,
)
from py_clob_client_v2.config import get_contract_config
from py_clob_client_v2.exceptions import PolyApiException, PolyException
from py_clob_client_v2.order_utils import ExchangeOrderBuilderV2

from tradewire_common.ids import split_instrument_id
from tradewire_common.prediction import FeeSchedule
from tradewire_common.schemas import Liquidity, Side, SubmitOrder, TimeInForce
from tradewire_execution.live.base import (
    CAP_GTD,
    CAP_POST_ONLY,
    Ambiguous,
    FillStatus,
    LiveVenueAdapter,
    NotSent,
    OrderNotFoundAtVenue,
    OrderStatus,
    RateLimited,
    VenueFill,
    VenueOrder,
    VenueRefused,
)
from tradewire_execution.live.credentials import Credentials
from tradewire_execution.live.guard import assert_loopback
from tradewire_execution.live.ratelimit import TokenBucket
from tradewire_execution.live.wire import venue_decimal
from tradewire_execution.venue import CAP_FOK, CAP_GTC, CAP_IOC, CAP_LIMIT, CAP_PARTIAL_FILLS

log = logging.getLogger(__name__)

LIVE_URL = "https://clob.polymarket.com"
STAGING_URL = "https://clob-staging.polymarket.com"
CAPABILITIES = frozenset({CAP_LIMIT, CAP_GTC, CAP_GTD, CAP_FOK, CAP_IOC, CAP_POST_ONLY, CAP_PARTIAL_FILLS})
#: Polymarket's published limits are per 10 s windows in the hundreds; stay well below.
DEFAULT_RATE_PER_S = 10.0
ORDER_TYPES = {TimeInForce.GTC: "GTC", TimeInForce.GTD: "GTD", TimeInForce.FOK: "FOK", TimeInForce.IOC: "FAK"}
FILL_STATUS: dict[str, FillStatus] = {"MATCHED": "provisional", "MINED": "provisional", "RETRYING": "provisional",
                                      "CONFIRMED": "final", "FAILED": "failed"}
#: Order sizes are in hundredths of a share (the client rounds them down to 2 decimals).
SIZE_STEP = Decimal("0.01")
T = TypeVar("T")


def error_text(exc: PolyException) -> str:
    """Polymarket's message: ``{"error": ...}``, else what the client says."""
    body = getattr(exc, "error_msg", None) or getattr(exc, "msg", None) or str(exc)
    if isinstance(body, dict):
        body = body.get("error") or body.get("errorMsg") or body
    status = getattr(exc, "status_code", None)
    return f"{body} ({status})" if status else str(body)


def venue_error(exc: PolyException, *, creating: bool) -> Exception:
    """The framework's exception for a client error (see the module docstring)."""
    status = getattr(exc, "status_code", None)
    if status == 429:
        return RateLimited(error_text(exc))
    if status is None and isinstance(exc, PolyApiException):
        cause = exc.__context__
        if isinstance(cause, httpx.ConnectError):
            return NotSent(f"not sent: {cause}")
        return Ambiguous(f"no answer: {type(cause).__name__ if cause else 'request failed'}")
    if status is not None and status >= 500:
        return Ambiguous(error_text(exc))
    if status == 404 and not creating:
        return OrderNotFoundAtVenue(error_text(exc))
    if status is not None or creating:
        return VenueRefused(error_text(exc))
    return ConnectionError(error_text(exc))


class PolymarketAdapter(LiveVenueAdapter):
    """Polymarket's CLOB (see the module docstring)."""

    def __init__(
        self, name: str, *, credentials: Credentials, symbols: list[str] | tuple[str, ...], chain_id: int = 137,
        live: bool = False, url_override: str = "", signature_type: int = 0,
        limiter: TokenBucket | None = None, in_flight_grace_s: float = 15.0, poll_interval_s: float = 2.0,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        super().__init__(name, capabilities=CAPABILITIES, limiter=limiter, credentials=credentials,
                         in_flight_grace_s=in_flight_grace_s, poll_interval_s=poll_interval_s, websocket=False,
                         wall_ns=wall_ns)
        self.host_url = (url_override or (LIVE_URL if live else STAGING_URL)).rstrip("/")
        assert_loopback([self.host_url], f"venue {name}")
        self.chain_id = chain_id
        self.symbols = frozenset(symbols)
        self.signature_type = signature_type
        self.client: ClobClient | None = None
        self.api_creds: ApiCreds | None = None

    # --- plumbing -----------------------------------------------------------------------------------------

    def scrub(self, text: str) -> str:
        creds = self.api_creds
        for value in (creds.api_key, creds.api_secret, creds.api_passphrase) if creds else ():
            if value:
                text = text.replace(value, "***")
        return super().scrub(text)

    async def _run(self, fn: Callable[..., T], *args: Any, creating: bool = False) -> T:
        """A client call in a worker thread, its errors as the framework's."""
        try:
            return await asyncio.to_thread(fn, *args)
        except PolyException as exc:
            raise venue_error(exc, creating=creating) from None

    @property
    def _client(self) -> ClobClient:
        if self.client is None:
            raise NotSent("not connected")
        return self.client

    async def connect(self) -> None:
        if self.client is not None:
            return
        if not self.credentials.secret:
            raise ValueError(f"venue {self.name}: the wallet's private key is required (API_SECRET)")
        client = ClobClient(self.host_url, self.chain_id, key=self.credentials.secret,
                            signature_type=self.signature_type, funder=self.credentials.uid or None)
        self.api_creds = await self._run(client.create_or_derive_api_key)
        client.set_api_creds(self.api_creds)
        self.client = client
        log.info("venue %s: connected to %s as %s", self.name, self.host_url, client.get_address())

    async def disconnect(self) -> None:
        self.client = None

    def token(self, order: SubmitOrder) -> str:
        return split_instrument_id(order.instrument_id)[0]

    def _coid(self, order_id: str) -> str:
        for tracked in (*self.tracked_orders(), *self._closed_orders.values()):
            if tracked.venue_order_id == order_id:
                return tracked.order.client_order_id
        return ""

    # --- placing ------------------------------------------------------------------------------------------

    def order_hash(self, signed: Any, token: str) -> str:
        """Polymarket's order id: the EIP-712 hash of the signed order (as the client built it)."""
        contracts = get_contract_config(self.chain_id)
        neg_risk = self._client.get_neg_risk(token)
        exchange = contracts.neg_risk_exchange_v2 if neg_risk else contracts.exchange_v2
        builder = ExchangeOrderBuilderV2(exchange, self.chain_id, self._client.signer)
        return str(builder.build_order_hash(builder.build_order_typed_data(signed)))

    async def venue_place(self, order: SubmitOrder) -> VenueOrder:
        client, token = self._client, self.token(order)
        if order.limit_price is None or order.time_in_force not in ORDER_TYPES:
            raise VenueRefused(f"Polymarket takes limit GTC/GTD/FOK/IOC orders, not {order.order_type} "
                               f"{order.time_in_force}")
        try:  # nothing is posted before the signed order: a failure here was not sent
            tick = Decimal(str(await self._run(client.get_tick_size, token, creating=True)))
            if order.limit_price % tick:
                raise VenueRefused(f"price {order.limit_price} is not on the market's tick {tick}")
            if order.quantity % SIZE_STEP:  # the client would round it down
                raise VenueRefused(f"quantity {order.quantity} is not a multiple of {SIZE_STEP} shares")
            expiration = (order.expire_time_ns or 0) // 1_000_000_000
            args = OrderArgsV2(token_id=token, price=float(order.limit_price), size=float(order.quantity),
                               side=order.side.value, expiration=expiration)
            signed = await self._run(client.create_order, args, creating=True)
            order_id = await self._run(self.order_hash, signed, token, creating=True)
        except Ambiguous as exc:
            raise NotSent(str(exc)) from None
        tracked = self.tracked(order.client_order_id)
        if tracked is not None:  # the mapping is saved before the order leaves
            tracked.venue_order_id = order_id
            self._bump()
            await self.host.adapter_state_changed(self.name)
        answer = await self._run(client.post_order, signed, ORDER_TYPES[order.time_in_force], order.post_only,
                                 creating=True)
        if not isinstance(answer, dict) or not answer.get("success", False):
            reason = answer.get("errorMsg") if isinstance(answer, dict) else answer
            raise VenueRefused(f"refused by Polymarket: {reason}")
        order_id = str(answer.get("orderID") or order_id)
        shares = venue_decimal(answer.get("takingAmount" if order.side is Side.BUY else "makingAmount"))
        done = shares >= order.quantity
        status: OrderStatus = "filled" if done else "open"
        if order.time_in_force in (TimeInForce.FOK, TimeInForce.IOC) and not done:
            status = "expired"  # the rest was killed
        return VenueOrder(client_order_id=order.client_order_id, venue_order_id=order_id, status=status,
                          filled_qty=shares, ts_ns=self.wall_ns())

    async def venue_cancel(self, order: SubmitOrder, venue_order_id: str) -> VenueOrder:
        if not venue_order_id:
            raise OrderNotFoundAtVenue("never signed")
        answer = await self._run(self._client.cancel_order, OrderPayload(orderID=venue_order_id))
        if venue_order_id not in (answer.get("canceled") or []):
            reason = (answer.get("not_canceled") or {}).get(venue_order_id, "not cancelled")
            raise OrderNotFoundAtVenue(str(reason))
        return await self.venue_order(order)

    # --- reading ------------------------------------------------------------------------------------------

    def _venue_order(self, raw: dict[str, Any], coid: str) -> VenueOrder:
        kind = str(raw.get("order_type", "GTC")).upper()
        statuses: dict[str, OrderStatus] = {"LIVE": "open", "MATCHED": "filled", "CANCELED": "canceled",
                                            "CANCELLED": "canceled"}
        status = statuses.get(str(raw.get("status", "")).upper(), "open")
        expiration = int(venue_decimal(raw.get("expiration")))
        if status == "canceled" and (kind in ("FOK", "FAK")  # the rest killed by the venue
                                     or (kind == "GTD" and 0 < expiration <= self.wall_ns() // 1_000_000_000)):
            status = "expired"
        return VenueOrder(
            client_order_id=coid, venue_order_id=str(raw["id"]), status=status,
            filled_qty=venue_decimal(raw.get("size_matched")), symbol=str(raw.get("asset_id", "")),
            side=Side.BUY if str(raw.get("side", "")).upper() == "BUY" else Side.SELL,
            quantity=venue_decimal(raw.get("original_size")), limit_price=venue_decimal(raw.get("price")),
            ts_ns=int(raw.get("created_at") or 0) * 1_000_000_000)

    async def venue_order(self, order: SubmitOrder) -> VenueOrder:
        tracked = self.tracked(order.client_order_id)
        order_id = tracked.venue_order_id if tracked else ""
        if not order_id:
            raise OrderNotFoundAtVenue(f"{order.client_order_id} was never signed")
        try:
            raw = await self._run(self._client.get_order, order_id)
        except OrderNotFoundAtVenue:
            raw = None
        if isinstance(raw, dict) and raw.get("id"):
            return self._venue_order(raw, order.client_order_id)
        fills = await self.venue_order_fills(order, order_id)  # an order gone from the book may have traded
        if not fills:
            raise OrderNotFoundAtVenue(f"Polymarket has no order {order_id}")
        filled = sum((f.quantity for f in fills if f.status != "failed"), Decimal(0))
        return VenueOrder(client_order_id=order.client_order_id, venue_order_id=order_id,
                          status="filled" if filled >= order.quantity else "expired", filled_qty=filled)

    async def venue_open_orders(self) -> list[VenueOrder]:
        raw = await self._run(self._client.get_open_orders)
        return [self._venue_order(o, self._coid(str(o["id"]))) for o in raw
                if not self.symbols or str(o.get("asset_id")) in self.symbols]

    def _fills_of(self, trade: dict[str, Any], order_ids: set[str]) -> list[VenueFill]:
        status = FILL_STATUS.get(str(trade.get("status", "")).upper(), "provisional")
        ts = int(venue_decimal(trade.get("match_time"))) * 1_000_000_000
        rate = venue_decimal(trade.get("fee_rate_bps"))
        out: list[VenueFill] = []
        if trade.get("taker_order_id") in order_ids:
            qty, price = venue_decimal(trade["size"]), venue_decimal(trade["price"])
            fee = FeeSchedule.for_venue("polymarket", fee_rate_bps=rate).fee(price, qty) if 0 < price < 1 else 0
            out.append(VenueFill(
                trade_id=str(trade["id"]), venue_order_id=str(trade["taker_order_id"]),
                client_order_id=self._coid(str(trade["taker_order_id"])), symbol=str(trade.get("asset_id", "")),
                side=Side.BUY if str(trade.get("side")).upper() == "BUY" else Side.SELL, quantity=qty, price=price,
                fee=Decimal(fee), fee_currency="USDC", liquidity=Liquidity.TAKER, ts_ns=ts, status=status))
        for leg in trade.get("maker_orders") or []:
            if leg.get("order_id") in order_ids:
                out.append(VenueFill(
                    trade_id=str(trade["id"]), venue_order_id=str(leg["order_id"]),
                    client_order_id=self._coid(str(leg["order_id"])), symbol=str(leg.get("asset_id", "")),
                    side=Side.SELL if str(leg.get("side", "BUY")).upper() == "SELL" else Side.BUY,
                    quantity=venue_decimal(leg["matched_amount"]), price=venue_decimal(leg["price"]),
                    fee_currency="USDC", liquidity=Liquidity.MAKER, ts_ns=ts, status=status))
        return out

    async def venue_order_fills(self, order: SubmitOrder, venue_order_id: str) -> list[VenueFill]:
        if not venue_order_id:
            return []
        # not filtered by token: a maker leg crossing the complement token is a trade of the other token
        tracked = self.tracked(order.client_order_id)
        after = max(0, (tracked.sent_ns if tracked else 0) // 1_000_000_000 - 60)
        trades = await self._run(self._client.get_trades, TradeParams(after=after or None))
        return [f for t in trades for f in self._fills_of(t, {venue_order_id})]

    async def venue_fills(self, since_ns: int) -> list[VenueFill]:
        trades = await self._run(self._client.get_trades, TradeParams(after=since_ns // 1_000_000_000))
        ours = {t.venue_order_id for t in (*self.tracked_orders(), *self._closed_orders.values())
                if t.venue_order_id}
        return [f for t in trades for f in self._fills_of(t, ours)]

    async def venue_balances(self) -> dict[str, Decimal]:
        answer = await self._run(self._client.get_balance_allowance,
                                 BalanceAllowanceParams(asset_type=AssetType.COLLATERAL))
        return {"USDC": venue_decimal(answer.get("balance")) / Decimal(1_000_000)}


def build(venue: Any, config: Any) -> PolymarketAdapter:
    """The factory of ``tradewire_execution.venues`` (``adapter = "polymarket"``)."""
    from tradewire_execution.live.credentials import default_prefix, load_credentials

    prefix = venue.credentials_env_prefix or default_prefix(venue.name)
    credentials = load_credentials(prefix)
    if not credentials.secret:
        raise ValueError(f"venue {venue.name}: Polymarket needs the wallet's private key in {prefix}_API_SECRET "
                         f"(or its _FILE twin); a proxy wallet address in {prefix}_UID is optional")
    return PolymarketAdapter(
        venue.name, credentials=credentials, symbols=venue.symbols, chain_id=venue.chain_id,
        live=venue.mode == "live", url_override=venue.url_override,
        signature_type=int(credentials.password or 0) if credentials.uid else 0,
        limiter=TokenBucket(venue.rate_limit_per_s or DEFAULT_RATE_PER_S), in_flight_grace_s=venue.in_flight_grace_s,
        poll_interval_s=venue.poll_interval_s)
