"""AES-256-GCM for prompts and responses stored under the ``full`` policy.

Each value gets a random 96-bit nonce; the row's request id and the column name are the
associated data, so a ciphertext moved to another row or column does not decrypt. The
stored token is ``base64(nonce || ciphertext+tag)``; the row keeps the key's version (a
fingerprint of the key, never the key), so rotated keys still decrypt old rows.
Plaintext is never logged here, and decryption errors say nothing about the value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from serve.errors import ConfigError
from serve.settings import resolve_secret

__all__ = ["DecryptionFailed", "PromptCipher", "key_version"]

NONCE_BYTES = 12


class DecryptionFailed(Exception):
    """Unknown key version, tampered token, or the wrong row or column."""


def _decode_key(encoded: str) -> bytes:
    try:
        key = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("audit encryption key must be base64 (32 random bytes)") from None
    if len(key) != 32:
        raise ConfigError(f"audit encryption key must be 32 bytes, got {len(key)}")
    return key


def key_version(key: bytes) -> str:
    """A stable, non-secret name for a key: ``k`` + 12 hex of a domain-separated sha256."""
    return "k" + hashlib.sha256(b"raygate-audit-key\0" + key).hexdigest()[:12]


class PromptCipher:
    def __init__(self, current: bytes, previous: Sequence[bytes] = ()) -> None:
        if len(current) != 32 or any(len(k) != 32 for k in previous):
            raise ConfigError("audit encryption keys must be 32 bytes")
        self.version = key_version(current)
        self._current = AESGCM(current)
        self._keys = {key_version(k): AESGCM(k) for k in previous}
        self._keys[self.version] = self._current

    @classmethod
    def from_refs(cls, current: str, previous: Sequence[str] = ()) -> PromptCipher:
        """Resolve ``env:NAME`` references (base64 keys) in the process that needs them."""
        return cls(
            _decode_key(resolve_secret(current)), [_decode_key(resolve_secret(p)) for p in previous]
        )

    @staticmethod
    def generate_key() -> str:
        """A fresh key, base64, for `RAYGATE_AUDIT_KEY`-style variables."""
        return base64.b64encode(os.urandom(32)).decode()

    def encrypt(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._current.encrypt(nonce, plaintext.encode(), context.encode())
        return base64.b64encode(nonce + sealed).decode()

    def decrypt(self, token: str, version: str, context: str) -> str:
        aead = self._keys.get(version)
        if aead is None:
            raise DecryptionFailed(f"no audit key with version {version!r}")
        try:
            raw = base64.b64decode(token, validate=True)
            plain = aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode())
        except (binascii.Error, ValueError, InvalidTag):
            raise DecryptionFailed("audit value does not decrypt") from None
        return plain.decode()
