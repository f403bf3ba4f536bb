"""The ingress deployment: one FastAPI app per replica around a `Gateway`."""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.types import ASGIApp

from serve.api.app import create_app, with_context
from serve.app import NER_HANDLE
from serve.bootstrap import build_gateway
from serve.config import parse_platform_config
from serve.gateway import Gateway
from serve.remote_engine import RemoteEngine, RemoteNer


@serve.ingress()
class Ingress:
    async def __init__(  # type: ignore[misc]  # Serve supports async constructors
        self, platform: dict[str, Any], handles: dict[str, DeploymentHandle[Any]]
    ) -> None:
        config = parse_platform_config(platform)
        ner_handle = handles.pop(NER_HANDLE, None)
        remote = {name: RemoteEngine(handle) for name, handle in handles.items()}
        ner = RemoteNer(ner_handle) if ner_handle is not None else None
        self._gateway: Gateway = await build_gateway(config, remote, ner=ner)

    def __serve_build_asgi_app__(self) -> ASGIApp:
        return with_context(create_app(self._gateway), self._gateway)

    async def check_health(self) -> None:
        if not await self._gateway.keys.ping():
            raise RuntimeError("database unreachable")
