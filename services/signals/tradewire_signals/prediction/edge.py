"""``prediction_edge``: buy an outcome when a probability model says it is worth more than its price after
the venue's fee, at the depth of the book.

For every outcome of the configured markets (each listed instrument is a market's YES outcome; its NO is
the binary ``InstrumentSpec.complement`` in ``risk.instruments``, and ``market_id`` ties both to the
market), on every change of its book or its complement's book:

* ``price`` = :func:`payable_price` of ``contracts`` against the outcome's asks: its own book, or in a
  single-book venue (Kalshi) the complement's bids seen as asks (:func:`no_asks_from_yes_bids`);
* ``fee`` = the venue's taker fee per contract at that price (``FeeSchedule.for_venue``, by the
  instrument's venue; Polymarket's rate from ``polymarket_fee_bps``);
* ``edge = model_p - price - fee`` (YES) or ``(1 - model_p) - no_price - fee`` (NO: the model's probability
  of the complement): above ``min_edge`` it emits a BUY signal of that outcome with ``win_probability`` =
  the model's probability of that outcome, ``price`` = the payable price rounded up to the instrument's
  ``price_tick`` (risk accepts only prices on the grid; rounded up, Kelly never sizes for a price better
  than the book's) (risk's ``binary_kelly`` sizing
  uses both: set ``risk.sizing = "binary_kelly"``, ``risk.kelly_fraction`` 0.5 by default) and a LIMIT
  order at the worst level the ``contracts`` needed, so it never pays more than the edge allowed
  (``time_in_force`` IOC by default: what is not there is not chased).
* Exit: while holding an outcome (after its BUY), when the price it can be sold at (its bids, or the
  complement's asks as ``1 - ask``) minus the fee exceeds the model's probability by more than
  ``exit_edge``, a SELL signal (LIMIT at the worst bid level needed) closes it.
* After a ``MarketResolved`` of the market nothing more is emitted for its outcomes (the ledger settles).

Bars (backtests over price history) carry no depth: the close is taken as the only level on both sides,
``contracts`` deep. The strategy cannot see fills: it counts an outcome as held once it sent the BUY
(``entry_cooldown_s`` > 0 allows another BUY after that many seconds while the edge lasts; risk's position
limits bound the total).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Annotated, Literal

from msgspec import Meta

from tradewire_common.config import InstrumentSpec
from tradewire_common.ids import split_instrument_id
from tradewire_common.prediction import FeeSchedule, edge_after_costs, no_asks_from_yes_bids, payable_price
from tradewire_common.schemas import Bar, MarketResolved, OrderType, Side, TimeInForce
from tradewire_signals.prediction.book import Levels, LocalBook
from tradewire_signals.prediction.models import ModelSettings, Outcome, ProbabilityModel, build_model
from tradewire_signals.strategy import Intent, Strategy, StrategyParams, register

ONE = Decimal(1)


class PredictionParams(StrategyParams, frozen=True):
    """What both prediction strategies share: the intended size priced at the book's depth, fees, order."""

    #: Contracts the price is computed for at the book's depth (risk sizes the order itself).
    contracts: Decimal = Decimal(10)
    #: Polymarket's fee rate in bps for its markets (most have 0; the CLOB's ``/fee-rate`` says).
    polymarket_fee_bps: Decimal = Decimal(0)
    time_in_force: Literal["GTC", "IOC", "FOK"] = "IOC"

    def __post_init__(self) -> None:
        check_fields(self)


#: Bounds of the Decimal params (msgspec cannot constrain Decimal): name -> (lowest, highest, strict low).
DECIMAL_BOUNDS = {"contracts": (Decimal(0), None, True), "polymarket_fee_bps": (Decimal(0), None, False),
                  "min_edge": (Decimal(0), Decimal(1), False), "exit_edge": (Decimal(0), Decimal(1), False),
                  "min_profit": (Decimal(0), Decimal(1), False), "equity_fraction": (Decimal(0), Decimal(1), True)}


def check_fields(params: StrategyParams) -> None:
    for name, (low, high, strict) in DECIMAL_BOUNDS.items():
        value = getattr(params, name, None)
        if value is None:
            continue
        if not value.is_finite() or value < low or (strict and value == low) or (high is not None and value > high):
            raise ValueError(f"{name} must be {'above' if strict else 'at least'} {low}"
                             f"{f' and at most {high}' if high is not None else ''}, got {value}")


