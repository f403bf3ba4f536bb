"""Keyset pagination cursors for the audit log: the last row's (started_at, request_id)."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

import orjson

from serve.errors import InvalidRequest

__all__ = ["decode_cursor", "encode_cursor"]


def encode_cursor(started_at: datetime, request_id: str) -> str:
    raw = orjson.dumps([started_at.astimezone(UTC).isoformat(), request_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        started, request_id = orjson.loads(raw)
        when = datetime.fromisoformat(started)
        if not isinstance(request_id, str) or when.tzinfo is None:
            raise ValueError("bad cursor")
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
        raise InvalidRequest(
            "Invalid cursor; pass the `next_cursor` of a previous page.",
            param="cursor",
            code="invalid_cursor",
        ) from None
    return when.astimezone(UTC), request_id
