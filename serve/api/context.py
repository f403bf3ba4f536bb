"""Per-request plumbing as raw ASGI middleware: request id, body limit, load shedding.

Raw ASGI (not BaseHTTPMiddleware) so streams pass through untouched and the hot path
stays a few function calls.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve.errors import GatewayError, Overloaded, PayloadTooLarge

REQUEST_ID = "x-request-id"
_VALID_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


class BodyTooLarge(PayloadTooLarge):
    pass


def request_id(scope: Scope) -> str:
    return str(scope["state"]["request_id"])


class RequestContext:
    def __init__(
        self, app: ASGIApp, max_body_bytes: int, max_in_flight: int, emit_request_id: bool = True
    ) -> None:
        """`emit_request_id=False` under Ray Serve, whose own middleware already assigns
        ``x-request-id`` (honouring the caller's) and returns it on every response."""
        self.app = app
        self.emit_request_id = emit_request_id
        self.max_body_bytes = max_body_bytes
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = b""
        length = -1
        for name, value in scope["headers"]:
            if name == b"x-request-id" and (not self.emit_request_id or _VALID_ID.match(value)):
                rid = value
            elif name == b"content-length" and value.isdigit():
                length = int(value)
        rid_str = rid.decode() if rid else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid_str
        rid_header = (b"x-request-id", rid_str.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start" and self.emit_request_id:
                message["headers"] = [*message.get("headers", []), rid_header]
            await send(message)

        if length > self.max_body_bytes:
            await _reject(send_with_id, PayloadTooLarge(self._too_large()))
            return
        if self.in_flight >= self.max_in_flight and scope["path"].startswith("/v1/"):
            await _reject(
                send_with_id,
                Overloaded(
                    "The gateway is overloaded; retry shortly.", headers={"retry-after": "1"}
                ),
            )
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self._too_large())
            return message

        self.in_flight += 1
        try:
            await self.app(scope, limited_receive, send_with_id)
        finally:
            self.in_flight -= 1

    def _too_large(self) -> str:
        return f"Request body exceeds the limit of {self.max_body_bytes} bytes."


async def _reject(send: Send, error: GatewayError) -> None:
    body = orjson.dumps(error.body())
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.encode(), v.encode()) for k, v in error.headers.items()),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
