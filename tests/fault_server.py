"""A loopback OpenAI-compatible server that fails at the socket level (tests only).

`fake_upstream` fails politely (a status and a JSON body). Real providers and the networks
in front of them also reset connections, hang, send bodies that are not JSON or stop in
the middle of a stream. This server is raw asyncio over TCP so it can do all of that; the
request's ``model`` picks the fault:

==================  =============================================================
``ok``              a normal answer (JSON, or an SSE stream when ``stream``)
``error-500``       500 with a body that names an internal host (must not leak)
``error-429``       429 with ``Retry-After: 0``
``html-502``        502 with an HTML page, as a load balancer sends
``reset``           reads the request, then resets the connection (RST)
``close``           reads the request, then closes without answering
``hang``            reads the request and never answers
``malformed``       200 ``application/json`` whose body is not JSON
``wrong-shape``     200 with valid JSON that is not a chat completion
``truncated``       200 with a Content-Length larger than the body, then closes
``mid-stream``      an SSE stream that stops after its first content chunk (no [DONE])
``mid-stream-reset`` as ``mid-stream``, then a connection reset
``gate``            a normal answer once the test calls ``open_gate()``
==================  =============================================================
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections import Counter
from typing import Any

import orjson

LEAK = "10.20.30.40"  # an internal address the 500 body carries; callers must not see it


class FaultServer:
    def __init__(self) -> None:
        self.port = 0
        self.received: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._gate: asyncio.Event | None = None

    def open_gate(self) -> None:
        """Let every ``gate`` request (waiting or to come) be answered."""
        if self._loop is not None and self._gate is not None:
            self._loop.call_soon_threadsafe(self._gate.set)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("fault server did not start")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._gate = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._started.set()
        async with server:
            await self._stop.wait()
            for writer in list(self._writers):
                writer.transport.abort()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                if not await self._answer(request, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            if not writer.transport.is_closing():
                writer.close()

    async def _answer(self, body: dict[str, Any], writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection must not be reused."""
        mode = str(body.get("model", "ok"))
        self.received[mode] += 1
        stream = bool(body.get("stream"))
        if mode == "gate":
            assert self._gate is not None
            await self._gate.wait()
            mode = "ok"
        if mode == "ok":
            if stream:
                await _send_stream(writer, complete=True)
            else:
                _send(writer, 200, orjson.dumps(_completion()))
            await writer.drain()
            return True
        if mode == "error-500":
            _send(writer, 500, orjson.dumps({"error": {"message": f"db down at {LEAK}:5432"}}))
        elif mode == "error-429":
            _send(writer, 429, b'{"error":{"message":"rate limited"}}', {"retry-after": "0"})
        elif mode == "html-502":
            _send(writer, 502, b"<html><body>502 Bad Gateway</body></html>", ctype="text/html")
        elif mode == "reset":
            _reset(writer)
            return False
        elif mode == "close":
            writer.close()
            return False
        elif mode == "hang":
            await asyncio.Event().wait()  # until the server stops and aborts the transport
        elif mode == "malformed":
            _send(writer, 200, b'{"id": "chatcmpl-x", "choices": [')
        elif mode == "wrong-shape":
            _send(writer, 200, b'{"status": "ok", "result": 42}')
        elif mode == "truncated":
            head = b'{"id": "chatcmpl-x", "object": "chat.comp'
            writer.write(_head(200, 400, "application/json") + head)
            await writer.drain()
            writer.close()
            return False
        elif mode in ("mid-stream", "mid-stream-reset"):
            await _send_stream(writer, complete=False)
            if mode == "mid-stream-reset":
                _reset(writer)
            else:
                writer.close()
            return False
        else:
            _send(writer, 404, b'{"error":{"message":"unknown fault"}}')
        await writer.drain()
        return True


async def _read_request(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    raw = await reader.readexactly(length) if length else b"{}"
    parsed: dict[str, Any] = orjson.loads(raw)
    return parsed


def _head(status: int, length: int, ctype: str, extra: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"content-type: {ctype}", f"content-length: {length}"]
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _send(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    extra: dict[str, str] | None = None,
    ctype: str = "application/json",
) -> None:
    writer.write(_head(status, len(body), ctype, extra) + body)


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:  # SO_LINGER 0: close() sends RST instead of FIN
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _completion() -> dict[str, Any]:
    return {
        "id": "chatcmpl-fault-ok",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "ok",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Healthy answer."},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }


async def _send_stream(writer: asyncio.StreamWriter, *, complete: bool) -> None:
    writer.write(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    base = {"id": "chatcmpl-fault", "object": "chat.completion.chunk", "created": 1, "model": "x"}
    events: list[dict[str, Any]] = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": "Half"}, "finish_reason": None}]},
    ]
    if complete:
        events += [
            {
                **base,
                "choices": [{"index": 0, "delta": {"content": " done."}, "finish_reason": None}],
            },
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {
                **base,
                "choices": [],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
            },
        ]
    for event in events:
        _chunk(writer, b"data: " + orjson.dumps(event) + b"\n\n")
        await writer.drain()
    if complete:
        _chunk(writer, b"data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()


def _chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
