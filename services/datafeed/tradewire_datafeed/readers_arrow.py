"""Feather/Arrow IPC and Parquet bar files; see ``readers`` for the formats and the rules."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq

from tradewire_datafeed.readers import (
    EPOCH_ORDINAL,
    NS_PER_DAY,
    VALUE_COLUMNS,
    BarFileError,
    BarRecord,
    RecordBuilder,
)
from tradewire_datafeed.readers_csv import TIMESTAMP_NAMES, normalise

if TYPE_CHECKING:
    from tradewire_datafeed.readers import BarSeries

log = logging.getLogger("tradewire_datafeed.readers")

#: Schema metadata key under which ``write_parquet`` keeps the interval.
INTERVAL_KEY = b"tradewire.interval"


def _timestamp_column(table: pa.Table) -> int | None:
    names = [normalise(n) for n in table.column_names]
    for name in (*TIMESTAMP_NAMES, "date", "time", "__index_level_0__"):
        if name in names:
            return names.index(name)
    # a named pandas index that is not one of the usual names
    pandas_meta = (table.schema.metadata or {}).get(b"pandas")
    if pandas_meta:
        for index_name in json.loads(pandas_meta).get("index_columns", []):
            if isinstance(index_name, str) and index_name in table.column_names:
                return int(table.column_names.index(index_name))
    return None


def _timestamps(builder: RecordBuilder, column: pa.ChunkedArray) -> list[int | None]:
    kind = column.type
    if pa.types.is_timestamp(kind):
        try:
            ns = column.cast(pa.timestamp("ns", tz=kind.tz)).cast(pa.int64())
        except pa.ArrowInvalid as exc:
            raise BarFileError(f"{builder.path}: column {builder.ts_column!r}: {exc}") from None
        return list(ns.to_pylist())
    if pa.types.is_date(kind):
        return [None if day is None else (day.toordinal() - EPOCH_ORDINAL) * NS_PER_DAY for day in column.to_pylist()]
    if pa.types.is_integer(kind):
        return [None if v is None else builder.epoch(row, v) for row, v in enumerate(column.to_pylist(), 1)]
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return [None if v is None else builder.timestamp(row, v) for row, v in enumerate(column.to_pylist(), 1)]
    raise BarFileError(f"{builder.path}: column {builder.ts_column!r}: unsupported timestamp type {kind}")


def read_arrow(path: Path, limit: int, *, parquet: bool) -> tuple[list[BarRecord], str]:
    """Records of a Parquet or Feather file, and the interval stored by ``write_parquet`` (or "")."""
    try:
        table = pq.read_table(path) if parquet else feather.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        kind = "Parquet" if parquet else "Feather/Arrow"
        raise BarFileError(f"{path}: cannot read as {kind}: {exc}") from None
    if limit:
        table = table.slice(0, limit)
    ts_index = _timestamp_column(table)
    names = [normalise(n) for n in table.column_names]
    missing = [n for n in VALUE_COLUMNS[:4] if n not in names]
    if ts_index is None:
        missing.insert(0, "timestamp")
    if missing:
        raise BarFileError(
            f"{path}: missing required column(s) {', '.join(map(repr, missing))}"
            f" (found {', '.join(map(repr, table.column_names))})"
        )
    assert ts_index is not None
    wanted = [n for n in VALUE_COLUMNS if n in names]
    builder = RecordBuilder(path, table.column_names[ts_index], [table.column_names[names.index(n)] for n in wanted])
    timestamps = _timestamps(builder, table.column(ts_index))
    columns: list[list[Any]] = [table.column(names.index(n)).to_pylist() for n in wanted]
    if len(columns) == 5 and columns[4] and all(v is None for v in columns[4]):
        log.warning("%s: volume column is empty (all null); volume taken as 0", path)
        columns.pop()
    for row, values in enumerate(zip(*columns, strict=True), 1):
        builder.add(row, timestamps[row - 1], values)
    metadata = table.schema.metadata or {}
    return builder.records, metadata.get(INTERVAL_KEY, b"").decode()


def write_parquet(series: BarSeries, path: Path) -> None:
    """Write ``series``: ``timestamp[ns, UTC]`` and OHLCV as ``str(Decimal)``, atomically."""
    records = series.records
    table = pa.table(
        {
            "timestamp": pa.array([r.ts_event for r in records], type=pa.timestamp("ns", tz="UTC")),
            "open": pa.array([str(r.open) for r in records], type=pa.string()),
            "high": pa.array([str(r.high) for r in records], type=pa.string()),
            "low": pa.array([str(r.low) for r in records], type=pa.string()),
            "close": pa.array([str(r.close) for r in records], type=pa.string()),
            "volume": pa.array([str(r.volume) for r in records], type=pa.string()),
        },
        metadata={INTERVAL_KEY: series.interval.encode()},
    )
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
