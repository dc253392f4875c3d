"""Manifold Markets (play-money "mana" prediction markets) with plain ``httpx`` against API v0, on the live framework.

No maintained SDK exists (``manifoldpy`` does not install), so this talks to the REST API directly. Endpoints:
``mode = "sandbox"`` is Manifold's development deployment (``https://api.dev.manifold.markets``), ``mode = "live"``
the real one (``https://api.manifold.markets``; still play money, but it is a real account, so ``--live`` is still
required); ``mode = "paper"`` stays the paper venue. ``url_override`` replaces the base (tests: the fake).
Credentials: ``{prefix}_API_KEY``, sent as ``Authorization: Key <api key>``, never logged. Errors are Manifold's
``{"message": "..."}``: 4xx is a definitive refusal, 429 a rate limit (``Retry-After``), 5xx/timeouts ambiguous.

**Instruments**: ``<contract id>-YES.<VENUE>`` and ``<contract id>-NO.<VENUE>`` of binary markets; prices are
probabilities, quantities shares (contracts that pay 1 mana at the outcome's resolution).

**Shares -> mana.** A Manifold bet spends an ``amount`` of mana, Tradewire orders ``quantity`` shares, so a LIMIT
order for ``Q`` shares at ``P`` becomes a limit bet (:func:`bet_request`):

* BUY ``-YES`` at ``P``: ``outcome = YES``, ``limitProb = P``, ``amount = Q * P``;
* BUY ``-NO`` at ``P`` (the NO contract's price): ``outcome = NO``, ``limitProb = 1 - P``, ``amount = Q * P``;
* SELL is a bet on the other outcome, which Manifold redeems against the shares held (a YES and a NO share
  together pay 1): SELL ``-YES`` at ``P`` is ``outcome = NO``, ``limitProb = P``, ``amount = Q * (1 - P)``; SELL
  ``-NO`` at ``P`` is ``outcome = YES``, ``limitProb = 1 - P``, ``amount = Q * (1 - P)``. (Without shares of
  the instrument held, the bet's shares simply stay: Manifold has no short sale; risk only sells what is held.)

A fill of ``s`` shares for ``a`` mana is ``s`` contracts at ``a / s`` (BUY) or ``1 - a / s`` (SELL, the price
the instrument was sold at); Manifold's float shares are rounded to 1e-8 (``2.4 / 0.4`` is ``5.999999999999999``
there) and prices to 1e-12. A bet that fills at better prices than its limit spends the same mana for **more**
shares than ``Q``: the adapter reports the shares Manifold gave (the order is then filled with ``leaves_qty`` 0).
Only LIMIT orders with ``GTC`` or ``GTD`` (``expiresAt``) are taken; ``limitProb`` must be 0.01..0.99 in steps of
0.01 and a bet at least 1 mana; MARKET orders (an amount of mana, not of shares) are refused before sending.

**Fills** come from the bet's ``fills`` (``amount``, ``shares``, ``matchedBetId``, ``timestamp``): they are
append-only, so fill ``i`` of bet ``b`` has the trade id ``b:i``. There is no order stream here: bets are polled.

**No client order id.** Manifold has none, so a create is never sent twice and the client order id -> bet id
mapping lives in the saved state (``TrackedOrder.venue_order_id``). A create whose answer was lost is resolved by
listing the account's recent bets on the market (``GET /v0/bets?userId=<me>&contractId=<id>``) for bets with the
same outcome, ``limitProb`` and ``orderAmount`` that no other tracked order claims: the first one created at or
after the send, else (clocks differ) the latest one created up to :data:`CLOCK_SKEW_MS` before it; none is "no
such order" (definitive after the grace). An identical bet placed by hand in the same minute can be mistaken for
it: this is the limit of a venue without client order ids.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

import httpx

from tradewire_common.ids import split_instrument_id
from tradewire_common.schemas import OrderType, Side, SubmitOrder, TimeInForce
from tradewire_execution.live.base import (
    ZERO,
    LiveVenueAdapter,
    OrderNotFoundAtVenue,
    OrderStatus,
    VenueFill,
    VenueOrder,
    VenueRefused,
)
from tradewire_execution.live.credentials import Credentials
from tradewire_execution.live.guard import assert_loopback
from tradewire_execution.live.http import VenueHttp
from tradewire_execution.live.ratelimit import TokenBucket
from tradewire_execution.live.wire import venue_decimal
from tradewire_execution.venue import CAP_GTC, CAP_GTD, CAP_LIMIT, CAP_PARTIAL_FILLS

log = logging.getLogger(__name__)

LIVE_URL = "https://api.manifold.markets"
DEV_URL = "https://api.dev.manifold.markets"
CAPABILITIES = frozenset({CAP_LIMIT, CAP_GTC, CAP_GTD, CAP_PARTIAL_FILLS})
#: Manifold allows 500 requests a minute per IP; stay well below.
DEFAULT_RATE_PER_S = 4.0
#: A lost create's bet is searched among bets created from this long before the send (clock skew).
CLOCK_SKEW_MS = 60_000
#: Bets listed when looking for an order.
BET_PAGE = 1000
MIN_BET = Decimal(1)
PRICE_STEP = Decimal("0.01")
PX_QUANTUM = Decimal("1e-12")
#: Manifold computes shares in binary floating point (2.4 / 0.4 = 5.999999999999999): fills are rounded to this.
SHARE_QUANTUM = Decimal("1e-8")


def shares_of(value: Any) -> Decimal:
    """A float share count from Manifold as an exact Decimal rounded to :data:`SHARE_QUANTUM` (normalized)."""
    return venue_decimal(value).quantize(SHARE_QUANTUM).normalize()


def outcome_of(symbol: str) -> tuple[str, str]:
    """``("<contract id>", "YES"|"NO")`` of an instrument symbol ``<contract id>-YES``."""
    contract, sep, outcome = symbol.rpartition("-")
    if not sep or not contract or outcome not in ("YES", "NO"):
        raise ValueError(f"not a Manifold outcome symbol (<contract id>-YES|-NO): {symbol!r}")
    return contract, outcome


def bet_request(order: SubmitOrder) -> dict[str, Any]:
    """The ``POST /v0/bet`` body of a LIMIT order (see the module docstring for the conversion)."""
    if order.limit_price is None:
        raise ValueError("Manifold orders need a limit price")
    contract, outcome = outcome_of(split_instrument_id(order.instrument_id)[0])
    price, qty = order.limit_price, order.quantity
    yes_prob = price if outcome == "YES" else 1 - price  # the YES probability the order's price stands for
    if order.side is Side.BUY:
        bet_outcome, amount = outcome, qty * price
    else:
        bet_outcome, amount = ("NO" if outcome == "YES" else "YES"), qty * (1 - price)
    body: dict[str, Any] = {"contractId": contract, "outcome": bet_outcome, "amount": float(amount),
                            "limitProb": float(yes_prob)}
    if order.time_in_force is TimeInForce.GTD and order.expire_time_ns:
        body["expiresAt"] = order.expire_time_ns // 1_000_000
    return body


def error_text(response: httpx.Response) -> str:
    """Manifold's ``{"message": ...}`` (validation errors add ``details``), else the body's text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500]
    if isinstance(body, dict) and "message" in body:
        details = body.get("details")
        return str(body["message"]) + (f" ({details})" if details else "")
    return response.text.strip()[:500]


