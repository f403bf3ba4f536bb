"""A deterministic Ray Serve LLM engine: answers as vLLM's OpenAI server does, on CPU.

Injected into `LLMServer` (the `VLLMModel` deployment) through Ray Serve LLM's engine
seam, in place of `VLLMEngine`. The answer to a prompt is its words in reverse order, one
word per token; streams are vLLM's exact events (``model_dump_json(exclude_unset=True)``:
a role chunk, a chunk per token, the last with ``finish_reason``, the usage chunk when
asked for, ``[DONE]``). A prompt of ``raise-400`` is refused with vLLM's ErrorResponse;
``fail-mid-stream`` sends one token, then vLLM's streaming error event.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from ray.llm._internal.serve.core.configs.llm_config import DiskMultiplexConfig, LLMConfig
from ray.llm._internal.serve.core.configs.openai_api_models import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
    ErrorInfo,
    ErrorResponse,
)
from ray.llm._internal.serve.core.engine.protocol import LLMEngine
from ray.llm._internal.serve.core.protocol import RawRequestInfo
from vllm.entrypoints.generate.base.protocol import DeltaMessage
from vllm.entrypoints.openai.chat_completion.protocol import (
    ChatCompletionResponseChoice,
    ChatCompletionResponseStreamChoice,
    ChatCompletionStreamResponse,
    ChatMessage,
)
from vllm.entrypoints.openai.completion.protocol import (
    CompletionResponseChoice,
    CompletionResponseStreamChoice,
    CompletionStreamResponse,
)
from vllm.entrypoints.serve.engine.protocol import UsageInfo

__all__ = ["CREATED", "FakeEngine", "answer_words"]

CREATED = 1_700_000_000
REFUSED = "raise-400"
FAIL_MID_STREAM = "fail-mid-stream"
REFUSAL = "This model's maximum context length is 16 tokens."


def answer_words(prompt: str) -> list[str]:
    return list(reversed(prompt.split()))


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in content or () if isinstance(p, dict))


def _usage(prompt: str, completion: int) -> UsageInfo:
    tokens = len(prompt.split())
    return UsageInfo(
        prompt_tokens=tokens, completion_tokens=completion, total_tokens=tokens + completion
    )


def _refusal() -> ErrorResponse:
    return ErrorResponse(
        error=ErrorInfo(message=REFUSAL, type="BadRequestError", param="messages", code=400)
    )


def _streaming_error() -> str:
    error = ErrorResponse(
        error=ErrorInfo(
            message="CUDA error: an illegal memory access", type="InternalServerError", code=500
        )
    )
    return f"data: {error.model_dump_json()}\n\n"


def _include_usage(request: Any) -> bool:
    return bool(request.stream_options and request.stream_options.include_usage)


class FakeEngine(LLMEngine):
    def __init__(self, llm_config: LLMConfig) -> None:
        self._model = llm_config.model_id
        self.started = False

    async def start(self) -> None:
        self.started = True

    def routing_stats(self) -> dict[str, Any]:
        return {}

    async def resolve_lora(self, lora_model: DiskMultiplexConfig) -> None:
        return None

    async def reset_prefix_cache(self) -> None:
        return None

    async def check_health(self) -> None:
        if not self.started:
            raise RuntimeError("engine not started")

    async def chat(
        self, request: ChatCompletionRequest, raw_request_info: RawRequestInfo | None = None
    ) -> AsyncGenerator[Any, None]:
        prompt = _text(request.messages[-1]["content"]) if request.messages else ""
        if prompt == REFUSED:
            yield _refusal()
            return
        words = answer_words(prompt)
        rid = f"chatcmpl-{request.request_id}"
        if not request.stream:
            yield ChatCompletionResponse(
                id=rid,
                created=CREATED,
                model=self._model,
                choices=[
                    ChatCompletionResponseChoice(
                        index=0,
                        message=ChatMessage(role="assistant", content=" ".join(words)),
                        logprobs=None,
                        finish_reason="stop",
                    )
                ],
                usage=_usage(prompt, len(words)),
            )
            return

        def event(delta: DeltaMessage, finish: str | None = None) -> str:
            choice = ChatCompletionResponseStreamChoice(
                index=0, delta=delta, logprobs=None, finish_reason=finish
            )
            chunk = ChatCompletionStreamResponse(
                id=rid,
                object="chat.completion.chunk",
                created=CREATED,
                choices=[choice],
                model=self._model,
            )
            return f"data: {chunk.model_dump_json(exclude_unset=True)}\n\n"

        yield event(DeltaMessage(role="assistant", content=""))
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
        if prompt == FAIL_MID_STREAM:
            yield event(DeltaMessage(content=pieces[0]))
            yield _streaming_error()
            yield "data: [DONE]\n\n"
            return
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            yield event(DeltaMessage(content=piece), "stop" if last else None)
        if _include_usage(request):
            usage = ChatCompletionStreamResponse(
                id=rid,
                object="chat.completion.chunk",
                created=CREATED,
                choices=[],
                model=self._model,
                usage=_usage(prompt, len(words)),
            )
            yield f"data: {usage.model_dump_json(exclude_unset=True, exclude_none=True)}\n\n"
        yield "data: [DONE]\n\n"

    async def completions(
        self, request: CompletionRequest, raw_request_info: RawRequestInfo | None = None
    ) -> AsyncGenerator[Any, None]:
        prompt = request.prompt if isinstance(request.prompt, str) else ""
        if prompt == REFUSED:
            yield _refusal()
            return
        words = answer_words(prompt)
        rid = f"cmpl-{request.request_id}"
        if not request.stream:
            yield CompletionResponse(
                id=rid,
                created=CREATED,
                model=self._model,
                choices=[
                    CompletionResponseChoice(
                        index=0, text=" ".join(words), logprobs=None, finish_reason="stop"
                    )
                ],
                usage=_usage(prompt, len(words)),
            )
            return
        for i, word in enumerate(words):
            last = i == len(words) - 1
            choice = CompletionResponseStreamChoice(
                index=0,
                text=word if i == 0 else " " + word,
                logprobs=None,
                finish_reason="stop" if last else None,
            )
            chunk = CompletionStreamResponse(
                id=rid, created=CREATED, model=self._model, choices=[choice]
            )
            yield f"data: {chunk.model_dump_json(exclude_unset=True)}\n\n"
        if _include_usage(request):
            usage = CompletionStreamResponse(
                id=rid,
                created=CREATED,
                model=self._model,
                choices=[],
                usage=_usage(prompt, len(words)),
            )
            yield f"data: {usage.model_dump_json(exclude_unset=True, exclude_none=True)}\n\n"
        yield "data: [DONE]\n\n"

    async def embeddings(
        self, request: Any, raw_request_info: RawRequestInfo | None = None
    ) -> AsyncGenerator[Any, None]:
        yield ErrorResponse(
            error=ErrorInfo(message="not a pooling model", type="BadRequestError", code=400)
        )

    async def transcriptions(
        self, request: Any, raw_request_info: RawRequestInfo | None = None
    ) -> AsyncGenerator[Any, None]:
        yield ErrorResponse(
            error=ErrorInfo(message="not a speech model", type="BadRequestError", code=400)
        )
