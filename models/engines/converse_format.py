"""OpenAI chat requests and responses <-> the Bedrock Converse API (pure translation, no I/O).

Converse is Bedrock's one chat dialect for every model family, and it differs from OpenAI's in
ways that matter for correctness:

* System prompts live outside the conversation (``system: [{text}]``); system (and developer)
  messages anywhere in the OpenAI list are hoisted there, in order.
* Content is a list of blocks keyed by shape (``{text}``, ``{image}``, ``{toolUse}``,
  ``{toolResult}``), and Bedrock rejects blank text blocks, so empty text is dropped.
* Tool results are *user* turns, and roles must alternate: consecutive tool results, and any
  consecutive messages with the same role, are merged into one message.
* Tool results whose text is a JSON object travel as ``{json: object}`` (Converse accepts only
  objects there); everything else as ``{text}``.
* ``toolChoice`` has ``auto``, ``any`` and ``tool`` but no ``none``: ``tool_choice="none"`` is
  expressed by not sending the tools. Bedrock insists on ``toolConfig`` whenever the history
  holds tool blocks, so in that case the tools are still sent and "none" cannot be enforced.
* There is no JSON mode. ``response_format`` json_object / json_schema becomes a synthetic
  tool (``JSON_TOOL``) whose input schema is the requested schema, and the model is forced to
  call it; its input is handed back as the message text (the approach LiteLLM takes). With
  other tools present the model must call *some* tool (``any``): one of the caller's, or the
  JSON tool to answer. Any prose the model adds beside the JSON tool call is dropped, since
  the caller asked for JSON content.
* Images are accepted only as ``data:`` URLs: fetching remote URLs on a caller's behalf would
  let any caller make the gateway issue requests (SSRF).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import orjson

from models.engine import Request
from serve.errors import InvalidRequest
from serve.openai_types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatMessageOut,
    ChunkDelta,
    Usage,
)

__all__ = [
    "JSON_TOOL",
    "ConverseRequest",
    "StreamTranslator",
    "finish_reason",
    "from_converse",
    "to_converse",
    "usage_from_converse",
]

JSON_TOOL = "json_response"
_JSON_TOOL_DESCRIPTION = "Give your final answer by calling this tool; its input is the answer."
_ANY_OBJECT = {"type": "object", "additionalProperties": True, "properties": {}}
_IMAGE_FORMATS = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "gif": "gif", "webp": "webp"}
_EMPTY_TOOL_RESULT = "(empty)"  # Converse rejects empty text blocks

_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}


@dataclass(frozen=True, slots=True)
class ConverseRequest:
    """The Converse body, and the synthetic JSON tool's name when JSON mode is emulated."""

    body: dict[str, Any]
    json_tool: str | None


def to_converse(request: Request) -> ConverseRequest:
    """Translate a validated OpenAI chat request into a Converse (or ConverseStream) body.

    Request validation types the top level only (message parts, tool calls and tool
    definitions stay free-form dicts), so a malformed one is refused here as a 400.
    """
    try:
        return _to_converse(request)
    except (KeyError, TypeError, AttributeError):
        raise InvalidRequest(
            "The request has a malformed message part, tool call or tool definition."
        ) from None


def _to_converse(request: Request) -> ConverseRequest:
    if (request.get("n") or 1) != 1:
        raise InvalidRequest("This model returns one choice per request (n=1).", param="n")
    if request.get("logprobs"):
        raise InvalidRequest("This model does not return log probabilities.", param="logprobs")
    system, messages = _messages(request.get("messages") or [])
    body: dict[str, Any] = {"messages": messages}
    if system:
        body["system"] = system
    inference = _inference_config(request)
    if inference:
        body["inferenceConfig"] = inference
    tool_config, json_tool = _tool_config(request, _has_tool_blocks(messages))
    if tool_config is not None:
        body["toolConfig"] = tool_config
    return ConverseRequest(body, json_tool)


