"""The strategy plugin interface.

A strategy receives bars and returns signal intents; the runner turns intents into ``Signal``
messages with deterministic ids. Strategies that declare ``market_data`` (``quotes``, ``books``,
``resolutions``) also get the service's local order books (:meth:`Strategy.on_book`, after every quote,
snapshot or delta of one of their instruments) and market resolutions (:meth:`Strategy.on_resolution`),
and may return several intents at once (e.g. the two legs of an arbitrage). Strategies are registered
by ``kind`` name, either with the :func:`register` decorator or through the ``tradewire.strategies``
entry-point group, and declare their parameters as a frozen msgspec Struct so bad parameters fail at
start naming the field.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, Inexact
from importlib.metadata import entry_points
from typing import Any, ClassVar, Generic, TypeVar

import msgspec

from tradewire_common.config import InstrumentSpec, StrategyConfig
from tradewire_common.schemas import Bar, MarketResolved, OrderType, Side, TimeInForce
from tradewire_signals.prediction.book import LocalBook

#: A decimal context for exact sums, differences and products of prices (``localcontext(EXACT)``):
#: the default context rounds to 28 significant digits, which can make two different sums equal
#: or flip a comparison. Never divide under it (a non-terminating quotient raises ``Inexact``).
EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[Inexact])


class StrategyParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of a strategy's parameter struct."""


P = TypeVar("P", bound=StrategyParams)


@dataclass(frozen=True, slots=True)
class Intent:
    """What a strategy wants: a side (and optional target fraction), how sure, and why."""

    side: Side
    confidence: float
    reason: str
    target: Decimal | None = None
    win_probability: float | None = None
    payoff_ratio: Decimal | None = None
    #: Exits for the entry (fractions of the entry price; seconds for the time stop); None = risk's defaults.
    stop_loss_pct: Decimal | None = None
    take_profit_pct: Decimal | None = None
    trailing_stop_pct: Decimal | None = None
    time_stop_s: int | None = None
    #: How to enter or exit (market by default); see ``Signal``.
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    trigger_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    expire_time_ns: int | None = None
    #: Book-driven strategies: the instrument to trade (None: the event's), the price risk sizes with
    #: (None: the bar close; required for intents from :meth:`Strategy.on_book`), and a correlation id the
    #: signals of one opportunity share (None: the triggering event's id).
    instrument_id: str | None = None
    price: Decimal | None = None
    correlation_id: str | None = None


#: Market data a strategy may ask for besides bars (``Strategy.market_data``).
MARKET_DATA = frozenset({"quotes", "books", "resolutions"})


class Strategy(abc.ABC, Generic[P]):
    """Subclass, set ``params_type`` and ``kind``, and implement :meth:`on_bar`.

    Raising from ``on_bar`` never crashes the service: the runner publishes a StrategyError
    event and carries on with the next bar.
    """

    kind: ClassVar[str]
    params_type: ClassVar[type[StrategyParams]]
    #: Besides bars: any of ``MARKET_DATA`` (bar-only strategies leave it empty).
    market_data: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, strategy_id: str, instruments: tuple[str, ...], params: P) -> None:
        self.strategy_id = strategy_id
        self.instruments = instruments
        self.params = params

    @abc.abstractmethod
    def on_bar(self, bar: Bar) -> Intent | None:
        """React to one bar of a subscribed instrument; return an intent or None."""

    def bind(self, specs: Mapping[str, InstrumentSpec]) -> None:
        """Called once by the service with ``risk.instruments`` by id (binary specs name each outcome's
        market and complement); a strategy may add instruments it needs to ``self.instruments`` here."""

    def on_book(self, instrument_id: str, books: Mapping[str, LocalBook]) -> Sequence[Intent]:
        """The book of ``instrument_id`` changed (``books``: every fresh local book by instrument)."""
        return ()

    def on_resolution(self, resolved: MarketResolved) -> Sequence[Intent]:
        """A prediction market resolved (every strategy asking for ``resolutions`` sees every one)."""
        return ()


_REGISTRY: dict[str, type[Strategy[Any]]] = {}
S = TypeVar("S", bound=type[Strategy[Any]])


def register(kind: str) -> Callable[[S], S]:
    """Class decorator: make a strategy available under ``kind`` in config."""

    def deco(cls: S) -> S:
        cls.kind = kind
        _REGISTRY[kind] = cls
        return cls

    return deco


#: Modules of the built-in strategies (they register themselves on import).
BUILTIN_MODULES = ("tradewire_signals.breakout", "tradewire_signals.rsi_reversion", "tradewire_signals.sma_cross",
                   "tradewire_signals.prediction.edge", "tradewire_signals.prediction.arbitrage")


def strategy_class(kind: str) -> type[Strategy[Any]]:
    for module in BUILTIN_MODULES:  # known without importing the service first
        importlib.import_module(module)
    if kind not in _REGISTRY:
        for ep in entry_points(group="tradewire.strategies"):
            if ep.name == kind:
                _REGISTRY[kind] = ep.load()
    try:
        return _REGISTRY[kind]
    except KeyError:
        known = set(_REGISTRY) | {ep.name for ep in entry_points(group="tradewire.strategies")}
        raise LookupError(f"unknown strategy kind {kind!r}; known: {', '.join(sorted(known))}") from None


def build_strategy(config: StrategyConfig, index: int = 0) -> Strategy[Any]:
    """Instantiate from config; a bad parameter raises ValueError naming the field."""
    cls = strategy_class(config.kind)
    try:
        params = msgspec.convert(config.params, cls.params_type, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"signals.strategies[{index}] ({config.id}): invalid params: {exc}") from None
    return cls(config.id, config.instruments, params)
