"""OpenAI chat <-> Gemini `generateContent`, both ways, as pure functions (no I/O).

Requests: system/developer messages become ``systemInstruction``; user/assistant turns
become ``contents`` (roles user/model), consecutive turns of one role merged because
Gemini expects the function responses answering one model turn in one content;
tool calls and tool results become ``functionCall`` / ``functionResponse`` parts.
Responses: candidates become choices, usage metadata becomes usage. Streams go through
`ChatStreamTranslator`, which turns each streamed GenerateContentResponse into OpenAI
chunks with the same ids and ordering rules OpenAI uses.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
import secrets
import time
from typing import Any, cast

import orjson

from models.engine import Request
from models.engines.gemini_schema import to_gemini_schema
from serve.errors import InvalidRequest, UpstreamError
from serve.openai_types import ChatCompletion, ChatCompletionChunk, ChunkChoice, Usage

_FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}
_TOOL_CHOICE_MODES = {"none": "NONE", "auto": "AUTO", "required": "ANY"}
_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)(?:;[^,;]*)*;base64,(?P<data>.*)$", re.S)
_AUDIO_MIME = {"wav": "audio/wav", "mp3": "audio/mp3"}
# OpenAI reasoning effort -> Gemini 2.5 thinking budget (tokens); 0 turns thinking off
# where the model allows it (Flash), the model answers 400 where it does not (Pro).
_THINKING_BUDGET = {"none": 0, "minimal": 0, "low": 1024, "medium": 8192, "high": 24576}


# -- requests --------------------------------------------------------------------------


def chat_request(request: Request) -> dict[str, Any]:
    """The GenerateContentRequest body for one OpenAI chat request (400 on what can't map)."""
    system, contents = _contents(request["messages"])
    if not contents:
        # Gemini needs at least one turn: a system-only conversation is the user's prompt.
        contents, system = [{"role": "user", "parts": system}], []
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    names = _add_tools(body, request)
    _add_tool_choice(body, request.get("tool_choice"), names)
    generation = _generation_config(request)
    if generation:
        body["generationConfig"] = generation
    return body


def _contents(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}  # tool_call id -> function name, for functionResponse
    for index, message in enumerate(messages):
        role = message["role"]
        where = f"messages[{index}]"
        if role in ("system", "developer"):
            # Gemini has one system instruction: every system message joins it, in order.
            system.extend(_text_parts(message.get("content"), where))
            continue
        if role == "user":
            _append(contents, "user", _user_parts(message.get("content"), where))
        elif role == "assistant":
            parts = _text_parts(message.get("content"), where)
            for position, call in enumerate(message.get("tool_calls") or []):
                parts.append(_function_call(call, f"{where}.tool_calls[{position}]", call_names))
            _append(contents, "model", parts)
        elif role == "tool":
            call_id = message.get("tool_call_id")
            name = call_names.get(call_id) if isinstance(call_id, str) else None
            if name is None:
                raise InvalidRequest(
                    "A tool message must answer a tool call of an earlier assistant message.",
                    param=f"{where}.tool_call_id",
                )
            _append(contents, "user", [_function_response(name, message.get("content"), where)])
        elif role == "function":  # the deprecated predecessor of tool messages
            name = message.get("name")
            if not isinstance(name, str) or not name:
                raise InvalidRequest("A function message needs a name.", param=f"{where}.name")
            _append(contents, "user", [_function_response(name, message.get("content"), where)])
    return system, contents


def _append(contents: list[dict[str, Any]], role: str, parts: list[dict[str, Any]]) -> None:
    if not parts:
        return  # Gemini refuses a content without parts (an empty assistant turn, say)
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def _text_parts(content: Any, where: str) -> list[dict[str, Any]]:
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"text": content}]
    parts = []
    for position, part in enumerate(content):
        kind = part.get("type")
        if kind == "text" and part.get("text"):
            parts.append({"text": part["text"]})
        elif kind == "refusal" and part.get("refusal"):
            parts.append({"text": part["refusal"]})
        elif kind not in ("text", "refusal"):
            raise InvalidRequest(
                f"Content parts of type {str(kind)[:40]!r} are not supported here.",
                param=f"{where}.content[{position}].type",
            )
    return parts


