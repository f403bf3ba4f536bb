"""The tests' fake Bedrock Runtime (real Converse wire format, SigV4 verified on every
request) as a standalone server for bench/run.sh: both gateways sign for it with the same
static credentials. Usage: .venv/bin/python bench/fake_bedrock_server.py PORT"""

from __future__ import annotations

import collections
import importlib
import sys
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def health(request: Request) -> Response:
    return Response(b"ok")


def main(port: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    fake = importlib.import_module("fake_bedrock").FakeBedrock()
    fake.received = collections.deque(maxlen=64)  # type: ignore[assignment]  # bounded for long runs
    app = Starlette(
        routes=[Route("/health", health), Route("/{path:path}", fake._handle, methods=["POST"])]
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main(int(sys.argv[1]))
