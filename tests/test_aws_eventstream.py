"""The event-stream decoder: every header type, arbitrary chunk boundaries, CRCs enforced.

Frames come from the fake's encoder; botocore's own event-stream parser decodes the same
bytes as an independent oracle, so the encoder and the decoder cannot agree on a mistake.
"""

from __future__ import annotations

import itertools
import random
import struct
import uuid
import zlib
from typing import Any

import pytest
from botocore.eventstream import EventStreamBuffer
from fake_bedrock import HeaderInput, encode_message, event_frame, exception_frame

from models.engines.aws_eventstream import (
    MAX_MESSAGE_LENGTH,
    EventStreamDecoder,
    EventStreamError,
    HeaderValue,
)

UUID = uuid.UUID("0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9")

# (header given to the encoder, value the decoder must return)
HEADER_CASES: list[tuple[str, HeaderInput, HeaderValue]] = [
    ("true", True, True),
    ("false", False, False),
    ("byte", ("byte", -7), -7),
    ("short", ("short", -30_000), -30_000),
    ("integer", ("integer", 2_000_000_000), 2_000_000_000),
    ("long", ("long", -(2**62)), -(2**62)),
    ("bytes", b"\x00\xffraw", b"\x00\xffraw"),
    ("string", "héllo ✓", "héllo ✓"),
    ("timestamp", ("timestamp", 1_700_000_000_123), 1_700_000_000_123),
    ("uuid", UUID, UUID),
]


def _botocore_decode(data: bytes) -> list[Any]:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return list(buffer)


@pytest.mark.parametrize(
    ("name", "given", "expected"), HEADER_CASES, ids=[c[0] for c in HEADER_CASES]
)
def test_each_header_type_decodes_like_botocore(
    name: str, given: HeaderInput, expected: HeaderValue
) -> None:
    frame = encode_message({name: given}, b"payload")
    [ours] = EventStreamDecoder().feed(frame)
    [theirs] = _botocore_decode(frame)
    assert ours.headers == {name: expected}
    assert ours.payload == theirs.payload == b"payload"
    oracle = theirs.headers[name]
    assert (oracle == expected.bytes) if isinstance(expected, uuid.UUID) else oracle == expected


def _stream() -> bytes:
    frames = [
        event_frame("messageStart", {"role": "assistant"}),
        encode_message({}, b""),  # no headers, no payload: the smallest legal message
        event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x" * 300}}),
        encode_message({n: g for n, g, _ in HEADER_CASES}, b"\x00" * 70),
        exception_frame("throttlingException", "slow down"),
    ]
    return b"".join(frames)


def _decode_in_pieces(data: bytes, cuts: list[int]) -> list[Any]:
    decoder = EventStreamDecoder()
    messages = []
    edges = [0, *sorted(cuts), len(data)]
    for start, end in itertools.pairwise(edges):
        messages.extend(decoder.feed(data[start:end]))
    decoder.close()
    return messages


@pytest.mark.parametrize("piece", [1, 2, 3, 7, 12, 13, 16, 64, 1000])
def test_fixed_size_pieces_give_the_same_messages(piece: int) -> None:
    data = _stream()
    whole = EventStreamDecoder().feed(data)
    assert len(whole) == 5
    pieces = _decode_in_pieces(data, list(range(piece, len(data), piece)))
    assert pieces == whole
    assert [m.payload for m in whole] == [m.payload for m in _botocore_decode(data)]


def test_random_boundaries_give_the_same_messages() -> None:
    data = _stream()
    whole = EventStreamDecoder().feed(data)
    rng = random.Random(20240607)
    for _ in range(200):
        cuts = rng.sample(range(1, len(data)), rng.randint(1, 40))
        assert _decode_in_pieces(data, cuts) == whole


def test_messages_carry_event_and_exception_headers() -> None:
    first, *_, last = EventStreamDecoder().feed(_stream())
    assert first.header(":event-type") == "messageStart"
    assert first.header(":message-type") == "event"
    assert last.header(":exception-type") == "throttlingException"
    assert last.header(":missing") is None


def _flip(data: bytes, offset: int) -> bytes:
    damaged = bytearray(data)
    damaged[offset] ^= 0x40
    return bytes(damaged)


FRAME = event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "hi"}})


@pytest.mark.parametrize(
    ("offset", "reason"),
    [
        (0, "prelude CRC"),  # total length
        (5, "prelude CRC"),  # headers length
        (9, "prelude CRC"),  # the prelude CRC itself
        (14, "message CRC"),  # inside the headers
        (len(FRAME) - 6, "message CRC"),  # inside the payload
        (len(FRAME) - 1, "message CRC"),  # the message CRC itself
    ],
)
def test_corruption_anywhere_is_rejected(offset: int, reason: str) -> None:
    with pytest.raises(EventStreamError, match=reason):
        EventStreamDecoder().feed(_flip(FRAME, offset))


def test_a_stream_that_stops_mid_frame_fails_on_close() -> None:
    decoder = EventStreamDecoder()
    assert decoder.feed(FRAME + FRAME[:20]) != []
    with pytest.raises(EventStreamError, match="ended inside a message"):
        decoder.close()


def _prelude(total: int, headers: int) -> bytes:
    head = struct.pack(">II", total, headers)
    return head + struct.pack(">I", zlib.crc32(head))


@pytest.mark.parametrize(
    ("total", "headers", "reason"),
    [
        (MAX_MESSAGE_LENGTH + 1, 0, "message length"),  # refused before buffering 16 MiB
        (15, 0, "message length"),
        (40, 30, "headers length"),  # headers would overlap the message CRC
    ],
)
def test_impossible_lengths_are_rejected_from_the_prelude(
    total: int, headers: int, reason: str
) -> None:
    with pytest.raises(EventStreamError, match=reason):
        EventStreamDecoder().feed(_prelude(total, headers))


def _frame_with_raw_headers(raw_headers: bytes) -> bytes:
    total = 12 + len(raw_headers) + 4
    message = _prelude(total, len(raw_headers)) + raw_headers
    return message + struct.pack(">I", zlib.crc32(message))


@pytest.mark.parametrize(
    "raw_headers",
    [
        b"\x04name\x2a",  # unknown value type 42
        b"\x04name\x07\x00\x09short",  # string longer than the headers
        b"\x09name",  # name longer than the headers
        b"\x00\x00",  # empty name
        b"\x04name\x09\x01\x02",  # truncated uuid
    ],
)
def test_malformed_headers_are_rejected(raw_headers: bytes) -> None:
    with pytest.raises(EventStreamError):
        EventStreamDecoder().feed(_frame_with_raw_headers(raw_headers))
