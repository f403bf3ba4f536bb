"""The llama.cpp engine with the real SmolLM2 GGUF: what OpenAI accepts, it answers or
refuses with a 400, never an engine crash (found by fuzzing the endpoint with OpenAI's
own schema: content-part lists and an empty prompt were 502s)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from models.engines.llama_cpp import LlamaCppEngine
from serve.config import LlamaCppBackend
from serve.errors import InvalidRequest


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaCppEngine]:
    yield LlamaCppEngine("smollm", LlamaCppBackend(kind="llama_cpp", n_ctx=512, n_threads=1))


def chat(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"messages": list(messages), "max_tokens": 4, "temperature": 0, **extra}


PARTS = [{"type": "text", "text": "Say"}, {"type": "text", "text": "hi."}]


@pytest.mark.parametrize(
    "request_",
    [
        chat({"role": "user", "content": PARTS}),
        chat({"role": "system", "content": PARTS}, {"role": "user", "content": "Hello"}),
        chat(
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": None, "tool_calls": []},
            {"role": "tool", "tool_call_id": "c1", "content": PARTS},
        ),
        chat(  # an assistant turn with no content key at all (only a call)
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}},
            {"role": "user", "content": "And now?"},
        ),
    ],
)
async def test_text_content_parts_are_answered(
    engine: LlamaCppEngine, request_: dict[str, Any]
) -> None:
    answer = await engine.chat(request_)
    assert answer["choices"][0]["finish_reason"] in ("stop", "length")
    assert answer["usage"]["prompt_tokens"] > 0


async def test_text_parts_reach_the_template_joined(engine: LlamaCppEngine) -> None:
    parts = await engine.chat(chat({"role": "user", "content": PARTS}))
    joined = await engine.chat(chat({"role": "user", "content": "Say\nhi."}))
    assert parts["usage"]["prompt_tokens"] == joined["usage"]["prompt_tokens"]
    assert parts["choices"][0]["message"] == joined["choices"][0]["message"]


@pytest.mark.parametrize(
    ("request_", "param"),
    [
        (
            chat(
                {
                    "role": "user",
                    "content": [PARTS[0], {"type": "image_url", "image_url": {"url": "x"}}],
                }
            ),
            "messages[0].content[1]",
        ),
        (chat({"role": "user", "content": "hi"}, n=2), "n"),
    ],
)
async def test_what_this_engine_cannot_do_is_a_400(
    engine: LlamaCppEngine, request_: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        await engine.chat(request_)
    assert info.value.param == param


@pytest.mark.parametrize("prompt", ["", [""]])
async def test_an_empty_prompt_generates_from_the_start(
    engine: LlamaCppEngine, prompt: Any
) -> None:
    answer = await engine.completion({"prompt": prompt, "max_tokens": 4, "temperature": 0})
    assert answer["choices"][0]["finish_reason"] in ("stop", "length")
    assert answer["usage"]["prompt_tokens"] == 1  # the beginning-of-sequence token
