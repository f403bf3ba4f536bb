"""Admin API for virtual keys: create (shown once), list, revoke, rotate."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from serve.config import Role
from serve.errors import InvalidRequest, NotFound
from serve.gateway import Gateway
from serve.openai_requests import parse


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    team: str
    name: str = Field(min_length=1, max_length=128)
    models: list[str] | None = None
    expires_in_s: int | None = Field(None, ge=60)
    # "auditor": reads the team's audit log and usage (GET /admin/audit, /admin/usage) only;
    # "model_owner": also manages the team's models (/admin/models).
    role: Role = "user"


def add_routes(
    app: FastAPI,
    gateway: Gateway,
    read_json: Callable[[Request], Awaitable[Any]],
    json_response: Callable[..., Response],
) -> None:
    @app.post("/admin/keys")
    async def create_key(request: Request) -> Response:
        gateway.check_admin(request.headers.get("authorization"))
        body = parse(CreateKey, await read_json(request))
        if gateway.config.team(body.team) is None:
            raise InvalidRequest(f"Unknown team '{body.team}'.", param="team", code="unknown_team")
        for model in body.models or ():
            if model != "*" and not (gateway.config.model(model) or gateway.config.route(model)):
                raise InvalidRequest(
                    f"Unknown model '{model}'.", param="models", code="unknown_model"
                )
        expires = (
            datetime.now(UTC) + timedelta(seconds=body.expires_in_s) if body.expires_in_s else None
        )
        record, plaintext = await gateway.keys.create(
            body.team, body.name, body.models, expires, body.role
        )
        return json_response({**record.public(), "key": plaintext}, 201)

    @app.get("/admin/keys")
    async def list_keys(request: Request) -> Response:
        gateway.check_admin(request.headers.get("authorization"))
        records = await gateway.keys.list(request.query_params.get("team"))
        return json_response({"object": "list", "data": [r.public() for r in records]})

    @app.delete("/admin/keys/{key_id}")
    async def delete_key(key_id: str, request: Request) -> Response:
        gateway.check_admin(request.headers.get("authorization"))
        if not await gateway.keys.revoke(key_id):
            raise NotFound(f"No active key '{key_id}'.", code="key_not_found")
        gateway.authenticator.forget(key_id)
        return json_response({"id": key_id, "object": "api_key", "deleted": True})

    @app.post("/admin/keys/{key_id}/rotate")
    async def rotate_key(key_id: str, request: Request) -> Response:
        gateway.check_admin(request.headers.get("authorization"))
        rotated = await gateway.keys.rotate(key_id)
        if rotated is None:
            raise NotFound(f"No active key '{key_id}'.", code="key_not_found")
        gateway.authenticator.forget(key_id)
        record, plaintext = rotated
        return json_response({**record.public(), "key": plaintext, "replaces": key_id}, 201)