class PredictionEdgeParams(PredictionParams, frozen=True):
    #: Probability model kind (``tradewire_signals.prediction.models``) and its settings.
    model: str = "static"
    model_source: str = ""
    model_refresh_s: Annotated[float, Meta(gt=0)] = 60.0
    model_halflife: Annotated[float, Meta(gt=0)] = 20.0
    model_min_observations: Annotated[int, Meta(ge=1)] = 10
    #: Edge per contract after price and fee needed to buy (strictly above).
    min_edge: Decimal = Decimal("0.02")
    #: Sell a held outcome when (sell price - fee) - model_p exceeds this.
    exit_edge: Decimal = Decimal("0.05")
    #: Estimates with a lower confidence are ignored.
    min_confidence: Annotated[float, Meta(ge=0, le=1)] = 0.0
    #: 0: one entry per outcome until it is exited; else another BUY after this many seconds.
    entry_cooldown_s: Annotated[float, Meta(ge=0)] = 0.0


@dataclass(frozen=True, slots=True)
class Fill:
    """What taking ``contracts`` from some levels costs: the average and the worst price, and the fee."""

    average: Decimal
    worst: Decimal
    fee_per_contract: Decimal


def take(levels: Levels, contracts: Decimal, fees: FeeSchedule) -> Fill | None:
    """``contracts`` against ``levels`` (best first): None when the book is too thin or a price is no
    probability."""
    levels = [(p, s) for p, s in levels if s > 0]
    average = payable_price(levels, contracts) if levels else None
    if average is None or not 0 < average < 1:
        return None
    left, worst = contracts, levels[0][0]
    for price, size in levels:
        worst = price
        left -= size
        if left <= 0:
            break
    return Fill(average, worst, fees.fee_per_contract(average, contracts))


def asks_of(iid: str, complement: str | None, books: Mapping[str, LocalBook]) -> Levels:
    """An outcome's asks: its own book's, else its complement's bids as asks (single-book venues)."""
    own = books.get(iid)
    if own is not None and own.asks:
        return own.ask_levels()
    other = books.get(complement) if complement else None
    return no_asks_from_yes_bids(other.bid_levels()) if other is not None else []


def bids_of(iid: str, complement: str | None, books: Mapping[str, LocalBook]) -> Levels:
    """An outcome's bids: its own book's, else ``1 - ask`` of its complement's asks."""
    own = books.get(iid)
    if own is not None and own.bids:
        return own.bid_levels()
    other = books.get(complement) if complement else None
    return [(ONE - p, s) for p, s in other.ask_levels()] if other is not None else []


def bar_book(bar: Bar, contracts: Decimal) -> LocalBook:
    """A bar as a book: its close is the only level on both sides, ``contracts`` deep."""
    return LocalBook(bar.instrument_id, {bar.close: contracts}, {bar.close: contracts}, 0, bar.ts_event, False, "bar")


def on_grid(price: Decimal, tick: Decimal | None, *, up: bool) -> Decimal:
    """``price`` on the instrument's tick grid, rounded against the trader (up for a buy, down for a sell)."""
    if tick is None:
        return price
    steps = (price / tick).quantize(Decimal(1), rounding=ROUND_CEILING if up else ROUND_FLOOR)
    return steps * tick


def fee_schedule(iid: str, polymarket_fee_bps: Decimal) -> FeeSchedule:
    _, venue = split_instrument_id(iid)
    return FeeSchedule.for_venue(venue, fee_rate_bps=polymarket_fee_bps)


def outcomes_of(instruments: Sequence[str], specs: Mapping[str, InstrumentSpec]) -> dict[str, Outcome]:
    """Each listed instrument as its market's YES outcome, plus its complement (when its spec names one)."""
    out: dict[str, Outcome] = {}
    for iid in instruments:
        spec = specs.get(iid)
        market = spec.market_id if spec is not None else ""
        complement = spec.complement if spec is not None else None
        out[iid] = Outcome(iid, market, complement, True)
        if complement and complement not in out:
            out[complement] = Outcome(complement, market, iid, False)
    return out


