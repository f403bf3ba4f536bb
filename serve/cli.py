"""The `raygate` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kuberay.cli import add_commands as add_kuberay_commands
from kuberay.cli import run as run_kuberay
from serve.config import load_serve_file
from serve.errors import ConfigError

DEFAULT_CONFIG = "serve/configs/local.yaml"


def main(argv: Sequence[str] | None = None) -> int:
    rest = list(sys.argv[1:] if argv is None else argv)
    if rest[:1] == ["usage"]:  # talks to a running gateway; reads no config file
        from serve.usage_cli import main as usage_main

        return usage_main(rest[1:])
    parser = argparse.ArgumentParser(prog="raygate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser(
        "up", help="start a local Ray, deploy the platform, serve until Ctrl-C"
    )
    up.add_argument("--config", default=DEFAULT_CONFIG, help="Serve deploy config (YAML)")
    check = commands.add_parser("check", help="validate a config file and exit")
    check.add_argument("config", nargs="?", default=DEFAULT_CONFIG)
    commands.add_parser(
        "usage", help="usage report of a running gateway (raygate usage --help)", add_help=False
    )
    add_kuberay_commands(commands)
    args = parser.parse_args(argv)
    if args.command == "kuberay":
        return run_kuberay(args)

    try:
        serve_file = load_serve_file(args.config)
    except ConfigError as exc:
        print(f"raygate: invalid config\n{exc}", file=sys.stderr)
        return 2
    if args.command == "check":
        print(f"{args.config}: ok ({len(serve_file.platform.models)} models)")
        return 0
    from serve.launcher import up as run_up

    return run_up(serve_file)


if __name__ == "__main__":
    raise SystemExit(main())
