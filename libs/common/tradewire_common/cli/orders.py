"""``tradewire orders replace COID [--qty Q] [--limit P] [--trigger P] [--reason R]``: ask risk to replace a working
order (risk is the only publisher of order commands; it checks the replacement like a new order and publishes a
``ReplaceOrder``, or an ``OrderDenied`` on the new client order id).

Risk is found at ``--url``, else in the latest ``tradewire up`` run's ``endpoints.json``, else at
``http.ports.risk`` on 127.0.0.1; the request carries the API token (as ``tradewire kill-switch`` does). Exit
status 0 when risk sent the replacement, 1 when it denied it or refused the request.
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from tradewire_common.cli.control import call_service


def _decimal(text: str) -> str:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value.is_finite() and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return text


def register(sub: Any) -> None:
    p = sub.add_parser("orders", help="working orders: replace (through risk)")
    commands = p.add_subparsers(dest="orders_command", required=True)
    replace = commands.add_parser("replace", help="replace a working order: new quantity and/or prices",
                                  description="Risk checks the replacement like a new order and sends it to the "
                                              "venue under a new client order id (printed).")
    replace.add_argument("client_order_id")
    replace.add_argument("--qty", type=_decimal, help="new total quantity (filled + left)")
    replace.add_argument("--limit", type=_decimal, help="new limit price")
    replace.add_argument("--trigger", type=_decimal, help="new trigger (stop) price")
    replace.add_argument("--reason", default="", help="why (kept in the command and the audit log)")
    replace.add_argument("--config")
    replace.add_argument("--run-dir", type=Path, help="a `tradewire up` run directory (default var/runs/latest)")
    replace.add_argument("--url", default="", help="risk's base URL (default: found as described)")
    replace.add_argument("--json", action="store_true", help="print risk's JSON answer")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tradewire_common.cli.main import _load

    if args.qty is None and args.limit is None and args.trigger is None:
        print("tradewire orders replace: give --qty, --limit or --trigger", file=sys.stderr)
        return 2
    config, _ = _load(args.config)
    body = {"quantity": args.qty, "limit_price": args.limit, "trigger_price": args.trigger, "reason": args.reason}
    try:
        result = call_service(config, "risk", "POST", f"/v1/orders/{args.client_order_id}/replace",
                              body={k: v for k, v in body.items() if v not in (None, "")}, run_dir=args.run_dir,
                              url=args.url)
    except RuntimeError as exc:
        print(f"tradewire orders replace: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    elif result.get("decision") == "REPLACE":
        print(f"replacing {result['client_order_id']} by {result['new_client_order_id']}")
    else:
        print(f"denied {result['new_client_order_id']}: {result.get('reason_code')}: {result.get('reason')}")
    return 0 if result.get("decision") == "REPLACE" else 1
