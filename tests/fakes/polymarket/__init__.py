"""A fake Polymarket on 127.0.0.1 that the unmodified ``py-clob-client-v2`` and plain httpx/websockets talk to.

* :mod:`.crypto`: the L1 (EIP-712 ``ClobAuth``), L2 (HMAC) and order-signature (EIP-712 ``Order``, signer
  recovered with eth-account) checks, independent of the client;
* :mod:`.engine`: markets, resting orders, partial fills, YES/NO cross-matching, trades MATCHED -> CONFIRMED or
  FAILED on command;
* :mod:`.server`: Gamma, CLOB, data-API and market-websocket routes, Polymarket's ``{"error": ...}`` answers,
  fault injection.

The test drives the market through :class:`PolymarketFake` (``rest``, ``take``, ``confirm``, ``fail``,
``resolve``, ``fault``, ``drop_ws``, ``skip_ws``); each call runs on the server's own loop.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from tests.fakes.polymarket.engine import Engine, Market, Order, Trade
from tests.fakes.polymarket.server import Fault, Server

#: A throwaway wallet for tests (never funded anywhere).
WALLET_KEY = "0x" + "4c" * 32
OTHER_KEY = "0x" + "7d" * 32

__all__ = ["OTHER_KEY", "WALLET_KEY", "Market", "Order", "PolymarketFake", "Trade", "polymarket_fake"]


class PolymarketFake:
    def __init__(self, chain_id: int = 137) -> None:
        self.offset_s = 0.0
        self.engine = Engine(clock=lambda: time.time() + self.offset_s)
        self.server = Server(self.engine, chain_id)

    def advance(self, seconds: float) -> None:
        """Move the venue's clock (GTD expiry) forward."""
        self.offset_s += seconds

    def now_ns(self) -> int:
        return int((time.time() + self.offset_s) * 1e9)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}/ws/market"

    # --- set-up -------------------------------------------------------------------------------------------

    def add_market(self, condition_id: str, yes: str, no: str, question: str, **kw: Any) -> Market:
        return self.server.on_loop(lambda: self.engine.add_market(Market(condition_id, question, yes, no, **kw)))

    def rest(self, token: str, side: str, price: str, size: str) -> Order:
        """Another trader's resting order (a book level)."""
        return self.server.on_loop(lambda: self.engine.rest(token, side, price, size))  # type: ignore[no-any-return]

    def take(self, token: str, side: str, price: str, size: str, order_type: str = "FAK") -> Order:
        """Another trader's order, matched against the book (fills resting orders)."""
        def run() -> Order:
            market = self.engine.market_of(token)
            order = Order(id="0x" + uuid.uuid4().hex * 2, owner="taker", maker_address="0x" + "cd" * 20,
                          market=market, asset_id=token, side=side, price=Decimal(price),
                          original_size=Decimal(size), order_type=order_type)
            self.engine.place(order, post_only=False)
            return order
        return self.server.on_loop(run)  # type: ignore[no-any-return]

    def history(self, token: str, points: list[tuple[int, str]]) -> None:
        def run() -> None:
            market = self.engine.market_of(token)
            market.history.setdefault(token, []).extend((t, Decimal(p)) for t, p in points)
        self.server.on_loop(run)

    def change_tick(self, condition_id: str, tick: str) -> None:
        """A new minimum tick (Polymarket narrows it near 0 and 1), announced on the market channel."""
        def run() -> None:
            market = self.engine.markets[condition_id]
            old, market.tick_size = market.tick_size, Decimal(tick)
            for token in (market.yes, market.no):
                self.server.broadcast(token, {
                    "event_type": "tick_size_change", "asset_id": token, "market": condition_id,
                    "old_tick_size": str(old), "new_tick_size": tick,
                    "timestamp": str(int(self.engine.clock() * 1000))})
        self.server.on_loop(run)

    # --- trades and resolution -----------------------------------------------------------------------------

    def set_auto_confirm(self, on: bool) -> None:
        self.engine.auto_confirm = on

    def confirm(self, trade_id: str) -> Trade:
        return self.server.on_loop(lambda: self.engine.settle(trade_id, "CONFIRMED"))  # type: ignore[no-any-return]

    def fail(self, trade_id: str) -> Trade:
        return self.server.on_loop(lambda: self.engine.settle(trade_id, "FAILED"))  # type: ignore[no-any-return]

    def resolve(self, condition_id: str, yes_payout: str = "1") -> Market:
        def run() -> Market:
            market = self.engine.resolve(condition_id, Decimal(yes_payout))
            self.server.push_resolved(market)
            return market
        return self.server.on_loop(run)  # type: ignore[no-any-return]

    # --- what happened ----------------------------------------------------------------------------------

    def orders_of(self, api_key: str) -> list[Order]:
        return [o for o in list(self.engine.orders.values()) if o.owner == api_key]

    def trades(self) -> list[Trade]:
        return list(self.engine.trades.values())

    @property
    def posted(self) -> list[dict[str, Any]]:
        return self.server.posted

    @property
    def refused(self) -> list[str]:
        return self.server.refused

    # --- faults -------------------------------------------------------------------------------------------

    def fault(self, method: str, path: str, kind: str, **kw: Any) -> None:
        self.server.faults.append(Fault(method.upper(), path, kind, **kw))

    def drop_ws(self) -> None:
        """Close every market-channel websocket (a gap)."""
        assert self.server.loop is not None
        import asyncio
        asyncio.run_coroutine_threadsafe(self.server.drop_ws(), self.server.loop).result(timeout=10)

    def skip_ws(self, n: int) -> None:
        """Lose the next ``n`` market-channel messages (a silent gap)."""
        self.server.ws_skip = n

    def ws_clients(self) -> int:
        return len(self.server.ws_clients)


@contextmanager
def polymarket_fake(chain_id: int = 137) -> Iterator[PolymarketFake]:
    fake = PolymarketFake(chain_id)
    fake.server.start()
    try:
        yield fake
    finally:
        fake.server.stop()
