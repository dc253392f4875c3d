"""Tradewire's vector mode against vectorbt, backtesting.py and backtrader on the same backtest.

The backtest: SMA(10, 30) cross, long-only, all-in (every entry spends all the cash, fractional
units), 0.1 % fee per fill, fills at the signal bar's close, 10 000 cash; on every bar file under
``data/`` and on seeded GBM 1-minute series (``tests/bench/gbm.py``, raw float64 prices) of 100k, 1M and 10M bars.

Each engine computes its own moving averages and crossings, configured to fill like Tradewire:

* Tradewire vector mode: ``run_vector`` (the fused kernel), ``equity_curve=False``.
* vectorbt: ``MA.run`` + ``ma_crossed_above/below`` + ``Portfolio.from_signals(size=inf,
  fees=0.001, direction="longonly", min_size=0)``, with its numba engine and, when ``vectorbt-rust``
  is importable, its rust engine (``engine="rust"``, also for the indicators).
* backtesting.py: ``FractionalBacktest`` (whole units of 1e-30, i.e. practically fractional),
  ``trade_on_close=True``, ``commission=0.001``, pandas rolling means, the same crossing rule.
* backtrader: ``bt.ind.SMA``, cheat-on-close fills, ``commission=0.001``, size = cash / (close *
  1.001) * (1 - 1e-12) (without that last factor rounding rejects every order for margin).

backtesting.py and backtrader (pure Python loops) are skipped above 1M bars; the output says so.
Agreement is checked against Tradewire: trade count (round trips, the open one included) and final
equity (relative difference). Float moving averages can differ from Tradewire's exact ones where
the two averages are equal or within rounding, so a peer can take a few different trades.

Figures: the median wall time of 3 runs with the data already loaded and every engine warmed up
(numba compiled) on a small series first; bars/s; the peak RSS during a run over the RSS before it,
plus the input the engine was handed (Tradewire: the close array; vectorbt: the close Series;
the others: the OHLCV DataFrame), per bar; each peer's time divided by Tradewire's. The script
re-executes itself with ``MALLOC_MMAP_THRESHOLD_`` set so that freed blocks go back to the system
at once, and calls ``malloc_trim(0)`` before each run, so that a run reusing memory an earlier one
freed still shows it in its peak (Linux; without ``/proc/self/clear_refs`` memory is "n/a").

vectorbt treats sizes within 1e-12 of zero as zero (``abs_tol`` in ``vectorbt.utils.math_``): when a
long losing run (the zero-drift GBM pays 0.2 % per round trip ~20 times per 1000 bars) brings an
all-in position under 1e-12 units, vectorbt stops trading, so it cannot agree on the 1M and 10M
series. Tradewire has no such cut-off (nor do backtesting.py and backtrader, which agree).

Tradewire's event mode (the services' own signals, risk, paper venue and ledger code on the in-memory bus,
``tradewire backtest --mode event --sizing all-in``) runs on series of at most :data:`EVENT_MAX_BARS` bars: at
a few thousand bars/s a 1M series would take minutes per run. Its timed part includes starting the services
in memory (as ``tradewire backtest`` does); the CSV it reads is written before timing.

Run from the repo root after ``make bench-install``::

    .venv/bin/python tests/bench/backtest_peers.py [--sizes 100000,1000000,10000000] [--runs 3]

(``PYTHONPATH=DIR`` with ``vectorbt-rust`` installed in DIR, e.g. by ``uv pip install --target DIR
--no-deps vectorbt-rust==1.2.0``, adds the rust engine without touching the venv.)
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bars
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.bench.gbm import gbm_bars  # noqa: E402
from tests.support.data_files import bar_files  # noqa: E402
from tradewire_backtest.arrays import BarArrays  # noqa: E402
from tradewire_backtest.vector import run_vector, warm_up  # noqa: E402

FAST, SLOW = 10, 30
CASH = 10_000.0
FEE_BPS = 10.0
FEE = FEE_BPS / 10_000
SLOW_PEER_MAX_BARS = 1_000_000
#: Event mode runs the real services per bar (a few thousand bars/s): larger series are skipped.
EVENT_MAX_BARS = 50_000
GBM_SEED = 42


@dataclass(frozen=True)
class Outcome:
    trades: int  # round trips, the one still open at the end included
    final_equity: float


@dataclass(frozen=True)
class Engine:
    """``prepare(bars)`` builds the engine's input (untimed) and returns it with its size in bytes;
    ``run(input)`` is the timed backtest; ``summarize(result)`` reads trades and equity (untimed)."""

    name: str
    prepare: Callable[[BarArrays], tuple[Any, int]]
    run: Callable[[Any], Any]
    summarize: Callable[[Any], Outcome]
    slow: bool = False  # pure-Python loop: skipped above SLOW_PEER_MAX_BARS
    max_bars: int = 0  # skipped above this many bars (0 = no limit besides ``slow``)
    unavailable: str = ""  # why it cannot run here ("" = it can)


def tradewire_event() -> Engine:
    """The same backtest through ``tradewire_backtest.event`` (``--mode event --sizing all-in``)."""
    import tempfile

    from tradewire_backtest.config import BacktestSpec, build_config
    from tradewire_backtest.event import run_event

    tmp = Path(tempfile.mkdtemp(prefix="tw-bench-event-"))

    def prepare(bars: BarArrays) -> tuple[Any, int]:
        path = tmp / f"bars-{len(bars)}.csv"
        with path.open("w") as out:
            out.write("timestamp,open,high,low,close,volume\n")
            columns = (bars.open.tolist(), bars.high.tolist(), bars.low.tolist(), bars.close.tolist(),
                       bars.volume.tolist())
            for i, ts in enumerate(bars.ts.tolist()):
                out.write(f"{ts // 1_000_000}," + ",".join(repr(c[i]) for c in columns) + "\n")
        spec = BacktestSpec(data=path, strategy="sma_cross", params={"fast": FAST, "slow": SLOW}, cash=Decimal(10_000),
                            fee_bps=FEE_BPS, fill="close", sizing="all-in")
        return spec, path.stat().st_size

    def run(spec: Any) -> Any:
        return run_event(build_config(spec))

    def summarize(result: Any) -> Outcome:
        return Outcome(len(result.trades), float(result.final_equity))

    return Engine("tradewire event", prepare, run, summarize, max_bars=EVENT_MAX_BARS)


# ------------------------------------------------------------------------------- Tradewire


def tradewire_vector() -> Engine:
    def run(bars: BarArrays) -> Any:
        return run_vector("sma_cross", {"fast": FAST, "slow": SLOW}, bars, cash=CASH, fee_bps=FEE_BPS, fill="close",
                          equity_curve=False)

    def summarize(result: Any) -> Outcome:
        assert result.fused
        return Outcome(len(result.records), result.final_equity)

    return Engine("tradewire vector (fused)", lambda bars: (bars, bars.close.nbytes), run, summarize)


# ------------------------------------------------------------------------------- vectorbt


def _frame(bars: BarArrays) -> Any:
    import pandas as pd

    index = pd.DatetimeIndex(pd.to_datetime(bars.ts, unit="ns"), name="time")  # naive UTC, see vectorbt's prepare
    return pd.DataFrame({"Open": bars.open, "High": bars.high, "Low": bars.low, "Close": bars.close,
                         "Volume": bars.volume}, index=index)


def vectorbt_engine(engine: str) -> Engine:
    name = f"vectorbt {engine}"
    try:
        import vectorbt as vbt
        from vectorbt._engine import is_rust_available
    except ImportError as exc:
        return Engine(name, _frame, lambda x: x, lambda x: x, unavailable=f"not installed ({exc}); make bench-install")
    if engine == "rust" and not is_rust_available():
        return Engine(name, _frame, lambda x: x, lambda x: x,
                      unavailable="vectorbt-rust not importable (the vectorbt[rust] extra is not in the bench group)")

    def prepare(bars: BarArrays) -> tuple[Any, int]:
        import pandas as pd

        # A tz-naive (UTC) index: with a tz-aware one vectorbt 1.2 on pandas 3 spends ~100x longer
        # converting the index to Timestamp objects than backtesting (2.7 s vs 23 ms on 100k bars).
        close = pd.Series(bars.close, index=pd.DatetimeIndex(pd.to_datetime(bars.ts, unit="ns")), name="close")
        return close, int(close.memory_usage(index=True, deep=True))

    def run(close: Any) -> Any:
        vbt.settings["engine"] = engine
        fast = vbt.MA.run(close, FAST)
        slow = vbt.MA.run(close, SLOW)
        entries = fast.ma_crossed_above(slow)
        exits = fast.ma_crossed_below(slow)
        pf = vbt.Portfolio.from_signals(close, entries, exits, init_cash=CASH, fees=FEE, size=np.inf,
                                        direction="longonly", min_size=0.0, engine=engine)
        return pf, float(pf.final_value())

    def summarize(result: Any) -> Outcome:
        pf, final = result
        return Outcome(int(pf.trades.count()), final)

    return Engine(name, prepare, run, summarize)


# ------------------------------------------------------------------------------- backtesting.py


def backtesting_engine() -> Engine:
    name = "backtesting.py"
    try:
        import pandas as pd
        from backtesting import Strategy
        from backtesting.lib import FractionalBacktest
    except ImportError as exc:
        return Engine(name, _frame, lambda x: x, lambda x: x, unavailable=f"not installed ({exc}); make bench-install",
                      slow=True)

    def sma(values: Any, n: int) -> Any:
        return pd.Series(values).rolling(n).mean().to_numpy()

    class SmaCross(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.fast = self.I(sma, self.data.Close, FAST)
            self.slow = self.I(sma, self.data.Close, SLOW)

        entries = 0

        def next(self) -> None:
            if len(self.fast) < 2:
                return
            before = self.fast[-2] - self.slow[-2]
            now = self.fast[-1] - self.slow[-1]
            if not self.position:
                if before <= 0 < now:
                    self.buy()
                    self.entries += 1
            elif before >= 0 > now:
                self.position.close()

    def prepare(bars: BarArrays) -> tuple[Any, int]:
        frame = _frame(bars)
        return frame, int(frame.memory_usage(index=True, deep=True).sum())

    def run(frame: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bt = FractionalBacktest(frame, SmaCross, cash=CASH, commission=FEE, trade_on_close=True,
                                    fractional_unit=1e-30, finalize_trades=False)
            return bt.run()

    def summarize(stats: Any) -> Outcome:  # "# Trades" leaves out the open trade: count entries
        return Outcome(int(stats["_strategy"].entries), float(stats["Equity Final [$]"]))

    return Engine(name, prepare, run, summarize, slow=True)


# ------------------------------------------------------------------------------- backtrader


def backtrader_engine() -> Engine:
    name = "backtrader"
    try:
        import backtrader as bt
    except ImportError as exc:
        return Engine(name, _frame, lambda x: x, lambda x: x, unavailable=f"not installed ({exc}); make bench-install",
                      slow=True)

    class SmaCross(bt.Strategy):  # type: ignore[misc]
        def __init__(self) -> None:
            self.fast = bt.ind.SMA(self.data.close, period=FAST)
            self.slow = bt.ind.SMA(self.data.close, period=SLOW)
            self.entries = 0

        def next(self) -> None:
            now = self.fast[0] - self.slow[0]
            before = self.fast[-1] - self.slow[-1]
            if not self.position:
                if before <= 0 < now:
                    # all-in; 1e-12 less, or rounding makes the cost exceed the cash by an ulp ("Margin")
                    self.buy(size=self.broker.getcash() / (self.data.close[0] * (1 + FEE)) * (1 - 1e-12))
                    self.entries += 1
            elif before >= 0 > now:
                self.close()

    def prepare(bars: BarArrays) -> tuple[Any, int]:
        frame = _frame(bars)
        return frame, int(frame.memory_usage(index=True, deep=True).sum())

    def run(frame: Any) -> Any:
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(bt.feeds.PandasData(dataname=frame))
        cerebro.addstrategy(SmaCross)
        cerebro.broker.setcash(CASH)
        cerebro.broker.setcommission(commission=FEE)
        cerebro.broker.set_coc(True)  # market orders fill at the signal bar's close
        cerebro.broker.set_checksubmit(False)  # all-in: no margin check to trip over rounding
        strategy = cerebro.run()[0]
        return strategy.entries, float(cerebro.broker.getvalue())

    def summarize(result: Any) -> Outcome:
        return Outcome(int(result[0]), result[1])

    return Engine(name, prepare, run, summarize, slow=True)


# ------------------------------------------------------------------------------- measuring


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def _reset_peak() -> bool:
    """Give freed heap memory back to the system (so reusing it shows in the RSS) and reset VmHWM."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


