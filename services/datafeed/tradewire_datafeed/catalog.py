"""The Parquet data catalog: one layout for bars that the replay feed, the backtester and the
downloaders share.

Layout: ``{root}/bars/{VENUE}/{SYMBOL}/{interval}.parquet`` (symbol and venue escaped for the file
system), each file written by :func:`tradewire_datafeed.readers.write_parquet` (exact decimal text
columns, ns UTC timestamps). A catalog entry is named ``catalog:SYMBOL.VENUE/interval``; anywhere a
bar file path is accepted (``datafeed.replay.path``, ``tradewire backtest --data``) such a name
reads from the catalog under ``$TRADEWIRE_CATALOG`` (default ``var/catalog``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from tradewire_common.ids import split_instrument_id
from tradewire_datafeed.readers import BarSeries, read_bar_file, write_parquet

PREFIX = "catalog:"
DEFAULT_ROOT = Path("var/catalog")
_SAFE = re.compile(r"[^A-Za-z0-9_.\-]")


def _fs(token: str) -> str:
    return _SAFE.sub(lambda m: f"%{ord(m.group()):02X}", token)


@dataclass(frozen=True)
class CatalogEntry:
    instrument_id: str
    interval: str
    path: Path

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.instrument_id}/{self.interval}"


class Catalog:
    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root or os.environ.get("TRADEWIRE_CATALOG") or DEFAULT_ROOT)

    def path_for(self, instrument_id: str, interval: str) -> Path:
        symbol, venue = split_instrument_id(instrument_id)
        if not interval or "/" in interval:
            raise ValueError(f"invalid interval {interval!r}")
        return self.root / "bars" / _fs(venue) / _fs(symbol) / f"{_fs(interval)}.parquet"

    def write(self, instrument_id: str, series: BarSeries, interval: str | None = None) -> CatalogEntry:
        """Store a series (replacing what was there) and return its entry."""
        iv = interval or series.interval
        path = self.path_for(instrument_id, iv)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_parquet(series, path)
        return CatalogEntry(instrument_id, iv, path)

    def read(self, instrument_id: str, interval: str, *, limit: int = 0) -> BarSeries:
        path = self.path_for(instrument_id, interval)
        if not path.exists():
            raise FileNotFoundError(f"no catalog entry {PREFIX}{instrument_id}/{interval} under {self.root}")
        return read_bar_file(path, limit=limit)

    def entries(self) -> list[CatalogEntry]:
        out = []
        for path in sorted((self.root / "bars").glob("*/*/*.parquet")):
            venue, symbol, interval = path.parent.parent.name, path.parent.name, path.stem
            unescape = _unescape
            out.append(CatalogEntry(f"{unescape(symbol)}.{unescape(venue)}", unescape(interval), path))
        return out


def _unescape(token: str) -> str:
    return re.sub(r"%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), token)


def parse_entry_name(name: str) -> tuple[str, str]:
    """``catalog:BTCUSDT.BINANCE/1m`` → ``("BTCUSDT.BINANCE", "1m")``."""
    if not name.startswith(PREFIX):
        raise ValueError(f"not a catalog entry: {name!r}")
    instrument_id, sep, interval = name[len(PREFIX) :].rpartition("/")
    if not sep or not instrument_id or not interval:
        raise ValueError(f"catalog entry must look like {PREFIX}SYMBOL.VENUE/interval, got {name!r}")
    return instrument_id, interval


def read_source(name_or_path: str | Path, *, limit: int = 0) -> BarSeries:
    """Read a bar file, or a ``catalog:`` entry."""
    text = str(name_or_path)
    if text.startswith(PREFIX):
        instrument_id, interval = parse_entry_name(text)
        return Catalog().read(instrument_id, interval, limit=limit)
    return read_bar_file(Path(text), limit=limit)