@register("prediction_edge")
class PredictionEdge(Strategy[PredictionEdgeParams]):
    params_type = PredictionEdgeParams
    market_data = frozenset({"quotes", "books", "resolutions"})

    def __init__(self, strategy_id: str, instruments: tuple[str, ...], params: PredictionEdgeParams) -> None:
        super().__init__(strategy_id, instruments, params)
        p = params
        self.model: ProbabilityModel = build_model(p.model, ModelSettings(
            p.model_source, p.model_refresh_s, p.model_halflife, p.model_min_observations))
        self.outcomes = outcomes_of(instruments, {})
        self.resolved: set[str] = set()  # market ids (or instrument ids without a market)
        self.entered: dict[str, int] = {}  # outcome -> event time of its last BUY
        self.bar_books: dict[str, LocalBook] = {}
        self.ticks: dict[str, Decimal] = {}

    def bind(self, specs: Mapping[str, InstrumentSpec]) -> None:
        self.outcomes = outcomes_of(self.instruments, specs)
        self.instruments = tuple(self.outcomes)
        self.ticks = {iid: specs[iid].price_tick for iid in self.instruments if iid in specs}

    def on_bar(self, bar: Bar) -> Intent | None:
        self.bar_books[bar.instrument_id] = bar_book(bar, self.params.contracts)
        intents = self.on_book(bar.instrument_id, self.bar_books)
        return intents[0] if intents else None

    def on_resolution(self, resolved: MarketResolved) -> Sequence[Intent]:
        for payout in resolved.payouts:
            outcome = self.outcomes.get(payout.instrument_id)
            if outcome is not None:
                self.resolved.add(outcome.market_id or outcome.instrument_id)
        if any(o.market_id == resolved.market_id for o in self.outcomes.values()):
            self.resolved.add(resolved.market_id)
        return ()

    def on_book(self, instrument_id: str, books: Mapping[str, LocalBook]) -> Sequence[Intent]:
        changed = self.outcomes.get(instrument_id)
        if changed is None:
            return ()
        book = books.get(instrument_id)
        mid = book.mid() if book is not None else None
        if mid is not None:
            self.model.observe(instrument_id, book.ts_event if book else 0, mid)
        ts = book.ts_event if book is not None else 0
        intents: list[Intent] = []
        for iid in (instrument_id, changed.complement):
            outcome = self.outcomes.get(iid) if iid else None
            if outcome is None or (outcome.market_id or outcome.instrument_id) in self.resolved:
                continue
            intent = self.evaluate(outcome, books, ts)
            if intent is not None:
                intents.append(intent)
        return intents

    def evaluate(self, outcome: Outcome, books: Mapping[str, LocalBook], ts: int) -> Intent | None:
        p = self.params
        estimate = self.model.estimate(outcome, ts)
        if estimate is None or estimate.confidence < p.min_confidence:
            return None
        iid, model_p = outcome.instrument_id, estimate.probability
        fees = fee_schedule(iid, p.polymarket_fee_bps)
        tif = TimeInForce(p.time_in_force)
        last = self.entered.get(iid)
        if last is not None:
            sell = take(bids_of(iid, outcome.complement, books), p.contracts, fees)
            if sell is not None and sell.average - sell.fee_per_contract - model_p > p.exit_edge:
                del self.entered[iid]
                return Intent(Side.SELL, estimate.confidence,
                              f"edge reversed: sells at {sell.average} (fee {sell.fee_per_contract}/contract) "
                              f"above model p {model_p} by more than {p.exit_edge}",
                              win_probability=float(model_p), order_type=OrderType.LIMIT, limit_price=sell.worst,
                              time_in_force=tif, instrument_id=iid,
                              price=on_grid(sell.average, self.ticks.get(iid), up=False))
            if p.entry_cooldown_s == 0 or ts - last < p.entry_cooldown_s * 1e9:
                return None
        buy = take(asks_of(iid, outcome.complement, books), p.contracts, fees)
        if buy is None:
            return None
        edge = edge_after_costs(model_p, buy.average, buy.fee_per_contract)
        if edge <= p.min_edge:
            return None
        self.entered[iid] = ts
        side = "YES" if outcome.is_yes else "NO"
        return Intent(Side.BUY, estimate.confidence,
                      f"{side} edge {edge}: model p {model_p} - price {buy.average} (for {p.contracts} at depth) "
                      f"- fee {buy.fee_per_contract} > {p.min_edge}",
                      win_probability=float(model_p), order_type=OrderType.LIMIT, limit_price=buy.worst,
                      time_in_force=tif, instrument_id=iid, price=on_grid(buy.average, self.ticks.get(iid), up=True))