@dataclass
class Row:
    dataset: str
    bars: int
    engine: str
    seconds: float = math.nan
    peak_bytes: float = math.nan  # per bar, input included
    outcome: Outcome | None = None
    note: str = ""


def measure(engine: Engine, bars: BarArrays, runs: int) -> Row:
    data, input_bytes = engine.prepare(bars)
    times: list[float] = []
    peaks: list[int] = []
    result: Any = None
    for _ in range(runs):
        result = None
        gc.collect()
        can_peak = _reset_peak()
        before = _status_kb("VmRSS")
        start = time.perf_counter()
        result = engine.run(data)
        times.append(time.perf_counter() - start)
        if can_peak:
            peaks.append((_status_kb("VmHWM") - before) * 1024)
    n = len(bars)
    peak = (max(peaks) + input_bytes) / n if peaks and n else math.nan
    return Row("", n, engine.name, statistics.median(times), peak, engine.summarize(result))


def datasets(sizes: list[int], *, files: bool = True) -> list[tuple[str, BarArrays]]:
    out: list[tuple[str, BarArrays]] = []
    for path in bar_files() if files else []:
        out.append((str(path.relative_to(ROOT / "data")), BarArrays.from_file(path)))
    for n in sizes:
        out.append((f"gbm {n:,} x 1m (seed {GBM_SEED})", gbm_bars(n, seed=GBM_SEED, decimals=None)))
    return out


