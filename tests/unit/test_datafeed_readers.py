"""Bar-file readers: every bundled file shape, interval inference, bad input, Parquet, gaps."""

from __future__ import annotations

import logging
import re
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from tradewire_common.ids import derive_id
from tradewire_datafeed.readers import (
    BarFileError,
    BarRecord,
    BarSeries,
    infer_interval,
    read_bar_file,
    to_bars,
    write_parquet,
)

DATA = Path(__file__).resolve().parents[2] / "data"
DEMO = DATA / "demo" / "btcusdt-perp-1m-2022-01.csv"
MINUTE = 60 * 10**9
DAY = 86_400 * 10**9
HEADER = "timestamp,open,high,low,close,volume\n"


def ns(text: str) -> int:
    """ISO text (UTC) to ns since the epoch, independently of the reader."""
    return pd.Timestamp(text, tz="UTC").value


def write(tmp_path: Path, text: str, name: str = "bars.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def minute_rows(count: int, start: str = "2024-01-01 00:00:00", skip: tuple[int, ...] = ()) -> str:
    first = pd.Timestamp(start)
    lines = []
    for i in range(count):
        if i in skip:
            continue
        lines.append(f"{first + pd.Timedelta(minutes=i)},10,11,9,10.5,1\n")
    return "".join(lines)


def read_error(path: Path) -> str:
    with pytest.raises(BarFileError) as info:
        read_bar_file(path)
    return str(info.value)


# --------------------------------------------------------------------------- bundled files

# path, rows (PROVENANCE.md), interval, first (ts, open, high, low, close, volume), last (ts, close, volume)
BUNDLED = [
    (
        "demo/btcusdt-perp-1m-2022-01.csv",
        45031,
        "1m",
        ("2021-12-31 23:01", "46319.0", "46385.0", "46319.0", "46377.0", "2300413.7295"),
        ("2022-02-01 05:31", "38544.0", "685906.9735"),
    ),
    (
        "ohlcv/backtesting.py/GOOG.csv",
        2148,
        "1d",
        ("2004-08-19", "100", "104.06", "95.96", "100.34", "22351900"),
        ("2013-03-01", "806.19", "2175400"),
    ),
    (
        "ohlcv/backtesting.py/BTCUSD.csv",
        156,
        "1M",
        ("2012-01-31", "4.58", "7.38", "3.8", "5.55", "2012.25343589"),
        ("2024-12-31", "93381.0", "25342.80228337"),
    ),
    (
        "ohlcv/backtesting.py/EURUSD.csv",
        5000,
        "1h",
        ("2017-04-19 09:00", "1.0716", "1.0722", "1.07083", "1.07219", "1413"),
        ("2018-02-07 15:00", "1.22904", "6143"),
    ),
    (
        "ohlcv/freqtrade/ETH_BTC-5m.feather",
        5760,
        "5m",
        ("2018-01-10 04:55", "0.0984", "0.0994766", "0.09828605", "0.0994766", "1820.54447418"),
        # float64 in the file: repr() keeps the double's shortest form, artefacts included
        ("2018-01-30 04:50", "0.10441057000000001", "31.94851561"),
    ),
    (
        "ohlcv/freqtrade/UNITTEST_BTC-1m.json",
        13681,
        "1m",
        ("2017-11-04 23:02", "0.00162008", "0.00162008", "0.00162008", "0.00162008", "108.14853839"),
        ("2017-11-14 22:59", "0.00270002", "1.94577668"),
    ),
    (
        "ohlcv/nautilus_trader/ADABTC-1m-2021-11-27.csv",
        10,
        "1m",
        ("2021-11-27 00:00", "0.00002853", "0.00002854", "0.00002851", "0.00002854", "36304.20000000"),
        ("2021-11-27 00:09", "0.00002865", "8160.50000000"),
    ),
    (
        "ohlcv/backtrader/orcl-1995-2014.csv",
        5036,
        "1d",
        ("1995-01-03", "2.179012", "2.191358", "2.117284", "2.117284", "36301200"),
        ("2014-12-31", "44.970001", "13269200"),
    ),
    (
        "ohlcv/backtrader/2006-min-005.csv",
        2142,
        "5m",
        ("2006-01-02 09:05", "3578.73", "3587.88", "3578.73", "3582.99", "0"),
        ("2006-01-30 17:30", "3677.52", "0"),
    ),
    (
        "ohlcv/backtrader/2006-01-02-volume-min-001.csv",
        30889,
        "1m",
        ("2006-01-02 09:01", "3602.00", "3603.00", "3597.00", "3599.00", "5699"),
        ("2006-02-27 22:00", "3838.00", "327"),
    ),
]


@pytest.mark.parametrize(("name", "rows", "interval", "first", "last"), BUNDLED, ids=[b[0] for b in BUNDLED])
def test_every_bundled_file_reads_with_its_row_count_interval_and_exact_values(
    name: str, rows: int, interval: str, first: tuple[str, ...], last: tuple[str, ...]
) -> None:
    series = read_bar_file(DATA / name)

    assert len(series.records) == rows
    assert series.interval == interval
    assert series.path == DATA / name
    head, tail = series.records[0], series.records[-1]
    assert head.ts_event == ns(first[0])
    # the exact text of the file survives (no float rounding): compare the Decimal strings
    assert [str(v) for v in (head.open, head.high, head.low, head.close, head.volume)] == list(first[1:])
    assert (tail.ts_event, str(tail.close), str(tail.volume)) == (ns(last[0]), last[1], last[2])
    assert all(isinstance(v, Decimal) for v in (head.open, head.high, head.low, head.close, head.volume))
    assert all(a.ts_event < b.ts_event for a, b in zip(series.records, series.records[1:], strict=False))


def _provenance_row_counts() -> dict[str, int]:
    """``file name -> rows`` from the tables of data/PROVENANCE.md."""
    counts: dict[str, int] = {}
    columns: list[str] = []
    for line in (DATA / "PROVENANCE.md").read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            columns = []
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if not columns:
            columns = cells
        elif "file" in columns and "rows" in columns and not set(cells[0]) <= {"-"}:
            counts[cells[columns.index("file")].strip("`")] = int(cells[columns.index("rows")])
    return counts


def test_every_data_file_is_in_provenance_and_reads_with_the_documented_row_count() -> None:
    counts = _provenance_row_counts()
    # data/prediction/ has its own PROVENANCE.md and checks (tests/integration/test_prediction_backtest.py)
    files = sorted(p for p in DATA.rglob("*")
                   if p.is_file() and p.name != "PROVENANCE.md" and p.relative_to(DATA).parts[0] != "prediction")

    assert sorted(p.name for p in files) == sorted(counts)
    assert len(files) == len(BUNDLED)
    for path in files:
        assert len(read_bar_file(path).records) == counts[path.name], path


def test_limit_reads_only_the_first_bars() -> None:
    series = read_bar_file(DEMO, limit=100)

    assert len(series.records) == 100
    assert series.records[0].ts_event == ns("2021-12-31 23:01")
    assert series.records[-1].ts_event == ns("2021-12-31 23:01") + 99 * MINUTE
    assert len(read_bar_file(DATA / "ohlcv/freqtrade/ETH_BTC-5m.feather", limit=7).records) == 7
    assert len(read_bar_file(DATA / "ohlcv/freqtrade/UNITTEST_BTC-1m.json", limit=3).records) == 3


def test_demo_file_has_no_gaps_and_the_unittest_json_reports_its_missing_minutes() -> None:
    assert read_bar_file(DEMO).gaps == []
    series = read_bar_file(DATA / "ohlcv/freqtrade/UNITTEST_BTC-1m.json")
    assert len(series.gaps) == 538
    assert all(after - before > MINUTE for before, after in series.gaps)


# --------------------------------------------------------------------------- shapes and timestamps


@pytest.mark.parametrize(
    "header",
    [
        "timestamp,open,high,low,close,volume",
        "Timestamp_UTC,Open,High,Low,Close,Volume",
        "DATETIME,OPEN,HIGH,LOW,CLOSE,VOLUME",
        "date,open,high,low,close,volume",
        "Time,Open,High,Low,Close,Volume",
        "open_time,open,high,low,close,volume",
        ",Open,High,Low,Close,Volume",
        "Date,Open,High,Low,Close,Adj Close,Volume,OpenInterest",
    ],
)
def test_header_names_are_matched_in_any_case_and_extra_columns_are_ignored(tmp_path: Path, header: str) -> None:
    adj = "99," if "Adj Close" in header else ""
    oi = ",7" if "OpenInterest" in header else ""
    rows = f"2024-01-01 00:00:00,1.5,2.5,1.0,2.0,{adj}10{oi}\n2024-01-01 00:01:00,2.0,3.0,2.0,3.0,{adj}20{oi}"
    series = read_bar_file(write(tmp_path, f"{header}\n{rows}\n"))

    first = series.records[0]
    assert first == BarRecord(
        ns("2024-01-01"), Decimal("1.5"), Decimal("2.5"), Decimal("1.0"), Decimal("2.0"), Decimal("10")
    )
    assert series.interval == "1m"


def test_separate_date_and_time_columns_are_joined(tmp_path: Path) -> None:
    text = "Date,Time,Open,High,Low,Close,Volume\n2006-01-02,09:05:00,1,2,1,2,0\n"
    text += "2006-01-02,09:10:00,2,2,1,1,5\n"
    series = read_bar_file(write(tmp_path, text))

    assert [r.ts_event for r in series.records] == [ns("2006-01-02 09:05"), ns("2006-01-02 09:10")]
    assert series.interval == "5m"


def test_missing_volume_column_gives_zero_volume(tmp_path: Path) -> None:
    text = "timestamp,open,high,low,close\n2012-02-01 00:00:00+00:00,1.57597,1.57606,1.57576,1.57576\n"
    series = read_bar_file(write(tmp_path, text))

    assert series.records[0].volume == Decimal(0)
    assert series.records[0].low == Decimal("1.57576")


@pytest.mark.parametrize(
    "stamp",
    [
        "2024-01-01 00:01:00",
        "2024-01-01T00:01:00Z",
        "2024-01-01T00:01:00.000000000Z",
        "2024-01-01 01:01:00+01:00",
        "2023-12-31T19:01:00-05:00",
        "1704067260",
        "1704067260000",
        "1704067260000000",
        "1704067260000000000",
    ],
)
def test_timestamps_as_iso_text_or_epoch_numbers_of_any_unit_mean_the_same_instant(tmp_path: Path, stamp: str) -> None:
    series = read_bar_file(write(tmp_path, f"{HEADER}{stamp},1,1,1,1,1\n"))

    assert series.records[0].ts_event == ns("2024-01-01 00:01")


def test_nanosecond_fractions_are_kept(tmp_path: Path) -> None:
    series = read_bar_file(write(tmp_path, f"{HEADER}2024-01-01T00:00:00.123456789Z,1,1,1,1,1\n"))

    assert series.records[0].ts_event == ns("2024-01-01") + 123_456_789


def test_headerless_binance_klines_use_the_open_time_in_ms(tmp_path: Path) -> None:
    text = (
        "1637971200000,0.00002853,0.00002854,0.00002851,0.00002854,36304.2,1637971259999,1.03,79,19523.0,0.55,0\n"
        "1637971260000,0.00002854,0.00002860,0.00002854,0.00002859,89196.6,1637971319999,2.54,98,59004.2,1.68,0\n"
    )
    series = read_bar_file(write(tmp_path, text))

    assert [r.ts_event for r in series.records] == [1637971200000 * 10**6, 1637971260000 * 10**6]
    assert str(series.records[1].high) == "0.00002860"


def test_freqtrade_json_numbers_are_parsed_from_their_text(tmp_path: Path) -> None:
    text = "[[1509836520000, 0.1, 0.30000000000000004, 0.1, 0.2, 108.14853839]]"
    series = read_bar_file(write(tmp_path, text, "pair-1m.json"))

    assert str(series.records[0].high) == "0.30000000000000004"
    assert series.records[0].open == Decimal("0.1")


def test_feather_float_columns_are_converted_via_their_shortest_repr(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(["2024-01-01 00:00", "2024-01-01 00:05"], utc=True),
            "open": [0.1, 0.2],
            "high": [0.3, 0.3],
            "low": [0.1, 0.1 + 0.2 - 0.2],
            "close": [0.2, 0.3],
            "volume": [1.5, 2.0],
        }
    )
    path = tmp_path / "PAIR-5m.feather"
    frame.to_feather(path)
    series = read_bar_file(path)

    assert series.records[0].open == Decimal("0.1")
    assert str(series.records[1].low) == repr(0.1 + 0.2 - 0.2)
    assert series.interval == "5m"


