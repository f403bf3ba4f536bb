"""Local secrets for the embedded default and the loopback-only listener check."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from serve import launcher, listeners


def test_dev_key_generated_once_private_and_env_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAYGATE_DEV_KEY", raising=False)
    value, created = launcher.ensure_local_secret("RAYGATE_DEV_KEY", tmp_path)
    assert created and value.startswith("sk-rg-dev-") and len(value) > 40
    path = tmp_path / "raygate-dev-key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, created_again = launcher.ensure_local_secret("RAYGATE_DEV_KEY", tmp_path)
    assert (again, created_again) == (value, False)
    monkeypatch.setenv("RAYGATE_DEV_KEY", "from-env")
    assert launcher.ensure_local_secret("RAYGATE_DEV_KEY", tmp_path) == ("from-env", False)


def test_listener_scan_sees_our_sockets() -> None:
    with socket.socket() as exposed, socket.socket() as local:
        exposed.bind(("0.0.0.0", 30999))
        exposed.listen()
        local.bind(("127.0.0.1", 0))
        local.listen()
        found = {(a, p) for a, p, _ in listeners.listeners_of(os.getpid())}
        assert ("0.0.0.0", 30999) in found
        assert ("127.0.0.1", local.getsockname()[1]) in found
        # 30999 is in Serve's direct-ingress range: a serving port beyond loopback.
        assert listeners.exposed_serving_listeners(os.getpid(), 8000) == ["0.0.0.0:30999"]


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
    ],
)
def test_is_loopback(address: str, loopback: bool) -> None:
    assert listeners.is_loopback(address) is loopback


def test_haproxy_wrapper_rewrites_wildcard_binds(tmp_path: Path) -> None:
    import subprocess

    config = tmp_path / "haproxy.cfg"
    config.write_text(
        "frontend prometheus\n    bind :9101\nfrontend http_frontend\n    bind 127.0.0.1:8000\n"
        "listen stats\n  bind *:8404\n"
    )
    fake = tmp_path / "haproxy"
    fake.write_text('#!/bin/sh\necho "$@"\n')
    fake.chmod(0o755)
    out = subprocess.run(
        [str(launcher.HAPROXY_WRAPPER), "-db", "-f", str(config)],
        env={**os.environ, "RAYGATE_HAPROXY_REAL": str(fake)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == f"-db -f {config}"
    text = config.read_text()
    assert "bind 127.0.0.1:9101" in text and "bind 127.0.0.1:8404" in text
    assert "bind 127.0.0.1:8000" in text and "*:" not in text and " :9101" not in text
