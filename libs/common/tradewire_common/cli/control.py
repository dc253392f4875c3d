"""``tradewire status`` and ``tradewire kill-switch``: HTTP clients of the running services."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tradewire_common.config import Config
from tradewire_common.registry import SERVICE_NAMES
from tradewire_common.security import api_token


def endpoints(config: Config, run_dir: Path | None = None) -> dict[str, str]:
    """Service URLs: the latest ``tradewire up`` run's, else the configured ports on localhost."""
    info = _latest_run(run_dir)
    if info is not None:
        services: dict[str, str] = info["services"]
        return services
    return {name: f"http://127.0.0.1:{getattr(config.http.ports, name)}" for name in SERVICE_NAMES}


def _latest_run(run_dir: Path | None) -> dict[str, Any] | None:
    path = (run_dir or Path("var/runs/latest")) / "endpoints.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def token(run_dir: Path | None = None) -> str:
    """The API token: $TRADEWIRE_API_TOKEN(_FILE), else the one ``tradewire up`` generated."""
    value = api_token()
    if value:
        return value
    info = _latest_run(run_dir)
    if info and info.get("token_file"):
        return Path(info["token_file"]).read_text().strip()
    return ""


def status(config: Config, run_dir: Path | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {}
    with httpx.Client(timeout=2.0) as client:
        for name, url in endpoints(config, run_dir).items():
            try:
                ready = client.get(url + "/readyz").status_code == 200
                result[name] = {"url": url, "ready": ready}
            except httpx.HTTPError as exc:
                result[name] = {"url": url, "ready": False, "error": type(exc).__name__}
        risk = endpoints(config, run_dir)["risk"]
        try:
            result["trading_state"] = client.get(risk + "/v1/kill-switch").json()
        except (httpx.HTTPError, ValueError):
            result["trading_state"] = None
    return result


def kill_switch(config: Config, action: str, reason: str, run_dir: Path | None = None) -> dict[str, Any]:
    url = endpoints(config, run_dir)["risk"] + "/v1/kill-switch"
    with httpx.Client(timeout=5.0) as client:
        if action == "status":
            response = client.get(url)
        else:
            state = "HALTED" if action == "engage" else "ACTIVE"
            response = client.post(url, json={"state": state, "reason": reason},
                                   headers={"Authorization": f"Bearer {token(run_dir)}"})
        if response.status_code >= 400:
            raise RuntimeError(f"risk answered {response.status_code}: {response.text}")
        data: dict[str, Any] = response.json()
        return data
