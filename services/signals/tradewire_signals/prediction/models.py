"""Probability models for prediction strategies: plugins that say how likely an outcome is.

A model answers ``estimate(outcome, ts_ns)`` with an :class:`Estimate` (the probability of that outcome in
0..1 and a confidence in 0..1) or None when it has nothing to say. Models are registered by ``kind`` like
strategies (:func:`register_model`, :func:`build_model`). The built-ins:

* ``static``: the user's own estimates in a file (TOML, CSV or JSON, by suffix), re-read whenever the file's
  modification time or size changes. Keys are an outcome instrument id (its probability), or a market id
  (the probability of its YES outcome: the instrument the strategy lists; the complement gets ``1 - p``).
* ``forecast_csv`` / ``forecast_http``: time-stamped forecasts ``ts, key, probability[, confidence]`` from a
  CSV file or an HTTP(S) URL (CSV, or JSON: a list of objects with those fields). The latest forecast at or
  before the event time is used, never a later one (no look-ahead). The URL is fetched again at most every
  ``refresh_s`` seconds (blocking, with a 5 s timeout: keep it small or local); a failed fetch keeps the
  previous forecasts and is logged.
* ``price_history``: a **baseline**, not a forecast: an exponentially weighted mean of the outcome's own mid
  prices (``alpha = 1 - 0.5 ** (1 / halflife)``, half-life in observations) with confidence
  ``1 - 2 * ewm_std`` (a probability's standard deviation is at most 0.5), after ``min_observations``. It
  only bets that the price reverts to its recent mean; it knows nothing the market does not.

File formats of ``static`` (``confidence`` optional, default 1)::

    # TOML                                  # CSV                     # JSON
    [estimates."rIR6mWqaO9xKLifr6cLL"]      key,probability,confidence  {"KX-YES.KALSHI": {"probability": 0.6}}
    probability = 0.8                       KX-YES.KALSHI,0.6,0.9
    confidence = 0.9
"""

from __future__ import annotations

import abc
import csv
import io
import json
import logging
import tomllib
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ClassVar, TypeVar

log = logging.getLogger(__name__)

ONE = Decimal(1)
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One outcome instrument as a model sees it: its id, its market, its complement, and whether it is the
    market's YES side (the one a market-id key describes)."""

    instrument_id: str
    market_id: str = ""
    complement: str | None = None
    is_yes: bool = True


@dataclass(frozen=True, slots=True)
class Estimate:
    probability: Decimal
    confidence: float = 1.0

    def __post_init__(self) -> None:
        if not (self.probability.is_finite() and ZERO <= self.probability <= ONE):
            raise ValueError(f"probability must be within 0..1, got {self.probability}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must be within 0..1, got {self.confidence}")

    def complement(self) -> Estimate:
        return Estimate(ONE - self.probability, self.confidence)


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """What a strategy's flat params give a model (``model_*`` params)."""

    source: str = ""
    refresh_s: float = 60.0
    halflife: float = 20.0
    min_observations: int = 10


class ProbabilityModel(abc.ABC):
    kind: ClassVar[str]

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings

    @abc.abstractmethod
    def estimate(self, outcome: Outcome, ts_ns: int) -> Estimate | None:
        """The probability of ``outcome`` as known at event time ``ts_ns`` (None: no view)."""

    def observe(self, instrument_id: str, ts_ns: int, mid: Decimal) -> None:  # noqa: B027 (optional hook)
        """A mid price of an outcome (the strategies call it on every book/quote/bar)."""


_MODELS: dict[str, type[ProbabilityModel]] = {}
M = TypeVar("M", bound=type[ProbabilityModel])


def register_model(kind: str) -> Callable[[M], M]:
    def deco(cls: M) -> M:
        cls.kind = kind
        _MODELS[kind] = cls
        return cls

    return deco


def build_model(kind: str, settings: ModelSettings) -> ProbabilityModel:
    try:
        cls = _MODELS[kind]
    except KeyError:
        raise ValueError(f"unknown probability model {kind!r}; known: {', '.join(sorted(_MODELS))}") from None
    return cls(settings)


