"""Recorded prediction-market resolutions (``datafeed.replay[].resolution``) as ``MarketResolved``.

A replay of a market's price history ends where the market resolved; publishing the recorded resolution
then lets the ledger settle the positions the replay opened. The file is JSON::

    {"venue": "MANIFOLD", "market_id": "rIR6mWqaO9xKLifr6cLL", "resolution": "YES",
     "ts": "2022-06-15T13:17:06.599Z",
     "payouts": {"rIR6mWqaO9xKLifr6cLL-YES.MANIFOLD": "1", "rIR6mWqaO9xKLifr6cLL-NO.MANIFOLD": "0"},
     "source": "manifold.markets GET /api/v0/slug/..., recorded 2022-10-10"}

``ts`` is read like a bar file's timestamps (``readers.TimestampParser``: ISO 8601 with up to 9 fractional
digits, naive = UTC, or epoch s/ms/us/ns told by magnitude); payouts are text or numbers
read as Decimal. The message id derives from venue and market (``derive_id("MarketResolved", venue,
market_id)``), as every publisher's (the live feed, execution adapters), so a repeat is dropped.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path

from tradewire_common.ids import derive_id
from tradewire_common.schemas import MarketResolved, OutcomePayout
from tradewire_datafeed.readers import TimestampParser

__all__ = ["ResolutionFileError", "read_resolution", "resolution_id"]


class ResolutionFileError(ValueError):
    """A resolution file cannot be read; the message names the file and the field."""


def resolution_id(venue: str, market_id: str) -> str:
    return derive_id("MarketResolved", venue, market_id)


def _ts(value: object, where: str) -> int:
    try:
        return TimestampParser().parse(str(value))
    except ValueError as exc:
        raise ResolutionFileError(f"{where}: ts {value!r} is neither ISO 8601 nor an epoch number ({exc})") from None


def read_resolution(path: str | Path, *, ts_init: int = 0) -> MarketResolved:
    where = str(path)
    try:
        data = json.loads(Path(path).read_text())
        venue, market_id = str(data["venue"]), str(data["market_id"])
        payouts = tuple(OutcomePayout(instrument_id=iid, payout=Decimal(str(v)))
                        for iid, v in dict(data["payouts"]).items())
        return MarketResolved(
            id=resolution_id(venue, market_id),
            ts_event=_ts(data["ts"], where),
            ts_init=ts_init,
            venue=venue,
            market_id=market_id,
            payouts=payouts,
            resolution=str(data["resolution"]),
            source=str(data.get("source", "")),
        )
    except ResolutionFileError:
        raise
    except KeyError as exc:
        raise ResolutionFileError(f"{where}: missing field {exc.args[0]!r}") from None
    except (OSError, ValueError, TypeError, InvalidOperation) as exc:
        raise ResolutionFileError(f"{where}: {exc}") from None
