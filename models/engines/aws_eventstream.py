"""Decoder for AWS event streams (``application/vnd.amazon.eventstream``).

Bedrock's streaming APIs (``converse-stream``, ``invoke-with-response-stream``) answer with
binary frames, not SSE. Each frame is::

    total_length u32 | headers_length u32 | prelude_crc u32 (CRC32 of the first 8 bytes)
    headers (headers_length bytes) | payload | message_crc u32 (CRC32 of all preceding bytes)

with big-endian integers and the IEEE CRC32 (``zlib.crc32``). Frames arrive split across
HTTP chunks at arbitrary byte offsets, so the decoder buffers and yields whole messages
only. Both CRCs are checked: a corrupted frame must fail loudly rather than feed a
half-garbled JSON payload to the translator. Sizes are bounded so a hostile or broken
peer cannot make the gateway buffer without limit.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass

__all__ = [
    "MAX_HEADERS_LENGTH",
    "MAX_MESSAGE_LENGTH",
    "EventStreamDecoder",
    "EventStreamError",
    "EventStreamMessage",
    "HeaderValue",
]

# AWS's own limits (aws-c-event-stream): 16 MiB per message, 128 KiB of headers.
MAX_MESSAGE_LENGTH = 16 * 1024 * 1024
MAX_HEADERS_LENGTH = 128 * 1024

_PRELUDE = struct.Struct(">III")
_PRELUDE_LENGTH = 12
_CRC_LENGTH = 4
_MIN_MESSAGE_LENGTH = _PRELUDE_LENGTH + _CRC_LENGTH

# bool | int8..int64 | bytes | str | timestamp (ms since the epoch, as int) | uuid
HeaderValue = bool | int | bytes | str | uuid.UUID

_FIXED_INTS = {2: struct.Struct(">b"), 3: struct.Struct(">h"), 4: struct.Struct(">i")}
_INT64 = struct.Struct(">q")
_UINT16 = struct.Struct(">H")


class EventStreamError(ValueError):
    """The byte stream is not a valid event stream (bad CRC, bad lengths, truncated)."""


@dataclass(frozen=True, slots=True)
class EventStreamMessage:
    headers: dict[str, HeaderValue]
    payload: bytes

    def header(self, name: str) -> str | None:
        """A string header (``:event-type``, ``:message-type``...), or None when absent."""
        value = self.headers.get(name)
        return value if isinstance(value, str) else None


class EventStreamDecoder:
    """Incremental decoder: ``feed`` bytes as they arrive, get back every completed message.

    Call ``close`` at the end of the stream: leftover bytes mean the peer stopped
    mid-frame, which is an error rather than a clean end.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[EventStreamMessage]:
        self._buffer += data
        messages: list[EventStreamMessage] = []
        offset = 0
        buffer = self._buffer
        while len(buffer) - offset >= _PRELUDE_LENGTH:
            total_length, headers_length = _check_prelude(buffer, offset)
            if len(buffer) - offset < total_length:
                break
            messages.append(_decode_message(buffer, offset, total_length, headers_length))
            offset += total_length
        if offset:
            del buffer[:offset]
        return messages

    def close(self) -> None:
        if self._buffer:
            pending = len(self._buffer)
            self._buffer.clear()
            raise EventStreamError(f"event stream ended inside a message ({pending} bytes left)")


def _check_prelude(buffer: bytearray, offset: int) -> tuple[int, int]:
    total_length, headers_length, prelude_crc = _PRELUDE.unpack_from(buffer, offset)
    if zlib.crc32(buffer[offset : offset + 8]) != prelude_crc:
        raise EventStreamError("event stream prelude CRC mismatch")
    if not _MIN_MESSAGE_LENGTH <= total_length <= MAX_MESSAGE_LENGTH:
        raise EventStreamError(f"event stream message length {total_length} out of range")
    if headers_length > MAX_HEADERS_LENGTH or headers_length > total_length - _MIN_MESSAGE_LENGTH:
        raise EventStreamError(f"event stream headers length {headers_length} out of range")
    return total_length, headers_length


def _decode_message(
    buffer: bytearray, offset: int, total_length: int, headers_length: int
) -> EventStreamMessage:
    end = offset + total_length
    (message_crc,) = struct.unpack_from(">I", buffer, end - _CRC_LENGTH)
    if zlib.crc32(buffer[offset : end - _CRC_LENGTH]) != message_crc:
        raise EventStreamError("event stream message CRC mismatch")
    headers_start = offset + _PRELUDE_LENGTH
    payload_start = headers_start + headers_length
    headers = _decode_headers(bytes(buffer[headers_start:payload_start]))
    return EventStreamMessage(headers, bytes(buffer[payload_start : end - _CRC_LENGTH]))


def _decode_headers(data: bytes) -> dict[str, HeaderValue]:
    headers: dict[str, HeaderValue] = {}
    pos = 0
    try:
        while pos < len(data):
            name_length = data[pos]
            pos += 1
            name = data[pos : pos + name_length].decode()
            if len(name) == 0 or pos + name_length > len(data):
                raise EventStreamError("event stream header name is truncated or empty")
            pos += name_length
            kind = data[pos]
            pos += 1
            value, pos = _decode_value(kind, data, pos)
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError):
        raise EventStreamError("event stream headers are malformed") from None
    return headers


def _decode_value(kind: int, data: bytes, pos: int) -> tuple[HeaderValue, int]:
    if kind == 0:
        return True, pos
    if kind == 1:
        return False, pos
    fixed = _FIXED_INTS.get(kind)
    if fixed is not None:
        return fixed.unpack_from(data, pos)[0], pos + fixed.size
    if kind in (5, 8):  # int64, timestamp (milliseconds)
        return _INT64.unpack_from(data, pos)[0], pos + 8
    if kind in (6, 7):  # byte array, UTF-8 string: u16 length prefix
        (length,) = _UINT16.unpack_from(data, pos)
        start = pos + 2
        raw = data[start : start + length]
        if len(raw) != length:
            raise EventStreamError("event stream header value is truncated")
        return (raw.decode() if kind == 7 else raw), start + length
    if kind == 9:
        raw = data[pos : pos + 16]
        if len(raw) != 16:
            raise EventStreamError("event stream header value is truncated")
        return uuid.UUID(bytes=raw), pos + 16
    raise EventStreamError(f"event stream header type {kind} is unknown")
