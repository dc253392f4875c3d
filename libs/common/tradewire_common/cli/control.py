"""``tradewire status`` and ``tradewire kill-switch``: clients of the running services.

``tradewire kill-switch engage|release|status [--scope S] [--flatten] [--reason R]`` calls risk's
``/v1/kill-switch`` (``/v1/trading-state`` for ``status``) with the API token, or with ``--via nats``
sends the request on ``risk.halt`` as the ``operator`` NATS user: the broker URL and the operator's
password file come from the latest ``tradewire up`` run (``endpoints.json``), or ``--nats URL`` and
``$TRADEWIRE_NATS_PASSWORD_OPERATOR``. Releasing needs ``--reason``.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import httpx
import msgspec

from tradewire_common import subjects
from tradewire_common.config import Config
from tradewire_common.nats_auth import ClientAuth, password_env
from tradewire_common.registry import SERVICE_NAMES
from tradewire_common.schemas import TradingState
from tradewire_common.security import api_token
from tradewire_common.trading_state import GLOBAL, HaltRequest

#: The NATS user allowed to publish on ``risk.halt``.
OPERATOR = "operator"


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


def service_url(config: Config, service: str, run_dir: Path | None = None, explicit: str = "") -> str:
    """``explicit``, else the service's address in the latest ``tradewire up`` run, else its default port."""
    if explicit:
        return explicit.rstrip("/")
    found = endpoints(config, run_dir).get(service)
    return found or f"http://127.0.0.1:{getattr(config.http.ports, service)}"


def call_service(config: Config, service: str, method: str, path: str, *, run_dir: Path | None = None,
                 url: str = "", body: dict[str, Any] | None = None, timeout: float = 10.0) -> dict[str, Any]:
    """One request to a service's HTTP API (the token on everything but GET); raises RuntimeError with
    the service's answer on an error status."""
    headers: dict[str, str] = {}
    if method != "GET":
        secret = token(run_dir)
        if not secret:
            raise RuntimeError("no API token: set TRADEWIRE_API_TOKEN (or TRADEWIRE_API_TOKEN_FILE), or give the "
                               "--run-dir of a `tradewire up` run")
        headers["Authorization"] = f"Bearer {secret}"
    base = service_url(config, service, run_dir, url)
    try:
        with httpx.Client(timeout=timeout) as client:
            response = client.request(method, base + path, json=body, headers=headers)
    except httpx.HTTPError as exc:
        raise RuntimeError(f"cannot reach {service} at {base}: {type(exc).__name__}") from None
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise RuntimeError(f"{service} answered {response.status_code}: {detail}")
    data: dict[str, Any] = response.json()
    return data


def status(config: Config, run_dir: Path | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {}
    with httpx.Client(timeout=2.0) as client:
        for name, url in endpoints(config, run_dir).items():
            try:
                response = client.get(url + "/readyz")
                result[name] = {"url": url, "ready": response.status_code == 200}
                try:  # the service's own view of the trading state
                    result[name]["trading_state"] = response.json().get("trading_state")
                except ValueError:
                    pass
            except httpx.HTTPError as exc:
                result[name] = {"url": url, "ready": False, "error": type(exc).__name__}
        risk = endpoints(config, run_dir)["risk"]
        try:
            result["trading_state"] = client.get(risk + "/v1/kill-switch").json()
        except (httpx.HTTPError, ValueError):
            result["trading_state"] = None
    return result


def kill_switch(
    config: Config, action: str, reason: str | None, run_dir: Path | None = None, *, scope: str = GLOBAL,
    flatten: bool = False, via: str = "http", nats_url: str = "",
) -> dict[str, Any]:
    """Engage (HALTED), release (ACTIVE) or show a scope's trading state; raises RuntimeError when refused."""
    if action == "release" and not (reason or "").strip():
        raise RuntimeError("release needs --reason (leaving HALTED is audited)")
    if flatten and action != "engage":
        raise RuntimeError("--flatten goes with engage")
    state = None if action == "status" else ("HALTED" if action == "engage" else "ACTIVE")
    if via == "nats":
        body = msgspec.json.encode(HaltRequest(state=None if state is None else TradingState(state),
                                               reason=reason or "manual", scope=scope, flatten=flatten))
        return halt_over_nats(_nats_url(config, run_dir, nats_url), operator_auth(run_dir), body)
    risk = endpoints(config, run_dir)["risk"]
    with httpx.Client(timeout=10.0) as client:
        if state is None:
            response = client.get(risk + "/v1/trading-state")
        else:
            response = client.post(risk + "/v1/kill-switch",
                                   json={"state": state, "reason": reason or "manual", "scope": scope,
                                         "flatten": flatten},
                                   headers={"Authorization": f"Bearer {token(run_dir)}"})
        if response.status_code >= 400:
            raise RuntimeError(f"risk answered {response.status_code}: {response.text}")
        data: dict[str, Any] = response.json()
    if state is None:
        scopes: dict[str, Any] = data["scopes"]
        if scope not in scopes:
            raise RuntimeError(f"unknown scope {scope!r}; configured: {', '.join(scopes)}")
        return {**scopes[scope], "scopes": scopes} if scope == GLOBAL else dict(scopes[scope])
    return data


def _nats_url(config: Config, run_dir: Path | None, given: str) -> str:
    info = _latest_run(run_dir) or {}
    url = given or info.get("nats") or config.bus.url
    if not url:
        raise RuntimeError("no NATS URL: pass --nats or start the services with tradewire up")
    return str(url)


def operator_auth(run_dir: Path | None = None) -> ClientAuth | None:
    """The operator's NATS login: ``$TRADEWIRE_NATS_PASSWORD_OPERATOR`` (as in the broker's password
    file), else the ``tradewire up`` run's operator password file; None (anonymous) when neither."""
    password = os.environ.get(password_env(OPERATOR), "")
    path = (_latest_run(run_dir) or {}).get("nats_operator_password_file", "")
    if not password and path:
        password = Path(path).read_text().strip()
    return ClientAuth(OPERATOR, password) if password else None


def halt_over_nats(url: str, auth: ClientAuth | None, body: bytes, timeout: float = 10.0) -> dict[str, Any]:
    """One request on ``risk.halt``; the answer, or RuntimeError (refused, no answer, error reply)."""
    import nats
    import nats.errors

    refusals: list[str] = []

    async def on_error(exc: Exception) -> None:
        refusals.append(str(exc))

    async def request() -> bytes:
        options: dict[str, Any] = {"servers": [u.strip() for u in url.split(",") if u.strip()],
                                   "allow_reconnect": False, "connect_timeout": 5, "error_cb": on_error}
        if auth is not None:
            options.update(user=auth.user, password=auth.password, inbox_prefix=subjects.inbox_prefix(auth.user))
        nc = await nats.connect(**options)
        try:
            reply = await nc.request(subjects.RISK_HALT, body, timeout=timeout)
        finally:
            await nc.close()
        data: bytes = reply.data
        return data

    try:
        raw = asyncio.run(request())
    except nats.errors.NoRespondersError:
        raise RuntimeError(f"nobody serves {subjects.RISK_HALT} at {url} (is risk running?)") from None
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        why = f" ({refusals[-1]})" if refusals else ""
        raise RuntimeError(f"{subjects.RISK_HALT} request failed: {type(exc).__name__}{why}") from None
    answer: dict[str, Any] = json.loads(raw)
    if "error" in answer:
        raise RuntimeError(f"risk refused: {answer['error']}")
    return answer
