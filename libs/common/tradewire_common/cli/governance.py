"""``tradewire approvals``, ``tradewire promote`` and ``tradewire strategies``: clients of risk's HTTP API.

```
tradewire approvals list                         # orders of semi-auto strategies waiting for a person
tradewire approvals approve ID [--reason R]      # checked again by risk, then sent (or denied)
tradewire approvals reject ID --reason R
tradewire promote sma_cross --to paper --reason "backtest ok" --backtest-report bt.json
tradewire promote sma_cross --to paper --reason "losing money"   # a demotion: always allowed
tradewire strategies                             # automation level and stage of every strategy
```

Risk is found at ``--url``, else in the latest ``tradewire up`` run's ``endpoints.json``, else at
``http.ports.risk`` on 127.0.0.1; actions send the API token (as ``tradewire kill-switch`` does). The
backtest report is the JSON object ``tradewire backtest --json`` prints on its last line (a file holding
that output is read from its last line that parses as a JSON object). Exit codes: 0 done, 1 refused or
denied (an approval whose re-check denied the order, a gate that said no), 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tradewire_common.cli.control import call_service, service_url
from tradewire_common.config import STAGES, Config


def _common(command: argparse.ArgumentParser) -> None:
    command.add_argument("--config")
    command.add_argument("--run-dir", type=Path, help="a `tradewire up` run directory (default var/runs/latest)")
    command.add_argument("--url", default="", help="risk's base URL (default: found as described)")
    command.add_argument("--json", action="store_true", help="print risk's JSON answer")


def register_approvals(sub: Any) -> None:
    p = sub.add_parser("approvals", help="the approval queue of semi-auto strategies: list, approve, reject")
    commands = p.add_subparsers(dest="approvals_command", required=True)
    _common(commands.add_parser("list", help="orders waiting for approval, and the latest decisions"))
    approve = commands.add_parser("approve", help="approve an order: risk checks it again, then sends it")
    approve.add_argument("id", help="the order's id (its client order id, as `approvals list` shows)")
    approve.add_argument("--reason", default="", help="recorded with the approval")
    reject = commands.add_parser("reject", help="reject an order (it is denied APPROVAL_REJECTED)")
    reject.add_argument("id")
    reject.add_argument("--reason", required=True, help="why (recorded)")
    for command in (approve, reject):
        _common(command)
    p.set_defaults(handler=run_approvals)


def register_promote(sub: Any) -> None:
    p = sub.add_parser("promote", help="move a strategy to another stage (backtest, paper, live-small, live)",
                       description="One stage up through its gate, or any stage down. See tradewire_risk.stages.")
    p.add_argument("strategy")
    p.add_argument("--to", required=True, choices=STAGES, dest="stage")
    p.add_argument("--reason", required=True, help="why (recorded in the ledger)")
    p.add_argument("--backtest-report", type=Path,
                   help="the `tradewire backtest --json` output (to paper: the backtest; to live-small: the "
                        "backtest over the paper period)")
    _common(p)
    p.set_defaults(handler=run_promote)


def register_strategies(sub: Any) -> None:
    p = sub.add_parser("strategies", help="automation level, promotion stage and history of every strategy")
    _common(p)
    p.set_defaults(handler=run_strategies)


def risk_url(config: Config, run_dir: Path | None = None, explicit: str = "") -> str:
    return service_url(config, "risk", run_dir, explicit)


def call(config: Config, method: str, path: str, *, run_dir: Path | None = None, url: str = "",
         body: dict[str, Any] | None = None, timeout: float = 60.0) -> dict[str, Any]:
    """One request to risk; raises RuntimeError with its answer on an error status."""
    return call_service(config, "risk", method, path, run_dir=run_dir, url=url, body=body, timeout=timeout)


def read_report(path: Path) -> dict[str, Any]:
    """The backtest summary in ``path``: the file's last line that is a JSON object (or the whole file)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    for candidate in [text, *reversed(text.splitlines())]:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    raise ValueError(f"{path} holds no JSON object (expected the output of `tradewire backtest --json`)")


def _describe(item: dict[str, Any]) -> str:
    price = f" limit {item['limit_price']}" if item.get("limit_price") else ""
    reduce = " reduce-only" if item.get("reduce_only") else ""
    return (f"{item['id']}  {item['strategy_id']}: {item['side']} {item['quantity']} {item['instrument_id']} "
            f"{item['order_type']}{price}{reduce}  (signal at {item['signal_price']}: {item['signal_reason']}; "
            f"expires at {item['expires_at_ns']}, {item['clock']} time)")


def _load(args: argparse.Namespace) -> tuple[Config, dict[str, Any]]:
    from tradewire_common.cli.main import _load as load

    config, _ = load(args.config)
    return config, {"run_dir": args.run_dir, "url": args.url}


def run_approvals(args: argparse.Namespace) -> int:
    config, options = _load(args)
    code = 0
    try:
        if args.approvals_command == "list":
            result = call(config, "GET", "/v1/approvals", **options)
            lines = [_describe(item) for item in result["pending"]] or ["no order waits for approval"]
            text = "\n".join(lines)
        elif args.approvals_command == "approve":
            result = call(config, "POST", f"/v1/approvals/{args.id}/approve", body={"reason": args.reason},
                          **options)
            if result["outcome"] == "SUBMITTED":
                order = result["order"]
                text = f"approved and sent: {order['side']} {order['quantity']} {order['instrument_id']}"
            else:
                denial = result["denial"]
                text = f"approved, but denied at the re-check: {denial['reason_code']}: {denial['reason']}"
                code = 1
        else:
            result = call(config, "POST", f"/v1/approvals/{args.id}/reject", body={"reason": args.reason}, **options)
            text = f"rejected {args.id}"
    except RuntimeError as exc:
        print(f"tradewire approvals: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result) if args.json else text)
    return code


def run_promote(args: argparse.Namespace) -> int:
    try:
        report = read_report(args.backtest_report) if args.backtest_report else None
    except ValueError as exc:
        print(f"tradewire promote: {exc}", file=sys.stderr)
        return 2
    config, options = _load(args)
    body: dict[str, Any] = {"to": args.stage, "reason": args.reason}
    if report is not None:
        body["backtest_report"] = report
    try:
        result = call(config, "POST", f"/v1/strategies/{args.strategy}/promote", body=body, **options)
    except RuntimeError as exc:
        print(f"tradewire promote: {exc}", file=sys.stderr)
        return 1
    last = result["history"][-1]
    print(json.dumps(result) if args.json else
          f"{args.strategy}: {last['previous']} -> {last['stage']} ({last['reason']})")
    return 0


def run_strategies(args: argparse.Namespace) -> int:
    config, options = _load(args)
    try:
        result = call(config, "GET", "/v1/strategies", **options)
    except RuntimeError as exc:
        print(f"tradewire strategies: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        for s in result["strategies"]:
            print(f"{s['strategy_id']}  {s['kind']}  automation {s['automation']}  stage {s['stage']}"
                  f"  ({len(s['history'])} changes)")
    return 0
