"""CSV and JSON bar files (text formats); see ``readers`` for the formats and the rules."""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tradewire_datafeed.readers import (
    TIME_OF_DAY,
    VALUE_COLUMNS,
    BarFileError,
    BarRecord,
    RecordBuilder,
    TimestampParser,
)

#: Names of a column holding the full timestamp, in order of preference (after normalising).
TIMESTAMP_NAMES = ("timestamp", "timestamp_utc", "datetime", "date_time", "open_time", "ts_event", "ts")
_ALIASES = {"vol": "volume"}


def normalise(name: str) -> str:
    """``" Adj Close"`` -> ``"adj_close"``, ``"<OPEN>"`` -> ``"open"``, ``"Unnamed: 0"`` -> ``""``."""
    name = name.strip().strip("<>").lower().replace(" ", "_").replace("-", "_")
    if name.startswith("unnamed:"):
        return ""
    return _ALIASES.get(name, name)


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the fields of a data row are."""

    fields: int
    #: One index, or two (date, time of day) joined with a space.
    ts: tuple[int, ...]
    ts_name: str
    #: Indices of open, high, low, close and optionally volume.
    values: tuple[int, ...]
    names: tuple[str, ...]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _looks_like_data(fields: list[str]) -> bool:
    """Whether the first row is data (headerless file) rather than a header."""
    if len(fields) < 5:
        return False
    try:
        TimestampParser().parse(fields[0])
    except ValueError:
        return False
    first_value = 2 if TIME_OF_DAY.fullmatch(fields[1].strip()) else 1
    return _is_number(fields[first_value])


def _headerless_layout(path: Path, first: list[str]) -> Layout:
    start = 2 if TIME_OF_DAY.fullmatch(first[1].strip()) else 1
    count = min(5, len(first) - start)
    if count < 4:
        raise BarFileError(f"{path}: row 1 (line 1): headerless file with too few fields for time + OHLC")
    return Layout(
        fields=len(first),
        ts=tuple(range(start)),
        ts_name="column 1" if start == 1 else "columns 1-2",
        values=tuple(range(start, start + count)),
        names=VALUE_COLUMNS[:count],
    )


def _header_layout(path: Path, header: list[str], first: list[str] | None) -> Layout:
    names = [normalise(h) for h in header]
    # backtrader: "Date,Open,...": rows hold Date, Time, Open... (one field more than the header).
    if (
        "date" in names
        and "time" not in names
        and first is not None
        and len(first) == len(header) + 1
        and TIME_OF_DAY.fullmatch(first[names.index("date") + 1].strip())
    ):
        after = names.index("date") + 1
        names.insert(after, "time")
        header = [*header[:after], "(time)", *header[after:]]
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in index and name in (*TIMESTAMP_NAMES, "date", "time", *VALUE_COLUMNS):
            raise BarFileError(f"{path}: header (line 1): column {header[i]!r} appears twice")
        index.setdefault(name, i)

    def is_time_of_day(i: int) -> bool:
        return first is not None and i < len(first) and TIME_OF_DAY.fullmatch(first[i].strip()) is not None

    ts: tuple[int, ...] = ()
    for name in TIMESTAMP_NAMES:
        if name in index:
            ts = (index[name],)
            break
    else:
        if "date" in index and "time" in index and is_time_of_day(index["time"]):
            ts = (index["date"], index["time"])
        elif "date" in index:
            ts = (index["date"],)
        elif "time" in index:
            ts = (index["time"],)
        elif names and names[0] == "":
            ts = (0,)
    missing = [n for n in VALUE_COLUMNS[:4] if n not in index]
    if not ts:
        missing.insert(0, "timestamp")
    if missing:
        raise BarFileError(
            f"{path}: header (line 1): missing required column(s) {', '.join(map(repr, missing))}"
            f" (found {', '.join(map(repr, header))})"
        )
    wanted = VALUE_COLUMNS if "volume" in index else VALUE_COLUMNS[:4]
    return Layout(
        fields=len(names),
        ts=ts,
        ts_name="+".join(header[i] or "(index)" for i in ts),
        values=tuple(index[n] for n in wanted),
        names=tuple(header[index[n]] for n in wanted),
    )


def _delimiter(first_line: str) -> str:
    for candidate in (",", ";", "\t", "|"):
        if candidate in first_line:
            return candidate
    return ","


def read_csv(path: Path, limit: int) -> list[BarRecord]:
    try:
        return _read_csv(path, limit)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BarFileError(f"{path}: not a readable CSV text file: {exc}") from None


def _read_csv(path: Path, limit: int) -> list[BarRecord]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        delimiter = _delimiter(handle.readline())
        handle.seek(0)
        reader = csv.reader(handle, delimiter=delimiter)
        rows: Iterator[list[str]] = (fields for fields in reader if fields)
        first = next(rows, None)
        if first is None:
            raise BarFileError(f"{path}: no bars in the file")
        if _looks_like_data(first):
            layout = _headerless_layout(path, first)
            rows = itertools.chain([first], rows)
        else:
            peek = next(rows, None)
            layout = _header_layout(path, first, peek)
            if peek is None:
                raise BarFileError(f"{path}: no bars in the file")
            rows = itertools.chain([peek], rows)
        builder = RecordBuilder(path, layout.ts_name, layout.names)
        ts_index, values = layout.ts, layout.values
        single = ts_index[0] if len(ts_index) == 1 else -1
        for row, fields in enumerate(rows, 1):
            line = reader.line_num  # the peeked row is yielded before the reader moves on
            if len(fields) != layout.fields:
                raise builder.error(f"expected {layout.fields} fields, got {len(fields)}", row, line=line)
            text = fields[single] if single >= 0 else " ".join(fields[i] for i in ts_index)
            builder.add(row, builder.timestamp(row, text, line), [fields[i] for i in values], line)
            if row == limit:
                break
    return builder.records


def read_json(path: Path, limit: int) -> list[BarRecord]:
    """freqtrade's ``[[ms, open, high, low, close, volume], ...]``; numbers are kept as text."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"), parse_float=str, parse_constant=str)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BarFileError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise BarFileError(f"{path}: expected a JSON list of [timestamp, open, high, low, close, volume]")
    builder = RecordBuilder(path, "timestamp")
    for row, item in enumerate(data, 1):
        if not isinstance(item, list) or len(item) < 5 or isinstance(item[0], bool | list | dict | None):
            raise builder.error("expected [timestamp, open, high, low, close, volume]", row)
        builder.add(row, builder.timestamp(row, str(item[0])), item[1:6])
        if row == limit:
            break
    return builder.records
