"""Closing chained async iterators: each stage closes the one it reads from.

Python does not close an async generator's source when the generator itself is closed
(the source is only finalised later, by the garbage collector), so every stage of a
stream - engine, cache recorder, meter, shaper, SSE encoder - closes its source in
``finally`` with `aclose_quietly`, under a shield: a client that disconnects cancels the
response task, and a cancelled scope would otherwise interrupt the clean-up itself
(settling the request's reservations, writing its record).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio

__all__ = ["aclose_quietly"]


async def aclose_quietly(iterator: AsyncIterator[Any]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is None:
        return
    with anyio.CancelScope(shield=True):
        await close()
