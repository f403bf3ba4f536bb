"""Shared fixtures: real Redis, PostgreSQL and Ray Serve.

Services that the project's machines run (Redis, PostgreSQL) are required: a test that
needs one fails when it is unreachable. Outside CI a developer may opt into skipping
with RAYGATE_TEST_ALLOW_SKIP=1; CI (CI=true) never skips.
"""

from __future__ import annotations

import os
import socket
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from fake_upstream import FakeUpstream
from jwks import KeyPair

REDIS = ("127.0.0.1", 6379)
POSTGRES = ("127.0.0.1", 5432)


def require_service(name: str, address: tuple[str, int]) -> None:
    try:
        socket.create_connection(address, timeout=2).close()
    except OSError:
        message = f"{name} is not reachable at {address[0]}:{address[1]}"
        if os.environ.get("RAYGATE_TEST_ALLOW_SKIP") == "1" and os.environ.get("CI") != "true":
            pytest.skip(message)
        pytest.fail(message + " (integration tests need it; see README)")


@pytest.fixture(scope="session")
def redis_url() -> str:
    require_service("Redis", REDIS)
    return "redis://127.0.0.1:6379/15"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    require_service("PostgreSQL", POSTGRES)
    return "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def jwt_keys() -> KeyPair:
    return KeyPair.rsa("e2e-key")


@dataclass(frozen=True)
class Platform:
    base_url: str
    dev_key: str
    embed_key: str
    admin_key: str
    home: Path
    upstream: FakeUpstream
    jwt_keys: KeyPair
    jwt_issuer: str

    @property
    def v1(self) -> str:
        return self.base_url + "/v1"


def e2e_config(upstream: FakeUpstream, home: Path, issuer: str) -> dict[str, Any]:
    return {
        "proxy_location": "HeadOnly",
        "http_options": {"host": "127.0.0.1", "port": 8000},
        "applications": [
            {
                "name": "raygate",
                "route_prefix": "/",
                "import_path": "serve.app:build_app",
                "args": {
                    "state": {"backend": "memory"},
                    "database": {"url": f"sqlite+aiosqlite:///{home}/e2e.db"},
                    "ingress": {"max_body_bytes": 65536},
                    "auth": {
                        "admin_key": "env:RAYGATE_ADMIN_KEY",
                        "jwt_issuers": [
                            {
                                "issuer": issuer,
                                "audience": "raygate",
                                "jwks_url": f"http://127.0.0.1:{upstream.port}/.well-known/jwks.json",
                                "teams": {"svc-search": "search"},
                            }
                        ],
                    },
                    "teams": [
                        {"name": "dev", "models": ["*"]},
                        {"name": "search", "models": ["all-minilm-l6-v2", "upstream-model"]},
                    ],
                    "keys": [
                        {"team": "dev", "name": "dev", "key": "env:RAYGATE_DEV_KEY"},
                        {"team": "search", "name": "search", "key": "env:RAYGATE_TEST_EMBED_KEY"},
                    ],
                    "models": [
                        {
                            "name": "smollm2-135m-instruct",
                            "aliases": ["chat-default"],
                            "backend": {"kind": "llama_cpp", "n_ctx": 1024},
                            "deployment": {"max_ongoing_requests": 8, "num_cpus": 0.5},
                        },
                        {
                            "name": "all-minilm-l6-v2",
                            "backend": {"kind": "minilm"},
                            "deployment": {"num_cpus": 0.25},
                        },
                        {
                            "name": "upstream-model",
                            "backend": {
                                "kind": "openai_compatible",
                                "base_url": upstream.base_url,
                                "model": "fake-upstream",
                                "api_key": "env:RAYGATE_TEST_UPSTREAM_KEY",
                            },
                            "tasks": ["chat"],
                        },
                        {
                            "name": "broken-upstream",
                            "backend": {
                                "kind": "openai_compatible",
                                "base_url": upstream.base_url,
                                "model": "fail-500",
                            },
                            "tasks": ["chat"],
                        },
                    ],
                },
            }
        ],
    }


@pytest.fixture(scope="session")
def platform(
    tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream, jwt_keys: KeyPair
) -> Iterator[Platform]:
    """Ray Serve for real, started once per session through `raygate up`'s code path."""
    from serve import launcher
    from serve.config import load_serve_file

    home = tmp_path_factory.mktemp("raygate-home")
    issuer = "https://issuer.test.raygate"
    upstream.jwks = jwt_keys.jwks()
    path = home / "e2e.yaml"
    path.write_text(yaml.safe_dump(e2e_config(upstream, home, issuer)))
    os.environ["RAYGATE_HOME"] = str(home)
    os.environ.pop("RAYGATE_DEV_KEY", None)
    os.environ.pop("RAYGATE_ADMIN_KEY", None)
    os.environ["RAYGATE_TEST_EMBED_KEY"] = "sk-test-embed-" + uuid.uuid4().hex
    os.environ["RAYGATE_TEST_UPSTREAM_KEY"] = "sk-upstream-secret"
    base, secrets = launcher.start(load_serve_file(path), ready_timeout_s=300)
    try:
        yield Platform(
            base_url=base,
            dev_key=secrets["RAYGATE_DEV_KEY"][0],
            embed_key=os.environ["RAYGATE_TEST_EMBED_KEY"],
            admin_key=secrets["RAYGATE_ADMIN_KEY"][0],
            home=home,
            upstream=upstream,
            jwt_keys=jwt_keys,
            jwt_issuer=issuer,
        )
    finally:
        launcher.stop()
