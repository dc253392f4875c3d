"""The fake Polymarket's markets and matching engine (no HTTP here).

Every binary market has a YES and a NO token. An incoming order matches, best price first then time:

* the same token's opposite side (a BUY at ``p`` takes a SELL at ``<= p``; a SELL at ``p`` a BUY at ``>= p``);
* the complement token's same side (Polymarket mints/merges): a BUY YES at ``p`` matches a BUY NO at
  ``q >= 1 - p`` and a SELL YES at ``p`` a SELL NO at ``q <= 1 - p``. Each order gets a fill on *its own*
  token with *its own* side: the maker at its price ``q``, the taker at ``1 - q``.

A trade is born ``MATCHED`` and becomes ``CONFIRMED`` or ``FAILED`` on command (or ``CONFIRMED`` at once with
``auto_confirm``); a failed trade gives the matched size back to both orders (a fully matched resting order
rests again). Prices and sizes are ``Decimal``; amounts on the wire are 6-decimal integers.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

ONE = Decimal(1)
ZERO = Decimal(0)
UNIT = Decimal(1_000_000)


class Refused(Exception):
    """An order Polymarket refuses: ``400 {"error": message}``."""


def num(value: Decimal) -> str:
    return format(value.normalize(), "f")


@dataclass
class Market:
    condition_id: str
    question: str
    yes: str
    no: str
    slug: str = ""
    event_id: str = ""
    volume: Decimal = ZERO
    liquidity: Decimal = ZERO
    end_date: str = "2030-01-01T00:00:00Z"
    active: bool = True
    closed: bool = False
    tick_size: Decimal = Decimal("0.01")
    min_size: Decimal = Decimal(5)
    neg_risk: bool = False
    fee_rate_bps: int = 0
    #: outcome prices after resolution ("1"/"0", or "0.5"/"0.5")
    payouts: tuple[Decimal, Decimal] | None = None
    history: dict[str, list[tuple[int, Decimal]]] = field(default_factory=dict)

    def outcome(self, token: str) -> str:
        return "Yes" if token == self.yes else "No"

    def complement(self, token: str) -> str:
        return self.no if token == self.yes else self.yes


@dataclass
class Order:
    id: str
    owner: str
    maker_address: str
    market: Market
    asset_id: str
    side: str
    price: Decimal
    original_size: Decimal
    order_type: str
    expiration: int = 0
    size_matched: Decimal = ZERO
    status: str = "LIVE"
    created_at: int = field(default_factory=lambda: int(time.time()))
    seq: int = 0
    associate_trades: list[str] = field(default_factory=list)
    salt: int = 0

    @property
    def remaining(self) -> Decimal:
        return self.original_size - self.size_matched

    def resting(self, now_s: float) -> bool:
        if self.status == "LIVE" and self.expiration and now_s >= self.expiration:
            self.status = "CANCELED"  # GTD expiry
        return self.status == "LIVE" and self.remaining > 0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "status": self.status, "owner": self.owner, "maker_address": self.maker_address,
            "market": self.market.condition_id, "asset_id": self.asset_id, "side": self.side,
            "original_size": num(self.original_size), "size_matched": num(self.size_matched),
            "price": num(self.price), "outcome": self.market.outcome(self.asset_id),
            "expiration": str(self.expiration), "order_type": self.order_type, "created_at": self.created_at,
            "associate_trades": list(self.associate_trades)}


@dataclass
class MakerLeg:
    order: Order
    amount: Decimal
    price: Decimal


@dataclass
class Trade:
    id: str
    taker: Order
    size: Decimal
    price: Decimal
    makers: list[MakerLeg]
    status: str = "MATCHED"
    match_time: int = field(default_factory=lambda: int(time.time()))
    last_update: int = field(default_factory=lambda: int(time.time()))
    transaction_hash: str = field(default_factory=lambda: "0x" + uuid.uuid4().hex + uuid.uuid4().hex)

    def to_json(self) -> dict[str, Any]:
        t = self.taker
        return {
            "id": self.id, "taker_order_id": t.id, "market": t.market.condition_id, "asset_id": t.asset_id,
            "side": t.side, "size": num(self.size), "fee_rate_bps": str(t.market.fee_rate_bps),
            "price": num(self.price), "status": self.status, "match_time": str(self.match_time),
            "last_update": str(self.last_update), "outcome": t.market.outcome(t.asset_id), "bucket_index": 0,
            "owner": t.owner, "maker_address": t.maker_address, "transaction_hash": self.transaction_hash,
            "trader_side": "TAKER",
            "maker_orders": [{
                "order_id": leg.order.id, "owner": leg.order.owner, "maker_address": leg.order.maker_address,
                "matched_amount": num(leg.amount), "price": num(leg.price),
                "fee_rate_bps": str(leg.order.market.fee_rate_bps), "asset_id": leg.order.asset_id,
                "outcome": leg.order.market.outcome(leg.order.asset_id), "side": leg.order.side}
                for leg in self.makers],
        }


class Engine:
    """Markets, orders and trades; ``on_book``/``on_trade`` tell the websocket what changed."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.markets: dict[str, Market] = {}
        self.tokens: dict[str, Market] = {}
        self.orders: dict[str, Order] = {}
        self.trades: dict[str, Trade] = {}
        self.auto_confirm = True
        self._seq = itertools.count(1)
        self.on_book: list[Callable[[str, str, Decimal], None]] = []
        self.on_trade: list[Callable[[Trade], None]] = []

    # --- set-up -------------------------------------------------------------------------------------------

    def add_market(self, market: Market) -> Market:
        self.markets[market.condition_id] = market
        self.tokens[market.yes] = self.tokens[market.no] = market
        return market

    def market_of(self, token: str) -> Market:
        market = self.tokens.get(token)
        if market is None:
            raise KeyError(token)
        return market

    def rest(self, token: str, side: str, price: str, size: str, owner: str = "liquidity") -> Order:
        """Someone else's resting order (a liquidity level of the book), without matching."""
        market = self.market_of(token)
        order = Order(id="0x" + uuid.uuid4().hex * 2, owner=owner, maker_address="0x" + "ab" * 20, market=market,
                      asset_id=token, side=side, price=Decimal(price), original_size=Decimal(size),
                      order_type="GTC", seq=next(self._seq))
        self.orders[order.id] = order
        self._book_changed(token, side, order.price)
        return order

    # --- books --------------------------------------------------------------------------------------------

    def levels(self, token: str, side: str) -> list[tuple[Decimal, Decimal]]:
        """Aggregated resting size per price, best first."""
        out: dict[Decimal, Decimal] = {}
        now = self.clock()
        for o in self.orders.values():
            if o.asset_id == token and o.side == side and o.resting(now):
                out[o.price] = out.get(o.price, ZERO) + o.remaining
        return sorted(out.items(), key=lambda kv: -kv[0] if side == "BUY" else kv[0])

    def level_size(self, token: str, side: str, price: Decimal) -> Decimal:
        return dict(self.levels(token, side)).get(price, ZERO)

    def _book_changed(self, token: str, side: str, price: Decimal) -> None:
        for callback in self.on_book:
            callback(token, side, price)

    # --- orders -------------------------------------------------------------------------------------------

    def _candidates(self, order: Order) -> list[tuple[Decimal, Order]]:
        """Resting orders ``order`` can match, with the taker's price of each, best first."""
        token, other = order.asset_id, order.market.complement(order.asset_id)
        now = self.clock()
        out: list[tuple[Decimal, Order]] = []
        for o in self.orders.values():
            if o is order or not o.resting(now):
                continue
            if o.asset_id == token and o.side != order.side:
                taker_px = o.price
            elif o.asset_id == other and o.side == order.side:
                taker_px = ONE - o.price
            else:
                continue
            crosses = taker_px <= order.price if order.side == "BUY" else taker_px >= order.price
            if crosses:
                out.append((taker_px, o))
        out.sort(key=lambda c: (c[0] if order.side == "BUY" else -c[0], c[1].seq))
        return out

    def place(self, order: Order, post_only: bool) -> list[Trade]:
        """Match ``order`` and rest what is left (GTC/GTD); ``Refused`` for what Polymarket refuses."""
        if order.id in self.orders:
            raise Refused("order already exists")  # the same signed order twice
        market = order.market
        if market.closed or not market.active:
            raise Refused("market is closed and no longer accepting orders")
        if order.price % market.tick_size:
            raise Refused(f"order price {num(order.price)} breaks the minimum tick size rule: {market.tick_size}")
        if order.order_type in ("GTC", "GTD") and order.original_size < market.min_size:
            raise Refused(f"Size ({num(order.original_size)}) lower than the minimum: {num(market.min_size)}")
        if order.order_type == "GTD" and order.expiration < self.clock() + 60:
            raise Refused("invalid expiration value: GTD orders must expire at least 60 seconds from now")
        candidates = self._candidates(order)
        if post_only and candidates:
            raise Refused("invalid post-only order: order crosses book")
        available = sum((o.remaining for _px, o in candidates), ZERO)
        if order.order_type == "FOK" and available < order.original_size:
            raise Refused("order couldn't be fully filled. FOK orders are fully filled or killed.")
        if order.order_type == "FAK" and not candidates:
            raise Refused("no orders found to match with FAK order. FAK orders are partially filled or killed if "
                          "no match is found.")
        order.seq = next(self._seq)
        self.orders[order.id] = order
        legs: list[MakerLeg] = []
        for _taker_px, maker in candidates:
            take = min(order.remaining, maker.remaining)
            if take <= 0:
                break
            maker.size_matched += take
            order.size_matched += take
            if maker.remaining == 0:
                maker.status = "MATCHED"
            legs.append(MakerLeg(maker, take, maker.price))
            self._book_changed(maker.asset_id, maker.side, maker.price)
        trades: list[Trade] = []
        if legs:
            size = sum((leg.amount for leg in legs), ZERO)
            cost = sum((leg.amount * (leg.price if leg.order.asset_id == order.asset_id else ONE - leg.price)
                        for leg in legs), ZERO)
            trade = Trade(id=str(uuid.uuid4()), taker=order, size=size, price=cost / size, makers=legs)
            self.trades[trade.id] = trade
            order.associate_trades.append(trade.id)
            for leg in legs:
                leg.order.associate_trades.append(trade.id)
            for token, px in {(leg.order.asset_id, leg.price) for leg in legs}:
                market.history.setdefault(token, []).append((int(self.clock()), px))
            trades.append(trade)
            if self.auto_confirm:
                trade.status = "CONFIRMED"
        if order.remaining == 0:
            order.status = "MATCHED"
        elif order.order_type in ("FOK", "FAK"):
            order.status = "CANCELED"  # the unfilled rest of a FAK is killed
        else:
            self._book_changed(order.asset_id, order.side, order.price)
        for trade in trades:
            for callback in self.on_trade:
                callback(trade)
        return trades

    def cancel(self, order_id: str) -> str:
        """"" when cancelled, else Polymarket's reason."""
        order = self.orders.get(order_id)
        if order is None:
            return "order not found"
        if not order.resting(self.clock()):
            return "order can't be canceled because it is already canceled or matched"
        order.status = "CANCELED"
        self._book_changed(order.asset_id, order.side, order.price)
        return ""

    # --- trade settlement -----------------------------------------------------------------------------------

    def settle(self, trade_id: str, status: str) -> Trade:
        """``CONFIRMED`` or ``FAILED`` a ``MATCHED`` trade (failed: the matched sizes go back)."""
        trade = self.trades[trade_id]
        assert trade.status == "MATCHED", f"trade {trade_id} is {trade.status}"
        trade.status = status
        trade.last_update = int(self.clock())
        if status == "FAILED":
            for order, amount in [(trade.taker, trade.size), *((leg.order, leg.amount) for leg in trade.makers)]:
                order.size_matched -= amount
                if order.status == "MATCHED" and order.order_type in ("GTC", "GTD"):
                    order.status = "LIVE"
                self._book_changed(order.asset_id, order.side, order.price)
        for callback in self.on_trade:
            callback(trade)
        return trade

    def trades_of(self, owner: str) -> list[Trade]:
        return [t for t in self.trades.values()
                if t.taker.owner == owner or any(leg.order.owner == owner for leg in t.makers)]

    def resolve(self, condition_id: str, yes_payout: Decimal) -> Market:
        market = self.markets[condition_id]
        market.closed, market.active = True, False
        market.payouts = (yes_payout, ONE - yes_payout)
        for order in self.orders.values():
            if order.market is market and order.status == "LIVE":
                order.status = "CANCELED"
        return market