def _user_parts(content: Any, where: str) -> list[dict[str, Any]]:
    if content is None or isinstance(content, str):
        return _text_parts(content, where)
    parts = []
    for position, part in enumerate(content):
        param = f"{where}.content[{position}]"
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):
                parts.append({"text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            parts.append(_media_part(url, f"{param}.image_url.url"))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            mime = _AUDIO_MIME.get(audio.get("format", ""))
            if mime is None or not isinstance(audio.get("data"), str):
                raise InvalidRequest("input_audio needs data and format wav or mp3.", param=param)
            parts.append({"inlineData": {"mimeType": mime, "data": audio["data"]}})
        elif kind == "file":
            data = (part.get("file") or {}).get("file_data")
            if not isinstance(data, str):
                raise InvalidRequest(
                    "Only files given inline as file_data are supported.", param=param
                )
            parts.append(_media_part(data, f"{param}.file.file_data"))
        else:
            raise InvalidRequest(
                f"Content parts of type {str(kind)[:40]!r} are not supported.",
                param=f"{param}.type",
            )
    return parts


def _media_part(url: Any, param: str) -> dict[str, Any]:
    """data: URLs travel inline; gs:// and https:// URIs are fetched by Vertex, never by us."""
    if not isinstance(url, str):
        raise InvalidRequest("Expected a URL string.", param=param)
    match = _DATA_URL.match(url)
    if match is not None:
        data = match.group("data")
        try:
            base64.b64decode(data, validate=True)
        except binascii.Error:
            raise InvalidRequest("The data URL is not valid base64.", param=param) from None
        return {"inlineData": {"mimeType": match.group("mime"), "data": data}}
    if url.startswith(("gs://", "https://")):
        mime, _ = mimetypes.guess_type(url.split("?", 1)[0])
        if mime is None:
            raise InvalidRequest(
                "Cannot tell the media type of this URL from its name; send a data: URL.",
                param=param,
            )
        return {"fileData": {"mimeType": mime, "fileUri": url}}
    raise InvalidRequest("Media must be a base64 data: URL, a gs:// or https:// URI.", param=param)


def _function_call(call: Any, param: str, call_names: dict[str, str]) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise InvalidRequest("A tool call needs a function name.", param=param)
    raw = function.get("arguments") or "{}"
    try:
        args = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    except orjson.JSONDecodeError:
        raise InvalidRequest(
            "Tool call arguments must be a JSON object.", param=f"{param}.function.arguments"
        ) from None
    if not isinstance(args, dict):
        raise InvalidRequest(
            "Tool call arguments must be a JSON object.", param=f"{param}.function.arguments"
        )
    if isinstance(call.get("id"), str):
        call_names[call["id"]] = function["name"]
    return {"functionCall": {"name": function["name"], "args": args}}


def _function_response(name: str, content: Any, where: str) -> dict[str, Any]:
    """Vertex reads ``response.output`` as the function's result (``error`` for failures).

    A result that is a JSON object travels as structure, anything else as its text.
    """
    text = "".join(p["text"] for p in _text_parts(content, where))
    output: Any = text
    if text.startswith("{"):
        try:
            output = orjson.loads(text)
        except orjson.JSONDecodeError:
            output = text
    return {"functionResponse": {"name": name, "response": {"output": output}}}


def _add_tools(body: dict[str, Any], request: Request) -> set[str]:
    declarations = []
    for index, tool in enumerate(request.get("tools") or []):
        function = tool.get("function") or {}
        param = f"tools[{index}].function"
        if not isinstance(function.get("name"), str) or not function["name"]:
            raise InvalidRequest("A function tool needs a name.", param=f"{param}.name")
        declaration: dict[str, Any] = {"name": function["name"]}
        if function.get("description"):
            declaration["description"] = function["description"]
        parameters = function.get("parameters")
        # An object schema without properties is "no arguments": Gemini wants it omitted.
        if parameters and (parameters.get("properties") or parameters.get("type") != "object"):
            declaration["parameters"] = to_gemini_schema(parameters, param=f"{param}.parameters")
        declarations.append(declaration)
    if declarations:
        body["tools"] = [{"functionDeclarations": declarations}]
    return {d["name"] for d in declarations}


def _add_tool_choice(body: dict[str, Any], choice: Any, names: set[str]) -> None:
    if choice is None:
        return
    config: dict[str, Any]
    if isinstance(choice, str) and choice in _TOOL_CHOICE_MODES:
        config = {"mode": _TOOL_CHOICE_MODES[choice]}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if name not in names:
            raise InvalidRequest(
                "tool_choice names a function that is not in tools.", param="tool_choice"
            )
        config = {"mode": "ANY", "allowedFunctionNames": [name]}
    else:
        raise InvalidRequest("Unsupported tool_choice value.", param="tool_choice")
    if not names:
        if config["mode"] == "ANY":
            raise InvalidRequest("tool_choice 'required' needs tools.", param="tool_choice")
        return  # none/auto without tools: nothing to configure
    body["toolConfig"] = {"functionCallingConfig": config}


def _generation_config(request: Request) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for ours, theirs in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),  # not OpenAI, but sent by clients written for Gemini
        ("n", "candidateCount"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        if request.get(ours) is not None:
            config[theirs] = request[ours]
    budget = request.get("max_completion_tokens") or request.get("max_tokens")
    if budget is not None:
        config["maxOutputTokens"] = budget
    stop = request.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if request.get("logprobs"):
        raise InvalidRequest(
            "logprobs are not supported by this model.",
            param="logprobs",
            code="unsupported_parameter",
        )
    effort = request.get("reasoning_effort")
    if effort is not None:
        if effort not in _THINKING_BUDGET:
            raise InvalidRequest("Unsupported reasoning_effort.", param="reasoning_effort")
        config["thinkingConfig"] = {"thinkingBudget": _THINKING_BUDGET[effort]}
    _add_response_format(config, request.get("response_format"))
    return config


def _add_response_format(config: dict[str, Any], response_format: Any) -> None:
    """JSON mode. A json_schema goes to ``responseJsonSchema``, not ``responseSchema``.

    OpenAI json_schema payloads are standard JSON Schema (strict mode puts
    ``additionalProperties: false`` on every object, and schemas from pydantic/zod use
    ``$defs``/``$ref`` and ``anyOf`` with null). ``responseJsonSchema`` takes them as they
    are; ``responseSchema`` is the OpenAPI subset and would need the lossy conversion
    `gemini_schema` does for tools, dropping exactly the constraints strict mode asked
    for. Gemini 2.5+ accepts it; an older model answers 400, which passes through.
    """
    if response_format is None:
        return
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return
    if kind == "json_object":
        config["responseMimeType"] = "application/json"
        return
    if kind == "json_schema":
        config["responseMimeType"] = "application/json"
        schema = (response_format.get("json_schema") or {}).get("schema")
        if schema is not None:
            config["responseJsonSchema"] = schema
        return
    raise InvalidRequest("Unsupported response_format type.", param="response_format.type")


# -- responses -------------------------------------------------------------------------


def chat_response(
    body: dict[str, Any], public_name: str, *, created: int | None = None
) -> ChatCompletion:
    """A GenerateContentResponse as an OpenAI chat.completion."""
    choices: list[dict[str, Any]] = []
    for position, candidate in enumerate(body.get("candidates") or []):
        text, calls = _answer(candidate)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text if text or not calls else None,
            "refusal": None,
        }
        if calls:
            message["tool_calls"] = calls
        choices.append(
            {
                "index": candidate.get("index", position),
                "message": message,
                "finish_reason": finish_reason(candidate.get("finishReason"), bool(calls)),
                "logprobs": None,
            }
        )
    if not choices:
        choices.append(_blocked_prompt_choice(body))
    return cast(
        ChatCompletion,
        {
            "id": completion_id(body),
            "object": "chat.completion",
            "created": created if created is not None else int(time.time()),
            "model": public_name,
            "choices": choices,
            "usage": usage(body.get("usageMetadata")),
        },
    )


def _blocked_prompt_choice(body: dict[str, Any]) -> dict[str, Any]:
    """No candidates: Gemini blocked the prompt itself (``promptFeedback.blockReason``)."""
    if not (body.get("promptFeedback") or {}).get("blockReason"):
        raise UpstreamError("The model backend answered without any candidate.")
    return {
        "index": 0,
        "message": {"role": "assistant", "content": "", "refusal": None},
        "finish_reason": "content_filter",
        "logprobs": None,
    }


def _answer(candidate: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in (candidate.get("content") or {}).get("parts") or []:
        if part.get("thought"):
            continue  # thinking summaries are not part of the answer
        if "text" in part:
            texts.append(part["text"])
        elif "functionCall" in part:
            calls.append(tool_call(part["functionCall"]))
    return "".join(texts), calls


def tool_call(function_call: dict[str, Any]) -> dict[str, Any]:
    """A Gemini functionCall as an OpenAI tool call; Gemini has no ids, so one is made."""
    return {
        "id": "call_" + secrets.token_hex(12),
        "type": "function",
        "function": {
            "name": function_call.get("name", ""),
            "arguments": orjson.dumps(function_call.get("args") or {}).decode(),
        },
    }


def finish_reason(reason: str | None, called_tools: bool) -> str:
    if called_tools and reason in (None, "STOP"):
        return "tool_calls"
    # OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL, ... have no OpenAI counterpart: "stop".
    return _FINISH_REASONS.get(reason or "STOP", "stop")


def usage(metadata: dict[str, Any] | None) -> Usage:
    """usageMetadata as OpenAI usage: thinking tokens are completion tokens (billed so)."""
    metadata = metadata or {}
    prompt = int(metadata.get("promptTokenCount", 0)) + int(
        metadata.get("toolUsePromptTokenCount", 0)
    )
    thoughts = int(metadata.get("thoughtsTokenCount", 0))
    completion = int(metadata.get("candidatesTokenCount", 0)) + thoughts
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": int(metadata.get("totalTokenCount", prompt + completion)),
    }
    if "cachedContentTokenCount" in metadata:
        out["prompt_tokens_details"] = {"cached_tokens": int(metadata["cachedContentTokenCount"])}
    if thoughts:
        out["completion_tokens_details"] = {"reasoning_tokens": thoughts}
    return cast(Usage, out)


def completion_id(body: dict[str, Any]) -> str:
    """``chatcmpl-<responseId>``: the caller's id can be matched with Google's logs."""
    response_id = body.get("responseId")
    return f"chatcmpl-{response_id}" if response_id else f"chatcmpl-{secrets.token_hex(12)}"


# -- streams ---------------------------------------------------------------------------


class ChatStreamTranslator:
    """Streamed GenerateContentResponses -> OpenAI chunks, in OpenAI's order.

    Per choice: a role chunk first, then content and tool-call deltas, then a chunk
    with the finish reason; after the stream, one usage chunk with no choices. Gemini
    sends each function call whole, so a tool call is one delta with id, name and the
    complete arguments. A stream that ends before every choice finished was cut off:
    `close` raises instead of passing a truncated answer on as complete.
    """

    def __init__(self, public_name: str, *, created: int | None = None) -> None:
        self._model = public_name
        self._created = created if created is not None else int(time.time())
        self._id: str | None = None
        self._started: set[int] = set()
        self._tool_calls: dict[int, int] = {}
        self._finished: set[int] = set()
        self._usage: dict[str, Any] | None = None

    def feed(self, event: dict[str, Any]) -> list[ChatCompletionChunk]:
        if "error" in event:
            raise UpstreamError("The model backend failed during the stream.")
        if self._id is None:
            self._id = completion_id(event)
        if event.get("usageMetadata"):
            self._usage = event["usageMetadata"]
        chunks: list[ChatCompletionChunk] = []
        candidates = event.get("candidates") or []
        if not candidates and (event.get("promptFeedback") or {}).get("blockReason"):
            chunks.extend(self._start(0))
            chunks.append(self._chunk(0, {}, "content_filter"))
            self._finished.add(0)
        for position, candidate in enumerate(candidates):
            index = candidate.get("index", position)
            chunks.extend(self._start(index))
            text, calls = _answer(candidate)
            if text:
                chunks.append(self._chunk(index, {"content": text}, None))
            if calls:
                first = self._tool_calls.get(index, 0)
                deltas = [{"index": first + n, **call} for n, call in enumerate(calls)]
                self._tool_calls[index] = first + len(calls)
                chunks.append(self._chunk(index, {"tool_calls": deltas}, None))
            if candidate.get("finishReason"):
                called = self._tool_calls.get(index, 0) > 0
                reason = finish_reason(candidate["finishReason"], called)
                chunks.append(self._chunk(index, {}, reason))
                self._finished.add(index)
        return chunks

    def close(self) -> ChatCompletionChunk:
        """The usage chunk; raises if the stream ended before every choice finished."""
        if self._id is None or not self._started or self._started - self._finished:
            raise UpstreamError("The model backend ended the stream before the answer finished.")
        return cast(
            ChatCompletionChunk,
            {**self._base(), "choices": [], "usage": usage(self._usage)},
        )

    def _start(self, index: int) -> list[ChatCompletionChunk]:
        if index in self._started:
            return []
        self._started.add(index)
        return [self._chunk(index, {"role": "assistant", "content": ""}, None)]

    def _chunk(self, index: int, delta: dict[str, Any], reason: str | None) -> ChatCompletionChunk:
        choice = cast(
            ChunkChoice, {"index": index, "delta": delta, "finish_reason": reason, "logprobs": None}
        )
        return cast(ChatCompletionChunk, {**self._base(), "choices": [choice]})

    def _base(self) -> dict[str, Any]:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
        }
