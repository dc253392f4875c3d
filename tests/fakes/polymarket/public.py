"""The fake Polymarket's public market data: CLOB books, prices, history and market views, Gamma's markets,
events and search (with its filters), and the data API's public trades (a mixin of :class:`.server.Server`)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from aiohttp import web

from tests.fakes.polymarket.engine import ONE, Engine, Market, num


def error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


class PublicRoutes:
    """Handlers over ``self.engine`` that need no authentication."""

    engine: Engine

    def _token(self, request: web.Request) -> Market:
        try:
            return self.engine.market_of(request.query.get("token_id", ""))
        except KeyError:
            raise web.HTTPNotFound(text=json.dumps({"error": "market not found"}),
                                   content_type="application/json") from None

    def _book(self, token: str) -> dict[str, Any]:
        try:
            market = self.engine.market_of(token)
        except KeyError:
            raise web.HTTPNotFound(text=json.dumps({"error": "No orderbook exists for the requested token id"}),
                                   content_type="application/json") from None
        bids = self.engine.levels(token, "BUY")
        asks = self.engine.levels(token, "SELL")
        return {  # as Polymarket sends them: bids ascending, asks descending (best last)
            "market": market.condition_id, "asset_id": token, "timestamp": str(int(self.engine.clock() * 1000)),
            "hash": format(abs(hash((tuple(bids), tuple(asks)))), "x")[:40],
            "bids": [{"price": num(p), "size": num(s)} for p, s in reversed(bids)],
            "asks": [{"price": num(p), "size": num(s)} for p, s in reversed(asks)],
            "min_order_size": num(market.min_size), "tick_size": num(market.tick_size), "neg_risk": market.neg_risk,
        }

    async def _books(self, request: web.Request) -> web.Response:
        return web.json_response([self._book(p["token_id"]) for p in await request.json()])

    async def _price(self, request: web.Request) -> web.Response:
        side = request.query.get("side", "BUY").upper()
        levels = self.engine.levels(request.query.get("token_id", ""), "BUY" if side == "BUY" else "SELL")
        if not levels:
            return error(404, "No orderbook exists for the requested token id")
        return web.json_response({"price": num(levels[0][0])})

    async def _midpoint(self, request: web.Request) -> web.Response:
        token = request.query.get("token_id", "")
        bids, asks = self.engine.levels(token, "BUY"), self.engine.levels(token, "SELL")
        if not bids or not asks:
            return error(404, "No orderbook exists for the requested token id")
        return web.json_response({"mid": num((bids[0][0] + asks[0][0]) / 2)})

    async def _history(self, request: web.Request) -> web.Response:
        token = request.query.get("market", "")
        try:
            market = self.engine.market_of(token)
        except KeyError:
            return web.json_response({"history": []})
        start = int(request.query.get("startTs", 0))
        end = int(request.query.get("endTs", 2**40))
        points = [p for p in market.history.get(token, []) if start <= p[0] <= end]
        return web.json_response({"history": [{"t": t, "p": float(p)} for t, p in points]})

    # --- Gamma -----------------------------------------------------------------------------------------

    def gamma_market(self, m: Market) -> dict[str, Any]:
        best = self.engine.levels(m.yes, "BUY")
        prices = m.payouts or ((best[0][0], ONE - best[0][0]) if best else (Decimal("0.5"), Decimal("0.5")))
        return {
            "id": m.condition_id[-6:], "question": m.question, "conditionId": m.condition_id, "slug": m.slug,
            "endDate": m.end_date, "liquidity": num(m.liquidity), "volume": num(m.volume),
            "liquidityNum": float(m.liquidity), "volumeNum": float(m.volume), "active": m.active, "closed": m.closed,
            "outcomes": '["Yes", "No"]', "outcomePrices": json.dumps([num(p) for p in prices]),
            "clobTokenIds": json.dumps([m.yes, m.no]), "orderPriceMinTickSize": float(m.tick_size),
            "orderMinSize": float(m.min_size), "negRisk": m.neg_risk, "enableOrderBook": True,
            "acceptingOrders": not m.closed, "umaResolutionStatus": "resolved" if m.payouts else "",
            "events": [{"id": m.event_id}] if m.event_id else [],
        }

    def _filtered(self, q: Any) -> list[Market]:
        out = list(self.engine.markets.values())
        if "condition_ids" in q:
            wanted = set(q.getall("condition_ids"))
            out = [m for m in out if m.condition_id in wanted]
        if "slug" in q:
            out = [m for m in out if m.slug == q["slug"]]
        for name, attr in (("active", "active"), ("closed", "closed")):
            if name in q:
                flag = q[name].lower() == "true"
                out = [m for m in out if getattr(m, attr) == flag]
        for name, attr, low in (("volume_num_min", "volume", True), ("volume_num_max", "volume", False),
                                ("liquidity_num_min", "liquidity", True), ("liquidity_num_max", "liquidity", False)):
            if name in q:
                bound = Decimal(q[name])
                out = [m for m in out if (getattr(m, attr) >= bound if low else getattr(m, attr) <= bound)]
        if "end_date_min" in q:
            out = [m for m in out if m.end_date >= q["end_date_min"]]
        if "end_date_max" in q:
            out = [m for m in out if m.end_date <= q["end_date_max"]]
        if q.get("order") in ("volume", "volumeNum", "liquidity", "liquidityNum"):
            attr = "volume" if q["order"].startswith("volume") else "liquidity"
            out.sort(key=lambda m: getattr(m, attr), reverse=q.get("ascending", "false") != "true")
        offset = int(q.get("offset", 0))
        return out[offset:offset + int(q.get("limit", 100))]

    async def _gamma_markets(self, request: web.Request) -> web.Response:
        if request.query.get("next_cursor"):  # the CLOB's /markets (paged)
            data = [self.clob_market(m) for m in self.engine.markets.values()]
            return web.json_response({"data": data, "next_cursor": "LTE=", "limit": 500, "count": len(data)})
        return web.json_response([self.gamma_market(m) for m in self._filtered(request.query)])

    def clob_market(self, m: Market) -> dict[str, Any]:
        win = m.payouts
        return {
            "condition_id": m.condition_id, "question": m.question, "market_slug": m.slug, "active": m.active,
            "closed": m.closed, "accepting_orders": not m.closed, "end_date_iso": m.end_date,
            "minimum_order_size": float(m.min_size), "minimum_tick_size": float(m.tick_size), "neg_risk": m.neg_risk,
            "tokens": [{"token_id": t, "outcome": o, "price": float(win[i]) if win else 0.5,
                        "winner": bool(win and win[i] == 1)}
                       for i, (t, o) in enumerate(((m.yes, "Yes"), (m.no, "No")))],
        }

    async def _market_by_id(self, request: web.Request) -> web.Response:
        wanted = request.match_info["id"]
        for m in self.engine.markets.values():
            if m.condition_id == wanted:
                return web.json_response(self.clob_market(m))
            if m.condition_id[-6:] == wanted:
                return web.json_response(self.gamma_market(m))
        return error(404, "market not found")

    def _events(self, markets: list[Market]) -> list[dict[str, Any]]:
        by_event: dict[str, list[Market]] = {}
        for m in markets:
            by_event.setdefault(m.event_id or m.condition_id[-6:], []).append(m)
        return [{"id": eid, "title": ms[0].question, "slug": ms[0].slug, "active": ms[0].active,
                 "closed": ms[0].closed, "endDate": ms[0].end_date, "volume": float(sum(m.volume for m in ms)),
                 "liquidity": float(sum(m.liquidity for m in ms)), "markets": [self.gamma_market(m) for m in ms]}
                for eid, ms in by_event.items()]

    async def _gamma_events(self, request: web.Request) -> web.Response:
        return web.json_response(self._events(self._filtered(request.query)))

    async def _search(self, request: web.Request) -> web.Response:
        words = request.query.get("q", "").lower().split()
        hits = [m for m in self.engine.markets.values() if all(w in m.question.lower() for w in words)]
        if request.query.get("events_status") == "active":
            hits = [m for m in hits if not m.closed]
        events = self._events(hits)[: int(request.query.get("limit_per_type", 10))]
        return web.json_response({"events": events, "pagination": {"hasMore": False, "totalResults": len(events)}})

    async def _public_trades(self, request: web.Request) -> web.Response:
        cid = request.query.get("market", "")
        out = []
        for t in reversed(list(self.engine.trades.values())):
            if t.taker.market.condition_id == cid and t.status != "FAILED":
                out.append({"proxyWallet": t.taker.maker_address, "side": t.taker.side, "asset": t.taker.asset_id,
                            "conditionId": cid, "size": float(t.size), "price": float(t.price),
                            "timestamp": t.match_time, "title": t.taker.market.question,
                            "outcome": t.taker.market.outcome(t.taker.asset_id), "transactionHash": t.transaction_hash})
        return web.json_response(out[: int(request.query.get("limit", 100))])
