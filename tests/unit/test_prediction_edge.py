"""The ``prediction_edge`` rule at its boundaries: exactly ``min_edge`` does not trade, a hair more does;
the venue's fee and the book's depth change the decision; the NO side is the mirror image (from its own
book, or from YES bids in a single-book venue); a reversed edge exits; nothing after a resolution."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import msgspec

from tradewire_common.config import InstrumentSpec
from tradewire_common.schemas import MarketResolved, OrderType, OutcomePayout, Side, TimeInForce
from tradewire_signals.prediction.book import LocalBook
from tradewire_signals.prediction.edge import PredictionEdge, PredictionEdgeParams
from tradewire_signals.strategy import Intent


def edge_strategy(tmp_path: Path, p_yes: str, venue: str = "MANIFOLD", **params: object) -> PredictionEdge:
    """A prediction_edge on market M of ``venue`` (YES ``M-YES.<venue>``, NO its complement), model p(YES)."""
    (tmp_path / "model.csv").write_text(f"key,probability,confidence\nM,{p_yes},0.7\n")
    args = {"model": "static", "model_source": str(tmp_path / "model.csv"), **params}
    strategy = PredictionEdge("edge", (f"M-YES.{venue}",), msgspec.convert(args, PredictionEdgeParams, strict=False))
    yes, no = f"M-YES.{venue}", f"M-NO.{venue}"
    strategy.bind({yes: InstrumentSpec(id=yes, kind="binary", market_id="M", complement=no),
                   no: InstrumentSpec(id=no, kind="binary", market_id="M", complement=yes)})
    return strategy


def book(iid: str, bids: list[tuple[str, int]] = (), asks: list[tuple[str, int]] = (),  # type: ignore[assignment]
         ts: int = 1) -> LocalBook:
    return LocalBook(iid, {D(p): D(s) for p, s in bids}, {D(p): D(s) for p, s in asks}, 0, ts, False, "book")


def on(strategy: PredictionEdge, *books: LocalBook) -> list[Intent]:
    view = {b.instrument_id: b for b in books}
    return list(strategy.on_book(books[0].instrument_id, view))


def test_exactly_min_edge_does_not_trade_and_a_hair_more_does(tmp_path: Path) -> None:
    s = edge_strategy(tmp_path, "0.60", min_edge="0.10", contracts="10")
    assert on(s, book("M-YES.MANIFOLD", asks=[("0.50", 10)])) == []  # 0.60 - 0.50 - 0 = 0.10, not above
    [intent] = on(s, book("M-YES.MANIFOLD", asks=[("0.4999", 10)]))
    assert (intent.side, intent.instrument_id, intent.price, intent.limit_price) == (
        Side.BUY, "M-YES.MANIFOLD", D("0.4999"), D("0.4999"))
    assert intent.order_type is OrderType.LIMIT and intent.time_in_force is TimeInForce.IOC
    assert intent.win_probability == 0.6 and intent.confidence == 0.7


def test_the_venue_fee_turns_an_edge_down(tmp_path: Path) -> None:
    # edge before fees 0.60 - 0.50 = 0.10; Kalshi's taker fee on 100 at 0.50: ceil(0.07*100*0.25) = 1.75,
    # 0.0175 a contract -> 0.0825, below a min_edge of 0.09 that the fee-free venue clears
    asks = [("0.50", 100)]
    assert len(on(edge_strategy(tmp_path, "0.60", "MANIFOLD", min_edge="0.09", contracts="100"),
                  book("M-YES.MANIFOLD", asks=asks))) == 1
    assert on(edge_strategy(tmp_path, "0.60", "KALSHI", min_edge="0.09", contracts="100"),
              book("M-YES.KALSHI", asks=asks)) == []
    [intent] = on(edge_strategy(tmp_path, "0.60", "KALSHI", min_edge="0.08", contracts="100"),
                  book("M-YES.KALSHI", asks=asks))
    assert "fee 0.0175" in intent.reason and "edge 0.0825" in intent.reason


def test_the_books_depth_changes_the_price_and_the_decision(tmp_path: Path) -> None:
    asks = [("0.50", 10), ("0.58", 100)]
    [ten] = on(edge_strategy(tmp_path, "0.60", min_edge="0.05", contracts="10"), book("M-YES.MANIFOLD", asks=asks))
    assert (ten.price, ten.limit_price) == (D("0.50"), D("0.50"))
    # 20: 10 @ 0.50 + 10 @ 0.58 -> 0.54, edge 0.06; the limit is the worst level needed
    [twenty] = on(edge_strategy(tmp_path, "0.60", min_edge="0.05", contracts="20"), book("M-YES.MANIFOLD", asks=asks))
    assert (twenty.price, twenty.limit_price) == (D("0.54"), D("0.58"))
    # 40: (5 + 30 * 0.58) / 40 = 0.56, edge 0.04: no trade; 200: the book is too thin
    assert on(edge_strategy(tmp_path, "0.60", min_edge="0.05", contracts="40"), book("M-YES.MANIFOLD", asks=asks)) == []
    assert on(edge_strategy(tmp_path, "0.60", min_edge="0.0", contracts="200"), book("M-YES.MANIFOLD", asks=asks)) == []


def test_no_side_is_the_mirror_image_from_yes_bids_in_a_single_book_venue(tmp_path: Path) -> None:
    # Kalshi: one YES book. p(YES) 0.20 -> p(NO) 0.80; NO asks = 1 - YES bids = 0.30; fee on 10 at 0.30:
    # ceil(0.07 * 10 * 0.3 * 0.7 = 0.147) = 0.15, 0.015 a contract -> edge 0.8 - 0.3 - 0.015 = 0.485
    no_trade = edge_strategy(tmp_path, "0.20", "KALSHI", min_edge="0.05", contracts="10")
    [intent] = on(no_trade, book("M-YES.KALSHI", bids=[("0.70", 50)], asks=[("0.72", 50)]))
    assert (intent.side, intent.instrument_id, intent.price, intent.limit_price) == (
        Side.BUY, "M-NO.KALSHI", D("0.30"), D("0.30"))
    assert intent.win_probability == 0.8 and "NO edge 0.485" in intent.reason
    # the mirror market: p(YES) 0.80 with YES asked at 0.30 gives the same edge on YES
    [mirror] = on(edge_strategy(tmp_path / "..", "0.80", "KALSHI", min_edge="0.05", contracts="10"),
                  book("M-YES.KALSHI", bids=[("0.28", 50)], asks=[("0.30", 50)]))
    assert mirror.instrument_id == "M-YES.KALSHI" and "YES edge 0.485" in mirror.reason


def test_no_uses_its_own_book_when_the_venue_has_one(tmp_path: Path) -> None:
    s = edge_strategy(tmp_path, "0.20", "MANIFOLD", min_edge="0.05", contracts="10")
    # YES bids alone would price NO at 0.30; NO's own book asks 0.77: 0.80 - 0.77 = 0.03, no edge
    assert on(s, book("M-YES.MANIFOLD", bids=[("0.70", 50)]), book("M-NO.MANIFOLD", asks=[("0.77", 50)])) == []


def test_a_reversed_edge_sells_the_held_outcome_at_the_worst_bid_needed(tmp_path: Path) -> None:
    s = edge_strategy(tmp_path, "0.60", min_edge="0.05", exit_edge="0.05", contracts="10")
    assert len(on(s, book("M-YES.MANIFOLD", asks=[("0.50", 10)]))) == 1
    assert on(s, book("M-YES.MANIFOLD", asks=[("0.40", 10)])) == []  # held: no second entry
    assert on(s, book("M-YES.MANIFOLD", bids=[("0.65", 10)], asks=[("0.66", 10)])) == []  # 0.05, not above
    # sells 10 at (5 * 0.70 + 5 * 0.66) / 10 = 0.68: 0.08 above p; and NO (p 0.40) is now cheap: its asks are
    # 1 - YES bids, 0.30 and 0.34, 0.32 on average -> edge 0.08, bought in the same update
    [exit_, no] = on(s, book("M-YES.MANIFOLD", bids=[("0.70", 5), ("0.66", 5)], asks=[("0.72", 10)]))
    assert (exit_.side, exit_.instrument_id, exit_.price, exit_.limit_price) == (
        Side.SELL, "M-YES.MANIFOLD", D("0.68"), D("0.66"))
    assert (no.side, no.instrument_id, no.price, no.limit_price) == (Side.BUY, "M-NO.MANIFOLD", D("0.32"), D("0.34"))
    # back at 0.50: YES (flat again) is bought again, and the NO just bought now sells at 1 - 0.50, 0.10 above
    # its p of 0.40
    assert [(i.side, i.instrument_id) for i in on(s, book("M-YES.MANIFOLD", asks=[("0.50", 10)]))] == [
        (Side.BUY, "M-YES.MANIFOLD"), (Side.SELL, "M-NO.MANIFOLD")]


def test_nothing_is_emitted_for_a_market_after_its_resolution(tmp_path: Path) -> None:
    s = edge_strategy(tmp_path, "0.90", min_edge="0.01", contracts="10")
    resolved = MarketResolved(id="r", ts_event=5, ts_init=5, venue="MANIFOLD", market_id="M", resolution="YES",
                              payouts=(OutcomePayout(instrument_id="M-YES.MANIFOLD", payout=D(1)),))
    assert list(s.on_resolution(resolved)) == []
    assert on(s, book("M-YES.MANIFOLD", asks=[("0.10", 100)])) == []
    assert on(s, book("M-NO.MANIFOLD", asks=[("0.01", 100)])) == []


def test_the_signal_price_is_the_payable_price_rounded_up_to_the_tick_and_the_limit_the_worst_level(
    tmp_path: Path,
) -> None:
    s = edge_strategy(tmp_path, "0.70", "KALSHI", min_edge="0.05", contracts="20")
    s.ticks = dict.fromkeys(s.instruments, D("0.01"))
    [intent] = on(s, book("M-YES.KALSHI", asks=[("0.55", 10), ("0.60", 30)]))
    # payable (10 * 0.55 + 10 * 0.60) / 20 = 0.575 -> 0.58 on the grid (risk never rounds; Kelly sizes on the
    # side of caution); the edge itself uses 0.575: 0.7 - 0.575 - 0.0175 = 0.1075
    assert (intent.price, intent.limit_price) == (D("0.58"), D("0.60"))
    assert "edge 0.1075" in intent.reason
