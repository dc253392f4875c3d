"""``tradewire alert add|list|remove|test``: price alert rules on the notifier's HTTP API (no trading).

```
tradewire alert add BTCUSDT.BINANCE above 70000
tradewire alert add BTCUSDT.BINANCE rsi:14 below 30 --interval 1m --severity warning
tradewire alert add BTCUSDT.BINANCE sma:10 crosses_above sma:30
tradewire alert list
tradewire alert remove RULE_ID
tradewire alert test            # a test notification to every configured URL
```

The notifier is found at ``--url``, else in the latest ``tradewire up`` run's ``endpoints.json``, else at
``http.ports.notifier`` on 127.0.0.1; changes send the API token (as ``tradewire kill-switch`` does).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tradewire_common.cli.control import call_service, service_url
from tradewire_common.config import Config


def register(sub: Any) -> None:
    p = sub.add_parser("alert", help="price alert rules on the notifier (no trading): add, list, remove, test")
    commands = p.add_subparsers(dest="alert_command", required=True)
    add = commands.add_parser(
        "add", help="add a rule: INSTRUMENT [SERIES] OPERATOR VALUE",
        description="SERIES: price (default), sma:N, ema:N, rsi:N (Wilder), change_pct:N. OPERATOR: above, below, "
                    "crosses_above, crosses_below. VALUE: a number or another series. A rule fires once when its "
                    "condition becomes true and re-arms when it is false again.")
    add.add_argument("instrument", help="SYMBOL.VENUE, e.g. BTCUSDT.BINANCE")
    add.add_argument("condition", nargs="+",
                     help="e.g. 'above 70000', 'rsi:14 below 30', 'sma:10 crosses_above sma:30'")
    add.add_argument("--interval", default="*", help="bar interval the rule listens to (default: any)")
    add.add_argument("--severity", choices=("info", "warning", "critical"), default="info")
    add.add_argument("--note", default="", help="text added to the notification")
    commands.add_parser("list", help="the rules, with how often each fired")
    remove = commands.add_parser("remove", help="remove a rule")
    remove.add_argument("rule_id")
    test = commands.add_parser("test", help="send a test notification to every configured URL")
    test.add_argument("--message", default="", help="the notification's text")
    for command in (add, *(commands.choices[name] for name in ("list", "remove")), test):
        command.add_argument("--config")
        command.add_argument("--run-dir", type=Path, help="a `tradewire up` run directory (default var/runs/latest)")
        command.add_argument("--url", default="", help="the notifier's base URL (default: found as described)")
        command.add_argument("--json", action="store_true", help="print the notifier's JSON answer")
    p.set_defaults(handler=run)


def notifier_url(config: Config, run_dir: Path | None = None, explicit: str = "") -> str:
    return service_url(config, "notifier", run_dir, explicit)


def call(config: Config, method: str, path: str, *, run_dir: Path | None = None, url: str = "",
         body: dict[str, Any] | None = None, timeout: float = 10.0) -> dict[str, Any]:
    """One request to notifier; raises RuntimeError with its answer on an error status."""
    return call_service(config, "notifier", method, path, run_dir=run_dir, url=url, body=body, timeout=timeout)


def _describe(rule: dict[str, Any]) -> str:
    fired = f"fired {rule['fired']}x" if rule.get("fired") else "not fired yet"
    interval = "" if rule.get("interval", "*") == "*" else f" [{rule['interval']}]"
    note = f"  ({rule['note']})" if rule.get("note") else ""
    return f"{rule['id']}  {rule['instrument_id']} {rule['condition']}{interval}  {rule['severity']}, {fired}{note}"


def run(args: argparse.Namespace) -> int:
    from tradewire_common.cli.main import _load

    config, _ = _load(args.config)
    options: dict[str, Any] = {"run_dir": args.run_dir, "url": args.url}
    try:
        if args.alert_command == "add":
            body = {"instrument_id": args.instrument, "condition": " ".join(args.condition),
                    "interval": args.interval, "severity": args.severity, "note": args.note}
            result = call(config, "POST", "/v1/alerts", body=body, **options)
            text = f"added {_describe(result['rule'])}"
        elif args.alert_command == "list":
            result = call(config, "GET", "/v1/alerts", **options)
            text = "\n".join(_describe(rule) for rule in result["rules"]) or "no price alert rules"
        elif args.alert_command == "remove":
            result = call(config, "DELETE", f"/v1/alerts/{args.rule_id}", **options)
            text = f"removed {result['removed']}"
        else:
            body = {"body": args.message} if args.message else {}
            # the notifier answers once every URL accepted it or gave up retrying (at most a minute)
            result = call(config, "POST", "/v1/test-notification", body=body, timeout=90.0, **options)
            text = f"test notification: {result.get('outcome')}"
    except RuntimeError as exc:
        print(f"tradewire alert: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result) if args.json else text)
    return 0
