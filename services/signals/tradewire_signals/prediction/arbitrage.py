"""``prediction_arbitrage``: buy YES on one venue and NO on another when the pair costs less than 1.

Config: ``pairs`` lists equivalent markets explicitly, ``"<YES instrument>|<NO instrument>"`` separated by
commas (e.g. ``"KXFED-25DEC-T4.00-YES.KALSHI|7191...POLYMARKET"``: YES on Kalshi, the same event's NO token
on Polymarket). Both instruments must be listed in the strategy's ``instruments`` (or be the binary
complement, in ``risk.instruments``, of one that is: a single-book venue's NO is priced from its YES bids).

On every book change of a leg: each leg's payable price for ``contracts`` at its book's depth and its
venue's taker fee per contract; ``pair_cost = yes + no + fee_yes + fee_no``. A pair pays exactly 1 whichever
way the event resolves, so ``1 - pair_cost`` is the profit per pair; above ``min_profit`` (strictly) the
strategy emits two BUY signals sharing one correlation id, each a LIMIT at its leg's worst needed level
(neither leg can fill at a price that would erase the profit). An opportunity the fees erase is refused
(``refused`` counts them). Sizing: each leg carries ``target = equity_fraction * leg_price / (yes + no)``
(leg prices: each payable price rounded up to its instrument's ``price_tick``, as risk wants them),
so risk buys ``equity_fraction * equity / (yes + no)`` contracts of *each* leg (the same quantity, up to the
quantity step) whatever its sizing mode. The pair is then held (targets are positions: a repeated signal
finds the position at its target) until ``cooldown_s`` passes.

Set ``contracts`` at least to the quantity risk will buy (``equity_fraction * equity / (yes + no)``): the
prices, the limits and the profit are computed for ``contracts`` at depth; a larger order finds no more at
its limit than the book had (an IOC fills part of it, maybe a different part on each venue).

**Leg risk, honestly.** The two orders are independent: one can fill and the other not, or less (the book
moved, the venue rejected it, risk clipped one leg to a position limit or denied it, or equity moved between
the two decisions: each leg is sized by risk from the equity it sees, so a snapshot arriving between them,
e.g. after the first leg's fill and fee, can leave the second a contract short). The strategy does not see
fills, so it cannot hedge or unwind a lone leg by itself. What limits the damage: both legs are limits at the
computed prices (IOC by default), so neither pays more than the opportunity allowed and an unfilled leg does
not rest at a stale price; both carry the same correlation id (the signals, risk's orders and the venues'
fills on the bus, and the messages in the ledger's journal; ``/v1/fills`` and ``/v1/orders`` do not show
it, so pairing fills by it means reading the journal), so an unpaired leg is a correlation id with one
filled instrument. A lone leg is an ordinary directional position in a binary contract until it resolves
or someone closes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated

from msgspec import Meta

from tradewire_common.config import InstrumentSpec
from tradewire_common.ids import derive_id
from tradewire_common.prediction import pair_cost
from tradewire_common.schemas import Bar, MarketResolved, OrderType, Side, TimeInForce
from tradewire_signals.prediction.book import LocalBook
from tradewire_signals.prediction.edge import Fill, PredictionParams, asks_of, fee_schedule, on_grid, take
from tradewire_signals.strategy import Intent, Strategy, register

ONE = Decimal(1)


class PredictionArbitrageParams(PredictionParams, frozen=True):
    #: ``"<YES instrument>|<NO instrument>"`` per equivalent market pair, comma-separated.
    pairs: str = ""
    #: Profit per pair after both fees needed to trade (strictly above).
    min_profit: Decimal = Decimal(0)
    #: Fraction of equity spent on one opportunity (both legs together).
    equity_fraction: Decimal = Decimal("0.1")
    #: Seconds (event time) before the same pair may trade again.
    cooldown_s: Annotated[float, Meta(ge=0)] = 60.0

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_pairs(self.pairs)


@dataclass(frozen=True, slots=True)
class Pair:
    yes: str
    no: str


def parse_pairs(text: str) -> tuple[Pair, ...]:
    pairs = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        legs = [leg.strip() for leg in item.split("|")]
        if len(legs) != 2 or not all(legs) or legs[0] == legs[1]:
            raise ValueError(f"pairs: {item!r} is not '<YES instrument>|<NO instrument>'")
        pairs.append(Pair(legs[0], legs[1]))
    if not pairs:
        raise ValueError("pairs: at least one '<YES instrument>|<NO instrument>' pair is required")
    return tuple(pairs)


@dataclass(frozen=True, slots=True)
class Opportunity:
    pair: Pair
    yes: Fill
    no: Fill
    cost: Decimal


@register("prediction_arbitrage")
class PredictionArbitrage(Strategy[PredictionArbitrageParams]):
    params_type = PredictionArbitrageParams
    market_data = frozenset({"quotes", "books", "resolutions"})

    def __init__(self, strategy_id: str, instruments: tuple[str, ...], params: PredictionArbitrageParams) -> None:
        super().__init__(strategy_id, instruments, params)
        self.pairs = parse_pairs(params.pairs)
        self.complements: dict[str, str] = {}
        self.markets: dict[str, str] = {}
        self.ticks: dict[str, Decimal] = {}
        self.resolved: set[str] = set()
        self.last_trade: dict[Pair, int] = {}
        self.refused = 0
        legs = {leg for pair in self.pairs for leg in (pair.yes, pair.no)}
        self.instruments = tuple(dict.fromkeys((*instruments, *sorted(legs))))

    def bind(self, specs: Mapping[str, InstrumentSpec]) -> None:
        extra: list[str] = []
        for iid in self.instruments:
            spec = specs.get(iid)
            if spec is not None and spec.complement:
                self.complements[iid] = spec.complement
                self.complements.setdefault(spec.complement, iid)
                extra.append(spec.complement)
            if spec is not None and spec.market_id:
                self.markets[iid] = spec.market_id
            if spec is not None:
                self.ticks[iid] = spec.price_tick
        self.instruments = tuple(dict.fromkeys((*self.instruments, *extra)))

    def on_bar(self, bar: Bar) -> Intent | None:
        return None  # bars have no depth: arbitrage needs books

    def on_resolution(self, resolved: MarketResolved) -> Sequence[Intent]:
        touched = {p.instrument_id for p in resolved.payouts}
        touched |= {iid for iid, market in self.markets.items() if market == resolved.market_id}
        for iid in tuple(touched):
            if iid in self.complements:
                touched.add(self.complements[iid])
        self.resolved |= touched
        return ()

    def price(self, pair: Pair, books: Mapping[str, LocalBook]) -> Opportunity | None:
        """Both legs at depth with their fees, or None when a book is missing or too thin."""
        p = self.params
        yes = take(asks_of(pair.yes, self.complements.get(pair.yes), books), p.contracts,
                   fee_schedule(pair.yes, p.polymarket_fee_bps))
        no = take(asks_of(pair.no, self.complements.get(pair.no), books), p.contracts,
                  fee_schedule(pair.no, p.polymarket_fee_bps))
        if yes is None or no is None:
            return None
        return Opportunity(pair, yes, no, pair_cost(yes.average, no.average, yes.fee_per_contract, no.fee_per_contract))

    def on_book(self, instrument_id: str, books: Mapping[str, LocalBook]) -> Sequence[Intent]:
        p = self.params
        book = books.get(instrument_id)
        ts = book.ts_event if book is not None else 0
        related = {instrument_id, self.complements.get(instrument_id, instrument_id)}
        intents: list[Intent] = []
        for pair in self.pairs:
            if not related & {pair.yes, pair.no, self.complements.get(pair.yes), self.complements.get(pair.no)}:
                continue
            if pair.yes in self.resolved or pair.no in self.resolved:
                continue
            last = self.last_trade.get(pair)
            if last is not None and ts - last < p.cooldown_s * 1e9:
                continue
            found = self.price(pair, books)
            if found is None:
                continue
            if ONE - found.cost <= p.min_profit:
                self.refused += 1
                continue
            self.last_trade[pair] = ts
            intents.extend(self.legs(found, ts))
        return intents

    def legs(self, found: Opportunity, ts: int) -> list[Intent]:
        p = self.params
        correlation = derive_id("arbitrage", self.strategy_id, found.pair.yes, found.pair.no, ts)
        # the signals' prices on each tick grid (rounded up): risk sizes target * equity / price, so the
        # targets use the very same prices for the quantities to be equal
        prices = {iid: on_grid(fill.average, self.ticks.get(iid), up=True)
                  for iid, fill in ((found.pair.yes, found.yes), (found.pair.no, found.no))}
        both = sum(prices.values(), Decimal(0))
        reason = (f"pair cost {found.cost} = YES {found.yes.average} + NO {found.no.average} + fees "
                  f"{found.yes.fee_per_contract} + {found.no.fee_per_contract} < 1 - {p.min_profit}")
        out = []
        for iid, fill in ((found.pair.yes, found.yes), (found.pair.no, found.no)):
            out.append(Intent(Side.BUY, 1.0, reason, target=p.equity_fraction * prices[iid] / both,
                              order_type=OrderType.LIMIT, limit_price=fill.worst,
                              time_in_force=TimeInForce(p.time_in_force), instrument_id=iid, price=prices[iid],
                              correlation_id=correlation))
        return out