@pytest.mark.parametrize("index_name", [None, "date", "ts_open"])
def test_parquet_with_the_time_as_pandas_index_is_read(tmp_path: Path, index_name: str | None) -> None:
    index = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 01:00"], name=index_name)  # naive = UTC
    frame = pd.DataFrame({"Open": [1.0, 2.0], "High": [2, 3], "Low": [1, 2], "Close": [2, 3]}, index=index)
    path = tmp_path / "bars.parquet"
    frame.to_parquet(path, engine="pyarrow")
    series = read_bar_file(path)

    assert [r.ts_event for r in series.records] == [ns("2024-01-01 00:00"), ns("2024-01-01 01:00")]
    assert series.interval == "1h"
    assert series.records[1] == BarRecord(ns("2024-01-01 01:00"), *map(Decimal, "2323"), Decimal(0))


def test_parquet_with_epoch_ms_and_decimal_columns_is_read(tmp_path: Path) -> None:
    table = pa.table(
        {
            "timestamp": pa.array([1704067200000, 1704067260000], pa.int64()),
            "open": pa.array([Decimal("1.10"), Decimal("1.20")], pa.decimal128(10, 2)),
            "high": pa.array([Decimal("1.30"), Decimal("1.30")], pa.decimal128(10, 2)),
            "low": pa.array([Decimal("1.00"), Decimal("1.10")], pa.decimal128(10, 2)),
            "close": pa.array([Decimal("1.20"), Decimal("1.30")], pa.decimal128(10, 2)),
            "volume": pa.array([5, 6], pa.int64()),
        }
    )
    path = tmp_path / "bars.parquet"
    pq.write_table(table, path)
    series = read_bar_file(path)

    assert series.records[0].ts_event == ns("2024-01-01")
    assert str(series.records[0].open) == "1.10"


