"""Server-sent events: the only place typed chunks become bytes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from serve.errors import GatewayError, InternalError
from serve.streams import aclose_quietly

log = logging.getLogger("raygate.sse")

DONE = b"data: [DONE]\n\n"


def event(payload: Mapping[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


async def encode(
    first: Mapping[str, Any], rest: AsyncIterator[Any], request_id: str
) -> AsyncIterator[bytes]:
    """Encode a stream whose first chunk already arrived (so errors before it are HTTP errors).

    A failure after the first chunk ends the stream with an OpenAI error event, which the
    official SDK raises as an APIError; the stream is always closed, never left hanging.
    """
    try:
        yield event(first)
        async for chunk in rest:
            yield event(chunk)
    except GatewayError as exc:
        yield event(exc.body())
        return
    except Exception:
        log.exception("stream failed (request %s)", request_id)
        yield event(InternalError(f"The stream failed (request {request_id}).").body())
        return
    finally:
        await aclose_quietly(rest)
    yield DONE
