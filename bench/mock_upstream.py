"""Minimal, fast OpenAI-compatible upstream for the gateway benchmark.

A raw asyncio HTTP/1.1 keep-alive server (uvloop if importable), stdlib only:
  POST /v1/chat/completions  fixed chat.completion JSON, or a short SSE stream if "stream": true
  GET  /v1/models            one model, "mock"
  GET  /health               200
Usage: python bench/mock_upstream.py [PORT]   (default 9100, binds 127.0.0.1)
"""

import asyncio
import contextlib
import json
import sys
import time

MODEL = "mock"


def _response(status: str, ctype: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 "
        + status.encode()
        + b"\r\ncontent-type: "
        + ctype
        + b"\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def _json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


CHAT = _response(
    "200 OK",
    b"application/json",
    _json(
        {
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": MODEL,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "logprobs": None,
                    "message": {"role": "assistant", "content": "Hi there!"},
                }
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
        }
    ),
)


def _chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
    obj = {
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        obj["usage"] = usage
    return b"data: " + _json(obj) + b"\n\n"


_SSE = b"".join(
    [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "Hi"}),
        _chunk({"content": " there!"}),
        _chunk({}, "stop", {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}),
        b"data: [DONE]\n\n",
    ]
)
STREAM = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"content-length: " + str(len(_SSE)).encode() + b"\r\n\r\n" + _SSE
)
MODELS = _response(
    "200 OK",
    b"application/json",
    _json(
        {
            "object": "list",
            "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "mock"}],
        }
    ),
)
HEALTH = _response("200 OK", b"application/json", b'{"status":"ok"}')
NOT_FOUND = _response("404 Not Found", b"application/json", b'{"error":{"message":"not found"}}')
BAD = _response("400 Bad Request", b"text/plain", b"bad request")


class Http(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:  # handles pipelined requests
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1").split("\r\n")
            parts = head[0].split(" ")
            headers = {
                k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])
            }
            if len(parts) != 3 or "chunked" in headers.get("transfer-encoding", ""):
                self.t.write(BAD)  # the mock only understands Content-Length bodies
                self.t.close()
                return
            n = int(headers.get("content-length", "0"))
            if len(self.buf) < end + 4 + n:
                return
            body = self.buf[end + 4 : end + 4 + n]
            self.buf = self.buf[end + 4 + n :]
            self.t.write(self.route(parts[0], parts[1].split("?")[0], body))
            if headers.get("connection", "").lower() == "close":
                self.t.close()
                return

    @staticmethod
    def route(method: str, path: str, body: bytes) -> bytes:
        if method == "POST" and path.endswith("/chat/completions"):
            if b'"stream"' in body:
                try:
                    if json.loads(body).get("stream"):
                        return STREAM
                except ValueError:
                    return BAD
            return CHAT
        if method == "GET" and path.endswith("/models"):
            return MODELS
        if method == "GET" and path == "/health":
            return HEALTH
        return NOT_FOUND


async def main(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Http, "127.0.0.1", port, backlog=1024)
    print(f"mock upstream on http://127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    run = asyncio.run
    try:
        import uvloop  # type: ignore[import-not-found]

        run = uvloop.run
    except ImportError:
        pass
    with contextlib.suppress(KeyboardInterrupt):
        run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 9100))