# --------------------------------------------------------------------------- interval inference


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (MINUTE, "1m"),
        (5 * MINUTE, "5m"),
        (60 * MINUTE, "1h"),
        (4 * 60 * MINUTE, "4h"),
        (DAY, "1d"),
        (7 * DAY, "1w"),
        (90 * 10**9, "90s"),
        (250 * 10**6, "250ms"),
    ],
)
def test_interval_is_the_most_common_step_in_the_largest_whole_unit(step: int, expected: str) -> None:
    start = ns("2024-01-01")
    stamps = [start + i * step for i in range(10)] + [start + 20 * step]  # one gap does not change it

    assert infer_interval(stamps) == expected


def test_month_end_and_business_month_end_labels_are_monthly() -> None:
    month_ends = [ns(str(pd.Timestamp(f"2006-{m:02d}-01") + pd.offsets.MonthEnd(1))) for m in range(1, 13)]
    business = [ns(str(pd.Timestamp(f"2006-{m:02d}-01") + pd.offsets.BMonthEnd(1))) for m in range(1, 13)]

    assert infer_interval(month_ends) == "1M"
    assert infer_interval(business) == "1M"
    assert infer_interval([ns("2024-01-01") + i * 28 * DAY for i in range(6)]) == "4w"  # not monthly


