"""Bar-file readers: OHLCV files of every common shape into exact, validated bars.

``read_bar_file(path)`` reads one file and returns a ``BarSeries``; ``to_bars`` turns it into
``Bar`` messages; ``write_parquet`` stores a series so that reading it back gives equal records.

Formats (chosen by magic bytes, then by file suffix):

* CSV with a header (``readers_csv``). Column names in any case. The time is the first of
  ``timestamp, timestamp_utc, datetime, date_time, open_time, ts_event, ts``; else ``date`` joined
  with a ``time`` column that holds the time of day (backtrader); else ``date`` or ``time``; else
  an unnamed first column (a pandas index). ``open, high, low, close`` are required, ``volume``
  (or ``vol``) is optional and is 0 when absent (e.g. FXCM bid bars). Other columns (``Adj Close``,
  ``OpenInterest``...) are ignored. A header with one name fewer than the rows, whose rows carry a
  time of day after the date (backtrader ``2006-01-02-volume-min-001``), gets a ``time`` column.
* Headerless CSV: ``time, open, high, low, close[, volume, ...]``, or ``date, time-of-day, open...``.
  This covers the Binance 12-column kline CSV (open time in ms first; the rest is ignored).
* JSON: freqtrade's ``[[ms, open, high, low, close, volume], ...]`` (numbers are read as text).
* Feather / Arrow IPC and Parquet (``readers_arrow``): the same column names; the time may also be
  a pandas index stored by pyarrow (``__index_level_0__`` or a named index column).

Timestamps: ISO 8601 text (``2022-01-01``, ``2022-01-01 00:01:00.000000``, ``...T...Z``,
``...+01:00``; up to 9 fractional digits; naive means UTC), Arrow timestamp/date columns, or epoch
numbers whose unit is told by magnitude (< 1e11 seconds, < 1e14 ms, < 1e17 us, else ns; every row
of a file must have the unit of the first). Epoch numbers before 1980 are rejected, as a compact
``YYYYMMDD`` date would otherwise pass for seconds in 1970. ``ts_event`` is the timestamp as the
file gives it and is taken to be the bar's OPEN time; the reader cannot tell files that label bars
by their close time (Nautilus test data, backtrader intraday) and does not shift them.

Exactness: prices and volumes are ``Decimal``. CSV and JSON values are parsed from their text, so
no binary float ever touches them. Arrow/Parquet float columns are converted through
``repr(float)``, the shortest text that round-trips to the same double (``0.0984`` stays
``0.0984``, but a value that was already off in the file, such as ``5.330000000000001e-05``, is
kept as written). Decimal and string columns are taken exactly.

Validation: any bad row raises ``BarFileError`` (a ``ValueError``) naming the file, the 1-based
data row (not counting the header; CSV messages also give the physical line) and the column:
unsorted or duplicate timestamps, missing required columns, non-numeric, NaN, infinite, zero or
negative prices, negative volume, a high below the low, or a high/low that does not contain the
open and close. Nothing is repaired or skipped silently; only blank CSV lines are skipped.

Interval: the most common step between timestamps, rendered ``1m``, ``5m``, ``1h``, ``1d``, ``1w``
(the largest whole unit of ns/us/ms/s/m/h/d/w, e.g. ``90s``), or ``1M`` for month-spaced bars.
A series with a single bar has no inferable interval (``""``).

Gaps policy: gaps are kept as they are, never filled or interpolated. A gap is a step larger
than the interval (for ``w`` and ``M`` intervals: a skipped calendar week or month, so that
month-end or holiday-shifted labels do not count). They are listed in ``BarSeries.gaps`` as
``(ts_before, ts_after)`` and reported with one logging warning per file. Note that daily stock
data therefore reports every weekend and holiday as a gap.

Parquet output (``write_parquet``): a ``timestamp`` column (``timestamp[ns, tz=UTC]``) and
``open, high, low, close, volume`` as *string* columns holding ``str(Decimal)``, so that reading
the file back gives exactly equal records; the interval is kept in the schema metadata.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import msgspec

from tradewire_common.ids import InstrumentId, derive_id
from tradewire_common.numbers import ZERO, check_non_negative, check_positive, to_decimal
from tradewire_common.schemas.market import Bar

__all__ = ["BarFileError", "BarRecord", "BarSeries", "read_bar_file", "to_bars", "write_parquet"]

log = logging.getLogger(__name__)

NS_PER_US = 1_000
NS_PER_MS = 1_000_000
NS_PER_SECOND = 1_000_000_000
NS_PER_MINUTE = 60 * NS_PER_SECOND
NS_PER_HOUR = 60 * NS_PER_MINUTE
NS_PER_DAY = 24 * NS_PER_HOUR
NS_PER_WEEK = 7 * NS_PER_DAY
_UNIT_NS = {
    "w": NS_PER_WEEK,
    "d": NS_PER_DAY,
    "h": NS_PER_HOUR,
    "m": NS_PER_MINUTE,
    "s": NS_PER_SECOND,
    "ms": NS_PER_MS,
    "us": NS_PER_US,
    "ns": 1,
}
#: Length of each fixed interval unit (calendar months have none).
NS_PER_UNIT: Mapping[str, int] = _UNIT_NS
_INTERVAL = re.compile(r"([1-9][0-9]*)(ns|us|ms|s|m|h|d|w|M)")
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
#: Epoch numbers must not be older than this (see the module docstring).
_MIN_EPOCH_NS = 315_532_800 * NS_PER_SECOND  # 1980-01-01
_INT64_MAX = 2**63 - 1
#: Canonical names of the value columns, in the order ``RecordBuilder.add`` takes them.
VALUE_COLUMNS = ("open", "high", "low", "close", "volume")


class BarFileError(ValueError):
    """A bar file cannot be read; the message names the file, the data row and the column."""


@dataclass(frozen=True, slots=True)
class BarRecord:
    """One bar as read from a file; ``ts_event`` is its open time in ns since the epoch (UTC)."""

    ts_event: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass(frozen=True, slots=True)
class BarSeries:
    """The bars of one file, in time order, with the inferred interval and the gaps found."""

    path: Path
    records: list[BarRecord]
    #: e.g. ``1m``, ``1d``, ``1M``; ``""`` when it cannot be inferred (a single bar).
    interval: str
    #: ``(ts_before, ts_after)`` of every step larger than the interval (kept, not filled).
    gaps: list[tuple[int, int]] = field(default_factory=list)


# --------------------------------------------------------------------------- timestamps

_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r" ?(Z|UTC|[+-]\d{2}(?::?\d{2})?)?"
)
_EPOCH = re.compile(r"[+-]?\d+(?:\.\d+)?")
TIME_OF_DAY = re.compile(r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?")


def format_ts(ts: int) -> str:
    """``ts`` (ns) as ISO 8601 UTC text, for messages."""
    seconds, ns = divmod(ts, NS_PER_SECOND)
    text = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{ns:09d}Z" if ns else f"{text}Z"


class TimestampParser:
    """Parses timestamp text to ns; remembers the epoch unit of the first numeric value."""

    __slots__ = ("_days", "_unit")

    def __init__(self) -> None:
        self._days: dict[str, int] = {}
        self._unit: int | None = None

    def parse(self, text: str) -> int:
        text = text.strip()
        match = _ISO.fullmatch(text)
        if match is not None:
            return self._iso(text, match)
        if _EPOCH.fullmatch(text):
            return self.epoch(Decimal(text) if "." in text else int(text))
        raise ValueError(f"not a timestamp: {text!r}")

    def epoch(self, value: int | Decimal) -> int:
        """An epoch number in s/ms/us/ns (by magnitude) to ns."""
        magnitude = abs(int(value))
        unit = 0 if magnitude < 10**11 else 1 if magnitude < 10**14 else 2 if magnitude < 10**17 else 3
        if self._unit is None:
            self._unit = unit
        elif unit != self._unit:
            names = ("seconds", "milliseconds", "microseconds", "nanoseconds")
            raise ValueError(
                f"epoch timestamp {value} looks like {names[unit]} but the first row's was in {names[self._unit]}"
            )
        ts = int(value * 10 ** (9 - 3 * unit))
        if ts < _MIN_EPOCH_NS:
            raise ValueError(f"implausible epoch timestamp {value} (before 1980; a YYYYMMDD date?)")
        return ts

    def _iso(self, text: str, match: re.Match[str]) -> int:
        year, month, day, hour, minute, second, fraction, zone = match.groups()
        days = self._days.get(text[:10])
        if days is None:
            try:
                days = date(int(year), int(month), int(day)).toordinal() - EPOCH_ORDINAL
            except ValueError as exc:
                raise ValueError(f"invalid date in {text!r}: {exc}") from None
            self._days[text[:10]] = days
        ts = days * NS_PER_DAY
        if hour is not None:
            h, m, s = int(hour), int(minute), int(second or 0)
            if h > 23 or m > 59 or s > 59:
                raise ValueError(f"invalid time of day in {text!r}")
            ts += (h * 3600 + m * 60 + s) * NS_PER_SECOND
            if fraction:
                ts += int(fraction.ljust(9, "0"))
        if zone and zone not in ("Z", "UTC"):
            digits = zone[1:].replace(":", "")
            offset = (int(digits[:2]) * 60 + int(digits[2:] or 0)) * NS_PER_MINUTE
            ts -= offset if zone[0] == "+" else -offset
        return ts


# --------------------------------------------------------------------------- validation


def where(path: Path, row: int | None = None, column: str | None = None, line: int | None = None) -> str:
    """``file: row N (line L), column 'x'`` for error messages."""
    text = str(path)
    if row is not None:
        text += f": row {row}" + (f" (line {line})" if line is not None else "")
    if column is not None:
        text += f"{':' if row is None else ','} column {column!r}"
    return text


class RecordBuilder:
    """Validates rows one by one into ``BarRecord``s; raises ``BarFileError`` on the first bad one."""

    __slots__ = ("_prev", "columns", "parser", "path", "records", "ts_column")

    def __init__(self, path: Path, ts_column: str, columns: Sequence[str] = VALUE_COLUMNS) -> None:
        self.path = path
        self.ts_column = ts_column
        #: The file's names for open, high, low, close (and volume), for messages.
        self.columns = tuple(columns) + VALUE_COLUMNS[len(columns) :]
        self.parser = TimestampParser()
        self.records: list[BarRecord] = []
        self._prev: int | None = None

    def error(self, message: str, row: int, column: str | None = None, line: int | None = None) -> BarFileError:
        return BarFileError(f"{where(self.path, row, column, line)}: {message}")

    def timestamp(self, row: int, text: str, line: int | None = None) -> int:
        try:
            return self.parser.parse(text)
        except ValueError as exc:
            raise self.error(str(exc), row, self.ts_column, line) from None

    def epoch(self, row: int, value: int) -> int:
        try:
            return self.parser.epoch(value)
        except ValueError as exc:
            raise self.error(str(exc), row, self.ts_column) from None

    def add(self, row: int, ts: int | None, values: Sequence[object], line: int | None = None) -> None:
        """Add one row; ``values`` are open, high, low, close[, volume] (text, number or Decimal)."""
        if ts is None:
            raise self.error("missing timestamp", row, self.ts_column, line)
        if not -_INT64_MAX <= ts <= _INT64_MAX:
            raise self.error(f"timestamp out of range: {ts}", row, self.ts_column, line)
        prev = self._prev
        if prev is not None and ts <= prev:
            what = "duplicate timestamp" if ts == prev else "timestamps out of order"
            raise self.error(
                f"{what}: {format_ts(ts)} does not follow {format_ts(prev)} of the previous row",
                row,
                self.ts_column,
                line,
            )
        numbers: list[Decimal] = []
        for index, value in enumerate(values):
            name = self.columns[index]
            if value is None:
                raise self.error("missing value", row, name, line)
            try:
                number = to_decimal(value, field=name)
                if index < 4:
                    check_positive(number, name)
                else:
                    check_non_negative(number, name)
            except ValueError as exc:
                raise self.error(str(exc), row, name, line) from None
            numbers.append(number)
        if len(numbers) == 4:
            numbers.append(ZERO)
        elif len(numbers) != 5:
            raise ValueError(f"add() takes 4 or 5 values, got {len(numbers)}")
        open_, high, low, close, volume = numbers
        if high < low:
            raise self.error(f"high {high} is below low {low}", row, self.columns[1], line)
        if high < open_ or high < close:
            raise self.error(f"high {high} is below open {open_} or close {close}", row, self.columns[1], line)
        if low > open_ or low > close:
            raise self.error(f"low {low} is above open {open_} or close {close}", row, self.columns[2], line)
        self.records.append(BarRecord(ts, open_, high, low, close, volume))
        self._prev = ts


# --------------------------------------------------------------------------- interval and gaps


def format_interval(step: int) -> str:
    """A step in ns as ``1m``, ``4h``, ``1w``, ``90s``... (the largest unit that divides it)."""
    if step <= 0:
        raise ValueError(f"interval must be positive, got {step} ns")
    for suffix, unit in _UNIT_NS.items():
        if step % unit == 0:
            return f"{step // unit}{suffix}"
    raise AssertionError("unreachable: 1 ns divides every step")


def _month_index(ts: int) -> int:
    day = date.fromordinal(EPOCH_ORDINAL + ts // NS_PER_DAY)
    return day.year * 12 + day.month - 1


def _week_index(ts: int) -> int:
    return (ts // NS_PER_DAY + 3) // 7  # weeks start on Monday; 1970-01-01 was a Thursday


def infer_interval(timestamps: Sequence[int]) -> str:
    """The most common step (the smaller one on a tie), or ``1M`` for month-spaced bars."""
    if len(timestamps) < 2:
        return ""
    steps = Counter(b - a for a, b in itertools.pairwise(timestamps))
    step = max(steps.items(), key=lambda item: (item[1], -item[0]))[0]
    if 27 * NS_PER_DAY <= step <= 33 * NS_PER_DAY:
        months = [_month_index(ts) for ts in timestamps]
        month_steps = Counter(b - a for a, b in itertools.pairwise(months))
        if min(month_steps) >= 1 and month_steps.most_common(1)[0][0] == 1:
            return "1M"
    return format_interval(step)


def parse_interval(interval: str) -> tuple[int, str]:
    """``"5m"`` -> ``(5, "m")``; raises ValueError for anything else."""
    match = _INTERVAL.fullmatch(interval)
    if match is None:
        raise ValueError(f"invalid interval {interval!r}: expected e.g. 1m, 5m, 1h, 1d, 1w, 1M, 90s")
    return int(match.group(1)), match.group(2)


def find_gaps(timestamps: Sequence[int], interval: str) -> list[tuple[int, int]]:
    """``(before, after)`` of each step larger than ``interval`` (calendar periods for w and M)."""
    count, unit = parse_interval(interval)
    pairs = itertools.pairwise(timestamps)
    if unit in ("w", "M"):
        key = _week_index if unit == "w" else _month_index
        return [(a, b) for a, b in pairs if key(b) - key(a) > count]
    limit = count * _UNIT_NS[unit]
    return [(a, b) for a, b in pairs if b - a > limit]


def build_series(path: Path, records: list[BarRecord], interval_hint: str = "") -> BarSeries:
    """Infer the interval, find and report gaps, and wrap the records."""
    if not records:
        raise BarFileError(f"{path}: no bars in the file")
    timestamps = [r.ts_event for r in records]
    interval = infer_interval(timestamps) or interval_hint
    gaps = find_gaps(timestamps, interval) if interval else []
    if gaps:
        before, after = gaps[0]
        log.warning(
            "%s: %d gap(s) larger than the %s interval kept as-is (not filled); first %s -> %s",
            path,
            len(gaps),
            interval,
            format_ts(before),
            format_ts(after),
            extra={"path": str(path), "gaps": len(gaps), "interval": interval},
        )
    return BarSeries(path=path, records=records, interval=interval, gaps=gaps)


# --------------------------------------------------------------------------- public API


def read_bar_file(path: Path, *, limit: int = 0) -> BarSeries:
    """Read the first ``limit`` bars (0 = all) of a CSV, JSON, Feather/Arrow or Parquet bar file."""
    from tradewire_datafeed.readers_arrow import read_arrow
    from tradewire_datafeed.readers_csv import read_csv, read_json

    path = Path(path)
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    with path.open("rb") as handle:
        head = handle.read(64)
    suffix = path.suffix.lower()
    hint = ""
    if head.startswith(b"PAR1"):
        records, hint = read_arrow(path, limit, parquet=True)
    elif head.startswith((b"ARROW1", b"FEA1")) or suffix in (".feather", ".arrow", ".ipc"):
        records, hint = read_arrow(path, limit, parquet=False)
    elif suffix == ".json" or head.lstrip().startswith(b"["):
        records = read_json(path, limit)
    else:
        records = read_csv(path, limit)
    return build_series(path, records, hint)


def write_parquet(series: BarSeries, path: Path) -> None:
    """Write ``series`` to Parquet: ns UTC ``timestamp`` plus OHLCV as exact decimal strings."""
    from tradewire_datafeed.readers_arrow import write_parquet as write

    write(series, Path(path))


def to_bars(series: BarSeries, instrument_id: str, *, interval: str | None = None) -> list[Bar]:
    """``Bar`` messages for ``series``; ids are derived, so a re-read yields the same ids."""
    interval = interval or series.interval
    if not interval:
        raise ValueError(f"{series.path}: the interval cannot be inferred from one bar; pass interval=")
    parse_interval(interval)
    try:
        msgspec.convert(instrument_id, type=InstrumentId)
    except msgspec.ValidationError as exc:
        raise ValueError(f"invalid instrument id {instrument_id!r}: {exc}") from None
    bars: list[Bar] = []
    for seq, record in enumerate(series.records):
        bar_id = derive_id("bar", instrument_id, interval, record.ts_event)
        bars.append(
            Bar(
                id=bar_id,
                ts_event=record.ts_event,
                ts_init=record.ts_event,
                correlation_id=bar_id,
                instrument_id=instrument_id,
                interval=interval,
                open=record.open,
                high=record.high,
                low=record.low,
                close=record.close,
                volume=record.volume,
                seq=seq,
            )
        )
    return bars
