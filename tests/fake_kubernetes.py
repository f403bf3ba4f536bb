"""A loopback Kubernetes API server for the kuberay client (tests only).

Speaks the paths the client uses, namespaced only:
``/apis/{group}/{version}/namespaces/{ns}/{plural}[/{name}[/status]]`` and
``/api/v1/namespaces/{ns}/{plural}[/{name}]``: GET, POST (409 AlreadyExists), PATCH with
``application/merge-patch+json`` (404 when absent) or ``application/apply-patch+yaml``
(server-side apply, ``fieldManager`` required; creates when absent; one manager, so the
applied object replaces what it applied before). Other patch types get 415, as the real
server gives for custom resources. RayServices are defaulted and validated against the CRD
schema (422 Invalid). Errors are ``Status`` objects. The operator's part is `set_status`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kuberay.crd_schema import CrdSchema

Key = tuple[str, str, str, str]  # apiVersion, plural, namespace, name
KINDS = {"serviceaccounts": "ServiceAccount", "configmaps": "ConfigMap", "services": "Service"}


def status(code: int, reason: str, message: str, **details: Any) -> JSONResponse:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details,
        "code": code,
    }
    return JSONResponse(body, code)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


@dataclass
class Call:
    method: str
    path: str
    content_type: str
    query: dict[str, str]


@dataclass
class FakeKubernetes:
    crd: CrdSchema
    objects: dict[Key, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    port: int = 0
    _version: int = 0
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, api_version: str, plural: str, namespace: str, name: str) -> dict[str, Any]:
        return self.objects[(api_version, plural, namespace, name)]

    def set_status(self, namespace: str, name: str, value: dict[str, Any]) -> None:
        """What the KubeRay operator would write."""
        self.objects[(self.crd.api_version, self.crd.plural, namespace, name)]["status"] = value

    def _kind(self, api_version: str, plural: str) -> str | None:
        if (api_version, plural) == (self.crd.api_version, self.crd.plural):
            return self.crd.kind
        return KINDS.get(plural) if api_version == "v1" else None

    def _store(self, key: Key, obj: dict[str, Any], old: dict[str, Any] | None) -> Response:
        api_version, plural, namespace, name = key
        if obj.get("apiVersion") != api_version or obj.get("kind") != self._kind(*key[:2]):
            return status(400, "BadRequest", f"body is not a {self._kind(*key[:2])}")
        meta = obj.setdefault("metadata", {})
        if meta.get("name", name) != name or meta.get("namespace", namespace) != namespace:
            return status(400, "BadRequest", "the name or namespace in the body does not match")
        if plural == self.crd.plural:
            obj = self.crd.defaulted(obj)
            errors = self.crd.errors(obj)
            if errors:
                message = f'{self.crd.kind}.{self.crd.group} "{name}" is invalid: ' + "; ".join(
                    errors
                )
                return status(422, "Invalid", message, name=name, kind=plural)
        self._version += 1
        server_meta = (old or {}).get("metadata", {})
        obj["metadata"] = {
            **obj["metadata"],
            "name": name,
            "namespace": namespace,
            "uid": server_meta.get("uid", f"uid-{self._version}"),
            "resourceVersion": str(self._version),
            "generation": int(server_meta.get("generation", 0))
            + (old is None or old.get("spec") != obj.get("spec")),
        }
        if old is not None and "status" in old:
            obj["status"] = old["status"]
        self.objects[key] = obj
        return JSONResponse(obj, 200 if old is not None else 201)

    def app(self) -> Starlette:
        async def collection(request: Request) -> Response:
            key = self._key(request)
            self._record(request)
            if self._kind(*key[:2]) is None:
                return status(404, "NotFound", "the server could not find the requested resource")
            if request.method != "POST":
                return status(405, "MethodNotAllowed", "only POST on a collection")
            obj = json.loads(await request.body())
            key = (key[0], key[1], key[2], obj.get("metadata", {}).get("name", ""))
            if key in self.objects:
                return status(
                    409,
                    "AlreadyExists",
                    f'{key[1]} "{key[3]}" already exists',
                    name=key[3],
                    kind=key[1],
                )
            return self._store(key, obj, None)

        async def item(request: Request) -> Response:
            key = self._key(request)
            call = self._record(request)
            if self._kind(*key[:2]) is None:
                return status(404, "NotFound", "the server could not find the requested resource")
            old = self.objects.get(key)
            missing = status(
                404, "NotFound", f'{key[1]} "{key[3]}" not found', name=key[3], kind=key[1]
            )
            if request.method == "GET":
                return JSONResponse(old) if old is not None else missing
            body = await request.body()
            if call.content_type == "application/merge-patch+json":
                if old is None:
                    return missing
                patch = json.loads(body)
                # Optimistic concurrency, as the API server does it: a patch that names a
                # resourceVersion applies only to that version of the object.
                wanted = (patch.get("metadata") or {}).get("resourceVersion")
                if wanted is not None and wanted != old["metadata"]["resourceVersion"]:
                    return status(
                        409,
                        "Conflict",
                        f'Operation cannot be fulfilled on {key[1]} "{key[3]}": the object '
                        "has been modified; please apply your changes to the latest version "
                        "and try again",
                        name=key[3],
                        kind=key[1],
                    )
                return self._store(key, merge_patch(old, patch), old)
            if call.content_type == "application/apply-patch+yaml":
                if not call.query.get("fieldManager"):
                    return status(400, "BadRequest", "fieldManager is required for apply patch")
                applied = yaml.safe_load(body)
                if old is not None:
                    applied.setdefault("metadata", {})
                return self._store(key, applied, old)
            return status(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format: {call.content_type}",
            )

        async def item_status(request: Request) -> Response:
            key = self._key(request)
            self._record(request)
            old = self.objects.get(key)
            if old is None or request.method != "GET":
                return status(
                    404, "NotFound", f'{key[1]} "{key[3]}" not found', name=key[3], kind=key[1]
                )
            return JSONResponse(old)

        ns = "/namespaces/{namespace}/{plural}"
        return Starlette(
            routes=[
                Route("/apis/{group}/{version}" + ns, collection, methods=["POST", "GET"]),
                Route("/apis/{group}/{version}" + ns + "/{name}", item, methods=["GET", "PATCH"]),
                Route(
                    "/apis/{group}/{version}" + ns + "/{name}/status", item_status, methods=["GET"]
                ),
                Route("/api/v1" + ns, collection, methods=["POST", "GET"]),
                Route("/api/v1" + ns + "/{name}", item, methods=["GET", "PATCH"]),
            ]
        )

    def _key(self, request: Request) -> Key:
        p = request.path_params
        api_version = f"{p['group']}/{p['version']}" if "group" in p else "v1"
        return (api_version, p["plural"], p["namespace"], p.get("name", ""))

    def _record(self, request: Request) -> Call:
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        call = Call(request.method, request.url.path, content_type, dict(request.query_params))
        self.calls.append(call)
        return call

    def start(self) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app(), log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        server = self._server

        def serve() -> None:
            asyncio.run(server.serve(sockets=[sock]))

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:  # a readiness flag, not a sleep used as sync
            if time.monotonic() > deadline:
                raise RuntimeError("fake Kubernetes API did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
