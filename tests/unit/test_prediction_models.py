"""Probability models of the prediction strategies: the user's static file (three formats, reloaded when it
changes, market-id keys meaning YES), time-stamped forecasts from a file or a local HTTP server that never
look ahead, and the price-history baseline against a hand computation."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from decimal import Decimal as D
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tradewire_signals.prediction.models import (
    Estimate,
    ForecastHttpModel,
    ModelSettings,
    Outcome,
    PriceHistoryModel,
    StaticModel,
    build_model,
)

YES = Outcome("KX-YES.KALSHI", "KX", "KX-NO.KALSHI", True)
NO = Outcome("KX-NO.KALSHI", "KX", "KX-YES.KALSHI", False)
SEC = 1_000_000_000


def test_static_toml_by_market_id_gives_yes_p_and_no_its_complement(tmp_path: Path) -> None:
    path = tmp_path / "estimates.toml"
    path.write_text('[estimates.KX]\nprobability = 0.62\nconfidence = 0.8\n')
    model = build_model("static", ModelSettings(source=str(path)))
    assert model.estimate(YES, 0) == Estimate(D("0.62"), 0.8)
    assert model.estimate(NO, 0) == Estimate(D("0.38"), 0.8)
    assert model.estimate(Outcome("OTHER.KALSHI"), 0) is None


def test_static_csv_and_json_by_instrument_id(tmp_path: Path) -> None:
    csv = tmp_path / "e.csv"
    csv.write_text("key,probability,confidence\nKX-NO.KALSHI,0.25,0.5\n")
    model = build_model("static", ModelSettings(source=str(csv)))
    assert model.estimate(NO, 0) == Estimate(D("0.25"), 0.5)
    assert model.estimate(YES, 0) == Estimate(D("0.75"), 0.5)  # from its complement
    js = tmp_path / "e.json"
    js.write_text('{"KX-YES.KALSHI": {"probability": "0.9"}}')
    assert build_model("static", ModelSettings(source=str(js))).estimate(YES, 0) == Estimate(D("0.9"), 1.0)


def test_static_file_is_reloaded_when_it_changes_and_kept_when_it_breaks(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("key,probability\nKX,0.5\n")
    model = StaticModel(ModelSettings(source=str(path)))
    assert model.estimate(YES, 0) == Estimate(D("0.5"))
    path.write_text("key,probability\nKX,0.55\n")
    os.utime(path, ns=(path.stat().st_mtime_ns + 10**9,) * 2)
    assert model.estimate(YES, 0) == Estimate(D("0.55"))
    assert model.loads == 2
    path.write_text("key,probability\nKX,1.7\n")  # out of range: the last good estimates stay
    os.utime(path, ns=(path.stat().st_mtime_ns + 2 * 10**9,) * 2)
    assert model.estimate(YES, 0) == Estimate(D("0.55"))


def test_static_refuses_a_probability_outside_zero_one_at_start(tmp_path: Path) -> None:
    path = tmp_path / "e.toml"
    path.write_text('[estimates.KX]\nprobability = 1.2\n')
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        StaticModel(ModelSettings(source=str(path)))


FORECASTS = (
    "ts,key,probability,confidence\n"
    "2024-01-01T00:00:00Z,KX,0.40,0.6\n"
    "2024-01-02T00:00:00Z,KX,0.55,0.7\n"
    "2024-01-03T00:00:00Z,KX,0.90,0.9\n"
)
JAN1 = 1_704_067_200 * SEC
DAY = 86_400 * SEC


def test_forecast_csv_uses_the_latest_forecast_at_or_before_the_event_time(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text(FORECASTS)
    model = build_model("forecast_csv", ModelSettings(source=str(path)))
    assert model.estimate(YES, JAN1 - 1) is None  # nothing published yet
    assert model.estimate(YES, JAN1) == Estimate(D("0.40"), 0.6)
    # one nanosecond before the next forecast: still the old one (no look-ahead)
    assert model.estimate(YES, JAN1 + DAY - 1) == Estimate(D("0.40"), 0.6)
    assert model.estimate(YES, JAN1 + DAY) == Estimate(D("0.55"), 0.7)
    assert model.estimate(NO, JAN1 + 10 * DAY) == Estimate(D("0.10"), 0.9)


@pytest.fixture
def forecast_server() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server serving ``body[0]`` (tests may replace it) and counting requests."""
    body = [FORECASTS]
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            data = body[0].encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/forecasts.csv", body
    finally:
        server.shutdown()
        server.server_close()
    assert hits


def test_forecast_http_never_looks_ahead_and_refetches_after_refresh(forecast_server: tuple[str, list[str]]) -> None:
    url, body = forecast_server
    now = [0.0]
    model = ForecastHttpModel(ModelSettings(source=url, refresh_s=30), wall_clock=lambda: now[0])
    assert model.estimate(YES, JAN1 + DAY + 5) == Estimate(D("0.55"), 0.7)
    body[0] = '[{"ts": "2024-01-01T12:00:00Z", "key": "KX", "probability": 0.3}]'
    now[0] = 10.0  # within refresh_s: the cached forecasts
    assert model.estimate(YES, JAN1 + DAY + 5) == Estimate(D("0.55"), 0.7)
    assert model.fetches == 1
    now[0] = 31.0
    assert model.estimate(YES, JAN1 + DAY + 5) == Estimate(D("0.3"), 1.0)
    assert model.estimate(YES, JAN1) is None  # the new forecast is dated later
    assert model.fetches == 2


def test_forecast_http_refuses_a_non_http_source() -> None:
    with pytest.raises(ValueError, match="URL"):
        build_model("forecast_http", ModelSettings(source="/tmp/f.csv"))


def test_price_history_is_an_exponentially_weighted_mean_with_confidence_from_its_dispersion() -> None:
    model = PriceHistoryModel(ModelSettings(halflife=1, min_observations=3))  # alpha = 0.5
    for i, mid in enumerate((D("0.40"), D("0.60"), D("0.50"))):
        assert model.estimate(YES, i) is None  # fewer than min_observations so far
        model.observe(YES.instrument_id, i, mid)
    # mean: 0.40 -> 0.50 -> 0.50; variance: 0 -> 0.5 * (0 + 0.2 * 0.1) = 0.01 -> 0.5 * (0.01 + 0) = 0.005
    est = model.estimate(YES, 3)
    assert est is not None and est.probability == D("0.50")
    assert est.confidence == pytest.approx(1 - 2 * 0.005**0.5)
    no = model.estimate(NO, 3)  # the complement's view when the NO book has no history
    assert no is not None and no.probability == D("0.50")


def test_an_unknown_model_kind_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="forecast_csv, forecast_http, price_history, static"):
        build_model("oracle", ModelSettings())
