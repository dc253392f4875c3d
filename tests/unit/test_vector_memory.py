"""The fused SMA-cross backtest without an equity curve peaks at <= 16 bytes per bar, input included.

Measured in a fresh interpreter (so no earlier run's freed memory is reused unseen) as the peak RSS
during ``run_vector`` over the RSS before it, plus the input close array, divided by the bars.
``MALLOC_MMAP_THRESHOLD_`` makes glibc give every large block straight back to the system when
freed, so the peak RSS is the peak of what was really allocated (numba's allocations included,
which ``tracemalloc`` does not see).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import gc, json, sys
from tests.bench.gbm import gbm_bars
from tradewire_backtest.vector import run_vector, warm_up

def kb(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])

bars = gbm_bars(int(sys.argv[1]), seed=20260101)
warm_up()
gc.collect()
try:
    import ctypes
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed heap memory back to the system: reuse shows in the RSS
except (OSError, AttributeError):
    pass
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")
before = kb("VmRSS")
result = run_vector("sma_cross", {"fast": 10, "slow": 30}, bars, cash=10_000.0, fee_bps=10.0,
                    equity_curve=sys.argv[2] == "1")
peak = kb("VmHWM")
print(json.dumps({"extra": (peak - before) * 1024, "input": bars.close.nbytes, "bars": len(bars.close),
                  "trades": len(result.records), "fused": result.fused}))
"""


def _measure(bars: int, equity_curve: bool) -> dict[str, int]:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(bars), "1" if equity_curve else "0"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=240, check=True)
    result: dict[str, int] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def clear_refs_works() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError as exc:
        pytest.skip(f"cannot reset the peak RSS here: {exc}")


def test_fused_kernel_peak_memory_is_at_most_16_bytes_per_bar(clear_refs_works: None) -> None:
    m = _measure(10_000_000, equity_curve=False)
    per_bar = (m["input"] + m["extra"]) / m["bars"]
    assert m["fused"] and m["trades"] > 100_000
    assert per_bar <= 16.0, f"{per_bar:.2f} bytes per bar ({m['extra']} bytes over the {m['input']}-byte input)"


def test_the_measurement_sees_the_equity_curve(clear_refs_works: None) -> None:
    """The same measurement notices the 8 bytes per bar of an equity curve (it is not blind)."""
    m = _measure(2_000_000, equity_curve=True)
    assert m["extra"] >= 8 * m["bars"]