def test_a_single_bar_has_no_interval_and_to_bars_then_needs_one(tmp_path: Path) -> None:
    series = read_bar_file(write(tmp_path, f"{HEADER}2024-01-01,1,1,1,1,1\n"))

    assert series.interval == ""
    with pytest.raises(ValueError, match="interval"):
        to_bars(series, "BTCUSDT.BINANCE")
    assert to_bars(series, "BTCUSDT.BINANCE", interval="1d")[0].interval == "1d"


# --------------------------------------------------------------------------- bad input


def assert_names(message: str, path: Path, row: int, column: str) -> None:
    assert str(path) in message
    assert re.search(rf"\brow {row}\b", message), message
    assert repr(column) in message, message


def test_unsorted_timestamps_are_rejected_with_file_and_row(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + minute_rows(3) + "2023-12-31 23:59:00,1,1,1,1,1\n")
    message = read_error(path)

    assert_names(message, path, 4, "timestamp")
    assert "line 5" in message
    assert "out of order" in message


def test_duplicate_timestamps_are_rejected_with_file_and_row(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + minute_rows(2) + "2024-01-01 00:01:00,10,11,9,10.5,1\n")
    message = read_error(path)

    assert_names(message, path, 3, "timestamp")
    assert "duplicate" in message


@pytest.mark.parametrize(
    ("row", "column", "needle"),
    [
        ("abc,11,9,10,1", "open", "not a number"),
        ("10,NaN,9,10,1", "high", "finite"),
        ("10,11,-inf,10,1", "low", "finite"),
        ("10,11,9,,1", "close", "not a number"),
        ("0,11,9,10,1", "open", "positive"),
        ("10,11,-9,10,1", "low", "positive"),
        ("10,11,9,10,-1", "volume", "negative"),
        ("10,11,9,10,x", "volume", "not a number"),
        ("10,8,9,9,1", "high", "below low"),
        ("12,11,9,10,1", "high", "below open"),
        ("10,11,9,11.5,1", "high", "below open"),
        ("9,11,9.5,10,1", "low", "above open"),
        ("10,11,9,8,1", "low", "above open"),
    ],
)
def test_bad_prices_and_volumes_are_rejected_with_file_row_and_column(
    tmp_path: Path, row: str, column: str, needle: str
) -> None:
    path = write(tmp_path, HEADER + minute_rows(2) + f"2024-01-01 00:02:00,{row}\n")
    message = read_error(path)

    assert_names(message, path, 3, column)
    assert needle in message


