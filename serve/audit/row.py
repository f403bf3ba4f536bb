"""One audit row: a `RequestRecord` as stored, and its JSON line in the spool.

`AuditRow.from_record` is where the ``full`` policy's prompt and response are encrypted
(before anything reaches the disk); ``none`` never keeps text, even if a record has some.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from serve.audit.crypto import DecryptionFailed, PromptCipher
from serve.record import RequestRecord

__all__ = ["AuditRow"]

log = logging.getLogger("raygate.audit")


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class AuditRow:
    request_id: str
    started_at: datetime
    latency_ms: float
    endpoint: str
    stream: bool
    status: int
    outcome: str
    error_code: str | None = None
    ttft_ms: float | None = None
    team: str | None = None
    key_id: str | None = None
    subject: str | None = None
    project: str | None = None
    model_requested: str | None = None
    model_served: str | None = None
    provider: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_usd: float = 0.0
    cache: str | None = None
    fallback_from: str | None = None
    finish_reason: str | None = None
    guardrails: Mapping[str, int] = field(default_factory=dict)
    prompt_policy: str = "masked"
    prompt: str | None = None  # None, masked text, or (``full``) a ciphertext token
    response: str | None = None
    key_version: str | None = None  # set when prompt/response are ciphertext
    trace_id: str | None = None

    @classmethod
    def from_record(cls, record: RequestRecord, cipher: PromptCipher | None) -> AuditRow:
        values = {f.name: getattr(record, f.name) for f in dataclasses.fields(RequestRecord)}
        values["started_at"] = _utc(record.started_at)
        values["guardrails"] = dict(record.guardrails)
        prompt, response, version = record.prompt, record.response, None
        if record.prompt_policy == "none":
            prompt = response = None
        elif record.prompt_policy == "full" and (prompt is not None or response is not None):
            if cipher is None:
                # Never store full text unencrypted: keep the row, drop the text.
                log.warning(
                    "audit: no encryption key, text of request %s not stored", record.request_id
                )
                prompt = response = None
            else:
                version = cipher.version
                if prompt is not None:
                    prompt = cipher.encrypt(prompt, f"{record.request_id}:prompt")
                if response is not None:
                    response = cipher.encrypt(response, f"{record.request_id}:response")
        values.update(prompt=prompt, response=response, key_version=version)
        return cls(**values)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> AuditRow:
        data = dict(values)
        started = data["started_at"]
        if isinstance(started, str):
            started = datetime.fromisoformat(started)
        data["started_at"] = _utc(started)
        guardrails = data.get("guardrails")
        if isinstance(guardrails, str | bytes):
            data["guardrails"] = orjson.loads(guardrails)
        elif guardrails is None:
            data["guardrails"] = {}
        data["stream"] = bool(data["stream"])
        return cls(**data)

    def as_dict(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["guardrails"] = dict(self.guardrails)
        return values

    def to_json(self) -> bytes:
        return orjson.dumps(self.as_dict())

    @classmethod
    def from_json(cls, line: bytes) -> AuditRow:
        return cls.from_mapping(orjson.loads(line))

    @property
    def encrypted(self) -> bool:
        return self.key_version is not None

    def revealed(self, cipher: PromptCipher | None) -> AuditRow:
        """The row with ``full`` text decrypted (admin read path only); unchanged when the
        key is unknown (the text stays hidden, see `public`)."""
        if not self.encrypted or cipher is None or self.key_version is None:
            return self
        try:
            prompt = _open(cipher, self.prompt, self.key_version, f"{self.request_id}:prompt")
            response = _open(cipher, self.response, self.key_version, f"{self.request_id}:response")
        except DecryptionFailed:
            log.warning(
                "audit: row %s does not decrypt (key %s)", self.request_id, self.key_version
            )
            return self
        return dataclasses.replace(self, prompt=prompt, response=response, key_version=None)

    def public(self) -> dict[str, Any]:
        """What the admin API shows: ciphertext is never shown, only that text exists."""
        values = self.as_dict()
        values["started_at"] = self.started_at.isoformat()
        values["object"] = "audit.record"
        values["encrypted"] = self.encrypted
        if self.encrypted:
            values["prompt"] = values["response"] = None
        return values


def _open(cipher: PromptCipher, token: str | None, version: str, context: str) -> str | None:
    return None if token is None else cipher.decrypt(token, version, context)
