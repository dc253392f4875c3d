"""``tradewire markets`` against the fake Manifold on 127.0.0.1: search with its filters (table and JSON), a book,
and history -> probability bars in the Parquet catalog (read back by the backtester's reader) with the resolution
saved beside them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.fakes.manifold_fake import ManifoldFake, manifold_fake
from tradewire_common.cli.main import main
from tradewire_datafeed.catalog import Catalog
from tradewire_datafeed.prediction import PricePoint
from tradewire_datafeed.prediction.cli import probability_bars, read_resolution, resolution_path

pytestmark = pytest.mark.timeout(30)

JAN_2024 = 1_704_067_200_000  # 2024-01-01T00:00:00Z in ms
OTHER = "someoneElseUserId0001"


@pytest.fixture
def fake() -> Iterator[ManifoldFake]:
    with manifold_fake() as venue:
        venue.add_market("paris", "Will rain fall in Paris?", volume=500, liquidity=200, close_time=1_893_456_000_000)
        venue.add_market("rome", "Will rain fall in Rome?", volume=50, liquidity=100, close_time=1_798_761_600_000)
        venue.add_market("snow", "Will snow fall?", volume=1000, liquidity=300)
        venue.add_market("oldrain", "Did rain fall in 2023?", volume=900, liquidity=100)
        venue.resolve("oldrain", "YES")
        yield venue


def search(fake: ManifoldFake, capsys: pytest.CaptureFixture[str], *extra: str) -> list[str]:
    assert main(["markets", "search", "--venue", "manifold", "--url", fake.url, "--query", "rain", "--json",
                 *extra]) == 0
    return [m["market_id"] for m in json.loads(capsys.readouterr().out)]


def test_search_filters_by_text_volume_liquidity_end_date_and_open_markets(
    fake: ManifoldFake, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sorted(search(fake, capsys)) == ["paris", "rome"]  # "snow" does not match, "oldrain" is resolved
    assert sorted(search(fake, capsys, "--include-closed")) == ["oldrain", "paris", "rome"]
    assert search(fake, capsys, "--min-volume", "100") == ["paris"]
    assert search(fake, capsys, "--min-liquidity", "150") == ["paris"]
    assert search(fake, capsys, "--ends-before", "2028-01-01") == ["rome"]
    assert search(fake, capsys, "--ends-after", "2028-01-01", "--ends-before", "2031-01-01") == ["paris"]
    assert len(search(fake, capsys, "--limit", "1")) == 1


def test_search_json_carries_the_outcome_instruments_and_decimal_text(
    fake: ManifoldFake, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["markets", "search", "--venue", "manifold", "--url", fake.url, "--query", "Paris", "--json"]) == 0
    (paris,) = json.loads(capsys.readouterr().out)
    assert paris["question"] == "Will rain fall in Paris?" and paris["volume"] == "500"
    assert paris["end"] == "2030-01-01T00:00:00Z"
    assert [(o["label"], o["instrument_id"]) for o in paris["outcomes"]] == [
        ("YES", "paris-YES.MANIFOLD"), ("NO", "paris-NO.MANIFOLD")]
    assert Decimal(paris["outcomes"][0]["price"]) + Decimal(paris["outcomes"][1]["price"]) == 1


def test_search_prints_a_table_without_json(fake: ManifoldFake, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich's width where there is no terminal
    assert main(["markets", "search", "--venue", "manifold", "--url", fake.url, "--query", "Rome"]) == 0
    out = capsys.readouterr().out
    assert "Will rain fall in Rome?" in out and "rome" in out and "YES 0.500" in out


def test_book_shows_the_pool_and_resting_limit_bets(fake: ManifoldFake, capsys: pytest.CaptureFixture[str]) -> None:
    fake.place(OTHER, "paris", "YES", 20.0, 0.30)  # a resting YES bid at .30: 66.67 shares
    assert main(["markets", "book", "--venue", "manifold", "--url", fake.url, "--market", "paris", "--depth", "30",
                 "--json"]) == 0
    book = json.loads(capsys.readouterr().out)
    assert book["instrument_id"] == "paris-YES.MANIFOLD"
    assert book["bids"][0][0] == "0.49" and book["asks"][0][0] == "0.51"
    at_30 = next(size for price, size in book["bids"] if Decimal(price) == Decimal("0.3"))
    assert Decimal(at_30) > Decimal("66.666666")  # the pool's slice at .30 plus the bet's shares
    assert main(["markets", "book", "--venue", "manifold", "--url", fake.url, "--market", "paris", "--outcome",
                 "maybe"]) == 2
    assert "has no outcome 'maybe'" in capsys.readouterr().err


def test_probability_bars_take_ohlc_from_the_points_and_carry_the_close_over_empty_intervals() -> None:
    minute = 60_000_000_000
    points = [PricePoint(0, Decimal("0.5")), PricePoint(10, Decimal("0.6")), PricePoint(20, Decimal("0.4")),
              PricePoint(30, Decimal("0.55")), PricePoint(2 * minute + 5, Decimal("0.7"))]
    bars = probability_bars(points, minute)
    assert [(b.ts_event, b.open, b.high, b.low, b.close, b.volume) for b in bars] == [
        (0, Decimal("0.5"), Decimal("0.6"), Decimal("0.4"), Decimal("0.55"), 0),
        (minute, Decimal("0.55"), Decimal("0.55"), Decimal("0.55"), Decimal("0.55"), 0),
        (2 * minute, Decimal("0.7"), Decimal("0.7"), Decimal("0.7"), Decimal("0.7"), 0)]


def test_history_writes_probability_bars_the_backtester_reads_and_the_resolution_beside_them(
    fake: ManifoldFake, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tradewire_backtest.arrays import BarArrays

    bets = [fake.place(OTHER, "paris", outcome, amount) for outcome, amount in
            (("YES", 10.0), ("YES", 30.0), ("NO", 25.0), ("YES", 5.0))]
    for bet, offset_s in zip(bets, (-3600, 10, 50, 150), strict=True):
        bet.created = JAN_2024 + offset_s * 1000  # one before the period, two in its first minute, one at 00:02:30
    fake.resolve("paris", "MKT", 0.62)
    monkeypatch.setenv("TRADEWIRE_CATALOG", str(tmp_path))
    assert main(["markets", "history", "--venue", "manifold", "--url", fake.url, "--market", "paris", "--outcome",
                 "YES", "--since", "2024-01-01T00:00:00Z", "--until", "2024-01-01T01:00:00Z"]) == 0
    assert "catalog:paris-YES.MANIFOLD/1m: 3 probability bars" in capsys.readouterr().out

    arrays = BarArrays.from_file("catalog:paris-YES.MANIFOLD/1m")
    p = [b.prob_after for b in bets]
    minute_ns = 60_000_000_000
    assert list(arrays.ts) == [JAN_2024 * 1_000_000 + i * minute_ns for i in range(3)]
    assert list(arrays.open) == [p[0], p[2], p[3]]  # opens with the last point before the period
    assert list(arrays.high) == [max(p[:3]), p[2], p[3]] and list(arrays.low) == [min(p[:3]), p[2], p[3]]
    assert list(arrays.close) == [p[2], p[2], p[3]] and list(arrays.volume) == [0, 0, 0]

    catalog = Catalog(tmp_path)
    resolved = read_resolution(catalog, "paris-YES.MANIFOLD", "1m")
    assert resolution_path(catalog, "paris-YES.MANIFOLD", "1m").name == "1m.resolution.json"
    assert resolved is not None and resolved.resolution == "MKT" and resolved.market_id == "paris"
    assert [str(o.payout) for o in resolved.payouts] == ["0.62", "0.38"]
    assert resolved.ts_event == fake.markets["paris"].resolution_time * 1_000_000  # type: ignore[operator]
    records = catalog.read("paris-YES.MANIFOLD", "1m").records
    assert records[0].close == Decimal(repr(p[2]))  # exact decimal text, not a float's rounding

    # a replay of the entry publishes the saved resolution after its last bar
    from tradewire_common.bus import MemoryBroker, MemoryBus
    from tradewire_common.config import config_from_dict
    from tradewire_datafeed.service import DatafeedService

    replay = DatafeedService(config_from_dict({"datafeed": {"replay": [{
        "path": "catalog:paris-YES.MANIFOLD/1m", "instrument_id": "paris-YES.MANIFOLD", "interval": "1m",
        "resolution": str(resolution_path(catalog, "paris-YES.MANIFOLD", "1m"))}]}}), MemoryBus("t", MemoryBroker()))
    assert len(replay.bars) == 3 and [r.market_id for r in replay.resolutions] == ["paris"]

    assert main(["markets", "history", "--venue", "manifold", "--url", fake.url, "--market", "paris", "--outcome",
                 "NO", "--since", "2024-01-01T00:00:00Z", "--until", "2024-01-01T01:00:00Z"]) == 0
    no = catalog.read("paris-NO.MANIFOLD", "1m").records
    assert [r.close for r in no] == [1 - r.close for r in records]
    assert [r.high for r in no] == [1 - r.low for r in records]


def test_history_of_an_empty_period_fails_with_a_message(fake: ManifoldFake, capsys: pytest.CaptureFixture[str],
                                                         tmp_path: Path) -> None:
    assert main(["markets", "history", "--venue", "manifold", "--url", fake.url, "--market", "rome", "--outcome",
                 "YES", "--since", "2020-01-01", "--until", "2020-01-02", "--root", str(tmp_path)]) == 2
    assert "no price points of rome-YES.MANIFOLD" in capsys.readouterr().err
