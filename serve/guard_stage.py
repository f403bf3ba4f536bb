"""Guardrails on the request path: the input before any backend, the output after it.

The library (`guardrails/`) decides; this module applies its verdicts to OpenAI requests,
responses and streams and reports what it did (value-free counts into the request's
record, trace and metrics). A blocked request or answer is a 400 ``content_policy`` error
whose message never echoes the sensitive value; a blocked stream ends with a final
``finish_reason: "content_filter"`` chunk.

The cheap tier (patterns, checksums, gazetteers, the injection classifier) runs here, in
process, in a worker thread: a few milliseconds per KB. The NER tier (GiNZA) costs
hundreds of milliseconds per KB of Japanese, so it runs in its own deployment and is
reached through `NerTier` only for teams whose policy enables it.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from guardrails import Guardrails, GuardrailsPolicy
from guardrails.spans import Span
from guardrails.verdicts import Actions, RequestVerdict
from serve.errors import InvalidRequest
from serve.streams import aclose_quietly

__all__ = ["ContentBlocked", "GuardStage", "NerTier", "actions_counts"]

C = TypeVar("C", bound=Mapping[str, Any])


class ContentBlocked(InvalidRequest):
    default_code = "content_policy"


class NerTier(Protocol):
    async def detect_batch(self, texts: Sequence[str]) -> list[list[Span]]: ...


# Below this much text the cheap tier runs on the event loop (about 0.25 ms for a short
# prompt); above it, in a worker thread so a large prompt never stalls other requests.
_INLINE_BYTES = 2048


def _text_size(request: Mapping[str, Any]) -> int:
    total = 0
    for message in request.get("messages") or ():
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(len(str(p.get("text", ""))) for p in content if isinstance(p, Mapping))
        else:
            total += len(str(message))
    prompt = request.get("prompt")
    if prompt is not None:
        total += len(prompt) if isinstance(prompt, str) else sum(len(str(p)) for p in prompt)
    return total + len(str(request.get("tools") or ""))


def actions_counts(actions: Actions) -> dict[str, int]:
    """The record's flat, value-free form: ``redacted.EMAIL``, ``flag.injection:...``."""
    counts = {f"redacted.{k}": v for k, v in actions.redacted.items()}
    counts.update({f"masked.{k}": v for k, v in actions.masked.items()})
    counts.update({f"flag.{f}": 1 for f in actions.flags})
    counts.update({f"blocked.{b}": 1 for b in actions.blocks})
    return counts


