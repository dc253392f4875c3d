"""``tradewire up``: the embedded default — a bundled nats-server and the five services as
supervised processes, replaying the demo dataset through paper trading.

The bundled broker requires a login: each run draws fresh random passwords for every role, writes
the generated ``nats.conf`` (environment references only) into the run directory, hands the
passwords to nats-server through its environment and to each service its own user and password
through the child's environment. No service sees another's password.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tradewire_common.cli.embedded_nats import EmbeddedNats
from tradewire_common.cli.nats_config import write_nats_config
from tradewire_common.config import ENV_PREFIX, Config
from tradewire_common.nats_auth import PASSWORD_ENV, PASSWORD_FILE_ENV, ROLES, USER_ENV, new_password, password_env
from tradewire_common.registry import SERVICE_NAMES

#: Start order: sinks first (the notifier, stopped last, reports to the end), the feed last (it waits for
#: the others anyway). A service is started once it is a registered name (``registry.SERVICE_NAMES``).
START_ORDER = tuple(name for name in ("notifier", "ledger", "execution", "risk", "signals", "datafeed")
                    if name in SERVICE_NAMES)
MAX_RESTARTS = 5
#: risk rebuilds its context (open orders, fills, equity) from the ledger at start; ``tradewire up`` points it
#: at this run's ledger unless ``risk.ledger_url`` is configured.
RISK_LEDGER_URL_ENV = f"{ENV_PREFIX}RISK__LEDGER_URL"
#: Execution's live venues reconcile with this run's ledger and ask this run's risk to set a venue REDUCING.
EXECUTION_LEDGER_URL_ENV = f"{ENV_PREFIX}EXECUTION__LEDGER_URL"
EXECUTION_RISK_URL_ENV = f"{ENV_PREFIX}EXECUTION__RISK_URL"


@dataclass
class Child:
    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Supervisor:
    config: Config
    config_path: str | None
    run_dir: Path
    nats_url: str = ""
    quiet: bool = False
    #: ``--live``: the execution process gets ``--live`` (venues with ``mode = "live"`` place real orders).
    live: bool = False
    children: dict[str, Child] = field(default_factory=dict)
    started_at: float = field(default_factory=time.monotonic)
    embedded: EmbeddedNats | None = None
    stopping: bool = False
    #: NATS password per role (bundled broker: fresh for this run; else ``$TRADEWIRE_NATS_PASSWORD_<ROLE>``).
    passwords: dict[str, str] = field(default_factory=dict, repr=False)

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)

    def port(self, name: str) -> int:
        port: int = getattr(self.config.http.ports, name)
        return port

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port(name)}"

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "logs").mkdir(exist_ok=True)
        if not self.nats_url:
            self.start_broker()
        else:
            self.passwords = {role: os.environ[password_env(role)] for role in SERVICE_NAMES
                              if os.environ.get(password_env(role))}
        env = dict(os.environ)
        if not env.get("TRADEWIRE_API_TOKEN") and not env.get("TRADEWIRE_API_TOKEN_FILE"):
            token_file = self.run_dir / "api-token"
            token_file.write_text(secrets.token_urlsafe(32))
            token_file.chmod(0o600)
            env["TRADEWIRE_API_TOKEN_FILE"] = str(token_file.resolve())
        env.setdefault("TRADEWIRE__LEDGER__PATH", str(self.run_dir / "ledger.db"))
        for name in START_ORDER:
            args = [sys.executable, "-m", "tradewire_common.cli.main", "run", name, "--nats", self.nats_url]
            if self.live and name == "execution":
                args.append("--live")
            if self.config_path:
                args += ["--config", self.config_path]
            child = Child(name, args, self.child_env(env, name), self.run_dir / "logs" / f"{name}.log")
            if child.env.get(RISK_LEDGER_URL_ENV) == self.url("ledger") and "ledger" in self.children:
                self.wait_for(("ledger",))  # else risk's first rebuild fails and it denies entries until a retry
            child.start()
            self.children[name] = child
        self.write_endpoints(env)

    def start_broker(self) -> None:
        """The bundled nats-server with one user per role, passwords fresh for this run."""
        nats_dir = self.run_dir / "nats"
        self.passwords = {role: new_password() for role in ROLES}
        conf = write_nats_config(nats_dir)  # JetStream comes from EmbeddedNats' flags
        server_env = {password_env(role): password for role, password in self.passwords.items()}
        self.embedded = EmbeddedNats(nats_dir, config_file=conf, env=server_env).start()
        self.nats_url = self.embedded.url
        # for a person at the console (e.g. the nats CLI), as private as the API token
        secret = nats_dir / "operator.password"
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # also when a reused run directory already had the file
        with os.fdopen(fd, "w") as f:
            f.write(self.passwords["operator"])
        self.say(f"nats-server (bundled, JetStream, a user per service) at {self.nats_url}")

    def child_env(self, base: dict[str, str], name: str) -> dict[str, str]:
        """A service's environment: its own NATS user and password, nobody else's."""
        env = dict(base)
        password = self.passwords.get(name)
        if password:
            for key in [k for k in env if k.startswith(PASSWORD_ENV)]:
                del env[key]
            env.pop(PASSWORD_FILE_ENV, None)
            env[USER_ENV] = name
            env[PASSWORD_ENV] = password
        if name == "risk" and not self.config.risk.ledger_url and not env.get(RISK_LEDGER_URL_ENV):
            env[RISK_LEDGER_URL_ENV] = self.url("ledger")
        if name == "execution":  # live venues reconcile with the ledger and escalate mismatches to risk
            ex = self.config.execution
            for key, url, configured in ((EXECUTION_LEDGER_URL_ENV, self.url("ledger"), ex.ledger_url),
                                         (EXECUTION_RISK_URL_ENV, self.url("risk"), ex.risk_url)):
                if not configured and not env.get(key):
                    env[key] = url
        return env

    def write_endpoints(self, env: dict[str, str]) -> None:
        info = {
            "nats": self.nats_url,
            "nats_operator_password_file": str((self.run_dir / "nats" / "operator.password").resolve())
            if self.embedded is not None else "",
            "services": {name: self.url(name) for name in SERVICE_NAMES},
            "token_file": env.get("TRADEWIRE_API_TOKEN_FILE", ""),
            "run_dir": str(self.run_dir),
            "pid": os.getpid(),
        }
        (self.run_dir / "endpoints.json").write_text(json.dumps(info, indent=2))
        latest = self.run_dir.parent / "latest"
        if latest.is_symlink() or latest.exists():
            latest.unlink()
        latest.symlink_to(self.run_dir.name)

    def wait_ready(self, timeout: float = 60.0) -> None:
        self.wait_for(SERVICE_NAMES, timeout)
        self.say("services ready:")
        for name in SERVICE_NAMES:
            self.say(f"  {name:<10} {self.url(name)}  (/healthz /readyz /metrics)")
        self.say(f"  logs       {self.run_dir / 'logs'}")

    def wait_for(self, names: tuple[str, ...], timeout: float = 60.0) -> None:
        """Wait until each of ``names`` answers ``/readyz`` with 200 (restarting crashed children)."""
        deadline = time.monotonic() + timeout
        pending = set(names)
        with httpx.Client(timeout=1.0) as client:
            while pending:
                self.check_children()
                for name in sorted(pending):
                    try:
                        if client.get(self.url(name) + "/readyz").status_code == 200:
                            pending.discard(name)
                    except httpx.HTTPError:
                        pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"not ready after {timeout:.0f}s: {', '.join(sorted(pending))}; "
                                       f"see {self.run_dir / 'logs'}")
                time.sleep(0.1)

    def check_children(self) -> None:
        """Restart a crashed child (logged); give up after MAX_RESTARTS."""
        if self.stopping:
            return
        for child in self.children.values():
            if child.process is not None and child.process.poll() is not None:
                code = child.process.returncode
                if child.restarts >= MAX_RESTARTS:
                    raise RuntimeError(f"{child.name} keeps crashing (exit {code}); see {child.log_path}")
                child.restarts += 1
                self.say(f"{child.name} exited with {code}; restarting ({child.restarts}/{MAX_RESTARTS})")
                child.start()

    def wait_replay_done(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=5.0) as client:
            while True:
                self.check_children()
                try:
                    status: dict[str, Any] = client.get(self.url("datafeed") + "/v1/replay").json()
                    if status.get("done"):
                        return status
                except (httpx.HTTPError, ValueError):
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"replay not finished after {timeout:.0f}s")
                time.sleep(0.2)

    def summary(self, replay: dict[str, Any]) -> dict[str, Any]:
        with httpx.Client(timeout=10.0) as client:
            ledger: dict[str, Any] = client.get(self.url("ledger") + "/v1/summary").json()
        first_fill = ledger.get("first_fill_wall_s")
        result = {
            **ledger,
            "bars": replay.get("bars_published", 0),
            "replay_s": replay.get("elapsed_s"),
            "elapsed_s": round(time.monotonic() - self.started_at, 3),
            "run_dir": str(self.run_dir),
        }
        if first_fill is not None:
            result["time_to_first_fill_s"] = round(first_fill - self.started_wall, 3)
        return result

    started_wall: float = field(default_factory=time.time)

    def stop(self) -> None:
        self.stopping = True
        for name in reversed(START_ORDER):
            child = self.children.get(name)
            if child is not None and child.alive():
                assert child.process is not None
                child.process.send_signal(signal.SIGTERM)
        for child in self.children.values():
            if child.process is not None:
                try:
                    child.process.wait(15)
                except subprocess.TimeoutExpired:
                    child.process.kill()
                    child.process.wait()
        if self.embedded is not None:
            self.embedded.stop()


def new_run_dir(base: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return base / "runs" / stamp


def run_up(
    config: Config, config_path: str | None, *, nats_url: str, exit_after_replay: bool, as_json: bool,
    run_dir: Path | None, timeout: float, live: bool = False,
) -> int:
    supervisor = Supervisor(config, config_path, run_dir or new_run_dir(Path("var")), nats_url=nats_url,
                            quiet=False, live=live)
    interrupted = False

    def on_sigterm(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        supervisor.start()
        supervisor.wait_ready()
        if exit_after_replay:
            replay = supervisor.wait_replay_done(timeout)
            summary = supervisor.summary(replay)
            if as_json:
                print(json.dumps(summary))
            else:
                for key, value in summary.items():
                    print(f"{key:>22}: {value}")
            return 0
        supervisor.say("replaying; Ctrl-C stops everything")
        while True:
            supervisor.check_children()
            time.sleep(0.5)
    except KeyboardInterrupt:
        interrupted = True
        return 0
    finally:
        supervisor.stop()
        if interrupted:
            supervisor.say("stopped")
