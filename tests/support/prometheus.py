"""Real Prometheus and Alertmanager on loopback, configured from deploy/, and a webhook receiver.

* :func:`find_tool` locates Debian's binaries (``prometheus``, ``prometheus-alertmanager``);
  ``tools/ops/install-prometheus.sh`` installs them.
* :func:`prometheus_config` / :func:`alertmanager_config` derive test configurations from the
  deployed files, changing only addresses and timings (every job, label, route, matcher and
  inhibition stays as deployed); :func:`copy_rules` copies the real rule files.
* :class:`Prometheus` / :class:`Alertmanager` run the binaries on free loopback ports with their
  data in a temporary directory; :class:`WebhookReceiver` records what Alertmanager posts.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self, TypeVar

import httpx
from ruamel.yaml import YAML

from tests.support.ports import free_tcp_port

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES_DIR = PROMETHEUS_DIR / "rules"
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
#: Where the deployed Alertmanager reads its secret files (compose secrets; a Secret volume in k8s).
SECRETS_MOUNT = "/run/secrets/"

#: Names the binaries go by (Debian calls Alertmanager ``prometheus-alertmanager``).
PROMETHEUS_NAMES = ("prometheus",)
ALERTMANAGER_NAMES = ("prometheus-alertmanager", "alertmanager")
INSTALL_HINT = "bash tools/ops/install-prometheus.sh installs it as root"

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0

T = TypeVar("T")


def find_tool(names: tuple[str, ...]) -> str | None:
    """The first of ``names`` on PATH (or in /usr/bin), else None."""
    for name in names:
        path = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/local/bin")
        if path is not None:
            return path
    return None


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


def dump_yaml(data: Any, path: Path) -> Path:
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    with path.open("w") as f:
        yaml.dump(data, f)
    return path


def wait_until(check: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll ``check`` until it returns something truthy (returned); fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# --- configuration derived from deploy/ ---------------------------------------------------------

_FOR_RE = re.compile(r"^(?P<indent>\s+)for: *\S+ *$", re.MULTILINE)


def copy_rules(dst: Path, *, for_duration: str | None = None) -> dict[str, int]:
    """Copy every rule file of deploy/prometheus/rules/ into ``dst``, byte for byte unless
    ``for_duration`` is given: then every ``for:`` clause is set to it (nothing else changes).
    Returns, per file name, how many ``for:`` clauses were rewritten."""
    dst.mkdir(parents=True, exist_ok=True)
    rewritten: dict[str, int] = {}
    for path in sorted(RULES_DIR.glob("*.yml")):
        text = path.read_text()
        count = 0
        if for_duration is not None:
            text, count = _FOR_RE.subn(lambda m: f"{m['indent']}for: {for_duration}", text)
        (dst / path.name).write_text(text)
        rewritten[path.name] = count
    return rewritten


def prometheus_config(
    *, targets: Mapping[str, str], self_address: str, alertmanager_address: str, interval: str = "1s",
) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with loopback addresses and short intervals.

    ``targets`` maps a service name to its ``host:port``; each deployed job ``tradewire-<service>``
    keeps its name and its ``service`` label, only its target changes; a deployed job of a service
    not in ``targets`` (one the test does not run) is left out, and a service without a deployed
    job is not scraped (compare the targets with what was meant to be scraped). ``rule_files`` is unchanged
    (``rules/*.yml`` beside the written file: see :func:`copy_rules`).
    """
    config: dict[str, Any] = load_yaml(PROMETHEUS_CONFIG)
    config["global"].update(scrape_interval=interval, scrape_timeout=interval, evaluation_interval=interval)
    config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [alertmanager_address]}]}]
    jobs = []
    for job in config["scrape_configs"]:
        name = job["job_name"]
        if name == "prometheus":
            address = self_address
        elif name.startswith("tradewire-"):
            if name.removeprefix("tradewire-") not in targets:
                continue
            address = targets[name.removeprefix("tradewire-")]
        else:
            raise ValueError(f"deploy/prometheus/prometheus.yml has job {name!r} and no test target for it")
        for static in job["static_configs"]:
            static["targets"] = [address]
        jobs.append(job)
    config["scrape_configs"] = jobs  # a service of ``targets`` without a deployed job stays unscraped
    return config


def alertmanager_config(
    *, receiver_url: Callable[[str], str], secrets_dir: Path, group_wait: str = "1s", group_interval: str = "1s",
) -> dict[str, Any]:
    """deploy/alertmanager/alertmanager.yml with every webhook URL replaced by
    ``receiver_url(<receiver name>)``, every ``credentials_file`` under ``/run/secrets/`` read from
    ``secrets_dir`` instead (the caller writes those files), and short grouping timers on every route
    (the root route and each route that sets its own). Routes, matchers, ``continue``,
    ``send_resolved``, the authorization types and the inhibition rules are kept as deployed."""
    config: dict[str, Any] = load_yaml(ALERTMANAGER_CONFIG)

    def shorten(route: dict[str, Any], root: bool) -> None:
        for key, value in (("group_wait", group_wait), ("group_interval", group_interval)):
            if root or key in route:
                route[key] = value
        for child in route.get("routes", []):
            shorten(child, root=False)

    shorten(config["route"], root=True)
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = receiver_url(receiver["name"])
            authorization = webhook.get("http_config", {}).get("authorization", {})
            if str(authorization.get("credentials_file", "")).startswith(SECRETS_MOUNT):
                authorization["credentials_file"] = str(secrets_dir / Path(authorization["credentials_file"]).name)
    return config