def exact_ties(bars: BarArrays) -> int:
    """Bars where the two averages are exactly equal (exact int64 fixed-point window sums): where a
    float engine's rounding noise can put a crossing one bar earlier or later than the exact rule."""
    from tradewire_backtest.arrays import to_fixed

    if len(bars) < SLOW:
        return 0
    fixed, _ = to_fixed(bars.close, (SLOW,))
    prefix = np.zeros(len(fixed) + 1, dtype=np.uint64)
    np.cumsum(fixed.view(np.uint64), out=prefix[1:])  # modulo 2**64; window sums fit in int64
    fast = (prefix[FAST:] - prefix[:-FAST]).view(np.int64)[SLOW - FAST :]
    slow = (prefix[SLOW:] - prefix[:-SLOW]).view(np.int64)
    return int(np.count_nonzero(fast * SLOW == slow * FAST))


def warm(engines: list[Engine]) -> None:
    warm_up()
    small = gbm_bars(2_000, seed=1)
    for engine in engines:
        if not engine.unavailable:
            engine.summarize(engine.run(engine.prepare(small)[0]))


def fmt_rate(bars: int, seconds: float) -> str:
    if not seconds or math.isnan(seconds):
        return "-"
    rate = bars / seconds
    return f"{rate / 1e6:,.1f} M" if rate >= 1e6 else f"{rate / 1e3:,.1f} k"


