"""Clients for a gateway app served in process (no sockets): httpx over ASGI, and the
official openai SDK over that, as the end-to-end tests use it against the real server."""

from __future__ import annotations

from typing import Any

import httpx
import openai

BASE_URL = "http://gw"


def http(app: Any) -> httpx.AsyncClient:
    """App exceptions become 500 responses, as a server would send them."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url=BASE_URL
    )


def sdk(app: Any, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{BASE_URL}/v1", api_key=key, http_client=http(app), max_retries=0
    )