def parse_probability(value: Any, where: str) -> Decimal:
    try:
        p = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{where}: probability {value!r} is not a number") from None
    if not (p.is_finite() and ZERO <= p <= ONE):
        raise ValueError(f"{where}: probability must be within 0..1, got {value!r}")
    return p


def _estimate(row: dict[str, Any], where: str) -> Estimate:
    confidence = row.get("confidence")
    conf = 1.0 if confidence in (None, "") else float(confidence)
    if not 0.0 <= conf <= 1.0:
        raise ValueError(f"{where}: confidence must be within 0..1, got {confidence!r}")
    return Estimate(parse_probability(row.get("probability"), where), conf)


def lookup(table: dict[str, Estimate], outcome: Outcome) -> Estimate | None:
    """An outcome's estimate from keys of instrument ids or market ids (see the module docstring)."""
    if outcome.instrument_id in table:
        return table[outcome.instrument_id]
    if outcome.complement and outcome.complement in table:
        return table[outcome.complement].complement()
    if outcome.market_id and outcome.market_id in table:
        found = table[outcome.market_id]
        return found if outcome.is_yes else found.complement()
    return None


def parse_static(text: str, suffix: str, where: str) -> dict[str, Estimate]:
    if suffix == ".toml":
        data = tomllib.loads(text).get("estimates", {})
        return {str(k): _estimate(v, f"{where} [{k}]") for k, v in data.items()}
    if suffix == ".json":
        data = json.loads(text)
        if isinstance(data, list):
            return {str(r["key"]): _estimate(r, f"{where} [{r['key']}]") for r in data}
        return {str(k): _estimate(v, f"{where} [{k}]") for k, v in data.items()}
    rows = csv.DictReader(io.StringIO(text))
    return {str(r["key"]).strip(): _estimate(r, f"{where} line {i + 2}") for i, r in enumerate(rows)}


@register_model("static")
class StaticModel(ProbabilityModel):
    def __init__(self, settings: ModelSettings) -> None:
        super().__init__(settings)
        if not settings.source:
            raise ValueError("the static model needs model_source (a TOML, CSV or JSON file)")
        self.path = Path(settings.source)
        self._stamp: tuple[int, int] | None = None
        self.table: dict[str, Estimate] = {}
        self.loads = 0
        self._reload()

    def _reload(self) -> None:
        stat = self.path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        self.table = parse_static(self.path.read_text(), self.path.suffix.lower(), str(self.path))
        self._stamp = stamp
        self.loads += 1

    def estimate(self, outcome: Outcome, ts_ns: int) -> Estimate | None:
        try:
            self._reload()
        except (OSError, ValueError, KeyError, tomllib.TOMLDecodeError, json.JSONDecodeError):
            log.exception("static model %s: keeping the previous estimates", self.path)
        return lookup(self.table, outcome)


def parse_ts(value: str) -> int:
    """ISO 8601 (naive = UTC) or epoch seconds/ms/ns (told by magnitude) to ns."""
    text = value.strip()
    try:
        number = Decimal(text)
    except InvalidOperation:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000
    if number < 10**11:
        return int(number * 10**9)
    if number < 10**14:
        return int(number * 10**6)
    return int(number)


class Forecasts:
    """Time-stamped forecasts per key, each list sorted by time; :meth:`at` never looks ahead."""

    def __init__(self, rows: Iterable[dict[str, Any]], where: str) -> None:
        self.by_key: dict[str, list[tuple[int, Estimate]]] = {}
        for i, row in enumerate(rows):
            at = f"{where} row {i + 1}"
            self.by_key.setdefault(str(row["key"]).strip(), []).append((parse_ts(str(row["ts"])), _estimate(row, at)))
        for series in self.by_key.values():
            series.sort(key=lambda item: item[0])

    def at(self, ts_ns: int) -> dict[str, Estimate]:
        out: dict[str, Estimate] = {}
        for key, series in self.by_key.items():
            latest = None
            for ts, est in series:
                if ts > ts_ns:
                    break
                latest = est
            if latest is not None:
                out[key] = latest
        return out


