"""``raygate kuberay render | apply | status``.

``render`` prints the manifests as a YAML stream (``| kubectl apply -f -``); ``apply``
server-side-applies them; ``status`` prints the RayService's serve status. The API server
comes from the kubeconfig (or the in-cluster service account), or ``--server URL``
(e.g. ``kubectl proxy``'s http://127.0.0.1:8001). Heavy imports wait for the command.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

__all__ = ["add_commands", "run"]

DEFAULT_CONFIG = "serve/configs/cluster.yaml"
DEFAULT_CLUSTER = "kuberay/gke-example.yaml"


def add_commands(commands: Any) -> None:
    """Add ``kuberay`` with its subcommands to the ``raygate`` subparsers."""
    kuberay = commands.add_parser("kuberay", help="render, apply or inspect the RayService")
    actions = kuberay.add_subparsers(dest="kuberay_command", required=True)
    for name, what in (
        ("render", "print the manifests (YAML) for kubectl apply -f -"),
        ("apply", "server-side apply the manifests"),
        ("status", "print the RayService's serve status"),
    ):
        action = actions.add_parser(name, help=what)
        action.add_argument("--cluster", default=DEFAULT_CLUSTER, help="cluster section (YAML)")
        if name != "status":
            action.add_argument("--config", default=DEFAULT_CONFIG, help="Serve deploy config")
        if name != "render":
            action.add_argument("--server", help="API server URL (default: kubeconfig)")
            action.add_argument("--context", help="kubeconfig context")


def _api_client(args: argparse.Namespace) -> Any:
    from kubernetes import client, config

    if args.server:
        return client.ApiClient(client.Configuration(host=args.server))
    try:
        return config.new_client_from_config(context=args.context)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        return client.ApiClient()


def _manifests(args: argparse.Namespace) -> list[dict[str, Any]]:
    from kuberay.cluster import load_cluster_spec
    from kuberay.render import render_manifests
    from serve.config import load_serve_file

    serve_file = load_serve_file(args.config)
    return render_manifests(serve_file.raw, load_cluster_spec(args.cluster))


class _ManifestDumper(yaml.SafeDumper):
    """No anchors/aliases; multi-line strings (serveConfigV2, envoy.yaml) as blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _block_strings(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ManifestDumper.add_representer(str, _block_strings)


def run(args: argparse.Namespace) -> int:
    from kuberay.client import KubeRayError, RayServiceClient
    from kuberay.cluster import load_cluster_spec
    from serve.errors import ConfigError

    try:
        cluster = load_cluster_spec(args.cluster)
        if args.kuberay_command == "render":
            stream = yaml.dump_all(_manifests(args), Dumper=_ManifestDumper, sort_keys=False)
            sys.stdout.write(stream)
            return 0
        api = RayServiceClient(_api_client(args), cluster.namespace)
        if args.kuberay_command == "apply":
            for applied in api.apply(_manifests(args)):
                print(f"{applied} applied")
            return 0
        print("\n".join(api.status(cluster.name).lines()))
        return 0
    except (ConfigError, ValueError, KubeRayError) as exc:
        print(f"raygate kuberay {args.kuberay_command}: {exc}", file=sys.stderr)
        return 2
