"""llama.cpp engine for small open-weight models on CPU (the embedded default).

One `Llama` per replica; llama.cpp contexts are not thread-safe, so one generation runs
at a time under a lock, in a worker thread so the replica's event loop stays free.
Streams cross from the thread through an asyncio queue; closing the stream (a client
that went away) stops the generation at the next token.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from models.engine import Request
from models.engines.unsupported import NoEmbeddings
from serve.config import LlamaCppBackend
from serve.errors import InvalidRequest
from serve.openai_types import ChatCompletion, ChatCompletionChunk, Completion, usage

_END = object()


def resolve_model_path(spec: str) -> Path:
    """``package:<dist>/<file>`` (a file shipped in a wheel) or a filesystem path."""
    if not spec.startswith("package:"):
        return Path(spec).expanduser()
    dist, _, filename = spec[len("package:") :].partition("/")
    for file in importlib.metadata.files(dist) or ():
        if file.name == filename:
            return Path(str(file.locate()))
    raise FileNotFoundError(f"{filename} is not in the installed package {dist}")


class _TokenCounter:
    """A logits processor that counts prompt and sampled tokens exactly."""

    def __init__(self) -> None:
        self.prompt_tokens = 0
        self.sampled = 0

    def __call__(
        self, input_ids: npt.NDArray[np.intc], scores: npt.NDArray[np.single]
    ) -> npt.NDArray[np.single]:
        if self.sampled == 0:
            self.prompt_tokens = len(input_ids)
        self.sampled += 1
        return scores

    def completion_tokens(self, finish_reason: str | None) -> int:
        # The end-of-generation token is sampled but not part of the completion.
        return max(0, self.sampled - 1) if finish_reason == "stop" else self.sampled


def _response_format(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None or value.get("type") == "text":
        return None
    if value.get("type") == "json_object":
        return {"type": "json_object"}
    if value.get("type") == "json_schema":
        schema = (value.get("json_schema") or {}).get("schema")
        return {"type": "json_object", "schema": schema} if schema else {"type": "json_object"}
    raise InvalidRequest("Unsupported response_format type.", param="response_format")


def _text_content(content: Any, where: str) -> Any:
    """A message's content as llama.cpp chat templates take it: a string. OpenAI's list of
    content parts is joined (text parts only, newline-separated, as vLLM does); other
    parts (images, audio, files) are refused, since this engine reads text only. No content
    (an assistant turn that only called tools) is the empty string: templates concatenate."""
    if content is None:
        return ""
    if not isinstance(content, list):
        return content
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text":
            raise InvalidRequest(
                "This model accepts only text content parts.", param=f"{where}[{j}]"
            )
        texts.append(str(part.get("text", "")))
    return "\n".join(texts)


class LlamaCppEngine(NoEmbeddings):
    def __init__(self, public_name: str, backend: LlamaCppBackend) -> None:
        from llama_cpp import Llama

        self._name = public_name
        self._backend = backend
        self._llama = Llama(
            model_path=str(resolve_model_path(backend.model_path)),
            n_ctx=backend.n_ctx,
            n_threads=backend.n_threads,
            verbose=False,
        )
        self._lock = threading.Lock()

    # -- parameters ---------------------------------------------------------------------

    def _sampling(self, request: Request) -> dict[str, Any]:
        if request.get("n", 1) != 1:
            raise InvalidRequest("This model supports only n=1.", param="n")
        max_tokens = request.get("max_completion_tokens") or request.get("max_tokens")
        return {
            "max_tokens": max_tokens or self._backend.default_max_tokens,
            "temperature": request.get("temperature", 1.0),
            "top_p": request.get("top_p", 1.0),
            "stop": request.get("stop") or [],
            "seed": request.get("seed"),
            "presence_penalty": request.get("presence_penalty", 0.0),
            "frequency_penalty": request.get("frequency_penalty", 0.0),
        }

    def _chat_args(self, request: Request) -> dict[str, Any]:
        args = self._sampling(request)
        args["messages"] = [
            {
                "role": m.get("role"),
                # Every message has a string content: chat templates read it unguarded.
                "content": _text_content(m.get("content"), f"messages[{i}].content"),
                **{k: m[k] for k in ("name", "tool_calls", "tool_call_id") if k in m},
            }
            for i, m in enumerate(request["messages"])
        ]
        if request.get("tools"):
            args["tools"] = request["tools"]
            args["tool_choice"] = request.get("tool_choice")
        args["response_format"] = _response_format(request.get("response_format"))
        return args

    def _completion_args(self, request: Request) -> dict[str, Any]:
        prompt = request.get("prompt")
        if isinstance(prompt, list):
            if len(prompt) != 1:
                raise InvalidRequest("This model accepts one prompt per request.", param="prompt")
            prompt = prompt[0]
        args = self._sampling(request)
        # An empty prompt means "generate from the start" (OpenAI accepts it); llama.cpp
        # needs at least one token, so it gets the model's beginning-of-sequence token.
        args["prompt"] = prompt if prompt else self._start_tokens()
        args["echo"] = bool(request.get("echo"))
        return args

    def _start_tokens(self) -> list[int]:
        bos = int(self._llama.token_bos())
        if bos < 0:
            raise InvalidRequest("This model needs a non-empty prompt.", param="prompt")
        return [bos]

    # -- running ------------------------------------------------------------------------

    def _run(self, call: Callable[..., Any], args: dict[str, Any], counter: _TokenCounter) -> Any:
        from llama_cpp import LogitsProcessorList

        with self._lock:
            try:
                return call(**args, logits_processor=LogitsProcessorList([counter]))
            except ValueError as exc:  # context window exceeded, bad tool_choice, ...
                raise InvalidRequest(str(exc)[:300], code="invalid_request") from None

    async def _stream(
        self,
        call: Callable[..., Any],
        args: dict[str, Any],
        counter: _TokenCounter,
    ) -> AsyncIterator[dict[str, Any]]:
        from llama_cpp import LogitsProcessorList

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def produce() -> None:
            try:
                with self._lock:
                    stream = call(
                        **args, stream=True, logits_processor=LogitsProcessorList([counter])
                    )
                    for chunk in stream:
                        if stop.is_set():
                            break
                        loop.call_soon_threadsafe(queue.put_nowait, chunk)
            except ValueError as exc:
                loop.call_soon_threadsafe(
                    queue.put_nowait, InvalidRequest(str(exc)[:300], code="invalid_request")
                )
            except BaseException as exc:  # forwarded to the consumer, never lost
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _END)

        worker = loop.run_in_executor(None, produce)
        try:
            while (item := await queue.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            await asyncio.shield(worker)

    async def chat(self, request: Request) -> ChatCompletion:
        counter = _TokenCounter()
        result = await asyncio.to_thread(
            self._run, self._llama.create_chat_completion, self._chat_args(request), counter
        )
        result["model"] = self._name
        return cast(ChatCompletion, result)

    async def chat_stream(self, request: Request) -> AsyncIterator[ChatCompletionChunk]:
        last: dict[str, Any] | None = None
        counter = _TokenCounter()
        finish: str | None = None
        async for chunk in self._stream(
            self._llama.create_chat_completion, self._chat_args(request), counter
        ):
            chunk["model"] = self._name
            for choice in chunk["choices"]:
                finish = choice.get("finish_reason") or finish
                choice.setdefault("logprobs", None)
            last = chunk
            yield cast(ChatCompletionChunk, chunk)
        if last is not None:
            yield {
                "id": last["id"],
                "object": "chat.completion.chunk",
                "created": last["created"],
                "model": self._name,
                "choices": [],
                "usage": usage(counter.prompt_tokens, counter.completion_tokens(finish)),
            }

    async def completion(self, request: Request) -> Completion:
        counter = _TokenCounter()
        result = await asyncio.to_thread(
            self._run, self._llama.create_completion, self._completion_args(request), counter
        )
        result["model"] = self._name
        return cast(Completion, result)

    async def completion_stream(self, request: Request) -> AsyncIterator[Completion]:
        last: dict[str, Any] | None = None
        counter = _TokenCounter()
        finish: str | None = None
        async for chunk in self._stream(
            self._llama.create_completion, self._completion_args(request), counter
        ):
            chunk["model"] = self._name
            for choice in chunk["choices"]:
                finish = choice.get("finish_reason") or finish
            last = chunk
            yield cast(Completion, chunk)
        if last is not None:
            yield {
                "id": last["id"],
                "object": "text_completion",
                "created": last["created"],
                "model": self._name,
                "choices": [],
                "usage": usage(counter.prompt_tokens, counter.completion_tokens(finish)),
            }

    async def ready(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None