def print_table(rows: list[Row]) -> None:
    header = f"{'engine':<26} {'median s':>10} {'bars/s':>10} {'peak B/bar':>10} {'trades':>7} " \
             f"{'final equity':>14} {'x ours':>8}  agrees with tradewire"
    print(header)
    print("-" * len(header))
    ours = rows[0]
    for row in rows:
        if row.outcome is None:
            print(f"{row.engine:<26} {row.note}")
            continue
        o = row.outcome
        ratio = row.seconds / ours.seconds if row is not ours and ours.seconds else math.nan
        agree = ""
        if row is not ours and ours.outcome is not None:
            ref = ours.outcome
            rel = abs(o.final_equity - ref.final_equity) / max(abs(ref.final_equity), 1e-300)
            agree = ("trades equal" if o.trades == ref.trades else f"trades {o.trades - ref.trades:+d}") + \
                    f", equity rel diff {rel:.1e}"
        peak = "n/a" if math.isnan(row.peak_bytes) else f"{row.peak_bytes:,.1f}"
        print(f"{row.engine:<26} {row.seconds:>10.4f} {fmt_rate(row.bars, row.seconds):>10} {peak:>10} "
              f"{o.trades:>7} {o.final_equity:>14.6g} {'' if math.isnan(ratio) else f'{ratio:,.1f}':>8}  {agree}"
              + (f"  ({row.note})" if row.note else ""))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000,10000000", help="GBM series lengths (comma-separated)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per engine and dataset (median)")
    parser.add_argument("--no-files", action="store_true", help="skip the data/ files")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]

    engines = [tradewire_vector(), tradewire_event(),
               vectorbt_engine("numba"), vectorbt_engine("rust"), backtesting_engine(), backtrader_engine()]
    print(f"SMA({FAST},{SLOW}) long-only, all-in, fee {FEE:.1%} per fill, fill at the signal bar's close, "
          f"cash {CASH:,.0f}; median of {args.runs} runs, data loaded and engines warmed up first")
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, cpus {os.cpu_count()}")
    print(f"tradewire event mode is skipped above {EVENT_MAX_BARS:,} bars (the services' code per bar)")
    for engine in engines:
        if engine.unavailable:
            print(f"{engine.name}: unavailable: {engine.unavailable}")
    print(f"backtesting.py and backtrader are skipped above {SLOW_PEER_MAX_BARS:,} bars (pure-Python loops)")
    warm(engines)

    for name, bars in datasets(sizes, files=not args.no_files):
        print()
        print(f"== {name}: {len(bars):,} bars; exact SMA ties (fast mean == slow mean): {exact_ties(bars):,} bars")
        rows: list[Row] = []
        for engine in engines:
            if engine.unavailable:
                continue
            if engine.slow and len(bars) > SLOW_PEER_MAX_BARS:
                rows.append(Row(name, len(bars), engine.name, note=f"skipped: above {SLOW_PEER_MAX_BARS:,} bars"))
                continue
            if engine.max_bars and len(bars) > engine.max_bars:
                rows.append(Row(name, len(bars), engine.name, note=f"skipped: above {engine.max_bars:,} bars"))
                continue
            try:
                row = measure(engine, bars, args.runs)
            except Exception as exc:  # a peer that cannot run this file: say why, go on
                rows.append(Row(name, len(bars), engine.name, note=f"failed: {type(exc).__name__}: {exc}"[:160]))
                continue
            row.dataset = name
            rows.append(row)
        print_table(rows)
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ and sys.platform.startswith("linux"):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"})
    sys.exit(main(sys.argv[1:]))