class GuardStage:
    def __init__(
        self,
        policies: Mapping[str, GuardrailsPolicy],
        guardrails: Guardrails | None = None,
        ner: NerTier | None = None,
    ) -> None:
        self._policies = policies
        self._default = GuardrailsPolicy()
        self.guardrails = guardrails or Guardrails()
        self._ner = ner

    def policy(self, team: str) -> GuardrailsPolicy:
        return self._policies.get(team, self._default)

    async def inspect(
        self, team: str, request: Mapping[str, Any], *, injection: bool = True
    ) -> RequestVerdict:
        """Redact and screen a chat or completions request; raise when it is blocked.

        ``injection=False`` for text that is data, not instructions (embedding inputs)."""
        policy = self.policy(team)
        if not injection:
            policy = policy.model_copy(
                update={"injection": policy.injection.model_copy(update={"action": "off"})}
            )
        spans: dict[str, list[Span]] | None = None
        if self._ner is not None and policy.pii.enabled and policy.pii.ner:
            texts = self.guardrails.ner_texts(request, policy)
            if texts:
                found = await self._ner.detect_batch(texts)
                spans = dict(zip(texts, found, strict=True))
        if _text_size(request) <= _INLINE_BYTES:  # a worker thread costs more than this
            verdict = self.guardrails.check_request(request, policy, spans)
        else:
            verdict = await asyncio.to_thread(
                self.guardrails.check_request, request, policy, spans
            )
        if verdict.blocked:
            raise ContentBlocked(
                f"The request was blocked by the content policy: {verdict.block_reason}.",
                headers={"x-raygate-guardrails": ",".join(verdict.actions.blocks)},
            )
        return verdict

    def mask(self, text: str) -> str:
        """Every entity the cheap tier finds replaced by ``<TYPE>`` (audit copies)."""
        spans = sorted(self.guardrails.detector.detect(text), key=lambda s: s.start)
        out, cursor = [], 0
        for span in spans:
            if span.start < cursor:
                continue
            out.append(text[cursor : span.start])
            out.append(f"<{span.entity_type}>")
            cursor = span.end
        out.append(text[cursor:])
        return "".join(out)

    def respond(
        self, team: str, verdict: RequestVerdict, response: Mapping[str, Any]
    ) -> tuple[dict[str, Any], Actions]:
        """Filter a whole answer (content, tool calls) and restore reversible placeholders."""
        if any("text" in c for c in response.get("choices") or ()):
            return self._respond_text(team, verdict, response)
        checked = self.guardrails.check_response(response, verdict, self.policy(team))
        if checked.response is None:
            raise ContentBlocked(
                f"The answer was blocked by the content policy: {checked.block_reason}."
            )
        return checked.response, checked.actions

    def _respond_text(
        self, team: str, verdict: RequestVerdict, response: Mapping[str, Any]
    ) -> tuple[dict[str, Any], Actions]:
        """Legacy completions: each choice's text through the output filter."""
        out = copy.deepcopy(dict(response))
        masked: dict[str, int] = {}
        for choice in out.get("choices") or ():
            stream = self.guardrails.output_filter(verdict, self.policy(team))
            first = stream.feed(str(choice.get("text") or ""))
            last = stream.finish()
            if first.blocked or last.blocked:
                raise ContentBlocked(
                    "The answer was blocked by the content policy: "
                    f"{stream.blocked_reason or 'output blocked'}."
                )
            choice["text"] = first.text + last.text
            for entity, count in stream.counts.items():
                masked[entity] = masked.get(entity, 0) + count
        return out, Actions(masked=masked)

    async def stream(
        self,
        team: str,
        verdict: RequestVerdict,
        chunks: AsyncIterator[C],
        report: dict[str, int],
    ) -> AsyncIterator[C]:
        """Filter a stream as it flows, with the library's bounded look-behind window.

        Content deltas pass through one `StreamFilter` per choice (text may be held back
        up to the window, never past the choice's end). Tool-call deltas are held until the
        choice finishes, then checked as a whole and sent as one delta (or removed). A
        block ends the stream with a ``content_filter`` chunk. ``report`` receives the
        value-free action counts as they happen.
        """
        policy = self.policy(team)
        filters: dict[int, Any] = {}
        calls: dict[int, dict[int, dict[str, Any]]] = {}
        template: Mapping[str, Any] | None = None
        try:
            async for chunk in chunks:
                template = chunk
                choices = chunk.get("choices") or []
                out: list[dict[str, Any]] = []
                for choice in choices:
                    index = int(choice.get("index", 0))
                    piece = self._choice(policy, verdict, filters, calls, index, choice, report)
                    if piece is None:  # blocked
                        yield _final(chunk, index, "content_filter")
                        return
                    out.extend(piece)
                if choices and not out:
                    continue  # everything held back for now
                edited = dict(chunk)
                if choices:
                    edited["choices"] = out
                yield edited  # type: ignore[misc]
        except Exception:
            # The backend broke mid-answer: what the filters held back and now pass goes out
            # before the error does (the client keeps what was said, as without filters).
            if template is not None:
                for index, stream in filters.items():
                    last = stream.finish()
                    if last.text and not last.blocked:
                        yield _text_chunk(template, index, last.text)
            raise
        finally:
            await aclose_quietly(chunks)

    def _choice(
        self,
        policy: GuardrailsPolicy,
        verdict: RequestVerdict,
        filters: dict[int, Any],
        calls: dict[int, dict[int, dict[str, Any]]],
        index: int,
        choice: Mapping[str, Any],
        report: dict[str, int],
    ) -> list[dict[str, Any]] | None:
        """The choice's deltas to send now ([] to hold), or None when the stream is blocked."""
        delta = choice.get("delta")
        if not isinstance(delta, Mapping):  # legacy completions: text choices
            delta = {"content": choice.get("text")}
        stream = filters.get(index)
        if stream is None:
            stream = filters[index] = self.guardrails.output_filter(verdict, policy)
        text = ""
        content = delta.get("content")
        if isinstance(content, str) and content:
            step = stream.feed(content)
            if step.blocked:
                report["blocked.output"] = 1
                return None
            text = step.text
        for call in delta.get("tool_calls") or ():
            held = calls.setdefault(index, {}).setdefault(
                int(call.get("index", 0)),
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
            )
            held["id"] = call.get("id") or held["id"]
            function = call.get("function") or {}
            held["function"]["name"] += function.get("name") or ""
            held["function"]["arguments"] += function.get("arguments") or ""
        finish = choice.get("finish_reason")
        tools: list[dict[str, Any]] = []
        if finish:
            last = stream.finish()
            if last.blocked:
                report["blocked.output"] = 1
                return None
            text += last.text
            for entity, count in stream.counts.items():
                report[f"masked.{entity}"] = report.get(f"masked.{entity}", 0) + count
            pending = calls.pop(index, None)
            if pending:
                checked = self._tool_calls(policy, verdict, index, pending, text)
                if checked is None:
                    report["blocked.tool_call"] = 1
                    return None
                message, finish = checked
                tools = list(message.get("tool_calls") or ())
                if not tools:  # every call removed: the library's note replaces them
                    text = message.get("content") or text
        body: dict[str, Any] = {
            k: v for k, v in delta.items() if k not in ("tool_calls", "content")
        }
        if text:
            body["content"] = text
        out: list[dict[str, Any]] = []
        if body or (finish and not tools):
            out.append(_delta(choice, index, body))
        if tools:
            out.append(_delta(choice, index, {"tool_calls": tools}))
        if out:
            out[-1]["finish_reason"] = finish
        return out

    def _tool_calls(
        self,
        policy: GuardrailsPolicy,
        verdict: RequestVerdict,
        index: int,
        held: dict[int, dict[str, Any]],
        text: str,
    ) -> tuple[dict[str, Any], str] | None:
        calls = [{**held[i], "index": i} for i in sorted(held)]
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        message["tool_calls"] = copy.deepcopy(calls)
        pseudo = {"choices": [{"index": index, "message": message, "finish_reason": "tool_calls"}]}
        checked = self.guardrails.check_response(pseudo, verdict, policy)
        if checked.response is None:
            return None
        choice = checked.response["choices"][0]
        out: dict[str, Any] = choice["message"]
        for position, call in enumerate(out.get("tool_calls") or ()):
            call["index"] = position
        return out, str(choice["finish_reason"])


def _delta(choice: Mapping[str, Any], index: int, delta: dict[str, Any]) -> dict[str, Any]:
    if "delta" in choice:
        return {"index": index, "delta": delta, "finish_reason": None, "logprobs": None}
    return {
        "index": index,
        "text": delta.get("content") or "",
        "finish_reason": None,
        "logprobs": None,
    }


def _text_chunk(template: Mapping[str, Any], index: int, text: str) -> Any:
    out = dict(template)
    first = (template.get("choices") or [{}])[0]
    piece: dict[str, Any] = {"index": index, "finish_reason": None, "logprobs": None}
    if "text" in first:
        piece["text"] = text
    else:
        piece["delta"] = {"content": text}
    out["choices"] = [piece]
    out.pop("usage", None)
    return out


def _final(chunk: Mapping[str, Any], index: int, reason: str) -> Any:
    out = dict(chunk)
    first = (chunk.get("choices") or [{}])[0]
    final: dict[str, Any] = {"index": index, "finish_reason": reason, "logprobs": None}
    if "text" in first:
        final["text"] = ""
    else:
        final["delta"] = {}
    out["choices"] = [final]
    out.pop("usage", None)
    return out
