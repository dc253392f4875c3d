"""Recorded prediction-market resolutions (``datafeed.replay[].resolution``) as ``MarketResolved``.

A replay of a market's price history ends where the market resolved; publishing the recorded resolution
then lets the ledger settle the positions the replay opened. The file is JSON::

    {"venue": "MANIFOLD", "market_id": "rIR6mWqaO9xKLifr6cLL", "resolution": "YES",
     "ts": "2022-06-15T13:17:06.599Z",
     "payouts": {"rIR6mWqaO9xKLifr6cLL-YES.MANIFOLD": "1", "rIR6mWqaO9xKLifr6cLL-NO.MANIFOLD": "0"},
     "source": "manifold.markets GET /api/v0/slug/..., recorded 2022-10-10"}

``ts`` is ISO 8601 (naive = UTC) or epoch seconds/ms/ns (told by magnitude); payouts are text or numbers
read as Decimal. The message id derives from venue and market (``derive_id("resolution", venue,
market_id)``), as every publisher's does, so a repeat is dropped.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from tradewire_common.ids import derive_id
from tradewire_common.schemas import MarketResolved, OutcomePayout

__all__ = ["ResolutionFileError", "read_resolution", "resolution_id"]


class ResolutionFileError(ValueError):
    """A resolution file cannot be read; the message names the file and the field."""


def resolution_id(venue: str, market_id: str) -> str:
    return derive_id("resolution", venue, market_id)


def _ts(value: object, where: str) -> int:
    text = str(value).strip()
    try:
        number = Decimal(text)
    except InvalidOperation:
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ResolutionFileError(f"{where}: ts {value!r} is neither ISO 8601 nor an epoch number") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000
    if number < 10**11:
        return int(number * 10**9)
    if number < 10**14:
        return int(number * 10**6)
    return int(number)


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