def test_bad_values_name_the_files_own_column_names(tmp_path: Path) -> None:
    path = write(tmp_path, ",Open,High,Low,Close,Volume\n2024-01-01,1,0.5,1,1,1\n")

    assert_names(read_error(path), path, 1, "High")


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        ("timestamp,open,high,low,volume", "close"),
        ("timestamp,Open,High,Close,Volume", "low"),
        ("when,open,high,low,close,volume", "timestamp"),
    ],
)
def test_missing_required_columns_are_rejected_naming_file_and_column(
    tmp_path: Path, header: str, missing: str
) -> None:
    path = write(tmp_path, f"{header}\n2024-01-01,1,1,1,1\n")
    message = read_error(path)

    assert str(path) in message
    assert f"missing required column(s) {missing!r}" in message


def test_rows_with_the_wrong_number_of_fields_are_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + minute_rows(1) + "2024-01-01 00:01:00,10,11,9\n")
    message = read_error(path)

    assert str(path) in message and "row 2" in message and "expected 6 fields, got 4" in message


@pytest.mark.parametrize(
    ("stamp", "needle"),
    [
        ("yesterday", "not a timestamp"),
        ("2024-02-30", "invalid date"),
        ("2024-01-01 25:00:00", "invalid time"),
        ("20240101", "YYYYMMDD"),
    ],
)
def test_bad_timestamps_are_rejected_with_file_row_and_column(tmp_path: Path, stamp: str, needle: str) -> None:
    path = write(tmp_path, f"{HEADER}{stamp},1,1,1,1,1\n")
    message = read_error(path)

    assert_names(message, path, 1, "timestamp")
    assert needle in message