def parse_forecasts(text: str, where: str) -> Forecasts:
    stripped = text.lstrip()
    if stripped.startswith("["):
        return Forecasts(json.loads(stripped), where)
    return Forecasts(csv.DictReader(io.StringIO(text)), where)


@register_model("forecast_csv")
class ForecastCsvModel(ProbabilityModel):
    def __init__(self, settings: ModelSettings) -> None:
        super().__init__(settings)
        if not settings.source:
            raise ValueError("forecast_csv needs model_source (a CSV file: ts,key,probability[,confidence])")
        self.path = Path(settings.source)
        self._stamp: tuple[int, int] | None = None
        self.forecasts = Forecasts((), str(self.path))
        self._reload()

    def _reload(self) -> None:
        stat = self.path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self.forecasts = parse_forecasts(self.path.read_text(), str(self.path))
            self._stamp = stamp

    def estimate(self, outcome: Outcome, ts_ns: int) -> Estimate | None:
        try:
            self._reload()
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            log.exception("forecast file %s: keeping the previous forecasts", self.path)
        return lookup(self.forecasts.at(ts_ns), outcome)


@register_model("forecast_http")
class ForecastHttpModel(ProbabilityModel):
    def __init__(self, settings: ModelSettings, *, wall_clock: Callable[[], float] | None = None) -> None:
        super().__init__(settings)
        if not settings.source.startswith(("http://", "https://")):
            raise ValueError(f"forecast_http needs model_source as an http(s) URL, got {settings.source!r}")
        import time

        self._now = wall_clock or time.monotonic
        self._fetched_at: float | None = None
        self.forecasts = Forecasts((), settings.source)
        self.fetches = 0

    def _refresh(self) -> None:
        now = self._now()
        if self._fetched_at is not None and now - self._fetched_at < self.settings.refresh_s:
            return
        self._fetched_at = now
        try:
            with urllib.request.urlopen(self.settings.source, timeout=5) as response:
                text = response.read().decode()
            self.forecasts = parse_forecasts(text, self.settings.source)
            self.fetches += 1
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            log.exception("forecast URL %s: keeping the previous forecasts", self.settings.source)

    def estimate(self, outcome: Outcome, ts_ns: int) -> Estimate | None:
        self._refresh()
        return lookup(self.forecasts.at(ts_ns), outcome)


@register_model("price_history")
class PriceHistoryModel(ProbabilityModel):
    """Exponentially weighted mean and standard deviation of each outcome's mids (a baseline)."""

    def __init__(self, settings: ModelSettings) -> None:
        super().__init__(settings)
        if settings.halflife <= 0:
            raise ValueError(f"model_halflife must be positive, got {settings.halflife}")
        self.alpha = Decimal(str(1 - 0.5 ** (1 / settings.halflife)))
        self.state: dict[str, tuple[Decimal, Decimal, int, int]] = {}  # mean, variance, count, last ts

    def observe(self, instrument_id: str, ts_ns: int, mid: Decimal) -> None:
        previous = self.state.get(instrument_id)
        if previous is None:
            self.state[instrument_id] = (mid, ZERO, 1, ts_ns)
            return
        mean, var, count, _ = previous
        diff = mid - mean
        incr = self.alpha * diff
        # West's exponentially weighted variance update
        self.state[instrument_id] = (mean + incr, (ONE - self.alpha) * (var + diff * incr), count + 1, ts_ns)

    def estimate(self, outcome: Outcome, ts_ns: int) -> Estimate | None:
        own = self.state.get(outcome.instrument_id)
        if own is not None and own[2] >= self.settings.min_observations:
            return self._from(own)
        other = self.state.get(outcome.complement) if outcome.complement else None
        if other is not None and other[2] >= self.settings.min_observations:
            return self._from(other).complement()
        return None

    @staticmethod
    def _from(state: tuple[Decimal, Decimal, int, int]) -> Estimate:
        mean, var, _, _ = state
        std = var.sqrt() if var > 0 else ZERO
        confidence = max(0.0, min(1.0, float(ONE - 2 * std)))
        return Estimate(min(ONE, max(ZERO, mean)), confidence)
