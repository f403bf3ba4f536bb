"""The NER tier of the guardrails (GiNZA) in its own deployment: it holds a 450 MB model
and spends hundreds of milliseconds per KB of Japanese, so it scales apart from the ingress
and never blocks its event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from guardrails import GinzaDetector
from guardrails.spans import Span


class NerDeployment:
    def __init__(self) -> None:
        self._detector = GinzaDetector()

    async def detect_batch(self, texts: Sequence[str]) -> list[list[Span]]:
        return await asyncio.to_thread(self._detector.detect_batch, list(texts))

    async def check_health(self) -> None:
        return None
