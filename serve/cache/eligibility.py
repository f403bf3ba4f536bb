"""Which chat requests the semantic cache may answer, and what must match exactly.

The semantic key is the last user message (embedded and compared by cosine similarity)
plus a context hash that must match exactly: the model, every earlier message (system
prompt and earlier turns, so a follow-up like "and for March?" is only compared with
follow-ups to the same conversation), every sampling parameter, and the guards'
signatures below. Excluded outright:

- requests with tools, functions or tool messages: a tool call answers with arguments
  drawn from the exact wording, and tool results are data, not a question;
- sampled requests (the same rule as the exact cache, `serve.cache.keys.is_deterministic`);
- a last message that is not a user message, or holds anything but text (images);
- questions longer than the policy's ``max_prompt_chars`` (embedders truncate, and long
  prompts are rarely repeated in other words);
- questions whose letters are mostly non-ASCII, when the policy says so: all-MiniLM-L6-v2
  does not separate Japanese near-misses from paraphrases (numbers in serve.cache.eval).

Guards, each a policy flag, all on by default, measured by serve.cache.eval:

- same content words: both questions must have the same words in the same order once
  filler is set aside (articles, present-tense be/do, can/could/would, I/my/we/our/you/
  your, please; case, punctuation, plural -s). all-MiniLM-L6-v2 scores a one-word
  substitution (Acme/Globex, submit/approve, today/tomorrow, Q3/Q4) or a swap (USD to EUR
  / EUR to USD) as high as a true paraphrase, so without this guard no threshold keeps
  false hits away; with it the embedding confirms that the filler changed nothing. It
  also makes text without spaces (Japanese) match only when it is the same text.
- same numbers ("overdue by 30 days" vs "60 days" embed almost identically);
- same polarity ("renewed" vs "did not renew").

The last two matter when an embedder good enough to turn the first off is configured.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from serve.cache.keys import digest, is_deterministic, normalise
from serve.cache.policy import SemanticCachePolicy

__all__ = [
    "SemanticQuery",
    "content_words",
    "negated",
    "non_ascii_ratio",
    "numbers",
    "semantic_query",
]

_TOOL_FIELDS = ("tools", "tool_choice", "functions", "function_call")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NEGATION = re.compile(
    r"\b(?:not|no|never|none|nobody|nothing|neither|nor|without|cannot|except|excluding)\b"
    r"|n't\b|ない|なかった|ません|未|以外|対象外",
    re.IGNORECASE,
)

_WORD = re.compile(r"\w+")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_CONTRACTIONS = ((r"\bcan't\b", "can not"), (r"\bwon't\b", "will not"), (r"n't\b", " not"))
# Words that carry no part of the question (see the module docstring). Past-tense and
# future auxiliaries (was, did, will), "should"/"must" and third persons are not filler.
_ARTICLES = ("a", "an", "the")
_AUXILIARIES = ("is", "are", "am", "be", "been", "being", "do", "does", "can", "could", "would")
_SPEAKER_AND_LISTENER = ("i", "me", "my", "mine", "we", "us", "our", "ours", "you", "your", "yours")
_POLITENESS = ("please", "kindly", "thanks", "thank")
_CONTRACTION_TAILS = ("s", "re", "ve", "d", "m")  # what's, we're, I've, I'd, I'm
_FILLER = frozenset(
    _ARTICLES + _AUXILIARIES + _SPEAKER_AND_LISTENER + _POLITENESS + _CONTRACTION_TAILS
)


@dataclass(frozen=True, slots=True)
class SemanticQuery:
    text: str  # the question that is embedded
    context: str  # sha256 of everything that must match exactly


def numbers(text: str) -> tuple[str, ...]:
    """The numbers in a text, sorted; full-width digits folded, thousands commas dropped."""
    folded = unicodedata.normalize("NFKC", text)
    return tuple(sorted({m.group().replace(",", "") for m in _NUMBER.finditer(folded)}))


def content_words(text: str) -> tuple[str, ...]:
    """The words that carry the question, in order (see the module docstring)."""
    folded = _THOUSANDS.sub("", unicodedata.normalize("NFKC", text).lower().replace("\u2019", "'"))
    for pattern, replacement in _CONTRACTIONS:
        folded = re.sub(pattern, replacement, folded)
    words = []
    for word in _WORD.findall(folded):
        if word in _FILLER:
            continue
        if len(word) > 4 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
            word = word[:-1]
        words.append(word)
    return tuple(words)


def negated(text: str) -> bool:
    return _NEGATION.search(unicodedata.normalize("NFKC", text)) is not None


def non_ascii_ratio(text: str) -> float:
    """Share of non-ASCII characters among the non-space, non-punctuation ones."""
    letters = [c for c in text if not c.isspace() and unicodedata.category(c)[0] != "P"]
    if not letters:
        return 0.0
    return sum(1 for c in letters if ord(c) > 127) / len(letters)


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        texts = []
        for part in content:
            if not isinstance(part, Mapping) or part.get("type") != "text":
                return None
            texts.append(str(part.get("text") or ""))
        return "\n".join(texts)
    return None


def semantic_query(request: Mapping[str, Any], policy: SemanticCachePolicy) -> SemanticQuery | None:
    """The semantic key of a chat request, or None when it must not be answered by meaning."""
    if not policy.serves(str(request.get("model", ""))):
        return None
    if not is_deterministic(request, policy.cache_any_temperature):
        return None
    if any(request.get(field) for field in _TOOL_FIELDS):
        return None
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    for message in messages:
        if not isinstance(message, Mapping) or message.get("role") in ("tool", "function"):
            return None
        if message.get("tool_calls") or message.get("function_call"):
            return None
    last = messages[-1]
    text = _text(last.get("content")) if last.get("role") == "user" else None
    if text is None or not text.strip() or len(text) > policy.max_prompt_chars:
        return None
    if non_ascii_ratio(text) > policy.max_non_ascii_ratio:
        return None
    rest = {k: v for k, v in last.items() if k != "content"}
    context: dict[str, Any] = {
        "v": 1,
        "request": normalise({**request, "messages": [*messages[:-1], rest]}),
    }
    if policy.match_content_words:
        context["words"] = content_words(text)
    if policy.match_numbers:
        context["numbers"] = numbers(text)
    if policy.match_negation:
        context["negated"] = negated(text)
    return SemanticQuery(text=text.strip(), context=digest(context))