def test_epoch_unit_changing_mid_file_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}1704067200000,1,1,1,1,1\n1704067260,1,1,1,1,1\n")

    assert_names(read_error(path), path, 2, "timestamp")


def test_unreadable_or_too_narrow_csv_files_are_rejected(tmp_path: Path) -> None:
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"timestamp,open\n\xff\xfe,1\n")

    assert str(binary) in read_error(binary)
    assert "too few fields" in read_error(write(tmp_path, "2024-01-01,09:00:00,1,1,1\n", "narrow.csv"))


def test_empty_files_are_rejected(tmp_path: Path) -> None:
    assert "no bars" in read_error(write(tmp_path, ""))
    assert "no bars" in read_error(write(tmp_path, HEADER, "header-only.csv"))
    assert "no bars" in read_error(write(tmp_path, "[]", "empty.json"))


def test_bad_json_rows_are_rejected_with_file_and_row(tmp_path: Path) -> None:
    path = write(tmp_path, '[[1509836520000, 1, 1, 1, 1, 1], {"t": 1}]', "pair.json")
    message = read_error(path)

    assert str(path) in message and "row 2" in message


def test_json_nan_price_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "[[1509836520000, 1, NaN, 1, 1, 1]]", "pair.json")

    assert_names(read_error(path), path, 1, "high")


def test_nan_in_a_feather_price_column_is_rejected_with_file_row_and_column(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(["2024-01-01 00:00", "2024-01-01 00:05"], utc=True),
            "open": [1.0, 1.0],
            "high": [1.0, 1.0],
            "low": [1.0, 1.0],
            "close": [1.0, float("nan")],
            "volume": [1.0, 1.0],
        }
    )
    path = tmp_path / "bars.feather"
    frame.to_feather(path)

    assert_names(read_error(path), path, 2, "close")


def test_arrow_volume_with_some_nulls_is_rejected_but_all_null_volume_means_zero(tmp_path: Path) -> None:
    def table(volume: list[float | None]) -> pa.Table:
        return pa.table(
            {
                "date": pa.array([ns("2024-01-01"), ns("2024-01-02")], pa.timestamp("ns", tz="UTC")),
                "open": [1.0, 1.0],
                "high": [1.0, 1.0],
                "low": [1.0, 1.0],
                "close": [1.0, 1.0],
                "volume": pa.array(volume, pa.float64()),
            }
        )

    partial, empty = tmp_path / "partial.feather", tmp_path / "empty.feather"
    feather.write_feather(table([1.0, None]), partial)
    feather.write_feather(table([None, None]), empty)

    assert_names(read_error(partial), partial, 2, "volume")
    assert [r.volume for r in read_bar_file(empty).records] == [Decimal(0), Decimal(0)]


def test_a_file_that_is_not_parquet_inside_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bars.parquet"
    path.write_bytes(b"PAR1 this is not really parquet")

    assert str(path) in read_error(path)


# --------------------------------------------------------------------------- Parquet round trip


@pytest.mark.parametrize("name", ["demo/btcusdt-perp-1m-2022-01.csv", "ohlcv/freqtrade/ETH_BTC-5m.feather"])
def test_parquet_round_trip_is_exact(tmp_path: Path, name: str) -> None:
    series = read_bar_file(DATA / name)
    path = tmp_path / "bars.parquet"
    write_parquet(series, path)
    again = read_bar_file(path)

    assert again.records == series.records
    assert [str(r.close) for r in again.records] == [str(r.close) for r in series.records]
    assert (again.interval, again.gaps) == (series.interval, series.gaps)
    schema = pq.read_schema(path)
    assert schema.field("timestamp").type == pa.timestamp("ns", tz="UTC")
    assert {schema.field(n).type for n in ("open", "high", "low", "close", "volume")} == {pa.string()}
    assert not list(tmp_path.glob(".*.tmp"))


