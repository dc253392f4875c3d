"""The store's part of prediction markets, as functions of an open transaction: fill statuses
(provisional -> confirmed / reversed), settlements, and the journal the portfolio is rebuilt from.

* A fill is stored ``provisional`` (``OrderFilled.provisional``) or ``confirmed``. ``FillConfirmed``
  moves ``provisional`` to ``confirmed``; ``FillReversed`` moves either to ``reversed`` (final). Both
  are idempotent, and either may be stored before its fill (a redelivery overtaken by a later
  message): the fill then takes the status they set when it arrives.
* A settlement row records what a ``MarketResolved`` closed (one per instrument with a position) and
  ``after_fill_seq``, the last fill sequence number applied before it, which puts it back in its place
  among the fills when the journal is replayed.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

import msgspec

from tradewire_common.schemas import OrderFilled, decode_as
from tradewire_common.schemas.prediction import FillConfirmed, FillReversed, MarketResolved
from tradewire_ledger import store_sql as q
from tradewire_ledger.accounting import Entry, Settle, Settled
from tradewire_ledger.store_orders import order_after_reversal

if TYPE_CHECKING:  # store_base imports this module
    from tradewire_ledger.store_base import Tx


@dataclass(frozen=True, slots=True)
class JournalFill:
    seq: int
    status: str
    fill: OrderFilled


@dataclass(frozen=True, slots=True)
class Journal:
    """Every stored fill (with its status) and settlement: what the portfolio is rebuilt from."""

    fills: list[JournalFill]
    settlements: list[dict[str, object]]

    def entries(self) -> list[Entry]:
        """Fills that count and settlements, in the order they were applied."""
        keyed: list[tuple[tuple[int, int, int], Entry]] = [
            ((f.seq, 0, 0), f.fill) for f in self.fills if f.status != q.REVERSED]
        for row in self.settlements:
            settle = Settle(str(row["instrument_id"]), Decimal(str(row["payout"])), int(str(row["ts_event"])))
            keyed.append(((int(str(row["after_fill_seq"])), 1, int(str(row["seq"]))), settle))
        keyed.sort(key=lambda item: item[0])
        return [entry for _key, entry in keyed]

    @property
    def revision(self) -> int:
        """How many reversals and settlements shaped the portfolio (part of the snapshot id)."""
        return sum(1 for f in self.fills if f.status == q.REVERSED) + len(self.settlements)


def status_on_arrival(tx: Tx, fill: OrderFilled) -> str:
    """A new fill's status: for a provisional fill, the one a confirmation or reversal stored before it
    set, else its own."""
    if not fill.provisional:
        return q.CONFIRMED
    status = q.PROVISIONAL
    for kind, payload in tx.fetchall(q.FILL_LIFECYCLE, (fill.client_order_id, "FillConfirmed", "FillReversed")):
        event = msgspec.json.decode(str(payload))
        if event.get("trade_id") != fill.trade_id:
            continue
        if kind == "FillReversed":
            return q.REVERSED
        status = q.CONFIRMED
    return status


def fill_status(tx: Tx, client_order_id: str, trade_id: str) -> str | None:
    row = tx.fetchone(q.FILL_STATUS, (client_order_id, trade_id))
    return None if row is None else str(row[0])


def confirm(tx: Tx, event: FillConfirmed) -> bool:
    """``provisional`` -> ``confirmed``; False when nothing changed."""
    return tx.execute(q.SET_FILL_STATUS, (q.CONFIRMED, event.client_order_id, event.trade_id, q.PROVISIONAL)) > 0


def reverse(tx: Tx, event: FillReversed) -> bool:
    """The fill becomes ``reversed`` and its order's filled quantity shrinks; False when nothing changed
    (unknown fill, or already reversed)."""
    status = fill_status(tx, event.client_order_id, event.trade_id)
    if status is None or status == q.REVERSED:
        return False
    tx.execute(q.SET_FILL_STATUS, (q.REVERSED, event.client_order_id, event.trade_id, status))
    row = tx.fetchone(q.SELECT_ORDER, (event.client_order_id,))
    if row is not None:
        counted = [(Decimal(str(qty)), Decimal(str(px)))
                   for qty, px in tx.fetchall(q.ORDER_FILLS, (event.client_order_id, q.REVERSED))]
        order = order_after_reversal(dict(zip(q.ORDER_COLUMNS, row, strict=True)), counted, event)
        values = [order[c] for c in q.ORDER_COLUMNS if c != "client_order_id"]
        tx.execute(q.UPDATE_ORDER, [*values, event.client_order_id])
    return True


def insert_settlements(tx: Tx, message: MarketResolved, settled: list[Settled]) -> None:
    row = tx.fetchone(q.MAX_FILL_SEQ)
    after = int(row[0]) if row else 0
    for s in settled:
        tx.execute(q.INSERT_SETTLEMENT, (
            message.id, message.venue, message.market_id, message.resolution, s.instrument_id, str(s.payout),
            str(s.quantity), str(s.avg_price), str(s.realized_pnl), str(s.cash), after, message.ts_event))


def load_journal(tx: Tx) -> Journal:
    fills = [JournalFill(int(seq), str(status), decode_as(str(payload).encode(), OrderFilled))
             for seq, status, payload in tx.fetchall(q.LOAD_FILL_JOURNAL)]
    settlements = [dict(zip(q.SETTLEMENT_COLUMNS, r, strict=True)) for r in tx.fetchall(q.LOAD_SETTLEMENTS)]
    return Journal(fills, settlements)
