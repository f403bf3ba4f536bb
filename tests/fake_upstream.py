"""A loopback OpenAI-compatible upstream that records what it receives (tests only).

Behaviour by upstream model name: anything else answers normally; requests carrying
``tools`` get a tool call back; ``fail-500`` / ``fail-429`` / ``malformed`` fail as named;
``break-mid-stream`` sends one chunk and then an error event; ``echo`` answers with the
last user message (streamed in 4-character pieces), so tests see what the model was sent
come back. It also serves a JWKS.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeUpstream:
    jwks: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    requests: list[Recorded] = field(default_factory=list)
    port: int = 0
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def last(self, path_suffix: str) -> Recorded:
        for item in reversed(self.requests):
            if item.path.endswith(path_suffix):
                return item
        raise AssertionError(f"upstream received no request for {path_suffix}")

    def app(self) -> Starlette:
        async def chat(request: Request) -> Response:
            body = orjson.loads(await request.body())
            self.requests.append(Recorded(request.url.path, dict(request.headers), body))
            model = body.get("model", "")
            if model == "fail-500":
                return Response(b'{"error":{"message":"boom at 10.0.0.7"}}', 500)
            if model == "fail-429":
                return Response(b'{"error":{"message":"slow down"}}', 429)
            if model == "malformed":
                return Response(b"{not json", 200, media_type="application/json")
            if body.get("stream"):
                return StreamingResponse(_stream(body), media_type="text/event-stream")
            return Response(orjson.dumps(_completion(body)), media_type="application/json")

        async def jwks(request: Request) -> Response:
            return Response(orjson.dumps(self.jwks), media_type="application/json")

        return Starlette(
            routes=[
                Route("/v1/chat/completions", chat, methods=["POST"]),
                Route("/.well-known/jwks.json", jwks),
            ]
        )

    def start(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake upstream did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)


def _message(body: dict[str, Any]) -> dict[str, Any]:
    if body.get("tools"):
        tool = body["tools"][0]["function"]["name"]
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": tool, "arguments": '{"city": "Tokyo"}'},
                }
            ],
        }
    if body.get("model") == "echo":
        return {"role": "assistant", "content": _last_user(body)}
    return {"role": "assistant", "content": "Hello from upstream."}


def _last_user(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""


def _completion(body: dict[str, Any]) -> dict[str, Any]:
    message = _message(body)
    return {
        "id": "chatcmpl-upstream",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": body.get("model"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if "tool_calls" in message else "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13},
    }


async def _stream(body: dict[str, Any]) -> Any:
    base = {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1, "model": "x"}
    words = ["Hello", " from", " upstream."]
    if body.get("model") == "echo":
        text = _last_user(body)
        words = [text[i : i + 4] for i in range(0, len(text), 4)]
    yield _event(
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}
    )
    for i, word in enumerate(words):
        if body.get("model") == "break-mid-stream" and i == 1:
            yield _event({"error": {"message": "upstream exploded", "type": "server_error"}})
            return
        yield _event(
            {**base, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
        )
        await asyncio.sleep(0)
    yield _event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        usage = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
        yield _event({**base, "choices": [], "usage": usage})
    yield b"data: [DONE]\n\n"


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"
