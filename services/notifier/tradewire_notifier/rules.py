"""Price alert rules: parsing, indicators and evaluation (pure code: no bus, no clock, no I/O).

A rule reads ``[LEFT] OPERATOR RIGHT`` on one instrument:

* ``LEFT`` is a series: ``price`` (the default when left out), ``sma:N``, ``ema:N``, ``rsi:N`` or
  ``change_pct:N``; ``RIGHT`` is a number or another series (``sma:10 crosses_above sma:30``);
* ``OPERATOR`` is ``above`` (``>``), ``below`` (``<``), ``crosses_above`` or ``crosses_below``.

Series: ``price`` is a bar's close, a trade's price or a quote's mid; the indicators are computed
on bar closes only, per instrument and bar interval, from the bars seen since the rule (or the
service) started, with no history backfill:

* ``sma:N`` the mean of the last N closes; ``ema:N`` the exponential average with
  ``alpha = 2 / (N + 1)``, seeded with the SMA of its first N closes;
* ``rsi:N`` Wilder's RSI (what charting tools show): average gain and loss seeded with the mean of
  the first N close-to-close changes, then ``avg = (avg·(N−1) + x) / N``; ``100 − 100 / (1 + G/L)``,
  100 when there were no losses, undefined (the rule waits) while both averages are 0;
* ``change_pct:N`` ``(close / close N bars ago − 1) · 100``.

Firing: the condition is ``LEFT > RIGHT`` (``above``, ``crosses_above``) or ``LEFT < RIGHT``
(``below``, ``crosses_below``); equality is neither. A rule fires once when its condition becomes
true and re-arms when it is false again. ``above``/``below`` also fire on the first observation
when the condition already holds; ``crosses_*`` only fire on an observed change from false to true
(so never on the first observation). Conditions are tracked per series: per bar interval for rules
on indicators or with an ``interval``, one series over bars, trades and quotes for a plain price rule.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation, localcontext
from typing import Literal

import msgspec

from tradewire_common.ids import InstrumentId

Operator = Literal["above", "below", "crosses_above", "crosses_below"]
Severity = Literal["info", "warning", "critical"]
OPERATORS: tuple[Operator, ...] = ("above", "below", "crosses_above", "crosses_below")
_ALIASES: dict[str, Operator] = {
    ">": "above", "<": "below", "crosses-above": "crosses_above", "crosses-below": "crosses_below",
    "cross_above": "crosses_above", "cross_below": "crosses_below",
}
INDICATORS = ("sma", "ema", "rsi", "change_pct")
MAX_PERIOD = 10_000
_SERIES = re.compile(r"^(price|(sma|ema|rsi|change_pct):([0-9]+))$")
_INTERVAL = re.compile(r"^(\*|[0-9]+[a-zA-Z]+)$")
#: Key of the one series a plain price rule (no indicator, any interval) is tracked on.
PRICE_KEY = "price"


class RuleError(ValueError):
    """A rule that cannot be parsed or is out of range; the message says what to write instead."""


class AlertRule(msgspec.Struct, frozen=True, kw_only=True):
    """A price alert rule as stored and as the HTTP API shows it."""

    id: str
    instrument_id: InstrumentId
    left: str
    op: Operator
    right: str
    #: Bar interval the rule listens to (``1m``, ``1h``), ``*`` for any.
    interval: str = "*"
    severity: Severity = "info"
    note: str = ""
    created_ns: int = 0

    @property
    def condition(self) -> str:
        return f"{self.left} {self.op} {self.right}"

    @property
    def uses_indicators(self) -> bool:
        return self.left != "price" or (_is_series(self.right) and self.right != "price")

    def series(self) -> tuple[str, ...]:
        """The indicator specs this rule needs (``sma:10``...), without ``price``."""
        return tuple(s for s in (self.left, self.right) if _is_series(s) and s != "price")


class RuleState(msgspec.Struct, kw_only=True):
    """What a rule remembers between observations (stored with it, so it survives restarts)."""

    #: Series key -> whether the condition held at the latest observation.
    last: dict[str, bool] = msgspec.field(default_factory=dict)
    fired: int = 0
    last_fired_ns: int = 0


class RuleRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /v1/alerts``: ``condition`` is ``[LEFT] OPERATOR RIGHT`` (``above 70000``)."""

    instrument_id: InstrumentId
    condition: str
    interval: str = "*"
    severity: Severity = "info"
    note: str = ""


def _is_series(text: str) -> bool:
    return _SERIES.match(text) is not None


def _series(text: str) -> str:
    match = _SERIES.match(text)
    if match is None:
        raise RuleError(f"unknown series {text!r}: use price, " + ", ".join(f"{name}:N" for name in INDICATORS))
    if match.group(3) is not None:
        period = int(match.group(3))
        if not 1 <= period <= MAX_PERIOD or (match.group(2) == "rsi" and period < 2):
            raise RuleError(f"{text}: the period must be between {2 if match.group(2) == 'rsi' else 1} "
                            f"and {MAX_PERIOD}")
        return f"{match.group(2)}:{period}"
    return "price"


