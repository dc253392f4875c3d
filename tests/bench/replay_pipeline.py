"""The demo pipeline through five processes and a real broker: bars/s, time to first fill, memory.

Runs ``tradewire up --exit-after-replay --json`` on the first --bars bars of the demo dataset while
sampling the resident memory of every process; prints the medians over --repeats runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.support.stack import demo_config, stack_env  # noqa: E402


def rss_by_process(root_pid: int) -> dict[str, int]:
    """RSS (bytes) of the process tree under root_pid, keyed by a readable name."""
    out = subprocess.run(["ps", "-eo", "pid,ppid,rss,args"], capture_output=True, text=True).stdout.splitlines()[1:]
    rows = [line.split(None, 3) for line in out]
    children: dict[int, list[tuple[int, int, str]]] = {}
    for pid, ppid, rss, cmd in rows:
        children.setdefault(int(ppid), []).append((int(pid), int(rss), cmd))
    result: dict[str, int] = {}
    for pid, _ppid, rss, _cmd in rows:
        if int(pid) == root_pid:
            result["supervisor (tradewire up)"] = int(rss) * 1024
    stack = [root_pid]
    while stack:
        for pid, rss, cmd in children.get(stack.pop(), []):
            parts = cmd.split()
            if "run" in parts:
                name = parts[parts.index("run") + 1]
            elif "nats-server" in cmd:
                name = "nats-server"
            else:
                continue  # short-lived helpers (ps itself, shells)
            result[name] = max(result.get(name, 0), rss * 1024)
            stack.append(pid)
    return result


def one_run(bars: int) -> tuple[dict[str, object], dict[str, int]]:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "tw.toml").write_text(demo_config(limit=bars))
        proc = subprocess.Popen(
            [sys.executable, "-m", "tradewire_common.cli.main", "up", "--config", str(tmp_path / "tw.toml"),
             "--exit-after-replay", "--json", "--run-dir", str(tmp_path / "run")],
            cwd=tmp, env=stack_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        peak: dict[str, int] = {}
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                for name, rss in rss_by_process(proc.pid).items():
                    peak[name] = max(peak.get(name, 0), rss)
                time.sleep(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        stdout, _ = proc.communicate(timeout=3600)
        stop.set()
        sampler.join()
        if proc.returncode != 0:
            raise SystemExit(f"tradewire up failed with {proc.returncode}")
        return json.loads(stdout.strip().splitlines()[-1]), peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bars", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs = [one_run(args.bars) for _ in range(args.repeats)]
    rates = [args.bars / float(r["replay_s"]) for r, _ in runs]  # type: ignore[arg-type]
    first = [float(r["time_to_first_fill_s"]) for r, _ in runs]  # type: ignore[arg-type]
    total = [float(r["elapsed_s"]) for r, _ in runs]  # type: ignore[arg-type]
    print(f"bars per run                 {args.bars} (lockstep, five processes, real nats-server), "
          f"cpus={os.cpu_count()}")
    print(f"replay throughput (median)   {statistics.median(rates):,.0f} bars/s")
    print(f"start to first fill (median) {statistics.median(first):.2f} s")
    print(f"start to exit (median)       {statistics.median(total):.2f} s")
    print(f"fills / final equity         {runs[0][0]['fills']} / {runs[0][0]['final_equity']}")
    names = sorted({n for _, peak in runs for n in peak})
    print("peak resident memory (median over runs):")
    for name in names:
        values = [peak.get(name, 0) for _, peak in runs]
        print(f"  {name:<28} {statistics.median(values) / 2**20:8.1f} MiB")


if __name__ == "__main__":
    main()
