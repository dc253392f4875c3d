"""The ``tradewire`` command: up, run, status, kill-switch, config, schema."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

from tradewire_common.config import Config, ConfigError, config_to_toml_dict, load_config
from tradewire_common.registry import SERVICE_NAMES

DEFAULT_CONFIG = Path("config/tradewire.toml")
#: Set for the execution process by ``--live`` only (read by ``tradewire_execution.live.guard``).
LIVE_ENV = "TRADEWIRE_LIVE"


def _config_path(arg: str | None) -> str | None:
    if arg:
        return arg
    env = os.environ.get("TRADEWIRE_CONFIG")
    if env:
        return env
    return str(DEFAULT_CONFIG) if DEFAULT_CONFIG.exists() else None


def _load(arg: str | None) -> tuple[Config, str | None]:
    path = _config_path(arg)
    return load_config(path), path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tradewire", description="Tradewire automated trading")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start a bundled NATS and all five services (the demo by default)")
    up.add_argument("--config", help="TOML config (default: $TRADEWIRE_CONFIG or config/tradewire.toml)")
    up.add_argument("--nats", default="", help="use this broker instead of starting the bundled one")
    up.add_argument("--exit-after-replay", action="store_true", help="exit 0 once the replay is processed")
    up.add_argument("--json", action="store_true", help="with --exit-after-replay: one JSON summary line")
    up.add_argument("--run-dir", type=Path, help="where NATS data, the ledger and logs go (default var/runs/…)")
    up.add_argument("--timeout", type=float, default=1800.0, help="max seconds to wait for the replay")
    up.add_argument("--live", action="store_true",
                    help="arm live trading: execution venues with mode = 'live' place real orders")

    run = sub.add_parser("run", help="run one service (what a container runs)")
    run.add_argument("service", choices=SERVICE_NAMES)
    run.add_argument("--nats", default="", help="broker URL (default: bus.url from config)")
    run.add_argument("--config")
    run.add_argument("--live", action="store_true",
                     help="arm live trading (execution): venues with mode = 'live' place real orders")

    st = sub.add_parser("status", help="readiness of each service and the trading state")
    st.add_argument("--json", action="store_true")
    st.add_argument("--config")
    st.add_argument("--run-dir", type=Path)

    ks = sub.add_parser("kill-switch", help="engage, release or show the kill switch (a scope's trading state)")
    ks.add_argument("action", choices=("engage", "release", "status"))
    ks.add_argument("--reason", default=None, help="why (engage: default 'manual'; release: required)")
    ks.add_argument("--scope", default="global", help="global (default), strategy:<id> or venue:<name>")
    ks.add_argument("--flatten", action="store_true", help="engage: also close the positions (global or a venue)")
    ks.add_argument("--via", choices=("http", "nats"), default="http",
                    help="risk's HTTP API with the API token (default), or risk.halt as the NATS operator user")
    ks.add_argument("--nats", default="", help="with --via nats: the broker (default: the latest tradewire up's)")
    ks.add_argument("--config")
    ks.add_argument("--run-dir", type=Path)

    cfg = sub.add_parser("config", help="check or show a configuration")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    check = cfg_sub.add_parser("check", help="validate a config file (with environment overrides)")
    check.add_argument("file")
    show = cfg_sub.add_parser("show", help="print the effective configuration as JSON")
    show.add_argument("file", nargs="?")

    schema = sub.add_parser("schema", help="the wire contract")
    schema_sub = schema.add_subparsers(dest="schema_command", required=True)
    dump = schema_sub.add_parser("dump", help="write the JSON Schema of every message")
    dump.add_argument("--output", "-o", help="file (default stdout)")
    for ep in entry_points(group="tradewire.commands"):  # e.g. `backtest` from tradewire-backtest
        ep.load()(sub)
    from tradewire_common.cli.orders import register as register_orders  # `tradewire orders replace`

    register_orders(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"tradewire: {exc}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "config":
        if args.config_command == "check":
            load_config(args.file)
            print(f"{args.file}: ok")
            return 0
        config, _ = _load(args.file)
        print(json.dumps(config_to_toml_dict(config), indent=2))
        return 0
    if args.command == "schema":
        from tradewire_common.schemas import json_schema

        text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
        if args.output:
            Path(args.output).write_text(text)
        else:
            sys.stdout.write(text)
        return 0
    if args.command == "run":
        from tradewire_common.runner import run_service

        config, _ = _load(args.config)
        # Only the flag arms live trading: TRADEWIRE_LIVE carries it to the execution service
        # (tradewire_execution.live.guard) and is cleared when the flag is absent, whatever the environment said.
        if args.live:
            os.environ[LIVE_ENV] = "1"
        else:
            os.environ.pop(LIVE_ENV, None)
        return asyncio.run(run_service(args.service, config, nats_url=args.nats))
    if args.command == "up":
        from tradewire_common.cli.up import run_up

        config, path = _load(args.config)
        return run_up(config, path, nats_url=args.nats, exit_after_replay=args.exit_after_replay,
                      as_json=args.json, run_dir=args.run_dir, timeout=args.timeout, live=args.live)
    if args.command == "status":
        from tradewire_common.cli.control import status

        config, _ = _load(args.config)
        result = status(config, args.run_dir)
        if args.json:
            print(json.dumps(result))
        else:
            for name, info in result.items():
                print(f"{name:>14}: {info}")
        return 0 if all(v.get("ready") for k, v in result.items() if k in SERVICE_NAMES) else 1
    if args.command == "kill-switch":
        from tradewire_common.cli.control import kill_switch

        config, _ = _load(args.config)
        try:
            print(json.dumps(kill_switch(config, args.action, args.reason, args.run_dir, scope=args.scope,
                                         flatten=args.flatten, via=args.via, nats_url=args.nats)))
        except RuntimeError as exc:
            print(f"tradewire: {exc}", file=sys.stderr)
            return 1
        return 0
    handler = getattr(args, "handler", None)
    if handler is not None:
        code: int = handler(args)
        return code
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