def _number(text: str) -> str:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise RuleError(f"{text!r} is neither a number nor a series (price, sma:N, ema:N, rsi:N, change_pct:N)") \
            from None
    if not value.is_finite() or abs(value) >= Decimal("1e15"):
        raise RuleError(f"{text!r} is not a usable number")
    return f"{value.normalize():f}"


def parse_condition(text: str) -> tuple[str, Operator, str]:
    """``"rsi:14 below 30"`` -> ``("rsi:14", "below", "30")``; ``"above 70000"`` -> ``("price", ...)``."""
    tokens = text.lower().split()
    if len(tokens) == 2:
        tokens = ["price", *tokens]
    if len(tokens) != 3:
        raise RuleError(f"expected '[SERIES] OPERATOR VALUE' such as 'above 70000' or 'rsi:14 below 30', got {text!r}")
    left, raw_op, right = tokens
    op = _ALIASES.get(raw_op, raw_op)
    if op not in OPERATORS:
        raise RuleError(f"unknown operator {raw_op!r}: use {', '.join(OPERATORS)}")
    left = _series(left)
    right = _series(right) if _is_series(right) else _number(right)
    if left == right:
        raise RuleError(f"{text!r} compares {left} with itself")
    return left, op, right


def check_interval(interval: str) -> str:
    if not _INTERVAL.match(interval):
        raise RuleError(f"interval must be '*' or like '1m', '1h', '1d', got {interval!r}")
    return interval


def build_rule(request: RuleRequest, rule_id: str, created_ns: int) -> AlertRule:
    left, op, right = parse_condition(request.condition)
    return AlertRule(id=rule_id, instrument_id=request.instrument_id, left=left, op=op, right=right,
                     interval=check_interval(request.interval), severity=request.severity,
                     note=request.note[:500], created_ns=created_ns)


# --- indicators --------------------------------------------------------------------------------


class Indicator:
    """One indicator on one series of closes; ``update`` returns the value, None while warming up."""

    def update(self, close: Decimal) -> Decimal | None:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def value(self) -> Decimal | None:  # pragma: no cover - abstract
        raise NotImplementedError


class Sma(Indicator):
    def __init__(self, period: int) -> None:
        self.period = period
        self.window: deque[Decimal] = deque(maxlen=period)
        self.total = Decimal(0)
        self._value: Decimal | None = None

    def update(self, close: Decimal) -> Decimal | None:
        with localcontext() as ctx:
            ctx.prec = 50  # sums of prices stay exact
            if len(self.window) == self.period:
                self.total -= self.window[0]
            self.window.append(close)
            self.total += close
            if len(self.window) == self.period:
                self._value = self.total / self.period
        return self._value

    @property
    def value(self) -> Decimal | None:
        return self._value


class Ema(Indicator):
    def __init__(self, period: int) -> None:
        self.alpha = Decimal(2) / Decimal(period + 1)
        self.seed = Sma(period)
        self._value: Decimal | None = None

    def update(self, close: Decimal) -> Decimal | None:
        if self._value is None:
            self._value = self.seed.update(close)
        else:
            self._value = self._value + self.alpha * (close - self._value)
        return self._value

    @property
    def value(self) -> Decimal | None:
        return self._value


class Rsi(Indicator):
    """Wilder's RSI."""

    def __init__(self, period: int) -> None:
        self.period = period
        self.previous: Decimal | None = None
        self.seen = 0
        self.gain = Decimal(0)
        self.loss = Decimal(0)
        self._value: Decimal | None = None

    def update(self, close: Decimal) -> Decimal | None:
        previous, self.previous = self.previous, close
        if previous is None:
            return None
        change = close - previous
        gain, loss = max(change, Decimal(0)), max(-change, Decimal(0))
        n = self.period
        self.seen += 1
        if self.seen <= n:  # seeding: the mean of the first N changes
            self.gain += gain
            self.loss += loss
            if self.seen < n:
                return None
            self.gain /= n
            self.loss /= n
        else:
            self.gain = (self.gain * (n - 1) + gain) / n
            self.loss = (self.loss * (n - 1) + loss) / n
        if self.loss == 0:
            self._value = None if self.gain == 0 else Decimal(100)
        else:
            self._value = Decimal(100) - Decimal(100) / (1 + self.gain / self.loss)
        return self._value

    @property
    def value(self) -> Decimal | None:
        return self._value


class ChangePct(Indicator):
    def __init__(self, period: int) -> None:
        self.window: deque[Decimal] = deque(maxlen=period + 1)
        self._value: Decimal | None = None

    def update(self, close: Decimal) -> Decimal | None:
        self.window.append(close)
        if len(self.window) == self.window.maxlen:
            self._value = (close / self.window[0] - 1) * 100
        return self._value

    @property
    def value(self) -> Decimal | None:
        return self._value


def make_indicator(spec: str) -> Indicator:
    name, _, period = spec.partition(":")
    kinds: dict[str, type[Indicator]] = {"sma": Sma, "ema": Ema, "rsi": Rsi, "change_pct": ChangePct}
    return kinds[name](int(period))  # type: ignore[call-arg]


