"""A fake Manifold Markets API v0 on 127.0.0.1, answering in Manifold's JSON (camelCase, ms epoch times, floats).

* Reads: ``GET /v0/markets`` (``limit``, ``before`` = a market id: older ones), ``/v0/search-markets`` (``term``,
  ``filter`` all/open/closed/resolved, ``sort`` newest/liquidity/24-hour-vol/close-date, ``limit``),
  ``/v0/market/{id}``, ``/v0/slug/{slug}``, ``/v0/bets`` (``contractId``, ``userId``, ``limit``, ``before`` = a bet
  id, ``kinds=open-limit``; newest first), ``/v0/me``.
* ``POST /v0/bet`` (JSON: ``contractId``, ``amount`` in mana, ``outcome`` YES/NO, optional ``limitProb`` and
  ``expiresAt``): without ``limitProb`` the bet buys from the pool (a cpmm-1 pool with ``p = 0.5``: the price
  moves with every bet); with it, the bet first takes resting limit orders of the other side that cross (at their
  prices), then the pool up to ``limitProb``, and rests for the rest. The answer is the bet with ``betId``,
  ``fills`` (``amount``, ``shares``, ``matchedBetId``, ``timestamp``), ``isFilled``, ``isCancelled``,
  ``orderAmount``, ``amount`` (mana filled), ``shares``, ``probBefore``/``probAfter``.
  ``POST /v0/bet/cancel/{id}`` cancels the rest of an open limit bet.
* Resolution (:meth:`ManifoldFake.resolve`, or ``POST /v0/market/{id}/resolve``): ``YES``, ``NO``, ``MKT`` with a
  ``probabilityInt`` (-> ``resolutionProbability``) or ``CANCEL``; open limit bets are cancelled.
* Auth: every write and ``/v0/me`` need ``Authorization: Key <api key>``; errors are ``{"message": "..."}``
  with Manifold's status codes (401 no/unknown key, 400 validation, 403 balance/closed market, 404 unknown
  contract or bet).
* Faults (:meth:`fault`): ``timeout`` (carried out, never answered), ``lost`` (carried out, answered 502),
  ``5xx`` (not carried out), ``429`` (with ``Retry-After``), ``latency`` (answered after ``delay_s``); the first
  request of that method and path prefix takes it.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from tests.fakes.alpaca_fake import ThreadedApp

API_KEY = "manifold-key-never-logged-4be1d7"
USER_ID = "tradewireBotUserId000001"


@dataclass
class Fault:
    method: str
    path: str
    kind: str
    status: int = 503
    retry_after: str = "1"
    delay_s: float = 0.0
    times: int = 1


@dataclass
class FakeMarket:
    id: str
    question: str
    slug: str
    yes: float = 100.0
    no: float = 100.0
    volume: float = 0.0
    created: int = field(default_factory=lambda: int(time.time() * 1000))
    close_time: int = 4_102_444_800_000
    resolution: str | None = None
    resolution_time: int | None = None
    resolution_probability: float | None = None
    liquidity: float = 100.0

    @property
    def prob(self) -> float:
        return self.no / (self.yes + self.no)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "creatorId": "creator0001", "creatorUsername": "fake", "creatorName": "Fake",
            "createdTime": self.created, "closeTime": self.close_time, "question": self.question,
            "slug": self.slug, "url": f"https://manifold.markets/fake/{self.slug}",
            "pool": {"YES": self.yes, "NO": self.no}, "probability": self.prob, "p": 0.5,
            "totalLiquidity": self.liquidity, "outcomeType": "BINARY", "mechanism": "cpmm-1",
            "volume": self.volume, "volume24Hours": self.volume, "isResolved": self.resolution is not None,
            "lastUpdatedTime": int(time.time() * 1000),
        }
        if self.resolution is not None:
            out.update(resolution=self.resolution, resolutionTime=self.resolution_time)
            if self.resolution_probability is not None:
                out["resolutionProbability"] = self.resolution_probability
        return out


@dataclass
class FakeBet:
    id: str
    user_id: str
    contract_id: str
    outcome: str
    order_amount: float
    limit_prob: float | None
    prob_before: float
    created: int
    expires_at: int | None = None
    fills: list[dict[str, Any]] = field(default_factory=list)
    is_cancelled: bool = False
    prob_after: float = 0.0

    @property
    def amount(self) -> float:
        return sum(f["amount"] for f in self.fills)

    @property
    def shares(self) -> float:
        return sum(f["shares"] for f in self.fills)

    @property
    def is_filled(self) -> bool:
        return self.order_amount - self.amount < 1e-9

    @property
    def open(self) -> bool:
        return self.limit_prob is not None and not self.is_filled and not self.is_cancelled

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "userId": self.user_id, "contractId": self.contract_id, "outcome": self.outcome,
            "amount": self.amount, "shares": self.shares, "orderAmount": self.order_amount,
            "probBefore": self.prob_before, "probAfter": self.prob_after, "createdTime": self.created,
            "fills": list(self.fills), "isFilled": self.is_filled, "isCancelled": self.is_cancelled,
            "loanAmount": 0, "fees": {"creatorFee": 0, "platformFee": 0, "liquidityFee": 0},
            "isRedemption": False, "visibility": "public", "isApi": True,
        }
        if self.limit_prob is not None:
            out["limitProb"] = self.limit_prob
        if self.expires_at is not None:
            out["expiresAt"] = self.expires_at
        return out


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"message": message, **extra}, status_code=status)


class ManifoldFake:
    def __init__(self, *, api_key: str = API_KEY, balance: float = 1000.0) -> None:
        self.users: dict[str, dict[str, Any]] = {
            api_key: {"id": USER_ID, "username": "tradewire", "name": "Tradewire", "balance": balance}}
        self.markets: dict[str, FakeMarket] = {}
        self.bets: list[FakeBet] = []
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, Any]] = []
        self.bad_auth = 0
        self._ids = itertools.count(1)
        self._hold = asyncio.Event()
        self.server = ThreadedApp(self._build_app())

    @property
    def url(self) -> str:
        return self.server.url

    # --- control ---------------------------------------------------------------------------------

    def fault(self, method: str, path: str, kind: str, **kw: Any) -> None:
        self.faults.append(Fault(method.upper(), path, kind, **kw))

    def add_market(self, market_id: str, question: str, *, prob: float = 0.5, liquidity: float = 100.0,
                   volume: float = 0.0, close_time: int = 4_102_444_800_000, created: int | None = None) -> FakeMarket:
        """A binary cpmm-1 market (p = 0.5) whose pool gives ``prob``: NO / (YES + NO) = prob, YES * NO = L²."""
        yes = liquidity * math.sqrt((1 - prob) / prob)
        market = FakeMarket(market_id, question, question.lower().replace(" ", "-").strip("?"), yes=yes,
                            no=liquidity * liquidity / yes, volume=volume, close_time=close_time, liquidity=liquidity)
        if created is not None:
            market.created = created
        self.markets[market_id] = market
        return market

    def bets_posted(self) -> list[dict[str, Any]]:
        return [body for method, path, body in self.requests if method == "POST" and path == "/v0/bet"]

    def bets_of(self, user_id: str = USER_ID) -> list[FakeBet]:
        return [b for b in self.bets if b.user_id == user_id]

    def place(self, user_id: str, contract_id: str, outcome: str, amount: float, limit_prob: float | None = None,
              expires_at: int | None = None) -> FakeBet:
        """A bet as Manifold places it (also for other users, whose bets fill ours)."""
        market = self.markets[contract_id]
        now = int(time.time() * 1000)
        bet = FakeBet(f"bet{next(self._ids):06d}", user_id, contract_id, outcome, amount, limit_prob,
                      market.prob, now, expires_at)
        self._match(market, bet, now)
        bet.prob_after = market.prob
        self.bets.append(bet)
        for user in self.users.values():
            if user["id"] == user_id:
                user["balance"] -= bet.amount
        return bet

    def resolve(self, contract_id: str, outcome: str, probability: float | None = None) -> None:
        market = self.markets[contract_id]
        market.resolution, market.resolution_time = outcome, int(time.time() * 1000)
        market.resolution_probability = probability if outcome == "MKT" else None
        for bet in self.bets:
            if bet.contract_id == contract_id and bet.open:
                bet.is_cancelled = True

    # --- pricing ---------------------------------------------------------------------------------

    def _match(self, market: FakeMarket, bet: FakeBet, now: int) -> None:
        left = bet.order_amount
        yes = bet.outcome == "YES"
        # resting limit orders of the other side that cross, best first, at their own price
        makers = sorted((b for b in self.bets if b.open and b.contract_id == market.id and b.outcome != bet.outcome
                         and (bet.limit_prob is None or (b.limit_prob <= bet.limit_prob if yes  # type: ignore[operator]
                                                         else b.limit_prob >= bet.limit_prob))),  # type: ignore[operator]
                        key=lambda b: (b.limit_prob if yes else -b.limit_prob, b.created))  # type: ignore[operator]
        for maker in makers:
            if left <= 1e-9:
                break
            price = maker.limit_prob if yes else 1 - maker.limit_prob  # type: ignore[operator]
            maker_left_shares = (maker.order_amount - maker.amount) / (1 - price)
            shares = min(left / price, maker_left_shares)
            bet.fills.append({"amount": shares * price, "shares": shares, "matchedBetId": maker.id, "timestamp": now})
            maker.fills.append({"amount": shares * (1 - price), "shares": shares, "matchedBetId": bet.id,
                                "timestamp": now})
            left -= shares * price
            market.volume += shares
        if left <= 1e-9 or market.resolution is not None:
            return
        # then the pool (cpmm-1, p = 0.5), up to the limit
        k = market.yes * market.no
        spend = left
        if bet.limit_prob is not None:
            lp = bet.limit_prob
            if (yes and market.prob >= lp) or (not yes and market.prob <= lp):
                return
            to_limit = (math.sqrt(lp * k / (1 - lp)) - market.no if yes
                        else math.sqrt(k * (1 - lp) / lp) - market.yes)
            spend = min(left, max(0.0, to_limit))
        if spend <= 1e-9:
            return
        if yes:
            no = market.no + spend
            yes_pool = k / no
            shares = market.yes + spend - yes_pool
            market.yes, market.no = yes_pool, no
        else:
            yes_pool = market.yes + spend
            no = k / yes_pool
            shares = market.no + spend - no
            market.yes, market.no = yes_pool, no
        bet.fills.append({"amount": spend, "shares": shares, "matchedBetId": None, "timestamp": now})
        market.volume += spend

    # --- HTTP ------------------------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def gate(request: Request, call_next: Any) -> Response:
            raw = await request.body()
            self.requests.append((request.method, request.url.path, _json(raw) if raw else dict(request.query_params)))
            needs_key = request.method == "POST" or request.url.path == "/v0/me"
            if needs_key:
                header = request.headers.get("Authorization", "")
                if not header.startswith("Key ") or header[4:] not in self.users:
                    self.bad_auth += 1
                    return _error(401, "Error: could not find user with api key." if header
                                  else "Error: unauthorized, no Authorization header.")
                request.state.user = self.users[header[4:]]
            for fault in list(self.faults):
                if fault.method == request.method and request.url.path.startswith(fault.path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    if fault.kind == "429":
                        return JSONResponse({"message": "Too many requests"}, status_code=429,
                                            headers={"Retry-After": fault.retry_after})
                    if fault.kind == "5xx":
                        return _error(fault.status, "Internal server error")
                    if fault.kind == "latency":
                        await asyncio.sleep(fault.delay_s)
                    if fault.kind == "timeout":
                        await call_next(request)
                        await self._hold.wait()
                    if fault.kind == "lost":  # carried out, then the answer is lost behind a gateway
                        await call_next(request)
                        return _error(502, "Bad gateway")
            response: Response = await call_next(request)
            return response

        @app.get("/v0/markets")
        async def markets(limit: int = 500, before: str | None = None) -> Response:
            rows = sorted(self.markets.values(), key=lambda m: m.created, reverse=True)
            if before is not None:
                ids = [m.id for m in rows]
                rows = rows[ids.index(before) + 1:] if before in ids else []
            return JSONResponse([m.to_json() for m in rows[:limit]])

        @app.get("/v0/search-markets")
        async def search(term: str = "", filter: str = "all", sort: str = "score", limit: int = 100,
                         contractType: str = "ALL") -> Response:
            if filter not in ("all", "open", "closed", "resolved", "closing-this-month", "closing-next-month"):
                return _error(400, "Error validating request.", details=[{"field": "filter"}])
            now = int(time.time() * 1000)
            rows = [m for m in self.markets.values() if all(w in m.question.lower() for w in term.lower().split())]
            if filter == "open":
                rows = [m for m in rows if m.resolution is None and m.close_time > now]
            elif filter == "closed":
                rows = [m for m in rows if m.resolution is None and m.close_time <= now]
            elif filter == "resolved":
                rows = [m for m in rows if m.resolution is not None]
            keys = {"newest": lambda m: -m.created, "liquidity": lambda m: -m.liquidity,
                    "24-hour-vol": lambda m: -m.volume, "close-date": lambda m: m.close_time}
            rows.sort(key=keys.get(sort, lambda m: -m.volume))
            return JSONResponse([m.to_json() for m in rows[:limit]])

        @app.get("/v0/market/{market_id}")
        async def market(market_id: str) -> Response:
            found = self.markets.get(market_id)
            return JSONResponse(found.to_json()) if found else _error(404, "Contract not found")

        @app.get("/v0/slug/{slug}")
        async def by_slug(slug: str) -> Response:
            found = [m for m in self.markets.values() if m.slug == slug]
            return JSONResponse(found[0].to_json()) if found else _error(404, "Contract not found")

        @app.get("/v0/me")
        async def me(request: Request) -> Response:
            user = request.state.user
            return JSONResponse({**user, "createdTime": 1_700_000_000_000, "totalDeposits": 1000})

        @app.get("/v0/bets")
        async def bets(contractId: str | None = None, userId: str | None = None, limit: int = 1000,
                       before: str | None = None, kinds: str | None = None) -> Response:
            if limit > 1000:
                return _error(400, "Error validating request.", details=[{"field": "limit"}])
            rows = [b for b in reversed(self.bets) if (contractId is None or b.contract_id == contractId)
                    and (userId is None or b.user_id == userId) and (kinds != "open-limit" or b.open)]
            if before is not None:
                ids = [b.id for b in rows]
                rows = rows[ids.index(before) + 1:] if before in ids else []
            return JSONResponse([b.to_json() for b in rows[:limit]])

        @app.post("/v0/bet")
        async def bet(request: Request) -> Response:
            body = _json(await request.body())
            user = request.state.user
            try:
                amount = float(body["amount"])
                outcome = str(body["outcome"])
                contract_id = str(body["contractId"])
                limit_prob = None if body.get("limitProb") is None else float(body["limitProb"])
                if amount <= 0 or outcome not in ("YES", "NO"):
                    raise ValueError
                if limit_prob is not None and not (0.01 <= limit_prob <= 0.99 and round(limit_prob, 2) == limit_prob):
                    raise ValueError
            except (KeyError, TypeError, ValueError):
                return _error(400, "Error validating request.", details=[{"field": "limitProb or amount"}])
            market = self.markets.get(contract_id)
            if market is None:
                return _error(404, "Contract not found.")
            if market.resolution is not None or market.close_time <= int(time.time() * 1000):
                return _error(403, "Trading is closed.")
            if amount > user["balance"]:
                return _error(403, "Insufficient balance.")
            placed = self.place(user["id"], contract_id, outcome, amount, limit_prob, body.get("expiresAt"))
            return JSONResponse({**placed.to_json(), "betId": placed.id})

        @app.post("/v0/bet/cancel/{bet_id}")
        async def cancel(bet_id: str, request: Request) -> Response:
            found = [b for b in self.bets if b.id == bet_id]
            if not found:
                return _error(404, "Bet not found.")
            (placed,) = found
            if placed.user_id != request.state.user["id"]:
                return _error(403, "Not your bet.")
            if placed.is_cancelled:
                return _error(400, "Bet already cancelled.")
            if placed.is_filled:
                return _error(400, "Bet already filled.")
            placed.is_cancelled = True
            return JSONResponse(placed.to_json())

        @app.post("/v0/market/{market_id}/resolve")
        async def resolve(market_id: str, request: Request) -> Response:
            body = _json(await request.body())
            if market_id not in self.markets:
                return _error(404, "Contract not found.")
            outcome = body.get("outcome")
            if outcome not in ("YES", "NO", "MKT", "CANCEL"):
                return _error(400, "Error validating request.")
            prob = body.get("probabilityInt")
            self.resolve(market_id, outcome, None if prob is None else float(prob) / 100)
            return JSONResponse(self.markets[market_id].to_json())

        return app


def _json(raw: bytes) -> Any:
    import json

    try:
        return json.loads(raw)
    except ValueError:
        return {}


@contextmanager
def manifold_fake(**kw: Any) -> Iterator[ManifoldFake]:
    fake = ManifoldFake(**kw)
    fake.server.start()
    try:
        yield fake
    finally:
        fake.server.stop()