class ManifoldHttp(VenueHttp):
    """The HTTP side: ``Authorization: Key``, Manifold's errors; the rest is :class:`VenueHttp`."""

    def __init__(self, base_url: str, api_key: str, *, timeout_s: float = 10.0, scrub: Callable[[str], str] = str,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__("Manifold", base_url, timeout_s=timeout_s, scrub=scrub, error_text=error_text,
                         transport=transport, headers={"Authorization": f"Key {api_key}", "Accept": "application/json"})

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,  # type: ignore[override]
                      body: dict[str, Any] | None = None) -> Any:
        return await super().request(method, path, params=params, json=body)


class ManifoldAdapter(LiveVenueAdapter):
    """Manifold's bets API (see the module docstring)."""

    spot = True  # a SELL redeems shares held; there is no short position

    def __init__(
        self, name: str, *, credentials: Credentials, symbols: Iterable[str] = (), base_url: str = DEV_URL,
        limiter: TokenBucket | None = None, in_flight_grace_s: float = 15.0, poll_interval_s: float = 2.0,
        request_timeout_s: float = 10.0, wall_ns: Callable[[], int] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        extra: dict[str, Any] = {"wall_ns": wall_ns} if wall_ns is not None else {}
        super().__init__(name, capabilities=CAPABILITIES, limiter=limiter or TokenBucket(DEFAULT_RATE_PER_S),
                         credentials=credentials, in_flight_grace_s=in_flight_grace_s,
                         poll_interval_s=poll_interval_s, websocket=False, **extra)
        self.base_url = base_url.rstrip("/")
        self.symbols = frozenset(symbols)
        self.contracts = frozenset(outcome_of(s)[0] for s in self.symbols)
        self.http = ManifoldHttp(self.base_url, credentials.api_key, timeout_s=request_timeout_s, scrub=self.scrub,
                                 transport=transport)
        self.user_id = ""

    async def connect(self) -> None:
        assert_loopback([self.base_url], f"venue {self.name}")
        try:
            me = await self.http.request("GET", "/v0/me")
        except VenueRefused as exc:  # a wrong key: orders will be refused with Manifold's message
            log.error("venue %s: %s", self.name, self.scrub(str(exc)))
            return
        except ConnectionError as exc:  # down at start: the account is looked up again before it is needed
            log.warning("venue %s: account not loaded yet: %s", self.name, self.scrub(str(exc)))
            return
        self.user_id = str((me or {}).get("id", ""))

    async def disconnect(self) -> None:
        await self.http.close()

    async def _me(self) -> str:
        if not self.user_id:
            me = await self.http.request("GET", "/v0/me")
            self.user_id = str((me or {}).get("id", ""))
        return self.user_id

    # --- orders -------------------------------------------------------------------------------------------

    def refusal(self, order: SubmitOrder) -> str:
        reason = super().refusal(order)
        if reason:
            return reason
        symbol, _venue = split_instrument_id(order.instrument_id)
        try:
            outcome_of(symbol)
        except ValueError as exc:
            return f"venue {self.name}: {exc}"
        if self.symbols and symbol not in self.symbols:
            return f"venue {self.name}: {symbol} is not among the configured symbols"
        if order.order_type is not OrderType.LIMIT or order.limit_price is None:
            return f"venue {self.name}: Manifold takes limit bets only (a market bet is an amount of mana, not shares)"
        price = order.limit_price
        if not (PRICE_STEP <= price <= 1 - PRICE_STEP) or price % PRICE_STEP:
            return f"venue {self.name}: limit price {price} is not a Manifold probability (0.01..0.99, step 0.01)"
        if Decimal(str(bet_request(order)["amount"])) < MIN_BET:
            return f"venue {self.name}: the bet would be under {MIN_BET} mana"
        return ""

    async def venue_place(self, order: SubmitOrder) -> VenueOrder:
        placed = await self.http.request("POST", "/v0/bet", body=bet_request(order))
        if not isinstance(placed, dict) or not (placed.get("betId") or placed.get("id")):
            raise VenueRefused(f"Manifold did not place the bet: {self.scrub(str(placed))[:300]}")
        return self.parse_bet(placed, order.client_order_id)

    async def venue_cancel(self, order: SubmitOrder, venue_order_id: str) -> VenueOrder:
        if not venue_order_id:
            venue_order_id = (await self.venue_order(order)).venue_order_id
        try:
            answer = await self.http.request("POST", f"/v0/bet/cancel/{venue_order_id}")
        except VenueRefused as exc:  # "Bet already cancelled/filled": its own state says how it ended
            raise OrderNotFoundAtVenue(str(exc)) from None
        return self.parse_bet(answer, order.client_order_id)

    async def _bets(self, contract: str | None = None, *, open_only: bool = False) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"userId": await self._me(), "limit": BET_PAGE}
        if contract:
            params["contractId"] = contract
        if open_only:
            params["kinds"] = "open-limit"
        rows = await self.http.request("GET", "/v0/bets", params=params)
        return [b for b in rows or [] if isinstance(b, dict)]

    def _claimed(self, except_coid: str) -> dict[str, str]:
        """Bet id -> client order id of every order tracked (open or recently closed), but one."""
        out: dict[str, str] = {}
        for tracked in [*self.tracked_orders(), *self._closed_orders.values()]:
            if tracked.venue_order_id and tracked.order.client_order_id != except_coid:
                out[tracked.venue_order_id] = tracked.order.client_order_id
        return out

    async def venue_order(self, order: SubmitOrder) -> VenueOrder:
        contract, _outcome = outcome_of(split_instrument_id(order.instrument_id)[0])
        bets = await self._bets(contract)
        tracked = self.tracked(order.client_order_id)
        if tracked is not None and tracked.venue_order_id:
            for bet in bets:
                if str(bet.get("id")) == tracked.venue_order_id:
                    return self.parse_bet(bet, order.client_order_id)
            raise OrderNotFoundAtVenue(f"Manifold lists no bet {tracked.venue_order_id}")
        match = self.find_lost_bet(order, bets, sent_ns=tracked.sent_ns if tracked is not None else 0)
        if match is None:
            raise OrderNotFoundAtVenue(f"Manifold has no bet matching {order.client_order_id}")
        return self.parse_bet(match, order.client_order_id)

    def find_lost_bet(self, order: SubmitOrder, bets: list[dict[str, Any]], *, sent_ns: int) -> dict[str, Any] | None:
        """The bet a create whose answer was lost placed (module docstring), or None."""
        want = bet_request(order)
        claimed = self._claimed(order.client_order_id)
        since_ms = sent_ns // 1_000_000 - CLOCK_SKEW_MS if sent_ns else 0
        candidates = [
            b for b in bets
            if str(b.get("id")) not in claimed and b.get("outcome") == want["outcome"]
            and b.get("limitProb") is not None and abs(float(b["limitProb"]) - want["limitProb"]) < 1e-9
            and abs(float(b.get("orderAmount", b.get("amount", 0))) - want["amount"]) < 1e-6
            and int(b.get("createdTime", 0)) >= since_ms]
        sent_ms = sent_ns // 1_000_000
        after = [b for b in candidates if int(b.get("createdTime", 0)) >= sent_ms]
        if after or not candidates:  # the first one created after the send; else the latest within the skew
            return min(after, key=lambda b: (int(b.get("createdTime", 0)), str(b["id"])), default=None)
        return max(candidates, key=lambda b: (int(b.get("createdTime", 0)), str(b["id"])))

    async def venue_open_orders(self) -> list[VenueOrder]:
        claimed = self._claimed("")
        out = []
        for bet in await self._bets(open_only=True):
            if self.contracts and bet.get("contractId") not in self.contracts:
                continue
            out.append(self.parse_bet(bet, claimed.get(str(bet.get("id")), "")))
        return out

    def parse_bet(self, raw: Any, coid: str) -> VenueOrder:
        if not isinstance(raw, dict) or not (raw.get("betId") or raw.get("id")):
            raise OrderNotFoundAtVenue("Manifold answered without a bet")
        status: OrderStatus = "open"
        if raw.get("isFilled") or (raw.get("limitProb") is None and raw.get("fills") is not None):
            status = "filled"
        elif raw.get("isCancelled"):
            status = "canceled"
        elif raw.get("expiresAt") and int(raw["expiresAt"]) <= self.wall_ns() // 1_000_000:
            status = "expired"
        filled = sum((shares_of(f.get("shares")) for f in raw.get("fills") or []), ZERO)
        return VenueOrder(client_order_id=coid, venue_order_id=str(raw.get("betId") or raw["id"]), status=status,
                          filled_qty=filled, symbol=f"{raw.get('contractId', '')}-{raw.get('outcome', '')}",
                          ts_ns=int(raw.get("createdTime") or 0) * 1_000_000)

    def fills_of(self, raw: dict[str, Any], order: SubmitOrder) -> list[VenueFill]:
        """The bet's fills as fills of ``order``'s instrument (a SELL's price is 1 - what the bet paid)."""
        bet_id = str(raw.get("betId") or raw["id"])
        out = []
        for i, fill in enumerate(raw.get("fills") or []):
            shares, amount = shares_of(fill.get("shares")), venue_decimal(fill.get("amount"))
            if shares <= 0 or amount <= 0:
                continue
            paid = (amount / venue_decimal(fill.get("shares"))).quantize(PX_QUANTUM).normalize()
            out.append(VenueFill(
                trade_id=f"{bet_id}:{i}", venue_order_id=bet_id, client_order_id=order.client_order_id,
                symbol=split_instrument_id(order.instrument_id)[0], side=order.side, quantity=shares,
                price=paid if order.side is Side.BUY else 1 - paid, fee=ZERO, fee_currency="MANA",
                ts_ns=int(fill.get("timestamp") or raw.get("createdTime") or 0) * 1_000_000))
        return out

    async def venue_order_fills(self, order: SubmitOrder, venue_order_id: str) -> list[VenueFill]:
        contract, _outcome = outcome_of(split_instrument_id(order.instrument_id)[0])
        for bet in await self._bets(contract):
            if str(bet.get("id")) == venue_order_id:
                return self.fills_of(bet, order)
        raise OrderNotFoundAtVenue(f"Manifold lists no bet {venue_order_id}")

    async def venue_fills(self, since_ns: int) -> list[VenueFill]:
        tracked = {t.venue_order_id: t.order for t in [*self.tracked_orders(), *self._closed_orders.values()]
                   if t.venue_order_id}
        out = []
        for bet in await self._bets():
            order = tracked.get(str(bet.get("id")))
            if order is not None:
                out += [f for f in self.fills_of(bet, order) if f.ts_ns >= since_ns]
        return out

    async def venue_balances(self) -> dict[str, Decimal]:
        me = await self.http.request("GET", "/v0/me")
        return {"MANA": venue_decimal((me or {}).get("balance"))}


def build(venue: Any, config: Any) -> ManifoldAdapter:
    """The factory of ``tradewire_execution.venues`` (``adapter = "manifold"``): ``mode = "sandbox"`` is Manifold's
    development deployment, ``mode = "live"`` manifold.markets (play money, still armed by ``--live``)."""
    from tradewire_execution.live.credentials import default_prefix, load_credentials

    prefix = venue.credentials_env_prefix or default_prefix(venue.name)
    credentials = load_credentials(prefix)
    if not credentials.api_key:
        raise ValueError(f"venue {venue.name}: the Manifold API key is missing: set {prefix}_API_KEY "
                         f"(or {prefix}_API_KEY_FILE)")
    base = venue.url_override or (LIVE_URL if venue.mode == "live" else DEV_URL)
    return ManifoldAdapter(
        venue.name, credentials=credentials, symbols=venue.symbols, base_url=base,
        limiter=TokenBucket(venue.rate_limit_per_s or DEFAULT_RATE_PER_S), in_flight_grace_s=venue.in_flight_grace_s,
        poll_interval_s=venue.poll_interval_s)