@dataclass
class SeriesBook:
    """The indicators of one instrument and bar interval, each updated once per bar."""

    indicators: dict[str, Indicator] = field(default_factory=dict)
    close: Decimal | None = None

    def ensure(self, specs: tuple[str, ...]) -> None:
        for spec in specs:
            if spec not in self.indicators:
                self.indicators[spec] = make_indicator(spec)

    def update(self, close: Decimal) -> None:
        self.close = close
        for indicator in self.indicators.values():
            indicator.update(close)

    def value(self, spec: str) -> Decimal | None:
        if spec == "price":
            return self.close
        indicator = self.indicators.get(spec)
        return indicator.value if indicator is not None else None


# --- evaluation --------------------------------------------------------------------------------


def operand(text: str, book: SeriesBook | None, price: Decimal) -> Decimal | None:
    """The value of one side: a number, the price, or an indicator of ``book``."""
    if text == "price":
        return price
    if _is_series(text):
        return book.value(text) if book is not None else None
    return Decimal(text)


def step(rule: AlertRule, state: RuleState, key: str, left: Decimal, right: Decimal) -> bool:
    """Record one observation of ``rule`` on series ``key``; True when the rule fires."""
    condition = left > right if rule.op in ("above", "crosses_above") else left < right
    previous = state.last.get(key)
    state.last[key] = condition
    if not condition:
        return False
    if rule.op in ("above", "below"):
        return previous is not True
    return previous is False


@dataclass(frozen=True)
class Firing:
    """A rule fired on an observation."""

    rule: AlertRule
    #: The series the condition changed on (``price`` or a bar interval).
    key: str
    left: Decimal
    right: Decimal
    price: Decimal
    #: The market data message that made it fire, and its event time.
    source_id: str
    ts_event: int
    #: ``1m bar``, ``trade``, ``quote``.
    source: str


@dataclass
class RuleEngine:
    """Every rule with its state, and the indicator books they need."""

    rules: dict[str, AlertRule] = field(default_factory=dict)
    states: dict[str, RuleState] = field(default_factory=dict)
    books: dict[tuple[str, str], SeriesBook] = field(default_factory=dict)
    #: Instruments with at least one rule (market data of the others is skipped at once).
    instruments: set[str] = field(default_factory=set)

    def add(self, rule: AlertRule, state: RuleState | None = None) -> None:
        self.rules[rule.id] = rule
        self.states[rule.id] = state or RuleState()
        self.instruments.add(rule.instrument_id)

    def remove(self, rule_id: str) -> bool:
        self.states.pop(rule_id, None)
        rule = self.rules.pop(rule_id, None)
        if rule is None:
            return False
        if not any(r.instrument_id == rule.instrument_id for r in self.rules.values()):
            self.instruments.discard(rule.instrument_id)
            self.books = {k: v for k, v in self.books.items() if k[0] != rule.instrument_id}
        return True

    def has_rules_for(self, instrument_id: str) -> bool:
        return instrument_id in self.instruments

    def on_bar(self, instrument_id: str, interval: str, close: Decimal, source_id: str,
               ts_event: int) -> tuple[list[Firing], bool]:
        """Evaluate the instrument's rules on a bar close; returns the firings and whether any state changed."""
        matching = [r for r in self.rules.values()
                    if r.instrument_id == instrument_id and r.interval in ("*", interval)]
        if not matching:
            return [], False
        book: SeriesBook | None = None
        if any(r.uses_indicators for r in matching):
            book = self.books.setdefault((instrument_id, interval), SeriesBook())
            for rule in matching:
                book.ensure(rule.series())
            book.update(close)
        firings: list[Firing] = []
        changed = False
        for rule in matching:
            key = PRICE_KEY if rule.interval == "*" and not rule.uses_indicators else interval
            fired, moved = self._observe(rule, key, book, close)
            changed |= moved
            if fired is not None:
                firings.append(Firing(rule, key, fired[0], fired[1], close, source_id, ts_event, f"{interval} bar"))
        return firings, changed

    def on_price(self, instrument_id: str, price: Decimal, source_id: str, ts_event: int,
                 source: str) -> tuple[list[Firing], bool]:
        """Evaluate the plain price rules (any interval) on a trade price or a quote mid."""
        firings: list[Firing] = []
        changed = False
        for rule in list(self.rules.values()):
            if rule.instrument_id != instrument_id or rule.interval != "*" or rule.uses_indicators:
                continue
            fired, moved = self._observe(rule, PRICE_KEY, None, price)
            changed |= moved
            if fired is not None:
                firings.append(Firing(rule, PRICE_KEY, fired[0], fired[1], price, source_id, ts_event, source))
        return firings, changed

    def _observe(self, rule: AlertRule, key: str, book: SeriesBook | None,
                 price: Decimal) -> tuple[tuple[Decimal, Decimal] | None, bool]:
        left = operand(rule.left, book, price)
        right = operand(rule.right, book, price)
        if left is None or right is None:
            return None, False
        state = self.states[rule.id]
        before = state.last.get(key)
        fired = step(rule, state, key, left, right)
        if fired:
            state.fired += 1
        return ((left, right) if fired else None), fired or before != state.last[key]
