"""Validation of incoming OpenAI requests.

Known fields are type-checked (a bad value is a 400 naming the parameter, as OpenAI
answers); unknown fields are kept and passed through to backends that understand them.
Engines receive the validated request as a plain dict (`model_dump(exclude_none=True)`).
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from serve.errors import InvalidRequest


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class StreamOptions(_Open):
    include_usage: bool = False


class ChatMessage(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class Tool(_Open):
    type: Literal["function"]
    function: dict[str, Any]


class _Sampling(_Open):
    model: str = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    n: int | None = Field(None, ge=1, le=128)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    user: str | None = None

    @model_validator(mode="after")
    def _stop_limit(self) -> _Sampling:
        if isinstance(self.stop, list) and len(self.stop) > 4:
            raise ValueError("stop: at most 4 sequences")
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options: only allowed when stream is true")
        return self


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: list[Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None

    @property
    def output_budget(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_Sampling):
    prompt: str | list[str] = Field(...)
    echo: bool | None = None
    suffix: str | None = None


class EmbeddingRequest(_Open):
    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None


T = TypeVar("T", bound=BaseModel)


def parse(model: type[T], body: Any) -> T:
    """Validate a decoded JSON body; raise a 400 naming the first bad parameter."""
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        message = first["msg"]
        if first["type"] == "missing":
            message = f"Missing required parameter: '{param}'."
        elif param:
            message = f"Invalid value for '{param}': {message}"
        raise InvalidRequest(message, param=param, code="invalid_value") from None