def test_parquet_keeps_the_interval_of_a_single_bar(tmp_path: Path) -> None:
    record = BarRecord(ns("2024-01-01"), *(Decimal("1.000000001"),) * 4, Decimal(0))
    path = tmp_path / "one.parquet"
    write_parquet(BarSeries(path=path, records=[record], interval="1h"), path)
    again = read_bar_file(path)

    assert again.records == [record]
    assert again.interval == "1h"


# --------------------------------------------------------------------------- gaps


def test_gaps_are_kept_as_is_and_reported_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, HEADER + minute_rows(10, skip=(3, 4, 7)))
    with caplog.at_level(logging.WARNING, logger="tradewire_datafeed.readers"):
        series = read_bar_file(path)

    start = ns("2024-01-01")
    assert len(series.records) == 7  # nothing filled in
    assert series.interval == "1m"
    assert series.gaps == [(start + 2 * MINUTE, start + 5 * MINUTE), (start + 6 * MINUTE, start + 8 * MINUTE)]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(path) in warnings[0].getMessage() and "2 gap(s)" in warnings[0].getMessage()


def test_a_series_without_gaps_logs_no_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tradewire_datafeed.readers"):
        series = read_bar_file(write(tmp_path, HEADER + minute_rows(5)))

    assert series.gaps == []
    assert not caplog.records


def test_monthly_and_weekly_gaps_are_whole_skipped_calendar_periods(tmp_path: Path) -> None:
    # month-end labels (28-31 days apart) are not gaps; a skipped month is
    months = ["2024-01-31", "2024-02-29", "2024-03-29", "2024-05-31", "2024-06-28"]
    monthly = read_bar_file(write(tmp_path, HEADER + "".join(f"{d},1,1,1,1,1\n" for d in months), "m.csv"))
    # a Thursday label in a holiday week is not a gap; a skipped week is
    weeks = ["2024-03-08", "2024-03-15", "2024-03-21", "2024-03-29", "2024-04-12", "2024-04-19"]
    weekly = read_bar_file(write(tmp_path, HEADER + "".join(f"{d},1,1,1,1,1\n" for d in weeks), "w.csv"))

    assert monthly.interval == "1M"
    assert monthly.gaps == [(ns("2024-03-29"), ns("2024-05-31"))]
    assert weekly.interval == "1w"
    assert weekly.gaps == [(ns("2024-03-29"), ns("2024-04-12"))]


def test_daily_stock_data_reports_weekends_as_gaps() -> None:
    series = read_bar_file(DATA / "ohlcv/backtesting.py/GOOG.csv")

    assert (ns("2004-08-20"), ns("2004-08-23")) in series.gaps


# --------------------------------------------------------------------------- to_bars


def test_to_bars_builds_bar_messages_with_derived_ids_and_sequence() -> None:
    series = read_bar_file(DEMO, limit=3)
    bars = to_bars(series, "BTCUSDT.BINANCE")

    assert [b.seq for b in bars] == [0, 1, 2]
    first = bars[0]
    assert first.id == derive_id("bar", "BTCUSDT.BINANCE", "1m", ns("2021-12-31 23:01"))
    assert first.correlation_id == first.id
    assert first.ts_event == first.ts_init == ns("2021-12-31 23:01")
    assert (first.instrument_id, first.interval) == ("BTCUSDT.BINANCE", "1m")
    assert (first.open, first.high, first.low, first.close) == tuple(
        map(Decimal, ("46319.0", "46385.0", "46319.0", "46377.0"))
    )
    assert first.volume == Decimal("2300413.7295")
    assert to_bars(series, "BTCUSDT.BINANCE") == bars  # deterministic ids across re-reads
    assert to_bars(series, "BTCUSDT.BINANCE", interval="60s")[0].id != first.id


def test_to_bars_rejects_a_malformed_instrument_id_or_interval() -> None:
    series = read_bar_file(DEMO, limit=2)

    with pytest.raises(ValueError, match="instrument id"):
        to_bars(series, "btcusdt")
    with pytest.raises(ValueError, match="interval"):
        to_bars(series, "BTCUSDT.BINANCE", interval="1 minute")
