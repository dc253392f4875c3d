"""The Parquet catalog: one layout for bars, readable wherever a bar file is."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradewire_common.cli.main import main
from tradewire_datafeed.catalog import Catalog, parse_entry_name, read_source
from tradewire_datafeed.readers import read_bar_file

REPO = Path(__file__).resolve().parents[2]
GOOG = REPO / "data" / "ohlcv" / "backtesting.py" / "GOOG.csv"


def test_written_entry_reads_back_exactly_under_the_venue_symbol_interval_layout(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path)
    series = read_bar_file(GOOG)
    entry = catalog.write("GOOG.NASDAQ", series)
    assert entry.path == tmp_path / "bars" / "NASDAQ" / "GOOG" / "1d.parquet"
    back = catalog.read("GOOG.NASDAQ", "1d")
    assert back.records == series.records
    assert [e.name for e in catalog.entries()] == ["catalog:GOOG.NASDAQ/1d"]


def test_symbols_with_path_characters_are_escaped_and_listed_back(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path)
    entry = catalog.write("BTC/USD.KRAKEN", read_bar_file(GOOG, limit=40), "1d")
    assert "/" not in entry.path.parent.name
    assert [e.instrument_id for e in catalog.entries()] == ["BTC/USD.KRAKEN"]


def test_catalog_names_are_accepted_where_bar_files_are(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEWIRE_CATALOG", str(tmp_path))
    Catalog().write("GOOG.NASDAQ", read_bar_file(GOOG))
    assert len(read_source("catalog:GOOG.NASDAQ/1d", limit=100).records) == 100
    with pytest.raises(FileNotFoundError, match=r"catalog:GOOG\.NASDAQ/5m"):
        read_source("catalog:GOOG.NASDAQ/5m")
    with pytest.raises(ValueError, match=r"SYMBOL\.VENUE/interval"):
        parse_entry_name("catalog:GOOG")


def test_catalog_import_and_list_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog", "--root", str(tmp_path), "import", str(GOOG), "--instrument", "GOOG.NASDAQ"]) == 0
    assert "catalog:GOOG.NASDAQ/1d: 2148 bars" in capsys.readouterr().out
    assert main(["catalog", "--root", str(tmp_path), "list"]) == 0
    assert capsys.readouterr().out.startswith("catalog:GOOG.NASDAQ/1d\t")
    bad = tmp_path / "bad.csv"
    bad.write_text("date,open,high,low,close,volume\n2020-01-01,1,2,0.5,1,10\n2019-01-01,1,2,0.5,1,10\n")
    assert main(["catalog", "--root", str(tmp_path), "import", str(bad), "--instrument", "X.Y"]) == 2
    assert "row 2" in capsys.readouterr().err
