"""The strategy plugin interface.

A strategy receives bars and returns signal intents; the runner turns intents into ``Signal``
messages with deterministic ids. Strategies are registered by ``kind`` name, either with the
:func:`register` decorator or through the ``tradewire.strategies`` entry-point group, and declare
their parameters as a frozen msgspec Struct so bad parameters fail at start naming the field.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from importlib.metadata import entry_points
from typing import Any, ClassVar, Generic, TypeVar

import msgspec

from tradewire_common.config import StrategyConfig
from tradewire_common.schemas import Bar, Side


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


class Strategy(abc.ABC, Generic[P]):
    """Subclass, set ``params_type`` and ``kind``, and implement :meth:`on_bar`.

    Raising from ``on_bar`` never crashes the service: the runner publishes a StrategyError
    event and carries on with the next bar.
    """

    kind: ClassVar[str]
    params_type: ClassVar[type[StrategyParams]]

    def __init__(self, strategy_id: str, instruments: tuple[str, ...], params: P) -> None:
        self.strategy_id = strategy_id
        self.instruments = instruments
        self.params = params

    @abc.abstractmethod
    def on_bar(self, bar: Bar) -> Intent | None:
        """React to one bar of a subscribed instrument; return an intent or None."""


_REGISTRY: dict[str, type[Strategy[Any]]] = {}
S = TypeVar("S", bound=type[Strategy[Any]])


def register(kind: str) -> Callable[[S], S]:
    """Class decorator: make a strategy available under ``kind`` in config."""

    def deco(cls: S) -> S:
        cls.kind = kind
        _REGISTRY[kind] = cls
        return cls

    return deco


def strategy_class(kind: str) -> type[Strategy[Any]]:
    if kind not in _REGISTRY:
        for ep in entry_points(group="tradewire.strategies"):
            if ep.name == kind:
                _REGISTRY[kind] = ep.load()
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise LookupError(f"unknown strategy kind {kind!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def build_strategy(config: StrategyConfig, index: int = 0) -> Strategy[Any]:
    """Instantiate from config; a bad parameter raises ValueError naming the field."""
    cls = strategy_class(config.kind)
    try:
        params = msgspec.convert(config.params, cls.params_type, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"signals.strategies[{index}] ({config.id}): invalid params: {exc}") from None
    return cls(config.id, config.instruments, params)