def _messages(raw: list[dict[str, Any]]) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    system: list[dict[str, str]] = []
    out: list[dict[str, Any]] = []
    for i, message in enumerate(raw):
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend({"text": t} for t in _texts(message.get("content"), f"messages[{i}]"))
            continue
        if role == "user":
            converse_role, blocks = "user", _user_blocks(message.get("content"), i)
        elif role == "assistant":
            converse_role, blocks = "assistant", _assistant_blocks(message, i)
        elif role == "tool":
            converse_role, blocks = "user", [_tool_result(message, i)]
        else:
            raise InvalidRequest(
                f"Message role {role!r} is not supported by this model.",
                param=f"messages[{i}].role",
            )
        if not blocks:
            continue
        if out and out[-1]["role"] == converse_role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": converse_role, "content": blocks})
    return system, out


def _texts(content: Any, where: str) -> list[str]:
    """The non-blank texts of a string or a list of text parts (system/tool messages)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content] if content.strip() else []
    texts = []
    for j, part in enumerate(content):
        if part.get("type") != "text":
            raise InvalidRequest(
                "Only text content is supported here.", param=f"{where}.content[{j}]"
            )
        if part.get("text", "").strip():
            texts.append(part["text"])
    return texts


def _user_blocks(content: Any, i: int) -> list[dict[str, Any]]:
    if content is None or isinstance(content, str):
        return [{"text": t} for t in _texts(content, f"messages[{i}]")]
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind == "text":
            if part.get("text", "").strip():
                blocks.append({"text": part["text"]})
        elif kind == "image_url":
            blocks.append(_image_block(part.get("image_url"), f"messages[{i}].content[{j}]"))
        else:
            raise InvalidRequest(
                f"Content of type {kind!r} is not supported by this model.",
                param=f"messages[{i}].content[{j}]",
            )
    return blocks


def _image_block(image_url: Any, where: str) -> dict[str, Any]:
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str) or not url.startswith("data:"):
        raise InvalidRequest(
            "Images must be sent inline as data: URLs (base64) for this model.", param=where
        )
    header, sep, data = url[5:].partition(",")
    mime, _, encoding = header.partition(";")
    kind, _, subtype = mime.partition("/")
    image_format = _IMAGE_FORMATS.get(subtype.lower())
    if not sep or encoding != "base64" or kind != "image" or image_format is None or not data:
        raise InvalidRequest(
            "Images must be base64 data: URLs of type png, jpeg, gif or webp.", param=where
        )
    return {"image": {"format": image_format, "source": {"bytes": data}}}


def _assistant_blocks(message: dict[str, Any], i: int) -> list[dict[str, Any]]:
    content = message.get("content")
    blocks: list[dict[str, Any]] = []
    if isinstance(content, str):
        if content.strip():
            blocks.append({"text": content})
    elif content:
        for part in content:
            if part.get("type") == "text" and part.get("text", "").strip():
                blocks.append({"text": part["text"]})
            # refusal parts are the assistant's own earlier output: nothing to send back
    for j, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        where = f"messages[{i}].tool_calls[{j}].function.arguments"
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            raise InvalidRequest("Tool call arguments must be valid JSON.", param=where) from None
        if not isinstance(arguments, dict):
            raise InvalidRequest("Tool call arguments must be a JSON object.", param=where)
        blocks.append(
            {"toolUse": {"toolUseId": call["id"], "name": function["name"], "input": arguments}}
        )
    return blocks


def _tool_result(message: dict[str, Any], i: int) -> dict[str, Any]:
    tool_use_id = message.get("tool_call_id")
    if not tool_use_id:
        raise InvalidRequest("Tool messages need a tool_call_id.", param=f"messages[{i}]")
    text = "".join(_texts(message.get("content"), f"messages[{i}]"))
    block: dict[str, Any] = {"text": text or _EMPTY_TOOL_RESULT}
    if text.lstrip().startswith("{"):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            block = {"json": value}
    return {"toolResult": {"toolUseId": tool_use_id, "content": [block]}}


def _has_tool_blocks(messages: list[dict[str, Any]]) -> bool:
    return any(
        "toolUse" in block or "toolResult" in block
        for message in messages
        for block in message["content"]
    )


def _inference_config(request: Request) -> dict[str, Any]:
    config: dict[str, Any] = {}
    max_tokens = request.get("max_completion_tokens") or request.get("max_tokens")
    if max_tokens is not None:
        config["maxTokens"] = max_tokens
    if request.get("temperature") is not None:
        config["temperature"] = request["temperature"]
    if request.get("top_p") is not None:
        config["topP"] = request["top_p"]
    stop = request.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    return config


def _tool_config(
    request: Request, history_has_tools: bool
) -> tuple[dict[str, Any] | None, str | None]:
    choice = request.get("tool_choice")
    specs = [_tool_spec(tool, j) for j, tool in enumerate(request.get("tools") or [])]
    if choice == "none" and not history_has_tools:
        specs = []
    json_schema = _response_schema(request.get("response_format"))
    json_tool = None
    if json_schema is not None:
        if any(spec["toolSpec"]["name"] == JSON_TOOL for spec in specs):
            raise InvalidRequest(
                f"A tool named {JSON_TOOL!r} cannot be combined with response_format.",
                param="tools",
            )
        json_tool = JSON_TOOL
        specs.append(_json_tool_spec(request["response_format"], json_schema))
    if not specs:
        return None, None
    config: dict[str, Any] = {"tools": specs}
    tool_choice = _tool_choice(choice, json_tool, len(specs))
    if tool_choice is not None:
        config["toolChoice"] = tool_choice
    return config, json_tool


def _tool_spec(tool: dict[str, Any], j: int) -> dict[str, Any]:
    if tool.get("type") != "function":
        raise InvalidRequest("Only function tools are supported.", param=f"tools[{j}].type")
    function = tool["function"]
    spec: dict[str, Any] = {
        "name": function["name"],
        "inputSchema": {"json": function.get("parameters") or _ANY_OBJECT},
    }
    if function.get("description"):
        spec["description"] = function["description"]
    return {"toolSpec": spec}


def _response_schema(response_format: Any) -> dict[str, Any] | None:
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return _ANY_OBJECT
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return schema if isinstance(schema, dict) else _ANY_OBJECT
    return None  # "text"


def _json_tool_spec(response_format: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    described = response_format.get("json_schema") or {}
    description = _JSON_TOOL_DESCRIPTION
    if described.get("description"):
        description += f" {described['description']}"
    return {
        "toolSpec": {
            "name": JSON_TOOL,
            "description": description,
            "inputSchema": {"json": schema},
        }
    }


def _tool_choice(choice: Any, json_tool: str | None, n_tools: int) -> dict[str, Any] | None:
    if isinstance(choice, dict):
        return {"tool": {"name": choice["function"]["name"]}}
    if json_tool is not None:
        if n_tools == 1:
            return {"tool": {"name": json_tool}}
        return {"any": {}}
    if choice == "required":
        return {"any": {}}
    if choice == "auto":
        return {"auto": {}}
    return None  # unset, or "none" kept only because the history needs toolConfig


def finish_reason(stop_reason: str | None) -> str:
    return _FINISH_REASONS.get(stop_reason or "", "stop")


def usage_from_converse(usage: Mapping[str, Any] | None) -> Usage:
    """OpenAI counts cached prompt tokens inside ``prompt_tokens``; Converse counts them apart."""
    usage = usage or {}
    cache_read = int(usage.get("cacheReadInputTokens") or 0)
    cache_write = int(usage.get("cacheWriteInputTokens") or 0)
    prompt = int(usage.get("inputTokens") or 0) + cache_read + cache_write
    completion = int(usage.get("outputTokens") or 0)
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if "cacheReadInputTokens" in usage:
        out["prompt_tokens_details"] = {"cached_tokens": cache_read}
    return cast(Usage, out)


def from_converse(
    response: Mapping[str, Any],
    *,
    model: str,
    completion_id: str,
    created: int,
    json_tool: str | None = None,
) -> ChatCompletion:
    """A Converse response as an OpenAI ``chat.completion``."""
    content = ((response.get("output") or {}).get("message") or {}).get("content") or []
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    json_answer: str | None = None
    for block in content:
        if "text" in block:
            texts.append(block["text"])
        elif "toolUse" in block:
            use = block["toolUse"]
            arguments = orjson.dumps(use.get("input") or {}).decode()
            if json_tool is not None and use.get("name") == json_tool:
                json_answer = arguments
                continue
            tool_calls.append(
                {
                    "id": use["toolUseId"],
                    "type": "function",
                    "function": {"name": use["name"], "arguments": arguments},
                }
            )
    message: ChatMessageOut = {
        "role": "assistant",
        "content": json_answer if json_answer is not None else ("".join(texts) or None),
        "refusal": None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    reason = finish_reason(response.get("stopReason"))
    if reason == "tool_calls" and not tool_calls:
        reason = "stop"  # only the synthetic JSON tool was called: that is the answer
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": reason, "logprobs": None}],
        "usage": usage_from_converse(response.get("usage")),
    }


class StreamTranslator:
    """ConverseStream events -> OpenAI ``chat.completion.chunk`` dicts, one event at a time.

    Order produced: a role chunk (``messageStart``), content and tool-call deltas, a finish
    chunk (``messageStop``), and a usage chunk with empty ``choices`` (``metadata``, which
    Bedrock sends last). Tool calls are numbered in the order they start, as OpenAI does,
    not by Converse content-block index (text blocks take indexes too).
    """

    def __init__(
        self, *, model: str, completion_id: str, created: int, json_tool: str | None = None
    ) -> None:
        self._base = {"id": completion_id, "object": "chat.completion.chunk", "created": created}
        self._model = model
        self._json_tool = json_tool
        self._tool_index: dict[int, int] = {}
        self._json_blocks: set[int] = set()
        self.stopped = False
        self.finished = False  # the usage chunk went out: the stream is complete

    def translate(self, event: str, payload: Mapping[str, Any]) -> list[ChatCompletionChunk]:
        if event == "messageStart":
            return [self._delta({"role": "assistant", "content": ""})]
        if event == "contentBlockStart":
            return self._block_start(payload)
        if event == "contentBlockDelta":
            return self._block_delta(payload)
        if event == "messageStop":
            self.stopped = True
            reason = finish_reason(payload.get("stopReason"))
            if reason == "tool_calls" and not self._tool_index:
                reason = "stop"
            return [self._delta({}, reason)]
        if event == "metadata":
            self.finished = True
            chunk = self._chunk([])
            chunk["usage"] = usage_from_converse(payload.get("usage"))
            return [chunk]
        return []  # contentBlockStop, and events this translator has no use for

    def _block_start(self, payload: Mapping[str, Any]) -> list[ChatCompletionChunk]:
        use = (payload.get("start") or {}).get("toolUse")
        if not use:
            return []
        block = int(payload.get("contentBlockIndex") or 0)
        if self._json_tool is not None and use.get("name") == self._json_tool:
            self._json_blocks.add(block)
            return []
        index = len(self._tool_index)
        self._tool_index[block] = index
        call = {
            "index": index,
            "id": use["toolUseId"],
            "type": "function",
            "function": {"name": use["name"], "arguments": ""},
        }
        return [self._delta({"tool_calls": [call]})]

    def _block_delta(self, payload: Mapping[str, Any]) -> list[ChatCompletionChunk]:
        delta = payload.get("delta") or {}
        block = int(payload.get("contentBlockIndex") or 0)
        text = delta.get("text")
        if text:
            return [self._delta({"content": text})]
        use = delta.get("toolUse")
        if use is None:
            return []  # reasoning and citation deltas have no OpenAI chat equivalent
        partial = use.get("input") or ""
        if block in self._json_blocks:
            return [self._delta({"content": partial})] if partial else []
        index = self._tool_index.get(block)
        if index is None or not partial:
            return []
        return [self._delta({"tool_calls": [{"index": index, "function": {"arguments": partial}}]})]

    def _delta(self, delta: ChunkDelta, reason: str | None = None) -> ChatCompletionChunk:
        return self._chunk(
            [{"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}]
        )

    def _chunk(self, choices: list[Any]) -> ChatCompletionChunk:
        return cast(ChatCompletionChunk, {**self._base, "model": self._model, "choices": choices})