# --- a webhook receiver ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Notification:
    """One POST from Alertmanager (its webhook payload, version 4)."""

    path: str
    body: dict[str, Any]
    #: The ``Authorization`` header Alertmanager sent ("" without one).
    authorization: str = ""

    @property
    def receiver(self) -> str:
        return str(self.body.get("receiver", ""))

    @property
    def status(self) -> str:
        return str(self.body.get("status", ""))

    @property
    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.body.get("alerts", [])
        return alerts

    def alerts_named(self, alertname: str) -> list[dict[str, Any]]:
        return [a for a in self.alerts if a.get("labels", {}).get("alertname") == alertname]


@dataclass
class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that records every JSON POST (answering 200)."""

    notifications: list[Notification] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with receiver._changed:
                    receiver.notifications.append(
                        Notification(self.path, body, self.headers.get("Authorization", "")))
                    receiver._changed.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        assert self._server is not None, "receiver not started"
        port: int = self._server.server_address[1]
        return port

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def received(self) -> list[Notification]:
        with self._changed:
            return list(self.notifications)

    def wait_for(self, match: Callable[[Notification], bool], *, timeout: float, what: str) -> Notification:
        """The first notification (received so far or later) for which ``match`` is true."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for notification in self.notifications:
                    if match(notification):
                        return notification
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(n.receiver, n.status, [a["labels"].get("alertname") for a in n.alerts])
                            for n in self.notifications]
                    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; received {seen}")
                self._changed.wait(remaining)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=STOP_TIMEOUT_S)


# --- the servers --------------------------------------------------------------------------------


class _Server:
    """A binary serving HTTP on a free loopback port, ready once ``/-/ready`` answers 200."""

    name = "server"

    def __init__(self, binary: str, root: Path) -> None:
        self.binary = binary
        self.root = root
        self.log_path = root / f"{self.name}.log"
        self.port = -1
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def args(self, address: str) -> list[str]:
        raise NotImplementedError

    def start(self, port: int | None = None) -> None:
        """Start on ``port`` (else a free one) and wait until ready; a taken free port is retried."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            self.port = port if port is not None else free_tcp_port()
            with self.log_path.open("ab") as log:
                proc = subprocess.Popen([self.binary, *self.args(self.address)], stdout=log,
                                        stderr=subprocess.STDOUT, cwd=self.root)
            while proc.poll() is None and time.monotonic() < deadline:
                if self._ready():
                    self._proc = proc
                    return
                time.sleep(0.1)
            if proc.poll() is None:
                _terminate(proc)
                raise RuntimeError(f"{self.name} not ready after {START_TIMEOUT_S:.0f}s; see {self.log_path}")
            if port is not None or time.monotonic() >= deadline:
                raise RuntimeError(f"{self.name} exited with {proc.returncode}: {self.log_tail()}")
            # most likely the free port was taken meanwhile: another one

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def get(self, path: str, **params: str) -> Any:
        """GET a JSON API path."""
        response = httpx.get(f"{self.url}{path}", params=params, timeout=5.0)
        response.raise_for_status()
        return response.json()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            _terminate(proc)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Prometheus(_Server):
    """``prometheus`` with ``config_file``, its TSDB in ``root/data``."""

    name = "prometheus"

    def __init__(self, binary: str, root: Path, config_file: Path) -> None:
        super().__init__(binary, root)
        self.config_file = config_file

    def args(self, address: str) -> list[str]:
        return [f"--config.file={self.config_file}", f"--web.listen-address={address}",
                f"--storage.tsdb.path={self.root / 'data'}", "--log.level=info"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector of ``expr`` (``[{"metric": {...}, "value": [ts, "v"]}, ...]``)."""
        result: list[dict[str, Any]] = self.get("/api/v1/query", query=expr)["data"]["result"]
        return result

    def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self.get("/api/v1/targets")["data"]["activeTargets"]
        return active

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.get("/api/v1/alerts")["data"]["alerts"]
        return alerts


class Alertmanager(_Server):
    """``alertmanager`` with ``config_file``, clustering off, its state in ``root/data``."""

    name = "alertmanager"

    def __init__(self, binary: str, root: Path, config_file: Path) -> None:
        super().__init__(binary, root)
        self.config_file = config_file

    def args(self, address: str) -> list[str]:
        return [f"--config.file={self.config_file}", f"--web.listen-address={address}",
                f"--storage.path={self.root / 'data'}", "--cluster.listen-address=", "--log.level=info"]

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert Alertmanager holds (API v2), with ``status.state`` and ``status.inhibitedBy``."""
        alerts: list[dict[str, Any]] = self.get("/api/v2/alerts")
        return alerts


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
