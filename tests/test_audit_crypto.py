"""AES-256-GCM for `full` prompts, and the audit policy that asks for it."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from pydantic import ValidationError
from test_audit_store import record

from serve.audit import AuditPolicy, AuditRow, DecryptionFailed, PromptCipher, TeamAuditPolicy
from serve.errors import ConfigError

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))


def test_round_trip_with_fresh_nonces_and_no_plaintext() -> None:
    cipher = PromptCipher(KEY)
    plain = "card 4111 1111 1111 1111 for jane@example.com"
    a, b = cipher.encrypt(plain, "r1:prompt"), cipher.encrypt(plain, "r1:prompt")
    assert a != b  # a random 96-bit nonce per value
    for token in (a, b):
        assert "4111" not in token and "jane" not in token
        assert plain.encode() not in base64.b64decode(token)
        assert cipher.decrypt(token, cipher.version, "r1:prompt") == plain


@pytest.mark.parametrize(
    ("version", "context", "tamper"),
    [
        ("kunknown", "r1:prompt", False),  # no such key
        (None, "r2:prompt", False),  # moved to another row
        (None, "r1:response", False),  # moved to another column
        (None, "r1:prompt", True),  # a flipped byte
    ],
)
def test_decryption_refuses(version: str | None, context: str, tamper: bool) -> None:
    cipher = PromptCipher(KEY)
    token = cipher.encrypt("secret", "r1:prompt")
    if tamper:
        raw = bytearray(base64.b64decode(token))
        raw[-1] ^= 1
        token = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(DecryptionFailed) as info:
        cipher.decrypt(token, version or cipher.version, context)
    assert "secret" not in str(info.value)


def test_rotated_keys_still_decrypt_old_rows() -> None:
    old = PromptCipher(OTHER)
    token = old.encrypt("before rotation", "r1:prompt")
    rotated = PromptCipher(KEY, previous=[OTHER])
    assert rotated.version != old.version
    assert rotated.decrypt(token, old.version, "r1:prompt") == "before rotation"
    with pytest.raises(DecryptionFailed):
        PromptCipher(KEY).decrypt(token, old.version, "r1:prompt")


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (base64.b64encode(KEY).decode(), None),
        (base64.b64encode(b"short").decode(), "32 bytes"),
        ("not base64 !!", "base64"),
        ("", "not set"),
    ],
)
def test_keys_come_from_env_references(
    monkeypatch: pytest.MonkeyPatch, value: str, error: str | None
) -> None:
    monkeypatch.setenv("RG_TEST_AUDIT_KEY", value)
    if error is None:
        assert PromptCipher.from_refs("env:RG_TEST_AUDIT_KEY").version == PromptCipher(KEY).version
        return
    with pytest.raises(ConfigError, match=error):
        PromptCipher.from_refs("env:RG_TEST_AUDIT_KEY")


def test_generated_keys_are_usable() -> None:
    assert len(base64.b64decode(PromptCipher.generate_key())) == 32


def test_full_rows_without_a_key_keep_no_text() -> None:
    row = AuditRow.from_record(record(1, prompt_policy="full", prompt="raw", response="raw"), None)
    assert row.prompt is None and row.response is None and not row.encrypted


@pytest.mark.parametrize(
    ("config", "ok"),
    [
        ({}, True),
        ({"prompt_storage": "full"}, False),
        ({"teams": {"a": {"prompt_storage": "full"}}}, False),
        ({"teams": {"a": {"prompt_storage": "full"}}, "encryption_key": "env:K"}, True),
        ({"encryption_key": "inline-secret"}, False),  # secrets only by reference
        ({"retention_days": 0}, False),
        ({"unknown": 1}, False),
    ],
)
def test_policy_validation(config: dict[str, Any], ok: bool) -> None:
    if ok:
        AuditPolicy.model_validate(config)
    else:
        with pytest.raises(ValidationError):
            AuditPolicy.model_validate(config)


def test_team_overrides_fall_back_to_the_platform_default() -> None:
    policy = AuditPolicy(
        retention_days=30,
        teams={"a": TeamAuditPolicy(prompt_storage="none"), "b": TeamAuditPolicy(retention_days=7)},
    )
    assert [policy.prompt_storage_for(t) for t in ("a", "b", "c", None)] == [
        "none",
        "masked",
        "masked",
        "masked",
    ]
    assert [policy.retention_days_for(t) for t in ("a", "b", None)] == [30, 7, 30]
    assert policy.outbox.spool_dir is None  # derived from the database URL by bootstrap
