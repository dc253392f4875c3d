"""Pointing a client library's URL table at another base (a proxy, or a fake venue in the tests), and the
per-exchange ccxt client settings that keep its start-up to the spot markets (shared by execution's adapter and
the data feed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

#: ccxt options of every client: spot markets only, no currency/margin/futures loading, no ccxt retries.
RESTRICTED_OPTIONS: Mapping[str, Any] = {
    "defaultType": "spot",
    "fetchMarkets": {"types": ["spot"]},
    "fetchCurrencies": False,
    "fetchMargins": False,
    "maxRetriesOnFailure": 0,
}
#: Per exchange id, what ``RESTRICTED_OPTIONS`` cannot say: ccxt config merged into the client's
#: (``has.fetchCurrencies = False`` stops ``load_markets`` from calling a currencies endpoint where the option
#: is not read). Coinbase: no v2 (Coinbase App) calls: time from ``/api/v3/brokerage/time``, balances from
#: ``/api/v3/brokerage/accounts``, markets from the public ``brokerage/market/products``. Kraken: markets from
#: ``/0/public/AssetPairs`` only (no ``Assets``).
EXCHANGE_CONFIG: Mapping[str, Mapping[str, Any]] = {
    "coinbase": {"has": {"fetchCurrencies": False},
                 "options": {"fetchTime": "v3PublicGetBrokerageTime", "fetchBalance": "v3PrivateGetBrokerageAccounts",
                             "fetchMarkets": "fetchMarketsV3"}},
    "kraken": {"has": {"fetchCurrencies": False}},
}


def ccxt_config(exchange_id: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ccxt constructor config of ``exchange_id``: :data:`RESTRICTED_OPTIONS`, then the exchange's
    :data:`EXCHANGE_CONFIG`, then ``options``."""
    extra = EXCHANGE_CONFIG.get(exchange_id, {})
    config: dict[str, Any] = {k: dict(v) for k, v in extra.items() if k != "options"}
    config["options"] = {**RESTRICTED_OPTIONS, **extra.get("options", {}), **(options or {})}
    return config


def rewrite_urls(node: Any, base: str) -> Any:
    """Every URL in a nested dict/list of URLs (ccxt's ``exchange.urls['api']``) with its scheme and host
    replaced by ``base``'s, keeping its path (``ws``/``wss`` stay websockets: ``wss`` for an https base)."""
    if isinstance(node, str):
        if "://" not in node:
            return node
        target = urlsplit(base)
        scheme = target.scheme
        if urlsplit(node).scheme in ("ws", "wss"):
            scheme = "wss" if target.scheme == "https" else "ws"
        rest = node.split("://", 1)[1]
        path = rest[rest.index("/"):] if "/" in rest else ""
        return f"{scheme}://{target.netloc}{target.path.rstrip('/')}{path}"
    if isinstance(node, dict):
        return {k: rewrite_urls(v, base) for k, v in node.items()}
    if isinstance(node, list):
        return [rewrite_urls(v, base) for v in node]
    return node
